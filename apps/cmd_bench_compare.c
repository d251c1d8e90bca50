/* `vkinfer bench compare A.json B.json ...`: one table of the results every file holds, with
 * each file's value and its ratio to the first file's, marked where the runs' spread makes the
 * difference unclear (the mean ± sd ranges overlap). Reads our result files (schema
 * vkinfer-bench/1, docs/bench/SCHEMA.md) and llama-bench's `-o json` output, whose pp/tg tests
 * become llm pp<N> / tg<N> rows, so that a vkinfer run and a llama.cpp run sit side by side.
 *
 * The files come from anywhere: each read is size-limited, the JSON strict (nothing after the
 * value, no NUL), every field checked before use, and a bad file named in the message. */
#include "bench_output.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (64u << 20) // a result file of even every op is well under a MiB
#define MAX_ROWS 100000            // per file
#define MAX_FILES 16

typedef struct cmp_key {
    const char *suite, *test, *metric;
    const cJSON *row;
    int index; // in the file, for the first file's order and for duplicates
} cmp_key;

typedef struct cmp_file {
    const char *path;
    char label[768];
    cJSON *rows;   // normalised rows: {suite, test, metric, unit, value, sd}; owned
    cmp_key *keys; // sorted by (suite, test, metric), duplicates removed
    size_t n_keys;
} cmp_file;

static void compare_usage(FILE *f)
{
    fprintf(f, "usage: vkinfer bench compare [-o md|csv|json] FILE FILE... (at most %d)\n\n"
               "FILE: a result file of `vkinfer bench -o json` or -o jsonl, or of llama-bench\n"
               "-o json or -o jsonl. Prints the results every file holds, each file's value (± sd where\n"
               "the run gave one) and its ratio to the first file's; '?' marks a ratio whose\n"
               "mean ± sd ranges overlap: within the runs' spread. -o json (or --json): the same\n"
               "as one JSON object (files; rows with values, sds, ratios, unclear, workloads).\n"
               "-o csv: one record per row: suite, test, metric, unit, then A, A_sd, B, B_sd,\n"
               "B/A, B/A_unclear, ... (docs/bench/SCHEMA.md).\n",
            MAX_FILES);
}

