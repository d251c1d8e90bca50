// The lowering's windows (graph/compile.c, lower_node): a node with a tensor past the profile's
// binding range (max_storage_range) is lowered slice by slice along its result's outermost
// dimension, so that models need not cut anything themselves (an SD U-Net's feed-forward at
// 1024x1024 has a 320 MiB projection output; lavapipe binds 128 MiB). Device-free: plans for a
// made-up profile; tests/ops/test_conformance.cc runs the cut cases on the device.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

extern "C" {
#include "graph_internal.h"
}

/* A GPU-like profile (subgroups of 32, shared memory) whose binding range is `limit` bytes. */
static vki_profile small_range_profile(uint64_t limit)
{
    vki_profile p;
    std::memset(&p, 0, sizeof p);
    std::snprintf(p.name, sizeof p.name, "windows test device");
    p.storage_align = 64;
    p.storage16 = p.fp16 = true;
    p.subgroup_size = p.subgroup_min = p.subgroup_max = 32;
    p.subgroup_ops = VKI_SUBGROUP_BASIC | VKI_SUBGROUP_ARITHMETIC;
    p.max_storage_range = limit;
    p.max_workgroup_invocations = 1024;
    for (int i = 0; i < 3; i++) {
        p.max_workgroup_size[i] = 1024;
        p.max_workgroup_count[i] = 65535;
    }
    p.shared_memory = 32768;
    p.push_constant_size = 128;
    std::snprintf(p.tuning.name, sizeof p.tuning.name, "generic");
    p.tuning.subgroup_size = 32;
    p.tuning.workgroup_size = 64;
    p.tuning.matvec_rows = 2;
    p.tuning.matmul_tile_m = p.tuning.matmul_tile_n = 32;
    p.tuning.matmul_tile_k = 8;
    p.tuning.matmul_shared = true;
    return p;
}

class Windows : public ::testing::Test {
  protected:
    vki_graph *g = nullptr;
    vki_plan *plan = nullptr;
    void SetUp() override { ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK); }
    void TearDown() override
    {
        vki_plan_destroy(plan);
        vki_graph_destroy(g);
    }
    /* The feed-forward of a transformer block over `tokens` columns: y = x + down(geglu(up(s))),
     * up [C -> 2 inner] with a bias, as SD's U-Net builds it. */
    void feed_forward(int64_t c, int64_t inner, int64_t tokens)
    {
        int64_t xs[2] = {c, tokens}, wu[2] = {c, 2 * inner}, bu[1] = {2 * inner}, wd[2] = {inner, c};
        vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, xs, "x");
        vki_tensor s = vki_input(g, VKI_DTYPE_F32, 2, xs, "s");
        vki_tensor up = vki_matmul(g, vki_weight(g, VKI_DTYPE_F16, 2, wu, "up.weight"), s);
        up = vki_add(g, up, vki_weight(g, VKI_DTYPE_F32, 1, bu, "up.bias"));
        const uint64_t nb[2] = {sizeof(float), 2 * (uint64_t)inner * sizeof(float)};
        const int64_t ne[2] = {inner, tokens};
        vki_tensor value = vki_view(g, up, 2, ne, nb, 0);
        vki_tensor gate = vki_view(g, up, 2, ne, nb, (uint64_t)inner * sizeof(float));
        vki_tensor h = vki_matmul(g, vki_weight(g, VKI_DTYPE_F16, 2, wd, "down.weight"), vki_geglu(g, gate, value));
        vki_output(g, vki_add(g, x, h), "y");
    }
    /* The largest binding any step of the plan takes, and whether one exceeds `limit`. */
    uint64_t widest_binding() const
    {
        uint64_t widest = 0;
        for (uint32_t s = 0; s < plan->step_count; s++)
            for (uint32_t b = 0; b < plan->steps[s].binding_count; b++)
                widest = std::max(widest, plan->steps[s].bindings[b].size);
        return widest;
    }
};

