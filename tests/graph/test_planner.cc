// The graph builder, shape rules and the planner, without a device: a made-up profile stands in
// for one, since compiling is pure CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

extern "C" {
#include "graph_internal.h" // the plan's steps and bindings
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

/* What a CPU device's profile (lavapipe) adds: subgroups of 8 with arithmetic, texel loads. */
static void make_cpu(vki_profile &p)
{
    p.subgroup_size = p.subgroup_min = p.subgroup_max = 8;
    p.subgroup_ops = VKI_SUBGROUP_BASIC | VKI_SUBGROUP_ARITHMETIC;
    p.tuning.subgroup_size = 8;
    p.tuning.texel_loads = true;
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
    /* A fresh graph of one product w [k, m] (type wt) x [k, n], compiled: its one step's kernel
     * (into *kernel) and the plan's stats. */
    vki_plan_stats compile_one_matmul(vki_dtype wt, int64_t k, int64_t m, int64_t n, std::string *kernel)
    {
        vki_graph_destroy(g);
        vki_plan_destroy(plan);
        plan = nullptr;
        EXPECT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
        int64_t ne[2] = {k, m};
        vki_output(g, vki_matmul(g, vki_weight(g, wt, 2, ne, "w"), in({k, n})), "y");
        vki_plan_stats s = compile();
        vki_plan_step st = {};
        EXPECT_EQ(vki_plan_step_count(plan), 1u);
        bool got = vki_plan_step_get(plan, 0, &st);
        EXPECT_TRUE(got);
        *kernel = got && st.kernel ? st.kernel : "";
        return s;
    }
    /* The feed-forward of a transformer block over `tokens` columns: y = x + down(geglu(up(s))),
     * up [C -> 2 inner] with a bias, as SD's U-Net builds it. */
    void windows_feed_forward(int64_t c, int64_t inner, int64_t tokens)
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

// The residual stream: x + W h (matmul second, as a transformer writes it) and (W h + b) + x
// are one matmul each; a residual of another shape (broadcast) is not folded.
TEST_F(GraphTest, FusionAddsTheResidualInTheMatmul)
{
    int64_t ne[2] = {64, 3}, wne[2] = {64, 64}, bne[1] = {64};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, ne, "x");
    vki_tensor W1 = vki_weight(g, VKI_DTYPE_Q4_0, 2, wne, "W1");
    vki_tensor W2 = vki_weight(g, VKI_DTYPE_F16, 2, wne, "W2");
    vki_tensor bias = vki_weight(g, VKI_DTYPE_F32, 1, bne, "bias");
    vki_tensor x1 = vki_add(g, x, vki_matmul(g, W1, x));
    vki_tensor x2 = vki_add(g, vki_add(g, vki_matmul(g, W2, x1), bias), x1);
    vki_tensor x3 = vki_add(g, vki_matmul(g, W1, x2), vki_input(g, VKI_DTYPE_F32, 1, bne, "row"));
    vki_output(g, x3, "y");
    vki_plan_stats s = compile();
    EXPECT_EQ(s.fused, 4u) << "residual, bias + residual, bias-shaped add";
    EXPECT_EQ(s.dispatches, 3u);
    for (uint32_t i = 0; i < 3; i++) {
        vki_plan_step st;
        ASSERT_TRUE(vki_plan_step_get(plan, i, &st));
        EXPECT_EQ(std::string(st.kernel).rfind("matvec_", 0), 0u) << st.kernel;
    }
}

// ---- KV cache: set_rows writes into a weight the caller keeps; attention reads it by position.

// One layer's decode step: both cache writes share a barrier window, attention waits for them,
// and the caches (weights) take no arena space and are not copied.
TEST_F(GraphTest, SetRowsIntoWeightsOrdersReadersAndTakesNoArena)
{
    int64_t row[2] = {128, 16}, one[2] = {128, 1}, n1[1] = {1}, qne[3] = {64, 6, 1}, kv3[3] = {64, 2, 16};
    vki_tensor kc = vki_weight(g, VKI_DTYPE_F16, 2, row, "cache_k");
    vki_tensor vc = vki_weight(g, VKI_DTYPE_F16, 2, row, "cache_v");
    vki_tensor kn = vki_input(g, VKI_DTYPE_F32, 2, one, "k");
    vki_tensor vn = vki_input(g, VKI_DTYPE_F32, 2, one, "v");
    vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 1, n1, "pos");
    vki_tensor q = vki_input(g, VKI_DTYPE_F32, 3, qne, "q");
    vki_tensor kw = vki_set_rows(g, kc, kn, pos), vw = vki_set_rows(g, vc, vn, pos);
    vki_tensor_info info;
    ASSERT_TRUE(vki_tensor_get_info(g, kw, &info));
    EXPECT_EQ(info.ne[0], 128);
    EXPECT_EQ(info.ne[1], 16);
    EXPECT_EQ(info.dtype, VKI_DTYPE_F16) << "the result is the cache, not a copy of it";
    vki_tensor k = vki_reshape(g, kw, 3, kv3), v = vki_reshape(g, vw, 3, kv3);
    vki_output(g, vki_attention_pos(g, q, k, v, pos, 0.125f, 0), "y");
    vki_plan_stats s = compile();
    EXPECT_EQ(s.dispatches, 3u);
    EXPECT_EQ(barriers(), (std::vector<bool>{false, false, true}));
    EXPECT_EQ(s.activation_bytes, 0u) << "the caches are the weights' storage";
    EXPECT_EQ(vki_plan_offset(plan, kw), UINT64_MAX);
    EXPECT_EQ(s.dead, 0u);
}

