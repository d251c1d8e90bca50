/* ABI of the elementwise kernels (binary.comp). Included by vki_abi.h. */
#ifndef VKI_ABI_ELEMENTWISE_H
#define VKI_ABI_ELEMENTWISE_H

/* binary: d = a (op) b, b broadcast along dims where its ne is 1. Strides and offsets are in
 * elements; d is contiguous with a's shape. */
#define VKI_BINARY_ADD 0
#define VKI_BINARY_MUL 1
#define VKI_PC_BINARY(F)                                                                        \
    F(u32, ne0) F(u32, ne1) F(u32, ne2) F(u32, ne3)                                            \
    F(u32, a_off) F(u32, a_nb0) F(u32, a_nb1) F(u32, a_nb2) F(u32, a_nb3)                      \
    F(u32, b_off) F(u32, b_ne0) F(u32, b_ne1) F(u32, b_ne2) F(u32, b_ne3)                      \
    F(u32, b_nb0) F(u32, b_nb1) F(u32, b_nb2) F(u32, b_nb3)                                    \
    F(u32, d_off) F(u32, op)
VKI_DECLARE_PUSH(vki_pc_binary, VKI_PC_BINARY)

#endif
