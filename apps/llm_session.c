/* What the language-model commands share: their options (model, context, template, sampling,
 * a vision encoder), finding the default model, opening a model with its tokenizer on the
 * app's device, and prompts with images in them. */
#include "apps_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stb_image's declarations only: its implementation is compiled in image_io.c. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#define DEFAULT_MODEL "SmolLM2-135M-Instruct.Q4_1.gguf"

void vki_llm_options_usage(FILE *f)
{
    fprintf(f,
            "model options:\n"
            "  -m, --model FILE      GGUF model (default: %s in the model cache,\n"
            "                        $VKI_MODEL_DIR or ~/.cache/vkinfer/models; tools/fetch_models.sh\n"
            "                        puts it there)\n"
            "  --ctx N               context size in tokens (default: the model's, at most 4096)\n"
            "  --batch N             prompt tokens per prefill run (default: 512 on a GPU,\n"
            "                        64 on a CPU device)\n"
            "  --template NAME       chat template: chatml, llama3, llama3.1, gemma, llama2\n"
            "                        (default: from the model)\n"
            "  -ctk, --cache-type T  KV cache type (keys and values): f16, f32, or q8_0 (8-bit\n"
            "                        blocks, about half the memory of f16) (default: f16)\n"
            "  --mmproj FILE         vision encoder for images in the chat (llama.cpp's\n"
            "                        mmproj-*.gguf made for this model)\n"
            "sampling (defaults as llama.cpp):\n"
            "  --temp T              temperature; 0 = greedy (default: 0.8)\n"
            "  --top-k K             keep the K most likely tokens; 0 = off (default: 40)\n"
            "  --top-p P             nucleus sampling; 1 = off (default: 0.95)\n"
            "  --min-p P             drop tokens under P x the top probability; 0 = off (default: 0.05)\n"
            "  --repeat-penalty R    penalise recent tokens; 1 = off (default: 1)\n"
            "  --repeat-last-n N     tokens the penalty looks back over (default: 64)\n"
            "  --seed S              random seed, 0..18446744073709551615 (default: a fresh one,\n"
            "                        printed by generate --json)\n",
            DEFAULT_MODEL);
}

typedef enum opt_kind { OPT_STRING, OPT_U32, OPT_FLOAT, OPT_SEED, OPT_CACHE_TYPE, OPT_TEMPLATE } opt_kind;

/* A --cache-type value by llama.cpp's names of the types it shares with us. */
static bool parse_cache_type(const char *s, vki_dtype *out)
{
    static const vki_dtype types[] = {VKI_DTYPE_F16, VKI_DTYPE_F32, VKI_DTYPE_Q8_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s, vki_dtype_get(types[i])->name) == 0) {
            *out = types[i];
            return true;
        }
    return false;
}

