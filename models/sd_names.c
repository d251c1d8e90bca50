/* Checkpoint layouts: a weight source that presents another one's tensors under the names the
 * SD architectures read. The mappings are the layouts' structure (which diffusers module is
 * which ldm module), not a list: a diffusers U-Net level of L resnets is ldm input blocks
 * (L + 1) i + j + 1, its downsampler input block (L + 1)(i + 1); an up level of L + 1 resnets is
 * output blocks (L + 1) i + j, its upsampler the last of them; the VAE decoder's up levels count
 * from the other end. */
#include "sd_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct renamed {
    char *name;
    uint64_t inner;           // index in the inner source
    uint32_t n_dims;          // 0: the inner tensor's shape
    int64_t ne[VKI_MAX_DIMS];
    uint64_t offset, size;    // a byte range of the inner tensor (size 0: all of it)
} renamed;

struct vki_renamed_source {
    vki_allocator allocator;
    vki_weight_source inner;
    renamed *t;               // sorted by name
    uint64_t count;
    char error[256];
};

/* ---- Name mappings --------------------------------------------------------------------------- */

/* snprintf that says whether it fitted (a name too long for the buffers maps to nothing). */
static bool put(char *out, size_t n, const char *fmt, ...) VKI_PRINTF(3, 4);
static bool put(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return k >= 0 && (size_t)k < n;
}

/* Replaces a leading `from` of *rest by `to` into out. */
static bool swap_head(const char *rest, const char *from, const char *to, char *out, size_t n)
{
    size_t k = strlen(from);
    if (strncmp(rest, from, k)) return false;
    return put(out, n, "%s%s", to, rest + k);
}

static void unet_resnet(const char *rest, char *out, size_t n)
{
    if (swap_head(rest, "norm1.", "in_layers.0.", out, n) ||
        swap_head(rest, "conv1.", "in_layers.2.", out, n) ||
        swap_head(rest, "time_emb_proj.", "emb_layers.1.", out, n) ||
        swap_head(rest, "norm2.", "out_layers.0.", out, n) ||
        swap_head(rest, "conv2.", "out_layers.3.", out, n) ||
        swap_head(rest, "conv_shortcut.", "skip_connection.", out, n))
        return;
    put(out, n, "%s", rest);
}

/* diffusers UNet2DConditionModel -> ldm UNetModel. L: resnets per down level. */
static bool map_unet(const char *in, uint32_t L, char *out, size_t n)
{
    unsigned i, j;
    int used = 0;
    char tail[256];
    if (swap_head(in, "conv_in.", "input_blocks.0.0.", out, n) ||
        swap_head(in, "time_embedding.linear_1.", "time_embed.0.", out, n) ||
        swap_head(in, "time_embedding.linear_2.", "time_embed.2.", out, n) ||
        swap_head(in, "conv_norm_out.", "out.0.", out, n) ||
        swap_head(in, "conv_out.", "out.2.", out, n))
        return true;
    if (sscanf(in, "down_blocks.%u.resnets.%u.%n", &i, &j, &used) == 2 && used) {
        unet_resnet(in + used, tail, sizeof tail);
        put(out, n, "input_blocks.%u.0.%s", (L + 1) * i + j + 1, tail);
        return true;
    }
    if (sscanf(in, "down_blocks.%u.attentions.%u.%n", &i, &j, &used) == 2 && used) {
        put(out, n, "input_blocks.%u.1.%s", (L + 1) * i + j + 1, in + used);
        return true;
    }
    if (sscanf(in, "down_blocks.%u.downsamplers.0.conv.%n", &i, &used) == 1 && used) {
        put(out, n, "input_blocks.%u.0.op.%s", (L + 1) * (i + 1), in + used);
        return true;
    }
    if (sscanf(in, "mid_block.resnets.%u.%n", &j, &used) == 1 && used) {
        unet_resnet(in + used, tail, sizeof tail);
        put(out, n, "middle_block.%u.%s", j * 2, tail);
        return true;
    }
    used = 0;
    if (sscanf(in, "mid_block.attentions.0.%n", &used) == 0 && used) {
        put(out, n, "middle_block.1.%s", in + used);
        return true;
    }
    if (sscanf(in, "up_blocks.%u.resnets.%u.%n", &i, &j, &used) == 2 && used) {
        unet_resnet(in + used, tail, sizeof tail);
        put(out, n, "output_blocks.%u.0.%s", (L + 1) * i + j, tail);
        return true;
    }
    if (sscanf(in, "up_blocks.%u.attentions.%u.%n", &i, &j, &used) == 2 && used) {
        put(out, n, "output_blocks.%u.1.%s", (L + 1) * i + j, in + used);
        return true;
    }
    /* The upsampler's index within its output block (1 or 2) depends on whether that block has
     * an attention: the caller fixes it up (fix_upsamplers). */
    if (sscanf(in, "up_blocks.%u.upsamplers.0.conv.%n", &i, &used) == 1 && used) {
        put(out, n, "output_blocks.%u.U.conv.%s", (L + 1) * i + L, in + used);
        return true;
    }
    return false;
}

