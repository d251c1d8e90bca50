/* vkinfer models: file formats, architectures, tokenizers and samplers on top of graph/.
 *
 * This first piece is the GGUF reader. vki_gguf_open memory-maps a GGUF v2 or v3 file
 * read-only and validates all of it up front: header, every metadata value (nested arrays
 * included), every tensor record, alignment, and that every tensor's bytes lie inside the file,
 * aligned and without overlap. Every size, count and offset is overflow-checked before it is
 * used, and nothing is read outside the mapping, whatever the file claims. A malformed file is
 * VKI_ERROR_BAD_FILE with a message naming the field and its file offset; nothing aborts.
 *
 * After a successful open the accessors are cheap lookups (keys and tensor names are sorted at
 * open). Strings, array data and tensor data point into the mapping: they are borrowed and live
 * until vki_gguf_close. A vki_gguf is used from one thread at a time (accessors write its
 * last-error string).
 *
 * Usage: read the layer count, the vocabulary and a weight.
 *
 *     char err[256];
 *     vki_gguf *g = NULL;
 *     VKI_TRY(vki_gguf_open("model.gguf", NULL, &g, err, sizeof err)); // err says why on failure
 *     uint32_t n_layer;
 *     VKI_TRY(vki_gguf_get_u32(g, "llama.block_count", &n_layer));
 *     vki_gguf_array vocab;                                           // [n_vocab] strings
 *     VKI_TRY(vki_gguf_get_array(g, "tokenizer.ggml.tokens", &vocab));
 *     vki_gguf_string tok;
 *     VKI_TRY(vki_gguf_array_get_string(g, &vocab, 0, &tok));          // tok.data[0..tok.size)
 *     vki_gguf_tensor wq;                                             // [n_embd, n_embd] q4_0 ...
 *     VKI_TRY(vki_gguf_find_tensor(g, "blk.0.attn_q.weight", &wq));   // wq.data, wq.size
 *     ... vki_gguf_close(g);                                          // frees and unmaps
 */
#ifndef VKINFER_MODELS_H
#define VKINFER_MODELS_H

#include "vkinfer_graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GGUF ------------------------------------------------------------------------------- */

typedef struct vki_gguf vki_gguf;

/* Metadata value types. The file's type code is this value minus one (GGUF u8 is 0); 0 here
 * means none. */
typedef enum vki_gguf_type {
    VKI_GGUF_TYPE_NONE = 0,
    VKI_GGUF_TYPE_U8,
    VKI_GGUF_TYPE_I8,
    VKI_GGUF_TYPE_U16,
    VKI_GGUF_TYPE_I16,
    VKI_GGUF_TYPE_U32,
    VKI_GGUF_TYPE_I32,
    VKI_GGUF_TYPE_F32,
    VKI_GGUF_TYPE_BOOL,
    VKI_GGUF_TYPE_STRING,
    VKI_GGUF_TYPE_ARRAY,
    VKI_GGUF_TYPE_U64,
    VKI_GGUF_TYPE_I64,
    VKI_GGUF_TYPE_F64,
    VKI_GGUF_TYPE_COUNT
} vki_gguf_type;

/* Deepest nesting of arrays accepted (an array of arrays of strings is depth 2). */
#define VKI_GGUF_MAX_ARRAY_DEPTH 4

typedef struct vki_gguf_desc {
    const vki_allocator *allocator; // NULL: malloc/free; used for the index built at open
} vki_gguf_desc;

/* A string in the file: `size` bytes at `data`, NOT NUL-terminated. Borrowed from the mapping. */
typedef struct vki_gguf_string {
    const char *data;
    uint64_t size;
} vki_gguf_string;

/* An array value. For fixed-size element types `data` points at `count` packed little-endian
 * elements in the mapping (possibly unaligned: copy with memcpy, or use the element getters);
 * for strings and arrays it is NULL and only the element getters apply. */
typedef struct vki_gguf_array {
    vki_gguf_type type; // of the elements
    uint64_t count;
    const void *data;
    uint64_t id_;       // internal: which array of the file
} vki_gguf_array;

/* One tensor record. Unused dims of ne are 1. */
typedef struct vki_gguf_tensor {
    const char *name;   // NUL-terminated, borrowed from the vki_gguf
    vki_dtype dtype;    // VKI_DTYPE_NONE for a ggml type vkinfer does not compute with
    uint32_t ggml_type; // the file's type code (F32 = 0, F16 = 1, Q4_0 = 2, ...)
    uint32_t n_dims;    // 1..4
    int64_t ne[VKI_MAX_DIMS];
    const void *data;   // into the mapping; aligned to the file's alignment
    uint64_t size;      // bytes
    uint64_t offset;    // from the start of the data section
} vki_gguf_tensor;

