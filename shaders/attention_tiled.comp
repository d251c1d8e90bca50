#version 450
#extension GL_GOOGLE_include_directive : require
// Fused attention, FlashAttention-2 style: workgroup (x, y) takes rows [x ROWS, (x + 1) ROWS)
// of kv head y (queries times the heads that share it, so grouped-query heads share the loads)
// and walks the kv positions in tiles of COLS held in shared memory. Per tile: scores S = Q K^T
// (scaled, masked) into shared memory, the running max and sum of each row updated (one
// subgroup per row with SUBGROUP=1, one invocation per row otherwise), then the register-held
// output rescaled and P V added. The next tile's K and V are loaded into registers while this
// one is computed, so that memory latency overlaps arithmetic instead of adding to it. The
// n_q x n_kv score matrix never exists; all sums are fp32. A block reads only the kv positions
// its rows see (kv_block_range): a causal block stops at the last position its last query sees,
// a positioned one at the largest position of its queries (a KV cache costs what is filled)
// and, with a window, starts at the smallest position its window reaches.
#include "vki_abi.h"

#if SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x = 128, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "attention_common.glsl"

layout(constant_id = VKI_ATTN_SPEC_COLS) const uint COLS = 32;
const uint WG = gl_WorkGroupSize.x;
const uint KS = HD + 1;                       // K rows padded: invocation c reads row c conflict-free
const uint NACC = (ROWS * HD + WG - 1) / WG;  // outputs per invocation: e = t + k WG
const uint NLD = (COLS * HD + WG - 1) / WG;   // K and V elements each invocation stages per tile

shared float sq[ROWS * HD];    // the block's queries, pre-scaled
shared float sk[COLS * KS];
shared float sv[COLS * HD];
shared float sp[ROWS * COLS];  // scores, then probabilities exp(s - m)
shared float s_m[ROWS];        // running max of each row
shared float s_l[ROWS];        // running sum of exp(s - m)
shared float s_a[ROWS];        // this tile's rescale of the row's output, exp(m_old - m_new)
shared uint s_lo[ROWS];        // kv positions [s_lo, s_hi) the row sees
shared uint s_hi[ROWS];
float kr[NLD], vr[NLD];        // the next tile in flight: element e = t + k WG is [e / HD][e % HD]

// Starts the loads of the tile at kv position j0 (zeros past `end`), with element loaders LK and
// LV. Branch-free for F32/F16 operands, so that all loads issue before any result is waited
// for: a slot past the end reads position 0 and drops it. A macro, so that Q8_0 operands take
// their loaders without a branch in the F32/F16 loop.
#define FETCH_TILE(LK, LV)                                                                      \
    for (uint k = 0; k < NLD; k++) {                                                            \
        uint e = gl_LocalInvocationID.x + k * WG, j = j0 + e / HD;                              \
        bool live = e < COLS * HD && j < end;                                                   \
        uint d = live ? e % HD : 0u, jl = live ? j : 0u;                                        \
        float kv = LK(d, hk, jl), vv = LV(d, hk, jl);                                           \
        kr[k] = live ? kv : 0.0;                                                                \
        vr[k] = live ? vv : 0.0;                                                                \
    }

void fetch(uint j0, uint end, uint hk)
{
    if ((pc.flags & VKI_ATTN_KV_Q8_0) == 0u) FETCH_TILE(load_k, load_v)
    else FETCH_TILE(load_k_q8, load_v_q8)
}

void stage()
{
    for (uint k = 0; k < NLD; k++) {
        uint e = gl_LocalInvocationID.x + k * WG;
        if (e >= COLS * HD) break;
        sk[(e / HD) * KS + e % HD] = kr[k];
        sv[e] = vr[k];
    }
}

// Max and sum of row rl of the tile; the probabilities replace the scores.
void update_row(uint rl, uint c0, uint dc)
{
    float mt = NEG;
    for (uint c = c0; c < COLS; c += dc) mt = max(mt, sp[rl * COLS + c]);
#if SUBGROUP
    mt = subgroupMax(mt);
#endif
    float m_old = s_m[rl], m_new = max(m_old, mt), sum = 0.0;
    for (uint c = c0; c < COLS; c += dc) {
        float s = sp[rl * COLS + c], p = s <= NEG ? 0.0 : exp(s - m_new);
        sp[rl * COLS + c] = p;
        sum += p;
    }
#if SUBGROUP
    sum = subgroupAdd(sum);
    if (!subgroupElect()) return;
#endif
    float a = exp(m_old - m_new);
    s_a[rl] = a;
    s_l[rl] = s_l[rl] * a + sum;
    s_m[rl] = m_new;
}

// Where slice z of row r of kv head hk keeps m, l and o[HD] (abi_attention.h).
uint part_base(uint z, uint hk, uint r)
{
    uint n_kv_head = pc.n_head / pc.group;
    return ((z * n_kv_head + hk) * (pc.n_q * pc.group) + r) * (HD + 2u);
}

