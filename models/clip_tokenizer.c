/* CLIP's byte-level BPE tokenizer (OpenAI CLIP's simple_tokenizer.py, which Stable Diffusion 1.x
 * uses) and AUTOMATIC1111's prompt syntax on top of it.
 *
 * Text -> ids, in the reference's order (basic_clean, whitespace_clean, lower, findall, bpe):
 *   1. UTF-8 is decoded; each maximal invalid subsequence becomes one U+FFFD, as Python's
 *      decode(errors="replace") does (the reference only ever sees valid strings).
 *   2. ftfy.fix_text, the parts that change prompts, line by line to a fixed point as ftfy runs
 *      them: HTML entities with a semicolon (ftfy's "auto": only on lines before the first that
 *      holds a '<'), C1 controls read as Windows-1252, Latin ligatures, full- and half-width
 *      forms, curly quotes, line breaks, terminal escapes, control characters.
 *      Skipped, on purpose: mojibake repair (fix_encoding: heuristics over a dozen code pages)
 *      and NFC normalisation (it needs Unicode's composition tables). Prompts are typed or pasted
 *      text, NFC already and not mojibake; a decomposed accent (e + U+0301) or mojibake ("cafÃ©")
 *      tokenizes differently from CLIP, and the tests list such texts.
 *   3. html.unescape twice, with Python's rules: every numeric reference (its Windows-1252 and
 *      invalid-code-point rules included) and, of the named ones, HTML 4's 252 names plus
 *      &apos; (all names Python also decodes without the semicolon are among them); other HTML5
 *      names stay text.
 *   4. Whitespace runs -> one space, trimmed; lower case by Unicode's simple lower-case mapping
 *      (all of it, as a run table made by tools/gen_clip_tokenizer_golden.py --c-tables from
 *      Python 3.11's str.lower), plus str.lower's special cases: U+0130 -> "i" U+0307, and a
 *      capital sigma at a word's end -> final sigma (word ends found with a small letter test
 *      that covers Latin, Greek and Cyrillic).
 *   5. CLIP's pre-tokenizer, 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+ (PCRE2,
 *      UTF + UCP, caseless like the reference). Unlike the reference, <|startoftext|> and
 *      <|endoftext|> are NOT matched as special tokens: user text never makes control tokens.
 *   6. Each piece's UTF-8 bytes -> GPT-2's printable byte alphabet, "</w>" appended to the last
 *      symbol, then BPE by merge rank (lowest first, ties to the leftmost pair) from a priority
 *      queue, O(n log n) per piece.
 *
 * The vocabulary: line 1 of bpe_simple_vocab_16e6.txt is a version header, then one merge "a b"
 * per line; CLIP uses the first 49152 - 256 - 2 = 48894. Ids: the 256 byte symbols (in the byte
 * alphabet's order), the same with "</w>", one per merge (512 + rank), then the start and end
 * tokens: 49408. Every line of the file is checked; each merge's two halves must be tokens that
 * earlier lines defined and its result must be new (the real file satisfies both, and it is what
 * makes the rank order of a priority queue equal to the reference's merge-all-then-rescan).
 * Merges are held as (left id, right id) -> rank in one hash table; encoding never hashes text.
 */
#include "vkinfer_models.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BYTES 256
#define N_MERGES (49152 - 256 - 2)         // the merges CLIP uses
#define N_VOCAB (2 * N_BYTES + N_MERGES + 2) // 49408
#define MAP_SLOTS (1u << 17)               // > 2 * N_VOCAB, a power of two
#define MAX_FILE (64u << 20)               // the real file is 3.2 MB
#define MAX_TEXT (4u << 20)                // bytes vki_clip_tokenize takes
#define MAX_PROMPT (256u << 10)            // bytes vki_clip_prompt_encode takes
#define MAX_WINDOWS 32                     // 32 * 75 = 2400 tokens
#define MAX_DEPTH 256                      // open brackets at once
#define MAX_FIX_PASSES 16                  // ftfy's fixed point; real text settles in 2
#define WINDOW (VKI_CLIP_CONTEXT - 2)      // 75 prompt tokens per window
#define COMMA_ID 267                       // ",</w>"
#define COMMA_BACKTRACK 20                 // A1111's comma_padding_backtrack default

struct vki_clip_tokenizer {
    vki_allocator alloc;
    int32_t byte_id[N_BYTES];  // byte -> id of its symbol; + 256: with "</w>"
    uint64_t *pair_key;        // [MAP_SLOTS] left << 32 | right; UINT64_MAX: empty
    uint32_t *pair_rank;       // [MAP_SLOTS]
    pcre2_general_context *pcre_ctx;
    pcre2_code *pretok;        // step 5
    pcre2_code *brk;           // A1111's \s*\bBREAK\b\s*
};

/* ---- Allocation and small buffers ------------------------------------------------------------ */

static void *default_alloc(void *user, size_t size) { (void)user; return malloc(size); }
static void default_free(void *user, void *p) { (void)user; free(p); }

static void *mem_alloc(const vki_allocator *a, size_t count, size_t elem)
{
    if (elem && count > SIZE_MAX / elem) return NULL;
    size_t bytes = count * elem;
    return a->alloc(a->user, bytes ? bytes : 1);
}

/* strlen that stops looking past `max` (C17 has no strnlen). */
static size_t bounded_len(const char *s, size_t max)
{
    const char *end = memchr(s, 0, max);
    return end ? (size_t)(end - s) : max;
}

