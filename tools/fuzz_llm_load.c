/* libFuzzer target for the whole load path of a language model: GGUF bytes -> hyper-parameters
 * -> weights table -> graph build -> compile (fusion, planning, lowering), through
 * vki_llm_check against a CPU device's profile (lavapipe's: subgroups of 8, texel loads, a
 * 128 MiB binding limit), so no device is needed; then the file's tokenizer, when it loads,
 * encodes and decodes a short text. Any input must be accepted or refused with a
 * status and a message; nothing may read out of bounds, overflow or take unbounded time.
 *
 * The corpus is seeded with tiny valid models of each architecture (tests/data/fuzz_llm/, made
 * by tools/gen_tiny_models.py). Built with the sanitizer build (cmake -DVKI_FUZZ=ON, clang);
 * CTest runs it for a bounded time as fuzz_llm_load_bounded. By hand:
 *     build-asan/tests/fuzz_llm_load -max_total_time=600 /tmp/corpus tests/data/fuzz_llm
 */
#include "fuzz_profile.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vki_profile profile;
    if (!profile.name[0]) profile = cpu_profile();
    vki_gguf *g = NULL;
    char err[512];
    if (vki_gguf_open_memory(data, size, NULL, &g, err, sizeof err) != VKI_OK) return 0;
    // A small context keeps each run's cache arithmetic real but its plans small; the default
    // (the file's context_length, at most 4096) runs too, on every other input.
    vki_llm_desc desc = {.n_ctx = size % 2 ? 64 : 0, .n_batch = size % 3 ? 0 : 16};
    vki_status st = vki_llm_check(&profile, g, &desc, err, sizeof err);
    // A failure must say why.
    if (st != VKI_OK && !err[0]) __builtin_trap();
    // The vocabulary is read from the same file as the model; a tokenizer that loads encodes.
    vki_tokenizer *tok = NULL;
    if (vki_tokenizer_create(g, NULL, &tok, err, sizeof err) == VKI_OK) {
        int32_t ids[64];
        uint32_t n = 0;
        static const char text[] = "Hello <s> w\xc3\xb6rld\n\n  a";
        vki_tokenizer_encode(tok, text, sizeof text - 1, true, true, ids, 64, &n);
        char piece[64];
        for (uint32_t i = 0; i < n && i < 64; i++) vki_tokenizer_piece(tok, ids[i], piece, sizeof piece);
        vki_tokenizer_destroy(tok);
    }
    vki_gguf_close(g);
    return 0;
}
