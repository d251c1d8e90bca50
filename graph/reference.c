/* The CPU reference: evaluates a graph node by node in plain C, with the same byte layouts as
 * the device (views are strides over the base's bytes), so that every kernel can be checked
 * against it. Speed does not matter here; obviousness does. */
#include "graph_internal.h"

#include <inttypes.h>

static uint8_t *element(const vki_ref_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    return t->data + (uint64_t)i0 * t->nb[0] + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] +
           (uint64_t)i3 * t->nb[3];
}

float vki_ref_get(const vki_ref_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    const vki_dtype_info *d = vki_dtype_get(t->dtype);
    if (d->quantized) {
        float block[256];
        int64_t blk = i0 / d->block_elems;
        vki_dequant_block(t->dtype, element(t, blk, i1, i2, i3), block);
        return block[i0 % d->block_elems];
    }
    const uint8_t *p = element(t, i0, i1, i2, i3);
    switch (t->dtype) {
    case VKI_DTYPE_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case VKI_DTYPE_F16: return vki_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    case VKI_DTYPE_BF16: return vki_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
    case VKI_DTYPE_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return (float)v;
    }
    default: return 0.0f;
    }
}

void vki_ref_set(const vki_ref_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v)
{
    uint8_t *p = element(t, i0, i1, i2, i3);
    switch (t->dtype) {
    case VKI_DTYPE_F32: memcpy(p, &v, 4); break;
    case VKI_DTYPE_F16: {
        uint16_t h = vki_f32_to_f16(v);
        memcpy(p, &h, 2);
        break;
    }
    case VKI_DTYPE_BF16: {
        uint16_t h = vki_f32_to_bf16(v);
        memcpy(p, &h, 2);
        break;
    }
    case VKI_DTYPE_I32: {
        int32_t i = (int32_t)v;
        memcpy(p, &i, 4);
        break;
    }
    default: break;
    }
}

static uint64_t storage_bytes(const vki_node *n)
{
    return vki_dtype_bytes(n->dtype, n->ne[0]) * (uint64_t)(n->ne[1] * n->ne[2] * n->ne[3]);
}

static vki_ref_tensor view_of(const vki_node *n, uint8_t *const *storage)
{
    vki_ref_tensor t = {.dtype = n->dtype, .data = storage[n->base] + n->view_offset};
    memcpy(t.ne, n->ne, sizeof t.ne);
    memcpy(t.nb, n->nb, sizeof t.nb);
    return t;
}

vki_status vki_reference_eval(vki_graph *g, const void *const *data, void *const *out, uint32_t count)
{
    if (!g || !data || !out || count < g->count) return VKI_ERROR_INVALID_ARGUMENT;
    if (g->status != VKI_OK) return g->status;
    uint8_t **storage = vki__galloc(g, g->count * sizeof *storage);
    if (!storage) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    vki_status st = VKI_OK;
    for (uint32_t id = 1; id < g->count && st == VKI_OK; id++) {
        const vki_node *n = &g->nodes[id];
        if (n->kind == VKI_NODE_VIEW) continue;
        uint64_t bytes = storage_bytes(n);
        // A set_rows result has no bytes of its own: it writes into its base's (view_of).
        if (!vki__writes_src0(n) && !(storage[id] = vki__galloc(g, bytes ? bytes : 1))) {
            st = VKI_ERROR_OUT_OF_HOST_MEMORY;
            break;
        }
        if (n->kind == VKI_NODE_INPUT || n->kind == VKI_NODE_WEIGHT) {
            if (!data[id]) {
                st = (vki_status)vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                                                 "reference: no data for %s %s (tensor %u)",
                                                 n->kind == VKI_NODE_INPUT ? "input" : "weight",
                                                 n->name, id).id;
                st = VKI_ERROR_INVALID_ARGUMENT;
                break;
            }
            memcpy(storage[id], data[id], bytes);
            continue;
        }
        vki_ref_tensor src[VKI_MAX_SRC] = {{0}};
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (n->src[i]) src[i] = view_of(&g->nodes[n->src[i]], storage);
        vki_ref_tensor dst = view_of(n, storage);
        n->op->reference(n, &dst, src);
    }
    // Outputs as a download after the run sees them: a later set_rows may have written into
    // an output's bytes, and a set_rows result that is an output is all of its base's bytes.
    for (uint32_t id = 1; id < g->count && st == VKI_OK; id++) {
        const vki_node *n = &g->nodes[id];
        if (n->output && out[id])
            memcpy(out[id], storage[n->base] + n->view_offset, storage_bytes(n));
    }
    for (uint32_t id = 0; id < g->count; id++) vki__gfree(g, storage[id]);
    vki__gfree(g, storage);
    return st;
}
