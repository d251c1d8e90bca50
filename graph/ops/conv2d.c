/* conv2d: 2-D convolution of NCHW images, x [W, H, Cin, N] * w [k, k, Cin, Cout] (+ b [Cout])
 * -> [W', H', Cout, N] with W' = (W + left + right - k) / stride + 1 (likewise H' with top and
 * bottom), zero padding. Only the left and top pads move where an output pixel reads; the right
 * and bottom pads only decide how many outputs there are (the kernel reads zeros past the
 * image's edge whatever the pad), so the kernel takes two pads.
 * Lowered as an implicit GEMM (conv2d.comp) on the tuning's matmul tiles; fp32 sums. On devices
 * with cooperative matrices, f16 weights and large products, the implicit GEMM on them
 * (conv2d_coopmat.comp, operands rounded to fp16, which the step declares). Barrier-free
 * tunings with texel loads (lavapipe) run conv2d_rows.comp instead, where its weight layout
 * allows (every dense one but f16 with an odd number of elements per output channel).
 *
 * Fused (fuse and absorb below): conv2d(upsample2x(x)) reads x at half the coordinates instead
 * of a 4x larger copy (a decoder's upsampling block), and add(conv2d(.), r) adds r as it writes
 * (a resnet's residual): a pass over memory each, and the upsampled copy's storage.
 *
 * Node: src {x, w, b or 0, r or 0}; parameters conv2d_params. */
#include "matmul_internal.h"
#include "vki_abi.h"

#include <stdio.h>

const vki_op_def vki_op_conv2d;
extern const vki_op_def vki_op_upsample; // upsample.c

/* The node's parameters. */
typedef struct conv2d_params {
    uint32_t stride;   // 1 or 2
    vki_conv2d_pad pad; // zeros on each side
    bool up2;          // fused: x is the source of an upsample2x (the node's x is twice its size)
} conv2d_params;
static_assert(sizeof(conv2d_params) <= VKI_PARAMS_BYTES, "node parameter bytes");

static conv2d_params params(const vki_node *n)
{
    conv2d_params p;
    vki__params_get(n, &p, sizeof p);
    return p;
}

static bool is_float(vki_dtype t) { return t == VKI_DTYPE_F32 || t == VKI_DTYPE_F16; }

vki_tensor vki_conv2d_padded(vki_graph *g, vki_tensor x, vki_tensor w, vki_tensor b, uint32_t stride,
                             vki_conv2d_pad pad)
{
    vki_tensor srcs[3] = {x, w, b};
    if (!vki__check_srcs(g, "conv2d", b.id ? 3 : 2, srcs)) return (vki_tensor){0};
    const vki_node *nx = vki__node(g, x), *nw = vki__node(g, w), *nb = b.id ? vki__node(g, b) : NULL;
    char sx[96], sw[96], sb[96];
    vki__shape_str(nx, sx);
    vki__shape_str(nw, sw);
    int64_t k = nw->ne[0], cout = nw->ne[3];
    if (!is_float(nx->dtype) || !is_float(nw->dtype) || (k != 1 && k != 3) || nw->ne[1] != k ||
        nw->ne[2] != nx->ne[2])
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "conv2d: x %s, w %s: want f32/f16 x [W, H, Cin, N] and "
                               "w [k, k, Cin, Cout] with k 1 or 3", sx, sw);
    if (nb && (nb->dtype != VKI_DTYPE_F32 || nb->ne[0] != cout || vki__nelements(nb) != cout))
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT, "conv2d: b %s for w %s: want f32 [%lld]",
                               vki__shape_str(nb, sb), sw, (long long)cout);
    // The padded image; pads past 2^16 are refused so that the kernel's int arithmetic is exact.
    int64_t pw = nx->ne[0] + (int64_t)pad.left + pad.right, ph = nx->ne[1] + (int64_t)pad.top + pad.bottom;
    bool pads_ok = pad.left <= 0xffff && pad.right <= 0xffff && pad.top <= 0xffff && pad.bottom <= 0xffff;
    if ((stride != 1 && stride != 2) || !pads_ok || pw < k || ph < k)
        return vki__graph_fail(g, VKI_ERROR_INVALID_ARGUMENT,
                               "conv2d: x %s, w %s, stride %u, pad left %u right %u top %u bottom %u: "
                               "want stride 1 or 2, pads below 65536 and a padded image at least as "
                               "large as the kernel", sx, sw, stride, pad.left, pad.right, pad.top,
                               pad.bottom);
    int64_t ne[4] = {(pw - k) / stride + 1, (ph - k) / stride + 1, cout, nx->ne[3]};
    vki_tensor t = vki__new_op(g, &vki_op_conv2d, VKI_DTYPE_F32, 4, ne, 3, srcs);
    vki_node *n = vki__node_mut(g, t);
    if (n) vki__params_set(n, &(conv2d_params){.stride = stride, .pad = pad}, sizeof(conv2d_params));
    return t;
}

