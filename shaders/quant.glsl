// Weight decoding for every dtype a weight may have: F32, F16, BF16 and the GGUF block formats
// of graph/dtype.c (whose vki_dequant_block is the reference this mirrors, bit for bit where
// the arithmetic allows). The type is the variant define WTYPE (VKI_WTYPE_*, abi_matmul.h).
//
// The including kernel declares the weight buffer as 32-bit words before including:
//     layout(std430, binding = ...) readonly buffer W { uint w_words[]; };
// Blocks are 18, 20, 22, 34, 144, 176 or 210 bytes, so a block field is generally not 4-byte
// aligned; every block size and field offset is even, though, so a 16-bit field always lies in
// one word and a 32-bit field in at most two. Reading words rather than bytes or halves needs
// neither 8- nor 16-bit storage, so one variant serves every profile. A read only ever touches
// words holding at least one byte of the field, so it stays inside the binding.
//
// What a kernel uses:
//   WQ_QUANT          1 for block formats (a row is addressed in bytes), 0 for F32/F16/BF16
//                     (a row is addressed in elements)
//   WQ_BLOCK          elements per block (1 for float types)
//   WQ_BLOCK_BYTES    bytes per block
//   vec4 w_quad(row, k)          elements k..k+3 of the row at `row` (k % 4 == 0; for float
//                                types k + 4 <= the row length)
//   float w_elem(row, k)         element k (float types only: the tail of a row of odd length)
//   WQ_PAIR_A(p), WQ_PAIR_B(p)   pair p of a row is the quads at these two positions; the two
//                                share their bytes (low and high nibbles of the same bytes in
//                                the 4-bit formats), so decoding both costs little more than one.
//                                A block holds WQ_BLOCK / 8 pairs (float types: 8 elements).
//   vec4 half4(w0, w1, w2, odd)  four halves from words w0..w2 starting at an odd or even half
#ifndef VKI_QUANT_GLSL
#define VKI_QUANT_GLSL

// ---- Word access ---------------------------------------------------------------------------

uint w_u16(uint b) // b even
{
    return (w_words[b >> 2] >> ((b & 2u) << 3)) & 0xFFFFu;
}

uint w_u32(uint b) // b even: one word, or the halves of two
{
    uint i = b >> 2;
    uint lo = w_words[i], hi = w_words[i + ((b >> 1) & 1u)];
    return (b & 2u) == 0u ? lo : (lo >> 16) | (hi << 16);
}

float w_half(uint b) { return unpackHalf2x16(w_u16(b)).x; }

