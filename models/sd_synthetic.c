/* Synthetic Stable Diffusion checkpoints: the full-size SD 1.5 or SD 2.1 single-file layout
 * (every tensor a real checkpoint's U-Net, VAE and text encoder have, at its real shape) with
 * seeded random F16 weights, for benchmarks where no trained checkpoint can be fetched. The
 * structure follows the published configurations: U-Net 320 channels x (1, 2, 4, 4), two
 * resnets per level, attention on the first three levels, 8 heads (SD 1.5) or 64-wide heads
 * with linear projections and 1024-wide context (SD 2.1); VAE 128 x (1, 2, 4, 4); CLIP ViT-L/14
 * text (12 layers, 768) or OpenCLIP ViT-H text (24 layers, 1024). Weights are uniform with the
 * variance of 1/fan_in, norms' scales 1 and biases 0, so activations stay finite through the
 * network; the pictures are noise, the work is the real model's. */
#include "vkinfer_models.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum fill { RANDOM, ONES, ZEROS } fill;

typedef struct writer {
    char *header;          // JSON, grown as tensors are named
    size_t hlen, hcap;
    uint8_t *data;         // NULL while measuring
    uint64_t size;         // data bytes so far
    uint64_t rng;
    bool failed;
} writer;

static void hput(writer *w, const char *fmt, ...) VKI_PRINTF(2, 3);
static void hput(writer *w, const char *fmt, ...)
{
    if (w->failed) return;
    va_list ap;
    va_start(ap, fmt);
    char line[512];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        w->failed = true;
        return;
    }
    if (w->hlen + (size_t)n + 1 > w->hcap) {
        size_t cap = w->hcap ? 2 * w->hcap : 1 << 16;
        while (cap < w->hlen + (size_t)n + 1) cap *= 2;
        char *grown = realloc(w->header, cap);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->header = grown;
        w->hcap = cap;
    }
    memcpy(w->header + w->hlen, line, (size_t)n + 1);
    w->hlen += (size_t)n;
}

static uint16_t f16_of(float f)
{
    /* Values here are small and normal or zero: sign, rebias the exponent, round the mantissa. */
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000, exp = (b >> 23) & 0xff, man = b & 0x7fffff;
    if (exp < 103) return (uint16_t)sign; // below half's subnormals: zero
    if (exp < 113) return (uint16_t)(sign | ((man | 0x800000) >> (126 - exp)));
    uint32_t h = sign | ((exp - 112) << 10) | (man >> 13);
    if (man & 0x1000) h++; // round half up: fine for noise
    return (uint16_t)h;
}

