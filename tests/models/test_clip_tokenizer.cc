// CLIP's BPE tokenizer and AUTOMATIC1111's prompt syntax (models/clip_tokenizer.c).
//
// Ids are checked against OpenAI CLIP's own tokenizer (simple_tokenizer.py of clip-anytorch 2.6.0)
// through tests/data/clip_tokenizer_golden.json, made by tools/gen_clip_tokenizer_golden.py:
// 70+ chosen texts and 400 seeded random ones where vkinfer must equal CLIP, the texts where it
// differs on purpose (no NFC, no mojibake repair, specials in user text are text) with both id
// lists, and every code point that str.lower changes. The prompt tests check (ids, weights) derived by hand from A1111's
// modules/prompt_parser.py and sd_hijack_clip.py, with the ids of each piece taken from the
// reference (written out below). The vocabulary comes from the model cache
// (tools/fetch_models.sh); tests that need it skip when it is absent. The hostile-file tests
// build their own files and always run.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "models/model_files.h"

extern "C" {
#include "vkinfer_models.h"
}

namespace
{

std::string vocab_path() { return model_dir() + "/clip/bpe_simple_vocab_16e6.txt"; }

bool file_exists(const std::string &p)
{
    std::ifstream f(p);
    return f.good();
}

// One tokenizer for the whole suite: loading checks 262k lines.
vki_clip_tokenizer *shared_tokenizer()
{
    static vki_clip_tokenizer *tok = [] {
        vki_clip_tokenizer *t = nullptr;
        char err[256] = "";
        if (file_exists(vocab_path()) &&
            vki_clip_tokenizer_create(vocab_path().c_str(), nullptr, &t, err, sizeof err) != VKI_OK)
            ADD_FAILURE() << err;
        return t;
    }();
    return tok;
}

#define NEED_VOCAB()                                                                               \
    vki_clip_tokenizer *tok = shared_tokenizer();                                                  \
    if (!tok) GTEST_SKIP() << vocab_path() << " is absent: tools/fetch_models.sh downloads it"

std::vector<int32_t> encode(const vki_clip_tokenizer *t, const std::string &text)
{
    uint32_t n = 0;
    EXPECT_EQ(vki_clip_tokenize(t, text.c_str(), nullptr, 0, &n), VKI_OK);
    std::vector<int32_t> ids(n);
    uint32_t again = 0;
    EXPECT_EQ(vki_clip_tokenize(t, text.c_str(), ids.data(), n, &again), VKI_OK);
    EXPECT_EQ(again, n);
    return ids;
}

std::vector<int32_t> ids_of(const cJSON *arr)
{
    std::vector<int32_t> v;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) v.push_back((int32_t)x->valuedouble);
    return v;
}

struct Golden {
    cJSON *doc = nullptr;
    Golden()
    {
        std::ifstream f(std::string(VKI_TEST_DATA) + "/clip_tokenizer_golden.json");
        std::stringstream ss;
        ss << f.rdbuf();
        doc = cJSON_Parse(ss.str().c_str());
    }
    ~Golden() { cJSON_Delete(doc); }
};

std::string show(const std::string &s)
{
    std::string o;
    for (unsigned char c : s) {
        char b[8];
        if (c >= 0x20 && c < 0x7F)
            o += (char)c;
        else
            snprintf(b, sizeof b, "\\x%02x", c), o += b;
    }
    return o;
}

} // namespace

// ---- Ids against CLIP's tokenizer -----------------------------------------------------------------

TEST(ClipTokenizerGolden, SameIdsAsClip)
{
    NEED_VOCAB();
    Golden g;
    ASSERT_NE(g.doc, nullptr) << "tests/data/clip_tokenizer_golden.json missing or not JSON";
    const cJSON *same = cJSON_GetObjectItem(g.doc, "same"), *c;
    ASSERT_GE(cJSON_GetArraySize(same), 60);
    int n = 0;
    cJSON_ArrayForEach(c, same)
    {
        std::string text = cJSON_GetObjectItem(c, "text")->valuestring;
        EXPECT_EQ(encode(tok, text), ids_of(cJSON_GetObjectItem(c, "ids")))
            << "text: " << show(text);
        n++;
    }
    EXPECT_GE(n, 60);
}

