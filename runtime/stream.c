/* Streams: a command buffer recorded once (dispatches, barriers, copies) and submitted as
 * often as wanted, with completion on the device's timeline semaphore and optional
 * per-dispatch timestamps. */
#include "runtime_internal.h"

#include <stdio.h>
#include <string.h>

#define SETS_PER_POOL 256
#define MAX_POOLS 64

typedef enum stream_state { STREAM_IDLE = 0, STREAM_RECORDING, STREAM_READY } stream_state;

struct vki_stream {
    vki_device *dev;
    char name[64];
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkDescriptorPool desc_pools[MAX_POOLS];
    uint32_t desc_pool_count;
    uint32_t desc_pool_current;
    stream_state state;
    uint64_t ticket;           // last submission (0: none)

    VkBufferView *views;       // of the recording's texel-buffer bindings
    uint32_t view_count, view_capacity;

    VkQueryPool queries;       // timestamps: one at begin, one after each timed dispatch
    uint32_t max_timestamps;
    uint32_t timed;            // dispatches timed in this recording
};

static vki_status add_desc_pool(vki_stream *s)
{
    vki_device *dev = s->dev;
    if (s->desc_pool_count == MAX_POOLS)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: more than %d dispatches in one recording", s->name,
                            MAX_POOLS * SETS_PER_POOL);
    VkDescriptorPoolSize sizes[2] = {
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VKI_MAX_BINDINGS},
        {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL * 2},
    };
    VkDescriptorPoolCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = SETS_PER_POOL,
        .poolSizeCount = 2,
        .pPoolSizes = sizes,
    };
    VkResult r = dev->vk.vkCreateDescriptorPool(dev->handle, &info, NULL,
                                                &s->desc_pools[s->desc_pool_count]);
    VKI_TRY(vki__check(dev, r, "vkCreateDescriptorPool"));
    s->desc_pool_count++;
    return VKI_OK;
}

vki_status vki_stream_create(vki_device *dev, const vki_stream_desc *desc, vki_stream **out)
{
    static const vki_stream_desc zero_desc;
    if (!dev || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (!desc) desc = &zero_desc;
    VKI_TRY(vki__alive(dev));
    if (desc->timestamps && !dev->profile.timestamps)
        return VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED, "%s cannot time compute work",
                            dev->profile.name);
    vki_stream *s = vki__alloc(dev->inst, sizeof *s);
    if (!s)
        return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                            "out of host memory (%zu bytes for a stream)", sizeof *s);
    s->dev = dev;
    snprintf(s->name, sizeof s->name, "%s", desc->name ? desc->name : "stream");
    vki_status st = VKI_OK;
    VkCommandPoolCreateInfo pool_info = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = dev->queue_family,
    };
    VkResult r = dev->vk.vkCreateCommandPool(dev->handle, &pool_info, NULL, &s->pool);
    if ((st = vki__check(dev, r, "vkCreateCommandPool"))) goto fail;
    VkCommandBufferAllocateInfo alloc = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = s->pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    r = dev->vk.vkAllocateCommandBuffers(dev->handle, &alloc, &s->cmd);
    if ((st = vki__check(dev, r, "vkAllocateCommandBuffers"))) goto fail;
    vki__name(dev, VK_OBJECT_TYPE_COMMAND_BUFFER, (uint64_t)(uintptr_t)s->cmd, s->name);
    if ((st = add_desc_pool(s))) goto fail;
    if (desc->timestamps) {
        s->max_timestamps = desc->max_timestamps ? desc->max_timestamps : 1024;
        VkQueryPoolCreateInfo q = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = s->max_timestamps + 1,
        };
        r = dev->vk.vkCreateQueryPool(dev->handle, &q, NULL, &s->queries);
        if ((st = vki__check(dev, r, "vkCreateQueryPool"))) goto fail;
    }
    *out = s;
    return VKI_OK;
fail:
    vki_stream_destroy(s);
    return st;
}

static void drop_views(vki_stream *s)
{
    for (uint32_t i = 0; i < s->view_count; i++)
        s->dev->vk.vkDestroyBufferView(s->dev->handle, s->views[i], NULL);
    s->view_count = 0;
}

/* A view of the binding as unsigned texels of texel_bytes (4, 8 or 16), kept until the stream
 * is recorded again. It covers the binding in whole texels: the last one may reach past the
 * binding's end (never the buffer's, whose size is a multiple of 16). */
