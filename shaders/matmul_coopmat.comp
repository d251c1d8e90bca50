#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// Matrix-matrix product (prefill) on cooperative matrices (VK_NV_cooperative_matrix: tensor
// cores). A workgroup computes a TILE_M x TILE_N tile of y, stepping through K in TILE_K slabs:
// its threads decode the weight slab and load the x slab into shared memory as fp16, then each
// subgroup multiplies FRAG_M x FRAG_K by FRAG_K x FRAG_N fragments into ROWS x COLS fp32
// accumulator fragments: a (ROWS * FRAG_M) x (COLS * FRAG_N) block of the tile. The
// accumulators go out through a per-subgroup shared staging block, for the bounds, the bias
// and the activation.
//
// Operands are rounded to fp16 (the accumulation stays fp32): the lowering says so, and the
// conformance tests hold such plans to the fp16 tolerance.
//
// Shared layout: ws[r * LD + k] (a weight row's slab is contiguous: row-major A fragments),
// xs[c * LD + k] (column-major B fragments). LD = TILE_K + 8 halves keeps rows 16-byte aligned
// for the fragment loads and shifts consecutive rows across the banks.
#include "vki_abi.h"

layout(local_size_x = 128, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_TILE_M) const uint TILE_M = 64;
layout(constant_id = VKI_SPEC_MM_TILE_N) const uint TILE_N = 64;
layout(constant_id = VKI_SPEC_MM_TILE_K) const uint TILE_K = 32;
layout(constant_id = VKI_SPEC_MM_FRAG_M) const uint FRAG_M = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_N) const uint FRAG_N = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_K) const uint FRAG_K = 16;
#define LD (TILE_K + 8u)
#define SUB_M (ROWS * FRAG_M)          // a subgroup's block of the tile
#define SUB_N (COLS * FRAG_N)
#define SUBGROUPS_M (TILE_M / SUB_M)
#define SUBGROUPS (SUBGROUPS_M * (TILE_N / SUB_N)) // the workgroup's, as the lowering sized it
#define FRAG_ELEMS (FRAG_M * FRAG_N)

shared float16_t ws[TILE_M * LD];
shared float16_t xs[TILE_N * LD];
shared float stage[SUBGROUPS * FRAG_ELEMS];

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint sub_m = (sg % SUBGROUPS_M) * SUB_M, sub_n = (sg / SUBGROUPS_M) * SUB_N;
    const uint tile_m = gl_WorkGroupID.x * TILE_M, tile_n = gl_WorkGroupID.y * TILE_N;
    const uint b = gl_WorkGroupID.z;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);

    fcoopmatNV<32, gl_ScopeSubgroup, FRAG_M, FRAG_N> acc[ROWS * COLS];
    [[unroll]] for (uint i = 0u; i < ROWS * COLS; i++)
        acc[i] = fcoopmatNV<32, gl_ScopeSubgroup, FRAG_M, FRAG_N>(0.0);

    for (uint k0 = 0u; k0 < pc.K; k0 += TILE_K) {
        // Consecutive threads take consecutive quads of one row (the weights' and x's rows are
        // contiguous along k). Rows and columns past the end repeat the last one (never
        // stored); k past K is zero.
        for (uint q = tid; q < TILE_M * (TILE_K / 4u); q += nt) {
            uint r = q / (TILE_K / 4u), kq = 4u * (q % (TILE_K / 4u));
            vec4 v = w_quad_guarded(wbase + min(tile_m + r, pc.M - 1u) * pc.w_nb1, k0 + kq);
            [[unroll]] for (uint i = 0u; i < 4u; i++) ws[r * LD + kq + i] = float16_t(v[i]);
        }
        for (uint q = tid; q < TILE_N * (TILE_K / 4u); q += nt) {
            uint c = q / (TILE_K / 4u), kq = 4u * (q % (TILE_K / 4u));
            vec4 v = x_quad_guarded(xbase + min(tile_n + c, pc.N - 1u) * pc.x_nb1, k0 + kq);
            [[unroll]] for (uint i = 0u; i < 4u; i++) xs[c * LD + kq + i] = float16_t(v[i]);
        }
        barrier();
        [[unroll]] for (uint k = 0u; k < TILE_K; k += FRAG_K) {
            fcoopmatNV<16, gl_ScopeSubgroup, FRAG_M, FRAG_K> a[ROWS];
            [[unroll]] for (uint i = 0u; i < ROWS; i++)
                coopMatLoadNV(a[i], ws, (sub_m + i * FRAG_M) * LD + k, LD, false);
            [[unroll]] for (uint j = 0u; j < COLS; j++) {
                fcoopmatNV<16, gl_ScopeSubgroup, FRAG_K, FRAG_N> x;
                coopMatLoadNV(x, xs, (sub_n + j * FRAG_N) * LD + k, LD, true);
                [[unroll]] for (uint i = 0u; i < ROWS; i++)
                    acc[i * COLS + j] = coopMatMulAddNV(a[i], x, acc[i * COLS + j]);
            }
        }
        barrier();
    }

    // Each fragment through the subgroup's staging block (column-major: element (r, c) at
    // c * FRAG_M + r), then out with consecutive lanes on consecutive rows of y.
    const uint base = sg * FRAG_ELEMS;
    [[unroll]] for (uint i = 0u; i < ROWS; i++)
        [[unroll]] for (uint j = 0u; j < COLS; j++) {
            coopMatStoreNV(acc[i * COLS + j], stage, base, FRAG_M, true);
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
