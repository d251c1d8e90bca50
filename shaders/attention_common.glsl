// Bindings, operand access and row bookkeeping shared by the attention kernels
// (attention_tiled.comp, attention_rows.comp, attention_keys.comp). Include after the
// local-size declaration.
#ifndef VKI_ATTENTION_COMMON_GLSL
#define VKI_ATTENTION_COMMON_GLSL

#include "words.glsl"

layout(std430, set = 0, binding = VKI_ATTN_BINDING_Q) readonly buffer Q { uint q_words[]; };
// K_WORD(i), V_WORD(i): word i of k, v. TEXEL=1 reads them as uniform texel buffers of R32_UINT
// (lavapipe: a gather instead of a loop over the lanes; see matmul_common.glsl).
// WIDE=1 reads them as storage texel buffers of 16-byte texels (R32G32B32A32_UINT, as
// matvec_wide does): K_TEXEL(t), V_TEXEL(t) read texel t, whole rows of an F16 cache whose rows
// start at 16-byte texels (the lowering checks), 8 dims to a load.
// APPEND=1 (with WIDE) also stores the new rows of a decode step into K and V (abi_attention.h).
#if defined(APPEND) && APPEND
#define KV_ACCESS restrict
#else
#define KV_ACCESS readonly restrict
#endif
#if defined(WIDE) && WIDE
layout(set = 0, binding = VKI_ATTN_BINDING_K, rgba32ui) uniform KV_ACCESS uimageBuffer k_wide;
layout(set = 0, binding = VKI_ATTN_BINDING_V, rgba32ui) uniform KV_ACCESS uimageBuffer v_wide;
#define K_TEXEL(t) imageLoad(k_wide, int(t))
#define V_TEXEL(t) imageLoad(v_wide, int(t))
#define K_WORD(i) K_TEXEL((i) >> 2)[(i) & 3u]
#define V_WORD(i) V_TEXEL((i) >> 2)[(i) & 3u]
#elif defined(TEXEL) && TEXEL
layout(set = 0, binding = VKI_ATTN_BINDING_K) uniform usamplerBuffer k_texels;
layout(set = 0, binding = VKI_ATTN_BINDING_V) uniform usamplerBuffer v_texels;
#define K_WORD(i) texelFetch(k_texels, int(i)).x
#define V_WORD(i) texelFetch(v_texels, int(i)).x
#else
layout(std430, set = 0, binding = VKI_ATTN_BINDING_K) readonly buffer K { uint k_words[]; };
layout(std430, set = 0, binding = VKI_ATTN_BINDING_V) readonly buffer V { uint v_words[]; };
#define K_WORD(i) k_words[i]
#define V_WORD(i) v_words[i]
#endif
#if defined(APPEND) && APPEND
layout(std430, set = 0, binding = VKI_ATTN_BINDING_K_NEW) readonly buffer KN { float k_new[]; };
layout(std430, set = 0, binding = VKI_ATTN_BINDING_V_NEW) readonly buffer VN { float v_new[]; };
#else
layout(std430, set = 0, binding = VKI_ATTN_BINDING_MASK) readonly buffer M { uint m_words[]; };
layout(std430, set = 0, binding = VKI_ATTN_BINDING_PART) buffer Part { float part[]; };
#endif
layout(std430, set = 0, binding = VKI_ATTN_BINDING_OUT) writeonly buffer O { float o[]; };
layout(std430, set = 0, binding = VKI_ATTN_BINDING_POS) readonly buffer P { int pos[]; };
VKI_PUSH_BLOCK(VKI_PC_ATTENTION)

layout(constant_id = VKI_ATTN_SPEC_HEAD_DIM) const uint HD = 64;
layout(constant_id = VKI_ATTN_SPEC_ROWS) const uint ROWS = 16;

// Scores at or below NEG count as masked (an -inf mask entry is clamped to it). A finite
// sentinel keeps the arithmetic free of inf - inf, whatever a driver assumes about infinities;
// a row whose every score is masked ends with l = 0 and gives zeros.
const float NEG = -1.0e30;

float load_q(uint d, uint h, uint i)
{
    uint e = pc.q_off + d * pc.q_nb0 + h * pc.q_nb1 + i * pc.q_nb2;
    return VKI_LOAD_WORD(q_words, e, (pc.flags & VKI_ATTN_Q_F16) != 0);
}

float load_k(uint d, uint hk, uint j)
{
    uint e = pc.k_off + d * pc.k_nb0 + hk * pc.k_nb1 + j * pc.k_nb2;
    bool f16 = (pc.flags & VKI_ATTN_K_F16) != 0;
    return VKI_WORD_VALUE(K_WORD(VKI_WORD_INDEX(e, f16)), e, f16);
}

float load_v(uint d, uint hk, uint j)
{
    uint e = pc.v_off + d * pc.v_nb0 + hk * pc.v_nb1 + j * pc.v_nb2;
    bool f16 = (pc.flags & VKI_ATTN_V_F16) != 0;
    return VKI_WORD_VALUE(V_WORD(VKI_WORD_INDEX(e, f16)), e, f16);
}

// ---- Q8_0 K and V (VKI_ATTN_KV_Q8_0), a quantised KV cache: dim 0 is 34-byte blocks (f16
// scale, then i8 q[32]) at even bytes, offsets and strides in bytes, so the scale and every
// pair of quants are half a word. Element d is scale * q[d % 32] of block d / 32, exactly as
// the CPU decodes it (an f16 times an i8 is exact in f32). Kernels test the flag outside their
// loops over kv positions (see attention_keys.comp's walk), so that the F32/F16 loops are as
// they were.

