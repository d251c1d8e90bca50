/* Synthetic vision encoders: an mmproj GGUF file in memory with a released encoder's family,
 * shapes and storage types (F16 matrices, F32 norms and biases) and random weights, for
 * `vkinfer bench vision` where the real file cannot go, and for running llama.cpp's
 * llama-mtmd-cli on the very same file (--save). Speed depends on the shapes and types only;
 * the embeddings are noise. */
#include "gguf_writer_internal.h"

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
    // Qwen2-VL-2B's ViT: 32 layers of 1280 in 16 heads, patch 14, MLP 5120 (quick GELU), the
    // 2x2 merger to Qwen2-1.5B's width (1536). Its input keeps the image's aspect; image_size
    // is the bench's square (560 px, the converter's default: 40 x 40 patches, 400 tokens).
    {"qwen2vl-2b", "qwen2vl_merger", 560, 14, 1280, 32, 16, 5120, 1536, 2, 0.5f, 0.5f},
    // A tiny one of the same family for tests: 2 layers of 64 in 4 heads.
    {"qwen2vl-tiny", "qwen2vl_merger", 56, 14, 64, 2, 4, 128, 96, 2, 0.5f, 0.5f},
    // Qwen2.5-VL-3B's ViT: 32 layers of 1280 in 16 heads, gated MLP 3420 (SiLU), RMS norms,
    // windows of 112 px (4 x 4 merged patches) in all but layers 7, 15, 23, 31
    // (n_wa_pattern 8); the merger to Qwen2.5-3B's width (2048). At the bench's 560 px square:
    // 20 x 20 merged patches, 5 x 5 windows.
    {"qwen25vl-3b", "qwen2.5vl_merger", 560, 14, 1280, 32, 16, 3420, 2048, 2, 0.5f, 0.5f},
    // A tiny one for tests: 2 layers (the first within windows) of 64 in 4 heads.
    {"qwen25vl-tiny", "qwen2.5vl_merger", 56, 14, 64, 2, 4, 128, 96, 2, 0.5f, 0.5f},
};
#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

const char *vki_vision_synthetic_name(uint32_t index)
{
    return index < SHAPE_COUNT ? shapes[index].name : NULL;
}

enum { T_F32 = 0, T_F16 = 1 }; // ggml type codes

typedef vki_gguf_wtensor tensor;

/* F16: random sign and mantissa, magnitude 2^-7 .. 2^-3 (as the LLM writer's), so that
 * activations stay finite through the layers; F32: norm weights one, biases zero. */
static void fill(vki_gguf_writer *w, const tensor *t, const void *user)
{
    (void)user;
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    uint8_t *d = w->p + w->n;
    if (t->type == T_F32) {
        float v = strstr(t->name, ".bias") ? 0.0f : 1.0f;
        for (uint64_t i = 0; i < n; i++) memcpy(d + 4 * i, &v, 4);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h = vki__gw_random_f16(w);
        memcpy(d + 2 * i, &h, 2);
    }
}