/* The whole file, NUL-terminated, at most MAX_FILE_BYTES; NULL after printing why. */
static char *read_all(const char *path, size_t *out_n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        vki_app_failf("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                vki_app_failf("%s: larger than %u MiB, not a result file", path,
                              MAX_FILE_BYTES >> 20);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap *= 2;
            char *grown = realloc(buf, cap + 1);
            if (!grown) free(buf);
            buf = grown;
            if (!buf) break;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (!buf) {
        vki_app_failf("%s: out of host memory", path);
        return NULL;
    }
    if (err) {
        free(buf);
        vki_app_failf("%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    *out_n = n;
    return buf;
}

static const char *str_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool num_at(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return false;
    *out = v->valuedouble;
    return true;
}

/* Appends a normalised row; false when out of host memory. */
static bool add_row(cJSON *rows, const char *suite, const char *test, const char *metric,
                    const char *unit, double value, bool has_sd, double sd, const char *workload)
{
    cJSON *r = cJSON_CreateObject();
    if (!r || !cJSON_AddItemToArray(rows, r)) {
        cJSON_Delete(r);
        return false;
    }
    return cJSON_AddStringToObject(r, "suite", suite) && cJSON_AddStringToObject(r, "test", test) &&
           cJSON_AddStringToObject(r, "metric", metric) &&
           cJSON_AddStringToObject(r, "unit", unit ? unit : "") &&
           cJSON_AddNumberToObject(r, "value", value) &&
           (has_sd ? cJSON_AddNumberToObject(r, "sd", sd) : cJSON_AddNullToObject(r, "sd")) &&
           (workload ? cJSON_AddStringToObject(r, "workload", workload) != NULL
                     : cJSON_AddNullToObject(r, "workload") != NULL);
}

/* Our rows: root.results (schema vkinfer-bench/1), checked field by field. */
static int read_ours(cmp_file *f, const cJSON *root)
{
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    if (!results) { // written before the rows existed: flatten the suites as the writer would
        const cJSON *suites = cJSON_GetObjectItemCaseSensitive(root, "suites");
        if (!cJSON_IsObject(suites))
            return vki_app_failf("%s: neither \"results\" nor \"suites\"", f->path);
        cJSON *flat = cJSON_CreateArray();
        if (!flat || !vki_bench_results_flatten(suites, flat)) {
            cJSON_Delete(flat);
            return vki_app_failf("%s: out of host memory", f->path);
        }
        int code = VKI_EXIT_OK;
        cJSON *wrapper = cJSON_CreateObject();
        if (!wrapper || !cJSON_AddItemToObject(wrapper, "results", flat)) {
            cJSON_Delete(flat);
            code = vki_app_failf("%s: out of host memory", f->path);
        } else {
            code = read_ours(f, wrapper);
        }
        cJSON_Delete(wrapper);
        return code;
    }
    if (!cJSON_IsArray(results)) return vki_app_failf("%s: \"results\" is not an array", f->path);
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results) {
        const char *suite = str_at(r, "suite"), *test = str_at(r, "test"), *metric = str_at(r, "metric");
        const char *unit = str_at(r, "unit");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(r, "sd");
        const cJSON *workload = cJSON_GetObjectItemCaseSensitive(r, "workload");
        double value = 0;
        bool sd_ok = !sd || cJSON_IsNull(sd) || (cJSON_IsNumber(sd) && isfinite(sd->valuedouble) && sd->valuedouble >= 0);
        bool workload_ok = !workload || cJSON_IsNull(workload) || cJSON_IsString(workload);
        if (!cJSON_IsObject(r) || !suite || !test || !metric || !num_at(r, "value", &value) || !sd_ok ||
            !workload_ok)
            return vki_app_failf("%s: results[%d] is not a result row (strings suite, "
                                 "test, metric; number value; sd a number >= 0 or null; workload "
                                 "a string or null)", f->path, i);
        if (++i > MAX_ROWS) return vki_app_failf("%s: more than %d results", f->path, MAX_ROWS);
        if (!add_row(f->rows, suite, test, metric, unit, value, cJSON_IsNumber(sd), sd ? sd->valuedouble : 0,
                     cJSON_GetStringValue(workload)))
            return vki_app_failf("%s: out of host memory", f->path);
    }
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(root, "system");
    const cJSON *device = cJSON_GetObjectItemCaseSensitive(root, "device");
    const char *name = str_at(system, "device_name") ? str_at(system, "device_name") : str_at(device, "name");
    const char *version = str_at(system, "vkinfer_version") ? str_at(system, "vkinfer_version")
                                                             : str_at(root, "vkinfer_version");
    const char *commit = str_at(system, "git_commit"), *date = str_at(system, "date");
    snprintf(f->label, sizeof f->label, "vkinfer %s%s%s on %s%s%s", version ? version : "?",
             commit ? " " : "", commit ? commit : "", name ? name : "an unnamed device",
             date ? ", " : "", date ? date : "");
    return VKI_EXIT_OK;
}

/* llama-bench -o json: an array of tests {n_prompt, n_gen, n_depth?, avg_ts, stddev_ts, ...};
 * prompt-only tests become pp<N>, generation-only tg<N>, both pp<N>+tg<M>, each _d<D> after a
 * depth, all in suite llm as tokens/s. */
static int read_llama_bench(cmp_file *f, const cJSON *root)
{
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, root) {
        double n_prompt = 0, n_gen = 0, depth = 0, avg = 0, sd = 0;
        bool ints = cJSON_IsObject(t) && num_at(t, "n_prompt", &n_prompt) && num_at(t, "n_gen", &n_gen);
        ints = ints && n_prompt >= 0 && n_gen >= 0 && n_prompt <= 1e9 && n_gen <= 1e9 &&
               n_prompt == floor(n_prompt) && n_gen == floor(n_gen) && n_prompt + n_gen > 0;
        if (cJSON_GetObjectItemCaseSensitive(t, "n_depth"))
            ints = ints && num_at(t, "n_depth", &depth) && depth >= 0 && depth <= 1e9 && depth == floor(depth);
        if (!ints || !num_at(t, "avg_ts", &avg))
            return vki_app_failf("%s: entry %d is not a llama-bench test (numbers n_prompt, "
                                 "n_gen, avg_ts)", f->path, i);
        bool has_sd = num_at(t, "stddev_ts", &sd) && sd >= 0;
        if (++i > MAX_ROWS) return vki_app_failf("%s: more than %d tests", f->path, MAX_ROWS);
        char test[96];
        int len = n_gen == 0    ? snprintf(test, sizeof test, "pp%.0f", n_prompt)
                  : n_prompt == 0 ? snprintf(test, sizeof test, "tg%.0f", n_gen)
                                  : snprintf(test, sizeof test, "pp%.0f+tg%.0f", n_prompt, n_gen);
        if (depth > 0) snprintf(test + len, sizeof test - (size_t)len, "_d%.0f", depth);
        if (!add_row(f->rows, "llm", test, "tokens_per_s", "tokens/s", avg, has_sd, sd, NULL))
            return vki_app_failf("%s: out of host memory", f->path);
    }
    if (i == 0) return vki_app_failf("%s: an empty array, no tests", f->path);
    const cJSON *first = cJSON_GetArrayItem(root, 0);
    const char *commit = str_at(first, "build_commit"), *backends = str_at(first, "backends");
    const char *gpu = str_at(first, "gpu_info"), *model = str_at(first, "model_type");
    snprintf(f->label, sizeof f->label, "llama.cpp %s%s%s%s on %s%s%s", commit ? commit : "?",
             backends ? " (" : "", backends ? backends : "", backends ? ")" : "",
             gpu && gpu[0] ? gpu : "an unnamed device", model ? ", " : "", model ? model : "");
    return VKI_EXIT_OK;
}

