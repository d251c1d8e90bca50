// `vkinfer bench -o md|csv|json|jsonl|sql`, `bench convert` and `bench compare`, run as a user
// would (a child process). Real runs use `bench runtime` at tiny sizes (under a second on
// lavapipe); each format is parsed by an independent reader here (a csv parser, cJSON per line,
// SQLite through python3 when it is there), and compare is checked against ratios computed
// here from the files' own numbers. Hostile input: malformed files must fail with exit status 1
// and a message naming the file.
#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include "cli_run.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>

namespace {

const char *kRuntime = "bench runtime --reps 2 --transfer-mib 1 --copy-mib 2";


const cJSON *FindRow(const cJSON *results, const std::string &suite, const std::string &test,
                     const std::string &metric)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, results) {
        if (Str(row, "suite") == suite && Str(row, "test") == test && Str(row, "metric") == metric)
            return row;
    }
    return nullptr;
}


std::vector<std::string> Lines(const std::string &s)
{
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

// Markdown table cells: '|' not escaped by a backslash.
int Pipes(const std::string &line)
{
    int n = 0;
    for (size_t i = 0; i < line.size(); i++) {
        if (line[i] == '\\') {
            i++; // the escaped character
            continue;
        }
        n += line[i] == '|';
    }
    return n;
}

bool ValidUtf8(const std::string &s)
{
    for (size_t i = 0; i < s.size();) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] >> 6) != 2) return false;
        i += len;
    }
    return true;
}

bool HavePythonSqlite()
{
    return system("python3 -c 'import sqlite3' >/dev/null 2>&1") == 0;
}

// Runs `sql` through SQLite (python3's sqlite3); returns what `query` prints, one row a line,
// fields separated by a tab.
std::string Sqlite(const std::string &sql, const std::string &query)
{
    std::string path = Scratch("bench.sql"), py = Scratch("query.py");
    WriteFile(path, sql);
    WriteFile(py, "import sqlite3, sys\n"
                  "c = sqlite3.connect(':memory:')\n"
                  "c.executescript(open(sys.argv[1], encoding='utf-8').read())\n"
                  "for r in c.execute(sys.argv[2]):\n"
                  "    print('\\t'.join(str(x) for x in r))\n");
    std::string cmd = "python3 '" + py + "' '" + path + "' \"" + query + "\"";
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return "";
    std::string out = Slurp(p);
    pclose(p);
    return out;
}

// A real run's JSON, once per test binary.
const std::string &RuntimeJson()
{
    static std::string text;
    if (text.empty()) {
        CliRun r = Vkinfer(std::string(kRuntime) + " -o json");
        EXPECT_EQ(r.code, 0) << r.err;
        text = r.out;
    }
    return text;
}

// A result file of ours, written by hand: llm rows to set beside the llama-bench sample, and a
// few hostile strings.
const char *kOursLlm = R"({
  "schema": "vkinfer-bench/1",
  "system": {"device_name": "Test GPU", "vkinfer_version": "0.1.0", "git_commit": "abc1234",
             "date": "2026-12-06T18:00:00Z"},
  "results": [
    {"suite": "llm", "test": "pp512", "metric": "tokens_per_s", "unit": "tokens/s",
     "value": 20000, "statistic": "mean", "sd": 100, "reps": 5},
    {"suite": "llm", "test": "tg128", "metric": "tokens_per_s", "unit": "tokens/s",
     "value": 400, "statistic": "mean", "sd": 5, "reps": 5},
    {"suite": "llm", "test": "tg128_d512", "metric": "tokens_per_s", "unit": "tokens/s",
     "value": 300, "statistic": "mean", "sd": 2, "reps": 5},
    {"suite": "llm", "test": "ttft_warm", "metric": "ms", "unit": "ms",
     "value": 12.5, "statistic": null, "sd": null, "reps": 5}
  ]
})";

} // namespace

