// vki_spirv_reflect: what it reads from the embedded kernels and from hand-assembled modules,
// and that hostile modules (truncated, zero or oversized word counts, ids past the bound, huge
// member indices, random corruption) are BAD_FILE with a reason and never read out of bounds.
// Device-free. The inputs are copied into exact-size heap blocks so that ASan or valgrind sees
// any read past the end.
#include "vki_abi.h"
#include "vkinfer_runtime_testing.h" // vki_spirv_reflect

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using Words = std::vector<uint32_t>;

// SPIR-V numbers (SPIR-V 1.6 specification), for assembling and mutating modules.
enum : uint32_t {
    kMagic = 0x07230203u,
    kOpMemoryModel = 14, kOpEntryPoint = 15, kOpExecutionMode = 16, kOpCapability = 17,
    kOpTypeVoid = 19, kOpTypeInt = 21, kOpTypeFloat = 22, kOpTypeVector = 23,
    kOpTypeMatrix = 24, kOpTypeArray = 28, kOpTypeRuntimeArray = 29, kOpTypeStruct = 30,
    kOpTypePointer = 32, kOpTypeFunction = 33, kOpConstant = 43, kOpConstantComposite = 44,
    kOpSpecConstant = 50, kOpSpecConstantComposite = 51, kOpFunction = 54, kOpFunctionEnd = 56,
    kOpVariable = 59, kOpDecorate = 71, kOpMemberDecorate = 72, kOpLabel = 248, kOpReturn = 253,
    kOpExecutionModeId = 331,
    kSpecId = 1, kBlock = 2, kBufferBlock = 3, kRowMajor = 4, kColMajor = 5, kArrayStride = 6,
    kMatrixStride = 7, kBuiltIn = 11, kBinding = 33, kDescriptorSet = 34, kOffset = 35,
    kWorkgroupSize = 25, kLocalInvocationId = 27, kGLCompute = 5, kVertex = 0,
    kLocalSize = 17, kLocalSizeId = 38,
    kUniformConstant = 0, kUniform = 2, kPushConstant = 9, kStorageBuffer = 12,
    kOpTypeImage = 25, kDimBuffer = 5, kRgba8 = 4, kR32ui = 33, kRg32ui = 35,
};

struct Result {
    vki_status status;
    vki_spirv_info info;
    std::string error;
};

// Reflects a copy of `words` that ends exactly where the module ends.
Result Reflect(const Words &words, std::vector<vki_spec> specs = {})
{
    std::unique_ptr<uint32_t[]> exact(new uint32_t[words.size() + 1]); // +1: size 0 is legal
    if (!words.empty()) std::memcpy(exact.get(), words.data(), words.size() * 4);
    Result r{};
    char error[256];
    std::memset(error, 'x', sizeof error);
    r.status = vki_spirv_reflect(exact.get(), words.size(), specs.data(), (uint32_t)specs.size(),
                                 &r.info, error, sizeof error);
    EXPECT_NE(std::memchr(error, '\0', sizeof error), nullptr) << "error is not NUL-terminated";
    r.error = std::string(error, strnlen(error, sizeof error));
    if (r.status == VKI_OK) EXPECT_EQ(r.error, "");
    else EXPECT_FALSE(r.error.empty()) << vki_status_string(r.status);
    return r;
}

Words Embedded(const char *name)
{
    const vki_shader_module *m = vki_shader_find(name);
    EXPECT_NE(m, nullptr) << name;
    return m ? Words(m->words, m->words + m->word_count) : Words();
}

// Word offsets of the instructions of a well-formed module.
std::vector<size_t> Instructions(const Words &w)
{
    std::vector<size_t> offsets;
    for (size_t off = 5; off < w.size(); off += w[off] >> 16) offsets.push_back(off);
    return offsets;
}

// Offset of the first instruction `op` whose operand words `at` (1-based) equal `values`.
size_t Find(const Words &w, uint32_t op, std::vector<std::pair<size_t, uint32_t>> at = {})
{
    for (size_t off : Instructions(w)) {
        if ((w[off] & 0xFFFF) != op) continue;
        bool match = true;
        for (auto [i, v] : at) match = match && i < (w[off] >> 16) && w[off + i] == v;
        if (match) return off;
    }
    ADD_FAILURE() << "no opcode " << op << " in the module";
    return 0;
}

