/* The routing ops of a mixture of experts (the expert products are matmul_id.c's):
 *   top_k        indices of a row's k largest elements, largest first (one workgroup per row)
 *   moe_weights  the chosen experts' softmax weights, optionally renormalised (one per token);
 *                the fusion pass folds its ids' top_k into it (moe_weights_fuse): the top_k
 *                kernel then writes ids and weights in one dispatch a layer
 *   moe_combine  the experts' outputs summed by those weights (one invocation per output);
 *                the fusion pass folds into it a scale of its result (unary without
 *                activation: Granite's residual multiplier) and then an add of a residual
 *                (the residual stream, or Qwen2-MoE's shared expert): two dispatches fewer a
 *                layer
 * Kernels: shaders/top_k.comp (WEIGHTS=1: with the weights), moe_weights.comp,
 * moe_combine.comp (ABI: shaders/abi_moe.h). */
#include "ops_internal.h"
#include "vki_abi.h"

#include <math.h>

const vki_op_def vki_op_top_k, vki_op_moe_weights, vki_op_moe_combine;

/* Threads of the one-workgroup-per-row kernels (top_k, moe_weights). A router's row is short
 * (8 to 256 experts): with subgroup arithmetic the workgroup is one subgroup, which reduces
 * without shared memory or barriers; else a small workgroup, whose shared-memory tree has few
 * rounds. */
static uint32_t row_local(const vki_profile *p, bool subgroup)
{
    if (subgroup) return p->tuning.subgroup_size;
    return p->tuning.workgroup_size < 64 ? p->tuning.workgroup_size : 64;
}

/* ---- top_k --------------------------------------------------------------------------------- */

typedef struct top_k_params {
    uint32_t k;
    bool in_weights; // the fusion pass gave it to its moe_weights, whose dispatch writes it
} top_k_params;
static_assert(sizeof(top_k_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_tensor vki_top_k(vki_graph *g, vki_tensor x, uint32_t k)
{
    if (!vki__check_srcs(g, "top_k", 1, &x)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x);
    char s[96];
    vki__shape_str(nx, s);
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "top_k: x %s: f32 or f16 only", s);
    if (k < 1 || k > nx->ne[0] || nx->ne[0] > VKI_TOP_K_MAX_ROW)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "top_k: x %s, k = %u: want 1 <= k <= ne0 <= %d", s, k,
                               VKI_TOP_K_MAX_ROW);
    int64_t ne[VKI_MAX_DIMS] = {k, nx->ne[1], nx->ne[2], nx->ne[3]};
    vki_tensor t = vki__new_op(g, &vki_op_top_k, VKI_DTYPE_I32, nx->ndim, ne, 1, &x);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, &(top_k_params){.k = k}, sizeof(top_k_params));
    return t;
}

/* Whether element (a, ia) ranks above (b, ib): larger first, then the smaller index; NaN is
 * -inf. */
static bool ranks_above(float a, int64_t ia, float b, int64_t ib)
{
    if (isnan(a)) a = -INFINITY;
    if (isnan(b)) b = -INFINITY;
    return a > b || (a == b && ia < ib);
}

/* k selection passes: pass j takes the best element that ranks below pass j - 1's. */
static void top_k_reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++) {
                int64_t prev = -1;
                for (int64_t j = 0; j < n->ne[0]; j++) {
                    int64_t best = -1;
                    for (int64_t e = 0; e < s[0].ne[0]; e++) {
                        float v = vki_ref_get(&s[0], e, i1, i2, i3);
                        if (prev >= 0 && !ranks_above(vki_ref_get(&s[0], prev, i1, i2, i3), prev, v, e))
                            continue;
                        if (best < 0 || ranks_above(v, e, vki_ref_get(&s[0], best, i1, i2, i3), best))
                            best = e;
                    }
                    vki_ref_set(d, j, i1, i2, i3, (float)best);
                    prev = best;
                }
            }
}

/* The top_k kernel on x = src[0] of node n into ids node `ids`; with the routing weights
 * into node `weights` as `gate` says (VKI_TOP_K_GATE_*; weights 0: none). */
