/* Tokenizer: byte-level BPE and SentencePiece BPE from a GGUF vocabulary, following llama.cpp's
 * llama-vocab rules (the golden tests compare with its ids).
 *
 * Encoding runs in three stages:
 *   1. special tokens are cut out of the text, longest first over the whole text (llama.cpp's
 *      order: a longer token wins even where a shorter one starts earlier), leaving fragments
 *      of plain text between them. A CONTROL or UNKNOWN token is not cut where it overlaps a
 *      plain span (text a user typed; parse_special off is one span over the whole text);
 *   2. BPE only: each fragment is split by the pre-tokenizer's regexes, one after another, each
 *      regex splitting every piece the previous one left ("isolated": matches and the gaps
 *      between them both become pieces). Each regex sees only its piece, so a lookahead never
 *      looks past it;
 *   3. each piece (BPE) or fragment (SentencePiece) is merged pairwise from a priority queue:
 *      lowest merge rank first (BPE) or highest token score first (SentencePiece), ties to the
 *      leftmost pair. Queue entries go stale when a neighbour merges; a stale entry is
 *      recognised by its two symbols' combined size and skipped. O(n log n) per piece, so a
 *      long run of one character does not go quadratic.
 *
 * BPE symbols carry token ids: a merge (a, b) is looked up by the pair of ids and gives the id
 * of its result, both found once at load, so merging never hashes strings. */
#include "tokenizer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT (1u << 30) // longest text encode takes: ids then fit in uint32 however it goes

/* One merge candidate. key: BPE rank, or minus the SentencePiece score (smaller pops first). */
typedef struct bigram {
    double key;
    uint32_t left, right, size;
    int32_t id; // the merged token
} bigram;

typedef struct symbol {
    uint32_t off, len; // into the text being merged; len 0: merged into its left neighbour
    int32_t prev, next;
    int32_t id; // the token it spells; -1: none (BPE) or not yet looked up (SentencePiece)
} symbol;

typedef struct frag {
    uint32_t off, len;
    int32_t id;    // >= 0: a special token; -1: text [off, off + len)
    uint32_t next; // index of the next fragment; UINT32_MAX ends the chain
} frag;

typedef struct span {
    uint32_t off, len;
} span;

/* The plain spans of an encode call: in order, disjoint, none empty, inside the text. */
typedef struct plain_spans {
    const vki_text_span *s;
    uint32_t n;
} plain_spans;

typedef vki_tok_buf buf;
typedef vki_tok_token token;

/* ---- Allocation and errors ------------------------------------------------------------------- */

/* Makes room for `need` elements, keeping the contents. */
static bool grow(vki_tokenizer *t, buf *b, size_t need, size_t elem)
{
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    void *p = vki_tok_alloc(&t->alloc, cap, elem);
    if (!p) return false;
    if (b->p) memcpy(p, b->p, b->cap * elem);
    vki_tok_free(&t->alloc, b->p);
    b->p = p;
    b->cap = cap;
    return true;
}

static vki_status fail(vki_tokenizer *t, vki_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->last_error, sizeof t->last_error, fmt, ap);
    va_end(ap);
    return st;
}

