/* The CLIP text encoder of Stable Diffusion 1.x (OpenAI's ViT-L/14 text tower, Hugging Face's
 * CLIPTextModel layout, as single-file checkpoints and diffusers' text_encoder/ hold it): token
 * and position embeddings, pre-norm transformer layers with causal self-attention and a
 * quick-GELU MLP, a final layer norm. One program over the shared weights module; the shape of
 * the network is read from the tensors (width, layers, context, vocabulary, MLP width), heads
 * are 64 wide as in every CLIP text tower. "Clip skip" N takes the output of layer n - N + 1 and
 * applies the final norm to it, as AUTOMATIC1111 and stable-diffusion.cpp do. */
#include "sd_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HEAD_DIM 64

struct vki_clip_text {
    vki_allocator allocator;
    vki_clip_text_info info;
    char prefix[96];
    vki_weights *weights;
    vki_program *prog;
    vki_tensor ids, hidden;
    char error[512];
};

/* The tensor `prefix + name` (fmt with one %u for the layer). */
static vki_tensor W(vki_clip_text *m, const char *fmt, uint32_t il, uint32_t ndim, const int64_t *ne)
{
    char tail[96], name[192];
    snprintf(tail, sizeof tail, fmt, il);
    snprintf(name, sizeof name, "%s%s", m->prefix, tail);
    return vki_weights_tensor(m->weights, m->prog, name, ndim, ne, false, true);
}

/* t as F32: biases and position embeddings stored in F16 or BF16 are added to F32 activations. */
static vki_tensor f32(vki_clip_text *m, vki_tensor t)
{
    vki_tensor_info info;
    vki_graph *g = vki_program_graph(m->prog);
    if (!vki_tensor_get_info(g, t, &info) || info.dtype == VKI_DTYPE_F32) return t;
    return vki_cast(g, t, VKI_DTYPE_F32);
}

/* y = W x + b for the Linear `fmt` of layer il: weight [k, n] (PyTorch's [out, in] row-major),
 * bias [n]. */
static vki_tensor linear(vki_clip_text *m, vki_tensor x, const char *fmt, uint32_t il, int64_t k, int64_t n)
{
    char wname[96], bname[96];
    snprintf(wname, sizeof wname, "%s.weight", fmt);
    snprintf(bname, sizeof bname, "%s.bias", fmt);
    vki_graph *g = vki_program_graph(m->prog);
    char tail[96], name[192];
    snprintf(tail, sizeof tail, wname, il);
    snprintf(name, sizeof name, "%s%s", m->prefix, tail);
    vki_tensor y = vki_matmul(g, vki_weights_linear(m->weights, m->prog, name, k, n), x);
    return vki_add(g, y, f32(m, W(m, bname, il, 1, (int64_t[1]){n})));
}

static vki_tensor norm(vki_clip_text *m, vki_tensor x, const char *fmt, uint32_t il)
{
    char wname[96], bname[96];
    snprintf(wname, sizeof wname, "%s.weight", fmt);
    snprintf(bname, sizeof bname, "%s.bias", fmt);
    int64_t w = m->info.width;
    return vki_layer_norm(vki_program_graph(m->prog), x, W(m, wname, il, 1, &w),
                          W(m, bname, il, 1, &w), 1e-5f);
}

