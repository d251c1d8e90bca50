/* Stable Diffusion's VAE (AutoencoderKL, "kl-f8", as ldm's first_stage_model holds it): the
 * decoder turns a latent into an image, the encoder an image into the posterior's mean.
 *
 *   decode: post_quant_conv (1x1), conv_in, mid (resnet, attention over all pixels, resnet), up
 *           blocks from the deepest (resnets, each level but the last ending in nearest x2 + a
 *           3x3 conv), group norm + SiLU + conv_out.
 *   encode: conv_in, down blocks (resnets, each level but the last ending in a 3x3 stride-2
 *           conv over the image padded by one on the right and bottom), mid, group norm +
 *           SiLU + conv_out to mean and log-variance, quant_conv (1x1); the mean is the first
 *           half of the channels.
 *
 * Resnets are norm1 + SiLU + conv1, norm2 + SiLU + conv2, plus the input through a 1x1
 * nin_shortcut when the channel count changes. Group norms have 32 groups and eps 1e-6. The
 * attention is one head as wide as the channels (512 in SD), wider than vki_attention's 256, so
 * it is matmul + softmax + matmul in F32.
 *
 * Every shape is read from the tensors: channel counts, levels, resnets per level, latent and
 * image channels, and so the scale factor (2 per up- or downsampling level: 8 for SD).
 *
 * Images larger than one program can hold are run in overlapping tiles of the latent, blended
 * linearly across the overlaps: group norm and attention see one tile at a time, so a tiled
 * result is close to, not equal to, an untiled one, and the overlap hides the seams. The tile is
 * the largest whose biggest activation fits one binding (maxStorageBufferRange) and whose
 * activation arena fits half the device's memory budget, unless the caller gives one. */
#include "sd_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define GROUPS 32
#define NORM_EPS 1e-6f
#define MAX_SIDE 16384 // latent tile or image side, and a bound that keeps every size in range
#define PROGRAMS 2     // cached programs per direction (a few tile shapes per image)

/* A compiled program for one tile shape, input [w, h, c, 1] -> output [w', h', c', 1]. */
typedef struct vae_prog {
    vki_program *prog;
    uint32_t w, h; // latent tile
    vki_tensor in, out;
    uint64_t used; // the call that last used it (least recently used is replaced)
} vae_prog;

struct vki_vae {
    vki_allocator allocator;
    vki_device *device;
    const vki_profile *profile;
    vki_weight_source source;
    char prefix[96];
    vki_vae_info info;
    uint32_t enc_out; // encoder channels before the mean is taken (2 x latent)
    uint32_t tile;    // desc.tile
    uint32_t picked[2][3]; // per direction: the latent w, h and the tile last picked for them
    vki_weights *weights;
    vae_prog dec[PROGRAMS], enc[PROGRAMS];
    uint64_t calls, peak;
    char error[512];
};

/* What a graph is being built for. */
typedef struct build {
    vki_vae *v;
    vki_program *p;
    vki_graph *g;
} build;

static const vki_allocator *alloc_of(const vki_vae *v) { return v->allocator.alloc ? &v->allocator : NULL; }

static void set_error(vki_vae *v, const char *fmt, ...) VKI_PRINTF(2, 3);
static void set_error(vki_vae *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->error, sizeof v->error, fmt, ap);
    va_end(ap);
}

/* The source's tensor `prefix + base + suffix`, or NULL-named (absent) when *out->name is 0. */
static bool source_find(const vki_vae *v, const char *base, const char *suffix, vki_source_tensor *out)
{
    char name[320];
    snprintf(name, sizeof name, "%s%s%s", v->prefix, base, suffix);
    return v->source.find(v->source.file, name, out) != VKI_ERROR_NOT_FOUND;
}

static bool has(const vki_vae *v, const char *base, const char *suffix)
{
    vki_source_tensor t;
    return source_find(v, base, suffix, &t);
}

static int64_t dim(const build *b, vki_tensor t, uint32_t d)
{
    vki_tensor_info info;
    return vki_tensor_get_info(b->g, t, &info) ? info.ne[d] : 0;
}

