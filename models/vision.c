/* The vision encoder's public side (vkinfer_vision.h): an mmproj file's metadata read and
 * bounded, the family's preprocessing on the host (PIL's resampling, the normalisation), the
 * image cut into patches, and the program that runs the network of arch_vit.c.
 *
 * Families: Gemma 3 ("gemma3": SigLIP, pooled projector), Idefics3 / SmolVLM ("idefics3":
 * SigLIP, pixel shuffle + linear) and LLaVA 1.5 ("mlp": CLIP, penultimate layer, 2-layer MLP).
 * Each encodes one square image of clip.vision.image_size pixels: the SigLIP families resize
 * the picture to it whatever its aspect (as transformers' Gemma3 processor does, and as
 * Idefics3's does for the one global image llama.cpp encodes); LLaVA's CLIP processor resizes
 * the short side and crops the centre. LLaVA 1.6 ("mlp" with spatial_unpad) encodes tiles of
 * the image and its overview and arranges them on the host: vision_llava.c. Qwen2-VL
 * ("qwen2vl_merger") and Qwen2.5-VL ("qwen2.5vl_merger") keep the image's aspect and build
 * their encoder per patch grid: vision_qwen2vl.c. */
#include "vision_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bounds on what a file may ask for, checked before anything is sized from it: far above the
 * released encoders (SigLIP-so400m: 896 px, patch 14, width 1152, 27 layers, 16 heads, MLP
 * 4304), low enough that every product below fits 32 bits twice over. */
#define MAX_IMAGE_SIZE 2048
#define MAX_PATCH 64
#define MAX_PATCHES 16384 // per side squared: the sequence the attention sees
#define MAX_WIDTH 8192
#define MAX_HEAD_DIM 256  // vki_attention's
#define MAX_LAYERS 128
#define MAX_FF 65536
#define MAX_EMBD 65536
#define MAX_SIDE 16384    // of an input image (vkinfer_vision.h)
#define MAX_POOL_MATRIX (1 << 24)

vki_status vki__vision_fail(char *err, size_t n, vki_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return st;
}

static vki_status get_u32(vki_gguf *f, const char *key, uint32_t *out, char *err, size_t n)
{
    vki_status st = vki_gguf_get_u32(f, key, out);
    if (st == VKI_ERROR_NOT_FOUND) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: no %s", key);
    if (st) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s", vki_gguf_last_error(f));
    return VKI_OK;
}

/* clip.vision.image_mean / image_std: 3 finite floats (std positive). */
static vki_status get_rgb(vki_gguf *f, const char *key, float out[3], bool positive, char *err, size_t n)
{
    vki_gguf_array a;
    vki_status st = vki_gguf_get_array(f, key, &a);
    if (st == VKI_ERROR_NOT_FOUND) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: no %s", key);
    if (st || a.count != 3)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s is not an array of 3 floats", key);
    for (uint64_t i = 0; i < 3; i++) {
        if (vki_gguf_array_get_f32(f, &a, i, &out[i]) || !isfinite(out[i]) || (positive && !(out[i] > 0)) ||
            fabsf(out[i]) > 1e6f)
            return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s[%llu] is not a %s float", key,
                        (unsigned long long)i, positive ? "positive finite" : "finite");
    }
    return VKI_OK;
}

/* LLaVA's projector and layer layout: the widths from mm.0 [width, hidden] and mm.2 [hidden,
 * n_embd]; the MLP's names (the legacy converter's fc1 is ffn_down: llama.cpp swaps them when
 * ffn_down reads the ViT's width); the feature layer, which the converter makes the file's
 * last (its blocks beyond are dropped): another is a file vkinfer would compute wrongly. */
