// Streams: record once and replay, barriers between dependent dispatches, copies, timeline
// waits, timestamps, misuse, and a lost device.
#include "test_support.h"
#include "vkinfer_runtime_testing.h" // vki_device_inject_fault

#include <cstring>

class StreamTest : public VulkanTest {
  protected:
    vki_arena *arena = nullptr;
    vki_kernel *add = nullptr;
    vki_stream *s = nullptr;

    void open(bool timestamps = false)
    {
        open_device();
        ASSERT_EQ(vki_arena_create(dev, nullptr, &arena), VKI_OK);
        ASSERT_EQ(make_add_kernel(dev, &add), VKI_OK);
        vki_stream_desc sd = {};
        sd.timestamps = timestamps;
        sd.name = "test stream";
        ASSERT_EQ(vki_stream_create(dev, &sd, &s), VKI_OK) << vki_device_last_error(dev);
    }
    void TearDown() override
    {
        vki_stream_destroy(s);
        vki_kernel_destroy(add);
        vki_arena_destroy(arena);
        VulkanTest::TearDown();
    }
    vki_range filled(uint32_t n, uint32_t start)
    {
        vki_range r = {};
        EXPECT_EQ(vki_arena_alloc(arena, n * 4, 0, &r), VKI_OK);
        std::vector<uint32_t> v(n);
        for (uint32_t i = 0; i < n; i++) v[i] = start + i;
        EXPECT_EQ(vki_device_upload(dev, r, 0, v.data(), n * 4), VKI_OK);
        return r;
    }
    std::vector<uint32_t> read(vki_range r)
    {
        std::vector<uint32_t> v(r.size / 4);
        EXPECT_EQ(vki_device_download(dev, r, 0, v.data(), r.size), VKI_OK);
        return v;
    }
};

TEST_F(StreamTest, RecordedOnceReplayedManyTimes)
{
    open();
    vki_range r = filled(777, 10);
    vki_pc_add_u32 pc[2];
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    ASSERT_EQ(record_add(s, add, r, 2, &pc[0]), VKI_OK);
    ASSERT_EQ(vki_stream_barrier(s), VKI_OK);
    ASSERT_EQ(record_add(s, add, r, 3, &pc[1]), VKI_OK);
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    pc[0].value = 1000; // the recording holds its own copy of the constants
    uint64_t last = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t t = 0;
        ASSERT_EQ(vki_stream_submit(s, &t), VKI_OK);
        EXPECT_GT(t, last) << "tickets grow";
        last = t;
    }
    ASSERT_EQ(vki_device_wait(dev, last, UINT64_MAX), VKI_OK);
    std::vector<uint32_t> v = read(r);
    for (uint32_t i = 0; i < 777; i++) ASSERT_EQ(v[i], 10 + i + 4 * 5) << i;
}

TEST_F(StreamTest, CopyAfterBarrierSeesTheDispatch)
{
    open();
    vki_range a = filled(300, 0), b = filled(300, 0);
    vki_pc_add_u32 pc;
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    ASSERT_EQ(record_add(s, add, a, 40, &pc), VKI_OK);
    ASSERT_EQ(vki_stream_barrier(s), VKI_OK);
    ASSERT_EQ(vki_stream_copy(s, vki_range_sub(a, 0, 400), vki_range_sub(b, 400, 400)), VKI_OK);
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    uint64_t t;
    ASSERT_EQ(vki_stream_submit(s, &t), VKI_OK);
    ASSERT_EQ(vki_device_wait(dev, t, UINT64_MAX), VKI_OK);
    std::vector<uint32_t> v = read(b);
    for (uint32_t i = 0; i < 100; i++) EXPECT_EQ(v[i], i);
    for (uint32_t i = 0; i < 100; i++) EXPECT_EQ(v[100 + i], i + 40);
    for (uint32_t i = 200; i < 300; i++) EXPECT_EQ(v[i], i);
}

TEST_F(StreamTest, TimelineWaits)
{
    open();
    vki_range r = filled(64, 0);
    vki_pc_add_u32 pc;
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    ASSERT_EQ(record_add(s, add, r, 1, &pc), VKI_OK);
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    uint64_t t1, t2;
    ASSERT_EQ(vki_stream_submit(s, &t1), VKI_OK);
    ASSERT_EQ(vki_stream_submit(s, &t2), VKI_OK);
    EXPECT_EQ(t2, t1 + 1);
    ASSERT_EQ(vki_device_wait(dev, t2, UINT64_MAX), VKI_OK);
    EXPECT_GE(vki_device_completed(dev), t2);
    EXPECT_EQ(vki_device_wait(dev, t1, 0), VKI_OK) << "a reached value needs no waiting";
    EXPECT_EQ(vki_device_wait(dev, t2 + 5, 0), VKI_ERROR_INVALID_ARGUMENT)
        << "never submitted: would wait forever";
    EXPECT_NE(std::strstr(vki_device_last_error(dev), "never complete"), nullptr);
    EXPECT_EQ(vki_device_wait_idle(dev), VKI_OK);
    log.errors.clear();
}

