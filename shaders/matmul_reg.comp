#version 450
#extension GL_GOOGLE_include_directive : require
// Matrix-matrix product without shared memory or barriers, for devices where barriers cost
// more than they save (lavapipe runs a workgroup's invocations as a loop and a barrier as a
// coroutine switch). A workgroup computes a TILE_M x TILE_N tile of y; each thread a ROWS x COLS
// register tile of rows tm + i * (TILE_M / ROWS) and columns tn + j * (TILE_N / COLS),
// reading the weights as stored and decoding them in registers, chunk by chunk.
#include "vki_abi.h"

layout(local_size_x = 16, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_TILE_M) const uint TILE_M = 16;
layout(constant_id = VKI_SPEC_MM_TILE_N) const uint TILE_N = 16;
#define STRIDE_M (TILE_M / ROWS)
#define STRIDE_N (TILE_N / COLS)

void main()
{
    const uint tid = gl_LocalInvocationID.x, tm = tid % STRIDE_M, tn = tid / STRIDE_M;
    const uint row0 = gl_WorkGroupID.x * TILE_M + tm, col0 = gl_WorkGroupID.y * TILE_N + tn;
    const uint b = gl_WorkGroupID.z;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);

    // Rows and columns past the end repeat the last one: loads stay in bounds.
#define wrow(i) (wbase + min(row0 + (i) * STRIDE_M, pc.M - 1u) * pc.w_nb1)
    uint xcol[COLS];
    for (uint j = 0u; j < COLS; j++) xcol[j] = xbase + min(col0 + j * STRIDE_N, pc.N - 1u) * pc.x_nb1;

    float acc[ROWS * COLS];
    for (uint i = 0u; i < ROWS * COLS; i++) acc[i] = 0.0;
    const uint chunks = pc.K / WQ_CHUNK;
    for (uint ch = 0u; ch < chunks; ch++) ACCUMULATE_CHUNK(ch, wrow, xcol, acc)
#if !WQ_QUANT
    for (uint k = chunks * WQ_CHUNK; k < pc.K; k++) ACCUMULATE_ELEMENT(k, wrow, xcol, acc)
#endif

    for (uint i = 0u; i < ROWS; i++)
        for (uint j = 0u; j < COLS; j++) {
            uint row = row0 + i * STRIDE_M, col = col0 + j * STRIDE_N;
            if (row < pc.M && col < pc.N) store_y(row, col, b, acc[i * COLS + j]);
        }
}
