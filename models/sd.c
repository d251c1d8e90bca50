/* The Stable Diffusion pipeline: a checkpoint's three models (CLIP text encoder, U-Net, VAE),
 * found in a single file or a diffusers folder, and the loop that turns a prompt into an image.
 *
 * Sampling works in k-diffusion's sigma formulation, as AUTOMATIC1111 and stable-diffusion.cpp
 * do: the denoiser D(x, sigma) runs the U-Net on x / sqrt(sigma^2 + 1) at the timestep of sigma,
 * the unconditional and conditional passes as one batch of two, mixes them with the guidance
 * scale, and turns the prediction into the denoised latent (eps: x - sigma eps; v:
 * x / (sigma^2 + 1) - v sigma / sqrt(sigma^2 + 1)). */
#include "sd_internal.h"
#include "platform_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCALING_FACTOR 0.18215f // SD 1.x/2.x's VAE latent scale (its config's scaling_factor)

struct vki_sd {
    vki_allocator allocator;
    vki_device *device;
    vki_sd_info info;
    float scaling;
    vki_safetensors *file[3];          // single file: [0]; folder: unet, vae, text encoder
    vki_gguf *gguf;                    // a single file in stable-diffusion.cpp's GGUF
    vki_weight_source src_unet, src_vae, src_text;
    vki_renamed_source *renamed[3];
    vki_clip_text *text;
    vki_clip_tokenizer *tokenizer;
    vki_unet *unet;
    vki_vae *vae;
    int32_t pad_id;
    vki_sd_timings timings;
    uint64_t loaded_bytes;             // device memory held after the load
    char error[512];
};

static vki_status fail(vki_sd *sd, vki_status st, const char *fmt, ...) VKI_PRINTF(3, 4);
static vki_status fail(vki_sd *sd, vki_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sd->error, sizeof sd->error, fmt, ap);
    va_end(ap);
    return st;
}

static double now_s(void) { return vki__now_s(); }

/* Device memory held now (all arenas, this process's device). */
static uint64_t device_bytes(const vki_sd *sd)
{
    vki_device_stats s;
    vki_device_stats_get(sd->device, &s);
    return s.device_bytes;
}

/* Out of device memory: the runtime's message (what was asked for, the heap, what is held) joins
 * the stage's, which the layers between may have dropped, so that the user learns the cause. */
static void add_device_detail(vki_sd *sd, vki_status st)
{
    const char *d = vki_device_last_error(sd->device);
    if (st != VKI_ERROR_OUT_OF_DEVICE_MEMORY || !d[0] || strstr(sd->error, d)) return;
    size_t k = strlen(sd->error);
    if (!k) snprintf(sd->error, sizeof sd->error, "%s", d);
    else if (k + 3 < sizeof sd->error) snprintf(sd->error + k, sizeof sd->error - k, " (%s)", d);
}

/* ---- Files --------------------------------------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static vki_status open_st(vki_sd *sd, const char *path, vki_safetensors **out)
{
    char why[256] = "";
    vki_safetensors_desc d = {.allocator = sd->allocator.alloc ? &sd->allocator : NULL};
    vki_status st = vki_safetensors_open(path, &d, out, why, sizeof why);
    if (st) return fail(sd, st, "%s", why);
    return VKI_OK;
}

/* A folder's `sub/name` (the .safetensors), first of the candidates that exists. */
static vki_status open_part(vki_sd *sd, const char *dir, const char *sub, const char *const *names,
                            vki_safetensors **out)
{
    char path[1200];
    for (const char *const *n = names; *n; n++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s/%s", dir, sub, *n) >= sizeof path)
            return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "model path too long: %s", dir);
        struct stat st;
        if (stat(path, &st) == 0) return open_st(sd, path, out);
    }
    return fail(sd, VKI_ERROR_BAD_FILE, "%s is not a diffusers Stable Diffusion folder: it has no "
                "%s/%s", dir, sub, names[0]);
}

