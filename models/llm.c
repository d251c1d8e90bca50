/* Language models on a device: hyper-parameters from GGUF metadata (llm_hparams.c), weights through the shared
 * weights module (model_internal.h) in their stored format, a KV cache per layer (f16; f32 or
 * q8_0 on request: set_rows quantises each new row, attention decodes the blocks), and two or
 * three programs — a prompt batch, a short batch and a single token — each compiled once and
 * replayed with new ids and positions.
 *
 * The passes read and write the cache through positions (an I32 input per run): rows are
 * written with set_rows at their positions and attention sees kv positions <= each query's, so
 * neither plan depends on how full the cache is. A short last prompt chunk is padded with
 * position -1, which writes nothing and attends to nothing.
 *
 * Several sequences (desc.n_seq, a server's slots) share one cache per layer, n_ctx rows each,
 * one after another: a row's place in the cache (an I32 input of its own) is s * n_ctx + p, and
 * attention (vki_attention_seq) keeps each query within its sequence. Decode passes of 1 to
 * n_seq rows take one row per sequence decoded; each row is computed alone (see
 * vki_llm_decode), so that a sequence's logits are the same whatever else runs beside it.
 *
 * An embeddings pass (vki_llm_eval_embd: an image's rows from a vision encoder) takes F32 rows
 * in place of tokens, and two positions per row for attention apart from its cache row: a
 * non-causal span (Gemma 3's image) gives all its rows the span's last as the bound of what they
 * see, so that they see each other, and each row's own as where a local layer's sliding window
 * counts back from (llama.cpp's and transformers' mask: the window from the row's own position,
 * anded with causal-or-same-image), while rope and the cache write use each row's own.
 *
 * M-RoPE (qwen2vl) turns rows by 4 position streams (an I32 [n_q, 4] input) that are not the
 * cache row: an image of w x h merged tokens placed at rope position p takes (p, p + row,
 * p + column, 0), and the row after it p + max(w, h) (Qwen2-VL's get_rope_index). Each
 * sequence keeps the rope position after each of its cache rows (rope_after), so that a rewind
 * to any row count finds the next rope position again. */
#include "llm_internal.h"
#include "model_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One program of n_q tokens per run. */
typedef struct llm_pass {
    uint32_t n_q;
    bool all_rows;       // logits of every row (the several-sequence decode passes)
    vki_program *prog;
    vki_tensor tokens, pos, kv_pos, last, logits; // kv_pos == pos with one sequence
    vki_tensor next;     // I32 [1, rows]: each row's largest logit's token, -1 where that logit
                         // is not finite (vki_argmax_finite); {0} in the embeddings pass
    vki_tensor embd, attn_pos; // the embeddings pass's inputs in place of tokens; {0} otherwise
    vki_tensor rope_pos; // I32 [n_q, 4] with M-RoPE, {0} otherwise
} llm_pass;

/* The passes: one token, a prompt batch, a short batch (or none); with several sequences also
 * decode passes of 1 .. n_seq rows (seq_passes), one row per sequence decoded. */
enum { PASS_ONE, PASS_BATCH, PASS_SHORT, PASS_COUNT };

struct vki_llm {
    vki_allocator allocator;
    vki_device *dev;     // NULL when only checking (vki_llm_check): nothing goes to a device
    const vki_profile *profile; // the device's, or the one being checked against
    vki_gguf *file;
    const vki_llm_arch *arch;
    vki_llm_hparams hp;
    vki_llm_info info;
    vki_weights *weights;
    vki_arena *kv_arena;
    vki_range *kv;       // [n_layer][2]
    llm_pass passes[PASS_COUNT];
    llm_pass *seq_passes; // [n_seq] with n_seq > 1: seq_passes[n - 1] decodes n sequences
    llm_pass embd_pass;  // embeddings in place of tokens (an image's), built on first use
    float *host_embd;    // its staging [n_batch_embd][n_embd], zero past the rows given
    uint32_t n_seq;
    uint32_t *position;  // [n_seq]: tokens in each sequence's cache
    uint32_t *rope_after; // M-RoPE: [n_seq][n_ctx], the rope position after each cache row
    bool (*should_abort)(void *user); // asked between prompt batches; NULL: never
    void *abort_user;
    int32_t *host_i32;   // staging for ids and positions [max(n_batch, n_seq)]
    // What vki_llm_sample reads: the last eval or decode call's pass (NULL when it failed) and
    // rows, its `next` once read (host_next [n_seq], valid when next_read) and where its logits
    // were written (the call's out_logits or vki_llm_sample's, NULL before either).
    llm_pass *sample_pass;
    uint32_t sample_rows;
    bool next_read;
    int32_t *host_next;
    const float *logits_at;
    char name[128];      // general.name
    char model_name[64]; // "the llama architecture", for messages
    vki_status error_status;
    char error[512];
};

static void *lalloc(const vki_llm *m, size_t size) { return vki__model_alloc(&m->allocator, size); }
static void lfree(const vki_llm *m, void *q) { vki__model_free(&m->allocator, q); }

static vki_status fail(vki_llm *m, vki_status st, const char *fmt, ...)
    VKI_PRINTF(3, 4);
static vki_status fail(vki_llm *m, vki_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    m->error_status = st;
    return st;
}

const vki_llm_hparams *vki_llm_hparams_get(const vki_llm *m) { return &m->hp; }

bool vki_llm_building(const vki_llm_build *b)
{
    return vki_graph_status(b->g) == VKI_OK && vki_weights_status(b->llm->weights) == VKI_OK &&
           !b->llm->error[0];
}

/* ---- Building a pass --------------------------------------------------------------------------- */

vki_tensor vki_llm_weight(vki_llm_build *b, const char *name, const int64_t ne[2], bool optional)
{
    return vki_weights_tensor(b->llm->weights, b->prog, name, 2, ne, optional, false);
}

