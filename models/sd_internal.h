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
} vki_vae_desc;

vki_status vki_vae_load(const vki_vae_desc *desc, vki_vae **out, char *out_error, size_t error_size);
void vki_vae_destroy(vki_vae *v);
/* latent [4][h][w] (NCHW, already divided by the scaling factor) -> out_rgb [3][8h][8w], about
 * [-1, 1]. */
vki_status vki_vae_decode(vki_vae *v, const float *latent, uint32_t w, uint32_t h, float *out_rgb);
/* rgb [3][h][w] in [-1, 1], w and h multiples of 8 -> the posterior's mean [4][h/8][w/8]. */
vki_status vki_vae_encode(vki_vae *v, const float *rgb, uint32_t w, uint32_t h, float *out_mean);
const char *vki_vae_last_error(const vki_vae *v);
uint64_t vki_vae_peak_bytes(const vki_vae *v); // device bytes of the largest program compiled

#endif