static void mem_free(const vki_allocator *a, void *p)
{
    if (p) a->free(a->user, p);
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

/* A growable array, kept for the length of one call. */
typedef struct vec {
    void *p;
    size_t n, cap; // elements
} vec;

typedef struct work {
    const vki_allocator *a;
    bool oom;
} work;

static bool reserve(work *w, vec *v, size_t need, size_t elem)
{
    if (w->oom) return false;
    if (need <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    void *p = mem_alloc(w->a, cap, elem);
    if (!p) {
        w->oom = true;
        return false;
    }
    if (v->n) memcpy(p, v->p, v->n * elem);
    mem_free(w->a, v->p);
    v->p = p;
    v->cap = cap;
    return true;
}

static void vec_free(work *w, vec *v)
{
    mem_free(w->a, v->p);
    *v = (vec){0};
}

static void put_cp(work *w, vec *v, uint32_t c)
{
    if (reserve(w, v, v->n + 1, sizeof(uint32_t))) ((uint32_t *)v->p)[v->n++] = c;
}

static void put_byte(work *w, vec *v, uint8_t b)
{
    if (reserve(w, v, v->n + 1, 1)) ((uint8_t *)v->p)[v->n++] = b;
}

static void put_id(work *w, vec *v, int32_t id)
{
    if (reserve(w, v, v->n + 1, sizeof(int32_t))) ((int32_t *)v->p)[v->n++] = id;
}

static void set_error(char *buf, size_t size, const char *fmt, ...)
{
    if (!buf || !size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* Decodes one code point at s[*i] (n bytes in all) and steps past it; a maximal invalid
 * subsequence (Unicode's "best practice", Python's errors="replace") gives U+FFFD. */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i)
{
    uint32_t b = s[*i], len, c;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) {
        (*i)++;
        return b;
    }
    if (b >= 0xC2 && b <= 0xDF) len = 2, c = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF) len = 3, c = b & 0x0F;
    else if (b >= 0xF0 && b <= 0xF4) len = 4, c = b & 0x07;
    else {
        (*i)++;
        return 0xFFFD;
    }
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F; // no surrogates
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F; // nothing past U+10FFFF
    size_t k = 1;
    for (; k < len; k++) {
        if (*i + k >= n) break;
        uint8_t t = s[*i + k];
        if (t < lo || t > hi) break;
        lo = 0x80, hi = 0xBF;
        c = c << 6 | (t & 0x3F);
    }
    *i += k;
    return k == len ? c : 0xFFFD;
}

static void put_utf8(work *w, vec *out, uint32_t c)
{
    if (c < 0x80) {
        put_byte(w, out, (uint8_t)c);
    } else if (c < 0x800) {
        put_byte(w, out, (uint8_t)(0xC0 | c >> 6));
        put_byte(w, out, (uint8_t)(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        put_byte(w, out, (uint8_t)(0xE0 | c >> 12));
        put_byte(w, out, (uint8_t)(0x80 | (c >> 6 & 0x3F)));
        put_byte(w, out, (uint8_t)(0x80 | (c & 0x3F)));
    } else {
        put_byte(w, out, (uint8_t)(0xF0 | c >> 18));
        put_byte(w, out, (uint8_t)(0x80 | (c >> 12 & 0x3F)));
        put_byte(w, out, (uint8_t)(0x80 | (c >> 6 & 0x3F)));
        put_byte(w, out, (uint8_t)(0x80 | (c & 0x3F)));
    }
}

/* ---- Tables (Unicode and HTML data, made by tools/gen_clip_tokenizer_golden.py --c-tables) --- */

typedef struct case_run {
    uint32_t first, last;
    int32_t delta;   // lower = upper + delta
    uint32_t stride; // 2: every other code point (upper, lower, upper, ...)
} case_run;

typedef struct entity {
    const char *name; // without the ';'
    uint32_t cp;
    uint8_t forms;    // 1: "&name;" is an entity; 2: "&name" (no semicolon) is one too
} entity;

static const case_run LOWER_RUNS[] = {
    {0x00041, 0x0005A, 32, 1}, {0x000C0, 0x000D6, 32, 1}, {0x000D8, 0x000DE, 32, 1}, {0x00100, 0x0012E, 1, 2},
    {0x00132, 0x00136, 1, 2}, {0x00139, 0x00147, 1, 2}, {0x0014A, 0x00176, 1, 2}, {0x00178, 0x00178, -121, 1},
    {0x00179, 0x0017D, 1, 2}, {0x00181, 0x00181, 210, 1}, {0x00182, 0x00184, 1, 2}, {0x00186, 0x00186, 206, 1},
    {0x00187, 0x00187, 1, 1}, {0x00189, 0x0018A, 205, 1}, {0x0018B, 0x0018B, 1, 1}, {0x0018E, 0x0018E, 79, 1},
    {0x0018F, 0x0018F, 202, 1}, {0x00190, 0x00190, 203, 1}, {0x00191, 0x00191, 1, 1}, {0x00193, 0x00193, 205, 1},
    {0x00194, 0x00194, 207, 1}, {0x00196, 0x00196, 211, 1}, {0x00197, 0x00197, 209, 1}, {0x00198, 0x00198, 1, 1},
    {0x0019C, 0x0019C, 211, 1}, {0x0019D, 0x0019D, 213, 1}, {0x0019F, 0x0019F, 214, 1}, {0x001A0, 0x001A4, 1, 2},
    {0x001A6, 0x001A6, 218, 1}, {0x001A7, 0x001A7, 1, 1}, {0x001A9, 0x001A9, 218, 1}, {0x001AC, 0x001AC, 1, 1},
    {0x001AE, 0x001AE, 218, 1}, {0x001AF, 0x001AF, 1, 1}, {0x001B1, 0x001B2, 217, 1}, {0x001B3, 0x001B5, 1, 2},
    {0x001B7, 0x001B7, 219, 1}, {0x001B8, 0x001B8, 1, 1}, {0x001BC, 0x001BC, 1, 1}, {0x001C4, 0x001C4, 2, 1},
    {0x001C5, 0x001C5, 1, 1}, {0x001C7, 0x001C7, 2, 1}, {0x001C8, 0x001C8, 1, 1}, {0x001CA, 0x001CA, 2, 1},
    {0x001CB, 0x001DB, 1, 2}, {0x001DE, 0x001EE, 1, 2}, {0x001F1, 0x001F1, 2, 1}, {0x001F2, 0x001F4, 1, 2},
    {0x001F6, 0x001F6, -97, 1}, {0x001F7, 0x001F7, -56, 1}, {0x001F8, 0x0021E, 1, 2}, {0x00220, 0x00220, -130, 1},
    {0x00222, 0x00232, 1, 2}, {0x0023A, 0x0023A, 10795, 1}, {0x0023B, 0x0023B, 1, 1}, {0x0023D, 0x0023D, -163, 1},
    {0x0023E, 0x0023E, 10792, 1}, {0x00241, 0x00241, 1, 1}, {0x00243, 0x00243, -195, 1}, {0x00244, 0x00244, 69, 1},
    {0x00245, 0x00245, 71, 1}, {0x00246, 0x0024E, 1, 2}, {0x00370, 0x00372, 1, 2}, {0x00376, 0x00376, 1, 1},
    {0x0037F, 0x0037F, 116, 1}, {0x00386, 0x00386, 38, 1}, {0x00388, 0x0038A, 37, 1}, {0x0038C, 0x0038C, 64, 1},
    {0x0038E, 0x0038F, 63, 1}, {0x00391, 0x003A1, 32, 1}, {0x003A3, 0x003AB, 32, 1}, {0x003CF, 0x003CF, 8, 1},
    {0x003D8, 0x003EE, 1, 2}, {0x003F4, 0x003F4, -60, 1}, {0x003F7, 0x003F7, 1, 1}, {0x003F9, 0x003F9, -7, 1},
    {0x003FA, 0x003FA, 1, 1}, {0x003FD, 0x003FF, -130, 1}, {0x00400, 0x0040F, 80, 1}, {0x00410, 0x0042F, 32, 1},
    {0x00460, 0x00480, 1, 2}, {0x0048A, 0x004BE, 1, 2}, {0x004C0, 0x004C0, 15, 1}, {0x004C1, 0x004CD, 1, 2},
    {0x004D0, 0x0052E, 1, 2}, {0x00531, 0x00556, 48, 1}, {0x010A0, 0x010C5, 7264, 1}, {0x010C7, 0x010C7, 7264, 1},
    {0x010CD, 0x010CD, 7264, 1}, {0x013A0, 0x013EF, 38864, 1}, {0x013F0, 0x013F5, 8, 1}, {0x01C90, 0x01CBA, -3008, 1},
    {0x01CBD, 0x01CBF, -3008, 1}, {0x01E00, 0x01E94, 1, 2}, {0x01E9E, 0x01E9E, -7615, 1}, {0x01EA0, 0x01EFE, 1, 2},
    {0x01F08, 0x01F0F, -8, 1}, {0x01F18, 0x01F1D, -8, 1}, {0x01F28, 0x01F2F, -8, 1}, {0x01F38, 0x01F3F, -8, 1},
    {0x01F48, 0x01F4D, -8, 1}, {0x01F59, 0x01F5F, -8, 2}, {0x01F68, 0x01F6F, -8, 1}, {0x01F88, 0x01F8F, -8, 1},
    {0x01F98, 0x01F9F, -8, 1}, {0x01FA8, 0x01FAF, -8, 1}, {0x01FB8, 0x01FB9, -8, 1}, {0x01FBA, 0x01FBB, -74, 1},
    {0x01FBC, 0x01FBC, -9, 1}, {0x01FC8, 0x01FCB, -86, 1}, {0x01FCC, 0x01FCC, -9, 1}, {0x01FD8, 0x01FD9, -8, 1},
    {0x01FDA, 0x01FDB, -100, 1}, {0x01FE8, 0x01FE9, -8, 1}, {0x01FEA, 0x01FEB, -112, 1}, {0x01FEC, 0x01FEC, -7, 1},
    {0x01FF8, 0x01FF9, -128, 1}, {0x01FFA, 0x01FFB, -126, 1}, {0x01FFC, 0x01FFC, -9, 1}, {0x02126, 0x02126, -7517, 1},
    {0x0212A, 0x0212A, -8383, 1}, {0x0212B, 0x0212B, -8262, 1}, {0x02132, 0x02132, 28, 1}, {0x02160, 0x0216F, 16, 1},
    {0x02183, 0x02183, 1, 1}, {0x024B6, 0x024CF, 26, 1}, {0x02C00, 0x02C2F, 48, 1}, {0x02C60, 0x02C60, 1, 1},
    {0x02C62, 0x02C62, -10743, 1}, {0x02C63, 0x02C63, -3814, 1}, {0x02C64, 0x02C64, -10727, 1}, {0x02C67, 0x02C6B, 1, 2},
    {0x02C6D, 0x02C6D, -10780, 1}, {0x02C6E, 0x02C6E, -10749, 1}, {0x02C6F, 0x02C6F, -10783, 1}, {0x02C70, 0x02C70, -10782, 1},
    {0x02C72, 0x02C72, 1, 1}, {0x02C75, 0x02C75, 1, 1}, {0x02C7E, 0x02C7F, -10815, 1}, {0x02C80, 0x02CE2, 1, 2},
    {0x02CEB, 0x02CED, 1, 2}, {0x02CF2, 0x02CF2, 1, 1}, {0x0A640, 0x0A66C, 1, 2}, {0x0A680, 0x0A69A, 1, 2},
    {0x0A722, 0x0A72E, 1, 2}, {0x0A732, 0x0A76E, 1, 2}, {0x0A779, 0x0A77B, 1, 2}, {0x0A77D, 0x0A77D, -35332, 1},
    {0x0A77E, 0x0A786, 1, 2}, {0x0A78B, 0x0A78B, 1, 1}, {0x0A78D, 0x0A78D, -42280, 1}, {0x0A790, 0x0A792, 1, 2},
    {0x0A796, 0x0A7A8, 1, 2}, {0x0A7AA, 0x0A7AA, -42308, 1}, {0x0A7AB, 0x0A7AB, -42319, 1}, {0x0A7AC, 0x0A7AC, -42315, 1},
    {0x0A7AD, 0x0A7AD, -42305, 1}, {0x0A7AE, 0x0A7AE, -42308, 1}, {0x0A7B0, 0x0A7B0, -42258, 1}, {0x0A7B1, 0x0A7B1, -42282, 1},
    {0x0A7B2, 0x0A7B2, -42261, 1}, {0x0A7B3, 0x0A7B3, 928, 1}, {0x0A7B4, 0x0A7C2, 1, 2}, {0x0A7C4, 0x0A7C4, -48, 1},
    {0x0A7C5, 0x0A7C5, -42307, 1}, {0x0A7C6, 0x0A7C6, -35384, 1}, {0x0A7C7, 0x0A7C9, 1, 2}, {0x0A7D0, 0x0A7D0, 1, 1},
    {0x0A7D6, 0x0A7D8, 1, 2}, {0x0A7F5, 0x0A7F5, 1, 1}, {0x0FF21, 0x0FF3A, 32, 1}, {0x10400, 0x10427, 40, 1},
    {0x104B0, 0x104D3, 40, 1}, {0x10570, 0x1057A, 39, 1}, {0x1057C, 0x1058A, 39, 1}, {0x1058C, 0x10592, 39, 1},
    {0x10594, 0x10595, 39, 1}, {0x10C80, 0x10CB2, 64, 1}, {0x118A0, 0x118BF, 32, 1}, {0x16E40, 0x16E5F, 32, 1},
    {0x1E900, 0x1E921, 34, 1},
};

static const uint16_t WIDTH_FF5F[] = { // U+FF5F..U+FFEE; 0: unchanged (U+FFE3 is two characters)
    0x2985, 0x2986, 0x3002, 0x300C, 0x300D, 0x3001, 0x30FB, 0x30F2, 0x30A1, 0x30A3,
    0x30A5, 0x30A7, 0x30A9, 0x30E3, 0x30E5, 0x30E7, 0x30C3, 0x30FC, 0x30A2, 0x30A4,
    0x30A6, 0x30A8, 0x30AA, 0x30AB, 0x30AD, 0x30AF, 0x30B1, 0x30B3, 0x30B5, 0x30B7,
    0x30B9, 0x30BB, 0x30BD, 0x30BF, 0x30C1, 0x30C4, 0x30C6, 0x30C8, 0x30CA, 0x30CB,
    0x30CC, 0x30CD, 0x30CE, 0x30CF, 0x30D2, 0x30D5, 0x30D8, 0x30DB, 0x30DE, 0x30DF,
    0x30E0, 0x30E1, 0x30E2, 0x30E4, 0x30E6, 0x30E8, 0x30E9, 0x30EA, 0x30EB, 0x30EC,
    0x30ED, 0x30EF, 0x30F3, 0x3099, 0x309A, 0x1160, 0x1100, 0x1101, 0x11AA, 0x1102,
    0x11AC, 0x11AD, 0x1103, 0x1104, 0x1105, 0x11B0, 0x11B1, 0x11B2, 0x11B3, 0x11B4,
    0x11B5, 0x111A, 0x1106, 0x1107, 0x1108, 0x1121, 0x1109, 0x110A, 0x110B, 0x110C,
    0x110D, 0x110E, 0x110F, 0x1110, 0x1111, 0x1112, 0x0000, 0x0000, 0x0000, 0x1161,
    0x1162, 0x1163, 0x1164, 0x1165, 0x1166, 0x0000, 0x0000, 0x1167, 0x1168, 0x1169,
    0x116A, 0x116B, 0x116C, 0x0000, 0x0000, 0x116D, 0x116E, 0x116F, 0x1170, 0x1171,
    0x1172, 0x0000, 0x0000, 0x1173, 0x1174, 0x1175, 0x0000, 0x0000, 0x0000, 0x00A2,
    0x00A3, 0x00AC, 0x0000, 0x00A6, 0x00A5, 0x20A9, 0x0000, 0x2502, 0x2190, 0x2191,
    0x2192, 0x2193, 0x25A0, 0x25CB,
};

static const entity ENTITIES[] = { // sorted by name (strcmp)
    {"AElig", 0xC6, 3}, {"AMP", 0x26, 3}, {"Aacute", 0xC1, 3}, {"Acirc", 0xC2, 3},
    {"Agrave", 0xC0, 3}, {"Alpha", 0x391, 1}, {"Aring", 0xC5, 3}, {"Atilde", 0xC3, 3},
    {"Auml", 0xC4, 3}, {"Beta", 0x392, 1}, {"COPY", 0xA9, 3}, {"Ccedil", 0xC7, 3},
    {"Chi", 0x3A7, 1}, {"Dagger", 0x2021, 1}, {"Delta", 0x394, 1}, {"ETH", 0xD0, 3},
    {"Eacute", 0xC9, 3}, {"Ecirc", 0xCA, 3}, {"Egrave", 0xC8, 3}, {"Epsilon", 0x395, 1},
    {"Eta", 0x397, 1}, {"Euml", 0xCB, 3}, {"GT", 0x3E, 3}, {"Gamma", 0x393, 1}, {"Iacute", 0xCD, 3},
    {"Icirc", 0xCE, 3}, {"Igrave", 0xCC, 3}, {"Iota", 0x399, 1}, {"Iuml", 0xCF, 3},
    {"Kappa", 0x39A, 1}, {"LT", 0x3C, 3}, {"Lambda", 0x39B, 1}, {"Mu", 0x39C, 1},
    {"Ntilde", 0xD1, 3}, {"Nu", 0x39D, 1}, {"OElig", 0x152, 1}, {"Oacute", 0xD3, 3},
    {"Ocirc", 0xD4, 3}, {"Ograve", 0xD2, 3}, {"Omega", 0x3A9, 1}, {"Omicron", 0x39F, 1},
    {"Oslash", 0xD8, 3}, {"Otilde", 0xD5, 3}, {"Ouml", 0xD6, 3}, {"Phi", 0x3A6, 1},
    {"Pi", 0x3A0, 1}, {"Prime", 0x2033, 1}, {"Psi", 0x3A8, 1}, {"QUOT", 0x22, 3}, {"REG", 0xAE, 3},
    {"Rho", 0x3A1, 1}, {"Scaron", 0x160, 1}, {"Sigma", 0x3A3, 1}, {"THORN", 0xDE, 3},
    {"Tau", 0x3A4, 1}, {"Theta", 0x398, 1}, {"Uacute", 0xDA, 3}, {"Ucirc", 0xDB, 3},
    {"Ugrave", 0xD9, 3}, {"Upsilon", 0x3A5, 1}, {"Uuml", 0xDC, 3}, {"Xi", 0x39E, 1},
    {"Yacute", 0xDD, 3}, {"Yuml", 0x178, 1}, {"Zeta", 0x396, 1}, {"aacute", 0xE1, 3},
    {"acirc", 0xE2, 3}, {"acute", 0xB4, 3}, {"aelig", 0xE6, 3}, {"agrave", 0xE0, 3},
    {"alefsym", 0x2135, 1}, {"alpha", 0x3B1, 1}, {"amp", 0x26, 3}, {"and", 0x2227, 1},
    {"ang", 0x2220, 1}, {"apos", 0x27, 1}, {"aring", 0xE5, 3}, {"asymp", 0x2248, 1},
    {"atilde", 0xE3, 3}, {"auml", 0xE4, 3}, {"bdquo", 0x201E, 1}, {"beta", 0x3B2, 1},
    {"brvbar", 0xA6, 3}, {"bull", 0x2022, 1}, {"cap", 0x2229, 1}, {"ccedil", 0xE7, 3},
    {"cedil", 0xB8, 3}, {"cent", 0xA2, 3}, {"chi", 0x3C7, 1}, {"circ", 0x2C6, 1},
    {"clubs", 0x2663, 1}, {"cong", 0x2245, 1}, {"copy", 0xA9, 3}, {"crarr", 0x21B5, 1},
    {"cup", 0x222A, 1}, {"curren", 0xA4, 3}, {"dArr", 0x21D3, 1}, {"dagger", 0x2020, 1},
    {"darr", 0x2193, 1}, {"deg", 0xB0, 3}, {"delta", 0x3B4, 1}, {"diams", 0x2666, 1},
    {"divide", 0xF7, 3}, {"eacute", 0xE9, 3}, {"ecirc", 0xEA, 3}, {"egrave", 0xE8, 3},
    {"empty", 0x2205, 1}, {"emsp", 0x2003, 1}, {"ensp", 0x2002, 1}, {"epsilon", 0x3B5, 1},
    {"equiv", 0x2261, 1}, {"eta", 0x3B7, 1}, {"eth", 0xF0, 3}, {"euml", 0xEB, 3},
    {"euro", 0x20AC, 1}, {"exist", 0x2203, 1}, {"fnof", 0x192, 1}, {"forall", 0x2200, 1},
    {"frac12", 0xBD, 3}, {"frac14", 0xBC, 3}, {"frac34", 0xBE, 3}, {"frasl", 0x2044, 1},
    {"gamma", 0x3B3, 1}, {"ge", 0x2265, 1}, {"gt", 0x3E, 3}, {"hArr", 0x21D4, 1},
    {"harr", 0x2194, 1}, {"hearts", 0x2665, 1}, {"hellip", 0x2026, 1}, {"iacute", 0xED, 3},
    {"icirc", 0xEE, 3}, {"iexcl", 0xA1, 3}, {"igrave", 0xEC, 3}, {"image", 0x2111, 1},
    {"infin", 0x221E, 1}, {"int", 0x222B, 1}, {"iota", 0x3B9, 1}, {"iquest", 0xBF, 3},
    {"isin", 0x2208, 1}, {"iuml", 0xEF, 3}, {"kappa", 0x3BA, 1}, {"lArr", 0x21D0, 1},
    {"lambda", 0x3BB, 1}, {"lang", 0x27E8, 1}, {"laquo", 0xAB, 3}, {"larr", 0x2190, 1},
    {"lceil", 0x2308, 1}, {"ldquo", 0x201C, 1}, {"le", 0x2264, 1}, {"lfloor", 0x230A, 1},
    {"lowast", 0x2217, 1}, {"loz", 0x25CA, 1}, {"lrm", 0x200E, 1}, {"lsaquo", 0x2039, 1},
    {"lsquo", 0x2018, 1}, {"lt", 0x3C, 3}, {"macr", 0xAF, 3}, {"mdash", 0x2014, 1},
    {"micro", 0xB5, 3}, {"middot", 0xB7, 3}, {"minus", 0x2212, 1}, {"mu", 0x3BC, 1},
    {"nabla", 0x2207, 1}, {"nbsp", 0xA0, 3}, {"ndash", 0x2013, 1}, {"ne", 0x2260, 1},
    {"ni", 0x220B, 1}, {"not", 0xAC, 3}, {"notin", 0x2209, 1}, {"nsub", 0x2284, 1},
    {"ntilde", 0xF1, 3}, {"nu", 0x3BD, 1}, {"oacute", 0xF3, 3}, {"ocirc", 0xF4, 3},
    {"oelig", 0x153, 1}, {"ograve", 0xF2, 3}, {"oline", 0x203E, 1}, {"omega", 0x3C9, 1},
    {"omicron", 0x3BF, 1}, {"oplus", 0x2295, 1}, {"or", 0x2228, 1}, {"ordf", 0xAA, 3},
    {"ordm", 0xBA, 3}, {"oslash", 0xF8, 3}, {"otilde", 0xF5, 3}, {"otimes", 0x2297, 1},
    {"ouml", 0xF6, 3}, {"para", 0xB6, 3}, {"part", 0x2202, 1}, {"permil", 0x2030, 1},
    {"perp", 0x22A5, 1}, {"phi", 0x3C6, 1}, {"pi", 0x3C0, 1}, {"piv", 0x3D6, 1},
    {"plusmn", 0xB1, 3}, {"pound", 0xA3, 3}, {"prime", 0x2032, 1}, {"prod", 0x220F, 1},
    {"prop", 0x221D, 1}, {"psi", 0x3C8, 1}, {"quot", 0x22, 3}, {"rArr", 0x21D2, 1},
    {"radic", 0x221A, 1}, {"rang", 0x27E9, 1}, {"raquo", 0xBB, 3}, {"rarr", 0x2192, 1},
    {"rceil", 0x2309, 1}, {"rdquo", 0x201D, 1}, {"real", 0x211C, 1}, {"reg", 0xAE, 3},
    {"rfloor", 0x230B, 1}, {"rho", 0x3C1, 1}, {"rlm", 0x200F, 1}, {"rsaquo", 0x203A, 1},
    {"rsquo", 0x2019, 1}, {"sbquo", 0x201A, 1}, {"scaron", 0x161, 1}, {"sdot", 0x22C5, 1},
    {"sect", 0xA7, 3}, {"shy", 0xAD, 3}, {"sigma", 0x3C3, 1}, {"sigmaf", 0x3C2, 1},
    {"sim", 0x223C, 1}, {"spades", 0x2660, 1}, {"sub", 0x2282, 1}, {"sube", 0x2286, 1},
    {"sum", 0x2211, 1}, {"sup", 0x2283, 1}, {"sup1", 0xB9, 3}, {"sup2", 0xB2, 3}, {"sup3", 0xB3, 3},
    {"supe", 0x2287, 1}, {"szlig", 0xDF, 3}, {"tau", 0x3C4, 1}, {"there4", 0x2234, 1},
    {"theta", 0x3B8, 1}, {"thetasym", 0x3D1, 1}, {"thinsp", 0x2009, 1}, {"thorn", 0xFE, 3},
    {"tilde", 0x2DC, 1}, {"times", 0xD7, 3}, {"trade", 0x2122, 1}, {"uArr", 0x21D1, 1},
    {"uacute", 0xFA, 3}, {"uarr", 0x2191, 1}, {"ucirc", 0xFB, 3}, {"ugrave", 0xF9, 3},
    {"uml", 0xA8, 3}, {"upsih", 0x3D2, 1}, {"upsilon", 0x3C5, 1}, {"uuml", 0xFC, 3},
    {"weierp", 0x2118, 1}, {"xi", 0x3BE, 1}, {"yacute", 0xFD, 3}, {"yen", 0xA5, 3},
    {"yuml", 0xFF, 3}, {"zeta", 0x3B6, 1}, {"zwj", 0x200D, 1}, {"zwnj", 0x200C, 1},
};

/* Windows-1252 for 0x80..0x9F; its five holes map to themselves (ftfy's "sloppy" codec, and
 * Python's html.unescape table for &#128;..&#159;). */
static const uint16_t CP1252_C1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* ftfy's LIGATURES: Latin ligatures and digraphs -> their letters. */
static const struct { uint16_t cp; uint16_t to[3]; } LIGATURES[] = {
    {0x0132, {'I', 'J'}}, {0x0133, {'i', 'j'}}, {0x0149, {0x02BC, 'n'}}, {0x01C4, {'D', 0x017D}},
    {0x01C5, {'D', 0x017E}}, {0x01C6, {'d', 0x017E}}, {0x01C7, {'L', 'J'}}, {0x01C8, {'L', 'j'}},
    {0x01C9, {'l', 'j'}}, {0x01CA, {'N', 'J'}}, {0x01CB, {'N', 'j'}}, {0x01CC, {'n', 'j'}},
    {0x01F1, {'D', 'Z'}}, {0x01F2, {'D', 'z'}}, {0x01F3, {'d', 'z'}}, {0xFB00, {'f', 'f'}},
    {0xFB01, {'f', 'i'}}, {0xFB02, {'f', 'l'}}, {0xFB03, {'f', 'f', 'i'}},
    {0xFB04, {'f', 'f', 'l'}}, {0xFB05, {0x017F, 't'}}, {0xFB06, {'s', 't'}},
};

/* ---- Text clean-up (steps 2 to 4) ------------------------------------------------------------ */

static bool is_ascii_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Python's str.isspace, a superset of the regex module's \s by U+1C..U+1F only, which ftfy
 * has removed before whitespace is looked at. */
static bool is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static const entity *find_entity(const uint32_t *name, size_t len)
{
    char key[33];
    if (len == 0 || len > 32) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (name[i] > 0x7E) return NULL;
        key[i] = (char)name[i];
    }
    key[len] = 0;
    size_t lo = 0, hi = sizeof ENTITIES / sizeof ENTITIES[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strcmp(key, ENTITIES[mid].name);
        if (d == 0) return &ENTITIES[mid];
        if (d < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* Python's html._replace_charref for a number: "" is returned as UINT32_MAX (removed). */
static uint32_t charref_value(uint32_t num)
{
    if (num == 0) return 0xFFFD;
    if (num == 0x0D) return 0x0D;
    if (num >= 0x80 && num <= 0x9F) return CP1252_C1[num - 0x80];
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return 0xFFFD;
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
        num == 0x7F || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return UINT32_MAX;
    return num;
}

/* Reads "#123" or "#x1F" at s[i..n) (i after the '&'); returns the characters consumed (0: not
 * a number), the value saturated past U+10FFFF. */
static size_t read_number(const uint32_t *s, size_t i, size_t n, uint32_t *out)
{
    size_t j = i + 1;
    uint32_t v = 0, base = 10;
    if (j < n && (s[j] == 'x' || s[j] == 'X')) base = 16, j++;
    size_t start = j;
    for (; j < n; j++) {
        uint32_t c = s[j], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else break;
        v = v > 0x10FFFF ? v : v * base + d;
    }
    if (j == start) return 0;
    *out = v;
    return j - i;
}

/* What str.upper gives for the values of the entities ftfy decodes in capitals (&EACUTE;);
 * 0xDF gives "SS" (second character in *second). */
static uint32_t upper_of(uint32_t c, uint32_t *second)
{
    *second = 0;
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c == 0xDF) return *second = 'S', 'S';
    if (c == 0xB5) return 0x39C;
    if (c == 0xFF) return 0x178;
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x3B1 && c <= 0x3C9) return c - 32;
    if (c == 0x3D1) return 0x398;
    if (c == 0x3D6) return 0x3A0;
    if (c == 0x153 || c == 0x161) return c - 1;
    if (c == 0x192) return 0x191;
    return c;
}

/* ftfy's unescape_html: &#?[0-9A-Za-z]{1,24}; where it names an entity or a number. */
static void unescape_ftfy(work *w, const vec *in, vec *out)
{
    const uint32_t *s = in->p;
    size_t n = in->n;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = i + 1, k;
        if (s[i] != '&') goto literal;
        if (j < n && s[j] == '#') j++;
        for (k = j; k < n && is_ascii_alnum(s[k]); k++) {}
        if (k == j || k - j > 24 || k >= n || s[k] != ';') goto literal;
        if (j > i + 1) { // "&#...;": decoded when html.unescape takes all of it
            uint32_t num, v;
            if (read_number(s, i + 1, n, &num) != k - i - 1) goto literal;
            v = charref_value(num);
            if (v == ';') goto literal; // ftfy keeps a result holding ';'
            if (v != UINT32_MAX) put_cp(w, out, v);
            i = k;
            continue;
        }
        const entity *e = find_entity(s + j, k - j);
        if (e && (e->forms & 1)) {
            put_cp(w, out, e->cp);
            i = k;
            continue;
        }
        if (!e) { // a capitalised lower-case name (&EACUTE;), unless html.unescape knows it
            uint32_t low[24];
            bool upper_only = true, changed = false;
            for (size_t m = j; m < k; m++) {
                uint32_t c = s[m];
                if (c >= 'a' && c <= 'z') upper_only = false;
                low[m - j] = c >= 'A' && c <= 'Z' ? c + 32 : c;
                changed |= low[m - j] != c;
            }
            const entity *l = upper_only && changed ? find_entity(low, k - j) : NULL;
            for (size_t x = k - j; l && x >= 2; x--) {
                const entity *p = find_entity(s + j, x);
                if (p && (p->forms & 2)) l = NULL;
            }
            if (l && (l->forms & 1)) {
                uint32_t second, c = upper_of(l->cp, &second);
                put_cp(w, out, c);
                if (second) put_cp(w, out, second);
                i = k;
                continue;
            }
        }
    literal:
        put_cp(w, out, s[i]);
    }
}

/* Python's html.unescape: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?). */
static void unescape_html(work *w, const vec *in, vec *out)
{
    const uint32_t *s = in->p;
    size_t n = in->n;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&' || i + 1 >= n) {
            put_cp(w, out, s[i]);
            continue;
        }
        if (s[i + 1] == '#') {
            uint32_t num;
            size_t used = read_number(s, i + 1, n, &num);
            if (!used) {
                put_cp(w, out, s[i]);
                continue;
            }
            uint32_t v = charref_value(num);
            if (v != UINT32_MAX) put_cp(w, out, v);
            i += used;
            if (i + 1 < n && s[i + 1] == ';') i++;
            continue;
        }
        size_t j = i + 1, k = j;
        while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' && s[k] != '\f' &&
               s[k] != ' ' && s[k] != '<' && s[k] != '&' && s[k] != '#' && s[k] != ';')
            k++;
        if (k == j) {
            put_cp(w, out, s[i]);
            continue;
        }
        bool semi = k < n && s[k] == ';';
        const entity *e = find_entity(s + j, k - j);
        if (e && (e->forms & (semi ? 1 : 2))) {
            put_cp(w, out, e->cp);
            i = k - !semi;
            continue;
        }
        // The longest legacy name (no semicolon) that the text starts with, 2 characters or more.
        size_t x = semi ? k - j : k - j - 1;
        for (; x >= 2; x--) {
            e = find_entity(s + j, x);
            if (e && (e->forms & 2)) break;
        }
        if (x >= 2) {
            put_cp(w, out, e->cp);
            i = j + x - 1;
            continue;
        }
        put_cp(w, out, s[i]);
    }
}