vki_tensor vki_llm_layer_weight(vki_llm_build *b, const char *fmt, uint32_t il, int64_t ne0, int64_t ne1,
                                bool optional)
{
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    return vki_llm_weight(b, name, (int64_t[2]){ne0, ne1}, optional);
}

vki_tensor vki_llm_weight3(vki_llm_build *b, const char *name, const int64_t ne[3])
{
    return vki_weights_tensor(b->llm->weights, b->prog, name, 3, ne, false, false);
}

bool vki_llm_has_weight(vki_llm_build *b, const char *name)
{
    return vki_weights_has(b->llm->weights, name);
}

/* Up to 4 joined members' names for layer il: full[i] = names[i] with il, in buf[i]. */
#define MAX_JOINED 4
static bool layer_names(const char *const *names, uint32_t n, uint32_t il, char buf[MAX_JOINED][96],
                        const char *full[MAX_JOINED])
{
    if (n > MAX_JOINED) return false;
    for (uint32_t i = 0; i < n; i++) {
        snprintf(buf[i], sizeof buf[i], names[i], il);
        full[i] = buf[i];
    }
    return true;
}

vki_tensor vki_llm_weight_rows(vki_llm_build *b, const char *const *names, uint32_t n, uint32_t il,
                               int64_t k, const int64_t *rows)
{
    char buf[MAX_JOINED][96];
    const char *full[MAX_JOINED];
    if (!layer_names(names, n, il, buf, full)) return (vki_tensor){0};
    return vki_weights_joined(b->llm->weights, b->prog, full, n, k, rows);
}

vki_tensor vki_llm_weight3_joined(vki_llm_build *b, const char *const *names, uint32_t n, uint32_t il,
                                  const int64_t ne[3])
{
    char buf[MAX_JOINED][96];
    const char *full[MAX_JOINED];
    if (!layer_names(names, n, il, buf, full)) return (vki_tensor){0};
    return vki_weights_joined_experts(b->llm->weights, b->prog, full, n, ne);
}

/* The embedding table and the output projection may be larger than one binding of the device
 * (a 262144-token vocabulary): the lowering binds them a slice of rows at a time. */
vki_tensor vki_llm_embed(vki_llm_build *b, const char *name, int64_t n_embd, int64_t n_vocab,
                         vki_tensor ids)
{
    if (b->embd.id) return b->embd; // an embeddings pass: its input as it is
    vki_tensor w = vki_weights_tensor(b->llm->weights, b->prog, name, 2,
                                      (int64_t[2]){n_embd, n_vocab}, false, true);
    return w.id ? vki_get_rows(b->g, w, ids) : w;
}

vki_tensor vki_llm_matmul_rows(vki_llm_build *b, const char *name, int64_t k, int64_t mrows,
                               vki_tensor x, bool optional)
{
    vki_tensor w = vki_weights_tensor(b->llm->weights, b->prog, name, 2, (int64_t[2]){k, mrows},
                                      optional, true);
    return w.id ? vki_matmul(b->g, w, x) : w;
}

vki_tensor vki_llm_kv_store(vki_llm_build *b, uint32_t il, int which, vki_tensor cur)
{
    vki_llm *m = b->llm;
    const vki_llm_hparams *hp = &m->hp;
    char name[48];
    snprintf(name, sizeof name, "cache_%c.%u", which ? 'v' : 'k', il);
    int64_t row = (int64_t)hp->head_dim * hp->n_head_kv, rows = (int64_t)m->info.n_ctx * m->n_seq;
    vki_tensor cache = vki_weight(b->g, m->info.kv_dtype, 2, (int64_t[2]){row, rows}, name);
    if (vki_program_bind(b->prog, cache, m->kv[2 * il + which])) return (vki_tensor){0};
    vki_tensor written = vki_set_rows(b->g, cache, cur, b->kv_pos);
    return vki_reshape(b->g, written, 3, (int64_t[3]){hp->head_dim, hp->n_head_kv, rows});
}

vki_tensor vki_llm_attention(vki_llm_build *b, vki_tensor q, vki_tensor k, vki_tensor v,
                             uint32_t window)
{
    uint32_t seq_len = b->llm->n_seq > 1 ? b->llm->info.n_ctx : 0;
    vki_tensor pos = b->attn_pos.id ? b->attn_pos : b->kv_pos;
    return vki_attention_seq(b->g, q, k, v, pos, b->llm->hp.attn_scale, window, seq_len);
}

/* Builds pass p's graph (compiled later, once the weights are uploaded); an embeddings pass
 * (`embd`) takes F32 rows and attention positions instead of tokens. */