static vki_status no_memory(vki_tokenizer *t)
{
    return fail(t, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
}

/* Appends the pieces `re` splits text[p.off, p.off + p.len) into to *out (count *n). */
static vki_status split(vki_tokenizer *t, pcre2_code *re, const char *text, span p, buf *out,
                        size_t *n)
{
    const PCRE2_SPTR subject = (PCRE2_SPTR)text + p.off;
    size_t pos = 0, gap = 0;
    while (pos < p.len) {
        int rc = pcre2_match(re, subject, p.len, pos, 0, t->match, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return fail(t,
                        rc == PCRE2_ERROR_NOMEMORY ? VKI_ERROR_OUT_OF_HOST_MEMORY
                                                   : VKI_ERROR_UNSUPPORTED,
                        "pre-tokenizer regex failed: %s", (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->match);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { // none of the regexes matches empty text; step over it all the same
            pos = ms + 1;
            continue;
        }
        if (!grow(t, out, *n + 2, sizeof(span))) return no_memory(t);
        span *s = out->p;
        if (ms > gap) s[(*n)++] = (span){p.off + (uint32_t)gap, (uint32_t)(ms - gap)};
        s[(*n)++] = (span){p.off + (uint32_t)ms, (uint32_t)(me - ms)};
        gap = pos = me;
    }
    if (gap < p.len) {
        if (!grow(t, out, *n + 1, sizeof(span))) return no_memory(t);
        ((span *)out->p)[(*n)++] = (span){p.off + (uint32_t)gap, (uint32_t)(p.len - gap)};
    }
    return VKI_OK;
}

/* ---- Output ---------------------------------------------------------------------------------- */

typedef struct sink {
    int32_t *ids;
    uint32_t capacity;
    uint32_t count; // may run past capacity: the count needed
} sink;

static void emit(sink *s, int32_t id)
{
    if (s->count < s->capacity) s->ids[s->count] = id;
    s->count++;
}

/* ---- Merging --------------------------------------------------------------------------------- */

static bool bigram_before(const bigram *a, const bigram *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static bool heap_push(vki_tokenizer *t, size_t *n, bigram b)
{
    if (!grow(t, &t->heap, *n + 1, sizeof b)) return false;
    bigram *h = t->heap.p;
    size_t i = (*n)++;
    while (i > 0 && bigram_before(&b, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = b;
    return true;
}

static bigram heap_pop(vki_tokenizer *t, size_t *n)
{
    bigram *h = t->heap.p;
    bigram top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && bigram_before(&h[c + 1], &h[c])) c++;
        if (!bigram_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Queues the merge of symbols `l` and `r` if the vocabulary has one. */
static bool try_pair(vki_tokenizer *t, const char *text, size_t *n_heap, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return true;
    const symbol *s = t->symbols.p;
    bigram b = {.left = (uint32_t)l, .right = (uint32_t)r, .size = s[l].len + s[r].len};
    if (t->kind == VKI_TOK_BPE) {
        uint32_t rank;
        if (s[l].id < 0 || s[r].id < 0 ||
            !vki_tok_pairs_find(&t->merges, s[l].id, s[r].id, &rank, &b.id))
            return true;
        b.key = rank;
    } else {
        // The two symbols are adjacent in the text, so their joined spelling is right there.
        b.id = vki_tok_map_find(&t->by_text, text + s[l].off, b.size);
        if (b.id < 0) return true;
        b.key = -(double)t->tokens[b.id].score;
    }
    return heap_push(t, n_heap, b);
}

/* Merges the symbols of `text` (already in t->symbols, `n` of them, chained) to a fixed point. */
static vki_status merge(vki_tokenizer *t, const char *text, size_t n)
{
    size_t n_heap = 0;
    for (size_t i = 1; i < n; i++)
        if (!try_pair(t, text, &n_heap, (int32_t)i - 1, (int32_t)i)) return no_memory(t);
    while (n_heap) {
        bigram b = heap_pop(t, &n_heap);
        symbol *s = t->symbols.p, *l = &s[b.left], *r = &s[b.right];
        if (l->len == 0 || r->len == 0 || l->next != (int32_t)b.right || l->len + r->len != b.size)
            continue; // stale: a neighbour merged since this pair was queued
        l->len += r->len;
        l->id = b.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = (int32_t)b.left;
        if (!try_pair(t, text, &n_heap, l->prev, (int32_t)b.left) ||
            !try_pair(t, text, &n_heap, (int32_t)b.left, l->next))
            return no_memory(t);
    }
    return VKI_OK;
}

/* ---- Byte-level BPE -------------------------------------------------------------------------- */

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6)); // GPT-2's characters are all below U+0800
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static vki_status bpe_piece(vki_tokenizer *t, const char *text, span p, sink *out)
{
    const uint8_t *bytes = (const uint8_t *)text + p.off;
    if (t->ignore_merges) {
        // Llama 3: a piece that is a whole token is that token.
        if (!grow(t, &t->chars, (size_t)p.len * 2, 1)) return no_memory(t);
        char *m = t->chars.p;
        size_t n = 0;
        for (uint32_t i = 0; i < p.len; i++) n += put_utf8(m + n, t->byte_cp[bytes[i]]);
        int32_t id = vki_tok_map_find(&t->by_text, m, n);
        if (id >= 0) {
            emit(out, id);
            return VKI_OK;
        }
    }
    // One symbol per byte: each byte is one character of GPT-2's alphabet.
    if (!grow(t, &t->symbols, p.len, sizeof(symbol))) return no_memory(t);
    symbol *s = t->symbols.p;
    for (uint32_t i = 0; i < p.len; i++)
        s[i] = (symbol){i, 1, (int32_t)i - 1, i + 1 < p.len ? (int32_t)i + 1 : -1,
                        t->byte_id[bytes[i]]};
    VKI_TRY(merge(t, (const char *)bytes, p.len));
    s = t->symbols.p;
    // A byte missing from the vocabulary gives nothing, as in llama.cpp.
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (s[i].id >= 0) emit(out, s[i].id);
    return VKI_OK;
}

static vki_status bpe_fragment(vki_tokenizer *t, const char *text, span f, sink *out)
{
    buf *cur = &t->spans_a, *next = &t->spans_b;
    if (!grow(t, cur, 1, sizeof(span))) return no_memory(t);
    ((span *)cur->p)[0] = f;
    size_t n = 1;
    for (uint32_t r = 0; r < t->n_regex; r++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            VKI_TRY(split(t, t->regex[r], text, ((span *)cur->p)[i], next, &m));
        buf *x = cur;
        cur = next;
        next = x;
        n = m;
    }
    for (size_t i = 0; i < n; i++) VKI_TRY(bpe_piece(t, text, ((span *)cur->p)[i], out));
    return VKI_OK;
}

/* ---- SentencePiece --------------------------------------------------------------------------- */

/* Bytes of the valid UTF-8 character at s (n > 0 bytes available); 1 for an invalid one. */
static size_t utf8_len(const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t len = u[0] < 0x80                    ? 1
                 : u[0] >= 0xc2 && u[0] <= 0xdf ? 2
                 : u[0] >= 0xe0 && u[0] <= 0xef ? 3
                 : u[0] >= 0xf0 && u[0] <= 0xf4 ? 4
                                                : 0;
    if (len <= 1 || len > n) return 1;
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    uint8_t lo = u[0] == 0xe0 ? 0xa0 : u[0] == 0xf0 ? 0x90 : 0x80;
    uint8_t hi = u[0] == 0xed ? 0x9f : u[0] == 0xf4 ? 0x8f : 0xbf;
    if (u[1] < lo || u[1] > hi) return 1;
    for (size_t i = 2; i < len; i++)
        if ((u[i] & 0xc0) != 0x80) return 1;
    return len;
}

static vki_status spm_fragment(vki_tokenizer *t, const char *text, span f, bool prefix_space,
                               sink *out)
{
    // Spaces as U+2581 (3 bytes each), and the prefix space.
    size_t cap = ((size_t)f.len + 1) * 3;
    if (!grow(t, &t->chars, cap, 1)) return no_memory(t);
    char *e = t->chars.p;
    size_t n = 0;
    for (uint32_t i = 0; i < f.len + (prefix_space ? 1u : 0u); i++) {
        char c = prefix_space ? (i == 0 ? ' ' : text[f.off + i - 1]) : text[f.off + i];
        if (c == ' ') {
            memcpy(e + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            e[n++] = c;
        }
    }
    if (n == 0) return VKI_OK;
    // One symbol per UTF-8 character; each byte of an invalid sequence is a symbol of its own
    // (llama.cpp goes by the lead byte alone, which on invalid input can swallow the next
    // character into byte tokens and lose a space; on valid UTF-8 both agree).
    if (!grow(t, &t->symbols, n, sizeof(symbol))) return no_memory(t);
    symbol *s = t->symbols.p;
    size_t k = 0;
    for (size_t off = 0; off < n; k++) {
        size_t len = utf8_len(e + off, n - off);
        s[k] = (symbol){(uint32_t)off, (uint32_t)len, (int32_t)k - 1,
                        off + len < n ? (int32_t)k + 1 : -1, -1};
        off += len;
    }
    VKI_TRY(merge(t, e, k));
    s = t->symbols.p;
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        int32_t id = s[i].id >= 0 ? s[i].id : vki_tok_map_find(&t->by_text, e + s[i].off, s[i].len);
        if (id >= 0) {
            emit(out, id);
            continue;
        }
        for (uint32_t j = 0; j < s[i].len; j++) { // byte fallback
            int32_t b = t->byte_id[(uint8_t)e[s[i].off + j]];
            if (b < 0) b = t->unk;
            if (b >= 0) emit(out, b);
        }
    }
    return VKI_OK;
}

/* ---- Special tokens -------------------------------------------------------------------------- */

/* Whether token `tk` spelled at text[at, at + len) must stay text: a CONTROL or UNKNOWN token
 * that overlaps a plain span by a byte or more, so that neither a token inside typed text nor
 * one running from markup into it (or out of it) is recognised. The spans' ends increase, so a
 * binary search finds the first one ending after `at`: the token overlaps it if it starts
 * before the token's end, and no later span when it does not. */
static bool is_plain(const plain_spans *p, const token *tk, uint32_t at, uint32_t len)
{
    if (tk->type == VKI_TOKEN_TYPE_USER_DEFINED || !p->n) return false;
    uint32_t lo = 0, hi = p->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->s[mid].offset + p->s[mid].length <= at) lo = mid + 1;
        else hi = mid;
    }
    return lo < p->n && p->s[lo].offset < (size_t)at + len;
}

/* Gemma has 6,400 special tokens, most of them starting "<u"; bucketing them by their first one
 * or two bytes (vki_tok_bucket) keeps the scan of a text at a few comparisons per position. */
/* Collects into t->present, longest first, the special tokens that occur anywhere in the text
 * outside the plain spans. Only those can be cut out of any fragment, so the partition below
 * looks at no others. */
static vki_status find_present(vki_tokenizer *t, const char *text, uint32_t len,
                               const plain_spans *plain, size_t *n_present)
{
    *n_present = 0;
    if (!t->n_specials || !len) return VKI_OK;
    if (!grow(t, &t->present, t->n_specials, sizeof(uint32_t))) return no_memory(t);
    uint32_t *rank = t->present.p; // ranks in t->specials of the tokens found
    for (uint32_t i = 0; i < len; i++) {
        uint32_t heads[2] = {i + 1 < len ? vki_tok_bucket(text + i, 2) : UINT32_MAX,
                             65536u + (uint8_t)text[i]};
        for (int h = 0; h < 2; h++) {
            if (heads[h] == UINT32_MAX) continue;
            for (uint32_t k = t->special_head[heads[h]]; k != UINT32_MAX; k = t->special_next[k]) {
                const token *tk = &t->tokens[t->specials[k]];
                if (t->special_seen[k] || tk->len > len - i ||
                    memcmp(t->text + tk->off, text + i, tk->len) != 0)
                    continue;
                if (is_plain(plain, tk, i, tk->len)) continue;
                t->special_seen[k] = 1;
                rank[(*n_present)++] = k;
            }
        }
    }
    for (size_t i = 0; i < *n_present; i++) t->special_seen[rank[i]] = 0;
    // Longest first is rank order; few tokens are present in any real text, and when many are
    // they were mostly found in order already.
    for (size_t i = 1; i < *n_present; i++) {
        uint32_t v = rank[i];
        size_t j = i;
        for (; j > 0 && rank[j - 1] > v; j--) rank[j] = rank[j - 1];
        rank[j] = v;
    }
    return VKI_OK;
}

/* The first occurrence of needle (nlen >= 1) in hay, or NULL (memmem is not ISO C). */
static const char *find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    for (const char *p = hay, *end = hay + hlen; (size_t)(end - p) >= nlen; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) - nlen + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nlen) == 0) return p;
    }
    return NULL;
}

