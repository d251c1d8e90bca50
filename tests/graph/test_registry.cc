// The op table as the registry the tests read: every op has a conformance case, and every
// kernel variant a lowering can name is embedded. Device-free: cases are built and compiled
// against made-up profiles (a GPU with and without matrix cores, subgroups or fp16, a CPU
// device like lavapipe), so that the lowering's choices for every vendor's path are covered.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "graph_internal.h"
#include "vkinfer_graph_testing.h"
#include "vkinfer_runtime.h"
}

/* The op defs the nodes of case c's graph use. */
static std::set<const vki_op_def *> case_ops(const vki_op_case *c)
{
    std::set<const vki_op_def *> ops;
    vki_graph *g = nullptr;
    if (vki_graph_create(nullptr, &g) != VKI_OK) return ops;
    c->build(g, c->arg);
    for (uint32_t id = 1; id < g->count; id++)
        if (g->nodes[id].kind == VKI_NODE_OP && g->nodes[id].op) ops.insert(g->nodes[id].op);
    vki_graph_destroy(g);
    return ops;
}

TEST(Registry, EveryOpHasAConformanceCase)
{
    std::set<const vki_op_def *> tested;
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        if (!(c->flags & VKI_CASE_TEST)) continue;
        for (const vki_op_def *op : case_ops(c)) tested.insert(op);
    }
    ASSERT_GT(vki_op_table_count, 0u);
    for (uint32_t i = 0; i < vki_op_table_count; i++)
        EXPECT_TRUE(tested.count(vki_op_table[i]))
            << "op " << vki_op_table[i]->name << " has no conformance case (graph/cases/)";
}

/* A discrete GPU: subgroups of 32 with arithmetic, fp16, 48 KiB of shared memory. */
static vki_profile gpu_profile()
{
    vki_profile p;
    std::memset(&p, 0, sizeof p);
    std::snprintf(p.name, sizeof p.name, "registry test GPU");
    p.type = VKI_DEVICE_DISCRETE;
    p.storage_align = 64;
    p.storage16 = p.fp16 = p.storage8 = p.int8 = true;
    p.subgroup_size = p.subgroup_min = p.subgroup_max = 32;
    p.subgroup_ops = VKI_SUBGROUP_BASIC | VKI_SUBGROUP_ARITHMETIC;
    p.subgroup_size_control = true;
    p.max_storage_range = 1u << 30;
    p.max_workgroup_invocations = 1024;
    for (int i = 0; i < 3; i++) {
        p.max_workgroup_size[i] = 1024;
        p.max_workgroup_count[i] = 65535;
    }
    p.shared_memory = 49152;
    p.push_constant_size = 128;
    std::snprintf(p.tuning.name, sizeof p.tuning.name, "test-gpu");
    p.tuning.subgroup_size = 32;
    p.tuning.workgroup_size = 256;
    p.tuning.matvec_rows = 4;
    p.tuning.matmul_tile_m = p.tuning.matmul_tile_n = 64;
    p.tuning.matmul_tile_k = 16;
    p.tuning.matmul_shared = p.tuning.attention_tiled = p.tuning.conv2d_shared = true;
    return p;
}

/* The profiles every lowering choice is asked under. */
static std::vector<std::pair<std::string, vki_profile>> profiles()
{
    std::vector<std::pair<std::string, vki_profile>> v;
    vki_profile gpu = gpu_profile();
    v.push_back({"gpu", gpu});
    vki_profile cm = gpu;
    cm.coopmat = cm.tuning.use_coopmat = true;
    cm.coopmat_shape[0] = cm.coopmat_shape[1] = cm.coopmat_shape[2] = 16;
    cm.tuning.matmul_tile_m = cm.tuning.matmul_tile_n = 128;
    cm.tuning.matmul_tile_k = 32;
    v.push_back({"gpu-coopmat", cm});
    if (vki_shader_find("peak_coopmat_khr_f16")) { // a build with the KHR kernels (.venv-shaders)
        vki_profile cmk = cm;
        cmk.coopmat_khr = true;
        v.push_back({"gpu-coopmat-khr", cmk});
    }
    vki_profile nosg = gpu;
    nosg.subgroup_ops = 0;
    v.push_back({"gpu-no-subgroup", nosg});
    vki_profile no16 = gpu;
    no16.fp16 = no16.storage16 = false;
    v.push_back({"gpu-no-fp16", no16});
    vki_profile reg = gpu;
    reg.tuning.matmul_shared = reg.tuning.attention_tiled = reg.tuning.conv2d_shared = false;
    v.push_back({"gpu-register-tiles", reg});
    vki_profile cpu = gpu; // lavapipe's row: subgroups of 8, texel loads, no barriers
    cpu.type = VKI_DEVICE_CPU;
    cpu.subgroup_size = cpu.subgroup_min = cpu.subgroup_max = 8;
    cpu.subgroup_size_control = false;
    cpu.texel_align = 16;
    cpu.max_texel_elements = 1u << 28;
    cpu.tuning.subgroup_size = 8;
    cpu.tuning.workgroup_size = 64;
    cpu.tuning.matvec_rows = 64;
    cpu.tuning.matmul_tile_k = 8;
    cpu.tuning.matmul_shared = cpu.tuning.attention_tiled = cpu.tuning.conv2d_shared = false;
    cpu.tuning.texel_loads = true;
    v.push_back({"cpu", cpu});
    vki_profile cpu_nosg = cpu;
    cpu_nosg.subgroup_ops = 0;
    v.push_back({"cpu-no-subgroup", cpu_nosg});
    vki_profile cpu_no16 = cpu;
    cpu_no16.fp16 = cpu_no16.storage16 = false;
    v.push_back({"cpu-no-fp16", cpu_no16});
    return v;
}

