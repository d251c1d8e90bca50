/* attention: fused scaled-dot-product attention with an online softmax (FlashAttention).
 * out[:, h, i] = sum_j softmax_j(scale q[:, h, i] . k[:, hk, j] + mask[j, i]) v[:, hk, j]
 * with hk = h / (n_head / n_kv_head), over the kv positions j query i may see (all;
 * j <= i + n_kv - n_q when causal: the queries are the last n_q of the n_kv positions; with
 * positions (vki_attention_pos) pos[i] - window < j <= pos[i], the window only when non-zero;
 * with two positions per query, pos [n_q, 2], pos[i, 1] - window < j <= pos[i, 0]).
 * Scores live only in registers and shared memory, one kv tile at a time; sums are fp32. A row
 * with no visible position (every score masked with -inf, a causal query before the first kv
 * position, a padding query with pos < 0) gives zeros. K and V may both be Q8_0 (a quantised
 * KV cache), decoded in registers as block scale times int8; one format for both keeps one
 * specialised loop per format in the kernels.
 *
 * Node: src {q, k, v, mask or 0, pos or 0, k_new, v_new}; parameters attention_params. The
 * last two sources only where this op's fusion hook has folded a decode step's cache writes in
 * (fuse, appends): k and v are then the caches themselves (F16), written at
 * pos[0] with k_new and v_new (F32 [D * n_kv_head]) before they are read, as the set_rows did.
 * The reference never sees such a node (fusion rewrites the compiler's copy of the graph). */
#include "matmul_internal.h"
#include "ops_internal.h"
#include "vki_abi.h"

#include <math.h>
#include <stdio.h>

/* The node's parameters. */
typedef struct attention_params {
    float scale;     // of the scores q . k
    uint32_t causal; // query i sees kv positions up to i + n_kv - n_q
    uint32_t window; // with positions: the last `window` positions only (0: all)
    uint32_t seq_len; // with positions: kv positions form sequences of seq_len (0: one)
} attention_params;
static_assert(sizeof(attention_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static attention_params params(const vki_node *n)
{
    attention_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static bool is_float(vki_dtype t) { return t == VKI_DTYPE_F32 || t == VKI_DTYPE_F16; }

/* A Q8_0 k or v as the kernels read it: dim 0 whole contiguous blocks (so that element d of a
 * head is block d / 32 of it), every block at an even byte (its f16 scale and its quant pairs
 * are half-words). */
static bool q8_readable(const vki_node *n)
{
    return n->ne[0] % 32 == 0 && (n->ne[0] == 32 || n->nb[0] == 34) &&
           (n->ne[1] == 1 || n->nb[1] % 2 == 0) && (n->ne[2] == 1 || n->nb[2] % 2 == 0) &&
           n->view_offset % 2 == 0;
}

/* Both builders: mask and pos may be {0}. */
static vki_tensor build(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor mask,
                        vki_tensor pos, float scale, bool causal, uint32_t window,
                        uint32_t seq_len)
{
    vki_tensor srcs[5] = {q, k, v, mask, pos};
    bool ok = vki__check_srcs(g, "attention", 3, srcs);
    for (int i = 3; ok && i < 5; i++) ok = !srcs[i].id || vki__check_srcs(g, "attention", 1, &srcs[i]);
    if (!ok) return (vki_tensor){0};
    const vki_node *nq = vki__node(g, q), *nk = vki__node(g, k), *nv = vki__node(g, v);
    const vki_node *nm = mask.id ? vki__node(g, mask) : NULL, *np = pos.id ? vki__node(g, pos) : NULL;
    char sq[96], sk[96], sv[96], sm[96];
    vki__shape_str(nq, sq);
    vki__shape_str(nk, sk);
    vki__shape_str(nv, sv);
    bool k8 = nk->dtype == VKI_DTYPE_Q8_0, v8 = nv->dtype == VKI_DTYPE_Q8_0;
    if (!is_float(nq->dtype) || !(is_float(nk->dtype) || k8) || !(is_float(nv->dtype) || v8) ||
        (nm && !is_float(nm->dtype)))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "attention: q %s, k %s, v %s%s%s: want f32 or f16 (k and v may "
                               "also both be q8_0)", sq, sk, sv, nm ? ", mask " : "",
                               nm ? vki__shape_str(nm, sm) : "");
    if (k8 != v8 || (k8 && (!q8_readable(nk) || !q8_readable(nv))))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "attention: k %s, v %s: q8_0 k and v go together, with a head dim "
                               "that is a multiple of 32, contiguous in dim 0, at even byte offsets",
                               sk, sv);
    int64_t d = nq->ne[0], n_head = nq->ne[1], n_q = nq->ne[2], n_kv_head = nk->ne[1], n_kv = nk->ne[2];
    if (d < 1 || d > VKI_ATTN_MAX_HEAD_DIM || nk->ne[0] != d || !vki__same_shape(nk, nv) ||
        nq->ne[3] != 1 || nk->ne[3] != 1 || n_head % n_kv_head != 0)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "attention: q %s, k %s, v %s: want q [D, n_head, n_q] and k, v "
                               "[D, n_kv_head, n_kv] with D <= %d and n_head a multiple of n_kv_head",
                               sq, sk, sv, VKI_ATTN_MAX_HEAD_DIM);
    if (nm && (nm->ne[0] != n_kv || nm->ne[1] != n_q || nm->ne[2] != 1 || nm->ne[3] != 1))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "attention: mask %s for q %s, k %s: want [%lld, %lld]",
                               vki__shape_str(nm, sm), sq, sk, (long long)n_kv, (long long)n_q);
    if (np && (np->dtype != VKI_DTYPE_I32 || np->ne[0] != n_q || np->ne[1] > 2 ||
               np->ne[2] * np->ne[3] != 1))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "attention: pos %s for q %s: want i32 [%lld] or [%lld, 2]",
                               vki__shape_str(np, sm), sq, (long long)n_q, (long long)n_q);
    int64_t ne[4] = {d, n_head, n_q, 1};
    vki_tensor t = vki__new_op(g, &vki_op_attention, VKI_DTYPE_F32, 3, ne, 5, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) {
        attention_params p = {.scale = scale, .causal = causal, .window = window, .seq_len = seq_len};
        vki__params_set(n, &p, sizeof p);
    }
    return t;
}

