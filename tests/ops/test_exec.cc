// The executor: recorded once and replayed with new inputs (a per-step upload is a memcpy, not
// a re-recording), weights bound by the caller, and misuse reported.
#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_graph.h"
}

#include <cstring>

class ExecTest : public VulkanTest {
  protected:
    vki_graph *g = nullptr;
    vki_plan *plan = nullptr;
    vki_exec *ex = nullptr;
    vki_arena *weights = nullptr;
    void TearDown() override
    {
        vki_exec_destroy(ex);
        vki_arena_destroy(weights);
        vki_plan_destroy(plan);
        vki_graph_destroy(g);
        VulkanTest::TearDown();
    }
};

TEST_F(ExecTest, ReplaysWithNewInputsAndRebindsWeights)
{
    open_device();
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    int64_t ne[1] = {100};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 1, ne, "x");
    vki_tensor w = vki_weight(g, VKI_DTYPE_F32, 1, ne, "w");
    vki_tensor y = vki_mul(g, vki_add(g, x, w), w);
    vki_output(g, y, "y");
    ASSERT_EQ(vki_graph_compile(g, vki_device_profile(dev), nullptr, &plan), VKI_OK) << vki_graph_error(g);
    ASSERT_EQ(vki_exec_create(dev, plan, nullptr, &ex), VKI_OK) << vki_device_last_error(dev);

    EXPECT_EQ(vki_exec_run(ex), VKI_ERROR_INVALID_ARGUMENT) << "the weight is not bound yet";
    EXPECT_NE(std::strstr(vki_device_last_error(dev), "weight w"), nullptr) << vki_device_last_error(dev);
    log.errors.clear();

    ASSERT_EQ(vki_arena_create(dev, nullptr, &weights), VKI_OK);
    vki_range w1, w2;
    ASSERT_EQ(vki_arena_alloc(weights, 400, 0, &w1), VKI_OK);
    ASSERT_EQ(vki_arena_alloc(weights, 400, 0, &w2), VKI_OK);
    float hw1[100], hw2[100], hx[100], hy[100];
    for (int i = 0; i < 100; i++) {
        hw1[i] = 2.0f;
        hw2[i] = -1.0f;
    }
    ASSERT_EQ(vki_device_upload(dev, w1, 0, hw1, 400), VKI_OK);
    ASSERT_EQ(vki_device_upload(dev, w2, 0, hw2, 400), VKI_OK);
    ASSERT_EQ(vki_exec_bind(ex, w, w1), VKI_OK);

    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 100; i++) hx[i] = (float)(i + step);
        ASSERT_EQ(vki_exec_upload(ex, x, hx, sizeof hx), VKI_OK);
        ASSERT_EQ(vki_exec_run(ex), VKI_OK);
        ASSERT_EQ(vki_exec_download(ex, y, hy, sizeof hy), VKI_OK);
        for (int i = 0; i < 100; i++) ASSERT_EQ(hy[i], (float)(i + step + 2) * 2.0f) << step << " " << i;
    }
    ASSERT_EQ(vki_exec_bind(ex, w, w2), VKI_OK); // re-records on the next run
    ASSERT_EQ(vki_exec_run(ex), VKI_OK);
    ASSERT_EQ(vki_exec_download(ex, y, hy, sizeof hy), VKI_OK);
    for (int i = 0; i < 100; i++) ASSERT_EQ(hy[i], (float)(i + 2 - 1) * -1.0f) << i;
}

TEST_F(ExecTest, MisuseIsReported)
{
    open_device();
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    int64_t ne[1] = {16};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 1, ne, "x");
    vki_tensor t = vki_add(g, x, x);
    vki_tensor y = vki_add(g, t, x);
    vki_output(g, y, "y");
    ASSERT_EQ(vki_graph_compile(g, vki_device_profile(dev), nullptr, &plan), VKI_OK);
    ASSERT_EQ(vki_exec_create(dev, plan, nullptr, &ex), VKI_OK);
    float buf[32] = {};
    EXPECT_EQ(vki_exec_upload(ex, x, buf, sizeof buf), VKI_ERROR_INVALID_ARGUMENT) << "too many bytes";
    EXPECT_EQ(vki_exec_download(ex, t, buf, 4), VKI_ERROR_INVALID_ARGUMENT) << "an intermediate";
    EXPECT_EQ(vki_exec_download(ex, (vki_tensor){999}, buf, 4), VKI_ERROR_INVALID_ARGUMENT);
    ASSERT_EQ(vki_arena_create(dev, nullptr, &weights), VKI_OK);
    vki_range small;
    ASSERT_EQ(vki_arena_alloc(weights, 32, 0, &small), VKI_OK);
    EXPECT_EQ(vki_exec_bind(ex, y, small), VKI_ERROR_INVALID_ARGUMENT) << "smaller than the tensor";
    log.errors.clear();
}
