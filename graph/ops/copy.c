/* copy / cast: a contiguous copy of any strided view, converted between F32, F16 and BF16.
 * This is how permuted and transposed views become contiguous tensors. Also home of
 * vki__lower_copy, the copy kernel that concat and upsample lower to. */
#include "copy.h"
#include "vki_abi.h"

const vki_op_def vki_op_copy;

static bool convertible(vki_dtype t)
{
    return t == VKI_DTYPE_F32 || t == VKI_DTYPE_F16 || t == VKI_DTYPE_BF16;
}

vki_tensor vki_copy(vki_graph *g, vki_tensor t, vki_dtype dtype)
{
    if (!vki__check_srcs(g, "copy", 1, &t)) return (vki_tensor){0};
    const vki_node *n = vki__node(g, t);
    if (dtype == VKI_DTYPE_NONE) dtype = n->dtype;
    char s[96];
    if (!convertible(n->dtype) || !convertible(dtype))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "copy: %s to %s: f32, f16 or bf16 only", vki__shape_str(n, s),
                               vki_dtype_get(dtype)->name);
    int64_t ne[VKI_MAX_DIMS];
    memcpy(ne, n->ne, sizeof ne);
    return vki__new_op(g, &vki_op_copy, dtype, n->ndim, ne, 1, &t);
}

/* The same op: a cast is a copy that changes the dtype. */
vki_tensor vki_cast(vki_graph *g, vki_tensor t, vki_dtype dtype) { return vki_copy(g, t, dtype); }

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++)
                    vki_ref_set(d, i0, i1, i2, i3, vki_ref_get(&s[0], i0, i1, i2, i3));
}

static uint32_t copy_type(vki_dtype t)
{
    return t == VKI_DTYPE_F16 ? VKI_COPY_F16 : t == VKI_DTYPE_BF16 ? VKI_COPY_BF16 : VKI_COPY_F32;
}

vki_status vki__lower_copy(vki_lower *L, const vki_node *n, uint32_t src_id, const vki_operand *dst,
                           uint32_t shift)
{
    const vki_profile *p = vki_lower_profile(L);
    bool dst16 = n->dtype != VKI_DTYPE_F32;
    VKI_TRY(vki_lower_need_storage16(L, n, dst16));
    vki_operand s = vki_lower_operand(L, src_id);
    vki_pc_copy pc = {
        .ne0 = dst->ne[0], .ne1 = dst->ne[1], .ne2 = dst->ne[2], .ne3 = dst->ne[3],
        .s_off = s.offset, .s_nb0 = s.nb[0], .s_nb1 = s.nb[1], .s_nb2 = s.nb[2], .s_nb3 = s.nb[3],
        .s_type = copy_type(vki_lower_node(L, src_id)->dtype), .s_shift = shift,
        .d_type = copy_type(n->dtype),
        .d_off = dst->offset, .d_nb0 = dst->nb[0], .d_nb1 = dst->nb[1], .d_nb2 = dst->nb[2],
        .d_nb3 = dst->nb[3],
    };
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    uint32_t tensors[2] = {src_id, vki_lower_self(L)};
    vki_step_desc step = {
        .kernel = dst16 ? "copy_dst16" : "copy_dst32",
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = 2, .write_mask = 1u << 1,
        .push = &pc, .push_size = sizeof pc,
    };
    uint64_t count = (uint64_t)dst->ne[0] * dst->ne[1] * dst->ne[2] * dst->ne[3];
    vki_lower_grid(count, spec.value, step.groups);
    return vki_lower_step(L, &step);
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    vki_operand d = vki_lower_operand(L, vki_lower_self(L));
    return vki__lower_copy(L, n, n->src[0], &d, 0);
}

const vki_op_def vki_op_copy = {
    .name = "copy",
    .reference = reference,
    .lower = lower,
    .cut = vki_lower_cut_plain,
};
