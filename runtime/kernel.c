/* Kernels: compute pipelines from embedded (or given) SPIR-V with specialisation constants.
 * The module is reflected first and checked against what the C side says it will bind and
 * push, and against the device limits, so a drifted shader fails here with both sides named
 * instead of corrupting memory at dispatch. */
#include "runtime_internal.h"

#include <stdio.h>
#include <string.h>

const vki_shader_module *vki_shader_find(const char *name)
{
    if (!name) return NULL;
    for (uint32_t i = 0; i < vki_shader_count(); i++)
        if (strcmp(vki_shader_at(i)->name, name) == 0) return vki_shader_at(i);
    return NULL;
}

static vki_status check_module(vki_device *dev, const char *name, const vki_kernel_desc *desc,
                               const vki_spirv_info *info)
{
    const vki_profile *p = &dev->profile;
    if (info->binding_count != desc->binding_count)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "kernel %s: the C side binds %u storage buffers, the SPIR-V declares %u",
                            name, desc->binding_count, info->binding_count);
    if (info->push_size != desc->push_size)
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "kernel %s: the C side pushes %u bytes of constants, the SPIR-V block "
                            "is %u bytes",
                            name, desc->push_size, info->push_size);
    if (info->push_size > p->push_constant_size)
        return VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED,
                            "kernel %s: %u bytes of push constants, %s allows %u", name,
                            info->push_size, p->name, p->push_constant_size);
    uint64_t invocations = (uint64_t)info->local_size[0] * info->local_size[1] * info->local_size[2];
    for (int i = 0; i < 3; i++)
        if (info->local_size[i] == 0 || info->local_size[i] > p->max_workgroup_size[i])
            return VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED,
                                "kernel %s: local size %u x %u x %u is outside %s's limits "
                                "(%u x %u x %u)",
                                name, info->local_size[0], info->local_size[1],
                                info->local_size[2], p->name, p->max_workgroup_size[0],
                                p->max_workgroup_size[1], p->max_workgroup_size[2]);
    if (invocations > p->max_workgroup_invocations)
        return VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED,
                            "kernel %s: %llu invocations per workgroup, %s allows %u", name,
                            (unsigned long long)invocations, p->name, p->max_workgroup_invocations);
    if (desc->subgroup_size &&
        (!p->subgroup_size_control || desc->subgroup_size < p->subgroup_min ||
         desc->subgroup_size > p->subgroup_max) &&
        desc->subgroup_size != p->subgroup_size)
        return VKI_DEV_FAIL(dev, VKI_ERROR_UNSUPPORTED,
                            "kernel %s: subgroup size %u requested, %s offers %u..%u%s", name,
                            desc->subgroup_size, p->name, p->subgroup_min, p->subgroup_max,
                            p->subgroup_size_control ? "" : " (no size control)");
    return VKI_OK;
}

VkDescriptorType vki__descriptor_type(const vki_spirv_info *info, uint32_t binding)
{
    if (!((info->texel_mask >> binding) & 1u)) return VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    return (info->image_mask >> binding) & 1u ? VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER
                                              : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
}

/* Sharing: pipeline creation is the costly part of a program's compile (on lavapipe SPIR-V to
 * NIR alone takes seconds for the unrolled kernels, on every create, the disk cache holding only
 * the machine code), and a process compiles the same kernels again and again: a model loaded
 * twice, a server's pass shapes, the SD pipeline's three models, the tiles of a tiled VAE. */
static vki_kernel *find_shared(vki_device *dev, const vki_kernel_desc *desc)
{
    for (vki_kernel *k = dev->kernels; k; k = k->next)
        if (strcmp(k->name, desc->name) == 0 && k->binding_count == desc->binding_count &&
            k->push_size == desc->push_size && k->subgroup_size == desc->subgroup_size &&
            k->spec_count == desc->spec_count &&
            (!desc->spec_count || memcmp(k->specs, desc->specs, desc->spec_count * sizeof *desc->specs) == 0))
            return k;
    return NULL;
}

