/* Device profile: what a physical device can do, narrowed by configuration, and the tuning
 * chosen for it from a table keyed by vendor and architecture. */
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Tuning table ------------------------------------------------------------------------- */

/* How a row recognises the architecture within its vendor. */
typedef enum arch_match {
    ARCH_ANY = 0,
    ARCH_COOPMAT,      // has cooperative matrix (NVIDIA Turing and newer)
    ARCH_NO_COOPMAT,
    ARCH_WAVE32,       // subgroup size 32 can be had (AMD RDNA)
    ARCH_WAVE64_ONLY,  // 64 only (AMD GCN / Vega)
    ARCH_DISCRETE,
    ARCH_INTEGRATED,
} arch_match;

typedef struct tuning_row {
    vki_vendor vendor;
    arch_match arch;
    vki_tuning tuning;
} tuning_row;

/* First match wins; "generic" catches the rest. One named field per kernel choice; each row
 * says what measurement set it, or that none has yet: an unmeasured row is a starting point
 * from the vendor's documented subgroup width and shared memory, revisited on a lent GPU.
 * lavapipe has its own row so the suite runs fast; its tricks stay in its row.
 * matvec_int_dot is off in every row: no GPU has timed it yet (`vkinfer bench ops` with and
 * without the int-dot narrowing), and a mat-vec is bound by the weights' bytes, which it does
 * not change; on NVIDIA before Blackwell packed 8-bit dot products may be no faster. */
