/* `vkinfer bench [suite...]`: the benchmark driver. Options and the device are shared; each
 * suite is one function in the table below that fills its own JSON object and prints its own
 * table, so `bench ops` and `bench llm` slot in as one row each. */
#include "apps_internal.h"
#include "bench_output.h"

#include <string.h>

typedef struct vki_bench_suite {
    const char *name;
    const char *summary;
    vki_bench_fn run;
} vki_bench_suite;

static const vki_bench_suite suites[] = {
    {"runtime", "submit+wait latency, cost of one dispatch, upload/download and copy bandwidth",
     vki_bench_runtime},
    {"peak", "measured peaks: fp32/fp16 FMA, int8 dot, coopmat fp16, memory read/write/copy, "
             "transfers, dispatch and submit latency (cached for ops and llm)", vki_bench_peak},
    {"ops", "each op at model shapes: time, GB/s, GFLOP/s, share of the copy bandwidth",
     vki_bench_ops},
    {"llm", "a language model like llama-bench: prefill and decode tokens/s, time to first "
            "token, device memory", vki_bench_llm},
    {"sd", "Stable Diffusion: text encode, U-Net s/step, VAE decode, whole image, device memory",
     vki_bench_sd},
    {"vision", "an image encoder (mmproj): encode seconds, GFLOP and share of the compute roof, "
               "device memory", vki_bench_vision},
};
#define SUITE_COUNT (sizeof suites / sizeof suites[0])

/* A list of synthetic model names, wrapped to lines of at most 90 columns. */
static void print_names(FILE *f, const char *(*name)(uint32_t index))
{
    size_t column = 1;
    for (uint32_t i = 0; name(i); i++) {
        size_t len = strlen(name(i)) + 1;
        if (column + len > 90) fprintf(f, "\n "), column = 1;
        fprintf(f, " %s", name(i));
        column += len;
    }
}

void vki_bench_usage(FILE *f)
{
    fprintf(f, "usage: vkinfer [global options] bench [suite...] [options]\n"
               "       vkinfer bench compare FILE FILE...  (result files: -o json, or llama-bench's)\n"
               "       vkinfer bench convert FILE -o FORMAT  (a -o json result file in another format)\n\n"
               "suites (default: all):\n");
    for (size_t i = 0; i < SUITE_COUNT; i++)
        fprintf(f, "  %-10s %s\n", suites[i].name, suites[i].summary);
    fprintf(f,
            "\noptions:\n"
            "  -o FORMAT         md, csv, json, jsonl or sql instead of each suite's table:\n"
            "                    one row per figure with its system (docs/bench/SCHEMA.md)\n"
            "  --json            the same as -o json\n"
            "  --reps N          repetitions of each measurement\n"
            "                    (default: 20, 10 on a CPU device)\n"
            "  --transfer-mib N  upload/download size; N/8 is measured too\n"
            "                    (default: 64, 16 on a CPU device)\n"
            "  --copy-mib N      device copy size (default: 256, 64 on a CPU device)\n"
            "  --filter TEXT     ops: only cases whose name contains TEXT\n"
            "  --workload NAME   a fixed workload (below): the suite's sizes and models set by\n"
            "                    name and version, the same on every device; each row names it\n"
            "  -p N, -n N        llm: prompt tokens (default: 512) and generated tokens\n"
            "                    (default: 128) of the prefill and decode tests\n"
            "  -d N,N,...        llm: also decode -n tokens after prefilling N tokens, for each\n"
            "                    N (llama-bench's -d), as tokens/s and %% of the bandwidth roof\n"
            "  --parallel N      llm: the model holds N sequences (as serve --parallel N); tg\n"
            "                    also on the N-sequence decode pass: 1 sequence and N at once\n"
            "  --steps N, --size N  sd: steps (default: 10, 2 on a CPU device) and image edge\n"
            "                    (default: 512, 256 on a CPU device)\n"
            "  --save FILE       --synthetic: also write the model there (sd: a single-file\n"
            "                    .safetensors for stable-diffusion.cpp; llm: a GGUF with a\n"
            "                    vocabulary, for llama-bench), and run it from that file\n"
            "  --type TYPE       sd: convert the weights at load (f16, q8_0, q4_0, q4_1;\n"
            "                    as `imagegen --type`); the weight bytes are reported\n"
            "  --window-mib N    bind at most N MiB at once (default: the device's\n"
            "                    maxStorageBufferRange); larger copies are split into windows\n"
            "\nThe device is the one --device / $VKI_DEVICE selects; --narrow applies.\n"
            "Suite llm also takes the model options of `vkinfer generate` (-m, --ctx, --batch,\n"
            "--cache-type), or --synthetic NAME: a model of that architecture and shapes with\n"
            "random weights, no file needed; its speed is the real model's:\n ");
    print_names(f, vki_llm_synthetic_name);
    fprintf(f, "\nSuite sd takes -m CHECKPOINT or --synthetic sd15|sd21 the same way.\n"
               "Suite vision takes -m MMPROJ or --synthetic NAME:\n ");
    print_names(f, vki_vision_synthetic_name);
    fprintf(f, "\n\nworkloads (--workload NAME; -tiny: shrunk for tests, compares only with itself):\n");
    for (uint32_t i = 0; vki_bench_workload_at(i); i++)
        fprintf(f, "  %-12s %s\n", vki_bench_workload_at(i)->name, vki_bench_workload_at(i)->summary);
}

