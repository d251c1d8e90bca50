/* vkinfer runtime: Vulkan instance, devices and their profiles, memory arenas, kernels and
 * command streams. It knows nothing about tensors or ops; graph/ builds on it.
 *
 * Ownership is a strict tree: instance -> device -> {arenas, kernels, streams}. Every create
 * returns an object the caller owns and must destroy (children before parents); every
 * destroy(NULL) does nothing. Accessors return borrowed pointers that live as long as their
 * owner. A device and everything under it is used from one thread at a time; each object's
 * declaration says what it allows. Errors, allocation and threads follow the conventions
 * below, which graph/ and models/ share.
 *
 * Test hooks (fault injection, SPIR-V reflection) are in vkinfer_runtime_testing.h.
 *
 * Usage: add one to every element of a buffer.
 *
 *     vki_instance *inst = NULL; vki_device *dev = NULL; vki_arena *arena = NULL;
 *     vki_kernel *k = NULL; vki_stream *s = NULL; vki_range buf;
 *     VKI_TRY(vki_instance_create(&(vki_instance_desc){.validation = true}, &inst));
 *     VKI_TRY(vki_device_create(inst, NULL, &dev));            // best device, or $VKI_DEVICE
 *     VKI_TRY(vki_arena_create(dev, &(vki_arena_desc){.kind = VKI_ARENA_ACTIVATIONS}, &arena));
 *     VKI_TRY(vki_arena_alloc(arena, n * 4, 0, &buf));
 *     VKI_TRY(vki_device_upload(dev, buf, 0, host, n * 4));
 *     VKI_TRY(vki_kernel_create(dev, &(vki_kernel_desc){.name = "add_u32", .binding_count = 1,
 *                                                        .push_size = sizeof(vki_pc_add_u32)}, &k));
 *     VKI_TRY(vki_stream_create(dev, NULL, &s));
 *     vki_pc_add_u32 pc = {.n = n, .value = 1};
 *     VKI_TRY(vki_stream_begin(s));
 *     VKI_TRY(vki_stream_dispatch(s, &(vki_dispatch){.kernel = k, .bindings = &buf,
 *             .binding_count = 1, .push = &pc, .push_size = sizeof pc,
 *             .groups = {vki_div_up(n, 64), 1, 1}}));
 *     VKI_TRY(vki_stream_end(s));
 *     uint64_t ticket; VKI_TRY(vki_stream_submit(s, &ticket));   // replay: submit again
 *     VKI_TRY(vki_device_wait(dev, ticket, UINT64_MAX));
 *     VKI_TRY(vki_device_download(dev, buf, 0, host, n * 4));
 *     ... destroy s, k, arena, dev, inst in that order.
 */
#ifndef VKINFER_RUNTIME_H
#define VKINFER_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Conventions: errors, allocation, threads (runtime, graph and models alike) ------------
 *
 * Errors. Every fallible function returns a vki_status: 0 is VKI_OK, anything else names the
 * kind of failure; a create that fails leaves its `*out_<object>` NULL.
 * The detail, one line naming the cause and what to do, goes to two places:
 *   - the object's last-error string, `vki_<object>_last_error(obj)` (borrowed, "" when none,
 *     overwritten by the next failure on that object). Objects under a device report into it:
 *     arenas, kernels and streams into vki_device_last_error; the graph layer (plans, exec)
 *     through vki_device_report; a graph under construction keeps its first error
 *     (vki_graph_error). Objects of models/ have their own (vki_gguf_last_error,
 *     vki_llm_last_error, vki_tokenizer_last_error, vki_sampler_last_error).
 *   - the log callback given at instance creation (device-bound failures only: file parsers,
 *     tokenizers and samplers have no instance to log to).
 * A create that fails has no object to hold the message: such functions take
 * `char *out_error, size_t error_size` (may be NULL) and write it there.
 * Nothing aborts or exits on a runtime condition; there is no global error state.
 *
 * Allocation. Host memory goes through a vki_allocator (NULL: malloc/free), given once where an
 * object tree starts: vki_instance_desc.allocator for the runtime and everything on its devices,
 * the create desc's `allocator` field for a graph, a GGUF reader or a model, and the
 * `allocator` argument of vki_sampler_create and vki_tokenizer_create. Device memory goes
 * through arenas.
 *
 * Threads. An object is used from one thread at a time unless its declaration says more;
 * different objects that share nothing may be used on different threads at once. The log
 * callback and the allocator may be called from every thread that uses objects sharing them,
 * and must then be thread-safe (the defaults are). Functions with no object argument (status
 * strings, parsers of names and options, the shader table) may be called from any thread. */

