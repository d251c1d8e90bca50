// Qwen2-VL's language model (GGUF "qwen2vl": Qwen2 with M-RoPE) on the device against
// transformers (tools/gen_qwen2vl_golden.py): a tiny seeded random Qwen2VLForConditionalGeneration
// (64 wide, 2 layers, 2 heads of 32 and 1 KV head, mrope_section 4/6/6) converted by llama.cpp's
// convert_hf_to_gguf.py, f32 and f16.
//
//   text   a 12-token prompt, whose rows have every rope stream at their position: logits at
//          every position and 8 greedy tokens (llama.cpp's llama-server gives the same 8 from the
//          f32 file: the generator checks).
//   image  3 tokens, vision_start, an image of 2 x 3 merged tokens (2 wide, 3 high), vision_end
//          and 3 tokens, with transformers' own image embeddings fed through vki_llm_eval_image,
//          so that the language model's M-RoPE placement is checked apart from vkinfer's vision
//          encoder: the image rows take rope positions (4, 4 + row, 4 + col) and the tokens after
//          it 7, 8, ... while their cache rows are 10, 11, ...
//
// Errors are normalised: |ours - ref|_2 / |ref|_2 over a position's logits. With the f32 cache
// nothing is rounded but sums taken in another order: TOL = 1e-4 (as test_llm_moe.cc). For
// scale, the image rows placed as text positions instead (vki_llm_eval_embd), or the grid read
// as 3 wide and 2 high, move the logits after the image by far more (the tests below show it).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_models.h"
}

namespace {

constexpr double TOL = 1e-4;

std::string read_text(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::vector<int32_t> ints(const cJSON *arr)
{
    std::vector<int32_t> v;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) v.push_back(e->valueint);
    return v;
}

std::vector<float> floats(const cJSON *arr)
{
    std::vector<float> v;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) v.push_back(float(e->valuedouble));
    return v;
}

