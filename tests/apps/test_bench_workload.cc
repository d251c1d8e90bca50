// `vkinfer bench --workload NAME` (fixed workloads: every row names the workload), the median
// of `bench llm`, progress on a terminal only, and `bench compare -o csv`, run as a user would
// (a child process). The workloads run in their -tiny variants on lavapipe; the default model
// is hidden (VKI_MODEL_DIR=/nonexistent) so that its skip, with the reason, is what is checked.
// compare's ratios are checked against numbers computed here from the files' own values, and
// its csv read by an RFC 4180 parser written here.
#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include "cli_run.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// The environment of every run here: validation on (unless set), the default model hidden.
std::string Env() { return std::string(getenv("VKI_VALIDATION") ? "" : "VKI_VALIDATION=1 ") + "VKI_MODEL_DIR=/nonexistent "; }

CliRun VkinferNoModel(const std::string &args) { return Vkinfer(args, "VKI_MODEL_DIR=/nonexistent"); }


const cJSON *FindRow(const cJSON *results, const std::string &test, const std::string &metric)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, results) {
        if (Str(row, "test") == test && Str(row, "metric") == metric) return row;
    }
    return nullptr;
}


// One llm-v1-tiny run (3 repetitions, so that the median is not the mean).
const std::string &LlmTinyJson()
{
    static std::string text;
    if (text.empty()) {
        CliRun r = VkinferNoModel("bench --workload llm-v1-tiny --reps 3 -o json");
        EXPECT_EQ(r.code, 0) << r.err;
        text = r.out;
    }
    return text;
}

// One ops-v1-tiny run (about a second on lavapipe), for the round trips.
const std::string &OpsTinyJson()
{
    static std::string text;
    if (text.empty()) {
        CliRun r = VkinferNoModel("bench --workload ops-v1-tiny --reps 2 -o json");
        EXPECT_EQ(r.code, 0) << r.err;
        text = r.out;
    }
    return text;
}

const char *kSynthetic = "synthetic-smollm2-135m";

} // namespace

// One run (a minute on lavapipe) for the workload's rows and llm's median.
TEST(BenchWorkload, LlmTinyRowsNameTheWorkloadAndTheMedian)
{
    Json j = Parse(LlmTinyJson());
    ASSERT_TRUE(j) << LlmTinyJson();
    EXPECT_EQ(Str(j.get(), "schema"), "vkinfer-bench/1");
    const cJSON *llm = Get(Get(j.get(), "suites"), "llm");
    EXPECT_EQ(Str(llm, "workload"), "llm-v1-tiny");
    // The default model is hidden: skipped, with the reason and what to do.
    const cJSON *skipped = Get(llm, "skipped");
    ASSERT_EQ(cJSON_GetArraySize(skipped), 1) << LlmTinyJson();
    EXPECT_EQ(Str(cJSON_GetArrayItem(skipped, 0), "run"), "smollm2-135m-instruct-q4_1");
    EXPECT_NE(Str(cJSON_GetArrayItem(skipped, 0), "reason").find("fetch_models.sh"), std::string::npos);
    // The synthetic model ran with the workload's fixed sizes, not the suite's defaults.
    const cJSON *run = Get(llm, kSynthetic);
    ASSERT_TRUE(run) << LlmTinyJson();
    EXPECT_EQ(Num(run, "n_ctx"), 32);
    EXPECT_EQ(Num(run, "reps"), 3);
    EXPECT_GT(Num(run, "pp8_tokens_per_s"), 0);
    EXPECT_GT(Num(run, "tg4_tokens_per_s"), 0);
    const cJSON *depths = Get(run, "depths");
    ASSERT_EQ(cJSON_GetArraySize(depths), 3);
    for (int d = 0; d < 3; d++) EXPECT_EQ(Num(cJSON_GetArrayItem(depths, d), "depth"), 8 * d);

    const cJSON *results = Get(j.get(), "results"), *row;
    ASSERT_GT(cJSON_GetArraySize(results), 10);
    cJSON_ArrayForEach(row, results) {
        EXPECT_EQ(Str(row, "workload"), "llm-v1-tiny") << Str(row, "test");
        EXPECT_EQ(Str(row, "test").rfind(std::string(kSynthetic) + ".", 0), 0u) << Str(row, "test");
    }
    row = FindRow(results, std::string(kSynthetic) + ".pp8", "tokens_per_s");
    ASSERT_TRUE(row);
    EXPECT_EQ(Num(row, "value"), Num(run, "pp8_tokens_per_s"));
    EXPECT_EQ(Num(row, "sd"), Num(run, "pp8_sd"));
    EXPECT_EQ(Str(row, "statistic"), "mean");
    EXPECT_EQ(Num(row, "reps"), 3);
    EXPECT_TRUE(FindRow(results, std::string(kSynthetic) + ".tg4_d16", "tokens_per_s"));

    // llama-bench's statistics: mean ± sd, and the median, which lies within one population
    // standard deviation of the mean (|median - mean| <= sigma <= the sample sd).
    for (const char *test : {"pp8", "tg4", "tg4_d8", "tg4_d16"}) {
        std::string name = std::string(kSynthetic) + "." + test;
        const cJSON *mean = FindRow(results, name, "tokens_per_s");
        const cJSON *median = FindRow(results, name, "median_tokens_per_s");
        ASSERT_TRUE(mean && median) << name;
        EXPECT_EQ(Str(median, "statistic"), "median");
        EXPECT_EQ(Str(median, "unit"), "tokens/s");
        EXPECT_TRUE(cJSON_IsNull(Get(median, "sd"))) << name;
        EXPECT_EQ(Num(median, "reps"), 3);
        EXPECT_GT(Num(median, "value"), 0);
        EXPECT_LE(std::fabs(Num(median, "value") - Num(mean, "value")), Num(mean, "sd") * 1.0001 + 1e-9)
            << name << ": median " << Num(median, "value") << ", mean " << Num(mean, "value") << " ± "
            << Num(mean, "sd");
    }
}

