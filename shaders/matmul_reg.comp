#version 450
#extension GL_GOOGLE_include_directive : require
// Matrix-matrix product without shared memory or barriers, for devices where barriers cost
// more than they save (lavapipe runs a workgroup's invocations as a loop and a barrier as a
// coroutine switch). A workgroup computes a TILE_M x TILE_N tile of y; each thread a
// THREAD_M x THREAD_N register tile of rows tm + i * (TILE_M / THREAD_M) and columns
// tn + j * (TILE_N / THREAD_N), reading the weights as stored and decoding them in registers.
// Each decoded pair of weight quads is used THREAD_N times, each x quad THREAD_M times.
#include "vki_abi.h"

layout(local_size_x = 16, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_TILE_M) const uint TILE_M = 16;
layout(constant_id = VKI_SPEC_MM_TILE_N) const uint TILE_N = 16;
layout(constant_id = VKI_SPEC_MM_THREAD_M) const uint THREAD_M = 4;
layout(constant_id = VKI_SPEC_MM_THREAD_N) const uint THREAD_N = 4;
#define STRIDE_M (TILE_M / THREAD_M)
#define STRIDE_N (TILE_N / THREAD_N)

void main()
{
    const uint tid = gl_LocalInvocationID.x, tm = tid % STRIDE_M, tn = tid / STRIDE_M;
    const uint row0 = gl_WorkGroupID.x * TILE_M + tm, col0 = gl_WorkGroupID.y * TILE_N + tn;
    const uint b = gl_WorkGroupID.z;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);

    // Rows and columns past the end repeat the last one: loads stay in bounds.
    uint wrow[THREAD_M], xcol[THREAD_N];
    for (uint i = 0u; i < THREAD_M; i++) wrow[i] = wbase + min(row0 + i * STRIDE_M, pc.M - 1u) * pc.w_nb1;
    for (uint j = 0u; j < THREAD_N; j++) xcol[j] = xbase + min(col0 + j * STRIDE_N, pc.N - 1u) * pc.x_nb1;

    float acc[THREAD_M * THREAD_N];
    for (uint i = 0u; i < THREAD_M * THREAD_N; i++) acc[i] = 0.0;
    const uint pairs = pair_count();
    for (uint p = 0u; p < pairs; p++) {
        uint kA, kB;
        pair_pos(p, kA, kB);
        vec4 xa[THREAD_N], xb[THREAD_N];
        for (uint j = 0u; j < THREAD_N; j++) {
            xa[j] = x_quad(xcol[j] + kA);
            xb[j] = x_quad(xcol[j] + kB);
        }
        for (uint i = 0u; i < THREAD_M; i++) {
            vec4 wa = w_quad(wrow[i], kA), wb = w_quad(wrow[i], kB);
            for (uint j = 0u; j < THREAD_N; j++) acc[i * THREAD_N + j] += dot(wa, xa[j]) + dot(wb, xb[j]);
        }
    }
#if !WQ_QUANT
    for (uint k = pairs * 8u; k < pc.K; k++) // float rows of K % 8 != 0
        for (uint i = 0u; i < THREAD_M; i++)
            for (uint j = 0u; j < THREAD_N; j++)
                acc[i * THREAD_N + j] += w_elem(wrow[i], k) * x_elem(xcol[j] + k);
#endif

    for (uint i = 0u; i < THREAD_M; i++)
        for (uint j = 0u; j < THREAD_N; j++) {
            uint row = row0 + i * STRIDE_M, col = col0 + j * STRIDE_N;
            if (row < pc.M && col < pc.N) store_y(row, col, b, acc[i * THREAD_N + j]);
        }
}
