#version 450
#extension GL_GOOGLE_include_directive : require
// rms_norm, layer_norm and group_norm: one workgroup normalises one box of x (a row, or a
// (group, n) slab of channels; see abi_norm.h), reading x twice: once for the statistics, once
// to write the result, scaled, shifted and put through an activation (group_norm + SiLU of a
// resnet: one pass instead of two).
#include "vki_abi.h"
#include "types.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
// TEXEL=1 (f32 x only): x and w are read as R32_UINT texel buffers (lavapipe; see
// matmul_common.glsl).
#if defined(TEXEL) && TEXEL
layout(set = 0, binding = 0) uniform usamplerBuffer x_texels;
layout(set = 0, binding = 1) uniform usamplerBuffer w_texels;
#define X_ELEM(i) uintBitsToFloat(texelFetch(x_texels, int(i)).x)
#define W_WORD(i) texelFetch(w_texels, int(i)).x
#else
layout(std430, set = 0, binding = 0) readonly buffer X { T x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { uint w[]; }; // f32 or f16 words
#define X_ELEM(i) float(x[i])
#define W_WORD(i) w[i]
#endif
layout(std430, set = 0, binding = 2) readonly buffer B { uint b[]; };
layout(std430, set = 0, binding = 3) writeonly buffer D { T d[]; };
VKI_PUSH_BLOCK(VKI_PC_NORM)
#include "reduce.glsl"
#include "words.glsl"
#include "activation.glsl"

// Element e (flat index in the box) of the box starting at `base`.
float load_x(uint base, uint e)
{
    if (pc.n1 * pc.n2 == 1) return X_ELEM(base + e * pc.x_nb0); // a row: no divisions
    uint r = e / pc.n0;
    return X_ELEM(base + (e % pc.n0) * pc.x_nb0 + (r % pc.n1) * pc.x_nb1 + (r / pc.n1) * pc.x_nb2);
}

void main()
{
    uint box = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (box >= pc.g1 * pc.g2 * pc.g3) return; // whole workgroups only: barriers stay uniform
    uint j1 = box % pc.g1, r = box / pc.g1;
    uint base = pc.x_off + j1 * pc.x_s1 + (r % pc.g2) * pc.x_s2 + (r / pc.g2) * pc.x_s3;
    uint n = pc.n0 * pc.n1 * pc.n2;
    bool center = (pc.flags & VKI_NORM_CENTER) != 0;

    // Sums of (x - k) and (x - k)^2 in one pass. Shifting by the box's first element keeps
    // E[x^2] - E[x]^2 from cancelling when the mean is large against the spread.
    float k = center ? load_x(base, 0) : 0.0;
    vec2 s = vec2(0.0);
    for (uint e = gl_LocalInvocationID.x; e < n; e += gl_WorkGroupSize.x) {
        float v = load_x(base, e) - k;
        s += vec2(v, v * v);
    }
    s = vki_reduce(s, VKI_REDUCE_ADD) / float(n);
    float mean = center ? k + s.x : 0.0;
    float var = center ? max(s.y - s.x * s.x, 0.0) : s.y; // rms_norm: the mean square
    float inv = inversesqrt(var + pc.eps);

    bool w_f16 = (pc.flags & VKI_NORM_W_F16) != 0, b_f16 = (pc.flags & VKI_NORM_B_F16) != 0;
    uint act = (pc.flags >> VKI_NORM_ACT_SHIFT) & 15u;
    if (pc.w_div > 1) {
        // group_norm: a channel's W*H elements share w and b. Channel by channel, they are read
        // once per channel (the same address on every lane) instead of per element, with no
        // division per element.
        for (uint cl = 0; cl < n / pc.w_div; cl++) {
            uint c = cl + j1 * pc.w_step;
            float scale = inv, shift = 0.0;
            if ((pc.flags & VKI_NORM_W) != 0)
                scale *= VKI_WORD_VALUE(W_WORD(VKI_WORD_INDEX(pc.w_off + c, w_f16)), pc.w_off + c, w_f16);
            if ((pc.flags & VKI_NORM_B) != 0) shift = VKI_LOAD_WORD(b, pc.b_off + c, b_f16);
            uint e0 = cl * pc.w_div;
            for (uint i = gl_LocalInvocationID.x; i < pc.w_div; i += gl_WorkGroupSize.x) {
                float y = (load_x(base, e0 + i) - mean) * scale + shift;
                if (act != VKI_ABI_ACT_NONE) y = vki_activate(act, y);
                d[pc.d_off + box * n + e0 + i] = T(y);
            }
        }
        return;
    }
    for (uint e = gl_LocalInvocationID.x; e < n; e += gl_WorkGroupSize.x) {
        float y = (load_x(base, e) - mean) * inv;
        uint c = e / pc.w_div + j1 * pc.w_step;
        if ((pc.flags & VKI_NORM_W) != 0)
            y *= VKI_WORD_VALUE(W_WORD(VKI_WORD_INDEX(pc.w_off + c, w_f16)), pc.w_off + c, w_f16);
        if ((pc.flags & VKI_NORM_B) != 0) y += VKI_LOAD_WORD(b, pc.b_off + c, b_f16);
        if (act != VKI_ABI_ACT_NONE) y = vki_activate(act, y);
        d[pc.d_off + box * n + e] = T(y);
    }
}