static vki_status read_mlp(vki_vision *v, vki_gguf *f, char *err, size_t n)
{
    vki_gguf_tensor t0, t2, down;
    if (vki_gguf_find_tensor(f, "mm.0.weight", &t0) || vki_gguf_find_tensor(f, "mm.2.weight", &t2))
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: an mlp projector without mm.0.weight and mm.2.weight");
    if (t0.n_dims != 2 || t2.n_dims != 2 || t0.ne[1] < 1 || t0.ne[1] > MAX_FF || t2.ne[0] != t0.ne[1] ||
        t2.ne[1] < 1 || t2.ne[1] > MAX_EMBD)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: mm.0.weight [%lld, %lld] and mm.2.weight [%lld, %lld] "
                    "are not a two-layer MLP", (long long)t0.ne[0], (long long)t0.ne[1], (long long)t2.ne[0],
                    (long long)t2.ne[1]);
    v->n_mm = (uint32_t)t0.ne[1];
    v->info.n_embd = (uint32_t)t2.ne[1];
    v->ffn_swapped = !vki_gguf_find_tensor(f, "v.blk.0.ffn_down.weight", &down) && down.ne[0] == v->info.width;
    vki_gguf_array layers;
    vki_status st = vki_gguf_get_array(f, "clip.vision.feature_layer", &layers);
    if (st == VKI_ERROR_NOT_FOUND) return VKI_OK;
    uint32_t layer = 0;
    if (st || layers.count != 1 || vki_gguf_array_get_u32(f, &layers, 0, &layer) || layer != v->info.n_layer)
        return fail(err, n, VKI_ERROR_UNSUPPORTED, "mmproj: clip.vision.feature_layer other than the file's "
                    "last block (%u), or several of them, is not supported", v->info.n_layer);
    return VKI_OK;
}

