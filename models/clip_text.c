/* CLIP's text clean-up before its pre-tokenizer: simple_tokenizer.py's
 * whitespace_clean(basic_clean(text)).lower(), for models/clip_tokenizer.c.
 *
 *   1. UTF-8 is decoded; each maximal invalid subsequence becomes one U+FFFD, as Python's
 *      decode(errors="replace") does (the reference only ever sees valid strings).
 *   2. ftfy.fix_text, the parts that change prompts, line by line to a fixed point as ftfy runs
 *      them: HTML entities with a semicolon (ftfy's "auto": only on lines before the first that
 *      holds a '<'), C1 controls read as Windows-1252, Latin ligatures, full- and half-width
 *      forms, curly quotes, line breaks, terminal escapes, control characters.
 *      Skipped, on purpose: mojibake repair (fix_encoding: heuristics over a dozen code pages)
 *      and NFC normalisation (it needs Unicode's composition tables, which PCRE2 lacks too).
 *      Prompts are typed or pasted text, NFC already and not mojibake; a decomposed accent
 *      (e + U+0301), half-width kana with a separate voicing mark, or mojibake ("cafÃ©")
 *      tokenize differently from CLIP, and the tests list such texts.
 *   3. html.unescape twice, with Python's rules: every numeric reference (its Windows-1252 and
 *      invalid-code-point rules included) and, of the named ones, HTML 4's 252 names plus
 *      &apos; (all names Python also decodes without the semicolon are among them); other
 *      HTML5 names stay text.
 *   4. Whitespace runs -> one space, trimmed; lower case by Unicode's simple lower-case mapping
 *      (all of it, as a run table from Python 3.11's str.lower, Unicode 14), plus str.lower's
 *      special cases: U+0130 -> "i" U+0307, and a capital sigma at a word's end -> final sigma
 *      (Unicode's Cased property from a table; Case_Ignorable for the blocks near Latin, Greek
 *      and Cyrillic text). No locale.
 * The passes run on arrays of code points; a fixed-point loop is capped at 16 passes (ftfy's
 * settles in two on real text; the cap bounds nested "&amp;amp;..." at linear cost).
 */
#include "clip_tokenizer_internal.h"

typedef vki_clip_vec vec;
typedef vki_clip_work work;

#define MAX_FIX_PASSES 16

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

uint32_t vki_clip_utf8_next(const uint8_t *s, size_t n, size_t *i)
{
    uint32_t b = s[*i], len, c;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) {
        (*i)++;
        return b;
    }
    if (b >= 0xC2 && b <= 0xDF)
        len = 2, c = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF)
        len = 3, c = b & 0x0F;
    else if (b >= 0xF0 && b <= 0xF4)
        len = 4, c = b & 0x07;
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

