/* Synthetic vision encoders: an mmproj GGUF file in memory with a released encoder's family,
 * shapes and storage types (F16 matrices, F32 norms and biases) and random weights, for
 * `vkinfer bench vision` where the real file cannot go, and for running llama.cpp's
 * llama-mtmd-cli on the very same file (--save). Speed depends on the shapes and types only;
 * the embeddings are noise. */
#include "vkinfer_models.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vision_shape {
    const char *name;
    const char *projector; // clip.projector_type
    uint32_t image_size, patch_size, width, n_layer, n_head, n_ff, n_embd, scale;
    float mean, std;       // clip.vision.image_mean / image_std, the same for each channel
} vision_shape;

static const vision_shape shapes[] = {
    // SmolVLM-256M-Instruct: SigLIP base at 512 px, patch 16 (32 x 32 patches), pixel shuffle by
    // 4 to 64 tokens of SmolLM2-135M's width (576), so that the text model
    // `bench llm --synthetic smollm2-135m --save` writes takes its embeddings.
    {"smolvlm-256m", "idefics3", 512, 16, 768, 12, 12, 3072, 576, 4, 0.5f, 0.5f},
    // Gemma 3 4B's SigLIP-so400m: 896 px, patch 14 (64 x 64 patches), 27 layers of 1152,
    // pooled by 4 to 256 tokens of Gemma 3 4B's width (2560).
    {"gemma3-4b", "gemma3", 896, 14, 1152, 27, 16, 4304, 2560, 4, 0.5f, 0.5f},
    // A tiny encoder of SmolVLM's family for tests: 64 px, patch 16, 2 layers of 64.
    {"smolvlm-tiny", "idefics3", 64, 16, 64, 2, 4, 128, 96, 2, 0.5f, 0.5f},
};
#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

const char *vki_vision_synthetic_name(uint32_t index)
{
    return index < SHAPE_COUNT ? shapes[index].name : NULL;
}

enum { T_F32 = 0, T_F16 = 1 };                            // ggml type codes
enum { G_U32 = 4, G_F32 = 6, G_BOOL = 7, G_STR = 8, G_ARR = 9 }; // GGUF value types

