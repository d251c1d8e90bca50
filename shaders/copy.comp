#version 450
#extension GL_GOOGLE_include_directive : require
// d = convert(s) over a 4-D index space, both sides strided: copy and cast, each half of a
// concat, nearest upsampling (source index shifted right). DST16=1 writes 16-bit elements (f16 or
// bf16 bits, by pc.d_type), else 32-bit ones. See VKI_PC_COPY.
#include "vki_abi.h"
#if DST16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#define D_T uint16_t
#else
#define D_T uint
#endif
#include "types.glsl"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
// 32-bit words whatever the source type: 16-bit reads need no 16-bit storage feature.
layout(std430, set = 0, binding = 0) readonly buffer S { uint s[]; };
layout(std430, set = 0, binding = 1) writeonly buffer D { D_T d[]; };
VKI_PUSH_BLOCK(VKI_PC_COPY)

// Bits of source element e: a whole word, or the 16-bit half holding it (little-endian, so
// element 2k is the low half of word k), zero-extended.
uint load_bits(uint e)
{
    if (pc.s_type == VKI_COPY_F32) return s[e];
    return (s[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu;
}

float to_float(uint bits, uint type)
{
    if (type == VKI_COPY_F32) return uintBitsToFloat(bits);
    return type == VKI_COPY_F16 ? unpackHalf2x16(bits).x : uintBitsToFloat(bits << 16);
}

// Round to nearest even, NaN kept quiet: bit-exact with vki_f32_to_bf16.
uint bf16_bits(float x)
{
    uint u = floatBitsToUint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    if (i >= pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i0 = i % pc.ne0, r = i / pc.ne0;
    uint i1 = r % pc.ne1; r /= pc.ne1;
    uint i2 = r % pc.ne2, i3 = r / pc.ne2;
    uvec4 si = uvec4(i0, i1, i2, i3) >> ((uvec4(pc.s_shift) >> uvec4(0, 8, 16, 24)) & 0xffu);
    uint bits = load_bits(pc.s_off + si.x * pc.s_nb0 + si.y * pc.s_nb1 + si.z * pc.s_nb2 + si.w * pc.s_nb3);
    uint di = pc.d_off + i0 * pc.d_nb0 + i1 * pc.d_nb1 + i2 * pc.d_nb2 + i3 * pc.d_nb3;
    // Same type: the bits as they are (NaN payloads and f16 subnormals included).
    if (pc.s_type != pc.d_type) {
        float x = to_float(bits, pc.s_type);
        bits = pc.d_type == VKI_COPY_F32 ? floatBitsToUint(x)
             : pc.d_type == VKI_COPY_F16 ? packHalf2x16(vec2(x, 0.0)) : bf16_bits(x);
    }
    d[di] = D_T(bits);
}
