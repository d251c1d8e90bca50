#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Matrix-vector products (decode) for CPU devices, where a workgroup is a loop over SIMD
// vectors of threads and what costs is instructions, not memory: lavapipe's tuning. A
// workgroup of one subgroup computes one row per thread (ROWS = the local size), one row after
// the other; its threads split the row's K into chunks (quant.glsl), KCHUNKS each, whose x they
// load once, before the rows, and hold in registers. The loops over a row's chunks are unrolled,
// so that x and the decoded weights need no indexed arrays. Weights and x are read as 16-byte
// texels (WIDE, matmul_common.glsl): consecutive threads read consecutive chunks, so a row
// streams through memory in order. A row's partial sums meet in a subgroupAdd; thread r keeps
// row r's and stores it, so the epilogue (bias, activation, residual) runs once per workgroup.
// K must be at most KCHUNKS x local size chunks (the lowering checks); COLS is 1 (the grid's z
// runs over the columns and batches).
#include "vki_abi.h"

layout(local_size_x = 8, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#define WIDE 1
#include "matmul_common.glsl"

layout(constant_id = VKI_SPEC_MM_KCHUNKS) const uint KCHUNKS = 1;

// v . x over a chunk, in four partial sums.
float dot_chunk(float v[WQ_CHUNK], float x[WQ_CHUNK])
{
    vec4 s = vec4(0.0);
    [[unroll]] for (uint i = 0u; i < WQ_CHUNK; i += 4u)
        s = fma(vec4(v[i], v[i + 1u], v[i + 2u], v[i + 3u]), vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), s);
    return (s.x + s.y) + (s.z + s.w);
}

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * nt;
    if (row0 >= pc.M) return; // padding of the 2-D grid: whole workgroups
    const uint col = gl_WorkGroupID.z % pc.N, b = gl_WorkGroupID.z / pc.N;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);
    const uint xcol = xbase + col * pc.x_nb1, chunks = pc.K / WQ_CHUNK;

    // This thread's chunks tid, tid + nt, ...; past the end, the last one again (its sum is
    // then dropped), so that loads stay in bounds without branches.
    float xv[KCHUNKS][WQ_CHUNK];
    [[unroll]] for (uint c = 0u; c < KCHUNKS; c++)
        x_chunk(xcol, min(tid + nt * c, max(chunks, 1u) - 1u), xv[c]);

    float mine = 0.0;
    for (uint r = 0u; r < nt; r++) {
        const uint wr = wbase + min(row0 + r, pc.M - 1u) * pc.w_nb1;
        float s = 0.0;
        [[unroll]] for (uint c = 0u; c < KCHUNKS; c++) {
            uint ch = tid + nt * c;
            float wv[WQ_CHUNK];
            w_chunk(wr, min(ch, max(chunks, 1u) - 1u), wv);
            float d = dot_chunk(wv, xv[c]);
            s += ch < chunks ? d : 0.0;
        }
#if !WQ_QUANT
        for (uint k = chunks * WQ_CHUNK + tid; k < pc.K; k += nt) s += w_elem(wr, k) * x_elem(xcol + k);
#endif
        s = subgroupAdd(s);
        if (r == tid) mine = s;
    }
    if (row0 + tid < pc.M) store_y(row0 + tid, col, b, mine);
}
