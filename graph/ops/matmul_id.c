/* matmul_id: y[:, j, n] = w[:, :, ids[j, n]] x[:, j or 0, n], the expert products of a mixture
 * of experts (llama.cpp's mul_mat_id). w [K, M, E] has any weight dtype (stacked experts, read
 * as stored and decoded in registers by shaders/quant.glsl), x is F32 or F16 [K, J, N] with
 * J = k (a column per slot) or 1 (one column shared by the slots), ids I32 [k, N] contiguous
 * (vki_top_k's); y is F32 [M, k, N]. An id outside [0, E) gives a zero column and reads
 * nothing of its own.
 *
 * Kernels: the matmul family's, built with IDS=1 (shaders/matmul_common.glsl, ABI in
 * shaders/abi_moe.h). Decode (N <= MATVEC_MAX_TOKENS): the product is a batch of k x N
 * one-column products whose weight matrix is the expert the batch's id names, so a mat-vec
 * reads only the chosen experts' rows (matvec.comp; matvec_wide.comp where the dense mat-vec
 * takes it, lavapipe's tuning). A batch: moe_route.comp sorts the pairs by
 * expert into tiles and matmul_id.comp multiplies each tile by its expert, whose weights are
 * then read once per tile of its pairs (register tiles only when full: see lower_grouped).
 * Stacked experts larger than one binding (Qwen3-30B-A3B's 128 x 768 x 2048 is 108 MiB in
 * q4_0 but 204 MiB in q8_0, Mixtral's 8 x 14336 x 4096 252 MiB in q4_0: over lavapipe's 128
 * MiB) are bound a slice of whole experts at a time, one dispatch (or route and product) per
 * slice; only an expert larger than a binding is refused, with its size.
 *
 * Fusion (absorb): glu(matmul_id(Wg, x, ids), matmul_id(Wu, x, ids)), a feed-forward's gate
 * and up expert products, where Wg and Wu are the two halves of one stacked weight J [K, M, 2E]
 * (the gate experts, then the up experts: vki_weights' join of the two tensors, no copy) and
 * the product lowers to matvec_wide: one node on J that computes both rows of each output and
 * the glu, y[m, j, n] = act(J[:, m, id] . x) * (J[:, m, E + id] . x). One dispatch instead of
 * three, x loaded once for both. And moe_combine(matmul_id(W, x, ids), w), a decode's down
 * product and its weighted sum over the slots (then Granite's scale and the residual add, as
 * moe_combine takes them): at decode with every expert in one binding, a workgroup owns
 * its token's rows across all the slots and sums them itself (combine_into_down), one
 * dispatch instead of two: matvec_wide runs the slots in turn, matvec.comp deals the slots'
 * chunks to its threads together (GPU tunings). */
#include "activation.h"
#include "matmul_internal.h"
#include "vki_abi.h"

#include <stdio.h>
#include <string.h>

const vki_op_def vki_op_matmul_id;
extern const vki_op_def vki_op_moe_combine; // moe.c

