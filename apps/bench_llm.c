/* `vkinfer bench llm`: a language model measured the way llama-bench does. pp: a prompt of
 * n_prompt tokens evaluated from an empty cache; tg: n_gen single-token evaluations from an
 * empty cache; both as tokens/s, mean ± standard deviation and median over the repetitions
 * after one warm-up (llama-bench's avg_ts, stddev_ts; the median beside them). Time to first token: cold (opening the file, compiling, uploading the weights, the
 * first prefill of a short prompt) and warm (the same prompt again). Token ids are drawn from a
 * fixed seed; the speed of a dense model does not depend on them.
 *
 * With --parallel N (the model holding N sequences, as `serve --parallel N`), also tg on the
 * N-row decode pass the server runs: all N sequences at once (aggregate tokens/s), and one
 * sequence alone on that pass (what a lone client of the server gets).
 *
 * With -d N,N,... (llama-bench's -d), also tg after prefilling N tokens first (the prefill is
 * not timed): decode at depth, where each token also attends the N positions cached before it.
 *
 * Rooflines against the device's measured peaks (vki_bench_peaks_get):
 *   - decode as a share of the bandwidth roof (peaks.read_gbs): each token reads every weight
 *     (weight_bytes; of a mixture of experts' stacked experts, the n_expert_used / n_expert
 *     share a token is routed to; the whole embedding table counts although a step reads one
 *     row of it; with tied embeddings, as SmolLM2's, the output projection reads it all) and the
 *     KV cache up to
 *     its position (bytes per cached position = kv_bytes / (n_ctx n_seq); tokens depth ..
 *     depth + n - 1 read depth + (n + 1) / 2 positions on average), against tokens/s;
 *   - prefill as a share of the compute roof (the best of the fp32, fp16 and cooperative-matrix
 *     peaks: the matrix kernels use the fastest the device has): 2 flops per parameter per token
 *     over the layers' projections (q, k, v, o, and three n_ff matrices: every architecture
 *     vkinfer runs has a gated feed-forward; a mixture of experts' router, and three n_ff_exp
 *     matrices per routed expert and three n_ff_shexp of a shared one), counted from the hyper-parameters rather than the
 *     weight bytes (which quantisation scrambles), plus the output projection once (only the
 *     last token's logits are computed) and causal attention (4 head_dim flops per head per
 *     visible position); norms, rope and the rest are left out. */
#include "apps_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TTFT_PROMPT 32

/* Tokens/s over the repetitions as llama-bench reports them: mean ± sample standard deviation,
 * and the median (robust to one slow repetition: a driver's first compile, a clock change). */
typedef struct tps_stats {
    double mean, sd, median;
} tps_stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static tps_stats summarise(double *v, uint32_t n)
{
    tps_stats o = {0};
    double s = 0, q = 0;
    for (uint32_t i = 0; i < n; i++) s += v[i];
    o.mean = n ? s / n : 0;
    for (uint32_t i = 0; i < n; i++) q += (v[i] - o.mean) * (v[i] - o.mean);
    o.sd = n > 1 ? sqrt(q / (n - 1)) : 0;
    qsort(v, n, sizeof *v, cmp_double);
    o.median = n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return o;
}

/* Tokens/s of `reps` runs of `run`, after a warm-up. */
typedef vki_status (*bench_run)(vki_llm *m, const int32_t *ids, uint32_t n, float *logits);

static vki_status run_prefill(vki_llm *m, const int32_t *ids, uint32_t n, float *logits)
{
    vki_llm_rewind(m, 0);
    return vki_llm_eval(m, ids, n, logits);
}

static vki_status run_decode(vki_llm *m, const int32_t *ids, uint32_t n, float *logits)
{
    vki_llm_rewind(m, 0);
    for (uint32_t i = 0; i < n; i++) VKI_TRY(vki_llm_eval(m, &ids[i], 1, logits));
    return VKI_OK;
}

/* n steps of the several-sequence pass, over all sequences (logits NULL: each step decodes
 * every sequence) or sequence 0 alone. */
static vki_status decode_seqs(vki_llm *m, const int32_t *ids, uint32_t n, uint32_t n_seq)
{
    uint32_t seqs[256];
    int32_t toks[256];
    for (uint32_t s = 0; s < n_seq; s++) {
        vki_llm_seq_rewind(m, s, 0);
        seqs[s] = s;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t s = 0; s < n_seq; s++) toks[s] = ids[(i + 7 * s) % n];
        VKI_TRY(vki_llm_decode(m, seqs, toks, n_seq, NULL));
    }
    return VKI_OK;
}