/* ---- Status, logging, host allocation --------------------------------------------------- */

typedef enum vki_status {
    VKI_OK = 0,
    VKI_ERROR_INVALID_ARGUMENT,     // the caller broke a documented rule
    VKI_ERROR_OUT_OF_HOST_MEMORY,
    VKI_ERROR_OUT_OF_DEVICE_MEMORY, // the message names the requested and available sizes
    VKI_ERROR_DEVICE_LOST,          // the device (or its driver) is gone; destroy and recreate
    VKI_ERROR_UNSUPPORTED,          // the device lacks a feature or limit the request needs
    VKI_ERROR_NOT_FOUND,            // no device, kernel or file by that name
    VKI_ERROR_TIMEOUT,              // a wait ran out of time; the work is still pending
    VKI_ERROR_IO,                   // a file could not be read or written
    VKI_ERROR_BAD_FILE,             // a file is malformed, truncated or for another device
    VKI_ERROR_VULKAN,               // any other Vulkan failure; the message has the VkResult
    VKI_ERROR_CANCELLED,            // the caller's abort callback asked to stop; nothing is lost
    VKI_STATUS_COUNT
} vki_status;

/* A short constant name for a status ("out of device memory"); never NULL. */
const char *vki_status_string(vki_status status);

/* Marks a printf-like function so that GCC and clang check its calls (`f` is the format's
 * argument number, `a` the first variadic one). On mingw-w64, plain `printf` means the old
 * msvcrt's dialect (no %zu); the libraries are built with __USE_MINGW_ANSI_STDIO, so their
 * formatting is mingw's C99 one, which gcc calls gnu_printf. Other compilers check nothing. */
#if defined(__MINGW32__)
#define VKI_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define VKI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define VKI_PRINTF(f, a)
#endif

#define VKI_TRY(expr)                                                                          \
    do {                                                                                       \
        vki_status vki_try_status_ = (expr);                                                   \
        if (vki_try_status_ != VKI_OK) return vki_try_status_;                                 \
    } while (0)

typedef enum vki_log_level {
    VKI_LOG_DEFAULT = 0, // as a desc field: VKI_LOG_WARN
    VKI_LOG_ERROR,
    VKI_LOG_WARN,
    VKI_LOG_INFO,
    VKI_LOG_DEBUG,
    VKI_LOG_LEVEL_COUNT
} vki_log_level;

/* Receives every message at or above the instance's level. `message` is only valid during the
 * call. Validation-layer messages arrive here too, with `validation` set. */
typedef void (*vki_log_fn)(void *user, vki_log_level level, bool validation, const char *message);

/* Host allocation hook; all host memory the runtime takes goes through it. NULL fields mean
 * malloc/free. `free` accepts NULL. */
typedef struct vki_allocator {
    void *(*alloc)(void *user, size_t size);
    void (*free)(void *user, void *ptr);
    void *user;
} vki_allocator;

static inline uint64_t vki_div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
static inline uint64_t vki_align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* ---- Instance --------------------------------------------------------------------------- */

