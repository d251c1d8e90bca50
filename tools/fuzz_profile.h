/* The device profile the load-path fuzz targets (fuzz_llm_load.c, fuzz_mmproj.c) compile
 * against: a CPU device like lavapipe (subgroups of 8, texel loads, a 128 MiB binding limit), so
 * that whole model loads are checked with no device. */
#ifndef VKI_FUZZ_PROFILE_H
#define VKI_FUZZ_PROFILE_H

#include "vkinfer_models.h"

#include <stdio.h>
#include <string.h>

static vki_profile cpu_profile(void)
{
    vki_profile p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "fuzz: a CPU device");
    p.type = VKI_DEVICE_CPU;
    p.storage_align = 16;
    p.texel_align = 16;
    p.max_texel_elements = 1u << 27;
    p.storage16 = p.fp16 = p.int8 = p.storage8 = true;
    p.subgroup_size = p.subgroup_min = p.subgroup_max = 8;
    p.subgroup_ops = VKI_SUBGROUP_BASIC | VKI_SUBGROUP_ARITHMETIC | VKI_SUBGROUP_SHUFFLE;
    p.max_storage_range = 128u << 20;
    p.max_allocation = p.max_buffer_size = 1ull << 32;
    p.max_workgroup_invocations = 1024;
    for (int i = 0; i < 3; i++) {
        p.max_workgroup_size[i] = 1024;
        p.max_workgroup_count[i] = 65535;
    }
    p.shared_memory = 65536;
    p.push_constant_size = 128;
    p.uma = true;
    snprintf(p.tuning.name, sizeof p.tuning.name, "cpu");
    p.tuning.subgroup_size = 8;
    p.tuning.workgroup_size = 64;
    p.tuning.matvec_rows = 2;
    p.tuning.matmul_tile_m = p.tuning.matmul_tile_n = 32;
    p.tuning.matmul_tile_k = 8;
    p.tuning.texel_loads = true;
    return p;
}

#endif