static bool ends_line_or_text(const uint32_t *s, size_t i, size_t n) { return i + 1 >= n || s[i] == '\n'; }

/* ftfy's fixers after unescape_html, in its order: C1 controls, ligatures, character width,
 * quotes, line breaks, terminal escapes, control characters. */
static void fix_chars(work *w, const vec *in, vec *out)
{
    const uint32_t *s = in->p;
    size_t n = in->n;
    vec a = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= 0x80 && c <= 0x9F) c = CP1252_C1[c - 0x80];
        bool done = false;
        for (size_t l = 0; l < sizeof LIGATURES / sizeof LIGATURES[0]; l++) {
            if (LIGATURES[l].cp != c) continue;
            for (int m = 0; m < 3 && LIGATURES[l].to[m]; m++) put_cp(w, &a, LIGATURES[l].to[m]);
            done = true;
        }
        if (done) continue;
        if (c == 0x3000) c = ' ';
        else if (c >= 0xFF01 && c <= 0xFF5E) c -= 0xFEE0;
        else if (c == 0xFFE3) { // NFKC: space + combining macron
            put_cp(w, &a, ' ');
            c = 0x304;
        } else if (c >= 0xFF5F && c <= 0xFFEE && WIDTH_FF5F[c - 0xFF5F]) {
            c = WIDTH_FF5F[c - 0xFF5F];
        }
        put_cp(w, &a, c);
    }
    // Quotes and line breaks map one to one (CR LF -> LF aside); then the two removals.
    const uint32_t *t = a.p;
    out->n = 0;
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = t[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        else if (c == '\r' && i + 1 < a.n && t[i + 1] == '\n') continue;
        else if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
        put_cp(w, out, c);
    }
    vec_free(w, &a);
    // ESC [ [0-9;]* [A-Za-z] (ftfy's ANSI_RE), then ftfy's CONTROL_CHARS.
    uint32_t *u = out->p;
    size_t m = 0;
    for (size_t i = 0; i < out->n; i++) {
        uint32_t c = u[i];
        if (c == 0x1B && i + 1 < out->n && u[i + 1] == '[') {
            size_t k = i + 2;
            while (k < out->n && ((u[k] >= '0' && u[k] <= '9') || u[k] == ';')) k++;
            if (k < out->n && ((u[k] | 0x20) >= 'a' && (u[k] | 0x20) <= 'z')) {
                i = k;
                continue;
            }
        }
        if (c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
            (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC))
            continue;
        u[m++] = c;
    }
    out->n = m;
}

