/* Stable Diffusion's U-Net (latent diffusion's UNetModel, SD 1.x and 2.x) in its original
 * (ldm) tensor names, as one program per latent shape over the shared weights module.
 *
 * Activations are [W, H, C, B] (NCHW) between convolutions. Inside a spatial transformer the
 * tokens are [C, B, W*H]: channels contiguous for the projections, and the batch next to them
 * so that a batch of B images with `heads` heads is one attention of heads*B heads (head h of
 * image b is [head_dim] at column b*heads + h of the [C, B] rows) — classifier-free guidance's
 * two passes are one dispatch per op. The context arrives as [D, B, n_ctx] for the same reason.
 *
 * The network, from the input:
 *   emb = time_embed(timestep_embedding(t))                       [4C, B]
 *   h = conv_in(x), pushed; per input block: resnet(h, emb) [+ transformer(h, ctx)] or a
 *   stride-2 conv, each result pushed;
 *   middle: resnet, transformer, resnet;
 *   per output block: resnet(concat(h, pop), emb) [+ transformer] [+ nearest x2, conv];
 *   out = conv(silu(group_norm(h))).
 * Resnet: conv(silu(gn(x))) + emb projection, conv(silu(gn(.))), plus x or its 1x1 conv.
 * Transformer: gn (eps 1e-6), proj_in, per block x += attn1(ln(x)), attn2(ln(x), ctx),
 * geglu_ff(ln(x)), proj_out, plus the input.
 *
 * One tensor outgrows a binding at large images: the feed-forward's projection output
 * [2 inner, B*T] f32 (320 MiB at 1024x1024, batch 2, SD 1.x's first level), and its GEGLU
 * output (half that); the lowering splits them by tokens where the device's binding range
 * (max_storage_range, 128 MiB on lavapipe) would not hold them. Every other activation of
 * SD 1.x/2.x at 1024x1024, batch 2, is at most 120 MiB by its shape (the first output level's
 * concatenation, 960
 * channels of 128x128); attention keeps no score matrix. */
#include "sd_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_BLOCKS 64 // input or output blocks (SD: 12 each)

typedef struct block {
    uint32_t cin, cout;    // resnet channels (cin of an output block includes the skip)
    uint32_t depth;        // transformer blocks; 0: no transformer
    uint32_t heads;
    bool down, up;         // input block: a stride-2 conv alone; output block: ends in an upsample
    uint32_t up_index;     // the upsample's module index in the block (1 or 2)
} block;

struct vki_unet {
    vki_allocator allocator;
    vki_unet_desc d;
    vki_unet_info info;
    char prefix[64];
    uint32_t n_in, n_out;
    block in[MAX_BLOCKS], mid, out[MAX_BLOCKS];
    vki_weights *weights;
    vki_program *prog;                 // for the shape below
    uint32_t w, h, batch, n_ctx;
    vki_tensor x, t, ctx, result;
    bool uploaded;
    char error[512];
};

/* ---- Tensors --------------------------------------------------------------------------------- */

static vki_tensor Wv(vki_unet *u, uint32_t ndim, const int64_t *ne, const char *fmt, va_list ap)
{
    char tail[160], name[224];
    vsnprintf(tail, sizeof tail, fmt, ap);
    snprintf(name, sizeof name, "%s%s", u->prefix, tail);
    return vki_weights_tensor(u->weights, u->prog, name, ndim, ne, false, true);
}

static vki_tensor W(vki_unet *u, uint32_t ndim, const int64_t *ne, const char *fmt, ...) VKI_PRINTF(4, 5);
static vki_tensor W(vki_unet *u, uint32_t ndim, const int64_t *ne, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vki_tensor t = Wv(u, ndim, ne, fmt, ap);
    va_end(ap);
    return t;
}

