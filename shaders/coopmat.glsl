// Cooperative matrices through either extension, so that one kernel source serves both:
// VK_KHR_cooperative_matrix (AMD RDNA3+, Intel Arc, NVIDIA; needs glslang >= 13, the variants
// compiled with -DCOOPMAT_KHR=1) or VK_NV_cooperative_matrix (NVIDIA; Debian's glslang 12);
// and a third mode, COOPMAT_EMU, with no extension at all, so that a device without matrix
// cores (lavapipe, in the tests) runs the very same kernel source, its tiling, buffering,
// subgroup passes and store path included (the `emulate-coopmat` narrowing).
// Include it right after a kernel's own #extension lines. The names are type and function
// aliases only (GLSL has no typedef): fp16 A (M x K) and B (K x N) operands, fp32
// accumulators, subgroup scope; layouts as CM_ROW_MAJOR / CM_COL_MAJOR; strides and offsets
// in elements of the array loaded from or stored to, in all modes. An accumulator starts as
// cm_acc_zero(M, N) (the extensions' constructor, which the emulation cannot mimic).
#ifndef VKI_COOPMAT_GLSL
#define VKI_COOPMAT_GLSL

#if defined(COOPMAT_EMU)
// Every invocation of the subgroup holds each A and B fragment whole, as a plain array of
// CM_EMU_F x CM_EMU_F elements (element (r, c) at r * CM_EMU_F + c), whatever the kernel's
// FRAG_* say: the profile of an emulating device reports CM_EMU_F for all three, and the
// lowering sizes the tiles from the profile. An accumulator is spread over the lanes as on the
// hardware: lane l holds (and computes, and stores) elements e = l + j * gl_SubgroupSize, so
// that no two lanes write one element and, as with the extensions, a store is complete once
// the subgroup has passed a barrier. (Whole accumulators in every lane, 8 KiB of private
// memory per lane for a subgroup's 8 x 4 fragments, came out wrong on lavapipe beyond ten
// slabs of K.) Needs subgroups of at least CM_EMU_MIN_LANES lanes,
// GL_KHR_shader_subgroup_basic and GL_EXT_shader_explicit_arithmetic_types_float16 (fp16
// operands, fp32 accumulation: what the matrix cores do).
#ifndef CM_EMU_F
#define CM_EMU_F 8u
#endif
#define CM_EMU_ELEMS (CM_EMU_F * CM_EMU_F)
#define CM_EMU_MIN_LANES 4u
#define CM_EMU_OWN (CM_EMU_ELEMS / CM_EMU_MIN_LANES) // accumulator elements a lane holds, at most
struct cm_emu_half { float16_t e[CM_EMU_ELEMS]; };  // an A or a B fragment
struct cm_emu_float { float e[CM_EMU_OWN]; };       // a lane's share of an accumulator
#define cm_a(M, K) cm_emu_half
#define cm_b(K, N) cm_emu_half
#define cm_acc(M, N) cm_emu_float
#define CM_ROW_MAJOR false
#define CM_COL_MAJOR true

// Where element e = (r, c) of a fragment lies in the array: row r at off + r * stride, or
// column c at off + c * stride.
uint cm_emu_at(uint e, uint off, uint stride, bool col_major)
{
    uint r = e / CM_EMU_F, c = e % CM_EMU_F;
    return off + (col_major ? c * stride + r : r * stride + c);
}

cm_emu_float cm_acc_zero_emu()
{
    cm_emu_float z;
    for (uint j = 0u; j < CM_EMU_OWN; j++) z.e[j] = 0.0;
    return z;
}
#define cm_acc_zero(M, N) cm_acc_zero_emu()

// d = a b + c for this lane's elements of c: fp16 products summed in fp32, the plain triple
// loop.
cm_emu_float cm_mul_add(cm_emu_half a, cm_emu_half b, cm_emu_float c)
{
    [[dont_unroll]] for (uint j = 0u; j < CM_EMU_OWN; j++) {
        uint e = gl_SubgroupInvocationID + j * gl_SubgroupSize;
        if (e >= CM_EMU_ELEMS) break;
        uint r = e / CM_EMU_F, n = e % CM_EMU_F;
        float s = c.e[j];
        for (uint k = 0u; k < CM_EMU_F; k++)
            s += float(a.e[r * CM_EMU_F + k]) * float(b.e[k * CM_EMU_F + n]);
        c.e[j] = s;
    }
    return c;
}

// Loads and stores are statement macros because GLSL passes arrays to functions by value: a
// function could not read or write the kernel's shared (or buffer) array in place, as the
// extensions' built-ins do.
#define cm_load(frag, arr, off, stride, col_major)                                              \
    [[dont_unroll]] for (uint cm_e = 0u; cm_e < CM_EMU_ELEMS; cm_e++)                           \
        (frag).e[cm_e] = arr[cm_emu_at(cm_e, (off), (stride), (col_major))]
#define cm_store(frag, arr, off, stride, col_major)                                             \
    [[dont_unroll]] for (uint cm_j = 0u; cm_j < CM_EMU_OWN &&                                   \
                         gl_SubgroupInvocationID + cm_j * gl_SubgroupSize < CM_EMU_ELEMS; cm_j++) \
        arr[cm_emu_at(gl_SubgroupInvocationID + cm_j * gl_SubgroupSize, (off), (stride),       \
                      (col_major))] = (frag).e[cm_j]
// An accumulator loaded from an array (a running sum kept in shared memory between products):
// each lane its own elements, as cm_store writes them.
#define cm_load_acc(frag, arr, off, stride, col_major)                                          \
    [[dont_unroll]] for (uint cm_j = 0u; cm_j < CM_EMU_OWN &&                                   \
                         gl_SubgroupInvocationID + cm_j * gl_SubgroupSize < CM_EMU_ELEMS; cm_j++) \
        (frag).e[cm_j] = arr[cm_emu_at(gl_SubgroupInvocationID + cm_j * gl_SubgroupSize, (off), \
                                       (stride), (col_major))]
#elif defined(COOPMAT_KHR)
#extension GL_KHR_cooperative_matrix : require
#define cm_a(M, K) coopmat<float16_t, gl_ScopeSubgroup, M, K, gl_MatrixUseA>
#define cm_b(K, N) coopmat<float16_t, gl_ScopeSubgroup, K, N, gl_MatrixUseB>
#define cm_acc(M, N) coopmat<float, gl_ScopeSubgroup, M, N, gl_MatrixUseAccumulator>
#define CM_ROW_MAJOR gl_CooperativeMatrixLayoutRowMajor
#define CM_COL_MAJOR gl_CooperativeMatrixLayoutColumnMajor
#define cm_load coopMatLoad
#define cm_load_acc coopMatLoad
#define cm_store coopMatStore
#define cm_mul_add coopMatMulAdd
#define cm_acc_zero(M, N) cm_acc(M, N)(0.0)
#else
#extension GL_NV_cooperative_matrix : require
#define cm_a(M, K) fcoopmatNV<16, gl_ScopeSubgroup, M, K>
#define cm_b(K, N) fcoopmatNV<16, gl_ScopeSubgroup, K, N>
#define cm_acc(M, N) fcoopmatNV<32, gl_ScopeSubgroup, M, N>
#define CM_ROW_MAJOR false
#define CM_COL_MAJOR true
#define cm_load coopMatLoadNV
#define cm_load_acc coopMatLoadNV
#define cm_store coopMatStoreNV
#define cm_mul_add coopMatMulAddNV
#define cm_acc_zero(M, N) cm_acc(M, N)(0.0)
#endif

#endif
