/* The vision encoders of llama.cpp's multimodal projector files as op builders: a ViT (SigLIP
 * or CLIP: patch embedding, learned positions, pre-norm blocks with layer norm and an MLP,
 * attention both ways with no mask, a final layer norm; Qwen2-VL's: 2-D rotary positions
 * instead of learned ones) and the family's projector. Tensor
 * names are the mmproj file's (v.*, mm.*); shapes in ggml order.
 *
 * The patch embedding is a convolution whose stride is its kernel: each output reads one patch
 * and no two share a pixel, so it is exactly a matrix product of the weight [patch^2 * 3,
 * width] (the file's [patch, patch, 3, width] read as one matrix) with the image cut into
 * patches (one column per patch, in the weight's order: x fastest, then y, then channel), which
 * vision.c does on the host while it preprocesses. */
#include "vision_internal.h"

#include <math.h>
#include <stdio.h>

static vki_tensor T(vki_vision *v, const char *name, uint32_t ndim, const int64_t *ne)
{
    return vki_weights_tensor(v->weights, v->prog, name, ndim, ne, false, true);
}

/* t as F32: biases and norms stored in F16 are added to F32 activations. */
static vki_tensor f32(vki_vision *v, vki_tensor t)
{
    vki_tensor_info info;
    vki_graph *g = vki_program_graph(v->prog);
    if (!vki_tensor_get_info(g, t, &info) || info.dtype == VKI_DTYPE_F32) return t;
    return vki_cast(g, t, VKI_DTYPE_F32);
}

/* y = W x + b for block il's `what` (weight [k, n], bias [n]). */
static vki_tensor linear(vki_vision *v, vki_tensor x, uint32_t il, const char *what, int64_t k, int64_t n)
{
    char wn[96], bn[96];
    snprintf(wn, sizeof wn, "v.blk.%u.%s.weight", il, what);
    snprintf(bn, sizeof bn, "v.blk.%u.%s.bias", il, what);
    vki_graph *g = vki_program_graph(v->prog);
    vki_tensor y = vki_matmul(g, vki_weights_linear(v->weights, v->prog, wn, k, n), x);
    return vki_add(g, y, f32(v, T(v, bn, 1, &n)));
}

/* The layer norm at prefix (Qwen2.5-VL's RMS norm: a weight, no bias). */
static vki_tensor norm(vki_vision *v, vki_tensor x, const char *prefix)
{
    char wn[96], bn[96];
    snprintf(wn, sizeof wn, "%s.weight", prefix);
    snprintf(bn, sizeof bn, "%s.bias", prefix);
    int64_t w = v->info.width;
    if (v->rms_norm) return vki_rms_norm(vki_program_graph(v->prog), x, f32(v, T(v, wn, 1, &w)), v->eps);
    return vki_layer_norm(vki_program_graph(v->prog), x, T(v, wn, 1, &w), T(v, bn, 1, &w), v->eps);
}

/* Qwen2-VL's 2-D rotary positions (transformers' apply_rotary_pos_emb_vision): of each head's
 * d dims, pairs (i, i + d/2) rotate by the patch's row for i < d/4 and by its column for
 * d/4 <= i < d/2, at frequencies 10000^(-4j/d) for j = i mod d/4. x [d, n_head, n_pos];
 * v->pos holds the row and column streams. */
static vki_tensor rope2d(vki_vision *v, vki_tensor x)
{
    const uint32_t d = v->info.width / v->info.n_head;
    const uint32_t sections[4] = {d / 4, d / 4, 0, 0};
    return vki_rope_multi(vki_program_graph(v->prog), x, v->pos, d, VKI_ROPE_VISION, sections, 10000.0f, 1.0f);
}

/* One pre-norm block: x + attn(ln1(x)), then + mlp(ln2(.)). x F32 [width, n]. */
static vki_tensor block(vki_vision *v, vki_tensor x, uint32_t il)
{
    vki_graph *g = vki_program_graph(v->prog);
    const vki_vision_info *in = &v->info;
    int64_t w = in->width, n = v->n_pos, hd = w / in->n_head;
    char name[64];
    snprintf(name, sizeof name, "v.blk.%u.ln1", il);
    vki_tensor h = norm(v, x, name);
    const int64_t heads[3] = {hd, in->n_head, n};
    vki_tensor q = vki_reshape(g, linear(v, h, il, "attn_q", w, w), 3, heads);
    vki_tensor k = vki_reshape(g, linear(v, h, il, "attn_k", w, w), 3, heads);
    vki_tensor val = vki_reshape(g, linear(v, h, il, "attn_v", w, w), 3, heads);
    if (v->info.projector == VKI_PROJECTOR_QWEN2VL) {
        q = rope2d(v, q);
        k = rope2d(v, k);
    }
    // Every patch sees every other (no mask, not causal), or in Qwen2.5-VL's window layers
    // only its window's: the patches come window by window, a window's run [s, e) bounded by
    // v->windows (vision_qwen2vl.c), so that the kernel reads only that run.
    const float scale = 1.0f / sqrtf((float)hd);
    const bool windowed = v->window && v->n_wa_pattern && (il + 1) % v->n_wa_pattern != 0;
    vki_tensor a = windowed ? vki_attention_pos(g, q, k, val, v->windows, scale, 4 * v->window * v->window)
                            : vki_attention(g, q, k, val, (vki_tensor){0}, scale, false);
    x = vki_add(g, x, linear(v, vki_reshape(g, a, 2, (int64_t[2]){w, n}), il, "attn_out", w, w));
    snprintf(name, sizeof name, "v.blk.%u.ln2", il);
    h = norm(v, x, name);
    int64_t ff = v->n_ff;
    if (v->gated) // Qwen2.5-VL: down(act(gate(h)) * up(h))
        h = vki_mul(g, vki_activate(g, linear(v, h, il, "ffn_gate", w, ff), v->act), linear(v, h, il, "ffn_up", w, ff));
    else
        h = vki_activate(g, linear(v, h, il, v->ffn_swapped ? "ffn_down" : "ffn_up", w, ff), v->act);
    return vki_add(g, x, linear(v, h, il, v->ffn_swapped ? "ffn_up" : "ffn_down", ff, w));
}