/* Threads: vki_instance_* calls and vki_device_create on one instance are made one at a time
 * (they write its last-error string). Its devices may then be used on different threads at once,
 * one thread per device: they only read the instance, and the log callback and allocator are
 * called from those threads. */
typedef struct vki_instance vki_instance;

typedef struct vki_instance_desc {
    vki_log_fn log;           // NULL: messages at WARN and above go to stderr
    void *log_user;
    vki_log_level log_level;  // 0: VKI_LOG_WARN
    bool validation;          // enable the Khronos validation layer (also: VKI_VALIDATION=1)
    const vki_allocator *allocator; // NULL: malloc/free
    const char *app_name;     // NULL: "vkinfer"
} vki_instance_desc;

/* Loads Vulkan, creates an instance and enumerates the physical devices. `desc` may be NULL.
 * Fails with VKI_ERROR_NOT_FOUND when no Vulkan loader or driver is installed, and with
 * VKI_ERROR_UNSUPPORTED when validation is asked for and the layer is missing. */
vki_status vki_instance_create(const vki_instance_desc *desc, vki_instance **out_instance);
void vki_instance_destroy(vki_instance *instance);

/* The last error recorded on the instance ("" if none); borrowed, overwritten by the next. */
const char *vki_instance_last_error(const vki_instance *instance);

/* Validation-layer errors and warnings seen since creation (tests fail on any). */
uint32_t vki_instance_validation_count(const vki_instance *instance);

uint32_t vki_instance_device_count(const vki_instance *instance);

/* Picks a physical device. `selector` is a decimal index, or a case-insensitive substring of
 * the device name. NULL or "" means the VKI_DEVICE environment variable, and when that is unset
 * the default ranking: discrete > integrated > virtual > CPU, then enumeration order.
 * VKI_ERROR_NOT_FOUND names the available devices when nothing matches. */
vki_status vki_instance_select_device(vki_instance *instance, const char *selector,
                                      uint32_t *out_index);

/* ---- Device profile --------------------------------------------------------------------- */

typedef enum vki_vendor {
    VKI_VENDOR_OTHER = 0,
    VKI_VENDOR_NVIDIA,
    VKI_VENDOR_AMD,
    VKI_VENDOR_INTEL,
    VKI_VENDOR_ARM,
    VKI_VENDOR_QUALCOMM,
    VKI_VENDOR_APPLE,
    VKI_VENDOR_MESA_CPU, // lavapipe / llvmpipe
    VKI_VENDOR_COUNT
} vki_vendor;

typedef enum vki_device_type {
    VKI_DEVICE_OTHER = 0,
    VKI_DEVICE_DISCRETE,
    VKI_DEVICE_INTEGRATED,
    VKI_DEVICE_VIRTUAL,
    VKI_DEVICE_CPU,
    VKI_DEVICE_TYPE_COUNT
} vki_device_type;

/* Subgroup operations (bits of vki_profile.subgroup_ops). */
enum {
    VKI_SUBGROUP_BASIC = 1u << 0,
    VKI_SUBGROUP_VOTE = 1u << 1,
    VKI_SUBGROUP_ARITHMETIC = 1u << 2,
    VKI_SUBGROUP_BALLOT = 1u << 3,
    VKI_SUBGROUP_SHUFFLE = 1u << 4,
    VKI_SUBGROUP_SHUFFLE_RELATIVE = 1u << 5,
    VKI_SUBGROUP_CLUSTERED = 1u << 6,
    VKI_SUBGROUP_QUAD = 1u << 7,
};