/* A folder's config `sub/file` as JSON (NULL when absent or not JSON: the defaults hold). */
static cJSON *read_config(const char *dir, const char *sub, const char *file)
{
    char path[1200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file) >= sizeof path) return NULL;
    vki__mapping m = {0};
    char why[128];
    if (vki__map_file(path, &m, why, sizeof why) || m.size > (1u << 20)) {
        vki__unmap_file(&m);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(m.data, m.size);
    vki__unmap_file(&m);
    return j;
}

static bool has(const vki_weight_source *s, const char *name)
{
    vki_source_tensor t;
    return s->find(s->file, name, &t) == VKI_OK;
}

/* ---- Loading --------------------------------------------------------------------------------- */

typedef struct layout {
    const char *unet_prefix, *vae_prefix, *text_prefix;
    uint32_t heads, head_dim;          // from a folder's unet config; 0: the layout's rule
    vki_activation text_act;
    uint32_t base_skip;                // layers SD skips by design (1: the last; 2: penultimate)
} layout;

/* Whether the checkpoint is a GGUF file (stable-diffusion.cpp's format: the original names,
 * linear weights perhaps quantised) rather than safetensors. */
static bool is_gguf(const vki_sd_desc *d)
{
    unsigned char magic[4] = {0};
    if (d->data) {
        if (d->size >= 4) memcpy(magic, d->data, 4);
    } else {
        struct stat st; // not a FIFO or device, whose open could block: the readers refuse those
        if (stat(d->path, &st) || !S_ISREG(st.st_mode)) return false;
        FILE *f = fopen(d->path, "rb");
        if (!f) return false;
        size_t n = fread(magic, 1, 4, f);
        fclose(f);
        if (n != 4) return false;
    }
    return !memcmp(magic, "GGUF", 4);
}

static vki_status load_single(vki_sd *sd, const vki_sd_desc *d, layout *lay)
{
    if (is_gguf(d)) {
        char why[256] = "";
        vki_gguf_desc gd = {.allocator = sd->allocator.alloc ? &sd->allocator : NULL};
        vki_status st = d->data ? vki_gguf_open_memory(d->data, d->size, &gd, &sd->gguf, why, sizeof why)
                                : vki_gguf_open(d->path, &gd, &sd->gguf, why, sizeof why);
        if (st) return fail(sd, st, "%s", why);
    } else if (d->data) {
        char why[256] = "";
        vki_safetensors_desc sdesc = {.allocator = sd->allocator.alloc ? &sd->allocator : NULL};
        vki_status st = vki_safetensors_open_memory(d->data, d->size, &sdesc, &sd->file[0], why, sizeof why);
        if (st) return fail(sd, st, "%s", why);
    } else {
        VKI_TRY(open_st(sd, d->path, &sd->file[0]));
    }
    vki_weight_source s = sd->gguf ? vki_weight_source_gguf(sd->gguf) : vki_weight_source_safetensors(sd->file[0]);
    sd->src_unet = sd->src_vae = sd->src_text = s;
    if (!has(&s, "model.diffusion_model.input_blocks.0.0.weight"))
        return fail(sd, VKI_ERROR_BAD_FILE, "%s: no model.diffusion_model.input_blocks.0.0.weight: not "
                    "a single-file Stable Diffusion checkpoint (a diffusers folder is given as the "
                    "folder)", d->path ? d->path : "the checkpoint");
    lay->unet_prefix = "model.diffusion_model.";
    lay->vae_prefix = "first_stage_model.";
    if (has(&s, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")) {
        lay->text_prefix = "cond_stage_model.transformer.text_model.";
        sd->info.version = 1;
    } else if (has(&s, "cond_stage_model.transformer.embeddings.token_embedding.weight")) {
        lay->text_prefix = "cond_stage_model.transformer.";
        sd->info.version = 1;
    } else if (has(&s, "cond_stage_model.model.token_embedding.weight")) {
        char why[256] = "";
        VKI_TRY(vki_renamed_source_create(&s, VKI_SD_NAMES_OPENCLIP, "cond_stage_model.model.",
                                          sd->allocator.alloc ? &sd->allocator : NULL,
                                          &sd->renamed[2], why, sizeof why));
        sd->src_text = vki_renamed_source_get(sd->renamed[2]);
        lay->text_prefix = "text_model.";
        lay->text_act = VKI_ACT_GELU;
        lay->base_skip = 2; // SD 2.x reads OpenCLIP's penultimate layer
        sd->info.version = 2;
    } else {
        return fail(sd, VKI_ERROR_BAD_FILE, "%s: no text encoder under cond_stage_model. (neither "
                    "CLIP ViT-L/14 nor OpenCLIP)", d->path ? d->path : "the checkpoint");
    }
    /* SD 2.x comes in both parameterisations (2.x-base eps, 768-v v) and the file does not say
     * which: load() asks the U-Net (detect_v). SD 1.x is eps. */
    if (!sd->info.prediction && sd->info.version == 1) sd->info.prediction = VKI_SD_PREDICTION_EPS;
    return VKI_OK;
}

/* AUTOMATIC1111's test for SD 2.x single files: the U-Net at t = 999 on a flat latent of 0.5
 * with a flat two-token context of 0.5; a v model's output lies far below its input (mean of
 * out - x under -1), an eps model's does not. */
static vki_status detect_v(vki_sd *sd, bool *out_v)
{
    const uint32_t dim = vki_unet_info_get(sd->unet)->context_dim, n = 4 * 8 * 8;
    float x[4 * 8 * 8], out[4 * 8 * 8], t = 999.0f;
    float *ctx = vki__model_alloc(&sd->allocator, 2ull * dim * sizeof *ctx);
    if (!ctx) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < n; i++) x[i] = 0.5f;
    for (uint32_t i = 0; i < 2 * dim; i++) ctx[i] = 0.5f;
    vki_status st = vki_unet_eval(sd->unet, 8, 8, 1, 2, x, &t, ctx, out);
    vki__model_free(&sd->allocator, ctx);
    if (st) return fail(sd, st, "unet: %s", vki_unet_last_error(sd->unet));
    double mean = 0;
    for (uint32_t i = 0; i < n; i++) mean += out[i] - x[i];
    *out_v = mean / n < -1.0;
    return VKI_OK;
}

