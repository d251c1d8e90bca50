/* matmul: y[M, N, B2, B3] = w[K, M, B2 / r2, B3 / r3] x[K, N, B2, B3], then + bias[M], an
 * activation and + a residual r[M, N, B2, B3] when its fusion hooks (matmul_fusion.c) have
 * folded them in (src[2], act, src[3]); x rms-normed with weights src[4] and epsilon eps
 * first, where they have folded the norm in; y[m] = glu(row m) * row m + M where they have
 * folded a glu of the product's two halves in; its first rope_rows rows rotated by a llama
 * rope where they have folded one in (positions src[5]); vki_matmul_params. The last three in
 * matvec_wide only (vki__matvec_wide); the reference never sees the rope (fusion rewrites the
 * compiler's copy). w may have any dtype and is
 * read as stored: quantized blocks are decoded in the kernels' registers (shaders/quant.glsl).
 * x is F32 or F16; y is F32 and contiguous. w's batch dims broadcast by ratio (ggml's rule:
 * r2 = B2 / w.ne[2] consecutive x batches share a w batch), so Bw = 1 or B both work.
 *
 * Kernels: N <= MATVEC_MAX_COLS runs matvec.comp (memory-bound decode; for q8_0 and q4_0
 * weights on integer dot products of x rounded to int8 where the tuning says matvec_int_dot,
 * which the step declares), larger N
 * matmul_coopmat.comp (its KHR, NV or emulated variant, as the profile says) where the device has
 * cooperative matrices and the product is large (f16
 * and quantized weights: operands rounded to fp16, which the step declares), else matmul_shared.comp or, where the
 * tuning says barriers are slow (lavapipe), the barrier-free matmul_reg.comp. Specialisation constants carry the tiles, the x dtype and what is known of
 * the operands' alignment; the variant is the weight type and the kernel. */
#include "matmul_internal.h"
#include "activation.h"
#include "vki_abi.h"

#include <stdio.h>

static_assert(sizeof(vki_matmul_params) <= VKI_PARAMS_BYTES, "node parameter bytes");
static_assert(VKI_ACT_COUNT <= VKI_MM_EPI_ACT_MASK + 1, "an activation id fits its byte of the epilogue word");
static_assert(sizeof(vki_pc_matmul) == 28 * 4, "abi_matmul.h counts the block's words in a comment");

vki_matmul_params vki__matmul_params(const vki_node *n)
{
    vki_matmul_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

void vki__matmul_params_set(vki_node *n, const vki_matmul_params *p)
{
    vki__params_set(n, p, sizeof *p);
}

#define MATVEC_MAX_COLS 8
#define MATMUL_MIN_GROUPS 128 // tiles a shared-memory matmul aims for before shrinking them
#define WIDE_MAX_KCHUNKS 16   // x chunks a matvec_wide thread holds per column
// x columns a matvec_wide workgroup holds, sharing each decoded weight chunk: q4_1 576 x 1536
// at N = 4 (SmolLM2's 4-sequence decode pass) took 0.58-0.60 ms in one group of 4, 0.58-0.75
// in groups of 2 and 0.90-2.7 one column at a time, N = 1 0.22 (`vkinfer bench ops`, two
// alternating rounds on a loaded 2-core lavapipe); 4 sequences' tg32 19.7-24.1 tok/s in all
// against 14.9-17.0 one column at a time.
#define WIDE_MAX_COLS 4
#define REG_X_BUDGET 512 // x values a thread of matmul_reg holds on a CPU device (see lower)
// Workgroups per column a matvec_wide aims for, and the most blocks of rows one computes. Few:
// every workgroup loads and norms x again and costs lavapipe a call of several µs even when
// empty (a decode token's plan with empty mat-vec and attention kernels: 58-65 tok/s at 12
// workgroups, 91-108 at one), and more do not spread better, since lavapipe (Mesa 22.3) deals
// a dispatch's workgroups to its threads in halves anyway. SmolLM2 tg64 at 4 against 12: +8 %
// median over seven alternating pairs (one -1 %); x loaded once for up to 4096 blocks (32
// before).
#define WIDE_MAX_BLOCKS 4096
#define WIDE_MIN_GROUPS 4

static_assert(VKI_WTYPE_F32 == VKI_DTYPE_F32 && VKI_WTYPE_F16 == VKI_DTYPE_F16 &&
                  VKI_WTYPE_BF16 == VKI_DTYPE_BF16 && VKI_WTYPE_Q8_0 == VKI_DTYPE_Q8_0 &&
                  VKI_WTYPE_Q4_0 == VKI_DTYPE_Q4_0 && VKI_WTYPE_Q4_1 == VKI_DTYPE_Q4_1 &&
                  VKI_WTYPE_Q5_0 == VKI_DTYPE_Q5_0 && VKI_WTYPE_Q5_1 == VKI_DTYPE_Q5_1 &&
                  VKI_WTYPE_Q4_K == VKI_DTYPE_Q4_K && VKI_WTYPE_Q5_K == VKI_DTYPE_Q5_K &&
                  VKI_WTYPE_Q6_K == VKI_DTYPE_Q6_K,
              "weight types of the kernels (abi_matmul.h) follow enum vki_dtype");

vki_tensor vki_matmul(vki_graph *g, vki_tensor w, vki_tensor x)
{
    vki_tensor srcs[2] = {w, x};
    if (!vki__check_srcs(g, "matmul", 2, srcs)) return (vki_tensor){0};
    const vki_node *nw = vki__node(g, w), *nx = vki__node(g, x);
    const vki_dtype_info *wd = vki_dtype_get(nw->dtype);
    char sw[96], sx[96];
    vki__shape_str(nw, sw);
    vki__shape_str(nx, sx);
    if (!wd->block_elems || nw->dtype == VKI_DTYPE_I32)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "matmul: w %s: not a weight dtype", sw);
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "matmul: x %s must be f32 or f16", sx);
    if (nw->ne[0] != nx->ne[0] || nw->ne[0] % wd->block_elems)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul: w %s and x %s: dimension 0 must agree and be a multiple "
                               "of %s's block of %u", sw, sx, wd->name, wd->block_elems);
    if (nx->ne[2] % nw->ne[2] || nx->ne[3] % nw->ne[3])
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul: w %s does not broadcast over x %s (dimensions 2 and 3 of w "
                               "must divide x's)", sw, sx);
    // The kernels read rows as runs of elements (or blocks); other strides are free.
    if ((nw->ne[0] > wd->block_elems && nw->nb[0] != wd->block_bytes) ||
        (nx->ne[0] > 1 && nx->nb[0] != vki_dtype_get(nx->dtype)->block_bytes))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul: w %s, x %s: rows (dimension 0) must be contiguous; "
                               "vki_copy the operand first", sw, sx);
    int64_t ne[VKI_MAX_DIMS] = {nw->ne[1], nx->ne[1], nx->ne[2], nx->ne[3]};
    return vki__new_op(g, &vki_op_matmul, VKI_DTYPE_F32, nx->ndim > 2 ? nx->ndim : 2, ne, 2, srcs);
}

