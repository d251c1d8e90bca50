/* The pieces of the Stable Diffusion pipeline (sd.c) below the public vki_sd_* API: the VAE
 * (arch_vae.c), the U-Net (arch_unet.c) and the names of the two checkpoint layouts
 * (sd_names.c). Architectures read tensors by their original (CompVis / ldm) names; a
 * diffusers folder is read through a source that renames its tensors to those. Internal to
 * models/. */
#ifndef VKI_SD_INTERNAL_H
#define VKI_SD_INTERNAL_H

#include "model_internal.h"

/* ---- VAE (arch_vae.c): SD's AutoencoderKL ("kl-f8") ----------------------------------------- */

typedef struct vki_vae vki_vae;

typedef struct vki_vae_desc {
    const vki_weight_source *source; // original names: <prefix>decoder.up.0.block.0.norm1.weight ...
    const char *prefix;              // "first_stage_model." in single files; NULL: ""
    vki_device *device;
    const vki_allocator *allocator;  // NULL: malloc/free
    uint32_t tile;                   // latent tile edge for tiled decode/encode; 0: automatic
    bool no_encoder;                 // txt2img needs only the decoder
    vki_dtype weight_type;           // conversion at load (vki_weights_desc.convert); 0: as stored
} vki_vae_desc;

/* The network's shape, read from its tensors. */
typedef struct vki_vae_info {
    uint32_t latent_channels; // 4 in SD
    uint32_t image_channels;  // 3
    uint32_t scale;           // image pixels per latent pixel along a side: 8 in SD (2^upsamplings)
    uint32_t levels;          // resolution levels of the decoder (4 in SD)
    bool has_encoder;         // loaded with the encoder (desc.no_encoder false)
} vki_vae_info;

/* Reads the shape, checks and uploads every tensor the decoder (and, unless no_encoder, the
 * encoder) reads; a missing or misshapen tensor is named in out_error. desc.tile below 4 or
 * above 16384 is refused. */
vki_status vki_vae_load(const vki_vae_desc *desc, vki_vae **out, char *out_error, size_t error_size);
void vki_vae_destroy(vki_vae *v);
/* latent [4][h][w] (NCHW, already divided by the scaling factor) -> out_rgb [3][8h][8w], about
 * [-1, 1] (in general [latent_channels][h][w] -> [image_channels][scale h][scale w]). Latents
 * larger than a program holds run in overlapping tiles blended across the overlaps (desc.tile).
 * Compiles a program per tile shape on first use (two are cached). */
vki_status vki_vae_decode(vki_vae *v, const float *latent, uint32_t w, uint32_t h, float *out_rgb);
/* rgb [3][h][w] in [-1, 1], w and h multiples of 8 -> the posterior's mean [4][h/8][w/8]. */
vki_status vki_vae_encode(vki_vae *v, const float *rgb, uint32_t w, uint32_t h, float *out_mean);
/* The latent tile edge decode (or encode) uses for a w x h latent: desc.tile, or the largest
 * whose every activation fits one binding and whose arena fits half the memory budget (the
 * whole latent when it fits). 0 for a bad call. */
uint32_t vki_vae_tile(vki_vae *v, bool encode, uint32_t w, uint32_t h);
const vki_vae_info *vki_vae_info_get(const vki_vae *v); // borrowed; NULL for NULL
const char *vki_vae_last_error(const vki_vae *v);
uint64_t vki_vae_peak_bytes(const vki_vae *v); // device bytes of the largest program compiled
uint64_t vki_vae_weight_bytes(const vki_vae *v); // device bytes of its weights
/* Gives the memory of the cached programs back (vki_program_release) until the next decode or
 * encode: the U-Net runs between an img2img encode and the decode. */
void vki_vae_release(vki_vae *v);


/* ---- U-Net (arch_unet.c): SD 1.x / 2.x's UNetModel ---------------------------------------------
 *
 * The structure (levels, resnets per level, channel counts, which levels attend, transformer
 * depth, context width, 1x1-conv or linear projections) is read from the tensors. One program
 * per latent shape (the last one kept): x [B][C][h][w], t [B], context [B][n_ctx][D] ->
 * out [B][C][h][w], the raw prediction (eps or v). */

typedef struct vki_unet vki_unet;

typedef struct vki_unet_desc {
    const vki_weight_source *source; // original names: <prefix>input_blocks.1.0.in_layers.0.weight ...
    const char *prefix;              // "model.diffusion_model." in single files; NULL: ""
    vki_device *device;
    const vki_allocator *allocator;  // NULL: malloc/free
    uint32_t heads;                  // attention heads per transformer; 0: by head_dim
    uint32_t head_dim;               // head width when heads is 0; 0: the layout's rule (8 heads
                                     // with 1x1-conv projections (SD 1.x), 64 wide with linear (SD 2.x))
    vki_dtype weight_type;           // conversion at load (vki_weights_desc.convert); 0: as stored
} vki_unet_desc;