static vki_status load_folder(vki_sd *sd, const vki_sd_desc *d, layout *lay)
{
    static const char *const unet_files[] = {"diffusion_pytorch_model.safetensors",
                                             "diffusion_pytorch_model.fp16.safetensors", NULL};
    static const char *const text_files[] = {"model.safetensors", "model.fp16.safetensors", NULL};
    VKI_TRY(open_part(sd, d->path, "unet", unet_files, &sd->file[0]));
    VKI_TRY(open_part(sd, d->path, "vae", unet_files, &sd->file[1]));
    VKI_TRY(open_part(sd, d->path, "text_encoder", text_files, &sd->file[2]));
    const vki_allocator *a = sd->allocator.alloc ? &sd->allocator : NULL;
    char why[256] = "";
    vki_weight_source s = vki_weight_source_safetensors(sd->file[0]);
    vki_status st = vki_renamed_source_create(&s, VKI_SD_NAMES_UNET_DIFFUSERS, NULL, a, &sd->renamed[0], why, sizeof why);
    s = vki_weight_source_safetensors(sd->file[1]);
    if (!st) st = vki_renamed_source_create(&s, VKI_SD_NAMES_VAE_DIFFUSERS, NULL, a, &sd->renamed[1], why, sizeof why);
    if (st) return fail(sd, st, "%s: %s", d->path, why);
    sd->src_unet = vki_renamed_source_get(sd->renamed[0]);
    sd->src_vae = vki_renamed_source_get(sd->renamed[1]);
    sd->src_text = vki_weight_source_safetensors(sd->file[2]);
    /* Published folders name the tower text_model.*; transformers 5 saves it without that. */
    lay->text_prefix = has(&sd->src_text, "text_model.embeddings.token_embedding.weight") ? "text_model." : "";
    sd->info.diffusers = true;

    /* What the tensors cannot say: heads, the text encoder's activation, the prediction. */
    cJSON *unet = read_config(d->path, "unet", "config.json");
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(unet, "attention_head_dim");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(unet, "block_out_channels");
    if (cJSON_IsNumber(hd) && hd->valuedouble >= 1 && hd->valuedouble <= 1024) {
        lay->heads = (uint32_t)hd->valuedouble; // diffusers' name for SD 1.x's head count
    } else if (cJSON_IsArray(hd) && cJSON_IsArray(ch) && cJSON_GetArraySize(hd) > 0) {
        const cJSON *h0 = cJSON_GetArrayItem(hd, 0), *c0 = cJSON_GetArrayItem(ch, 0);
        if (cJSON_IsNumber(h0) && cJSON_IsNumber(c0) && h0->valuedouble >= 1 &&
            c0->valuedouble >= h0->valuedouble && c0->valuedouble <= 65536)
            lay->head_dim = (uint32_t)(c0->valuedouble / h0->valuedouble); // heads per level
    }
    bool linear = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(unet, "use_linear_projection"));
    cJSON_Delete(unet);
    cJSON *text = read_config(d->path, "text_encoder", "config.json");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(text, "hidden_act");
    if (cJSON_IsString(act) && !strcmp(act->valuestring, "gelu")) lay->text_act = VKI_ACT_GELU;
    cJSON_Delete(text);
    cJSON *sched = read_config(d->path, "scheduler", "scheduler_config.json");
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(sched, "prediction_type");
    if (!sd->info.prediction && cJSON_IsString(pred))
        sd->info.prediction = !strcmp(pred->valuestring, "v_prediction") ? VKI_SD_PREDICTION_V
                                                                         : VKI_SD_PREDICTION_EPS;
    cJSON_Delete(sched);
    cJSON *vae = read_config(d->path, "vae", "config.json");
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(vae, "scaling_factor");
    if (cJSON_IsNumber(sf) && sf->valuedouble > 0 && sf->valuedouble < 100) sd->scaling = (float)sf->valuedouble;
    cJSON_Delete(vae);
    sd->info.version = linear ? 2 : 1;
    if (!sd->info.prediction) sd->info.prediction = VKI_SD_PREDICTION_EPS;
    return VKI_OK;
}

