// `vkinfer bench peak` (apps/bench_peak.c): what each peak kernel computes, on small sizes,
// against a reference written here (closed forms for the FMA chains, a byte-wise dot product,
// sums and the write pattern computed on the host), and the peaks' cache file: written after a
// measurement, read back when it matches the device, ignored and rewritten when corrupt or
// for another driver. Runs on whatever device the machine has (lavapipe in CI) with
// validation on; kernels the device lacks (fp16, int dot) skip.
#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include "bench_peak.h"
}

namespace {

constexpr uint32_t kFmaChains = 8, kFmaUnroll = 15; // abi_peak.h, restated: a change must show
constexpr uint32_t kDotChains = 16, kDotUnroll = 15;

class BenchPeak : public ::testing::Test {
  protected:
    vki_app app = {};
    bool opened = false;

    void SetUp() override
    {
        app.validation = true;
        ASSERT_EQ(vki_app_open_device(&app), VKI_EXIT_OK);
        opened = true;
    }
    void TearDown() override
    {
        int code = vki_app_close(&app, VKI_EXIT_OK);
        if (opened) EXPECT_EQ(code, VKI_EXIT_OK) << "validation messages (printed above)";
    }
    const vki_profile *prof() const { return vki_device_profile(app.device); }
};

// The sum over a thread's 32 lanes of chains x -> a x + b after `steps` steps, from the start
// values (t % 16) + 4 j + l, stepped one by one in double (exact for these small integers).
double FmaReference(uint32_t t, uint32_t steps, double a, double b)
{
    double sum = 0;
    for (uint32_t j = 0; j < kFmaChains; j++)
        for (uint32_t l = 0; l < 4; l++) {
            double x = double(t % 16 + 4 * j + l);
            for (uint32_t s = 0; s < steps; s++) x = a * x + b;
            sum += x;
        }
    return sum;
}

void CheckFma(BenchPeak *test, vki_app *app, bool fp16, uint32_t iters, float a, float b)
{
    std::vector<float> out(4096);
    uint32_t count = 0, local = 0;
    ASSERT_EQ(vki_peak_probe_fma(app, fp16, 3, iters, a, b, out.data(), (uint32_t)out.size(),
                                 &count, &local), VKI_EXIT_OK);
    ASSERT_EQ(count, 3 * local);
    ASSERT_LE(count, out.size());
    for (uint32_t t = 0; t < count; t++)
        ASSERT_EQ((double)out[t], FmaReference(t, iters * kFmaUnroll, a, b))
            << "thread " << t << ", fp" << (fp16 ? 16 : 32) << ", " << iters << " iterations, a "
            << a << ", b " << b;
}

TEST_F(BenchPeak, FmaF32ComputesTheChain)
{
    CheckFma(this, &app, false, 7, 1.0f, 1.0f);   // counts every step: 105 per lane
    CheckFma(this, &app, false, 3, 1.0f, -2.0f);
    CheckFma(this, &app, false, 5, -1.0f, 3.0f);  // the bench's own constants, odd step count
    CheckFma(this, &app, false, 4, -1.0f, 3.0f);  // even: back to the start
    CheckFma(this, &app, false, 0, 1.0f, 1.0f);   // no iterations: the start values
}

TEST_F(BenchPeak, FmaF16ComputesTheChain)
{
    if (!prof()->fp16) GTEST_SKIP() << "no fp16 arithmetic";
    CheckFma(this, &app, true, 7, 1.0f, 1.0f); // at most 46 + 105: exact in fp16
    CheckFma(this, &app, true, 5, -1.0f, 3.0f);
    CheckFma(this, &app, true, 2, 1.0f, -4.0f);
}

int32_t Sdot(uint32_t x, uint32_t w)
{
    int32_t s = 0;
    for (int k = 0; k < 4; k++) {
        int32_t xa = (int32_t)((x >> (8 * k)) & 0xff), wa = (int32_t)((w >> (8 * k)) & 0xff);
        if (xa >= 128) xa -= 256;
        if (wa >= 128) wa -= 256;
        s += xa * wa;
    }
    return s;
}

TEST_F(BenchPeak, DotComputesTheChain)
{
    if (!prof()->int_dot) GTEST_SKIP() << "no VK_KHR_shader_integer_dot_product";
    const struct { uint32_t iters, w, c; } cases[] = {
        {3, 0x7f03fd81u, 12345u}, {2, 0x80ff7f01u, 0xfffff000u}, {1, 0x01010101u, 7u}, {0, 1u, 1u}};
    for (const auto &k : cases) {
        std::vector<int32_t> out(4096);
        uint32_t count = 0, local = 0;
        ASSERT_EQ(vki_peak_probe_dot(&app, 2, k.iters, (int32_t)k.w, (int32_t)k.c, out.data(),
                                     (uint32_t)out.size(), &count, &local), VKI_EXIT_OK);
        ASSERT_EQ(count, 2 * local);
        for (uint32_t t = 0; t < count; t++) {
            uint32_t sum = 0;
            for (uint32_t j = 0; j < kDotChains; j++) {
                uint32_t x = t * 2654435761u + j * 40503u;
                for (uint32_t s = 0; s < k.iters * kDotUnroll; s++)
                    x = (uint32_t)Sdot(x, k.w) + k.c;
                sum += x;
            }
            ASSERT_EQ((uint32_t)out[t], sum) << "thread " << t << ", w " << std::hex << k.w;
        }
    }
}

TEST_F(BenchPeak, CoopmatComputesTheProducts)
{
    const vki_profile *p = prof();
    if (!p->coopmat) GTEST_SKIP() << "no cooperative matrices";
    const uint32_t m = p->coopmat_shape[0], n = p->coopmat_shape[1], k = p->coopmat_shape[2];
    const struct { uint32_t iters; float a, b; } cases[] = {
        {3, 1.0f, 1.0f}, {5, 0.5f, -2.0f}, {0, 1.0f, 1.0f}};
    for (const auto &c : cases) {
        std::vector<float> out(1 << 20);
        uint64_t count = 0;
        ASSERT_EQ(vki_peak_probe_coopmat(&app, 2, c.iters, c.a, c.b, out.data(), out.size(),
                                         &count),
                  VKI_EXIT_OK);
        // 2 workgroups of 128 threads: 256 / subgroup size blocks of M x N.
        ASSERT_EQ(count, uint64_t(256 / p->subgroup_size) * m * n);
        // Every element: 4 accumulators, each the sum over iterations of K products a * b.
        const double want = 4.0 * c.iters * k * double(c.a) * double(c.b);
        for (uint64_t i = 0; i < count; i++)
            ASSERT_EQ((double)out[i], want) << "element " << i << ", " << c.iters << " iterations";
    }
}

TEST_F(BenchPeak, ReadSumsTheWholeBufferAcrossWindows)
{
    // 5 windows of 64 KiB and a 16-byte tail; a grid smaller than the buffer (grid stride).
    const uint64_t words = 5 * 16384 + 4;
    std::vector<uint32_t> data(words);
    uint32_t want = 0, state = 12345;
    for (auto &w : data) {
        state = state * 1103515245u + 12345u;
        w = state;
        want += w;
    }
    for (uint64_t window : {uint64_t(64) << 10, uint64_t(0)}) {
        for (uint32_t groups : {1u, 3u}) {
            uint32_t got = 0;
            ASSERT_EQ(vki_peak_probe_read(&app, data.data(), words, window, groups, &got),
                      VKI_EXIT_OK);
            EXPECT_EQ(got, want) << "window " << window << ", " << groups << " workgroups";
        }
    }
    // A changed word changes the sum: the kernel reads what is there.
    data[words - 1] += 1;
    uint32_t got = 0;
    ASSERT_EQ(vki_peak_probe_read(&app, data.data(), words, 64 << 10, 2, &got), VKI_EXIT_OK);
    EXPECT_EQ(got, want + 1);
}

TEST_F(BenchPeak, WriteFillsTheWholeBufferAcrossWindows)
{
    const uint64_t words = 3 * 16384 + 40;
    const uint32_t seed = 0xdeadbeefu;
    std::vector<uint32_t> out(words, 0);
    ASSERT_EQ(vki_peak_probe_write(&app, words, 64 << 10, 2, seed, out.data()), VKI_EXIT_OK);
    for (uint64_t i = 0; i < words; i++)
        ASSERT_EQ(out[i], ((uint32_t)i * 2654435761u) ^ seed) << "word " << i;
}

std::string ReadFile(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void WriteFile(const std::string &path, const std::string &text)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
}

std::vector<std::string> FilesIn(const std::string &dir)
{
    std::vector<std::string> names;
    if (DIR *d = opendir(dir.c_str())) {
        while (dirent *e = readdir(d))
            if (e->d_name[0] != '.') names.push_back(e->d_name);
        closedir(d);
    }
    return names;
}

// The cache folder is redirected to a fresh temporary one for each test.
class BenchPeakCache : public BenchPeak {
  protected:
    std::string dir, old_xdg;
    bool had_xdg = false;
    vki_bench_opts opts = {};