/* Row m of w (batch i2, i3) . column i1 of x, in double, a block of w decoded at a time, x
 * rms-normed with weights `norm` and epsilon eps when there are. */
static double row_dot(const vki_ref_tensor *w, const vki_ref_tensor *x, const vki_ref_tensor *norm,
                      float eps, int64_t m, int64_t i1, int64_t i2, int64_t i3)
{
    const vki_dtype_info *wd = vki_dtype_get(w->dtype);
    int64_t K = w->ne[0], be = wd->block_elems;
    int64_t r2 = x->ne[2] / w->ne[2], r3 = x->ne[3] / w->ne[3];
    float blk[256];
    double sum = 0;
    for (int64_t k0 = 0; k0 < K; k0 += be) {
        if (wd->quantized)
            vki_dequant_block(w->dtype,
                              w->data + (k0 / be) * w->nb[0] + m * w->nb[1] + (i2 / r2) * w->nb[2] +
                                  (i3 / r3) * w->nb[3],
                              blk);
        else
            blk[0] = vki_ref_get(w, k0, m, i2 / r2, i3 / r3);
        for (int64_t j = 0; j < be; j++)
            sum += (double)blk[j] * vki_ref_get(x, k0 + j, i1, i2, i3) *
                   (norm ? vki_ref_get(norm, k0 + j, 0, 0, 0) : 1.0);
    }
    if (norm) { // x * w / sqrt(mean(x^2) + eps), the column's scale factored out
        double ss = 0;
        for (int64_t k = 0; k < K; k++) {
            double xv = vki_ref_get(x, k, i1, i2, i3);
            ss += xv * xv;
        }
        sum /= sqrt(ss / (double)K + (double)eps);
    }
    return sum;
}

/* Plain dot products (row_dot); a fused glu's output row m is act(row m) * row m + M; then bias,
 * activation and residual. */
static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *w = &s[0], *x = &s[1], *bias = n->src[2] ? &s[2] : NULL;
    const vki_ref_tensor *res = n->src[3] ? &s[3] : NULL, *norm = n->src[4] ? &s[4] : NULL;
    vki_matmul_params p = vki__matmul_params(n);
    vki_activation glu = p.glu;
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t m = 0; m < n->ne[0]; m++) {
                    float v = (float)row_dot(w, x, norm, p.eps, m, i1, i2, i3);
                    if (glu)
                        v = vki__activation_ref(glu, v) *
                            (float)row_dot(w, x, norm, p.eps, m + n->ne[0], i1, i2, i3);
                    if (bias) v += vki_ref_get(bias, m, 0, 0, 0);
                    v = vki__activation_ref(p.act, v);
                    if (res) v += vki_ref_get(res, m, i1, i2, i3);
                    vki_ref_set(d, m, i1, i2, i3, v);
                }
}