static vki_status load(vki_sd *sd, const vki_sd_desc *d)
{
    layout lay = {.base_skip = 1};
    sd->info.prediction = d->prediction;
    VKI_TRY(!d->data && is_dir(d->path) ? load_folder(sd, d, &lay) : load_single(sd, d, &lay));
    sd->pad_id = sd->info.version == 2 ? 0 : VKI_CLIP_PAD_END;
    const vki_allocator *a = sd->allocator.alloc ? &sd->allocator : NULL;
    char why[512] = "";
    uint32_t skip = (d->clip_skip > 1 ? d->clip_skip : 1) + lay.base_skip - 1;
    vki_clip_text_desc td = {.prefix = lay.text_prefix, .clip_skip = skip, .act = lay.text_act,
                             .allocator = a, .weight_type = d->weight_type};
    vki_status st = vki__clip_text_load_source(sd->device, &sd->src_text, &td, &sd->text, why, sizeof why);
    if (st) return fail(sd, st, "text encoder: %s", why);
    vki_unet_desc ud = {.source = &sd->src_unet, .prefix = lay.unet_prefix, .device = sd->device,
                        .allocator = a, .heads = lay.heads, .head_dim = lay.head_dim,
                        .weight_type = d->weight_type};
    if ((st = vki_unet_load(&ud, &sd->unet, why, sizeof why))) return fail(sd, st, "%s", why);
    vki_vae_desc vd = {.source = &sd->src_vae, .prefix = lay.vae_prefix, .device = sd->device,
                       .allocator = a, .tile = d->vae_tile, .weight_type = d->weight_type};
    if ((st = vki_vae_load(&vd, &sd->vae, why, sizeof why))) return fail(sd, st, "%s", why);
    const vki_clip_text_info *ti = vki_clip_text_info_get(sd->text);
    const vki_unet_info *ui = vki_unet_info_get(sd->unet);
    if (ui->context_dim != ti->width)
        return fail(sd, VKI_ERROR_BAD_FILE, "the U-Net attends to %u-wide text, the text encoder "
                    "gives %u: not one checkpoint", ui->context_dim, ti->width);
    if (ui->in_channels != 4 || ui->out_channels != 4)
        return fail(sd, VKI_ERROR_UNSUPPORTED, "a U-Net of %u input channels (an inpainting or "
                    "depth model?): vkinfer runs text-to-image models of 4", ui->in_channels);
    if (!sd->info.prediction) {
        bool v = false;
        VKI_TRY(detect_v(sd, &v));
        sd->info.prediction = v ? VKI_SD_PREDICTION_V : VKI_SD_PREDICTION_EPS;
    }
    sd->info.text_width = ti->width;
    sd->info.unet_channels = ui->model_channels;
    sd->info.context_dim = ui->context_dim;
    sd->info.weight_type = d->weight_type;
    sd->info.weight_bytes = vki_unet_weight_bytes(sd->unet) + vki_vae_weight_bytes(sd->vae) +
                            vki__clip_text_weight_bytes(sd->text);
    if (d->vocab_path) {
        vki_clip_tokenizer_desc kd = {.allocator = a};
        if ((st = vki_clip_tokenizer_create(d->vocab_path, &kd, &sd->tokenizer, why, sizeof why)))
            return fail(sd, st, "%s", why);
    }
    return VKI_OK;
}

