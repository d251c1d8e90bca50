/* LLaVA 1.6 (LLaVA-NeXT): the "mlp" projector of LLaVA 1.5 (CLIP, penultimate layer, 2-layer
 * MLP) with anyres tiling, as transformers' LlavaNextImageProcessor and
 * LlavaNextForConditionalGeneration define it. The mmproj keys are llama.cpp's (its legacy
 * converter writes them): clip.vision.image_grid_pinpoints (the checkpoint's list of (height,
 * width) pairs, flattened), clip.vision.mm_patch_merge_type "spatial_unpad", and the
 * model.image_newline tensor.
 *
 * An image of w x h pixels:
 *  - picks the pinpoint (H, W) that keeps the most of its pixels (min(w h, its downscaled area
 *    at min(W / w, H / h))), then the one wasting the least area, the first on a tie;
 *  - is resized into it keeping its aspect (the fitting side exactly, the other ceil'd), the rest
 *    padded with black around the centre (the odd pixel after), and cut into image_size tiles;
 *  - plus the overview: the image squashed to image_size x image_size.
 * Each of those goes through the encoder and projector on its own (n_side^2 embeddings). The
 * overview's come first; then the tiles' feature grid ((H / S) n_side rows of (W / S) n_side)
 * cut back to the image's aspect (spatial unpad: the padded rows or columns off both ends),
 * row by row, each row followed by model.image_newline.
 *
 * llama.cpp's mtmd runs the same files differently: it reads the pinpoints as (width, height)
 * pairs, and hands the language model the overview and the tiles' embeddings flat (n_side^2
 * each), with neither the unpad nor the newline. vkinfer follows transformers, the reference
 * the model was trained with; the flat layout is kept for tests (the negative control). */
#include "vision_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_TILES 64 // per image, besides the overview (released LLaVA 1.6: up to 4)

vki_status vki__llava16_read(vki_vision *v, vki_gguf *f, char *err, size_t n)
{
    vki_gguf_string s;
    vki_status st = vki_gguf_get_string(f, "clip.vision.mm_patch_merge_type", &s);
    if (st && st != VKI_ERROR_NOT_FOUND)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.vision.mm_patch_merge_type is not a string");
    bool unpad = !st && s.size == 13 && !memcmp(s.data, "spatial_unpad", 13);
    if (!st && !unpad && !(s.size == 4 && !memcmp(s.data, "flat", 4)))
        return fail(err, n, VKI_ERROR_UNSUPPORTED, "mmproj: clip.vision.mm_patch_merge_type is neither \"flat\" nor "
                    "\"spatial_unpad\"");
    vki_gguf_array a;
    st = vki_gguf_get_array(f, "clip.vision.image_grid_pinpoints", &a);
    if (st && st != VKI_ERROR_NOT_FOUND)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.vision.image_grid_pinpoints is not an array");
    bool has_pinpoints = !st;
    if (!unpad) {
        // LLaVA 1.5. Pinpoints without the unpad are llama.cpp's padded-square preprocessing, which
        // is not transformers' (and not this file's model).
        if (has_pinpoints)
            return fail(err, n, VKI_ERROR_UNSUPPORTED, "mmproj: clip.vision.image_grid_pinpoints without "
                        "clip.vision.mm_patch_merge_type \"spatial_unpad\" is not supported");
        return VKI_OK;
    }
    uint32_t s_px = v->info.image_size;
    if (!has_pinpoints || a.count < 2 || a.count % 2 || a.count > 2 * VKI_LLAVA16_MAX_PINPOINTS)
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: spatial_unpad needs clip.vision.image_grid_pinpoints, 1..%d "
                    "(height, width) pairs", VKI_LLAVA16_MAX_PINPOINTS);
    for (uint64_t i = 0; i < a.count; i += 2) {
        uint32_t hh = 0, ww = 0;
        if (vki_gguf_array_get_u32(f, &a, i, &hh) || vki_gguf_array_get_u32(f, &a, i + 1, &ww) || hh == 0 ||
            ww == 0 || hh % s_px || ww % s_px || (uint64_t)(hh / s_px) * (ww / s_px) > MAX_TILES)
            return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: clip.vision.image_grid_pinpoints[%llu] is not a "
                        "(height, width) of whole %u px tiles, at most %d of them", (unsigned long long)(i / 2), s_px,
                        MAX_TILES);
        v->pinpoints[i] = hh;
        v->pinpoints[i + 1] = ww;
    }
    v->n_pinpoints = (uint32_t)(a.count / 2);
    // The newline: one embedding of the language model's width, kept on the host (it goes
    // between rows of embeddings, not through the network).
    vki_gguf_tensor t;
    if (vki_gguf_find_tensor(f, "model.image_newline", &t))
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: spatial_unpad without the model.image_newline tensor");
    uint64_t e = v->info.n_embd;
    bool f16 = t.ggml_type == 1;
    if ((t.ggml_type != 0 && !f16) || t.ne[0] != (int64_t)e || t.ne[1] != 1 || t.ne[2] != 1 || t.ne[3] != 1 ||
        t.size < e * (f16 ? 2 : 4))
        return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: model.image_newline is not an F32 or F16 vector of %llu",
                    (unsigned long long)e);
    const vki_allocator *al = v->allocator.alloc ? &v->allocator : NULL;
    v->newline = vki__model_alloc(al, e * sizeof(float));
    if (!v->newline) return fail(err, n, VKI_ERROR_OUT_OF_HOST_MEMORY, "mmproj: out of host memory");
    for (uint64_t i = 0; i < e; i++) {
        float x;
        if (f16) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t.data + 2 * i, 2);
            x = vki_f16_to_f32(h);
        } else {
            memcpy(&x, (const uint8_t *)t.data + 4 * i, 4);
        }
        if (!isfinite(x)) return fail(err, n, VKI_ERROR_BAD_FILE, "mmproj: model.image_newline[%llu] is not finite",
                                      (unsigned long long)i);
        v->newline[i] = x;
    }
    v->unpad = true;
    return VKI_OK;
}

