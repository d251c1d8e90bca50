/* The output side of `vkinfer bench`: the system block, result rows flattened from each
 * suite's figures, the formats (md, csv, json, jsonl, sql, shaped like llama-bench's), and
 * progress on a terminal. docs/bench/SCHEMA.md is the contract; keep the two in step. */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L // uname, gmtime_r
#endif
#include "bench_output.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef _WIN32
#include <sys/utsname.h>
#endif
#if defined(__has_include)
#if __has_include("vki_git_commit.h")
#include "vki_git_commit.h" // generated at build time by cmake/git_commit.cmake
#endif
#endif
#ifndef VKI_GIT_COMMIT
#define VKI_GIT_COMMIT "unknown"
#endif
#ifndef VKI_BUILD_TYPE
#define VKI_BUILD_TYPE "unknown"
#endif

/* Nesting a suite's figures may have; deeper objects (only a hostile file has them) are not
 * read, so that the recursion stays bounded. */
#define MAX_DEPTH 16
#define PATH_MAX_LEN 512

static const char *const output_names[VKI_BENCH_OUTPUT_COUNT] = {
    [VKI_BENCH_OUTPUT_MD] = "md",       [VKI_BENCH_OUTPUT_CSV] = "csv",
    [VKI_BENCH_OUTPUT_JSON] = "json",   [VKI_BENCH_OUTPUT_JSONL] = "jsonl",
    [VKI_BENCH_OUTPUT_SQL] = "sql",
};

bool vki_bench_output_parse(const char *text, vki_bench_output *out)
{
    for (int f = VKI_BENCH_OUTPUT_MD; f < VKI_BENCH_OUTPUT_COUNT; f++)
        if (text && strcmp(text, output_names[f]) == 0) {
            *out = (vki_bench_output)f;
            return true;
        }
    return false;
}

static char progress_scope[128];

void vki_bench_progress_scope(const char *scope)
{
    snprintf(progress_scope, sizeof progress_scope, "%s", scope ? scope : "");
}

void vki_bench_progress(const char *suite, const char *case_name, uint32_t done, uint32_t total)
{
    // Only a person watching a terminal wants it; a pipe or a log file gets clean output.
    if (!vki_is_terminal(stderr)) return;
    if (done >= total) { // finished: clear the line for whatever prints next
        fprintf(stderr, "\r%78s\r", "");
        fflush(stderr);
        return;
    }
    char line[400]; // cut to the terminal's 78 columns below
    snprintf(line, sizeof line, "bench %.40s: %s%s%.200s%s%u of %u done", suite ? suite : "",
             progress_scope, progress_scope[0] ? ": " : "", case_name ? case_name : "",
             case_name ? ", " : "", done, total);
    // Padding overwrites a longer previous line without terminal escapes (Windows consoles).
    fprintf(stderr, "\r%-78.78s", line);
    fflush(stderr);
}

/* ---- The system block --------------------------------------------------------------------- */

/* The CPU's model name from /proc/cpuinfo (x86 "model name", others "cpu model" / "Hardware"),
 * $PROCESSOR_IDENTIFIER on Windows; "unknown" elsewhere. */
static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
#ifdef _WIN32
    const char *id = getenv("PROCESSOR_IDENTIFIER");
    if (id && id[0]) snprintf(buf, n, "%s", id);
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    static const char *const keys[] = {"model name", "cpu model", "Hardware", "Model"};
    for (int lines = 0; lines < 4096 && fgets(line, sizeof line, f); lines++) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        bool match = false;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            size_t len = strlen(keys[k]);
            match = match || (strncmp(line, keys[k], len) == 0 && (line[len] == ' ' || line[len] == '\t'));
        }
        if (!match) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t len = strlen(v);
        while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\r')) v[--len] = 0;
        if (len) {
            snprintf(buf, n, "%s", v);
            break;
        }
    }
    fclose(f);
#endif
}