TEST(BenchOutput, JsonHasSchemaSystemAndRows)
{
    Json j = Parse(RuntimeJson());
    ASSERT_TRUE(j && cJSON_IsObject(j.get())) << RuntimeJson();
    EXPECT_EQ(Str(j.get(), "schema"), "vkinfer-bench/1");
    const cJSON *sys = Get(j.get(), "system");
    for (const char *key : {"device_name", "device_vendor", "device_type", "vendor_id", "device_id",
                            "driver_name", "driver_info", "driver_version", "api_version", "tuning",
                            "narrowing", "vkinfer_version", "git_commit", "build_type", "os", "cpu",
                            "date"})
        EXPECT_TRUE(cJSON_IsString(Get(sys, key))) << key;
    EXPECT_EQ(Str(sys, "device_name"), Str(Get(j.get(), "device"), "name"));
    EXPECT_TRUE(std::regex_match(Str(sys, "date"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
        << Str(sys, "date");
    EXPECT_TRUE(std::regex_match(Str(sys, "git_commit"), std::regex("[0-9a-f]{4,40}|unknown")))
        << Str(sys, "git_commit");
    EXPECT_FALSE(Str(sys, "os").empty());
    EXPECT_FALSE(Str(sys, "build_type").empty());
    EXPECT_TRUE(std::regex_match(Str(sys, "api_version"), std::regex(R"(\d+\.\d+\.\d+)")));

    // Rows against the suite's own figures.
    const cJSON *results = Get(j.get(), "results"), *rt = Get(Get(j.get(), "suites"), "runtime");
    ASSERT_TRUE(cJSON_IsArray(results));
    const cJSON *row = FindRow(results, "runtime", "round_trip", "median_us");
    ASSERT_TRUE(row);
    EXPECT_EQ(Num(row, "value"), Num(Get(rt, "round_trip"), "median_us"));
    EXPECT_EQ(Str(row, "unit"), "us");
    EXPECT_EQ(Str(row, "statistic"), "median");
    EXPECT_EQ(Num(row, "reps"), 2);
    row = FindRow(results, "runtime", "copy", "gbs");
    ASSERT_TRUE(row);
    EXPECT_EQ(Num(row, "value"), Num(Get(rt, "copy"), "gbs"));
    EXPECT_EQ(Str(row, "unit"), "GB/s");
    EXPECT_TRUE(cJSON_IsNull(Get(row, "sd")));
    EXPECT_EQ(Str(row, "statistic"), "best"); // bench_runtime.c: the best replay
    // The 1 MiB transfer, named by its size rather than its position.
    row = FindRow(results, "runtime", "transfer.1048576.upload", "gbs");
    ASSERT_TRUE(row);
    EXPECT_EQ(Num(row, "value"), Num(cJSON_GetArrayItem(Get(rt, "transfer"), 0), "upload_gbs"));
    // Sizes and counts are parameters, not rows.
    EXPECT_FALSE(FindRow(results, "runtime", "copy", "bytes"));
    EXPECT_FALSE(FindRow(results, "runtime", "dispatch", "count"));
    cJSON_ArrayForEach(row, results) {
        EXPECT_EQ(cJSON_GetArraySize(row), 9);
        EXPECT_TRUE(cJSON_IsNull(Get(row, "workload"))); // no --workload: the options chose
    }

    CliRun alias = Vkinfer(std::string(kRuntime) + " --json");
    ASSERT_EQ(alias.code, 0) << alias.err;
    Json a = Parse(alias.out);
    EXPECT_EQ(Str(a.get(), "schema"), "vkinfer-bench/1");
    EXPECT_EQ(cJSON_GetArraySize(Get(a.get(), "results")), cJSON_GetArraySize(results));
}

TEST(BenchOutput, CsvRecordsHaveTheHeadersColumns)
{
    CliRun r = Vkinfer(std::string(kRuntime) + " -o csv");
    ASSERT_EQ(r.code, 0) << r.err;
    bool ok = false;
    auto rows = ParseCsv(r.out, &ok);
    ASSERT_TRUE(ok) << r.out;
    ASSERT_GE(rows.size(), 10u) << r.out;
    const auto &header = rows[0];
    ASSERT_EQ(header[0], "schema");
    std::vector<std::string> expect = {"suite", "test",   "metric", "unit",    "value",
                                       "statistic", "sd", "reps",   "workload"};
    for (size_t i = 0; i < expect.size(); i++) EXPECT_EQ(header[1 + i], expect[i]);
    EXPECT_EQ(header.size(), 1 + expect.size() + 17);
    Json j = Parse(RuntimeJson());
    EXPECT_EQ(rows.size() - 1, (size_t)cJSON_GetArraySize(Get(j.get(), "results")));
    for (size_t i = 1; i < rows.size(); i++) {
        ASSERT_EQ(rows[i].size(), header.size()) << "record " << i;
        EXPECT_EQ(rows[i][0], "vkinfer-bench/1");
        EXPECT_EQ(rows[i][1], "runtime");
        char *end = nullptr;
        strtod(rows[i][5].c_str(), &end);
        EXPECT_TRUE(end && *end == 0 && !rows[i][5].empty()) << rows[i][5];
    }
}

TEST(BenchOutput, JsonlIsOneObjectPerLine)
{
    CliRun r = Vkinfer(std::string(kRuntime) + " -o jsonl");
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = Lines(r.out);
    Json j = Parse(RuntimeJson());
    EXPECT_EQ(lines.size(), (size_t)cJSON_GetArraySize(Get(j.get(), "results")));
    for (const auto &line : lines) {
        Json o = Parse(line);
        ASSERT_TRUE(o && cJSON_IsObject(o.get())) << line;
        EXPECT_EQ(Str(o.get(), "schema"), "vkinfer-bench/1");
        EXPECT_EQ(Str(o.get(), "suite"), "runtime");
        EXPECT_TRUE(cJSON_IsNumber(Get(o.get(), "value")));
        EXPECT_FALSE(Str(o.get(), "device_name").empty());
        EXPECT_EQ(cJSON_GetArraySize(o.get()), 1 + 9 + 17);
    }
}

TEST(BenchOutput, SqlLoadsIntoSqlite)
{
    CliRun r = Vkinfer(std::string(kRuntime) + " -o sql");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("CREATE TABLE IF NOT EXISTS vkinfer_bench (", 0), 0u) << r.out;
    size_t inserts = 0;
    for (const auto &line : Lines(r.out)) inserts += line.rfind("INSERT INTO vkinfer_bench (", 0) == 0;
    Json j = Parse(RuntimeJson());
    EXPECT_EQ(inserts, (size_t)cJSON_GetArraySize(Get(j.get(), "results")));
    if (!HavePythonSqlite()) GTEST_SKIP() << "python3 with sqlite3 not found: structure checked only";
    std::string out = Sqlite(r.out, "SELECT COUNT(*), SUM(value > 0), COUNT(DISTINCT device_name) "
                                    "FROM vkinfer_bench WHERE suite = 'runtime'");
    EXPECT_EQ(out, std::to_string(inserts) + "\t" + std::to_string(inserts) + "\t1\n");
}

TEST(BenchOutput, MarkdownIsATable)
{
    CliRun r = Vkinfer(std::string(kRuntime) + " -o md");
    ASSERT_EQ(r.code, 0) << r.err;
    size_t table = 0;
    for (const auto &line : Lines(r.out)) {
        if (line.empty() || line[0] != '|') continue;
        EXPECT_EQ(Pipes(line), 9) << line; // 8 columns
        table++;
    }
    Json j = Parse(RuntimeJson());
    EXPECT_EQ(table, 2 + (size_t)cJSON_GetArraySize(Get(j.get(), "results"))); // + header, rule
    EXPECT_NE(r.out.find("| runtime | round_trip | median_us |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("- device: "), std::string::npos) << r.out;
}

TEST(BenchOutput, BadFormatIsAUsageError)
{
    CliRun r = Vkinfer("bench runtime -o xml");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("-o"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
}

// Names with quotes, commas, pipes, newlines and bytes that are not UTF-8 cannot break a row
// in any format.
TEST(BenchOutput, ConvertEscapesHostileText)
{
    std::string hostile = "{\"schema\": \"vkinfer-bench/1\", \"system\": {\"device_name\": "
                          "\"GPU, \\\"quoted\\\" 'x' | y\\n\"},\n"
                          " \"results\": [{\"suite\": \"s|u\", \"test\": \"x\\\"y,z'w\\r\\nv\xff\xfe\","
                          " \"metric\": \"m\", \"unit\": \"us\", \"value\": 1.5, \"sd\": null}]}";
    std::string path = Scratch("hostile.json");
    WriteFile(path, hostile);
    std::string clean_test = "x\"y,z'w  v\xef\xbf\xbd\xef\xbf\xbd"; // CR LF -> spaces, bytes -> U+FFFD

    CliRun csv = Vkinfer("bench convert '" + path + "' -o csv");
    ASSERT_EQ(csv.code, 0) << csv.err;
    EXPECT_TRUE(ValidUtf8(csv.out));
    bool ok = false;
    auto rows = ParseCsv(csv.out, &ok);
    ASSERT_TRUE(ok) << csv.out;
    ASSERT_EQ(rows.size(), 2u) << csv.out;
    ASSERT_EQ(rows[1].size(), rows[0].size());
    EXPECT_EQ(rows[1][1], "s|u");
    EXPECT_EQ(rows[1][2], clean_test);
    EXPECT_EQ(rows[1][10], "GPU, \"quoted\" 'x' | y "); // the system's first column

    CliRun jsonl = Vkinfer("bench convert '" + path + "' -o jsonl");
    ASSERT_EQ(jsonl.code, 0) << jsonl.err;
    auto lines = Lines(jsonl.out);
    ASSERT_EQ(lines.size(), 1u) << jsonl.out;
    Json o = Parse(lines[0]);
    ASSERT_TRUE(o) << lines[0];
    EXPECT_EQ(Str(o.get(), "suite"), "s|u");

    CliRun md = Vkinfer("bench convert '" + path + "' -o md");
    ASSERT_EQ(md.code, 0) << md.err;
    EXPECT_TRUE(ValidUtf8(md.out));
    for (const auto &line : Lines(md.out))
        if (!line.empty() && line[0] == '|') EXPECT_EQ(Pipes(line), 9) << line;
    EXPECT_NE(md.out.find("s\\|u"), std::string::npos) << md.out;

    CliRun sql = Vkinfer("bench convert '" + path + "' -o sql");
    ASSERT_EQ(sql.code, 0) << sql.err;
    EXPECT_TRUE(ValidUtf8(sql.out));
    if (!HavePythonSqlite()) GTEST_SKIP() << "python3 with sqlite3 not found";
    EXPECT_EQ(Sqlite(sql.out, "SELECT suite, value FROM vkinfer_bench"), "s|u\t1.5\n");
    EXPECT_EQ(Sqlite(sql.out, "SELECT test = char(120,34,121,44,122,39,119,32,32,118,65533,65533) "
                              "FROM vkinfer_bench"), "1\n");
}

TEST(BenchOutput, ConvertKeepsTheRows)
{
    std::string path = Scratch("runtime.json");
    WriteFile(path, RuntimeJson());
    CliRun r = Vkinfer("bench convert '" + path + "' -o jsonl");
    ASSERT_EQ(r.code, 0) << r.err;
    Json j = Parse(RuntimeJson());
    auto lines = Lines(r.out);
    ASSERT_EQ(lines.size(), (size_t)cJSON_GetArraySize(Get(j.get(), "results")));
    Json first = Parse(lines[0]);
    const cJSON *row = cJSON_GetArrayItem(Get(j.get(), "results"), 0);
    EXPECT_EQ(Str(first.get(), "test"), Str(row, "test"));
    EXPECT_EQ(Num(first.get(), "value"), Num(row, "value"));
    EXPECT_EQ(Str(first.get(), "date"), Str(Get(j.get(), "system"), "date"));
}

TEST(BenchOutput, ProgressOnlyOnATerminal)
{
    CliRun r = Vkinfer(std::string(kRuntime) + " -o json");
    ASSERT_EQ(r.code, 0);
    EXPECT_EQ(r.err.find("bench runtime"), std::string::npos) << r.err; // stderr is a file here
    if (system("script --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no script(1) for a terminal";
    // script(1) gives the child a pseudo-terminal: stdout and stderr both land in its output.
    std::string validation = getenv("VKI_VALIDATION") ? "" : "VKI_VALIDATION=1 ";
    std::string cmd = "script -qec \"" + validation + "'" VKINFER_EXE "' " + kRuntime +
                      " -o csv\" /dev/null </dev/null";
    FILE *p = popen(cmd.c_str(), "r");
    ASSERT_TRUE(p);
    std::string out = Slurp(p);
    int status = pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_NE(out.find("bench runtime: running, 0 of 1 done"), std::string::npos) << out;
}

TEST(BenchCompare, SameFileGivesRatiosOfOne)
{
    std::string path = Scratch("a.json");
    WriteFile(path, RuntimeJson());
    CliRun r = Vkinfer("bench compare '" + path + "' '" + path + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    Json j = Parse(RuntimeJson());
    std::set<std::string> keys; // unique (suite, test, metric)
    const cJSON *row;
    cJSON_ArrayForEach(row, Get(j.get(), "results"))
        keys.insert(Str(row, "suite") + "\n" + Str(row, "test") + "\n" + Str(row, "metric"));
    size_t table = 0;
    std::regex ratio_one(R"(.*\| 1\.000( \?)? \|$)");
    for (const auto &line : Lines(r.out)) {
        if (line.rfind("| runtime |", 0) != 0) continue;
        table++;
        EXPECT_TRUE(std::regex_match(line, ratio_one)) << line;
    }
    EXPECT_EQ(table, keys.size()) << r.out;
    EXPECT_NE(r.out.find("- A: "), std::string::npos) << r.out;
}

TEST(BenchCompare, ReadsLlamaBenchJson)
{
    std::string ours = Scratch("ours_llm.json");
    WriteFile(ours, kOursLlm);
    std::string llama = VKI_TEST_DATA "/bench/llama_bench_sample.json";
    CliRun r = Vkinfer("bench compare '" + ours + "' '" + llama + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    // The expected ratios from the sample's own avg_ts / stddev_ts.
    std::ifstream f(llama);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Json l = Parse(text);
    ASSERT_TRUE(l && cJSON_GetArraySize(l.get()) == 3);
    struct Expect {
        const char *test;
        double ours, ours_sd;
        int index;
    } expect[] = {{"pp512", 20000, 100, 0}, {"tg128", 400, 5, 1}, {"tg128_d512", 300, 2, 2}};
    for (const auto &e : expect) {
        const cJSON *t = cJSON_GetArrayItem(l.get(), e.index);
        double avg = Num(t, "avg_ts"), sd = Num(t, "stddev_ts");
        bool overlap = e.ours - e.ours_sd <= avg + sd && avg - sd <= e.ours + e.ours_sd;
        char ratio[32];
        snprintf(ratio, sizeof ratio, "| %.3f%s |", avg / e.ours, overlap ? " ?" : "");
        std::string prefix = std::string("| llm | ") + e.test + " | tokens_per_s | tokens/s |";
        bool found = false;
        for (const auto &line : Lines(r.out)) {
            if (line.rfind(prefix, 0) != 0) continue;
            found = true;
            EXPECT_NE(line.find(ratio), std::string::npos) << line << " wants " << ratio;
        }
        EXPECT_TRUE(found) << e.test << "\n" << r.out;
    }
    // tg128 is within the spread in the sample (400 ± 5 against 401.4 ± 2.5), pp512 is not.
    EXPECT_NE(r.out.find("?: the mean"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("ttft_warm"), std::string::npos) << r.out; // not in both files
    EXPECT_NE(r.out.find("llama.cpp b3ef0d2e (Vulkan) on AMD Radeon RX 7800 XT"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("vkinfer 0.1.0 abc1234 on Test GPU"), std::string::npos) << r.out;

    // -o json: the same comparison as numbers.
    CliRun js = Vkinfer("bench compare -o json '" + ours + "' '" + llama + "'");
    ASSERT_EQ(js.code, 0) << js.err;
    Json doc = Parse(js.out);
    ASSERT_TRUE(doc) << js.out;
    EXPECT_EQ(Str(doc.get(), "schema"), "vkinfer-bench-compare/1");
    EXPECT_EQ(cJSON_GetArraySize(Get(doc.get(), "files")), 2);
    const cJSON *rows = Get(doc.get(), "rows");
    ASSERT_EQ(cJSON_GetArraySize(rows), 3) << js.out;
    for (const auto &e : expect) {
        const cJSON *row = cJSON_GetArrayItem(rows, e.index), *t = cJSON_GetArrayItem(l.get(), e.index);
        EXPECT_EQ(Str(row, "test"), e.test);
        const cJSON *ratios = Get(row, "ratios"), *unclear = Get(row, "unclear");
        EXPECT_TRUE(cJSON_IsNull(cJSON_GetArrayItem(ratios, 0)));
        EXPECT_NEAR(cJSON_GetArrayItem(ratios, 1)->valuedouble, Num(t, "avg_ts") / e.ours, 1e-9);
        EXPECT_NEAR(cJSON_GetArrayItem(Get(row, "sds"), 1)->valuedouble, Num(t, "stddev_ts"), 1e-9);
        EXPECT_EQ(cJSON_IsTrue(cJSON_GetArrayItem(unclear, 1)), std::string(e.test) == "tg128") << e.test;
    }
}

TEST(BenchCompare, MalformedFilesAreNamed)
{
    std::string good = Scratch("good.json");
    WriteFile(good, kOursLlm);
    const struct {
        const char *name;
        std::string bytes;
    } bad[] = {
        {"empty.json", ""},
        {"truncated.json", "{\"schema\": \"vkinfer-bench/1\", \"results\": ["},
        {"trailing.json", std::string(kOursLlm) + " {}"},
        {"nul.json", std::string("{\"schema\": \"vkinfer-bench/1\"}\0 ", 31)},
        {"newer.json", "{\"schema\": \"vkinfer-bench/2\", \"results\": []}"},
        {"other_schema.json", "{\"schema\": \"something/1\", \"results\": []}"},
        {"no_value.json", "{\"schema\": \"vkinfer-bench/1\", \"results\": [{\"suite\": \"llm\", "
                          "\"test\": \"pp512\", \"metric\": \"tokens_per_s\"}]}"},
        {"negative_sd.json", "{\"schema\": \"vkinfer-bench/1\", \"results\": [{\"suite\": \"llm\", "
                             "\"test\": \"pp512\", \"metric\": \"tokens_per_s\", \"value\": 1, \"sd\": -1}]}"},
        {"results_object.json", "{\"schema\": \"vkinfer-bench/1\", \"results\": {}}"},
        {"llama_string.json", "[{\"n_prompt\": \"512\", \"n_gen\": 0, \"avg_ts\": 1}]"},
        {"llama_fraction.json", "[{\"n_prompt\": 0.5, \"n_gen\": 0, \"avg_ts\": 1}]"},
        {"llama_empty.json", "[]"},
        {"number.json", "42"},
        {"deep.json", std::string(100000, '[') + std::string(100000, ']')},
        {"binary.json", "\xff\xfe{\x01\x02"},
    };
    for (const auto &b : bad) {
        std::string path = Scratch(b.name);
        WriteFile(path, b.bytes);
        CliRun r = Vkinfer("bench compare '" + good + "' '" + path + "'");
        EXPECT_EQ(r.code, 1) << b.name << ": " << r.out << r.err;
        EXPECT_NE(r.err.find(b.name), std::string::npos) << b.name << ": " << r.err;
        EXPECT_TRUE(r.out.empty()) << b.name << ": " << r.out;
    }
    // Over the size limit: 65 MiB of spaces (sparse, so cheap to make).
    std::string huge = Scratch("huge.json");
    WriteFile(huge, "");
    ASSERT_EQ(truncate(huge.c_str(), 65ll << 20), 0);
    CliRun r = Vkinfer("bench compare '" + good + "' '" + huge + "'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("huge.json"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("MiB"), std::string::npos) << r.err;

    r = Vkinfer("bench compare '" + good + "' '" + Scratch("missing.json") + "'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("missing.json"), std::string::npos) << r.err;

    // Nothing in common: a runtime run beside llm rows.
    std::string rt = Scratch("rt.json");
    WriteFile(rt, RuntimeJson());
    r = Vkinfer("bench compare '" + good + "' '" + rt + "'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("no result"), std::string::npos) << r.err;

    // Command-line mistakes are usage errors.
    EXPECT_EQ(Vkinfer("bench compare '" + good + "'").code, 2);
    EXPECT_EQ(Vkinfer("bench compare --frobnicate '" + good + "' '" + good + "'").code, 2);
    EXPECT_EQ(Vkinfer("bench convert '" + good + "'").code, 2);

    // convert turns the system block's keys into sql column names: only snake_case, once each.
    for (const char *system : {"{\"x); DROP TABLE t; --\": \"a\"}", "{\"a\": \"1\", \"a\": \"2\"}",
                               "{\"suite\": \"a\"}", "{\"a\": {\"b\": 1}}"}) {
        std::string path = Scratch("system_keys.json");
        WriteFile(path, std::string("{\"schema\": \"vkinfer-bench/1\", \"system\": ") + system +
                            ", \"results\": []}");
        r = Vkinfer("bench convert '" + path + "' -o sql");
        EXPECT_EQ(r.code, 1) << system << ": " << r.out;
        EXPECT_NE(r.err.find("system_keys.json"), std::string::npos) << r.err;
        EXPECT_EQ(r.out.find("DROP"), std::string::npos) << r.out;
    }
}

// JSON Lines: our -o jsonl and llama-bench's -o jsonl read as their JSON forms are.
TEST(BenchCompare, ReadsJsonLines)
{
    std::string json = Scratch("lines_a.json"), jsonl = Scratch("lines_a.jsonl");
    WriteFile(json, RuntimeJson());
    CliRun conv = Vkinfer("bench convert '" + json + "' -o jsonl");
    ASSERT_EQ(conv.code, 0) << conv.err;
    WriteFile(jsonl, conv.out);
    CliRun r = Vkinfer("bench compare '" + json + "' '" + jsonl + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    size_t table = 0;
    for (const auto &line : Lines(r.out)) {
        if (line.rfind("| runtime |", 0) != 0) continue;
        table++;
        EXPECT_TRUE(std::regex_match(line, std::regex(R"(.*\| 1\.000( \?)? \|$)"))) << line;
    }
    EXPECT_GT(table, 5u) << r.out;

    // llama-bench -o jsonl: the sample's tests, one object a line.
    std::ifstream f(VKI_TEST_DATA "/bench/llama_bench_sample.json");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Json l = Parse(text);
    ASSERT_TRUE(l);
    std::string lines;
    const cJSON *t;
    cJSON_ArrayForEach(t, l.get()) {
        char *one = cJSON_PrintUnformatted(t);
        lines += std::string(one) + "\n";
        cJSON_free(one);
    }
    std::string llama = Scratch("llama.jsonl"), ours = Scratch("ours_lines.json");
    WriteFile(llama, lines);
    WriteFile(ours, kOursLlm);
    r = Vkinfer("bench compare '" + ours + "' '" + llama + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    char ratio[32];
    snprintf(ratio, sizeof ratio, "| %.3f |", Num(cJSON_GetArrayItem(l.get(), 0), "avg_ts") / 20000);
    EXPECT_NE(r.out.find(std::string("| llm | pp512 | tokens_per_s | tokens/s |")), std::string::npos);
    EXPECT_NE(r.out.find(ratio), std::string::npos) << r.out;

    // A bad second line is named.
    std::string bad = Scratch("bad_line.jsonl");
    WriteFile(bad, lines.substr(0, lines.find('\n') + 1) + "{\"n_prompt\": \n");
    r = Vkinfer("bench compare '" + ours + "' '" + bad + "'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("bad_line.jsonl: line 2"), std::string::npos) << r.err;
}

// bench ops: each case is a test, each of its unit-bearing keys a metric; sizes and counts not.
TEST(BenchOutput, OpsCasesAreTests)
{
    CliRun r = Vkinfer("bench ops --filter \"rms_norm SmolLM2\" --reps 1 -o json");
    ASSERT_EQ(r.code, 0) << r.err;
    Json j = Parse(r.out);
    ASSERT_TRUE(j) << r.out;
    const cJSON *cases = Get(Get(Get(j.get(), "suites"), "ops"), "cases"), *results = Get(j.get(), "results");
    ASSERT_GE(cJSON_GetArraySize(cases), 1) << r.out;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        std::string name = Str(c, "name");
        for (const char *metric : {"us", "gbs", "gflops"}) {
            const cJSON *row = FindRow(results, "ops", name, metric);
            ASSERT_TRUE(row) << name << " " << metric;
            EXPECT_EQ(Num(row, "value"), Num(c, metric));
            EXPECT_EQ(Str(row, "statistic"), "median");
            EXPECT_EQ(Num(row, "reps"), 1);
        }
        EXPECT_EQ(Str(FindRow(results, "ops", name, "us"), "unit"), "us");
        EXPECT_EQ(Str(FindRow(results, "ops", name, "gbs"), "unit"), "GB/s");
        EXPECT_FALSE(FindRow(results, "ops", name, "bytes"));
        EXPECT_FALSE(FindRow(results, "ops", name, "dispatches"));
    }
}

// Mutated result files (bytes flipped, cut, repeated; a fixed seed) end in a table or a
// message, never a crash, and what is printed stays well-formed UTF-8.
TEST(BenchCompare, MutatedFilesNeverCrash)
{
    std::ifstream f(VKI_TEST_DATA "/bench/llama_bench_sample.json");
    std::string llama((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string seeds[] = {kOursLlm, llama};
    std::string good = Scratch("mut_good.json"), path = Scratch("mutated.json");
    WriteFile(good, kOursLlm);
    uint64_t state = 0x2545f4914f6cdd1dull;
    auto next = [&state]() {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        return state;
    };
    int ok = 0, refused = 0;
    for (int k = 0; k < 60; k++) {
        std::string m = seeds[k % 2];
        for (int e = 0, edits = 1 + (int)(next() % 4); e < edits && !m.empty(); e++) {
            size_t at = next() % m.size();
            switch (next() % 4) {
            case 0: m[at] = (char)(next() & 0xff); break;                     // a byte
            case 1: m.resize(at); break;                                       // cut
            case 2: m.insert(at, m.substr(at, next() % 64)); break;            // repeat
            default: m.insert(at, 1, "{}[]\",:0-e\\"[next() % 11]); break;   // syntax
            }
        }
        WriteFile(path, m);
        CliRun r = Vkinfer("bench compare -o md '" + good + "' '" + path + "'");
        ASSERT_TRUE(r.code == 0 || r.code == 1) << "mutation " << k << ": exit " << r.code << "\n" << m;
        EXPECT_TRUE(ValidUtf8(r.out)) << "mutation " << k;
        if (r.code == 1) // the file named, or nothing left in common
            EXPECT_TRUE(r.err.find("mutated.json") != std::string::npos ||
                        r.err.find("no result is in every file") != std::string::npos) << r.err;
        (r.code == 0 ? ok : refused)++;
    }
    EXPECT_GT(refused, 0);
}