// C 32, inner 128, 300 tokens; a 16 KiB range less 512 bytes of slack (two alignment units of
// at least 256 bytes) leaves 15872. The projection output [256, 300] f32 (1 KiB a token) takes
// windows of (15872 - 1024) / 1024 + 1 = 15 tokens: 20 windows. The geglu reads two views of it
// (512 bytes a token, 1 KiB apart: (15872 - 512) / 1024 + 1 = 16 tokens) and writes [128, 300]
// (31 tokens): 19 windows. The down product reads that and x (128 bytes a token) and writes y:
// 31 tokens, 10 windows. x and s alone (37.5 KiB) are cut with the products that read them.
// Three nodes, 49 windows, each binding within the range; unnarrowed, none. The projection's
// weight [32, 256] f16 (16 KiB) is over the range too: within each token window the matmul
// binds it as two slices of rows ((15872 - 64) / 64 + 1 = 248 rows), as it does any large
// weight: 40 + 19 + 10 = 69 dispatches where the unnarrowed plan has 3.
TEST_F(Windows, FeedForwardOverTheRangeIsCutByTokens)
{
    feed_forward(32, 128, 300);
    vki_profile p = small_range_profile(16384);
    ASSERT_EQ(vki_graph_compile(g, &p, nullptr, &plan), VKI_OK) << vki_graph_error(g);
    vki_plan_stats st;
    vki_plan_stats_get(plan, &st);
    EXPECT_EQ(st.windowed, 3u);
    EXPECT_EQ(st.windows, 20u + 19u + 10u);
    EXPECT_LE(widest_binding(), p.max_storage_range);
    EXPECT_EQ(plan->step_count, 69u);
    vki_plan_destroy(plan);
    plan = nullptr;

    vki_profile wide = small_range_profile(1u << 30);
    ASSERT_EQ(vki_graph_compile(g, &wide, nullptr, &plan), VKI_OK) << vki_graph_error(g);
    vki_plan_stats_get(plan, &st);
    EXPECT_EQ(st.windowed, 0u);
    EXPECT_EQ(st.windows, 0u);
    EXPECT_GT(widest_binding(), p.max_storage_range);
    EXPECT_EQ(plan->step_count, 3u);
}

// A slice no binding can hold (one token of the projection is 1 KiB, the range 1 KiB less the
// slack holds none) fails to compile, naming the node, the slice and the limit.
TEST_F(Windows, ASliceOverTheRangeIsNamed)
{
    feed_forward(32, 128, 300);
    vki_profile p = small_range_profile(1024);
    EXPECT_EQ(vki_graph_compile(g, &p, nullptr, &plan), VKI_ERROR_UNSUPPORTED);
    std::string why = vki_graph_error(g);
    EXPECT_NE(why.find("binding limit of 1024 bytes"), std::string::npos) << why;
    EXPECT_NE(why.find("one slice"), std::string::npos) << why;
    EXPECT_EQ(plan, nullptr);
}

// An op without a cut (softmax: a causal row's columns depend on its index) is lowered whole,
// its binding left to the device's check when recorded; the cut ops around it still are cut.
TEST_F(Windows, OpsWithoutACutAreLoweredWhole)
{
    int64_t ne[2] = {64, 100};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, ne, "x");
    vki_tensor y = vki_softmax(g, vki_scale(g, x, 0.5f), (vki_tensor){0}, 1.0f, true);
    vki_output(g, y, "y");
    vki_profile p = small_range_profile(8192);
    ASSERT_EQ(vki_graph_compile(g, &p, nullptr, &plan), VKI_OK) << vki_graph_error(g);
    vki_plan_stats st;
    vki_plan_stats_get(plan, &st);
    EXPECT_EQ(st.windowed, 1u); // the scale: 25600 bytes, (7680 - 256) / 256 + 1 = 30 columns
    EXPECT_EQ(st.windows, 4u);
    EXPECT_GT(widest_binding(), p.max_storage_range); // the softmax's
}