/* One tensor: PyTorch shape (outermost first), F16. */
static void tensor(writer *w, fill f, const char *name, uint32_t ndim, const int64_t *shape)
{
    uint64_t count = 1, fan_in = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        count *= (uint64_t)shape[i];
        if (i) fan_in *= (uint64_t)shape[i];
    }
    hput(w, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[", w->hlen > 1 ? "," : "", name);
    for (uint32_t i = 0; i < ndim; i++) hput(w, i ? ",%lld" : "%lld", (long long)shape[i]);
    hput(w, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)w->size,
         (unsigned long long)(w->size + 2 * count));
    if (w->data) {
        uint16_t *p = (uint16_t *)(w->data + w->size);
        /* Uniform in [-a, a] has variance a^2 / 3: a = sqrt(3 / fan_in). */
        float a = sqrtf(3.0f / (float)(ndim > 1 ? fan_in : 1));
        for (uint64_t i = 0; i < count; i++) {
            if (f == RANDOM) {
                w->rng ^= w->rng << 13;
                w->rng ^= w->rng >> 7;
                w->rng ^= w->rng << 17;
                float u = (float)(w->rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
                p[i] = f16_of(u * a);
            } else {
                p[i] = f == ONES ? 0x3c00 : 0;
            }
        }
    }
    w->size += 2 * count;
}

#define T(f, ...) tensor(w, f, name, sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (int64_t[]){__VA_ARGS__})

static void named(char *out, size_t n, const char *fmt, ...) VKI_PRINTF(3, 4);
static void named(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static void linear(writer *w, const char *base, const char *what, int64_t out, int64_t in, bool bias)
{
    char name[256];
    named(name, sizeof name, "%s.%s.weight", base, what);
    T(RANDOM, out, in);
    if (!bias) return;
    named(name, sizeof name, "%s.%s.bias", base, what);
    T(ZEROS, out);
}

static void conv(writer *w, const char *base, const char *what, int64_t out, int64_t in, int64_t k)
{
    char name[256];
    named(name, sizeof name, "%s.%s.weight", base, what);
    T(RANDOM, out, in, k, k);
    named(name, sizeof name, "%s.%s.bias", base, what);
    T(ZEROS, out);
}

static void norm(writer *w, const char *base, const char *what, int64_t c)
{
    char name[256];
    named(name, sizeof name, "%s.%s.weight", base, what);
    T(ONES, c);
    named(name, sizeof name, "%s.%s.bias", base, what);
    T(ZEROS, c);
}

typedef struct shape {
    const char *name;
    int version;
    int64_t context, text_width, text_layers, text_ff;
} shape;

static const shape shapes[] = {
    {"sd15", 1, 768, 768, 12, 3072},
    {"sd21", 2, 1024, 1024, 24, 4096},
};

/* ---- U-Net ----------------------------------------------------------------------------------- */

static void unet_resnet(writer *w, const char *b, int64_t cin, int64_t cout, int64_t emb)
{
    norm(w, b, "in_layers.0", cin);
    conv(w, b, "in_layers.2", cout, cin, 3);
    linear(w, b, "emb_layers.1", cout, emb, true);
    norm(w, b, "out_layers.0", cout);
    conv(w, b, "out_layers.3", cout, cout, 3);
    if (cin != cout) conv(w, b, "skip_connection", cout, cin, 1);
}

static void unet_transformer(writer *w, const shape *s, const char *b, int64_t c)
{
    char t[160];
    norm(w, b, "norm", c);
    if (s->version == 2) linear(w, b, "proj_in", c, c, true);
    else conv(w, b, "proj_in", c, c, 1);
    named(t, sizeof t, "%s.transformer_blocks.0", b);
    linear(w, t, "attn1.to_q", c, c, false);
    linear(w, t, "attn1.to_k", c, c, false);
    linear(w, t, "attn1.to_v", c, c, false);
    linear(w, t, "attn1.to_out.0", c, c, true);
    linear(w, t, "ff.net.0.proj", 8 * c, c, true);
    linear(w, t, "ff.net.2", c, 4 * c, true);
    linear(w, t, "attn2.to_q", c, c, false);
    linear(w, t, "attn2.to_k", c, s->context, false);
    linear(w, t, "attn2.to_v", c, s->context, false);
    linear(w, t, "attn2.to_out.0", c, c, true);
    norm(w, t, "norm1", c);
    norm(w, t, "norm2", c);
    norm(w, t, "norm3", c);
    if (s->version == 2) linear(w, b, "proj_out", c, c, true);
    else conv(w, b, "proj_out", c, c, 1);
}

static void unet(writer *w, const shape *s)
{
    const char *p = "model.diffusion_model";
    const int64_t mc = 320, mult[4] = {1, 2, 4, 4}, emb = 4 * mc;
    const bool attn[4] = {true, true, true, false};
    char b[160];
    named(b, sizeof b, "%s.time_embed", p);
    linear(w, b, "0", emb, mc, true);
    linear(w, b, "2", emb, emb, true);
    named(b, sizeof b, "%s.input_blocks.0", p);
    conv(w, b, "0", mc, 4, 3);
    int64_t skips[16], ch = mc;
    int n_skip = 0, idx = 1;
    skips[n_skip++] = mc;
    for (int l = 0; l < 4; l++) {
        for (int r = 0; r < 2; r++, idx++) {
            named(b, sizeof b, "%s.input_blocks.%d.0", p, idx);
            unet_resnet(w, b, ch, mult[l] * mc, emb);
            ch = mult[l] * mc;
            if (attn[l]) {
                named(b, sizeof b, "%s.input_blocks.%d.1", p, idx);
                unet_transformer(w, s, b, ch);
            }
            skips[n_skip++] = ch;
        }
        if (l != 3) {
            named(b, sizeof b, "%s.input_blocks.%d.0", p, idx++);
            conv(w, b, "op", ch, ch, 3);
            skips[n_skip++] = ch;
        }
    }
    named(b, sizeof b, "%s.middle_block.0", p);
    unet_resnet(w, b, ch, ch, emb);
    named(b, sizeof b, "%s.middle_block.1", p);
    unet_transformer(w, s, b, ch);
    named(b, sizeof b, "%s.middle_block.2", p);
    unet_resnet(w, b, ch, ch, emb);
    idx = 0;
    for (int l = 3; l >= 0; l--)
        for (int r = 0; r < 3; r++, idx++) {
            named(b, sizeof b, "%s.output_blocks.%d.0", p, idx);
            unet_resnet(w, b, ch + skips[--n_skip], mult[l] * mc, emb);
            ch = mult[l] * mc;
            if (attn[l]) {
                named(b, sizeof b, "%s.output_blocks.%d.1", p, idx);
                unet_transformer(w, s, b, ch);
            }
            if (l && r == 2) {
                named(b, sizeof b, "%s.output_blocks.%d.%d", p, idx, attn[l] ? 2 : 1);
                conv(w, b, "conv", ch, ch, 3);
            }
        }
    named(b, sizeof b, "%s.out", p);
    norm(w, b, "0", ch);
    conv(w, b, "2", 4, ch, 3);
}

/* ---- VAE ------------------------------------------------------------------------------------- */

static void vae_resnet(writer *w, const char *b, int64_t cin, int64_t cout)
{
    norm(w, b, "norm1", cin);
    conv(w, b, "conv1", cout, cin, 3);
    norm(w, b, "norm2", cout);
    conv(w, b, "conv2", cout, cout, 3);
    if (cin != cout) conv(w, b, "nin_shortcut", cout, cin, 1);
}

static void vae_mid(writer *w, const char *side, int64_t c)
{
    char b[160];
    named(b, sizeof b, "first_stage_model.%s.mid.block_1", side);
    vae_resnet(w, b, c, c);
    named(b, sizeof b, "first_stage_model.%s.mid.attn_1", side);
    norm(w, b, "norm", c);
    conv(w, b, "q", c, c, 1);
    conv(w, b, "k", c, c, 1);
    conv(w, b, "v", c, c, 1);
    conv(w, b, "proj_out", c, c, 1);
    named(b, sizeof b, "first_stage_model.%s.mid.block_2", side);
    vae_resnet(w, b, c, c);
}

static void vae(writer *w)
{
    const int64_t base = 128, mult[4] = {1, 2, 4, 4};
    char b[160];
    conv(w, "first_stage_model.encoder", "conv_in", base, 3, 3);
    int64_t ch = base;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 2; j++) {
            named(b, sizeof b, "first_stage_model.encoder.down.%d.block.%d", i, j);
            vae_resnet(w, b, ch, base * mult[i]);
            ch = base * mult[i];
        }
        if (i != 3) {
            named(b, sizeof b, "first_stage_model.encoder.down.%d.downsample", i);
            conv(w, b, "conv", ch, ch, 3);
        }
    }
    vae_mid(w, "encoder", ch);
    norm(w, "first_stage_model.encoder", "norm_out", ch);
    conv(w, "first_stage_model.encoder", "conv_out", 8, ch, 3);
    conv(w, "first_stage_model", "quant_conv", 8, 8, 1);
    conv(w, "first_stage_model", "post_quant_conv", 4, 4, 1);
    ch = base * mult[3];
    conv(w, "first_stage_model.decoder", "conv_in", ch, 4, 3);
    vae_mid(w, "decoder", ch);
    for (int i = 3; i >= 0; i--) {
        for (int j = 0; j < 3; j++) {
            named(b, sizeof b, "first_stage_model.decoder.up.%d.block.%d", i, j);
            vae_resnet(w, b, ch, base * mult[i]);
            ch = base * mult[i];
        }
        if (i) {
            named(b, sizeof b, "first_stage_model.decoder.up.%d.upsample", i);
            conv(w, b, "conv", ch, ch, 3);
        }
    }
    norm(w, "first_stage_model.decoder", "norm_out", ch);
    conv(w, "first_stage_model.decoder", "conv_out", 3, ch, 3);
}

