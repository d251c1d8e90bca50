/* Logical device: one compute queue, its timeline semaphore, the per-device function table,
 * the staging ring and the pipeline cache; error bookkeeping shared by the runtime. */
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vki_status vki__alive(vki_device *dev)
{
    if (!dev->lost) return VKI_OK;
    return VKI_DEV_FAIL(dev, VKI_ERROR_DEVICE_LOST,
                        "%s was lost earlier (driver reset, hang or removal): destroy the device "
                        "and create it again; results computed since are invalid",
                        dev->profile.name);
}

bool vki__take_fault(vki_device *dev, vki_fault kind)
{
    if (dev->fault != kind) return false;
    dev->fault = VKI_FAULT_NONE;
    return true;
}

vki_status vki__check(vki_device *dev, VkResult result, const char *what)
{
    if (result == VK_SUCCESS && vki__take_fault(dev, VKI_FAULT_DEVICE_LOST)) {
        // A real loss abandons pending work; finish it so that the simulated state matches
        // (no object is destroyed while the device still uses it).
        dev->vk.vkDeviceWaitIdle(dev->handle);
        result = VK_ERROR_DEVICE_LOST;
    }
    if (result == VK_SUCCESS) return VKI_OK;
    if (result == VK_ERROR_DEVICE_LOST) {
        dev->lost = true;
        return VKI_DEV_FAIL(dev, VKI_ERROR_DEVICE_LOST,
                            "%s: %s reported VK_ERROR_DEVICE_LOST (driver reset, GPU hang or "
                            "removal); destroy the device and create it again",
                            what, dev->profile.name);
    }
    if (result == VK_TIMEOUT)
        return VKI_DEV_FAIL(dev, VKI_ERROR_TIMEOUT, "%s: timed out", what);
    return VKI_DEV_FAIL(dev, vki__status_from_vk(result), "%s failed: %s", what,
                        vki__vk_result_name(result));
}

void vki__name(vki_device *dev, VkObjectType type, uint64_t handle, const char *name)
{
    if (!dev->inst->debug_utils || !name || !handle) return;
    VkDebugUtilsObjectNameInfoEXT info = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_OBJECT_NAME_INFO_EXT,
        .objectType = type,
        .objectHandle = handle,
        .pObjectName = name,
    };
    vkSetDebugUtilsObjectNameEXT(dev->handle, &info);
}

