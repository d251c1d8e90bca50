/* `vkinfer bench runtime`: what the runtime itself costs on a device, below any op.
 *
 *  1. submit+wait round trip: one tiny add_u32 dispatch, re-submitted and waited N times;
 *  2. one small dispatch: 1000 add_u32 dispatches of 64 elements, dependent (one buffer,
 *     barriers between) and independent (disjoint slices, no barriers), wall and GPU time;
 *  3. upload and download bandwidth through the staging path, best of N;
 *  4. device copy bandwidth with copy_u32, split into binding windows of at most
 *     maxStorageBufferRange (128 MiB on lavapipe), bytes read + written.
 *
 * Every measurement also checks its result, so a fast wrong runtime cannot pass for a fast one.
 * GB/s are 10^9 bytes per second; times are CPU wall clock (CLOCK_MONOTONIC) unless "gpu". */
#include "apps_internal.h"
#include "vki_abi.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1ull << 20)
#define WAIT_NS (60ull * 1000 * 1000 * 1000) // a hung device fails the bench, not hangs it
#define DISPATCHES 1000u
#define ADD_N 64u             // elements per add_u32 dispatch: one workgroup's worth
#define COPY_ALIGN (64u << 10) // window granularity; above any minStorageBufferOffsetAlignment
#define SAMPLE_BYTES (64u << 10) // bytes checked at the start of each copy window and at the end

typedef struct rt_config {
    uint32_t reps;         // round trips and best-of-N transfers
    uint32_t replays;      // timed replays of the 1000-dispatch and copy streams
    uint64_t transfer[2];  // large, small
    uint64_t copy;         // bytes per copy (source and destination each)
    uint64_t window;       // bytes bound per copy dispatch
    uint32_t windows;
    bool reduced;          // some default was taken, and made smaller for a CPU device
} rt_config;

typedef struct rt_results {
    double rt_median_us, rt_p90_us, rt_min_us;
    double dep_wall_us, dep_gpu_us;  // per dispatch; gpu < 0: not timed
    double ind_wall_us, ind_gpu_us;
    double up_gbs[2], down_gbs[2];
    double copy_wall_gbs, copy_gpu_gbs; // gpu < 0: not timed
} rt_results;

typedef struct rt_bench {
    vki_app *app;
    vki_device *dev;
    const vki_profile *prof;
    vki_kernel *add, *copy;
    uint32_t add_local, copy_local; // local size x after specialisation
    rt_config cfg;
    rt_results res;
} rt_bench;

