/* `vkinfer bench ops`: the op conformance table's benchmark cases (real model shapes) timed on
 * the device: median GPU time of N runs after a warm-up, bytes moved per second, useful
 * floating-point operations per second, the share of the device's copy bandwidth that the
 * bytes moved reach (the figure that matters for memory-bound mat-vec kernels), and each case's
 * place on the roofline of the device's measured peaks (vki_bench_peaks_get):
 *
 *   intensity = flops / bytes moved (the runner's bytes: inputs, weights and outputs);
 *   bound     = compute where intensity >= compute peak / bandwidth peak (the ridge), else
 *               bandwidth (always for pure data movement, flops 0);
 *   roof      = the bound's peak: the bandwidth peak, or the compute peak; % of roof = the
 *               case's GB/s or GFLOP/s against it.
 *
 * The bandwidth peak is the best of the measured read, write and copy bandwidths (each counts
 * the bytes moved, as the cases do): a case that reads and writes cannot beat the best
 * pattern the device showed. The compute peak is the fp32 vector FMA peak, the first rule:
 * the small ops compute in fp32 whatever their storage; only cases whose dot products ran on
 * fp16 operands (fp16_dispatches: the matrix kernels) are held to the fp16 peak (the
 * cooperative-matrix one where larger) where it beats the fp32 one. Bytes are the runner's: whole tensors, so a case that
 * reads part of one (attention_pos over a cache filled only up to its position) can show more
 * than 100% of the bandwidth roof. The same cases run small in the conformance tests;
 * here results are not checked against the CPU reference, which would take minutes at these
 * shapes. */
#include "apps_internal.h"
#include "vkinfer_graph_testing.h"

#include <string.h>

typedef struct roofline {
    double intensity;  // flops per byte
    bool compute;      // the compute roof binds
    const char *peak;  // which compute peak: "fp32" or "fp16"
    double share;      // of the binding roof, 0..1 (0 where the peak is unknown)
} roofline;

