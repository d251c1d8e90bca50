#version 450
#extension GL_GOOGLE_include_directive : require
// Indices of the k largest elements of each row (dim 0), largest first; one workgroup per row
// (a router's row: 8 to 256 experts). Elements are compared as (key, index) pairs in one total
// order, larger key first and then smaller index (ties to the smaller index; NaN counts as
// -inf). Each invocation holds the best pair of its strided share of the row; a pass reduces
// them over the workgroup to the next winner, and only the invocation whose share held it
// rescans, for the best pair that ranks below the winner: in a total order that is exactly the
// best not yet chosen, so nothing is marked. SUBGROUP=1: the workgroup is one subgroup (the
// lowering asks for it), reduced by subgroup arithmetic alone, without shared memory or
// barriers (a router row is a few elements per invocation; lavapipe runs a barrier as a
// coroutine switch); else a shared-memory tree. x is F32 or F16 (pc.f16), read as 32-bit
// words (words.glsl).
// WEIGHTS=1: a router's top_k and its routing weights in one dispatch (moe_weights with the
// top_k folded in, abi_moe.h): invocation 0 writes each winner's exp(x - max) as it is chosen
// (the first winner is the row's maximum, NaN aside), then scales them by 1 / their sum
// (softmax over the chosen) or 1 / the row's sum of exp(x - max), reduced over the workgroup
// like the selection: moe_weights.comp's values, without its dispatch.
#include "vki_abi.h"
#include "words.glsl"
#if SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) readonly restrict buffer S { uint s[]; };
layout(std430, set = 0, binding = 1) writeonly restrict buffer D { int d[]; };
#if WEIGHTS
// Read back by the invocation that wrote it (the weights are scaled once their sum is known).
layout(std430, set = 0, binding = 2) restrict buffer Wt { float wt[]; };
#endif
VKI_PUSH_BLOCK(VKI_PC_TOP_K)

#if !SUBGROUP
// Two sets of per-invocation slots, used by alternate passes, so that a pass may write its
// slots while slower invocations still read the last pass's.
shared uint part_k[2u * gl_WorkGroupSize.x];
shared uint part_i[2u * gl_WorkGroupSize.x];
#if WEIGHTS
shared float part_s[gl_WorkGroupSize.x];
#endif
#endif

// (key 0, NONE) ranks below every element: the smallest element key, -inf's, is 0x007fffff.
const uint NONE = 0xffffffffu;

// Float order as unsigned order: negative floats reversed, positive ones above them; -0 as
// +0 (equal values tie), NaN as -inf.
uint order_key(float v)
{
    if (isnan(v)) v = uintBitsToFloat(0xff800000u);
    uint b = v == 0.0 ? 0u : floatBitsToUint(v);
    return (b & 0x80000000u) != 0u ? ~b : b | 0x80000000u;
}

bool ranks_above(uint ka, uint ia, uint kb, uint ib) { return ka > kb || (ka == kb && ia < ib); }

float value(uint base, uint e)
{
    uint i = base + e * pc.s_nb0;
    return VKI_WORD_VALUE(s[VKI_WORD_INDEX(i, pc.f16 != 0u)], i, pc.f16 != 0u);
}

// The best element of this invocation's share that ranks below (pk, pi).
void scan(uint base, uint pk, uint pi, out uint bk, out uint bi)
{
    bk = 0u;
    bi = NONE;
    for (uint e = gl_LocalInvocationID.x; e < pc.ne0; e += gl_WorkGroupSize.x) {
        uint ke = order_key(value(base, e));
        // Indices rise through the scan: a later element of an equal key never ranks above.
        if (ranks_above(pk, pi, ke, e) && ke > bk) {
            bk = ke;
            bi = e;
        }
    }
}

void main()
{
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= pc.ne1 * pc.ne2 * pc.ne3) return; // the whole workgroup, before any barrier
    uint i1 = row % pc.ne1, r = row / pc.ne1;
    uint i2 = r % pc.ne2, i3 = r / pc.ne2;
    uint base = pc.s_off + i1 * pc.s_nb1 + i2 * pc.s_nb2 + i3 * pc.s_nb3;
    uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;

    uint mk, mi;
    scan(base, NONE, 0u, mk, mi); // (NONE, 0) ranks above every element
#if WEIGHTS
    // A finite stand-in for -inf, as moe_weights.comp's (Vulkan does not promise to keep
    // infinities through arithmetic); invocation 0's running sum of the chosen.
    const float LOWEST = -3.402823466e38;
    float mx = LOWEST, chosen = 0.0;
#endif
    for (uint j = 0u; j < pc.k; j++) {
#if SUBGROUP
        // The largest key, then the smallest index holding it.
        uint wk = subgroupMax(mk);
        uint wi = subgroupMin(mk == wk ? mi : NONE);
#else
        uint set = (j & 1u) * nt, wk, wi;
        part_k[set + tid] = mk;
        part_i[set + tid] = mi;
        barrier();
        // Halve the live range each round (any workgroup size): slot t takes the better of
        // itself and t + h.
        for (uint n = nt; n > 1u;) {
            uint h = (n + 1u) / 2u;
            if (tid < n - h && ranks_above(part_k[set + tid + h], part_i[set + tid + h],
                                           part_k[set + tid], part_i[set + tid])) {
                part_k[set + tid] = part_k[set + tid + h];
                part_i[set + tid] = part_i[set + tid + h];
            }
            barrier();
            n = h;
        }
        wk = part_k[set];
        wi = part_i[set];
#endif
        if (tid == 0u) d[pc.d_off + row * pc.k + j] = int(wi);
#if WEIGHTS
        if (j == 0u) {
            float v = value(base, wi); // every invocation: the maximum (NaN ranks as -inf)
            mx = isnan(v) ? LOWEST : max(v, LOWEST);
        }
        if (tid == 0u) {
            float e = exp(value(base, wi) - mx);
            wt[pc.w_off + row * pc.k + j] = e;
            chosen += e;
        }
#endif
        if (wi % nt == tid) scan(base, wk, wi, mk, mi); // the winner was this share's best
    }
#if WEIGHTS
    // Softmax over the row: its sum of exp(x - max), over each invocation's share, then the
    // workgroup (pc.gate is uniform, so are the barriers). Over the chosen: their sum.
    float sum = chosen;
    if (pc.gate == VKI_TOP_K_GATE_SOFTMAX) {
        float part = 0.0;
        for (uint e = tid; e < pc.ne0; e += nt) part += exp(value(base, e) - mx);
#if SUBGROUP
        sum = subgroupAdd(part);
#else
        part_s[tid] = part;
        barrier();
        for (uint n = nt; n > 1u;) {
            uint h = (n + 1u) / 2u;
            if (tid < n - h) part_s[tid] += part_s[tid + h];
            barrier();
            n = h;
        }
        sum = part_s[0];
#endif
    }
    if (tid == 0u) {
        float inv = sum > 0.0 ? 1.0 / sum : 0.0;
        for (uint j = 0u; j < pc.k; j++) wt[pc.w_off + row * pc.k + j] *= inv;
    }
#endif
}
