#version 450
#extension GL_GOOGLE_include_directive : require
// set_rows: row n of s goes to row ids[n] of d (converted), for ids in [0, R); other ids are
// padding and write nothing. One invocation per 32-bit word of a destination row, so that f16
// rows need no 16-bit storage: a word wholly inside the row is stored as a packed pair, a word
// the row shares with its neighbour (an odd K, or a row starting mid-word) gets only its own
// half, with an atomic AND and OR, so that the neighbour's half survives whoever writes it.
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

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    if (i >= pc.words * pc.N) return;
    uint n = i / pc.words, w = i % pc.words;
    int row = ids[pc.i_off + n * pc.i_nb0];
    if (row < 0 || uint(row) >= pc.R) return;
    uint e0 = pc.d_off + uint(row) * pc.d_nb1; // the row's first element
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
    if (lo && hi) {
        d[word] = bits;
        return;
    }
    uint mask = lo ? 0x0000ffffu : 0xffff0000u;
    atomicAnd(d[word], ~mask);
    atomicOr(d[word], bits & mask);
}