vki_tensor vki_attention(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor mask,
                         float scale, bool causal)
{
    return build(g, q, k, v, mask, (vki_tensor){0}, scale, causal, 0, 0);
}

vki_tensor vki_attention_pos(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor pos,
                             float scale, uint32_t window)
{
    if (g && g->status == VKI_OK && !pos.id)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "attention_pos: pos is not a tensor");
    return build(g, q, k, v, (vki_tensor){0}, pos, scale, false, window, 0);
}

vki_tensor vki_attention_seq(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor pos,
                             float scale, uint32_t window, uint32_t seq_len)
{
    if (g && g->status == VKI_OK && !pos.id)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "attention_seq: pos is not a tensor");
    return build(g, q, k, v, (vki_tensor){0}, pos, scale, false, window, seq_len);
}

/* Kv positions [*lo, *hi) query i sees (see the top of the file); may be empty. */
static void kv_range(const vki_node *n, const vki_ref_tensor *pos, int64_t i, int64_t n_q,
                     int64_t n_kv, int64_t *lo, int64_t *hi)
{
    *lo = 0;
    *hi = n_kv;
    attention_params ap = params(n);
    if (ap.causal && i + 1 + n_kv - n_q < *hi) *hi = i + 1 + n_kv - n_q;
    if (pos) {
        int64_t p = (int64_t)vki_ref_get(pos, i, 0, 0, 0);
        int64_t w = pos->ne[1] == 2 ? (int64_t)vki_ref_get(pos, i, 1, 0, 0) : p; // window's newest
        if (p + 1 < *hi) *hi = p + 1;
        if (ap.window && w + 1 - (int64_t)ap.window > *lo) *lo = w + 1 - (int64_t)ap.window;
        if (ap.seq_len && p >= 0 && p - p % ap.seq_len > *lo) *lo = p - p % ap.seq_len;
    }
}

/* Two passes per row in double (max, then exp-sums), so that no score row is stored. */
static void reference(const vki_node *n, const vki_ref_tensor *dst, const vki_ref_tensor *s)
{
    const vki_ref_tensor *q = &s[0], *k = &s[1], *v = &s[2], *mask = n->src[3] ? &s[3] : NULL;
    const vki_ref_tensor *pos = n->src[4] ? &s[4] : NULL;
    int64_t dim = q->ne[0], n_head = q->ne[1], n_q = q->ne[2], n_kv = k->ne[2], group = n_head / k->ne[1];
    for (int64_t i = 0; i < n_q; i++)
        for (int64_t h = 0; h < n_head; h++) {
            int64_t hk = h / group, lo, hi;
            kv_range(n, pos, i, n_q, n_kv, &lo, &hi);
            double mx = -INFINITY, l = 0, acc[VKI_ATTN_MAX_HEAD_DIM] = {0};
            for (int pass = 0; pass < 2; pass++)
                for (int64_t j = lo; j < hi; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < dim; d++)
                        dot += (double)vki_ref_get(q, d, h, i, 0) * vki_ref_get(k, d, hk, j, 0);
                    double sc = params(n).scale * dot + (mask ? vki_ref_get(mask, j, i, 0, 0) : 0.0);
                    if (sc == -INFINITY) continue;
                    if (pass == 0) {
                        mx = sc > mx ? sc : mx;
                        continue;
                    }
                    double p = exp(sc - mx);
                    l += p;
                    for (int64_t d = 0; d < dim; d++) acc[d] += p * vki_ref_get(v, d, hk, j, 0);
                }
            for (int64_t d = 0; d < dim; d++)
                vki_ref_set(dst, d, h, i, 0, l > 0 ? (float)(acc[d] / l) : 0.0f);
        }
}

