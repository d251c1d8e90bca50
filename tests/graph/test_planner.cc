// The graph builder, shape rules and the planner, without a device: a made-up profile stands in
// for one, since compiling is pure CPU.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

extern "C" {
#include "vkinfer_graph.h"
}

static vki_profile fake_profile()
{
    vki_profile p;
    std::memset(&p, 0, sizeof p);
    std::snprintf(p.name, sizeof p.name, "planner test device");
    p.storage_align = 64;
    p.storage16 = p.fp16 = true;
    p.subgroup_size = p.subgroup_min = p.subgroup_max = 32;
    p.max_storage_range = 1u << 30;
    p.max_workgroup_invocations = 1024;
    for (int i = 0; i < 3; i++) {
        p.max_workgroup_size[i] = 1024;
        p.max_workgroup_count[i] = 65535;
    }
    p.shared_memory = 32768;
    p.push_constant_size = 128;
    std::snprintf(p.tuning.name, sizeof p.tuning.name, "generic");
    p.tuning.workgroup_size = 64;
    p.tuning.matvec_rows = 2;
    p.tuning.matmul_tile_m = p.tuning.matmul_tile_n = 32;
    p.tuning.matmul_tile_k = 8;
    return p;
}

class GraphTest : public ::testing::Test {
  protected:
    vki_graph *g = nullptr;
    vki_plan *plan = nullptr;
    vki_profile profile = fake_profile();
    void SetUp() override { ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK); }
    void TearDown() override
    {
        vki_plan_destroy(plan);
        vki_graph_destroy(g);
    }
    vki_tensor in(std::initializer_list<int64_t> ne, vki_dtype dt = VKI_DTYPE_F32, const char *name = "x")
    {
        std::vector<int64_t> v(ne);
        return vki_input(g, dt, (uint32_t)v.size(), v.data(), name);
    }
    vki_plan_stats compile(const vki_compile_desc *desc = nullptr)
    {
        vki_plan_stats s = {};
        EXPECT_EQ(vki_graph_compile(g, &profile, desc, &plan), VKI_OK) << vki_graph_error(g);
        vki_plan_stats_get(plan, &s);
        return s;
    }
    std::vector<bool> barriers()
    {
        std::vector<bool> v;
        for (uint32_t i = 0; i < vki_plan_step_count(plan); i++) {
            vki_plan_step st;
            EXPECT_TRUE(vki_plan_step_get(plan, i, &st));
            v.push_back(st.barrier_before);
        }
        return v;
    }
};

