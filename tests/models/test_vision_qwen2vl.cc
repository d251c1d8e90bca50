// Qwen2-VL's vision encoder (models/vision_qwen2vl.c, arch_vit.c's vki__qwen2vl_build) against
// transformers: a tiny seeded Qwen2VLForConditionalGeneration converted by llama.cpp's
// convert_hf_to_gguf.py --mmproj, two images (56 x 84, which smart_resize keeps, and the 40 x 30
// test image, which it grows to 84 x 56), the processor's pixel_values and the visual model's
// merger output (tools/gen_qwen2vl_vision_golden.py, tests/data/qwen2vl/). Then a deliberately
// broken encoder (rows and columns of the rotary positions swapped) that must fail the same
// bound, and damaged files. Then Qwen2.5-VL's encoder (window attention) the same way.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "models/sd_golden.h"
#include "runtime/test_support.h"

extern "C" {
#include "gguf_writer_internal.h"
#include "vision_internal.h"
}

namespace {

std::string data(const std::string &name) { return std::string(VKI_TEST_DATA) + "/qwen2vl/" + name; }

std::vector<uint8_t> read_file(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// ||a - b|| / ||b||.
double norm_err(const std::vector<float> &a, const std::vector<float> &b)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

// The bound on the embeddings' normalised error. Everything is fp32 but the patch kernels,
// which the file holds in F16 and the golden rounds the same way; what remains is summation
// order and the kernels' exp/erf approximations through 3 blocks and the merger: ~1e-6 expected.
// 2e-5 leaves room for other devices' summation orders and still catches a misordered patch
// or token, a transposed weight or swapped rotary streams (errors of order 0.1 and more, as the
// broken variant below shows) and GELU's tanh form in the merger (~1e-4).
constexpr double kBound = 2e-5;

struct Image {
    std::vector<uint8_t> rgb;
    uint32_t w = 0, h = 0, gw = 0, gh = 0; // pixels; patches
    std::vector<float> pixels, embd;      // the processor's rows [n][3*2*14*14]; [n/4][64]
};

Image golden_image(SdGolden &g, const std::string &name, bool with_pixels = true)
{
    Image im;
    std::vector<int32_t> img = g.i32((name + "_image").c_str()), grid = g.i32((name + "_grid").c_str());
    if (with_pixels) im.pixels = g.f32((name + "_pixels").c_str());
    im.embd = g.f32((name + "_embd").c_str());
    EXPECT_EQ(grid.size(), 3u);
    if (grid.size() != 3) return im;
    im.gh = uint32_t(grid[1]);
    im.gw = uint32_t(grid[2]);
    im.rgb.assign(img.begin(), img.end());
    vki_safetensors_tensor t;
    EXPECT_EQ(vki_safetensors_find(g.st, (name + "_image").c_str(), &t), VKI_OK);
    im.h = uint32_t(t.ne[2]); // safetensors dims come in ggml order: [3, w, h]
    im.w = uint32_t(t.ne[1]);
    return im;
}

class Qwen2vlVisionTest : public VulkanTest {
  protected:
    std::vector<uint8_t> bytes;
    vki_gguf *file = nullptr;
    vki_vision *v = nullptr;
    char err[512] = "";

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
    }
    void TearDown() override
    {
        vki_vision_destroy(v);
        vki_gguf_close(file);
        VulkanTest::TearDown();
    }
    vki_status load()
    {
        vki_vision_destroy(v);
        vki_gguf_close(file);
        v = nullptr;
        file = nullptr;
        err[0] = 0;
        vki_status st = vki_gguf_open_memory(bytes.data(), bytes.size(), nullptr, &file, err, sizeof err);
        if (st) return st;
        return vki_vision_load(dev, file, nullptr, &v, err, sizeof err);
    }
    size_t find(const std::string &s)
    {
        auto it = std::search(bytes.begin(), bytes.end(), s.begin(), s.end());
        EXPECT_NE(it, bytes.end()) << s;
        return it == bytes.end() ? 0 : size_t(it - bytes.begin());
    }
    void set_u32(const std::string &key, uint32_t value)
    {
        size_t at = find(key) + key.size();
        uint32_t type;
        memcpy(&type, &bytes[at], 4);
        ASSERT_EQ(type, 4u) << key << " is not a u32";
        memcpy(&bytes[at + 4], &value, 4);
    }
    void rename(const std::string &from, const std::string &to)
    {
        ASSERT_EQ(from.size(), to.size());
        size_t at = find(from);
        memcpy(&bytes[at], to.data(), to.size());
    }
    // Encodes `im` and returns the embeddings' normalised error against transformers'.
    double encode_error(const Image &im)
    {
        std::vector<float> out(size_t(vki_vision_n_tokens(v, im.w, im.h)) * vki_vision_info_get(v)->n_embd);
        EXPECT_EQ(out.size(), im.embd.size());
        EXPECT_EQ(vki_vision_encode(v, im.rgb.data(), im.w, im.h, out.data()), VKI_OK) << vki_vision_last_error(v);
        return norm_err(out, im.embd);
    }
};

TEST_F(Qwen2vlVisionTest, MatchesTransformers)
{
    bytes = read_file(data("vision.mmproj.gguf"));
    ASSERT_FALSE(bytes.empty()) << "no vision.mmproj.gguf: run tools/gen_qwen2vl_vision_golden.py";
    ASSERT_EQ(load(), VKI_OK) << err;
    const vki_vision_info *in = vki_vision_info_get(v);
    EXPECT_EQ(in->projector, VKI_PROJECTOR_QWEN2VL);
    EXPECT_STREQ(in->projector_name, "qwen2vl_merger");
    EXPECT_EQ(in->patch_size, 14u);
    EXPECT_EQ(in->width, 32u);
    EXPECT_EQ(in->n_layer, 3u);
    EXPECT_EQ(in->n_head, 2u);
    EXPECT_EQ(in->n_embd, 64u);
    EXPECT_FALSE(in->non_causal);
    EXPECT_GT(in->weight_bytes, 0u);
    EXPECT_GT(in->activation_bytes, 0u);

    SdGolden golden(data("vision_golden.safetensors"));
    for (const char *name : {"a", "b"}) {
        SCOPED_TRACE(name);
        Image im = golden_image(golden, name);
        ASSERT_FALSE(im.rgb.empty());
        ASSERT_EQ(im.rgb.size(), size_t(im.w) * im.h * 3);
        // The merged grid, as transformers' image_grid_thw / 2.
        uint32_t gw = 0, gh = 0;
        ASSERT_EQ(vki_vision_grid(v, im.w, im.h, &gw, &gh), VKI_OK);
        EXPECT_EQ(gw * 2, im.gw);
        EXPECT_EQ(gh * 2, im.gh);
        EXPECT_EQ(vki_vision_n_tokens(v, im.w, im.h), gw * gh);

        // Preprocessing: smart_resize, PIL's bicubic in 8 bits (our resampler follows its
        // fixed-point arithmetic, so the bytes are PIL's), the normalisation, and the patches in
        // the merger's order. transformers repeats each patch for the Conv3d's two frames: both
        // halves of its rows must equal ours.
        ASSERT_EQ(vki__qwen2vl_program(v, dev, vki_device_profile(dev), im.gw, im.gh, err, sizeof err), VKI_OK) << err;
        ASSERT_EQ(vki__qwen2vl_preprocess(v, im.rgb.data(), im.w, im.h), VKI_OK);
        const size_t n = size_t(im.gw) * im.gh, col = 3 * 14 * 14;
        ASSERT_EQ(im.pixels.size(), n * 2 * col);
        double max_abs = 0;
        for (size_t t = 0; t < n; t++)
            for (size_t c = 0; c < 3; c++)
                for (size_t frame = 0; frame < 2; frame++)
                    for (size_t k = 0; k < 196; k++) {
                        float want = im.pixels[t * 2 * col + (c * 2 + frame) * 196 + k];
                        max_abs = std::max(max_abs, double(std::fabs(v->patch_rows[t * col + c * 196 + k] - want)));
                    }
        EXPECT_LT(max_abs, 1e-5) << "preprocessing differs from the processor's";

        double e = encode_error(im);
        std::printf("qwen2vl image %s (%ux%u, %ux%u patches): embeddings normalised error %.3g, "
                    "preprocessing max |diff| %.3g\n", name, im.w, im.h, im.gw, im.gh, e, max_abs);
        EXPECT_LT(e, kBound);
    }

    // Back to the first size (its program is rebuilt) and again without a change (replayed):
    // the same bytes both times.
    Image a = golden_image(golden, "a");
    std::vector<float> one(a.embd.size()), two(a.embd.size());
    ASSERT_EQ(vki_vision_encode(v, a.rgb.data(), a.w, a.h, one.data()), VKI_OK) << vki_vision_last_error(v);
    ASSERT_EQ(vki_vision_encode(v, a.rgb.data(), a.w, a.h, two.data()), VKI_OK) << vki_vision_last_error(v);
    EXPECT_EQ(0, memcmp(one.data(), two.data(), one.size() * sizeof(float)));
    EXPECT_LT(norm_err(one, a.embd), kBound);
}

// The negative control: the same encoder with the rotary streams swapped (each patch's column
// where its row should be) must miss transformers' embeddings by far more than the bound, on
// the image whose grid is not square (4 x 6 patches) — so the test above tells rows from
// columns.
TEST_F(Qwen2vlVisionTest, SwappedRotaryPositionsFail)
{
    bytes = read_file(data("vision.mmproj.gguf"));
    ASSERT_EQ(load(), VKI_OK) << err;
    SdGolden golden(data("vision_golden.safetensors"));
    Image im = golden_image(golden, "a");
    ASSERT_EQ(vki__qwen2vl_program(v, dev, vki_device_profile(dev), im.gw, im.gh, err, sizeof err), VKI_OK) << err;
    ASSERT_EQ(vki__qwen2vl_preprocess(v, im.rgb.data(), im.w, im.h), VKI_OK);
    const size_t n = size_t(im.gw) * im.gh;
    std::swap_ranges(v->positions, v->positions + n, v->positions + n);
    std::vector<float> out(im.embd.size());
    ASSERT_EQ(vki_program_upload(v->prog, v->patches, v->patch_rows, n * 3 * 14 * 14 * sizeof(float)), VKI_OK);
    ASSERT_EQ(vki_program_upload(v->prog, v->pos, v->positions, n * 4 * sizeof(int32_t)), VKI_OK);
    ASSERT_EQ(vki_program_run(v->prog), VKI_OK) << vki_program_error(v->prog);
    ASSERT_EQ(vki_program_download(v->prog, v->out, out.data(), out.size() * sizeof(float)), VKI_OK);
    double e = norm_err(out, im.embd);
    std::printf("qwen2vl with rows and columns swapped: normalised error %.3g (bound %.3g)\n", e, kBound);
    EXPECT_GT(e, 100 * kBound);
}

// The same embeddings on the narrowed profiles (no fp16/subgroups/int dot, no UMA, other
// vendors' tunings), so that the kernels' fallbacks compute the encoder too.
TEST_F(Qwen2vlVisionTest, MatchesOnNarrowedProfiles)
{
    for (const char *profile : test_profiles()) {
        if (!profile[0]) continue; // the default profile: the tests above
        SCOPED_TRACE(profile);
        vki_vision_destroy(v);
        v = nullptr;
        vki_device_destroy(dev);
        dev = nullptr;
        open_device(profile);
        bytes = read_file(data("vision.mmproj.gguf"));
        ASSERT_EQ(load(), VKI_OK) << err;
        SdGolden golden(data("vision_golden.safetensors"));
        for (const char *name : {"a", "b"}) EXPECT_LT(encode_error(golden_image(golden, name)), kBound) << name;
    }
}

// smart_resize's sizes as transformers computes them (Qwen2VLImageProcessor: factor 28,
// 56*56 .. 28*28*1280 pixels; Python's round is half to even), and the sizes it refuses.
TEST_F(Qwen2vlVisionTest, SmartResizeSizes)
{
    bytes = read_file(data("vision.mmproj.gguf"));
    ASSERT_EQ(load(), VKI_OK) << err;
    struct Case {
        uint32_t w, h, gw, gh; // pixels in; merged tokens across and down (0: refused)
    };
    // Worked out by hand from transformers' smart_resize (image_processing_pil_qwen2_vl.py).
    const Case cases[] = {
        {56, 84, 2, 3},      // kept
        {40, 30, 3, 2},      // 28 x 28 < min_pixels: x sqrt(3136 / 1200), ceil -> 84 x 56
        {42, 70, 2, 2},      // round(1.5) = 2, round(2.5) = 2 (half to even) -> 56 x 56
        {1, 1, 2, 2},        // grown to the minimum 56 x 56
        {640, 480, 23, 17},  // round(22.86) = 23, round(17.14) = 17 -> 644 x 476
        {1920, 1080, 47, 26}, // 69 x 39 > 1280 tokens: beta = sqrt(2073600 / 1003520), floor
        {16384, 16384, 35, 35}, // the largest side: 980 x 980
        {200, 1, 29, 1},     // an aspect of 200 is taken: 812 x 28
        {3000, 17, 107, 1},  // 2996 x 28
        {201, 1, 0, 0},      // an aspect over 200
        {1, 16384, 0, 0},
        {0, 10, 0, 0},
        {16385, 100, 0, 0},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(std::to_string(c.w) + "x" + std::to_string(c.h));
        uint32_t gw = 99, gh = 99;
        vki_status st = vki_vision_grid(v, c.w, c.h, &gw, &gh);
        EXPECT_EQ(st, c.gw ? VKI_OK : VKI_ERROR_INVALID_ARGUMENT);
        EXPECT_EQ(gw, c.gw);
        EXPECT_EQ(gh, c.gh);
        EXPECT_EQ(vki_vision_n_tokens(v, c.w, c.h), c.gw * c.gh);
    }
    std::vector<float> out(64);
    uint8_t px[3 * 201] = {};
    EXPECT_EQ(vki_vision_encode(v, px, 201, 1, out.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_vision_last_error(v)).find("200"), std::string::npos) << vki_vision_last_error(v);
    uint32_t gw = 0, gh = 0;
    EXPECT_EQ(vki_vision_grid(nullptr, 1, 1, &gw, &gh), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_vision_grid(v, 1, 1, nullptr, &gh), VKI_ERROR_INVALID_ARGUMENT);
    // A one-pixel image is a valid image (grown to 56 x 56: 4 tokens).
    std::vector<float> four(4 * 64);
    EXPECT_EQ(vki_vision_encode(v, px, 1, 1, four.data()), VKI_OK) << vki_vision_last_error(v);
    for (float x : four) ASSERT_TRUE(std::isfinite(x));
}

TEST_F(Qwen2vlVisionTest, DamagedFilesAreRefusedWithAClearMessage)
{
    struct Case {
        const char *what;
        const char *key_or_from;
        const char *to; // NULL: set the u32 key to value
        uint32_t value;
        vki_status status;
        const char *message;
    };
    const Case cases[] = {
        // The Conv3d's second frame: without it the patch embedding would be half the model's.
        {"no second temporal kernel", "v.patch_embd.weight.1", "v.patch_embd.weight.9", 0, VKI_ERROR_BAD_FILE,
         "v.patch_embd.weight.1"},
        {"an unknown projector", "qwen2vl_merger", "qwen3vl_merger", 0, VKI_ERROR_UNSUPPORTED, "qwen3vl_merger"},
        {"a merger to another width", "clip.vision.projection_dim", nullptr, 65, VKI_ERROR_BAD_FILE,
         "not a merger of 2x2 patches"},
        {"a ViT of another width", "clip.vision.embedding_length", nullptr, 16, VKI_ERROR_BAD_FILE, "ffn_up"},
        {"heads of 2 dims", "clip.vision.attention.head_count", nullptr, 16, VKI_ERROR_BAD_FILE, "multiple of 4"},
        {"no merger", "mm.0.weight", "mm.5.weight", 0, VKI_ERROR_BAD_FILE, "mm.0.weight"},
        {"more layers than held", "clip.vision.block_count", nullptr, 4, VKI_ERROR_BAD_FILE, "v.blk.3"},
        {"fewer layers than held", "clip.vision.block_count", nullptr, 2, VKI_ERROR_UNSUPPORTED, "v.blk.2"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        bytes = read_file(data("vision.mmproj.gguf"));
        ASSERT_FALSE(bytes.empty());
        if (c.to)
            rename(c.key_or_from, c.to);
        else
            set_u32(c.key_or_from, c.value);
        EXPECT_EQ(load(), c.status) << err;
        EXPECT_EQ(v, nullptr);
        EXPECT_NE(std::string(err).find(c.message), std::string::npos) << "message: " << err;
        if (file) {
            char check_err[512] = "";
            EXPECT_EQ(vki_vision_check(vki_device_profile(dev), file, nullptr, check_err, sizeof check_err), c.status)
                << check_err;
            EXPECT_STREQ(check_err, err);
        }
    }
}

// The synthetic encoder of the family (vki_vision_synthetic "qwen2vl-tiny": what `bench vision
// --synthetic qwen2vl-2b` builds, at a tiny size) loads and encodes images of two grids; its
// clip.vision.spatial_merge_size set to another merge is refused by name (the merger reads 2x2
// windows only).
TEST_F(Qwen2vlVisionTest, SyntheticEncoderAndMergeSize)
{
    void *raw = nullptr;
    size_t size = 0;
    ASSERT_EQ(vki_vision_synthetic("qwen2vl-tiny", 3, &raw, &size, err, sizeof err), VKI_OK) << err;
    bytes.assign((uint8_t *)raw, (uint8_t *)raw + size);
    free(raw);
    std::vector<uint8_t> good = bytes;
    ASSERT_EQ(load(), VKI_OK) << err;
    const vki_vision_info *in = vki_vision_info_get(v);
    EXPECT_EQ(in->projector, VKI_PROJECTOR_QWEN2VL);
    EXPECT_EQ(in->n_embd, 96u);
    for (auto wh : {std::pair<uint32_t, uint32_t>{56, 56}, {120, 70}}) {
        uint32_t n = vki_vision_n_tokens(v, wh.first, wh.second);
        ASSERT_GT(n, 0u);
        std::vector<uint8_t> img(size_t(wh.first) * wh.second * 3);
        for (size_t i = 0; i < img.size(); i++) img[i] = uint8_t(i * 13);
        std::vector<float> out(size_t(n) * 96);
        ASSERT_EQ(vki_vision_encode(v, img.data(), wh.first, wh.second, out.data()), VKI_OK) << vki_vision_last_error(v);
        for (float x : out) ASSERT_TRUE(std::isfinite(x));
    }
    set_u32("clip.vision.spatial_merge_size", 3);
    EXPECT_EQ(load(), VKI_ERROR_UNSUPPORTED);
    EXPECT_NE(std::string(err).find("spatial_merge_size 3"), std::string::npos) << err;
}

// vki_vision_check accepts the file without a device, on this device's profile and a narrowed
// one (the fuzz target's path: the 8 x 8 patch grid's program compiled, nothing uploaded).
TEST_F(Qwen2vlVisionTest, CheckAcceptsTheFileWithoutADevice)
{
    bytes = read_file(data("vision.mmproj.gguf"));
    ASSERT_EQ(load(), VKI_OK) << err;
    vki_narrowing n;
    ASSERT_EQ(vki_narrowing_parse("no-fp16,no-subgroup,tuning=nvidia", &n, err, sizeof err), VKI_OK) << err;
    vki_profile narrow;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &narrow), VKI_OK);
    for (const vki_profile *p : {vki_device_profile(dev), (const vki_profile *)&narrow}) {
        err[0] = 0;
        EXPECT_EQ(vki_vision_check(p, file, nullptr, err, sizeof err), VKI_OK) << err;
    }
}