    void SetUp() override
    {
        char tmpl[] = "/tmp/vki_peak_cache_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        if (const char *x = getenv("XDG_CACHE_HOME")) {
            had_xdg = true;
            old_xdg = x;
        }
        setenv("XDG_CACHE_HOME", dir.c_str(), 1);
        // Small sizes: the cache logic is under test here, not the device.
        opts.reps = 2;
        opts.copy_bytes = 4 << 20;
        opts.transfer_bytes = 2 << 20;
        BenchPeak::SetUp();
    }
    void TearDown() override
    {
        BenchPeak::TearDown();
        if (had_xdg) setenv("XDG_CACHE_HOME", old_xdg.c_str(), 1);
        else unsetenv("XDG_CACHE_HOME");
        std::string cmd = "rm -rf '" + dir + "'";
        EXPECT_EQ(system(cmd.c_str()), 0);
    }
    std::string Path()
    {
        char buf[1024];
        return vki_peaks_cache_path(prof(), buf, sizeof buf);
    }
};

TEST_F(BenchPeakCache, MeasuresWritesAndReadsBack)
{
    const std::string path = Path();
    ASSERT_EQ(path.rfind(dir + "/vkinfer/peaks-", 0), 0u) << path;

    vki_bench_peaks pk = {};
    ASSERT_EQ(vki_bench_peaks_get(&app, &opts, &pk), VKI_EXIT_OK);
    EXPECT_GT(pk.fp32_gflops, 0);
    EXPECT_GT(pk.read_gbs, 0);
    EXPECT_GT(pk.write_gbs, 0);
    EXPECT_GT(pk.copy_gbs, 0);
    EXPECT_GT(pk.upload_gbs, 0);
    EXPECT_GT(pk.download_gbs, 0);
    EXPECT_GT(pk.dispatch_us, 0);
    EXPECT_GT(pk.submit_us, 0);
    EXPECT_EQ(pk.fp16_gflops > 0, prof()->fp16);
    EXPECT_EQ(pk.int8_gops > 0, prof()->int_dot);
    EXPECT_EQ(pk.coopmat_fp16_gflops > 0, prof()->coopmat);

    // The file: the device's key and the figures, nothing left behind under a temporary name.
    cJSON *root = cJSON_Parse(ReadFile(path).c_str());
    ASSERT_NE(root, nullptr) << ReadFile(path);
    EXPECT_EQ(cJSON_GetObjectItem(root, "vendor_id")->valuedouble, prof()->vendor_id);
    EXPECT_STREQ(cJSON_GetObjectItem(root, "device")->valuestring, prof()->name);
    cJSON *peaks = cJSON_GetObjectItem(root, "peaks");
    ASSERT_NE(peaks, nullptr);
    EXPECT_NEAR(cJSON_GetObjectItem(peaks, "fp32_gflops")->valuedouble, pk.fp32_gflops,
                pk.fp32_gflops * 1e-3);
    if (!prof()->coopmat)
        EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(peaks, "coopmat_fp16_gflops")));
    for (const std::string &name : FilesIn(dir + "/vkinfer"))
        EXPECT_EQ(name.find(".tmp"), std::string::npos) << name << " left behind";

    // A file that matches is read, not re-measured: a figure changed in it comes back.
    cJSON_ReplaceItemInObject(peaks, "fp32_gflops", cJSON_CreateNumber(12345.5));
    cJSON_ReplaceItemInObject(peaks, "read_gbs", cJSON_CreateNumber(678.25));
    char *text = cJSON_Print(root);
    WriteFile(path, text);
    free(text);
    vki_bench_peaks cached = {};
    ASSERT_EQ(vki_bench_peaks_get(&app, &opts, &cached), VKI_EXIT_OK);
    EXPECT_EQ(cached.fp32_gflops, 12345.5);
    EXPECT_EQ(cached.read_gbs, 678.25);
    EXPECT_NEAR(cached.write_gbs, pk.write_gbs, pk.write_gbs * 1e-3);

    // Another driver version: measured again and rewritten.
    cJSON_ReplaceItemInObject(root, "driver_version",
                              cJSON_CreateNumber(prof()->driver_version + 1.0));
    text = cJSON_Print(root);
    WriteFile(path, text);
    free(text);
    cJSON_Delete(root);
    vki_bench_peaks fresh = {};
    ASSERT_EQ(vki_bench_peaks_get(&app, &opts, &fresh), VKI_EXIT_OK);
    EXPECT_NE(fresh.fp32_gflops, 12345.5);
    EXPECT_GT(fresh.fp32_gflops, 0);
    root = cJSON_Parse(ReadFile(path).c_str());
    ASSERT_NE(root, nullptr);
    EXPECT_EQ(cJSON_GetObjectItem(root, "driver_version")->valuedouble, prof()->driver_version);
    cJSON_Delete(root);
}