static vki_status run_decode_all(vki_llm *m, const int32_t *ids, uint32_t n, float *logits)
{
    (void)logits;
    return decode_seqs(m, ids, n, vki_llm_info_get(m)->n_seq);
}

static vki_status run_decode_one(vki_llm *m, const int32_t *ids, uint32_t n, float *logits)
{
    (void)logits;
    return decode_seqs(m, ids, n, 1);
}

/* Each run: prefill `depth` tokens (not timed), then n single-token evaluations. */
static int measure_at_depth(vki_llm_session *s, const int32_t *ids, uint32_t depth, uint32_t n,
                            uint32_t reps, tps_stats *out)
{
    double tps[64];
    if (reps > 64) reps = 64;
    for (uint32_t r = 0; r <= reps; r++) {
        vki_llm_rewind(s->llm, 0);
        if (vki_llm_eval(s->llm, ids, depth, NULL))
            return vki_app_failf("bench llm: %s", vki_llm_last_error(s->llm));
        double t0 = vki_now_us();
        for (uint32_t i = 0; i < n; i++)
            if (vki_llm_eval(s->llm, &ids[depth + i], 1, s->logits))
                return vki_app_failf("bench llm: %s", vki_llm_last_error(s->llm));
        double t = (vki_now_us() - t0) / 1e6;
        if (r > 0) tps[r - 1] = n / t;
    }
    *out = summarise(tps, reps);
    return VKI_EXIT_OK;
}

/* Bytes one decode step reads on average over tokens depth .. depth + n - 1 (see the top). */
static double decode_bytes(const vki_llm_info *info, uint32_t depth, uint32_t n)
{
    double per_pos = (double)info->kv_bytes / ((double)info->n_ctx * (info->n_seq ? info->n_seq : 1));
    // A mixture of experts reads only the experts its token is routed to.
    double experts = (double)info->expert_bytes;
    double routed = info->n_expert ? experts * info->n_expert_used / info->n_expert : experts;
    return (double)info->weight_bytes - experts + routed + per_pos * (depth + (n + 1) / 2.0);
}

/* Flops of a prefill of n tokens from an empty cache (see the top). */
static double prefill_flops(const vki_llm_info *info, uint32_t n)
{
    double e = info->n_embd, q = (double)info->n_head * info->head_dim;
    double kv = (double)info->n_head_kv * info->head_dim;
    // A mixture of experts: the router, the experts each token is routed to, a shared expert.
    double ffn = info->n_expert ? e * info->n_expert + 3 * e * info->n_ff_exp * info->n_expert_used +
                                      3 * e * info->n_ff_shexp
                                : 3 * e * info->n_ff;
    double layer_params = e * q + 2 * e * kv + q * e + ffn;
    double attention = 4.0 * q * (n * (n + 1.0) / 2.0); // every layer, all queries
    return info->n_layer * (2 * layer_params * n + attention) + 2 * e * info->n_vocab;
}

static int measure(vki_llm_session *s, bench_run run, const int32_t *ids, uint32_t n,
                   uint32_t reps, tps_stats *out)
{
    double tps[64];
    if (reps > 64) reps = 64;
    for (uint32_t r = 0; r <= reps; r++) {
        double t0 = vki_now_us();
        if (run(s->llm, ids, n, s->logits)) return vki_app_failf("bench llm: %s", vki_llm_last_error(s->llm));
        double t = (vki_now_us() - t0) / 1e6;
        if (r > 0) tps[r - 1] = n / t;
    }
    *out = summarise(tps, reps);
    return VKI_EXIT_OK;
}

/* --synthetic NAME --save FILE: the synthetic model written as a GGUF file (created
 * exclusively), so that llama-bench runs the very same file; `llm` then names that file. */
static int save_synthetic(const vki_bench_opts *opts, vki_llm_opts *llm)
{
    void *bytes = NULL;
    size_t size = 0;
    char err[512] = "";
    vki_status st = vki_llm_synthetic(llm->synthetic, 1, &bytes, &size, err, sizeof err);
    if (st == VKI_OK) st = vki_file_write_new(opts->save, bytes, size, err, sizeof err);
    free(bytes);
    if (st) return vki_app_failf("bench llm: --save: %s", err);
    fprintf(stderr, "vkinfer: wrote %s (%.0f MiB)\n", opts->save, size / 1048576.0);
    llm->model = opts->save;
    llm->synthetic = NULL;
    return VKI_EXIT_OK;
}