int vki_llm_option(int argc, char **argv, int *i, vki_llm_opts *o, void (*usage)(FILE *))
{
    const struct {
        const char *name, *alias;
        opt_kind kind;
        void *field;
        double min, max;
    } table[] = {
        {"--model", "-m", OPT_STRING, &o->model, 0, 0},
        {"--mmproj", NULL, OPT_STRING, &o->mmproj, 0, 0},
        {"--template", NULL, OPT_TEMPLATE, &o->template_name, 0, 0},
        {"--cache-type", "-ctk", OPT_CACHE_TYPE, &o->kv_dtype, 0, 0},
        {"--ctx", NULL, OPT_U32, &o->n_ctx, 1, 1 << 20},
        {"--batch", NULL, OPT_U32, &o->n_batch, 1, 4096},
        {"--temp", NULL, OPT_FLOAT, &o->sampling.temperature, 0, 100},
        {"--top-k", NULL, OPT_U32, &o->sampling.top_k, 0, INT32_MAX},
        {"--top-p", NULL, OPT_FLOAT, &o->sampling.top_p, 1e-6, 1},
        {"--min-p", NULL, OPT_FLOAT, &o->sampling.min_p, 0, 1},
        {"--repeat-penalty", NULL, OPT_FLOAT, &o->sampling.repeat_penalty, 0.01, 100},
        {"--repeat-last-n", NULL, OPT_U32, &o->sampling.repeat_last_n, 1, 1 << 20},
        {"--seed", NULL, OPT_SEED, &o->sampling.seed, 0, 0},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        const char *value = NULL;
        int m = vki_arg_value(argc, argv, i, table[k].name, &value);
        if (m == 0 && table[k].alias) m = vki_arg_value(argc, argv, i, table[k].alias, &value);
        if (m == 0) continue;
        uint64_t u = 0;
        bool ok = m > 0;
        switch (table[k].kind) {
        case OPT_STRING:
            ok = ok && value[0];
            if (ok) *(const char **)table[k].field = value;
            break;
        case OPT_U32:
            ok = ok && vki_parse_u64(value, (uint64_t)table[k].min, (uint64_t)table[k].max, &u);
            if (ok) *(uint32_t *)table[k].field = (uint32_t)u;
            break;
        case OPT_FLOAT:
            ok = ok && vki_parse_float(value, table[k].min, table[k].max, table[k].field);
            break;
        case OPT_SEED:
            ok = ok && vki_parse_u64(value, 0, UINT64_MAX, &u);
            if (ok) *(uint64_t *)table[k].field = u;
            break;
        case OPT_CACHE_TYPE:
            ok = ok && parse_cache_type(value, table[k].field);
            break;
        case OPT_TEMPLATE:
            ok = ok && vki_chat_template_from_name(value) != VKI_CHAT_TEMPLATE_NONE;
            if (ok) *(const char **)table[k].field = value;
            break;
        }
        if (!ok) {
            if (table[k].kind == OPT_CACHE_TYPE && m > 0)
                vki_app_usage_error(usage, "%s '%s': unknown cache type (f16, f32, q8_0)",
                                    table[k].name, value);
            else if (table[k].kind == OPT_TEMPLATE && m > 0 && value[0])
                vki_app_usage_error(usage, "%s '%s': unknown chat template (chatml, llama3, "
                                    "llama3.1, gemma, llama2)", table[k].name, value);
            else if (table[k].kind == OPT_SEED && m > 0)
                vki_app_usage_error(usage, "%s needs a whole number in 0..%llu", table[k].name,
                                    (unsigned long long)UINT64_MAX);
            else if (table[k].kind == OPT_STRING || table[k].kind == OPT_CACHE_TYPE ||
                     table[k].kind == OPT_TEMPLATE)
                vki_app_usage_error(usage, "%s needs a value", table[k].name);
            else
                vki_app_usage_error(usage, "%s needs a number in %g..%g", table[k].name,
                                    table[k].min, table[k].max);
            return -VKI_EXIT_USAGE;
        }
        // The command line speaks llama.cpp: 0 switches a stage off (temperature 0 is greedy),
        // where the library's 0 means "default".
        vki_sampler_desc *sd = &o->sampling;
        if (table[k].field == &sd->temperature && sd->temperature == 0) sd->temperature = VKI_SAMPLER_GREEDY;
        if (table[k].field == &sd->top_k && sd->top_k == 0) sd->top_k = VKI_SAMPLER_OFF;
        if (table[k].field == &sd->min_p && sd->min_p == 0) sd->min_p = VKI_SAMPLER_OFF;
        return 1;
    }
    return 0;
}

const char *vki_default_model_path(char *buf, size_t size)
{
    return vki_model_cache_file(DEFAULT_MODEL, buf, size);
}

void vki_llm_session_close(vki_llm_session *s)
{
    vki_vision_destroy(s->vision); // before its file
    vki_gguf_close(s->mmproj);
    vki_llm_destroy(s->llm);
    vki_tokenizer_destroy(s->tok);
    vki_gguf_close(s->gguf);
    free(s->synthetic_bytes);
    free(s->logits);
    free(s->piece);
    *s = (vki_llm_session){0};
}

