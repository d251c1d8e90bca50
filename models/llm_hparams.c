/* A language model's hyper-parameters from its GGUF metadata (llm.c's load): the architecture,
 * what its hparams hook reads, the vocabulary's size, and every value checked against bounds
 * before anything is sized from it. */
#include "llm_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Bounds on the hyper-parameters, far above any real model's (Llama 3 405B: 126 layers,
 * 16384 wide, 53248 ff, 128 heads; Gemma 3: a 262144-token vocabulary) and low enough that
 * every size computed from them fits 64-bit arithmetic with room to spare. A file past them is
 * malformed, not big: nothing is sized from a value before it passes. */
#define MAX_LAYERS 1024
#define MAX_EMBD (1u << 16)
#define MAX_FF (1u << 20)
#define MAX_HEADS 1024
#define MAX_VOCAB (1u << 22)
/* Experts per layer: DeepSeek V3 and Qwen3-235B have 256 and 128, Llama 4 Maverick 128. */
#define MAX_EXPERTS 512

/* The vocabulary's size: the tokenizer's token list, the output layer's rows or
 * <arch>.vocab_size, which must agree where more than one is given. A vocabulary smaller than
 * the output would make ids the tokenizer cannot spell. */
static vki_status read_vocab_size(vki_gguf *f, vki_llm_hparams *hp, char *err, size_t err_size)
{
    vki_gguf_array tokens;
    uint32_t n = 0, v;
    const char *from = NULL;
    if (vki_gguf_get_array(f, "tokenizer.ggml.tokens", &tokens) == VKI_OK) {
        if (tokens.count > MAX_VOCAB) {
            snprintf(err, err_size, "model: tokenizer.ggml.tokens has %llu tokens, over the %u "
                     "vkinfer accepts", (unsigned long long)tokens.count, MAX_VOCAB);
            return VKI_ERROR_BAD_FILE;
        }
        n = (uint32_t)tokens.count;
        from = "tokenizer.ggml.tokens";
    }
    char key[96];
    snprintf(key, sizeof key, "%s.vocab_size", hp->arch);
    vki_status st = vki_gguf_get_u32(f, key, &v);
    if (st == VKI_OK && from && v != n) {
        snprintf(err, err_size, "model: %s is %u but the tokenizer has %u tokens "
                 "(tokenizer.ggml.tokens): every output row needs a token", key, v, n);
        return VKI_ERROR_BAD_FILE;
    }
    if (st != VKI_OK && st != VKI_ERROR_NOT_FOUND) {
        snprintf(err, err_size, "model metadata %s: %s", key, vki_gguf_last_error(f));
        return st;
    }
    if (st == VKI_OK && !from) {
        n = v;
        from = key;
    }
    vki_gguf_tensor t; // the embedding says it when the metadata does not
    if (!from && vki_gguf_find_tensor(f, "token_embd.weight", &t) != VKI_ERROR_NOT_FOUND &&
        t.ne[1] <= MAX_VOCAB) {
        n = (uint32_t)t.ne[1];
        from = "token_embd.weight";
    }
    if (n == 0 || n > MAX_VOCAB) {
        snprintf(err, err_size, "model: %s gives a vocabulary of %u tokens (want 1..%u)",
                 from ? from : "no vocabulary size (tokenizer.ggml.tokens, token_embd.weight)", n,
                 MAX_VOCAB);
        return VKI_ERROR_BAD_FILE;
    }
    hp->n_vocab = n;
    return VKI_OK;
}

/* The largest N of the file's "blk.N." tensor names, -1 when there are none. */
static int64_t last_block(vki_gguf *f)
{
    int64_t last = -1;
    uint64_t n = vki_gguf_tensor_count(f);
    for (uint64_t i = 0; i < n; i++) {
        vki_gguf_tensor t;
        if (vki_gguf_tensor_at(f, i, &t) != VKI_OK || strncmp(t.name, "blk.", 4) != 0) continue;
        int64_t b = 0;
        const char *p = t.name + 4;
        for (; *p >= '0' && *p <= '9' && b <= MAX_LAYERS; p++) b = 10 * b + (*p - '0');
        if (p > t.name + 4 && *p == '.' && b > last) last = b;
    }
    return last;
}

