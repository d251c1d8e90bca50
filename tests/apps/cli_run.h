// Running the vkinfer command from the app tests: its exit code, stdout and stderr, with the
// validation layer on unless the environment says otherwise, and a scratch folder per test
// binary. Header-only, shared by the tests/apps files (each a separate gtest source).
#ifndef VKI_TESTS_CLI_RUN_H
#define VKI_TESTS_CLI_RUN_H

#include <cjson/cJSON.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>
#include <ftw.h>
#include <sys/wait.h>
#include <unistd.h>

struct CliRun {
    int code = -1;
    std::string out, err;
};

inline std::string Slurp(FILE *f)
{
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    return s;
}

inline std::string ReadFile(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void WriteFile(const std::string &path, const std::string &bytes)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize)bytes.size());
}

inline std::string &ScratchDir()
{
    static std::string dir;
    return dir;
}

inline int RemoveEntry(const char *path, const struct stat *, int, struct FTW *)
{
    return remove(path);
}

// The scratch folder goes, with what the tests left in it, when the test binary exits.
inline void RemoveScratch() { nftw(ScratchDir().c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS); }

// A file name in this test binary's scratch folder under /tmp, removed at exit.
inline std::string Scratch(const std::string &name)
{
    std::string &dir = ScratchDir();
    if (dir.empty()) {
        char tmpl[] = "/tmp/vki_app_test_XXXXXX";
        if (!mkdtemp(tmpl)) return "/tmp/vki_app_test_" + std::to_string(getpid()) + "_" + name;
        dir = tmpl;
        atexit(RemoveScratch);
    }
    return dir + "/" + name;
}

// `vkinfer <args>` with `env` (VAR=value ... ) before it; stderr through a scratch file.
inline CliRun Vkinfer(const std::string &args, const std::string &env = "")
{
    CliRun r;
    std::string err_path = Scratch("stderr.txt");
    std::string validation = getenv("VKI_VALIDATION") ? "" : "VKI_VALIDATION=1 ";
    std::string cmd = validation + env + " '" VKINFER_EXE "' " + args + " 2>'" + err_path + "'";
    if (FILE *p = popen(cmd.c_str(), "r")) {
        r.out = Slurp(p);
        int status = pclose(p);
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    r.err = ReadFile(err_path);
    return r;
}

using Json = std::unique_ptr<cJSON, decltype(&cJSON_Delete)>;
inline Json Parse(const std::string &text) { return Json(cJSON_Parse(text.c_str()), cJSON_Delete); }
inline const cJSON *Get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

// A string or number field of a JSON object ("" or NaN when it is absent or of another type).
inline std::string Str(const cJSON *o, const char *k)
{
    const cJSON *v = Get(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}
inline double Num(const cJSON *o, const char *k)
{
    const cJSON *v = Get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

// CSV as RFC 4180 defines it (written from the RFC): fields separated by commas, records by
// newlines, a quoted field may hold commas, newlines and doubled quotes; every record ends in a
// newline. *ok false on anything malformed.
inline std::vector<std::vector<std::string>> ParseCsv(const std::string &s, bool *ok)
{
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, was_quoted = false;
    *ok = true;
    for (size_t i = 0; i < s.size(); i++) {
        char c = s[i];
        if (quoted) {
            if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') field += '"', i++;
            else if (c == '"') quoted = false;
            else field += c;
        } else if (c == '"') {
            if (!field.empty() || was_quoted) *ok = false;
            quoted = was_quoted = true;
        } else if (c == ',' || c == '\n') {
            row.push_back(field);
            field.clear();
            was_quoted = false;
            if (c == '\n') rows.push_back(row), row.clear();
        } else {
            if (was_quoted) *ok = false;
            field += c;
        }
    }
    if (quoted || !field.empty() || !row.empty()) *ok = false;
    return rows;
}

#endif