/* The ViT: patches F32 [patch^2 * 3, n] -> F32 [width, n_pos] after the last block (and the
 * final norm where the file has one: SigLIP's; LLaVA's files leave CLIP's out, as its features
 * come from a layer before the last). */
static vki_tensor vit(vki_vision *v, vki_tensor patches)
{
    vki_graph *g = vki_program_graph(v->prog);
    const vki_vision_info *in = &v->info;
    int64_t w = in->width, p = in->patch_size;
    vki_tensor kernel = vki_reshape(g, T(v, "v.patch_embd.weight", 4, (int64_t[4]){p, p, 3, w}), 2,
                                    (int64_t[2]){p * p * 3, w});
    vki_tensor x = vki_matmul(g, kernel, patches);
    vki_tensor bias = vki_weights_tensor(v->weights, v->prog, "v.patch_embd.bias", 1, &w, true, true);
    if (bias.id) x = vki_add(g, x, f32(v, bias)); // CLIP's patch embedding has none
    if (v->class_token)
        x = vki_concat(g, f32(v, vki_reshape(g, T(v, "v.class_embd", 1, &w), 2, (int64_t[2]){w, 1})), x, 1);
    x = vki_add(g, x, f32(v, T(v, "v.position_embd.weight", 2, (int64_t[2]){w, v->n_pos})));
    if (v->class_token) x = norm(v, x, "v.pre_ln");
    for (uint32_t il = 0; il < in->n_layer && vki_weights_status(v->weights) == VKI_OK; il++)
        x = block(v, x, il);
    if (!v->class_token || vki_weights_has(v->weights, "v.post_ln.weight")) x = norm(v, x, "v.post_ln");
    return x;
}

/* LLaVA: the patches' features (the class token's column dropped), then two linears with
 * GELU between (transformers' LlavaMultiModalProjector, "gelu": the erf form). */
static vki_tensor mlp(vki_vision *v, vki_tensor x)
{
    vki_graph *g = vki_program_graph(v->prog);
    int64_t w = v->info.width, hid = v->n_mm, e = v->info.n_embd;
    x = vki_view(g, x, 2, (int64_t[2]){w, v->n_tokens}, NULL, (uint64_t)w * sizeof(float));
    vki_tensor h = vki_matmul(g, vki_weights_linear(v->weights, v->prog, "mm.0.weight", w, hid), x);
    h = vki_gelu(g, vki_add(g, h, f32(v, T(v, "mm.0.bias", 1, &hid))));
    h = vki_matmul(g, vki_weights_linear(v->weights, v->prog, "mm.2.weight", hid, e), h);
    return vki_add(g, h, f32(v, T(v, "mm.2.bias", 1, &e)));
}

/* Gemma 3: average pooling of the patch grid by scale x scale (a product with the fixed
 * averaging matrix `pool`: each token's column holds 1 / scale^2 at its patches), Gemma's RMS
 * norm (the file's weight is already 1 + w), then the projection, stored [n_embd, width]
 * (PyTorch's x @ W layout) and so transposed into a product's [width, n_embd]. */
static vki_tensor gemma3(vki_vision *v, vki_tensor x)
{
    vki_graph *g = vki_program_graph(v->prog);
    int64_t w = v->info.width, e = v->info.n_embd;
    vki_tensor rows = vki_copy(g, vki_transpose(g, x), 0); // [n, width]: patches along rows
    vki_tensor y = vki_matmul(g, rows, v->pool);           // [width, n_tokens]
    y = vki_rms_norm(g, y, T(v, "mm.soft_emb_norm.weight", 1, &w), v->eps);
    // F32: a device without 16-bit storage reads an F16 weight but writes no F16.
    vki_tensor proj = vki_copy(g, vki_transpose(g, T(v, "mm.input_projection.weight", 2, (int64_t[2]){e, w})),
                               VKI_DTYPE_F32);
    return vki_matmul(g, proj, y);
}