// A write into caller storage is a side effect: kept though nothing reads the result, and a
// graph that only writes a cache compiles.
TEST_F(GraphTest, SetRowsIsNeverDead)
{
    int64_t row[2] = {8, 4}, n2[1] = {2};
    vki_tensor cache = vki_weight(g, VKI_DTYPE_F32, 2, row, "cache");
    vki_set_rows(g, cache, in({8, 2}), vki_input(g, VKI_DTYPE_I32, 1, n2, "idx"));
    vki_plan_stats s = compile();
    EXPECT_EQ(s.dispatches, 1u);
    EXPECT_EQ(s.dead, 0u);
    vki_plan_destroy(plan);
    plan = nullptr;

    vki_tensor a = in({8, 2}, VKI_DTYPE_F32, "a");
    vki_output(g, vki_add(g, a, a), "y");
    s = compile();
    EXPECT_EQ(s.dispatches, 2u) << "the write stays beside the output's work";
}

// Barriers from real hazards through the alias: the write waits for an earlier reader of the
// cache (write after read), an unrelated op shares the write's window, and a read of the
// result waits for the write.
TEST_F(GraphTest, SetRowsBarriersFollowTheCacheStorage)
{
    int64_t row[2] = {8, 4}, n2[1] = {2};
    vki_tensor cache = vki_weight(g, VKI_DTYPE_F32, 2, row, "cache");
    vki_tensor ids = vki_input(g, VKI_DTYPE_I32, 1, n2, "ids");
    vki_output(g, vki_get_rows(g, cache, ids), "before");               // reads the cache
    vki_tensor w = vki_set_rows(g, cache, in({8, 2}), ids);               // writes it
    vki_tensor a = in({64}, VKI_DTYPE_F32, "a");
    vki_output(g, vki_add(g, a, a), "unrelated");
    int64_t col[2] = {8, 1};
    uint64_t nb[2] = {4, 32};
    vki_output(g, vki_copy(g, vki_view(g, w, 2, col, nb, 2 * 32), VKI_DTYPE_F32), "row 2 after");
    compile();
    EXPECT_EQ(barriers(), (std::vector<bool>{false, true, false, true}));
}

