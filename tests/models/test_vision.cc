// Vision encoders (models/vision.c, models/arch_vit.c) against transformers: tiny random Gemma 3
// and Idefics3 models converted by llama.cpp's convert_hf_to_gguf.py --mmproj, a 40x30 test
// image, and the processor's pixels and get_image_features from transformers
// (tools/gen_vision_golden.py, tests/data/vision/); the same models' text halves take a prompt
// with the image in place (vki_llm_eval_embd) against transformers' logits. Then mmproj files
// damaged byte by byte: each failure must be clear and name its cause.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
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

class VisionTest : public VulkanTest {
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
    // Loads `bytes` (the family's file, possibly damaged) as an encoder.
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
    // The offset of `s` in bytes (the first occurrence); fails the test when absent.
    size_t find(const std::string &s)
    {
        auto it = std::search(bytes.begin(), bytes.end(), s.begin(), s.end());
        EXPECT_NE(it, bytes.end()) << s;
        return it == bytes.end() ? 0 : size_t(it - bytes.begin());
    }
    // Overwrites the u32 value of metadata key `key` (GGUF: key, u32 type code 4, value).
    void set_u32(const std::string &key, uint32_t value)
    {
        size_t at = find(key) + key.size();
        uint32_t type;
        memcpy(&type, &bytes[at], 4);
        ASSERT_EQ(type, 4u) << key << " is not a u32";
        memcpy(&bytes[at + 4], &value, 4);
    }
    // Renames the first occurrence of `from` to `to` (same length).
    void rename(const std::string &from, const std::string &to)
    {
        ASSERT_EQ(from.size(), to.size());
        size_t at = find(from);
        memcpy(&bytes[at], to.data(), to.size());
    }

    void check_family(const char *family, vki_projector projector, uint32_t n_embd, uint32_t n_tokens)
    {
        const std::string stem = std::string(family) == "mlp" ? "llava" : family;
        bytes = read_file(data(stem + ".mmproj.gguf"));
        ASSERT_FALSE(bytes.empty()) << "no " << stem << ".mmproj.gguf: run tools/gen_vision_golden.py";
        ASSERT_EQ(load(), VKI_OK) << err;
        const vki_vision_info *in = vki_vision_info_get(v);
        EXPECT_EQ(in->projector, projector);
        EXPECT_STREQ(in->projector_name, family);
        EXPECT_EQ(in->image_size, 32u);
        EXPECT_EQ(in->patch_size, 4u);
        EXPECT_EQ(in->width, 64u);
        EXPECT_EQ(in->n_layer, 2u);
        EXPECT_EQ(in->n_head, 2u);
        EXPECT_EQ(in->n_embd, n_embd);
        EXPECT_EQ(in->non_causal, projector == VKI_PROJECTOR_GEMMA3);
        EXPECT_GT(in->weight_bytes, 0u);
        EXPECT_GT(in->activation_bytes, 0u);

        SdGolden golden(data(stem + "_golden.safetensors"));
        std::vector<int32_t> image = golden.i32("image");
        ASSERT_EQ(image.size(), 30u * 40 * 3);
        std::vector<uint8_t> rgb(image.begin(), image.end());

        // Preprocessing: PIL's resize to 32x32 in 8 bits (one side shrinks, one grows) and the
        // normalisation. Our resampler follows PIL's fixed-point arithmetic, so the bytes are
        // PIL's: what remains is float rounding in (x / 255 - mean) / std (~1e-7).
        std::vector<float> pixels(3 * 32 * 32), want = golden.f32("pixels");
        ASSERT_EQ(vki__vision_preprocess(v, rgb.data(), 40, 30, pixels.data()), VKI_OK);
        double max_abs = 0;
        for (size_t i = 0; i < want.size(); i++) max_abs = std::max(max_abs, double(std::fabs(pixels[i] - want[i])));
        EXPECT_LT(max_abs, 1e-5) << family << ": preprocessing differs from the processor's";

        // Features: fp32 weights and activations through 2 layers, pooling or shuffle and the
        // projection, with the weights the file holds (the golden rounds Gemma 3's F16
        // projection as the file does); transformers is fp32 too, so the gap is summation order
        // and the kernels' erf/exp approximations: ~3e-7 measured on lavapipe. 2e-5 leaves room
        // for other devices' summation orders and still catches a wrong layout (a transposed
        // weight, a misordered patch or token: errors of order 1) or a wrong activation (GELU
        // erf for tanh: ~1e-4).
        uint32_t n = vki_vision_n_tokens(v, 40, 30);
        ASSERT_EQ(n, n_tokens);
        std::vector<float> embd(size_t(n) * n_embd), feats = golden.f32("features");
        ASSERT_EQ(feats.size(), embd.size());
        ASSERT_EQ(vki_vision_encode(v, rgb.data(), 40, 30, embd.data()), VKI_OK) << vki_vision_last_error(v);
        double e = norm_err(embd, feats);
        std::printf("%s: features normalised error %.3g, preprocessing max |diff| %.3g\n", family, e, max_abs);
        EXPECT_LT(e, 2e-5) << family;

        // Encoding again gives the same result (the program is replayed).
        std::vector<float> again(embd.size());
        ASSERT_EQ(vki_vision_encode(v, rgb.data(), 40, 30, again.data()), VKI_OK);
        EXPECT_EQ(0, memcmp(again.data(), embd.data(), embd.size() * sizeof(float)));

        // Another image changes the features (the input matters).
        std::vector<uint8_t> flat(64 * 48 * 3, 128);
        ASSERT_EQ(vki_vision_encode(v, flat.data(), 64, 48, again.data()), VKI_OK);
        EXPECT_GT(norm_err(again, embd), 0.05);
    }
};