// A workload's file round-trips through convert and compare, in csv and md.
TEST(BenchWorkload, RoundTripsThroughCompare)
{
    std::string json = Scratch("tiny.json"), jsonl = Scratch("tiny.jsonl");
    WriteFile(json, OpsTinyJson());
    CliRun conv = VkinferNoModel("bench convert '" + json + "' -o jsonl");
    ASSERT_EQ(conv.code, 0) << conv.err;
    WriteFile(jsonl, conv.out);
    Json j = Parse(OpsTinyJson());
    ASSERT_TRUE(j) << OpsTinyJson();
    const cJSON *results = Get(j.get(), "results");
    ASSERT_GT(cJSON_GetArraySize(results), 3);

    CliRun csv = VkinferNoModel("bench compare -o csv '" + json + "' '" + jsonl + "'");
    ASSERT_EQ(csv.code, 0) << csv.err;
    EXPECT_EQ(csv.err.find("different workloads"), std::string::npos) << csv.err;
    bool ok = false;
    auto rows = ParseCsv(csv.out, &ok);
    ASSERT_TRUE(ok) << csv.out;
    ASSERT_EQ(rows.size(), 1 + (size_t)cJSON_GetArraySize(results)) << csv.out;
    EXPECT_EQ(rows[0], (std::vector<std::string>{"suite", "test", "metric", "unit", "A", "A_sd", "B",
                                                 "B_sd", "B/A", "B/A_unclear"}));
    for (size_t i = 1; i < rows.size(); i++) {
        ASSERT_EQ(rows[i].size(), 10u) << i;
        const cJSON *row = FindRow(results, rows[i][1], rows[i][2]);
        ASSERT_TRUE(row) << rows[i][1] << " " << rows[i][2];
        EXPECT_EQ(rows[i][0], "ops");
        EXPECT_EQ(rows[i][3], Str(row, "unit"));
        EXPECT_NEAR(std::stod(rows[i][4]), Num(row, "value"), 1e-9 * std::fabs(Num(row, "value")));
        EXPECT_EQ(rows[i][4], rows[i][6]);
        EXPECT_EQ(rows[i][5], rows[i][7]);
        EXPECT_EQ(rows[i][5].empty(), cJSON_IsNull(Get(row, "sd")));
        if (Num(row, "value") != 0) {
            EXPECT_EQ(rows[i][8], "1") << rows[i][1];
        }
        EXPECT_EQ(rows[i][9], rows[i][5].empty() ? "0" : "1"); // equal values: within any spread
    }

    // Rows of another workload are compared, with a word on stderr.
    std::string other = OpsTinyJson(), from = "\"ops-v1-tiny\""; // only as the workload
    for (size_t at; (at = other.find(from)) != std::string::npos;) other.replace(at, from.size(), "\"ops-v0\"");
    std::string other_path = Scratch("other.json");
    WriteFile(other_path, other);
    CliRun md = VkinferNoModel("bench compare '" + json + "' '" + other_path + "'");
    ASSERT_EQ(md.code, 0) << md.err;
    EXPECT_NE(md.err.find("different workloads"), std::string::npos) << md.err;
    std::string first = "| ops | " + Str(cJSON_GetArrayItem(results, 0), "test") + " | " +
                        Str(cJSON_GetArrayItem(results, 0), "metric") + " |";
    EXPECT_NE(md.out.find(first), std::string::npos) << first << "\n" << md.out;
}

