// The op conformance table (graph/cases/) on the Vulkan device against the CPU reference, under
// the full profile and narrowed ones, with guard bytes around every output and the validation
// layer on.
#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_graph_testing.h"
}

#include <cstring>
#include <initializer_list>
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

// The kernels the case's plan under `profile` runs, space-separated (test_attention_coopmat.cc too).
std::string plan_kernels(const vki_op_case *c, const vki_profile *profile)
{
    vki_graph *g = nullptr;
    vki_plan *plan = nullptr;
    std::string k;
    if (vki_graph_create(nullptr, &g) != VKI_OK) return "(no graph)";
    c->build(g, c->arg);
    if (vki_graph_compile(g, profile, nullptr, &plan) == VKI_OK)
        for (uint32_t s = 0; s < vki_plan_step_count(plan); s++) {
            vki_plan_step st;
            if (vki_plan_step_get(plan, s, &st)) k += std::string(k.empty() ? "" : " ") + st.kernel;
        }
    vki_plan_destroy(plan);
    vki_graph_destroy(g);
    return k;
}

class Conformance : public VulkanTest, public ::testing::WithParamInterface<ConformanceParam> {};

TEST_P(Conformance, MatchesReference)
{
    open_device(GetParam().profile);
    const vki_op_case *c = vki_op_case_at(GetParam().index);
    // The emulated cooperative-matrix rows are for the cases that plan the kernel; the others'
    // plans are the full profile's.
    if (strstr(GetParam().profile, "emulate-coopmat") &&
        plan_kernels(c, vki_device_profile(dev)).find("_cme") == std::string::npos)
        GTEST_SKIP() << "no cooperative-matrix step in this plan: the full profile's row runs it";
    // Likewise the int-dot rows: the cases that plan an integer-dot mat-vec (q8_0, q4_0, N <= 8).
    const bool int_dot = !strncmp(GetParam().profile, "int-dot", 7);
    if (int_dot && plan_kernels(c, vki_device_profile(dev)).find("_dot") == std::string::npos)
        GTEST_SKIP() << "no integer-dot step in this plan: the tuning's own row runs it";
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
    if (r.int8_dispatches && tolerance < VKI_CASE_INT8_TOLERANCE) tolerance = VKI_CASE_INT8_TOLERANCE;
    char nmse[32];
    snprintf(nmse, sizeof nmse, "%.3g", r.nmse);
    RecordProperty("nmse", nmse); // in --gtest_output=xml: how close a case runs to its tolerance
    EXPECT_LE(r.nmse, tolerance) << c->name << (r.fp16_dispatches ? " (fp16 operands)" : "")
                                 << (r.int8_dispatches ? " (int8 x)" : "");
    EXPECT_TRUE(r.guards_intact) << c->name << " wrote outside its output";
    EXPECT_GT(r.dispatches, 0u);
    if (int_dot) EXPECT_GT(r.int8_dispatches, 0u) << "the plan's _dot step declares its int8 x";
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
    // The cooperative-matrix kernels on emulated fragments (their _cme variants), planned with
    // AMD RDNA's tiles and with NVIDIA's: the matmul and conv2d cases only, the ops that have
    // them (the other ops' plans are the full profile's).
    const char *emulated[] = {"emulate-coopmat", "emulate-coopmat,tuning=nvidia"};
    for (const char *p : emulated)
        for (uint32_t i = 0; i < vki_op_case_count(); i++)
            if ((vki_op_case_at(i)->flags & VKI_CASE_TEST) && (!strcmp(vki_op_case_at(i)->op, "matmul") ||
                                                               !strcmp(vki_op_case_at(i)->op, "conv2d")))
                v.push_back({i, p});
    // The integer-dot mat-vec (off in every tuning row; the int-dot narrowing forces it) under the
    // GPU rows whose storage-buffer mat-vec it replaces, and without subgroups (its shared-memory
    // reduction): the matmul cases that plan it.
    const char *int_dot[] = {"int-dot,tuning=nvidia", "int-dot,tuning=amd-rdna", "int-dot,tuning=intel-arc",
                             "int-dot,tuning=nvidia,no-subgroup"};
    for (const char *p : int_dot)
        for (uint32_t i = 0; i < vki_op_case_count(); i++)
            if ((vki_op_case_at(i)->flags & VKI_CASE_TEST) && !strcmp(vki_op_case_at(i)->op, "matmul"))
                v.push_back({i, p});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Ops, Conformance, ::testing::ValuesIn(all_params()), param_name);