// The second step of a split: each row's output from its slices, rescaled to their common max.
// A slice that saw nothing has m = NEG and l = 0 and drops out; a row no slice saw gives zeros.
void combine(uint hk, uint r0, uint n_rows)
{
    for (uint e = gl_LocalInvocationID.x; e < ROWS * HD; e += WG) {
        uint r = r0 + e / HD, d = e % HD;
        if (r >= n_rows) break;
        float m = NEG;
        for (uint z = 0u; z < pc.n_split; z++) m = max(m, part[part_base(z, hk, r)]);
        float l = 0.0, acc = 0.0;
        for (uint z = 0u; z < pc.n_split; z++) {
            uint p = part_base(z, hk, r);
            float a = part[p + 1u] > 0.0 ? exp(part[p] - m) : 0.0;
            l += part[p + 1u] * a;
            acc += part[p + 2u + d] * a;
        }
        store_out(d, row_head(hk, r), row_query(r), l > 0.0 ? acc / l : 0.0);
    }
}

void main()
{
    uint t = gl_LocalInvocationID.x, hk = gl_WorkGroupID.y;
    uint n_rows = pc.n_q * pc.group, r0 = gl_WorkGroupID.x * ROWS;
    if ((pc.flags & VKI_ATTN_COMBINE) != 0u) {
        combine(hk, r0, n_rows);
        return;
    }
    for (uint e = t; e < ROWS * HD; e += WG) {
        uint r = r0 + e / HD;
        sq[e] = r < n_rows ? pc.scale * load_q(e % HD, row_head(hk, r), row_query(r)) : 0.0;
    }
    for (uint rl = t; rl < ROWS; rl += WG) {
        s_m[rl] = NEG;
        s_l[rl] = 0.0;
        uvec2 range = r0 + rl < n_rows ? kv_range(row_query(r0 + rl)) : uvec2(0u);
        s_lo[rl] = range.x;
        s_hi[rl] = range.y;
    }
    float acc[NACC];
    for (uint k = 0; k < NACC; k++) acc[k] = 0.0;
    uvec2 block = kv_block_range(row_query(r0), row_query(min(r0 + ROWS, n_rows) - 1));
    if (pc.n_split > 1u) { // slice z of the block, in whole tiles
        uint per = ((block.y - block.x + pc.n_split - 1u) / pc.n_split + COLS - 1u) / COLS * COLS;
        uint lo = min(block.x + gl_WorkGroupID.z * per, block.y);
        block = uvec2(lo, min(lo + per, block.y));
    }
    uint end = block.y;

    fetch(block.x, end, hk);
    for (uint j0 = block.x; j0 < end; j0 += COLS) {
        barrier(); // the previous tile is consumed; the first time, sq and the stats are written
        stage();
        barrier();
        if (j0 + COLS < end) fetch(j0 + COLS, end, hk);
        for (uint e = t; e < ROWS * COLS; e += WG) {
            uint rl = e / COLS, c = e % COLS, r = r0 + rl, j = j0 + c;
            float s = NEG;
            if (j >= s_lo[rl] && j < s_hi[rl]) { // empty for rows past n_rows
                float dot_qk = 0.0;
                for (uint d = 0; d < HD; d++) dot_qk += sq[rl * HD + d] * sk[c * KS + d];
                s = max(dot_qk + load_mask(j, row_query(r)), NEG);
            }
            sp[e] = s;
        }
        barrier();
#if SUBGROUP
        for (uint rl = gl_SubgroupID; rl < ROWS; rl += gl_NumSubgroups)
            update_row(rl, gl_SubgroupInvocationID, gl_SubgroupSize);
#else
        for (uint rl = t; rl < ROWS; rl += WG) update_row(rl, 0, 1);
#endif
        barrier();
        for (uint k = 0; k < NACC; k++) {
            uint e = t + k * WG, rl = e / HD, d = e % HD;
            if (e >= ROWS * HD) break;
            float a = acc[k] * s_a[rl];
            for (uint c = 0; c < COLS; c++) a += sp[rl * COLS + c] * sv[c * HD + d];
            acc[k] = a;
        }
    }
    barrier(); // s_l is final (or, without any tile, initialised)
    if (pc.n_split > 1u) { // this slice's share, unnormalised, for the combine step
        for (uint k = 0; k < NACC; k++) {
            uint e = t + k * WG, rl = e / HD, r = r0 + rl;
            if (e >= ROWS * HD || r >= n_rows) break;
            part[part_base(gl_WorkGroupID.z, hk, r) + 2u + e % HD] = acc[k];
        }
        for (uint rl = t; rl < ROWS && r0 + rl < n_rows; rl += WG) {
            uint p = part_base(gl_WorkGroupID.z, hk, r0 + rl);
            part[p] = s_m[rl];
            part[p + 1u] = s_l[rl];
        }
        return;
    }
    for (uint k = 0; k < NACC; k++) {
        uint e = t + k * WG, rl = e / HD, r = r0 + rl;
        if (e >= ROWS * HD || r >= n_rows) break;
        float l = s_l[rl];
        store_out(e % HD, row_head(hk, r), row_query(r), l > 0.0 ? acc[k] / l : 0.0);
    }
}
