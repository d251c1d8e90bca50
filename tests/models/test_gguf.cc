// GGUF reader: valid files read back exactly, every malformed class rejected with a message
// naming the field, and hostile input (truncation, random corruption) never crashing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "runtime/fifo_watchdog.h"
#include "vkinfer_models.h"

namespace {

// Little-endian byte writer for building test files (test-only, not production code).
struct W {
    std::vector<uint8_t> b;
    void u8(uint8_t v) { b.push_back(v); }
    void u16(uint16_t v) { for (int i = 0; i < 2; i++) u8(uint8_t(v >> (8 * i))); }
    void u32(uint32_t v) { for (int i = 0; i < 4; i++) u8(uint8_t(v >> (8 * i))); }
    void u64(uint64_t v) { for (int i = 0; i < 8; i++) u8(uint8_t(v >> (8 * i))); }
    void f32(float f) { uint32_t u; memcpy(&u, &f, 4); u32(u); }
    void f64(double d) { uint64_t u; memcpy(&u, &d, 8); u64(u); }
    void str(const std::string &s) { u64(s.size()); b.insert(b.end(), s.begin(), s.end()); }
    void raw(const W &o) { b.insert(b.end(), o.b.begin(), o.b.end()); }
};

// GGUF file codes.
enum : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 };
enum : uint32_t { G_F32 = 0, G_F16 = 1, G_Q4_0 = 2, G_Q2_K = 10 };

struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t size;         // bytes of data to place
    int64_t offset = -1;   // -1: next aligned offset
};

struct Gguf {
    uint32_t version = 3;
    uint32_t alignment = 32; // used for placement; add general.alignment yourself to change it
    uint64_t n_kv = 0;
    W kv;
    std::vector<Tensor> tensors;
    int64_t n_tensors_override = -1, n_kv_override = -1;

    W &key(const std::string &k, uint32_t type) { n_kv++; kv.str(k); kv.u32(type); return kv; }
    void tensor(const std::string &name, std::vector<uint64_t> ne, uint32_t type, uint64_t size,
                int64_t offset = -1) { tensors.push_back({name, ne, type, size, offset}); }

    std::vector<uint8_t> build() const {
        W w;
        w.u32(0x46554747); // "GGUF"
        w.u32(version);
        w.u64(n_tensors_override >= 0 ? uint64_t(n_tensors_override) : tensors.size());
        w.u64(n_kv_override >= 0 ? uint64_t(n_kv_override) : n_kv);
        w.raw(kv);
        std::vector<uint64_t> offs;
        uint64_t next = 0, end = 0;
        for (const Tensor &t : tensors) {
            uint64_t o = t.offset >= 0 ? uint64_t(t.offset) : next;
            offs.push_back(o);
            next = (o + t.size + alignment - 1) / alignment * alignment;
            if (o < (1u << 30)) end = std::max(end, o + t.size); // absurd offsets get no bytes
            w.str(t.name);
            w.u32(uint32_t(t.ne.size()));
            for (uint64_t d : t.ne) w.u64(d);
            w.u32(t.type);
            w.u64(o);
        }
        while (w.b.size() % alignment) w.u8(0);
        size_t data = w.b.size();
        w.b.resize(data + end, 0);
        for (size_t k = 0; k < tensors.size(); k++)
            for (uint64_t i = 0; i < tensors[k].size && offs[k] + i < end; i++)
                w.b[data + offs[k] + i] = uint8_t(k * 31 + i);
        return w.b;
    }
};

struct Opened {
    vki_gguf *g = nullptr;
    vki_status status;
    char err[256];
    std::vector<uint8_t> bytes; // kept alive for the borrowed open
    explicit Opened(std::vector<uint8_t> b) : bytes(std::move(b)) {
        status = vki_gguf_open_memory(bytes.data(), bytes.size(), nullptr, &g, err, sizeof err);
    }
    ~Opened() { vki_gguf_close(g); }
};