/* Weight `base.suffix` checked against ne (entries < 0 unchecked). */
static vki_tensor weight(build *b, const char *base, const char *suffix, uint32_t ndim, const int64_t *ne)
{
    char name[320];
    snprintf(name, sizeof name, "%s%s.%s", b->v->prefix, base, suffix);
    return vki_weights_tensor(b->v->weights, b->p, name, ndim, ne, false, true);
}

/* BF16 weights as F32 (conv2d and group norm take F32 or F16); with `f32`, F16 too (biases). */
static vki_tensor floats(build *b, vki_tensor t, bool f32)
{
    vki_tensor_info info;
    if (!vki_tensor_get_info(b->g, t, &info) || info.dtype == VKI_DTYPE_F32) return t;
    if (info.dtype == VKI_DTYPE_F16 && !f32) return t;
    return vki_cast(b->g, t, VKI_DTYPE_F32);
}

/* k x k convolution `base` (weight [k, k, Cin, Cout], bias [Cout]) of x [W, H, Cin, 1]. */
static vki_tensor conv(build *b, vki_tensor x, const char *base, uint32_t k, uint32_t stride,
                       vki_conv2d_pad pad)
{
    vki_tensor w = weight(b, base, "weight", 4, (int64_t[4]){k, k, dim(b, x, 2), -1});
    vki_tensor bias = weight(b, base, "bias", 1, (int64_t[1]){dim(b, w, 3)});
    return vki_conv2d_padded(b->g, x, floats(b, w, false), floats(b, bias, true), stride, pad);
}

static const vki_conv2d_pad SAME = {1, 1, 1, 1}, NONE = {0, 0, 0, 0};

static vki_tensor norm(build *b, vki_tensor x, const char *base)
{
    int64_t c = dim(b, x, 2);
    vki_tensor w = floats(b, weight(b, base, "weight", 1, &c), false);
    vki_tensor bias = floats(b, weight(b, base, "bias", 1, &c), false);
    return vki_group_norm(b->g, x, GROUPS, w, bias, NORM_EPS);
}

static vki_tensor resnet(build *b, vki_tensor x, const char *base)
{
    char n[192];
    snprintf(n, sizeof n, "%s.norm1", base);
    vki_tensor h = vki_silu(b->g, norm(b, x, n));
    snprintf(n, sizeof n, "%s.conv1", base);
    h = conv(b, h, n, 3, 1, SAME);
    snprintf(n, sizeof n, "%s.norm2", base);
    h = vki_silu(b->g, norm(b, h, n));
    snprintf(n, sizeof n, "%s.conv2", base);
    h = conv(b, h, n, 3, 1, SAME);
    if (has(b->v, base, ".nin_shortcut.weight")) {
        snprintf(n, sizeof n, "%s.nin_shortcut", base);
        x = conv(b, x, n, 1, 1, NONE);
    } else if (has(b->v, base, ".conv_shortcut.weight")) {
        snprintf(n, sizeof n, "%s.conv_shortcut", base);
        x = conv(b, x, n, 3, 1, SAME);
    } else if (vki_weights_status(b->v->weights) == VKI_OK && dim(b, x, 2) != dim(b, h, 2)) {
        set_error(b->v, "vae: %s%s turns %lld channels into %lld but has no nin_shortcut",
                  b->v->prefix, base, (long long)dim(b, x, 2), (long long)dim(b, h, 2));
        return (vki_tensor){0};
    }
    return vki_add(b->g, x, h);
}

/* A 1x1 projection of the attention as a [Cin, Cout] matrix: stored [C, C, 1, 1] (the original
 * layout) or [C, C] (some conversions store them as linear layers). */
static vki_tensor projection(build *b, const char *base, int64_t c)
{
    vki_source_tensor t;
    bool flat = source_find(b->v, base, ".weight", &t) && t.n_dims == 2;
    vki_tensor w = flat ? weight(b, base, "weight", 2, (int64_t[2]){c, c})
                        : weight(b, base, "weight", 4, (int64_t[4]){1, 1, c, c});
    if (!flat) w = vki_reshape(b->g, w, 2, (int64_t[2]){c, c});
    return floats(b, w, false);
}