/* A module name (names are short; one too long for its buffer finds no tensor and fails). */
static void put(char *out, size_t n, const char *fmt, ...) VKI_PRINTF(3, 4);
static void put(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static vki_graph *G(vki_unet *u) { return vki_program_graph(u->prog); }

/* t as `dtype` when stored otherwise (F16/BF16 biases added to F32; BF16 conv weights). */
static vki_tensor as(vki_unet *u, vki_tensor t, vki_dtype dtype)
{
    vki_tensor_info info;
    if (!vki_tensor_get_info(G(u), t, &info) || info.dtype == dtype) return t;
    return vki_cast(G(u), t, dtype);
}

static vki_tensor conv_weight(vki_unet *u, vki_tensor w)
{
    vki_tensor_info info;
    if (!vki_tensor_get_info(G(u), w, &info) || info.dtype == VKI_DTYPE_F32 || info.dtype == VKI_DTYPE_F16)
        return w;
    return vki_cast(G(u), w, VKI_DTYPE_F16);
}

/* ---- Building blocks ------------------------------------------------------------------------- */

/* name.weight [k, k, cin, cout], name.bias [cout]. */
static vki_tensor conv(vki_unet *u, vki_tensor x, const char *name, uint32_t cin, uint32_t cout,
                       uint32_t k, uint32_t stride)
{
    vki_tensor w = W(u, 4, (int64_t[4]){k, k, cin, cout}, "%s.weight", name);
    vki_tensor b = W(u, 1, (int64_t[1]){cout}, "%s.bias", name);
    return vki_conv2d(G(u), x, conv_weight(u, w), as(u, b, VKI_DTYPE_F32), stride, k / 2);
}

static vki_tensor gnorm(vki_unet *u, vki_tensor x, const char *name, uint32_t c, float eps)
{
    vki_tensor w = W(u, 1, (int64_t[1]){c}, "%s.weight", name);
    vki_tensor b = W(u, 1, (int64_t[1]){c}, "%s.bias", name);
    return vki_group_norm(G(u), x, 32, w, b, eps);
}

/* A linear layer's weight [k, n] and f32 bias [n] ({0} without one). */
typedef struct lin {
    vki_tensor w, b;
} lin;

static lin linear_weights(vki_unet *u, const char *name, uint32_t k, uint32_t n, bool bias)
{
    char wname[224];
    int len = snprintf(wname, sizeof wname, "%s%s.weight", u->prefix, name);
    if (len < 0 || (size_t)len >= sizeof wname) wname[0] = '\0'; // no such tensor: the lookup names the failure
    lin l = {.w = vki_weights_linear(u->weights, u->prog, wname, k, n)};
    if (bias) l.b = as(u, W(u, 1, (int64_t[1]){n}, "%s.bias", name), VKI_DTYPE_F32);
    return l;
}

/* y [n, T] = W x + b for x [k, T]. */
static vki_tensor apply(vki_unet *u, lin l, vki_tensor x)
{
    vki_tensor y = vki_matmul(G(u), l.w, x);
    return l.b.id ? vki_add(G(u), y, l.b) : y;
}

static vki_tensor linear(vki_unet *u, vki_tensor x, const char *name, uint32_t k, uint32_t n, bool bias)
{
    return apply(u, linear_weights(u, name, k, n, bias), x);
}

static vki_tensor layer_norm(vki_unet *u, vki_tensor x, const char *name, uint32_t c)
{
    vki_tensor w = W(u, 1, (int64_t[1]){c}, "%s.weight", name);
    vki_tensor b = W(u, 1, (int64_t[1]){c}, "%s.bias", name);
    return vki_layer_norm(G(u), x, w, b, 1e-5f);
}

static vki_tensor resnet(vki_unet *u, vki_tensor x, vki_tensor emb, const char *name, uint32_t cin,
                         uint32_t cout)
{
    char n[128];
    vki_graph *g = G(u);
    put(n, sizeof n, "%s.in_layers.0", name);
    vki_tensor h = vki_silu(g, gnorm(u, x, n, cin, 1e-5f));
    put(n, sizeof n, "%s.in_layers.2", name);
    h = conv(u, h, n, cin, cout, 3, 1);
    put(n, sizeof n, "%s.emb_layers.1", name);
    vki_tensor e = linear(u, emb, n, 4 * u->info.model_channels, cout, true); // [cout, B]
    h = vki_add(g, h, vki_reshape(g, e, 4, (int64_t[4]){1, 1, cout, u->batch}));
    put(n, sizeof n, "%s.out_layers.0", name);
    h = vki_silu(g, gnorm(u, h, n, cout, 1e-5f));
    put(n, sizeof n, "%s.out_layers.3", name);
    h = conv(u, h, n, cout, cout, 3, 1);
    if (cin != cout) {
        put(n, sizeof n, "%s.skip_connection", name);
        x = conv(u, x, n, cin, cout, 1, 1);
    }
    return vki_add(g, x, h);
}

/* x [C, B*T] -> [head_dim, heads*B, T] (a view: the layout puts image b's heads together). */
static vki_tensor split_heads(vki_unet *u, vki_tensor x, uint32_t c, uint32_t heads, int64_t tokens)
{
    return vki_reshape(G(u), x, 3, (int64_t[3]){c / heads, (int64_t)heads * u->batch, tokens});
}

/* Multi-head attention of tokens q_in [C, B*Tq] over kv_in [ckv, B*Tkv]. */
static vki_tensor attention(vki_unet *u, vki_tensor q_in, vki_tensor kv_in, const char *name,
                            uint32_t c, uint32_t ckv, uint32_t heads, int64_t tq, int64_t tkv)
{
    char n[160];
    put(n, sizeof n, "%s.to_q", name);
    vki_tensor q = split_heads(u, linear(u, q_in, n, c, c, false), c, heads, tq);
    put(n, sizeof n, "%s.to_k", name);
    vki_tensor k = split_heads(u, linear(u, kv_in, n, ckv, c, false), c, heads, tkv);
    put(n, sizeof n, "%s.to_v", name);
    vki_tensor v = split_heads(u, linear(u, kv_in, n, ckv, c, false), c, heads, tkv);
    float scale = 1.0f / sqrtf((float)(c / heads));
    vki_tensor a = vki_attention(G(u), q, k, v, (vki_tensor){0}, scale, false);
    a = vki_reshape(G(u), a, 2, (int64_t[2]){c, u->batch * tq});
    put(n, sizeof n, "%s.to_out.0", name);
    return linear(u, a, n, c, c, true);
}

/* The GEGLU feed-forward with its residual: x + net.2(value * gelu(gate)), [value; gate] =
 * net.0.proj(s), for x, s [C, tokens]. At large images its projection output outgrows a
 * binding (320 MiB at 1024x1024, batch 2, SD 1.x's first level; lavapipe binds 128 MiB): the
 * lowering then computes it, and what reads it, a slice of the tokens at a time. */
static vki_tensor feed_forward(vki_unet *u, vki_tensor x, vki_tensor s, const char *name, uint32_t c,
                               int64_t tokens)
{
    vki_graph *g = G(u);
    char n[160];
    put(n, sizeof n, "%s.net.0.proj.weight", name);
    vki_source_tensor st;
    char full[224];
    put(full, sizeof full, "%s%s", u->prefix, n);
    uint32_t inner = 4 * c;
    if (u->d.source->find(u->d.source->file, full, &st) == VKI_OK && st.ne[1] % 2 == 0)
        inner = (uint32_t)(st.ne[1] / 2);
    put(n, sizeof n, "%s.net.0.proj", name);
    lin proj = linear_weights(u, n, c, 2 * inner, true);
    put(n, sizeof n, "%s.net.2", name);
    lin out = linear_weights(u, n, inner, c, true);

    vki_tensor y = apply(u, proj, s); // [2 inner, tokens]
    const uint64_t nb[2] = {sizeof(float), 2ull * inner * sizeof(float)};
    const int64_t ne[2] = {inner, tokens};
    vki_tensor value = vki_view(g, y, 2, ne, nb, 0);
    vki_tensor gate = vki_view(g, y, 2, ne, nb, (uint64_t)inner * sizeof(float));
    return vki_add(g, x, apply(u, out, vki_geglu(g, gate, value)));
}

/* [W, H, C, B] <-> [C, B, W*H] (contiguous copies). */
static vki_tensor to_tokens(vki_unet *u, vki_tensor x, uint32_t c, int64_t hw)
{
    vki_graph *g = G(u);
    x = vki_reshape(g, x, 3, (int64_t[3]){hw, c, u->batch});
    x = vki_copy(g, vki_permute(g, x, (uint32_t[4]){2, 0, 1, 3}), 0);
    return vki_reshape(g, x, 2, (int64_t[2]){c, u->batch * hw});
}

static vki_tensor from_tokens(vki_unet *u, vki_tensor t, uint32_t c, uint32_t w, uint32_t h)
{
    vki_graph *g = G(u);
    t = vki_reshape(g, t, 3, (int64_t[3]){c, u->batch, (int64_t)w * h});
    t = vki_copy(g, vki_permute(g, t, (uint32_t[4]){1, 2, 0, 3}), 0);
    return vki_reshape(g, t, 4, (int64_t[4]){w, h, c, u->batch});
}

/* The 1x1-conv projections of SD 1.x as [c, c] matrices, or SD 2.x's linear ones. */
static vki_tensor projection(vki_unet *u, vki_tensor x, const char *name, uint32_t c)
{
    if (u->info.linear_projection) return linear(u, x, name, c, c, true);
    vki_tensor w = W(u, 4, (int64_t[4]){1, 1, c, c}, "%s.weight", name);
    w = vki_reshape(G(u), w, 2, (int64_t[2]){c, c});
    vki_tensor y = vki_matmul(G(u), w, x);
    return vki_add(G(u), y, as(u, W(u, 1, (int64_t[1]){c}, "%s.bias", name), VKI_DTYPE_F32));
}

static vki_tensor transformer(vki_unet *u, vki_tensor x, vki_tensor ctx, const char *name,
                              const block *b, uint32_t c, uint32_t w, uint32_t h)
{
    char n[160];
    vki_graph *g = G(u);
    int64_t hw = (int64_t)w * h;
    put(n, sizeof n, "%s.norm", name);
    vki_tensor t = to_tokens(u, gnorm(u, x, n, c, 1e-6f), c, hw);
    put(n, sizeof n, "%s.proj_in", name);
    t = projection(u, t, n, c);
    for (uint32_t i = 0; i < b->depth && !vki_weights_status(u->weights); i++) {
        char tb[128];
        put(tb, sizeof tb, "%s.transformer_blocks.%u", name, i);
        put(n, sizeof n, "%s.norm1", tb);
        vki_tensor s = layer_norm(u, t, n, c);
        put(n, sizeof n, "%s.attn1", tb);
        t = vki_add(g, t, attention(u, s, s, n, c, c, b->heads, hw, hw));
        put(n, sizeof n, "%s.norm2", tb);
        s = layer_norm(u, t, n, c);
        put(n, sizeof n, "%s.attn2", tb);
        t = vki_add(g, t, attention(u, s, ctx, n, c, u->info.context_dim, b->heads, hw, u->n_ctx));
        put(n, sizeof n, "%s.norm3", tb);
        s = layer_norm(u, t, n, c);
        put(n, sizeof n, "%s.ff", tb);
        t = feed_forward(u, t, s, n, c, u->batch * hw);
    }
    put(n, sizeof n, "%s.proj_out", name);
    t = projection(u, t, n, c);
    return vki_add(g, x, from_tokens(u, t, c, w, h));
}

/* ---- The network ----------------------------------------------------------------------------- */

static vki_tensor forward(vki_unet *u)
{
    vki_graph *g = G(u);
    const vki_unet_info *in = &u->info;
    uint32_t mc = in->model_channels, w = u->w, h = u->h;
    vki_tensor emb = vki_timestep_embedding(g, u->t, mc, 10000.0f);
    emb = linear(u, emb, "time_embed.0", mc, 4 * mc, true);
    emb = linear(u, vki_silu(g, emb), "time_embed.2", 4 * mc, 4 * mc, true);
    vki_tensor emb_silu = vki_silu(g, emb);

    vki_tensor skip[MAX_BLOCKS + 1];
    uint32_t n_skip = 0;
    vki_tensor x = conv(u, u->x, "input_blocks.0.0", in->in_channels, mc, 3, 1);
    skip[n_skip++] = x;
    uint32_t c = mc;
    char n[96];
    for (uint32_t i = 0; i < u->n_in && !vki_weights_status(u->weights); i++) {
        const block *b = &u->in[i];
        if (b->down) {
            put(n, sizeof n, "input_blocks.%u.0.op", i + 1);
            x = conv(u, x, n, c, c, 3, 2);
            w = (w + 1) / 2;
            h = (h + 1) / 2;
        } else {
            put(n, sizeof n, "input_blocks.%u.0", i + 1);
            x = resnet(u, x, emb_silu, n, c, b->cout);
            c = b->cout;
            if (b->depth) {
                put(n, sizeof n, "input_blocks.%u.1", i + 1);
                x = transformer(u, x, u->ctx, n, b, c, w, h);
            }
        }
        skip[n_skip++] = x;
    }
    x = resnet(u, x, emb_silu, "middle_block.0", c, c);
    if (u->mid.depth) x = transformer(u, x, u->ctx, "middle_block.1", &u->mid, c, w, h);
    x = resnet(u, x, emb_silu, u->mid.depth ? "middle_block.2" : "middle_block.1", c, c);
    for (uint32_t i = 0; i < u->n_out && n_skip && !vki_weights_status(u->weights); i++) {
        const block *b = &u->out[i];
        x = vki_concat(g, x, skip[--n_skip], 2);
        put(n, sizeof n, "output_blocks.%u.0", i);
        x = resnet(u, x, emb_silu, n, b->cin, b->cout);
        c = b->cout;
        if (b->depth) {
            put(n, sizeof n, "output_blocks.%u.1", i);
            x = transformer(u, x, u->ctx, n, b, c, w, h);
        }
        if (b->up) {
            w *= 2;
            h *= 2;
            x = vki_upsample2x(g, x);
            put(n, sizeof n, "output_blocks.%u.%u.conv", i, b->up_index);
            x = conv(u, x, n, c, c, 3, 1);
        }
    }
    x = vki_silu(g, gnorm(u, x, "out.0", c, 1e-5f));
    return conv(u, x, "out.2", c, in->out_channels, 3, 1);
}

/* ---- Structure from the tensors -------------------------------------------------------------- */

static bool find(vki_unet *u, vki_source_tensor *t, const char *fmt, ...) VKI_PRINTF(3, 4);
static bool find(vki_unet *u, vki_source_tensor *t, const char *fmt, ...)
{
    char tail[160], name[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    snprintf(name, sizeof name, "%s%s", u->prefix, tail);
    return u->d.source->find(u->d.source->file, name, t) == VKI_OK;
}

static uint32_t depth_of(vki_unet *u, const char *module)
{
    uint32_t d = 0;
    vki_source_tensor t;
    while (d < 64 && find(u, &t, "%s.transformer_blocks.%u.norm1.weight", module, d)) d++;
    return d;
}

static uint32_t heads_for(const vki_unet *u, uint32_t c)
{
    if (u->d.heads) return u->d.heads;
    uint32_t hd = u->d.head_dim ? u->d.head_dim : u->info.linear_projection ? 64 : 0;
    return hd ? c / hd : 8;
}

static vki_status bad(vki_unet *u, char *err, size_t n, const char *what, const char *name)
{
    snprintf(err, n, "unet: %s %s%s (not an SD 1.x/2.x U-Net in the expected layout)", what,
             u->prefix, name);
    return VKI_ERROR_BAD_FILE;
}

static vki_status read_structure(vki_unet *u, char *err, size_t n)
{
    vki_source_tensor t;
    if (!find(u, &t, "input_blocks.0.0.weight") || t.n_dims != 4)
        return bad(u, err, n, "no usable tensor", "input_blocks.0.0.weight");
    vki_unet_info *in = &u->info;
    in->model_channels = (uint32_t)t.ne[3];
    in->in_channels = (uint32_t)t.ne[2];
    if (!find(u, &t, "out.2.weight") || t.n_dims != 4)
        return bad(u, err, n, "no usable tensor", "out.2.weight");
    in->out_channels = (uint32_t)t.ne[3];
    uint32_t c = in->model_channels;
    char name[96];
    for (u->n_in = 0;; u->n_in++) {
        uint32_t i = u->n_in + 1;
        block *b = &u->in[u->n_in];
        if (find(u, &t, "input_blocks.%u.0.op.weight", i)) {
            *b = (block){.cin = c, .cout = c, .down = true};
            in->levels++;
        } else if (find(u, &t, "input_blocks.%u.0.out_layers.3.weight", i)) {
            if (u->n_in == MAX_BLOCKS - 1) return bad(u, err, n, "too many blocks at", "input_blocks");
            *b = (block){.cin = c, .cout = (uint32_t)t.ne[3]};
            snprintf(name, sizeof name, "input_blocks.%u.1", i);
            b->depth = depth_of(u, name);
            c = b->cout;
            b->heads = heads_for(u, c);
            in->resnets++;
        } else break;
    }
    in->levels++;
    if (!find(u, &t, "middle_block.0.out_layers.3.weight")) return bad(u, err, n, "no tensor", "middle_block.0.out_layers.3.weight");
    u->mid = (block){.cin = c, .cout = c, .depth = depth_of(u, "middle_block.1"), .heads = heads_for(u, c)};
    for (u->n_out = 0; find(u, &t, "output_blocks.%u.0.out_layers.3.weight", u->n_out); u->n_out++) {
        if (u->n_out == MAX_BLOCKS) return bad(u, err, n, "too many blocks at", "output_blocks");
        block *b = &u->out[u->n_out];
        vki_source_tensor gn;
        if (!find(u, &gn, "output_blocks.%u.0.in_layers.0.weight", u->n_out))
            return bad(u, err, n, "missing the norm of", "output_blocks");
        *b = (block){.cin = (uint32_t)gn.ne[0], .cout = (uint32_t)t.ne[3]};
        snprintf(name, sizeof name, "output_blocks.%u.1", u->n_out);
        b->depth = depth_of(u, name);
        b->heads = heads_for(u, b->cout);
        vki_source_tensor up;
        for (uint32_t k = 1; k <= 2 && !b->up; k++)
            if (find(u, &up, "output_blocks.%u.%u.conv.weight", u->n_out, k)) {
                b->up = true;
                b->up_index = k;
            }
    }
    if (u->n_out != u->n_in + 1)
        return bad(u, err, n, "input and output blocks do not pair up at", "output_blocks");
    /* Context width and projection kind from the first transformer. */
    for (uint32_t i = 0; i < u->n_in; i++)
        if (u->in[i].depth) {
            vki_source_tensor k, p;
            if (!find(u, &k, "input_blocks.%u.1.transformer_blocks.0.attn2.to_k.weight", i + 1) ||
                !find(u, &p, "input_blocks.%u.1.proj_in.weight", i + 1))
                return bad(u, err, n, "incomplete transformer in", "input_blocks");
            in->context_dim = (uint32_t)k.ne[0];
            in->linear_projection = p.n_dims == 2;
            break;
        }
    in->transformers = u->mid.depth ? 1 : 0;
    for (uint32_t i = 0; i < u->n_in; i++) {
        in->transformers += u->in[i].depth != 0;
        u->in[i].heads = heads_for(u, u->in[i].cout);
    }
    for (uint32_t i = 0; i < u->n_out; i++) {
        in->transformers += u->out[i].depth != 0;
        u->out[i].heads = heads_for(u, u->out[i].cout);
    }
    u->mid.heads = heads_for(u, u->mid.cout);
    if (in->model_channels == 0 || in->model_channels > 4096 || in->in_channels == 0 ||
        in->in_channels > 64 || in->out_channels == 0 || in->out_channels > 64 ||
        (in->transformers && (in->context_dim == 0 || in->context_dim > 8192))) {
        snprintf(err, n, "unet: %u channels from %u inputs to %u outputs, context %u: not a U-Net "
                 "vkinfer runs", in->model_channels, in->in_channels, in->out_channels, in->context_dim);
        return VKI_ERROR_UNSUPPORTED;
    }
    const block *all[2 * MAX_BLOCKS + 1];
    uint32_t count = 0;
    for (uint32_t i = 0; i < u->n_in; i++) all[count++] = &u->in[i];
    for (uint32_t i = 0; i < u->n_out; i++) all[count++] = &u->out[i];
    all[count++] = &u->mid;
    for (uint32_t i = 0; i < count; i++)
        if (all[i]->depth && (all[i]->heads == 0 || all[i]->cout % all[i]->heads ||
                              all[i]->cout / all[i]->heads > 256 || all[i]->cout % 32)) {
            snprintf(err, n, "unet: %u channels in %u heads: heads must divide the channels into "
                     "at most 256 wide (and 32 groups the channels)", all[i]->cout, all[i]->heads);
            return VKI_ERROR_UNSUPPORTED;
        }
    return VKI_OK;
}

/* ---- The program per shape ------------------------------------------------------------------- */

/* The program for a shape, compiled; or, with compile false, only built to register and upload
 * the weights (vki_unet_load's), then dropped. */
static vki_status build(vki_unet *u, uint32_t w, uint32_t h, uint32_t batch, uint32_t n_ctx, bool compile)
{
    vki_program_destroy(u->prog);
    u->prog = NULL;
    u->w = w;
    u->h = h;
    u->batch = batch;
    u->n_ctx = n_ctx;
    vki_device *dev = u->d.device;
    const vki_allocator *a = u->allocator.alloc ? &u->allocator : NULL;
    char label[64];
    snprintf(label, sizeof label, "unet (%ux%u latent, batch %u)", w, h, batch);
    vki_program_desc pd = {.device = dev, .profile = vki_device_profile(dev), .allocator = a,
                           .node_capacity = 4096, .name = label};
    VKI_TRY(vki_program_create(&pd, &u->prog));
    const vki_unet_info *in = &u->info;
    u->x = vki_program_input(u->prog, VKI_DTYPE_F32, 4, (int64_t[4]){w, h, in->in_channels, batch}, "x");
    u->t = vki_program_input(u->prog, VKI_DTYPE_F32, 1, (int64_t[1]){batch}, "t");
    u->ctx = vki_program_input(u->prog, VKI_DTYPE_F32, 2,
                               (int64_t[2]){in->context_dim ? in->context_dim : 1, (int64_t)batch * n_ctx}, "ctx");
    u->result = forward(u);
    vki_program_output(u->prog, u->result, "out");
    vki_status st = vki_weights_status(u->weights);
    if (!st && !u->uploaded) {
        st = vki_weights_upload(u->weights);
        u->uploaded = !st;
    }
    if (!st && compile) st = vki_program_compile(u->prog, u->weights);
    if (st) {
        snprintf(u->error, sizeof u->error, "%s", vki_weights_error(u->weights)[0]
                                                      ? vki_weights_error(u->weights)
                                                      : vki_program_error(u->prog));
    }
    if (st || !compile) {
        vki_program_destroy(u->prog);
        u->prog = NULL;
    }
    return st;
}

vki_status vki_unet_load(const vki_unet_desc *desc, vki_unet **out, char *err, size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!desc || !desc->source || !desc->device || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_unet *u = vki__model_alloc(desc->allocator, sizeof *u);
    if (!u) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    u->allocator = desc->allocator ? *desc->allocator : (vki_allocator){0};
    u->d = *desc;
    snprintf(u->prefix, sizeof u->prefix, "%s", desc->prefix ? desc->prefix : "");
    vki_status st = read_structure(u, err, n);
    if (!st) {
        vki_weights_desc wd = {.source = *desc->source, .device = desc->device,
                               .profile = vki_device_profile(desc->device),
                               .allocator = desc->allocator, .model_name = "the SD U-Net",
                               .convert = desc->weight_type};
        st = vki_weights_create(&wd, &u->weights);
    }
    /* Every weight registered and uploaded now, through a graph at the smallest latent that is
     * never compiled: a missing, misshapen or unconvertible tensor fails the load, and the
     * weights' size is known before the first image. */
    uint32_t side = 1u << (u->info.levels ? u->info.levels - 1 : 0);
    if (!st && (st = build(u, side, side, 1, 1, false))) snprintf(err, n, "%s", u->error);
    if (st) {
        vki_unet_destroy(u);
        return st;
    }
    *out = u;
    return VKI_OK;
}

void vki_unet_destroy(vki_unet *u)
{
    if (!u) return;
    vki_program_destroy(u->prog);
    vki_weights_destroy(u->weights);
    vki_allocator a = u->allocator;
    vki__model_free(&a, u);
}

void vki_unet_release(vki_unet *u)
{
    if (u) vki_program_release(u->prog);
}

const vki_unet_info *vki_unet_info_get(const vki_unet *u) { return u ? &u->info : NULL; }
const char *vki_unet_last_error(const vki_unet *u) { return u ? u->error : ""; }
uint64_t vki_unet_weight_bytes(const vki_unet *u) { return u ? vki_weights_bytes(u->weights) : 0; }
void vki_unet_plan_stats(const vki_unet *u, vki_plan_stats *out)
{
    vki_program_plan_stats(u ? u->prog : NULL, out);
}
uint64_t vki_unet_activation_bytes(const vki_unet *u)
{
    return u && u->prog ? vki_program_activation_bytes(u->prog) : 0;
}

/* A failure of the device's part of an evaluation, with the runtime's message (a binding past
 * the device's limit, memory). */
static vki_status device_failure(vki_unet *u, vki_status st, const char *what)
{
    const char *why = vki_device_last_error(u->d.device);
    snprintf(u->error, sizeof u->error, "%s (%ux%u latent, batch %u): %s", what, u->w, u->h,
             u->batch, why && why[0] ? why : vki_status_string(st));
    return st;
}

vki_status vki_unet_eval(vki_unet *u, uint32_t w, uint32_t h, uint32_t batch, uint32_t n_ctx,
                         const float *x, const float *t, const float *context, float *out)
{
    if (!u || !x || !t || !out || (u->info.context_dim && !context)) return VKI_ERROR_INVALID_ARGUMENT;
    u->error[0] = 0;
    if (!w || !h || !batch || w > 1024 || h > 1024 || batch > 64 ||
        (u->info.context_dim && (n_ctx == 0 || n_ctx > 77 * 64))) {
        snprintf(u->error, sizeof u->error,
                 "unet: a %ux%u latent, batch %u, %u context tokens: want 1 to 1024 a side, 1 to 64 "
                 "in a batch, 1 to %u tokens", w, h, batch, n_ctx, 77 * 64);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    /* Each level halves the size: odd sizes would not meet their skip connections. */
    uint32_t levels = u->info.levels ? u->info.levels - 1 : 0;
    if ((w % (1u << levels)) || (h % (1u << levels))) {
        snprintf(u->error, sizeof u->error, "unet: a %ux%u latent does not halve %u times", w, h, levels);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (!u->prog || u->w != w || u->h != h || u->batch != batch || u->n_ctx != n_ctx)
        VKI_TRY(build(u, w, h, batch, n_ctx, true));
    uint64_t nx = (uint64_t)w * h * u->info.in_channels * batch;
    vki_status st = vki_program_upload(u->prog, u->x, x, nx * sizeof(float));
    if (!st) st = vki_program_upload(u->prog, u->t, t, batch * sizeof(float));
    if (st) return device_failure(u, st, "upload");
    if (u->info.context_dim) {
        /* [B][n_ctx][D] -> [n_ctx][B][D] (the transformer's token order). */
        uint64_t d = u->info.context_dim, count = d * batch * n_ctx;
        float *tmp = vki__model_alloc(&u->allocator, count * sizeof *tmp);
        if (!tmp) return VKI_ERROR_OUT_OF_HOST_MEMORY;
        for (uint32_t b = 0; b < batch; b++)
            for (uint32_t i = 0; i < n_ctx; i++)
                memcpy(tmp + ((uint64_t)i * batch + b) * d, context + ((uint64_t)b * n_ctx + i) * d,
                       d * sizeof *tmp);
        st = vki_program_upload(u->prog, u->ctx, tmp, count * sizeof *tmp);
        vki__model_free(&u->allocator, tmp);
        if (st) return device_failure(u, st, "upload");
    }
    if ((st = vki_program_run(u->prog))) return device_failure(u, st, "run");
    st = vki_program_download(u->prog, u->result, out,
                              (uint64_t)w * h * u->info.out_channels * batch * sizeof(float));
    return st ? device_failure(u, st, "download") : VKI_OK;
}