// Expects VKI_ERROR_BAD_FILE with every fragment in the message.
void expect_bad(const Gguf &f, std::initializer_list<const char *> fragments) {
    Opened o(f.build());
    ASSERT_EQ(o.status, VKI_ERROR_BAD_FILE) << o.err;
    EXPECT_EQ(o.g, nullptr);
    for (const char *s : fragments) EXPECT_NE(std::string(o.err).find(s), std::string::npos)
        << "missing '" << s << "' in: " << o.err;
}

std::string S(vki_gguf_string s) { return std::string(s.data, s.size); }

// A small valid v3 file with every metadata type and three tensors.
Gguf full_file() {
    Gguf f;
    f.key("general.architecture", STR).str("llama");
    f.key("t.u8", U8).u8(200);
    f.key("t.i8", I8).u8(uint8_t(-5));
    f.key("t.u16", U16).u16(60000);
    f.key("t.i16", I16).u16(uint16_t(-300));
    f.key("llama.block_count", U32).u32(32);
    f.key("t.i32", I32).u32(uint32_t(-70000));
    f.key("t.f32", F32).f32(1.5f);
    f.key("t.bool", BOOL).u8(1);
    f.key("t.u64", U64).u64(1ull << 40);
    f.key("t.i64", I64).u64(uint64_t(-(1ll << 40)));
    f.key("t.f64", F64).f64(0.25);
    W &a = f.key("tokenizer.ggml.tokens", ARR);
    a.u32(STR); a.u64(3); a.str("<s>"); a.str(""); a.str("hello");
    W &b = f.key("t.scores", ARR);
    b.u32(F32); b.u64(2); b.f32(-1.0f); b.f32(2.0f);
    W &c = f.key("t.merges2", ARR); // array of arrays of strings
    c.u32(ARR); c.u64(2);
    c.u32(STR); c.u64(2); c.str("a"); c.str("bc");
    c.u32(STR); c.u64(0);
    W &d = f.key("t.ids", ARR);
    d.u32(I32); d.u64(3); d.u32(1); d.u32(uint32_t(-2)); d.u32(3);
    f.tensor("tok_embd.weight", {8, 4}, G_F32, 8 * 4 * 4);
    f.tensor("blk.0.attn_norm.weight", {8}, G_F16, 8 * 2);
    f.tensor("blk.0.attn_q.weight", {64, 2}, G_Q4_0, 2 * 2 * 18);
    return f;
}

