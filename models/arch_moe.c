/* Mixture-of-experts decoders, as graphs: Mixtral (GGUF "llama" with experts), Qwen2-MoE (a
 * shared expert beside the routed ones, behind its own sigmoid gate; QKV biases), Qwen3-MoE
 * (QK-norm per head), OLMoE (QK-norm over the whole q and k projections) and Granite-MoE
 * (embedding, residual, attention and logit multipliers). Attention and the output head are
 * arch_llama.c's (llm_internal.h); what differs is the feed-forward block.
 *
 * The expert block, per token (Shazeer et al. 2017; Mixtral's paper, eq. 2): the router's
 * logits pick the k largest of E experts; their softmax probabilities (renormalised over the
 * k where the architecture says so) weigh the chosen experts' SwiGLU outputs. GGUF stores each
 * expert matrix stacked, [n_embd, n_ff_exp, E]; vki_matmul_id reads only the chosen ones.
 * Which architectures renormalise follows llama.cpp (src/llama-model.cpp) and the models'
 * transformers code: Mixtral, Qwen3-MoE and Granite-MoE do, OLMoE and Qwen2-MoE do not. */
#include "llm_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- Metadata -------------------------------------------------------------------------------- */

vki_status vki_llm_expert_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    const char *a = hp->arch;
    VKI_TRY(vki_llm_meta_u32(f, a, "expert_count", false, &hp->n_expert, err, n));
    VKI_TRY(vki_llm_meta_u32(f, a, "expert_used_count", false, &hp->n_expert_used, err, n));
    hp->n_ff_exp = hp->n_ff; // Mixtral, OLMoE and Granite: the experts are feed_forward_length wide
    VKI_TRY(vki_llm_meta_u32(f, a, "expert_feed_forward_length", false, &hp->n_ff_exp, err, n));
    VKI_TRY(vki_llm_meta_u32(f, a, "expert_shared_feed_forward_length", false, &hp->n_ff_shexp,
                             err, n));
    hp->expert_norm = true;
    return VKI_OK; // llm.c bounds them all
}

/* The keys of an architecture that has experts in every layer. */
static vki_status moe_hparams(vki_gguf *f, vki_llm_hparams *hp, vki_rope_mode rope, bool norm,
                              char *err, size_t n)
{
    VKI_TRY(vki_llm_common_hparams(f, hp, err, n));
    VKI_TRY(vki_llm_expert_hparams(f, hp, err, n));
    if (hp->n_expert == 0) {
        snprintf(err, n, "model metadata %s.expert_count: missing or 0, and %s has experts in "
                 "every layer", hp->arch, hp->arch);
        return VKI_ERROR_BAD_FILE;
    }
    hp->rope_mode = rope;
    hp->expert_norm = norm;
    return VKI_OK;
}

static vki_status qwen2moe_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    VKI_TRY(moe_hparams(f, hp, VKI_ROPE_NEOX, false, err, n));
    if (hp->n_ff_shexp == 0) hp->n_ff_shexp = hp->n_ff; // llama.cpp's default
    return VKI_OK;
}

static vki_status qwen3moe_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    return moe_hparams(f, hp, VKI_ROPE_NEOX, true, err, n);
}

static vki_status olmoe_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    return moe_hparams(f, hp, VKI_ROPE_NEOX, false, err, n);
}

/* Granite's multipliers (convert_hf_to_gguf.py writes its *_multiplier config as *_scale). */
static vki_status granitemoe_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n)
{
    VKI_TRY(moe_hparams(f, hp, VKI_ROPE_NORMAL, true, err, n));
    const char *a = hp->arch;
    VKI_TRY(vki_llm_meta_f32(f, a, "embedding_scale", &hp->embd_scale, err, n));
    VKI_TRY(vki_llm_meta_f32(f, a, "residual_scale", &hp->residual_scale, err, n));
    VKI_TRY(vki_llm_meta_f32(f, a, "logit_scale", &hp->logit_scale, err, n));
    float attn = 0;
    VKI_TRY(vki_llm_meta_f32(f, a, "attention.scale", &attn, err, n));
    if (attn != 0) hp->attn_scale = attn; // else 1 / sqrt(head_dim)
    return VKI_OK;
}