/* What the fusion pass folds into a matmul_id node (zero for a plain product). */
typedef struct matmul_id_params {
    vki_activation glu; // y = act(gate expert's row) * up expert's row; w holds 2E experts
    /* The weighted combine of the slots (moe_combine folded in): y [M, N] = scale sum_j
     * src[3][j, n] (expert ids[j, n]'s row . x) (+ src[4], a residual, where one is folded). */
    bool combine;
    bool scaled; // 0: a scale of 1
    float scale;
} matmul_id_params;
static_assert(sizeof(matmul_id_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static matmul_id_params params_of(const vki_node *n)
{
    matmul_id_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

vki_tensor vki_matmul_id(vki_graph *g, vki_tensor w, vki_tensor x, vki_tensor ids)
{
    vki_tensor srcs[3] = {w, x, ids};
    if (!vki__check_srcs(g, "matmul_id", 3, srcs)) return (vki_tensor){0};
    const vki_node *nw = vki__node(g, w), *nx = vki__node(g, x), *ni = vki__node(g, ids);
    const vki_dtype_info *wd = vki_dtype_get(nw->dtype);
    char sw[96], sx[96], si[96];
    vki__shape_str(nw, sw);
    vki__shape_str(nx, sx);
    vki__shape_str(ni, si);
    if (!wd->block_elems || nw->dtype == VKI_DTYPE_I32 || nw->ne[3] != 1)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul_id: w %s: want [K, M, E] of a weight dtype", sw);
    if ((nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16) || nx->ne[3] != 1)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul_id: x %s: want f32 or f16 [K, J, N]", sx);
    if (ni->dtype != VKI_DTYPE_I32 || ni->ne[2] * ni->ne[3] != 1 || !vki__is_contiguous(ni))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul_id: ids %s: want i32 [k, N], contiguous", si);
    int64_t k = ni->ne[0], N = ni->ne[1];
    if (nw->ne[0] != nx->ne[0] || nw->ne[0] % wd->block_elems)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul_id: w %s and x %s: dimension 0 must agree and be a multiple "
                               "of %s's block of %u", sw, sx, wd->name, wd->block_elems);
    if ((nx->ne[1] != k && nx->ne[1] != 1) || nx->ne[2] != N)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul_id: x %s, ids %s: x must be [K, k or 1, N]", sx, si);
    // The kernels read rows as runs of elements (or blocks); other strides are free.
    if ((nw->ne[0] > wd->block_elems && nw->nb[0] != wd->block_bytes) ||
        (nx->ne[0] > 1 && nx->nb[0] != vki_dtype_get(nx->dtype)->block_bytes))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "matmul_id: w %s, x %s: rows (dimension 0) must be contiguous; "
                               "vki_copy the operand first", sw, sx);
    int64_t ne[VKI_MAX_DIMS] = {nw->ne[1], k, N, 1};
    return vki__new_op(g, &vki_op_matmul_id, VKI_DTYPE_F32, 3, ne, 3, srcs);
}

/* Row m of expert e of w times x column (xj, t), in double, a block of w decoded at a time. */
static double row_dot(const vki_ref_tensor *w, const vki_ref_tensor *x, int64_t e, int64_t m,
                      int64_t xj, int64_t t)
{
    const vki_dtype_info *wd = vki_dtype_get(w->dtype);
    int64_t K = w->ne[0], be = wd->block_elems;
    float blk[256];
    double sum = 0;
    for (int64_t k0 = 0; k0 < K; k0 += be) {
        if (wd->quantized)
            vki_dequant_block(w->dtype, w->data + (k0 / be) * w->nb[0] + m * w->nb[1] + e * w->nb[2], blk);
        else
            blk[0] = vki_ref_get(w, k0, m, e, 0);
        for (int64_t i = 0; i < be; i++) sum += (double)blk[i] * vki_ref_get(x, k0 + i, xj, t, 0);
    }
    return sum;
}

/* Plain dot products; a folded glu's gate and up rows from experts id and E + id; a folded
 * combine's weighted sum over the slots, then its scale and residual. */
static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *w = &s[0], *x = &s[1], *ids = &s[2];
    matmul_id_params mp = params_of(n);
    vki_activation glu = mp.glu;
    int64_t E = glu ? w->ne[2] / 2 : w->ne[2];
    if (mp.combine) {
        for (int64_t t = 0; t < ids->ne[1]; t++)
            for (int64_t m = 0; m < n->ne[0]; m++) {
                double acc = 0;
                for (int64_t j = 0; j < ids->ne[0]; j++) {
                    int64_t id = (int64_t)vki_ref_get(ids, j, t, 0, 0), xj = x->ne[1] == 1 ? 0 : j;
                    double v = id >= 0 && id < E ? row_dot(w, x, id, m, xj, t) : 0.0;
                    acc += (double)vki_ref_get(&s[3], j, t, 0, 0) * v;
                }
                float r = (float)acc * (mp.scaled ? mp.scale : 1.0f);
                if (n->src[4]) r += vki_ref_get(&s[4], m, t, 0, 0);
                vki_ref_set(d, m, t, 0, 0, r);
            }
        return;
    }
    for (int64_t t = 0; t < n->ne[2]; t++)
        for (int64_t j = 0; j < n->ne[1]; j++) {
            int64_t id = (int64_t)vki_ref_get(ids, j, t, 0, 0), xj = x->ne[1] == 1 ? 0 : j;
            for (int64_t m = 0; m < n->ne[0]; m++) {
                double v = 0;
                if (id >= 0 && id < E) {
                    v = row_dot(w, x, id, m, xj, t);
                    if (glu) v = vki__activation_ref(glu, (float)v) * row_dot(w, x, E + id, m, xj, t);
                }
                vki_ref_set(d, m, j, t, 0, (float)v);
            }
        }
}

/* What is known of the operands' alignment (VKI_SPEC_MM_ALIGN): weight rows at multiples of 4
 * bytes with chunks of whole words; x columns at 16 bytes. */