/* The output tile of the shared-memory kernels. Few workgroups leave most of a GPU idle (576 x
 * 128 makes 5 tiles of 128 x 128 for an H200's 132 SMs): the tuning's tile is halved along its
 * larger side, down to 32, until there are about MATMUL_MIN_GROUPS. */
static void shared_tile(const vki_tuning *t, uint32_t M, uint32_t N, uint64_t batches,
                        uint32_t *out_m, uint32_t *out_n)
{
    uint32_t tm = t->matmul_tile_m, tn = t->matmul_tile_n;
    while ((uint64_t)vki_div_up(M, tm) * vki_div_up(N, tn) * batches < MATMUL_MIN_GROUPS &&
           (tm > 32 || tn > 32)) {
        if (tm >= tn && tm > 32) tm /= 2;
        else tn /= 2;
    }
    *out_m = tm;
    *out_n = tn;
}

bool vki__coopmat_device(const vki_profile *p)
{
    // The kernels name their subgroup (gl_SubgroupID); emulated fragments spread an
    // accumulator over at least 4 lanes, the extensions want 8.
    return p->tuning.use_coopmat && p->coopmat && (p->subgroup_ops & VKI_SUBGROUP_BASIC) &&
           (p->subgroup_size >= 8 || p->coopmat_emulated);
}

const char *vki__coopmat_suffix(const vki_profile *p)
{
    return p->coopmat_emulated ? "cme" : p->coopmat_khr ? "cmk" : "cm";
}

bool vki__coopmat_usable(const vki_profile *p, uint64_t M, uint64_t N, uint64_t batches)
{
    const vki_tuning *t = &p->tuning;
    return vki__coopmat_device(p) && t->matmul_tile_m && t->matmul_tile_n &&
           vki_div_up(M, t->matmul_tile_m) * vki_div_up(N, t->matmul_tile_n) * batches >= VKI_COOPMAT_MIN_TILES;
}

bool vki__coopmat_plan(const vki_profile *p, uint32_t M, uint32_t N, uint64_t batches, vki_coopmat_plan *out)
{
    vki_coopmat_plan c = {.tk = p->tuning.matmul_tile_k};
    // Each subgroup computes a block of up to 64 x 32 of the tile in fragments of the device's
    // shape: 8 subgroups for 128 x 128, one for 32 x 32.
    shared_tile(&p->tuning, M, N, batches, &c.tm, &c.tn);
    c.fm = p->coopmat_shape[0], c.fn = p->coopmat_shape[1], c.fk = p->coopmat_shape[2];
    c.sub_m = c.tm < 64 ? c.tm : 64, c.sub_n = c.tn < 32 ? c.tn : 32;
    c.subgroups = (c.tm / c.sub_m) * (c.tn / c.sub_n);
    // Double-buffered slabs where the shared memory holds two (128 x 128 x 32 tiles: 40 KiB of
    // slabs and 8 KiB of staging, NVIDIA's 48 KiB exactly), else one.
    uint64_t slab = 2ull * (c.tm + c.tn) * (c.tk + 8), stage = 4ull * c.subgroups * c.fm * c.fn;
    c.buffers = 2 * slab + stage <= p->shared_memory ? 2 : 1;
    c.shared = c.buffers * slab + stage;
    c.suffix = vki__coopmat_suffix(p);
    *out = c;
    return c.fm && c.fn && c.fk && c.tk % c.fk == 0 && c.tk % 4 == 0 && c.sub_m % c.fm == 0 &&
           c.sub_n % c.fn == 0 && c.shared <= p->shared_memory;
}

/* The constants and grid every tiled kernel shares: `local` threads each computing rows x cols
 * (outputs, or fragments), TILE_M x TILE_N tiles (TILE_K deep slabs when tk is not 0). */
static void tiles(const vki_pc_matmul *pc, uint64_t batches, uint32_t local, uint32_t rows,
                  uint32_t cols, uint32_t tm, uint32_t tn, uint32_t tk, vki_spec *specs,
                  uint32_t *count, uint32_t groups[3])
{
    specs[(*count)++] = (vki_spec){VKI_SPEC_LOCAL_SIZE_X, local};
    specs[(*count)++] = (vki_spec){VKI_SPEC_MM_ROWS, rows};
    specs[(*count)++] = (vki_spec){VKI_SPEC_MM_COLS, cols};
    specs[(*count)++] = (vki_spec){VKI_SPEC_MM_TILE_M, tm};
    specs[(*count)++] = (vki_spec){VKI_SPEC_MM_TILE_N, tn};
    if (tk) specs[(*count)++] = (vki_spec){VKI_SPEC_MM_TILE_K, tk};
    groups[0] = (uint32_t)vki_div_up(pc->M, tm);
    groups[1] = (uint32_t)vki_div_up(pc->N, tn);
    groups[2] = (uint32_t)batches;
}

