#version 450
#extension GL_GOOGLE_include_directive : require
// Index of the largest element of each row (dim 0), one workgroup per row: each invocation scans
// a strided share of the row, then the workgroup reduces (value, index) pairs. Ties go to the
// smallest index; NaN counts as -inf. With pc.finite, a row whose largest value is not finite
// (+inf, or -inf: no element above it) gives -1 (vki_argmax_finite). SUBGROUP=1 reduces with
// subgroup arithmetic, else with a shared-memory tree.
#include "vki_abi.h"
#include "types.glsl"
#if SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly buffer S { T s[]; };
layout(std430, set = 0, binding = 1) writeonly buffer D { int d[]; };
VKI_PUSH_BLOCK(VKI_PC_ARGMAX)

// One entry per invocation (the fallback) or per subgroup.
shared float part_v[gl_WorkGroupSize.x];
shared uint part_i[gl_WorkGroupSize.x];

// (-inf, NONE) is the identity: every real element beats it, NONE beats nothing.
const uint NONE = 0xffffffffu;

bool beats(float v, uint i, float w, uint j) { return v > w || (v == w && i < j); }

// The row's answer from its largest value m at index i: NONE is -1 as an int.
int answer(float m, uint i) { return int(pc.finite != 0u && isinf(m) ? NONE : i); }

void main()
{
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= pc.ne1 * pc.ne2 * pc.ne3) return; // the whole workgroup, before any barrier
    uint i1 = row % pc.ne1, r = row / pc.ne1;
    uint i2 = r % pc.ne2, i3 = r / pc.ne2;
    uint base = pc.s_off + i1 * pc.s_nb1 + i2 * pc.s_nb2 + i3 * pc.s_nb3;
    uint tid = gl_LocalInvocationID.x;
    float ninf = uintBitsToFloat(0xff800000u);

    float v = ninf;
    uint idx = NONE;
    for (uint k = tid; k < pc.ne0; k += gl_WorkGroupSize.x) {
        float x = float(s[base + k * pc.s_nb0]);
        x = isnan(x) ? ninf : x;
        if (beats(x, k, v, idx)) {
            v = x;
            idx = k;
        }
    }

#if SUBGROUP
    // Max of the values, then the smallest index holding it; per subgroup, then over subgroups.
    float m = subgroupMax(v);
    uint mi = subgroupMin(v == m ? idx : NONE);
    if (subgroupElect()) {
        part_v[gl_SubgroupID] = m;
        part_i[gl_SubgroupID] = mi;
    }
    barrier();
    if (gl_SubgroupID != 0) return;
    v = ninf;
    idx = NONE;
    for (uint k = gl_SubgroupInvocationID; k < gl_NumSubgroups; k += gl_SubgroupSize)
        if (beats(part_v[k], part_i[k], v, idx)) {
            v = part_v[k];
            idx = part_i[k];
        }
    m = subgroupMax(v);
    mi = subgroupMin(v == m ? idx : NONE);
    if (subgroupElect()) d[pc.d_off + row] = answer(m, mi);
#else
    part_v[tid] = v;
    part_i[tid] = idx;
    barrier();
    // Halve the live range each round (any workgroup size, not only powers of two): entry t
    // takes the better of itself and t + h.
    for (uint n = gl_WorkGroupSize.x; n > 1u;) {
        uint h = (n + 1u) / 2u;
        if (tid < n - h && beats(part_v[tid + h], part_i[tid + h], part_v[tid], part_i[tid])) {
            part_v[tid] = part_v[tid + h];
            part_i[tid] = part_i[tid + h];
        }
        barrier();
        n = h;
    }
    if (tid == 0u) d[pc.d_off + row] = answer(part_v[0], part_i[0]);
#endif
}