/* Options with a MiB value, in one table so that parsing stays one loop. */
typedef struct mib_option {
    const char *name;
    uint64_t *field;
} mib_option;

/* -d 0,512,2048: decode depths for `llm`. */
static bool parse_depths(const char *text, vki_bench_opts *opts)
{
    opts->n_depths = 0;
    char item[16];
    for (const char *at = text;;) {
        size_t n = strcspn(at, ",");
        uint64_t d = 0;
        if (n == 0 || n >= sizeof item || opts->n_depths == VKI_BENCH_MAX_DEPTHS) return false;
        memcpy(item, at, n);
        item[n] = 0;
        if (!vki_parse_u64(item, 0, 1 << 20, &d)) return false;
        opts->depths[opts->n_depths++] = (uint32_t)d;
        if (!at[n]) return true;
        at += n + 1;
    }
}

static int parse_options(int argc, char **argv, vki_bench_opts *opts, bool selected[SUITE_COUNT],
                         bool *out_help, vki_bench_output *out_format)
{
    const uint64_t mib = 1ull << 20;
    const mib_option mib_options[] = {
        {"--transfer-mib", &opts->transfer_bytes},
        {"--copy-mib", &opts->copy_bytes},
        {"--window-mib", &opts->window_bytes},
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        int m = 0;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *out_help = true;
            return VKI_EXIT_OK;
        }
        if ((m = vki_arg_value(argc, argv, &i, "--synthetic", &value)) != 0) {
            if (m < 0 || !value[0])
                return vki_app_usage_error(vki_bench_usage, "bench: --synthetic needs a model name");
            opts->llm.synthetic = value;
            continue;
        }
        int lm = vki_llm_option(argc, argv, &i, &opts->llm, vki_bench_usage);
        if (lm < 0) return -lm;
        if (lm > 0) continue;
        const struct { const char *name; uint32_t *field; } counts[] = {
            {"-p", &opts->n_prompt}, {"-n", &opts->n_gen}, {"--steps", &opts->sd_steps},
            {"--size", &opts->sd_size}, {"--parallel", &opts->llm.n_seq}};
        for (size_t k = 0; k < sizeof counts / sizeof counts[0] && m == 0; k++) {
            m = vki_arg_value(argc, argv, &i, counts[k].name, &value);
            uint64_t n = 0;
            if (m < 0 || (m > 0 && !vki_parse_u64(value, 1, 1 << 20, &n)))
                return vki_app_usage_error(vki_bench_usage, "bench: %s needs a count",
                                           counts[k].name);
            if (m > 0) *counts[k].field = (uint32_t)n;
        }
        if (m > 0) continue;
        if ((m = vki_arg_value(argc, argv, &i, "-d", &value)) != 0) {
            if (m < 0 || !parse_depths(value, opts))
                return vki_app_usage_error(vki_bench_usage, "bench: -d needs up to %d depths in "
                                           "0..1048576, comma-separated", VKI_BENCH_MAX_DEPTHS);
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            opts->json = true;
            *out_format = VKI_BENCH_OUTPUT_JSON;
            continue;
        }
        if ((m = vki_arg_value(argc, argv, &i, "-o", &value)) != 0 ||
            (m = vki_arg_value(argc, argv, &i, "--output", &value)) != 0) {
            if (m < 0 || !vki_bench_output_parse(value, out_format))
                return vki_app_usage_error(vki_bench_usage, "bench: -o is md, csv, json, jsonl or "
                                           "sql (got '%s')", m < 0 ? "" : value);
            opts->json = true; // the suites' own tables give way to the format
            continue;
        }
        if ((m = vki_arg_value(argc, argv, &i, "--reps", &value)) != 0) {
            uint64_t reps = 0;
            if (m < 0 || !vki_parse_u64(value, 1, 100000, &reps))
                return vki_app_usage_error(vki_bench_usage, "bench: --reps needs a number in "
                                                            "1..100000");
            opts->reps = (uint32_t)reps;
            continue;
        }
        if ((m = vki_arg_value(argc, argv, &i, "--type", &value)) != 0) {
            if (m < 0 || vki_sd_weight_type_parse(value, &opts->sd_type))
                return vki_app_usage_error(vki_bench_usage, "bench: --type is f16, q8_0, q4_0 or "
                                           "q4_1 (got '%s')", m < 0 ? "" : value);
            continue;
        }
        if ((m = vki_arg_value(argc, argv, &i, "--save", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_bench_usage, "bench: --save needs a file");
            opts->save = value;
            continue;
        }
        if ((m = vki_arg_value(argc, argv, &i, "--workload", &value)) != 0) {
            if (m < 0 || !(opts->workload = vki_bench_workload_find(value)))
                return vki_app_usage_error(vki_bench_usage, "bench: unknown workload '%s' (the "
                                           "list is in --help)", m < 0 ? "" : value);
            continue;
        }
        if ((m = vki_arg_value(argc, argv, &i, "--filter", &value)) != 0) {
            if (m < 0) return vki_app_usage_error(vki_bench_usage, "bench: --filter needs text");
            opts->filter = value;
            continue;
        }
        for (size_t k = 0; k < sizeof mib_options / sizeof mib_options[0] && m == 0; k++) {
            m = vki_arg_value(argc, argv, &i, mib_options[k].name, &value);
            uint64_t n = 0;
            // 64 GiB bounds what any device can hold and keeps n * mib from overflowing.
            if (m < 0 || (m > 0 && !vki_parse_u64(value, 1, 65536, &n)))
                return vki_app_usage_error(vki_bench_usage, "bench: %s needs a size in MiB, "
                                           "1..65536", mib_options[k].name);
            if (m > 0) *mib_options[k].field = n * mib;
        }
        if (m > 0) continue;
        if (arg[0] == '-')
            return vki_app_usage_error(vki_bench_usage, "bench: unknown option '%s'", arg);
        size_t s = 0;
        while (s < SUITE_COUNT && strcmp(suites[s].name, arg) != 0) s++;
        if (s == SUITE_COUNT)
            return vki_app_usage_error(vki_bench_usage, "bench: unknown suite '%s'", arg);
        selected[s] = true;
    }
    return VKI_EXIT_OK;
}

