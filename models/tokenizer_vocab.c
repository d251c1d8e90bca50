/* Tokenizer set-up: the vocabulary from GGUF (validated: every array's type and length, every
 * token type), the spelling and merge hash maps, the pre-tokenizer regexes, the special-token
 * buckets and the end-of-generation ids. */
#include "tokenizer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Allocation ------------------------------------------------------------------------------ */

void *vki_tok_alloc(const vki_allocator *a, size_t count, size_t elem)
{
    if (elem && count > SIZE_MAX / elem) return NULL;
    size_t bytes = count * elem;
    if (bytes == 0) bytes = 1;
    return a->alloc ? a->alloc(a->user, bytes) : malloc(bytes);
}

void vki_tok_free(const vki_allocator *a, void *p)
{
    if (!p) return;
    if (a->free) a->free(a->user, p);
    else free(p);
}

/* PCRE2 takes its memory through the tokenizer's allocator too. */
static void *pcre_alloc(PCRE2_SIZE size, void *user) { return vki_tok_alloc(user, 1, size); }
static void pcre_free(void *p, void *user) { vki_tok_free(user, p); }

/* ---- Hash maps ------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u; // FNV-1a, then a final mix so the low bits spread
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3u;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 32);
}

static uint64_t hash_pair(uint64_t key)
{
    key *= 0x9e3779b97f4a7c15u;
    return key ^ (key >> 29);
}

int32_t vki_tok_map_find(const vki_tok_map *m, const char *s, size_t len)
{
    for (uint64_t i = hash_bytes(s, len) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (v == 0) return -1;
        const vki_tok_token *t = &m->tokens[v - 1];
        if (t->len == len && memcmp(m->text + t->off, s, len) == 0) return (int32_t)(v - 1);
    }
}

/* Adds token `id`; an earlier token with the same spelling gives way (llama.cpp's map keeps the
 * last). */
static void map_put(vki_tok_map *m, uint32_t id)
{
    const vki_tok_token *t = &m->tokens[id];
    const char *s = m->text + t->off;
    for (uint64_t i = hash_bytes(s, t->len) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (v != 0) {
            const vki_tok_token *o = &m->tokens[v - 1];
            if (o->len != t->len || memcmp(m->text + o->off, s, t->len) != 0) continue;
        }
        m->slots[i] = id + 1;
        return;
    }
}

bool vki_tok_pairs_find(const vki_tok_pairs *p, int32_t left, int32_t right, uint32_t *out_rank,
                        int32_t *out_result)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_pair(key) & p->mask;; i = (i + 1) & p->mask) {
        const vki_tok_pair *e = &p->slots[i];
        if (e->key == UINT64_MAX) return false;
        if (e->key == key) {
            *out_rank = e->rank;
            *out_result = e->result;
            return true;
        }
    }
}

/* Adds a merge unless the pair has one already (llama.cpp keeps the first, lowest rank). */
static void pairs_put(vki_tok_pairs *p, int32_t left, int32_t right, uint32_t rank, int32_t result)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_pair(key) & p->mask;; i = (i + 1) & p->mask) {
        vki_tok_pair *e = &p->slots[i];
        if (e->key == key) return;
        if (e->key == UINT64_MAX) {
            *e = (vki_tok_pair){key, rank, result};
            return;
        }
    }
}

/* Smallest power of two >= 2n (load factor at most one half). */
static uint64_t table_size(uint64_t n)
{
    uint64_t c = 16;
    while (c < 2 * n) c *= 2;
    return c;
}

/* ---- Pre-tokenizers -------------------------------------------------------------------------- */