static const tuning_row tuning_table[] = {
    // H200: 128 x 128 x 32 shared tiles, [[unroll]]ed, f16 576 x 49152 x 128 6357 -> 1479 us;
    // cooperative matrices from 64 tiles up, 984 against 1479 us (4a68220); tiled attention
    // and conv2d tiles measured there too (20c8dcc).
    {.vendor = VKI_VENDOR_NVIDIA, .arch = ARCH_COOPMAT,
     .tuning = {.name = "nvidia", .subgroup_size = 32, .workgroup_size = 256, .matvec_rows = 4,
                .matmul_tile_m = 128, .matmul_tile_n = 128, .matmul_tile_k = 32,
                .matmul_shared = true, .use_coopmat = true, .attention_tiled = true,
                .conv2d_shared = true}},
    // Unmeasured: nvidia's row with half the tiles for the smaller shared memory.
    {.vendor = VKI_VENDOR_NVIDIA, .arch = ARCH_NO_COOPMAT,
     .tuning = {.name = "nvidia-pascal", .subgroup_size = 32, .workgroup_size = 256, .matvec_rows = 4,
                .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
    // Unmeasured: wave32.
    {.vendor = VKI_VENDOR_AMD, .arch = ARCH_WAVE32,
     .tuning = {.name = "amd-rdna", .subgroup_size = 32, .workgroup_size = 256, .matvec_rows = 2,
                .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16,
                .matmul_shared = true, .use_coopmat = true, .attention_tiled = true,
                .conv2d_shared = true}},
    // Unmeasured: wave64 only.
    {.vendor = VKI_VENDOR_AMD, .arch = ARCH_WAVE64_ONLY,
     .tuning = {.name = "amd-gcn", .subgroup_size = 64, .workgroup_size = 256, .matvec_rows = 2,
                .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
    // Unmeasured: SIMD16, matrix cores (XMX).
    {.vendor = VKI_VENDOR_INTEL, .arch = ARCH_DISCRETE,
     .tuning = {.name = "intel-arc", .subgroup_size = 16, .workgroup_size = 256, .matvec_rows = 4,
                .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16,
                .matmul_shared = true, .use_coopmat = true, .attention_tiled = true,
                .conv2d_shared = true}},
    // Unmeasured: an iGPU's smaller tiles and workgroups.
    {.vendor = VKI_VENDOR_INTEL, .arch = ARCH_INTEGRATED,
     .tuning = {.name = "intel-xe", .subgroup_size = 16, .workgroup_size = 128, .matvec_rows = 2,
                .matmul_tile_m = 32, .matmul_tile_n = 32, .matmul_tile_k = 16,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
    // Unmeasured.
    {.vendor = VKI_VENDOR_ARM, .arch = ARCH_ANY,
     .tuning = {.name = "arm-mali", .subgroup_size = 16, .workgroup_size = 64, .matvec_rows = 1,
                .matmul_tile_m = 32, .matmul_tile_n = 32, .matmul_tile_k = 8,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
    // Unmeasured.
    {.vendor = VKI_VENDOR_QUALCOMM, .arch = ARCH_ANY,
     .tuning = {.name = "qualcomm-adreno", .subgroup_size = 64, .workgroup_size = 128,
                .matvec_rows = 1, .matmul_tile_m = 32, .matmul_tile_n = 32, .matmul_tile_k = 8,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
    // Unmeasured.
    {.vendor = VKI_VENDOR_APPLE, .arch = ARCH_ANY,
     .tuning = {.name = "apple", .subgroup_size = 32, .workgroup_size = 256, .matvec_rows = 2,
                .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
    // lavapipe (Mesa 22.3) runs shared-memory barriers very slowly, and every 32-bit word a
    // shader loads costs a loop over the SIMD lanes: register tiles of 64 rows that load each x
    // value once, 2-3x faster than 8-16 rows (a095b86); texel loads, q8_0 576 x 49152 mat-vec
    // 48.7 -> 20.8 ms (8c2fd49); the barrier-free keys attention, decode at 512 positions 4.5
    // -> 2.0 ms (278b92b); conv2d in conv2d_rows.comp, SD 3x3 64x64x320 0.5 -> 52 GFLOP/s;
    // long query blocks in attention_queries.comp, SD self-attention q4096 1.0 -> 11.7 GFLOP/s.
    {.vendor = VKI_VENDOR_MESA_CPU, .arch = ARCH_ANY,
     .tuning = {.name = "lavapipe", .subgroup_size = 8, .workgroup_size = 64, .matvec_rows = 64,
                .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 8,
                .texel_loads = true}},
    // Unmeasured: the conservative default for any other device.
    {.vendor = VKI_VENDOR_OTHER, .arch = ARCH_ANY,
     .tuning = {.name = "generic", .subgroup_size = 32, .workgroup_size = 128, .matvec_rows = 2,
                .matmul_tile_m = 32, .matmul_tile_n = 32, .matmul_tile_k = 8,
                .matmul_shared = true, .attention_tiled = true, .conv2d_shared = true}},
};
#define TUNING_COUNT (sizeof tuning_table / sizeof tuning_table[0])

uint32_t vki_tuning_count(void) { return (uint32_t)TUNING_COUNT; }

const char *vki_tuning_name(uint32_t index)
{
    return index < TUNING_COUNT ? tuning_table[index].tuning.name : NULL;
}

static const tuning_row *find_tuning(const char *name)
{
    for (size_t i = 0; i < TUNING_COUNT; i++)
        if (strcmp(tuning_table[i].tuning.name, name) == 0) return &tuning_table[i];
    return NULL;
}

static bool arch_matches(arch_match arch, const vki_profile *p)
{
    switch (arch) {
    case ARCH_ANY: return true;
    case ARCH_COOPMAT: return p->coopmat;
    case ARCH_NO_COOPMAT: return !p->coopmat;
    case ARCH_WAVE32: return p->subgroup_min <= 32 && p->subgroup_max >= 32;
    case ARCH_WAVE64_ONLY: return p->subgroup_min >= 64;
    case ARCH_DISCRETE: return p->type == VKI_DEVICE_DISCRETE;
    case ARCH_INTEGRATED: return p->type != VKI_DEVICE_DISCRETE;
    }
    return false;
}

/* A row's values made to fit the device: a forced row from another vendor keeps its tile
 * shapes but never asks for a subgroup size, workgroup or feature the device lacks. */
static vki_tuning fit_tuning(vki_tuning t, const vki_profile *p)
{
    if (t.subgroup_size < p->subgroup_min || t.subgroup_size > p->subgroup_max ||
        (t.subgroup_size != p->subgroup_size && !p->subgroup_size_control))
        t.subgroup_size = p->subgroup_size;
    if (t.workgroup_size > p->max_workgroup_invocations) t.workgroup_size = p->max_workgroup_invocations;
    if (t.workgroup_size > p->max_workgroup_size[0]) t.workgroup_size = p->max_workgroup_size[0];
    // The shared-memory matmul holds an A and a B tile of fp32.
    uint64_t tile_bytes = 4ull * t.matmul_tile_k * (t.matmul_tile_m + t.matmul_tile_n);
    while (tile_bytes > p->shared_memory && t.matmul_tile_m > 8) {
        t.matmul_tile_m /= 2;
        t.matmul_tile_n /= 2;
        tile_bytes = 4ull * t.matmul_tile_k * (t.matmul_tile_m + t.matmul_tile_n);
    }
    t.use_coopmat = t.use_coopmat && p->coopmat;
    t.matvec_int_dot = t.matvec_int_dot && p->int_dot;
    // Texel views start where bindings do, at multiples of the storage alignment, and must
    // cover any binding (max_storage_range bytes).
    t.texel_loads = t.texel_loads && p->texel_align && p->storage_align % p->texel_align == 0 &&
                    4ull * p->max_texel_elements >= p->max_storage_range;
    return t;
}

/* ---- Narrowing ----------------------------------------------------------------------------- */

vki_status vki_narrowing_parse(const char *text, vki_narrowing *out, char *out_error,
                               size_t error_size)
{
    if (!out) return VKI_ERROR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (out_error && error_size) out_error[0] = 0;
    if (!text) return VKI_OK;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char word[64];
        if (len >= sizeof word) len = sizeof word - 1;
        memcpy(word, p, len);
        word[len] = 0;
        p += end ? (size_t)(end - p) + 1 : strlen(p);
        if (len == 0) continue;
        if (strcmp(word, "no-fp16") == 0) out->no_fp16 = true;
        else if (strcmp(word, "no-subgroup") == 0) out->no_subgroup = true;
        else if (strcmp(word, "no-coopmat") == 0) out->no_coopmat = true;
        else if (strcmp(word, "no-coopmat-khr") == 0) out->no_coopmat_khr = true;
        else if (strcmp(word, "emulate-coopmat") == 0) out->emulate_coopmat = true;
        else if (strcmp(word, "no-int-dot") == 0) out->no_int_dot = true;
        else if (strcmp(word, "int-dot") == 0) out->int_dot = true;
        else if (strcmp(word, "no-uma") == 0) out->no_uma = true;
        else if (strncmp(word, "tuning=", 7) == 0) {
            if (!find_tuning(word + 7)) {
                if (out_error && error_size) {
                    int n = snprintf(out_error, error_size, "unknown tuning \"%s\"; rows:", word + 7);
                    for (size_t i = 0; i < TUNING_COUNT && n > 0 && (size_t)n < error_size; i++)
                        n += snprintf(out_error + n, error_size - (size_t)n, " %s",
                                      tuning_table[i].tuning.name);
                }
                return VKI_ERROR_INVALID_ARGUMENT;
            }
            snprintf(out->tuning, sizeof out->tuning, "%.31s", word + 7);
        } else if (strncmp(word, "max-binding=", 12) == 0) {
            uint64_t bytes = 0;
            if (len == sizeof word - 1 || !vki__parse_bytes(word + 12, &bytes) ||
                bytes < VKI_NARROW_MIN_BINDING) {
                if (out_error && error_size)
                    snprintf(out_error, error_size,
                             "max-binding=%s: want bytes or K, M, G (\"1M\"), at least %u KiB",
                             word + 12, VKI_NARROW_MIN_BINDING >> 10);
                return VKI_ERROR_INVALID_ARGUMENT;
            }
            out->max_binding = bytes;
        } else {
            if (out_error && error_size)
                snprintf(out_error, error_size,
                         "unknown narrowing \"%s\"; known: no-fp16, no-subgroup, no-coopmat, "
                         "no-coopmat-khr, emulate-coopmat, no-int-dot, int-dot, no-uma, tuning=NAME, "
                         "max-binding=BYTES",
                         word);
            return VKI_ERROR_INVALID_ARGUMENT;
        }
    }
    return VKI_OK;
}

vki_status vki__narrowing_from_env(vki_instance *inst, vki_narrowing *out)
{
    char err[256];
    if (vki_narrowing_parse(getenv("VKI_NARROW"), out, err, sizeof err) != VKI_OK)
        return vki__fail(inst, inst->last_error, VKI_ERROR_INVALID_ARGUMENT, "VKI_NARROW: %s", err);
    return VKI_OK;
}

/* ---- Query ---------------------------------------------------------------------------------- */

static vki_vendor vendor_of(uint32_t vendor_id, uint32_t driver_id)
{
    if (driver_id == VK_DRIVER_ID_MESA_LLVMPIPE) return VKI_VENDOR_MESA_CPU;
    if (driver_id == VK_DRIVER_ID_MOLTENVK) return VKI_VENDOR_APPLE;
    switch (vendor_id) {
    case 0x10DE: return VKI_VENDOR_NVIDIA;
    case 0x1002: case 0x1022: return VKI_VENDOR_AMD;
    case 0x8086: return VKI_VENDOR_INTEL;
    case 0x13B5: return VKI_VENDOR_ARM;
    case 0x5143: return VKI_VENDOR_QUALCOMM;
    case 0x106B: return VKI_VENDOR_APPLE;
    default: return VKI_VENDOR_OTHER;
    }
}

const char *vki_vendor_name(vki_vendor v)
{
    static const char *const names[VKI_VENDOR_COUNT] = {"other", "NVIDIA", "AMD", "Intel",
                                                        "ARM", "Qualcomm", "Apple", "Mesa (CPU)"};
    return (unsigned)v < VKI_VENDOR_COUNT ? names[v] : "other";
}

const char *vki_device_type_name(vki_device_type t)
{
    static const char *const names[VKI_DEVICE_TYPE_COUNT] = {"other", "discrete", "integrated",
                                                             "virtual", "cpu"};
    return (unsigned)t < VKI_DEVICE_TYPE_COUNT ? names[t] : "other";
}

static vki_device_type type_of(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return VKI_DEVICE_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return VKI_DEVICE_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return VKI_DEVICE_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return VKI_DEVICE_CPU;
    default: return VKI_DEVICE_OTHER;
    }
}

static bool has_extension(const VkExtensionProperties *ext, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(ext[i].extensionName, name) == 0) return true;
    return false;
}

static uint32_t subgroup_bits(VkSubgroupFeatureFlags f)
{
    uint32_t b = 0;
    if (f & VK_SUBGROUP_FEATURE_BASIC_BIT) b |= VKI_SUBGROUP_BASIC;
    if (f & VK_SUBGROUP_FEATURE_VOTE_BIT) b |= VKI_SUBGROUP_VOTE;
    if (f & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) b |= VKI_SUBGROUP_ARITHMETIC;
    if (f & VK_SUBGROUP_FEATURE_BALLOT_BIT) b |= VKI_SUBGROUP_BALLOT;
    if (f & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) b |= VKI_SUBGROUP_SHUFFLE;
    if (f & VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT) b |= VKI_SUBGROUP_SHUFFLE_RELATIVE;
    if (f & VK_SUBGROUP_FEATURE_CLUSTERED_BIT) b |= VKI_SUBGROUP_CLUSTERED;
    if (f & VK_SUBGROUP_FEATURE_QUAD_BIT) b |= VKI_SUBGROUP_QUAD;
    return b;
}

static void read_heaps(VkPhysicalDevice phys, bool budget_ext, vki_profile *p)
{
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
        .pNext = budget_ext ? &budget : NULL};
    vkGetPhysicalDeviceMemoryProperties2(phys, &mp);
    const VkPhysicalDeviceMemoryProperties *m = &mp.memoryProperties;
    p->heap_count = m->memoryHeapCount < VKI_MAX_HEAPS ? m->memoryHeapCount : VKI_MAX_HEAPS;
    p->device_local_bytes = 0;
    bool uma = true, any_local = false;
    for (uint32_t h = 0; h < p->heap_count; h++) {
        vki_heap *heap = &p->heaps[h];
        heap->size = m->memoryHeaps[h].size;
        heap->device_local = (m->memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0;
        heap->host_visible = false;
        bool local_and_visible = false;
        for (uint32_t t = 0; t < m->memoryTypeCount; t++) {
            if (m->memoryTypes[t].heapIndex != h) continue;
            VkMemoryPropertyFlags f = m->memoryTypes[t].propertyFlags;
            if (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) heap->host_visible = true;
            if ((f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT))
                local_and_visible = true;
        }
        heap->budget = budget_ext && budget.heapBudget[h] ? budget.heapBudget[h] : heap->size;
        heap->usage = budget_ext ? budget.heapUsage[h] : 0;
        if (heap->device_local) {
            any_local = true;
            p->device_local_bytes += heap->size;
            // A small host-visible window (resizable-BAR off, 256 MiB) does not make a GPU UMA:
            // the whole device-local heap must be mappable.
            if (!local_and_visible) uma = false;
        }
    }
    // A discrete GPU with resizable BAR also maps all of its VRAM, but host reads through the
    // BAR are slow and the memory is not shared: UMA means an iGPU or CPU device.
    p->uma = uma && any_local && p->type != VKI_DEVICE_DISCRETE;
}

/* The features and extensions to enable: only what kernels use (never robustBufferAccess,
 * which costs speed), and only what the narrowed profile still reports. */
static void enabled_features(const vki_profile *p, const vki_feature_chain *q, bool api13,
                             bool has_push, bool has_budget, bool has_dot, vki_feature_chain *e)
{
    memset(e, 0, sizeof *e);
    e->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    e->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    e->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    e->f13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
    e->dot.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES;
    e->f2.pNext = &e->f11;
    e->f11.pNext = &e->f12;
    // One cooperative-matrix extension: the one the profile's kernels use (none for emulated
    // fragments).
    bool coop_ext = p->coopmat && !p->coopmat_emulated;
    if (coop_ext && p->coopmat_khr) {
        e->coop_khr.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR;
        e->coop_khr.cooperativeMatrix = VK_TRUE;
        e->coop_khr.pNext = &e->f11;
        e->f2.pNext = &e->coop_khr;
        e->extensions[e->extension_count++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
    } else if (coop_ext) {
        e->coop.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV;
        e->coop.cooperativeMatrix = VK_TRUE;
        e->coop.pNext = &e->f11;
        e->f2.pNext = &e->coop;
        e->extensions[e->extension_count++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    }

    e->f2.features.shaderInt16 = q->f2.features.shaderInt16;
    e->f2.features.shaderInt64 = q->f2.features.shaderInt64;
    e->f11.storageBuffer16BitAccess = p->storage16;
    e->f11.uniformAndStorageBuffer16BitAccess = p->storage16 && q->f11.uniformAndStorageBuffer16BitAccess;
    e->f12.shaderFloat16 = p->fp16;
    e->f12.shaderInt8 = p->int8;
    e->f12.storageBuffer8BitAccess = p->storage8;
    e->f12.uniformAndStorageBuffer8BitAccess = p->storage8 && q->f12.uniformAndStorageBuffer8BitAccess;
    e->f12.timelineSemaphore = VK_TRUE;
    e->f12.hostQueryReset = q->f12.hostQueryReset;
    e->f12.vulkanMemoryModel = q->f12.vulkanMemoryModel;
    e->f12.vulkanMemoryModelDeviceScope = q->f12.vulkanMemoryModelDeviceScope;
    if (api13) {
        e->f12.pNext = &e->f13;
        e->f13.synchronization2 = q->f13.synchronization2;
        e->f13.maintenance4 = q->f13.maintenance4;
        e->f13.subgroupSizeControl = p->subgroup_size_control;
        e->f13.computeFullSubgroups = p->subgroup_size_control;
        e->f13.shaderIntegerDotProduct = p->int_dot;
    } else if (p->int_dot) {
        e->f12.pNext = &e->dot;
        e->dot.shaderIntegerDotProduct = VK_TRUE;
        e->extensions[e->extension_count++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    }
    (void)has_dot;
    if (has_push) e->extensions[e->extension_count++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (has_budget) e->extensions[e->extension_count++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
}

/* ---- Cooperative matrices ----------------------------------------------------------------- */

/* The emulate-coopmat narrowing (tests): a device with fp16 arithmetic and subgroups runs the
 * cooperative-matrix kernels on emulated 8 x 8 x 8 fragments (their _cme variants, no extension
 * enabled), whether it has matrix cores or not, and plans them as a GPU with matrix cores: the
 * row's tiles where the row uses cooperative matrices (tuning=nvidia: 128 x 128 x 32), else AMD
 * RDNA's (64 x 64 x 16: two subgroups of 8 x 4 fragments, two fragments deep per slab,
 * double-buffered in lavapipe's 32 KiB), so that lavapipe runs the multi-fragment,
 * multi-subgroup and double-buffered paths the GPUs will. Without fp16 or subgroups (of at
 * least the 4 lanes the emulation spreads an accumulator over) it does nothing, as the real
 * extensions would not be used there either. */
static void emulate_coopmat(vki_profile *p, const vki_tuning *row)
{
    if (!p->fp16 || !(p->subgroup_ops & VKI_SUBGROUP_BASIC) || p->subgroup_size < 4) return;
    p->coopmat = p->coopmat_emulated = true;
    p->coopmat_khr = false;
    p->coopmat_shape[0] = p->coopmat_shape[1] = p->coopmat_shape[2] = 8;
    const tuning_row *gpu = find_tuning("amd-rdna");
    if (!row->use_coopmat && gpu) {
        p->tuning.matmul_tile_m = gpu->tuning.matmul_tile_m;
        p->tuning.matmul_tile_n = gpu->tuning.matmul_tile_n;
        p->tuning.matmul_tile_k = gpu->tuning.matmul_tile_k;
    }
    p->tuning.use_coopmat = true;
}

/* The usable shape of `props` with the most elements, 16 x 16 x 16 above all (the kernel's
 * tiles are multiples of 16 rows and columns and of 32 along k). 0 when none. */
static uint32_t best_coopmat_shape(const vki_coopmat_props *props, uint32_t count, uint32_t shape[3])
{
    const uint32_t f16 = VK_COMPONENT_TYPE_FLOAT16_NV, f32 = VK_COMPONENT_TYPE_FLOAT32_NV;
    uint32_t best = 0;
    for (uint32_t i = 0; props && i < count; i++) {
        const vki_coopmat_props *c = &props[i];
        if (c->a_type != f16 || c->b_type != f16 || c->c_type != f32 || c->result_type != f32 ||
            c->scope != VK_SCOPE_SUBGROUP_NV || c->saturating)
            continue;
        if (c->m == 0 || c->n == 0 || c->k == 0 || 16 % c->m || 16 % c->n || 32 % c->k) continue;
        uint32_t elems = c->m * c->n * c->k;
        if (c->m == 16 && c->n == 16 && c->k == 16) elems = UINT32_MAX;
        if (elems > best) {
            best = elems;
            shape[0] = c->m;
            shape[1] = c->n;
            shape[2] = c->k;
        }
    }
    return best;
}

bool vki_coopmat_choose(const vki_coopmat_caps *caps, bool *out_khr, uint32_t out_shape[3])
{
    bool khr = false;
    uint32_t shape[3] = {0, 0, 0};
    // KHR first: the extension every vendor's driver speaks; NVIDIA lists both, and its KHR
    // shapes include the NV ones.
    bool found = caps && caps->khr && best_coopmat_shape(caps->khr_props, caps->khr_count, shape);
    if (found) khr = true;
    else if (caps && caps->nv) found = best_coopmat_shape(caps->nv_props, caps->nv_count, shape) > 0;
    if (out_khr) *out_khr = found && khr;
    if (out_shape) memcpy(out_shape, found ? shape : (uint32_t[3]){0, 0, 0}, 3 * sizeof *out_shape);
    return found;
}

#define COOPMAT_MAX_PROPS 64

/* The shapes vkGetPhysicalDeviceCooperativeMatrixProperties{KHR,NV} lists (the first
 * COOPMAT_MAX_PROPS; drivers list a few dozen at most). */
static uint32_t coopmat_props_khr(VkInstance instance, VkPhysicalDevice phys, vki_coopmat_props *out)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
            instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    VkCooperativeMatrixPropertiesKHR props[COOPMAT_MAX_PROPS];
    uint32_t count = COOPMAT_MAX_PROPS;
    for (uint32_t i = 0; i < count; i++)
        props[i] = (VkCooperativeMatrixPropertiesKHR){
            .sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR};
    if (!get) return 0;
    VkResult r = get(phys, &count, props);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return 0;
    for (uint32_t i = 0; i < count; i++)
        out[i] = (vki_coopmat_props){
            .m = props[i].MSize, .n = props[i].NSize, .k = props[i].KSize,
            .a_type = (uint32_t)props[i].AType, .b_type = (uint32_t)props[i].BType,
            .c_type = (uint32_t)props[i].CType, .result_type = (uint32_t)props[i].ResultType,
            .scope = (uint32_t)props[i].scope, .saturating = props[i].saturatingAccumulation != 0};
    return count;
}

static uint32_t coopmat_props_nv(VkInstance instance, VkPhysicalDevice phys, vki_coopmat_props *out)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)vkGetInstanceProcAddr(
            instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    VkCooperativeMatrixPropertiesNV props[COOPMAT_MAX_PROPS];
    uint32_t count = COOPMAT_MAX_PROPS;
    for (uint32_t i = 0; i < count; i++)
        props[i] = (VkCooperativeMatrixPropertiesNV){
            .sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV};
    if (!get) return 0;
    VkResult r = get(phys, &count, props);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return 0;
    for (uint32_t i = 0; i < count; i++)
        out[i] = (vki_coopmat_props){
            .m = props[i].MSize, .n = props[i].NSize, .k = props[i].KSize,
            .a_type = (uint32_t)props[i].AType, .b_type = (uint32_t)props[i].BType,
            .c_type = (uint32_t)props[i].CType, .result_type = (uint32_t)props[i].DType,
            .scope = (uint32_t)props[i].scope};
    return count;
}

vki_status vki__profile_query(vki_instance *inst, uint32_t index, const vki_narrowing *narrowing,
                              vki_profile *out, vki_feature_chain *chain)
{
    if (index >= inst->physical_count)
        return vki__fail(inst, inst->last_error, VKI_ERROR_NOT_FOUND,
                         "device index %u is out of range (%u devices)", index,
                         inst->physical_count);
    VkPhysicalDevice phys = inst->physicals[index].handle;
    memset(out, 0, sizeof *out);

    uint32_t ext_count = 0;
    VkExtensionProperties *ext = NULL;
    if (vkEnumerateDeviceExtensionProperties(phys, NULL, &ext_count, NULL) == VK_SUCCESS &&
        ext_count) {
        ext = vki__alloc(inst, ext_count * sizeof *ext);
        if (!ext) return VKI_ERROR_OUT_OF_HOST_MEMORY;
        if (vkEnumerateDeviceExtensionProperties(phys, NULL, &ext_count, ext) != VK_SUCCESS)
            ext_count = 0;
    }
    bool has_budget = has_extension(ext, ext_count, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    bool has_push = has_extension(ext, ext_count, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    bool has_dot = has_extension(ext, ext_count, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    bool has_coop_nv = has_extension(ext, ext_count, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    bool has_coop_khr = has_extension(ext, ext_count, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    vki__free(inst, ext);

    VkPhysicalDeviceSubgroupSizeControlProperties sg_size = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &sg_size};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceMaintenance4Properties m4 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES, .pNext = &drv};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &m4};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                         .pNext = &m3};
    bool api13 = inst->physicals[index].props.apiVersion >= VK_API_VERSION_1_3;
    if (!api13) m3.pNext = &drv; // maintenance4 properties are core only in 1.3
    VkPhysicalDeviceCooperativeMatrixPropertiesKHR cm_khr = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR,
        .pNext = props.pNext};
    if (has_coop_khr) props.pNext = &cm_khr;
    vkGetPhysicalDeviceProperties2(phys, &props);
    const VkPhysicalDeviceLimits *lim = &props.properties.limits;

    vki_feature_chain queried;
    vki_feature_chain *fc = &queried;
    memset(fc, 0, sizeof *fc);
    fc->dot.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES;
    fc->f13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
    fc->f13.pNext = has_dot ? &fc->dot : NULL;
    fc->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    fc->f12.pNext = api13 ? (void *)&fc->f13 : (has_dot ? (void *)&fc->dot : NULL);
    fc->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    fc->f11.pNext = &fc->f12;
    fc->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    fc->f2.pNext = &fc->f11;
    if (has_coop_nv) {
        fc->coop.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV;
        fc->coop.pNext = fc->f2.pNext;
        fc->f2.pNext = &fc->coop;
    }
    if (has_coop_khr) {
        fc->coop_khr.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR;
        fc->coop_khr.pNext = fc->f2.pNext;
        fc->f2.pNext = &fc->coop_khr;
    }
    vkGetPhysicalDeviceFeatures2(phys, &fc->f2);

    const VkPhysicalDeviceProperties *pp = &props.properties;
    snprintf(out->name, sizeof out->name, "%s", pp->deviceName);
    snprintf(out->driver_name, sizeof out->driver_name, "%s", drv.driverName);
    snprintf(out->driver_info, sizeof out->driver_info, "%s", drv.driverInfo);
    out->vendor_id = pp->vendorID;
    out->device_id = pp->deviceID;
    out->driver_id = (uint32_t)drv.driverID;
    out->driver_version = pp->driverVersion;
    out->api_version = pp->apiVersion;
    memcpy(out->uuid, pp->pipelineCacheUUID, sizeof out->uuid);
    out->vendor = vendor_of(pp->vendorID, drv.driverID);
    out->type = type_of(pp->deviceType);

    bool compute_subgroups = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
    out->subgroup_size = sg.subgroupSize;
    out->subgroup_ops = compute_subgroups ? subgroup_bits(sg.supportedOperations) : 0;
    bool size_control = (api13 && fc->f13.subgroupSizeControl && fc->f13.computeFullSubgroups) &&
                        (sg_size.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT);
    out->subgroup_size_control = size_control;
    out->subgroup_min = size_control ? sg_size.minSubgroupSize : sg.subgroupSize;
    out->subgroup_max = size_control ? sg_size.maxSubgroupSize : sg.subgroupSize;

    out->fp16 = fc->f12.shaderFloat16;
    out->int8 = fc->f12.shaderInt8;
    out->storage16 = fc->f11.storageBuffer16BitAccess;
    out->storage8 = fc->f12.storageBuffer8BitAccess;
    out->int_dot = has_dot && (api13 ? fc->f13.shaderIntegerDotProduct
                                     : fc->dot.shaderIntegerDotProduct);
    // KHR where the build embeds its kernels (a build with Debian's glslang 12 has only the
    // NV ones) and the device lists a shape they use; else NV. Both need fp16 arithmetic and the
    // Vulkan memory model the kernels declare.
    if (out->fp16 && fc->f12.vulkanMemoryModel && (has_coop_khr || has_coop_nv)) {
        vki_coopmat_props khr_props[COOPMAT_MAX_PROPS], nv_props[COOPMAT_MAX_PROPS];
        vki_coopmat_caps caps = {
            .khr = has_coop_khr && fc->coop_khr.cooperativeMatrix &&
                   (cm_khr.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                   !(narrowing && narrowing->no_coopmat_khr) && vki_shader_find(VKI_COOPMAT_KHR_MODULE),
            .nv = has_coop_nv && fc->coop.cooperativeMatrix,
            .khr_props = khr_props, .nv_props = nv_props};
        if (caps.khr) caps.khr_count = coopmat_props_khr(inst->handle, phys, khr_props);
        if (caps.nv) caps.nv_count = coopmat_props_nv(inst->handle, phys, nv_props);
        out->coopmat = vki_coopmat_choose(&caps, &out->coopmat_khr, out->coopmat_shape);
    }
    out->memory_budget = has_budget;
    out->push_descriptor = has_push;

    out->shared_memory = lim->maxComputeSharedMemorySize;
    out->push_constant_size = lim->maxPushConstantsSize;
    out->max_storage_range = lim->maxStorageBufferRange;
    out->max_allocation = m3.maxMemoryAllocationSize;
    out->max_buffer_size = api13 && m4.maxBufferSize ? m4.maxBufferSize : m3.maxMemoryAllocationSize;
    out->storage_align = (uint32_t)lim->minStorageBufferOffsetAlignment;
    out->texel_align = (uint32_t)lim->minTexelBufferOffsetAlignment;
    out->max_texel_elements = lim->maxTexelBufferElements;
    out->max_workgroup_invocations = lim->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) {
        out->max_workgroup_size[i] = lim->maxComputeWorkGroupSize[i];
        out->max_workgroup_count[i] = lim->maxComputeWorkGroupCount[i];
    }
    read_heaps(phys, has_budget, out);

    uint32_t qf_count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &qf_count, NULL);
    VkQueueFamilyProperties qf[16];
    if (qf_count > 16) qf_count = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &qf_count, qf);
    for (uint32_t i = 0; i < qf_count; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && qf[i].timestampValidBits > 0) {
            out->timestamps = lim->timestampComputeAndGraphics || qf[i].timestampValidBits > 0;
            break;
        }
    out->timestamp_period = lim->timestampPeriod;

    // Narrowing: the profile forgets the capability, and the device is opened without it.
    vki_narrowing none = {0};
    if (!narrowing) narrowing = &none;
    if (narrowing->no_fp16) out->fp16 = out->storage16 = out->coopmat = false;
    if (narrowing->no_subgroup) {
        out->subgroup_ops = 0;
        out->subgroup_size_control = false;
        out->subgroup_min = out->subgroup_max = out->subgroup_size;
    }
    if (narrowing->no_int_dot) out->int_dot = false;
    if (narrowing->no_coopmat) out->coopmat = false;
    if (!out->coopmat) {
        out->coopmat_khr = false;
        memset(out->coopmat_shape, 0, sizeof out->coopmat_shape);
    }
    if (narrowing->no_uma) out->uma = false;
    // A binding limit below the device's: what sizes itself by max_storage_range (the matmul's
    // weight windows, the VAE's tiles, the U-Net's feed-forward chunks, the binding check when a
    // dispatch is recorded) behaves as on a device with that limit.
    if (narrowing->max_binding && narrowing->max_binding < out->max_storage_range)
        out->max_storage_range = narrowing->max_binding;

    const tuning_row *row = NULL;
    if (narrowing->tuning[0]) {
        row = find_tuning(narrowing->tuning);
        if (!row)
            return vki__fail(inst, inst->last_error, VKI_ERROR_INVALID_ARGUMENT,
                             "unknown tuning \"%s\"", narrowing->tuning);
    } else {
        for (size_t i = 0; i < TUNING_COUNT && !row; i++)
            if ((tuning_table[i].vendor == out->vendor || tuning_table[i].vendor == VKI_VENDOR_OTHER) &&
                arch_matches(tuning_table[i].arch, out))
                row = &tuning_table[i];
    }
    out->tuning = fit_tuning(row->tuning, out);
    if (narrowing->int_dot) out->tuning.matvec_int_dot = out->int_dot;
    if (narrowing->emulate_coopmat) emulate_coopmat(out, &row->tuning);

    if (chain && !fc->f12.timelineSemaphore)
        return vki__fail(inst, inst->last_error, VKI_ERROR_UNSUPPORTED,
                         "%s has no timeline semaphores, which vkinfer needs: update its driver",
                         out->name);
    if (chain) enabled_features(out, fc, api13, has_push, has_budget, has_dot, chain);
    return VKI_OK;
}

vki_status vki_instance_device_profile(vki_instance *inst, uint32_t index,
                                       const vki_narrowing *narrowing, vki_profile *out_profile)
{
    if (!inst || !out_profile) return VKI_ERROR_INVALID_ARGUMENT;
    vki_narrowing env;
    if (!narrowing) {
        VKI_TRY(vki__narrowing_from_env(inst, &env));
        narrowing = &env;
    }
    return vki__profile_query(inst, index, narrowing, out_profile, NULL);
}
