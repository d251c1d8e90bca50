/* `vkinfer serve`'s bodies: an OpenAI request's JSON into a vki_serve_request, and the
 * response, chunk and error JSON back; stop strings across token boundaries. Pure functions: no
 * globals, no device, any thread (apps/serve_internal.h has the design).
 *
 * Field names, shapes and ranges are OpenAI's (the chat and completions API reference), with
 * llama-server's sampling extensions top_k, min_p and repeat_penalty. Every request string
 * arrives through cJSON, which keeps whatever bytes the client sent inside a string (invalid
 * UTF-8 included); all text put into a response goes through vki_json_add_text, so a response
 * always parses whatever the model or the client wrote. */
#include "serve_internal.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MAX_TOKENS (1u << 20)
#define MAX_MODEL_LEN 256 // bytes of "model": longer names cannot be ours anyway

void vki_serve_error_set(vki_serve_error *e, int status, const char *type, const char *code,
                         const char *param, const char *fmt, ...)
{
    if (!e) return;
    e->status = status;
    e->type = type ? type : "invalid_request_error";
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* ---- Parsing ---------------------------------------------------------------------------- */

// A 400 about `param`; always false, so `return bad(...)` reads as the failure it is.
static bool bad(vki_serve_error *e, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static bool bad(vki_serve_error *e, const char *param, const char *fmt, ...)
{
    char msg[sizeof e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vki_serve_error_set(e, 400, "invalid_request_error", NULL, param, "%s", msg);
    return false;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static bool oom(vki_serve_error *e)
{
    vki_serve_error_set(e, 500, "server_error", NULL, NULL, "out of host memory");
    return false;
}

// The field, or NULL when absent or JSON null (OpenAI treats an explicit null as not given).
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* A number field in [lo, hi] (lo_open: excluding lo). Absent or null: false with *present
 * false. */
static bool get_number(const cJSON *obj, const char *name, double lo, bool lo_open, double hi,
                       const char *range, double *out, bool *present, vki_serve_error *e)
{
    *present = false;
    const cJSON *v = field(obj, name);
    if (!v) return true;
    double x = v->valuedouble;
    // cJSON reads 1e999 as inf; NaN cannot be written in JSON but is refused all the same.
    if (!cJSON_IsNumber(v) || !(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return bad(e, name, "'%s' must be a number %s", name, range);
    *out = x;
    *present = true;
    return true;
}

/* An integer field (a JSON number with no fraction) in [lo, hi]. */
static bool get_integer(const cJSON *obj, const char *name, double lo, double hi,
                        const char *range, double *out, bool *present, vki_serve_error *e)
{
    *present = false;
    const cJSON *v = field(obj, name);
    if (!v) return true;
    double x = v->valuedouble;
    if (!cJSON_IsNumber(v) || !(x >= lo && x <= hi) || x != floor(x))
        return bad(e, name, "'%s' must be an integer %s", name, range);
    *out = x;
    *present = true;
    return true;
}

static bool get_bool(const cJSON *obj, const char *name, bool *out, vki_serve_error *e)
{
    const cJSON *v = field(obj, name);
    if (!v) return true;
    if (!cJSON_IsBool(v)) return bad(e, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return true;
}

static bool parse_sampling(const cJSON *root, vki_serve_request *r, vki_serve_error *e)
{
    vki_sampler_desc *s = &r->sampling;
    double x = 0;
    bool has = false;

    if (!get_number(root, "temperature", 0, false, 2, "between 0 and 2", &x, &has, e))
        return false;
    r->has_temperature = has;
    // A positive value below float's range must not round to 0, the sampler's "default"; the
    // same holds for the fractions below.
    if (has) s->temperature = x == 0 ? VKI_SAMPLER_GREEDY : (float)x > 0 ? (float)x : FLT_MIN;

    if (!get_number(root, "top_p", 0, true, 1, "greater than 0 and at most 1", &x, &has, e))
        return false;
    r->has_top_p = has;
    if (has) s->top_p = (float)x > 0 ? (float)x : FLT_MIN;

    // llama-server: top_k <= 0 and min_p 0 switch the stage off.
    if (!get_integer(root, "top_k", -2147483648.0, 2147483647.0,
                     "(0 or less: off; at most 2147483647)", &x, &has, e))
        return false;
    r->has_top_k = has;
    if (has) s->top_k = x > 0 ? (int32_t)x : VKI_SAMPLER_OFF;

    if (!get_number(root, "min_p", 0, false, 1, "between 0 and 1 (0: off)", &x, &has, e))
        return false;
    r->has_min_p = has;
    if (has) s->min_p = x == 0 ? VKI_SAMPLER_OFF : (float)x > 0 ? (float)x : FLT_MIN;

    if (!get_number(root, "repeat_penalty", 0, true, FLT_MAX, "greater than 0 (1: off)", &x,
                    &has, e))
        return false;
    r->has_repeat_penalty = has;
    if (has) s->repeat_penalty = (float)x > 0 ? (float)x : FLT_MIN;

    if (!get_number(root, "presence_penalty", -2, false, 2, "between -2 and 2", &x, &has, e))
        return false;
    if (has) s->presence_penalty = (float)x;
    if (!get_number(root, "frequency_penalty", -2, false, 2, "between -2 and 2", &x, &has, e))
        return false;
    if (has) s->frequency_penalty = (float)x;

    // Any 64-bit integer; a negative one is taken as its two's complement (-1 is 2^64 - 1).
    // JSON numbers reach us as doubles, so seeds beyond 2^53 arrive rounded.
    if (!get_integer(root, "seed", -9223372036854775808.0, 18446744073709551615.0,
                     "(64 bits)", &x, &has, e))
        return false;
    r->has_seed = has;
    if (has) {
        uint64_t seed = x < 0 ? (uint64_t)(int64_t)x
                        : x >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)x;
        // The sampler reads 0 as "pick a fresh seed"; a client's 0 must replay like any other
        // seed, so it becomes a fixed odd number no double can spell (doubles this large are
        // multiples of 2048).
        s->seed = seed ? seed : 0x9e3779b97f4a7c15u;
    }
    return true;
}

static bool parse_max_tokens(const cJSON *root, vki_serve_request *r, vki_serve_error *e)
{
    // max_completion_tokens is OpenAI's newer name; it wins when both are given.
    static const char *const names[] = {"max_tokens", "max_completion_tokens"};
    for (int i = 0; i < 2; i++) {
        double x = 0;
        bool has = false;
        if (!get_integer(root, names[i], 1, MAX_MAX_TOKENS, "between 1 and 1048576", &x, &has,
                         e))
            return false;
        if (has) r->max_tokens = (uint32_t)x;
    }
    return true;
}

static bool parse_stop(const cJSON *root, vki_serve_request *r, vki_serve_error *e)
{
    const cJSON *v = field(root, "stop");
    if (!v) return true;
    const char *msg = "'stop' must be a string or an array of at most 4 strings of at most 256 "
                      "bytes each";
    bool one = cJSON_IsString(v); // a string: as an array of that one string
    if (!one && (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > VKI_SERVE_MAX_STOP))
        return bad(e, "stop", "%s", msg);
    for (const cJSON *item = one ? v : v->child; item; item = one ? NULL : item->next) {
        if (!cJSON_IsString(item)) return bad(e, "stop", "%s", msg);
        size_t len = strlen(item->valuestring);
        if (len > VKI_SERVE_MAX_STOP_LEN) return bad(e, "stop", "%s", msg);
        if (len == 0) continue; // would stop before the first byte; OpenAI ignores it too
        if (!(r->stop[r->n_stop++] = dup_bytes(item->valuestring, len))) return oom(e);
    }
    return true;
}

/* Bytes of base64 text (RFC 4648's alphabet, '=' padding; line breaks and spaces between
 * characters are skipped, as MIME wraps it) into out [at most n / 4 * 3 + 3]. Returns the size,
 * or SIZE_MAX for a character outside the alphabet or padding before the end. */
static size_t base64_decode(const char *in, size_t n, uint8_t *out)
{
    uint32_t acc = 0, bits = 0;
    size_t size = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (v < 0 || pad) return SIZE_MAX;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[size++] = (uint8_t)(acc >> bits);
        }
    }
    return pad > 2 ? SIZE_MAX : size;
}

/* An "image_url" part (OpenAI: {"url": "data:image/png;base64,..."}; a bare string is taken
 * too) into r->images. Only data: URIs of PNG or JPEG: the server fetches nothing. */
static bool parse_image(const cJSON *part, const char *param, uint32_t j, vki_serve_request *r,
                        vki_serve_error *e)
{
    const cJSON *iu = field(part, "image_url");
    const cJSON *url = cJSON_IsObject(iu) ? field(iu, "url") : iu;
    if (!cJSON_IsString(url))
        return bad(e, param, "'%s[%u].image_url' must be an object with a string 'url'", param, j);
    const char *u = url->valuestring;
    if (strncmp(u, "data:", 5) != 0)
        return bad(e, param, "'%s[%u].image_url.url' is not a data: URI; this server fetches no "
                   "URLs (send the image inline: data:image/png;base64,...)", param, j);
    const char *comma = strchr(u, ',');
    size_t head = comma ? (size_t)(comma - u) : 0;
    static const char *const kinds[] = {"data:image/png;base64", "data:image/jpeg;base64",
                                        "data:image/jpg;base64"};
    bool known = false;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        known = known || (head == strlen(kinds[k]) && strncmp(u, kinds[k], head) == 0);
    if (!known)
        return bad(e, param, "'%s[%u].image_url.url' must be data:image/png;base64,... or "
                   "data:image/jpeg;base64,... (PNG and JPEG only)", param, j);
    if (r->n_images == VKI_SERVE_MAX_IMAGES)
        return bad(e, param, "a request holds at most %u images", VKI_SERVE_MAX_IMAGES);
    size_t n = strlen(comma + 1); // within the body: at most 4 MiB, so no overflow below
    uint8_t *bytes = malloc(n / 4 * 3 + 3);
    if (!bytes) return oom(e);
    size_t size = base64_decode(comma + 1, n, bytes);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t jpeg_sig[3] = {0xff, 0xd8, 0xff};
    bool ok = size != SIZE_MAX &&
              ((size >= 8 && memcmp(bytes, png_sig, 8) == 0) ||
               (size >= 3 && memcmp(bytes, jpeg_sig, 3) == 0));
    if (!ok) {
        free(bytes);
        return bad(e, param, size == SIZE_MAX ? "'%s[%u].image_url.url' holds invalid base64"
                                              : "'%s[%u].image_url.url' is not a PNG or JPEG image",
                   param, j);
    }
    r->images[r->n_images++] = (vki_serve_image){bytes, size};
    return true;
}

/* The content of messages[i]: a string, null (as an assistant turn that only called tools
 * has), or an array of "text" and "image_url" parts joined with newlines, each image as its
 * marker. Text must not spell an image marker (it would claim an image it does not hold). */
static bool parse_content(const cJSON *msg, uint32_t i, char **out, vki_serve_request *r,
                          vki_serve_error *e)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%u].content", i);
    const char *marked = "'%s' spells vkinfer's image marker ('<', the control character 0x1e, "
                         "'vki-image:'); send images as image_url parts";
    const cJSON *c = field(msg, "content");
    if (!c) {
        *out = dup_bytes("", 0);
        return *out ? true : oom(e);
    }
    if (cJSON_IsString(c)) {
        if (vki_llm_text_has_marker(c->valuestring, strlen(c->valuestring)))
            return bad(e, param, marked, param);
        *out = dup_bytes(c->valuestring, strlen(c->valuestring));
        return *out ? true : oom(e);
    }
    if (!cJSON_IsArray(c))
        return bad(e, param, "'%s' must be a string, null or an array of content parts", param);
    size_t total = 0;
    uint32_t j = 0, first_image = r->n_images;
    for (const cJSON *part = c->child; part; part = part->next, j++) {
        const cJSON *type = cJSON_IsObject(part) ? field(part, "type") : NULL;
        if (!cJSON_IsString(type))
            return bad(e, param, "'%s[%u]' must be an object with a string 'type'", param, j);
        if (strcmp(type->valuestring, "image_url") == 0) {
            if (!r->images && !(r->images = calloc(VKI_SERVE_MAX_IMAGES, sizeof *r->images)))
                return oom(e);
            if (!parse_image(part, param, j, r, e)) return false;
            total += VKI_LLM_IMAGE_MARKER_SIZE + 1;
            continue;
        }
        if (strcmp(type->valuestring, "text") != 0) {
            static const char *const media[] = {"input_audio", "image", "file", "input_image",
                                                "audio"};
            for (size_t k = 0; k < sizeof media / sizeof *media; k++)
                if (strcmp(type->valuestring, media[k]) == 0)
                    return bad(e, param, "'%s[%u]' is of type '%s': this server takes 'text' "
                               "and 'image_url' parts", param, j, media[k]);
            return bad(e, param, "'%s[%u]' has an unknown type '%.40s' (only 'text' and "
                       "'image_url' are taken)", param, j, type->valuestring);
        }
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(text))
            return bad(e, param, "'%s[%u].text' must be a string", param, j);
        if (vki_llm_text_has_marker(text->valuestring, strlen(text->valuestring)))
            return bad(e, param, marked, param);
        total += strlen(text->valuestring) + 1; // bounded by the body's size: no overflow
    }
    char *s = malloc(total + 1), *p = s;
    if (!s) return oom(e);
    uint32_t k = first_image;
    for (const cJSON *part = c->child; part; part = part->next) {
        if (p != s) *p++ = '\n';
        if (strcmp(field(part, "type")->valuestring, "image_url") == 0) {
            vki_llm_image_marker(k++, p);
            p += strlen(p);
            continue;
        }
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t len = strlen(t);
        memcpy(p, t, len);
        p += len;
    }
    *p = 0;
    *out = s;
    return true;
}

static bool parse_messages(const cJSON *root, vki_serve_request *r, vki_serve_error *e)
{
    const cJSON *m = field(root, "messages");
    if (!m) return bad(e, "messages", "'messages' is required");
    if (!cJSON_IsArray(m)) return bad(e, "messages", "'messages' must be an array");
    int count = cJSON_GetArraySize(m);
    if (count < 1 || count > (int)VKI_SERVE_MAX_MESSAGES)
        return bad(e, "messages", "'messages' must hold 1 to %u messages", VKI_SERVE_MAX_MESSAGES);
    r->messages = calloc((size_t)count, sizeof *r->messages);
    if (!r->messages) return oom(e);
    uint32_t i = 0;
    for (const cJSON *msg = m->child; msg; msg = msg->next, i++) {
        char param[64];
        snprintf(param, sizeof param, "messages[%u]", i);
        if (!cJSON_IsObject(msg)) return bad(e, param, "'%s' must be an object", param);
        snprintf(param, sizeof param, "messages[%u].role", i);
        const cJSON *role = field(msg, "role");
        if (!cJSON_IsString(role)) return bad(e, param, "'%s' must be a string", param);
        // OpenAI's "developer" is the system prompt of its newer models. Tool results and
        // function calls have no place in the templates vkinfer writes.
        const char *name = role->valuestring;
        if (strcmp(name, "developer") == 0) name = "system";
        if (strcmp(name, "system") != 0 && strcmp(name, "user") != 0 &&
            strcmp(name, "assistant") != 0) {
            if (strcmp(name, "tool") == 0 || strcmp(name, "function") == 0)
                return bad(e, param, "'%s' is '%s': this server does not call tools, so it "
                           "takes only system, developer, user and assistant messages", param,
                           name);
            return bad(e, param, "'%s' is '%.40s'; it must be system, developer, user or "
                       "assistant", param, name);
        }
        vki_chat_message *out = &r->messages[i];
        char *content = NULL;
        if (!parse_content(msg, i, &content, r, e)) return false;
        out->content = content;
        r->n_messages = i + 1; // from here on, free() owns what is set
        if (!(out->role = dup_bytes(name, strlen(name)))) return oom(e);
    }
    return true;
}

static bool parse_prompt(const cJSON *root, vki_serve_request *r, vki_serve_error *e)
{
    const cJSON *p = field(root, "prompt");
    if (!p) return bad(e, "prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child)) p = p->child;
    if (!cJSON_IsString(p))
        return bad(e, "prompt", "'prompt' must be a string or an array of one string (token "
                   "arrays and batches are not supported)");
    r->prompt = dup_bytes(p->valuestring, strlen(p->valuestring));
    return r->prompt ? true : oom(e);
}

/* JSON forbids raw control characters in strings and cJSON stops a string at a NUL, so a NUL
 * byte or an escaped \u0000 would cut text short without a word. Both are refused instead. An
 * escape is a backslash preceded by an even run of backslashes. */
static bool has_nul(const char *body, size_t length)
{
    if (memchr(body, 0, length)) return true;
    for (size_t i = 0; i + 6 <= length; i++) {
        if (body[i] != '\\') continue;
        if ((body[i + 1] == 'u' || body[i + 1] == 'U') && memcmp(body + i + 2, "0000", 4) == 0)
            return true;
        i++; // skip the escaped character (a backslash too)
    }
    return false;
}

bool vki_serve_request_parse(const char *body, size_t length, vki_serve_kind kind,
                             vki_serve_request *out, vki_serve_error *err)
{
    vki_serve_error scratch;
    if (!err) err = &scratch;
    *err = (vki_serve_error){0};
    if (!out) return bad(err, NULL, "no request");
    *out = (vki_serve_request){.kind = kind};
    if (kind != VKI_SERVE_CHAT && kind != VKI_SERVE_COMPLETION)
        return bad(err, NULL, "no such endpoint");
    if (length > VKI_SERVE_MAX_BODY) {
        vki_serve_error_set(err, 413, "invalid_request_error", NULL, NULL,
                            "the request body is %zu bytes; the limit is %u", length,
                            VKI_SERVE_MAX_BODY);
        return false;
    }
    if (!body || length == 0) return bad(err, NULL, "the request body is empty; it must be JSON");
    if (has_nul(body, length))
        return bad(err, NULL, "the request body holds a NUL character (raw or \\u0000)");

    // cJSON wants the terminating NUL inside the length for require_null_terminated.
    char *text = dup_bytes(body, length);
    if (!text) return oom(err);
    const char *end = NULL;
    // cJSON's parser records every parse's error position in a variable of its own, shared by
    // all threads: the HTTP threads parse one at a time (a body takes microseconds).
    static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&parse_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(text, length + 1, &end, 1);
    pthread_mutex_unlock(&parse_lock);
    if (!root) {
        size_t at = end && end >= text && end <= text + length ? (size_t)(end - text) : 0;
        free(text);
        return bad(err, NULL, "the request body is not valid JSON (at byte %zu)", at);
    }
    bool ok = false;
    if (!cJSON_IsObject(root)) {
        bad(err, NULL, "the request body must be a JSON object");
        goto done;
    }
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model)) {
        bad(err, "model", "'model' must be a string");
        goto done;
    }
    if (model) {
        size_t len = strlen(model->valuestring);
        if (len > MAX_MODEL_LEN) {
            bad(err, "model", "'model' is %zu bytes long; names have at most %d", len,
                MAX_MODEL_LEN);
            goto done;
        }
        if (!(out->model = dup_bytes(model->valuestring, len))) {
            oom(err);
            goto done;
        }
    }
    if (kind == VKI_SERVE_CHAT ? !parse_messages(root, out, err) : !parse_prompt(root, out, err))
        goto done;

    double n = 1;
    bool has_n = false;
    if (!get_integer(root, "n", 1, 1, "equal to 1 (one choice per request)", &n, &has_n, err))
        goto done;
    if (!get_bool(root, "stream", &out->stream, err)) goto done;
    if (!get_bool(root, "ignore_eos", &out->ignore_eos, err)) goto done;
    const cJSON *so = field(root, "stream_options");
    if (so && !cJSON_IsObject(so)) {
        bad(err, "stream_options", "'stream_options' must be an object");
        goto done;
    }
    if (so && !get_bool(so, "include_usage", &out->include_usage, err)) {
        snprintf(err->param, sizeof err->param, "stream_options.include_usage");
        snprintf(err->message, sizeof err->message,
                 "'stream_options.include_usage' must be true or false");
        goto done;
    }
    if (!parse_max_tokens(root, out, err) || !parse_sampling(root, out, err) ||
        !parse_stop(root, out, err))
        goto done;

    // What the sampler will be given must pass its own check (the scheduler fills in the
    // rest); a failure here is a bug in the ranges above, reported rather than hidden.
    char why[256];
    if (vki_sampler_check_desc(&out->sampling, 1, why, sizeof why) != VKI_OK) {
        vki_serve_error_set(err, 400, "invalid_request_error", NULL, NULL, "%s", why);
        goto done;
    }
    ok = true;
done:
    cJSON_Delete(root);
    free(text);
    return ok;
}

