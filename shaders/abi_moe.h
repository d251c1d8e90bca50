/* ABI of the mixture-of-experts kernels (graph/ops/moe.c, graph/ops/matmul_id.c): top_k.comp,
 * moe_weights.comp, moe_combine.comp, and the ids path (IDS=1) of the matmul family
 * (matmul_common.glsl). Included by vki_abi.h after abi_matmul.h. Strides and offsets are in
 * elements of the operand's dtype (halves for F16), results are contiguous. */
#ifndef VKI_ABI_MOE_H
#define VKI_ABI_MOE_H

/* top_k: one workgroup per row (i1, i2, i3) of x [ne0, ne1, ne2, ne3] (F32, or F16 when f16,
 * read as words: words.glsl), d[d_off + row * k + j] = index of the j-th largest, j < k.
 * The WEIGHTS=1 variants (moe_weights with its top_k folded in, graph/ops/moe.c) also write
 * the routing weights of the chosen, w[w_off + row * k + j] (f32, binding 2), as `gate` says:
 * VKI_TOP_K_GATE_SOFTMAX softmax(row)[d[j]], VKI_TOP_K_GATE_SOFTMAX_CHOSEN the same divided by
 * their sum (vki_moe_weights' normalize). */
#define VKI_PC_TOP_K(F)                                                                         \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3) F(u32, k) F(u32, f16)                       \
    F(u32, s_off) F(u32, s_nb0) F(u32, s_nb1) F(u32, s_nb2) F(u32, s_nb3) F(u32, d_off)        \
    F(u32, w_off) F(u32, gate)
VKI_DECLARE_PUSH(vki_pc_top_k, VKI_PC_TOP_K)
#define VKI_TOP_K_GATE_SOFTMAX 1
#define VKI_TOP_K_GATE_SOFTMAX_CHOSEN 2
/* The longest row: the kernel keeps nothing per element (a pass rescans one thread's share), so
 * the limit only bounds a row's k passes; routers have 8 to 256 experts. */
#define VKI_TOP_K_MAX_ROW 4096

/* moe_weights: one workgroup per column n of x f32 [E, N]; ids i32 [k, N];
 * d[d_off + n * k + j] = softmax(x[:, n])[ids[j, n]] (0 for an id outside [0, E)), divided by
 * their sum when `normalize` (and 0 where that sum is 0). */
#define VKI_PC_MOE_WEIGHTS(F)                                                                   \
    F(u32, E) F(u32, N) F(u32, k) F(u32, normalize)                                             \
    F(u32, x_off) F(u32, x_nb0) F(u32, x_nb1) F(u32, i_off) F(u32, i_nb0) F(u32, i_nb1)         \
    F(u32, d_off)
VKI_DECLARE_PUSH(vki_pc_moe_weights, VKI_PC_MOE_WEIGHTS)

/* moe_combine: d[d_off + m + M n] = scale sum_j w[j, n] y[m, j, n] (f32, in order j = 0, 1,
 * ...) + r[r_off + m + M n] where `res` (r: a residual the fusion pass folded in, contiguous
 * f32; the y binding again without one), one invocation per output. */
#define VKI_PC_MOE_COMBINE(F)                                                                   \
    F(u32, M) F(u32, k) F(u32, N)                                                               \
    F(u32, y_off) F(u32, y_nb0) F(u32, y_nb1) F(u32, y_nb2) F(u32, w_off) F(u32, w_nb0)         \
    F(u32, w_nb1) F(u32, d_off) F(f32, scale) F(u32, r_off) F(u32, res)
VKI_DECLARE_PUSH(vki_pc_moe_combine, VKI_PC_MOE_COMBINE)

/* matmul_id, the matmul family's kernels with IDS=1: the product as a batch of ne2 = k slots by
 * ne3 = N tokens of one column each (pc.N = 1), batch b = j + k n. Its weight matrix is expert
 * ids[i_off + b] (ids i32 [k, N], contiguous) of w [K, M, E] (expert stride w_nb2); its x
 * column starts at x_off + j x_nb2 + n x_nb3 (x_nb2 = 0: one column shared by the slots); y is
 * [M, k, N]. The binding holds experts [e_first, e_first + e_count) of e_total: all of them, or
 * one slice of weights larger than one binding, one dispatch per slice; a batch whose expert is
 * another slice's stores nothing, one whose id is outside [0, e_total) stores zeros (the first
 * slice's dispatch) and reads only the slice's first expert. matvec_wide with a fused glu
 * (the glu byte of epi): w holds 2 e_total experts, the gate ones then the up ones, all in the
 * binding, and y = act(expert id's row) * (expert e_total + id's row). The matmul block's 28
 * words and these 4 fill the 128 bytes. */
/* The ids' binding: the one after the kernel's last (reflection wants bindings 0..n-1). */
#define VKI_MM_BINDING_IDS 5
#define VKI_MM_BINDING_IDS_WIDE 7 // matvec_wide, whose bindings 5 and 6 are the norm's and rope's
#define VKI_PC_MATMUL_ID(F)                                                                     \
    VKI_PC_MATMUL(F) F(u32, i_off) F(u32, e_first) F(u32, e_count) F(u32, e_total)
VKI_DECLARE_PUSH(vki_pc_matmul_id, VKI_PC_MATMUL_ID)
/* matvec_wide with the weighted combine folded in (VKI_MM_EPI_COMBINE in epi, a decode): the
 * grid's z runs over the ne3 tokens, and a workgroup computes its rows for each of the ne2 = k
 * slots in turn, summing them into y [M, N] (y_ld = M) as moe_combine does: y[m, n] = eps
 * sum_j w[b_off + j + k n] (expert ids[j + k n]'s row m . x) (+ res[r_off + m + M n] with
 * VKI_MM_EPI_RES), in slot order. The routing weights w (f32 [k, N], contiguous) are bound as
 * the bias, the residual as the dense product's; the scale is the `eps` word (matmul_id has no
 * norm). Each invocation adds a slot to the sum it stored itself for the slot before.
 * matvec.comp's _id kernels take the same bit and bindings (grid z = the ne3 tokens): their
 * threads share a token's (slot, chunk) pairs, weight each pair's partial sums and reduce
 * once; y is only stored. */
#define VKI_MM_EPI_COMBINE (1u << 19)

/* A batch's rows grouped by expert (matmul_id with many tokens): moe_route.comp, one workgroup,
 * sorts the k x N (slot, token) pairs b = j + k n whose ids lie in [e_first, e_first + e_count)
 * by expert into a list of tiles of up to tile_n pairs each, in the route buffer r (32-bit
 * words): r[0] the tile count; tile t at r[1 + 3t..]: its expert (from e_first), the first of
 * its pairs in the list and their count; the list of pairs from r[list_off]. The first slice
 * (e_first 0) also writes the zero columns of ids outside [0, e_total) into y [M, k, N].
 * matmul_id.comp then computes tile gl_WorkGroupID.y of the list against its expert's rows,
 * reading r through the ids binding (pc.i_off = list_off). */
#define VKI_MOE_ROUTE_MAX_EXPERTS 1024 // experts of one slice: a shared counter each
#define VKI_PC_MOE_ROUTE(F)                                                                     \
    F(u32, pairs) F(u32, i_off) F(u32, e_first) F(u32, e_count) F(u32, e_total)                 \
    F(u32, tile_n) F(u32, list_off) F(u32, M) F(u32, y_off)
VKI_DECLARE_PUSH(vki_pc_moe_route, VKI_PC_MOE_ROUTE)

#endif
