/* The compiler: works on a copy of the graph's nodes, fuses (fusion.c), removes what no output
 * needs, places every intermediate in one activation arena by liveness (in place where an
 * elementwise op consumes the last use of its input), lowers each node to dispatches for the
 * profile, and puts barriers only where a dispatch touches bytes an earlier one in the same
 * barrier window wrote (or writes bytes it read). */
#include "graph_internal.h"
#include "vki_abi.h"

#include <inttypes.h>
#include <stdio.h>

#define ARENA_ALIGN 256 // >= every device's minStorageBufferOffsetAlignment

struct vki_lower {
    vki_graph *g;         // the working copy (fused)
    const vki_profile *profile;
    vki_plan *plan;
    uint32_t node;        // node being lowered
    uint64_t scratch_offset; // the scratch region: above every tensor of the arena
    uint64_t scratch_bytes;  // the largest any step binds
};

/* Fusion (fusion.c): rewrites `work` in place, returns the count of nodes folded away. */
uint32_t vki__fuse(vki_graph *work, const vki_profile *profile);

const vki_profile *vki_lower_profile(const vki_lower *L) { return L->profile; }

const vki_node *vki_lower_node(const vki_lower *L, uint32_t id)
{
    return id && id < L->g->count ? &L->g->nodes[id] : NULL;
}

vki_status vki_lower_fail(vki_lower *L, const vki_node *n, vki_status status, const char *fmt, ...)
{
    char shape[96], text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    vki__graph_fail(L->g, status, "%s %s: %s", n->op ? n->op->name : "node", vki__shape_str(n, shape),
                    text);
    return status;
}

vki_status vki_lower_need_storage16(vki_lower *L, const vki_node *n, bool needed)
{
    if (!needed || L->profile->storage16) return VKI_OK;
    return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "this device has no 16-bit storage");
}

vki_status vki_lower_elementwise(vki_lower *L, const vki_node *n, const char *kernel,
                                 const uint32_t *tensors, uint32_t count, const void *push,
                                 uint32_t push_size)
{
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, L->profile->tuning.workgroup_size};
    vki_step_desc s = {
        .kernel = kernel,
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = count, .write_mask = 1u << (count - 1),
        .push = push, .push_size = push_size,
    };
    vki_lower_grid((uint64_t)vki__nelements(n), spec.value, s.groups);
    return vki_lower_step(L, &s);
}

void vki_lower_grid(uint64_t n, uint32_t local, uint32_t groups[3])
{
    uint64_t wg = vki_div_up(n ? n : 1, local ? local : 1);
    groups[0] = (uint32_t)(wg < 65535 ? wg : 65535);
    groups[1] = (uint32_t)vki_div_up(wg, groups[0]);
    groups[2] = 1;
}

static uint32_t element_bytes(vki_dtype dtype)
{
    const vki_dtype_info *d = vki_dtype_get(dtype);
    return d->quantized ? 1 : d->block_bytes;
}

uint32_t vki_lower_self(const vki_lower *L) { return L->node; }

vki_operand vki_lower_operand(const vki_lower *L, uint32_t id) { return vki_lower_operand_at(L, id, 0); }

vki_operand vki_lower_operand_at(const vki_lower *L, uint32_t id, uint64_t offset)
{
    vki_operand o = {0};
    const vki_node *n = vki_lower_node(L, id);
    if (!n) return o;
    uint32_t eb = element_bytes(n->dtype);
    uint32_t align = L->plan->storage_align;
    o.offset = (uint32_t)(((n->view_offset + offset) % align) / eb);
    for (int i = 0; i < VKI_MAX_DIMS; i++) {
        o.ne[i] = (uint32_t)n->ne[i];
        o.nb[i] = (uint32_t)(n->nb[i] / eb);
    }
    return o;
}

static uint64_t storage_bytes(const vki_node *n)
{
    return vki_dtype_bytes(n->dtype, n->ne[0]) * (uint64_t)(n->ne[1] * n->ne[2] * n->ne[3]);
}

