/* Conformance cases of the unary family: copy/cast, scale and activations, gated units, concat,
 * upsample, timestep embedding, argmax. Odd sizes, size-1 dims, strided and permuted views,
 * views at odd element offsets (16-bit sources read as 32-bit words), every dtype each op takes.
 * Random inputs lie in [-1, 1]; activation cases scale them first to reach the saturating
 * ranges. Tolerances: f32 1e-10 (exact ops 0), f16 results 1e-5 (one rounding to f16, relative
 * 2^-11 per element), bf16 results 1e-4 (relative 2^-8). */
#include "cases_internal.h"

#define F32 VKI_DTYPE_F32
#define F16 VKI_DTYPE_F16
#define BF16 VKI_DTYPE_BF16

/* Input [arg0..3] of dtype arg4, viewed as selected by arg6 (0: as is, 1: transposed, 2: permuted
 * {2, 0, 3, 1}, 3: the [ne0 - 3, ...] window at element offset 3 of each row). */
static vki_tensor strided_input(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, (vki_dtype)arg[4], 4, arg, "x");
    vki_tensor_info info;
    vki_tensor_get_info(g, x, &info);
    switch (arg[6]) {
    case 1: return vki_transpose(g, x);
    case 2: return vki_permute(g, x, (const uint32_t[]){2, 0, 3, 1});
    case 3: {
        int64_t ne[4] = {arg[0] - 3, arg[1], arg[2], arg[3]};
        return vki_view(g, x, 4, ne, info.nb, 3 * info.nb[0]);
    }
    default: return x;
    }
}

/* copy: strided_input converted to dtype arg5. */
static void copy_case(vki_graph *g, const int64_t *arg)
{
    vki_output(g, vki_copy(g, strided_input(g, arg), (vki_dtype)arg[5]), "y");
}

/* The activation arg5 of strided_input * arg7 / 4 (VKI_ACT_NONE: the vki_scale alone). */
static void unary_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = strided_input(g, arg);
    float s = (float)arg[7] / 4.0f;
    vki_tensor y = vki_scale(g, x, s);
    if (arg[5] != VKI_ACT_NONE) y = vki_activate(g, y, (vki_activation)arg[5]);
    vki_output(g, y, "y");
}

/* The activation on a strided view of an intermediate: x * arg7 / 4, transposed, activated. */
static void unary_of_view_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_scale(g, vki_input(g, (vki_dtype)arg[4], 4, arg, "x"), (float)arg[7] / 4.0f);
    vki_output(g, vki_activate(g, vki_transpose(g, x), (vki_activation)arg[5]), "y");
}

/* Gated unit (arg5 silu: swiglu, else geglu) of gate and up [arg0..3] dtype arg4, both scaled
 * by arg7 / 4 first; arg6 = 1: gate and up are the two halves of one [2 arg0, ...] input. */
static void glu_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype dt = (vki_dtype)arg[4];
    vki_tensor gate, up;
    if (arg[6] == 1) {
        int64_t ne[4] = {2 * arg[0], arg[1], arg[2], arg[3]};
        vki_tensor both = vki_input(g, dt, 4, ne, "gate_up");
        vki_tensor_info info;
        vki_tensor_get_info(g, both, &info);
        gate = vki_view(g, both, 4, arg, info.nb, 0);
        up = vki_view(g, both, 4, arg, info.nb, (uint64_t)arg[0] * info.nb[0]);
    } else {
        gate = vki_input(g, dt, 4, arg, "gate");
        up = vki_input(g, dt, 4, arg, "up");
    }
    gate = vki_scale(g, gate, (float)arg[7] / 4.0f);
    vki_tensor y = arg[5] == VKI_ACT_SILU ? vki_swiglu(g, gate, up) : vki_geglu(g, gate, up);
    vki_output(g, y, "y");
}

/* concat along arg5 of a [arg0..3] and b (the same but arg7 along arg5), dtype arg4; arg6 = 1:
 * a is the transpose of an input (dims 0 and 1 swapped in arg). */
static void concat_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype dt = (vki_dtype)arg[4];
    int64_t bne[4] = {arg[0], arg[1], arg[2], arg[3]};
    bne[arg[5]] = arg[7];
    vki_tensor a;
    if (arg[6] == 1) {
        int64_t ne[4] = {arg[1], arg[0], arg[2], arg[3]};
        a = vki_transpose(g, vki_input(g, dt, 4, ne, "a"));
    } else {
        a = vki_input(g, dt, 4, arg, "a");
    }
    vki_tensor b = vki_input(g, dt, 4, bne, "b");
    vki_output(g, vki_concat(g, a, b, (uint32_t)arg[5]), "y");
}