/* llama.cpp's regexes (llama-vocab.cpp), by tokenizer.ggml.pre. Llama 3's and Qwen2's
 * case-insensitive contractions are spelled out as classes, as llama.cpp adapts them, so that
 * Unicode case folding cannot turn "'ſ" into a contraction. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                               \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                           \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct pre_tokenizer {
    const char *names; // NUL-separated, ended by an empty name
    const char *regex[VKI_TOK_MAX_REGEXES];
    bool ignore_merges; // a piece that is a whole token is that token, unmerged
    bool add_bos;       // BOS by default (tokenizer.ggml.add_bos_token overrides)
} pre_tokenizer;

static const pre_tokenizer PRE_TOKENIZERS[] = {
    {"default\0\0",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     false,
     false},
    {"gpt-2\0phi-2\0mpt\0\0", {RE_GPT2}, false, false},
    // Falcon's: punctuation runs (the default's, and the backtick) first, no \p{N}+ pass.
    {"falcon\0\0", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    // Digits one by one, then GPT-2's split (SmolLM2's Digits + ByteLevel pre-tokenizer).
    {"smollm\0starcoder\0refact\0command-r\0codeshell\0exaone\0minerva\0\0",
     {"\\p{N}", RE_GPT2},
     false,
     false},
    // Llama 3 files often lack add_bos_token; llama.cpp adds BOS for this pre-tokenizer anyway.
    {"llama-bpe\0llama3\0llama-v3\0\0", {RE_LLAMA3}, true, true},
    {"qwen2\0deepseek-r1-qwen\0\0", {RE_QWEN2}, false, false},
};

static const pre_tokenizer *find_pre_tokenizer(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof PRE_TOKENIZERS / sizeof PRE_TOKENIZERS[0]; i++)
        for (const char *n = PRE_TOKENIZERS[i].names; *n; n += strlen(n) + 1)
            if (strlen(n) == len && memcmp(n, name, len) == 0) return &PRE_TOKENIZERS[i];
    return NULL;
}

/* ---- Creation -------------------------------------------------------------------------------- */

typedef struct loader {
    vki_tokenizer *t;
    vki_gguf *g;
    char *err;
    size_t err_size;
} loader;

static vki_status say(loader *l, vki_status st, const char *fmt, ...)
{
    if (l->err && l->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err, l->err_size, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* The GGUF reader's own message for a failed getter (it names the key and the types). */
static vki_status gguf_says(loader *l, vki_status st)
{
    return say(l, st, "%s", vki_gguf_last_error(l->g));
}

/* An optional token id: absent, or outside the vocabulary (as llama.cpp treats it), is `dflt`. */
static int32_t read_id(loader *l, const char *key, int32_t dflt)
{
    uint32_t v;
    if (vki_gguf_get_u32(l->g, key, &v) != VKI_OK) return dflt;
    return v < l->t->n_vocab ? (int32_t)v : -1;
}

static vki_status read_bool(loader *l, const char *key, bool *out)
{
    vki_status st = vki_gguf_get_bool(l->g, key, out);
    return st == VKI_ERROR_NOT_FOUND ? VKI_OK : st ? gguf_says(l, st) : VKI_OK;
}

/* An optional array that must have one element per token when present. */
static vki_status read_per_token(loader *l, const char *key, vki_gguf_array *a, bool *present)
{
    vki_status st = vki_gguf_get_array(l->g, key, a);
    *present = st == VKI_OK;
    if (st == VKI_ERROR_NOT_FOUND) return VKI_OK;
    if (st) return gguf_says(l, st);
    if (a->count != l->t->n_vocab)
        return say(l, VKI_ERROR_BAD_FILE, "%s has %llu entries, tokenizer.ggml.tokens %u", key,
                   (unsigned long long)a->count, l->t->n_vocab);
    return VKI_OK;
}

static vki_status read_tokens(loader *l)
{
    vki_tokenizer *t = l->t;
    vki_gguf_array toks, types, scores;
    vki_status st = vki_gguf_get_array(l->g, "tokenizer.ggml.tokens", &toks);
    if (st) return gguf_says(l, st == VKI_ERROR_NOT_FOUND ? VKI_ERROR_BAD_FILE : st);
    if (toks.type != VKI_GGUF_TYPE_STRING || toks.count == 0 || toks.count > INT32_MAX)
        return say(l, VKI_ERROR_BAD_FILE, "tokenizer.ggml.tokens is not 1..2^31-1 strings");
    t->n_vocab = (uint32_t)toks.count;
    bool has_types, has_scores;
    VKI_TRY(read_per_token(l, "tokenizer.ggml.token_type", &types, &has_types));
    VKI_TRY(read_per_token(l, "tokenizer.ggml.scores", &scores, &has_scores));

    uint64_t total = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        vki_gguf_string s;
        if ((st = vki_gguf_array_get_string(l->g, &toks, i, &s))) return gguf_says(l, st);
        total += s.size;
    }
    if (total > UINT32_MAX)
        return say(l, VKI_ERROR_BAD_FILE, "tokenizer.ggml.tokens spell over 4 GiB");
    t->tokens = vki_tok_alloc(&t->alloc, t->n_vocab, sizeof *t->tokens);
    t->text = vki_tok_alloc(&t->alloc, (size_t)total, 1);
    if (!t->tokens || !t->text) return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    uint32_t off = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        vki_gguf_string s;
        int64_t type = VKI_TOKEN_TYPE_NORMAL;
        float score = 0.0f;
        vki_gguf_array_get_string(l->g, &toks, i, &s);
        if (has_types && (st = vki_gguf_array_get_i64(l->g, &types, i, &type)))
            return gguf_says(l, st);
        if (has_scores && (st = vki_gguf_array_get_f32(l->g, &scores, i, &score)))
            return gguf_says(l, st);
        if (type < 0 || type >= VKI_TOKEN_TYPE_COUNT)
            return say(l, VKI_ERROR_BAD_FILE,
                       "tokenizer.ggml.token_type[%u] is %lld, not a token type (0..6)", i,
                       (long long)type);
        memcpy(t->text + off, s.data, (size_t)s.size);
        t->tokens[i] = (vki_tok_token){off, (uint32_t)s.size, score, (uint8_t)type};
        off += (uint32_t)s.size;
    }

    uint64_t cap = table_size(t->n_vocab);
    t->by_text = (vki_tok_map){vki_tok_alloc(&t->alloc, (size_t)cap, sizeof(uint32_t)),
                               (uint32_t)(cap - 1), t->tokens, t->text};
    if (!t->by_text.slots) return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(t->by_text.slots, 0, (size_t)cap * sizeof(uint32_t));
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->tokens[i].len)
            map_put(&t->by_text, i); // llama.cpp renames empty ones: never matched
    return VKI_OK;
}

