/* The ncnn model reader: see ncnn_internal.h for the format. Everything is validated at open:
 * the text line by line (magic, counts, names, blob references, parameter syntax and ranges),
 * and the weights walked layer by layer through the .bin, every size in 64-bit arithmetic
 * against what is left of the file, until the layers' weights tile it exactly. */
#include "ncnn_internal.h"
#include "platform_internal.h" // the file mapping

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC 7767517
#define MAX_PARAM_BYTES (16u << 20) // the 23-block RRDBNet's is 117 KB
#define MAX_LAYERS 100000u
#define MAX_BLOBS 200000u
#define MAX_IO 64u                  // bottoms or tops of one layer
#define TAG_FP16 0x01306B47u
#define TAG_FP32 0u
#define TAG_INT8 0x000D4B38u

typedef struct ncnn_tensor {
    char name[96];
    vki_dtype dtype;
    uint32_t n_dims;
    int64_t ne[VKI_MAX_DIMS];
    const uint8_t *data;
    uint64_t size;
} ncnn_tensor;

struct vki_ncnn {
    vki_allocator allocator;
    vki__mapping param_map, bin_map; // zero over borrowed memory
    char *text;                      // a NUL-terminated copy of the .param, cut into tokens
    vki_ncnn_layer *layers;
    uint32_t n_layers;
    char (*blob_names)[64];
    uint32_t *blob_producer;         // layer index per blob
    uint32_t *blob_hash;             // open addressing over blob names: id + 1, 0 empty
    uint32_t hash_mask;
    uint32_t n_blobs, blobs_made;
    uint32_t *io;                    // the layers' bottoms and tops
    size_t io_used, io_cap;
    ncnn_tensor *tensors;
    uint32_t n_tensors, tensor_cap;
    char last_error[256];
};

VKI_PRINTF(3, 4) static vki_status bad(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return VKI_ERROR_BAD_FILE;
}

/* Next whitespace-separated token of the current line (NUL-terminated in place), NULL at the
 * line's end; *p moves past it. *eol becomes true once the line's newline is consumed. */
static char *token(char **p, bool *eol)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    if (*s == '\n' || *s == 0) {
        if (*s == '\n') s++;
        *p = s;
        *eol = true;
        return NULL;
    }
    char *t = s;
    while (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') s++;
    if (*s == '\n') {
        *s++ = 0;
        *eol = true;
    } else if (*s) {
        *s++ = 0;
    }
    *p = s;
    return t;
}