/* Idefics3 / SmolVLM: pixel shuffle (each scale x scale square of patches becomes one token of
 * scale^2 * width features, in the order transformers' Idefics3Connector.pixel_shuffle gives),
 * then one linear without bias. The shuffle as views: with s = scale and the patch grid H x W
 * (y slowest), [w*s, W/s, H] swaps its last two dims, regroups rows as [w*s*s, H/s, W/s] and
 * swaps back. */
static vki_tensor idefics3(vki_vision *v, vki_tensor x)
{
    vki_graph *g = vki_program_graph(v->prog);
    int64_t w = v->info.width, s = v->scale, side = v->n_side, e = v->info.n_embd;
    const uint32_t swap12[VKI_MAX_DIMS] = {0, 2, 1, 3};
    x = vki_reshape(g, x, 3, (int64_t[3]){w * s, side / s, side});
    x = vki_copy(g, vki_permute(g, x, swap12), 0);
    x = vki_reshape(g, x, 3, (int64_t[3]){w * s * s, side / s, side / s});
    x = vki_copy(g, vki_permute(g, x, swap12), 0);
    x = vki_reshape(g, x, 2, (int64_t[2]){w * s * s, v->n_tokens});
    return vki_matmul(g, vki_weights_linear(v->weights, v->prog, "mm.model.fc.weight", w * s * s, e), x);
}

/* Qwen2-VL: the Conv3d patch embedding over two frames of the same still image is the sum of
 * its two temporal kernels applied to the image once (no bias); no learned positions (the
 * blocks rotate q and k instead); the ViT's blocks; then the merger: ln_q (the file's
 * v.post_ln) per patch, each run of 4 consecutive patches (one 2x2 window: the patches come in
 * that order) as one column of 4 * width, and an MLP with GELU (nn.GELU: the erf form).
 * Qwen2.5-VL: the same with RMS norms (ln_q too), gated MLPs and window layers (block()). */
vki_tensor vki__qwen2vl_build(vki_vision *v)
{
    vki_graph *g = vki_program_graph(v->prog);
    const vki_vision_info *in = &v->info;
    int64_t w = in->width, p = in->patch_size, n = v->n_pos, m = 4 * w, e = in->n_embd;
    const int64_t kne[4] = {p, p, 3, w}, mat[2] = {p * p * 3, w};
    v->patches = vki_program_input(v->prog, VKI_DTYPE_F32, 2, (int64_t[2]){p * p * 3, n}, "patches");
    v->pos = vki_program_input(v->prog, VKI_DTYPE_I32, 2, (int64_t[2]){n, 4}, "positions");
    const bool windows = v->window && v->n_wa_pattern > 1; // some layer attends within windows
    v->windows = (vki_tensor){0};
    if (windows) v->windows = vki_program_input(v->prog, VKI_DTYPE_I32, 2, (int64_t[2]){n, 2}, "windows");
    vki_tensor k0 = f32(v, T(v, "v.patch_embd.weight", 4, kne)), k1 = f32(v, T(v, "v.patch_embd.weight.1", 4, kne));
    vki_tensor kernel = vki_reshape(g, vki_add(g, k0, k1), 2, mat);
    vki_tensor x = vki_matmul(g, kernel, v->patches);
    for (uint32_t il = 0; il < in->n_layer && vki_weights_status(v->weights) == VKI_OK; il++)
        x = block(v, x, il);
    x = vki_reshape(g, norm(v, x, "v.post_ln"), 2, (int64_t[2]){m, n / 4});
    vki_tensor h = vki_matmul(g, vki_weights_linear(v->weights, v->prog, "mm.0.weight", m, m), x);
    h = vki_gelu(g, vki_add(g, h, f32(v, T(v, "mm.0.bias", 1, &m))));
    h = vki_matmul(g, vki_weights_linear(v->weights, v->prog, "mm.2.weight", m, e), h);
    return vki_add(g, h, f32(v, T(v, "mm.2.bias", 1, &e)));
}

void vki__vision_build(vki_vision *v)
{
    const int64_t n = (int64_t)v->n_side * v->n_side, p = v->info.patch_size;
    v->patches = vki_program_input(v->prog, VKI_DTYPE_F32, 2, (int64_t[2]){p * p * 3, n}, "patches");
    if (v->info.projector == VKI_PROJECTOR_GEMMA3)
        v->pool = vki_program_input(v->prog, VKI_DTYPE_F32, 2, (int64_t[2]){n, v->n_tokens}, "pool");
    vki_tensor x = vit(v, v->patches);
    switch (v->info.projector) {
    case VKI_PROJECTOR_GEMMA3: x = gemma3(v, x); break;
    case VKI_PROJECTOR_IDEFICS3: x = idefics3(v, x); break;
    case VKI_PROJECTOR_MLP: x = mlp(v, x); break;
    default: x = (vki_tensor){0}; break; // vision.c refuses the others before building
    }
    v->out = x;
    vki_program_output(v->prog, x, "embd");
}
