/* GGUF reader. The file layout (v2 and v3 are identical for little-endian files):
 *
 *     u32 magic "GGUF"; u32 version; u64 tensor_count; u64 kv_count;
 *     kv_count x { string key; u32 type; value }           string = u64 len + bytes
 *     tensor_count x { string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset }
 *     padding to general.alignment; tensor data (offsets relative to here)
 *
 * Everything is validated once, at open; the accessors then only index what open proved is
 * inside the file. Sizes and counts come from the file, so each one is checked against the bytes
 * left before any loop or allocation uses it, and all arithmetic is __builtin_*_overflow. */
#include "vkinfer_models.h"

#include "platform_internal.h" // the file mapping

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_HEADER_BYTES 24
#define GGUF_MIN_KV_BYTES 13     // 8 (key len) + 4 (type) + 1 (a u8 value)
#define GGUF_MIN_TENSOR_BYTES 32 // 8 (name len) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset)
#define GGUF_MAX_KEY_BYTES 65535 // the spec's limit on key length
#define NO_TABLE UINT64_MAX

typedef struct gguf_kv {
    uint64_t key_off, key_len; // in the file
    uint64_t val_off;          // first byte of the value
    uint64_t arr;              // index into arrs for arrays
    uint32_t type;             // vki_gguf_type
} gguf_kv;

typedef struct gguf_arr {
    uint64_t data_off; // first element
    uint64_t count;
    uint64_t table; // strings: file offsets of each; arrays: arr index of each; else NO_TABLE
    uint64_t kv;    // the pair it belongs to (for messages)
    uint32_t type;  // element vki_gguf_type
} gguf_arr;

typedef struct gguf_sorted { // a key or tensor name and its index, sorted for lookup
    const uint8_t *p;
    uint64_t len, index;
} gguf_sorted;

typedef struct gguf_vec {
    void *p;
    uint64_t n, cap;
} gguf_vec;

struct vki_gguf {
    vki_allocator alloc;
    const uint8_t *base;
    uint64_t size;
    vki__mapping map;   // the file (vki_gguf_open); zero over borrowed memory
    uint32_t version, alignment;
    uint64_t data_off;
    uint64_t n_kv, n_tensors;
    gguf_kv *kvs;
    gguf_sorted *kv_sorted;
    gguf_vec arrs;   // gguf_arr
    gguf_vec tables; // uint64_t
    vki_gguf_tensor *tensors;
    gguf_sorted *tensor_sorted;
    char *names; // NUL-terminated tensor names
    char last_error[256];
};

/* ---- Small helpers ------------------------------------------------------------------------ */

static void *default_alloc(void *user, size_t size) { return malloc(size); }
static void default_free(void *user, void *ptr) { free(ptr); }

static void *g_alloc(vki_gguf *g, uint64_t count, uint64_t elem)
{
    uint64_t bytes;
    if (__builtin_mul_overflow(count, elem, &bytes) || bytes > SIZE_MAX) return NULL;
    return g->alloc.alloc(g->alloc.user, bytes ? (size_t)bytes : 1);
}

static void g_free(vki_gguf *g, void *p) { g->alloc.free(g->alloc.user, p); }

/* Grows `v` to hold `extra` more elements of `elem` bytes; false when out of memory. */
static bool vec_grow(vki_gguf *g, gguf_vec *v, uint64_t extra, uint64_t elem)
{
    uint64_t need;
    if (__builtin_add_overflow(v->n, extra, &need)) return false;
    if (need <= v->cap) return true;
    uint64_t cap = v->cap ? v->cap : 16;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) return false;
    }
    void *p = g_alloc(g, cap, elem);
    if (!p) return false;
    if (v->n) memcpy(p, v->p, (size_t)(v->n * elem));
    g_free(g, v->p);
    v->p = p;
    v->cap = cap;
    return true;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static const char *const type_names[VKI_GGUF_TYPE_COUNT] = {
    "none", "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64",
    "i64",  "f64",
};

static const char *type_name(uint32_t t) { return t < VKI_GGUF_TYPE_COUNT ? type_names[t] : "?"; }