static uint32_t align_bits(const vki_dtype_info *wd, const vki_operand *w, const vki_pc_matmul_id *pc,
                           bool x_f16)
{
    uint32_t align = 0, eb = wd->quantized ? 1 : wd->block_bytes;
    uint64_t w_rows = (uint64_t)w->offset * eb | (uint64_t)w->nb[1] * eb | (uint64_t)w->nb[2] * eb;
    if (w_rows % 4 == 0) {
        align |= VKI_MM_ALIGN_W_ROWS;
        if ((wd->quantized ? wd->block_bytes : VKI_MM_CHUNK * eb) % 4 == 0) align |= VKI_MM_ALIGN_W;
    }
    if ((pc->x_off | pc->x_nb2 | pc->x_nb3) % (x_f16 ? 8 : 4) == 0) align |= VKI_MM_ALIGN_X;
    return align;
}

/* lower_part's dispatch as matvec_wide (IDS=1): one subgroup per workgroup, each computing
 * wide_rows rows at a time from kchunks x chunks per thread (vki__matvec_wide), one column,
 * blocks of rows as many as leave WIDE_MIN_GROUPS workgroups in the dispatch. The batches
 * (slots x tokens) already multiply the workgroups: a decode token's 8 slots take 8
 * workgroups where the dense rule (4 per column) would take 32, and every workgroup more loads
 * x again and costs lavapipe a call. Runs of blocks (VKI_SPEC_MM_RUN) as the dense product's. */
#define WIDE_MIN_GROUPS 4
#define WIDE_MAX_BLOCKS 4096
static vki_status lower_part_wide(vki_lower *L, const vki_node *n, vki_pc_matmul_id *pc,
                                  uint32_t align, bool x_f16, uint32_t kchunks, uint32_t wide_rows,
                                  const vki_lower_range *range)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_tuning *t = &p->tuning;
    uint32_t self = vki_lower_self(L), local = t->subgroup_size;
    vki_operand w = vki_lower_operand_at(L, n->src[0], range ? range->offset : 0);
    const vki_dtype_info *wd = vki_dtype_get(vki_lower_node(L, n->src[0])->dtype);
    uint32_t eb = wd->quantized ? 1 : wd->block_bytes;
    bool w_texels = ((uint64_t)w.offset * eb | (uint64_t)w.nb[1] * eb | (uint64_t)w.nb[2] * eb) % 16 == 0;
    if (w_texels) align |= VKI_MM_ALIGN_W_TEXELS;
    // Runs of consecutive blocks, as the dense product deals them (texels read together).
    uint32_t run = vki__matvec_wide_run(p, vki_lower_node(L, n->src[0])->dtype, pc->K,
                                        (align & VKI_MM_ALIGN_W_ROWS) != 0, w_texels, &kchunks,
                                        &wide_rows);
    // A folded combine's workgroup runs every slot of its token: a workgroup per token's rows.
    bool combine = (pc->epi & VKI_MM_EPI_COMBINE) != 0;
    uint64_t batches = combine ? pc->ne3 : (uint64_t)pc->ne2 * pc->ne3;
    uint64_t per_batch = batches >= WIDE_MIN_GROUPS ? 1 : vki_div_up(WIDE_MIN_GROUPS, batches);
    uint64_t blocks = vki_div_up(pc->M, (uint64_t)local * per_batch);
    if (blocks > WIDE_MAX_BLOCKS) blocks = WIDE_MAX_BLOCKS;
    vki_spec specs[] = {
        {VKI_SPEC_MM_X_F16, x_f16}, {VKI_SPEC_MM_ALIGN, align}, {VKI_SPEC_LOCAL_SIZE_X, local},
        {VKI_SPEC_MM_KCHUNKS, kchunks}, {VKI_SPEC_MM_ROWS, wide_rows},
        {VKI_SPEC_MM_BLOCKS, (uint32_t)blocks}, {VKI_SPEC_MM_RUN, run},
    };
    char kernel[48];
    snprintf(kernel, sizeof kernel, "matvec_%s_id_wide", wd->name);
    // Bindings: w, x, bias (a folded combine's routing weights), y, residual (a folded
    // combine's), norm and positions (unused: w), then the ids.
    uint32_t tensors[8] = {n->src[0], n->src[1], combine ? n->src[3] : n->src[0], self,
                           n->src[4] ? n->src[4] : n->src[0], n->src[0], n->src[0], n->src[2]};
    static_assert(VKI_MM_BINDING_IDS_WIDE == 7, "the ids follow matvec_wide's 7 bindings");
    vki_lower_range ranges[8] = {{0}};
    for (int i = 0; range && i < 7; i++)
        if (tensors[i] == n->src[0]) ranges[i] = *range;
    vki_step_desc s = {
        .kernel = kernel,
        .specs = specs, .spec_count = sizeof specs / sizeof specs[0],
        .subgroup_size = p->subgroup_size_control ? local : 0,
        .tensors = tensors, .tensor_count = 8, .write_mask = 1u << VKI_MM_BINDING_Y,
        .push = pc, .push_size = sizeof *pc,
        .ranges = range ? ranges : NULL,
    };
    vki_lower_grid(vki_div_up(pc->M, (uint64_t)local * blocks), 1, s.groups);
    s.groups[2] = (uint32_t)batches;
    return vki_lower_step(L, &s);
}

