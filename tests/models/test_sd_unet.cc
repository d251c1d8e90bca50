// The SD U-Net and text encoders on the device against diffusers/transformers run on the same
// tiny random checkpoints (tests/data/sd_tiny, made by tools/gen_sd_golden.py), in both
// layouts: the single file in the original (ldm) names and the diffusers folder, read through
// the renaming source.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#include <algorithm>
#include <unistd.h>

#include "runtime/test_support.h"
#include "sd_golden.h"

extern "C" {
#include "sd_internal.h"
}

namespace {

const std::string kDir = std::string(VKI_TEST_DATA) + "/sd_tiny/";

using Golden = SdGolden; // sd_golden.h

uint16_t FloatToHalf(float f) // round to nearest even; the test's values are normal or zero
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, man = u & 0x7fffff;
    int e = int((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return uint16_t(sign);
    uint32_t m = man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (m & 1))) m++;
    if (m == 0x400) m = 0, e++;
    return uint16_t(sign | uint32_t(e) << 10 | m);
}

// A safetensors checkpoint rewritten as GGUF v3 the way stable-diffusion.cpp converts one: the
// same names, F32/F16 kept, and `quantize(name, ne)` tensors as Q8_0 (blocks of 32 along the
// row: an f16 scale max|x|/127 and 32 int8). Returns the file's bytes.
template <class Pick>
std::string ToGguf(vki_safetensors *st, Pick quantize)
{
    struct T {
        std::string name, data;
        uint32_t n_dims, type;
        int64_t ne[4];
    };
    std::vector<T> ts;
    for (uint64_t i = 0; i < vki_safetensors_tensor_count(st); i++) {
        vki_safetensors_tensor t;
        if (vki_safetensors_tensor_at(st, i, &t) != VKI_OK) continue;
        if (t.dtype != VKI_DTYPE_F32 && t.dtype != VKI_DTYPE_F16) continue; // position_ids etc.
        T o{t.name, std::string((const char *)t.data, t.size), t.n_dims, t.dtype == VKI_DTYPE_F32 ? 0u : 1u,
            {t.ne[0], t.ne[1], t.ne[2], t.ne[3]}};
        if (quantize(o.name, o.ne) && o.ne[0] % 32 == 0) {
            size_t n = t.size / (t.dtype == VKI_DTYPE_F32 ? 4 : 2);
            std::vector<float> v(n);
            for (size_t k = 0; k < n; k++)
                v[k] = t.dtype == VKI_DTYPE_F32 ? ((const float *)t.data)[k]
                                                : HalfToFloat(((const uint16_t *)t.data)[k]);
            std::string q;
            for (size_t b = 0; b < n; b += 32) {
                float amax = 0;
                for (int k = 0; k < 32; k++) amax = std::max(amax, std::fabs(v[b + k]));
                float d = amax / 127.0f, inv = d ? 1.0f / d : 0.0f;
                uint16_t dh = FloatToHalf(d);
                q.append((const char *)&dh, 2);
                for (int k = 0; k < 32; k++) q.push_back(char(int8_t(std::lround(v[b + k] * inv))));
            }
            o.data = q;
            o.type = 8;
        }
        ts.push_back(o);
    }
    auto u32 = [](std::string &s, uint32_t v) { s.append((const char *)&v, 4); };
    auto u64 = [](std::string &s, uint64_t v) { s.append((const char *)&v, 8); };
    std::string h = "GGUF";
    u32(h, 3);
    u64(h, ts.size());
    u64(h, 0);
    uint64_t off = 0;
    for (const T &t : ts) {
        u64(h, t.name.size());
        h += t.name;
        u32(h, t.n_dims);
        for (uint32_t d = 0; d < t.n_dims; d++) u64(h, uint64_t(t.ne[d]));
        u32(h, t.type);
        u64(h, off);
        off += (t.data.size() + 31) / 32 * 32;
    }
    while (h.size() % 32) h.push_back(0);
    for (const T &t : ts) {
        h += t.data;
        while (h.size() % 32) h.push_back(0);
    }
    return h;
}

// sum (a - b)^2 / sum b^2
double Nmse(const std::vector<float> &a, const std::vector<float> &b)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        num += double(a[i] - b[i]) * (a[i] - b[i]);
        den += double(b[i]) * b[i];
    }
    return a.size() == b.size() && den > 0 ? num / den : 1e30;
}

