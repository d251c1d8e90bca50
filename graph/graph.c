/* The graph: a growing array of nodes, leaves, views and the shape helpers every op uses. */
#include "graph_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void *vki__galloc(const vki_graph *g, size_t size)
{
    void *p = g->allocator.alloc ? g->allocator.alloc(g->allocator.user, size) : malloc(size);
    if (p) memset(p, 0, size);
    return p;
}

void vki__gfree(const vki_graph *g, void *ptr)
{
    if (!ptr) return;
    if (g->allocator.free)
        g->allocator.free(g->allocator.user, ptr);
    else
        free(ptr);
}

vki_status vki_graph_create(const vki_graph_desc *desc, vki_graph **out)
{
    if (!out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_graph tmp = {0};
    if (desc && desc->allocator) tmp.allocator = *desc->allocator;
    vki_graph *g = vki__galloc(&tmp, sizeof *g);
    if (!g) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    g->allocator = tmp.allocator;
    g->capacity = desc && desc->node_capacity ? desc->node_capacity + 1 : 256;
    g->nodes = vki__galloc(g, g->capacity * sizeof *g->nodes);
    if (!g->nodes) {
        vki__gfree(g, g);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    g->count = 1; // nodes[0] is the invalid tensor
    *out = g;
    return VKI_OK;
}

void vki_graph_destroy(vki_graph *g)
{
    if (!g) return;
    vki__gfree(g, g->nodes);
    vki__gfree(g, g);
}

const char *vki_graph_error(const vki_graph *g) { return g ? g->error : ""; }
vki_status vki_graph_status(const vki_graph *g) { return g ? g->status : VKI_ERROR_INVALID_ARGUMENT; }
uint32_t vki_graph_node_count(const vki_graph *g) { return g ? g->count - 1 : 0; }

vki_tensor vki__graph_fail(vki_graph *g, vki_status status, const char *fmt, ...)
{
    if (g && g->status == VKI_OK) {
        g->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, ap);
        va_end(ap);
    }
    return (vki_tensor){0};
}

const vki_node *vki__node(const vki_graph *g, vki_tensor t)
{
    if (!g || t.id == 0 || t.id >= g->count) return NULL;
    return &g->nodes[t.id];
}

vki_node *vki__node_mut(vki_graph *g, vki_tensor t)
{
    if (!g || t.id == 0 || t.id >= g->count) return NULL;
    return &g->nodes[t.id];
}

bool vki__check_srcs(vki_graph *g, const char *op, uint32_t n, const vki_tensor *srcs)
{
    if (!g) return false;
    if (g->status != VKI_OK) return false; // an earlier error flows through silently
    for (uint32_t i = 0; i < n; i++)
        if (!vki__node(g, srcs[i])) {
            vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: operand %u is not a tensor of this graph",
                            op, i);
            return false;
        }
    return true;
}

const char *vki__shape_str(const vki_node *n, char buf[96])
{
    int k = snprintf(buf, 96, "[");
    for (uint32_t i = 0; i < n->ndim && k < 90; i++)
        k += snprintf(buf + k, (size_t)(96 - k), "%s%" PRId64, i ? ", " : "", n->ne[i]);
    snprintf(buf + k, (size_t)(96 - k), "] %s", vki_dtype_get(n->dtype)->name);
    return buf;
}

void vki__contiguous_strides(vki_dtype dtype, const int64_t *ne, uint64_t *nb)
{
    const vki_dtype_info *d = vki_dtype_get(dtype);
    nb[0] = d->block_bytes;
    nb[1] = d->block_bytes * (uint64_t)(ne[0] / (d->block_elems ? d->block_elems : 1));
    for (int i = 2; i < VKI_MAX_DIMS; i++) nb[i] = nb[i - 1] * (uint64_t)ne[i - 1];
}

bool vki__is_contiguous(const vki_node *n)
{
    uint64_t nb[VKI_MAX_DIMS];
    vki__contiguous_strides(n->dtype, n->ne, nb);
    for (int i = 0; i < VKI_MAX_DIMS; i++)
        if (n->ne[i] > 1 && n->nb[i] != nb[i]) return false;
    return true;
}

