/* The pipeline cache on disk, one file per device UUID and driver version in the user's cache
 * folder. Drivers trust the bytes they are given, so a file is only handed over after its
 * length, checksum and Vulkan header (vendor, device, cache UUID) all match; anything else is
 * ignored with a log line, and a fresh cache replaces it on save.
 *
 * Nobody else may steer what is read or written: the folder must be ours and writable by no one
 * else, the file a regular file of ours (opened without following a symlink or waiting on a
 * FIFO), and a save writes a fresh mkstemp file and renames it over the target. When any of
 * that fails the cache stays in memory, with a warning; the device works all the same. The file
 * system checks are the platform's (platform_internal.h): owners and modes on POSIX, plain
 * folders and no links on Windows. */
#include "platform_internal.h"
#include "runtime_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAGIC "VKIPCACH"
#define CACHE_VERSION 1u
#define CACHE_MAX_BYTES (512ull << 20)

typedef struct cache_header {
    char magic[8];
    uint32_t version;
    uint32_t reserved;
    uint64_t data_size;
    uint64_t checksum;   // FNV-1a over the data
} cache_header;

static uint64_t fnv1a(const uint8_t *p, uint64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void cache_folder(const char *cache_dir, char *out, size_t size)
{
    if (cache_dir)
        snprintf(out, size, "%s", cache_dir);
    else
        vki__user_cache_dir(out, size);
}

bool vki_user_cache_dir(char *out, size_t size)
{
    if (!out || size == 0) return false;
    return vki__user_cache_dir(out, size);
}

/* Checks a file's bytes against this device; returns the reason it is unusable, or NULL. */
static const char *check_file(const vki_device *dev, const uint8_t *bytes, uint64_t n)
{
    cache_header h;
    if (n < sizeof h) return "shorter than its header";
    memcpy(&h, bytes, sizeof h);
    if (memcmp(h.magic, CACHE_MAGIC, 8) != 0) return "not a vkinfer pipeline cache";
    if (h.version != CACHE_VERSION) return "written by another vkinfer version";
    if (h.data_size != n - sizeof h) return "truncated or padded";
    const uint8_t *data = bytes + sizeof h;
    if (fnv1a(data, h.data_size) != h.checksum) return "checksum mismatch (corrupt)";
    // VkPipelineCacheHeaderVersionOne: headerSize, headerVersion, vendorID, deviceID, UUID.
    if (h.data_size < 32) return "no Vulkan cache header";
    uint32_t header_size, header_version, vendor, device;
    memcpy(&header_size, data, 4);
    memcpy(&header_version, data + 4, 4);
    memcpy(&vendor, data + 8, 4);
    memcpy(&device, data + 12, 4);
    if (header_size < 32 || header_size > h.data_size ||
        header_version != VK_PIPELINE_CACHE_HEADER_VERSION_ONE)
        return "bad Vulkan cache header";
    if (vendor != dev->profile.vendor_id || device != dev->profile.device_id ||
        memcmp(data + 16, dev->profile.uuid, 16) != 0)
        return "made by another device or driver";
    return NULL;
}

/* Whether `folder` is one that only we can write (vki__folder_check). Logs why not. A missing
 * folder is private (*out_exists false): the save creates it. */
static bool folder_is_private(vki_device *dev, const char *folder, bool *out_exists)
{
    char why[160];
    vki__path_state state = vki__folder_check(folder, why, sizeof why);
    *out_exists = state == VKI__PATH_OURS;
    if (state != VKI__PATH_REFUSED) return true;
    vki__log(dev->inst, VKI_LOG_WARN,
             "not using pipeline cache folder %s: %s; the cache stays in memory", folder, why);
    return false;
}

/* Reads the cache file into *out_bytes (NULL when absent or unreadable). Returns false, with a
 * warning, when something other than a regular file of ours sits at `path`: a symlink, a FIFO
 * (whose open would wait for a writer for ever) or another user's file. Such a thing is not
 * ours to replace either. */
static bool read_file(vki_device *dev, const char *path, uint8_t **out_bytes, uint64_t *out_size)
{
    *out_bytes = NULL;
    *out_size = 0;
    FILE *f;
    uint64_t len;
    char why[160];
    vki__path_state state = vki__file_open_read(path, &f, &len, why, sizeof why);
    if (state == VKI__PATH_REFUSED) {
        vki__log(dev->inst, VKI_LOG_WARN, "ignoring pipeline cache %s: %s; leaving it as it is",
                 path, why);
        return false;
    }
    if (!f) return true;
    if (len > 0 && len <= CACHE_MAX_BYTES) {
        uint8_t *bytes = vki__alloc(dev->inst, (size_t)len);
        if (bytes && fread(bytes, 1, (size_t)len, f) == (size_t)len) {
            *out_bytes = bytes;
            *out_size = len;
        } else {
            vki__free(dev->inst, bytes);
        }
    }
    fclose(f);
    return true;
}

vki_status vki__pipeline_cache_open(vki_device *dev, const char *cache_dir)
{
    char folder[768];
    cache_folder(cache_dir, folder, sizeof folder);
    dev->cache_path[0] = 0;
    bool exists = false;
    if (folder[0] && folder_is_private(dev, folder, &exists)) {
        char uuid[33];
        for (int i = 0; i < 16; i++) snprintf(uuid + 2 * i, 3, "%02x", dev->profile.uuid[i]);
        snprintf(dev->cache_path, sizeof dev->cache_path, "%s/pipelines-%04x-%04x-%s-%08x.bin",
                 folder, dev->profile.vendor_id, dev->profile.device_id, uuid,
                 dev->profile.driver_version);
    }

    uint64_t n = 0;
    uint8_t *bytes = NULL;
    if (exists && !read_file(dev, dev->cache_path, &bytes, &n)) {
        dev->stats.cache_rejected = 1;
        dev->cache_path[0] = 0; // and no save over it
    }
    const void *initial = NULL;
    size_t initial_size = 0;
    if (bytes) {
        const char *why = check_file(dev, bytes, n);
        if (why) {
            vki__log(dev->inst, VKI_LOG_WARN, "ignoring pipeline cache %s: %s", dev->cache_path, why);
            dev->stats.cache_rejected = 1;
        } else {
            initial = bytes + sizeof(cache_header);
            initial_size = (size_t)(n - sizeof(cache_header));
        }
    }
    VkPipelineCacheCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = initial_size,
        .pInitialData = initial,
    };
    VkResult r = dev->vk.vkCreatePipelineCache(dev->handle, &info, NULL, &dev->pipeline_cache);
    if (r != VK_SUCCESS && initial) {
        // A driver may still refuse data it wrote itself (e.g. after an update it did not
        // reflect in its version): start empty rather than fail.
        vki__log(dev->inst, VKI_LOG_WARN, "driver refused pipeline cache %s (%s); starting empty",
                 dev->cache_path, vki__vk_result_name(r));
        dev->stats.cache_rejected = 1;
        initial_size = 0;
        info.initialDataSize = 0;
        info.pInitialData = NULL;
        r = dev->vk.vkCreatePipelineCache(dev->handle, &info, NULL, &dev->pipeline_cache);
    }
    vki__free(dev->inst, bytes);
    VKI_TRY(vki__check(dev, r, "vkCreatePipelineCache"));
    dev->stats.cache_bytes_loaded = initial_size;
    if (initial_size)
        vki__log(dev->inst, VKI_LOG_INFO, "pipeline cache: %zu bytes from %s", initial_size,
                 dev->cache_path);
    return VKI_OK;
}