std::string Sci(double v) // to_string's fixed 6 decimals print small errors as 0
{
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return b;
}

class SdUnetTest : public VulkanTest {
  protected:
    vki_safetensors *file = nullptr;
    vki_renamed_source *renamed = nullptr;
    vki_weight_source source{};
    uint32_t fp16_dispatches = 0; // of run_unet's program: cooperative-matrix steps

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
    }
    void TearDown() override
    {
        vki_renamed_source_destroy(renamed);
        vki_safetensors_close(file);
        VulkanTest::TearDown();
    }

    // The model's U-Net tensors: the single file, or the folder's unet/ renamed.
    void open_unet(const std::string &model, bool folder)
    {
        char err[256] = "";
        std::string path = folder ? kDir + model + "/unet/diffusion_pytorch_model.safetensors"
                                  : kDir + model + ".safetensors";
        ASSERT_EQ(vki_safetensors_open(path.c_str(), nullptr, &file, err, sizeof err), VKI_OK) << err;
        source = vki_weight_source_safetensors(file);
        if (folder) {
            ASSERT_EQ(vki_renamed_source_create(&source, VKI_SD_NAMES_UNET_DIFFUSERS, nullptr, nullptr,
                                                &renamed, err, sizeof err),
                      VKI_OK)
                << err;
            source = vki_renamed_source_get(renamed);
        }
    }

    // `narrowing`: the device opened with it (VKI_NARROW's syntax) instead of the default;
    // `bound`: the nmse against diffusers the evaluation must stay under.
    void run_unet(const std::string &model, bool folder, const char *narrowing = nullptr, double bound = 1e-8)
    {
        if (!std::ifstream(kDir + model + "_golden.safetensors").good())
            GTEST_SKIP() << "no goldens: run tools/gen_sd_golden.py";
        if (narrowing) {
            vki_device_destroy(dev);
            dev = nullptr;
            open_device(narrowing);
        }
        open_unet(model, folder);
        Golden g(kDir + model + "_golden.safetensors");
        std::vector<float> x = g.f32("unet.x"), t = g.f32("unet.t"), ctx = g.f32("unet.ctx"),
                           want = g.f32("unet.out");
        vki_unet_desc d = {};
        d.source = &source;
        d.prefix = folder ? "" : "model.diffusion_model.";
        d.device = dev;
        vki_unet *u = nullptr;
        char err[512] = "";
        ASSERT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_OK) << err;
        const vki_unet_info *in = vki_unet_info_get(u);
        EXPECT_EQ(in->linear_projection, model == "sd21");
        uint32_t batch = uint32_t(t.size()), side = 8, n_ctx = 77;
        ASSERT_EQ(x.size(), size_t(batch) * 4 * side * side);
        ASSERT_EQ(ctx.size(), size_t(batch) * n_ctx * in->context_dim);
        std::vector<float> out(want.size());
        ASSERT_EQ(vki_unet_eval(u, side, side, batch, n_ctx, x.data(), t.data(), ctx.data(), out.data()),
                  VKI_OK)
            << vki_unet_last_error(u);
        double e = Nmse(out, want);
        RecordProperty("nmse", Sci(e));
        // F16 weights, F32 activations in both: what remains is summation order and the
        // kernels' erf/exp approximations through ~60 layers (measured: 3e-11 SD 1.x, 3e-12
        // SD 2.x on lavapipe); 1e-8 leaves GPUs' other summation orders room and is far
        // below a wrong wiring (a swapped skip gives ~1).
        EXPECT_LT(e, bound) << model << (folder ? " folder" : " single file");
        vki_plan_stats ps;
        vki_unet_plan_stats(u, &ps);
        fp16_dispatches = ps.fp16_dispatches;
        // The batch is the two passes of guidance: the second image must not see the first.
        std::vector<float> one(out.size() / batch);
        ASSERT_EQ(vki_unet_eval(u, side, side, 1, n_ctx, x.data() + one.size(), t.data() + 1,
                                ctx.data() + size_t(n_ctx) * in->context_dim, one.data()),
                  VKI_OK);
        EXPECT_LT(Nmse(one, std::vector<float>(want.begin() + one.size(), want.end())), bound);
        vki_unet_destroy(u);
        EXPECT_TRUE(log.validation.empty()) << log.validation.front();
    }
};

