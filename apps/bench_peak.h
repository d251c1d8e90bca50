/* Inside `vkinfer bench peak`: test hooks of bench_peak.c (each peak kernel run once on small
 * sizes, with its raw output, so that tests can check what the kernels compute against their
 * own reference), and the peaks' cache file (bench_peak_cache.c). Not for the commands. */
#ifndef VKI_BENCH_PEAK_H
#define VKI_BENCH_PEAK_H

#include "apps_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* peak_fma_f32 / peak_fma_f16 (abi_peak.h) on `groups` workgroups, `iters` iterations, a and b:
 * out[t] for every thread t, *out_count = groups * local size (at most capacity written).
 * *out_local receives the local size. VKI_EXIT_FAILURE when fp16 is asked for and the device
 * lacks fp16 arithmetic. Returns an exit code, having printed why on failure. */
int vki_peak_probe_fma(vki_app *app, bool fp16, uint32_t groups, uint32_t iters, float a, float b,
                       float *out, uint32_t capacity, uint32_t *out_count, uint32_t *out_local);

/* peak_dot: as vki_peak_probe_fma, with the packed int8 weights w and the addend c. */
int vki_peak_probe_dot(vki_app *app, uint32_t groups, uint32_t iters, int32_t w, int32_t c,
                       int32_t *out, uint32_t capacity, uint32_t *out_count, uint32_t *out_local);

/* peak_coopmat_f16 on `groups` workgroups of 128 threads with the profile's fragment shape:
 * every subgroup's M x N block (row-major, subgroup after subgroup), *out_count elements (at
 * most capacity written). VKI_EXIT_FAILURE where the device has no cooperative matrices. */
int vki_peak_probe_coopmat(vki_app *app, uint32_t groups, uint32_t iters, float a, float b,
                           float *out, uint64_t capacity, uint64_t *out_count);

/* peak_read over `n_words` 32-bit words (a multiple of 4) uploaded from `words`, bound in
 * windows of `window_bytes` (a multiple of 64 KiB; 0: the device's limit), `groups`
 * workgroups: the wrapping sum of every thread's partial sum in *out_sum. */
int vki_peak_probe_read(vki_app *app, const uint32_t *words, uint64_t n_words,
                        uint64_t window_bytes, uint32_t groups, uint32_t *out_sum);

/* peak_write over `n_words` words (a multiple of 4) with `seed`, windows and groups as above:
 * the buffer's words in out_words[n_words]. */
int vki_peak_probe_write(vki_app *app, uint64_t n_words, uint64_t window_bytes, uint32_t groups,
                         uint32_t seed, uint32_t *out_words);

/* The peaks' cache file of this device: <cache folder>/peaks-<vendor>-<device>.json, the cache
 * folder being the pipeline cache's ($XDG_CACHE_HOME/vkinfer, else ~/.cache/vkinfer;
 * %LOCALAPPDATA%\vkinfer on Windows). Returns buf. */
const char *vki_peaks_cache_path(const vki_profile *p, char *buf, size_t size);

/* The cache file at `path` (bench_peak_cache.c) into *out: false, *out untouched, when it is
 * absent, not a regular file, corrupt, or for another device, driver, vkinfer or feature set. */
bool vki_peaks_cache_read(const vki_profile *p, const char *path, vki_bench_peaks *out);
/* Writes the entry for this device (a failure leaves the cache as it was, with a warning). */
void vki_peaks_cache_write(const vki_profile *p, const char *path, const vki_bench_peaks *pk);
/* The peaks as JSON members of o (null where unsupported); returns o. */
cJSON *vki_peaks_json(const vki_bench_peaks *pk, cJSON *o);

#ifdef __cplusplus
}
#endif

#endif
