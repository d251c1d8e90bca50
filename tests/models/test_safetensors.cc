// The safetensors reader: valid files as the format's specification lays them out, every
// malformed header and offset refused with a message that names the cause, random corruption
// never read out of bounds, and a file as a weight source of the shared weights module.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/fifo_watchdog.h"
#include "runtime/test_support.h"

extern "C" {
#include "model_internal.h"
}

namespace {

// 8-byte little-endian header length, the header, then the data buffer.
std::vector<uint8_t> File(const std::string &header, const std::vector<uint8_t> &data)
{
    std::vector<uint8_t> b(8);
    for (int i = 0; i < 8; i++) b[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), data.begin(), data.end());
    return b;
}

std::vector<uint8_t> Bytes(size_t n)
{
    std::vector<uint8_t> d(n);
    for (size_t i = 0; i < n; i++) d[i] = uint8_t(i * 7 + 1);
    return d;
}

// A valid file: a [2, 3] F16 tensor (12 bytes) then a [4] F32 one (16), with metadata.
const std::string kValid = R"({"__metadata__":{"format":"pt"},)"
                           R"("b.weight":{"dtype":"F32","shape":[4],"data_offsets":[12,28]},)"
                           R"("a.weight":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}})";

struct Opened {
    vki_safetensors *s = nullptr;
    vki_status st = VKI_OK;
    char err[256] = "";
    std::vector<uint8_t> bytes;
    explicit Opened(std::vector<uint8_t> b) : bytes(std::move(b))
    {
        st = vki_safetensors_open_memory(bytes.data(), bytes.size(), nullptr, &s, err, sizeof err);
    }
    ~Opened() { vki_safetensors_close(s); }
    bool says(const char *text) const { return std::string(err).find(text) != std::string::npos; }
};

TEST(Safetensors, ReadsAValidFile)
{
    Opened o(File(kValid + "  ", Bytes(28))); // space padding after the object is allowed
    ASSERT_EQ(o.st, VKI_OK) << o.err;
    EXPECT_EQ(vki_safetensors_tensor_count(o.s), 2u);
    vki_safetensors_tensor t;
    ASSERT_EQ(vki_safetensors_tensor_at(o.s, 0, &t), VKI_OK);
    EXPECT_STREQ(t.name, "a.weight"); // sorted by name
    ASSERT_EQ(vki_safetensors_find(o.s, "a.weight", &t), VKI_OK);
    EXPECT_EQ(t.dtype, VKI_DTYPE_F16);
    EXPECT_EQ(t.n_dims, 2u);
    EXPECT_EQ(t.ne[0], 3); // the last shape entry is the contiguous one
    EXPECT_EQ(t.ne[1], 2);
    EXPECT_EQ(t.ne[2], 1);
    EXPECT_EQ(t.size, 12u);
    EXPECT_EQ(static_cast<const uint8_t *>(t.data), o.bytes.data() + 8 + kValid.size() + 2);
    ASSERT_EQ(vki_safetensors_find(o.s, "b.weight", &t), VKI_OK);
    EXPECT_EQ(t.dtype, VKI_DTYPE_F32);
    EXPECT_EQ(static_cast<const uint8_t *>(t.data), o.bytes.data() + 8 + kValid.size() + 2 + 12);
    EXPECT_EQ(vki_safetensors_find(o.s, "c.weight", &t), VKI_ERROR_NOT_FOUND);
    EXPECT_STREQ(vki_safetensors_metadata(o.s, "format"), "pt");
    EXPECT_EQ(vki_safetensors_metadata(o.s, "missing"), nullptr);
}

TEST(Safetensors, OtherTypesAreReadButNotComputedWith)
{
    Opened o(File(R"({"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},)"
                  R"("s":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})", Bytes(8)));
    ASSERT_EQ(o.st, VKI_OK) << o.err;
    vki_safetensors_tensor t;
    EXPECT_EQ(vki_safetensors_find(o.s, "q", &t), VKI_ERROR_UNSUPPORTED);
    EXPECT_EQ(t.dtype, VKI_DTYPE_NONE);
    EXPECT_STREQ(t.type_name, "F8_E4M3");
    EXPECT_NE(std::string(vki_safetensors_last_error(o.s)).find("F8_E4M3"), std::string::npos);
    ASSERT_EQ(vki_safetensors_find(o.s, "s", &t), VKI_OK); // a scalar reads as [1]
    EXPECT_EQ(t.n_dims, 1u);
    EXPECT_EQ(t.ne[0], 1);
}

