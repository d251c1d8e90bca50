#version 450
#extension GL_GOOGLE_include_directive : require
// Rotary position embedding: one invocation per rotated pair or passed-through element (see
// abi_norm.h; the rotation is rope.glsl's).
#include "vki_abi.h"
#include "types.glsl"
#include "rope.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly buffer X { T x[]; };
layout(std430, set = 0, binding = 1) readonly buffer P { int pos[]; };
layout(std430, set = 0, binding = 2) writeonly buffer D { T d[]; };
VKI_PUSH_BLOCK(VKI_PC_ROPE)

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    uint half_rot = pc.n_rot / 2, per_row = pc.ne0 - half_rot;
    if (i >= per_row * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint t = i % per_row, row = i / per_row;
    uint i1 = row % pc.ne1, r = row / pc.ne1, i2 = r % pc.ne2, i3 = r / pc.ne2;
    uint xb = pc.x_off + i1 * pc.x_nb1 + i2 * pc.x_nb2 + i3 * pc.x_nb3, db = pc.d_off + row * pc.ne0;
    if (t >= half_rot) { // dims n_rot.. pass through
        uint c = t + half_rot;
        d[db + c] = x[xb + c * pc.x_nb0];
        return;
    }
    bool neox = pc.mode != 0;
    uint c0 = neox ? t : 2 * t, c1 = neox ? t + half_rot : 2 * t + 1;
    int p = pos[pc.p_off + i2];
    uint j = t; // the pair's index in the frequency ladder
    if (pc.mode >= VKI_ROPE_MODE_MROPE) { // stream k of the section pair t lies in
        uint k = uint(t >= pc.sec1) + uint(t >= pc.sec2) + uint(t >= pc.sec3);
        p = pos[pc.p_off + k * pc.ne2 + i2];
        if (pc.mode == VKI_ROPE_MODE_VISION) j = t - (k == 0u ? 0u : k == 1u ? pc.sec1 : k == 2u ? pc.sec2 : pc.sec3);
    }
    vec2 rot = rope_cos_sin(p, j, pc.freq_scale, pc.log2_step);
    float cs = rot.x, sn = rot.y;
    float x0 = float(x[xb + c0 * pc.x_nb0]), x1 = float(x[xb + c1 * pc.x_nb0]);
    d[db + c0] = T(x0 * cs - x1 * sn);
    d[db + c1] = T(x0 * sn + x1 * cs);
}
