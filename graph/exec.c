/* The executor: realises a plan on a device. It creates each distinct kernel once, takes the
 * activation arena, gives inputs and outputs storage of their own (host-visible when small, so
 * that a per-step upload or read-back is a memcpy), records the plan into a stream on the first
 * run and replays it afterwards. */
#include "graph_internal.h"

#include <stdio.h>

#define HOST_IO_LIMIT (1u << 20) // inputs/outputs up to 1 MiB live in host-visible memory

struct vki_exec {
    vki_device *dev;
    vki_plan plan;            // copy of the plan's arrays (owned)
    vki_arena *activations;
    vki_arena *io_device;     // large inputs and outputs
    vki_arena *io_host;       // small inputs and outputs
    vki_range arena_range;
    vki_range *bound;         // by node id: storage of external tensors
    bool *owned;              // by node id: bound to the executor's own storage, not the caller's
    uint32_t *step_kernel;    // by step: index into kernels
    vki_kernel **kernels;      // distinct kernels of the steps
    uint32_t kernel_count;
    vki_stream *stream;
    bool recorded;
};

static void *xalloc(const vki_exec *ex, size_t size)
{
    vki_graph tmp = {.allocator = ex->plan.allocator};
    return vki__galloc(&tmp, size);
}

static void xfree(const vki_exec *ex, void *p)
{
    vki_graph tmp = {.allocator = ex->plan.allocator};
    vki__gfree(&tmp, p);
}

/* The runtime shares kernels of equal descriptions (vki_kernel_create): a step whose kernel
 * an earlier step already holds gets that one's index, and the extra reference goes back. */
static vki_status find_or_create_kernel(vki_exec *ex, const vki_step *s, uint32_t *out_index)
{
    vki_kernel_desc kd = {
        .name = s->kernel,
        .binding_count = s->binding_count,
        .push_size = s->push_size,
        .specs = s->specs,
        .spec_count = s->spec_count,
        .subgroup_size = s->subgroup_size,
    };
    vki_kernel *k;
    VKI_TRY(vki_kernel_create(ex->dev, &kd, &k));
    for (uint32_t i = 0; i < ex->kernel_count; i++)
        if (ex->kernels[i] == k) {
            vki_kernel_destroy(k);
            *out_index = i;
            return VKI_OK;
        }
    ex->kernels[ex->kernel_count] = k;
    *out_index = ex->kernel_count++;
    return VKI_OK;
}

/* The activation arena and storage for the inputs and outputs the caller has not bound. */
static vki_status take_memory(vki_exec *ex)
{
    const vki_plan *plan = &ex->plan;
    /* Every arena's block is sized to what it will hold: the default block (256 MiB) would hold
     * that much device memory for a program of a few MiB (a text encoder, an SD pipeline's
     * three programs: over a gigabyte of a small card). */
    uint32_t storage_align = vki_device_profile(ex->dev)->storage_align;
    uint64_t align = storage_align > 256 ? storage_align : 256;
    uint64_t io_bytes[2] = {0, 0}; // device, host
    for (uint32_t id = 1; id < plan->tensor_count; id++) {
        if (!ex->owned[id]) continue;
        const vki_plan_tensor *t = &plan->tensors[id];
        io_bytes[t->bytes <= HOST_IO_LIMIT] += vki_align_up(vki_align_up(t->bytes, 16), align);
    }
    vki_arena_desc ad = {.kind = VKI_ARENA_ACTIVATIONS, .name = "activations",
                         .block_size = vki_align_up(plan->stats.activation_bytes, 16)};
    vki_arena_desc dd = {.kind = VKI_ARENA_ACTIVATIONS, .name = "inputs and outputs", .block_size = io_bytes[0]};
    vki_arena_desc hd = {.kind = VKI_ARENA_HOST, .name = "host inputs and outputs", .block_size = io_bytes[1]};
    vki_status st;
    if ((st = vki_arena_create(ex->dev, &ad, &ex->activations))) goto fail;
    if (plan->stats.activation_bytes &&
        (st = vki_arena_alloc(ex->activations, plan->stats.activation_bytes, 256, &ex->arena_range)))
        goto fail;
    if ((st = vki_arena_create(ex->dev, &dd, &ex->io_device))) goto fail;
    if ((st = vki_arena_create(ex->dev, &hd, &ex->io_host))) goto fail;
    for (uint32_t id = 1; id < plan->tensor_count; id++) {
        if (!ex->owned[id]) continue;
        const vki_plan_tensor *t = &plan->tensors[id];
        vki_arena *a = t->bytes <= HOST_IO_LIMIT ? ex->io_host : ex->io_device;
        if ((st = vki_arena_alloc(a, vki_align_up(t->bytes, 16), 256, &ex->bound[id]))) goto fail;
    }
    ex->recorded = false;
    return VKI_OK;
fail:
    vki_exec_release(ex);
    return st;
}

