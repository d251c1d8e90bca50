/* Qwen2-VL's vision encoder on the host side (projector "qwen2vl_merger", as llama.cpp's
 * convert_hf_to_gguf.py --mmproj writes Qwen2VLVisionModel): the image keeps its aspect
 * (transformers' smart_resize), so the patch grid, the sequence and the program depend on the
 * image's size; the program is rebuilt when the grid changes and kept while it does not.
 *
 * Preprocessing as transformers' Qwen2VLImageProcessor: smart_resize to multiples of
 * patch * merge (28) pixels with min_pixels 56 * 56 and max_pixels 28 * 28 * 1280 (the
 * processor's defaults; the released configs ask for up to 28 * 28 * 16384, which llama.cpp
 * also refuses: it caps the longer side at 1024), PIL bicubic in 8 bits, x / 255, then
 * (x - mean) / std. The patches go to the encoder in the merger's order: the 2x2 windows row by
 * row, each window's four patches row by row, so that the merger reads each window as 4
 * consecutive columns; the rotary positions (row, column) follow the same order. Of the
 * Conv3d's two frames (a still image is repeated), arch_vit.c adds the two kernels.
 *
 * Qwen2.5-VL ("qwen2.5vl_merger") has the same host side and merger; its ViT has RMS norms, a
 * gated MLP and attention within windows of 4 x 4 merged patches in all but every
 * n_wa_pattern-th layer. Here the merged units go to the encoder window by window (so that a
 * window is a contiguous run of patches, and its attention a band, not an n^2 mask), and the
 * merger's rows come back to the image's order on the host (vision.c). */
#include "vision_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MERGE 2              // Qwen2-VL merges 2x2 patches (spatial_merge_size)
#define MIN_PIXELS (56 * 56) // Qwen2VLImageProcessor's min_pixels
#define MAX_PIXELS (28 * 28 * 1280)
#define MAX_ASPECT 200       // smart_resize refuses longer / shorter above this
#define MAX_GRID_PATCHES 16384 // the attention's sequence (the defaults above give at most 5120)
#define MAX_FF 65536
#define DEFAULT_WINDOW 112   // Qwen2.5-VL's window_size in pixels (4 x 4 merged patches)
#define MAX_WINDOW 64        // merged patches per window side

/* Qwen2.5-VL's keys and tensors beyond Qwen2-VL's (vision.c set rms_norm and gated by the
 * projector type): the gate of the MLP, the window (clip.vision.window_size, which this
 * converter does not write: llama.cpp then takes 112 px, as every released Qwen2.5-VL has) and
 * the layers that see every patch (clip.vision.n_wa_pattern: fullatt_block_indexes were
 * 7, 15, 23, 31 -> 8; absent, every layer does, as llama.cpp reads it). */
static vki_status read_qwen25(vki_vision *v, vki_gguf *f, char *err, size_t n)
{
    const uint32_t w = v->info.width, unit = v->info.patch_size * MERGE;
    vki_gguf_tensor gate;
    if (vki_gguf_find_tensor(f, "v.blk.0.ffn_gate.weight", &gate) || gate.n_dims != 2 || gate.ne[0] != w ||
        gate.ne[1] != v->n_ff)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: a qwen2.5vl_merger without v.blk.0.ffn_gate.weight [%u, %u] "
                    "(its MLP is gated)", w, v->n_ff);
    uint32_t window_px = DEFAULT_WINDOW, pattern = 0;
    vki_status st = vki_gguf_get_u32(f, "clip.vision.window_size", &window_px);
    if (!st || st == VKI_ERROR_NOT_FOUND) st = vki_gguf_get_u32(f, "clip.vision.n_wa_pattern", &pattern);
    if (st && st != VKI_ERROR_NOT_FOUND) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s", vki_gguf_last_error(f));
    if (window_px == 0 || window_px % unit || window_px / unit > MAX_WINDOW)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.vision.window_size %u (a multiple of %u px, at most "
                    "%u merged patches a side)", window_px, unit, MAX_WINDOW);
    if (pattern > v->info.n_layer)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.vision.n_wa_pattern %u with %u layers", pattern,
                    v->info.n_layer);
    v->window = pattern > 1 ? window_px / unit : 0; // 1: every layer sees every patch
    v->n_wa_pattern = pattern;
    return VKI_OK;
}

