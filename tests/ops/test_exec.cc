// The executor: recorded once and replayed with new inputs (a per-step upload is a memcpy, not
// a re-recording), weights bound by the caller, and misuse reported.
#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_graph.h"
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

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

// Release gives the activation arena and the executor's own input/output storage back to the
// device (an image pipeline's U-Net while the VAE runs) and keeps the kernels and what the caller
// bound; the next upload or run takes the memory again and the results are the same.
TEST_F(ExecTest, ReleaseGivesMemoryBackAndTheNextRunTakesItAgain)
{
    open_device();
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    const int n = 1 << 18; // 1 MiB a tensor: the input and output live in device storage
    int64_t ne[1] = {n};
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 1, ne, "x");
    vki_tensor b = vki_input(g, VKI_DTYPE_F32, 1, ne, "b"); // bound by the caller below
    vki_tensor t = vki_mul(g, vki_add(g, x, b), x);         // an intermediate in the arena
    vki_tensor y = vki_add(g, vki_mul(g, t, b), t);
    vki_output(g, y, "y");
    ASSERT_EQ(vki_graph_compile(g, vki_device_profile(dev), nullptr, &plan), VKI_OK) << vki_graph_error(g);
    vki_plan_stats ps;
    vki_plan_stats_get(plan, &ps);
    ASSERT_GT(ps.activation_bytes, 0u);
    ASSERT_EQ(vki_exec_create(dev, plan, nullptr, &ex), VKI_OK) << vki_device_last_error(dev);
    ASSERT_EQ(vki_arena_create(dev, nullptr, &weights), VKI_OK);
    vki_range br;
    ASSERT_EQ(vki_arena_alloc(weights, (uint64_t)n * 4, 0, &br), VKI_OK);
    std::vector<float> hx(n), hb(n), hy(n);
    for (int i = 0; i < n; i++) {
        hx[i] = (float)(i % 97) * 0.25f;
        hb[i] = (float)(i % 13) - 6.0f;
    }
    ASSERT_EQ(vki_device_upload(dev, br, 0, hb.data(), (uint64_t)n * 4), VKI_OK);
    ASSERT_EQ(vki_exec_bind(ex, b, br), VKI_OK);
    auto check = [&](float scale) {
        for (int i = 0; i < n; i++) {
            float xi = hx[i] * scale, tt = (xi + hb[i]) * xi;
            float want = tt * hb[i] + tt; // a fused multiply-add may round once less
            ASSERT_NEAR(hy[i], want, 1e-5f * (std::fabs(want) + 1.0f)) << "element " << i;
        }
    };
    ASSERT_EQ(vki_exec_upload(ex, x, hx.data(), (uint64_t)n * 4), VKI_OK);
    ASSERT_EQ(vki_exec_run(ex), VKI_OK) << vki_device_last_error(dev);
    ASSERT_EQ(vki_exec_download(ex, y, hy.data(), (uint64_t)n * 4), VKI_OK);
    check(1.0f);

    vki_device_stats before, after;
    vki_device_stats_get(dev, &before);
    vki_exec_release(ex);
    vki_device_stats_get(dev, &after);
    // The arena and the two megabytes of x and y, at least; the caller's b stays.
    EXPECT_GE(before.device_bytes - after.device_bytes, ps.activation_bytes + 2 * (uint64_t)n * 4);
    vki_exec_release(ex); // twice is harmless
    EXPECT_EQ(vki_exec_download(ex, y, hy.data(), (uint64_t)n * 4), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(vki_device_last_error(dev), "released"), nullptr) << vki_device_last_error(dev);
    log.errors.clear();

    // An upload after a release takes the memory back, as a run straight after one does (last).
    for (float scale : {2.0f, 0.5f}) {
        for (int i = 0; i < n; i++) hx[i] *= scale;
        if (scale == 0.5f) vki_exec_release(ex);
        ASSERT_EQ(vki_exec_upload(ex, x, hx.data(), (uint64_t)n * 4), VKI_OK);
        ASSERT_EQ(vki_exec_run(ex), VKI_OK) << vki_device_last_error(dev);
        ASSERT_EQ(vki_exec_download(ex, y, hy.data(), (uint64_t)n * 4), VKI_OK);
        check(1.0f);
    }
    vki_device_stats_get(dev, &after);
    // No more than before: less, as b's own storage (made at create, unused once the caller
    // bound b) is not made again.
    EXPECT_LE(after.device_bytes, before.device_bytes);
    EXPECT_GE(after.device_bytes + 2 * (uint64_t)n * 4, before.device_bytes);
    vki_exec_release(ex);
    ASSERT_EQ(vki_exec_run(ex), VKI_OK) << vki_device_last_error(dev);
}

