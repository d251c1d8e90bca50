// Weight decoding for every dtype a weight may have: F32, F16, BF16 and the GGUF block formats
// of graph/dtype.c (whose vki_dequant_block is the reference this mirrors, bit for bit where
// the arithmetic allows). The type is the variant define WTYPE (VKI_WTYPE_*, abi_matmul.h).
//
// The including kernel declares the weight buffer as 32-bit words before including:
//     layout(std430, binding = ...) readonly buffer W { uint w_words[]; };
// or defines W_WORD(i), word i of the weights, some other way (a texel buffer).
// Blocks are 18, 20, 22, 34, 144, 176 or 210 bytes, so a block field is generally not 4-byte
// aligned; every block size and field offset is even, though, so a 16-bit field always lies in
// one word and a 32-bit field in at most two. Reading words rather than bytes or halves needs
// neither 8- nor 16-bit storage, so one variant serves every profile. A read only ever touches
// words holding at least one byte of the field, so it stays inside the binding.
//
// Two ways to decode, for two access patterns:
//   chunks   32 elements one thread decodes at once from few words: a whole block of the
//            32-element formats, the low and high nibbles of 16 bytes of a K format, 32 floats.
//            The matrix-vector and register-tiled kernels use them: on lavapipe every loaded
//            32-bit word costs a loop over the SIMD lanes (about 30 cycles), so words are
//            loaded once each; on GPUs fewer, wider loads are no worse.
//   quads    any 4 consecutive elements, for tile loads of arbitrary K slabs and for get_rows.
//
// What a kernel uses:
//   WQ_QUANT          1 for block formats (a row is addressed in bytes), 0 for F32/F16/BF16
//                     (a row is addressed in elements)
//   WQ_BLOCK          elements per block (1 for float types)
//   WQ_CHUNK          elements per chunk (32; divides WQ_BLOCK for block formats)
//   WQ_RUNS, WQ_RUN(ch, i)   chunk ch of a row is WQ_RUNS runs of WQ_RUN_LENGTH consecutive
//                     elements, run i starting at element WQ_RUN(ch, i)
//   void w_chunk(row, ch, out float v[WQ_CHUNK])   chunk ch of the row at `row`, run by run
//                     (float types: whole chunks only; the tail of a row takes w_elem)
//   vec4 w_quad(row, k)          elements k..k+3 (k % 4 == 0; float types: k + 4 <= row length)
//   float w_elem(row, k)         element k (float types only)
//   W_ALIGNED         every row starts 4-byte aligned and chunks are whole words (from the
//                     specialisation constant ALIGN): the compiler drops the realignment
//   fetch_words(word, b, n, bytes, aligned, r)  realigned words of bytes [b, b + 4n), word(i)
//                     reading word i of a buffer; fetch_words_wide(_max) the same from 16-byte
//                     texels (W_TEXEL16), into an array of a given size, b known to be a
//                     multiple of 2, 4 or 16 bytes
//   WQ_DOT            1 where the format has a raw chunk dot (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): a
//                     mat-vec that holds x in registers scales chunk element i by wq_x_scale(i)
//                     once, and W_DOT_AT(r, o, xs, xsum, out) is then the dot with x of the block
//                     at constant byte o of realigned words r (xsum: the sum of the unscaled x
//                     elements). Each weight element is masked in place and converted, never
//                     shifted down or scaled: the block's d (and m) multiply the sums, once per
//                     chunk. W_DOT_AT is W_DECODE_AT(r, o, wv, dm) (8 quads and d, m: once per
//                     block) then W_DOT_DECODED(wv, dm, xs, xsum, out) (once per x column).
//   WQ_INT8           1 where a block's values are d * (q - WQ_INT8_OFFSET) with q fitting a
//                     signed byte (Q8_0, Q4_0): the integer-dot mat-vec (matvec.comp, INT_DOT=1).
//                     float w_int8(row, ch, out uint q[8]) gives block ch's q as packed bytes,
//                     element 4j + t at bits 8t of word j (x_chunk_int8's packing), and its d.

