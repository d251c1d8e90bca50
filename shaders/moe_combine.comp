#version 450
#extension GL_GOOGLE_include_directive : require
// The experts' outputs combined: d[m, n] = scale sum_j w[j, n] y[m, j, n] (+ r[m, n]), one
// invocation per output, summed in slot order so that the result does not depend on the
// device. The scale and the residual are a model's (Granite's residual multiplier, the
// residual stream) that the fusion pass folded in: the same operations in the same order as
// the separate ops.
#include "vki_abi.h"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly restrict buffer Y { float y[]; };
layout(std430, set = 0, binding = 1) readonly restrict buffer W { float w[]; };
layout(std430, set = 0, binding = 2) readonly restrict buffer R { float r[]; };
layout(std430, set = 0, binding = 3) writeonly restrict buffer D { float d[]; };
VKI_PUSH_BLOCK(VKI_PC_MOE_COMBINE)

void main()
{
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
             gl_LocalInvocationID.x;
    if (i >= pc.M * pc.N) return;
    uint m = i % pc.M, n = i / pc.M;
    uint yb = pc.y_off + m * pc.y_nb0 + n * pc.y_nb2, wb = pc.w_off + n * pc.w_nb1;
    float acc = 0.0;
    for (uint j = 0u; j < pc.k; j++) acc += w[wb + j * pc.w_nb0] * y[yb + j * pc.y_nb1];
    acc *= pc.scale;
    if (pc.res != 0u) acc += r[pc.r_off + i];
    d[pc.d_off + i] = acc;
}
