/* libFuzzer target for the CLIP tokenizer: the merges-file parser, plain-text encoding and
 * A1111 prompts. Any input must succeed or fail with a status (and, where the call has one, a
 * message); what succeeds must keep the invariants the text encoder relies on. The first byte
 * picks the entry point; the rest is the input.
 *
 * Encoding uses the real vocabulary from the model cache ($VKI_MODEL_DIR, else
 * ~/.cache/vkinfer/models) when present, else a synthetic one (every pair of byte symbols), so
 * the target runs anywhere. Built like tools/fuzz_safetensors.c (clang, -fsanitize=fuzzer):
 *     build-asan/tests/fuzz_clip_tokenizer -max_total_time=600 -max_len=4096 /tmp/corpus
 */
#define _POSIX_C_SOURCE 200809L // mkstemp, fdopen
#include "vkinfer_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static vki_clip_tokenizer *tok;
static char scratch_path[64];

/* A new file from a mkstemp template (rewritten with the name): created exclusively, never
 * through a link someone planted in /tmp. */
static FILE *create_file(char *path)
{
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f && fd >= 0) close(fd);
    return f;
}

static void write_synthetic(char *path)
{
    FILE *f = create_file(path);
    if (!f) return;
    fputs("\"bpe_simple_vocab_16e6.txt#version: 0.2\n", f);
    char sym[256][3];
    int others = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? (unsigned)b : 0x100u + (unsigned)others++;
        if (cp < 0x80)
            sym[b][0] = (char)cp, sym[b][1] = 0;
        else
            sym[b][0] = (char)(0xC0 | cp >> 6), sym[b][1] = (char)(0x80 | (cp & 0x3F)),
            sym[b][2] = 0;
    }
    for (int i = 0; i < 48894; i++) fprintf(f, "%s %s\n", sym[i / 256], sym[i % 256]);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[4096];
    const char *dir = getenv("VKI_MODEL_DIR"), *home = getenv("HOME");
    if (dir && dir[0])
        snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt", dir);
    else
        snprintf(path, sizeof path, "%s/.cache/vkinfer/models/clip/bpe_simple_vocab_16e6.txt",
                 home ? home : ".");
    if (vki_clip_tokenizer_create(path, NULL, &tok, NULL, 0) != VKI_OK) {
        snprintf(path, sizeof path, "/tmp/vki_fuzz_clip_synthetic_XXXXXX");
        write_synthetic(path);
        if (vki_clip_tokenizer_create(path, NULL, &tok, NULL, 0) != VKI_OK) abort();
        remove(path);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0] % 4;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0; // the APIs take C strings: anything after a NUL is not seen
    char err[256] = "";
    if (mode == 0) {
        int32_t ids[64];
        uint32_t n = 0;
        if (vki_clip_tokenize(tok, text, ids, 64, &n) != VKI_OK) __builtin_trap();
        for (uint32_t i = 0; i < n && i < 64; i++)
            if (ids[i] < 0 || ids[i] >= VKI_CLIP_BOS) __builtin_trap(); // never a control token
    } else if (mode == 1 || mode == 2) {
        vki_clip_prompt p = {0};
        int32_t pad = mode == 1 ? VKI_CLIP_PAD_END : 0;
        vki_status st = vki_clip_prompt_encode(tok, text, pad, &p, err, sizeof err);
        if (st != VKI_OK) {
            if (!err[0] || p.ids || p.weights || p.n_windows) __builtin_trap();
        } else {
            if (p.n_windows < 1 || p.n_windows > 32) __builtin_trap();
            for (uint32_t w = 0; w < p.n_windows; w++) {
                const int32_t *id = p.ids + w * VKI_CLIP_CONTEXT;
                const float *wt = p.weights + w * VKI_CLIP_CONTEXT;
                if (id[0] != VKI_CLIP_BOS || wt[0] != 1.0f) __builtin_trap();
                int ends = 0;
                for (int i = 1; i < VKI_CLIP_CONTEXT; i++) {
                    if (!isfinite(wt[i]) || id[i] < 0 || id[i] == VKI_CLIP_BOS) __builtin_trap();
                    if (id[i] == VKI_CLIP_EOS) ends++;
                    if (ends && pad != VKI_CLIP_EOS && id[i] != VKI_CLIP_EOS && id[i] != pad)
                        __builtin_trap();
                }
                if (!ends) __builtin_trap();
            }
        }
        vki_clip_prompt_free(tok, &p);
    } else {
        snprintf(scratch_path, sizeof scratch_path, "/tmp/vki_fuzz_clip_XXXXXX");
        FILE *f = create_file(scratch_path);
        if (f) {
            fwrite(data + 1, 1, size - 1, f);
            fclose(f);
            vki_clip_tokenizer *t = NULL;
            vki_status st = vki_clip_tokenizer_create(scratch_path, NULL, &t, err, sizeof err);
            if (st != VKI_OK && (!err[0] || t)) __builtin_trap();
            vki_clip_tokenizer_destroy(t);
            remove(scratch_path);
        }
    }
    free(text);
    return 0;
}