/* Single-head self-attention over the W H pixels of x, C wide, plus x. */
static vki_tensor attention(build *b, vki_tensor x, const char *base)
{
    vki_graph *g = b->g;
    char n[192];
    int64_t w = dim(b, x, 0), h = dim(b, x, 1), c = dim(b, x, 2), px = w * h;
    snprintf(n, sizeof n, "%s.norm", base);
    vki_tensor hn = norm(b, x, n);
    // Pixels by channel [N, C] -> channel-major [C, N], the layout q k^T reduces over.
    vki_tensor ht = vki_copy(g, vki_transpose(g, vki_reshape(g, hn, 2, (int64_t[2]){px, c})), 0);
    vki_tensor proj[3];
    vki_tensor bias[3];
    const char *names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s.%s", base, names[i]);
        proj[i] = projection(b, n, c);
        bias[i] = floats(b, weight(b, n, "bias", 1, &c), true);
    }
    vki_tensor qt = vki_add(g, vki_matmul(g, proj[0], ht), bias[0]); // [C, Nq]
    vki_tensor kt = vki_add(g, vki_matmul(g, proj[1], ht), bias[1]); // [C, Nk]
    // v pixel-major [Nk, C]: the second product reduces over the keys, v's contiguous dim.
    vki_tensor vn = vki_add(g, vki_matmul(g, ht, proj[2]), vki_reshape(g, bias[2], 2, (int64_t[2]){1, c}));
    vki_tensor s = vki_matmul(g, kt, qt);                                 // [Nk, Nq]
    s = vki_softmax(g, s, (vki_tensor){0}, 1.0f / sqrtf((float)c), false); // over the keys
    vki_tensor o = vki_matmul(g, s, vn);                                  // [Nq, C], x's layout
    o = vki_reshape(g, o, 4, (int64_t[4]){w, h, c, 1});
    snprintf(n, sizeof n, "%s.proj_out", base);
    vki_tensor pw = projection(b, n, c);
    vki_tensor pb = floats(b, weight(b, n, "bias", 1, &c), true);
    o = vki_conv2d(g, o, vki_reshape(g, pw, 4, (int64_t[4]){1, 1, c, c}), pb, 1, 0);
    return vki_add(g, x, o);
}

static vki_tensor mid(build *b, vki_tensor x, const char *part)
{
    char n[192];
    snprintf(n, sizeof n, "%s.mid.block_1", part);
    x = resnet(b, x, n);
    snprintf(n, sizeof n, "%s.mid.attn_1", part);
    x = attention(b, x, n);
    snprintf(n, sizeof n, "%s.mid.block_2", part);
    return resnet(b, x, n);
}

/* The resnets (and attentions, where a level has them) of level `lvl` of part.up or .down. */
static vki_tensor level(build *b, vki_tensor x, const char *part, uint32_t lvl)
{
    char n[192];
    for (uint32_t i = 0; i < 64 && vki_graph_status(b->g) == VKI_OK; i++) {
        snprintf(n, sizeof n, "%s.%u.block.%u", part, lvl, i);
        if (!has(b->v, n, ".norm1.weight")) break;
        x = resnet(b, x, n);
        snprintf(n, sizeof n, "%s.%u.attn.%u", part, lvl, i);
        if (has(b->v, n, ".norm.weight")) x = attention(b, x, n);
    }
    return x;
}

static vki_tensor tail(build *b, vki_tensor x, const char *part)
{
    char n[192];
    snprintf(n, sizeof n, "%s.norm_out", part);
    x = vki_silu(b->g, norm(b, x, n));
    snprintf(n, sizeof n, "%s.conv_out", part);
    return conv(b, x, n, 3, 1, SAME);
}

/* latent [w, h, z, 1] -> image [w s, h s, 3, 1]. */
static vki_tensor decoder(build *b, vki_tensor x)
{
    const vki_vae_info *in = &b->v->info;
    char n[192];
    if (has(b->v, "post_quant_conv", ".weight")) x = conv(b, x, "post_quant_conv", 1, 1, NONE);
    x = conv(b, x, "decoder.conv_in", 3, 1, SAME);
    x = mid(b, x, "decoder");
    for (uint32_t l = in->levels; l-- > 0;) {
        x = level(b, x, "decoder.up", l);
        snprintf(n, sizeof n, "decoder.up.%u.upsample.conv", l);
        if (has(b->v, n, ".weight")) x = conv(b, vki_upsample2x(b->g, x), n, 3, 1, SAME);
    }
    return tail(b, x, "decoder");
}