void vki_clip_put_utf8(work *w, vec *out, uint32_t c)
{
    if (c < 0x80) {
        clip_put_byte(w, out, (uint8_t)c);
    } else if (c < 0x800) {
        clip_put_byte(w, out, (uint8_t)(0xC0 | c >> 6));
        clip_put_byte(w, out, (uint8_t)(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        clip_put_byte(w, out, (uint8_t)(0xE0 | c >> 12));
        clip_put_byte(w, out, (uint8_t)(0x80 | (c >> 6 & 0x3F)));
        clip_put_byte(w, out, (uint8_t)(0x80 | (c & 0x3F)));
    } else {
        clip_put_byte(w, out, (uint8_t)(0xF0 | c >> 18));
        clip_put_byte(w, out, (uint8_t)(0x80 | (c >> 12 & 0x3F)));
        clip_put_byte(w, out, (uint8_t)(0x80 | (c >> 6 & 0x3F)));
        clip_put_byte(w, out, (uint8_t)(0x80 | (c & 0x3F)));
    }
}

/* ---- Tables (Unicode and HTML data, made by tools/gen_clip_tokenizer_golden.py --c-tables) --- */

typedef struct case_run {
    uint32_t first, last;
    int32_t delta;   // lower = upper + delta
    uint32_t stride; // 2: every other code point (upper, lower, upper, ...)
} case_run;

typedef struct cp_range {
    uint32_t first, last;
} cp_range;

typedef struct entity {
    const char *name; // without the ';'
    uint32_t cp;
    uint8_t forms; // 1: "&name;" is an entity; 2: "&name" (no semicolon) is one too
} entity;

static const case_run LOWER_RUNS[] = {
    {0x00041, 0x0005A, 32, 1},     {0x000C0, 0x000D6, 32, 1},     {0x000D8, 0x000DE, 32, 1},
    {0x00100, 0x0012E, 1, 2},      {0x00132, 0x00136, 1, 2},      {0x00139, 0x00147, 1, 2},
    {0x0014A, 0x00176, 1, 2},      {0x00178, 0x00178, -121, 1},   {0x00179, 0x0017D, 1, 2},
    {0x00181, 0x00181, 210, 1},    {0x00182, 0x00184, 1, 2},      {0x00186, 0x00186, 206, 1},
    {0x00187, 0x00187, 1, 1},      {0x00189, 0x0018A, 205, 1},    {0x0018B, 0x0018B, 1, 1},
    {0x0018E, 0x0018E, 79, 1},     {0x0018F, 0x0018F, 202, 1},    {0x00190, 0x00190, 203, 1},
    {0x00191, 0x00191, 1, 1},      {0x00193, 0x00193, 205, 1},    {0x00194, 0x00194, 207, 1},
    {0x00196, 0x00196, 211, 1},    {0x00197, 0x00197, 209, 1},    {0x00198, 0x00198, 1, 1},
    {0x0019C, 0x0019C, 211, 1},    {0x0019D, 0x0019D, 213, 1},    {0x0019F, 0x0019F, 214, 1},
    {0x001A0, 0x001A4, 1, 2},      {0x001A6, 0x001A6, 218, 1},    {0x001A7, 0x001A7, 1, 1},
    {0x001A9, 0x001A9, 218, 1},    {0x001AC, 0x001AC, 1, 1},      {0x001AE, 0x001AE, 218, 1},
    {0x001AF, 0x001AF, 1, 1},      {0x001B1, 0x001B2, 217, 1},    {0x001B3, 0x001B5, 1, 2},
    {0x001B7, 0x001B7, 219, 1},    {0x001B8, 0x001B8, 1, 1},      {0x001BC, 0x001BC, 1, 1},
    {0x001C4, 0x001C4, 2, 1},      {0x001C5, 0x001C5, 1, 1},      {0x001C7, 0x001C7, 2, 1},
    {0x001C8, 0x001C8, 1, 1},      {0x001CA, 0x001CA, 2, 1},      {0x001CB, 0x001DB, 1, 2},
    {0x001DE, 0x001EE, 1, 2},      {0x001F1, 0x001F1, 2, 1},      {0x001F2, 0x001F4, 1, 2},
    {0x001F6, 0x001F6, -97, 1},    {0x001F7, 0x001F7, -56, 1},    {0x001F8, 0x0021E, 1, 2},
    {0x00220, 0x00220, -130, 1},   {0x00222, 0x00232, 1, 2},      {0x0023A, 0x0023A, 10795, 1},
    {0x0023B, 0x0023B, 1, 1},      {0x0023D, 0x0023D, -163, 1},   {0x0023E, 0x0023E, 10792, 1},
    {0x00241, 0x00241, 1, 1},      {0x00243, 0x00243, -195, 1},   {0x00244, 0x00244, 69, 1},
    {0x00245, 0x00245, 71, 1},     {0x00246, 0x0024E, 1, 2},      {0x00370, 0x00372, 1, 2},
    {0x00376, 0x00376, 1, 1},      {0x0037F, 0x0037F, 116, 1},    {0x00386, 0x00386, 38, 1},
    {0x00388, 0x0038A, 37, 1},     {0x0038C, 0x0038C, 64, 1},     {0x0038E, 0x0038F, 63, 1},
    {0x00391, 0x003A1, 32, 1},     {0x003A3, 0x003AB, 32, 1},     {0x003CF, 0x003CF, 8, 1},
    {0x003D8, 0x003EE, 1, 2},      {0x003F4, 0x003F4, -60, 1},    {0x003F7, 0x003F7, 1, 1},
    {0x003F9, 0x003F9, -7, 1},     {0x003FA, 0x003FA, 1, 1},      {0x003FD, 0x003FF, -130, 1},
    {0x00400, 0x0040F, 80, 1},     {0x00410, 0x0042F, 32, 1},     {0x00460, 0x00480, 1, 2},
    {0x0048A, 0x004BE, 1, 2},      {0x004C0, 0x004C0, 15, 1},     {0x004C1, 0x004CD, 1, 2},
    {0x004D0, 0x0052E, 1, 2},      {0x00531, 0x00556, 48, 1},     {0x010A0, 0x010C5, 7264, 1},
    {0x010C7, 0x010C7, 7264, 1},   {0x010CD, 0x010CD, 7264, 1},   {0x013A0, 0x013EF, 38864, 1},
    {0x013F0, 0x013F5, 8, 1},      {0x01C90, 0x01CBA, -3008, 1},  {0x01CBD, 0x01CBF, -3008, 1},
    {0x01E00, 0x01E94, 1, 2},      {0x01E9E, 0x01E9E, -7615, 1},  {0x01EA0, 0x01EFE, 1, 2},
    {0x01F08, 0x01F0F, -8, 1},     {0x01F18, 0x01F1D, -8, 1},     {0x01F28, 0x01F2F, -8, 1},
    {0x01F38, 0x01F3F, -8, 1},     {0x01F48, 0x01F4D, -8, 1},     {0x01F59, 0x01F5F, -8, 2},
    {0x01F68, 0x01F6F, -8, 1},     {0x01F88, 0x01F8F, -8, 1},     {0x01F98, 0x01F9F, -8, 1},
    {0x01FA8, 0x01FAF, -8, 1},     {0x01FB8, 0x01FB9, -8, 1},     {0x01FBA, 0x01FBB, -74, 1},
    {0x01FBC, 0x01FBC, -9, 1},     {0x01FC8, 0x01FCB, -86, 1},    {0x01FCC, 0x01FCC, -9, 1},
    {0x01FD8, 0x01FD9, -8, 1},     {0x01FDA, 0x01FDB, -100, 1},   {0x01FE8, 0x01FE9, -8, 1},
    {0x01FEA, 0x01FEB, -112, 1},   {0x01FEC, 0x01FEC, -7, 1},     {0x01FF8, 0x01FF9, -128, 1},
    {0x01FFA, 0x01FFB, -126, 1},   {0x01FFC, 0x01FFC, -9, 1},     {0x02126, 0x02126, -7517, 1},
    {0x0212A, 0x0212A, -8383, 1},  {0x0212B, 0x0212B, -8262, 1},  {0x02132, 0x02132, 28, 1},
    {0x02160, 0x0216F, 16, 1},     {0x02183, 0x02183, 1, 1},      {0x024B6, 0x024CF, 26, 1},
    {0x02C00, 0x02C2F, 48, 1},     {0x02C60, 0x02C60, 1, 1},      {0x02C62, 0x02C62, -10743, 1},
    {0x02C63, 0x02C63, -3814, 1},  {0x02C64, 0x02C64, -10727, 1}, {0x02C67, 0x02C6B, 1, 2},
    {0x02C6D, 0x02C6D, -10780, 1}, {0x02C6E, 0x02C6E, -10749, 1}, {0x02C6F, 0x02C6F, -10783, 1},
    {0x02C70, 0x02C70, -10782, 1}, {0x02C72, 0x02C72, 1, 1},      {0x02C75, 0x02C75, 1, 1},
    {0x02C7E, 0x02C7F, -10815, 1}, {0x02C80, 0x02CE2, 1, 2},      {0x02CEB, 0x02CED, 1, 2},
    {0x02CF2, 0x02CF2, 1, 1},      {0x0A640, 0x0A66C, 1, 2},      {0x0A680, 0x0A69A, 1, 2},
    {0x0A722, 0x0A72E, 1, 2},      {0x0A732, 0x0A76E, 1, 2},      {0x0A779, 0x0A77B, 1, 2},
    {0x0A77D, 0x0A77D, -35332, 1}, {0x0A77E, 0x0A786, 1, 2},      {0x0A78B, 0x0A78B, 1, 1},
    {0x0A78D, 0x0A78D, -42280, 1}, {0x0A790, 0x0A792, 1, 2},      {0x0A796, 0x0A7A8, 1, 2},
    {0x0A7AA, 0x0A7AA, -42308, 1}, {0x0A7AB, 0x0A7AB, -42319, 1}, {0x0A7AC, 0x0A7AC, -42315, 1},
    {0x0A7AD, 0x0A7AD, -42305, 1}, {0x0A7AE, 0x0A7AE, -42308, 1}, {0x0A7B0, 0x0A7B0, -42258, 1},
    {0x0A7B1, 0x0A7B1, -42282, 1}, {0x0A7B2, 0x0A7B2, -42261, 1}, {0x0A7B3, 0x0A7B3, 928, 1},
    {0x0A7B4, 0x0A7C2, 1, 2},      {0x0A7C4, 0x0A7C4, -48, 1},    {0x0A7C5, 0x0A7C5, -42307, 1},
    {0x0A7C6, 0x0A7C6, -35384, 1}, {0x0A7C7, 0x0A7C9, 1, 2},      {0x0A7D0, 0x0A7D0, 1, 1},
    {0x0A7D6, 0x0A7D8, 1, 2},      {0x0A7F5, 0x0A7F5, 1, 1},      {0x0FF21, 0x0FF3A, 32, 1},
    {0x10400, 0x10427, 40, 1},     {0x104B0, 0x104D3, 40, 1},     {0x10570, 0x1057A, 39, 1},
    {0x1057C, 0x1058A, 39, 1},     {0x1058C, 0x10592, 39, 1},     {0x10594, 0x10595, 39, 1},
    {0x10C80, 0x10CB2, 64, 1},     {0x118A0, 0x118BF, 32, 1},     {0x16E40, 0x16E5F, 32, 1},
    {0x1E900, 0x1E921, 34, 1},
};

static const cp_range CASED[] = {
    {0x00041, 0x0005A}, {0x00061, 0x0007A}, {0x000AA, 0x000AA}, {0x000B5, 0x000B5},
    {0x000BA, 0x000BA}, {0x000C0, 0x000D6}, {0x000D8, 0x000F6}, {0x000F8, 0x001BA},
    {0x001BC, 0x001BF}, {0x001C4, 0x00293}, {0x00295, 0x002B8}, {0x002C0, 0x002C1},
    {0x002E0, 0x002E4}, {0x00345, 0x00345}, {0x00370, 0x00373}, {0x00376, 0x00377},
    {0x0037A, 0x0037D}, {0x0037F, 0x0037F}, {0x00386, 0x00386}, {0x00388, 0x0038A},
    {0x0038C, 0x0038C}, {0x0038E, 0x003A1}, {0x003A3, 0x003F5}, {0x003F7, 0x00481},
    {0x0048A, 0x0052F}, {0x00531, 0x00556}, {0x00560, 0x00588}, {0x010A0, 0x010C5},
    {0x010C7, 0x010C7}, {0x010CD, 0x010CD}, {0x010D0, 0x010FA}, {0x010FD, 0x010FF},
    {0x013A0, 0x013F5}, {0x013F8, 0x013FD}, {0x01C80, 0x01C88}, {0x01C90, 0x01CBA},
    {0x01CBD, 0x01CBF}, {0x01D00, 0x01DBF}, {0x01E00, 0x01F15}, {0x01F18, 0x01F1D},
    {0x01F20, 0x01F45}, {0x01F48, 0x01F4D}, {0x01F50, 0x01F57}, {0x01F59, 0x01F59},
    {0x01F5B, 0x01F5B}, {0x01F5D, 0x01F5D}, {0x01F5F, 0x01F7D}, {0x01F80, 0x01FB4},
    {0x01FB6, 0x01FBC}, {0x01FBE, 0x01FBE}, {0x01FC2, 0x01FC4}, {0x01FC6, 0x01FCC},
    {0x01FD0, 0x01FD3}, {0x01FD6, 0x01FDB}, {0x01FE0, 0x01FEC}, {0x01FF2, 0x01FF4},
    {0x01FF6, 0x01FFC}, {0x02071, 0x02071}, {0x0207F, 0x0207F}, {0x02090, 0x0209C},
    {0x02102, 0x02102}, {0x02107, 0x02107}, {0x0210A, 0x02113}, {0x02115, 0x02115},
    {0x02119, 0x0211D}, {0x02124, 0x02124}, {0x02126, 0x02126}, {0x02128, 0x02128},
    {0x0212A, 0x0212D}, {0x0212F, 0x02134}, {0x02139, 0x02139}, {0x0213C, 0x0213F},
    {0x02145, 0x02149}, {0x0214E, 0x0214E}, {0x02160, 0x0217F}, {0x02183, 0x02184},
    {0x024B6, 0x024E9}, {0x02C00, 0x02CE4}, {0x02CEB, 0x02CEE}, {0x02CF2, 0x02CF3},
    {0x02D00, 0x02D25}, {0x02D27, 0x02D27}, {0x02D2D, 0x02D2D}, {0x0A640, 0x0A66D},
    {0x0A680, 0x0A69D}, {0x0A722, 0x0A787}, {0x0A78B, 0x0A78E}, {0x0A790, 0x0A7CA},
    {0x0A7D0, 0x0A7D1}, {0x0A7D3, 0x0A7D3}, {0x0A7D5, 0x0A7D9}, {0x0A7F5, 0x0A7F6},
    {0x0A7F8, 0x0A7FA}, {0x0AB30, 0x0AB5A}, {0x0AB5C, 0x0AB68}, {0x0AB70, 0x0ABBF},
    {0x0FB00, 0x0FB06}, {0x0FB13, 0x0FB17}, {0x0FF21, 0x0FF3A}, {0x0FF41, 0x0FF5A},
    {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10570, 0x1057A},
    {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1},
    {0x105A3, 0x105B1}, {0x105B3, 0x105B9}, {0x105BB, 0x105BC}, {0x10780, 0x10780},
    {0x10783, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10C80, 0x10CB2},
    {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x16E40, 0x16E7F}, {0x1D400, 0x1D454},
    {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6},
    {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3},
    {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C},
    {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544}, {0x1D546, 0x1D546},
    {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA},
    {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E},
    {0x1D750, 0x1D76E}, {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2},
    {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF09}, {0x1DF0B, 0x1DF1E}, {0x1E900, 0x1E943},
    {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189},
};

static const uint16_t WIDTH_FF5F[] = {
    // U+FF5F..U+FFEE; 0: unchanged (U+FFE3 is two characters)
    0x2985, 0x2986, 0x3002, 0x300C, 0x300D, 0x3001, 0x30FB, 0x30F2, 0x30A1, 0x30A3, 0x30A5, 0x30A7,
    0x30A9, 0x30E3, 0x30E5, 0x30E7, 0x30C3, 0x30FC, 0x30A2, 0x30A4, 0x30A6, 0x30A8, 0x30AA, 0x30AB,
    0x30AD, 0x30AF, 0x30B1, 0x30B3, 0x30B5, 0x30B7, 0x30B9, 0x30BB, 0x30BD, 0x30BF, 0x30C1, 0x30C4,
    0x30C6, 0x30C8, 0x30CA, 0x30CB, 0x30CC, 0x30CD, 0x30CE, 0x30CF, 0x30D2, 0x30D5, 0x30D8, 0x30DB,
    0x30DE, 0x30DF, 0x30E0, 0x30E1, 0x30E2, 0x30E4, 0x30E6, 0x30E8, 0x30E9, 0x30EA, 0x30EB, 0x30EC,
    0x30ED, 0x30EF, 0x30F3, 0x3099, 0x309A, 0x1160, 0x1100, 0x1101, 0x11AA, 0x1102, 0x11AC, 0x11AD,
    0x1103, 0x1104, 0x1105, 0x11B0, 0x11B1, 0x11B2, 0x11B3, 0x11B4, 0x11B5, 0x111A, 0x1106, 0x1107,
    0x1108, 0x1121, 0x1109, 0x110A, 0x110B, 0x110C, 0x110D, 0x110E, 0x110F, 0x1110, 0x1111, 0x1112,
    0x0000, 0x0000, 0x0000, 0x1161, 0x1162, 0x1163, 0x1164, 0x1165, 0x1166, 0x0000, 0x0000, 0x1167,
    0x1168, 0x1169, 0x116A, 0x116B, 0x116C, 0x0000, 0x0000, 0x116D, 0x116E, 0x116F, 0x1170, 0x1171,
    0x1172, 0x0000, 0x0000, 0x1173, 0x1174, 0x1175, 0x0000, 0x0000, 0x0000, 0x00A2, 0x00A3, 0x00AC,
    0x0000, 0x00A6, 0x00A5, 0x20A9, 0x0000, 0x2502, 0x2190, 0x2191, 0x2192, 0x2193, 0x25A0, 0x25CB,
};

static const entity ENTITIES[] = {
    // sorted by name (strcmp)
    {"AElig", 0xC6, 3},     {"AMP", 0x26, 3},      {"Aacute", 0xC1, 3},    {"Acirc", 0xC2, 3},
    {"Agrave", 0xC0, 3},    {"Alpha", 0x391, 1},   {"Aring", 0xC5, 3},     {"Atilde", 0xC3, 3},
    {"Auml", 0xC4, 3},      {"Beta", 0x392, 1},    {"COPY", 0xA9, 3},      {"Ccedil", 0xC7, 3},
    {"Chi", 0x3A7, 1},      {"Dagger", 0x2021, 1}, {"Delta", 0x394, 1},    {"ETH", 0xD0, 3},
    {"Eacute", 0xC9, 3},    {"Ecirc", 0xCA, 3},    {"Egrave", 0xC8, 3},    {"Epsilon", 0x395, 1},
    {"Eta", 0x397, 1},      {"Euml", 0xCB, 3},     {"GT", 0x3E, 3},        {"Gamma", 0x393, 1},
    {"Iacute", 0xCD, 3},    {"Icirc", 0xCE, 3},    {"Igrave", 0xCC, 3},    {"Iota", 0x399, 1},
    {"Iuml", 0xCF, 3},      {"Kappa", 0x39A, 1},   {"LT", 0x3C, 3},        {"Lambda", 0x39B, 1},
    {"Mu", 0x39C, 1},       {"Ntilde", 0xD1, 3},   {"Nu", 0x39D, 1},       {"OElig", 0x152, 1},
    {"Oacute", 0xD3, 3},    {"Ocirc", 0xD4, 3},    {"Ograve", 0xD2, 3},    {"Omega", 0x3A9, 1},
    {"Omicron", 0x39F, 1},  {"Oslash", 0xD8, 3},   {"Otilde", 0xD5, 3},    {"Ouml", 0xD6, 3},
    {"Phi", 0x3A6, 1},      {"Pi", 0x3A0, 1},      {"Prime", 0x2033, 1},   {"Psi", 0x3A8, 1},
    {"QUOT", 0x22, 3},      {"REG", 0xAE, 3},      {"Rho", 0x3A1, 1},      {"Scaron", 0x160, 1},
    {"Sigma", 0x3A3, 1},    {"THORN", 0xDE, 3},    {"Tau", 0x3A4, 1},      {"Theta", 0x398, 1},
    {"Uacute", 0xDA, 3},    {"Ucirc", 0xDB, 3},    {"Ugrave", 0xD9, 3},    {"Upsilon", 0x3A5, 1},
    {"Uuml", 0xDC, 3},      {"Xi", 0x39E, 1},      {"Yacute", 0xDD, 3},    {"Yuml", 0x178, 1},
    {"Zeta", 0x396, 1},     {"aacute", 0xE1, 3},   {"acirc", 0xE2, 3},     {"acute", 0xB4, 3},
    {"aelig", 0xE6, 3},     {"agrave", 0xE0, 3},   {"alefsym", 0x2135, 1}, {"alpha", 0x3B1, 1},
    {"amp", 0x26, 3},       {"and", 0x2227, 1},    {"ang", 0x2220, 1},     {"apos", 0x27, 1},
    {"aring", 0xE5, 3},     {"asymp", 0x2248, 1},  {"atilde", 0xE3, 3},    {"auml", 0xE4, 3},
    {"bdquo", 0x201E, 1},   {"beta", 0x3B2, 1},    {"brvbar", 0xA6, 3},    {"bull", 0x2022, 1},
    {"cap", 0x2229, 1},     {"ccedil", 0xE7, 3},   {"cedil", 0xB8, 3},     {"cent", 0xA2, 3},
    {"chi", 0x3C7, 1},      {"circ", 0x2C6, 1},    {"clubs", 0x2663, 1},   {"cong", 0x2245, 1},
    {"copy", 0xA9, 3},      {"crarr", 0x21B5, 1},  {"cup", 0x222A, 1},     {"curren", 0xA4, 3},
    {"dArr", 0x21D3, 1},    {"dagger", 0x2020, 1}, {"darr", 0x2193, 1},    {"deg", 0xB0, 3},
    {"delta", 0x3B4, 1},    {"diams", 0x2666, 1},  {"divide", 0xF7, 3},    {"eacute", 0xE9, 3},
    {"ecirc", 0xEA, 3},     {"egrave", 0xE8, 3},   {"empty", 0x2205, 1},   {"emsp", 0x2003, 1},
    {"ensp", 0x2002, 1},    {"epsilon", 0x3B5, 1}, {"equiv", 0x2261, 1},   {"eta", 0x3B7, 1},
    {"eth", 0xF0, 3},       {"euml", 0xEB, 3},     {"euro", 0x20AC, 1},    {"exist", 0x2203, 1},
    {"fnof", 0x192, 1},     {"forall", 0x2200, 1}, {"frac12", 0xBD, 3},    {"frac14", 0xBC, 3},
    {"frac34", 0xBE, 3},    {"frasl", 0x2044, 1},  {"gamma", 0x3B3, 1},    {"ge", 0x2265, 1},
    {"gt", 0x3E, 3},        {"hArr", 0x21D4, 1},   {"harr", 0x2194, 1},    {"hearts", 0x2665, 1},
    {"hellip", 0x2026, 1},  {"iacute", 0xED, 3},   {"icirc", 0xEE, 3},     {"iexcl", 0xA1, 3},
    {"igrave", 0xEC, 3},    {"image", 0x2111, 1},  {"infin", 0x221E, 1},   {"int", 0x222B, 1},
    {"iota", 0x3B9, 1},     {"iquest", 0xBF, 3},   {"isin", 0x2208, 1},    {"iuml", 0xEF, 3},
    {"kappa", 0x3BA, 1},    {"lArr", 0x21D0, 1},   {"lambda", 0x3BB, 1},   {"lang", 0x27E8, 1},
    {"laquo", 0xAB, 3},     {"larr", 0x2190, 1},   {"lceil", 0x2308, 1},   {"ldquo", 0x201C, 1},
    {"le", 0x2264, 1},      {"lfloor", 0x230A, 1}, {"lowast", 0x2217, 1},  {"loz", 0x25CA, 1},
    {"lrm", 0x200E, 1},     {"lsaquo", 0x2039, 1}, {"lsquo", 0x2018, 1},   {"lt", 0x3C, 3},
    {"macr", 0xAF, 3},      {"mdash", 0x2014, 1},  {"micro", 0xB5, 3},     {"middot", 0xB7, 3},
    {"minus", 0x2212, 1},   {"mu", 0x3BC, 1},      {"nabla", 0x2207, 1},   {"nbsp", 0xA0, 3},
    {"ndash", 0x2013, 1},   {"ne", 0x2260, 1},     {"ni", 0x220B, 1},      {"not", 0xAC, 3},
    {"notin", 0x2209, 1},   {"nsub", 0x2284, 1},   {"ntilde", 0xF1, 3},    {"nu", 0x3BD, 1},
    {"oacute", 0xF3, 3},    {"ocirc", 0xF4, 3},    {"oelig", 0x153, 1},    {"ograve", 0xF2, 3},
    {"oline", 0x203E, 1},   {"omega", 0x3C9, 1},   {"omicron", 0x3BF, 1},  {"oplus", 0x2295, 1},
    {"or", 0x2228, 1},      {"ordf", 0xAA, 3},     {"ordm", 0xBA, 3},      {"oslash", 0xF8, 3},
    {"otilde", 0xF5, 3},    {"otimes", 0x2297, 1}, {"ouml", 0xF6, 3},      {"para", 0xB6, 3},
    {"part", 0x2202, 1},    {"permil", 0x2030, 1}, {"perp", 0x22A5, 1},    {"phi", 0x3C6, 1},
    {"pi", 0x3C0, 1},       {"piv", 0x3D6, 1},     {"plusmn", 0xB1, 3},    {"pound", 0xA3, 3},
    {"prime", 0x2032, 1},   {"prod", 0x220F, 1},   {"prop", 0x221D, 1},    {"psi", 0x3C8, 1},
    {"quot", 0x22, 3},      {"rArr", 0x21D2, 1},   {"radic", 0x221A, 1},   {"rang", 0x27E9, 1},
    {"raquo", 0xBB, 3},     {"rarr", 0x2192, 1},   {"rceil", 0x2309, 1},   {"rdquo", 0x201D, 1},
    {"real", 0x211C, 1},    {"reg", 0xAE, 3},      {"rfloor", 0x230B, 1},  {"rho", 0x3C1, 1},
    {"rlm", 0x200F, 1},     {"rsaquo", 0x203A, 1}, {"rsquo", 0x2019, 1},   {"sbquo", 0x201A, 1},
    {"scaron", 0x161, 1},   {"sdot", 0x22C5, 1},   {"sect", 0xA7, 3},      {"shy", 0xAD, 3},
    {"sigma", 0x3C3, 1},    {"sigmaf", 0x3C2, 1},  {"sim", 0x223C, 1},     {"spades", 0x2660, 1},
    {"sub", 0x2282, 1},     {"sube", 0x2286, 1},   {"sum", 0x2211, 1},     {"sup", 0x2283, 1},
    {"sup1", 0xB9, 3},      {"sup2", 0xB2, 3},     {"sup3", 0xB3, 3},      {"supe", 0x2287, 1},
    {"szlig", 0xDF, 3},     {"tau", 0x3C4, 1},     {"there4", 0x2234, 1},  {"theta", 0x3B8, 1},
    {"thetasym", 0x3D1, 1}, {"thinsp", 0x2009, 1}, {"thorn", 0xFE, 3},     {"tilde", 0x2DC, 1},
    {"times", 0xD7, 3},     {"trade", 0x2122, 1},  {"uArr", 0x21D1, 1},    {"uacute", 0xFA, 3},
    {"uarr", 0x2191, 1},    {"ucirc", 0xFB, 3},    {"ugrave", 0xF9, 3},    {"uml", 0xA8, 3},
    {"upsih", 0x3D2, 1},    {"upsilon", 0x3C5, 1}, {"uuml", 0xFC, 3},      {"weierp", 0x2118, 1},
    {"xi", 0x3BE, 1},       {"yacute", 0xFD, 3},   {"yen", 0xA5, 3},       {"yuml", 0xFF, 3},
    {"zeta", 0x3B6, 1},     {"zwj", 0x200D, 1},    {"zwnj", 0x200C, 1},
};

/* Windows-1252 for 0x80..0x9F; its five holes map to themselves (ftfy's "sloppy" codec, and
 * Python's html.unescape table for &#128;..&#159;). */
static const uint16_t CP1252_C1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* ftfy's LIGATURES: Latin ligatures and digraphs -> their letters. */
static const struct {
    uint16_t cp;
    uint16_t to[3];
} LIGATURES[] = {
    {0x0132, {'I', 'J'}},      {0x0133, {'i', 'j'}},      {0x0149, {0x02BC, 'n'}},
    {0x01C4, {'D', 0x017D}},   {0x01C5, {'D', 0x017E}},   {0x01C6, {'d', 0x017E}},
    {0x01C7, {'L', 'J'}},      {0x01C8, {'L', 'j'}},      {0x01C9, {'l', 'j'}},
    {0x01CA, {'N', 'J'}},      {0x01CB, {'N', 'j'}},      {0x01CC, {'n', 'j'}},
    {0x01F1, {'D', 'Z'}},      {0x01F2, {'D', 'z'}},      {0x01F3, {'d', 'z'}},
    {0xFB00, {'f', 'f'}},      {0xFB01, {'f', 'i'}},      {0xFB02, {'f', 'l'}},
    {0xFB03, {'f', 'f', 'i'}}, {0xFB04, {'f', 'f', 'l'}}, {0xFB05, {0x017F, 't'}},
    {0xFB06, {'s', 't'}},
};

/* ---- Text clean-up (steps 2 to 4) ------------------------------------------------------------ */

static bool is_ascii_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Python's str.isspace, a superset of the regex module's \s by U+1C..U+1F only, which ftfy
 * has removed before whitespace is looked at. */
bool vki_clip_is_space(uint32_t c)
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
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
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
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
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
            if (v != UINT32_MAX) clip_put_cp(w, out, v);
            i = k;
            continue;
        }
        const entity *e = find_entity(s + j, k - j);
        if (e && (e->forms & 1)) {
            clip_put_cp(w, out, e->cp);
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
                clip_put_cp(w, out, c);
                if (second) clip_put_cp(w, out, second);
                i = k;
                continue;
            }
        }
    literal:
        clip_put_cp(w, out, s[i]);
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
            clip_put_cp(w, out, s[i]);
            continue;
        }
        if (s[i + 1] == '#') {
            uint32_t num;
            size_t used = read_number(s, i + 1, n, &num);
            if (!used) {
                clip_put_cp(w, out, s[i]);
                continue;
            }
            uint32_t v = charref_value(num);
            if (v != UINT32_MAX) clip_put_cp(w, out, v);
            i += used;
            if (i + 1 < n && s[i + 1] == ';') i++;
            continue;
        }
        size_t j = i + 1, k = j;
        while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' && s[k] != '\f' && s[k] != ' ' &&
               s[k] != '<' && s[k] != '&' && s[k] != '#' && s[k] != ';')
            k++;
        if (k == j) {
            clip_put_cp(w, out, s[i]);
            continue;
        }
        bool semi = k < n && s[k] == ';';
        const entity *e = find_entity(s + j, k - j);
        if (e && (e->forms & (semi ? 1 : 2))) {
            clip_put_cp(w, out, e->cp);
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
            clip_put_cp(w, out, e->cp);
            i = j + x - 1;
            continue;
        }
        clip_put_cp(w, out, s[i]);
    }
}

