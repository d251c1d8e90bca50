/* What every model family shares (DESIGN "Models"): a weight source (the named tensors of a
 * file: GGUF now, safetensors next), the weights module that takes tensors from a source into
 * one weights arena in their stored format, checked against what the architecture asks for,
 * and the program object: a graph compiled once per shape, its inputs and outputs bound by
 * name, replayed. A language model is two or three programs over one weights module; a
 * diffusion pipeline's text encoder, U-Net and VAE will be three more. Internal to models/.
 *
 * Lifetimes: source -> weights -> programs. A program borrows the weights module it reads
 * (destroy programs first), the weights module borrows its source (the file stays open while
 * the weights live: tensor bytes are read from it at upload). None of these objects is
 * thread-safe: one thread at a time per object. */
#ifndef VKI_MODEL_INTERNAL_H
#define VKI_MODEL_INTERNAL_H

#include "vkinfer_models.h"

/* Host memory of the models layer through the caller's allocator hook (NULL, or a hook without
 * alloc: malloc/free). Zeroed; NULL when out of memory. */
void *vki__model_alloc(const vki_allocator *a, size_t size);
void vki__model_free(const vki_allocator *a, void *p); // NULL does nothing

/* ---- Weight sources -------------------------------------------------------------------------- */

/* One tensor of a source. */
typedef struct vki_source_tensor {
    const char *name;      // NUL-terminated, borrowed from the source
    vki_dtype dtype;       // VKI_DTYPE_NONE for a stored type vkinfer does not compute with
    const char *type_name; // the file's own name of its type ("q4_0", "F8_E4M3"), for messages
    uint32_t n_dims;       // 1..4
    int64_t ne[VKI_MAX_DIMS]; // ggml order: ne[0] is the contiguous dimension; unused dims 1
    const void *data;      // the stored bytes, borrowed from the source
    uint64_t size;
} vki_source_tensor;

/* The named tensors of a file, behind a small interface so that the weights module reads GGUF
 * and safetensors alike. A source is a value: the functions and the file they read. */
typedef struct vki_weight_source {
    void *file;
    uint64_t (*count)(void *file);
    /* Tensor `index` < count. */
    vki_status (*at)(void *file, uint64_t index, vki_source_tensor *out);
    /* VKI_ERROR_NOT_FOUND when absent; any other failure names the cause in last_error. */
    vki_status (*find)(void *file, const char *name, vki_source_tensor *out);
    const char *(*last_error)(void *file);
} vki_weight_source;

/* A GGUF or safetensors file as a weight source (borrowed: keep it open). */
vki_weight_source vki_weight_source_gguf(vki_gguf *gguf);
vki_weight_source vki_weight_source_safetensors(vki_safetensors *file);

/* ---- Weights --------------------------------------------------------------------------------- */

typedef struct vki_weights vki_weights;
typedef struct vki_program vki_program;

typedef struct vki_weights_desc {
    vki_weight_source source;
    vki_device *device;             // NULL: only checking (vki_llm_check); nothing is uploaded
    const vki_profile *profile;     // the device's, or the one checked against
    const vki_allocator *allocator; // NULL: malloc/free
    const char *model_name;         // for messages: "the llama architecture"
    /* Conversion at upload (stable-diffusion.cpp's --type; weights_convert.c): 0 keeps every
     * tensor as stored. F16: F32/F16/BF16 tensors of 2+ dims as F16. Q8_0, Q4_0, Q4_1: the
     * same, except that linear weights (vki_weights_linear) of 2 dims whose rows are whole
     * blocks are quantised to it. 1-dim and already-quantised tensors keep their stored type.
     * Any other value fails creation with VKI_ERROR_INVALID_ARGUMENT. */
    vki_dtype convert;
} vki_weights_desc;

vki_status vki_weights_create(const vki_weights_desc *desc, vki_weights **out);
/* Frees the registry and the weights arena. NULL does nothing. */
void vki_weights_destroy(vki_weights *w);

/* The first failure of any call below ("" if none) and its status: like a graph's, later
 * calls after a failure do nothing and return invalid tensors. */
const char *vki_weights_error(const vki_weights *w);
vki_status vki_weights_status(const vki_weights *w);

/* Tensor `name` of the source as a weight node of program p's graph, registered for upload
 * and bound when p is compiled. The stored tensor must have `ndim` dims or fewer (the rest 1)
 * with ne[d] for each entry >= 0 (entries < 0 are not checked), and a dtype vkinfer computes
 * with; otherwise the module fails, naming the tensor, its shape or type and what was asked
 * for. A missing tensor fails too, unless `optional` ({0} then, and no failure). When
 * `binding_limit_ok` is false, a tensor larger than one binding of the profile fails too. */
vki_tensor vki_weights_tensor(vki_weights *w, vki_program *p, const char *name, uint32_t ndim,
                              const int64_t *ne, bool optional, bool binding_limit_ok);

/* vki_weights_tensor for a matrix product's weight [k, n] (vki_matmul's w, read quantised by
 * the kernels), which desc.convert may quantise. A tensor's type is decided the first time a
 * program asks for it: ask for a tensor as linear everywhere or nowhere. */
vki_tensor vki_weights_linear(vki_weights *w, vki_program *p, const char *name, int64_t k, int64_t n);

/* Whether the source holds `name` (nothing is registered). */
bool vki_weights_has(const vki_weights *w, const char *name);

/* The tensors names[0..n) ([k, rows[i]] each, one dtype) as one [k, sum rows[i]] weight of p,
 * placed one after the other on the device: one product instead of n. {0} without a failure
 * when they cannot be joined (one is absent, dtypes or shapes differ, a member's bytes are not
 * a whole number of the binding alignment, the whole is over the binding limit, or a member is
 * in another group): the caller then takes them one by one. */