/* The kernel for a profile and its shape. */
typedef struct attn_kernel {
    const char *name;
    uint32_t wg;            // invocations per workgroup
    uint32_t rows;          // rows (query, head) per workgroup
    vki_spec own;           // the kernel's own constant: COLS (tiled) or LANES (rows)
    uint32_t subgroup_size; // required of the pipeline (rows kernel on subgroups), else 0
    vki_spec extra;         // a second constant (keys kernel: rows per subgroup); id 0: none
} attn_kernel;

/* Tiled kernel (devices with fast shared memory): no more rows than a kv head has (decode has
 * `group`), a kv tile wide enough that every invocation scores one position or more, then the
 * tile halved, and the rows, until shared memory holds Q [rows, D], K [cols, D + 1],
 * V [cols, D], P [rows, cols] and five words per row. Rows kernel (no barriers): a row per
 * subgroup, whose size is pinned because the lanes split D by it, or per invocation. */
#ifndef SHARED_ROWS
#define SHARED_ROWS 32
#endif
#define SPLIT_TARGET 128 // workgroups a split decode step aims at
#define SPLIT_MAX 32     // slices at most (the combine step reads them all per output)
#define MAX_SHARED_ROWS 32 // rows of one subgroup in the keys kernel
#define UNROLL_MAX_ROWS 4  // rows of one subgroup for its unrolled variants (compile time)
// Dims x rows of one subgroup for the unrolled variants: lavapipe's compile time grows faster
// than the unrolled body (Gemma 3's D = 256 at 4 rows: about ten minutes for its two variants).
#define UNROLL_MAX_DIMS 256

static const char keys_tx[] = "attention_keys_sg_tx"; // unrolled, as _wide
static const char keys_wide[] = "attention_keys_sg_wide", keys_append[] = "attention_keys_sg_append";

static bool pick_kernel(const vki_profile *p, uint32_t d, uint32_t n_rows, uint32_t group,
                        attn_kernel *k)
{
    bool subgroup = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) != 0;
    uint32_t wg = p->tuning.workgroup_size ? p->tuning.workgroup_size : 64;
    if (!p->tuning.attention_tiled) {
        uint32_t lanes = subgroup ? p->tuning.subgroup_size : 1;
        wg = wg < lanes ? lanes : wg - wg % lanes;
        if (!subgroup) {
            *k = (attn_kernel){"attention_rows", wg, wg, {VKI_ATTN_SPEC_LANES, 1}, 0, {0, 0}};
            return true;
        }
        // The keys kernel: a workgroup of one subgroup taking several rows at once (whole
        // groups of heads that share a kv head where they fit, then further queries), so that
        // their K and V loads are shared. Each row holds q and its output (2 D floats) per
        // lane: about 2 K floats of rows in all (16 rows at D = 64: prefill attention 3.6x
        // faster on lavapipe than one row at a time; decode 2.5x, its rows being few). At most
        // 32 rows: with more, lavapipe (Mesa 22.3) ran the kernel without writing anything
        // (D = 8, 34 and 48 rows: all zeros; the conformance case D8 q24 is that shape).
        // With texel loads, at most UNROLL_MAX_ROWS, for the variants with unrolled loops
        // (_tx, _wide): SmolLM2's prefill attention, q128 f32, 23.1 ms at 15 rows, 10.8 ms at 3
        // unrolled.
        uint32_t most = d <= 128 ? 1024 / d : 4;
        if (most > MAX_SHARED_ROWS) most = MAX_SHARED_ROWS;
        if (p->tuning.texel_loads && most > UNROLL_MAX_ROWS) most = UNROLL_MAX_ROWS;
        if (p->tuning.texel_loads && most > UNROLL_MAX_DIMS / d) most = UNROLL_MAX_DIMS / d;
        uint32_t shared_rows = group <= most ? most / group * group : most;
        if (shared_rows > n_rows) shared_rows = n_rows;
        if (shared_rows == 0) shared_rows = 1;
        *k = (attn_kernel){p->tuning.texel_loads ? keys_tx : "attention_keys_sg", lanes,
                           shared_rows, {VKI_ATTN_SPEC_LANES, lanes}, lanes,
                           {VKI_ATTN_SPEC_SHARED_ROWS, shared_rows}};
        return true;
    }
    uint32_t r = 16, c;
    while (r > 1 && r / 2 >= n_rows) r /= 2;
    c = wg / r < 32 ? 32 : wg / r > 128 ? 128 : wg / r;
    for (;;) {
        uint64_t floats = (uint64_t)r * d + (uint64_t)c * (2 * d + 1) + (uint64_t)r * c + 5ull * r;
        if (4 * floats <= p->shared_memory) break;
        if (c > 8) c /= 2;
        else if (r > 1) r /= 2;
        else return false;
    }
    *k = (attn_kernel){subgroup ? "attention_tiled_sg" : "attention_tiled", wg, r,
                       {VKI_ATTN_SPEC_COLS, c}, 0, {0, 0}};
    return true;
}

