// The platform layer (runtime/platform_internal.h) on POSIX: read-only mappings that refuse
// what is not a regular file without blocking, the private-folder and own-file checks, the
// exclusive temporary file renamed over its target, and the user cache folder. The GGUF reader
// and pipeline-cache tests cover the same code through its users; these pin the contract.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

extern "C" {
#include "platform_internal.h"
}

namespace {

class PlatformTest : public ::testing::Test {
  protected:
    std::string dir;

    void SetUp() override
    {
        char tmpl[] = "/tmp/vki-platform-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override
    {
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(std::system(cmd.c_str()), 0);
    }
    void write(const std::string &path, const std::string &bytes)
    {
        FILE *f = std::fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
        ASSERT_EQ(std::fclose(f), 0);
    }
    std::string read(const std::string &path)
    {
        std::string out;
        FILE *f = std::fopen(path.c_str(), "rb");
        if (!f) return "<missing>";
        char buf[256];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
        std::fclose(f);
        return out;
    }
};

TEST_F(PlatformTest, MapsRegularFilesEmptyOnesIncluded)
{
    std::string path = dir + "/file";
    write(path, "hello");
    vki__mapping m;
    char why[256] = "";
    ASSERT_EQ(vki__map_file(path.c_str(), &m, why, sizeof why), VKI_OK) << why;
    ASSERT_EQ(m.size, 5u);
    EXPECT_EQ(std::memcmp(m.data, "hello", 5), 0);
    vki__unmap_file(&m);
    EXPECT_EQ(m.data, nullptr);
    vki__unmap_file(&m); // a zeroed mapping is a no-op

    std::string empty = dir + "/empty";
    write(empty, "");
    ASSERT_EQ(vki__map_file(empty.c_str(), &m, why, sizeof why), VKI_OK) << why;
    EXPECT_EQ(m.data, nullptr);
    EXPECT_EQ(m.size, 0u);
    vki__unmap_file(&m);
}

TEST_F(PlatformTest, MappingRefusesMissingFilesDirectoriesAndFifos)
{
    vki__mapping m;
    char why[256] = "";
    EXPECT_EQ(vki__map_file((dir + "/missing").c_str(), &m, why, sizeof why), VKI_ERROR_NOT_FOUND);
    EXPECT_NE(std::string(why).find("cannot open: "), std::string::npos) << why;
    EXPECT_EQ(vki__map_file(dir.c_str(), &m, why, sizeof why), VKI_ERROR_IO);
    EXPECT_EQ(std::string(why), "cannot open: is a directory, not a regular file");
    std::string fifo = dir + "/fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    // Without O_NONBLOCK this open would wait for a writer for ever (the ctest timeout).
    EXPECT_EQ(vki__map_file(fifo.c_str(), &m, why, sizeof why), VKI_ERROR_IO);
    EXPECT_EQ(std::string(why), "cannot open: is a FIFO, not a regular file");
    EXPECT_EQ(m.data, nullptr);
}

TEST_F(PlatformTest, FolderCheckWantsAPrivateDirectoryOfOurs)
{
    char why[256] = "";
    EXPECT_EQ(vki__folder_check((dir + "/missing").c_str(), why, sizeof why), VKI__PATH_ABSENT);
    ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
    EXPECT_EQ(vki__folder_check(dir.c_str(), why, sizeof why), VKI__PATH_OURS) << why;
    ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
    EXPECT_EQ(vki__folder_check(dir.c_str(), why, sizeof why), VKI__PATH_REFUSED);
    EXPECT_NE(std::string(why).find("writable by group or others"), std::string::npos) << why;
    ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
    std::string file = dir + "/file";
    write(file, "x");
    EXPECT_EQ(vki__folder_check(file.c_str(), why, sizeof why), VKI__PATH_REFUSED);
    EXPECT_NE(std::string(why).find("a regular file, not a directory"), std::string::npos) << why;
}

TEST_F(PlatformTest, FileCheckAndOpenRefuseLinksAndFifos)
{
    char why[256] = "";
    std::string file = dir + "/file", link = dir + "/link", fifo = dir + "/fifo";
    EXPECT_EQ(vki__file_check(file.c_str(), why, sizeof why), VKI__PATH_ABSENT);
    write(file, "abc");
    EXPECT_EQ(vki__file_check(file.c_str(), why, sizeof why), VKI__PATH_OURS) << why;
    ASSERT_EQ(symlink(file.c_str(), link.c_str()), 0);
    EXPECT_EQ(vki__file_check(link.c_str(), why, sizeof why), VKI__PATH_REFUSED);
    EXPECT_NE(std::string(why).find("a symbolic link"), std::string::npos) << why;

    FILE *f = nullptr;
    uint64_t size = 0;
    ASSERT_EQ(vki__file_open_read(file.c_str(), &f, &size, why, sizeof why), VKI__PATH_OURS) << why;
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(size, 3u);
    std::fclose(f);
    EXPECT_EQ(vki__file_open_read(link.c_str(), &f, &size, why, sizeof why), VKI__PATH_REFUSED);
    EXPECT_EQ(f, nullptr);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(vki__file_open_read(fifo.c_str(), &f, &size, why, sizeof why), VKI__PATH_REFUSED);
    EXPECT_NE(std::string(why).find("a FIFO"), std::string::npos) << why;
    EXPECT_EQ(vki__file_open_read((dir + "/missing").c_str(), &f, &size, why, sizeof why),
              VKI__PATH_ABSENT);
}

TEST_F(PlatformTest, TemporaryFileIsNewAndReplacesItsTarget)
{
    char why[256] = "";
    std::string target = dir + "/a/b/target";
    ASSERT_TRUE(vki__make_parent_dirs(target.c_str(), why, sizeof why)) << why;
    struct stat st;
    ASSERT_EQ(stat((dir + "/a/b").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u) << "cache folders are private";
    write(target, "old");

    char tmp[1024];
    FILE *f = vki__file_create_temp(target.c_str(), tmp, sizeof tmp, why, sizeof why);
    ASSERT_NE(f, nullptr) << why;
    EXPECT_EQ(std::string(tmp).rfind(target + ".", 0), 0u) << tmp;
    ASSERT_EQ(stat(tmp, &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::fputs("new", f);
    ASSERT_EQ(std::fclose(f), 0);
    ASSERT_TRUE(vki__file_replace(tmp, target.c_str(), why, sizeof why)) << why;
    EXPECT_EQ(read(target), "new");
    EXPECT_EQ(read(tmp), "<missing>");
    EXPECT_FALSE(vki__file_replace(tmp, target.c_str(), why, sizeof why));
    EXPECT_STRNE(why, "");
}

TEST_F(PlatformTest, UserCacheFolderFollowsXdgThenHome)
{
    std::string old_xdg = getenv("XDG_CACHE_HOME") ? getenv("XDG_CACHE_HOME") : "";
    std::string old_home = getenv("HOME") ? getenv("HOME") : "";
    char out[512];
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    EXPECT_TRUE(vki__user_cache_dir(out, sizeof out));
    EXPECT_STREQ(out, "/x/cache/vkinfer");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/someone", 1);
    EXPECT_TRUE(vki__user_cache_dir(out, sizeof out));
    EXPECT_STREQ(out, "/home/someone/.cache/vkinfer");
    unsetenv("HOME");
    EXPECT_FALSE(vki__user_cache_dir(out, sizeof out));
    EXPECT_STREQ(out, "");
    if (!old_xdg.empty()) setenv("XDG_CACHE_HOME", old_xdg.c_str(), 1);
    if (!old_home.empty()) setenv("HOME", old_home.c_str(), 1);
}

} // namespace
