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
#include "vki_abi.h"
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

/* What the emulate-coopmat narrowing (runtime/profile.c) makes of a CPU device with lavapipe's 32
 * KiB of shared memory: 8 x 8 x 8 fragments, emulated (the _cme kernels), planned with AMD RDNA's
 * 64 x 64 x 16 tiles. */
static vki_profile emulated_coopmat(vki_profile p)
{
    p.coopmat = p.coopmat_emulated = p.tuning.use_coopmat = true;
    p.coopmat_khr = false;
    p.coopmat_shape[0] = p.coopmat_shape[1] = p.coopmat_shape[2] = 8;
    p.shared_memory = 32768;
    p.tuning.matmul_tile_m = p.tuning.matmul_tile_n = 64;
    p.tuning.matmul_tile_k = 16;
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
    vki_profile dot = gpu; // the integer-dot mat-vecs (tuning matvec_int_dot)
    dot.int_dot = dot.tuning.matvec_int_dot = true;
    v.push_back({"gpu-int-dot", dot});
    vki_profile dot_nosg = dot;
    dot_nosg.subgroup_ops = 0;
    v.push_back({"gpu-int-dot-no-subgroup", dot_nosg});
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
    v.push_back({"cpu-emulate-coopmat", emulated_coopmat(cpu)});
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
    bool cm = false, cmk = false, cme = false;
    for (const std::string &k : named) {
        cm = cm || (k.size() > 3 && k.compare(k.size() - 3, 3, "_cm") == 0);
        cmk = cmk || (k.size() > 4 && k.compare(k.size() - 4, 4, "_cmk") == 0);
        cme = cme || (k.size() > 4 && k.compare(k.size() - 4, 4, "_cme") == 0);
    }
    EXPECT_TRUE(cm);
    EXPECT_TRUE(cme) << "the emulated cooperative-matrix kernels (every build has them)";
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

// The emulated cooperative-matrix plan is the one a GPU with matrix cores gets, in 8 x 8 x 8
// fragments: the _cme kernel, AMD RDNA's tiles (or NVIDIA's under tuning=nvidia), subgroups of
// 8 x 4 fragments (64 x 32 of the tile), double-buffered slabs where lavapipe's 32 KiB hold two.
TEST(Registry, EmulatedCoopmatPlansAGpusTiles)
{
    vki_profile cpu = gpu_profile();
    cpu.type = VKI_DEVICE_CPU;
    cpu.subgroup_size = cpu.subgroup_min = cpu.subgroup_max = 8;
    cpu.tuning.subgroup_size = 8;
    cpu.tuning.matmul_shared = false;
    struct Plan {
        std::string kernel;
        uint32_t tile_m = 0, tile_n = 0, tile_k = 0, frag = 0, rows = 0, cols = 0, buffers = 0,
                 local = 0, groups_x = 0;
    };
    auto plan_of = [](const vki_profile &p, vki_dtype wt, int64_t K, int64_t M, int64_t N) {
        Plan r;
        vki_graph *g = nullptr;
        vki_plan *plan = nullptr;
        EXPECT_EQ(vki_graph_create(nullptr, &g), VKI_OK);
        const int64_t wne[2] = {K, M}, xne[2] = {K, N};
        vki_tensor w = vki_weight(g, wt, 2, wne, "w");
        vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, xne, "x");
        vki_output(g, vki_matmul(g, w, x), "y");
        EXPECT_EQ(vki_graph_compile(g, &p, nullptr, &plan), VKI_OK) << vki_graph_error(g);
        if (plan && plan->step_count == 1) {
            const vki_step *st = &plan->steps[0];
            r.kernel = st->kernel;
            r.groups_x = st->groups[0];
            for (uint32_t i = 0; i < st->spec_count; i++) {
                uint32_t v = st->specs[i].value;
                switch (st->specs[i].id) {
                case VKI_SPEC_MM_TILE_M: r.tile_m = v; break;
                case VKI_SPEC_MM_TILE_N: r.tile_n = v; break;
                case VKI_SPEC_MM_TILE_K: r.tile_k = v; break;
                case VKI_SPEC_MM_FRAG_K: r.frag = v; break;
                case VKI_SPEC_MM_ROWS: r.rows = v; break;
                case VKI_SPEC_MM_COLS: r.cols = v; break;
                case VKI_SPEC_MM_BUFFERS: r.buffers = v; break;
                case VKI_SPEC_LOCAL_SIZE_X: r.local = v; break;
                default: break;
                }
            }
        }
        vki_plan_destroy(plan);
        vki_graph_destroy(g);
        return r;
    };
    vki_profile amd = emulated_coopmat(cpu);
    // 17 x 15 tiles of 64 x 64: two subgroups of 8 x 4 fragments, two fragments deep per slab.
    Plan p = plan_of(amd, VKI_DTYPE_Q4_0, 64, 1059, 900);
    EXPECT_EQ(p.kernel, "matmul_q4_0_cme");
    EXPECT_EQ(p.tile_m, 64u);
    EXPECT_EQ(p.tile_n, 64u);
    EXPECT_EQ(p.tile_k, 16u);
    EXPECT_EQ(p.frag, 8u);
    EXPECT_EQ(p.rows, 8u);
    EXPECT_EQ(p.cols, 4u);
    EXPECT_EQ(p.local, 16u);
    EXPECT_EQ(p.buffers, 2u);
    EXPECT_EQ(p.groups_x, 17u);
    // 9 x 9 tiles are under 128: halved to 32 x 64, two subgroups of 4 x 4 fragments.
    p = plan_of(amd, VKI_DTYPE_F16, 13, 515, 520);
    EXPECT_EQ(p.kernel, "matmul_f16_cme");
    EXPECT_EQ(p.tile_m, 32u);
    EXPECT_EQ(p.tile_n, 64u);
    EXPECT_EQ(p.rows, 4u);
    EXPECT_EQ(p.local, 16u);
    // 8 KiB of shared memory hold one slab buffer (6 KiB), not two (the conformance test's copy).
    vki_profile small = amd;
    small.shared_memory = 8 << 10;
    p = plan_of(small, VKI_DTYPE_Q4_0, 64, 1059, 900);
    EXPECT_EQ(p.kernel, "matmul_q4_0_cme");
    EXPECT_EQ(p.buffers, 1u);
    // Subgroups of 4 (the conformance test's copy): the same tiles in workgroups of 8 threads.
    vki_profile four = amd;
    four.subgroup_size = four.subgroup_min = four.subgroup_max = 4;
    p = plan_of(four, VKI_DTYPE_Q4_0, 64, 1059, 900);
    EXPECT_EQ(p.kernel, "matmul_q4_0_cme");
    EXPECT_EQ(p.local, 8u);
    EXPECT_EQ(p.rows * p.cols, 32u);
    // NVIDIA's 128 x 128 x 32 tiles: eight subgroups, one slab buffer (20 KiB of slabs, two
    // would not fit 32 KiB); 1059 x 900 makes 72 tiles, halved to 64 x 128 (four subgroups, two
    // buffers of 15 KiB).
    vki_profile nv = amd;
    nv.tuning.matmul_tile_m = nv.tuning.matmul_tile_n = 128;
    nv.tuning.matmul_tile_k = 32;
    p = plan_of(nv, VKI_DTYPE_Q8_0, 64, 2048, 2048);
    EXPECT_EQ(p.kernel, "matmul_q8_0_cme");
    EXPECT_EQ(p.tile_m, 128u);
    EXPECT_EQ(p.tile_n, 128u);
    EXPECT_EQ(p.tile_k, 32u);
    EXPECT_EQ(p.local, 64u);
    EXPECT_EQ(p.buffers, 1u);
    p = plan_of(nv, VKI_DTYPE_Q8_0, 64, 1059, 900);
    EXPECT_EQ(p.tile_m, 64u);
    EXPECT_EQ(p.tile_n, 128u);
    EXPECT_EQ(p.local, 32u);
    EXPECT_EQ(p.buffers, 2u);
    // f32 weights and small products keep their kernels, as with the real extensions.
    EXPECT_EQ(plan_of(amd, VKI_DTYPE_F32, 64, 1059, 900).kernel, "matmul_f32_reg");
    EXPECT_EQ(plan_of(amd, VKI_DTYPE_Q4_0, 64, 256, 256).kernel, "matmul_q4_0_reg");
}
