// vki_rope_multi's builder checks (pure CPU): what it refuses, with a status and a message
// naming the cause. Its numbers are checked against the CPU reference by the conformance table
// (graph/cases/rope.c) and against transformers by test_llm_qwen2vl.cc.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "vkinfer_graph.h"
}

namespace {

class RopeMulti : public ::testing::Test {
  protected:
    vki_graph *g = nullptr;
    vki_tensor x{}, pos{};
    void SetUp() override
    {
        ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
        const int64_t xne[3] = {32, 2, 5}, pne[2] = {5, 4};
        x = vki_input(g, VKI_DTYPE_F32, 3, xne, "x");
        pos = vki_input(g, VKI_DTYPE_I32, 2, pne, "pos");
    }
    void TearDown() override { vki_graph_destroy(g); }
    // Builds one rope_multi and says whether the graph took it; the error text in `err`.
    bool build(vki_tensor p, uint32_t n_rot, vki_rope_mode mode, const uint32_t sec[4], std::string *err)
    {
        vki_tensor y = vki_rope_multi(g, x, p, n_rot, mode, sec, 10000.0f, 1.0f);
        *err = vki_graph_error(g);
        return y.id != 0 && vki_graph_status(g) == VKI_OK;
    }
};

TEST_F(RopeMulti, TakesSectionsThatCoverTheRotation)
{
    const uint32_t sec[4] = {4, 6, 6, 0};
    std::string err;
    EXPECT_TRUE(build(pos, 32, VKI_ROPE_MROPE, sec, &err)) << err;
}

TEST_F(RopeMulti, RefusesSectionsThatDoNotAddUpToHalfTheRotation)
{
    const uint32_t sec[4] = {4, 6, 5, 0};
    std::string err;
    EXPECT_FALSE(build(pos, 32, VKI_ROPE_MROPE, sec, &err));
    EXPECT_EQ(vki_graph_status(g), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(err.find("must add up to n_rot / 2 = 16"), std::string::npos) << err;
}

TEST_F(RopeMulti, RefusesPositionsOfOneStream)
{
    const int64_t ne[1] = {5};
    vki_tensor p1 = vki_input(g, VKI_DTYPE_I32, 1, ne, "pos1");
    const uint32_t sec[4] = {8, 8, 0, 0};
    std::string err;
    EXPECT_FALSE(build(p1, 32, VKI_ROPE_VISION, sec, &err));
    EXPECT_NE(err.find("[5, 4]"), std::string::npos) << err;
}

TEST_F(RopeMulti, ModesBelongToTheirBuilder)
{
    const uint32_t sec[4] = {8, 8, 0, 0};
    std::string err;
    EXPECT_FALSE(build(pos, 32, VKI_ROPE_NEOX, sec, &err)); // vki_rope's mode
    EXPECT_NE(err.find("vki_rope_multi MROPE and VISION"), std::string::npos) << err;
    vki_graph_destroy(g);
    SetUp();
    const int64_t ne[1] = {5};
    vki_tensor p1 = vki_input(g, VKI_DTYPE_I32, 1, ne, "pos1");
    EXPECT_EQ(vki_rope(g, x, p1, 32, VKI_ROPE_MROPE, 10000.0f, 1.0f).id, 0u); // no sections there
    EXPECT_EQ(vki_graph_status(g), VKI_ERROR_INVALID_ARGUMENT);
}

} // namespace