/* The vision encoder of --mmproj, checked against the language model it feeds. */
static int open_vision(vki_app *app, const char *path, vki_llm_session *s)
{
    char err[512] = "";
    vki_status st = vki_gguf_open(path, NULL, &s->mmproj, err, sizeof err);
    if (st) return vki_app_failf("opening %s: %s: %s", path, vki_status_string(st), err);
    st = vki_vision_load(app->device, s->mmproj, NULL, &s->vision, err, sizeof err);
    if (st) return vki_app_failf("loading the vision encoder %s: %s: %s", path, vki_status_string(st), err);
    const vki_vision_info *vi = vki_vision_info_get(s->vision);
    uint32_t n_embd = vki_llm_info_get(s->llm)->n_embd;
    if (vi->n_embd != n_embd)
        return vki_app_failf("%s makes embeddings %u wide and %s takes %u: it is another model's "
                             "vision encoder", path, vi->n_embd, s->model_path, n_embd);
    // Qwen2-VL's images take 2-D rotary positions (M-RoPE), which only its language model has.
    if ((vi->projector == VKI_PROJECTOR_QWEN2VL) != (strcmp(vki_llm_info_get(s->llm)->arch, "qwen2vl") == 0))
        return vki_app_failf("%s (%s) and %s (%s) do not go together: Qwen2-VL's images take the "
                             "2-D rotary positions of its own language model", path, vi->projector_name,
                             s->model_path, vki_llm_info_get(s->llm)->arch);
    return VKI_EXIT_OK;
}

int vki_llm_session_open(vki_app *app, const vki_llm_opts *o, vki_llm_session *s)
{
    *s = (vki_llm_session){0};
    // A path cut to fit would name another file (its prefix): refuse it whole.
    int len;
    if (o->synthetic) len = snprintf(s->model_path, sizeof s->model_path, "synthetic:%s", o->synthetic);
    else if (o->model) len = snprintf(s->model_path, sizeof s->model_path, "%s", o->model);
    else len = (int)strlen(vki_default_model_path(s->model_path, sizeof s->model_path));
    if (len < 0 || (size_t)len >= sizeof s->model_path - 1)
        return vki_app_failf("the model path is %d bytes; vkinfer takes paths of up to %zu bytes "
                             "(a shorter path or a symlink to the file will do)",
                             len, sizeof s->model_path - 2);
    if (!o->model && !o->synthetic && access(s->model_path, R_OK) != 0)
        return vki_app_failf("no model given (-m FILE) and the default model is not at %s: "
                             "run tools/fetch_models.sh (tools/setup.sh does) to download it",
                             s->model_path);
    // The option parser took only known names (a bad one is a usage error there).
    vki_chat_template tmpl = vki_chat_template_from_name(o->template_name);
    int code = vki_app_open_device(app);
    if (code != VKI_EXIT_OK) return code;

    double t0 = vki_now_us();
    char err[512] = "";
    vki_status st;
    if (o->synthetic) {
        size_t size = 0;
        st = vki_llm_synthetic(o->synthetic, 1, &s->synthetic_bytes, &size, err, sizeof err);
        if (st == VKI_OK) st = vki_gguf_open_memory(s->synthetic_bytes, size, NULL, &s->gguf, err, sizeof err);
    } else {
        st = vki_gguf_open(s->model_path, NULL, &s->gguf, err, sizeof err);
    }
    if (st) {
        code = vki_app_failf("opening %s: %s: %s", s->model_path, vki_status_string(st), err);
        vki_llm_session_close(s);
        return code;
    }
    st = o->synthetic ? VKI_OK : vki_tokenizer_create(s->gguf, NULL, &s->tok, err, sizeof err);
    if (st) {
        code = vki_app_failf("%s: tokenizer: %s: %s", s->model_path, vki_status_string(st), err);
        vki_llm_session_close(s);
        return code;
    }
    vki_llm_desc d = {.n_ctx = o->n_ctx, .n_batch = o->n_batch, .kv_dtype = o->kv_dtype,
                      .n_seq = o->n_seq};
    st = vki_llm_load(app->device, s->gguf, &d, &s->llm, err, sizeof err);
    if (st) {
        code = vki_app_failf("loading %s: %s: %s", s->model_path, vki_status_string(st), err);
        vki_llm_session_close(s);
        return code;
    }
    if (o->mmproj && (code = open_vision(app, o->mmproj, s)) != VKI_EXIT_OK) {
        vki_llm_session_close(s);
        return code;
    }
    if (tmpl == VKI_CHAT_TEMPLATE_NONE && s->tok) tmpl = vki_tokenizer_chat_template(s->tok);
    s->chat_template = tmpl;
    s->logits = malloc(vki_llm_info_get(s->llm)->n_vocab * sizeof *s->logits);
    if (!s->logits) {
        vki_llm_session_close(s);
        return vki_app_failf("out of host memory");
    }
    s->load_ms = (vki_now_us() - t0) / 1000.0;
    return VKI_EXIT_OK;
}

