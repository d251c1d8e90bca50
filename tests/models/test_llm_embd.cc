// Embeddings in place of tokens (vki_llm_eval_embd: an image's rows from a vision encoder), on
// the tiny model of llm_tiny_model.h against its reference forward pass: token-table rows give
// the tokens' logits (Gemma 3's rows pre-scaled by the caller: the model must not scale them
// again), a non-causal span matches the reference with a bidirectional mask inside the span
// (alone and among several sequences; past Gemma 3's sliding window, each row's window from its
// own position), a causal span longer than the pass runs in pieces, and
// bad input is refused with a message and evaluates nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "llm_tiny_model.h"
#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_models.h"
}

namespace {

class LlmEmbdTest : public VulkanTest, public ::testing::WithParamInterface<const char *> {
  protected:
    TinyModel tm;
    std::vector<uint8_t> file;
    vki_gguf *gguf = nullptr;
    vki_llm *llm = nullptr;
    char err[512] = "";

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
        tm.arch = GetParam();
        // Spans here end within the window of Gemma 3's local layers, later tokens slide past
        // it; NonCausalSpanPastTheWindow... narrows it to put an image past it.
        tm.window = 12;
        tm.init(11);
    }
    void TearDown() override
    {
        vki_llm_destroy(llm);
        vki_gguf_close(gguf);
        VulkanTest::TearDown();
    }
    vki_status load(const vki_llm_desc &d)
    {
        file = tm.gguf();
        char gerr[256];
        EXPECT_EQ(vki_gguf_open_memory(file.data(), file.size(), nullptr, &gguf, gerr, sizeof gerr), VKI_OK)
            << gerr;
        return vki_llm_load(dev, gguf, &d, &llm, err, sizeof err);
    }
    std::vector<float> logits() const { return std::vector<float>(tm.n_vocab); }

    // n random rows of the residual's scale (what a projector's output looks like to the model).
    std::vector<std::vector<double>> random_rows(uint32_t n, uint32_t seed) const
    {
        std::mt19937 rng(seed);
        std::normal_distribution<float> d(0.0f, 1.0f);
        std::vector<std::vector<double>> rows(n, std::vector<double>(tm.n_embd));
        for (auto &r : rows)
            for (double &x : r) x = d(rng);
        return rows;
    }
    static std::vector<float> flat(const std::vector<std::vector<double>> &rows)
    {
        std::vector<float> f;
        for (auto &r : rows)
            for (double x : r) f.push_back(float(x));
        return f;
    }
    // Rows as the device gets them (f32), for the reference.
    static std::vector<std::vector<double>> rounded(std::vector<std::vector<double>> rows)
    {
        for (auto &r : rows)
            for (double &x : r) x = double(float(x));
        return rows;
    }
};

// The fp32 rounding of the device's passes against the double reference (an f32 cache): the
// causal test in test_llm.cc measures about 1e-9.
constexpr double kTol = 1e-6;