static void os_name(char *buf, size_t n)
{
#ifdef _WIN32
    snprintf(buf, n, "Windows");
#else
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(buf, n, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(buf, n, "unknown");
#endif
}

/* The driver version as its vendor writes it: NVIDIA packs 10.8.8.6 bits, Intel's Windows
 * driver 18.14; the others use Vulkan's own encoding. */
static const char *driver_version_string(const vki_profile *p, char buf[32])
{
    uint32_t v = p->driver_version;
    if (p->vendor_id == 0x10de)
        snprintf(buf, 32, "%u.%u.%u.%u", v >> 22, (v >> 14) & 0xff, (v >> 6) & 0xff, v & 0x3f);
    else if (p->vendor_id == 0x8086 && p->driver_id == 5) // VK_DRIVER_ID_INTEL_PROPRIETARY_WINDOWS
        snprintf(buf, 32, "%u.%u", v >> 14, v & 0x3fff);
    else
        vki_version_string(v, buf);
    return buf;
}

static void add_text(cJSON *o, const char *key, const char *text)
{
    vki_json_add_text(o, key, text ? text : "", text ? strlen(text) : 0);
}

cJSON *vki_bench_system_json(const vki_profile *p, const char *narrow_text)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    char buf[256];
    add_text(o, "device_name", p->name);
    add_text(o, "device_vendor", vki_vendor_name(p->vendor));
    add_text(o, "device_type", vki_device_type_name(p->type));
    snprintf(buf, sizeof buf, "0x%04x", p->vendor_id);
    add_text(o, "vendor_id", buf);
    snprintf(buf, sizeof buf, "0x%04x", p->device_id);
    add_text(o, "device_id", buf);
    add_text(o, "driver_name", p->driver_name);
    add_text(o, "driver_info", p->driver_info);
    add_text(o, "driver_version", driver_version_string(p, buf));
    add_text(o, "api_version", vki_version_string(p->api_version, buf));
    add_text(o, "tuning", p->tuning.name);
    add_text(o, "narrowing", narrow_text ? narrow_text : "");
    add_text(o, "vkinfer_version", VKI_VERSION_STRING);
    add_text(o, "git_commit", VKI_GIT_COMMIT);
    add_text(o, "build_type", VKI_BUILD_TYPE);
    os_name(buf, sizeof buf);
    add_text(o, "os", buf);
    cpu_model(buf, sizeof buf);
    add_text(o, "cpu", buf);
    time_t now = time(NULL);
    struct tm tm;
#ifdef _WIN32
    bool have_tm = gmtime_s(&tm, &now) == 0;
#else
    bool have_tm = gmtime_r(&now, &tm) != NULL;
#endif
    if (!have_tm || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, sizeof buf, "unknown");
    add_text(o, "date", buf);
    if (cJSON_GetArraySize(o) != 17) { // one failed to add: out of host memory
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- Result rows -------------------------------------------------------------------------- */

/* Key endings that name a unit; a number under any other key is a parameter (a size, a count),
 * not a result. Longest match wins ("_tokens_per_s" over "_s"). */
typedef struct unit_suffix {
    const char *suffix, *unit;
} unit_suffix;

static const unit_suffix unit_suffixes[] = {
    {"tokens_per_s", "tokens/s"}, {"s_per_step", "s/step"}, {"it_per_s", "it/s"},
    {"gbs", "GB/s"},              {"gflops", "GFLOP/s"},    {"tflops", "TFLOP/s"},
    {"gops", "GOP/s"},            {"ns", "ns"},             {"us", "us"},
    {"ms", "ms"},                 {"s", "s"},               {"bytes", "bytes"},
    {"share", "fraction"},        {"pct", "%"},             {"percent", "%"},
    {"flops_per_byte", "flop/byte"},
};

/* The last word of a stem that says which statistic a figure is ("round_trip.median_us"). */
static const char *const stat_words[] = {"median", "mean", "avg", "min", "max", "p50", "p90", "p95", "p99"};

/* What a suite's plain figures (no statistic word in the key, no sd beside) are, where its
 * documentation says so: bench_ops.c times the median of its runs (its cases only);
 * bench_runtime.c keeps the best of its replays and transfers (the highest rate, the shortest
 * time). */
static const struct {
    const char *suite, *statistic;
    bool cases_only;
} suite_statistics[] = {
    {.suite = "ops", .statistic = "median", .cases_only = true},
    {.suite = "runtime", .statistic = "best"},
};

static bool ends_with_word(const char *key, const char *word, size_t *out_stem_len)
{
    size_t k = strlen(key), w = strlen(word);
    if (k == w && strcmp(key, word) == 0) {
        *out_stem_len = 0;
        return true;
    }
    if (k > w + 1 && key[k - w - 1] == '_' && strcmp(key + k - w, word) == 0) {
        *out_stem_len = k - w - 1;
        return true;
    }
    return false;
}

typedef struct flat_ctx {
    cJSON *results;
    const char *suite;
    const char *workload; // the suite's "workload" string; NULL: none
    bool ok; // false once out of host memory
} flat_ctx;

/* snprintf into a PATH_MAX_LEN buffer; a longer name (only a hostile file has one) is cut, and
 * then merely fails to match. */
static void name_printf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
}

static void join(char *out, const char *path, const char *name)
{
    if (path[0] && name[0])
        name_printf(out, "%s.%s", path, name);
    else
        name_printf(out, "%s", path[0] ? path : name);
}

static const cJSON *number_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v : NULL;
}