/* Cooperative matrices (attention_coopmat.comp): where the profile runs the cooperative-matrix
 * kernels (matmul's rules: the tuning and the device, subgroups, the emulation's or at least 8
 * lanes), for F32/F16 K and V and a long query block, COOPMAT_MIN_ROWS rows of a kv head or more
 * (prefill, the U-Net's attention; decode has a handful and keeps its kernels). The subgroup size
 * must be pinned (size control) or the device's only one, since each subgroup owns FRAG_M rows.
 * The workgroup aims at COOPMAT_ROWS rows (fewer for fewer rows), a subgroup per FRAG_M of them:
 * 4 subgroups of 16 on NVIDIA and AMD (16 x 16 x 16 fragments), 8 of 8 on Intel Arc (8 x 16 x 16)
 * and on the emulation; the kv tile starts at COOPMAT_COLS positions and is halved, then the rows,
 * until shared memory (the device's limit) holds the K and V tiles, P, S, O and the rows' state.
 * D is zero-padded to a multiple of 16 and of the fragments (SD 1.x's 40 to 48, its 80 and 160
 * as they are): the padding adds nothing to the scores or the outputs. */
#define COOPMAT_MIN_ROWS 32
#define COOPMAT_ROWS 64
#define COOPMAT_COLS 64

typedef struct coopmat_attn {
    uint32_t rows, cols, dp; // the workgroup's query rows, the kv tile, the padded head dimension
    uint32_t fm, fn, fk, wg;
    const char *suffix;      // cmk: VK_KHR_, cm: VK_NV_, cme: emulated fragments
} coopmat_attn;

static uint64_t coopmat_shared(uint32_t rows, uint32_t cols, uint32_t dp)
{
    // attention_coopmat.comp's shared arrays: the K and V tiles (fp16, rows of dp + 8), P (fp16,
    // rows of cols + 8), S (fp32, rows of cols + 4), O (fp32) and five words of state per row.
    return 4ull * cols * (dp + 8) + 2ull * rows * (cols + 8) + 4ull * rows * (cols + 4) + 4ull * rows * dp +
           20ull * rows;
}

static bool coopmat_plan(const vki_profile *p, uint32_t d, uint32_t n_rows, coopmat_attn *out)
{
    coopmat_attn c = {.fm = p->coopmat_shape[0], .fn = p->coopmat_shape[1], .fk = p->coopmat_shape[2]};
    if (!vki__coopmat_device(p) || !p->subgroup_size ||
        (!p->subgroup_size_control && p->subgroup_min != p->subgroup_max) || n_rows < COOPMAT_MIN_ROWS ||
        !c.fm || !c.fn || !c.fk || COOPMAT_ROWS % c.fm)
        return false;
    uint32_t step = c.fn > c.fk ? c.fn : c.fk; // fragment sizes are powers of two (the profile)
    if (step < 16) step = 16;
    c.dp = (d + step - 1) / step * step;
    c.rows = COOPMAT_ROWS;
    while (c.rows / 2 >= n_rows && c.rows / 2 >= c.fm) c.rows /= 2;
    uint32_t most = p->max_workgroup_invocations < p->max_workgroup_size[0] ? p->max_workgroup_invocations
                                                                            : p->max_workgroup_size[0];
    while (c.rows > c.fm && c.rows / c.fm * p->subgroup_size > most) c.rows /= 2;
    c.cols = COOPMAT_COLS;
    // The queries are staged where the K and V tiles go: rows <= 2 cols.
    while (coopmat_shared(c.rows, c.cols, c.dp) > p->shared_memory) {
        if (c.cols / 2 >= step && c.cols >= c.rows) c.cols /= 2;
        else if (c.rows / 2 >= c.fm) c.rows /= 2;
        else return false;
    }
    c.wg = c.rows / c.fm * p->subgroup_size;
    c.suffix = vki__coopmat_suffix(p);
    *out = c;
    return c.wg <= most && c.rows <= 2 * c.cols;
}

