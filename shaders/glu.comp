#version 450
#extension GL_GOOGLE_include_directive : require
// Gated unit d = act(gate) * up elementwise; both operands may be strided views.
#include "vki_abi.h"
#include "types.glsl"
#include "activation.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly buffer A { T a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { T b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer D { T d[]; };
VKI_PUSH_BLOCK(VKI_PC_GLU)

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    if (i >= pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i0 = i % pc.ne0, r = i / pc.ne0;
    uint i1 = r % pc.ne1; r /= pc.ne1;
    uint i2 = r % pc.ne2, i3 = r / pc.ne2;
    float gate = float(a[pc.a_off + i0 * pc.a_nb0 + i1 * pc.a_nb1 + i2 * pc.a_nb2 + i3 * pc.a_nb3]);
    float up = float(b[pc.b_off + i0 * pc.b_nb0 + i1 * pc.b_nb1 + i2 * pc.b_nb2 + i3 * pc.b_nb3]);
    d[pc.d_off + i] = T(vki_activate(pc.act, gate) * up);
}