static vki_status build_pass(vki_llm *m, llm_pass *p, uint32_t n_q, bool all_rows, bool embd)
{
    p->n_q = n_q;
    p->all_rows = all_rows;
    char what[48];
    snprintf(what, sizeof what, embd ? "%u embeddings" : "%u tokens", n_q);
    vki_program_desc pd = {.device = m->dev, .profile = m->profile,
                           .allocator = m->allocator.alloc ? &m->allocator : NULL,
                           .node_capacity = 4096, .name = what};
    vki_status st = vki_program_create(&pd, &p->prog);
    if (st) return fail(m, st, "model: cannot create a program: %s", vki_status_string(st));
    vki_llm_build b = {.llm = m, .prog = p->prog, .g = vki_program_graph(p->prog), .n_q = n_q,
                       .all_rows = all_rows};
    if (embd) {
        b.embd = p->embd = vki_program_input(p->prog, VKI_DTYPE_F32, 2,
                                             (int64_t[2]){m->hp.n_embd, n_q}, "embeddings");
        b.attn_pos = p->attn_pos = vki_program_input(p->prog, VKI_DTYPE_I32, 2,
                                                     (int64_t[2]){n_q, 2}, "attention positions");
    } else {
        b.tokens = p->tokens = vki_program_input(p->prog, VKI_DTYPE_I32, 1, (int64_t[1]){n_q},
                                                 "tokens");
    }
    // With M-RoPE and several sequences nothing reads the positions (rope reads its streams,
    // the cache and attention the cache rows): no such input then.
    if (!m->rope_after || m->n_seq == 1)
        b.pos = p->pos = vki_program_input(p->prog, VKI_DTYPE_I32, 1, (int64_t[1]){n_q}, "positions");
    if (m->rope_after)
        b.rope_pos = p->rope_pos = vki_program_input(p->prog, VKI_DTYPE_I32, 2, (int64_t[2]){n_q, 4},
                                                     "rope positions");
    // With several sequences a row's place in the cache (sequence s's position p is cache row
    // s * n_ctx + p) differs from its position, which rope reads.
    b.kv_pos = p->kv_pos = m->n_seq > 1 ? vki_program_input(p->prog, VKI_DTYPE_I32, 1,
                                                            (int64_t[1]){n_q}, "cache rows")
                                        : p->pos;
    if (n_q > 1 && !all_rows)
        b.last = p->last = vki_program_input(p->prog, VKI_DTYPE_I32, 1, (int64_t[1]){1}, "last");
    p->logits = m->arch->forward(&b);
    if (m->error[0]) return m->error_status;
    if (vki_weights_status(m->weights))
        return fail(m, vki_weights_status(m->weights), "%s", vki_weights_error(m->weights));
    vki_program_output(p->prog, p->logits, "logits");
    // A greedy sampler's token on the device (vki_llm_sample): one small dispatch a run, and 4
    // bytes a row to read back instead of the row's logits.
    if (!embd) {
        p->next = vki_argmax_finite(b.g, p->logits);
        vki_program_output(p->prog, p->next, "next");
    }
    return VKI_OK;
}

static vki_status compile_pass(vki_llm *m, llm_pass *p)
{
    vki_status st = vki_program_compile(p->prog, m->weights);
    if (st) return fail(m, st, "%s", vki_program_error(p->prog));
    m->info.activation_bytes += vki_program_activation_bytes(p->prog);
    return VKI_OK;
}

/* ---- Loading ---------------------------------------------------------------------------------- */

static vki_status create_cache(vki_llm *m)
{
    const vki_llm_hparams *hp = &m->hp;
    // Both factors are bounded (vki_llm_read_hparams; n_ctx <= 2^32): no overflow.
    uint64_t row = vki_dtype_bytes(m->info.kv_dtype, (int64_t)hp->head_dim * hp->n_head_kv);
    // n_seq <= MAX_SEQ: still no overflow (row < 2^26, n_ctx <= 2^32).
    uint64_t bytes = row * m->info.n_ctx * m->n_seq, align = 256;
    if (bytes > m->profile->max_storage_range)
        return fail(m, VKI_ERROR_UNSUPPORTED, "a cache layer of %u x %u tokens takes %llu MiB, "
                    "over the device's binding limit: use a smaller context or fewer sequences",
                    m->n_seq, m->info.n_ctx, (unsigned long long)(bytes >> 20));
    uint64_t n = 2ull * hp->n_layer;
    m->kv = lalloc(m, n * sizeof *m->kv);
    if (!m->kv) return fail(m, VKI_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
    m->info.kv_bytes = n * bytes;
    if (!m->dev) return VKI_OK; // checking only: the ranges stay empty
    vki_arena_desc ad = {.kind = VKI_ARENA_ACTIVATIONS, .block_size = n * vki_align_up(bytes + 16, align),
                         .name = "kv cache"};
    VKI_TRY(vki_arena_create(m->dev, &ad, &m->kv_arena));
    for (uint64_t i = 0; i < n; i++) VKI_TRY(vki_arena_alloc(m->kv_arena, bytes, align, &m->kv[i]));
    return VKI_OK;
}

/* Whether the file's tensors (every expert of an MoE model included: any token may route to
 * any) and the cache fit the device's memory, before anything is uploaded: a 47 GB Mixtral on
 * a 24 GB card should say so, not fail half-way through the upload. Activations come on top and
 * are known only once compiled; a device that does not report its memory is not checked. */
static vki_status check_fits(vki_llm *m)
{
    uint64_t have = m->profile->device_local_bytes, weights = 0;
    uint64_t n = vki_gguf_tensor_count(m->file);
    for (uint64_t i = 0; i < n; i++) {
        vki_gguf_tensor t;
        // Saturating: a hostile file's tensors may overlap and add up past 2^64.
        if (vki_gguf_tensor_at(m->file, i, &t) == VKI_OK &&
            __builtin_add_overflow(weights, t.size, &weights))
            weights = UINT64_MAX;
    }
    uint64_t need;
    if (__builtin_add_overflow(weights, m->info.kv_bytes, &need)) need = UINT64_MAX;
    if (!have || need <= have) return VKI_OK;
    const double mib = 1.0 / (1 << 20);
    return fail(m, VKI_ERROR_OUT_OF_DEVICE_MEMORY, "model: the weights (%.1f MiB%s) and the KV "
                "cache (%.1f MiB for %u tokens) need %.1f MiB; %s has %.1f MiB of device memory",
                (double)weights * mib, m->hp.n_expert ? ", every expert" : "",
                (double)m->info.kv_bytes * mib, m->info.n_ctx * m->n_seq, (double)need * mib,
                m->profile->name, (double)have * mib);
}

/* Bytes of the stacked routed experts (ffn_*_exps), stored as on the device. */
static uint64_t expert_bytes(vki_gguf *file)
{
    uint64_t n = vki_gguf_tensor_count(file), bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        vki_gguf_tensor t;
        if (vki_gguf_tensor_at(file, i, &t) == VKI_OK && strstr(t.name, "_exps.") &&
            __builtin_add_overflow(bytes, t.size, &bytes)) // the loader checked sizes; saturate
            bytes = UINT64_MAX;
    }
    return bytes;
}