bool vki__matvec_wide(const vki_profile *p, uint64_t K, uint64_t N, uint32_t *out_kchunks,
                      uint32_t *out_rows)
{
    const vki_tuning *t = &p->tuning;
    *out_kchunks = 0, *out_rows = 1;
    if (N > MATVEC_MAX_COLS || !t->texel_loads || !(p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) ||
        !t->subgroup_size || K / VKI_MM_CHUNK > (uint64_t)WIDE_MAX_KCHUNKS * t->subgroup_size)
        return false;
    // A workgroup computes ROWS rows at a time, the rows' chunks dealt to its threads: the ROWS
    // (a power of two up to the threads) that leaves the fewest threads idle.
    uint32_t chunks = K / VKI_MM_CHUNK ? (uint32_t)(K / VKI_MM_CHUNK) : 1, nt = t->subgroup_size;
    uint64_t best_idle = UINT32_MAX, best_slots = 1;
    for (uint32_t r = 1; r <= nt && vki_div_up(r * chunks, nt) <= WIDE_MAX_KCHUNKS; r *= 2) {
        uint32_t slots = vki_div_up(r * chunks, nt), idle = slots * nt - r * chunks;
        // The smaller idle share idle / (slots nt) wins; on a tie, the fewer rows.
        if (idle * best_slots < best_idle * slots) best_idle = idle, best_slots = slots, *out_rows = r;
    }
    *out_kchunks = vki_div_up(*out_rows * chunks, nt);
    if (*out_kchunks > WIDE_MAX_KCHUNKS) *out_kchunks = 0, *out_rows = 1;
    return *out_kchunks != 0;
}

/* Texels a run of `bytes` bytes (whole words, or not) spans at a start known to be a multiple
 * of `align` bytes (2, 4 or 16): fetch_words_wide_max in quant.glsl. */
static uint32_t run_texels(uint32_t bytes, uint32_t align)
{
    uint32_t words = (bytes + 3) / 4;
    return (4 * words + (align >= 16 ? 0 : align >= 4 ? 12 : 14) + 15) / 16;
}

/* Runs for matvec_wide (VKI_SPEC_MM_RUN): a thread's chunks in runs of consecutive blocks of
 * a row, each run's texels read and realigned once. For the raw-dot formats (WQ_DOT in quant.glsl),
 * the run (up to VKI_MM_RUN_MAX, dividing the row's chunks, of whole words) and rows per pass
 * of least estimated cost per chunk: every chunk slot, idle or not, costs a block's arithmetic,
 * RUN_ARITH texels' worth, plus its share of its run's texels. `words`, `texels`: weight rows
 * start at multiples of 4, of 16 bytes. *kchunks and *rows become the chosen dealing's.
 * On lavapipe a thread's 16-byte texel load is 8 loads and a transpose. Q8_0 one block at a
 * time takes 4 texels per block, in runs of 2 (68 bytes) 5 per two: SmolLM2's lm_head (576 x
 * 49152) in runs of 2 with 10 % of the slots idle took 4.4-6.3 ms against 5.5-8.9 with single
 * blocks and none idle (`vkinfer bench ops --reps 15`, three alternating pairs), which
 * RUN_ARITH 1.5 fits. Q4_1 in runs of 3 (5 texels, where single blocks take 6): 4.2 ms against
 * 5.0-7.0. */
#define RUN_ARITH_X2 3 // RUN_ARITH, doubled
uint32_t vki__matvec_wide_run(const vki_profile *p, vki_dtype wt, uint64_t K, bool words,
                              bool texels, uint32_t *kchunks, uint32_t *rows)
{
    if (wt != VKI_DTYPE_Q4_0 && wt != VKI_DTYPE_Q4_1 && wt != VKI_DTYPE_Q5_0 &&
        wt != VKI_DTYPE_Q5_1 && wt != VKI_DTYPE_Q8_0)
        return 1;
    uint32_t chunks = (uint32_t)(K / VKI_MM_CHUNK), nt = p->tuning.subgroup_size;
    uint32_t bb = vki_dtype_get(wt)->block_bytes, best_run = 1;
    // The cheapest dealing yet, its cost per chunk as a fraction: slots x cost per slot over
    // rows x chunks.
    uint64_t best_num = 0, best_den = 1;
    for (uint32_t run = 1; run <= VKI_MM_RUN_MAX; run++) {
        // Runs of whole words only: a run starting mid-word costs a half-word shift per word,
        // which ate the gain (Q8_0 runs of 3 blocks: 6.5 ms either way).
        if (chunks % run || (run > 1 && run * bb % 4)) continue;
        uint32_t align = texels && run * bb % 16 == 0 ? 16 : words && run * bb % 4 == 0 ? 4 : 2;
        uint32_t cost = RUN_ARITH_X2 * run + 2 * run_texels(run * bb, align), items = chunks / run;
        for (uint32_t r = 1; r <= nt; r *= 2) {
            uint32_t slots = (uint32_t)vki_div_up(r * items, nt);
            if (slots * run > WIDE_MAX_KCHUNKS) break;
            uint64_t num = (uint64_t)slots * cost, den = (uint64_t)r * chunks;
            // Strictly cheaper wins: on a tie the shorter run and fewer rows (fewer registers).
            if (!best_num || num * best_den < best_num * den)
                best_num = num, best_den = den, best_run = run, *kchunks = slots * run, *rows = r;
        }
    }
    return best_run;
}

