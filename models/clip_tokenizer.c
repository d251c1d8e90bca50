/* CLIP's byte-level BPE tokenizer (OpenAI CLIP's simple_tokenizer.py, which Stable Diffusion 1.x
 * uses) and AUTOMATIC1111's prompt syntax on top of it.
 *
 * Text -> ids, in the reference's order:
 *   1-4. CLIP's clean-up (clip_text.c: ftfy's relevant fixes, HTML entities, whitespace, lower
 *      case; what it skips on purpose is listed there).
 *   5. CLIP's pre-tokenizer, 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+ (PCRE2,
 *      UTF + UCP, caseless like the reference). Unlike the reference, <|startoftext|> and
 *      <|endoftext|> are NOT matched as special tokens: user text never makes control tokens.
 *   6. Each piece's UTF-8 bytes -> GPT-2's printable byte alphabet, "</w>" on the last symbol,
 *      then BPE by merge rank (lowest first, ties to the leftmost pair) from a priority queue,
 *      O(n log n) per piece.
 *
 * The vocabulary: line 1 of bpe_simple_vocab_16e6.txt is a version header, then one merge "a b"
 * per line; CLIP uses the first 49152 - 256 - 2 = 48894. Ids: the 256 byte symbols (in the byte
 * alphabet's order), the same with "</w>", one per merge (512 + rank), then the start and end
 * tokens: 49408. Every line of the file is checked; each merge's two halves must be tokens that
 * earlier lines defined and its result must be new (the real file satisfies both, and it is what
 * makes the rank order of a priority queue equal to the reference's merge-all-then-rescan).
 * Merges are held as (left id, right id) -> rank in one hash table; encoding never hashes text.
 */
#include "clip_tokenizer_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef vki_clip_vec vec;
typedef vki_clip_work work;

#define N_BYTES         256
#define N_MERGES        (49152 - 256 - 2)            // the merges CLIP uses
#define N_VOCAB         (2 * N_BYTES + N_MERGES + 2) // 49408
#define MAP_SLOTS       (1u << 17)                   // > 2 * N_VOCAB, a power of two
#define MAX_FILE        (64u << 20)                  // the real file is 3.2 MB
#define MAX_TEXT        (4u << 20)                   // bytes vki_clip_tokenize takes
#define MAX_PROMPT      (256u << 10)                 // bytes vki_clip_prompt_encode takes
#define MAX_WINDOWS     32                           // VKI_CLIP_MAX_WINDOWS: 32 * 75 = 2400 tokens
#define MAX_DEPTH       256                          // open brackets at once
#define WINDOW          (VKI_CLIP_CONTEXT - 2)       // 75 prompt tokens per window
#define COMMA_ID        267                          // ",</w>"
#define COMMA_BACKTRACK 20                           // A1111's comma_padding_backtrack default

struct vki_clip_tokenizer {
    vki_allocator alloc;
    int32_t byte_id[N_BYTES]; // byte -> id of its symbol; + 256: with "</w>"
    uint64_t *pair_key;       // [MAP_SLOTS] left << 32 | right; UINT64_MAX: empty
    uint32_t *pair_rank;      // [MAP_SLOTS]
    pcre2_general_context *pcre_ctx;
    pcre2_code *pretok; // step 5
    pcre2_code *brk;    // A1111's \s*\bBREAK\b\s*
};

/* ---- Small helpers ------------------------------------------------------------------------- */

static void *default_alloc(void *user, size_t size)
{
    (void)user;
    return malloc(size);
}
static void default_free(void *user, void *p)
{
    (void)user;
    free(p);
}

/* strlen that stops looking past `max` (C17 has no strnlen). */
static size_t bounded_len(const char *s, size_t max)
{
    const char *end = memchr(s, 0, max);
    return end ? (size_t)(end - s) : max;
}

static void *pcre_alloc(size_t size, void *user)
{
    const vki_allocator *a = user;
    return a->alloc(a->user, size);
}

static void pcre_free(void *p, void *user)
{
    const vki_allocator *a = user;
    if (p) a->free(a->user, p);
}

static void set_error(char *buf, size_t size, const char *fmt, ...)
{
    if (!buf || !size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* ---- Loading the merges ---------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) // splitmix64's finaliser
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) // FNV-1a
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

/* Spellings (byte-alphabet UTF-8, as the file writes them) -> id, only while loading. */
typedef struct loader {
    uint8_t *spell; // every spelling back to back
    size_t used, cap;
    uint32_t *off, *len; // [N_VOCAB]
    uint32_t *slots;     // [MAP_SLOTS] id + 1; 0: empty
} loader;

static int32_t spelling_find(const loader *l, const uint8_t *p, size_t n)
{
    for (uint64_t h = hash_bytes(p, n);; h++) {
        uint32_t s = l->slots[h & (MAP_SLOTS - 1)];
        if (!s) return -1;
        if (l->len[s - 1] == n && !memcmp(l->spell + l->off[s - 1], p, n)) return (int32_t)s - 1;
    }
}