/* transformers' select_best_resolution: the pinpoint (H, W) for a w x h image. */
static void best_resolution(const vki_vision *v, uint32_t w, uint32_t h, uint32_t *out_h, uint32_t *out_w)
{
    uint64_t best_eff = 0, best_waste = UINT64_MAX;
    for (uint32_t i = 0; i < v->n_pinpoints; i++) {
        uint32_t ph = v->pinpoints[2 * i], pw = v->pinpoints[2 * i + 1];
        double scale = fmin((double)pw / w, (double)ph / h);
        uint64_t dw = (uint64_t)(w * scale), dh = (uint64_t)(h * scale), area = (uint64_t)w * h;
        uint64_t eff = dw * dh < area ? dw * dh : area, waste = (uint64_t)pw * ph - eff;
        if (eff > best_eff || (eff == best_eff && waste < best_waste)) {
            best_eff = eff;
            best_waste = waste;
            *out_h = ph;
            *out_w = pw;
        }
    }
}

/* int(round(x, 7)): Python's rounding to 7 places first, so that 9.99999999 counts as 10. */
static uint32_t trunc7(double x) { return (uint32_t)(floor(x * 1e7 + 0.5) / 1e7); }

/* The unpadded feature grid of a w x h image: rows [*r0, *r0 + *rows) and columns [*c0, *c0 +
 * *cols) of the tiles' (gh x gw) grid, as transformers' unpad_image. */
static void unpad_box(uint32_t w, uint32_t h, uint32_t gw, uint32_t gh, uint32_t *r0, uint32_t *rows, uint32_t *c0,
                      uint32_t *cols)
{
    *r0 = *c0 = 0;
    *rows = gh;
    *cols = gw;
    if ((double)w / h > (double)gw / gh) {
        uint32_t nh = trunc7(h * ((double)gw / w)), pad = nh < gh ? (gh - nh) / 2 : 0;
        *r0 = pad;
        *rows = gh - 2 * pad;
    } else {
        uint32_t nw = trunc7(w * ((double)gh / h)), pad = nw < gw ? (gw - nw) / 2 : 0;
        *c0 = pad;
        *cols = gw - 2 * pad;
    }
}

/* Tiles across and down, and the embeddings of a w x h image (flat: overview and tiles). */
static uint32_t layout(const vki_vision *v, uint32_t w, uint32_t h, bool flat, uint32_t *tx, uint32_t *ty)
{
    uint32_t bh = 0, bw = 0, ns = v->n_side, r0, rows, c0, cols;
    best_resolution(v, w, h, &bh, &bw);
    *tx = bw / v->info.image_size;
    *ty = bh / v->info.image_size;
    if (flat) return (1 + *tx * *ty) * ns * ns;
    unpad_box(w, h, *tx * ns, *ty * ns, &r0, &rows, &c0, &cols);
    return ns * ns + rows * (cols + 1);
}

uint32_t vki__llava16_n_tokens(const vki_vision *v, uint32_t w, uint32_t h)
{
    uint32_t tx, ty;
    return layout(v, w, h, false, &tx, &ty);
}