/* The first occurrence of special token `tk` in fragment `f` that may be cut out (not plain),
 * or NULL. A plain occurrence stays text; the search goes on from its next byte, as a later
 * occurrence may overlap it. */
static const char *find_token(const vki_tokenizer *t, const char *text, frag f, const token *tk,
                              const plain_spans *plain)
{
    const char *p = text + f.off, *end = p + f.len, *spell = t->text + tk->off;
    for (const char *hit; (hit = find_bytes(p, (size_t)(end - p), spell, tk->len)); p = hit + 1)
        if (!is_plain(plain, tk, (uint32_t)(hit - text), tk->len)) return hit;
    return NULL;
}

/* Splits the text into a chain of fragments at the special tokens (llama.cpp's
 * tokenizer_st_partition): each special token in turn, longest first, is cut out of every text
 * fragment wherever it occurs outside the plain spans. Returns the chain's first fragment in
 * t->frags. */
static vki_status partition(vki_tokenizer *t, const char *text, uint32_t len,
                            const plain_spans *plain)
{
    size_t n_present;
    VKI_TRY(find_present(t, text, len, plain, &n_present));
    if (!grow(t, &t->frags, 1, sizeof(frag))) return no_memory(t);
    ((frag *)t->frags.p)[0] = (frag){0, len, -1, UINT32_MAX};
    size_t n = 1;
    for (size_t p = 0; p < n_present; p++) {
        int32_t id = t->specials[((uint32_t *)t->present.p)[p]];
        uint32_t slen = t->tokens[id].len;
        for (uint32_t i = 0; i != UINT32_MAX; i = ((frag *)t->frags.p)[i].next) {
            frag f = ((frag *)t->frags.p)[i];
            if (f.id >= 0 || f.len < slen) continue;
            const char *hit = find_token(t, text, f, &t->tokens[id], plain);
            if (!hit) continue;
            // [before] stays in place as fragment i; the token and [after] are new ones.
            if (!grow(t, &t->frags, n + 2, sizeof(frag))) return no_memory(t);
            frag *fs = t->frags.p;
            uint32_t at = (uint32_t)(hit - text), end = f.off + f.len, after = at + slen;
            uint32_t tok = (uint32_t)n++, rest = (uint32_t)n++;
            fs[rest] = (frag){after, end - after, -1, f.next};
            fs[tok] = (frag){at, slen, id, rest};
            fs[i].len = at - f.off;
            fs[i].next = tok;
            // fragment `rest` comes next in the walk and is searched for further occurrences.
        }
    }
    return VKI_OK;
}