static vki_status read_metadata(vki_vision *v, vki_gguf *f, char *err, size_t n)
{
    vki_gguf_string s;
    vki_status st = vki_gguf_get_string(f, "clip.projector_type", &s);
    if (st) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: no clip.projector_type string (not a projector file?)");
    size_t len = s.size < sizeof v->projector_name - 1 ? (size_t)s.size : sizeof v->projector_name - 1;
    memcpy(v->projector_name, s.data, len);
    v->projector_name[len] = 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v->projector_name[i] < 0x20 || (unsigned char)v->projector_name[i] > 0x7e)
            v->projector_name[i] = '?'; // it goes into messages
    vki_vision_info *in = &v->info;
    in->projector_name = v->projector_name;
    if (s.size == 6 && !memcmp(s.data, "gemma3", 6)) {
        in->projector = VKI_PROJECTOR_GEMMA3;
        in->non_causal = true;
        v->resample = VKI_RESAMPLE_BILINEAR;
    } else if (s.size == 8 && !memcmp(s.data, "idefics3", 8)) {
        in->projector = VKI_PROJECTOR_IDEFICS3;
        v->resample = VKI_RESAMPLE_LANCZOS;
    } else if (s.size == 3 && !memcmp(s.data, "mlp", 3)) {
        in->projector = VKI_PROJECTOR_MLP;
        v->resample = VKI_RESAMPLE_BICUBIC;
        v->crop = v->class_token = true;
    } else if (s.size == 14 && !memcmp(s.data, "qwen2vl_merger", 14)) {
        in->projector = VKI_PROJECTOR_QWEN2VL;
        v->resample = VKI_RESAMPLE_BICUBIC;
    } else if (s.size == 16 && !memcmp(s.data, "qwen2.5vl_merger", 16)) {
        // Qwen2.5-VL: Qwen2-VL's host side and merger, its ViT with RMS norms, a gated MLP and
        // window attention (vision_qwen2vl.c).
        in->projector = VKI_PROJECTOR_QWEN2VL;
        v->resample = VKI_RESAMPLE_BICUBIC;
        v->rms_norm = v->gated = true;
    } else {
        return fail(err, n, VKI_ERROR_UNSUPPORTED,
                    "mmproj: projector type \"%s\" is not one vkinfer runs (gemma3, idefics3, mlp, qwen2vl_merger, "
                    "qwen2.5vl_merger)",
                    v->projector_name);
    }
    bool has_vision = false;
    if (vki_gguf_get_bool(f, "clip.has_vision_encoder", &has_vision) || !has_vision)
        return fail(err, n, VKI_ERROR_UNSUPPORTED, "mmproj: clip.has_vision_encoder is not true");
    uint32_t ff = 0;
    VKI_TRY(get_u32(f, "clip.vision.image_size", &in->image_size, err, n));
    VKI_TRY(get_u32(f, "clip.vision.patch_size", &in->patch_size, err, n));
    VKI_TRY(get_u32(f, "clip.vision.embedding_length", &in->width, err, n));
    VKI_TRY(get_u32(f, "clip.vision.feed_forward_length", &ff, err, n));
    VKI_TRY(get_u32(f, "clip.vision.block_count", &in->n_layer, err, n));
    VKI_TRY(get_u32(f, "clip.vision.attention.head_count", &in->n_head, err, n));
    // LLaVA's files (llama.cpp's legacy converter) hold CLIP's own projection width here: the
    // width out is the projector's, read from its last matrix below.
    if (in->projector != VKI_PROJECTOR_MLP) VKI_TRY(get_u32(f, "clip.vision.projection_dim", &in->n_embd, err, n));
    v->n_ff = ff;
    v->eps = 1e-6f;
    st = vki_gguf_get_f32(f, "clip.vision.attention.layer_norm_epsilon", &v->eps);
    if ((st && st != VKI_ERROR_NOT_FOUND) || !(v->eps > 0 && v->eps < 1))
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.vision.attention.layer_norm_epsilon is not in (0, 1)");
    VKI_TRY(get_rgb(f, "clip.vision.image_mean", v->mean, false, err, n));
    VKI_TRY(get_rgb(f, "clip.vision.image_std", v->std, true, err, n));
    // The MLP's activation as llama.cpp reads it: use_gelu is ggml's gelu, the tanh form (what
    // SigLIP is trained with, gelu_pytorch_tanh); use_silu; neither is CLIP's quick GELU.
    bool gelu = false, silu = false;
    if (vki_gguf_get_bool(f, "clip.use_gelu", &gelu) == VKI_ERROR_BAD_FILE ||
        vki_gguf_get_bool(f, "clip.use_silu", &silu) == VKI_ERROR_BAD_FILE || (gelu && silu))
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.use_gelu / clip.use_silu are not one boolean choice");
    v->act = gelu ? VKI_ACT_GELU_TANH : silu ? VKI_ACT_SILU : VKI_ACT_QUICK_GELU;

    if (in->image_size == 0 || in->image_size > MAX_IMAGE_SIZE || in->patch_size == 0 ||
        in->patch_size > MAX_PATCH || in->image_size % in->patch_size)
        return fail(err, n, VKI_ERROR_BAD_FILE,
                    "mmproj: image size %u with patch %u (a whole number of patches of at most %d, at most %d px)",
                    in->image_size, in->patch_size, MAX_PATCH, MAX_IMAGE_SIZE);
    v->n_side = in->image_size / in->patch_size;
    if (v->n_side * v->n_side > MAX_PATCHES)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %u x %u patches (at most %d)", v->n_side, v->n_side,
                    MAX_PATCHES);
    if (in->width == 0 || in->width > MAX_WIDTH || in->n_head == 0 || in->width % in->n_head ||
        in->width / in->n_head > MAX_HEAD_DIM)
        return fail(err, n, VKI_ERROR_BAD_FILE,
                    "mmproj: width %u in %u heads (a head width of at most %d, width at most %d)",
                    in->width, in->n_head, MAX_HEAD_DIM, MAX_WIDTH);

    if (in->projector == VKI_PROJECTOR_MLP) {
        VKI_TRY(read_mlp(v, f, err, n));
        VKI_TRY(vki__llava16_read(v, f, err, n)); // LLaVA 1.6's anyres keys, if any
    }
    if (in->projector == VKI_PROJECTOR_QWEN2VL && in->n_embd && in->n_embd <= MAX_EMBD) {
        VKI_TRY(vki__qwen2vl_read(v, f, err, n));
        ff = v->n_ff;
    }
    if (in->n_layer == 0 || in->n_layer > MAX_LAYERS || ff == 0 || ff > MAX_FF || in->n_embd == 0 ||
        in->n_embd > MAX_EMBD)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %u layers (1..%d), MLP %u (1..%d), projection %u (1..%d)",
                    in->n_layer, MAX_LAYERS, ff, MAX_FF, in->n_embd, MAX_EMBD);
    v->n_pos = v->n_side * v->n_side + (v->class_token ? 1 : 0);

    if (in->projector == VKI_PROJECTOR_QWEN2VL) {
        return VKI_OK; // sized per image (vision_qwen2vl.c)
    } else if (in->projector == VKI_PROJECTOR_MLP) {
        v->scale = 1; // one embedding per patch
    } else if (in->projector == VKI_PROJECTOR_GEMMA3) {
        // llama.cpp's default pooling is 4 (every released Gemma 3: 64 x 64 patches to 16 x 16
        // tokens); test models write their own.
        v->scale = 4;
        st = vki_gguf_get_u32(f, "clip.vision.projector.scale_factor", &v->scale);
        if (st && st != VKI_ERROR_NOT_FOUND) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s", vki_gguf_last_error(f));
    } else {
        v->scale = 2;
        st = vki_gguf_get_u32(f, "clip.vision.projector.scale_factor", &v->scale);
        if (st && st != VKI_ERROR_NOT_FOUND) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s", vki_gguf_last_error(f));
        if (v->scale && (uint64_t)in->width * v->scale * v->scale > MAX_FF)
            return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: pixel shuffle by %u of width %u is too wide", v->scale,
                        in->width);
    }
    if (v->scale == 0 || v->scale > v->n_side || v->n_side % v->scale)
        return fail(err, n, VKI_ERROR_BAD_FILE,
                    "mmproj: clip.vision.projector.scale_factor %u does not divide the %u patches per side",
                    v->scale, v->n_side);
    v->n_tokens = (v->n_side / v->scale) * (v->n_side / v->scale);
    // Gemma 3's averaging matrix is patches x tokens floats (4 MiB for the released 64 x 64
    // patches to 256 tokens): a pooling of 1 over a large grid would ask for gigabytes.
    if (in->projector == VKI_PROJECTOR_GEMMA3 && (uint64_t)v->n_side * v->n_side * v->n_tokens > MAX_POOL_MATRIX)
        return fail(err, n, VKI_ERROR_BAD_FILE,
                    "mmproj: pooling %u x %u patches by %u leaves %u tokens (the pooling matrix is over %d floats)",
                    v->n_side, v->n_side, v->scale, v->n_tokens, MAX_POOL_MATRIX);
    return VKI_OK;
}