/* Every hyper-parameter within its bound, and the layer count the tensors have. */
static vki_status check_hparams(vki_gguf *f, const vki_llm_hparams *hp, char *err, size_t err_size)
{
    const struct {
        const char *key;
        uint32_t value, max;
    } bounds[] = {
        {"block_count", hp->n_layer, MAX_LAYERS},
        {"embedding_length", hp->n_embd, MAX_EMBD},
        {"feed_forward_length", hp->n_ff, MAX_FF},
        {"attention.head_count", hp->n_head, MAX_HEADS},
        {"attention.head_count_kv", hp->n_head_kv, MAX_HEADS},
        {"context_length", hp->n_ctx_train, UINT32_MAX},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i].value == 0 || bounds[i].value > bounds[i].max) {
            snprintf(err, err_size, "model metadata %s.%s is %u: want 1..%u", hp->arch,
                     bounds[i].key, bounds[i].value, bounds[i].max);
            return VKI_ERROR_BAD_FILE;
        }
    if (hp->n_head % hp->n_head_kv) {
        snprintf(err, err_size, "model metadata: %u heads, %u kv heads: want n_head a multiple of "
                 "n_head_kv", hp->n_head, hp->n_head_kv);
        return VKI_ERROR_BAD_FILE;
    }
    if (hp->head_dim == 0 || hp->head_dim > 256 || hp->n_rot > hp->head_dim || hp->n_rot % 2) {
        snprintf(err, err_size, "model metadata: head dim %u with %u rotated dims: want an even "
                 "rotation of at most the head dim, and a head dim of 1..256", hp->head_dim,
                 hp->n_rot);
        return VKI_ERROR_UNSUPPORTED;
    }
    const float positive[] = {hp->eps, hp->rope_base, hp->rope_base_local, hp->rope_scale};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        if (!(positive[i] > 0 && positive[i] < INFINITY)) {
            snprintf(err, err_size, "model metadata: norm epsilon %g, rope base %g (local %g), "
                     "rope scale %g: want each finite and positive", hp->eps, hp->rope_base,
                     hp->rope_base_local, hp->rope_scale);
            return VKI_ERROR_BAD_FILE;
        }
    if (hp->n_expert && (hp->n_expert > MAX_EXPERTS || hp->n_expert_used == 0 ||
                         hp->n_expert_used > hp->n_expert || hp->n_ff_exp == 0 ||
                         hp->n_ff_exp > MAX_FF || hp->n_ff_shexp > MAX_FF)) {
        snprintf(err, err_size, "model metadata: %u experts, %u used per token, %u wide (shared: "
                 "%u): want 1..%u experts, 1..expert_count used, widths 1..%u", hp->n_expert,
                 hp->n_expert_used, hp->n_ff_exp, hp->n_ff_shexp, MAX_EXPERTS, MAX_FF);
        return VKI_ERROR_BAD_FILE;
    }
    const float scales[] = {hp->embd_scale, hp->residual_scale, hp->logit_scale};
    for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++)
        if (!(scales[i] >= 0 && scales[i] < INFINITY)) {
            snprintf(err, err_size, "model metadata: embedding scale %g, residual scale %g, logit "
                     "scale %g: want each finite and positive (or absent)", hp->embd_scale,
                     hp->residual_scale, hp->logit_scale);
            return VKI_ERROR_BAD_FILE;
        }
    int64_t last = last_block(f);
    if (last >= (int64_t)hp->n_layer) {
        snprintf(err, err_size, "model: the file has tensors of layer %lld (blk.%lld.*) but "
                 "%s.block_count is %u", (long long)last, (long long)last, hp->arch, hp->n_layer);
        return VKI_ERROR_BAD_FILE;
    }
    return VKI_OK;
}

vki_status vki_llm_read_hparams(vki_gguf *f, vki_llm_hparams *hp, const vki_llm_arch **out_arch,
                                char *err, size_t err_size)
{
    vki_gguf_string s;
    vki_status st = vki_gguf_get_string(f, "general.architecture", &s);
    if (st) {
        snprintf(err, err_size, "model metadata general.architecture: %s", vki_status_string(st));
        return st == VKI_ERROR_NOT_FOUND ? VKI_ERROR_BAD_FILE : st;
    }
    snprintf(hp->arch, sizeof hp->arch, "%.*s", (int)(s.size < 31 ? s.size : 31), s.data);
    const vki_llm_arch *arch = vki_llm_arch_find(hp->arch);
    *out_arch = arch;
    if (!arch || s.size >= sizeof hp->arch) {
        snprintf(err, err_size, "model architecture '%.*s' is not supported (supported: llama, "
                 "qwen2, gemma3, qwen2moe, qwen3moe, olmoe, granitemoe)",
                 (int)(s.size > 64 ? 64 : s.size), s.data);
        return VKI_ERROR_UNSUPPORTED;
    }
    VKI_TRY(arch->hparams(f, hp, err, err_size));
    VKI_TRY(read_vocab_size(f, hp, err, err_size));
    return check_hparams(f, hp, err, err_size);
}