// The struct id behind the first variable of `storage_class`.
uint32_t BlockOf(const Words &w, uint32_t storage_class)
{
    size_t var = Find(w, kOpVariable, {{3, storage_class}});
    return w[Find(w, kOpTypePointer, {{1, w[var + 1]}}) + 3];
}

// A hand-assembled SPIR-V 1.3 compute module, valid for spirv-val: %1 = main, %2 = void,
// %3 = void(), %4 = uint, %5 = uint 1, %6 = float. Ids from 10 up are the test's; bound 100.
class Asm {
public:
    explicit Asm(bool local_size = true)
    {
        Put(head_, kOpCapability, {1});
        Put(head_, kOpMemoryModel, {0, 1});
        Put(head_, kOpEntryPoint, {kGLCompute, 1, 0x6e69616d, 0}); // "main"
        if (local_size) Put(head_, kOpExecutionMode, {1, kLocalSize, 8, 4, 2});
    }
    Asm &Head(uint32_t op, std::vector<uint32_t> operands) { return Put(head_, op, operands); }
    Asm &Ann(uint32_t op, std::vector<uint32_t> operands) { return Put(ann_, op, operands); }
    Asm &Decl(uint32_t op, std::vector<uint32_t> operands) { return Put(decl_, op, operands); }

    // A push-constant block of one member of `type` at offset 16, with extra member decorations.
    Asm &Push(uint32_t type, std::vector<std::vector<uint32_t>> member_decorations = {})
    {
        Ann(kOpDecorate, {90, kBlock}).Ann(kOpMemberDecorate, {90, 0, kOffset, 16});
        for (auto &d : member_decorations) {
            std::vector<uint32_t> operands = {90, 0};
            operands.insert(operands.end(), d.begin(), d.end());
            Ann(kOpMemberDecorate, operands);
        }
        return Decl(kOpTypeStruct, {90, type}).Decl(kOpTypePointer, {91, kPushConstant, 90})
            .Decl(kOpVariable, {91, 92, kPushConstant});
    }

    Words Build() const
    {
        Words w = {kMagic, 0x00010300, 0, 100, 0};
        w.insert(w.end(), head_.begin(), head_.end());
        w.insert(w.end(), ann_.begin(), ann_.end());
        Words prelude;
        Emit(prelude, kOpTypeVoid, {2});
        Emit(prelude, kOpTypeFunction, {3, 2});
        Emit(prelude, kOpTypeInt, {4, 32, 0});
        Emit(prelude, kOpConstant, {4, 5, 1});
        Emit(prelude, kOpTypeFloat, {6, 32});
        w.insert(w.end(), prelude.begin(), prelude.end());
        w.insert(w.end(), decl_.begin(), decl_.end());
        Words body;
        Emit(body, kOpFunction, {2, 1, 0, 3});
        Emit(body, kOpLabel, {7});
        Emit(body, kOpReturn, {});
        Emit(body, kOpFunctionEnd, {});
        w.insert(w.end(), body.begin(), body.end());
        return w;
    }

private:
    static void Emit(Words &w, uint32_t op, const std::vector<uint32_t> &operands)
    {
        w.push_back((uint32_t)(operands.size() + 1) << 16 | op);
        w.insert(w.end(), operands.begin(), operands.end());
    }
    Asm &Put(Words &w, uint32_t op, const std::vector<uint32_t> &operands)
    {
        Emit(w, op, operands);
        return *this;
    }
    Words head_, ann_, decl_;
};

// A storage buffer variable %id (struct %id+1, pointer %id+2) at `set`, `binding`.
void AddBuffer(Asm &a, uint32_t id, uint32_t set, uint32_t binding)
{
    a.Ann(kOpDecorate, {id + 1, kBlock}).Ann(kOpMemberDecorate, {id + 1, 0, kOffset, 0});
    a.Ann(kOpDecorate, {id, kDescriptorSet, set}).Ann(kOpDecorate, {id, kBinding, binding});
    a.Decl(kOpTypeStruct, {id + 1, 4}).Decl(kOpTypePointer, {id + 2, kStorageBuffer, id + 1});
    a.Decl(kOpVariable, {id + 2, id, kStorageBuffer});
}