static vki_status plan_push_step(vki_plan *plan, vki_step **out)
{
    if (plan->step_count == plan->step_capacity) {
        uint32_t cap = plan->step_capacity ? plan->step_capacity * 2 : 64;
        vki_graph tmp = {.allocator = plan->allocator};
        vki_step *steps = vki__galloc(&tmp, cap * sizeof *steps);
        if (!steps) return VKI_ERROR_OUT_OF_HOST_MEMORY;
        if (plan->steps) memcpy(steps, plan->steps, plan->step_count * sizeof *steps);
        vki__gfree(&tmp, plan->steps);
        plan->steps = steps;
        plan->step_capacity = cap;
    }
    *out = &plan->steps[plan->step_count++];
    memset(*out, 0, sizeof **out);
    return VKI_OK;
}

vki_status vki_lower_step(vki_lower *L, const vki_step_desc *d)
{
    const vki_node *self = &L->g->nodes[L->node];
    if (!d->kernel || strlen(d->kernel) >= sizeof L->plan->steps[0].kernel ||
        d->tensor_count > VKI_MAX_BINDINGS || d->push_size > 128 ||
        d->spec_count > VKI_STEP_MAX_SPECS)
        return vki_lower_fail(L, self, VKI_ERROR_INVALID_ARGUMENT, "bad step description");
    // A variant missing from the build is a compile error naming it, not a failure when an
    // executor creates its pipelines.
    if (!vki_shader_find(d->kernel))
        return vki_lower_fail(L, self, VKI_ERROR_NOT_FOUND,
                              "kernel variant %s is not embedded (shaders/variants.txt or the "
                              "generated matmul variants in shaders/CMakeLists.txt)", d->kernel);
    vki_step *s = NULL;
    VKI_TRY(plan_push_step(L->plan, &s));
    snprintf(s->kernel, sizeof s->kernel, "%s", d->kernel);
    s->spec_count = d->spec_count;
    if (d->spec_count) memcpy(s->specs, d->specs, d->spec_count * sizeof *d->specs);
    s->subgroup_size = d->subgroup_size;
    s->binding_count = d->tensor_count;
    s->write_mask = d->write_mask;
    s->push_size = d->push_size;
    if (d->push_size) memcpy(s->push, d->push, d->push_size);
    for (int i = 0; i < 3; i++) s->groups[i] = d->groups[i] ? d->groups[i] : 1;
    s->node = L->node;
    if (d->fp16_operands) L->plan->stats.fp16_dispatches++;
    if (d->int8_operands) L->plan->stats.int8_dispatches++;
    uint32_t align = L->plan->storage_align;
    for (uint32_t i = 0; i < d->tensor_count; i++) {
        vki_plan_binding *b = &s->bindings[i];
        if (d->tensors[i] == VKI_LOWER_SCRATCH) {
            if (!d->scratch_bytes)
                return vki_lower_fail(L, self, VKI_ERROR_INVALID_ARGUMENT, "binding %u: no scratch size", i);
            b->base = 0;
            b->offset = L->scratch_offset;
            b->size = vki_align_up(d->scratch_bytes, 16);
            if (b->size > L->scratch_bytes) L->scratch_bytes = b->size;
            continue;
        }
        const vki_node *n = vki_lower_node(L, d->tensors[i]);
        if (!n) return vki_lower_fail(L, self, VKI_ERROR_INVALID_ARGUMENT, "binding %u has no tensor", i);
        const vki_plan_tensor *base = &L->plan->tensors[n->base];
        const vki_lower_range *r = d->ranges && d->ranges[i].size ? &d->ranges[i] : NULL;
        uint64_t start = n->view_offset + (r ? r->offset : 0);
        uint64_t view = start - start % align, rem = start % align;
        uint64_t size = vki_align_up(rem + (r ? r->size : vki__span_bytes(n)), 16);
        uint64_t limit = vki_align_up(base->bytes, 16);
        if (view + size > limit) size = limit > view ? limit - view : 0;
        if (base->storage == VKI_STORE_ARENA) {
            b->base = 0;
            b->offset = base->offset + view;
        } else {
            b->base = n->base;
            b->offset = view;
        }
        b->size = size;
    }
    return VKI_OK;
}