/* image [w, h, 3, 1] -> mean and log-variance [w / s, h / s, 2 z, 1]. */
static vki_tensor encoder(build *b, vki_tensor x)
{
    const vki_vae_info *in = &b->v->info;
    char n[192];
    x = conv(b, x, "encoder.conv_in", 3, 1, SAME);
    for (uint32_t l = 0; l < in->levels; l++) {
        x = level(b, x, "encoder.down", l);
        snprintf(n, sizeof n, "encoder.down.%u.downsample.conv", l);
        if (has(b->v, n, ".weight")) x = conv(b, x, n, 3, 2, (vki_conv2d_pad){.right = 1, .bottom = 1});
    }
    x = mid(b, x, "encoder");
    x = tail(b, x, "encoder");
    if (has(b->v, "quant_conv", ".weight")) x = conv(b, x, "quant_conv", 1, 1, NONE);
    return x;
}

/* A program for a latent tile of w x h: built, and with `device` compiled on it (NULL: compiled
 * for the profile only, to size it). */
static vki_status make_program(vki_vae *v, bool enc, uint32_t w, uint32_t h, vki_device *device,
                               bool compile, vae_prog *out)
{
    const vki_vae_info *in = &v->info;
    char name[64];
    snprintf(name, sizeof name, "vae %s (%ux%u latent)", enc ? "encode" : "decode", w, h);
    vki_program_desc pd = {.device = device, .profile = v->profile, .allocator = alloc_of(v),
                           .node_capacity = 1024, .name = name};
    *out = (vae_prog){.w = w, .h = h};
    vki_status st = vki_program_create(&pd, &out->prog);
    if (st) {
        set_error(v, "vae: out of host memory creating the %s program", name);
        return st;
    }
    build b = {.v = v, .p = out->prog, .g = vki_program_graph(out->prog)};
    uint32_t s = enc ? in->scale : 1;
    int64_t ne[4] = {(int64_t)w * s, (int64_t)h * s, enc ? in->image_channels : in->latent_channels, 1};
    out->in = vki_program_input(out->prog, VKI_DTYPE_F32, 4, ne, "in");
    v->error[0] = 0;
    out->out = enc ? encoder(&b, out->in) : decoder(&b, out->in);
    vki_program_output(out->prog, out->out, "out");
    if (v->error[0]) return VKI_ERROR_BAD_FILE;
    st = vki_weights_status(v->weights);
    if (!st && compile) st = vki_program_compile(out->prog, v->weights);
    if (st) {
        const char *why = vki_weights_error(v->weights);
        set_error(v, "%s", why[0] ? why : vki_program_error(out->prog));
    }
    return st;
}

static void drop(vae_prog *p)
{
    vki_program_destroy(p->prog);
    *p = (vae_prog){0};
}

/* The largest tensor a graph holds, in bytes. */
static uint64_t largest_tensor(vki_graph *g)
{
    uint64_t most = 0;
    for (uint32_t id = 1; id <= vki_graph_node_count(g); id++) {
        vki_tensor_info info;
        if (!vki_tensor_get_info(g, (vki_tensor){id}, &info)) continue;
        uint64_t n = vki_dtype_bytes(info.dtype, vki_tensor_nelements(g, (vki_tensor){id}));
        if (n > most) most = n;
    }
    return most;
}

/* Device-local memory this process may still take. */
static uint64_t memory_budget(const vki_profile *p)
{
    uint64_t free_bytes = 0;
    for (uint32_t i = 0; i < p->heap_count; i++)
        if (p->heaps[i].device_local && p->heaps[i].budget > p->heaps[i].usage)
            free_bytes += p->heaps[i].budget - p->heaps[i].usage;
    return free_bytes;
}

/* Whether a w x h latent tile fits: its largest activation in one binding, its arena in half
 * the memory budget. */