/* Kernel-family choices for one vendor and architecture: a row of the tuning table. */
typedef struct vki_tuning {
    char name[32];           // row name: "nvidia", "amd-rdna", "amd-gcn", "intel-arc", ...
    uint32_t subgroup_size;  // size kernels are specialised for (within the device's range)
    uint32_t workgroup_size; // threads per workgroup for elementwise and reduction kernels
    uint32_t matvec_rows;    // output rows per workgroup in matrix-vector kernels
    uint32_t matmul_tile_m;  // output tile of the matrix-matrix kernels
    uint32_t matmul_tile_n;
    uint32_t matmul_tile_k;
    bool matmul_shared;      // shared-memory tiled matmul (false: register-tiled, no barriers)
    bool use_coopmat;        // cooperative-matrix matmul when the profile has it
    bool texel_loads;        // matvec, register matmul, norm and the attention keys and queries
                             // kernels read their operands as texel buffers
    bool attention_tiled;    // flash attention in shared-memory tiles, decode split over the kv
                             // positions (false: the barrier-free rows, keys and queries kernels)
    bool conv2d_shared;      // conv2d's implicit GEMM stages its tiles in shared memory (false:
                             // register tiles, no barriers)
    bool matvec_int_dot;     // the storage-buffer mat-vec of q8_0 and q4_0 weights rounds x to
                             // int8 and uses integer dot products (only where the profile has
                             // int_dot; x's rounding adds a relative error of about 1/254 of each
                             // 32-element block's max)
} vki_tuning;

typedef struct vki_heap {
    uint64_t size;
    uint64_t budget;     // VK_EXT_memory_budget where present, else size
    uint64_t usage;      // this process's usage where known, else 0
    bool device_local;
    bool host_visible;   // some memory type on this heap can be mapped
} vki_heap;

#define VKI_MAX_HEAPS 16

/* What a device can do, after narrowing, and the tuning chosen for it. */
typedef struct vki_profile {
    char name[256];
    char driver_name[256];
    char driver_info[256];
    uint32_t vendor_id, device_id;
    uint32_t driver_id;          // VkDriverId
    uint32_t driver_version;     // raw, vendor-encoded
    uint32_t api_version;
    uint8_t uuid[16];            // pipelineCacheUUID
    vki_vendor vendor;
    vki_device_type type;

    uint32_t subgroup_size;      // default size
    uint32_t subgroup_min, subgroup_max; // with subgroup size control, else both = default
    uint32_t subgroup_ops;       // VKI_SUBGROUP_* usable in compute; 0 when narrowed off
    bool subgroup_size_control;
    bool fp16;                   // shaderFloat16 arithmetic
    bool int8;                   // shaderInt8 arithmetic
    bool storage16;              // 16-bit storage buffer access
    bool storage8;               // 8-bit storage buffer access
    bool int_dot;                // VK_KHR_shader_integer_dot_product (4x8-bit, accelerated)
    bool coopmat;                // cooperative matrix for the kernels (KHR or NV extension)
    bool coopmat_khr;            // through VK_KHR_cooperative_matrix (else VK_NV_cooperative_matrix)
    uint32_t coopmat_shape[3];   // its fragment M, N, K for fp16 x fp16 + fp32 in a subgroup
    bool coopmat_emulated;       // coopmat through emulated fragments (no extension enabled;
                                 // the kernels' _cme variants): the emulate-coopmat narrowing
    bool memory_budget;          // VK_EXT_memory_budget
    bool push_descriptor;        // VK_KHR_push_descriptor
    bool uma;                    // every device-local heap is host-visible (iGPU, CPU)

    uint32_t shared_memory;      // maxComputeSharedMemorySize
    uint32_t push_constant_size; // maxPushConstantsSize
    uint64_t max_storage_range;  // maxStorageBufferRange
    uint64_t max_allocation;     // maxMemoryAllocationSize
    uint64_t max_buffer_size;    // maxBufferSize (maintenance4), else max_allocation
    uint32_t storage_align;      // minStorageBufferOffsetAlignment
    uint32_t texel_align;        // minTexelBufferOffsetAlignment
    uint32_t max_texel_elements; // maxTexelBufferElements
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size[3];
    uint32_t max_workgroup_count[3];

    uint32_t heap_count;
    vki_heap heaps[VKI_MAX_HEAPS];
    uint64_t device_local_bytes; // sum of device-local heap sizes

    bool timestamps;             // compute queue supports timestamps
    float timestamp_period;      // ns per tick

    vki_tuning tuning;
} vki_profile;

