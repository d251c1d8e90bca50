#version 450
#extension GL_GOOGLE_include_directive : require
// Parametric ReLU: x where x >= 0, else x times a slope, per element of a broadcast f32 slope
// tensor (PReLU's per-channel slopes) or one scalar (leaky ReLU). fp32 math.
#include "vki_abi.h"
#include "types.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly buffer A { T a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer D { T d[]; };
VKI_PUSH_BLOCK(VKI_PC_PRELU)

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    uint n = pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3;
    if (i >= n) return;
    uint i0 = i % pc.ne0, r = i / pc.ne0;
    uint i1 = r % pc.ne1; r /= pc.ne1;
    uint i2 = r % pc.ne2, i3 = r / pc.ne2;
    float x = float(a[pc.a_off + i0 * pc.a_nb0 + i1 * pc.a_nb1 + i2 * pc.a_nb2 + i3 * pc.a_nb3]);
    float s = pc.slope;
    if (pc.has_b != 0)
        s = b[pc.b_off + (i0 % pc.b_ne0) * pc.b_nb0 + (i1 % pc.b_ne1) * pc.b_nb1
              + (i2 % pc.b_ne2) * pc.b_nb2 + (i3 % pc.b_ne3) * pc.b_nb3];
    d[pc.d_off + i] = T(x >= 0.0 ? x : x * s);
}
