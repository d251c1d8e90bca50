/* Conformance cases of fused patterns (graph/fusion.c): the device runs one fused dispatch, the
 * CPU reference the separate ops, so these check the fusion as well as the kernels. */
#include "cases_internal.h"

/* rms_norm(x) * w, x [arg0, arg1] f32, w [arg0]. */
static void rms_scale_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, arg, "x");
    vki_tensor w = vki_weight(g, VKI_DTYPE_F32, 1, arg, "w");
    vki_output(g, vki_mul(g, vki_rms_norm(g, x, (vki_tensor){0}, 1e-6f), w), "y");
}

/* layer_norm(x) * w + b. */
static void layer_affine_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, arg, "x");
    vki_tensor w = vki_weight(g, VKI_DTYPE_F32, 1, arg, "w");
    vki_tensor b = vki_weight(g, VKI_DTYPE_F32, 1, arg, "b");
    vki_tensor n = vki_layer_norm(g, x, (vki_tensor){0}, (vki_tensor){0}, 1e-5f);
    vki_output(g, vki_add(g, vki_mul(g, n, w), b), "y");
}

/* act(W x + bias): W [arg0 = K, arg1 = M] of dtype arg3, x [K, arg2], activation arg4. */
static void matmul_bias_act_case(vki_graph *g, const int64_t *arg)
{
    int64_t wne[2] = {arg[0], arg[1]}, xne[2] = {arg[0], arg[2]}, bne[1] = {arg[1]};
    vki_tensor W = vki_weight(g, (vki_dtype)arg[3], 2, wne, "W");
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, xne, "x");
    vki_tensor bias = vki_weight(g, VKI_DTYPE_F32, 1, bne, "bias");
    vki_tensor y = vki_add(g, vki_matmul(g, W, x), bias);
    if (arg[4]) y = vki_activate(g, y, (vki_activation)arg[4]);
    vki_output(g, y, "y");
}

/* r + act(W x [+ bias]) as a transformer's residual stream writes it (the matmul second): W
 * [arg0 = K, arg1 = M] of dtype arg3, x [K, arg2], activation arg4, bias when arg5. */
static void matmul_residual_case(vki_graph *g, const int64_t *arg)
{
    int64_t wne[2] = {arg[0], arg[1]}, xne[2] = {arg[0], arg[2]}, rne[2] = {arg[1], arg[2]};
    vki_tensor r = vki_input(g, VKI_DTYPE_F32, 2, rne, "r");
    vki_tensor W = vki_weight(g, (vki_dtype)arg[3], 2, wne, "W");
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, xne, "x");
    vki_tensor y = vki_matmul(g, W, x);
    if (arg[5]) y = vki_add(g, y, vki_weight(g, VKI_DTYPE_F32, 1, (int64_t[]){arg[1]}, "bias"));
    if (arg[4]) y = vki_activate(g, y, (vki_activation)arg[4]);
    vki_output(g, vki_add(g, r, y), "y");
}

/* [r +] W rms_norm(x, w) as a transformer's layer reads its input: W [arg0 = K, arg1 = M] of
 * dtype arg3, x [K, arg2], the residual when arg4 (the norm goes into a CPU mat-vec). */
static void norm_matmul_case(vki_graph *g, const int64_t *arg)
{
    int64_t wne[2] = {arg[0], arg[1]}, xne[2] = {arg[0], arg[2]}, rne[2] = {arg[1], arg[2]};
    vki_tensor W = vki_weight(g, (vki_dtype)arg[3], 2, wne, "W");
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, xne, "x");
    vki_tensor w = vki_weight(g, VKI_DTYPE_F32, 1, (int64_t[]){arg[0]}, "w");
    vki_tensor y = vki_matmul(g, W, vki_rms_norm(g, x, w, 1e-5f));
    if (arg[4]) y = vki_add(g, vki_input(g, VKI_DTYPE_F32, 2, rne, "r"), y);
    vki_output(g, y, "y");
}