int vki_bench_llm(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    double t_open = vki_now_us();
    vki_llm_opts llm = opts->llm;
    if (opts->save) {
        if (!llm.synthetic) return vki_app_failf("bench llm: --save writes a --synthetic model");
        int saved = save_synthetic(opts, &llm);
        if (saved != VKI_EXIT_OK) return saved;
    }
    vki_llm_session s;
    int code = vki_llm_session_open(app, &llm, &s);
    if (code != VKI_EXIT_OK) return code;
    const vki_llm_info *info = vki_llm_info_get(s.llm);
    const vki_profile *p = vki_device_profile(app->device);
    uint32_t reps = opts->reps ? opts->reps : p->type == VKI_DEVICE_CPU ? 2 : 5;
    uint32_t n_prompt = opts->n_prompt ? opts->n_prompt : 512;
    uint32_t n_gen = opts->n_gen ? opts->n_gen : 128;
    uint32_t longest = n_prompt > n_gen ? n_prompt : n_gen;
    if (longest < TTFT_PROMPT) longest = TTFT_PROMPT;
    uint32_t deepest = 0;
    for (uint32_t d = 0; d < opts->n_depths; d++)
        if (opts->depths[d] > deepest) deepest = opts->depths[d];
    if (deepest + n_gen > longest) longest = deepest + n_gen;
    int32_t *ids = malloc(longest * sizeof *ids);
    if (!ids) {
        code = vki_app_failf("bench llm: out of host memory");
        goto done;
    }
    vki_bench_peaks peaks;
    if ((code = vki_bench_peaks_get(app, opts, &peaks)) != VKI_EXIT_OK) goto done;
    if (deepest + n_gen > info->n_ctx) {
        code = vki_app_failf("bench llm: -d %u + -n %u exceed the %u-token context (--ctx)",
                             deepest, n_gen, info->n_ctx);
        goto done;
    }
    if (n_prompt > info->n_ctx || n_gen > info->n_ctx) {
        code = vki_app_failf("bench llm: -p %u / -n %u exceed the %u-token context (--ctx)",
                             n_prompt, n_gen, info->n_ctx);
        goto done;
    }
    uint64_t state = 0x9e3779b97f4a7c15ull; // a fixed sequence of ids (xorshift64)
    for (uint32_t i = 0; i < longest; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        ids[i] = (int32_t)(state % info->n_vocab);
    }
    // Progress on a terminal: the time to first token, pp, tg, the N-sequence pass, each depth.
    uint32_t step = 0, steps = 3 + (info->n_seq > 1 ? 2 : 0);
    for (uint32_t d = 0; d < opts->n_depths; d++) steps += opts->depths[d] != 0;
    char what[64];
    vki_bench_progress("llm", "time to first token", step++, steps);
    // Cold: everything from opening the file to the first token's logits.
    if (vki_llm_eval(s.llm, ids, TTFT_PROMPT, s.logits)) {
        code = vki_app_failf("bench llm: %s", vki_llm_last_error(s.llm));
        goto done;
    }
    double ttft_cold = (vki_now_us() - t_open) / 1000.0;
    double t0 = vki_now_us();
    if (run_prefill(s.llm, ids, TTFT_PROMPT, s.logits)) {
        code = vki_app_failf("bench llm: %s", vki_llm_last_error(s.llm));
        goto done;
    }
    double ttft_warm = (vki_now_us() - t0) / 1000.0;

    tps_stats pp = {0}, tg = {0};
    snprintf(what, sizeof what, "pp%u", n_prompt);
    vki_bench_progress("llm", what, step++, steps);
    if ((code = measure(&s, run_prefill, ids, n_prompt, reps, &pp))) goto done;
    snprintf(what, sizeof what, "tg%u", n_gen);
    vki_bench_progress("llm", what, step++, steps);
    if ((code = measure(&s, run_decode, ids, n_gen, reps, &tg))) goto done;
    double pp_mean = pp.mean, pp_sd = pp.sd, tg_mean = tg.mean, tg_sd = tg.sd;
    // The N-row pass: tokens/s of one sequence alone, and of all N (measure counts n_gen
    // tokens per run: scaled by N for the aggregate).
    tps_stats tg1 = {0}, tgn = {0};
    uint32_t n_seq = info->n_seq;
    if (n_seq > 1) {
        vki_bench_progress("llm", "1 sequence on the N-sequence pass", step++, steps);
        if ((code = measure(&s, run_decode_one, ids, n_gen, reps, &tg1))) goto done;
        vki_bench_progress("llm", "N sequences at once", step++, steps);
        if ((code = measure(&s, run_decode_all, ids, n_gen, reps, &tgn))) goto done;
        tgn.mean *= n_seq;
        tgn.sd *= n_seq;
        tgn.median *= n_seq;
    }
    double tgn_mean = tgn.mean, tgn_sd = tgn.sd, tg1_mean = tg1.mean, tg1_sd = tg1.sd;

    // Decode at each -d depth (depth 0 is the tg above).
    tps_stats depth[VKI_BENCH_MAX_DEPTHS] = {{0}};
    for (uint32_t d = 0; d < opts->n_depths; d++) {
        if (opts->depths[d] == 0) {
            depth[d] = tg;
            continue;
        }
        snprintf(what, sizeof what, "tg%u @ d%u", n_gen, opts->depths[d]);
        vki_bench_progress("llm", what, step++, steps);
        if ((code = measure_at_depth(&s, ids, opts->depths[d], n_gen, reps, &depth[d]))) goto done;
    }
    vki_bench_progress("llm", NULL, steps, steps); // cleared before the table
    double depth_mean[VKI_BENCH_MAX_DEPTHS] = {0}, depth_sd[VKI_BENCH_MAX_DEPTHS] = {0};
    for (uint32_t d = 0; d < opts->n_depths; d++) depth_mean[d] = depth[d].mean, depth_sd[d] = depth[d].sd;
    // Rooflines (see the top).
    double compute_peak = peaks.fp32_gflops;
    if (peaks.fp16_gflops > compute_peak) compute_peak = peaks.fp16_gflops;
    if (peaks.coopmat_fp16_gflops > compute_peak) compute_peak = peaks.coopmat_fp16_gflops;
    double pp_gflops = prefill_flops(info, n_prompt) * pp_mean / n_prompt / 1e9;
    double pp_share = compute_peak > 0 ? pp_gflops / compute_peak : 0;
    double tg_gbs = decode_bytes(info, 0, n_gen) * tg_mean / 1e9;
    double tg_share = peaks.read_gbs > 0 ? tg_gbs / peaks.read_gbs : 0;

    uint64_t device_bytes = info->weight_bytes + info->kv_bytes + info->activation_bytes;
    vki_json_add_text(out, "model", s.model_path, strlen(s.model_path));
    cJSON_AddStringToObject(out, "arch", info->arch);
    cJSON_AddNumberToObject(out, "n_ctx", info->n_ctx);
    cJSON_AddNumberToObject(out, "n_batch", info->n_batch);
    cJSON_AddNumberToObject(out, "reps", reps);
    char key[64];
    snprintf(key, sizeof key, "pp%u_tokens_per_s", n_prompt);
    vki_json_add_measure(out, key, pp_mean);
    snprintf(key, sizeof key, "pp%u_sd", n_prompt);
    vki_json_add_measure(out, key, pp_sd);
    snprintf(key, sizeof key, "pp%u_median_tokens_per_s", n_prompt);
    vki_json_add_measure(out, key, pp.median);
    snprintf(key, sizeof key, "tg%u_tokens_per_s", n_gen);
    vki_json_add_measure(out, key, tg_mean);
    snprintf(key, sizeof key, "tg%u_sd", n_gen);
    vki_json_add_measure(out, key, tg_sd);
    snprintf(key, sizeof key, "tg%u_median_tokens_per_s", n_gen);
    vki_json_add_measure(out, key, tg.median);
    if (n_seq > 1) {
        cJSON_AddNumberToObject(out, "parallel", n_seq);
        snprintf(key, sizeof key, "tg%u_1_of_%u_tokens_per_s", n_gen, n_seq);
        vki_json_add_measure(out, key, tg1_mean);
        snprintf(key, sizeof key, "tg%u_%u_of_%u_tokens_per_s", n_gen, n_seq, n_seq);
        vki_json_add_measure(out, key, tgn_mean);
    }
    vki_json_add_measure(out, "pp_gflops", pp_gflops);
    vki_json_add_measure(out, "pp_compute_roof_gflops", compute_peak);
    vki_json_add_measure(out, "pp_compute_roof_share", pp_share);
    cJSON_AddNumberToObject(out, "tg_bytes_per_token", decode_bytes(info, 0, n_gen));
    vki_json_add_measure(out, "tg_gbs", tg_gbs);
    vki_json_add_measure(out, "tg_bandwidth_roof_gbs", peaks.read_gbs);
    vki_json_add_measure(out, "tg_bandwidth_roof_share", tg_share);
    cJSON *depths = cJSON_AddArrayToObject(out, "depths");
    for (uint32_t d = 0; depths && d < opts->n_depths; d++) {
        cJSON *row = cJSON_CreateObject();
        if (!row) break;
        cJSON_AddItemToArray(depths, row);
        double bytes = decode_bytes(info, opts->depths[d], n_gen);
        cJSON_AddNumberToObject(row, "depth", opts->depths[d]);
        cJSON_AddNumberToObject(row, "n_gen", n_gen);
        vki_json_add_measure(row, "tokens_per_s", depth_mean[d]);
        vki_json_add_measure(row, "sd", depth_sd[d]);
        vki_json_add_measure(row, "median_tokens_per_s", depth[d].median);
        cJSON_AddNumberToObject(row, "bytes_per_token", bytes);
        vki_json_add_measure(row, "bandwidth_roof_share",
                             peaks.read_gbs > 0 ? bytes * depth_mean[d] / 1e9 / peaks.read_gbs : 0);
    }
    vki_json_add_measure(out, "ttft_cold_ms", ttft_cold);
    vki_json_add_measure(out, "ttft_warm_ms", ttft_warm);
    cJSON_AddNumberToObject(out, "weight_bytes", (double)info->weight_bytes);
    if (info->n_expert) cJSON_AddNumberToObject(out, "expert_bytes", (double)info->expert_bytes);
    cJSON_AddNumberToObject(out, "kv_bytes", (double)info->kv_bytes);
    cJSON_AddStringToObject(out, "kv_type", vki_dtype_get(info->kv_dtype)->name);
    cJSON_AddNumberToObject(out, "activation_bytes", (double)info->activation_bytes);
    cJSON_AddNumberToObject(out, "device_bytes", (double)device_bytes);
    if (!opts->json) {
        char w[32], k[32], a[32], t[32];
        printf("model %s (%s), context %u, batch %u, %u reps after a warm-up\n",
               info->name[0] ? info->name : s.model_path, info->arch, info->n_ctx, info->n_batch, reps);
        printf("  pp%-5u %10.2f ± %.2f tokens/s (median %.2f)\n", n_prompt, pp_mean, pp_sd, pp.median);
        printf("  tg%-5u %10.2f ± %.2f tokens/s (median %.2f)\n", n_gen, tg_mean, tg_sd, tg.median);
        for (uint32_t d = 0; d < opts->n_depths; d++) {
            double bytes = decode_bytes(info, opts->depths[d], n_gen);
            printf("  tg%-5u %10.2f ± %.2f tokens/s  @ depth %u: %.1f MB/token, %.1f%% of the "
                   "bandwidth roof\n", n_gen, depth_mean[d], depth_sd[d], opts->depths[d],
                   bytes / 1e6, peaks.read_gbs > 0 ? 100.0 * bytes * depth_mean[d] / 1e9 / peaks.read_gbs : 0);
        }
        printf("  roofs: prefill %.1f GFLOP/s = %.1f%% of %.1f GFLOP/s (best compute peak); decode "
               "%.1f GB/s = %.1f%% of %.1f GB/s (read bandwidth)\n", pp_gflops, 100.0 * pp_share,
               compute_peak, tg_gbs, 100.0 * tg_share, peaks.read_gbs);
        if (n_seq > 1) {
            printf("  tg%-5u %10.2f ± %.2f tokens/s  1 sequence on the %u-sequence pass\n", n_gen,
                   tg1_mean, tg1_sd, n_seq);
            printf("  tg%-5u %10.2f ± %.2f tokens/s  %u sequences at once, in all\n", n_gen,
                   tgn_mean, tgn_sd, n_seq);
        }
        printf("  time to first token (%u-token prompt): cold %.0f ms, warm %.1f ms\n", TTFT_PROMPT,
               ttft_cold, ttft_warm);
        printf("  device memory %s = weights %s + kv cache %s (%s) + activations %s\n",
               vki_bytes_string(device_bytes, t), vki_bytes_string(info->weight_bytes, w),
               vki_bytes_string(info->kv_bytes, k), vki_dtype_get(info->kv_dtype)->name,
               vki_bytes_string(info->activation_bytes, a));
    }
done:
    free(ids);
    vki_llm_session_close(&s);
    return code;
}
