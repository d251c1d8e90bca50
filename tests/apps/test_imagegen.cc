// `vkinfer imagegen` run as a user would, on the tiny SD 1.x checkpoint of tests/data/sd_tiny
// with its token table widened to CLIP's 49408 ids (rows repeated), so that real prompts go
// through the real tokenizer: a PNG with AUTOMATIC1111's parameters chunk, the same bytes for
// the same seed, other bytes for another, existing files refused, bad options named, weights
// converted at load (--type).
#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Result {
    int code = -1;
    std::string err;
};

std::string Slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

Result RunImagegen(const std::string &args)
{
    Result r;
    char err_path[] = "/tmp/vki_imagegen_stderr_XXXXXX";
    int fd = mkstemp(err_path);
    if (fd < 0) return r;
    close(fd);
    std::string validation = getenv("VKI_VALIDATION") ? "" : "VKI_VALIDATION=1 ";
    std::string cmd = validation + "'" VKINFER_EXE "' " + args + " >/dev/null 2>" + err_path;
    int status = system(cmd.c_str());
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = Slurp(err_path);
    unlink(err_path);
    return r;
}

std::string VocabPath()
{
    const char *dir = getenv("VKI_MODEL_DIR");
    std::string d = dir && dir[0] ? dir : std::string(getenv("HOME") ? getenv("HOME") : ".") + "/.cache/vkinfer/models";
    return d + "/clip/bpe_simple_vocab_16e6.txt";
}

// The tiny single file with its token embedding [1000, W] widened to [49408, W].
bool WriteWidened(const std::string &src, const std::string &dst)
{
    std::string in = Slurp(src);
    if (in.size() < 8) return false;
    uint64_t hlen = 0;
    memcpy(&hlen, in.data(), 8);
    cJSON *h = cJSON_ParseWithLength(in.data() + 8, hlen);
    if (!h) return false;
    const char *embed = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
    std::string data;
    const char *base = in.data() + 8 + hlen;
    for (cJSON *t = h->child; t; t = t->next) {
        if (!strcmp(t->string, "__metadata__")) continue;
        cJSON *off = cJSON_GetObjectItem(t, "data_offsets"), *shape = cJSON_GetObjectItem(t, "shape");
        size_t b = size_t(cJSON_GetArrayItem(off, 0)->valuedouble), e = size_t(cJSON_GetArrayItem(off, 1)->valuedouble);
        std::string bytes(base + b, e - b);
        if (!strcmp(t->string, embed)) {
            size_t rows = size_t(cJSON_GetArrayItem(shape, 0)->valuedouble), row = bytes.size() / rows;
            std::string wide;
            for (size_t r = 0; r < 49408; r++) wide.append(bytes, (r % rows) * row, row);
            bytes = wide;
            cJSON_SetNumberValue(cJSON_GetArrayItem(shape, 0), 49408);
        }
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 0), double(data.size()));
        data += bytes;
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 1), double(data.size()));
    }
    char *text = cJSON_PrintUnformatted(h);
    std::string header = text;
    free(text);
    cJSON_Delete(h);
    while (header.size() % 8) header += ' ';
    std::ofstream out(dst, std::ios::binary);
    uint64_t n = header.size();
    out.write(reinterpret_cast<const char *>(&n), 8);
    out << header << data;
    return bool(out);
}

class ImagegenCli : public ::testing::Test {
  protected:
    std::string dir, model;
    void SetUp() override
    {
        if (!std::ifstream(VocabPath()).good()) GTEST_SKIP() << "no CLIP vocabulary (tools/fetch_models.sh)";
        char tmpl[] = "/tmp/vki_imagegen_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        model = dir + "/tiny.safetensors";
        ASSERT_TRUE(WriteWidened(std::string(VKI_TEST_DATA) + "/sd_tiny/sd15.safetensors", model));
    }
    void TearDown() override
    {
        if (!dir.empty()) system(("rm -rf '" + dir + "'").c_str());
    }
    std::string base() const { return "imagegen -m '" + model + "' -W 64 -H 64 --steps 3 "; }
};