static void put_kv(vki_gguf_writer *w, const void *user)
{
    const vision_shape *s = user;
    const bool qwen25 = strcmp(s->projector, "qwen2.5vl_merger") == 0;
    const bool qwen2vl = qwen25 || strcmp(s->projector, "qwen2vl_merger") == 0;
    const float mean[3] = {s->mean, s->mean, s->mean}, std[3] = {s->std, s->std, s->std};
    vki__gw_kv_str(w, "general.architecture", "clip");
    vki__gw_kv_str(w, "general.name", s->name);
    vki__gw_kv_u32(w, "general.alignment", 32);
    vki__gw_kv_u32(w, "general.file_type", 1); // mostly F16
    vki__gw_kv_bool(w, "clip.has_vision_encoder", true);
    vki__gw_kv_bool(w, "clip.has_text_encoder", false);
    vki__gw_kv_str(w, "clip.projector_type", s->projector);
    // SigLIP's gelu_pytorch_tanh; Qwen2-VL's quick GELU; Qwen2.5-VL's SiLU (clip.use_silu)
    vki__gw_kv_bool(w, "clip.use_gelu", !qwen2vl);
    vki__gw_kv_u32(w, "clip.vision.image_size", s->image_size);
    vki__gw_kv_u32(w, "clip.vision.patch_size", s->patch_size);
    vki__gw_kv_u32(w, "clip.vision.embedding_length", s->width);
    vki__gw_kv_u32(w, "clip.vision.feed_forward_length", s->n_ff);
    vki__gw_kv_u32(w, "clip.vision.projection_dim", s->n_embd);
    vki__gw_kv_u32(w, "clip.vision.block_count", s->n_layer);
    vki__gw_kv_u32(w, "clip.vision.attention.head_count", s->n_head);
    vki__gw_kv_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    vki__gw_kv_u32(w, qwen2vl ? "clip.vision.spatial_merge_size" : "clip.vision.projector.scale_factor", s->scale);
    vki__gw_kv_f32_array(w, "clip.vision.image_mean", mean, 3);
    vki__gw_kv_f32_array(w, "clip.vision.image_std", std, 3);
    vki__gw_kv_bool(w, "clip.use_silu", qwen25);
    if (qwen25) {
        vki__gw_kv_u32(w, "clip.vision.n_wa_pattern", s->n_layer < 8 ? 2 : 8);
        vki__gw_kv_u32(w, "clip.vision.window_size", 112);
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
    bool gemma = strcmp(s->projector, "gemma3") == 0, qwen25 = strcmp(s->projector, "qwen2.5vl_merger") == 0;
    bool qwen2vl = qwen25 || strcmp(s->projector, "qwen2vl_merger") == 0;
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
    if (qwen2vl) { // the Conv3d's second frame; rotary positions, no bias
        T(T_F16, s->patch_size, s->patch_size, 3, w, "v.patch_embd.weight.1");
    } else {
        T(T_F32, w, 1, 1, 1, "v.patch_embd.bias");
        T(T_F16, w, (uint64_t)side * side, 1, 1, "v.position_embd.weight");
    }
    static const char *const mats[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
    for (uint32_t l = 0; l < s->n_layer; l++) { // Qwen2.5-VL: RMS norms (no bias), gated MLP
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ln1.weight", l);
        if (!qwen25) T(T_F32, w, 1, 1, 1, "v.blk.%u.ln1.bias", l);
        for (int m = 0; m < 4; m++) {
            T(T_F16, w, w, 1, 1, "v.blk.%u.%s.weight", l, mats[m]);
            T(T_F32, w, 1, 1, 1, "v.blk.%u.%s.bias", l, mats[m]);
        }
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ln2.weight", l);
        if (!qwen25) T(T_F32, w, 1, 1, 1, "v.blk.%u.ln2.bias", l);
        if (qwen25) {
            T(T_F16, w, s->n_ff, 1, 1, "v.blk.%u.ffn_gate.weight", l);
            T(T_F32, s->n_ff, 1, 1, 1, "v.blk.%u.ffn_gate.bias", l);
        }
        T(T_F16, w, s->n_ff, 1, 1, "v.blk.%u.ffn_up.weight", l);
        T(T_F32, s->n_ff, 1, 1, 1, "v.blk.%u.ffn_up.bias", l);
        T(T_F16, s->n_ff, w, 1, 1, "v.blk.%u.ffn_down.weight", l);
        T(T_F32, w, 1, 1, 1, "v.blk.%u.ffn_down.bias", l);
    }
    T(T_F32, w, 1, 1, 1, "v.post_ln.weight");
    if (!qwen25) T(T_F32, w, 1, 1, 1, "v.post_ln.bias");
    if (qwen2vl) { // the merger: 2x2 patches of w, GELU, to n_embd
        uint64_t m = (uint64_t)w * s->scale * s->scale;
        T(T_F16, m, m, 1, 1, "mm.0.weight");
        T(T_F32, m, 1, 1, 1, "mm.0.bias");
        T(T_F16, m, s->n_embd, 1, 1, "mm.2.weight");
        T(T_F32, s->n_embd, 1, 1, 1, "mm.2.bias");
    } else if (gemma) {
        T(T_F32, w, 1, 1, 1, "mm.soft_emb_norm.weight");
        T(T_F16, s->n_embd, w, 1, 1, "mm.input_projection.weight"); // PyTorch's x @ W layout
    } else {
        T(T_F16, (uint64_t)w * s->scale * s->scale, s->n_embd, 1, 1, "mm.model.fc.weight");
    }
#undef T
    vki_status st = vki__gguf_write(ts, count, qwen25 ? 22 : 20, put_kv, fill, s, seed, out_bytes, out_size);
    free(ts);
    return st;
}