// Into an intermediate: the result lives in the intermediate's arena slot (no second one), and
// as an output it makes that intermediate an output of its own storage.
TEST_F(GraphTest, SetRowsIntoAnIntermediateSharesItsStorage)
{
    int64_t n2[1] = {2};
    vki_tensor t = vki_copy(g, in({256, 4}), VKI_DTYPE_F32);
    vki_tensor idx = vki_input(g, VKI_DTYPE_I32, 1, n2, "idx");
    vki_tensor r = vki_set_rows(g, t, in({256, 2}, VKI_DTYPE_F32, "src"), idx);
    vki_output(g, vki_add(g, r, in({256, 4}, VKI_DTYPE_F32, "b")), "y");
    vki_plan_stats s = compile();
    EXPECT_EQ(s.activation_bytes, 4096u) << "t only: r is t";
    EXPECT_NE(vki_plan_offset(plan, t), UINT64_MAX);
    EXPECT_EQ(barriers(), (std::vector<bool>{false, true, true}));
    vki_plan_destroy(plan);
    plan = nullptr;

    vki_output(g, r, "written");
    s = compile();
    EXPECT_EQ(s.activation_bytes, 0u);
    EXPECT_EQ(vki_plan_offset(plan, t), UINT64_MAX) << "t is the output's storage now";
}

TEST_F(GraphTest, SetRowsAndAttentionPosRejectBadShapes)
{
    int64_t row[2] = {8, 10}, part[2] = {8, 6}, n2[1] = {2}, n3[1] = {3};
    vki_tensor cache = vki_weight(g, VKI_DTYPE_F16, 2, row, "cache");
    vki_tensor idx = vki_input(g, VKI_DTYPE_I32, 1, n2, "idx");
    EXPECT_EQ(vki_set_rows(g, cache, in({7, 2}), idx).id, 0u) << "rows of 7 into rows of 8";
    EXPECT_NE(std::string(vki_graph_error(g)).find("set_rows"), std::string::npos);

    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    cache = vki_weight(g, VKI_DTYPE_F16, 2, row, "cache");
    EXPECT_EQ(vki_set_rows(g, cache, in({8, 2}), vki_input(g, VKI_DTYPE_I32, 1, n3, "idx")).id, 0u)
        << "3 ids for 2 rows";

    // An output is downloaded from the storage the result wrote into: all of it, not a slice.
    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    cache = vki_weight(g, VKI_DTYPE_F16, 2, row, "cache");
    uint64_t nb[2] = {2, 16};
    vki_tensor slice = vki_view(g, cache, 2, part, nb, 2 * 16);
    vki_tensor w = vki_set_rows(g, slice, in({8, 2}), vki_input(g, VKI_DTYPE_I32, 1, n2, "idx"));
    ASSERT_NE(w.id, 0u);
    vki_output(g, w, "w");
    EXPECT_NE(std::string(vki_graph_error(g)).find("writes into part of cache"), std::string::npos)
        << vki_graph_error(g);

    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    vki_tensor q = in({16, 4, 3}), k = in({16, 2, 9}, VKI_DTYPE_F32, "k");
    vki_tensor v = in({16, 2, 9}, VKI_DTYPE_F32, "v");
    EXPECT_EQ(vki_attention_pos(g, q, k, v, vki_input(g, VKI_DTYPE_I32, 1, n2, "pos"), 1.0f, 0).id, 0u)
        << "2 positions for 3 queries";
    EXPECT_NE(std::string(vki_graph_error(g)).find("pos"), std::string::npos) << vki_graph_error(g);
}

