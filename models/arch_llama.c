/* Decoder-only transformer architectures, as graphs: the llama family (Llama 2/3, SmolLM2,
 * TinyLlama, Mistral; Qwen2 with QKV biases and NeoX rope) and Gemma 3 (QK-norm, pre- and
 * post-norms, GeGLU, scaled embeddings, interleaved sliding-window and global layers). Each
 * forward reads like the paper's; llm.c owns weights, the cache and the plans. */
#include "llm_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- Metadata -------------------------------------------------------------------------------- */

static vki_status get_u32(vki_gguf *f, const char *arch, const char *key, bool required,
                          uint32_t *out, char *err, size_t n)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    vki_status st = vki_gguf_get_u32(f, full, out);
    if (st == VKI_ERROR_NOT_FOUND && !required) return VKI_OK;
    if (st) snprintf(err, n, "model metadata %s: %s (%s)", full, vki_status_string(st),
                     vki_gguf_last_error(f));
    return st;
}

static vki_status get_f32(vki_gguf *f, const char *arch, const char *key, float *out, char *err,
                          size_t n)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    vki_status st = vki_gguf_get_f32(f, full, out);
    if (st == VKI_ERROR_NOT_FOUND) return VKI_OK; // optional: the caller set the default
    if (st) snprintf(err, n, "model metadata %s: %s (%s)", full, vki_status_string(st),
                     vki_gguf_last_error(f));
    return st;
}

/* The keys every decoder shares, with llama.cpp's defaults for the optional ones. */
static vki_status common_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    const char *a = hp->arch;
    VKI_TRY(get_u32(f, a, "block_count", true, &hp->n_layer, err, n));
    VKI_TRY(get_u32(f, a, "embedding_length", true, &hp->n_embd, err, n));
    VKI_TRY(get_u32(f, a, "feed_forward_length", true, &hp->n_ff, err, n));
    VKI_TRY(get_u32(f, a, "attention.head_count", true, &hp->n_head, err, n));
    hp->n_head_kv = hp->n_head;
    VKI_TRY(get_u32(f, a, "attention.head_count_kv", false, &hp->n_head_kv, err, n));
    hp->n_ctx_train = 2048;
    VKI_TRY(get_u32(f, a, "context_length", false, &hp->n_ctx_train, err, n));
    hp->head_dim = hp->n_head ? hp->n_embd / hp->n_head : 0; // llm.c checks what was read
    VKI_TRY(get_u32(f, a, "attention.key_length", false, &hp->head_dim, err, n));
    hp->n_rot = hp->head_dim;
    VKI_TRY(get_u32(f, a, "rope.dimension_count", false, &hp->n_rot, err, n));
    hp->eps = 1e-5f;
    VKI_TRY(get_f32(f, a, "attention.layer_norm_rms_epsilon", &hp->eps, err, n));
    hp->rope_base = 10000.0f;
    VKI_TRY(get_f32(f, a, "rope.freq_base", &hp->rope_base, err, n));
    float factor = 1.0f;
    VKI_TRY(get_f32(f, a, "rope.scaling.factor", &factor, err, n));
    hp->rope_scale = factor > 0 ? 1.0f / factor : 1.0f;
    hp->rope_base_local = hp->rope_base;
    hp->attn_scale = hp->head_dim ? 1.0f / sqrtf((float)hp->head_dim) : 0.0f;
    return VKI_OK;
}

static vki_status llama_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    VKI_TRY(common_hparams(f, hp, err, n));
    // GGUF llama weights have Q and K permuted for pair-wise rotation; Qwen2 keeps NeoX halves.
    hp->rope_mode = strcmp(hp->arch, "qwen2") == 0 ? VKI_ROPE_NEOX : VKI_ROPE_NORMAL;
    return vki_llm_expert_hparams(f, hp, err, n); // Mixtral: llama with experts
}

static vki_status gemma3_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    VKI_TRY(common_hparams(f, hp, err, n));
    hp->rope_mode = VKI_ROPE_NEOX;
    hp->eps = 1e-6f;
    VKI_TRY(get_f32(f, hp->arch, "attention.layer_norm_rms_epsilon", &hp->eps, err, n));
    hp->rope_base = 1000000.0f;
    VKI_TRY(get_f32(f, hp->arch, "rope.freq_base", &hp->rope_base, err, n));
    hp->rope_base_local = 10000.0f; // Gemma 3's local layers: fixed by the architecture
    hp->window = 512;
    VKI_TRY(get_u32(f, hp->arch, "attention.sliding_window", false, &hp->window, err, n));
    hp->swa_pattern = 6;
    // Gemma 3 scales queries by query_pre_attn_scalar^-1/2, which GGUF does not carry: it is
    // the head width in every size but 27B (62 layers), where it is n_embd / n_head (168, not
    // the heads' 128), as in Google's reference configuration and llama.cpp.
    if (hp->n_layer == 62 && hp->n_head)
        hp->attn_scale = 1.0f / sqrtf((float)hp->n_embd / (float)hp->n_head);
    return VKI_OK;
}

