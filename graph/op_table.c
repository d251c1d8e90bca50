/* The op table: one row per op. An op is this row, its graph/ops/<op>.c (builder, shape rule,
 * CPU reference, lowering) and its kernels in shaders/. */
#include "graph_internal.h"

extern const vki_op_def vki_op_binary;

const vki_op_def *const vki_op_table[] = {
    &vki_op_binary,
};

const uint32_t vki_op_table_count = sizeof vki_op_table / sizeof vki_op_table[0];