static bool same(const vec *a, const vec *b)
{
    return a->n == b->n && (!a->n || !memcmp(a->p, b->p, a->n * sizeof(uint32_t)));
}

static void swap(vec *a, vec *b)
{
    vec t = *a;
    *a = *b;
    *b = t;
}

/* ftfy.fix_text: line by line (each keeps its '\n'), each to a fixed point. Its "auto" HTML
 * setting turns unescaping off for good at the first line that holds a '<'. */
static void fix_text(work *w, const vec *in, vec *out)
{
    const uint32_t *s = in->p;
    vec line = {0}, next = {0}, orig = {0};
    bool html = true;
    out->n = 0;
    for (size_t i = 0; i < in->n && !w->oom;) {
        size_t e = i;
        while (!ends_line_or_text(s, e, in->n)) e++;
        e++; // past the '\n' or to the end
        line.n = 0;
        for (size_t k = i; k < e; k++) {
            put_cp(w, &line, s[k]);
            if (s[k] == '<') html = false;
        }
        for (int pass = 0; pass < MAX_FIX_PASSES && !w->oom; pass++) {
            orig.n = 0;
            for (size_t k = 0; k < line.n; k++) put_cp(w, &orig, ((uint32_t *)line.p)[k]);
            if (html) {
                unescape_ftfy(w, &line, &next);
                swap(&line, &next);
            }
            fix_chars(w, &line, &next);
            swap(&line, &next);
            if (same(&line, &orig)) break;
        }
        for (size_t k = 0; k < line.n; k++) put_cp(w, out, ((uint32_t *)line.p)[k]);
        i = e;
    }
    vec_free(w, &line);
    vec_free(w, &next);
    vec_free(w, &orig);
}