/* The spread reported beside `key` (stem + "_" + suffix) in obj, NULL when none: pp512_sd beside
 * pp512_tokens_per_s, or key_sd, sd_key, sd_us beside mean_us. */
static const cJSON *find_sd(const cJSON *obj, const char *key, const char *stem, const char *suffix,
                            const char *stat, bool primary)
{
    char name[PATH_MAX_LEN];
    const cJSON *v = NULL;
    name_printf(name, "%s_sd", key);
    if ((v = number_at(obj, name))) return v;
    name_printf(name, "sd_%s", key);
    if ((v = number_at(obj, name))) return v;
    if (stem[0] && !stat) {
        name_printf(name, "%s_sd", stem);
        if ((v = number_at(obj, name))) return v;
        name_printf(name, "%s_sd_%s", stem, suffix);
        if ((v = number_at(obj, name))) return v;
    }
    if (primary && (v = number_at(obj, "sd"))) return v; // a bare "sd": the object's first figure's
    if (stat && (strcmp(stat, "mean") == 0 || strcmp(stat, "avg") == 0)) {
        size_t core = strlen(stem) - strlen(stat);
        name_printf(name, "%.*ssd_%s", (int)core, stem, suffix);
        if ((v = number_at(obj, name))) return v;
    }
    return NULL;
}

/* One row from the number obj[key], unless its key names no unit. In a named case (an ops
 * case) the case is the test and the key the metric; elsewhere the key's stem joins the path
 * ("pp512_tokens_per_s" -> test pp512, metric tokens_per_s). */
