/* libFuzzer target for the ncnn reader (models/ncnn.c): any input must open cleanly or fail
 * with a status and a message, and every tensor a successful open exposes must lie inside the
 * .bin half of the input. An input is a 4-byte little-endian length n, n bytes of .param text,
 * then the .bin. Meant for the sanitizer build like fuzz_safetensors (cmake -DVKI_FUZZ=ON with
 * clang), seeded with tests/data/fuzz_ncnn/ (the tiny model of tests/data/esrgan in that
 * framing, made with):
 *     python3 -c "import struct,sys; p=open(sys.argv[1],'rb').read(); b=open(sys.argv[2],'rb').read();
 *                 sys.stdout.buffer.write(struct.pack('<I',len(p))+p+b)" \
 *         tests/data/esrgan/tiny-srvgg-x2.param tests/data/esrgan/tiny-srvgg-x2.bin > seed
 */
#include "ncnn_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (n > size - 4) return 0;
    const uint8_t *param = data + 4, *bin = param + n;
    size_t bin_size = size - 4 - n;
    vki_ncnn *f = NULL;
    char err[256];
    if (vki_ncnn_open_memory(param, n, bin, bin_size, NULL, &f, err, sizeof err) != VKI_OK) {
        if (!err[0]) __builtin_trap(); // a refusal names its cause
        return 0;
    }
    vki_weight_source src = vki_weight_source_ncnn(f);
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < src.count(src.file); i++) {
        vki_source_tensor t;
        if (src.at(src.file, i, &t) != VKI_OK) __builtin_trap();
        const uint8_t *p = t.data;
        if (p < bin || p + t.size > bin + bin_size || t.size == 0) __builtin_trap();
        sink += p[0] + p[t.size - 1];
        vki_source_tensor again;
        if (src.find(src.file, t.name, &again) != VKI_OK) __builtin_trap();
    }
    for (uint32_t i = 0; i < vki_ncnn_layer_count(f); i++) {
        const vki_ncnn_layer *l = vki_ncnn_layer_at(f, i);
        for (uint32_t k = 0; k < l->n_in + l->n_out; k++)
            if (l->in[k] >= vki_ncnn_blob_count(f) || !vki_ncnn_blob_producer(f, l->in[k])) __builtin_trap();
    }
    vki_ncnn_close(f);
    (void)sink;
    return 0;
}