#define Q8_SCALE(word, b) unpackHalf2x16(word((b) >> 2) >> (((b) & 2u) << 3)).x
#define Q8_QUANT(word, c) float(bitfieldExtract(int(word((c) >> 2)), int(((c) & 3u) << 3), 8))

// Byte of the block holding element d of k or v at (hk, j).
uint k_block(uint d, uint hk, uint j)
{
    return pc.k_off + (d >> 5) * pc.k_nb0 + hk * pc.k_nb1 + j * pc.k_nb2;
}

uint v_block(uint d, uint hk, uint j)
{
    return pc.v_off + (d >> 5) * pc.v_nb0 + hk * pc.v_nb1 + j * pc.v_nb2;
}

float load_k_q8(uint d, uint hk, uint j)
{
    uint b = k_block(d, hk, j);
    return Q8_SCALE(K_WORD, b) * Q8_QUANT(K_WORD, b + 2u + (d & 31u));
}

float load_v_q8(uint d, uint hk, uint j)
{
    uint b = v_block(d, hk, j);
    return Q8_SCALE(V_WORD, b) * Q8_QUANT(V_WORD, b + 2u + (d & 31u));
}

// The scale and the quants (4 to a word, little-endian) of the block at byte b of the operand
// whose words word(i) reads (K_WORD or V_WORD), from the 9 words starting at b's, which hold all 34 bytes and no word without one of
// them: a block at b % 4 == 2 has its scale in the high half of the first word and its quants
// in the next 8; one at b % 4 == 0 has its quants from mid-word, realigned from word pairs.
// A macro, since GLSL cannot pass buffers.
#define Q8_BLOCK(word, b, scale, qw)                                                             \
    {                                                                                           \
        uint q8_i = (b) >> 2, q8_sh = ((b) & 2u) << 3, q8_w = word(q8_i);                        \
        scale = unpackHalf2x16(q8_w >> q8_sh).x;                                                \
        for (uint q8_k = 0u; q8_k < 8u; q8_k++) {                                               \
            uint q8_n = word(q8_i + 1u + q8_k);                                                  \
            qw[q8_k] = q8_sh != 0u ? q8_n : (q8_w >> 16) | (q8_n << 16);                        \
            q8_w = q8_n;                                                                        \
        }                                                                                       \
    }

// The four signed quants of a word, as floats.
vec4 q8_unpack(uint w) { return vec4(ivec4(int(w << 24), int(w << 16), int(w << 8), int(w)) >> 24); }

// The additive mask of query i at kv position j, 0 without a mask.
float load_mask(uint j, uint i)
{
#if defined(APPEND) && APPEND
    return 0.0; // masked by pos
#else
    if ((pc.flags & VKI_ATTN_HAS_MASK) == 0) return 0.0;
    uint e = pc.m_off + j * pc.m_nb0 + i * pc.m_nb1;
    return VKI_LOAD_WORD(m_words, e, (pc.flags & VKI_ATTN_MASK_F16) != 0);
#endif
}

// Kv positions [x, y) query i may see: all; with a causal mask j <= i + (n_kv - n_q) (the
// queries are the last n_q of the n_kv positions); with positions j <= pos[i] and, with a
// window, j > pos[i] - window (j > pos[i, 1] - window with VKI_ATTN_WINDOW_POS); with
// sequences, within pos[i]'s. Empty (x >= y) for a query that sees nothing: before the first
// kv position, or a padding query (pos < 0).
uvec2 kv_range(uint i)
{
    int lo = 0, hi = int(pc.n_kv);
    if ((pc.flags & VKI_ATTN_CAUSAL) != 0) hi = min(hi, int(i) + 1 + int(pc.n_kv) - int(pc.n_q));
    if ((pc.flags & VKI_ATTN_HAS_POS) != 0) {
        int p = pos[pc.p_off + i * pc.p_nb0];
        hi = min(hi, p + 1);
        int w = (pc.flags & VKI_ATTN_WINDOW_POS) != 0u ? pos[pc.p_off + i * pc.p_nb0 + pc.p_nb1] : p;
        if (pc.window > 0u) lo = max(lo, w + 1 - int(pc.window));
        if (pc.seq_len > 0u && p >= 0) lo = max(lo, p - p % int(pc.seq_len));
    }
    hi = max(hi, 0);
    return uvec2(min(lo, hi), hi);
}

// The union of the ranges of queries [i0, i1]: what a workgroup holding their rows must read.
// Queries that see nothing do not widen it.
uvec2 kv_block_range(uint i0, uint i1)
{
    uvec2 b = uvec2(pc.n_kv, 0u);
    for (uint i = i0; i <= i1; i++) {
        uvec2 r = kv_range(i);
        if (r.x < r.y) b = uvec2(min(b.x, r.x), max(b.y, r.y));
    }
    return b.x < b.y ? b : uvec2(0u);
}

// Row r of kv head hk (rows are i * group + g) as its query and head.
uint row_query(uint r) { return r / pc.group; }
uint row_head(uint hk, uint r) { return hk * pc.group + r % pc.group; }

void store_out(uint d, uint h, uint i, float v) { o[pc.d_off + (i * pc.n_head + h) * HD + d] = v; }

#endif