#ifndef VKI_QUANT_GLSL
#define VKI_QUANT_GLSL

layout(constant_id = VKI_SPEC_MM_ALIGN) const uint ALIGN = 0;
const bool W_ALIGNED = (ALIGN & VKI_MM_ALIGN_W) != 0u;

// ---- Word access ---------------------------------------------------------------------------

#ifndef W_WORD
#define W_WORD(i) w_words[i]
#endif
#define w_word(i) W_WORD(i)
#define WQ_CHUNK VKI_MM_CHUNK

uint w_u16(uint b) // b even
{
    return (W_WORD(b >> 2) >> ((b & 2u) << 3)) & 0xFFFFu;
}

uint w_u32(uint b) // b even: one word, or the halves of two
{
    uint i = b >> 2;
    uint lo = W_WORD(i), hi = W_WORD(i + ((b >> 1) & 1u));
    return (b & 2u) == 0u ? lo : (lo >> 16) | (hi << 16);
}

float w_half(uint b) { return unpackHalf2x16(w_u16(b)).x; }

// n realigned words r[0..n-1] of bytes [b, b + 4n) (b even) of word buffer `buf`, of which
// the first `bytes` hold data: at a b % 4 == 2 start each word is the high half of one loaded
// word and the low half of the next, and the word past the data is never read (its index is
// then the previous one's, loaded once). `buf(i)` reads word i. A macro, since GLSL cannot
// pass buffers.
#define WQ_FETCH_MAX 16
#define fetch_words(buf, b, n, bytes, aligned, r)                                               \
    {                                                                                           \
        uint fw_i = (b) >> 2;                                                                   \
        bool fw_odd = !(aligned) && ((b) & 2u) != 0u;                                           \
        uint fw_prev = buf(fw_i);                                                               \
        for (uint fw_j = 0u; fw_j < (n); fw_j++) {                                              \
            uint fw_last = fw_i + fw_j + ((bytes) > 4u * (n) - 2u && fw_odd ? 1u : 0u);         \
            uint fw_next = buf(fw_j + 1u < (n) ? fw_i + fw_j + 1u : fw_last);                  \
            r[fw_j] = fw_odd ? (fw_prev >> 16) | (fw_next << 16) : fw_prev;                     \
            fw_prev = fw_next;                                                                  \
        }                                                                                       \
    }

// The same from a weight buffer of 16-byte texels, W_TEXEL16(i) reading texel i (kernels that
// define it: on lavapipe a 16-byte texel load is 8 vector loads and a transpose, a 4-byte one a
// gather, which AMD's Zen runs slowly): the texels holding the bytes, at most the last one,
// W_TEXEL_LAST, whose words past the data are never used; then shifted by the whole words
// (two selects per word) and, for a b % 4 == 2 start, by a half. `align` is what is known of
// b: a multiple of 2, 4 or 16 bytes (16: whole texels, nothing to shift).
#define fetch_words_wide(b, n, aligned, r)                                                     \
    fetch_words_wide_max(b, n, (aligned) ? 4u : 2u, r, WQ_FETCH_MAX)