static void vae_resnet(const char *rest, char *out, size_t n)
{
    if (!swap_head(rest, "conv_shortcut.", "nin_shortcut.", out, n)) put(out, n, "%s", rest);
}

static bool vae_attention(const char *rest, char *out, size_t n)
{
    static const char *const from[] = {"group_norm.", "to_q.", "to_k.", "to_v.", "to_out.0.",
                                       "query.", "key.", "value.", "proj_attn."};
    static const char *const to[] = {"norm.", "q.", "k.", "v.", "proj_out.", "q.", "k.", "v.", "proj_out."};
    for (size_t k = 0; k < sizeof from / sizeof from[0]; k++)
        if (swap_head(rest, from[k], to[k], out, n)) return true;
    return false;
}

/* diffusers AutoencoderKL -> ldm AutoencoderKL. levels: the decoder's up levels. */
static bool map_vae(const char *in, uint32_t levels, char *out, size_t n)
{
    const char *side = !strncmp(in, "encoder.", 8) ? "encoder" : !strncmp(in, "decoder.", 8) ? "decoder" : NULL;
    if (!side) return false;
    const char *r = in + 8;
    unsigned i, j;
    int used = 0;
    char tail[256];
    if (swap_head(r, "conv_norm_out.", "norm_out.", tail, sizeof tail)) {
        put(out, n, "%s.%s", side, tail);
        return true;
    }
    if (sscanf(r, "down_blocks.%u.resnets.%u.%n", &i, &j, &used) == 2 && used) {
        vae_resnet(r + used, tail, sizeof tail);
        put(out, n, "%s.down.%u.block.%u.%s", side, i, j, tail);
        return true;
    }
    if (sscanf(r, "down_blocks.%u.downsamplers.0.conv.%n", &i, &used) == 1 && used) {
        put(out, n, "%s.down.%u.downsample.conv.%s", side, i, r + used);
        return true;
    }
    if (sscanf(r, "up_blocks.%u.resnets.%u.%n", &i, &j, &used) == 2 && used && i < levels) {
        vae_resnet(r + used, tail, sizeof tail);
        put(out, n, "%s.up.%u.block.%u.%s", side, levels - 1 - i, j, tail);
        return true;
    }
    if (sscanf(r, "up_blocks.%u.upsamplers.0.conv.%n", &i, &used) == 1 && used && i < levels) {
        put(out, n, "%s.up.%u.upsample.conv.%s", side, levels - 1 - i, r + used);
        return true;
    }
    if (sscanf(r, "mid_block.resnets.%u.%n", &j, &used) == 1 && used) {
        vae_resnet(r + used, tail, sizeof tail);
        put(out, n, "%s.mid.block_%u.%s", side, j + 1, tail);
        return true;
    }
    used = 0;
    if (sscanf(r, "mid_block.attentions.0.%n", &used) == 0 && used && vae_attention(r + used, tail, sizeof tail)) {
        put(out, n, "%s.mid.attn_1.%s", side, tail);
        return true;
    }
    return false;
}

/* OpenCLIP text tower -> Hugging Face CLIPTextModel (the fused attention projection is split
 * by the caller). */
static bool map_openclip(const char *in, char *out, size_t n)
{
    unsigned l;
    int used = 0;
    if (swap_head(in, "token_embedding.", "text_model.embeddings.token_embedding.", out, n) ||
        swap_head(in, "ln_final.", "text_model.final_layer_norm.", out, n))
        return true;
    if (!strcmp(in, "positional_embedding")) {
        put(out, n, "text_model.embeddings.position_embedding.weight");
        return true;
    }
    if (sscanf(in, "transformer.resblocks.%u.%n", &l, &used) == 1 && used) {
        static const char *const from[] = {"ln_1.", "ln_2.", "attn.out_proj.", "mlp.c_fc.", "mlp.c_proj."};
        static const char *const to[] = {"layer_norm1.", "layer_norm2.", "self_attn.out_proj.", "mlp.fc1.", "mlp.fc2."};
        for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
            char tail[128];
            if (swap_head(in + used, from[k], to[k], tail, sizeof tail)) {
                put(out, n, "text_model.encoder.layers.%u.%s", l, tail);
                return true;
            }
        }
    }
    return false;
}