static int key_cmp(const void *a, const void *b)
{
    const cmp_key *x = a, *y = b;
    int c = strcmp(x->suite, y->suite);
    if (!c) c = strcmp(x->test, y->test);
    if (!c) c = strcmp(x->metric, y->metric);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Sorts the rows' keys for lookup; a repeated test keeps its first row. */
static int index_rows(cmp_file *f)
{
    size_t n = (size_t)cJSON_GetArraySize(f->rows);
    f->keys = calloc(n ? n : 1, sizeof *f->keys);
    if (!f->keys) return vki_app_failf("%s: out of host memory", f->path);
    const cJSON *r;
    int i = 0;
    cJSON_ArrayForEach(r, f->rows) {
        f->keys[i] = (cmp_key){str_at(r, "suite"), str_at(r, "test"), str_at(r, "metric"), r, i};
        i++;
    }
    qsort(f->keys, n, sizeof *f->keys, key_cmp);
    size_t kept = 0, dropped = 0;
    for (size_t k = 0; k < n; k++) {
        if (kept && strcmp(f->keys[kept - 1].suite, f->keys[k].suite) == 0 &&
            strcmp(f->keys[kept - 1].test, f->keys[k].test) == 0 &&
            strcmp(f->keys[kept - 1].metric, f->keys[k].metric) == 0) {
            dropped++;
            continue;
        }
        f->keys[kept++] = f->keys[k];
    }
    f->n_keys = kept;
    if (dropped)
        fprintf(stderr, "vkinfer: compare: %s: %zu repeated tests (another model or setting?): "
                        "the first of each is compared\n", f->path, dropped);
    return VKI_EXIT_OK;
}

static const cJSON *find_row(const cmp_file *f, const cJSON *like)
{
    cmp_key key = {str_at(like, "suite"), str_at(like, "test"), str_at(like, "metric"), NULL, -1};
    size_t lo = 0, hi = f->n_keys;
    while (lo < hi) { // the first key not less than (suite, test, metric), index -1 below all
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(&f->keys[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == f->n_keys) return NULL;
    const cmp_key *k = &f->keys[lo];
    bool same = strcmp(k->suite, key.suite) == 0 && strcmp(k->test, key.test) == 0 &&
                strcmp(k->metric, key.metric) == 0;
    return same ? k->row : NULL;
}

/* JSON Lines (llama-bench -o jsonl, ours -o jsonl): each non-blank line one strict JSON object,
 * returned as an array. NULL when a line is not one; *out_bad_line says which (1-based). */
static cJSON *parse_lines(char *text, size_t *out_bad_line)
{
    cJSON *all = cJSON_CreateArray();
    size_t line = 0;
    for (char *at = text; all && *at;) {
        char *nl = strchr(at, '\n'), *next = nl ? nl + 1 : at + strlen(at);
        if (nl) *nl = 0; // cut the line out; the text is not used again
        line++;
        if (at[strspn(at, " \t\r")]) {
            const char *end = NULL;
            cJSON *o = cJSON_ParseWithOpts(at, &end, true);
            if (!cJSON_IsObject(o) || !cJSON_AddItemToArray(all, o)) {
                cJSON_Delete(o);
                cJSON_Delete(all);
                *out_bad_line = line;
                return NULL;
            }
        }
        at = next;
    }
    if (all && cJSON_GetArraySize(all) == 0) {
        cJSON_Delete(all);
        *out_bad_line = 1;
        return NULL;
    }
    return all;
}

/* The JSON value of the file at path, strictly parsed (or its JSON Lines as an array); NULL
 * after printing why. */
static cJSON *parse_file(const char *path);

/* parse_file's work on text[0, n) (NUL-terminated there, cut into lines for JSON Lines), which it
 * frees. */
static cJSON *parse_text(const char *path, char *text, size_t n)
{
    if (strlen(text) != n) {
        free(text);
        vki_app_failf("%s: holds a NUL byte, not JSON text", path);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, true); // nothing but space after the value
    if (!root) {
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0, line = 1;
        for (size_t k = 0; k < at; k++) line += text[k] == '\n';
        size_t bad_line = 0;
        // The value ended and a second began on a later line: JSON Lines, perhaps.
        if (line > 1 && text[0] == '{' && (root = parse_lines(text, &bad_line)) == NULL && bad_line > 1)
            vki_app_failf("%s: line %zu is not a JSON object (JSON Lines)", path, bad_line);
        else if (!root)
            vki_app_failf("%s: not valid JSON (line %zu, byte %zu)", path, line, at);
    }
    free(text);
    return root;
}

static cJSON *parse_file(const char *path)
{
    size_t n = 0;
    char *text = read_all(path, &n);
    return text ? parse_text(path, text, n) : NULL;
}

/* VKI_EXIT_OK when root carries a schema this build reads; else prints why. */
static int check_schema(const char *path, const cJSON *root)
{
    const char *schema = str_at(root, "schema");
    char *rest = NULL;
    unsigned long major = 0;
    if (schema && strncmp(schema, "vkinfer-bench/", 14) == 0) major = strtoul(schema + 14, &rest, 10);
    if (major == 0 || !rest || (*rest && *rest != '.'))
        return vki_app_failf("%s: schema is not vkinfer-bench/N", path);
    if (major > VKI_BENCH_SCHEMA_MAJOR)
        return vki_app_failf("%s: schema vkinfer-bench/%lu is newer than this vkinfer "
                             "reads (" VKI_BENCH_SCHEMA ")", path, major);
    return VKI_EXIT_OK;
}

/* The rows and label of a parsed file (root, which it frees) into f. */
static int read_root(cmp_file *f, cJSON *root)
{
    int code = VKI_EXIT_OK;
    f->rows = cJSON_CreateArray();
    if (!f->rows) {
        code = vki_app_failf("%s: out of host memory", f->path);
    } else if (cJSON_IsArray(root) && str_at(cJSON_GetArrayItem(root, 0), "schema")) {
        // Our -o jsonl: each line a row with the schema and the system's fields beside it.
        const cJSON *line;
        cJSON_ArrayForEach(line, root) {
            if (code == VKI_EXIT_OK) code = check_schema(f->path, line);
        }
        cJSON *doc = cJSON_CreateObject(), *system = cJSON_Duplicate(cJSON_GetArrayItem(root, 0), true);
        if (!doc || !system || !cJSON_AddItemToObject(doc, "system", system)) {
            cJSON_Delete(system);
            if (code == VKI_EXIT_OK) code = vki_app_failf("%s: out of host memory", f->path);
        } else if (code == VKI_EXIT_OK) {
            cJSON_AddItemReferenceToObject(doc, "results", root); // borrowed: root outlives doc
            code = read_ours(f, doc);
        }
        cJSON_Delete(doc);
    } else if (cJSON_IsArray(root)) {
        code = read_llama_bench(f, root);
    } else if (cJSON_GetObjectItemCaseSensitive(root, "schema")) {
        code = check_schema(f->path, root);
        if (code == VKI_EXIT_OK) code = read_ours(f, root);
    } else if (cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "suites")) {
        code = read_ours(f, root);
    } else {
        code = vki_app_failf("%s: neither a vkinfer bench result (-o json, jsonl) "
                             "nor llama-bench -o json / jsonl", f->path);
    }
    cJSON_Delete(root);
    return code;
}

static int load(cmp_file *f)
{
    cJSON *root = parse_file(f->path);
    if (!root) return VKI_EXIT_FAILURE;
    int code = read_root(f, root);
    if (code == VKI_EXIT_OK) code = index_rows(f);
    return code;
}

int vki_bench_result_read(const char *name, const char *text, size_t n, cJSON **out_rows,
                          char *label, size_t label_size)
{
    *out_rows = NULL;
    if (n > MAX_FILE_BYTES) return vki_app_failf("%s: larger than %u MiB, not a result file", name, MAX_FILE_BYTES >> 20);
    char *copy = malloc(n + 1);
    if (!copy) return vki_app_failf("%s: out of host memory", name);
    if (n) memcpy(copy, text, n);
    copy[n] = 0;
    cJSON *root = parse_text(name, copy, n);
    if (!root) return VKI_EXIT_FAILURE;
    cmp_file f = {.path = name};
    int code = read_root(&f, root);
    if (code != VKI_EXIT_OK) {
        cJSON_Delete(f.rows);
        return code;
    }
    *out_rows = f.rows;
    if (label && label_size) snprintf(label, label_size, "%s", f.label);
    return VKI_EXIT_OK;
}

/* The comparison as JSON: {"schema", "files": [{"path", "label"}], "rows": [{suite, test,
 * metric, unit, "values": [...], "sds": [... or null], "ratios": [null, B/A, ...],
 * "unclear": [false, ...]}]}: what -o json prints and the markdown table is drawn from. */
static cJSON *build_comparison(const cmp_file *files, int n, size_t *out_mixed)
{
    cJSON *doc = cJSON_CreateObject(), *list = NULL, *rows = NULL;
    if (!doc || !cJSON_AddStringToObject(doc, "schema", "vkinfer-bench-compare/1") ||
        !(list = cJSON_AddArrayToObject(doc, "files")) || !(rows = cJSON_AddArrayToObject(doc, "rows")))
        goto oom;
    for (int i = 0; i < n; i++) {
        cJSON *f = cJSON_CreateObject();
        if (!f || !cJSON_AddItemToArray(list, f)) {
            cJSON_Delete(f);
            goto oom;
        }
        if (!vki_json_add_text(f, "path", files[i].path, strlen(files[i].path)) ||
            !vki_json_add_text(f, "label", files[i].label, strlen(files[i].label)))
            goto oom;
    }
    const cJSON *row;
    // The first file's order: the order its suites ran in.
    cJSON_ArrayForEach(row, files[0].rows) {
        const cJSON *match[MAX_FILES] = {row};
        bool all = find_row(&files[0], row) == row; // not a repeat
        for (int i = 1; i < n && all; i++) all = (match[i] = find_row(&files[i], row)) != NULL;
        if (!all) continue;
        cJSON *out = cJSON_CreateObject(), *values = NULL, *sds = NULL, *ratios = NULL, *unclear = NULL;
        cJSON *workloads = NULL;
        if (!out || !cJSON_AddItemToArray(rows, out)) {
            cJSON_Delete(out);
            goto oom;
        }
        const char *cols[] = {"suite", "test", "metric", "unit"};
        for (size_t c = 0; c < 4; c++) {
            const char *v = str_at(row, cols[c]);
            if (!vki_json_add_text(out, cols[c], v ? v : "", v ? strlen(v) : 0)) goto oom;
        }
        if (!(values = cJSON_AddArrayToObject(out, "values")) || !(sds = cJSON_AddArrayToObject(out, "sds")) ||
            !(ratios = cJSON_AddArrayToObject(out, "ratios")) || !(unclear = cJSON_AddArrayToObject(out, "unclear")) ||
            !(workloads = cJSON_AddArrayToObject(out, "workloads")))
            goto oom;
        const char *wa = str_at(row, "workload");
        double a = 0, sa = 0;
        num_at(row, "value", &a);
        bool a_sd = num_at(row, "sd", &sa);
        for (int i = 0; i < n; i++) {
            double b = 0, sb = 0;
            num_at(match[i], "value", &b);
            bool b_sd = num_at(match[i], "sd", &sb);
            // Unclear: the runs' mean ± sd ranges overlap, so the spread covers the gap.
            bool u = i > 0 && a_sd && b_sd && a - sa <= b + sb && b - sb <= a + sa;
            if (!cJSON_AddItemToArray(values, cJSON_CreateNumber(b)) ||
                !cJSON_AddItemToArray(sds, b_sd ? cJSON_CreateNumber(sb) : cJSON_CreateNull()) ||
                !cJSON_AddItemToArray(ratios, i > 0 && a != 0 ? cJSON_CreateNumber(b / a) : cJSON_CreateNull()) ||
                !cJSON_AddItemToArray(unclear, cJSON_CreateBool(u)))
                goto oom;
            const char *wb = str_at(match[i], "workload");
            if (!cJSON_AddItemToArray(workloads, wb ? cJSON_CreateString(wb) : cJSON_CreateNull())) goto oom;
            if ((wa == NULL) != (wb == NULL) || (wa && wb && strcmp(wa, wb) != 0)) (*out_mixed)++;
        }
    }
    return doc;
oom:
    cJSON_Delete(doc);
    return NULL;
}

static void print_comparison_md(const cJSON *doc, int n)
{
    const cJSON *f, *row;
    int i = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(doc, "files")) {
        printf("- %c: ", 'A' + i++);
        vki_bench_put_md(stdout, str_at(f, "path"));
        fputs(": ", stdout);
        vki_bench_put_md(stdout, str_at(f, "label"));
        fputc('\n', stdout);
    }
    printf("\n| suite | test | metric | unit | A |");
    for (i = 1; i < n; i++) printf(" %c | %c/A |", 'A' + i, 'A' + i);
    printf("\n| --- | --- | --- | --- | ---: |");
    for (i = 1; i < n; i++) printf(" ---: | ---: |");
    putchar('\n');
    bool unclear_any = false;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(doc, "rows")) {
        fputs("| ", stdout);
        const char *cols[] = {"suite", "test", "metric", "unit"};
        for (size_t c = 0; c < 4; c++) {
            vki_bench_put_md(stdout, str_at(row, cols[c]));
            fputs(" | ", stdout);
        }
        bool whole = strcmp(str_at(row, "unit"), "bytes") == 0;
        for (i = 0; i < n; i++) {
            const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "values"), i);
            const cJSON *sd = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "sds"), i);
            const cJSON *ratio = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "ratios"), i);
            bool u = cJSON_IsTrue(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "unclear"), i));
            if (i) fputc(' ', stdout);
            vki_bench_put_number(stdout, v ? v->valuedouble : 0, whole);
            if (cJSON_IsNumber(sd)) {
                fputs(" ± ", stdout);
                vki_bench_put_number(stdout, sd->valuedouble, whole);
            }
            fputs(" |", stdout);
            if (i == 0) continue;
            if (cJSON_IsNumber(ratio))
                printf(" %.3f%s |", ratio->valuedouble, u ? " ?" : "");
            else
                fputs(" - |", stdout);
            unclear_any = unclear_any || u;
        }
        putchar('\n');
    }
    if (unclear_any)
        printf("\n?: the mean ± sd ranges overlap: the difference is within the runs' spread.\n");
}

