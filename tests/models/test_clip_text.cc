// The CLIP text encoder of SD 1.x on the device against a plain C++ forward pass written here
// from the architecture (token + position embeddings; pre-norm layers of causal multi-head
// attention with 64-wide heads and a quick-GELU MLP; a final layer norm), on a tiny random
// model in Hugging Face's CLIPTextModel layout saved as safetensors, some tensors in F16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_models.h"
}

namespace {

// f to f16, rounding to nearest even; values below f16's normal range flush to zero (the file
// and the reference both see the flushed value), and the test's values stay far below its top.
uint16_t ToHalf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    int e = int(exp) - 127 + 15;
    if (e <= 0) return uint16_t(sign);
    uint32_t m = man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (m & 1))) m++;
    if (m == 0x400) m = 0, e++;
    return uint16_t(sign | uint32_t(e) << 10 | m);
}

float FromHalf(uint16_t h)
{
    int e = (h >> 10) & 0x1f;
    float m = float(h & 0x3ff);
    float v = e ? std::ldexp(1024.0f + m, e - 25) : std::ldexp(m, -24);
    return h & 0x8000 ? -v : v;
}

struct TinyClip {
    uint32_t width = 128, layers = 2, ff = 256, vocab = 50, ctx = 77;
    std::string prefix = "cond_stage_model.transformer.text_model.";
    std::map<std::string, std::vector<float>> w;        // values as the file stores them
    std::map<std::string, std::vector<uint64_t>> shape; // PyTorch order
    std::map<std::string, bool> half;
    std::vector<std::string> order;

    void add(const std::string &name, std::vector<uint64_t> s, std::mt19937 &rng, float sd, float mean,
             bool f16 = false)
    {
        std::normal_distribution<float> d(mean, sd);
        uint64_t n = 1;
        for (uint64_t x : s) n *= x;
        std::vector<float> v(n);
        for (float &x : v) x = f16 ? FromHalf(ToHalf(d(rng))) : d(rng);
        w[name] = v;
        shape[name] = s;
        half[name] = f16;
        order.push_back(name);
    }

    void init(uint32_t seed)
    {
        std::mt19937 rng(seed);
        add("embeddings.token_embedding.weight", {vocab, width}, rng, 0.5f, 0);
        add("embeddings.position_embedding.weight", {ctx, width}, rng, 0.3f, 0, true);
        for (uint32_t l = 0; l < layers; l++) {
            std::string p = "encoder.layers." + std::to_string(l) + ".";
            add(p + "layer_norm1.weight", {width}, rng, 0.1f, 1);
            add(p + "layer_norm1.bias", {width}, rng, 0.1f, 0);
            for (const char *proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                add(p + "self_attn." + proj + ".weight", {width, width}, rng, 0.1f, 0, l == 1);
                add(p + "self_attn." + proj + ".bias", {width}, rng, 0.1f, 0, l == 1);
            }
            add(p + "layer_norm2.weight", {width}, rng, 0.1f, 1);
            add(p + "layer_norm2.bias", {width}, rng, 0.1f, 0);
            add(p + "mlp.fc1.weight", {ff, width}, rng, 0.1f, 0);
            add(p + "mlp.fc1.bias", {ff}, rng, 0.1f, 0);
            add(p + "mlp.fc2.weight", {width, ff}, rng, 0.06f, 0);
            add(p + "mlp.fc2.bias", {width}, rng, 0.1f, 0);
        }
        add("final_layer_norm.weight", {width}, rng, 0.1f, 1);
        add("final_layer_norm.bias", {width}, rng, 0.1f, 0);
    }