vki_tensor vki_conv2d(vki_graph *g, vki_tensor x, vki_tensor w, vki_tensor b, uint32_t stride,
                      uint32_t pad)
{
    return vki_conv2d_padded(g, x, w, b, stride,
                             (vki_conv2d_pad){.left = pad, .right = pad, .top = pad, .bottom = pad});
}

static void reference(const vki_node *n, const vki_ref_tensor *d, const vki_ref_tensor *s)
{
    const vki_ref_tensor *x = &s[0], *w = &s[1];
    conv2d_params p = params(n);
    int64_t k = w->ne[0], stride = p.stride, left = p.pad.left, top = p.pad.top, up = p.up2 ? 2 : 1;
    for (int64_t img = 0; img < n->ne[3]; img++)
        for (int64_t co = 0; co < n->ne[2]; co++)
            for (int64_t oy = 0; oy < n->ne[1]; oy++)
                for (int64_t ox = 0; ox < n->ne[0]; ox++) {
                    double acc = n->src[2] ? vki_ref_get(&s[2], co, 0, 0, 0) : 0.0;
                    if (n->src[3]) acc += vki_ref_get(&s[3], ox, oy, co, img);
                    for (int64_t ci = 0; ci < x->ne[2]; ci++)
                        for (int64_t ky = 0; ky < k; ky++)
                            for (int64_t kx = 0; kx < k; kx++) {
                                int64_t iy = oy * stride - top + ky, ix = ox * stride - left + kx;
                                if (iy < 0 || ix < 0 || iy >= up * x->ne[1] || ix >= up * x->ne[0]) continue;
                                acc += (double)vki_ref_get(x, ix / up, iy / up, ci, img) *
                                       vki_ref_get(w, kx, ky, ci, co);
                            }
                    vki_ref_set(d, ox, oy, co, img, (float)acc);
                }
}