TEST_F(SdUnetTest, Sd15SingleFileMatchesDiffusers) { run_unet("sd15", false); }
TEST_F(SdUnetTest, Sd15FolderMatchesDiffusers) { run_unet("sd15", true); }
TEST_F(SdUnetTest, Sd21SingleFileMatchesDiffusers) { run_unet("sd21", false); }
TEST_F(SdUnetTest, Sd21FolderMatchesDiffusers) { run_unet("sd21", true); }

// The U-Net as a GPU with matrix cores runs it, on lavapipe: the emulate-coopmat narrowing plans
// the cooperative-matrix kernels (emulated fragments, the same source as the NV and KHR
// variants) wherever a GPU would get them; at the golden's 8x8 latent that is the flash
// attention (64 query rows a head; SD 1.x's tiny heads padded to the fragments), not the
// products and convolutions (too few tiles). Operands rounded to fp16 in those steps: measured
// 5.1e-10 (2.8e-12 unemulated); 1e-7 leaves room for the real fragments' summation orders. With
// the kernel's per-row rescale of O dropped (the cross-attention's 77 positions take two kv
// tiles) it fails.
TEST_F(SdUnetTest, Sd15OnEmulatedCooperativeMatricesMatchesDiffusers)
{
    run_unet("sd15", false, "emulate-coopmat", 1e-7);
    EXPECT_GT(fp16_dispatches, 0u) << "no step planned on the cooperative-matrix kernels";
}

TEST_F(SdUnetTest, OddLatentSizesAndMissingTensorsAreNamed)
{
    if (!std::ifstream(kDir + "sd15.safetensors").good()) GTEST_SKIP() << "no tiny checkpoint";
    open_unet("sd15", false);
    vki_unet_desc d = {};
    d.source = &source;
    d.prefix = "model.diffusion_model.";
    d.device = dev;
    vki_unet *u = nullptr;
    char err[512] = "";
    ASSERT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_OK) << err;
    std::vector<float> x(4 * 12 * 12), t(1), ctx(77 * vki_unet_info_get(u)->context_dim), out(x.size());
    EXPECT_EQ(vki_unet_eval(u, 12, 12, 1, 77, x.data(), t.data(), ctx.data(), out.data()),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_unet_last_error(u)).find("does not halve"), std::string::npos);
    // Sizes past the bounds say which bound (a bare "invalid argument" named nothing).
    EXPECT_EQ(vki_unet_eval(u, 2048, 8, 1, 77, x.data(), t.data(), ctx.data(), out.data()),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_unet_last_error(u)).find("2048x8 latent"), std::string::npos)
        << vki_unet_last_error(u);
    EXPECT_EQ(vki_unet_eval(u, 8, 8, 65, 77, x.data(), t.data(), ctx.data(), out.data()),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_unet_last_error(u)).find("1 to 64 in a batch"), std::string::npos)
        << vki_unet_last_error(u);
    vki_unet_destroy(u);
    d.prefix = "wrong.prefix.";
    EXPECT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(err).find("wrong.prefix.input_blocks.0.0.weight"), std::string::npos) << err;
}

