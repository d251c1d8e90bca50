/* argmax: index of the largest element of each row (dim 0) -> I32 [1, ne1, ne2, ne3]. Ties go to
 * the smallest index; NaN counts as -inf (a row of NaN gives 0). x is F32 or F16, may be a
 * strided view, rows of any length (a vocabulary of 150k logits is one row). One workgroup per
 * row, reduced with subgroup arithmetic where the profile has it, else in shared memory.
 *
 * vki_argmax_finite gives -1 instead for a row whose largest element is not finite (+inf, or
 * nothing above -inf): a greedy sampler on the device (models/llm.c) hands those rows to the
 * host's, which treats +inf as the largest finite float and refuses a row with no finite value.
 * Node: src {x}; parameters argmax_params. */
#include "../graph_internal.h"
#include "vki_abi.h"

#include <math.h>

const vki_op_def vki_op_argmax;

typedef struct argmax_params {
    bool finite; // -1 for a row whose largest element is not finite
} argmax_params;
static_assert(sizeof(argmax_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static argmax_params params(const vki_node *n)
{
    argmax_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static vki_tensor build(vki_graph *g, vki_tensor x, bool finite)
{
    const char *name = finite ? "argmax_finite" : "argmax";
    if (!vki__check_srcs(g, name, 1, &x)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x);
    char s[96];
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %s: f32 or f16 only", name,
                               vki__shape_str(nx, s));
    int64_t ne[VKI_MAX_DIMS] = {1, nx->ne[1], nx->ne[2], nx->ne[3]};
    vki_tensor t = vki__new_op(g, &vki_op_argmax, VKI_DTYPE_I32, nx->ndim, ne, 1, &x);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, &(argmax_params){.finite = finite}, sizeof(argmax_params));
    return t;
}

vki_tensor vki_argmax(vki_graph *g, vki_tensor x) { return build(g, x, false); }
vki_tensor vki_argmax_finite(vki_graph *g, vki_tensor x) { return build(g, x, true); }

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++) {
                int64_t best = 0;
                float best_v = -INFINITY;
                for (int64_t i0 = 0; i0 < s[0].ne[0]; i0++) {
                    float v = vki_ref_get(&s[0], i0, i1, i2, i3);
                    if (v > best_v) { // NaN never wins; the first of equal values stays
                        best_v = v;
                        best = i0;
                    }
                }
                if (params(n).finite && isinf(best_v)) best = -1;
                vki_ref_set(d, 0, i1, i2, i3, (float)best);
            }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    bool f16 = vki_lower_node(L, n->src[0])->dtype == VKI_DTYPE_F16;
    VKI_TRY(vki_lower_need_storage16(L, n, f16));
    bool subgroup = (p->subgroup_ops & VKI_SUBGROUP_ARITHMETIC) != 0;
    static const char *const kernels[2][2] = {
        {"argmax_f32_shared", "argmax_f32_subgroup"},
        {"argmax_f16_shared", "argmax_f16_subgroup"},
    };
    uint32_t self = vki_lower_self(L);
    vki_operand x = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, self);
    vki_pc_argmax pc = {
        .ne0 = x.ne[0], .ne1 = x.ne[1], .ne2 = x.ne[2], .ne3 = x.ne[3],
        .s_off = x.offset, .s_nb0 = x.nb[0], .s_nb1 = x.nb[1], .s_nb2 = x.nb[2], .s_nb3 = x.nb[3],
        .d_off = d.offset, .finite = params(n).finite,
    };
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    uint32_t tensors[2] = {n->src[0], self};
    vki_step_desc s = {
        .kernel = kernels[f16][subgroup],
        .specs = &spec, .spec_count = 1,
        // The subgroup size the tuning picked (the kernel works with any).
        .subgroup_size = subgroup ? p->tuning.subgroup_size : 0,
        .tensors = tensors, .tensor_count = 2, .write_mask = 1u << 1,
        .push = &pc, .push_size = sizeof pc,
    };
    vki_lower_grid((uint64_t)x.ne[1] * x.ne[2] * x.ne[3], 1, s.groups); // a workgroup per row
    return vki_lower_step(L, &s);
}

const vki_op_def vki_op_argmax = {
    .name = "argmax",
    .reference = reference,
    .lower = lower,
};