// 400 seeded random mixes of prompt words, scripts, entities, quotes, widths, controls and
// white space (the generator keeps the ~99% where NFC changes nothing).
TEST(ClipTokenizerGolden, RandomTextsSameIdsAsClip)
{
    NEED_VOCAB();
    Golden g;
    ASSERT_NE(g.doc, nullptr);
    const cJSON *random = cJSON_GetObjectItem(g.doc, "random"), *c;
    ASSERT_GE(cJSON_GetArraySize(random), 390);
    int bad = 0;
    cJSON_ArrayForEach(c, random)
    {
        std::string text = cJSON_GetObjectItem(c, "text")->valuestring;
        if (encode(tok, text) != ids_of(cJSON_GetObjectItem(c, "ids")) && bad++ < 10)
            ADD_FAILURE() << "text: " << show(text);
    }
    EXPECT_EQ(bad, 0);
}

// Where vkinfer differs from CLIP on purpose: the ids are the reference's with NFC, mojibake
// repair and the special-token match switched off, and differ from the plain reference's.
TEST(ClipTokenizerGolden, DeliberateDifferences)
{
    NEED_VOCAB();
    Golden g;
    ASSERT_NE(g.doc, nullptr);
    const cJSON *differs = cJSON_GetObjectItem(g.doc, "differs"), *c;
    ASSERT_GE(cJSON_GetArraySize(differs), 5);
    cJSON_ArrayForEach(c, differs)
    {
        std::string text = cJSON_GetObjectItem(c, "text")->valuestring;
        std::string why = cJSON_GetObjectItem(c, "why")->valuestring;
        std::vector<int32_t> got = encode(tok, text);
        EXPECT_EQ(got, ids_of(cJSON_GetObjectItem(c, "ids"))) << show(text) << " (" << why << ")";
        EXPECT_NE(got, ids_of(cJSON_GetObjectItem(c, "reference_ids"))) << show(text);
    }
}

// Every code point Python's str.lower changes, alone (1,400+): the case table is complete.
TEST(ClipTokenizerGolden, LowerCaseEveryCodePoint)
{
    NEED_VOCAB();
    Golden g;
    ASSERT_NE(g.doc, nullptr);
    const cJSON *upper = cJSON_GetObjectItem(g.doc, "upper"), *c;
    ASSERT_GT(cJSON_GetArraySize(upper), 1000);
    int bad = 0;
    cJSON_ArrayForEach(c, upper)
    {
        uint32_t cp = (uint32_t)cJSON_GetArrayItem(c, 0)->valuedouble;
        std::string s;
        if (cp < 0x80)
            s += (char)cp;
        else if (cp < 0x800)
            s += (char)(0xC0 | cp >> 6), s += (char)(0x80 | (cp & 0x3F));
        else if (cp < 0x10000)
            s += (char)(0xE0 | cp >> 12), s += (char)(0x80 | (cp >> 6 & 0x3F)),
                s += (char)(0x80 | (cp & 0x3F));
        else
            s += (char)(0xF0 | cp >> 18), s += (char)(0x80 | (cp >> 12 & 0x3F)),
                s += (char)(0x80 | (cp >> 6 & 0x3F)), s += (char)(0x80 | (cp & 0x3F));
        if (encode(tok, s) != ids_of(cJSON_GetArrayItem(c, 1)) && bad++ < 10)
            ADD_FAILURE() << "U+" << std::hex << cp;
    }
    EXPECT_EQ(bad, 0);
}

// ---- Encoding details ----------------------------------------------------------------------------

TEST(ClipTokenizer, ShortBufferGetsFullCount)
{
    NEED_VOCAB();
    int32_t ids[2] = {-7, -7};
    uint32_t n = 0;
    ASSERT_EQ(vki_clip_tokenize(tok, "a photo of a cat", ids, 1, &n), VKI_OK);
    EXPECT_EQ(n, 5u);
    EXPECT_EQ(ids[0], 320); // "a</w>" in CLIP's vocabulary
    EXPECT_EQ(ids[1], -7);  // untouched past the capacity
    EXPECT_EQ(vki_clip_tokenize(tok, "a", nullptr, 1, &n), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_clip_tokenize(tok, nullptr, ids, 2, &n), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_clip_tokenize(nullptr, "a", ids, 2, &n), VKI_ERROR_INVALID_ARGUMENT);
}