// A Q8_0 KV cache: set_rows quantises into it and attention reads it as k and v, but the
// kernels address a block's f16 scale and quant pairs as half-words, so a block at an odd byte
// is refused by name; q stays f32/f16, and k and v are Q8_0 together or not at all.
TEST_F(GraphTest, Q8CacheWritesAndReadsNeedWholeBlocksAtEvenBytes)
{
    int64_t row[2] = {64, 10}, heads[3] = {32, 2, 10}, n1[1] = {1}, n2[1] = {2}, n3[1] = {3};
    vki_tensor cache = vki_weight(g, VKI_DTYPE_Q8_0, 2, row, "cache");
    vki_tensor w = vki_set_rows(g, cache, in({64, 2}), vki_input(g, VKI_DTYPE_I32, 1, n2, "idx"));
    ASSERT_NE(w.id, 0u) << vki_graph_error(g);
    vki_tensor k = vki_reshape(g, w, 3, heads);
    vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 1, n3, "pos");
    EXPECT_NE(vki_attention_pos(g, in({32, 4, 3}), k, k, pos, 1.0f, 0).id, 0u) << vki_graph_error(g);

    // Rows of one block viewed from byte 1 of a cache of 9.
    int64_t nine[2] = {32, 9}, eight[2] = {32, 8}, eight3[3] = {32, 1, 8};
    uint64_t nb[3] = {34, 34, 34};
    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    vki_tensor bytes = vki_weight(g, VKI_DTYPE_Q8_0, 2, nine, "bytes");
    vki_tensor odd = vki_view(g, bytes, 2, eight, nb, 1);
    ASSERT_NE(odd.id, 0u) << vki_graph_error(g);
    EXPECT_EQ(vki_set_rows(g, odd, in({32, 2}), vki_input(g, VKI_DTYPE_I32, 1, n2, "idx")).id, 0u);
    EXPECT_NE(std::string(vki_graph_error(g)).find("set_rows: q8_0 dst"), std::string::npos)
        << vki_graph_error(g);

    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    bytes = vki_weight(g, VKI_DTYPE_Q8_0, 2, nine, "bytes");
    odd = vki_view(g, bytes, 3, eight3, nb, 1);
    ASSERT_NE(odd.id, 0u) << vki_graph_error(g);
    pos = vki_input(g, VKI_DTYPE_I32, 1, n1, "pos");
    EXPECT_EQ(vki_attention_pos(g, in({32, 2, 1}), odd, odd, pos, 1.0f, 0).id, 0u);
    EXPECT_NE(std::string(vki_graph_error(g)).find("q8_0 k and v go together"), std::string::npos)
        << vki_graph_error(g);

    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    vki_tensor kv = in({32, 1, 8}, VKI_DTYPE_Q8_0, "kv");
    pos = vki_input(g, VKI_DTYPE_I32, 1, n1, "pos");
    EXPECT_EQ(vki_attention_pos(g, in({32, 2, 1}, VKI_DTYPE_Q8_0, "q"), kv, kv, pos, 1.0f, 0).id, 0u);
    EXPECT_NE(std::string(vki_graph_error(g)).find("k and v may also both be q8_0"), std::string::npos)
        << vki_graph_error(g);

    vki_graph_destroy(g);
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    kv = in({32, 1, 8}, VKI_DTYPE_Q8_0, "k");
    pos = vki_input(g, VKI_DTYPE_I32, 1, n1, "pos");
    EXPECT_EQ(vki_attention_pos(g, in({32, 2, 1}), kv, in({32, 1, 8}, VKI_DTYPE_F16, "v"), pos, 1.0f, 0).id, 0u);
    EXPECT_NE(std::string(vki_graph_error(g)).find("q8_0 k and v go together"), std::string::npos)
        << vki_graph_error(g);
}