static bool add_row(flat_ctx *c, const cJSON *obj, const char *path, bool in_case,
                    const cJSON *item, const cJSON *reps, bool primary)
{
    const char *key = item->string;
    const unit_suffix *u = NULL;
    size_t stem_len = 0;
    for (size_t i = 0; i < sizeof unit_suffixes / sizeof unit_suffixes[0]; i++) {
        size_t len = 0;
        if (ends_with_word(key, unit_suffixes[i].suffix, &len) &&
            (!u || strlen(unit_suffixes[i].suffix) > strlen(u->suffix))) {
            u = &unit_suffixes[i];
            stem_len = len;
        }
    }
    // A bare "bytes" is a size the case moved or the test used: a parameter, not a result.
    if (!u || !isfinite(item->valuedouble) || (stem_len == 0 && strcmp(key, "bytes") == 0)) return false;
    char stem[PATH_MAX_LEN];
    name_printf(stem, "%.*s", (int)stem_len, key);
    size_t dummy = 0;
    if (ends_with_word(stem, "sd", &dummy) || strncmp(stem, "sd_", 3) == 0) return false; // a spread
    const char *stat = NULL;
    size_t core_len = stem_len;
    for (size_t i = 0; i < sizeof stat_words / sizeof stat_words[0] && !stat; i++)
        if (ends_with_word(stem, stat_words[i], &core_len)) stat = stat_words[i];

    char test[PATH_MAX_LEN], metric[PATH_MAX_LEN], core[PATH_MAX_LEN];
    if (in_case) {
        name_printf(test, "%s", path);
        name_printf(metric, "%s", key);
    } else {
        name_printf(core, "%.*s", (int)(stat ? core_len : stem_len), key);
        join(test, path, core);
        if (stat)
            name_printf(metric, "%s_%s", stat, u->suffix);
        else
            name_printf(metric, "%s", u->suffix);
    }
    if (!test[0]) name_printf(test, "%s", key);

    const cJSON *sd = find_sd(obj, key, stem, u->suffix, stat, primary);
    const char *statistic = stat ? stat : sd ? "mean" : NULL;
    bool size = strcmp(u->unit, "bytes") == 0; // a size (memory held) is no statistic
    for (size_t i = 0; !size && i < sizeof suite_statistics / sizeof suite_statistics[0] && !statistic; i++)
        if (strcmp(c->suite, suite_statistics[i].suite) == 0 && (in_case || !suite_statistics[i].cases_only))
            statistic = suite_statistics[i].statistic;

    cJSON *row = cJSON_CreateObject();
    if (!row || !cJSON_AddItemToArray(c->results, row)) {
        cJSON_Delete(row);
        c->ok = false;
        return false;
    }
    add_text(row, "suite", c->suite);
    add_text(row, "test", test);
    add_text(row, "metric", metric);
    add_text(row, "unit", u->unit);
    cJSON_AddNumberToObject(row, "value", item->valuedouble);
    if (statistic)
        add_text(row, "statistic", statistic);
    else
        cJSON_AddNullToObject(row, "statistic");
    if (sd)
        cJSON_AddNumberToObject(row, "sd", sd->valuedouble);
    else
        cJSON_AddNullToObject(row, "sd");
    if (reps)
        cJSON_AddNumberToObject(row, "reps", reps->valuedouble);
    else
        cJSON_AddNullToObject(row, "reps");
    if (c->workload)
        add_text(row, "workload", c->workload);
    else
        cJSON_AddNullToObject(row, "workload");
    if (cJSON_GetArraySize(row) != 9) c->ok = false;
    return true;
}

static void flatten_obj(flat_ctx *c, const cJSON *obj, const char *path, bool in_case,
                        const cJSON *reps, int depth)
{
    if (depth > MAX_DEPTH || !c->ok) return;
    const char *reps_keys[] = {"reps", "samples", "repetitions"};
    for (size_t k = 0; k < sizeof reps_keys / sizeof reps_keys[0]; k++) {
        const cJSON *r = number_at(obj, reps_keys[k]);
        if (r) {
            reps = r;
            break;
        }
    }
    const cJSON *item;
    bool first = true;
    cJSON_ArrayForEach(item, obj) {
        if (!item->string) continue;
        char child[PATH_MAX_LEN];
        if (cJSON_IsNumber(item)) {
            if (add_row(c, obj, path, in_case, item, reps, first)) first = false;
        } else if (cJSON_IsObject(item)) {
            join(child, path, item->string);
            flatten_obj(c, item, child, in_case, reps, depth + 1);
        } else if (cJSON_IsArray(item)) {
            int i = 0;
            const cJSON *el;
            cJSON_ArrayForEach(el, item) {
                if (cJSON_IsObject(el)) {
                    const cJSON *name = cJSON_GetObjectItemCaseSensitive(el, "name");
                    const cJSON *at = number_at(el, "depth"), *n_gen = number_at(el, "n_gen");
                    if (cJSON_IsString(name) && name->valuestring[0]) {
                        join(child, path, name->valuestring); // a case: its name is the test
                        flatten_obj(c, el, child, true, reps, depth + 1);
                    } else if (at && n_gen && at->valuedouble >= 0 && n_gen->valuedouble >= 0 &&
                               at->valuedouble < 1e12 && n_gen->valuedouble < 1e12) {
                        // bench llm -d: decode of n_gen tokens after `depth`, llama-bench's
                        // "tg128 @ d512", as test tg128_d512 at the suite's level.
                        char test[PATH_MAX_LEN];
                        name_printf(test, "tg%.0f_d%.0f", n_gen->valuedouble, at->valuedouble);
                        join(child, path, test);
                        flatten_obj(c, el, child, true, reps, depth + 1);
                    } else {
                        // Named by its size where it has one, so that a run with other sizes
                        // does not match it by position.
                        const cJSON *size = number_at(el, "bytes");
                        char index[PATH_MAX_LEN];
                        if (size && size->valuedouble >= 0 && size->valuedouble < 1e18)
                            name_printf(index, "%s.%.0f", item->string, size->valuedouble);
                        else
                            name_printf(index, "%s.%d", item->string, i);
                        join(child, path, index);
                        flatten_obj(c, el, child, in_case, reps, depth + 1);
                    }
                }
                i++;
            }
        }
    }
}

