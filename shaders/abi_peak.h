/* ABI of the peak kernels of `vkinfer bench peak` (apps/bench_peak.c): peak_fma.comp,
 * peak_dot.comp, peak_coopmat.comp and peak_mem.comp. Include after vki_abi.h.
 *
 * Every kernel computes something the host can check exactly, so that a fast wrong kernel
 * cannot pass for a fast one: the FMA and dot chains from known inputs, the read kernel the
 * buffer's sum, the write kernel a pattern of the element index. */
#ifndef VKI_ABI_PEAK_H
#define VKI_ABI_PEAK_H

#define VKI_PEAK_LOCAL_SIZE 256 // threads per workgroup of fma, dot and mem (specialised down
                                // to the device's maxComputeWorkGroupInvocations)

/* peak_fma_f32 / peak_fma_f16: each thread runs CHAINS independent vec4 chains
 * x = fma(x, a, b), UNROLL steps per iteration, `iters` iterations, from x = init(gid, j) (see
 * bench_peak.c), and writes the sum of all 4 * CHAINS lanes to out[gid] (as f32). UNROLL is
 * odd so that with a = -1 the result tells an odd step count from an even one. */
#define VKI_PEAK_FMA_CHAINS 8
#define VKI_PEAK_FMA_UNROLL 15
#define VKI_PC_PEAK_FMA(F) F(u32, iters) F(f32, a) F(f32, b)
VKI_DECLARE_PUSH(vki_pc_peak_fma, VKI_PC_PEAK_FMA)

/* peak_dot: each thread runs CHAINS chains x = sdot4x8(x, w) + c (signed 4x8-bit packed dot
 * product, VK_KHR_shader_integer_dot_product; wrapping 32-bit add), UNROLL steps per
 * iteration, from x = init(gid, j), and writes the wrapping sum of its chains to out[gid].
 * The result feeds the next step's operand, so no compiler can hoist the dot out of the loop. */
#define VKI_PEAK_DOT_CHAINS 16
#define VKI_PEAK_DOT_UNROLL 15
#define VKI_PC_PEAK_DOT(F) F(u32, iters) F(i32, w) F(i32, c)
VKI_DECLARE_PUSH(vki_pc_peak_dot, VKI_PC_PEAK_DOT)

/* peak_coopmat_f16 (VK_NV_cooperative_matrix): each subgroup runs CHAINS accumulators
 * acc = A * B + acc over FRAG_M x FRAG_K fp16 A filled with a, FRAG_K x FRAG_N B filled with
 * b, fp32 accumulation, `iters` times from 0, and stores the sum of its accumulators
 * (every element CHAINS * iters * FRAG_K * a * b) row-major at subgroup index * M * N. */
#define VKI_PEAK_CM_CHAINS 4
#define VKI_PEAK_CM_LOCAL_SIZE 128
#define VKI_SPEC_PEAK_FRAG_M 1
#define VKI_SPEC_PEAK_FRAG_N 2
#define VKI_SPEC_PEAK_FRAG_K 3
#define VKI_PC_PEAK_CM(F) F(u32, iters) F(f32, a) F(f32, b)
VKI_DECLARE_PUSH(vki_pc_peak_cm, VKI_PC_PEAK_CM)

/* peak_read: n uvec4 of src, grid-stride (thread t reads t, t + T, t + 2T ... with T the
 * grid's threads); thread t writes the wrapping sum of every 32-bit word it read to
 * out[out_base + t]. */
#define VKI_PEAK_READ_BINDING_SRC 0
#define VKI_PEAK_READ_BINDING_OUT 1
#define VKI_PC_PEAK_READ(F) F(u32, n) F(u32, out_base)
VKI_DECLARE_PUSH(vki_pc_peak_read, VKI_PC_PEAK_READ)

/* peak_write: dst[i] = word pattern of global word 4 * (first + i) + lane, for i < n uvec4,
 * grid-stride: pattern(w) = (w * 2654435761) ^ seed. */
#define VKI_PEAK_WRITE_BINDING_DST 0
#define VKI_PC_PEAK_WRITE(F) F(u32, n) F(u32, first) F(u32, seed)
VKI_DECLARE_PUSH(vki_pc_peak_write, VKI_PC_PEAK_WRITE)

#endif