TEST_P(LlmEmbdTest, TokenRowsGiveTheTokensLogits)
{
    vki_llm_desc d = {};
    d.kv_dtype = VKI_DTYPE_F32;
    d.n_batch = 4;
    ASSERT_EQ(load(d), VKI_OK) << err;
    std::vector<int32_t> ids = {5, 17, 2, 33, 9, 21};
    auto by_tokens = logits(), by_rows = logits();
    ASSERT_EQ(vki_llm_eval(llm, ids.data(), uint32_t(ids.size()), by_tokens.data()), VKI_OK)
        << vki_llm_last_error(llm);
    // The caller feeds the rows as the model would have made them from the tokens: Gemma 3's
    // scaled by sqrt(n_embd), which the model must then not apply again.
    std::vector<std::vector<double>> rows;
    for (int32_t t : ids) rows.push_back(tm.embedding(t));
    vki_llm_rewind(llm, 0);
    ASSERT_EQ(vki_llm_eval_embd(llm, 0, flat(rows).data(), uint32_t(rows.size()), false,
                                by_rows.data()),
              VKI_OK)
        << vki_llm_last_error(llm);
    EXPECT_EQ(vki_llm_position(llm), ids.size());
    TinyModel::Cache c;
    auto ref = tm.forward(c, rounded(rows), 0, false);
    EXPECT_LT(nmse(by_tokens, ref), kTol);
    EXPECT_LT(nmse(by_rows, ref), kTol);
    // The rows' cache entries serve the tokens after them.
    int32_t next = 12;
    ASSERT_EQ(vki_llm_eval(llm, &next, 1, by_rows.data()), VKI_OK);
    EXPECT_LT(nmse(by_rows, tm.step(c, next, uint32_t(ids.size()))), kTol);
    if (tm.arch == "gemma3") { // unscaled rows are not the tokens: the control that the test sees it
        std::vector<std::vector<double>> raw;
        for (int32_t t : ids) raw.push_back(tm.embedding(t));
        for (auto &r : raw)
            for (double &x : r) x /= std::sqrt(double(tm.n_embd));
        vki_llm_rewind(llm, 0);
        ASSERT_EQ(vki_llm_eval_embd(llm, 0, flat(raw).data(), uint32_t(raw.size()), false,
                                    by_rows.data()),
                  VKI_OK);
        EXPECT_GT(nmse(by_rows, ref), 1e-3);
    }
}

TEST_P(LlmEmbdTest, NonCausalSpanSeesItselfBothWays)
{
    vki_llm_desc d = {};
    d.kv_dtype = VKI_DTYPE_F32;
    d.n_batch = 4;
    ASSERT_EQ(load(d), VKI_OK) << err;
    std::vector<int32_t> prefix = {3, 14, 15};
    auto rows = random_rows(5, 1);
    auto got = logits();
    ASSERT_EQ(vki_llm_eval(llm, prefix.data(), 3, nullptr), VKI_OK);
    ASSERT_EQ(vki_llm_eval_embd(llm, 0, flat(rows).data(), 5, true, got.data()), VKI_OK)
        << vki_llm_last_error(llm);
    TinyModel::Cache c, cc;
    for (uint32_t i = 0; i < 3; i++) tm.step(c, prefix[i], i), tm.step(cc, prefix[i], i);
    auto ref = tm.forward(c, rounded(rows), 3, true);
    auto causal = tm.forward(cc, rounded(rows), 3, false);
    EXPECT_LT(nmse(got, ref), kTol);
    EXPECT_GT(nmse(got, causal), 1e-3); // the control: a causal span is told apart
    // The tokens after it see the rows as the bidirectional pass left them, through the
    // sliding window of Gemma 3's local layers and past it.
    for (uint32_t pos = 8; pos < 24; pos++) {
        int32_t t = int32_t(pos * 7 % tm.n_vocab);
        ASSERT_EQ(vki_llm_eval(llm, &t, 1, got.data()), VKI_OK);
        EXPECT_LT(nmse(got, tm.step(c, t, pos)), kTol) << "position " << pos;
    }
    // And a causal span is the causal reference.
    vki_llm_rewind(llm, 3);
    ASSERT_EQ(vki_llm_eval_embd(llm, 0, flat(rows).data(), 5, false, got.data()), VKI_OK);
    EXPECT_LT(nmse(got, causal), kTol);
}

