/* PNG in and out for the image commands (upscale, imagegen), through stb_image and
 * stb_image_write from libstb-dev, whose implementations are compiled here and only here.
 *
 * Reading decodes PNG (and JPEG) to 8-bit RGB: gray is spread to three channels, alpha is
 * dropped, 16-bit samples are narrowed by stb. The size is checked from the header before any
 * pixel is decoded.
 *
 * Writing encodes to memory, puts the generation parameters in a text chunk right after IHDR
 * (where AUTOMATIC1111's PNG info sits: keyword "parameters"; tEXt for ASCII text, iTXt for
 * UTF-8 beyond it, since tEXt is Latin-1 only), and creates the file exclusively: an existing
 * file, or a symbolic link planted at the name, is refused, never overwritten. */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L // open, O_NOFOLLOW, O_CLOEXEC
#endif
#include "apps_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <io.h>
#include <sys/stat.h>
#else
#include <unistd.h>
#endif

/* stb is not written for -Wall -Wextra -Wshadow; its warnings are not ours to fix. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_MAX_DIMENSIONS VKI_IMAGE_MAX_EDGE
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO // we write the bytes ourselves, exclusively
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

int vki_png_read(const char *path, uint8_t **out_rgb, uint32_t *out_w, uint32_t *out_h, char *err,
                 size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!path || !out_rgb || !out_w || !out_h) return VKI_ERROR_INVALID_ARGUMENT;
    *out_rgb = NULL;
    *out_w = *out_h = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, n, "%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? VKI_ERROR_NOT_FOUND : VKI_ERROR_IO;
    }
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_file(f, &w, &h, &comp)) {
        snprintf(err, n, "%s: not a PNG or JPEG image stb can read (%s)", path, stbi_failure_reason());
        fclose(f);
        return VKI_ERROR_BAD_FILE;
    }
    if (w <= 0 || h <= 0 || w > VKI_IMAGE_MAX_EDGE || h > VKI_IMAGE_MAX_EDGE ||
        (uint64_t)w * (uint64_t)h > VKI_IMAGE_MAX_PIXELS) {
        snprintf(err, n, "%s: %d x %d pixels: over vkinfer's limit of %d pixels a side and %llu "
                 "in all", path, w, h, VKI_IMAGE_MAX_EDGE, (unsigned long long)VKI_IMAGE_MAX_PIXELS);
        fclose(f);
        return VKI_ERROR_UNSUPPORTED;
    }
    uint8_t *rgb = stbi_load_from_file(f, &w, &h, &comp, 3);
    fclose(f);
    if (!rgb) {
        snprintf(err, n, "%s: cannot decode: %s", path, stbi_failure_reason());
        return VKI_ERROR_BAD_FILE;
    }
    *out_rgb = rgb; // stb allocates with malloc: the caller frees with free()
    *out_w = (uint32_t)w;
    *out_h = (uint32_t)h;
    return VKI_OK;
}

/* The PNG CRC (ISO 3309, as the PNG specification defines it) of `n` bytes. */
static uint32_t png_crc(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The text chunk for `text` (length, type, data, CRC) in a new buffer of *out_size bytes. */
static uint8_t *text_chunk(const char *text, size_t *out_size)
{
    static const char keyword[] = "parameters";
    size_t len = strlen(text);
    bool ascii = true;
    for (size_t i = 0; i < len; i++) ascii = ascii && (uint8_t)text[i] < 0x80;
    // tEXt: keyword NUL text. iTXt: keyword NUL, compression flag and method 0, an empty
    // language tag and translated keyword (NUL each), then the UTF-8 text.
    size_t head = sizeof keyword + (ascii ? 0 : 4);
    if (len > 0x7fffffffu - head) return NULL; // a chunk's length is at most 2^31 - 1
    size_t data = head + len;
    uint8_t *c = malloc(data + 12);
    if (!c) return NULL;
    put_be32(c, (uint32_t)data);
    memcpy(c + 4, ascii ? "tEXt" : "iTXt", 4);
    memcpy(c + 8, keyword, sizeof keyword);
    if (!ascii) memset(c + 8 + sizeof keyword, 0, 4);
    memcpy(c + 8 + head, text, len);
    put_be32(c + 8 + data, png_crc(c + 4, data + 4));
    *out_size = data + 12;
    return c;
}

int vki_png_write(const char *path, const uint8_t *rgb, uint32_t w, uint32_t h,
                  const char *parameters, char *err, size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!path || !rgb) return VKI_ERROR_INVALID_ARGUMENT;
    // stb takes int sizes and a stride of w * 3 bytes; our own limits are stricter.
    if (w == 0 || h == 0 || w > VKI_IMAGE_MAX_EDGE || h > VKI_IMAGE_MAX_EDGE ||
        (uint64_t)w * h > VKI_IMAGE_MAX_PIXELS) {
        snprintf(err, n, "%s: cannot write a %u x %u image (1 to %d pixels a side, %llu in all)",
                 path, w, h, VKI_IMAGE_MAX_EDGE, (unsigned long long)VKI_IMAGE_MAX_PIXELS);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    int png_len = 0;
    uint8_t *png = stbi_write_png_to_mem(rgb, (int)(w * 3), (int)w, (int)h, 3, &png_len);
    if (!png || png_len < 33) { // signature (8) + IHDR (25) at least
        free(png);
        snprintf(err, n, "%s: cannot encode the PNG (out of memory?)", path);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    uint8_t *out = png;
    size_t out_len = (size_t)png_len;
    if (parameters) {
        size_t chunk_len = 0;
        uint8_t *chunk = text_chunk(parameters, &chunk_len);
        out = chunk ? malloc(out_len + chunk_len) : NULL;
        if (!out) {
            free(chunk);
            free(png);
            snprintf(err, n, "%s: the parameters text (%zu bytes) does not fit a PNG chunk or "
                     "host memory", path, strlen(parameters));
            return VKI_ERROR_OUT_OF_HOST_MEMORY;
        }
        // stb writes the signature then IHDR (8 + 4 + 4 + 13 + 4 bytes) first.
        memcpy(out, png, 33);
        memcpy(out + 33, chunk, chunk_len);
        memcpy(out + 33 + chunk_len, png + 33, out_len - 33);
        out_len += chunk_len;
        free(chunk);
        free(png);
    }
    int st = vki_file_write_new(path, out, out_len, err, n);
    free(out);
    return st;
}
