/* Helpers shared by the vkinfer commands: the runtime's log hook, opening and closing the
 * instance and device, failure messages, argument parsing, clocks and JSON output. */
#define _POSIX_C_SOURCE 200809L // clock_gettime, getline, open's O_NOFOLLOW and O_CLOEXEC

#include "apps_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <io.h>      // _isatty, _open
#include <sys/stat.h>
#include <windows.h> // QueryPerformanceCounter
#else
#include <unistd.h>  // isatty
#endif

/* Validation messages are printed as they arrive (the app fails on them at exit, and the
 * message is what a developer needs). Errors are kept, not printed: each failing call's caller
 * prints one line with the context the runtime cannot know. */
static void app_log(void *user, vki_log_level level, bool validation, const char *message)
{
    vki_app *app = user;
    if (validation) {
        fprintf(stderr, "vkinfer: validation: %s\n", message);
        return;
    }
    if (level == VKI_LOG_ERROR) {
        snprintf(app->last_log_error, sizeof app->last_log_error, "%s", message);
        return;
    }
    fprintf(stderr, "vkinfer: %s: %s\n", level == VKI_LOG_WARN ? "warning" : "info", message);
}

int vki_app_open_instance(vki_app *app)
{
    if (app->instance) return VKI_EXIT_OK;
    vki_instance_desc desc = {
        .log = app_log,
        .log_user = app,
        .log_level = VKI_LOG_WARN,
        .validation = app->validation,
        .app_name = "vkinfer",
    };
    vki_status st = vki_instance_create(&desc, &app->instance);
    if (st != VKI_OK) {
        app->instance = NULL; // nothing to destroy, whatever the runtime left in it
        return vki_app_fail(app, "creating the Vulkan instance", st);
    }
    return VKI_EXIT_OK;
}

int vki_app_open_device(vki_app *app)
{
    int code = vki_app_open_instance(app);
    if (code != VKI_EXIT_OK || app->device) return code;
    vki_device_desc desc = {.select = app->device_select, .narrowing = &app->narrowing};
    vki_status st = vki_device_create(app->instance, &desc, &app->device);
    if (st != VKI_OK) {
        app->device = NULL;
        char what[300];
        if (app->device_select)
            snprintf(what, sizeof what, "opening device '%s'", app->device_select);
        else
            snprintf(what, sizeof what, "opening the default device");
        return vki_app_fail(app, what, st);
    }
    return VKI_EXIT_OK;
}

int vki_app_close(vki_app *app, int code)
{
    vki_device_destroy(app->device);
    app->device = NULL;
    uint32_t messages = app->instance ? vki_instance_validation_count(app->instance) : 0;
    vki_instance_destroy(app->instance);
    app->instance = NULL;
    if (messages == 0) return code;
    fprintf(stderr, "vkinfer: the validation layer reported %u message%s (printed above)\n",
            messages, messages == 1 ? "" : "s");
    return code == VKI_EXIT_OK ? VKI_EXIT_VALIDATION : code;
}

int vki_app_fail(vki_app *app, const char *what, vki_status status)
{
    const char *detail = "";
    if (app->device) detail = vki_device_last_error(app->device);
    if (!detail[0] && app->instance) detail = vki_instance_last_error(app->instance);
    if (!detail[0]) detail = app->last_log_error;
    if (detail[0])
        fprintf(stderr, "vkinfer: %s: %s: %s\n", what, vki_status_string(status), detail);
    else
        fprintf(stderr, "vkinfer: %s: %s\n", what, vki_status_string(status));
    return VKI_EXIT_FAILURE;
}

int vki_app_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vkinfer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return VKI_EXIT_FAILURE;
}

int vki_app_usage_error(void (*usage)(FILE *), const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vkinfer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n\n", stderr);
    va_end(ap);
    usage(stderr);
    return VKI_EXIT_USAGE;
}

int vki_arg_value(int argc, char **argv, int *i, const char *name, const char **out_value)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0) return 0;
    if (arg[len] == '=') {
        *out_value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0') return 0; // "--repsx" is another option
    if (*i + 1 >= argc) return -1;
    *i += 1;
    *out_value = argv[*i];
    return 1;
}

bool vki_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out_value)
{
    // strtoull accepts leading space and a sign ("-1" wraps to a huge value): digits only.
    if (!text || text[0] < '0' || text[0] > '9') return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return false;
    *out_value = v;
    return true;
}

bool vki_parse_float(const char *text, double min, double max, float *out_value)
{
    if (!text || !text[0] || text[0] == ' ') return false;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max) return false;
    *out_value = (float)v;
    return true;
}

double vki_now_us(void)
{
#ifdef _WIN32
    LARGE_INTEGER freq, now;
    QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (double)now.QuadPart * 1e6 / (double)freq.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
#endif
}

ptrdiff_t vki_read_line(char **line, size_t *cap, FILE *f)
{
#ifndef _WIN32
    return getline(line, cap, f);
#else
    // Windows' C library has no getline: the same contract over fgetc.
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 2 > *cap) {
            size_t grown = *cap ? *cap * 2 : 128;
            char *p = realloc(*line, grown);
            if (!p) return -1;
            *line = p;
            *cap = grown;
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (n == 0) return -1;
    (*line)[n] = 0;
    return (ptrdiff_t)n;
#endif
}

const char *vki_version_string(uint32_t version, char buf[32])
{
    // VK_API_VERSION_MAJOR/MINOR/PATCH, spelt out so apps need not include vulkan.h.
    snprintf(buf, 32, "%u.%u.%u", (version >> 22) & 0x7fu, (version >> 12) & 0x3ffu,
             version & 0xfffu);
    return buf;
}