// The same into r[nmax] (n <= nmax, a constant): matvec_wide fetches runs of blocks at once.
#define fetch_words_wide_max(b, n, align, r, nmax)                                              \
    {                                                                                           \
        uint fw_t = (b) >> 4, fw_s = (align) >= 16u ? 0u : ((b) >> 2) & 3u;                     \
        bool fw_odd = (align) < 4u && ((b) & 2u) != 0u;                                         \
        uint fw_w[4u * ((nmax) / 4u + 2u)], fw_a[(nmax) + 2u], fw_c[(nmax) + 1u];               \
        [[unroll]] for (uint fw_i = 0u; fw_i < (4u * (n) + ((align) >= 16u ? 0u : (align) >= 4u ? 12u : 14u) + 15u) / 16u; fw_i++) { \
            uvec4 fw_q = W_TEXEL16(min(fw_t + fw_i, W_TEXEL_LAST));                               \
            for (uint fw_j = 0u; fw_j < 4u; fw_j++) fw_w[4u * fw_i + fw_j] = fw_q[fw_j];          \
        }                                                                                       \
        [[unroll]] for (uint fw_j = 0u; fw_j < (n) + 2u; fw_j++)                                  \
            fw_a[fw_j] = (fw_s & 2u) != 0u ? fw_w[min(fw_j + 2u, 4u * ((nmax) / 4u + 2u) - 1u)] : fw_w[fw_j]; \
        [[unroll]] for (uint fw_j = 0u; fw_j < (n) + 1u; fw_j++)                                  \
            fw_c[fw_j] = (fw_s & 1u) != 0u ? fw_a[fw_j + 1u] : fw_a[fw_j];                       \
        [[unroll]] for (uint fw_j = 0u; fw_j < (n); fw_j++)                                       \
            r[fw_j] = fw_odd ? (fw_c[fw_j] >> 16) | (fw_c[fw_j + 1u] << 16) : fw_c[fw_j];        \
    }

// The realigned words of the weights kernels' w_chunk and w_quad read.
#ifdef W_TEXEL16
#define WQ_FETCH(b, n, bytes, r) fetch_words_wide(b, n, W_ALIGNED, r)
#else
#define WQ_FETCH(b, n, bytes, r) fetch_words(w_word, b, n, bytes, W_ALIGNED, r)
#endif

// 32 bits at byte offset `off` (even, a constant) of realigned words r.
#define WQ_FIELD32(r, off)                                                                      \
    (((off) & 2u) == 0u ? r[(off) >> 2] : (r[(off) >> 2] >> 16) | (r[((off) >> 2) + 1u] << 16))