// A decode step's attention on a tiled tuning: few rows, a long cache. The kv positions are split
// over workgroups and merged in a second step that reads the first one's partials from the plan's
// scratch: two dispatches with a barrier between them, the scratch above the arena's tensors and
// counted in the peak. Barrier-free tunings keep one dispatch.
TEST_F(GraphTest, DecodeAttentionSplitsKvThroughScratch)
{
    profile.tuning.attention_tiled = true;
    profile.tuning.workgroup_size = 256;
    vki_tensor q = in({64, 6, 1}, VKI_DTYPE_F32, "q");
    vki_tensor k = in({64, 2, 1024}, VKI_DTYPE_F16, "k"), v = in({64, 2, 1024}, VKI_DTYPE_F16, "v");
    vki_tensor y = vki_attention(g, q, k, v, vki_tensor{0}, 0.125f, true);
    vki_output(g, vki_add(g, y, in({64, 6, 1}, VKI_DTYPE_F32, "r")), "y");
    vki_plan_stats s = compile();
    ASSERT_EQ(vki_plan_step_count(plan), 3u);
    vki_plan_step st[3];
    for (uint32_t i = 0; i < 3; i++) ASSERT_TRUE(vki_plan_step_get(plan, i, &st[i]));
    EXPECT_STREQ(st[0].kernel, st[1].kernel);
    EXPECT_TRUE(st[1].barrier_before) << "the merge reads the partials the first step wrote";
    EXPECT_TRUE(st[2].barrier_before);
    uint64_t y_end = vki_plan_offset(plan, y) + 64 * 6 * 4;
    EXPECT_GE(s.activation_bytes, y_end + 2 * 6 * 66 * 4) << "at least two slices' partials above y";

    vki_plan_destroy(plan);
    plan = nullptr;
    profile.tuning.attention_tiled = false;
    compile();
    EXPECT_EQ(vki_plan_step_count(plan), 2u);
}

// On a CPU device's tuning (texel loads, subgroup arithmetic) a decode mat-vec reads its input
// rms_norm in registers: the norm's dispatch goes. Elsewhere, and for a prompt batch, it stays.
TEST_F(GraphTest, FusionFoldsTheNormIntoTheCpuMatvec)
{
    auto dispatches = [&](bool cpu, int64_t n, const char *first) {
        SCOPED_TRACE(first);
        vki_graph_destroy(g);
        vki_plan_destroy(plan);
        plan = nullptr;
        ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
        profile = fake_profile();
        if (cpu) make_cpu(profile);
        int64_t wne[2] = {576, 960}, one[1] = {576};
        vki_tensor x = in({576, n});
        vki_tensor h = vki_rms_norm(g, x, vki_weight(g, VKI_DTYPE_F32, 1, one, "norm"), 1e-5f);
        vki_tensor y = vki_matmul(g, vki_weight(g, VKI_DTYPE_Q4_1, 2, wne, "w"), h);
        vki_output(g, y, "y");
        compile();
        vki_plan_step st;
        ASSERT_TRUE(vki_plan_step_get(plan, 0, &st));
        EXPECT_STREQ(st.kernel, first);
    };
    dispatches(true, 1, "matvec_q4_1_wide");
    EXPECT_EQ(vki_plan_step_count(plan), 1u);
    dispatches(true, 8, "matvec_q4_1_wide");
    EXPECT_EQ(vki_plan_step_count(plan), 1u);
    dispatches(true, 9, "norm_f32_sg_tx"); // a prompt batch: the tiled kernels read x as it is
    EXPECT_EQ(vki_plan_step_count(plan), 2u);
    dispatches(false, 1, "norm_f32");
    EXPECT_EQ(vki_plan_step_count(plan), 2u);

    // swiglu of the two halves of a joined gate and up product: one mat-vec.
    vki_graph_destroy(g);
    vki_plan_destroy(plan);
    plan = nullptr;
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    make_cpu(profile);
    int64_t wne[2] = {576, 3072}, half[2] = {1536, 1};
    vki_tensor y = vki_matmul(g, vki_weight(g, VKI_DTYPE_Q4_1, 2, wne, "w"), in({576, 1}));
    const uint64_t nb[2] = {4, 4 * 3072};
    vki_output(g, vki_swiglu(g, vki_view(g, y, 2, half, nb, 0), vki_view(g, y, 2, half, nb, 4 * 1536)), "h");
    vki_plan_stats s = compile();
    EXPECT_EQ(s.dispatches, 1u);
    EXPECT_EQ(s.fused, 1u);
}