/* F16 k or v whose rows all start at 16-byte texels, D % 8 == 0 (the keys kernel's WIDE loads);
 * offset and strides in elements, as the lowering's operands give them. */
static bool wide_rows(uint32_t d, uint32_t offset, const uint32_t *nb)
{
    return d % 8 == 0 && nb[0] == 1 && (offset | nb[1] | nb[2]) % 8 == 0;
}

/* The queries kernel (attention_queries.comp) for CPU devices (the profiles of the barrier-free
 * kernels that read texel buffers): a long query block (a workgroup's lanes x QC queries or
 * more) of float K and V of one dtype whose rows start at 16-byte texels (4 F32 or 8 F16 dims),
 * without sequences, Q8_0 or a folded cache write. QC, the queries each invocation holds, keeps
 * its q and output rows to 256 floats (4 at D 40 and 64, 3 at D 80, 2 at D 128, 1 at D 160 and
 * 256): the unrolled rows are what lavapipe compiles. 0: not this kernel's case. */
#define QUERIES_DIMS 256

static uint32_t queries_per_lane(const vki_profile *p, const vki_node *n, const vki_node *nk,
                                 const vki_node *nv, const vki_operand *q, const vki_operand *k,
                                 const vki_operand *v, uint32_t lanes)
{
    if (p->tuning.attention_tiled || !p->tuning.texel_loads || n->src[5] || params(n).seq_len ||
        nk->dtype != nv->dtype || !is_float(nk->dtype))
        return 0;
    uint32_t per = nk->dtype == VKI_DTYPE_F16 ? 8 : 4, d = q->ne[0];
    uint32_t qc = QUERIES_DIMS / d > 4 ? 4 : QUERIES_DIMS / d;
    if (d % per || qc == 0 || q->ne[2] < lanes * qc) return 0;
    for (const vki_operand *o = k; o; o = o == k ? v : NULL)
        if (o->nb[0] != 1 || (o->offset | o->nb[1] | o->nb[2]) % per) return 0;
    return qc;
}

/* Whether attention of q, reading F16 caches k and v, lowers on this profile to a kernel that
 * also writes a decode step's new rows into them (the keys kernel's _append variant). */
static bool appends(const vki_profile *p, const vki_node *q, const vki_node *k, const vki_node *v)
{
    attn_kernel kern;
    if (!p || q->ne[2] != 1 || k->ne[1] < 1 || q->ne[1] % k->ne[1] ||
        !pick_kernel(p, (uint32_t)q->ne[0], (uint32_t)(q->ne[1] / k->ne[1]),
                     (uint32_t)(q->ne[1] / k->ne[1]), &kern) ||
        kern.name != keys_tx)
        return false;
    for (const vki_node *c = k; c; c = c == k ? v : NULL) {
        uint32_t nb[3] = {(uint32_t)(c->nb[0] / 2), (uint32_t)(c->nb[1] / 2), (uint32_t)(c->nb[2] / 2)};
        if (c->dtype != VKI_DTYPE_F16 || c->view_offset % 16 || c->nb[1] % 2 || c->nb[2] % 2 ||
            !wide_rows((uint32_t)q->ne[0], 0, nb))
            return false;
    }
    return true;
}

/* attention a_id of a decode step (one query, masked by positions pos) whose k and v are the
 * reshaped results of set_rows writing new rows at pos into F16 caches, results that no node
 * between the write and a_id reads (it would miss the write once a_id makes it): the rows go
 * into a_id (src[5], src[6]), which writes them itself where the profile's kernel can (the
 * keys kernel's _append variant, appends), and each set_rows becomes a view of its cache.
 * The op's fusion hook (vki_op_def.fuse). */
