/* ABI of the attention family: fused attention (attention_tiled.comp, attention_rows.comp,
 * attention_keys.comp, attention_coopmat.comp) and conv2d (conv2d.comp). Included by vki_abi.h.
 *
 * Both read their F32/F16 operands as 32-bit words with the dtype in a flag bit (words.glsl), so
 * that operands of independent dtypes need no variant per combination and no 16-bit storage.
 * Offsets and strides are in elements of each operand's own dtype (in bytes for attention's Q8_0
 * K and V); outputs are contiguous F32. */
#ifndef VKI_ABI_ATTENTION_H
#define VKI_ABI_ATTENTION_H

/* ---- attention: out[D, n_head, n_q] = softmax(scale q.k + mask) v, online, fp32 ---------------- */
#define VKI_ATTN_BINDING_Q 0
#define VKI_ATTN_BINDING_K 1
#define VKI_ATTN_BINDING_V 2
#define VKI_ATTN_BINDING_MASK 3 /* bound to q when there is no mask */
#define VKI_ATTN_BINDING_OUT 4
#define VKI_ATTN_BINDING_POS 5  /* I32 query positions; bound to q when there are none */
#define VKI_ATTN_BINDING_PART 6 /* split-KV partials (tiled kernel, n_split > 1): scratch */
/* Append, the keys kernel's _append variant (n_q = 1, with pos, F16 K and V caches): the step
 * first stores the new k and v rows, F32 [D * n_kv_head] from kn_off and vn_off, rounded to
 * f16, at position pos[0] of its kv head in K and V (the set_rows the fusion pass folded in,
 * skipped like set_rows's for pos outside [0, n_kv)), and scores that position from the new rows
 * themselves, so that no invocation reads what another wrote. The new rows take the slots of
 * the mask and of the partials, which such a step never has (it masks by pos and does not
 * split). */
#define VKI_ATTN_BINDING_K_NEW 3
#define VKI_ATTN_BINDING_V_NEW 6

#define VKI_ATTN_CAUSAL 1u
#define VKI_ATTN_HAS_MASK 2u
#define VKI_ATTN_Q_F16 4u
#define VKI_ATTN_K_F16 8u
#define VKI_ATTN_V_F16 16u
#define VKI_ATTN_MASK_F16 32u
#define VKI_ATTN_HAS_POS 64u  /* query i sees j <= pos[i] (and j > pos[i] - window if window) */
/* With pos, seq_len > 0 (push constant) cuts the kv positions into sequences of seq_len (a
 * cache holding several sequences): query i also sees only j >= pos[i] - pos[i] % seq_len. */
/* K and V (both) in Q8_0 blocks, a quantised KV cache: dim 0 is whole 34-byte blocks (f16 d,
 * i8 q[32]; D % 32 == 0), the operands' offsets and strides in bytes and even, so that d and
 * every pair of quants is one half of a word. */
#define VKI_ATTN_KV_Q8_0 128u
/* With pos, pos is I32 [n_q, 2] (second column at p_nb1): pos[i, 0] bounds what query i sees
 * (j <= pos[i, 0], and its sequence), pos[i, 1] is where its window counts back from (j >
 * pos[i, 1] - window): a bidirectional span's rows see up to the span's last position, each
 * with its own window (Gemma 3's image rows on sliding-window layers). Without the flag the
 * window counts from pos[i] itself. */
#define VKI_ATTN_WINDOW_POS 256u
/* Split-KV (tiled kernel): with n_split > 1, workgroup z of the first step takes the z-th of
 * n_split slices of the block's kv positions and writes its rows' unnormalised output, running
 * max and sum to PART (row r of kv head hk, slice z at ((z n_kv_head + hk) n_rows + r)(D + 2):
 * m, l, o[D]); the second step (COMBINE) merges the slices of each row into the output. A
 * decode step has a handful of rows: without the split, a few workgroups would walk the whole
 * cache while the rest of a GPU waits. */
#define VKI_ATTN_COMBINE 512u

