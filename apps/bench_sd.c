/* `vkinfer bench sd`: Stable Diffusion measured the way its users count: text encoding, U-Net
 * seconds per step (classifier-free guidance's two passes, batched), VAE decode and the whole
 * image, at 512x512 (256x256 on a CPU device), and the device memory it takes. One image warms
 * up (compiles the programs), the next is measured. The model is -m FILE or --synthetic sd15 /
 * sd21 (full-size random weights); --save FILE writes that synthetic checkpoint as a
 * single-file .safetensors that other programs (stable-diffusion.cpp) read, so both run the
 * same file. --type converts the weights at load (f16, q8_0, q4_0, q4_1), so that memory and
 * speed can be compared per type. */
#include "apps_internal.h"

#include <stdlib.h>
#include <string.h>

#define CLIP_VOCAB "clip/bpe_simple_vocab_16e6.txt"

/* Writes the checkpoint to a new file (never over an existing one or through a link). */
static int save(const char *path, const void *bytes, size_t size)
{
    char err[512];
    if (vki_file_write_new(path, bytes, size, err, sizeof err) != VKI_OK)
        return vki_app_failf("bench sd: --save: %s", err);
    fprintf(stderr, "vkinfer: wrote %s (%.0f MiB)\n", path, size / 1048576.0);
    return VKI_EXIT_OK;
}

/* Progress of the measured image on a terminal: 0 the warm-up image, 1 the text encoder, then
 * each U-Net step, then the VAE (vki_bench_progress draws nothing elsewhere). */
static void on_step(void *user, uint32_t step, uint32_t steps)
{
    (void)user;
    vki_bench_progress("sd", step < steps ? "U-Net steps" : "VAE decode", 1 + step, steps + 2);
}