/* ---- Forward passes ---------------------------------------------------------------------------- */

#define W vki_llm_layer_weight

static int64_t hd_total(const vki_llm_hparams *hp) { return (int64_t)hp->head_dim * hp->n_head; }

static vki_tensor reshape3(vki_graph *g, vki_tensor t, int64_t a, int64_t b, int64_t c)
{
    return vki_reshape(g, t, 3, (int64_t[3]){a, b, c});
}

/* Projection with an optional bias (Qwen2), fused into the matmul by the compiler. */
static vki_tensor linear(vki_llm_build *b, vki_tensor x, const char *wname, const char *bname,
                         uint32_t il, int64_t k, int64_t m)
{
    vki_tensor y = vki_matmul(b->g, W(b, wname, il, k, m, false), x);
    vki_tensor bias = bname ? W(b, bname, il, m, -1, true) : (vki_tensor){0};
    return bias.id ? vki_add(b->g, y, bias) : y;
}

/* Rows [first, first + heads * hd) of the product y [total, n_q] as [hd, heads, n_q] (no copy). */
static vki_tensor heads_of(vki_graph *g, vki_tensor y, int64_t first, int64_t hd, int64_t heads,
                           int64_t total, int64_t nq)
{
    return vki_view(g, y, 3, (int64_t[3]){hd, heads, nq},
                    (uint64_t[3]){4, 4 * (uint64_t)hd, 4 * (uint64_t)total}, 4 * (uint64_t)first);
}

/* The q, k and v projections of layer il (q [hd, n_head, n_q], k [hd, n_head_kv, n_q], v
 * [hd * n_head_kv, n_q]): views of one product where the file's weights join (one mat-vec
 * instead of three when decoding; returned, else {0}), else three products (and always with
 * Qwen2's biases, which stay fused in their products). */
static vki_tensor project_qkv(vki_llm_build *b, uint32_t il, vki_tensor h, vki_tensor *q,
                              vki_tensor *k, vki_tensor *v)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t hd = hp->head_dim, nq = b->n_q, e = hp->n_embd;
    const int64_t rows[3] = {hd * hp->n_head, hd * hp->n_head_kv, hd * hp->n_head_kv};
    static const char *const names[3] = {"blk.%u.attn_q.weight", "blk.%u.attn_k.weight",
                                         "blk.%u.attn_v.weight"};
    char bias[64];
    snprintf(bias, sizeof bias, "blk.%u.attn_q.bias", il);
    vki_tensor w = vki_llm_has_weight(b, bias) ? (vki_tensor){0}
                                               : vki_llm_weight_rows(b, names, 3, il, e, rows);
    if (w.id) {
        int64_t total = rows[0] + rows[1] + rows[2];
        vki_tensor y = vki_matmul(g, w, h);
        *q = heads_of(g, y, 0, hd, hp->n_head, total, nq);
        *k = heads_of(g, y, rows[0], hd, hp->n_head_kv, total, nq);
        *v = vki_view(g, y, 2, (int64_t[2]){rows[2], nq}, (uint64_t[2]){4, 4 * (uint64_t)total},
                      4 * (uint64_t)(rows[0] + rows[1]));
        return y;
    }
    *q = reshape3(g, linear(b, h, names[0], "blk.%u.attn_q.bias", il, e, rows[0]), hd, hp->n_head, nq);
    *k = reshape3(g, linear(b, h, names[1], "blk.%u.attn_k.bias", il, e, rows[1]), hd, hp->n_head_kv, nq);
    *v = linear(b, h, names[2], "blk.%u.attn_v.bias", il, e, rows[2]);
    return (vki_tensor){0};
}

/* The gate and up projections of layer il (F32 [n_ff, n_q] each): views of one product where
 * the weights join, else two. */
static void project_gate_up(vki_llm_build *b, uint32_t il, vki_tensor h, vki_tensor *gate,
                            vki_tensor *up)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, ff = hp->n_ff, nq = b->n_q;
    const int64_t rows[2] = {ff, ff};
    static const char *const names[2] = {"blk.%u.ffn_gate.weight", "blk.%u.ffn_up.weight"};
    vki_tensor w = vki_llm_weight_rows(b, names, 2, il, e, rows);
    if (w.id) {
        vki_tensor y = vki_matmul(g, w, h);
        const uint64_t nb[2] = {4, 8 * (uint64_t)ff};
        *gate = vki_view(g, y, 2, (int64_t[2]){ff, nq}, nb, 0);
        *up = vki_view(g, y, 2, (int64_t[2]){ff, nq}, nb, 4 * (uint64_t)ff);
        return;
    }
    *gate = vki_matmul(g, W(b, names[0], il, e, ff, false), h);
    *up = vki_matmul(g, W(b, names[1], il, e, ff, false), h);
}