static bool fuse(vki_fusion *f, uint32_t a_id)
{
    vki_graph *w = f->w;
    vki_node *a = &w->nodes[a_id];
    if (!f->profile || !a->src[4] || a->src[3] || a->src[5] || a->src[1] == a->src[2] ||
        (!a->output && !f->uses[a_id]))
        return false;
    // Attention over sequences keeps its cache writes apart: a decode step of one sequence then
    // runs the kernels a step of several runs, and gives the same bits (vki_attention_seq).
    attention_params ap = params(a);
    if (ap.seq_len || w->nodes[a->src[4]].ne[1] != 1) return false; // (or two positions a query)
    uint32_t s_ids[2];
    for (int side = 0; side < 2; side++) {
        uint32_t r_id = a->src[1 + side];
        const vki_node *r = &w->nodes[r_id];
        if (r->kind != VKI_NODE_VIEW) return false;
        uint32_t s_id = r->src[0];
        const vki_node *s = &w->nodes[s_id], *rows = &w->nodes[s->src[1]];
        // r: the whole cache [D * n_kv_head, n_kv] as [D, n_kv_head, n_kv]; the rows: F32 [D *
        // n_kv_head, 1] with contiguous dims.
        if (s->kind != VKI_NODE_OP || s->op != &vki_op_set_rows || s->output || f->uses[s_id] != 1 ||
            s->src[2] != a->src[4] || r->view_offset != s->view_offset ||
            r->ne[0] * r->ne[1] != s->ne[0] || r->ne[2] != s->ne[1] || r->ne[3] != 1 ||
            r->nb[0] != s->nb[0] || r->nb[1] != r->nb[0] * (uint64_t)r->ne[0] || r->nb[2] != s->nb[1] ||
            rows->dtype != VKI_DTYPE_F32 || rows->nb[0] != 4 || rows->ne[0] != s->ne[0] ||
            rows->ne[1] * rows->ne[2] * rows->ne[3] != 1)
            return false;
        for (uint32_t id = r_id + 1; id < a_id; id++)
            for (int i = 0; i < VKI_MAX_SRC; i++)
                if (w->nodes[id].src[i] == r_id) return false;
        s_ids[side] = s_id;
    }
    if (s_ids[0] == s_ids[1] ||
        !appends(f->profile, &w->nodes[a->src[0]], &w->nodes[a->src[1]], &w->nodes[a->src[2]]))
        return false;
    for (int side = 0; side < 2; side++) {
        vki_node *s = &w->nodes[s_ids[side]];
        a->src[5 + side] = s->src[1]; // its use moves from the set_rows to a_id
        f->uses[s->src[2]]--;
        s->kind = VKI_NODE_VIEW; // of the cache, keeping shape, strides, base and offset
        s->op = NULL;
        s->src[1] = s->src[2] = 0;
    }
    return true;
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    uint32_t self = vki_lower_self(L), mask_id = n->src[3] ? n->src[3] : n->src[0];
    uint32_t pos_id = n->src[4] ? n->src[4] : n->src[0];
    const vki_node *nq = vki_lower_node(L, n->src[0]), *nk = vki_lower_node(L, n->src[1]);
    const vki_node *nv = vki_lower_node(L, n->src[2]);
    const vki_node *nm = n->src[3] ? vki_lower_node(L, n->src[3]) : NULL;
    const vki_node *np = n->src[4] ? vki_lower_node(L, n->src[4]) : NULL;
    vki_operand q = vki_lower_operand(L, n->src[0]), k = vki_lower_operand(L, n->src[1]);
    vki_operand v = vki_lower_operand(L, n->src[2]), d = vki_lower_operand(L, self);
    vki_operand m = vki_lower_operand(L, mask_id), ps = vki_lower_operand(L, pos_id);
    uint32_t n_kv_head = k.ne[1], group = q.ne[1] / n_kv_head, n_rows = q.ne[2] * group;
    vki_pc_attention pc = {
        .n_q = q.ne[2], .n_head = q.ne[1], .group = group, .n_kv = k.ne[2],
        .q_off = q.offset, .q_nb0 = q.nb[0], .q_nb1 = q.nb[1], .q_nb2 = q.nb[2],
        .k_off = k.offset, .k_nb0 = k.nb[0], .k_nb1 = k.nb[1], .k_nb2 = k.nb[2],
        .v_off = v.offset, .v_nb0 = v.nb[0], .v_nb1 = v.nb[1], .v_nb2 = v.nb[2],
        .m_off = m.offset, .m_nb0 = m.nb[0], .m_nb1 = m.nb[1],
        .d_off = d.offset, .scale = params(n).scale,
        .p_off = ps.offset, .p_nb0 = ps.nb[0], .window = params(n).window,
        .seq_len = params(n).seq_len, .p_nb1 = ps.nb[1],
        .flags = (params(n).causal ? VKI_ATTN_CAUSAL : 0) | (nm ? VKI_ATTN_HAS_MASK : 0) |
                 (nq->dtype == VKI_DTYPE_F16 ? VKI_ATTN_Q_F16 : 0) |
                 (nk->dtype == VKI_DTYPE_F16 ? VKI_ATTN_K_F16 : 0) |
                 (nv->dtype == VKI_DTYPE_F16 ? VKI_ATTN_V_F16 : 0) |
                 (nk->dtype == VKI_DTYPE_Q8_0 ? VKI_ATTN_KV_Q8_0 : 0) |
                 (nm && nm->dtype == VKI_DTYPE_F16 ? VKI_ATTN_MASK_F16 : 0) |
                 (np ? VKI_ATTN_HAS_POS : 0) | (np && np->ne[1] == 2 ? VKI_ATTN_WINDOW_POS : 0),
    };
    // The bindings every kernel takes (abi_attention.h); the keys kernel's _append variant rebinds two.
    uint32_t tensors[7] = {n->src[0], n->src[1], n->src[2], mask_id, self, pos_id, self};
    // Cooperative matrices: not for Q8_0 K/V, a folded cache write (decode) or sequences (whose
    // rows the other kernels keep independent of the other queries in the run).
    coopmat_attn cm;
    if (!n->src[5] && !params(n).seq_len && nk->dtype != VKI_DTYPE_Q8_0 &&
        coopmat_plan(p, q.ne[0], n_rows, &cm)) {
        uint32_t blocks = (n_rows + cm.rows - 1) / cm.rows;
        if (blocks > p->max_workgroup_count[0] || n_kv_head > p->max_workgroup_count[1])
            return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%u x %u workgroups exceed the device's grid",
                                  blocks, n_kv_head);
        char name[32];
        snprintf(name, sizeof name, "attention_%s", cm.suffix);
        vki_spec specs[8] = {
            {VKI_SPEC_LOCAL_SIZE_X, cm.wg}, {VKI_ATTN_SPEC_HEAD_DIM, q.ne[0]},
            {VKI_ATTN_SPEC_ROWS, cm.rows},  {VKI_ATTN_SPEC_COLS, cm.cols},
            {VKI_ATTN_SPEC_PAD_DIM, cm.dp}, {VKI_SPEC_MM_FRAG_M, cm.fm},
            {VKI_SPEC_MM_FRAG_N, cm.fn},    {VKI_SPEC_MM_FRAG_K, cm.fk},
        };
        pc.n_split = 1;
        vki_step_desc s = {
            .kernel = name,
            .specs = specs, .spec_count = 8,
            .subgroup_size = p->subgroup_size_control ? p->subgroup_size : 0,
            .tensors = tensors, .tensor_count = 7, .write_mask = 1u << VKI_ATTN_BINDING_OUT,
            .push = &pc, .push_size = sizeof pc,
            .groups = {blocks, n_kv_head, 1},
            .fp16_operands = true, // Q, K, P and V rounded to fp16; the sums fp32
        };
        return vki_lower_step(L, &s);
    }
    uint32_t lanes = p->tuning.subgroup_size ? p->tuning.subgroup_size : 8;
    uint32_t qc = queries_per_lane(p, n, nk, nv, &q, &k, &v, lanes);
    if (qc) {
        uint32_t blocks = (q.ne[2] + lanes * qc - 1) / (lanes * qc);
        if (blocks > p->max_workgroup_count[0] || q.ne[1] > p->max_workgroup_count[1])
            return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%u x %u workgroups exceed the device's grid",
                                  blocks, q.ne[1]);
        vki_spec specs[3] = {{VKI_SPEC_LOCAL_SIZE_X, lanes}, {VKI_ATTN_SPEC_HEAD_DIM, q.ne[0]},
                             {VKI_ATTN_SPEC_QUERIES, qc}};
        pc.n_split = 1;
        vki_step_desc s = {
            .kernel = nk->dtype == VKI_DTYPE_F16 ? "attention_queries_h" : "attention_queries_f",
            .specs = specs, .spec_count = 3,
            .tensors = tensors, .tensor_count = 7, .write_mask = 1u << VKI_ATTN_BINDING_OUT,
            .push = &pc, .push_size = sizeof pc,
            .groups = {blocks, q.ne[1], 1},
        };
        return vki_lower_step(L, &s);
    }
    attn_kernel kern;
    if (!pick_kernel(p, q.ne[0], n_rows, group, &kern))
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED,
                              "%u bytes of shared memory cannot hold a tile", p->shared_memory);
    // Sequences: a workgroup holds the rows (heads) of one query only, so that it reads that
    // query's sequence and nothing else, and so that a row's sums do not depend on which other
    // queries share the run (a server's decode step: each row is another client's).
    // (The rows kernel takes each row alone anyway.) Rows are numbered query * group + head,
    // so a number of rows that divides group keeps every workgroup within one query.
    if (params(n).seq_len && (kern.own.id != VKI_ATTN_SPEC_LANES || kern.extra.id)) {
        uint32_t r = kern.rows < group ? kern.rows : group;
        while (group % r) r--;
        kern.rows = r;
        if (kern.extra.id == VKI_ATTN_SPEC_SHARED_ROWS) kern.extra.value = r;
    }
    // F16 K and V whose rows all start at 16-byte texels: the keys kernel loads them whole,
    // 8 dims a load (WIDE).
    if (kern.name == keys_tx && nk->dtype == VKI_DTYPE_F16 && nv->dtype == VKI_DTYPE_F16 &&
        wide_rows(q.ne[0], k.offset, k.nb) && wide_rows(q.ne[0], v.offset, v.nb))
        kern.name = keys_wide;
    uint32_t write_mask = 1u << VKI_ATTN_BINDING_OUT;
    if (n->src[5]) { // the cache writes folded in: the wide kernel's _append variant
        const vki_node *kn = vki_lower_node(L, n->src[5]), *vn = vki_lower_node(L, n->src[6]);
        vki_operand okn = vki_lower_operand(L, n->src[5]), ovn = vki_lower_operand(L, n->src[6]);
        if (kern.name != keys_wide || q.ne[2] != 1 || !n->src[4] || nm || kn->dtype != VKI_DTYPE_F32 ||
            vn->dtype != VKI_DTYPE_F32 || okn.ne[0] != q.ne[0] * n_kv_head || okn.nb[0] != 1 ||
            ovn.ne[0] != okn.ne[0] || ovn.nb[0] != 1)
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "a fused cache write needs a decode step on the attention_keys_sg_wide "
                                  "kernel and f32 rows [D * n_kv_head] (fusion checks)");
        kern.name = keys_append;
        pc.kn_off = okn.offset;
        pc.vn_off = ovn.offset;
        tensors[VKI_ATTN_BINDING_K_NEW] = n->src[5];
        tensors[VKI_ATTN_BINDING_V_NEW] = n->src[6];
        write_mask |= 1u << VKI_ATTN_BINDING_K | 1u << VKI_ATTN_BINDING_V;
    }
    uint32_t row_blocks = (n_rows + kern.rows - 1) / kern.rows;
    // Split-KV (tiled kernel): when the rows make few workgroups (a decode step), the kv
    // positions are cut into slices of whole tiles, one workgroup each, up to about
    // SPLIT_TARGET workgroups in all, and a second step merges the slices (abi_attention.h).
    uint32_t blocks = row_blocks * n_kv_head, n_split = 1;
    if (kern.extra.id == 0 && kern.own.id == VKI_ATTN_SPEC_COLS && blocks < SPLIT_TARGET / 2) {
        uint32_t tiles = (pc.n_kv + kern.own.value - 1) / kern.own.value;
        n_split = SPLIT_TARGET / blocks;
        if (n_split > tiles) n_split = tiles;
        if (n_split > SPLIT_MAX) n_split = SPLIT_MAX;
        if (n_split < 2) n_split = 1;
    }
    pc.n_split = n_split;
    if (row_blocks > p->max_workgroup_count[0] || n_kv_head > p->max_workgroup_count[1] ||
        n_split > p->max_workgroup_count[2])
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%u x %u x %u workgroups exceed the device's grid",
                              row_blocks, n_kv_head, n_split);
    vki_spec specs[5] = {
        {VKI_SPEC_LOCAL_SIZE_X, kern.wg},
        {VKI_ATTN_SPEC_HEAD_DIM, q.ne[0]},
        {VKI_ATTN_SPEC_ROWS, kern.rows},
        kern.own,
        kern.extra,
    };
    // Without a split, PART is bound to the output and never touched.
    if (n_split > 1) tensors[VKI_ATTN_BINDING_PART] = VKI_LOWER_SCRATCH;
    vki_step_desc s = {
        .kernel = kern.name,
        .specs = specs, .spec_count = kern.extra.id ? 5 : 4, .subgroup_size = kern.subgroup_size,
        .tensors = tensors, .tensor_count = 7, .write_mask = write_mask,
        .push = &pc, .push_size = sizeof pc,
        .groups = {row_blocks, n_kv_head, n_split},
    };
    if (n_split == 1) return vki_lower_step(L, &s);
    s.scratch_bytes = (uint64_t)n_split * n_kv_head * n_rows * (q.ne[0] + 2) * sizeof(float);
    s.write_mask = 1u << VKI_ATTN_BINDING_PART;
    VKI_TRY(vki_lower_step(L, &s));
    vki_pc_attention merge = pc;
    merge.flags |= VKI_ATTN_COMBINE;
    s.push = &merge;
    s.write_mask = 1u << VKI_ATTN_BINDING_OUT;
    s.groups[2] = 1;
    return vki_lower_step(L, &s);
}

const vki_op_def vki_op_attention = {
    .name = "attention",
    .reference = reference,
    .lower = lower,
    .fuse = fuse,
};
