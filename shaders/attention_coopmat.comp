#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "coopmat.glsl"
// Fused attention on cooperative matrices (matrix cores), FlashAttention-2 style, for long query
// blocks: prefill and the U-Net's self- and cross-attention. Variants attention_cmk
// (VK_KHR_cooperative_matrix), attention_cm (VK_NV_), attention_cme (emulated fragments, the
// tests on a device without matrix cores); coopmat.glsl maps the names.
//
// Workgroup (x, y) takes rows [x ROWS, (x + 1) ROWS) of kv head y (rows are query * group +
// head in the group, as in attention_tiled.comp, so grouped-query heads share the K and V
// loads); subgroup s owns rows [s FRAG_M, (s + 1) FRAG_M) of them and does every per-row step
// for them itself, so that only the K and V tiles need the workgroup's barriers. Its queries,
// pre-scaled and rounded to fp16, are loaded once into A fragments (the head dimension zero-padded
// to DP, a multiple of the fragments). For each tile of COLS kv positions (staged in shared
// memory as fp16, zeros past the end and in the padding):
//   S = Q K^T in fp32 accumulators (K^T: column-major B fragments of the K tile), stored to ss;
//   per row (one lane a row): mask, causal and position bounds, the running max m and sum l
//   (fp32), P = exp(S - m) as fp16 into ps, and the rescale a = exp(m_old - m_new);
//   O = a O + P V: O is kept in shared memory (os, fp32), the subgroup's rows scaled by their a
//   there and then loaded as accumulators, multiplied onto, and stored back. Cooperative
//   matrices cannot scale an accumulator's rows by different factors (neither extension exposes
//   an element's row), so the per-row rescale goes through shared memory either way; keeping O
//   there also frees the registers that D / FRAG_N accumulators would hold.
// At the end each row's O / l is written (zeros where no position was visible, l = 0, exactly as
// the other kernels and the reference). Sums are fp32; the operands of the products are fp16,
// which the lowering declares (fp16 tolerance in the tests).
//
// The lowering sizes the workgroup as ROWS / FRAG_M subgroups of a size it pins (or the device's
// only size), so that each subgroup has its rows; subgroups past them only load.
//
// Shared layout (halves unless said): kvs[c * LDD + d] the K tile, kvs[(COLS + c) * LDD + d] the
// V tile (row-major: K^T as column-major B, V as row-major B); before the first tile the
// queries, qs rows at kvs[r * LDD] (ROWS <= 2 COLS, the lowering checks); ps[r * LDP + c];
// ss[r * LDS + c] and os[r * DP + d] in floats. LDD, LDP and LDS pad rows by 16 bytes: aligned
// rows for the fragment loads and stores, shifted across the banks.
#include "vki_abi.h"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "attention_common.glsl"

layout(constant_id = VKI_ATTN_SPEC_COLS) const uint COLS = 32;
layout(constant_id = VKI_ATTN_SPEC_PAD_DIM) const uint DP = 64;
layout(constant_id = VKI_SPEC_MM_FRAG_M) const uint FRAG_M = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_N) const uint FRAG_N = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_K) const uint FRAG_K = 16;
const uint WG = gl_WorkGroupSize.x;
const uint LDD = DP + 8u;
const uint LDP = COLS + 8u;
const uint LDS = COLS + 4u; // rows of S: the lanes' rows (one a lane) on different banks
const uint SUBGROUPS = ROWS / FRAG_M;

shared float16_t kvs[2u * COLS * LDD];
shared float16_t ps[ROWS * LDP];
shared float ss[ROWS * LDS];
shared float os[ROWS * DP];
shared float s_m[ROWS]; // running max of each row
shared float s_l[ROWS]; // running sum of exp(s - m), of the fp16 probabilities the product uses
shared float s_a[ROWS]; // this tile's rescale of the row's output, exp(m_old - m_new)
shared uint s_lo[ROWS]; // kv positions [s_lo, s_hi) the row sees
shared uint s_hi[ROWS];

// The K and V tile at kv position j0 into kvs, by all invocations; zeros past `end` and in the
// padding of the head dimension, so that they add nothing to S and to O.
void stage_kv(uint j0, uint end, uint hk)
{
    for (uint e = gl_LocalInvocationID.x; e < COLS * DP; e += WG) {
        uint c = e / DP, d = e % DP, j = j0 + c;
        bool live = j < end && d < HD; // F32 or F16: Q8_0 K/V take the other kernels
        float kv = live ? load_k(d, hk, j) : 0.0, vv = live ? load_v(d, hk, j) : 0.0;
        kvs[c * LDD + d] = float16_t(kv);
        kvs[(COLS + c) * LDD + d] = float16_t(vv);
    }
}

