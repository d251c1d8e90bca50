/* `vkinfer bench --workload NAME`: a suite run with parameters and models fixed by name and
 * version, so that a result means the same on every vendor (MLPerf's fixed workloads; the
 * issue's llm, sd and ops sets). The suites themselves do the measuring: a workload calls its
 * suite once per model (llm) or image size (sd) with the fixed options, each run's figures in
 * an object named after it, and says in "skipped" what it left out and why (a model file that
 * is not there, weights larger than the device's memory). The suite's object carries
 * "workload": NAME, which every result row repeats (bench_output.c).
 *
 * Changing a workload changes its version: llm-v1 stays what it is here. */
#include "bench_output.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CLIP_VOCAB "clip/bpe_simple_vocab_16e6.txt"

static const vki_bench_workload workloads[] = {
    {.name = "llm-v1", .suite = "llm",
     .summary = "pp512, tg128, and tg128 after depths 0/512/2048/8192 (8320-token context), on "
                "the default model and the synthetic smollm2-135m, llama3-1b and llama3-8b "
                "(Q4_0 layers, Q8_0 embeddings)",
     .n_prompt = 512, .n_gen = 128, .n_ctx = 8192 + 128, .depths = {0, 512, 2048, 8192},
     .n_depths = 4, .models = {"default", "smollm2-135m", "llama3-1b", "llama3-8b"}, .n_models = 4},
    {.name = "sd-v1", .suite = "sd",
     .summary = "synthetic SD 1.5 (f16): text encode, U-Net s/step, VAE decode and the whole "
                "image, 20 Euler steps with CFG, at 512x512 and 1024x1024",
     .models = {"sd15"}, .n_models = 1, .sizes = {512, 1024}, .n_sizes = 2, .steps = 20},
    {.name = "ops-v1", .suite = "ops",
     .summary = "every benchmark case of the op conformance table (model shapes)"},
    // Shrunk for tests on a CPU device; the names say so.
    {.name = "llm-v1-tiny", .suite = "llm",
     .summary = "llm-v1 shrunk for tests: pp8, tg4, depths 0/8/16, 32-token context",
     .n_prompt = 8, .n_gen = 4, .n_ctx = 32, .depths = {0, 8, 16}, .n_depths = 3,
     .models = {"default", "smollm2-135m"}, .n_models = 2},
    {.name = "sd-v1-tiny", .suite = "sd", .summary = "sd-v1 shrunk for tests: 64x64, 1 step",
     .models = {"sd15"}, .n_models = 1, .sizes = {64}, .n_sizes = 1, .steps = 1},
    {.name = "ops-v1-tiny", .suite = "ops", .summary = "ops-v1 shrunk for tests: SmolLM2's rms_norm",
     .filter = "rms_norm SmolLM2"},
};
#define WORKLOAD_COUNT (sizeof workloads / sizeof workloads[0])

const vki_bench_workload *vki_bench_workload_at(uint32_t index)
{
    return index < WORKLOAD_COUNT ? &workloads[index] : NULL;
}

const vki_bench_workload *vki_bench_workload_find(const char *name)
{
    for (size_t i = 0; name && i < WORKLOAD_COUNT; i++)
        if (strcmp(workloads[i].name, name) == 0) return &workloads[i];
    return NULL;
}

/* A run that failed part-way (out of device memory at the deepest depth, say) is left out like
 * one that could not start, its partial figures dropped: the other runs of a long workload
 * still count, and the message above the document says what went wrong. */
static int after_run(cJSON *out, const char *label, int code);

