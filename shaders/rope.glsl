// The rotation of rotary position embeddings, shared by rope.comp and the rope that
// matvec_wide.comp applies to its rows: pair i of a head at position p turns by
// theta = p * freq_scale * base^(-2i / n_rot), log2_step = 2 log2(base) / n_rot. The angle is
// reduced to [-pi, pi] before sin/cos: Vulkan bounds their error only there, and positions
// reach thousands of radians.
#ifndef VKI_ROPE_GLSL
#define VKI_ROPE_GLSL

// 2 pi as float plus the remainder, for a Cody-Waite reduction with fused multiply-adds.
const float TWO_PI_HI = 6.28318548202514648;
const float TWO_PI_LO = -1.74845553146951715e-7;

// (cos theta, sin theta) of pair i at position p.
vec2 rope_cos_sin(int p, uint i, float freq_scale, float log2_step)
{
    precise float theta = float(p) * freq_scale * exp2(-float(i) * log2_step);
    precise float k = round(theta * (1.0 / TWO_PI_HI));
    precise float a = fma(-k, TWO_PI_LO, fma(-k, TWO_PI_HI, theta));
    return vec2(cos(a), sin(a));
}

#endif
