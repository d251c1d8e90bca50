/* matmul's parameters and what its two files (matmul.c: builder, reference, lowering;
 * matmul_fusion.c: the folds into it) share. */
#ifndef VKINFER_OPS_MATMUL_INTERNAL_H
#define VKINFER_OPS_MATMUL_INTERNAL_H

#include "ops_internal.h"

/* What the fusion pass has folded into a matmul node (all zero for a plain product). */
typedef struct vki_matmul_params {
    vki_activation act;  // after the bias (src[2]), before the residual (src[3])
    float eps;           // of the folded rms_norm of x, weights src[4]
    vki_activation glu;  // folded glu: y[m] = glu(row m) * row m + M (0: none)
    uint32_t rope_rows;  // folded llama rope of rows [0, rope_rows) (0: none), positions src[5]
    uint32_t rope_head;  // rows per head
    uint32_t rope_n_rot;
    float rope_base, rope_freq_scale;
} vki_matmul_params;

vki_matmul_params vki__matmul_params(const vki_node *n);
void vki__matmul_params_set(vki_node *n, const vki_matmul_params *p);

/* Whether a matmul of K x N (N columns of x) lowers to matvec_wide on this profile; its
 * chunks per thread and rows per pass. Only matvec_wide takes a folded norm, glu or rope. */
bool vki__matvec_wide(const vki_profile *p, uint64_t K, uint64_t N, uint32_t *out_kchunks,
                      uint32_t *out_rows);

/* matvec_wide's runs of consecutive weight blocks (VKI_SPEC_MM_RUN) for weight type wt at K,
 * rows starting at multiples of 4 bytes (`words`) or 16 (`texels`): the run, 1 for none;
 * *kchunks and *rows become that dealing's (matmul_id's decode takes them too). */
uint32_t vki__matvec_wide_run(const vki_profile *p, vki_dtype wt, uint64_t K, bool words,
                              bool texels, uint32_t *kchunks, uint32_t *rows);

/* Whether weight w fits one binding on this profile; a larger one is bound a slice of rows at
 * a time, which a folded glu or rope cannot be. */
bool vki__matmul_weight_fits(const vki_profile *p, const vki_node *w);

/* The cooperative-matrix kernels' plan (matmul_coopmat.comp and conv2d_coopmat.comp share
 * it): whether the profile runs them at all, and for an M x N product (in `batches`) on the
 * tuning's tiles: the tile (halved toward MATMUL_MIN_GROUPS workgroups), each subgroup's block
 * of up to 64 x 32 in the device's fragments, double-buffered slabs where the shared memory
 * holds two, and the variant's suffix (_cmk VK_KHR_, _cm VK_NV_, _cme emulated). */
#define VKI_COOPMAT_MIN_TILES 64 // full tiles a product needs for the cooperative-matrix kernels
typedef struct vki_coopmat_plan {
    uint32_t tm, tn, tk;         // the workgroup's tile
    uint32_t fm, fn, fk;         // the device's fragment
    uint32_t sub_m, sub_n, subgroups, buffers;
    uint64_t shared;             // bytes of shared memory
    const char *suffix;
} vki_coopmat_plan;
bool vki__coopmat_usable(const vki_profile *p, uint64_t M, uint64_t N, uint64_t batches);
/* The device's part of that (the tuning, the extension or the emulation, subgroups), for every
 * cooperative-matrix kernel (attention's too), and the variant suffix of the extension the device
 * was opened with (cme: emulated fragments, no extension: the emulate-coopmat narrowing). */
bool vki__coopmat_device(const vki_profile *p);
const char *vki__coopmat_suffix(const vki_profile *p);
/* False (and the plan filled for the message) when the tile does not fit the device. */
bool vki__coopmat_plan(const vki_profile *p, uint32_t M, uint32_t N, uint64_t batches, vki_coopmat_plan *out);

/* The fusion hooks (matmul_fusion.c). */
bool vki__matmul_fuse(vki_fusion *f, uint32_t id);
bool vki__matmul_absorb(vki_fusion *f, uint32_t id, uint32_t consumer);

/* y = matmul(...) with a bias [M] f32 (or {0}) and an activation applied in its epilogue, as
 * the fusion pass would fold them: for the conformance cases of the epilogue. Returns y. */
vki_tensor vki__matmul_epilogue(vki_graph *g, vki_tensor y, vki_tensor bias, vki_activation act);

#endif