// The feed-forward cut by tokens (#17: a 1024x1024 image's projection output is 320 MiB, over
// lavapipe's 128 MiB binding range). The U-Net builds it whole; the lowering cuts what a binding
// cannot hold (graph/compile.c; tests/graph/test_windows.cc, SplitWeights in tests/ops). The tiny
// U-Net at a 32x32 latent, batch 2, through a 1 MiB binding range (VKI_NARROW=max-binding=1M):
// the first level's projection output is 2 MiB (1 KiB a token), its geglu output 1 MiB; every
// other tensor and weight must fit 1 MiB, which the device's binding check enforces when the
// dispatches are recorded. Against the unnarrowed device (which SdUnetTest's golden test holds
// to diffusers at 8x8; there the largest weight, 144 KiB, outgrows every activation, so no
// narrowing cuts the feed-forward without failing on a weight).
TEST_F(SdUnetTest, NarrowedBindingRangeSplitsTheFeedForward)
{
    if (!std::ifstream(kDir + "sd15_golden.safetensors").good()) GTEST_SKIP() << "no goldens";
    open_unet("sd15", false);
    Golden g(kDir + "sd15_golden.safetensors");
    const uint32_t side = 32, batch = 2;
    std::vector<float> x(size_t(batch) * 4 * side * side), t = {981.0f, 333.0f}, ctx = g.f32("unet.ctx");
    uint32_t state = 12345;
    for (float &v : x) { // uniform in [-1.7, 1.7): unit variance, like a noised latent
        state = state * 1664525u + 1013904223u;
        v = (float(state >> 8) / float(1u << 24) * 2.0f - 1.0f) * 1.7320508f;
    }
    std::vector<float> out[2];
    uint32_t windowed[2] = {};
    for (int narrow = 0; narrow < 2; narrow++) {
        if (narrow) {
            vki_device_destroy(dev);
            dev = nullptr;
            open_device("max-binding=1M");
            ASSERT_EQ(vki_device_profile(dev)->max_storage_range, 1u << 20);
        }
        vki_unet_desc d = {};
        d.source = &source;
        d.prefix = "model.diffusion_model.";
        d.device = dev;
        vki_unet *u = nullptr;
        char err[512] = "";
        ASSERT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_OK) << err;
        out[narrow].resize(x.size());
        EXPECT_EQ(vki_unet_eval(u, side, side, batch, 77, x.data(), t.data(), ctx.data(), out[narrow].data()),
                  VKI_OK)
            << vki_unet_last_error(u);
        vki_plan_stats ps;
        vki_unet_plan_stats(u, &ps);
        windowed[narrow] = ps.windowed;
        vki_unet_destroy(u);
        if (HasFailure()) return;
    }
    EXPECT_EQ(windowed[0], 0u);
    // In each of the five first-level feed-forwards: the projection, the geglu and the down
    // product that reads the geglu's output; nothing else of the network outgrows 1 MiB.
    EXPECT_EQ(windowed[1], 5u * 3);
    double e = Nmse(out[1], out[0]);
    RecordProperty("nmse_vs_unnarrowed", Sci(e));
    EXPECT_LT(e, 1e-12);
    EXPECT_TRUE(log.validation.empty()) << log.validation.front();
}

// The text encoders: SD 1.x's CLIP (last layer, and clip skip 2), SD 2.x's OpenCLIP tower
// through the renaming source (penultimate layer), and the diffusers folders' text_encoder.
class SdTextTest : public SdUnetTest {
  protected:
    void run_text(const std::string &model, bool folder, uint32_t skip, const char *golden)
    {
        if (!std::ifstream(kDir + model + "_golden.safetensors").good())
            GTEST_SKIP() << "no goldens: run tools/gen_sd_golden.py";
        char err[512] = "";
        std::string path = folder ? kDir + model + "/text_encoder/model.safetensors" : kDir + model + ".safetensors";
        ASSERT_EQ(vki_safetensors_open(path.c_str(), nullptr, &file, err, sizeof err), VKI_OK) << err;
        source = vki_weight_source_safetensors(file);
        vki_clip_text_desc d = {};
        d.clip_skip = skip;
        d.act = model == "sd21" ? VKI_ACT_GELU : VKI_ACT_QUICK_GELU;
        d.prefix = folder ? "text_model." : "cond_stage_model.transformer.text_model.";
        if (!folder && model == "sd21") {
            ASSERT_EQ(vki_renamed_source_create(&source, VKI_SD_NAMES_OPENCLIP, "cond_stage_model.model.",
                                                nullptr, &renamed, err, sizeof err),
                      VKI_OK)
                << err;
            source = vki_renamed_source_get(renamed);
            d.prefix = "text_model.";
        }
        vki_clip_text *te = nullptr;
        ASSERT_EQ(vki__clip_text_load_source(dev, &source, &d, &te, err, sizeof err), VKI_OK) << err;
        Golden g(kDir + model + "_golden.safetensors");
        std::vector<int32_t> ids = g.i32("text.ids");
        std::vector<float> want = g.f32(golden);
        uint32_t width = vki_clip_text_info_get(te)->width;
        ASSERT_EQ(want.size(), ids.size() * width);
        for (size_t row = 0; row * 77 < ids.size(); row++) {
            std::vector<float> out(77 * width);
            ASSERT_EQ(vki_clip_text_encode(te, ids.data() + row * 77, out.data()), VKI_OK);
            std::vector<float> ref(want.begin() + row * 77 * width, want.begin() + (row + 1) * 77 * width);
            // F16 weights, F32 math on both sides, three layers: 1e-8 is well above the
            // difference in summation order and far below one wrong layer.
            EXPECT_LT(Nmse(out, ref), 1e-8) << model << " row " << row;
        }
        vki_clip_text_destroy(te);
        EXPECT_TRUE(log.validation.empty()) << log.validation.front();
    }
};

