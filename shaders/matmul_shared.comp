#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Matrix-matrix product (prefill), tiled through shared memory. A workgroup computes a
// TILE_M x TILE_N tile of y, stepping through K in TILE_K slabs: its threads decode the
// weight slab (TILE_M rows) and load the x slab (TILE_N columns) into shared memory as fp32,
// then each thread accumulates a ROWS x COLS register tile in fp32 from them.
//
// Shared layout is k-major, s[k * TILE + r]: a slab is written with consecutive threads on
// consecutive rows, and read with the threads of a subgroup on consecutive rows (rows
// tm + i * TILE_M / ROWS), both without bank conflicts.
#include "vki_abi.h"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_TILE_M) const uint TILE_M = 64;
layout(constant_id = VKI_SPEC_MM_TILE_N) const uint TILE_N = 64;
layout(constant_id = VKI_SPEC_MM_TILE_K) const uint TILE_K = 16;
#define STRIDE_M (TILE_M / ROWS)
#define STRIDE_N (TILE_N / COLS)

shared float ws[TILE_K * TILE_M];
shared float xs[TILE_K * TILE_N];

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint tm = tid % STRIDE_M, tn = tid / STRIDE_M;
    const uint tile_m = gl_WorkGroupID.x * TILE_M, tile_n = gl_WorkGroupID.y * TILE_N;
    const uint b = gl_WorkGroupID.z;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);

    float acc[ROWS * COLS];
    [[unroll]] for (uint i = 0u; i < ROWS * COLS; i++) acc[i] = 0.0;

    for (uint k0 = 0u; k0 < pc.K; k0 += TILE_K) {
        // Rows and columns past the end repeat the last one (never stored); k past K is zero.
        for (uint q = tid; q < TILE_M * (TILE_K / 4u); q += nt) {
            uint r = q % TILE_M, kq = 4u * (q / TILE_M);
            vec4 v = w_quad_guarded(wbase + min(tile_m + r, pc.M - 1u) * pc.w_nb1, k0 + kq);
            [[unroll]] for (uint i = 0u; i < 4u; i++) ws[(kq + i) * TILE_M + r] = v[i];
        }
        for (uint q = tid; q < TILE_N * (TILE_K / 4u); q += nt) {
            uint c = q % TILE_N, kq = 4u * (q / TILE_N);
            vec4 v = x_quad_guarded(xbase + min(tile_n + c, pc.N - 1u) * pc.x_nb1, k0 + kq);
            [[unroll]] for (uint i = 0u; i < 4u; i++) xs[(kq + i) * TILE_N + c] = v[i];
        }
        barrier();
        [[unroll]] for (uint k = 0u; k < TILE_K; k++) {
            float a[ROWS], x[COLS];
            [[unroll]] for (uint i = 0u; i < ROWS; i++) a[i] = ws[k * TILE_M + tm + i * STRIDE_M];
            [[unroll]] for (uint j = 0u; j < COLS; j++) x[j] = xs[k * TILE_N + tn + j * STRIDE_N];
            [[unroll]] for (uint i = 0u; i < ROWS; i++)
                [[unroll]] for (uint j = 0u; j < COLS; j++) acc[i * COLS + j] += a[i] * x[j];
        }
        barrier();
    }

    [[unroll]] for (uint i = 0u; i < ROWS; i++)
        [[unroll]] for (uint j = 0u; j < COLS; j++) {
            uint row = tile_m + tm + i * STRIDE_M, col = tile_n + tn + j * STRIDE_N;
            if (row < pc.M && col < pc.N) store_y(row, col, b, acc[i * COLS + j]);
        }
}
