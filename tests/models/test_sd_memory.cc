// Device memory under a limit (vki_device_desc.memory_limit, $VKI_MEMORY_LIMIT), the way a
// 4 GiB card is reproduced on lavapipe for SD: the heaps report the limit (the VAE sizes its
// tiles by it), and an allocation past it is an out-of-device-memory error naming the limit.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/test_support.h"

extern "C" {
#include "sd_internal.h"
}

namespace {

class SdMemoryTest : public VulkanTest {
  protected:
    vki_device *limited(uint64_t limit)
    {
        vki_device_desc d = {};
        d.cache_dir = "";
        d.memory_limit = limit;
        d.staging_size = 1 << 20;
        vki_device *out = nullptr;
        EXPECT_EQ(vki_device_create(inst, &d, &out), VKI_OK) << errors();
        return out;
    }
    uint64_t held(vki_device *device)
    {
        vki_device_stats s;
        vki_device_stats_get(device, &s);
        return s.device_bytes;
    }
};

TEST_F(SdMemoryTest, LimitIsTheHeapAndRefusesWhatExceedsIt)
{
    const uint64_t limit = 24ull << 20;
    vki_device *d = limited(limit);
    ASSERT_NE(d, nullptr);
    const vki_profile *p = vki_device_profile(d);
    uint32_t local = 0;
    for (uint32_t h = 0; h < p->heap_count; h++)
        if (p->heaps[h].device_local) {
            local++;
            EXPECT_EQ(p->heaps[h].size, limit);
            EXPECT_EQ(p->heaps[h].budget, limit);
        }
    EXPECT_GT(local, 0u);
    vki_arena_desc ad = {};
    ad.kind = VKI_ARENA_WEIGHTS;
    ad.block_size = 8ull << 20;
    vki_arena *a = nullptr;
    ASSERT_EQ(vki_arena_create(d, &ad, &a), VKI_OK);
    vki_range r;
    EXPECT_EQ(vki_arena_alloc(a, 8ull << 20, 0, &r), VKI_OK);
    EXPECT_EQ(vki_arena_alloc(a, 8ull << 20, 0, &r), VKI_OK);
    uint64_t before = held(d);
    EXPECT_LE(before, limit);
    EXPECT_EQ(vki_arena_alloc(a, 8ull << 20, 0, &r), VKI_ERROR_OUT_OF_DEVICE_MEMORY);
    EXPECT_NE(std::string(vki_device_last_error(d)).find("over the memory limit"), std::string::npos)
        << vki_device_last_error(d);
    EXPECT_EQ(held(d), before);
    vki_device_refresh_budget(d); // usage is what the device holds; the budget stays the limit
    for (uint32_t h = 0; h < p->heap_count; h++)
        if (p->heaps[h].device_local) {
            EXPECT_EQ(p->heaps[h].usage, before);
            EXPECT_EQ(p->heaps[h].budget, limit);
        }
    vki_arena_destroy(a);
    vki_device_destroy(d);
    log.errors.clear();

    // The environment's limit when the desc gives none; a value that is not a size is refused.
    const char *old = getenv("VKI_MEMORY_LIMIT");
    std::string saved = old ? old : "";
    vki_device_desc dd = {};
    dd.cache_dir = "";
    dd.staging_size = 1 << 20;
    setenv("VKI_MEMORY_LIMIT", "6M", 1);
    ASSERT_EQ(vki_device_create(inst, &dd, &d), VKI_OK) << errors();
    for (uint32_t h = 0; h < vki_device_profile(d)->heap_count; h++)
        if (vki_device_profile(d)->heaps[h].device_local) {
            EXPECT_EQ(vki_device_profile(d)->heaps[h].size, 6ull << 20);
        }
    vki_device_destroy(d);
    for (const char *bad : {"4X", "G", "0", "-1", "99999999999999999999G"}) {
        setenv("VKI_MEMORY_LIMIT", bad, 1);
        d = nullptr;
        EXPECT_EQ(vki_device_create(inst, &dd, &d), VKI_ERROR_INVALID_ARGUMENT) << bad;
        EXPECT_EQ(d, nullptr);
        EXPECT_NE(std::string(vki_instance_last_error(inst)).find("VKI_MEMORY_LIMIT"), std::string::npos)
            << bad << ": " << vki_instance_last_error(inst);
    }
    if (old) setenv("VKI_MEMORY_LIMIT", saved.c_str(), 1);
    else unsetenv("VKI_MEMORY_LIMIT");
    log.errors.clear();
}

} // namespace