/* A workload fixes what these options would change: given together, they are a usage error
 * rather than a result that claims the workload's name and measured something else. */
static int check_workload(int argc, char **argv, const vki_bench_workload *w, bool selected[SUITE_COUNT])
{
    static const char *const fixed[] = {"-p", "-n", "-d", "--steps", "--size", "--save", "--type",
                                        "--filter", "--model", "-m", "--synthetic", "--ctx",
                                        "--batch", "--cache-type", "-ctk", "--parallel"};
    for (int i = 1; i < argc; i++)
        for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
            size_t len = strlen(fixed[k]);
            if (strncmp(argv[i], fixed[k], len) == 0 && (!argv[i][len] || argv[i][len] == '='))
                return vki_app_usage_error(vki_bench_usage, "bench: --workload %s fixes %s; "
                                           "leave it out", w->name, fixed[k]);
        }
    for (size_t s = 0; s < SUITE_COUNT; s++) {
        if (selected[s] && strcmp(suites[s].name, w->suite) != 0)
            return vki_app_usage_error(vki_bench_usage, "bench: --workload %s runs suite %s only",
                                       w->name, w->suite);
        selected[s] = strcmp(suites[s].name, w->suite) == 0;
    }
    return VKI_EXIT_OK;
}

/* What was measured, so that figures from different machines can be told apart. */
static cJSON *device_json(const vki_profile *p, const char *narrow_text)
{
    char buf[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "type", vki_device_type_name(p->type));
    cJSON_AddStringToObject(o, "vendor", vki_vendor_name(p->vendor));
    cJSON_AddStringToObject(o, "driver_name", p->driver_name);
    cJSON_AddStringToObject(o, "driver_info", p->driver_info);
    cJSON_AddStringToObject(o, "api_version", vki_version_string(p->api_version, buf));
    cJSON_AddStringToObject(o, "tuning", p->tuning.name);
    cJSON_AddStringToObject(o, "narrowing", narrow_text ? narrow_text : "");
    cJSON_AddBoolToObject(o, "timestamps", p->timestamps);
    return o;
}

