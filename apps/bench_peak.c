/* `vkinfer bench peak`: the device's measured peaks, each from a kernel written for it, the
 * roofs that `bench ops` and `bench llm` cite (vki_bench_peaks_get).
 *
 *  - fp32 / fp16 vector FMA (peak_fma.comp), int8 dot product (peak_dot.comp, where the
 *    profile has VK_KHR_shader_integer_dot_product), cooperative-matrix fp16
 *    (peak_coopmat.comp, where the profile has cooperative matrices): chains in registers on a
 *    grid sized by device type (the profile has no count of compute units, so a GPU gets a
 *    grid larger than any GPU's resident threads), the iteration count calibrated until one
 *    dispatch takes the target time (20 ms on a GPU, 100 ms on a CPU device);
 *  - device memory read and write (peak_mem.comp), 16-byte accesses over a buffer larger than
 *    any cache (1 GiB on a GPU where the limits allow, 64 MiB on a CPU device), bound in
 *    windows of at most maxStorageBufferRange;
 *  - copy bandwidth, upload/download, dispatch and submit latency: `bench runtime`'s own
 *    measurements (vki_bench_runtime, run quietly), not a second copy of them.
 *
 * Times are the median of the repetitions, from GPU timestamps where the device has them,
 * else the wall clock around submit+wait. Every kernel's result is checked on the host
 * (abi_peak.h says what each computes), so a fast wrong kernel fails the bench.
 *
 * The peaks are cached per device, driver, vkinfer version and feature set in a JSON file next
 * to the pipeline cache; `bench peak` always measures and rewrites it, vki_bench_peaks_get
 * reads it when it matches and measures otherwise. */
#include "bench_peak.h"
#include "vki_abi.h"
#include "abi_peak.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1ull << 20)
#define WAIT_NS (120ull * 1000 * 1000 * 1000) // a hung device fails the bench, not hangs it
#define WINDOW_ALIGN (64u << 10)
#define SAMPLE_BYTES (64u << 10)   // bytes of the write kernel's output checked per window
#define MAX_ITERS (1u << 22)

typedef struct pk_bench {
    vki_app *app;
    vki_device *dev;
    const vki_profile *prof;
    vki_arena *arena;
    bool quiet;          // print nothing but failures
    uint32_t reps;
    double target_us;    // one calibrated dispatch
    uint32_t local;      // threads per workgroup of fma, dot and mem
    uint32_t groups;     // workgroups of fma and dot
    uint32_t mem_groups; // workgroups of read and write
    uint64_t mem_bytes;  // read / write buffer
    uint64_t window;     // bytes bound per memory dispatch
    bool timed;          // GPU timestamps
} pk_bench;

typedef struct pk_result {
    vki_bench_peaks peaks;
    bool fp16, int8, coopmat; // measured (else unsupported)
    uint32_t fma_iters[2], dot_iters, cm_iters; // the calibrated iteration counts
    uint32_t reps, threads;
    uint64_t mem_bytes, window;
} pk_result;