TEST_F(VisionTest, Gemma3MatchesTransformers) { check_family("gemma3", VKI_PROJECTOR_GEMMA3, 96, 16); }

TEST_F(VisionTest, Idefics3MatchesTransformers) { check_family("idefics3", VKI_PROJECTOR_IDEFICS3, 80, 16); }

// LLaVA 1.5's layout from llama.cpp's legacy converter: CLIP with a class token and
// pre-layernorm, the last of 3 layers dropped (the penultimate layer's features), fc1/fc2
// stored as ffn_down/ffn_up, and the short side resized (bicubic) then the centre cropped.
TEST_F(VisionTest, LlavaMatchesTransformers) { check_family("mlp", VKI_PROJECTOR_MLP, 72, 64); }

// The image in a prompt, end to end: the family's text model (converted by llama.cpp from the
// same tiny transformers model) takes the prompt's tokens, the encoder's embeddings in place of
// the image tokens (Gemma 3's seeing each other both ways, as transformers' token_type_ids make
// them), then the rest of the prompt; the logits after the image and after each later token
// against transformers' forward pass over the whole prompt.
class VisionPromptTest : public VisionTest {
  protected:
    void check_prompt(const char *family)
    {
        bytes = read_file(data(std::string(family) + ".mmproj.gguf"));
        ASSERT_EQ(load(), VKI_OK) << err;
        SdGolden golden(data(std::string(family) + "_golden.safetensors"));
        std::vector<int32_t> image = golden.i32("image"), ids = golden.i32("prompt_ids");
        std::vector<float> want = golden.f32("logits");
        std::vector<uint8_t> rgb(image.begin(), image.end());
        const uint32_t start = uint32_t(std::stoul(golden.meta("image_start")));
        const uint32_t n_img = vki_vision_n_tokens(v, 40, 30);
        const vki_vision_info *vi = vki_vision_info_get(v);
        std::vector<float> embd(size_t(n_img) * vi->n_embd);
        ASSERT_EQ(vki_vision_encode(v, rgb.data(), 40, 30, embd.data()), VKI_OK) << vki_vision_last_error(v);

        std::vector<uint8_t> text = read_file(data(std::string(family) + ".text.gguf"));
        vki_gguf *tf = nullptr;
        vki_llm *m = nullptr;
        ASSERT_EQ(vki_gguf_open_memory(text.data(), text.size(), nullptr, &tf, err, sizeof err), VKI_OK) << err;
        // Freed however the checks below end (before the fixture destroys the device).
        std::unique_ptr<vki_gguf, void (*)(vki_gguf *)> tf_owner(tf, vki_gguf_close);
        std::unique_ptr<vki_llm, void (*)(vki_llm *)> m_owner(nullptr, vki_llm_destroy);
        vki_llm_desc d = {};
        d.n_ctx = ids.size() <= 128 ? 128 : 256; // LLaVA 1.6's prompt: 152 image tokens
        d.kv_dtype = VKI_DTYPE_F32;
        vki_status st = vki_llm_load(dev, tf, &d, &m, err, sizeof err);
        m_owner.reset(m);
        EXPECT_EQ(st, VKI_OK) << err;
        if (st == VKI_OK) {
            const uint32_t n_vocab = vki_llm_info_get(m)->n_vocab;
            ASSERT_EQ(want.size(), ids.size() * n_vocab);
            ASSERT_EQ(vki_llm_info_get(m)->n_embd, vi->n_embd);
            std::vector<float> logits(n_vocab);
            auto row = [&](size_t pos) {
                return std::vector<float>(want.begin() + pos * n_vocab, want.begin() + (pos + 1) * n_vocab);
            };
            // A row's error against transformers: fp32 throughout with an f32 cache, ~1e-6
            // measured; the image attended the other way (causal for Gemma 3, both ways for
            // Idefics3) gives 1e-2 to 4e-1 after it, so 1e-4 tells them apart with room.
            auto check = [&](size_t pos) {
                double e = norm_err(logits, row(pos));
                std::printf("%s: logits at %zu normalised error %.3g\n", family, pos, e);
                EXPECT_LT(e, 1e-4) << family << " position " << pos;
            };
            ASSERT_EQ(vki_llm_eval(m, ids.data(), start, logits.data()), VKI_OK) << vki_llm_last_error(m);
            check(start - 1);
            ASSERT_EQ(vki_llm_eval_embd(m, 0, embd.data(), n_img, vi->non_causal, logits.data()), VKI_OK)
                << vki_llm_last_error(m);
            check(start + n_img - 1);
            for (size_t pos = start + n_img; pos < ids.size(); pos++) {
                ASSERT_EQ(vki_llm_eval(m, &ids[pos], 1, logits.data()), VKI_OK) << vki_llm_last_error(m);
                check(pos);
            }
        }
    }
};