// A KV cache is a weight the caller binds once: set_rows writes into it on every run, the writes
// persist across runs, and the result downloads as the cache itself.
TEST_F(ExecTest, SetRowsWritesPersistAcrossRuns)
{
    open_device();
    ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
    const int K = 5, R = 6;
    int64_t cne[2] = {K, R}, sne[2] = {K, 2}, ine[1] = {2};
    vki_tensor cache = vki_weight(g, VKI_DTYPE_F32, 2, cne, "cache");
    vki_tensor src = vki_input(g, VKI_DTYPE_F32, 2, sne, "src");
    vki_tensor idx = vki_input(g, VKI_DTYPE_I32, 1, ine, "idx");
    vki_tensor written = vki_set_rows(g, cache, src, idx);
    vki_output(g, written, "written");
    ASSERT_EQ(vki_graph_compile(g, vki_device_profile(dev), nullptr, &plan), VKI_OK) << vki_graph_error(g);
    ASSERT_EQ(vki_exec_create(dev, plan, nullptr, &ex), VKI_OK) << vki_device_last_error(dev);

    ASSERT_EQ(vki_arena_create(dev, nullptr, &weights), VKI_OK);
    vki_range range;
    ASSERT_EQ(vki_arena_alloc(weights, sizeof(float) * K * R, 0, &range), VKI_OK);
    float want[R][K], src_rows[2][K], got[R][K];
    for (int r = 0; r < R; r++)
        for (int k = 0; k < K; k++) want[r][k] = -1.0f;
    ASSERT_EQ(vki_device_upload(dev, range, 0, want, sizeof want), VKI_OK);
    ASSERT_EQ(vki_exec_bind(ex, cache, range), VKI_OK);

    // Run 1 writes rows 1 and 4; run 2 writes row 2 and skips a padding id.
    const int32_t ids[2][2] = {{1, 4}, {2, -1}};
    for (int run = 0; run < 2; run++) {
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < K; k++) {
                src_rows[n][k] = (float)(100 * run + 10 * n + k);
                if (ids[run][n] >= 0) want[ids[run][n]][k] = src_rows[n][k];
            }
        ASSERT_EQ(vki_exec_upload(ex, src, src_rows, sizeof src_rows), VKI_OK);
        ASSERT_EQ(vki_exec_upload(ex, idx, ids[run], sizeof ids[run]), VKI_OK);
        ASSERT_EQ(vki_exec_run(ex), VKI_OK) << vki_device_last_error(dev);
        ASSERT_EQ(vki_exec_download(ex, written, got, sizeof got), VKI_OK);
        EXPECT_EQ(std::memcmp(got, want, sizeof got), 0) << "run " << run;
    }
    ASSERT_EQ(vki_device_download(dev, range, 0, got, sizeof got), VKI_OK);
    for (int r = 0; r < R; r++)
        for (int k = 0; k < K; k++) EXPECT_EQ(got[r][k], want[r][k]) << "row " << r << " element " << k;
}

