/* What one op reads of another, through the owner's accessor: a fusion hook of one op looks at
 * a neighbour of another (matmul folds in a glu's activation, a rope's frequencies, an
 * rms_norm's epsilon; a norm a mul's or add's kind). Each struct is its op's whole parameter
 * set; only the op's own file packs it into a node (vki__params_set). The ops no other op
 * reads (matmul, attention, softmax, conv2d, ...) keep their structs in their files. */
#ifndef VKINFER_OPS_INTERNAL_H
#define VKINFER_OPS_INTERNAL_H

#include "../graph_internal.h"

extern const vki_op_def vki_op_binary, vki_op_unary, vki_op_glu, vki_op_rms_norm,
    vki_op_layer_norm, vki_op_group_norm, vki_op_rope, vki_op_matmul, vki_op_set_rows,
    vki_op_attention;

typedef struct vki_binary_params {
    uint32_t op; // VKI_BINARY_ADD or VKI_BINARY_MUL (vki_abi.h)
} vki_binary_params;
vki_binary_params vki__binary_params(const vki_node *n); // n: a binary node

typedef struct vki_unary_params {
    vki_activation act;
    float scale; // applied after the activation
} vki_unary_params;
vki_unary_params vki__unary_params(const vki_node *n); // n: a unary node

/* x_id, the one reader of a MoE combine c_id (moe_combine, or a down product with the combine
 * folded in), folded into the combine's epilogue where it is a scale (a unary without
 * activation: VKI__TAIL_SCALE, *scale multiplied by it; the caller stores it in x_id's
 * parameters) or an add of c and a residual (f32, contiguous, of x's shape: VKI__TAIL_RESIDUAL,
 * the residual becoming source `residual_slot`); 0: neither, nothing folded (moe.c). */
enum { VKI__TAIL_SCALE = 1, VKI__TAIL_RESIDUAL = 2 };
int vki__combine_tail(vki_fusion *f, uint32_t c_id, uint32_t x_id, int residual_slot, float *scale);

typedef struct vki_glu_params {
    vki_activation act; // VKI_ACT_SILU or VKI_ACT_GELU, of the gate
} vki_glu_params;
vki_glu_params vki__glu_params(const vki_node *n); // n: a glu node

typedef struct vki_norm_params {
    float eps;
    uint32_t groups; // group_norm only
} vki_norm_params;
vki_norm_params vki__norm_params(const vki_node *n); // n: an rms, layer or group norm node

typedef struct vki_rope_params {
    uint32_t n_rot;
    vki_rope_mode mode;
    float base, freq_scale;
    uint32_t sections[4]; // MROPE and VISION: pairs per position stream; else 0
} vki_rope_params;
vki_rope_params vki__rope_params(const vki_node *n); // n: a rope node
/* The rope kernels' log2 step between pairs' frequencies, 2 log2(base) / n_rot. */
float vki__rope_log2_step(float base, uint32_t n_rot);

#endif
