/* Internal structures of the graph layer: nodes, the op interface every graph/ops/<op>.c
 * implements (builder helpers, CPU reference, lowering), the lowering context and the plan. */
#ifndef VKINFER_GRAPH_INTERNAL_H
#define VKINFER_GRAPH_INTERNAL_H

#include "vkinfer_graph.h"

#include <assert.h>
#include <stdarg.h>
#include <string.h>

#define VKI_MAX_SRC 7
#define VKI_PARAMS_BYTES 64
#define VKI_NAME_SIZE 48

typedef struct vki_op_def vki_op_def;

typedef enum vki_node_kind {
    VKI_NODE_OP = 0,
    VKI_NODE_INPUT,
    VKI_NODE_WEIGHT,
    VKI_NODE_VIEW,   // src[0] viewed at view_offset with its own ne/nb
} vki_node_kind;

typedef struct vki_node {
    vki_node_kind kind;
    const vki_op_def *op;        // VKI_NODE_OP only
    vki_dtype dtype;
    uint32_t ndim;
    int64_t ne[VKI_MAX_DIMS];
    uint64_t nb[VKI_MAX_DIMS];
    uint32_t src[VKI_MAX_SRC];   // node ids, 0 = none
    uint64_t view_offset;        // VIEW: bytes into the base's storage (accumulated)
    uint32_t base;               // node owning the storage: itself, a view's ultimate base, or
                                 // the base a VKI_OPF_WRITES_SRC0 op writes into
    /* The op's parameters: its typed struct (vki_matmul_params, ...), packed and unpacked only
     * by the op's own file (vki__params_set/get) behind its accessors. Bytes rather than a
     * union of every op's struct: the node then knows no op's layout, adding an op touches no
     * shared header, and no other file can name another op's fields by mistake. */
    uint64_t params[VKI_PARAMS_BYTES / 8];
    bool output;
    char name[VKI_NAME_SIZE];
} vki_node;

struct vki_graph {
    vki_allocator allocator;
    vki_node *nodes;             // nodes[0] is the invalid node
    uint32_t count;              // including nodes[0]
    uint32_t capacity;
    vki_status status;
    char error[512];
};

/* ---- graph.c: nodes and errors ----------------------------------------------------------- */

void *vki__galloc(const vki_graph *g, size_t size); // zeroed
void vki__gfree(const vki_graph *g, void *ptr);

