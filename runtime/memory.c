/* Device memory: buffers with their own memory block, and arenas that suballocate from them.
 * Nothing allocates device memory per tensor: an arena takes large blocks and hands out
 * aligned ranges by bumping an offset. */
#include "runtime_internal.h"

#include <stdio.h>
#include <string.h>

struct vki_arena {
    vki_device *dev;
    vki_arena_kind kind;
    char name[64];
    uint64_t block_size;
    vki_buffer *blocks;       // in fill order; `current` is the one being filled
    vki_buffer *tail;
    vki_buffer *current;
    uint64_t offset;          // bump offset in `current`
    uint64_t used;            // bytes handed out since reset (with alignment padding)
    uint64_t capacity;
};

uint32_t vki__memory_type(const vki_device *dev, uint32_t type_bits, VkMemoryPropertyFlags required,
                          VkMemoryPropertyFlags preferred)
{
    const VkPhysicalDeviceMemoryProperties *m = &dev->memory_props;
    uint32_t best = UINT32_MAX;
    int best_score = -1;
    for (uint32_t i = 0; i < m->memoryTypeCount; i++) {
        if (!(type_bits & (1u << i))) continue;
        VkMemoryPropertyFlags f = m->memoryTypes[i].propertyFlags;
        if ((f & required) != required) continue;
        // Count preferred bits; the first type wins ties (drivers list the best first).
        int score = __builtin_popcount(f & preferred);
        if (score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

static vki_status out_of_memory(vki_device *dev, uint64_t size, uint32_t type, const char *name,
                                const char *why)
{
    char req[32], heap_size[32], budget[32], held[32];
    vki_device_refresh_budget(dev);
    uint32_t heap = type < dev->memory_props.memoryTypeCount
                        ? dev->memory_props.memoryTypes[type].heapIndex
                        : 0;
    const vki_heap *h = &dev->profile.heaps[heap < VKI_MAX_HEAPS ? heap : 0];
    return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_DEVICE_MEMORY,
                        "out of device memory allocating %s for %s on %s (%s): heap %u has %s, "
                        "budget %s; vkinfer holds %s. Use a smaller model, quantization or "
                        "context, or close other GPU programs",
                        vki__bytes(size, req), name, dev->profile.name, why, heap,
                        vki__bytes(h->size, heap_size), vki__bytes(h->budget, budget),
                        vki__bytes(dev->stats.device_bytes, held));
}

vki_status vki__buffer_create(vki_device *dev, uint64_t size, VkMemoryPropertyFlags required,
                              VkMemoryPropertyFlags preferred, const char *name,
                              vki_buffer **out_buffer)
{
    *out_buffer = NULL;
    VKI_TRY(vki__alive(dev));
    const vki_profile *p = &dev->profile;
    // Whole 16-byte units, so that a texel view of the last binding can cover it with whole
    // texels of up to 16 bytes.
    size = size ? (size + 15) & ~(uint64_t)15 : 16;
    if (size > p->max_buffer_size || size > p->max_allocation) {
        char a[32], b[32];
        return VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED,
                            "%s: one block of %s exceeds %s's largest buffer/allocation (%s)",
                            name, vki__bytes(size, a), p->name,
                            vki__bytes(p->max_allocation < p->max_buffer_size ? p->max_allocation
                                                                              : p->max_buffer_size,
                                       b));
    }
    vki_buffer *buf = vki__alloc(dev->inst, sizeof *buf);
    if (!buf)
        return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                            "out of host memory (%zu bytes for a buffer)", sizeof *buf);
    buf->dev = dev;
    buf->size = size;
    vki_status st = VKI_OK;

    VkBufferCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        // Kernels may read a binding as texels (cheaper loads on some devices).
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = dev->vk.vkCreateBuffer(dev->handle, &info, NULL, &buf->handle);
    if ((st = vki__check(dev, r, "vkCreateBuffer"))) goto fail;
    VkMemoryRequirements req;
    dev->vk.vkGetBufferMemoryRequirements(dev->handle, buf->handle, &req);
    uint32_t type = vki__memory_type(dev, req.memoryTypeBits, required, preferred);
    if (type == UINT32_MAX) {
        st = VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED,
                          "%s: %s has no memory type with properties 0x%x", name, p->name,
                          (unsigned)required);
        goto fail;
    }
    uint32_t heap = dev->memory_props.memoryTypes[type].heapIndex;
    if (req.size > dev->memory_props.memoryHeaps[heap].size) {
        st = out_of_memory(dev, req.size, type, name, "larger than the heap");
        goto fail;
    }
    if (dev->memory_limit && req.size > dev->memory_limit - dev->stats.device_bytes) {
        st = out_of_memory(dev, req.size, type, name, "over the memory limit");
        goto fail;
    }
    if (vki__take_fault(dev, VKI_FAULT_OUT_OF_DEVICE_MEMORY)) {
        st = out_of_memory(dev, req.size, type, name, "injected by a test");
        goto fail;
    }
    VkMemoryAllocateInfo alloc = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = type,
    };
    r = dev->vk.vkAllocateMemory(dev->handle, &alloc, NULL, &buf->memory);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
        buf->memory = VK_NULL_HANDLE;
        st = out_of_memory(dev, req.size, type, name, vki__vk_result_name(r));
        goto fail;
    }
    if ((st = vki__check(dev, r, "vkAllocateMemory"))) goto fail;
    r = dev->vk.vkBindBufferMemory(dev->handle, buf->handle, buf->memory, 0);
    if ((st = vki__check(dev, r, "vkBindBufferMemory"))) goto fail;

    VkMemoryPropertyFlags flags = dev->memory_props.memoryTypes[type].propertyFlags;
    // Mapped when asked for, or on UMA devices where device-local memory is host memory; a
    // discrete GPU's small host-visible window (BAR) is left to explicit HOST arenas.
    bool map = (required & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) ||
               (dev->profile.uma && (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT));
    if (map) {
        r = dev->vk.vkMapMemory(dev->handle, buf->memory, 0, VK_WHOLE_SIZE, 0, &buf->mapped);
        if ((st = vki__check(dev, r, "vkMapMemory"))) goto fail;
        buf->coherent = (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
    }
    vki__name(dev, VK_OBJECT_TYPE_BUFFER, (uint64_t)buf->handle, name);
    vki__name(dev, VK_OBJECT_TYPE_DEVICE_MEMORY, (uint64_t)buf->memory, name);
    dev->stats.device_bytes += req.size;
    if (dev->stats.device_bytes > dev->stats.device_bytes_peak)
        dev->stats.device_bytes_peak = dev->stats.device_bytes;
    dev->stats.allocations++;
    *out_buffer = buf;
    return VKI_OK;

fail:
    vki__buffer_destroy(buf);
    return st;
}