// ---- Qwen2.5-VL ("qwen2.5vl_merger"): the same host side, RMS norms, gated MLPs, window
// attention. tools/gen_qwen25vl_golden.py's tiny seeded Qwen2_5_VLForConditionalGeneration
// (tests/data/vision/qwen25vl.*): depth 4 (layers 0 and 2 within windows of 2 x 2 merged
// patches, 1 and 3 over the whole image), and the visual model's output for two images whose
// merged grids are not multiples of the window: a, the 40 x 30 test image (3 x 2 merged: a full
// window and a partial one), and b, 150 x 90 (5 x 3 merged: 3 x 2 windows, partial at the right
// and the bottom).

std::string data25(const std::string &name) { return std::string(VKI_TEST_DATA) + "/vision/" + name; }

class Qwen25vlVisionTest : public Qwen2vlVisionTest {
  protected:
    SdGolden *golden = nullptr;
    void TearDown() override
    {
        delete golden;
        Qwen2vlVisionTest::TearDown();
    }
    void open_file()
    {
        bytes = read_file(data25("qwen25vl.mmproj.gguf"));
        ASSERT_FALSE(bytes.empty()) << "no qwen25vl.mmproj.gguf: run tools/gen_qwen25vl_golden.py";
        ASSERT_EQ(load(), VKI_OK) << err;
        if (!golden) golden = new SdGolden(data25("qwen25vl_golden.safetensors"));
    }
};