static uint32_t floor_pow2(uint32_t v)
{
    uint32_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

/* Workgroup tile m x n (channels x pixels), its k slice and the per-invocation register tile
 * rm x rn; threads = (m / rm) (n / rn). */
typedef struct conv_tiles {
    uint32_t m, n, k, rm, rn, threads;
} conv_tiles;

/* The tuning's matmul tile, narrowed where the problem is smaller (4 channels would leave most
 * of a 128-row tile idle); for the shared variant its k slice, then its sides, halved until the
 * two slices fit the shared memory. The tile is split over the workgroup in register tiles of
 * about equal sides. Powers of two throughout, so every division is exact. */
static conv_tiles pick_tiles(const vki_profile *p, uint32_t cout, uint64_t pixels, bool shared)
{
    const vki_tuning *tu = &p->tuning;
    conv_tiles t = {.m = floor_pow2(tu->matmul_tile_m), .n = floor_pow2(tu->matmul_tile_n),
                    .k = floor_pow2(tu->matmul_tile_k)};
    while (t.m > 8 && t.m / 2 >= cout) t.m /= 2;
    while (t.n > 8 && t.n / 2 >= pixels) t.n /= 2;
    while (shared && 4ull * t.k * (t.m + 1 + t.n) > p->shared_memory && t.m * t.n > 1) {
        if (t.k > 4) t.k /= 2;
        else if (t.m >= t.n) t.m /= 2;
        else t.n /= 2;
    }
    uint32_t wg = floor_pow2(tu->workgroup_size ? tu->workgroup_size : 64);
    uint32_t per = t.m * t.n > wg ? t.m * t.n / wg : 1;
    t.rm = 1;
    while (t.rm * t.rm * 4 <= per) t.rm *= 2;
    t.rn = per / t.rm;
    if (t.rn > t.n) {
        t.rn = t.n;
        t.rm = per / t.rn;
    }
    if (t.rm > t.m) {
        t.rm = t.m;
        t.rn = per / t.rm;
    }
    t.threads = (t.m / t.rm) * (t.n / t.rn);
    return t;
}

/* conv2d_rows.comp's register tiles (ROWS and COLS in shaders/variants.txt): 64 output
 * channels x 16 pixels per lane (SD 3x3 64x64x320 on lavapipe, GFLOP/s, machine loaded: 4x4
 * 1.7, 8x4 3.3, 16x8 4.0-4.5, 32x8 5.0-6.3, 64x8 6.5, 32x16 7.2; nearly idle: 32x16 38.7,
 * 64x16 54.3, 64x32 57.5-58.8, not worth its 256-pixel tiles: every weight and x value is a
 * gather there, and a bigger tile reuses each more), or 4 channels where there are few (an
 * image's 3 or a latent's 4: 64 would compute 16 times as many). */
#define ROWS_MANY 64
#define ROWS_FEW 4
#define ROWS_COLS 16

#define TX_REGS 4 // conv2d_regs_tx's register tile side (REGS in shaders/variants.txt)

/* Cooperative matrices (conv2d_coopmat.comp) by matmul.c's rules and plan (vki__coopmat_usable,
 * vki__coopmat_plan): f16 weights (fp16 holds them; f32 ones keep their precision) and at least
 * VKI_COOPMAT_MIN_TILES of the tuning's tiles. The implicit GEMM: M = Cout, N = pixels,
 * K = Cin k k. */
static vki_status lower_coopmat(vki_lower *L, const vki_node *n, const vki_pc_conv2d *pc,
                                uint32_t ksize, const uint32_t tensors[5])
{
    const vki_profile *p = vki_lower_profile(L);
    vki_coopmat_plan c;
    if (!vki__coopmat_plan(p, pc->cout, pc->pixels, 1, &c))
        return vki_lower_fail(L, n, VKI_ERROR_INVALID_ARGUMENT,
                              "tuning %s: coopmat tile %ux%ux%u (%llu bytes of shared memory, "
                              "fragment %ux%ux%u) does not fit the device", p->tuning.name, c.tm, c.tn, c.tk,
                              (unsigned long long)c.shared, c.fm, c.fn, c.fk);
    uint32_t groups[2] = {(uint32_t)vki_div_up(pc->pixels, c.tn), (uint32_t)vki_div_up(pc->cout, c.tm)};
    if (groups[0] > p->max_workgroup_count[0] || groups[1] > p->max_workgroup_count[1])
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%u x %u workgroups exceed the device's grid",
                              groups[0], groups[1]);
    vki_spec specs[11] = {
        {VKI_SPEC_LOCAL_SIZE_X, c.subgroups * p->subgroup_size}, {VKI_CONV_SPEC_KSIZE, ksize},
        {VKI_CONV_SPEC_TILE_M, c.tm}, {VKI_CONV_SPEC_TILE_N, c.tn}, {VKI_CONV_SPEC_TILE_K, c.tk},
        {VKI_CONV_SPEC_REG_M, c.sub_m / c.fm}, {VKI_CONV_SPEC_REG_N, c.sub_n / c.fn},
        {VKI_SPEC_MM_FRAG_M, c.fm}, {VKI_SPEC_MM_FRAG_N, c.fn}, {VKI_SPEC_MM_FRAG_K, c.fk},
        {VKI_SPEC_MM_BUFFERS, c.buffers},
    };
    char kernel[32];
    snprintf(kernel, sizeof kernel, "conv2d_%s", c.suffix);
    vki_step_desc s = {
        .kernel = kernel,
        .specs = specs, .spec_count = 11,
        .subgroup_size = p->subgroup_size_control ? p->subgroup_size : 0,
        .tensors = tensors, .tensor_count = 5, .write_mask = 1u << VKI_CONV_BINDING_OUT,
        .push = pc, .push_size = sizeof *pc,
        .groups = {groups[0], groups[1], 1},
        .fp16_operands = true,
    };
    return vki_lower_step(L, &s);
}