/* ---- Forward passes ---------------------------------------------------------------------------- */

static vki_tensor weight(vki_llm_build *b, const char *fmt, uint32_t il, int64_t ne0, int64_t ne1)
{
    return vki_llm_layer_weight(b, fmt, il, ne0, ne1, false);
}

static vki_tensor experts_of(vki_llm_build *b, const char *fmt, uint32_t il, int64_t ne0,
                             int64_t ne1, int64_t n_expert)
{
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    return vki_llm_weight3(b, name, (int64_t[3]){ne0, ne1, n_expert});
}

/* The routed experts of layer il on the normalised input h [n_embd, n_q]: [n_embd, n_q].
 * The gate and up experts are stored joined where they can be ([e, ff, 2 n_exp], the gate's
 * then the up's, no copy), and read as its two halves: the compiler then folds both products
 * and the SwiGLU into one (matmul_id.c). */
static vki_tensor routed_experts(vki_llm_build *b, uint32_t il, vki_tensor h)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, ff = hp->n_ff_exp, n_exp = hp->n_expert, nq = b->n_q;
    vki_tensor logits = vki_matmul(g, weight(b, "blk.%u.ffn_gate_inp.weight", il, e, n_exp), h);
    vki_tensor ids = vki_top_k(g, logits, hp->n_expert_used);              // [k, n_q]
    vki_tensor w = vki_moe_weights(g, logits, ids, hp->expert_norm);        // [k, n_q]
    vki_tensor x = vki_reshape(g, h, 3, (int64_t[3]){e, 1, nq});            // one column for all k
    static const char *const gate_up[2] = {"blk.%u.ffn_gate_exps.weight", "blk.%u.ffn_up_exps.weight"};
    vki_tensor wg, wu, joined = vki_llm_weight3_joined(b, gate_up, 2, il, (int64_t[3]){e, ff, n_exp});
    if (joined.id) {
        vki_tensor_info info;
        vki_tensor_get_info(g, joined, &info);
        const int64_t half[3] = {e, ff, n_exp};
        wg = vki_view(g, joined, 3, half, info.nb, 0);
        wu = vki_view(g, joined, 3, half, info.nb, (uint64_t)n_exp * info.nb[2]);
    } else {
        wg = experts_of(b, gate_up[0], il, e, ff, n_exp);
        wu = experts_of(b, gate_up[1], il, e, ff, n_exp);
    }
    vki_tensor gate = vki_matmul_id(g, wg, x, ids), up = vki_matmul_id(g, wu, x, ids);
    vki_tensor y = vki_matmul_id(g, experts_of(b, "blk.%u.ffn_down_exps.weight", il, ff, e, n_exp),
                                 vki_swiglu(g, gate, up), ids);            // [n_embd, k, n_q]
    return vki_moe_combine(g, y, w);
}

/* sigmoid(s) of s [1, n_q] as the first of softmax(s, 0): there is no sigmoid op, and this
 * one is exact where silu(s) / s is not (s = 0). */
static vki_tensor sigmoid_row(vki_graph *g, vki_tensor s, int64_t nq)
{
    vki_tensor p = vki_softmax(g, vki_concat(g, s, vki_scale(g, s, 0.0f), 0), (vki_tensor){0}, 1.0f,
                               false);
    return vki_copy(g, vki_view(g, p, 2, (int64_t[2]){1, nq}, (uint64_t[2]){4, 8}, 0), VKI_DTYPE_F32);
}

/* The shared expert every token goes through (Qwen2-MoE, Granite-MoE-Shared), weighted by
 * sigmoid(ffn_gate_inp_shexp . h) where the file has that gate: [n_embd, n_q]. */