// compare -o csv beside llama-bench's file: the ratios and the unclear marks from the files' own
// numbers.
TEST(BenchWorkload, CompareCsvAgainstLlamaBench)
{
    std::string ours = Scratch("ours.json");
    WriteFile(ours, R"({"schema": "vkinfer-bench/1", "system": {"device_name": "Test GPU"},
      "results": [
        {"suite": "llm", "test": "pp512", "metric": "tokens_per_s", "unit": "tokens/s",
         "value": 20000, "statistic": "mean", "sd": 100, "reps": 5, "workload": "llm-v1"},
        {"suite": "llm", "test": "tg128", "metric": "tokens_per_s", "unit": "tokens/s",
         "value": 400, "statistic": "mean", "sd": 5, "reps": 5, "workload": "llm-v1"}]})");
    std::string llama_path = VKI_TEST_DATA "/bench/llama_bench_sample.json";
    Json llama = Parse(ReadFile(llama_path));
    ASSERT_TRUE(llama);
    CliRun r = VkinferNoModel("bench compare -o csv '" + ours + "' '" + llama_path + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("different workloads"), std::string::npos) << r.err; // llama.cpp has none
    bool ok = false;
    auto rows = ParseCsv(r.out, &ok);
    ASSERT_TRUE(ok) << r.out;
    ASSERT_EQ(rows.size(), 3u) << r.out;
    const struct {
        const char *test;
        double value, sd;
        int index;
    } expect[] = {{"pp512", 20000, 100, 0}, {"tg128", 400, 5, 1}};
    for (size_t i = 0; i < 2; i++) {
        const auto &e = expect[i];
        const cJSON *t = cJSON_GetArrayItem(llama.get(), e.index);
        double avg = Num(t, "avg_ts"), sd = Num(t, "stddev_ts");
        bool overlap = e.value - e.sd <= avg + sd && avg - sd <= e.value + e.sd;
        ASSERT_EQ(rows[1 + i].size(), 10u);
        EXPECT_EQ(rows[1 + i][1], e.test);
        EXPECT_EQ(std::stod(rows[1 + i][4]), e.value);
        EXPECT_NEAR(std::stod(rows[1 + i][6]), avg, 1e-6 * avg);
        EXPECT_NEAR(std::stod(rows[1 + i][7]), sd, 1e-6 * sd + 1e-12);
        EXPECT_NEAR(std::stod(rows[1 + i][8]), avg / e.value, 1e-9);
        EXPECT_EQ(rows[1 + i][9], overlap ? "1" : "0") << e.test;
    }
    EXPECT_EQ(VkinferNoModel("bench compare -o xml '" + ours + "' '" + ours + "'").code, 2);
}

TEST(BenchWorkload, OpsTinyIsTheFilteredTable)
{
    Json j = Parse(OpsTinyJson());
    ASSERT_TRUE(j) << OpsTinyJson();
    const cJSON *ops = Get(Get(j.get(), "suites"), "ops"), *c, *row;
    EXPECT_EQ(Str(ops, "workload"), "ops-v1-tiny");
    ASSERT_GE(cJSON_GetArraySize(Get(ops, "cases")), 1);
    cJSON_ArrayForEach(c, Get(ops, "cases"))
        EXPECT_NE(Str(c, "name").find("rms_norm SmolLM2"), std::string::npos) << Str(c, "name");
    cJSON_ArrayForEach(row, Get(j.get(), "results")) EXPECT_EQ(Str(row, "workload"), "ops-v1-tiny");
}