bool vki__same_shape(const vki_node *a, const vki_node *b)
{
    for (int i = 0; i < VKI_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return false;
    return true;
}

int64_t vki__nelements(const vki_node *n) { return n->ne[0] * n->ne[1] * n->ne[2] * n->ne[3]; }

uint64_t vki__span_bytes(const vki_node *n)
{
    const vki_dtype_info *d = vki_dtype_get(n->dtype);
    uint64_t span = d->block_bytes;
    for (int i = 0; i < VKI_MAX_DIMS; i++) {
        int64_t count = i == 0 ? n->ne[0] / (d->block_elems ? d->block_elems : 1) : n->ne[i];
        if (count > 1) span += (uint64_t)(count - 1) * n->nb[i];
    }
    return span;
}

static bool grow(vki_graph *g)
{
    if (g->count < g->capacity) return true;
    if (g->capacity > (1u << 24)) return false;
    uint32_t cap = g->capacity * 2;
    vki_node *nodes = vki__galloc(g, cap * sizeof *nodes);
    if (!nodes) return false;
    memcpy(nodes, g->nodes, g->count * sizeof *nodes);
    vki__gfree(g, g->nodes);
    g->nodes = nodes;
    g->capacity = cap;
    return true;
}

/* Validates dims (1..4, each >= 1, block-aligned dim 0, no overflow) and appends a node. */
static vki_tensor new_node(vki_graph *g, const char *what, vki_node_kind kind, vki_dtype dtype,
                           uint32_t ndim, const int64_t *ne)
{
    if (!g || g->status != VKI_OK) return (vki_tensor){0};
    const vki_dtype_info *d = vki_dtype_get(dtype);
    if (!d->block_bytes)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: dtype %d is not a vki_dtype", what,
                               (int)dtype);
    if (ndim == 0 || ndim > VKI_MAX_DIMS || !ne)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %u dimensions (1 to 4 allowed)",
                               what, ndim);
    int64_t full[VKI_MAX_DIMS] = {1, 1, 1, 1};
    uint64_t total = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        if (ne[i] < 1 || ne[i] > (1ll << 40) || __builtin_mul_overflow(total, (uint64_t)ne[i], &total))
            return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: dimension %u is %" PRId64,
                                   what, i, ne[i]);
        full[i] = ne[i];
    }
    if (total > (1ull << 40))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "%s: %" PRIu64 " elements is too many",
                               what, total);
    if (full[0] % d->block_elems)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "%s: a %s row of %" PRId64 " is not a whole number of %u-element blocks",
                               what, d->name, full[0], d->block_elems);
    if (!grow(g))
        return vki__graph_fail(g, VKI_ERROR_OUT_OF_HOST_MEMORY, "%s: the graph cannot grow", what);
    uint32_t id = g->count++;
    vki_node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->dtype = dtype;
    n->ndim = ndim;
    memcpy(n->ne, full, sizeof full);
    vki__contiguous_strides(dtype, full, n->nb);
    n->base = id;
    return (vki_tensor){id};
}

static void set_name(vki_node *n, const char *name)
{
    if (name) snprintf(n->name, sizeof n->name, "%s", name);
}

vki_tensor vki_input(vki_graph *g, vki_dtype dtype, uint32_t ndim, const int64_t *ne, const char *name)
{
    vki_tensor t = new_node(g, "input", VKI_NODE_INPUT, dtype, ndim, ne);
    if (t.id) set_name(&g->nodes[t.id], name);
    return t;
}

vki_tensor vki_weight(vki_graph *g, vki_dtype dtype, uint32_t ndim, const int64_t *ne, const char *name)
{
    vki_tensor t = new_node(g, "weight", VKI_NODE_WEIGHT, dtype, ndim, ne);
    if (t.id) set_name(&g->nodes[t.id], name);
    return t;
}

void vki_output(vki_graph *g, vki_tensor t, const char *name)
{
    if (!vki__check_srcs(g, "output", 1, &t)) return;
    vki_node *n = &g->nodes[t.id];
    if (n->kind == VKI_NODE_VIEW) {
        vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                        "output: %s is a view; make it contiguous with vki_copy first",
                        n->name[0] ? n->name : "the tensor");
        return;
    }
    if (vki__writes_src0(n)) {
        // Downloaded from the storage it wrote into, so it must be all of that storage.
        const vki_node *b = &g->nodes[n->base];
        if (n->view_offset != 0 || !vki__is_contiguous(n) || n->dtype != b->dtype ||
            vki__nelements(n) != vki__nelements(b)) {
            char a[96], c[96];
            vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                            "output: %s %s writes into part of %s %s; output a vki_copy of it",
                            n->op->name, vki__shape_str(n, a), b->name[0] ? b->name : "a tensor",
                            vki__shape_str(b, c));
            return;
        }
    }
    n->output = true;
    set_name(n, name);
}

vki_tensor vki__new_op(vki_graph *g, const vki_op_def *op, vki_dtype dtype, uint32_t ndim,
                       const int64_t *ne, uint32_t nsrc, const vki_tensor *srcs)
{
    vki_tensor t = new_node(g, op->name, VKI_NODE_OP, dtype, ndim, ne);
    if (!t.id) return t;
    vki_node *n = &g->nodes[t.id];
    n->op = op;
    for (uint32_t i = 0; i < nsrc && i < VKI_MAX_SRC; i++) n->src[i] = srcs[i].id;
    return t;
}