/* The comparison as csv (RFC 4180: strings always quoted, "" inside): suite, test, metric,
 * unit, then per file X (A, B, ...) X and X_sd, and for every file after the first X/A and
 * X/A_unclear (1 or 0); empty where there is no number. The files' labels are the md legend's
 * and -o json's. */
static void print_comparison_csv(const cJSON *doc, int n)
{
    fputs("\"suite\",\"test\",\"metric\",\"unit\"", stdout);
    for (int i = 0; i < n; i++) {
        printf(",\"%c\",\"%c_sd\"", 'A' + i, 'A' + i);
        if (i) printf(",\"%c/A\",\"%c/A_unclear\"", 'A' + i, 'A' + i);
    }
    putchar('\n');
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(doc, "rows")) {
        const char *cols[] = {"suite", "test", "metric", "unit"};
        for (size_t c = 0; c < 4; c++) {
            if (c) putchar(',');
            const char *v = str_at(row, cols[c]);
            vki_bench_put_csv(stdout, v ? v : "");
        }
        for (int i = 0; i < n; i++) {
            const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "values"), i);
            const cJSON *sd = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "sds"), i);
            const cJSON *ratio = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "ratios"), i);
            bool u = cJSON_IsTrue(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(row, "unclear"), i));
            putchar(',');
            if (cJSON_IsNumber(v)) printf("%.10g", v->valuedouble);
            putchar(',');
            if (cJSON_IsNumber(sd)) printf("%.10g", sd->valuedouble);
            if (i == 0) continue;
            putchar(',');
            if (cJSON_IsNumber(ratio)) printf("%.10g", ratio->valuedouble);
            printf(",%d", u ? 1 : 0);
        }
        putchar('\n');
    }
}