TEST_F(GraphTest, BadShapesRecordTheFirstErrorWithOpAndShapes)
{
    vki_tensor a = in({7, 3}), b = in({5, 3});
    vki_tensor y = vki_add(g, a, b);
    EXPECT_EQ(y.id, 0u);
    std::string err = vki_graph_error(g);
    EXPECT_NE(err.find("add"), std::string::npos) << err;
    EXPECT_NE(err.find("[5, 3] f32"), std::string::npos) << err;
    EXPECT_NE(err.find("[7, 3] f32"), std::string::npos) << err;
    // The invalid tensor flows through later builders without a new error.
    vki_tensor z = vki_mul(g, y, a);
    EXPECT_EQ(z.id, 0u);
    EXPECT_EQ(std::string(vki_graph_error(g)), err);
    vki_output(g, z, "z");
    EXPECT_EQ(vki_graph_compile(g, &profile, nullptr, &plan), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(plan, nullptr);
}

TEST_F(GraphTest, LeavesRejectImpossibleShapes)
{
    int64_t zero[2] = {0, 3}, odd_q[1] = {33};
    EXPECT_EQ(vki_input(g, VKI_DTYPE_F32, 2, zero, "z").id, 0u);
    EXPECT_NE(std::string(vki_graph_error(g)).find("dimension 0"), std::string::npos);
    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    EXPECT_EQ(vki_weight(g, VKI_DTYPE_Q4_0, 1, odd_q, "w").id, 0u);
    EXPECT_NE(std::string(vki_graph_error(g)).find("32-element blocks"), std::string::npos)
        << vki_graph_error(g);
}

TEST_F(GraphTest, ViewsPermuteAndReshapeWithoutCopies)
{
    vki_tensor x = in({4, 3, 2});
    vki_tensor t = vki_transpose(g, x);
    vki_tensor_info info;
    ASSERT_TRUE(vki_tensor_get_info(g, t, &info));
    EXPECT_EQ(info.ne[0], 3);
    EXPECT_EQ(info.ne[1], 4);
    EXPECT_EQ(info.nb[0], 16u);
    EXPECT_EQ(info.nb[1], 4u);
    EXPECT_FALSE(info.contiguous);
    int64_t flat[1] = {24};
    EXPECT_EQ(vki_reshape(g, t, 1, flat).id, 0u) << "a transposed view is not contiguous";
    EXPECT_NE(std::string(vki_graph_error(g)).find("not contiguous"), std::string::npos);

    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    x = in({4, 3, 2});
    vki_tensor r = vki_reshape(g, x, 1, flat);
    ASSERT_TRUE(vki_tensor_get_info(g, r, &info));
    EXPECT_TRUE(info.contiguous);
    EXPECT_EQ(info.ne[0], 24);
    int64_t ne[2] = {2, 2};
    uint64_t nb[2] = {4, 16};
    EXPECT_NE(vki_view(g, x, 2, ne, nb, 8).id, 0u);
    EXPECT_EQ(vki_view(g, x, 2, ne, nb, 96 - 4).id, 0u) << "runs past the end";
}

// A chain: each step reads what the previous wrote, so a barrier sits between every pair.
TEST_F(GraphTest, ChainNeedsABarrierBetweenEachPair)
{
    vki_tensor a = in({256}), b = in({256}, VKI_DTYPE_F32, "b");
    vki_tensor t = vki_add(g, a, b);
    t = vki_mul(g, t, b);
    t = vki_add(g, t, b);
    vki_output(g, t, "y");
    vki_plan_stats s = compile();
    EXPECT_EQ(s.dispatches, 3u);
    EXPECT_EQ(barriers(), (std::vector<bool>{false, true, true}));
    EXPECT_EQ(s.barriers, 2u);
}

// Independent nodes (reading the same inputs, writing different places) share one window.
TEST_F(GraphTest, IndependentNodesShareOneBarrierWindow)
{
    vki_tensor a = in({256}), b = in({256}, VKI_DTYPE_F32, "b");
    vki_tensor p = vki_add(g, a, b), q = vki_mul(g, a, b), r = vki_mul(g, b, b);
    vki_tensor s1 = vki_add(g, p, q);
    vki_tensor y = vki_add(g, s1, r);
    vki_output(g, y, "y");
    compile();
    EXPECT_EQ(barriers(), (std::vector<bool>{false, false, false, true, true}));
}

TEST_F(GraphTest, DebugSwitchPutsABarrierBeforeEveryDispatch)
{
    vki_tensor a = in({256}), b = in({256}, VKI_DTYPE_F32, "b");
    vki_output(g, vki_add(g, vki_add(g, a, b), vki_mul(g, a, b)), "y");
    vki_compile_desc d = {};
    d.full_barriers = true;
    vki_plan_stats s = compile(&d);
    EXPECT_EQ(barriers(), (std::vector<bool>{false, true, true}));
    EXPECT_EQ(s.barriers, 2u);
}

// Liveness: in a long chain only two intermediates are alive at once (in place even one).
TEST_F(GraphTest, LivenessReusesMemory)
{
    vki_tensor a = in({1000}), b = in({1000}, VKI_DTYPE_F32, "b");
    vki_tensor t = a;
    for (int i = 0; i < 10; i++) t = vki_add(g, t, b);
    vki_output(g, t, "y");
    vki_compile_desc d = {};
    d.no_inplace = true;
    vki_plan_stats s = compile(&d);
    const uint64_t one = 4096; // 4000 bytes rounded to the 256-byte arena alignment
    EXPECT_EQ(s.naive_bytes, 10 * one);
    EXPECT_EQ(s.activation_bytes, 2 * one) << "ping-pong between two buffers";
    vki_plan_destroy(plan);
    plan = nullptr;
    s = compile();
    EXPECT_EQ(s.activation_bytes, one) << "in place: one buffer";
}

// The result of an op never shares bytes with an input it reads, unless it is elementwise over
// that input's last use (in place).
TEST_F(GraphTest, InPlaceOnlyOverTheLastUse)
{
    vki_tensor a = in({100}), b = in({100}, VKI_DTYPE_F32, "b");
    vki_tensor t1 = vki_add(g, a, b);
    vki_tensor t2 = vki_mul(g, t1, b);   // last use of t1: may take its place
    vki_tensor t3 = vki_add(g, t2, b);
    vki_tensor t4 = vki_add(g, t3, t2);  // t2 read twice: t3 must not take t2's place
    vki_output(g, t4, "y");
    compile();
    EXPECT_EQ(vki_plan_offset(plan, t2), vki_plan_offset(plan, t1));
    EXPECT_NE(vki_plan_offset(plan, t3), vki_plan_offset(plan, t2));
    EXPECT_EQ(vki_plan_offset(plan, t4), UINT64_MAX) << "outputs have storage of their own";
}

TEST_F(GraphTest, DeadNodesAreRemoved)
{
    vki_tensor a = in({64}), b = in({64}, VKI_DTYPE_F32, "b");
    vki_tensor unused = vki_mul(g, a, b);
    vki_tensor y = vki_add(g, a, b);
    vki_output(g, y, "y");
    vki_plan_stats s = compile();
    EXPECT_EQ(s.dispatches, 1u);
    EXPECT_EQ(s.dead, 1u);
    EXPECT_EQ(vki_plan_offset(plan, unused), UINT64_MAX);
}

TEST_F(GraphTest, NoOutputIsAnError)
{
    vki_tensor a = in({64});
    vki_add(g, a, a);
    EXPECT_EQ(vki_graph_compile(g, &profile, nullptr, &plan), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_graph_error(g)).find("no output"), std::string::npos);
}

