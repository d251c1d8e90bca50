/* `vkinfer imagegen -m MODEL -p PROMPT`: Stable Diffusion text to image (and image to image
 * with -i), flags named as stable-diffusion.cpp's. Progress with it/s and time left on a
 * terminal; Ctrl-C stops between steps without writing anything. Each PNG carries its
 * generation parameters in AUTOMATIC1111's "parameters" text chunk. */
#include "apps_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIP_VOCAB "clip/bpe_simple_vocab_16e6.txt"

static volatile sig_atomic_t interrupted;
static volatile int abort_flag; // what the pipeline reads; set from `interrupted` per step

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
    abort_flag = 1;
#ifdef _WIN32
    signal(SIGINT, on_interrupt); // Windows' C library resets the handler before calling it
#endif
}

void vki_imagegen_usage(FILE *f)
{
    fprintf(f,
            "usage: vkinfer [global options] imagegen -m MODEL -p PROMPT [options]\n\n"
            "  -m, --model PATH        an SD 1.x/2.x checkpoint: a .safetensors file (original\n"
            "                          layout) or a diffusers folder (unet/, vae/, text_encoder/)\n"
            "  --synthetic NAME        sd15 or sd21: full-size random weights, no file (the\n"
            "                          pictures are noise; the work and speed are the model's)\n"
            "  -p, --prompt TEXT       the prompt; AUTOMATIC1111's syntax: (word:1.2), (word),\n"
            "                          [word], BREAK; longer than 75 tokens is fine\n"
            "  -n, --negative-prompt TEXT\n"
            "  --steps N               sampling steps (default: 20)\n"
            "  --cfg-scale X           classifier-free guidance scale (default: 7)\n"
            "  -s, --seed N            (default: 42; -1: random) the same seed and settings give\n"
            "                          the same image on the same device\n"
            "  -W, --width N, -H, --height N   image size, multiples of 64 (default: 512)\n"
            "  --sampling-method NAME  euler, euler_a (default), heun, dpm2, dpm++2m, dpm++sde,\n"
            "                          ddim, lcm, or A1111's names (\"DPM++ 2M Karras\")\n"
            "  --schedule NAME         discrete (default), karras, exponential\n"
            "  -b, --batch-count N     images, seeds seed, seed+1, ... (default: 1)\n"
            "  -o, --output PATH       PNG to write (default: output.png; with -b N > 1:\n"
            "                          output_1.png ...); an existing file is refused\n"
            "  -i, --init-img PATH     image to image: start from this picture\n"
            "  --strength X            image to image: how much to change it, (0, 1] (default 0.75)\n"
            "  --clip-skip N           skip the last N-1 text-encoder layers (default: 1)\n"
            "  --prediction eps|v      override the model's parameterisation\n"
            "  --vae-tile N            VAE tile edge in latent pixels (default: automatic)\n"
            "  --type TYPE             convert the weights at load, as sd.cpp's --type: f16,\n"
            "                          q8_0, q4_0 or q4_1 (default: as stored). f16 halves an\n"
            "                          f32 checkpoint; q* also quantise the U-Net's and text\n"
            "                          encoder's linear weights (SD 1.5: 2.0 GiB in f16, 1.7 in\n"
            "                          q8_0, 1.5 in q4_0). Conv kernels and embeddings become\n"
            "                          f16; biases, norms and tensors already quantised (a\n"
            "                          GGUF's) stay as they are\n"
            "  --upscale-model PATH    Real-ESRGAN model to upscale the result with\n"
            "  --vocab PATH            CLIP's BPE merges (default: " CLIP_VOCAB " in the model\n"
            "                          cache; tools/fetch_models.sh fetches it)\n"
            "  --overwrite             replace existing output files\n");
}

typedef struct options {
    const char *model, *synthetic, *prompt, *negative, *output, *init, *upscale, *vocab;
    vki_sd_params params;
    uint32_t batch, clip_skip, vae_tile;
    int64_t seed;
    vki_sd_prediction prediction;
    vki_dtype weight_type;
    bool overwrite;
} options;