/* Rows [m0, m0 + m_rows) of the product: all of them, or a slice whose weight rows are bound
 * alone (`range`: their bytes in w, NULL for all of w). */
static vki_status lower_rows(vki_lower *L, const vki_node *n, uint32_t m0, uint32_t m_rows,
                             const vki_lower_range *range)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_tuning *t = &p->tuning;
    const vki_matmul_params mp = vki__matmul_params(n);
    uint32_t self = vki_lower_self(L);
    const vki_node *nw = vki_lower_node(L, n->src[0]), *nx = vki_lower_node(L, n->src[1]);
    vki_operand w = vki_lower_operand_at(L, n->src[0], range ? range->offset : 0);
    vki_operand x = vki_lower_operand(L, n->src[1]), d = vki_lower_operand(L, self);
    vki_pc_matmul pc = {
        .M = m_rows, .y_ld = d.ne[0], .N = d.ne[1], .K = w.ne[0], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .w_r2 = d.ne[2] / w.ne[2], .w_r3 = d.ne[3] / w.ne[3],
        .w_off = w.offset, .w_nb1 = w.nb[1], .w_nb2 = w.nb[2], .w_nb3 = w.nb[3],
        .x_off = x.offset, .x_nb1 = x.nb[1], .x_nb2 = x.nb[2], .x_nb3 = x.nb[3],
        .y_off = d.offset + m0, .epi = mp.act & VKI_MM_EPI_ACT_MASK,
    };
    uint32_t tensors[7] = {n->src[0], n->src[1], n->src[0], self, n->src[0], n->src[0], n->src[0]};
    if (n->src[4]) { // fused rms_norm of x: f32 [K] weights, at a whole 16-byte texel
        vki_operand nw4 = vki_lower_operand(L, n->src[4]);
        const vki_node *nn = vki_lower_node(L, n->src[4]);
        if (nn->dtype != VKI_DTYPE_F32 || nn->ne[0] != nw->ne[0] || nw4.offset % 4)
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "the fused rms_norm weights must be f32 [K] at a multiple of 16 bytes");
        tensors[VKI_MM_BINDING_NORM] = n->src[4];
        pc.n_off = nw4.offset;
        pc.epi |= VKI_MM_EPI_NORM;
        pc.eps = mp.eps;
    }
    if (n->src[2]) { // fused bias [M] f32
        const vki_node *nb = vki_lower_node(L, n->src[2]);
        if (nb->dtype != VKI_DTYPE_F32 || nb->ne[0] != n->ne[0] || nb->nb[0] != 4)
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT, "the fused bias must be f32 [M]");
        tensors[VKI_MM_BINDING_BIAS] = n->src[2];
        pc.b_off = vki_lower_operand(L, n->src[2]).offset + m0;
        pc.epi |= VKI_MM_EPI_BIAS;
    }
    if (n->src[3]) { // fused residual: f32, contiguous, y's shape
        const vki_node *nr = vki_lower_node(L, n->src[3]);
        if (nr->dtype != VKI_DTYPE_F32 || !vki__same_shape(nr, n) || !vki__is_contiguous(nr))
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "the fused residual must be f32, contiguous and of y's shape");
        tensors[VKI_MM_BINDING_RES] = n->src[3];
        pc.r_off = vki_lower_operand(L, n->src[3]).offset + m0;
        pc.epi |= VKI_MM_EPI_RES;
    }
    if ((range ? range->size : vki__span_bytes(nw)) > UINT32_MAX || vki__span_bytes(nx) > UINT32_MAX)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "operands over 4 GiB (32-bit indexing)");
    uint64_t batches = (uint64_t)pc.ne2 * pc.ne3;
    const vki_dtype_info *wd = vki_dtype_get(nw->dtype);
    uint32_t chunk = VKI_MM_CHUNK, eb = wd->quantized ? 1 : wd->block_bytes;
    // Weight rows at multiples of 4 bytes with chunks of whole words; x rows at 16 bytes.
    bool x_f16 = nx->dtype == VKI_DTYPE_F16;
    uint32_t align = 0, x_unit = x_f16 ? 8 : 4;
    uint64_t w_rows = w.offset * eb | w.nb[1] * eb | w.nb[2] * eb | w.nb[3] * eb;
    if (w_rows % 4 == 0) {
        align |= VKI_MM_ALIGN_W_ROWS;
        if ((wd->quantized ? wd->block_bytes : chunk * eb) % 4 == 0) align |= VKI_MM_ALIGN_W;
    }
    if ((x.offset | x.nb[1] | x.nb[2] | x.nb[3]) % x_unit == 0) align |= VKI_MM_ALIGN_X;
    // x values a thread holds (a chunk per column): GPUs keep them in registers; on a CPU
    // device spilling is cheap and every column group more reads the weights again.
    uint32_t x_budget = p->type == VKI_DEVICE_CPU ? 128 : 64;
    // Cooperative matrices for the weights fp16 holds well: f16 and the quantized types (f32
    // and bf16 weights would lose range or precision); the kernel declares subgroup ops. Only
    // for products of at least VKI_COOPMAT_MIN_TILES of the tuning's tiles: below that the kernel
    // measured slower than matmul_shared on an H200 (576 x 1536 x 128: 243 against 146 us),
    // above it faster (576 x 49152 x 128: 984 against 1479 us, f16 weights).
    bool coopmat = pc.N > MATVEC_MAX_COLS && (wd->quantized || nw->dtype == VKI_DTYPE_F16) &&
                   vki__coopmat_usable(p, pc.M, pc.N, batches);
    // t->texel_loads: weights and x as texel buffers (the profile has checked that views cover
    // any binding).
    char kernel[48];
    vki_spec specs[VKI_STEP_MAX_SPECS] = {{VKI_SPEC_MM_X_F16, x_f16}, {VKI_SPEC_MM_ALIGN, align}};
    uint32_t spec_count = 2, subgroup_size = 0, groups[3];
    const char *type = wd->name;

    // matvec_wide (CPU devices with texel loads); else the storage-buffer mat-vec.
    uint32_t kchunks = 0, wide_rows = 1;
    bool int8_x = false; // the integer-dot mat-vec, which rounds x to int8
    vki__matvec_wide(p, pc.K, pc.N, &kchunks, &wide_rows);
    if ((n->src[4] || mp.glu || mp.rope_rows) && !kchunks)
        return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                              "a fused rms_norm, glu or rope needs the matvec_wide kernel (fusion checks)");
    if (mp.rope_rows) { // fused rope of rows [0, rope_rows): heads of rope_head rows, positions src[5]
        uint32_t hd = mp.rope_head, n_rot = mp.rope_n_rot;
        const vki_node *np = n->src[5] ? vki_lower_node(L, n->src[5]) : NULL;
        if (!np || np->dtype != VKI_DTYPE_I32 || np->ne[0] != pc.N || np->nb[0] != 4 || !hd ||
            hd % 2 || n_rot % 2 || n_rot > hd || mp.rope_rows % hd || mp.rope_rows > pc.M || n->src[2] ||
            n->src[3] || mp.act || mp.glu)
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "a fused rope needs i32 positions [N], whole heads of an even size "
                                  "and no bias, activation, residual or glu (fusion checks)");
        tensors[VKI_MM_BINDING_POS] = n->src[5];
        pc.rope_rows = mp.rope_rows;
        pc.rope_hd = hd;
        pc.n_rot = n_rot;
        pc.p_off = vki_lower_operand(L, n->src[5]).offset;
        pc.freq_scale = mp.rope_freq_scale;
        pc.log2_step = vki__rope_log2_step(mp.rope_base, n_rot);
    }
    if (mp.glu) { // fused glu: output row m is act(w row m) * w row m + M
        if (w.ne[1] != 2 * pc.M)
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT, "a fused glu needs 2 M weight rows");
        pc.epi |= (uint32_t)mp.glu << VKI_MM_EPI_GLU_SHIFT;
    }

    if (kchunks) {
        // One row per thread, one subgroup per workgroup, up to WIDE_MAX_COLS columns.
        snprintf(kernel, sizeof kernel, "matvec_%s_wide", type);
        if (p->subgroup_size_control) subgroup_size = t->subgroup_size;
        specs[spec_count++] = (vki_spec){VKI_SPEC_LOCAL_SIZE_X, t->subgroup_size};
        bool w_texels = w_rows % 16 == 0;
        if (w_texels) specs[1].value |= VKI_MM_ALIGN_W_TEXELS;
        uint32_t run = vki__matvec_wide_run(p, nw->dtype, pc.K, (align & VKI_MM_ALIGN_W_ROWS) != 0, w_texels,
                                &kchunks, &wide_rows);
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_KCHUNKS, kchunks};
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_ROWS, wide_rows};
        if (run > 1) specs[spec_count++] = (vki_spec){VKI_SPEC_MM_RUN, run};
        // Blocks of rows per workgroup: x is loaded once per workgroup; WIDE_MIN_GROUPS
        // workgroups per column keep both halves of a CPU device's threads busy.
        uint32_t blocks = pc.M / (t->subgroup_size * WIDE_MIN_GROUPS);
        blocks = blocks < 1 ? 1 : blocks > WIDE_MAX_BLOCKS ? WIDE_MAX_BLOCKS : blocks;
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_BLOCKS, blocks};
        // Columns per workgroup: each decoded weight chunk is dotted with all of them. Up to
        // WIDE_MAX_COLS (every thread holds their x), in groups of equal size (6 columns
        // as 3 + 3, not 4 + 2 padded to 4 + 4), so that few variants are compiled: a new
        // pipeline costs lavapipe seconds. A column's result is the same whatever the group.
        uint32_t col_groups = vki_div_up(pc.N, WIDE_MAX_COLS);
        uint32_t cols = vki_div_up(pc.N, col_groups);
        if (cols > 1) specs[spec_count++] = (vki_spec){VKI_SPEC_MM_COLS, cols};
        vki_lower_grid(vki_div_up(pc.M, t->subgroup_size * blocks), 1, groups);
        groups[2] = (uint32_t)(vki_div_up(pc.N, cols) * batches);
    } else if (pc.N <= MATVEC_MAX_COLS) {
        // One subgroup per workgroup, so that subgroupAdd alone reduces; the fallback's
        // shared-memory tree needs a power of two, which subgroup sizes are.
        bool sg = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) != 0;
        uint32_t rows = t->matvec_rows ? t->matvec_rows : 1, local = t->subgroup_size;
        // Integer dot products where the tuning asks for them (matvec_int_dot) and the weights
        // are a scale times bytes: x is rounded to int8 in registers (matvec.comp's INT_DOT),
        // 8 packed words a chunk, a quarter of its floats, so a thread holds 4x the columns.
        int8_x = p->int_dot && t->matvec_int_dot && !t->texel_loads &&
                 (nw->dtype == VKI_DTYPE_Q8_0 || nw->dtype == VKI_DTYPE_Q4_0);
        uint32_t x_words = int8_x ? chunk / 4 : chunk;
        uint32_t cols = x_budget / x_words < pc.N ? x_budget / x_words : pc.N;
        snprintf(kernel, sizeof kernel, "matvec_%s%s%s", type, int8_x ? "_dot" : "",
                 sg && t->texel_loads ? "_tx" : sg ? "" : "_shmem");
        if (sg && p->subgroup_size_control) subgroup_size = local;
        specs[spec_count++] = (vki_spec){VKI_SPEC_LOCAL_SIZE_X, local};
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_ROWS, rows};
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_COLS, cols};
        vki_lower_grid(vki_div_up(pc.M, rows), 1, groups);
        groups[2] = (uint32_t)(vki_div_up(pc.N, cols) * batches);
    } else if (coopmat) {
        vki_coopmat_plan c;
        if (!vki__coopmat_plan(p, pc.M, pc.N, batches, &c))
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "tuning %s: coopmat tile %ux%ux%u (%llu bytes of shared memory, "
                                  "fragment %ux%ux%u) does not fit the device", t->name, c.tm, c.tn,
                                  c.tk, (unsigned long long)c.shared, c.fm, c.fn, c.fk);
        snprintf(kernel, sizeof kernel, "matmul_%s_%s", type, c.suffix);
        if (p->subgroup_size_control) subgroup_size = p->subgroup_size;
        tiles(&pc, batches, c.subgroups * p->subgroup_size, c.sub_m / c.fm, c.sub_n / c.fn, c.tm, c.tn,
              c.tk, specs, &spec_count, groups);
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_FRAG_M, c.fm};
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_FRAG_N, c.fn};
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_FRAG_K, c.fk};
        specs[spec_count++] = (vki_spec){VKI_SPEC_MM_BUFFERS, c.buffers};
    } else if (t->matmul_shared) {
        // Register tiles of 8 x 8 for big tiles, 4 x 4 otherwise: 64 to 256 threads.
        uint32_t tm, tn, tk = t->matmul_tile_k;
        shared_tile(t, pc.M, pc.N, batches, &tm, &tn);
        uint32_t rm = tm >= 128 ? 8 : 4, rn = tn >= 128 ? 8 : 4;
        if (tm % rm || tn % rn || tk % 4 || !tk)
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "tuning %s: matmul tile %ux%ux%u is not a multiple of %ux%ux4",
                                  t->name, tm, tn, tk, rm, rn);
        snprintf(kernel, sizeof kernel, "matmul_%s", type);
        tiles(&pc, batches, (tm / rm) * (tn / rn), rm, rn, tm, tn, tk, specs, &spec_count, groups);
    } else {
        // One subgroup of threads, each with all TILE_M rows and a share of the columns (as
        // many as the x budget allows): the x loads are spread over the most rows. Barrier-free
        // tunings are CPUs', where every loaded word costs and spilled accumulators do not: on a
        // CPU device a thread holds up to REG_X_BUDGET x values (lavapipe: 8 columns of 32 where
        // 4 gave `matmul f16 [640, 320] x f32 [640, 4096]` 8.2-9.0 GFLOP/s, 8 gave 12.2-16.1,
        // and SmolLM2's 512-token prefill 41-45 tokens/s against 49-56, alternated).
        uint32_t tm = t->matmul_tile_m, threads = t->subgroup_size ? t->subgroup_size : 1;
        uint32_t cols = t->matmul_tile_n / threads;
        uint32_t budget = p->type == VKI_DEVICE_CPU ? REG_X_BUDGET : x_budget;
        if (cols > budget / chunk) cols = budget / chunk;
        if (!cols) cols = 1;
        uint32_t tn = cols * threads;
        snprintf(kernel, sizeof kernel, "matmul_%s_reg%s", type, t->texel_loads ? "_tx" : "");
        tiles(&pc, batches, threads, tm, cols, tm, tn, 0, specs, &spec_count, groups);
    }
    for (int i = 0; i < 3; i++)
        if (groups[i] > p->max_workgroup_count[i])
            return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED,
                                  "%u workgroups along %c, the device allows %u", groups[i],
                                  "xyz"[i], p->max_workgroup_count[i]);
    // A slice binds its rows of w, where w stands in for an absent operand too.
    vki_lower_range ranges[7] = {{0}};
    for (int i = 0; range && i < 7; i++)
        if (tensors[i] == n->src[0]) ranges[i] = *range;
    vki_step_desc s = {
        .kernel = kernel,
        .specs = specs, .spec_count = spec_count,
        .subgroup_size = subgroup_size,
        .tensors = tensors, .tensor_count = kchunks ? 7 : 5, .write_mask = 1u << VKI_MM_BINDING_Y,
        .push = &pc, .push_size = sizeof pc,
        .groups = {groups[0], groups[1], groups[2]},
        .fp16_operands = coopmat,
        .int8_operands = int8_x,
        .ranges = range ? ranges : NULL,
    };
    return vki_lower_step(L, &s);
}