/* Turns capabilities off so that every kernel path and fallback can run on one device.
 * A zero-initialised narrowing changes nothing. */
typedef struct vki_narrowing {
    bool no_fp16;       // no fp16 arithmetic or 16-bit storage
    bool no_subgroup;   // no subgroup operations (kernels take their shared-memory fallback)
    bool no_coopmat;
    bool no_coopmat_khr; // cooperative matrices through VK_NV_cooperative_matrix only
    bool emulate_coopmat; // tests: a device without cooperative matrices runs the coopmat
                          // kernels on emulated 8 x 8 x 8 fragments, planned as a GPU's
    bool no_int_dot;
    bool int_dot;       // tests and benchmarks: the integer-dot mat-vec (tuning matvec_int_dot)
                        // whatever the tuning row says, where the device has integer dot products
    bool no_uma;        // treat the device as discrete: uploads go through the staging ring
    char tuning[32];    // force this tuning-table row ("" = chosen by vendor and architecture)
    uint64_t max_binding; // bytes one storage binding may span: lowers max_storage_range (as on a
                          // device with a small maxStorageBufferRange) so that small tests split
                          // what larger shapes split; 0 or more than the device's: the device's
} vki_narrowing;

/* The smallest max-binding narrowing accepted: below it the kernels' own tiles stop fitting. */
#define VKI_NARROW_MIN_BINDING (64u << 10)

/* Parses "no-fp16,no-subgroup,no-coopmat,no-coopmat-khr,emulate-coopmat,no-int-dot,int-dot,
 * no-uma,tuning=amd-rdna,max-binding=1M" (any subset, any order; NULL or "" is no narrowing;
 * max-binding takes bytes or K/M/G, at least VKI_NARROW_MIN_BINDING). An unknown word, tuning
 * name or bad size is VKI_ERROR_INVALID_ARGUMENT; `out_error` (may be NULL, at least 128 bytes)
 * then says which. */
vki_status vki_narrowing_parse(const char *text, vki_narrowing *out_narrowing, char *out_error,
                               size_t error_size);

/* Number of rows in the tuning table and the name of row i (NULL past the end). */
uint32_t vki_tuning_count(void);
const char *vki_tuning_name(uint32_t index);

/* Fills the profile of physical device `index` without opening it. `narrowing` may be NULL;
 * when NULL the VKI_NARROW environment variable applies. */
vki_status vki_instance_device_profile(vki_instance *instance, uint32_t index,
                                       const vki_narrowing *narrowing, vki_profile *out_profile);

const char *vki_vendor_name(vki_vendor vendor);
const char *vki_device_type_name(vki_device_type type);

/* ---- Device ----------------------------------------------------------------------------- */

/* Threads: a device and everything created on it (arenas, kernels, streams, the graph layer's
 * plans) are used from one thread at a time: they share its queue, staging ring, pipeline cache,
 * statistics and last-error string. Two devices may run on two threads. */
typedef struct vki_device vki_device;

typedef struct vki_device_desc {
    const char *select;            // see vki_instance_select_device; NULL: $VKI_DEVICE or best
    const vki_narrowing *narrowing; // NULL: $VKI_NARROW, else none
    const char *cache_dir;         // pipeline cache folder; NULL: $XDG_CACHE_HOME/vkinfer or
                                   // ~/.cache/vkinfer; "" : no cache on disk
    uint64_t staging_size;         // staging ring bytes; 0: 32 MiB
    uint64_t memory_limit;         // device memory this device may hold in all, to reproduce a
                                   // smaller card (a 4 GiB GPU on lavapipe): allocations past it
                                   // fail as out of device memory, and device-local heaps report
                                   // this size and budget (usage: what this device holds).
                                   // 0: $VKI_MEMORY_LIMIT (bytes, or with K, M, G: "4G",
                                   // "3500M"), else none
} vki_device_desc;

