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
    double *profile_us; // VKI_PROFILE: per step, summed over runs (NULL when off)
    uint32_t profile_runs;
    bool profile_skipped_first;
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

/* ---- VKI_PROFILE=1: per-dispatch timestamps, summed per kernel, printed at destroy ---------- */

typedef struct profile_row {
    const char *kernel;
    double us;
    uint32_t count;
} profile_row;

static int by_time_desc(const void *a, const void *b)
{
    double x = ((const profile_row *)a)->us, y = ((const profile_row *)b)->us;
    return (x < y) - (x > y);
}

/* The dispatch times of all runs so far, by kernel variant and then the slowest steps, to stderr:
 * where a model's time goes, for speed work (README "Environment"). */
static void profile_report(vki_program *p)
{
    uint32_t n = vki_plan_step_count(p->plan);
    profile_row *rows = palloc(p, (n + 1) * sizeof *rows);
    profile_row *steps = palloc(p, (n + 1) * sizeof *steps);
    if (!rows || !steps || !p->profile_runs) goto done;
    uint32_t kinds = 0;
    double total = 0;
    for (uint32_t i = 0; i < n; i++) {
        vki_plan_step s;
        if (!vki_plan_step_get(p->plan, i, &s)) continue;
        double us = p->profile_us[i] / p->profile_runs;
        total += us;
        steps[i] = (profile_row){.kernel = s.node, .us = us, .count = i};
        uint32_t k = 0;
        while (k < kinds && strcmp(rows[k].kernel, s.kernel) != 0) k++;
        if (k == kinds) rows[kinds++] = (profile_row){.kernel = s.kernel};
        rows[k].us += us;
        rows[k].count++;
    }
    qsort(rows, kinds, sizeof *rows, by_time_desc);
    qsort(steps, n, sizeof *steps, by_time_desc);
    fprintf(stderr, "profile %s: %u runs after the first, %.1f ms per run in %u dispatches\n", p->name,
            p->profile_runs, total / 1e3, n);
    for (uint32_t k = 0; k < kinds; k++)
        fprintf(stderr, "  %-24s %6u dispatches %10.1f ms %5.1f%%\n", rows[k].kernel,
                rows[k].count, rows[k].us / 1e3, total > 0 ? 100 * rows[k].us / total : 0);
    for (uint32_t i = 0; i < n && i < 12; i++) {
        vki_plan_step s;
        vki_plan_step_get(p->plan, steps[i].count, &s);
        fprintf(stderr, "  step %5u %-22s %-40s %8.2f ms\n", steps[i].count, s.kernel, s.node,
                steps[i].us / 1e3);
    }
done:
    pfree(p, steps);
    pfree(p, rows);
}

/* Adds the last run's dispatch times, but for the first run's: a JIT device (lavapipe)
 * compiles kernels on their first dispatch, inside the timestamps. */
static void profile_add(vki_program *p)
{
    if (!p->profile_skipped_first) {
        p->profile_skipped_first = true;
        return;
    }
    uint32_t n = vki_plan_step_count(p->plan), got = 0;
    double *us = palloc(p, (n + 1) * sizeof *us);
    if (us && vki_exec_timings(p->ex, us, n, &got) == VKI_OK && got == n) {
        for (uint32_t i = 0; i < n; i++) p->profile_us[i] += us[i];
        p->profile_runs++;
    }
    pfree(p, us);
}

void vki_program_destroy(vki_program *p)
{
    if (!p) return;
    if (p->profile_us) profile_report(p);
    pfree(p, p->profile_us);
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
    const char *prof = getenv("VKI_PROFILE");
    vki_exec_desc ed = {.timestamps = prof && strcmp(prof, "1") == 0 &&
                                      vki_device_profile(p->d.device)->timestamps};
    if (ed.timestamps) {
        uint32_t n = vki_plan_step_count(p->plan);
        p->profile_us = palloc(p, (n + 1) * sizeof *p->profile_us);
        if (p->profile_us) memset(p->profile_us, 0, (n + 1) * sizeof *p->profile_us);
        ed.timestamps = p->profile_us != NULL;
    }
    if ((st = vki_exec_create(p->d.device, p->plan, &ed, &p->ex)))
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

void vki_program_release(vki_program *p)
{
    if (p) vki_exec_release(p->ex);
}

uint64_t vki_program_activation_bytes(const vki_program *p)
{
    vki_plan_stats ps;
    vki_program_plan_stats(p, &ps);
    return ps.activation_bytes;
}

void vki_program_plan_stats(const vki_program *p, vki_plan_stats *out)
{
    vki_plan_stats_get(p ? p->plan : NULL, out);
}

vki_status vki_program_upload(vki_program *p, vki_tensor input, const void *data, uint64_t bytes)
{
    return p->ex ? vki_exec_upload(p->ex, input, data, bytes) : VKI_ERROR_INVALID_ARGUMENT;
}

vki_status vki_program_run(vki_program *p)
{
    if (!p->ex) return VKI_ERROR_INVALID_ARGUMENT;
    VKI_TRY(vki_exec_run(p->ex));
    if (p->profile_us) profile_add(p);
    return VKI_OK;
}

vki_status vki_program_download(vki_program *p, vki_tensor output, void *out, uint64_t bytes)
{
    return p->ex ? vki_exec_download(p->ex, output, out, bytes) : VKI_ERROR_INVALID_ARGUMENT;
}
