#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// Fused attention for CPU devices (lavapipe): a row (query, head) belongs to a subgroup of
// LANES invocations, lane l taking kv positions range.x + l, + LANES, ... Each lane runs its own
// online softmax (running max m, sum l, output acc over all D dims) over its positions, and the
// lanes are combined once at the end (max, rescale, sum). Compared with attention_rows.comp,
// whose lanes split D and reduce every score across the subgroup, this takes one reduction per
// row instead of one per position, evaluates each exp once instead of on every lane, and reads
// K and V two f16 dims per word; on lavapipe, where a subgroup reduction and every load whose
// address differs between lanes cost a loop over the lanes, that matters more than the extra
// registers (q and the output row per lane). Workgroup (x, y): rows [x ROWS, (x + 1) ROWS) of
// kv head y. The _append variant (APPEND=1, a decode step, abi_attention.h) first stores the
// step's new k and v rows of kv head y into the F16 caches, and reads its own position from
// them where the others come from the caches.
#include "vki_abi.h"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "attention_common.glsl"

layout(constant_id = VKI_ATTN_SPEC_LANES) const uint LANES = 8; // the subgroup size

// UNROLL=1 unrolls the loops over a row's dims and over the rows: their arrays (q, the output,
// k and v of a position) are then indexed by constants, which lavapipe keeps in registers and
// plain stack slots; an index that varies costs a loop over the lanes per access (decode
// attention at D = 64, 3 rows: 2.2x faster). The texel variants (_tx, _wide) have it, and the
// lowering gives them few rows (UNROLL_MAX_ROWS): at 16 rows of D = 64 the unrolled kernel
// took lavapipe minutes to compile.
#if defined(UNROLL) && UNROLL
#define UNROLLED [[unroll]]
#else
#define UNROLLED
#endif

// Dims d and d + 1 (d even, d + 1 < HD) of k or v at position j: one word when the operand is
// F16 with contiguous, word-aligned dims (a KV cache), else two element loads.
vec2 load_k2(uint d, uint hk, uint j)
{
    uint e = pc.k_off + d * pc.k_nb0 + hk * pc.k_nb1 + j * pc.k_nb2;
    if ((pc.flags & VKI_ATTN_K_F16) != 0 && pc.k_nb0 == 1u && (e & 1u) == 0u)
        return unpackHalf2x16(K_WORD(e >> 1));
    return vec2(load_k(d, hk, j), load_k(d + 1u, hk, j));
}

vec2 load_v2(uint d, uint hk, uint j)
{
    uint e = pc.v_off + d * pc.v_nb0 + hk * pc.v_nb1 + j * pc.v_nb2;
    if ((pc.flags & VKI_ATTN_V_F16) != 0 && pc.v_nb0 == 1u && (e & 1u) == 0u)
        return unpackHalf2x16(V_WORD(e >> 1));
    return vec2(load_v(d, hk, j), load_v(d + 1u, hk, j));
}

const uint HD2 = HD / 2u; // dim pairs; an odd HD's last dim goes alone

// Q8_0 rows of k and v at position j as dim pairs, a block (scale and 8 words of quants) at a
// time: 9 word loads per 32 dims where F16 takes 16. HD % 32 == 0 for Q8_0 operands.
#define LOAD_Q8_ROW(word, off, nb0, nb1, nb2, hk, j, kv)                                            \
    UNROLLED for (uint bi = 0; bi < HD / 32u; bi++) {                                               \
        float sc;                                                                                   \
        uint qw[8];                                                                                 \
        Q8_BLOCK(word, off + bi * nb0 + hk * nb1 + j * nb2, sc, qw);                                \
        UNROLLED for (uint w = 0; w < 8u; w++) {                                                    \
            vec4 x = sc * q8_unpack(qw[w]);                                                         \
            kv[16u * bi + 2u * w] = x.xy;                                                           \
            kv[16u * bi + 2u * w + 1u] = x.zw;                                                      \
        }                                                                                           \
    }

// An F16 row of k or v whose first element e is at a 16-byte texel (WIDE, with UNROLL: the
// lowering checks that every row is, and that HD % 8 == 0), 8 dims to a texel.
#if defined(WIDE) && WIDE
const bool WIDE_ROWS = true;
#define LOAD_F16_ROW(texel, e, kv)                                                                  \
    {                                                                                               \
        uint lr_t = (e) >> 3;                                                                       \
        UNROLLED for (uint lr_i = 0u; lr_i < HD / 8u; lr_i++) {                                     \
            uvec4 lr_w = texel(lr_t + lr_i);                                                        \
            for (uint lr_c = 0u; lr_c < 4u; lr_c++)                                                 \
                kv[4u * lr_i + lr_c] = unpackHalf2x16(lr_w[lr_c]);                                  \
        }                                                                                           \
        kv[HD2] = vec2(0.0);                                                                        \
    }