/* ---- The source ------------------------------------------------------------------------------ */

static vki_status fail(vki_renamed_source *r, vki_status st, const char *fmt, ...) VKI_PRINTF(3, 4);
static vki_status fail(vki_renamed_source *r, vki_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return st;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const renamed *)a)->name, ((const renamed *)b)->name);
}

static uint64_t src_count(void *file) { return ((vki_renamed_source *)file)->count; }
static const char *src_error(void *file) { return ((vki_renamed_source *)file)->error; }

static vki_status present(vki_renamed_source *r, const renamed *e, vki_source_tensor *out)
{
    VKI_TRY(r->inner.at(r->inner.file, e->inner, out));
    out->name = e->name;
    if (e->n_dims) {
        out->n_dims = e->n_dims;
        memcpy(out->ne, e->ne, sizeof out->ne);
    }
    if (e->size) {
        out->data = (const uint8_t *)out->data + e->offset;
        out->size = e->size;
    }
    return VKI_OK;
}

static vki_status src_at(void *file, uint64_t index, vki_source_tensor *out)
{
    vki_renamed_source *r = file;
    if (index >= r->count) return VKI_ERROR_INVALID_ARGUMENT;
    return present(r, &r->t[index], out);
}

static vki_status src_find(void *file, const char *name, vki_source_tensor *out)
{
    vki_renamed_source *r = file;
    renamed key = {.name = (char *)name};
    const renamed *e = bsearch(&key, r->t, r->count, sizeof *r->t, by_name);
    return e ? present(r, e, out) : VKI_ERROR_NOT_FOUND;
}

static char *dup_name(vki_renamed_source *r, const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = vki__model_alloc(&r->allocator, n);
    if (c) memcpy(c, s, n);
    return c;
}

static vki_status add(vki_renamed_source *r, uint64_t *cap, const char *name, uint64_t inner,
                      const renamed *shape)
{
    if (r->count == *cap) {
        uint64_t ncap = *cap ? *cap * 2 : 256;
        renamed *t = vki__model_alloc(&r->allocator, ncap * sizeof *t);
        if (!t) return VKI_ERROR_OUT_OF_HOST_MEMORY;
        if (r->count) memcpy(t, r->t, r->count * sizeof *t);
        vki__model_free(&r->allocator, r->t);
        r->t = t;
        *cap = ncap;
    }
    renamed *e = &r->t[r->count];
    *e = shape ? *shape : (renamed){0};
    e->inner = inner;
    if (!(e->name = dup_name(r, name))) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    r->count++;
    return VKI_OK;
}

/* The largest j + 1 over names "<head>%u.<...>" (resnets per level, up levels). */
static uint32_t count_index(const vki_weight_source *s, const char *fmt)
{
    uint32_t most = 0;
    uint64_t n = s->count(s->file);
    for (uint64_t i = 0; i < n; i++) {
        vki_source_tensor t;
        unsigned k;
        int used = 0;
        if (s->at(s->file, i, &t) == VKI_OK && sscanf(t.name, fmt, &k, &used) == 1 && used &&
            k < 4096 && k + 1 > most)
            most = k + 1;
    }
    return most;
}

/* ldm puts an up level's upsampler after its attention when it has one: "output_blocks.N.U."
 * becomes .2. or .1. */
static vki_status fix_upsamplers(vki_renamed_source *r)
{
    for (uint64_t i = 0; i < r->count; i++) {
        char *u = strstr(r->t[i].name, ".U.conv.");
        if (!u) continue;
        char probe[192];
        snprintf(probe, sizeof probe, "%.*s.1.norm.weight", (int)(u - r->t[i].name), r->t[i].name);
        bool attention = false; // the block's transformer (its group norm) comes first
        for (uint64_t k = 0; k < r->count && !attention; k++)
            attention = !strcmp(r->t[k].name, probe);
        u[1] = attention ? '2' : '1';
    }
    return VKI_OK;
}