/* The encoder as a graph: ids I32 [n_ctx] -> hidden F32 [width, n_ctx]. */
static vki_tensor forward(vki_clip_text *m, vki_tensor ids, uint32_t n_layer)
{
    vki_graph *g = vki_program_graph(m->prog);
    const vki_clip_text_info *in = &m->info;
    int64_t w = in->width, t = in->n_ctx, heads = w / HEAD_DIM;
    vki_tensor x = vki_get_rows(g, W(m, "embeddings.token_embedding.weight", 0, 2,
                                     (int64_t[2]){w, in->n_vocab}), ids);
    x = vki_add(g, x, f32(m, W(m, "embeddings.position_embedding.weight", 0, 2, (int64_t[2]){w, t})));
    const float scale = 1.0f / sqrtf((float)HEAD_DIM);
    for (uint32_t il = 0; il < n_layer && vki_weights_status(m->weights) == VKI_OK; il++) {
        vki_tensor h = norm(m, x, "encoder.layers.%u.layer_norm1", il);
        const int64_t hd[3] = {HEAD_DIM, heads, t};
        vki_tensor q = vki_reshape(g, linear(m, h, "encoder.layers.%u.self_attn.q_proj", il, w, w), 3, hd);
        vki_tensor k = vki_reshape(g, linear(m, h, "encoder.layers.%u.self_attn.k_proj", il, w, w), 3, hd);
        vki_tensor v = vki_reshape(g, linear(m, h, "encoder.layers.%u.self_attn.v_proj", il, w, w), 3, hd);
        vki_tensor a = vki_reshape(g, vki_attention(g, q, k, v, (vki_tensor){0}, scale, true), 2,
                                   (int64_t[2]){w, t});
        x = vki_add(g, x, linear(m, a, "encoder.layers.%u.self_attn.out_proj", il, w, w));
        h = norm(m, x, "encoder.layers.%u.layer_norm2", il);
        h = vki_activate(g, linear(m, h, "encoder.layers.%u.mlp.fc1", il, w, in->n_ff), in->act);
        x = vki_add(g, x, linear(m, h, "encoder.layers.%u.mlp.fc2", il, in->n_ff, w));
    }
    return norm(m, x, "final_layer_norm", 0);
}

/* The network's shape from its tensors. */
static vki_status read_shape(vki_clip_text *m, const vki_weight_source *file, char *err, size_t n)
{
    vki_source_tensor tok, pos, fc1;
    char name[192];
    snprintf(name, sizeof name, "%sembeddings.token_embedding.weight", m->prefix);
    vki_status st = file->find(file->file, name, &tok);
    if (st == VKI_ERROR_NOT_FOUND) {
        snprintf(err, n, "clip text encoder: no tensor %s (a CLIP text model under this prefix)", name);
        return VKI_ERROR_BAD_FILE;
    }
    snprintf(name, sizeof name, "%sembeddings.position_embedding.weight", m->prefix);
    if (st || file->find(file->file, name, &pos) != VKI_OK) {
        snprintf(err, n, "clip text encoder: no usable %s", name);
        return VKI_ERROR_BAD_FILE;
    }
    snprintf(name, sizeof name, "%sencoder.layers.0.mlp.fc1.weight", m->prefix);
    if (file->find(file->file, name, &fc1) != VKI_OK) {
        snprintf(err, n, "clip text encoder: no usable %s", name);
        return VKI_ERROR_BAD_FILE;
    }
    uint32_t layers = 0;
    for (;; layers++) {
        vki_source_tensor t;
        snprintf(name, sizeof name, "%sencoder.layers.%u.layer_norm1.weight", m->prefix, layers);
        if (layers == 256 || file->find(file->file, name, &t) == VKI_ERROR_NOT_FOUND) break;
    }
    m->info = (vki_clip_text_info){
        .width = (uint32_t)tok.ne[0], .n_vocab = (uint32_t)tok.ne[1], .n_ctx = (uint32_t)pos.ne[1],
        .n_layer = layers, .n_ff = (uint32_t)fc1.ne[1], .act = m->info.act,
    };
    const vki_clip_text_info *in = &m->info;
    if (in->width == 0 || in->width % HEAD_DIM || in->width > 8192 || pos.ne[0] != tok.ne[0] ||
        in->n_ctx == 0 || in->n_ctx > 1024 || in->n_vocab == 0 || tok.ne[1] > (1 << 22) ||
        in->n_layer == 0 || in->n_ff == 0 || fc1.ne[1] > (1 << 16) || fc1.ne[0] != tok.ne[0]) {
        snprintf(err, n, "clip text encoder: width %lld (a multiple of %d, at most 8192), context "
                 "%lld, vocabulary %lld, %u layers, MLP %lld wide: not a CLIP text tower vkinfer runs",
                 (long long)tok.ne[0], HEAD_DIM, (long long)pos.ne[1], (long long)tok.ne[1], layers,
                 (long long)fc1.ne[1]);
        return VKI_ERROR_UNSUPPORTED;
    }
    return VKI_OK;
}

