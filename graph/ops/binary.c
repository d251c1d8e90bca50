/* add and mul: elementwise with broadcasting of the second operand (its dims are 1 or equal). */
#include "ops_internal.h"
#include "vki_abi.h"

#include <inttypes.h>

static_assert(sizeof(vki_binary_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_binary_params vki__binary_params(const vki_node *n)
{
    vki_binary_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static vki_tensor build(vki_graph *g, vki_tensor a, vki_tensor b, uint32_t op)
{
    const char *name = op == VKI_BINARY_ADD ? "add" : "mul";
    vki_tensor srcs[2] = {a, b};
    if (!vki__check_srcs(g, name, 2, srcs)) return (vki_tensor){0};
    const vki_node *na = vki__node(g, a), *nb = vki__node(g, b);
    char sa[96], sb[96];
    if (na->dtype != nb->dtype || (na->dtype != VKI_DTYPE_F32 && na->dtype != VKI_DTYPE_F16))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %s and %s: both f32 or both f16",
                               name, vki__shape_str(na, sa), vki__shape_str(nb, sb));
    for (int i = 0; i < VKI_MAX_DIMS; i++)
        if (nb->ne[i] != 1 && nb->ne[i] != na->ne[i])
            return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                                   "%s: %s does not broadcast to %s (dimension %d)", name,
                                   vki__shape_str(nb, sb), vki__shape_str(na, sa), i);
    vki_tensor t = vki__new_op(g, &vki_op_binary, na->dtype, na->ndim, na->ne, 2, srcs);
    if (t.id) vki__params_set(vki__node_mut(g, t), &(vki_binary_params){.op = op}, sizeof(vki_binary_params));
    return t;
}

vki_tensor vki_add(vki_graph *g, vki_tensor a, vki_tensor b) { return build(g, a, b, VKI_BINARY_ADD); }
vki_tensor vki_mul(vki_graph *g, vki_tensor a, vki_tensor b) { return build(g, a, b, VKI_BINARY_MUL); }

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *a = &s[0], *b = &s[1];
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++) {
                    float x = vki_ref_get(a, i0, i1, i2, i3);
                    float y = vki_ref_get(b, i0 % b->ne[0], i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]);
                    vki_ref_set(d, i0, i1, i2, i3, vki__binary_params(n).op == VKI_BINARY_ADD ? x + y : x * y);
                }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    uint32_t self = vki_lower_self(L);
    vki_operand a = vki_lower_operand(L, n->src[0]), b = vki_lower_operand(L, n->src[1]);
    vki_operand d = vki_lower_operand(L, self);
    vki_pc_binary pc = {
        .ne0 = d.ne[0], .ne1 = d.ne[1], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .a_off = a.offset, .a_nb0 = a.nb[0], .a_nb1 = a.nb[1], .a_nb2 = a.nb[2], .a_nb3 = a.nb[3],
        .b_off = b.offset, .b_ne0 = b.ne[0], .b_ne1 = b.ne[1], .b_ne2 = b.ne[2], .b_ne3 = b.ne[3],
        .b_nb0 = b.nb[0], .b_nb1 = b.nb[1], .b_nb2 = b.nb[2], .b_nb3 = b.nb[3],
        .d_off = d.offset, .op = vki__binary_params(n).op,
    };
    bool f16 = n->dtype == VKI_DTYPE_F16;
    VKI_TRY(vki_lower_need_storage16(L, n, f16));
    uint32_t tensors[3] = {n->src[0], n->src[1], self};
    return vki_lower_elementwise(L, n, f16 ? "binary_f16" : "binary_f32", tensors, 3, &pc, sizeof pc);
}

const vki_op_def vki_op_binary = {
    .name = "binary",
    .flags = VKI_OPF_ELEMENTWISE,
    .reference = reference,
    .lower = lower,
    .cut = vki_lower_cut_plain,
};
