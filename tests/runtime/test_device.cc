// Device selection, profiles, narrowing and the tuning table.
#include "test_support.h"

#include <cstdlib>
#include <cstring>

TEST(Narrowing, ParsesEveryWordAndRejectsUnknown)
{
    vki_narrowing n;
    char err[256];
    ASSERT_EQ(vki_narrowing_parse("no-fp16,no-subgroup,no-coopmat,no-int-dot,no-uma,tuning=amd-rdna,int-dot",
                                  &n, err, sizeof err),
              VKI_OK);
    EXPECT_TRUE(n.no_fp16 && n.no_subgroup && n.no_coopmat && n.no_int_dot && n.no_uma && n.int_dot);
    EXPECT_STREQ(n.tuning, "amd-rdna");

    ASSERT_EQ(vki_narrowing_parse(nullptr, &n, err, sizeof err), VKI_OK);
    EXPECT_FALSE(n.no_fp16 || n.no_uma || n.tuning[0]);

    EXPECT_EQ(vki_narrowing_parse("no-fp16,fast", &n, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(err, "\"fast\""), nullptr) << err;
    EXPECT_EQ(vki_narrowing_parse("tuning=voodoo", &n, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(err, "voodoo"), nullptr) << err;
    EXPECT_NE(std::strstr(err, "lavapipe"), nullptr) << "the message lists the rows: " << err;
}

// max-binding takes bytes or binary units and refuses zero, junk, overflow and sizes below the
// floor, saying which.
TEST(Narrowing, MaxBindingTakesASizeAboveTheFloor)
{
    vki_narrowing n;
    char err[256];
    struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"max-binding=1M", 1ull << 20},         {"max-binding=65536", 65536},
                {"no-uma,max-binding=512K", 512ull << 10}, {"max-binding=2GiB", 2ull << 30},
                {"max-binding=3MB", 3ull << 20},        {"max-binding=64k", 64ull << 10}};
    for (const auto &g : good) {
        ASSERT_EQ(vki_narrowing_parse(g.text, &n, err, sizeof err), VKI_OK) << g.text << ": " << err;
        EXPECT_EQ(n.max_binding, g.bytes) << g.text;
    }
    EXPECT_TRUE(n.max_binding && !n.no_uma) << "each parse starts from no narrowing";
    ASSERT_EQ(vki_narrowing_parse("no-fp16", &n, err, sizeof err), VKI_OK);
    EXPECT_EQ(n.max_binding, 0u);
    for (const char *bad : {"max-binding=0", "max-binding=", "max-binding=1X", "max-binding=-1M",
                            "max-binding=M", "max-binding=1M2", "max-binding=65535",
                            "max-binding=63K", "max-binding=99999999999999999999",
                            "max-binding=17179869184G", "max-binding= 1M"}) {
        EXPECT_EQ(vki_narrowing_parse(bad, &n, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT) << bad;
        EXPECT_NE(std::strstr(err, "max-binding="), nullptr) << bad << ": " << err;
        EXPECT_NE(std::strstr(err, "64 KiB"), nullptr) << "the message names the floor: " << err;
    }
}

TEST(Tuning, TableHasEveryVendorRow)
{
    std::vector<std::string> names;
    for (uint32_t i = 0; i < vki_tuning_count(); i++) names.push_back(vki_tuning_name(i));
    for (const char *want : {"nvidia", "amd-rdna", "amd-gcn", "intel-arc", "intel-xe", "arm-mali",
                             "qualcomm-adreno", "apple", "lavapipe", "generic"})
        EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
    EXPECT_EQ(vki_tuning_name(vki_tuning_count()), nullptr);
}

TEST(Status, EveryStatusHasAName)
{
    for (int s = 0; s < VKI_STATUS_COUNT; s++)
        EXPECT_STRNE(vki_status_string((vki_status)s), "unknown status") << s;
    EXPECT_STREQ(vki_status_string((vki_status)999), "unknown status");
}

class DeviceTest : public VulkanTest {};

TEST_F(DeviceTest, DefaultSelectionPrefersDiscreteOverCpu)
{
    ASSERT_GT(vki_instance_device_count(inst), 0u);
    uint32_t pick = 99;
    unsetenv("VKI_DEVICE");
    ASSERT_EQ(vki_instance_select_device(inst, nullptr, &pick), VKI_OK);
    vki_profile chosen;
    ASSERT_EQ(vki_instance_device_profile(inst, pick, nullptr, &chosen), VKI_OK);
    for (uint32_t i = 0; i < vki_instance_device_count(inst); i++) {
        vki_profile p;
        ASSERT_EQ(vki_instance_device_profile(inst, i, nullptr, &p), VKI_OK);
        if (p.type == VKI_DEVICE_DISCRETE) EXPECT_EQ(chosen.type, VKI_DEVICE_DISCRETE);
    }
}

TEST_F(DeviceTest, SelectByIndexNameAndEnvironment)
{
    vki_profile p0;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &p0), VKI_OK);
    uint32_t pick = 99;
    ASSERT_EQ(vki_instance_select_device(inst, "0", &pick), VKI_OK);
    EXPECT_EQ(pick, 0u);

    // A case-changed substring of the name selects the device.
    std::string part(p0.name, std::min<size_t>(std::strlen(p0.name), 4));
    for (auto &c : part) c = (char)std::toupper((unsigned char)c);
    pick = 99;
    ASSERT_EQ(vki_instance_select_device(inst, part.c_str(), &pick), VKI_OK);
    vki_profile p;
    ASSERT_EQ(vki_instance_device_profile(inst, pick, nullptr, &p), VKI_OK);
    EXPECT_STREQ(p.name, p0.name);

    setenv("VKI_DEVICE", "0", 1);
    pick = 99;
    EXPECT_EQ(vki_instance_select_device(inst, nullptr, &pick), VKI_OK);
    EXPECT_EQ(pick, 0u);
    setenv("VKI_DEVICE", "no-such-gpu", 1);
    EXPECT_EQ(vki_instance_select_device(inst, nullptr, &pick), VKI_ERROR_NOT_FOUND);
    EXPECT_NE(std::strstr(vki_instance_last_error(inst), "VKI_DEVICE"), nullptr);
    unsetenv("VKI_DEVICE");
}

