/* Fusion: rewrites the compiler's working copy so that work that belongs in one dispatch is one
 * node. A producer with a single consumer is folded INTO that consumer: the consumer node takes
 * the producer's op and sources plus the extra operand, and keeps its own id, name and output
 * flag, so handles the caller holds (outputs to download) stay valid. The producer is left
 * unreferenced and drops out as dead.
 *
 * Patterns (the ops' kernels already take the extra operands):
 *   mul(rms_norm(x), w)          -> rms_norm(x, w)        norm + scale
 *   mul(layer_norm(x), w)        -> layer_norm(x, w)
 *   add(layer_norm(x, w), b)     -> layer_norm(x, w, b)
 *   add(matmul(W, x), bias)      -> matmul(W, x) + bias   matmul + bias
 *   act(matmul(W, x) [+ bias])   -> matmul + bias + act    (silu, gelu, gelu_tanh, quick_gelu)
 *   add(matmul(...), r), add(r, matmul(...))
 *                                -> matmul(...) + r       residual (r f32, contiguous, same shape)
 *   matmul(W, rms_norm(x, w))    -> matmul(W, x) with x normed in registers, where the matmul
 *                                   lowers to matvec_wide (the profile's CPU mat-vec): the
 *                                   norm's dispatch goes; the matmul keeps its id
 *   glu(y[:M], y[M:]), y = matmul(W, x) of 2M rows (gate and up joined)
 *                                -> matmul computing act(row m) * row m + M, matvec_wide too
 *   rope(y[:R] as heads), y = matmul(W, x) of one column, llama's pairs
 *                                -> matmul rotating its first R rows itself, matvec_wide too:
 *                                   the rope becomes a view of y (y's other readers read rows
 *                                   past R only)
 *   attention_pos(q, reshape(set_rows(Kc, k, pos)), reshape(set_rows(Vc, v, pos)), pos), one
 *   query                        -> attention(q, Kc, Vc, pos) writing k and v at pos itself,
 *                                   where it lowers to the keys kernel's _append variant (the
 *                                   profile's CPU decode attention, vki__attention_appends):
 *                                   each set_rows becomes a plain view of its cache
 */
#include "graph_internal.h"
#include "vki_abi.h"

extern const vki_op_def vki_op_binary, vki_op_unary, vki_op_matmul, vki_op_rms_norm,
    vki_op_layer_norm, vki_op_glu, vki_op_attention, vki_op_set_rows, vki_op_rope;

/* A vector of `n` elements along dim 0 only, contiguous, f32 or f16. */
static bool is_row_vector(const vki_node *v, int64_t n)
{
    return v->ne[0] == n && v->ne[1] == 1 && v->ne[2] == 1 && v->ne[3] == 1 && v->nb[0] ==
           vki_dtype_get(v->dtype)->block_bytes && (v->dtype == VKI_DTYPE_F32 || v->dtype == VKI_DTYPE_F16);
}

/* add(matmul, r) or add(r, matmul) at x_id with r a residual the matmul's epilogue can add: the
 * matmul's id, and r's in *out_r; 0 when x is no such add. */
static uint32_t residual_matmul(const vki_graph *w, const uint32_t *uses, uint32_t x_id, uint32_t *out_r)
{
    const vki_node *x = &w->nodes[x_id];
    if (x->op != &vki_op_binary || x->p[0].u != VKI_BINARY_ADD || !x->src[0] || !x->src[1] ||
        x->src[0] == x->src[1] || x->dtype != VKI_DTYPE_F32)
        return 0;
    for (int side = 0; side < 2; side++) {
        uint32_t m_id = x->src[side], r_id = x->src[1 - side];
        const vki_node *m = &w->nodes[m_id], *r = &w->nodes[r_id];
        if (m->kind == VKI_NODE_OP && m->op == &vki_op_matmul && !m->output && uses[m_id] == 1 &&
            !m->src[3] && vki__same_shape(m, x) && vki__same_shape(r, x) &&
            r->dtype == VKI_DTYPE_F32 && vki__is_contiguous(r) &&
            // A row vector after the matmul is a bias (an activation may still follow).
            !(side == 0 && !m->src[2] && m->p[0].u == VKI_ACT_NONE && is_row_vector(r, x->ne[0]))) {
            *out_r = r_id;
            return m_id;
        }
    }
    return 0;
}

/* matmul m_id of an rms_norm(x, w) that only it reads: the norm's operands go into the matmul
 * (x as its x, w as src[4], the epsilon as p[1].f) where it lowers to matvec_wide, which norms
 * x in registers. Returns whether it did. */
