/* ABI of the row kernels: norm.comp (rms_norm, layer_norm, group_norm), softmax.comp and
 * rope.comp. Included by vki_abi.h. Strides and offsets are in elements of the operand's dtype;
 * results are contiguous. */
#ifndef VKI_ABI_NORM_H
#define VKI_ABI_NORM_H

/* Weights, biases and masks may be F32 or F16 whatever x is: the kernels read them as 32-bit
 * words (words.glsl), their dtype a flag rather than another kernel variant. */

/* norm: one workgroup normalises one box [n0, n1, n2] of x (strides x_nb0..2) and writes it
 * contiguously at d_off + box * n0*n1*n2. Boxes form a grid [g1, g2, g3] with strides x_s1..3:
 * a row of rms_norm/layer_norm is a box [ne0, 1, 1] on the grid [ne1, ne2, ne3]; a (group, n) of
 * group_norm is a box [W, H, C/groups] on the grid [groups, N, 1]. The weight and bias of box
 * element e (flat index in the box) at grid position j1 are at index e / w_div + j1 * w_step:
 * w_div 1 and w_step 0 for rows, w_div W*H and w_step C/groups for channels. */
#define VKI_NORM_CENTER (1u << 0) // subtract the mean (layer/group norm); else divide by the RMS
#define VKI_NORM_W (1u << 1)      // multiply by w
#define VKI_NORM_B (1u << 2)      // add b
#define VKI_NORM_W_F16 (1u << 3)  // w holds f16 (else f32)
#define VKI_NORM_B_F16 (1u << 4)
#define VKI_NORM_ACT_SHIFT 8u     // bits 8..11: an activation (VKI_ABI_ACT_*) applied last
#define VKI_PC_NORM(F)                                                                          \
    F(u32, n0) F(u32, n1) F(u32, n2) F(u32, g1) F(u32, g2) F(u32, g3)                          \
    F(u32, x_off) F(u32, x_nb0) F(u32, x_nb1) F(u32, x_nb2)                                    \
    F(u32, x_s1) F(u32, x_s2) F(u32, x_s3)                                                     \
    F(u32, w_off) F(u32, b_off) F(u32, w_div) F(u32, w_step)                                   \
    F(u32, d_off) F(u32, flags) F(f32, eps)
VKI_DECLARE_PUSH(vki_pc_norm, VKI_PC_NORM)

/* softmax: one workgroup per row (i1, i2, i3) of x [ne0, ne1, ne2, ne3]. The mask row is
 * i1 % m_ne1 (m_ne1 is 1 or ne1); columns j > i1 + ne0 - ne1 are masked when causal. */
#define VKI_SOFTMAX_MASK (1u << 0)
#define VKI_SOFTMAX_MASK_F16 (1u << 1)
#define VKI_SOFTMAX_CAUSAL (1u << 2)
#define VKI_PC_SOFTMAX(F)                                                                       \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                            \
    F(u32, x_off) F(u32, x_nb0) F(u32, x_nb1) F(u32, x_nb2) F(u32, x_nb3)                      \
    F(u32, m_off) F(u32, m_nb0) F(u32, m_nb1) F(u32, m_ne1)                                    \
    F(u32, d_off) F(u32, flags) F(f32, scale)
VKI_DECLARE_PUSH(vki_pc_softmax, VKI_PC_SOFTMAX)

/* rope: one invocation per rotated pair or passed-through element of x [ne0, ne1, ne2, ne3]
 * (head_dim, n_head, n_tok, batch); pos (I32, contiguous) is indexed by i2. Pair t rotates by
 * pos * freq_scale * exp2(-t * log2_step), log2_step = 2 log2(base) / n_rot.
 * Multi-section modes (MROPE, VISION; NEOX pairs): pos is [ne2, 4], and pair t reads stream
 * k = (t >= sec1) + (t >= sec2) + (t >= sec3) (sec1..3: where sections 1..3 start), at
 * pos[k * ne2 + i2]; VISION counts t from its section's start and has
 * log2_step = 2 log2(base) / (n_rot / 2). */
#define VKI_ROPE_MODE_NEOX 1 // pairs (t, t + n_rot/2); else (2t, 2t + 1)
#define VKI_ROPE_MODE_MROPE 2
#define VKI_ROPE_MODE_VISION 3
#define VKI_PC_ROPE(F)                                                                          \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                            \
    F(u32, x_off) F(u32, x_nb0) F(u32, x_nb1) F(u32, x_nb2) F(u32, x_nb3)                      \
    F(u32, p_off) F(u32, d_off) F(u32, n_rot) F(u32, mode)                                     \
    F(f32, freq_scale) F(f32, log2_step) F(u32, sec1) F(u32, sec2) F(u32, sec3)
VKI_DECLARE_PUSH(vki_pc_rope, VKI_PC_ROPE)

#endif
