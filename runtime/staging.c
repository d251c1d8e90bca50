/* Uploads and read-backs. Host-visible ranges (UMA devices, HOST arenas) are copied in place;
 * everything else goes through a staging ring of two halves, so that copying one chunk on the
 * host overlaps the device's copy of the other. */
#include "runtime_internal.h"

#include <string.h>

typedef struct staging_slot {
    VkCommandBuffer cmd;
    uint64_t ticket;   // completion of the slot's last copy (0: never used)
} staging_slot;

struct vki_staging {
    vki_buffer *ring;
    uint64_t half;       // bytes per slot
    VkCommandPool pool;
    staging_slot slots[2];
};

vki_status vki__staging_create(vki_device *dev, uint64_t size, vki_staging **out)
{
    *out = NULL;
    vki_staging *s = vki__alloc(dev->inst, sizeof *s);
    if (!s)
        return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                            "out of host memory (%zu bytes for the staging ring)", sizeof *s);
    vki_status st = VKI_OK;
    size = vki_align_up(size < 64 * 1024 ? 64 * 1024 : size, 2 * 256);
    st = vki__buffer_create(dev, size,
                            VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                            VK_MEMORY_PROPERTY_HOST_CACHED_BIT, "staging ring", &s->ring);
    if (st) goto fail;
    s->half = size / 2;
    VkCommandPoolCreateInfo pool_info = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = dev->queue_family,
    };
    VkResult r = dev->vk.vkCreateCommandPool(dev->handle, &pool_info, NULL, &s->pool);
    if ((st = vki__check(dev, r, "vkCreateCommandPool(staging)"))) goto fail;
    VkCommandBufferAllocateInfo alloc = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = s->pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    for (int i = 0; i < 2; i++) {
        r = dev->vk.vkAllocateCommandBuffers(dev->handle, &alloc, &s->slots[i].cmd);
        if ((st = vki__check(dev, r, "vkAllocateCommandBuffers(staging)"))) goto fail;
    }
    *out = s;
    return VKI_OK;
fail:
    vki__staging_destroy(dev, s);
    return st;
}

void vki__staging_destroy(vki_device *dev, vki_staging *s)
{
    if (!s) return;
    if (s->pool) dev->vk.vkDestroyCommandPool(dev->handle, s->pool, NULL);
    vki__buffer_destroy(s->ring);
    vki__free(dev->inst, s);
}

static vki_status check_range(vki_device *dev, const char *what, vki_range r, uint64_t offset,
                              uint64_t size)
{
    uint64_t end;
    if (!r.buffer)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT, "%s: the range has no buffer", what);
    if (!vki__add_ok(offset, size, &end) || end > r.size)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "%s: %llu bytes at offset %llu run past the %llu-byte range", what,
                            (unsigned long long)size, (unsigned long long)offset,
                            (unsigned long long)r.size);
    return vki__alive(dev);
}

/* Global memory barrier. The first scope includes every command submitted earlier on this
 * queue, which is what orders these copies against streams without semaphores. */
static void barrier(vki_device *dev, VkCommandBuffer cmd, VkPipelineStageFlags src_stage,
                    VkAccessFlags src_access, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = src_access,
        .dstAccessMask = dst_access,
    };
    dev->vk.vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Records and submits one chunk copy in `slot`, between the ring and `dev_buf`. */
static vki_status copy_chunk(vki_device *dev, staging_slot *slot, VkBuffer src, uint64_t src_off,
                             VkBuffer dst, uint64_t dst_off, uint64_t size, bool to_host)
{
    VkCommandBufferBeginInfo begin = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VkResult r = dev->vk.vkResetCommandBuffer(slot->cmd, 0);
    VKI_TRY(vki__check(dev, r, "vkResetCommandBuffer(staging)"));
    r = dev->vk.vkBeginCommandBuffer(slot->cmd, &begin);
    VKI_TRY(vki__check(dev, r, "vkBeginCommandBuffer(staging)"));
    barrier(dev, slot->cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_WRITE_BIT,
            VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    VkBufferCopy region = {.srcOffset = src_off, .dstOffset = dst_off, .size = size};
    dev->vk.vkCmdCopyBuffer(slot->cmd, src, dst, 1, &region);
    if (to_host)
        barrier(dev, slot->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    else
        barrier(dev, slot->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
    r = dev->vk.vkEndCommandBuffer(slot->cmd);
    VKI_TRY(vki__check(dev, r, "vkEndCommandBuffer(staging)"));
    return vki__submit(dev, slot->cmd, &slot->ticket);
}

vki_status vki_device_upload(vki_device *dev, vki_range dst, uint64_t offset, const void *src,
                             uint64_t size)
{
    if (!dev || (!src && size)) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(check_range(dev, "upload", dst, offset, size));
    if (size == 0) return VKI_OK;
    if (dst.buffer->mapped) {
        // Earlier work may still read or write the range: let it finish first.
        VKI_TRY(vki_device_wait_idle(dev));
        memcpy((char *)dst.buffer->mapped + dst.offset + offset, src, size);
        return VKI_OK;
    }
    vki_staging *s = dev->staging;
    const char *from = src;
    for (uint64_t done = 0, i = 0; done < size; i++) {
        staging_slot *slot = &s->slots[i & 1];
        uint64_t n = size - done < s->half ? size - done : s->half;
        if (slot->ticket) VKI_TRY(vki_device_wait(dev, slot->ticket, UINT64_MAX));
        uint64_t ring_off = (i & 1) * s->half;
        memcpy((char *)s->ring->mapped + ring_off, from + done, n);
        VKI_TRY(copy_chunk(dev, slot, s->ring->handle, ring_off, dst.buffer->handle,
                           dst.offset + offset + done, n, false));
        done += n;
    }
    for (int i = 0; i < 2; i++)
        if (s->slots[i].ticket) VKI_TRY(vki_device_wait(dev, s->slots[i].ticket, UINT64_MAX));
    return VKI_OK;
}

vki_status vki_device_download(vki_device *dev, vki_range src, uint64_t offset, void *dst,
                               uint64_t size)
{
    if (!dev || (!dst && size)) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(check_range(dev, "download", src, offset, size));
    if (size == 0) return VKI_OK;
    if (src.buffer->mapped) {
        // Streams end with a device-to-host barrier, so finished work is visible here.
        VKI_TRY(vki_device_wait_idle(dev));
        memcpy(dst, (const char *)src.buffer->mapped + src.offset + offset, size);
        return VKI_OK;
    }
    vki_staging *s = dev->staging;
    char *to = dst;
    uint64_t nchunks = vki_div_up(size, s->half);
    // Keep one chunk in flight while the host copies out the previous one.
    for (uint64_t i = 0; i <= nchunks; i++) {
        if (i < nchunks) {
            staging_slot *slot = &s->slots[i & 1];
            uint64_t at = i * s->half;
            uint64_t n = size - at < s->half ? size - at : s->half;
            VKI_TRY(copy_chunk(dev, slot, src.buffer->handle, src.offset + offset + at,
                               s->ring->handle, (i & 1) * s->half, n, true));
        }
        if (i > 0) {
            uint64_t j = i - 1;
            staging_slot *prev = &s->slots[j & 1];
            VKI_TRY(vki_device_wait(dev, prev->ticket, UINT64_MAX));
            uint64_t at = j * s->half;
            uint64_t n = size - at < s->half ? size - at : s->half;
            memcpy(to + at, (const char *)s->ring->mapped + (j & 1) * s->half, n);
        }
    }
    return VKI_OK;
}