#else
const bool WIDE_ROWS = false;
#define LOAD_F16_ROW(texel, e, kv)
#endif

// Rows per subgroup: consecutive rows of one kv head (the heads of a query that share it, in
// grouped-query attention, then the next queries) share every K and V load.
layout(constant_id = VKI_ATTN_SPEC_SHARED_ROWS) const uint R = 1;

// The state of the subgroup's R rows on this lane: its kv positions, the pre-scaled query, the
// output, the running max and sum.
uvec2 ranges[R];
vec2 qs[R][HD2 + 1u], acc[R][HD2 + 1u];
float m[R], l[R];

// Row j of k (v) of kv head hk into kv, as dim pairs, in the format a literal q8 names.
#define LOAD_ROW(kv, q8, WORD, TEXEL, OP, load2, load1, hk, j)                                       \
    if (q8) {                                                                                       \
        LOAD_Q8_ROW(WORD, pc.OP##_off, pc.OP##_nb0, pc.OP##_nb1, pc.OP##_nb2, hk, j, kv);           \
        kv[HD2] = vec2(0.0);                                                                        \
    } else if (WIDE_ROWS) {                                                                         \
        LOAD_F16_ROW(TEXEL, pc.OP##_off + hk * pc.OP##_nb1 + j * pc.OP##_nb2, kv);                  \
    } else {                                                                                        \
        UNROLLED for (uint c = 0; c < HD2; c++) kv[c] = load2(2u * c, hk, j);                       \
        if ((HD & 1u) != 0u) kv[HD2] = vec2(load1(HD - 1u, hk, j), 0.0);                            \
    }

// Position j for the subgroup's rows [r0, r_end): kv is loaded with k's row (LOAD_K), scored
// against every row's q, each row's running max, sum and output rescaled; then, when any row
// sees j, kv is loaded with v's row (LOAD_V) and added in.
#define VISIT(j, r0, r_end, kv, LOAD_K, LOAD_V)                                                     \
    {                                                                                               \
        LOAD_K;                                                                                     \
        float p[R], a[R];                                                                           \
        bool any = false;                                                                           \
        UNROLLED for (uint k = 0; k < R; k++) {                                                     \
            uint i = row_query(min(r0 + k, r_end - 1u));                                            \
            float s = 0.0;                                                                          \
            UNROLLED for (uint c = 0; c <= HD2; c++) s += dot(qs[k][c], kv[c]);                     \
            s = max(s + load_mask(j, i), NEG);                                                      \
            if (j < ranges[k].x || j >= ranges[k].y) s = NEG;                                       \
            float m_new = max(m[k], s);                                                             \
            a[k] = exp(m[k] - m_new);                                                               \
            p[k] = s > NEG ? exp(s - m_new) : 0.0;                                                  \
            any = any || s > NEG;                                                                   \
            m[k] = m_new;                                                                           \
            l[k] = l[k] * a[k] + p[k];                                                              \
        }                                                                                           \
        if (any) {                                                                                  \
            LOAD_V;                                                                                 \
            UNROLLED for (uint k = 0; k < R; k++)                                                   \
                UNROLLED for (uint c = 0; c <= HD2; c++) acc[k][c] = acc[k][c] * a[k] + p[k] * kv[c]; \
        }                                                                                           \
    }

#if defined(APPEND) && APPEND
// The new row of k_new or v_new for kv head hk, rounded to f16 as the cache holds it.
#define LOAD_NEW_ROW(buf, off, hk, kv)                                                              \
    {                                                                                               \
        UNROLLED for (uint c = 0; c < HD2; c++)                                                     \
            kv[c] = unpackHalf2x16(packHalf2x16(vec2(buf[off + hk * HD + 2u * c],                   \
                                                     buf[off + hk * HD + 2u * c + 1u])));           \
        kv[HD2] = vec2(0.0);                                                                        \
    }
// Position j of k (v): the new row at the step's own position pj, else the cache's.
#define LOAD_K_ROW(kv, q8, hk, j)                                                                   \
    if (j == pj) LOAD_NEW_ROW(k_new, pc.kn_off, hk, kv)                                             \
    else { LOAD_ROW(kv, q8, K_WORD, K_TEXEL, k, load_k2, load_k, hk, j); }
#define LOAD_V_ROW(kv, q8, hk, j)                                                                   \
    if (j == pj) LOAD_NEW_ROW(v_new, pc.vn_off, hk, kv)                                             \
    else { LOAD_ROW(kv, q8, V_WORD, V_TEXEL, v, load_v2, load_v, hk, j); }

// The new rows of kv head hk into K and V at position pj, a texel of 8 dims per lane in turn.
void append_rows(uint hk, uint lane, uint pj)
{
    uint kt = (pc.k_off + hk * pc.k_nb1 + pj * pc.k_nb2) >> 3;
    uint vt = (pc.v_off + hk * pc.v_nb1 + pj * pc.v_nb2) >> 3;
    for (uint t = lane; t < HD / 8u; t += LANES) {
        uint e = pc.kn_off + hk * HD + 8u * t, f = pc.vn_off + hk * HD + 8u * t;
        uvec4 kw, vw;
        for (uint c = 0u; c < 4u; c++) {
            kw[c] = packHalf2x16(vec2(k_new[e + 2u * c], k_new[e + 2u * c + 1u]));
            vw[c] = packHalf2x16(vec2(v_new[f + 2u * c], v_new[f + 2u * c + 1u]));
        }
        imageStore(k_wide, int(kt + t), kw);
        imageStore(v_wide, int(vt + t), vw);
    }
}
#else
#define LOAD_K_ROW(kv, q8, hk, j) LOAD_ROW(kv, q8, K_WORD, K_TEXEL, k, load_k2, load_k, hk, j)
#define LOAD_V_ROW(kv, q8, hk, j) LOAD_ROW(kv, q8, V_WORD, V_TEXEL, v, load_v2, load_v, hk, j)
#endif

// Lane `lane`'s positions of `all` (the union of the rows' ranges) for rows [r0, r_end) of kv
// head hk. Called with a literal q8 (K and V in Q8_0 blocks, else F32/F16), so that each call
// is compiled for one format and the loop tests none: a CPU driver runs both sides of a
// branch under a mask, which made a test inside the loop cost F16 attention 6 to 15% on
// lavapipe. An appending step reads its own position from the new rows, the others from the
// caches (the branch is skipped where no lane is at pj; pj is unused elsewhere).
void walk(uint hk, uint lane, uint r0, uint r_end, uvec2 all, bool q8, uint pj)
{
    for (uint j = all.x + lane; j < all.y; j += LANES) {
        vec2 kv[HD2 + 1u];
        VISIT(j, r0, r_end, kv, LOAD_K_ROW(kv, q8, hk, j), LOAD_V_ROW(kv, q8, hk, j));
    }
}

void main()
{
    uint hk = gl_WorkGroupID.y, n_rows = pc.n_q * pc.group, lane = gl_SubgroupInvocationID;
    uint r_end = min((gl_WorkGroupID.x + 1) * ROWS, n_rows);
    uint pj = ~0u; // an appending step's own position: past every position when negative
#if defined(APPEND) && APPEND
    pj = uint(pos[pc.p_off]);
    // The first workgroup of the kv head stores its new rows; none reads them from there.
    if (gl_WorkGroupID.x == 0u && pj < pc.n_kv) append_rows(hk, lane, pj);
#endif
    for (uint r0 = gl_WorkGroupID.x * ROWS + gl_SubgroupID * R; r0 < r_end; r0 += gl_NumSubgroups * R) {
        uvec2 all = uvec2(pc.n_kv, 0u);
        UNROLLED for (uint k = 0; k < R; k++) {
            uint r = min(r0 + k, r_end - 1u), i = row_query(r), h = row_head(hk, r);
            ranges[k] = r0 + k < r_end ? kv_range(i) : uvec2(0u);
            if (ranges[k].x < ranges[k].y) all = uvec2(min(all.x, ranges[k].x), max(all.y, ranges[k].y));
            UNROLLED for (uint c = 0; c <= HD2; c++) {
                uint d = 2u * c;
                qs[k][c] = vec2(d < HD ? pc.scale * load_q(d, h, i) : 0.0,
                                d + 1u < HD ? pc.scale * load_q(d + 1u, h, i) : 0.0);
                acc[k][c] = vec2(0.0);
            }
            m[k] = NEG;
            l[k] = 0.0;
        }
        // (No Q8_0 walk in the variants of F16 rows: less code to fetch per workgroup.)
        bool q8 = !WIDE_ROWS && (pc.flags & VKI_ATTN_KV_Q8_0) != 0u;
        if (q8) walk(hk, lane, r0, r_end, all, true, pj);
        else walk(hk, lane, r0, r_end, all, false, pj);
        // Combine the lanes: rescale each to the row's max, then sum.
        UNROLLED for (uint k = 0; k < R; k++) {
            if (r0 + k >= r_end) break; // subgroup-uniform
            uint r = r0 + k, i = row_query(r), h = row_head(hk, r);
            float m_row = subgroupMax(m[k]);
            float w = m[k] > NEG ? exp(m[k] - m_row) : 0.0;
            float l_row = subgroupAdd(l[k] * w);
            float inv = l_row > 0.0 ? 1.0 / l_row : 0.0;
            UNROLLED for (uint c = 0; c <= HD2; c++) {
                vec2 v = vec2(subgroupAdd(acc[k][c].x * w), subgroupAdd(acc[k][c].y * w)) * inv;
                uint d = 2u * c;
                if (lane == 0u && d < HD) store_out(d, h, i, v.x);
                if (lane == 0u && d + 1u < HD) store_out(d + 1u, h, i, v.y);
            }
        }
    }
}