int vki_bench_sd(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    const char *model = opts->llm.model, *synthetic = opts->llm.synthetic;
    if (!model && !synthetic)
        return vki_app_failf("bench sd: give a checkpoint (-m FILE or folder) or --synthetic sd15/sd21");
    const vki_profile *p = vki_device_profile(app->device);
    uint32_t size = opts->sd_size ? opts->sd_size : p->type == VKI_DEVICE_CPU ? 256 : 512;
    uint32_t steps = opts->sd_steps ? opts->sd_steps : p->type == VKI_DEVICE_CPU ? 2 : 10;
    char vocab[1100];
    vki_model_cache_file(CLIP_VOCAB, vocab, sizeof vocab);
    void *bytes = NULL;
    size_t bytes_size = 0;
    char why[512] = "";
    vki_sd *sd = NULL;
    uint8_t *rgb = NULL;
    int code = VKI_EXIT_OK;
    if (synthetic && vki_sd_synthetic(synthetic, 1, &bytes, &bytes_size, why, sizeof why)) {
        code = vki_app_failf("bench sd: %s", why);
        goto done;
    }
    if (bytes && opts->save && (code = save(opts->save, bytes, bytes_size)) != VKI_EXIT_OK) goto done;
    double t0 = vki_now_us();
    vki_sd_desc d = {.path = model, .data = bytes, .size = bytes_size, .vocab_path = vocab,
                     .weight_type = opts->sd_type};
    if (vki_sd_load(app->device, &d, &sd, why, sizeof why)) {
        code = vki_app_failf("bench sd: loading %s: %s", model ? model : synthetic, why);
        goto done;
    }
    double load_s = (vki_now_us() - t0) / 1e6;
    rgb = malloc((size_t)size * size * 3);
    if (!rgb) {
        code = vki_app_failf("bench sd: out of host memory");
        goto done;
    }
    vki_sd_params params = {.prompt = "a photograph of an astronaut riding a horse",
                            .negative_prompt = "blurry", .width = size, .height = size,
                            .steps = 1, .cfg_scale = 7, .seed = 42, .sampler = VKI_SD_SAMPLER_EULER};
    t0 = vki_now_us();
    vki_bench_progress("sd", "warm-up image (compiles)", 0, steps + 2);
    if (vki_sd_generate(sd, &params, rgb)) { // warm-up: compiles every program
        code = vki_app_failf("bench sd: %s", vki_sd_last_error(sd));
        goto done;
    }
    double first_s = (vki_now_us() - t0) / 1e6;
    params.steps = steps;
    params.progress = on_step;
    vki_bench_progress("sd", "text encode", 1, steps + 2);
    if (vki_sd_generate(sd, &params, rgb)) {
        code = vki_app_failf("bench sd: %s", vki_sd_last_error(sd));
        goto done;
    }
    vki_bench_progress("sd", NULL, 1, 1); // cleared before the table
    const vki_sd_timings *t = vki_sd_timings_get(sd);
    const vki_sd_info *info = vki_sd_info_get(sd);
    double step_s = t->steps ? t->sample_s / t->steps : 0;
    vki_json_add_text(out, "model", model ? model : synthetic, strlen(model ? model : synthetic));
    cJSON_AddNumberToObject(out, "sd_version", info->version);
    cJSON_AddNumberToObject(out, "width", size);
    cJSON_AddNumberToObject(out, "height", size);
    cJSON_AddNumberToObject(out, "steps", steps);
    cJSON_AddNumberToObject(out, "cfg_batch", 2);
    const char *type = opts->sd_type ? vki_dtype_get(opts->sd_type)->name : "stored";
    vki_json_add_text(out, "weight_type", type, strlen(type));
    cJSON_AddNumberToObject(out, "weight_bytes", (double)info->weight_bytes);
    vki_json_add_measure(out, "load_s", load_s);
    vki_json_add_measure(out, "first_image_s", first_s);
    vki_json_add_measure(out, "text_encode_s", t->text_s);
    vki_json_add_measure(out, "unet_s_per_step", step_s);
    vki_json_add_measure(out, "vae_decode_s", t->vae_s);
    vki_json_add_measure(out, "image_s", t->total_s);
    cJSON_AddNumberToObject(out, "peak_device_bytes", (double)t->peak_device_bytes);
    /* Measured (the device's allocations), beside the planners' arenas: per stage, what is held
     * at its end, and the device's peak over the whole run. */
    cJSON_AddNumberToObject(out, "unet_activation_bytes", (double)t->unet_activation_bytes);
    cJSON_AddNumberToObject(out, "vae_activation_bytes", (double)t->vae_activation_bytes);
    cJSON_AddNumberToObject(out, "vae_tile", t->vae_tile);
    cJSON_AddNumberToObject(out, "device_bytes_loaded", (double)t->device_bytes_loaded);
    cJSON_AddNumberToObject(out, "device_bytes_text", (double)t->device_bytes_text);
    cJSON_AddNumberToObject(out, "device_bytes_unet", (double)t->device_bytes_unet);
    cJSON_AddNumberToObject(out, "device_bytes_vae", (double)t->device_bytes_vae);
    cJSON_AddNumberToObject(out, "device_peak_bytes", (double)t->device_peak_bytes);
    if (!opts->json) {
        char mem[32];
        printf("model %s (SD %u.x), %ux%u, %u steps of Euler with CFG (batch 2), after a warm-up\n",
               model ? model : synthetic, info->version, size, size, steps);
        printf("  load %.1f s, first image (compiles) %.1f s\n", load_s, first_s);
        printf("  weights %s on the device (%s)\n", vki_bytes_string(info->weight_bytes, mem),
               opts->sd_type ? type : "as stored");
        printf("  text encode %8.3f s\n  unet        %8.3f s/step (%.2f it/s)\n  vae decode  %8.3f s\n"
               "  image       %8.3f s\n",
               t->text_s, step_s, step_s > 0 ? 1 / step_s : 0, t->vae_s, t->total_s);
        char m[5][32];
        printf("  device memory, measured: after load %s, text encode %s, unet %s, vae %s; peak %s\n",
               vki_bytes_string(t->device_bytes_loaded, m[0]), vki_bytes_string(t->device_bytes_text, m[1]),
               vki_bytes_string(t->device_bytes_unet, m[2]), vki_bytes_string(t->device_bytes_vae, m[3]),
               vki_bytes_string(t->device_peak_bytes, m[4]));
        printf("  activation arenas: unet %s, vae %s (latent tile %u%s)\n",
               vki_bytes_string(t->unet_activation_bytes, m[0]), vki_bytes_string(t->vae_activation_bytes, m[1]),
               t->vae_tile, t->vae_tile < size / 8 ? ", tiled" : ", whole");
    }
done:
    vki_sd_destroy(sd);
    free(bytes);
    free(rgb);
    return code;
}