const char *vki_llm_session_piece(vki_llm_session *s, int32_t id, size_t *out_len)
{
    size_t len = vki_tokenizer_piece(s->tok, id, s->piece, s->piece_cap);
    if (len > s->piece_cap) { // a long token (some vocabularies spell runs of 1000 spaces)
        char *grown = realloc(s->piece, len);
        if (!grown) return NULL;
        s->piece = grown;
        s->piece_cap = len;
        len = vki_tokenizer_piece(s->tok, id, s->piece, s->piece_cap);
    }
    *out_len = len;
    return s->piece ? s->piece : "";
}

/* ---- Images in prompts ------------------------------------------------------------------------ */

/* The marker: a control character no one types, a name, the image's id, in brackets (the
 * templates trim what Python calls whitespace from contents, 0x1e included: a marker at a
 * message's start or end must survive that). */
#define MARKER "<\x1evki-image:"
#define MARKER_LEN (sizeof MARKER - 1)
#define MARKER_END "\x1e>"

void vki_llm_image_marker(uint32_t id, char out[VKI_LLM_IMAGE_MARKER_SIZE])
{
    snprintf(out, VKI_LLM_IMAGE_MARKER_SIZE, MARKER "%u" MARKER_END, id);
}

/* The first marker at or after `from` in text [0, len), or len. */
static size_t find_marker(const char *text, size_t len, size_t from)
{
    for (size_t i = from; i + MARKER_LEN <= len; i++)
        if (text[i] == MARKER[0] && memcmp(text + i, MARKER, MARKER_LEN) == 0) return i;
    return len;
}

bool vki_llm_text_has_marker(const char *text, size_t len)
{
    return find_marker(text, len, 0) < len;
}

void vki_llm_image_free(vki_llm_image *img)
{
    if (!img) return;
    free(img->embd);
    *img = (vki_llm_image){0};
}

