/* Internal structures of the language-model code: the hyper-parameters read from GGUF
 * metadata, and the interface between llm.c (loading, weights, KV cache, plans, evaluation)
 * and the architecture files (arch_*.c), which build one forward pass as a graph. */
#ifndef VKI_LLM_INTERNAL_H
#define VKI_LLM_INTERNAL_H

#include "vkinfer_models.h"

typedef struct vki_llm vki_llm;

typedef struct vki_llm_hparams {
    char arch[32];          // general.architecture ("llama", "qwen2", "gemma3")
    uint32_t n_layer;
    uint32_t n_embd;        // residual width
    uint32_t n_head, n_head_kv, head_dim;
    uint32_t n_ff;
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_rot;         // rotated dims of each head
    float eps;              // RMSNorm epsilon
    float rope_base;        // frequency base (global layers)
    float rope_base_local;  // frequency base of sliding-window layers (Gemma 3)
    float rope_scale;       // linear position scale (1 / factor)
    vki_rope_mode rope_mode;
    uint32_t window;        // sliding window of local layers; 0: none
    uint32_t swa_pattern;   // every swa_pattern-th layer is global (Gemma 3: 6); 0: all global
    float attn_scale;       // softmax scale
    // Mixture of experts (arch_moe.c); n_expert 0: a dense model.
    uint32_t n_expert, n_expert_used; // experts per layer, and chosen per token
    uint32_t n_ff_exp;      // an expert's feed-forward width
    uint32_t n_ff_shexp;    // the shared expert's (Qwen2-MoE), 0: none
    bool expert_norm;       // the chosen experts' weights renormalised to sum 1
    // Granite's multipliers, 0: none (1).
    float embd_scale, residual_scale, logit_scale;
    // M-RoPE (qwen2vl): rotated pairs per position stream (vki_rope_multi); all 0: plain rope.
    uint32_t rope_sections[4];
} vki_llm_hparams;

/* One forward pass being built: n_q tokens at positions `pos`. The architecture reads weights
 * with vki_llm_weight (which records the binding) and the KV cache with vki_llm_kv. */
typedef struct vki_program vki_program;

typedef struct vki_llm_build {
    vki_llm *llm;
    vki_program *prog;      // the program being built (model_internal.h)
    vki_graph *g;           // its graph
    uint32_t n_q;
    vki_tensor tokens;      // I32 [n_q]
    vki_tensor pos;         // I32 [n_q]; -1 marks a padding row ({0} with M-RoPE and n_seq > 1)
    vki_tensor kv_pos;      // I32 [n_q]: each row's place in the cache (pos itself with one
                            // sequence; sequence s's position p at s * n_ctx + p with several)
    vki_tensor last;        // I32 [1]: the row whose logits are wanted (unless all_rows)
    bool all_rows;          // logits of every row: F32 [n_vocab, n_q]
    vki_tensor embd;        // F32 [n_embd, n_q] in place of the tokens' embeddings (an image's:
                            // vki_llm_embed returns it, unscaled), {0} in a token pass
    vki_tensor attn_pos;    // I32 [n_q, 2]: the cache position each row's attention sees up to,
                            // if not its own (kv_pos): a non-causal span's rows all see its
                            // last; and the one its window counts back from (its own)
    vki_tensor rope_pos;    // I32 [n_q, 4] with M-RoPE (hparams rope_sections): each row's 4
                            // rope position streams (llm.c: vki_llm_eval_image), {0} otherwise
} vki_llm_build;

/* The weight `name` as stored in the file, checked against `ne` (entries < 0 are not checked);
 * a missing weight fails the graph naming it unless `optional` (then {0}). */
vki_tensor vki_llm_weight(vki_llm_build *b, const char *name, const int64_t ne[2], bool optional);
/* vki_llm_weight of layer il: `fmt` names it with one %u ("blk.%u.attn_q.weight"). */
vki_tensor vki_llm_layer_weight(vki_llm_build *b, const char *fmt, uint32_t il, int64_t ne0, int64_t ne1,
                                bool optional);
/* Whether the file holds a tensor `name` (nothing is read or recorded). */
bool vki_llm_has_weight(vki_llm_build *b, const char *name);

/* The weights names[i] (formats of layer il) [k, rows[i]] as one [k, sum rows[i]] tensor,
 * stored one after the other on the device: one product instead of n. {0} without an error
 * when they cannot be joined (one is absent, dtypes or shapes differ, a member's bytes are not
 * a whole number of the device's binding alignment, the whole is over its binding limit, or a
 * member is in another group): the caller then reads them one by one with vki_llm_weight,
 * which names a wrong shape. */
vki_tensor vki_llm_weight_rows(vki_llm_build *b, const char *const *names, uint32_t n, uint32_t il,
                               int64_t k, const int64_t *rows);

/* Rows ids of the embedding table `name` [n_embd, n_vocab]: F32 [n_embd, n_q] (in an
 * embeddings pass b->embd instead, which an architecture must not scale as it scales its
 * tokens'); and w x for the weight `name` [k, m] (F32 [m, n]; {0} when absent and `optional`).
 * Either weight may be larger than the device binds at once (a big vocabulary): the lowering
 * reads it in row slices. */