// The four bytes of v as unsigned values.
uvec4 bytes4(uint v) { return (uvec4(v) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu; }

#if WTYPE == VKI_WTYPE_F32 || WTYPE == VKI_WTYPE_F16 || WTYPE == VKI_WTYPE_BF16
// ---- Float types: a row is addressed in elements --------------------------------------------
#define WQ_QUANT 0
#define WQ_BLOCK 1u

#if WTYPE == VKI_WTYPE_F32
#define WQ_BLOCK_BYTES 4u
void w_chunk(uint row, uint ch, out float v[WQ_CHUNK])
{
    uint r[WQ_FETCH_MAX];
    for (uint h = 0u; h < WQ_CHUNK / 16u; h++) {
        WQ_FETCH(4u * (row + WQ_CHUNK * ch + 16u * h), 16u, 64u, r);
        for (uint i = 0u; i < 16u; i++) v[16u * h + i] = uintBitsToFloat(r[i]);
    }
}
vec4 w_quad(uint row, uint k)
{
    uint e = row + k;
    return uintBitsToFloat(uvec4(W_WORD(e), W_WORD(e + 1u), W_WORD(e + 2u), W_WORD(e + 3u)));
}
float w_elem(uint row, uint k) { return uintBitsToFloat(W_WORD(row + k)); }

#else
#define WQ_BLOCK_BYTES 2u
vec2 w_pair(uint h) // the two 16-bit elements of word h, first in the low half
{
#if WTYPE == VKI_WTYPE_F16
    return unpackHalf2x16(h);
#else
    return uintBitsToFloat(uvec2(h << 16, h & 0xFFFF0000u));
#endif
}
void w_chunk(uint row, uint ch, out float v[WQ_CHUNK])
{
    uint r[WQ_FETCH_MAX];
    WQ_FETCH(2u * (row + WQ_CHUNK * ch), WQ_CHUNK / 2u, 2u * WQ_CHUNK, r);
    for (uint j = 0u; j < WQ_CHUNK / 2u; j++) {
        vec2 h = w_pair(r[j]);
        v[2u * j] = h.x;
        v[2u * j + 1u] = h.y;
    }
}
vec4 w_quad(uint row, uint k)
{
    uint r[WQ_FETCH_MAX];
    WQ_FETCH(2u * (row + k), 2u, 8u, r);
    return vec4(w_pair(r[0]), w_pair(r[1]));
}
float w_elem(uint row, uint k)
{
    uint e = row + k;
    return w_pair(W_WORD(e >> 1) >> ((e & 1u) << 4)).x;
}
#endif

#elif WTYPE == VKI_WTYPE_Q8_0
// ---- Q8_0: f16 d; i8 q[32]. y = d * q --------------------------------------------------------
#define WQ_QUANT 1
#define WQ_BLOCK 32u
#define WQ_BLOCK_BYTES 34u
void w_chunk(uint row, uint ch, out float v[WQ_CHUNK])
{
    uint r[WQ_FETCH_MAX];
    WQ_FETCH(row + 34u * ch, 9u, 34u, r);
    float d = unpackHalf2x16(r[0]).x;
    for (uint j = 0u; j < 8u; j++) {
        int q = int(WQ_FIELD32(r, 2u + 4u * j));
        for (uint t = 0u; t < 4u; t++) v[4u * j + t] = d * float(bitfieldExtract(q, int(8u * t), 8));
    }
}
// A signed byte of a word, masked in place at bits 24..31 as an int, is q * 2^24.
#define WQ_DOT 1
float wq_x_scale(uint i) { return 1.0 / 16777216.0; }
// The block's 32 elements as 8 quads wv (quad j: elements WQ_XOFF(j)..+3, masked in place),
// its d (and m) in dm: decoded once, dotted with as many x columns as a kernel holds.
#define WQ_XOFF(j) (4u * (j))
#define W_DECODE_AT(r, o, wv, dm)                                                               \
    {                                                                                           \
        for (uint wd_j = 0u; wd_j < 8u; wd_j++) {                                               \
            uint wd_q = WQ_FIELD32(r, (o) + 2u + 4u * wd_j);                                    \
            wv[wd_j] = vec4(ivec4(uvec4(wd_q << 24, wd_q << 16, wd_q << 8, wd_q) & 0xFF000000u)); \
        }                                                                                       \
        dm = unpackHalf2x16(WQ_FIELD32(r, (o)));                                                \
    }
#define WQ_DM_DOT(dm, dot, xsum) ((dm).x * (dot))
#define WQ_INT8 1
#define WQ_INT8_OFFSET 0
float w_int8(uint row, uint ch, out uint q[8])
{
    uint r[WQ_FETCH_MAX];
    WQ_FETCH(row + 34u * ch, 9u, 34u, r);
    for (uint j = 0u; j < 8u; j++) q[j] = WQ_FIELD32(r, 2u + 4u * j);
    return unpackHalf2x16(r[0]).x;
}
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
// Element values from their 4 (5) bits q, d and m (the first 32 bits of the block).
vec4 w_scale4(uvec4 q, uint dm)
{
#if WTYPE == VKI_WTYPE_Q4_0
    return unpackHalf2x16(dm).x * (vec4(q) - 8.0);
#elif WTYPE == VKI_WTYPE_Q5_0
    return unpackHalf2x16(dm).x * (vec4(q) - 16.0);
#else
    vec2 d = unpackHalf2x16(dm);
    return d.x * vec4(q) + d.y;
#endif
}
void w_chunk(uint row, uint ch, out float v[WQ_CHUNK])
{
    uint r[WQ_FETCH_MAX];
    uint b = row + WQ_BLOCK_BYTES * ch;
    WQ_FETCH(b, (WQ_BLOCK_BYTES + 3u) / 4u, WQ_BLOCK_BYTES, r);
#ifdef WQ_QH
    uint qh = WQ_FIELD32(r, WQ_QH);
#endif
    for (uint j = 0u; j < 4u; j++) {
        uvec4 q = bytes4(WQ_FIELD32(r, WQ_QS + 4u * j));
        uvec4 lo = q & 0xFu, hi = q >> 4;
#ifdef WQ_QH
        lo |= ((uvec4(qh >> (4u * j)) >> uvec4(0u, 1u, 2u, 3u)) & 1u) << 4;
        hi |= ((uvec4(qh >> (16u + 4u * j)) >> uvec4(0u, 1u, 2u, 3u)) & 1u) << 4;
#endif
        vec4 a = w_scale4(lo, r[0]), c = w_scale4(hi, r[0]);
        for (uint t = 0u; t < 4u; t++) {
            v[4u * j + t] = a[t];
            v[16u + 4u * j + t] = c[t];
        }
    }
}
// Element 4j + t is the nibble at bits 8t..8t+3 of qs word j, element 16 + 4j + t the one at
// bits 8t+4..8t+7, taken from the word shifted down by 4 (so that no nibble reaches the sign
// bit): masked in place, both are q * 2^8t. The 5-bit formats put bit 4j + t (16 + 4j + t) of
// qh on top, at bit 8t + 4: qh shifted down to bit t, then up by 7t + 4, and masked.
#define WQ_DOT 1
float wq_x_scale(uint i) { return exp2(-8.0 * float(i & 3u)); }
#if WTYPE == VKI_WTYPE_Q4_0
#define WQ_DM_DOT(dm, dot, xsum) ((dm).x * ((dot) - 8.0 * (xsum))) // d * (q - 8)
#elif WTYPE == VKI_WTYPE_Q5_0
#define WQ_DM_DOT(dm, dot, xsum) ((dm).x * ((dot) - 16.0 * (xsum))) // d * (q - 16)
#else
#define WQ_DM_DOT(dm, dot, xsum) ((dm).x * (dot) + (dm).y * (xsum)) // d * q + m
#endif
#if WTYPE == VKI_WTYPE_Q4_0
// The nibbles as they are (0..15, non-negative bytes): the -8 is taken off the block's integer
// sum as 8 * sum(q_x), which the mat-vec forms once per x chunk for all its rows, rather than
// from every weight byte, which would cost each row's words a subtraction more.
#define WQ_INT8 1
#define WQ_INT8_OFFSET 8
float w_int8(uint row, uint ch, out uint q[8])
{
    uint r[WQ_FETCH_MAX];
    WQ_FETCH(row + 18u * ch, 5u, 18u, r);
    for (uint j = 0u; j < 4u; j++) {
        uint w = WQ_FIELD32(r, 2u + 4u * j);
        q[j] = w & 0x0F0F0F0Fu;             // elements 4j..4j+3
        q[4u + j] = (w >> 4) & 0x0F0F0F0Fu; // elements 16 + 4j..
    }
    return unpackHalf2x16(r[0]).x;
}
#endif
#ifdef WQ_QH
#define WQ_QH_AT(r, o) WQ_FIELD32(r, (o) + WQ_QH)
#define WQ_HIGH_BITS(qh, j, hi)                                                                 \
    ((uvec4((qh) >> (4u * (j) + 16u * (hi))) << uvec4(4u, 11u, 18u, 25u)) &                    \
     uvec4(0x10u, 0x1000u, 0x100000u, 0x10000000u))
#else
#define WQ_QH_AT(r, o) 0u
#define WQ_HIGH_BITS(qh, j, hi) uvec4(0u)
#endif
// Quad 2j: elements 4j..4j+3 (low nibbles of qs word j), quad 2j + 1: 16 + 4j.. (high).
#define WQ_XOFF(j) (16u * ((j) & 1u) + 4u * ((j) >> 1))
#define W_DECODE_AT(r, o, wv, dm)                                                               \
    {                                                                                           \
        const uvec4 wd_nib = uvec4(0xFu, 0xF00u, 0xF0000u, 0xF000000u);                         \
        uint wd_qh = WQ_QH_AT(r, o);                                                            \
        for (uint wd_j = 0u; wd_j < 4u; wd_j++) {                                               \
            uint wd_q = WQ_FIELD32(r, (o) + WQ_QS + 4u * wd_j);                                 \
            wv[2u * wd_j] = vec4(ivec4((uvec4(wd_q) & wd_nib) | WQ_HIGH_BITS(wd_qh, wd_j, 0u))); \
            wv[2u * wd_j + 1u] = vec4(ivec4((uvec4(wd_q >> 4) & wd_nib) | WQ_HIGH_BITS(wd_qh, wd_j, 1u))); \
        }                                                                                       \
        dm = unpackHalf2x16(WQ_FIELD32(r, (o)));                                                \
    }
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 5) * WQ_BLOCK_BYTES, j = k & 31u;
    uvec4 q = bytes4(w_u32(b + WQ_QS + (j & 15u)) >> ((j & 16u) >> 2)) & 0xFu;
