// The cooperative-matrix choice (vki_coopmat_choose): which extension and fragment shape the
// matmul kernels get, from the property lists of devices the suite never runs on. The lists
// follow what the drivers report: RADV and AMD's drivers 16x16x16 on RDNA3, Intel's Xe2
// (Battlemage) 8x16x16 and Alchemist 8x8x16, NVIDIA 16x16x16, 16x8x16 and 16x8x8 through both
// extensions; each with fp16 accumulators and int8 shapes beside the fp16 x fp16 + fp32 one.
#include "test_support.h"
#include "vkinfer_runtime_testing.h"

#include <string>
#include <vector>

namespace {

// VkComponentTypeKHR and VkScopeKHR values (the registry's; the NV enums share them).
constexpr uint32_t F16 = 0, F32 = 1, S8 = 3, S32 = 5, U8 = 7, U32 = 9;
constexpr uint32_t WORKGROUP = 2, SUBGROUP = 3;

vki_coopmat_props shape(uint32_t m, uint32_t n, uint32_t k, uint32_t ab, uint32_t c,
                        uint32_t scope = SUBGROUP, bool saturating = false)
{
    return vki_coopmat_props{m, n, k, ab, ab, c, c, scope, saturating};
}

struct choice {
    bool found, khr;
    uint32_t m, n, k;
};

choice choose(const std::vector<vki_coopmat_props> &khr, const std::vector<vki_coopmat_props> &nv,
              bool khr_on = true, bool nv_on = true)
{
    vki_coopmat_caps caps = {};
    caps.khr = khr_on && !khr.empty();
    caps.nv = nv_on && !nv.empty();
    caps.khr_props = khr.data();
    caps.khr_count = (uint32_t)khr.size();
    caps.nv_props = nv.data();
    caps.nv_count = (uint32_t)nv.size();
    bool is_khr = true;
    uint32_t s[3] = {7, 7, 7};
    bool found = vki_coopmat_choose(&caps, &is_khr, s);
    return {found, is_khr, s[0], s[1], s[2]};
}

void expect_choice(const choice &c, bool khr, uint32_t m, uint32_t n, uint32_t k)
{
    EXPECT_TRUE(c.found);
    EXPECT_EQ(c.khr, khr);
    EXPECT_EQ(c.m, m);
    EXPECT_EQ(c.n, n);
    EXPECT_EQ(c.k, k);
}

void expect_none(const choice &c)
{
    EXPECT_FALSE(c.found);
    EXPECT_FALSE(c.khr);
    EXPECT_EQ(c.m, 0u);
    EXPECT_EQ(c.n, 0u);
    EXPECT_EQ(c.k, 0u);
}

const std::vector<vki_coopmat_props> none;

} // namespace

TEST(CoopmatChoice, AmdRdna3TakesKhr16x16x16)
{
    std::vector<vki_coopmat_props> amd = {
        shape(16, 16, 16, F16, F16), shape(16, 16, 16, F16, F32), shape(16, 16, 16, S8, S32),
        shape(16, 16, 16, U8, U32)};
    expect_choice(choose(amd, none), true, 16, 16, 16);
}

TEST(CoopmatChoice, IntelXe2TakesKhr8x16x16)
{
    std::vector<vki_coopmat_props> xe2 = {
        shape(8, 16, 16, F16, F16), shape(8, 16, 16, F16, F32), shape(8, 16, 32, S8, S32)};
    expect_choice(choose(xe2, none), true, 8, 16, 16);
}

TEST(CoopmatChoice, IntelAlchemistTakesKhr8x8x16)
{
    std::vector<vki_coopmat_props> dg2 = {
        shape(8, 8, 16, F16, F16), shape(8, 8, 16, F16, F32), shape(8, 8, 32, S8, S32)};
    expect_choice(choose(dg2, none), true, 8, 8, 16);
}

TEST(CoopmatChoice, NvidiaPrefersKhrAndFallsBackToNv)
{
    std::vector<vki_coopmat_props> nvidia = {
        shape(16, 8, 16, F16, F16), shape(16, 8, 8, F16, F16), shape(16, 16, 16, F16, F16),
        shape(16, 8, 16, F16, F32), shape(16, 8, 8, F16, F32), shape(16, 16, 16, F16, F32),
        shape(16, 8, 32, S8, S32),  shape(16, 16, 32, S8, S32)};
    expect_choice(choose(nvidia, nvidia), true, 16, 16, 16);
    // A build without the KHR kernels (Debian's glslang 12), or --narrow no-coopmat-khr: NV.
    expect_choice(choose(nvidia, nvidia, false, true), false, 16, 16, 16);
    // A driver with only the NV extension.
    expect_choice(choose(none, nvidia), false, 16, 16, 16);
    // Without 16x16x16: the usable shape with the most elements (16x8x16, not 16x8x8).
    std::vector<vki_coopmat_props> older = {shape(16, 8, 8, F16, F32), shape(16, 8, 16, F16, F32)};
    expect_choice(choose(none, older), false, 16, 8, 16);
}