// ---- The embedded kernels -------------------------------------------------------------------

TEST(SpirvReflect, AddU32)
{
    Result r = Reflect(Embedded("add_u32"));
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.binding_count, 1u);
    EXPECT_EQ(r.info.push_size, sizeof(vki_pc_add_u32));
    EXPECT_EQ(r.info.push_size, 8u);
    EXPECT_EQ(r.info.local_size[0], (uint32_t)VKI_ADD_U32_LOCAL_SIZE);
    EXPECT_EQ(r.info.local_size[1], 1u);
    EXPECT_EQ(r.info.local_size[2], 1u);
    ASSERT_EQ(r.info.spec_count, 1u);
    EXPECT_EQ(r.info.spec_ids[0], (uint32_t)VKI_SPEC_LOCAL_SIZE_X);
}

TEST(SpirvReflect, SpecConstantSetsLocalSize)
{
    Result r = Reflect(Embedded("add_u32"), {{VKI_SPEC_LOCAL_SIZE_X, 128}});
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.local_size[0], 128u);
    EXPECT_EQ(r.info.local_size[1], 1u);
}

TEST(SpirvReflect, CopyU32)
{
    Result r = Reflect(Embedded("copy_u32"));
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.binding_count, 2u);
    EXPECT_EQ(r.info.push_size, sizeof(vki_pc_copy_u32));
    EXPECT_EQ(r.info.local_size[0], (uint32_t)VKI_COPY_U32_LOCAL_SIZE);
}

TEST(SpirvReflect, EveryEmbeddedModuleReflects)
{
    ASSERT_GT(vki_shader_count(), 0u);
    for (uint32_t i = 0; i < vki_shader_count(); i++) {
        const vki_shader_module *m = vki_shader_at(i);
        Result r = Reflect(Words(m->words, m->words + m->word_count));
        EXPECT_EQ(r.status, VKI_OK) << m->name << ": " << r.error;
        EXPECT_LE(r.info.push_size, 128u) << m->name;
    }
}

// ---- Arguments ------------------------------------------------------------------------------

TEST(SpirvReflect, UndeclaredOrRepeatedSpecIdIsInvalidArgument)
{
    Result r = Reflect(Embedded("add_u32"), {{7, 1}});
    EXPECT_EQ(r.status, VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.error.find("spec constant id 7 is not declared"), std::string::npos) << r.error;
    r = Reflect(Embedded("add_u32"), {{0, 32}, {0, 64}});
    EXPECT_EQ(r.status, VKI_ERROR_INVALID_ARGUMENT);
}

TEST(SpirvReflect, NullArgumentsAndSmallErrorBuffers)
{
    Words w = Embedded("add_u32");
    vki_spirv_info info;
    vki_spec spec = {0, 1};
    EXPECT_EQ(vki_spirv_reflect(nullptr, 5, nullptr, 0, &info, nullptr, 0),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_spirv_reflect(w.data(), w.size(), nullptr, 0, nullptr, nullptr, 0),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_spirv_reflect(w.data(), w.size(), nullptr, 1, &info, nullptr, 0),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_spirv_reflect(w.data(), w.size(), &spec, 1, &info, nullptr, 0), VKI_OK);
    EXPECT_EQ(vki_spirv_reflect(w.data(), 4, nullptr, 0, &info, nullptr, 0), VKI_ERROR_BAD_FILE);
    char small[8] = "zzzzzzz";
    EXPECT_EQ(vki_spirv_reflect(w.data(), 4, nullptr, 0, &info, small, 1), VKI_ERROR_BAD_FILE);
    EXPECT_STREQ(small, "");
    EXPECT_EQ(vki_spirv_reflect(w.data(), 4, nullptr, 0, &info, small, sizeof small),
              VKI_ERROR_BAD_FILE);
    EXPECT_EQ(std::strlen(small), sizeof small - 1);
}

// ---- Hostile modules ------------------------------------------------------------------------

