// Diffusion samplers, sigma schedules and torch's CPU normal generator (models/sd_sampler.c)
// against torch and k-diffusion: tests/data/sd_sampler_golden.json, written by
// tools/gen_sd_sampler_golden.py (torch 2.15, k-diffusion 0.1.1.post1).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "vkinfer_models.h"

namespace {

cJSON *golden()
{
    static cJSON *root = [] {
        std::ifstream f(std::string(VKI_TEST_DATA) + "/sd_sampler_golden.json");
        std::stringstream ss;
        ss << f.rdbuf();
        return cJSON_Parse(ss.str().c_str());
    }();
    return root;
}

std::vector<double> numbers(const cJSON *arr)
{
    std::vector<double> v;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) v.push_back(e->valuedouble);
    return v;
}

// Distance in units in the last place of float b (a and b of the same sign, or both tiny).
double ulps(float a, float b)
{
    float step = std::nextafter(std::fabs(b), INFINITY) - std::fabs(b);
    return std::fabs(double(a) - double(b)) / double(step);
}

// The toy denoiser of the golden script, nonlinear in x and sigma. Counts its calls; fails with
// fail_status on call number fail_at (1-based; 0: never).
struct Toy {
    int calls = 0;
    int fail_at = 0;
    vki_status fail_status = VKI_ERROR_DEVICE_LOST;
    int progress_calls = 0;
    uint32_t last_step = 0;
};

vki_status toy_denoise(void *user, const float *x, float sigma, float *out)
{
    Toy *t = static_cast<Toy *>(user);
    if (++t->calls == t->fail_at) return t->fail_status;
    const double s = sigma;
    for (size_t i = 0; i < 64; i++)
        out[i] = float(x[i] / (1 + s * s) + 0.1 * std::tanh(double(x[i])) * s / (1 + s));
    return VKI_OK;
}

// ---- torch.randn ------------------------------------------------------------------------------

// Bit for bit (the goldens come from torch's AVX2 kernel; see the header). The small path goes
// through the C library's double log1p/sin/cos as torch's does, then rounds to float, so a
// C library that rounds a double differently could move a value by an ulp: hence 1 ulp there.
TEST(SdSamplerRandn, MatchesTorch)
{
    ASSERT_NE(golden(), nullptr) << "tests/data/sd_sampler_golden.json missing or malformed";
    const cJSON *c;
    double worst = 0;
    size_t exact = 0, total = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(golden(), "randn")) {
        uint64_t seed = std::strtoull(cJSON_GetObjectItem(c, "seed")->valuestring, nullptr, 10);
        std::vector<double> want = numbers(cJSON_GetObjectItem(c, "values"));
        ASSERT_EQ(want.size(), size_t(cJSON_GetObjectItem(c, "n")->valueint));
        vki_sd_rng rng;
        vki_sd_rng_seed(&rng, seed);
        EXPECT_EQ(rng.seed, seed);
        std::vector<float> got(want.size());
        vki_sd_randn(&rng, got.data(), got.size());
        for (size_t i = 0; i < want.size(); i++) {
            double u = ulps(got[i], float(want[i]));
            worst = std::max(worst, u);
            exact += got[i] == float(want[i]);
            total++;
            EXPECT_LE(u, want.size() < 16 ? 1.0 : 0.0)
                << "seed " << seed << " n " << want.size() << " [" << i << "]: " << got[i] << " vs torch "
                << want[i];
        }
    }
    printf("randn: %zu of %zu values bit-exact, worst %.0f ulp\n", exact, total, worst);
}

// One generator, calls of mixed sizes: the state (and the cached second normal of the small
// path) carries from call to call as in torch.
TEST(SdSamplerRandn, StreamMatchesTorch)
{
    ASSERT_NE(golden(), nullptr);
    const cJSON *s = cJSON_GetObjectItem(golden(), "randn_stream");
    vki_sd_rng rng;
    vki_sd_rng_seed(&rng, std::strtoull(cJSON_GetObjectItem(s, "seed")->valuestring, nullptr, 10));
    const cJSON *c;
    int call = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(s, "calls")) {
        std::vector<double> want = numbers(cJSON_GetObjectItem(c, "values"));
        std::vector<float> got(want.size());
        vki_sd_randn(&rng, got.data(), got.size());
        for (size_t i = 0; i < want.size(); i++)
            ASSERT_LE(ulps(got[i], float(want[i])), want.size() < 16 ? 1.0 : 0.0) << "call " << call << " [" << i << "]";
        call++;
    }
    EXPECT_EQ(call, 7);
}