static bool norm_into_matvec(vki_graph *w, uint32_t *uses, uint32_t m_id, const vki_profile *profile)
{
    vki_node *m = &w->nodes[m_id];
    uint32_t n_id = m->src[1], kchunks, rows;
    const vki_node *n = &w->nodes[n_id];
    if (!profile || m->src[4] || n->kind != VKI_NODE_OP || n->op != &vki_op_rms_norm || n->output ||
        uses[n_id] != 1 || !n->src[1] || n->src[2] || n->dtype != VKI_DTYPE_F32)
        return false;
    const vki_node *x = &w->nodes[n->src[0]], *nw = &w->nodes[n->src[1]];
    if (x->dtype != VKI_DTYPE_F32 || x->nb[0] != 4 || !is_row_vector(nw, n->ne[0]) ||
        nw->dtype != VKI_DTYPE_F32 || nw->view_offset % 16 || n->ne[0] % VKI_MM_CHUNK ||
        !vki__matvec_wide(profile, (uint64_t)n->ne[0], (uint64_t)m->ne[1], &kchunks, &rows))
        return false;
    m->src[1] = n->src[0];
    m->src[4] = n->src[1];
    m->p[1].f = n->p[0].f;
    uses[n_id] = 0; // the norm's operands are the matmul's now: their counts stand
    return true;
}

/* glu g_id of the two halves of one matmul's rows (views that only it reads, of a product
 * that only they read, without epilogue): the matmul goes into g_id, computing both halves'
 * rows and the glu, where it lowers to matvec_wide. Returns whether it did. */
static bool glu_into_matvec(vki_graph *w, uint32_t *uses, uint32_t g_id, const vki_profile *profile)
{
    vki_node *gl = &w->nodes[g_id];
    if (!profile || gl->src[2] || !gl->src[0] || !gl->src[1] || gl->dtype != VKI_DTYPE_F32 ||
        !vki__is_contiguous(gl))
        return false;
    const vki_node *a = &w->nodes[gl->src[0]], *b = &w->nodes[gl->src[1]];
    if (a->kind != VKI_NODE_VIEW || b->kind != VKI_NODE_VIEW || a->src[0] != b->src[0] ||
        uses[gl->src[0]] != 1 || uses[gl->src[1]] != 1)
        return false;
    uint32_t y_id = a->src[0], kchunks, rows;
    const vki_node *y = &w->nodes[y_id];
    int64_t M = gl->ne[0];
    if (y->kind != VKI_NODE_OP || y->op != &vki_op_matmul || y->output || uses[y_id] != 2 ||
        y->src[2] || y->src[3] || y->p[0].u != VKI_ACT_NONE || y->p[2].u || y->p[3].u || y->ne[0] != 2 * M ||
        !vki__same_shape(a, gl) || !vki__same_shape(b, gl) || y->view_offset ||
        a->view_offset != 0 || b->view_offset != (uint64_t)M * 4 ||
        !vki__matvec_wide(profile, (uint64_t)w->nodes[y->src[0]].ne[0], (uint64_t)y->ne[1], &kchunks, &rows))
        return false;
    for (int d = 0; d < VKI_MAX_DIMS; d++)
        if (a->nb[d] != y->nb[d] || b->nb[d] != y->nb[d]) return false;
    vki_node merged = *y;
    merged.ne[0] = M;
    for (int d = 1; d < VKI_MAX_DIMS; d++) merged.nb[d] = merged.nb[d - 1] * (uint64_t)merged.ne[d - 1];
    merged.p[2].u = gl->p[0].u;
    merged.output = gl->output;
    memcpy(merged.name, gl->name, sizeof merged.name);
    merged.base = g_id;
    uses[gl->src[0]] = uses[gl->src[1]] = uses[y_id] = 0; // y's operands are g_id's now
    *gl = merged;
    return true;
}

/* rope r_id (llama's pairs, f32) of the first heads of a one-column matmul's rows (a view at
 * offset 0 that only it reads), a product without epilogue whose other live readers are views
 * of rows past the heads: the matmul rotates those rows itself, where it lowers to
 * matvec_wide, and r_id becomes a view of it (its shape and strides address the same rows:
 * dims past 1 have one element). Returns whether it did. */
