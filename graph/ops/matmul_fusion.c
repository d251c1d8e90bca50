/* matmul's fusion hooks (vki_op_def.fuse and .absorb): what folds into a matmul node.
 *
 *   matmul(W, rms_norm(x, w))    -> matmul(W, x) with x normed in registers, where the matmul
 *                                   lowers to matvec_wide (the profile's CPU mat-vec): the
 *                                   norm's dispatch goes; the matmul keeps its id   (fuse)
 *   add(matmul(W, x), bias)      -> matmul(W, x) + bias                               (absorb)
 *   act(matmul(W, x) [+ bias])   -> matmul + bias + act (silu, gelu, gelu_tanh, quick_gelu)
 *   add(matmul(...), r), add(r, matmul(...))
 *                                -> matmul(...) + r   residual (r f32, contiguous, same shape)
 *   glu(y[:M], y[M:]), y = matmul(W, x) of 2M rows (gate and up joined)
 *                                -> matmul computing act(row m) * row m + M, matvec_wide too
 *   rope(y[:R] as heads), y = matmul(W, x) of one column, llama's pairs
 *                                -> matmul rotating its first R rows itself, matvec_wide too:
 *                                   the rope becomes a view of y (y's other readers read rows
 *                                   past R only)
 * The lowering (matmul.c) checks again what it relies on and fails rather than computing
 * something else. */
#include "matmul_internal.h"
#include "vki_abi.h"

/* matmul m_id of an rms_norm(x, w) that only it reads: the norm's operands go into the matmul
 * (x as its x, w as src[4], the epsilon as eps) where it lowers to matvec_wide, which norms
 * x in registers. */
bool vki__matmul_fuse(vki_fusion *f, uint32_t m_id)
{
    vki_graph *w = f->w;
    vki_node *m = &w->nodes[m_id];
    uint32_t n_id = m->src[1], kchunks, rows;
    const vki_node *n = &w->nodes[n_id];
    if (!f->profile || m->src[4] || n->kind != VKI_NODE_OP || n->op != &vki_op_rms_norm || n->output ||
        f->uses[n_id] != 1 || !n->src[1] || n->src[2] || n->dtype != VKI_DTYPE_F32)
        return false;
    const vki_node *x = &w->nodes[n->src[0]], *nw = &w->nodes[n->src[1]];
    if (x->dtype != VKI_DTYPE_F32 || x->nb[0] != 4 || !vki__fusion_row_vector(nw, n->ne[0]) ||
        nw->dtype != VKI_DTYPE_F32 || nw->view_offset % 16 || n->ne[0] % VKI_MM_CHUNK ||
        !vki__matvec_wide(f->profile, (uint64_t)n->ne[0], (uint64_t)m->ne[1], &kchunks, &rows))
        return false;
    vki_matmul_params p = vki__matmul_params(m);
    p.eps = vki__norm_params(n).eps;
    m->src[1] = n->src[0];
    m->src[4] = n->src[1];
    vki__matmul_params_set(m, &p);
    f->uses[n_id] = 0; // the norm's operands are the matmul's now: their counts stand
    return true;
}

/* glu g_id of the two halves of one matmul's rows (views that only it reads, of a product
 * that only they read, without epilogue): the matmul goes into g_id, computing both halves'
 * rows and the glu, where it lowers to matvec_wide. */
static bool glu_into_matvec(vki_fusion *f, uint32_t g_id)
{
    vki_graph *w = f->w;
    uint32_t *uses = f->uses;
    vki_node *gl = &w->nodes[g_id];
    if (!f->profile || gl->src[2] || !gl->src[0] || !gl->src[1] || gl->dtype != VKI_DTYPE_F32 ||
        !vki__is_contiguous(gl))
        return false;
    const vki_node *a = &w->nodes[gl->src[0]], *b = &w->nodes[gl->src[1]];
    if (a->kind != VKI_NODE_VIEW || b->kind != VKI_NODE_VIEW || a->src[0] != b->src[0] ||
        uses[gl->src[0]] != 1 || uses[gl->src[1]] != 1)
        return false;
    uint32_t y_id = a->src[0], kchunks, rows;
    const vki_node *y = &w->nodes[y_id];
    vki_matmul_params p = vki__matmul_params(y);
    int64_t M = gl->ne[0];
    if (y->kind != VKI_NODE_OP || y->op != &vki_op_matmul || y->output || uses[y_id] != 2 ||
        y->src[2] || y->src[3] || p.act != VKI_ACT_NONE || p.glu || p.rope_rows || y->ne[0] != 2 * M ||
        !vki__matmul_weight_fits(f->profile, &w->nodes[y->src[0]]) ||
        !vki__same_shape(a, gl) || !vki__same_shape(b, gl) || y->view_offset ||
        a->view_offset != 0 || b->view_offset != (uint64_t)M * 4 ||
        !vki__matvec_wide(f->profile, (uint64_t)w->nodes[y->src[0]].ne[0], (uint64_t)y->ne[1], &kchunks, &rows))
        return false;
    for (int d = 0; d < VKI_MAX_DIMS; d++)
        if (a->nb[d] != y->nb[d] || b->nb[d] != y->nb[d]) return false;
    vki_node merged = *y;
    merged.ne[0] = M;
    for (int d = 1; d < VKI_MAX_DIMS; d++) merged.nb[d] = merged.nb[d - 1] * (uint64_t)merged.ne[d - 1];
    p.glu = vki__glu_params(gl).act;
    vki__matmul_params_set(&merged, &p);
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
 * dims past 1 have one element). */