static uint32_t lower_of(uint32_t c)
{
    size_t lo = 0, hi = sizeof LOWER_RUNS / sizeof LOWER_RUNS[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < LOWER_RUNS[mid].first) hi = mid;
        else if (c > LOWER_RUNS[mid].last) lo = mid + 1;
        else
            return (c - LOWER_RUNS[mid].first) % LOWER_RUNS[mid].stride
                       ? c
                       : (uint32_t)((int32_t)c + LOWER_RUNS[mid].delta);
    }
    return c;
}

/* Cased letters for the final-sigma rule: Latin, Greek and Cyrillic (an approximation of
 * Unicode's Cased property that covers the scripts with a sigma next to them). */
static bool is_cased(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == 0xAA || c == 0xB5 ||
           c == 0xBA || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) ||
           (c >= 0x370 && c <= 0x3FF && c != 0x37E && c != 0x387) || (c >= 0x400 && c <= 0x52F) ||
           (c >= 0x1E00 && c <= 0x1FFF);
}

static bool is_case_ignorable(uint32_t c)
{
    return c == '\'' || c == '.' || c == ':' || c == 0xB7 || c == 0x2019 ||
           (c >= 0x300 && c <= 0x36F);
}

/* whitespace_clean + str.lower, straight to UTF-8. */
static void clean_lower(work *w, const vec *in, vec *out)
{
    const uint32_t *s = in->p;
    size_t n = in->n;
    bool space = false;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (is_space(c)) {
            space = out->n > 0;
            continue;
        }
        if (space) put_byte(w, out, ' ');
        space = false;
        if (c == 0x130) {
            put_utf8(w, out, 'i');
            c = 0x307;
        } else if (c == 0x3A3) { // final sigma: a cased letter before, none after
            size_t b = i, f = i + 1;
            while (b > 0 && is_case_ignorable(s[b - 1])) b--;
            while (f < n && is_case_ignorable(s[f])) f++;
            bool final = b > 0 && is_cased(s[b - 1]) && !(f < n && is_cased(s[f]));
            c = final ? 0x3C2 : 0x3C3;
        } else {
            c = lower_of(c);
        }
        put_utf8(w, out, c);
    }
}