// Whole SD latents (4x64x64, 4x96x96), bit for bit: the FNV-1a hash of the floats' bytes (little
// endian). The sum is checked first so that a near miss says how near.
TEST(SdSamplerRandn, WholeLatentsMatchTorch)
{
    ASSERT_NE(golden(), nullptr);
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(golden(), "randn_hashed")) {
        uint64_t seed = std::strtoull(cJSON_GetObjectItem(c, "seed")->valuestring, nullptr, 10);
        std::vector<float> v(size_t(cJSON_GetObjectItem(c, "n")->valueint));
        vki_sd_rng rng;
        vki_sd_rng_seed(&rng, seed);
        vki_sd_randn(&rng, v.data(), v.size());
        double sum = 0;
        uint64_t h = 0xcbf29ce484222325ull;
        for (float f : v) {
            sum += f;
            uint32_t bits;
            memcpy(&bits, &f, sizeof bits);
            for (int b = 0; b < 4; b++) h = (h ^ ((bits >> (8 * b)) & 0xffu)) * 0x100000001b3ull;
        }
        EXPECT_NEAR(sum, cJSON_GetObjectItem(c, "sum")->valuedouble, 1e-6) << "seed " << seed;
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        EXPECT_STREQ(hex, cJSON_GetObjectItem(c, "fnv1a64")->valuestring) << "seed " << seed;
        cases++;
    }
    EXPECT_EQ(cases, 2);
}

TEST(SdSamplerRandn, ReseedRestartsAndNullIsHarmless)
{
    vki_sd_rng a, b;
    vki_sd_rng_seed(&a, 5);
    float x[3], y[20], z[3];
    vki_sd_randn(&a, x, 3); // leaves a cached normal behind
    vki_sd_randn(&a, y, 20);
    vki_sd_rng_seed(&a, 5);
    vki_sd_rng_seed(&b, 5);
    EXPECT_EQ(0, memcmp(&a, &b, sizeof a)); // the cached normal is gone too
    vki_sd_randn(&a, z, 3);
    EXPECT_EQ(0, memcmp(x, z, sizeof x));
    vki_sd_randn(nullptr, z, 3);
    vki_sd_randn(&a, nullptr, 3);
    vki_sd_rng_seed(nullptr, 1);
}

// ---- Sigmas -----------------------------------------------------------------------------------

// k-diffusion computes the schedules in float32 (log-sigma interpolation, exp, pow); vkinfer in
// double rounded once. 4e-6 relative is a few float32 roundings of those steps; a wrong
// constant (the betas' ends, the rounding of alphas_cumprod, rho) moves sigmas by 1e-4 or more.
TEST(SdSamplerSigmas, MatchKDiffusion)
{
    ASSERT_NE(golden(), nullptr);
    const cJSON *sched;
    double worst = 0;
    cJSON_ArrayForEach(sched, cJSON_GetObjectItem(golden(), "sigmas")) {
        vki_sd_schedule s = VKI_SD_SCHEDULE_COUNT;
        ASSERT_EQ(vki_sd_schedule_parse(sched->string, &s), VKI_OK) << sched->string;
        const cJSON *c;
        cJSON_ArrayForEach(c, sched) {
            uint32_t steps = uint32_t(std::atoi(c->string));
            std::vector<double> want = numbers(c);
            ASSERT_EQ(want.size(), steps + 1);
            std::vector<float> got(steps + 1, -1.0f);
            ASSERT_EQ(vki_sd_sigmas(s, steps, got.data()), VKI_OK);
            EXPECT_EQ(got[steps], 0.0f);
            for (uint32_t i = 0; i < steps; i++) {
                double rel = std::fabs(got[i] - want[i]) / want[i];
                worst = std::max(worst, rel);
                EXPECT_LE(rel, 4e-6) << sched->string << " steps " << steps << " [" << i << "] " << got[i]
                                     << " vs " << want[i];
            }
        }
    }
    printf("sigmas: worst relative difference %.3g\n", worst);
}

