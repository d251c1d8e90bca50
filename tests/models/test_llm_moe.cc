// Mixture-of-experts language models on the device against transformers (tools/gen_moe_golden.py):
// tiny seeded random models of each MoE architecture llama.cpp runs (Qwen2-MoE, Qwen3-MoE,
// OLMoE, Granite-MoE with and without a shared expert, Mixtral), converted to GGUF by llama.cpp's convert_hf_to_gguf.py, and
// their transformers logits for a 12-token sequence (every position) and 8 greedy tokens
// (which llama.cpp's llama-server gives too from each f32 file: the generator checks).
//
// Each model runs three ways: the prompt in one batch pass (12 rows of a 64-row pass, the rest
// padding), token by token through the one-token pass (decoding: every position's logits), and
// greedy decoding. Errors are normalised: |ours - ref|_2 / |ref|_2 over a position's logits.
//
// Bounds. With an f32 KV cache nothing is rounded but fp32 sums taken in another order, so the
// f32 files and the f16 ones (whose reference is the model with its weights rounded to f16 as the
// converter rounds them) are held to EXACT_TOL = 1e-4; measured on lavapipe: 2e-7 to 8e-7 for
// every model and pass. For scale (measured on these models with transformers): renormalising
// the chosen experts' weights where the architecture does not, or the reverse, moves the logits
// by 0.09 (Qwen2-MoE) to 0.25 (OLMoE); Qwen2-MoE's shared-expert gate at a constant 0.5, 0.09;
// three experts a token instead of two, 0.014 to 0.13; Granite's multipliers left at their
// defaults, 0.33 (residual) to 5 (logits), and its attention multiplier 0.25 instead of 0.2,
// 0.008. 1e-4 catches each. The q8_0 Mixtral is compared to the f32 model's logits: its 8-bit
// weights move them by 0.02 (Q8_TOL = 0.05), and its greedy tokens are not compared beyond the
// first (a near-tie may flip). OLMoE runs once with the default f16 cache as well: keys and
// values rounded to 11 bits move its logits by 4.4e-4 (F16_CACHE_TOL = 5e-3).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
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

constexpr double EXACT_TOL = 1e-4;
constexpr double Q8_TOL = 0.05;
constexpr double F16_CACHE_TOL = 5e-3;

struct MoeCase {
    const char *name;     // an entry of golden.json's models
    const char *arch;     // general.architecture
    uint32_t n_expert;
    vki_dtype kv_dtype;
    double tol;
    const char *narrow;   // device narrowing ("" none)
    bool greedy;          // compare the greedy tokens
};

const MoeCase CASES[] = {
    {"qwen2moe_f32", "qwen2moe", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"qwen2moe_f16", "qwen2moe", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"qwen3moe_f32", "qwen3moe", 8, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"qwen3moe_f16", "qwen3moe", 8, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"olmoe_f32", "olmoe", 8, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"olmoe_f16", "olmoe", 8, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"granitemoe_f32", "granitemoe", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"granitemoe_f16", "granitemoe", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"granitemoeshared_f32", "granitemoe", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"mixtral_f32", "llama", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"mixtral_f16", "llama", 4, VKI_DTYPE_F32, EXACT_TOL, "", true},
    {"mixtral_q8_0", "llama", 4, VKI_DTYPE_F32, Q8_TOL, "", false},
    // The kernels' fallbacks (no subgroups, no fp16) and the default f16 cache.
    {"qwen2moe_f16", "qwen2moe", 4, VKI_DTYPE_F32, EXACT_TOL, "no-fp16,no-subgroup,no-int-dot", true},
    {"mixtral_f16", "llama", 4, VKI_DTYPE_F32, EXACT_TOL, "tuning=nvidia", true},
    {"olmoe_f32", "olmoe", 8, VKI_DTYPE_F16, F16_CACHE_TOL, "", true},
};