vki_status vki__pipeline_cache_save(vki_device *dev)
{
    if (!dev->pipeline_cache || !dev->cache_path[0] || dev->stats.pipelines_created == 0)
        return VKI_OK;
    size_t size = 0;
    VkResult r = dev->vk.vkGetPipelineCacheData(dev->handle, dev->pipeline_cache, &size, NULL);
    VKI_TRY(vki__check(dev, r, "vkGetPipelineCacheData"));
    if (size == 0 || size > CACHE_MAX_BYTES) return VKI_OK;
    uint8_t *bytes = vki__alloc(dev->inst, sizeof(cache_header) + size);
    if (!bytes)
        return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                            "out of host memory (%zu bytes for the pipeline cache)",
                            sizeof(cache_header) + size);
    vki_status st = VKI_OK;
    r = dev->vk.vkGetPipelineCacheData(dev->handle, dev->pipeline_cache, &size,
                                       bytes + sizeof(cache_header));
    if ((st = vki__check(dev, r, "vkGetPipelineCacheData"))) goto done;
    cache_header h = {.version = CACHE_VERSION, .data_size = size};
    memcpy(h.magic, CACHE_MAGIC, 8);
    h.checksum = fnv1a(bytes + sizeof h, size);
    memcpy(bytes, &h, sizeof h);

    // The folder is checked again: it may be new, or changed since the device was opened.
    char why[160];
    if (!vki__make_parent_dirs(dev->cache_path, why, sizeof why)) {
        st = VKI_DEV_FAIL(dev, VKI_ERROR_IO, "cannot create the folder of pipeline cache %s: %s",
                          dev->cache_path, why);
        goto done;
    }
    char folder[1024];
    snprintf(folder, sizeof folder, "%s", dev->cache_path);
    *strrchr(folder, '/') = 0; // cache_path is "<folder>/pipelines-..."
    bool exists;
    if (!folder_is_private(dev, folder, &exists)) goto done;
    if (vki__file_check(dev->cache_path, why, sizeof why) == VKI__PATH_REFUSED) {
        vki__log(dev->inst, VKI_LOG_WARN, "not saving pipeline cache %s: it %s; leaving it as it is",
                 dev->cache_path, why);
        goto done;
    }

    // Write a new file beside the target and rename it over, so a crash never leaves a
    // half-written cache. The new file is created exclusively (private, unpredictable name):
    // nothing planted in the folder can redirect the write.
    char tmp[1100];
    FILE *f = vki__file_create_temp(dev->cache_path, tmp, sizeof tmp, why, sizeof why);
    if (!f) {
        st = VKI_DEV_FAIL(dev, VKI_ERROR_IO, "cannot write pipeline cache %s: %s", tmp, why);
        goto done;
    }
    size_t total = sizeof h + size;
    bool ok = fwrite(bytes, 1, total, f) == total;
    ok = (fclose(f) == 0) && ok;
    if (!ok) snprintf(why, sizeof why, "%s", strerror(errno));
    if (!ok || !vki__file_replace(tmp, dev->cache_path, why, sizeof why)) {
        st = VKI_DEV_FAIL(dev, VKI_ERROR_IO, "cannot write pipeline cache %s: %s", dev->cache_path,
                          why);
        vki__file_remove(tmp);
    }
done:
    vki__free(dev->inst, bytes);
    return st;
}

void vki__pipeline_cache_close(vki_device *dev)
{
    if (dev->pipeline_cache) dev->vk.vkDestroyPipelineCache(dev->handle, dev->pipeline_cache, NULL);
    dev->pipeline_cache = VK_NULL_HANDLE;
}