static vki_status build(vki_renamed_source *r, vki_sd_names names, const char *prefix)
{
    const vki_weight_source *s = &r->inner;
    uint32_t L = count_index(s, "down_blocks.0.resnets.%u.%n");
    uint32_t levels = count_index(s, "decoder.up_blocks.%u.%n");
    size_t plen = prefix ? strlen(prefix) : 0;
    uint64_t cap = 0, n = s->count(s->file);
    for (uint64_t i = 0; i < n; i++) {
        vki_source_tensor t;
        VKI_TRY(s->at(s->file, i, &t));
        if (plen && strncmp(t.name, prefix, plen)) continue;
        const char *in = t.name + plen;
        char out[256];
        bool mapped = names == VKI_SD_NAMES_UNET_DIFFUSERS ? map_unet(in, L, out, sizeof out)
                    : names == VKI_SD_NAMES_VAE_DIFFUSERS  ? map_vae(in, levels, out, sizeof out)
                                                           : map_openclip(in, out, sizeof out);
        renamed shape = {0};
        /* diffusers' VAE attention projections are Linear [C, C]; ldm's are 1x1 convolutions. */
        if (names == VKI_SD_NAMES_VAE_DIFFUSERS && mapped && strstr(out, ".attn_1.") &&
            strstr(out, ".weight") && !strstr(out, ".norm.") && t.n_dims == 2) {
            shape.n_dims = 4;
            shape.ne[0] = shape.ne[1] = 1;
            shape.ne[2] = t.ne[0];
            shape.ne[3] = t.ne[1];
        }
        unsigned l;
        int used = 0;
        if (names == VKI_SD_NAMES_OPENCLIP && sscanf(in, "transformer.resblocks.%u.attn.in_proj_%n", &l, &used) == 1 && used) {
            bool weight = !strcmp(in + used, "weight"), bias = !strcmp(in + used, "bias");
            int64_t c = t.ne[0], elems = 1;
            for (uint32_t d = 0; d < t.n_dims; d++) elems *= t.ne[d];
            if ((!weight && !bias) || (weight && (t.n_dims != 2 || t.ne[1] != 3 * c)) ||
                (bias && (t.n_dims != 1 || t.ne[0] % 3)) || elems <= 0 || t.size % (uint64_t)elems)
                return fail(r, VKI_ERROR_BAD_FILE, "%s: not a fused [3C, C] attention projection", t.name);
            uint64_t part = t.size / 3;
            static const char qkv[3] = {'q', 'k', 'v'};
            for (int k = 0; k < 3; k++) {
                renamed slice = {.n_dims = t.n_dims, .offset = part * (uint64_t)k, .size = part};
                slice.ne[0] = weight ? c : t.ne[0] / 3;
                slice.ne[1] = weight ? c : 1;
                slice.ne[2] = slice.ne[3] = 1;
                snprintf(out, sizeof out, "text_model.encoder.layers.%u.self_attn.%c_proj.%s", l, qkv[k],
                         weight ? "weight" : "bias");
                VKI_TRY(add(r, &cap, out, i, &slice));
            }
            continue;
        }
        VKI_TRY(add(r, &cap, mapped ? out : in, i, shape.n_dims ? &shape : NULL));
    }
    if (names == VKI_SD_NAMES_UNET_DIFFUSERS) VKI_TRY(fix_upsamplers(r));
    qsort(r->t, r->count, sizeof *r->t, by_name);
    for (uint64_t i = 1; i < r->count; i++)
        if (!strcmp(r->t[i - 1].name, r->t[i].name))
            return fail(r, VKI_ERROR_BAD_FILE, "two tensors of the file both map to %s", r->t[i].name);
    return VKI_OK;
}

vki_status vki_renamed_source_create(const vki_weight_source *inner, vki_sd_names names,
                                     const char *prefix, const vki_allocator *allocator,
                                     vki_renamed_source **out, char *err, size_t n)
{
    if (!inner || !inner->at || !out || names < VKI_SD_NAMES_UNET_DIFFUSERS || names > VKI_SD_NAMES_OPENCLIP)
        return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_renamed_source *r = vki__model_alloc(allocator, sizeof *r);
    if (!r) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    r->allocator = allocator ? *allocator : (vki_allocator){0};
    r->inner = *inner;
    vki_status st = build(r, names, prefix);
    if (st) {
        if (err && n) snprintf(err, n, "%s", r->error[0] ? r->error : vki_status_string(st));
        vki_renamed_source_destroy(r);
        return st;
    }
    *out = r;
    return VKI_OK;
}

void vki_renamed_source_destroy(vki_renamed_source *r)
{
    if (!r) return;
    for (uint64_t i = 0; i < r->count; i++) vki__model_free(&r->allocator, r->t[i].name);
    vki__model_free(&r->allocator, r->t);
    vki_allocator a = r->allocator;
    vki__model_free(&a, r);
}

vki_weight_source vki_renamed_source_get(vki_renamed_source *r)
{
    return (vki_weight_source){.file = r, .count = src_count, .at = src_at, .find = src_find,
                               .last_error = src_error};
}