/* Maps and validates the GGUF file at `path` (read-only). `desc` may be NULL. On success *out
 * owns the mapping; close it with vki_gguf_close. Fails with VKI_ERROR_IO when the file cannot
 * be opened or mapped, VKI_ERROR_BAD_FILE when it is malformed, truncated, GGUF v1 or a version
 * from the future, VKI_ERROR_OUT_OF_HOST_MEMORY; `out_error` (may be NULL, 256 bytes is plenty)
 * then says why, naming the field and its file offset. *out is NULL on failure. */
vki_status vki_gguf_open(const char *path, const vki_gguf_desc *desc, vki_gguf **out,
                         char *out_error, size_t error_size);

/* As vki_gguf_open, over `size` bytes at `data` that the caller keeps alive and unchanged
 * until vki_gguf_close (the reader borrows them; for tests, fuzzing and embedded models). */
vki_status vki_gguf_open_memory(const void *data, size_t size, const vki_gguf_desc *desc,
                                vki_gguf **out, char *out_error, size_t error_size);

/* Frees the index and unmaps the file; every pointer taken from `g` dies. NULL does nothing. */
void vki_gguf_close(vki_gguf *g);

/* The message of the last failed accessor call on `g`; "" if none. Borrowed. */
const char *vki_gguf_last_error(const vki_gguf *g);

/* The file's version (2 or 3), data alignment (general.alignment, default 32) and the byte
 * offset of the tensor data section. */
uint32_t vki_gguf_version(const vki_gguf *g);
uint32_t vki_gguf_alignment(const vki_gguf *g);
uint64_t vki_gguf_data_offset(const vki_gguf *g);

/* ---- Metadata ---- */

/* Number of key/value pairs; indexes run 0..count-1 in file order. */
uint64_t vki_gguf_kv_count(const vki_gguf *g);

/* The key and value type of pair `index`. VKI_ERROR_INVALID_ARGUMENT when index >= count. */
vki_status vki_gguf_kv_info(vki_gguf *g, uint64_t index, vki_gguf_string *out_key,
                            vki_gguf_type *out_type);

/* Finds `key` (NUL-terminated, compared bytewise). VKI_ERROR_NOT_FOUND, naming the key in the
 * last error, when absent. `out_index` and `out_type` may be NULL. */
vki_status vki_gguf_find(vki_gguf *g, const char *key, uint64_t *out_index,
                         vki_gguf_type *out_type);

/* Typed getters. VKI_ERROR_NOT_FOUND when the key is absent; VKI_ERROR_BAD_FILE, with a message
 * naming the key and both types, when the value has another type. The integer getters accept
 * any integer type whose value fits the result (a u8 for get_u32, a u32 for get_i64); an
 * out-of-range value is VKI_ERROR_BAD_FILE. get_f32 accepts f32 and f64 (rounded). *out is
 * untouched on failure. */
vki_status vki_gguf_get_u32(vki_gguf *g, const char *key, uint32_t *out);
vki_status vki_gguf_get_u64(vki_gguf *g, const char *key, uint64_t *out);
vki_status vki_gguf_get_i64(vki_gguf *g, const char *key, int64_t *out);
vki_status vki_gguf_get_f32(vki_gguf *g, const char *key, float *out);
vki_status vki_gguf_get_bool(vki_gguf *g, const char *key, bool *out);
vki_status vki_gguf_get_string(vki_gguf *g, const char *key, vki_gguf_string *out);
vki_status vki_gguf_get_array(vki_gguf *g, const char *key, vki_gguf_array *out);

/* Element `index` of an array taken from `g`, with the same type rules as the getters above.
 * VKI_ERROR_INVALID_ARGUMENT when index >= count; VKI_ERROR_BAD_FILE, naming the key and index,
 * for a wrong element type. get_array gives a nested array. */
vki_status vki_gguf_array_get_u32(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                  uint32_t *out);
vki_status vki_gguf_array_get_i64(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                  int64_t *out);
vki_status vki_gguf_array_get_f32(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                  float *out);
vki_status vki_gguf_array_get_bool(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                   bool *out);
vki_status vki_gguf_array_get_string(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                     vki_gguf_string *out);
vki_status vki_gguf_array_get_array(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                    vki_gguf_array *out);

/* ---- Tensors ---- */

/* Number of tensors; indexes run 0..count-1 in file order. */
uint64_t vki_gguf_tensor_count(const vki_gguf *g);

/* Tensor `index`, whatever its type (dtype NONE for types vkinfer does not support).
 * VKI_ERROR_INVALID_ARGUMENT when index >= count. */
vki_status vki_gguf_tensor_at(vki_gguf *g, uint64_t index, vki_gguf_tensor *out);

/* The tensor named `name`, for use: VKI_ERROR_NOT_FOUND when absent; VKI_ERROR_UNSUPPORTED,
 * naming the ggml type, when its type has no vki_dtype (*out is still filled, dtype NONE). */
vki_status vki_gguf_find_tensor(vki_gguf *g, const char *name, vki_gguf_tensor *out);

/* The ggml type's name ("q4_0", "iq2_xxs"), or "unknown". */
const char *vki_gguf_ggml_type_name(uint32_t ggml_type);

#ifdef __cplusplus
}
#endif

#endif
