/* The cache of `bench peak`'s figures (bench_peak.h): one JSON file per device next to the
 * pipeline cache, keyed by the device, its driver, vkinfer's version and the features the
 * narrowing left, so that other suites cite the peaks without measuring them again. Read only
 * from a regular file; written under an exclusively created temporary name and renamed. */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L // getpid, fdopen
#endif
#include "bench_peak.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _WIN32
#include <direct.h>
#include <process.h>
#define getpid _getpid
#else
#include <fcntl.h>
#include <unistd.h>
#endif

#define CACHE_SCHEMA 1
#define CACHE_MAX_BYTES (64u << 10)

const char *vki_peaks_cache_path(const vki_profile *p, char *buf, size_t size)
{
    char folder[768];
    if (!vki_user_cache_dir(folder, sizeof folder)) snprintf(folder, sizeof folder, "./.cache/vkinfer");
    snprintf(buf, size, "%s/peaks-%04x-%04x.json", folder, p->vendor_id, p->device_id);
    return buf;
}

/* What a cached entry must match: the device, its driver, vkinfer and the features the
 * narrowing left (a --narrow no-fp16 run has no fp16 peak). */
static void add_key(cJSON *o, const vki_profile *p)
{
    char features[96];
    snprintf(features, sizeof features, "fp16=%d int_dot=%d coopmat=%d tuning=%s", p->fp16,
             p->int_dot, p->coopmat, p->tuning.name);
    cJSON_AddNumberToObject(o, "schema", CACHE_SCHEMA);
    cJSON_AddNumberToObject(o, "vendor_id", p->vendor_id);
    cJSON_AddNumberToObject(o, "device_id", p->device_id);
    cJSON_AddStringToObject(o, "device", p->name);
    cJSON_AddNumberToObject(o, "driver_version", p->driver_version);
    cJSON_AddStringToObject(o, "driver_info", p->driver_info);
    cJSON_AddStringToObject(o, "vkinfer_version", VKI_VERSION_STRING);
    cJSON_AddStringToObject(o, "features", features);
}

static bool same_item(const cJSON *a, const cJSON *b)
{
    return a && b && cJSON_Compare(a, b, true);
}

/* The peaks' keys, in the order of the struct (JSON and table alike). */
typedef struct peak_field {
    const char *key;
    size_t offset;
} peak_field;

#define PF(name) {#name, offsetof(vki_bench_peaks, name)}
static const peak_field peak_fields[] = {
    PF(fp32_gflops), PF(fp16_gflops), PF(int8_gops), PF(coopmat_fp16_gflops), PF(read_gbs),
    PF(write_gbs), PF(copy_gbs), PF(upload_gbs), PF(download_gbs), PF(dispatch_us), PF(submit_us),
};
#define PEAK_FIELDS (sizeof peak_fields / sizeof peak_fields[0])

static double *field(vki_bench_peaks *pk, size_t i)
{
    return (double *)((char *)pk + peak_fields[i].offset);
}

/* Opens the cache file for reading only when it is a regular file: a FIFO put there would
 * block the open (POSIX opens it non-blocking and checks); a link is not followed. */
static FILE *open_regular(const char *path)
{
#ifdef _WIN32
    return fopen(path, "rb");
#else
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "rb") : NULL;
    if (!f) close(fd);
    return f;
#endif
}

bool vki_peaks_cache_read(const vki_profile *p, const char *path, vki_bench_peaks *out)
{
    FILE *f = open_regular(path);
    if (!f) return false;
    char *text = malloc(CACHE_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, CACHE_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!text || n == 0 || n > CACHE_MAX_BYTES) {
        free(text);
        return false;
    }
    text[n] = 0;
    cJSON *root = cJSON_Parse(text), *key = cJSON_CreateObject();
    free(text);
    bool ok = cJSON_IsObject(root) && key;
    if (ok) add_key(key, p);
    for (const cJSON *k = key ? key->child : NULL; ok && k; k = k->next)
        ok = same_item(k, cJSON_GetObjectItemCaseSensitive(root, k->string));
    const cJSON *peaks = ok ? cJSON_GetObjectItemCaseSensitive(root, "peaks") : NULL;
    vki_bench_peaks pk = {0};
    ok = ok && cJSON_IsObject(peaks);
    for (size_t i = 0; ok && i < PEAK_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(peaks, peak_fields[i].key);
        if (cJSON_IsNull(v)) continue; // unsupported: 0
        ok = cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0;
        if (ok) *field(&pk, i) = v->valuedouble;
    }
    cJSON_Delete(root);
    cJSON_Delete(key);
    if (ok) *out = pk;
    return ok;
}

cJSON *vki_peaks_json(const vki_bench_peaks *pk, cJSON *o)
{
    for (size_t i = 0; i < PEAK_FIELDS; i++) {
        double v = *field((vki_bench_peaks *)pk, i);
        vki_json_add_opt(o, peak_fields[i].key, v > 0, v);
    }
    return o;
}

/* Creates the folders of `path` (mode 0700 on POSIX), as the pipeline cache's save does. */
static void make_parents(char *path)
{
    for (char *s = path + 1; *s; s++) {
        if (*s != '/' && *s != '\\') continue;
        char c = *s;
        *s = 0;
#ifdef _WIN32
        _mkdir(path);
#else
        mkdir(path, 0700);
#endif
        *s = c;
    }
}

/* Writes the entry under a temporary name created exclusively, then renames it over `path`,
 * so that a reader never sees half a file and nobody else's file is written through. A
 * failure leaves the cache as it was, with a warning: the peaks are still good. */
void vki_peaks_cache_write(const vki_profile *p, const char *path, const vki_bench_peaks *pk)
{
    static unsigned counter;
    char tmp[1100], dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    make_parents(dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", path, (long)getpid(), counter++);
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    if (root) {
        add_key(root, p);
        vki_peaks_json(pk, cJSON_AddObjectToObject(root, "peaks"));
        text = cJSON_Print(root);
        cJSON_Delete(root);
    }
    FILE *f = text ? fopen(tmp, "wx") : NULL; // C11 "x": exclusive creation
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok = (fclose(f) == 0) && ok;
#ifdef _WIN32
    if (ok) remove(path); // rename does not replace on Windows
#endif
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "vkinfer: warning: could not write the peaks cache %s: %s\n", path,
                text ? strerror(errno) : "out of host memory");
        if (f) remove(tmp);
    }
    free(text);
}

