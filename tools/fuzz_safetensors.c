/* libFuzzer target for the safetensors reader: any input must open cleanly or fail with a
 * status and a message, and every tensor a successful open exposes must lie inside the input.
 * Built by the sanitizer build (cmake -DVKI_FUZZ=ON with clang), where CTest runs it for a
 * bounded time as fuzz_safetensors_bounded. By hand, for longer:
 *     build-asan/tests/fuzz_safetensors -max_total_time=600 /tmp/corpus tests/data/fuzz_safetensors
 */
#include "vkinfer_models.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vki_safetensors *s = NULL;
    char err[256];
    if (vki_safetensors_open_memory(data, size, NULL, &s, err, sizeof err) != VKI_OK) {
        if (!err[0]) __builtin_trap(); // a refusal names its cause
        return 0;
    }
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < vki_safetensors_tensor_count(s); i++) {
        vki_safetensors_tensor t;
        if (vki_safetensors_tensor_at(s, i, &t) != VKI_OK) __builtin_trap();
        const uint8_t *p = t.data;
        if (p < data || p + t.size > data + size) __builtin_trap();
        if (t.size) sink += p[0] + p[t.size - 1];
        vki_safetensors_tensor again;
        vki_status st = vki_safetensors_find(s, t.name, &again);
        if ((st != VKI_OK && st != VKI_ERROR_UNSUPPORTED) || again.data != t.data) __builtin_trap();
    }
    sink += vki_safetensors_metadata(s, "format") != NULL;
    vki_safetensors_close(s);
    (void)sink;
    return 0;
}
