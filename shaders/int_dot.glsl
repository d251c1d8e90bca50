// Integer dot products on 4x8-bit packed operands (VK_KHR_shader_integer_dot_product, which the
// device is opened with where the profile has int_dot). glslang 12 has no
// GL_EXT_integer_dot_product, so the instruction is declared through GL_EXT_spirv_intrinsics:
// OpSDot = 4450, capabilities DotProduct (6019) and DotProductInput4x8BitPacked (6018),
// packed-vector-format literal 0 = 4x8Bit. The including kernel enables
// GL_EXT_spirv_intrinsics.
#ifndef VKI_INT_DOT_GLSL
#define VKI_INT_DOT_GLSL

spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot4x8(int a, int b, spirv_literal int packed_format);

// The sum of the products of the four signed bytes of a and b.
int idot4x8(uint a, uint b) { return sdot4x8(int(a), int(b), 0); }

#endif
