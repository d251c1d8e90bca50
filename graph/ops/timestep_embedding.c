/* timestep_embedding: the sinusoidal embedding of diffusion timesteps, as the original latent
 * diffusion code's timestep_embedding, ggml_timestep_embedding and diffusers'
 * Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0) (the Stable Diffusion UNets) compute it:
 *
 *     half = dim / 2,  f_k = exp(-ln(max_period) * k / half)   for k < half
 *     y[k, n] = cos(t_n * f_k),  y[half + k, n] = sin(t_n * f_k),  y[dim - 1, n] = 0 if dim is odd
 *
 * timesteps F32 [N] (may be strided) -> F32 [dim, N]. Everything in fp32, as those do. */
#include "../graph_internal.h"
#include "vki_abi.h"

#include <math.h>

const vki_op_def vki_op_timestep_embedding;

/* The node's parameters. */
typedef struct timestep_embedding_params {
    uint32_t dim; // even
    float max_period;
} timestep_embedding_params;
static_assert(sizeof(timestep_embedding_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static timestep_embedding_params params(const vki_node *n)
{
    timestep_embedding_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

vki_tensor vki_timestep_embedding(vki_graph *g, vki_tensor timesteps, uint32_t dim,
                                  float max_period)
{
    if (!vki__check_srcs(g, "timestep_embedding", 1, &timesteps)) return (vki_tensor){0};
    const vki_node *nt = vki__node(g, timesteps);
    char s[96];
    if (nt->dtype != VKI_DTYPE_F32 || nt->ne[1] * nt->ne[2] * nt->ne[3] != 1 || dim == 0 ||
        !(max_period > 0.0f))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "timestep_embedding: timesteps %s, dim %u, max_period %g: f32 [N], "
                               "dim > 0, max_period > 0",
                               vki__shape_str(nt, s), dim, (double)max_period);
    int64_t ne[2] = {dim, nt->ne[0]};
    vki_tensor t = vki__new_op(g, &vki_op_timestep_embedding, VKI_DTYPE_F32, 2, ne, 1, &timesteps);
    if (t.id) {
        timestep_embedding_params p = {.dim = dim, .max_period = max_period};
        vki__params_set(vki__node_mut(g, t), &p, sizeof p);
    }
    return t;
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    uint32_t dim = params(n).dim, half = dim / 2;
    float log_max_period = logf(params(n).max_period);
    for (int64_t i = 0; i < n->ne[1]; i++) {
        float t = vki_ref_get(&s[0], i, 0, 0, 0);
        for (uint32_t k = 0; k < half; k++) {
            float arg = t * expf(-log_max_period * (float)k / (float)half);
            vki_ref_set(d, k, i, 0, 0, cosf(arg));
            vki_ref_set(d, half + k, i, 0, 0, sinf(arg));
        }
        if (dim % 2) vki_ref_set(d, dim - 1, i, 0, 0, 0.0f);
    }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    uint32_t self = vki_lower_self(L);
    vki_operand t = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, self);
    vki_pc_timestep pc = {
        .dim = params(n).dim, .half_dim = params(n).dim / 2, .count = d.ne[1],
        .t_off = t.offset, .t_nb0 = t.nb[0], .d_off = d.offset,
        .log_max_period = logf(params(n).max_period),
    };
    uint32_t tensors[2] = {n->src[0], self};
    return vki_lower_elementwise(L, n, "timestep_embedding", tensors, 2, &pc, sizeof pc);
}

const vki_op_def vki_op_timestep_embedding = {
    .name = "timestep_embedding",
    .reference = reference,
    .lower = lower,
};
