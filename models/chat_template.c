/* Chat templates: each family's format written directly, to equal what its Jinja template
 * renders (tests/models/test_chat_template.cc compares with jinja2's output, made by
 * tools/gen_tokenizer_golden.py). Templates are recognised by the markers they write, never
 * run. */
#include "vkinfer_models.h"

#include <string.h>

/* ---- Text helpers ---------------------------------------------------------------------------- */

static const char *find_bytes(const char *hay, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle);
    for (const char *p = hay, *end = hay + hlen; (size_t)(end - p) >= nlen; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) - nlen + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nlen) == 0) return p;
    }
    return NULL;
}

/* Python's str.isspace characters (what Jinja's trim and str.strip() remove), in UTF-8. */
static const char *const SPACES[] = {
    "\t",           "\n",           "\v",           "\f",           "\r",
    "\x1c",         "\x1d",         "\x1e",         "\x1f",         " ",
    "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81",
    "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86",
    "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8",
    "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};

/* Bytes of the whitespace character starting at s[0] (at_end: ending at s[n-1]); 0: none. */
static size_t space_at(const char *s, size_t n, bool at_end)
{
    for (size_t i = 0; i < sizeof SPACES / sizeof SPACES[0]; i++) {
        size_t k = strlen(SPACES[i]);
        if (k <= n && memcmp(at_end ? s + n - k : s, SPACES[i], k) == 0) return k;
    }
    return 0;
}

typedef struct text {
    const char *s;
    size_t n;
} text;

static text trimmed(const char *s)
{
    text t = {s, strlen(s)};
    for (size_t k; t.n && (k = space_at(t.s, t.n, false));) t.s += k, t.n -= k;
    for (size_t k; t.n && (k = space_at(t.s, t.n, true));) t.n -= k;
    return t;
}

static text whole(const char *s) { return (text){s, strlen(s)}; }

/* Output that keeps counting past the buffer's end, so the caller learns the size needed; the
 * same for the spans of caller text, when they are wanted. */
typedef struct writer {
    char *out;
    size_t size, len;
    bool note_spans;
    vki_text_span *spans;
    uint32_t span_capacity, n_spans;
} writer;

static void put_text(writer *w, text t)
{
    if (w->len < w->size) {
        size_t room = w->size - w->len;
        memcpy(w->out + w->len, t.s, t.n < room ? t.n : room);
    }
    w->len += t.n;
}

static void put(writer *w, const char *s) { put_text(w, whole(s)); }

/* Writes the caller's text (a role, a content, the system text) and notes where: it is
 * encoded as plain text, never as control tokens. */
static void put_plain(writer *w, text t)
{
    if (w->note_spans && t.n) {
        if (w->n_spans < w->span_capacity) w->spans[w->n_spans] = (vki_text_span){w->len, t.n};
        w->n_spans++;
    }
    put_text(w, t);
}

/* ---- Families -------------------------------------------------------------------------------- */

static const char *const NAMES[VKI_CHAT_TEMPLATE_COUNT] = {"none",  "chatml", "llama3",
                                                           "gemma", "llama2", "llama3.1"};

vki_chat_template vki_chat_template_detect(const char *jinja, size_t length)
{
    if (!jinja) return VKI_CHAT_TEMPLATE_NONE;
    if (find_bytes(jinja, length, "<|im_start|>")) return VKI_CHAT_TEMPLATE_CHATML;
    if (find_bytes(jinja, length, "<|start_header_id|>"))
        return find_bytes(jinja, length, "Cutting Knowledge Date") ? VKI_CHAT_TEMPLATE_LLAMA31
                                                                   : VKI_CHAT_TEMPLATE_LLAMA3;
    if (find_bytes(jinja, length, "<start_of_turn>")) return VKI_CHAT_TEMPLATE_GEMMA;
    // Mistral's templates write [INST] too, but without <<SYS>> and with other spacing.
    if (find_bytes(jinja, length, "[INST]") && find_bytes(jinja, length, "<<SYS>>"))
        return VKI_CHAT_TEMPLATE_LLAMA2;
    return VKI_CHAT_TEMPLATE_NONE;
}

vki_chat_template vki_chat_template_from_name(const char *name)
{
    if (!name) return VKI_CHAT_TEMPLATE_NONE;
    for (int i = 1; i < VKI_CHAT_TEMPLATE_COUNT; i++) {
        const char *a = NAMES[i], *b = name;
        while (*a && (*b == *a || (*b >= 'A' && *b <= 'Z' && *b - 'A' + 'a' == *a))) a++, b++;
        if (!*a && !*b) return (vki_chat_template)i;
    }
    return VKI_CHAT_TEMPLATE_NONE;
}

const char *vki_chat_template_name(vki_chat_template tmpl)
{
    return tmpl > VKI_CHAT_TEMPLATE_NONE && tmpl < VKI_CHAT_TEMPLATE_COUNT ? NAMES[tmpl] : NAMES[0];
}

size_t vki_chat_template_default_system(const char *jinja, size_t length, char *out, size_t size)
{
    static const char OPEN[] = "<|im_start|>system";
    if (out && size) out[0] = 0;
    if (!jinja) return 0;
    for (const char *p = jinja, *end = jinja + length;
         (p = find_bytes(p, (size_t)(end - p), OPEN));) {
        const char *q = p + sizeof OPEN - 1;
        p = q;
        // The newline after the role, written as a real newline or as Jinja's \n escape.
        if (q < end && *q == '\n') q++;
        else if (end - q >= 2 && q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *e = find_bytes(q, (size_t)(end - q), "<|im_end|>");
        if (!e || e == q) continue;
        // Only a literal counts: a quote or a Jinja delimiter means the text is built from
        // variables ('<|im_start|>system\n' + messages[0]['content'] + ...).
        bool literal = true;
        for (const char *c = q; c < e && literal; c++) {
            if (*c == '\\') c++;
            else if (*c == '\'' || *c == '"' ||
                     (*c == '{' && c + 1 < e && (c[1] == '{' || c[1] == '%')))
                literal = false;
        }
        if (!literal) continue;
        size_t n = 0;
        for (const char *c = q; c < e; c++) {
            char ch = *c;
            if (ch == '\\' && c + 1 < e) {
                char x = *++c;
                ch = x == 'n' ? '\n' : x == 't' ? '\t' : x == 'r' ? '\r' : x;
                if (x != 'n' && x != 't' && x != 'r' && x != '\'' && x != '"' && x != '\\') {
                    if (out && n + 1 < size) out[n] = '\\'; // not an escape Jinja knows: as written
                    n++;
                }
            }
            if (out && n + 1 < size) out[n] = ch;
            n++;
        }
        if (out && size) out[n < size ? n : size - 1] = 0;
        return n;
    }
    return 0;
}

static bool is_system(const vki_chat_message *m) { return strcmp(m->role, "system") == 0; }

/* <|im_start|>{role}\n{content}<|im_end|>\n for each; SmolLM2's and Qwen's templates put their
 * default system message first when the first message is not a system one. */
static void format_chatml(writer *w, const vki_chat_message *m, uint32_t n, bool gen,
                          const char *sys)
{
    if (n && sys && !is_system(&m[0])) {
        put(w, "<|im_start|>system\n");
        put_plain(w, whole(sys));
        put(w, "<|im_end|>\n");
    }
    for (uint32_t i = 0; i < n; i++) {
        put(w, "<|im_start|>");
        put_plain(w, whole(m[i].role));
        put(w, "\n");
        put_plain(w, whole(m[i].content));
        put(w, "<|im_end|>\n");
    }
    if (gen) put(w, "<|im_start|>assistant\n");
}

/* Meta's Llama 3 template: {{ bos_token }} (left to the tokenizer), then per message the header
 * and the trimmed content. */
static void format_llama3(writer *w, const vki_chat_message *m, uint32_t n, bool gen,
                          const char *sys)
{
    if (n && sys && !is_system(&m[0])) {
        put(w, "<|start_header_id|>system<|end_header_id|>\n\n");
        put_plain(w, trimmed(sys));
        put(w, "<|eot_id|>");
    }
    for (uint32_t i = 0; i < n; i++) {
        put(w, "<|start_header_id|>");
        put_plain(w, whole(m[i].role));
        put(w, "<|end_header_id|>\n\n");
        put_plain(w, trimmed(m[i].content));
        put(w, "<|eot_id|>");
    }
    if (gen) put(w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Meta's Llama 3.1, 3.2 and 3.3 templates, without tools: a system turn always comes first and
 * opens with the knowledge cut-off and a date, then the trimmed system message (none: nothing
 * more); the other messages as in Llama 3. The date is the templates' own default, "26 Jul
 * 2024": 3.1 and 3.3 write it unless the caller passes date_string; 3.2 writes it unless
 * strftime_now is defined (transformers and llama.cpp's Jinja engine define it and write the
 * day of rendering there). A fixed date keeps a prompt, and its cached prefix, the same from
 * day to day. */
static void format_llama31(writer *w, const vki_chat_message *m, uint32_t n, bool gen,
                           const char *sys)
{
    uint32_t first = 0;
    if (!n) sys = NULL;
    if (n && is_system(&m[0])) {
        sys = m[0].content;
        first = 1;
    }
    put(w, "<|start_header_id|>system<|end_header_id|>\n\n"
           "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    if (sys) put_plain(w, trimmed(sys));
    put(w, "<|eot_id|>");
    format_llama3(w, first ? m + 1 : m, n - first, gen, NULL); // m may be NULL when n is 0
}

/* Gemma 3's template: no system turn; the system text and a blank line open the first turn
 * (first_user_prefix, untrimmed); "assistant" is "model"; contents trimmed. The template raises
 * an error when roles do not alternate user/model; here they are written as given. */
static void format_gemma(writer *w, const vki_chat_message *m, uint32_t n, bool gen,
                         const char *sys)
{
    uint32_t first = 0;
    if (n && is_system(&m[0])) {
        sys = m[0].content;
        first = 1;
    }
    for (uint32_t i = first; i < n; i++) {
        put(w, "<start_of_turn>");
        put_plain(w, whole(strcmp(m[i].role, "assistant") == 0 ? "model" : m[i].role));
        put(w, "\n");
        if (i == first && sys) {
            put_plain(w, whole(sys));
            put(w, "\n\n");
        }
        put_plain(w, trimmed(m[i].content));
        put(w, "<end_of_turn>\n");
    }
    if (gen) put(w, "<start_of_turn>model\n");
}

/* Meta's Llama 2 chat template: the system text wrapped in <<SYS>> opens the first message;
 * each user message is [INST] ... [/INST] after a BOS (the first BOS is the tokenizer's), each
 * answer is followed by EOS; other roles are dropped; there is no assistant prompt. */
static void format_llama2(writer *w, const vki_chat_message *m, uint32_t n, const char *sys)
{
    uint32_t first = 0;
    if (n && is_system(&m[0])) {
        sys = m[0].content;
        first = 1;
    }
    for (uint32_t i = first; i < n; i++) {
        bool user = strcmp(m[i].role, "user") == 0;
        if (!user && strcmp(m[i].role, "assistant") != 0) continue;
        // content.strip() of '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content: the system part
        // starts with '<', so only the content's end and, without a system, its start trim.
        text c = trimmed(m[i].content);
        bool with_sys = i == first && sys;
        if (with_sys) {
            text raw = whole(m[i].content);
            c.n = (size_t)(c.s - raw.s) + c.n; // keep the content's leading whitespace
            c.s = raw.s;
        }
        if (user) {
            if (i != first) put(w, "<s>");
            put(w, "[INST] ");
            if (with_sys) {
                put(w, "<<SYS>>\n");
                put_plain(w, whole(sys));
                put(w, "\n<</SYS>>\n\n");
                if (!c.n) w->len -= 2; // blank content: strip() also takes the "\n\n" before it
            }
            put_plain(w, c);
            put(w, " [/INST]");
        } else {
            put(w, " ");
            if (with_sys) {
                put(w, "<<SYS>>\n");
                put_plain(w, whole(sys));
                put(w, "\n<</SYS>>\n\n");
            }
            put_plain(w, c);
            put(w, " </s>");
        }
    }
}

/* vki_chat_format's work, into `w` (whose spans, if any, are counted there). */
static vki_status format(writer *w, vki_chat_template tmpl, const vki_chat_message *messages,
                         uint32_t count, bool add_assistant_prompt, const char *default_system,
                         size_t *out_length)
{
    if (out_length) *out_length = 0;
    if (!out_length || (count && !messages) || (w->size && !w->out))
        return VKI_ERROR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < count; i++)
        if (!messages[i].role || !messages[i].content) return VKI_ERROR_INVALID_ARGUMENT;
    if (default_system && !default_system[0]) default_system = NULL;
    switch (tmpl) {
    case VKI_CHAT_TEMPLATE_CHATML:
        format_chatml(w, messages, count, add_assistant_prompt, default_system);
        break;
    case VKI_CHAT_TEMPLATE_LLAMA3:
        format_llama3(w, messages, count, add_assistant_prompt, default_system);
        break;
    case VKI_CHAT_TEMPLATE_LLAMA31:
        format_llama31(w, messages, count, add_assistant_prompt, default_system);
        break;
    case VKI_CHAT_TEMPLATE_GEMMA:
        format_gemma(w, messages, count, add_assistant_prompt, default_system);
        break;
    case VKI_CHAT_TEMPLATE_LLAMA2: format_llama2(w, messages, count, default_system); break;
    default: return VKI_ERROR_UNSUPPORTED;
    }
    if (w->size) w->out[w->len < w->size ? w->len : w->size - 1] = 0;
    *out_length = w->len;
    return w->len < w->size ? VKI_OK : VKI_ERROR_INVALID_ARGUMENT;
}

vki_status vki_chat_format(vki_chat_template tmpl, const vki_chat_message *messages, uint32_t count,
                           bool add_assistant_prompt, const char *default_system, char *out,
                           size_t size, size_t *out_length)
{
    writer w = {.out = out, .size = size};
    return format(&w, tmpl, messages, count, add_assistant_prompt, default_system, out_length);
}

vki_status vki_chat_format_spans(const vki_chat_prompt *p, char *out, size_t size,
                                 size_t *out_length, vki_text_span *out_spans,
                                 uint32_t span_capacity, uint32_t *out_span_count)
{
    if (out_span_count) *out_span_count = 0;
    if (out_length) *out_length = 0;
    // The span count, at most 2 * count + 1, must fit its uint32.
    if (!p || !out_span_count || (span_capacity && !out_spans) || p->count > (uint32_t)INT32_MAX)
        return VKI_ERROR_INVALID_ARGUMENT;
    // With special_in_content everything is parsed for special tokens: no span is plain.
    writer w = {.out = out, .size = size, .note_spans = !p->special_in_content,
                .spans = out_spans, .span_capacity = span_capacity};
    vki_status st = format(&w, p->tmpl, p->messages, p->count, p->add_assistant_prompt,
                           p->default_system, out_length);
    *out_span_count = w.n_spans;
    if (st == VKI_OK && w.n_spans > span_capacity) st = VKI_ERROR_INVALID_ARGUMENT;
    return st;
}