TEST(Registry, EveryKernelALoweringNamesIsEmbedded)
{
    uint32_t compiled = 0, steps = 0;
    std::set<std::string> named;
    for (const auto &[pname, profile] : profiles())
        for (uint32_t i = 0; i < vki_op_case_count(); i++) {
            const vki_op_case *c = vki_op_case_at(i);
            for (int fusion = 0; fusion < 2; fusion++) {
                vki_graph *g = nullptr;
                vki_plan *plan = nullptr;
                ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
                c->build(g, c->arg);
                vki_compile_desc desc = {};
                desc.no_fusion = fusion == 0;
                // A case a profile cannot run (16-bit storage narrowed off) names no kernel;
                // compile itself refuses a kernel that is not embedded (NOT_FOUND).
                vki_status st = vki_graph_compile(g, &profile, &desc, &plan);
                EXPECT_TRUE(st == VKI_OK || st == VKI_ERROR_UNSUPPORTED)
                    << c->name << " on " << pname << (fusion ? "" : " (unfused)") << ": "
                    << vki_status_string(st) << ": " << vki_graph_error(g);
                if (st == VKI_OK) {
                    compiled++;
                    for (uint32_t s = 0; s < vki_plan_step_count(plan); s++) {
                        vki_plan_step step;
                        ASSERT_TRUE(vki_plan_step_get(plan, s, &step));
                        steps++;
                        named.insert(step.kernel);
                        EXPECT_NE(vki_shader_find(step.kernel), nullptr)
                            << c->name << " on " << pname << (fusion ? "" : " (unfused)")
                            << " names kernel " << step.kernel
                            << ", which is not embedded (shaders/variants.txt, shaders/CMakeLists.txt)";
                    }
                }
                vki_plan_destroy(plan);
                vki_graph_destroy(g);
            }
        }
    // The sweep reached the lowerings: most cases compile and their kernels are many.
    EXPECT_GT(compiled, vki_op_case_count());
    EXPECT_GT(named.size(), 60u) << steps << " steps";
    // Both cooperative-matrix families were reached: NV always, KHR where the build has it.
    bool cm = false, cmk = false;
    for (const std::string &k : named) {
        cm = cm || (k.size() > 3 && k.compare(k.size() - 3, 3, "_cm") == 0);
        cmk = cmk || (k.size() > 4 && k.compare(k.size() - 4, 4, "_cmk") == 0);
    }
    EXPECT_TRUE(cm);
    EXPECT_EQ(cmk, vki_shader_find("peak_coopmat_khr_f16") != nullptr);
}

// A weight over the profile's binding limit is bound a slice at a time (matmul, get_rows): no
// binding of a weight in any step exceeds the limit, and the weights cut make more steps.
TEST(Registry, NoWeightBindingExceedsTheLimit)
{
    uint32_t checked = 0, cut = 0;
    for (auto [pname, profile] : profiles())
        for (uint32_t i = 0; i < vki_op_case_count(); i++) {
            const vki_op_case *c = vki_op_case_at(i);
            if (!(c->flags & VKI_CASE_TEST) || (strcmp(c->op, "matmul") && strcmp(c->op, "get_rows")))
                continue;
            uint32_t steps[2] = {0, 0};
            for (int narrow = 0; narrow < 2; narrow++) {
                vki_profile p = profile;
                if (narrow) p.max_storage_range = 4096;
                vki_graph *g = nullptr;
                vki_plan *plan = nullptr;
                ASSERT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
                c->build(g, c->arg);
                if (vki_graph_compile(g, &p, nullptr, &plan) == VKI_OK) {
                    steps[narrow] = plan->step_count;
                    for (uint32_t s = 0; narrow && s < plan->step_count; s++)
                        for (uint32_t b = 0; b < plan->steps[s].binding_count; b++) {
                            const vki_plan_binding *pb = &plan->steps[s].bindings[b];
                            if (!pb->base || plan->tensors[pb->base].kind != VKI_NODE_WEIGHT) continue;
                            EXPECT_LE(pb->size, p.max_storage_range) << c->name << " on " << pname;
                            checked++;
                        }
                }
                vki_plan_destroy(plan);
                vki_graph_destroy(g);
            }
            if (steps[1] > steps[0]) cut++;
        }
    EXPECT_GT(checked, 100u);
    EXPECT_GT(cut, 20u);
}