/* The folder of vkinfer's per-user caches, where the pipeline cache goes by default and the
 * applications keep theirs (models, measured peaks): $XDG_CACHE_HOME/vkinfer, else
 * ~/.cache/vkinfer (%LOCALAPPDATA%\vkinfer on Windows). Writes it to `out` (NUL-terminated) and
 * returns true; false, with out empty, when the environment names no such folder. */
bool vki_user_cache_dir(char *out, size_t size);

/* Opens a device with every feature its (narrowed) profile reports, one compute queue, a
 * timeline semaphore, the staging ring and the pipeline cache. `desc` may be NULL. */
vki_status vki_device_create(vki_instance *instance, const vki_device_desc *desc,
                             vki_device **out_device);

/* Saves the pipeline cache (when it changed) and releases everything. Objects created on the
 * device must be destroyed first. */
void vki_device_destroy(vki_device *device);

const vki_profile *vki_device_profile(const vki_device *device); // borrowed
const char *vki_device_last_error(const vki_device *device);     // borrowed, "" if none
vki_instance *vki_device_instance(const vki_device *device);      // borrowed

/* Records an error of a layer above the runtime (graph, models) as the device's last error
 * and sends it to the log, so that one place holds what went wrong. Returns `status`. */
vki_status vki_device_report(vki_device *device, vki_status status, const char *fmt, ...)
    VKI_PRINTF(3, 4);

/* Re-reads heap budgets and usage (VK_EXT_memory_budget) into the profile. Under a memory
 * limit (vki_device_desc.memory_limit), device-local heaps' budgets are the limit and
 * their usage is what this device holds. */
void vki_device_refresh_budget(vki_device *device);

typedef struct vki_device_stats {
    uint64_t device_bytes;        // device memory allocated now, all arenas and the ring
    uint64_t device_bytes_peak;
    uint32_t allocations;         // vkAllocateMemory calls that are live now
    uint64_t cache_bytes_loaded;  // pipeline-cache bytes accepted from disk at creation
    uint32_t cache_rejected;      // 1 when a cache file was found but ignored
    uint32_t pipelines_created;
    uint32_t pipelines_shared;    // vki_kernel_create calls answered with a kernel made before
} vki_device_stats;

void vki_device_stats_get(const vki_device *device, vki_device_stats *out_stats);

/* Writes the pipeline cache to disk now (device destroy does it too). */
vki_status vki_device_save_pipeline_cache(vki_device *device);

/* Waits until the device's timeline reaches `ticket` (from vki_stream_submit).
 * VKI_ERROR_TIMEOUT when `timeout_ns` passes first; VKI_ERROR_INVALID_ARGUMENT for a ticket
 * never submitted (it would wait forever). */
vki_status vki_device_wait(vki_device *device, uint64_t ticket, uint64_t timeout_ns);

/* The highest ticket the device has finished. */
uint64_t vki_device_completed(vki_device *device);

/* Waits for all submitted work. */
vki_status vki_device_wait_idle(vki_device *device);

/* ---- Memory ----------------------------------------------------------------------------- */

/* Threads: as its device (one thread at a time for the device and all under it). */
typedef struct vki_arena vki_arena;
typedef struct vki_buffer vki_buffer; // one VkBuffer over one memory block, owned by an arena

/* A suballocation: `size` bytes at `offset` in `buffer`. A plain value; valid until its arena
 * is reset or destroyed. Host memory mapped from it (vki_range_map) may be read and written on
 * any thread, while no submitted work uses the range. */
typedef struct vki_range {
    vki_buffer *buffer;
    uint64_t offset;
    uint64_t size;
} vki_range;