void vki__buffer_destroy(vki_buffer *buf)
{
    if (!buf) return;
    vki_device *dev = buf->dev;
    if (buf->handle) {
        if (buf->memory) {
            VkMemoryRequirements req;
            dev->vk.vkGetBufferMemoryRequirements(dev->handle, buf->handle, &req);
            dev->stats.device_bytes -= req.size;
            dev->stats.allocations--;
        }
        dev->vk.vkDestroyBuffer(dev->handle, buf->handle, NULL);
    }
    if (buf->memory) dev->vk.vkFreeMemory(dev->handle, buf->memory, NULL);
    vki__free(dev->inst, buf);
}

/* ---- Arenas ------------------------------------------------------------------------------- */

static const char *kind_name(vki_arena_kind kind)
{
    switch (kind) {
    case VKI_ARENA_WEIGHTS: return "weights";
    case VKI_ARENA_HOST: return "host";
    default: return "activations";
    }
}

vki_status vki_arena_create(vki_device *dev, const vki_arena_desc *desc, vki_arena **out_arena)
{
    static const vki_arena_desc zero_desc;
    if (!dev || !out_arena) return VKI_ERROR_INVALID_ARGUMENT;
    *out_arena = NULL;
    if (!desc) desc = &zero_desc;
    if ((unsigned)desc->kind >= VKI_ARENA_KIND_COUNT)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT, "arena kind %d is not a vki_arena_kind",
                            (int)desc->kind);
    vki_arena *a = vki__alloc(dev->inst, sizeof *a);
    if (!a)
        return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                            "out of host memory (%zu bytes for an arena)", sizeof *a);
    a->dev = dev;
    a->kind = desc->kind ? desc->kind : VKI_ARENA_ACTIVATIONS;
    snprintf(a->name, sizeof a->name, "%s", desc->name ? desc->name : kind_name(a->kind));
    uint64_t limit = dev->profile.max_allocation < dev->profile.max_buffer_size
                         ? dev->profile.max_allocation
                         : dev->profile.max_buffer_size;
    a->block_size = desc->block_size ? desc->block_size : 256ull << 20;
    if (a->block_size > limit) a->block_size = limit;
    *out_arena = a;
    return VKI_OK;
}

