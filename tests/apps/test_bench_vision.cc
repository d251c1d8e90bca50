// `vkinfer bench vision`: an image encoder timed as chat --image runs it, on the committed tiny
// SmolVLM-family encoder (tools/gen_vision_golden.py) and on the tiny synthetic one, whose flops
// and weight bytes are counted here by hand from its shapes (vision_synthetic.c's table).
#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include "cli_run.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using Result = CliRun;

Result RunCli(const std::string &args) { return Vkinfer(args); }


double Number(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    EXPECT_TRUE(cJSON_IsNumber(v)) << key;
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

// Runs `bench vision <args> --reps 2 --json`; the "vision" object (null on failure).
Json BenchVision(const std::string &args, const cJSON **vision)
{
    Result r = RunCli("bench vision " + args + " --reps 2 --json");
    EXPECT_EQ(r.code, 0) << r.err;
    Json j(cJSON_Parse(r.out.c_str()), cJSON_Delete);
    *vision = j ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j.get(), "suites"), "vision")
                : nullptr;
    EXPECT_TRUE(*vision) << r.out;
    return j;
}

void ExpectTimings(const cJSON *v)
{
    for (const char *key : {"encode_s", "encode_median_s", "encode_gflop", "compute_gflops", "compute_roof_gflops",
                            "compute_roof_share", "load_ms", "weight_bytes", "activation_bytes", "device_bytes"})
        EXPECT_GT(Number(v, key), 0.0) << key;
    EXPECT_GE(Number(v, "encode_sd"), 0.0);
    EXPECT_EQ(Number(v, "reps"), 2.0);
    EXPECT_EQ(Number(v, "device_bytes"), Number(v, "weight_bytes") + Number(v, "activation_bytes"));
}

} // namespace

// The committed tiny Idefics3 encoder: every figure present and positive, and its tokens as the
// golden test's (tests/models/test_vision.cc).
TEST(BenchVision, ReportsEncodeTimeRoofAndMemoryOfAFile)
{
    const cJSON *v = nullptr;
    Json j = BenchVision("-m " VKI_TEST_DATA "/vision/idefics3.mmproj.gguf", &v);
    ASSERT_TRUE(v);
    ExpectTimings(v);
    ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "projector")));
    EXPECT_STREQ(cJSON_GetObjectItemCaseSensitive(v, "projector")->valuestring, "idefics3");
    // The result rows carry the figures with their units.
    bool found = false;
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(j.get(), "results"))
    {
        const cJSON *test = cJSON_GetObjectItemCaseSensitive(row, "test");
        const cJSON *unit = cJSON_GetObjectItemCaseSensitive(row, "unit");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(row, "value");
        if (cJSON_IsString(test) && std::string(test->valuestring) == "encode" && cJSON_IsString(unit) &&
            std::string(unit->valuestring) == "s" && cJSON_IsNumber(value) && value->valuedouble > 0)
            found = true;
    }
    EXPECT_TRUE(found);
}

// The tiny synthetic encoder: 64 px, patch 16 (16 patches), 2 layers of 64 (MLP 128), pixel
// shuffle by 2 to 4 tokens of 96. Flops by hand: patch embedding 2 x 768 x 64 x 16 = 1572864;
// each layer 2 x 16 x (4 x 64^2 + 2 x 64 x 128) + 4 x 64 x 16^2 = 1114112; the projector
// 2 x 256 x 96 x 4 = 196608: 3997696 in all.
TEST(BenchVision, TheTinySyntheticEncoderCountsItsFlops)
{
    const cJSON *v = nullptr;
    Json j = BenchVision("--synthetic smolvlm-tiny", &v);
    ASSERT_TRUE(v);
    ExpectTimings(v);
    EXPECT_NEAR(Number(v, "encode_gflop"), 0.003997696, 0.000001);
    EXPECT_EQ(Number(v, "n_tokens"), 4.0);
    EXPECT_EQ(Number(v, "n_embd"), 96.0);
    // Weights: F16 matrices (patch 98304, positions 2048, 2 layers x 65536, projector 49152
    // bytes) and F32 norms and biases (6400 bytes) at least.
    EXPECT_GE(Number(v, "weight_bytes"), 286976.0);
    Result r = RunCli("bench vision --synthetic nope");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("smolvlm-256m"), std::string::npos) << r.err;
    r = RunCli("bench vision");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("--synthetic"), std::string::npos) << r.err;
}

// Qwen2.5-VL counts three MLP matrices (gated) and, in its window layers, only the query-key
// pairs within a window. The golden's tiny encoder at its file's 560 px: 40 x 40 patches (1600),
// 4 layers of 32, MLP 48, windows of 56 px = 2 x 2 merged patches (10 x 10 windows of 16
// patches), full attention in layers 1 and 3 (n_wa_pattern 2), merger to 64 over 400 tokens.
// By hand: patch embedding 2 x 588 x 32 x 1600 = 60211200; matrices 4 x 2 x 1600 x (4 x 32^2 +
// 3 x 32 x 48) = 111411200; attention 4 x 32 x (2 x 1600^2 + 2 x 100 x 16^2) = 661913600;
// merger 2 x (16 x 32^2 + 4 x 32 x 64) x 400 = 19660800: 853196800 (1.50 GFLOP with every layer
// over all patches, 0.80 with two MLP matrices).
TEST(BenchVision, Qwen25vlCountsItsGatedMlpAndWindows)
{
    const cJSON *v = nullptr;
    Json j = BenchVision("-m " VKI_TEST_DATA "/vision/qwen25vl.mmproj.gguf", &v);
    ASSERT_TRUE(v);
    EXPECT_NEAR(Number(v, "encode_gflop"), 0.8531968, 0.0001); // the JSON keeps 4 digits
    EXPECT_EQ(Number(v, "n_tokens"), 400.0);
}

// --save writes the synthetic encoder as an mmproj file (for llama-mtmd-cli), runs it from
// there, reads back as the same encoder with -m, and never overwrites; -o md prints a table.
TEST(BenchVision, SavesTheSyntheticEncoderAndRefusesAnExistingFile)
{
    char dir[] = "/tmp/vki_bench_vision_XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    std::string path = std::string(dir) + "/tiny.mmproj.gguf";
    const cJSON *v = nullptr;
    Json j = BenchVision("--synthetic smolvlm-tiny --save " + path, &v);
    ASSERT_TRUE(v);
    double weights = Number(v, "weight_bytes"), flops = Number(v, "encode_gflop");
    const cJSON *w = nullptr;
    Json j2 = BenchVision("-m " + path, &w);
    ASSERT_TRUE(w);
    EXPECT_EQ(Number(w, "weight_bytes"), weights);
    EXPECT_EQ(Number(w, "encode_gflop"), flops);
    struct stat before {}, after {};
    ASSERT_EQ(stat(path.c_str(), &before), 0);
    Result r = RunCli("bench vision --synthetic smolvlm-tiny --save " + path + " --reps 1");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
    ASSERT_EQ(stat(path.c_str(), &after), 0);
    EXPECT_EQ(before.st_size, after.st_size);
    EXPECT_EQ(before.st_mtime, after.st_mtime);
    r = RunCli("bench vision -m " + path + " --save " + std::string(dir) + "/x.gguf");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("--synthetic"), std::string::npos) << r.err;
    r = RunCli("bench vision -m " + path + " --reps 1 -o md");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("encode"), std::string::npos) << r.out;
    unlink(path.c_str());
    rmdir(dir);
}