/* Skips to the start of the next line (the rest of this one must be blank). */
static bool end_line(char **p, bool *eol)
{
    if (*eol) return true;
    return token(p, eol) == NULL;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!*s) return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, float *out)
{
    if (!*s) return false;
    errno = 0;
    char *end;
    float v = strtof(s, &end);
    if (*end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool looks_float(const char *s) { return strpbrk(s, ".eE") != NULL; }

/* One "<id>=<value>" of layer l. */
static vki_status parse_param(vki_ncnn_layer *l, char *tok, char *err, size_t n)
{
    char *eq = strchr(tok, '=');
    int64_t id;
    if (!eq) return bad(err, n, "line %u (layer %s): '%.40s' is not <id>=<value>", l->line, l->name, tok);
    *eq = 0;
    char *val = eq + 1;
    if (!parse_i64(tok, -23300 - (VKI_NCNN_MAX_PARAM_ID - 1), VKI_NCNN_MAX_PARAM_ID - 1, &id) ||
        (id < 0 && id > -23300))
        return bad(err, n, "line %u (layer %s): parameter id '%.20s' outside 0..%d and -23300..-%d",
                   l->line, l->name, tok, VKI_NCNN_MAX_PARAM_ID - 1, 23300 + VKI_NCNN_MAX_PARAM_ID - 1);
    bool array = id < 0;
    uint32_t k = (uint32_t)(array ? -23300 - id : id);
    if (l->present & (1u << k))
        return bad(err, n, "line %u (layer %s): parameter %u given twice", l->line, l->name, k);
    l->present |= 1u << k;
    if (array) {
        l->is_array |= 1u << k;
        char *comma = strchr(val, ',');
        int64_t count;
        if (comma) *comma = 0;
        if (!parse_i64(val, 0, VKI_NCNN_MAX_ARRAY, &count))
            return bad(err, n, "line %u (layer %s): array %u: count '%.20s' not in 0..%d", l->line,
                       l->name, k, val, VKI_NCNN_MAX_ARRAY);
        char *rest = comma ? comma + 1 : NULL;
        for (int64_t i = 0; i < count; i++) {
            if (!rest) return bad(err, n, "line %u (layer %s): array %u: %lld values promised, %lld given",
                                  l->line, l->name, k, (long long)count, (long long)i);
            char *next = strchr(rest, ',');
            if (next) *next = 0;
            if (!parse_float(rest, &l->array[k][i]))
                return bad(err, n, "line %u (layer %s): array %u: '%.20s' is not a finite number",
                           l->line, l->name, k, rest);
            rest = next ? next + 1 : NULL;
        }
        if (rest) return bad(err, n, "line %u (layer %s): array %u: more values than its count %lld",
                             l->line, l->name, k, (long long)count);
        l->array_len[k] = (uint8_t)count;
        return VKI_OK;
    }
    if (looks_float(val)) {
        if (!parse_float(val, &l->fval[k]))
            return bad(err, n, "line %u (layer %s): parameter %u: '%.20s' is not a finite number",
                       l->line, l->name, k, val);
        l->is_float |= 1u << k;
        return VKI_OK;
    }
    int64_t v;
    if (!parse_i64(val, INT32_MIN, INT32_MAX, &v))
        return bad(err, n, "line %u (layer %s): parameter %u: '%.20s' is not a 32-bit integer",
                   l->line, l->name, k, val);
    l->ival[k] = (int32_t)v;
    return VKI_OK;
}

/* FNV-1a: the blob table is hashed so that a hostile file of many blobs stays linear. */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The blob named `name`, or -1; *out_slot is its slot or the empty one where it would go. */
static int64_t find_blob(const vki_ncnn *f, const char *name, uint32_t *out_slot)
{
    uint32_t slot = name_hash(name) & f->hash_mask;
    for (; f->blob_hash[slot]; slot = (slot + 1) & f->hash_mask)
        if (strcmp(f->blob_names[f->blob_hash[slot] - 1], name) == 0) {
            *out_slot = slot;
            return f->blob_hash[slot] - 1;
        }
    *out_slot = slot;
    return -1;
}

static vki_status parse_layer(vki_ncnn *f, vki_ncnn_layer *l, uint32_t index, char **p,
                              uint32_t *line, char *err, size_t n)
{
    bool eol = false;
    char *type = token(p, &eol);
    while (!type && **p) { // blank lines between layers
        (*line)++;
        eol = false;
        type = token(p, &eol);
    }
    l->line = *line;
    if (!type) return bad(err, n, "line %u: %u layers promised, %u found", *line, f->n_layers, index);
    char *name = eol ? NULL : token(p, &eol);
    char *nin = eol ? NULL : token(p, &eol);
    char *nout = eol ? NULL : token(p, &eol);
    int64_t ni, no;
    if (!name || !nout)
        return bad(err, n, "line %u: a layer line is <type> <name> <inputs> <outputs> ...", *line);
    if (strlen(type) >= sizeof l->type || strlen(name) >= sizeof l->name)
        return bad(err, n, "line %u: layer type or name longer than %zu bytes", *line, sizeof l->name - 1);
    snprintf(l->type, sizeof l->type, "%s", type);
    snprintf(l->name, sizeof l->name, "%s", name);
    if (!parse_i64(nin, 0, MAX_IO, &ni) || !parse_i64(nout, 0, MAX_IO, &no))
        return bad(err, n, "line %u (layer %s): input and output counts '%.12s' '%.12s' not in 0..%u",
                   *line, l->name, nin, nout, MAX_IO);
    if (f->io_used + (size_t)ni + (size_t)no > f->io_cap)
        return bad(err, n, "line %u (layer %s): more blob references than the file has words",
                   *line, l->name);
    uint32_t *io = f->io + f->io_used;
    f->io_used += (size_t)ni + (size_t)no;
    l->n_in = (uint32_t)ni;
    l->n_out = (uint32_t)no;
    l->in = io;
    l->out = io + ni;
    for (int64_t i = 0; i < ni + no; i++) {
        char *b = eol ? NULL : token(p, &eol);
        if (!b) return bad(err, n, "line %u (layer %s): %lld blob names promised, %lld given",
                           *line, l->name, (long long)(ni + no), (long long)i);
        if (strlen(b) >= sizeof f->blob_names[0])
            return bad(err, n, "line %u (layer %s): blob name longer than %zu bytes", *line,
                       l->name, sizeof f->blob_names[0] - 1);
        uint32_t slot;
        int64_t id = find_blob(f, b, &slot);
        if (i < ni) {
            if (id < 0) return bad(err, n, "line %u (layer %s): input blob '%s' is made by no earlier layer",
                                   *line, l->name, b);
        } else {
            if (id >= 0) return bad(err, n, "line %u (layer %s): blob '%s' is made twice", *line, l->name, b);
            if (f->blobs_made == f->n_blobs)
                return bad(err, n, "line %u (layer %s): more blobs than the %u the header promised",
                           *line, l->name, f->n_blobs);
            id = f->blobs_made++;
            snprintf(f->blob_names[id], sizeof f->blob_names[0], "%s", b);
            f->blob_producer[id] = index;
            f->blob_hash[slot] = (uint32_t)id + 1;
        }
        io[i] = (uint32_t)id;
    }
    while (!eol) {
        char *t = token(p, &eol);
        if (!t) break;
        VKI_TRY(parse_param(l, t, err, n));
    }
    (*line)++;
    return VKI_OK;
}

static vki_status add_tensor(vki_ncnn *f, vki_ncnn_layer *l, const char *suffix, vki_dtype dt,
                             uint32_t n_dims, const int64_t *ne, const uint8_t *data, uint64_t size)
{
    if (f->n_tensors == f->tensor_cap) {
        uint32_t cap = f->tensor_cap ? 2 * f->tensor_cap : 64;
        ncnn_tensor *t = vki__model_alloc(&f->allocator, (size_t)cap * sizeof *t);
        if (!t) return VKI_ERROR_OUT_OF_HOST_MEMORY;
        if (f->n_tensors) memcpy(t, f->tensors, (size_t)f->n_tensors * sizeof *t);
        vki__model_free(&f->allocator, f->tensors);
        f->tensors = t;
        f->tensor_cap = cap;
    }
    ncnn_tensor *t = &f->tensors[f->n_tensors];
    *t = (ncnn_tensor){.dtype = dt, .n_dims = n_dims, .data = data, .size = size};
    for (int d = 0; d < VKI_MAX_DIMS; d++) t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    snprintf(t->name, sizeof t->name, "%s.%s", l->name, suffix);
    if (!l->n_weights) l->first_weight = f->n_tensors;
    l->n_weights++;
    f->n_tensors++;
    return VKI_OK;
}

/* `count` fp32 values without a tag at *off. */
static vki_status take_raw(vki_ncnn *f, vki_ncnn_layer *l, const uint8_t *bin, uint64_t bin_size,
                           uint64_t *off, const char *what, uint32_t count, char *err, size_t n)
{
    uint64_t bytes = (uint64_t)count * 4;
    if (bytes > bin_size - *off)
        return bad(err, n, "layer %s (line %u): its %s (%u floats) runs past the end of the .bin "
                   "(%llu bytes left)", l->name, l->line, what, count, (unsigned long long)(bin_size - *off));
    int64_t ne[1] = {count};
    VKI_TRY(add_tensor(f, l, what, VKI_DTYPE_F32, 1, ne, bin + *off, bytes));
    *off += bytes;
    return VKI_OK;
}

/* A Convolution's weights: the tagged kernel [kw, kh, in, out] and the bias [out]. */
static vki_status take_conv(vki_ncnn *f, vki_ncnn_layer *l, const uint8_t *bin, uint64_t bin_size,
                            uint64_t *off, char *err, size_t n)
{
    int32_t out = vki_ncnn_int(l, 0, 0), kw = vki_ncnn_int(l, 1, 0), kh = vki_ncnn_int(l, 11, kw);
    int32_t size = vki_ncnn_int(l, 6, 0), bias = vki_ncnn_int(l, 5, 0);
    if (out <= 0 || kw <= 0 || kh <= 0 || kw > 64 || kh > 64 || size <= 0 || (bias != 0 && bias != 1))
        return bad(err, n, "layer %s (line %u): Convolution with %d outputs, kernel %d x %d, %d "
                   "weights, bias term %d: each must be positive (kernel at most 64, bias 0 or 1)",
                   l->name, l->line, out, kw, kh, size, bias);
    int64_t per_in = (int64_t)kw * kh * out;
    if (size % per_in)
        return bad(err, n, "layer %s (line %u): %d weights are not a whole number of %d x %d "
                   "kernels for %d outputs", l->name, l->line, size, kw, kh, out);
    if (bin_size - *off < 4)
        return bad(err, n, "layer %s (line %u): the .bin ends before its weights' tag", l->name, l->line);
    const uint8_t *b = bin + *off;
    uint32_t tag = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    *off += 4;
    uint64_t elem;
    vki_dtype dt;
    if (tag == TAG_FP16) {
        elem = 2;
        dt = VKI_DTYPE_F16;
    } else if (tag == TAG_FP32) {
        elem = 4;
        dt = VKI_DTYPE_F32;
    } else if (tag == TAG_INT8) {
        snprintf(err, n, "layer %s (line %u): int8 weights: not read by vkinfer (use an fp16 or "
                 "fp32 conversion)", l->name, l->line);
        return VKI_ERROR_UNSUPPORTED;
    } else {
        return bad(err, n, "layer %s (line %u): weight tag 0x%08x at .bin offset %llu is neither "
                   "fp16 (0x%08x) nor fp32 (0)", l->name, l->line, tag,
                   (unsigned long long)(*off - 4), TAG_FP16);
    }
    uint64_t bytes = (uint64_t)size * elem, padded = (bytes + 3) & ~(uint64_t)3;
    if (padded > bin_size - *off)
        return bad(err, n, "layer %s (line %u): %d weights run past the end of the .bin (%llu "
                   "bytes left)", l->name, l->line, size, (unsigned long long)(bin_size - *off));
    int64_t ne[4] = {kw, kh, size / per_in, out};
    VKI_TRY(add_tensor(f, l, "weight", dt, 4, ne, bin + *off, bytes));
    *off += padded;
    return bias ? take_raw(f, l, bin, bin_size, off, "bias", (uint32_t)out, err, n) : VKI_OK;
}

/* Layer types that hold no weights and that the ESRGAN nets (or harmless variants) use. */
static bool weightless(const char *type)
{
    static const char *const types[] = {"Input", "Split", "Concat", "Eltwise", "BinaryOp",
                                        "Interp", "PixelShuffle", "ReLU", "Noop"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type, types[i]) == 0) return true;
    return false;
}

static vki_status walk_weights(vki_ncnn *f, const uint8_t *bin, uint64_t bin_size, char *err, size_t n)
{
    uint64_t off = 0;
    for (uint32_t i = 0; i < f->n_layers; i++) {
        vki_ncnn_layer *l = &f->layers[i];
        if (strcmp(l->type, "Convolution") == 0) {
            VKI_TRY(take_conv(f, l, bin, bin_size, &off, err, n));
        } else if (strcmp(l->type, "PReLU") == 0) {
            int32_t slopes = vki_ncnn_int(l, 0, 0);
            if (slopes <= 0 || slopes > (1 << 20))
                return bad(err, n, "layer %s (line %u): PReLU with %d slopes", l->name, l->line, slopes);
            VKI_TRY(take_raw(f, l, bin, bin_size, &off, "slope", (uint32_t)slopes, err, n));
        } else if (!weightless(l->type)) {
            snprintf(err, n, "layer %s (line %u): type %s is not one vkinfer's ncnn reader knows "
                     "(it reads the Real-ESRGAN conversions)", l->name, l->line, l->type);
            return VKI_ERROR_UNSUPPORTED;
        }
    }
    if (off != bin_size)
        return bad(err, n, "the layers' weights end at byte %llu of the %llu-byte .bin: trailing "
                   "bytes (a .bin of another model?)", (unsigned long long)off,
                   (unsigned long long)bin_size);
    return VKI_OK;
}

static vki_status parse(vki_ncnn *f, const uint8_t *param, size_t param_size, const uint8_t *bin,
                        size_t bin_size, char *err, size_t n)
{
    if (param_size > MAX_PARAM_BYTES)
        return bad(err, n, ".param: %zu bytes, over the limit of %u", param_size, MAX_PARAM_BYTES);
    // An empty .param may come as a NULL pointer: memchr and memcpy must not see it.
    if (param_size && memchr(param, 0, param_size)) return bad(err, n, ".param: a NUL byte in the text");
    f->text = vki__model_alloc(&f->allocator, param_size + 1);
    if (!f->text) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (param_size) memcpy(f->text, param, param_size);
    char *p = f->text;
    bool eol = false;
    uint32_t line = 1;
    int64_t magic, layers, blobs;
    char *t = token(&p, &eol);
    if (!t || !parse_i64(t, 0, INT32_MAX, &magic) || magic != MAGIC || !end_line(&p, &eol))
        return bad(err, n, ".param line 1: not an ncnn param file (the first line is %d)", MAGIC);
    line++;
    eol = false;
    char *tl = token(&p, &eol), *tb = eol ? NULL : token(&p, &eol);
    if (!tl || !tb || !parse_i64(tl, 1, MAX_LAYERS, &layers) || !parse_i64(tb, 1, MAX_BLOBS, &blobs) ||
        !end_line(&p, &eol))
        return bad(err, n, ".param line 2: not '<layer count> <blob count>' within 1..%u and 1..%u",
                   MAX_LAYERS, MAX_BLOBS);
    line++;
    // Each layer takes a line of at least 8 bytes, each blob a name: bounds before allocating.
    if ((uint64_t)layers * 8 > param_size || (uint64_t)blobs * 2 > param_size)
        return bad(err, n, ".param: %lld layers and %lld blobs cannot fit in %zu bytes",
                   (long long)layers, (long long)blobs, param_size);
    f->n_layers = (uint32_t)layers;
    f->n_blobs = (uint32_t)blobs;
    f->io_cap = param_size / 2 + 1;
    f->layers = vki__model_alloc(&f->allocator, (size_t)layers * sizeof *f->layers);
    f->blob_names = vki__model_alloc(&f->allocator, (size_t)blobs * sizeof *f->blob_names);
    f->blob_producer = vki__model_alloc(&f->allocator, (size_t)blobs * sizeof *f->blob_producer);
    f->io = vki__model_alloc(&f->allocator, f->io_cap * sizeof *f->io);
    uint32_t slots = 1;
    while (slots < 2 * f->n_blobs) slots *= 2;
    f->hash_mask = slots - 1;
    f->blob_hash = vki__model_alloc(&f->allocator, (size_t)slots * sizeof *f->blob_hash);
    if (!f->layers || !f->blob_names || !f->blob_producer || !f->io || !f->blob_hash)
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < f->n_layers; i++) {
        vki_status st = parse_layer(f, &f->layers[i], i, &p, &line, err, n);
        if (st) {
            char inner[256];
            snprintf(inner, sizeof inner, "%s", err ? err : "");
            if (err && n) snprintf(err, n, ".param %s", inner);
            return st;
        }
    }
    for (eol = false; *p; eol = false)
        if (token(&p, &eol)) return bad(err, n, ".param line %u: text after the %u layers", line, f->n_layers);
        else line++;
    if (f->blobs_made != f->n_blobs)
        return bad(err, n, ".param: the header promises %u blobs, the layers make %u", f->n_blobs,
                   f->blobs_made);
    vki_status st = walk_weights(f, bin, bin_size, err, n);
    if (st && st != VKI_ERROR_OUT_OF_HOST_MEMORY) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", err ? err : "");
        if (err && n) snprintf(err, n, ".bin: %s", inner);
    }
    return st;
}