/* ---- Encoding -------------------------------------------------------------------------------- */

/* Checks the arguments every encode takes; the text fits uint32 after it. */
static vki_status check_encode(vki_tokenizer *t, const char *text, size_t length,
                               const int32_t *out_ids, uint32_t capacity, const uint32_t *out_count)
{
    if (!out_count || (!text && length) || (!out_ids && capacity))
        return fail(t, VKI_ERROR_INVALID_ARGUMENT, "encode: NULL text, ids or count");
    if (length > MAX_TEXT)
        return fail(t, VKI_ERROR_INVALID_ARGUMENT,
                    "encode: text of %zu bytes is over the 1 GiB limit", length);
    return VKI_OK;
}

/* The one encoding path: the arguments are checked, `plain` in order, disjoint, none empty. */
static vki_status encode(vki_tokenizer *t, const char *text, size_t length, bool add_bos,
                         const plain_spans *plain, int32_t *out_ids, uint32_t capacity,
                         uint32_t *out_count)
{
    sink out = {out_ids, capacity, 0};
    if (add_bos && t->bos >= 0) emit(&out, t->bos);
    if (length) VKI_TRY(partition(t, text, (uint32_t)length, plain));
    bool prev_special = true; // SentencePiece puts the prefix space after a special token too
    for (uint32_t i = 0; length && i != UINT32_MAX; i = ((frag *)t->frags.p)[i].next) {
        frag f = ((frag *)t->frags.p)[i];
        if (f.id >= 0) {
            emit(&out, f.id);
            prev_special = true;
            continue;
        }
        if (f.len == 0) continue;
        span s = {f.off, f.len};
        if (t->kind == VKI_TOK_BPE) VKI_TRY(bpe_fragment(t, text, s, &out));
        else VKI_TRY(spm_fragment(t, text, s, t->add_space_prefix && prev_special, &out));
        prev_special = false;
    }
    *out_count = out.count;
    if (out.count > capacity)
        return fail(t, VKI_ERROR_INVALID_ARGUMENT, "encode: the text needs %u ids, room for %u",
                    out.count, capacity);
    return VKI_OK;
}