TEST(SpirvReflect, HeaderIsChecked)
{
    Words w = Embedded("add_u32");
    Words swapped = w;
    swapped[0] = __builtin_bswap32(kMagic);
    EXPECT_NE(Reflect(swapped).error.find("byte-swapped"), std::string::npos);
    Words other = w;
    other[0] = 0x12345678;
    EXPECT_EQ(Reflect(other).status, VKI_ERROR_BAD_FILE);
    for (uint32_t bound : {0u, 0x400000u, 0xFFFFFFFFu, 3u}) { // 3: below the ids in use
        Words b = w;
        b[3] = bound;
        EXPECT_EQ(Reflect(b).status, VKI_ERROR_BAD_FILE) << bound;
    }
}

TEST(SpirvReflect, EveryTruncationIsRejectedOrStillWhole)
{
    Words w = Embedded("copy_u32");
    std::vector<bool> boundary(w.size() + 1, false);
    for (size_t off : Instructions(w)) boundary[off] = true;
    for (size_t n = 0; n < w.size(); n++) {
        Result r = Reflect(Words(w.begin(), w.begin() + n));
        if (n < 5 || !boundary[n]) EXPECT_EQ(r.status, VKI_ERROR_BAD_FILE) << n;
        else EXPECT_TRUE(r.status == VKI_OK || r.status == VKI_ERROR_BAD_FILE) << n;
    }
}

TEST(SpirvReflect, BadWordCountsNameTheWord)
{
    Words w = Embedded("add_u32");
    for (size_t off : Instructions(w)) {
        for (uint32_t wc : {0u, (uint32_t)(w.size() - off + 1), 0xFFFFu}) {
            Words bad = w;
            bad[off] = wc << 16 | (bad[off] & 0xFFFF);
            Result r = Reflect(bad);
            EXPECT_EQ(r.status, VKI_ERROR_BAD_FILE) << off << " " << wc;
            EXPECT_NE(r.error.find("word " + std::to_string(off)), std::string::npos) << r.error;
        }
    }
}

TEST(SpirvReflect, IdsPastTheBound)
{
    const Words w = Embedded("add_u32");
    // (opcode, id operand): every instruction of these opcodes has its id set past the bound.
    const std::pair<uint32_t, size_t> ids[] = {
        {kOpEntryPoint, 2}, {kOpExecutionMode, 1}, {kOpDecorate, 1}, {kOpMemberDecorate, 1},
        {kOpTypeInt, 1}, {kOpTypeVector, 2}, {kOpTypeStruct, 2}, {kOpTypePointer, 3},
        {kOpTypeRuntimeArray, 2}, {kOpConstant, 1}, {kOpSpecConstant, 2},
        {kOpSpecConstantComposite, 4}, {kOpVariable, 1}, {kOpVariable, 2}};
    int tried = 0;
    for (auto [op, word] : ids) {
        for (size_t off : Instructions(w)) {
            if ((w[off] & 0xFFFF) != op) continue;
            for (uint32_t id : {w[3], 0xFFFFFFFFu, 0u}) {
                Words bad = w;
                bad[off + word] = id;
                Result r = Reflect(bad);
                EXPECT_EQ(r.status, VKI_ERROR_BAD_FILE) << "opcode " << op << " at " << off;
                tried++;
            }
        }
    }
    EXPECT_GT(tried, 60);
}

TEST(SpirvReflect, HugeMemberIndex)
{
    Words w = Embedded("add_u32");
    size_t off = Find(w, kOpMemberDecorate, {{1, BlockOf(w, kPushConstant)}});
    for (uint32_t member : {2u, 0x10000u, 0xFFFFFFF0u}) {
        w[off + 2] = member;
        Result r = Reflect(w);
        EXPECT_EQ(r.status, VKI_ERROR_BAD_FILE);
        EXPECT_NE(r.error.find("which has 2 members"), std::string::npos) << r.error;
    }
}

