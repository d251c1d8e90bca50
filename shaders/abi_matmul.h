/* ABI of the matmul family: matvec.comp, matmul_shared.comp, matmul_reg.comp, matmul_coopmat.comp
 * and get_rows.comp.
 * Included by vki_abi.h. The weight type is a variant define (WTYPE, see quant.glsl); weights
 * and activations are read as 32-bit words whatever their type, so no kernel of the family
 * needs 16-bit storage. Strides and offsets of the weight are in bytes for quantized types and
 * in elements otherwise (as vki_lower_operand gives them); those of x, y and the bias are in
 * elements. */
#ifndef VKI_ABI_MATMUL_H
#define VKI_ABI_MATMUL_H

/* Weight types (WTYPE): the vki_dtype values, checked in graph/ops/matmul.c. */
#define VKI_WTYPE_F32 1
#define VKI_WTYPE_F16 2
#define VKI_WTYPE_BF16 3
#define VKI_WTYPE_Q8_0 4
#define VKI_WTYPE_Q4_0 5
#define VKI_WTYPE_Q4_1 6
#define VKI_WTYPE_Q5_0 7
#define VKI_WTYPE_Q5_1 8
#define VKI_WTYPE_Q4_K 9
#define VKI_WTYPE_Q5_K 10
#define VKI_WTYPE_Q6_K 11

/* Specialisation constants (VKI_SPEC_LOCAL_SIZE_X is 0). X_F16: x holds f16 (else f32).
 * ROWS x COLS: the outputs each thread accumulates in registers (matvec: the workgroup's, its
 * threads splitting K). TILE_M x TILE_N: the output tile of a matmul workgroup, TILE_K deep
 * slabs (matmul_shared). ALIGN: VKI_MM_ALIGN_W when every weight row starts at a multiple of
 * 4 bytes and a chunk (quant.glsl) is a whole number of words, VKI_MM_ALIGN_X when every row
 * of x starts at a multiple of 16 bytes: reads need no realigning, x is read 16 bytes at once. */
#define VKI_SPEC_MM_X_F16 1
#define VKI_SPEC_MM_ROWS 2
#define VKI_SPEC_MM_COLS 3
#define VKI_SPEC_MM_TILE_M 4
#define VKI_SPEC_MM_TILE_N 5
#define VKI_SPEC_MM_TILE_K 6
#define VKI_SPEC_MM_ALIGN 7
/* matmul_coopmat: the cooperative-matrix fragment, FRAG_M x FRAG_K times FRAG_K x FRAG_N (a
 * shape the device lists for fp16 operands and fp32 accumulators); ROWS x COLS are then the
 * fragments of a subgroup's block. */
#define VKI_SPEC_MM_FRAG_M 8
#define VKI_SPEC_MM_FRAG_N 9
#define VKI_SPEC_MM_FRAG_K 10
/* matmul_coopmat: shared-memory slab buffers, 2 (double-buffered) or 1. */
#define VKI_SPEC_MM_BUFFERS 14
/* matvec_wide: the chunks of K each thread decodes per pass of ROWS rows, holding their x in
 * registers, and the blocks of local-size rows a workgroup computes. */
#define VKI_SPEC_MM_KCHUNKS 11
#define VKI_SPEC_MM_BLOCKS 12
/* matvec_wide, raw-dot formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): a thread's chunks come in runs
 * of RUN consecutive blocks of a row (at most VKI_MM_RUN_MAX), each run read at once. */
#define VKI_SPEC_MM_RUN 13
#define VKI_MM_RUN_MAX 4
#define VKI_MM_ALIGN_W 1
#define VKI_MM_ALIGN_X 2
/* Every weight row starts at a multiple of 4 bytes, whatever the block size; at a multiple of
 * 16 bytes (a whole texel of matvec_wide's weights). */
#define VKI_MM_ALIGN_W_ROWS 4
#define VKI_MM_ALIGN_W_TEXELS 8

/* The epilogue word of vki_pc_matmul (epi). */
#define VKI_MM_EPI_ACT_MASK 0xffu // the activation after the bias (VKI_ABI_ACT_*)
#define VKI_MM_EPI_GLU_SHIFT 8    // matvec_wide's glu activation, the next byte (0: no glu)
#define VKI_MM_EPI_BIAS (1u << 16)
#define VKI_MM_EPI_RES (1u << 17)
#define VKI_MM_EPI_NORM (1u << 18) // matvec_wide: x rms-normed with weights n_off, epsilon eps

