/* The safetensors reader: the format of Stable Diffusion checkpoints as their users have them
 * (a single-file checkpoint, or the unet/, vae/, text_encoder/ files of a diffusers folder).
 *
 * Layout (the format's specification): an 8-byte little-endian header length N, N bytes of a
 * JSON object (UTF-8, possibly padded with spaces) mapping each tensor name to {"dtype",
 * "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" object of strings,
 * then the byte buffer the offsets index, from its start. Tensors are row-major: the last shape
 * entry is the contiguous one (ggml's ne[0]).
 *
 * Everything is validated at open, before anything is used: the header length against a limit
 * and the file, the JSON strictly (cJSON over exactly N bytes, nothing but spaces after the
 * object, no duplicate names, every field of the right type, no other fields), every shape and
 * offset in 64-bit checked arithmetic, each tensor's bytes equal to its shape times its element
 * size, and the tensors tiling the buffer exactly (sorted by offset: no gap, no overlap, and
 * nothing after the last), as the reference implementation requires. */
#include "model_internal.h"
#include "platform_internal.h" // the file mapping

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference implementation refuses headers over 100 MB; a real checkpoint's is well under
 * 1 MB (SD 1.5: about 1,100 tensors, 130 KB). */
#define MAX_HEADER (100u << 20)
#define MAX_TENSORS (1u << 20)

typedef struct st_tensor {
    char *name;
    char type[12];       // the file's dtype name ("F16")
    vki_dtype dtype;     // NONE for a type vkinfer does not compute with
    uint32_t n_dims;
    int64_t ne[VKI_MAX_DIMS];
    uint64_t begin, end; // in the byte buffer
} st_tensor;

struct vki_safetensors {
    vki_allocator allocator;
    vki__mapping map;    // the file (vki_safetensors_open); zero over borrowed memory
    const uint8_t *base;
    uint64_t size;
    uint64_t data_offset; // 8 + N
    st_tensor *tensors;  // sorted by name
    uint64_t count;
    char **meta;         // __metadata__ as key, value, key, value, ...
    uint64_t meta_count;
    char last_error[256];
};

static void *salloc(const vki_safetensors *s, size_t size) { return vki__model_alloc(&s->allocator, size); }
static void sfree(const vki_safetensors *s, void *q) { vki__model_free(&s->allocator, q); }

static char *sdup(const vki_safetensors *s, const char *text)
{
    size_t n = strlen(text);
    char *c = salloc(s, n + 1);
    if (c) memcpy(c, text, n + 1);
    return c;
}

static vki_status bad(char *err, size_t n, const char *fmt, ...) VKI_PRINTF(3, 4);
static vki_status bad(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return VKI_ERROR_BAD_FILE;
}

static const struct {
    const char *name;
    vki_dtype dtype;
    uint32_t bytes;
} types[] = {
    {"F32", VKI_DTYPE_F32, 4},      {"F16", VKI_DTYPE_F16, 2}, {"BF16", VKI_DTYPE_BF16, 2},
    {"F64", VKI_DTYPE_NONE, 8},     {"I64", VKI_DTYPE_NONE, 8}, {"U64", VKI_DTYPE_NONE, 8},
    {"I32", VKI_DTYPE_I32, 4},      {"U32", VKI_DTYPE_NONE, 4}, {"I16", VKI_DTYPE_NONE, 2},
    {"U16", VKI_DTYPE_NONE, 2},     {"I8", VKI_DTYPE_NONE, 1},  {"U8", VKI_DTYPE_NONE, 1},
    {"BOOL", VKI_DTYPE_NONE, 1},    {"F8_E4M3", VKI_DTYPE_NONE, 1},
    {"F8_E5M2", VKI_DTYPE_NONE, 1},
};

