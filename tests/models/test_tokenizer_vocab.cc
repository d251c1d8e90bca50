// Tokenizer on real vocabularies of other models: llama.cpp's vocabulary-only GGUF files
// (models/ggml-vocab-*.gguf, no weights) with their test vectors, *.gguf.inp (texts separated by
// "\n__ggml_vocab_test__\n") and *.gguf.out (one line of ids per text). The ids come from the
// Hugging Face tokenizer of each model, without BOS or other added tokens, and llama.cpp's
// test-tokenizer-0 encodes the texts with add_special and parse_special both off; so does this
// test. tools/fetch_models.sh --vocabs puts the files in $VKI_MODEL_DIR/vocab/.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "models/model_files.h"
#include "models/tokenizer_util.h"
#include "vkinfer_models.h"

namespace {

bool read_file(const std::string &path, std::string *out)
{
    std::ifstream f(path, std::ios::binary);
    if (!f.good()) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
    return true;
}

// The .inp format: texts separated by the marker; the file ends with one, which closes the
// last text rather than opening an empty one.
std::vector<std::string> split_texts(const std::string &raw)
{
    static const std::string SEP = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    for (size_t pos = 0; pos < raw.size();) {
        size_t next = raw.find(SEP, pos);
        if (next == std::string::npos) {
            texts.push_back(raw.substr(pos));
            break;
        }
        texts.push_back(raw.substr(pos, next - pos));
        pos = next + SEP.size();
    }
    return texts;
}

// The .out format: one line per text, ids separated by spaces (lines start with one).
std::vector<std::vector<int32_t>> parse_ids(const std::string &raw)
{
    std::vector<std::vector<int32_t>> all;
    std::istringstream lines(raw);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        std::vector<int32_t> ids;
        for (long id; words >> id;) ids.push_back(int32_t(id));
        all.push_back(ids);
    }
    return all;
}

std::string printable(const std::string &s)
{
    std::string o;
    for (unsigned char c : s) {
        if (c == '\n') {
            o += "\\n";
        } else if (c == '\t') {
            o += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char b[8];
            snprintf(b, sizeof b, "\\x%02x", c);
            o += b;
        } else {
            o += char(c);
        }
    }
    return o;
}

// Ids with their vocabulary spellings: "1142 'ied' 220 'Ġ'".
std::string spelled(const vki_tokenizer *t, const std::vector<int32_t> &ids)
{
    std::string o;
    for (int32_t id : ids) {
        size_t n = 0;
        const char *s = vki_tokenizer_token_text(t, id, &n);
        o += std::to_string(id) + " '" + printable(s ? std::string(s, n) : "?") + "' ";
    }
    return o.empty() ? "(none)" : o;
}

struct VocabCase {
    const char *name;   // ggml-vocab-<name>.gguf
    bool sentencepiece; // else byte-level BPE
    bool add_bos;       // what llama.cpp decides for the file (the key, else its default)
};

void PrintTo(const VocabCase &c, std::ostream *os) { *os << c.name; }

class TokenizerVocab : public ::testing::TestWithParam<VocabCase> {
  protected:
    vki_gguf *gguf = nullptr;
    vki_tokenizer *tok = nullptr;
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> want;

    void SetUp() override
    {
        std::string base = model_dir() + "/vocab/ggml-vocab-" + GetParam().name + ".gguf";
        std::string inp, out;
        for (const std::string &path : {base, base + ".inp", base + ".out"})
            if (!std::ifstream(path).good())
                GTEST_SKIP() << path
                             << " is absent: `bash tools/fetch_models.sh --vocabs` (run by "
                                "tools/setup.sh) extracts it from the llama-cpp-python sdist";
        ASSERT_TRUE(read_file(base + ".inp", &inp) && read_file(base + ".out", &out));
        texts = split_texts(inp);
        want = parse_ids(out);
        ASSERT_EQ(texts.size(), want.size()) << base << ".inp and .out disagree on the count";
        ASSERT_GT(texts.size(), 40u);
        char err[256];
        ASSERT_EQ(vki_gguf_open(base.c_str(), nullptr, &gguf, err, sizeof err), VKI_OK) << err;
        ASSERT_EQ(vki_tokenizer_create(gguf, nullptr, &tok, err, sizeof err), VKI_OK) << err;
    }
    void TearDown() override
    {
        vki_tokenizer_destroy(tok);
        vki_gguf_close(gguf);
    }
};

TEST_P(TokenizerVocab, IdsEqualHuggingFace)
{
    int matched = 0;
    for (size_t i = 0; i < texts.size(); i++) {
        std::vector<int32_t> got = encode(tok, texts[i], false, false);
        if (got == want[i]) matched++;
        else
            ADD_FAILURE() << "text " << i << ": \"" << printable(texts[i]) << "\"\n  expected "
                          << spelled(tok, want[i]) << "\n  actual   " << spelled(tok, got);
        // None of the texts spells a special token, so parsing them changes nothing.
        EXPECT_EQ(encode(tok, texts[i], false, true), got) << "text " << i << " with parse_special";
    }
    RecordProperty("texts", int(texts.size()));
    RecordProperty("matched", matched);
}

TEST_P(TokenizerVocab, DecodingGivesTheTextBack)
{
    for (size_t i = 0; i < texts.size(); i++) {
        const std::string &text = texts[i];
        // SentencePiece: the encoder put a space in front (add_space_prefix) and the pieces
        // keep it; llama.cpp's detokenizer drops it again, vkinfer leaves that to the caller.
        // Byte-level BPE gives every byte back exactly.
        std::string back = GetParam().sentencepiece && !text.empty() ? " " + text : text;
        EXPECT_EQ(decode(tok, want[i]), back) << "text " << i << " (expected ids)";
        EXPECT_EQ(decode(tok, encode(tok, text, false, false)), back) << "text " << i;
    }
}

TEST_P(TokenizerVocab, AddsBosAsLlamaCpp)
{
    EXPECT_EQ(vki_tokenizer_add_bos(tok), GetParam().add_bos);
    int32_t bos = vki_tokenizer_bos(tok);
    uint32_t n = 0;
    int32_t ids[4];
    ASSERT_EQ(vki_tokenizer_encode(tok, "", 0, vki_tokenizer_add_bos(tok), false, ids, 4, &n),
              VKI_OK);
    ASSERT_EQ(n, GetParam().add_bos ? 1u : 0u);
    if (n) EXPECT_EQ(ids[0], bos);
}

// Every vocabulary in the sdist with test vectors and a pre-tokenizer vkinfer knows. Not here:
// deepseek-llm and deepseek-coder (their pre-tokenizers are not implemented), bert-bge (WordPiece)
// and those without .inp/.out (aquila, baichuan, gpt-neox, nomic-bert-moe).
INSTANTIATE_TEST_SUITE_P(
    LlamaCpp, TokenizerVocab,
    ::testing::Values(VocabCase{"llama-bpe", false, true}, // Llama 3: llama.cpp's default is on
                      VocabCase{"qwen2", false, false}, VocabCase{"gpt-2", false, false},
                      VocabCase{"mpt", false, false}, VocabCase{"starcoder", false, false},
                      VocabCase{"refact", false, false}, VocabCase{"command-r", false, true},
                      VocabCase{"falcon", false, false}, VocabCase{"llama-spm", true, true},
                      VocabCase{"phi-3", true, true}),
    [](const ::testing::TestParamInfo<VocabCase> &i) {
        std::string n;
        for (const char *c = i.param.name; *c; c++) n += *c == '-' ? '_' : *c;
        return n;
    });

} // namespace
