#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "coopmat.glsl"
// Matrix-matrix product (prefill) on cooperative matrices (matrix cores): VK_KHR_cooperative_matrix
// in the variants built with COOPMAT_KHR (matmul_<w>_cmk), VK_NV_cooperative_matrix in the
// others (matmul_<w>_cm), emulated fragments without either in matmul_<w>_cme (the tests on a
// device without matrix cores); coopmat.glsl maps the names. A workgroup computes a TILE_M x TILE_N
// tile of y, stepping through K in TILE_K slabs: its threads decode the weight slab and load
// the x slab into shared memory as fp16, then each subgroup multiplies FRAG_M x FRAG_K by
// FRAG_K x FRAG_N fragments into ROWS x COLS fp32 accumulator fragments: a (ROWS * FRAG_M) x
// (COLS * FRAG_N) block of the tile. The accumulators go out through a per-subgroup shared
// staging block, for the bounds, the bias and the activation.
//
// BUFFERS = 2 (where the lowering finds the shared memory): the slabs are double-buffered,
// the next one loaded into the buffer the previous one used while this one is multiplied, so
// that one barrier per slab suffices and a subgroup's loads overlap the others' multiplies.
// BUFFERS = 1: one buffer, a barrier before and after each load.
//
// Operands are rounded to fp16 (the accumulation stays fp32): the lowering says so, and the
// conformance tests hold such plans to the fp16 tolerance.
//
// Shared layout: ws[b * TILE_M * LD + r * LD + k] (a weight row's slab is contiguous: row-major
// A fragments), xs[b * TILE_N * LD + c * LD + k] (column-major B fragments), b the buffer.
// LD = TILE_K + 8 halves keeps rows 16-byte aligned for the fragment loads and shifts
// consecutive rows across the banks.
#include "vki_abi.h"

layout(local_size_x = 128, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_TILE_M) const uint TILE_M = 64;
layout(constant_id = VKI_SPEC_MM_TILE_N) const uint TILE_N = 64;
layout(constant_id = VKI_SPEC_MM_TILE_K) const uint TILE_K = 32;
layout(constant_id = VKI_SPEC_MM_FRAG_M) const uint FRAG_M = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_N) const uint FRAG_N = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_K) const uint FRAG_K = 16;
layout(constant_id = VKI_SPEC_MM_BUFFERS) const uint BUFFERS = 1;
#define LD (TILE_K + 8u)
#define SUB_M (ROWS * FRAG_M)          // a subgroup's block of the tile
#define SUB_N (COLS * FRAG_N)
#define SUBGROUPS_M (TILE_M / SUB_M)
#define SUBGROUPS (SUBGROUPS_M * (TILE_N / SUB_N)) // the workgroup's, as the lowering sized it
#define FRAG_ELEMS (FRAG_M * FRAG_N)

shared float16_t ws[BUFFERS * TILE_M * LD];
shared float16_t xs[BUFFERS * TILE_N * LD];
shared float stage[SUBGROUPS * FRAG_ELEMS];

// The slab of weights and x at k0 into buffer `buf`, by all threads. Consecutive threads take
// consecutive quads of one row (the weights' and x's rows are contiguous along k). Rows and
// columns past the end repeat the last one (never stored); k past K is zero.
void load_slab(uint k0, uint buf, uint wbase, uint xbase, uint tile_m, uint tile_n)
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint wb = buf * TILE_M * LD, xb = buf * TILE_N * LD;
    for (uint q = tid; q < TILE_M * (TILE_K / 4u); q += nt) {
        uint r = q / (TILE_K / 4u), kq = 4u * (q % (TILE_K / 4u));
        vec4 v = w_quad_guarded(wbase + min(tile_m + r, pc.M - 1u) * pc.w_nb1, k0 + kq);
        [[unroll]] for (uint i = 0u; i < 4u; i++) ws[wb + r * LD + kq + i] = float16_t(v[i]);
    }
    for (uint q = tid; q < TILE_N * (TILE_K / 4u); q += nt) {
        uint c = q / (TILE_K / 4u), kq = 4u * (q % (TILE_K / 4u));
        vec4 v = x_quad_guarded(xbase + min(tile_n + c, pc.N - 1u) * pc.x_nb1, k0 + kq);
        [[unroll]] for (uint i = 0u; i < 4u; i++) xs[xb + c * LD + kq + i] = float16_t(v[i]);
    }
}

