// Weight conversion at load (`--type f16|q8_0|q4_0|q4_1`, models/weights_convert.c): the
// conversion itself against gguf-py's quantisers and numpy's float16 rounding
// (tests/data/quant_encode_golden.bin from tools/gen_quant_encode_golden.py), the rule of which
// tensors convert to what, and the tiny SD models of tests/data/sd_tiny converted at load
// against the same diffusers goldens the unconverted models meet.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/test_support.h"
#include "sd_golden.h"

extern "C" {
#include "sd_internal.h"
}

namespace {

const std::string kDir = std::string(VKI_TEST_DATA) + "/sd_tiny/";

std::string Slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

uint16_t FloatToBf16Exact(float f) // for values bfloat16 holds exactly
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return uint16_t(u >> 16);
}

double Nmse(const std::vector<float> &a, const std::vector<float> &b)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        num += double(a[i] - b[i]) * (a[i] - b[i]);
        den += double(b[i]) * b[i];
    }
    return a.size() == b.size() && den > 0 ? num / den : 1e30;
}

// ---- The conversion against gguf-py ----------------------------------------------------------

struct EncodeGolden {
    uint32_t rows = 0, cols = 0;
    std::vector<float> x;
    std::vector<std::pair<vki_dtype, std::string>> outputs;
};

EncodeGolden ReadEncodeGolden()
{
    EncodeGolden g;
    std::string all = Slurp(VKI_TEST_DATA "/quant_encode_golden.bin");
    if (all.size() < 8) return g;
    memcpy(&g.rows, all.data(), 4);
    memcpy(&g.cols, all.data() + 4, 4);
    size_t at = 8, n = size_t(g.rows) * g.cols;
    if (all.size() < at + 4 * n) return g;
    g.x.resize(n);
    memcpy(g.x.data(), all.data() + at, 4 * n);
    at += 4 * n;
    while (at + 8 <= all.size()) {
        uint32_t type, bytes;
        memcpy(&type, all.data() + at, 4);
        memcpy(&bytes, all.data() + at + 4, 4);
        at += 8;
        if (at + bytes > all.size()) break;
        vki_dtype dt = type == 1 ? VKI_DTYPE_F16 : type == 2 ? VKI_DTYPE_Q4_0 : type == 3 ? VKI_DTYPE_Q4_1
                     : type == 8 ? VKI_DTYPE_Q8_0 : VKI_DTYPE_NONE;
        g.outputs.emplace_back(dt, all.substr(at, bytes));
        at += bytes;
    }
    return g;
}

TEST(WeightsConvert, MatchesGgufPyFromEveryFloatType)
{
    EncodeGolden g = ReadEncodeGolden();
    ASSERT_EQ(g.outputs.size(), 4u) << "missing or short " VKI_TEST_DATA "/quant_encode_golden.bin";
    const size_t n = g.x.size();
    // The same values stored three ways (the golden's values are exact in all three).
    std::vector<uint16_t> f16(n), bf16(n);
    for (size_t i = 0; i < n; i++) bf16[i] = FloatToBf16Exact(g.x[i]);
    for (const auto &[dt, bytes] : g.outputs)
        if (dt == VKI_DTYPE_F16) memcpy(f16.data(), bytes.data(), 2 * n);
    for (size_t i = 0; i < n; i++) ASSERT_EQ(HalfToFloat(f16[i]), g.x[i]) << "golden's f16 at " << i;
    struct Stored {
        vki_dtype dtype;
        const void *data;
        uint64_t size;
    } stored[] = {{VKI_DTYPE_F32, g.x.data(), 4 * n}, {VKI_DTYPE_F16, f16.data(), 2 * n},
                  {VKI_DTYPE_BF16, bf16.data(), 2 * n}};
    for (const Stored &s : stored) {
        vki_source_tensor t = {};
        t.name = "w";
        t.dtype = s.dtype;
        t.type_name = vki_dtype_get(s.dtype)->name;
        t.n_dims = 2;
        t.ne[0] = g.cols;
        t.ne[1] = g.rows;
        t.ne[2] = t.ne[3] = 1;
        t.data = s.data;
        t.size = s.size;
        for (const auto &[dt, want] : g.outputs) {
            std::string got(want.size(), '\0');
            char err[256] = "";
            ASSERT_EQ(vki__weights_convert(&t, dt, got.data(), got.size(), err, sizeof err), VKI_OK) << err;
            // ggml's reference rounding exactly: every byte, scales included.
            for (size_t i = 0; i < want.size(); i++)
                ASSERT_EQ(uint8_t(got[i]), uint8_t(want[i]))
                    << vki_dtype_get(s.dtype)->name << " -> " << vki_dtype_get(dt)->name << " byte " << i;
            // A wrong output size is refused, not overrun.
            EXPECT_EQ(vki__weights_convert(&t, dt, got.data(), got.size() - 1, err, sizeof err),
                      VKI_ERROR_INVALID_ARGUMENT);
        }
    }
}

