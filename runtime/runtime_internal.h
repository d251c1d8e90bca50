/* Internal structures of the runtime layer. Never included from apps. */
#ifndef VKINFER_RUNTIME_INTERNAL_H
#define VKINFER_RUNTIME_INTERNAL_H

#include "vkinfer_runtime.h"
#include "vkinfer_runtime_testing.h" // vki_fault, vki_spirv_info

#include <volk.h>

#include <stdarg.h>

#define VKI_ERROR_SIZE 1024

/* ---- instance.c -------------------------------------------------------------------------- */

typedef struct vki_physical {
    VkPhysicalDevice handle;
    VkPhysicalDeviceProperties props;
} vki_physical;

struct vki_instance {
    vki_allocator allocator;
    vki_log_fn log;
    void *log_user;
    vki_log_level log_level;
    VkInstance handle;
    VkDebugUtilsMessengerEXT messenger;
    bool debug_utils;
    bool validation;
    _Atomic uint32_t validation_count; // counted on the threads of every device
    uint32_t physical_count;
    vki_physical *physicals;
    char last_error[VKI_ERROR_SIZE];
};

/* ---- status.c: host memory, logging, errors ---------------------------------------------- */

void *vki__alloc(const vki_instance *inst, size_t size);   // zeroed
void vki__free(const vki_instance *inst, void *ptr);

void vki__log(const vki_instance *inst, vki_log_level level, const char *fmt, ...)
    VKI_PRINTF(3, 4);

/* Formats a message into `last_error`, sends it to the log at ERROR level, returns `status`. */
vki_status vki__fail(const vki_instance *inst, char *last_error, vki_status status,
                     const char *fmt, ...) VKI_PRINTF(4, 5);

const char *vki__vk_result_name(VkResult result);

/* VkResult -> status: DEVICE_LOST, OUT_OF_*_MEMORY keep their meaning, the rest is VULKAN. */
vki_status vki__status_from_vk(VkResult result);

/* Human-readable byte count ("300.0 MiB") into buf. */
const char *vki__bytes(uint64_t bytes, char buf[32]);

/* "4294967296", "4G", "3500M", "512K" (binary units; "GiB"/"MiB"/"KiB" and "GB"/"MB"/"KB" read
 * as the same) -> bytes: VKI_MEMORY_LIMIT and the max-binding narrowing. False for anything
 * else, zero, or a value that overflows. */
bool vki__parse_bytes(const char *text, uint64_t *out);

/* Overflow-checked helpers. */
static inline bool vki__add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* ---- profile.c --------------------------------------------------------------------------- */

/* VK_KHR_cooperative_matrix as the Vulkan registry defines it (extension 507), for headers
 * older than 1.3.255 (Debian 12 ships 1.3.239), where only the NV extension is declared. */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506002)
typedef VkComponentTypeNV VkComponentTypeKHR; // the NV values are the KHR ones (fp16 0, fp32 1)
typedef VkScopeNV VkScopeKHR;                 // subgroup 3
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    VkComponentTypeKHR AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    VkShaderStageFlags cooperativeMatrixSupportedStages;
} VkPhysicalDeviceCooperativeMatrixPropertiesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice physicalDevice, uint32_t *pPropertyCount,
    VkCooperativeMatrixPropertiesKHR *pProperties);
#endif

/* A module that every build with the VK_KHR_cooperative_matrix kernels embeds
 * (shaders/CMakeLists.txt): without it the profile never chooses the KHR extension. */
#define VKI_COOPMAT_KHR_MODULE "peak_coopmat_khr_f16"

/* Everything device.c needs to enable the features the profile reports. */
typedef struct vki_feature_chain {
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceVulkan13Features f13;
    VkPhysicalDeviceShaderIntegerDotProductFeatures dot;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV coop;
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR coop_khr;
    const char *extensions[16];
    uint32_t extension_count;
} vki_feature_chain;

/* Queries the physical device, applies `narrowing` and picks the tuning. When `out_chain` is
 * not NULL it also receives the features and extensions to enable, already narrowed. */
vki_status vki__profile_query(vki_instance *inst, uint32_t index, const vki_narrowing *narrowing,
                              vki_profile *out_profile, vki_feature_chain *out_chain);

/* Reads VKI_NARROW into `out` (zero when unset). */
vki_status vki__narrowing_from_env(vki_instance *inst, vki_narrowing *out);

/* ---- device.c ---------------------------------------------------------------------------- */

typedef struct vki_staging vki_staging;

struct vki_device {
    vki_instance *inst;
    vki_profile profile;
    uint32_t physical_index;
    VkPhysicalDevice physical;
    VkPhysicalDeviceMemoryProperties memory_props;
    VkDevice handle;
    struct VolkDeviceTable vk;
    uint32_t queue_family;
    VkQueue queue;

