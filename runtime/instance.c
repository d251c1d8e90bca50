/* Vulkan instance: loader via volk, the optional validation layer and its message callback,
 * physical-device enumeration and the default device choice. */
#include "runtime_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    vki_instance *inst = user;
    bool validation = (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT) != 0;
    vki_log_level level = VKI_LOG_INFO;
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)
        level = VKI_LOG_ERROR;
    else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)
        level = VKI_LOG_WARN;
    // Warnings count too: the validation layer warns about real misuse (e.g. a barrier that
    // misses a hazard under best-practices), and the tests want it silent.
    if (validation && level <= VKI_LOG_WARN) inst->validation_count++;
    const char *text = data && data->pMessage ? data->pMessage : "(no message)";
    if (inst->log) {
        vki_log_level limit = inst->log_level ? inst->log_level : VKI_LOG_WARN;
        if (level <= limit || validation) inst->log(inst->log_user, level, validation, text);
    } else if (level <= VKI_LOG_WARN) {
        fprintf(stderr, "vkinfer %s: %s\n", validation ? "validation" : "driver", text);
    }
    return VK_FALSE;
}

static bool has_layer(const vki_instance *inst, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *layers = vki__alloc(inst, n * sizeof *layers);
    if (!layers) return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, layers) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(layers[i].layerName, name) == 0;
    vki__free(inst, layers);
    return found;
}

static bool has_instance_extension(const vki_instance *inst, const char *layer, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *ext = vki__alloc(inst, n * sizeof *ext);
    if (!ext) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, ext) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(ext[i].extensionName, name) == 0;
    vki__free(inst, ext);
    return found;
}

vki_status vki_instance_create(const vki_instance_desc *desc, vki_instance **out_instance)
{
    static const vki_instance_desc zero_desc;
    if (!out_instance) return VKI_ERROR_INVALID_ARGUMENT;
    *out_instance = NULL;
    if (!desc) desc = &zero_desc;

    vki_instance tmp = {0};
    if (desc->allocator) tmp.allocator = *desc->allocator;
    vki_instance *inst = vki__alloc(&tmp, sizeof *inst);
    if (!inst) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    inst->allocator = tmp.allocator;
    inst->log = desc->log;
    inst->log_user = desc->log_user;
    inst->log_level = desc->log_level ? desc->log_level : VKI_LOG_WARN;
    vki_status st = VKI_OK;

    VkResult r = volkInitialize();
    if (r != VK_SUCCESS) {
        st = vki__fail(inst, inst->last_error, VKI_ERROR_NOT_FOUND,
                       "no Vulkan loader found (libvulkan.so.1): install libvulkan1 and a driver "
                       "(mesa-vulkan-drivers provides lavapipe for CPUs)");
        goto fail;
    }
    uint32_t loader_version = volkGetInstanceVersion();
    if (loader_version < VK_API_VERSION_1_2) {
        st = vki__fail(inst, inst->last_error, VKI_ERROR_UNSUPPORTED,
                       "the Vulkan loader is version %u.%u; vkinfer needs 1.2 or newer",
                       VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));
        goto fail;
    }

    inst->validation = desc->validation || env_flag("VKI_VALIDATION");
    if (inst->validation && !has_layer(inst, VALIDATION_LAYER)) {
        st = vki__fail(inst, inst->last_error, VKI_ERROR_UNSUPPORTED,
                       "the validation layer %s is not installed (Debian: vulkan-validationlayers)",
                       VALIDATION_LAYER);
        goto fail;
    }
    inst->debug_utils = has_instance_extension(inst, NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                        (inst->validation &&
                         has_instance_extension(inst, VALIDATION_LAYER, VK_EXT_DEBUG_UTILS_EXTENSION_NAME));

    const char *extensions[4];
    uint32_t extension_count = 0;
    if (inst->debug_utils) extensions[extension_count++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    // MoltenVK (macOS) and other portability drivers are only listed when the app opts in:
    // enable VK_KHR_portability_enumeration where the loader has it, with the matching flag
    // (devices then enable VK_KHR_portability_subset; device.c).
    bool portability = has_instance_extension(inst, NULL, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    if (portability) extensions[extension_count++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
    const char *layers[] = {VALIDATION_LAYER};

    VkDebugUtilsMessengerCreateInfoEXT messenger_info = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_debug_message,
        .pUserData = inst,
    };
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = desc->app_name ? desc->app_name : "vkinfer",
        .pEngineName = "vkinfer",
        .engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
        .apiVersion = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2,
    };
    VkInstanceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        // Chained so that instance creation and destruction are validated too.
        .pNext = inst->validation && inst->debug_utils ? &messenger_info : NULL,
        .flags = portability ? VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR : 0,
        .pApplicationInfo = &app,
        .enabledLayerCount = inst->validation ? 1u : 0u,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = extension_count,
        .ppEnabledExtensionNames = extensions,
    };
    r = vkCreateInstance(&info, NULL, &inst->handle);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
        st = vki__fail(inst, inst->last_error, VKI_ERROR_NOT_FOUND,
                       "no usable Vulkan driver (VK_ERROR_INCOMPATIBLE_DRIVER): install or repair "
                       "the GPU's Vulkan driver, or mesa-vulkan-drivers for the lavapipe CPU device");
        goto fail;
    }
    if (r != VK_SUCCESS) {
        st = vki__fail(inst, inst->last_error, vki__status_from_vk(r),
                       "vkCreateInstance failed: %s", vki__vk_result_name(r));
        goto fail;
    }
    // Instance-level pointers only: device functions live in each device's own table.
    volkLoadInstanceOnly(inst->handle);

    if (inst->debug_utils) {
        messenger_info.messageSeverity |= inst->log_level >= VKI_LOG_INFO
                                              ? VK_DEBUG_UTILS_MESSAGE_SEVERITY_INFO_BIT_EXT
                                              : 0;
        r = vkCreateDebugUtilsMessengerEXT(inst->handle, &messenger_info, NULL, &inst->messenger);
        if (r != VK_SUCCESS) inst->messenger = VK_NULL_HANDLE; // messages are a convenience
    }

    uint32_t n = 0;
    r = vkEnumeratePhysicalDevices(inst->handle, &n, NULL);
    if (r != VK_SUCCESS || n == 0) {
        st = vki__fail(inst, inst->last_error, VKI_ERROR_NOT_FOUND,
                       "no Vulkan device found (%s): install a GPU driver, or mesa-vulkan-drivers "
                       "for the lavapipe CPU device",
                       r != VK_SUCCESS ? vki__vk_result_name(r) : "the loader lists none");
        goto fail;
    }
    VkPhysicalDevice *handles = vki__alloc(inst, n * sizeof *handles);
    inst->physicals = vki__alloc(inst, n * sizeof *inst->physicals);
    if (!handles || !inst->physicals) {
        vki__free(inst, handles);
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    r = vkEnumeratePhysicalDevices(inst->handle, &n, handles);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        vki__free(inst, handles);
        st = vki__fail(inst, inst->last_error, vki__status_from_vk(r),
                       "vkEnumeratePhysicalDevices failed: %s", vki__vk_result_name(r));
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++) {
        vkGetPhysicalDeviceProperties(handles[i], &inst->physicals[inst->physical_count].props);
        // vkinfer needs Vulkan 1.2 (timeline semaphores, 16-bit storage as core features).
        if (inst->physicals[inst->physical_count].props.apiVersion < VK_API_VERSION_1_2) {
            vki__log(inst, VKI_LOG_INFO, "skipping %s: Vulkan %u.%u, vkinfer needs 1.2",
                     inst->physicals[inst->physical_count].props.deviceName,
                     VK_API_VERSION_MAJOR(inst->physicals[inst->physical_count].props.apiVersion),
                     VK_API_VERSION_MINOR(inst->physicals[inst->physical_count].props.apiVersion));
            continue;
        }
        inst->physicals[inst->physical_count++].handle = handles[i];
    }
    vki__free(inst, handles);
    if (inst->physical_count == 0) {
        st = vki__fail(inst, inst->last_error, VKI_ERROR_UNSUPPORTED,
                       "no Vulkan 1.2 device found: update the GPU driver");
        goto fail;
    }
    *out_instance = inst;
    return VKI_OK;