typedef struct writer {
    uint8_t *p; // NULL while measuring
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
static void kv_str(writer *w, const char *k, const char *v) { put_str(w, k), put_u32(w, G_STR), put_str(w, v); }
static void kv_u32(writer *w, const char *k, uint32_t v) { put_str(w, k), put_u32(w, G_U32), put_u32(w, v); }
static void kv_f32(writer *w, const char *k, float v) { put_str(w, k), put_u32(w, G_F32), put(w, &v, 4); }
static void kv_bool(writer *w, const char *k, bool v)
{
    uint8_t b = v;
    put_str(w, k), put_u32(w, G_BOOL), put(w, &b, 1);
}
static void kv_rgb(writer *w, const char *k, float v)
{
    put_str(w, k), put_u32(w, G_ARR), put_u32(w, G_F32), put_u64(w, 3);
    for (int i = 0; i < 3; i++) put(w, &v, 4);
}

static uint64_t next(writer *w) // xorshift64*
{
    w->rng ^= w->rng >> 12, w->rng ^= w->rng << 25, w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Dull;
}

typedef struct tensor {
    char name[48];
    uint32_t type, n_dims;
    uint64_t ne[4], bytes, offset;
} tensor;

/* F16: random sign and mantissa, magnitude 2^-7 .. 2^-3 (as the LLM writer's), so that
 * activations stay finite through the layers; F32: norm weights one, biases zero. */
static void fill(writer *w, const tensor *t)
{
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    uint8_t *d = w->p + w->n;
    if (t->type == T_F32) {
        float v = strstr(t->name, ".bias") ? 0.0f : 1.0f;
        for (uint64_t i = 0; i < n; i++) memcpy(d + 4 * i, &v, 4);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = next(w);
        uint16_t h = (uint16_t)((r & 0x8000) | ((8 + (r >> 16) % 4) << 10) | ((r >> 20) & 0x3FF));
        memcpy(d + 2 * i, &h, 2);
    }
}

vki_status vki_vision_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                                char *out_error, size_t error_size)
{
    if (!out_bytes || !out_size) return VKI_ERROR_INVALID_ARGUMENT;
    *out_bytes = NULL;
    *out_size = 0;
    const vision_shape *s = NULL;
    for (size_t i = 0; i < SHAPE_COUNT; i++)
        if (name && strcmp(shapes[i].name, name) == 0) s = &shapes[i];
    if (!s) {
        if (out_error && error_size) {
            int len = snprintf(out_error, error_size, "no synthetic vision encoder '%s' (", name ? name : "");
            for (size_t i = 0; i < SHAPE_COUNT && len >= 0 && (size_t)len < error_size; i++)
                len += snprintf(out_error + len, error_size - (size_t)len, "%s%s", i ? ", " : "", shapes[i].name);
            if (len >= 0 && (size_t)len < error_size) snprintf(out_error + len, error_size - (size_t)len, ")");
        }
        return VKI_ERROR_NOT_FOUND;
    }
    bool gemma = strcmp(s->projector, "gemma3") == 0;
    uint32_t side = s->image_size / s->patch_size, w = s->width, count = 0;
    tensor *ts = calloc(8 + 16 * (size_t)s->n_layer, sizeof *ts);
    if (!ts) return VKI_ERROR_OUT_OF_HOST_MEMORY;
#define T(TYPE, NE0, NE1, NE2, NE3, ...)                                                           \
    do {                                                                                        \
        tensor *t = &ts[count++];                                                              \
        snprintf(t->name, sizeof t->name, __VA_ARGS__);                                        \
        t->type = (TYPE), t->ne[0] = (NE0), t->ne[1] = (NE1), t->ne[2] = (NE2), t->ne[3] = (NE3); \
        t->n_dims = (NE3) > 1 ? 4 : (NE2) > 1 ? 3 : (NE1) > 1 ? 2 : 1;                        \
        t->bytes = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] * (t->type == T_F16 ? 2 : 4);     \
    } while (0)
    T(T_F16, s->patch_size, s->patch_size, 3, w, "v.patch_embd.weight");
    T(T_F32, w, 1, 1, 1, "v.patch_embd.bias");
    T(T_F16, w, (uint64_t)side * side, 1, 1, "v.position_embd.weight");
    static const char *const mats[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
    for (uint32_t l = 0; l < s->n_layer; l++) {
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ln1.weight", l);
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ln1.bias", l);
        for (int m = 0; m < 4; m++) {
            T(T_F16, w, w, 1, 1, "v.blk.%u.%s.weight", l, mats[m]);
            T(T_F32, w, 1, 1, 1, "v.blk.%u.%s.bias", l, mats[m]);
        }
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ln2.weight", l);
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ln2.bias", l);
        T(T_F16, w, s->n_ff, 1, 1, "v.blk.%u.ffn_up.weight", l);
        T(T_F32, s->n_ff, 1, 1, 1, "v.blk.%u.ffn_up.bias", l);
        T(T_F16, s->n_ff, w, 1, 1, "v.blk.%u.ffn_down.weight", l);
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ffn_down.bias", l);
    }
    T(T_F32, w, 1, 1, 1, "v.post_ln.weight");
    T(T_F32, w, 1, 1, 1, "v.post_ln.bias");
    if (gemma) {
        T(T_F32, w, 1, 1, 1, "mm.soft_emb_norm.weight");
        T(T_F16, s->n_embd, w, 1, 1, "mm.input_projection.weight"); // PyTorch's x @ W layout
    } else {
        T(T_F16, (uint64_t)w * s->scale * s->scale, s->n_embd, 1, 1, "mm.model.fc.weight");
    }
#undef T
    uint64_t data = 0;
    for (uint32_t i = 0; i < count; i++) {
        ts[i].offset = data;
        data = (data + ts[i].bytes + 31) / 32 * 32;
    }
    writer wr = {.rng = seed ? seed : 0x9E3779B97F4A7C15ull};
    for (int pass = 0; pass < 2; pass++) { // measure, then write
        wr.n = 0;
        put_u32(&wr, 0x46554747); // "GGUF"
        put_u32(&wr, 3);
        put_u64(&wr, count);
        put_u64(&wr, 20);
        kv_str(&wr, "general.architecture", "clip");
        kv_str(&wr, "general.name", s->name);
        kv_u32(&wr, "general.alignment", 32);
        kv_u32(&wr, "general.file_type", 1); // mostly F16
        kv_bool(&wr, "clip.has_vision_encoder", true);
        kv_bool(&wr, "clip.has_text_encoder", false);
        kv_str(&wr, "clip.projector_type", s->projector);
        kv_bool(&wr, "clip.use_gelu", true); // SigLIP's gelu_pytorch_tanh
        kv_u32(&wr, "clip.vision.image_size", s->image_size);
        kv_u32(&wr, "clip.vision.patch_size", s->patch_size);
        kv_u32(&wr, "clip.vision.embedding_length", w);
        kv_u32(&wr, "clip.vision.feed_forward_length", s->n_ff);
        kv_u32(&wr, "clip.vision.projection_dim", s->n_embd);
        kv_u32(&wr, "clip.vision.block_count", s->n_layer);
        kv_u32(&wr, "clip.vision.attention.head_count", s->n_head);
        kv_f32(&wr, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
        kv_u32(&wr, "clip.vision.projector.scale_factor", s->scale);
        kv_rgb(&wr, "clip.vision.image_mean", s->mean);
        kv_rgb(&wr, "clip.vision.image_std", s->std);
        kv_bool(&wr, "clip.use_silu", false);
        for (uint32_t i = 0; i < count; i++) {
            put_str(&wr, ts[i].name);
            put_u32(&wr, ts[i].n_dims);
            for (uint32_t d = 0; d < ts[i].n_dims; d++) put_u64(&wr, ts[i].ne[d]);
            put_u32(&wr, ts[i].type);
            put_u64(&wr, ts[i].offset);
        }
        size_t head = (wr.n + 31) / 32 * 32;
        if (pass == 0) {
            wr.p = calloc(1, head + data);
            if (!wr.p) {
                free(ts);
                return VKI_ERROR_OUT_OF_HOST_MEMORY;
            }
            continue;
        }
        for (uint32_t i = 0; i < count; i++) {
            wr.n = head + ts[i].offset;
            fill(&wr, &ts[i]);
        }
        *out_size = head + data;
    }
    free(ts);
    *out_bytes = wr.p;
    return VKI_OK;
}