/* Adds id's spelling a + b (b may be empty); the caller has checked it is new and fits. */
static void spelling_add(loader *l, int32_t id, const uint8_t *a, size_t na, const uint8_t *b,
                         size_t nb)
{
    uint8_t *dst = l->spell + l->used;
    memcpy(dst, a, na);
    if (nb) memcpy(dst + na, b, nb);
    l->off[id] = (uint32_t)l->used;
    l->len[id] = (uint32_t)(na + nb);
    l->used += na + nb;
    uint64_t h = hash_bytes(dst, na + nb);
    while (l->slots[h & (MAP_SLOTS - 1)]) h++;
    l->slots[h & (MAP_SLOTS - 1)] = (uint32_t)id + 1;
}

static uint32_t pair_rank(const vki_clip_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint64_t h = mix64(key);; h++) {
        uint64_t k = t->pair_key[h & (MAP_SLOTS - 1)];
        if (k == key) return t->pair_rank[h & (MAP_SLOTS - 1)];
        if (k == UINT64_MAX) return UINT32_MAX;
    }
}

static void pair_add(vki_clip_tokenizer *t, int32_t a, int32_t b, uint32_t rank)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = mix64(key);
    while (t->pair_key[h & (MAP_SLOTS - 1)] != UINT64_MAX) h++;
    t->pair_key[h & (MAP_SLOTS - 1)] = key;
    t->pair_rank[h & (MAP_SLOTS - 1)] = rank;
}

static vki_status read_file(const vki_allocator *a, const char *path, uint8_t **out,
                            size_t *out_size, char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, n, "clip tokenizer: cannot open %s", path);
        return VKI_ERROR_NOT_FOUND;
    }
    vki_status st = VKI_OK;
    size_t cap = 1u << 20, size = 0;
    uint8_t *buf = clip_alloc(a, cap, 1);
    while (buf) {
        if (size == cap) {
            if (cap >= MAX_FILE) {
                set_error(err, n,
                          "clip tokenizer: %s is larger than %u MiB; not a CLIP merges file", path,
                          MAX_FILE >> 20);
                st = VKI_ERROR_BAD_FILE;
                break;
            }
            uint8_t *bigger = clip_alloc(a, cap * 2, 1);
            if (!bigger) break;
            memcpy(bigger, buf, size);
            clip_free(a, buf);
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + size, 1, cap - size, f);
        size += got;
        if (got == 0) {
            if (ferror(f)) {
                set_error(err, n, "clip tokenizer: cannot read %s", path);
                st = VKI_ERROR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (!buf) {
        set_error(err, n, "clip tokenizer: out of host memory reading %s", path);
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    if (st != VKI_OK) {
        clip_free(a, buf);
        return st;
    }
    *out = buf;
    *out_size = size;
    return VKI_OK;
}

/* True when p[0, n) is valid UTF-8 without control characters or spaces. */
static bool is_symbol(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (p[i] <= 0x20 || p[i] == 0x7F) return false;
        size_t at = i;
        uint32_t c = vki_clip_utf8_next(p, n, &i);
        if (c == 0xFFFD &&
            !(i - at == 3 && p[at] == 0xEF && p[at + 1] == 0xBF && p[at + 2] == 0xBD))
            return false;
    }
    return true;
}

/* The error for a malformed line: names the file and the line. */
static vki_status bad_line(char *err, size_t n, const char *path, size_t line_no, const char *fmt,
                           ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    set_error(err, n, "clip tokenizer: %s line %zu: %s", path, line_no, what);
    return VKI_ERROR_BAD_FILE;
}

/* Checks every line and fills the byte ids and the merge table. */
static vki_status parse_merges(vki_clip_tokenizer *t, loader *l, const uint8_t *file, size_t size,
                               const char *path, char *err, size_t n)
{
    size_t pos = 0, line_no = 0, merges = 0;
    // GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes
    // for U+0100.. in byte order; ids follow the printable ones first, then the others.
    int32_t next_id = 0;
    uint32_t extra = 0;
    uint32_t cp_of[N_BYTES];
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t b = 0; b < N_BYTES; b++) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            if (printable != (pass == 0)) continue;
            cp_of[b] = printable ? b : 0x100 + extra++;
            t->byte_id[b] = next_id++;
        }
    }
    for (uint32_t b = 0; b < N_BYTES; b++) {
        uint8_t u[4];
        size_t k = 0;
        u[k++] = (uint8_t)(0xC0 | cp_of[b] >> 6);
        u[k++] = (uint8_t)(0x80 | (cp_of[b] & 0x3F));
        if (cp_of[b] < 0x80) u[0] = (uint8_t)cp_of[b], k = 1;
        spelling_add(l, t->byte_id[b], u, k, NULL, 0);
        spelling_add(l, t->byte_id[b] + N_BYTES, u, k, (const uint8_t *)"</w>", 4);
    }
    while (pos < size) {
        const uint8_t *p = file + pos;
        const uint8_t *nl = memchr(p, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - p) : size - pos;
        pos += len + (nl != NULL);
        line_no++;
        if (line_no == 1) {
            static const char tag[] = "#version";
            bool found = false;
            for (size_t i = 0; i + sizeof tag - 1 <= len && !found; i++)
                found = !memcmp(p + i, tag, sizeof tag - 1);
            if (!found)
                return bad_line(err, n, path, line_no,
                                "expected the version header (\"#version: 0.2\")");
            continue;
        }
        if (len && p[len - 1] == '\r')
            return bad_line(err, n, path, line_no, "carriage return (CRLF line endings?)");
        const uint8_t *sp = memchr(p, ' ', len);
        if (!sp || sp == p || sp == p + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - p)))
            return bad_line(err, n, path, line_no, "expected two symbols separated by one space");
        size_t na = (size_t)(sp - p), nb = len - na - 1;
        if (!is_symbol(p, na) || !is_symbol(sp + 1, nb))
            return bad_line(err, n, path, line_no,
                            "a symbol with a control character or invalid UTF-8");
        if (merges < N_MERGES) {
            int32_t a = spelling_find(l, p, na), b = spelling_find(l, sp + 1, nb);
            if (a < 0 || b < 0) {
                size_t shown = a < 0 ? na : nb;
                return bad_line(
                    err, n, path, line_no,
                    "'%.*s' is not a token defined by the byte alphabet or an earlier line",
                    (int)(shown > 64 ? 64 : shown), (const char *)(a < 0 ? p : sp + 1));
            }
            uint8_t joined[1024];
            if (na + nb > sizeof joined)
                return bad_line(err, n, path, line_no, "a merge longer than %zu bytes",
                                sizeof joined);
            memcpy(joined, p, na);
            memcpy(joined + na, sp + 1, nb);
            if (spelling_find(l, joined, na + nb) >= 0)
                return bad_line(err, n, path, line_no, "the merge makes a token defined before");
            if (l->used + na + nb > l->cap)
                return bad_line(err, n, path, line_no, "more symbol text than the file holds");
            spelling_add(l, 2 * N_BYTES + (int32_t)merges, p, na, sp + 1, nb);
            pair_add(t, a, b, (uint32_t)merges);
        }
        merges++;
    }
    if (line_no == 0) {
        set_error(err, n, "clip tokenizer: %s is empty", path);
        return VKI_ERROR_BAD_FILE;
    }
    if (merges < N_MERGES) {
        set_error(err, n, "clip tokenizer: %s has %zu merges; CLIP uses the first %d", path, merges,
                  N_MERGES);
        return VKI_ERROR_BAD_FILE;
    }
    return VKI_OK;
}