/* concat of [arg0, arg1] with itself along dim 2, beyond the inputs' ndim. */
static void concat_new_dim_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor a = vki_input(g, F32, 2, arg, "a");
    vki_output(g, vki_concat(g, a, a, 2), "y");
}

static void upsample_case(vki_graph *g, const int64_t *arg)
{
    vki_output(g, vki_upsample2x(g, strided_input(g, arg)), "y");
}

/* arg0 timesteps in [0, arg2] (squares of random values, times arg2), read with a stride of two
 * elements (row 0 of an intermediate [2, arg0]), embedded in arg1 dims with max period 10000. */
static void timestep_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, F32, 2, (const int64_t[]){2, arg[0]}, "x");
    vki_tensor t = vki_scale(g, vki_mul(g, x, x), (float)arg[2]);
    t = vki_view(g, t, 1, &arg[0], (const uint64_t[]){8}, 0);
    vki_output(g, vki_timestep_embedding(g, t, (uint32_t)arg[1], 10000.0f), "y");
}

static void argmax_case(vki_graph *g, const int64_t *arg)
{
    vki_output(g, vki_argmax(g, strided_input(g, arg)), "y");
}

/* Ties by construction: every value of a row appears twice, so only the first index is right.
 * arg5 = 0: upsample2x duplicates neighbours (the answer is even); 1: concat(x, x) along dim 0
 * (the answer is in the first half). */
static void argmax_ties_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, (vki_dtype)arg[4], 4, arg, "x");
    x = arg[5] == 0 ? vki_upsample2x(g, x) : vki_concat(g, x, x, 0);
    vki_output(g, vki_argmax(g, x), "y");
}

/* vki_argmax_finite over rows of 2 arg0 values [x | NaN], [x | ±inf], [NaN | -inf], [-inf | x]
 * (arg1 of each, x random f32): the first and last give x's largest (in the first or second
 * half), the middle two -1 (+inf present; nothing finite). x * 1e30 * 1e30 overflows to ±inf
 * (every |x| above 1e-30, which a random value is), inf - inf is NaN. */
static void argmax_finite_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, F32, 2, arg, "x");
    vki_tensor inf = vki_scale(g, vki_scale(g, x, 1e30f), 1e30f);
    vki_tensor nan = vki_add(g, inf, vki_scale(g, inf, -1.0f));
    vki_tensor ninf = vki_scale(g, vki_scale(g, vki_mul(g, x, x), -1e30f), 1e30f);
    vki_tensor a = vki_concat(g, vki_concat(g, x, nan, 0), vki_concat(g, x, inf, 0), 1);
    vki_tensor b = vki_concat(g, vki_concat(g, nan, ninf, 0), vki_concat(g, ninf, x, 0), 1);
    vki_output(g, vki_argmax_finite(g, vki_concat(g, a, b, 1)), "y");
}

