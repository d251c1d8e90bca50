/* Conformance cases of the multi-section rope (vki_rope_multi: Qwen2-VL's M-RoPE and its ViT's
 * 2-D rope). The case runner fills pos [n_tok, 4] with independent random values, so every
 * stream differs and a pair that reads the wrong stream, or counts its frequency from the wrong
 * place, is off by whole radians. vki_rope's own cases are in norm.c. */
#include "cases_internal.h"

enum { F32 = 1, F16 };

/* Sections {a, b, c, d} packed in one case argument, a byte each. */
#define SECT(a, b, c, d) ((a) | (b) << 8 | (c) << 16 | (int64_t)(d) << 24)

/* rope_multi of x [arg0 head_dim, arg1 heads, arg2 tokens] in dtype arg3, mode arg4, sections
 * arg5 (SECT), n_rot = 2 * their sum; base 10000, freq_scale arg6 / 4. arg7: x is the middle
 * third of a fused [3 * arg0 * arg1, arg2] qkv input (strided heads and tokens). */
static void rope_multi_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype dt = arg[3] == F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor x;
    if (arg[7]) {
        uint64_t es = vki_dtype_bytes(dt, 1);
        vki_tensor qkv = vki_input(g, dt, 2, (int64_t[]){3 * arg[0] * arg[1], arg[2]}, "qkv");
        x = vki_view(g, qkv, 3, arg, (uint64_t[]){es, es * arg[0], es * 3 * arg[0] * arg[1]},
                     es * arg[0] * arg[1]);
    } else {
        x = vki_input(g, dt, 3, arg, "x");
    }
    vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 2, (int64_t[]){arg[2], 4}, "pos");
    uint32_t sections[4], n_rot = 0;
    for (int k = 0; k < 4; k++) n_rot += 2 * (sections[k] = (uint32_t)(arg[5] >> 8 * k) & 0xff);
    vki_tensor y = vki_rope_multi(g, x, pos, n_rot, (vki_rope_mode)arg[4], sections, 10000.0f,
                                  (float)arg[6] / 4.0f);
    vki_output(g, y, "y");
}

#define N_ROPE(hd, heads, tok) (3.0 * (hd) * (heads) * (tok))
#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH
#define MROPE VKI_ROPE_MROPE
#define VISION VKI_ROPE_VISION

/* Tolerances as for norm.c's rope rows: the fp32 angle at positions up to 4096; f16 output
 * rounding. */
const vki_op_case vki_cases_rope[] = {
    {"rope_multi mrope f32 [16, 4, 7] sections 2/3/3 (the tiny Qwen2-VL's heads)", "rope", T, 1e-7f, 4096, rope_multi_case, {16, 4, 7, F32, MROPE, SECT(2, 3, 3, 0), 4, 0}, 0},
    {"rope_multi mrope f32 [128, 3, 5] sections 16/24/24 (Qwen2-VL-2B)", "rope", T, 1e-7f, 4096, rope_multi_case, {128, 3, 5, F32, MROPE, SECT(16, 24, 24, 0), 4, 0}, 0},
    {"rope_multi mrope f16 [40, 2, 3] sections 4/6/5/1, n_rot 32 of 40", "rope", T, 1e-5f, 4096, rope_multi_case, {40, 2, 3, F16, MROPE, SECT(4, 6, 5, 1), 4, 0}, 0},
    {"rope_multi mrope f32 [34, 2, 5] sections 8/0/7 (an empty section), freq_scale 0.5", "rope", T, 1e-7f, 4096, rope_multi_case, {34, 2, 5, F32, MROPE, SECT(8, 0, 7, 0), 2, 0}, 0},
    {"rope_multi mrope f32 qkv view [32, 2, 7] sections 4/4/8", "rope", T, 1e-7f, 4096, rope_multi_case, {32, 2, 7, F32, MROPE, SECT(4, 4, 8, 0), 4, 1}, 0},
    {"rope_multi mrope f16 qkv view [16, 3, 9] sections 2/3/3", "rope", T, 1e-5f, 4096, rope_multi_case, {16, 3, 9, F16, MROPE, SECT(2, 3, 3, 0), 4, 1}, 0},
    {"rope_multi vision f32 [80, 2, 9] sections 20/20 (Qwen2-VL's ViT heads)", "rope", T, 1e-7f, 4096, rope_multi_case, {80, 2, 9, F32, VISION, SECT(20, 20, 0, 0), 4, 0}, 0},
    {"rope_multi vision f16 [16, 2, 5] sections 4/4", "rope", T, 1e-5f, 4096, rope_multi_case, {16, 2, 5, F16, VISION, SECT(4, 4, 0, 0), 4, 0}, 0},
    {"rope_multi vision f32 qkv view [16, 2, 7] sections 4/4", "rope", T, 1e-7f, 4096, rope_multi_case, {16, 2, 7, F32, VISION, SECT(4, 4, 0, 0), 4, 1}, 0},
    {"rope_multi vision f32 [24, 1, 3] sections 3/5/2/2, n_rot 24", "rope", T, 1e-7f, 4096, rope_multi_case, {24, 1, 3, F32, VISION, SECT(3, 5, 2, 2), 4, 0}, 0},
    // Qwen2-VL-2B: the language model's q at a 512-token prefill and one decode token; the
    // ViT's q over a 448 x 448 image (1024 patches).
    {"rope_multi mrope Qwen2-VL-2B [128, 12] decode", "rope", B, 1e-7f, 4096, rope_multi_case, {128, 12, 1, F32, MROPE, SECT(16, 24, 24, 0), 4, 0}, N_ROPE(128, 12, 1)},
    {"rope_multi mrope Qwen2-VL-2B [128, 12, 512] prefill", "rope", B, 1e-7f, 4096, rope_multi_case, {128, 12, 512, F32, MROPE, SECT(16, 24, 24, 0), 4, 0}, N_ROPE(128, 12, 512)},
    {"rope_multi vision Qwen2-VL-2B ViT [80, 16, 1024]", "rope", B, 1e-7f, 4096, rope_multi_case, {80, 16, 1024, F32, VISION, SECT(20, 20, 0, 0), 4, 0}, N_ROPE(80, 16, 1024)},
};
const uint32_t vki_cases_rope_count = sizeof vki_cases_rope / sizeof vki_cases_rope[0];