vki_tensor vki_llm_embed(vki_llm_build *b, const char *name, int64_t n_embd, int64_t n_vocab,
                         vki_tensor ids);
vki_tensor vki_llm_matmul_rows(vki_llm_build *b, const char *name, int64_t k, int64_t m,
                               vki_tensor x, bool optional);
/* Layer il's cache after writing this pass's rows (cur [n_head_kv * head_dim, n_q]); which =
 * 0 for keys, 1 for values. Returns [head_dim, n_head_kv, n_ctx]. */
vki_tensor vki_llm_kv_store(vki_llm_build *b, uint32_t il, int which, vki_tensor cur);

/* Attention of q over the caches k and v that vki_llm_kv_store returned, each query seeing its
 * own sequence's positions up to its own (and the last `window` only, if window > 0). */
vki_tensor vki_llm_attention(vki_llm_build *b, vki_tensor q, vki_tensor k, vki_tensor v,
                             uint32_t window);

/* The stacked experts `name` [ne[0], ne[1], ne[2]] (one [ne[0], ne[1]] matrix per expert) as
 * stored in the file, for vki_matmul_id; checked like vki_llm_weight's, and within one binding. */
vki_tensor vki_llm_weight3(vki_llm_build *b, const char *name, const int64_t ne[3]);
/* The stacked experts names[i] (formats of layer il, [ne[0], ne[1], ne[2]] each) as one [ne[0],
 * ne[1], n ne[2]] tensor, stored one after the other on the device (vki_weights_joined_experts):
 * {0} without an error when they cannot be joined; the caller then reads them one by one. */
vki_tensor vki_llm_weight3_joined(vki_llm_build *b, const char *const *names, uint32_t n, uint32_t il,
                                  const int64_t ne[3]);

const vki_llm_hparams *vki_llm_hparams_get(const vki_llm *m);

/* False once building this pass has failed (a missing weight, a bad shape): an architecture's
 * layer loop stops there, so that a file claiming 2^20 layers costs one failed layer. */
bool vki_llm_building(const vki_llm_build *b);

/* Architectures: read their metadata, then build logits F32 [n_vocab, 1] for row `last` (or
 * [n_vocab, n_q] for every row with all_rows). */
typedef struct vki_llm_arch {
    const char *name;
    vki_status (*hparams)(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t err_size);
    vki_tensor (*forward)(vki_llm_build *b);
} vki_llm_arch;

const vki_llm_arch *vki_llm_arch_find(const char *name);

/* llm_hparams.c: general.architecture (its arch in *out_arch, NULL when unknown), the arch's
 * hparams hook, the vocabulary's size, and every value within vkinfer's bounds; a file past them
 * is refused with a message naming the key. */
vki_status vki_llm_read_hparams(vki_gguf *f, vki_llm_hparams *hp, const vki_llm_arch **out_arch,
                                char *err, size_t err_size);

/* ---- Shared by the architecture files -------------------------------------------------------- */

/* What arch_llama.c lends the other architectures: metadata "<arch>.<key>" (u32 required or
 * not; f32 always optional, leaving *out as the caller's default), the keys every decoder
 * shares, self-attention of layer il on the normalised input h [n_embd, n_q] (returns
 * [n_head * head_dim, n_q]), and the final norm and output projection (logits, as `forward`). */
typedef enum vki_llm_qk_norm {
    VKI_LLM_QK_NORM_NONE = 0,
    VKI_LLM_QK_NORM_HEAD,   // RMSNorm of each head (Gemma 3, Qwen3): weight [head_dim]
    VKI_LLM_QK_NORM_ALL,    // RMSNorm of the whole q and k projections (OLMoE): [n_head * head_dim]
} vki_llm_qk_norm;

vki_status vki_llm_meta_u32(vki_gguf *f, const char *arch, const char *key, bool required,
                            uint32_t *out, char *err, size_t n);
vki_status vki_llm_meta_f32(vki_gguf *f, const char *arch, const char *key, float *out, char *err,
                            size_t n);
vki_status vki_llm_common_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n);
vki_tensor vki_llm_self_attention(vki_llm_build *b, uint32_t il, vki_tensor h,
                                  vki_llm_qk_norm qk_norm, float base, uint32_t window);
vki_tensor vki_llm_head(vki_llm_build *b, vki_tensor x);

/* arch_moe.c: the expert keys (expert_count, expert_used_count, expert_feed_forward_length,
 * expert_shared_feed_forward_length; none: a dense model), the llama family's forward with
 * experts (Mixtral), and the MoE architectures by name (NULL if not one). */
vki_status vki_llm_expert_hparams(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t n);
vki_tensor vki_llm_moe_forward(vki_llm_build *b);
const vki_llm_arch *vki_llm_moe_arch_find(const char *name);

/* arch_qwen2vl.c: Qwen2-VL's language model (M-RoPE). */
extern const vki_llm_arch vki_llm_arch_qwen2vl;

#endif