static int parse(int argc, char **argv, options *o, bool *help)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m = 0;
        uint64_t n = 0;
        const char *a = argv[i];
#define TEXT(long_, short_, field)                                                                   \
    if ((m = vki_arg_value(argc, argv, &i, long_, &v)) != 0 ||                                      \
        (short_ && (m = vki_arg_value(argc, argv, &i, short_, &v)) != 0)) {                          \
        if (m < 0) return vki_app_usage_error(vki_imagegen_usage, "%s needs a value", long_);        \
        field = v;                                                                                   \
        continue;                                                                                    \
    }
        TEXT("--model", "-m", o->model)
        TEXT("--synthetic", NULL, o->synthetic)
        TEXT("--prompt", "-p", o->prompt)
        TEXT("--negative-prompt", "-n", o->negative)
        TEXT("--output", "-o", o->output)
        TEXT("--init-img", "-i", o->init)
        TEXT("--upscale-model", NULL, o->upscale)
        TEXT("--vocab", NULL, o->vocab)
#undef TEXT
        const struct { const char *l, *s; uint32_t *field; uint64_t min, max; } counts[] = {
            {"--steps", NULL, &o->params.steps, 1, 1000},
            {"--width", "-W", &o->params.width, 64, 4096},
            {"--height", "-H", &o->params.height, 64, 4096},
            {"--batch-count", "-b", &o->batch, 1, 10000},
            {"--clip-skip", NULL, &o->clip_skip, 1, 64},
            {"--vae-tile", NULL, &o->vae_tile, 8, 512},
        };
        for (size_t k = 0; k < sizeof counts / sizeof counts[0] && m == 0; k++) {
            m = vki_arg_value(argc, argv, &i, counts[k].l, &v);
            if (m == 0 && counts[k].s) m = vki_arg_value(argc, argv, &i, counts[k].s, &v);
            if (m < 0 || (m > 0 && !vki_parse_u64(v, counts[k].min, counts[k].max, &n)))
                return vki_app_usage_error(vki_imagegen_usage, "%s needs a number in %llu..%llu",
                                           counts[k].l, (unsigned long long)counts[k].min,
                                           (unsigned long long)counts[k].max);
            if (m > 0) *counts[k].field = (uint32_t)n;
        }
        if (m > 0) continue;
        if ((m = vki_arg_value(argc, argv, &i, "--cfg-scale", &v)) != 0) {
            if (m < 0 || !vki_parse_float(v, 1, 100, &o->params.cfg_scale))
                return vki_app_usage_error(vki_imagegen_usage, "--cfg-scale needs a number in 1..100");
        } else if ((m = vki_arg_value(argc, argv, &i, "--strength", &v)) != 0) {
            if (m < 0 || !vki_parse_float(v, 0.001, 1, &o->params.strength))
                return vki_app_usage_error(vki_imagegen_usage, "--strength needs a number in (0, 1]");
        } else if ((m = vki_arg_value(argc, argv, &i, "--seed", &v)) != 0 ||
                   (m = vki_arg_value(argc, argv, &i, "-s", &v)) != 0) {
            if (m < 0) return vki_app_usage_error(vki_imagegen_usage, "--seed needs a number");
            if (!strcmp(v, "-1")) {
                o->seed = -1;
            } else if (vki_parse_u64(v, 0, UINT32_MAX, &n)) {
                o->seed = (int64_t)n;
            } else {
                return vki_app_usage_error(vki_imagegen_usage, "--seed needs a number in "
                                           "0..4294967295, or -1 for a random one");
            }
        } else if ((m = vki_arg_value(argc, argv, &i, "--sampling-method", &v)) != 0) {
            if (m < 0 || vki_sd_sampler_parse(v, &o->params.sampler, &o->params.schedule))
                return vki_app_usage_error(vki_imagegen_usage, "unknown sampling method '%s'", m < 0 ? "" : v);
        } else if ((m = vki_arg_value(argc, argv, &i, "--schedule", &v)) != 0) {
            if (m < 0 || vki_sd_schedule_parse(v, &o->params.schedule))
                return vki_app_usage_error(vki_imagegen_usage, "unknown schedule '%s'", m < 0 ? "" : v);
        } else if ((m = vki_arg_value(argc, argv, &i, "--prediction", &v)) != 0) {
            if (m < 0 || (strcmp(v, "eps") && strcmp(v, "v")))
                return vki_app_usage_error(vki_imagegen_usage, "--prediction is eps or v");
            o->prediction = !strcmp(v, "v") ? VKI_SD_PREDICTION_V : VKI_SD_PREDICTION_EPS;
        } else if ((m = vki_arg_value(argc, argv, &i, "--type", &v)) != 0) {
            if (m < 0 || vki_sd_weight_type_parse(v, &o->weight_type))
                return vki_app_usage_error(vki_imagegen_usage, "--type is f16, q8_0, q4_0 or q4_1 "
                                           "(got '%s')", m < 0 ? "" : v);
        } else if (!strcmp(a, "--overwrite")) {
            o->overwrite = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return VKI_EXIT_OK;
        } else {
            return vki_app_usage_error(vki_imagegen_usage, "imagegen: unknown argument '%s'", a);
        }
    }
    if (!o->model && !o->synthetic)
        return vki_app_usage_error(vki_imagegen_usage, "imagegen: no model (-m PATH or --synthetic sd15)");
    if (o->model && o->synthetic)
        return vki_app_usage_error(vki_imagegen_usage, "imagegen: -m and --synthetic exclude each other");
    return VKI_EXIT_OK;
}