const char *vki_bytes_string(uint64_t bytes, char buf[32])
{
    const uint64_t gib = 1ull << 30, mib = 1ull << 20, kib = 1ull << 10;
    if (bytes >= gib && bytes % gib == 0)
        snprintf(buf, 32, "%llu GiB", (unsigned long long)(bytes / gib));
    else if (bytes >= gib)
        snprintf(buf, 32, "%.2f GiB", (double)bytes / (double)gib);
    else if (bytes >= mib && bytes % mib == 0)
        snprintf(buf, 32, "%llu MiB", (unsigned long long)(bytes / mib));
    else if (bytes >= mib)
        snprintf(buf, 32, "%.1f MiB", (double)bytes / (double)mib);
    else if (bytes >= kib && bytes % kib == 0)
        snprintf(buf, 32, "%llu KiB", (unsigned long long)(bytes / kib));
    else if (bytes >= kib)
        snprintf(buf, 32, "%.1f KiB", (double)bytes / (double)kib);
    else
        snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
    return buf;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double vki_percentile(double *values, uint32_t n, double fraction)
{
    if (n == 0) return 0.0;
    qsort(values, n, sizeof *values, compare_double);
    // Linear interpolation between the two closest ranks: the median of 4 samples is the
    // mean of the middle two, as users expect.
    double pos = fraction * (double)(n - 1);
    uint32_t lo = (uint32_t)pos;
    if (lo + 1 >= n) return values[n - 1];
    double t = pos - (double)lo;
    return values[lo] * (1.0 - t) + values[lo + 1] * t;
}

void vki_json_add_measure(cJSON *obj, const char *key, double value)
{
    if (value != 0.0 && isfinite(value)) {
        double scale = pow(10.0, 3.0 - floor(log10(fabs(value))));
        value = round(value * scale) / scale;
    }
    cJSON_AddNumberToObject(obj, key, value);
}

void vki_json_add_opt(cJSON *obj, const char *key, bool present, double value)
{
    if (present)
        vki_json_add_measure(obj, key, value);
    else
        cJSON_AddNullToObject(obj, key);
}

int vki_json_print(const cJSON *root)
{
    char *text = cJSON_Print(root);
    if (!text) return vki_app_failf("printing JSON: out of host memory");
    fputs(text, stdout);
    fputc('\n', stdout);
    cJSON_free(text);
    return VKI_EXIT_OK;
}

/* The length of the well-formed UTF-8 character at p (Unicode's table 3-7: no overlong forms,
 * no surrogates, nothing past U+10FFFF), or 0 when the bytes there are not one, or are NUL. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return c != 0;
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || n < len) return 0;
    unsigned char lo = 0x80, hi = 0xbf; // the second byte's range narrows for some leads
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return len;
}

size_t vki_utf8_sanitize(const char *bytes, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)bytes;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_char(p + i, n - i);
        if (len == 0) {
            if (out) memcpy(out + o, "\xef\xbf\xbd", 3); // U+FFFD
            o += 3;
            i += 1;
            continue;
        }
        if (out) memcpy(out + o, p + i, len);
        o += len;
        i += len;
    }
    return o;
}

bool vki_json_add_text(cJSON *obj, const char *key, const char *bytes, size_t n)
{
    // Each byte becomes at most 3 (U+FFFD): no overflow below SIZE_MAX / 3.
    if (n > (SIZE_MAX - 1) / 3) return false;
    char *clean = malloc(3 * n + 1);
    if (!clean) return false;
    size_t len = vki_utf8_sanitize(bytes, n, clean);
    clean[len] = 0;
    bool ok = cJSON_AddStringToObject(obj, key, clean) != NULL;
    free(clean);
    return ok;
}

const char *vki_model_cache_file(const char *rel, char *buf, size_t size)
{
    const char *dir = getenv("VKI_MODEL_DIR");
    char cache[768];
    if (dir && dir[0])
        snprintf(buf, size, "%s/%s", dir, rel);
    else if (vki_user_cache_dir(cache, sizeof cache)) // the runtime's folder for its caches
        snprintf(buf, size, "%s/models/%s", cache, rel);
    else
        snprintf(buf, size, "./.cache/vkinfer/models/%s", rel);
    return buf;
}

bool vki_is_terminal(FILE *f)
{
#ifdef _WIN32
    return _isatty(_fileno(f)) != 0;
#else
    return isatty(fileno(f)) != 0;
#endif
}

int vki_file_write_new(const char *path, const void *data, size_t n, char *err, size_t en)
{
#ifdef _WIN32
    int fd = _open(path, _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY, _S_IREAD | _S_IWRITE);
#else
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
#endif
    if (fd < 0) {
        if (errno == EEXIST)
            snprintf(err, en, "%s: already exists; vkinfer does not overwrite files (remove it or "
                     "pick another name)", path);
        else
            snprintf(err, en, "%s: cannot create: %s", path, strerror(errno));
        return VKI_ERROR_IO;
    }
    const uint8_t *bytes = data;
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
#ifdef _WIN32
        int wrote = _write(fd, bytes + done, (unsigned)chunk);
#else
        ssize_t wrote = write(fd, bytes + done, chunk);
#endif
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) {
            snprintf(err, en, "%s: cannot write: %s", path, wrote < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += (size_t)wrote;
    }
#ifdef _WIN32
    int closed = _close(fd);
#else
    int closed = close(fd);
#endif
    if (done == n && closed != 0) snprintf(err, en, "%s: cannot close: %s", path, strerror(errno));
    if (done != n || closed != 0) {
        remove(path); // ours: created exclusively above
        return VKI_ERROR_IO;
    }
    return VKI_OK;
}
