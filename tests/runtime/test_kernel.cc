// Pipelines from embedded SPIR-V: specialisation, reflection checks, and the pipeline cache on
// disk (reuse, corrupt and foreign files, and what other users may plant in its folder).
#include "test_support.h"
#include "fifo_watchdog.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

class KernelTest : public VulkanTest {};

// add_u32 as the C side binds it, with one specialisation constant.
static vki_kernel_desc AddKernelDesc(const vki_spec *spec)
{
    vki_kernel_desc kd = {};
    kd.name = "add_u32";
    kd.binding_count = 1;
    kd.push_size = sizeof(vki_pc_add_u32);
    kd.specs = spec;
    kd.spec_count = 1;
    return kd;
}

TEST_F(KernelTest, EmbeddedModulesAreListed)
{
    ASSERT_GE(vki_shader_count(), 2u);
    const vki_shader_module *m = vki_shader_find("add_u32");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->words[0], 0x07230203u) << "SPIR-V magic";
    EXPECT_EQ(vki_shader_find("no_such_kernel"), nullptr);
    EXPECT_EQ(vki_shader_at(vki_shader_count()), nullptr);
}

TEST_F(KernelTest, SpecialisationSetsTheLocalSize)
{
    open_device();
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, 32};
    vki_kernel_desc kd = AddKernelDesc(&spec);
    vki_kernel *k = nullptr;
    ASSERT_EQ(vki_kernel_create(dev, &kd, &k), VKI_OK) << vki_device_last_error(dev);
    uint32_t local[3];
    vki_kernel_local_size(k, local);
    EXPECT_EQ(local[0], 32u);
    EXPECT_EQ(local[1], 1u);
    EXPECT_STREQ(vki_kernel_name(k), "add_u32");
    vki_kernel_destroy(k);

    kd.spec_count = 0; // the shader's default
    ASSERT_EQ(vki_kernel_create(dev, &kd, &k), VKI_OK);
    vki_kernel_local_size(k, local);
    EXPECT_EQ(local[0], (uint32_t)VKI_ADD_U32_LOCAL_SIZE);
    vki_kernel_destroy(k);
}

