/* `vkinfer bench vision`: one image through a vision encoder (an mmproj file, -m FILE, or
 * --synthetic NAME: a released encoder's shapes with random weights, vki_vision_synthetic), as
 * chat --image runs it: preprocessing on the host, the ViT and the projector on the device, the
 * embeddings downloaded. Encode seconds: mean ± sample standard deviation and median over the
 * repetitions after one warm-up; the load (file to compiled, uploaded encoder) once, cold.
 *
 * The compute roof: the encode's flops against the best of the device's fp32, fp16 and
 * cooperative-matrix peaks (vki_bench_peaks_get), as bench llm's prefill. Flops, counted from
 * the hyper-parameters: 2 per multiply-add of the patch embedding (patch^2 * 3 -> width per
 * patch), each block's four attention matrices and two MLP matrices (three where gated:
 * Qwen2.5-VL) over the whole sequence, attention both ways (4 head_dim flops per head per
 * query-key pair; in Qwen2.5-VL's window layers, only the pairs within a window), and the projector
 * (Idefics3's shuffled linear, Gemma 3's pooling product and projection, LLaVA's and Qwen2-VL's
 * merger's two linears);
 * norms, activations and the host's preprocessing are left out. */
#include "apps_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Flops of one encode (see the top); the MLP's width and LLaVA's hidden width from the file. */
static double encode_flops(const vki_vision *v, vki_gguf *g)
{
    const vki_vision_info *in = vki_vision_info_get(v);
    double w = in->width, p = in->patch_size, side = in->image_size / in->patch_size;
    double patches = side * side, n = patches, tokens = vki_vision_n_tokens(v, 1, 1), e = in->n_embd;
    uint32_t ff = 0;
    vki_gguf_get_u32(g, "clip.vision.feed_forward_length", &ff);
    if (in->projector == VKI_PROJECTOR_MLP) n += 1; // CLIP's class token
    if (in->projector == VKI_PROJECTOR_QWEN2VL) {
        // Sized per image: the bench's square, 2x2 patches a token; the MLP's width is fc1's
        // (the converter writes the language model's width as feed_forward_length).
        vki_gguf_tensor up;
        if (!vki_gguf_find_tensor(g, "v.blk.0.ffn_up.weight", &up)) ff = (uint32_t)up.ne[1];
        tokens = vki_vision_n_tokens(v, in->image_size, in->image_size);
        patches = n = 4 * tokens;
    }
    // Qwen2.5-VL: a gated MLP (three matrices), and window attention in the layers that are
    // not full: a window of r x c merged units attends over its own 4 r c patches, so the layer's
    // query-key pairs are 16 (sum of the row segments' r^2) (sum of the column segments' c^2).
    vki_gguf_tensor gate;
    double mlp = vki_gguf_find_tensor(g, "v.blk.0.ffn_gate.weight", &gate) ? 2 : 3;
    double pairs_full = n * n, pairs_window = pairs_full, full_layers = in->n_layer;
    uint32_t window_px = 112, n_wa = 0;
    vki_gguf_get_u32(g, "clip.vision.window_size", &window_px);
    vki_gguf_get_u32(g, "clip.vision.n_wa_pattern", &n_wa);
    if (in->projector == VKI_PROJECTOR_QWEN2VL && n_wa > 0 && window_px >= 2 * p) {
        double units = in->image_size / (2 * p), wu = floor(window_px / (2 * p)), sq = 0;
        for (double u0 = 0; u0 < units; u0 += wu) {
            double len = units - u0 < wu ? units - u0 : wu;
            sq += len * len;
        }
        pairs_window = 16 * sq * sq; // square image: the same segments both ways
        full_layers = floor(in->n_layer / (double)n_wa);
    }
    double flops = 2 * p * p * 3 * w * patches;
    flops += in->n_layer * 2 * n * (4 * w * w + mlp * w * ff);
    flops += 4 * w * (full_layers * pairs_full + (in->n_layer - full_layers) * pairs_window);
    if (in->projector == VKI_PROJECTOR_IDEFICS3) {
        flops += 2 * (w * patches / tokens) * e * tokens; // each token: scale^2 patches' features
    } else if (in->projector == VKI_PROJECTOR_GEMMA3) {
        flops += 2 * patches * w * tokens + 2 * w * e * tokens;
    } else if (in->projector == VKI_PROJECTOR_MLP) {
        vki_gguf_tensor t0;
        double hid = vki_gguf_find_tensor(g, "mm.0.weight", &t0) ? 0 : (double)t0.ne[1];
        flops += 2 * (w * hid + hid * e) * tokens;
    } else if (in->projector == VKI_PROJECTOR_QWEN2VL) {
        flops += 2 * (16 * w * w + 4 * w * e) * tokens; // the merger's two linears
    }
    return flops;
}