TEST(Dtype, HalfAndBlockCodecsRoundTrip)
{
    EXPECT_EQ(vki_dtype_get(VKI_DTYPE_Q4_K)->block_bytes, 144u);
    EXPECT_EQ(vki_dtype_get(VKI_DTYPE_Q6_K)->block_bytes, 210u);
    EXPECT_EQ(vki_dtype_bytes(VKI_DTYPE_Q8_0, 64), 68u);
    EXPECT_EQ(vki_dtype_bytes(VKI_DTYPE_Q8_0, 33), 0u);
    EXPECT_STREQ(vki_dtype_get((vki_dtype)99)->name, "none");
}

// Fusion folds norm + scale and matmul + bias + activation into single dispatches, and the
// caller's output handle stays the tensor to read.
TEST_F(GraphTest, FusionFoldsNormScaleAndMatmulBiasActivation)
{
    int64_t ne[2] = {64, 4}, wne[2] = {64, 32}, bne[1] = {32};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, ne, "x");
    vki_tensor nw = vki_weight(g, VKI_DTYPE_F32, 1, ne, "norm.w");
    vki_tensor h = vki_mul(g, vki_rms_norm(g, x, (vki_tensor){0}, 1e-6f), nw);
    vki_tensor W = vki_weight(g, VKI_DTYPE_Q4_0, 2, wne, "W");
    vki_tensor bias = vki_weight(g, VKI_DTYPE_F32, 1, bne, "bias");
    vki_tensor y = vki_silu(g, vki_add(g, vki_matmul(g, W, h), bias));
    vki_output(g, y, "y");

    vki_compile_desc unfused = {};
    unfused.no_fusion = true;
    vki_plan_stats s = compile(&unfused);
    EXPECT_EQ(s.dispatches, 5u);
    EXPECT_EQ(s.fused, 0u);
    vki_plan_destroy(plan);
    plan = nullptr;

    s = compile();
    EXPECT_EQ(s.fused, 3u);
    EXPECT_EQ(s.dispatches, 2u) << "rms_norm+mul, matmul+add+silu";
    EXPECT_EQ(s.dead, 0u) << "folded nodes are not counted as dead";
    vki_plan_step st;
    ASSERT_TRUE(vki_plan_step_get(plan, 1, &st));
    EXPECT_STREQ(st.node, "y") << "the fused dispatch computes the caller's output";
    EXPECT_TRUE(st.barrier_before);
}

TEST_F(GraphTest, FusionKeepsAProducerOthersStillRead)
{
    int64_t ne[2] = {64, 4};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, ne, "x");
    vki_tensor nw = vki_weight(g, VKI_DTYPE_F32, 1, ne, "norm.w");
    vki_tensor n = vki_rms_norm(g, x, (vki_tensor){0}, 1e-6f);
    vki_output(g, vki_add(g, vki_mul(g, n, nw), n), "y"); // n is read twice: no fold
    vki_plan_stats s = compile();
    EXPECT_EQ(s.fused, 0u);
    EXPECT_EQ(s.dispatches, 3u);
}