static vki_status texel_view(vki_stream *s, const vki_range *b, uint32_t texel_bytes,
                             VkBufferView *out)
{
    vki_device *dev = s->dev;
    const vki_profile *p = &dev->profile;
    uint64_t range = (b->size + texel_bytes - 1) / texel_bytes * texel_bytes;
    if (b->offset + range > b->buffer->size) range = b->size / texel_bytes * texel_bytes;
    if (b->offset % p->texel_align || range == 0 || range / texel_bytes > p->max_texel_elements)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: a texel-buffer binding at offset %llu of %llu bytes in "
                            "%u-byte texels (the device wants offsets in multiples of %u, at most "
                            "%u texels)", s->name, (unsigned long long)b->offset,
                            (unsigned long long)b->size, texel_bytes, p->texel_align,
                            p->max_texel_elements);
    if (s->view_count == s->view_capacity) {
        uint32_t cap = s->view_capacity ? 2 * s->view_capacity : 64;
        VkBufferView *v = vki__alloc(dev->inst, cap * sizeof *v);
        if (!v)
            return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                                "out of host memory (%u texel buffer views)", cap);
        if (s->view_count) memcpy(v, s->views, s->view_count * sizeof *v);
        vki__free(dev->inst, s->views);
        s->views = v;
        s->view_capacity = cap;
    }
    VkBufferViewCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = b->buffer->handle,
        .format = texel_bytes == 16 ? VK_FORMAT_R32G32B32A32_UINT
                  : texel_bytes == 8    ? VK_FORMAT_R32G32_UINT
                                        : VK_FORMAT_R32_UINT,
        .offset = b->offset,
        .range = range,
    };
    VkResult r = dev->vk.vkCreateBufferView(dev->handle, &info, NULL, out);
    VKI_TRY(vki__check(dev, r, "vkCreateBufferView"));
    s->views[s->view_count++] = *out;
    return VKI_OK;
}

void vki_stream_destroy(vki_stream *s)
{
    if (!s) return;
    vki_device *dev = s->dev;
    if (s->ticket && !dev->lost) vki_device_wait(dev, s->ticket, UINT64_MAX);
    if (s->queries) dev->vk.vkDestroyQueryPool(dev->handle, s->queries, NULL);
    for (uint32_t i = 0; i < s->desc_pool_count; i++)
        dev->vk.vkDestroyDescriptorPool(dev->handle, s->desc_pools[i], NULL);
    drop_views(s);
    vki__free(dev->inst, s->views);
    if (s->pool) dev->vk.vkDestroyCommandPool(dev->handle, s->pool, NULL);
    vki__free(dev->inst, s);
}

static vki_status wait_last(vki_stream *s)
{
    if (!s->ticket) return VKI_OK;
    return vki_device_wait(s->dev, s->ticket, UINT64_MAX);
}

vki_status vki_stream_begin(vki_stream *s)
{
    if (!s) return VKI_ERROR_INVALID_ARGUMENT;
    vki_device *dev = s->dev;
    VKI_TRY(vki__alive(dev));
    VKI_TRY(wait_last(s));
    VkResult r = dev->vk.vkResetCommandBuffer(s->cmd, 0);
    VKI_TRY(vki__check(dev, r, "vkResetCommandBuffer"));
    for (uint32_t i = 0; i < s->desc_pool_count; i++) {
        r = dev->vk.vkResetDescriptorPool(dev->handle, s->desc_pools[i], 0);
        VKI_TRY(vki__check(dev, r, "vkResetDescriptorPool"));
    }
    s->desc_pool_current = 0;
    drop_views(s); // the last submission is done
    s->timed = 0;
    // No ONE_TIME_SUBMIT: the recording is replayed.
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    r = dev->vk.vkBeginCommandBuffer(s->cmd, &begin);
    VKI_TRY(vki__check(dev, r, "vkBeginCommandBuffer"));
    if (s->queries) {
        dev->vk.vkCmdResetQueryPool(s->cmd, s->queries, 0, s->max_timestamps + 1);
        dev->vk.vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, s->queries, 0);
    }
    s->state = STREAM_RECORDING;
    return VKI_OK;
}

