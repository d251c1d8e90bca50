#version 450
#extension GL_GOOGLE_include_directive : require
// Matrix-vector products (decode: N = 1, and small N): memory-bound, so the weights are read
// once, as stored, and decoded in registers. A workgroup computes ROWS rows for COLS columns of
// x; its threads split K into chunks (quant.glsl: a whole block for the 32-element formats)
// and each accumulates all ROWS x COLS outputs over its chunks; the partial sums are then
// reduced with subgroupAdd (SUBGROUP=1, the workgroup being one subgroup) or a shared-memory
// tree.
// With IDS (matmul_id) the weighted combine of a decode's slots may be folded in
// (VKI_MM_EPI_COMBINE, abi_moe.h): workgroup z is then a token, whose rows the workgroup owns
// across all its slots, so the sum needs no second pass and no atomics (main's combine branch).
// With INT_DOT (Q8_0, Q4_0 weights; the tuning's matvec_int_dot) the thread that loads an x
// chunk rounds it to int8 in registers for all its rows, and the products are integer dot
// products of packed bytes (matmul_common.glsl's ACCUMULATE_CHUNK_INT8): every workgroup rounds
// x again, which is cheap beside its rows' bytes, and needs no extra dispatch or buffer.
#if SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#if defined(INT_DOT) && INT_DOT
#extension GL_EXT_spirv_intrinsics : require
#endif
#include "vki_abi.h"

layout(local_size_x = 32, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#include "matmul_common.glsl"

#define RC (ROWS * COLS)
#if !SUBGROUP
shared float red[RC * gl_WorkGroupSize.x];
#endif

#if defined(IDS) && IDS
// A folded combine's sum (eps = its scale, then the residual) for output row `row` of token z.
void store_combined(uint row, float v)
{
    uint e = row + pc.M * gl_WorkGroupID.z; // y [M, N], y_ld = M
    v *= pc.eps;
    if ((pc.epi & VKI_MM_EPI_RES) != 0u) v += res[pc.r_off + e];
    y[pc.y_off + e] = v;
}
#endif

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * ROWS;
    if (row0 >= pc.M) return; // padding of the 2-D grid: whole workgroups
#if defined(IDS) && IDS
    const bool combine = (pc.epi & VKI_MM_EPI_COMBINE) != 0u;
#else
    const bool combine = false;
#endif
    const uint groups = (pc.N + COLS - 1u) / COLS;
    const uint col0 = combine ? 0u : (gl_WorkGroupID.z % groups) * COLS, b = gl_WorkGroupID.z / groups;
    // Rows and columns past the end repeat the last one: loads stay in bounds, no divergence.
#define wrow(r) (wbase + min(row0 + (r), pc.M - 1u) * pc.w_nb1)
    float acc[RC];
    for (uint i = 0u; i < RC; i++) acc[i] = 0.0;
    const uint chunks = pc.K / WQ_CHUNK;
#if defined(IDS) && IDS
    if (combine) {
        // The threads take the token's (slot, chunk) pairs in turn, each adding its chunk's
        // products times the slot's routing weight (bound as the bias), so that the one
        // reduction below gives the weighted sum over the slots. The slots' chunks load side by
        // side: a down product's K often has fewer chunks than the workgroup has threads, and
        // the threads one slot would leave idle take the next slot's. The fold binds every
        // expert (e_first 0, e_count E): batch_bases is always true, and a bad id reads the
        // first expert with a weight of zero (moe_combine of the zeros matmul_id stores).
        const uint tok = gl_WorkGroupID.z * pc.ne2;
        for (uint q = tid; q < chunks * pc.ne2; q += nt) {
            uint j = q / chunks, ch = q - j * chunks, wbase, xbase;
            batch_bases(tok + j, wbase, xbase);
            uint xcol[COLS];
            for (uint c = 0u; c < COLS; c++) xcol[c] = xbase;
            float part[RC];
            for (uint i = 0u; i < RC; i++) part[i] = 0.0;
            ACCUMULATE_CHUNK(ch, wrow, xcol, part)
            float wj = id_zero ? 0.0 : bias[pc.b_off + tok + j];
            for (uint i = 0u; i < RC; i++) acc[i] += wj * part[i];
        }
#if !WQ_QUANT
        const uint tail = pc.K - chunks * WQ_CHUNK;
        for (uint q = tid; q < tail * pc.ne2; q += nt) {
            uint j = q / tail, k = chunks * WQ_CHUNK + q - j * tail, wbase, xbase;
            batch_bases(tok + j, wbase, xbase);
            uint xcol[COLS];
            for (uint c = 0u; c < COLS; c++) xcol[c] = xbase;
            float part[RC];
            for (uint i = 0u; i < RC; i++) part[i] = 0.0;
            ACCUMULATE_ELEMENT(k, wrow, xcol, part)
            float wj = id_zero ? 0.0 : bias[pc.b_off + tok + j];
            for (uint i = 0u; i < RC; i++) acc[i] += wj * part[i];
        }
#endif
    } else
#endif
    {
        uint wbase, xbase;
        if (!batch_bases(b, wbase, xbase)) return; // matmul_id: another slice's expert
        uint xcol[COLS];
        for (uint c = 0u; c < COLS; c++) xcol[c] = xbase + min(col0 + c, pc.N - 1u) * pc.x_nb1;
#if defined(INT_DOT) && INT_DOT
        for (uint ch = tid; ch < chunks; ch += nt) ACCUMULATE_CHUNK_INT8(ch, wrow, xcol, acc)
#else
        for (uint ch = tid; ch < chunks; ch += nt) ACCUMULATE_CHUNK(ch, wrow, xcol, acc)
#endif
#if !WQ_QUANT
        for (uint k = chunks * WQ_CHUNK + tid; k < pc.K; k += nt) ACCUMULATE_ELEMENT(k, wrow, xcol, acc)
#endif
    }

#if SUBGROUP
    for (uint i = 0u; i < RC; i++) acc[i] = subgroupAdd(acc[i]);
    // Every thread holds every sum now; thread t stores sums t, t + nt, ... (one dynamic
    // index per store, once per workgroup; the epilogue's code is there once per store slot
    // rather than once per sum).
    for (uint s = 0u; s < (RC + nt - 1u) / nt; s++) {
        uint i = s * nt + tid, r = i / COLS, c = i % COLS;
        float v = acc[min(i, RC - 1u)];
        if (i < RC && row0 + r < pc.M && col0 + c < pc.N) {
#if defined(IDS) && IDS
            if (combine) store_combined(row0 + r, v); else
#endif
            store_y(row0 + r, col0 + c, b, v);
        }
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
        if (row0 + r < pc.M && col0 + c < pc.N) {
#if defined(IDS) && IDS
            if (combine) store_combined(row0 + r, red[i * nt]); else
#endif
            store_y(row0 + r, col0 + c, b, red[i * nt]);
        }
    }
#endif
}
