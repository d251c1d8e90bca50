/* ABI of the unary family: copy.comp (copy, cast, concat, upsample), set_rows.comp, unary.comp,
 * glu.comp, timestep_embedding.comp and argmax.comp. Included by vki_abi.h. Strides and offsets are in
 * elements of the operand's dtype, as vki_lower_operand gives them. */
#ifndef VKI_ABI_UNARY_H
#define VKI_ABI_UNARY_H

/* copy: d[d_off + i * d_nb] = convert(s[s_off + (i >> shift) * s_nb]) for every 4-D index
 * i < ne, where dimension k of the source index is shifted right by bits 8k..8k+7 of s_shift
 * (nearest-neighbour upsampling by 2^shift; 0 for a plain copy). The source is read as 32-bit
 * words whatever its type, so reading never needs 16-bit storage. Variant copy_dst32 writes
 * f32 (d_type VKI_COPY_F32), copy_dst16 writes f16 or bf16 (d_type) and needs 16-bit storage. */
#define VKI_COPY_F32 0
#define VKI_COPY_F16 1
#define VKI_COPY_BF16 2
#define VKI_PC_COPY(F)                                                                      \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                         \
    F(u32, s_off) F(u32, s_nb0) F(u32, s_nb1) F(u32, s_nb2) F(u32, s_nb3)                   \
    F(u32, s_type) F(u32, s_shift) F(u32, d_type)                                           \
    F(u32, d_off) F(u32, d_nb0) F(u32, d_nb1) F(u32, d_nb2) F(u32, d_nb3)
VKI_DECLARE_PUSH(vki_pc_copy, VKI_PC_COPY)

/* set_rows: d[d_off + idx[n] * d_nb1 + k] = convert(s[s_off + k * s_nb0 + n * s_nb1]) for k < K,
 * n < N with 0 <= idx[n] < R. One invocation per 32-bit word of a destination row (`words` per
 * row, enough for an f16 row that starts mid-word), so f16 rows need no 16-bit storage; a word
 * shared with a neighbouring row is written with atomics on its own half only. Both sides are
 * read and written as words, the dtypes in flag bits. A Q8_0 destination (K % 32 == 0, d_off and
 * d_nb1 in bytes, both even) takes one invocation per 34-byte block instead (`words` = K / 32),
 * which quantises its 32 values as GGUF does and writes the half-word it shares with the
 * neighbouring block with atomics. */
#define VKI_SET_ROWS_BINDING_S 0
#define VKI_SET_ROWS_BINDING_I 1
#define VKI_SET_ROWS_BINDING_D 2
#define VKI_SET_ROWS_S_F16 1u
#define VKI_SET_ROWS_D_F16 2u
#define VKI_SET_ROWS_D_Q8_0 4u
#define VKI_PC_SET_ROWS(F)                                                                  \
    F(u32, K) F(u32, N) F(u32, R) F(u32, words)                                             \
    F(u32, s_off) F(u32, s_nb0) F(u32, s_nb1) F(u32, i_off) F(u32, i_nb0)                   \
    F(u32, d_off) F(u32, d_nb1) F(u32, flags)
VKI_DECLARE_PUSH(vki_pc_set_rows, VKI_PC_SET_ROWS)

/* Activation ids of unary.comp and glu.comp: the values of enum vki_activation
 * (vkinfer_graph.h), checked in graph/ops/unary.c. */
#define VKI_ABI_ACT_NONE 0
#define VKI_ABI_ACT_SILU 1
#define VKI_ABI_ACT_GELU 2
#define VKI_ABI_ACT_GELU_TANH 3
#define VKI_ABI_ACT_QUICK_GELU 4

/* unary: d[i] = act(a[i]) * scale; a strided, d contiguous with a's shape. */
#define VKI_PC_UNARY(F)                                                                     \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                         \
    F(u32, a_off) F(u32, a_nb0) F(u32, a_nb1) F(u32, a_nb2) F(u32, a_nb3)                   \
    F(u32, d_off) F(u32, act) F(f32, scale)
VKI_DECLARE_PUSH(vki_pc_unary, VKI_PC_UNARY)

/* glu: d[i] = act(a[i]) * b[i] (a the gate, b the up projection); a and b strided. */
#define VKI_PC_GLU(F)                                                                       \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                         \
    F(u32, a_off) F(u32, a_nb0) F(u32, a_nb1) F(u32, a_nb2) F(u32, a_nb3)                   \
    F(u32, b_off) F(u32, b_nb0) F(u32, b_nb1) F(u32, b_nb2) F(u32, b_nb3)                   \
    F(u32, d_off) F(u32, act)
VKI_DECLARE_PUSH(vki_pc_glu, VKI_PC_GLU)

/* timestep_embedding: d[j, n] for j < dim, n < count from t[n * t_nb0]; half_dim = dim / 2,
 * log_max_period = ln(max_period). */
#define VKI_PC_TIMESTEP(F)                                                                  \
    F(u32, dim) F(u32, half_dim) F(u32, count) F(u32, t_off) F(u32, t_nb0) F(u32, d_off)    \
    F(f32, log_max_period)
VKI_DECLARE_PUSH(vki_pc_timestep, VKI_PC_TIMESTEP)

/* argmax: one workgroup per row of ne0 elements (rows = ne1 * ne2 * ne3), d[row] = index; with
 * `finite` != 0, -1 for a row whose largest element is +inf or -inf (vki_argmax_finite). */
#define VKI_PC_ARGMAX(F)                                                                    \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                         \
    F(u32, s_off) F(u32, s_nb0) F(u32, s_nb1) F(u32, s_nb2) F(u32, s_nb3) F(u32, d_off)     \
    F(u32, finite)
VKI_DECLARE_PUSH(vki_pc_argmax, VKI_PC_ARGMAX)

#endif