TEST_F(SdTextTest, Sd15ClipMatchesTransformers) { run_text("sd15", false, 1, "text.hidden"); }
TEST_F(SdTextTest, Sd15ClipSkip2MatchesTransformers) { run_text("sd15", false, 2, "text.hidden_skip2"); }
TEST_F(SdTextTest, Sd15FolderClipMatchesTransformers) { run_text("sd15", true, 1, "text.hidden"); }
TEST_F(SdTextTest, Sd21OpenClipPenultimateMatchesTransformers) { run_text("sd21", false, 2, "text.hidden"); }
// diffusers' SD 2.x text_encoder/ holds the tower without its last layer (23 of OpenCLIP-H's
// 24): its last layer is the single file's penultimate.
TEST_F(SdTextTest, Sd21FolderPenultimateMatchesTransformers) { run_text("sd21", true, 1, "text.hidden"); }

// Whole sampler runs: the tiny U-Net with guidance 5 through each sampler and schedule, 8 steps
// from torch's seed-42 noise, against k-diffusion driving diffusers' U-Net on the same file.
class SdSampleTest : public SdUnetTest {
  protected:
    void run_all(const std::string &model, bool every)
    {
        if (!std::ifstream(kDir + model + "_golden.safetensors").good())
            GTEST_SKIP() << "no goldens: run tools/gen_sd_golden.py";
        open_unet(model, false);
        Golden g(kDir + model + "_golden.safetensors");
        vki_unet_desc d = {};
        d.source = &source;
        d.prefix = "model.diffusion_model.";
        d.device = dev;
        vki_unet *u = nullptr;
        char err[512] = "";
        ASSERT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_OK) << err;
        std::vector<float> text = g.f32("text.hidden");
        const size_t half = text.size() / 2, n = 4 * 8 * 8;
        std::vector<float> context(text.size()); // unconditional (row 1) first, then row 0
        std::copy(text.begin() + half, text.end(), context.begin());
        std::copy(text.begin(), text.begin() + half, context.begin() + half);
        std::vector<float> xin(2 * n), pred(2 * n);
        vki_sd_denoiser dn = {};
        dn.unet = u;
        dn.w = dn.h = 8;
        dn.n_ctx = 77;
        dn.cfg = 5.0f;
        dn.v = model == "sd21";
        dn.context = context.data();
        dn.xin = xin.data();
        dn.pred = pred.data();
        struct Run {
            const char *golden;
            vki_sd_sampler sampler;
            vki_sd_schedule schedule;
        } runs[] = {
            {"euler.discrete", VKI_SD_SAMPLER_EULER, VKI_SD_SCHEDULE_DISCRETE},
            {"euler_ancestral.discrete", VKI_SD_SAMPLER_EULER_A, VKI_SD_SCHEDULE_DISCRETE},
            {"heun.discrete", VKI_SD_SAMPLER_HEUN, VKI_SD_SCHEDULE_DISCRETE},
            {"dpm_2.discrete", VKI_SD_SAMPLER_DPM2, VKI_SD_SCHEDULE_DISCRETE},
            {"dpmpp_2m.discrete", VKI_SD_SAMPLER_DPMPP_2M, VKI_SD_SCHEDULE_DISCRETE},
            {"dpmpp_sde.discrete", VKI_SD_SAMPLER_DPMPP_SDE, VKI_SD_SCHEDULE_DISCRETE},
            {"ddim.discrete", VKI_SD_SAMPLER_DDIM, VKI_SD_SCHEDULE_DISCRETE},
            {"lcm.discrete", VKI_SD_SAMPLER_LCM, VKI_SD_SCHEDULE_DISCRETE},
            {"dpmpp_2m.karras", VKI_SD_SAMPLER_DPMPP_2M, VKI_SD_SCHEDULE_KARRAS},
            {"euler.exponential", VKI_SD_SAMPLER_EULER, VKI_SD_SCHEDULE_EXPONENTIAL},
        };
        for (const Run &r : runs) {
            // SD 2.x: the v parameterisation through one sampler of each kind (the samplers
            // themselves are the same code as SD 1.x's).
            if (!every && r.sampler != VKI_SD_SAMPLER_EULER_A && r.sampler != VKI_SD_SAMPLER_HEUN &&
                r.schedule != VKI_SD_SCHEDULE_KARRAS)
                continue;
            std::string name = std::string("sample.") + r.golden + ".latent";
            std::vector<float> want = g.f32(name.c_str());
            float sigmas[9];
            ASSERT_EQ(vki_sd_sigmas(r.schedule, 8, sigmas), VKI_OK);
            vki_sd_rng rng;
            vki_sd_rng_seed(&rng, 42);
            std::vector<float> x(n);
            vki_sd_randn(&rng, x.data(), n);
            for (float &v : x) v *= sigmas[0];
            vki_sd_sample_desc sd = {};
            sd.sampler = r.sampler;
            sd.sigmas = sigmas;
            sd.steps = 8;
            sd.n = n;
            sd.denoise = vki__sd_denoise;
            sd.user = &dn;
            sd.rng = &rng;
            ASSERT_EQ(vki_sd_sample(&sd, x.data()), VKI_OK) << r.golden << ": " << vki_unet_last_error(u);
            double e = Nmse(x, want);
            RecordProperty(r.golden, std::to_string(e));
            // 8-16 guided U-Net evaluations, each within 1e-10 of diffusers: the samplers'
            // float32 arithmetic adds ~1e-13; 1e-8 still catches a wrong step (~1e-2 and up).
            // The tiny SD 2.x (one 64-wide head per attention, v) amplifies rounding: in torch
            // alone its DDIM and Euler runs, equal in exact arithmetic, differ by 2.3e-3
            // relative (nmse ~5e-6; tests/data/sd_tiny/README.md), so its runs are held to 1e-5,
            // still three orders below a wrong sampler step.
            EXPECT_LT(e, every ? 1e-8 : 1e-5) << model << " " << r.golden;
        }
        vki_unet_destroy(u);
        EXPECT_TRUE(log.validation.empty()) << log.validation.front();
    }
};