/* Elements per chunk (quant.glsl): what one thread decodes at once from few words. */
#define VKI_MM_CHUNK 32u

/* Bindings of matvec and matmul: w, x, bias (w again when there is none), y, residual (w again
 * when there is none); matvec_wide also the weights of an rms_norm of x fused in (f32 [K], w
 * again when there is none). */
#define VKI_MM_BINDING_W 0
#define VKI_MM_BINDING_X 1
#define VKI_MM_BINDING_BIAS 2
#define VKI_MM_BINDING_Y 3
#define VKI_MM_BINDING_RES 4
#define VKI_MM_BINDING_NORM 5
/* matvec_wide's rope (rope_rows > 0): I32 positions, one per column (w again when there is no
 * rope). */
#define VKI_MM_BINDING_POS 6

/* y[M, N, ne2, ne3] = act(w[K, M, ne2 / w_r2, ne3 / w_r3] x[K, N, ne2, ne3] + bias[M])
 *                      + res[M, N, ne2, ne3].
 * w's batch index along dim i is x's divided by w_ri (ratio broadcast, ggml's rule). `epi`
 * says which epilogue stages run, in one word (VKI_MM_EPI_*): the activation id (VKI_ABI_ACT_*,
 * abi_unary.h) in its low byte; without VKI_MM_EPI_BIAS the bias binding is unread, without
 * VKI_MM_EPI_RES the residual's (a contiguous f32 tensor of y's shape, from element r_off);
 * matvec_wide's fused rms_norm of x (VKI_MM_EPI_NORM, weights from n_off, epsilon eps) and
 * glu (its activation id in the second byte: y[m] = glu(row m) * row m + M).
 * M rows are computed of the y_ld that y's columns hold (M < y_ld for one slice of rows of
 * a weight larger than one binding; y_off, b_off and r_off then start at its first row).
 * The block is 28 of the 32 words of 128 bytes: an epilogue stage that needs a switch adds a
 * bit to `epi`, not a word; one that needs operands' offsets takes the four free words, and past
 * them the rarely changing fields (eps, the rope's) move to a parameter buffer.
 * matvec_wide may also rotate its first rope_rows rows (heads of rope_hd rows, the first n_rot
 * of each in pairs 2i, 2i + 1: llama's rope) by the position of their column, pos[p_off + col],
 * as rope.comp does with freq_scale and log2_step; before bias, activation and residual, which
 * a roped product has none of (the fusion pass checks). */
#define VKI_PC_MATMUL(F)                                                                        \
    F(u32, M) F(u32, y_ld) F(u32, N) F(u32, K) F(u32, ne2) F(u32, ne3) F(u32, w_r2) F(u32, w_r3)            \
    F(u32, w_off) F(u32, w_nb1) F(u32, w_nb2) F(u32, w_nb3)                                    \
    F(u32, x_off) F(u32, x_nb1) F(u32, x_nb2) F(u32, x_nb3)                                    \
    F(u32, y_off) F(u32, b_off) F(u32, r_off) F(u32, n_off) F(u32, epi) F(f32, eps)            \
    F(u32, rope_rows) F(u32, rope_hd) F(u32, n_rot) F(u32, p_off) F(f32, freq_scale)           \
    F(f32, log2_step)
VKI_DECLARE_PUSH(vki_pc_matmul, VKI_PC_MATMUL)

/* get_rows: d[k, n] = table[k, ids[n]] for k < K, n < N; ids outside [0, v_total) give zeros.
 * The binding holds table rows [v_first, v_first + V): all of them, or one slice of a table
 * larger than one binding, one dispatch per slice; a slice writes only the outputs of its ids
 * (the first slice also the zeros). */
#define VKI_PC_GET_ROWS(F)                                                                      \
    F(u32, K) F(u32, N) F(u32, V) F(u32, t_off) F(u32, t_nb1) F(u32, i_off) F(u32, i_nb0)      \
    F(u32, d_off) F(u32, v_first) F(u32, v_total)
VKI_DECLARE_PUSH(vki_pc_get_rows, VKI_PC_GET_ROWS)

#endif