TEST(SdSamplerSigmas, DefaultIsDiscreteAndBadArgumentsFail)
{
    float a[9], b[9];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DEFAULT, 8, a), VKI_OK);
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DISCRETE, 8, b), VKI_OK);
    EXPECT_EQ(0, memcmp(a, b, sizeof a));
    EXPECT_NEAR(a[0], 14.6146, 1e-3); // SD's sigma_max
    std::vector<float> big(1002);
    EXPECT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_KARRAS, 1000, big.data()), VKI_OK);
    EXPECT_NEAR(big[999], 0.0292, 1e-3); // SD's sigma_min
    EXPECT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_KARRAS, 0, big.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_KARRAS, 1001, big.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_COUNT, 8, a), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_KARRAS, 8, nullptr), VKI_ERROR_INVALID_ARGUMENT);
}

// k-diffusion's float32 interpolation weight is (low - log sigma) / (low - high), a difference
// of nearby log-sigmas (0.002 apart at the bottom of the table): float32's 2e-7 on each log
// becomes up to ~1e-4 in t. A timestep off by one, or interpolating sigma instead of its log,
// is off by 0.01 or more.
TEST(SdSamplerSigmas, SigmaToTMatchesKDiffusion)
{
    ASSERT_NE(golden(), nullptr);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(golden(), "sigma_to_t")) {
        float sigma = float(cJSON_GetArrayItem(p, 0)->valuedouble);
        double t = cJSON_GetArrayItem(p, 1)->valuedouble;
        EXPECT_NEAR(vki_sd_sigma_to_t(sigma), t, 1e-3) << "sigma " << sigma;
    }
    // The discrete schedule's sigmas map back onto its timesteps.
    float s[31];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DISCRETE, 30, s), VKI_OK);
    for (int i = 0; i < 30; i++) EXPECT_NEAR(vki_sd_sigma_to_t(s[i]), 999.0 * (29 - i) / 29.0, 2e-3) << i;
}

// ---- Samplers against k-diffusion ---------------------------------------------------------------

// Each sampler, 8 steps on the toy denoiser, noise from the shared generator, against
// k-diffusion run in float64. The golden file stores how far torch's own float32 run of the
// same function lands from that (torch_f32_max_abs_err, 2e-7 .. 2e-6 at |x| ~ 2): the spread a
// correct float32 implementation shows. vkinfer keeps x in float32 (rounded once per update,
// like torch) but computes each update in double, so it must land within 4x that spread plus
// 1e-6 (a float32 ulp at |x| ~ 4 is 5e-7). A sampler that is wrong by one term — Heun as
// Euler, DPM++ 2M's second-order correction left out, a missing noise draw — is off by 1e-2 or
// more.
TEST(SdSamplerSample, MatchesKDiffusion)
{
    ASSERT_NE(golden(), nullptr);
    const cJSON *c;
    int runs = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(golden(), "samplers")) {
        const char *name = cJSON_GetObjectItem(c, "sampler")->valuestring;
        const char *sched = cJSON_GetObjectItem(c, "schedule")->valuestring;
        vki_sd_sampler sampler;
        ASSERT_EQ(vki_sd_sampler_parse(name, &sampler, nullptr), VKI_OK) << name;
        uint32_t steps = uint32_t(cJSON_GetObjectItem(c, "steps")->valueint);
        std::vector<double> sig = numbers(cJSON_GetObjectItem(c, "sigmas"));
        std::vector<double> want = numbers(cJSON_GetObjectItem(c, "x"));
        ASSERT_EQ(sig.size(), steps + 1);
        ASSERT_EQ(want.size(), 64u);
        std::vector<float> sigmas(sig.begin(), sig.end());
        vki_sd_rng rng;
        vki_sd_rng_seed(&rng, uint64_t(cJSON_GetObjectItem(c, "seed")->valueint));
        std::vector<float> x(64);
        vki_sd_randn(&rng, x.data(), x.size());
        for (float &v : x) v *= sigmas[0];
        Toy toy;
        vki_sd_sample_desc desc = {};
        desc.sampler = sampler;
        desc.sigmas = sigmas.data();
        desc.steps = steps;
        desc.n = 64;
        desc.denoise = toy_denoise;
        desc.user = &toy;
        desc.rng = &rng;
        ASSERT_EQ(vki_sd_sample(&desc, x.data()), VKI_OK) << name;
        double err = 0;
        for (size_t i = 0; i < 64; i++) err = std::max(err, std::fabs(x[i] - want[i]));
        double spread = cJSON_GetObjectItem(c, "torch_f32_max_abs_err")->valuedouble;
        double tol = 4 * spread + 1e-6;
        printf("%-9s %-12s max |vkinfer - k-diffusion f64| %.3g (torch f32: %.3g, tolerance %.3g)\n", name,
               sched, err, spread, tol);
        EXPECT_LE(err, tol) << name << " " << sched;
        runs++;
    }
    EXPECT_EQ(runs, 11);
}