/* The one propagation macro: report `what` with the runtime's detail, then clean up. */
#define RT_CHECK(call, what)                                                                   \
    do {                                                                                       \
        vki_status rt_status_ = (call);                                                        \
        if (rt_status_ != VKI_OK) {                                                            \
            code = vki_app_fail(b->app, "bench runtime: " what, rt_status_);                   \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

#define RT_OOM(ptr)                                                                            \
    do {                                                                                       \
        if (!(ptr)) {                                                                          \
            code = vki_app_failf("bench runtime: out of host memory");                         \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

static double min_d(double a, double b) { return a < b ? a : b; }
static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* A recognisable, never-constant pattern: word k of the buffer, wherever it is copied. */
static void fill_pattern(uint32_t *dst, uint64_t first_word, uint64_t words)
{
    for (uint64_t i = 0; i < words; i++)
        dst[i] = (uint32_t)((first_word + i) * 2654435761u) ^ 0x5bd1e995u;
}

/* Workgroup grid for `groups` workgroups: the kernels flatten a 2-D grid, so counts beyond
 * maxComputeWorkGroupCount[0] spill into y. False when even that is too small. */
static bool grid_for(const vki_profile *p, uint64_t groups, uint32_t out[3])
{
    uint64_t max_x = p->max_workgroup_count[0] ? p->max_workgroup_count[0] : 65535;
    uint64_t x = groups == 0 ? 1 : min_u64(groups, max_x);
    uint64_t y = vki_div_up(groups, x);
    if (y > (p->max_workgroup_count[1] ? p->max_workgroup_count[1] : 65535)) return false;
    out[0] = (uint32_t)x;
    out[1] = (uint32_t)y;
    out[2] = 1;
    return true;
}

static vki_status record_add(rt_bench *b, vki_stream *s, vki_range r)
{
    vki_pc_add_u32 pc = {.n = ADD_N, .value = 1};
    vki_dispatch d = {.kernel = b->add, .bindings = &r, .binding_count = 1, .push = &pc,
                      .push_size = sizeof pc,
                      .groups = {(uint32_t)vki_div_up(ADD_N, b->add_local), 1, 1}};
    return vki_stream_dispatch(s, &d);
}

static vki_status submit_wait(rt_bench *b, vki_stream *s, double *out_us)
{
    uint64_t ticket = 0;
    double t0 = vki_now_us();
    VKI_TRY(vki_stream_submit(s, &ticket));
    VKI_TRY(vki_device_wait(b->dev, ticket, WAIT_NS));
    *out_us = vki_now_us() - t0;
    return VKI_OK;
}

/* Sum of the GPU times of the last submission's timed dispatches; false when none were timed. */
static vki_status gpu_total(vki_stream *s, double *scratch, uint32_t capacity, double *out_us,
                            bool *out_timed)
{
    uint32_t count = 0;
    VKI_TRY(vki_stream_timings(s, scratch, capacity, &count));
    double sum = 0;
    for (uint32_t i = 0; i < count; i++) sum += scratch[i];
    *out_us = sum;
    *out_timed = count > 0;
    return VKI_OK;
}

static int bench_round_trip(rt_bench *b)
{
    int code = VKI_EXIT_OK;
    vki_arena *arena = NULL;
    vki_stream *s = NULL;
    uint32_t data[ADD_N] = {0};
    vki_range buf;
    double *samples = malloc(b->cfg.reps * sizeof *samples);
    RT_OOM(samples);

    RT_CHECK(vki_arena_create(b->dev, &(vki_arena_desc){.kind = VKI_ARENA_ACTIVATIONS,
                                                        .name = "bench round trip"}, &arena),
             "creating an arena");
    RT_CHECK(vki_arena_alloc(arena, sizeof data, 0, &buf), "allocating 256 bytes");
    RT_CHECK(vki_device_upload(b->dev, buf, 0, data, sizeof data), "uploading zeros");
    RT_CHECK(vki_stream_create(b->dev, &(vki_stream_desc){.name = "bench round trip"}, &s),
             "creating a stream");
    RT_CHECK(vki_stream_begin(s), "beginning a recording");
    RT_CHECK(record_add(b, s, buf), "recording add_u32");
    RT_CHECK(vki_stream_end(s), "ending a recording");
    // Submission 0 warms up (first-use costs in the driver); the others are timed.
    for (uint32_t r = 0; r <= b->cfg.reps; r++) {
        double us = 0;
        RT_CHECK(submit_wait(b, s, &us), "submit+wait");
        if (r > 0) samples[r - 1] = us;
    }
    RT_CHECK(vki_device_download(b->dev, buf, 0, data, sizeof data), "downloading the result");
    for (uint32_t i = 0; i < ADD_N; i++)
        if (data[i] != b->cfg.reps + 1) {
            code = vki_app_failf("bench runtime: round trip: element %u is %u after %u "
                                 "submissions of +1", i, data[i], b->cfg.reps + 1);
            goto fail;
        }
    b->res.rt_median_us = vki_percentile(samples, b->cfg.reps, 0.5);
    b->res.rt_p90_us = vki_percentile(samples, b->cfg.reps, 0.9);
    b->res.rt_min_us = samples[0]; // sorted by vki_percentile
fail:
    vki_stream_destroy(s);
    vki_arena_destroy(arena);
    free(samples);
    return code;
}

/* Records 1000 add_u32 dispatches. Dependent: all on one buffer, so each must see the
 * previous one's writes (a barrier between each pair). Independent: each on its own slice,
 * bound at an offset aligned to minStorageBufferOffsetAlignment, no barriers: what the driver
 * may overlap. */
static vki_status record_dispatches(rt_bench *b, vki_stream *s, vki_range buf, bool dependent,
                                    uint64_t stride)
{
    VKI_TRY(vki_stream_begin(s));
    for (uint32_t i = 0; i < DISPATCHES; i++) {
        vki_range r = dependent ? buf : vki_range_sub(buf, i * stride, ADD_N * sizeof(uint32_t));
        VKI_TRY(record_add(b, s, r));
        if (dependent && i + 1 < DISPATCHES) VKI_TRY(vki_stream_barrier(s));
    }
    return vki_stream_end(s);
}

/* Replays `s` (after one warm-up submission) and keeps the best wall time and, when `timed`,
 * the best sum of GPU times; *out_gpu_us stays negative when nothing was timed. */
static vki_status replay_best(rt_bench *b, vki_stream *s, bool timed, double *scratch,
                              uint32_t capacity, double *out_wall_us, double *out_gpu_us)
{
    *out_wall_us = DBL_MAX;
    *out_gpu_us = -1.0;
    for (uint32_t r = 0; r <= b->cfg.replays; r++) {
        double wall = 0, gpu = 0;
        bool has_gpu = false;
        VKI_TRY(submit_wait(b, s, &wall));
        if (timed) VKI_TRY(gpu_total(s, scratch, capacity, &gpu, &has_gpu));
        if (r == 0) continue;
        *out_wall_us = min_d(*out_wall_us, wall);
        if (has_gpu && (*out_gpu_us < 0 || gpu < *out_gpu_us)) *out_gpu_us = gpu;
    }
    return VKI_OK;
}

/* The cost of one small dispatch: the best replay of 1000 divided by 1000. Wall time comes
 * from a stream without timestamps (a timestamp query can serialise work: lavapipe waits for
 * idle at each), GPU time from a second, timed recording of the same work. */
static int bench_dispatch(rt_bench *b, bool dependent, double *out_wall_us, double *out_gpu_us)
{
    int code = VKI_EXIT_OK;
    vki_arena *arena = NULL;
    vki_stream *plain = NULL, *timed = NULL;
    const uint64_t slice = ADD_N * sizeof(uint32_t);
    const uint64_t align = b->prof->storage_align ? b->prof->storage_align : 1;
    const uint64_t stride = dependent ? 0 : vki_div_up(slice, align) * align;
    const uint64_t bytes = dependent ? slice : stride * DISPATCHES;
    uint32_t *host = calloc(1, bytes);
    double *timings = malloc(DISPATCHES * sizeof *timings);
    vki_range buf;
    RT_OOM(host);
    RT_OOM(timings);

    RT_CHECK(vki_arena_create(b->dev, &(vki_arena_desc){.kind = VKI_ARENA_ACTIVATIONS,
                                                        .name = "bench dispatch"}, &arena),
             "creating an arena");
    RT_CHECK(vki_arena_alloc(arena, bytes, 0, &buf), "allocating the dispatch buffer");
    RT_CHECK(vki_device_upload(b->dev, buf, 0, host, bytes), "uploading zeros");
    RT_CHECK(vki_stream_create(b->dev, &(vki_stream_desc){.name = "bench dispatch"}, &plain),
             "creating a stream");
    RT_CHECK(record_dispatches(b, plain, buf, dependent, stride),
             "recording 1000 add_u32 dispatches");
    double gpu = -1.0, unused_wall = 0;
    RT_CHECK(replay_best(b, plain, false, NULL, 0, out_wall_us, &gpu), "replaying 1000 dispatches");
    uint32_t streams = 1;
    if (b->prof->timestamps) {
        vki_stream_desc sd = {.name = "bench dispatch timed", .timestamps = true,
                              .max_timestamps = DISPATCHES};
        RT_CHECK(vki_stream_create(b->dev, &sd, &timed), "creating a timed stream");
        RT_CHECK(record_dispatches(b, timed, buf, dependent, stride),
                 "recording 1000 timed add_u32 dispatches");
        RT_CHECK(replay_best(b, timed, true, timings, DISPATCHES, &unused_wall, &gpu),
                 "replaying 1000 timed dispatches");
        streams = 2;
    }

    RT_CHECK(vki_device_download(b->dev, buf, 0, host, bytes), "downloading the result");
    const uint32_t submissions = streams * (b->cfg.replays + 1);
    for (uint64_t w = 0; w < bytes / sizeof(uint32_t); w++) {
        // Dependent: every dispatch added 1 to the same elements. Independent: each slice got
        // +1 per submission and the alignment padding between slices stays 0.
        bool in_slice = dependent || (w * sizeof(uint32_t)) % stride < slice;
        uint32_t want = !in_slice ? 0 : dependent ? submissions * DISPATCHES : submissions;
        if (host[w] != want) {
            code = vki_app_failf("bench runtime: %s dispatches: word %llu is %u, expected %u",
                                 dependent ? "dependent" : "independent", (unsigned long long)w,
                                 host[w], want);
            goto fail;
        }
    }
    *out_wall_us /= DISPATCHES;
    *out_gpu_us = gpu > 0 ? gpu / DISPATCHES : -1.0;
fail:
    vki_stream_destroy(timed);
    vki_stream_destroy(plain);
    vki_arena_destroy(arena);
    free(timings);
    free(host);
    return code;
}

static int bench_transfer(rt_bench *b)
{
    int code = VKI_EXIT_OK;
    vki_arena *arena = NULL;
    const uint64_t large = b->cfg.transfer[0];
    uint32_t *src = malloc(large), *dst = malloc(large);
    vki_range buf;
    RT_OOM(src);
    RT_OOM(dst);
    fill_pattern(src, 0, large / sizeof(uint32_t));

    RT_CHECK(vki_arena_create(b->dev, &(vki_arena_desc){.kind = VKI_ARENA_ACTIVATIONS,
                                                        .name = "bench transfer"}, &arena),
             "creating an arena");
    RT_CHECK(vki_arena_alloc(arena, large, 0, &buf), "allocating the transfer buffer");
    for (int k = 0; k < 2; k++) {
        const uint64_t size = b->cfg.transfer[k];
        double best_up = DBL_MAX, best_down = DBL_MAX;
        memset(dst, 0, size);
        for (uint32_t r = 0; r < b->cfg.reps; r++) {
            double t0 = vki_now_us();
            RT_CHECK(vki_device_upload(b->dev, buf, 0, src, size), "uploading");
            best_up = min_d(best_up, vki_now_us() - t0);
        }
        for (uint32_t r = 0; r < b->cfg.reps; r++) {
            double t0 = vki_now_us();
            RT_CHECK(vki_device_download(b->dev, buf, 0, dst, size), "downloading");
            best_down = min_d(best_down, vki_now_us() - t0);
        }
        if (memcmp(src, dst, size) != 0) {
            uint64_t w = 0;
            while (src[w] == dst[w]) w++;
            code = vki_app_failf("bench runtime: download of %llu bytes differs from the upload "
                                 "at byte %llu", (unsigned long long)size,
                                 (unsigned long long)(w * sizeof(uint32_t)));
            goto fail;
        }
        // bytes per microsecond = MB/s; /1e3 = GB/s. A 0 µs best (coarse clock) stays finite.
        b->res.up_gbs[k] = (double)size / (best_up > 0 ? best_up : 1e-3) / 1e3;
        b->res.down_gbs[k] = (double)size / (best_down > 0 ? best_down : 1e-3) / 1e3;
    }
fail:
    vki_arena_destroy(arena);
    free(dst);
    free(src);
    return code;
}

/* Fills `src` with the pattern and zeroes the sampled regions of `dst`, through a bounded host
 * chunk rather than a copy-sized host buffer. */
static vki_status prepare_copy(rt_bench *b, vki_range src, vki_range dst, uint32_t *chunk,
                               uint64_t chunk_bytes)
{
    for (uint64_t off = 0; off < b->cfg.copy; off += chunk_bytes) {
        uint64_t n = min_u64(chunk_bytes, b->cfg.copy - off);
        fill_pattern(chunk, off / sizeof(uint32_t), n / sizeof(uint32_t));
        VKI_TRY(vki_device_upload(b->dev, src, off, chunk, n));
    }
    memset(chunk, 0, SAMPLE_BYTES);
    for (uint32_t w = 0; w < b->cfg.windows; w++) {
        uint64_t off = w * b->cfg.window;
        uint64_t n = min_u64(SAMPLE_BYTES, b->cfg.copy - off);
        VKI_TRY(vki_device_upload(b->dev, dst, off, chunk, n));
    }
    uint64_t tail = min_u64(SAMPLE_BYTES, b->cfg.copy);
    return vki_device_upload(b->dev, dst, b->cfg.copy - tail, chunk, tail);
}

/* Checks one sampled region of `dst` against the pattern; false (with *out_word) on a
 * mismatch. */
static vki_status check_copy_region(rt_bench *b, vki_range dst, uint64_t off, uint64_t n,
                                    uint32_t *got, uint32_t *want, bool *out_ok,
                                    uint64_t *out_word)
{
    VKI_TRY(vki_device_download(b->dev, dst, off, got, n));
    fill_pattern(want, off / sizeof(uint32_t), n / sizeof(uint32_t));
    *out_ok = memcmp(got, want, n) == 0;
    for (uint64_t w = 0; !*out_ok && w < n / sizeof(uint32_t); w++)
        if (got[w] != want[w]) {
            *out_word = off / sizeof(uint32_t) + w;
            break;
        }
    return VKI_OK;
}

static int bench_copy(rt_bench *b)
{
    int code = VKI_EXIT_OK;
    vki_arena *arena = NULL;
    vki_stream *s = NULL;
    const rt_config *c = &b->cfg;
    const uint64_t chunk_bytes = min_u64(8 * MIB, c->copy);
    uint32_t *chunk = malloc(chunk_bytes);
    uint32_t *want = malloc(SAMPLE_BYTES);
    double *timings = malloc(c->windows * sizeof *timings);
    vki_range src, dst;
    RT_OOM(chunk);
    RT_OOM(want);
    RT_OOM(timings);

    RT_CHECK(vki_arena_create(b->dev, &(vki_arena_desc){.kind = VKI_ARENA_ACTIVATIONS,
                                                        .name = "bench copy"}, &arena),
             "creating an arena");
    RT_CHECK(vki_arena_alloc(arena, c->copy, 0, &src), "allocating the copy source");
    RT_CHECK(vki_arena_alloc(arena, c->copy, 0, &dst), "allocating the copy destination");
    RT_CHECK(prepare_copy(b, src, dst, chunk, chunk_bytes), "filling the copy source");

    vki_stream_desc sd = {.name = "bench copy", .timestamps = b->prof->timestamps,
                          .max_timestamps = c->windows};
    RT_CHECK(vki_stream_create(b->dev, &sd, &s), "creating a timed stream");
    RT_CHECK(vki_stream_begin(s), "beginning a recording");
    // Windows are disjoint in both buffers, so no barriers are needed between them.
    for (uint32_t w = 0; w < c->windows; w++) {
        uint64_t off = w * c->window, size = min_u64(c->window, c->copy - off);
        vki_range bind[2] = {vki_range_sub(src, off, size), vki_range_sub(dst, off, size)};
        vki_pc_copy_u32 pc = {.n = (uint32_t)(size / 16)}; // 16-byte (uvec4) elements
        vki_dispatch d = {.kernel = b->copy, .bindings = bind, .binding_count = 2, .push = &pc,
                          .push_size = sizeof pc};
        if (!grid_for(b->prof, vki_div_up(pc.n, b->copy_local), d.groups)) {
            code = vki_app_failf("bench runtime: %llu workgroups do not fit the device's "
                                 "workgroup count limits; use a smaller --window-mib",
                                 (unsigned long long)vki_div_up(pc.n, b->copy_local));
            goto fail;
        }
        RT_CHECK(vki_stream_dispatch(s, &d), "recording copy_u32");
    }
    RT_CHECK(vki_stream_end(s), "ending a recording");

    double best_wall = 0, best_gpu = -1.0;
    RT_CHECK(replay_best(b, s, b->prof->timestamps, timings, c->windows, &best_wall, &best_gpu),
             "replaying the copy");

    // The start of every window and the very end: where a wrong offset or size shows.
    for (uint32_t w = 0; w <= c->windows; w++) {
        uint64_t n = min_u64(SAMPLE_BYTES, c->copy);
        uint64_t off = w < c->windows ? w * c->window : c->copy - n;
        n = min_u64(n, c->copy - off);
        bool ok = true;
        uint64_t word = 0;
        RT_CHECK(check_copy_region(b, dst, off, n, chunk, want, &ok, &word),
                 "downloading the copy");
        if (!ok) {
            code = vki_app_failf("bench runtime: copy: destination word %llu (window %llu) "
                                 "differs from the source", (unsigned long long)word,
                                 (unsigned long long)(word * 4 / c->window));
            goto fail;
        }
    }
    const double moved = 2.0 * (double)c->copy; // read + written
    b->res.copy_wall_gbs = moved / best_wall / 1e3;
    b->res.copy_gpu_gbs = best_gpu > 0 ? moved / best_gpu / 1e3 : -1.0;
fail:
    vki_stream_destroy(s);
    vki_arena_destroy(arena);
    free(timings);
    free(want);
    free(chunk);
    return code;
}

/* Sizes: the request, else defaults by device type (a CPU device gets smaller ones so the
 * suite stays well under a minute on lavapipe), each capped by what one allocation and one
 * binding may hold on this device. */
static int configure(rt_bench *b, const vki_bench_opts *opts)
{
    const vki_profile *p = b->prof;
    rt_config *c = &b->cfg;
    const bool cpu = p->type == VKI_DEVICE_CPU;
    c->reduced = cpu && !(opts->reps && opts->transfer_bytes && opts->copy_bytes);
    c->reps = opts->reps ? opts->reps : cpu ? 10 : 20;
    c->replays = c->reps < 10 ? c->reps : 10;

    uint64_t max_buffer = p->max_buffer_size ? p->max_buffer_size : UINT64_MAX;
    uint64_t cap = min_u64(p->max_allocation, max_buffer);
    cap = cap / MIB * MIB;
    if (cap < MIB) return vki_app_failf("bench runtime: the device's allocation limit is "
                                        "below 1 MiB");
    uint64_t transfer = opts->transfer_bytes ? opts->transfer_bytes : (cpu ? 16 : 64) * MIB;
    c->transfer[0] = min_u64(transfer, cap);
    c->transfer[1] = c->transfer[0] / 8;
    c->copy = min_u64(opts->copy_bytes ? opts->copy_bytes : (cpu ? 64 : 256) * MIB, cap);

    uint64_t window = opts->window_bytes ? opts->window_bytes : p->max_storage_range;
    window = min_u64(min_u64(window, p->max_storage_range), c->copy);
    window = window / COPY_ALIGN * COPY_ALIGN;
    if (window == 0)
        return vki_app_failf("bench runtime: the device's max storage buffer range (%llu "
                             "bytes) is below %u", (unsigned long long)p->max_storage_range,
                             COPY_ALIGN);
    c->window = window;
    c->windows = (uint32_t)vki_div_up(c->copy, window);
    return VKI_EXIT_OK;
}

/* One table row. Units are padded by hand: printf pads bytes, and "µs" is 3 bytes wide in
 * UTF-8 but 2 columns on screen. */
static void print_row(const char *label, double wall, const char *unit, double gpu)
{
    int pad = 5 - (strcmp(unit, "µs") == 0 ? 2 : (int)strlen(unit));
    printf("  %-36s %10.2f %s%*s", label, wall, unit, pad, "");
    if (gpu >= 0)
        printf("%10.2f %s\n", gpu, unit);
    else
        printf("%10s\n", "-");
}

static void print_table(const rt_bench *b)
{
    const rt_config *c = &b->cfg;
    const rt_results *r = &b->res;
    char t0[32], t1[32], cp[32], win[32], label[64];
    printf("sizes: %u reps (%u stream replays); add_u32 n=%u, %u dispatches; transfers %s and %s;\n"
           "       copy %s in %u window%s of %s%s\n\n",
           c->reps, c->replays, ADD_N, DISPATCHES, vki_bytes_string(c->transfer[0], t0),
           vki_bytes_string(c->transfer[1], t1), vki_bytes_string(c->copy, cp), c->windows,
           c->windows == 1 ? "" : "s", vki_bytes_string(c->window, win),
           c->reduced ? " (smaller defaults for a CPU device)" : "");
    printf("  %-36s %10s %5s %9s\n", "", "wall", "", "gpu");
    print_row("submit+wait round trip, median", r->rt_median_us, "µs", -1);
    print_row("submit+wait round trip, p90", r->rt_p90_us, "µs", -1);
    print_row("one dispatch, dependent + barrier", r->dep_wall_us, "µs", r->dep_gpu_us);
    print_row("one dispatch, independent slices", r->ind_wall_us, "µs", r->ind_gpu_us);
    for (int k = 0; k < 2; k++) {
        snprintf(label, sizeof label, "upload %s", vki_bytes_string(c->transfer[k], t0));
        print_row(label, r->up_gbs[k], "GB/s", -1);
        snprintf(label, sizeof label, "download %s", vki_bytes_string(c->transfer[k], t0));
        print_row(label, r->down_gbs[k], "GB/s", -1);
    }
    snprintf(label, sizeof label, "device copy %s, read+write", cp);
    print_row(label, r->copy_wall_gbs, "GB/s", r->copy_gpu_gbs);
    printf("\nGB/s = 10^9 bytes/s; wall = CPU clock around submit+wait, gpu = timestamps%s.\n",
           b->prof->timestamps ? "" : " (not supported on this device)");
}

static void emit_json(const rt_bench *b, cJSON *out)
{
    const rt_config *c = &b->cfg;
    const rt_results *r = &b->res;
    cJSON_AddNumberToObject(out, "reps", c->reps);
    cJSON_AddBoolToObject(out, "reduced_sizes_for_cpu", c->reduced);

    cJSON *rt = cJSON_AddObjectToObject(out, "round_trip");
    cJSON_AddNumberToObject(rt, "samples", c->reps);
    vki_json_add_measure(rt, "median_us", r->rt_median_us);
    vki_json_add_measure(rt, "p90_us", r->rt_p90_us);
    vki_json_add_measure(rt, "min_us", r->rt_min_us);

    cJSON *d = cJSON_AddObjectToObject(out, "dispatch");
    cJSON_AddNumberToObject(d, "count", DISPATCHES);
    cJSON_AddNumberToObject(d, "elements", ADD_N);
    cJSON_AddNumberToObject(d, "replays", c->replays);
    cJSON *dep = cJSON_AddObjectToObject(d, "dependent");
    vki_json_add_measure(dep, "wall_us", r->dep_wall_us);
    vki_json_add_opt(dep, "gpu_us", r->dep_gpu_us >= 0, r->dep_gpu_us);
    cJSON *ind = cJSON_AddObjectToObject(d, "independent");
    vki_json_add_measure(ind, "wall_us", r->ind_wall_us);
    vki_json_add_opt(ind, "gpu_us", r->ind_gpu_us >= 0, r->ind_gpu_us);

    cJSON *tr = cJSON_AddArrayToObject(out, "transfer");
    for (int k = 0; k < 2; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "bytes", (double)c->transfer[k]);
        vki_json_add_measure(t, "upload_gbs", r->up_gbs[k]);
        vki_json_add_measure(t, "download_gbs", r->down_gbs[k]);
        cJSON_AddItemToArray(tr, t);
    }

    cJSON *cp = cJSON_AddObjectToObject(out, "copy");
    bool gpu = r->copy_gpu_gbs >= 0;
    cJSON_AddNumberToObject(cp, "bytes", (double)c->copy);
    cJSON_AddNumberToObject(cp, "window_bytes", (double)c->window);
    cJSON_AddNumberToObject(cp, "windows", c->windows);
    vki_json_add_measure(cp, "gbs", gpu ? r->copy_gpu_gbs : r->copy_wall_gbs);
    cJSON_AddStringToObject(cp, "timed_by", gpu ? "gpu" : "wall");
    vki_json_add_measure(cp, "wall_gbs", r->copy_wall_gbs);
    vki_json_add_opt(cp, "gpu_gbs", gpu, r->copy_gpu_gbs);
}

int vki_bench_runtime(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    rt_bench bench = {.app = app, .dev = app->device, .prof = vki_device_profile(app->device)};
    rt_bench *b = &bench;
    int code = configure(b, opts);
    if (code != VKI_EXIT_OK) return code;

    RT_CHECK(vki_kernel_create(b->dev, &(vki_kernel_desc){.name = "add_u32", .binding_count = 1,
                                                          .push_size = sizeof(vki_pc_add_u32)},
                               &b->add),
             "creating kernel add_u32");
    RT_CHECK(vki_kernel_create(b->dev, &(vki_kernel_desc){.name = "copy_u32", .binding_count = 2,
                                                          .push_size = sizeof(vki_pc_copy_u32)},
                               &b->copy),
             "creating kernel copy_u32");
    uint32_t local[3];
    vki_kernel_local_size(b->add, local);
    b->add_local = local[0] ? local[0] : 1;
    vki_kernel_local_size(b->copy, local);
    b->copy_local = local[0] ? local[0] : 1;

    if ((code = bench_round_trip(b)) != VKI_EXIT_OK) goto fail;
    if ((code = bench_dispatch(b, true, &b->res.dep_wall_us, &b->res.dep_gpu_us)) != VKI_EXIT_OK)
        goto fail;
    if ((code = bench_dispatch(b, false, &b->res.ind_wall_us, &b->res.ind_gpu_us)) != VKI_EXIT_OK)
        goto fail;
    if ((code = bench_transfer(b)) != VKI_EXIT_OK) goto fail;
    if ((code = bench_copy(b)) != VKI_EXIT_OK) goto fail;

    emit_json(b, out);
    if (!opts->json) print_table(b);
fail:
    vki_kernel_destroy(b->copy);
    vki_kernel_destroy(b->add);
    return code;
}

int vki_bench_copy_gbs(vki_app *app, const vki_bench_opts *opts, double *out_gbs)
{
    rt_bench bench = {.app = app, .dev = app->device, .prof = vki_device_profile(app->device)};
    rt_bench *b = &bench;
    int code = configure(b, opts);
    if (code != VKI_EXIT_OK) return code;
    RT_CHECK(vki_kernel_create(b->dev, &(vki_kernel_desc){.name = "copy_u32", .binding_count = 2,
                                                          .push_size = sizeof(vki_pc_copy_u32)},
                               &b->copy),
             "creating kernel copy_u32");
    uint32_t local[3];
    vki_kernel_local_size(b->copy, local);
    b->copy_local = local[0] ? local[0] : 1;
    if ((code = bench_copy(b)) != VKI_EXIT_OK) goto fail;
    *out_gbs = b->res.copy_gpu_gbs > 0 ? b->res.copy_gpu_gbs : b->res.copy_wall_gbs;
fail:
    vki_kernel_destroy(b->copy);
    return code;
}
