/* rope: rotary position embedding of x [head_dim, n_head, n_tok(, batch)] by positions I32
 * [n_tok] (vki_rope) or [n_tok, 4] (vki_rope_multi: one stream per section of pairs, Qwen2-VL).
 * The first n_rot dims of each head rotate in pairs; the rest pass through.
 *
 * Node: src {x, pos}; parameters vki_rope_params. */
#include "ops_internal.h"
#include "vki_abi.h"

#include <math.h>

static_assert(VKI_ROPE_MODE_NEOX == VKI_ROPE_NEOX && VKI_ROPE_MODE_MROPE == VKI_ROPE_MROPE &&
                  VKI_ROPE_MODE_VISION == VKI_ROPE_VISION,
              "abi_norm.h and vkinfer_graph.h disagree");

static_assert(sizeof(vki_rope_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

vki_rope_params vki__rope_params(const vki_node *n)
{
    vki_rope_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static bool multi(vki_rope_mode mode) { return mode == VKI_ROPE_MROPE || mode == VKI_ROPE_VISION; }

/* The checks and node of both builders; streams: 1 (pos [n_tok]) or 4 (pos [n_tok, 4]). */
static vki_tensor rope_node(vki_graph *g, vki_tensor x, vki_tensor pos, const vki_rope_params *p,
                            int64_t streams)
{
    vki_tensor srcs[2] = {x, pos};
    if (!vki__check_srcs(g, "rope", 2, srcs)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x), *np = vki__node(g, pos);
    char sx[96], sp[96];
    if (nx->dtype != VKI_DTYPE_F32 && nx->dtype != VKI_DTYPE_F16)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "rope: x %s: want f32 or f16",
                               vki__shape_str(nx, sx));
    if (np->dtype != VKI_DTYPE_I32 || np->ne[0] != nx->ne[2] ||
        vki__nelements(np) != streams * nx->ne[2] || !vki__is_contiguous(np))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "rope: pos %s for x %s: want a contiguous i32 [%lld%s]",
                               vki__shape_str(np, sp), vki__shape_str(nx, sx), (long long)nx->ne[2],
                               streams == 1 ? "] (one per token" : ", 4] (4 streams per token");
    if (p->n_rot % 2 != 0 || p->n_rot > nx->ne[0])
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "rope: x %s: n_rot %u must be even and at most head_dim %lld",
                               vki__shape_str(nx, sx), p->n_rot, (long long)nx->ne[0]);
    if ((unsigned)p->mode >= VKI_ROPE_MODE_COUNT || multi(p->mode) != (streams == 4) || !(p->base > 0.0f))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "rope: x %s: bad mode %d or base %g (vki_rope takes NORMAL and NEOX, "
                               "vki_rope_multi MROPE and VISION)",
                               vki__shape_str(nx, sx), (int)p->mode, (double)p->base);
    vki_tensor t = vki__new_op(g, &vki_op_rope, nx->dtype, nx->ndim, nx->ne, 2, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, p, sizeof *p);
    return t;
}

vki_tensor vki_rope(vki_graph *g, vki_tensor x, vki_tensor pos, uint32_t n_rot, vki_rope_mode mode,
                    float base, float freq_scale)
{
    vki_rope_params p = {.n_rot = n_rot, .mode = mode, .base = base, .freq_scale = freq_scale};
    return rope_node(g, x, pos, &p, 1);
}

vki_tensor vki_rope_multi(vki_graph *g, vki_tensor x, vki_tensor pos, uint32_t n_rot,
                          vki_rope_mode mode, const uint32_t sections[4], float base, float freq_scale)
{
    if (!sections) return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "rope_multi: no sections");
    vki_rope_params p = {.n_rot = n_rot, .mode = mode, .base = base, .freq_scale = freq_scale};
    uint64_t sum = 0;
    for (int k = 0; k < 4; k++) sum += p.sections[k] = sections[k];
    // transformers splits exactly n_rot / 2 frequencies into the sections; a remainder would
    // need a rule (ggml wraps it round to stream 0) that no model uses, so it is refused.
    if (sum != n_rot / 2 || n_rot == 0)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "rope_multi: sections {%u, %u, %u, %u} must add up to n_rot / 2 = %u",
                               sections[0], sections[1], sections[2], sections[3], n_rot / 2);
    return rope_node(g, x, pos, &p, 4);
}