// The four bytes of v as unsigned values.
uvec4 bytes4(uint v) { return (uvec4(v) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu; }

// Four consecutive halves starting at half index 2*i + odd of words w0 = [i], w1, w2.
uvec2 halves4(uint w0, uint w1, uint w2, bool odd)
{
    return odd ? uvec2((w0 >> 16) | (w1 << 16), (w1 >> 16) | (w2 << 16)) : uvec2(w0, w1);
}

vec4 half4(uint w0, uint w1, uint w2, bool odd)
{
    uvec2 h = halves4(w0, w1, w2, odd);
    return vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
}

#if WTYPE == VKI_WTYPE_F32 || WTYPE == VKI_WTYPE_F16 || WTYPE == VKI_WTYPE_BF16
// ---- Float types: a row is addressed in elements --------------------------------------------
#define WQ_QUANT 0
#define WQ_BLOCK 1u
#define WQ_PAIR_A(p) (8u * (p))
#define WQ_PAIR_B(p) (8u * (p) + 4u)

#if WTYPE == VKI_WTYPE_F32
#define WQ_BLOCK_BYTES 4u
vec4 w_quad(uint row, uint k)
{
    uint e = row + k;
    return uintBitsToFloat(uvec4(w_words[e], w_words[e + 1u], w_words[e + 2u], w_words[e + 3u]));
}
float w_elem(uint row, uint k) { return uintBitsToFloat(w_words[row + k]); }
#else
#define WQ_BLOCK_BYTES 2u
vec4 w_quad(uint row, uint k)
{
    uint e = row + k, i = e >> 1;
    bool odd = (e & 1u) != 0u;
    uint w0 = w_words[i], w1 = w_words[i + 1u], w2 = w_words[i + 1u + (e & 1u)];
#if WTYPE == VKI_WTYPE_F16
    return half4(w0, w1, w2, odd);
#else
    uvec2 h = halves4(w0, w1, w2, odd);
    return uintBitsToFloat(uvec4(h.x << 16, h.x & 0xFFFF0000u, h.y << 16, h.y & 0xFFFF0000u));
#endif
}
float w_elem(uint row, uint k)
{
    uint e = row + k, h = (w_words[e >> 1] >> ((e & 1u) << 4)) & 0xFFFFu;
#if WTYPE == VKI_WTYPE_F16
    return unpackHalf2x16(h).x;
#else
    return uintBitsToFloat(h << 16);
#endif
}
#endif

#elif WTYPE == VKI_WTYPE_Q8_0
// ---- Q8_0: f16 d; i8 q[32]. y = d * q --------------------------------------------------------
#define WQ_QUANT 1
#define WQ_BLOCK 32u
#define WQ_BLOCK_BYTES 34u
#define WQ_PAIR_A(p) (8u * (p))
#define WQ_PAIR_B(p) (8u * (p) + 4u)
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 5) * 34u;
    ivec4 q = ivec4(bytes4(w_u32(b + 2u + (k & 31u))) << 24) >> 24; // sign-extend
    return w_half(b) * vec4(q);
}

#elif WTYPE == VKI_WTYPE_Q4_0 || WTYPE == VKI_WTYPE_Q4_1 || WTYPE == VKI_WTYPE_Q5_0 || \
      WTYPE == VKI_WTYPE_Q5_1
// ---- Q4_0, Q4_1, Q5_0, Q5_1: 32 elements; byte i holds element i (low nibble) and i + 16 (high
// nibble); the 5-bit formats add bit 4 of element j from bit j of a u32 qh. The _1 formats
// have y = d * q + m, the _0 formats y = d * (q - 8) (4-bit) or d * (q - 16) (5-bit). ---------
#define WQ_QUANT 1
#define WQ_BLOCK 32u
#define WQ_PAIR_A(p) (4u * (p))
#define WQ_PAIR_B(p) (4u * (p) + 16u)
#if WTYPE == VKI_WTYPE_Q4_0
#define WQ_BLOCK_BYTES 18u
#define WQ_QS 2u
#elif WTYPE == VKI_WTYPE_Q4_1
#define WQ_BLOCK_BYTES 20u
#define WQ_QS 4u
#elif WTYPE == VKI_WTYPE_Q5_0
#define WQ_BLOCK_BYTES 22u
#define WQ_QH 2u
#define WQ_QS 6u
#else
#define WQ_BLOCK_BYTES 24u
#define WQ_QH 4u
#define WQ_QS 8u
#endif
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 5) * WQ_BLOCK_BYTES, j = k & 31u;
    uvec4 q = bytes4(w_u32(b + WQ_QS + (j & 15u)) >> ((j & 16u) >> 2)) & 0xFu;
#ifdef WQ_QH
    q |= ((uvec4(w_u32(b + WQ_QH) >> j) >> uvec4(0u, 1u, 2u, 3u)) & 1u) << 4;
#endif
#if WTYPE == VKI_WTYPE_Q4_0
    return w_half(b) * (vec4(q) - 8.0);
#elif WTYPE == VKI_WTYPE_Q5_0
    return w_half(b) * (vec4(q) - 16.0);
#else
    vec2 dm = unpackHalf2x16(w_u32(b));
    return dm.x * vec4(q) + dm.y;
#endif
}

