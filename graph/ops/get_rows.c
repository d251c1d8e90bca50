/* get_rows: y[K, N] = table[K, ids[n]] as F32: an embedding lookup. table [K, V] has any
 * weight dtype (quantized rows are decoded by shaders/quant.glsl) and contiguous rows; ids is
 * I32 [N] (may be strided). An id outside [0, V) gives a row of zeros on both the device and
 * the reference, so a bad token id never reads outside the table. */
#include "../graph_internal.h"
#include "vki_abi.h"

#include <stdio.h>

const vki_op_def vki_op_get_rows;

vki_tensor vki_get_rows(vki_graph *g, vki_tensor table, vki_tensor ids)
{
    vki_tensor srcs[2] = {table, ids};
    if (!vki__check_srcs(g, "get_rows", 2, srcs)) return (vki_tensor){0};
    const vki_node *nt = vki__node(g, table), *ni = vki__node(g, ids);
    const vki_dtype_info *td = vki_dtype_get(nt->dtype);
    char st[96], si[96];
    vki__shape_str(nt, st);
    vki__shape_str(ni, si);
    if (!td->block_elems || nt->dtype == VKI_DTYPE_I32 || nt->ne[2] * nt->ne[3] != 1 ||
        nt->ne[0] % td->block_elems || (nt->ne[0] > td->block_elems && nt->nb[0] != td->block_bytes))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "get_rows: table %s must be [K, V] of a weight dtype with contiguous "
                               "rows of whole blocks (vki_copy it first)", st);
    if (ni->dtype != VKI_DTYPE_I32 || ni->ne[1] * ni->ne[2] * ni->ne[3] != 1)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "get_rows: ids %s must be i32 [N]", si);
    int64_t ne[2] = {nt->ne[0], ni->ne[0]};
    return vki__new_op(g, &vki_op_get_rows, VKI_DTYPE_F32, 2, ne, 2, srcs);
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *table = &s[0], *ids = &s[1];
    for (int64_t i = 0; i < n->ne[1]; i++) {
        int64_t id = (int64_t)vki_ref_get(ids, i, 0, 0, 0);
        bool valid = id >= 0 && id < table->ne[1];
        for (int64_t k = 0; k < n->ne[0]; k++)
            vki_ref_set(d, k, i, 0, 0, valid ? vki_ref_get(table, k, id, 0, 0) : 0.0f);
    }
}

/* Table rows [v_first, v_first + rows): all of them (range NULL), or a slice whose bytes in
 * the table are `range`. */
static vki_status lower_rows(vki_lower *L, const vki_node *n, uint32_t v_first, uint32_t rows,
                             const vki_lower_range *range)
{
    const vki_profile *p = vki_lower_profile(L);
    uint32_t self = vki_lower_self(L);
    const vki_node *nt = vki_lower_node(L, n->src[0]);
    vki_operand t = vki_lower_operand_at(L, n->src[0], range ? range->offset : 0);
    vki_operand ids = vki_lower_operand(L, n->src[1]), d = vki_lower_operand(L, self);
    if ((range ? range->size : vki__span_bytes(nt)) > UINT32_MAX)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "a table over 4 GiB (32-bit indexing)");
    vki_pc_get_rows pc = {
        .K = d.ne[0], .N = d.ne[1], .V = rows, .t_off = t.offset, .t_nb1 = t.nb[1],
        .i_off = ids.offset, .i_nb0 = ids.nb[0], .d_off = d.offset,
        .v_first = v_first, .v_total = t.ne[1],
    };
    vki_lower_range ranges[3] = {[0] = range ? *range : (vki_lower_range){0}};
    char kernel[48];
    snprintf(kernel, sizeof kernel, "get_rows_%s", vki_dtype_get(nt->dtype)->name);
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    uint32_t tensors[3] = {n->src[0], n->src[1], self};
    vki_step_desc s = {
        .kernel = kernel,
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = 3, .write_mask = 1u << 2,
        .push = &pc, .push_size = sizeof pc,
        .ranges = ranges,
    };
    vki_lower_grid(vki_div_up(pc.K, 4) * pc.N, spec.value, s.groups);
    return vki_lower_step(L, &s);
}

/* A table larger than one binding may be (the device's max_storage_range) is bound a slice of
 * rows at a time, one dispatch each, so that the model code need not slice it. A binding starts
 * up to one alignment unit before its rows and ends rounded up. */
static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    const vki_node *nt = vki_lower_node(L, n->src[0]);
    uint64_t span = vki__span_bytes(nt), V = (uint64_t)nt->ne[1];
    if (!p->max_storage_range || span + vki_lower_binding_slack(p) <= p->max_storage_range)
        return lower_rows(L, n, 0, (uint32_t)V, NULL);
    uint64_t row = nt->nb[1], row_bytes = vki_dtype_bytes(nt->dtype, nt->ne[0]);
    uint64_t rows = vki_lower_window_count(p, row_bytes, row);
    if (rows > UINT32_MAX / row) rows = UINT32_MAX / row; // 32-bit indexing within a slice
    if (rows == 0)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED,
                              "a table row of %llu bytes over the device's binding limit of %llu",
                              (unsigned long long)row_bytes, (unsigned long long)p->max_storage_range);
    for (uint64_t v0 = 0; v0 < V; v0 += rows) {
        uint64_t count = V - v0 < rows ? V - v0 : rows;
        vki_lower_range range = {.offset = v0 * row, .size = (count - 1) * row + row_bytes};
        VKI_TRY(lower_rows(L, n, (uint32_t)v0, (uint32_t)count, &range));
    }
    return VKI_OK;
}

const vki_op_def vki_op_get_rows = {
    .name = "get_rows",
    .reference = reference,
    .lower = lower,
};