vki_status vki_llm_session_image(vki_llm_session *s, const uint8_t *rgb, uint32_t w, uint32_t h,
                                 vki_llm_image *out, char *err, size_t n)
{
    *out = (vki_llm_image){0};
    if (!s->vision) {
        snprintf(err, n, "this model has no vision encoder (--mmproj FILE gives it one)");
        return VKI_ERROR_UNSUPPORTED;
    }
    uint32_t rows = vki_vision_n_tokens(s->vision, w, h), gw = 0, gh = 0;
    if (rows == 0 || vki_vision_grid(s->vision, w, h, &gw, &gh) || (uint64_t)gw * gh != rows) {
        snprintf(err, n, "a %u x %u image is a size the vision encoder refuses", w, h);
        return VKI_ERROR_UNSUPPORTED;
    }
    uint64_t bytes = (uint64_t)rows * vki_vision_info_get(s->vision)->n_embd * sizeof(float);
    float *embd = (uint64_t)(size_t)bytes == bytes ? malloc((size_t)bytes) : NULL;
    if (!embd) {
        snprintf(err, n, "out of host memory for the image's %u embeddings", rows);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    vki_status st = vki_vision_encode(s->vision, rgb, w, h, embd);
    if (st) {
        snprintf(err, n, "encoding the image: %s: %s", vki_status_string(st),
                 vki_vision_last_error(s->vision));
        free(embd);
        return st;
    }
    *out = (vki_llm_image){.embd = embd, .n = rows, .grid_w = gw, .grid_h = gh, .id = s->next_image_id++};
    return VKI_OK;
}

vki_status vki_llm_session_image_file(vki_llm_session *s, const char *path, vki_llm_image *out,
                                      char *err, size_t n)
{
    *out = (vki_llm_image){0};
    if (!s->vision) return vki_llm_session_image(s, NULL, 0, 0, out, err, n);
    uint8_t *rgb = NULL;
    uint32_t w = 0, h = 0;
    vki_status st = (vki_status)vki_png_read(path, &rgb, &w, &h, err, n);
    if (st) return st;
    st = vki_llm_session_image(s, rgb, w, h, out, err, n);
    free(rgb);
    return st;
}

vki_status vki_llm_session_image_bytes(vki_llm_session *s, const uint8_t *bytes, size_t size,
                                       vki_llm_image *out, char *err, size_t n)
{
    *out = (vki_llm_image){0};
    if (!s->vision) return vki_llm_session_image(s, NULL, 0, 0, out, err, n);
    int w = 0, h = 0, comp = 0;
    if (size > INT32_MAX || !stbi_info_from_memory(bytes, (int)size, &w, &h, &comp)) {
        snprintf(err, n, "not a PNG or JPEG image vkinfer can read (%s)",
                 size > INT32_MAX ? "over 2 GiB" : stbi_failure_reason());
        return VKI_ERROR_BAD_FILE;
    }
    // The size from the header, before any pixel is decoded.
    if (w <= 0 || h <= 0 || w > VKI_IMAGE_MAX_EDGE || h > VKI_IMAGE_MAX_EDGE ||
        (uint64_t)w * (uint64_t)h > VKI_IMAGE_MAX_PIXELS) {
        snprintf(err, n, "a %d x %d image: over vkinfer's limit of %d pixels a side and %llu in "
                 "all", w, h, VKI_IMAGE_MAX_EDGE, (unsigned long long)VKI_IMAGE_MAX_PIXELS);
        return VKI_ERROR_UNSUPPORTED;
    }
    uint8_t *rgb = stbi_load_from_memory(bytes, (int)size, &w, &h, &comp, 3);
    if (!rgb) {
        snprintf(err, n, "cannot decode the image: %s", stbi_failure_reason());
        return VKI_ERROR_BAD_FILE;
    }
    vki_status st = vki_llm_session_image(s, rgb, (uint32_t)w, (uint32_t)h, out, err, n);
    stbi_image_free(rgb);
    return st;
}

/* The markup around an image's rows, as llama.cpp's mtmd writes it for the projector (LLaVA's
 * MLP: none). */
static void image_markup(vki_projector p, const char **beg, const char **end)
{
    *beg = *end = "";
    if (p == VKI_PROJECTOR_GEMMA3) {
        *beg = "<start_of_image>";
        *end = "<end_of_image>";
    } else if (p == VKI_PROJECTOR_IDEFICS3) {
        *beg = "<fake_token_around_image><global-img>";
        *end = "<fake_token_around_image>";
    } else if (p == VKI_PROJECTOR_QWEN2VL) {
        *beg = "<|vision_start|>";
        *end = "<|vision_end|>";
    }
}

/* Appends ids to out [capacity], counting past it: *count grows by what `st`'s call needed. */
typedef struct id_sink {
    int32_t *ids;
    uint32_t capacity, count;
} id_sink;

static vki_status sink_text(vki_llm_session *s, id_sink *k, const char *text, size_t len,
                            bool bos, const vki_text_span *spans, uint32_t n_spans, bool with_spans)
{
    uint32_t room = k->count < k->capacity ? k->capacity - k->count : 0, got = 0;
    int32_t *at = room ? k->ids + k->count : NULL;
    vki_status st = with_spans ? vki_tokenizer_encode_spans(s->tok, text, len, bos, spans, n_spans,
                                                           at, room, &got)
                              : vki_tokenizer_encode(s->tok, text, len, bos, true, at, room, &got);
    if (st && !(st == VKI_ERROR_INVALID_ARGUMENT && got > room)) return st;
    if (got > UINT32_MAX - k->count) return VKI_ERROR_INVALID_ARGUMENT;
    k->count += got;
    return VKI_OK;
}

vki_status vki_llm_session_encode_text(vki_llm_session *s, const char *text, size_t len,
                                       const vki_text_span *spans, uint32_t n_spans,
                                       const vki_llm_image *images, uint32_t n_images,
                                       int32_t *ids, uint32_t capacity, uint32_t *out_n,
                                       char *err, size_t n_err)
{
    id_sink k = {.ids = ids, .capacity = ids ? capacity : 0};
    vki_text_span *clip = n_spans ? malloc(n_spans * sizeof *clip) : NULL;
    if (n_spans && !clip) {
        snprintf(err, n_err, "out of host memory");
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    const char *beg = "", *end = "";
    if (s->vision) image_markup(vki_vision_info_get(s->vision)->projector, &beg, &end);
    vki_status st = VKI_OK;
    // Each piece of text between markers on its own (as mtmd tokenizes around its marker), the
    // plain spans cut to it; BOS before the first only.
    for (size_t pos = 0, first = 1; pos <= len && !st; first = 0) {
        size_t m = find_marker(text, len, pos);
        uint32_t nc = 0;
        for (uint32_t i = 0; spans && i < n_spans; i++) {
            size_t a = spans[i].offset, b = a + spans[i].length;
            if (a < pos) a = pos;
            if (b > m) b = m;
            if (a < b) clip[nc++] = (vki_text_span){a - pos, b - a};
        }
        // With spans, the text outside them is markup (parse_special); without, all of it is.
        st = sink_text(s, &k, text + pos, m - pos, first && vki_tokenizer_add_bos(s->tok), clip, nc,
                       spans != NULL);
        if (st) {
            snprintf(err, n_err, "tokenizing: %s", vki_tokenizer_last_error(s->tok));
            break;
        }
        if (m == len) break;
        // The marker: its id, the image's markup and rows.
        size_t q = m + MARKER_LEN;
        uint64_t id = 0;
        while (q < len && text[q] >= '0' && text[q] <= '9' && id <= UINT32_MAX)
            id = id * 10 + (uint64_t)(text[q++] - '0');
        const vki_llm_image *img = NULL;
        bool closed = q + 2 <= len && memcmp(text + q, MARKER_END, 2) == 0;
        for (uint32_t i = 0; i < n_images && closed; i++)
            if (images[i].id == id) img = &images[i];
        if (!img) {
            snprintf(err, n_err, "the prompt names an image it was not given");
            st = VKI_ERROR_NOT_FOUND;
            break;
        }
        if ((st = sink_text(s, &k, beg, strlen(beg), false, NULL, 0, false))) break;
        if (img->n > UINT32_MAX - k.count) {
            st = VKI_ERROR_INVALID_ARGUMENT;
            break;
        }
        for (uint32_t r = 0; r < img->n; r++, k.count++)
            if (k.count < k.capacity) k.ids[k.count] = VKI_LLM_IMAGE_ROW(img->id);
        if ((st = sink_text(s, &k, end, strlen(end), false, NULL, 0, false))) break;
        pos = q + 2;
    }
    free(clip);
    *out_n = k.count;
    if (!st && k.count > capacity) {
        snprintf(err, n_err, "%u ids need more room than %u", k.count, capacity);
        st = VKI_ERROR_INVALID_ARGUMENT;
    }
    if (st && !err[0]) snprintf(err, n_err, "%s", vki_status_string(st));
    return st;
}

vki_status vki_llm_session_encode(vki_llm_session *s, const vki_chat_prompt *p,
                                  const vki_llm_image *images, uint32_t n_images, int32_t *ids,
                                  uint32_t capacity, uint32_t *out_n, char *err, size_t n_err)
{
    err[0] = 0;
    *out_n = 0;
    size_t len = 0;
    uint32_t n_spans = 0;
    vki_status st = vki_chat_format_spans(p, NULL, 0, &len, NULL, 0, &n_spans);
    if (st && st != VKI_ERROR_INVALID_ARGUMENT) {
        snprintf(err, n_err, "formatting the conversation: %s", vki_status_string(st));
        return st;
    }
    char *text = len < SIZE_MAX ? malloc(len + 1) : NULL;
    vki_text_span *spans = malloc((n_spans ? n_spans : 1) * sizeof *spans);
    if (!text || !spans) {
        free(text);
        free(spans);
        snprintf(err, n_err, "out of host memory");
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    st = vki_chat_format_spans(p, text, len + 1, &len, spans, n_spans, &n_spans);
    if (st) snprintf(err, n_err, "formatting the conversation: %s", vki_status_string(st));
    else
        st = vki_llm_session_encode_text(s, text, len, p->special_in_content ? NULL : spans,
                                         p->special_in_content ? 0 : n_spans, images, n_images,
                                         ids, capacity, out_n, err, n_err);
    free(text);
    free(spans);
    return st;
}

uint32_t vki_llm_image_start(const int32_t *ids, uint32_t pos)
{
    while (pos > 0 && ids[pos] < 0 && ids[pos - 1] == ids[pos]) pos--;
    return pos;
}

vki_status vki_llm_session_eval(vki_llm_session *s, uint32_t seq, const int32_t *ids, uint32_t n,
                                const vki_llm_image *images, uint32_t n_images, float *logits,
                                char *err, size_t n_err)
{
    bool non_causal = s->vision && vki_vision_info_get(s->vision)->non_causal;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i + 1;
        while (j < n && (ids[j] < 0) == (ids[i] < 0) && (ids[i] >= 0 || ids[j] == ids[i])) j++;
        float *out = j == n ? logits : NULL;
        vki_status st;
        if (ids[i] >= 0) {
            st = vki_llm_eval_seq(s->llm, seq, ids + i, j - i, out);
        } else {
            const vki_llm_image *img = NULL;
            for (uint32_t k = 0; k < n_images; k++)
                if (VKI_LLM_IMAGE_ROW(images[k].id) == ids[i]) img = &images[k];
            // Whole images only: rows of one that sees itself both ways go in together. The
            // same image twice with no markup between (LLaVA's) is one run of twice its rows.
            if (!img || !img->n || (j - i) % img->n) {
                snprintf(err, n_err, "image rows %u..%u are not whole images", i, j - 1);
                return VKI_ERROR_INVALID_ARGUMENT;
            }
            st = VKI_OK;
            for (uint32_t r = i; r < j && !st; r += img->n)
                st = vki_llm_eval_image(s->llm, seq, img->embd, img->grid_w, img->grid_h,
                                        non_causal, r + img->n == j ? out : NULL);
        }
        if (st) {
            snprintf(err, n_err, "%s", vki_llm_last_error(s->llm));
            return st;
        }
        i = j;
    }
    return VKI_OK;
}