/* ---- Progress -------------------------------------------------------------------------------- */

typedef struct progress_state {
    bool show;
    double start_us;
    uint32_t image, images;
} progress_state;

static void on_progress(void *user, uint32_t step, uint32_t steps)
{
    progress_state *p = user;
    if (interrupted) abort_flag = 1;
    if (!p->show || !steps) return;
    double s = (vki_now_us() - p->start_us) / 1e6;
    double rate = step && s > 0 ? step / s : 0;
    double left = rate > 0 ? (steps - step) / rate : 0;
    char bar[31];
    uint32_t fill = step * 30 / steps;
    for (uint32_t i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    if (p->images > 1) fprintf(stderr, "\rimage %u/%u ", p->image, p->images);
    else fprintf(stderr, "\r");
    if (rate >= 1 || rate == 0)
        fprintf(stderr, "step %u/%u |%s| %.2f it/s, %.0f s left   ", step, steps, bar, rate, left);
    else
        fprintf(stderr, "step %u/%u |%s| %.2f s/it, %.0f s left   ", step, steps, bar, 1 / rate, left);
    fflush(stderr);
}

/* ---- Output ---------------------------------------------------------------------------------- */

/* AUTOMATIC1111's parameter text: prompt, "Negative prompt: ...", then "Key: value" pairs. */
static void parameters_text(char *buf, size_t n, const options *o, const vki_sd_params *p,
                            const char *model_name)
{
    int k = snprintf(buf, n, "%s\n", p->prompt ? p->prompt : "");
    if (p->negative_prompt && p->negative_prompt[0] && k > 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, "Negative prompt: %s\n", p->negative_prompt);
    if (k > 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k,
                      "Steps: %u, Sampler: %s, Schedule type: %s, CFG scale: %g, Seed: %llu, "
                      "Size: %ux%u, Model: %s",
                      p->steps, vki_sd_sampler_name(p->sampler), vki_sd_schedule_name(p->schedule),
                      p->cfg_scale, (unsigned long long)p->seed, p->width, p->height, model_name);
    if (o->init && k > 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", Denoising strength: %g", p->strength);
    if (o->clip_skip > 1 && k > 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", Clip skip: %u", o->clip_skip);
    /* The weights the image was computed with when --type converted them ("Type: q8_0", sd.cpp's
     * --type value): a q4_0 image differs from the stored weights' one. Neither A1111 nor sd.cpp
     * (0.4.7) writes this; readers of the format skip keys they do not know. */
    if (o->weight_type && k > 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", Type: %s", vki_dtype_get(o->weight_type)->name);
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, ", Version: vkinfer %s", VKI_VERSION_STRING);
}

