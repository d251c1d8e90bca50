// The shared model layer: the weights module (tensors of rank up to 4 by name from a weight
// source, checked against what the architecture asks for, uploaded once) and the program
// object (a graph compiled once, inputs and outputs by name, replayed), on the device.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "runtime/test_support.h"

extern "C" {
#include "model_internal.h"
}

namespace {

// A GGUF v3 file of F32 tensors (name, shape, values), no metadata.
std::vector<uint8_t> Gguf(const std::vector<std::pair<std::string, std::vector<uint64_t>>> &tensors,
                          std::vector<std::vector<float>> *values)
{
    std::vector<uint8_t> b;
    auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; i++) b.push_back(uint8_t(v >> (8 * i))); };
    auto u64 = [&](uint64_t v) { for (int i = 0; i < 8; i++) b.push_back(uint8_t(v >> (8 * i))); };
    u32(0x46554747);
    u32(3);
    u64(tensors.size());
    u64(0);
    uint64_t off = 0;
    std::vector<uint64_t> offs;
    for (auto &t : tensors) {
        u64(t.first.size());
        b.insert(b.end(), t.first.begin(), t.first.end());
        u32(uint32_t(t.second.size()));
        uint64_t n = 1;
        for (uint64_t d : t.second) u64(d), n *= d;
        u32(0); // F32
        u64(off);
        offs.push_back(off);
        off = (off + 4 * n + 31) / 32 * 32;
        std::vector<float> v(n);
        for (uint64_t i = 0; i < n; i++) v[i] = float(values->size() * 100 + i) * 0.5f;
        values->push_back(v);
    }
    while (b.size() % 32) b.push_back(0);
    size_t data = b.size();
    b.resize(data + off, 0);
    for (size_t i = 0; i < tensors.size(); i++)
        memcpy(b.data() + data + offs[i], (*values)[i].data(), (*values)[i].size() * 4);
    return b;
}

class WeightsTest : public VulkanTest {
  protected:
    std::vector<uint8_t> file;
    std::vector<std::vector<float>> values;
    vki_gguf *gguf = nullptr;
    vki_weights *w = nullptr;
    vki_program *p = nullptr;

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
        file = Gguf({{"experts.weight", {4, 3, 2}}, {"norm.weight", {4}}, {"big.weight", {2, 2, 2, 3}}},
                    &values);
        char err[256];
        ASSERT_EQ(vki_gguf_open_memory(file.data(), file.size(), nullptr, &gguf, err, sizeof err), VKI_OK)
            << err;
        vki_weights_desc wd = {};
        wd.source = vki_weight_source_gguf(gguf);
        wd.device = dev;
        wd.profile = vki_device_profile(dev);
        wd.model_name = "the test model";
        ASSERT_EQ(vki_weights_create(&wd, &w), VKI_OK);
        vki_program_desc pd = {};
        pd.device = dev;
        pd.profile = vki_device_profile(dev);
        pd.name = "test program";
        ASSERT_EQ(vki_program_create(&pd, &p), VKI_OK);
    }
    void TearDown() override
    {
        vki_program_destroy(p);
        vki_weights_destroy(w);
        vki_gguf_close(gguf);
        VulkanTest::TearDown();
    }
    std::string error() const { return vki_weights_error(w); }
};

// A tensor of the file that no program reads is named (llm.c refuses such a file).
TEST_F(WeightsTest, TensorsNoProgramReadsAreNamed)
{
    vki_graph *g = vki_program_graph(p);
    const int64_t e[3] = {4, 3, 2}, big[4] = {2, 2, 2, -1};
    vki_tensor x = vki_weights_tensor(w, p, "experts.weight", 3, e, false, false);
    vki_tensor b4 = vki_weights_tensor(w, p, "big.weight", 4, big, false, false);
    ASSERT_TRUE(x.id && b4.id) << error();
    vki_tensor s = vki_program_input(p, VKI_DTYPE_F32, 3, e, "scale");
    vki_program_output(p, vki_mul(g, x, s), "scaled");
    vki_program_output(p, vki_scale(g, b4, 2.0f), "doubled");
    ASSERT_EQ(vki_weights_check_all_used(w), VKI_ERROR_UNSUPPORTED); // norm.weight is not read
    EXPECT_NE(error().find("tensor norm.weight (2 of 3 in the file) is not part of the test model"),
              std::string::npos) << error();
}

