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

#define VKI_LLAVA16_MAX_PINPOINTS 64

struct vki_vision {
    vki_allocator allocator;
    vki_device *device;        // borrowed; NULL when only checking
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
    // Qwen2-VL (vision_qwen2vl.c): the image keeps its aspect, so the encoder is built per
    // patch grid; the program and the host buffers below are for grid_w x grid_h patches.
    uint32_t min_pixels, max_pixels; // smart_resize's bounds on the resized image
    uint32_t grid_w, grid_h;   // patches across and down of the current program (0: none)
    vki_tensor pos;            // input I32 [n_pos, 4]: each patch's row, column, 0, 0 (streams)
    int32_t *positions;        // the pos input on the host
    // Qwen2.5-VL ("qwen2.5vl_merger", the same host side): RMS norms, a gated MLP, and window
    // attention. The patches go to the encoder window by window (each window's merged units
    // row by row, each unit's 4 patches as Qwen2-VL's), so that a window is a contiguous run
    // and its attention a band of vki_attention_pos; the merger's rows come out in that order
    // and go back to the image's (token_order) on the host.
    bool rms_norm;             // the blocks' norms and the merger's ln_q are RMS norms
    bool gated;                // the MLP is down(act(gate(x)) * up(x)), all with biases
    uint32_t window;           // merged units per window side (clip.vision.window_size /
                               // (patch * 2)); 0: no window attention
    uint32_t n_wa_pattern;     // layer il attends over every patch when (il + 1) % n_wa_pattern
                               // == 0, else within its window (0: every layer over all)
    vki_tensor windows;        // input I32 [n_pos, 2] (vki_attention_pos): each patch's window
                               // is [w1 + 1 - window_len, w0]
    int32_t *window_bounds;    // the windows input on the host, per grid
    uint32_t *token_order;     // [n_tokens]: the encoder's output row i is merged token
                               // token_order[i] of the image (row-major); per grid
    float *embd_rows;          // [n_tokens][n_embd]: the output before its reorder
    // LLaVA 1.6 (vision_llava.c): anyres tiles, each through the program above (n_tokens
    // embeddings each), arranged on the host.
    bool unpad;                // clip.vision.mm_patch_merge_type "spatial_unpad"
    uint32_t n_pinpoints;
    uint32_t pinpoints[2 * VKI_LLAVA16_MAX_PINPOINTS]; // (height, width) pairs, transformers' order
    float *newline;            // [n_embd]: model.image_newline, on the host (from the file,
                               // then as the program's output gives it)
    vki_tensor newline_out;    // output F32 [n_embd]: the newline weight
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

/* PIL's resize of src ([sh][sw][3] bytes) to dw x dh with v's filter, into dst [dh][dw][3]. */
vki_status vki__vision_resize(vki_vision *v, const uint8_t *src, uint32_t sw, uint32_t sh, uint32_t dw,
                              uint32_t dh, uint8_t *dst);

/* Runs the program on v->pixels ([3][S][S], preprocessed): the patches cut, uploaded, and the
 * n_tokens embeddings downloaded into out ([n_tokens][n_embd]). */
vki_status vki__vision_run(vki_vision *v, float *out);

/* ---- LLaVA 1.6 (vision_llava.c) ------------------------------------------------------------ */

/* For an "mlp" projector: clip.vision.mm_patch_merge_type, the pinpoints and the newline (read
 * to the host), bounded. Nothing for LLaVA 1.5's files (neither key). */
vki_status vki__llava16_read(vki_vision *v, vki_gguf *f, char *err, size_t n);
/* Embeddings of a w x h image as transformers lays them out (overview, unpadded tiles with a
 * newline per row), and as llama.cpp's mtmd does (flat: overview and every tile's n_tokens). */
uint32_t vki__llava16_n_tokens(const vki_vision *v, uint32_t w, uint32_t h);
uint32_t vki__llava16_n_tokens_flat(const vki_vision *v, uint32_t w, uint32_t h);
/* The preprocessed overview then tiles (row by row), each [3][S][S], into out. */
vki_status vki__llava16_pixels(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out);
/* out: [vki__llava16_n_tokens][n_embd], or with flat [vki__llava16_n_tokens_flat][n_embd]. */
vki_status vki__llava16_encode(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out, bool flat);

/* ---- Qwen2-VL (vision_qwen2vl.c) ---------------------------------------------------------- */

/* Its metadata beyond the common keys: the MLP width from the tensors (the converter writes the
 * language model's width as feed_forward_length), the 2x2 merge, the merger's shapes. */
/* Writes the message into err [n] and returns st: the load path's failures (vision.c), called
 * `fail` in the files that read a projector's tensors. */
vki_status vki__vision_fail(char *err, size_t n, vki_status st, const char *fmt, ...) VKI_PRINTF(4, 5);
#define fail vki__vision_fail

vki_status vki__qwen2vl_read(vki_vision *v, vki_gguf *f, char *err, size_t n);
/* transformers' smart_resize of a w x h image: the resized size, or false for an image it
 * refuses (an aspect over 200) or one over the encoder's bounds. */
bool vki__qwen2vl_size(const vki_vision *v, uint32_t w, uint32_t h, uint32_t *out_w, uint32_t *out_h);
/* Builds (when the grid changes) the program for an image of w x h pixels: v->prog and the host
 * buffers for its grid. With no device (vki_vision_check) only compiles. */
vki_status vki__qwen2vl_program(vki_vision *v, vki_device *dev, const vki_profile *profile, uint32_t gw,
                                uint32_t gh, char *err, size_t n);
/* The image preprocessed (smart_resize, bicubic, normalised) into patch rows in the merger's
 * order (v->patch_rows, [n_pos][3 * patch^2]; Qwen2.5-VL's: window by window, v->token_order)
 * and the rotary positions (v->positions), for the program of its grid. */
vki_status vki__qwen2vl_preprocess(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h);
/* The encoder of arch_vit.c for Qwen2-VL: patches [3 * patch^2, n_pos] in the merger's order
 * and positions -> [n_embd, n_pos / 4]. */
vki_tensor vki__qwen2vl_build(vki_vision *v);

#endif