TEST(CoopmatChoice, SixteenCubedBeatsLargerShapes)
{
    // 16x16x32 has more elements, but the kernel's fragments are chosen 16x16x16 first.
    std::vector<vki_coopmat_props> l = {shape(16, 16, 32, F16, F32), shape(16, 16, 16, F16, F32),
                                        shape(8, 16, 32, F16, F32)};
    expect_choice(choose(l, none), true, 16, 16, 16);
}

TEST(CoopmatChoice, KhrWithoutAUsableShapeFallsBackToNv)
{
    std::vector<vki_coopmat_props> khr = {shape(16, 16, 16, F16, F16)}; // fp16 accumulators only
    std::vector<vki_coopmat_props> nv = {shape(16, 8, 16, F16, F32)};
    expect_choice(choose(khr, nv), false, 16, 8, 16);
}

TEST(CoopmatChoice, NoneUsable)
{
    expect_none(choose(none, none));
    // fp16 accumulators, int8, workgroup scope, saturating, mixed A/B types, and shapes the
    // kernel's tiles cannot hold (M or N not dividing 16, K not dividing 32, zero).
    vki_coopmat_props mixed = shape(16, 16, 16, F16, F32);
    mixed.b_type = F32;
    vki_coopmat_props half_result = shape(16, 16, 16, F16, F32);
    half_result.result_type = F16;
    std::vector<vki_coopmat_props> bad = {
        shape(16, 16, 16, F16, F16),          shape(16, 16, 32, S8, S32),
        shape(16, 16, 16, F16, F32, WORKGROUP), shape(16, 16, 16, F16, F32, SUBGROUP, true),
        mixed,                                half_result,
        shape(32, 8, 16, F16, F32),           shape(16, 32, 16, F16, F32),
        shape(16, 16, 64, F16, F32),          shape(16, 16, 12, F16, F32),
        shape(0, 16, 16, F16, F32)};
    expect_none(choose(bad, bad));
    // Usable shapes on an extension the caps say is off count for nothing.
    std::vector<vki_coopmat_props> good = {shape(16, 16, 16, F16, F32)};
    expect_none(choose(good, good, false, false));
    bool khr = true;
    uint32_t s[3] = {1, 2, 3};
    EXPECT_FALSE(vki_coopmat_choose(nullptr, &khr, s));
    EXPECT_FALSE(khr);
    EXPECT_EQ(s[0] + s[1] + s[2], 0u);
}

TEST(CoopmatChoice, NarrowingNoCoopmatKhrParses)
{
    vki_narrowing n;
    char err[256];
    ASSERT_EQ(vki_narrowing_parse("no-coopmat-khr", &n, err, sizeof err), VKI_OK) << err;
    EXPECT_TRUE(n.no_coopmat_khr);
    EXPECT_FALSE(n.no_coopmat);
    ASSERT_EQ(vki_narrowing_parse("no-coopmat", &n, err, sizeof err), VKI_OK) << err;
    EXPECT_FALSE(n.no_coopmat_khr);
}

// The KHR kernels come as a set (shaders/CMakeLists.txt compiles them all or none): the peak
// kernel the profile probes for and every cooperative-matrix matmul variant.
TEST(CoopmatChoice, KhrKernelsAreEmbeddedAllOrNone)
{
    const bool khr = vki_shader_find("peak_coopmat_khr_f16") != nullptr;
    for (const char *wt : {"f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"}) {
        std::string name = std::string("matmul_") + wt + "_cmk";
        EXPECT_EQ(vki_shader_find(name.c_str()) != nullptr, khr) << name;
        std::string nv = std::string("matmul_") + wt + "_cm";
        EXPECT_NE(vki_shader_find(nv.c_str()), nullptr) << nv << ": the NV kernels are always built";
    }
    if (!khr) std::printf("(this build has no KHR cooperative-matrix kernels: no .venv-shaders)\n");
}

// lavapipe has no cooperative matrices: the profile says so and opens the device without either
// extension (device creation with validation on would flag a KHR feature struct it lacks).
TEST_F(VulkanTest, LavapipeProfileHasNoCooperativeMatrix)
{
    open_device();
    if (HasFatalFailure()) return;
    const vki_profile *p = vki_device_profile(dev);
    if (p->vendor != VKI_VENDOR_MESA_CPU) GTEST_SKIP() << "not lavapipe: " << p->name;
    EXPECT_FALSE(p->coopmat);
    EXPECT_FALSE(p->coopmat_khr);
    EXPECT_EQ(p->coopmat_shape[0], 0u);
}