static vki_status read_merges(loader *l)
{
    vki_tokenizer *t = l->t;
    vki_gguf_array m;
    vki_status st = vki_gguf_get_array(l->g, "tokenizer.ggml.merges", &m);
    if (st) return gguf_says(l, st == VKI_ERROR_NOT_FOUND ? VKI_ERROR_BAD_FILE : st);
    if (m.type != VKI_GGUF_TYPE_STRING || m.count > UINT32_MAX)
        return say(l, VKI_ERROR_BAD_FILE, "tokenizer.ggml.merges is not an array of strings");
    uint64_t cap = table_size(m.count);
    t->merges.slots = vki_tok_alloc(&t->alloc, (size_t)cap, sizeof *t->merges.slots);
    if (!t->merges.slots) return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    t->merges.mask = cap - 1;
    for (uint64_t i = 0; i < cap; i++) t->merges.slots[i].key = UINT64_MAX;
    char *joined = NULL;
    size_t joined_cap = 0;
    for (uint32_t i = 0; i < (uint32_t)m.count; i++) {
        vki_gguf_string s;
        if ((st = vki_gguf_array_get_string(l->g, &m, i, &s))) {
            vki_tok_free(&t->alloc, joined);
            return gguf_says(l, st);
        }
        // "left right", split at the first space after the first byte (as llama.cpp does).
        const char *sp = s.size > 1 ? memchr(s.data + 1, ' ', (size_t)s.size - 1) : NULL;
        if (!sp) continue;
        size_t ll = (size_t)(sp - s.data), rl = (size_t)s.size - ll - 1;
        if (ll + rl > joined_cap) {
            vki_tok_free(&t->alloc, joined);
            joined_cap = ll + rl;
            if (!(joined = vki_tok_alloc(&t->alloc, joined_cap, 1)))
                return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        }
        memcpy(joined, s.data, ll);
        memcpy(joined + ll, sp + 1, rl);
        int32_t a = vki_tok_map_find(&t->by_text, s.data, ll),
                b = vki_tok_map_find(&t->by_text, sp + 1, rl);
        int32_t r = vki_tok_map_find(&t->by_text, joined, ll + rl);
        if (a >= 0 && b >= 0 && r >= 0) pairs_put(&t->merges, a, b, i, r);
    }
    vki_tok_free(&t->alloc, joined);
    return VKI_OK;
}

typedef struct by_length {
    uint32_t len;
    int32_t id;
} by_length;

