#version 450
#extension GL_GOOGLE_include_directive : require
// softmax(x * scale + mask) along dim 0, one workgroup per row, in fp32. One pass finds each
// invocation's running maximum and its sum of exponentials (rescaled whenever the maximum
// grows, as in online softmax); two reductions combine them; a second pass writes.
// Masked entries (causal, or a -inf mask) weigh nothing; a row with nothing left is all zeros.
#include "vki_abi.h"
#include "types.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly buffer X { T x[]; };
layout(std430, set = 0, binding = 1) readonly buffer M { uint m[]; }; // f32 or f16 words
layout(std430, set = 0, binding = 2) writeonly buffer D { T d[]; };
VKI_PUSH_BLOCK(VKI_PC_SOFTMAX)
#include "reduce.glsl"
#include "words.glsl"

// A finite stand-in for -inf: Vulkan does not promise to keep infinities through arithmetic.
const float LOWEST = -3.402823466e38;

float logit(uint xb, uint mb, uint j)
{
    float v = float(x[xb + j * pc.x_nb0]) * pc.scale;
    if ((pc.flags & VKI_SOFTMAX_MASK) != 0)
        v += VKI_LOAD_WORD(m, mb + j * pc.m_nb0, (pc.flags & VKI_SOFTMAX_MASK_F16) != 0);
    return v;
}

void main()
{
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= pc.ne1 * pc.ne2 * pc.ne3) return; // whole workgroups only: barriers stay uniform
    uint i1 = row % pc.ne1, r = row / pc.ne1;
    uint xb = pc.x_off + i1 * pc.x_nb1 + (r % pc.ne2) * pc.x_nb2 + (r / pc.ne2) * pc.x_nb3;
    uint mb = pc.m_off + (i1 % pc.m_ne1) * pc.m_nb1;
    // Columns from `end` on are masked: query i1 is position i1 + ne0 - ne1 of the ne0 keys.
    int last = (pc.flags & VKI_SOFTMAX_CAUSAL) != 0 ? int(i1) + int(pc.ne0) - int(pc.ne1) : int(pc.ne0) - 1;
    uint end = uint(clamp(last + 1, 0, int(pc.ne0)));

    float mx = LOWEST, s = 0.0;
    for (uint j = gl_LocalInvocationID.x; j < end; j += gl_WorkGroupSize.x) {
        float v = logit(xb, mb, j);
        if (v <= LOWEST) continue;
        if (v > mx) {
            s = s * exp(mx - v) + 1.0;
            mx = v;
        } else {
            s += exp(v - mx); // a NaN lands here and spreads, as it should
        }
    }
    float row_max = vki_reduce(vec2(mx), VKI_REDUCE_MAX).x;
    float sum = vki_reduce(vec2(s > 0.0 ? s * exp(mx - row_max) : 0.0), VKI_REDUCE_ADD).x;
    float inv = sum > 0.0 ? 1.0 / sum : 0.0;

    for (uint j = gl_LocalInvocationID.x; j < pc.ne0; j += gl_WorkGroupSize.x) {
        float v = j < end ? logit(xb, mb, j) : LOWEST;
        d[pc.d_off + row * pc.ne0 + j] = T(v > LOWEST ? exp(v - row_max) * inv : 0.0);
    }
}