TEST_F(VisionPromptTest, Gemma3PromptWithImageMatchesTransformers) { check_prompt("gemma3"); }

TEST_F(VisionPromptTest, Idefics3PromptWithImageMatchesTransformers) { check_prompt("idefics3"); }

TEST_F(VisionPromptTest, LlavaPromptWithImageMatchesTransformers) { check_prompt("llava"); }

// LLaVA 1.6 (tests/models/test_vision_llava16.cc): the overview, the unpadded tiles and their
// newlines in place of LlavaNextProcessor's 152 image tokens.
TEST_F(VisionPromptTest, Llava16PromptWithImageMatchesTransformers) { check_prompt("llava16"); }

// The same features on the narrowed profiles (no fp16/subgroups/int dot, no UMA, other vendors'
// tunings), so that the kernels' fallbacks compute the encoders too.
TEST_F(VisionTest, FeaturesMatchOnNarrowedProfiles)
{
    for (const char *profile : test_profiles()) {
        if (!profile[0]) continue; // the default profile: the tests above
        vki_vision_destroy(v);
        v = nullptr;
        vki_device_destroy(dev);
        dev = nullptr;
        open_device(profile);
        for (const char *stem : {"gemma3", "idefics3", "llava", "llava16"}) {
            SCOPED_TRACE(std::string(profile) + " " + stem);
            bytes = read_file(data(std::string(stem) + ".mmproj.gguf"));
            ASSERT_EQ(load(), VKI_OK) << err;
            SdGolden golden(data(std::string(stem) + "_golden.safetensors"));
            std::vector<int32_t> image = golden.i32("image");
            std::vector<uint8_t> rgb(image.begin(), image.end());
            std::vector<float> feats = golden.f32("features");
            std::vector<float> embd(size_t(vki_vision_n_tokens(v, 40, 30)) * vki_vision_info_get(v)->n_embd);
            ASSERT_EQ(embd.size(), feats.size());
            ASSERT_EQ(vki_vision_encode(v, rgb.data(), 40, 30, embd.data()), VKI_OK) << vki_vision_last_error(v);
            EXPECT_LT(norm_err(embd, feats), 2e-5);
        }
    }
}