vki_status vki_tokenizer_encode(vki_tokenizer *t, const char *text, size_t length, bool add_bos,
                                bool parse_special, int32_t *out_ids, uint32_t capacity,
                                uint32_t *out_count)
{
    if (!t) return VKI_ERROR_INVALID_ARGUMENT;
    t->last_error[0] = 0;
    VKI_TRY(check_encode(t, text, length, out_ids, capacity, out_count));
    // parse_special off: the whole text is one plain span.
    vki_text_span whole = {0, length};
    plain_spans plain = {&whole, !parse_special && length ? 1u : 0u};
    return encode(t, text, length, add_bos, &plain, out_ids, capacity, out_count);
}

/* Checks the caller's plain spans: in order, disjoint and inside the text. Returns through
 * *out_empty whether any is empty (those the encoding must not see). */
static vki_status check_spans(vki_tokenizer *t, size_t length, const vki_text_span *s, uint32_t n,
                              bool *out_empty)
{
    *out_empty = false;
    if (n && !s) return fail(t, VKI_ERROR_INVALID_ARGUMENT, "encode: NULL plain spans");
    size_t end = 0; // of the span before
    for (uint32_t i = 0; i < n; i++) {
        if (s[i].offset < end || s[i].offset > length || s[i].length > length - s[i].offset)
            return fail(t, VKI_ERROR_INVALID_ARGUMENT,
                        "encode: plain span %u (%zu bytes at %zu) is out of order or outside "
                        "the %zu-byte text",
                        i, s[i].length, s[i].offset, length);
        end = s[i].offset + s[i].length;
        if (!s[i].length) *out_empty = true;
    }
    return VKI_OK;
}

