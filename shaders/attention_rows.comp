#version 450
#extension GL_GOOGLE_include_directive : require
// Fused attention without shared memory or barriers, for devices where those are slow (lavapipe
// runs a workgroup's invocations as loops and splits them at every barrier). A row (query,
// head) belongs to a subgroup of LANES invocations, lane l owning dims l, l + LANES, ...: each
// lane dots its part of q and k_j, a subgroup sum gives the score, and the online softmax
// (running max m, sum l) advances in step on every lane, so the lanes never diverge and each
// holds only D / LANES of q and of the output in registers. Without subgroup arithmetic
// (SUBGROUP=0) LANES is 1 and a row is one invocation.
// Workgroup (x, y): rows [x ROWS, (x + 1) ROWS) of kv head y.
#include "vki_abi.h"

#if SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "attention_common.glsl"

// The subgroup size; the lowering requires it of the pipeline. 1 without subgroups.
layout(constant_id = VKI_ATTN_SPEC_LANES) const uint LANES = 8;
const uint DPL = (HD + LANES - 1) / LANES; // dims per lane

float qs[DPL], acc[DPL]; // the row's pre-scaled query and its output, dims lane + c LANES

// The online softmax of query i over its kv positions `range` of kv head hk; returns the sum
// l, acc holding the output times l. Called with a literal q8 (K and V in Q8_0 blocks, else
// F32/F16), so that each call is compiled for one format and the loop tests none (see
// attention_keys.comp).
float walk(uint hk, uint lane, uint i, uvec2 range, bool q8)
{
    float m = NEG, l = 0.0;
    for (uint j = range.x; j < range.y; j++) {
        float s = 0.0;
        for (uint c = 0; c < DPL; c++) {
            uint d = lane + c * LANES;
            if (d < HD) s += qs[c] * (q8 ? load_k_q8(d, hk, j) : load_k(d, hk, j));
        }
#if SUBGROUP
        s = subgroupAdd(s);
#endif
        s = max(s + load_mask(j, i), NEG);
        if (s <= NEG) continue;
        float m_new = max(m, s), a = exp(m - m_new), p = exp(s - m_new);
        m = m_new;
        l = l * a + p;
        for (uint c = 0; c < DPL; c++) {
            uint d = lane + c * LANES;
            if (d < HD) acc[c] = acc[c] * a + p * (q8 ? load_v_q8(d, hk, j) : load_v(d, hk, j));
        }
    }
    return l;
}

void main()
{
    uint hk = gl_WorkGroupID.y, n_rows = pc.n_q * pc.group;
#if SUBGROUP
    uint first = gl_SubgroupID, step = gl_NumSubgroups, lane = gl_SubgroupInvocationID;
#else
    uint first = gl_LocalInvocationID.x, step = gl_WorkGroupSize.x, lane = 0;
#endif
    uint r_end = min((gl_WorkGroupID.x + 1) * ROWS, n_rows);
    for (uint r = gl_WorkGroupID.x * ROWS + first; r < r_end; r += step) { // subgroup-uniform
        uint i = row_query(r), h = row_head(hk, r);
        uvec2 range = kv_range(i);
        for (uint c = 0; c < DPL; c++) {
            uint d = lane + c * LANES;
            qs[c] = d < HD ? pc.scale * load_q(d, h, i) : 0.0;
            acc[c] = 0.0;
        }
        float l = (pc.flags & VKI_ATTN_KV_Q8_0) != 0u ? walk(hk, lane, i, range, true)
                                                      : walk(hk, lane, i, range, false);
        for (uint c = 0; c < DPL; c++) {
            uint d = lane + c * LANES;
            if (d < HD) store_out(d, h, i, l > 0.0 ? acc[c] / l : 0.0);
        }
    }
}