vki_status vki__qwen2vl_read(vki_vision *v, vki_gguf *f, char *err, size_t n)
{
    const uint32_t w = v->info.width;
    uint32_t merge = MERGE;
    vki_status st = vki_gguf_get_u32(f, "clip.vision.spatial_merge_size", &merge);
    if (st && st != VKI_ERROR_NOT_FOUND) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: %s", vki_gguf_last_error(f));
    if (merge != MERGE)
        return fail(err, n, VKI_ERROR_UNSUPPORTED, "mmproj: clip.vision.spatial_merge_size %u (Qwen2-VL merges "
                    "2x2 patches)", merge);
    // The converter writes the language model's width as feed_forward_length (its config's
    // hidden_size): the MLP's width is fc1's, as llama.cpp reads it.
    vki_gguf_tensor up, m0, m2;
    if (vki_gguf_find_tensor(f, "v.blk.0.ffn_up.weight", &up) || up.n_dims != 2 || up.ne[0] != w || up.ne[1] < 1 ||
        up.ne[1] > MAX_FF)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: no v.blk.0.ffn_up.weight [%u, 1..%d]", w, MAX_FF);
    v->n_ff = (uint32_t)up.ne[1];
    // The merger: 2x2 patches of `width` become one column of 4 * width (mm.0 [4w, 4w]), then
    // the language model's width (mm.2 [4w, n_embd]).
    if (vki_gguf_find_tensor(f, "mm.0.weight", &m0) || vki_gguf_find_tensor(f, "mm.2.weight", &m2))
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: a qwen2vl_merger without mm.0.weight and mm.2.weight");
    if (m0.n_dims != 2 || m0.ne[0] != (int64_t)w * MERGE * MERGE || m0.ne[1] != m0.ne[0] || m2.n_dims != 2 ||
        m2.ne[0] != m0.ne[1] || m2.ne[1] != v->info.n_embd)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: mm.0.weight [%lld, %lld] and mm.2.weight [%lld, %lld] are "
                    "not a merger of 2x2 patches of width %u to %u", (long long)m0.ne[0], (long long)m0.ne[1],
                    (long long)m2.ne[0], (long long)m2.ne[1], w, v->info.n_embd);
    // The rotation splits each head into 4 quarters of rotated pairs.
    if ((w / v->info.n_head) % 4)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: a head width of %u (Qwen2-VL's 2-D rotary positions "
                    "need a multiple of 4)", w / v->info.n_head);
    v->scale = MERGE;
    v->min_pixels = MIN_PIXELS;
    v->max_pixels = MAX_PIXELS;
    return v->gated ? read_qwen25(v, f, err, n) : VKI_OK;
}

/* transformers' smart_resize, in the same double arithmetic (Python's round: half to even, as
 * nearbyint in the default rounding mode). */
bool vki__qwen2vl_size(const vki_vision *v, uint32_t w, uint32_t h, uint32_t *out_w, uint32_t *out_h)
{
    if (w == 0 || h == 0) return false;
    const double factor = (double)v->info.patch_size * MERGE, W = w, H = h;
    if ((W > H ? W / H : H / W) > MAX_ASPECT) return false;
    double hb = nearbyint(H / factor) * factor, wb = nearbyint(W / factor) * factor;
    if (hb * wb > v->max_pixels) {
        double beta = sqrt((double)((uint64_t)h * w) / v->max_pixels);
        hb = fmax(factor, floor(H / beta / factor) * factor);
        wb = fmax(factor, floor(W / beta / factor) * factor);
    } else if (hb * wb < v->min_pixels) {
        double beta = sqrt(v->min_pixels / (double)((uint64_t)h * w));
        hb = ceil(H * beta / factor) * factor;
        wb = ceil(W * beta / factor) * factor;
    }
    double patches = (hb / v->info.patch_size) * (wb / v->info.patch_size);
    if (!(hb >= factor && wb >= factor && patches <= MAX_GRID_PATCHES)) return false;
    *out_w = (uint32_t)wb;
    *out_h = (uint32_t)hb;
    return true;
}

/* The order the merged units go through the encoder, and each patch's window for
 * vki_attention_pos. Windows of `window` x `window` units tile the mw x mh grid from its top
 * left, row by row (those at the right and bottom edges partial), each window's units row by
 * row: transformers' get_window_index, which llama.cpp's window_idx follows. A patch in the run
 * [s, e) of its window sees kv positions s .. e - 1: pos[t, 0] = e - 1 bounds them above, and
 * pos[t, 1] = s - 1 + len, with the builder's window of len = 4 * window^2 patches, below.
 * Without windows (Qwen2-VL) one window holds the whole grid: the row-major order. */
static void window_order(vki_vision *v, uint32_t mw, uint32_t mh)
{
    const uint32_t win = v->window ? v->window : (mw > mh ? mw : mh), len = 4 * win * win, np = v->n_pos;
    uint32_t u = 0;
    for (uint32_t wy = 0; wy < mh; wy += win)
        for (uint32_t wx = 0; wx < mw; wx += win) {
            const uint32_t s = 4 * u;
            for (uint32_t y = wy; y < wy + win && y < mh; y++)
                for (uint32_t x = wx; x < wx + win && x < mw; x++) v->token_order[u++] = y * mw + x;
            for (uint32_t t = s; t < 4 * u; t++) {
                v->window_bounds[t] = (int32_t)(4 * u - 1);
                v->window_bounds[np + t] = (int32_t)(s - 1 + len);
            }
        }
}

