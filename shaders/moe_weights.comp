#version 450
#extension GL_GOOGLE_include_directive : require
// Routing weights of the chosen experts, one workgroup per token (column n of the router's
// logits x f32 [E, N]): the column's maximum and sum of exp(x - max) reduced over the
// workgroup in fp32, then slot j's weight exp(x[ids[j, n]] - max) / sum (0 for an id outside
// [0, E): a bad id never reads outside x), divided by the slots' sum when normalising (a
// softmax over the chosen logits; 0 where every id was bad).
#include "vki_abi.h"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly restrict buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly restrict buffer Ids { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly restrict buffer D { float d[]; };
VKI_PUSH_BLOCK(VKI_PC_MOE_WEIGHTS)

// Maximum and sum over the workgroup, returned to every invocation, in uniform control flow.
// SUBGROUP=1: the workgroup is one subgroup (the lowering asks for it), so subgroup arithmetic
// alone reduces, without shared memory or barriers; else reduce.glsl's shared-memory tree.
#if SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
float group_max(float v) { return subgroupMax(v); }
float group_add(float v) { return subgroupAdd(v); }
#else
#include "reduce.glsl"
float group_max(float v) { return vki_reduce(vec2(v), VKI_REDUCE_MAX).x; }
float group_add(float v) { return vki_reduce(vec2(v), VKI_REDUCE_ADD).x; }
#endif

// A finite stand-in for -inf: Vulkan does not promise to keep infinities through arithmetic.
const float LOWEST = -3.402823466e38;

// Slot j's weight before normalising.
float slot_weight(uint xb, uint n, uint j, float mx, float inv)
{
    int id = ids[pc.i_off + j * pc.i_nb0 + n * pc.i_nb1];
    if (id < 0 || uint(id) >= pc.E) return 0.0;
    return exp(x[xb + uint(id) * pc.x_nb0] - mx) * inv;
}

void main()
{
    uint n = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (n >= pc.N) return; // whole workgroups only: barriers stay uniform
    uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    uint xb = pc.x_off + n * pc.x_nb1;

    // Running maximum and sum of exponentials, rescaled when the maximum grows.
    float mx = LOWEST, s = 0.0;
    for (uint e = tid; e < pc.E; e += nt) {
        float v = x[xb + e * pc.x_nb0];
        if (v > mx) {
            s = s * exp(mx - v) + 1.0;
            mx = v;
        } else {
            s += exp(v - mx);
        }
    }
    float col_max = group_max(mx);
    float sum = group_add(s > 0.0 ? s * exp(mx - col_max) : 0.0);
    float inv = sum > 0.0 ? 1.0 / sum : 0.0;

    float scale = 1.0;
    if (pc.normalize != 0u) {
        float part = 0.0;
        for (uint j = tid; j < pc.k; j += nt) part += slot_weight(xb, n, j, col_max, inv);
        float chosen = group_add(part);
        scale = chosen > 0.0 ? 1.0 / chosen : 0.0;
    }
    for (uint j = tid; j < pc.k; j += nt) d[pc.d_off + n * pc.k + j] = slot_weight(xb, n, j, col_max, inv) * scale;
}