static bool rope_into_matvec(vki_graph *w, uint32_t *uses, uint32_t r_id, const vki_profile *profile)
{
    vki_node *r = &w->nodes[r_id];
    uint32_t v_id = r->src[0], kchunks, rows;
    const vki_node *v = &w->nodes[v_id];
    if (!profile || r->output || r->dtype != VKI_DTYPE_F32 || r->p[1].u != VKI_ROPE_NORMAL ||
        v->kind != VKI_NODE_VIEW || uses[v_id] != 1 || v->view_offset != 0 || v->nb[0] != 4 ||
        v->nb[1] != 4 * (uint64_t)v->ne[0] || v->ne[2] != 1 || v->ne[3] != 1 || !vki__is_contiguous(r))
        return false;
    uint32_t y_id = v->src[0];
    vki_node *y = &w->nodes[y_id];
    uint64_t rot_rows = (uint64_t)v->ne[0] * v->ne[1];
    if (y->kind != VKI_NODE_OP || y->op != &vki_op_matmul || y->output || y->ne[1] != 1 ||
        y->src[2] || y->src[3] || y->src[5] || y->p[0].u != VKI_ACT_NONE || y->p[2].u ||
        y->view_offset || (uint64_t)y->ne[0] < rot_rows ||
        !vki__matvec_wide(profile, (uint64_t)w->nodes[y->src[0]].ne[0], 1, &kchunks, &rows))
        return false;
    for (uint32_t id = 1; id < w->count; id++) {
        const vki_node *u = &w->nodes[id];
        if (id == v_id || (!uses[id] && !u->output)) continue; // a dead node reads nothing
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (u->src[i] == y_id && (u->kind != VKI_NODE_VIEW || u->view_offset < 4 * rot_rows))
                return false;
    }
    y->src[5] = r->src[1]; // the positions: their use moves from r_id to y
    y->p[3].u = (uint32_t)rot_rows;
    y->p[4].u = (uint32_t)v->ne[0];
    y->p[5].u = r->p[0].u;
    y->p[6].f = r->p[2].f;
    y->p[7].f = r->p[3].f;
    uses[v_id] = 0; // r reads y directly now: y's count stands
    r->kind = VKI_NODE_VIEW;
    r->op = NULL;
    r->src[0] = y_id;
    r->src[1] = 0;
    r->base = y_id;
    for (uint32_t id = r_id + 1; id < w->count; id++)
        if (w->nodes[id].base == r_id) w->nodes[id].base = y_id;
    return true;
}

/* attention a_id of a decode step (one query, masked by positions pos) whose k and v are the
 * reshaped results of set_rows writing new rows at pos into F16 caches, results that no node
 * between the write and a_id reads (it would miss the write once a_id makes it): the rows go
 * into a_id (src[5], src[6]), which writes them itself where the profile's kernel can, and
 * each set_rows becomes a view of its cache. Returns whether it did. */
static bool append_into_attention(vki_graph *w, uint32_t *uses, uint32_t a_id, const vki_profile *profile)
{
    vki_node *a = &w->nodes[a_id];
    if (!profile || !a->src[4] || a->src[3] || a->src[5] || a->src[1] == a->src[2] ||
        (!a->output && !uses[a_id]))
        return false;
    uint32_t s_ids[2];
    for (int side = 0; side < 2; side++) {
        uint32_t r_id = a->src[1 + side];
        const vki_node *r = &w->nodes[r_id];
        if (r->kind != VKI_NODE_VIEW) return false;
        uint32_t s_id = r->src[0];
        const vki_node *s = &w->nodes[s_id], *rows = &w->nodes[s->src[1]];
        // r: the whole cache [D * n_kv_head, n_kv] as [D, n_kv_head, n_kv]; the rows: F32 [D *
        // n_kv_head, 1] with contiguous dims.
        if (s->kind != VKI_NODE_OP || s->op != &vki_op_set_rows || s->output || uses[s_id] != 1 ||
            s->src[2] != a->src[4] || r->view_offset != s->view_offset ||
            r->ne[0] * r->ne[1] != s->ne[0] || r->ne[2] != s->ne[1] || r->ne[3] != 1 ||
            r->nb[0] != s->nb[0] || r->nb[1] != r->nb[0] * (uint64_t)r->ne[0] || r->nb[2] != s->nb[1] ||
            rows->dtype != VKI_DTYPE_F32 || rows->nb[0] != 4 || rows->ne[0] != s->ne[0] ||
            rows->ne[1] * rows->ne[2] * rows->ne[3] != 1)
            return false;
        for (uint32_t id = r_id + 1; id < a_id; id++)
            for (int i = 0; i < VKI_MAX_SRC; i++)
                if (w->nodes[id].src[i] == r_id) return false;
        s_ids[side] = s_id;
    }
    if (s_ids[0] == s_ids[1] ||
        !vki__attention_appends(profile, &w->nodes[a->src[0]], &w->nodes[a->src[1]], &w->nodes[a->src[2]]))
        return false;
    for (int side = 0; side < 2; side++) {
        vki_node *s = &w->nodes[s_ids[side]];
        a->src[5 + side] = s->src[1]; // its use moves from the set_rows to a_id
        uses[s->src[2]]--;
        s->kind = VKI_NODE_VIEW; // of the cache, keeping shape, strides, base and offset
        s->op = NULL;
        s->src[1] = s->src[2] = 0;
    }
    return true;
}

