// `vkinfer upscale`, run as a user would, with a tiny random SRVGG x2 net from tests/data/esrgan
// (tools/gen_esrgan_golden.py): output size, PNG input formats (gray, RGBA and 16-bit read as
// their 8-bit RGB twins), refusing to overwrite (also through a planted symbolic link),
// --overwrite, and usage and file errors with their exit codes. Validation is on: a validation
// message would make the program exit 3.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Result {
    int code = -1;
    std::string err;
};

std::string Slurp(const std::string &path)
{
    std::string s;
    if (FILE *f = fopen(path.c_str(), "rb")) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
        fclose(f);
    }
    return s;
}

Result RunVkinfer(const std::string &args)
{
    Result r;
    char err_path[] = "/tmp/vki_upscale_stderr_XXXXXX";
    int fd = mkstemp(err_path);
    if (fd < 0) return r;
    close(fd);
    std::string validation = getenv("VKI_VALIDATION") ? "" : "VKI_VALIDATION=1 ";
    std::string cmd = validation + "'" VKINFER_EXE "' " + args + " >/dev/null 2>" + err_path;
    int status = system(cmd.c_str());
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = Slurp(err_path);
    unlink(err_path);
    return r;
}

// Width and height from a PNG's IHDR (big-endian words at bytes 16 and 20); 0 if not a PNG.
void PngSize(const std::string &png, uint32_t *w, uint32_t *h)
{
    *w = *h = 0;
    if (png.size() < 24 || png.compare(1, 3, "PNG") != 0 || png.compare(12, 4, "IHDR") != 0) return;
    auto be = [&](size_t at) {
        return uint32_t(uint8_t(png[at])) << 24 | uint32_t(uint8_t(png[at + 1])) << 16 |
               uint32_t(uint8_t(png[at + 2])) << 8 | uint32_t(uint8_t(png[at + 3]));
    };
    *w = be(16);
    *h = be(20);
}

class UpscaleCli : public ::testing::Test {
  protected:
    std::string dir, data = VKI_TEST_DATA "/esrgan/", model;
    void SetUp() override
    {
        char d[] = "/tmp/vki_upscale_XXXXXX";
        ASSERT_NE(mkdtemp(d), nullptr);
        dir = d;
        model = " -m '" + data + "tiny-srvgg-x2.param'";
    }
    void TearDown() override { (void)system(("rm -rf '" + dir + "'").c_str()); }
    std::string out(const std::string &name) { return dir + "/" + name; }
    Result upscale(const std::string &in, const std::string &to, const std::string &more = "")
    {
        return RunVkinfer("upscale -i '" + data + in + "' -o '" + to + "'" + model + more);
    }
};

TEST_F(UpscaleCli, WritesTheUpscaledPng)
{
    Result r = upscale("a_32x40.png", out("a.png"));
    ASSERT_EQ(r.code, 0) << r.err;
    uint32_t w, h;
    PngSize(Slurp(out("a.png")), &w, &h);
    EXPECT_EQ(w, 64u);
    EXPECT_EQ(h, 80u);
    // Tiles of 16 give a valid image of the same size too.
    r = upscale("a_32x40.png", out("t.png"), " --tile 16");
    ASSERT_EQ(r.code, 0) << r.err;
    PngSize(Slurp(out("t.png")), &w, &h);
    EXPECT_EQ(w, 64u);
}

TEST_F(UpscaleCli, OtherPngFormatsReadAsRgb)
{
    for (const char *name : {"gray_5x4", "rgba_5x4", "gray16_5x4"}) {
        Result a = upscale(std::string(name) + ".png", out(std::string(name) + ".png"));
        Result b = upscale(std::string(name) + "_rgb.png", out(std::string(name) + "_rgb.png"));
        ASSERT_EQ(a.code, 0) << a.err;
        ASSERT_EQ(b.code, 0) << b.err;
        std::string pa = Slurp(out(std::string(name) + ".png")), pb = Slurp(out(std::string(name) + "_rgb.png"));
        EXPECT_FALSE(pa.empty());
        EXPECT_EQ(pa, pb) << name << " is not read as its RGB twin";
    }
}

TEST_F(UpscaleCli, RefusesToOverwriteUnlessAsked)
{
    std::string o = out("a.png");
    ASSERT_EQ(upscale("b_24x24.png", o).code, 0);
    std::string before = Slurp(o);
    Result r = upscale("a_32x40.png", o);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
    EXPECT_EQ(Slurp(o), before);
    r = upscale("a_32x40.png", o, " --overwrite");
    ASSERT_EQ(r.code, 0) << r.err;
    uint32_t w, h;
    PngSize(Slurp(o), &w, &h);
    EXPECT_EQ(w, 64u);
    // A symbolic link planted at the output name is refused, and nothing is written through it.
    std::string link = out("link.png"), target = out("target.png");
    ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
    r = upscale("a_32x40.png", link);
    EXPECT_EQ(r.code, 1) << r.err;
    struct stat sb;
    EXPECT_NE(stat(target.c_str(), &sb), 0) << "written through the link";
}

TEST_F(UpscaleCli, BadArgumentsAndFilesAreNamed)
{
    EXPECT_EQ(RunVkinfer("upscale -i x.png").code, 2);
    EXPECT_EQ(RunVkinfer("upscale -i x.png -o y.png --bogus").code, 2);
    EXPECT_EQ(RunVkinfer("upscale -i x.png -o y.png --tile 5").code, 2);
    Result r = RunVkinfer("upscale -i '" + out("missing.png") + "' -o '" + out("o.png") + "'" + model);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("missing.png"), std::string::npos) << r.err;
    r = upscale("tiny-srvgg-x2.param", out("o.png"));
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("not a PNG"), std::string::npos) << r.err;
    r = RunVkinfer("upscale -i '" + data + "a_32x40.png' -o '" + out("o.png") + "' -m '" + out("none.param") + "'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("none.param"), std::string::npos) << r.err;
    // A .param that is not an ESRGAN net: the reader names the layer.
    r = RunVkinfer("upscale -i '" + data + "a_32x40.png' -o '" + out("o.png") + "' -m '" + data + "a_32x40.png'");
    EXPECT_EQ(r.code, 1);
    struct stat sb;
    EXPECT_NE(stat(out("o.png").c_str(), &sb), 0) << "a failed run left an output file";
}

} // namespace