// A llama decode layer's attention half (SmolLM2's shapes): on a CPU device the qkv mat-vec
// takes the norm and the rope, and the attention the two cache writes, so that the five
// dispatches become two; elsewhere, or when the pattern does not hold, they stay.
TEST_F(GraphTest, DecodeLayerFoldsRopeAndCacheWritesOnCpuDevices)
{
    auto layer = [&](bool cpu, vki_rope_mode mode, bool cache_output) {
        vki_graph_destroy(g);
        vki_plan_destroy(plan);
        plan = nullptr;
        profile = fake_profile();
        if (cpu) make_cpu(profile);
        EXPECT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
        const int64_t one[1] = {576}, wne[2] = {576, 960}, cne[2] = {192, 64}, hne[3] = {64, 3, 64};
        vki_tensor x = in({576, 1}), pos = in({1}, VKI_DTYPE_I32, "pos");
        vki_tensor h = vki_rms_norm(g, x, vki_weight(g, VKI_DTYPE_F32, 1, one, "norm"), 1e-5f);
        vki_tensor y = vki_matmul(g, vki_weight(g, VKI_DTYPE_Q4_1, 2, wne, "wqkv"), h);
        const int64_t heads[3] = {64, 12, 1}, qne[3] = {64, 9, 1}, kvne[2] = {192, 1};
        vki_tensor r = vki_rope(g, vki_view(g, y, 3, heads, (const uint64_t[3]){4, 256, 3840}, 0), pos,
                                64, mode, 10000.0f, 1.0f);
        vki_tensor q = vki_view(g, r, 3, qne, (const uint64_t[3]){4, 256, 3072}, 0);
        vki_tensor kn = vki_view(g, r, 2, kvne, (const uint64_t[2]){4, 3072}, 4 * 576);
        vki_tensor vn = vki_view(g, y, 2, kvne, (const uint64_t[2]){4, 3840}, 4 * 768);
        vki_tensor kw = vki_set_rows(g, vki_weight(g, VKI_DTYPE_F16, 2, cne, "cache_k"), kn, pos);
        vki_tensor vw = vki_set_rows(g, vki_weight(g, VKI_DTYPE_F16, 2, cne, "cache_v"), vn, pos);
        vki_tensor a = vki_attention_pos(g, q, vki_reshape(g, kw, 3, hne), vki_reshape(g, vw, 3, hne),
                                         pos, 0.125f, 0);
        vki_output(g, a, "a");
        if (cache_output) vki_output(g, kw, "cache_k after");
        vki_plan_stats s = compile();
        std::string kernels;
        for (uint32_t i = 0; i < vki_plan_step_count(plan); i++) {
            vki_plan_step st;
            EXPECT_TRUE(vki_plan_step_get(plan, i, &st));
            kernels += std::string(i ? " " : "") + st.kernel;
        }
        return std::to_string(s.fused) + ": " + kernels;
    };
    EXPECT_EQ(layer(true, VKI_ROPE_NORMAL, false), "3: matvec_q4_1_wide attention_keys_sg_append");
    // NeoX pairs are n_rot / 2 rows apart, past the kernel's blocks of 8.
    EXPECT_EQ(layer(true, VKI_ROPE_NEOX, false), "2: matvec_q4_1_wide rope_f32 attention_keys_sg_append");
    // The cache after the write is read (downloaded) too: the set_rows stay.
    EXPECT_EQ(layer(true, VKI_ROPE_NORMAL, true),
              "2: matvec_q4_1_wide set_rows set_rows attention_keys_sg_wide");
    EXPECT_EQ(layer(false, VKI_ROPE_NORMAL, false),
              "0: norm_f32 matvec_q4_1_shmem rope_f32 set_rows set_rows attention_rows");
}

