/* libFuzzer target for `vkinfer serve`'s request mapping (apps/serve_request.c): the body of a
 * chat or completion request (the first byte picks the endpoint and how text is cut into
 * "tokens"; the rest is the body) -> vki_serve_request, then the JSON the server would write
 * from the request's own strings, and the stop-string scan over its text with its own stops.
 *
 * Invariants checked (a violation traps):
 *   - a parse either succeeds with sampling settings the sampler accepts and NUL-terminated
 *     strings within the caps, or fails with status 400/413 and a message; the error JSON parses;
 *   - every response, chunk and error body parses as JSON (any bytes in the text);
 *   - streaming a text through vki_serve_stop_scan in pieces never hands out bytes beyond the
 *     first stop, never takes back what was handed out, and never shows a stop string.
 * Built in the sanitizer configuration (clang, -DVKI_FUZZ=ON):
 *     build-asan/tests/fuzz_serve_request -max_total_time=600 -max_len=4096 /tmp/corpus
 */
#include "serve_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_json(char *text)
{
    if (!text) return; // only for lack of host memory
    cJSON *root = cJSON_Parse(text);
    if (!root) __builtin_trap();
    cJSON_Delete(root);
    free(text);
}

// The first occurrence of any stop in text[0, n), by brute force; SIZE_MAX when none.
static size_t first_stop(const char *text, size_t n, char *const *stops, uint32_t n_stop)
{
    for (size_t p = 0; p < n; p++)
        for (uint32_t k = 0; k < n_stop; k++) {
            size_t len = strlen(stops[k]);
            if (len && len <= n - p && memcmp(text + p, stops[k], len) == 0) return p;
        }
    return SIZE_MAX;
}

static void stream(const vki_serve_request *r, const char *text, uint8_t cut)
{
    size_t n = strlen(text), sent = 0, at = SIZE_MAX, end = 0;
    size_t piece = 1 + cut % 7; // as a token would bring: 1 to 7 bytes at a time
    bool first = true;
    while (end < n && at == SIZE_MAX) {
        end = end + piece < n ? end + piece : n;
        size_t safe = vki_serve_stop_scan(text, end, sent, r->stop, r->n_stop, &at);
        if (safe < sent || safe > end) __builtin_trap();
        if (at != SIZE_MAX && (at != safe || at != first_stop(text, end, r->stop, r->n_stop)))
            __builtin_trap();
        if (at == SIZE_MAX && first_stop(text, safe, r->stop, r->n_stop) != SIZE_MAX)
            __builtin_trap(); // a whole stop handed out
        if (safe > sent)
            check_json(vki_serve_chunk_json(r->kind, "chatcmpl-0", 1, r->model, first, text + sent,
                                            safe - sent, NULL, NULL));
        first = false;
        sent = safe;
    }
    // Streamed to the end without a stop: brute force finds none in the whole text either.
    if (at == SIZE_MAX && first_stop(text, n, r->stop, r->n_stop) != SIZE_MAX) __builtin_trap();
    vki_serve_token_usage u = {(uint32_t)n, (uint32_t)sent};
    check_json(vki_serve_response_json(r->kind, "cmpl-0", 1, r->model, text,
                                       at == SIZE_MAX ? n : at, at == SIZE_MAX ? "length" : "stop",
                                       u));
    check_json(vki_serve_chunk_json(r->kind, "cmpl-0", 1, r->model, false, NULL, 0, "stop", NULL));
    check_json(vki_serve_chunk_json(r->kind, "cmpl-0", 1, r->model, false, NULL, 0, NULL, &u));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    vki_serve_kind kind = data[0] & 1 ? VKI_SERVE_COMPLETION : VKI_SERVE_CHAT;
    uint8_t cut = data[0] >> 1;
    // An exact-size copy: the parser must not read past the body nor need a NUL after it.
    size_t length = size - 1;
    char *body = malloc(length ? length : 1);
    if (!body) return 0;
    memcpy(body, data + 1, length);

    vki_serve_request r;
    vki_serve_error e;
    bool ok = vki_serve_request_parse(body, length, kind, &r, &e);
    if (!ok) {
        if ((e.status != 400 && e.status != 413) || !e.message[0] || !e.type) __builtin_trap();
        // What was parsed before the error is still owned by r: freed below, as the header
        // asks (LeakSanitizer checks).
        check_json(vki_serve_error_json(&e));
    } else {
        if (e.status != 0) __builtin_trap();
        if (vki_sampler_check_desc(&r.sampling, 1, NULL, 0) != VKI_OK) __builtin_trap();
        if (r.n_stop > VKI_SERVE_MAX_STOP) __builtin_trap();
        for (uint32_t i = 0; i < r.n_stop; i++) {
            size_t len = strlen(r.stop[i]);
            if (len == 0 || len > VKI_SERVE_MAX_STOP_LEN) __builtin_trap();
        }
        if (r.max_tokens > (1u << 20)) __builtin_trap();
        if (kind == VKI_SERVE_CHAT) {
            if (r.n_messages < 1 || r.n_messages > VKI_SERVE_MAX_MESSAGES || r.prompt)
                __builtin_trap();
            for (uint32_t i = 0; i < r.n_messages; i++) {
                const char *role = r.messages[i].role;
                if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
                    __builtin_trap();
                stream(&r, r.messages[i].content, cut);
            }
        } else {
            if (!r.prompt || r.messages) __builtin_trap();
            stream(&r, r.prompt, cut);
        }
    }
    vki_serve_request_free(&r);
    free(body);
    return 0;
}