/* Host buffers: the preprocessed image, the patch rows, Gemma 3's averaging matrix (all sized
 * from bounded hyper-parameters). */
static vki_status alloc_host(vki_vision *v)
{
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    size_t s = v->info.image_size, np = (size_t)v->n_side * v->n_side;
    v->pixels = vki__model_alloc(a, 3 * s * s * sizeof(float));
    v->patch_rows = vki__model_alloc(a, 3 * s * s * sizeof(float));
    if (!v->pixels || !v->patch_rows) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (v->info.projector == VKI_PROJECTOR_GEMMA3) {
        v->pool_matrix = vki__model_alloc(a, np * v->n_tokens * sizeof(float));
        if (!v->pool_matrix) return VKI_ERROR_OUT_OF_HOST_MEMORY;
        uint32_t k = v->scale, out_side = v->n_side / k;
        float w = 1.0f / (float)(k * k);
        for (uint32_t py = 0; py < v->n_side; py++)
            for (uint32_t px = 0; px < v->n_side; px++) {
                size_t tok = (size_t)(py / k) * out_side + px / k;
                v->pool_matrix[tok * np + (size_t)py * v->n_side + px] = w;
            }
    }
    return VKI_OK;
}

/* Loads onto dev, or with dev NULL (vki_vision_check) only checks against profile: the host
 * buffers of an encode are not allocated and nothing goes to a device. */
static vki_status load(vki_vision *v, vki_device *dev, const vki_profile *profile, vki_gguf *file, char *err,
                       size_t n)
{
    VKI_TRY(read_metadata(v, file, err, n));
    const bool qwen2vl = v->info.projector == VKI_PROJECTOR_QWEN2VL;
    vki_status st = dev && !qwen2vl ? alloc_host(v) : VKI_OK;
    if (st) return fail(err, n, st, "mmproj: out of host memory");
    if (dev) profile = vki_device_profile(dev);
    v->device = dev;
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    vki_weights_desc wd = {.source = vki_weight_source_gguf(file), .device = dev, .profile = profile,
                           .allocator = a, .model_name = "the vision encoder"};
    if ((st = vki_weights_create(&wd, &v->weights))) return fail(err, n, st, "mmproj: %s", vki_status_string(st));
    if (qwen2vl) {
        // Built first for an 8 x 8 patch grid (112 px, as llama.cpp warms up), which checks and
        // uploads every weight; each image size then gets its own program.
        VKI_TRY(vki__qwen2vl_program(v, dev, profile, 8, 8, err, n));
        v->info.weight_bytes = vki_weights_bytes(v->weights);
        return VKI_OK;
    }
    vki_program_desc pd = {.device = dev, .profile = profile, .allocator = a, .name = "vision encoder"};
    if ((st = vki_program_create(&pd, &v->prog))) return fail(err, n, st, "mmproj: %s", vki_status_string(st));
    vki__vision_build(v);
    // LLaVA 1.6's newline goes between embeddings on the host: the program hands it over as a
    // second output (F32 whatever the file stores), read with each image's tiles.
    if (v->unpad) {
        vki_tensor nl = vki_weights_tensor(v->weights, v->prog, "model.image_newline", 1,
                                           (int64_t[1]){v->info.n_embd}, false, true);
        v->newline_out = vki_copy(vki_program_graph(v->prog), nl, VKI_DTYPE_F32);
        vki_program_output(v->prog, v->newline_out, "newline");
    }
    st = vki_weights_status(v->weights);
    if (!st) st = vki_weights_check_all_used(v->weights);
    if (!st) st = vki_weights_upload(v->weights);
    if (st) return fail(err, n, st, "mmproj: %s", vki_weights_error(v->weights));
    if ((st = vki_program_compile(v->prog, v->weights)))
        return fail(err, n, st, "mmproj: %s", vki_program_error(v->prog));
    v->info.weight_bytes = vki_weights_bytes(v->weights);
    v->info.activation_bytes = vki_program_activation_bytes(v->prog);
    // Gemma 3's averaging matrix is the same for every image: uploaded once, into the input's
    // own storage (nothing else writes it), then its host copy is freed.
    if (dev && v->pool.id) {
        size_t bytes = (size_t)v->n_side * v->n_side * v->n_tokens * sizeof(float);
        if ((st = vki_program_upload(v->prog, v->pool, v->pool_matrix, bytes)))
            return fail(err, n, st, "mmproj: %s", vki_program_error(v->prog));
        vki__model_free(a, v->pool_matrix);
        v->pool_matrix = NULL;
    }
    return VKI_OK;
}

