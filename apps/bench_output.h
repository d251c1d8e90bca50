/* The output side of `vkinfer bench` (bench_output.c) and `vkinfer bench compare`
 * (cmd_bench_compare.c): the system block, the result rows flattened from each suite's JSON,
 * and the formats, as docs/bench/SCHEMA.md describes them.
 *
 *   cJSON *root = ...;                         // {"suites": {"llm": {...}, ...}}
 *   cJSON_AddItemToObject(root, "system", vki_bench_system_json(profile, narrow_text));
 *   vki_bench_results_add(root);               // root.results: one row per figure
 *   vki_bench_output_print(root, VKI_BENCH_OUTPUT_CSV, stdout);
 */
#ifndef VKI_BENCH_OUTPUT_H
#define VKI_BENCH_OUTPUT_H

#include "apps_internal.h"

/* The result schema's name and version; a reader refuses a newer major version. */
#define VKI_BENCH_SCHEMA "vkinfer-bench/1"
#define VKI_BENCH_SCHEMA_MAJOR 1

typedef enum vki_bench_output {
    VKI_BENCH_OUTPUT_TABLE = 0, // each suite prints its own table (no -o)
    VKI_BENCH_OUTPUT_MD,
    VKI_BENCH_OUTPUT_CSV,
    VKI_BENCH_OUTPUT_JSON,
    VKI_BENCH_OUTPUT_JSONL,
    VKI_BENCH_OUTPUT_SQL,
    VKI_BENCH_OUTPUT_COUNT
} vki_bench_output;

/* "md", "csv", "json", "jsonl", "sql" -> *out; false for anything else. */
bool vki_bench_output_parse(const char *text, vki_bench_output *out);

/* The system a run measured on: the device and driver from `p`, the narrowing, this build
 * (version, git commit, build type) and the host (OS, CPU model), and the date (UTC, ISO 8601).
 * A flat object of strings and numbers whose keys become columns in csv/sql. NULL only when out
 * of host memory. Owned by the caller. */
cJSON *vki_bench_system_json(const vki_profile *p, const char *narrow_text);

/* Flattens root.suites (each suite's figures) into root.results, an array of rows
 * {suite, test, metric, unit, value, statistic, sd, reps}: every number whose key ends in a unit
 * (_tokens_per_s, _gbs, _us ...) becomes a row. False only when out of host memory. */
bool vki_bench_results_add(cJSON *root);

/* Prints root (schema, system, suites, results) in format `f` (not TABLE) to `out`. Returns an
 * exit code. */
int vki_bench_output_print(const cJSON *root, vki_bench_output f, FILE *out);

/* Rows of `suites` (an object of suite objects) appended to `results`; what
 * vki_bench_results_add does, for readers of older result files without "results". */
bool vki_bench_results_flatten(const cJSON *suites, cJSON *results);

/* Writes text as a markdown table cell: well-formed UTF-8, control characters as spaces,
 * '|' and '\\' escaped. False only when out of host memory. */
bool vki_bench_put_md(FILE *out, const char *text);

/* A figure in a table: 4 significant digits, at least 2 decimals (as llama-bench's "%.2f"), at
 * most 6; `whole` (bytes) or a magnitude of 10^6 and more prints no decimals. */
void vki_bench_put_number(FILE *out, double v, bool whole);

/* `vkinfer bench compare FILE...` (argv[0] is "compare"): reads result files (ours, or
 * llama-bench's -o json) and prints one table of the tests they share, with ratios to the first.
 * Needs no device. Returns an exit code. */
int vki_bench_compare(int argc, char **argv);

/* `vkinfer bench convert FILE -o FORMAT`: a result file of ours printed in another format.
 * Needs no device. Returns an exit code. */
int vki_bench_convert(int argc, char **argv);

#endif
