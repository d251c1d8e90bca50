/* Op conformance cases: one table, run by the tests (small shapes, every profile) and by
 * `vkinfer bench ops` (model shapes, timed). A case is built, fed seeded random data, run on the
 * device with guard bytes around every output, and compared with the CPU reference by
 * normalised mean squared error. */
#include "cases/cases_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Each family file in graph/cases/ contributes a table. */
#define CASE_FAMILIES(X) X(elementwise) X(fused) X(norm) X(unary) X(attention) X(matmul) X(kv_cache) X(prelu) X(conv2d) X(model_shapes) X(moe) X(rope)

#define DECLARE(family)                                                                        \
    extern const vki_op_case vki_cases_##family[];                                             \
    extern const uint32_t vki_cases_##family##_count;
CASE_FAMILIES(DECLARE)
#undef DECLARE

typedef struct family {
    const vki_op_case *cases;
    const uint32_t *count;
} family;

#define ROW(family) {vki_cases_##family, &vki_cases_##family##_count},
static const family families[] = {CASE_FAMILIES(ROW)};
#undef ROW

uint32_t vki_op_case_count(void)
{
    uint32_t n = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) n += *families[f].count;
    return n;
}

const vki_op_case *vki_op_case_at(uint32_t index)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        if (index < *families[f].count) return &families[f].cases[index];
        index -= *families[f].count;
    }
    return NULL;
}

