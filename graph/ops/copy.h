/* The copy kernel as a building block: copy, concat and upsample are all gathers that it runs
 * with different source strides, destination regions and index shifts. */
#ifndef VKINFER_OPS_COPY_H
#define VKINFER_OPS_COPY_H

#include "../graph_internal.h"

/* Emits one dispatch of copy.comp computing (part of) node `n`: for every 4-D index i < dst.ne,
 * the result element at dst.offset + i * dst.nb (elements of n's dtype) gets source `src_id`'s
 * element at index i >> shift, converted to n's dtype. `shift` holds a right shift per source
 * dimension k in bits 8k..8k+7 (0: none). F32 results run on every profile; F16 and BF16
 * results need 16-bit storage (else VKI_ERROR_UNSUPPORTED). */
vki_status vki__lower_copy(vki_lower *L, const vki_node *n, uint32_t src_id, const vki_operand *dst,
                           uint32_t shift);

#endif