// Row rl of the workgroup (its subgroup's lane rl % FRAG_M): scores of the tile at j0 bounded
// and masked, the max and sum updated, the probabilities into ps as fp16.
void softmax_row(uint rl, uint j0, uint i)
{
    float m_old = s_m[rl], mt = NEG;
    uint lo = s_lo[rl], hi = s_hi[rl];
    for (uint c = 0u; c < COLS; c++) {
        uint j = j0 + c;
        float s = NEG;
        if (j >= lo && j < hi) s = max(ss[rl * LDS + c] + load_mask(j, i), NEG);
        ss[rl * LDS + c] = s;
        mt = max(mt, s);
    }
    float m_new = max(m_old, mt), sum = 0.0;
    for (uint c = 0u; c < COLS; c++) {
        float s = ss[rl * LDS + c];
        float16_t p = float16_t(s <= NEG ? 0.0 : exp(s - m_new));
        ps[rl * LDP + c] = p;
        sum += float(p);
    }
    float a = exp(m_old - m_new);
    s_a[rl] = a;
    s_l[rl] = s_l[rl] * a + sum;
    s_m[rl] = m_new;
}

void main()
{
    const uint t = gl_LocalInvocationID.x, hk = gl_WorkGroupID.y;
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint n_rows = pc.n_q * pc.group, r0 = gl_WorkGroupID.x * ROWS;
    const bool working = sg < SUBGROUPS; // uniform in the subgroup, as cm_* need
    const uint sub = sg * FRAG_M;        // the subgroup's first row in the workgroup

    // The queries, scaled, as fp16 (padding and rows past n_rows zero); the rows' state.
    for (uint e = t; e < ROWS * DP; e += WG) {
        uint rl = e / DP, d = e % DP, r = r0 + rl;
        float qv = r < n_rows && d < HD ? pc.scale * load_q(d, row_head(hk, r), row_query(r)) : 0.0;
        kvs[rl * LDD + d] = float16_t(qv);
        os[e] = 0.0;
    }
    for (uint rl = t; rl < ROWS; rl += WG) {
        s_m[rl] = NEG;
        s_l[rl] = 0.0;
        uvec2 range = r0 + rl < n_rows ? kv_range(row_query(r0 + rl)) : uvec2(0u);
        s_lo[rl] = range.x;
        s_hi[rl] = range.y;
    }
    barrier();
    cm_a(FRAG_M, FRAG_K) qa[DP / FRAG_K];
    if (working) {
        [[unroll]] for (uint k = 0u; k < DP / FRAG_K; k++)
            cm_load(qa[k], kvs, sub * LDD + k * FRAG_K, LDD, CM_ROW_MAJOR);
    }

    uvec2 block = kv_block_range(row_query(r0), row_query(min(r0 + ROWS, n_rows) - 1u));
    for (uint j0 = block.x; j0 < block.y; j0 += COLS) {
        barrier(); // the previous tile (the first time: the queries) is read
        stage_kv(j0, block.y, hk);
        barrier();
        if (!working) continue;

        // S = Q K^T for the subgroup's rows, one column fragment at a time.
        [[unroll]] for (uint cf = 0u; cf < COLS / FRAG_N; cf++) {
            cm_acc(FRAG_M, FRAG_N) s = cm_acc_zero(FRAG_M, FRAG_N);
            [[unroll]] for (uint k = 0u; k < DP / FRAG_K; k++) {
                cm_b(FRAG_K, FRAG_N) kt;
                cm_load(kt, kvs, cf * FRAG_N * LDD + k * FRAG_K, LDD, CM_COL_MAJOR);
                s = cm_mul_add(qa[k], kt, s);
            }
            cm_store(s, ss, sub * LDS + cf * FRAG_N, LDS, CM_ROW_MAJOR);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint rl = sub + lane; rl < sub + FRAG_M; rl += gl_SubgroupSize)
            softmax_row(rl, j0, row_query(min(r0 + rl, n_rows - 1u)));
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint e = lane; e < FRAG_M * DP; e += gl_SubgroupSize)
            os[sub * DP + e] *= s_a[sub + e / DP];
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // O += P V, one column fragment of the head dimension at a time.
        cm_a(FRAG_M, FRAG_K) pa[COLS / FRAG_K];
        [[unroll]] for (uint k = 0u; k < COLS / FRAG_K; k++)
            cm_load(pa[k], ps, sub * LDP + k * FRAG_K, LDP, CM_ROW_MAJOR);
        [[unroll]] for (uint df = 0u; df < DP / FRAG_N; df++) {
            cm_acc(FRAG_M, FRAG_N) o;
            cm_load_acc(o, os, sub * DP + df * FRAG_N, DP, CM_ROW_MAJOR);
            [[unroll]] for (uint k = 0u; k < COLS / FRAG_K; k++) {
                cm_b(FRAG_K, FRAG_N) v;
                cm_load(v, kvs, (COLS + k * FRAG_K) * LDD + df * FRAG_N, LDD, CM_ROW_MAJOR);
                o = cm_mul_add(pa[k], v, o);
            }
            cm_store(o, os, sub * DP + df * FRAG_N, DP, CM_ROW_MAJOR);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
    if (!working) return;
    // Each subgroup's own rows: its stores and the stats it wrote are visible to it (the last
    // subgroup barrier, or the workgroup barrier without any tile).
    for (uint e = lane; e < FRAG_M * HD; e += gl_SubgroupSize) {
        uint rl = sub + e / HD, d = e % HD, r = r0 + rl;
        if (r >= n_rows) break;
        float l = s_l[rl];
        store_out(d, row_head(hk, r), row_query(r), l > 0.0 ? os[rl * DP + d] / l : 0.0);
    }
}