uint64_t vki_lower_binding_slack(const vki_profile *p)
{
    return 2ull * (p->storage_align > ARENA_ALIGN ? p->storage_align : ARENA_ALIGN);
}

uint64_t vki_lower_window_count(const vki_profile *p, uint64_t slice_bytes, uint64_t stride)
{
    uint64_t limit = p->max_storage_range, slack = vki_lower_binding_slack(p);
    if (!limit) return UINT64_MAX;
    if (limit <= slack || limit - slack < slice_bytes) return 0;
    return stride ? (limit - slack - slice_bytes) / stride + 1 : UINT64_MAX;
}

bool vki_lower_cut_outer(const vki_lower *L, const vki_node *n, uint32_t whole, vki_lower_cut *c)
{
    int d = VKI_MAX_DIMS - 1;
    while (d > 0 && n->ne[d] == 1) d--;
    if (d == 0) return false; // dim 0 is a row: row-wise ops reduce over it
    c->dim = d;
    for (int i = 0; i < VKI_MAX_SRC; i++) {
        c->src_dim[i] = -1;
        const vki_node *s = vki_lower_node(L, n->src[i]);
        if (!s || ((whole >> i) & 1)) continue;
        for (int j = d + 1; j < VKI_MAX_DIMS; j++)
            if (s->ne[j] != 1) return false;
        if (s->ne[d] == n->ne[d])
            c->src_dim[i] = (int8_t)d;
        else if (s->ne[d] != 1)
            return false;
    }
    return true;
}

bool vki_lower_cut_plain(const vki_lower *L, const vki_node *n, vki_lower_cut *c)
{
    return vki_lower_cut_outer(L, n, 0, c);
}

/* ---- Windows ------------------------------------------------------------------------------- */

/* One binding of a slice of t along dim (ne[dim] = 1): its span. */
static uint64_t slice_span(const vki_node *t, int dim)
{
    vki_node one = *t;
    one.ne[dim] = 1;
    return vki__span_bytes(&one);
}

/* Lowers node id, in windows along its outermost dimension when one of the tensors its op can
 * cut would span more than a binding may (vki_lower_cut). The slices depend only on the profile
 * and the shapes, so a device computes the same bits every run. Tensors the cut binds whole
 * are the op's own affair (a matmul binds a large weight a slice of rows at a time). */