/* vki_vision_load's body; with device NULL, vki_vision_check's (out_vision NULL: the checked
 * encoder is destroyed). */
static vki_status create(vki_device *device, const vki_profile *profile, vki_gguf *mmproj,
                         const vki_vision_desc *desc, vki_vision **out_vision, char *out_error, size_t error_size)
{
    char dummy[8];
    if (!out_error || !error_size) {
        out_error = dummy;
        error_size = sizeof dummy;
    }
    out_error[0] = 0;
    if ((!device && !profile) || !mmproj || (device && !out_vision)) return VKI_ERROR_INVALID_ARGUMENT;
    if (out_vision) *out_vision = NULL;
    const vki_allocator *a = desc ? desc->allocator : NULL;
    vki_vision *v = vki__model_alloc(a, sizeof *v);
    if (!v) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    v->allocator = a ? *a : (vki_allocator){0};
    vki_status st = load(v, device, profile, mmproj, out_error, error_size);
    if (st || !out_vision) {
        vki_vision_destroy(v);
        return st;
    }
    *out_vision = v;
    return VKI_OK;
}

vki_status vki_vision_load(vki_device *device, vki_gguf *mmproj, const vki_vision_desc *desc,
                           vki_vision **out_vision, char *out_error, size_t error_size)
{
    if (!device) return VKI_ERROR_INVALID_ARGUMENT;
    return create(device, NULL, mmproj, desc, out_vision, out_error, error_size);
}

vki_status vki_vision_check(const vki_profile *profile, vki_gguf *mmproj, const vki_vision_desc *desc,
                            char *out_error, size_t error_size)
{
    if (!profile) return VKI_ERROR_INVALID_ARGUMENT;
    return create(NULL, profile, mmproj, desc, NULL, out_error, error_size);
}

void vki_vision_destroy(vki_vision *v)
{
    if (!v) return;
    vki_program_destroy(v->prog);
    vki_weights_destroy(v->weights);
    vki_allocator a = v->allocator;
    vki__model_free(&a, v->pixels);
    vki__model_free(&a, v->patch_rows);
    vki__model_free(&a, v->pool_matrix);
    vki__model_free(&a, v->positions);
    vki__model_free(&a, v->window_bounds);
    vki__model_free(&a, v->token_order);
    vki__model_free(&a, v->embd_rows);
    vki__model_free(&a, v->newline);
    vki__model_free(&a, v);
}

const vki_vision_info *vki_vision_info_get(const vki_vision *v) { return v ? &v->info : NULL; }
const char *vki_vision_last_error(const vki_vision *v) { return v ? v->error : ""; }

uint32_t vki_vision_n_tokens(const vki_vision *v, uint32_t w, uint32_t h)
{
    uint32_t gw = 0, gh = 0;
    return vki_vision_grid(v, w, h, &gw, &gh) ? 0 : gw * gh;
}

