/* concat: a and b joined along `dim` (0..3); equal shapes elsewhere, the same dtype (F32, F16 or
 * BF16), either may be a strided view. Two dispatches of the copy kernel, each writing its part
 * of the result through the result's strides. */
#include "copy.h"

const vki_op_def vki_op_concat;

/* The node's parameters. */
typedef struct concat_params {
    uint32_t dim; // 0..3
} concat_params;
static_assert(sizeof(concat_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static concat_params params(const vki_node *n)
{
    concat_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

vki_tensor vki_concat(vki_graph *g, vki_tensor a, vki_tensor b, uint32_t dim)
{
    vki_tensor srcs[2] = {a, b};
    if (!vki__check_srcs(g, "concat", 2, srcs)) return (vki_tensor){0};
    const vki_node *na = vki__node(g, a), *nb = vki__node(g, b);
    char sa[96], sb[96];
    vki_dtype dt = na->dtype;
    bool ok = dim < VKI_MAX_DIMS && nb->dtype == dt &&
              (dt == VKI_DTYPE_F32 || dt == VKI_DTYPE_F16 || dt == VKI_DTYPE_BF16);
    for (uint32_t i = 0; ok && i < VKI_MAX_DIMS; i++) ok = i == dim || na->ne[i] == nb->ne[i];
    if (!ok)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "concat: %s and %s along dimension %u: same dtype (f32, f16 or "
                               "bf16), equal sizes elsewhere",
                               vki__shape_str(na, sa), vki__shape_str(nb, sb), dim);
    int64_t ne[VKI_MAX_DIMS];
    memcpy(ne, na->ne, sizeof ne);
    ne[dim] += nb->ne[dim];
    uint32_t ndim = na->ndim > nb->ndim ? na->ndim : nb->ndim;
    if (ndim < dim + 1) ndim = dim + 1;
    vki_tensor t = vki__new_op(g, &vki_op_concat, na->dtype, ndim, ne, 2, srcs);
    if (t.id) vki__params_set(vki__node_mut(g, t), &(concat_params){.dim = dim}, sizeof(concat_params));
    return t;
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    uint32_t dim = params(n).dim;
    int64_t split = s[0].ne[dim];
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++) {
                    int64_t i[VKI_MAX_DIMS] = {i0, i1, i2, i3};
                    const vki_ref_tensor *src = &s[0];
                    if (i[dim] >= split) {
                        src = &s[1];
                        i[dim] -= split;
                    }
                    vki_ref_set(d, i0, i1, i2, i3, vki_ref_get(src, i[0], i[1], i[2], i[3]));
                }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    uint32_t dim = params(n).dim;
    uint32_t at = 0; // where the part starts along dim
    for (int part = 0; part < 2; part++) {
        const vki_node *src = vki_lower_node(L, n->src[part]);
        vki_operand d = vki_lower_operand(L, vki_lower_self(L));
        d.offset += at * d.nb[dim];
        for (int i = 0; i < VKI_MAX_DIMS; i++) d.ne[i] = (uint32_t)src->ne[i];
        VKI_TRY(vki__lower_copy(L, n, n->src[part], &d, 0));
        at += (uint32_t)src->ne[dim];
    }
    return VKI_OK;
}

const vki_op_def vki_op_concat = {
    .name = "concat",
    .reference = reference,
    .lower = lower,
};