TEST_F(DeviceTest, UnknownDeviceNamesTheAvailableOnes)
{
    uint32_t pick;
    EXPECT_EQ(vki_instance_select_device(inst, "Voodoo5 6000", &pick), VKI_ERROR_NOT_FOUND);
    EXPECT_EQ(vki_instance_select_device(inst, "77", &pick), VKI_ERROR_NOT_FOUND);
    const char *msg = vki_instance_last_error(inst);
    vki_profile p0;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &p0), VKI_OK);
    EXPECT_NE(std::strstr(msg, p0.name), nullptr) << msg;
    log.errors.clear();

    vki_device_desc d = {};
    d.select = "Voodoo5 6000";
    EXPECT_EQ(vki_device_create(inst, &d, &dev), VKI_ERROR_NOT_FOUND);
    EXPECT_EQ(dev, nullptr);
}

TEST_F(DeviceTest, ProfileIsPlausible)
{
    open_device();
    const vki_profile *p = vki_device_profile(dev);
    EXPECT_GT(std::strlen(p->name), 0u);
    EXPECT_GE(p->api_version, (1u << 22) | (2u << 12)) << "Vulkan 1.2";
    EXPECT_GE(p->subgroup_size, 1u);
    EXPECT_LE(p->subgroup_min, p->subgroup_size);
    EXPECT_GE(p->subgroup_max, p->subgroup_size);
    EXPECT_GE(p->max_storage_range, 1u << 27) << "Vulkan guarantees 128 MiB";
    EXPECT_GE(p->push_constant_size, 128u);
    EXPECT_GE(p->shared_memory, 16384u);
    EXPECT_GT(p->heap_count, 0u);
    EXPECT_GT(p->device_local_bytes, 0u);
    EXPECT_GT(p->tuning.workgroup_size, 0u);
    EXPECT_LE(p->tuning.workgroup_size, p->max_workgroup_invocations);
    EXPECT_GE(p->tuning.subgroup_size, p->subgroup_min);
    EXPECT_LE(p->tuning.subgroup_size, p->subgroup_max);
    if (p->vendor == VKI_VENDOR_MESA_CPU) {
        EXPECT_STREQ(p->tuning.name, "lavapipe");
        EXPECT_FALSE(p->tuning.matmul_shared) << "lavapipe runs shared-memory barriers slowly";
        EXPECT_TRUE(p->uma);
        EXPECT_EQ(p->type, VKI_DEVICE_CPU);
    }
}