#ifdef WQ_QH
    q |= ((uvec4(w_u32(b + WQ_QH) >> j) >> uvec4(0u, 1u, 2u, 3u)) & 1u) << 4;
#endif
    return w_scale4(q, w_u32(b));
}

#elif WTYPE == VKI_WTYPE_Q4_K || WTYPE == VKI_WTYPE_Q5_K
// ---- Q4_K, Q5_K: 256 elements in 8 sub-blocks of 32 with 6-bit scales and mins (12 packed
// bytes after f16 d, dmin). Element 64g + l (l < 32) is the low nibble of q[32g + l], element
// 64g + 32 + l the high nibble; Q5_K adds bit 4 from bit 2g (low) or 2g + 1 (high) of qh[l].
// y = d * sc * q - dmin * m, as d * sc and dmin * m first. Chunk ch: l = 16 (ch & 1) + 0..15
// of g = (ch >> 1) & 3, low nibbles then high ones, the two runs 64g + l and 64g + 32 + l.
#define WQ_QUANT 1
#define WQ_BLOCK 256u
#define WQ_RUNS 2u
#define WQ_RUN(ch, i) (256u * ((ch) >> 3) + 64u * (((ch) >> 1) & 3u) + 16u * ((ch) & 1u) + 32u * (i))
#if WTYPE == VKI_WTYPE_Q4_K
#define WQ_BLOCK_BYTES 144u
#define WQ_QS 16u
#else
#define WQ_BLOCK_BYTES 176u
#define WQ_QH 16u
#define WQ_QS 48u
#endif
// 6-bit scale and min of sub-block j (scale_min_k4 of dtype.c) from the 12 scale bytes in
// words s0..s2. Plain words rather than an array: j is dynamic, and a dynamically indexed
// array costs more than two selects.
uvec2 scale_min_k4(uint s0, uint s1, uint s2, uint j)
{
    uint sh = (j & 3u) << 3;
    uint b0 = (s0 >> sh) & 0xFFu, b1 = (s1 >> sh) & 0xFFu, b2 = (s2 >> sh) & 0xFFu; // j % 4 (+4, +8)
    if (j < 4u) return uvec2(b0 & 63u, b1 & 63u);
    return uvec2((b2 & 0xFu) | ((b0 >> 6) << 4), (b2 >> 4) | ((b1 >> 6) << 4));
}
// d * sc and dmin * m of sub-block j, from the header words h[0..3].
vec2 w_sub_scale(uint h[WQ_FETCH_MAX], uint j)
{
    vec2 dm = unpackHalf2x16(h[0]);
    uvec2 sm = scale_min_k4(h[1], h[2], h[3], j);
    return vec2(dm.x * float(sm.x), dm.y * float(sm.y));
}
void w_chunk(uint row, uint ch, out float v[WQ_CHUNK])
{
    uint b = row + (ch >> 3) * WQ_BLOCK_BYTES, g = (ch >> 1) & 3u, l0 = 16u * (ch & 1u);
    uint h[WQ_FETCH_MAX], q[WQ_FETCH_MAX];
    WQ_FETCH(b, 4u, 16u, h);
    WQ_FETCH(b + WQ_QS + 32u * g + l0, 4u, 16u, q);
#ifdef WQ_QH
    uint qh[WQ_FETCH_MAX];
    WQ_FETCH(b + WQ_QH + l0, 4u, 16u, qh);
#endif
    vec2 s1 = w_sub_scale(h, 2u * g), s2 = w_sub_scale(h, 2u * g + 1u);
    for (uint j = 0u; j < 4u; j++) {
        uvec4 lo = bytes4(q[j]) & 0xFu, hi = bytes4(q[j]) >> 4;
#ifdef WQ_QH
        lo |= (bytes4(qh[j] >> (2u * g)) & 1u) << 4;
        hi |= (bytes4(qh[j] >> (2u * g + 1u)) & 1u) << 4;
#endif
        vec4 a = s1.x * vec4(lo) - s1.y, c = s2.x * vec4(hi) - s2.y;
        for (uint t = 0u; t < 4u; t++) {
            v[4u * j + t] = a[t];
            v[16u + 4u * j + t] = c[t];
        }
    }
}
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 8) * WQ_BLOCK_BYTES, e = k & 255u;
    uint g = e >> 6, hi = (e >> 5) & 1u, l = e & 31u, sub = 2u * g + hi;
    uvec4 q = bytes4(w_u32(b + WQ_QS + 32u * g + l) >> (4u * hi)) & 0xFu;