static double max3(double a, double b, double c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static roofline place(const vki_bench_peaks *pk, const vki_op_case *c, const vki_case_result *r)
{
    roofline o = {.peak = "fp32"};
    double bw = max3(pk->read_gbs, pk->write_gbs, pk->copy_gbs);
    double flops_peak = pk->fp32_gflops;
    if (r->fp16_dispatches) {
        // Where fp16 is slower than fp32 (emulated, as on lavapipe), the fp32 peak stays the roof:
        // fp16 operands do not say the arithmetic was fp16.
        double f16 = pk->fp16_gflops > pk->coopmat_fp16_gflops ? pk->fp16_gflops : pk->coopmat_fp16_gflops;
        if (f16 > flops_peak) {
            flops_peak = f16;
            o.peak = "fp16";
        }
    }
    o.intensity = r->bytes ? c->flops / (double)r->bytes : 0;
    o.compute = c->flops > 0 && bw > 0 && flops_peak > 0 && o.intensity >= flops_peak / bw;
    if (r->us > 0) {
        double gbs = (double)r->bytes / r->us / 1e3, gflops = c->flops / r->us / 1e3;
        if (o.compute) o.share = gflops / flops_peak;
        else if (bw > 0) o.share = gbs / bw;
    }
    return o;
}

static bool add_peaks(cJSON *out, const vki_bench_peaks *pk)
{
    cJSON *o = cJSON_AddObjectToObject(out, "peaks");
    if (!o) return false;
    vki_json_add_measure(o, "fp32_gflops", pk->fp32_gflops);
    vki_json_add_measure(o, "fp16_gflops", pk->fp16_gflops);
    vki_json_add_measure(o, "coopmat_fp16_gflops", pk->coopmat_fp16_gflops);
    vki_json_add_measure(o, "read_gbs", pk->read_gbs);
    vki_json_add_measure(o, "write_gbs", pk->write_gbs);
    vki_json_add_measure(o, "copy_gbs", pk->copy_gbs);
    double bw = max3(pk->read_gbs, pk->write_gbs, pk->copy_gbs);
    vki_json_add_measure(out, "bandwidth_roof_gbs", bw);
    vki_json_add_measure(out, "ridge_flops_per_byte", bw > 0 ? pk->fp32_gflops / bw : 0);
    return true;
}

int vki_bench_ops(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    const vki_profile *p = vki_device_profile(app->device);
    if (!p->timestamps)
        return vki_app_failf("bench ops: %s cannot time dispatches (no timestamp queries)", p->name);
    double copy_gbs = 0;
    int code = vki_bench_copy_gbs(app, opts, &copy_gbs);
    if (code != VKI_EXIT_OK) return code;
    vki_bench_peaks peaks;
    if ((code = vki_bench_peaks_get(app, opts, &peaks)) != VKI_EXIT_OK) return code;
    uint32_t reps = opts->reps ? opts->reps : p->type == VKI_DEVICE_CPU ? 3 : 20;

    cJSON *cases = cJSON_AddArrayToObject(out, "cases");
    if (!cases || !cJSON_AddNumberToObject(out, "copy_gbs", copy_gbs) ||
        !cJSON_AddNumberToObject(out, "reps", reps) || !add_peaks(out, &peaks))
        return vki_app_failf("bench ops: out of host memory");
    if (!opts->json) {
        double bw = max3(peaks.read_gbs, peaks.write_gbs, peaks.copy_gbs);
        printf("copy bandwidth %.1f GB/s (read + write); median of %u runs after a warm-up\n",
               copy_gbs, reps);
        printf("roofs (measured peaks): bandwidth %.1f GB/s (best of read %.1f, write %.1f, copy "
               "%.1f), fp32 %.1f GFLOP/s, fp16 %.1f; ridge %.2f flop/byte\n\n",
               bw, peaks.read_gbs, peaks.write_gbs, peaks.copy_gbs, peaks.fp32_gflops,
               peaks.fp16_gflops, bw > 0 ? peaks.fp32_gflops / bw : 0);
        printf("  %-64s %10s %9s %9s %7s %5s %8s %-5s %6s\n", "case", "time µs", "GB/s", "GFLOP/s",
               "% copy", "disp", "flop/B", "bound", "% roof");
    }
    // Progress on a terminal while the rows go to a document (a table shows its own).
    uint32_t total = 0, done = 0;
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        total += (c->flags & VKI_CASE_BENCH) && (!opts->filter || strstr(c->name, opts->filter));
    }
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        if (!(c->flags & VKI_CASE_BENCH)) continue;
        if (opts->filter && !strstr(c->name, opts->filter)) continue;
        if (opts->json) vki_bench_progress("ops", c->name, done++, total);
        vki_case_desc desc = {.reps = reps, .skip_reference = true, .seed = 1};
        vki_case_result r;
        char err[512];
        vki_status st = vki_op_case_run(app->device, c, &desc, &r, err, sizeof err);
        if (st == VKI_ERROR_UNSUPPORTED) {
            if (!opts->json) printf("  %-64s skipped: %s\n", c->name, err);
            continue;
        }
        if (st != VKI_OK) return vki_app_failf("bench ops: %s", err);
        if (!r.guards_intact) return vki_app_failf("bench ops: %s wrote outside its output", c->name);
        double gbs = r.us > 0 ? (double)r.bytes / r.us / 1e3 : 0;
        double gflops = r.us > 0 ? c->flops / r.us / 1e3 : 0;
        double share = copy_gbs > 0 ? 100.0 * gbs / copy_gbs : 0;
        roofline roof = place(&peaks, c, &r);
        cJSON *row = cJSON_CreateObject();
        if (!row) return vki_app_failf("bench ops: out of host memory");
        cJSON_AddItemToArray(cases, row);
        cJSON_AddStringToObject(row, "name", c->name);
        cJSON_AddStringToObject(row, "op", c->op);
        cJSON_AddNumberToObject(row, "us", r.us);
        cJSON_AddNumberToObject(row, "bytes", (double)r.bytes);
        cJSON_AddNumberToObject(row, "flops", c->flops);
        cJSON_AddNumberToObject(row, "gbs", gbs);
        cJSON_AddNumberToObject(row, "gflops", gflops);
        cJSON_AddNumberToObject(row, "copy_share", share / 100.0);
        cJSON_AddNumberToObject(row, "dispatches", r.dispatches);
        // Dispatches on x rounded to int8 (the integer-dot mat-vec: VKI_NARROW=int-dot), so that
        // a comparison with and without it shows which kernel ran.
        cJSON_AddNumberToObject(row, "int8_dispatches", r.int8_dispatches);
        cJSON_AddNumberToObject(row, "intensity", roof.intensity);
        cJSON_AddStringToObject(row, "bound", roof.compute ? "compute" : "bandwidth");
        cJSON_AddStringToObject(row, "compute_peak", roof.peak);
        vki_json_add_measure(row, "roof_share", roof.share);
        if (!opts->json) {
            char label[96];
            snprintf(label, sizeof label, "%s%s", c->name, r.int8_dispatches ? " (int8 x)" : "");
            printf("  %-64s %10.1f %9.1f %9.1f %6.1f%% %5u %8.3f %-5s %5.1f%%\n", label, r.us, gbs,
                   gflops, share, r.dispatches, roof.intensity, roof.compute ? "comp" : "bw",
                   100.0 * roof.share);
        }
        fflush(stdout);
    }
    if (opts->json) vki_bench_progress("ops", NULL, total, total);
    return VKI_EXIT_OK;
}