// Rank-3 and rank-4 weights (experts, convolution kernels) go through as stored; a program
// reads them, its input and output by name, and runs twice with new input.
TEST_F(WeightsTest, ProgramUploadsRunsAndDownloadsByName)
{
    vki_graph *g = vki_program_graph(p);
    const int64_t e[3] = {4, 3, 2}, big[4] = {2, 2, 2, 3}, n[1] = {4};
    vki_tensor x = vki_weights_tensor(w, p, "experts.weight", 3, e, false, false);
    vki_tensor b4 = vki_weights_tensor(w, p, "big.weight", 4, big, false, false);
    vki_tensor nw = vki_weights_tensor(w, p, "norm.weight", 1, n, false, false);
    ASSERT_TRUE(x.id && b4.id && nw.id) << error();
    vki_tensor s = vki_program_input(p, VKI_DTYPE_F32, 3, e, "scale");
    vki_program_output(p, vki_mul(g, vki_mul(g, x, s), nw), "scaled");
    vki_program_output(p, vki_scale(g, b4, 2.0f), "doubled");
    ASSERT_EQ(vki_weights_check_all_used(w), VKI_OK) << error();
    ASSERT_EQ(vki_weights_upload(w), VKI_OK) << error();
    EXPECT_EQ(vki_weights_bytes(w), (24u + 4u + 24u) * 4u);
    ASSERT_EQ(vki_program_compile(p, w), VKI_OK) << vki_program_error(p);
    vki_tensor in = vki_program_tensor(p, "scale"), out = vki_program_tensor(p, "scaled");
    ASSERT_TRUE(in.id && out.id);
    EXPECT_EQ(vki_program_tensor(p, "nothing").id, 0u);
    for (float k : {3.0f, -0.25f}) {
        std::vector<float> scale(24, k), got(24), got4(24);
        ASSERT_EQ(vki_program_upload(p, in, scale.data(), 96), VKI_OK);
        ASSERT_EQ(vki_program_run(p), VKI_OK);
        ASSERT_EQ(vki_program_download(p, out, got.data(), 96), VKI_OK);
        ASSERT_EQ(vki_program_download(p, vki_program_tensor(p, "doubled"), got4.data(), 96), VKI_OK);
        for (int i = 0; i < 24; i++) {
            EXPECT_EQ(got[i], values[0][i] * k * values[1][i % 4]) << i;
            EXPECT_EQ(got4[i], values[2][i] * 2.0f) << i;
        }
    }
}

TEST_F(WeightsTest, ShapesRanksAndAbsenceAreNamed)
{
    const int64_t wrong[3] = {4, 3, 5};
    EXPECT_EQ(vki_weights_tensor(w, p, "experts.weight", 3, wrong, false, false).id, 0u);
    EXPECT_EQ(vki_weights_status(w), VKI_ERROR_BAD_FILE);
    EXPECT_NE(error().find("tensor experts.weight is [4, 3, 2, 1], the test model wants [4, 3, 5]"),
              std::string::npos) << error();
    // The first failure stands; later calls do nothing.
    const int64_t n[1] = {4};
    EXPECT_EQ(vki_weights_tensor(w, p, "norm.weight", 1, n, false, false).id, 0u);
    EXPECT_NE(error().find("experts.weight"), std::string::npos);
    // The program reports it when it compiles.
    EXPECT_EQ(vki_program_compile(p, w), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(vki_program_error(p)).find("experts.weight"), std::string::npos);
}

TEST_F(WeightsTest, ExtraDimensionsAndMissingTensors)
{
    // A 3-D tensor asked for as 2-D: its third dim is not 1.
    const int64_t two[2] = {4, 3};
    EXPECT_EQ(vki_weights_tensor(w, p, "experts.weight", 2, two, false, false).id, 0u);
    EXPECT_NE(error().find("the test model wants [4, 3]"), std::string::npos) << error();
    vki_weights_destroy(w);
    w = nullptr;
    vki_weights_desc wd = {};
    wd.source = vki_weight_source_gguf(gguf);
    wd.profile = vki_device_profile(dev);
    wd.model_name = "the test model";
    ASSERT_EQ(vki_weights_create(&wd, &w), VKI_OK);
    EXPECT_EQ(vki_weights_tensor(w, p, "absent.weight", 2, two, true, false).id, 0u); // optional
    EXPECT_EQ(vki_weights_status(w), VKI_OK);
    EXPECT_FALSE(vki_weights_has(w, "absent.weight"));
    EXPECT_TRUE(vki_weights_has(w, "norm.weight"));
    EXPECT_EQ(vki_weights_tensor(w, p, "absent.weight", 2, two, false, false).id, 0u);
    EXPECT_NE(error().find("tensor absent.weight is missing from the file (the test model)"),
              std::string::npos) << error();
}

} // namespace
