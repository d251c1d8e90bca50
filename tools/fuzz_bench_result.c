/* libFuzzer target for the benchmark result-file reader (apps/cmd_bench_compare.c,
 * apps/bench_output.c): the bytes of a file that `vkinfer bench compare` or `convert` is given
 * (ours -o json / jsonl, llama-bench's -o json / jsonl, or anything else) ->
 * vki_bench_result_read, then, when the bytes are one JSON object with "suites", the rows that
 * `convert` derives from them (vki_bench_results_flatten) printed in every format.
 *
 * Invariants checked (a violation traps):
 *   - the reader either fails (having said why) or returns rows whose suite, test, metric and
 *     unit are strings, value a finite number, sd null or a finite number >= 0, workload null
 *     or a string, and a NUL-terminated label;
 *   - flattened rows have the nine fields of docs/bench/SCHEMA.md with a finite value;
 *   - each format's output is well-formed UTF-8 whatever the names hold, csv has exactly one
 *     line per row after its header, jsonl one parseable object per row.
 * Built in the sanitizer configuration (clang, -DVKI_FUZZ=ON); stderr (the reader's messages)
 * is best closed:
 *     build-asan/tests/fuzz_bench_result -close_fd_mask=2 -max_total_time=600 -max_len=16384 \
 *         /tmp/corpus tests/data/fuzz_bench
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L // open_memstream
#endif
#include "bench_output.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(bool ok)
{
    if (!ok) __builtin_trap();
}

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) return false;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] >> 6) != 2) return false;
        i += len;
    }
    return true;
}

static bool is_str(const cJSON *o, const char *k) { return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, k)); }

static bool str_or_null(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) || cJSON_IsNull(v);
}

static void check_read_rows(const cJSON *rows)
{
    check(cJSON_IsArray(rows));
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(r, "value");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(r, "sd");
        check(is_str(r, "suite") && is_str(r, "test") && is_str(r, "metric") && is_str(r, "unit"));
        check(cJSON_IsNumber(value) && isfinite(value->valuedouble));
        check(cJSON_IsNull(sd) || (cJSON_IsNumber(sd) && isfinite(sd->valuedouble) && sd->valuedouble >= 0));
        check(str_or_null(r, "workload"));
    }
}

/* Prints root in format f into memory; the text (free() it) and its length. */
static char *print_to_memory(const cJSON *root, vki_bench_output f, size_t *out_n)
{
    char *text = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&text, &n);
    if (!out) return NULL;
    int code = vki_bench_output_print(root, f, out);
    fclose(out);
    if (code != VKI_EXIT_OK) { // out of host memory only
        free(text);
        return NULL;
    }
    *out_n = n;
    return text;
}

static void check_formats(const cJSON *suites)
{
    // A fixed system block (convert refuses others): the rows carry the hostile text.
    cJSON *root = cJSON_CreateObject(), *system = NULL, *results = NULL;
    if (!root || !cJSON_AddStringToObject(root, "schema", VKI_BENCH_SCHEMA) ||
        !(system = cJSON_AddObjectToObject(root, "system")) ||
        !cJSON_AddStringToObject(system, "device_name", "fuzz") ||
        !(results = cJSON_AddArrayToObject(root, "results")) ||
        !vki_bench_results_flatten(suites, results)) {
        cJSON_Delete(root);
        return;
    }
    const cJSON *r;
    int n_rows = 0;
    cJSON_ArrayForEach(r, results) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(r, "value");
        check(cJSON_GetArraySize(r) == 9);
        check(is_str(r, "suite") && is_str(r, "test") && is_str(r, "metric") && is_str(r, "unit"));
        check(cJSON_IsNumber(value) && isfinite(value->valuedouble));
        check(str_or_null(r, "statistic") && str_or_null(r, "workload"));
        n_rows++;
    }
    for (int f = VKI_BENCH_OUTPUT_MD; f < VKI_BENCH_OUTPUT_COUNT; f++) {
        if (f == VKI_BENCH_OUTPUT_JSON) continue; // cJSON's own printer
        size_t n = 0;
        char *text = print_to_memory(root, (vki_bench_output)f, &n);
        if (!text) continue;
        check(valid_utf8(text, n));
        if (f == VKI_BENCH_OUTPUT_CSV || f == VKI_BENCH_OUTPUT_JSONL) {
            int lines = 0;
            for (char *at = text, *nl; (nl = memchr(at, '\n', n - (size_t)(at - text))); at = nl + 1) {
                *nl = 0;
                if (f == VKI_BENCH_OUTPUT_JSONL) {
                    cJSON *o = cJSON_Parse(at);
                    check(cJSON_IsObject(o));
                    cJSON_Delete(o);
                }
                lines++;
            }
            check(lines == n_rows + (f == VKI_BENCH_OUTPUT_CSV));
        }
        free(text);
    }
    cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *rows = NULL;
    char label[768];
    memset(label, 'x', sizeof label);
    if (vki_bench_result_read("fuzz", (const char *)data, size, &rows, label, sizeof label) == VKI_EXIT_OK) {
        check(memchr(label, 0, sizeof label) != NULL);
        check_read_rows(rows);
    } else {
        check(rows == NULL);
    }
    cJSON_Delete(rows);

    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *suites = cJSON_GetObjectItemCaseSensitive(doc, "suites");
    if (cJSON_IsObject(suites)) check_formats(suites);
    cJSON_Delete(doc);
    return 0;
}