vki_status vki_ncnn_open_memory(const void *param, size_t param_size, const void *bin,
                                size_t bin_size, const vki_allocator *allocator, vki_ncnn **out,
                                char *err, size_t n)
{
    if (err && n) err[0] = 0;
    if (!out || (!param && param_size) || (!bin && bin_size)) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_allocator a = allocator ? *allocator : (vki_allocator){0};
    vki_ncnn *f = vki__model_alloc(&a, sizeof *f);
    if (!f) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    f->allocator = a;
    vki_status st = parse(f, param, param_size, bin, bin_size, err, n);
    if (st) {
        if (st == VKI_ERROR_OUT_OF_HOST_MEMORY && err && n) snprintf(err, n, "ncnn: out of host memory");
        vki_ncnn_close(f);
        return st;
    }
    *out = f;
    return VKI_OK;
}

vki_status vki_ncnn_open(const char *param_path, const vki_allocator *allocator, vki_ncnn **out,
                         char *err, size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = 0;
    if (!param_path || !out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    size_t len = strlen(param_path);
    char bin_path[4096];
    if (len < 6 || strcmp(param_path + len - 6, ".param") != 0 || len + 1 > sizeof bin_path) {
        snprintf(err, n, "%s: an ncnn model is named by its .param file", param_path);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    snprintf(bin_path, sizeof bin_path, "%.*s.bin", (int)(len - 6), param_path);
    vki__mapping pm = {0}, bm = {0};
    char why[512];
    vki_status st = vki__map_file(param_path, &pm, why, sizeof why);
    if (st) {
        snprintf(err, n, "%s: %s", param_path, why);
        return st;
    }
    st = vki__map_file(bin_path, &bm, why, sizeof why);
    if (st) {
        snprintf(err, n, "%s: %s (the weights beside the .param)", bin_path, why);
        vki__unmap_file(&pm);
        return st;
    }
    char inner[512];
    st = vki_ncnn_open_memory(pm.data, (size_t)pm.size, bm.data, (size_t)bm.size, allocator, out,
                              inner, sizeof inner);
    if (st) {
        snprintf(err, n, "%s: %s", param_path, inner);
        vki__unmap_file(&pm);
        vki__unmap_file(&bm);
        return st;
    }
    (*out)->param_map = pm;
    (*out)->bin_map = bm;
    return VKI_OK;
}

void vki_ncnn_close(vki_ncnn *f)
{
    if (!f) return;
    vki_allocator a = f->allocator;
    vki__model_free(&a, f->text);
    vki__model_free(&a, f->layers);
    vki__model_free(&a, f->blob_names);
    vki__model_free(&a, f->blob_producer);
    vki__model_free(&a, f->blob_hash);
    vki__model_free(&a, f->io);
    vki__model_free(&a, f->tensors);
    vki__unmap_file(&f->param_map);
    vki__unmap_file(&f->bin_map);
    vki__model_free(&a, f);
}

uint32_t vki_ncnn_layer_count(const vki_ncnn *f) { return f ? f->n_layers : 0; }
const vki_ncnn_layer *vki_ncnn_layer_at(const vki_ncnn *f, uint32_t i)
{
    return f && i < f->n_layers ? &f->layers[i] : NULL;
}
uint32_t vki_ncnn_blob_count(const vki_ncnn *f) { return f ? f->n_blobs : 0; }
const vki_ncnn_layer *vki_ncnn_blob_producer(const vki_ncnn *f, uint32_t blob)
{
    return f && blob < f->blobs_made ? &f->layers[f->blob_producer[blob]] : NULL;
}

int32_t vki_ncnn_int(const vki_ncnn_layer *l, uint32_t id, int32_t def)
{
    if (id >= VKI_NCNN_MAX_PARAM_ID || !(l->present & (1u << id)) || (l->is_array & (1u << id))) return def;
    if (!(l->is_float & (1u << id))) return l->ival[id];
    float v = l->fval[id];
    return v >= -2147483648.0f && v < 2147483648.0f ? (int32_t)v : def;
}

float vki_ncnn_float(const vki_ncnn_layer *l, uint32_t id, float def)
{
    if (id >= VKI_NCNN_MAX_PARAM_ID || !(l->present & (1u << id)) || (l->is_array & (1u << id))) return def;
    return l->is_float & (1u << id) ? l->fval[id] : (float)l->ival[id];
}

uint32_t vki_ncnn_array(const vki_ncnn_layer *l, uint32_t id, const float **out_values)
{
    if (id >= VKI_NCNN_MAX_PARAM_ID || !(l->is_array & (1u << id))) return 0;
    if (out_values) *out_values = l->array[id];
    return l->array_len[id];
}

vki_status vki_ncnn_rename(vki_ncnn *f, uint32_t index, const char *name)
{
    if (!f || index >= f->n_tensors || !name || strlen(name) >= sizeof f->tensors[0].name)
        return VKI_ERROR_INVALID_ARGUMENT;
    snprintf(f->tensors[index].name, sizeof f->tensors[0].name, "%s", name);
    return VKI_OK;
}

/* ---- As a weight source -------------------------------------------------------------------- */

static uint64_t src_count(void *file) { return ((vki_ncnn *)file)->n_tensors; }

static void fill(const ncnn_tensor *t, vki_source_tensor *out)
{
    *out = (vki_source_tensor){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims,
                               .type_name = t->dtype == VKI_DTYPE_F16 ? "fp16" : "fp32",
                               .data = t->data, .size = t->size};
    memcpy(out->ne, t->ne, sizeof out->ne);
}

static vki_status src_at(void *file, uint64_t index, vki_source_tensor *out)
{
    vki_ncnn *f = file;
    if (index >= f->n_tensors) return VKI_ERROR_INVALID_ARGUMENT;
    fill(&f->tensors[index], out);
    return VKI_OK;
}

static vki_status src_find(void *file, const char *name, vki_source_tensor *out)
{
    vki_ncnn *f = file;
    for (uint32_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) {
            fill(&f->tensors[i], out);
            return VKI_OK;
        }
    return VKI_ERROR_NOT_FOUND;
}

static const char *src_last_error(void *file) { return ((vki_ncnn *)file)->last_error; }

vki_weight_source vki_weight_source_ncnn(vki_ncnn *f)
{
    return (vki_weight_source){.file = f, .count = src_count, .at = src_at, .find = src_find,
                               .last_error = src_last_error};
}