TEST(Gguf, ReadsEveryMetadataTypeExactly) {
    Opened o(full_file().build());
    ASSERT_EQ(o.status, VKI_OK) << o.err;
    vki_gguf *g = o.g;
    EXPECT_EQ(vki_gguf_version(g), 3u);
    EXPECT_EQ(vki_gguf_alignment(g), 32u);
    EXPECT_EQ(vki_gguf_kv_count(g), 16u);
    EXPECT_EQ(vki_gguf_data_offset(g) % 32, 0u);

    vki_gguf_string s;
    ASSERT_EQ(vki_gguf_get_string(g, "general.architecture", &s), VKI_OK);
    EXPECT_EQ(S(s), "llama");
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    bool bo = false;
    ASSERT_EQ(vki_gguf_get_u32(g, "t.u8", &u32), VKI_OK); EXPECT_EQ(u32, 200u);
    ASSERT_EQ(vki_gguf_get_i64(g, "t.i8", &i64), VKI_OK); EXPECT_EQ(i64, -5);
    ASSERT_EQ(vki_gguf_get_u32(g, "t.u16", &u32), VKI_OK); EXPECT_EQ(u32, 60000u);
    ASSERT_EQ(vki_gguf_get_i64(g, "t.i16", &i64), VKI_OK); EXPECT_EQ(i64, -300);
    ASSERT_EQ(vki_gguf_get_u32(g, "llama.block_count", &u32), VKI_OK); EXPECT_EQ(u32, 32u);
    ASSERT_EQ(vki_gguf_get_i64(g, "t.i32", &i64), VKI_OK); EXPECT_EQ(i64, -70000);
    ASSERT_EQ(vki_gguf_get_f32(g, "t.f32", &f), VKI_OK); EXPECT_EQ(f, 1.5f);
    ASSERT_EQ(vki_gguf_get_bool(g, "t.bool", &bo), VKI_OK); EXPECT_TRUE(bo);
    ASSERT_EQ(vki_gguf_get_u64(g, "t.u64", &u64), VKI_OK); EXPECT_EQ(u64, 1ull << 40);
    ASSERT_EQ(vki_gguf_get_i64(g, "t.i64", &i64), VKI_OK); EXPECT_EQ(i64, -(1ll << 40));
    ASSERT_EQ(vki_gguf_get_f32(g, "t.f64", &f), VKI_OK); EXPECT_EQ(f, 0.25f);

    vki_gguf_array a;
    ASSERT_EQ(vki_gguf_get_array(g, "tokenizer.ggml.tokens", &a), VKI_OK);
    EXPECT_EQ(a.type, VKI_GGUF_TYPE_STRING);
    ASSERT_EQ(a.count, 3u);
    EXPECT_EQ(a.data, nullptr);
    const char *want[] = {"<s>", "", "hello"};
    for (uint64_t i = 0; i < 3; i++) {
        ASSERT_EQ(vki_gguf_array_get_string(g, &a, i, &s), VKI_OK);
        EXPECT_EQ(S(s), want[i]);
    }
    EXPECT_EQ(vki_gguf_array_get_string(g, &a, 3, &s), VKI_ERROR_INVALID_ARGUMENT);

    ASSERT_EQ(vki_gguf_get_array(g, "t.scores", &a), VKI_OK);
    ASSERT_EQ(a.count, 2u);
    ASSERT_NE(a.data, nullptr);
    ASSERT_EQ(vki_gguf_array_get_f32(g, &a, 1, &f), VKI_OK); EXPECT_EQ(f, 2.0f);
    memcpy(&f, a.data, 4); EXPECT_EQ(f, -1.0f);

    ASSERT_EQ(vki_gguf_get_array(g, "t.ids", &a), VKI_OK);
    ASSERT_EQ(vki_gguf_array_get_i64(g, &a, 1, &i64), VKI_OK); EXPECT_EQ(i64, -2);
    EXPECT_EQ(vki_gguf_array_get_u32(g, &a, 1, &u32), VKI_ERROR_BAD_FILE); // -2 is not a u32
    ASSERT_EQ(vki_gguf_array_get_u32(g, &a, 2, &u32), VKI_OK); EXPECT_EQ(u32, 3u);

    vki_gguf_array outer, inner;
    ASSERT_EQ(vki_gguf_get_array(g, "t.merges2", &outer), VKI_OK);
    ASSERT_EQ(outer.type, VKI_GGUF_TYPE_ARRAY);
    ASSERT_EQ(outer.count, 2u);
    ASSERT_EQ(vki_gguf_array_get_array(g, &outer, 0, &inner), VKI_OK);
    ASSERT_EQ(inner.count, 2u);
    ASSERT_EQ(vki_gguf_array_get_string(g, &inner, 1, &s), VKI_OK); EXPECT_EQ(S(s), "bc");
    ASSERT_EQ(vki_gguf_array_get_array(g, &outer, 1, &inner), VKI_OK);
    EXPECT_EQ(inner.count, 0u);
    EXPECT_EQ(vki_gguf_array_get_string(g, &outer, 0, &s), VKI_ERROR_BAD_FILE);

    vki_gguf_string key;
    vki_gguf_type type;
    ASSERT_EQ(vki_gguf_kv_info(g, 5, &key, &type), VKI_OK);
    EXPECT_EQ(S(key), "llama.block_count");
    EXPECT_EQ(type, VKI_GGUF_TYPE_U32);
    uint64_t idx;
    ASSERT_EQ(vki_gguf_find(g, "t.f64", &idx, &type), VKI_OK);
    EXPECT_EQ(idx, 11u);
    EXPECT_EQ(type, VKI_GGUF_TYPE_F64);
}