static vki_status lower_top_k(vki_lower *L, const vki_node *n, uint32_t ids, uint32_t weights,
                              uint32_t gate)
{
    const vki_profile *p = vki_lower_profile(L);
    bool subgroup = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) && p->tuning.subgroup_size;
    vki_operand x = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, ids);
    vki_pc_top_k pc = {
        .ne0 = x.ne[0], .ne1 = x.ne[1], .ne2 = x.ne[2], .ne3 = x.ne[3],
        .k = (uint32_t)vki_lower_node(L, ids)->ne[0],
        .f16 = vki_lower_node(L, n->src[0])->dtype == VKI_DTYPE_F16,
        .s_off = x.offset, .s_nb0 = x.nb[0], .s_nb1 = x.nb[1], .s_nb2 = x.nb[2], .s_nb3 = x.nb[3],
        .d_off = d.offset, .gate = weights ? gate : 0,
        .w_off = weights ? vki_lower_operand(L, weights).offset : 0,
    };
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, row_local(p, subgroup)};
    uint32_t tensors[3] = {n->src[0], ids, weights};
    vki_step_desc s = {
        .kernel = weights ? (subgroup ? "top_k_w_subgroup" : "top_k_w_shared")
                          : (subgroup ? "top_k_subgroup" : "top_k_shared"),
        .specs = &spec, .spec_count = 1,
        .subgroup_size = subgroup && p->subgroup_size_control ? spec.value : 0,
        .tensors = tensors, .tensor_count = weights ? 3 : 2,
        .write_mask = 1u << 1 | (weights ? 1u << 2 : 0),
        .push = &pc, .push_size = sizeof pc,
    };
    vki_lower_grid((uint64_t)x.ne[1] * x.ne[2] * x.ne[3], 1, s.groups); // a workgroup per row
    return vki_lower_step(L, &s);
}

static vki_status top_k_lower(vki_lower *L, const vki_node *n)
{
    top_k_params tp;
    vki__params_get(n, &tp, sizeof tp);
    if (tp.in_weights) return VKI_OK; // its moe_weights' dispatch writes it (moe_weights_fuse)
    return lower_top_k(L, n, vki_lower_self(L), 0, 0);
}

const vki_op_def vki_op_top_k = {
    .name = "top_k",
    .reference = top_k_reference,
    .lower = top_k_lower,
};

/* ---- moe_weights --------------------------------------------------------------------------- */

typedef struct moe_weights_params {
    bool normalize;
    bool with_top_k; // the fusion pass folded its ids' top_k in: one dispatch writes both
} moe_weights_params;
static_assert(sizeof(moe_weights_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_tensor vki_moe_weights(vki_graph *g, vki_tensor x, vki_tensor ids, bool normalize)
{
    vki_tensor srcs[2] = {x, ids};
    if (!vki__check_srcs(g, "moe_weights", 2, srcs)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x), *ni = vki__node(g, ids);
    char sx[96], si[96];
    vki__shape_str(nx, sx);
    vki__shape_str(ni, si);
    if (nx->dtype != VKI_DTYPE_F32 || ni->dtype != VKI_DTYPE_I32 || nx->ne[2] * nx->ne[3] != 1 ||
        ni->ne[2] * ni->ne[3] != 1 || ni->ne[1] != nx->ne[1])
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "moe_weights: x %s, ids %s: want x f32 [E, N] and ids i32 [k, N]", sx, si);
    int64_t ne[2] = {ni->ne[0], nx->ne[1]};
    vki_tensor t = vki__new_op(g, &vki_op_moe_weights, VKI_DTYPE_F32, 2, ne, 2, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, &(moe_weights_params){.normalize = normalize}, sizeof(moe_weights_params));
    return t;
}

/* Softmax in double, max-subtracted; then the chosen, then their normalisation. */
static void moe_weights_reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    moe_weights_params mp;
    vki__params_get(n, &mp, sizeof mp);
    const vki_ref_tensor *x = &s[0], *ids = &s[1];
    int64_t E = x->ne[0];
    for (int64_t t = 0; t < n->ne[1]; t++) {
        double mx = -INFINITY, sum = 0, chosen = 0;
        for (int64_t e = 0; e < E; e++) mx = fmax(mx, vki_ref_get(x, e, t, 0, 0));
        for (int64_t e = 0; e < E; e++) sum += exp(vki_ref_get(x, e, t, 0, 0) - mx);
        for (int pass = 0; pass < 2; pass++)
            for (int64_t j = 0; j < n->ne[0]; j++) {
                int64_t id = (int64_t)vki_ref_get(ids, j, t, 0, 0);
                double w = id >= 0 && id < E ? exp(vki_ref_get(x, id, t, 0, 0) - mx) / sum : 0.0;
                if (pass == 0) chosen += w;
                else vki_ref_set(d, j, t, 0, 0, (float)(!mp.normalize ? w : chosen > 0 ? w / chosen : 0.0));
            }
    }
}