bool vki_bench_results_flatten(const cJSON *suites, cJSON *results)
{
    flat_ctx c = {.results = results, .ok = true};
    const cJSON *suite;
    cJSON_ArrayForEach(suite, suites) {
        if (!suite->string || !cJSON_IsObject(suite)) continue;
        c.suite = suite->string;
        c.workload = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(suite, "workload"));
        flatten_obj(&c, suite, "", false, NULL, 0);
    }
    return c.ok;
}

bool vki_bench_results_add(cJSON *root)
{
    cJSON *results = cJSON_AddArrayToObject(root, "results");
    return results &&
           vki_bench_results_flatten(cJSON_GetObjectItemCaseSensitive(root, "suites"), results);
}

/* ---- Formats ------------------------------------------------------------------------------ */

/* Text from a result made safe for a line-based format: well-formed UTF-8 (vki_utf8_sanitize)
 * with control characters as spaces, so that a name can never break a row. Free with free(). */
static char *clean_text(const char *s)
{
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    char *out = malloc(3 * n + 1);
    if (!out) return NULL;
    size_t len = vki_utf8_sanitize(s, n, out);
    out[len] = 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = ' ';
    return out;
}

typedef enum quoting { QUOTE_CSV, QUOTE_SQL, QUOTE_MD } quoting;

/* Writes a string field: csv "..." with "" inside (RFC 4180), sql '...' with '', md with \|. */
static bool put_text(FILE *out, const char *s, quoting q)
{
    char *t = clean_text(s ? s : "");
    if (!t) return false;
    const char quote = q == QUOTE_CSV ? '"' : q == QUOTE_SQL ? '\'' : 0;
    if (quote) fputc(quote, out);
    for (const char *p = t; *p; p++) {
        if (quote && *p == quote) fputc(quote, out);
        if (q == QUOTE_MD && (*p == '|' || *p == '\\')) fputc('\\', out);
        fputc(*p, out);
    }
    if (quote) fputc(quote, out);
    free(t);
    return true;
}

bool vki_bench_put_md(FILE *out, const char *text) { return put_text(out, text, QUOTE_MD); }
bool vki_bench_put_csv(FILE *out, const char *text) { return put_text(out, text, QUOTE_CSV); }

/* A field of any JSON type: strings quoted, numbers to 10 significant digits (more than any
 * timing here resolves), null and anything else empty (csv) or NULL (sql). */
static bool put_field(FILE *out, const cJSON *v, quoting q)
{
    if (cJSON_IsString(v)) return put_text(out, v->valuestring, q);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
        fprintf(out, "%.10g", v->valuedouble);
    else if (cJSON_IsBool(v))
        fputs(cJSON_IsTrue(v) ? "1" : "0", out);
    else if (q == QUOTE_SQL)
        fputs("NULL", out);
    return true;
}

static const char *const row_columns[] = {"suite",     "test", "metric", "unit",    "value",
                                          "statistic", "sd",   "reps",   "workload"};
#define ROW_COLUMNS (sizeof row_columns / sizeof row_columns[0])

/* The columns of the flat formats (csv, jsonl, sql): the schema, the row's own fields, then the
 * system block's, in its order. */
typedef struct columns {
    const cJSON *system; // object of strings
    const cJSON *schema; // string
} columns;