#ifdef WQ_QH
    q |= (bytes4(w_u32(b + WQ_QH + l) >> sub) & 1u) << 4;
#endif
    uint h[WQ_FETCH_MAX];
    WQ_FETCH(b, 4u, 16u, h);
    vec2 s = w_sub_scale(h, sub);
    return s.x * vec4(q) - s.y;
}

#elif WTYPE == VKI_WTYPE_Q6_K
// ---- Q6_K: u8 ql[128]; u8 qh[64]; i8 sc[16]; f16 d. In half n (128 elements), element
// 32k + l (k < 4, l < 32) is nibble k >> 1 of ql[64n + 32(k & 1) + l] with bits 2k..2k+1 of
// qh[32n + l] on top, minus 32, scaled by d * sc[8n + 2k + l / 16]. Chunk ch (n, kp, h = its
// bits 2..0): l = 16h + 0..15 of k = kp (low nibbles) and k = kp + 2 (high nibbles of the same
// ql bytes), the runs 128n + 32kp + 16h and 64 after. ---------------------------------------
#define WQ_QUANT 1
#define WQ_BLOCK 256u
#define WQ_BLOCK_BYTES 210u
#define WQ_RUNS 2u
#define WQ_RUN(ch, i)                                                                           \
    (256u * ((ch) >> 3) + 128u * (((ch) >> 2) & 1u) + 32u * (((ch) >> 1) & 1u) + 16u * ((ch) & 1u) + \
     64u * (i))