TEST_F(SdSampleTest, Sd15EverySamplerMatchesKDiffusion) { run_all("sd15", true); }
TEST_F(SdSampleTest, Sd21VPredictionSamplersMatchKDiffusion) { run_all("sd21", false); }

// stable-diffusion.cpp's GGUF: the single file's tensors with the U-Net's linear weights in
// Q8_0, through the GGUF weight source, against the same diffusers golden.
TEST_F(SdUnetTest, GgufWithQuantisedLinearsMatchesDiffusers)
{
    if (!std::ifstream(kDir + "sd15_golden.safetensors").good()) GTEST_SKIP() << "no goldens";
    open_unet("sd15", false);
    std::string bytes = ToGguf(file, [](const std::string &name, const int64_t *) {
        return name.find("model.diffusion_model.") == 0 && name.find("transformer_blocks") != std::string::npos &&
               name.find(".weight") != std::string::npos && name.find("norm") == std::string::npos;
    });
    vki_gguf *gguf = nullptr;
    char err[512] = "";
    ASSERT_EQ(vki_gguf_open_memory(bytes.data(), bytes.size(), nullptr, &gguf, err, sizeof err), VKI_OK) << err;
    vki_weight_source gs = vki_weight_source_gguf(gguf);
    vki_unet_desc d = {};
    d.source = &gs;
    d.prefix = "model.diffusion_model.";
    d.device = dev;
    vki_unet *u = nullptr;
    ASSERT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_OK) << err;
    Golden g(kDir + "sd15_golden.safetensors");
    std::vector<float> x = g.f32("unet.x"), t = g.f32("unet.t"), ctx = g.f32("unet.ctx"), want = g.f32("unet.out");
    std::vector<float> out(want.size());
    ASSERT_EQ(vki_unet_eval(u, 8, 8, 2, 77, x.data(), t.data(), ctx.data(), out.data()), VKI_OK)
        << vki_unet_last_error(u);
    double e = Nmse(out, want);
    RecordProperty("nmse", std::to_string(e));
    // Q8_0 rounds each weight by up to 1/254 of its block's largest: the output moves by ~1e-5
    // (relative, squared) but stays far from a wrong wiring (~1).
    EXPECT_LT(e, 1e-3);
    EXPECT_GT(e, 1e-12); // the quantised weights were really used
    vki_unet_destroy(u);
    // The whole pipeline from the file.
    char path[] = "/tmp/vki_sd_gguf_XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
    close(fd);
    vki_sd_desc sd_desc = {};
    sd_desc.path = path;
    vki_sd *sd = nullptr;
    EXPECT_EQ(vki_sd_load(dev, &sd_desc, &sd, err, sizeof err), VKI_OK) << err;
    if (sd) EXPECT_EQ(vki_sd_info_get(sd)->version, 1u);
    vki_sd_destroy(sd);
    unlink(path);
    vki_gguf_close(gguf);
    EXPECT_TRUE(log.validation.empty()) << log.validation.front();
}