/* Bytes of one fixed-size value; 0 for strings, arrays and unknown types. */
static uint32_t type_size(uint32_t t)
{
    static const uint8_t sizes[VKI_GGUF_TYPE_COUNT] = {0, 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < VKI_GGUF_TYPE_COUNT ? sizes[t] : 0;
}

/* ggml types: name, elements and bytes per block, and the vki_dtype where vkinfer has one.
 * Codes with no name were removed from ggml; a file using them is rejected. */
static const struct {
    const char *name;
    uint32_t block_elems, block_bytes;
    vki_dtype dtype;
} ggml_types[] = {
    [0] = {"f32", 1, 4, VKI_DTYPE_F32},          [1] = {"f16", 1, 2, VKI_DTYPE_F16},
    [2] = {"q4_0", 32, 18, VKI_DTYPE_Q4_0},      [3] = {"q4_1", 32, 20, VKI_DTYPE_Q4_1},
    [6] = {"q5_0", 32, 22, VKI_DTYPE_Q5_0},      [7] = {"q5_1", 32, 24, VKI_DTYPE_Q5_1},
    [8] = {"q8_0", 32, 34, VKI_DTYPE_Q8_0},      [9] = {"q8_1", 32, 36, VKI_DTYPE_NONE},
    [10] = {"q2_K", 256, 84, VKI_DTYPE_NONE},    [11] = {"q3_K", 256, 110, VKI_DTYPE_NONE},
    [12] = {"q4_K", 256, 144, VKI_DTYPE_Q4_K},   [13] = {"q5_K", 256, 176, VKI_DTYPE_Q5_K},
    [14] = {"q6_K", 256, 210, VKI_DTYPE_Q6_K},   [15] = {"q8_K", 256, 292, VKI_DTYPE_NONE},
    [16] = {"iq2_xxs", 256, 66, VKI_DTYPE_NONE}, [17] = {"iq2_xs", 256, 74, VKI_DTYPE_NONE},
    [18] = {"iq3_xxs", 256, 98, VKI_DTYPE_NONE}, [19] = {"iq1_s", 256, 50, VKI_DTYPE_NONE},
    [20] = {"iq4_nl", 32, 18, VKI_DTYPE_NONE},   [21] = {"iq3_s", 256, 110, VKI_DTYPE_NONE},
    [22] = {"iq2_s", 256, 82, VKI_DTYPE_NONE},   [23] = {"iq4_xs", 256, 136, VKI_DTYPE_NONE},
    [24] = {"i8", 1, 1, VKI_DTYPE_NONE},         [25] = {"i16", 1, 2, VKI_DTYPE_NONE},
    [26] = {"i32", 1, 4, VKI_DTYPE_NONE},        [27] = {"i64", 1, 8, VKI_DTYPE_NONE},
    [28] = {"f64", 1, 8, VKI_DTYPE_NONE},        [29] = {"iq1_m", 256, 56, VKI_DTYPE_NONE},
    [30] = {"bf16", 1, 2, VKI_DTYPE_BF16},       [34] = {"tq1_0", 256, 54, VKI_DTYPE_NONE},
    [35] = {"tq2_0", 256, 66, VKI_DTYPE_NONE},   [39] = {"mxfp4", 32, 17, VKI_DTYPE_NONE},
};
#define GGML_TYPE_TABLE (sizeof ggml_types / sizeof ggml_types[0])

const char *vki_gguf_ggml_type_name(uint32_t ggml_type)
{
    if (ggml_type >= GGML_TYPE_TABLE || !ggml_types[ggml_type].name) return "unknown";
    return ggml_types[ggml_type].name;
}

static int sorted_cmp(const void *a, const void *b)
{
    const gguf_sorted *x = a, *y = b;
    uint64_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->p, y->p, (size_t)n) : 0;
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

static int offset_cmp(const void *a, const void *b)
{
    const gguf_sorted *x = a, *y = b; // offsets are held in len
    return (x->len > y->len) - (x->len < y->len);
}

/* Binary search of `n` sorted entries; UINT64_MAX when absent. */
static uint64_t sorted_find(const gguf_sorted *s, uint64_t n, const char *name)
{
    gguf_sorted k = {(const uint8_t *)name, strlen(name), 0};
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = sorted_cmp(&s[mid], &k);
        if (c == 0) return s[mid].index;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return UINT64_MAX;
}

/* ---- Parsing ------------------------------------------------------------------------------ */

typedef struct parser {
    vki_gguf *g;
    const char *file; // for messages
    uint64_t pos;
    char *err;
    size_t err_size;
    vki_status status;
} parser;

/* Records the first failure: "<file>: <field> at offset N: <why>". Returns false. */
static bool VKI_PRINTF(4, 5)
fail(parser *p, uint64_t offset, const char *field, const char *fmt, ...)
{
    if (p->status != VKI_OK) return false;
    p->status = VKI_ERROR_BAD_FILE;
    if (p->err && p->err_size) {
        int n = snprintf(p->err, p->err_size, "%s: %s at offset %llu: ", p->file, field,
                         (unsigned long long)offset);
        if (n >= 0 && (size_t)n < p->err_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->err_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

static bool oom(parser *p)
{
    if (p->status != VKI_OK) return false;
    p->status = VKI_ERROR_OUT_OF_HOST_MEMORY;
    if (p->err && p->err_size)
        snprintf(p->err, p->err_size, "%s: out of host memory while indexing the file", p->file);
    return false;
}

static uint64_t left(const parser *p) { return p->g->size - p->pos; }

/* Takes `n` bytes at the cursor, or fails naming `field` as truncated. */
static bool take(parser *p, uint64_t n, const char *field, const uint8_t **out)
{
    if (n > left(p))
        return fail(p, p->pos, field, "truncated: needs %llu bytes, the file has %llu left",
                    (unsigned long long)n, (unsigned long long)left(p));
    *out = p->g->base + p->pos;
    p->pos += n;
    return true;
}

static bool take_u32(parser *p, const char *field, uint32_t *out)
{
    const uint8_t *b = NULL;
    if (!take(p, 4, field, &b)) return false;
    *out = le32(b);
    return true;
}

static bool take_u64(parser *p, const char *field, uint64_t *out)
{
    const uint8_t *b = NULL;
    if (!take(p, 8, field, &b)) return false;
    *out = le64(b);
    return true;
}

/* A string: its length is checked against the bytes left before anything else. */
static bool take_string(parser *p, const char *field, uint64_t *out_off, uint64_t *out_len)
{
    uint64_t at = p->pos, len;
    if (!take_u64(p, field, &len)) return false;
    if (len > left(p))
        return fail(p, at, field, "string length %llu exceeds the %llu bytes left in the file",
                    (unsigned long long)len, (unsigned long long)left(p));
    *out_off = p->pos;
    *out_len = len;
    p->pos += len;
    return true;
}

/* The least bytes a value of file type `t` can take (so counts can be checked up front). */
static uint64_t min_value_bytes(uint32_t t)
{
    if (t == VKI_GGUF_TYPE_STRING) return 8;
    if (t == VKI_GGUF_TYPE_ARRAY) return 12;
    return type_size(t);
}

static bool take_type(parser *p, const char *field, uint32_t *out)
{
    uint64_t at = p->pos;
    uint32_t code;
    if (!take_u32(p, field, &code)) return false;
    if (code >= VKI_GGUF_TYPE_COUNT - 1)
        return fail(p, at, field, "unknown metadata type %u (known: 0..%d)", code,
                    VKI_GGUF_TYPE_COUNT - 2);
    *out = code + 1;
    return true;
}

static bool parse_value(parser *p, uint64_t kv, uint32_t type, uint32_t depth, uint64_t *out_arr);

/* An array body (after its type tag): u32 element type, u64 count, elements. Appends one
 * gguf_arr and returns its index. */
static bool parse_array(parser *p, uint64_t kv, uint32_t depth, uint64_t *out_arr)
{
    vki_gguf *g = p->g;
    uint64_t at = p->pos;
    if (depth > VKI_GGUF_MAX_ARRAY_DEPTH)
        return fail(p, at, "array", "arrays nested deeper than %d", VKI_GGUF_MAX_ARRAY_DEPTH);
    uint32_t type = 0;
    uint64_t count, need;
    if (!take_type(p, "array element type", &type)) return false;
    uint64_t count_at = p->pos;
    if (!take_u64(p, "array count", &count)) return false;
    if (__builtin_mul_overflow(count, min_value_bytes(type), &need) || need > left(p))
        return fail(p, count_at, "array count",
                    "%llu %s elements cannot fit in the %llu bytes left in the file",
                    (unsigned long long)count, type_name(type), (unsigned long long)left(p));
    if (!vec_grow(g, &g->arrs, 1, sizeof(gguf_arr))) return oom(p);
    uint64_t id = g->arrs.n++;
    gguf_arr a = {.data_off = p->pos, .count = count, .table = NO_TABLE, .kv = kv, .type = type};
    if (type == VKI_GGUF_TYPE_STRING || type == VKI_GGUF_TYPE_ARRAY) {
        // Reserve this array's table before its elements, which may append tables of their own.
        if (!vec_grow(g, &g->tables, count, sizeof(uint64_t))) return oom(p);
        a.table = g->tables.n;
        g->tables.n += count;
        for (uint64_t i = 0; i < count; i++) {
            uint64_t v = p->pos, sub = 0, off, len;
            if (type == VKI_GGUF_TYPE_STRING) {
                if (!take_string(p, "array string", &off, &len)) return false;
            } else {
                if (!parse_array(p, kv, depth + 1, &sub)) return false;
                v = sub;
            }
            ((uint64_t *)g->tables.p)[a.table + i] = v;
        }
    } else {
        p->pos += need; // fixed-size elements: `need` is exactly their bytes, checked above
    }
    ((gguf_arr *)g->arrs.p)[id] = a;
    *out_arr = id;
    return true;
}

static bool parse_value(parser *p, uint64_t kv, uint32_t type, uint32_t depth, uint64_t *out_arr)
{
    const uint8_t *b = NULL;
    uint64_t off, len;
    if (type == VKI_GGUF_TYPE_STRING) return take_string(p, "string value", &off, &len);
    if (type == VKI_GGUF_TYPE_ARRAY) return parse_array(p, kv, depth + 1, out_arr);
    return take(p, type_size(type), "value", &b);
}

static bool parse_kvs(parser *p)
{
    vki_gguf *g = p->g;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kvs[i];
        uint64_t at = p->pos;
        if (!take_string(p, "key", &kv->key_off, &kv->key_len)) return false;
        if (kv->key_len == 0) return fail(p, at, "key", "key %llu is empty", (unsigned long long)i);
        if (kv->key_len > GGUF_MAX_KEY_BYTES)
            return fail(p, at, "key", "key length %llu exceeds %d", (unsigned long long)kv->key_len,
                        GGUF_MAX_KEY_BYTES);
        if (!take_type(p, "value type", &kv->type)) return false;
        kv->val_off = p->pos;
        kv->arr = 0;
        if (!parse_value(p, i, kv->type, 0, &kv->arr)) return false;
        g->kv_sorted[i] = (gguf_sorted){g->base + kv->key_off, kv->key_len, i};
    }
    if (g->n_kv) qsort(g->kv_sorted, (size_t)g->n_kv, sizeof(gguf_sorted), sorted_cmp);
    for (uint64_t i = 1; i < g->n_kv; i++) {
        if (sorted_cmp(&g->kv_sorted[i - 1], &g->kv_sorted[i]) == 0) {
            const gguf_kv *kv = &g->kvs[g->kv_sorted[i].index];
            return fail(p, kv->key_off - 8, "key", "duplicate key '%.*s'",
                        (int)kv->key_len, (const char *)g->base + kv->key_off);
        }
    }
    return true;
}

/* general.alignment: a u32 power of two; 32 when absent. */
static bool parse_alignment(parser *p)
{
    vki_gguf *g = p->g;
    g->alignment = 32;
    uint64_t i = sorted_find(g->kv_sorted, g->n_kv, "general.alignment");
    if (i == UINT64_MAX) return true;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != VKI_GGUF_TYPE_U32)
        return fail(p, kv->val_off, "general.alignment", "has type %s, expected u32",
                    type_name(kv->type));
    uint32_t a = le32(g->base + kv->val_off);
    if (a == 0 || (a & (a - 1)))
        return fail(p, kv->val_off, "general.alignment", "%u is not a power of two", a);
    g->alignment = a;
    return true;
}

/* One tensor record; `names_bytes` accumulates the NUL-terminated name storage. */
static bool parse_tensor(parser *p, uint64_t i, uint64_t *name_off, uint64_t *names_bytes)
{
    vki_gguf *g = p->g;
    vki_gguf_tensor *t = &g->tensors[i];
    uint64_t at = p->pos, len, at_dims;
    if (!take_string(p, "tensor name", name_off, &len)) return false;
    if (len == 0)
        return fail(p, at, "tensor name", "tensor %llu has an empty name", (unsigned long long)i);
    if (memchr(g->base + *name_off, 0, (size_t)len))
        return fail(p, at, "tensor name",
                    "tensor %llu's name contains a NUL byte", (unsigned long long)i);
    g->tensor_sorted[i] = (gguf_sorted){g->base + *name_off, len, i};
    if (__builtin_add_overflow(*names_bytes, len + 1, names_bytes)) return oom(p);
    const int nl = len > 64 ? 64 : (int)len; // names in messages, cut short
    const char *nm = (const char *)g->base + *name_off;

    at = p->pos;
    if (!take_u32(p, "tensor n_dims", &t->n_dims)) return false;
    if (t->n_dims == 0 || t->n_dims > VKI_MAX_DIMS)
        return fail(p, at, "tensor n_dims", "tensor '%.*s' has %u dims (1..%d allowed)", nl, nm,
                    t->n_dims, VKI_MAX_DIMS);
    at_dims = p->pos;
    int64_t elems = 1;
    for (uint32_t d = 0; d < VKI_MAX_DIMS; d++) {
        uint64_t v = 1;
        at = p->pos;
        if (d < t->n_dims && !take_u64(p, "tensor dim", &v)) return false;
        if (v == 0 || v > INT64_MAX)
            return fail(p, at, "tensor dim", "tensor '%.*s' dim %u is %llu", nl, nm, d,
                        (unsigned long long)v);
        t->ne[d] = (int64_t)v;
        if (__builtin_mul_overflow(elems, t->ne[d], &elems))
            return fail(p, at_dims, "tensor dims",
                        "tensor '%.*s': element count overflows", nl, nm);
    }
    at = p->pos;
    if (!take_u32(p, "tensor type", &t->ggml_type)) return false;
    if (t->ggml_type >= GGML_TYPE_TABLE || !ggml_types[t->ggml_type].name)
        return fail(p, at, "tensor type", "tensor '%.*s' has unknown ggml type %u", nl, nm,
                    t->ggml_type);
    uint32_t be = ggml_types[t->ggml_type].block_elems, bb = ggml_types[t->ggml_type].block_bytes;
    if (t->ne[0] % be)
        return fail(p, at_dims, "tensor dim",
                    "tensor '%.*s' (%s): ne[0] = %lld is not a multiple of the block size %u",
                    nl, nm, ggml_types[t->ggml_type].name, (long long)t->ne[0], be);
    if (__builtin_mul_overflow((uint64_t)elems / be, (uint64_t)bb, &t->size))
        return fail(p, at_dims, "tensor dims", "tensor '%.*s': byte size overflows", nl, nm);
    t->dtype = ggml_types[t->ggml_type].dtype;
    at = p->pos;
    if (!take_u64(p, "tensor offset", &t->offset)) return false;
    return true;
}

/* Tensor data: aligned, inside the file, no two tensors overlapping. */
static bool check_tensor_data(parser *p)
{
    vki_gguf *g = p->g;
    if (g->n_tensors == 0) return true;
    uint64_t data_bytes = g->size - g->data_off; // data_off <= size was checked
    gguf_sorted *by_off = g_alloc(g, g->n_tensors, sizeof(gguf_sorted));
    if (!by_off) return oom(p);
    bool ok = true;
    for (uint64_t i = 0; i < g->n_tensors && ok; i++) {
        vki_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (t->offset % g->alignment)
            ok = fail(p, g->data_off, "tensor offset",
                      "tensor '%s' data offset %llu is not a multiple of the alignment %u",
                      t->name, (unsigned long long)t->offset, g->alignment);
        else if (__builtin_add_overflow(t->offset, t->size, &end) || end > data_bytes)
            ok = fail(p, g->data_off, "tensor offset",
                      "tensor '%s' (%llu bytes at data offset %llu) runs past the end of the file "
                      "(%llu data bytes)",
                      t->name, (unsigned long long)t->size, (unsigned long long)t->offset,
                      (unsigned long long)data_bytes);
        t->data = g->base + g->data_off + (ok ? t->offset : 0);
        by_off[i] = (gguf_sorted){NULL, t->offset, i};
    }
    if (ok) {
        qsort(by_off, (size_t)g->n_tensors, sizeof(gguf_sorted), offset_cmp);
        for (uint64_t i = 1; i < g->n_tensors && ok; i++) {
            const vki_gguf_tensor *a = &g->tensors[by_off[i - 1].index];
            const vki_gguf_tensor *b = &g->tensors[by_off[i].index];
            if (a->offset + a->size > b->offset)
                ok = fail(p, g->data_off + b->offset, "tensor offset",
                          "tensors '%s' and '%s' overlap", a->name, b->name);
        }
    }
    g_free(g, by_off);
    return ok;
}

static bool parse_tensors(parser *p)
{
    vki_gguf *g = p->g;
    uint64_t names_bytes = 0;
    uint64_t *name_offs = g_alloc(g, g->n_tensors, sizeof(uint64_t));
    if (!name_offs) return oom(p);
    bool ok = true;
    for (uint64_t i = 0; i < g->n_tensors && ok; i++)
        ok = parse_tensor(p, i, &name_offs[i], &names_bytes);
    if (ok && g->n_tensors) {
        qsort(g->tensor_sorted, (size_t)g->n_tensors, sizeof(gguf_sorted), sorted_cmp);
        for (uint64_t i = 1; i < g->n_tensors && ok; i++) {
            const gguf_sorted *s = &g->tensor_sorted[i];
            if (sorted_cmp(&g->tensor_sorted[i - 1], s) == 0)
                ok = fail(p, name_offs[s->index] - 8, "tensor name", "duplicate tensor name '%.*s'",
                          s->len > 64 ? 64 : (int)s->len, (const char *)s->p);
        }
    }
    if (ok && !(g->names = g_alloc(g, names_bytes, 1))) ok = oom(p);
    for (uint64_t i = 0, at = 0; i < g->n_tensors && ok; i++) {
        uint64_t len = le64(g->base + name_offs[i] - 8); // validated by parse_tensor
        memcpy(g->names + at, g->base + name_offs[i], (size_t)len);
        g->names[at + len] = 0;
        g->tensors[i].name = g->names + at;
        at += len + 1;
    }
    g_free(g, name_offs);
    if (!ok) return false;
    // Data section: after the tensor records, aligned. Without tensors the file may end early.
    if (__builtin_add_overflow(p->pos, (uint64_t)g->alignment - 1, &g->data_off))
        return fail(p, p->pos, "data section", "offset overflows");
    g->data_off -= g->data_off % g->alignment;
    if (g->n_tensors && g->data_off > g->size)
        return fail(p, p->pos, "data section",
                    "truncated: aligned start %llu is past the end of the file (%llu bytes)",
                    (unsigned long long)g->data_off, (unsigned long long)g->size);
    return check_tensor_data(p);
}

static bool parse_header(parser *p)
{
    vki_gguf *g = p->g;
    const uint8_t *magic = NULL;
    uint64_t at;
    if (!take(p, 4, "magic", &magic)) return false;
    if (memcmp(magic, "GGUF", 4))
        return fail(p, 0, "magic",
                    "not a GGUF file (starts with %02x %02x %02x %02x, expected \"GGUF\")",
                    magic[0], magic[1], magic[2], magic[3]);
    if (!take_u32(p, "version", &g->version)) return false;
    if (g->version == 1)
        return fail(p, 4, "version",
                    "GGUF v1 is not supported; re-convert the model with a current llama.cpp");
    if ((g->version & 0xffff) == 0 && g->version)
        return fail(p, 4, "version", "big-endian GGUF files are not supported");
    if (g->version != 2 && g->version != 3)
        return fail(p, 4, "version",
                    "unsupported GGUF version %u (this reader knows 2 and 3)", g->version);
    if (!take_u64(p, "tensor count", &g->n_tensors)) return false;
    if (!take_u64(p, "kv count", &g->n_kv)) return false;
    uint64_t need_t, need_kv, need;
    at = 8;
    if (__builtin_mul_overflow(g->n_tensors, (uint64_t)GGUF_MIN_TENSOR_BYTES, &need_t) ||
        need_t > left(p))
        return fail(p, at, "tensor count", "%llu tensors cannot fit in a %llu-byte file",
                    (unsigned long long)g->n_tensors, (unsigned long long)g->size);
    at = 16;
    if (__builtin_mul_overflow(g->n_kv, (uint64_t)GGUF_MIN_KV_BYTES, &need_kv) ||
        __builtin_add_overflow(need_t, need_kv, &need) || need > left(p))
        return fail(p, at, "kv count",
                    "%llu key/value pairs and %llu tensors cannot fit in a %llu-byte file",
                    (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors,
                    (unsigned long long)g->size);
    // The counts are now bounded by the file size, so these allocations are too.
    g->kvs = g_alloc(g, g->n_kv, sizeof(gguf_kv));
    g->kv_sorted = g_alloc(g, g->n_kv, sizeof(gguf_sorted));
    g->tensors = g_alloc(g, g->n_tensors, sizeof(vki_gguf_tensor));
    g->tensor_sorted = g_alloc(g, g->n_tensors, sizeof(gguf_sorted));
    if (!g->kvs || !g->kv_sorted || !g->tensors || !g->tensor_sorted) return oom(p);
    memset(g->tensors, 0, (size_t)(g->n_tensors * sizeof(vki_gguf_tensor)));
    return true;
}

static vki_status open_common(vki_gguf *g, const char *file, char *out_error, size_t error_size)
{
    parser p = {.g = g, .file = file, .err = out_error, .err_size = error_size};
    if (parse_header(&p) && parse_kvs(&p) && parse_alignment(&p)) parse_tensors(&p);
    return p.status;
}

static vki_status new_gguf(const vki_gguf_desc *desc, vki_gguf **out, const char *file,
                           char *out_error, size_t error_size)
{
    vki_allocator a = {default_alloc, default_free, NULL};
    if (desc && desc->allocator) {
        a = *desc->allocator;
        if (!a.alloc) a.alloc = default_alloc;
        if (!a.free) a.free = default_free;
    }
    vki_gguf *g = a.alloc(a.user, sizeof *g);
    if (!g) {
        if (out_error && error_size) snprintf(out_error, error_size,
                "%s: out of host memory", file);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    memset(g, 0, sizeof *g);
    g->alloc = a;
    *out = g;
    return VKI_OK;
}

vki_status vki_gguf_open_memory(const void *data, size_t size, const vki_gguf_desc *desc,
                                vki_gguf **out, char *out_error, size_t error_size)
{
    if (out_error && error_size) out_error[0] = 0;
    if (!out || (!data && size)) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_gguf *g;
    VKI_TRY(new_gguf(desc, &g, "<memory>", out_error, error_size));
    g->base = data;
    g->size = size;
    vki_status s = open_common(g, "<memory>", out_error, error_size);
    if (s != VKI_OK) {
        vki_gguf_close(g);
        return s;
    }
    *out = g;
    return VKI_OK;
}

vki_status vki_gguf_open(const char *path, const vki_gguf_desc *desc, vki_gguf **out,
                         char *out_error, size_t error_size)
{
    if (out_error && error_size) out_error[0] = 0;
    if (!out || !path) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    // The platform maps regular files only, and refuses a FIFO without waiting for a writer.
    vki__mapping map;
    char why[512];
    vki_status s = vki__map_file(path, &map, why, sizeof why);
    if (s != VKI_OK) {
        if (out_error && error_size) snprintf(out_error, error_size, "%s: %s", path, why);
        return s;
    }
    vki_gguf *g;
    s = new_gguf(desc, &g, path, out_error, error_size);
    if (s != VKI_OK) {
        vki__unmap_file(&map);
        return s;
    }
    g->map = map;
    g->base = map.data;
    g->size = map.size; // an empty file fails below as truncated
    s = open_common(g, path, out_error, error_size);
    if (s != VKI_OK) {
        vki_gguf_close(g);
        return s;
    }
    *out = g;
    return VKI_OK;
}

void vki_gguf_close(vki_gguf *g)
{
    if (!g) return;
    vki__unmap_file(&g->map);
    g_free(g, g->kvs);
    g_free(g, g->kv_sorted);
    g_free(g, g->arrs.p);
    g_free(g, g->tables.p);
    g_free(g, g->tensors);
    g_free(g, g->tensor_sorted);
    g_free(g, g->names);
    vki_allocator a = g->alloc;
    a.free(a.user, g);
}

/* ---- Accessors ---------------------------------------------------------------------------- */

static vki_status VKI_PRINTF(3, 4)
report(vki_gguf *g, vki_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->last_error, sizeof g->last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *vki_gguf_last_error(const vki_gguf *g) { return g ? g->last_error : ""; }
uint32_t vki_gguf_version(const vki_gguf *g) { return g->version; }
uint32_t vki_gguf_alignment(const vki_gguf *g) { return g->alignment; }
uint64_t vki_gguf_data_offset(const vki_gguf *g) { return g->data_off; }
uint64_t vki_gguf_kv_count(const vki_gguf *g) { return g->n_kv; }
uint64_t vki_gguf_tensor_count(const vki_gguf *g) { return g->n_tensors; }

vki_status vki_gguf_kv_info(vki_gguf *g, uint64_t index, vki_gguf_string *out_key,
                            vki_gguf_type *out_type)
{
    if (index >= g->n_kv)
        return report(g, VKI_ERROR_INVALID_ARGUMENT, "kv index %llu out of range (%llu pairs)",
                      (unsigned long long)index, (unsigned long long)g->n_kv);
    const gguf_kv *kv = &g->kvs[index];
    if (out_key) *out_key = (vki_gguf_string){(const char *)g->base + kv->key_off, kv->key_len};
    if (out_type) *out_type = (vki_gguf_type)kv->type;
    return VKI_OK;
}

vki_status vki_gguf_find(vki_gguf *g, const char *key, uint64_t *out_index,
                         vki_gguf_type *out_type)
{
    uint64_t i = sorted_find(g->kv_sorted, g->n_kv, key);
    if (i == UINT64_MAX) return report(g, VKI_ERROR_NOT_FOUND, "no metadata key '%s'", key);
    if (out_index) *out_index = i;
    if (out_type) *out_type = (vki_gguf_type)g->kvs[i].type;
    return VKI_OK;
}

/* Where a value lives, for reading it and for naming it in messages ("key" or "key[i]"). */
typedef struct value_ref {
    uint32_t type;
    uint64_t off; // file offset of the value (scalars, strings); for arrays the gguf_arr index
    uint64_t kv;
    uint64_t index; // UINT64_MAX: the pair's own value
} value_ref;

static vki_status wrong_type(vki_gguf *g, const value_ref *v, const char *want)
{
    const gguf_kv *kv = &g->kvs[v->kv];
    if (v->index == UINT64_MAX)
        return report(g, VKI_ERROR_BAD_FILE, "metadata '%.*s' has type %s, expected %s",
                      (int)kv->key_len, (const char *)g->base + kv->key_off, type_name(v->type),
                      want);
    return report(g, VKI_ERROR_BAD_FILE, "metadata '%.*s' element %llu has type %s, expected %s",
                  (int)kv->key_len, (const char *)g->base + kv->key_off,
                  (unsigned long long)v->index, type_name(v->type), want);
}

static vki_status key_ref(vki_gguf *g, const char *key, value_ref *out)
{
    uint64_t i = 0;
    VKI_TRY(vki_gguf_find(g, key, &i, NULL));
    const gguf_kv *kv = &g->kvs[i];
    *out = (value_ref){kv->type, kv->type == VKI_GGUF_TYPE_ARRAY ? kv->arr : kv->val_off, i,
                       UINT64_MAX};
    return VKI_OK;
}

static vki_status elem_ref(vki_gguf *g, const vki_gguf_array *a, uint64_t index, value_ref *out)
{
    if (!a || a->id_ >= g->arrs.n)
        return report(g, VKI_ERROR_INVALID_ARGUMENT, "array not taken from this file");
    const gguf_arr *r = &((const gguf_arr *)g->arrs.p)[a->id_];
    if (index >= r->count)
        return report(g, VKI_ERROR_INVALID_ARGUMENT, "index %llu out of range (%llu elements)",
                      (unsigned long long)index, (unsigned long long)r->count);
    uint64_t off = r->table != NO_TABLE ? ((const uint64_t *)g->tables.p)[r->table + index]
                                        : r->data_off + index * type_size(r->type);
    *out = (value_ref){r->type, off, r->kv, index};
    return VKI_OK;
}

/* An integer value as sign and magnitude, so every range check is exact. */
static bool read_int(const vki_gguf *g, const value_ref *v, bool *neg, uint64_t *mag)
{
    const uint8_t *b = g->base + v->off;
    int64_t s;
    switch (v->type) {
    case VKI_GGUF_TYPE_U8: *neg = false; *mag = b[0]; return true;
    case VKI_GGUF_TYPE_U16: *neg = false; *mag = le16(b); return true;
    case VKI_GGUF_TYPE_U32: *neg = false; *mag = le32(b); return true;
    case VKI_GGUF_TYPE_U64: *neg = false; *mag = le64(b); return true;
    case VKI_GGUF_TYPE_I8: s = (int8_t)b[0]; break;
    case VKI_GGUF_TYPE_I16: s = (int16_t)le16(b); break;
    case VKI_GGUF_TYPE_I32: s = (int32_t)le32(b); break;
    case VKI_GGUF_TYPE_I64: s = (int64_t)le64(b); break;
    default: return false;
    }
    *neg = s < 0;
    *mag = s < 0 ? 0 - (uint64_t)s : (uint64_t)s;
    return true;
}

static vki_status int_in_range(vki_gguf *g, const value_ref *v, const char *want, bool neg,
                               uint64_t mag, uint64_t max_pos, uint64_t max_neg)
{
    if (neg ? mag <= max_neg : mag <= max_pos) return VKI_OK;
    const gguf_kv *kv = &g->kvs[v->kv];
    return report(g, VKI_ERROR_BAD_FILE, "metadata '%.*s' value %s%llu does not fit %s",
                  (int)kv->key_len, (const char *)g->base + kv->key_off, neg ? "-" : "",
                  (unsigned long long)mag, want);
}

static vki_status as_u64(vki_gguf *g, const value_ref *v, uint64_t max, const char *want,
                         uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!read_int(g, v, &neg, &mag)) return wrong_type(g, v, want);
    VKI_TRY(int_in_range(g, v, want, neg, mag, max, 0));
    *out = mag;
    return VKI_OK;
}

static vki_status as_i64(vki_gguf *g, const value_ref *v, int64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!read_int(g, v, &neg, &mag)) return wrong_type(g, v, "i64");
    VKI_TRY(int_in_range(g, v, "i64", neg, mag, INT64_MAX, (uint64_t)INT64_MAX + 1));
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return VKI_OK;
}

static vki_status as_f32(vki_gguf *g, const value_ref *v, float *out)
{
    const uint8_t *b = g->base + v->off;
    if (v->type == VKI_GGUF_TYPE_F32) {
        uint32_t u = le32(b);
        memcpy(out, &u, 4);
    } else if (v->type == VKI_GGUF_TYPE_F64) {
        uint64_t u = le64(b);
        double d;
        memcpy(&d, &u, 8);
        *out = (float)d;
    } else {
        return wrong_type(g, v, "f32");
    }
    return VKI_OK;
}

static vki_status as_bool(vki_gguf *g, const value_ref *v, bool *out)
{
    if (v->type != VKI_GGUF_TYPE_BOOL) return wrong_type(g, v, "bool");
    *out = g->base[v->off] != 0;
    return VKI_OK;
}

static vki_status as_string(vki_gguf *g, const value_ref *v, vki_gguf_string *out)
{
    if (v->type != VKI_GGUF_TYPE_STRING) return wrong_type(g, v, "string");
    *out = (vki_gguf_string){(const char *)g->base + v->off + 8, le64(g->base + v->off)};
    return VKI_OK;
}

static vki_status as_array(vki_gguf *g, const value_ref *v, vki_gguf_array *out)
{
    if (v->type != VKI_GGUF_TYPE_ARRAY) return wrong_type(g, v, "array");
    const gguf_arr *r = &((const gguf_arr *)g->arrs.p)[v->off];
    *out = (vki_gguf_array){(vki_gguf_type)r->type, r->count,
                            r->table == NO_TABLE ? g->base + r->data_off : NULL, v->off};
    return VKI_OK;
}

vki_status vki_gguf_get_u32(vki_gguf *g, const char *key, uint32_t *out)
{
    value_ref v = {0};
    uint64_t x = 0;
    VKI_TRY(key_ref(g, key, &v));
    VKI_TRY(as_u64(g, &v, UINT32_MAX, "u32", &x));
    *out = (uint32_t)x;
    return VKI_OK;
}

vki_status vki_gguf_get_u64(vki_gguf *g, const char *key, uint64_t *out)
{
    value_ref v = {0};
    VKI_TRY(key_ref(g, key, &v));
    return as_u64(g, &v, UINT64_MAX, "u64", out);
}

vki_status vki_gguf_get_i64(vki_gguf *g, const char *key, int64_t *out)
{
    value_ref v = {0};
    VKI_TRY(key_ref(g, key, &v));
    return as_i64(g, &v, out);
}

vki_status vki_gguf_get_f32(vki_gguf *g, const char *key, float *out)
{
    value_ref v = {0};
    VKI_TRY(key_ref(g, key, &v));
    return as_f32(g, &v, out);
}

vki_status vki_gguf_get_bool(vki_gguf *g, const char *key, bool *out)
{
    value_ref v = {0};
    VKI_TRY(key_ref(g, key, &v));
    return as_bool(g, &v, out);
}

vki_status vki_gguf_get_string(vki_gguf *g, const char *key, vki_gguf_string *out)
{
    value_ref v = {0};
    VKI_TRY(key_ref(g, key, &v));
    return as_string(g, &v, out);
}

vki_status vki_gguf_get_array(vki_gguf *g, const char *key, vki_gguf_array *out)
{
    value_ref v = {0};
    VKI_TRY(key_ref(g, key, &v));
    return as_array(g, &v, out);
}

vki_status vki_gguf_array_get_u32(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                  uint32_t *out)
{
    value_ref v = {0};
    uint64_t x = 0;
    VKI_TRY(elem_ref(g, a, index, &v));
    VKI_TRY(as_u64(g, &v, UINT32_MAX, "u32", &x));
    *out = (uint32_t)x;
    return VKI_OK;
}

vki_status vki_gguf_array_get_i64(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                  int64_t *out)
{
    value_ref v = {0};
    VKI_TRY(elem_ref(g, a, index, &v));
    return as_i64(g, &v, out);
}

vki_status vki_gguf_array_get_f32(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                  float *out)
{
    value_ref v = {0};
    VKI_TRY(elem_ref(g, a, index, &v));
    return as_f32(g, &v, out);
}

vki_status vki_gguf_array_get_bool(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                   bool *out)
{
    value_ref v = {0};
    VKI_TRY(elem_ref(g, a, index, &v));
    return as_bool(g, &v, out);
}

vki_status vki_gguf_array_get_string(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                     vki_gguf_string *out)
{
    value_ref v = {0};
    VKI_TRY(elem_ref(g, a, index, &v));
    return as_string(g, &v, out);
}

vki_status vki_gguf_array_get_array(vki_gguf *g, const vki_gguf_array *a, uint64_t index,
                                    vki_gguf_array *out)
{
    value_ref v = {0};
    VKI_TRY(elem_ref(g, a, index, &v));
    return as_array(g, &v, out);
}

vki_status vki_gguf_tensor_at(vki_gguf *g, uint64_t index, vki_gguf_tensor *out)
{
    if (index >= g->n_tensors)
        return report(g, VKI_ERROR_INVALID_ARGUMENT,
                      "tensor index %llu out of range (%llu tensors)",
                      (unsigned long long)index, (unsigned long long)g->n_tensors);
    *out = g->tensors[index];
    return VKI_OK;
}

vki_status vki_gguf_find_tensor(vki_gguf *g, const char *name, vki_gguf_tensor *out)
{
    uint64_t i = sorted_find(g->tensor_sorted, g->n_tensors, name);
    if (i == UINT64_MAX) return report(g, VKI_ERROR_NOT_FOUND, "no tensor '%s'", name);
    *out = g->tensors[i];
    if (out->dtype == VKI_DTYPE_NONE)
        return report(g, VKI_ERROR_UNSUPPORTED,
                      "tensor '%s' has ggml type %u (%s), which vkinfer does not support",
                      name, out->ggml_type, vki_gguf_ggml_type_name(out->ggml_type));
    return VKI_OK;
}