TEST_F(KernelTest, ReflectionMismatchNamesBothSides)
{
    open_device();
    vki_kernel *k = nullptr;
    EXPECT_EQ(make_add_kernel(dev, &k, 2), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(k, nullptr);
    std::string msg = vki_device_last_error(dev);
    EXPECT_NE(msg.find("add_u32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("binds 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("declares 1"), std::string::npos) << msg;

    EXPECT_EQ(make_add_kernel(dev, &k, 1, 12), VKI_ERROR_INVALID_ARGUMENT);
    msg = vki_device_last_error(dev);
    EXPECT_NE(msg.find("12"), std::string::npos) << msg;
    EXPECT_NE(msg.find("8 bytes"), std::string::npos) << msg;

    vki_kernel_desc kd = {};
    kd.name = "does_not_exist";
    EXPECT_EQ(vki_kernel_create(dev, &kd, &k), VKI_ERROR_NOT_FOUND);

    // A local size beyond the device limit is caught before the driver sees it.
    vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, vki_device_profile(dev)->max_workgroup_invocations * 2};
    kd = AddKernelDesc(&spec);
    EXPECT_EQ(vki_kernel_create(dev, &kd, &k), VKI_ERROR_UNSUPPORTED);

    // A spec id the module does not declare.
    vki_spec bad = {7, 1};
    kd.specs = &bad;
    EXPECT_EQ(vki_kernel_create(dev, &kd, &k), VKI_ERROR_INVALID_ARGUMENT);

    // Garbage instead of SPIR-V.
    uint32_t junk[16] = {0x07230203u, 0x10000, 0, 5, 0, 0xffffffffu};
    kd = {};
    kd.name = "junk";
    kd.spirv = junk;
    kd.spirv_words = 16;
    EXPECT_EQ(vki_kernel_create(dev, &kd, &k), VKI_ERROR_BAD_FILE);
    EXPECT_EQ(k, nullptr);
    log.errors.clear();
}

// Equal descriptions of an embedded module share one pipeline, held or kept after release,
// and the device keeps at most VKI_KERNELS_KEPT released ones, dropping the oldest.
TEST_F(KernelTest, EqualDescriptionsShareOnePipeline)
{
    open_device();
    auto make = [&](uint32_t local, vki_kernel **k) {
        vki_spec spec = {VKI_SPEC_LOCAL_SIZE_X, local};
        vki_kernel_desc kd = AddKernelDesc(&spec);
        return vki_kernel_create(dev, &kd, k);
    };
    auto stats = [&] {
        vki_device_stats st = {};
        vki_device_stats_get(dev, &st);
        return st;
    };
    vki_device_stats before = stats();
    vki_kernel *a = nullptr, *b = nullptr, *c = nullptr;
    ASSERT_EQ(make(32, &a), VKI_OK) << vki_device_last_error(dev);
    ASSERT_EQ(make(32, &b), VKI_OK);
    ASSERT_EQ(make(64, &c), VKI_OK);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_EQ(stats().pipelines_created - before.pipelines_created, 2u);
    EXPECT_EQ(stats().pipelines_shared - before.pipelines_shared, 1u);
    uint32_t local[3];
    vki_kernel_destroy(a); // b still holds it
    vki_kernel_local_size(b, local);
    EXPECT_EQ(local[0], 32u);
    // A kernel without holders is kept: the next equal create takes it, no new pipeline.
    vki_kernel_destroy(b);
    vki_kernel_destroy(c);
    ASSERT_EQ(make(32, &a), VKI_OK);
    EXPECT_EQ(a, b);
    EXPECT_EQ(stats().pipelines_created - before.pipelines_created, 2u);
    vki_kernel_destroy(a);
    // Released kernels past VKI_KERNELS_KEPT: the oldest goes (64: 32 was released again
    // after it), so the next create of it makes a new pipeline; the newest are kept.
    for (uint32_t i = 0; i < VKI_KERNELS_KEPT - 1; i++) {
        vki_kernel *k = nullptr;
        ASSERT_EQ(make(100 + i, &k), VKI_OK);
        vki_kernel_destroy(k);
    }
    uint32_t made = stats().pipelines_created;
    ASSERT_EQ(make(100 + VKI_KERNELS_KEPT - 2, &a), VKI_OK);
    EXPECT_EQ(stats().pipelines_created, made) << "the newest released kernel is kept";
    vki_kernel_destroy(a);
    ASSERT_EQ(make(32, &a), VKI_OK);
    EXPECT_EQ(stats().pipelines_created, made) << "32 was released after 64";
    vki_kernel_destroy(a);
    ASSERT_EQ(make(64, &c), VKI_OK);
    EXPECT_EQ(stats().pipelines_created, made + 1) << "64, the oldest released, was dropped";
    vki_kernel_destroy(c);
}

class PipelineCacheTest : public VulkanTest {
  protected:
    std::string dir;
    void SetUp() override
    {
        VulkanTest::SetUp();
        char tmpl[] = "/tmp/vki_cache_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override
    {
        VulkanTest::TearDown();
        std::string cmd = "rm -rf '" + dir + "'";
        EXPECT_EQ(std::system(cmd.c_str()), 0);
    }
    // Opens a device on the cache folder (default: dir), builds one kernel, closes it; returns
    // its stats.
    vki_device_stats cycle(const std::string &folder = "")
    {
        open_device("", folder.empty() ? dir.c_str() : folder.c_str());
        vki_device_stats st = {};
        vki_kernel *k = nullptr;
        EXPECT_EQ(make_add_kernel(dev, &k), VKI_OK);
        vki_kernel_destroy(k);
        vki_device_stats_get(dev, &st);
        vki_device_destroy(dev);
        dev = nullptr;
        return st;
    }
    std::string cache_file()
    {
        std::string found;
        std::string cmd = "ls '" + dir + "'/pipelines-*.bin 2>/dev/null";
        FILE *p = popen(cmd.c_str(), "r");
        char line[1024];
        if (p && fgets(line, sizeof line, p)) found = std::string(line, std::strcspn(line, "\n"));
        if (p) pclose(p);
        return found;
    }
    std::string read_all(const std::string &path)
    {
        std::ifstream f(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(f), {});
    }
    void write_all(const std::string &path, const std::string &bytes)
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << bytes;
    }
};

TEST_F(PipelineCacheTest, SecondRunLoadsTheCache)
{
    vki_device_stats first = cycle();
    EXPECT_EQ(first.cache_bytes_loaded, 0u);
    std::string path = cache_file();
    ASSERT_FALSE(path.empty()) << "the cache is written at device destroy";
    vki_device_stats second = cycle();
    EXPECT_GT(second.cache_bytes_loaded, 0u);
    EXPECT_EQ(second.cache_rejected, 0u);
}

TEST_F(PipelineCacheTest, CorruptTruncatedAndForeignFilesAreIgnored)
{
    cycle();
    std::string path = cache_file();
    ASSERT_FALSE(path.empty());
    const std::string good = read_all(path);
    ASSERT_GE(good.size(), 64u) << "our 32-byte header + the 32-byte Vulkan header at least";

    std::string corrupt = good;
    corrupt[corrupt.size() / 2] ^= 0x5a;
    std::string foreign = good;
    foreign[32 + 16] ^= 0x01; // a byte of the Vulkan header's cache UUID (checksum now wrong too)
    const std::string cases[] = {corrupt, good.substr(0, good.size() - 7), foreign,
                                 std::string("not a cache at all"), std::string()};
    for (const std::string &bytes : cases) {
        write_all(path, bytes);
        vki_device_stats st = cycle();
        EXPECT_EQ(st.cache_bytes_loaded, 0u);
        EXPECT_EQ(st.cache_rejected, bytes.empty() ? 0u : 1u);
        // And the device rewrote a good cache that the next run accepts.
        vki_device_stats again = cycle();
        EXPECT_GT(again.cache_bytes_loaded, 0u);
    }
}

TEST_F(PipelineCacheTest, EmptyDirectoryMeansNoFile)
{
    open_device("", "");
    vki_kernel *k = nullptr;
    ASSERT_EQ(make_add_kernel(dev, &k), VKI_OK);
    vki_kernel_destroy(k);
    EXPECT_EQ(vki_device_save_pipeline_cache(dev), VKI_OK);
    EXPECT_TRUE(cache_file().empty());
}

// ---- What other users may plant in the cache folder ----

static bool is_symlink(const std::string &path)
{
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

static int entries(const std::string &folder)
{
    int n = 0;
    if (DIR *d = opendir(folder.c_str())) {
        while (const dirent *e = readdir(d))
            n += std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0;
        closedir(d);
    }
    return n;
}

TEST_F(PipelineCacheTest, SymlinksInTheFolderAreNeitherFollowedNorReplaced)
{
    cycle();
    const std::string path = cache_file();
    ASSERT_FALSE(path.empty());
    ASSERT_EQ(std::remove(path.c_str()), 0);
    const std::string victim = dir + "/victim";
    write_all(victim, "a file of the user's");
    ASSERT_EQ(symlink(victim.c_str(), path.c_str()), 0);
    // The temporary name the save used to open with fopen, predictable from the pid.
    const std::string old_tmp = path + "." + std::to_string(getpid()) + ".tmp";
    ASSERT_EQ(symlink(victim.c_str(), old_tmp.c_str()), 0);

    vki_device_stats st = cycle();
    EXPECT_EQ(read_all(victim), "a file of the user's") << "the save wrote through a symlink";
    EXPECT_EQ(st.cache_rejected, 1u) << "the symlink is reported as an ignored cache";
    EXPECT_TRUE(is_symlink(path)) << "a symlink at the cache path is not ours to replace";

    // A symlink to a folder: nothing is written inside it, and the link stays.
    const std::string elsewhere = dir + "/elsewhere";
    ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
    ASSERT_EQ(std::remove(path.c_str()), 0);
    ASSERT_EQ(symlink(elsewhere.c_str(), path.c_str()), 0);
    st = cycle();
    EXPECT_EQ(st.cache_rejected, 1u);
    EXPECT_EQ(entries(elsewhere), 0);
    EXPECT_TRUE(is_symlink(path));
}

TEST_F(PipelineCacheTest, FolderWritableByOthersIsNotUsed)
{
    for (mode_t mode : {0777, 0770, 0702}) {
        SCOPED_TRACE("mode " + std::to_string(mode >> 6) + std::to_string((mode >> 3) & 7) +
                     std::to_string(mode & 7));
        ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
        cycle();
        const std::string path = cache_file();
        ASSERT_FALSE(path.empty());
        ASSERT_EQ(chmod(dir.c_str(), mode), 0);
        vki_device_stats st = cycle();
        EXPECT_EQ(st.cache_bytes_loaded, 0u) << "loaded a cache that others could have written";
        ASSERT_EQ(std::remove(path.c_str()), 0);
        cycle(); // would save one
        EXPECT_TRUE(cache_file().empty()) << "saved into a folder that others can write";
    }
    // The same folder made private again is used: the refusals above were about the mode.
    ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
    cycle();
    EXPECT_GT(cycle().cache_bytes_loaded, 0u);
}

TEST_F(PipelineCacheTest, FolderAndFileOfAnotherUserAreNotUsed)
{
    if (geteuid() != 0) GTEST_SKIP() << "needs root, to give files to another user (uid 65534)";
    cycle();
    const std::string path = cache_file();
    ASSERT_FALSE(path.empty());

    // Another user's folder.
    ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
    EXPECT_EQ(cycle().cache_bytes_loaded, 0u) << "loaded from another user's folder";
    ASSERT_EQ(std::remove(path.c_str()), 0);
    cycle();
    EXPECT_TRUE(cache_file().empty()) << "saved into another user's folder";
    ASSERT_EQ(chown(dir.c_str(), 0, 0), 0);

    // Another user's file in our folder: not read, not replaced.
    cycle();
    ASSERT_EQ(cache_file(), path);
    ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
    vki_device_stats st = cycle();
    EXPECT_EQ(st.cache_bytes_loaded, 0u);
    EXPECT_EQ(st.cache_rejected, 1u);
    struct stat fs;
    ASSERT_EQ(stat(path.c_str(), &fs), 0);
    EXPECT_EQ(fs.st_uid, 65534u) << "another user's file was replaced";

    // A symlink that another user planted in place of the folder is not followed; the same
    // link of ours is (a symlinked cache folder is a normal set-up).
    const std::string real = dir + "/real", link = dir + "/link";
    ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    ASSERT_EQ(lchown(link.c_str(), 65534, 65534), 0);
    cycle(link);
    EXPECT_EQ(entries(real), 0) << "wrote through another user's symlink";
    ASSERT_EQ(lchown(link.c_str(), 0, 0), 0);
    cycle(link);
    EXPECT_EQ(entries(real), 1);
}

TEST_F(PipelineCacheTest, FifoAtTheCachePathDoesNotBlock)
{
    cycle();
    const std::string path = cache_file();
    ASSERT_FALSE(path.empty());
    ASSERT_EQ(std::remove(path.c_str()), 0);
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    vki_device_stats st = {};
    EXPECT_TRUE(finishes_without_blocking([&] { st = cycle(); }, path, 60))
        << "device creation waited for a writer on a FIFO";
    EXPECT_EQ(st.cache_rejected, 1u);
    struct stat fs;
    ASSERT_EQ(lstat(path.c_str(), &fs), 0);
    EXPECT_TRUE(S_ISFIFO(fs.st_mode)) << "the FIFO was replaced";
}