/* Folds node `y` (the producer, sole user is x) into x, adding `extra` as source `slot` (0:
 * none). */
static void fold(vki_graph *w, uint32_t *uses, uint32_t x_id, uint32_t y_id, int slot, uint32_t extra)
{
    vki_node *x = &w->nodes[x_id];
    vki_node merged = w->nodes[y_id];
    merged.output = x->output;
    memcpy(merged.name, x->name, sizeof merged.name);
    merged.base = x_id;
    if (slot) merged.src[slot] = extra;
    // x's other sources lose a use (y is gone); `extra` is still used once, by x.
    for (int i = 0; i < VKI_MAX_SRC; i++)
        if (x->src[i] && x->src[i] != extra) uses[x->src[i]]--;
    *x = merged;
    uses[y_id] = 0;
}

uint32_t vki__fuse(vki_graph *w, const vki_profile *profile)
{
    uint32_t *uses = vki__galloc(w, w->count * sizeof *uses);
    if (!uses) return 0; // fusion is an optimisation: without memory, compile unfused
    for (uint32_t id = 1; id < w->count; id++)
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (w->nodes[id].src[i]) uses[w->nodes[id].src[i]]++;

    uint32_t fused = 0;
    for (uint32_t id = 1; id < w->count; id++) {
        vki_node *x = &w->nodes[id];
        if (x->kind != VKI_NODE_OP || !x->src[0]) continue;
        if ((x->op == &vki_op_matmul && norm_into_matvec(w, uses, id, profile)) ||
            (x->op == &vki_op_glu && glu_into_matvec(w, uses, id, profile)) ||
            (x->op == &vki_op_rope && rope_into_matvec(w, uses, id, profile)) ||
            (x->op == &vki_op_attention && append_into_attention(w, uses, id, profile))) {
            fused++;
            continue;
        }
        uint32_t r_id = 0, m_id = residual_matmul(w, uses, id, &r_id);
        if (m_id) {
            fold(w, uses, id, m_id, 3, r_id);
            w->nodes[id].base = id;
            fused++;
            continue;
        }
        uint32_t y_id = x->src[0];
        const vki_node *y = &w->nodes[y_id];
        if (y->kind != VKI_NODE_OP || y->output || uses[y_id] != 1 || !vki__same_shape(x, y) ||
            x->dtype != y->dtype)
            continue;
        const vki_node *b = x->src[1] ? &w->nodes[x->src[1]] : NULL;
        bool mul = x->op == &vki_op_binary && x->p[0].u == VKI_BINARY_MUL;
        bool add = x->op == &vki_op_binary && x->p[0].u == VKI_BINARY_ADD;
        bool norm = y->op == &vki_op_rms_norm || y->op == &vki_op_layer_norm;

        if (mul && norm && !y->src[1] && !y->src[2] && is_row_vector(b, y->ne[0])) {
            fold(w, uses, id, y_id, 1, x->src[1]);
        } else if (add && y->op == &vki_op_layer_norm && !y->src[2] && is_row_vector(b, y->ne[0])) {
            fold(w, uses, id, y_id, 2, x->src[1]);
        } else if (add && y->op == &vki_op_matmul && !y->src[2] && !y->src[3] && y->p[0].u == VKI_ACT_NONE &&
                   is_row_vector(b, y->ne[0]) && b->dtype == VKI_DTYPE_F32) {
            fold(w, uses, id, y_id, 2, x->src[1]);
        } else if (x->op == &vki_op_unary && x->p[0].u != VKI_ACT_NONE && x->p[1].f == 1.0f &&
                   y->op == &vki_op_matmul && y->p[0].u == VKI_ACT_NONE && !y->src[3]) {
            uint32_t act = x->p[0].u;
            fold(w, uses, id, y_id, 0, 0);
            w->nodes[id].p[0].u = act;
        } else {
            continue;
        }
        w->nodes[id].base = id;
        fused++;
    }
    vki__gfree(w, uses);
    return fused;
}