int vki_cmd_bench(vki_app *app, int argc, char **argv)
{
    // `bench compare` reads result files and needs no device.
    if (argc > 1 && strcmp(argv[1], "compare") == 0) return vki_bench_compare(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "convert") == 0) return vki_bench_convert(argc - 1, argv + 1);
    vki_bench_opts opts = {0};
    bool selected[SUITE_COUNT] = {false};
    bool help = false;
    vki_bench_output format = VKI_BENCH_OUTPUT_TABLE;
    int code = parse_options(argc, argv, &opts, selected, &help, &format);
    if (code != VKI_EXIT_OK) return code;
    if (help) {
        vki_bench_usage(stdout);
        return VKI_EXIT_OK;
    }
    if (opts.workload && (code = check_workload(argc, argv, opts.workload, selected)) != VKI_EXIT_OK)
        return code;
    bool any = false;
    for (size_t s = 0; s < SUITE_COUNT; s++) any = any || selected[s];
    if (!any) // a model benchmark runs when asked for: it needs a model file
        for (size_t s = 0; s < SUITE_COUNT; s++)
            selected[s] = suites[s].run != vki_bench_llm && suites[s].run != vki_bench_sd &&
                          suites[s].run != vki_bench_vision;

    code = vki_app_open_device(app);
    if (code != VKI_EXIT_OK) return code;
    const vki_profile *p = vki_device_profile(app->device);

    cJSON *root = cJSON_CreateObject(), *suites_json = NULL, *system = NULL;
    if (root) {
        cJSON_AddStringToObject(root, "schema", VKI_BENCH_SCHEMA);
        cJSON_AddStringToObject(root, "vkinfer_version", VKI_VERSION_STRING);
        if ((system = vki_bench_system_json(p, app->narrow_text)))
            cJSON_AddItemToObject(root, "system", system);
        cJSON_AddItemToObject(root, "device", device_json(p, app->narrow_text));
        suites_json = cJSON_AddObjectToObject(root, "suites");
    }
    if (!suites_json || !system) {
        code = vki_app_failf("building JSON: out of host memory");
        goto done;
    }
    if (!opts.json)
        printf("vkinfer bench on %s [%s, %s, tuning %s%s%s]\n", p->name,
               vki_device_type_name(p->type), p->driver_name, p->tuning.name,
               app->narrow_text ? ", narrowed by " : "", app->narrow_text ? app->narrow_text : "");

    uint32_t n_selected = 0, n_done = 0;
    for (size_t s = 0; s < SUITE_COUNT; s++) n_selected += selected[s];
    for (size_t s = 0; s < SUITE_COUNT && code == VKI_EXIT_OK; s++) {
        if (!selected[s]) continue;
        vki_bench_progress(suites[s].name, "running", n_done++, n_selected);
        cJSON *out = cJSON_AddObjectToObject(suites_json, suites[s].name);
        if (!out) {
            code = vki_app_failf("building JSON: out of host memory");
            break;
        }
        if (!opts.json) printf("\n== %s ==\n", suites[s].name);
        code = opts.workload ? vki_bench_workload_run(app, &opts, out) : suites[s].run(app, &opts, out);
    }
    vki_bench_progress("", NULL, n_selected, n_selected);
    // A failed suite has said why; half a document would only mislead a script.
    if (code == VKI_EXIT_OK && format != VKI_BENCH_OUTPUT_TABLE) {
        if (!vki_bench_results_add(root))
            code = vki_app_failf("building JSON: out of host memory");
        else
            code = vki_bench_output_print(root, format, stdout);
    }
done:
    cJSON_Delete(root);
    return code;
}