// Denoiser calls and progress reports per sampler, 8 steps (the last one to sigma 0).
TEST(SdSamplerSample, CallsAndProgress)
{
    struct Case {
        vki_sd_sampler sampler;
        int calls;
    } cases[] = {{VKI_SD_SAMPLER_DEFAULT, 8}, {VKI_SD_SAMPLER_EULER, 8},      {VKI_SD_SAMPLER_EULER_A, 8},
                 {VKI_SD_SAMPLER_HEUN, 15},   {VKI_SD_SAMPLER_DPM2, 15},      {VKI_SD_SAMPLER_DPMPP_2M, 8},
                 {VKI_SD_SAMPLER_DPMPP_SDE, 15}, {VKI_SD_SAMPLER_DDIM, 8}, {VKI_SD_SAMPLER_LCM, 8}};
    float sigmas[9];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_KARRAS, 8, sigmas), VKI_OK);
    for (const Case &k : cases) {
        Toy toy;
        std::vector<uint32_t> seen;
        vki_sd_rng rng;
        vki_sd_rng_seed(&rng, 3);
        std::vector<float> x(64, 1.0f);
        vki_sd_sample_desc desc = {};
        desc.sampler = k.sampler;
        desc.sigmas = sigmas;
        desc.steps = 8;
        desc.n = 64;
        desc.denoise = toy_denoise;
        desc.user = &toy;
        desc.rng = &rng;
        desc.progress = [](void *user, uint32_t step, uint32_t steps) {
            Toy *t = static_cast<Toy *>(user);
            EXPECT_EQ(steps, 8u);
            EXPECT_EQ(step, t->last_step + 1);
            t->last_step = step;
            t->progress_calls++;
        };
        ASSERT_EQ(vki_sd_sample(&desc, x.data()), VKI_OK) << vki_sd_sampler_name(k.sampler);
        EXPECT_EQ(toy.calls, k.calls) << vki_sd_sampler_name(k.sampler);
        EXPECT_EQ(toy.progress_calls, 8) << vki_sd_sampler_name(k.sampler);
        for (float v : x) ASSERT_TRUE(std::isfinite(v));
    }
}

// The progress callback raises the flag after step 3; the sampler reads it before step 4.
TEST(SdSamplerSample, AbortStopsBeforeTheNextStep)
{
    float sigmas[9];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DISCRETE, 8, sigmas), VKI_OK);
    struct State {
        Toy toy;
        volatile int flag = 0;
    } state;
    std::vector<float> x(64, 0.5f);
    vki_sd_sample_desc desc = {};
    desc.sampler = VKI_SD_SAMPLER_HEUN;
    desc.sigmas = sigmas;
    desc.steps = 8;
    desc.n = 64;
    desc.denoise = [](void *user, const float *xx, float sigma, float *out) {
        return toy_denoise(&static_cast<State *>(user)->toy, xx, sigma, out);
    };
    desc.user = &state;
    desc.progress = [](void *user, uint32_t step, uint32_t) {
        State *s = static_cast<State *>(user);
        s->toy.progress_calls++;
        if (step == 3) s->flag = 1;
    };
    desc.abort_flag = &state.flag;
    EXPECT_EQ(vki_sd_sample(&desc, x.data()), VKI_ERROR_CANCELLED);
    EXPECT_EQ(state.toy.progress_calls, 3);
    EXPECT_EQ(state.toy.calls, 6); // three Heun steps, two calls each
    for (float v : x) ASSERT_TRUE(std::isfinite(v));

    state.toy.calls = 0; // the flag still up: nothing runs
    EXPECT_EQ(vki_sd_sample(&desc, x.data()), VKI_ERROR_CANCELLED);
    EXPECT_EQ(state.toy.calls, 0);
}