std::string read_text(const std::string &path)
{
    std::ifstream f(path);
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

class MoeGolden : public VulkanTest, public ::testing::WithParamInterface<MoeCase> {
  protected:
    cJSON *doc = nullptr;
    const cJSON *model = nullptr;
    vki_gguf *gguf = nullptr;
    vki_llm *llm = nullptr;

    void SetUp() override
    {
        VulkanTest::SetUp();
        const MoeCase &c = GetParam();
        std::string text = read_text(std::string(VKI_TEST_DATA) + "/moe/golden.json");
        doc = cJSON_Parse(text.c_str());
        ASSERT_NE(doc, nullptr) << "tests/data/moe/golden.json is missing or malformed";
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(doc, "models"))
        {
            if (strcmp(cJSON_GetObjectItem(m, "name")->valuestring, c.name) == 0) model = m;
        }
        ASSERT_NE(model, nullptr) << c.name << " is not in golden.json";
        open_device(c.narrow);
        std::string path = std::string(VKI_TEST_DATA) + "/moe/" +
                           cJSON_GetObjectItem(model, "file")->valuestring;
        char err[512];
        ASSERT_EQ(vki_gguf_open(path.c_str(), nullptr, &gguf, err, sizeof err), VKI_OK) << err;
        vki_llm_desc d = {};
        d.n_ctx = 64;
        d.kv_dtype = c.kv_dtype;
        ASSERT_EQ(vki_llm_load(dev, gguf, &d, &llm, err, sizeof err), VKI_OK) << err;
    }
    void TearDown() override
    {
        vki_llm_destroy(llm);
        vki_gguf_close(gguf);
        cJSON_Delete(doc);
        VulkanTest::TearDown();
    }
};

TEST_P(MoeGolden, LogitsAndGreedyTokensMatchTransformers)
{
    const MoeCase &c = GetParam();
    const vki_llm_info *info = vki_llm_info_get(llm);
    EXPECT_STREQ(info->arch, c.arch);
    EXPECT_EQ(info->n_expert, c.n_expert);
    EXPECT_EQ(info->n_expert_used, 2u);
    std::vector<int32_t> tokens = ints(cJSON_GetObjectItem(doc, "tokens"));
    const cJSON *ref_logits = cJSON_GetObjectItem(model, "logits");
    ASSERT_EQ(cJSON_GetArraySize(ref_logits), int(tokens.size()));
    uint32_t n_vocab = info->n_vocab;
    ASSERT_EQ(n_vocab, uint32_t(cJSON_GetObjectItem(doc, "n_vocab")->valueint));
    std::vector<float> logits(n_vocab);

    // The prompt in one batch pass: the last position's logits.
    ASSERT_EQ(vki_llm_eval(llm, tokens.data(), uint32_t(tokens.size()), logits.data()), VKI_OK)
        << vki_llm_last_error(llm);
    std::vector<float> last = floats(cJSON_GetArrayItem(ref_logits, int(tokens.size()) - 1));
    double batch_err = normalised_error(logits, last);
    EXPECT_LE(batch_err, c.tol) << "batch pass, last position";

    // Greedy decoding from there.
    if (c.greedy) {
        std::vector<int32_t> want = ints(cJSON_GetObjectItem(model, "greedy")), got;
        for (size_t s = 0; s < want.size(); s++) {
            int32_t next = argmax(logits);
            got.push_back(next);
            ASSERT_EQ(vki_llm_eval(llm, &next, 1, logits.data()), VKI_OK) << vki_llm_last_error(llm);
        }
        EXPECT_EQ(got, want);
    } else if (c.tol > EXACT_TOL) { // the first token at least, where the reference's top two are apart
        std::vector<float> sorted = last;
        std::sort(sorted.rbegin(), sorted.rend());
        if (sorted[0] - sorted[1] > 0.1f) {
            EXPECT_EQ(argmax(logits), argmax(last));
        }
    }

    // Token by token: every position through the one-token pass.
    vki_llm_rewind(llm, 0);
    double decode_err = 0;
    for (size_t i = 0; i < tokens.size(); i++) {
        ASSERT_EQ(vki_llm_eval(llm, &tokens[i], 1, logits.data()), VKI_OK) << vki_llm_last_error(llm);
        double e = normalised_error(logits, floats(cJSON_GetArrayItem(ref_logits, int(i))));
        EXPECT_LE(e, c.tol) << "one-token pass, position " << i;
        decode_err = std::max(decode_err, e);
    }
    std::printf("[ %s ] normalised error: batch %.2e, token by token (max) %.2e\n", c.name,
                batch_err, decode_err);
}

std::string case_name(const ::testing::TestParamInfo<MoeCase> &info)
{
    std::string s = info.param.name;
    if (info.param.narrow[0]) s += strncmp(info.param.narrow, "tuning=", 7) ? "_fallbacks" : "_gpu_tuning";
    if (info.param.kv_dtype == VKI_DTYPE_F16) s += "_f16_cache";
    return s;
}

INSTANTIATE_TEST_SUITE_P(Moe, MoeGolden, ::testing::ValuesIn(CASES), case_name);

