/* GGUF files written in memory (gguf_writer_internal.h): the synthetic models' one writer. */
#include "gguf_writer_internal.h"

#include <stdlib.h>
#include <string.h>

void vki__gw_put(vki_gguf_writer *w, const void *src, size_t n)
{
    if (w->p) memcpy(w->p + w->n, src, n);
    w->n += n;
}

void vki__gw_u32(vki_gguf_writer *w, uint32_t v) { vki__gw_put(w, &v, 4); }
void vki__gw_u64(vki_gguf_writer *w, uint64_t v) { vki__gw_put(w, &v, 8); }

void vki__gw_str(vki_gguf_writer *w, const char *s)
{
    vki__gw_u64(w, strlen(s));
    vki__gw_put(w, s, strlen(s));
}

enum { G_U32 = 4, G_F32 = 6, G_BOOL = 7, G_STR = 8, G_ARR = 9 }; // GGUF value types

void vki__gw_kv_str(vki_gguf_writer *w, const char *key, const char *v)
{
    vki__gw_str(w, key), vki__gw_u32(w, G_STR), vki__gw_str(w, v);
}

void vki__gw_kv_u32(vki_gguf_writer *w, const char *key, uint32_t v)
{
    vki__gw_str(w, key), vki__gw_u32(w, G_U32), vki__gw_u32(w, v);
}

void vki__gw_kv_f32(vki_gguf_writer *w, const char *key, float v)
{
    vki__gw_str(w, key), vki__gw_u32(w, G_F32), vki__gw_put(w, &v, 4);
}

void vki__gw_kv_bool(vki_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    vki__gw_str(w, key), vki__gw_u32(w, G_BOOL), vki__gw_put(w, &b, 1);
}

void vki__gw_kv_f32_array(vki_gguf_writer *w, const char *key, const float *v, uint32_t n)
{
    vki__gw_str(w, key), vki__gw_u32(w, G_ARR), vki__gw_u32(w, G_F32), vki__gw_u64(w, n);
    for (uint32_t i = 0; i < n; i++) vki__gw_put(w, &v[i], 4);
}

uint64_t vki__gw_random(vki_gguf_writer *w) // xorshift64*
{
    w->rng ^= w->rng >> 12, w->rng ^= w->rng << 25, w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Dull;
}

uint16_t vki__gw_random_f16(vki_gguf_writer *w)
{
    uint64_t r = vki__gw_random(w);
    return (uint16_t)((r & 0x8000) | ((8 + (r >> 16) % 4) << 10) | ((r >> 20) & 0x3FF));
}

vki_status vki__gguf_write(vki_gguf_wtensor *ts, uint32_t count, uint64_t n_kv,
                           void (*put_kv)(vki_gguf_writer *w, const void *user),
                           void (*fill)(vki_gguf_writer *w, const vki_gguf_wtensor *t, const void *user),
                           const void *user, uint64_t seed, void **out_bytes, size_t *out_size)
{
    *out_bytes = NULL;
    *out_size = 0;
    uint64_t data = 0;
    for (uint32_t i = 0; i < count; i++) {
        ts[i].offset = data;
        data = (data + ts[i].bytes + 31) / 32 * 32;
    }
    vki_gguf_writer w = {.rng = seed ? seed : 0x9E3779B97F4A7C15ull};
    for (int pass = 0; pass < 2; pass++) { // measure, then write
        w.n = 0;
        vki__gw_u32(&w, 0x46554747); // "GGUF"
        vki__gw_u32(&w, 3);
        vki__gw_u64(&w, count);
        vki__gw_u64(&w, n_kv);
        put_kv(&w, user);
        for (uint32_t i = 0; i < count; i++) {
            vki__gw_str(&w, ts[i].name);
            vki__gw_u32(&w, ts[i].n_dims);
            for (uint32_t d = 0; d < ts[i].n_dims; d++) vki__gw_u64(&w, ts[i].ne[d]);
            vki__gw_u32(&w, ts[i].type);
            vki__gw_u64(&w, ts[i].offset);
        }
        size_t head = (w.n + 31) / 32 * 32;
        if (pass == 0) {
            w.p = calloc(1, head + data);
            if (!w.p) return VKI_ERROR_OUT_OF_HOST_MEMORY;
            continue;
        }
        for (uint32_t i = 0; i < count; i++) {
            w.n = head + ts[i].offset;
            fill(&w, &ts[i], user);
        }
        *out_size = head + data;
    }
    *out_bytes = w.p;
    return VKI_OK;
}