static uint32_t pick_queue_family(VkPhysicalDevice phys)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &n, NULL);
    VkQueueFamilyProperties qf[32];
    if (n > 32) n = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(phys, &n, qf);
    // Prefer a family that does compute with graphics: on most GPUs it is the fastest queue and
    // the one whose timestamps work; a compute-only family is the fallback.
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        if (!(qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        if (best == UINT32_MAX || (qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = i;
        if (qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) break;
    }
    return best;
}

/* Whether the physical device lists extension `name`. */
static bool has_device_extension(const vki_instance *inst, VkPhysicalDevice phys, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(phys, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *ext = vki__alloc(inst, n * sizeof *ext);
    bool found = false;
    if (ext && vkEnumerateDeviceExtensionProperties(phys, NULL, &n, ext) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(ext[i].extensionName, name) == 0;
    vki__free(inst, ext);
    return found;
}


/* Under a memory limit device-local heaps report its size and budget (lavapipe's heap is a
 * made-up share of system memory, so the limit may be larger), so that what sizes itself by the
 * budget (the VAE's tiles) behaves as on a card of that size. */
static void apply_memory_limit(vki_device *dev)
{
    if (!dev->memory_limit) return;
    vki_profile *p = &dev->profile;
    p->device_local_bytes = 0;
    for (uint32_t h = 0; h < p->heap_count; h++) {
        vki_heap *heap = &p->heaps[h];
        if (!heap->device_local) continue;
        heap->size = heap->budget = dev->memory_limit;
        heap->usage = dev->stats.device_bytes;
        p->device_local_bytes += heap->size;
    }
}

vki_status vki_device_create(vki_instance *inst, const vki_device_desc *desc,
                             vki_device **out_device)
{
    static const vki_device_desc zero_desc;
    if (!inst || !out_device) return VKI_ERROR_INVALID_ARGUMENT;
    *out_device = NULL;
    if (!desc) desc = &zero_desc;

    uint32_t index = 0;
    VKI_TRY(vki_instance_select_device(inst, desc->select, &index));
    vki_narrowing narrowing;
    if (desc->narrowing)
        narrowing = *desc->narrowing;
    else
        VKI_TRY(vki__narrowing_from_env(inst, &narrowing));

    vki_device *dev = vki__alloc(inst, sizeof *dev);
    if (!dev)
        return vki__fail(inst, inst->last_error, VKI_ERROR_OUT_OF_HOST_MEMORY,
                         "out of host memory (%zu bytes for a device)", sizeof *dev);
    dev->inst = inst;
    dev->physical_index = index;
    dev->physical = inst->physicals[index].handle;
    vki_status st = VKI_OK;
    vki_feature_chain chain;
    st = vki__profile_query(inst, index, &narrowing, &dev->profile, &chain);
    if (st) goto fail_copy_error;
    vkGetPhysicalDeviceMemoryProperties(dev->physical, &dev->memory_props);
    dev->memory_limit = desc->memory_limit;
    const char *limit = getenv("VKI_MEMORY_LIMIT");
    if (!dev->memory_limit && limit && *limit && !vki__parse_bytes(limit, &dev->memory_limit)) {
        st = VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT, "VKI_MEMORY_LIMIT=%s: want bytes, or a "
                          "number with K, M or G (\"4G\")", limit);
        goto fail_copy_error;
    }
    apply_memory_limit(dev);

    dev->queue_family = pick_queue_family(dev->physical);
    if (dev->queue_family == UINT32_MAX) {
        st = VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED, "%s has no compute queue", dev->profile.name);
        goto fail_copy_error;
    }
    // A portability driver (MoltenVK, listed because the instance enabled
    // VK_KHR_portability_enumeration) implements Vulkan over another API with some features
    // missing; the spec requires enabling VK_KHR_portability_subset wherever it is listed. The
    // kernels use none of what it takes away (triangle fans, image view swizzles, ...). The name
    // is spelt out: its macro lives in vulkan_beta.h.
    const char *portability_subset = "VK_KHR_portability_subset";
    if (chain.extension_count < sizeof chain.extensions / sizeof chain.extensions[0] &&
        has_device_extension(inst, dev->physical, portability_subset))
        chain.extensions[chain.extension_count++] = portability_subset;
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue_info = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = dev->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    VkDeviceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &chain.f2,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &queue_info,
        .enabledExtensionCount = chain.extension_count,
        .ppEnabledExtensionNames = chain.extensions,
    };
    VkResult r = vkCreateDevice(dev->physical, &info, NULL, &dev->handle);
    if (r != VK_SUCCESS) {
        st = vki__check(dev, r, "vkCreateDevice");
        goto fail_copy_error;
    }
    volkLoadDeviceTable(&dev->vk, dev->handle);
    dev->vk.vkGetDeviceQueue(dev->handle, dev->queue_family, 0, &dev->queue);

    VkSemaphoreTypeCreateInfo type_info = {
        .sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
        .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE,
        .initialValue = 0,
    };
    VkSemaphoreCreateInfo sem_info = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO,
                                      .pNext = &type_info};
    r = dev->vk.vkCreateSemaphore(dev->handle, &sem_info, NULL, &dev->timeline);
    if ((st = vki__check(dev, r, "vkCreateSemaphore(timeline)"))) goto fail_copy_error;
    vki__name(dev, VK_OBJECT_TYPE_SEMAPHORE, (uint64_t)dev->timeline, "vkinfer timeline");

    if ((st = vki__pipeline_cache_open(dev, desc->cache_dir))) goto fail_copy_error;
    uint64_t staging = desc->staging_size ? desc->staging_size : 32ull << 20;
    if ((st = vki__staging_create(dev, staging, &dev->staging))) goto fail_copy_error;

    vki__log(inst, VKI_LOG_INFO, "opened %s (%s, %s), tuning %s", dev->profile.name,
             vki_device_type_name(dev->profile.type), dev->profile.driver_info,
             dev->profile.tuning.name);
    *out_device = dev;
    return VKI_OK;

fail_copy_error:
    // The device's message outlives it on the instance, where the caller can read it.
    if (dev->last_error[0]) memcpy(inst->last_error, dev->last_error, sizeof inst->last_error);
    vki_device_destroy(dev);
    return st;
}

void vki_device_destroy(vki_device *dev)
{
    if (!dev) return;
    vki_instance *inst = dev->inst;
    if (dev->handle) {
        // A lost device still needs its objects destroyed; the wait result does not matter.
        dev->vk.vkDeviceWaitIdle(dev->handle);
        vki__staging_destroy(dev, dev->staging);
        vki__kernels_destroy_all(dev);
        if (dev->pipeline_cache && !dev->lost) vki__pipeline_cache_save(dev);
        vki__pipeline_cache_close(dev);
        if (dev->timeline) dev->vk.vkDestroySemaphore(dev->handle, dev->timeline, NULL);
        dev->vk.vkDestroyDevice(dev->handle, NULL);
    }
    vki__free(inst, dev);
}

