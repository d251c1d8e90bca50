#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Fused attention for CPU devices (lavapipe) on long query blocks (prefill, the U-Net's self-
// and cross-attention), shaped like conv2d_rows.comp: a workgroup of one SIMD group takes
// lanes x QC queries of one head, invocation t its own QC queries (q0 + t + c lanes), and walks
// the kv positions of that head's kv head, the same ones on every invocation, KB at a time. A
// position's k and v rows are read whole from 16-byte texels at an address that is the same on
// every lane, and each value read feeds QC multiply-adds on every lane; the queries, their
// outputs and a block's scores are plain variables (every loop over them is unrolled, HD and QC
// being constants). attention_keys.comp, where the lanes split the positions and share the
// queries, gathers k and v from a different position on every lane, each value feeding at most
// 4 rows: SD's self-attention ran at about 1 GFLOP/s there.
//
// Per block of KB positions: the scores of each query, one online-softmax update per query (its
// running max m, sum l and a rescale of its output), then the block's v rows added in. The
// positions a query may not see (causal, positions, outside the kv range) score NEG and add
// nothing; the workgroup walks the union of its queries' ranges.
//
// K and V: F32 (KV_F16=0, 4 dims a texel) or F16 (KV_F16=1, 8 dims a texel), dims contiguous,
// every row at a texel (HD a multiple of the texel's dims; the lowering checks). Q, the mask
// and the positions: any float layout, read through attention_common.glsl.
#include "vki_abi.h"

layout(local_size_x = 8, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#define WIDE 1
#include "attention_common.glsl"

layout(constant_id = VKI_ATTN_SPEC_QUERIES) const uint QC = 1;
const uint KB = 8; // kv positions per block: one softmax update per query for KB scores

#if KV_F16
const uint PER = 8u; // dims per texel
#else
const uint PER = 4u;
#endif
const uint HT = HD / PER;

// Position j of kv head hk of k (of v when is_v, a literal) into row: whole texels, the same
// on every lane.
void load_row(bool is_v, uint hk, uint j, out float row[HD])
{
    uint e = is_v ? pc.v_off + hk * pc.v_nb1 + j * pc.v_nb2 : pc.k_off + hk * pc.k_nb1 + j * pc.k_nb2;
    [[unroll]] for (uint i = 0u; i < HT; i++) {
        uvec4 w = is_v ? V_TEXEL(e / PER + i) : K_TEXEL(e / PER + i);
        [[unroll]] for (uint c = 0u; c < 4u; c++) {
            if (KV_F16 != 0) {
                vec2 two = unpackHalf2x16(w[c]);
                row[PER * i + 2u * c] = two.x;
                row[PER * i + 2u * c + 1u] = two.y;
            } else {
                row[PER * i + c] = uintBitsToFloat(w[c]);
            }
        }
    }
}

// This invocation's queries: pre-scaled q, output sums, running max and sum, visible range.
float qs[QC][HD], acc[QC][HD];
float m[QC], l[QC];
uvec2 ranges[QC];

void main()
{
    const uint lanes = gl_WorkGroupSize.x, t = gl_LocalInvocationID.x;
    const uint h = gl_WorkGroupID.y, hk = h / pc.group, q0 = gl_WorkGroupID.x * lanes * QC;
    const uint q_last = min(q0 + lanes * QC, pc.n_q) - 1u;
    const uvec2 all = kv_block_range(q0, q_last);
    [[unroll]] for (uint c = 0; c < QC; c++) {
        uint i = q0 + c * lanes + t, qi = min(i, q_last);
        ranges[c] = i <= q_last ? kv_range(i) : uvec2(0u);
        [[unroll]] for (uint d = 0; d < HD; d++) {
            qs[c][d] = pc.scale * load_q(d, h, qi);
            acc[c][d] = 0.0;
        }
        m[c] = NEG;
        l[c] = 0.0;
    }
    const bool masked = (pc.flags & VKI_ATTN_HAS_MASK) != 0u;
    for (uint j0 = all.x; j0 < all.y; j0 += KB) {
        float s[KB][QC];
        [[unroll]] for (uint b = 0; b < KB; b++) {
            float kr[HD];
            load_row(false, hk, min(j0 + b, all.y - 1u), kr);
            [[unroll]] for (uint c = 0; c < QC; c++) {
                float sum = 0.0;
                [[unroll]] for (uint d = 0; d < HD; d++) sum += qs[c][d] * kr[d];
                s[b][c] = sum;
            }
        }
        [[unroll]] for (uint c = 0; c < QC; c++) {
            uint qi = min(q0 + c * lanes + t, q_last);
            float mx = m[c];
            [[unroll]] for (uint b = 0; b < KB; b++) {
                uint j = j0 + b;
                float sc = masked ? max(s[b][c] + load_mask(min(j, pc.n_kv - 1u), qi), NEG) : s[b][c];
                s[b][c] = j >= ranges[c].x && j < ranges[c].y ? sc : NEG;
                mx = max(mx, s[b][c]);
            }
            float a = exp(m[c] - mx), sum = 0.0;
            [[unroll]] for (uint b = 0; b < KB; b++) {
                s[b][c] = s[b][c] > NEG ? exp(s[b][c] - mx) : 0.0;
                sum += s[b][c];
            }
            m[c] = mx;
            l[c] = l[c] * a + sum;
            [[unroll]] for (uint d = 0; d < HD; d++) acc[c][d] *= a;
        }
        [[unroll]] for (uint b = 0; b < KB; b++) {
            float vr[HD];
            load_row(true, hk, min(j0 + b, all.y - 1u), vr);
            [[unroll]] for (uint c = 0; c < QC; c++)
                [[unroll]] for (uint d = 0; d < HD; d++) acc[c][d] += s[b][c] * vr[d];
        }
    }
    [[unroll]] for (uint c = 0; c < QC; c++) {
        uint i = q0 + c * lanes + t;
        if (i > q_last) continue;
        float inv = l[c] > 0.0 ? 1.0 / l[c] : 0.0;
        [[unroll]] for (uint d = 0; d < HD; d++) store_out(d, h, i, acc[c][d] * inv);
    }
}