TEST_F(VisionTest, BadSizesAndArgumentsAreRefused)
{
    bytes = read_file(data("gemma3.mmproj.gguf"));
    ASSERT_EQ(load(), VKI_OK) << err;
    EXPECT_EQ(vki_vision_n_tokens(v, 0, 30), 0u);
    EXPECT_EQ(vki_vision_n_tokens(v, 40, 16385), 0u);
    EXPECT_EQ(vki_vision_n_tokens(v, 16384, 1), 16u);
    std::vector<float> out(16 * 96);
    uint8_t px[3] = {1, 2, 3};
    EXPECT_EQ(vki_vision_encode(v, px, 0, 1, out.data()), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vki_vision_last_error(v)).find("0 x 1"), std::string::npos) << vki_vision_last_error(v);
    EXPECT_EQ(vki_vision_encode(v, nullptr, 1, 1, out.data()), VKI_ERROR_INVALID_ARGUMENT);
    // A one-pixel image is a valid image (stretched to 32x32).
    EXPECT_EQ(vki_vision_encode(v, px, 1, 1, out.data()), VKI_OK) << vki_vision_last_error(v);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    // Extreme aspects: LLaVA's crop resizes only its window of a very wide or tall image.
    bytes = read_file(data("llava.mmproj.gguf"));
    ASSERT_EQ(load(), VKI_OK) << err;
    std::vector<float> embd(64 * 72);
    for (auto wh : {std::pair<uint32_t, uint32_t>{4000, 2}, {3, 5000}}) {
        std::vector<uint8_t> img(size_t(wh.first) * wh.second * 3);
        for (size_t i = 0; i < img.size(); i++) img[i] = uint8_t(i * 7);
        ASSERT_EQ(vki_vision_encode(v, img.data(), wh.first, wh.second, embd.data()), VKI_OK) << vki_vision_last_error(v);
        for (float x : embd) ASSERT_TRUE(std::isfinite(x));
    }
    EXPECT_EQ(vki_vision_load(nullptr, file, nullptr, nullptr, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    vki_vision_destroy(nullptr);
    EXPECT_EQ(vki_vision_info_get(nullptr), nullptr);
}

class VisionHostileTest : public VisionTest {};

TEST_F(VisionHostileTest, DamagedFilesAreRefusedWithAClearMessage)
{
    struct Case {
        const char *what;
        const char *key_or_from;
        const char *to; // NULL: set the u32 key to value
        uint32_t value;
        vki_status status;
        const char *message;
        bool llava = false; // damage the LLaVA file instead of Gemma 3's
    };
    const Case cases[] = {
        {"a tensor renamed", "v.post_ln.weight", "v.post_lX.weight", 0, VKI_ERROR_BAD_FILE, "v.post_ln.weight"},
        {"an unknown tensor", "mm.soft_emb_norm.weight", "mm.soft_emb_norm.weighX", 0, VKI_ERROR_BAD_FILE,
         "mm.soft_emb_norm.weight"},
        {"a missing key", "clip.vision.patch_size", "clip.vision.patch_sizX", 0, VKI_ERROR_BAD_FILE,
         "clip.vision.patch_size"},
        {"an unknown projector", "gemma3", "gemmaX", 0, VKI_ERROR_UNSUPPORTED, "gemmaX"},
        {"an absurd image size", "clip.vision.image_size", nullptr, 0xfffffff0u, VKI_ERROR_BAD_FILE, "image size"},
        {"a patch not dividing the image", "clip.vision.patch_size", nullptr, 5, VKI_ERROR_BAD_FILE, "patch 5"},
        {"a patch of zero", "clip.vision.patch_size", nullptr, 0, VKI_ERROR_BAD_FILE, "patch 0"},
        {"too many patches", "clip.vision.image_size", nullptr, 2048, VKI_ERROR_BAD_FILE, "patches"},
        {"heads not dividing the width", "clip.vision.attention.head_count", nullptr, 3, VKI_ERROR_BAD_FILE, "heads"},
        {"no heads", "clip.vision.attention.head_count", nullptr, 0, VKI_ERROR_BAD_FILE, "heads"},
        {"absurd width", "clip.vision.embedding_length", nullptr, 1u << 30, VKI_ERROR_BAD_FILE, "width"},
        {"absurd layers", "clip.vision.block_count", nullptr, 100000, VKI_ERROR_BAD_FILE, "layers"},
        {"more layers than the file holds", "clip.vision.block_count", nullptr, 3, VKI_ERROR_BAD_FILE, "v.blk.2"},
        // The file then holds tensors the encoder does not read: refused by name (the weights
        // module's rule for any model).
        {"fewer layers than the file holds", "clip.vision.block_count", nullptr, 1, VKI_ERROR_UNSUPPORTED, "v.blk.1"},
        {"a projection of another width", "clip.vision.projection_dim", nullptr, 97, VKI_ERROR_BAD_FILE,
         "mm.input_projection.weight"},
        {"an MLP of another width", "clip.vision.feed_forward_length", nullptr, 95, VKI_ERROR_BAD_FILE, "ffn_up"},
        {"a pooling not dividing the grid", "clip.vision.projector.scale_factor", nullptr, 3, VKI_ERROR_BAD_FILE,
         "scale_factor 3"},
        {"a pooling of zero", "clip.vision.projector.scale_factor", nullptr, 0, VKI_ERROR_BAD_FILE, "scale_factor 0"},
        {"a pooling of one over a large grid", "clip.vision.image_size", nullptr, 512, VKI_ERROR_BAD_FILE,
         "pooling matrix"},
        {"an MLP projector without its second layer", "mm.2.weight", "mm.3.weight", 0, VKI_ERROR_BAD_FILE,
         "mm.2.weight", true},
        {"no class token", "v.class_embd", "v.class_embX", 0, VKI_ERROR_BAD_FILE, "v.class_embd", true},
        {"no pre-layernorm", "v.pre_ln.weight", "v.pre_lX.weight", 0, VKI_ERROR_BAD_FILE, "v.pre_ln.weight", true},
        {"more CLIP layers than held", "clip.vision.block_count", nullptr, 3, VKI_ERROR_BAD_FILE, "v.blk.2", true},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        bytes = read_file(data(c.llava ? "llava.mmproj.gguf" : "gemma3.mmproj.gguf"));
        ASSERT_FALSE(bytes.empty());
        if (c.to)
            rename(c.key_or_from, c.to);
        else
            set_u32(c.key_or_from, c.value);
        EXPECT_EQ(load(), c.status) << err;
        EXPECT_EQ(v, nullptr);
        EXPECT_NE(std::string(err).find(c.message), std::string::npos) << "message: " << err;
        // The device-free check (the fuzz target's path) refuses it the same way.
        if (file) {
            char check_err[512] = "";
            EXPECT_EQ(vki_vision_check(vki_device_profile(dev), file, nullptr, check_err, sizeof check_err),
                      c.status) << check_err;
            EXPECT_STREQ(check_err, err);
        }
    }
}

// vki_vision_check accepts what vki_vision_load loads, on this device's profile and on a
// narrowed one, without touching a device.
TEST_F(VisionTest, CheckAcceptsEveryFamilyWithoutADevice)
{
    for (const char *family : {"gemma3", "idefics3", "llava", "llava16"}) {
        SCOPED_TRACE(family);
        bytes = read_file(data(std::string(family) + ".mmproj.gguf"));
        ASSERT_FALSE(bytes.empty());
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
}

} // namespace