TEST_F(StreamTest, TimestampsTimeEveryDispatch)
{
    open(true);
    vki_range r = filled(4096, 0);
    vki_pc_add_u32 pc[3];
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(record_add(s, add, r, 1, &pc[i]), VKI_OK);
        ASSERT_EQ(vki_stream_barrier(s), VKI_OK);
    }
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    double us[8];
    uint32_t n = 0;
    EXPECT_EQ(vki_stream_timings(s, us, 8, &n), VKI_ERROR_INVALID_ARGUMENT) << "nothing ran yet";
    uint64_t t;
    ASSERT_EQ(vki_stream_submit(s, &t), VKI_OK);
    ASSERT_EQ(vki_device_wait(dev, t, UINT64_MAX), VKI_OK);
    ASSERT_EQ(vki_stream_timings(s, us, 8, &n), VKI_OK);
    ASSERT_EQ(n, 3u);
    double total = 0;
    for (uint32_t i = 0; i < n; i++) {
        EXPECT_GE(us[i], 0.0);
        EXPECT_LT(us[i], 10e6) << "under 10 s";
        total += us[i];
    }
    EXPECT_GT(total, 0.0);
    log.errors.clear();
}

TEST_F(StreamTest, MisuseIsRefusedBeforeTheDriverSeesIt)
{
    open();
    vki_range r = filled(64, 0);
    uint64_t t;
    EXPECT_EQ(vki_stream_submit(s, &t), VKI_ERROR_INVALID_ARGUMENT) << "nothing recorded";
    vki_pc_add_u32 pc;
    EXPECT_EQ(record_add(s, add, r, 1, &pc), VKI_ERROR_INVALID_ARGUMENT) << "not recording";
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    vki_dispatch d = {};
    d.kernel = add;
    d.bindings = &r;
    d.binding_count = 1;
    d.push = &pc;
    d.push_size = 4;
    EXPECT_EQ(vki_stream_dispatch(s, &d), VKI_ERROR_INVALID_ARGUMENT) << "push size";
    d.push_size = sizeof pc;
    d.groups[0] = UINT32_MAX;
    EXPECT_EQ(vki_stream_dispatch(s, &d), VKI_ERROR_INVALID_ARGUMENT) << "group count";
    d.groups[0] = 1;
    vki_range past = vki_range_sub(r, 0, 1ull << 40);
    d.bindings = &past;
    EXPECT_EQ(vki_stream_dispatch(s, &d), VKI_ERROR_INVALID_ARGUMENT) << "past its buffer";
    EXPECT_EQ(vki_stream_submit(s, &t), VKI_ERROR_INVALID_ARGUMENT) << "still recording";
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    log.errors.clear();
}

TEST_F(StreamTest, LostDeviceIsReportedAndEverythingStillTearsDown)
{
    open();
    vki_range r = filled(64, 0);
    vki_pc_add_u32 pc;
    ASSERT_EQ(vki_stream_begin(s), VKI_OK);
    ASSERT_EQ(record_add(s, add, r, 1, &pc), VKI_OK);
    ASSERT_EQ(vki_stream_end(s), VKI_OK);
    vki_device_inject_fault(dev, VKI_FAULT_DEVICE_LOST);
    uint64_t t = 0;
    EXPECT_EQ(vki_stream_submit(s, &t), VKI_ERROR_DEVICE_LOST);
    EXPECT_NE(std::strstr(vki_device_last_error(dev), "VK_ERROR_DEVICE_LOST"), nullptr);
    // Every later call fails fast with the same status instead of hanging or crashing.
    EXPECT_EQ(vki_stream_submit(s, &t), VKI_ERROR_DEVICE_LOST);
    EXPECT_EQ(vki_device_wait_idle(dev), VKI_ERROR_DEVICE_LOST);
    std::vector<uint32_t> v(16);
    EXPECT_EQ(vki_device_download(dev, r, 0, v.data(), 64), VKI_ERROR_DEVICE_LOST);
    vki_range more;
    EXPECT_EQ(vki_arena_alloc(arena, 1 << 20, 0, &more), VKI_OK) << "still in the current block";
    EXPECT_EQ(vki_arena_alloc(arena, 512 << 20, 0, &more), VKI_ERROR_DEVICE_LOST);
    EXPECT_NE(std::strstr(vki_device_last_error(dev), "create it again"), nullptr);
    log.errors.clear();
}