vki_status vki_sd_load(vki_device *dev, const vki_sd_desc *desc, vki_sd **out, char *err, size_t n)
{
    if (err && n) err[0] = 0;
    if (!dev || !desc || (!desc->path && !desc->data) || !out || desc->prediction >= VKI_SD_PREDICTION_COUNT ||
        !vki__weights_convert_target_ok(desc->weight_type))
        return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_sd *sd = vki__model_alloc(desc->allocator, sizeof *sd);
    if (!sd) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    sd->allocator = desc->allocator ? *desc->allocator : (vki_allocator){0};
    sd->device = dev;
    sd->scaling = SCALING_FACTOR;
    vki_status st = load(sd, desc);
    if (st) {
        add_device_detail(sd, st);
        if (err && n) snprintf(err, n, "%s", sd->error[0] ? sd->error : vki_status_string(st));
        vki_sd_destroy(sd);
        return st;
    }
    sd->loaded_bytes = device_bytes(sd);
    *out = sd;
    return VKI_OK;
}

void vki_sd_destroy(vki_sd *sd)
{
    if (!sd) return;
    vki_vae_destroy(sd->vae);
    vki_unet_destroy(sd->unet);
    vki_clip_text_destroy(sd->text);
    vki_clip_tokenizer_destroy(sd->tokenizer);
    for (int i = 0; i < 3; i++) vki_renamed_source_destroy(sd->renamed[i]);
    for (int i = 0; i < 3; i++) vki_safetensors_close(sd->file[i]);
    vki_gguf_close(sd->gguf);
    vki_allocator a = sd->allocator;
    vki__model_free(&a, sd);
}

const vki_sd_info *vki_sd_info_get(const vki_sd *sd) { return sd ? &sd->info : NULL; }

vki_status vki_sd_weight_type_parse(const char *name, vki_dtype *out)
{
    static const vki_dtype types[] = {VKI_DTYPE_F16, VKI_DTYPE_Q8_0, VKI_DTYPE_Q4_0, VKI_DTYPE_Q4_1};
    for (size_t i = 0; name && out && i < sizeof types / sizeof *types; i++)
        if (!strcmp(name, vki_dtype_get(types[i])->name)) { // "f16", "q8_0", ...
            *out = types[i];
            return VKI_OK;
        }
    return VKI_ERROR_INVALID_ARGUMENT;
}
const char *vki_sd_last_error(const vki_sd *sd) { return sd ? sd->error : ""; }
const vki_sd_timings *vki_sd_timings_get(const vki_sd *sd) { return sd ? &sd->timings : NULL; }

/* ---- Prompts --------------------------------------------------------------------------------- */

/* The prompt's windows encoded one after the other -> [windows * 77][width], each window's
 * emphasis applied as A1111 does: hidden states scaled per token, then the whole rescaled to
 * the mean it had before. */
