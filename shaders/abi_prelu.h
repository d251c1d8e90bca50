/* ABI of prelu.comp (graph/ops/prelu.c). Included by vki_abi.h. Strides and offsets are in
 * elements of the operand's dtype. */
#ifndef VKI_ABI_PRELU_H
#define VKI_ABI_PRELU_H

/* prelu: d[i] = x >= 0 ? x : x * s, x = a[i] (strided), s = slope (f32) at i's index taken modulo
 * b_ne in each dim when has_b, else the scalar `slope` (leaky ReLU). d is contiguous. */
#define VKI_PC_PRELU(F)                                                                     \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                         \
    F(u32, a_off) F(u32, a_nb0) F(u32, a_nb1) F(u32, a_nb2) F(u32, a_nb3)                   \
    F(u32, b_off) F(u32, b_ne0) F(u32, b_ne1) F(u32, b_ne2) F(u32, b_ne3)                   \
    F(u32, b_nb0) F(u32, b_nb1) F(u32, b_nb2) F(u32, b_nb3)                                 \
    F(u32, d_off) F(u32, has_b) F(f32, slope)
VKI_DECLARE_PUSH(vki_pc_prelu, VKI_PC_PRELU)

#endif