/* A JSON number that is a whole number in [0, 2^53] (every such double is exact). */
static bool whole(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

/* Reads one tensor entry `e` named `name` into t. */
static vki_status read_tensor(vki_safetensors *s, const cJSON *e, st_tensor *t, uint64_t data_size,
                              char *err, size_t n)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return bad(err, n, "safetensors: entry '%.64s' is not an object", name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL, *f;
    cJSON_ArrayForEach(f, e)
    {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dtype
                             : strcmp(f->string, "shape") == 0        ? &shape
                             : strcmp(f->string, "data_offsets") == 0 ? &offsets
                                                                      : NULL;
        if (!slot || *slot)
            return bad(err, n, "safetensors: tensor '%.64s' has %s field '%.32s'", name,
                       slot ? "a second" : "an unknown", f->string);
        *slot = f;
    }
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return bad(err, n, "safetensors: tensor '%.64s' needs a string dtype, a shape array and a "
                   "data_offsets array", name);
    uint32_t elem = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dtype->valuestring, types[i].name) == 0) {
            t->dtype = types[i].dtype;
            elem = types[i].bytes;
            snprintf(t->type, sizeof t->type, "%s", types[i].name);
        }
    if (!elem) return bad(err, n, "safetensors: tensor '%.64s' has unknown dtype '%.16s'", name, dtype->valuestring);
    int rank = cJSON_GetArraySize(shape);
    if (rank > VKI_MAX_DIMS)
        return bad(err, n, "safetensors: tensor '%.64s' has %d dimensions; vkinfer reads at most %d",
                   name, rank, VKI_MAX_DIMS);
    t->n_dims = (uint32_t)rank;
    uint64_t count = 1;
    for (int d = 0; d < VKI_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < rank; d++) {
        uint64_t v;
        if (!whole(cJSON_GetArrayItem(shape, d), &v) || v > INT64_MAX)
            return bad(err, n, "safetensors: tensor '%.64s' shape entry %d is not a whole number", name, d);
        t->ne[rank - 1 - d] = (int64_t)v; // row-major: the last entry is contiguous
        if (v && count > UINT64_MAX / v) return bad(err, n, "safetensors: tensor '%.64s' is too large", name);
        count *= v;
    }
    if (count > UINT64_MAX / elem) return bad(err, n, "safetensors: tensor '%.64s' is too large", name);
    if (cJSON_GetArraySize(offsets) != 2 || !whole(cJSON_GetArrayItem(offsets, 0), &t->begin) ||
        !whole(cJSON_GetArrayItem(offsets, 1), &t->end) || t->begin > t->end || t->end > data_size)
        return bad(err, n, "safetensors: tensor '%.64s' data_offsets are not [begin, end] within "
                   "the %llu-byte buffer", name, (unsigned long long)data_size);
    if (t->end - t->begin != count * elem)
        return bad(err, n, "safetensors: tensor '%.64s' spans %llu bytes, its shape and %s need %llu",
                   name, (unsigned long long)(t->end - t->begin), t->type,
                   (unsigned long long)(count * elem));
    if (!(t->name = sdup(s, name))) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    return VKI_OK;
}