TEST(SdSamplerSample, DenoiserErrorPropagates)
{
    float sigmas[9];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DISCRETE, 8, sigmas), VKI_OK);
    for (int fail_at : {1, 2, 5}) { // DPM++ SDE: the first call, the midpoint's, a later one
        Toy toy;
        toy.fail_at = fail_at;
        toy.fail_status = VKI_ERROR_OUT_OF_DEVICE_MEMORY;
        vki_sd_rng rng;
        vki_sd_rng_seed(&rng, 1);
        std::vector<float> x(64, 1.0f);
        vki_sd_sample_desc desc = {};
        desc.sampler = VKI_SD_SAMPLER_DPMPP_SDE;
        desc.sigmas = sigmas;
        desc.steps = 8;
        desc.n = 64;
        desc.denoise = toy_denoise;
        desc.user = &toy;
        desc.rng = &rng;
        EXPECT_EQ(vki_sd_sample(&desc, x.data()), VKI_ERROR_OUT_OF_DEVICE_MEMORY) << fail_at;
        EXPECT_EQ(toy.calls, fail_at);
    }
}

TEST(SdSamplerSample, BadDescriptionsAreRefused)
{
    float sigmas[9];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DISCRETE, 8, sigmas), VKI_OK);
    Toy toy;
    vki_sd_rng rng;
    vki_sd_rng_seed(&rng, 1);
    std::vector<float> x(64, 1.0f);
    vki_sd_sample_desc good = {};
    good.sampler = VKI_SD_SAMPLER_EULER_A;
    good.sigmas = sigmas;
    good.steps = 8;
    good.n = 64;
    good.denoise = toy_denoise;
    good.user = &toy;
    good.rng = &rng;

    EXPECT_EQ(vki_sd_sample(nullptr, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_sd_sample(&good, nullptr), VKI_ERROR_INVALID_ARGUMENT);
    vki_sd_sample_desc d = good;
    d.denoise = nullptr;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.steps = 0;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.sigmas = nullptr;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.n = 0;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.rng = nullptr; // Euler a draws noise
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.eta = -1.0f;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.eta = NAN;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    d = good, d.sampler = VKI_SD_SAMPLER_COUNT;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    float bad[9];
    memcpy(bad, sigmas, sizeof bad);
    bad[3] = NAN;
    d = good, d.sigmas = bad;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    bad[3] = 0.0f; // a step from sigma 0 would divide by it
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    memcpy(bad, sigmas, sizeof bad);
    bad[8] = -1.0f;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    bad[8] = INFINITY;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(toy.calls, 0);
    for (float v : x) EXPECT_EQ(v, 1.0f);

    d = good, d.sampler = VKI_SD_SAMPLER_DPMPP_2M, d.rng = nullptr; // deterministic: no rng needed
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_OK);
    // An img2img tail: the last 3 sigmas of the schedule.
    d = good, d.sigmas = sigmas + 5, d.steps = 3;
    toy.calls = 0;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_OK);
    EXPECT_EQ(toy.calls, 3);
}

struct CountingAllocator {
    int allocs = 0, frees = 0;
    size_t bytes = 0;
    bool fail = false;
};

