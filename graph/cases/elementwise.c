/* Conformance cases of the elementwise ops. arg[] holds shapes; odd sizes on purpose. */
#include "cases_internal.h"

/* a [arg0..3] op b, b broadcast over the dims where arg4..7 is 1; arg[4] < 0: f16. */
static void binary_case(vki_graph *g, const int64_t *arg, bool mul)
{
    vki_dtype dt = arg[7] < 0 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    int64_t bne[4] = {arg[4], arg[5], arg[6], arg[7] < 0 ? -arg[7] : arg[7]};
    vki_tensor a = vki_input(g, dt, 4, arg, "a");
    vki_tensor b = vki_input(g, dt, 4, bne, "b");
    vki_tensor y = mul ? vki_mul(g, a, b) : vki_add(g, a, b);
    vki_output(g, y, "y");
}
static void add_case(vki_graph *g, const int64_t *arg) { binary_case(g, arg, false); }
static void mul_case(vki_graph *g, const int64_t *arg) { binary_case(g, arg, true); }

/* Strided operand: a is the transpose of a [arg1, arg0] input. */
static void add_transposed_case(vki_graph *g, const int64_t *arg)
{
    int64_t ne[2] = {arg[1], arg[0]};
    vki_tensor a = vki_transpose(g, vki_input(g, VKI_DTYPE_F32, 2, ne, "a"));
    vki_tensor b = vki_input(g, VKI_DTYPE_F32, 2, arg, "b");
    vki_output(g, vki_add(g, a, b), "y");
}

/* A chain with reuse: ((a + b) * b + a) exercises in-place and barriers. */
static void chain_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor a = vki_input(g, VKI_DTYPE_F32, 2, arg, "a");
    vki_tensor b = vki_input(g, VKI_DTYPE_F32, 2, arg, "b");
    vki_tensor t = vki_add(g, a, b);
    t = vki_mul(g, t, b);
    t = vki_add(g, t, a);
    vki_output(g, t, "y");
}

#define T VKI_CASE_TEST
const vki_op_case vki_cases_elementwise[] = {
    {"add f32 [33, 7, 3, 2] + [33, 7, 3, 2]", "add", T, 1e-10f, 0, add_case, {33, 7, 3, 2, 33, 7, 3, 2}, 0},
    {"add f32 [33, 7, 3, 2] + [33, 1, 1, 1]", "add", T, 1e-10f, 0, add_case, {33, 7, 3, 2, 33, 1, 1, 1}, 0},
    {"add f32 [1, 5, 1, 1] + [1, 1, 1, 1]", "add", T, 1e-10f, 0, add_case, {1, 5, 1, 1, 1, 1, 1, 1}, 0},
    {"add f16 [65, 3, 1, 1] + [65, 3, 1, 1]", "add", T, 1e-5f, 0, add_case, {65, 3, 1, 1, 65, 3, 1, -1}, 0},
    {"mul f32 [17, 4, 3, 1] * [1, 4, 1, 1]", "mul", T, 1e-10f, 0, mul_case, {17, 4, 3, 1, 1, 4, 1, 1}, 0},
    {"mul f16 [31, 2, 2, 2] * [31, 1, 2, 1]", "mul", T, 1e-5f, 0, mul_case, {31, 2, 2, 2, 31, 1, 2, -1}, 0},
    {"add f32 transposed [13, 9] + [13, 9]", "add", T, 1e-10f, 0, add_transposed_case, {13, 9}, 0},
    {"add/mul chain f32 [100, 3]", "add", T, 1e-10f, 0, chain_case, {100, 3}, 0},
};
const uint32_t vki_cases_elementwise_count = sizeof vki_cases_elementwise / sizeof vki_cases_elementwise[0];