#define VKI_ATTN_MAX_HEAD_DIM 256
#define VKI_ATTN_SPEC_HEAD_DIM 1 /* D */
#define VKI_ATTN_SPEC_ROWS 2     /* rows (query, head) of one kv head per workgroup */
#define VKI_ATTN_SPEC_COLS 3     /* kv positions per shared-memory tile (tiled kernel) */
#define VKI_ATTN_SPEC_LANES 4    /* invocations per row (rows kernel): the subgroup size, or 1 */
#define VKI_ATTN_SPEC_SHARED_ROWS 5 /* rows one subgroup takes at once (keys kernel) */
/* attention_coopmat.comp: D zero-padded to a multiple of the fragments (ROWS and COLS are its
 * workgroup's query rows and kv tile; the fragments take matmul's VKI_SPEC_MM_FRAG_* ids). */
#define VKI_ATTN_SPEC_PAD_DIM 6
/* attention_queries.comp: queries each invocation holds (the workgroup takes lanes x QUERIES
 * queries of one head). */
#define VKI_ATTN_SPEC_QUERIES 7

/* A row is (query i, head h) with h = kv_head * group + g; rows of one kv head are numbered
 * i * group + g, so a workgroup's rows share their K/V. */
#define VKI_PC_ATTENTION(F)                                                                     \
    F(u32, n_q) F(u32, n_head) F(u32, group) F(u32, n_kv)                                      \
    F(u32, q_off) F(u32, q_nb0) F(u32, q_nb1) F(u32, q_nb2)                                    \
    F(u32, k_off) F(u32, k_nb0) F(u32, k_nb1) F(u32, k_nb2)                                    \
    F(u32, v_off) F(u32, v_nb0) F(u32, v_nb1) F(u32, v_nb2)                                    \
    F(u32, m_off) F(u32, m_nb0) F(u32, m_nb1)                                                  \
    F(u32, d_off) F(f32, scale) F(u32, flags)                                                  \
    F(u32, p_off) F(u32, p_nb0) F(u32, window) F(u32, n_split) F(u32, kn_off) F(u32, vn_off)  \
    F(u32, seq_len) F(u32, p_nb1)
VKI_DECLARE_PUSH(vki_pc_attention, VKI_PC_ATTENTION)

/* ---- conv2d: out[W', H', Cout, N] = w * x (+ b) as an implicit GEMM --------------------------- */
#define VKI_CONV_BINDING_X 0
#define VKI_CONV_BINDING_W 1
#define VKI_CONV_BINDING_B 2 /* bound to w when there is no bias */
#define VKI_CONV_BINDING_OUT 3
#define VKI_CONV_BINDING_R 4 /* a residual added to the result (fused add); bound to w when none */

#define VKI_CONV_HAS_BIAS 1u
#define VKI_CONV_X_F16 2u
#define VKI_CONV_W_F16 4u
#define VKI_CONV_UP2 8u       /* x is read upsampled 2x, nearest (fused upsample): w and h are the
                                 upsampled sizes, x(ix, iy) is stored at (ix / 2, iy / 2) */
#define VKI_CONV_RESIDUAL 16u /* add r (fused add): element (x, y, c, n) at r_off + x r_nb0 +
                                 y r_nb1 + c r_nb2 + n r_nb3, strides 0 where r broadcasts */

#define VKI_CONV_SPEC_KSIZE 1  /* kw = kh */
#define VKI_CONV_SPEC_TILE_M 2 /* output channels per workgroup */
#define VKI_CONV_SPEC_TILE_N 3 /* output pixels per workgroup */
#define VKI_CONV_SPEC_TILE_K 4 /* reduction slice held in shared memory (tiled variant) */
#define VKI_CONV_SPEC_REG_M 5  /* channels per thread */
#define VKI_CONV_SPEC_REG_N 6  /* pixels per thread */

#define VKI_PC_CONV2D(F)                                                                        \
    F(u32, w) F(u32, h) F(u32, cin) F(u32, cout) F(u32, ow) F(u32, oh) F(u32, pixels)          \
    F(u32, stride) F(u32, pad_x) F(u32, pad_y) /* left and top pads */                         \
    F(u32, x_off) F(u32, x_nb0) F(u32, x_nb1) F(u32, x_nb2) F(u32, x_nb3)                      \
    F(u32, w_off) F(u32, w_nb0) F(u32, w_nb1) F(u32, w_nb2) F(u32, w_nb3)                      \
    F(u32, b_off) F(u32, d_off) F(u32, flags)                                                  \
    F(u32, r_off) F(u32, r_nb0) F(u32, r_nb1) F(u32, r_nb2) F(u32, r_nb3)
VKI_DECLARE_PUSH(vki_pc_conv2d, VKI_PC_CONV2D)

#endif