TEST(Gguf, TypedGettersCheckTypesAndNameTheKey) {
    Opened o(full_file().build());
    ASSERT_EQ(o.status, VKI_OK) << o.err;
    uint32_t u32 = 7;
    EXPECT_EQ(vki_gguf_get_u32(o.g, "llama.missing", &u32), VKI_ERROR_NOT_FOUND);
    EXPECT_NE(std::string(vki_gguf_last_error(o.g)).find("llama.missing"), std::string::npos);
    EXPECT_EQ(vki_gguf_get_u32(o.g, "general.architecture", &u32), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(vki_gguf_last_error(o.g)).find("general.architecture"),
              std::string::npos);
    EXPECT_EQ(u32, 7u);
    EXPECT_EQ(vki_gguf_get_u32(o.g, "t.i8", &u32), VKI_ERROR_BAD_FILE); // negative
    EXPECT_EQ(vki_gguf_get_u32(o.g, "t.u64", &u32), VKI_ERROR_BAD_FILE); // too large
    float f;
    bool b;
    vki_gguf_string s;
    vki_gguf_array a;
    EXPECT_EQ(vki_gguf_get_f32(o.g, "t.u8", &f), VKI_ERROR_BAD_FILE);
    EXPECT_EQ(vki_gguf_get_bool(o.g, "t.u8", &b), VKI_ERROR_BAD_FILE);
    EXPECT_EQ(vki_gguf_get_string(o.g, "t.bool", &s), VKI_ERROR_BAD_FILE);
    EXPECT_EQ(vki_gguf_get_array(o.g, "t.f32", &a), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(vki_gguf_last_error(o.g)).find("t.f32"), std::string::npos);
}

TEST(Gguf, TensorsHaveShapesDtypesAndAlignedData) {
    Opened o(full_file().build());
    ASSERT_EQ(o.status, VKI_OK) << o.err;
    ASSERT_EQ(vki_gguf_tensor_count(o.g), 3u);
    struct { const char *name; vki_dtype dtype; int64_t ne0, ne1; uint64_t size; } want[] = {
        {"tok_embd.weight", VKI_DTYPE_F32, 8, 4, 128},
        {"blk.0.attn_norm.weight", VKI_DTYPE_F16, 8, 1, 16},
        {"blk.0.attn_q.weight", VKI_DTYPE_Q4_0, 64, 2, 72},
    };
    for (size_t k = 0; k < 3; k++) {
        vki_gguf_tensor t;
        ASSERT_EQ(vki_gguf_find_tensor(o.g, want[k].name, &t), VKI_OK);
        EXPECT_STREQ(t.name, want[k].name);
        EXPECT_EQ(t.dtype, want[k].dtype);
        EXPECT_EQ(t.ne[0], want[k].ne0);
        EXPECT_EQ(t.ne[1], want[k].ne1);
        EXPECT_EQ(t.ne[2], 1);
        EXPECT_EQ(t.ne[3], 1);
        EXPECT_EQ(t.size, want[k].size);
        EXPECT_EQ(t.size, vki_dtype_bytes(t.dtype, t.ne[0] * t.ne[1]));
        EXPECT_EQ(t.offset % 32, 0u);
        EXPECT_EQ(uint64_t((const uint8_t *)t.data - o.bytes.data()),
                  vki_gguf_data_offset(o.g) + t.offset);
        const uint8_t *d = (const uint8_t *)t.data;
        for (uint64_t i = 0; i < t.size; i++) ASSERT_EQ(d[i], uint8_t(k * 31 + i));
        vki_gguf_tensor at;
        ASSERT_EQ(vki_gguf_tensor_at(o.g, k, &at), VKI_OK);
        EXPECT_STREQ(at.name, want[k].name);
    }
    vki_gguf_tensor t;
    EXPECT_EQ(vki_gguf_find_tensor(o.g, "nope", &t), VKI_ERROR_NOT_FOUND);
    EXPECT_EQ(vki_gguf_tensor_at(o.g, 3, &t), VKI_ERROR_INVALID_ARGUMENT);
}