static vki_status recording(vki_stream *s, const char *what)
{
    if (s->state != STREAM_RECORDING)
        return VKI_DEV_FAIL(s->dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: %s outside vki_stream_begin/end", s->name, what);
    return VKI_OK;
}

static vki_status check_dispatch(vki_stream *s, const vki_dispatch *d)
{
    vki_device *dev = s->dev;
    const vki_profile *p = &dev->profile;
    const vki_kernel *k = d->kernel;
    if (!k || k->dev != dev)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: dispatch without a kernel of this device", s->name);
    if (d->binding_count != k->info.binding_count || (d->binding_count && !d->bindings))
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "kernel %s: dispatch binds %u buffers, the kernel has %u", k->name,
                            d->binding_count, k->info.binding_count);
    if (d->push_size != k->info.push_size || (d->push_size && !d->push))
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "kernel %s: dispatch pushes %u bytes, the kernel takes %u", k->name,
                            d->push_size, k->info.push_size);
    for (uint32_t i = 0; i < d->binding_count; i++) {
        const vki_range *b = &d->bindings[i];
        uint64_t end;
        if (!b->buffer || b->buffer->dev != dev || b->size == 0)
            return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                                "kernel %s: binding %u is empty or from another device", k->name, i);
        if (!vki__add_ok(b->offset, b->size, &end) || end > b->buffer->size)
            return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                                "kernel %s: binding %u runs past its buffer", k->name, i);
        if (b->size > p->max_storage_range) {
            char a[32], m[32];
            return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                                "kernel %s: binding %u spans %s, above %s's maxStorageBufferRange "
                                "%s: bind a window of the tensor per dispatch",
                                k->name, i, vki__bytes(b->size, a), p->name,
                                vki__bytes(p->max_storage_range, m));
        }
        if (p->storage_align && b->offset % p->storage_align)
            return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                                "kernel %s: binding %u offset %llu is not a multiple of %u",
                                k->name, i, (unsigned long long)b->offset, p->storage_align);
    }
    for (int i = 0; i < 3; i++) {
        uint32_t g = d->groups[i] ? d->groups[i] : 1;
        if (g > p->max_workgroup_count[i])
            return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                                "kernel %s: %u workgroups in dimension %d, %s allows %u", k->name,
                                g, i, p->name, p->max_workgroup_count[i]);
    }
    return VKI_OK;
}

static vki_status alloc_set(vki_stream *s, VkDescriptorSetLayout layout, VkDescriptorSet *out)
{
    vki_device *dev = s->dev;
    for (;;) {
        VkDescriptorSetAllocateInfo info = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = s->desc_pools[s->desc_pool_current],
            .descriptorSetCount = 1,
            .pSetLayouts = &layout,
        };
        VkResult r = dev->vk.vkAllocateDescriptorSets(dev->handle, &info, out);
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
            return vki__check(dev, r, "vkAllocateDescriptorSets");
        if (s->desc_pool_current + 1 == s->desc_pool_count) VKI_TRY(add_desc_pool(s));
        s->desc_pool_current++;
    }
}

vki_status vki_stream_dispatch(vki_stream *s, const vki_dispatch *d)
{
    if (!s || !d) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(recording(s, "dispatch"));
    VKI_TRY(check_dispatch(s, d));
    vki_device *dev = s->dev;
    const vki_kernel *k = d->kernel;

    VkDescriptorSet set = VK_NULL_HANDLE;
    if (d->binding_count) {
        VKI_TRY(alloc_set(s, k->set_layout, &set));
        VkDescriptorBufferInfo infos[VKI_MAX_BINDINGS];
        VkBufferView views[VKI_MAX_BINDINGS];
        VkWriteDescriptorSet writes[VKI_MAX_BINDINGS];
        for (uint32_t i = 0; i < d->binding_count; i++) {
            bool texel = (k->info.texel_mask >> i) & 1u;
            infos[i] = (VkDescriptorBufferInfo){d->bindings[i].buffer->handle,
                                                d->bindings[i].offset, d->bindings[i].size};
            if (texel) VKI_TRY(texel_view(s, &d->bindings[i], k->info.texel_bytes[i], &views[i]));
            writes[i] = (VkWriteDescriptorSet){
                .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                .dstSet = set,
                .dstBinding = i,
                .descriptorCount = 1,
                .descriptorType = vki__descriptor_type(&k->info, i),
                .pBufferInfo = texel ? NULL : &infos[i],
                .pTexelBufferView = texel ? &views[i] : NULL,
            };
        }
        dev->vk.vkUpdateDescriptorSets(dev->handle, d->binding_count, writes, 0, NULL);
    }
    dev->vk.vkCmdBindPipeline(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->pipeline);
    if (set)
        dev->vk.vkCmdBindDescriptorSets(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, 1,
                                        &set, 0, NULL);
    if (d->push_size)
        dev->vk.vkCmdPushConstants(s->cmd, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                                   d->push_size, d->push);
    dev->vk.vkCmdDispatch(s->cmd, d->groups[0] ? d->groups[0] : 1, d->groups[1] ? d->groups[1] : 1,
                          d->groups[2] ? d->groups[2] : 1);
    if (s->queries && s->timed < s->max_timestamps) {
        s->timed++;
        dev->vk.vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->queries,
                                    s->timed);
    }
    return VKI_OK;
}

