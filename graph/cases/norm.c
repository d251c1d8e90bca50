/* Conformance cases of the row ops: rms_norm, layer_norm, group_norm, softmax, rope. Odd row
 * lengths (1 .. 577, and one vocabulary-sized softmax row), several rows and batches, strided
 * views, every optional operand present and absent, f32 and f16. */
#include "cases_internal.h"

enum { NONE = 0, F32 = 1, F16 = 2 }; // dtype codes in arg[]

static vki_dtype dtype_of(int64_t code) { return code == F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32; }

static vki_tensor optional_weight(vki_graph *g, int64_t code, int64_t n, const char *name)
{
    return code == NONE ? (vki_tensor){0} : vki_weight(g, dtype_of(code), 1, &n, name);
}

/* x [arg0..3] in dtype arg4; w, b dtypes arg5, arg6 (NONE: absent); arg7: 0 rms_norm,
 * 1 layer_norm, k > 1: group_norm with k - 1 groups. */
static void norm_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, dtype_of(arg[4]), 4, arg, "x");
    int64_t c = arg[7] > 1 ? arg[2] : arg[0];
    vki_tensor w = optional_weight(g, arg[5], c, "w"), b = optional_weight(g, arg[6], c, "b");
    vki_tensor y = arg[7] == 0 ? vki_rms_norm(g, x, w, 1e-6f)
                 : arg[7] == 1 ? vki_layer_norm(g, x, w, b, 1e-5f)
                               : vki_group_norm(g, x, (uint32_t)(arg[7] - 1), w, b, 1e-5f);
    vki_output(g, y, "y");
}

/* act(norm(x, w, b)) as a resnet (group_norm + SiLU) or a feed-forward writes it: fused into
 * the norm's dispatch. x [arg0..3] in dtype arg4, arg5 > 0: group_norm with arg5 groups, else
 * layer_norm; activation arg6; w and b in dtype arg7. arg5 < 0: the norm is an output too (two
 * readers: nothing fuses). */
static void norm_act_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, dtype_of(arg[4]), 4, arg, "x");
    int64_t c = arg[5] ? arg[2] : arg[0];
    vki_tensor w = optional_weight(g, arg[7], c, "w"), b = optional_weight(g, arg[7], c, "b");
    vki_tensor y = arg[5] ? vki_group_norm(g, x, (uint32_t)(arg[5] < 0 ? -arg[5] : arg[5]), w, b, 1e-5f)
                          : vki_layer_norm(g, x, w, b, 1e-5f);
    if (arg[5] < 0) vki_output(g, y, "norm");
    vki_output(g, vki_activate(g, y, (vki_activation)arg[6]), "y");
}

/* Strided rows: x [arg0, arg1, arg2] is the first arg0 of arg3 elements of each row of an input
 * (arg5 == 0), or the transpose of an [arg1, arg0] input (arg5 == 1, arg2 == 1). arg4: 0 rms_norm
 * with an f16 w, 1 layer_norm with f32 w and b, 2 softmax with an f32 mask and scale 0.5. */
static void strided_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x;
    if (arg[5]) {
        x = vki_transpose(g, vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){arg[1], arg[0]}, "x"));
    } else {
        vki_tensor full = vki_input(g, VKI_DTYPE_F32, 3, (int64_t[]){arg[3], arg[1], arg[2]}, "x");
        x = vki_view(g, full, 3, arg, (uint64_t[]){4, 4 * arg[3], 4 * arg[3] * arg[1]}, 0);
    }
    int64_t n = arg[0];
    vki_tensor y;
    if (arg[4] == 0) {
        y = vki_rms_norm(g, x, vki_weight(g, VKI_DTYPE_F16, 1, &n, "w"), 1e-6f);
    } else if (arg[4] == 1) {
        y = vki_layer_norm(g, x, vki_weight(g, VKI_DTYPE_F32, 1, &n, "w"),
                           vki_weight(g, VKI_DTYPE_F32, 1, &n, "b"), 1e-5f);
    } else {
        y = vki_softmax(g, x, vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){arg[0], arg[1]}, "mask"), 0.5f, false);
    }
    vki_output(g, y, "y");
}

/* softmax of x [arg0..2] in dtype arg3 with scale arg4 / 8; mask dtype arg5 (NONE: absent) of
 * [arg0, arg1] (arg7 == 1: [arg0, 1]); causal if arg6. */
