/* conv2d cases on the CPU kernel's paths (conv2d_rows.comp on the lavapipe tuning; the other
 * profiles run them on their own kernels): f16 weights read two per word, channel counts that
 * leave a last odd channel, output channels and pixels that end inside a tile, 1x1 and 3x3 on
 * the many- and few-channel tiles, and SD-shaped bench cases. The first cases, in attention.c,
 * cover the rest (pads, strides, f16 x, x slices). */
#include "cases_internal.h"

enum {
    C_PAD = 15, // a[7] & C_PAD is the padding
    C_BIAS = 16,
    C_X_F16 = 32,
    C_W_F16 = 64,
};

/* a: {W, H, Cin, Cout, N, k, stride, pad | flags} */
static void conv2d_case(vki_graph *g, const int64_t *a)
{
    int64_t f = a[7];
    vki_dtype xt = f & C_X_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_dtype wt = f & C_W_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor x = vki_input(g, xt, 4, (int64_t[]){a[0], a[1], a[2], a[4]}, "x");
    vki_tensor w = vki_weight(g, wt, 4, (int64_t[]){a[5], a[5], a[2], a[3]}, "w");
    vki_tensor b = f & C_BIAS ? vki_weight(g, VKI_DTYPE_F32, 1, (int64_t[]){a[3]}, "b") : (vki_tensor){0};
    vki_output(g, vki_conv2d(g, x, w, b, (uint32_t)a[6], (uint32_t)(f & C_PAD)), "y");
}

#define FLOPS(w, h, cin, cout, k) (2.0 * (w) * (h) * (cin) * (cout) * (k) * (k))
#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH
const vki_op_case vki_cases_conv2d[] = {
    // 70 channels: a full tile of 64 and 6 more; 13 x 11 x 2 pixels: 286, tiles of 128.
    {"conv2d f16 w 3x3 s1 p1 [13, 11, 6, 2] -> 70, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {13, 11, 6, 70, 2, 3, 1, 1 | C_BIAS | C_W_F16}, 0},
    {"conv2d f16 x and w 3x3 s2 p1 [12, 9, 8, 1] -> 33", "conv2d", T, 1e-10f, 0, conv2d_case,
     {12, 9, 8, 33, 1, 3, 2, 1 | C_X_F16 | C_W_F16}, 0},
    {"conv2d f32 3x3 s1 p1 [10, 6, 7, 1] -> 40, bias (odd Cin)", "conv2d", T, 1e-10f, 0, conv2d_case,
     {10, 6, 7, 40, 1, 3, 1, 1 | C_BIAS}, 0},
    {"conv2d f16 w 3x3 s1 p1 [9, 7, 4, 1] -> 3 (few channels)", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 7, 4, 3, 1, 3, 1, 1 | C_W_F16}, 0},
    {"conv2d f16 w 1x1 [11, 7, 10, 2] -> 35, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {11, 7, 10, 35, 2, 1, 1, 0 | C_BIAS | C_W_F16}, 0},
    {"conv2d f32 1x1 [9, 5, 5, 1] -> 6 (few channels, odd Cin)", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 5, 5, 6, 1, 1, 1, 0}, 0},
    {"conv2d SD 1x1 [64, 64, 640, 1] -> 320 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 640, 320, 1, 1, 1, 0 | C_BIAS | C_W_F16}, FLOPS(64, 64, 640, 320, 1)},
    {"conv2d SD conv_out 3x3 [64, 64, 320, 1] -> 4 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 320, 4, 1, 3, 1, 1 | C_BIAS | C_W_F16}, FLOPS(64, 64, 320, 4, 3)},
    {"conv2d SD conv_in 3x3 [64, 64, 4, 1] -> 320 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 4, 320, 1, 3, 1, 1 | C_BIAS | C_W_F16}, FLOPS(64, 64, 4, 320, 3)},
};
const uint32_t vki_cases_conv2d_count = sizeof vki_cases_conv2d / sizeof vki_cases_conv2d[0];
