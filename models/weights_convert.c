/* Weight conversion at load (stable-diffusion.cpp's `--type`): which type a stored tensor is
 * uploaded as under a conversion target, and the host-side conversion itself, one tensor at a
 * time just before its upload, so that the converted model never exists twice in host memory.
 *
 * The rule (vki_weights_desc.convert): F32/F16/BF16 tensors of two or more dimensions become
 * F16 under any target; under Q8_0/Q4_0/Q4_1, a linear weight (a matrix product's `w`, which
 * the matmul kernels read quantised) of two dimensions whose rows are whole blocks is
 * quantised instead, with GGUF's block layouts and ggml's reference quantisers' rounding, byte
 * for byte (graph/dtype.c's block encoders for Q8_0 and Q4_0; Q4_1 below). One-dimensional tensors (biases, norm scales) keep their
 * stored type: they are a fraction of a per mille of the bytes and are read once per output.
 * Tensors stored quantised stay as they are: requantising would only add error. */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool is_float(vki_dtype t)
{
    return t == VKI_DTYPE_F32 || t == VKI_DTYPE_F16 || t == VKI_DTYPE_BF16;
}

bool vki__weights_convert_target_ok(vki_dtype to)
{
    return to == VKI_DTYPE_NONE || to == VKI_DTYPE_F16 || to == VKI_DTYPE_Q8_0 ||
           to == VKI_DTYPE_Q4_0 || to == VKI_DTYPE_Q4_1;
}

vki_dtype vki__weights_convert_dtype(const vki_source_tensor *t, vki_dtype to, bool linear)
{
    if (to == VKI_DTYPE_NONE || !vki__weights_convert_target_ok(to) || !is_float(t->dtype) ||
        t->n_dims < 2)
        return t->dtype;
    const vki_dtype_info *q = vki_dtype_get(to);
    bool flat = t->ne[2] == 1 && t->ne[3] == 1;
    if (q->quantized && linear && flat && t->ne[0] > 0 && t->ne[0] % q->block_elems == 0) return to;
    return VKI_DTYPE_F16;
}

/* Element i of a float tensor's stored bytes (little-endian, as both file formats store). */
static float load(const uint8_t *p, vki_dtype t, size_t i)
{
    if (t == VKI_DTYPE_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    return t == VKI_DTYPE_F16 ? vki_f16_to_f32(h) : vki_bf16_to_f32(h);
}

/* Q4_1 as ggml's reference quantiser rounds it: (x - min) / d + 0.5 truncated, so that ties
 * round up (graph/dtype.c's encoder rounds them to even, which is as good for its test weights
 * but not byte-equal to the files stable-diffusion.cpp and llama.cpp write). */
static void quant_q4_1(const float *x, uint8_t *b)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0;
    uint16_t hd = vki_f32_to_f16(d), hm = vki_f32_to_f16(lo);
    b[0] = (uint8_t)hd;
    b[1] = (uint8_t)(hd >> 8);
    b[2] = (uint8_t)hm;
    b[3] = (uint8_t)(hm >> 8);
    for (int i = 0; i < 16; i++) {
        float a = (x[i] - lo) * id + 0.5f, c = (x[i + 16] - lo) * id + 0.5f;
        int qa = a < 15.0f ? (int)a : 15, qc = c < 15.0f ? (int)c : 15; // both >= 0.5
        b[4 + i] = (uint8_t)(qa | qc << 4);
    }
}

vki_status vki__weights_convert(const vki_source_tensor *t, vki_dtype to, void *out, uint64_t out_size,
                                char *err, size_t err_size)
{
    uint64_t n = 1;
    for (int d = 0; d < VKI_MAX_DIMS; d++) {
        if (t->ne[d] < 1 || n > UINT64_MAX / (uint64_t)t->ne[d]) goto bad;
        n *= (uint64_t)t->ne[d];
    }
    const vki_dtype_info *from = vki_dtype_get(t->dtype), *q = vki_dtype_get(to);
    // The source checked its sizes; this guards the loops below against a source that did not.
    if (!is_float(t->dtype) || n > UINT64_MAX / 4 || t->size != n * from->block_bytes ||
        !q->block_elems || (uint64_t)t->ne[0] % q->block_elems || // blocks never span rows
        out_size != vki_dtype_bytes(to, (int64_t)n) ||
        n > (uint64_t)INT64_MAX)
        goto bad;
    const uint8_t *src = t->data;
    uint8_t *dst = out;
    if (to == VKI_DTYPE_F16) {
        for (uint64_t i = 0; i < n; i++) {
            float f = load(src, t->dtype, (size_t)i);
            if (isfinite(f) && fabsf(f) > 65504.0f) {
                snprintf(err, err_size, "model tensor %s holds %g, beyond f16's range: load it "
                         "without conversion to f16", t->name, (double)f);
                return VKI_ERROR_UNSUPPORTED;
            }
            uint16_t h = vki_f32_to_f16(f);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return VKI_OK;
    }
    if (!q->quantized || q->block_elems > 256) goto bad;
    float block[256];
    for (uint64_t b = 0; b < n / q->block_elems; b++) {
        for (uint32_t i = 0; i < q->block_elems; i++) block[i] = load(src, t->dtype, (size_t)(b * q->block_elems + i));
        if (to == VKI_DTYPE_Q4_1) quant_q4_1(block, dst + b * q->block_bytes);
        else vki_quant_block(to, block, dst + b * q->block_bytes);
    }
    return VKI_OK;
bad:
    snprintf(err, err_size, "model tensor %s (%s, %llu bytes) cannot be converted to %s", t->name,
             t->type_name ? t->type_name : vki_dtype_get(t->dtype)->name, (unsigned long long)t->size,
             vki_dtype_get(to)->name);
    return VKI_ERROR_INVALID_ARGUMENT;
}