void vki_serve_request_free(vki_serve_request *r)
{
    if (!r) return;
    free(r->model);
    for (uint32_t i = 0; i < r->n_messages; i++) {
        free((char *)r->messages[i].role);
        free((char *)r->messages[i].content);
    }
    free(r->messages);
    free(r->prompt);
    for (uint32_t i = 0; i < r->n_stop && i < VKI_SERVE_MAX_STOP; i++) free(r->stop[i]);
    for (uint32_t i = 0; i < r->n_images; i++) free(r->images[i].data);
    free(r->images);
    *r = (vki_serve_request){0};
}

/* ---- Responses ---------------------------------------------------------------------------- */

static char *print_and_delete(cJSON *root, bool ok)
{
    char *s = ok && root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

static bool add_str(cJSON *obj, const char *key, const char *s)
{
    return vki_json_add_text(obj, key, s ? s : "", s ? strlen(s) : 0);
}

// strlen within a fixed array that a caller may have filled without a NUL.
static size_t bounded_len(const char *s, size_t size)
{
    const char *nul = memchr(s, 0, size);
    return nul ? (size_t)(nul - s) : size;
}

char *vki_serve_error_json(const vki_serve_error *e)
{
    vki_serve_error none = {0};
    if (!e) e = &none;
    cJSON *root = cJSON_CreateObject(), *obj = cJSON_CreateObject();
    bool ok = root && obj && cJSON_AddItemToObject(root, "error", obj);
    if (!ok) cJSON_Delete(obj);
    // The message may quote the client's bytes (a role's name): sanitised like any text.
    ok = ok &&
         vki_json_add_text(obj, "message", e->message, bounded_len(e->message, sizeof e->message));
    ok = ok && add_str(obj, "type", e->type ? e->type : "server_error");
    ok = ok && (e->param[0] ? vki_json_add_text(obj, "param", e->param,
                                                bounded_len(e->param, sizeof e->param))
                            : cJSON_AddNullToObject(obj, "param") != NULL);
    ok = ok &&
         (e->code ? add_str(obj, "code", e->code) : cJSON_AddNullToObject(obj, "code") != NULL);
    return print_and_delete(root, ok);
}

// id, object, created, model: the head every response and chunk starts with.
static cJSON *head(const char *id, const char *object, int64_t created, const char *model)
{
    cJSON *root = cJSON_CreateObject();
    if (root && add_str(root, "id", id) && cJSON_AddStringToObject(root, "object", object) &&
        cJSON_AddNumberToObject(root, "created", (double)created) && add_str(root, "model", model))
        return root;
    cJSON_Delete(root);
    return NULL;
}

static bool add_usage(cJSON *root, vki_serve_token_usage u)
{
    cJSON *obj = cJSON_AddObjectToObject(root, "usage");
    return obj && cJSON_AddNumberToObject(obj, "prompt_tokens", u.prompt_tokens) &&
           cJSON_AddNumberToObject(obj, "completion_tokens", u.completion_tokens) &&
           cJSON_AddNumberToObject(obj, "total_tokens",
                                   (double)u.prompt_tokens + (double)u.completion_tokens);
}

static bool add_finish(cJSON *choice, const char *reason)
{
    return reason ? cJSON_AddStringToObject(choice, "finish_reason", reason) != NULL
                  : cJSON_AddNullToObject(choice, "finish_reason") != NULL;
}

// choices: [choice], with index 0 and logprobs null; returns the choice.
static cJSON *add_choice(cJSON *root)
{
    cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *choice = cJSON_CreateObject();
    if (!choices || !choice || !cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        return NULL;
    }
    if (!cJSON_AddNumberToObject(choice, "index", 0) || !cJSON_AddNullToObject(choice, "logprobs"))
        return NULL;
    return choice;
}

char *vki_serve_response_json(vki_serve_kind kind, const char *id, int64_t created,
                              const char *model, const char *text, size_t n,
                              const char *finish_reason, vki_serve_token_usage usage)
{
    bool chat = kind == VKI_SERVE_CHAT;
    cJSON *root = head(id, chat ? "chat.completion" : "text_completion", created, model);
    cJSON *choice = root ? add_choice(root) : NULL;
    bool ok = choice != NULL;
    if (ok && chat) {
        cJSON *msg = cJSON_AddObjectToObject(choice, "message");
        ok = msg && cJSON_AddStringToObject(msg, "role", "assistant") &&
             vki_json_add_text(msg, "content", text ? text : "", text ? n : 0);
    } else if (ok) {
        ok = vki_json_add_text(choice, "text", text ? text : "", text ? n : 0);
    }
    ok = ok && add_finish(choice, finish_reason ? finish_reason : "stop") && add_usage(root, usage);
    return print_and_delete(root, ok);
}

char *vki_serve_chunk_json(vki_serve_kind kind, const char *id, int64_t created,
                           const char *model, bool first, const char *text, size_t n,
                           const char *finish_reason, const vki_serve_token_usage *usage)
{
    bool chat = kind == VKI_SERVE_CHAT;
    cJSON *root = head(id, chat ? "chat.completion.chunk" : "text_completion", created, model);
    bool ok = root != NULL;
    if (ok && usage) { // the last chunk of stream_options.include_usage: no choices
        ok = cJSON_AddArrayToObject(root, "choices") && add_usage(root, *usage);
        return print_and_delete(root, ok);
    }
    cJSON *choice = ok ? add_choice(root) : NULL;
    ok = choice != NULL;
    if (!text) n = 0;
    if (ok && chat) {
        // OpenAI's shape: the role in the first delta, the text as "content", and an empty
        // delta in the chunk that only carries the finish_reason.
        cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
        ok = delta && (!first || cJSON_AddStringToObject(delta, "role", "assistant"));
        if (ok && (n > 0 || first || !finish_reason))
            ok = vki_json_add_text(delta, "content", text ? text : "", n);
    } else if (ok) {
        ok = vki_json_add_text(choice, "text", text ? text : "", n);
    }
    ok = ok && add_finish(choice, finish_reason);
    return print_and_delete(root, ok);
}

/* ---- Stop strings ------------------------------------------------------------------------- */

// Bytes at the end of text[0, n) that begin a UTF-8 character not finished yet: 0 to 3. Only a
// sequence that can still become a well-formed character is held (Unicode's table 3-7: no
// overlong forms, no surrogates, nothing past U+10FFFF); anything else never will, and the
// sanitiser turns it into U+FFFD wherever it is cut.
static size_t unfinished_utf8(const unsigned char *t, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char *lead = t + n - back;
        if ((*lead & 0xC0) == 0x80) continue; // a continuation byte: look further back
        size_t need = *lead >= 0xC2 && *lead <= 0xDF ? 2
                      : *lead >= 0xE0 && *lead <= 0xEF ? 3
                      : *lead >= 0xF0 && *lead <= 0xF4 ? 4 : 0;
        if (need <= back) return 0; // complete, or not a lead byte at all
        if (back >= 2) {            // the second byte's range depends on the lead
            unsigned char lo = *lead == 0xE0 ? 0xA0 : *lead == 0xF0 ? 0x90 : 0x80;
            unsigned char hi = *lead == 0xED ? 0x9F : *lead == 0xF4 ? 0x8F : 0xBF;
            if (lead[1] < lo || lead[1] > hi) return 0;
        }
        return back; // any third byte is a continuation (80..BF), which is all it needs
    }
    return 0;
}

