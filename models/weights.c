/* The weights module: tensors taken by name from a weight source into one weights arena, in
 * their stored format, checked against the shapes and types the architecture asks for. A
 * program registers each tensor it reads (vki_weights_tensor); the module uploads them all at
 * once and hands their device ranges to the programs when they compile. Weights of one layer
 * that are read by the same input (q, k and v; gate and up) may be joined: placed one after
 * the other so that they read as one [k, sum m_i] tensor, one product instead of several.
 * With desc.convert, tensors are converted on the host as they are uploaded (F16, or linear
 * weights quantised: weights_convert.c), each type decided when a program first asks for it. */
#include "model_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct weight_entry {
    vki_source_tensor t; // the source's record (data borrowed from the file)
    vki_dtype dtype;     // on the device: t.dtype, or its conversion (desc.convert)
    uint64_t size;       // on the device
    bool decided;        // dtype chosen by a first vki_weights_tensor/linear/joined
    vki_range range;     // on the device, once uploaded
} weight_entry;

#define MAX_GROUP 4 // tensors one join takes

typedef struct group_entry {
    int32_t member[MAX_GROUP];
    uint32_t count;
    uint64_t size;
    vki_range range;     // on the device, once uploaded
} group_entry;

struct vki_weights {
    vki_weights_desc d;
    vki_allocator allocator;
    weight_entry *weights;
    uint32_t count, capacity;
    group_entry *groups;
    uint32_t group_count, group_capacity;
    vki_arena *arena;
    uint64_t bytes;
    vki_status status;
    char error[512];
};

void *vki__model_alloc(const vki_allocator *a, size_t size)
{
    void *p = a && a->alloc ? a->alloc(a->user, size) : malloc(size);
    if (p) memset(p, 0, size);
    return p;
}

void vki__model_free(const vki_allocator *a, void *p)
{
    if (!p) return;
    if (a && a->alloc && a->free) a->free(a->user, p);
    else free(p);
}

static void *walloc(const vki_weights *w, size_t size) { return vki__model_alloc(&w->allocator, size); }
static void wfree(const vki_weights *w, void *p) { vki__model_free(&w->allocator, p); }

static vki_status fail(vki_weights *w, vki_status st, const char *fmt, ...)
    VKI_PRINTF(3, 4);
static vki_status fail(vki_weights *w, vki_status st, const char *fmt, ...)
{
    if (w->status) return w->status; // the first failure stands
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    w->status = st;
    return st;
}

vki_status vki_weights_create(const vki_weights_desc *desc, vki_weights **out)
{
    if (!desc || !out || !desc->profile || !desc->source.find || !vki__weights_convert_target_ok(desc->convert))
        return VKI_ERROR_INVALID_ARGUMENT;
    vki_weights tmp = {.allocator = desc->allocator ? *desc->allocator : (vki_allocator){0}};
    vki_weights *w = walloc(&tmp, sizeof *w);
    if (!w) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    w->d = *desc;
    w->allocator = tmp.allocator;
    *out = w;
    return VKI_OK;
}

void vki_weights_destroy(vki_weights *w)
{
    if (!w) return;
    vki_arena_destroy(w->arena);
    wfree(w, w->weights);
    wfree(w, w->groups);
    wfree(w, w);
}

const char *vki_weights_error(const vki_weights *w) { return w ? w->error : ""; }
vki_status vki_weights_status(const vki_weights *w) { return w ? w->status : VKI_ERROR_INVALID_ARGUMENT; }
uint64_t vki_weights_bytes(const vki_weights *w) { return w ? w->bytes : 0; }

bool vki_weights_has(const vki_weights *w, const char *name)
{
    vki_source_tensor t;
    return w->d.source.find(w->d.source.file, name, &t) != VKI_ERROR_NOT_FOUND;
}