static vki_status read_metadata(vki_safetensors *s, const cJSON *m, char *err, size_t n)
{
    if (!cJSON_IsObject(m)) return bad(err, n, "safetensors: __metadata__ is not an object");
    uint64_t count = (uint64_t)cJSON_GetArraySize(m);
    if (!count) return VKI_OK;
    if (!(s->meta = salloc(s, 2 * count * sizeof *s->meta))) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    const cJSON *v;
    cJSON_ArrayForEach(v, m)
    {
        if (!cJSON_IsString(v))
            return bad(err, n, "safetensors: __metadata__ value '%.64s' is not a string", v->string);
        for (uint64_t i = 0; i < s->meta_count; i++)
            if (strcmp(s->meta[2 * i], v->string) == 0)
                return bad(err, n, "safetensors: __metadata__ key '%.64s' appears twice", v->string);
        char *k = sdup(s, v->string), *val = sdup(s, v->valuestring);
        s->meta[2 * s->meta_count] = k;
        s->meta[2 * s->meta_count + 1] = val;
        s->meta_count++;
        if (!k || !val) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    return VKI_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* The tensors tile the buffer: sorted by offset, each begins where the last ended, and the last
 * ends at the buffer's end. Empty tensors sit anywhere in that order. */
static vki_status check_tiling(vki_safetensors *s, uint64_t data_size, char *err, size_t n)
{
    if (!s->count) return data_size ? bad(err, n, "safetensors: %llu data bytes but no tensors",
                                          (unsigned long long)data_size)
                                    : VKI_OK;
    st_tensor **order = salloc(s, s->count * sizeof *order);
    if (!order) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    for (uint64_t i = 0; i < s->count; i++) order[i] = &s->tensors[i];
    qsort(order, s->count, sizeof *order, by_offset);
    vki_status st = VKI_OK;
    uint64_t at = 0;
    for (uint64_t i = 0; i < s->count && !st; i++) {
        if (order[i]->begin != at)
            st = bad(err, n, "safetensors: tensor '%.64s' starts at byte %llu of the buffer where "
                     "the previous one ends at %llu (%s)", order[i]->name,
                     (unsigned long long)order[i]->begin, (unsigned long long)at,
                     order[i]->begin < at ? "overlapping" : "a gap");
        at = order[i]->end;
    }
    if (!st && at != data_size)
        st = bad(err, n, "safetensors: the tensors end at byte %llu of the %llu-byte buffer",
                 (unsigned long long)at, (unsigned long long)data_size);
    sfree(s, order);
    return st;
}

static vki_status parse(vki_safetensors *s, char *err, size_t n)
{
    if (s->size < 8) return bad(err, n, "safetensors: %llu bytes, shorter than the 8-byte header length",
                                (unsigned long long)s->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | s->base[i];
    if (hlen > MAX_HEADER || hlen > s->size - 8)
        return bad(err, n, "safetensors: a header of %llu bytes in a file of %llu (at most %u MB)",
                   (unsigned long long)hlen, (unsigned long long)s->size, MAX_HEADER >> 20);
    const char *json = (const char *)s->base + 8, *end = NULL;
    if (hlen == 0 || json[0] != '{') return bad(err, n, "safetensors: the header is not a JSON object");
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return bad(err, n, "safetensors: the header is not valid JSON (at byte %lld)",
                   at ? (long long)(at - json) + 8 : -1LL);
    }
    vki_status st = VKI_OK;
    for (const char *p = end; p < json + hlen && !st; p++)
        if (*p != ' ') st = bad(err, n, "safetensors: bytes after the header's JSON object");
    s->data_offset = 8 + hlen;
    uint64_t data_size = s->size - s->data_offset, entries = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) entries++;
    if (!st && (!cJSON_IsObject(root) || entries > MAX_TENSORS + 1))
        st = bad(err, n, "safetensors: the header is not an object of at most %u tensors", MAX_TENSORS);
    if (!st && !(s->tensors = salloc(s, (entries ? entries : 1) * sizeof *s->tensors)))
        st = VKI_ERROR_OUT_OF_HOST_MEMORY;
    bool meta_seen = false;
    cJSON_ArrayForEach(e, root)
    {
        if (st) break;
        if (strcmp(e->string, "__metadata__") == 0) {
            st = meta_seen ? bad(err, n, "safetensors: two __metadata__ objects")
                           : read_metadata(s, e, err, n);
            meta_seen = true;
            continue;
        }
        if (!e->string[0]) {
            st = bad(err, n, "safetensors: a tensor with an empty name");
            break;
        }
        st = read_tensor(s, e, &s->tensors[s->count], data_size, err, n);
        if (!st) s->count++;
    }
    cJSON_Delete(root);
    if (st) return st;
    qsort(s->tensors, s->count, sizeof *s->tensors, by_name);
    for (uint64_t i = 1; i < s->count; i++)
        if (strcmp(s->tensors[i - 1].name, s->tensors[i].name) == 0)
            return bad(err, n, "safetensors: tensor '%.64s' appears twice", s->tensors[i].name);
    return check_tiling(s, data_size, err, n);
}

static vki_status open_common(const vki_safetensors_desc *desc, vki__mapping map, const void *data,
                              size_t size, vki_safetensors **out, char *err, size_t n)
{
    vki_safetensors tmp = {.allocator = desc && desc->allocator ? *desc->allocator : (vki_allocator){0}};
    vki_safetensors *s = salloc(&tmp, sizeof *s);
    if (!s) {
        vki__unmap_file(&map);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    s->allocator = tmp.allocator;
    s->map = map;
    s->base = data;
    s->size = size;
    vki_status st = parse(s, err, n);
    if (st) {
        if (st == VKI_ERROR_OUT_OF_HOST_MEMORY && err && n) snprintf(err, n, "safetensors: out of host memory");
        vki_safetensors_close(s);
        return st;
    }
    *out = s;
    return VKI_OK;
}

vki_status vki_safetensors_open_memory(const void *data, size_t size, const vki_safetensors_desc *desc,
                                       vki_safetensors **out, char *err, size_t n)
{
    if (err && n) err[0] = 0;
    if (!out || (!data && size)) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    return open_common(desc, (vki__mapping){0}, data, size, out, err, n);
}

vki_status vki_safetensors_open(const char *path, const vki_safetensors_desc *desc,
                                vki_safetensors **out, char *err, size_t n)
{
    if (err && n) err[0] = 0;
    if (!out || !path) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki__mapping map;
    char why[512];
    vki_status st = vki__map_file(path, &map, why, sizeof why);
    if (st) {
        if (err && n) snprintf(err, n, "%s: %s", path, why);
        return st;
    }
    st = open_common(desc, map, map.data, (size_t)map.size, out, err, n);
    if (st && err && n) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, n, "%s: %s", path, inner);
    }
    return st;
}