/* Self-attention of layer il on normalised input h [n_embd, n_q]: q/k/v projections, optional
 * QK-norm, rope, the cache write and fused attention. Returns [n_head * head_dim, n_q]. */
static vki_tensor attention(vki_llm_build *b, uint32_t il, vki_tensor h, vki_llm_qk_norm qk_norm,
                            float base, uint32_t window)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t hd = hp->head_dim, nq = b->n_q;
    int64_t nh = hp->n_head, nkv = hp->n_head_kv;
    vki_tensor q, k, v;
    vki_tensor qkv = project_qkv(b, il, h, &q, &k, &v);
    if (qkv.id && !qk_norm) {
        // q's and k's heads are adjacent rows of the joined product: one rope for both.
        vki_tensor r = vki_rope(g, heads_of(g, qkv, 0, hd, nh + nkv, (nh + 2 * nkv) * hd, nq), b->pos,
                                hp->n_rot, hp->rope_mode, base, hp->rope_scale);
        uint64_t row = 4 * (uint64_t)(hd * (nh + nkv));
        q = vki_view(g, r, 3, (int64_t[3]){hd, nh, nq}, (uint64_t[3]){4, 4 * (uint64_t)hd, row}, 0);
        k = vki_view(g, r, 2, (int64_t[2]){hd * nkv, nq}, (uint64_t[2]){4, row}, 4 * (uint64_t)(hd * nh));
    } else {
        if (qk_norm == VKI_LLM_QK_NORM_HEAD) {
            q = vki_rms_norm(g, q, W(b, "blk.%u.attn_q_norm.weight", il, hd, -1, false), hp->eps);
            k = vki_rms_norm(g, k, W(b, "blk.%u.attn_k_norm.weight", il, hd, -1, false), hp->eps);
        } else if (qk_norm == VKI_LLM_QK_NORM_ALL) {
            // Each token's whole projection: q and k as [heads * hd, n_q] rows (views of the
            // joined product, whose rows are (n_head + 2 n_head_kv) hd apart, or contiguous).
            uint64_t row = 4 * (uint64_t)hd * (qkv.id ? nh + 2 * nkv : nh);
            q = vki_rms_norm(g, vki_view(g, q, 2, (int64_t[2]){hd * nh, nq}, (uint64_t[2]){4, row}, 0),
                             W(b, "blk.%u.attn_q_norm.weight", il, hd * nh, -1, false), hp->eps);
            row = 4 * (uint64_t)hd * (qkv.id ? nh + 2 * nkv : nkv);
            k = vki_rms_norm(g, vki_view(g, k, 2, (int64_t[2]){hd * nkv, nq}, (uint64_t[2]){4, row}, 0),
                             W(b, "blk.%u.attn_k_norm.weight", il, hd * nkv, -1, false), hp->eps);
            q = reshape3(g, q, hd, nh, nq);
            k = reshape3(g, k, hd, nkv, nq);
        }
        q = vki_rope(g, q, b->pos, hp->n_rot, hp->rope_mode, base, hp->rope_scale);
        k = vki_reshape(g, vki_rope(g, k, b->pos, hp->n_rot, hp->rope_mode, base, hp->rope_scale), 2,
                        (int64_t[2]){hd * nkv, nq});
    }
    vki_tensor kc = vki_llm_kv_store(b, il, 0, k);
    vki_tensor vc = vki_llm_kv_store(b, il, 1, v);
    vki_tensor a = vki_llm_attention(b, q, kc, vc, window);
    return vki_reshape(g, a, 2, (int64_t[2]){hd * hp->n_head, nq});
}

/* Logits [n_vocab, 1] of row b->last of the final hidden state x [n_embd, n_q] ([n_vocab, n_q]
 * of every row with b->all_rows). */
static vki_tensor head(vki_llm_build *b, vki_tensor x)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    if (b->n_q > 1 && !b->all_rows) x = vki_get_rows(g, x, b->last); // only the last is sampled
    x = vki_rms_norm(g, x, W(b, "output_norm.weight", 0, hp->n_embd, -1, false), hp->eps);
    vki_tensor y = vki_llm_matmul_rows(b, "output.weight", hp->n_embd, hp->n_vocab, x, true);
    if (!y.id) // tied to the embedding
        y = vki_llm_matmul_rows(b, "token_embd.weight", hp->n_embd, hp->n_vocab, x, false);
    return y;
}