TEST(SpirvReflect, InstructionsTooShortForWhatIsRead)
{
    const Words w = Embedded("add_u32");
    // Shortened in place: the first error is that instruction's.
    struct { uint32_t op; std::vector<std::pair<size_t, uint32_t>> at; uint32_t min; } cases[] = {
        {kOpVariable, {}, 4}, {kOpTypePointer, {}, 4}, {kOpTypeInt, {}, 4},
        {kOpTypeVector, {}, 4}, {kOpSpecConstant, {}, 4}, {kOpExecutionMode, {}, 6},
        {kOpDecorate, {{2, kBinding}}, 4}, {kOpDecorate, {{2, kSpecId}}, 4},
        {kOpMemberDecorate, {{3, kOffset}}, 5}, {kOpEntryPoint, {}, 4},
    };
    for (auto &c : cases) {
        Words bad = w;
        size_t off = Find(w, c.op, c.at);
        bad[off] = (c.min - 1) << 16 | c.op;
        Result r = Reflect(bad);
        EXPECT_EQ(r.status, VKI_ERROR_BAD_FILE) << c.op;
        EXPECT_NE(r.error.find("needs " + std::to_string(c.min)), std::string::npos) << r.error;
    }
    // Shortened to every length as the last instruction, so a read past its end is a read
    // past the buffer (ASan, valgrind).
    for (size_t off : Instructions(w)) {
        for (uint32_t wc = 1; wc < (w[off] >> 16); wc++) {
            Words bad(w.begin(), w.begin() + off + wc);
            bad[off] = wc << 16 | (w[off] & 0xFFFF);
            vki_status status = Reflect(bad).status;
            EXPECT_TRUE(status == VKI_OK || status == VKI_ERROR_BAD_FILE) << off << " " << wc;
        }
    }
}

TEST(SpirvReflect, RandomCorruptionIsRejectedNotRead)
{
    const Words w = Embedded("copy_u32");
    uint64_t state = 0x9E3779B97F4A7C15ull; // xorshift: the same corruptions every run
    auto next = [&] {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        return state;
    };
    int rejected = 0;
    for (int i = 0; i < 4000; i++) {
        Words bad = w;
        for (int k = 0, n = 1 + (int)(next() % 4); k < n; k++) {
            size_t at = 5 + next() % (w.size() - 5);
            uint64_t v = next();
            bad[at] = v & 1 ? (uint32_t)(v >> 32) : (uint32_t)(v >> 32) % 80; // large or small
        }
        Result r = Reflect(bad);
        ASSERT_TRUE(r.status == VKI_OK || r.status == VKI_ERROR_BAD_FILE) << r.status;
        rejected += r.status != VKI_OK;
    }
    EXPECT_GT(rejected, 100);
}

// ---- Bindings -------------------------------------------------------------------------------

TEST(SpirvReflect, BindingsMustBeSetZeroAndDense)
{
    const Words w = Embedded("copy_u32");
    size_t set = Find(w, kOpDecorate, {{2, kDescriptorSet}});
    size_t binding1 = Find(w, kOpDecorate, {{2, kBinding}, {3, 1}});
    struct { size_t word; uint32_t value; const char *says; } cases[] = {
        {set + 3, 1, "set 1"},           // another descriptor set
        {binding1 + 3, 2, "binding 2"},  // a gap: 0, 2
        {binding1 + 3, 0, "binding 0"},  // a duplicate: 0, 0
        {binding1 + 2, 24, "binding -1"}, // Binding turned into NonWritable: no binding at all
    };
    for (auto &c : cases) {
        Words bad = w;
        bad[c.word] = c.value;
        Result r = Reflect(bad);
        EXPECT_EQ(r.status, VKI_ERROR_BAD_FILE) << c.says;
        EXPECT_NE(r.error.find(c.says), std::string::npos) << r.error;
    }
}

// Uniform texel buffers (usamplerBuffer) bind too, marked in texel_mask; the other bindings of
// the module stay storage buffers.
TEST(SpirvReflect, TexelBuffersAreMarked)
{
    Result r = Reflect(Embedded("matvec_q4_0_tx"));
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.binding_count, 5u);
    EXPECT_EQ(r.info.texel_mask, 0x3u) << "w and x";
    Result plain = Reflect(Embedded("matvec_q4_0"));
    ASSERT_EQ(plain.status, VKI_OK) << plain.error;
    EXPECT_EQ(plain.info.texel_mask, 0u);
}