/* Experts [e0, e0 + ne) of tokens [t0, t0 + nt): one dispatch, the experts' bytes bound alone
 * when `range` (NULL: all of w). */
static vki_status lower_part(vki_lower *L, const vki_node *n, uint32_t e0, uint32_t ne,
                             const vki_lower_range *range, uint32_t t0, uint32_t nt)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_tuning *t = &p->tuning;
    uint32_t self = vki_lower_self(L);
    const vki_node *nw = vki_lower_node(L, n->src[0]), *nx = vki_lower_node(L, n->src[1]);
    vki_operand w = vki_lower_operand_at(L, n->src[0], range ? range->offset : 0);
    vki_operand x = vki_lower_operand(L, n->src[1]), ids = vki_lower_operand(L, n->src[2]);
    vki_operand d = vki_lower_operand(L, self);
    if ((range ? range->size : vki__span_bytes(nw)) > UINT32_MAX || vki__span_bytes(nx) > UINT32_MAX)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "operands over 4 GiB (32-bit indexing)");
    matmul_id_params mp = params_of(n);
    uint32_t M = d.ne[0], k = ids.ne[0];
    vki_activation glu = mp.glu;
    vki_pc_matmul_id pc = {
        // One column per batch: slots j along ne2, tokens along ne3.
        .M = M, .y_ld = M, .N = 1, .K = w.ne[0], .ne2 = k, .ne3 = nt, .w_r2 = 1, .w_r3 = 1,
        .w_off = w.offset, .w_nb1 = w.nb[1], .w_nb2 = w.nb[2],
        .x_off = x.offset + t0 * x.nb[2], .x_nb2 = x.ne[1] == 1 ? 0 : x.nb[1], .x_nb3 = x.nb[2],
        .y_off = d.offset + t0 * M * (mp.combine ? 1 : k),
        .i_off = ids.offset + t0 * k, .e_first = e0, .e_count = ne,
        // A folded glu's w holds the gate experts, then as many up experts (the kernel reads
        // expert id's up rows e_total experts on).
        .e_total = glu ? w.ne[2] / 2 : w.ne[2],
        .epi = (uint32_t)glu << VKI_MM_EPI_GLU_SHIFT,
    };
    if (mp.combine) {
        // The routing weights [k, N] (contiguous: fusion checks) as the bias, the scale in eps.
        pc.epi |= VKI_MM_EPI_COMBINE | (n->src[4] ? VKI_MM_EPI_RES : 0);
        pc.b_off = vki_lower_operand(L, n->src[3]).offset + t0 * k;
        pc.r_off = n->src[4] ? vki_lower_operand(L, n->src[4]).offset + t0 * M : 0;
        pc.eps = mp.scaled ? mp.scale : 1.0f;
    }
    const vki_dtype_info *wd = vki_dtype_get(nw->dtype);
    bool x_f16 = nx->dtype == VKI_DTYPE_F16;
    uint32_t align = align_bits(wd, &w, &pc, x_f16);

    // matvec_wide where the dense product of one column takes it (CPU devices with texel
    // loads: lavapipe's tuning): several rows per workgroup, x loaded once for them.
    uint32_t kchunks = 0, wide_rows = 1;
    if (vki__matvec_wide(p, pc.K, 1, &kchunks, &wide_rows))
        return lower_part_wide(L, n, &pc, align, x_f16, kchunks, wide_rows, range);
    if (glu)
        return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                              "a fused glu needs the matvec_wide kernel (fusion checks)");

    // The storage-buffer mat-vec, one subgroup per workgroup (subgroupAdd alone reduces; the
    // fallback's shared-memory tree needs a power of two, which subgroup sizes are).
    bool sg = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) != 0;
    uint32_t rows = t->matvec_rows ? t->matvec_rows : 1, local = t->subgroup_size ? t->subgroup_size : 32;
    char kernel[48];
    snprintf(kernel, sizeof kernel, "matvec_%s_id%s", wd->name,
             sg && t->texel_loads ? "_tx" : sg ? "" : "_shmem");
    vki_spec specs[] = {
        {VKI_SPEC_MM_X_F16, x_f16}, {VKI_SPEC_MM_ALIGN, align}, {VKI_SPEC_LOCAL_SIZE_X, local},
        {VKI_SPEC_MM_ROWS, rows}, {VKI_SPEC_MM_COLS, 1},
    };
    // Bindings: w, x, bias (a folded combine's routing weights), y, residual (a folded
    // combine's), then the ids.
    uint32_t tensors[6] = {n->src[0], n->src[1], mp.combine ? n->src[3] : n->src[0], self,
                           n->src[4] ? n->src[4] : n->src[0], n->src[2]};
    static_assert(VKI_MM_BINDING_IDS == 5, "the ids follow the matmul family's 5 bindings");
    vki_lower_range ranges[6] = {{0}};
    for (int i = 0; range && i < 5; i++)
        if (tensors[i] == n->src[0]) ranges[i] = *range;
    vki_step_desc s = {
        .kernel = kernel,
        .specs = specs, .spec_count = sizeof specs / sizeof specs[0],
        .subgroup_size = sg && p->subgroup_size_control ? local : 0,
        .tensors = tensors, .tensor_count = 6, .write_mask = 1u << VKI_MM_BINDING_Y,
        .push = &pc, .push_size = sizeof pc,
        .ranges = range ? ranges : NULL,
    };
    vki_lower_grid(vki_div_up(M, rows), 1, s.groups);
    s.groups[2] = mp.combine ? nt : k * nt; // a folded combine: a workgroup runs all of a token's slots
    return vki_lower_step(L, &s);
}