vki_status vki_device_report(vki_device *dev, vki_status status, const char *fmt, ...)
{
    if (!dev) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dev->last_error, sizeof dev->last_error, fmt, ap);
    va_end(ap);
    vki__log(dev->inst, VKI_LOG_ERROR, "%s", dev->last_error);
    return status;
}

const vki_profile *vki_device_profile(const vki_device *dev) { return dev ? &dev->profile : NULL; }
const char *vki_device_last_error(const vki_device *dev) { return dev ? dev->last_error : ""; }
vki_instance *vki_device_instance(const vki_device *dev) { return dev ? dev->inst : NULL; }

void vki_device_refresh_budget(vki_device *dev)
{
    if (!dev) return;
    if (!dev->profile.memory_budget) {
        apply_memory_limit(dev);
        return;
    }
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &budget};
    vkGetPhysicalDeviceMemoryProperties2(dev->physical, &mp);
    for (uint32_t h = 0; h < dev->profile.heap_count; h++) {
        if (budget.heapBudget[h]) dev->profile.heaps[h].budget = budget.heapBudget[h];
        dev->profile.heaps[h].usage = budget.heapUsage[h];
    }
    apply_memory_limit(dev);
}

void vki_device_stats_get(const vki_device *dev, vki_device_stats *out)
{
    if (!out) return;
    if (!dev) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = dev->stats;
}

vki_status vki_device_save_pipeline_cache(vki_device *dev)
{
    if (!dev) return VKI_ERROR_INVALID_ARGUMENT;
    return vki__pipeline_cache_save(dev);
}

void vki_device_inject_fault(vki_device *dev, vki_fault fault)
{
    if (dev && (unsigned)fault < VKI_FAULT_COUNT) dev->fault = fault;
}

vki_status vki__submit(vki_device *dev, VkCommandBuffer cmd, uint64_t *out_ticket)
{
    VKI_TRY(vki__alive(dev));
    uint64_t value = dev->timeline_next + 1;
    VkTimelineSemaphoreSubmitInfo timeline = {
        .sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
        .signalSemaphoreValueCount = 1,
        .pSignalSemaphoreValues = &value,
    };
    VkSubmitInfo submit = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .pNext = &timeline,
        .commandBufferCount = 1,
        .pCommandBuffers = &cmd,
        .signalSemaphoreCount = 1,
        .pSignalSemaphores = &dev->timeline,
    };
    VkResult r = dev->vk.vkQueueSubmit(dev->queue, 1, &submit, VK_NULL_HANDLE);
    VKI_TRY(vki__check(dev, r, "vkQueueSubmit"));
    dev->timeline_next = value;
    if (out_ticket) *out_ticket = value;
    return VKI_OK;
}

vki_status vki__submit_wait(vki_device *dev, VkCommandBuffer cmd, uint64_t *out_ticket)
{
    uint64_t ticket = 0;
    VKI_TRY(vki__submit(dev, cmd, &ticket));
    if (out_ticket) *out_ticket = ticket;
    return vki_device_wait(dev, ticket, UINT64_MAX);
}

vki_status vki_device_wait(vki_device *dev, uint64_t ticket, uint64_t timeout_ns)
{
    if (!dev) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(vki__alive(dev));
    if (ticket > dev->timeline_next)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "waiting for ticket %llu, but only %llu were submitted: it would "
                            "never complete",
                            (unsigned long long)ticket, (unsigned long long)dev->timeline_next);
    VkSemaphoreWaitInfo wait = {
        .sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO,
        .semaphoreCount = 1,
        .pSemaphores = &dev->timeline,
        .pValues = &ticket,
    };
    VkResult r = dev->vk.vkWaitSemaphores(dev->handle, &wait, timeout_ns);
    if (r == VK_TIMEOUT) {
        // Expected when polling: not logged as an error.
        snprintf(dev->last_error, sizeof dev->last_error,
                 "ticket %llu not reached within %llu ns", (unsigned long long)ticket,
                 (unsigned long long)timeout_ns);
        return VKI_ERROR_TIMEOUT;
    }
    return vki__check(dev, r, "vkWaitSemaphores");
}

uint64_t vki_device_completed(vki_device *dev)
{
    uint64_t value = 0;
    if (!dev || dev->lost) return 0;
    if (dev->vk.vkGetSemaphoreCounterValue(dev->handle, dev->timeline, &value) != VK_SUCCESS)
        return 0;
    return value;
}

vki_status vki_device_wait_idle(vki_device *dev)
{
    if (!dev) return VKI_ERROR_INVALID_ARGUMENT;
    return vki_device_wait(dev, dev->timeline_next, UINT64_MAX);
}