void vki_safetensors_close(vki_safetensors *s)
{
    if (!s) return;
    for (uint64_t i = 0; i < s->count; i++) sfree(s, s->tensors[i].name);
    for (uint64_t i = 0; i < 2 * s->meta_count; i++) sfree(s, s->meta[i]);
    sfree(s, s->tensors);
    sfree(s, s->meta);
    vki__unmap_file(&s->map);
    sfree(s, s);
}

uint64_t vki_safetensors_tensor_count(const vki_safetensors *s) { return s ? s->count : 0; }
const char *vki_safetensors_last_error(const vki_safetensors *s) { return s ? s->last_error : ""; }

static void fill(const vki_safetensors *s, const st_tensor *t, vki_safetensors_tensor *out)
{
    *out = (vki_safetensors_tensor){.name = t->name, .dtype = t->dtype, .type_name = t->type,
                               .n_dims = t->n_dims ? t->n_dims : 1,
                               .data = s->base + s->data_offset + t->begin, .size = t->end - t->begin};
    memcpy(out->ne, t->ne, sizeof out->ne);
}

vki_status vki_safetensors_tensor_at(vki_safetensors *s, uint64_t index, vki_safetensors_tensor *out)
{
    if (!s || !out || index >= s->count) return VKI_ERROR_INVALID_ARGUMENT;
    fill(s, &s->tensors[index], out);
    return VKI_OK;
}

vki_status vki_safetensors_find(vki_safetensors *s, const char *name, vki_safetensors_tensor *out)
{
    if (!s || !name || !out) return VKI_ERROR_INVALID_ARGUMENT;
    uint64_t lo = 0, hi = s->count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->tensors[mid].name, name);
        if (c == 0) {
            fill(s, &s->tensors[mid], out);
            if (out->dtype != VKI_DTYPE_NONE) return VKI_OK;
            snprintf(s->last_error, sizeof s->last_error, "tensor %.64s has type %s",
                     name, s->tensors[mid].type);
            return VKI_ERROR_UNSUPPORTED;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    snprintf(s->last_error, sizeof s->last_error, "no tensor %.128s", name);
    return VKI_ERROR_NOT_FOUND;
}

const char *vki_safetensors_metadata(const vki_safetensors *s, const char *key)
{
    for (uint64_t i = 0; s && key && i < s->meta_count; i++)
        if (strcmp(s->meta[2 * i], key) == 0) return s->meta[2 * i + 1];
    return NULL;
}

/* ---- As a weight source --------------------------------------------------------------------- */

/* The public record and the weight source's have the same fields. */
static void as_source(const vki_safetensors_tensor *t, vki_source_tensor *out)
{
    *out = (vki_source_tensor){.name = t->name, .dtype = t->dtype, .type_name = t->type_name,
                               .n_dims = t->n_dims, .data = t->data, .size = t->size};
    memcpy(out->ne, t->ne, sizeof out->ne);
}

static uint64_t src_count(void *file) { return vki_safetensors_tensor_count(file); }

static vki_status src_at(void *file, uint64_t i, vki_source_tensor *out)
{
    vki_safetensors_tensor t;
    VKI_TRY(vki_safetensors_tensor_at(file, i, &t));
    as_source(&t, out);
    return VKI_OK;
}

static vki_status src_find(void *file, const char *name, vki_source_tensor *out)
{
    vki_safetensors_tensor t;
    vki_status st = vki_safetensors_find(file, name, &t);
    if (st == VKI_OK || st == VKI_ERROR_UNSUPPORTED) as_source(&t, out); // filled either way
    return st;
}

static const char *src_error(void *file) { return vki_safetensors_last_error(file); }

vki_weight_source vki_weight_source_safetensors(vki_safetensors *s)
{
    return (vki_weight_source){.file = s, .count = src_count, .at = src_at, .find = src_find,
                               .last_error = src_error};
}