vki_tensor vki_weights_joined(vki_weights *w, vki_program *p, const char *const *names,
                              uint32_t n, int64_t k, const int64_t *rows);

/* The stacked experts names[0..n) ([ne[0], ne[1], ne[2]] each, one dtype) as one [ne[0],
 * ne[1], n ne[2]] weight of p, placed one after the other on the device as vki_weights_joined
 * places its members (no copy): member i's experts are experts [i ne[2], (i + 1) ne[2]). {0}
 * without a failure when they cannot be joined, for the same reasons. */
vki_tensor vki_weights_joined_experts(vki_weights *w, vki_program *p, const char *const *names,
                                      uint32_t n, const int64_t ne[3]);

/* Uploads every registered tensor (joined groups first, each member at its place in the group)
 * into one weights block sized to them. Call once, after building the programs and before
 * compiling them. With no device: does nothing. */
vki_status vki_weights_upload(vki_weights *w);

/* Names the first tensor of the source that no program registered ("" and VKI_OK when every
 * tensor is read): a file that holds more than the architecture reads is not the model vkinfer
 * would compute. */
vki_status vki_weights_check_all_used(vki_weights *w);

/* Device bytes of the uploaded weights. */
uint64_t vki_weights_bytes(const vki_weights *w);

/* ---- Conversion (weights_convert.c), for the weights module and its tests ----------------- */

/* Whether `to` is a conversion target vki_weights_desc.convert takes (0 included). */
bool vki__weights_convert_target_ok(vki_dtype to);
/* The type tensor t is uploaded as under target `to` (the rule of vki_weights_desc.convert;
 * `linear`: t is a matrix product's weight). */
vki_dtype vki__weights_convert_dtype(const vki_source_tensor *t, vki_dtype to, bool linear);
/* t's bytes (F32/F16/BF16) converted to `to` (F16 or a block type t's element count is whole
 * blocks of) into out[out_size], out_size exactly the converted size. F16 refuses finite values
 * beyond its range (VKI_ERROR_UNSUPPORTED); a tensor that cannot be converted is
 * VKI_ERROR_INVALID_ARGUMENT. The message names the tensor. */
vki_status vki__weights_convert(const vki_source_tensor *t, vki_dtype to, void *out, uint64_t out_size,
                                char *err, size_t err_size);

/* ---- Programs -------------------------------------------------------------------------------- */

typedef struct vki_program_desc {
    vki_device *device;             // NULL: compile only (checking)
    const vki_profile *profile;     // the device's, or the one checked against
    const vki_allocator *allocator; // NULL: malloc/free
    uint32_t node_capacity;         // initial graph size; 0: the graph's default
    const char *name;               // for messages: "prompt pass (64 tokens)"
} vki_program_desc;

vki_status vki_program_create(const vki_program_desc *desc, vki_program **out);
/* Frees the executor, plan and graph. NULL does nothing. */
void vki_program_destroy(vki_program *p);

/* The graph to build on (owned by the program). */
vki_graph *vki_program_graph(vki_program *p);

/* An input of the graph that runs upload by `name`. */
vki_tensor vki_program_input(vki_program *p, vki_dtype dtype, uint32_t ndim, const int64_t *ne,
                             const char *name);
/* Marks `t` as the output `name` (vki_program_download). */
void vki_program_output(vki_program *p, vki_tensor t, const char *name);
/* Binds a leaf `t` of the graph to a range the caller owns (a KV cache layer) when compiled. */
vki_status vki_program_bind(vki_program *p, vki_tensor t, vki_range range);

/* Compiles the graph for the profile and, with a device, creates the executor and binds every
 * weight (the weights module must have uploaded) and range. A builder or weights failure
 * recorded before is reported here first. On failure the message is vki_program_error's. */
vki_status vki_program_compile(vki_program *p, vki_weights *w);

/* The last failure's message, "" if none. */
const char *vki_program_error(const vki_program *p);

/* Gives the program's activation and input/output memory back to the device until its next
 * upload or run (vki_exec_release): for a stage of a pipeline that waits while another runs. */
void vki_program_release(vki_program *p);

/* Activation bytes of the compiled plan. */
uint64_t vki_program_activation_bytes(const vki_program *p);
/* The plan's statistics (zeros before the program is compiled). */
void vki_program_plan_stats(const vki_program *p, vki_plan_stats *out);

/* Input or output `name` of the program, {0} if none. */
vki_tensor vki_program_tensor(const vki_program *p, const char *name);

/* Per run: uploads `bytes` to an input, runs the plan, downloads an output (the handles that
 * vki_program_input gave, or vki_program_tensor finds). */
vki_status vki_program_upload(vki_program *p, vki_tensor input, const void *data, uint64_t bytes);
vki_status vki_program_run(vki_program *p);
vki_status vki_program_download(vki_program *p, vki_tensor output, void *out, uint64_t bytes);

/* ---- Between weights.c and program.c ----------------------------------------------------- */

/* Records that weight node t of p's graph is the module's tensor `weight` (or, with weight -1,
 * its joined group `group`), to be bound when p compiles. */
vki_status vki__program_bind_weight(vki_program *p, vki_tensor t, vki_weights *w, int32_t weight,
                                    int32_t group);
/* The device range of a registered tensor or group, once uploaded. */
vki_status vki__weights_range(const vki_weights *w, int32_t weight, int32_t group, vki_range *out);

#endif
