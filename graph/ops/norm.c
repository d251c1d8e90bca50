/* rms_norm, layer_norm and group_norm: normalise boxes of x, then scale by w and shift by b,
 * and (fused, layer and group norm) put the result through an activation.
 * One kernel (norm.comp) serves all three: a box is a row for the first two and a
 * [W, H, C/groups] slab of one image for group_norm (see abi_norm.h).
 *
 * Node: src {x, w or 0, b or 0}; parameters norm_node: vki_norm_params (what other ops read),
 * then the activation a fusion gave it. */
#include "activation.h"
#include "ops_internal.h"
#include "vki_abi.h"

#include <math.h>

typedef struct norm_node {
    vki_norm_params p;
    vki_activation act; // applied last; only by fusion (absorb below), so never on an rms_norm
} norm_node;
static_assert(sizeof(norm_node) <= VKI_PARAMS_BYTES, "node parameter bytes");

static vki_activation act_of(const vki_node *n)
{
    norm_node p;
    vki__params_get(n, &p, sizeof p);
    return p.act;
}

vki_norm_params vki__norm_params(const vki_node *n)
{
    vki_norm_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static bool is_float(vki_dtype t) { return t == VKI_DTYPE_F32 || t == VKI_DTYPE_F16; }

/* w or b: absent, or F32/F16 holding exactly `n` contiguous elements along dim 0. */
static bool check_affine(vki_graph *g, const char *op, const vki_node *x, vki_tensor t, const char *what,
                         int64_t n)
{
    if (!t.id) return true;
    if (!vki__check_srcs(g, op, 1, &t)) return false;
    const vki_node *a = vki__node(g, t);
    if (is_float(a->dtype) && a->ne[0] == n && vki__nelements(a) == n && vki__is_contiguous(a)) return true;
    char sx[96], sa[96];
    vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %s %s for x %s: want a contiguous f32 or f16 [%lld]",
                    op, what, vki__shape_str(a, sa), vki__shape_str(x, sx), (long long)n);
    return false;
}

static vki_tensor build(vki_graph *g, const vki_op_def *op, vki_tensor x, vki_tensor w, vki_tensor b,
                        float eps, uint32_t groups)
{
    if (!vki__check_srcs(g, op->name, 1, &x)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x);
    char sx[96];
    if (!is_float(nx->dtype))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: x %s: want f32 or f16", op->name,
                               vki__shape_str(nx, sx));
    int64_t channels = nx->ne[0];
    if (op == &vki_op_group_norm) {
        channels = nx->ne[2];
        if (groups == 0 || channels % groups != 0)
            return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                                   "%s: x %s: %u groups do not divide C = %lld channels", op->name,
                                   vki__shape_str(nx, sx), groups, (long long)channels);
    }
    if (!check_affine(g, op->name, nx, w, "w", channels) || !check_affine(g, op->name, nx, b, "b", channels))
        return (vki_tensor){0};
    vki_tensor srcs[3] = {x, w, b};
    vki_tensor t = vki__new_op(g, op, nx->dtype, nx->ndim, nx->ne, 3, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, &(norm_node){.p = {.eps = eps, .groups = groups}}, sizeof(norm_node));
    return t;
}

vki_tensor vki_rms_norm(vki_graph *g, vki_tensor x, vki_tensor w, float eps)
{
    return build(g, &vki_op_rms_norm, x, w, (vki_tensor){0}, eps, 0);
}

vki_tensor vki_layer_norm(vki_graph *g, vki_tensor x, vki_tensor w, vki_tensor b, float eps)
{
    return build(g, &vki_op_layer_norm, x, w, b, eps, 0);
}

vki_tensor vki_group_norm(vki_graph *g, vki_tensor x, uint32_t groups, vki_tensor w, vki_tensor b,
                          float eps)
{
    return build(g, &vki_op_group_norm, x, w, b, eps, groups);
}

/* The kernel's box [n0, n1, n2] of x and the grid of boxes [g1, g2, g3] (abi_norm.h). */
typedef struct box_shape {
    int64_t n[3], grid[3];
    bool by_channel;
} box_shape;

static box_shape box_of(const vki_node *n)
{
    if (n->op != &vki_op_group_norm)
        return (box_shape){{n->ne[0], 1, 1}, {n->ne[1], n->ne[2], n->ne[3]}, false};
    uint32_t groups = vki__norm_params(n).groups;
    int64_t cpg = n->ne[2] / groups;
    return (box_shape){{n->ne[0], n->ne[1], cpg}, {groups, n->ne[3], 1}, true};
}

