#version 450
#extension GL_GOOGLE_include_directive : require
// Sinusoidal timestep embedding: d[j, n] = cos(t_n f_j) for j < half, sin(t_n f_(j-half)) for
// half <= j < 2 half, 0 in an odd dim's last column; f_k = exp(-ln(max_period) k / half).
#include "vki_abi.h"
#include "types.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly buffer Tt { float t[]; };
layout(std430, set = 0, binding = 1) writeonly buffer D { float d[]; };
VKI_PUSH_BLOCK(VKI_PC_TIMESTEP)

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    if (i >= pc.dim * pc.count) return;
    uint j = i % pc.dim, n = i / pc.dim;
    float v = 0.0;
    if (j < 2u * pc.half_dim) {
        uint k = j < pc.half_dim ? j : j - pc.half_dim;
        float arg = t[pc.t_off + n * pc.t_nb0] * exp(-pc.log_max_period * float(k) / float(pc.half_dim));
        // Timesteps reach ~1000 radians, and sin/cos are only specified to 2^-11 absolute
        // inside [-pi, pi]: reduce first, by 2 pi in two parts (6.28125 has 8 significant bits,
        // so q * 6.28125 is exact for |q| < 2^16) to keep the reduction itself accurate.
        float q = round(arg * 0.15915494309189535);
        float r = (arg - q * 6.28125) - q * 0.0019353071795864769;
        v = j < pc.half_dim ? cos(r) : sin(r);
    }
    d[pc.d_off + i] = v;
}