// Hostile and oversized files: a metadata value patched in the bytes of a golden model, then
// checked against this device's profile (nothing is uploaded).
class MoeCheck : public VulkanTest {
  protected:
    std::vector<uint8_t> file;
    vki_gguf *gguf = nullptr;
    char err[512] = "";

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
        std::string bytes = read_text(std::string(VKI_TEST_DATA) + "/moe/olmoe-f16.gguf");
        file.assign(bytes.begin(), bytes.end());
        ASSERT_GT(file.size(), 1000u);
    }
    void TearDown() override
    {
        vki_gguf_close(gguf);
        VulkanTest::TearDown();
    }
    // Sets the u32 metadata `key` (written as key, type 4, value) to v.
    void patch_u32(const char *key, uint32_t v)
    {
        size_t n = strlen(key);
        auto it = std::search(file.begin(), file.end(), key, key + n);
        ASSERT_NE(it, file.end()) << key;
        size_t at = size_t(it - file.begin()) + n;
        uint32_t type;
        memcpy(&type, &file[at], 4);
        ASSERT_EQ(type, 4u) << key << " is not a u32";
        memcpy(&file[at + 4], &v, 4);
    }
    vki_status check(const vki_profile *profile)
    {
        vki_gguf_close(gguf);
        gguf = nullptr;
        char gerr[256];
        EXPECT_EQ(vki_gguf_open_memory(file.data(), file.size(), nullptr, &gguf, gerr, sizeof gerr), VKI_OK)
            << gerr;
        vki_llm_desc d = {};
        d.n_ctx = 64;
        return vki_llm_check(profile, gguf, &d, err, sizeof err);
    }
    bool says(const char *text) const { return std::string(err).find(text) != std::string::npos; }
};

TEST_F(MoeCheck, TheFileChecks)
{
    EXPECT_EQ(check(vki_device_profile(dev)), VKI_OK) << err;
}

TEST_F(MoeCheck, ExpertCountsAreBounded)
{
    const std::pair<const char *, uint32_t> bad[] = {
        {"olmoe.expert_count", 513u}, {"olmoe.expert_count", 0xffffffffu},
        {"olmoe.expert_count", 0u}, {"olmoe.expert_used_count", 9u},
        {"olmoe.expert_used_count", 0u}};
    for (auto &b : bad) {
        std::string bytes = read_text(std::string(VKI_TEST_DATA) + "/moe/olmoe-f16.gguf");
        file.assign(bytes.begin(), bytes.end());
        patch_u32(b.first, b.second);
        EXPECT_EQ(check(vki_device_profile(dev)), VKI_ERROR_BAD_FILE) << b.first << " " << b.second;
        EXPECT_TRUE(says("expert")) << err;
    }
}

// Fewer experts than the stacked tensors hold is a misshapen tensor, named.
TEST_F(MoeCheck, ExpertTensorsMustMatchTheCount)
{
    patch_u32("olmoe.expert_count", 4);
    EXPECT_EQ(check(vki_device_profile(dev)), VKI_ERROR_BAD_FILE);
    EXPECT_TRUE(says("ffn_gate_inp") || says("_exps")) << err;
}

// A device too small for the weights (every expert) and the cache says so before loading,
// with both sizes.
TEST_F(MoeCheck, AModelThatDoesNotFitSaysSoBeforeLoading)
{
    vki_profile small = *vki_device_profile(dev);
    small.device_local_bytes = 100 << 10; // the f16 OLMoE's weights are 330 KiB
    EXPECT_EQ(check(&small), VKI_ERROR_OUT_OF_DEVICE_MEMORY);
    EXPECT_TRUE(says("every expert") && says("need") && says("has 0.1 MiB")) << err;
}

// The benchmark's synthetic MoE (vki_llm_synthetic: Granite 3.0 1B-A400M's shapes, Q4_0) is a
// model vkinfer loads: every tensor read, every shape as the architecture wants it.
TEST_F(MoeCheck, TheSyntheticGraniteMoeIsAValidModel)
{
    void *bytes = nullptr;
    size_t size = 0;
    ASSERT_EQ(vki_llm_synthetic("granitemoe-1b-a400m-q4_0", 1, &bytes, &size, err, sizeof err), VKI_OK) << err;
    char gerr[256];
    ASSERT_EQ(vki_gguf_open_memory(bytes, size, nullptr, &gguf, gerr, sizeof gerr), VKI_OK) << gerr;
    vki_llm_desc d = {};
    d.n_ctx = 256;
    EXPECT_EQ(vki_llm_check(vki_device_profile(dev), gguf, &d, err, sizeof err), VKI_OK) << err;
    vki_gguf_close(gguf);
    gguf = nullptr;
    free(bytes);
}

} // namespace