static vki_status load(vki_clip_text *m, vki_device *dev, const vki_weight_source *file,
                       const vki_clip_text_desc *d, char *err, size_t n)
{
    snprintf(m->prefix, sizeof m->prefix, "%s", d->prefix ? d->prefix : "text_model.");
    m->info.act = d->act ? d->act : VKI_ACT_QUICK_GELU;
    VKI_TRY(read_shape(m, file, err, n));
    uint32_t skip = d->clip_skip ? d->clip_skip : 1;
    if (skip > m->info.n_layer) {
        snprintf(err, n, "clip text encoder: clip skip %u of a %u-layer model", skip, m->info.n_layer);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    const vki_profile *profile = vki_device_profile(dev);
    const vki_allocator *a = m->allocator.alloc ? &m->allocator : NULL;
    vki_weights_desc wd = {.source = *file, .device = dev,
                           .profile = profile, .allocator = a, .model_name = "the CLIP text encoder",
                           .convert = d->weight_type};
    VKI_TRY(vki_weights_create(&wd, &m->weights));
    vki_program_desc pd = {.device = dev, .profile = profile, .allocator = a, .name = "clip text"};
    VKI_TRY(vki_program_create(&pd, &m->prog));
    m->ids = vki_program_input(m->prog, VKI_DTYPE_I32, 1, (int64_t[1]){m->info.n_ctx}, "ids");
    m->hidden = forward(m, m->ids, m->info.n_layer - (skip - 1));
    vki_program_output(m->prog, m->hidden, "hidden");
    vki_status st = vki_weights_upload(m->weights);
    if (!st) st = vki_program_compile(m->prog, m->weights);
    if (st)
        snprintf(err, n, "%s", vki_weights_error(m->weights)[0] ? vki_weights_error(m->weights)
                                                                 : vki_program_error(m->prog));
    return st;
}

vki_status vki_clip_text_load(vki_device *dev, vki_safetensors *file, const vki_clip_text_desc *desc,
                              vki_clip_text **out, char *err, size_t n)
{
    if (!file) return VKI_ERROR_INVALID_ARGUMENT;
    vki_weight_source source = vki_weight_source_safetensors(file);
    return vki__clip_text_load_source(dev, &source, desc, out, err, n);
}

vki_status vki__clip_text_load_source(vki_device *dev, const vki_weight_source *file,
                                      const vki_clip_text_desc *desc, vki_clip_text **out, char *err,
                                      size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!dev || !file || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_clip_text_desc d = desc ? *desc : (vki_clip_text_desc){0};
    vki_clip_text *m = vki__model_alloc(d.allocator, sizeof *m);
    if (!m) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    m->allocator = d.allocator ? *d.allocator : (vki_allocator){0};
    vki_status st = load(m, dev, file, &d, err, n);
    if (st) {
        vki_clip_text_destroy(m);
        return st;
    }
    *out = m;
    return VKI_OK;
}

void vki_clip_text_destroy(vki_clip_text *m)
{
    if (!m) return;
    vki_program_destroy(m->prog);
    vki_weights_destroy(m->weights);
    vki_allocator a = m->allocator;
    vki__model_free(&a, m);
}

const vki_clip_text_info *vki_clip_text_info_get(const vki_clip_text *m) { return m ? &m->info : NULL; }
const char *vki_clip_text_last_error(const vki_clip_text *m) { return m ? m->error : ""; }

vki_status vki_clip_text_encode(vki_clip_text *m, const int32_t *ids, float *out_hidden)
{
    if (!m || !ids || !out_hidden) return VKI_ERROR_INVALID_ARGUMENT;
    m->error[0] = 0;
    for (uint32_t i = 0; i < m->info.n_ctx; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->info.n_vocab) {
            snprintf(m->error, sizeof m->error, "clip text: id %u is %d, outside the vocabulary of %u",
                     i, ids[i], m->info.n_vocab);
            return VKI_ERROR_INVALID_ARGUMENT;
        }
    VKI_TRY(vki_program_upload(m->prog, m->ids, ids, m->info.n_ctx * sizeof *ids));
    VKI_TRY(vki_program_run(m->prog));
    return vki_program_download(m->prog, m->hidden, out_hidden,
                                (uint64_t)m->info.width * m->info.n_ctx * sizeof(float));
}

uint64_t vki__clip_text_weight_bytes(const vki_clip_text *m) { return m ? vki_weights_bytes(m->weights) : 0; }