static const cJSON *column_value(const columns *cols, const cJSON *row, size_t i, const char **out_name)
{
    if (i == 0) {
        *out_name = "schema";
        return cols->schema;
    }
    if (i <= ROW_COLUMNS) {
        *out_name = row_columns[i - 1];
        return row ? cJSON_GetObjectItemCaseSensitive(row, row_columns[i - 1]) : NULL;
    }
    const cJSON *s = cJSON_GetArrayItem(cols->system, (int)(i - 1 - ROW_COLUMNS));
    *out_name = s ? s->string : NULL;
    return s;
}

static size_t column_count(const columns *cols)
{
    return 1 + ROW_COLUMNS + (size_t)cJSON_GetArraySize(cols->system);
}

void vki_bench_put_number(FILE *out, double v, bool whole)
{
    if (whole || fabs(v) >= 1e6) {
        fprintf(out, "%.0f", v);
        return;
    }
    int decimals = v == 0 ? 2 : 3 - (int)floor(log10(fabs(v)));
    if (decimals < 2) decimals = 2;
    if (decimals > 6) decimals = 6;
    fprintf(out, "%.*f", decimals, v);
}

static const char *string_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static bool print_md(FILE *out, const cJSON *system, const cJSON *results)
{
    bool ok = true;
    fputs("- vkinfer ", out);
    ok = ok && put_text(out, string_at(system, "vkinfer_version"), QUOTE_MD);
    fputs(" (git ", out);
    ok = ok && put_text(out, string_at(system, "git_commit"), QUOTE_MD);
    fputs(", ", out);
    ok = ok && put_text(out, string_at(system, "build_type"), QUOTE_MD);
    fputs("), schema " VKI_BENCH_SCHEMA ", ", out);
    ok = ok && put_text(out, string_at(system, "date"), QUOTE_MD);
    static const char *const lines[][7] = {
        {"device: ", "device_name", " (", "device_type", ", ", "device_vendor", ")"},
        {"driver: ", "driver_name", " ", "driver_info", ", version ", "driver_version", ""},
        {"Vulkan ", "api_version", ", tuning ", "tuning", ", narrowing: ", "narrowing", ""},
        {"host: ", "os", ", CPU: ", "cpu", "", NULL, ""},
    };
    for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
        fputs("\n- ", out);
        for (size_t k = 0; k < 7; k += 2) {
            fputs(lines[l][k], out);
            if (k + 1 < 7 && lines[l][k + 1]) {
                const char *v = string_at(system, lines[l][k + 1]);
                ok = ok && put_text(out, v[0] ? v : "none", QUOTE_MD);
            }
        }
    }
    fputs("\n\n| suite | test | metric | value | unit | statistic | reps | workload |\n"
          "| --- | --- | --- | ---: | --- | --- | ---: | --- |\n", out);
    const cJSON *row;
    cJSON_ArrayForEach(row, results) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(row, "value");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(row, "sd");
        const cJSON *reps = cJSON_GetObjectItemCaseSensitive(row, "reps");
        const char *unit = string_at(row, "unit");
        bool whole = strcmp(unit, "bytes") == 0;
        fputs("| ", out);
        ok = ok && put_text(out, string_at(row, "suite"), QUOTE_MD);
        fputs(" | ", out);
        ok = ok && put_text(out, string_at(row, "test"), QUOTE_MD);
        fputs(" | ", out);
        ok = ok && put_text(out, string_at(row, "metric"), QUOTE_MD);
        fputs(" | ", out);
        if (cJSON_IsNumber(value)) vki_bench_put_number(out, value->valuedouble, whole);
        if (cJSON_IsNumber(sd)) {
            fputs(" ± ", out);
            vki_bench_put_number(out, sd->valuedouble, whole);
        }
        fputs(" | ", out);
        ok = ok && put_text(out, unit, QUOTE_MD);
        fputs(" | ", out);
        ok = ok && put_text(out, string_at(row, "statistic"), QUOTE_MD);
        fputs(" | ", out);
        if (cJSON_IsNumber(reps)) fprintf(out, "%.0f", reps->valuedouble);
        fputs(" | ", out);
        ok = ok && put_text(out, string_at(row, "workload"), QUOTE_MD);
        fputs(" |\n", out);
    }
    return ok;
}