/* swiglu (arg4 = 0) or geglu of the halves of W [rms_norm](x) as a feed-forward reads its gate
 * and up projections joined: W [arg0 = K, 2 arg1] of dtype arg3, x [K, arg2], the norm when
 * arg5 (both go into a CPU mat-vec). */
static void glu_matmul_case(vki_graph *g, const int64_t *arg)
{
    int64_t K = arg[0], M = arg[1], N = arg[2];
    vki_tensor W = vki_weight(g, (vki_dtype)arg[3], 2, (int64_t[]){K, 2 * M}, "W");
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){K, N}, "x");
    if (arg[5]) x = vki_rms_norm(g, x, vki_weight(g, VKI_DTYPE_F32, 1, (int64_t[]){K}, "w"), 1e-5f);
    vki_tensor y = vki_matmul(g, W, x);
    const uint64_t nb[2] = {4, 8 * (uint64_t)M};
    vki_tensor gate = vki_view(g, y, 2, (int64_t[]){M, N}, nb, 0);
    vki_tensor up = vki_view(g, y, 2, (int64_t[]){M, N}, nb, 4 * (uint64_t)M);
    vki_output(g, arg[4] ? vki_geglu(g, gate, up) : vki_swiglu(g, gate, up), "y");
}

/* llama's rope of the first arg4 heads (head dim arg2, n_rot arg6) of W [rms_norm](x) as a
 * decode step's joined q, k, v product reads them: W [arg0 = K, arg1 = M] of dtype arg3, x
 * [K, 1], the norm when arg5; positions random below the case's int range. The roped heads and
 * the rows past them are each read by a scale (both go into a CPU mat-vec). */
static void rope_matmul_case(vki_graph *g, const int64_t *arg)
{
    int64_t K = arg[0], M = arg[1], hd = arg[2], heads = arg[4];
    vki_tensor W = vki_weight(g, (vki_dtype)arg[3], 2, (int64_t[]){K, M}, "W");
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){K, 1}, "x");
    if (arg[5]) x = vki_rms_norm(g, x, vki_weight(g, VKI_DTYPE_F32, 1, (int64_t[]){K}, "w"), 1e-5f);
    vki_tensor y = vki_matmul(g, W, x);
    vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 1, (int64_t[]){1}, "pos");
    vki_tensor h = vki_view(g, y, 3, (int64_t[]){hd, heads, 1},
                            (uint64_t[]){4, 4 * (uint64_t)hd, 4 * (uint64_t)M}, 0);
    vki_tensor r = vki_rope(g, h, pos, (uint32_t)arg[6], VKI_ROPE_NORMAL, 10000.0f, 1.0f);
    vki_output(g, vki_scale(g, r, 0.5f), "roped");
    int64_t rest = M - hd * heads;
    vki_tensor tail = vki_view(g, y, 2, (int64_t[]){rest, 1}, (uint64_t[]){4, 4 * (uint64_t)M},
                               4 * (uint64_t)(hd * heads));
    vki_output(g, vki_scale(g, tail, 2.0f), "rest");
}