TEST(Gguf, UnsupportedGgmlTypeIsListedButNotUsable) {
    Gguf f;
    f.tensor("w", {256, 2}, G_Q2_K, 2 * 84);
    Opened o(f.build());
    ASSERT_EQ(o.status, VKI_OK) << o.err;
    vki_gguf_tensor t;
    ASSERT_EQ(vki_gguf_tensor_at(o.g, 0, &t), VKI_OK);
    EXPECT_EQ(t.dtype, VKI_DTYPE_NONE);
    EXPECT_EQ(t.ggml_type, 10u);
    EXPECT_EQ(t.size, 168u);
    EXPECT_EQ(vki_gguf_find_tensor(o.g, "w", &t), VKI_ERROR_UNSUPPORTED);
    EXPECT_NE(std::string(vki_gguf_last_error(o.g)).find("q2_K"), std::string::npos);
}

TEST(Gguf, ReadsVersion2AndCustomAlignment) {
    Gguf f;
    f.version = 2;
    f.alignment = 64;
    f.key("general.alignment", U32).u32(64);
    f.tensor("a", {3}, G_F32, 12);
    f.tensor("b", {5}, G_F32, 20);
    Opened o(f.build());
    ASSERT_EQ(o.status, VKI_OK) << o.err;
    EXPECT_EQ(vki_gguf_version(o.g), 2u);
    EXPECT_EQ(vki_gguf_alignment(o.g), 64u);
    EXPECT_EQ(vki_gguf_data_offset(o.g) % 64, 0u);
    vki_gguf_tensor t;
    ASSERT_EQ(vki_gguf_find_tensor(o.g, "b", &t), VKI_OK);
    EXPECT_EQ(t.offset, 64u);
}

TEST(Gguf, OpensFromDiskAndReportsMissingFiles) {
    std::vector<uint8_t> bytes = full_file().build();
    std::string path = testing::TempDir() + "vki_gguf_test.gguf";
    FILE *fp = fopen(path.c_str(), "wb");
    ASSERT_NE(fp, nullptr);
    ASSERT_EQ(fwrite(bytes.data(), 1, bytes.size(), fp), bytes.size());
    fclose(fp);
    char err[256];
    vki_gguf *g = nullptr;
    ASSERT_EQ(vki_gguf_open(path.c_str(), nullptr, &g, err, sizeof err), VKI_OK) << err;
    vki_gguf_tensor t;
    ASSERT_EQ(vki_gguf_find_tensor(g, "blk.0.attn_q.weight", &t), VKI_OK);
    EXPECT_EQ(((const uint8_t *)t.data)[5], uint8_t(2 * 31 + 5));
    vki_gguf_close(g);

    fp = fopen(path.c_str(), "wb"); // empty file
    fclose(fp);
    EXPECT_EQ(vki_gguf_open(path.c_str(), nullptr, &g, err, sizeof err), VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(err).find("magic"), std::string::npos) << err;
    remove(path.c_str());
    EXPECT_EQ(vki_gguf_open(path.c_str(), nullptr, &g, err, sizeof err), VKI_ERROR_NOT_FOUND);
    EXPECT_NE(std::string(err).find(path), std::string::npos) << err;
    EXPECT_EQ(g, nullptr);
}

TEST(Gguf, RefusesFifosAndDirectoriesWithoutBlocking) {
    char tmpl[] = "/tmp/vki_gguf_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl, fifo = dir + "/model.gguf";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    char err[256] = "";
    vki_gguf *g = nullptr;
    vki_status st = VKI_OK;
    EXPECT_TRUE(finishes_without_blocking(
        [&] { st = vki_gguf_open(fifo.c_str(), nullptr, &g, err, sizeof err); }, fifo, 10))
        << "vki_gguf_open waited for a writer on a FIFO";
    EXPECT_EQ(st, VKI_ERROR_IO);
    EXPECT_NE(std::string(err).find(fifo + ": cannot open: is a FIFO, not a regular file"),
              std::string::npos) << err;
    EXPECT_EQ(g, nullptr);

    EXPECT_EQ(vki_gguf_open(dir.c_str(), nullptr, &g, err, sizeof err), VKI_ERROR_IO);
    EXPECT_NE(std::string(err).find(dir + ": cannot open: is a directory, not a regular file"),
              std::string::npos) << err;
    EXPECT_EQ(g, nullptr);
    vki_gguf_close(g);
    unlink(fifo.c_str());
    rmdir(dir.c_str());
}

