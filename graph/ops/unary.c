/* unary: y = act(x) * scale elementwise, with act one of vki_activation (none for vki_scale).
 * x may be a strided view; y is contiguous in x's dtype (F32 or F16). */
#include "ops_internal.h"
#include "activation.h"
#include "vki_abi.h"

const vki_op_def vki_op_unary;

static_assert(VKI_ACT_NONE == VKI_ABI_ACT_NONE && VKI_ACT_SILU == VKI_ABI_ACT_SILU &&
                  VKI_ACT_GELU == VKI_ABI_ACT_GELU && VKI_ACT_GELU_TANH == VKI_ABI_ACT_GELU_TANH &&
                  VKI_ACT_QUICK_GELU == VKI_ABI_ACT_QUICK_GELU,
              "activation ids of the kernels (abi_unary.h) follow enum vki_activation");

static const char *const act_names[VKI_ACT_COUNT] = {"scale", "silu", "gelu", "gelu_tanh",
                                                     "quick_gelu"};

static_assert(sizeof(vki_unary_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_unary_params vki__unary_params(const vki_node *n)
{
    vki_unary_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static vki_tensor build(vki_graph *g, vki_tensor a, vki_activation act, float scale)
{
    const char *name = (unsigned)act < VKI_ACT_COUNT ? act_names[act] : "activate";
    if (!vki__check_srcs(g, name, 1, &a)) return (vki_tensor){0};
    if ((unsigned)act >= VKI_ACT_COUNT)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "activate: unknown activation %d",
                               (int)act);
    const vki_node *na = vki__node(g, a);
    char s[96];
    if (na->dtype != VKI_DTYPE_F32 && na->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %s: f32 or f16 only", name,
                               vki__shape_str(na, s));
    int64_t ne[VKI_MAX_DIMS];
    memcpy(ne, na->ne, sizeof ne);
    vki_tensor t = vki__new_op(g, &vki_op_unary, na->dtype, na->ndim, ne, 1, &a);
    if (t.id) {
        vki_unary_params p = {.act = act, .scale = scale};
        vki__params_set(vki__node_mut(g, t), &p, sizeof p);
    }
    return t;
}

vki_tensor vki_scale(vki_graph *g, vki_tensor a, float s) { return build(g, a, VKI_ACT_NONE, s); }
vki_tensor vki_silu(vki_graph *g, vki_tensor a) { return build(g, a, VKI_ACT_SILU, 1); }
vki_tensor vki_gelu(vki_graph *g, vki_tensor a) { return build(g, a, VKI_ACT_GELU, 1); }
vki_tensor vki_gelu_tanh(vki_graph *g, vki_tensor a) { return build(g, a, VKI_ACT_GELU_TANH, 1); }
vki_tensor vki_quick_gelu(vki_graph *g, vki_tensor a) { return build(g, a, VKI_ACT_QUICK_GELU, 1); }

/* VKI_ACT_NONE is the identity: `a` itself, no node. */
vki_tensor vki_activate(vki_graph *g, vki_tensor a, vki_activation act)
{
    if (act == VKI_ACT_NONE) return vki__check_srcs(g, "activate", 1, &a) ? a : (vki_tensor){0};
    return build(g, a, act, 1);
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    vki_unary_params p = vki__unary_params(n);
    vki_activation act = p.act;
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++) {
                    float x = vki_ref_get(&s[0], i0, i1, i2, i3);
                    vki_ref_set(d, i0, i1, i2, i3, vki__activation_ref(act, x) * p.scale);
                }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    bool f16 = n->dtype == VKI_DTYPE_F16;
    VKI_TRY(vki_lower_need_storage16(L, n, f16));
    uint32_t self = vki_lower_self(L);
    vki_operand a = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, self);
    vki_pc_unary pc = {
        .ne0 = d.ne[0], .ne1 = d.ne[1], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .a_off = a.offset, .a_nb0 = a.nb[0], .a_nb1 = a.nb[1], .a_nb2 = a.nb[2], .a_nb3 = a.nb[3],
        .d_off = d.offset, .act = vki__unary_params(n).act, .scale = vki__unary_params(n).scale,
    };
    uint32_t tensors[2] = {n->src[0], self};
    return vki_lower_elementwise(L, n, f16 ? "unary_f16" : "unary_f32", tensors, 2, &pc, sizeof pc);
}

const vki_op_def vki_op_unary = {
    .name = "unary",
    .flags = VKI_OPF_ELEMENTWISE,
    .reference = reference,
    .lower = lower,
    .cut = vki_lower_cut_plain,
};