static vki_status encode_prompt(vki_sd *sd, const char *prompt, uint32_t windows, float *out)
{
    const uint32_t width = sd->info.text_width, ctx = VKI_CLIP_CONTEXT;
    vki_clip_prompt p = {0};
    char why[256] = "";
    vki_status st = vki_clip_prompt_encode(sd->tokenizer, prompt ? prompt : "", sd->pad_id, &p, why, sizeof why);
    if (st) return fail(sd, st, "prompt: %s", why);
    for (uint32_t wi = 0; wi < windows && !st; wi++) {
        float *h = out + (size_t)wi * ctx * width;
        /* Past the prompt's own windows (the other prompt is longer): the empty prompt's. */
        const int32_t *ids = p.ids + (size_t)(wi < p.n_windows ? wi : 0) * ctx;
        int32_t empty[VKI_CLIP_CONTEXT];
        if (wi >= p.n_windows) {
            empty[0] = VKI_CLIP_BOS;
            empty[1] = VKI_CLIP_EOS;
            for (uint32_t i = 2; i < ctx; i++) empty[i] = sd->pad_id;
            ids = empty;
        }
        st = vki_clip_text_encode(sd->text, ids, h);
        if (st) {
            fail(sd, st, "text encoder: %s", vki_clip_text_last_error(sd->text));
            break;
        }
        if (wi >= p.n_windows) continue;
        const float *wt = p.weights + (size_t)wi * ctx;
        double before = 0, after = 0;
        for (size_t i = 0; i < (size_t)ctx * width; i++) before += h[i];
        for (uint32_t t = 0; t < ctx; t++)
            for (uint32_t c = 0; c < width; c++) h[(size_t)t * width + c] *= wt[t];
        for (size_t i = 0; i < (size_t)ctx * width; i++) after += h[i];
        if (after != 0) {
            float k = (float)(before / after);
            for (size_t i = 0; i < (size_t)ctx * width; i++) h[i] *= k;
        }
    }
    vki_clip_prompt_free(sd->tokenizer, &p);
    return st;
}

static vki_status count_windows(vki_sd *sd, const char *prompt, uint32_t *out)
{
    vki_clip_prompt p = {0};
    char why[256] = "";
    vki_status st = vki_clip_prompt_encode(sd->tokenizer, prompt ? prompt : "", sd->pad_id, &p, why, sizeof why);
    if (st) return fail(sd, st, "prompt: %s", why);
    *out = p.n_windows;
    vki_clip_prompt_free(sd->tokenizer, &p);
    return VKI_OK;
}

/* ---- The denoiser ---------------------------------------------------------------------------- */

/* The sampler's progress (its user is the denoiser) as the caller's. */
static void progress(void *user, uint32_t step, uint32_t steps)
{
    const vki_sd_denoiser *d = user;
    const vki_sd_params *p = d->user;
    if (p->progress) p->progress(p->user, step, steps);
}

vki_status vki__sd_denoise(void *user, const float *x, float sigma, float *out)
{
    vki_sd_denoiser *d = user;
    const size_t n = (size_t)4 * d->w * d->h;
    const uint32_t batch = d->cfg != 1.0f ? 2 : 1;
    const float c_in = 1.0f / sqrtf(sigma * sigma + 1.0f);
    for (uint32_t b = 0; b < batch; b++)
        for (size_t i = 0; i < n; i++) d->xin[b * n + i] = x[i] * c_in;
    float t[2];
    t[0] = t[1] = vki_sd_sigma_to_t(sigma);
    const uint32_t dim = vki_unet_info_get(d->unet)->context_dim;
    VKI_TRY(vki_unet_eval(d->unet, d->w, d->h, batch, d->n_ctx, d->xin, t,
                          batch == 2 ? d->context : d->context + (size_t)d->n_ctx * dim, d->pred));
    d->evals++;
    const float *cond = d->pred + (batch == 2 ? n : 0), *uncond = d->pred;
    const float s2 = sigma * sigma + 1.0f, c_out = -sigma / sqrtf(s2);
    for (size_t i = 0; i < n; i++) {
        float e = batch == 2 ? uncond[i] + d->cfg * (cond[i] - uncond[i]) : cond[i];
        out[i] = d->v ? x[i] / s2 + e * c_out : x[i] - sigma * e;
    }
    return VKI_OK;
}

/* ---- Generation ------------------------------------------------------------------------------ */