vki_status vki_exec_create(vki_device *dev, const vki_plan *plan, const vki_exec_desc *desc,
                           vki_exec **out)
{
    if (!dev || !plan || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_graph tmp = {.allocator = plan->allocator};
    vki_exec *ex = vki__galloc(&tmp, sizeof *ex);
    if (!ex) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    ex->dev = dev;
    ex->plan = *plan;
    ex->plan.steps = xalloc(ex, (plan->step_count + 1) * sizeof *plan->steps);
    ex->plan.tensors = xalloc(ex, plan->tensor_count * sizeof *plan->tensors);
    ex->bound = xalloc(ex, plan->tensor_count * sizeof *ex->bound);
    ex->owned = xalloc(ex, plan->tensor_count * sizeof *ex->owned);
    ex->step_kernel = xalloc(ex, (plan->step_count + 1) * sizeof *ex->step_kernel);
    ex->kernels = xalloc(ex, (plan->step_count + 1) * sizeof *ex->kernels);
    vki_status st = VKI_OK;
    if (!ex->plan.steps || !ex->plan.tensors || !ex->bound || !ex->owned || !ex->step_kernel ||
        !ex->kernels) {
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    memcpy(ex->plan.steps, plan->steps, plan->step_count * sizeof *plan->steps);
    memcpy(ex->plan.tensors, plan->tensors, plan->tensor_count * sizeof *plan->tensors);
    if (plan->storage_align % (vki_device_profile(dev)->storage_align ? vki_device_profile(dev)->storage_align : 1)) {
        st = vki_device_report(dev, VKI_ERROR_INVALID_ARGUMENT,
                               "exec: the plan was compiled for %u-byte storage alignment, the "
                               "device needs %u: compile with this device's profile",
                               plan->storage_align, vki_device_profile(dev)->storage_align);
        goto fail;
    }

    for (uint32_t i = 0; i < plan->step_count; i++)
        if ((st = find_or_create_kernel(ex, &plan->steps[i], &ex->step_kernel[i]))) goto fail;

    for (uint32_t id = 1; id < plan->tensor_count; id++) {
        const vki_plan_tensor *t = &plan->tensors[id];
        ex->owned[id] = t->storage == VKI_STORE_EXTERNAL && t->kind != VKI_NODE_WEIGHT && t->base == id;
    }
    if ((st = take_memory(ex))) goto fail;
    vki_stream_desc sd = {.name = "plan", .timestamps = desc && desc->timestamps,
                          .max_timestamps = plan->step_count + 1};
    if ((st = vki_stream_create(dev, &sd, &ex->stream))) goto fail;
    *out = ex;
    return VKI_OK;
fail:
    vki_exec_destroy(ex);
    return st;
}

void vki_exec_release(vki_exec *ex)
{
    if (!ex) return;
    vki_arena_destroy(ex->io_host);
    vki_arena_destroy(ex->io_device);
    vki_arena_destroy(ex->activations);
    ex->io_host = ex->io_device = ex->activations = NULL;
    ex->arena_range = (vki_range){0};
    for (uint32_t id = 1; ex->owned && id < ex->plan.tensor_count; id++)
        if (ex->owned[id]) ex->bound[id] = (vki_range){0};
    ex->recorded = false; // the recorded commands name the freed buffers
}

void vki_exec_destroy(vki_exec *ex)
{
    if (!ex) return;
    vki_stream_destroy(ex->stream);
    for (uint32_t i = 0; i < ex->kernel_count; i++) vki_kernel_destroy(ex->kernels[i]);
    vki_exec_release(ex);
    xfree(ex, ex->owned);
    xfree(ex, ex->kernels);
    xfree(ex, ex->step_kernel);
    xfree(ex, ex->bound);
    xfree(ex, ex->plan.tensors);
    xfree(ex, ex->plan.steps);
    vki_graph tmp = {.allocator = ex->plan.allocator};
    vki__gfree(&tmp, ex);
}

/* The tensor whose storage `t` is: itself, or for an output set_rows result the tensor it
 * wrote into (its id replaces t's). */
static vki_status external(vki_exec *ex, vki_tensor *t, const char *what, vki_plan_tensor **out)
{
    if (t->id == 0 || t->id >= ex->plan.tensor_count || ex->plan.tensors[t->id].storage != VKI_STORE_EXTERNAL)
        return vki_device_report(ex->dev, VKI_ERROR_INVALID_ARGUMENT,
                                 "exec %s: tensor %u is not an input, weight or output the plan uses",
                                 what, t->id);
    t->id = ex->plan.tensors[t->id].base;
    *out = &ex->plan.tensors[t->id];
    return VKI_OK;
}

vki_status vki_exec_bind(vki_exec *ex, vki_tensor t, vki_range r)
{
    if (!ex) return VKI_ERROR_INVALID_ARGUMENT;
    vki_plan_tensor *pt = NULL;
    VKI_TRY(external(ex, &t, "bind", &pt));
    uint32_t align = vki_device_profile(ex->dev)->storage_align;
    if (!r.buffer || r.size < pt->bytes)
        return vki_device_report(ex->dev, VKI_ERROR_INVALID_ARGUMENT,
                                 "exec bind %s: the range holds %llu bytes, the tensor needs %llu",
                                 pt->name, (unsigned long long)r.size, (unsigned long long)pt->bytes);
    if (align && r.offset % align)
        return vki_device_report(ex->dev, VKI_ERROR_INVALID_ARGUMENT,
                                 "exec bind %s: offset %llu is not a multiple of %u", pt->name,
                                 (unsigned long long)r.offset, align);
    ex->bound[t.id] = r;
    ex->owned[t.id] = false;
    ex->recorded = false;
    return VKI_OK;
}

/* The bound storage of an external tensor for a transfer of `bytes`, after the checks that
 * upload and download share. */
static vki_status transfer_range(vki_exec *ex, vki_tensor t, const char *what, uint64_t bytes,
                                 vki_range *out)
{
    if (!ex) return VKI_ERROR_INVALID_ARGUMENT;
    vki_plan_tensor *pt = NULL;
    VKI_TRY(external(ex, &t, what, &pt));
    if (!ex->bound[t.id].buffer || bytes > pt->bytes)
        return vki_device_report(ex->dev, VKI_ERROR_INVALID_ARGUMENT,
                                 "exec %s %s: %llu bytes for a %llu-byte tensor", what, pt->name,
                                 (unsigned long long)bytes, (unsigned long long)pt->bytes);
    *out = ex->bound[t.id];
    return VKI_OK;
}

vki_status vki_exec_upload(vki_exec *ex, vki_tensor t, const void *data, uint64_t bytes)
{
    if (ex && !ex->activations) VKI_TRY(take_memory(ex));
    vki_range r;
    VKI_TRY(transfer_range(ex, t, "upload", bytes, &r));
    return vki_device_upload(ex->dev, r, 0, data, bytes);
}

vki_status vki_exec_download(vki_exec *ex, vki_tensor t, void *data, uint64_t bytes)
{
    if (ex && !ex->activations)
        return vki_device_report(ex->dev, VKI_ERROR_INVALID_ARGUMENT,
                                 "exec download: the executor's memory was released since its "
                                 "last run (vki_exec_release): there is no result to read");
    vki_range r;
    VKI_TRY(transfer_range(ex, t, "download", bytes, &r));
    return vki_device_download(ex->dev, r, 0, data, bytes);
}

static vki_status record(vki_exec *ex)
{
    for (uint32_t id = 1; id < ex->plan.tensor_count; id++)
        if (ex->plan.tensors[id].storage == VKI_STORE_EXTERNAL && ex->plan.tensors[id].base == id &&
            !ex->bound[id].buffer)
            return vki_device_report(ex->dev, VKI_ERROR_INVALID_ARGUMENT,
                                     "exec run: weight %s (tensor %u) is not bound (vki_exec_bind)",
                                     ex->plan.tensors[id].name, id);
    VKI_TRY(vki_stream_begin(ex->stream));
    for (uint32_t i = 0; i < ex->plan.step_count; i++) {
        const vki_step *s = &ex->plan.steps[i];
        vki_range ranges[VKI_MAX_BINDINGS];
        for (uint32_t b = 0; b < s->binding_count; b++) {
            const vki_plan_binding *pb = &s->bindings[b];
            vki_range base = pb->base ? ex->bound[pb->base] : ex->arena_range;
            // The plan pads bindings to 16 bytes so kernels may read a tensor's tail as whole
            // words; the padding may run past the caller's range but never past its buffer.
            uint64_t size = pb->size, room = vki_range_capacity(base);
            if (pb->offset + size > room) size = room > pb->offset ? room - pb->offset : 0;
            ranges[b] = vki_range_sub(base, pb->offset, size);
        }
        // Before the first dispatch too: a barrier's first scope covers every command submitted
        // earlier, so what the previous run wrote (a KV cache set_rows filled, which this run
        // reads) and device copies into inputs are visible; a semaphore wait on the host makes
        // them available to the host only.
        if (s->barrier_before || i == 0) VKI_TRY(vki_stream_barrier(ex->stream));
        vki_dispatch d = {
            .kernel = ex->kernels[ex->step_kernel[i]],
            .bindings = ranges,
            .binding_count = s->binding_count,
            .push = s->push,
            .push_size = s->push_size,
            .groups = {s->groups[0], s->groups[1], s->groups[2]},
        };
        VKI_TRY(vki_stream_dispatch(ex->stream, &d));
    }
    VKI_TRY(vki_stream_end(ex->stream));
    ex->recorded = true;
    return VKI_OK;
}

vki_status vki_exec_run(vki_exec *ex)
{
    if (!ex) return VKI_ERROR_INVALID_ARGUMENT;
    if (!ex->activations) VKI_TRY(take_memory(ex));
    if (!ex->recorded) VKI_TRY(record(ex));
    uint64_t ticket = 0;
    VKI_TRY(vki_stream_submit(ex->stream, &ticket));
    return vki_device_wait(ex->dev, ticket, UINT64_MAX);
}

vki_status vki_exec_timings(vki_exec *ex, double *out_us, uint32_t capacity, uint32_t *out_count)
{
    if (!ex) return VKI_ERROR_INVALID_ARGUMENT;
    return vki_stream_timings(ex->stream, out_us, capacity, out_count);
}