static bool ends_line_or_text(const uint32_t *s, size_t i, size_t n)
{
    return i + 1 >= n || s[i] == '\n';
}

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
            for (int m = 0; m < 3 && LIGATURES[l].to[m]; m++)
                clip_put_cp(w, &a, LIGATURES[l].to[m]);
            done = true;
        }
        if (done) continue;
        if (c == 0x3000)
            c = ' ';
        else if (c >= 0xFF01 && c <= 0xFF5E)
            c -= 0xFEE0;
        else if (c == 0xFFE3) { // NFKC: space + combining macron
            clip_put_cp(w, &a, ' ');
            c = 0x304;
        } else if (c >= 0xFF5F && c <= 0xFFEE && WIDTH_FF5F[c - 0xFF5F]) {
            c = WIDTH_FF5F[c - 0xFF5F];
        }
        clip_put_cp(w, &a, c);
    }
    // Quotes and line breaks map one to one (CR LF -> LF aside); then the two removals.
    const uint32_t *t = a.p;
    out->n = 0;
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = t[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B))
            c = '\'';
        else if (c >= 0x201C && c <= 0x201F)
            c = '"';
        else if (c == '\r' && i + 1 < a.n && t[i + 1] == '\n')
            continue;
        else if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
            c = '\n';
        clip_put_cp(w, out, c);
    }
    clip_vec_free(w, &a);
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
            clip_put_cp(w, &line, s[k]);
            if (s[k] == '<') html = false;
        }
        for (int pass = 0; pass < MAX_FIX_PASSES && !w->oom; pass++) {
            orig.n = 0;
            for (size_t k = 0; k < line.n; k++) clip_put_cp(w, &orig, ((uint32_t *)line.p)[k]);
            if (html) {
                unescape_ftfy(w, &line, &next);
                swap(&line, &next);
            }
            fix_chars(w, &line, &next);
            swap(&line, &next);
            if (same(&line, &orig)) break;
        }
        for (size_t k = 0; k < line.n; k++) clip_put_cp(w, out, ((uint32_t *)line.p)[k]);
        i = e;
    }
    clip_vec_free(w, &line);
    clip_vec_free(w, &next);
    clip_vec_free(w, &orig);
}