TEST_F(ImagegenCli, WritesAPngWithA1111ParametersDeterministically)
{
    Result r = RunImagegen(base() + "-p '(a red:1.2) fox, [blurry]' -n 'ugly' -s 7 -o '" + dir + "/a.png'");
    ASSERT_EQ(r.code, 0) << r.err;
    std::string a = Slurp(dir + "/a.png");
    ASSERT_GT(a.size(), 100u);
    EXPECT_EQ(a.compare(0, 8, "\x89PNG\r\n\x1a\n"), 0);
    size_t at = a.find(std::string("tEXtparameters\0", 15));
    ASSERT_NE(at, std::string::npos) << "no parameters chunk";
    std::string params = a.substr(at + 15, 400);
    EXPECT_NE(params.find("(a red:1.2) fox, [blurry]\nNegative prompt: ugly\nSteps: 3, Sampler: Euler a"),
              std::string::npos) << params;
    EXPECT_NE(params.find("Seed: 7, Size: 64x64, Model: tiny.safetensors"), std::string::npos) << params;
    // Same seed and settings: the same bytes. Another seed: another image.
    ASSERT_EQ(RunImagegen(base() + "-p '(a red:1.2) fox, [blurry]' -n 'ugly' -s 7 -o '" + dir + "/b.png'").code, 0);
    EXPECT_EQ(a, Slurp(dir + "/b.png"));
    ASSERT_EQ(RunImagegen(base() + "-p '(a red:1.2) fox, [blurry]' -n 'ugly' -s 8 -o '" + dir + "/c.png'").code, 0);
    EXPECT_NE(a, Slurp(dir + "/c.png"));
    // The existing file is not replaced without --overwrite.
    r = RunImagegen(base() + "-p x -o '" + dir + "/a.png'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
    EXPECT_EQ(a, Slurp(dir + "/a.png"));
}

TEST_F(ImagegenCli, SamplersBatchesAndImageToImage)
{
    Result r = RunImagegen(base() + "-p fox --sampling-method 'DPM++ 2M Karras' -b 2 -o '" + dir + "/s.png'");
    ASSERT_EQ(r.code, 0) << r.err;
    std::string one = Slurp(dir + "/s_1.png"), two = Slurp(dir + "/s_2.png");
    ASSERT_FALSE(one.empty());
    EXPECT_NE(one, two); // seeds 42 and 43
    EXPECT_NE(one.find("Sampler: DPM++ 2M, Schedule type: karras"), std::string::npos);
    r = RunImagegen(base() + "-p fox -i '" + dir + "/s_1.png' --strength 0.5 -o '" + dir + "/i.png'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(Slurp(dir + "/i.png").find("Denoising strength: 0.5"), std::string::npos);
}

// --type converts the weights at load: with q8_0 a PNG still comes out and the converted
// weights' size is reported (that the quantised weights are the ones computed with, and how
// close they come, is tests/models/test_sd_convert.cc's); an unknown type is a usage error
// naming the types, before any work.
TEST_F(ImagegenCli, WeightTypeConvertsAtLoad)
{
    Result r = RunImagegen(base() + "-p fox --type q8_0 -o '" + dir + "/q.png'");
    ASSERT_EQ(r.code, 0) << r.err;
    std::string q = Slurp(dir + "/q.png");
    ASSERT_GT(q.size(), 100u);
    EXPECT_EQ(q.compare(0, 8, "\x89PNG\r\n\x1a\n"), 0);
    EXPECT_NE(r.err.find("on the device as q8_0"), std::string::npos) << r.err;
    // The PNG says which weights made it; without --type, nothing is said.
    EXPECT_NE(q.find(", Type: q8_0, Version: vkinfer"), std::string::npos);
    ASSERT_EQ(RunImagegen(base() + "-p fox -o '" + dir + "/s.png'").code, 0);
    std::string s = Slurp(dir + "/s.png");
    EXPECT_NE(s.find("Model: tiny.safetensors, Version: vkinfer"), std::string::npos);
    EXPECT_EQ(s.find("Type: "), std::string::npos);
    for (const char *bad : {"q5_0", "F16", "fp16"}) {
        r = RunImagegen(base() + "-p fox --type " + bad + " -o '" + dir + "/bad.png'");
        EXPECT_EQ(r.code, 2) << bad;
        EXPECT_NE(r.err.find("--type is f16, q8_0, q4_0 or q4_1 (got '" + std::string(bad) + "')"),
                  std::string::npos) << r.err;
        EXPECT_FALSE(std::ifstream(dir + "/bad.png").good()) << bad;
    }
    r = RunImagegen(base() + "-p fox -o '" + dir + "/bad.png' --type");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--type is"), std::string::npos) << r.err;
}

// The U-Net's activations are given back before the VAE runs (and the VAE's after it), so the
// VAE stage holds the loaded weights, the text encoder and its own arena, not the U-Net's too:
// what `bench sd` measures at the end of each stage (vki_device_stats) says so.
TEST_F(ImagegenCli, TheVaeRunsWithoutTheUnetsActivationsHeld)
{
    std::string out = dir + "/bench.json";
    std::string cmd = std::string(getenv("VKI_VALIDATION") ? "" : "VKI_VALIDATION=1 ") + "'" VKINFER_EXE
                      "' bench sd -m '" + model + "' --size 64 --steps 1 --reps 1 --json >'" + out + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
    std::unique_ptr<cJSON, decltype(&cJSON_Delete)> root(cJSON_Parse(Slurp(out).c_str()), cJSON_Delete);
    ASSERT_TRUE(root);
    const cJSON *sd = cJSON_GetObjectItem(cJSON_GetObjectItem(root.get(), "suites"), "sd");
    ASSERT_TRUE(sd) << Slurp(out);
    auto num = [&](const char *k) {
        const cJSON *v = cJSON_GetObjectItem(sd, k);
        EXPECT_TRUE(cJSON_IsNumber(v)) << k;
        return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
    };
    double unet = num("device_bytes_unet"), vae = num("device_bytes_vae");
    double unet_act = num("unet_activation_bytes"), vae_act = num("vae_activation_bytes");
    std::printf("bench sd at 64x64: held after the U-Net %.0f (arena %.0f), after the VAE %.0f (arena %.0f)\n",
                unet, unet_act, vae, vae_act);
    ASSERT_GT(unet_act, 0);
    ASSERT_GT(vae_act, 0);
    // Held at the VAE's end = held at the U-Net's end - the U-Net's arena + the VAE's arena, up
    // to the two programs' inputs and outputs (a 64x64 image: 48 KiB of pixels, 1 KiB of latent;
    // 6 KiB measured). The slack stays below the U-Net's arena (275 KiB here), which a VAE run
    // beside a held U-Net would add.
    ASSERT_GT(unet_act, 128 << 10);
    EXPECT_LE(vae, unet - unet_act + vae_act + (128 << 10))
        << "unet " << unet << " (arena " << unet_act << "), vae " << vae << " (arena " << vae_act << ")";
}

TEST_F(ImagegenCli, BadOptionsAreNamed)
{
    struct Case {
        const char *args, *message;
    } cases[] = {
        {"-p x -W 65", "width"},
        {"-p x --steps 0", "--steps"},
        {"-p x --cfg-scale 0.5", "--cfg-scale"},
        {"-p x --sampling-method nope", "unknown sampling method"},
        {"-p x --schedule nope", "unknown schedule"},
        {"-p x --strength 2", "--strength"},
        {"-p x --prediction w", "--prediction"},
    };
    for (const Case &c : cases) {
        Result r = RunImagegen(base() + c.args + " -o '" + dir + "/bad.png'");
        EXPECT_NE(r.code, 0) << c.args;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
        EXPECT_FALSE(std::ifstream(dir + "/bad.png").good()) << c.args;
    }
    Result r = RunImagegen("imagegen -m '" + dir + "/missing.safetensors' -p x -o '" + dir + "/bad.png'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("missing.safetensors"), std::string::npos) << r.err;
}

} // namespace