static void softmax_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, dtype_of(arg[3]), 3, arg, "x");
    vki_tensor mask = {0};
    if (arg[5] != NONE)
        mask = vki_input(g, dtype_of(arg[5]), 2, (int64_t[]){arg[0], arg[7] ? 1 : arg[1]}, "mask");
    vki_output(g, vki_softmax(g, x, mask, (float)arg[4] / 8.0f, arg[6] != 0), "y");
}

/* rope of x [arg0 head_dim, arg1 heads, arg2 tokens] in dtype arg3, n_rot arg4, mode arg5,
 * freq_scale arg6 / 4; base 10000. arg7: x is the middle third of a fused [3 * arg0 * arg1, arg2]
 * qkv input (strided heads and tokens). */
static void rope_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype dt = dtype_of(arg[3]);
    vki_tensor x;
    if (arg[7]) {
        uint64_t es = vki_dtype_bytes(dt, 1);
        vki_tensor qkv = vki_input(g, dt, 2, (int64_t[]){3 * arg[0] * arg[1], arg[2]}, "qkv");
        x = vki_view(g, qkv, 3, arg, (uint64_t[]){es, es * arg[0], es * 3 * arg[0] * arg[1]},
                     es * arg[0] * arg[1]);
    } else {
        x = vki_input(g, dt, 3, arg, "x");
    }
    vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 1, &arg[2], "pos");
    vki_tensor y = vki_rope(g, x, pos, (uint32_t)arg[4], (vki_rope_mode)arg[5], 10000.0f, (float)arg[6] / 4.0f);
    vki_output(g, y, "y");
}

/* f32 results agree with the double reference to rounding; f16 results carry f16 rounding of
 * the output (~2^-11 relative). rope's fp32 angle pos * freq is off by up to a few ulp of
 * pos * freq, ~1e-4 rad at positions up to 4096 (3.8e-9 on lavapipe; GPUs' exp2 and sin are
 * looser), hence its looser f32 bound. */
