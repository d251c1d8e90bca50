/* Fusion: rewrites the compiler's working copy so that work that belongs in one dispatch is one
 * node. This file is only the walk: use counts, and the generic fold of a single-use producer
 * into its consumer. Which patterns fold is each op's own business, asked through its row in
 * the op table (vki_op_def.fuse and .absorb): the folds live beside the kernels that take the
 * extra operands (graph/ops/norm.c: norm + scale + shift; matmul_fusion.c: matmul + norm of x,
 * bias, activation, residual, glu, rope; attention.c: a decode step's cache writes).
 *
 * A fold keeps the consumer's id, name and output flag, so handles the caller holds (outputs
 * to download) stay valid; the producer is left unreferenced and drops out as dead. */
#include "graph_internal.h"

bool vki__fusion_row_vector(const vki_node *v, int64_t n)
{
    return v->ne[0] == n && v->ne[1] == 1 && v->ne[2] == 1 && v->ne[3] == 1 &&
           v->nb[0] == vki_dtype_get(v->dtype)->block_bytes &&
           (v->dtype == VKI_DTYPE_F32 || v->dtype == VKI_DTYPE_F16);
}

bool vki__fusion_single_use(const vki_fusion *f, uint32_t y_id, uint32_t x_id)
{
    const vki_node *x = &f->w->nodes[x_id], *y = &f->w->nodes[y_id];
    return y->kind == VKI_NODE_OP && !y->output && f->uses[y_id] == 1 && vki__same_shape(x, y) &&
           x->dtype == y->dtype;
}

void vki__fusion_fold(vki_fusion *f, uint32_t x_id, uint32_t y_id, int slot, uint32_t extra)
{
    vki_node *x = &f->w->nodes[x_id];
    vki_node merged = f->w->nodes[y_id];
    merged.output = x->output;
    memcpy(merged.name, x->name, sizeof merged.name);
    merged.base = x_id;
    if (slot) merged.src[slot] = extra;
    // x's other sources lose a use (y is gone); `extra` is still used once, by x.
    for (int i = 0; i < VKI_MAX_SRC; i++)
        if (x->src[i] && x->src[i] != extra) f->uses[x->src[i]]--;
    *x = merged;
    f->uses[y_id] = 0;
}

/* The op node that source `s` is, or that it views; 0 for a leaf. */
static uint32_t producer(const vki_graph *w, uint32_t s)
{
    const vki_node *n = &w->nodes[s];
    if (n->kind == VKI_NODE_VIEW) s = n->src[0], n = &w->nodes[s];
    return n->kind == VKI_NODE_OP ? s : 0;
}

uint32_t vki__fuse(vki_graph *w, const vki_profile *profile)
{
    vki_fusion f = {.w = w, .uses = vki__galloc(w, w->count * sizeof(uint32_t)), .profile = profile};
    if (!f.uses) return 0; // fusion is an optimisation: without memory, compile unfused
    for (uint32_t id = 1; id < w->count; id++)
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (w->nodes[id].src[i]) f.uses[w->nodes[id].src[i]]++;

    uint32_t fused = 0;
    for (uint32_t id = 1; id < w->count; id++) {
        const vki_node *x = &w->nodes[id];
        if (x->kind != VKI_NODE_OP || !x->src[0]) continue;
        if (x->op->fuse && x->op->fuse(&f, id)) {
            fused++;
            continue;
        }
        for (int i = 0; i < 2 && x->src[i]; i++) {
            uint32_t y_id = producer(w, x->src[i]);
            const vki_op_def *op = y_id ? w->nodes[y_id].op : NULL;
            if (op && op->absorb && op->absorb(&f, y_id, id)) {
                fused++;
                break;
            }
        }
    }
    vki__gfree(w, f.uses);
    return fused;
}