vki_status vki_tokenizer_encode_spans(vki_tokenizer *t, const char *text, size_t length,
                                      bool add_bos, const vki_text_span *plain, uint32_t n_plain,
                                      int32_t *out_ids, uint32_t capacity, uint32_t *out_count)
{
    if (!t) return VKI_ERROR_INVALID_ARGUMENT;
    t->last_error[0] = 0;
    VKI_TRY(check_encode(t, text, length, out_ids, capacity, out_count));
    bool empty;
    VKI_TRY(check_spans(t, length, plain, n_plain, &empty));
    if (!empty)
        return encode(t, text, length, add_bos, &(plain_spans){plain, n_plain}, out_ids, capacity,
                      out_count);
    // The binary search of is_plain needs every span to hold a byte: a copy without the empty
    // ones (formatting never makes any, so this is the rare path).
    vki_text_span *copy = vki_tok_alloc(&t->alloc, n_plain, sizeof *copy);
    if (!copy) return no_memory(t);
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_plain; i++)
        if (plain[i].length) copy[n++] = plain[i];
    vki_status st =
        encode(t, text, length, add_bos, &(plain_spans){copy, n}, out_ids, capacity, out_count);
    vki_tok_free(&t->alloc, copy);
    return st;
}

/* ---- Chat prompts ---------------------------------------------------------------------------- */

vki_status vki_chat_encode(vki_tokenizer *t, const vki_chat_prompt *p, int32_t *out_ids,
                           uint32_t capacity, uint32_t *out_count)
{
    if (!t) return VKI_ERROR_INVALID_ARGUMENT;
    t->last_error[0] = 0;
    if (!p || !out_count || (!out_ids && capacity))
        return fail(t, VKI_ERROR_INVALID_ARGUMENT, "chat: NULL prompt, ids or count");
    // A first call for the sizes (a 1-byte buffer tells an empty text from a failure), then
    // the text and its spans for the encoding.
    char probe[1];
    size_t length = 0;
    uint32_t n_spans = 0;
    vki_status st = vki_chat_format_spans(p, probe, sizeof probe, &length, NULL, 0, &n_spans);
    if (st == VKI_ERROR_UNSUPPORTED)
        return fail(t, st, "chat: template family '%s' is not one vkinfer writes",
                    vki_chat_template_name(p->tmpl));
    if (st && length == 0)
        return fail(t, st, "chat: a NULL message, role or content, or over 2^31 - 1 messages");
    if (length > MAX_TEXT)
        return fail(t, VKI_ERROR_INVALID_ARGUMENT,
                    "chat: the conversation's %zu bytes are over the 1 GiB limit", length);
    char *text = vki_tok_alloc(&t->alloc, length + 1, 1);
    vki_text_span *spans = vki_tok_alloc(&t->alloc, n_spans ? n_spans : 1, sizeof *spans);
    if (!text || !spans) {
        st = no_memory(t);
        goto done;
    }
    st = vki_chat_format_spans(p, text, length + 1, &length, spans, n_spans, &n_spans);
    if (st) {
        st = fail(t, st, "chat: formatting the conversation failed");
        goto done;
    }
    st = vki_tokenizer_encode_spans(t, text, length, vki_tokenizer_add_bos(t), spans, n_spans,
                                    out_ids, capacity, out_count);
done:
    vki_tok_free(&t->alloc, text);
    vki_tok_free(&t->alloc, spans);
    return st;
}

