// LLaVA 1.6 (models/vision_llava.c) against transformers: a tiny random
// LlavaNextForConditionalGeneration (tools/gen_vision_golden.py llava16: CLIP 32 px, patch 4,
// pinpoints (h, w) [[32, 64], [64, 32], [64, 64]]) converted by llama.cpp's legacy LLaVA 1.6
// route; the 40x30 test image picks the 32x64 grid (two tiles side by side) and gives 64
// overview features, then 8 rows of 10 unpadded tile features each followed by the newline: 152.
// Then the layout that llama.cpp's mtmd hands its language model (flat, no unpad, no newline)
// as the negative control, token counts for other sizes (from transformers' unpad_image and
// get_anyres_image_grid_shape), and damaged files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "models/sd_golden.h"
#include "runtime/test_support.h"

extern "C" {
#include "vision_internal.h"
}

namespace {

std::string data(const std::string &name) { return std::string(VKI_TEST_DATA) + "/vision/" + name; }

std::vector<uint8_t> read_file(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// ||a - b|| / ||b|| over [from, to) rows of width e.
double norm_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

class Llava16Test : public VulkanTest {
  protected:
    std::vector<uint8_t> bytes;
    vki_gguf *file = nullptr;
    vki_vision *v = nullptr;
    char err[512] = "";

    void SetUp() override
    {
        VulkanTest::SetUp();
        open_device();
        bytes = read_file(data("llava16.mmproj.gguf"));
        ASSERT_FALSE(bytes.empty()) << "no llava16.mmproj.gguf: run tools/gen_vision_golden.py llava16";
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
};

TEST_F(Llava16Test, FeaturesMatchTransformers)
{
    ASSERT_EQ(load(), VKI_OK) << err;
    const vki_vision_info *in = vki_vision_info_get(v);
    EXPECT_EQ(in->projector, VKI_PROJECTOR_MLP);
    EXPECT_EQ(in->n_embd, 72u);
    SdGolden golden(data("llava16_golden.safetensors"));
    std::vector<int32_t> image = golden.i32("image");
    ASSERT_EQ(image.size(), 30u * 40 * 3);
    std::vector<uint8_t> rgb(image.begin(), image.end());

    // The token count the chat markup uses: the overview's 64, 8 rows of 10 unpadded features
    // and 8 newlines. One row of embeddings as far as the language model's positions go.
    ASSERT_EQ(vki_vision_n_tokens(v, 40, 30), 152u);
    uint32_t gw = 0, gh = 0;
    ASSERT_EQ(vki_vision_grid(v, 40, 30, &gw, &gh), VKI_OK);
    EXPECT_EQ(gw, 152u);
    EXPECT_EQ(gh, 1u);

    // Preprocessing: the overview squashed to 32x32, then the image resized to 43x32 into the
    // 64x32 pinpoint with black around it, cut into two tiles. PIL's bytes (our resampler
    // follows its fixed point), so only the normalisation's float rounding remains (~1e-7).
    std::vector<float> pixels(3 * 3 * 32 * 32), want = golden.f32("pixels");
    ASSERT_EQ(want.size(), pixels.size());
    ASSERT_EQ(vki__llava16_pixels(v, rgb.data(), 40, 30, pixels.data()), VKI_OK);
    double max_abs = 0;
    for (size_t i = 0; i < want.size(); i++) max_abs = std::max(max_abs, double(std::fabs(pixels[i] - want[i])));
    EXPECT_LT(max_abs, 1e-5) << "preprocessing differs from LlavaNextImageProcessorPil's";

    // Features: as LLaVA 1.5's (fp32 through the same CLIP layers and MLP, the F16 weights the
    // file holds on both sides; the gap is summation order and the kernels' exp/erf, ~3e-7 on
    // lavapipe), so the same 2e-5 bound; a misplaced tile, row or newline is an error of order 1.
    const size_t e = 72;
    std::vector<float> embd(152 * e), feats = golden.f32("features");
    ASSERT_EQ(feats.size(), embd.size());
    ASSERT_EQ(vki_vision_encode(v, rgb.data(), 40, 30, embd.data()), VKI_OK) << vki_vision_last_error(v);
    double err_all = norm_err(embd.data(), feats.data(), embd.size());
    std::printf("llava16: features normalised error %.3g, preprocessing max |diff| %.3g\n", err_all, max_abs);
    EXPECT_LT(err_all, 2e-5);

    // The tiles before their arrangement against transformers' (overview, tile 0, tile 1).
    ASSERT_EQ(vki__llava16_n_tokens_flat(v, 40, 30), 192u);
    std::vector<float> flat(192 * e), want_flat = golden.f32("features_flat");
    ASSERT_EQ(want_flat.size(), flat.size());
    ASSERT_EQ(vki__llava16_encode(v, rgb.data(), 40, 30, flat.data(), true), VKI_OK) << vki_vision_last_error(v);
    double err_flat = norm_err(flat.data(), want_flat.data(), flat.size());
    EXPECT_LT(err_flat, 2e-5);

    // Negative controls. (1) llama.cpp's mtmd layout (the tiles flat after the overview, no
    // unpad, no newline) against transformers' after the overview's 64 rows.
    double err_mtmd = norm_err(flat.data() + 64 * e, feats.data() + 64 * e, 88 * e);
    // (2) The unpad without its offset: columns 0..9 of the tiles' grid instead of 3..12.
    std::vector<float> shifted(embd.begin(), embd.end());
    for (uint32_t r = 0; r < 8; r++)
        for (uint32_t c = 0; c < 10; c++) {
            uint32_t tile = c / 8, pos = r * 8 + c % 8;
            memcpy(&shifted[(64 + r * 11 + c) * e], &flat[((1 + tile) * 64 + pos) * e], e * sizeof(float));
        }
    double err_shift = norm_err(shifted.data(), feats.data(), shifted.size());
    // (3) The newline omitted: the rows run on (the first 80 after the overview).
    std::vector<float> no_nl(embd.begin(), embd.begin() + 64 * e);
    for (uint32_t r = 0; r < 8; r++)
        no_nl.insert(no_nl.end(), embd.begin() + (64 + r * 11) * e, embd.begin() + (64 + r * 11 + 10) * e);
    double err_nonl = norm_err(no_nl.data(), feats.data(), no_nl.size());
    std::printf("llava16: tiles %.3g; negative controls: mtmd's flat layout %.3g, unpad offset 0 %.3g, no newline "
                "%.3g\n", err_flat, err_mtmd, err_shift, err_nonl);
    EXPECT_GT(err_mtmd, 0.1);
    EXPECT_GT(err_shift, 0.1);
    EXPECT_GT(err_nonl, 0.1);
}

// Token counts for other sizes, each from transformers (get_anyres_image_grid_shape and
// unpad_image over this model's pinpoints), and encodes of those sizes finish with finite values.
TEST_F(Llava16Test, TokenCountsMatchTransformersForOtherSizes)
{
    ASSERT_EQ(load(), VKI_OK) << err;
    struct Size {
        uint32_t w, h, n;
    };
    const Size sizes[] = {{40, 30, 152}, {30, 40, 154}, {64, 64, 336}, {1, 1, 136},
                          {4000, 2, 64}, {3, 5000, 72}, {33, 31, 136}, {100, 17, 98}};
    for (const Size &s : sizes) {
        SCOPED_TRACE(std::to_string(s.w) + "x" + std::to_string(s.h));
        ASSERT_EQ(vki_vision_n_tokens(v, s.w, s.h), s.n);
        std::vector<uint8_t> img(size_t(s.w) * s.h * 3);
        for (size_t i = 0; i < img.size(); i++) img[i] = uint8_t(i * 7 + i / 13);
        std::vector<float> out(size_t(s.n) * 72, NAN);
        ASSERT_EQ(vki_vision_encode(v, img.data(), s.w, s.h, out.data()), VKI_OK) << vki_vision_last_error(v);
        for (float x : out) ASSERT_TRUE(std::isfinite(x));
    }
    EXPECT_EQ(vki_vision_n_tokens(v, 0, 30), 0u);
    EXPECT_EQ(vki_vision_n_tokens(v, 40, 16385), 0u);
}

TEST_F(Llava16Test, DamagedFilesAreRefusedWithAClearMessage)
{
    const std::vector<uint8_t> good = bytes;
    // The pinpoints' first value (GGUF: key, array type 9, element type, count u64, values).
    auto set_pinpoint = [&](uint32_t value) {
        const std::string key = "clip.vision.image_grid_pinpoints";
        size_t at = find(key) + key.size();
        uint32_t type, elem;
        memcpy(&type, &bytes[at], 4);
        memcpy(&elem, &bytes[at + 4], 4);
        ASSERT_EQ(type, 9u);
        ASSERT_TRUE(elem == 4u || elem == 5u) << elem; // u32 or i32
        memcpy(&bytes[at + 16], &value, 4);
    };
    struct Case {
        const char *what;
        uint32_t pinpoint; // 0xffffffff: rename instead
        const char *from, *to;
        vki_status status;
        const char *message;
    };
    const Case cases[] = {
        {"a pinpoint not a whole number of tiles", 33, nullptr, nullptr, VKI_ERROR_BAD_FILE,
         "image_grid_pinpoints[0]"},
        {"a pinpoint of zero", 0, nullptr, nullptr, VKI_ERROR_BAD_FILE, "image_grid_pinpoints[0]"},
        {"a pinpoint of too many tiles", 32 * 40, nullptr, nullptr, VKI_ERROR_BAD_FILE, "image_grid_pinpoints[0]"},
        {"a negative pinpoint", 0xfffffff0u, nullptr, nullptr, VKI_ERROR_BAD_FILE, "image_grid_pinpoints"},
        {"the newline missing", 0xffffffffu, "model.image_newline", "model.image_newlinX", VKI_ERROR_BAD_FILE,
         "model.image_newline"},
        {"an unknown merge type", 0xffffffffu, "spatial_unpad", "spatial_unpaX", VKI_ERROR_UNSUPPORTED,
         "mm_patch_merge_type"},
        {"unpad without pinpoints", 0xffffffffu, "clip.vision.image_grid_pinpoints",
         "clip.vision.image_grid_pinpointX", VKI_ERROR_BAD_FILE, "image_grid_pinpoints"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        bytes = good;
        if (c.from) {
            size_t at = find(c.from);
            memcpy(&bytes[at], c.to, strlen(c.to));
        } else {
            set_pinpoint(c.pinpoint);
        }
        EXPECT_EQ(load(), c.status) << err;
        EXPECT_EQ(v, nullptr);
        EXPECT_NE(std::string(err).find(c.message), std::string::npos) << "message: " << err;
        if (file) {
            char check_err[512] = "";
            EXPECT_EQ(vki_vision_check(vki_device_profile(dev), file, nullptr, check_err, sizeof check_err), c.status);
            EXPECT_STREQ(check_err, err);
        }
    }
    // LLaVA 1.5's file (no pinpoints, no merge type) still loads as before.
    bytes = read_file(data("llava.mmproj.gguf"));
    ASSERT_EQ(load(), VKI_OK) << err;
    EXPECT_EQ(vki_vision_n_tokens(v, 40, 30), 64u);
}

} // namespace