void vki_arena_destroy(vki_arena *a)
{
    if (!a) return;
    for (vki_buffer *b = a->blocks, *next; b; b = next) {
        next = b->next;
        vki__buffer_destroy(b);
    }
    vki__free(a->dev->inst, a);
}

static void memory_flags(const vki_arena *a, VkMemoryPropertyFlags *required,
                         VkMemoryPropertyFlags *preferred)
{
    const vki_profile *p = &a->dev->profile;
    switch (a->kind) {
    case VKI_ARENA_HOST:
        // Read back often and written by the host: cached where possible.
        *required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        *preferred = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
        break;
    case VKI_ARENA_WEIGHTS:
        // On UMA devices, weights are written in place: no staging copy.
        *required = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                    (p->uma ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT : 0);
        *preferred = 0;
        break;
    default:
        *required = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
        *preferred = 0;
        break;
    }
}

/* Blocks are listed in fill order and kept on reset, so every block after `current` is unused:
 * take the first of those that fits, else allocate a new one at the end. */
static vki_status next_block(vki_arena *a, uint64_t need)
{
    for (vki_buffer *b = a->current ? a->current->next : a->blocks; b; b = b->next)
        if (b->size >= need) {
            a->current = b;
            a->offset = 0;
            return VKI_OK;
        }
    uint64_t size = need > a->block_size ? need : a->block_size;
    VkMemoryPropertyFlags required, preferred;
    memory_flags(a, &required, &preferred);
    vki_buffer *b = NULL;
    char name[96];
    snprintf(name, sizeof name, "arena %s block", a->name);
    VKI_TRY(vki__buffer_create(a->dev, size, required, preferred, name, &b));
    if (a->tail)
        a->tail->next = b;
    else
        a->blocks = b;
    a->tail = b;
    a->current = b;
    a->offset = 0;
    a->capacity += b->size;
    return VKI_OK;
}

vki_status vki_arena_alloc(vki_arena *a, uint64_t size, uint64_t align, vki_range *out_range)
{
    if (!a || !out_range) return VKI_ERROR_INVALID_ARGUMENT;
    memset(out_range, 0, sizeof *out_range);
    vki_device *dev = a->dev;
    if (size == 0)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT, "arena %s: zero-byte allocation",
                            a->name);
    uint64_t base = dev->profile.storage_align ? dev->profile.storage_align : 16;
    if (base < 16) base = 16;
    if (align == 0) align = base;
    if (align & (align - 1))
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "arena %s: alignment %llu is not a power of two", a->name,
                            (unsigned long long)align);
    if (align < base) align = base;
    // Sizes are padded to 16 bytes so that vec4 loads past a tensor's end stay in bounds.
    uint64_t padded;
    if (!vki__add_ok(size, 15, &padded))
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT, "arena %s: size overflows", a->name);
    padded &= ~15ull;

    uint64_t start = a->current ? vki_align_up(a->offset, align) : 0;
    uint64_t end;
    if (!a->current || !vki__add_ok(start, padded, &end) || end > a->current->size) {
        VKI_TRY(next_block(a, padded));
        start = 0;
        end = padded;
    }
    a->used += end - a->offset;
    a->offset = end;
    out_range->buffer = a->current;
    out_range->offset = start;
    out_range->size = size;
    return VKI_OK;
}

void vki_arena_reset(vki_arena *a)
{
    if (!a) return;
    a->current = NULL;
    a->offset = 0;
    a->used = 0;
}

uint64_t vki_arena_used(const vki_arena *a) { return a ? a->used : 0; }
uint64_t vki_arena_capacity(const vki_arena *a) { return a ? a->capacity : 0; }

void *vki_range_map(vki_range r)
{
    if (!r.buffer || !r.buffer->mapped) return NULL;
    return (char *)r.buffer->mapped + r.offset;
}

uint64_t vki_range_capacity(vki_range r)
{
    if (!r.buffer || r.offset > r.buffer->size) return 0;
    return r.buffer->size - r.offset;
}