typedef struct vki_unet_info {
    uint32_t in_channels, out_channels, model_channels, context_dim;
    uint32_t levels, transformers, resnets;
    bool linear_projection;          // SD 2.x
} vki_unet_info;

vki_status vki_unet_load(const vki_unet_desc *desc, vki_unet **out, char *out_error, size_t error_size);
void vki_unet_destroy(vki_unet *u);
const vki_unet_info *vki_unet_info_get(const vki_unet *u);
vki_status vki_unet_eval(vki_unet *u, uint32_t w, uint32_t h, uint32_t batch, uint32_t n_ctx,
                         const float *x, const float *t, const float *context, float *out);
const char *vki_unet_last_error(const vki_unet *u);
uint64_t vki_unet_weight_bytes(const vki_unet *u);
uint64_t vki_unet_activation_bytes(const vki_unet *u); // of the program last compiled
/* The plan statistics of the program last built (zeros before one): its dispatches, the nodes
 * the lowering cut because a tensor spans more than one binding (windowed), the steps on fp16
 * operands (cooperative matrices). */
void vki_unet_plan_stats(const vki_unet *u, vki_plan_stats *out);
/* Gives the program's activation memory back until the next evaluation: the VAE's tiles are
 * sized by what the device has free once the U-Net is done. */
void vki_unet_release(vki_unet *u);

/* ---- The denoiser (sd.c) -------------------------------------------------------------------------
 *
 * k-diffusion's D(x, sigma) for an SD U-Net with classifier-free guidance: the U-Net on
 * x / sqrt(sigma^2 + 1) at sigma's timestep, unconditional and conditional passes as one batch
 * of two (one pass when cfg is 1), mixed by the scale, as the denoised latent (eps or v). */
typedef struct vki_sd_denoiser {
    vki_unet *unet;
    uint32_t w, h, n_ctx;   // latent size, context tokens
    float cfg;
    bool v;                 // v-prediction
    const float *context;   // [2][n_ctx][D]: unconditional, conditional (cfg 1 reads only the second)
    float *xin, *pred;      // scratch [2][4][h][w] each
    uint32_t evals;         // U-Net runs so far
    void *user;             // the pipeline's
} vki_sd_denoiser;

vki_status vki__sd_denoise(void *denoiser, const float *x, float sigma, float *out_denoised);

/* ---- Text encoder over any weight source (arch_clip.c) ------------------------------------------ */

/* vki_clip_text_load on a weight source (borrowed: keep it alive until destroy), e.g. a renamed
 * OpenCLIP tower. */
vki_status vki__clip_text_load_source(vki_device *device, const vki_weight_source *source,
                                      const vki_clip_text_desc *desc, vki_clip_text **out,
                                      char *out_error, size_t error_size);
/* Device bytes of the text encoder's weights. */
uint64_t vki__clip_text_weight_bytes(const vki_clip_text *m);

/* ---- Checkpoint layouts (sd_names.c) ----------------------------------------------------------
 *
 * A weight source presenting another one's tensors under the names the architectures read:
 * a diffusers folder's unet/ and vae/ files under their original (ldm) names, and SD 2.x's
 * OpenCLIP text tower (cond_stage_model.model.*) under Hugging Face CLIPTextModel names
 * ("text_model.encoder.layers.N.self_attn.q_proj.weight" ...), its fused q/k/v projection split
 * into three views of the same bytes. Tensors whose names do not map keep their names. */

typedef enum vki_sd_names {
    VKI_SD_NAMES_UNET_DIFFUSERS = 1, // unet/diffusion_pytorch_model.safetensors
    VKI_SD_NAMES_VAE_DIFFUSERS,      // vae/diffusion_pytorch_model.safetensors
    VKI_SD_NAMES_OPENCLIP,           // the tensors under `prefix` of an SD 2.x single file
} vki_sd_names;

typedef struct vki_renamed_source vki_renamed_source;

/* `inner` is borrowed (keep its file open). `prefix`: only tensors under it are presented, with
 * it removed before mapping (NULL: all). VKI_ERROR_BAD_FILE for tensors that cannot be what
 * their names say (a fused projection not [3C, C]). */
vki_status vki_renamed_source_create(const vki_weight_source *inner, vki_sd_names names,
                                     const char *prefix, const vki_allocator *allocator,
                                     vki_renamed_source **out, char *out_error, size_t error_size);
void vki_renamed_source_destroy(vki_renamed_source *r);
/* The renamed source (valid while r lives). */
vki_weight_source vki_renamed_source_get(vki_renamed_source *r);

#endif