// Decode steps of one attention layer over a cache the plan writes: step t writes k and v at
// position t and attends to positions 0..t (within the window), with the plan recorded once.
// The cache starts as NaN, so reading a position not yet written would poison the output.
// Both attention kernels: lavapipe's rows kernel and a GPU tuning's tiled one.
TEST_F(ExecTest, KvCacheDecodeStepsSeeEveryEarlierStep)
{
    const int D = 4, CTX = 8, STEPS = 5;
    for (const char *profile : {"", "tuning=nvidia"}) {
        for (uint32_t window : {0u, 2u}) {
            SCOPED_TRACE(std::string(profile) + " window " + std::to_string(window));
            open_device(profile);
            ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
            int64_t cne[2] = {D, CTX}, rne[2] = {D, 1}, qne[3] = {D, 1, 1}, kne[3] = {D, 1, CTX};
            int64_t pne[1] = {1};
            vki_tensor kc = vki_weight(g, VKI_DTYPE_F32, 2, cne, "cache_k");
            vki_tensor vc = vki_weight(g, VKI_DTYPE_F32, 2, cne, "cache_v");
            vki_tensor q = vki_input(g, VKI_DTYPE_F32, 3, qne, "q");
            vki_tensor k = vki_input(g, VKI_DTYPE_F32, 2, rne, "k");
            vki_tensor v = vki_input(g, VKI_DTYPE_F32, 2, rne, "v");
            vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 1, pne, "pos");
            vki_tensor k3 = vki_reshape(g, vki_set_rows(g, kc, k, pos), 3, kne);
            vki_tensor v3 = vki_reshape(g, vki_set_rows(g, vc, v, pos), 3, kne);
            vki_tensor y = vki_attention_pos(g, q, k3, v3, pos, 0.5f, window);
            vki_output(g, y, "y");
            ASSERT_EQ(vki_graph_compile(g, vki_device_profile(dev), nullptr, &plan), VKI_OK)
                << vki_graph_error(g);
            ASSERT_EQ(vki_exec_create(dev, plan, nullptr, &ex), VKI_OK) << vki_device_last_error(dev);
            ASSERT_EQ(vki_arena_create(dev, nullptr, &weights), VKI_OK);
            vki_range kr, vr;
            float nan_cache[CTX][D];
            for (auto &row : nan_cache)
                for (float &x : row) x = NAN;
            ASSERT_EQ(vki_arena_alloc(weights, sizeof nan_cache, 0, &kr), VKI_OK);
            ASSERT_EQ(vki_arena_alloc(weights, sizeof nan_cache, 0, &vr), VKI_OK);
            ASSERT_EQ(vki_device_upload(dev, kr, 0, nan_cache, sizeof nan_cache), VKI_OK);
            ASSERT_EQ(vki_device_upload(dev, vr, 0, nan_cache, sizeof nan_cache), VKI_OK);
            ASSERT_EQ(vki_exec_bind(ex, kc, kr), VKI_OK);
            ASSERT_EQ(vki_exec_bind(ex, vc, vr), VKI_OK);

            float hk[STEPS][D], hv[STEPS][D];
            for (int32_t t = 0; t < STEPS; t++) {
                float hq[D], hy[D];
                for (int d = 0; d < D; d++) {
                    hq[d] = std::sin(1.0f + t + 0.7f * d);
                    hk[t][d] = std::cos(0.3f * t - 0.5f * d);
                    hv[t][d] = (float)(t + 1) * (d % 2 ? -1.0f : 1.0f) + 0.25f * d;
                }
                ASSERT_EQ(vki_exec_upload(ex, q, hq, sizeof hq), VKI_OK);
                ASSERT_EQ(vki_exec_upload(ex, k, hk[t], sizeof hk[t]), VKI_OK);
                ASSERT_EQ(vki_exec_upload(ex, v, hv[t], sizeof hv[t]), VKI_OK);
                ASSERT_EQ(vki_exec_upload(ex, pos, &t, sizeof t), VKI_OK);
                ASSERT_EQ(vki_exec_run(ex), VKI_OK) << vki_device_last_error(dev);
                ASSERT_EQ(vki_exec_download(ex, y, hy, sizeof hy), VKI_OK);

                int first = window && t + 1 > (int)window ? t + 1 - (int)window : 0;
                double w[STEPS], mx = -1e30, sum = 0;
                for (int j = first; j <= t; j++) {
                    double s = 0;
                    for (int d = 0; d < D; d++) s += (double)hq[d] * hk[j][d];
                    w[j] = 0.5 * s;
                    mx = std::max(mx, w[j]);
                }
                for (int j = first; j <= t; j++) sum += (w[j] = std::exp(w[j] - mx));
                for (int d = 0; d < D; d++) {
                    double want = 0;
                    for (int j = first; j <= t; j++) want += w[j] / sum * hv[j][d];
                    EXPECT_NEAR(hy[d], want, 1e-5) << "step " << t << " dim " << d;
                }
            }
            vki_exec_destroy(ex);
            ex = nullptr;
            vki_arena_destroy(weights);
            weights = nullptr;
            vki_plan_destroy(plan);
            plan = nullptr;
            vki_graph_destroy(g);
            g = nullptr;
            vki_device_destroy(dev);
            dev = nullptr;
        }
    }
}
