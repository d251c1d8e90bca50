/* softmax(x * scale + mask) along dim 0 with an optional causal mask, in fp32.
 *
 * Node: src {x, mask or 0}; parameters softmax_params. A mask entry of -inf (or anything at or
 * below -FLT_MAX) removes its column like the causal mask does; a row with every column removed
 * is all zeros, not NaN (a query that may attend to nothing). */
#include "../graph_internal.h"
#include "vki_abi.h"

#include <float.h>
#include <math.h>

const vki_op_def vki_op_softmax;

/* The node's parameters. */
typedef struct softmax_params {
    float scale; // of x, before the mask
    uint32_t causal;
} softmax_params;
static_assert(sizeof(softmax_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static softmax_params params(const vki_node *n)
{
    softmax_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

vki_tensor vki_softmax(vki_graph *g, vki_tensor x, vki_tensor mask, float scale, bool causal)
{
    if (!vki__check_srcs(g, "softmax", 1, &x) || (mask.id && !vki__check_srcs(g, "softmax", 1, &mask)))
        return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x);
    char sx[96], sm[96];
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "softmax: x %s: want f32 or f16",
                               vki__shape_str(nx, sx));
    if (mask.id) {
        const vki_node *m = vki__node(g, mask);
        if ((m->dtype != VKI_DTYPE_F32 && m->dtype != VKI_DTYPE_F16) || m->ne[0] != nx->ne[0] ||
            (m->ne[1] != nx->ne[1] && m->ne[1] != 1) || m->ne[2] != 1 || m->ne[3] != 1)
            return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                                   "softmax: mask %s for x %s: want f32 or f16 [%lld, %lld or 1]",
                                   vki__shape_str(m, sm), vki__shape_str(nx, sx), (long long)nx->ne[0],
                                   (long long)nx->ne[1]);
    }
    vki_tensor srcs[2] = {x, mask};
    vki_tensor t = vki__new_op(g, &vki_op_softmax, nx->dtype, nx->ndim, nx->ne, 2, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, &(softmax_params){.scale = scale, .causal = causal}, sizeof(softmax_params));
    return t;
}

/* x * scale + mask at column j of row (i1, i2, i3); -inf where masked. */
static double logit(const vki_node *n, const vki_ref_tensor *s, int64_t j, int64_t i1, int64_t i2, int64_t i3)
{
    if (params(n).causal && j > i1 + n->ne[0] - n->ne[1]) return -INFINITY;
    double v = (double)vki_ref_get(&s[0], j, i1, i2, i3) * params(n).scale;
    if (n->src[1]) v += vki_ref_get(&s[1], j, i1 % s[1].ne[1], 0, 0);
    return v <= -FLT_MAX ? -INFINITY : v;
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < n->ne[0]; j++) mx = fmax(mx, logit(n, s, j, i1, i2, i3));
                for (int64_t j = 0; j < n->ne[0]; j++) {
                    double v = logit(n, s, j, i1, i2, i3);
                    if (v > -INFINITY) sum += exp(v - mx);
                }
                for (int64_t j = 0; j < n->ne[0]; j++) {
                    double v = logit(n, s, j, i1, i2, i3);
                    vki_ref_set(d, j, i1, i2, i3, v > -INFINITY ? (float)(exp(v - mx) / sum) : 0.0f);
                }
            }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    VKI_TRY(vki_lower_need_storage16(L, n, n->dtype == VKI_DTYPE_F16));
    uint32_t self = vki_lower_self(L);
    vki_operand x = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, self);
    vki_pc_softmax pc = {
        .ne0 = d.ne[0], .ne1 = d.ne[1], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .x_off = x.offset, .x_nb0 = x.nb[0], .x_nb1 = x.nb[1], .x_nb2 = x.nb[2], .x_nb3 = x.nb[3],
        .m_ne1 = 1, .d_off = d.offset, .scale = params(n).scale,
        .flags = params(n).causal ? VKI_SOFTMAX_CAUSAL : 0,
    };
    if (n->src[1]) {
        vki_operand m = vki_lower_operand(L, n->src[1]);
        pc.m_off = m.offset, pc.m_nb0 = m.nb[0], pc.m_nb1 = m.nb[1], pc.m_ne1 = m.ne[1];
        pc.flags |= VKI_SOFTMAX_MASK;
        if (vki_lower_node(L, n->src[1])->dtype == VKI_DTYPE_F16) pc.flags |= VKI_SOFTMAX_MASK_F16;
    }
    // An absent mask binds x in its place (never read: its flag is off).
    uint32_t tensors[3] = {n->src[0], n->src[1] ? n->src[1] : n->src[0], self};
    bool f16 = n->dtype == VKI_DTYPE_F16, sg = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) != 0;
    static const char *const kernels[2][2] = {{"softmax_f32", "softmax_f32_sg"},
                                              {"softmax_f16", "softmax_f16_sg"}};
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    vki_step_desc s = {
        .kernel = kernels[f16][sg],
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = 3, .write_mask = 1u << 2,
        .push = &pc, .push_size = sizeof pc,
    };
    vki_lower_grid((uint64_t)d.ne[1] * d.ne[2] * d.ne[3], 1, s.groups); // a workgroup per row
    return vki_lower_step(L, &s);
}

const vki_op_def vki_op_softmax = {.name = "softmax", .reference = reference, .lower = lower};