int vki_bench_compare(int argc, char **argv)
{
    cmp_file files[MAX_FILES];
    int n = 0;
    bool json = false, csv = false;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m = 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            compare_usage(stdout);
            return VKI_EXIT_OK;
        }
        if ((m = vki_arg_value(argc, argv, &i, "-o", &value)) != 0) {
            if (m < 0 || (strcmp(value, "md") != 0 && strcmp(value, "json") != 0 && strcmp(value, "csv") != 0))
                return vki_app_usage_error(compare_usage, "bench compare: -o is md, csv or json");
            json = strcmp(value, "json") == 0;
            csv = strcmp(value, "csv") == 0;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
            csv = false;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return vki_app_usage_error(compare_usage, "bench compare: unknown option '%s'", argv[i]);
        if (n == MAX_FILES)
            return vki_app_usage_error(compare_usage, "bench compare: at most %d files", MAX_FILES);
        files[n++] = (cmp_file){.path = argv[i]};
    }
    if (n < 2) return vki_app_usage_error(compare_usage, "bench compare: needs two files or more");

    int code = VKI_EXIT_OK;
    for (int i = 0; i < n && code == VKI_EXIT_OK; i++) code = load(&files[i]);
    cJSON *doc = NULL;
    size_t mixed = 0;
    if (code == VKI_EXIT_OK && !(doc = build_comparison(files, n, &mixed)))
        code = vki_app_failf("compare: out of host memory");
    if (code == VKI_EXIT_OK && mixed)
        fprintf(stderr, "vkinfer: compare: %zu results come from different workloads (or none) "
                        "in different files: their conditions may differ\n", mixed);
    if (code == VKI_EXIT_OK && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "rows")) == 0)
        code = vki_app_failf("compare: no result is in every file (same suite, test and metric)");
    if (code == VKI_EXIT_OK) {
        if (json)
            code = vki_json_print(doc);
        else if (csv)
            print_comparison_csv(doc, n);
        else
            print_comparison_md(doc, n);
    }
    cJSON_Delete(doc);
    for (int i = 0; i < n; i++) {
        cJSON_Delete(files[i].rows);
        free(files[i].keys);
    }
    return code;
}