size_t vki_serve_stop_scan(const char *text, size_t n, size_t sent, char *const *stops,
                           uint32_t n_stop, size_t *stop_at)
{
    size_t dummy;
    if (!stop_at) stop_at = &dummy;
    *stop_at = SIZE_MAX;
    if (!text) return 0;
    if (sent > n) sent = n;
    if (!stops) n_stop = 0;
    // Bytes before `sent` were handed out only when no stop could begin there (a stop's
    // beginning at the end was held back), so every stop still to find begins at or after it.
    for (size_t p = sent; p < n; p++) {
        for (uint32_t k = 0; k < n_stop; k++) {
            size_t len = stops[k] ? strlen(stops[k]) : 0;
            if (len && len <= n - p && memcmp(text + p, stops[k], len) == 0) {
                *stop_at = p;
                return p;
            }
        }
    }
    // No stop: hold back the longest tail that a stop begins with (the first p from the left
    // whose tail is a proper prefix of one), then a character cut in half.
    size_t safe = n;
    for (size_t p = sent; p < n && safe == n; p++) {
        for (uint32_t k = 0; k < n_stop; k++) {
            size_t len = stops[k] ? strlen(stops[k]) : 0;
            if (n - p < len && memcmp(text + p, stops[k], n - p) == 0) {
                safe = p;
                break;
            }
        }
    }
    safe -= unfinished_utf8((const unsigned char *)text, safe);
    return safe > sent ? safe : sent;
}