/* Steps 1 to 4: text -> the cleaned, lower-cased UTF-8 the pre-tokenizer reads. */
static void clean_text(work *w, const char *text, size_t len, vec *out)
{
    vec a = {0}, b = {0};
    for (size_t i = 0; i < len && !w->oom;) put_cp(w, &a, utf8_next((const uint8_t *)text, len, &i));
    fix_text(w, &a, &b);
    unescape_html(w, &b, &a);
    unescape_html(w, &a, &b);
    clean_lower(w, &b, out);
    vec_free(w, &a);
    vec_free(w, &b);
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
    uint8_t *spell;  // every spelling back to back
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

static vki_status read_file(const vki_allocator *a, const char *path, uint8_t **out, size_t *out_size,
                            char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, n, "clip tokenizer: cannot open %s", path);
        return VKI_ERROR_NOT_FOUND;
    }
    vki_status st = VKI_OK;
    size_t cap = 1u << 20, size = 0;
    uint8_t *buf = mem_alloc(a, cap, 1);
    while (buf) {
        if (size == cap) {
            if (cap >= MAX_FILE) {
                set_error(err, n, "clip tokenizer: %s is larger than %u MiB; not a CLIP merges file",
                          path, MAX_FILE >> 20);
                st = VKI_ERROR_BAD_FILE;
                break;
            }
            uint8_t *bigger = mem_alloc(a, cap * 2, 1);
            if (!bigger) break;
            memcpy(bigger, buf, size);
            mem_free(a, buf);
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
        mem_free(a, buf);
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
        uint32_t c = utf8_next(p, n, &i);
        if (c == 0xFFFD && !(i - at == 3 && p[at] == 0xEF && p[at + 1] == 0xBF && p[at + 2] == 0xBD))
            return false;
    }
    return true;
}