vki_status vki_kernel_create(vki_device *dev, const vki_kernel_desc *desc, vki_kernel **out)
{
    if (!dev || !desc || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    VKI_TRY(vki__alive(dev));
    const uint32_t *words = desc->spirv;
    size_t word_count = desc->spirv_words;
    const char *name = desc->name ? desc->name : "(unnamed)";
    if (!words) {
        const vki_shader_module *m = vki_shader_find(desc->name);
        if (!m)
            return VKI_DEV_FAIL(dev, VKI_ERROR_NOT_FOUND, "no embedded kernel named \"%s\"", name);
        words = m->words;
        word_count = m->word_count;
    }
    if (desc->binding_count > VKI_MAX_BINDINGS || desc->spec_count > VKI_MAX_SPECS ||
        (desc->spec_count && !desc->specs))
        return VKI_DEV_FAIL(dev, VKI_ERROR_INVALID_ARGUMENT,
                            "kernel %s: at most %d bindings and %d specialisation constants", name,
                            VKI_MAX_BINDINGS, VKI_MAX_SPECS);
    bool share = !desc->spirv;
    if (share) {
        vki_kernel *made = find_shared(dev, desc);
        if (made) {
            if (made->refs++ == 0) dev->kernels_kept--;
            dev->stats.pipelines_shared++;
            *out = made;
            return VKI_OK;
        }
    }

    vki_kernel *k = vki__alloc(dev->inst, sizeof *k);
    if (!k)
        return VKI_DEV_FAIL(dev, VKI_ERROR_OUT_OF_HOST_MEMORY,
                            "out of host memory (%zu bytes for kernel %s)", sizeof *k, name);
    k->dev = dev;
    snprintf(k->name, sizeof k->name, "%s", name);
    vki_status st = VKI_OK;
    VkShaderModule module = VK_NULL_HANDLE;
    char why[256];
    st = vki_spirv_reflect(words, word_count, desc->specs, desc->spec_count, &k->info, why,
                           sizeof why);
    if (st) {
        st = VKI_DEV_FAIL(dev, st, "kernel %s: %s", name, why);
        goto fail;
    }
    if ((st = check_module(dev, name, desc, &k->info))) goto fail;

    VkDescriptorSetLayoutBinding bindings[VKI_MAX_BINDINGS];
    for (uint32_t i = 0; i < desc->binding_count; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = vki__descriptor_type(&k->info, i),
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = desc->binding_count,
        .pBindings = bindings,
    };
    VkResult r = dev->vk.vkCreateDescriptorSetLayout(dev->handle, &set_info, NULL, &k->set_layout);
    if ((st = vki__check(dev, r, "vkCreateDescriptorSetLayout"))) goto fail;
    VkPushConstantRange push = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        .offset = 0,
        .size = desc->push_size,
    };
    VkPipelineLayoutCreateInfo layout_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &k->set_layout,
        .pushConstantRangeCount = desc->push_size ? 1u : 0u,
        .pPushConstantRanges = &push,
    };
    r = dev->vk.vkCreatePipelineLayout(dev->handle, &layout_info, NULL, &k->layout);
    if ((st = vki__check(dev, r, "vkCreatePipelineLayout"))) goto fail;

    VkShaderModuleCreateInfo module_info = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = word_count * 4,
        .pCode = words,
    };
    r = dev->vk.vkCreateShaderModule(dev->handle, &module_info, NULL, &module);
    if ((st = vki__check(dev, r, "vkCreateShaderModule"))) goto fail;

    VkSpecializationMapEntry entries[VKI_MAX_SPECS];
    uint32_t values[VKI_MAX_SPECS];
    for (uint32_t i = 0; i < desc->spec_count; i++) {
        entries[i] = (VkSpecializationMapEntry){desc->specs[i].id, i * 4, 4};
        values[i] = desc->specs[i].value;
    }
    VkSpecializationInfo spec = {
        .mapEntryCount = desc->spec_count,
        .pMapEntries = entries,
        .dataSize = desc->spec_count * 4,
        .pData = values,
    };
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo required_size = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = desc->subgroup_size,
    };
    bool force_size = desc->subgroup_size && dev->profile.subgroup_size_control;
    VkComputePipelineCreateInfo pipe_info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .pNext = force_size ? &required_size : NULL,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = module,
                .pName = "main",
                .pSpecializationInfo = desc->spec_count ? &spec : NULL,
            },
        .layout = k->layout,
    };
    r = dev->vk.vkCreateComputePipelines(dev->handle, dev->pipeline_cache, 1, &pipe_info, NULL,
                                         &k->pipeline);
    if ((st = vki__check(dev, r, "vkCreateComputePipelines"))) goto fail;
    dev->vk.vkDestroyShaderModule(dev->handle, module, NULL);
    vki__name(dev, VK_OBJECT_TYPE_PIPELINE, (uint64_t)k->pipeline, k->name);
    dev->stats.pipelines_created++;
    if (share) {
        k->shared = true;
        k->refs = 1;
        k->binding_count = desc->binding_count;
        k->push_size = desc->push_size;
        k->subgroup_size = desc->subgroup_size;
        k->spec_count = desc->spec_count;
        if (desc->spec_count) memcpy(k->specs, desc->specs, desc->spec_count * sizeof *desc->specs);
        k->next = dev->kernels;
        dev->kernels = k;
    }
    *out = k;
    return VKI_OK;

fail:
    if (module) dev->vk.vkDestroyShaderModule(dev->handle, module, NULL);
    vki_kernel_destroy(k);
    return st;
}

static void free_kernel(vki_kernel *k)
{
    vki_device *dev = k->dev;
    if (k->pipeline) dev->vk.vkDestroyPipeline(dev->handle, k->pipeline, NULL);
    if (k->layout) dev->vk.vkDestroyPipelineLayout(dev->handle, k->layout, NULL);
    if (k->set_layout) dev->vk.vkDestroyDescriptorSetLayout(dev->handle, k->set_layout, NULL);
    vki__free(dev->inst, k);
}

void vki_kernel_destroy(vki_kernel *k)
{
    if (!k) return;
    if (!k->shared) {
        free_kernel(k);
        return;
    }
    if (k->refs == 0 || --k->refs > 0) return; // refs 0: a destroy too many, ignored
    vki_device *dev = k->dev;
    k->released = ++dev->kernel_clock;
    if (++dev->kernels_kept <= VKI_KERNELS_KEPT) return;
    vki_kernel **oldest = NULL;
    for (vki_kernel **at = &dev->kernels; *at; at = &(*at)->next)
        if ((*at)->refs == 0 && (!oldest || (*at)->released < (*oldest)->released)) oldest = at;
    vki_kernel *gone = *oldest;
    *oldest = gone->next;
    dev->kernels_kept--;
    free_kernel(gone);
}

void vki__kernels_destroy_all(vki_device *dev)
{
    while (dev->kernels) {
        vki_kernel *k = dev->kernels;
        dev->kernels = k->next;
        free_kernel(k);
    }
    dev->kernels_kept = 0;
}

void vki_kernel_local_size(const vki_kernel *k, uint32_t out_size[3])
{
    for (int i = 0; i < 3; i++) out_size[i] = k ? k->info.local_size[i] : 0;
}

const char *vki_kernel_name(const vki_kernel *k) { return k ? k->name : ""; }