vki_status vki__qwen2vl_program(vki_vision *v, vki_device *dev, const vki_profile *profile, uint32_t gw,
                                uint32_t gh, char *err, size_t n)
{
    if (v->prog && v->grid_w == gw && v->grid_h == gh) return VKI_OK;
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    vki_program_destroy(v->prog);
    vki__model_free(a, v->patch_rows);
    vki__model_free(a, v->positions);
    vki__model_free(a, v->window_bounds);
    vki__model_free(a, v->token_order);
    vki__model_free(a, v->embd_rows);
    v->prog = NULL;
    v->patch_rows = v->embd_rows = NULL;
    v->positions = v->window_bounds = NULL;
    v->token_order = NULL;
    v->grid_w = v->grid_h = 0;
    // gw, gh even and gw * gh bounded (vki__qwen2vl_size): every size below fits easily.
    v->n_pos = gw * gh;
    v->n_tokens = v->n_pos / 4;
    size_t col = (size_t)v->info.patch_size * v->info.patch_size * 3;
    if (dev) {
        v->patch_rows = vki__model_alloc(a, col * v->n_pos * sizeof(float));
        v->positions = vki__model_alloc(a, (size_t)v->n_pos * 4 * sizeof(int32_t));
        v->window_bounds = vki__model_alloc(a, (size_t)v->n_pos * 2 * sizeof(int32_t));
        v->token_order = vki__model_alloc(a, (size_t)v->n_tokens * sizeof(uint32_t));
        v->embd_rows = vki__model_alloc(a, (size_t)v->n_tokens * v->info.n_embd * sizeof(float));
        if (!v->patch_rows || !v->positions || !v->window_bounds || !v->token_order || !v->embd_rows)
            return fail(err, n, VKI_ERROR_OUT_OF_HOST_MEMORY, "vision: out of host memory for %u x %u patches", gw, gh);
        window_order(v, gw / MERGE, gh / MERGE);
    }
    char name[64];
    snprintf(name, sizeof name, "vision encoder (%u x %u patches)", gw, gh);
    vki_program_desc pd = {.device = dev, .profile = profile, .allocator = a, .name = name};
    vki_status st = vki_program_create(&pd, &v->prog);
    if (st) return fail(err, n, st, "mmproj: %s", vki_status_string(st));
    v->out = vki__qwen2vl_build(v);
    vki_program_output(v->prog, v->out, "embd");
    st = vki_weights_status(v->weights);
    // A builder's failure first: after it the weights the network would read are not asked for.
    vki_graph *g = vki_program_graph(v->prog);
    if (!st && vki_graph_status(g)) return fail(err, n, vki_graph_status(g), "mmproj: %s", vki_graph_error(g));
    if (!st) st = vki_weights_check_all_used(v->weights);
    if (!st) st = vki_weights_upload(v->weights); // once: later programs bind what is there
    if (st) return fail(err, n, st, "mmproj: %s", vki_weights_error(v->weights));
    if ((st = vki_program_compile(v->prog, v->weights))) return fail(err, n, st, "mmproj: %s", vki_program_error(v->prog));
    v->info.activation_bytes = vki_program_activation_bytes(v->prog);
    v->grid_w = gw;
    v->grid_h = gh;
    return VKI_OK;
}

vki_status vki__qwen2vl_preprocess(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h)
{
    uint32_t rw = 0, rh = 0;
    if (!vki__qwen2vl_size(v, w, h, &rw, &rh) || !v->patch_rows) return VKI_ERROR_INVALID_ARGUMENT;
    const uint32_t p = v->info.patch_size, gw = rw / p, gh = rh / p;
    if (gw != v->grid_w || gh != v->grid_h) return VKI_ERROR_INVALID_ARGUMENT; // not this program's grid
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    uint8_t *img = vki__model_alloc(a, (size_t)rw * rh * 3);
    if (!img) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    vki_status st = vki__vision_resize(v, rgb, w, h, rw, rh, img);
    if (st) {
        vki__model_free(a, img);
        return st;
    }
    const uint32_t n = gw * gh, mw = gw / MERGE;
    float *dst = v->patch_rows;
    uint32_t t = 0;
    for (uint32_t u = 0; u < n / (MERGE * MERGE); u++)
        for (uint32_t my = 0; my < MERGE; my++)
            for (uint32_t mx = 0; mx < MERGE; mx++, t++) {
                const uint32_t py = v->token_order[u] / mw * MERGE + my, px = v->token_order[u] % mw * MERGE + mx;
                v->positions[t] = (int32_t)py;
                v->positions[n + t] = (int32_t)px;
                v->positions[2 * n + t] = v->positions[3 * n + t] = 0;
                // One patch in the kernel's order: x fastest, then y, then channel.
                for (uint32_t c = 0; c < 3; c++)
                    for (uint32_t ky = 0; ky < p; ky++) {
                        const uint8_t *row = img + ((size_t)(py * p + ky) * rw + px * p) * 3 + c;
                        for (uint32_t kx = 0; kx < p; kx++)
                            *dst++ = ((float)row[kx * 3] / 255.0f - v->mean[c]) / v->std[c];
                    }
            }
    vki__model_free(a, img);
    return VKI_OK;
}
