/* upsample: x [W, H, C, N] -> [2W, 2H, C, N], nearest neighbour: y(i0, i1) = x(i0 / 2, i1 / 2).
 * F32, F16 or BF16; x may be a strided view. One dispatch of the copy kernel, its source index
 * shifted right by one in dims 0 and 1. */
#include "copy.h"

const vki_op_def vki_op_upsample;

vki_tensor vki_upsample2x(vki_graph *g, vki_tensor x)
{
    if (!vki__check_srcs(g, "upsample2x", 1, &x)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x);
    char s[96];
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16 && nx->dtype != VKI_DTYPE_BF16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "upsample2x: %s: f32, f16 or bf16 only", vki__shape_str(nx, s));
    int64_t ne[VKI_MAX_DIMS] = {2 * nx->ne[0], 2 * nx->ne[1], nx->ne[2], nx->ne[3]};
    return vki__new_op(g, &vki_op_upsample, nx->dtype, nx->ndim < 2 ? 2 : nx->ndim, ne, 1, &x);
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++)
                    vki_ref_set(d, i0, i1, i2, i3, vki_ref_get(&s[0], i0 / 2, i1 / 2, i2, i3));
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    vki_operand d = vki_lower_operand(L, vki_lower_self(L));
    return vki__lower_copy(L, n, n->src[0], &d, 1u | 1u << 8);
}

const vki_op_def vki_op_upsample = {
    .name = "upsample",
    .reference = reference,
    .lower = lower,
};
