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
 * {suite, test, metric, unit, value, statistic, sd, reps, workload}: every number whose key ends
 * in a unit (_tokens_per_s, _gbs, _us ...) becomes a row; workload is the suite object's
 * "workload" string (null without one). False only when out of host memory. */
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
/* The same as a csv field: double-quoted, '"' doubled (RFC 4180). */
bool vki_bench_put_csv(FILE *out, const char *text);

/* A figure in a table: 4 significant digits, at least 2 decimals (as llama-bench's "%.2f"), at
 * most 6; `whole` (bytes) or a magnitude of 10^6 and more prints no decimals. */
void vki_bench_put_number(FILE *out, double v, bool whole);

/* `vkinfer bench compare FILE...` (argv[0] is "compare"): reads result files (ours, or
 * llama-bench's -o json) and prints one table of the tests they share, with ratios to the first.
 * Needs no device. Returns an exit code. */
int vki_bench_compare(int argc, char **argv);

/* A result file's bytes as `bench compare` reads them: our -o json document (an older one
 * without "results" flattened) or -o jsonl rows, llama-bench's -o json or -o jsonl. `name`
 * names it in messages. On success *out_rows (owned by the caller) holds normalised rows
 * {suite, test, metric, unit: strings; value: a finite number; sd: a finite number >= 0 or
 * null; workload: a string or null} and label a one-line description of the system it ran on.
 * Returns an exit code, having printed why on failure. The text comes from anywhere: every
 * field is checked (tools/fuzz_bench_result.c). text[n] need not be NUL. */
int vki_bench_result_read(const char *name, const char *text, size_t n, cJSON **out_rows,
                          char *label, size_t label_size);

/* `vkinfer bench convert FILE -o FORMAT`: a result file of ours printed in another format.
 * Needs no device. Returns an exit code. */
int vki_bench_convert(int argc, char **argv);

/* ---- Workloads -------------------------------------------------------------------------------
 * A workload fixes a suite's parameters and models by name and version ("llm-v1"), so that its
 * results mean the same on every vendor; each row names it. A "-tiny" variant is the same
 * workload shrunk for tests on a CPU device: its name says so, and its figures compare with
 * nothing but another tiny run. A later version changes the name (llm-v2), never an old one. */
#define VKI_BENCH_WORKLOAD_MAX 4

typedef struct vki_bench_workload {
    const char *name;    // "llm-v1"
    const char *suite;   // the suite it runs: "llm", "sd", "ops"
    const char *summary; // for the usage text
    /* llm: prompt and generated tokens, decode depths, the context every model gets (the
     * deepest depth + n_gen), and the models: "default" (the default model file) or a
     * synthetic model's name (vki_llm_synthetic). sd: the synthetic checkpoint, image edges
     * and steps. ops: the conformance table's benchmark cases, or those matching filter. */
    uint32_t n_prompt, n_gen, n_ctx;
    uint32_t depths[VKI_BENCH_WORKLOAD_MAX], n_depths;
    const char *models[VKI_BENCH_WORKLOAD_MAX];
    uint32_t n_models;
    uint32_t sizes[VKI_BENCH_WORKLOAD_MAX], n_sizes, steps;
    const char *filter;
} vki_bench_workload;

/* Runs opts->workload (not NULL) into `out`, its suite's object: "workload", one object per
 * model or image size named after it, "skipped": [{run, reason}] for what was left out. Returns
 * an exit code. (bench_workload.c) */
int vki_bench_workload_run(vki_app *app, const vki_bench_opts *opts, cJSON *out);

/* What the progress line's suite runs within (a workload's model or size, "synthetic-llama3-1b
 * (2 of 3)"), shown before the case; NULL: nothing. (bench_output.c) */
void vki_bench_progress_scope(const char *scope);

/* The workload of that name; NULL for none. */
const vki_bench_workload *vki_bench_workload_find(const char *name);
/* Workloads by index; NULL past the last. */
const vki_bench_workload *vki_bench_workload_at(uint32_t index);

#endif