vki_status vki_vision_grid(const vki_vision *v, uint32_t w, uint32_t h, uint32_t *out_gw, uint32_t *out_gh)
{
    if (!v || !out_gw || !out_gh) return VKI_ERROR_INVALID_ARGUMENT;
    *out_gw = *out_gh = 0;
    if (w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE) return VKI_ERROR_INVALID_ARGUMENT;
    if (v->info.projector == VKI_PROJECTOR_QWEN2VL) {
        uint32_t rw, rh;
        if (!vki__qwen2vl_size(v, w, h, &rw, &rh)) return VKI_ERROR_INVALID_ARGUMENT;
        *out_gw = rw / v->info.patch_size / v->scale;
        *out_gh = rh / v->info.patch_size / v->scale;
    } else if (v->unpad) {
        // LLaVA 1.6: the overview, then rows of tiles' embeddings with newlines between them; a
        // language model with 1D positions takes them as one row.
        *out_gw = vki__llava16_n_tokens(v, w, h);
        *out_gh = 1;
    } else {
        *out_gw = *out_gh = v->n_side / v->scale; // every family above: a square grid of tokens
    }
    return VKI_OK;
}

/* ---- Preprocessing: PIL's resampling ----------------------------------------------------------
 * Image.resize of an 8-bit image: separable, the horizontal pass first into 8-bit rows, then the
 * vertical; output pixel i of an axis scaled by `scale` = in / out is centred at (i + 0.5) *
 * scale, and when shrinking the filter stretches by the scale (antialiasing), over
 * support * max(scale, 1) input pixels each side. Weights are normalised, then rounded to 22
 * fractional bits, and each sum rounds half up and clamps to 0..255, as PIL's 8-bit path does,
 * so that the bytes match the family's processor. */

#define PREC_BITS 22

static double filter(vki_vision_resample r, double x)
{
    x = fabs(x);
    switch (r) {
    case VKI_RESAMPLE_BILINEAR: return x < 1 ? 1 - x : 0;
    case VKI_RESAMPLE_BICUBIC: {
        const double a = -0.5;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }
    case VKI_RESAMPLE_LANCZOS: {
        if (x >= 3) return 0;
        if (x < 1e-12) return 1;
        const double pi = 3.14159265358979323846;
        return sin(pi * x) / (pi * x) * sin(pi * x / 3) / (pi * x / 3);
    }
    }
    return 0;
}

static double support(vki_vision_resample r)
{
    return r == VKI_RESAMPLE_BILINEAR ? 1 : r == VKI_RESAMPLE_BICUBIC ? 2 : 3;
}

/* For output pixels first..first+count of an axis scaled from `in` to `out` pixels: the first
 * input pixel and how many it reads, and `ksize` fixed-point weights each. */