float vki__rope_log2_step(float base, uint32_t n_rot)
{
    // In double, so that the step carries one rounding, not those of log2 and divide.
    return n_rot ? (float)(2.0 * log2((double)base) / n_rot) : 0.0f;
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    vki_rope_params p = vki__rope_params(n);
    int64_t n_rot = p.n_rot, half = n_rot / 2;
    bool neox = p.mode != VKI_ROPE_NORMAL;
    for (int64_t i3 = 0; i3 < n->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < n->ne[2]; i2++) {
            for (int64_t i1 = 0; i1 < n->ne[1]; i1++) {
                for (int64_t i = 0; i < half; i++) {
                    // Section k of pair i, its first pair s_k (vkinfer_graph.h's formula).
                    int64_t k = 0, s_k = 0, j = i, dim = n_rot;
                    if (multi(p.mode)) {
                        while (k < 3 && i >= s_k + p.sections[k]) s_k += p.sections[k++];
                        if (p.mode == VKI_ROPE_VISION) j = i - s_k, dim = half;
                    }
                    double pos = vki_ref_get(&s[1], i2, k, 0, 0);
                    double theta = pos * p.freq_scale * pow(p.base, -2.0 * (double)j / (double)dim);
                    int64_t c0 = neox ? i : 2 * i, c1 = neox ? i + half : 2 * i + 1;
                    double x0 = vki_ref_get(&s[0], c0, i1, i2, i3), x1 = vki_ref_get(&s[0], c1, i1, i2, i3);
                    vki_ref_set(d, c0, i1, i2, i3, (float)(x0 * cos(theta) - x1 * sin(theta)));
                    vki_ref_set(d, c1, i1, i2, i3, (float)(x0 * sin(theta) + x1 * cos(theta)));
                }
                for (int64_t c = n_rot; c < n->ne[0]; c++)
                    vki_ref_set(d, c, i1, i2, i3, vki_ref_get(&s[0], c, i1, i2, i3));
            }
        }
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    VKI_TRY(vki_lower_need_storage16(L, n, n->dtype == VKI_DTYPE_F16));
    uint32_t self = vki_lower_self(L);
    vki_operand x = vki_lower_operand(L, n->src[0]), d = vki_lower_operand(L, self);
    vki_rope_params rp = vki__rope_params(n);
    uint32_t n_rot = rp.n_rot;
    vki_pc_rope pc = {
        .ne0 = d.ne[0], .ne1 = d.ne[1], .ne2 = d.ne[2], .ne3 = d.ne[3],
        .x_off = x.offset, .x_nb0 = x.nb[0], .x_nb1 = x.nb[1], .x_nb2 = x.nb[2], .x_nb3 = x.nb[3],
        .p_off = vki_lower_operand(L, n->src[1]).offset, .d_off = d.offset,
        .n_rot = n_rot, .mode = rp.mode, .freq_scale = rp.freq_scale,
        .log2_step = vki__rope_log2_step(rp.base, rp.mode == VKI_ROPE_VISION ? n_rot / 2 : n_rot),
        // Where sections 1..3 start (pairs); only the multi-section modes read them.
        .sec1 = rp.sections[0], .sec2 = rp.sections[0] + rp.sections[1],
        .sec3 = rp.sections[0] + rp.sections[1] + rp.sections[2],
    };
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, p->tuning.workgroup_size};
    uint32_t tensors[3] = {n->src[0], n->src[1], self};
    vki_step_desc s = {
        .kernel = n->dtype == VKI_DTYPE_F16 ? "rope_f16" : "rope_f32",
        .specs = &spec, .spec_count = 1,
        .tensors = tensors, .tensor_count = 3, .write_mask = 1u << 2,
        .push = &pc, .push_size = sizeof pc,
    };
    // One invocation per rotated pair or passed-through element.
    uint64_t per_row = d.ne[0] - n_rot / 2;
    vki_lower_grid(per_row * d.ne[1] * d.ne[2] * d.ne[3], spec.value, s.groups);
    return vki_lower_step(L, &s);
}

const vki_op_def vki_op_rope = {.name = "rope", .reference = reference, .lower = lower};