// An image that starts past the window of Gemma 3's local layers (window 4 here) and is longer
// than it: each row's window counts back from its own position (llama.cpp and transformers),
// not from the image's last, while every row still sees the whole image.
TEST_P(LlmEmbdTest, NonCausalSpanPastTheWindowCountsEachRowsWindowFromItsOwn)
{
    if (tm.arch != "gemma3") GTEST_SKIP() << "no sliding window";
    tm.window = 4;
    vki_llm_desc d = {};
    d.kv_dtype = VKI_DTYPE_F32;
    d.n_batch = 4;
    ASSERT_EQ(load(d), VKI_OK) << err;
    std::vector<int32_t> prefix = {3, 14, 15, 9, 2, 6, 5, 35, 8};
    auto rows = random_rows(6, 2);
    auto got = logits();
    ASSERT_EQ(vki_llm_eval(llm, prefix.data(), uint32_t(prefix.size()), nullptr), VKI_OK);
    ASSERT_EQ(vki_llm_eval_embd(llm, 0, flat(rows).data(), 6, true, got.data()), VKI_OK)
        << vki_llm_last_error(llm);
    TinyModel::Cache c, co;
    for (uint32_t i = 0; i < prefix.size(); i++) tm.step(c, prefix[i], i), tm.step(co, prefix[i], i);
    auto ref = tm.forward(c, rounded(rows), 9, true);
    auto from_last = tm.forward(co, rounded(rows), 9, true, true);
    EXPECT_LT(nmse(got, ref), kTol);
    EXPECT_GT(nmse(got, from_last), 1e-3); // the control: the old window is told apart
    EXPECT_GT(nmse(std::vector<float>(ref.begin(), ref.end()), from_last), 1e-3);
    for (uint32_t pos = 15; pos < 21; pos++) { // the tokens after see the rows' cache entries
        int32_t t = int32_t(pos * 5 % tm.n_vocab);
        ASSERT_EQ(vki_llm_eval(llm, &t, 1, got.data()), VKI_OK);
        EXPECT_LT(nmse(got, tm.step(c, t, pos)), kTol) << "position " << pos;
    }
}

TEST_P(LlmEmbdTest, SpansStayInTheirSequence)
{
    vki_llm_desc d = {};
    d.kv_dtype = VKI_DTYPE_F32;
    d.n_batch = 4;
    d.n_seq = 3;
    ASSERT_EQ(load(d), VKI_OK) << err;
    auto a = random_rows(4, 2), b = random_rows(6, 3);
    std::vector<int32_t> p0 = {1, 2}, p2 = {7, 8, 9};
    auto got = logits();
    TinyModel::Cache c0, c1, c2;
    ASSERT_EQ(vki_llm_eval_seq(llm, 0, p0.data(), 2, nullptr), VKI_OK);
    ASSERT_EQ(vki_llm_eval_seq(llm, 2, p2.data(), 3, nullptr), VKI_OK);
    for (uint32_t i = 0; i < 2; i++) tm.step(c0, p0[i], i);
    for (uint32_t i = 0; i < 3; i++) tm.step(c2, p2[i], i);
    ASSERT_EQ(vki_llm_eval_embd(llm, 1, flat(a).data(), 4, true, got.data()), VKI_OK)
        << vki_llm_last_error(llm);
    EXPECT_LT(nmse(got, tm.forward(c1, rounded(a), 0, true)), kTol);
    ASSERT_EQ(vki_llm_eval_embd(llm, 2, flat(b).data(), 6, true, got.data()), VKI_OK);
    EXPECT_LT(nmse(got, tm.forward(c2, rounded(b), 3, true)), kTol);
    EXPECT_EQ(vki_llm_seq_position(llm, 1), 4u);
    EXPECT_EQ(vki_llm_seq_position(llm, 2), 9u);
    // One decode pass over the three sequences: each row matches its own reference.
    uint32_t seqs[3] = {0, 1, 2};
    int32_t next[3] = {4, 5, 6};
    std::vector<float> all(3 * tm.n_vocab);
    ASSERT_EQ(vki_llm_decode(llm, seqs, next, 3, all.data()), VKI_OK) << vki_llm_last_error(llm);
    std::vector<double> refs[3] = {tm.step(c0, 4, 2), tm.step(c1, 5, 4), tm.step(c2, 6, 9)};
    for (uint32_t i = 0; i < 3; i++) {
        std::vector<float> row(all.begin() + i * tm.n_vocab, all.begin() + (i + 1) * tm.n_vocab);
        EXPECT_LT(nmse(row, refs[i]), kTol) << "sequence " << i;
    }
}