static bool print_csv(FILE *out, const columns *cols, const cJSON *results)
{
    bool ok = true;
    size_t n = column_count(cols);
    const char *name = NULL;
    for (size_t i = 0; i < n; i++) {
        column_value(cols, NULL, i, &name);
        if (i) fputc(',', out);
        ok = ok && put_text(out, name, QUOTE_CSV);
    }
    fputc('\n', out);
    const cJSON *row;
    cJSON_ArrayForEach(row, results) {
        for (size_t i = 0; i < n; i++) {
            if (i) fputc(',', out);
            ok = ok && put_field(out, column_value(cols, row, i, &name), QUOTE_CSV);
        }
        fputc('\n', out);
    }
    return ok;
}

static bool print_sql(FILE *out, const columns *cols, const cJSON *results)
{
    bool ok = true;
    size_t n = column_count(cols);
    const char *name = NULL;
    // Column names are the schema's own snake_case keys, never text from a result.
    fputs("CREATE TABLE IF NOT EXISTS vkinfer_bench (\n", out);
    for (size_t i = 0; i < n; i++) {
        column_value(cols, NULL, i, &name);
        bool real = strcmp(name, "value") == 0 || strcmp(name, "sd") == 0;
        bool integer = strcmp(name, "reps") == 0;
        fprintf(out, "  %s %s%s\n", name, real ? "REAL" : integer ? "INTEGER" : "TEXT",
                i + 1 < n ? "," : "");
    }
    fputs(");\n\n", out);
    const cJSON *row;
    cJSON_ArrayForEach(row, results) {
        fputs("INSERT INTO vkinfer_bench (", out);
        for (size_t i = 0; i < n; i++) {
            column_value(cols, NULL, i, &name);
            fprintf(out, "%s%s", i ? ", " : "", name);
        }
        fputs(") VALUES (", out);
        for (size_t i = 0; i < n; i++) {
            if (i) fputs(", ", out);
            ok = ok && put_field(out, column_value(cols, row, i, &name), QUOTE_SQL);
        }
        fputs(");\n", out);
    }
    return ok;
}

static bool print_jsonl(FILE *out, const columns *cols, const cJSON *results)
{
    size_t n = column_count(cols);
    const cJSON *row;
    cJSON_ArrayForEach(row, results) {
        cJSON *line = cJSON_CreateObject();
        if (!line) return false;
        for (size_t i = 0; i < n; i++) {
            const char *name = NULL;
            const cJSON *v = column_value(cols, row, i, &name);
            cJSON *copy = v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
            if (!copy || !cJSON_AddItemToObject(line, name, copy)) {
                cJSON_Delete(copy);
                cJSON_Delete(line);
                return false;
            }
        }
        char *text = cJSON_PrintUnformatted(line); // escapes newlines: one object per line
        cJSON_Delete(line);
        if (!text) return false;
        fputs(text, out);
        fputc('\n', out);
        cJSON_free(text);
    }
    return true;
}

int vki_bench_output_print(const cJSON *root, vki_bench_output f, FILE *out)
{
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(root, "system");
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    columns cols = {.system = system, .schema = cJSON_GetObjectItemCaseSensitive(root, "schema")};
    bool ok = true;
    switch (f) {
    case VKI_BENCH_OUTPUT_JSON: {
        char *text = cJSON_Print(root);
        if (!text) return vki_app_failf("printing JSON: out of host memory");
        fputs(text, out);
        fputc('\n', out);
        cJSON_free(text);
        break;
    }
    case VKI_BENCH_OUTPUT_MD: ok = print_md(out, system, results); break;
    case VKI_BENCH_OUTPUT_CSV: ok = print_csv(out, &cols, results); break;
    case VKI_BENCH_OUTPUT_SQL: ok = print_sql(out, &cols, results); break;
    case VKI_BENCH_OUTPUT_JSONL: ok = print_jsonl(out, &cols, results); break;
    default: return vki_app_failf("bench: no such output format");
    }
    fflush(out);
    return ok ? VKI_EXIT_OK : vki_app_failf("bench: printing the results: out of host memory");
}