void main()
{
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint tile_m = gl_WorkGroupID.x * TILE_M, tile_n = gl_WorkGroupID.y * TILE_N;
    const uint b = gl_WorkGroupID.z;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);

    // The lowering sized the workgroup as SUBGROUPS subgroups of the profile's size. A driver
    // that runs it in other subgroups (no subgroup size control, or a size it picks for
    // cooperative matrices itself) still gets every block computed: in passes of
    // gl_NumSubgroups blocks, the subgroups past the last block only loading. One pass where
    // the sizes agree.
    const uint passes = (SUBGROUPS + gl_NumSubgroups - 1u) / gl_NumSubgroups;
    for (uint pass = 0u; pass < passes; pass++) {
        const uint blk = sg + pass * gl_NumSubgroups;
        const bool working = blk < SUBGROUPS; // uniform in the subgroup, as cm_* need
        const uint sub_m = (blk % SUBGROUPS_M) * SUB_M, sub_n = (blk / SUBGROUPS_M) * SUB_N;
        cm_acc(FRAG_M, FRAG_N) acc[ROWS * COLS];
        [[unroll]] for (uint i = 0u; i < ROWS * COLS; i++)
            acc[i] = cm_acc_zero(FRAG_M, FRAG_N);

        // Buffer 0 is free: the last slab's multiplies ended before the last barrier.
        load_slab(0u, 0u, wbase, xbase, tile_m, tile_n);
        barrier();
        uint buf = 0u;
        for (uint k0 = 0u; k0 < pc.K; k0 += TILE_K) {
            // Two buffers: the next slab goes where the previous one was, which every
            // subgroup finished reading before the last barrier.
            const bool more = k0 + TILE_K < pc.K;
            const uint next = BUFFERS > 1u ? buf ^ 1u : buf;
            if (BUFFERS > 1u && more) load_slab(k0 + TILE_K, next, wbase, xbase, tile_m, tile_n);
            const uint wb = buf * TILE_M * LD, xb = buf * TILE_N * LD;
            if (working) {
                [[unroll]] for (uint k = 0u; k < TILE_K; k += FRAG_K) {
                    cm_a(FRAG_M, FRAG_K) a[ROWS];
                    [[unroll]] for (uint i = 0u; i < ROWS; i++)
                        cm_load(a[i], ws, wb + (sub_m + i * FRAG_M) * LD + k, LD, CM_ROW_MAJOR);
                    [[unroll]] for (uint j = 0u; j < COLS; j++) {
                        cm_b(FRAG_K, FRAG_N) x;
                        cm_load(x, xs, xb + (sub_n + j * FRAG_N) * LD + k, LD, CM_COL_MAJOR);
                        [[unroll]] for (uint i = 0u; i < ROWS; i++)
                            acc[i * COLS + j] = cm_mul_add(a[i], x, acc[i * COLS + j]);
                    }
                }
            }
            barrier();
            if (BUFFERS == 1u && more) { // one buffer: overwritten once every subgroup read it
                load_slab(k0 + TILE_K, next, wbase, xbase, tile_m, tile_n);
                barrier();
            }
            buf = next;
        }

        // Each fragment through the block's staging area (column-major: element (r, c) at
        // c * FRAG_M + r), then out with consecutive lanes on consecutive rows of y.
        if (working) {
            const uint base = blk * FRAG_ELEMS;
            [[unroll]] for (uint i = 0u; i < ROWS; i++)
                [[unroll]] for (uint j = 0u; j < COLS; j++) {
                    cm_store(acc[i * COLS + j], stage, base, FRAG_M, CM_COL_MAJOR);
                    subgroupMemoryBarrierShared();
                    subgroupBarrier();
                    for (uint e = lane; e < FRAG_ELEMS; e += gl_SubgroupSize) {
                        uint row = tile_m + sub_m + i * FRAG_M + e % FRAG_M;
                        uint col = tile_n + sub_n + j * FRAG_N + e / FRAG_M;
                        if (row < pc.M && col < pc.N) store_y(row, col, b, stage[base + e]);
                    }
                    subgroupBarrier();
                }
        }
    }
}