static vki_status compile_regex(vki_clip_tokenizer *t, const char *pattern, uint32_t flags,
                                pcre2_code **out, char *err, size_t n)
{
    int code;
    PCRE2_SIZE at;
    pcre2_compile_context *cc = pcre2_compile_context_create(t->pcre_ctx);
    if (!cc) {
        set_error(err, n, "clip tokenizer: out of host memory");
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | flags,
                         &code, &at, cc);
    pcre2_compile_context_free(cc);
    if (*out) return VKI_OK;
    if (code == PCRE2_ERROR_HEAP_FAILED) {
        set_error(err, n, "clip tokenizer: out of host memory");
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(code, msg, sizeof msg);
    set_error(err, n, "clip tokenizer: PCRE2 cannot compile a pattern: %s", (const char *)msg);
    return VKI_ERROR_UNSUPPORTED;
}

vki_status vki_clip_tokenizer_create(const char *vocab_path, const vki_clip_tokenizer_desc *desc,
                                     vki_clip_tokenizer **out, char *err, size_t n)
{
    if (out) *out = NULL;
    if (!vocab_path || !out) {
        set_error(err, n, "clip tokenizer: vocab_path and out are required");
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    vki_allocator a = {default_alloc, default_free, NULL};
    if (desc && desc->allocator) {
        if (!desc->allocator->alloc || !desc->allocator->free) {
            set_error(err, n, "clip tokenizer: the allocator needs both alloc and free");
            return VKI_ERROR_INVALID_ARGUMENT;
        }
        a = *desc->allocator;
    }
    size_t plen = strlen(vocab_path);
    if (plen >= 3 && !strcmp(vocab_path + plen - 3, ".gz")) {
        set_error(err, n,
                  "clip tokenizer: %s is gzip-compressed; decompress it first (gunzip -k), "
                  "or run tools/fetch_models.sh, which stores it decompressed",
                  vocab_path);
        return VKI_ERROR_BAD_FILE;
    }
    uint8_t *file = NULL;
    size_t size = 0;
    vki_status st = read_file(&a, vocab_path, &file, &size, err, n);
    if (st != VKI_OK) return st;
    loader l = {0};
    vki_clip_tokenizer *t = clip_alloc(&a, 1, sizeof *t);
    if (!t) goto oom;
    memset(t, 0, sizeof *t);
    t->alloc = a;
    if (size >= 2 && file[0] == 0x1F && file[1] == 0x8B) {
        set_error(err, n,
                  "clip tokenizer: %s is gzip-compressed; decompress it first (gunzip), "
                  "or run tools/fetch_models.sh, which stores it decompressed",
                  vocab_path);
        st = VKI_ERROR_BAD_FILE;
        goto fail;
    }
    l.cap = size + 8 * N_BYTES;
    l.spell = clip_alloc(&a, l.cap, 1);
    l.off = clip_alloc(&a, N_VOCAB, sizeof(uint32_t));
    l.len = clip_alloc(&a, N_VOCAB, sizeof(uint32_t));
    l.slots = clip_alloc(&a, MAP_SLOTS, sizeof(uint32_t));
    t->pair_key = clip_alloc(&a, MAP_SLOTS, sizeof(uint64_t));
    t->pair_rank = clip_alloc(&a, MAP_SLOTS, sizeof(uint32_t));
    if (!l.spell || !l.off || !l.len || !l.slots || !t->pair_key || !t->pair_rank) goto oom;
    memset(l.slots, 0, MAP_SLOTS * sizeof(uint32_t));
    memset(t->pair_key, 0xFF, MAP_SLOTS * sizeof(uint64_t));
    st = parse_merges(t, &l, file, size, vocab_path, err, n);
    if (st != VKI_OK) goto fail;
    t->pcre_ctx = pcre2_general_context_create(pcre_alloc, pcre_free, &t->alloc);
    if (!t->pcre_ctx) goto oom;
    // Step 5's pattern. After whitespace_clean the only white space left is ' ', so [^ ...]
    // is the reference's [^\s...] without PCRE2's wider \s (it counts U+180E, Python does not).
    st = compile_regex(t, "'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^ \\p{L}\\p{N}]+",
                       PCRE2_CASELESS, &t->pretok, err, n); // the reference's re.IGNORECASE
    if (st == VKI_OK) st = compile_regex(t, "\\s*\\bBREAK\\b\\s*", 0, &t->brk, err, n);
    if (st != VKI_OK) goto fail;
    goto done;
oom:
    set_error(err, n, "clip tokenizer: out of host memory");
    st = VKI_ERROR_OUT_OF_HOST_MEMORY;
fail:
    vki_clip_tokenizer_destroy(t);
    t = NULL;
done:
    clip_free(&a, l.spell);
    clip_free(&a, l.off);
    clip_free(&a, l.len);
    clip_free(&a, l.slots);
    clip_free(&a, file);
    *out = t;
    return st;
}

void vki_clip_tokenizer_destroy(vki_clip_tokenizer *t)
{
    if (!t) return;
    vki_allocator a = t->alloc;
    pcre2_code_free(t->pretok);
    pcre2_code_free(t->brk);
    pcre2_general_context_free(t->pcre_ctx);
    clip_free(&a, t->pair_key);
    clip_free(&a, t->pair_rank);
    clip_free(&a, t);
}

/* ---- BPE and encoding (steps 5 and 6) -------------------------------------------------------- */

typedef struct sym {
    int32_t id;         // -1: merged into its left neighbour
    int32_t prev, next; // -1: none
} sym;

typedef struct cand {
    uint32_t rank, left; // the pair (left, its next) merges by `rank`
} cand;

static bool cand_before(cand a, cand b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.left < b.left);
}

static void heap_push(work *w, vec *h, uint32_t rank, int32_t left)
{
    if (rank == UINT32_MAX || !clip_reserve(w, h, h->n + 1, sizeof(cand))) return;
    cand *c = h->p;
    size_t i = h->n++;
    c[i] = (cand){rank, (uint32_t)left};
    while (i > 0 && cand_before(c[i], c[(i - 1) / 2])) {
        cand tmp = c[i];
        c[i] = c[(i - 1) / 2];
        c[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

static cand heap_pop(vec *h)
{
    cand *c = h->p;
    cand top = c[0];
    c[0] = c[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && cand_before(c[l], c[m])) m = l;
        if (r < h->n && cand_before(c[r], c[m])) m = r;
        if (m == i) break;
        cand tmp = c[i];
        c[i] = c[m];
        c[m] = tmp;
        i = m;
    }
    return top;
}

/* One pre-token's bytes -> ids. Lowest rank first, ties to the leftmost pair: what the
 * reference's "merge every occurrence of the best pair, left to right" gives, because a pair
 * made by a merge always ranks after it (checked at load). */
static void bpe(const vki_clip_tokenizer *t, work *w, const uint8_t *p, size_t n, vec *syms,
                vec *heap, vec *ids)
{
    syms->n = heap->n = 0;
    if (n == 0 || n > INT32_MAX || !clip_reserve(w, syms, n, sizeof(sym))) return;
    sym *s = syms->p;
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){t->byte_id[p[i]] + (i + 1 == n ? N_BYTES : 0), (int32_t)i - 1,
                     i + 1 == n ? -1 : (int32_t)i + 1};
    for (size_t i = 0; i + 1 < n; i++)
        heap_push(w, heap, pair_rank(t, s[i].id, s[i + 1].id), (int32_t)i);
    while (heap->n && !w->oom) {
        cand c = heap_pop(heap);
        int32_t l = (int32_t)c.left, r = s[l].next;
        if (s[l].id < 0 || r < 0 || pair_rank(t, s[l].id, s[r].id) != c.rank) continue; // stale
        s[l].id = 2 * N_BYTES + (int32_t)c.rank;
        s[r].id = -1;
        s[l].next = s[r].next;
        if (s[r].next >= 0) s[s[r].next].prev = l;
        if (s[l].prev >= 0) heap_push(w, heap, pair_rank(t, s[s[l].prev].id, s[l].id), s[l].prev);
        if (s[l].next >= 0) heap_push(w, heap, pair_rank(t, s[l].id, s[s[l].next].id), l);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) clip_put_id(w, ids, s[i].id);
}

/* Appends the ids of text[0, len) to *ids. */
static vki_status encode(const vki_clip_tokenizer *t, work *w, const char *text, size_t len,
                         vec *ids)
{
    vec clean = {0}, syms = {0}, heap = {0};
    vki_status st = VKI_OK;
    vki_clip_clean_text(w, text, len, &clean);
    pcre2_match_data *md =
        w->oom ? NULL : pcre2_match_data_create_from_pattern(t->pretok, t->pcre_ctx);
    if (!md) w->oom = true;
    const uint8_t *s = clean.p;
    for (size_t pos = 0; pos < clean.n && !w->oom;) {
        // The cleaned text is valid UTF-8 by construction: no check on each call (which would
        // make a long text quadratic).
        int rc = pcre2_match(t->pretok, s, clean.n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            st = rc == PCRE2_ERROR_NOMEMORY ? VKI_ERROR_OUT_OF_HOST_MEMORY : VKI_ERROR_UNSUPPORTED;
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= ov[0]) { // the pattern never matches empty text; step on all the same
            pos = ov[0] + 1;
            continue;
        }
        bpe(t, w, s + ov[0], ov[1] - ov[0], &syms, &heap, ids);
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    clip_vec_free(w, &clean);
    clip_vec_free(w, &syms);
    clip_vec_free(w, &heap);
    return w->oom ? VKI_ERROR_OUT_OF_HOST_MEMORY : st;
}

vki_status vki_clip_tokenize(const vki_clip_tokenizer *t, const char *text, int32_t *out_ids,
                             uint32_t capacity, uint32_t *out_count)
{
    if (out_count) *out_count = 0;
    if (!t || !text || !out_count || (!out_ids && capacity)) return VKI_ERROR_INVALID_ARGUMENT;
    size_t len = bounded_len(text, (size_t)MAX_TEXT + 1);
    if (len > MAX_TEXT) return VKI_ERROR_INVALID_ARGUMENT;
    work w = {&t->alloc, false};
    vec ids = {0};
    vki_status st = encode(t, &w, text, len, &ids);
    if (st == VKI_OK) {
        for (size_t i = 0; i < ids.n && i < capacity; i++) out_ids[i] = ((int32_t *)ids.p)[i];
        *out_count = (uint32_t)ids.n; // <= bytes of text
    }
    clip_vec_free(&w, &ids);
    return st;
}

/* ---- AUTOMATIC1111's prompt syntax ----------------------------------------------------------- *
 *
 * parse_prompt_attention (modules/prompt_parser.py), one token of its regex at a time:
 *   \( \) \[ \] \\  the character, as a piece of weight 1 of its own
 *   \ before other  an empty piece: the backslash vanishes
 *   ( [             opens a bracket (remembers the piece count)
 *   :W)             W = [+-]?[.0-9]+, spaces allowed around it (A1111 1.6 on): closes the
 *                   innermost '(', multiplying the pieces since it by W; literal with none open
 *   ) ]             closes the innermost '(' (x 1.1) or '[' (x 1/1.1); literal with none open
 *   other text      split at \s*\bBREAK\b\s* into pieces of weight 1, a BREAK piece of weight -1
 *                   between each two
 * Brackets still open at the end apply to all pieces after them ('(' ones first, then '[').
 * Adjacent pieces of equal weight are joined (their text is tokenized as one); a BREAK piece
 * still of weight exactly -1 starts a new window (one that brackets multiplied is the word
 * "BREAK" with that weight, as in A1111). Weights are doubles multiplied in A1111's order, so
 * they round alike; tokens get them as floats. */

typedef struct piece {
    size_t off, len; // bytes in parser.text
    double w;
} piece;

typedef struct parser {
    const vki_clip_tokenizer *t;
    work *w;
    vec text, pieces;
    size_t round[MAX_DEPTH], square[MAX_DEPTH];
    size_t n_round, n_square;
    pcre2_match_data *md;
    char *err;
    size_t err_size;
} parser;

static void add_piece(parser *ps, const uint8_t *p, size_t n, double weight)
{
    if (!clip_reserve(ps->w, &ps->text, ps->text.n + n, 1) ||
        !clip_reserve(ps->w, &ps->pieces, ps->pieces.n + 1, sizeof(piece)))
        return;
    if (n) memcpy((uint8_t *)ps->text.p + ps->text.n, p, n);
    ((piece *)ps->pieces.p)[ps->pieces.n++] = (piece){ps->text.n, n, weight};
    ps->text.n += n;
}

static vki_status add_text(parser *ps, const uint8_t *p, size_t n)
{
    size_t prev = 0;
    for (;;) {
        int rc = pcre2_match(ps->t->brk, p, n, prev, PCRE2_NO_UTF_CHECK, ps->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            set_error(ps->err, ps->err_size, "clip prompt: BREAK pattern failed (%d)", rc);
            return rc == PCRE2_ERROR_NOMEMORY ? VKI_ERROR_OUT_OF_HOST_MEMORY
                                              : VKI_ERROR_UNSUPPORTED;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ps->md);
        add_piece(ps, p + prev, ov[0] - prev, 1.0);
        add_piece(ps, (const uint8_t *)"BREAK", 5, -1.0);
        prev = ov[1]; // > ov[0]: the pattern holds "BREAK"
    }
    add_piece(ps, p + prev, n - prev, 1.0);
    return VKI_OK;
}

static void multiply_range(parser *ps, size_t start, double m)
{
    piece *p = ps->pieces.p;
    for (size_t i = start; i < ps->pieces.n; i++) p[i].w *= m;
}

/* Skips Python's \s (str.isspace) from s[i]. */
static size_t skip_space(const uint8_t *s, size_t i, size_t n)
{
    for (;;) {
        size_t j = i;
        if (j >= n || !vki_clip_is_space(vki_clip_utf8_next(s, n, &j))) return i;
        i = j;
    }
}

/* Python's float() of [+-]?[.0-9]+: false when it would raise (no digit, two dots). Exact as
 * Python up to 15 significant digits (one correctly rounded division); longer ones may differ
 * in the last bit. */
static bool parse_weight(const uint8_t *s, size_t n, double *out)
{
    size_t i = 0, digits = 0, dots = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    uint64_t m = 0;
    int exp10 = 0;
    for (; i < n; i++) {
        if (s[i] == '.') {
            dots++;
            continue;
        }
        digits++;
        if (m < 100000000000000000ull) {
            m = m * 10 + (uint64_t)(s[i] - '0');
            exp10 -= dots > 0;
        } else {
            exp10 += dots == 0;
        }
    }
    if (!digits || dots > 1) return false;
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double v = (double)m;
    for (; exp10 > 22; exp10 -= 22) v *= 1e22;
    for (; exp10 < -22; exp10 += 22) v /= 1e22;
    v = exp10 >= 0 ? v * p10[exp10] : v / p10[-exp10];
    *out = neg ? -v : v;
    return true;
}

static vki_status parse_prompt(parser *ps, const uint8_t *s, size_t n)
{
    const double round_mult = 1.1, square_mult = 1 / 1.1;
    vki_status st = VKI_OK;
    for (size_t i = 0; i < n && st == VKI_OK && !ps->w->oom;) {
        uint8_t c = s[i];
        if (c == '\\') {
            bool escape = i + 1 < n && memchr("()[]\\", s[i + 1], 5);
            add_piece(ps, s + i + 1, escape, 1.0);
            i += 1 + escape;
        } else if (c == '(' || c == '[') {
            size_t *depth = c == '(' ? &ps->n_round : &ps->n_square;
            if (*depth == MAX_DEPTH) {
                set_error(ps->err, ps->err_size,
                          "clip prompt: more than %d '%c' open at once (byte %zu)", MAX_DEPTH, c,
                          i);
                return VKI_ERROR_INVALID_ARGUMENT;
            }
            (c == '(' ? ps->round : ps->square)[(*depth)++] = ps->pieces.n;
            i++;
        } else if (c == ':') {
            size_t ws = skip_space(s, i + 1, n), we = ws;
            if (we < n && (s[we] == '+' || s[we] == '-')) we++;
            while (we < n && (s[we] == '.' || (s[we] >= '0' && s[we] <= '9'))) we++;
            size_t close = skip_space(s, we, n);
            bool digits = we > ws && !(we == ws + 1 && (s[ws] == '+' || s[ws] == '-'));
            if (!digits || close >= n || s[close] != ')') {
                st = add_text(ps, s + i, 1); // a lone ':'
                i++;
                continue;
            }
            if (!ps->n_round) {
                st = add_text(ps, s + i, close + 1 - i);
            } else {
                double weight;
                if (!parse_weight(s + ws, we - ws, &weight)) {
                    // A1111's float() raises here and the prompt fails; so does this.
                    set_error(ps->err, ps->err_size,
                              "clip prompt: '%.*s' at byte %zu is not a number",
                              (int)(we - ws > 40 ? 40 : we - ws), (const char *)s + ws, ws);
                    return VKI_ERROR_INVALID_ARGUMENT;
                }
                multiply_range(ps, ps->round[--ps->n_round], weight);
            }
            i = close + 1;
        } else if (c == ')' && ps->n_round) {
            multiply_range(ps, ps->round[--ps->n_round], round_mult);
            i++;
        } else if (c == ']' && ps->n_square) {
            multiply_range(ps, ps->square[--ps->n_square], square_mult);
            i++;
        } else if (c == ')' || c == ']') {
            st = add_text(ps, s + i, 1);
            i++;
        } else {
            size_t e = i;
            while (e < n && !memchr("\\()[]:", s[e], 6)) e++;
            st = add_text(ps, s + i, e - i);
            i = e;
        }
    }
    for (size_t k = 0; k < ps->n_round; k++) multiply_range(ps, ps->round[k], round_mult);
    for (size_t k = 0; k < ps->n_square; k++) multiply_range(ps, ps->square[k], square_mult);
    if (st == VKI_OK && ps->pieces.n == 0) add_piece(ps, (const uint8_t *)"", 0, 1.0);
    // Join runs of equal weight, in place: pieces are in text order, so a run's text is
    // contiguous already.
    piece *p = ps->pieces.p;
    size_t m = 0;
    for (size_t k = 0; k < ps->pieces.n; k++) {
        if (m && p[m - 1].w == p[k].w)
            p[m - 1].len += p[k].len;
        else
            p[m++] = p[k];
    }
    ps->pieces.n = m;
    return ps->w->oom ? VKI_ERROR_OUT_OF_HOST_MEMORY : st;
}

/* sd_hijack_clip.py's tokenize_line: 75-token chunks, each [start] tokens [end] padded. */
typedef struct windows {
    int32_t *ids; // [MAX_WINDOWS * 77]
    float *weights;
    uint32_t n;
    int32_t pad;
    int32_t chunk[WINDOW];
    float chunk_w[WINDOW];
    uint32_t len;
    int32_t last_comma;
} windows;

static bool next_window(windows *win)
{
    if (win->n == MAX_WINDOWS) return false;
    int32_t *ids = win->ids + (size_t)win->n * VKI_CLIP_CONTEXT;
    float *wt = win->weights + (size_t)win->n * VKI_CLIP_CONTEXT;
    ids[0] = VKI_CLIP_BOS;
    wt[0] = 1.0f;
    for (uint32_t i = 0; i < WINDOW; i++) {
        // A1111 pads with the end token; SD 2.x's pad id replaces all after the first end token.
        ids[1 + i] = i < win->len ? win->chunk[i] : i == win->len ? VKI_CLIP_EOS : win->pad;
        wt[1 + i] = i < win->len ? win->chunk_w[i] : 1.0f;
    }
    ids[VKI_CLIP_CONTEXT - 1] = win->len == WINDOW ? VKI_CLIP_EOS : win->pad;
    wt[VKI_CLIP_CONTEXT - 1] = 1.0f;
    win->n++;
    win->len = 0;
    win->last_comma = -1;
    return true;
}

static bool add_token(windows *win, int32_t id, float weight)
{
    if (id == COMMA_ID) {
        win->last_comma = (int32_t)win->len;
    } else if (win->len == WINDOW && win->last_comma != -1 &&
               WINDOW - win->last_comma <= COMMA_BACKTRACK) {
        // A full window and a comma among its last 20 tokens: what follows the comma moves
        // to the next window.
        uint32_t from = (uint32_t)win->last_comma + 1, moved = WINDOW - from;
        int32_t ids[WINDOW];
        float wts[WINDOW];
        memcpy(ids, win->chunk + from, moved * sizeof ids[0]);
        memcpy(wts, win->chunk_w + from, moved * sizeof wts[0]);
        win->len = from;
        if (!next_window(win)) return false;
        memcpy(win->chunk, ids, moved * sizeof ids[0]);
        memcpy(win->chunk_w, wts, moved * sizeof wts[0]);
        win->len = moved;
    }
    if (win->len == WINDOW && !next_window(win)) return false;
    win->chunk[win->len] = id;
    win->chunk_w[win->len++] = weight;
    return true;
}

vki_status vki_clip_prompt_encode(const vki_clip_tokenizer *t, const char *prompt, int32_t pad_id,
                                  vki_clip_prompt *out, char *err, size_t n)
{
    if (out) *out = (vki_clip_prompt){0};
    if (!t || !prompt || !out || pad_id < 0 || pad_id >= N_VOCAB) {
        set_error(err, n, "clip prompt: tokenizer, prompt and out are required; pad_id < %d",
                  N_VOCAB);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    size_t len = bounded_len(prompt, (size_t)MAX_PROMPT + 1);
    if (len > MAX_PROMPT) {
        set_error(err, n, "clip prompt: longer than %u bytes", MAX_PROMPT);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    work w = {&t->alloc, false};
    parser ps = {.t = t, .w = &w, .err = err, .err_size = n};
    vec src = {0}, ids = {0};
    windows win = {.pad = pad_id, .last_comma = -1};
    vki_status st = VKI_OK;
    // Syntax characters are ASCII; invalid UTF-8 becomes U+FFFD first, so the BREAK pattern
    // and the tokenizer see valid text.
    for (size_t i = 0; i < len && !w.oom;)
        vki_clip_put_utf8(&w, &src, vki_clip_utf8_next((const uint8_t *)prompt, len, &i));
    ps.md = pcre2_match_data_create_from_pattern(t->brk, t->pcre_ctx);
    win.ids = clip_alloc(&t->alloc, (size_t)MAX_WINDOWS * VKI_CLIP_CONTEXT, sizeof(int32_t));
    win.weights = clip_alloc(&t->alloc, (size_t)MAX_WINDOWS * VKI_CLIP_CONTEXT, sizeof(float));
    // Room for one byte each, so that neither is NULL when the prompt is empty.
    clip_reserve(&w, &src, 1, 1);
    clip_reserve(&w, &ps.text, 1, 1);
    if (w.oom || !ps.md || !win.ids || !win.weights) goto oom;
    st = parse_prompt(&ps, src.p, src.n);
    if (st != VKI_OK) goto fail;
    const piece *p = ps.pieces.p;
    for (size_t k = 0; k < ps.pieces.n; k++) {
        const char *text = (const char *)ps.text.p + p[k].off;
        if (p[k].w == -1.0 && p[k].len == 5 && !memcmp(text, "BREAK", 5)) {
            if (!next_window(&win)) goto too_long;
            continue;
        }
        ids.n = 0;
        st = encode(t, &w, text, p[k].len, &ids);
        if (st != VKI_OK) goto fail;
        float weight = (float)p[k].w;
        if (ids.n && !isfinite(weight)) {
            set_error(err, n,
                      "clip prompt: an emphasis weight overflows (nested too deep or too large)");
            st = VKI_ERROR_INVALID_ARGUMENT;
            goto fail;
        }
        for (size_t i = 0; i < ids.n; i++)
            if (!add_token(&win, ((int32_t *)ids.p)[i], weight)) goto too_long;
    }
    if ((win.len || !win.n) && !next_window(&win)) goto too_long;
    out->n_windows = win.n;
    out->ids = win.ids;
    out->weights = win.weights;
    win.ids = NULL;
    win.weights = NULL;
    goto done;
too_long:
    set_error(err, n, "clip prompt: needs more than %d windows of %d tokens", MAX_WINDOWS, WINDOW);
    st = VKI_ERROR_INVALID_ARGUMENT;
    goto fail;
oom:
    set_error(err, n, "clip prompt: out of host memory");
    st = VKI_ERROR_OUT_OF_HOST_MEMORY;
fail:
    if (st == VKI_ERROR_OUT_OF_HOST_MEMORY) set_error(err, n, "clip prompt: out of host memory");
    if (st == VKI_ERROR_UNSUPPORTED)
        set_error(err, n, "clip prompt: the pre-tokenizer regex failed");
done:
    pcre2_match_data_free(ps.md);
    clip_free(&t->alloc, win.ids);
    clip_free(&t->alloc, win.weights);
    clip_vec_free(&w, &src);
    clip_vec_free(&w, &ids);
    clip_vec_free(&w, &ps.text);
    clip_vec_free(&w, &ps.pieces);
    return st;
}

void vki_clip_prompt_free(const vki_clip_tokenizer *t, vki_clip_prompt *p)
{
    if (!p) return;
    if (t) {
        clip_free(&t->alloc, p->ids);
        clip_free(&t->alloc, p->weights);
    }
    *p = (vki_clip_prompt){0};
}