TEST_F(GraphTest, CooperativeMatrixMatmulForHalfAndQuantizedWeightsOnly)
{
    profile.coopmat = true;
    profile.coopmat_shape[0] = profile.coopmat_shape[1] = profile.coopmat_shape[2] = 16;
    profile.subgroup_ops = VKI_SUBGROUP_BASIC;
    profile.tuning.use_coopmat = profile.tuning.matmul_shared = true;
    profile.tuning.matmul_tile_m = profile.tuning.matmul_tile_n = 128;
    profile.tuning.matmul_tile_k = 32;
    auto lowers_to = [&](vki_dtype wt, int64_t n, const char *kernel, uint32_t fp16) {
        SCOPED_TRACE(kernel);
        std::string got;
        vki_plan_stats s = compile_one_matmul(wt, 256, 576, n, &got);
        EXPECT_EQ(got, kernel);
        EXPECT_EQ(s.fp16_dispatches, fp16) << "the plan declares its fp16 operands";
    };
    // M = 576: 5 tiles of 128 rows; N = 2048 makes 80 tiles, N = 1536 only 60.
    lowers_to(VKI_DTYPE_Q4_0, 2048, "matmul_q4_0_cm", 1);
    lowers_to(VKI_DTYPE_F16, 2048, "matmul_f16_cm", 1);
    lowers_to(VKI_DTYPE_Q4_0, 1536, "matmul_q4_0", 0); // small products: the shared-memory kernel
    lowers_to(VKI_DTYPE_F32, 2048, "matmul_f32", 0); // f32 and bf16 weights keep their precision
    lowers_to(VKI_DTYPE_BF16, 2048, "matmul_bf16", 0);
    lowers_to(VKI_DTYPE_Q4_0, 1, "matvec_q4_0_shmem", 0); // decode: memory-bound
    // A device opened with VK_KHR_cooperative_matrix gets the KHR variants, with the same rules
    // (in a build that has them: the profile never says KHR in one that does not).
    if (vki_shader_find("peak_coopmat_khr_f16")) {
        profile.coopmat_khr = true;
        lowers_to(VKI_DTYPE_Q4_0, 2048, "matmul_q4_0_cmk", 1);
        lowers_to(VKI_DTYPE_F16, 2048, "matmul_f16_cmk", 1);
        lowers_to(VKI_DTYPE_Q4_0, 1536, "matmul_q4_0", 0);
        lowers_to(VKI_DTYPE_F32, 2048, "matmul_f32", 0);
        profile.coopmat_khr = false;
    }
    profile.coopmat = false; // what the no-coopmat narrowing leaves
    lowers_to(VKI_DTYPE_Q4_0, 2048, "matmul_q4_0", 0);
}

// The integer-dot mat-vec: only where the tuning asks for it (matvec_int_dot) on a device with
// integer dot products, for weights that are a scale times bytes (q8_0, q4_0), on the
// storage-buffer mat-vec (not lavapipe's texel paths); the plan declares the int8 x.
TEST_F(GraphTest, IntegerDotMatVecWhereTheTuningAsksForIt)
{
    profile.subgroup_ops = VKI_SUBGROUP_BASIC | VKI_SUBGROUP_ARITHMETIC;
    profile.int_dot = true;
    auto lowers_to = [&](vki_dtype wt, int64_t n, const char *kernel, uint32_t int8) {
        SCOPED_TRACE(kernel);
        std::string got;
        vki_plan_stats s = compile_one_matmul(wt, 256, 35, n, &got);
        EXPECT_EQ(got, kernel);
        EXPECT_EQ(s.int8_dispatches, int8) << "the plan declares its int8 x";
    };
    lowers_to(VKI_DTYPE_Q8_0, 1, "matvec_q8_0", 0); // every tuning row: off
    profile.tuning.matvec_int_dot = true;
    lowers_to(VKI_DTYPE_Q8_0, 1, "matvec_q8_0_dot", 1);
    lowers_to(VKI_DTYPE_Q4_0, 8, "matvec_q4_0_dot", 1);
    lowers_to(VKI_DTYPE_Q4_1, 1, "matvec_q4_1", 0); // its m needs more than bytes
    lowers_to(VKI_DTYPE_F16, 1, "matvec_f16", 0);
    lowers_to(VKI_DTYPE_Q4_0, 9, "matmul_q4_0_reg", 0); // past the mat-vec's columns
    profile.subgroup_ops = 0;
    lowers_to(VKI_DTYPE_Q4_0, 1, "matvec_q4_0_dot_shmem", 1);
    profile.int_dot = false; // a hand-made profile: the device has no integer dot products
    lowers_to(VKI_DTYPE_Q4_0, 1, "matvec_q4_0_shmem", 0);
    profile.int_dot = true;
    make_cpu(profile); // lavapipe's texel-buffer mat-vecs stay
    lowers_to(VKI_DTYPE_Q8_0, 1, "matvec_q8_0_wide", 0);
}