#define MATVEC_MAX_TOKENS 8 // tokens up to which every pair is a mat-vec of its own (decode)

/* Experts [e0, e0 + ne) of every token grouped (a batch): moe_route sorts the pairs by expert
 * into tiles of the product kernel's columns, in the plan's scratch; matmul_id.comp computes
 * each tile against its expert's rows. *out_done is false when the batch does not suit (more
 * experts than the route counts, a grid over the device's limits): the caller then takes the
 * mat-vecs. */
static vki_status lower_grouped(vki_lower *L, const vki_node *n, uint32_t e0, uint32_t ne,
                                const vki_lower_range *range, bool *out_done)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_tuning *t = &p->tuning;
    uint32_t self = vki_lower_self(L);
    const vki_node *nw = vki_lower_node(L, n->src[0]), *nx = vki_lower_node(L, n->src[1]);
    vki_operand w = vki_lower_operand_at(L, n->src[0], range ? range->offset : 0);
    vki_operand x = vki_lower_operand(L, n->src[1]), ids = vki_lower_operand(L, n->src[2]);
    vki_operand d = vki_lower_operand(L, self);
    uint32_t M = d.ne[0], k = d.ne[1], N = d.ne[2];
    const vki_dtype_info *wd = vki_dtype_get(nw->dtype);
    *out_done = false;

    // The tiles: matmul_shared's (8 x 8 register tiles for big tiles, 4 x 4 otherwise) or
    // matmul_reg's (one subgroup, each thread all TILE_M rows and as many columns as its x
    // budget allows), as matmul.c picks them.
    // Tiles no wider than an expert's share of the pairs on average (uniform routing), since
    // a tile's columns past its pairs cost as much as the others.
    uint64_t pairs = (uint64_t)k * N, share = vki_div_up(pairs, ne);
    char kernel[48];
    uint32_t tm = t->matmul_tile_m, tn, tk = t->matmul_tile_k, rows, cols, local;
    if (t->matmul_shared) {
        tn = t->matmul_tile_n;
        while (tn > 16 && tn / 2 >= share) tn /= 2;
        rows = tm >= 128 ? 8 : 4, cols = tn >= 128 ? 8 : 4;
        if (tm % rows || tn % cols || tk % 4 || !tk ||
            4ull * (tk * (tm + tn) + tn) > p->shared_memory)
            return VKI_OK;
        local = (tm / rows) * (tn / cols);
        snprintf(kernel, sizeof kernel, "matmul_%s_id", wd->name);
    } else {
        uint32_t threads = t->subgroup_size ? t->subgroup_size : 1;
        uint32_t budget = (p->type == VKI_DEVICE_CPU ? 128 : 64) / VKI_MM_CHUNK;
        cols = t->matmul_tile_n / threads < budget ? t->matmul_tile_n / threads : budget;
        if (!cols) cols = 1;
        // Register tiles are for CPU devices, whose mat-vecs run as many flops a second (on
        // lavapipe, loaded: 6.1 GFLOP/s for OLMoE's 8 experts of a token, dense tiles 5.2,
        // tiles of 16 columns 2.9): only full tiles pay.
        if (share < (uint64_t)threads * cols) return VKI_OK;
        rows = tm, tn = cols * threads, local = threads;
        snprintf(kernel, sizeof kernel, "matmul_%s_id_reg%s", wd->name, t->texel_loads ? "_tx" : "");
    }
    uint64_t tiles = vki_div_up(pairs, tn) + (ne < pairs ? ne : pairs);
    uint64_t list_off = 1 + 3 * tiles, scratch = 4 * (list_off + pairs);
    if (ne > VKI_MOE_ROUTE_MAX_EXPERTS || tiles > p->max_workgroup_count[1] ||
        vki_div_up(M, tm) > p->max_workgroup_count[0] || scratch > UINT32_MAX)
        return VKI_OK;

    vki_pc_moe_route rc = {
        .pairs = (uint32_t)pairs, .i_off = ids.offset, .e_first = e0, .e_count = ne,
        .e_total = w.ne[2], .tile_n = tn, .list_off = (uint32_t)list_off, .M = M, .y_off = d.offset,
    };
    uint32_t local_route = t->workgroup_size < 256 ? t->workgroup_size : 256;
    vki_spec route_spec = {VKI_SPEC_LOCAL_SIZE_X, local_route};
    uint32_t route_tensors[3] = {n->src[2], VKI_LOWER_SCRATCH, self};
    vki_step_desc route = {
        .kernel = "moe_route",
        .specs = &route_spec, .spec_count = 1,
        .tensors = route_tensors, .tensor_count = 3, .scratch_bytes = scratch,
        .write_mask = 1u << 1 | 1u << 2,
        .push = &rc, .push_size = sizeof rc,
        .groups = {1, 1, 1},
    };
    VKI_TRY(vki_lower_step(L, &route));

    vki_pc_matmul_id pc = {
        .M = M, .y_ld = M, .N = 1, .K = w.ne[0], .ne2 = k, .ne3 = N, .w_r2 = 1, .w_r3 = 1,
        .w_off = w.offset, .w_nb1 = w.nb[1], .w_nb2 = w.nb[2],
        .x_off = x.offset, .x_nb2 = x.ne[1] == 1 ? 0 : x.nb[1], .x_nb3 = x.nb[2],
        .y_off = d.offset, .i_off = (uint32_t)list_off, .e_first = e0, .e_count = ne,
        .e_total = w.ne[2],
    };
    bool x_f16 = nx->dtype == VKI_DTYPE_F16;
    vki_spec specs[VKI_STEP_MAX_SPECS] = {
        {VKI_SPEC_MM_X_F16, x_f16}, {VKI_SPEC_MM_ALIGN, align_bits(wd, &w, &pc, x_f16)},
        {VKI_SPEC_LOCAL_SIZE_X, local}, {VKI_SPEC_MM_ROWS, rows}, {VKI_SPEC_MM_COLS, cols},
        {VKI_SPEC_MM_TILE_M, tm}, {VKI_SPEC_MM_TILE_N, tn}, {VKI_SPEC_MM_TILE_K, tk},
    };
    uint32_t tensors[6] = {n->src[0], n->src[1], n->src[0], self, n->src[0], VKI_LOWER_SCRATCH};
    vki_lower_range ranges[6] = {{0}};
    for (int i = 0; range && i < 5; i++)
        if (tensors[i] == n->src[0]) ranges[i] = *range;
    vki_step_desc s = {
        .kernel = kernel,
        .specs = specs, .spec_count = t->matmul_shared ? 8 : 7,
        .tensors = tensors, .tensor_count = 6, .scratch_bytes = scratch,
        .write_mask = 1u << VKI_MM_BINDING_Y,
        .push = &pc, .push_size = sizeof pc,
        .groups = {(uint32_t)vki_div_up(M, tm), (uint32_t)tiles, 1},
        .ranges = range ? ranges : NULL,
    };
    *out_done = true;
    return vki_lower_step(L, &s);
}