// The bound is Qwen2-VL's (kBound, above), for the same reasons: fp32 throughout but the
// patch kernels, which the golden rounds to F16 as the file holds them; the window layers'
// attention reads fewer keys, not less precisely (measured: 7e-7 on lavapipe). The errors it
// must catch are far larger: a window layer attending over the whole image (the test after
// this one: 0.03 and 0.06), RMS norms taken as layer norms, or a merger row put back in the
// wrong place (O(1)).
TEST_F(Qwen25vlVisionTest, MatchesTransformers)
{
    open_file();
    const vki_vision_info *in = vki_vision_info_get(v);
    EXPECT_EQ(in->projector, VKI_PROJECTOR_QWEN2VL);
    EXPECT_STREQ(in->projector_name, "qwen2.5vl_merger");
    EXPECT_EQ(in->width, 32u);
    EXPECT_EQ(in->n_layer, 4u);
    EXPECT_EQ(in->n_embd, 64u);
    EXPECT_EQ(v->window, 2u);       // 56 px / (14 * 2)
    EXPECT_EQ(v->n_wa_pattern, 2u); // fullatt_block_indexes [1, 3]
    EXPECT_TRUE(v->rms_norm && v->gated);
    for (const char *name : {"a", "b"}) {
        SCOPED_TRACE(name);
        Image im = golden_image(*golden, name, false);
        ASSERT_FALSE(im.rgb.empty());
        uint32_t gw = 0, gh = 0;
        ASSERT_EQ(vki_vision_grid(v, im.w, im.h, &gw, &gh), VKI_OK);
        EXPECT_EQ(gw * 2, im.gw);
        EXPECT_EQ(gh * 2, im.gh);
        EXPECT_TRUE(gw % v->window || gh % v->window) << "the image should end in a partial window";
        double e = encode_error(im);
        std::printf("qwen2.5vl image %s (%ux%u, %ux%u merged patches, windows of %ux%u): embeddings normalised "
                    "error %.3g\n", name, im.w, im.h, gw, gh, v->window, v->window, e);
        EXPECT_LT(e, kBound);
    }
}