#define BAD_LINE(...)                                                                              \
    do {                                                                                           \
        char what_[160];                                                                           \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                \
        set_error(err, n, "clip tokenizer: %s line %zu: %s", path, line_no, what_);                \
        st = VKI_ERROR_BAD_FILE;                                                                   \
        goto done;                                                                                 \
    } while (0)

/* Checks every line and fills the byte ids and the merge table. */
static vki_status parse_merges(vki_clip_tokenizer *t, loader *l, const uint8_t *file, size_t size,
                               const char *path, char *err, size_t n)
{
    vki_status st = VKI_OK;
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
            if (!found) BAD_LINE("expected the version header (\"#version: 0.2\")");
            continue;
        }
        if (len && p[len - 1] == '\r') BAD_LINE("carriage return (CRLF line endings?)");
        const uint8_t *sp = memchr(p, ' ', len);
        if (!sp || sp == p || sp == p + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - p)))
            BAD_LINE("expected two symbols separated by one space");
        size_t na = (size_t)(sp - p), nb = len - na - 1;
        if (!is_symbol(p, na) || !is_symbol(sp + 1, nb))
            BAD_LINE("a symbol with a control character or invalid UTF-8");
        if (merges < N_MERGES) {
            int32_t a = spelling_find(l, p, na), b = spelling_find(l, sp + 1, nb);
            if (a < 0 || b < 0)
                BAD_LINE("'%.*s' is not a token defined by the byte alphabet or an earlier line",
                         (int)(a < 0 ? (na > 64 ? 64 : na) : (nb > 64 ? 64 : nb)),
                         (const char *)(a < 0 ? p : sp + 1));
            uint8_t joined[1024];
            if (na + nb > sizeof joined) BAD_LINE("a merge longer than %zu bytes", sizeof joined);
            memcpy(joined, p, na);
            memcpy(joined + na, sp + 1, nb);
            if (spelling_find(l, joined, na + nb) >= 0) BAD_LINE("the merge makes a token defined before");
            if (l->used + na + nb > l->cap) BAD_LINE("more symbol text than the file holds");
            spelling_add(l, 2 * N_BYTES + (int32_t)merges, p, na, sp + 1, nb);
            pair_add(t, a, b, (uint32_t)merges);
        }
        merges++;
        if (pos == size && !nl) break;
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
done:
    return st;
}