/* ---- Decoding and accessors ------------------------------------------------------------------ */

static size_t copy_out(char *out, size_t size, size_t at, const char *src, size_t n)
{
    if (at < size) memcpy(out + at, src, n < size - at ? n : size - at);
    return at + n;
}

size_t vki_tokenizer_piece(const vki_tokenizer *t, int32_t id, char *out, size_t size)
{
    if (!t || id < 0 || (uint32_t)id >= t->n_vocab) return 0;
    const token *tk = &t->tokens[id];
    const char *s = t->text + tk->off;
    switch (tk->type) {
    case VKI_TOKEN_TYPE_USER_DEFINED: return copy_out(out, size, 0, s, tk->len);
    case VKI_TOKEN_TYPE_UNDEFINED:
    case VKI_TOKEN_TYPE_NORMAL: break;
    case VKI_TOKEN_TYPE_BYTE:
        if (t->kind == VKI_TOK_SPM) {
            unsigned v;
            if (tk->len == 6 && sscanf(s, "<0x%2X>", &v) == 1) {
                char c = (char)v;
                return copy_out(out, size, 0, &c, 1);
            }
        }
        return 0;
    default: return 0; // control, unknown, unused
    }
    size_t n = 0;
    if (t->kind == VKI_TOK_SPM) {
        for (uint32_t i = 0; i < tk->len;) {
            if (tk->len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                n = copy_out(out, size, n, " ", 1);
                i += 3;
            } else {
                n = copy_out(out, size, n, s + i++, 1);
            }
        }
        return n;
    }
    // Byte-level: each character of GPT-2's alphabet back to its byte; anything else verbatim.
    for (uint32_t i = 0; i < tk->len;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t cp = UINT32_MAX;
        if (c < 0x80) cp = c;
        else if ((c & 0xe0) == 0xc0 && i + 1 < tk->len && ((uint8_t)s[i + 1] & 0xc0) == 0x80)
            cp = (uint32_t)(c & 0x1f) << 6 | ((uint8_t)s[i + 1] & 0x3f);
        int byte = cp < 0x144 ? t->cp_byte[cp] : -1;
        if (byte >= 0) {
            char b = (char)byte;
            n = copy_out(out, size, n, &b, 1);
            i += cp < 0x80 ? 1 : 2;
        } else {
            n = copy_out(out, size, n, s + i++, 1);
        }
    }
    return n;
}

const char *vki_tokenizer_token_text(const vki_tokenizer *t, int32_t id, size_t *out_length)
{
    if (!t || id < 0 || (uint32_t)id >= t->n_vocab) {
        if (out_length) *out_length = 0;
        return NULL;
    }
    if (out_length) *out_length = t->tokens[id].len;
    return t->text + t->tokens[id].off;
}

vki_token_type vki_tokenizer_token_type(const vki_tokenizer *t, int32_t id)
{
    return t && id >= 0 && (uint32_t)id < t->n_vocab ? (vki_token_type)t->tokens[id].type
                                                     : VKI_TOKEN_TYPE_UNDEFINED;
}

uint32_t vki_tokenizer_vocab_size(const vki_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t vki_tokenizer_bos(const vki_tokenizer *t) { return t ? t->bos : -1; }
int32_t vki_tokenizer_eos(const vki_tokenizer *t) { return t ? t->eos : -1; }
bool vki_tokenizer_add_bos(const vki_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }
const char *vki_tokenizer_last_error(const vki_tokenizer *t) { return t ? t->last_error : ""; }
vki_chat_template vki_tokenizer_chat_template(const vki_tokenizer *t)
{
    return t ? t->chat_template : VKI_CHAT_TEMPLATE_NONE;
}
const char *vki_tokenizer_default_system(const vki_tokenizer *t)
{
    return t ? t->default_system : NULL;
}

bool vki_tokenizer_is_end(const vki_tokenizer *t, int32_t id)
{
    if (!t || id < 0) return false;
    for (uint32_t i = 0; i < t->n_end; i++)
        if (t->end_ids[i] == id) return true;
    return false;
}