static vki_status check_params(vki_sd *sd, const vki_sd_params *p, vki_sd_params *q)
{
    *q = *p;
    if (!q->width) q->width = 512;
    if (!q->height) q->height = 512;
    if (!q->steps) q->steps = 20;
    if (q->cfg_scale == 0) q->cfg_scale = 7.0f;
    if (q->strength == 0) q->strength = 0.75f;
    uint32_t m = 1u << (vki_unet_info_get(sd->unet)->levels - 1 + 3);
    if (q->width % m || q->height % m || q->width > 4096 || q->height > 4096)
        return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "image size %ux%u: width and height must be "
                    "multiples of %u, at most 4096", q->width, q->height, m);
    if (q->steps > 1000) return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "%u steps: at most 1000", q->steps);
    if (!(q->cfg_scale >= 1.0f && q->cfg_scale <= 100.0f))
        return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "cfg scale %g: between 1 and 100", q->cfg_scale);
    if (!(q->strength > 0.0f && q->strength <= 1.0f))
        return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "strength %g: in (0, 1]", q->strength);
    if (q->sampler >= VKI_SD_SAMPLER_COUNT || q->schedule >= VKI_SD_SCHEDULE_COUNT)
        return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "unknown sampler or schedule");
    if (!sd->tokenizer)
        return fail(sd, VKI_ERROR_INVALID_ARGUMENT, "no CLIP vocabulary was given: prompts cannot "
                    "be tokenized (tools/fetch_models.sh puts it in the model cache)");
    return VKI_OK;
}

static vki_status generate(vki_sd *sd, const vki_sd_params *p, float *buf[5], uint8_t *out_rgb)
{
    const uint32_t lw = p->width / 8, lh = p->height / 8;
    const size_t n = (size_t)4 * lw * lh;
    const uint32_t D = sd->info.context_dim;
    uint32_t wc = 1, wu = 1;
    VKI_TRY(count_windows(sd, p->prompt, &wc));
    VKI_TRY(count_windows(sd, p->negative_prompt, &wu));
    uint32_t windows = wc > wu ? wc : wu;
    const size_t ctx_floats = (size_t)windows * VKI_CLIP_CONTEXT * D;
    float *context = vki__model_alloc(&sd->allocator, 2 * ctx_floats * sizeof(float));
    if (!context) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    double t0 = now_s();
    vki_status st = encode_prompt(sd, p->negative_prompt, windows, context);
    if (!st) st = encode_prompt(sd, p->prompt, windows, context + ctx_floats);
    double t1 = now_s();
    sd->timings.text_s = t1 - t0;
    sd->timings.device_bytes_text = device_bytes(sd);

    float sigmas[1001];
    if (!st) st = vki_sd_sigmas(p->schedule, p->steps, sigmas);
    vki_sd_rng rng;
    vki_sd_rng_seed(&rng, p->seed);
    uint32_t first = 0;
    float *x = buf[0];
    if (!st) {
        vki_sd_randn(&rng, x, n);
        if (p->init_rgb) {
            /* img2img: the init image's latent, noised to the schedule's point `strength` from the end. */
            first = p->steps - (uint32_t)lroundf(p->strength * (float)p->steps);
            if (first >= p->steps) first = p->steps - 1;
            float *rgb = buf[4];
            const size_t px = (size_t)p->width * p->height;
            for (size_t i = 0; i < px; i++)
                for (int c = 0; c < 3; c++) rgb[c * px + i] = p->init_rgb[i * 3 + c] / 127.5f - 1.0f;
            st = vki_vae_encode(sd->vae, rgb, p->width, p->height, buf[1]);
            if (st) fail(sd, st, "%s", vki_vae_last_error(sd->vae));
            vki_vae_release(sd->vae); // the U-Net's turn
            for (size_t i = 0; !st && i < n; i++) x[i] = buf[1][i] * sd->scaling + x[i] * sigmas[first];
        } else {
            for (size_t i = 0; i < n; i++) x[i] *= sigmas[0];
        }
    }
    double t2 = now_s();
    if (!st) {
        vki_sd_denoiser dn = {.unet = sd->unet, .w = lw, .h = lh, .n_ctx = windows * VKI_CLIP_CONTEXT,
                              .cfg = p->cfg_scale, .v = sd->info.prediction == VKI_SD_PREDICTION_V,
                              .context = context, .xin = buf[2], .pred = buf[3], .user = (void *)p};
        vki_sd_sample_desc sdesc = {
            .sampler = p->sampler, .sigmas = sigmas + first, .steps = p->steps - first, .n = n,
            .denoise = vki__sd_denoise, .user = &dn, .rng = &rng, .progress = progress,
            .abort_flag = p->abort_flag, .allocator = sd->allocator.alloc ? &sd->allocator : NULL};
        sd->timings.steps = p->steps - first;
        st = vki_sd_sample(&sdesc, x);
        sd->timings.unet_evals = dn.evals;
        if (st == VKI_ERROR_CANCELLED) fail(sd, st, "cancelled");
        else if (st && !sd->error[0])
            fail(sd, st, "unet: %s", vki_unet_last_error(sd->unet)[0] ? vki_unet_last_error(sd->unet)
                                                                    : vki_status_string(st));
    }
    double t3 = now_s();
    sd->timings.sample_s = t3 - t2;
    sd->timings.device_bytes_unet = device_bytes(sd);
    if (!st) {
        /* The U-Net's activations make way for the VAE, which sizes its tiles by what the
         * device can take then; the next image's first step takes them again. */
        vki_unet_release(sd->unet);
        vki_device_refresh_budget(sd->device);
        sd->timings.vae_tile = vki_vae_tile(sd->vae, false, lw, lh);
        for (size_t i = 0; i < n; i++) x[i] /= sd->scaling;
        st = vki_vae_decode(sd->vae, x, lw, lh, buf[4]);
        if (st) fail(sd, st, "%s", vki_vae_last_error(sd->vae));
    }
    if (!st) {
        const size_t px = (size_t)p->width * p->height;
        for (size_t i = 0; i < px; i++)
            for (int c = 0; c < 3; c++) {
                float v = (buf[4][c * px + i] + 1.0f) * 127.5f;
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                out_rgb[i * 3 + c] = (uint8_t)lrintf(v);
            }
    }
    sd->timings.vae_s = now_s() - t3;
    sd->timings.device_bytes_vae = device_bytes(sd);
    vki_vae_release(sd->vae); // the next image's U-Net
    vki__model_free(&sd->allocator, context);
    return st;
}