// The negative control: the same encoder with its window layers attending over the whole
// image (every layer full: n_wa_pattern 1; the patches still come window by window, which a
// network of full attention does not see) must miss transformers' embeddings by far.
TEST_F(Qwen25vlVisionTest, FullAttentionInsteadOfWindowsFails)
{
    open_file();
    for (const char *name : {"a", "b"}) {
        SCOPED_TRACE(name);
        Image im = golden_image(*golden, name, false);
        v->n_wa_pattern = 1;
        v->grid_w = 0; // rebuilt with the change
        double e = encode_error(im);
        std::printf("qwen2.5vl image %s with full attention in every layer: normalised error %.3g (bound %.3g)\n",
                    name, e, kBound);
        EXPECT_GT(e, 100 * kBound);
        v->n_wa_pattern = 2;
        v->grid_w = 0;
        EXPECT_LT(encode_error(im), kBound) << "and back";
    }
}

TEST_F(Qwen25vlVisionTest, MatchesOnNarrowedProfiles)
{
    for (const char *profile : test_profiles()) {
        if (!profile[0]) continue;
        SCOPED_TRACE(profile);
        vki_vision_destroy(v);
        v = nullptr;
        vki_device_destroy(dev);
        dev = nullptr;
        open_device(profile);
        open_file();
        for (const char *name : {"a", "b"}) EXPECT_LT(encode_error(golden_image(*golden, name, false)), kBound) << name;
    }
}

