// Shared fixture of the runtime tests: an instance with the Khronos validation layer on, whose
// messages are collected; any validation message fails the test that caused it.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "vkinfer_runtime.h"
#include "vki_abi.h"
}

struct vki_log_capture {
    std::vector<std::string> errors;
    std::vector<std::string> validation;
    static void callback(void *user, vki_log_level level, bool validation, const char *message)
    {
        auto *self = static_cast<vki_log_capture *>(user);
        if (validation)
            self->validation.push_back(message);
        else if (level == VKI_LOG_ERROR)
            self->errors.push_back(message);
    }
};

class VulkanTest : public ::testing::Test {
  protected:
    vki_log_capture log;
    vki_instance *inst = nullptr;
    vki_device *dev = nullptr;

    vki_instance_desc instance_desc()
    {
        vki_instance_desc d = {};
        d.log = vki_log_capture::callback;
        d.log_user = &log;
        d.log_level = VKI_LOG_WARN;
        d.validation = true;
        return d;
    }

    void SetUp() override
    {
        vki_instance_desc d = instance_desc();
        ASSERT_EQ(vki_instance_create(&d, &inst), VKI_OK) << errors();
    }

    std::string errors() const
    {
        std::string all;
        for (const auto &m : log.errors) all += "\n  log: " + m;
        return all;
    }

    // Opens a device with the given narrowing ("" = none) and no pipeline cache on disk.
    void open_device(const char *narrow = "", const char *cache_dir = "")
    {
        vki_narrowing n;
        char err[256];
        ASSERT_EQ(vki_narrowing_parse(narrow, &n, err, sizeof err), VKI_OK) << err;
        vki_device_desc d = {};
        d.narrowing = &n;
        d.cache_dir = cache_dir;
        ASSERT_EQ(vki_device_create(inst, &d, &dev), VKI_OK) << errors();
    }

    void TearDown() override
    {
        // Runtime errors logged by a failing test say why it failed.
        if (HasFailure()) std::fprintf(stderr, "%s\n", errors().c_str());
        vki_device_destroy(dev);
        vki_instance_destroy(inst);
        for (const auto &m : log.validation) ADD_FAILURE() << "validation: " << m;
        EXPECT_EQ(log.validation.size(), 0u);
    }
};

// Narrowed profiles every device-level test runs under, so that fallbacks run on lavapipe.
inline std::vector<const char *> test_profiles()
{
    return {"", "no-fp16,no-subgroup,no-int-dot", "no-uma", "tuning=amd-gcn", "tuning=nvidia"};
}

// The add_u32 kernel (data[i] += value) with the tuning's workgroup size.
inline vki_status make_add_kernel(vki_device *dev, vki_kernel **out, uint32_t bindings = 1,
                                  uint32_t push = sizeof(vki_pc_add_u32))
{
    static vki_spec spec;
    spec = {VKI_SPEC_LOCAL_SIZE_X, vki_device_profile(dev)->tuning.workgroup_size};
    vki_kernel_desc kd = {};
    kd.name = "add_u32";
    kd.binding_count = bindings;
    kd.push_size = push;
    kd.specs = &spec;
    kd.spec_count = 1;
    return vki_kernel_create(dev, &kd, out);
}

// Records data[i] += value over `range` (n = range.size / 4) on a 2-D grid.
inline vki_status record_add(vki_stream *s, vki_kernel *k, vki_range range, uint32_t value,
                             vki_pc_add_u32 *pc_storage)
{
    uint32_t local[3];
    vki_kernel_local_size(k, local);
    uint64_t n = range.size / 4;
    uint64_t groups = vki_div_up(n, local[0]);
    *pc_storage = {(uint32_t)n, value};
    vki_dispatch d = {};
    d.kernel = k;
    d.bindings = &range;
    d.binding_count = 1;
    d.push = pc_storage;
    d.push_size = sizeof *pc_storage;
    d.groups[0] = (uint32_t)(groups < 65535 ? groups : 65535);
    d.groups[1] = (uint32_t)vki_div_up(groups, d.groups[0]);
    return vki_stream_dispatch(s, &d);
}
