/* Status names, logging, last-error strings and the host allocation hook. */
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vki_status_string(vki_status status)
{
    static const char *const names[VKI_STATUS_COUNT] = {
        [VKI_OK] = "ok",
        [VKI_ERROR_INVALID_ARGUMENT] = "invalid argument",
        [VKI_ERROR_OUT_OF_HOST_MEMORY] = "out of host memory",
        [VKI_ERROR_OUT_OF_DEVICE_MEMORY] = "out of device memory",
        [VKI_ERROR_DEVICE_LOST] = "device lost",
        [VKI_ERROR_UNSUPPORTED] = "unsupported",
        [VKI_ERROR_NOT_FOUND] = "not found",
        [VKI_ERROR_TIMEOUT] = "timeout",
        [VKI_ERROR_IO] = "i/o error",
        [VKI_ERROR_BAD_FILE] = "bad file",
        [VKI_ERROR_VULKAN] = "vulkan error",
        [VKI_ERROR_CANCELLED] = "cancelled",
    };
    if ((unsigned)status >= VKI_STATUS_COUNT) return "unknown status";
    return names[status];
}

void *vki__alloc(const vki_instance *inst, size_t size)
{
    void *p = inst && inst->allocator.alloc ? inst->allocator.alloc(inst->allocator.user, size)
                                            : malloc(size);
    if (p) memset(p, 0, size);
    return p;
}

void vki__free(const vki_instance *inst, void *ptr)
{
    if (!ptr) return;
    if (inst && inst->allocator.free)
        inst->allocator.free(inst->allocator.user, ptr);
    else
        free(ptr);
}

static void log_message(const vki_instance *inst, vki_log_level level, const char *text)
{
    vki_log_level limit = inst && inst->log_level ? inst->log_level : VKI_LOG_WARN;
    if (level > limit) return;
    if (inst && inst->log) {
        inst->log(inst->log_user, level, false, text);
        return;
    }
    static const char *const tags[VKI_LOG_LEVEL_COUNT] = {"", "error", "warning", "info", "debug"};
    fprintf(stderr, "vkinfer %s: %s\n", tags[level], text);
}

void vki__log(const vki_instance *inst, vki_log_level level, const char *fmt, ...)
{
    char text[VKI_ERROR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log_message(inst, level, text);
}

vki_status vki__fail(const vki_instance *inst, char *last_error, vki_status status,
                     const char *fmt, ...)
{
    char text[VKI_ERROR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (last_error) memcpy(last_error, text, sizeof text);
    log_message(inst, VKI_LOG_ERROR, text);
    return status;
}

const char *vki__vk_result_name(VkResult result)
{
    switch (result) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    case VK_PIPELINE_COMPILE_REQUIRED: return "VK_PIPELINE_COMPILE_REQUIRED";
    default: return "VkResult(unknown)";
    }
}

vki_status vki__status_from_vk(VkResult result)
{
    switch (result) {
    case VK_SUCCESS: return VKI_OK;
    case VK_TIMEOUT: return VKI_ERROR_TIMEOUT;
    case VK_ERROR_OUT_OF_HOST_MEMORY: return VKI_ERROR_OUT_OF_HOST_MEMORY;
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return VKI_ERROR_OUT_OF_DEVICE_MEMORY;
    case VK_ERROR_DEVICE_LOST: return VKI_ERROR_DEVICE_LOST;
    case VK_ERROR_LAYER_NOT_PRESENT:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_FEATURE_NOT_PRESENT:
    case VK_ERROR_INCOMPATIBLE_DRIVER: return VKI_ERROR_UNSUPPORTED;
    default: return VKI_ERROR_VULKAN;
    }
}

const char *vki__bytes(uint64_t bytes, char buf[32])
{
    if (bytes >= (1ull << 30))
        snprintf(buf, 32, "%.2f GiB", (double)bytes / (double)(1ull << 30));
    else if (bytes >= (1ull << 20))
        snprintf(buf, 32, "%.1f MiB", (double)bytes / (double)(1ull << 20));
    else if (bytes >= 1024)
        snprintf(buf, 32, "%.1f KiB", (double)bytes / 1024.0);
    else
        snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
    return buf;
}

/* See runtime_internal.h. */
bool vki__parse_bytes(const char *text, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9') return false;
    uint64_t v = 0;
    const char *c = text;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    unsigned shift = 0;
    if (*c == 'K' || *c == 'k') shift = 10;
    else if (*c == 'M' || *c == 'm') shift = 20;
    else if (*c == 'G' || *c == 'g') shift = 30;
    if (shift) {
        c++;
        if (*c == 'i' && c[1] == 'B') c += 2;
        else if (*c == 'B') c++;
    }
    if (*c || v == 0 || v > (UINT64_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}