/* Stacked experts over the binding limit are bound a slice of whole experts at a time; tokens
 * go in chunks that keep the grid's z (slots x tokens) within the device's limit. */
static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_node *nw = vki_lower_node(L, n->src[0]), *ni = vki_lower_node(L, n->src[2]);
    uint64_t E = (uint64_t)nw->ne[2], k = (uint64_t)ni->ne[0], N = (uint64_t)ni->ne[1];
    uint64_t per = E;
    uint64_t expert = (uint64_t)(nw->ne[1] - 1) * nw->nb[1] + vki_dtype_bytes(nw->dtype, nw->ne[0]);
    if (!vki__matmul_weight_fits(p, nw)) {
        per = vki_lower_window_count(p, expert, nw->nb[2]);
        if (per > UINT32_MAX / nw->nb[2]) per = UINT32_MAX / nw->nb[2]; // 32-bit indexing in a slice
        if (per == 0)
            return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED,
                                  "one expert's weights span %llu bytes, over the device's binding "
                                  "limit of %llu", (unsigned long long)expert,
                                  (unsigned long long)p->max_storage_range);
    }
    if (params_of(n).glu) {
        // Folded by glu_into_experts, which checked all of this: the gate and up experts in one
        // binding (a slice would need the up experts' own), a decode, one column per batch.
        uint32_t kchunks, rows;
        if (nw->ne[2] % 2 || per < E || N > MATVEC_MAX_TOKENS || N * k > p->max_workgroup_count[2] ||
            !vki__matvec_wide(p, (uint64_t)nw->ne[0], 1, &kchunks, &rows))
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "a fused glu needs 2E experts in one binding and a decode through "
                                  "matvec_wide (fusion checks)");
        return lower_part(L, n, 0, (uint32_t)(E / 2), NULL, 0, (uint32_t)N);
    }
    if (params_of(n).combine) {
        // Folded by combine_into_down, which checked it: every expert in one binding, a decode
        // (matvec_wide or matvec.comp's _id kernels, both of which fold it).
        if (per < E || N > MATVEC_MAX_TOKENS || N > p->max_workgroup_count[2])
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                                  "a fused combine needs the experts in one binding and a decode "
                                  "(fusion checks)");
        return lower_part(L, n, 0, (uint32_t)E, NULL, 0, (uint32_t)N);
    }
    uint64_t tokens = p->max_workgroup_count[2] / k;
    if (tokens == 0)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%llu slots per token, the device allows %u",
                              (unsigned long long)k, p->max_workgroup_count[2]);
    for (uint64_t e0 = 0; e0 < E; e0 += per) {
        uint64_t ne = E - e0 < per ? E - e0 : per;
        vki_lower_range range = {.offset = e0 * nw->nb[2], .size = (ne - 1) * nw->nb[2] + expert};
        bool done = false;
        if (N > MATVEC_MAX_TOKENS)
            VKI_TRY(lower_grouped(L, n, (uint32_t)e0, (uint32_t)ne, per < E ? &range : NULL, &done));
        for (uint64_t t0 = 0; !done && t0 < N; t0 += tokens)
            VKI_TRY(lower_part(L, n, (uint32_t)e0, (uint32_t)ne, per < E ? &range : NULL, (uint32_t)t0,
                               (uint32_t)(N - t0 < tokens ? N - t0 : tokens)));
    }
    return VKI_OK;
}