static vki_tensor shared_expert(vki_llm_build *b, uint32_t il, vki_tensor h)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, ff = hp->n_ff_shexp;
    vki_tensor gate = vki_matmul(g, weight(b, "blk.%u.ffn_gate_shexp.weight", il, e, ff), h);
    vki_tensor up = vki_matmul(g, weight(b, "blk.%u.ffn_up_shexp.weight", il, e, ff), h);
    vki_tensor y = vki_matmul(g, weight(b, "blk.%u.ffn_down_shexp.weight", il, ff, e),
                              vki_swiglu(g, gate, up));
    char name[64];
    snprintf(name, sizeof name, "blk.%u.ffn_gate_inp_shexp.weight", il);
    if (!vki_llm_has_weight(b, name)) return y;
    vki_tensor s = vki_matmul(g, weight(b, "blk.%u.ffn_gate_inp_shexp.weight", il, e, 1), h);
    return vki_mul(g, y, sigmoid_row(g, s, b->n_q));
}

/* Every MoE decoder: pre-norm attention and expert blocks, each added to the residual (scaled
 * first by Granite's residual multiplier). */
static vki_tensor moe_decoder(vki_llm_build *b, vki_llm_qk_norm qk_norm)
{
    const vki_llm_hparams *hp = vki_llm_hparams_get(b->llm);
    vki_graph *g = b->g;
    int64_t e = hp->n_embd, attn = (int64_t)hp->head_dim * hp->n_head;
    vki_tensor x = vki_llm_embed(b, "token_embd.weight", e, hp->n_vocab, b->tokens);
    if (hp->embd_scale != 0 && !b->embd.id) x = vki_scale(g, x, hp->embd_scale); // tokens only
    for (uint32_t il = 0; il < hp->n_layer && vki_llm_building(b); il++) {
        vki_tensor h = vki_rms_norm(g, x, weight(b, "blk.%u.attn_norm.weight", il, e, -1), hp->eps);
        h = vki_llm_self_attention(b, il, h, qk_norm, hp->rope_base, 0);
        h = vki_matmul(g, weight(b, "blk.%u.attn_output.weight", il, attn, e), h);
        if (hp->residual_scale != 0) h = vki_scale(g, h, hp->residual_scale);
        x = vki_add(g, x, h);
        h = vki_rms_norm(g, x, weight(b, "blk.%u.ffn_norm.weight", il, e, -1), hp->eps);
        vki_tensor y = routed_experts(b, il, h);
        if (hp->n_ff_shexp) y = vki_add(g, y, shared_expert(b, il, h));
        if (hp->residual_scale != 0) y = vki_scale(g, y, hp->residual_scale);
        x = vki_add(g, x, y);
    }
    vki_tensor logits = vki_llm_head(b, x);
    return hp->logit_scale != 0 ? vki_scale(g, logits, 1.0f / hp->logit_scale) : logits;
}

vki_tensor vki_llm_moe_forward(vki_llm_build *b) { return moe_decoder(b, VKI_LLM_QK_NORM_NONE); }

static vki_tensor qwen3moe_forward(vki_llm_build *b) { return moe_decoder(b, VKI_LLM_QK_NORM_HEAD); }
static vki_tensor olmoe_forward(vki_llm_build *b) { return moe_decoder(b, VKI_LLM_QK_NORM_ALL); }

static const vki_llm_arch arches[] = {
    {"qwen2moe", qwen2moe_hparams, vki_llm_moe_forward},
    {"qwen3moe", qwen3moe_hparams, qwen3moe_forward},
    {"olmoe", olmoe_hparams, olmoe_forward},
    {"granitemoe", granitemoe_hparams, vki_llm_moe_forward},
};

const vki_llm_arch *vki_llm_moe_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
        if (strcmp(arches[i].name, name) == 0) return &arches[i];
    return NULL;
}
