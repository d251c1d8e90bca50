/* The op table: one row per op. An op is this row, its graph/ops/<op>.c (builder, shape rule,
 * CPU reference, lowering) and its kernels in shaders/. */
#include "graph_internal.h"

extern const vki_op_def vki_op_binary;
extern const vki_op_def vki_op_rms_norm, vki_op_layer_norm, vki_op_group_norm, vki_op_softmax, vki_op_rope;
extern const vki_op_def vki_op_copy;
extern const vki_op_def vki_op_unary;
extern const vki_op_def vki_op_glu;
extern const vki_op_def vki_op_concat;
extern const vki_op_def vki_op_upsample;
extern const vki_op_def vki_op_timestep_embedding;
extern const vki_op_def vki_op_argmax;
extern const vki_op_def vki_op_attention, vki_op_conv2d;
extern const vki_op_def vki_op_matmul;
extern const vki_op_def vki_op_get_rows, vki_op_set_rows;
extern const vki_op_def vki_op_prelu;
extern const vki_op_def vki_op_top_k, vki_op_moe_weights, vki_op_moe_combine, vki_op_matmul_id;

const vki_op_def *const vki_op_table[] = {
    &vki_op_binary,
    &vki_op_rms_norm, &vki_op_layer_norm, &vki_op_group_norm, &vki_op_softmax, &vki_op_rope,
    &vki_op_copy,
    &vki_op_unary,
    &vki_op_glu,
    &vki_op_concat,
    &vki_op_upsample,
    &vki_op_timestep_embedding,
    &vki_op_argmax,
    &vki_op_attention, &vki_op_conv2d,
    &vki_op_matmul,
    &vki_op_get_rows, &vki_op_set_rows,
    &vki_op_prelu,
    &vki_op_top_k, &vki_op_moe_weights, &vki_op_moe_combine, &vki_op_matmul_id,
};

const uint32_t vki_op_table_count = sizeof vki_op_table / sizeof vki_op_table[0];
