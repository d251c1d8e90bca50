/* The program object: one graph, compiled once for one shape, with its inputs and outputs
 * named, its weights and caller-owned ranges bound when it compiles, and replayed per run
 * (DESIGN "How a model runs": a decode step is uploads, a submit and a download). */
#include "model_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A leaf bound when the program compiles: a weight of a weights module (weight or group >= 0)
 * or a range the caller owns. */
typedef struct binding {
    vki_tensor tensor;
    vki_weights *weights;
    int32_t weight, group;
    vki_range range;
} binding;

#define MAX_NAMED 32 // inputs and outputs of one program

struct vki_program {
    vki_program_desc d;
    vki_allocator allocator;
    char name[64];
    vki_graph *g;
    vki_plan *plan;
    vki_exec *ex;
    binding *binds;
    uint32_t bind_count, bind_capacity;
    vki_tensor named[MAX_NAMED];
    char names[MAX_NAMED][32];
    uint32_t named_count;
    vki_status status; // the first failure while building (compile reports it)
    char error[512];
};

static void *palloc(const vki_program *p, size_t size) { return vki__model_alloc(&p->allocator, size); }
static void pfree(const vki_program *p, void *q) { vki__model_free(&p->allocator, q); }

static vki_status fail(vki_program *p, vki_status st, const char *fmt, ...)
    VKI_PRINTF(3, 4);
static vki_status fail(vki_program *p, vki_status st, const char *fmt, ...)
{
    if (p->status) return p->status; // the first failure stands
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    p->status = st;
    return st;
}

vki_status vki_program_create(const vki_program_desc *desc, vki_program **out)
{
    if (!desc || !out || !desc->profile) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_program tmp = {.allocator = desc->allocator ? *desc->allocator : (vki_allocator){0}};
    vki_program *p = palloc(&tmp, sizeof *p);
    if (!p) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    p->d = *desc;
    p->allocator = tmp.allocator;
    snprintf(p->name, sizeof p->name, "%s", desc->name ? desc->name : "program");
    vki_graph_desc gd = {.allocator = desc->allocator, .node_capacity = desc->node_capacity};
    vki_status st = vki_graph_create(&gd, &p->g);
    if (st) {
        vki_program_destroy(p);
        return st;
    }
    *out = p;
    return VKI_OK;
}

void vki_program_destroy(vki_program *p)
{
    if (!p) return;
    vki_exec_destroy(p->ex);
    vki_plan_destroy(p->plan);
    vki_graph_destroy(p->g);
    pfree(p, p->binds);
    pfree(p, p);
}

vki_graph *vki_program_graph(vki_program *p) { return p->g; }
const char *vki_program_error(const vki_program *p) { return p ? p->error : ""; }

static void name_tensor(vki_program *p, vki_tensor t, const char *name)
{
    if (!t.id) return;
    if (p->named_count == MAX_NAMED) {
        fail(p, VKI_ERROR_UNSUPPORTED, "%s: more than %d named inputs and outputs", p->name,
             MAX_NAMED);
        return;
    }
    p->named[p->named_count] = t;
    snprintf(p->names[p->named_count++], sizeof p->names[0], "%s", name);
}

vki_tensor vki_program_input(vki_program *p, vki_dtype dtype, uint32_t ndim, const int64_t *ne,
                             const char *name)
{
    vki_tensor t = vki_input(p->g, dtype, ndim, ne, name);
    name_tensor(p, t, name);
    return t;
}

void vki_program_output(vki_program *p, vki_tensor t, const char *name)
{
    vki_output(p->g, t, name);
    name_tensor(p, t, name);
}

vki_tensor vki_program_tensor(const vki_program *p, const char *name)
{
    for (uint32_t i = 0; p && i < p->named_count; i++)
        if (strcmp(p->names[i], name) == 0) return p->named[i];
    return (vki_tensor){0};
}

static vki_status add_binding(vki_program *p, binding b)
{
    if (p->bind_count == p->bind_capacity) {
        uint32_t cap = p->bind_capacity ? 2 * p->bind_capacity : 256;
        binding *grown = palloc(p, cap * sizeof *grown);
        if (!grown) return fail(p, VKI_ERROR_OUT_OF_HOST_MEMORY, "%s: out of host memory", p->name);
        if (p->binds) memcpy(grown, p->binds, p->bind_count * sizeof *grown);
        pfree(p, p->binds);
        p->binds = grown;
        p->bind_capacity = cap;
    }
    p->binds[p->bind_count++] = b;
    return VKI_OK;
}

vki_status vki_program_bind(vki_program *p, vki_tensor t, vki_range range)
{
    if (!t.id) return VKI_OK; // a failed builder call: compile reports it
    return add_binding(p, (binding){.tensor = t, .weight = -1, .group = -1, .range = range});
}

vki_status vki__program_bind_weight(vki_program *p, vki_tensor t, vki_weights *w, int32_t weight,
                                    int32_t group)
{
    return add_binding(p, (binding){.tensor = t, .weights = w, .weight = weight, .group = group});
}

vki_status vki_program_compile(vki_program *p, vki_weights *w)
{
    if (p->status) return p->status;
    if (w && vki_weights_status(w))
        return fail(p, vki_weights_status(w), "%s", vki_weights_error(w));
    vki_status st = vki_graph_compile(p->g, p->d.profile, NULL, &p->plan);
    if (st) return fail(p, st, "model graph (%s): %s", p->name, vki_graph_error(p->g));
    if (!p->d.device) return VKI_OK;
    if ((st = vki_exec_create(p->d.device, p->plan, NULL, &p->ex)))
        return fail(p, st, "%s: %s", p->name, vki_device_last_error(p->d.device));
    for (uint32_t i = 0; i < p->bind_count; i++) {
        const binding *b = &p->binds[i];
        vki_range r = b->range;
        if (b->weights && (st = vki__weights_range(b->weights, b->weight, b->group, &r)))
            return fail(p, st, "%s: a weight was not uploaded before compiling", p->name);
        if ((st = vki_exec_bind(p->ex, b->tensor, r)))
            return fail(p, st, "%s: %s", p->name, vki_device_last_error(p->d.device));
    }
    return VKI_OK;
}

uint64_t vki_program_activation_bytes(const vki_program *p)
{
    if (!p || !p->plan) return 0;
    vki_plan_stats ps;
    vki_plan_stats_get(p->plan, &ps);
    return ps.activation_bytes;
}

vki_status vki_program_upload(vki_program *p, vki_tensor input, const void *data, uint64_t bytes)
{
    return p->ex ? vki_exec_upload(p->ex, input, data, bytes) : VKI_ERROR_INVALID_ARGUMENT;
}

vki_status vki_program_run(vki_program *p)
{
    return p->ex ? vki_exec_run(p->ex) : VKI_ERROR_INVALID_ARGUMENT;
}

vki_status vki_program_download(vki_program *p, vki_tensor output, void *out, uint64_t bytes)
{
    return p->ex ? vki_exec_download(p->ex, output, out, bytes) : VKI_ERROR_INVALID_ARGUMENT;
}
