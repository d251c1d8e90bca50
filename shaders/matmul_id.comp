#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// matmul_id's batch (prefill): the (slot, token) pairs grouped by expert (moe_route.comp), a
// workgroup computes a TILE_M x TILE_N tile of one expert's product with the x columns of up
// to TILE_N of its pairs, so that an expert's weights are read once per tile of its pairs
// rather than once per pair. Workgroup y is the tile of the route (r, bound as ids; those past
// the route's tile count exit at once), x the block of rows. The tiling is matmul_shared's
// (SHARED=1: slabs of weights and x staged in shared memory) or matmul_reg's (SHARED=0:
// registers only, no barriers), over gathered columns.
#include "vki_abi.h"

layout(local_size_x = 16, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#define IDS 1
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_TILE_M) const uint TILE_M = 16;
layout(constant_id = VKI_SPEC_MM_TILE_N) const uint TILE_N = 16;
#define STRIDE_M (TILE_M / ROWS)
#define STRIDE_N (TILE_N / COLS)

#if SHARED
layout(constant_id = VKI_SPEC_MM_TILE_K) const uint TILE_K = 16;
shared float ws[TILE_K * TILE_M];
shared float xs[TILE_K * TILE_N];
shared uint xb[TILE_N]; // where the x column of each of the tile's pairs starts
#endif

// Pair c of the tile (its last for c past the count: loads stay in bounds), as b = j + k n.
uint tile_pair(uint first, uint count, uint c) { return uint(ids[pc.i_off + first + min(c, count - 1u)]); }
uint pair_x(uint b) { return pc.x_off + (b % pc.ne2) * pc.x_nb2 + (b / pc.ne2) * pc.x_nb3; }

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint tile = gl_WorkGroupID.y;
    if (tile >= uint(ids[0])) return; // the whole workgroup, before any barrier
    const uint expert = uint(ids[1u + 3u * tile]), first = uint(ids[2u + 3u * tile]);
    const uint count = uint(ids[3u + 3u * tile]);
    const uint wbase = pc.w_off + expert * pc.w_nb2;
    const uint tm = tid % STRIDE_M, tn = tid / STRIDE_M;

    float acc[ROWS * COLS];
    [[unroll]] for (uint i = 0u; i < ROWS * COLS; i++) acc[i] = 0.0;
#if SHARED
    const uint tile_m = gl_WorkGroupID.x * TILE_M;
    for (uint c = tid; c < TILE_N; c += nt) xb[c] = pair_x(tile_pair(first, count, c));
    barrier();
    for (uint k0 = 0u; k0 < pc.K; k0 += TILE_K) {
        // Rows past the end repeat the last one (never stored); k past K is zero.
        for (uint q = tid; q < TILE_M * (TILE_K / 4u); q += nt) {
            uint r = q % TILE_M, kq = 4u * (q / TILE_M);
            vec4 v = w_quad_guarded(wbase + min(tile_m + r, pc.M - 1u) * pc.w_nb1, k0 + kq);
            [[unroll]] for (uint i = 0u; i < 4u; i++) ws[(kq + i) * TILE_M + r] = v[i];
        }
        for (uint q = tid; q < TILE_N * (TILE_K / 4u); q += nt) {
            uint c = q % TILE_N, kq = 4u * (q / TILE_N);
            vec4 v = x_quad_guarded(xb[c], k0 + kq);
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
    const uint row0 = tile_m + tm;
#else
    const uint row0 = gl_WorkGroupID.x * TILE_M + tm;
#define wrow(i) (wbase + min(row0 + (i) * STRIDE_M, pc.M - 1u) * pc.w_nb1)
    uint xcol[COLS];
    for (uint j = 0u; j < COLS; j++) xcol[j] = pair_x(tile_pair(first, count, tn + j * STRIDE_N));
    const uint chunks = pc.K / WQ_CHUNK;
    for (uint ch = 0u; ch < chunks; ch++) ACCUMULATE_CHUNK(ch, wrow, xcol, acc)
#if !WQ_QUANT
    for (uint k = chunks * WQ_CHUNK; k < pc.K; k++) ACCUMULATE_ELEMENT(k, wrow, xcol, acc)
#endif
#endif

    // Column c of the tile is pair tile_pair(c) of y [M, k, N]: store_y's batch, one column.
    [[unroll]] for (uint j = 0u; j < COLS; j++) {
        uint c = tn + j * STRIDE_N, b = tile_pair(first, count, c);
        [[unroll]] for (uint i = 0u; i < ROWS; i++) {
            uint row = row0 + i * STRIDE_M;
            if (row < pc.M && c < count) store_y(row, 0u, b, acc[i * COLS + j]);
        }
    }
}