vki_status vki_stream_barrier(vki_stream *s)
{
    if (!s) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(recording(s, "barrier"));
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    s->dev->vk.vkCmdPipelineBarrier(s->cmd, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
    return VKI_OK;
}

vki_status vki_stream_copy(vki_stream *s, vki_range src, vki_range dst)
{
    if (!s) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(recording(s, "copy"));
    vki_device *dev = s->dev;
    uint64_t size = src.size < dst.size ? src.size : dst.size, e1, e2;
    if (!src.buffer || !dst.buffer || src.buffer->dev != dev || dst.buffer->dev != dev ||
        !vki__add_ok(src.offset, size, &e1) || e1 > src.buffer->size ||
        !vki__add_ok(dst.offset, size, &e2) || e2 > dst.buffer->size)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: copy ranges are empty, foreign or out of bounds", s->name);
    if (size == 0) return VKI_OK;
    VkBufferCopy region = {src.offset, dst.offset, size};
    dev->vk.vkCmdCopyBuffer(s->cmd, src.buffer->handle, dst.buffer->handle, 1, &region);
    return VKI_OK;
}

vki_status vki_stream_end(vki_stream *s)
{
    if (!s) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(recording(s, "end"));
    vki_device *dev = s->dev;
    // Make every write of the recording available to the host, so that read-backs from
    // host-visible memory after a wait see them (a semaphore wait alone does not).
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    dev->vk.vkCmdPipelineBarrier(s->cmd,
                                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VkResult r = dev->vk.vkEndCommandBuffer(s->cmd);
    s->state = STREAM_IDLE;
    VKI_TRY(vki__check(dev, r, "vkEndCommandBuffer"));
    s->state = STREAM_READY;
    return VKI_OK;
}

vki_status vki_stream_submit(vki_stream *s, uint64_t *out_ticket)
{
    if (!s) return VKI_ERROR_INVALID_ARGUMENT;
    if (s->state != STREAM_READY)
        return VKI_DEV_FAIL(s->dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: submit before a completed recording (begin ... end)",
                            s->name);
    // The command buffer is not simultaneous-use: a replay waits for the previous run.
    VKI_TRY(wait_last(s));
    VKI_TRY(vki__submit(s->dev, s->cmd, &s->ticket));
    if (out_ticket) *out_ticket = s->ticket;
    return VKI_OK;
}

vki_status vki_stream_timings(vki_stream *s, double *out_us, uint32_t capacity, uint32_t *out_count)
{
    if (!s || !out_count || (capacity && !out_us)) return VKI_ERROR_INVALID_ARGUMENT;
    *out_count = 0;
    vki_device *dev = s->dev;
    if (!s->queries)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s was created without timestamps", s->name);
    if (!s->ticket || vki_device_completed(dev) < s->ticket)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "stream %s: timings are read after its submission completes", s->name);
    if (s->timed == 0) return VKI_OK;
    uint64_t ticks[1025];
    uint32_t n = s->timed + 1;
    uint64_t *buf = ticks;
    if (n > 1025) {
        buf = vki__alloc(dev->inst, n * sizeof *buf);
        if (!buf)
            return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                                "out of host memory (%u timestamps)", n);
    }
    VkResult r = dev->vk.vkGetQueryPoolResults(dev->handle, s->queries, 0, n, n * sizeof *buf, buf,
                                               sizeof *buf, VK_QUERY_RESULT_64_BIT);
    vki_status st = vki__check(dev, r, "vkGetQueryPoolResults");
    if (!st) {
        double period = dev->profile.timestamp_period;
        for (uint32_t i = 0; i < s->timed && i < capacity; i++) {
            uint64_t d = buf[i + 1] >= buf[i] ? buf[i + 1] - buf[i] : 0;
            out_us[i] = (double)d * period / 1000.0;
        }
        *out_count = s->timed < capacity ? s->timed : capacity;
    }
    if (buf != ticks) vki__free(dev->inst, buf);
    return st;
}