static void convert_usage(FILE *f)
{
    fprintf(f, "usage: vkinfer bench convert FILE -o md|csv|json|jsonl|sql\n\n"
               "Prints a result file of `vkinfer bench -o json` in another format, as the run\n"
               "would have (its system block and result rows).\n");
}

int vki_bench_convert(int argc, char **argv)
{
    const char *path = NULL, *value = NULL;
    vki_bench_output format = VKI_BENCH_OUTPUT_TABLE;
    for (int i = 1; i < argc; i++) {
        int m = 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            convert_usage(stdout);
            return VKI_EXIT_OK;
        }
        if ((m = vki_arg_value(argc, argv, &i, "-o", &value)) != 0) {
            if (m < 0 || !vki_bench_output_parse(value, &format))
                return vki_app_usage_error(convert_usage, "bench convert: -o is md, csv, json, "
                                           "jsonl or sql");
            continue;
        }
        if ((argv[i][0] == '-' && argv[i][1]) || path)
            return vki_app_usage_error(convert_usage, "bench convert: unexpected '%s'", argv[i]);
        path = argv[i];
    }
    if (!path || format == VKI_BENCH_OUTPUT_TABLE)
        return vki_app_usage_error(convert_usage, "bench convert: needs a FILE and -o FORMAT");

    cJSON *root = parse_file(path);
    if (!root) return VKI_EXIT_FAILURE;
    int code = cJSON_IsObject(root) ? check_schema(path, root)
                                    : vki_app_failf("%s: not a vkinfer bench result", path);
    // The rows are checked as compare checks them; the system block must be flat text.
    cmp_file f = {.path = path, .rows = cJSON_CreateArray()};
    if (code == VKI_EXIT_OK && !f.rows) code = vki_app_failf("%s: out of host memory", path);
    if (code == VKI_EXIT_OK) code = read_ours(&f, root);
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(root, "system"), *s;
    if (code == VKI_EXIT_OK && !cJSON_IsObject(system))
        code = vki_app_failf("%s: no \"system\" object", path);
    const cJSON *fields = code == VKI_EXIT_OK ? system : NULL;
    cJSON_ArrayForEach(s, fields) {
        // The keys become csv and sql column names: the schema's own snake_case, none twice,
        // none a row field's.
        bool name_ok = s->string && s->string[0] >= 'a' && s->string[0] <= 'z' && strlen(s->string) <= 64 &&
                       strspn(s->string, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s->string);
        for (const cJSON *o = fields->child; name_ok && o != s; o = o->next)
            name_ok = strcmp(o->string, s->string) != 0;
        const char *const reserved[] = {"schema", "suite", "test", "metric", "unit", "value",
                                        "statistic", "sd", "reps", "workload"};
        for (size_t k = 0; name_ok && k < sizeof reserved / sizeof reserved[0]; k++)
            name_ok = strcmp(reserved[k], s->string) != 0;
        if (!name_ok) {
            code = vki_app_failf("%s: the system block's keys must be distinct snake_case names", path);
            break;
        }
        if (!cJSON_IsString(s) && !cJSON_IsNumber(s)) {
            code = vki_app_failf("%s: system.%s is not text", path, s->string);
            break;
        }
    }
    if (code == VKI_EXIT_OK && !cJSON_GetObjectItemCaseSensitive(root, "results")) {
        cJSON *flat = cJSON_CreateArray(); // an older file: the rows its suites give
        if (!flat || !vki_bench_results_flatten(cJSON_GetObjectItemCaseSensitive(root, "suites"), flat) ||
            !cJSON_AddItemToObject(root, "results", flat)) {
            cJSON_Delete(flat);
            code = vki_app_failf("%s: out of host memory", path);
        }
    }
    if (code == VKI_EXIT_OK) code = vki_bench_output_print(root, format, stdout);
    cJSON_Delete(f.rows);
    cJSON_Delete(root);
    return code;
}