#undef BAD_LINE

static vki_status compile_regex(vki_clip_tokenizer *t, const char *pattern, uint32_t flags,
                                pcre2_code **out, char *err, size_t n)
{
    int code;
    PCRE2_SIZE at;
    pcre2_compile_context *cc = pcre2_compile_context_create(t->pcre_ctx);
    if (!cc) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_UCP | flags, &code, &at, cc);
    pcre2_compile_context_free(cc);
    if (*out) return VKI_OK;
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
        set_error(err, n, "clip tokenizer: %s is gzip-compressed; decompress it first (gunzip -k), "
                  "or run tools/fetch_models.sh, which stores it decompressed", vocab_path);
        return VKI_ERROR_BAD_FILE;
    }
    uint8_t *file = NULL;
    size_t size = 0;
    vki_status st = read_file(&a, vocab_path, &file, &size, err, n);
    if (st != VKI_OK) return st;
    loader l = {0};
    vki_clip_tokenizer *t = mem_alloc(&a, 1, sizeof *t);
    if (!t) goto oom;
    memset(t, 0, sizeof *t);
    t->alloc = a;
    if (size >= 2 && file[0] == 0x1F && file[1] == 0x8B) {
        set_error(err, n, "clip tokenizer: %s is gzip-compressed; decompress it first (gunzip), "
                  "or run tools/fetch_models.sh, which stores it decompressed", vocab_path);
        st = VKI_ERROR_BAD_FILE;
        goto fail;
    }
    l.cap = size + 8 * N_BYTES;
    l.spell = mem_alloc(&a, l.cap, 1);
    l.off = mem_alloc(&a, N_VOCAB, sizeof(uint32_t));
    l.len = mem_alloc(&a, N_VOCAB, sizeof(uint32_t));
    l.slots = mem_alloc(&a, MAP_SLOTS, sizeof(uint32_t));
    t->pair_key = mem_alloc(&a, MAP_SLOTS, sizeof(uint64_t));
    t->pair_rank = mem_alloc(&a, MAP_SLOTS, sizeof(uint32_t));
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
    mem_free(&a, l.spell);
    mem_free(&a, l.off);
    mem_free(&a, l.len);
    mem_free(&a, l.slots);
    mem_free(&a, file);
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
    mem_free(&a, t->pair_key);
    mem_free(&a, t->pair_rank);
    mem_free(&a, t);
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
    if (rank == UINT32_MAX || !reserve(w, h, h->n + 1, sizeof(cand))) return;
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
    if (n == 0 || n > INT32_MAX || !reserve(w, syms, n, sizeof(sym))) return;
    sym *s = syms->p;
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){t->byte_id[p[i]] + (i + 1 == n ? N_BYTES : 0), (int32_t)i - 1,
                     i + 1 == n ? -1 : (int32_t)i + 1};
    for (size_t i = 0; i + 1 < n; i++) heap_push(w, heap, pair_rank(t, s[i].id, s[i + 1].id), (int32_t)i);
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
    for (int32_t i = 0; i >= 0; i = s[i].next) put_id(w, ids, s[i].id);
}

/* Appends the ids of text[0, len) to *ids. */
static vki_status encode(const vki_clip_tokenizer *t, work *w, const char *text, size_t len, vec *ids)
{
    vec clean = {0}, syms = {0}, heap = {0};
    vki_status st = VKI_OK;
    clean_text(w, text, len, &clean);
    pcre2_match_data *md = w->oom ? NULL : pcre2_match_data_create_from_pattern(t->pretok, t->pcre_ctx);
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
    vec_free(w, &clean);
    vec_free(w, &syms);
    vec_free(w, &heap);
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
    vec_free(&w, &ids);
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
    if (!reserve(ps->w, &ps->text, ps->text.n + n, 1) ||
        !reserve(ps->w, &ps->pieces, ps->pieces.n + 1, sizeof(piece)))
        return;
    memcpy((uint8_t *)ps->text.p + ps->text.n, p, n);
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
            return rc == PCRE2_ERROR_NOMEMORY ? VKI_ERROR_OUT_OF_HOST_MEMORY : VKI_ERROR_UNSUPPORTED;
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
        if (j >= n || !is_space(utf8_next(s, n, &j))) return i;
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
                          "clip prompt: more than %d '%c' open at once (byte %zu)", MAX_DEPTH, c, i);
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
                    set_error(ps->err, ps->err_size, "clip prompt: '%.*s' at byte %zu is not a number",
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
        if (m && p[m - 1].w == p[k].w) p[m - 1].len += p[k].len;
        else p[m++] = p[k];
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
        set_error(err, n, "clip prompt: tokenizer, prompt and out are required; pad_id < %d", N_VOCAB);
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
    for (size_t i = 0; i < len && !w.oom;) put_utf8(&w, &src, utf8_next((const uint8_t *)prompt, len, &i));
    ps.md = pcre2_match_data_create_from_pattern(t->brk, t->pcre_ctx);
    win.ids = mem_alloc(&t->alloc, (size_t)MAX_WINDOWS * VKI_CLIP_CONTEXT, sizeof(int32_t));
    win.weights = mem_alloc(&t->alloc, (size_t)MAX_WINDOWS * VKI_CLIP_CONTEXT, sizeof(float));
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
            set_error(err, n, "clip prompt: an emphasis weight overflows (nested too deep or too large)");
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
    if (st == VKI_ERROR_UNSUPPORTED) set_error(err, n, "clip prompt: the pre-tokenizer regex failed");
done:
    pcre2_match_data_free(ps.md);
    mem_free(&t->alloc, win.ids);
    mem_free(&t->alloc, win.weights);
    vec_free(&w, &src);
    vec_free(&w, &ids);
    vec_free(&w, &ps.text);
    vec_free(&w, &ps.pieces);
    return st;
}

void vki_clip_prompt_free(const vki_clip_tokenizer *t, vki_clip_prompt *p)
{
    if (!p) return;
    if (t) {
        mem_free(&t->alloc, p->ids);
        mem_free(&t->alloc, p->weights);
    }
    *p = (vki_clip_prompt){0};
}