static int longest_first(const void *pa, const void *pb)
{
    const by_length *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static vki_status index_specials(loader *l)
{
    vki_tokenizer *t = l->t;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->tokens[i].type;
        if (t->tokens[i].len && (ty == VKI_TOKEN_TYPE_CONTROL ||
                                 ty == VKI_TOKEN_TYPE_USER_DEFINED || ty == VKI_TOKEN_TYPE_UNKNOWN))
            n++;
    }
    by_length *order = vki_tok_alloc(&t->alloc, n, sizeof *order);
    t->specials = vki_tok_alloc(&t->alloc, n, sizeof *t->specials);
    t->special_next = vki_tok_alloc(&t->alloc, n, sizeof *t->special_next);
    t->special_seen = vki_tok_alloc(&t->alloc, n, 1);
    t->special_head = vki_tok_alloc(&t->alloc, VKI_TOK_SPECIAL_BUCKETS, sizeof *t->special_head);
    if (!order || !t->specials || !t->special_next || !t->special_seen || !t->special_head) {
        vki_tok_free(&t->alloc, order);
        return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->tokens[i].type;
        if (t->tokens[i].len && (ty == VKI_TOKEN_TYPE_CONTROL ||
                                 ty == VKI_TOKEN_TYPE_USER_DEFINED || ty == VKI_TOKEN_TYPE_UNKNOWN))
            order[n++] = (by_length){t->tokens[i].len, (int32_t)i};
    }
    // llama.cpp sorts by length only (std::sort, unstable); ties by id here, to be repeatable.
    qsort(order, n, sizeof *order, longest_first);
    for (uint32_t b = 0; b < VKI_TOK_SPECIAL_BUCKETS; b++) t->special_head[b] = UINT32_MAX;
    memset(t->special_seen, 0, n);
    for (uint32_t k = n; k-- > 0;) { // prepending from the end leaves each bucket in rank order
        t->specials[k] = order[k].id;
        const vki_tok_token *tk = &t->tokens[order[k].id];
        uint32_t b = vki_tok_bucket(t->text + tk->off, tk->len);
        t->special_next[k] = t->special_head[b];
        t->special_head[b] = k;
    }
    t->n_specials = n;
    vki_tok_free(&t->alloc, order);
    return VKI_OK;
}

static void add_end(vki_tokenizer *t, int32_t id)
{
    if (id < 0 || t->n_end == VKI_TOK_MAX_END_IDS) return;
    for (uint32_t i = 0; i < t->n_end; i++)
        if (t->end_ids[i] == id) return;
    t->end_ids[t->n_end++] = id;
}

/* llama.cpp's end-of-generation set (llama-vocab.cpp, special_eog_ids): the eos, eot and eom ids,
 * the tokens spelled as turn or text ends, and the fill-in-the-middle pad, repository and file
 * separators (a code model that writes one has left the answer). As llama.cpp does, a listed
 * spelling that the file does not type CONTROL is made CONTROL: it is then never printed and
 * never matched in typed text. Unlike llama.cpp, "</s>" is not on the list: it ends PaddleOCR's
 * turns but is ordinary HTML in Gemma 3's vocabulary, where stopping on it would cut answers. */