TEST(SdSamplerSample, ScratchThroughTheAllocator)
{
    CountingAllocator ca;
    vki_allocator a = {};
    a.alloc = [](void *user, size_t size) -> void * {
        CountingAllocator *c = static_cast<CountingAllocator *>(user);
        if (c->fail) return nullptr;
        c->allocs++;
        c->bytes += size;
        return malloc(size);
    };
    a.free = [](void *user, void *p) {
        static_cast<CountingAllocator *>(user)->frees++;
        free(p);
    };
    a.user = &ca;
    float sigmas[9];
    ASSERT_EQ(vki_sd_sigmas(VKI_SD_SCHEDULE_DISCRETE, 8, sigmas), VKI_OK);
    Toy toy;
    std::vector<float> x(64, 1.0f);
    vki_sd_sample_desc d = {};
    d.sampler = VKI_SD_SAMPLER_HEUN;
    d.sigmas = sigmas;
    d.steps = 8;
    d.n = 64;
    d.denoise = toy_denoise;
    d.user = &toy;
    d.allocator = &a;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_OK);
    EXPECT_GE(ca.allocs, 1);
    EXPECT_EQ(ca.allocs, ca.frees);
    EXPECT_LE(ca.bytes, 4 * 64 * sizeof(float));
    toy.fail_at = 3; // freed on the error path too
    toy.calls = 0;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_DEVICE_LOST);
    EXPECT_EQ(ca.allocs, ca.frees);
    ca.fail = true;
    toy.calls = 0;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_OUT_OF_HOST_MEMORY);
    EXPECT_EQ(toy.calls, 0);
    // A latent so large that its scratch size overflows size_t.
    d.n = SIZE_MAX / 8;
    ca.fail = false;
    EXPECT_EQ(vki_sd_sample(&d, x.data()), VKI_ERROR_OUT_OF_HOST_MEMORY);
    EXPECT_EQ(ca.allocs, ca.frees);
}

// ---- Names --------------------------------------------------------------------------------------

TEST(SdSamplerNames, ParseA1111AndSdCppNames)
{
    struct Case {
        const char *name;
        vki_sd_sampler sampler;
        vki_sd_schedule schedule; // COUNT: left alone
    } cases[] = {
        {"Euler", VKI_SD_SAMPLER_EULER, VKI_SD_SCHEDULE_COUNT},
        {"Euler a", VKI_SD_SAMPLER_EULER_A, VKI_SD_SCHEDULE_COUNT},
        {"Heun", VKI_SD_SAMPLER_HEUN, VKI_SD_SCHEDULE_COUNT},
        {"DPM2", VKI_SD_SAMPLER_DPM2, VKI_SD_SCHEDULE_COUNT},
        {"DPM++ 2M", VKI_SD_SAMPLER_DPMPP_2M, VKI_SD_SCHEDULE_COUNT},
        {"DPM++ 2M Karras", VKI_SD_SAMPLER_DPMPP_2M, VKI_SD_SCHEDULE_KARRAS},
        {"DPM++ SDE", VKI_SD_SAMPLER_DPMPP_SDE, VKI_SD_SCHEDULE_COUNT},
        {"DPM++ SDE Karras", VKI_SD_SAMPLER_DPMPP_SDE, VKI_SD_SCHEDULE_KARRAS},
        {"DDIM", VKI_SD_SAMPLER_DDIM, VKI_SD_SCHEDULE_COUNT},
        {"LCM", VKI_SD_SAMPLER_LCM, VKI_SD_SCHEDULE_COUNT},
        {"euler", VKI_SD_SAMPLER_EULER, VKI_SD_SCHEDULE_COUNT},
        {"euler_a", VKI_SD_SAMPLER_EULER_A, VKI_SD_SCHEDULE_COUNT},
        {"heun", VKI_SD_SAMPLER_HEUN, VKI_SD_SCHEDULE_COUNT},
        {"dpm2", VKI_SD_SAMPLER_DPM2, VKI_SD_SCHEDULE_COUNT},
        {"dpm++2m", VKI_SD_SAMPLER_DPMPP_2M, VKI_SD_SCHEDULE_COUNT},
        {"dpm++sde", VKI_SD_SAMPLER_DPMPP_SDE, VKI_SD_SCHEDULE_COUNT},
        {"ddim", VKI_SD_SAMPLER_DDIM, VKI_SD_SCHEDULE_COUNT},
        {"ddim_trailing", VKI_SD_SAMPLER_DDIM, VKI_SD_SCHEDULE_COUNT},
        {"lcm", VKI_SD_SAMPLER_LCM, VKI_SD_SCHEDULE_COUNT},
        {"EULER_A", VKI_SD_SAMPLER_EULER_A, VKI_SD_SCHEDULE_COUNT},
        {"dpm++ 2m karras", VKI_SD_SAMPLER_DPMPP_2M, VKI_SD_SCHEDULE_KARRAS},
        {"Euler a Exponential", VKI_SD_SAMPLER_EULER_A, VKI_SD_SCHEDULE_EXPONENTIAL},
    };
    for (const Case &c : cases) {
        vki_sd_sampler s = VKI_SD_SAMPLER_COUNT;
        vki_sd_schedule sched = VKI_SD_SCHEDULE_COUNT;
        ASSERT_EQ(vki_sd_sampler_parse(c.name, &s, &sched), VKI_OK) << c.name;
        EXPECT_EQ(s, c.sampler) << c.name;
        EXPECT_EQ(sched, c.schedule) << c.name;
        // The schedule output may be NULL.
        EXPECT_EQ(vki_sd_sampler_parse(c.name, &s, nullptr), VKI_OK) << c.name;
    }
    for (const char *bad : {"", "eulerx", "Euler  a", "DPM++ 2M Bogus", "Karras", "DPM++ 2M default",
                            "dpm++2m karras karras", "lcm "}) {
        vki_sd_sampler s = VKI_SD_SAMPLER_COUNT;
        vki_sd_schedule sched = VKI_SD_SCHEDULE_COUNT;
        EXPECT_EQ(vki_sd_sampler_parse(bad, &s, &sched), VKI_ERROR_INVALID_ARGUMENT) << "'" << bad << "'";
        EXPECT_EQ(s, VKI_SD_SAMPLER_COUNT) << bad;
        EXPECT_EQ(sched, VKI_SD_SCHEDULE_COUNT) << bad;
    }
    vki_sd_sampler s;
    EXPECT_EQ(vki_sd_sampler_parse(nullptr, &s, nullptr), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_sd_sampler_parse("euler", nullptr, nullptr), VKI_ERROR_INVALID_ARGUMENT);
}