static vki_status coefficients(vki_vision *v, uint32_t in, uint32_t out, uint32_t first, uint32_t count,
                               uint32_t **bounds, int32_t **k, uint32_t *ksize)
{
    double scale = (double)in / out, fs = scale > 1 ? scale : 1, sup = support(v->resample) * fs;
    uint32_t ks = (uint32_t)ceil(sup) * 2 + 1;
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    *bounds = vki__model_alloc(a, (size_t)count * 2 * sizeof **bounds);
    *k = vki__model_alloc(a, (size_t)count * ks * sizeof **k);
    double *w = vki__model_alloc(a, ks * sizeof *w);
    if (!*bounds || !*k || !w) {
        vki__model_free(a, w);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    for (uint32_t i = 0; i < count; i++) {
        double center = (first + i + 0.5) * scale;
        int64_t lo = (int64_t)(center - sup + 0.5), hi = (int64_t)(center + sup + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        uint32_t cnt = (uint32_t)(hi - lo);
        if (cnt > ks) cnt = ks;
        double sum = 0;
        for (uint32_t j = 0; j < cnt; j++) sum += w[j] = filter(v->resample, (j + lo - center + 0.5) / fs);
        for (uint32_t j = 0; j < cnt; j++) {
            double x = sum != 0 ? w[j] / sum : 0;
            (*k)[(size_t)i * ks + j] = (int32_t)(x < 0 ? -0.5 + x * (1 << PREC_BITS) : 0.5 + x * (1 << PREC_BITS));
        }
        (*bounds)[2 * i] = (uint32_t)lo;
        (*bounds)[2 * i + 1] = cnt;
    }
    vki__model_free(a, w);
    *ksize = ks;
    return VKI_OK;
}

static uint8_t clip8(int64_t ss)
{
    int64_t x = ss >> PREC_BITS; // arithmetic shift: floor, as PIL's
    return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
}

/* src [sh][sw][3] resized to dw x dh, of which the ww x wh window at (x0, y0) goes to dst
 * [wh][ww][3]: the horizontal pass into tmp [sh][ww][3], then the vertical. A pass whose size
 * does not change copies, as PIL skips it. Only the window's pixels are computed (a crop of a
 * very wide image does not resize all of it). */
static vki_status resize(vki_vision *v, const uint8_t *src, uint32_t sw, uint32_t sh, uint32_t dw, uint32_t dh,
                         uint32_t x0, uint32_t y0, uint32_t ww, uint32_t wh, uint8_t *dst, uint8_t *tmp)
{
    uint32_t *hb = NULL, *vb = NULL, hk = 0, vk = 0;
    int32_t *hc = NULL, *vc = NULL;
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    vki_status st = VKI_OK;
    if (sw != dw && (st = coefficients(v, sw, dw, x0, ww, &hb, &hc, &hk))) goto done;
    if (sh != dh && (st = coefficients(v, sh, dh, y0, wh, &vb, &vc, &vk))) goto done;
    for (uint32_t y = 0; y < sh; y++)
        for (uint32_t x = 0; x < ww; x++)
            for (uint32_t c = 0; c < 3; c++) {
                uint8_t *out = &tmp[((size_t)y * ww + x) * 3 + c];
                if (!hb) {
                    *out = src[((size_t)y * sw + x0 + x) * 3 + c];
                    continue;
                }
                int64_t ss = (int64_t)1 << (PREC_BITS - 1);
                for (uint32_t j = 0; j < hb[2 * x + 1]; j++)
                    ss += (int64_t)src[((size_t)y * sw + hb[2 * x] + j) * 3 + c] * hc[(size_t)x * hk + j];
                *out = clip8(ss);
            }
    for (uint32_t y = 0; y < wh; y++)
        for (uint32_t x = 0; x < ww; x++)
            for (uint32_t c = 0; c < 3; c++) {
                uint8_t *out = &dst[((size_t)y * ww + x) * 3 + c];
                if (!vb) {
                    *out = tmp[((size_t)(y0 + y) * ww + x) * 3 + c];
                    continue;
                }
                int64_t ss = (int64_t)1 << (PREC_BITS - 1);
                for (uint32_t j = 0; j < vb[2 * y + 1]; j++)
                    ss += (int64_t)tmp[((size_t)(vb[2 * y] + j) * ww + x) * 3 + c] * vc[(size_t)y * vk + j];
                *out = clip8(ss);
            }
done:
    vki__model_free(a, hb);
    vki__model_free(a, hc);
    vki__model_free(a, vb);
    vki__model_free(a, vc);
    return st;
}

vki_status vki__vision_resize(vki_vision *v, const uint8_t *src, uint32_t sw, uint32_t sh, uint32_t dw,
                              uint32_t dh, uint8_t *dst)
{
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    uint8_t *tmp = vki__model_alloc(a, (size_t)sh * dw * 3);
    vki_status st = tmp ? resize(v, src, sw, sh, dw, dh, 0, 0, dw, dh, dst, tmp) : VKI_ERROR_OUT_OF_HOST_MEMORY;
    vki__model_free(a, tmp);
    return st;
}

vki_status vki__vision_preprocess(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out)
{
    if (!v || !rgb || !out || !vki_vision_n_tokens(v, w, h) || v->info.projector == VKI_PROJECTOR_QWEN2VL ||
        v->unpad)
        return VKI_ERROR_INVALID_ARGUMENT;
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    uint32_t s = v->info.image_size, dw = s, dh = s, x0 = 0, y0 = 0;
    if (v->crop) {
        // transformers' CLIP processor: the short side to s, the long one to
        // floor(s * long / short), then the centre s x s (offsets rounded down).
        if (w <= h)
            dh = (uint32_t)((uint64_t)s * h / w);
        else
            dw = (uint32_t)((uint64_t)s * w / h);
        x0 = (dw - s) / 2;
        y0 = (dh - s) / 2;
    }
    uint8_t *tmp = vki__model_alloc(a, (size_t)h * s * 3);
    uint8_t *img = vki__model_alloc(a, (size_t)s * s * 3);
    vki_status st = tmp && img ? resize(v, rgb, w, h, dw, dh, x0, y0, s, s, img, tmp) : VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (!st) {
        for (uint32_t c = 0; c < 3; c++)
            for (size_t i = 0; i < (size_t)s * s; i++)
                out[c * (size_t)s * s + i] = ((float)img[i * 3 + c] / 255.0f - v->mean[c]) / v->std[c];
    }
    vki__model_free(a, tmp);
    vki__model_free(a, img);
    return st;
}

/* Qwen2-VL: the program of the image's grid (rebuilt when it changes), its patches and
 * positions. */
static vki_status encode_qwen2vl(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out_embd)
{
    uint32_t gw = 0, gh = 0;
    vki_status st = vki_vision_grid(v, w, h, &gw, &gh);
    if (!st) st = vki__qwen2vl_program(v, v->device, vki_device_profile(v->device), gw * v->scale, gh * v->scale,
                                       v->error, sizeof v->error);
    if (st) return st;
    if ((st = vki__qwen2vl_preprocess(v, rgb, w, h))) {
        snprintf(v->error, sizeof v->error, "vision: %s preprocessing %u x %u", vki_status_string(st), w, h);
        return st;
    }
    size_t col = (size_t)v->info.patch_size * v->info.patch_size * 3, row = (size_t)v->info.n_embd * sizeof(float);
    if ((st = vki_program_upload(v->prog, v->patches, v->patch_rows, col * v->n_pos * sizeof(float))) ||
        (st = vki_program_upload(v->prog, v->pos, v->positions, (uint64_t)v->n_pos * 4 * sizeof(int32_t))) ||
        (v->windows.id && (st = vki_program_upload(v->prog, v->windows, v->window_bounds,
                                                   (uint64_t)v->n_pos * 2 * sizeof(int32_t)))) ||
        (st = vki_program_run(v->prog)) ||
        (st = vki_program_download(v->prog, v->out, v->embd_rows, (uint64_t)v->n_tokens * row))) {
        snprintf(v->error, sizeof v->error, "vision: %s", vki_program_error(v->prog)[0] ? vki_program_error(v->prog)
                                                                                       : vki_status_string(st));
        return st;
    }
    // The merger's rows in the encoder's order (Qwen2.5-VL's: window by window) back to the
    // image's, row-major.
    for (uint32_t i = 0; i < v->n_tokens; i++)
        memcpy(out_embd + (size_t)v->token_order[i] * v->info.n_embd, v->embd_rows + (size_t)i * v->info.n_embd, row);
    return VKI_OK;
}

vki_status vki_vision_encode(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out_embd)
{
    if (!v || !rgb || !out_embd) return VKI_ERROR_INVALID_ARGUMENT;
    v->error[0] = 0;
    if (!vki_vision_n_tokens(v, w, h)) {
        snprintf(v->error, sizeof v->error, "vision: an image of %u x %u pixels (each side 1..%d%s)", w, h, MAX_SIDE,
                 v->info.projector == VKI_PROJECTOR_QWEN2VL ? ", the longer at most 200 times the shorter" : "");
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (v->info.projector == VKI_PROJECTOR_QWEN2VL) return encode_qwen2vl(v, rgb, w, h, out_embd);
    if (v->unpad) return vki__llava16_encode(v, rgb, w, h, out_embd, false);
    vki_status st = vki__vision_preprocess(v, rgb, w, h, v->pixels);
    if (st) {
        snprintf(v->error, sizeof v->error, "vision: out of host memory preprocessing %u x %u", w, h);
        return st;
    }
    return vki__vision_run(v, out_embd);
}

vki_status vki__vision_run(vki_vision *v, float *out_embd)
{
    vki_status st;
    // The patches, one column each (row-major over the grid, as the convolution's output is
    // flattened), each column in the kernel's order: x fastest, then y, then channel.
    uint32_t p = v->info.patch_size, s = v->info.image_size, side = v->n_side;
    size_t col = (size_t)p * p * 3;
    for (uint32_t py = 0; py < side; py++)
        for (uint32_t px = 0; px < side; px++) {
            float *dst = v->patch_rows + ((size_t)py * side + px) * col;
            for (uint32_t c = 0; c < 3; c++)
                for (uint32_t ky = 0; ky < p; ky++)
                    for (uint32_t kx = 0; kx < p; kx++)
                        *dst++ = v->pixels[((size_t)c * s + py * p + ky) * s + px * p + kx];
        }
    size_t np = (size_t)side * side;
    if ((st = vki_program_upload(v->prog, v->patches, v->patch_rows, col * np * sizeof(float))) ||
        (st = vki_program_run(v->prog)) ||
        (st = vki_program_download(v->prog, v->out, out_embd,
                                   (uint64_t)v->n_tokens * v->info.n_embd * sizeof(float)))) {
        snprintf(v->error, sizeof v->error, "vision: %s", vki_program_error(v->prog)[0] ? vki_program_error(v->prog)
                                                                                       : vki_status_string(st));
        return st;
    }
    return VKI_OK;
}