/* A weight larger than one binding may be (the device's max_storage_range) is bound a slice of
 * rows at a time, one dispatch per slice writing its rows of y, so that the model code need
 * not slice it. Only plain products (with bias, activation or residual) and one weight batch:
 * a folded glu or rope pairs rows that a cut could separate. */
bool vki__matmul_weight_fits(const vki_profile *p, const vki_node *w)
{
    return !p->max_storage_range || vki__span_bytes(w) + vki_lower_binding_slack(p) <= p->max_storage_range;
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_node *nw = vki_lower_node(L, n->src[0]);
    const vki_matmul_params mp = vki__matmul_params(n);
    uint64_t span = vki__span_bytes(nw), M = (uint64_t)n->ne[0];
    if (vki__matmul_weight_fits(p, nw)) return lower_rows(L, n, 0, (uint32_t)M, NULL);
    uint64_t row = nw->nb[1], row_bytes = vki_dtype_bytes(nw->dtype, nw->ne[0]);
    uint64_t rows = vki_lower_window_count(p, row_bytes, row);
    if (rows > UINT32_MAX / row) rows = UINT32_MAX / row; // 32-bit indexing within a slice
    if (mp.glu || mp.rope_rows || nw->ne[2] * nw->ne[3] != 1 || rows == 0)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED,
                              "a weight of %llu bytes, over the device's binding limit of %llu, "
                              "with a folded glu or rope, weight batches, or rows over the limit",
                              (unsigned long long)span, (unsigned long long)p->max_storage_range);
    for (uint64_t m0 = 0; m0 < M; m0 += rows) {
        uint64_t count = M - m0 < rows ? M - m0 : rows;
        vki_lower_range range = {.offset = m0 * row, .size = (count - 1) * row + row_bytes};
        VKI_TRY(lower_rows(L, n, (uint32_t)m0, (uint32_t)count, &range));
    }
    return VKI_OK;
}

/* Columns of x and y (tokens) are independent: x, y and the residual are cut along them
 * where one exceeds a binding, the weight and the bias bound whole (or a weight batch with its
 * column batch). A folded rope's positions [N] follow the columns along their dim 0. */
static bool cut(const vki_lower *L, const vki_node *n, vki_lower_cut *c)
{
    if (!vki_lower_cut_outer(L, n, 1u | 1u << 5, c)) return false;
    const int d = c->dim;
    const vki_node *w = vki_lower_node(L, n->src[0]);
    if (d > 1 && w->ne[d] != 1) { // weight batches follow the column batches
        if (w->ne[d] != n->ne[d]) return false;
        c->src_dim[0] = (int8_t)d;
    }
    if (n->src[5]) {
        const vki_node *pos = vki_lower_node(L, n->src[5]);
        if (d != 1 || pos->ne[0] != n->ne[1]) return false;
        c->src_dim[5] = 0;
    }
    return true;
}

const vki_op_def vki_op_matmul = {
    .name = "matmul",
    .reference = reference,
    .lower = lower,
    .fuse = vki__matmul_fuse,
    .absorb = vki__matmul_absorb,
    .cut = cut,
};