static vki_status moe_weights_lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    moe_weights_params mp;
    vki__params_get(n, &mp, sizeof mp);
    if (mp.with_top_k)
        return lower_top_k(L, n, n->src[1], vki_lower_self(L),
                           mp.normalize ? VKI_TOP_K_GATE_SOFTMAX_CHOSEN : VKI_TOP_K_GATE_SOFTMAX);
    bool subgroup = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) && p->tuning.subgroup_size;
    uint32_t self = vki_lower_self(L);
    vki_operand x = vki_lower_operand(L, n->src[0]), ids = vki_lower_operand(L, n->src[1]);
    vki_operand d = vki_lower_operand(L, self);
    vki_pc_moe_weights pc = {
        .E = x.ne[0], .N = x.ne[1], .k = ids.ne[0], .normalize = mp.normalize,
        .x_off = x.offset, .x_nb0 = x.nb[0], .x_nb1 = x.nb[1],
        .i_off = ids.offset, .i_nb0 = ids.nb[0], .i_nb1 = ids.nb[1], .d_off = d.offset,
    };
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, row_local(p, subgroup)};
    uint32_t tensors[3] = {n->src[0], n->src[1], self};
    vki_step_desc s = {
        .kernel = subgroup ? "moe_weights_sg" : "moe_weights",
        .specs = &spec, .spec_count = 1,
        .subgroup_size = subgroup && p->subgroup_size_control ? spec.value : 0,
        .tensors = tensors, .tensor_count = 3, .write_mask = 1u << 2,
        .push = &pc, .push_size = sizeof pc,
    };
    vki_lower_grid(pc.N, 1, s.groups); // a workgroup per token
    return vki_lower_step(L, &s);
}

/* Whether node `id` is needed by an output or by a write into other storage (compile's
 * liveness, forward: the nodes are in order). */
static bool needed(vki_fusion *f, uint32_t id)
{
    vki_graph *w = f->w;
    bool *reach = vki__galloc(w, w->count * sizeof *reach), live = false;
    if (!reach) return false;
    reach[id] = true;
    for (uint32_t i = id; i < w->count && !live; i++) {
        const vki_node *n = &w->nodes[i];
        for (int s = 0; s < VKI_MAX_SRC && !reach[i]; s++) reach[i] = n->src[s] && reach[n->src[s]];
        live = reach[i] && (n->output || vki__writes_src0(n));
    }
    vki__gfree(w, reach);
    return live;
}

/* moe_weights m_id whose ids are top_k(x) of its own x: the top_k goes into m_id's dispatch,
 * the top_k kernel writing the ids and the weights (WEIGHTS=1, abi_moe.h), a dispatch fewer a
 * layer. The top_k node keeps its storage (the expert products read it) and lowers to nothing,
 * so no node may read it before m_id writes it, and m_id must run: needed. */
static bool moe_weights_fuse(vki_fusion *f, uint32_t m_id)
{
    vki_graph *w = f->w;
    vki_node *m = &w->nodes[m_id];
    uint32_t t_id = m->src[1];
    vki_node *t = &w->nodes[t_id];
    top_k_params tp;
    vki__params_get(t, &tp, sizeof tp);
    if (!f->profile || t->kind != VKI_NODE_OP || t->op != &vki_op_top_k || t->src[0] != m->src[0] ||
        tp.in_weights || t_id > m_id)
        return false;
    for (uint32_t id = t_id + 1; id < m_id; id++)
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (w->nodes[id].src[i] && w->nodes[w->nodes[id].src[i]].base == t_id) return false;
    if (!needed(f, m_id)) return false;
    moe_weights_params mp;
    vki__params_get(m, &mp, sizeof mp);
    mp.with_top_k = true;
    vki__params_set(m, &mp, sizeof mp);
    tp.in_weights = true;
    vki__params_set(t, &tp, sizeof tp);
    return true;
}

const vki_op_def vki_op_moe_weights = {
    .name = "moe_weights",
    .reference = moe_weights_reference,
    .lower = moe_weights_lower,
    .fuse = moe_weights_fuse,
};

/* ---- moe_combine --------------------------------------------------------------------------- */