    // The safetensors file: a JSON header of dtype, shape and offsets, then the buffer.
    std::vector<uint8_t> file() const
    {
        std::string h = "{";
        std::vector<uint8_t> data;
        for (const auto &n : order) {
            size_t begin = data.size();
            for (float v : w.at(n)) {
                if (half.at(n)) {
                    uint16_t x = ToHalf(v);
                    data.insert(data.end(), (uint8_t *)&x, (uint8_t *)&x + 2);
                } else {
                    data.insert(data.end(), (uint8_t *)&v, (uint8_t *)&v + 4);
                }
            }
            std::string dims;
            for (uint64_t d : shape.at(n)) dims += (dims.empty() ? "" : ",") + std::to_string(d);
            h += (h.size() > 1 ? "," : "") + std::string("\"") + prefix + n + "\":{\"dtype\":\"" +
                 (half.at(n) ? "F16" : "F32") + "\",\"shape\":[" + dims + "],\"data_offsets\":[" +
                 std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
        }
        h += "}";
        std::vector<uint8_t> b(8);
        for (int i = 0; i < 8; i++) b[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
        b.insert(b.end(), h.begin(), h.end());
        b.insert(b.end(), data.begin(), data.end());
        return b;
    }

    // ---- The reference ----
    const std::vector<float> &W(const std::string &n) const { return w.at(n); }

    void layer_norm(std::vector<double> &x, const std::string &p) const // one row of width
    {
        double mean = 0, var = 0;
        for (double v : x) mean += v;
        mean /= width;
        for (double v : x) var += (v - mean) * (v - mean);
        var /= width;
        for (uint32_t i = 0; i < width; i++)
            x[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * W(p + ".weight")[i] + W(p + ".bias")[i];
    }

    std::vector<double> linear(const std::vector<double> &x, const std::string &p) const
    {
        const auto &m = W(p + ".weight"), &b = W(p + ".bias");
        size_t out = b.size(), in = x.size();
        std::vector<double> y(out);
        for (size_t o = 0; o < out; o++) {
            double s = b[o];
            for (size_t i = 0; i < in; i++) s += double(m[o * in + i]) * x[i];
            y[o] = s;
        }
        return y;
    }

    // Hidden states [ctx][width] of ids, through `run` layers.
    std::vector<std::vector<double>> forward(const std::vector<int32_t> &ids, uint32_t run) const
    {
        std::vector<std::vector<double>> x(ctx, std::vector<double>(width));
        for (uint32_t t = 0; t < ctx; t++)
            for (uint32_t i = 0; i < width; i++)
                x[t][i] = W("embeddings.token_embedding.weight")[ids[t] * width + i] +
                          W("embeddings.position_embedding.weight")[t * width + i];
        uint32_t heads = width / 64;
        for (uint32_t l = 0; l < run; l++) {
            std::string p = "encoder.layers." + std::to_string(l) + ".";
            std::vector<std::vector<double>> q(ctx), k(ctx), v(ctx);
            for (uint32_t t = 0; t < ctx; t++) {
                auto h = x[t];
                layer_norm(h, p + "layer_norm1");
                q[t] = linear(h, p + "self_attn.q_proj");
                k[t] = linear(h, p + "self_attn.k_proj");
                v[t] = linear(h, p + "self_attn.v_proj");
            }
            for (uint32_t t = 0; t < ctx; t++) {
                std::vector<double> a(width, 0.0);
                for (uint32_t hh = 0; hh < heads; hh++) {
                    std::vector<double> s(t + 1);
                    double mx = -1e300, sum = 0;
                    for (uint32_t j = 0; j <= t; j++) { // causal
                        double d = 0;
                        for (uint32_t e = 0; e < 64; e++) d += q[t][hh * 64 + e] * k[j][hh * 64 + e];
                        s[j] = d / 8.0;
                        mx = std::max(mx, s[j]);
                    }
                    for (double &e : s) sum += (e = std::exp(e - mx));
                    for (uint32_t j = 0; j <= t; j++)
                        for (uint32_t e = 0; e < 64; e++) a[hh * 64 + e] += s[j] / sum * v[j][hh * 64 + e];
                }
                auto o = linear(a, p + "self_attn.out_proj");
                for (uint32_t i = 0; i < width; i++) x[t][i] += o[i];
            }
            for (uint32_t t = 0; t < ctx; t++) {
                auto h = x[t];
                layer_norm(h, p + "layer_norm2");
                auto f = linear(h, p + "mlp.fc1");
                for (double &e : f) e = e / (1 + std::exp(-1.702 * e)); // quick GELU
                auto o = linear(f, p + "mlp.fc2");
                for (uint32_t i = 0; i < width; i++) x[t][i] += o[i];
            }
        }
        for (auto &row : x) layer_norm(row, "final_layer_norm");
        return x;
    }
};

class ClipTextTest : public VulkanTest {
  protected:
    TinyClip tc;
    std::vector<uint8_t> bytes;
    vki_safetensors *st = nullptr;
    vki_clip_text *te = nullptr;
    char err[512] = "";

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
        tc.init(3);
        bytes = tc.file();
        ASSERT_EQ(vki_safetensors_open_memory(bytes.data(), bytes.size(), nullptr, &st, err, sizeof err),
                  VKI_OK) << err;
    }
    void TearDown() override
    {
        vki_clip_text_destroy(te);
        vki_safetensors_close(st);
        VulkanTest::TearDown();
    }
    vki_status load(uint32_t clip_skip)
    {
        vki_clip_text_destroy(te);
        te = nullptr;
        vki_clip_text_desc d = {};
        d.prefix = tc.prefix.c_str();
        d.clip_skip = clip_skip;
        return vki_clip_text_load(dev, st, &d, &te, err, sizeof err);
    }
};

// A prompt padded to 77 with end-of-text, as SD pads: every row against the reference, through
// all layers and with clip skip 2 (the penultimate layer, then the final norm).
TEST_F(ClipTextTest, HiddenStatesMatchTheReference)
{
    std::vector<int32_t> ids(77, 49 % 50);
    const int32_t prompt[] = {48, 3, 17, 5, 39, 0, 22, 8, 11, 30, 49};
    std::copy(std::begin(prompt), std::end(prompt), ids.begin());
    for (uint32_t skip : {1u, 2u}) {
        ASSERT_EQ(load(skip), VKI_OK) << err;
        const vki_clip_text_info *info = vki_clip_text_info_get(te);
        EXPECT_EQ(info->width, 128u);
        EXPECT_EQ(info->n_layer, 2u);
        EXPECT_EQ(info->n_ctx, 77u);
        EXPECT_EQ(info->n_vocab, 50u);
        EXPECT_EQ(info->n_ff, 256u);
        std::vector<float> got(128 * 77);
        ASSERT_EQ(vki_clip_text_encode(te, ids.data(), got.data()), VKI_OK) << vki_clip_text_last_error(te);
        auto ref = tc.forward(ids, 2 - (skip - 1));
        double num = 0, den = 0;
        for (uint32_t t = 0; t < 77; t++)
            for (uint32_t i = 0; i < 128; i++) {
                double d = got[t * 128 + i] - ref[t][i];
                num += d * d;
                den += ref[t][i] * ref[t][i];
            }
        EXPECT_LT(num / den, 1e-9) << "clip skip " << skip;
    }
}

TEST_F(ClipTextTest, BadIdsSkipsAndPrefixesAreNamed)
{
    ASSERT_EQ(load(1), VKI_OK) << err;
    std::vector<int32_t> ids(77, 0);
    ids[5] = 50;
    std::vector<float> out(128 * 77);
    EXPECT_EQ(vki_clip_text_encode(te, ids.data(), out.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_clip_text_last_error(te)).find("id 5 is 50"), std::string::npos);
    EXPECT_EQ(load(3), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(err).find("clip skip 3 of a 2-layer model"), std::string::npos) << err;
    vki_clip_text_desc d = {}; // the default prefix is diffusers' "text_model."
    EXPECT_EQ(vki_clip_text_load(dev, st, &d, &te, err, sizeof err), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(err).find("text_model.embeddings.token_embedding.weight"), std::string::npos) << err;
}

} // namespace