/* Default prompt tokens per prefill run. A GPU needs wide products to fill: on an H200,
 * pp512 of Llama 3.2 1B's shapes went from 2509 tokens/s at 64 to 6682 at 256 and 7627 at 512,
 * SmolLM2's from 3535 to 34452 at 512 (`vkinfer bench llm --synthetic ... --batch N`). A CPU
 * device gains nothing from it and keeps the smaller activation arena. */
#define BATCH_GPU 512
#define BATCH_CPU 64
/* A batch run computes all its rows whatever the prompt's length: with a batch several times
 * this size, prompts of up to a quarter of it go through a pass of SHORT_BATCH rows instead (a
 * chat turn of 20 tokens should not cost a 512-token run). */
#define SHORT_BATCH 64
/* Rows of the embeddings pass at least (up to n_ctx): one image's (Gemma 3: 256; SmolVLM: 64
 * per image; LLaVA 1.5's 576 are causal and go through in two runs). */
#define EMBD_BATCH 256
/* Sequences one model holds at most (a server's slots). */
#define MAX_SEQ 256

static vki_status load(vki_llm *m, const vki_llm_desc *d, char *err, size_t err_size)
{
    vki_status st = vki_llm_read_hparams(m->file, &m->hp, &m->arch, err, err_size);
    if (st) return st;
    const vki_llm_hparams *hp = &m->hp;
    uint32_t n_ctx = d->n_ctx ? d->n_ctx : hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    uint32_t n_batch = d->n_batch                             ? d->n_batch
                       : m->profile->type == VKI_DEVICE_CPU ? BATCH_CPU
                                                            : BATCH_GPU;
    if (n_batch > n_ctx) n_batch = n_ctx;
    m->n_seq = d->n_seq ? d->n_seq : 1;
    if (m->n_seq > MAX_SEQ) {
        snprintf(err, err_size, "model: %u sequences asked for, at most %u", m->n_seq, MAX_SEQ);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if ((uint64_t)n_ctx * m->n_seq > INT32_MAX) { // cache rows are I32 positions
        snprintf(err, err_size, "model: %u sequences of %u tokens exceed 2^31 cache rows", m->n_seq,
                 n_ctx);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    m->position = lalloc(m, m->n_seq * sizeof *m->position);
    if (!m->position) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    memset(m->position, 0, m->n_seq * sizeof *m->position);
    const uint32_t *sec = hp->rope_sections;
    if (sec[0] | sec[1] | sec[2] | sec[3]) { // n_ctx * n_seq <= 2^31, checked above
        m->rope_after = lalloc(m, (size_t)n_ctx * m->n_seq * sizeof *m->rope_after);
        if (!m->rope_after) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    vki_dtype kt = d->kv_dtype ? d->kv_dtype : VKI_DTYPE_F16;
    if (kt != VKI_DTYPE_F16 && kt != VKI_DTYPE_F32 && kt != VKI_DTYPE_Q8_0) {
        snprintf(err, err_size, "model: a %s KV cache is not supported (f16, f32, q8_0)",
                 vki_dtype_get(kt)->name);
        return VKI_ERROR_UNSUPPORTED;
    }
    // A Q8_0 cache row is whole 32-element blocks per head: attention decodes one head's keys
    // and values block by block.
    if (kt == VKI_DTYPE_Q8_0 && hp->head_dim % 32) {
        snprintf(err, err_size, "model: a q8_0 KV cache needs a head dimension that is a multiple "
                 "of 32; this model's is %u (use an f16 cache)", hp->head_dim);
        return VKI_ERROR_UNSUPPORTED;
    }
    vki_gguf_string name = {0};
    if (vki_gguf_get_string(m->file, "general.name", &name) == VKI_OK)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(name.size < 127 ? name.size : 127), name.data);
    m->info = (vki_llm_info){
        .arch = m->hp.arch, .name = m->name,
        .n_layer = hp->n_layer, .n_embd = hp->n_embd, .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .n_ff = hp->n_ff,
        .n_vocab = hp->n_vocab, .n_ctx = n_ctx, .n_ctx_train = hp->n_ctx_train, .n_batch = n_batch,
        .kv_dtype = kt, .n_seq = m->n_seq,
        .n_expert = hp->n_expert, .n_expert_used = hp->n_expert_used,
        .n_ff_exp = hp->n_ff_exp, .n_ff_shexp = hp->n_ff_shexp,
        // One image's embeddings in one pass: Gemma 3's 256 need to see each other.
        .n_batch_embd = n_batch > EMBD_BATCH || n_ctx <= n_batch ? n_batch
                        : n_ctx < EMBD_BATCH                     ? n_ctx
                                                                 : EMBD_BATCH,
    };
    snprintf(m->model_name, sizeof m->model_name, "the %s architecture", hp->arch);
    vki_weights_desc wd = {.source = vki_weight_source_gguf(m->file), .device = m->dev,
                           .profile = m->profile, .model_name = m->model_name,
                           .allocator = m->allocator.alloc ? &m->allocator : NULL};
    if ((st = vki_weights_create(&wd, &m->weights))) {
        fail(m, st, "model: %s", vki_status_string(st));
        goto fail;
    }
    if ((st = create_cache(m)) || (st = check_fits(m))) goto fail;
    bool short_batch = n_batch >= 4 * SHORT_BATCH;
    if ((st = build_pass(m, &m->passes[PASS_ONE], 1, false, false))) goto fail;
    if (n_batch > 1 && (st = build_pass(m, &m->passes[PASS_BATCH], n_batch, false, false))) goto fail;
    if (short_batch && (st = build_pass(m, &m->passes[PASS_SHORT], SHORT_BATCH, false, false)))
        goto fail;
    if (m->n_seq > 1) {
        m->seq_passes = lalloc(m, m->n_seq * sizeof *m->seq_passes);
        if (!m->seq_passes) {
            st = fail(m, VKI_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
            goto fail;
        }
        memset(m->seq_passes, 0, m->n_seq * sizeof *m->seq_passes);
        for (uint32_t i = 0; i < m->n_seq; i++)
            if ((st = build_pass(m, &m->seq_passes[i], i + 1, true, false))) goto fail;
    }
    if ((st = vki_weights_check_all_used(m->weights)) || (st = vki_weights_upload(m->weights))) {
        if (vki_weights_error(m->weights)[0]) fail(m, st, "%s", vki_weights_error(m->weights));
        goto fail;
    }
    m->info.weight_bytes = vki_weights_bytes(m->weights);
    m->info.expert_bytes = expert_bytes(m->file);
    for (int i = 0; i < PASS_COUNT; i++)
        if (m->passes[i].prog && (st = compile_pass(m, &m->passes[i]))) goto fail;
    for (uint32_t i = 0; m->seq_passes && i < m->n_seq; i++)
        if ((st = compile_pass(m, &m->seq_passes[i]))) goto fail;
    if (!m->dev) return VKI_OK; // checked: nothing goes to a device
    uint32_t n_i32 = n_batch > m->n_seq ? n_batch : m->n_seq;
    if (m->info.n_batch_embd > n_i32) n_i32 = m->info.n_batch_embd;
    m->host_i32 = lalloc(m, (size_t)4 * n_i32 * sizeof *m->host_i32); // 2: attention, 4: rope positions
    m->host_next = lalloc(m, m->n_seq * sizeof *m->host_next);
    if (!m->host_i32 || !m->host_next) {
        st = fail(m, VKI_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
        goto fail;
    }
    return VKI_OK;
fail:
    if (!m->error[0] && m->dev)
        snprintf(m->error, sizeof m->error, "%s", vki_device_last_error(m->dev));
    snprintf(err, err_size, "%s", m->error);
    return st;
}

/* Loads onto `dev`, or with dev NULL only checks against `profile`. */
static vki_status create(vki_device *dev, const vki_profile *profile, vki_gguf *gguf,
                         const vki_llm_desc *desc, vki_llm **out, char *err, size_t err_size)
{
    char dummy[8];
    if (!err || !err_size) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = 0;
    if (!profile || !gguf) return VKI_ERROR_INVALID_ARGUMENT;
    vki_llm_desc d = desc ? *desc : (vki_llm_desc){0};
    vki_llm tmp = {.allocator = d.allocator ? *d.allocator : (vki_allocator){0}};
    vki_llm *m = lalloc(&tmp, sizeof *m);
    if (!m) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    m->allocator = tmp.allocator;
    m->dev = dev;
    m->profile = profile;
    m->file = gguf;
    vki_status st = load(m, &d, err, err_size);
    if (st || !out) {
        vki_llm_destroy(m);
        return st;
    }
    m->error[0] = 0;
    *out = m;
    return VKI_OK;
}

vki_status vki_llm_load(vki_device *dev, vki_gguf *gguf, const vki_llm_desc *desc, vki_llm **out,
                        char *err, size_t err_size)
{
    if (out) *out = NULL;
    if (!dev || !out) {
        if (err && err_size) err[0] = 0;
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    return create(dev, vki_device_profile(dev), gguf, desc, out, err, err_size);
}

vki_status vki_llm_check(const vki_profile *profile, vki_gguf *gguf, const vki_llm_desc *desc,
                         char *err, size_t err_size)
{
    return create(NULL, profile, gguf, desc, NULL, err, err_size);
}

void vki_llm_destroy(vki_llm *m)
{
    if (!m) return;
    for (int i = 0; i < PASS_COUNT; i++) vki_program_destroy(m->passes[i].prog);
    for (uint32_t i = 0; m->seq_passes && i < m->n_seq; i++) vki_program_destroy(m->seq_passes[i].prog);
    vki_program_destroy(m->embd_pass.prog);
    lfree(m, m->seq_passes);
    lfree(m, m->host_embd);
    vki_weights_destroy(m->weights); // after the programs that bound its ranges
    vki_arena_destroy(m->kv_arena);
    lfree(m, m->kv);
    lfree(m, m->host_i32);
    lfree(m, m->host_next);
    lfree(m, m->position);
    lfree(m, m->rope_after);
    lfree(m, m);
}

const vki_llm_info *vki_llm_info_get(const vki_llm *m) { return m ? &m->info : NULL; }
const char *vki_llm_last_error(const vki_llm *m) { return m ? m->error : ""; }
uint32_t vki_llm_position(const vki_llm *m) { return m ? m->position[0] : 0; }

uint32_t vki_llm_seq_position(const vki_llm *m, uint32_t seq)
{
    return m && seq < m->n_seq ? m->position[seq] : 0;
}

void vki_llm_seq_rewind(vki_llm *m, uint32_t seq, uint32_t pos)
{
    if (m && seq < m->n_seq && pos < m->position[seq]) m->position[seq] = pos;
}

void vki_llm_set_abort(vki_llm *m, bool (*should_abort)(void *user), void *user)
{
    if (!m) return;
    m->should_abort = should_abort;
    m->abort_user = user;
}

void vki_llm_rewind(vki_llm *m, uint32_t pos) { vki_llm_seq_rewind(m, 0, pos); }

/* M-RoPE: the rope position of sequence seq's next row. */
static uint32_t rope_next(const vki_llm *m, uint32_t seq)
{
    uint32_t p = m->position[seq];
    return p ? m->rope_after[(size_t)seq * m->info.n_ctx + p - 1] : 0;
}

/* An image's merged tokens, w x h row by row, from rope position `start`; `first`: the image row
 * a run begins with. */
typedef struct rope_grid {
    uint32_t w, h, start, first;
} rope_grid;

/* M-RoPE: uploads the rope streams of a run of n rows (of n_q) of sequence seq, text positions
 * or an image's grid, and records the rope position after each row. */
static vki_status rope_rows(vki_llm *m, llm_pass *p, uint32_t seq, uint32_t n, const rope_grid *grid)
{
    int32_t *h = m->host_i32; // 4 n_q entries at least
    uint32_t p0 = grid ? grid->start : rope_next(m, seq), n_q = p->n_q;
    uint32_t *after = m->rope_after + (size_t)seq * m->info.n_ctx + m->position[seq];
    for (uint32_t i = 0; i < n_q; i++) {
        // All values <= n_ctx + max(w, h) <= 2 n_ctx: an image's n = w h rows fit the cache.
        int32_t t = i >= n ? 0 : (int32_t)(grid ? p0 : p0 + i), r = t, c = t, s3 = t;
        if (grid && i < n) {
            uint32_t k = grid->first + i;
            r = (int32_t)(p0 + k / grid->w);
            c = (int32_t)(p0 + k % grid->w);
            s3 = 0;
        }
        h[i] = t, h[n_q + i] = r, h[2 * n_q + i] = c, h[3 * n_q + i] = s3;
        if (i < n) after[i] = grid ? p0 + (grid->w > grid->h ? grid->w : grid->h) : p0 + i + 1;
    }
    return vki_program_upload(p->prog, p->rope_pos, h, 4 * (uint64_t)n_q * sizeof *h);
}

/* What vki_llm_sample reads after a call that ran pass p last over `rows` rows (p NULL: the call
 * failed, nothing to sample), whose logits went to out_logits (may be NULL). */
static void sampled(vki_llm *m, llm_pass *p, uint32_t rows, const float *out_logits)
{
    m->sample_pass = p;
    m->sample_rows = rows;
    m->next_read = false;
    m->logits_at = out_logits;
}

/* One run of pass p over n <= p->n_q tokens of sequence seq at its current position; of the
 * embeddings pass, over n rows of embd F32 [n][n_embd] (rows past n zero: they are padding),
 * which with non_causal all attend up to the last of them (grid: an image's rope positions). */
static vki_status run_pass(vki_llm *m, llm_pass *p, uint32_t seq, const int32_t *tokens,
                           const float *embd, uint32_t n, bool non_causal, const rope_grid *grid)
{
    int32_t *h = m->host_i32;
    if (p->rope_pos.id) VKI_TRY(rope_rows(m, p, seq, n, grid));
    if (p->embd.id) {
        size_t row = m->hp.n_embd; // n <= n_q <= n_ctx and n_embd <= 2^16: no overflow
        memcpy(m->host_embd, embd, n * row * sizeof(float));
        memset(m->host_embd + n * row, 0, (p->n_q - n) * row * sizeof(float));
        VKI_TRY(vki_program_upload(p->prog, p->embd, m->host_embd, p->n_q * row * sizeof(float)));
    } else {
        for (uint32_t i = 0; i < p->n_q; i++) h[i] = i < n ? tokens[i] : 0;
        VKI_TRY(vki_program_upload(p->prog, p->tokens, h, p->n_q * sizeof *h));
    }
    for (uint32_t i = 0; i < p->n_q; i++) h[i] = i < n ? (int32_t)(m->position[seq] + i) : -1;
    if (p->pos.id) VKI_TRY(vki_program_upload(p->prog, p->pos, h, p->n_q * sizeof *h));
    if (p->kv_pos.id != p->pos.id) {
        int32_t base = (int32_t)(seq * m->info.n_ctx); // < n_seq * n_ctx, checked at load
        for (uint32_t i = 0; i < n; i++) h[i] += base;
        VKI_TRY(vki_program_upload(p->prog, p->kv_pos, h, p->n_q * sizeof *h));
    }
    if (p->attn_pos.id) {
        // h holds the rows' cache positions: a non-causal span's rows see up to its last one
        // (rope still turns each by its own position), each window counting back from the
        // row's own (the second column); padding rows keep -1.
        memcpy(h + p->n_q, h, p->n_q * sizeof *h);
        for (uint32_t i = 0; non_causal && i + 1 < n; i++) h[i] = h[n - 1];
        VKI_TRY(vki_program_upload(p->prog, p->attn_pos, h, 2 * p->n_q * sizeof *h));
    }
    if (p->last.id) {
        int32_t last = (int32_t)n - 1;
        VKI_TRY(vki_program_upload(p->prog, p->last, &last, sizeof last));
    }
    VKI_TRY(vki_program_run(p->prog));
    m->position[seq] += n;
    return VKI_OK;
}

vki_status vki_llm_eval(vki_llm *m, const int32_t *tokens, uint32_t n, float *out_logits)
{
    return vki_llm_eval_seq(m, 0, tokens, n, out_logits);
}

static vki_status check_tokens(vki_llm *m, const int32_t *tokens, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->info.n_vocab)
            return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: token %u is %d, outside the "
                        "vocabulary of %u", i, tokens[i], m->info.n_vocab);
    return VKI_OK;
}

vki_status vki_llm_eval_seq(vki_llm *m, uint32_t seq, const int32_t *tokens, uint32_t n,
                            float *out_logits)
{
    if (!m || (!tokens && n)) return VKI_ERROR_INVALID_ARGUMENT;
    m->error[0] = 0;
    sampled(m, NULL, 0, NULL);
    if (seq >= m->n_seq)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: sequence %u of %u", seq, m->n_seq);
    if (n == 0) return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: no tokens");
    if (n > m->info.n_ctx - m->position[seq])
        return fail(m, VKI_ERROR_INVALID_ARGUMENT,
                    "context full: %u tokens in the cache and %u more exceed its %u (raise the "
                    "context size, or start over)", m->position[seq], n, m->info.n_ctx);
    VKI_TRY(check_tokens(m, tokens, n));
    llm_pass *last = NULL, *ps = m->passes;
    for (uint32_t i = 0; i < n;) {
        if (i > 0 && m->should_abort && m->should_abort(m->abort_user))
            return fail(m, VKI_ERROR_CANCELLED, "eval: stopped after %u of %u tokens", i, n);
        uint32_t left = n - i;
        // A batch run costs about as much as several one-token runs on most devices; a
        // remainder of a few tokens goes one at a time, a short prompt (or remainder) through
        // the short batch when there is one.
        llm_pass *p = left >= 4 && ps[PASS_BATCH].prog ? &ps[PASS_BATCH] : &ps[PASS_ONE];
        if (p == &ps[PASS_BATCH] && ps[PASS_SHORT].prog && left <= m->info.n_batch / 4)
            p = &ps[PASS_SHORT];
        uint32_t take = left < p->n_q ? left : p->n_q;
        vki_status st = run_pass(m, p, seq, tokens + i, NULL, take, false, NULL);
        if (st) return fail(m, st, "eval: %s", vki_device_last_error(m->dev));
        i += take;
        last = p;
    }
    if (out_logits) {
        vki_status st = vki_program_download(last->prog, last->logits, out_logits,
                                             (uint64_t)m->info.n_vocab * sizeof(float));
        if (st) return fail(m, st, "eval: reading the logits: %s", vki_device_last_error(m->dev));
    }
    sampled(m, last, 1, out_logits);
    return VKI_OK;
}

vki_status vki_llm_decode(vki_llm *m, const uint32_t *seqs, const int32_t *tokens, uint32_t n,
                          float *out_logits)
{
    if (!m || ((!seqs || !tokens) && n)) return VKI_ERROR_INVALID_ARGUMENT;
    m->error[0] = 0;
    sampled(m, NULL, 0, NULL);
    if (n == 0) return fail(m, VKI_ERROR_INVALID_ARGUMENT, "decode: no sequences");
    if (n > m->n_seq)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "decode: %u sequences, the model holds %u", n,
                    m->n_seq);
    if (m->n_seq == 1) return vki_llm_eval_seq(m, seqs[0], tokens, 1, out_logits);
    // Row i is sequence seqs[i], in the pass of n rows: each row is computed alone by the same
    // kernels in every one of these passes (one query per attention workgroup, matrix-vector
    // columns summed independently), so a sequence's logits do not depend on its company.
    int32_t *h = m->host_i32; // n_seq entries at least
    bool used[MAX_SEQ] = {false};
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = seqs[i];
        if (s >= m->n_seq || used[s])
            return fail(m, VKI_ERROR_INVALID_ARGUMENT, "decode: sequence %u %s", s,
                        s >= m->n_seq ? "does not exist" : "appears twice");
        if (m->position[s] >= m->info.n_ctx)
            return fail(m, VKI_ERROR_INVALID_ARGUMENT, "context full: sequence %u holds its %u "
                        "tokens (start over)", s, m->info.n_ctx);
        used[s] = true;
    }
    VKI_TRY(check_tokens(m, tokens, n));
    llm_pass *p = &m->seq_passes[n - 1];
    vki_status st = vki_program_upload(p->prog, p->tokens, tokens, n * sizeof *tokens);
    if (!st && p->rope_pos.id) { // all four streams at each sequence's next rope position
        for (uint32_t i = 0; i < n; i++) {
            uint32_t s = seqs[i], r = rope_next(m, s);
            m->rope_after[(size_t)s * m->info.n_ctx + m->position[s]] = r + 1;
            for (int k = 0; k < 4; k++) h[k * n + i] = (int32_t)r;
        }
        st = vki_program_upload(p->prog, p->rope_pos, h, 4 * (uint64_t)n * sizeof *h);
    }
    for (uint32_t i = 0; i < n; i++) h[i] = (int32_t)m->position[seqs[i]];
    if (!st && p->pos.id) st = vki_program_upload(p->prog, p->pos, h, n * sizeof *h);
    // Bounded: s < n_seq and pos < n_ctx, whose product the load checked.
    for (uint32_t i = 0; i < n; i++) h[i] += (int32_t)(seqs[i] * m->info.n_ctx);
    if (!st) st = vki_program_upload(p->prog, p->kv_pos, h, n * sizeof *h);
    if (st) return fail(m, st, "decode: %s", vki_device_last_error(m->dev));
    if ((st = vki_program_run(p->prog))) return fail(m, st, "decode: %s", vki_device_last_error(m->dev));
    for (uint32_t i = 0; i < n; i++) m->position[seqs[i]]++;
    if (out_logits) {
        st = vki_program_download(p->prog, p->logits, out_logits,
                                  (uint64_t)n * m->info.n_vocab * sizeof(float));
        if (st) return fail(m, st, "decode: reading the logits: %s", vki_device_last_error(m->dev));
    }
    sampled(m, p, n, out_logits);
    return VKI_OK;
}

/* The embeddings pass, built and compiled on first use (text-only users never pay for it):
 * the weights it reads are those the token passes registered, already on the device. */
static vki_status embd_pass(vki_llm *m)
{
    if (m->embd_pass.prog) return VKI_OK;
    uint64_t bytes = (uint64_t)m->info.n_batch_embd * m->hp.n_embd * sizeof(float);
    vki_status st = (uint64_t)(size_t)bytes == bytes ? VKI_OK : VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (!st && !(m->host_embd = lalloc(m, (size_t)bytes))) st = VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (st) return fail(m, st, "eval: out of host memory for the embeddings pass");
    if (!(st = build_pass(m, &m->embd_pass, m->info.n_batch_embd, false, true)))
        st = compile_pass(m, &m->embd_pass);
    if (st) { // a later call tries again
        vki_program_destroy(m->embd_pass.prog);
        m->embd_pass = (llm_pass){0};
        lfree(m, m->host_embd);
        m->host_embd = NULL;
        if (!m->error[0]) fail(m, st, "eval: the embeddings pass: %s", vki_status_string(st));
    }
    return st;
}

/* vki_llm_eval_embd and vki_llm_eval_image (grid_w 0: rows at text positions). */
static vki_status eval_rows(vki_llm *m, uint32_t seq, const float *embd, uint32_t n,
                            uint32_t grid_w, uint32_t grid_h, bool non_causal, float *out_logits)
{
    if (!m || (!embd && n)) return VKI_ERROR_INVALID_ARGUMENT;
    m->error[0] = 0;
    sampled(m, NULL, 0, NULL);
    if (seq >= m->n_seq)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: sequence %u of %u", seq, m->n_seq);
    if (n == 0) return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: no embeddings");
    if (n > m->info.n_ctx - m->position[seq])
        return fail(m, VKI_ERROR_INVALID_ARGUMENT,
                    "context full: %u tokens in the cache and %u embeddings more exceed its %u "
                    "(raise the context size, or start over)", m->position[seq], n, m->info.n_ctx);
    if (non_causal && n > m->info.n_batch_embd)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: %u embeddings that see each other need "
                    "one pass, and the embeddings pass holds %u (raise the batch size)", n,
                    m->info.n_batch_embd);
    // n <= n_ctx <= 2^31 rows of n_embd <= 2^16: the count fits 64 bits.
    uint64_t count = (uint64_t)n * m->hp.n_embd;
    for (uint64_t i = 0; i < count; i++)
        if (!isfinite(embd[i]))
            return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: embedding %llu (row %llu) is not "
                        "a finite number", (unsigned long long)i,
                        (unsigned long long)(i / m->hp.n_embd));
    VKI_TRY(embd_pass(m));
    llm_pass *p = &m->embd_pass;
    rope_grid grid = {.w = grid_w, .h = grid_h, .start = m->rope_after ? rope_next(m, seq) : 0};
    for (uint32_t i = 0; i < n;) {
        if (i > 0 && m->should_abort && m->should_abort(m->abort_user))
            return fail(m, VKI_ERROR_CANCELLED, "eval: stopped after %u of %u embeddings", i, n);
        uint32_t take = n - i < p->n_q ? n - i : p->n_q;
        grid.first = i;
        vki_status st = run_pass(m, p, seq, NULL, embd + (size_t)i * m->hp.n_embd, take, non_causal,
                                 grid_w ? &grid : NULL);
        if (st) return fail(m, st, "eval: %s", vki_device_last_error(m->dev));
        i += take;
    }
    if (out_logits) {
        vki_status st = vki_program_download(p->prog, p->logits, out_logits,
                                             (uint64_t)m->info.n_vocab * sizeof(float));
        if (st) return fail(m, st, "eval: reading the logits: %s", vki_device_last_error(m->dev));
    }
    sampled(m, p, 1, out_logits);
    return VKI_OK;
}