static vki_status lower(vki_lower *L, const vki_node *n)
{
    const vki_profile *p = vki_lower_profile(L);
    uint32_t self = vki_lower_self(L), bias_id = n->src[2] ? n->src[2] : n->src[1];
    uint32_t res_id = n->src[3] ? n->src[3] : n->src[1];
    bool up2 = params(n).up2;
    const vki_node *nx = vki_lower_node(L, n->src[0]), *nw = vki_lower_node(L, n->src[1]);
    vki_operand x = vki_lower_operand(L, n->src[0]), w = vki_lower_operand(L, n->src[1]);
    vki_operand b = vki_lower_operand(L, bias_id), d = vki_lower_operand(L, self);
    uint64_t pixels = (uint64_t)d.ne[0] * d.ne[1] * d.ne[3];
    if (pixels > UINT32_MAX)
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "more than 2^32 output pixels");
    vki_pc_conv2d pc = {
        .w = x.ne[0] << up2, .h = x.ne[1] << up2, .cin = x.ne[2], .cout = d.ne[2], .ow = d.ne[0], .oh = d.ne[1],
        .pixels = (uint32_t)pixels, .stride = params(n).stride, .pad_x = params(n).pad.left,
        .pad_y = params(n).pad.top,
        .x_off = x.offset, .x_nb0 = x.nb[0], .x_nb1 = x.nb[1], .x_nb2 = x.nb[2], .x_nb3 = x.nb[3],
        .w_off = w.offset, .w_nb0 = w.nb[0], .w_nb1 = w.nb[1], .w_nb2 = w.nb[2], .w_nb3 = w.nb[3],
        .b_off = b.offset, .d_off = d.offset,
        .flags = (n->src[2] ? VKI_CONV_HAS_BIAS : 0) |
                 (nx->dtype == VKI_DTYPE_F16 ? VKI_CONV_X_F16 : 0) |
                 (nw->dtype == VKI_DTYPE_F16 ? VKI_CONV_W_F16 : 0) | (up2 ? VKI_CONV_UP2 : 0) |
                 (n->src[3] ? VKI_CONV_RESIDUAL : 0),
    };
    if (n->src[3]) { // strides in elements; 0 along the dims r broadcasts
        vki_operand r = vki_lower_operand(L, n->src[3]);
        pc.r_off = r.offset;
        pc.r_nb0 = r.ne[0] == 1 ? 0 : r.nb[0], pc.r_nb1 = r.ne[1] == 1 ? 0 : r.nb[1];
        pc.r_nb2 = r.ne[2] == 1 ? 0 : r.nb[2], pc.r_nb3 = r.ne[3] == 1 ? 0 : r.nb[3];
    }
    if (nw->dtype == VKI_DTYPE_F16 && vki__coopmat_usable(p, pc.cout, pixels, 1)) {
        uint32_t tensors[5] = {n->src[0], n->src[1], bias_id, self, res_id};
        return lower_coopmat(L, n, &pc, (uint32_t)w.ne[0], tensors);
    }
    bool shared = p->tuning.conv2d_shared, texel = !shared && p->tuning.texel_loads;
    bool w16 = nw->dtype == VKI_DTYPE_F16;
    uint32_t k = (uint32_t)w.ne[0];
    bool w_dense = w.nb[0] == 1 && w.nb[1] == k && w.nb[2] == k * k &&
                   (!w16 || (w.offset % 2 == 0 && w.nb[3] % 2 == 0));
    if (texel && p->tuning.subgroup_size && w_dense) { // conv2d_rows: one SIMD group per workgroup
        bool few = pc.cout <= 16;
        uint32_t lanes = p->tuning.subgroup_size, rows = few ? ROWS_FEW : ROWS_MANY;
        uint64_t gx = vki_div_up(pixels, (uint64_t)lanes * ROWS_COLS);
        uint32_t gy = (pc.cout + rows - 1) / rows;
        if (gx > p->max_workgroup_count[0] || gy > p->max_workgroup_count[1])
            return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%llu x %u workgroups exceed the device's grid",
                                  (unsigned long long)gx, gy);
        char kernel[32];
        snprintf(kernel, sizeof kernel, "conv2d_rows_k%u_%c%s", k, w16 ? 'h' : 'f', few ? "_few" : "");
        vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, lanes};
        uint32_t tensors[5] = {n->src[0], n->src[1], bias_id, self, res_id};
        vki_step_desc s = {
            .kernel = kernel, .specs = &spec, .spec_count = 1,
            .tensors = tensors, .tensor_count = 5, .write_mask = 1u << VKI_CONV_BINDING_OUT,
            .push = &pc, .push_size = sizeof pc,
            .groups = {(uint32_t)gx, gy, 1},
        };
        return vki_lower_step(L, &s);
    }
    conv_tiles t = pick_tiles(p, pc.cout, pixels, shared);
    if (texel) { // conv2d_regs_tx: register tiles fixed in the kernel
        t.rm = t.rn = TX_REGS;
        t.threads = (t.m / TX_REGS) * (t.n / TX_REGS);
    }
    uint32_t groups[2] = {(uint32_t)((pixels + t.n - 1) / t.n), (pc.cout + t.m - 1) / t.m};
    if (groups[0] > p->max_workgroup_count[0] || groups[1] > p->max_workgroup_count[1])
        return vki_lower_fail(L, n, VKI_ERROR_UNSUPPORTED, "%u x %u workgroups exceed the device's grid",
                              groups[0], groups[1]);
    vki_spec specs[7] = {
        {VKI_SPEC_LOCAL_SIZE_X, t.threads}, {VKI_CONV_SPEC_KSIZE, w.ne[0]}, {VKI_CONV_SPEC_TILE_M, t.m},
        {VKI_CONV_SPEC_TILE_N, t.n}, {VKI_CONV_SPEC_TILE_K, t.k},
        {VKI_CONV_SPEC_REG_M, t.rm}, {VKI_CONV_SPEC_REG_N, t.rn}, // not in conv2d_regs_tx
    };
    uint32_t tensors[5] = {n->src[0], n->src[1], bias_id, self, res_id};
    vki_step_desc s = {
        // texel_loads: x and w as texel buffers (the profile has checked that views cover any
        // binding).
        .kernel = shared ? "conv2d_tiled" : texel ? "conv2d_regs_tx" : "conv2d_regs",
        .specs = specs, .spec_count = texel ? 5 : 7,
        .tensors = tensors, .tensor_count = 5, .write_mask = 1u << VKI_CONV_BINDING_OUT,
        .push = &pc, .push_size = sizeof pc,
        .groups = {groups[0], groups[1], 1},
    };
    return vki_lower_step(L, &s);
}