static vki_status lower_node(vki_lower *L, uint32_t id)
{
    vki_node *n = &L->g->nodes[id];
    const vki_profile *p = L->profile;
    vki_lower_cut c;
    uint64_t limit = p->max_storage_range, slack = vki_lower_binding_slack(p);
    bool over = limit && vki__span_bytes(n) + slack > limit;
    for (int i = 0; i < VKI_MAX_SRC && !over; i++) {
        const vki_node *s = vki_lower_node(L, n->src[i]);
        over = s && limit && vki__span_bytes(s) + slack > limit;
    }
    if (!over || !n->op->cut || !n->op->cut(L, n, &c)) return n->op->lower(L, n);

    // The tensors cut (each once, the result first), and the slices per window they allow.
    uint32_t ids[1 + VKI_MAX_SRC], count = 0;
    int dims[1 + VKI_MAX_SRC];
    bool cut_over = false;
    uint64_t per = UINT64_MAX;
    for (int i = -1; i < VKI_MAX_SRC; i++) {
        uint32_t t = i < 0 ? id : n->src[i];
        int dim = i < 0 ? c.dim : c.src_dim[i];
        bool seen = false;
        for (uint32_t k = 0; k < count; k++) seen = seen || ids[k] == t;
        if (!t || dim < 0 || seen) continue;
        const vki_node *tn = &L->g->nodes[t];
        if (tn->ne[dim] != n->ne[c.dim])
            return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT, "a cut source's extent differs (op's cut)");
        cut_over = cut_over || vki__span_bytes(tn) + slack > limit;
        uint64_t fit = vki_lower_window_count(p, slice_span(tn, dim), tn->nb[dim]);
        if (fit == 0)
            return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED,
                                  "one slice of %s along dim %d spans %llu bytes: with %llu of "
                                  "alignment slack, over the device's binding limit of %llu bytes",
                                  t == id ? "the result" : "a source", dim,
                                  (unsigned long long)slice_span(tn, dim), (unsigned long long)slack,
                                  (unsigned long long)limit);
        if (fit < per) per = fit;
        ids[count] = t;
        dims[count++] = dim;
    }
    if (!cut_over) return n->op->lower(L, n); // only what the op binds whole is large

    const int64_t total = n->ne[c.dim];
    vki_node saved[1 + VKI_MAX_SRC];
    for (int64_t w0 = 0; w0 < total; w0 += (int64_t)per) {
        int64_t len = total - w0 < (int64_t)per ? total - w0 : (int64_t)per;
        for (uint32_t k = 0; k < count; k++) {
            vki_node *t = &L->g->nodes[ids[k]];
            saved[k] = *t;
            t->ne[dims[k]] = len;
            t->view_offset += (uint64_t)w0 * t->nb[dims[k]];
        }
        vki_status st = n->op->lower(L, n);
        for (uint32_t k = count; k-- > 0;) L->g->nodes[ids[k]] = saved[k];
        if (st) return st;
        L->plan->stats.windows++;
    }
    L->plan->stats.windowed++;
    return VKI_OK;
}

/* ---- Liveness and the arena ------------------------------------------------------------------ */

typedef struct free_block {
    uint64_t offset, size;
} free_block;

typedef struct arena_plan {
    free_block *free;   // sorted by offset
    uint32_t free_count;
    uint64_t top;       // high-water mark
} arena_plan;

static uint64_t arena_take(arena_plan *a, uint64_t size)
{
    for (uint32_t i = 0; i < a->free_count; i++) {
        free_block *f = &a->free[i];
        if (f->size < size) continue;
        uint64_t off = f->offset;
        f->offset += size;
        f->size -= size;
        if (f->size == 0) {
            memmove(f, f + 1, (a->free_count - i - 1) * sizeof *f);
            a->free_count--;
        }
        return off;
    }
    // Grow at the top, absorbing a free block that ends there.
    if (a->free_count && a->free[a->free_count - 1].offset + a->free[a->free_count - 1].size == a->top) {
        uint64_t off = a->free[a->free_count - 1].offset;
        a->free_count--;
        a->top = off + size;
        return off;
    }
    uint64_t off = a->top;
    a->top += size;
    return off;
}

static void arena_give(arena_plan *a, uint64_t offset, uint64_t size)
{
    uint32_t i = 0;
    while (i < a->free_count && a->free[i].offset < offset) i++;
    memmove(&a->free[i + 1], &a->free[i], (a->free_count - i) * sizeof *a->free);
    a->free[i] = (free_block){offset, size};
    a->free_count++;
    // Merge with neighbours.
    if (i + 1 < a->free_count && a->free[i].offset + a->free[i].size == a->free[i + 1].offset) {
        a->free[i].size += a->free[i + 1].size;
        memmove(&a->free[i + 1], &a->free[i + 2], (a->free_count - i - 2) * sizeof *a->free);
        a->free_count--;
    }
    if (i > 0 && a->free[i - 1].offset + a->free[i - 1].size == a->free[i].offset) {
        a->free[i - 1].size += a->free[i].size;
        memmove(&a->free[i], &a->free[i + 1], (a->free_count - i - 1) * sizeof *a->free);
        a->free_count--;
    }
}