fail:
    // The message is in the log; the instance it was recorded on goes away.
    vki_instance_destroy(inst);
    return st;
}

void vki_instance_destroy(vki_instance *inst)
{
    if (!inst) return;
    if (inst->messenger) vkDestroyDebugUtilsMessengerEXT(inst->handle, inst->messenger, NULL);
    if (inst->handle) vkDestroyInstance(inst->handle, NULL);
    vki__free(inst, inst->physicals);
    vki__free(inst, inst);
}

const char *vki_instance_last_error(const vki_instance *inst)
{
    return inst ? inst->last_error : "";
}

uint32_t vki_instance_validation_count(const vki_instance *inst)
{
    return inst ? inst->validation_count : 0;
}

uint32_t vki_instance_device_count(const vki_instance *inst)
{
    return inst ? inst->physical_count : 0;
}

static int type_rank(VkPhysicalDeviceType type)
{
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return true;
    }
    return n == 0;
}

vki_status vki_instance_select_device(vki_instance *inst, const char *selector,
                                      uint32_t *out_index)
{
    if (!inst || !out_index) return VKI_ERROR_INVALID_ARGUMENT;
    const char *source = "selector";
    if (!selector || !*selector) {
        selector = getenv("VKI_DEVICE");
        source = "VKI_DEVICE";
    }
    if (!selector || !*selector) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < inst->physical_count; i++)
            if (type_rank(inst->physicals[i].props.deviceType) <
                type_rank(inst->physicals[best].props.deviceType))
                best = i;
        *out_index = best;
        return VKI_OK;
    }

    bool digits = true;
    for (const char *p = selector; *p; p++) digits = digits && isdigit((unsigned char)*p);
    if (digits) {
        unsigned long idx = strtoul(selector, NULL, 10);
        if (strlen(selector) < 10 && idx < inst->physical_count) {
            *out_index = (uint32_t)idx;
            return VKI_OK;
        }
    } else {
        for (uint32_t i = 0; i < inst->physical_count; i++)
            if (contains_nocase(inst->physicals[i].props.deviceName, selector)) {
                *out_index = i;
                return VKI_OK;
            }
    }
    char list[512] = "";
    size_t used = 0;
    for (uint32_t i = 0; i < inst->physical_count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%u: %s", i ? ", " : "", i,
                                 inst->physicals[i].props.deviceName);
    return vki__fail(inst, inst->last_error, VKI_ERROR_NOT_FOUND,
                     "no Vulkan device matches %s \"%s\"; available: %s", source, selector, list);
}