static void find_end_ids(loader *l)
{
    static const char *const ENDS[] = {
        "<|eot_id|>",    "<|im_end|>", "<|end|>",         "<|return|>",
        "<|call|>",      "<|flush|>",  "<|calls|>",       "<end_of_turn>",
        "<|endoftext|>", "<|eom_id|>", "<EOT>",           "_<EOT>",
        "[EOT]",         "[EOS]",      "<|end_of_text|>", "<end_of_utterance>",
        "<eos>",         "<turn|>",    "<|tool_response>"};
    static const char *const FIM[] = {"<|fim_pad|>",  "<fim-pad>",     "<fim_pad>",
                                      "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                      "<REPO>",       "<reponame>",    "<|file_sep|>"};
    vki_tokenizer *t = l->t;
    add_end(t, t->eos);
    add_end(t, read_id(l, "tokenizer.ggml.eot_token_id", -1));
    add_end(t, read_id(l, "tokenizer.ggml.eom_token_id", -1));
    for (size_t i = 0; i < sizeof FIM / sizeof FIM[0]; i++)
        add_end(t, vki_tok_map_find(&t->by_text, FIM[i], strlen(FIM[i])));
    for (size_t i = 0; i < sizeof ENDS / sizeof ENDS[0]; i++) {
        int32_t id = vki_tok_map_find(&t->by_text, ENDS[i], strlen(ENDS[i]));
        if (id < 0) continue;
        add_end(t, id);
        t->tokens[id].type = VKI_TOKEN_TYPE_CONTROL;
    }
}

static vki_status read_chat_template(loader *l)
{
    vki_tokenizer *t = l->t;
    vki_gguf_string src = {0}, arch = {0};
    vki_status st = vki_gguf_get_string(l->g, "tokenizer.chat_template", &src);
    if (st && st != VKI_ERROR_NOT_FOUND) return gguf_says(l, st);
    if (st == VKI_OK) {
        t->chat_template = vki_chat_template_detect(src.data, (size_t)src.size);
        size_t n = vki_chat_template_default_system(src.data, (size_t)src.size, NULL, 0);
        if (n) {
            if (!(t->default_system = vki_tok_alloc(&t->alloc, n + 1, 1)))
                return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
            vki_chat_template_default_system(src.data, (size_t)src.size, t->default_system, n + 1);
        }
    } else if (vki_gguf_get_string(l->g, "general.architecture", &arch) == VKI_OK &&
               arch.size >= 5 && memcmp(arch.data, "gemma", 5) == 0) {
        // Gemma files converted from base models carry no template; Gemma's is the one it knows.
        t->chat_template = VKI_CHAT_TEMPLATE_GEMMA;
    }
    return VKI_OK;
}

static vki_status compile_regexes(loader *l, const pre_tokenizer *pre)
{
    vki_tokenizer *t = l->t;
    t->pcre_ctx = pcre2_general_context_create(pcre_alloc, pcre_free, &t->alloc);
    pcre2_compile_context *cc = t->pcre_ctx ? pcre2_compile_context_create(t->pcre_ctx) : NULL;
    if (!cc) return say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    vki_status st = VKI_OK;
    for (uint32_t i = 0; i < VKI_TOK_MAX_REGEXES && pre->regex[i]; i++) {
        int code;
        PCRE2_SIZE at;
        // MATCH_INVALID_UTF: invalid bytes never match and land in the gaps between matches, so
        // any input is safe and its bytes survive.
        t->regex[i] =
            pcre2_compile((PCRE2_SPTR)pre->regex[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, cc);
        if (!t->regex[i]) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof msg);
            st = say(l,
                     code == PCRE2_ERROR_NOMEMORY ? VKI_ERROR_OUT_OF_HOST_MEMORY
                                                  : VKI_ERROR_UNSUPPORTED,
                     "pre-tokenizer regex %u does not compile at offset %zu: %s", i, (size_t)at,
                     (const char *)msg);
            break;
        }
        pcre2_jit_compile(t->regex[i], PCRE2_JIT_COMPLETE); // optional: interpreted without it
        t->n_regex++;
    }
    pcre2_compile_context_free(cc);
    if (st == VKI_OK && !(t->match = pcre2_match_data_create(1, t->pcre_ctx)))
        st = say(l, VKI_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    return st;
}

static void put_cp(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else { // GPT-2's alphabet is all below U+0800
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static void byte_alphabet(vki_tokenizer *t)
{
    // GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other 68
    // (controls, space, DEL, NBSP, soft hyphen) for U+0100 onwards, in byte order.
    uint32_t next = 0x100;
    for (uint32_t cp = 0; cp < 0x144; cp++) t->cp_byte[cp] = -1;
    for (uint32_t b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        t->byte_cp[b] = (uint16_t)(printable ? b : next++);
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    }
}

static vki_status load(loader *l)
{
    vki_tokenizer *t = l->t;
    vki_gguf_string model, pre = {"default", 7};
    vki_status st = vki_gguf_get_string(l->g, "tokenizer.ggml.model", &model);
    if (st) return gguf_says(l, st == VKI_ERROR_NOT_FOUND ? VKI_ERROR_BAD_FILE : st);
    if (model.size == 4 && memcmp(model.data, "gpt2", 4) == 0) t->kind = VKI_TOK_BPE;
    else if (model.size == 5 && memcmp(model.data, "llama", 5) == 0) t->kind = VKI_TOK_SPM;
    else
        return say(l, VKI_ERROR_UNSUPPORTED,
                   "tokenizer.ggml.model '%.*s' is not supported (only 'gpt2' and 'llama')",
                   (int)(model.size > 64 ? 64 : model.size), model.data);

    const pre_tokenizer *p = NULL;
    if (t->kind == VKI_TOK_BPE) {
        st = vki_gguf_get_string(l->g, "tokenizer.ggml.pre", &pre);
        if (st && st != VKI_ERROR_NOT_FOUND) return gguf_says(l, st);
        if (st == VKI_ERROR_NOT_FOUND) pre = (vki_gguf_string){"default", 7};
        if (!(p = find_pre_tokenizer(pre.data, (size_t)pre.size)))
            return say(
                l, VKI_ERROR_UNSUPPORTED,
                "tokenizer.ggml.pre '%.*s' is an unknown pre-tokenizer (known: default, gpt-2, "
                "falcon, smollm, llama-bpe, qwen2 and aliases)",
                (int)(pre.size > 64 ? 64 : pre.size), pre.data);
    }

    VKI_TRY(read_tokens(l));
    bool spm = t->kind == VKI_TOK_SPM;
    t->bos = read_id(l, "tokenizer.ggml.bos_token_id", spm && t->n_vocab > 1 ? 1 : -1);
    t->eos = read_id(l, "tokenizer.ggml.eos_token_id", spm && t->n_vocab > 2 ? 2 : -1);
    t->unk = read_id(l, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    t->add_bos = spm || (p && p->add_bos);
    t->add_space_prefix = spm;
    VKI_TRY(read_bool(l, "tokenizer.ggml.add_bos_token", &t->add_bos));
    VKI_TRY(read_bool(l, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix));

    byte_alphabet(t);
    for (uint32_t b = 0; b < 256; b++) {
        char s[8];
        size_t n = 0;
        if (spm) {
            n = (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_id[b] = vki_tok_map_find(&t->by_text, s, n);
            if (t->byte_id[b] < 0) { // no byte tokens: the one-byte token, as llama.cpp falls back
                s[0] = (char)b;
                t->byte_id[b] = vki_tok_map_find(&t->by_text, s, 1);
            }
        } else {
            put_cp(s, &n, t->byte_cp[b]);
            t->byte_id[b] = vki_tok_map_find(&t->by_text, s, n);
        }
    }
    if (!spm) {
        VKI_TRY(read_merges(l));
        t->ignore_merges = p->ignore_merges;
        VKI_TRY(compile_regexes(l, p));
    }
    find_end_ids(l); // before the special tokens: it can retype some
    VKI_TRY(index_specials(l));
    return read_chat_template(l);
}

vki_status vki_tokenizer_create(vki_gguf *gguf, const vki_tokenizer_desc *desc, vki_tokenizer **out,
                                char *out_error, size_t error_size)
{
    if (out_error && error_size) out_error[0] = 0;
    if (!out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vki_allocator a = desc && desc->allocator ? *desc->allocator : (vki_allocator){0};
    vki_tokenizer *t = vki_tok_alloc(&a, 1, sizeof *t);
    if (!t) {
        if (out_error && error_size) snprintf(out_error, error_size, "out of host memory");
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    *t = (vki_tokenizer){.alloc = a, .bos = -1, .eos = -1, .unk = -1};
    loader l = {t, gguf, out_error, error_size};
    vki_status st = gguf ? load(&l) : say(&l, VKI_ERROR_INVALID_ARGUMENT, "no GGUF file");
    if (st) {
        vki_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return VKI_OK;
}

void vki_tokenizer_destroy(vki_tokenizer *t)
{
    if (!t) return;
    vki_allocator a = t->alloc;
    for (uint32_t i = 0; i < t->n_regex; i++) pcre2_code_free(t->regex[i]);
    pcre2_match_data_free(t->match);
    pcre2_general_context_free(t->pcre_ctx); // last of PCRE2's: it frees through t->alloc
    void *blocks[] = {t->tokens,         t->text,         t->by_text.slots, t->merges.slots,
                      t->specials,       t->special_head, t->special_next,  t->special_seen,
                      t->default_system, t->frags.p,      t->present.p,     t->spans_a.p,
                      t->spans_b.p,      t->symbols.p,    t->heap.p,        t->chars.p};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) vki_tok_free(&a, blocks[i]);
    vki_tok_free(&a, t);
}
