/* Conformance cases of prelu and leaky_relu. Random inputs straddle zero, so both branches run;
 * the slopes are random too, so a kernel that ignored or misindexed them would fail. */
#include "cases_internal.h"

/* x [arg0..3] (arg[7] < 0: f16), slopes [1, 1, arg2, 1] (arg[4] == 1) or [arg0, 1, arg2, 1]
 * (arg[4] == 2); arg[4] == 0: leaky ReLU with slope arg[5] / 100. arg[6] == 1: x is the
 * transposed view of an [arg1, arg0] input. */
static void prelu_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype dt = arg[7] < 0 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor x;
    if (arg[6] == 1) {
        int64_t ne[4] = {arg[1], arg[0], arg[2], arg[3]};
        x = vki_transpose(g, vki_input(g, dt, 4, ne, "x"));
    } else {
        x = vki_input(g, dt, 4, arg, "x");
    }
    vki_tensor y;
    if (arg[4] == 0) {
        y = vki_leaky_relu(g, x, (float)arg[5] / 100.0f);
    } else {
        int64_t sne[4] = {arg[4] == 2 ? arg[0] : 1, 1, arg[2], 1};
        y = vki_prelu(g, x, vki_input(g, VKI_DTYPE_F32, 4, sne, "slope"));
    }
    vki_output(g, y, "y");
}

#define T VKI_CASE_TEST
const vki_op_case vki_cases_prelu[] = {
    {"prelu f32 [13, 7, 5, 2] per channel", "prelu", T, 1e-10f, 0, prelu_case, {13, 7, 5, 2, 1, 0, 0, 1}, 0},
    {"prelu f32 [9, 4, 3, 1] slopes [9, 1, 3]", "prelu", T, 1e-10f, 0, prelu_case, {9, 4, 3, 1, 2, 0, 0, 1}, 0},
    {"prelu f16 [33, 3, 64, 1] per channel", "prelu", T, 1e-5f, 0, prelu_case, {33, 3, 64, 1, 1, 0, 0, -1}, 0},
    {"prelu f32 transposed [11, 6, 4, 1]", "prelu", T, 1e-10f, 0, prelu_case, {11, 6, 4, 1, 1, 0, 1, 1}, 0},
    {"leaky_relu 0.2 f32 [31, 5, 3, 1]", "leaky_relu", T, 1e-10f, 0, prelu_case, {31, 5, 3, 1, 0, 20, 0, 1}, 0},
    {"leaky_relu 0.2 f16 [17, 9, 2, 1]", "leaky_relu", T, 1e-5f, 0, prelu_case, {17, 9, 2, 1, 0, 20, 0, -1}, 0},
    {"leaky_relu 0.01 f32 transposed [7, 5, 2, 2]", "leaky_relu", T, 1e-10f, 0, prelu_case, {7, 5, 2, 2, 0, 1, 1, 1}, 0},
};
const uint32_t vki_cases_prelu_count = sizeof vki_cases_prelu / sizeof vki_cases_prelu[0];