/* Whether wg and wu are the first and second halves, [K, M, E] each, of one stacked weight J
 * [K, M, 2E] (views of it with its strides); J's id, or 0. */
static uint32_t halves_of(const vki_graph *w, uint32_t wg_id, uint32_t wu_id)
{
    const vki_node *wg = &w->nodes[wg_id], *wu = &w->nodes[wu_id];
    if (wg->kind != VKI_NODE_VIEW || wu->kind != VKI_NODE_VIEW || wg->src[0] != wu->src[0])
        return 0;
    const vki_node *j = &w->nodes[wg->src[0]];
    int64_t E = wg->ne[2];
    if (j->kind == VKI_NODE_VIEW || j->ne[0] != wg->ne[0] || j->ne[1] != wg->ne[1] || j->ne[2] != 2 * E ||
        j->ne[3] != 1 || !vki__same_shape(wg, wu) || j->view_offset || wg->view_offset != 0 ||
        wu->view_offset != (uint64_t)E * j->nb[2])
        return 0;
    for (int d = 0; d < 3; d++) // (dim 3 has one element)
        if (wg->nb[d] != j->nb[d] || wu->nb[d] != j->nb[d]) return 0;
    return wg->src[0];
}

/* glu g_id of two matmul_ids (gate g_id's src[0], up its src[1]) of the same x and ids, each
 * read only by it, whose weights are the halves of one stacked J (halves_of): the gate's node
 * goes into g_id on J, computing both products and the glu, where it lowers to matvec_wide (a
 * decode, J in one binding). */
