/* Between the vision encoder's loader (vision.c: metadata, bounds, preprocessing, the public
 * API) and its network (arch_vit.c: the ViT and the projectors as op builders). Internal to
 * models/ and its tests. */
#ifndef VKI_VISION_INTERNAL_H
#define VKI_VISION_INTERNAL_H

#include "model_internal.h"

/* How the family's image processor resizes (PIL's filters: transformers' processors resize
 * through PIL, and torchvision's antialiased resize follows the same rule). */
typedef enum vki_vision_resample {
    VKI_RESAMPLE_BILINEAR = 0, // Gemma 3
    VKI_RESAMPLE_BICUBIC,      // CLIP (LLaVA)
    VKI_RESAMPLE_LANCZOS,      // Idefics3 / SmolVLM
} vki_vision_resample;

struct vki_vision {
    vki_allocator allocator;
    vki_vision_info info;
    char projector_name[32];
    float mean[3], std[3];     // clip.vision.image_mean / image_std
    float eps;                 // layer norms' (and Gemma 3's RMS norm's) epsilon
    vki_activation act;        // the ViT MLP's
    vki_vision_resample resample;
    uint32_t n_ff;             // the ViT MLP's width
    uint32_t n_side;           // patches per side: image_size / patch_size
    uint32_t scale;            // Idefics3's pixel shuffle factor, Gemma 3's pooling kernel
    uint32_t n_tokens;         // embeddings out per image
    uint32_t n_pos;            // the ViT's sequence: patches, and the class token first if any
    uint32_t n_mm;             // LLaVA: the MLP projector's hidden width
    bool class_token;          // CLIP (LLaVA): v.class_embd leads the sequence, v.pre_ln after
                               // the positions, and the class token is dropped at the end
    bool ffn_swapped;          // llama.cpp's legacy LLaVA converter names fc1 ffn_down and fc2
                               // ffn_up (told apart by shape, as llama.cpp does)
    bool crop;                 // CLIP's processor: the short side resized to image_size, then
                               // the centre cropped; else the image is resized to a square
    vki_weights *weights;
    vki_program *prog;
    vki_tensor patches;        // input F32 [patch^2 * 3, n_side^2]: the image cut into patches
    vki_tensor pool;           // input F32 [n_side^2, n_tokens] (Gemma 3): the averaging matrix
    vki_tensor out;            // output F32 [n_embd, n_tokens]
    float *pixels;             // [3][image_size][image_size], the preprocessed image
    float *patch_rows;         // the patches input on the host
    float *pool_matrix;        // the averaging matrix on the host until load uploads it (NULL after)
    char error[512];
};

/* Builds the encoder on v->prog from v's hyper-parameters (checked before): the ViT and the
 * projector, reading the weights through v->weights. A failure is recorded in the weights
 * module or the graph and reported when the program compiles. */
void vki__vision_build(vki_vision *v);

/* The family's preprocessing of rgb ([h][w][3] bytes) into out ([3][S][S] floats, S the
 * encoder's image_size): PIL's resize to S x S, then (x / 255 - mean) / std. For tests. */
vki_status vki__vision_preprocess(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out);

#endif