TEST_F(DeviceTest, NarrowingTurnsCapabilitiesOff)
{
    vki_profile full;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &full), VKI_OK);
    vki_narrowing n;
    ASSERT_EQ(vki_narrowing_parse("no-fp16,no-subgroup,no-int-dot,no-coopmat,no-uma", &n, nullptr, 0),
              VKI_OK);
    vki_profile narrow;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &narrow), VKI_OK);
    EXPECT_FALSE(narrow.fp16);
    EXPECT_FALSE(narrow.storage16);
    EXPECT_EQ(narrow.subgroup_ops, 0u);
    EXPECT_FALSE(narrow.subgroup_size_control);
    EXPECT_FALSE(narrow.int_dot);
    EXPECT_FALSE(narrow.coopmat);
    EXPECT_FALSE(narrow.uma);
    // What narrowing does not touch stays.
    EXPECT_EQ(narrow.max_storage_range, full.max_storage_range);
    EXPECT_STREQ(narrow.name, full.name);
}

// int-dot turns the integer-dot mat-vec on (tuning matvec_int_dot, off in every row) where the
// device has integer dot products, whatever the row; no-int-dot wins.
TEST_F(DeviceTest, IntDotNarrowingForcesTheIntegerDotMatVec)
{
    vki_profile full;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &full), VKI_OK);
    EXPECT_FALSE(full.tuning.matvec_int_dot) << "row " << full.tuning.name;
    struct {
        const char *text;
        bool on;
    } cases[] = {{"int-dot", full.int_dot},
                 {"int-dot,tuning=nvidia", full.int_dot},
                 {"tuning=nvidia", false},
                 {"int-dot,no-int-dot", false}};
    for (const auto &c : cases) {
        vki_narrowing n;
        ASSERT_EQ(vki_narrowing_parse(c.text, &n, nullptr, 0), VKI_OK);
        vki_profile p;
        ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &p), VKI_OK);
        EXPECT_EQ(p.tuning.matvec_int_dot, c.on) << c.text;
        EXPECT_EQ(p.int_dot, full.int_dot && !n.no_int_dot) << c.text;
    }
}

// A smaller binding limit lowers the profile's max_storage_range and nothing else; a larger one
// keeps the device's.
TEST_F(DeviceTest, MaxBindingLowersTheStorageRangeOnly)
{
    vki_profile full;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &full), VKI_OK);
    vki_narrowing n;
    ASSERT_EQ(vki_narrowing_parse("max-binding=1M", &n, nullptr, 0), VKI_OK);
    vki_profile narrow;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &narrow), VKI_OK);
    EXPECT_EQ(narrow.max_storage_range, full.max_storage_range < (1u << 20) ? full.max_storage_range
                                                                            : (1u << 20));
    EXPECT_EQ(narrow.fp16, full.fp16);
    EXPECT_EQ(narrow.max_allocation, full.max_allocation);
    n.max_binding = full.max_storage_range * 4;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &narrow), VKI_OK);
    EXPECT_EQ(narrow.max_storage_range, full.max_storage_range);
}

// emulate-coopmat (tests) gives a device with fp16 and subgroups emulated 8x8x8 fragments and
// no extension; combined with no-fp16 (or no-subgroup) it does nothing, as the real extensions
// would not be used there. `vkinfer devices` says the fragments are emulated.
TEST_F(DeviceTest, EmulatedCoopmatNeedsFp16AndSubgroups)
{
    vki_profile full;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &full), VKI_OK);
    vki_narrowing n;
    ASSERT_EQ(vki_narrowing_parse("emulate-coopmat", &n, nullptr, 0), VKI_OK);
    EXPECT_TRUE(n.emulate_coopmat);
    vki_profile p;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &p), VKI_OK);
    if (!full.fp16 || !(full.subgroup_ops & VKI_SUBGROUP_BASIC) || full.subgroup_size < 4)
        GTEST_SKIP() << "the device has no fp16 or subgroups of 4 lanes";
    EXPECT_TRUE(p.coopmat && p.coopmat_emulated && p.tuning.use_coopmat);
    EXPECT_FALSE(p.coopmat_khr);
    for (uint32_t i = 0; i < 3; i++) EXPECT_EQ(p.coopmat_shape[i], 8u);
    ASSERT_EQ(vki_narrowing_parse("emulate-coopmat,no-fp16", &n, nullptr, 0), VKI_OK);
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &p), VKI_OK);
    EXPECT_FALSE(p.coopmat || p.coopmat_emulated);
    ASSERT_EQ(vki_narrowing_parse("emulate-coopmat,no-subgroup", &n, nullptr, 0), VKI_OK);
    ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &p), VKI_OK);
    EXPECT_FALSE(p.coopmat || p.coopmat_emulated);
}