static bool tile_fits(vki_vae *v, bool enc, uint32_t w, uint32_t h)
{
    vae_prog p;
    bool fits = make_program(v, enc, w, h, NULL, false, &p) == VKI_OK &&
                largest_tensor(vki_program_graph(p.prog)) <= v->profile->max_storage_range &&
                vki_program_compile(p.prog, v->weights) == VKI_OK &&
                vki_program_activation_bytes(p.prog) <= memory_budget(v->profile) / 2;
    drop(&p);
    return fits;
}

uint32_t vki_vae_tile(vki_vae *v, bool enc, uint32_t w, uint32_t h)
{
    if (!v || w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || (enc && !v->info.has_encoder)) return 0;
    if (v->tile) return v->tile;
    uint32_t *last = v->picked[enc], side = w > h ? w : h, t = side;
    if (last[0] == w && last[1] == h) return last[2];
    if (!tile_fits(v, enc, w, h)) {
        for (t = (side - 1) / 8 * 8; t > 8; t -= 8)
            if (tile_fits(v, enc, t < w ? t : w, t < h ? t : h)) break;
        if (t < 8) t = 8;
    }
    last[0] = w;
    last[1] = h;
    last[2] = t;
    return t;
}

/* The cached program for a w x h tile, compiled on the device if new (replacing the least
 * recently used). */
static vki_status program_for(vki_vae *v, bool enc, uint32_t w, uint32_t h, vae_prog **out)
{
    vae_prog *cache = enc ? v->enc : v->dec, *slot = &cache[0];
    v->calls++;
    for (uint32_t i = 0; i < PROGRAMS; i++) {
        if (cache[i].prog && cache[i].w == w && cache[i].h == h) {
            cache[i].used = v->calls;
            *out = &cache[i];
            return VKI_OK;
        }
        if (!cache[i].prog || (slot->prog && cache[i].used < slot->used)) slot = &cache[i];
    }
    drop(slot);
    // The largest activation must fit one binding: said here, before anything runs, for a tile
    // the caller chose (the automatic one always fits).
    vae_prog probe;
    vki_status st = make_program(v, enc, w, h, NULL, false, &probe);
    uint64_t largest = st ? 0 : largest_tensor(vki_program_graph(probe.prog));
    drop(&probe);
    if (st) return st;
    if (largest > v->profile->max_storage_range) {
        set_error(v, "vae %s: a %ux%u latent tile holds a %llu MiB activation, over this device's "
                  "binding limit of %llu MiB: use a smaller tile (desc.tile; 0 picks one)",
                  enc ? "encode" : "decode", w, h, (unsigned long long)(largest >> 20),
                  (unsigned long long)(v->profile->max_storage_range >> 20));
        return VKI_ERROR_UNSUPPORTED;
    }
    st = make_program(v, enc, w, h, v->device, true, slot);
    if (st) {
        drop(slot);
        return st;
    }
    slot->used = v->calls;
    uint64_t bytes = vki_program_activation_bytes(slot->prog);
    if (bytes > v->peak) v->peak = bytes;
    *out = slot;
    return VKI_OK;
}

/* Tile origins along an axis of n latent pixels for tiles of t overlapping by at least o: evenly
 * spread, the first at 0 and the last at n - t. Returns the count (at most `cap`). */
static uint32_t origins(uint32_t n, uint32_t t, uint32_t o, uint32_t *out, uint32_t cap)
{
    if (t >= n) {
        out[0] = 0;
        return 1;
    }
    uint32_t step = t - o, count = (n - t + step - 1) / step + 1;
    if (count > cap) count = cap;
    for (uint32_t i = 0; i < count; i++)
        out[i] = (uint32_t)(((uint64_t)i * (n - t) + (count - 1) / 2) / (count - 1));
    return count;
}

/* Blend weight of pixel x (of a tile `len` wide, output pixels) whose overlaps with the tiles
 * before and after are `before` and `after` pixels: a linear ramp across each overlap, so that two
 * tiles' weights sum to one there. */
static float ramp(uint32_t x, uint32_t len, uint32_t before, uint32_t after)
{
    float w = 1.0f;
    if (before) w *= fminf(1.0f, ((float)x + 0.5f) / (float)before);
    if (after) w *= fminf(1.0f, ((float)(len - x) - 0.5f) / (float)after);
    return w;
}