vki_status vki_sd_generate(vki_sd *sd, const vki_sd_params *params, uint8_t *out_rgb)
{
    if (!sd || !params || !out_rgb) return VKI_ERROR_INVALID_ARGUMENT;
    sd->error[0] = 0;
    sd->timings = (vki_sd_timings){0};
    vki_sd_params p;
    VKI_TRY(check_params(sd, params, &p));
    double t0 = now_s();
    const size_t n = (size_t)4 * (p.width / 8) * (p.height / 8), px = (size_t)p.width * p.height;
    float *buf[5] = {0};
    const size_t sizes[5] = {n, n, 2 * n, 2 * n, 3 * px};
    vki_status st = VKI_OK;
    for (int i = 0; i < 5 && !st; i++)
        if (!(buf[i] = vki__model_alloc(&sd->allocator, sizes[i] * sizeof(float))))
            st = fail(sd, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a %ux%u image",
                      p.width, p.height);
    if (!st) st = generate(sd, &p, buf, out_rgb);
    if (st) add_device_detail(sd, st);
    for (int i = 0; i < 5; i++) vki__model_free(&sd->allocator, buf[i]);
    sd->timings.total_s = now_s() - t0;
    uint64_t act = vki_unet_activation_bytes(sd->unet), vae = vki_vae_peak_bytes(sd->vae);
    sd->timings.peak_device_bytes = sd->info.weight_bytes + (act > vae ? act : vae);
    sd->timings.unet_activation_bytes = act;
    sd->timings.vae_activation_bytes = vae;
    sd->timings.device_bytes_loaded = sd->loaded_bytes;
    vki_device_stats ds;
    vki_device_stats_get(sd->device, &ds);
    sd->timings.device_peak_bytes = ds.device_bytes_peak;
    return st;
}
