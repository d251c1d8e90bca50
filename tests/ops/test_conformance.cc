// The op conformance table (graph/cases/) on the Vulkan device against the CPU reference, under
// the full profile and narrowed ones, with guard bytes around every output and the validation
// layer on.
#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_graph_testing.h"
}

#include <ostream>
#include <string>

struct ConformanceParam {
    uint32_t index;
    const char *profile;
};

// Shown in test listings (and ctest's names) instead of the struct's bytes.
static void PrintTo(const ConformanceParam &p, std::ostream *os)
{
    *os << vki_op_case_at(p.index)->name << " / " << (*p.profile ? p.profile : "full profile");
}

static std::string param_name(const ::testing::TestParamInfo<ConformanceParam> &info)
{
    std::string s = std::to_string(info.param.index) + "_" + vki_op_case_at(info.param.index)->op + "_";
    const char *p = info.param.profile;
    s += *p ? p : "full";
    for (auto &c : s)
        if (!isalnum((unsigned char)c)) c = '_';
    return s;
}

class Conformance : public VulkanTest, public ::testing::WithParamInterface<ConformanceParam> {};

TEST_P(Conformance, MatchesReference)
{
    open_device(GetParam().profile);
    const vki_op_case *c = vki_op_case_at(GetParam().index);
    vki_case_result r;
    char err[512];
    vki_status st = vki_op_case_run(dev, c, nullptr, &r, err, sizeof err);
    // Only a narrowed profile may lack what a case needs (16-bit storage, say): on the full
    // profile every case runs, so an UNSUPPORTED there is a lowering that lost a path.
    if (st == VKI_ERROR_UNSUPPORTED && *GetParam().profile)
        GTEST_SKIP() << "the narrowed profile cannot run it: " << err;
    ASSERT_EQ(st, VKI_OK) << err;
    float tolerance = c->tolerance;
    if (r.fp16_dispatches && tolerance < VKI_CASE_FP16_TOLERANCE) tolerance = VKI_CASE_FP16_TOLERANCE;
    EXPECT_LE(r.nmse, tolerance) << c->name << (r.fp16_dispatches ? " (fp16 operands)" : "");
    EXPECT_TRUE(r.guards_intact) << c->name << " wrote outside its output";
    EXPECT_GT(r.dispatches, 0u);
}

static std::vector<ConformanceParam> all_params()
{
    // The full profile and two narrowings: no fp16/subgroups/int dot (the fallbacks) and
    // another vendor's tuning (tile shapes of a GPU on lavapipe).
    const char *profiles[] = {"", "no-fp16,no-subgroup,no-int-dot", "tuning=nvidia"};
    std::vector<ConformanceParam> v;
    for (const char *p : profiles)
        for (uint32_t i = 0; i < vki_op_case_count(); i++)
            if (vki_op_case_at(i)->flags & VKI_CASE_TEST) v.push_back({i, p});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Ops, Conformance, ::testing::ValuesIn(all_params()), param_name);

// The matmul and get_rows lowerings bind a weight larger than the device's binding limit a slice
// of rows at a time (matmul_id a slice of whole experts): every matmul, matmul_id and get_rows case (and the fused ones, whose glu and rope
// folds then stay unfolded) on
// the full profile with the limit narrowed to 2 KiB, so that the cases' weights of 1 to 40 KiB
// take 2 to 30 slices, against the reference.
class SplitWeights : public VulkanTest {};

TEST_F(SplitWeights, RowSlicesOfAWeightOverTheLimit)
{
    open_device("");
    vki_profile narrow = *vki_device_profile(dev);
    narrow.max_storage_range = 2048;
    vki_case_desc desc = {};
    desc.profile = &narrow;
    uint32_t ran = 0, split = 0;
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        if (!(c->flags & VKI_CASE_TEST) || (strcmp(c->op, "matmul") && strcmp(c->op, "fused") &&
                                            strcmp(c->op, "get_rows") && strcmp(c->op, "matmul_id")))
            continue;
        vki_case_result r;
        char err[512];
        vki_status st = vki_op_case_run(dev, c, &desc, &r, err, sizeof err);
        // Weights whose single row is over 2 KiB cannot be cut into rows under it.
        if (st == VKI_ERROR_UNSUPPORTED && strstr(err, "binding limit")) continue;
        ASSERT_EQ(st, VKI_OK) << err;
        float tolerance = c->tolerance;
        if (r.fp16_dispatches && tolerance < VKI_CASE_FP16_TOLERANCE) tolerance = VKI_CASE_FP16_TOLERANCE;
        EXPECT_LE(r.nmse, tolerance) << c->name;
        EXPECT_TRUE(r.guards_intact) << c->name << " wrote outside its output";
        ran++;
        vki_case_result whole;
        ASSERT_EQ(vki_op_case_run(dev, c, nullptr, &whole, err, sizeof err), VKI_OK) << err;
        if (r.dispatches > whole.dispatches) split++;
    }
    EXPECT_GT(ran, 20u);
    EXPECT_GT(split, 20u) << "cases whose weights the limit cut into more dispatches";
}