/* A run left out: {"run": label, "reason": why}, and said on stderr. */
static bool skip(cJSON *out, const char *label, const char *reason)
{
    vki_bench_progress("", NULL, 1, 1); // the line cleared first
    fprintf(stderr, "vkinfer: bench %s: skipped %s: %s\n",
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(out, "workload")), label, reason);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(out, "skipped");
    if (!list) list = cJSON_AddArrayToObject(out, "skipped");
    cJSON *o = cJSON_CreateObject();
    if (!list || !o || !cJSON_AddItemToArray(list, o)) {
        cJSON_Delete(o);
        return false;
    }
    return vki_json_add_text(o, "run", label, strlen(label)) &&
           vki_json_add_text(o, "reason", reason, strlen(reason));
}

/* Whether `bytes` of weights leave room on the device: its device-local memory, less a quarter
 * for the cache, the activations and what the driver keeps. A CPU device's heap is the host's
 * memory, whose reported size is no limit (lavapipe says 2 GiB and holds SD 1.5's 2.1): it runs
 * what the host can hold. */
static bool fits(const vki_profile *p, uint64_t bytes, char *why, size_t why_size)
{
    uint64_t room = p->device_local_bytes - p->device_local_bytes / 4;
    if (p->type == VKI_DEVICE_CPU || p->device_local_bytes == 0 || bytes <= room) return true;
    char w[32], d[32];
    snprintf(why, why_size, "its weights (%s) do not fit the device's %s of memory with room for "
             "the cache and activations", vki_bytes_string(bytes, w),
             vki_bytes_string(p->device_local_bytes, d));
    return false;
}

/* "SmolLM2-135M-Instruct.Q4_1.gguf" -> "smollm2-135m-instruct-q4_1": a test-name prefix
 * without dots (the rows' paths join with dots). */
static void file_label(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".gguf") == 0) len -= 5;
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n; i++) {
        char c = (char)tolower((unsigned char)base[i]);
        out[k++] = c == '.' || c == ' ' ? '-' : c;
    }
    out[k] = 0;
}

static bool synthetic_known(const char *name)
{
    for (uint32_t i = 0; vki_llm_synthetic_name(i); i++)
        if (strcmp(vki_llm_synthetic_name(i), name) == 0) return true;
    return false;
}

static int run_llm(vki_app *app, const vki_bench_opts *base, const vki_bench_workload *w, cJSON *out)
{
    const vki_profile *p = vki_device_profile(app->device);
    int code = VKI_EXIT_OK;
    for (uint32_t m = 0; m < w->n_models && code == VKI_EXIT_OK; m++) {
        vki_bench_opts o = *base;
        o.n_prompt = w->n_prompt;
        o.n_gen = w->n_gen;
        o.n_depths = w->n_depths;
        memcpy(o.depths, w->depths, sizeof w->depths);
        o.llm.n_ctx = w->n_ctx;
        o.llm.model = NULL;
        o.llm.synthetic = NULL;
        char label[160], why[1400] = "", path[1024];
        uint64_t bytes = 0;
        bool ok = true;
        if (strcmp(w->models[m], "default") == 0) {
            vki_default_model_path(path, sizeof path);
            file_label(path, label, sizeof label);
            struct stat st;
            if (stat(path, &st) != 0) {
                snprintf(why, sizeof why, "the default model is not at %s (tools/fetch_models.sh "
                         "downloads it)", path);
                ok = false;
            }
            bytes = ok ? (uint64_t)st.st_size : 0;
        } else {
            snprintf(label, sizeof label, "synthetic-%s", w->models[m]);
            o.llm.synthetic = w->models[m];
            void *file = NULL;
            size_t size = 0;
            if (!synthetic_known(w->models[m])) {
                snprintf(why, sizeof why, "this vkinfer has no synthetic model '%s'", w->models[m]);
                ok = false;
            } else if (vki_llm_synthetic(w->models[m], 1, &file, &size, why, sizeof why) != VKI_OK) {
                ok = false;
            }
            free(file); // made again by the session; here only its size was wanted
            bytes = size;
        }
        ok = ok && fits(p, bytes, why, sizeof why);
        if (!ok) {
            if (!skip(out, label, why)) code = vki_app_failf("bench: out of host memory");
            continue;
        }
        cJSON *run = cJSON_AddObjectToObject(out, label);
        if (!run) return vki_app_failf("bench: out of host memory");
        if (!o.json) printf("-- %s (%s, model %u of %u) --\n", label, w->name, m + 1, w->n_models);
        char scope[200];
        snprintf(scope, sizeof scope, "%s (%u of %u)", label, m + 1, w->n_models);
        vki_bench_progress_scope(scope);
        // Loading (a synthetic model's weights made, the programs compiled) comes before the
        // suite's own steps: time to first token, pp, tg and each depth but 0.
        uint32_t steps = 3;
        for (uint32_t d = 0; d < w->n_depths; d++) steps += w->depths[d] != 0;
        vki_bench_progress("llm", "loading the model", 0, steps);
        code = after_run(out, label, vki_bench_llm(app, &o, run));
        vki_bench_progress_scope(NULL);
    }
    return code;
}