TEST_F(DeviceTest, ForcedTuningStaysWithinTheDevice)
{
    vki_profile full;
    ASSERT_EQ(vki_instance_device_profile(inst, 0, nullptr, &full), VKI_OK);
    for (uint32_t i = 0; i < vki_tuning_count(); i++) {
        vki_narrowing n = {};
        std::snprintf(n.tuning, sizeof n.tuning, "%s", vki_tuning_name(i));
        vki_profile p;
        ASSERT_EQ(vki_instance_device_profile(inst, 0, &n, &p), VKI_OK);
        EXPECT_STREQ(p.tuning.name, vki_tuning_name(i));
        EXPECT_GE(p.tuning.subgroup_size, p.subgroup_min) << p.tuning.name;
        EXPECT_LE(p.tuning.subgroup_size, p.subgroup_max) << p.tuning.name;
        EXPECT_LE(p.tuning.workgroup_size, p.max_workgroup_invocations) << p.tuning.name;
        EXPECT_LE(4ull * p.tuning.matmul_tile_k * (p.tuning.matmul_tile_m + p.tuning.matmul_tile_n),
                  (uint64_t)p.shared_memory)
            << p.tuning.name;
        if (!p.coopmat) EXPECT_FALSE(p.tuning.use_coopmat) << p.tuning.name;
    }
}

TEST_F(DeviceTest, EnvironmentNarrowsTheProfile)
{
    setenv("VKI_NARROW", "no-fp16,tuning=intel-xe", 1);
    vki_profile p;
    vki_status st = vki_instance_device_profile(inst, 0, nullptr, &p);
    setenv("VKI_NARROW", "bogus", 1);
    vki_status bad = vki_device_create(inst, nullptr, &dev);
    unsetenv("VKI_NARROW");
    ASSERT_EQ(st, VKI_OK);
    EXPECT_FALSE(p.fp16);
    EXPECT_STREQ(p.tuning.name, "intel-xe");
    EXPECT_EQ(bad, VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(vki_instance_last_error(inst), "VKI_NARROW"), nullptr);
}

class NarrowedDevice : public VulkanTest, public ::testing::WithParamInterface<const char *> {};

TEST_P(NarrowedDevice, OpensAndRunsAKernel)
{
    open_device(GetParam());
    vki_arena *arena = nullptr;
    vki_kernel *k = nullptr;
    vki_stream *s = nullptr;
    vki_range buf;
    const uint32_t n = 1000;
    std::vector<uint32_t> host(n);
    for (uint32_t i = 0; i < n; i++) host[i] = i * 7;
    ASSERT_EQ(vki_arena_create(dev, nullptr, &arena), VKI_OK);
    ASSERT_EQ(vki_arena_alloc(arena, n * 4, 0, &buf), VKI_OK);
    ASSERT_EQ(vki_device_upload(dev, buf, 0, host.data(), n * 4), VKI_OK);
    vki_kernel_desc kd = {};
    kd.name = "add_u32";
    kd.binding_count = 1;
    kd.push_size = sizeof(vki_pc_add_u32);
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, vki_device_profile(dev)->tuning.workgroup_size};
    kd.specs = &spec;
    kd.spec_count = 1;
    ASSERT_EQ(vki_kernel_create(dev, &kd, &k), VKI_OK) << vki_device_last_error(dev);
    ASSERT_EQ(vki_stream_create(dev, nullptr, &s), VKI_OK);
    vki_pc_add_u32 pc = {n, 5};
    vki_dispatch d = {};
    d.kernel = k;
    d.bindings = &buf;
    d.binding_count = 1;
    d.push = &pc;
    d.push_size = sizeof pc;
    d.groups[0] = (uint32_t)vki_div_up(n, spec.value);
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    ASSERT_EQ(vki_stream_dispatch(s, &d), VKI_OK);
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    uint64_t t = 0;
    ASSERT_EQ(vki_stream_submit(s, &t), VKI_OK);
    ASSERT_EQ(vki_device_wait(dev, t, UINT64_MAX), VKI_OK);
    std::vector<uint32_t> back(n);
    ASSERT_EQ(vki_device_download(dev, buf, 0, back.data(), n * 4), VKI_OK);
    for (uint32_t i = 0; i < n; i++) ASSERT_EQ(back[i], i * 7 + 5) << i;
    vki_stream_destroy(s);
    vki_kernel_destroy(k);
    vki_arena_destroy(arena);
}

INSTANTIATE_TEST_SUITE_P(Profiles, NarrowedDevice, ::testing::ValuesIn(test_profiles()));