struct Counting {
    int live = 0;
    static void *alloc(void *u, size_t n) { static_cast<Counting *>(u)->live++; return malloc(n); }
    static void free_(void *u, void *p) { if (p) static_cast<Counting *>(u)->live--; free(p); }
};

TEST(Gguf, AllocatorHookBalancesOnSuccessAndFailure) {
    Counting c;
    vki_allocator a = {Counting::alloc, Counting::free_, &c};
    vki_gguf_desc desc = {&a};
    std::vector<uint8_t> bytes = full_file().build();
    vki_gguf *g = nullptr;
    ASSERT_EQ(vki_gguf_open_memory(bytes.data(), bytes.size(), &desc, &g, nullptr, 0), VKI_OK);
    EXPECT_GT(c.live, 0);
    vki_gguf_close(g);
    EXPECT_EQ(c.live, 0);
    bytes.resize(bytes.size() - 1);
    EXPECT_EQ(vki_gguf_open_memory(bytes.data(), bytes.size(), &desc, &g, nullptr, 0),
              VKI_ERROR_BAD_FILE);
    EXPECT_EQ(c.live, 0);
}

// ---- Malformed files: each class fails with BAD_FILE naming the field ----

TEST(GgufBad, Magic) {
    std::vector<uint8_t> b = full_file().build();
    b[0] = 'X';
    Opened o(b);
    EXPECT_EQ(o.status, VKI_ERROR_BAD_FILE);
    EXPECT_NE(std::string(o.err).find("magic at offset 0"), std::string::npos) << o.err;
}

TEST(GgufBad, Versions) {
    Gguf f;
    f.version = 1;
    expect_bad(f, {"version", "v1"});
    f.version = 4;
    expect_bad(f, {"version", "4"});
    f.version = 0x03000000; // a big-endian v3 file read as little-endian
    expect_bad(f, {"version", "big-endian"});
}

TEST(GgufBad, CountsThatCannotFitTheFile) {
    Gguf f = full_file();
    f.n_tensors_override = int64_t(1) << 40;
    expect_bad(f, {"tensor count", "offset 8"});
    f.n_tensors_override = -1;
    f.n_kv_override = 1000;
    expect_bad(f, {"kv count", "offset 16"});
    f.n_kv_override = INT64_MAX; // count * 13 overflows
    expect_bad(f, {"kv count"});
}

TEST(GgufBad, HugeStringLength) {
    Gguf f;
    f.n_kv++;
    f.kv.u64(~0ull); // key length
    f.kv.u32(U8);
    f.kv.u8(1);
    expect_bad(f, {"key at offset 24", "exceeds"});
    Gguf v;
    v.key("k", STR).u64(1ull << 62);
    expect_bad(v, {"string value", "exceeds"});
}

TEST(GgufBad, UnknownMetadataTypes) {
    Gguf f;
    f.key("k", 13).u32(0);
    expect_bad(f, {"value type", "unknown metadata type 13"});
    Gguf a;
    W &w = a.key("k", ARR);
    w.u32(99); w.u64(0);
    expect_bad(a, {"array element type", "99"});
}

