// Cooperative matrices through either extension, so that one kernel source serves both:
// VK_KHR_cooperative_matrix (AMD RDNA3+, Intel Arc, NVIDIA; needs glslang >= 13, the variants
// compiled with -DCOOPMAT_KHR=1) or VK_NV_cooperative_matrix (NVIDIA; Debian's glslang 12).
// Include it right after a kernel's own #extension lines. The names are type and function
// aliases only (GLSL has no typedef): fp16 A (M x K) and B (K x N) operands, fp32
// accumulators, subgroup scope; layouts as CM_ROW_MAJOR / CM_COL_MAJOR; strides and offsets
// in elements of the array loaded from or stored to, in both extensions.
#ifndef VKI_COOPMAT_GLSL
#define VKI_COOPMAT_GLSL

#ifdef COOPMAT_KHR
#extension GL_KHR_cooperative_matrix : require
#define cm_a(M, K) coopmat<float16_t, gl_ScopeSubgroup, M, K, gl_MatrixUseA>
#define cm_b(K, N) coopmat<float16_t, gl_ScopeSubgroup, K, N, gl_MatrixUseB>
#define cm_acc(M, N) coopmat<float, gl_ScopeSubgroup, M, N, gl_MatrixUseAccumulator>
#define CM_ROW_MAJOR gl_CooperativeMatrixLayoutRowMajor
#define CM_COL_MAJOR gl_CooperativeMatrixLayoutColumnMajor
#define cm_load coopMatLoad
#define cm_store coopMatStore
#define cm_mul_add coopMatMulAdd
#else
#extension GL_NV_cooperative_matrix : require
#define cm_a(M, K) fcoopmatNV<16, gl_ScopeSubgroup, M, K>
#define cm_b(K, N) fcoopmatNV<16, gl_ScopeSubgroup, K, N>
#define cm_acc(M, N) fcoopmatNV<32, gl_ScopeSubgroup, M, N>
#define CM_ROW_MAJOR false
#define CM_COL_MAJOR true
#define cm_load coopMatLoadNV
#define cm_store coopMatStoreNV
#define cm_mul_add coopMatMulAddNV
#endif

#endif