#define T VKI_CASE_TEST
const vki_op_case vki_cases_norm[] = {
    {"rms_norm f32 [577, 3] w f32", "rms_norm", T, 1e-10f, 0, norm_case, {577, 3, 1, 1, F32, F32, NONE, 0}, 0},
    {"rms_norm f32 [1, 5]", "rms_norm", T, 1e-10f, 0, norm_case, {1, 5, 1, 1, F32, NONE, NONE, 0}, 0},
    {"rms_norm f32 [7, 2, 3, 2] w f16", "rms_norm", T, 1e-10f, 0, norm_case, {7, 2, 3, 2, F32, F16, NONE, 0}, 0},
    {"rms_norm f16 [100, 3, 2] w f16", "rms_norm", T, 1e-5f, 0, norm_case, {100, 3, 2, 1, F16, F16, NONE, 0}, 0},
    {"rms_norm f32 rows [33 of 40, 3, 2] w f16", "rms_norm", T, 1e-10f, 0, strided_case, {33, 3, 2, 40, 0, 0}, 0},
    {"rms_norm f32 transposed [33, 5] w f16", "rms_norm", T, 1e-10f, 0, strided_case, {33, 5, 1, 0, 0, 1}, 0},
    {"layer_norm f32 [33, 4] w, b f32", "layer_norm", T, 1e-10f, 0, norm_case, {33, 4, 1, 1, F32, F32, F32, 1}, 0},
    {"layer_norm f32 [7, 3, 2]", "layer_norm", T, 1e-10f, 0, norm_case, {7, 3, 2, 1, F32, NONE, NONE, 1}, 0},
    {"layer_norm f32 [1, 3] w f32", "layer_norm", T, 1e-10f, 0, norm_case, {1, 3, 1, 1, F32, F32, NONE, 1}, 0},
    {"layer_norm f16 [577, 2] w, b f16", "layer_norm", T, 1e-5f, 0, norm_case, {577, 2, 1, 1, F16, F16, F16, 1}, 0},
    {"layer_norm f32 rows [100 of 101, 2, 2] w, b f32", "layer_norm", T, 1e-10f, 0, strided_case, {100, 2, 2, 101, 1, 0}, 0},
    {"group_norm f32 [5, 3, 64, 2] 32 groups w, b f32", "group_norm", T, 1e-10f, 0, norm_case, {5, 3, 64, 2, F32, F32, F32, 33}, 0},
    {"group_norm f32 [7, 4, 6, 1] 1 group", "group_norm", T, 1e-10f, 0, norm_case, {7, 4, 6, 1, F32, NONE, NONE, 2}, 0},
    {"group_norm f16 [3, 3, 64, 1] 32 groups w f16 b f32", "group_norm", T, 1e-5f, 0, norm_case, {3, 3, 64, 1, F16, F16, F32, 33}, 0},
    {"group_norm + silu f32 [9, 7, 64, 2] 32 groups w, b f32", "group_norm", T, 1e-10f, 0, norm_act_case, {9, 7, 64, 2, F32, 32, VKI_ACT_SILU, F32}, 0},
    {"group_norm + silu f16 [5, 3, 32, 1] 8 groups w, b f16", "group_norm", T, 1e-5f, 0, norm_act_case, {5, 3, 32, 1, F16, 8, VKI_ACT_SILU, F16}, 0},
    {"group_norm + silu f32 [4, 4, 64, 1] 32 groups, norm read twice", "group_norm", T, 1e-10f, 0, norm_act_case, {4, 4, 64, 1, F32, -32, VKI_ACT_SILU, F32}, 0},
    {"layer_norm + gelu f32 [65, 3] w, b f32", "layer_norm", T, 1e-10f, 0, norm_act_case, {65, 3, 1, 1, F32, 0, VKI_ACT_GELU, F32}, 0},
    {"softmax f32 [33, 7] scale 0.5", "softmax", T, 1e-10f, 0, softmax_case, {33, 7, 1, F32, 4, NONE, 0, 0}, 0},
    {"softmax f32 [1, 3]", "softmax", T, 1e-10f, 0, softmax_case, {1, 3, 1, F32, 8, NONE, 0, 0}, 0},
    {"softmax f32 [100, 5, 3] mask f32 [100, 5]", "softmax", T, 1e-10f, 0, softmax_case, {100, 5, 3, F32, 1, F32, 0, 0}, 0},
    {"softmax f16 [577, 3] mask f16 [577, 1]", "softmax", T, 1e-5f, 0, softmax_case, {577, 3, 1, F16, 8, F16, 0, 1}, 0},
    {"softmax f32 causal [7, 7, 2]", "softmax", T, 1e-10f, 0, softmax_case, {7, 7, 2, F32, 8, NONE, 1, 0}, 0},
    {"softmax f32 causal [33, 5, 2] mask f16 (kv cache)", "softmax", T, 1e-10f, 0, softmax_case, {33, 5, 2, F32, 8, F16, 1, 0}, 0},
    {"softmax f32 causal [3, 5]: rows 0-1 fully masked", "softmax", T, 1e-10f, 0, softmax_case, {3, 5, 1, F32, 8, NONE, 1, 0}, 0},
    {"softmax f32 [49999, 1] scale 2 (vocabulary)", "softmax", T, 1e-10f, 0, softmax_case, {49999, 1, 1, F32, 16, NONE, 0, 0}, 0},
    {"softmax f32 transposed [33, 9] mask f32", "softmax", T, 1e-10f, 0, strided_case, {33, 9, 1, 0, 2, 1}, 0},
    {"rope f32 normal [64, 4, 5] n_rot 32", "rope", T, 1e-7f, 4096, rope_case, {64, 4, 5, F32, 32, VKI_ROPE_NORMAL, 4, 0}, 0},
    {"rope f32 neox [80, 3, 4] n_rot 48", "rope", T, 1e-7f, 4096, rope_case, {80, 3, 4, F32, 48, VKI_ROPE_NEOX, 4, 0}, 0},
    {"rope f32 neox qkv view [32, 2, 7] n_rot 16 freq_scale 0.25", "rope", T, 1e-7f, 4096, rope_case, {32, 2, 7, F32, 16, VKI_ROPE_NEOX, 1, 1}, 0},
    {"rope f16 normal [32, 2, 3] n_rot 32 freq_scale 0.5", "rope", T, 1e-5f, 4096, rope_case, {32, 2, 3, F16, 32, VKI_ROPE_NORMAL, 2, 0}, 0},
    {"rope f16 neox [66, 2, 3] n_rot 20", "rope", T, 1e-5f, 4096, rope_case, {66, 2, 3, F16, 20, VKI_ROPE_NEOX, 4, 0}, 0},
};
const uint32_t vki_cases_norm_count = sizeof vki_cases_norm / sizeof vki_cases_norm[0];