TEST(GgufBad, ArrayCountTooLargeAndNestingTooDeep) {
    Gguf f;
    W &w = f.key("k", ARR);
    w.u32(U64); w.u64(1ull << 61); // * 8 overflows
    expect_bad(f, {"array count"});
    Gguf s;
    W &ws = s.key("k", ARR);
    ws.u32(STR); ws.u64(1000);
    expect_bad(s, {"array count", "1000 string"});
    Gguf d;
    W &wd = d.key("k", ARR);
    for (int i = 0; i < VKI_GGUF_MAX_ARRAY_DEPTH; i++) { wd.u32(ARR); wd.u64(1); }
    wd.u32(U8); wd.u64(0);
    expect_bad(d, {"array", "nested deeper"});
    Gguf ok; // exactly at the limit is fine
    W &wo = ok.key("k", ARR);
    for (int i = 0; i < VKI_GGUF_MAX_ARRAY_DEPTH - 1; i++) { wo.u32(ARR); wo.u64(1); }
    wo.u32(U8); wo.u64(0);
    Opened o(ok.build());
    EXPECT_EQ(o.status, VKI_OK) << o.err;
}

TEST(GgufBad, DuplicateKeysAndTensorNames) {
    Gguf f;
    f.key("a.b", U8).u8(1);
    f.key("a.c", U8).u8(1);
    f.key("a.b", U32).u32(2);
    expect_bad(f, {"key", "duplicate key 'a.b'"});
    Gguf t;
    t.tensor("w", {4}, G_F32, 16);
    t.tensor("w", {4}, G_F32, 16);
    expect_bad(t, {"tensor name", "duplicate tensor name 'w'"});
}

TEST(GgufBad, TensorDims) {
    Gguf f;
    f.tensor("w", {1, 1, 1, 1, 1}, G_F32, 4);
    expect_bad(f, {"n_dims", "5 dims"});
    Gguf z;
    z.tensor("w", {4, 0}, G_F32, 0);
    expect_bad(z, {"tensor dim", "dim 1 is 0"});
    Gguf h;
    h.tensor("w", {1ull << 63}, G_F32, 0);
    expect_bad(h, {"tensor dim"});
    Gguf o;
    o.tensor("w", {1ull << 32, 1ull << 32}, G_F32, 0);
    expect_bad(o, {"tensor dims", "element count overflows"});
    Gguf b;
    b.tensor("w", {1ull << 62}, G_F32, 0); // elements fit, bytes do not
    expect_bad(b, {"tensor dims", "overflows"});
    Gguf q;
    q.tensor("w", {33, 2}, G_Q4_0, 36);
    expect_bad(q, {"tensor dim", "block size 32"});
    Gguf u;
    u.tensor("w", {4}, 31, 16);
    expect_bad(u, {"tensor type", "unknown ggml type 31"});
}

TEST(GgufBad, TensorOffsets) {
    Gguf past;
    past.tensor("w", {4}, G_F32, 16);
    past.tensor("x", {1024}, G_F32, 16); // claims 4096 bytes, file has 16
    expect_bad(past, {"tensor offset", "'x'", "past the end"});
    Gguf far;
    far.tensor("w", {4}, G_F32, 16, int64_t(1) << 62);
    far.tensors.push_back({"pad", {4}, G_F32, 16, 0});
    expect_bad(far, {"tensor offset", "past the end"});
    Gguf mis;
    mis.tensor("w", {4}, G_F32, 16, 0);
    mis.tensor("x", {4}, G_F32, 16, 48); // not a multiple of 32
    expect_bad(mis, {"tensor offset", "alignment"});
    Gguf ov;
    ov.tensor("w", {16}, G_F32, 64, 0);
    ov.tensor("x", {4}, G_F32, 16, 32);
    expect_bad(ov, {"tensor offset", "overlap"});
}

TEST(GgufBad, Alignment) {
    Gguf f;
    f.key("general.alignment", U32).u32(48);
    expect_bad(f, {"general.alignment", "power of two"});
    Gguf z;
    z.key("general.alignment", U32).u32(0);
    expect_bad(z, {"general.alignment"});
    Gguf t;
    t.key("general.alignment", U64).u64(32);
    expect_bad(t, {"general.alignment", "expected u32"});
}

// ---- Hostile input ----