/* The source's tensor `name`, registered once. -1 when absent (no failure) or on a failure. */
static int32_t index_of(vki_weights *w, const char *name)
{
    for (uint32_t i = 0; i < w->count; i++)
        if (strcmp(w->weights[i].t.name, name) == 0) return (int32_t)i;
    vki_source_tensor t;
    vki_status st = w->d.source.find(w->d.source.file, name, &t);
    if (st == VKI_ERROR_NOT_FOUND) return -1;
    // A type vkinfer does not compute with is reported by the caller, which knows the use.
    if (st && st != VKI_ERROR_UNSUPPORTED) {
        fail(w, st, "model tensor %s: %s", name, w->d.source.last_error(w->d.source.file));
        return -1;
    }
    if (w->count == w->capacity) {
        uint32_t cap = w->capacity ? 2 * w->capacity : 256;
        weight_entry *grown = walloc(w, cap * sizeof *grown);
        if (!grown) {
            fail(w, VKI_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
            return -1;
        }
        if (w->weights) memcpy(grown, w->weights, w->count * sizeof *grown);
        wfree(w, w->weights);
        w->weights = grown;
        w->capacity = cap;
    }
    w->weights[w->count] = (weight_entry){.t = t, .dtype = t.dtype, .size = t.size};
    return (int32_t)w->count++;
}

/* The entry's device type and size under desc.convert, the first time it is asked for. */
static void decide(vki_weights *w, weight_entry *x, bool linear)
{
    if (x->decided) return;
    x->decided = true;
    if (!w->d.convert || x->t.dtype == VKI_DTYPE_NONE) return;
    vki_dtype to = vki__weights_convert_dtype(&x->t, w->d.convert, linear);
    if (to == x->t.dtype) return;
    int64_t n = x->t.ne[0] * x->t.ne[1] * x->t.ne[2] * x->t.ne[3]; // the source checked it fits
    x->dtype = to;
    x->size = vki_dtype_bytes(to, n);
}

static vki_tensor tensor(vki_weights *w, vki_program *p, const char *name, uint32_t ndim,
                         const int64_t *ne, bool optional, bool binding_limit_ok, bool linear)
{
    vki_graph *g = vki_program_graph(p);
    if (w->status || vki_graph_status(g) || ndim < 1 || ndim > VKI_MAX_DIMS) return (vki_tensor){0};
    int32_t i = index_of(w, name);
    if (i < 0) {
        if (!optional && !w->status)
            fail(w, VKI_ERROR_BAD_FILE, "model: tensor %s is missing from the file (%s)", name,
                 w->d.model_name);
        return (vki_tensor){0};
    }
    weight_entry *x = &w->weights[i];
    const vki_source_tensor *t = &x->t;
    bool ok = true;
    for (uint32_t d = 0; d < VKI_MAX_DIMS; d++)
        ok = ok && (d < ndim ? ne[d] < 0 || t->ne[d] == ne[d] : t->ne[d] == 1);
    if (!ok) {
        char want[96];
        int n = snprintf(want, sizeof want, "[");
        for (uint32_t d = 0; d < ndim && n > 0 && (size_t)n < sizeof want; d++)
            n += snprintf(want + n, sizeof want - (size_t)n, d ? ", %lld" : "%lld",
                          (long long)(ne[d] < 0 ? t->ne[d] : ne[d]));
        if (n > 0 && (size_t)n < sizeof want) snprintf(want + n, sizeof want - (size_t)n, "]");
        fail(w, VKI_ERROR_BAD_FILE, "model: tensor %s is [%lld, %lld, %lld, %lld], %s wants %s",
             name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
             (long long)t->ne[3], w->d.model_name, want);
        return (vki_tensor){0};
    }
    if (t->dtype == VKI_DTYPE_NONE) {
        fail(w, VKI_ERROR_UNSUPPORTED, "model: tensor %s has type %s, which vkinfer does not "
             "compute with (supported: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, "
             "q6_k)", name, t->type_name);
        return (vki_tensor){0};
    }
    decide(w, x, linear);
    uint64_t limit = w->d.profile->max_storage_range;
    if (!binding_limit_ok && x->size > limit) {
        fail(w, VKI_ERROR_UNSUPPORTED, "model tensor %s is %llu MiB; this device binds at most "
             "%llu MiB at once", name, (unsigned long long)(x->size >> 20),
             (unsigned long long)(limit >> 20));
        return (vki_tensor){0};
    }
    uint32_t rank = t->n_dims < ndim ? t->n_dims : ndim; // the dims past ndim are 1 (checked)
    vki_tensor y = vki_weight(g, x->dtype, rank, t->ne, name);
    if (y.id && vki__program_bind_weight(p, y, w, i, -1)) return (vki_tensor){0};
    return y;
}

vki_tensor vki_weights_tensor(vki_weights *w, vki_program *p, const char *name, uint32_t ndim,
                              const int64_t *ne, bool optional, bool binding_limit_ok)
{
    return tensor(w, p, name, ndim, ne, optional, binding_limit_ok, false);
}

vki_tensor vki_weights_linear(vki_weights *w, vki_program *p, const char *name, int64_t k, int64_t n)
{
    return tensor(w, p, name, 2, (int64_t[2]){k, n}, false, true, true);
}

/* The weights' alignment on the device: each starts at a multiple. */
static uint64_t align_of(const vki_weights *w)
{
    uint64_t align = w->d.profile->storage_align;
    return align > 256 ? align : 256;
}

/* The group of exactly these members (an earlier program joined them), a new one, or -1 when
 * any of them is in another group. */
static int32_t group_of(vki_weights *w, const int32_t *member, uint32_t n, uint64_t size)
{
    for (uint32_t gi = 0; gi < w->group_count; gi++) {
        const group_entry *gr = &w->groups[gi];
        bool same = gr->count == n && memcmp(gr->member, member, n * sizeof *member) == 0;
        if (same) return (int32_t)gi;
        for (uint32_t i = 0; i < gr->count; i++)
            for (uint32_t l = 0; l < n; l++)
                if (gr->member[i] == member[l]) return -1;
    }
    if (w->group_count == w->group_capacity) {
        uint32_t cap = w->group_capacity ? 2 * w->group_capacity : 64;
        group_entry *grown = walloc(w, cap * sizeof *grown);
        if (!grown) {
            fail(w, VKI_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory");
            return -1;
        }
        if (w->groups) memcpy(grown, w->groups, w->group_count * sizeof *grown);
        wfree(w, w->groups);
        w->groups = grown;
        w->group_capacity = cap;
    }
    group_entry *gr = &w->groups[w->group_count];
    memcpy(gr->member, member, n * sizeof *member);
    gr->count = n;
    gr->size = size;
    return (int32_t)w->group_count++;
}

vki_tensor vki_weights_joined(vki_weights *w, vki_program *p, const char *const *names,
                              uint32_t n, int64_t k, const int64_t *rows)
{
    vki_graph *g = vki_program_graph(p);
    if (w->status || vki_graph_status(g) || n < 2 || n > MAX_GROUP) return (vki_tensor){0};
    int32_t member[MAX_GROUP];
    uint64_t size = 0, align = align_of(w);
    int64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        member[i] = index_of(w, names[i]);
        if (member[i] < 0) return (vki_tensor){0};
        weight_entry *x = &w->weights[member[i]], *x0 = &w->weights[member[0]];
        const vki_source_tensor *t = &x->t;
        // A wrong shape is left to vki_weights_tensor, which names it.
        if (t->dtype == VKI_DTYPE_NONE || t->ne[0] != k || t->ne[1] != rows[i] || t->ne[2] != 1 ||
            t->ne[3] != 1)
            return (vki_tensor){0};
        decide(w, x, true); // joined members are the rows of one product's weight
        if (x->dtype != x0->dtype || (i + 1 < n && x->size % align)) return (vki_tensor){0};
        size += x->size;
        total += rows[i];
    }
    if (size > w->d.profile->max_storage_range) return (vki_tensor){0};
    int32_t gi = group_of(w, member, n, size);
    if (gi < 0) return (vki_tensor){0};
    char name[96];
    snprintf(name, sizeof name, "%s+%u", w->weights[member[0]].t.name, n - 1);
    vki_tensor x = vki_weight(g, w->weights[member[0]].dtype, 2, (int64_t[2]){k, total}, name);
    if (x.id && vki__program_bind_weight(p, x, w, -1, gi)) return (vki_tensor){0};
    return x;
}

vki_tensor vki_weights_joined_experts(vki_weights *w, vki_program *p, const char *const *names,
                                      uint32_t n, const int64_t ne[3])
{
    vki_graph *g = vki_program_graph(p);
    if (w->status || vki_graph_status(g) || n < 2 || n > MAX_GROUP || ne[2] < 1) return (vki_tensor){0};
    int32_t member[MAX_GROUP];
    uint64_t size = 0, align = align_of(w);
    for (uint32_t i = 0; i < n; i++) {
        member[i] = index_of(w, names[i]);
        if (member[i] < 0) return (vki_tensor){0};
        weight_entry *x = &w->weights[member[i]], *x0 = &w->weights[member[0]];
        const vki_source_tensor *t = &x->t;
        // A wrong shape is left to vki_weights_tensor, which names it.
        if (t->dtype == VKI_DTYPE_NONE || t->ne[0] != ne[0] || t->ne[1] != ne[1] || t->ne[2] != ne[2] ||
            t->ne[3] != 1)
            return (vki_tensor){0};
        decide(w, x, false); // as vki_weights_tensor decides stacked experts
        if (x->dtype != x0->dtype || (i + 1 < n && x->size % align)) return (vki_tensor){0};
        size += x->size;
    }
    // Members of one size, so the experts lie one stride apart across the join.
    if (size > w->d.profile->max_storage_range || size != n * w->weights[member[0]].size)
        return (vki_tensor){0};
    int32_t gi = group_of(w, member, n, size);
    if (gi < 0) return (vki_tensor){0};
    char name[96];
    snprintf(name, sizeof name, "%s+%u", w->weights[member[0]].t.name, n - 1);
    vki_tensor x = vki_weight(g, w->weights[member[0]].dtype, 3, (int64_t[3]){ne[0], ne[1], n * ne[2]}, name);
    if (x.id && vki__program_bind_weight(p, x, w, -1, gi)) return (vki_tensor){0};
    return x;
}

vki_status vki_weights_upload(vki_weights *w)
{
    if (w->status) return w->status;
    if (!w->d.device || w->arena) return VKI_OK;
    uint64_t align = align_of(w), total = 0;
    for (uint32_t i = 0; i < w->count; i++) total += vki_align_up(w->weights[i].size + 16, align);
    // One block sized to the weights: the arena's default block would round a 100 MiB model
    // up to 256 MiB of device memory.
    vki_arena_desc ad = {.kind = VKI_ARENA_WEIGHTS, .block_size = total, .name = "weights"};
    VKI_TRY(vki_arena_create(w->d.device, &ad, &w->arena));
    // Groups first, each member at its offset in the group's range (a multiple of align).
    for (uint32_t gi = 0; gi < w->group_count; gi++) {
        group_entry *gr = &w->groups[gi];
        VKI_TRY(vki_arena_alloc(w->arena, gr->size, align, &gr->range));
        uint64_t off = 0;
        for (uint32_t i = 0; i < gr->count; i++) {
            weight_entry *x = &w->weights[gr->member[i]];
            x->range = (vki_range){gr->range.buffer, gr->range.offset + off, x->size};
            off += x->size;
        }
    }
    for (uint32_t i = 0; i < w->count; i++) {
        weight_entry *x = &w->weights[i];
        if (!x->range.buffer) VKI_TRY(vki_arena_alloc(w->arena, x->size, align, &x->range));
        if (x->dtype == x->t.dtype) {
            VKI_TRY(vki_device_upload(w->d.device, x->range, 0, x->t.data, x->size));
        } else { // converted on the host, one tensor at a time (weights_convert.c)
            void *tmp = (uint64_t)(size_t)x->size == x->size ? walloc(w, (size_t)x->size) : NULL;
            if (!tmp) return fail(w, VKI_ERROR_OUT_OF_HOST_MEMORY, "model: out of host memory "
                                  "converting tensor %s", x->t.name);
            char why[256] = "";
            vki_status st = vki__weights_convert(&x->t, x->dtype, tmp, x->size, why, sizeof why);
            if (!st) st = vki_device_upload(w->d.device, x->range, 0, tmp, x->size);
            wfree(w, tmp);
            if (st) return why[0] ? fail(w, st, "%s", why) : st;
        }
        w->bytes += x->size;
    }
    return VKI_OK;
}

vki_status vki__weights_range(const vki_weights *w, int32_t weight, int32_t group, vki_range *out)
{
    if (weight >= 0 && (uint32_t)weight < w->count) *out = w->weights[weight].range;
    else if (group >= 0 && (uint32_t)group < w->group_count) *out = w->groups[group].range;
    else return VKI_ERROR_INVALID_ARGUMENT;
    return out->buffer ? VKI_OK : VKI_ERROR_INVALID_ARGUMENT; // not uploaded
}

vki_status vki_weights_check_all_used(vki_weights *w)
{
    if (w->status) return w->status;
    uint64_t n = w->d.source.count(w->d.source.file);
    if (n == w->count) return VKI_OK; // each registered weight is a distinct tensor of the file
    for (uint64_t i = 0; i < n; i++) {
        vki_source_tensor t;
        if (w->d.source.at(w->d.source.file, i, &t) != VKI_OK) continue;
        uint32_t k = 0;
        while (k < w->count && strcmp(w->weights[k].t.name, t.name) != 0) k++;
        if (k == w->count)
            return fail(w, VKI_ERROR_UNSUPPORTED, "model: tensor %s (%llu of %llu in the file) is "
                        "not part of %s as vkinfer runs it; refusing a model it would compute "
                        "without it", t.name, (unsigned long long)i + 1, (unsigned long long)n,
                        w->d.model_name);
    }
    return VKI_OK;
}

/* ---- GGUF as a weight source -------------------------------------------------------------- */

static void from_gguf(const vki_gguf_tensor *g, vki_source_tensor *out)
{
    *out = (vki_source_tensor){
        .name = g->name, .dtype = g->dtype, .type_name = vki_gguf_ggml_type_name(g->ggml_type),
        .n_dims = g->n_dims, .data = g->data, .size = g->size,
    };
    memcpy(out->ne, g->ne, sizeof out->ne);
}

static uint64_t gguf_count(void *file) { return vki_gguf_tensor_count(file); }

static vki_status gguf_at(void *file, uint64_t index, vki_source_tensor *out)
{
    vki_gguf_tensor t;
    VKI_TRY(vki_gguf_tensor_at(file, index, &t));
    from_gguf(&t, out);
    return VKI_OK;
}

static vki_status gguf_find(void *file, const char *name, vki_source_tensor *out)
{
    vki_gguf_tensor t;
    vki_status st = vki_gguf_find_tensor(file, name, &t);
    if (st == VKI_OK || st == VKI_ERROR_UNSUPPORTED) from_gguf(&t, out); // filled either way
    return st;
}

static const char *gguf_error(void *file) { return vki_gguf_last_error(file); }

vki_weight_source vki_weight_source_gguf(vki_gguf *gguf)
{
    return (vki_weight_source){.file = gguf, .count = gguf_count, .at = gguf_at,
                               .find = gguf_find, .last_error = gguf_error};
}