#elif WTYPE == VKI_WTYPE_Q4_K || WTYPE == VKI_WTYPE_Q5_K
// ---- Q4_K, Q5_K: 256 elements in 8 sub-blocks of 32 with 6-bit scales and mins (12 packed
// bytes). Element 64g + l (l < 32) is the low nibble of q[32g + l], element 64g + 32 + l the
// high nibble; Q5_K adds bit 4 from bit 2g (low) or 2g + 1 (high) of qh[l].
// y = d * sc * q - dmin * m, as d * sc and dmin * m first. -----------------------------------
#define WQ_QUANT 1
#define WQ_BLOCK 256u
#define WQ_PAIR_A(p) (64u * ((p) >> 3) + 4u * ((p) & 7u))
#define WQ_PAIR_B(p) (64u * ((p) >> 3) + 4u * ((p) & 7u) + 32u)
#if WTYPE == VKI_WTYPE_Q4_K
#define WQ_BLOCK_BYTES 144u
#define WQ_QS 16u
#else
#define WQ_BLOCK_BYTES 176u
#define WQ_QH 16u
#define WQ_QS 48u
#endif
// 6-bit scale and min of sub-block j of the block at b (scale_min_k4 of dtype.c).
uvec2 scale_min_k4(uint b, uint j)
{
    uint lo = w_u32(b + 4u), mid = w_u32(b + 8u), hi = w_u32(b + 12u);
    uint s = j < 4u ? lo : mid, m = j < 4u ? mid : hi; // bytes j and j + 4
    uint sh = (j & 3u) << 3;
    if (j < 4u) return uvec2((s >> sh) & 63u, (m >> sh) & 63u);
    uint top_s = (lo >> sh) >> 6, top_m = (mid >> sh) >> 6; // bytes j - 4 and j
    return uvec2(((m >> sh) & 0xFu) | ((top_s & 3u) << 4), (((m >> sh) >> 4) & 0xFu) | ((top_m & 3u) << 4));
}
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 8) * WQ_BLOCK_BYTES, e = k & 255u;
    uint g = e >> 6, hi = (e >> 5) & 1u, l = e & 31u, sub = 2u * g + hi;
    uvec4 q = bytes4(w_u32(b + WQ_QS + 32u * g + l) >> (4u * hi)) & 0xFu;
#ifdef WQ_QH
    q |= (bytes4(w_u32(b + WQ_QH + l) >> sub) & 1u) << 4;
#endif
    vec2 dm = unpackHalf2x16(w_u32(b));
    uvec2 sm = scale_min_k4(b, sub);
    return (dm.x * float(sm.x)) * vec4(q) - dm.y * float(sm.y);
}

#elif WTYPE == VKI_WTYPE_Q6_K
// ---- Q6_K: u8 ql[128]; u8 qh[64]; i8 sc[16]; f16 d. In half n (128 elements), element
// 32k + l (k < 4, l < 32) is nibble k >> 1 of ql[64n + 32(k & 1) + l] with bits 2k..2k+1 of
// qh[32n + l] on top, minus 32, scaled by d * sc[8n + 2k + l / 16]. ---------------------------
#define WQ_QUANT 1
#define WQ_BLOCK 256u
#define WQ_BLOCK_BYTES 210u
#define WQ_PAIR_A(p) (128u * ((p) >> 4) + 32u * (((p) >> 3) & 1u) + 4u * ((p) & 7u))
#define WQ_PAIR_B(p) (WQ_PAIR_A(p) + 64u)
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 8) * 210u, e = k & 255u;
    uint n = e >> 7, kk = (e >> 5) & 3u, l = e & 31u;
    uvec4 lo = bytes4(w_u32(b + 64u * n + 32u * (kk & 1u) + l) >> (4u * (kk >> 1))) & 0xFu;
    uvec4 hi = bytes4(w_u32(b + 128u + 32u * n + l) >> (2u * kk)) & 3u;
    uint sb = b + 192u + 8u * n + 2u * kk + (l >> 4);
    int sc = int((w_words[sb >> 2] >> ((sb & 3u) << 3)) << 24) >> 24; // sign-extended byte
    return (w_half(b + 208u) * float(sc)) * (vec4(lo | (hi << 4)) - 32.0);
}

#else
#error "quant.glsl: WTYPE must be one of VKI_WTYPE_* (abi_matmul.h)"
#endif

#endif