/* ---- Text encoder ---------------------------------------------------------------------------- */

static void text(writer *w, const shape *s)
{
    const int64_t c = s->text_width, vocab = 49408, ctx = 77;
    char name[256], b[160];
    if (s->version == 1) {
        const char *p = "cond_stage_model.transformer.text_model";
        named(name, sizeof name, "%s.embeddings.token_embedding.weight", p);
        T(RANDOM, vocab, c);
        named(name, sizeof name, "%s.embeddings.position_embedding.weight", p);
        T(RANDOM, ctx, c);
        for (int64_t l = 0; l < s->text_layers; l++) {
            named(b, sizeof b, "%s.encoder.layers.%lld", p, (long long)l);
            linear(w, b, "self_attn.q_proj", c, c, true);
            linear(w, b, "self_attn.k_proj", c, c, true);
            linear(w, b, "self_attn.v_proj", c, c, true);
            linear(w, b, "self_attn.out_proj", c, c, true);
            norm(w, b, "layer_norm1", c);
            norm(w, b, "layer_norm2", c);
            linear(w, b, "mlp.fc1", s->text_ff, c, true);
            linear(w, b, "mlp.fc2", c, s->text_ff, true);
        }
        norm(w, p, "final_layer_norm", c);
        return;
    }
    const char *p = "cond_stage_model.model";
    named(name, sizeof name, "%s.token_embedding.weight", p);
    T(RANDOM, vocab, c);
    named(name, sizeof name, "%s.positional_embedding", p);
    T(RANDOM, ctx, c);
    for (int64_t l = 0; l < s->text_layers; l++) {
        named(b, sizeof b, "%s.transformer.resblocks.%lld", p, (long long)l);
        named(name, sizeof name, "%s.attn.in_proj_weight", b);
        T(RANDOM, 3 * c, c);
        named(name, sizeof name, "%s.attn.in_proj_bias", b);
        T(ZEROS, 3 * c);
        linear(w, b, "attn.out_proj", c, c, true);
        norm(w, b, "ln_1", c);
        norm(w, b, "ln_2", c);
        linear(w, b, "mlp.c_fc", s->text_ff, c, true);
        linear(w, b, "mlp.c_proj", c, s->text_ff, true);
    }
    norm(w, p, "ln_final", c);
}

