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
    C_UP2 = 128,       // x upsampled 2x first (fused: the conv reads x at half coordinates)
    C_RES = 256,       // + r of the result's shape (fused: added as the conv writes)
    C_RES_FIRST = 512, // r + conv rather than conv + r
    C_KEEP_UP = 1024,  // the upsampled image is an output too: not fused
    C_RES_BCAST = 2048, // with C_RES: r is [1, 1, Cout, N] (the U-Net's time embedding)
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
    if (f & C_UP2) {
        x = vki_upsample2x(g, x);
        if (f & C_KEEP_UP) vki_output(g, x, "up");
    }
    vki_tensor y = vki_conv2d(g, x, w, b, (uint32_t)a[6], (uint32_t)(f & C_PAD));
    if (f & C_RES) {
        vki_tensor_info yi;
        vki_tensor_get_info(g, y, &yi);
        if (f & C_RES_BCAST) yi.ne[0] = yi.ne[1] = 1;
        vki_tensor r = vki_input(g, VKI_DTYPE_F32, 4, yi.ne, "r");
        y = f & C_RES_FIRST ? vki_add(g, r, y) : vki_add(g, y, r);
    }
    vki_output(g, y, "y");
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
    // Fused forms (graph/fusion.c): the reference runs the upsample and the add apart.
    {"conv2d f16 w 3x3 s1 p1 of upsample2x [7, 5, 6, 2] -> 70, bias", "conv2d", T, 1e-10f, 0,
     conv2d_case, {7, 5, 6, 70, 2, 3, 1, 1 | C_BIAS | C_W_F16 | C_UP2}, 0},
    {"conv2d f16 x, w 3x3 s1 p1 of upsample2x [6, 3, 8, 1] -> 5", "conv2d", T, 1e-10f, 0,
     conv2d_case, {6, 3, 8, 5, 1, 3, 1, 1 | C_X_F16 | C_W_F16 | C_UP2}, 0},
    {"conv2d f32 3x3 s1 p1 of upsample2x kept as an output [5, 4, 3, 1] -> 9", "conv2d", T, 1e-10f,
     0, conv2d_case, {5, 4, 3, 9, 1, 3, 1, 1 | C_UP2 | C_KEEP_UP}, 0},
    {"conv2d f16 w 3x3 s1 p1 [13, 11, 6, 2] -> 70, bias, + residual", "conv2d", T, 1e-10f, 0,
     conv2d_case, {13, 11, 6, 70, 2, 3, 1, 1 | C_BIAS | C_W_F16 | C_RES}, 0},
    {"conv2d f16 w 3x3 s1 p1 [11, 6, 12, 2] -> 67, bias, + [1, 1, 67, 2]", "conv2d", T, 1e-10f, 0,
     conv2d_case, {11, 6, 12, 67, 2, 3, 1, 1 | C_BIAS | C_W_F16 | C_RES | C_RES_BCAST}, 0},
    {"residual + conv2d f32 1x1 [9, 5, 5, 1] -> 6", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 5, 5, 6, 1, 1, 1, 0 | C_RES | C_RES_FIRST}, 0},
    {"conv2d f16 w 3x3 s1 p1 of upsample2x [8, 6, 16, 1] -> 40, bias, + residual", "conv2d", T,
     1e-10f, 0, conv2d_case, {8, 6, 16, 40, 1, 3, 1, 1 | C_BIAS | C_W_F16 | C_UP2 | C_RES}, 0},
    // Sized for the cooperative-matrix kernel where there is one (at least 64 tiles of 64 x 64;
    // the emulate-coopmat narrowing on lavapipe): channels no multiple of 8 (Cin 12: K = 108, no
    // multiple of a 16-deep slab), output channels and pixels ending inside a tile, stride 2,
    // f16 x with a residual, 1x1 over two images.
    {"conv2d f16 w 3x3 s1 p1 [44, 44, 12, 1] -> 130, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {44, 44, 12, 130, 1, 3, 1, 1 | C_BIAS | C_W_F16}, 0},
    {"conv2d f16 x, w 3x3 s2 p1 [88, 86, 12, 1] -> 130, + residual", "conv2d", T, 1e-10f, 0,
     conv2d_case, {88, 86, 12, 130, 1, 3, 2, 1 | C_X_F16 | C_W_F16 | C_RES}, 0},
    {"conv2d f16 w 1x1 [32, 31, 40, 2] -> 130, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {32, 31, 40, 130, 2, 1, 1, 0 | C_BIAS | C_W_F16}, 0},
    // The U-Net's other 3x3 shapes at 512x512 (64x64 latent): its deeper levels and a
    // downsampling stride 2.
    {"conv2d SD 3x3 [32, 32, 640, 1] -> 640 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {32, 32, 640, 640, 1, 3, 1, 1 | C_BIAS | C_W_F16}, FLOPS(32, 32, 640, 640, 3)},
    {"conv2d SD 3x3 [16, 16, 1280, 1] -> 1280 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {16, 16, 1280, 1280, 1, 3, 1, 1 | C_BIAS | C_W_F16}, FLOPS(16, 16, 1280, 1280, 3)},
    {"conv2d SD 3x3 s2 [64, 64, 320, 1] -> 320 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 320, 320, 1, 3, 2, 1 | C_BIAS | C_W_F16}, FLOPS(32, 32, 320, 320, 3)},
    {"conv2d SD 1x1 [64, 64, 640, 1] -> 320 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 640, 320, 1, 1, 1, 0 | C_BIAS | C_W_F16}, FLOPS(64, 64, 640, 320, 1)},
    {"conv2d SD conv_out 3x3 [64, 64, 320, 1] -> 4 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 320, 4, 1, 3, 1, 1 | C_BIAS | C_W_F16}, FLOPS(64, 64, 320, 4, 3)},
    {"conv2d SD conv_in 3x3 [64, 64, 4, 1] -> 320 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 4, 320, 1, 3, 1, 1 | C_BIAS | C_W_F16}, FLOPS(64, 64, 4, 320, 3)},
};
const uint32_t vki_cases_conv2d_count = sizeof vki_cases_conv2d / sizeof vki_cases_conv2d[0];
