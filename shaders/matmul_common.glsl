// What matvec.comp, matmul_shared.comp and matmul_reg.comp share: bindings, push constants,
// loading x (f32 or f16, read as words), the batch of a workgroup and the epilogue (bias, then
// activation). The kernel includes vki_abi.h and declares its local size before this file.
#ifndef VKI_MATMUL_COMMON_GLSL
#define VKI_MATMUL_COMMON_GLSL

layout(constant_id = VKI_SPEC_MM_X_F16) const bool X_F16 = false;

layout(std430, binding = VKI_MM_BINDING_W) readonly restrict buffer W { uint w_words[]; };
layout(std430, binding = VKI_MM_BINDING_X) readonly restrict buffer X { uint x_words[]; };
layout(std430, binding = VKI_MM_BINDING_BIAS) readonly restrict buffer Bias { float bias[]; };
layout(std430, binding = VKI_MM_BINDING_Y) writeonly restrict buffer Y { float y[]; };
VKI_PUSH_BLOCK(VKI_PC_MATMUL)

#include "activation.glsl"
#include "quant.glsl"

// A float type's pairs are 8 consecutive elements; a block format's are spread over its block.
#if WQ_QUANT
#define WQ_SPAN WQ_BLOCK
#else
#define WQ_SPAN 8u
#endif

// Pair p of a row as positions: the pair's two quads start at kA and kB.
void pair_pos(uint p, out uint kA, out uint kB)
{
    uint base = (p / (WQ_SPAN / 8u)) * WQ_SPAN, j = p % (WQ_SPAN / 8u);
    kA = base + WQ_PAIR_A(j);
    kB = base + WQ_PAIR_B(j);
}

// Whole pairs in a row; a float row of K % 8 != 0 elements leaves a tail for x_elem/w_elem.
uint pair_count() { return pc.K / 8u; }

vec4 x_quad(uint e) // x elements e..e+3
{
    if (X_F16) {
        uint i = e >> 1;
        return half4(x_words[i], x_words[i + 1u], x_words[i + 1u + (e & 1u)], (e & 1u) != 0u);
    }
    return uintBitsToFloat(uvec4(x_words[e], x_words[e + 1u], x_words[e + 2u], x_words[e + 3u]));
}

float x_elem(uint e)
{
    if (X_F16) return unpackHalf2x16(x_words[e >> 1] >> ((e & 1u) << 4)).x;
    return uintBitsToFloat(x_words[e]);
}

// Quads that may run past K (tile loads): zeros there.
vec4 w_quad_guarded(uint row, uint k)
{
#if WQ_QUANT
    return k < pc.K ? w_quad(row, k) : vec4(0.0); // K is a whole number of blocks
#else
    if (k + 4u <= pc.K) return w_quad(row, k);
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < pc.K) v[i] = w_elem(row, k + i);
    return v;
#endif
}

vec4 x_quad_guarded(uint col, uint k)
{
    if (k + 4u <= pc.K) return x_quad(col + k);
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < pc.K) v[i] = x_elem(col + k + i);
    return v;
}

// Start of the weight matrix and of x for batch b (a flat index over ne2 * ne3).
void batch_bases(uint b, out uint wbase, out uint xbase)
{
    uint i2 = b % pc.ne2, i3 = b / pc.ne2;
    wbase = pc.w_off + (i2 / pc.w_r2) * pc.w_nb2 + (i3 / pc.w_r3) * pc.w_nb3;
    xbase = pc.x_off + i2 * pc.x_nb2 + i3 * pc.x_nb3;
}

// Stores output (row, col) of batch b, after bias and activation; the caller checks the bounds.
void store_y(uint row, uint col, uint b, float v)
{
    if (pc.has_bias != 0u) v += bias[pc.b_off + row];
    y[pc.y_off + row + pc.M * (col + pc.N * b)] = vki_activate(pc.act, v);
}

#endif