// The pipeline's loader: both layouts of both versions, what it reads from them, and files
// that are not SD checkpoints.
TEST_F(SdUnetTest, PipelineLoadsBothLayoutsAndNamesWhatIsNot)
{
    if (!std::ifstream(kDir + "sd21.safetensors").good()) GTEST_SKIP() << "no tiny checkpoints";
    struct Case {
        std::string path;
        vki_sd_prediction asked, want;
        uint32_t version;
        bool folder;
    } cases[] = {
        {kDir + "sd15.safetensors", VKI_SD_PREDICTION_DEFAULT, VKI_SD_PREDICTION_EPS, 1, false},
        {kDir + "sd15", VKI_SD_PREDICTION_DEFAULT, VKI_SD_PREDICTION_EPS, 1, true},
        {kDir + "sd21", VKI_SD_PREDICTION_DEFAULT, VKI_SD_PREDICTION_V, 2, true}, // scheduler config
        {kDir + "sd21.safetensors", VKI_SD_PREDICTION_V, VKI_SD_PREDICTION_V, 2, false},
        {kDir + "sd21.safetensors", VKI_SD_PREDICTION_EPS, VKI_SD_PREDICTION_EPS, 2, false},
    };
    for (const Case &c : cases) {
        vki_sd_desc d = {};
        d.path = c.path.c_str();
        d.prediction = c.asked;
        vki_sd *sd = nullptr;
        char err[512] = "";
        ASSERT_EQ(vki_sd_load(dev, &d, &sd, err, sizeof err), VKI_OK) << c.path << ": " << err;
        const vki_sd_info *in = vki_sd_info_get(sd);
        EXPECT_EQ(in->version, c.version) << c.path;
        EXPECT_EQ(in->prediction, c.want) << c.path;
        EXPECT_EQ(in->diffusers, c.folder) << c.path;
        EXPECT_EQ(in->context_dim, in->text_width) << c.path;
        // No vocabulary: generation says so instead of guessing ids.
        std::vector<uint8_t> rgb(64 * 64 * 3);
        vki_sd_params p = {};
        p.width = p.height = 64;
        EXPECT_EQ(vki_sd_generate(sd, &p, rgb.data()), VKI_ERROR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(vki_sd_last_error(sd)).find("vocabulary"), std::string::npos);
        vki_sd_destroy(sd);
    }
    // A single SD 2.x file without a stated parameterisation: AUTOMATIC1111's test decides.
    vki_sd_desc d = {};
    std::string sd21 = kDir + "sd21.safetensors";
    d.path = sd21.c_str();
    vki_sd *sd = nullptr;
    char err[512] = "";
    ASSERT_EQ(vki_sd_load(dev, &d, &sd, err, sizeof err), VKI_OK) << err;
    EXPECT_TRUE(vki_sd_info_get(sd)->prediction == VKI_SD_PREDICTION_EPS ||
                vki_sd_info_get(sd)->prediction == VKI_SD_PREDICTION_V);
    vki_sd_destroy(sd);
    // Not checkpoints: a golden file, a folder without unet/, a missing file.
    std::string golden = kDir + "sd15_golden.safetensors", dir = kDir + "sd15/unet";
    const char *bad[] = {golden.c_str(), dir.c_str(), "/nonexistent/model.safetensors"};
    const char *why[] = {"not a single-file Stable Diffusion checkpoint", "unet/diffusion_pytorch_model",
                         "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        d.path = bad[i];
        EXPECT_NE(vki_sd_load(dev, &d, &sd, err, sizeof err), VKI_OK) << bad[i];
        EXPECT_EQ(sd, nullptr);
        EXPECT_NE(std::string(err).find(why[i]), std::string::npos) << bad[i] << ": " << err;
    }
    EXPECT_TRUE(log.validation.empty()) << log.validation.front();
}

} // namespace