#define MAX_TILES 2048 // per axis: MAX_SIDE / (8 - 2)

/* Runs the decoder (or encoder) over a w x h latent, tiled when needed. in [cin][h si][w si],
 * out [keep][h so][w so] with si, so the scales of input and output (1 for the latent). */
static vki_status run(vki_vae *v, bool enc, const float *in, uint32_t w, uint32_t h, float *out)
{
    const vki_vae_info *info = &v->info;
    uint32_t si = enc ? info->scale : 1, so = enc ? 1 : info->scale;
    uint32_t cin = enc ? info->image_channels : info->latent_channels;
    uint32_t cout = enc ? v->enc_out : info->image_channels, keep = enc ? info->latent_channels : cout;
    uint32_t t = vki_vae_tile(v, enc, w, h), tw = t < w ? t : w, th = t < h ? t : h, o = t / 4;
    uint32_t *xs = vki__model_alloc(alloc_of(v), 2 * MAX_TILES * sizeof *xs), *ys = xs + MAX_TILES;
    uint64_t in_tile = (uint64_t)cin * tw * si * th * si, out_tile = (uint64_t)cout * tw * so * th * so;
    uint64_t ow = (uint64_t)w * so, oh = (uint64_t)h * so, tow = (uint64_t)tw * so, toh = (uint64_t)th * so;
    float *tin = vki__model_alloc(alloc_of(v), in_tile * sizeof(float));
    float *tout = vki__model_alloc(alloc_of(v), out_tile * sizeof(float));
    float *wsum = vki__model_alloc(alloc_of(v), ow * oh * sizeof(float));
    vki_status st = VKI_OK;
    if (!xs || !tin || !tout || !wsum) {
        set_error(v, "vae: out of host memory for %ux%u tiles", tw, th);
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    uint32_t nx = origins(w, tw, o, xs, MAX_TILES), ny = origins(h, th, o, ys, MAX_TILES);
    vae_prog *p = NULL;
    if ((st = program_for(v, enc, tw, th, &p))) goto done;
    memset(out, 0, (size_t)keep * ow * oh * sizeof(float));
    for (uint32_t ty = 0; ty < ny; ty++)
        for (uint32_t tx = 0; tx < nx; tx++) {
            uint64_t x0 = (uint64_t)xs[tx] * si, y0 = (uint64_t)ys[ty] * si, iw = (uint64_t)w * si;
            uint64_t rw = (uint64_t)tw * si, rh = (uint64_t)th * si;
            for (uint64_t c = 0; c < cin; c++)
                for (uint64_t y = 0; y < rh; y++)
                    memcpy(tin + (c * rh + y) * rw, in + (c * h * si + y0 + y) * iw + x0, rw * sizeof(float));
            if ((st = vki_program_upload(p->prog, p->in, tin, in_tile * sizeof(float))) ||
                (st = vki_program_run(p->prog)) ||
                (st = vki_program_download(p->prog, p->out, tout, out_tile * sizeof(float)))) {
                const char *why = vki_program_error(p->prog);
                set_error(v, "vae %s: %s", enc ? "encode" : "decode",
                          why[0] ? why : vki_device_last_error(v->device));
                goto done;
            }
            // Overlaps with the neighbours, in output pixels.
            uint32_t left = tx ? (xs[tx - 1] + tw - xs[tx]) * so : 0;
            uint32_t right = tx + 1 < nx ? (xs[tx] + tw - xs[tx + 1]) * so : 0;
            uint32_t top = ty ? (ys[ty - 1] + th - ys[ty]) * so : 0;
            uint32_t bottom = ty + 1 < ny ? (ys[ty] + th - ys[ty + 1]) * so : 0;
            uint64_t ox0 = (uint64_t)xs[tx] * so, oy0 = (uint64_t)ys[ty] * so;
            for (uint64_t y = 0; y < toh; y++) {
                float wy = ramp((uint32_t)y, (uint32_t)toh, top, bottom);
                for (uint64_t x = 0; x < tow; x++) {
                    float wt = wy * ramp((uint32_t)x, (uint32_t)tow, left, right);
                    uint64_t at = (oy0 + y) * ow + ox0 + x;
                    wsum[at] += wt;
                    for (uint64_t c = 0; c < keep; c++)
                        out[c * ow * oh + at] += wt * tout[(c * toh + y) * tow + x];
                }
            }
        }
    for (uint64_t c = 0; c < keep; c++)
        for (uint64_t i = 0; i < ow * oh; i++) out[c * ow * oh + i] /= wsum[i];
done:
    vki__model_free(alloc_of(v), xs);
    vki__model_free(alloc_of(v), tin);
    vki__model_free(alloc_of(v), tout);
    vki__model_free(alloc_of(v), wsum);
    return st;
}

/* Levels of part.up or part.down: the count of consecutive `part.N.block.0` resnets. */
static uint32_t count_levels(const vki_vae *v, const char *part)
{
    char n[128];
    uint32_t l = 0;
    for (; l < 16; l++) {
        snprintf(n, sizeof n, "%s.%u.block.0", part, l);
        if (!has(v, n, ".norm1.weight")) break;
    }
    return l;
}

/* The shape of the network from its tensors. */
static vki_status read_shape(vki_vae *v, bool encoder_too, char *err, size_t n)
{
    vki_source_tensor conv_in, conv_out;
    if (!source_find(v, "decoder.conv_in", ".weight", &conv_in) ||
        !source_find(v, "decoder.conv_out", ".weight", &conv_out)) {
        snprintf(err, n, "vae: no tensor %sdecoder.conv_in.weight or %sdecoder.conv_out.weight (a "
                 "VAE under this prefix)", v->prefix, v->prefix);
        return VKI_ERROR_BAD_FILE;
    }
    vki_source_tensor pq;
    bool post = source_find(v, "post_quant_conv", ".weight", &pq);
    vki_vae_info *in = &v->info;
    in->latent_channels = (uint32_t)(post ? pq.ne[2] : conv_in.ne[2]);
    in->image_channels = (uint32_t)conv_out.ne[3];
    in->levels = count_levels(v, "decoder.up");
    uint32_t ups = 0;
    for (uint32_t l = 0; l < in->levels; l++) {
        char name[96];
        snprintf(name, sizeof name, "decoder.up.%u.upsample.conv", l);
        ups += has(v, name, ".weight");
    }
    in->scale = 1u << ups;
    if (in->levels == 0 || in->latent_channels == 0 || in->latent_channels > 64 ||
        in->image_channels == 0 || in->image_channels > 64 || ups > 4) {
        snprintf(err, n, "vae: %u decoder levels with %u upsamplings, %u latent and %u image "
                 "channels: not a VAE vkinfer runs", in->levels, ups, in->latent_channels,
                 in->image_channels);
        return VKI_ERROR_UNSUPPORTED;
    }
    if (!encoder_too) return VKI_OK;
    vki_source_tensor eout;
    if (!source_find(v, "encoder.conv_out", ".weight", &eout)) {
        snprintf(err, n, "vae: no tensor %sencoder.conv_out.weight (the encoder; no_encoder loads "
                 "the decoder alone)", v->prefix);
        return VKI_ERROR_BAD_FILE;
    }
    uint32_t down_levels = count_levels(v, "encoder.down");
    v->enc_out = (uint32_t)eout.ne[3];
    if (down_levels != in->levels || v->enc_out != 2 * in->latent_channels) {
        snprintf(err, n, "vae: the encoder has %u levels and %u output channels; the decoder's "
                 "%u levels and %u latent channels want %u levels and %u (mean and log-variance)",
                 down_levels, v->enc_out, in->levels, in->latent_channels, in->levels,
                 2 * in->latent_channels);
        return VKI_ERROR_BAD_FILE;
    }
    in->has_encoder = true;
    return VKI_OK;
}

static vki_status load(vki_vae *v, const vki_vae_desc *d, char *err, size_t n)
{
    VKI_TRY(read_shape(v, !d->no_encoder, err, n));
    vki_weights_desc wd = {.source = v->source, .device = v->device, .profile = v->profile,
                           .allocator = alloc_of(v), .model_name = "the VAE",
                           .convert = d->weight_type};
    VKI_TRY(vki_weights_create(&wd, &v->weights));
    // Small throwaway graphs register (and check) every tensor before the one upload; the
    // programs that run are built per tile size afterwards from the registered weights.
    for (int enc = 0; enc <= (int)v->info.has_encoder; enc++) {
        vae_prog p;
        vki_status st = make_program(v, enc, 1, 1, NULL, false, &p);
        drop(&p);
        if (st) {
            snprintf(err, n, "%s", v->error);
            return st;
        }
    }
    vki_status st = vki_weights_upload(v->weights);
    if (st) snprintf(err, n, "vae: %s", vki_weights_error(v->weights)[0] ? vki_weights_error(v->weights)
                                                                          : "uploading the weights");
    return st;
}

vki_status vki_vae_load(const vki_vae_desc *desc, vki_vae **out, char *err, size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!desc || !desc->source || !desc->source->find || !desc->device || !out)
        return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (desc->tile && (desc->tile < 4 || desc->tile > MAX_SIDE)) {
        snprintf(err, n, "vae: tile %u: want 0 (automatic) or 4 to %u latent pixels", desc->tile, MAX_SIDE);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    vki_vae *v = vki__model_alloc(desc->allocator, sizeof *v);
    if (!v) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    v->allocator = desc->allocator ? *desc->allocator : (vki_allocator){0};
    v->device = desc->device;
    v->profile = vki_device_profile(desc->device);
    v->source = *desc->source;
    v->tile = desc->tile;
    snprintf(v->prefix, sizeof v->prefix, "%s", desc->prefix ? desc->prefix : "");
    vki_status st = load(v, desc, err, n);
    if (st) {
        vki_vae_destroy(v);
        return st;
    }
    *out = v;
    return VKI_OK;
}

void vki_vae_destroy(vki_vae *v)
{
    if (!v) return;
    for (uint32_t i = 0; i < PROGRAMS; i++) {
        drop(&v->dec[i]);
        drop(&v->enc[i]);
    }
    vki_weights_destroy(v->weights);
    vki_allocator a = v->allocator;
    vki__model_free(&a, v);
}

void vki_vae_release(vki_vae *v)
{
    if (!v) return;
    for (uint32_t i = 0; i < PROGRAMS; i++) {
        vki_program_release(v->dec[i].prog);
        vki_program_release(v->enc[i].prog);
    }
}

vki_status vki_vae_decode(vki_vae *v, const float *latent, uint32_t w, uint32_t h, float *out_rgb)
{
    if (!v || !latent || !out_rgb) return VKI_ERROR_INVALID_ARGUMENT;
    v->error[0] = 0;
    if (w == 0 || h == 0 || (uint64_t)w * v->info.scale > MAX_SIDE || (uint64_t)h * v->info.scale > MAX_SIDE) {
        set_error(v, "vae decode: a %ux%u latent: want 1 to %u pixels a side", w, h, MAX_SIDE / v->info.scale);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    return run(v, false, latent, w, h, out_rgb);
}

vki_status vki_vae_encode(vki_vae *v, const float *rgb, uint32_t w, uint32_t h, float *out_mean)
{
    if (!v || !rgb || !out_mean) return VKI_ERROR_INVALID_ARGUMENT;
    v->error[0] = 0;
    uint32_t s = v->info.scale;
    if (!v->info.has_encoder) {
        set_error(v, "vae encode: the VAE was loaded without its encoder (no_encoder)");
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (w == 0 || h == 0 || w % s || h % s || w > MAX_SIDE || h > MAX_SIDE) {
        set_error(v, "vae encode: a %ux%u image: want sides that are multiples of %u, at most %u",
                  w, h, s, MAX_SIDE);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    return run(v, true, rgb, w / s, h / s, out_mean);
}

const vki_vae_info *vki_vae_info_get(const vki_vae *v) { return v ? &v->info : NULL; }
const char *vki_vae_last_error(const vki_vae *v) { return v ? v->error : ""; }
uint64_t vki_vae_peak_bytes(const vki_vae *v) { return v ? v->peak : 0; }
uint64_t vki_vae_weight_bytes(const vki_vae *v) { return v ? vki_weights_bytes(v->weights) : 0; }