// ---- The lowering's windows (graph/compile.c, lower_node) ------------------------------------
// A node with a tensor past the profile's binding range (max_storage_range) is lowered slice by
// slice along its result's outermost dimension, so that models need not cut anything themselves
// (an SD U-Net's feed-forward at 1024x1024 has a 320 MiB projection output; lavapipe binds 128
// MiB). tests/ops/test_conformance.cc (SplitWeights) runs cut cases on the device.

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
TEST_F(GraphTest, WindowsFeedForwardOverTheRangeIsCutByTokens)
{
    windows_feed_forward(32, 128, 300);
    profile.max_storage_range = 16384;
    vki_plan_stats st = compile();
    EXPECT_EQ(st.windowed, 3u);
    EXPECT_EQ(st.windows, 20u + 19u + 10u);
    EXPECT_LE(widest_binding(), profile.max_storage_range);
    EXPECT_EQ(plan->step_count, 69u);
    vki_plan_destroy(plan);
    plan = nullptr;

    profile.max_storage_range = 1u << 30;
    st = compile();
    EXPECT_EQ(st.windowed, 0u);
    EXPECT_EQ(st.windows, 0u);
    EXPECT_GT(widest_binding(), 16384u);
    EXPECT_EQ(plan->step_count, 3u);
}

// A slice no binding can hold (one token of the projection is 1 KiB, the range 1 KiB less the
// slack holds none) fails to compile, naming the node, the slice and the limit.
TEST_F(GraphTest, WindowsASliceOverTheRangeIsNamed)
{
    windows_feed_forward(32, 128, 300);
    profile.max_storage_range = 1024;
    EXPECT_EQ(vki_graph_compile(g, &profile, nullptr, &plan), VKI_ERROR_UNSUPPORTED);
    std::string why = vki_graph_error(g);
    EXPECT_NE(why.find("binding limit of 1024 bytes"), std::string::npos) << why;
    EXPECT_NE(why.find("one slice"), std::string::npos) << why;
    EXPECT_EQ(plan, nullptr);
}

// An op without a cut (softmax: a causal row's columns depend on its index) is lowered whole,
// its binding left to the device's check when recorded; the cut ops around it still are cut.
TEST_F(GraphTest, WindowsOpsWithoutACutAreLoweredWhole)
{
    int64_t ne[2] = {64, 100};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, ne, "x");
    vki_tensor y = vki_softmax(g, vki_scale(g, x, 0.5f), (vki_tensor){0}, 1.0f, true);
    vki_output(g, y, "y");
    profile.max_storage_range = 8192;
    vki_plan_stats st = compile();
    EXPECT_EQ(st.windowed, 1u); // the scale: 25600 bytes, (7680 - 256) / 256 + 1 = 30 columns
    EXPECT_EQ(st.windows, 4u);
    EXPECT_GT(widest_binding(), profile.max_storage_range); // the softmax's
}