typedef enum vki_arena_kind {
    VKI_ARENA_DEFAULT = 0,  // = VKI_ARENA_ACTIVATIONS
    VKI_ARENA_WEIGHTS,      // device-local, filled once (host-visible too on UMA devices)
    VKI_ARENA_ACTIVATIONS,  // device-local scratch for one plan
    VKI_ARENA_HOST,         // host-visible and coherent: parameters and results read often
    VKI_ARENA_KIND_COUNT
} vki_arena_kind;

typedef struct vki_arena_desc {
    vki_arena_kind kind;
    uint64_t block_size;    // bytes per memory block; 0: 256 MiB (capped by the device limit).
                            // A larger allocation gets a block of its own size.
    const char *name;       // debug name; NULL: the kind's name
} vki_arena_desc;

vki_status vki_arena_create(vki_device *device, const vki_arena_desc *desc, vki_arena **out_arena);
void vki_arena_destroy(vki_arena *arena);

/* Suballocates `size` bytes aligned to `align` (0: the device's storage-buffer alignment; any
 * value is raised to it). Blocks are allocated as needed; the out-of-device-memory message gives
 * the requested size, the heap's size and budget, and what this device already holds. */
vki_status vki_arena_alloc(vki_arena *arena, uint64_t size, uint64_t align, vki_range *out_range);

/* Forgets every suballocation; blocks are kept for reuse. */
void vki_arena_reset(vki_arena *arena);

/* Bytes handed out since the last reset, and bytes held in blocks. */
uint64_t vki_arena_used(const vki_arena *arena);
uint64_t vki_arena_capacity(const vki_arena *arena);

/* Host pointer to the range when its memory is host-visible (HOST arenas, WEIGHTS on UMA),
 * else NULL. */
void *vki_range_map(vki_range range);

/* Bytes from the range's start to the end of its buffer: at least range.size rounded up to 16
 * for arena ranges, whose sizes are padded so that word-wise reads of a tensor's tail (f16
 * elements, 18-byte quant blocks read as 32-bit words) stay inside the buffer. */
uint64_t vki_range_capacity(vki_range range);

/* A window of a range: `size` bytes from `offset` (checked against the range by the caller). */
static inline vki_range vki_range_sub(vki_range r, uint64_t offset, uint64_t size)
{
    vki_range s = {r.buffer, r.offset + offset, size};
    return s;
}

/* Copies host data into `dst` at `offset`, through the staging ring (or directly on UMA
 * devices), and returns when the data is on the device. Work submitted earlier on the device is
 * ordered before it; work submitted later sees the data. */
vki_status vki_device_upload(vki_device *device, vki_range dst, uint64_t offset, const void *src,
                             uint64_t size);

/* Copies `size` bytes at `offset` of `src` to host memory, after all work submitted earlier. */
vki_status vki_device_download(vki_device *device, vki_range src, uint64_t offset, void *dst,
                               uint64_t size);

/* ---- Kernels ---------------------------------------------------------------------------- */

/* Threads: as its device. Once created a kernel is only read, but creating and destroying one
 * use the device's pipeline cache and statistics. */
typedef struct vki_kernel vki_kernel;

typedef struct vki_spec {
    uint32_t id;     // constant_id in the shader
    uint32_t value;  // 32-bit value (use memcpy for floats)
} vki_spec;

#define VKI_MAX_BINDINGS 8
#define VKI_MAX_SPECS 16

typedef struct vki_kernel_desc {
    const char *name;          // embedded module name ("add_u32"), or the label of `spirv`
    const uint32_t *spirv;     // NULL: the embedded module `name`
    size_t spirv_words;
    uint32_t binding_count;    // storage buffers the caller binds (set 0, bindings 0..n-1)
    uint32_t push_size;        // push-constant bytes the caller pushes
    const vki_spec *specs;
    uint32_t spec_count;
    uint32_t subgroup_size;    // require this subgroup size (0: the device's choice)
} vki_kernel_desc;