void w_chunk(uint row, uint ch, out float v[WQ_CHUNK])
{
    uint b = row + (ch >> 3) * 210u, n = (ch >> 2) & 1u, kp = (ch >> 1) & 1u, l0 = 16u * (ch & 1u);
    uint ql[WQ_FETCH_MAX], qh[WQ_FETCH_MAX], sc[WQ_FETCH_MAX];
    WQ_FETCH(b + 64u * n + 32u * kp + l0, 4u, 16u, ql);
    WQ_FETCH(b + 128u + 32u * n + l0, 4u, 16u, qh);
    WQ_FETCH(b + 192u + 8u * n, 2u, 8u, sc);
    float d = w_half(b + 208u);
    int sh = int(8u * (2u * kp + (ch & 1u))); // sc[8n + 2k + l0 / 16] for k = kp and kp + 2
    float d1 = d * float(bitfieldExtract(int(sc[0]), sh, 8));
    float d2 = d * float(bitfieldExtract(int(sc[1]), sh, 8));
    for (uint j = 0u; j < 4u; j++) {
        uvec4 lo = bytes4(ql[j]) & 0xFu, hi = bytes4(ql[j]) >> 4;
        lo |= (bytes4(qh[j] >> (2u * kp)) & 3u) << 4;
        hi |= (bytes4(qh[j] >> (2u * kp + 4u)) & 3u) << 4;
        vec4 a = d1 * (vec4(lo) - 32.0), c = d2 * (vec4(hi) - 32.0);
        for (uint t = 0u; t < 4u; t++) {
            v[4u * j + t] = a[t];
            v[16u + 4u * j + t] = c[t];
        }
    }
}
vec4 w_quad(uint row, uint k)
{
    uint b = row + (k >> 8) * 210u, e = k & 255u;
    uint n = e >> 7, kk = (e >> 5) & 3u, l = e & 31u;
    uvec4 lo = bytes4(w_u32(b + 64u * n + 32u * (kk & 1u) + l) >> (4u * (kk >> 1))) & 0xFu;
    uvec4 hi = bytes4(w_u32(b + 128u + 32u * n + l) >> (2u * kk)) & 3u;
    uint sb = b + 192u + 8u * n + 2u * kk + (l >> 4);
    int sc = int((W_WORD(sb >> 2) >> ((sb & 3u) << 3)) << 24) >> 24; // sign-extended byte
    return (w_half(b + 208u) * float(sc)) * (vec4(lo | (hi << 4)) - 32.0);
}