#define PK_CHECK(call, what)                                                                   \
    do {                                                                                       \
        vki_status pk_status_ = (call);                                                        \
        if (pk_status_ != VKI_OK) {                                                            \
            code = vki_app_fail(b->app, "bench peak: " what, pk_status_);                      \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

#define PK_OOM(ptr)                                                                            \
    do {                                                                                       \
        if (!(ptr)) {                                                                          \
            code = vki_app_failf("bench peak: out of host memory");                            \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ---- Setup ------------------------------------------------------------------------------- */

static int bench_init(pk_bench *b, vki_app *app, const vki_bench_opts *opts, bool quiet)
{
    const vki_profile *p = vki_device_profile(app->device);
    const bool cpu = p->type == VKI_DEVICE_CPU;
    memset(b, 0, sizeof *b);
    b->app = app;
    b->dev = app->device;
    b->prof = p;
    b->quiet = quiet;
    b->reps = opts && opts->reps ? opts->reps : cpu ? 5 : 10;
    b->target_us = cpu ? 100e3 : 20e3;
    b->timed = p->timestamps;
    uint32_t local = VKI_PEAK_LOCAL_SIZE;
    if (p->max_workgroup_invocations && local > p->max_workgroup_invocations)
        local = p->max_workgroup_invocations;
    if (p->max_workgroup_size[0] && local > p->max_workgroup_size[0])
        local = p->max_workgroup_size[0];
    b->local = local;
    // A GPU: 1M threads, several times what the largest GPUs keep resident; an integrated one
    // a quarter; a CPU device a few workgroups per core (lavapipe runs a workgroup per thread).
    uint32_t threads = p->type == VKI_DEVICE_DISCRETE ? (1u << 20)
                       : cpu                          ? (1u << 13)
                                                      : (1u << 18);
    b->groups = threads / local;
    uint32_t max_x = p->max_workgroup_count[0] ? p->max_workgroup_count[0] : 65535;
    if (b->groups > max_x) b->groups = max_x;
    if (b->groups == 0) b->groups = 1;
    // The memory kernels: the same on a GPU; on lavapipe 32 workgroups wrote at a quarter of
    // the speed of 1024 (alternating runs on a loaded 2-core machine), so 256K threads there.
    b->mem_groups = cpu ? (1u << 18) / local : b->groups;
    if (b->mem_groups > max_x) b->mem_groups = max_x;

    uint64_t cap = min_u64(p->max_allocation, p->max_buffer_size ? p->max_buffer_size : UINT64_MAX);
    uint64_t want = opts && opts->copy_bytes ? opts->copy_bytes : cpu ? 64 * MIB : 1024 * MIB;
    if (!(opts && opts->copy_bytes) && p->device_local_bytes && want > p->device_local_bytes / 4)
        want = p->device_local_bytes / 4;
    b->mem_bytes = min_u64(want, cap) / WINDOW_ALIGN * WINDOW_ALIGN;
    uint64_t window = opts && opts->window_bytes ? opts->window_bytes : p->max_storage_range;
    window = min_u64(min_u64(window, p->max_storage_range), b->mem_bytes);
    b->window = window / WINDOW_ALIGN * WINDOW_ALIGN;
    vki_status st = vki_arena_create(b->dev, &(vki_arena_desc){.kind = VKI_ARENA_ACTIVATIONS,
                                                               .name = "bench peak"}, &b->arena);
    if (st != VKI_OK) return vki_app_fail(app, "bench peak: creating an arena", st);
    return VKI_EXIT_OK;
}

static void bench_done(pk_bench *b) { vki_arena_destroy(b->arena); }

static vki_status make_kernel(pk_bench *b, const char *name, uint32_t bindings, uint32_t push,
                              const vki_spec *extra, uint32_t extra_count, uint32_t subgroup,
                              vki_kernel **out)
{
    vki_spec specs[4] = {{VKI_SPEC_LOCAL_SIZE_X, b->local}};
    for (uint32_t i = 0; i < extra_count && i < 3; i++) specs[1 + i] = extra[i];
    vki_kernel_desc d = {.name = name, .binding_count = bindings, .push_size = push,
                         .specs = specs, .spec_count = 1 + extra_count,
                         .subgroup_size = subgroup};
    return vki_kernel_create(b->dev, &d, out);
}

/* Submits the stream's recording once and waits: *out_us is the sum of its dispatches' GPU
 * times where the stream is `timed` (created with timestamps), else the wall time. */
static vki_status run_once(pk_bench *b, vki_stream *s, bool timed, uint32_t dispatches,
                           double *out_us)
{
    uint64_t ticket = 0;
    double t0 = vki_now_us();
    VKI_TRY(vki_stream_submit(s, &ticket));
    VKI_TRY(vki_device_wait(b->dev, ticket, WAIT_NS));
    double wall = vki_now_us() - t0;
    *out_us = wall;
    if (!timed) return VKI_OK;
    double t[64];
    uint32_t n = 0;
    VKI_TRY(vki_stream_timings(s, t, dispatches < 64 ? dispatches : 64, &n));
    if (n == 0) return VKI_OK;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += t[i];
    if (sum > 0) *out_us = sum;
    return VKI_OK;
}

/* Median of b->reps submissions of the recorded stream. */
static int median_time(pk_bench *b, vki_stream *s, bool timed, uint32_t dispatches,
                       double *out_us)
{
    int code = VKI_EXIT_OK;
    double *samples = malloc(b->reps * sizeof *samples);
    PK_OOM(samples);
    for (uint32_t r = 0; r < b->reps; r++)
        PK_CHECK(run_once(b, s, timed, dispatches, &samples[r]), "submit+wait");
    *out_us = vki_percentile(samples, b->reps, 0.5);
fail:
    free(samples);
    return code;
}

/* ---- Compute peaks ------------------------------------------------------------------------ */

/* A compute kernel whose push block starts with `iters`: one dispatch of `groups`. */
typedef struct pk_compute {
    vki_kernel *kernel;
    vki_range out;
    uint32_t groups;
    void *push;          // its first u32 is iters
    uint32_t push_size;
} pk_compute;

static vki_status record_compute(vki_stream *s, const pk_compute *c, uint32_t iters)
{
    memcpy(c->push, &iters, sizeof iters);
    VKI_TRY(vki_stream_begin(s));
    vki_dispatch d = {.kernel = c->kernel, .bindings = &c->out, .binding_count = 1,
                      .push = c->push, .push_size = c->push_size, .groups = {c->groups, 1, 1}};
    VKI_TRY(vki_stream_dispatch(s, &d));
    return vki_stream_end(s);
}

/* Finds the iteration count at which one dispatch takes about the target time (the first run
 * also pays the pipeline's first use), then times it: *out_iters and the median. */
static int calibrate_and_time(pk_bench *b, const pk_compute *c, uint32_t *out_iters,
                              double *out_us)
{
    int code = VKI_EXIT_OK;
    vki_stream *s = NULL;
    vki_stream_desc sd = {.name = "bench peak", .timestamps = b->timed, .max_timestamps = 1};
    PK_CHECK(vki_stream_create(b->dev, &sd, &s), "creating a stream");
    uint32_t iters = 2;
    for (int round = 0;; round++) {
        double us = 0;
        PK_CHECK(record_compute(s, c, iters), "recording a peak kernel");
        PK_CHECK(run_once(b, s, b->timed, 1, &us), "submit+wait");
        if (round == 0) continue; // warm-up
        if (us >= 0.5 * b->target_us || iters >= MAX_ITERS) {
            double scale = us > 0 ? b->target_us / us : 1.0;
            if (scale > 1.0 && us >= 0.5 * b->target_us)
                iters = (uint32_t)fmin((double)MAX_ITERS, ceil(iters * scale));
            break;
        }
        double scale = us > 0 ? b->target_us / us : 64.0;
        scale = scale < 2.0 ? 2.0 : scale > 64.0 ? 64.0 : scale;
        iters = (uint32_t)fmin((double)MAX_ITERS, ceil(iters * scale));
    }
    PK_CHECK(record_compute(s, c, iters), "recording a peak kernel");
    if ((code = median_time(b, s, b->timed, 1, out_us)) != VKI_EXIT_OK) goto fail;
    *out_iters = iters;
fail:
    vki_stream_destroy(s);
    return code;
}

/* The start value of lane l of FMA chain j in thread gid (peak_fma.comp). */
static double fma_init(uint32_t gid, uint32_t j, uint32_t l)
{
    return (double)(gid % 16u + 4u * j + l);
}

/* The value a chain reaches after `count` steps x = x * a + b, in closed form for a = +-1 (the
 * exact cases the bench uses), else step by step. */
static double fma_chain(double x, uint64_t count, double a, double b)
{
    if (a == 1.0) return x + (double)count * b;
    if (a == -1.0) return count % 2 ? b - x : x;
    for (uint64_t i = 0; i < count; i++) x = x * a + b;
    return x;
}

static double fma_expect(uint32_t gid, uint64_t count, double a, double b)
{
    double s = 0;
    for (uint32_t j = 0; j < VKI_PEAK_FMA_CHAINS; j++)
        for (uint32_t l = 0; l < 4; l++) s += fma_chain(fma_init(gid, j, l), count, a, b);
    return s;
}

/* Signed 4x8-bit packed dot product, as OpSDot. */
static int32_t sdot4x8(uint32_t x, uint32_t w)
{
    int32_t s = 0;
    for (int k = 0; k < 4; k++)
        s += (int8_t)(uint8_t)(x >> (8 * k)) * (int8_t)(uint8_t)(w >> (8 * k));
    return s;
}

static uint32_t dot_expect(uint32_t gid, uint64_t count, uint32_t w, uint32_t c)
{
    uint32_t s = 0;
    for (uint32_t j = 0; j < VKI_PEAK_DOT_CHAINS; j++) {
        uint32_t x = gid * 2654435761u + j * 40503u;
        for (uint64_t i = 0; i < count; i++) x = (uint32_t)sdot4x8(x, w) + c;
        s += x;
    }
    return s;
}

/* One FMA or dot kernel run: creates it, its output buffer (one word per thread) and either
 * times it calibrated (out_iters != NULL) or runs it once at `iters`. The output is left in
 * *out_words [threads] (malloc'd). */
typedef enum pk_kind { PK_FMA32, PK_FMA16, PK_DOT } pk_kind;

static int run_vector(pk_bench *b, pk_kind kind, uint32_t iters, const void *push,
                      uint32_t push_size, uint32_t **out_words, uint32_t *out_threads,
                      uint32_t *out_iters, double *out_us)
{
    int code = VKI_EXIT_OK;
    vki_kernel *k = NULL;
    vki_stream *s = NULL;
    uint8_t pc[16];
    const char *name = kind == PK_FMA32   ? "peak_fma_f32"
                       : kind == PK_FMA16 ? "peak_fma_f16"
                                          : "peak_dot";
    const uint32_t threads = b->groups * b->local;
    uint32_t *words = malloc((size_t)threads * sizeof *words);
    PK_OOM(words);
    memcpy(pc, push, push_size);
    PK_CHECK(make_kernel(b, name, 1, push_size, NULL, 0, 0, &k), "creating a peak kernel");
    pk_compute c = {.kernel = k, .groups = b->groups, .push = pc, .push_size = push_size};
    PK_CHECK(vki_arena_alloc(b->arena, (uint64_t)threads * 4, 0, &c.out), "allocating the output");
    if (out_iters) {
        if ((code = calibrate_and_time(b, &c, out_iters, out_us)) != VKI_EXIT_OK) goto fail;
    } else {
        PK_CHECK(vki_stream_create(b->dev, &(vki_stream_desc){.name = "peak probe"}, &s),
                 "creating a stream");
        PK_CHECK(record_compute(s, &c, iters), "recording a peak kernel");
        double us = 0;
        PK_CHECK(run_once(b, s, false, 1, &us), "submit+wait");
    }
    PK_CHECK(vki_device_download(b->dev, c.out, 0, words, (uint64_t)threads * 4),
             "downloading the result");
    *out_words = words;
    words = NULL;
    *out_threads = threads;
fail:
    vki_stream_destroy(s);
    vki_kernel_destroy(k);
    vki_arena_reset(b->arena);
    free(words);
    return code;
}

/* The threads whose results the bench checks: the first and last 256 (all of a small grid). */
static bool sampled(uint32_t t, uint32_t threads) { return t < 256 || t + 256 >= threads; }

static int peak_fma(pk_bench *b, bool fp16, double *out_gflops, uint32_t *out_iters)
{
    // a = -1, b = 3: every lane flips between x0 and 3 - x0, exact in fp16 and fp32.
    vki_pc_peak_fma pc = {.a = -1.0f, .b = 3.0f};
    uint32_t *words = NULL, threads = 0;
    double us = 0;
    int code = run_vector(b, fp16 ? PK_FMA16 : PK_FMA32, 0, &pc, sizeof pc, &words, &threads,
                          out_iters, &us);
    if (code != VKI_EXIT_OK) return code;
    const uint64_t count = (uint64_t)*out_iters * VKI_PEAK_FMA_UNROLL;
    for (uint32_t t = 0; t < threads; t++) {
        if (!sampled(t, threads)) continue;
        float got;
        memcpy(&got, &words[t], sizeof got);
        double want = fma_expect(t, count, pc.a, pc.b);
        if ((double)got != want) {
            free(words);
            return vki_app_failf("bench peak: fp%d FMA: thread %u's sum is %g after %llu steps, "
                                 "expected %g", fp16 ? 16 : 32, t, (double)got,
                                 (unsigned long long)count, want);
        }
    }
    free(words);
    *out_gflops = (double)threads * VKI_PEAK_FMA_CHAINS * 4 * 2 * (double)count / us / 1e3;
    return VKI_EXIT_OK;
}

static int peak_dot(pk_bench *b, double *out_gops, uint32_t *out_iters)
{
    vki_pc_peak_dot pc = {.w = (int32_t)0x7f03fd81u, .c = 12345};
    uint32_t *words = NULL, threads = 0;
    double us = 0;
    int code = run_vector(b, PK_DOT, 0, &pc, sizeof pc, &words, &threads, out_iters, &us);
    if (code != VKI_EXIT_OK) return code;
    const uint64_t count = (uint64_t)*out_iters * VKI_PEAK_DOT_UNROLL;
    for (uint32_t t = 0; t < threads; t++) {
        if (!sampled(t, threads)) continue;
        uint32_t want = dot_expect(t, count, (uint32_t)pc.w, (uint32_t)pc.c);
        if (words[t] != want) {
            free(words);
            return vki_app_failf("bench peak: int8 dot: thread %u's sum is %u after %llu steps, "
                                 "expected %u", t, words[t], (unsigned long long)count, want);
        }
    }
    free(words);
    // 4 multiply-adds per dot: 8 ops, and the add of c is not counted.
    *out_gops = (double)threads * VKI_PEAK_DOT_CHAINS * 8 * (double)count / us / 1e3;
    return VKI_EXIT_OK;
}

/* As the matmul lowering decides: the kernel names its subgroup (gl_SubgroupID), so a
 * --narrow no-subgroup run has no cooperative-matrix peak either. */
static bool coopmat_usable(const vki_profile *p)
{
    // Emulated fragments (a test narrowing) have no extension to run peak_coopmat on, and no
    // matrix-core peak to measure.
    return p->coopmat && !p->coopmat_emulated && p->subgroup_size && (p->subgroup_ops & VKI_SUBGROUP_BASIC);
}

/* The cooperative-matrix kernel on `groups` workgroups of 128 threads (0: as many threads as
 * the FMA grid): calibrated and timed (out_us != NULL; *io_iters receives the count) or run
 * once at *io_iters. Its output, one M x N block per subgroup, in *out_vals [*out_elems]. */
static int run_coopmat(pk_bench *b, uint32_t groups, vki_pc_peak_cm pc, uint32_t *io_iters,
                       float **out_vals, uint64_t *out_elems, uint64_t *out_subgroups,
                       double *out_us)
{
    int code = VKI_EXIT_OK;
    const vki_profile *p = b->prof;
    vki_kernel *k = NULL;
    vki_stream *s = NULL;
    float *vals = NULL;
    const uint32_t fm = p->coopmat_shape[0], fn = p->coopmat_shape[1], fk = p->coopmat_shape[2];
    const uint32_t sgs = p->subgroup_size ? p->subgroup_size : 32;
    const uint32_t local = VKI_PEAK_CM_LOCAL_SIZE < sgs ? sgs : VKI_PEAK_CM_LOCAL_SIZE;
    if (!groups) groups = b->groups * b->local / local ? b->groups * b->local / local : 1;
    const uint64_t subgroups = (uint64_t)groups * (local / sgs), elems = subgroups * fm * fn;
    vki_spec specs[4] = {{VKI_SPEC_LOCAL_SIZE_X, local}, {VKI_SPEC_PEAK_FRAG_M, fm},
                         {VKI_SPEC_PEAK_FRAG_N, fn}, {VKI_SPEC_PEAK_FRAG_K, fk}};
    // The variant of the extension the device was opened with (the profile's choice).
    const char *name = p->coopmat_khr ? "peak_coopmat_khr_f16" : "peak_coopmat_f16";
    vki_kernel_desc kd = {.name = name, .binding_count = 1,
                          .push_size = sizeof(vki_pc_peak_cm), .specs = specs, .spec_count = 4,
                          .subgroup_size = p->subgroup_size_control ? sgs : 0};
    PK_CHECK(vki_kernel_create(b->dev, &kd, &k), "creating the cooperative-matrix kernel");
    pk_compute c = {.kernel = k, .groups = groups, .push = &pc, .push_size = sizeof pc};
    PK_CHECK(vki_arena_alloc(b->arena, elems * 4, 0, &c.out), "allocating the output");
    if (out_us) {
        if ((code = calibrate_and_time(b, &c, io_iters, out_us)) != VKI_EXIT_OK) goto fail;
    } else {
        double us = 0;
        PK_CHECK(vki_stream_create(b->dev, &(vki_stream_desc){.name = "peak probe"}, &s),
                 "creating a stream");
        PK_CHECK(record_compute(s, &c, *io_iters), "recording a peak kernel");
        PK_CHECK(run_once(b, s, false, 1, &us), "submit+wait");
    }
    vals = malloc(elems * sizeof *vals);
    PK_OOM(vals);
    PK_CHECK(vki_device_download(b->dev, c.out, 0, vals, elems * 4), "downloading the result");
    *out_vals = vals;
    vals = NULL;
    *out_elems = elems;
    *out_subgroups = subgroups;
fail:
    free(vals);
    vki_stream_destroy(s);
    vki_kernel_destroy(k);
    vki_arena_reset(b->arena);
    return code;
}

static int peak_coopmat(pk_bench *b, double *out_gflops, uint32_t *out_iters)
{
    const vki_profile *p = b->prof;
    const uint32_t fm = p->coopmat_shape[0], fn = p->coopmat_shape[1], fk = p->coopmat_shape[2];
    // a * b = 2^-6: each multiply-add adds FRAG_K * 2^-6 to every element, exact in fp32 for
    // any count the bench reaches, whatever order the matrix unit sums in.
    vki_pc_peak_cm pc = {.a = 1.0f, .b = 1.0f / 64.0f};
    float *vals = NULL;
    uint64_t elems = 0, subgroups = 0;
    double us = 0;
    int code = run_coopmat(b, 0, pc, out_iters, &vals, &elems, &subgroups, &us);
    if (code != VKI_EXIT_OK) return code;
    const double want = (double)VKI_PEAK_CM_CHAINS * *out_iters * fk * pc.a * pc.b;
    for (uint64_t i = 0; i < elems; i++)
        if (fabs(vals[i] - want) > 1e-3 * want) {
            free(vals);
            return vki_app_failf("bench peak: coopmat: element %llu is %g, expected %g",
                                 (unsigned long long)i, (double)vals[i], want);
        }
    free(vals);
    *out_gflops = (double)subgroups * VKI_PEAK_CM_CHAINS * *out_iters * 2.0 * fm * fn * fk /
                  us / 1e3;
    return VKI_EXIT_OK;
}

/* ---- Memory peaks ------------------------------------------------------------------------- */

static uint32_t write_pattern(uint64_t word, uint32_t seed)
{
    return (uint32_t)word * 2654435761u ^ seed;
}

/* A read-kernel source word: anything not constant, so that the sum catches a skipped window. */
static uint32_t read_word(uint64_t w) { return (uint32_t)(w * 0x9e3779b1u) ^ (uint32_t)(w >> 7); }

/* Records the read (`write` false) or write kernel over `bytes` of `buf` in windows. */
static vki_status record_mem(pk_bench *b, vki_stream *s, vki_kernel *k, bool write, vki_range buf,
                             uint64_t bytes, vki_range partials, uint32_t seed)
{
    const uint32_t threads = b->mem_groups * b->local;
    VKI_TRY(vki_stream_begin(s));
    for (uint64_t off = 0, w = 0; off < bytes; off += b->window, w++) {
        uint64_t size = min_u64(b->window, bytes - off);
        vki_range bind[2] = {vki_range_sub(buf, off, size), partials};
        vki_pc_peak_read rp = {.n = (uint32_t)(size / 16), .out_base = (uint32_t)(w * threads)};
        vki_pc_peak_write wp = {.n = (uint32_t)(size / 16), .first = (uint32_t)(off / 16),
                                .seed = seed};
        vki_dispatch d = {.kernel = k, .bindings = bind, .binding_count = write ? 1 : 2,
                          .push = write ? (const void *)&wp : (const void *)&rp,
                          .push_size = write ? sizeof wp : sizeof rp,
                          .groups = {b->mem_groups, 1, 1}};
        VKI_TRY(vki_stream_dispatch(s, &d));
    }
    return vki_stream_end(s);
}

/* Reads (or writes) `bytes` of a buffer filled from `words` (NULL: read_word), once (timing
 * NULL) or b->reps times. Read: *out_sum is the wrapping sum of the partials. Write: the words
 * sampled (or all, when out_words) are checked against the pattern. */
static int run_mem(pk_bench *b, bool write, const uint32_t *words, uint64_t bytes, uint32_t seed,
                   uint32_t *out_sum, uint32_t *out_words, double *out_us)
{
    int code = VKI_EXIT_OK;
    vki_kernel *k = NULL;
    vki_stream *s = NULL;
    const uint32_t threads = b->mem_groups * b->local;
    const uint64_t windows = vki_div_up(bytes, b->window);
    const uint64_t chunk_bytes = min_u64(8 * MIB, bytes);
    const uint64_t partial_bytes = windows * threads * 4;
    uint32_t *chunk = malloc(chunk_bytes > partial_bytes ? chunk_bytes : partial_bytes);
    vki_range buf, partials = {0};
    PK_OOM(chunk);
    if (windows > 64 || windows * threads > UINT32_MAX) {
        code = vki_app_failf("bench peak: %llu windows of %llu bytes are too many; use a larger "
                             "--window-mib or a smaller --copy-mib", (unsigned long long)windows,
                             (unsigned long long)b->window);
        goto fail;
    }
    PK_CHECK(make_kernel(b, write ? "peak_write" : "peak_read", write ? 1 : 2,
                         write ? sizeof(vki_pc_peak_write) : sizeof(vki_pc_peak_read), NULL, 0, 0,
                         &k), "creating a memory kernel");
    PK_CHECK(vki_arena_alloc(b->arena, bytes, 0, &buf), "allocating the buffer");
    if (!write) {
        PK_CHECK(vki_arena_alloc(b->arena, partial_bytes, 0, &partials),
                 "allocating the partial sums");
        uint32_t sum = 0;
        for (uint64_t off = 0; off < bytes; off += chunk_bytes) {
            uint64_t n = min_u64(chunk_bytes, bytes - off);
            const uint32_t *src = words ? words + off / 4 : chunk;
            for (uint64_t i = 0; i < n / 4; i++) {
                if (!words) chunk[i] = read_word(off / 4 + i);
                sum += src[i];
            }
            PK_CHECK(vki_device_upload(b->dev, buf, off, src, n), "filling the buffer");
        }
        *out_sum = sum; // the host's, compared below
    }
    vki_stream_desc sd = {.name = "bench peak memory", .timestamps = b->timed && out_us,
                          .max_timestamps = (uint32_t)windows};
    PK_CHECK(vki_stream_create(b->dev, &sd, &s), "creating a stream");
    PK_CHECK(record_mem(b, s, k, write, buf, bytes, partials, seed), "recording a memory kernel");
    double us = 0;
    // The warm-up of the timed runs, or the probe's one run.
    PK_CHECK(run_once(b, s, sd.timestamps, (uint32_t)windows, &us), "submit+wait");
    if (out_us)
        code = median_time(b, s, sd.timestamps, (uint32_t)windows, out_us);
    if (code != VKI_EXIT_OK) goto fail;

    if (!write) {
        PK_CHECK(vki_device_download(b->dev, partials, 0, chunk, partial_bytes),
                 "downloading the partial sums");
        uint32_t sum = 0;
        for (uint64_t i = 0; i < windows * threads; i++) sum += chunk[i];
        if (sum != *out_sum && out_us) {
            code = vki_app_failf("bench peak: read: the kernel's sum is %u, the buffer's %u", sum,
                                 *out_sum);
            goto fail;
        }
        *out_sum = sum;
    } else if (out_words) {
        PK_CHECK(vki_device_download(b->dev, buf, 0, out_words, bytes), "downloading the buffer");
    } else {
        // The start of every window and the very end: where a wrong offset or size shows.
        for (uint64_t w = 0; w <= windows; w++) {
            uint64_t n = min_u64(SAMPLE_BYTES, bytes);
            uint64_t off = w < windows ? w * b->window : bytes - n;
            PK_CHECK(vki_device_download(b->dev, buf, off, chunk, n), "downloading the buffer");
            for (uint64_t i = 0; i < n / 4; i++)
                if (chunk[i] != write_pattern(off / 4 + i, seed)) {
                    code = vki_app_failf("bench peak: write: word %llu is %u, expected %u",
                                         (unsigned long long)(off / 4 + i), chunk[i],
                                         write_pattern(off / 4 + i, seed));
                    goto fail;
                }
        }
    }
fail:
    vki_stream_destroy(s);
    vki_kernel_destroy(k);
    vki_arena_reset(b->arena);
    free(chunk);
    return code;
}

/* ---- Runtime figures (bench runtime) ------------------------------------------------------ */

static double json_number(const cJSON *o, const char *path)
{
    // "a.b.c" through objects; "transfer.0.x" indexes an array.
    char key[64];
    const char *p = path;
    while (o && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof key) return 0;
        memcpy(key, p, n);
        key[n] = 0;
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(key))
                             : cJSON_GetObjectItemCaseSensitive(o, key);
        p += n + (p[n] == '.');
    }
    return cJSON_IsNumber(o) ? o->valuedouble : 0;
}

static int runtime_figures(pk_bench *b, const vki_bench_opts *opts, vki_bench_peaks *pk)
{
    vki_bench_opts o = opts ? *opts : (vki_bench_opts){0};
    o.json = true; // quiet: its figures come back in JSON
    cJSON *rt = cJSON_CreateObject();
    if (!rt) return vki_app_failf("bench peak: out of host memory");
    int code = vki_bench_runtime(b->app, &o, rt);
    if (code == VKI_EXIT_OK) {
        pk->copy_gbs = json_number(rt, "copy.gbs");
        pk->upload_gbs = json_number(rt, "transfer.0.upload_gbs");
        pk->download_gbs = json_number(rt, "transfer.0.download_gbs");
        // A model is a chain of dependent ops: the dispatch that waits on the one before.
        pk->dispatch_us = json_number(rt, "dispatch.dependent.wall_us");
        pk->submit_us = json_number(rt, "round_trip.median_us");
    }
    cJSON_Delete(rt);
    return code;
}

/* ---- Measuring everything ----------------------------------------------------------------- */

/* Which peak runs now and how many are left, on stderr and only on a terminal (also while
 * `ops` or `llm` measure the peaks for their roofs: the longest wait), so that piped output and
 * JSON on stdout stay clean. */
static void progress(const char *what, uint32_t *step, uint32_t steps)
{
    vki_bench_progress("peak", what, (*step)++, steps);
}

static int measure(vki_app *app, const vki_bench_opts *opts, bool quiet, pk_result *r)
{
    pk_bench bench, *b = &bench;
    memset(r, 0, sizeof *r);
    int code = bench_init(b, app, opts, quiet);
    if (code != VKI_EXIT_OK) return code;
    const vki_profile *p = b->prof;
    vki_bench_peaks *pk = &r->peaks;
    double us = 0;
    uint32_t sum = 0;
    r->reps = b->reps;
    r->threads = b->groups * b->local;
    r->mem_bytes = b->mem_bytes;
    r->window = b->window;
    if (b->mem_bytes == 0 || b->window == 0) {
        code = vki_app_failf("bench peak: the device's allocation or storage-range limit is "
                             "below 64 KiB");
        goto done;
    }

    uint32_t step = 0;
    uint32_t steps = 4 + p->fp16 + p->int_dot + coopmat_usable(p); // fp32, read, write, runtime
    progress("fp32 FMA", &step, steps);
    if ((code = peak_fma(b, false, &pk->fp32_gflops, &r->fma_iters[0])) != VKI_EXIT_OK) goto done;
    if (p->fp16) {
        progress("fp16 FMA", &step, steps);
        code = peak_fma(b, true, &pk->fp16_gflops, &r->fma_iters[1]);
        if (code != VKI_EXIT_OK) goto done;
        r->fp16 = true;
    }
    if (p->int_dot) {
        progress("int8 dot product", &step, steps);
        if ((code = peak_dot(b, &pk->int8_gops, &r->dot_iters)) != VKI_EXIT_OK) goto done;
        r->int8 = true;
    }
    if (coopmat_usable(p)) {
        progress("cooperative-matrix fp16", &step, steps);
        code = peak_coopmat(b, &pk->coopmat_fp16_gflops, &r->cm_iters);
        if (code != VKI_EXIT_OK) goto done;
        r->coopmat = true;
    }
    progress("memory read", &step, steps);
    code = run_mem(b, false, NULL, b->mem_bytes, 0, &sum, NULL, &us);
    if (code != VKI_EXIT_OK) goto done;
    pk->read_gbs = (double)b->mem_bytes / us / 1e3;
    progress("memory write", &step, steps);
    if ((code = run_mem(b, true, NULL, b->mem_bytes, 0x5bd1e995u, NULL, NULL, &us)) != VKI_EXIT_OK)
        goto done;
    pk->write_gbs = (double)b->mem_bytes / us / 1e3;
    progress("copy, transfers, dispatch and submit (bench runtime)", &step, steps);
    code = runtime_figures(b, opts, pk);
    vki_bench_progress("peak", NULL, steps, steps);
done:
    bench_done(b);
    return code;
}

int vki_bench_peaks_get(vki_app *app, const vki_bench_opts *opts, vki_bench_peaks *out)
{
    const vki_profile *p = vki_device_profile(app->device);
    char path[1024];
    vki_peaks_cache_path(p, path, sizeof path);
    if (vki_peaks_cache_read(p, path, out)) return VKI_EXIT_OK;
    pk_result r;
    int code = measure(app, opts, true, &r);
    if (code != VKI_EXIT_OK) return code;
    vki_peaks_cache_write(p, path, &r.peaks);
    *out = r.peaks;
    return VKI_EXIT_OK;
}

/* ---- bench peak --------------------------------------------------------------------------- */

static void print_row(const char *label, bool present, double value, const char *unit)
{
    int pad = 7 - (strcmp(unit, "µs") == 0 ? 2 : (int)strlen(unit));
    if (present)
        printf("  %-34s %12.2f %s%*s\n", label, value, unit, pad, "");
    else
        printf("  %-34s %12s\n", label, "unsupported");
}

int vki_bench_peak(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    const vki_profile *p = vki_device_profile(app->device);
    pk_result r;
    int code = measure(app, opts, opts->json, &r);
    if (code != VKI_EXIT_OK) return code;
    char path[1024];
    vki_peaks_cache_path(p, path, sizeof path);
    vki_peaks_cache_write(p, path, &r.peaks);

    const vki_bench_peaks *pk = &r.peaks;
    vki_peaks_json(pk, out);
    cJSON_AddStringToObject(out, "timed_by", p->timestamps ? "gpu" : "wall");
    cJSON_AddStringToObject(out, "cache_file", path);
    cJSON *cfg = cJSON_AddObjectToObject(out, "config");
    cJSON_AddNumberToObject(cfg, "reps", r.reps);
    cJSON_AddNumberToObject(cfg, "threads", r.threads);
    cJSON_AddNumberToObject(cfg, "fp32_iters", r.fma_iters[0]);
    cJSON_AddNumberToObject(cfg, "fp16_iters", r.fma_iters[1]);
    cJSON_AddNumberToObject(cfg, "int8_iters", r.dot_iters);
    cJSON_AddNumberToObject(cfg, "coopmat_iters", r.cm_iters);
    cJSON_AddStringToObject(cfg, "coopmat_extension",
                            !r.coopmat ? "none" : p->coopmat_khr ? "KHR" : "NV");
    cJSON_AddNumberToObject(cfg, "memory_size", (double)r.mem_bytes);
    cJSON_AddNumberToObject(cfg, "window_size", (double)r.window);
    if (opts->json) return VKI_EXIT_OK;

    char mem[32], win[32];
    printf("sizes: %u reps; %u threads for the compute peaks; memory %s in windows of %s%s\n\n",
           r.reps, r.threads, vki_bytes_string(r.mem_bytes, mem), vki_bytes_string(r.window, win),
           p->type == VKI_DEVICE_CPU ? " (smaller for a CPU device)" : "");

    printf("  %-34s %12s\n", "", "peak");
    print_row("fp32 vector FMA", true, pk->fp32_gflops, "GFLOP/s");
    print_row("fp16 vector FMA", r.fp16, pk->fp16_gflops, "GFLOP/s");
    print_row("int8 dot product (4x8 packed)", r.int8, pk->int8_gops, "GOP/s");
    print_row(!r.coopmat        ? "cooperative matrix fp16"
              : p->coopmat_khr ? "cooperative matrix fp16 (KHR)"
                               : "cooperative matrix fp16 (NV)",
              r.coopmat, pk->coopmat_fp16_gflops, "GFLOP/s");
    print_row("memory read", true, pk->read_gbs, "GB/s");
    print_row("memory write", true, pk->write_gbs, "GB/s");
    print_row("memory copy, read+write", true, pk->copy_gbs, "GB/s");
    print_row("upload (host -> device)", true, pk->upload_gbs, "GB/s");
    print_row("download (device -> host)", true, pk->download_gbs, "GB/s");
    print_row("one dependent dispatch", true, pk->dispatch_us, "µs");
    print_row("submit+wait round trip", true, pk->submit_us, "µs");
    printf("\nMedians; %s. GFLOP/s count 2 per FMA, GOP/s 2 per int8 multiply-add;\n"
           "GB/s = 10^9 bytes/s. Cached in %s\n",
           p->timestamps ? "GPU timestamps" : "wall clock (no timestamps on this device)", path);
    return VKI_EXIT_OK;
}

/* ---- Test hooks ---------------------------------------------------------------------------- */

static int probe_vector(vki_app *app, pk_kind kind, uint32_t groups, uint32_t iters,
                        const void *push, uint32_t push_size, void *out, uint32_t capacity,
                        uint32_t *out_count, uint32_t *out_local)
{
    pk_bench bench, *b = &bench;
    int code = bench_init(b, app, NULL, true);
    if (code != VKI_EXIT_OK) return code;
    if (kind == PK_FMA16 && !b->prof->fp16) code = vki_app_failf("bench peak: no fp16 arithmetic");
    if (kind == PK_DOT && !b->prof->int_dot)
        code = vki_app_failf("bench peak: no integer dot product");
    b->groups = groups ? groups : 1;
    uint32_t *words = NULL, threads = 0;
    if (code == VKI_EXIT_OK)
        code = run_vector(b, kind, iters, push, push_size, &words, &threads, NULL, NULL);
    if (code == VKI_EXIT_OK) {
        memcpy(out, words, (size_t)(threads < capacity ? threads : capacity) * 4);
        *out_count = threads;
        *out_local = b->local;
    }
    free(words);
    bench_done(b);
    return code;
}

int vki_peak_probe_fma(vki_app *app, bool fp16, uint32_t groups, uint32_t iters, float a, float b,
                       float *out, uint32_t capacity, uint32_t *out_count, uint32_t *out_local)
{
    vki_pc_peak_fma pc = {.iters = iters, .a = a, .b = b};
    return probe_vector(app, fp16 ? PK_FMA16 : PK_FMA32, groups, iters, &pc, sizeof pc, out,
                        capacity, out_count, out_local);
}

int vki_peak_probe_dot(vki_app *app, uint32_t groups, uint32_t iters, int32_t w, int32_t c,
                       int32_t *out, uint32_t capacity, uint32_t *out_count, uint32_t *out_local)
{
    vki_pc_peak_dot pc = {.iters = iters, .w = w, .c = c};
    return probe_vector(app, PK_DOT, groups, iters, &pc, sizeof pc, out, capacity, out_count,
                        out_local);
}

int vki_peak_probe_coopmat(vki_app *app, uint32_t groups, uint32_t iters, float a, float b,
                           float *out, uint64_t capacity, uint64_t *out_count)
{
    pk_bench bench;
    int code = bench_init(&bench, app, NULL, true);
    if (code != VKI_EXIT_OK) return code;
    float *vals = NULL;
    uint64_t elems = 0, subgroups = 0;
    vki_pc_peak_cm pc = {.a = a, .b = b};
    if (!coopmat_usable(bench.prof))
        code = vki_app_failf("bench peak: no cooperative matrices");
    else
        code = run_coopmat(&bench, groups ? groups : 1, pc, &iters, &vals, &elems, &subgroups,
                           NULL);
    if (code == VKI_EXIT_OK) {
        memcpy(out, vals, (size_t)(elems < capacity ? elems : capacity) * sizeof *out);
        *out_count = elems;
    }
    free(vals);
    bench_done(&bench);
    return code;
}

static int probe_mem(vki_app *app, bool write, const uint32_t *words, uint64_t n_words,
                     uint64_t window_bytes, uint32_t groups, uint32_t seed, uint32_t *out_sum,
                     uint32_t *out_words)
{
    pk_bench bench, *b = &bench;
    vki_bench_opts o = {.copy_bytes = n_words * 4, .window_bytes = window_bytes};
    if (n_words == 0 || n_words % 4)
        return vki_app_failf("bench peak: the word count must be a positive multiple of 4");
    int code = bench_init(b, app, &o, true);
    if (code != VKI_EXIT_OK) return code;
    b->mem_bytes = n_words * 4; // not rounded to windows: the tail is what a test looks at
    uint64_t window = window_bytes ? window_bytes : b->prof->max_storage_range;
    b->window = min_u64(window, b->prof->max_storage_range) / WINDOW_ALIGN * WINDOW_ALIGN;
    if (b->window == 0) b->window = n_words * 4;
    b->mem_groups = groups ? groups : 1;
    code = run_mem(b, write, words, b->mem_bytes, seed, out_sum, out_words, NULL);
    bench_done(b);
    return code;
}

int vki_peak_probe_read(vki_app *app, const uint32_t *words, uint64_t n_words,
                        uint64_t window_bytes, uint32_t groups, uint32_t *out_sum)
{
    return probe_mem(app, false, words, n_words, window_bytes, groups, 0, out_sum, NULL);
}

int vki_peak_probe_write(vki_app *app, uint64_t n_words, uint64_t window_bytes, uint32_t groups,
                         uint32_t seed, uint32_t *out_words)
{
    return probe_mem(app, true, NULL, n_words, window_bytes, groups, seed, NULL, out_words);
}
