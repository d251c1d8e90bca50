#version 450
#extension GL_GOOGLE_include_directive : require
// Matrix-vector products (decode: N = 1, and small N): memory-bound, so the weights are read
// once, as stored, and decoded in registers. A workgroup computes ROWS rows for COLS columns of
// x; its threads split K into chunks (quant.glsl: a whole block for the 32-element formats)
// and each accumulates all ROWS x COLS outputs over its chunks; the partial sums are then
// reduced with subgroupAdd (SUBGROUP=1, the workgroup being one subgroup) or a shared-memory
// tree.
#if SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "vki_abi.h"

layout(local_size_x = 32, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

#define RC (ROWS * COLS)
#if !SUBGROUP
shared float red[RC * gl_WorkGroupSize.x];
#endif

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * ROWS;
    if (row0 >= pc.M) return; // padding of the 2-D grid: whole workgroups
    const uint groups = (pc.N + COLS - 1u) / COLS;
    const uint col0 = (gl_WorkGroupID.z % groups) * COLS, b = gl_WorkGroupID.z / groups;
    uint wbase, xbase;
    if (!batch_bases(b, wbase, xbase)) return; // matmul_id: another slice's expert

    // Rows and columns past the end repeat the last one: loads stay in bounds, no divergence.
#define wrow(r) (wbase + min(row0 + (r), pc.M - 1u) * pc.w_nb1)
    uint xcol[COLS];
    for (uint c = 0u; c < COLS; c++) xcol[c] = xbase + min(col0 + c, pc.N - 1u) * pc.x_nb1;

    float acc[RC];
    for (uint i = 0u; i < RC; i++) acc[i] = 0.0;
    const uint chunks = pc.K / WQ_CHUNK;
    for (uint ch = tid; ch < chunks; ch += nt) ACCUMULATE_CHUNK(ch, wrow, xcol, acc)
#if !WQ_QUANT
    for (uint k = chunks * WQ_CHUNK + tid; k < pc.K; k += nt) ACCUMULATE_ELEMENT(k, wrow, xcol, acc)
#endif

#if SUBGROUP
    for (uint i = 0u; i < RC; i++) acc[i] = subgroupAdd(acc[i]);
    // Every thread holds every sum now; thread t stores sums t, t + nt, ... (one dynamic
    // index per store, once per workgroup; the epilogue's code is there once per store slot
    // rather than once per sum).
    for (uint s = 0u; s < (RC + nt - 1u) / nt; s++) {
        uint i = s * nt + tid, r = i / COLS, c = i % COLS;
        float v = acc[min(i, RC - 1u)];
        if (i < RC && row0 + r < pc.M && col0 + c < pc.N) store_y(row0 + r, col0 + c, b, v);
    }
#else
    for (uint i = 0u; i < RC; i++) red[i * nt + tid] = acc[i];
    for (uint s = nt / 2u; s > 0u; s >>= 1) { // nt is a power of two
        barrier();
        if (tid < s)
            for (uint i = 0u; i < RC; i++) red[i * nt + tid] += red[i * nt + tid + s];
    }
    barrier();
    for (uint i = tid; i < RC; i += nt) {
        uint r = i / COLS, c = i % COLS;
        if (row0 + r < pc.M && col0 + c < pc.N) store_y(row0 + r, col0 + c, b, red[i * nt]);
    }
#endif
}
