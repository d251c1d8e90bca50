/* glu: gated units, y = act(gate) * up elementwise with act silu (vki_swiglu) or erf gelu
 * (vki_geglu). gate and up have the same shape and dtype (F32 or F16) and may be strided views
 * (e.g. the two halves of one fused projection); y is contiguous. */
#include "ops_internal.h"
#include "activation.h"
#include "vki_abi.h"

static_assert(sizeof(vki_glu_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_glu_params vki__glu_params(const vki_node *n)
{
    vki_glu_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static vki_tensor build(vki_graph *g, vki_tensor gate, vki_tensor up, vki_activation act)
{
    const char *name = act == VKI_ACT_SILU ? "swiglu" : "geglu";
    vki_tensor srcs[2] = {gate, up};
    if (!vki__check_srcs(g, name, 2, srcs)) return (vki_tensor){0};
    const vki_node *na = vki__node(g, gate), *nb = vki__node(g, up);
    char sa[96], sb[96];
    if (na->dtype != nb->dtype || (na->dtype != VKI_DTYPE_F32 && na->dtype != VKI_DTYPE_F16) ||
        !vki__same_shape(na, nb))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "%s: gate %s and up %s: same shape, both f32 or both f16", name,
                               vki__shape_str(na, sa), vki__shape_str(nb, sb));
    int64_t ne[VKI_MAX_DIMS];
    memcpy(ne, na->ne, sizeof ne);
    vki_tensor t = vki__new_op(g, &vki_op_glu, na->dtype, na->ndim, ne, 2, srcs);
    if (t.id) vki__params_set(vki__node_mut(g, t), &(vki_glu_params){.act = act}, sizeof(vki_glu_params));
    return t;
}

vki_tensor vki_swiglu(vki_graph *g, vki_tensor gate, vki_tensor up)
{
    return build(g, gate, up, VKI_ACT_SILU);
}

vki_tensor vki_geglu(vki_graph *g, vki_tensor gate, vki_tensor up)
{
    return build(g, gate, up, VKI_ACT_GELU);
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    vki_activation act = vki__glu_params(n).act;
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++) {
                    float gate = vki_ref_get(&s[0], i0, i1, i2, i3);
                    float up = vki_ref_get(&s[1], i0, i1, i2, i3);
                    vki_ref_set(d, i0, i1, i2, i3, vki__activation_ref(act, gate) * up);
                }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    bool f16 = n->dtype == VKI_DTYPE_F16;
    VKI_TRY(vki_lower_need_storage16(L, n, f16));
    uint32_t self = vki_lower_self(L);
    vki_operand a = vki_lower_operand(L, n->src[0]), b = vki_lower_operand(L, n->src[1]);
    vki_operand d = vki_lower_operand(L, self);
    vki_pc_glu pc = {
        .ne0 = d.ne[0], .ne1 = d.ne[1], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .a_off = a.offset, .a_nb0 = a.nb[0], .a_nb1 = a.nb[1], .a_nb2 = a.nb[2], .a_nb3 = a.nb[3],
        .b_off = b.offset, .b_nb0 = b.nb[0], .b_nb1 = b.nb[1], .b_nb2 = b.nb[2], .b_nb3 = b.nb[3],
        .d_off = d.offset, .act = vki__glu_params(n).act,
    };
    uint32_t tensors[3] = {n->src[0], n->src[1], self};
    return vki_lower_elementwise(L, n, f16 ? "glu_f16" : "glu_f32", tensors, 3, &pc, sizeof pc);
}

const vki_op_def vki_op_glu = {
    .name = "glu",
    .flags = VKI_OPF_ELEMENTWISE,
    .reference = reference,
    .lower = lower,
    .cut = vki_lower_cut_plain,
};