static uint32_t lower_of(uint32_t c)
{
    size_t lo = 0, hi = sizeof LOWER_RUNS / sizeof LOWER_RUNS[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < LOWER_RUNS[mid].first)
            hi = mid;
        else if (c > LOWER_RUNS[mid].last)
            lo = mid + 1;
        else
            return (c - LOWER_RUNS[mid].first) % LOWER_RUNS[mid].stride
                       ? c
                       : (uint32_t)((int32_t)c + LOWER_RUNS[mid].delta);
    }
    return c;
}

static bool is_cased(uint32_t c) // Unicode's Cased property (CASED above)
{
    size_t lo = 0, hi = sizeof CASED / sizeof CASED[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < CASED[mid].first)
            hi = mid;
        else if (c > CASED[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* Unicode's Case_Ignorable (marks, format characters, modifier letters and symbols, word-inner
 * punctuation), for the blocks around Latin, Greek and Cyrillic text and emoji; elsewhere a
 * character counts as not ignorable, which can only change a sigma next to it. */
static bool is_case_ignorable(uint32_t c)
{
    return c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xA8 || c == 0xAD ||
           c == 0xAF || c == 0xB4 || c == 0xB7 || c == 0xB8 || (c >= 0x2B0 && c <= 0x36F) ||
           c == 0x374 || c == 0x375 || c == 0x37A || c == 0x384 || c == 0x385 || c == 0x387 ||
           (c >= 0x483 && c <= 0x489) || (c >= 0x1AB0 && c <= 0x1ACE) ||
           (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x200B && c <= 0x200F) || c == 0x2018 ||
           c == 0x2019 || c == 0x2024 || c == 0x2027 || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2060 && c <= 0x2064) || (c >= 0x20D0 && c <= 0x20F0) ||
           (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFE20 && c <= 0xFE2F) || c == 0xFEFF ||
           (c >= 0x1F3FB && c <= 0x1F3FF) || c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F) ||
           (c >= 0xE0100 && c <= 0xE01EF);
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
        if (vki_clip_is_space(c)) {
            space = out->n > 0;
            continue;
        }
        if (space) clip_put_byte(w, out, ' ');
        space = false;
        if (c == 0x130) {
            vki_clip_put_utf8(w, out, 'i');
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
        vki_clip_put_utf8(w, out, c);
    }
}

/* Steps 1 to 4: text -> the cleaned, lower-cased UTF-8 the pre-tokenizer reads. */
void vki_clip_clean_text(work *w, const char *text, size_t len, vec *out)
{
    vec a = {0}, b = {0};
    for (size_t i = 0; i < len && !w->oom;)
        clip_put_cp(w, &a, vki_clip_utf8_next((const uint8_t *)text, len, &i));
    fix_text(w, &a, &b);
    unescape_html(w, &b, &a);
    unescape_html(w, &a, &b);
    clean_lower(w, &b, out);
    clip_vec_free(w, &a);
    clip_vec_free(w, &b);
}