int vki_bench_vision(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    const char *path = opts->llm.model, *synthetic = opts->llm.synthetic;
    if (!path == !synthetic)
        return vki_app_failf("bench vision: needs an mmproj file (-m FILE) or --synthetic NAME (%s%s%s)",
                             vki_vision_synthetic_name(0), vki_vision_synthetic_name(1) ? ", " : "",
                             vki_vision_synthetic_name(1) ? vki_vision_synthetic_name(1) : "");
    if (opts->save && !synthetic) return vki_app_failf("bench vision: --save writes a --synthetic encoder");
    char err[512] = "";
    void *bytes = NULL;
    size_t size = 0;
    vki_gguf *g = NULL;
    vki_vision *v = NULL;
    uint8_t *rgb = NULL;
    float *embd = NULL;
    double *secs = NULL;
    int code = VKI_EXIT_OK;
    vki_status st;
    double t_load = vki_now_us();
    if (synthetic) {
        if ((st = vki_vision_synthetic(synthetic, 1, &bytes, &size, err, sizeof err))) {
            code = vki_app_failf("bench vision: %s", err);
            goto done;
        }
        if (opts->save) {
            if ((st = vki_file_write_new(opts->save, bytes, size, err, sizeof err))) {
                code = vki_app_failf("bench vision: --save: %s", err);
                goto done;
            }
            fprintf(stderr, "vkinfer: wrote %s (%.0f MiB)\n", opts->save, size / 1048576.0);
            free(bytes);
            bytes = NULL;
            path = opts->save;
        }
    }
    t_load = vki_now_us(); // the load from here: generating random weights is not the encoder's
    st = bytes ? vki_gguf_open_memory(bytes, size, NULL, &g, err, sizeof err)
               : vki_gguf_open(path, NULL, &g, err, sizeof err);
    if (st) {
        code = vki_app_failf("bench vision: %s", err);
        goto done;
    }
    if ((st = vki_vision_load(app->device, g, NULL, &v, err, sizeof err))) {
        code = vki_app_failf("bench vision: %s", err);
        goto done;
    }
    double load_ms = (vki_now_us() - t_load) / 1000.0;
    const vki_vision_info *in = vki_vision_info_get(v);
    const vki_profile *p = vki_device_profile(app->device);
    uint32_t reps = opts->reps ? opts->reps : p->type == VKI_DEVICE_CPU ? 2 : 5, s = in->image_size;
    uint32_t n_tokens = vki_vision_n_tokens(v, s, s);
    // An image of the encoder's own size (the resize is then a copy), random pixels: the
    // network's time does not depend on them.
    rgb = malloc((size_t)s * s * 3);
    embd = malloc((size_t)n_tokens * in->n_embd * sizeof *embd);
    secs = malloc(reps * sizeof *secs);
    if (!rgb || !embd || !secs) {
        code = vki_app_failf("bench vision: out of host memory");
        goto done;
    }
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < (size_t)s * s * 3; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        rgb[i] = (uint8_t)state;
    }
    vki_bench_peaks peaks;
    if ((code = vki_bench_peaks_get(app, opts, &peaks)) != VKI_EXIT_OK) goto done;
    for (uint32_t r = 0; r <= reps; r++) {
        vki_bench_progress("vision", r ? "encode" : "warm-up", r, reps + 1);
        double t0 = vki_now_us();
        if (vki_vision_encode(v, rgb, s, s, embd)) {
            code = vki_app_failf("bench vision: %s", vki_vision_last_error(v));
            goto done;
        }
        if (r > 0) secs[r - 1] = (vki_now_us() - t0) / 1e6;
    }
    vki_bench_progress("vision", NULL, reps + 1, reps + 1);
    double mean = 0, sd = 0;
    for (uint32_t r = 0; r < reps; r++) mean += secs[r] / reps;
    for (uint32_t r = 0; r < reps; r++) sd += (secs[r] - mean) * (secs[r] - mean);
    sd = reps > 1 ? sqrt(sd / (reps - 1)) : 0;
    qsort(secs, reps, sizeof *secs, cmp_double);
    double median = reps % 2 ? secs[reps / 2] : (secs[reps / 2 - 1] + secs[reps / 2]) / 2;
    double flops = encode_flops(v, g);
    double compute_peak = peaks.fp32_gflops;
    if (peaks.fp16_gflops > compute_peak) compute_peak = peaks.fp16_gflops;
    if (peaks.coopmat_fp16_gflops > compute_peak) compute_peak = peaks.coopmat_fp16_gflops;
    double gflops = median > 0 ? flops / median / 1e9 : 0;
    double share = compute_peak > 0 ? gflops / compute_peak : 0;
    uint64_t device_bytes = in->weight_bytes + in->activation_bytes;

    const char *model = synthetic && !opts->save ? synthetic : path;
    vki_json_add_text(out, "model", model, strlen(model));
    cJSON_AddStringToObject(out, "projector", in->projector_name);
    cJSON_AddNumberToObject(out, "image_size", s);
    cJSON_AddNumberToObject(out, "patch_size", in->patch_size);
    cJSON_AddNumberToObject(out, "n_layer", in->n_layer);
    cJSON_AddNumberToObject(out, "width", in->width);
    cJSON_AddNumberToObject(out, "n_tokens", n_tokens);
    cJSON_AddNumberToObject(out, "n_embd", in->n_embd);
    cJSON_AddNumberToObject(out, "reps", reps);
    vki_json_add_measure(out, "encode_s", mean);
    vki_json_add_measure(out, "encode_sd", sd);
    vki_json_add_measure(out, "encode_median_s", median);
    vki_json_add_measure(out, "encode_gflop", flops / 1e9);
    vki_json_add_measure(out, "compute_gflops", gflops);
    vki_json_add_measure(out, "compute_roof_gflops", compute_peak);
    vki_json_add_measure(out, "compute_roof_share", share);
    vki_json_add_measure(out, "load_ms", load_ms);
    cJSON_AddNumberToObject(out, "weight_bytes", (double)in->weight_bytes);
    cJSON_AddNumberToObject(out, "activation_bytes", (double)in->activation_bytes);
    cJSON_AddNumberToObject(out, "device_bytes", (double)device_bytes);
    if (!opts->json) {
        char w[32], a[32], t[32];
        printf("encoder %s (%s: %u px, patch %u, %u layers of %u) -> %u tokens of %u, %u reps after a warm-up\n",
               model, in->projector_name, s, in->patch_size, in->n_layer, in->width, n_tokens, in->n_embd, reps);
        printf("  encode %10.3f ± %.3f s (median %.3f)\n", mean, sd, median);
        printf("  roof: %.1f GFLOP in %.3f s = %.1f GFLOP/s = %.1f%% of %.1f GFLOP/s (best compute peak)\n",
               flops / 1e9, median, gflops, 100.0 * share, compute_peak);
        printf("  load (file to uploaded, compiled encoder) %.0f ms\n", load_ms);
        printf("  device memory %s = weights %s + activations %s\n", vki_bytes_string(device_bytes, t),
               vki_bytes_string(in->weight_bytes, w), vki_bytes_string(in->activation_bytes, a));
    }
done:
    free(secs);
    free(embd);
    free(rgb);
    vki_vision_destroy(v);
    vki_gguf_close(g);
    free(bytes);
    return code;
}
