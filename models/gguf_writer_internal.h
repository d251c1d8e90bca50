/* GGUF files written in memory, for the synthetic models of the benchmarks (synthetic.c: language
 * models; vision_synthetic.c: vision encoders): metadata, a tensor table and data aligned to 32
 * bytes, as the format's specification lays them out. The file is produced in two passes over
 * the same code, one measuring and one writing, so that it is allocated once at its exact size.
 * Internal to models/. */
#ifndef VKI_GGUF_WRITER_INTERNAL_H
#define VKI_GGUF_WRITER_INTERNAL_H

#include "vkinfer_models.h"

typedef struct vki_gguf_writer {
    uint8_t *p;   // NULL while measuring
    size_t n;     // bytes put so far (the write position)
    uint64_t rng; // xorshift64* state for the tensors' random contents
} vki_gguf_writer;

/* One tensor of the file: ggml type code, 1..4 dims (ne[d] of the others 1), its byte size. */
typedef struct vki_gguf_wtensor {
    char name[48];
    uint32_t type, n_dims;
    uint64_t ne[4], bytes;
    uint64_t offset; // set by vki__gguf_write
} vki_gguf_wtensor;

/* Little-endian values (GGUF is little-endian, as are the hosts vkinfer runs on). */
void vki__gw_put(vki_gguf_writer *w, const void *src, size_t n);
void vki__gw_u32(vki_gguf_writer *w, uint32_t v);
void vki__gw_u64(vki_gguf_writer *w, uint64_t v);
void vki__gw_str(vki_gguf_writer *w, const char *s);

/* One metadata key/value pair each. */
void vki__gw_kv_str(vki_gguf_writer *w, const char *key, const char *v);
void vki__gw_kv_u32(vki_gguf_writer *w, const char *key, uint32_t v);
void vki__gw_kv_f32(vki_gguf_writer *w, const char *key, float v);
void vki__gw_kv_bool(vki_gguf_writer *w, const char *key, bool v);
void vki__gw_kv_f32_array(vki_gguf_writer *w, const char *key, const float *v, uint32_t n);

/* The next 64 random bits of the writer's stream. */
uint64_t vki__gw_random(vki_gguf_writer *w);

/* A random F16 value of random sign and magnitude 2^-7 .. 2^-3: weights that keep activations
 * finite through many layers. */
uint16_t vki__gw_random_f16(vki_gguf_writer *w);

/* Writes the file: its header, n_kv pairs that put_kv(w, user) puts (exactly n_kv), the table
 * of tensors ts[0..count) (their offsets assigned here, each aligned to 32), then each tensor's
 * bytes, which fill(w, t, user) writes at w->p + w->n (t->bytes of them), in table order with
 * the random stream seeded by `seed` (0: a fixed default). *out_bytes (free()) and *out_size. */
vki_status vki__gguf_write(vki_gguf_wtensor *ts, uint32_t count, uint64_t n_kv,
                           void (*put_kv)(vki_gguf_writer *w, const void *user),
                           void (*fill)(vki_gguf_writer *w, const vki_gguf_wtensor *t, const void *user),
                           const void *user, uint64_t seed, void **out_bytes, size_t *out_size);

#endif