static int run_sd(vki_app *app, const vki_bench_opts *base, const vki_bench_workload *w, cJSON *out)
{
    const vki_profile *p = vki_device_profile(app->device);
    char vocab[1100], why[1400] = "";
    vki_model_cache_file(CLIP_VOCAB, vocab, sizeof vocab);
    struct stat st;
    bool ok = stat(vocab, &st) == 0;
    if (!ok)
        snprintf(why, sizeof why, "no CLIP vocabulary at %s (tools/fetch_models.sh downloads it)", vocab);
    void *file = NULL;
    size_t size = 0;
    if (ok && vki_sd_synthetic(w->models[0], 1, &file, &size, why, sizeof why) != VKI_OK) ok = false;
    free(file);
    ok = ok && fits(p, size, why, sizeof why);
    int code = VKI_EXIT_OK;
    for (uint32_t i = 0; i < w->n_sizes && code == VKI_EXIT_OK; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s-%ux%u", w->models[0], w->sizes[i], w->sizes[i]);
        if (!ok) {
            if (!skip(out, label, why)) code = vki_app_failf("bench: out of host memory");
            continue;
        }
        vki_bench_opts o = *base;
        o.llm.model = NULL;
        o.llm.synthetic = w->models[0];
        o.sd_size = w->sizes[i];
        o.sd_steps = w->steps;
        o.sd_type = 0;
        cJSON *run = cJSON_AddObjectToObject(out, label);
        if (!run) return vki_app_failf("bench: out of host memory");
        if (!o.json) printf("-- %s (%s, %u of %u) --\n", label, w->name, i + 1, w->n_sizes);
        char scope[200];
        snprintf(scope, sizeof scope, "%s (%u of %u)", label, i + 1, w->n_sizes);
        vki_bench_progress_scope(scope);
        code = after_run(out, label, vki_bench_sd(app, &o, run));
        vki_bench_progress_scope(NULL);
    }
    return code;
}

static int after_run(cJSON *out, const char *label, int code)
{
    if (code == VKI_EXIT_OK) return code;
    vki_bench_progress("", NULL, 1, 1); // clear a progress line the failure left
    cJSON_DeleteItemFromObjectCaseSensitive(out, label);
    return skip(out, label, "failed on this device (the message above says why)")
               ? VKI_EXIT_OK : vki_app_failf("bench: out of host memory");
}

int vki_bench_workload_run(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    const vki_bench_workload *w = opts->workload;
    if (!vki_json_add_text(out, "workload", w->name, strlen(w->name)))
        return vki_app_failf("bench: out of host memory");
    if (!opts->json) printf("workload %s: %s\n", w->name, w->summary);
    if (strcmp(w->suite, "llm") == 0) return run_llm(app, opts, w, out);
    if (strcmp(w->suite, "sd") == 0) return run_sd(app, opts, w, out);
    vki_bench_opts o = *opts;
    o.filter = w->filter;
    return vki_bench_ops(app, &o, out);
}