static vki_tensor llama_forward(vki_llm_build *b)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    if (hp->n_expert) return vki_llm_moe_forward(b); // Mixtral
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, ff = hp->n_ff;
    vki_tensor x = vki_llm_embed(b, "token_embd.weight", e, hp->n_vocab, b->tokens);
    for (uint32_t il = 0; il < hp->n_layer && vki_llm_building(b); il++) {
        vki_tensor h = vki_rms_norm(g, x, W(b, "blk.%u.attn_norm.weight", il, e, -1, false), hp->eps);
        h = attention(b, il, h, VKI_LLM_QK_NORM_NONE, hp->rope_base, 0);
        x = vki_add(g, x, vki_matmul(g, W(b, "blk.%u.attn_output.weight", il, hd_total(hp), e, false), h));
        h = vki_rms_norm(g, x, W(b, "blk.%u.ffn_norm.weight", il, e, -1, false), hp->eps);
        vki_tensor gate, up;
        project_gate_up(b, il, h, &gate, &up);
        h = vki_matmul(g, W(b, "blk.%u.ffn_down.weight", il, ff, e, false), vki_swiglu(g, gate, up));
        x = vki_add(g, x, h);
    }
    return head(b, x);
}

static vki_tensor gemma3_forward(vki_llm_build *b)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, ff = hp->n_ff;
    vki_tensor x = vki_llm_embed(b, "token_embd.weight", e, hp->n_vocab, b->tokens);
    if (!b->embd.id) x = vki_scale(g, x, sqrtf((float)e)); // token embeddings only, not an image's
    for (uint32_t il = 0; il < hp->n_layer && vki_llm_building(b); il++) {
        bool global = hp->swa_pattern == 0 || il % hp->swa_pattern == hp->swa_pattern - 1;
        vki_tensor h = vki_rms_norm(g, x, W(b, "blk.%u.attn_norm.weight", il, e, -1, false), hp->eps);
        h = attention(b, il, h, VKI_LLM_QK_NORM_HEAD, global ? hp->rope_base : hp->rope_base_local,
                      global ? 0 : hp->window);
        h = vki_matmul(g, W(b, "blk.%u.attn_output.weight", il, hd_total(hp), e, false), h);
        h = vki_rms_norm(g, h, W(b, "blk.%u.post_attention_norm.weight", il, e, -1, false), hp->eps);
        x = vki_add(g, x, h);
        h = vki_rms_norm(g, x, W(b, "blk.%u.ffn_norm.weight", il, e, -1, false), hp->eps);
        vki_tensor gate, up;
        project_gate_up(b, il, h, &gate, &up);
        h = vki_mul(g, vki_gelu_tanh(g, gate), up); // Gemma's GeGLU uses the tanh form
        h = vki_matmul(g, W(b, "blk.%u.ffn_down.weight", il, ff, e, false), h);
        h = vki_rms_norm(g, h, W(b, "blk.%u.post_ffw_norm.weight", il, e, -1, false), hp->eps);
        x = vki_add(g, x, h);
    }
    return head(b, x);
}

static const vki_llm_arch arches[] = {
    {"llama", llama_hparams, llama_forward},
    {"qwen2", llama_hparams, llama_forward},
    {"gemma3", gemma3_hparams, gemma3_forward},
};

const vki_llm_arch *vki_llm_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
        if (strcmp(arches[i].name, name) == 0) return &arches[i];
    if (strcmp(name, vki_llm_arch_qwen2vl.name) == 0) return &vki_llm_arch_qwen2vl;
    return vki_llm_moe_arch_find(name);
}

/* ---- Lent to the other architecture files (llm_internal.h) ------------------------------------ */

vki_status vki_llm_meta_u32(vki_gguf *f, const char *arch, const char *key, bool required,
                            uint32_t *out, char *err, size_t n)
{
    return get_u32(f, arch, key, required, out, err, n);
}

vki_status vki_llm_meta_f32(vki_gguf *f, const char *arch, const char *key, float *out, char *err,
                            size_t n)
{
    return get_f32(f, arch, key, out, err, n);
}

vki_status vki_llm_common_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    return common_hparams(f, hp, err, n);
}

vki_tensor vki_llm_self_attention(vki_llm_build *b, uint32_t il, vki_tensor h,
                                  vki_llm_qk_norm qk_norm, float base, uint32_t window)
{
    return attention(b, il, h, qk_norm, base, window);
}

vki_tensor vki_llm_head(vki_llm_build *b, vki_tensor x) { return head(b, x); }