// Storage texel buffers (uimageBuffer with a format) bind as views of their format's texels;
// other formats are refused by name.
TEST(SpirvReflect, StorageTexelBuffersBindWithTheirFormat)
{
    Words w = Embedded("matvec_q4_1_wide");
    Result r = Reflect(w);
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.binding_count, 7u) << "... and a fused rope's positions";
    EXPECT_EQ(r.info.texel_mask, 0x23u) << "w, x and a fused norm's weights";
    EXPECT_EQ(r.info.image_mask, 0x23u);
    EXPECT_EQ(r.info.texel_bytes[0], 16u);
    EXPECT_EQ(r.info.texel_bytes[1], 16u);
    EXPECT_EQ(r.info.texel_bytes[2], 0u) << "bias: a storage buffer";
    Result uniform = Reflect(Embedded("matvec_q4_1_tx"));
    ASSERT_EQ(uniform.status, VKI_OK) << uniform.error;
    EXPECT_EQ(uniform.info.image_mask, 0u);
    EXPECT_EQ(uniform.info.texel_bytes[0], 4u);

    size_t image = Find(w, kOpTypeImage, {{3, kDimBuffer}});
    for (uint32_t format : {kRg32ui, kR32ui}) {
        Words f = w;
        f[image + 8] = format;
        Result rf = Reflect(f);
        ASSERT_EQ(rf.status, VKI_OK) << rf.error;
        EXPECT_EQ(rf.info.texel_bytes[0], format == kR32ui ? 4u : 8u);
    }
    Words rgba8 = w;
    rgba8[image + 8] = kRgba8;
    EXPECT_NE(Reflect(rgba8).error.find("image format 4"), std::string::npos);
}

TEST(SpirvReflect, OnlyStorageBuffersBind)
{
    Words w = Embedded("add_u32");
    size_t var = Find(w, kOpVariable, {{3, kStorageBuffer}});
    Words image = w;
    image[var + 3] = kUniformConstant;
    EXPECT_NE(Reflect(image).error.find("uniform or storage texel buffers only"), std::string::npos);

    // A Uniform block is a uniform buffer unless it is a BufferBlock (pre-1.3 storage buffer).
    Words uniform = w;
    uniform[var + 3] = kUniform;
    EXPECT_NE(Reflect(uniform).error.find("uniform buffer"), std::string::npos);
    size_t block = Find(w, kOpDecorate, {{1, BlockOf(w, kStorageBuffer)}, {2, kBlock}});
    uniform[block + 2] = kBufferBlock;
    Result r = Reflect(uniform);
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.binding_count, 1u);
}

TEST(SpirvReflect, AtMostEightBuffersAndNoBufferArrays)
{
    Asm eight, nine;
    for (uint32_t i = 0; i < 9; i++) {
        if (i < 8) AddBuffer(eight, 10 + 3 * i, 0, i);
        AddBuffer(nine, 10 + 3 * i, 0, i);
    }
    EXPECT_EQ(Reflect(eight.Build()).info.binding_count, 8u);
    EXPECT_NE(Reflect(nine.Build()).error.find("at most 8"), std::string::npos);

    Asm array; // buffer B { uint x; } b[4];
    array.Ann(kOpDecorate, {11, kBlock}).Ann(kOpMemberDecorate, {11, 0, kOffset, 0})
        .Ann(kOpDecorate, {10, kDescriptorSet, 0}).Ann(kOpDecorate, {10, kBinding, 0})
        .Decl(kOpConstant, {4, 12, 4}).Decl(kOpTypeStruct, {11, 4})
        .Decl(kOpTypeArray, {13, 11, 12}).Decl(kOpTypePointer, {14, kStorageBuffer, 13})
        .Decl(kOpVariable, {14, 10, kStorageBuffer});
    EXPECT_NE(Reflect(array.Build()).error.find("arrays of buffers"), std::string::npos);
}

// ---- Entry point and local size -------------------------------------------------------------

TEST(SpirvReflect, ExactlyOneComputeEntryPoint)
{
    Words w = Embedded("add_u32");
    size_t entry = Find(w, kOpEntryPoint);
    Words vertex = w;
    vertex[entry + 1] = kVertex;
    EXPECT_NE(Reflect(vertex).error.find("0 GLCompute"), std::string::npos);
    Words twice = w;
    twice.insert(twice.begin() + entry, w.begin() + entry, w.begin() + entry + (w[entry] >> 16));
    EXPECT_NE(Reflect(twice).error.find("2 GLCompute"), std::string::npos);
    EXPECT_EQ(Reflect(Asm(false).Build()).status, VKI_ERROR_BAD_FILE); // no local size at all
}