TEST_F(BenchPeakCache, CorruptFileIsIgnoredAndRewritten)
{
    const std::string path = Path();
    std::string folder = path.substr(0, path.rfind('/'));
    ASSERT_EQ(system(("mkdir -p '" + folder + "'").c_str()), 0);
    for (const std::string bad : {std::string("{\"schema\": 1, \"peaks\": {\"fp32_gflops\": 9"),
                                  std::string("\x00\x01garbage", 9), std::string("")}) {
        WriteFile(path, bad);
        vki_bench_peaks pk = {};
        ASSERT_EQ(vki_bench_peaks_get(&app, &opts, &pk), VKI_EXIT_OK);
        EXPECT_GT(pk.fp32_gflops, 0);
        cJSON *root = cJSON_Parse(ReadFile(path).c_str());
        ASSERT_NE(root, nullptr) << "not rewritten after: " << bad;
        EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(root, "peaks")));
        cJSON_Delete(root);
        for (const std::string &name : FilesIn(folder))
            EXPECT_EQ(name.find(".tmp"), std::string::npos) << name << " left behind";
    }
}

// Finds `key` anywhere in the document (the suite's object, wherever the output format puts it).
const cJSON *FindKey(const cJSON *node, const char *key)
{
    for (const cJSON *c = node ? node->child : nullptr; c; c = c->next) {
        if (c->string && strcmp(c->string, key) == 0) return c;
        if (const cJSON *found = FindKey(c, key)) return found;
    }
    return nullptr;
}