#define T VKI_CASE_TEST
const vki_op_case vki_cases_fused[] = {
    {"fused rms_norm * w f32 [97, 3]", "fused", T, 1e-10f, 0, rms_scale_case, {97, 3}, 0},
    {"fused layer_norm * w + b f32 [64, 5]", "fused", T, 1e-10f, 0, layer_affine_case, {64, 5}, 0},
    {"fused matmul f16 + bias + silu [64, 35] x 1", "fused", T, 1e-8f, 0, matmul_bias_act_case,
     {64, 35, 1, VKI_DTYPE_F16, VKI_ACT_SILU}, 0},
    {"fused matmul q4_0 + bias + gelu [64, 35] x 5", "fused", T, 1e-8f, 0, matmul_bias_act_case,
     {64, 35, 5, VKI_DTYPE_Q4_0, VKI_ACT_GELU}, 0},
    {"fused matmul q8_0 + bias [64, 19] x 2", "fused", T, 1e-8f, 0, matmul_bias_act_case,
     {64, 19, 2, VKI_DTYPE_Q8_0, 0}, 0},
    {"fused residual + matmul q4_1 [64, 35] x 1", "fused", T, 1e-8f, 0, matmul_residual_case,
     {64, 35, 1, VKI_DTYPE_Q4_1, 0, 0}, 0},
    {"fused residual + matmul f16 + bias + gelu [67, 35] x 5", "fused", T, 1e-8f, 0,
     matmul_residual_case, {67, 35, 5, VKI_DTYPE_F16, VKI_ACT_GELU, 1}, 0},
    {"fused residual + matmul q8_0 [64, 35] x 33", "fused", T, 1e-8f, 0, matmul_residual_case,
     {64, 35, 33, VKI_DTYPE_Q8_0, 0, 0}, 0},
    {"fused residual + matmul q4_1 (rms_norm) [576, 67] x 1", "fused", T, 1e-8f, 0, norm_matmul_case,
     {576, 67, 1, VKI_DTYPE_Q4_1, 1}, 0},
    {"fused matmul q4_k (rms_norm) [256, 40] x 3", "fused", T, 1e-8f, 0, norm_matmul_case,
     {256, 40, 3, VKI_DTYPE_Q4_K, 0}, 0},
    {"fused matmul q6_k (rms_norm) [512, 21] x 1", "fused", T, 1e-8f, 0, norm_matmul_case,
     {512, 21, 1, VKI_DTYPE_Q6_K, 0}, 0},
    {"fused residual + matmul f16 (rms_norm) [64, 35] x 2", "fused", T, 1e-8f, 0, norm_matmul_case,
     {64, 35, 2, VKI_DTYPE_F16, 1}, 0},
    {"fused matmul q8_0 (rms_norm) [96, 389] x 1", "fused", T, 1e-8f, 0, norm_matmul_case,
     {96, 389, 1, VKI_DTYPE_Q8_0, 0}, 0},
    {"fused swiglu of matmul q4_1 (rms_norm) [576, 2 x 99] x 1", "fused", T, 1e-8f, 0,
     glu_matmul_case, {576, 99, 1, VKI_DTYPE_Q4_1, 0, 1}, 0},
    {"fused geglu of matmul q8_0 [64, 2 x 35] x 3", "fused", T, 1e-8f, 0, glu_matmul_case,
     {64, 35, 3, VKI_DTYPE_Q8_0, 1, 0}, 0},
    {"fused swiglu of matmul f16 [96, 2 x 130] x 1", "fused", T, 1e-8f, 0, glu_matmul_case,
     {96, 130, 1, VKI_DTYPE_F16, 0, 0}, 0},
    {"fused swiglu of matmul q4_k [256, 2 x 21] x 9", "fused", T, 1e-8f, 0, glu_matmul_case,
     {256, 21, 9, VKI_DTYPE_Q4_K, 0, 1}, 0},
    {"fused matmul q4_0 (rms_norm) [64, 35] x 12", "fused", T, 1e-8f, 0, norm_matmul_case,
     {64, 35, 12, VKI_DTYPE_Q4_0, 0}, 0},
    // rope's bound (cases/norm.c): its fp32 angle at positions up to 4096.
    {"fused rope of matmul q4_1 (rms_norm) [576, 960] x 1, 12 heads of 64 (SmolLM2's qkv)", "fused", T,
     1e-7f, 4096, rope_matmul_case, {576, 960, 64, VKI_DTYPE_Q4_1, 12, 1, 64}, 0},
    {"fused rope of matmul q8_0 [96, 83] x 1, 3 heads of 20, n_rot 12", "fused", T, 1e-7f, 4096,
     rope_matmul_case, {96, 83, 20, VKI_DTYPE_Q8_0, 3, 0, 12}, 0},
};
const uint32_t vki_cases_fused_count = sizeof vki_cases_fused / sizeof vki_cases_fused[0];