TEST(SpirvReflect, WorkgroupSizeBuiltinTakesPrecedence)
{
    Words w = Embedded("add_u32");
    w[Find(w, kOpExecutionMode, {{2, kLocalSize}}) + 3] = 32;
    Result r = Reflect(w, {{0, 256}});
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.local_size[0], 256u); // the spec constant behind gl_WorkGroupSize
    w[Find(w, kOpDecorate, {{2, kBuiltIn}, {3, kWorkgroupSize}}) + 3] = kLocalInvocationId;
    r = Reflect(w, {{0, 256}});
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.local_size[0], 32u); // without the builtin, the execution mode

    Asm constant; // a plain constant composite (no spec constants) overriding LocalSize 8 4 2
    constant.Ann(kOpDecorate, {13, kBuiltIn, kWorkgroupSize})
        .Decl(kOpTypeVector, {10, 4, 3}).Decl(kOpConstant, {4, 11, 16})
        .Decl(kOpConstantComposite, {10, 13, 11, 5, 5});
    r = Reflect(constant.Build());
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.local_size[0] * 100 + r.info.local_size[1] * 10 + r.info.local_size[2], 1611u);
}

TEST(SpirvReflect, LocalSizeIdTakesSpecs)
{
    Asm a(false);
    a.Head(kOpExecutionModeId, {1, kLocalSizeId, 11, 12, 5})
        .Ann(kOpDecorate, {12, kSpecId, 3}).Ann(kOpDecorate, {13, kSpecId, 9})
        .Decl(kOpConstant, {4, 11, 8}).Decl(kOpSpecConstant, {4, 12, 4})
        .Decl(kOpSpecConstant, {4, 13, 0});
    Result r = Reflect(a.Build());
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.local_size[0], 8u);
    EXPECT_EQ(r.info.local_size[1], 4u);
    EXPECT_EQ(r.info.local_size[2], 1u);
    ASSERT_EQ(r.info.spec_count, 2u);
    EXPECT_EQ(r.info.spec_ids[0], 3u);
    EXPECT_EQ(r.info.spec_ids[1], 9u);
    r = Reflect(a.Build(), {{9, 5}, {3, 16}});
    ASSERT_EQ(r.status, VKI_OK) << r.error;
    EXPECT_EQ(r.info.local_size[1], 16u);

    Asm two_ids(false);
    two_ids.Head(kOpExecutionModeId, {1, kLocalSizeId, 5, 5});
    EXPECT_NE(Reflect(two_ids.Build()).error.find("needs 6"), std::string::npos);
    Asm not_constant(false); // a local size must be a 32-bit OpConstant or OpSpecConstant
    not_constant.Head(kOpExecutionModeId, {1, kLocalSizeId, 5, 6, 5});
    EXPECT_NE(Reflect(not_constant.Build()).error.find("not a 32-bit"), std::string::npos);
}

TEST(SpirvReflect, AtMostSixteenSpecIds)
{
    Asm a;
    for (uint32_t i = 0; i < 17; i++)
        a.Ann(kOpDecorate, {10 + i, kSpecId, i}).Decl(kOpSpecConstant, {4, 10 + i, 0});
    EXPECT_NE(Reflect(a.Build()).error.find("more than 16"), std::string::npos);
}

// ---- Push-constant sizes --------------------------------------------------------------------