static bool glu_into_experts(vki_fusion *f, uint32_t m_id, uint32_t g_id)
{
    vki_graph *w = f->w;
    uint32_t *uses = f->uses;
    vki_node *gl = &w->nodes[g_id];
    if (!f->profile || gl->op != &vki_op_glu || gl->src[0] != m_id || !gl->src[1] || gl->src[2] ||
        gl->dtype != VKI_DTYPE_F32 || !vki__is_contiguous(gl))
        return false;
    const vki_node *a = &w->nodes[gl->src[0]], *b = &w->nodes[gl->src[1]];
    if (b->kind != VKI_NODE_OP || b->op != &vki_op_matmul_id || a->output || b->output ||
        uses[gl->src[0]] != 1 || uses[gl->src[1]] != 1 || a->src[1] != b->src[1] ||
        a->src[2] != b->src[2] || params_of(a).glu || params_of(b).glu || !vki__same_shape(a, gl) ||
        !vki__same_shape(b, gl))
        return false;
    uint32_t j_id = halves_of(w, a->src[0], b->src[0]), kchunks, rows;
    if (!j_id || !vki__matmul_weight_fits(f->profile, &w->nodes[j_id]) ||
        a->ne[2] > MATVEC_MAX_TOKENS || (uint64_t)a->ne[1] * a->ne[2] > f->profile->max_workgroup_count[2] ||
        !vki__matvec_wide(f->profile, (uint64_t)w->nodes[j_id].ne[0], 1, &kchunks, &rows))
        return false;
    vki_node merged = *a;
    merged.src[0] = j_id;
    vki__params_set(&merged, &(matmul_id_params){.glu = vki__glu_params(gl).act}, sizeof(matmul_id_params));
    merged.output = gl->output;
    memcpy(merged.name, gl->name, sizeof merged.name);
    merged.base = g_id;
    // g_id reads J, x and ids now: the halves' views lose their readers, x and ids one (b's).
    uses[a->src[0]]--, uses[b->src[0]]--, uses[j_id]++;
    uses[b->src[1]]--, uses[b->src[2]]--;
    uses[gl->src[0]] = uses[gl->src[1]] = 0;
    *gl = merged;
    return true;
}

/* moe_combine c_id of the products m_id (read only by it) with routing weights w (f32 [k, N],
 * contiguous): m_id's dispatch sums the slots itself where it is a decode (lower_part: matvec_wide
 * or matvec.comp's _id kernels) with every expert in one binding, and c_id becomes m_id's node
 * with w as src[3]. The walk visits c_id before its readers, so it has folded no scale or
 * residual yet (moe.c's absorb): those then fold into m_id's combine (combine_tail). */
static bool combine_into_down(vki_fusion *f, uint32_t m_id, uint32_t c_id)
{
    vki_graph *w = f->w;
    vki_node *c = &w->nodes[c_id];
    const vki_node *m = &w->nodes[m_id], *rw = &w->nodes[c->src[1]], *nw = &w->nodes[m->src[0]];
    matmul_id_params mp = params_of(m);
    if (!f->profile || c->src[0] != m_id || c->src[2] || m->output || f->uses[m_id] != 1 || mp.glu ||
        mp.combine || rw->dtype != VKI_DTYPE_F32 || !vki__is_contiguous(rw) || !vki__is_contiguous(c) ||
        m->ne[2] > MATVEC_MAX_TOKENS || (uint64_t)m->ne[2] > f->profile->max_workgroup_count[2] ||
        !vki__matmul_weight_fits(f->profile, nw))
        return false;
    vki_node merged = *m;
    merged.ndim = c->ndim;
    memcpy(merged.ne, c->ne, sizeof merged.ne);
    memcpy(merged.nb, c->nb, sizeof merged.nb);
    merged.src[3] = c->src[1]; // its one use moves from c to the merged node
    mp.combine = true;
    vki__params_set(&merged, &mp, sizeof mp);
    merged.output = c->output;
    memcpy(merged.name, c->name, sizeof merged.name);
    merged.base = c_id;
    f->uses[m_id] = 0;
    *c = merged;
    return true;
}

/* After a folded combine: a scale (a unary without activation: Granite's residual multiplier)
 * where no residual is folded yet, then an add of a residual r (f32, contiguous, of the
 * result's shape): folded into the product's dispatch as moe_combine takes them. */
static bool combine_tail(vki_fusion *f, uint32_t c_id, uint32_t x_id)
{
    const vki_node *c = &f->w->nodes[c_id];
    matmul_id_params mp = params_of(c);
    if (!mp.combine || c->src[4]) return false;
    float scale = mp.scaled ? mp.scale : 1.0f;
    int tail = vki__combine_tail(f, c_id, x_id, 4, &scale);
    if (tail == VKI__TAIL_SCALE) { // x_id is the product now, with c's parameters
        mp.scale = scale;
        mp.scaled = true;
        vki__params_set(&f->w->nodes[x_id], &mp, sizeof mp);
    }
    return tail != 0;
}

static bool absorb(vki_fusion *f, uint32_t m_id, uint32_t x_id)
{
    const vki_op_def *op = f->w->nodes[x_id].op;
    if (op == &vki_op_glu) return glu_into_experts(f, m_id, x_id);
    if (op == &vki_op_moe_combine) return combine_into_down(f, m_id, x_id);
    return combine_tail(f, m_id, x_id);
}

const vki_op_def vki_op_matmul_id = {
    .name = "matmul_id",
    .reference = reference,
    .lower = lower,
    .absorb = absorb,
};