static void all(writer *w, const shape *s)
{
    w->hlen = 0;
    w->size = 0;
    hput(w, "{");
    text(w, s);
    unet(w, s);
    vae(w);
    hput(w, "}");
}

vki_status vki_sd_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                            char *err, size_t n)
{
    if (err && n) err[0] = 0;
    if (!name || !out_bytes || !out_size) return VKI_ERROR_INVALID_ARGUMENT;
    *out_bytes = NULL;
    *out_size = 0;
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) s = &shapes[i];
    if (!s) {
        if (err && n) snprintf(err, n, "no synthetic SD model %s (there are sd15 and sd21)", name);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    writer w = {.rng = seed * 0x9E3779B97F4A7C15ull + 1};
    all(&w, s); // measure
    if (w.failed) {
        free(w.header);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    size_t hlen = (w.hlen + 7) & ~(size_t)7; // the data starts 8-aligned
    size_t total = 8 + hlen + (size_t)w.size;
    uint8_t *bytes = malloc(total);
    if (!bytes) {
        free(w.header);
        if (err && n) snprintf(err, n, "synthetic %s: out of host memory for %zu MiB", name, total >> 20);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    w.data = bytes + 8 + hlen;
    all(&w, s); // fill
    if (w.failed) {
        free(w.header);
        free(bytes);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    for (int i = 0; i < 8; i++) bytes[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(bytes + 8, w.header, w.hlen);
    memset(bytes + 8 + w.hlen, ' ', hlen - w.hlen);
    free(w.header);
    *out_bytes = bytes;
    *out_size = total;
    return VKI_OK;
}