vki_status vki_llm_eval_embd(vki_llm *m, uint32_t seq, const float *embd, uint32_t n,
                             bool non_causal, float *out_logits)
{
    return eval_rows(m, seq, embd, n, 0, 0, non_causal, out_logits);
}

vki_status vki_llm_eval_image(vki_llm *m, uint32_t seq, const float *embd, uint32_t grid_w,
                              uint32_t grid_h, bool non_causal, float *out_logits)
{
    if (!m) return VKI_ERROR_INVALID_ARGUMENT;
    uint64_t n = (uint64_t)grid_w * grid_h;
    if (n == 0 || n > UINT32_MAX)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "eval: an image grid of %u x %u merged tokens",
                    grid_w, grid_h);
    return eval_rows(m, seq, embd, (uint32_t)n, grid_w, grid_h, non_causal, out_logits);
}

vki_status vki_llm_sample(vki_llm *m, uint32_t row, vki_sampler *s, float *logits, int32_t *out_token)
{
    if (!m || !s || !logits || !out_token) return VKI_ERROR_INVALID_ARGUMENT;
    m->error[0] = 0;
    llm_pass *p = m->sample_pass;
    if (!p)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "sample: no logits: the last eval or decode "
                    "failed, or there was none");
    if (row >= m->sample_rows)
        return fail(m, VKI_ERROR_INVALID_ARGUMENT, "sample: row %u of a call of %u", row,
                    m->sample_rows);
    vki_status st;
    if (p->next.id && vki_sampler_is_greedy(s)) {
        if (!m->next_read) { // every row's at once: a server samples them all
            st = vki_program_download(p->prog, p->next, m->host_next,
                                      m->sample_rows * sizeof *m->host_next);
            if (st) return fail(m, st, "sample: reading the tokens: %s", vki_device_last_error(m->dev));
            m->next_read = true;
        }
        if (m->host_next[row] >= 0) {
            *out_token = m->host_next[row];
            return VKI_OK;
        }
        // The largest logit is +inf (the sampler takes it as the largest finite float, whose
        // ties differ) or nothing is finite (the sampler refuses the row): its rules decide.
    }
    uint64_t row_size = m->info.n_vocab;
    if (m->logits_at != logits) {
        st = vki_program_download(p->prog, p->logits, logits,
                                  m->sample_rows * row_size * sizeof *logits);
        if (st) return fail(m, st, "sample: reading the logits: %s", vki_device_last_error(m->dev));
        m->logits_at = logits;
    }
    if ((st = vki_sampler_sample(s, logits + row * row_size, out_token)))
        return fail(m, st, "%s", vki_sampler_last_error(s));
    return VKI_OK;
}