TEST(WeightsConvert, RefusesWhatItCannotConvert)
{
    std::vector<float> x(64, 1.0f);
    x[3] = 1e5f; // beyond f16
    vki_source_tensor t = {};
    t.name = "big";
    t.dtype = VKI_DTYPE_F32;
    t.n_dims = 2;
    t.ne[0] = 32;
    t.ne[1] = 2;
    t.ne[2] = t.ne[3] = 1;
    t.data = x.data();
    t.size = 4 * x.size();
    std::vector<uint8_t> out(4 * 34);
    char err[256] = "";
    EXPECT_EQ(vki__weights_convert(&t, VKI_DTYPE_F16, out.data(), 128, err, sizeof err), VKI_ERROR_UNSUPPORTED);
    EXPECT_NE(std::string(err).find("big"), std::string::npos) << err;
    EXPECT_EQ(vki__weights_convert(&t, VKI_DTYPE_Q8_0, out.data(), 68, err, sizeof err), VKI_OK); // q8_0 holds it
    t.size = 4 * x.size() - 4; // a source whose size disagrees with its shape
    EXPECT_EQ(vki__weights_convert(&t, VKI_DTYPE_Q8_0, out.data(), 68, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    t.size = 4 * x.size();
    t.ne[0] = 16; // rows of half a block: not whole blocks in all (64 elements are, by chance)
    t.ne[1] = 4;
    EXPECT_EQ(vki__weights_convert(&t, VKI_DTYPE_Q5_0, out.data(), 88, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    t.dtype = VKI_DTYPE_Q8_0; // a quantised source is never requantised
    EXPECT_EQ(vki__weights_convert(&t, VKI_DTYPE_Q4_0, out.data(), 36, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
}

TEST(WeightsConvert, TheRuleOfWhatConvertsToWhat)
{
    auto T = [](vki_dtype dt, uint32_t n_dims, int64_t ne0, int64_t ne1, int64_t ne2 = 1, int64_t ne3 = 1) {
        vki_source_tensor t = {};
        t.dtype = dt;
        t.n_dims = n_dims;
        t.ne[0] = ne0;
        t.ne[1] = ne1;
        t.ne[2] = ne2;
        t.ne[3] = ne3;
        return t;
    };
    struct Case {
        vki_source_tensor t;
        vki_dtype to;
        bool linear;
        vki_dtype want;
        const char *what;
    } cases[] = {
        {T(VKI_DTYPE_F32, 2, 320, 320), VKI_DTYPE_NONE, true, VKI_DTYPE_F32, "no conversion"},
        {T(VKI_DTYPE_F32, 2, 320, 320), VKI_DTYPE_F16, true, VKI_DTYPE_F16, "f16: a linear weight"},
        {T(VKI_DTYPE_BF16, 4, 3, 3, 4, 320), VKI_DTYPE_F16, false, VKI_DTYPE_F16, "f16: a bf16 conv kernel"},
        {T(VKI_DTYPE_F32, 1, 320, 1), VKI_DTYPE_F16, false, VKI_DTYPE_F32, "f16: a bias stays"},
        {T(VKI_DTYPE_F16, 2, 320, 1280), VKI_DTYPE_Q8_0, true, VKI_DTYPE_Q8_0, "q8_0: linear"},
        {T(VKI_DTYPE_BF16, 2, 320, 1280), VKI_DTYPE_Q4_1, true, VKI_DTYPE_Q4_1, "q4_1: bf16 linear"},
        {T(VKI_DTYPE_F32, 2, 320, 1280), VKI_DTYPE_Q4_0, false, VKI_DTYPE_F16, "q4_0: an embedding is f16"},
        {T(VKI_DTYPE_F32, 2, 40, 64), VKI_DTYPE_Q4_0, true, VKI_DTYPE_F16, "q4_0: rows not whole blocks"},
        {T(VKI_DTYPE_F16, 4, 1, 1, 320, 320), VKI_DTYPE_Q8_0, true, VKI_DTYPE_F16, "q8_0: a 1x1 conv is f16"},
        {T(VKI_DTYPE_F32, 4, 3, 3, 320, 320), VKI_DTYPE_Q8_0, false, VKI_DTYPE_F16, "q8_0: a conv kernel is f16"},
        {T(VKI_DTYPE_F16, 1, 320, 1), VKI_DTYPE_Q4_0, false, VKI_DTYPE_F16, "q4_0: an f16 norm stays"},
        {T(VKI_DTYPE_Q8_0, 2, 320, 320), VKI_DTYPE_Q4_0, true, VKI_DTYPE_Q8_0, "q4_0: a q8_0 tensor stays"},
        {T(VKI_DTYPE_Q4_K, 2, 256, 320), VKI_DTYPE_F16, true, VKI_DTYPE_Q4_K, "f16: a q4_k tensor stays"},
        {T(VKI_DTYPE_I32, 2, 32, 32), VKI_DTYPE_F16, false, VKI_DTYPE_I32, "f16: integers stay"},
    };
    for (const Case &c : cases) EXPECT_EQ(vki__weights_convert_dtype(&c.t, c.to, c.linear), c.want) << c.what;
    EXPECT_TRUE(vki__weights_convert_target_ok(VKI_DTYPE_NONE));
    EXPECT_FALSE(vki__weights_convert_target_ok(VKI_DTYPE_Q5_0));
    EXPECT_FALSE(vki__weights_convert_target_ok(VKI_DTYPE_F32));
    vki_dtype dt = VKI_DTYPE_NONE;
    const char *names[] = {"f16", "q8_0", "q4_0", "q4_1"};
    const vki_dtype types[] = {VKI_DTYPE_F16, VKI_DTYPE_Q8_0, VKI_DTYPE_Q4_0, VKI_DTYPE_Q4_1};
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(vki_sd_weight_type_parse(names[i], &dt), VKI_OK) << names[i];
        EXPECT_EQ(dt, types[i]);
    }
    for (const char *bad : {"q5_0", "F16", "f32", "", "q8_0 "})
        EXPECT_EQ(vki_sd_weight_type_parse(bad, &dt), VKI_ERROR_INVALID_ARGUMENT) << bad;
}

// ---- The tiny SD models converted at load ----------------------------------------------------

// A safetensors file's tensors with every F16 one rewritten as F32 (exactly: f16 -> f32 is
// exact), the rest kept: the F32 checkpoint that `--type f16` must bring back to the F16 one.
std::string ToF32(const std::string &path)
{
    vki_safetensors *st = nullptr;
    char err[256] = "";
    if (vki_safetensors_open(path.c_str(), nullptr, &st, err, sizeof err) != VKI_OK) return "";
    std::string header = "{", data;
    for (uint64_t i = 0; i < vki_safetensors_tensor_count(st); i++) {
        vki_safetensors_tensor t;
        if (vki_safetensors_tensor_at(st, i, &t) != VKI_OK) continue;
        std::string bytes((const char *)t.data, t.size);
        const char *type = t.dtype == VKI_DTYPE_F32 ? "F32" : t.dtype == VKI_DTYPE_I32 ? "I32" : "F16";
        if (t.dtype == VKI_DTYPE_F16) {
            bytes.assign(t.size * 2, '\0');
            for (uint64_t k = 0; k < t.size / 2; k++) {
                uint16_t h;
                memcpy(&h, (const char *)t.data + 2 * k, 2);
                float f = HalfToFloat(h);
                memcpy(&bytes[4 * k], &f, 4);
            }
            type = "F32";
        } else if (t.dtype != VKI_DTYPE_F32 && t.dtype != VKI_DTYPE_I32) {
            continue; // int64 position ids and the like: not read
        }
        std::string shape;
        for (int d = int(t.n_dims) - 1; d >= 0; d--) shape += std::to_string(t.ne[d]) + (d ? "," : "");
        size_t begin = data.size();
        data += bytes;
        header += std::string(header.size() > 1 ? "," : "") + "\"" + t.name + "\":{\"dtype\":\"" + type +
                  "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(begin) + "," +
                  std::to_string(data.size()) + "]}";
    }
    vki_safetensors_close(st);
    header += "}";
    while (header.size() % 8) header += ' ';
    uint64_t n = header.size();
    return std::string((const char *)&n, 8) + header + data;
}

using Golden = SdGolden; // sd_golden.h

class SdConvertTest : public VulkanTest {
  protected:
    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
    }

    struct Run {
        std::vector<float> out;
        uint64_t bytes = 0;
    };

    // One U-Net evaluation of the golden's inputs from checkpoint bytes `file` (single-file
    // layout) with weights converted to `type`.
    Run Unet(const std::string &file, vki_dtype type, Golden &g)
    {
        Run r;
        vki_safetensors *st = nullptr;
        char err[512] = "";
        EXPECT_EQ(vki_safetensors_open_memory(file.data(), file.size(), nullptr, &st, err, sizeof err), VKI_OK) << err;
        if (!st) return r;
        vki_weight_source source = vki_weight_source_safetensors(st);
        vki_unet_desc d = {};
        d.source = &source;
        d.prefix = "model.diffusion_model.";
        d.device = dev;
        d.weight_type = type;
        vki_unet *u = nullptr;
        EXPECT_EQ(vki_unet_load(&d, &u, err, sizeof err), VKI_OK) << err;
        std::vector<float> x = g.f32("unet.x"), t = g.f32("unet.t"), ctx = g.f32("unet.ctx");
        r.out.resize(x.size());
        if (u)
            EXPECT_EQ(vki_unet_eval(u, 8, 8, uint32_t(t.size()), 77, x.data(), t.data(), ctx.data(), r.out.data()),
                      VKI_OK)
                << vki_unet_last_error(u);
        r.bytes = vki_unet_weight_bytes(u);
        vki_unet_destroy(u);
        vki_safetensors_close(st);
        return r;
    }

    // The text encoder's hidden states of the golden's first id row.
    Run Text(const std::string &file, vki_dtype type, Golden &g, const std::string &model)
    {
        Run r;
        vki_safetensors *st = nullptr;
        vki_renamed_source *renamed = nullptr;
        char err[512] = "";
        EXPECT_EQ(vki_safetensors_open_memory(file.data(), file.size(), nullptr, &st, err, sizeof err), VKI_OK) << err;
        if (!st) return r;
        vki_weight_source source = vki_weight_source_safetensors(st);
        vki_clip_text_desc d = {};
        d.prefix = "cond_stage_model.transformer.text_model.";
        d.act = VKI_ACT_QUICK_GELU;
        if (model == "sd21") { // OpenCLIP, penultimate layer
            EXPECT_EQ(vki_renamed_source_create(&source, VKI_SD_NAMES_OPENCLIP, "cond_stage_model.model.", nullptr,
                                                &renamed, err, sizeof err),
                      VKI_OK);
            source = vki_renamed_source_get(renamed);
            d.prefix = "text_model.";
            d.act = VKI_ACT_GELU;
            d.clip_skip = 2;
        }
        d.weight_type = type;
        vki_clip_text *te = nullptr;
        EXPECT_EQ(vki__clip_text_load_source(dev, &source, &d, &te, err, sizeof err), VKI_OK) << err;
        std::vector<int32_t> ids = g.i32("text.ids");
        if (te && ids.size() >= 77) {
            r.out.resize(77 * vki_clip_text_info_get(te)->width);
            EXPECT_EQ(vki_clip_text_encode(te, ids.data(), r.out.data()), VKI_OK);
        }
        r.bytes = vki__clip_text_weight_bytes(te);
        vki_clip_text_destroy(te);
        vki_renamed_source_destroy(renamed);
        vki_safetensors_close(st);
        return r;
    }

    void RunModel(const std::string &model)
    {
        if (!std::ifstream(kDir + model + "_golden.safetensors").good()) GTEST_SKIP() << "no goldens";
        std::string f16 = Slurp(kDir + model + ".safetensors"), f32 = ToF32(kDir + model + ".safetensors");
        ASSERT_GT(f32.size(), f16.size());
        Golden g(kDir + model + "_golden.safetensors");
        std::vector<float> want = g.f32("unet.out"), text_want = g.f32("text.hidden");
        Run stored = Unet(f16, VKI_DTYPE_NONE, g), wide = Unet(f32, VKI_DTYPE_NONE, g);
        Run halved = Unet(f32, VKI_DTYPE_F16, g);
        // The F32 checkpoint converted to F16 is the F16 checkpoint, byte for byte on the device:
        // the same output exactly, and half the F32 one's weights (biases and norms stay F32).
        ASSERT_EQ(halved.out.size(), stored.out.size());
        EXPECT_EQ(memcmp(halved.out.data(), stored.out.data(), 4 * stored.out.size()), 0) << model;
        EXPECT_LT(Nmse(halved.out, want), 1e-8) << model; // the unconverted models' bound
        EXPECT_GT(wide.bytes, halved.bytes * 19 / 10) << model;
        EXPECT_LT(halved.bytes, stored.bytes * 11 / 10) << model;
        RecordProperty("bytes_f32", std::to_string(wide.bytes));
        RecordProperty("bytes_f16", std::to_string(halved.bytes));
        /* Quantised linear weights, nmse against diffusers, measured on lavapipe (tiny SD 1.x /
         * SD 2.x):
         *            U-Net              text encoder
         *   q8_0     1.4e-5 / 2.5e-5    1.5e-4 / 1.5e-4
         *   q4_0     1.1e-3 / 7.1e-3    4.1e-2 / 4.5e-2
         *   q4_1     9.0e-4 / 6.2e-3    3.0e-2 / 5.1e-2
         * Q8_0's error is its rounding (1/254 of a block's largest weight, relative ~1e-5 squared
         * per product); Q4's is 16x coarser per weight, ~250x in nmse. The tiny text encoders
         * (three narrow layers, random weights of one scale, no trained outliers to keep) read
         * every token through every quantised product and show the most. The error is
         * deterministic (the quantised bytes are gguf-py's on every device, above); devices
         * differ only in summation order (~1e-10), so the bounds are 3-8x the largest measured:
         * q8_0 2e-4 (U-Net) and 1e-3 (text), q4 0.03 and 0.15, far below a broken conversion (a
         * wrong block layout, scale or nibble order gives nmse ~1 and more); the floors show the
         * quantised weights were the ones used. */
        struct Q {
            vki_dtype type;
            double max_nmse, max_text_nmse;
        } qs[] = {{VKI_DTYPE_Q8_0, 2e-4, 1e-3}, {VKI_DTYPE_Q4_0, 0.03, 0.15}, {VKI_DTYPE_Q4_1, 0.03, 0.15}};
        for (const Q &q : qs) {
            // SD 2.x: Q8_0 only. Q4_0 and Q4_1 convert by the same rule and code (SD 1.x runs
            // them), and each is a U-Net's worth of first compiles on lavapipe (minutes of CI).
            if (model == "sd21" && q.type != VKI_DTYPE_Q8_0) continue;
            const char *name = vki_dtype_get(q.type)->name;
            // From the F16 file (F32 -> quantised is the same bytes: the golden test above).
            Run r = Unet(f16, q.type, g);
            double e = Nmse(r.out, want);
            RecordProperty(std::string("unet_nmse_") + name, std::to_string(e));
            EXPECT_LT(e, q.max_nmse) << model << " " << name;
            EXPECT_GT(e, 1e-9) << model << " " << name;
            EXPECT_LT(r.bytes, stored.bytes) << model << " " << name;
            Run t = Text(f16, q.type, g, model);
            e = Nmse(t.out, std::vector<float>(text_want.begin(), text_want.begin() + t.out.size()));
            RecordProperty(std::string("text_nmse_") + name, std::to_string(e));
            EXPECT_LT(e, q.max_text_nmse) << model << " text " << name;
            EXPECT_GT(e, 1e-12) << model << " text " << name;
        }
        EXPECT_TRUE(log.validation.empty()) << log.validation.front();
    }
};

TEST_F(SdConvertTest, Sd15UnetAndTextPerTypeAgainstDiffusers) { RunModel("sd15"); }
TEST_F(SdConvertTest, Sd21UnetAndTextPerTypeAgainstDiffusers) { RunModel("sd21"); }

// The pipeline: --type reaches all three models, the weight bytes are reported after
// conversion, and a bad type is refused.
TEST_F(SdConvertTest, PipelineReportsConvertedWeightBytes)
{
    if (!std::ifstream(kDir + "sd15.safetensors").good()) GTEST_SKIP() << "no tiny checkpoint";
    std::string f32 = ToF32(kDir + "sd15.safetensors");
    uint64_t bytes[5] = {};
    const vki_dtype types[5] = {VKI_DTYPE_NONE, VKI_DTYPE_F16, VKI_DTYPE_Q8_0, VKI_DTYPE_Q4_1, VKI_DTYPE_Q4_0};
    for (int i = 0; i < 5; i++) {
        vki_sd_desc d = {};
        d.data = f32.data();
        d.size = f32.size();
        d.weight_type = types[i];
        vki_sd *sd = nullptr;
        char err[512] = "";
        ASSERT_EQ(vki_sd_load(dev, &d, &sd, err, sizeof err), VKI_OK) << err;
        bytes[i] = vki_sd_info_get(sd)->weight_bytes;
        EXPECT_EQ(vki_sd_info_get(sd)->weight_type, types[i]);
        vki_sd_destroy(sd);
        RecordProperty(std::string("bytes_") + (i ? vki_dtype_get(types[i])->name : "stored"), std::to_string(bytes[i]));
    }
    EXPECT_GT(bytes[0], bytes[1] * 19 / 10); // the F32 file halves (all three models)
    // All three models are counted, the U-Net (uploaded at load) included.
    vki_safetensors *st = nullptr;
    char why[256] = "";
    ASSERT_EQ(vki_safetensors_open_memory(f32.data(), f32.size(), nullptr, &st, why, sizeof why), VKI_OK) << why;
    vki_weight_source source = vki_weight_source_safetensors(st);
    vki_unet_desc ud = {};
    ud.source = &source;
    ud.prefix = "model.diffusion_model.";
    ud.device = dev;
    ud.weight_type = VKI_DTYPE_F16;
    vki_unet *u = nullptr;
    ASSERT_EQ(vki_unet_load(&ud, &u, why, sizeof why), VKI_OK) << why;
    uint64_t unet = vki_unet_weight_bytes(u);
    EXPECT_GT(unet, bytes[1] / 2);
    EXPECT_LT(unet, bytes[1]);
    vki_unet_destroy(u);
    vki_safetensors_close(st);
    EXPECT_LT(bytes[2], bytes[1]);
    EXPECT_LT(bytes[3], bytes[2]);
    EXPECT_LT(bytes[4], bytes[3]); // q4_0's block is 2 bytes smaller than q4_1's
    vki_sd_desc d = {};
    d.data = f32.data();
    d.size = f32.size();
    d.weight_type = VKI_DTYPE_Q5_0;
    vki_sd *sd = nullptr;
    char err[512] = "";
    EXPECT_EQ(vki_sd_load(dev, &d, &sd, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(sd, nullptr);
    EXPECT_TRUE(log.validation.empty()) << log.validation.front();
}

} // namespace