static bool rope_into_matvec(vki_fusion *f, uint32_t r_id)
{
    vki_graph *w = f->w;
    uint32_t *uses = f->uses;
    vki_node *r = &w->nodes[r_id];
    vki_rope_params rp = vki__rope_params(r);
    uint32_t v_id = r->src[0], kchunks, rows;
    const vki_node *v = &w->nodes[v_id];
    if (!f->profile || r->output || r->dtype != VKI_DTYPE_F32 || rp.mode != VKI_ROPE_NORMAL ||
        v->kind != VKI_NODE_VIEW || uses[v_id] != 1 || v->view_offset != 0 || v->nb[0] != 4 ||
        v->nb[1] != 4 * (uint64_t)v->ne[0] || v->ne[2] != 1 || v->ne[3] != 1 || !vki__is_contiguous(r))
        return false;
    uint32_t y_id = v->src[0];
    vki_node *y = &w->nodes[y_id];
    vki_matmul_params p = vki__matmul_params(y);
    uint64_t rot_rows = (uint64_t)v->ne[0] * v->ne[1];
    if (y->kind != VKI_NODE_OP || y->op != &vki_op_matmul || y->output || y->ne[1] != 1 ||
        y->src[2] || y->src[3] || y->src[5] || p.act != VKI_ACT_NONE || p.glu || p.rope_rows ||
        y->view_offset || (uint64_t)y->ne[0] < rot_rows ||
        !vki__matmul_weight_fits(f->profile, &w->nodes[y->src[0]]) ||
        !vki__matvec_wide(f->profile, (uint64_t)w->nodes[y->src[0]].ne[0], 1, &kchunks, &rows))
        return false;
    for (uint32_t id = 1; id < w->count; id++) {
        const vki_node *u = &w->nodes[id];
        if (id == v_id || (!uses[id] && !u->output)) continue; // a dead node reads nothing
        for (int i = 0; i < VKI_MAX_SRC; i++)
            if (u->src[i] == y_id && (u->kind != VKI_NODE_VIEW || u->view_offset < 4 * rot_rows))
                return false;
    }
    y->src[5] = r->src[1]; // the positions: their use moves from r_id to y
    p.rope_rows = (uint32_t)rot_rows;
    p.rope_head = (uint32_t)v->ne[0];
    p.rope_n_rot = rp.n_rot;
    p.rope_base = rp.base;
    p.rope_freq_scale = rp.freq_scale;
    vki__matmul_params_set(y, &p);
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

/* add x of matmul m (a source of x) and another operand: a bias [M] f32 where m has no bias,
 * activation or residual yet and is x's first operand, else a residual r (f32, contiguous, of
 * x's shape) where m has none. */
static bool add_into_matmul(vki_fusion *f, uint32_t m_id, uint32_t x_id)
{
    vki_graph *w = f->w;
    const vki_node *x = &w->nodes[x_id], *m = &w->nodes[m_id];
    if (vki__binary_params(x).op != VKI_BINARY_ADD || x->src[0] == x->src[1] || x->dtype != VKI_DTYPE_F32)
        return false;
    int side = x->src[0] == m_id ? 0 : 1;
    if (x->src[side] != m_id) return false; // m read through a view
    uint32_t r_id = x->src[1 - side];
    const vki_node *r = &w->nodes[r_id];
    vki_matmul_params p = vki__matmul_params(m);
    if (m->kind != VKI_NODE_OP || m->output || f->uses[m_id] != 1 || m->src[3] || !vki__same_shape(m, x))
        return false;
    if (side == 0 && !m->src[2] && p.act == VKI_ACT_NONE && vki__fusion_row_vector(r, x->ne[0])) {
        // A row vector after the matmul is a bias (an activation may still follow).
        if (r->dtype != VKI_DTYPE_F32 || !vki__fusion_single_use(f, m_id, x_id)) return false;
        vki__fusion_fold(f, x_id, m_id, 2, r_id);
        return true;
    }
    if (!vki__same_shape(r, x) || r->dtype != VKI_DTYPE_F32 || !vki__is_contiguous(r)) return false;
    vki__fusion_fold(f, x_id, m_id, 3, r_id);
    return true;
}

/* act(matmul m) with a scale of 1: the activation goes into m's epilogue (after a bias). */
static bool act_into_matmul(vki_fusion *f, uint32_t m_id, uint32_t x_id)
{
    const vki_node *x = &f->w->nodes[x_id], *m = &f->w->nodes[m_id];
    vki_unary_params u = vki__unary_params(x);
    vki_matmul_params p = vki__matmul_params(m);
    if (u.act == VKI_ACT_NONE || u.scale != 1.0f || p.act != VKI_ACT_NONE || m->src[3] ||
        x->src[0] != m_id || !vki__fusion_single_use(f, m_id, x_id))
        return false;
    vki__fusion_fold(f, x_id, m_id, 0, 0);
    p.act = u.act;
    vki__matmul_params_set(&f->w->nodes[x_id], &p);
    return true;
}

bool vki__matmul_absorb(vki_fusion *f, uint32_t m_id, uint32_t x_id)
{
    const vki_op_def *op = f->w->nodes[x_id].op;
    if (op == &vki_op_glu) return glu_into_matvec(f, x_id);
    if (op == &vki_op_rope) return rope_into_matvec(f, x_id);
    if (op == &vki_op_unary) return act_into_matmul(f, m_id, x_id);
    if (op == &vki_op_binary) return add_into_matmul(f, m_id, x_id);
    return false;
}

vki_tensor vki__matmul_epilogue(vki_graph *g, vki_tensor y, vki_tensor bias, vki_activation act)
{
    vki_node *n = vki__node_mut(g, y);
    if (!n || n->op != &vki_op_matmul) return y;
    vki_matmul_params p = vki__matmul_params(n);
    p.act = act;
    n->src[2] = bias.id;
    vki__matmul_params_set(n, &p);
    return y;
}