/* Records the first error (later ones are ignored) and returns the invalid tensor. */
vki_tensor vki__graph_fail(vki_graph *g, vki_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Node of a valid tensor, else NULL (without recording an error). */
const vki_node *vki__node(const vki_graph *g, vki_tensor t);

/* Checks that every tensor is valid (an earlier error, or a foreign id, yields false). */
bool vki__check_srcs(vki_graph *g, const char *op, uint32_t n, const vki_tensor *srcs);

/* Appends an op node with contiguous strides for `ne`. Returns its tensor, or {0} when the node
 * array cannot grow. */
vki_tensor vki__new_op(vki_graph *g, const vki_op_def *op, vki_dtype dtype, uint32_t ndim,
                       const int64_t *ne, uint32_t nsrc, const vki_tensor *srcs);
vki_node *vki__node_mut(vki_graph *g, vki_tensor t);

/* "[576, 49152] q4_0" into buf. */
const char *vki__shape_str(const vki_node *n, char buf[96]);

/* Contiguous strides for ne in dtype. */
void vki__contiguous_strides(vki_dtype dtype, const int64_t *ne, uint64_t *nb);
bool vki__is_contiguous(const vki_node *n);
bool vki__same_shape(const vki_node *a, const vki_node *b);

/* A node's parameter bytes, for its op's own file only: its typed struct in and out (size <=
 * VKI_PARAMS_BYTES, which each op file static_asserts). Leaves (inputs) have no op: the case
 * runner keeps a case input's fixed values there (cases.c). */
static inline void vki__params_set(vki_node *n, const void *params, size_t size)
{
    memcpy(n->params, params, size);
}
static inline void vki__params_get(const vki_node *n, void *params, size_t size)
{
    memcpy(params, n->params, size);
}
int64_t vki__nelements(const vki_node *n);
/* Bytes spanned by a view from its first to its last element. */
uint64_t vki__span_bytes(const vki_node *n);

/* dtype.c's element and block formats are public (vkinfer_graph.h): the weights module
 * converts with them. */

/* ---- reference.c: CPU reference element access ------------------------------------------- */

/* A tensor as the reference sees it: its bytes (already at the view offset), shape, strides. */
typedef struct vki_ref_tensor {
    vki_dtype dtype;
    int64_t ne[VKI_MAX_DIMS];
    uint64_t nb[VKI_MAX_DIMS];
    uint8_t *data;
} vki_ref_tensor;

/* Element (i0, i1, i2, i3) as float, decoding f16/bf16/i32/quantized blocks. */
float vki_ref_get(const vki_ref_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3);
/* Stores a float into an F32/F16/BF16/I32 element. */
void vki_ref_set(const vki_ref_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v);

/* ---- The op interface ---------------------------------------------------------------------- */

enum {
    VKI_OPF_ELEMENTWISE = 1u << 0, // out[i] reads src0[i] only at i: may run in place of src0
    /* The result IS src[0] after the op wrote into it (set_rows): the builder gives the node
     * src[0]'s base, view offset and strides, so it has no storage of its own, and later
     * readers of it (or of views of it) are ordered after the write by the usual hazards. The
     * write is a side effect on storage the caller may hold across runs (a KV cache), so the
     * node is never removed as dead. */
    VKI_OPF_WRITES_SRC0 = 1u << 1,
};

typedef struct vki_lower vki_lower;

/* A node lowered in windows (compile.c): where one of its tensors would span more than one
 * binding may (the profile's max_storage_range), the compiler lowers it several times, each on
 * a slice of its result's outermost dimension `dim` (the last with more than one element) and
 * the matching slices of the sources that follow it. The op's lowering sees an ordinary, smaller
 * node; models need not slice anything. src_dim[i]: the dimension of source i cut with the
 * result, or -1: source i is bound whole (a weight, a bias, a broadcast operand). */
typedef struct vki_lower_cut {
    int dim;
    int8_t src_dim[VKI_MAX_SRC];
} vki_lower_cut;

/* ---- fusion.c: the pattern walk, and what the ops' fusion hooks use ------------------------ */

/* The fusion pass's state, as the ops' hooks see it. */
typedef struct vki_fusion {
    vki_graph *w;               // the compiler's working copy, rewritten in place
    uint32_t *uses;             // readers per node id; a hook keeps them exact
    const vki_profile *profile; // NULL: no device, so no fold that needs a kernel choice
} vki_fusion;

/* Whether producer y can fold into its consumer x as one node: y an op, not an output, read
 * only by x, of x's shape and dtype. */
bool vki__fusion_single_use(const vki_fusion *f, uint32_t y_id, uint32_t x_id);
/* Folds producer y (read only by x) into x: x takes y's op, sources and parameters, plus
 * `extra` as source `slot` (0: none), and keeps its own id, name, output flag and storage. */
void vki__fusion_fold(vki_fusion *f, uint32_t x_id, uint32_t y_id, int slot, uint32_t extra);
/* A vector of `n` elements along dim 0 only, contiguous, f32 or f16 (a scale or bias). */
bool vki__fusion_row_vector(const vki_node *v, int64_t n);

struct vki_op_def {
    const char *name;
    uint32_t flags;
    /* Computes dst from src (src[i] valid for each node src). Plain C, obviously correct. */
    void (*reference)(const vki_node *n, const vki_ref_tensor *dst, const vki_ref_tensor *src);
    /* Emits the node's dispatches (vki_lower_step) for the profile. */
    vki_status (*lower)(vki_lower *L, const vki_node *n);
    /* Fusion, both optional; each returns whether it rewrote the graph. The walk visits every
     * op node `id` in order and asks first its own op's fuse (fold producers into id: matmul
     * takes an rms_norm of x, attention a decode step's cache writes), then, for each of id's
     * first two sources (or the node a source views), that producer's op's absorb (fold the
     * consumer id into the producer's work: a norm takes a scale, a matmul a bias, activation,
     * residual, glu or rope). */
    bool (*fuse)(vki_fusion *f, uint32_t id);
    bool (*absorb)(vki_fusion *f, uint32_t producer, uint32_t id);
    /* Optional: whether the node's result may be computed slice by slice along its outermost
     * dimension, and how its sources follow (vki_lower_cut). Ops whose results' slices each
     * depend on the same slices of their sources only: elementwise, row-wise, products over
     * columns. Usually vki_lower_cut_plain. */
    bool (*cut)(const vki_lower *L, const vki_node *n, vki_lower_cut *c);
};

/* An op node that writes into another node's storage (VKI_OPF_WRITES_SRC0). */
static inline bool vki__writes_src0(const vki_node *n)
{
    return n->kind == VKI_NODE_OP && n->op && (n->op->flags & VKI_OPF_WRITES_SRC0);
}

/* The op table (op_table.c): one row per op. */
extern const vki_op_def *const vki_op_table[];
extern const uint32_t vki_op_table_count;

/* ---- Lowering ------------------------------------------------------------------------------ */

const vki_profile *vki_lower_profile(const vki_lower *L);
const vki_node *vki_lower_node(const vki_lower *L, uint32_t id);
uint32_t vki_lower_self(const vki_lower *L); // id of the node being lowered

/* A bound tensor as a kernel indexes it: where it starts in its binding and its strides, in
 * elements of its dtype (in bytes for quantized dtypes), ready for push constants. */
typedef struct vki_operand {
    uint32_t offset;
    uint32_t ne[VKI_MAX_DIMS];
    uint32_t nb[VKI_MAX_DIMS];
} vki_operand;

vki_operand vki_lower_operand(const vki_lower *L, uint32_t node_id);

/* Part of a tensor bound instead of the whole: `size` bytes from `offset` bytes past its
 * start (a row slice of a weight larger than one binding may be). size 0: the whole tensor. */
typedef struct vki_lower_range {
    uint64_t offset, size;
} vki_lower_range;

/* The operand as a binding of its range from `offset` bytes on sees it: its offset in that
 * binding, in elements (bytes for quantized dtypes). */
vki_operand vki_lower_operand_at(const vki_lower *L, uint32_t node_id, uint64_t offset);

/* Bytes a binding may take beyond its tensor's own span: it starts up to one alignment unit
 * before the tensor and its size is rounded up. */
uint64_t vki_lower_binding_slack(const vki_profile *p);

/* How many slices of `stride` bytes apart, each `slice_bytes` long, one binding holds (with
 * the slack); 0 when not even one does; UINT64_MAX when the profile has no limit. */
uint64_t vki_lower_window_count(const vki_profile *p, uint64_t slice_bytes, uint64_t stride);

/* The usual cut: the result's outermost dimension with more than one element (never dim 0);
 * each source of the same extent there is cut with it, one of extent 1 is bound whole, as are
 * those in `whole` (bit i: source i, e.g. a matmul's weight); false for any other source. */
bool vki_lower_cut_outer(const vki_lower *L, const vki_node *n, uint32_t whole, vki_lower_cut *c);
/* vki_lower_cut_outer with no source bound whole: the cut of elementwise and row-wise ops. */
bool vki_lower_cut_plain(const vki_lower *L, const vki_node *n, vki_lower_cut *c);

/* A binding to the plan's scratch region instead of a tensor: bytes a node's steps share
 * among themselves (partial results one step writes and the next reads), live only while
 * the node runs. The region lies above every tensor of the activation arena and the plan's
 * peak includes it; the barrier pass orders its users like those of any other bytes. */
#define VKI_LOWER_SCRATCH UINT32_MAX

#define VKI_STEP_MAX_SPECS 12

typedef struct vki_step_desc {
    const char *kernel;           // variant name in shaders/variants.txt
    const vki_spec *specs;
    uint32_t spec_count;
    uint32_t subgroup_size;       // 0: device default
    const uint32_t *tensors;      // node ids for bindings 0..n-1, or VKI_LOWER_SCRATCH
    uint32_t tensor_count;
    uint64_t scratch_bytes;       // the size of a VKI_LOWER_SCRATCH binding
    const vki_lower_range *ranges; // per binding, or NULL: the part of the tensor bound
    uint32_t write_mask;          // bit i: binding i is written (the rest are read)
    const void *push;
    uint32_t push_size;
    uint32_t groups[3];
    bool fp16_operands;           // the kernel rounds f32 operands to fp16 (vki_plan_stats)
    bool int8_operands;           // the kernel rounds f32 operands to int8 blocks (vki_plan_stats)
} vki_step_desc;

vki_status vki_lower_step(vki_lower *L, const vki_step_desc *d);

/* Records a lowering failure ("rms_norm [5, 3] f16: ...") and returns status. */
vki_status vki_lower_fail(vki_lower *L, const vki_node *n, vki_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* UNSUPPORTED ("this device has no 16-bit storage") when `needed` and the profile lacks it;
 * the conformance tests then skip the case on that profile. */
vki_status vki_lower_need_storage16(vki_lower *L, const vki_node *n, bool needed);

/* The common tail of elementwise lowerings: one dispatch of `kernel` over every element of n,
 * the tuning's workgroup size as local size, the last of `tensors` being the (written) result. */
vki_status vki_lower_elementwise(vki_lower *L, const vki_node *n, const char *kernel,
                                 const uint32_t *tensors, uint32_t count, const void *push,
                                 uint32_t push_size);

/* Workgroup counts for `n` invocations of `local` threads on a 2-D grid (x <= 65535). */
void vki_lower_grid(uint64_t n, uint32_t local, uint32_t groups[3]);

/* ---- The plan --------------------------------------------------------------------------------- */

/* Where a tensor's storage lives once executed. */
typedef enum vki_storage {
    VKI_STORE_NONE = 0,   // fused away or dead
    VKI_STORE_ARENA,      // intermediate: offset in the activation arena
    VKI_STORE_EXTERNAL,   // input, weight or output: its own range, bound by the executor
} vki_storage;

typedef struct vki_plan_binding {
    uint32_t base;          // node whose storage is bound (external), or 0 for the arena
    uint64_t offset;        // bytes: arena offset, or offset in the base's range
    uint64_t size;          // bytes bound
} vki_plan_binding;

typedef struct vki_step {
    char kernel[48];
    vki_spec specs[VKI_STEP_MAX_SPECS];
    uint32_t spec_count;
    uint32_t subgroup_size;
    vki_plan_binding bindings[VKI_MAX_BINDINGS];
    uint32_t binding_count;
    uint32_t write_mask;
    uint8_t push[128];
    uint32_t push_size;
    uint32_t groups[3];
    bool barrier_before;
    uint32_t node;          // the node this step computes
} vki_step;

typedef struct vki_plan_tensor {
    vki_storage storage;
    uint32_t base;          // node whose storage this is: itself, or (for the result of a
                            // VKI_OPF_WRITES_SRC0 op marked as output) the tensor it wrote into
    uint64_t offset;        // ARENA: arena offset of the base's storage
    uint64_t bytes;         // storage bytes of a base node (contiguous size)
    vki_node_kind kind;
    bool output;
    vki_dtype dtype;
    char name[VKI_NAME_SIZE];
} vki_plan_tensor;

struct vki_plan {
    vki_allocator allocator;
    vki_step *steps;
    uint32_t step_count, step_capacity;
    vki_plan_tensor *tensors;   // by node id
    uint32_t tensor_count;
    uint32_t storage_align;
    vki_plan_stats stats;
};

#endif