// Every case of `ops` on the full profile with the binding limit narrowed to `limit` bytes,
// against the reference; counts the cases that ran and those the limit cut into more dispatches.
// A case with a single row or slice over the limit cannot be cut under it and is passed over.
static void run_narrowed(vki_device *dev, uint64_t limit, std::initializer_list<const char *> ops,
                         uint32_t *ran, uint32_t *split)
{
    vki_profile narrow = *vki_device_profile(dev);
    narrow.max_storage_range = limit;
    vki_case_desc desc = {};
    desc.profile = &narrow;
    *ran = *split = 0;
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        bool wanted = false;
        for (const char *op : ops) wanted = wanted || !strcmp(c->op, op);
        if (!(c->flags & VKI_CASE_TEST) || !wanted) continue;
        vki_case_result r;
        char err[512];
        vki_status st = vki_op_case_run(dev, c, &desc, &r, err, sizeof err);
        if (st == VKI_ERROR_UNSUPPORTED && strstr(err, "binding limit")) continue;
        ASSERT_EQ(st, VKI_OK) << c->name << ": " << err;
        float tolerance = c->tolerance;
        if (r.fp16_dispatches && tolerance < VKI_CASE_FP16_TOLERANCE) tolerance = VKI_CASE_FP16_TOLERANCE;
        if (r.int8_dispatches && tolerance < VKI_CASE_INT8_TOLERANCE) tolerance = VKI_CASE_INT8_TOLERANCE;
        EXPECT_LE(r.nmse, tolerance) << c->name;
        EXPECT_TRUE(r.guards_intact) << c->name << " wrote outside its output";
        (*ran)++;
        vki_case_result whole;
        ASSERT_EQ(vki_op_case_run(dev, c, nullptr, &whole, err, sizeof err), VKI_OK) << err;
        if (r.dispatches > whole.dispatches) (*split)++;
    }
}

// The matmul and get_rows lowerings bind a weight larger than the device's binding limit a slice
// of rows at a time (matmul_id a slice of whole experts), and the compiler lowers a node whose
// x or y is over it a slice of columns at a time (graph/compile.c): every matmul, matmul_id and
// get_rows case (and the fused ones, whose glu and rope folds then stay unfolded) with the limit
// narrowed to 2 KiB, so that the cases' weights of 1 to 40 KiB take 2 to 30 slices.
class SplitWeights : public VulkanTest {};

TEST_F(SplitWeights, RowSlicesOfAWeightOverTheLimit)
{
    open_device("");
    uint32_t ran = 0, split = 0;
    run_narrowed(dev, 2048, {"matmul", "fused", "get_rows", "matmul_id"}, &ran, &split);
    RecordProperty("ran", ran);
    RecordProperty("split", split);
    EXPECT_GT(ran, 20u);
    EXPECT_GT(split, 20u) << "cases whose weights the limit cut into more dispatches";
}