TEST_F(Qwen25vlVisionTest, DamagedFilesAreRefusedWithAClearMessage)
{
    struct Case {
        const char *what;
        const char *key_or_from;
        const char *to; // NULL: set the u32 key to value
        uint32_t value;
        vki_status status;
        const char *message;
    };
    const Case cases[] = {
        {"no gate", "v.blk.0.ffn_gate.weight", "v.blk.0.ffn_gatX.weight", 0, VKI_ERROR_BAD_FILE, "ffn_gate"},
        {"a gate missing in a later layer", "v.blk.2.ffn_gate.weight", "v.blk.2.ffn_gatX.weight", 0,
         VKI_ERROR_BAD_FILE, "v.blk.2.ffn_gate"},
        {"no RMS norm", "v.blk.1.ln2.weight", "v.blk.1.ln2.weighX", 0, VKI_ERROR_BAD_FILE, "v.blk.1.ln2"},
        {"a window of no whole merged patches", "clip.vision.window_size", nullptr, 50, VKI_ERROR_BAD_FILE,
         "window_size 50"},
        {"a window of none", "clip.vision.window_size", nullptr, 0, VKI_ERROR_BAD_FILE, "window_size 0"},
        {"a huge window", "clip.vision.window_size", nullptr, 28 * 65, VKI_ERROR_BAD_FILE, "window_size 1820"},
        {"a pattern beyond the layers", "clip.vision.n_wa_pattern", nullptr, 5, VKI_ERROR_BAD_FILE,
         "n_wa_pattern 5"},
        {"an unknown projector", "qwen2.5vl_merger", "qwen2.6vl_merger", 0, VKI_ERROR_UNSUPPORTED,
         "qwen2.6vl_merger"},
        {"more layers than held", "clip.vision.block_count", nullptr, 5, VKI_ERROR_BAD_FILE, "v.blk.4"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        bytes = read_file(data25("qwen25vl.mmproj.gguf"));
        ASSERT_FALSE(bytes.empty());
        if (c.to)
            rename(c.key_or_from, c.to);
        else
            set_u32(c.key_or_from, c.value);
        EXPECT_EQ(load(), c.status) << err;
        EXPECT_EQ(v, nullptr);
        EXPECT_NE(std::string(err).find(c.message), std::string::npos) << "message: " << err;
        if (file) {
            char check_err[512] = "";
            EXPECT_EQ(vki_vision_check(vki_device_profile(dev), file, nullptr, check_err, sizeof check_err), c.status)
                << check_err;
            EXPECT_STREQ(check_err, err);
        }
    }
    // Without clip.vision.n_wa_pattern every layer attends over the whole image (llama.cpp's
    // reading): the file loads, with no windows.
    bytes = read_file(data25("qwen25vl.mmproj.gguf"));
    rename("clip.vision.n_wa_pattern", "clip.vision.n_wa_patterX");
    ASSERT_EQ(load(), VKI_OK) << err;
    EXPECT_EQ(v->window, 0u);
}

// The synthetic encoder of the family (what `bench vision --synthetic qwen25vl-3b` builds, at a
// tiny size: 2 layers, the first within windows of llama.cpp's 112 px) loads and encodes an
// image of 11 x 7 merged patches (3 x 2 windows, partial at the right and the bottom).
TEST_F(Qwen25vlVisionTest, SyntheticEncoder)
{
    void *raw = nullptr;
    size_t size = 0;
    ASSERT_EQ(vki_vision_synthetic("qwen25vl-tiny", 3, &raw, &size, err, sizeof err), VKI_OK) << err;
    bytes.assign((uint8_t *)raw, (uint8_t *)raw + size);
    free(raw);
    ASSERT_EQ(load(), VKI_OK) << err;
    EXPECT_STREQ(vki_vision_info_get(v)->projector_name, "qwen2.5vl_merger");
    EXPECT_EQ(v->window, 4u);
    EXPECT_EQ(v->n_wa_pattern, 2u);
    uint32_t gw = 0, gh = 0;
    ASSERT_EQ(vki_vision_grid(v, 300, 200, &gw, &gh), VKI_OK);
    EXPECT_EQ(gw, 11u);
    EXPECT_EQ(gh, 7u);
    std::vector<uint8_t> img(300 * 200 * 3);
    for (size_t i = 0; i < img.size(); i++) img[i] = uint8_t(i * 13);
    std::vector<float> out(size_t(gw) * gh * 96);
    ASSERT_EQ(vki_vision_encode(v, img.data(), 300, 200, out.data()), VKI_OK) << vki_vision_last_error(v);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
}

} // namespace