// Reads everything a valid open exposes, so a bad index shows up under ASan.
void touch_all(vki_gguf *g) {
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < vki_gguf_kv_count(g); i++) {
        vki_gguf_string key;
        vki_gguf_type type;
        ASSERT_EQ(vki_gguf_kv_info(g, i, &key, &type), VKI_OK);
        std::string k(key.data, key.size);
        if (k.find('\0') != std::string::npos) continue; // not findable by C string
        int64_t i64; float f; bool b; vki_gguf_string s; vki_gguf_array a;
        vki_gguf_get_i64(g, k.c_str(), &i64);
        vki_gguf_get_f32(g, k.c_str(), &f);
        vki_gguf_get_bool(g, k.c_str(), &b);
        if (vki_gguf_get_string(g, k.c_str(), &s) == VKI_OK && s.size)
            sink += uint8_t(s.data[s.size - 1]);
        if (vki_gguf_get_array(g, k.c_str(), &a) == VKI_OK) {
            for (uint64_t e = 0; e < a.count && e < 64; e++) {
                vki_gguf_array_get_i64(g, &a, e, &i64);
                vki_gguf_array_get_f32(g, &a, e, &f);
                if (vki_gguf_array_get_string(g, &a, e, &s) == VKI_OK && s.size)
                    sink += uint8_t(s.data[s.size - 1]);
                vki_gguf_array sub;
                if (vki_gguf_array_get_array(g, &a, e, &sub) == VKI_OK && sub.count)
                    vki_gguf_array_get_string(g, &sub, sub.count - 1, &s);
            }
        }
    }
    for (uint64_t i = 0; i < vki_gguf_tensor_count(g); i++) {
        vki_gguf_tensor t;
        ASSERT_EQ(vki_gguf_tensor_at(g, i, &t), VKI_OK);
        ASSERT_GT(t.size, 0u);
        const uint8_t *d = (const uint8_t *)t.data;
        sink += d[0] + d[t.size - 1] + strlen(t.name);
    }
    (void)sink;
}

TEST(GgufHostile, EveryTruncationFailsCleanly) {
    std::vector<uint8_t> full = full_file().build();
    for (size_t n = 0; n < full.size(); n++) {
        // An exact-size heap copy, so reading past the end is caught by ASan.
        std::vector<uint8_t> cut(full.begin(), full.begin() + n);
        Opened o(cut);
        ASSERT_EQ(o.status, VKI_ERROR_BAD_FILE) << "prefix " << n;
        ASSERT_NE(o.err[0], 0) << "prefix " << n;
    }
    Opened o(full);
    EXPECT_EQ(o.status, VKI_OK) << o.err;
}

TEST(GgufHostile, RandomCorruptionNeverCrashes) {
    std::vector<uint8_t> full = full_file().build();
    std::mt19937 rng(1234);
    int opened = 0, rejected = 0;
    for (int iter = 0; iter < 1000; iter++) {
        std::vector<uint8_t> b = full;
        int flips = 1 + int(rng() % 8);
        // Half the mutations stay in the header and metadata, where the structure lives.
        size_t span = iter % 2 ? b.size() : std::min<size_t>(b.size(), 400);
        for (int k = 0; k < flips; k++) {
            size_t at = rng() % span;
            switch (rng() % 3) {
            case 0: b[at] = uint8_t(rng()); break;
            case 1: b[at] ^= uint8_t(1u << (rng() % 8)); break;
            default: b[at] = (rng() & 1) ? 0xff : 0x00; break;
            }
        }
        if (rng() % 4 == 0) b.resize(rng() % (b.size() + 1));
        Opened o(b);
        if (o.status == VKI_OK) {
            opened++;
            touch_all(o.g);
        } else {
            rejected++;
            EXPECT_EQ(o.status, VKI_ERROR_BAD_FILE) << vki_status_string(o.status) << ": " << o.err;
            EXPECT_NE(o.err[0], 0);
        }
    }
    EXPECT_EQ(opened + rejected, 1000);
    EXPECT_GT(rejected, 100); // both paths are exercised
    EXPECT_GT(opened, 50);
}

} // namespace
