/* set_rows: dst[:, idx[n]] = convert(src[:, n]) for every n with 0 <= idx[n] < R, the inverse of
 * get_rows: how new keys and values enter a KV cache at their positions. The result IS dst
 * after the write (VKI_OPF_WRITES_SRC0): same shape, strides, base and view offset, no storage
 * of its own, so the planner binds dst's storage (a weight range the caller holds across runs,
 * or an arena intermediate), orders later readers of the result after the write by the usual
 * hazards, and never removes the write as dead. Padding ids (-1, or >= R) are skipped on the
 * device and in the reference alike.
 *
 * A Q8_0 destination (a quantised KV cache) gets each row quantised block by block as GGUF's
 * quantiser does (vki_quant_block): d = max |x| / 127 stored as f16, q = round(x / d).
 *
 * Node: src {dst, src, idx}. */
#include "../graph_internal.h"
#include "vki_abi.h"

const vki_op_def vki_op_set_rows;

static bool is_float(vki_dtype t) { return t == VKI_DTYPE_F32 || t == VKI_DTYPE_F16; }

vki_tensor vki_set_rows(vki_graph *g, vki_tensor dst, vki_tensor src, vki_tensor idx)
{
    vki_tensor srcs[3] = {dst, src, idx};
    if (!vki__check_srcs(g, "set_rows", 3, srcs)) return (vki_tensor){0};
    const vki_node *nd = vki__node(g, dst), *ns = vki__node(g, src), *ni = vki__node(g, idx);
    char sd[96], ss[96], si[96];
    vki__shape_str(nd, sd);
    vki__shape_str(ns, ss);
    vki__shape_str(ni, si);
    const vki_dtype_info *di = vki_dtype_get(nd->dtype);
    bool q8 = nd->dtype == VKI_DTYPE_Q8_0;
    if (!(is_float(nd->dtype) || q8) || !is_float(ns->dtype) || nd->ne[2] * nd->ne[3] != 1 ||
        (nd->ne[0] > di->block_elems && nd->nb[0] != di->block_bytes))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "set_rows: dst %s, src %s: want an f32, f16 or q8_0 dst [K, R] with "
                               "contiguous rows and an f32 or f16 src", sd, ss);
    // The kernel writes a Q8_0 block's scale and quant pairs as half-words.
    if (q8 && (nd->ne[0] % 32 || nd->nb[1] % 2 || nd->view_offset % 2))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "set_rows: q8_0 dst %s (row stride %llu, byte offset %llu): want "
                               "rows of whole 32-element blocks at even byte offsets", sd,
                               (unsigned long long)nd->nb[1], (unsigned long long)nd->view_offset);
    if (ns->ne[0] != nd->ne[0] || ns->ne[2] * ns->ne[3] != 1)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "set_rows: src %s for dst %s: want [%lld, N]", ss, sd,
                               (long long)nd->ne[0]);
    if (ni->dtype != VKI_DTYPE_I32 || ni->ne[0] != ns->ne[1] || ni->ne[1] * ni->ne[2] * ni->ne[3] != 1)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "set_rows: idx %s for src %s: want i32 [%lld]", si, ss,
                               (long long)ns->ne[1]);
    const vki_node d = *nd; // copied: adding a node may move the array
    vki_tensor t = vki__new_op(g, &vki_op_set_rows, d.dtype, d.ndim, d.ne, 3, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) {
        memcpy(n->nb, d.nb, sizeof n->nb);
        n->base = d.base;
        n->view_offset = d.view_offset;
    }
    return t;
}

/* Writes through dst, which views the same bytes as s[0] (the result is the written dst). */
static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *src = &s[1], *idx = &s[2];
    for (int64_t i = 0; i < src->ne[1]; i++) {
        int64_t row = (int64_t)vki_ref_get(idx, i, 0, 0, 0);
        if (row < 0 || row >= n->ne[1]) continue;
        if (d->dtype == VKI_DTYPE_Q8_0) {
            for (int64_t blk = 0; blk < n->ne[0] / 32; blk++) {
                float x[32];
                for (int k = 0; k < 32; k++) x[k] = vki_ref_get(src, 32 * blk + k, i, 0, 0);
                vki_quant_block(VKI_DTYPE_Q8_0, x, d->data + blk * d->nb[0] + row * d->nb[1]);
            }
            continue;
        }
        for (int64_t k = 0; k < n->ne[0]; k++) vki_ref_set(d, k, row, 0, 0, vki_ref_get(src, k, i, 0, 0));
    }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    uint32_t self = vki_lower_self(L);
    const vki_node *ns = vki_lower_node(L, n->src[1]);
    vki_operand d = vki_lower_operand(L, self), s = vki_lower_operand(L, n->src[1]);
    vki_operand ids = vki_lower_operand(L, n->src[2]);
    bool d16 = n->dtype == VKI_DTYPE_F16, q8 = n->dtype == VKI_DTYPE_Q8_0;
    if (vki__span_bytes(n) > UINT32_MAX)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "a destination over 4 GiB (32-bit indexing)");
    // Invocations per row: the words it touches (K / 2 + 1 covers an f16 row starting in the
    // middle of a word), or its Q8_0 blocks.
    uint32_t words = q8 ? d.ne[0] / 32 : d16 ? d.ne[0] / 2 + 1 : d.ne[0];
    vki_pc_set_rows pc = {
        .K = d.ne[0], .N = s.ne[1], .R = d.ne[1], .words = words,
        .s_off = s.offset, .s_nb0 = s.nb[0], .s_nb1 = s.nb[1],
        .i_off = ids.offset, .i_nb0 = ids.nb[0], .d_off = d.offset, .d_nb1 = d.nb[1],
        .flags = (ns->dtype == VKI_DTYPE_F16 ? VKI_SET_ROWS_S_F16 : 0) |
                 (d16 ? VKI_SET_ROWS_D_F16 : 0) | (q8 ? VKI_SET_ROWS_D_Q8_0 : 0),
    };
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    uint32_t tensors[3] = {n->src[1], n->src[2], self};
    vki_step_desc st = {
        .kernel = "set_rows",
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = 3, .write_mask = 1u << VKI_SET_ROWS_BINDING_D,
        .push = &pc, .push_size = sizeof pc,
    };
    vki_lower_grid((uint64_t)words * pc.N, spec.value, st.groups);
    return vki_lower_step(L, &st);
}

const vki_op_def vki_op_set_rows = {
    .name = "set_rows",
    .flags = VKI_OPF_WRITES_SRC0,
    .reference = reference,
    .lower = lower,
};