/* n is an f32 of shape ne, or one that broadcasts to it (dims of 1), read by strides. */
static bool addable_f32(const vki_node *n, const int64_t ne[4])
{
    if (n->dtype != VKI_DTYPE_F32) return false;
    for (int d = 0; d < 4; d++)
        if (n->ne[d] != ne[d] && n->ne[d] != 1) return false;
    return true;
}

/* The fuse hook: conv2d(upsample2x(x)) -> conv2d of x read upsampled, where only the conv reads
 * the upsampled image (and x is f32 or f16, as conv2d takes). */
static bool fuse(vki_fusion *f, uint32_t id)
{
    vki_node *c = &f->w->nodes[id];
    uint32_t u_id = c->src[0];
    const vki_node *u = &f->w->nodes[u_id];
    if (params(c).up2 || u->kind != VKI_NODE_OP || u->op != &vki_op_upsample || u->output ||
        f->uses[u_id] != 1)
        return false;
    const vki_node *x = &f->w->nodes[u->src[0]];
    if (x->dtype != VKI_DTYPE_F32 && x->dtype != VKI_DTYPE_F16) return false;
    conv2d_params p = params(c);
    p.up2 = true;
    vki__params_set(c, &p, sizeof p);
    c->src[0] = u->src[0]; // x's use moves from the upsample to the conv: its count stands
    f->uses[u_id] = 0;
    return true;
}

/* The absorb hook: add(conv2d(.), r) or add(r, conv2d(.)) -> conv2d(.) + r as it writes, r an
 * f32 of the result's shape (a resnet's residual) or one that broadcasts to it (the U-Net's
 * time embedding [1, 1, C, N]), any strides. */
static bool absorb(vki_fusion *f, uint32_t y_id, uint32_t x_id)
{
    const vki_node *x = &f->w->nodes[x_id], *y = &f->w->nodes[y_id];
    if (x->op != &vki_op_binary || vki__binary_params(x).op != VKI_BINARY_ADD || y->src[3] ||
        !x->src[1] || (x->src[0] == y_id) == (x->src[1] == y_id) || !vki__fusion_single_use(f, y_id, x_id))
        return false;
    uint32_t r_id = x->src[0] == y_id ? x->src[1] : x->src[0];
    if (!addable_f32(&f->w->nodes[r_id], y->ne)) return false;
    vki__fusion_fold(f, x_id, y_id, 3, r_id);
    return true;
}

const vki_op_def vki_op_conv2d = {
    .name = "conv2d",
    .reference = reference,
    .lower = lower,
    .fuse = fuse,
    .absorb = absorb,
};