// Something other than a regular file at the cache's path: a FIFO (whose open would wait for a
// writer for ever) and a link to a file whose figures match are not read; the measurement
// replaces them with a file, and the link's target is left as it was.
TEST_F(BenchPeakCache, FifoOrLinkIsNotRead)
{
    const std::string path = Path();
    std::string folder = path.substr(0, path.rfind('/'));
    ASSERT_EQ(system(("mkdir -p '" + folder + "'").c_str()), 0);
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    vki_bench_peaks pk = {};
    ASSERT_EQ(vki_bench_peaks_get(&app, &opts, &pk), VKI_EXIT_OK);
    EXPECT_GT(pk.fp32_gflops, 0);
    struct stat st = {};
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << "the FIFO was not replaced";

    // A valid entry with an edited figure, moved elsewhere and linked to.
    cJSON *root = cJSON_Parse(ReadFile(path).c_str());
    ASSERT_NE(root, nullptr);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "peaks"), "fp32_gflops",
                              cJSON_CreateNumber(12345.5));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    const std::string target = dir + "/elsewhere.json";
    WriteFile(target, text);
    free(text);
    ASSERT_EQ(unlink(path.c_str()), 0);
    ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
    const std::string before = ReadFile(target);
    ASSERT_EQ(vki_bench_peaks_get(&app, &opts, &pk), VKI_EXIT_OK);
    EXPECT_NE(pk.fp32_gflops, 12345.5) << "read through the link";
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << "the link was not replaced";
    EXPECT_EQ(ReadFile(target), before) << "written through the link";
}

// `vkinfer bench peak --json` as a user runs it: every figure present (null where the device
// lacks the feature), the cache file written, validation clean (exit 3 otherwise).
TEST_F(BenchPeakCache, CommandLine)
{
    std::string out_path = dir + "/out.json";
    std::string cmd = "XDG_CACHE_HOME='" + dir + "' VKI_VALIDATION=1 '" VKINFER_EXE
                      "' bench peak --json --reps 2 --copy-mib 4 --transfer-mib 2 > '" +
                      out_path + "'";
    int status = system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    cJSON *root = cJSON_Parse(ReadFile(out_path).c_str());
    ASSERT_NE(root, nullptr) << ReadFile(out_path);
    for (const char *key : {"fp32_gflops", "read_gbs", "write_gbs", "copy_gbs", "upload_gbs",
                            "download_gbs", "dispatch_us", "submit_us"}) {
        const cJSON *v = FindKey(root, key);
        ASSERT_NE(v, nullptr) << key;
        EXPECT_TRUE(cJSON_IsNumber(v) && v->valuedouble > 0) << key;
    }
    const struct { const char *key; bool present; } optional[] = {
        {"fp16_gflops", prof()->fp16}, {"int8_gops", prof()->int_dot},
        {"coopmat_fp16_gflops", prof()->coopmat}};
    for (const auto &o : optional) {
        const cJSON *v = FindKey(root, o.key);
        ASSERT_NE(v, nullptr) << o.key;
        EXPECT_EQ(cJSON_IsNumber(v) && v->valuedouble > 0, o.present) << o.key;
        EXPECT_EQ(cJSON_IsNull(v), !o.present) << o.key;
    }
    cJSON_Delete(root);
    cJSON *cache = cJSON_Parse(ReadFile(Path()).c_str());
    ASSERT_NE(cache, nullptr) << "no cache file at " << Path();
    EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(cache, "peaks")));
    cJSON_Delete(cache);
}

} // namespace