/* xorshift64*: reproducible across platforms. */
static uint64_t next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static float uniform(uint64_t *s) { return (float)((next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static uint64_t tensor_bytes(const vki_node *n)
{
    return vki_dtype_bytes(n->dtype, n->ne[0]) * (uint64_t)(n->ne[1] * n->ne[2] * n->ne[3]);
}

/* A case input's fixed values (vki__case_ints), kept in the input node's parameter bytes,
 * which leaves do not otherwise use. */
typedef struct case_ints {
    uint32_t count;
    int32_t values[VKI_CASE_MAX_INTS];
} case_ints;
static_assert(sizeof(case_ints) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_tensor vki__case_ints(vki_graph *g, const int32_t *values, uint32_t count, const char *name)
{
    if (count == 0 || count > VKI_CASE_MAX_INTS)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "case ints: %u values (1 to %d)", count,
                               VKI_CASE_MAX_INTS);
    vki_tensor t = vki_input(g, VKI_DTYPE_I32, 1, (int64_t[]){count}, name);
    vki_node *n = vki__node_mut(g, t);
    if (n) {
        case_ints v = {.count = count};
        memcpy(v.values, values, count * sizeof *values);
        vki__params_set(n, &v, sizeof v);
    }
    return t;
}

/* Random contents of an input or weight in its dtype (fixed ones for vki__case_ints). */
static void fill(const vki_node *n, int32_t index_limit, uint64_t *rng, uint8_t *bytes)
{
    case_ints fixed;
    vki__params_get(n, &fixed, sizeof fixed);
    if (n->kind == VKI_NODE_INPUT && n->dtype == VKI_DTYPE_I32 && fixed.count) {
        memcpy(bytes, fixed.values, fixed.count * sizeof *fixed.values);
        return;
    }
    const vki_dtype_info *d = vki_dtype_get(n->dtype);
    int64_t count = vki__nelements(n);
    if (d->quantized) {
        float block[256];
        for (int64_t b = 0; b < count / d->block_elems; b++) {
            for (uint32_t i = 0; i < d->block_elems; i++) block[i] = uniform(rng);
            vki_quant_block(n->dtype, block, bytes + b * d->block_bytes);
        }
        return;
    }
    for (int64_t i = 0; i < count; i++) {
        float v = uniform(rng);
        switch (n->dtype) {
        case VKI_DTYPE_F32: memcpy(bytes + 4 * i, &v, 4); break;
        case VKI_DTYPE_F16: {
            uint16_t h = vki_f32_to_f16(v);
            memcpy(bytes + 2 * i, &h, 2);
            break;
        }
        case VKI_DTYPE_BF16: {
            uint16_t h = vki_f32_to_bf16(v);
            memcpy(bytes + 2 * i, &h, 2);
            break;
        }
        case VKI_DTYPE_I32: {
            int32_t x = (int32_t)(next(rng) % (uint64_t)(index_limit > 0 ? index_limit : 1));
            memcpy(bytes + 4 * i, &x, 4);
            break;
        }
        default: break;
        }
    }
}

static double compare(const vki_node *n, const uint8_t *got, const uint8_t *want)
{
    vki_ref_tensor a = {.dtype = n->dtype, .data = (uint8_t *)got}, b = a;
    b.data = (uint8_t *)want;
    memcpy(a.ne, n->ne, sizeof a.ne);
    vki__contiguous_strides(n->dtype, n->ne, a.nb);
    memcpy(b.ne, a.ne, sizeof a.ne);
    memcpy(b.nb, a.nb, sizeof a.nb);
    double err = 0, ref = 0;
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < n->ne[0]; i0++) {
                    double x = vki_ref_get(&a, i0, i1, i2, i3), y = vki_ref_get(&b, i0, i1, i2, i3);
                    if (isnan(x) != isnan(y)) return INFINITY;
                    if (isnan(x)) continue;
                    err += (x - y) * (x - y);
                    ref += y * y;
                }
    return ref > 0 ? err / ref : err;
}

#define GUARD 256
#define GUARD_BYTE 0xA5

typedef struct case_run {
    vki_graph *g;
    vki_plan *plan;
    vki_exec *ex;
    vki_arena *weights, *outputs;
    uint8_t **host;      // by node id: inputs/weights data, outputs device result
    uint8_t **ref;       // by node id: reference results of outputs
    vki_range *out_range; // by node id: output range including guards
    bool *alias_base;    // by node id: an output set_rows result writes into it
} case_run;

static void run_free(case_run *r)
{
    if (r->g) {
        for (uint32_t i = 0; i < r->g->count; i++) {
            if (r->host) vki__gfree(r->g, r->host[i]);
            if (r->ref) vki__gfree(r->g, r->ref[i]);
        }
        vki__gfree(r->g, r->host);
        vki__gfree(r->g, r->ref);
        vki__gfree(r->g, r->out_range);
        vki__gfree(r->g, r->alias_base);
    }
    vki_exec_destroy(r->ex);
    vki_arena_destroy(r->outputs);
    vki_arena_destroy(r->weights);
    vki_plan_destroy(r->plan);
    vki_graph_destroy(r->g);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

vki_status vki_op_case_run(vki_device *dev, const vki_op_case *c, const vki_case_desc *desc,
                           vki_case_result *out, char *err, size_t err_size)
{
    static const vki_case_desc zero_desc;
    if (!dev || !c || !out || !err || err_size == 0) return VKI_ERROR_INVALID_ARGUMENT;
    if (!desc) desc = &zero_desc;
    memset(out, 0, sizeof *out);
    err[0] = 0;
    case_run r = {0};
    vki_status st = vki_graph_create(NULL, &r.g);
    if (st) return st;
    c->build(r.g, c->arg);
    vki_graph *g = r.g;
    uint64_t rng = desc->seed ? desc->seed : 1;
    uint8_t guard[GUARD];
    memset(guard, GUARD_BYTE, sizeof guard);

    if ((st = vki_graph_compile(g, desc->profile ? desc->profile : vki_device_profile(dev),
                                desc->compile, &r.plan))) {
        snprintf(err, err_size, "%s: compile: %s", c->name, vki_graph_error(g));
        goto done;
    }
    vki_exec_desc ed = {.timestamps = desc->reps > 0 && vki_device_profile(dev)->timestamps};
    vki_arena_desc wd = {.kind = VKI_ARENA_WEIGHTS, .name = "case weights"};
    vki_arena_desc od = {.kind = VKI_ARENA_ACTIVATIONS, .name = "case outputs"};
    r.host = vki__galloc(g, g->count * sizeof *r.host);
    r.ref = vki__galloc(g, g->count * sizeof *r.ref);
    r.out_range = vki__galloc(g, g->count * sizeof *r.out_range);
    r.alias_base = vki__galloc(g, g->count * sizeof *r.alias_base);
    if (!r.host || !r.ref || !r.out_range || !r.alias_base) {
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if ((st = vki_exec_create(dev, r.plan, &ed, &r.ex)) || (st = vki_arena_create(dev, &wd, &r.weights)) ||
        (st = vki_arena_create(dev, &od, &r.outputs)))
        goto device_error;

    // An output that is a set_rows result is the storage it wrote into: that storage (a weight,
    // an input or an intermediate) sits between the guard bands instead.
    for (uint32_t id = 1; id < g->count; id++)
        if (g->nodes[id].output && vki__writes_src0(&g->nodes[id])) r.alias_base[g->nodes[id].base] = true;
    for (uint32_t id = 1; id < g->count; id++) {
        const vki_node *n = &g->nodes[id];
        bool leaf = n->kind == VKI_NODE_INPUT || n->kind == VKI_NODE_WEIGHT;
        bool alias_out = n->output && vki__writes_src0(n);
        bool guarded = (n->output && !alias_out) || r.alias_base[id];
        if (!leaf && !n->output && !guarded) continue;
        uint64_t bytes = tensor_bytes(n);
        r.host[id] = vki__galloc(g, bytes + 16);
        if (n->output) r.ref[id] = vki__galloc(g, bytes + 16);
        if (!r.host[id] || (n->output && !r.ref[id])) {
            st = VKI_ERROR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        vki_tensor t = {id};
        if (leaf) fill(n, c->index_limit, &rng, r.host[id]);
        if (alias_out) {
            r.out_range[id] = r.out_range[n->base];
            continue;
        }
        out->bytes += bytes;
        if (leaf && !guarded) {
            if (n->kind == VKI_NODE_INPUT) {
                if ((st = vki_exec_upload(r.ex, t, r.host[id], bytes))) goto device_error;
            } else {
                // Exactly the tensor's bytes: the executor binds the arena's 16-byte padding
                // beyond them (vki_range_capacity), as it would for a model's weights.
                vki_range w;
                if ((st = vki_arena_alloc(r.weights, bytes, 0, &w)) ||
                    (st = vki_device_upload(dev, w, 0, r.host[id], bytes)) || (st = vki_exec_bind(r.ex, t, w)))
                    goto device_error;
            }
            continue;
        }
        // Outputs sit between guard bands; the kernels must leave the bands alone.
        uint64_t inner = vki_align_up(bytes, 16);
        vki_range whole;
        if ((st = vki_arena_alloc(r.outputs, inner + 2 * GUARD, 256, &whole))) goto device_error;
        r.out_range[id] = whole;
        for (uint64_t at = 0; at < whole.size; at += GUARD) {
            uint64_t n_bytes = whole.size - at < GUARD ? whole.size - at : GUARD;
            if ((st = vki_device_upload(dev, whole, at, guard, n_bytes))) goto device_error;
        }
        if (leaf && (st = vki_device_upload(dev, whole, GUARD, r.host[id], bytes))) goto device_error;
        if ((st = vki_exec_bind(r.ex, t, vki_range_sub(whole, GUARD, bytes)))) goto device_error;
    }

    if ((st = vki_exec_run(r.ex))) goto device_error;
    vki_plan_stats stats;
    vki_plan_stats_get(r.plan, &stats);
    out->dispatches = stats.dispatches;
    out->fp16_dispatches = stats.fp16_dispatches;
    out->int8_dispatches = stats.int8_dispatches;
    out->guards_intact = true;
    for (uint32_t id = 1; id < g->count; id++) {
        if (!g->nodes[id].output) continue;
        vki_range whole = r.out_range[id];
        uint8_t *all = vki__galloc(g, whole.size);
        if (!all) {
            st = VKI_ERROR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        if ((st = vki_device_download(dev, whole, 0, all, whole.size))) {
            vki__gfree(g, all);
            goto device_error;
        }
        uint64_t bytes = tensor_bytes(&g->nodes[id]);
        memcpy(r.host[id], all + GUARD, bytes);
        for (uint64_t i = 0; i < whole.size; i++)
            if ((i < GUARD || i >= GUARD + bytes) && all[i] != GUARD_BYTE) out->guards_intact = false;
        vki__gfree(g, all);
    }

    if (desc->reps) {
        double *runs = vki__galloc(g, desc->reps * sizeof *runs);
        double *steps = vki__galloc(g, (stats.dispatches + 1) * sizeof *steps);
        if (!runs || !steps) {
            vki__gfree(g, runs);
            vki__gfree(g, steps);
            st = VKI_ERROR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        for (uint32_t k = 0; k < desc->reps && !st; k++) {
            uint32_t n = 0;
            st = vki_exec_run(r.ex);
            if (!st && ed.timestamps) st = vki_exec_timings(r.ex, steps, stats.dispatches, &n);
            runs[k] = 0;
            for (uint32_t i = 0; i < n; i++) runs[k] += steps[i];
        }
        qsort(runs, desc->reps, sizeof *runs, cmp_double);
        out->us = runs[desc->reps / 2];
        vki__gfree(g, runs);
        vki__gfree(g, steps);
        if (st) goto device_error;
    }

    if (!desc->skip_reference) {
        if ((st = vki_reference_eval(g, (const void *const *)r.host, (void *const *)r.ref, g->count))) {
            snprintf(err, err_size, "%s: reference: %s", c->name, vki_graph_error(g));
            goto done;
        }
        for (uint32_t id = 1; id < g->count; id++) {
            if (!g->nodes[id].output) continue;
            double e = compare(&g->nodes[id], r.host[id], r.ref[id]);
            if (e > out->nmse || isnan(e)) out->nmse = e;
        }
    }
    goto done;

device_error:
    snprintf(err, err_size, "%s: %s: %s", c->name, vki_status_string(st), vki_device_last_error(dev));
done:
    run_free(&r);
    return st;
}
