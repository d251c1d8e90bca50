/* vkinfer runtime, testing hooks: what the runtime's own tests (and tools that check kernels)
 * use, kept out of the user API in vkinfer_runtime.h. Compiled into the runtime library like the
 * rest; a program that embeds vkinfer never needs this header.
 *
 * - Fault injection: make the next device-memory allocation or checked Vulkan call fail, so the
 *   failure paths run on a healthy device.
 * - SPIR-V reflection: what a compute module declares (bindings, push constants, local size),
 *   the same reader vki_kernel_create checks modules with.
 * - The cooperative-matrix choice: which extension and fragment shape, from property lists, so
 *   that it is tested on the lists of devices the suite never runs on.
 *
 * Thread safety: as the objects they act on (vkinfer_runtime.h). vki_device_inject_fault is a
 * call on the device like any other (one thread at a time); vki_spirv_reflect touches only its
 * arguments and may run on any thread. */
#ifndef VKINFER_RUNTIME_TESTING_H
#define VKINFER_RUNTIME_TESTING_H

#include "vkinfer_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Fault injection -------------------------------------------------------------------- */

/* For tests of failure paths: the next device-memory allocation fails as out of device memory,
 * or the next Vulkan call the runtime checks (a submit, a wait, ...) reports a lost device, and
 * the runtime takes the same path as if the driver had said so. */
typedef enum vki_fault {
    VKI_FAULT_NONE = 0,
    VKI_FAULT_OUT_OF_DEVICE_MEMORY,
    VKI_FAULT_DEVICE_LOST,
    VKI_FAULT_COUNT
} vki_fault;
void vki_device_inject_fault(vki_device *device, vki_fault fault);

/* ---- SPIR-V reflection ------------------------------------------------------------------ */

/* What the SPIR-V of a compute module declares. */
typedef struct vki_spirv_info {
    uint32_t binding_count;   // storage or texel buffers in set 0 (bindings must be 0..n-1)
    uint32_t texel_mask;      // bit i: binding i is a texel buffer, bound as a view of
                              // texel_bytes[i]-byte unsigned texels (R32_UINT, R32G32_UINT or
                              // R32G32B32A32_UINT)
    uint32_t image_mask;      // bit i: that texel buffer is a storage texel buffer (GLSL's
                              // uimageBuffer with a format); else a uniform one (usamplerBuffer,
                              // always R32_UINT)
    uint8_t texel_bytes[VKI_MAX_BINDINGS];
    uint32_t push_size;       // bytes of the push-constant block, 0 if none
    uint32_t local_size[3];   // after applying `specs`
    uint32_t spec_ids[VKI_MAX_SPECS]; // specialisation constant ids the module declares
    uint32_t spec_count;
} vki_spirv_info;

/* Reads `info` from a SPIR-V module with `specs` applied. VKI_ERROR_BAD_FILE (with a reason
 * in `out_error`, may be NULL) for a malformed module or one this runtime cannot bind. */
vki_status vki_spirv_reflect(const uint32_t *words, size_t word_count, const vki_spec *specs,
                             uint32_t spec_count, vki_spirv_info *out_info, char *out_error,
                             size_t error_size);

/* ---- Cooperative-matrix choice --------------------------------------------------------- */

/* One shape a device lists for cooperative matrices (VkCooperativeMatrixPropertiesKHR, or
 * VkCooperativeMatrixPropertiesNV with its DType as the result type: both extensions number
 * component types and scopes alike). */
typedef struct vki_coopmat_props {
    uint32_t m, n, k;             // A is m x k, B k x n, C and the result m x n
    uint32_t a_type, b_type;      // VkComponentTypeKHR: 0 fp16, 1 fp32, 3 int8, ...
    uint32_t c_type, result_type;
    uint32_t scope;               // VkScopeKHR: 3 subgroup, 2 workgroup, ...
    bool saturating;              // saturatingAccumulation (KHR only)
} vki_coopmat_props;

/* What a device offers through each extension. */
typedef struct vki_coopmat_caps {
    bool khr;                     // VK_KHR_cooperative_matrix: listed, feature cooperativeMatrix
                                  // on, compute in its supported stages, KHR kernels embedded
    bool nv;                      // VK_NV_cooperative_matrix: listed, feature cooperativeMatrix on
    const vki_coopmat_props *khr_props;
    uint32_t khr_count;
    const vki_coopmat_props *nv_props;
    uint32_t nv_count;
} vki_coopmat_caps;

/* The extension and fragment shape matmul_coopmat.comp runs with: a shape with fp16 A and B, fp32
 * C and result, no saturation, subgroup scope, M and N dividing 16 and K dividing 32 (the
 * kernel's tiles), 16 x 16 x 16 when listed, else the listed one with the most elements; from
 * the KHR list when it has one, else from the NV list. True with *out_khr and out_shape set;
 * false (both zeroed) when neither list has a usable shape. Pure: what vki_profile.coopmat,
 * coopmat_khr and coopmat_shape are made from. */
bool vki_coopmat_choose(const vki_coopmat_caps *caps, bool *out_khr, uint32_t out_shape[3]);

#ifdef __cplusplus
}
#endif

#endif