/* What the fusion pass has folded in (all zero for a plain combine): d = scale sum + src[2]. */
typedef struct moe_combine_params {
    uint32_t scaled; // 0: a scale of 1
    float scale;
} moe_combine_params;
static_assert(sizeof(moe_combine_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static float combine_scale(const vki_node *n)
{
    moe_combine_params p;
    vki__params_get(n, &p, sizeof p);
    return p.scaled ? p.scale : 1.0f;
}

vki_tensor vki_moe_combine(vki_graph *g, vki_tensor y, vki_tensor w)
{
    vki_tensor srcs[2] = {y, w};
    if (!vki__check_srcs(g, "moe_combine", 2, srcs)) return (vki_tensor){0};
    const vki_node *ny = vki__node(g, y), *nw = vki__node(g, w);
    char sy[96], sw[96];
    vki__shape_str(ny, sy);
    vki__shape_str(nw, sw);
    if (ny->dtype != VKI_DTYPE_F32 || nw->dtype != VKI_DTYPE_F32 || ny->ne[3] != 1 ||
        nw->ne[2] * nw->ne[3] != 1 || nw->ne[0] != ny->ne[1] || nw->ne[1] != ny->ne[2])
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "moe_combine: y %s, w %s: want y f32 [M, k, N] and w f32 [k, N]", sy, sw);
    int64_t ne[2] = {ny->ne[0], ny->ne[2]};
    return vki__new_op(g, &vki_op_moe_combine, VKI_DTYPE_F32, 2, ne, 2, srcs);
}

static void moe_combine_reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    for (int64_t t = 0; t < n->ne[1]; t++)
        for (int64_t m = 0; m < n->ne[0]; m++) {
            double acc = 0;
            for (int64_t j = 0; j < s[0].ne[1]; j++)
                acc += (double)vki_ref_get(&s[1], j, t, 0, 0) * vki_ref_get(&s[0], m, j, t, 0);
            float v = (float)acc * combine_scale(n);
            if (n->src[2]) v += vki_ref_get(&s[2], m, t, 0, 0);
            vki_ref_set(d, m, t, 0, 0, v);
        }
}

static vki_status moe_combine_lower(vki_lower *L, const vki_node *n)
{
    uint32_t self = vki_lower_self(L);
    vki_operand y = vki_lower_operand(L, n->src[0]), w = vki_lower_operand(L, n->src[1]);
    vki_operand d = vki_lower_operand(L, self);
    vki_pc_moe_combine pc = {
        .M = y.ne[0], .k = y.ne[1], .N = y.ne[2],
        .y_off = y.offset, .y_nb0 = y.nb[0], .y_nb1 = y.nb[1], .y_nb2 = y.nb[2],
        .w_off = w.offset, .w_nb0 = w.nb[0], .w_nb1 = w.nb[1], .d_off = d.offset,
        .scale = combine_scale(n), .res = n->src[2] != 0,
        .r_off = n->src[2] ? vki_lower_operand(L, n->src[2]).offset : 0,
    };
    uint32_t tensors[4] = {n->src[0], n->src[1], n->src[2] ? n->src[2] : n->src[0], self};
    return vki_lower_elementwise(L, n, "moe_combine", tensors, 4, &pc, sizeof pc);
}

int vki__combine_tail(vki_fusion *f, uint32_t c_id, uint32_t x_id, int residual_slot, float *scale)
{
    const vki_graph *w = f->w;
    const vki_node *x = &w->nodes[x_id];
    if (!vki__fusion_single_use(f, c_id, x_id) || !vki__is_contiguous(x)) return 0;
    if (x->op == &vki_op_unary) {
        vki_unary_params u = vki__unary_params(x);
        if (u.act != VKI_ACT_NONE || x->src[0] != c_id) return 0;
        *scale *= u.scale;
        vki__fusion_fold(f, x_id, c_id, 0, 0);
        return VKI__TAIL_SCALE;
    }
    if (x->op != &vki_op_binary || vki__binary_params(x).op != VKI_BINARY_ADD || x->src[0] == x->src[1])
        return 0;
    int side = x->src[0] == c_id ? 0 : 1;
    if (x->src[side] != c_id) return 0; // c read through a view
    uint32_t r_id = x->src[1 - side];
    const vki_node *r = &w->nodes[r_id];
    if (!vki__same_shape(r, x) || r->dtype != VKI_DTYPE_F32 || !vki__is_contiguous(r)) return 0;
    vki__fusion_fold(f, x_id, c_id, residual_slot, r_id);
    return VKI__TAIL_RESIDUAL;
}

/* x of combine c, where c has no residual yet: a scale or a residual add (vki__combine_tail),
 * folded into c's dispatch. */
static bool moe_combine_absorb(vki_fusion *f, uint32_t c_id, uint32_t x_id)
{
    const vki_node *c = &f->w->nodes[c_id];
    if (c->src[2]) return false;
    moe_combine_params p;
    vki__params_get(c, &p, sizeof p);
    float scale = p.scaled ? p.scale : 1.0f;
    int tail = vki__combine_tail(f, c_id, x_id, 2, &scale);
    if (tail == VKI__TAIL_SCALE) { // x_id is the combine now, with c's parameters
        p.scale = scale;
        p.scaled = 1;
        vki__params_set(&f->w->nodes[x_id], &p, sizeof p);
    }
    return tail != 0;
}

const vki_op_def vki_op_moe_combine = {
    .name = "moe_combine",
    .reference = moe_combine_reference,
    .lower = moe_combine_lower,
    .absorb = moe_combine_absorb,
};