// Each malformed file, and the words its message must contain.
struct Bad {
    const char *what;
    std::vector<uint8_t> file;
    const char *says;
};

std::vector<Bad> BadFiles()
{
    auto one = [](const std::string &entry, size_t data) {
        return File("{\"t\":" + entry + "}", Bytes(data));
    };
    std::vector<uint8_t> huge(8, 0), past = File(kValid, Bytes(28));
    huge[3] = 0x10; // 256 MiB of header claimed
    past[0] = 0xff;  // header longer than the file
    return {
        {"empty", {}, "shorter than the 8-byte header length"},
        {"header over 100 MB", huge, "at most 100 MB"},
        {"header past the end", past, "in a file of"},
        {"not an object", File("[1,2]", {}), "not a JSON object"},
        {"broken JSON", File("{\"t\":{", {}), "not valid JSON"},
        {"bytes after the object", File("{}x", {}), "bytes after the header's JSON object"},
        {"duplicate names", File(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                 R"("t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", Bytes(2)),
         "tensor 't' appears twice"},
        {"unknown field", one(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1})", 1),
         "unknown field 'x'"},
        {"missing shape", one(R"({"dtype":"U8","data_offsets":[0,1]})", 1), "needs a string dtype"},
        {"unknown dtype", one(R"({"dtype":"F12","shape":[1],"data_offsets":[0,1]})", 1),
         "unknown dtype 'F12'"},
        {"five dims", one(R"({"dtype":"U8","shape":[1,1,1,1,1],"data_offsets":[0,1]})", 1),
         "5 dimensions"},
        {"negative dim", one(R"({"dtype":"U8","shape":[-1],"data_offsets":[0,1]})", 1), "not a whole number"},
        {"fractional dim", one(R"({"dtype":"U8","shape":[1.5],"data_offsets":[0,1]})", 1), "not a whole number"},
        {"overflowing shape", one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,1]})", 1),
         "too large"},
        {"offsets past the buffer", one(R"({"dtype":"U8","shape":[4],"data_offsets":[0,4]})", 2),
         "within the 2-byte buffer"},
        {"offsets reversed", one(R"({"dtype":"U8","shape":[0],"data_offsets":[2,1]})", 2), "data_offsets"},
        {"span against shape", one(R"({"dtype":"F16","shape":[3],"data_offsets":[0,4]})", 4),
         "spans 4 bytes, its shape and F16 need 6"},
        {"overlap", File(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", Bytes(6)),
         "overlapping"},
        {"gap", File(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                     R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})", Bytes(6)), "a gap"},
        {"data after the tensors", one(R"({"dtype":"U8","shape":[2],"data_offsets":[0,2]})", 5),
         "end at byte 2 of the 5-byte buffer"},
        {"metadata not strings", File(R"({"__metadata__":{"k":1}})", {}), "is not a string"},
        {"empty name", File(R"({"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})", {}), "empty name"},
    };
}

TEST(Safetensors, MalformedFilesAreRefusedWithTheCause)
{
    for (const Bad &b : BadFiles()) {
        Opened o(b.file);
        EXPECT_EQ(o.st, VKI_ERROR_BAD_FILE) << b.what;
        EXPECT_EQ(o.s, nullptr) << b.what;
        EXPECT_TRUE(o.says(b.says)) << b.what << ": " << o.err;
    }
}

// Random corruption of a valid file: opened or refused, never a crash or a read out of bounds
// (the sanitizer build runs this too; the fuzz target goes further).
TEST(Safetensors, RandomCorruptionNeverCrashes)
{
    std::vector<uint8_t> good = File(kValid, Bytes(28));
    std::mt19937 rng(5);
    for (int round = 0; round < 3000; round++) {
        std::vector<uint8_t> f = good;
        int edits = 1 + int(rng() % 4);
        for (int e = 0; e < edits; e++) f[rng() % f.size()] = uint8_t(rng());
        if (rng() % 4 == 0) f.resize(rng() % f.size());
        Opened o(f);
        if (o.st != VKI_OK) {
            EXPECT_TRUE(o.err[0]) << round;
            continue;
        }
        for (uint64_t i = 0; i < vki_safetensors_tensor_count(o.s); i++) {
            vki_safetensors_tensor t;
            ASSERT_EQ(vki_safetensors_tensor_at(o.s, i, &t), VKI_OK);
            const uint8_t *p = static_cast<const uint8_t *>(t.data);
            ASSERT_GE(p, o.bytes.data());
            ASSERT_LE(p + t.size, o.bytes.data() + o.bytes.size());
        }
    }
}