#define T VKI_CASE_TEST
const vki_op_case vki_cases_unary[] = {
    // copy / cast: arg = shape, src dtype, dst dtype, view (0 plain, 1 transposed, 2 permuted, 3 offset 3)
    {"copy f32 permuted [7, 5, 3, 2]", "copy", T, 0, 0, copy_case, {7, 5, 3, 2, F32, F32, 2}, 0},
    {"copy f32 [1, 1, 1, 1]", "copy", T, 0, 0, copy_case, {1, 1, 1, 1, F32, 0, 0}, 0},
    {"copy f16 permuted [5, 4, 3, 2]", "copy", T, 0, 0, copy_case, {5, 4, 3, 2, F16, F16, 2}, 0},
    {"copy bf16 transposed [9, 7]", "copy", T, 0, 0, copy_case, {9, 7, 1, 1, BF16, BF16, 1}, 0},
    {"cast f32->f16 transposed [33, 3]", "cast", T, 1e-6f, 0, copy_case, {33, 3, 1, 1, F32, F16, 1}, 0},
    {"cast f16->f32 transposed [13, 9]", "cast", T, 0, 0, copy_case, {13, 9, 1, 1, F16, F32, 1}, 0},
    {"cast f16->f32 at odd offset [10, 4, 3]", "cast", T, 0, 0, copy_case, {10, 4, 3, 1, F16, F32, 3}, 0},
    {"cast bf16->f32 at odd offset [17, 3, 2]", "cast", T, 0, 0, copy_case, {17, 3, 2, 1, BF16, F32, 3}, 0},
    {"cast f32->bf16 permuted [6, 5, 3, 1]", "cast", T, 1e-4f, 0, copy_case, {6, 5, 3, 1, F32, BF16, 2}, 0},
    {"cast bf16->f16 [31, 3]", "cast", T, 1e-6f, 0, copy_case, {31, 3, 1, 1, BF16, F16, 0}, 0},
    {"cast f16->bf16 at odd offset [12, 5]", "cast", T, 1e-4f, 0, copy_case, {12, 5, 1, 1, F16, BF16, 3}, 0},
    // unary: arg = shape, dtype, activation, view, 4 x input scale
    {"scale f32 [33, 7, 3, 2] * -2.5", "scale", T, 1e-10f, 0, unary_case, {33, 7, 3, 2, F32, VKI_ACT_NONE, 0, -10}, 0},
    {"scale f16 permuted [5, 4, 3, 2] * 0.75", "scale", T, 1e-5f, 0, unary_case, {5, 4, 3, 2, F16, VKI_ACT_NONE, 2, 3}, 0},
    {"silu f32 [65, 3] of x * 8", "silu", T, 1e-10f, 0, unary_case, {65, 3, 1, 1, F32, VKI_ACT_SILU, 0, 32}, 0},
    {"silu f32 [37, 3] of x * 100 (saturating)", "silu", T, 1e-10f, 0, unary_case, {37, 3, 1, 1, F32, VKI_ACT_SILU, 0, 400}, 0},
    {"gelu f32 [129, 2] of x * 5", "gelu", T, 1e-10f, 0, unary_case, {129, 2, 1, 1, F32, VKI_ACT_GELU, 0, 20}, 0},
    {"gelu f32 transposed intermediate [11, 6] of x * 4", "gelu", T, 1e-10f, 0, unary_of_view_case, {11, 6, 1, 1, F32, VKI_ACT_GELU, 0, 16}, 0},
    {"gelu f32 [23, 2] of x * 100 (saturating)", "gelu", T, 1e-10f, 0, unary_case, {23, 2, 1, 1, F32, VKI_ACT_GELU, 0, 400}, 0},
    {"gelu f16 at offset 3 [20, 3, 2] of x * 4", "gelu", T, 1e-5f, 0, unary_case, {20, 3, 2, 1, F16, VKI_ACT_GELU, 3, 16}, 0},
    {"gelu_tanh f32 [1, 1, 1, 1] of x * 3", "gelu_tanh", T, 1e-10f, 0, unary_case, {1, 1, 1, 1, F32, VKI_ACT_GELU_TANH, 0, 12}, 0},
    {"gelu_tanh f32 [41, 3] of x * 100 (saturating)", "gelu_tanh", T, 1e-10f, 0, unary_case, {41, 3, 1, 1, F32, VKI_ACT_GELU_TANH, 0, 400}, 0},
    {"gelu_tanh f16 [31, 5] of x * 5", "gelu_tanh", T, 1e-5f, 0, unary_case, {31, 5, 1, 1, F16, VKI_ACT_GELU_TANH, 0, 20}, 0},
    {"quick_gelu f32 permuted [4, 3, 5, 2] of x * 6", "quick_gelu", T, 1e-10f, 0, unary_case, {4, 3, 5, 2, F32, VKI_ACT_QUICK_GELU, 2, 24}, 0},
    // gated units: arg = shape, dtype, activation, 1: halves of one input, 4 x gate scale
    {"swiglu f32 [33, 4, 3] of gate * 6", "swiglu", T, 1e-10f, 0, glu_case, {33, 4, 3, 1, F32, VKI_ACT_SILU, 0, 24}, 0},
    {"swiglu f16 halves of [2 x 19, 3] of gate * 6", "swiglu", T, 1e-5f, 0, glu_case, {19, 3, 1, 1, F16, VKI_ACT_SILU, 1, 24}, 0},
    {"geglu f32 halves of [2 x 21, 2, 2] of gate * 5", "geglu", T, 1e-10f, 0, glu_case, {21, 2, 2, 1, F32, VKI_ACT_GELU, 1, 20}, 0},
    {"geglu f16 [65, 3] of gate * 5", "geglu", T, 1e-5f, 0, glu_case, {65, 3, 1, 1, F16, VKI_ACT_GELU, 0, 20}, 0},
    // concat: arg = a's shape, dtype, dim, 1: a transposed, b's size along dim
    {"concat f32 dim 0 [5, 3, 2] + [4, 3, 2]", "concat", T, 0, 0, concat_case, {5, 3, 2, 1, F32, 0, 0, 4}, 0},
    {"concat f32 dim 1 transposed [7, 3] + [7, 2]", "concat", T, 0, 0, concat_case, {7, 3, 1, 1, F32, 1, 1, 2}, 0},
    {"concat f32 dim 2 [3, 4, 1, 2] + [3, 4, 3, 2]", "concat", T, 0, 0, concat_case, {3, 4, 1, 2, F32, 2, 0, 3}, 0},
    {"concat f32 dim 3 [6, 2, 3, 1] + [6, 2, 3, 2]", "concat", T, 0, 0, concat_case, {6, 2, 3, 1, F32, 3, 0, 2}, 0},
    {"concat f16 dim 0 transposed [9, 4] + [5, 4]", "concat", T, 0, 0, concat_case, {9, 4, 1, 1, F16, 0, 1, 5}, 0},
    {"concat bf16 dim 1 [7, 2, 2] + [7, 3, 2]", "concat", T, 0, 0, concat_case, {7, 2, 2, 1, BF16, 1, 0, 3}, 0},
    {"concat f32 [5, 3] with itself along new dim 2", "concat", T, 0, 0, concat_new_dim_case, {5, 3}, 0},
    // upsample: arg = shape, dtype, -, view
    {"upsample f32 [7, 5, 3, 2]", "upsample", T, 0, 0, upsample_case, {7, 5, 3, 2, F32, 0, 0}, 0},
    {"upsample f32 transposed [9, 4]", "upsample", T, 0, 0, upsample_case, {9, 4, 1, 1, F32, 0, 1}, 0},
    {"upsample f16 [5, 3, 2, 1]", "upsample", T, 0, 0, upsample_case, {5, 3, 2, 1, F16, 0, 0}, 0},
    {"upsample bf16 at offset 3 [8, 1, 3, 1]", "upsample", T, 0, 0, upsample_case, {8, 1, 3, 1, BF16, 0, 3}, 0},
    // timestep embedding: arg = N, dim, largest timestep
    {"timestep_embedding [320, 5] t <= 1000", "timestep_embedding", T, 1e-6f, 0, timestep_case, {5, 320, 1000}, 0},
    {"timestep_embedding odd [33, 2] t <= 1", "timestep_embedding", T, 1e-10f, 0, timestep_case, {2, 33, 1}, 0},
    {"timestep_embedding [1, 3]", "timestep_embedding", T, 1e-10f, 0, timestep_case, {3, 1, 1}, 0},
    // argmax: arg = shape, dtype, -, view; the index must be exact
    {"argmax f32 [5000, 3]", "argmax", T, 0, 0, argmax_case, {5000, 3, 1, 1, F32, 0, 0}, 0},
    {"argmax f32 [49155, 1] (a vocabulary)", "argmax", T, 0, 0, argmax_case, {49155, 1, 1, 1, F32, 0, 0}, 0},
    {"argmax f32 [1, 4]", "argmax", T, 0, 0, argmax_case, {1, 4, 1, 1, F32, 0, 0}, 0},
    {"argmax f32 [37, 5, 2, 3]", "argmax", T, 0, 0, argmax_case, {37, 5, 2, 3, F32, 0, 0}, 0},
    {"argmax f32 transposed [4, 300]", "argmax", T, 0, 0, argmax_case, {4, 300, 1, 1, F32, 0, 1}, 0},
    {"argmax f16 [4001, 3] (f16 ties)", "argmax", T, 0, 0, argmax_case, {4001, 3, 1, 1, F16, 0, 0}, 0},
    {"argmax f32 ties: upsampled [2500, 3]", "argmax", T, 0, 0, argmax_ties_case, {2500, 3, 1, 1, F32, 0}, 0},
    {"argmax f32 ties: concat(x, x) [3001, 2]", "argmax", T, 0, 0, argmax_ties_case, {3001, 2, 1, 1, F32, 1}, 0},
    // argmax_finite: arg = columns and rows of x; non-finite rows give -1
    {"argmax_finite f32 [2 x 2500, 4 x 3] (NaN, inf rows)", "argmax", T, 0, 0, argmax_finite_case, {2500, 3}, 0},
    {"argmax_finite f32 [2 x 1, 4 x 2] (NaN, inf rows)", "argmax", T, 0, 0, argmax_finite_case, {1, 2}, 0},
};
const uint32_t vki_cases_unary_count = sizeof vki_cases_unary / sizeof vki_cases_unary[0];