double normalised_error(const std::vector<float> &ours, const std::vector<float> &ref)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        num += (double(ours[i]) - ref[i]) * (double(ours[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

int argmax(const std::vector<float> &v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

struct Case {
    const char *name;   // an entry of llm_golden.json's models
    const char *narrow; // device narrowing ("" none)
};

const Case CASES[] = {
    {"qwen2vl_f32", ""},
    {"qwen2vl_f16", ""},
    {"qwen2vl_f32", "no-fp16,no-subgroup,no-int-dot"},
    {"qwen2vl_f16", "tuning=nvidia"},
};

class Qwen2vlGolden : public VulkanTest, public ::testing::WithParamInterface<Case> {
  protected:
    cJSON *doc = nullptr;
    const cJSON *model = nullptr;
    vki_gguf *gguf = nullptr;
    vki_llm *llm = nullptr;
    uint32_t n_vocab = 0;

    void SetUp() override
    {
        VulkanTest::SetUp();
        std::string text = read_text(std::string(VKI_TEST_DATA) + "/qwen2vl/llm_golden.json");
        doc = cJSON_Parse(text.c_str());
        ASSERT_NE(doc, nullptr) << "tests/data/qwen2vl/llm_golden.json is missing or malformed";
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(doc, "models"))
        {
            if (strcmp(cJSON_GetObjectItem(m, "name")->valuestring, GetParam().name) == 0) model = m;
        }
        ASSERT_NE(model, nullptr);
        open_device(GetParam().narrow);
    }
    void load(uint32_t n_seq)
    {
        std::string path = std::string(VKI_TEST_DATA) + "/qwen2vl/" +
                           cJSON_GetObjectItem(model, "file")->valuestring;
        char err[512];
        ASSERT_EQ(vki_gguf_open(path.c_str(), nullptr, &gguf, err, sizeof err), VKI_OK) << err;
        vki_llm_desc d = {};
        d.n_ctx = 64;
        d.n_seq = n_seq;
        d.kv_dtype = VKI_DTYPE_F32;
        ASSERT_EQ(vki_llm_load(dev, gguf, &d, &llm, err, sizeof err), VKI_OK) << err;
        EXPECT_STREQ(vki_llm_info_get(llm)->arch, "qwen2vl");
        n_vocab = vki_llm_info_get(llm)->n_vocab;
        ASSERT_EQ(n_vocab, uint32_t(cJSON_GetObjectItem(doc, "n_vocab")->valueint));
    }
    void TearDown() override
    {
        vki_llm_destroy(llm);
        vki_gguf_close(gguf);
        cJSON_Delete(doc);
        VulkanTest::TearDown();
    }
    std::vector<float> ref(const cJSON *logits, size_t i) { return floats(cJSON_GetArrayItem(logits, int(i))); }
    const cJSON *image() { return cJSON_GetObjectItem(model, "image"); }
    std::vector<float> image_embd()
    {
        std::vector<float> e;
        const cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItem(image(), "embd"))
        {
            std::vector<float> r = floats(row);
            e.insert(e.end(), r.begin(), r.end());
        }
        return e;
    }
    // Evaluates the image prompt up to and including the image on sequence seq (the image as
    // a w x h grid, or at text positions when w == 0); returns the logits after the image.
    std::vector<float> eval_to_image_end(uint32_t seq, uint32_t w, uint32_t h)
    {
        std::vector<int32_t> tokens = ints(cJSON_GetObjectItem(image(), "tokens"));
        int at = cJSON_GetObjectItem(image(), "image_at")->valueint;
        std::vector<float> embd = image_embd(), logits(n_vocab);
        EXPECT_EQ(vki_llm_eval_seq(llm, seq, tokens.data(), uint32_t(at), nullptr), VKI_OK) << vki_llm_last_error(llm);
        uint32_t n = uint32_t(embd.size() / 64);
        vki_status st = w ? vki_llm_eval_image(llm, seq, embd.data(), w, h, false, logits.data())
                          : vki_llm_eval_embd(llm, seq, embd.data(), n, false, logits.data());
        EXPECT_EQ(st, VKI_OK) << vki_llm_last_error(llm);
        return logits;
    }
};

TEST_P(Qwen2vlGolden, TextLogitsAndGreedyTokensMatchTransformers)
{
    load(1);
    std::vector<int32_t> tokens = ints(cJSON_GetObjectItem(doc, "tokens"));
    const cJSON *ref_logits = cJSON_GetObjectItem(model, "logits");
    std::vector<float> logits(n_vocab);
    ASSERT_EQ(vki_llm_eval(llm, tokens.data(), uint32_t(tokens.size()), logits.data()), VKI_OK)
        << vki_llm_last_error(llm);
    double batch_err = normalised_error(logits, ref(ref_logits, tokens.size() - 1));
    EXPECT_LE(batch_err, TOL) << "batch pass, last position";
    std::vector<int32_t> want = ints(cJSON_GetObjectItem(model, "greedy")), got;
    for (size_t s = 0; s < want.size(); s++) {
        int32_t next = argmax(logits);
        got.push_back(next);
        ASSERT_EQ(vki_llm_eval(llm, &next, 1, logits.data()), VKI_OK) << vki_llm_last_error(llm);
    }
    EXPECT_EQ(got, want);
    const cJSON *lc = cJSON_GetObjectItem(model, "llama_cpp_greedy");
    if (lc) EXPECT_EQ(got, ints(lc)) << "llama.cpp's greedy tokens";

    vki_llm_rewind(llm, 0);
    double decode_err = 0;
    for (size_t i = 0; i < tokens.size(); i++) {
        ASSERT_EQ(vki_llm_eval(llm, &tokens[i], 1, logits.data()), VKI_OK) << vki_llm_last_error(llm);
        double e = normalised_error(logits, ref(ref_logits, i));
        EXPECT_LE(e, TOL) << "one-token pass, position " << i;
        decode_err = std::max(decode_err, e);
    }
    std::printf("[ %s ] text: normalised error batch %.2e, token by token (max) %.2e\n",
                GetParam().name, batch_err, decode_err);
}

// The image prompt with transformers' image embeddings; then rewinds: to just after the image
// (the rope position must come back to 7, not the cache row 10) and to before it (back to 3).
TEST_P(Qwen2vlGolden, ImagePromptMatchesTransformersAndRewindsKeepRopePositions)
{
    if (!image()) GTEST_SKIP() << "the image golden is the f32 model's";
    load(1);
    const cJSON *img = image();
    std::vector<int32_t> tokens = ints(cJSON_GetObjectItem(img, "tokens"));
    const cJSON *ref_logits = cJSON_GetObjectItem(img, "logits");
    uint32_t at = uint32_t(cJSON_GetObjectItem(img, "image_at")->valueint);
    uint32_t w = uint32_t(cJSON_GetObjectItem(img, "grid_w")->valueint);
    uint32_t h = uint32_t(cJSON_GetObjectItem(img, "grid_h")->valueint);
    uint32_t end = at + w * h; // the first row after the image
    std::vector<float> logits = eval_to_image_end(0, w, h);
    double image_err = normalised_error(logits, ref(ref_logits, end - 1));
    EXPECT_LE(image_err, TOL) << "after the image";
    double after_err = 0;
    for (uint32_t i = end; i < tokens.size(); i++) { // one by one: every position's logits
        ASSERT_EQ(vki_llm_eval(llm, &tokens[i], 1, logits.data()), VKI_OK) << vki_llm_last_error(llm);
        double e = normalised_error(logits, ref(ref_logits, i));
        EXPECT_LE(e, TOL) << "position " << i;
        after_err = std::max(after_err, e);
    }
    // Rewound to just after the image, the rest again in one batch pass.
    vki_llm_rewind(llm, end);
    ASSERT_EQ(vki_llm_eval(llm, &tokens[end], uint32_t(tokens.size() - end), logits.data()), VKI_OK)
        << vki_llm_last_error(llm);
    double rewind_err = normalised_error(logits, ref(ref_logits, tokens.size() - 1));
    EXPECT_LE(rewind_err, TOL) << "rewound to the image's end";
    // Rewound to before the image: the text prompt from its 4th token on, at rope positions 3..
    std::vector<int32_t> text = ints(cJSON_GetObjectItem(doc, "tokens"));
    ASSERT_EQ(std::vector<int32_t>(text.begin(), text.begin() + 3), std::vector<int32_t>(tokens.begin(), tokens.begin() + 3));
    vki_llm_rewind(llm, 3);
    ASSERT_EQ(vki_llm_eval(llm, &text[3], uint32_t(text.size() - 3), logits.data()), VKI_OK)
        << vki_llm_last_error(llm);
    double text_err = normalised_error(logits, ref(cJSON_GetObjectItem(model, "logits"), text.size() - 1));
    EXPECT_LE(text_err, TOL) << "rewound to before the image";
    std::printf("[ %s ] image: after the image %.2e, tokens after it (max) %.2e, rewound to its end "
                "%.2e, rewound before it %.2e\n", GetParam().name, image_err, after_err, rewind_err, text_err);
}

// Negative controls: the image at text positions, or its grid transposed, is far off (measured
// on lavapipe: 8.3e-2 and 7.6e-3, against 3.5e-7 placed right).
TEST_P(Qwen2vlGolden, ImageRopePlacementMatters)
{
    if (!image()) GTEST_SKIP() << "the image golden is the f32 model's";
    load(1);
    const cJSON *img = image();
    const cJSON *ref_logits = cJSON_GetObjectItem(img, "logits");
    uint32_t at = uint32_t(cJSON_GetObjectItem(img, "image_at")->valueint);
    uint32_t w = uint32_t(cJSON_GetObjectItem(img, "grid_w")->valueint);
    uint32_t h = uint32_t(cJSON_GetObjectItem(img, "grid_h")->valueint);
    std::vector<float> want = ref(ref_logits, at + w * h - 1);
    double as_text = normalised_error(eval_to_image_end(0, 0, 0), want);
    vki_llm_rewind(llm, 0);
    double transposed = normalised_error(eval_to_image_end(0, h, w), want);
    std::printf("[ %s ] image at text positions: %.2e; grid transposed: %.2e\n", GetParam().name,
                as_text, transposed);
    EXPECT_GT(as_text, 10 * TOL);
    EXPECT_GT(transposed, 10 * TOL);
    vki_llm_rewind(llm, 0);
    EXPECT_EQ(vki_llm_eval_image(llm, 0, image_embd().data(), 0, 3, false, nullptr), VKI_ERROR_INVALID_ARGUMENT);
}

// Two sequences decoded together (vki_llm_decode's passes carry rope positions too): the text
// prompt on sequence 0, the image prompt on sequence 1, their tails one token per step.
TEST_P(Qwen2vlGolden, TwoSequencesDecodeWithTheirOwnRopePositions)
{
    if (!image()) GTEST_SKIP() << "the image golden is the f32 model's";
    load(2);
    const cJSON *img = image();
    std::vector<int32_t> itok = ints(cJSON_GetObjectItem(img, "tokens"));
    std::vector<int32_t> ttok = ints(cJSON_GetObjectItem(doc, "tokens"));
    const cJSON *iref = cJSON_GetObjectItem(img, "logits"), *tref = cJSON_GetObjectItem(model, "logits");
    uint32_t at = uint32_t(cJSON_GetObjectItem(img, "image_at")->valueint);
    uint32_t end = at + uint32_t(cJSON_GetObjectItem(img, "grid_w")->valueint *
                                 cJSON_GetObjectItem(img, "grid_h")->valueint);
    eval_to_image_end(1, uint32_t(cJSON_GetObjectItem(img, "grid_w")->valueint),
                      uint32_t(cJSON_GetObjectItem(img, "grid_h")->valueint));
    uint32_t steps = uint32_t(itok.size()) - end, t0 = uint32_t(ttok.size()) - steps;
    ASSERT_EQ(vki_llm_eval_seq(llm, 0, ttok.data(), t0, nullptr), VKI_OK) << vki_llm_last_error(llm);
    std::vector<float> logits(2 * size_t(n_vocab));
    double worst = 0;
    for (uint32_t s = 0; s < steps; s++) {
        const uint32_t seqs[2] = {1, 0};
        const int32_t next[2] = {itok[end + s], ttok[t0 + s]};
        ASSERT_EQ(vki_llm_decode(llm, seqs, next, 2, logits.data()), VKI_OK) << vki_llm_last_error(llm);
        std::vector<float> a(logits.begin(), logits.begin() + n_vocab), b(logits.begin() + n_vocab, logits.end());
        double ea = normalised_error(a, ref(iref, end + s)), eb = normalised_error(b, ref(tref, t0 + s));
        EXPECT_LE(ea, TOL) << "image sequence, position " << end + s;
        EXPECT_LE(eb, TOL) << "text sequence, position " << t0 + s;
        worst = std::max(worst, std::max(ea, eb));
    }
    std::printf("[ %s ] two sequences decoded together: max normalised error %.2e\n", GetParam().name, worst);
}

std::string case_name(const ::testing::TestParamInfo<Case> &info)
{
    std::string s = info.param.name;
    if (info.param.narrow[0]) s += strncmp(info.param.narrow, "tuning=", 7) ? "_fallbacks" : "_gpu_tuning";
    return s;
}

INSTANTIATE_TEST_SUITE_P(Qwen2vl, Qwen2vlGolden, ::testing::ValuesIn(CASES), case_name);

// A file whose rope sections do not add up to the rotated pairs is refused at load.
TEST_F(VulkanTest, Qwen2vlSectionsMustCoverTheRotation)
{
    open_device();
    std::string bytes = read_text(std::string(VKI_TEST_DATA) + "/qwen2vl/qwen2vl-f16.gguf");
    std::vector<uint8_t> file(bytes.begin(), bytes.end());
    const char *key = "qwen2vl.rope.dimension_sections";
    auto it = std::search(file.begin(), file.end(), key, key + strlen(key));
    ASSERT_NE(it, file.end());
    size_t at = size_t(it - file.begin()) + strlen(key); // type 9 (array), element type, count, values
    uint32_t type, elem, first;
    memcpy(&type, &file[at], 4);
    memcpy(&elem, &file[at + 4], 4);
    memcpy(&first, &file[at + 16], 4);
    ASSERT_EQ(type, 9u);
    ASSERT_EQ(first, 4u);
    uint32_t wrong = 5;
    memcpy(&file[at + 16], &wrong, 4);
    vki_gguf *g = nullptr;
    char err[512];
    ASSERT_EQ(vki_gguf_open_memory(file.data(), file.size(), nullptr, &g, err, sizeof err), VKI_OK) << err;
    vki_llm_desc d = {};
    d.n_ctx = 64;
    EXPECT_EQ(vki_llm_check(vki_device_profile(dev), g, &d, err, sizeof err), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(err).find("dimension_sections"), std::string::npos) << err;
    vki_gguf_close(g);
}

} // namespace
