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
#include "fuzz_profile.h"

#include <stdio.h>
#include <string.h>

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