vki_status vki__llava16_pixels(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out)
{
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    uint32_t s = v->info.image_size, bh = 0, bw = 0, tx, ty;
    layout(v, w, h, true, &tx, &ty);
    bw = tx * s;
    bh = ty * s;
    // transformers' get_patch_output_size: the side with the smaller scale fits exactly.
    double sw = (double)bw / w, sh = (double)bh / h;
    uint32_t nw, nh;
    if (sw < sh) {
        nw = bw;
        nh = (uint32_t)fmin(ceil(h * sw), bh);
    } else {
        nh = bh;
        nw = (uint32_t)fmin(ceil(w * sh), bw);
    }
    if (nw == 0) nw = 1;
    if (nh == 0) nh = 1;
    uint8_t *canvas = vki__model_alloc(a, (size_t)bw * bh * 3);
    uint8_t *resized = vki__model_alloc(a, (size_t)(nw > s ? nw : s) * (nh > s ? nh : s) * 3);
    vki_status st = canvas && resized ? VKI_OK : VKI_ERROR_OUT_OF_HOST_MEMORY;
    size_t plane = (size_t)s * s;
    // The overview first: the image squashed to s x s.
    if (!st) st = vki__vision_resize(v, rgb, w, h, s, s, resized);
    if (!st)
        for (uint32_t c = 0; c < 3; c++)
            for (size_t i = 0; i < plane; i++)
                out[c * plane + i] = ((float)resized[i * 3 + c] / 255.0f - v->mean[c]) / v->std[c];
    if (!st) st = vki__vision_resize(v, rgb, w, h, nw, nh, resized);
    if (!st) {
        memset(canvas, 0, (size_t)bw * bh * 3); // black, as np.pad's zeros before the rescale
        uint32_t px = (bw - nw) / 2, py = (bh - nh) / 2;
        for (uint32_t y = 0; y < nh; y++)
            memcpy(canvas + ((size_t)(py + y) * bw + px) * 3, resized + (size_t)y * nw * 3, (size_t)nw * 3);
        for (uint32_t t = 0; t < tx * ty; t++) {
            float *dst = out + (size_t)(1 + t) * 3 * plane;
            uint32_t ox = (t % tx) * s, oy = (t / tx) * s;
            for (uint32_t c = 0; c < 3; c++)
                for (uint32_t y = 0; y < s; y++)
                    for (uint32_t x = 0; x < s; x++)
                        dst[c * plane + (size_t)y * s + x] =
                            ((float)canvas[((size_t)(oy + y) * bw + ox + x) * 3 + c] / 255.0f - v->mean[c]) / v->std[c];
        }
    }
    vki__model_free(a, canvas);
    vki__model_free(a, resized);
    return st;
}

vki_status vki__llava16_encode(vki_vision *v, const uint8_t *rgb, uint32_t w, uint32_t h, float *out, bool flat)
{
    const vki_allocator *a = v->allocator.alloc ? &v->allocator : NULL;
    uint32_t tx, ty, ns = v->n_side, e = v->info.n_embd, s = v->info.image_size;
    layout(v, w, h, true, &tx, &ty);
    uint32_t n_img = 1 + tx * ty;
    size_t plane = (size_t)3 * s * s, per = (size_t)ns * ns * e;
    float *pix = vki__model_alloc(a, n_img * plane * sizeof(float));
    float *emb = flat ? out : vki__model_alloc(a, n_img * per * sizeof(float));
    vki_status st = pix && emb ? vki__llava16_pixels(v, rgb, w, h, pix) : VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (st == VKI_ERROR_OUT_OF_HOST_MEMORY)
        snprintf(v->error, sizeof v->error, "vision: out of host memory preprocessing %u x %u", w, h);
    for (uint32_t i = 0; !st && i < n_img; i++) {
        memcpy(v->pixels, pix + i * plane, plane * sizeof(float));
        st = vki__vision_run(v, emb + i * per);
    }
    if (!st && !flat && (st = vki_program_download(v->prog, v->newline_out, v->newline, (uint64_t)e * sizeof(float))))
        snprintf(v->error, sizeof v->error, "vision: %s", vki_program_error(v->prog)[0] ? vki_program_error(v->prog)
                                                                                       : vki_status_string(st));
    if (!st && !flat) {
        // The overview's embeddings, then the tiles' grid unpadded, a newline after each row.
        uint32_t gw = tx * ns, gh = ty * ns, r0, rows, c0, cols;
        unpad_box(w, h, gw, gh, &r0, &rows, &c0, &cols);
        memcpy(out, emb, per * sizeof(float));
        float *dst = out + per;
        for (uint32_t r = r0; r < r0 + rows; r++) {
            for (uint32_t c = c0; c < c0 + cols; c++) {
                uint32_t tile = (r / ns) * tx + c / ns, pos = (r % ns) * ns + c % ns;
                memcpy(dst, emb + (1 + tile) * per + (size_t)pos * e, (size_t)e * sizeof(float));
                dst += e;
            }
            memcpy(dst, v->newline, (size_t)e * sizeof(float));
            dst += e;
        }
    }
    vki__model_free(a, pix);
    if (!flat) vki__model_free(a, emb);
    return st;
}

uint32_t vki__llava16_n_tokens_flat(const vki_vision *v, uint32_t w, uint32_t h)
{
    uint32_t tx, ty;
    return layout(v, w, h, true, &tx, &ty);
}
