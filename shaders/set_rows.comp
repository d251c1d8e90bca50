#version 450
#extension GL_GOOGLE_include_directive : require
// set_rows: row n of s goes to row ids[n] of d (converted), for ids in [0, R); other ids are
// padding and write nothing. One invocation per 32-bit word of a destination row, so that f16
// rows need no 16-bit storage: a word wholly inside the row is stored as a packed pair, a word
// the row shares with its neighbour (an odd K, or a row starting mid-word) gets only its own
// half, with an atomic AND and OR, so that the neighbour's half survives whoever writes it.
// A Q8_0 row takes one invocation per 34-byte block (store_q8_0).
#include "vki_abi.h"
#include "types.glsl"
#include "words.glsl"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = VKI_SET_ROWS_BINDING_S) readonly restrict buffer S { uint s_words[]; };
layout(std430, set = 0, binding = VKI_SET_ROWS_BINDING_I) readonly restrict buffer I { int ids[]; };
layout(std430, set = 0, binding = VKI_SET_ROWS_BINDING_D) restrict buffer D { uint d[]; };
VKI_PUSH_BLOCK(VKI_PC_SET_ROWS)

float load_s(uint k, uint n)
{
    uint e = pc.s_off + k * pc.s_nb0 + n * pc.s_nb1;
    return VKI_LOAD_WORD(s_words, e, (pc.flags & VKI_SET_ROWS_S_F16) != 0);
}

// Writes `bits` into one half of word `word` (the low half when `lo`), leaving the other half,
// which belongs to a neighbour, as whoever writes it leaves it.
void store_half(uint word, uint bits, bool lo)
{
    uint mask = lo ? 0x0000ffffu : 0xffff0000u;
    atomicAnd(d[word], ~mask);
    atomicOr(d[word], bits & mask);
}

// Rounds half away from zero, as C's roundf (GGUF's quantisers use it); GLSL's round() may
// round halves either way. v - trunc(v) is exact.
float round_away(float v)
{
    float t = trunc(v);
    return abs(v - t) >= 0.5 ? t + sign(v) : t;
}

// Block `blk` of source row n into the Q8_0 block at byte b (even) of d: d = max |x| / 127 as
// f16, q = round(x / d), as GGUF and llama.cpp quantise (the reciprocal from the f32 d). The
// 17 half-words of a block start either at a word (the last half-word is shared with the next
// block) or mid-word (the first is shared with the previous block); the 16 others are 8 whole
// words, stored plainly.
void store_q8_0(uint b, uint blk, uint n)
{
    float x[32];
    float amax = 0.0;
    for (uint k = 0; k < 32u; k++) {
        x[k] = load_s(32u * blk + k, n);
        amax = max(amax, abs(x[k]));
    }
    float scale = amax / 127.0, inv = scale != 0.0 ? 1.0 / scale : 0.0;
    uint q[8]; // q[4i .. 4i + 3] little-endian
    for (uint i = 0; i < 8u; i++) {
        uint w = 0u;
        for (uint k = 0; k < 4u; k++) {
            int v = int(clamp(round_away(x[4u * i + k] * inv), -127.0, 127.0));
            w |= (uint(v) & 0xffu) << (8u * k);
        }
        q[i] = w;
    }
    uint h = packHalf2x16(vec2(scale, 0.0)), w0 = b >> 2;
    if ((b & 2u) == 0u) {
        d[w0] = h | (q[0] << 16);
        for (uint i = 1; i < 8u; i++) d[w0 + i] = (q[i - 1u] >> 16) | (q[i] << 16);
        store_half(w0 + 8u, q[7] >> 16, true);
    } else {
        store_half(w0, h << 16, false);
        for (uint i = 0; i < 8u; i++) d[w0 + 1u + i] = q[i];
    }
}

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    if (i >= pc.words * pc.N) return;
    uint n = i / pc.words, w = i % pc.words;
    int row = ids[pc.i_off + n * pc.i_nb0];
    if (row < 0 || uint(row) >= pc.R) return;
    uint e0 = pc.d_off + uint(row) * pc.d_nb1; // the row's first element (byte for Q8_0)
    if ((pc.flags & VKI_SET_ROWS_D_Q8_0) != 0u) {
        store_q8_0(e0 + 34u * w, w, n); // words = K / 32 blocks
        return;
    }
    if ((pc.flags & VKI_SET_ROWS_D_F16) == 0) {
        d[e0 + w] = floatBitsToUint(load_s(w, n)); // words = K
        return;
    }
    // Word `word` holds row elements k0 and k0 + 1 (k0 = -1 when the row starts mid-word).
    uint word = (e0 >> 1) + w;
    int k0 = int(2u * word) - int(e0);
    bool lo = k0 >= 0 && k0 < int(pc.K), hi = k0 + 1 < int(pc.K);
    if (!lo && !hi) return;
    vec2 v = vec2(lo ? load_s(uint(k0), n) : 0.0, hi ? load_s(uint(k0 + 1), n) : 0.0);
    uint bits = packHalf2x16(v);
    if (lo && hi) d[word] = bits;
    else store_half(word, bits, lo);
}
