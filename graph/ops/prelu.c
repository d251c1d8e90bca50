/* prelu: y = x where x >= 0, else x * slope. The slope is an F32 tensor broadcast over x (its
 * dims 1 or equal to x's: PReLU's per-channel slopes are [1, 1, C]) or, without one, a scalar
 * parameter (leaky ReLU, as ESRGAN's 0.2). x F32 or F16, may be a strided view; y contiguous in
 * x's dtype. */
#include "ops_internal.h"
#include "vki_abi.h"

const vki_op_def vki_op_prelu;

typedef struct prelu_params {
    float slope; // used when the node has no slope tensor
} prelu_params;
static_assert(sizeof(prelu_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static prelu_params params(const vki_node *n)
{
    prelu_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static vki_tensor build(vki_graph *g, const char *name, vki_tensor x, vki_tensor slope, float s)
{
    vki_tensor srcs[2] = {x, slope};
    uint32_t nsrc = slope.id ? 2 : 1;
    if (!vki__check_srcs(g, name, nsrc, srcs)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x);
    char sx[96], sb[96];
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %s: f32 or f16 only", name,
                               vki__shape_str(nx, sx));
    if (slope.id) {
        const vki_node *nb = vki__node(g, slope);
        if (nb->dtype != VKI_DTYPE_F32)
            return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: slopes %s: f32 only", name,
                                   vki__shape_str(nb, sb));
        for (int i = 0; i < VKI_MAX_DIMS; i++)
            if (nb->ne[i] != 1 && nb->ne[i] != nx->ne[i])
                return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                                       "%s: slopes %s do not broadcast to %s (dimension %d)", name,
                                       vki__shape_str(nb, sb), vki__shape_str(nx, sx), i);
    } else if (!(s == s) || s - s != 0) {
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: slope %g is not finite", name,
                               (double)s);
    }
    vki_tensor t = vki__new_op(g, &vki_op_prelu, nx->dtype, nx->ndim, nx->ne, nsrc, srcs);
    if (t.id) vki__params_set(vki__node_mut(g, t), &(prelu_params){.slope = s}, sizeof(prelu_params));
    return t;
}

vki_tensor vki_prelu(vki_graph *g, vki_tensor x, vki_tensor slope)
{
    if (!slope.id) return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "prelu: no slope tensor");
    return build(g, "prelu", x, slope, 0);
}

vki_tensor vki_leaky_relu(vki_graph *g, vki_tensor x, float slope)
{
    return build(g, "leaky_relu", x, (vki_tensor){0}, slope);
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *b = n->src[1] ? &s[1] : NULL;
    float slope = params(n).slope;
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++) {
                    float x = vki_ref_get(&s[0], i0, i1, i2, i3);
                    float k = b ? vki_ref_get(b, i0 % b->ne[0], i1 % b->ne[1], i2 % b->ne[2],
                                              i3 % b->ne[3])
                                : slope;
                    vki_ref_set(d, i0, i1, i2, i3, x >= 0 ? x : x * k);
                }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    uint32_t self = vki_lower_self(L);
    bool has_b = n->src[1] != 0;
    // Without slopes the kernel's slope binding is given x again (bound, never read).
    uint32_t bsrc = has_b ? n->src[1] : n->src[0];
    vki_operand a = vki_lower_operand(L, n->src[0]), b = vki_lower_operand(L, bsrc);
    vki_operand d = vki_lower_operand(L, self);
    vki_pc_prelu pc = {
        .ne0 = d.ne[0], .ne1 = d.ne[1], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .a_off = a.offset, .a_nb0 = a.nb[0], .a_nb1 = a.nb[1], .a_nb2 = a.nb[2], .a_nb3 = a.nb[3],
        .b_off = has_b ? b.offset : 0, .b_ne0 = has_b ? b.ne[0] : 1, .b_ne1 = has_b ? b.ne[1] : 1,
        .b_ne2 = has_b ? b.ne[2] : 1, .b_ne3 = has_b ? b.ne[3] : 1,
        .b_nb0 = b.nb[0], .b_nb1 = b.nb[1], .b_nb2 = b.nb[2], .b_nb3 = b.nb[3],
        .d_off = d.offset, .has_b = has_b, .slope = params(n).slope,
    };
    bool f16 = n->dtype == VKI_DTYPE_F16;
    VKI_TRY(vki_lower_need_storage16(L, n, f16));
    uint32_t tensors[3] = {n->src[0], bsrc, self};
    return vki_lower_elementwise(L, n, f16 ? "prelu_f16" : "prelu_f32", tensors, 3, &pc, sizeof pc);
}

const vki_op_def vki_op_prelu = {
    .name = "prelu",
    .flags = VKI_OPF_ELEMENTWISE,
    .reference = reference,
    .lower = lower,
};