// Without the CLIP vocabulary the sd workload runs nothing and says why (the full run takes
// minutes on lavapipe: sd-v1-tiny is for a device).
TEST(BenchWorkload, SdSkipsWhatCannotRun)
{
    CliRun r = VkinferNoModel("bench --workload sd-v1-tiny -o json");
    ASSERT_EQ(r.code, 0) << r.err;
    Json j = Parse(r.out);
    ASSERT_TRUE(j) << r.out;
    const cJSON *sd = Get(Get(j.get(), "suites"), "sd");
    EXPECT_EQ(Str(sd, "workload"), "sd-v1-tiny");
    const cJSON *skipped = cJSON_GetArrayItem(Get(sd, "skipped"), 0);
    EXPECT_EQ(Str(skipped, "run"), "sd15-64x64");
    EXPECT_NE(Str(skipped, "reason").find("CLIP vocabulary"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("skipped sd15-64x64"), std::string::npos) << r.err;
}

TEST(BenchWorkload, FixedOptionsAreUsageErrors)
{
    for (const char *args : {"--workload llm-v1 -p 64", "--workload llm-v1 --ctx=64",
                             "--workload sd-v1 --steps 2", "--workload ops-v1 --filter x",
                             "ops --workload llm-v1", "--workload llm-v9", "--workload"}) {
        CliRun r = VkinferNoModel(std::string("bench ") + args);
        EXPECT_EQ(r.code, 2) << args << ": " << r.err;
        EXPECT_NE(r.err.find("workload"), std::string::npos) << args << ": " << r.err;
        EXPECT_TRUE(r.out.empty()) << args;
    }
    CliRun help = VkinferNoModel("bench --help");
    ASSERT_EQ(help.code, 0);
    for (const char *name : {"llm-v1 ", "sd-v1 ", "ops-v1 ", "llm-v1-tiny"})
        EXPECT_NE(help.out.find(name), std::string::npos) << name;
}

// Progress goes to stderr only when it is a terminal, and never into stdout's JSON.
TEST(BenchProgress, OnlyOnATerminalAndNeverInTheJson)
{
    // Not a terminal (a file): no progress line, and the JSON is the whole of stdout.
    CliRun peak = VkinferNoModel("bench peak --reps 1 -o json");
    ASSERT_EQ(peak.code, 0) << peak.err;
    EXPECT_TRUE(Parse(peak.out)) << peak.out;
    EXPECT_EQ(peak.err.find("bench peak:"), std::string::npos) << peak.err;
    EXPECT_EQ(peak.err.find('\r'), std::string::npos);

    if (system("script --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no script(1) for a terminal";
    // script(1) gives the command a terminal for stderr; stdout goes to a file.
    for (const char *args : {"bench --workload llm-v1-tiny --reps 1 -o json", "bench peak --reps 1 -o json"}) {
        std::string out = Scratch("progress.json");
        std::string cmd = "script -qec \"" + Env() + "'" VKINFER_EXE "' " + args + " >'" + out +
                          "'\" /dev/null </dev/null";
        FILE *p = popen(cmd.c_str(), "r");
        ASSERT_TRUE(p);
        std::string tty = Slurp(p);
        int status = pclose(p);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << tty;
        std::string json = ReadFile(out);
        Json doc = Parse(json);
        ASSERT_TRUE(doc) << json.substr(0, 400);
        EXPECT_EQ(json.find('\r'), std::string::npos);
        EXPECT_EQ(json.find("of 3 done"), std::string::npos);
        if (std::string(args).find("llm") != std::string::npos) {
            // Which suite, which model of how many, which case, how many left.
            EXPECT_NE(tty.find("bench llm: synthetic-smollm2-135m (2 of 2): tg4 @ d16, 4 of 5 done"),
                      std::string::npos) << tty;
            const cJSON *row;
            ASSERT_GT(cJSON_GetArraySize(Get(doc.get(), "results")), 10);
            cJSON_ArrayForEach(row, Get(doc.get(), "results")) EXPECT_EQ(Str(row, "workload"), "llm-v1-tiny");
        } else {
            EXPECT_NE(tty.find("bench peak: fp32 FMA, 0 of "), std::string::npos) << tty;
        }
    }
}