/* Marks what the outputs and the writes into other tensors' storage (set_rows: a KV cache
 * the caller keeps across runs) need; returns false when there is neither. */
static bool mark_live(const vki_graph *g, bool *live)
{
    bool any = false;
    for (uint32_t id = g->count - 1; id > 0; id--) {
        const vki_node *n = &g->nodes[id];
        if (n->output || vki__writes_src0(n)) live[id] = any = true;
        if (!live[id]) continue;
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (n->src[i]) live[n->src[i]] = true;
        if (n->kind == VKI_NODE_VIEW) live[n->base] = true;
    }
    return any;
}

/* True when a source other than src[0] reads the storage of `base` (in place would race). */
static bool shares_base(const vki_graph *g, const vki_node *n, uint32_t base)
{
    for (int i = 1; i < VKI_MAX_SRC; i++)
        if (n->src[i] && g->nodes[n->src[i]].base == base) return true;
    return false;
}

static vki_status place_tensors(vki_graph *g, const bool *live, bool inplace, vki_plan *plan)
{
    uint32_t count = g->count;
    uint32_t *last = vki__galloc(g, count * sizeof *last);
    arena_plan a = {.free = vki__galloc(g, (count + 1) * sizeof(free_block))};
    if (!last || !a.free) {
        vki__gfree(g, last);
        vki__gfree(g, a.free);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    // Last use of each base's storage, through views.
    for (uint32_t id = 1; id < count; id++) {
        const vki_node *n = &g->nodes[id];
        if (!live[id]) continue;
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (n->src[i]) last[g->nodes[n->src[i]].base] = id;
    }
    for (uint32_t id = 1; id < count; id++) {
        const vki_node *n = &g->nodes[id];
        vki_plan_tensor *t = &plan->tensors[id];
        t->kind = n->kind;
        t->output = n->output;
        t->dtype = n->dtype;
        snprintf(t->name, sizeof t->name, "%s", n->name);
        t->base = vki__writes_src0(n) ? n->base : id;
        if (!live[id] || n->kind == VKI_NODE_VIEW) continue;
        if (vki__writes_src0(n)) {
            // The result is the storage it wrote into (placed already: a base precedes its
            // users). Like a view it has none of its own; as an output it is downloaded from
            // there (vki_output made sure it covers all of it, and compile made an
            // intermediate base an output too).
            if (n->output) {
                t->storage = VKI_STORE_EXTERNAL;
                t->bytes = storage_bytes(n);
            }
        } else if (n->kind != VKI_NODE_OP || n->output) {
            t->bytes = storage_bytes(n);
            plan->stats.naive_bytes += n->kind == VKI_NODE_OP ? vki_align_up(t->bytes, ARENA_ALIGN) : 0;
            t->storage = VKI_STORE_EXTERNAL;
        } else {
            t->bytes = storage_bytes(n);
            plan->stats.naive_bytes += vki_align_up(t->bytes, ARENA_ALIGN);
            t->storage = VKI_STORE_ARENA;
            uint64_t size = vki_align_up(t->bytes, ARENA_ALIGN);
            const vki_node *s0 = n->src[0] ? &g->nodes[n->src[0]] : NULL;
            // In place: an elementwise op over the last use of a same-sized contiguous
            // intermediate.
            if (inplace && s0 && (n->op->flags & VKI_OPF_ELEMENTWISE) && s0->kind == VKI_NODE_OP &&
                s0->base == n->src[0] && last[n->src[0]] == id &&
                plan->tensors[n->src[0]].storage == VKI_STORE_ARENA &&
                plan->tensors[n->src[0]].bytes == t->bytes && s0->dtype == n->dtype &&
                vki__is_contiguous(s0) && !shares_base(g, n, s0->base)) {
                t->offset = plan->tensors[n->src[0]].offset;
                last[n->src[0]] = 0; // ownership moved: not freed below
            } else {
                t->offset = arena_take(&a, size);
            }
        }
        // Inputs whose last use is this node free their storage now (after the result was
        // placed, so the result never overlaps an input it reads).
        for (int i = 0; i < VKI_MAX_SRC; i++) {
            if (!n->src[i]) continue;
            uint32_t b = g->nodes[n->src[i]].base;
            if (last[b] == id && plan->tensors[b].storage == VKI_STORE_ARENA) {
                arena_give(&a, plan->tensors[b].offset, vki_align_up(plan->tensors[b].bytes, ARENA_ALIGN));
                last[b] = 0;
            }
        }
    }
    plan->stats.activation_bytes = a.top;
    vki__gfree(g, last);
    vki__gfree(g, a.free);
    return VKI_OK;
}

/* ---- Barriers ----------------------------------------------------------------------------------- */

typedef struct span {
    uint32_t space;      // 0: arena; else the external base node
    uint64_t begin, end;
} span;

static bool overlaps(const span *list, uint32_t n, span s)
{
    for (uint32_t i = 0; i < n; i++)
        if (list[i].space == s.space && list[i].begin < s.end && s.begin < list[i].end) return true;
    return false;
}

static vki_status place_barriers(vki_graph *g, vki_plan *plan, bool full)
{
    uint32_t cap = plan->step_count * VKI_MAX_BINDINGS + 1;
    span *written = vki__galloc(g, cap * sizeof *written), *read = vki__galloc(g, cap * sizeof *read);
    if (!written || !read) {
        vki__gfree(g, written);
        vki__gfree(g, read);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    uint32_t nw = 0, nr = 0;
    for (uint32_t i = 0; i < plan->step_count; i++) {
        vki_step *s = &plan->steps[i];
        bool hazard = full && i > 0;
        for (uint32_t b = 0; b < s->binding_count && !hazard; b++) {
            span sp = {s->bindings[b].base, s->bindings[b].offset, s->bindings[b].offset + s->bindings[b].size};
            bool writes = (s->write_mask >> b) & 1;
            hazard = overlaps(written, nw, sp) || (writes && overlaps(read, nr, sp));
        }
        if (hazard) {
            s->barrier_before = true;
            plan->stats.barriers++;
            nw = nr = 0;
        }
        for (uint32_t b = 0; b < s->binding_count; b++) {
            span sp = {s->bindings[b].base, s->bindings[b].offset, s->bindings[b].offset + s->bindings[b].size};
            if ((s->write_mask >> b) & 1)
                written[nw++] = sp;
            else
                read[nr++] = sp;
        }
    }
    vki__gfree(g, written);
    vki__gfree(g, read);
    return VKI_OK;
}

/* ---- Driver --------------------------------------------------------------------------------------- */

void vki_plan_destroy(vki_plan *plan)
{
    if (!plan) return;
    vki_graph tmp = {.allocator = plan->allocator};
    vki__gfree(&tmp, plan->steps);
    vki__gfree(&tmp, plan->tensors);
    vki__gfree(&tmp, plan);
}

vki_status vki_graph_compile(vki_graph *g, const vki_profile *profile, const vki_compile_desc *desc,
                             vki_plan **out)
{
    static const vki_compile_desc zero_desc;
    if (!g || !profile || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (!desc) desc = &zero_desc;
    if (g->status != VKI_OK) return g->status;

    // Work on a copy: fusion rewrites nodes, and the caller's graph stays as built.
    vki_graph work = {.allocator = g->allocator, .count = g->count, .capacity = g->count};
    work.nodes = vki__galloc(g, g->count * sizeof *work.nodes);
    bool *live = vki__galloc(g, g->count * sizeof *live);
    vki_plan *plan = vki__galloc(g, sizeof *plan);
    vki_status st = VKI_OK;
    if (!work.nodes || !live || !plan) {
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    memcpy(work.nodes, g->nodes, g->count * sizeof *work.nodes);
    // An output that is a set_rows result is downloaded from the storage it wrote into: an
    // intermediate written that way becomes an output itself, with storage of its own.
    for (uint32_t id = 1; id < work.count; id++) {
        const vki_node *n = &work.nodes[id];
        if (n->output && vki__writes_src0(n) && work.nodes[n->base].kind == VKI_NODE_OP)
            work.nodes[n->base].output = true;
    }
    plan->allocator = g->allocator;
    plan->storage_align = profile->storage_align ? profile->storage_align : 16;
    if (plan->storage_align < 4) plan->storage_align = 4;
    plan->tensor_count = g->count;
    plan->tensors = vki__galloc(g, g->count * sizeof *plan->tensors);
    if (!plan->tensors) {
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
        goto done;
    }

    if (!desc->no_fusion) plan->stats.fused = vki__fuse(&work, profile);
    if (!mark_live(&work, live)) {
        st = VKI_ERROR_INVALID_ARGUMENT;
        vki__graph_fail(g, st, "compile: the graph has no output (mark results with vki_output)");
        goto done;
    }
    for (uint32_t id = 1; id < work.count; id++)
        if (!live[id] && work.nodes[id].kind == VKI_NODE_OP) plan->stats.dead++;
    plan->stats.dead -= plan->stats.fused < plan->stats.dead ? plan->stats.fused : plan->stats.dead;
    if ((st = place_tensors(&work, live, !desc->no_inplace, plan))) goto done;

    // Scratch sits above the tensors, so it never overlaps one; steps that bind it are ordered
    // by the barrier pass like any other users of the same bytes.
    uint64_t scratch_align = plan->storage_align > ARENA_ALIGN ? plan->storage_align : ARENA_ALIGN;
    vki_lower L = {.g = &work, .profile = profile, .plan = plan,
                   .scratch_offset = vki_align_up(plan->stats.activation_bytes, scratch_align)};
    for (uint32_t id = 1; id < work.count; id++) {
        const vki_node *n = &work.nodes[id];
        if (!live[id] || n->kind != VKI_NODE_OP) continue;
        L.node = id;
        if ((st = lower_node(&L, id))) break;
    }
    if (st) {
        // The op's message is in the working copy; the caller reads the graph's.
        if (g->status == VKI_OK) {
            g->status = work.status ? work.status : st;
            memcpy(g->error, work.error, sizeof g->error);
        }
        goto done;
    }
    if (L.scratch_bytes) plan->stats.activation_bytes = L.scratch_offset + L.scratch_bytes;
    if ((st = place_barriers(&work, plan, desc->full_barriers))) goto done;
    plan->stats.dispatches = plan->step_count;
    *out = plan;
    plan = NULL;

done:
    vki_plan_destroy(plan);
    vki__gfree(g, work.nodes);
    vki__gfree(g, live);
    return st;
}

void vki_plan_stats_get(const vki_plan *plan, vki_plan_stats *out)
{
    if (!out) return;
    if (!plan) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = plan->stats;
}

uint32_t vki_plan_step_count(const vki_plan *plan) { return plan ? plan->step_count : 0; }

bool vki_plan_step_get(const vki_plan *plan, uint32_t index, vki_plan_step *out)
{
    if (!plan || !out || index >= plan->step_count) return false;
    const vki_step *s = &plan->steps[index];
    out->kernel = s->kernel;
    out->node = plan->tensors[s->node].name;
    out->barrier_before = s->barrier_before;
    return true;
}

uint64_t vki_plan_offset(const vki_plan *plan, vki_tensor t)
{
    if (!plan || t.id == 0 || t.id >= plan->tensor_count) return UINT64_MAX;
    const vki_plan_tensor *pt = &plan->tensors[t.id];
    return pt->storage == VKI_STORE_ARENA ? pt->offset : UINT64_MAX;
}