// The elementwise and row-wise ops with a cut (graph/ops: binary, unary, glu, copy, rms and
// layer norm) under a 1 KiB limit: their cases' tensors of 1 to 20 KiB are computed a slice of
// their outermost dimension at a time, each slice's bindings within the limit.
TEST_F(SplitWeights, SlicesOfActivationsOverTheLimit)
{
    open_device("");
    uint32_t ran = 0, split = 0;
    run_narrowed(dev, 1024,
                 {"add", "mul", "cast", "copy", "geglu", "swiglu", "gelu", "gelu_tanh", "silu", "scale",
                  "quick_gelu", "rms_norm", "layer_norm"},
                 &ran, &split);
    RecordProperty("ran", ran);
    RecordProperty("split", split);
    EXPECT_GT(ran, 30u); // 45 of 52
    EXPECT_GT(split, 10u) << "cases the limit cut into more dispatches"; // 15
}

// The emulate-coopmat narrowing on this device: the matmul and conv2d cases big enough for the
// cooperative-matrix kernels plan their emulated variants (the kernel a GPU session runs, with the
// same tiling; the Conformance rows run those plans), and the paths those plans do not reach on
// lavapipe are forced through copies of the profile: subgroups of 4 in workgroups that the
// device runs as subgroups of 8, so that each subgroup computes two blocks of the tile (the
// passes loop, as on a driver that picks a subgroup size of its own; the cases' tiles all have
// two blocks, so the workgroups stay whole subgroups); and 8 KiB of shared memory, which holds
// one slab buffer of their 64 x 64 x 16 and 32 x 64 x 16 tiles but not two (a barrier before
// and after each load).
class CoopmatEmulation : public VulkanTest {};

TEST_F(CoopmatEmulation, SubgroupPassesAndOneSlabBuffer)
{
    open_device("emulate-coopmat");
    const vki_profile *emulated = vki_device_profile(dev);
    ASSERT_TRUE(emulated->coopmat && emulated->coopmat_emulated) << "lavapipe has fp16 and subgroups";
    ASSERT_EQ(emulated->subgroup_size, 8u) << "the passes below assume lavapipe's subgroups of 8";
    vki_profile passes = *emulated;
    passes.subgroup_size = passes.subgroup_min = passes.subgroup_max = 4;
    passes.subgroup_size_control = false;
    vki_profile one_buffer = *emulated;
    one_buffer.shared_memory = 8 << 10;
    struct {
        const char *what;
        const vki_profile *profile;
    } variants[] = {{"two blocks per subgroup", &passes}, {"one slab buffer", &one_buffer}};
    uint32_t planned = 0, ran[2] = {0, 0};
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        if (!(c->flags & VKI_CASE_TEST) || (strcmp(c->op, "matmul") && strcmp(c->op, "conv2d")) ||
            plan_kernels(c, emulated).find("_cme") == std::string::npos)
            continue;
        planned++;
        for (int v = 0; v < 2; v++) {
            std::string k = plan_kernels(c, variants[v].profile);
            SCOPED_TRACE(std::string(c->name) + ", " + variants[v].what + ": " + k);
            ASSERT_NE(k.find("_cme"), std::string::npos);
            vki_case_desc desc = {};
            desc.profile = variants[v].profile;
            vki_case_result r;
            char err[512];
            ASSERT_EQ(vki_op_case_run(dev, c, &desc, &r, err, sizeof err), VKI_OK) << err;
            EXPECT_GT(r.fp16_dispatches, 0u);
            float tolerance = c->tolerance < VKI_CASE_FP16_TOLERANCE ? VKI_CASE_FP16_TOLERANCE : c->tolerance;
            EXPECT_LE(r.nmse, tolerance);
            EXPECT_TRUE(r.guards_intact) << "wrote outside its output";
            ran[v]++;
        }
    }
    // The cases sized for the kernels (graph/cases/matmul.c: f16 and quantized weights, one slab
    // and many, batches, a strided x, a fused epilogue, NVIDIA's tiles; graph/cases/conv2d.c:
    // 3x3 strides 1 and 2, 1x1, a residual).
    EXPECT_GE(planned, 9u);
    EXPECT_EQ(ran[0], planned);
    EXPECT_EQ(ran[1], planned);
}
