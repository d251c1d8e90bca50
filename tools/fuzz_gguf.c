/* libFuzzer target for the GGUF reader: any input must open cleanly or fail with a status, and
 * everything a successful open exposes must be readable. Built by the sanitizer build
 * (cmake -DVKI_FUZZ=ON with clang; tools/test.sh makes it in build-asan/), where CTest runs it
 * for a bounded time as fuzz_gguf_bounded. By hand, for longer:
 *     build-asan/tests/fuzz_gguf -max_total_time=600 /tmp/corpus tests/data/fuzz_gguf
 */
#include "vkinfer_models.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vki_gguf *g = NULL;
    char err[256];
    if (vki_gguf_open_memory(data, size, NULL, &g, err, sizeof err) != VKI_OK) return 0;
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < vki_gguf_kv_count(g); i++) {
        vki_gguf_string key;
        vki_gguf_type type;
        if (vki_gguf_kv_info(g, i, &key, &type) != VKI_OK || key.size >= 256) continue;
        char k[256];
        memcpy(k, key.data, (size_t)key.size);
        k[key.size] = 0;
        int64_t i64;
        float f;
        vki_gguf_string s;
        vki_gguf_array a, sub;
        vki_gguf_get_i64(g, k, &i64);
        vki_gguf_get_f32(g, k, &f);
        if (vki_gguf_get_string(g, k, &s) == VKI_OK && s.size) sink += (uint8_t)s.data[s.size - 1];
        if (vki_gguf_get_array(g, k, &a) != VKI_OK) continue;
        for (uint64_t e = 0; e < a.count && e < 256; e++) {
            vki_gguf_array_get_i64(g, &a, e, &i64);
            vki_gguf_array_get_f32(g, &a, e, &f);
            if (vki_gguf_array_get_string(g, &a, e, &s) == VKI_OK && s.size)
                sink += (uint8_t)s.data[s.size - 1];
            if (vki_gguf_array_get_array(g, &a, e, &sub) == VKI_OK && sub.count)
                vki_gguf_array_get_string(g, &sub, sub.count - 1, &s);
        }
    }
    for (uint64_t i = 0; i < vki_gguf_tensor_count(g); i++) {
        vki_gguf_tensor t;
        if (vki_gguf_tensor_at(g, i, &t) != VKI_OK) continue;
        sink += ((const uint8_t *)t.data)[0] + ((const uint8_t *)t.data)[t.size - 1];
        sink += strlen(t.name);
    }
    vki_gguf_close(g);
    (void)sink;
    return 0;
}