TEST_P(LlmEmbdTest, CausalSpanLongerThanThePassRunsInPieces)
{
    vki_llm_desc d = {};
    d.kv_dtype = VKI_DTYPE_F32;
    d.n_batch = 4;
    d.n_ctx = 300;
    ASSERT_EQ(load(d), VKI_OK) << err;
    const vki_llm_info *info = vki_llm_info_get(llm);
    ASSERT_EQ(info->n_batch_embd, 256u); // at least one Gemma 3 image, at most the context
    auto rows = random_rows(270, 4);
    auto got = logits();
    int32_t first = 6;
    ASSERT_EQ(vki_llm_eval(llm, &first, 1, nullptr), VKI_OK);
    // Rows that would have to see each other do not fit one pass: refused, nothing evaluated.
    EXPECT_EQ(vki_llm_eval_embd(llm, 0, flat(rows).data(), 270, true, got.data()),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_llm_last_error(llm)).find("one pass"), std::string::npos)
        << vki_llm_last_error(llm);
    EXPECT_EQ(vki_llm_position(llm), 1u);
    ASSERT_EQ(vki_llm_eval_embd(llm, 0, flat(rows).data(), 270, false, got.data()), VKI_OK)
        << vki_llm_last_error(llm);
    TinyModel::Cache c;
    tm.step(c, first, 0);
    EXPECT_LT(nmse(got, tm.forward(c, rounded(rows), 1, false)), kTol);
    EXPECT_EQ(vki_llm_position(llm), 271u);
}

TEST_P(LlmEmbdTest, BadInputIsRefusedAndEvaluatesNothing)
{
    vki_llm_desc d = {};
    d.n_ctx = 12;
    d.n_batch = 4;
    d.n_seq = 2;
    ASSERT_EQ(load(d), VKI_OK) << err;
    EXPECT_EQ(vki_llm_info_get(llm)->n_batch_embd, 12u);
    auto rows = flat(random_rows(13, 5));
    auto expect_refused = [&](vki_status st, const char *says) {
        EXPECT_EQ(st, VKI_ERROR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(vki_llm_last_error(llm)).find(says), std::string::npos)
            << vki_llm_last_error(llm);
        EXPECT_EQ(vki_llm_seq_position(llm, 0), 0u);
        EXPECT_EQ(vki_llm_seq_position(llm, 1), 0u);
    };
    expect_refused(vki_llm_eval_embd(llm, 0, rows.data(), 0, true, nullptr), "no embeddings");
    expect_refused(vki_llm_eval_embd(llm, 2, rows.data(), 2, true, nullptr), "sequence 2");
    expect_refused(vki_llm_eval_embd(llm, 0, rows.data(), 13, false, nullptr), "context full");
    std::vector<float> nan = rows;
    nan[3 * tm.n_embd + 5] = NAN;
    expect_refused(vki_llm_eval_embd(llm, 0, nan.data(), 4, true, nullptr), "row 3");
    nan[3 * tm.n_embd + 5] = INFINITY;
    expect_refused(vki_llm_eval_embd(llm, 1, nan.data(), 4, false, nullptr), "not a finite");
    EXPECT_EQ(vki_llm_eval_embd(nullptr, 0, rows.data(), 1, false, nullptr), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_llm_eval_embd(llm, 0, nullptr, 1, false, nullptr), VKI_ERROR_INVALID_ARGUMENT);
    // A full sequence refuses more; the other still takes its rows.
    ASSERT_EQ(vki_llm_eval_embd(llm, 0, rows.data(), 12, true, nullptr), VKI_OK) << vki_llm_last_error(llm);
    EXPECT_EQ(vki_llm_eval_embd(llm, 0, rows.data(), 1, true, nullptr), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_llm_last_error(llm)).find("context full"), std::string::npos);
    EXPECT_EQ(vki_llm_eval_embd(llm, 1, rows.data(), 3, true, nullptr), VKI_OK);
    EXPECT_EQ(vki_llm_seq_position(llm, 0), 12u);
    EXPECT_EQ(vki_llm_seq_position(llm, 1), 3u);
}

INSTANTIATE_TEST_SUITE_P(Arch, LlmEmbdTest, ::testing::Values("llama", "gemma3"),
                         [](const auto &i) { return std::string(i.param); });

} // namespace