TEST(ClipTokenizer, UserTextNeverMakesControlTokens)
{
    NEED_VOCAB();
    for (const char *s : {"<|endoftext|>", "<|startoftext|>", "a<|endoftext|>b", "<|ENDOFTEXT|>"}) {
        for (int32_t id : encode(tok, s)) {
            EXPECT_NE(id, VKI_CLIP_BOS) << s;
            EXPECT_NE(id, VKI_CLIP_EOS) << s;
        }
    }
    // The pieces "<|" "endoftext" "|>", as CLIP's pre-tokenizer splits it without its specials.
    std::vector<int32_t> want = encode(tok, "<|"), mid = encode(tok, "endoftext"),
                         end = encode(tok, "|>");
    want.insert(want.end(), mid.begin(), mid.end());
    want.insert(want.end(), end.begin(), end.end());
    EXPECT_EQ(encode(tok, "<|endoftext|>"), want);
}

// Invalid UTF-8: each maximal invalid subsequence becomes one U+FFFD (Python's errors="replace").
TEST(ClipTokenizer, InvalidUtf8BecomesReplacementCharacter)
{
    NEED_VOCAB();
    const std::vector<int32_t> fffd = encode(tok, "a\xEF\xBF\xBD"
                                                  "b");
    EXPECT_EQ(encode(tok, "a\xFF"
                          "b"),
              fffd);
    EXPECT_EQ(encode(tok, "a\xE2\x82"
                          "b"),
              fffd); // truncated 3-byte sequence: one U+FFFD
    EXPECT_EQ(encode(tok, "a\xED\xA0\x80"
                          "b"),
              encode(tok, "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                          "b")); // surrogate: 3
    EXPECT_EQ(encode(tok, "a\xC0\xAF"
                          "b"),
              encode(tok, "a\xEF\xBF\xBD\xEF\xBF\xBD"
                          "b")); // overlong
    EXPECT_EQ(encode(tok, "\xF4\x90\x80\x80").size(),
              encode(tok, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD").size());
}

TEST(ClipTokenizer, LongInputsStayLinear)
{
    NEED_VOCAB();
    // One 1 MiB word of one letter and 1 MiB of entities: must finish (a quadratic merge or
    // unescape would take minutes), and give the ids of the same text cut where it repeats.
    std::string word(1u << 20, 'z');
    std::vector<int32_t> ids = encode(tok, word);
    EXPECT_FALSE(ids.empty());
    std::string amps;
    for (int i = 0; i < (1 << 20) / 5; i++) amps += "&amp;";
    EXPECT_EQ(encode(tok, amps), encode(tok, std::string((1 << 20) / 5, '&')));
    std::string too_long((4u << 20) + 1, 'a');
    uint32_t n = 0;
    EXPECT_EQ(vki_clip_tokenize(tok, too_long.c_str(), nullptr, 0, &n), VKI_ERROR_INVALID_ARGUMENT);
}

// ---- Hostile vocabulary files (no real vocabulary needed) -----------------------------------------

namespace
{

struct TempFile {
    std::string path;
    explicit TempFile(const std::string &content, const std::string &suffix = ".txt")
    {
        char tmpl[] = "/tmp/vki_clip_vocab_XXXXXX";
        int fd = mkstemp(tmpl);
        if (fd >= 0) close(fd);
        std::remove(tmpl);
        path = std::string(tmpl) + suffix;
        std::ofstream(path, std::ios::binary) << content;
    }
    ~TempFile() { std::remove(path.c_str()); }
};

// A well-formed file of `merges` merges: every pair of the 256 byte symbols, in order (each
// result is new, each half a byte symbol), after the version header.
std::string synthetic_vocab(int merges)
{
    auto sym = [](int b) {
        int n = 0;
        for (int k = 0; k < b; k++)
            if (!((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE)) n++;
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        uint32_t cp = printable ? (uint32_t)b : 0x100u + (uint32_t)n;
        std::string s;
        if (cp < 0x80)
            s += (char)cp;
        else
            s += (char)(0xC0 | cp >> 6), s += (char)(0x80 | (cp & 0x3F));
        return s;
    };
    std::string out = "\"bpe_simple_vocab_16e6.txt#version: 0.2\n";
    for (int i = 0; i < merges; i++) out += sym(i / 256) + " " + sym(i % 256) + "\n";
    return out;
}

vki_status load(const std::string &content, std::string *err, const std::string &suffix = ".txt")
{
    TempFile f(content, suffix);
    vki_clip_tokenizer *t = nullptr;
    char buf[512] = "";
    vki_status st = vki_clip_tokenizer_create(f.path.c_str(), nullptr, &t, buf, sizeof buf);
    if (st == VKI_OK)
        EXPECT_NE(t, nullptr);
    else
        EXPECT_EQ(t, nullptr);
    vki_clip_tokenizer_destroy(t);
    *err = buf;
    return st;
}

} // namespace

TEST(ClipTokenizerFile, SyntheticVocabularyLoads)
{
    std::string err;
    EXPECT_EQ(load(synthetic_vocab(48894), &err), VKI_OK) << err;
    std::string no_newline = synthetic_vocab(48900);
    no_newline.pop_back();
    EXPECT_EQ(load(no_newline, &err), VKI_OK) << err;
}

TEST(ClipTokenizerFile, MalformedFilesNameTheLine)
{
    const std::string good = synthetic_vocab(48894);
    std::string err;
    struct Case {
        std::string content, needle;
    } cases[] = {
        {"", "empty"},
        {"no header\n" + good.substr(good.find('\n') + 1), "line 1"},
        {synthetic_vocab(100), "100 merges"},
        {synthetic_vocab(3) + "a b c\n", "line 5"},
        {synthetic_vocab(3) + "ab\n", "line 5"},
        {synthetic_vocab(3) + " a\n", "line 5"},
        {synthetic_vocab(3) + "a \n", "line 5"},
        {synthetic_vocab(3) + "\n" + synthetic_vocab(3).substr(40), "line 5"},
        {synthetic_vocab(3) + "a b\r\n", "carriage return"},
        {synthetic_vocab(3) + "a\tb c\n", "line 5"},
        {synthetic_vocab(3) + "a \xFF\n", "line 5"},
        {synthetic_vocab(3) + "zz q\n", "'zz' is not a token"},
        {synthetic_vocab(3) + "a b</w>x\n", "is not a token"},
        {synthetic_vocab(3) + "a b\na b\n", "line 6: the merge makes a token defined before"},
    };
    for (const Case &c : cases) {
        EXPECT_EQ(load(c.content, &err), VKI_ERROR_BAD_FILE) << c.needle;
        EXPECT_NE(err.find(c.needle), std::string::npos) << "got: " << err;
    }
}

TEST(ClipTokenizerFile, GzipAndMissingFilesAreRefused)
{
    std::string err;
    EXPECT_EQ(load(synthetic_vocab(48894), &err, ".txt.gz"), VKI_ERROR_BAD_FILE);
    EXPECT_NE(err.find("gzip"), std::string::npos) << err;
    EXPECT_EQ(load(std::string("\x1F\x8B\x08\x00", 4) + "compressed", &err), VKI_ERROR_BAD_FILE);
    EXPECT_NE(err.find("decompress"), std::string::npos) << err;
    vki_clip_tokenizer *t = nullptr;
    char buf[256] = "";
    EXPECT_EQ(vki_clip_tokenizer_create("/nonexistent/bpe.txt", nullptr, &t, buf, sizeof buf),
              VKI_ERROR_NOT_FOUND);
    EXPECT_EQ(t, nullptr);
    EXPECT_EQ(vki_clip_tokenizer_create("/tmp", nullptr, &t, buf, sizeof buf), VKI_ERROR_IO);
    EXPECT_EQ(vki_clip_tokenizer_create(nullptr, nullptr, &t, buf, sizeof buf),
              VKI_ERROR_INVALID_ARGUMENT);
    vki_clip_tokenizer_destroy(nullptr);
}

namespace
{

// Counts live allocations and fails every one after the first `budget`.
struct CountingAlloc {
    long live = 0, total = 0, budget = -1;
    static void *alloc(void *user, size_t size)
    {
        CountingAlloc *c = static_cast<CountingAlloc *>(user);
        if (c->budget >= 0 && c->total >= c->budget) return nullptr;
        c->total++;
        c->live++;
        return malloc(size);
    }
    static void release(void *user, void *p)
    {
        static_cast<CountingAlloc *>(user)->live--;
        free(p);
    }
};

} // namespace

// Every allocation goes through the hook (PCRE2's too), each failing one gives
// VKI_ERROR_OUT_OF_HOST_MEMORY and leaves nothing behind.
TEST(ClipTokenizerFile, AllocatorHookAndOutOfMemory)
{
    TempFile f(synthetic_vocab(48894));
    CountingAlloc c;
    vki_allocator a{CountingAlloc::alloc, CountingAlloc::release, &c};
    vki_clip_tokenizer_desc d{&a};
    vki_clip_tokenizer *t = nullptr;
    int failures = 0;
    for (c.budget = 0;; c.budget++) {
        c.total = 0;
        vki_status st = vki_clip_tokenizer_create(f.path.c_str(), &d, &t, nullptr, 0);
        if (st == VKI_OK) break;
        ASSERT_EQ(st, VKI_ERROR_OUT_OF_HOST_MEMORY);
        ASSERT_EQ(c.live, 0) << "budget " << c.budget;
        ASSERT_LT(c.budget, 1000);
        failures++;
    }
    EXPECT_GT(failures, 3);
    const long held = c.live;
    const char *prompt = "a (b:1.2) [c], d BREAK e \\(f\\) &amp; caf\xC3\xA9";
    for (long extra = 0;; extra++) {
        c.budget = c.total + extra;
        vki_clip_prompt p{};
        vki_status st = vki_clip_prompt_encode(t, prompt, VKI_CLIP_EOS, &p, nullptr, 0);
        vki_clip_prompt_free(t, &p);
        ASSERT_EQ(c.live, held) << "extra " << extra;
        if (st == VKI_OK) break;
        ASSERT_EQ(st, VKI_ERROR_OUT_OF_HOST_MEMORY);
        ASSERT_LT(extra, 1000);
    }
    for (long extra = 0;; extra++) {
        c.budget = c.total + extra;
        uint32_t n = 0;
        vki_status st = vki_clip_tokenize(t, prompt, nullptr, 0, &n);
        ASSERT_EQ(c.live, held);
        if (st == VKI_OK) break;
        ASSERT_EQ(st, VKI_ERROR_OUT_OF_HOST_MEMORY);
        ASSERT_LT(extra, 1000);
    }
    c.budget = -1;
    vki_clip_tokenizer_destroy(t);
    EXPECT_EQ(c.live, 0);
}

// ---- A1111 prompt syntax ----------------------------------------------------------------------------

namespace
{

// A piece of a prompt: its reference ids (CLIP's tokenizer, from tools/gen_clip_tokenizer_golden.py's
// venv) and the weight A1111 gives it.
struct Piece {
    std::vector<int32_t> ids;
    double weight;
};

// One window as A1111 lays it out: start, the tokens, end, then the pad id.
void expect_window(const vki_clip_prompt &p, uint32_t w, const std::vector<Piece> &pieces,
                   int32_t pad, const std::string &what)
{
    std::vector<int32_t> ids{VKI_CLIP_BOS};
    std::vector<float> wts{1.0f};
    for (const Piece &pc : pieces)
        for (int32_t id : pc.ids) ids.push_back(id), wts.push_back((float)pc.weight);
    ASSERT_LE(ids.size(), 76u) << what;
    ids.push_back(VKI_CLIP_EOS);
    wts.push_back(1.0f);
    while (ids.size() < 77) ids.push_back(pad), wts.push_back(1.0f);
    ASSERT_LT(w, p.n_windows) << what;
    for (int i = 0; i < 77; i++) {
        EXPECT_EQ(p.ids[w * 77 + i], ids[i]) << what << " window " << w << " position " << i;
        EXPECT_EQ(p.weights[w * 77 + i], wts[i]) << what << " window " << w << " position " << i;
    }
}

struct Prompt {
    vki_clip_prompt p{};
    vki_status st;
    std::string err;
    const vki_clip_tokenizer *t;
    Prompt(const vki_clip_tokenizer *tok, const std::string &text, int32_t pad = VKI_CLIP_PAD_END)
        : t(tok)
    {
        char buf[256] = "";
        st = vki_clip_prompt_encode(tok, text.c_str(), pad, &p, buf, sizeof buf);
        err = buf;
    }
    ~Prompt() { vki_clip_prompt_free(t, &p); }
};

const std::vector<int32_t> A{320}, B{321}, COMMA{267}, BREAK_WORD{2568};

} // namespace

// A1111's own doctest (prompt_parser.py): 'a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).'
// -> a 1.0 | house 1.3*1.1*1.1 | ' ' 1.1 | on 1.0 | ' a ' 1.1 | hill 0.5*1.1 | ', sun, ' 1.1 |
// sky 1.1^4 | '.' 1.1 (the doctest prints 1.5730000000000004 and 1.4641000000000006).
TEST(ClipTokenizerPrompt, A1111Doctest)
{
    NEED_VOCAB();
    Prompt p(tok, "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).");
    ASSERT_EQ(p.st, VKI_OK) << p.err;
    ASSERT_EQ(p.p.n_windows, 1u);
    EXPECT_EQ((float)(1.3 * 1.1 * 1.1), (float)1.5730000000000004);
    expect_window(p.p, 0,
                  {{A, 1.0},
                   {{1212}, 1.5730000000000004},
                   {{}, 1.1},
                   {{525}, 1.0},
                   {A, 1.1},
                   {{2682}, 0.55},
                   {{267, 2176, 267}, 1.1},
                   {{2390}, 1.4641000000000006},
                   {{269}, 1.1}},
                  VKI_CLIP_EOS, "doctest");
}

TEST(ClipTokenizerPrompt, EmphasisRules)
{
    NEED_VOCAB();
    struct Case {
        const char *prompt;
        std::vector<Piece> pieces;
    } cases[] = {
        {"a", {{A, 1.0}}},
        {"(a)", {{A, 1.1}}},
        {"[a]", {{A, 1 / 1.1}}},
        {"((a))", {{A, 1.1 * 1.1}}},
        {"[[a]]", {{A, (1 / 1.1) * (1 / 1.1)}}},
        {"(a:1.5)", {{A, 1.5}}},
        {"(a: 1.5 )", {{A, 1.5}}},       // A1111 1.6+ allows spaces around the number
        {"((a:1.5))", {{A, 1.5 * 1.1}}}, // nesting multiplies
        {"(a:.5)", {{A, 0.5}}},
        {"(a:-3)", {{A, -3.0}}}, // negative weights pass as in A1111
        {"(a:0)", {{A, 0.0}}},
        {"(a", {{A, 1.1}}}, // unclosed: applies to the rest
        {"[a", {{A, 1 / 1.1}}},
        {"a) b]", {{{320, 264, 321, 316}, 1.0}}},             // stray closers are text
        {":1.5) a", {{{281, 272, 269, 276, 264, 320}, 1.0}}}, // a weight with no '(' is text
        {"\\(literal\\]", {{{263, 24269, 316}, 1.0}}},
        {"\\\\", {{{315}, 1.0}}},
        {"a\\b", {{{3937}, 1.0}}}, // a lone backslash vanishes: "ab"
        {"(unnecessary)(parens)", {{{569, 6961, 4617, 3106, 338}, 1.1}}}, // equal weights join
        {"(unbalanced", {{{569, 15273}, 1.1}}},
        {"(a:1e999)", {{{320, 281, 272, 324, 280, 280, 280}, 1.1}}}, // not A1111's number syntax
        {"(a:nan)", {{{320, 281, 7750}, 1.1}}},
        {"(a) b", {{A, 1.1}, {B, 1.0}}},
        {"(a [b])", {{A, 1.1}, {B, (1 / 1.1) * 1.1}}}, // inner bracket first (1.0 exactly)
    };
    for (const Case &c : cases) {
        Prompt p(tok, c.prompt);
        ASSERT_EQ(p.st, VKI_OK) << c.prompt << ": " << p.err;
        ASSERT_EQ(p.p.n_windows, 1u) << c.prompt;
        expect_window(p.p, 0, c.pieces, VKI_CLIP_EOS, c.prompt);
    }
}

TEST(ClipTokenizerPrompt, BadWeightsAndNesting)
{
    NEED_VOCAB();
    for (const char *bad :
         {"(a:1.2.3)", "(a:.)", "(a:+.)", "(a:1000000000000000000000000000000000000000)"}) {
        Prompt p(tok, bad);
        EXPECT_EQ(p.st, VKI_ERROR_INVALID_ARGUMENT) << bad;
        EXPECT_FALSE(p.err.empty()) << bad;
        EXPECT_EQ(p.p.ids, nullptr);
    }
    std::string deep = std::string(256, '(') + "a";
    Prompt ok(tok, deep);
    EXPECT_EQ(ok.st, VKI_OK) << ok.err; // 1.1^256 = 4e10 still a float
    Prompt too_deep(tok, std::string(257, '(') + "a");
    EXPECT_EQ(too_deep.st, VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(too_deep.err.find("256"), std::string::npos) << too_deep.err;
    Prompt nul(tok, std::string("(a)\0(b)", 7)); // a C string: the NUL ends it
    ASSERT_EQ(nul.st, VKI_OK);
    expect_window(nul.p, 0, {{A, 1.1}}, VKI_CLIP_EOS, "NUL");
    Prompt invalid(tok, "\xFF(a)");
    ASSERT_EQ(invalid.st, VKI_OK);
    EXPECT_EQ(invalid.p.ids[2], 320);
    EXPECT_FLOAT_EQ(invalid.p.weights[2], 1.1f);
    vki_clip_prompt none{};
    EXPECT_EQ(vki_clip_prompt_encode(tok, "a", -1, &none, nullptr, 0), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_clip_prompt_encode(tok, "a", 49408, &none, nullptr, 0),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(none.ids, nullptr);
}

TEST(ClipTokenizerPrompt, Break)
{
    NEED_VOCAB();
    Prompt p(tok, "a BREAK b");
    ASSERT_EQ(p.st, VKI_OK);
    ASSERT_EQ(p.p.n_windows, 2u);
    expect_window(p.p, 0, {{A, 1.0}}, VKI_CLIP_EOS, "a BREAK b");
    expect_window(p.p, 1, {{B, 1.0}}, VKI_CLIP_EOS, "a BREAK b");
    Prompt lead(tok, "BREAK a"); // an empty first window, as A1111
    ASSERT_EQ(lead.p.n_windows, 2u);
    expect_window(lead.p, 0, {}, VKI_CLIP_EOS, "BREAK a");
    expect_window(lead.p, 1, {{A, 1.0}}, VKI_CLIP_EOS, "BREAK a");
    Prompt trail(tok, "a BREAK"); // no empty window after
    EXPECT_EQ(trail.p.n_windows, 1u);
    Prompt word(tok, "aBREAK break"); // not a word of its own; lower case is text
    EXPECT_EQ(word.p.n_windows, 1u);
    // Inside brackets A1111's BREAK piece is multiplied to -1.1 and stops being a BREAK: the
    // word "break" with weight -1.1.
    Prompt inside(tok, "(a BREAK b)");
    ASSERT_EQ(inside.p.n_windows, 1u);
    expect_window(inside.p, 0, {{A, 1.1}, {BREAK_WORD, -1.0 * 1.1}, {B, 1.1}}, VKI_CLIP_EOS,
                  "(a BREAK b)");
}

TEST(ClipTokenizerPrompt, EmptyPromptAndPadding)
{
    NEED_VOCAB();
    Prompt e(tok, "");
    ASSERT_EQ(e.p.n_windows, 1u);
    expect_window(e.p, 0, {}, VKI_CLIP_EOS, "empty");
    Prompt sd2(tok, "(a) b", 0); // SD 2.x: pad id 0 after the first end token
    expect_window(sd2.p, 0, {{A, 1.1}, {B, 1.0}}, 0, "pad 0");
}

namespace
{

std::string repeat(const std::string &s, int n)
{
    std::string o;
    for (int i = 0; i < n; i++) o += s;
    return o;
}

std::vector<Piece> run(const std::vector<int32_t> &id, int n, double w = 1.0)
{
    return std::vector<Piece>(n, Piece{id, w});
}

std::vector<Piece> operator+(std::vector<Piece> a, const std::vector<Piece> &b)
{
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

} // namespace

// sd_hijack_clip.py's tokenize_line: 75 tokens a window; when a window is full and a comma is
// among its last 20 tokens (75 - last_comma <= 20), what follows the comma moves on.
TEST(ClipTokenizerPrompt, WindowsAndTheCommaRule)
{
    NEED_VOCAB();
    {
        Prompt p(tok, repeat("a ", 75));
        ASSERT_EQ(p.p.n_windows, 1u);
        expect_window(p.p, 0, run(A, 75), VKI_CLIP_EOS, "75");
    }
    {
        Prompt p(tok, repeat("a ", 80));
        ASSERT_EQ(p.p.n_windows, 2u);
        expect_window(p.p, 0, run(A, 75), VKI_CLIP_EOS, "80");
        expect_window(p.p, 1, run(A, 5), VKI_CLIP_EOS, "80");
    }
    { // comma at 70: the 4 b's after it move, with the 6 that follow
        Prompt p(tok, repeat("a ", 70) + ", " + repeat("b ", 10));
        ASSERT_EQ(p.p.n_windows, 2u);
        expect_window(p.p, 0, run(A, 70) + run(COMMA, 1), VKI_CLIP_EOS, "comma 70");
        expect_window(p.p, 1, run(B, 10), VKI_CLIP_EOS, "comma 70");
    }
    { // comma at 55: 75 - 55 = 20, still moves
        Prompt p(tok, repeat("a ", 55) + ", " + repeat("(b) ", 25));
        ASSERT_EQ(p.p.n_windows, 2u);
        expect_window(p.p, 0, run(A, 55) + run(COMMA, 1), VKI_CLIP_EOS, "comma 55");
        expect_window(p.p, 1, run(B, 25, 1.1), VKI_CLIP_EOS, "comma 55");
    }
    { // comma at 54: 21 back, stays
        Prompt p(tok, repeat("a ", 54) + ", " + repeat("b ", 25));
        ASSERT_EQ(p.p.n_windows, 2u);
        expect_window(p.p, 0, run(A, 54) + run(COMMA, 1) + run(B, 20), VKI_CLIP_EOS, "comma 54");
        expect_window(p.p, 1, run(B, 5), VKI_CLIP_EOS, "comma 54");
    }
    { // a comma as the 76th token opens the next window; nothing moves
        Prompt p(tok, repeat("a ", 75) + ", b");
        ASSERT_EQ(p.p.n_windows, 2u);
        expect_window(p.p, 1, run(COMMA, 1) + run(B, 1), VKI_CLIP_EOS, "comma 75");
    }
}

TEST(ClipTokenizerPrompt, WindowCapAndPromptSize)
{
    NEED_VOCAB();
    Prompt max(tok, repeat("a ", 32 * 75));
    ASSERT_EQ(max.st, VKI_OK) << max.err;
    EXPECT_EQ(max.p.n_windows, 32u);
    Prompt over(tok, repeat("a ", 32 * 75 + 1));
    EXPECT_EQ(over.st, VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(over.err.find("32 windows"), std::string::npos) << over.err;
    Prompt breaks(tok, repeat("a BREAK ", 40));
    EXPECT_EQ(breaks.st, VKI_ERROR_INVALID_ARGUMENT);
    Prompt huge(tok, std::string((256u << 10) + 1, 'a'));
    EXPECT_EQ(huge.st, VKI_ERROR_INVALID_ARGUMENT);
    Prompt brackets(tok, repeat("(", 200) + repeat("a)", 200) + repeat("[]", 5000));
    EXPECT_EQ(brackets.st, VKI_OK) << brackets.err;
}