#else
#error "quant.glsl: WTYPE must be one of VKI_WTYPE_* (abi_matmul.h)"
#endif

#ifndef WQ_DOT
#define WQ_DOT 0
#endif
#ifndef WQ_INT8
#define WQ_INT8 0
#endif

#if WQ_DOT
// The dot of a block decoded by W_DECODE_AT (wv, dm) with scaled x elements xs (xsum: the
// sum of the unscaled ones): the same fmas in the same order for every column, so that a
// column's result does not depend on how many others share the decode.
#define W_DOT_DECODED(wv, dm, xs, xsum, out)                                                    \
    {                                                                                           \
        vec4 wd_s = vec4(0.0);                                                                  \
        for (uint wd_j = 0u; wd_j < 8u; wd_j++)                                                 \
            wd_s = fma(wv[wd_j], vec4(xs[WQ_XOFF(wd_j)], xs[WQ_XOFF(wd_j) + 1u],                \
                                      xs[WQ_XOFF(wd_j) + 2u], xs[WQ_XOFF(wd_j) + 3u]), wd_s);   \
        out = WQ_DM_DOT(dm, (wd_s.x + wd_s.y) + (wd_s.z + wd_s.w), xsum);                      \
    }
#define W_DOT_AT(r, o, xs, xsum, out)                                                           \
    {                                                                                           \
        vec4 wda_v[8];                                                                          \
        vec2 wda_dm;                                                                            \
        W_DECODE_AT(r, o, wda_v, wda_dm);                                                       \
        W_DOT_DECODED(wda_v, wda_dm, xs, xsum, out);                                            \
    }
#endif

// A chunk is WQ_RUNS runs of consecutive elements; most formats' chunks are one run.
#ifndef WQ_RUNS
#define WQ_RUNS 1u
#define WQ_RUN(ch, i) (WQ_CHUNK * (ch))
#endif
#define WQ_RUN_LENGTH (WQ_CHUNK / WQ_RUNS)

#endif