    VkSemaphore timeline;       // one per queue; tickets are its values
    uint64_t timeline_next;     // last value handed to a submit

    VkPipelineCache pipeline_cache;
    char cache_path[1024];      // "" when the cache stays in memory
    vki_kernel *kernels;        // the shared kernels (kernel.c), held or kept
    uint32_t kernels_kept;      // how many of them nobody holds
    uint64_t kernel_clock;      // counts releases, for the oldest kept kernel
    vki_staging *staging;

    bool lost;                  // after VK_ERROR_DEVICE_LOST every call fails fast
    vki_fault fault;            // injected by tests, consumed once
    vki_device_stats stats;
    uint64_t memory_limit;      // vki_device_desc.memory_limit or $VKI_MEMORY_LIMIT; 0: none
    char last_error[VKI_ERROR_SIZE];
};

#define VKI_DEV_FAIL(dev, status, ...) vki__fail((dev)->inst, (dev)->last_error, status, __VA_ARGS__)

/* Checks a VkResult from `what`. A lost device is remembered so later calls fail fast. An
 * injected fault of the matching kind turns VK_SUCCESS into the failure. */
vki_status vki__check(vki_device *dev, VkResult result, const char *what);

/* Returns DEVICE_LOST with a message when the device was lost earlier, else OK. */
vki_status vki__alive(vki_device *dev);

/* Takes an injected fault of `kind` if one is pending. */
bool vki__take_fault(vki_device *dev, vki_fault kind);

/* Gives a Vulkan object a debug name (no-op without debug utils). */
void vki__name(vki_device *dev, VkObjectType type, uint64_t handle, const char *name);

/* One-time command buffer on the device queue: begin, record with the device table, submit
 * and wait. Used by the staging ring. */
vki_status vki__submit_wait(vki_device *dev, VkCommandBuffer cmd, uint64_t *out_ticket);
vki_status vki__submit(vki_device *dev, VkCommandBuffer cmd, uint64_t *out_ticket);

/* ---- memory.c ---------------------------------------------------------------------------- */

struct vki_buffer {
    vki_device *dev;
    VkBuffer handle;
    VkDeviceMemory memory;
    uint64_t size;
    void *mapped;               // when host-visible
    bool coherent;
    vki_buffer *next;           // arena's block list
};

/* Picks a memory type: the first with all of `required` and as many of `preferred` as can be
 * had. Returns UINT32_MAX when none. */
uint32_t vki__memory_type(const vki_device *dev, uint32_t type_bits, VkMemoryPropertyFlags required,
                          VkMemoryPropertyFlags preferred);

/* Creates one buffer with its own memory block (arenas and the staging ring use it). */
vki_status vki__buffer_create(vki_device *dev, uint64_t size, VkMemoryPropertyFlags required,
                              VkMemoryPropertyFlags preferred, const char *name,
                              vki_buffer **out_buffer);
void vki__buffer_destroy(vki_buffer *buffer);

/* ---- staging.c --------------------------------------------------------------------------- */

vki_status vki__staging_create(vki_device *dev, uint64_t size, vki_staging **out_staging);
void vki__staging_destroy(vki_device *dev, vki_staging *staging);

/* ---- pipeline_cache.c -------------------------------------------------------------------- */

/* Resolves the cache file path for this device (empty when disabled), reads it if present and
 * valid, and creates dev->pipeline_cache. A missing, corrupt or foreign file is ignored with a
 * log line; only a failure to create the VkPipelineCache is an error. */
vki_status vki__pipeline_cache_open(vki_device *dev, const char *cache_dir);

/* Writes the cache atomically (temp file + rename) when a path is set. */
vki_status vki__pipeline_cache_save(vki_device *dev);

void vki__pipeline_cache_close(vki_device *dev);

/* ---- kernel.c ---------------------------------------------------------------------------- */

/* The descriptor type of binding i of a module: storage buffer, or uniform or storage texel
 * buffer (vki_spirv_info.texel_mask, image_mask). */
VkDescriptorType vki__descriptor_type(const vki_spirv_info *info, uint32_t binding);

struct vki_kernel {
    vki_device *dev;
    char name[64];
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    vki_spirv_info info;
    // A kernel of an embedded module is shared (kernel.c): it sits in the device's list under
    // what made it, `refs` counts its holders, and one that nobody holds stays until the device
    // goes or it is the oldest of more than VKI_KERNELS_KEPT such (`released` orders them).
    bool shared;
    uint32_t refs;
    uint64_t released;
    uint32_t binding_count, push_size, subgroup_size, spec_count;
    vki_spec specs[VKI_MAX_SPECS];
    vki_kernel *next;
};

/* Destroys every kernel in the device's list (device destroy). */
void vki__kernels_destroy_all(vki_device *dev);

#endif