TEST(SdSamplerNames, DisplayNamesRoundTrip)
{
    EXPECT_STREQ(vki_sd_sampler_name(VKI_SD_SAMPLER_DEFAULT), "Euler a");
    EXPECT_STREQ(vki_sd_sampler_name(VKI_SD_SAMPLER_DPMPP_2M), "DPM++ 2M");
    EXPECT_STREQ(vki_sd_sampler_name(VKI_SD_SAMPLER_COUNT), "unknown");
    for (int i = 1; i < VKI_SD_SAMPLER_COUNT; i++) {
        vki_sd_sampler s = VKI_SD_SAMPLER_COUNT;
        ASSERT_EQ(vki_sd_sampler_parse(vki_sd_sampler_name(vki_sd_sampler(i)), &s, nullptr), VKI_OK) << i;
        EXPECT_EQ(int(s), i);
    }
    for (int i = 0; i < VKI_SD_SCHEDULE_COUNT; i++) {
        vki_sd_schedule s = VKI_SD_SCHEDULE_COUNT;
        ASSERT_EQ(vki_sd_schedule_parse(vki_sd_schedule_name(vki_sd_schedule(i)), &s), VKI_OK) << i;
        EXPECT_EQ(int(s), i == VKI_SD_SCHEDULE_DEFAULT ? VKI_SD_SCHEDULE_DISCRETE : i);
    }
    EXPECT_STREQ(vki_sd_schedule_name(VKI_SD_SCHEDULE_COUNT), "unknown");
    vki_sd_schedule s = VKI_SD_SCHEDULE_COUNT;
    EXPECT_EQ(vki_sd_schedule_parse("KARRAS", &s), VKI_OK);
    EXPECT_EQ(s, VKI_SD_SCHEDULE_KARRAS);
    EXPECT_EQ(vki_sd_schedule_parse("ays", &s), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_sd_schedule_parse(nullptr, &s), VKI_ERROR_INVALID_ARGUMENT);
}

} // namespace
