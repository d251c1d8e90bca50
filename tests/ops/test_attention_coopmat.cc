// Flash attention on cooperative matrices (shaders/attention_coopmat.comp) under the
// emulate-coopmat narrowing: the attention cases of the conformance table (graph/cases/) whose
// plan takes the kernel (its _cme variant, the very source the NV and KHR variants compile) run
// against the CPU reference, with guard bytes and the validation layer on. The decode cases keep
// their kernels. (The Conformance suite's emulated rows cover matmul and conv2d; these are the
// attention ones.)
#include "runtime/test_support.h"

extern "C" {
#include "vkinfer_graph_testing.h"
}

#include <cstring>
#include <string>

// The kernels the case's plan under `profile` runs, space-separated (test_conformance.cc).
std::string plan_kernels(const vki_op_case *c, const vki_profile *profile);

class CoopmatAttention : public VulkanTest {};

TEST_F(CoopmatAttention, LongQueryBlocksMatchReference)
{
    open_device("emulate-coopmat");
    const vki_profile *p = vki_device_profile(dev);
    ASSERT_TRUE(p->coopmat && p->coopmat_emulated) << "lavapipe has fp16 and subgroups";
    uint32_t ran = 0, decode = 0;
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        if (!(c->flags & VKI_CASE_TEST) || strcmp(c->op, "attention")) continue;
        std::string k = plan_kernels(c, p);
        SCOPED_TRACE(std::string(c->name) + ": " + k);
        if (k.find("attention_cme") == std::string::npos) {
            // What does not take it: decode steps (their kernels are memory-bound), Q8_0 caches,
            // sequences, short blocks.
            decode += strstr(c->name, "decode") != nullptr;
            continue;
        }
        EXPECT_EQ(strstr(c->name, "q8_0"), nullptr) << "Q8_0 K/V keep the other kernels";
        vki_case_result r;
        char err[512];
        ASSERT_EQ(vki_op_case_run(dev, c, nullptr, &r, err, sizeof err), VKI_OK) << err;
        EXPECT_GT(r.fp16_dispatches, 0u);
        float tolerance = c->tolerance < VKI_CASE_FP16_TOLERANCE ? VKI_CASE_FP16_TOLERANCE : c->tolerance;
        EXPECT_LE(r.nmse, tolerance);
        EXPECT_TRUE(r.guards_intact) << "wrote outside its output";
        printf("  %s: nmse %.3g\n", c->name, r.nmse);
        ran++;
    }
    // The causal GQA prefill (q70 kv70: partial tiles of rows and positions), SD's cross-attention
    // (D40 padded in the fragments, f16 q, k and v), the causal masked D64 q33 kv70, the D8 q24
    // f16 cache and the positions with windows (GQA 8/1).
    EXPECT_GE(ran, 5u);
    EXPECT_GE(decode, 4u) << "decode cases seen, none planned on the cooperative-matrix kernel";
}

// A device with less shared memory (12 KiB, as a copy of the emulating profile): the planner
// halves the kv tile, then the rows (16 rows in two subgroups, tiles of 16 positions), and the
// causal GQA prefill still matches the reference.
TEST_F(CoopmatAttention, SmallerTilesWhereSharedMemoryIsShort)
{
    open_device("emulate-coopmat");
    vki_profile small = *vki_device_profile(dev);
    small.shared_memory = 12 << 10;
    const vki_op_case *c = nullptr;
    for (uint32_t i = 0; i < vki_op_case_count(); i++)
        if (strstr(vki_op_case_at(i)->name, "attention f32 causal prefill D64 GQA 4/2 q70 kv70")) c = vki_op_case_at(i);
    ASSERT_NE(c, nullptr);
    ASSERT_NE(plan_kernels(c, &small).find("attention_cme"), std::string::npos);
    vki_case_desc desc = {};
    desc.profile = &small;
    vki_case_result r;
    char err[512];
    ASSERT_EQ(vki_op_case_run(dev, c, &desc, &r, err, sizeof err), VKI_OK) << err;
    EXPECT_LE(r.nmse, VKI_CASE_FP16_TOLERANCE);
    EXPECT_TRUE(r.guards_intact) << "wrote outside its output";
    printf("  12 KiB of shared memory: nmse %.3g\n", r.nmse);
}