// Types %10.. for the table below.
Asm WithTypes()
{
    Asm a;
    a.Ann(kOpDecorate, {26, kArrayStride, 8}).Ann(kOpMemberDecorate, {29, 0, kOffset, 0})
        .Ann(kOpMemberDecorate, {29, 1, kOffset, 16});
    return a.Decl(kOpTypeInt, {10, 8, 0}).Decl(kOpTypeInt, {11, 16, 0})
        .Decl(kOpTypeFloat, {12, 64}).Decl(kOpTypeVector, {13, 11, 3})     // u16vec3
        .Decl(kOpTypeVector, {14, 6, 4}).Decl(kOpTypeVector, {15, 6, 3})   // vec4, vec3
        .Decl(kOpTypeVector, {16, 6, 2})                                    // vec2
        .Decl(kOpTypeMatrix, {20, 14, 4}).Decl(kOpTypeMatrix, {21, 15, 3}) // mat4, mat3
        .Decl(kOpTypeMatrix, {22, 15, 2})                                   // mat2x3
        .Decl(kOpConstant, {4, 25, 5}).Decl(kOpTypeArray, {26, 6, 25})     // float[5], stride 8
        .Decl(kOpConstant, {4, 27, 3}).Decl(kOpTypeArray, {28, 16, 27})    // vec2[3], no stride
        .Decl(kOpTypeStruct, {29, 6, 15});                                  // {float; vec3 @16}
}

TEST(SpirvReflect, PushConstantSizes)
{
    struct Row { const char *what; uint32_t type; std::vector<std::vector<uint32_t>> deco;
                 uint32_t size; } rows[] = {
        {"uint", 4, {}, 4}, {"uint8", 10, {}, 1}, {"double", 12, {}, 8}, {"u16vec3", 13, {}, 6},
        {"vec4", 14, {}, 16}, {"mat4", 20, {{kColMajor}, {kMatrixStride, 16}}, 64},
        {"mat3", 21, {{kColMajor}, {kMatrixStride, 16}}, 48},
        {"mat2x3 row-major", 22, {{kRowMajor}, {kMatrixStride, 16}}, 48},
        {"float[5] stride 8", 26, {}, 40}, {"struct", 29, {}, 28},
        // Without explicit strides (not valid for Vulkan): the size of the parts.
        {"mat3 no stride", 21, {}, 36}, {"vec2[3] no stride", 28, {}, 24},
    };
    for (auto &row : rows) {
        Result r = Reflect(WithTypes().Push(row.type, row.deco).Build());
        ASSERT_EQ(r.status, VKI_OK) << row.what << ": " << r.error;
        EXPECT_EQ(r.info.push_size, 16 + row.size) << row.what; // the member sits at offset 16
    }
}

TEST(SpirvReflect, BadPushBlocks)
{
    Words no_offset = Asm().Push(4).Build();
    no_offset[Find(no_offset, kOpMemberDecorate, {{3, kOffset}}) + 3] = kSpecId; // not Offset
    EXPECT_NE(Reflect(no_offset).error.find("no Offset"), std::string::npos);

    Asm runtime_array;
    runtime_array.Decl(kOpTypeRuntimeArray, {10, 4}).Push(10);
    EXPECT_EQ(Reflect(runtime_array.Build()).status, VKI_ERROR_BAD_FILE);

    Asm cycle; // struct %10 { struct %10 } : must stop at the depth limit, not the stack
    cycle.Ann(kOpMemberDecorate, {10, 0, kOffset, 0}).Decl(kOpTypeStruct, {10, 10}).Push(10);
    EXPECT_NE(Reflect(cycle.Build()).error.find("deeper"), std::string::npos);

    Asm huge; // uint[0xFFFFFFFF] with ArrayStride 0xFFFFFFFF: far past 4 GiB
    huge.Ann(kOpDecorate, {11, kArrayStride, 0xFFFFFFFF})
        .Decl(kOpConstant, {4, 10, 0xFFFFFFFF}).Decl(kOpTypeArray, {11, 4, 10}).Push(11);
    EXPECT_NE(Reflect(huge.Build()).error.find("4 GiB"), std::string::npos);

    Asm wide; // 16000 members: each is a scan of the module, so the word budget runs out
    std::vector<uint32_t> members = {10};
    for (uint32_t i = 0; i < 16000; i++) {
        wide.Ann(kOpMemberDecorate, {10, i, kOffset, 4 * i});
        members.push_back(4);
    }
    wide.Decl(kOpTypeStruct, members).Push(10);
    EXPECT_NE(Reflect(wide.Build()).error.find("too complex"), std::string::npos);

    Asm two; // two push-constant blocks
    two.Push(4).Decl(kOpVariable, {91, 93, kPushConstant});
    EXPECT_NE(Reflect(two.Build()).error.find("2 push-constant"), std::string::npos);
}

} // namespace