static void output_path(char *buf, size_t n, const char *out, uint32_t index, uint32_t count)
{
    if (count == 1) {
        snprintf(buf, n, "%s", out);
        return;
    }
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    snprintf(buf, n, "%.*s_%u%s", (int)(dot - out), out, index + 1, dot);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- The command ----------------------------------------------------------------------------- */

int vki_cmd_imagegen(vki_app *app, int argc, char **argv)
{
    options o = {.batch = 1, .seed = 42, .output = "output.png"};
    o.params.sampler = VKI_SD_SAMPLER_EULER_A;
    bool help = false;
    int code = parse(argc, argv, &o, &help);
    if (code != VKI_EXIT_OK) return code;
    if (help) {
        vki_imagegen_usage(stdout);
        return VKI_EXIT_OK;
    }
    o.params.prompt = o.prompt ? o.prompt : "";
    o.params.negative_prompt = o.negative ? o.negative : "";
    if (!o.params.width) o.params.width = 512;
    if (!o.params.height) o.params.height = 512;
    if (!o.params.steps) o.params.steps = 20;
    if (o.params.cfg_scale == 0) o.params.cfg_scale = 7;
    if (o.init && o.params.strength == 0) o.params.strength = 0.75f;
    uint64_t seed = o.seed >= 0 ? (uint64_t)o.seed : (uint64_t)time(NULL) & 0xffffffffu;

    /* Refuse existing outputs before any work: a long run must not end in a refusal. */
    char path[1100];
    for (uint32_t b = 0; b < o.batch && !o.overwrite; b++) {
        output_path(path, sizeof path, o.output, b, o.batch);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return vki_app_failf("%s already exists (--overwrite replaces it)", path);
        }
    }
    uint8_t *init = NULL, *rgb = NULL, *big = NULL;
    if (o.init) {
        uint32_t w = 0, h = 0;
        char why[256];
        if (vki_png_read(o.init, &init, &w, &h, why, sizeof why))
            return vki_app_failf("init image %s: %s", o.init, why);
        if (w != o.params.width || h != o.params.height) {
            free(init);
            return vki_app_failf("init image %s is %ux%u; give -W %u -H %u (multiples of 64) or "
                                 "resize it", o.init, w, h, w, h);
        }
        o.params.init_rgb = init;
    }
    code = vki_app_open_device(app);
    if (code != VKI_EXIT_OK) {
        free(init);
        return code;
    }
    char vocab[1100];
    if (!o.vocab) o.vocab = vki_model_cache_file(CLIP_VOCAB, vocab, sizeof vocab);
    FILE *vf = fopen(o.vocab, "rb");
    if (!vf) {
        free(init);
        return vki_app_failf("no CLIP vocabulary at %s: run tools/fetch_models.sh (or give --vocab)", o.vocab);
    }
    fclose(vf);

    void *synthetic = NULL;
    size_t synthetic_size = 0;
    char why[512] = "";
    vki_sd *sd = NULL;
    vki_esrgan *up = NULL;
    double t0 = vki_now_us();
    vki_status st = VKI_OK;
    if (o.synthetic && (st = vki_sd_synthetic(o.synthetic, seed, &synthetic, &synthetic_size, why, sizeof why))) {
        code = vki_app_failf("synthetic model: %s", why);
        goto done;
    }
    vki_sd_desc d = {.path = o.model, .data = synthetic, .size = synthetic_size, .vocab_path = o.vocab,
                     .prediction = o.prediction, .clip_skip = o.clip_skip, .vae_tile = o.vae_tile,
                     .weight_type = o.weight_type};
    if ((st = vki_sd_load(app->device, &d, &sd, why, sizeof why))) {
        code = vki_app_failf("loading %s: %s", o.model ? o.model : o.synthetic, why);
        goto done;
    }
    const vki_sd_info *info = vki_sd_info_get(sd);
    char mem[32];
    fprintf(stderr, "vkinfer: SD %u.x (%s-prediction%s) loaded in %.1f s, weights %s on the device%s%s\n",
            info->version, info->prediction == VKI_SD_PREDICTION_V ? "v" : "eps",
            info->diffusers ? ", diffusers folder" : "", (vki_now_us() - t0) / 1e6,
            vki_bytes_string(info->weight_bytes, mem), o.weight_type ? " as " : "",
            o.weight_type ? vki_dtype_get(o.weight_type)->name : "");
    if (o.upscale && (st = vki_esrgan_load(app->device, o.upscale, NULL, &up, why, sizeof why))) {
        code = vki_app_failf("upscale model %s: %s", o.upscale, why);
        goto done;
    }
    size_t px = (size_t)o.params.width * o.params.height;
    rgb = malloc(px * 3);
    if (!rgb) {
        code = vki_app_failf("out of host memory");
        goto done;
    }
    interrupted = 0;
    abort_flag = 0;
    void (*old_handler)(int) = signal(SIGINT, on_interrupt);
    progress_state prog = {.show = vki_is_terminal(stderr), .images = o.batch};
    for (uint32_t b = 0; b < o.batch && code == VKI_EXIT_OK; b++) {
        vki_sd_params p = o.params;
        p.seed = seed + b;
        p.progress = on_progress;
        p.user = &prog;
        p.abort_flag = &abort_flag;
        prog.image = b + 1;
        prog.start_us = vki_now_us();
        st = vki_sd_generate(sd, &p, rgb);
        if (prog.show) fprintf(stderr, "\n");
        if (st == VKI_ERROR_CANCELLED || interrupted) {
            code = vki_app_failf("interrupted: nothing written for this image");
            break;
        }
        if (st) {
            code = vki_app_failf("generating: %s", vki_sd_last_error(sd));
            break;
        }
        const vki_sd_timings *t = vki_sd_timings_get(sd);
        fprintf(stderr, "vkinfer: text %.2f s, %u steps in %.2f s (%.2f s/step), VAE %.2f s%s, "
                "image %.2f s, device memory %.0f MiB at its peak\n", t->text_s, t->steps, t->sample_s,
                t->steps ? t->sample_s / t->steps : 0, t->vae_s,
                t->vae_tile < p.width / 8 || t->vae_tile < p.height / 8 ? " (tiled)" : "", t->total_s,
                t->device_peak_bytes / 1048576.0);
        const uint8_t *image = rgb;
        uint32_t w = p.width, h = p.height;
        if (up) {
            uint32_t s = vki_esrgan_scale(up);
            free(big);
            big = malloc(px * 3 * s * s);
            if (!big) {
                code = vki_app_failf("out of host memory for the upscaled image");
                break;
            }
            if ((st = vki_esrgan_upscale(up, rgb, w, h, big))) {
                code = vki_app_failf("upscaling: %s", vki_esrgan_last_error(up));
                break;
            }
            image = big;
            w *= s;
            h *= s;
        }
        char text[8192];
        parameters_text(text, sizeof text, &o, &p, o.model ? base_name(o.model) : o.synthetic);
        output_path(path, sizeof path, o.output, b, o.batch);
        if (o.overwrite) remove(path);
        if ((st = (vki_status)vki_png_write(path, image, w, h, text, why, sizeof why))) {
            code = vki_app_failf("writing %s: %s", path, why);
            break;
        }
        fprintf(stderr, "vkinfer: wrote %s (%ux%u, seed %llu)\n", path, w, h, (unsigned long long)p.seed);
    }
    signal(SIGINT, old_handler == SIG_ERR ? SIG_DFL : old_handler);
done:
    vki_esrgan_destroy(up);
    vki_sd_destroy(sd);
    free(synthetic);
    free(init);
    free(rgb);
    free(big);
    return code;
}
