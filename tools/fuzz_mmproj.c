/* libFuzzer target for the load path of a vision encoder (an mmproj file): GGUF bytes ->
 * clip.* metadata and its bounds -> the weights table -> the ViT and projector built and
 * compiled, through vki_vision_check against a CPU device's profile (lavapipe's, as
 * fuzz_llm_load uses), so no device is needed. Any input must be accepted or refused with a
 * status and a message; nothing may read out of bounds, overflow or take unbounded time.
 *
 * The corpus is seeded with the tiny encoders of each family (tests/data/fuzz_mmproj/: copies
 * of the .mmproj.gguf files in tests/data/vision/, made by tools/gen_vision_golden.py). Built with the
 * sanitizer build (cmake -DVKI_FUZZ=ON, clang); CTest runs it for a bounded time as
 * fuzz_mmproj_bounded. By hand:
 *     build-asan/tests/fuzz_mmproj -max_total_time=600 /tmp/corpus tests/data/fuzz_mmproj
 */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vki_profile profile;
    if (!profile.name[0]) profile = cpu_profile();
    vki_gguf *g = NULL;
    char err[512];
    if (vki_gguf_open_memory(data, size, NULL, &g, err, sizeof err) != VKI_OK) return 0;
    vki_status st = vki_vision_check(&profile, g, NULL, err, sizeof err);
    // A failure must say why.
    if (st != VKI_OK && !err[0]) __builtin_trap();
    vki_gguf_close(g);
    return 0;
}
