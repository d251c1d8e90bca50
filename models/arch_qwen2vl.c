/* Qwen2-VL's language model (GGUF "qwen2vl"): Qwen2 -- QKV biases, NeoX pairs, SwiGLU -- with
 * multi-section rotary positions (M-RoPE, Wang et al. 2024, "Qwen2-VL", section 2.1): each head's
 * rotated pairs fall in sections (qwen2vl.rope.dimension_sections, e.g. 16/24/24 of 64 pairs in
 * the 2B model), and section k turns by position stream k of the token (temporal, row, column).
 * A text token has all streams equal to its position; an image's merged tokens carry the image's
 * start in the temporal stream and start + row / + column in the others (llm.c assigns them:
 * b->rope_pos). The cache and the causal mask stay by cache row (b->kv_pos). */
#include "llm_internal.h"

#include <stdio.h>
#include <string.h>

static vki_status qwen2vl_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    VKI_TRY(vki_llm_common_hparams(f, hp, err, n));
    hp->rope_mode = VKI_ROPE_NEOX;
    hp->eps = 1e-6f;
    VKI_TRY(vki_llm_meta_f32(f, hp->arch, "attention.layer_norm_rms_epsilon", &hp->eps, err, n));
    const char *key = "qwen2vl.rope.dimension_sections";
    vki_gguf_array a;
    vki_status st = vki_gguf_get_array(f, key, &a);
    if (st || a.count < 3 || a.count > 4) {
        snprintf(err, n, "model metadata %s: %s (want 3 or 4 section sizes)", key,
                 st ? vki_gguf_last_error(f) : "wrong length");
        return st ? st : VKI_ERROR_BAD_FILE;
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i < a.count; i++) {
        if ((st = vki_gguf_array_get_u32(f, &a, i, &hp->rope_sections[i]))) {
            snprintf(err, n, "model metadata %s[%llu]: %s", key, (unsigned long long)i,
                     vki_gguf_last_error(f));
            return st;
        }
        sum += hp->rope_sections[i];
    }
    // Every rotated pair belongs to a section (vki_rope_multi's rule; transformers' too).
    if (sum == 0 || sum != hp->n_rot / 2) {
        snprintf(err, n, "model metadata %s: sections {%u, %u, %u, %u} add up to %llu pairs, but "
                 "the heads rotate %u", key, hp->rope_sections[0], hp->rope_sections[1],
                 hp->rope_sections[2], hp->rope_sections[3], (unsigned long long)sum, hp->n_rot / 2);
        return VKI_ERROR_BAD_FILE;
    }
    return VKI_OK;
}

#define W vki_llm_layer_weight

/* x W + bias, the bias fused into the product by the compiler. */
static vki_tensor linear(vki_llm_build *b, vki_tensor x, const char *w, const char *bias, uint32_t il,
                         int64_t k, int64_t m)
{
    return vki_add(b->g, vki_matmul(b->g, W(b, w, il, k, m, false), x), W(b, bias, il, m, -1, false));
}

/* Self-attention of layer il on the normalised h [n_embd, n_q]: [n_head * head_dim, n_q]. */
static vki_tensor attention(vki_llm_build *b, uint32_t il, vki_tensor h)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t hd = hp->head_dim, nq = b->n_q, e = hp->n_embd;
    int64_t nh = hp->n_head, nkv = hp->n_head_kv;
    vki_tensor q = linear(b, h, "blk.%u.attn_q.weight", "blk.%u.attn_q.bias", il, e, hd * nh);
    vki_tensor k = linear(b, h, "blk.%u.attn_k.weight", "blk.%u.attn_k.bias", il, e, hd * nkv);
    vki_tensor v = linear(b, h, "blk.%u.attn_v.weight", "blk.%u.attn_v.bias", il, e, hd * nkv);
    q = vki_rope_multi(g, vki_reshape(g, q, 3, (int64_t[3]){hd, nh, nq}), b->rope_pos, hp->n_rot,
                       VKI_ROPE_MROPE, hp->rope_sections, hp->rope_base, hp->rope_scale);
    k = vki_rope_multi(g, vki_reshape(g, k, 3, (int64_t[3]){hd, nkv, nq}), b->rope_pos, hp->n_rot,
                       VKI_ROPE_MROPE, hp->rope_sections, hp->rope_base, hp->rope_scale);
    vki_tensor kc = vki_llm_kv_store(b, il, 0, vki_reshape(g, k, 2, (int64_t[2]){hd * nkv, nq}));
    vki_tensor vc = vki_llm_kv_store(b, il, 1, v);
    vki_tensor a = vki_llm_attention(b, q, kc, vc, 0);
    return vki_reshape(g, a, 2, (int64_t[2]){hd * nh, nq});
}

static vki_tensor qwen2vl_forward(vki_llm_build *b)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, ff = hp->n_ff, hd = (int64_t)hp->head_dim * hp->n_head;
    vki_tensor x = vki_llm_embed(b, "token_embd.weight", e, hp->n_vocab, b->tokens);
    for (uint32_t il = 0; il < hp->n_layer && vki_llm_building(b); il++) {
        vki_tensor h = vki_rms_norm(g, x, W(b, "blk.%u.attn_norm.weight", il, e, -1, false), hp->eps);
        h = attention(b, il, h);
        x = vki_add(g, x, vki_matmul(g, W(b, "blk.%u.attn_output.weight", il, hd, e, false), h));
        h = vki_rms_norm(g, x, W(b, "blk.%u.ffn_norm.weight", il, e, -1, false), hp->eps);
        vki_tensor gate = vki_matmul(g, W(b, "blk.%u.ffn_gate.weight", il, e, ff, false), h);
        vki_tensor up = vki_matmul(g, W(b, "blk.%u.ffn_up.weight", il, e, ff, false), h);
        h = vki_matmul(g, W(b, "blk.%u.ffn_down.weight", il, ff, e, false), vki_swiglu(g, gate, up));
        x = vki_add(g, x, h);
    }
    return vki_llm_head(b, x);
}

const vki_llm_arch vki_llm_arch_qwen2vl = {"qwen2vl", qwen2vl_hparams, qwen2vl_forward};