/* Creates a compute pipeline. The module's bindings, push-constant block and local size are
 * read from the SPIR-V and checked against `desc` and the device limits: a mismatch is
 * VKI_ERROR_INVALID_ARGUMENT naming both sides.
 * Kernels of embedded modules are shared: a `desc` equal to an earlier one (name, bindings,
 * push size, specialisation constants in the same order, subgroup size) returns that kernel
 * again, and the device keeps the most recently released ones (VKI_KERNELS_KEPT) after their
 * last vki_kernel_destroy, so programs compiled one after another do not create the same
 * pipeline twice (vki_device_stats.pipelines_shared counts the creates so answered). Every
 * create still takes its own vki_kernel_destroy. */
#define VKI_KERNELS_KEPT 256
vki_status vki_kernel_create(vki_device *device, const vki_kernel_desc *desc,
                             vki_kernel **out_kernel);
void vki_kernel_destroy(vki_kernel *kernel);

/* Local size after specialisation. */
void vki_kernel_local_size(const vki_kernel *kernel, uint32_t out_size[3]);
const char *vki_kernel_name(const vki_kernel *kernel);

/* The embedded module table, generated at build time from shaders/. Constant: any thread. */
typedef struct vki_shader_module {
    const char *name;
    const uint32_t *words;
    size_t word_count;
} vki_shader_module;

const vki_shader_module *vki_shader_find(const char *name); // NULL if none
uint32_t vki_shader_count(void);
const vki_shader_module *vki_shader_at(uint32_t index);

/* ---- Streams ---------------------------------------------------------------------------- */

/* Threads: as its device. Recording, submitting and waiting all go through the device's one
 * queue and timeline, so streams of one device are not driven from different threads. */
typedef struct vki_stream vki_stream;

typedef struct vki_stream_desc {
    const char *name;          // debug name
    bool timestamps;           // time every dispatch (needs profile.timestamps)
    uint32_t max_timestamps;   // dispatches timed per recording; 0: 1024
} vki_stream_desc;

typedef struct vki_dispatch {
    vki_kernel *kernel;
    const vki_range *bindings; // binding i of set 0; each at most profile.max_storage_range bytes
    uint32_t binding_count;
    const void *push;
    uint32_t push_size;
    uint32_t groups[3];        // workgroup counts; 0 counts as 1
} vki_dispatch;

vki_status vki_stream_create(vki_device *device, const vki_stream_desc *desc,
                             vki_stream **out_stream);
/* Waits for the stream's last submission, then releases it. */
void vki_stream_destroy(vki_stream *stream);

/* Starts a new recording, discarding the previous one (after its last submission finished). */
vki_status vki_stream_begin(vki_stream *stream);

/* Records a dispatch. Bindings, push size and group counts are checked against the kernel and
 * the device limits here, so that submit never sees a bad command. */
vki_status vki_stream_dispatch(vki_stream *stream, const vki_dispatch *dispatch);

/* Makes every earlier write in the recording visible to every later read and write. */
vki_status vki_stream_barrier(vki_stream *stream);

/* Records a copy of min(src.size, dst.size) bytes between device ranges. */
vki_status vki_stream_copy(vki_stream *stream, vki_range src, vki_range dst);

vki_status vki_stream_end(vki_stream *stream);

/* Submits the recording; may be called again and again to replay it unchanged. Returns the
 * device timeline value that marks its completion. A replay waits for the previous submission
 * of the same stream first. */
vki_status vki_stream_submit(vki_stream *stream, uint64_t *out_ticket);

/* After the last submission finished: microseconds each timed dispatch took, in recording
 * order. Writes at most `capacity`, returns the count in out_count. */
vki_status vki_stream_timings(vki_stream *stream, double *out_us, uint32_t capacity,
                              uint32_t *out_count);

#ifdef __cplusplus
}
#endif

#endif