bool vki_tensor_get_info(const vki_graph *g, vki_tensor t, vki_tensor_info *out)
{
    const vki_node *n = vki__node(g, t);
    if (!n || !out) return false;
    out->dtype = n->dtype;
    out->ndim = n->ndim;
    memcpy(out->ne, n->ne, sizeof out->ne);
    memcpy(out->nb, n->nb, sizeof out->nb);
    out->contiguous = vki__is_contiguous(n);
    out->name = n->name;
    return true;
}

int64_t vki_tensor_nelements(const vki_graph *g, vki_tensor t)
{
    const vki_node *n = vki__node(g, t);
    return n ? vki__nelements(n) : 0;
}

/* ---- Views ----------------------------------------------------------------------------------- */

vki_tensor vki_view(vki_graph *g, vki_tensor t, uint32_t ndim, const int64_t *ne, const uint64_t *nb,
                    uint64_t offset)
{
    if (!vki__check_srcs(g, "view", 1, &t)) return (vki_tensor){0};
    const vki_node src = g->nodes[t.id]; // copied: new_node may move the array
    vki_tensor v = new_node(g, "view", VKI_NODE_VIEW, src.dtype, ndim, ne);
    if (!v.id) return v;
    vki_node *n = &g->nodes[v.id];
    if (nb)
        for (uint32_t i = 0; i < ndim; i++) n->nb[i] = nb[i];
    for (uint32_t i = ndim; i < VKI_MAX_DIMS; i++) n->nb[i] = n->nb[i - 1] * (uint64_t)n->ne[i - 1];
    n->src[0] = t.id;
    n->base = src.base;
    n->view_offset = src.view_offset + offset;
    // The view must lie inside the viewed tensor's bytes.
    uint64_t end;
    if (__builtin_add_overflow(offset, vki__span_bytes(n), &end) || end > vki__span_bytes(&src)) {
        char a[96], b[96];
        g->count--;
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "view: %s at byte %" PRIu64 " does not fit inside %s", vki__shape_str(n, a),
                               offset, vki__shape_str(&src, b));
    }
    return v;
}

vki_tensor vki_reshape(vki_graph *g, vki_tensor t, uint32_t ndim, const int64_t *ne)
{
    if (!vki__check_srcs(g, "reshape", 1, &t)) return (vki_tensor){0};
    const vki_node *src = &g->nodes[t.id];
    int64_t total = 1;
    for (uint32_t i = 0; i < ndim && ne; i++) total *= ne[i];
    char a[96];
    if (!vki__is_contiguous(src))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "reshape: %s is not contiguous; vki_copy it first", vki__shape_str(src, a));
    if (!ne || total != vki__nelements(src))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "reshape: %s has %" PRId64 " elements, the new shape %" PRId64,
                               vki__shape_str(src, a), vki__nelements(src), total);
    return vki_view(g, t, ndim, ne, NULL, 0);
}

vki_tensor vki_permute(vki_graph *g, vki_tensor t, const uint32_t axes[VKI_MAX_DIMS])
{
    if (!vki__check_srcs(g, "permute", 1, &t)) return (vki_tensor){0};
    const vki_node src = g->nodes[t.id];
    uint32_t seen = 0;
    for (int i = 0; i < VKI_MAX_DIMS; i++) {
        if (axes[i] >= VKI_MAX_DIMS || (seen & (1u << axes[i])))
            return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                                   "permute: axes {%u, %u, %u, %u} are not a permutation of 0..3",
                                   axes[0], axes[1], axes[2], axes[3]);
        seen |= 1u << axes[i];
    }
    if (vki_dtype_get(src.dtype)->quantized && axes[0] != 0)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "permute: a quantized tensor keeps its rows in dimension 0");
    int64_t ne[VKI_MAX_DIMS];
    uint64_t nb[VKI_MAX_DIMS];
    for (int i = 0; i < VKI_MAX_DIMS; i++) {
        ne[axes[i]] = src.ne[i];
        nb[axes[i]] = src.nb[i];
    }
    uint32_t ndim = src.ndim;
    for (int i = 0; i < VKI_MAX_DIMS; i++)
        if (axes[i] + 1 > ndim) ndim = axes[i] + 1;
    vki_tensor v = vki_view(g, t, VKI_MAX_DIMS, ne, nb, 0);
    if (v.id) g->nodes[v.id].ndim = ndim;
    return v;
}

vki_tensor vki_transpose(vki_graph *g, vki_tensor t)
{
    static const uint32_t swap01[VKI_MAX_DIMS] = {1, 0, 2, 3};
    return vki_permute(g, t, swap01);
}