TEST(Safetensors, FifoAndMissingFilesAreRefusedWithoutBlocking)
{
    char dir[] = "/tmp/vki_st_XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    std::string fifo = std::string(dir) + "/model.safetensors";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    vki_safetensors *s = nullptr;
    char err[256];
    vki_status st = VKI_OK;
    EXPECT_TRUE(finishes_without_blocking(
        [&] { st = vki_safetensors_open(fifo.c_str(), nullptr, &s, err, sizeof err); }, fifo, 10))
        << "vki_safetensors_open waited for a writer on a FIFO";
    EXPECT_EQ(st, VKI_ERROR_IO);
    EXPECT_NE(std::string(err).find("FIFO"), std::string::npos) << err;
    unlink(fifo.c_str());
    EXPECT_EQ(vki_safetensors_open(fifo.c_str(), nullptr, &s, err, sizeof err), VKI_ERROR_NOT_FOUND);
    rmdir(dir);
}

// The reader as a weight source: the weights module takes its tensors into a program.
class SafetensorsWeightsTest : public VulkanTest {};

TEST_F(SafetensorsWeightsTest, TensorsGoThroughTheWeightsModule)
{
    open_device();
    // a.weight: F16 [2, 3] of 0.5 .. 3.0; b.weight: F32 [4]
    std::vector<uint8_t> data(28);
    const uint16_t halves[6] = {0x3800, 0x3c00, 0x3e00, 0x4000, 0x4100, 0x4200};
    memcpy(data.data(), halves, 12);
    const float fours[4] = {1, 2, 3, 4};
    memcpy(data.data() + 12, fours, 16);
    std::vector<uint8_t> bytes = File(kValid, data);
    vki_safetensors *st = nullptr;
    char err[256];
    ASSERT_EQ(vki_safetensors_open_memory(bytes.data(), bytes.size(), nullptr, &st, err, sizeof err), VKI_OK);
    vki_weights_desc wd = {};
    wd.source = vki_weight_source_safetensors(st);
    wd.device = dev;
    wd.profile = vki_device_profile(dev);
    wd.model_name = "the test model";
    vki_weights *w = nullptr;
    ASSERT_EQ(vki_weights_create(&wd, &w), VKI_OK);
    vki_program_desc pd = {};
    pd.device = dev;
    pd.profile = vki_device_profile(dev);
    vki_program *p = nullptr;
    ASSERT_EQ(vki_program_create(&pd, &p), VKI_OK);
    const int64_t ne_a[2] = {3, 2}, ne_b[1] = {4};
    vki_tensor a = vki_weights_tensor(w, p, "a.weight", 2, ne_a, false, false);
    vki_tensor b = vki_weights_tensor(w, p, "b.weight", 1, ne_b, false, false);
    ASSERT_TRUE(a.id && b.id) << vki_weights_error(w);
    vki_graph *g = vki_program_graph(p);
    vki_program_output(p, vki_cast(g, a, VKI_DTYPE_F32), "a");
    vki_program_output(p, vki_scale(g, b, 0.5f), "b");
    ASSERT_EQ(vki_weights_check_all_used(w), VKI_OK) << vki_weights_error(w);
    ASSERT_EQ(vki_weights_upload(w), VKI_OK) << vki_weights_error(w);
    ASSERT_EQ(vki_program_compile(p, w), VKI_OK) << vki_program_error(p);
    ASSERT_EQ(vki_program_run(p), VKI_OK);
    float got_a[6], got_b[4];
    ASSERT_EQ(vki_program_download(p, vki_program_tensor(p, "a"), got_a, sizeof got_a), VKI_OK);
    ASSERT_EQ(vki_program_download(p, vki_program_tensor(p, "b"), got_b, sizeof got_b), VKI_OK);
    const float want_a[6] = {0.5f, 1, 1.5f, 2, 2.5f, 3};
    for (int i = 0; i < 6; i++) EXPECT_EQ(got_a[i], want_a[i]) << i;
    for (int i = 0; i < 4; i++) EXPECT_EQ(got_b[i], fours[i] * 0.5f) << i;
    vki_program_destroy(p);
    vki_weights_destroy(w);
    vki_safetensors_close(st);
}

} // namespace