/* x's coordinates of flat element e of box `box` (group_norm: channel j1 * C/groups + e2 of
 * image j2). */
static void coords(const box_shape *bx, int64_t box, int64_t e, int64_t c[4])
{
    int64_t j1 = box % bx->grid[0], j2 = box / bx->grid[0] % bx->grid[1];
    int64_t j3 = box / (bx->grid[0] * bx->grid[1]);
    int64_t e0 = e % bx->n[0], e1 = e / bx->n[0] % bx->n[1], e2 = e / (bx->n[0] * bx->n[1]);
    if (bx->by_channel) {
        c[0] = e0, c[1] = e1, c[2] = j1 * bx->n[2] + e2, c[3] = j2;
    } else {
        c[0] = e0, c[1] = j1, c[2] = j2, c[3] = j3;
    }
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    box_shape bx = box_of(n);
    bool center = n->op != &vki_op_rms_norm;
    int64_t count = bx.n[0] * bx.n[1] * bx.n[2], c[4];
    for (int64_t box = 0; box < bx.grid[0] * bx.grid[1] * bx.grid[2]; box++) {
        double sum = 0, sq = 0;
        for (int64_t e = 0; e < count; e++) {
            coords(&bx, box, e, c);
            sum += vki_ref_get(&s[0], c[0], c[1], c[2], c[3]);
        }
        double mean = center ? sum / (double)count : 0.0;
        for (int64_t e = 0; e < count; e++) {
            coords(&bx, box, e, c);
            double v = vki_ref_get(&s[0], c[0], c[1], c[2], c[3]) - mean;
            sq += v * v;
        }
        double inv = 1.0 / sqrt(sq / (double)count + vki__norm_params(n).eps);
        for (int64_t e = 0; e < count; e++) {
            coords(&bx, box, e, c);
            double y = (vki_ref_get(&s[0], c[0], c[1], c[2], c[3]) - mean) * inv;
            int64_t k = bx.by_channel ? c[2] : c[0]; // index into w and b
            if (n->src[1]) y *= vki_ref_get(&s[1], k, 0, 0, 0);
            if (n->src[2]) y += vki_ref_get(&s[2], k, 0, 0, 0);
            vki_ref_set(d, c[0], c[1], c[2], c[3], vki__activation_ref(act_of(n), (float)y));
        }
    }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    VKI_TRY(vki_lower_need_storage16(L, n, n->dtype == VKI_DTYPE_F16));
    uint32_t self = vki_lower_self(L);
    vki_operand x = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, self);
    box_shape bx = box_of(n);
    vki_pc_norm pc = {
        .n0 = (uint32_t)bx.n[0], .n1 = (uint32_t)bx.n[1], .n2 = (uint32_t)bx.n[2],
        .g1 = (uint32_t)bx.grid[0], .g2 = (uint32_t)bx.grid[1], .g3 = (uint32_t)bx.grid[2],
        .x_off = x.offset, .x_nb0 = x.nb[0], .x_nb1 = x.nb[1], .x_nb2 = x.nb[2],
        .x_s1 = x.nb[1], .x_s2 = x.nb[2], .x_s3 = x.nb[3],
        .w_div = 1, .w_step = 0,
        .d_off = d.offset, .eps = vki__norm_params(n).eps,
        .flags = (n->op == &vki_op_rms_norm ? 0 : VKI_NORM_CENTER) |
                 (uint32_t)act_of(n) << VKI_NORM_ACT_SHIFT,
    };
    if (bx.by_channel) {
        pc.x_s1 = x.nb[2] * pc.n2, pc.x_s2 = x.nb[3], pc.x_s3 = 0;
        pc.w_div = pc.n0 * pc.n1, pc.w_step = pc.n2;
        // A contiguous [W, H, C/groups] slab (NCHW activations) is one row to the kernel: no
        // divisions per element to find it.
        if (x.nb[1] == pc.n0 * x.nb[0] && x.nb[2] == pc.n1 * x.nb[1]) {
            pc.n0 *= pc.n1 * pc.n2;
            pc.n1 = pc.n2 = 1;
            pc.x_nb1 = pc.x_nb2 = 0;
        }
    } else {
        pc.x_nb1 = pc.x_nb2 = 0;
    }
    // An absent w or b binds x in its place (never read: its flag is off).
    uint32_t x_id = n->src[0];
    uint32_t tensors[4] = {x_id, n->src[1] ? n->src[1] : x_id, n->src[2] ? n->src[2] : x_id, self};
    if (n->src[1]) {
        pc.w_off = vki_lower_operand(L, n->src[1]).offset;
        pc.flags |= VKI_NORM_W | (vki_lower_node(L, n->src[1])->dtype == VKI_DTYPE_F16 ? VKI_NORM_W_F16 : 0);
    }
    if (n->src[2]) {
        pc.b_off = vki_lower_operand(L, n->src[2]).offset;
        pc.flags |= VKI_NORM_B | (vki_lower_node(L, n->src[2])->dtype == VKI_DTYPE_F16 ? VKI_NORM_B_F16 : 0);
    }
    bool f16 = n->dtype == VKI_DTYPE_F16, sg = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) != 0;
    static const char *const kernels[2][2] = {{"norm_f32", "norm_f32_sg"}, {"norm_f16", "norm_f16_sg"}};
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    vki_step_desc s = {
        // Texel loads (lavapipe) for f32 rows; the tuning checked that views cover bindings.
        .kernel = !f16 && sg && p->tuning.texel_loads ? "norm_f32_sg_tx" : kernels[f16][sg],
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = 4, .write_mask = 1u << 3,
        .push = &pc, .push_size = sizeof pc,
    };
    vki_lower_grid((uint64_t)(bx.grid[0] * bx.grid[1] * bx.grid[2]), 1, s.groups); // a workgroup per box
    return vki_lower_step(L, &s);
}

