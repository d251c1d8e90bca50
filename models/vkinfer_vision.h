/* vkinfer models, vision: image encoders for chat (llama.cpp's multimodal projector files,
 * mmproj-*.gguf with clip.* metadata). Part of the public header vkinfer_models.h, which
 * includes it at its end (include that one).
 *
 * An encoder turns one RGB image into embeddings that take the place of the image marker in a
 * language model's sequence (vki_llm_eval_embd): a ViT (CLIP or SigLIP: patch embedding as a
 * convolution, positions, pre-norm blocks) and the family's projector (LLaVA's MLP,
 * SmolVLM/Idefics3's pixel shuffle + linear, Gemma 3's pooled projector, Qwen2-VL's 2x2 merger
 * over a ViT with 2-D rotary positions, at the image's own aspect). The image is resized,
 * cropped or padded and normalised as the family's preprocessing says, from the file's
 * metadata (size, mean, std); the caller passes the decoded pixels of any size.
 *
 *     vki_vision *v = NULL;
 *     VKI_TRY(vki_vision_load(dev, mmproj, NULL, &v, err, sizeof err));
 *     uint32_t n = vki_vision_n_tokens(v, w, h);
 *     float *embd = malloc((size_t)n * vki_vision_info_get(v)->n_embd * sizeof(float));
 *     VKI_TRY(vki_vision_encode(v, rgb, w, h, embd));   // rgb [h][w][3] bytes -> [n][n_embd]
 *     VKI_TRY(vki_llm_eval_embd(m, 0, embd, n, vki_vision_info_get(v)->non_causal, logits));
 *     ... vki_vision_destroy(v);                        // before closing the gguf
 */
#ifndef VKINFER_VISION_H
#define VKINFER_VISION_H

#ifndef VKINFER_MODELS_H
#error "include vkinfer_models.h, not vkinfer_vision.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vki_vision vki_vision; // threads: as its device

typedef enum vki_projector {
    VKI_PROJECTOR_NONE = 0,
    VKI_PROJECTOR_MLP,      // LLaVA 1.5/1.6: two linears with GELU (clip.projector_type "mlp")
    VKI_PROJECTOR_IDEFICS3, // SmolVLM / Idefics3: pixel shuffle, then one linear ("idefics3")
    VKI_PROJECTOR_GEMMA3,   // Gemma 3: average pooling, RMS norm, one linear ("gemma3")
    VKI_PROJECTOR_QWEN2VL,  // Qwen2-VL: 2x2 merger with 2-D rotary positions ("qwen2vl_merger");
                            // also Qwen2.5-VL ("qwen2.5vl_merger": the same merger and image
                            // layout, its ViT with window attention; projector_name tells them apart)
    VKI_PROJECTOR_COUNT
} vki_projector;

typedef struct vki_vision_desc {
    const vki_allocator *allocator; // NULL: malloc/free
} vki_vision_desc;

typedef struct vki_vision_info {
    vki_projector projector;
    const char *projector_name; // clip.projector_type as in the file ("mlp", "gemma3", ...)
    uint32_t image_size;        // the encoder's input side in pixels (clip.vision.image_size;
                                // Qwen2-VL: the file's nominal size, images keep their own)
    uint32_t patch_size;
    uint32_t n_layer, width, n_head; // the ViT's
    uint32_t n_embd;            // embedding width out = the language model's n_embd
    bool non_causal;            // the image's embeddings attend to each other both ways in the
                                // language model (Gemma 3); else causally, as text
    uint64_t weight_bytes, activation_bytes; // device memory (Qwen2-VL: activations of the
                                // last image size's program; 153 MiB for Qwen2-VL-2B's largest)
} vki_vision_info;

/* Reads an mmproj file (borrowed: keep it open until vki_vision_destroy), checks its metadata
 * and tensors (the file must hold exactly the encoder: unknown tensors are refused by name),
 * builds and compiles the encoder for the device and uploads its weights. VKI_ERROR_UNSUPPORTED
 * names a projector type vkinfer does not run; VKI_ERROR_BAD_FILE a missing or misshapen
 * tensor or a hyper-parameter out of bounds; VKI_ERROR_OUT_OF_DEVICE_MEMORY says what it needs. */
vki_status vki_vision_load(vki_device *device, vki_gguf *mmproj, const vki_vision_desc *desc,
                           vki_vision **out_vision, char *out_error, size_t error_size);
void vki_vision_destroy(vki_vision *v); // NULL does nothing

/* Everything vki_vision_load does short of the device: reads and checks the metadata and
 * tensors and builds and compiles the encoder for `profile` (any device's, or one made up), with
 * the same failures and messages; nothing is uploaded or allocated on a device. For checking a
 * file without a GPU, and for fuzzing the load path (tools/fuzz_mmproj.c). */
vki_status vki_vision_check(const vki_profile *profile, vki_gguf *mmproj, const vki_vision_desc *desc,
                            char *out_error, size_t error_size);

const vki_vision_info *vki_vision_info_get(const vki_vision *v); // borrowed
const char *vki_vision_last_error(const vki_vision *v);         // "" if none

/* Embeddings an image of w x h pixels becomes (fixed per family for the ones above; 0 for a
 * size the encoder refuses: either side 0 or above 16384). Qwen2-VL's depend on the size: the
 * image is resized keeping its aspect (transformers' smart_resize: sides multiples of 28 px,
 * 56 * 56 to 28 * 28 * 1280 pixels; an aspect over 200 is refused) and each 28 x 28 square
 * becomes one embedding. */
uint32_t vki_vision_n_tokens(const vki_vision *v, uint32_t w, uint32_t h);

/* The embeddings of a w x h image as a grid: *out_gh rows of *out_gw, row by row
 * (vki_vision_n_tokens = gw * gh). Qwen2-VL's language model places its M-RoPE positions by
 * it (the token at row r, column c of the image starting at position p: temporal p, height
 * p + r, width p + c). The fixed-size families give their square grid. VKI_ERROR_INVALID_ARGUMENT
 * (and 0 x 0) for a size the encoder refuses. */
vki_status vki_vision_grid(const vki_vision *v, uint32_t w, uint32_t h, uint32_t *out_gw, uint32_t *out_gh);

/* Preprocesses rgb ([h][w][3] bytes, rows packed) as the family does and encodes it into
 * out_embd (F32 [n_tokens][n_embd], n_tokens = vki_vision_n_tokens). */
vki_status vki_vision_encode(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h,
                             float *out_embd);

/* A synthetic encoder for benchmarks: an mmproj GGUF file in memory with a released encoder's
 * family, shapes and F16 matrices and random weights (`name`: "smolvlm-256m" — SmolVLM's SigLIP
 * base, 512 px, projecting to SmolLM2-135M's 576 — "gemma3-4b" — SigLIP-so400m, 896 px, 256
 * tokens of 2560 — "qwen2vl-2b" — Qwen2-VL-2B's ViT, 32 layers of 1280, merged to 1536, at
 * 560 px — or "smolvlm-tiny" and "qwen2vl-tiny" for tests). Its speed is the real encoder's; its
 * embeddings are noise. On success *out_bytes (free() it after vki_gguf_close) holds *out_size
 * bytes for vki_gguf_open_memory. VKI_ERROR_NOT_FOUND lists the names for an unknown one. */
vki_status vki_vision_synthetic(const char *name, uint64_t seed, void **out_bytes, size_t *out_size,
                                char *out_error, size_t error_size);
/* Synthetic encoder names by index; NULL past the last. */
const char *vki_vision_synthetic_name(uint32_t index);

#ifdef __cplusplus
}
#endif

#endif