/* The fusion hook of the norms (vki_op_def.absorb): the kernel scales and shifts by w and b,
 * so mul(norm(x), w) -> norm(x, w) and add(layer_norm(x, w), b) -> layer_norm(x, w, b), w and b
 * row vectors [C] the norm has not got yet; and it applies an activation last, so
 * act(group_norm(x, w, b)) -> one dispatch (a resnet's gn + SiLU), likewise for layer_norm. Not
 * rms_norm: matmul folds that into its own kernel, which applies no activation. */
static bool absorb(vki_fusion *f, uint32_t y_id, uint32_t x_id)
{
    const vki_node *x = &f->w->nodes[x_id], *y = &f->w->nodes[y_id];
    if (act_of(y) != VKI_ACT_NONE) return false; // anything after the activation stays apart
    if (x->op == &vki_op_unary && x->src[0] == y_id && y->op != &vki_op_rms_norm &&
        vki__unary_params(x).scale == 1.0f && vki__unary_params(x).act != VKI_ACT_NONE &&
        vki__fusion_single_use(f, y_id, x_id)) {
        vki_activation act = vki__unary_params(x).act;
        vki__fusion_fold(f, x_id, y_id, 0, 0);
        vki_node *merged = &f->w->nodes[x_id];
        norm_node p;
        vki__params_get(merged, &p, sizeof p);
        p.act = act;
        vki__params_set(merged, &p, sizeof p);
        return true;
    }
    if (x->op != &vki_op_binary || x->src[0] != y_id || !x->src[1] ||
        !vki__fusion_single_use(f, y_id, x_id) || !vki__fusion_row_vector(&f->w->nodes[x->src[1]], y->ne[0]))
        return false;
    uint32_t op = vki__binary_params(x).op;
    if (op == VKI_BINARY_MUL && !y->src[1] && !y->src[2])
        vki__fusion_fold(f, x_id, y_id, 1, x->src[1]);
    else if (op == VKI_BINARY_ADD && y->op == &vki_op_layer_norm && !y->src[2])
        vki__fusion_fold(f, x_id, y_id, 2, x->src[1]);
    else
        return false;
    return true;
}

const vki_op_def vki_op_rms_norm = {
    .name = "rms_norm", .reference = reference, .lower = lower, .absorb = absorb,
    .cut = vki_lower_cut_plain, // rows are independent
};
const vki_op_def vki_op_layer_norm = {
    .name = "layer_norm", .reference = reference, .lower = lower, .absorb = absorb,
    .cut = vki_lower_cut_plain, // rows are independent
};
const vki_op_def vki_op_group_norm = {
    .name = "group_norm", .reference = reference, .lower = lower, .absorb = absorb,
};
