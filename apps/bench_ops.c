/* `vkinfer bench ops`: the op conformance table's benchmark cases (real model shapes) timed on
 * the device: median GPU time of N runs after a warm-up, bytes moved per second, useful
 * floating-point operations per second, and the share of the device's copy bandwidth that the
 * bytes moved reach (the figure that matters for memory-bound mat-vec kernels). The same cases
 * run small in the conformance tests; here results are not checked against the CPU reference,
 * which would take minutes at these shapes. */
#include "apps_internal.h"
#include "vkinfer_graph_testing.h"

#include <string.h>

int vki_bench_ops(vki_app *app, const vki_bench_opts *opts, cJSON *out)
{
    const vki_profile *p = vki_device_profile(app->device);
    if (!p->timestamps)
        return vki_app_failf("bench ops: %s cannot time dispatches (no timestamp queries)", p->name);
    double copy_gbs = 0;
    int code = vki_bench_copy_gbs(app, opts, &copy_gbs);
    if (code != VKI_EXIT_OK) return code;
    uint32_t reps = opts->reps ? opts->reps : p->type == VKI_DEVICE_CPU ? 3 : 20;

    cJSON *cases = cJSON_AddArrayToObject(out, "cases");
    if (!cases || !cJSON_AddNumberToObject(out, "copy_gbs", copy_gbs) ||
        !cJSON_AddNumberToObject(out, "reps", reps))
        return vki_app_failf("bench ops: out of host memory");
    if (!opts->json) {
        printf("copy bandwidth %.1f GB/s (read + write); median of %u runs after a warm-up\n\n",
               copy_gbs, reps);
        printf("  %-48s %10s %9s %9s %7s %5s\n", "case", "time µs", "GB/s", "GFLOP/s", "% copy",
               "disp");
    }
    for (uint32_t i = 0; i < vki_op_case_count(); i++) {
        const vki_op_case *c = vki_op_case_at(i);
        if (!(c->flags & VKI_CASE_BENCH)) continue;
        if (opts->filter && !strstr(c->name, opts->filter)) continue;
        vki_case_desc desc = {.reps = reps, .skip_reference = true, .seed = 1};
        vki_case_result r;
        char err[512];
        vki_status st = vki_op_case_run(app->device, c, &desc, &r, err, sizeof err);
        if (st == VKI_ERROR_UNSUPPORTED) {
            if (!opts->json) printf("  %-48s skipped: %s\n", c->name, err);
            continue;
        }
        if (st != VKI_OK) return vki_app_failf("bench ops: %s", err);
        if (!r.guards_intact) return vki_app_failf("bench ops: %s wrote outside its output", c->name);
        double gbs = r.us > 0 ? (double)r.bytes / r.us / 1e3 : 0;
        double gflops = r.us > 0 ? c->flops / r.us / 1e3 : 0;
        double share = copy_gbs > 0 ? 100.0 * gbs / copy_gbs : 0;
        cJSON *row = cJSON_CreateObject();
        if (!row) return vki_app_failf("bench ops: out of host memory");
        cJSON_AddItemToArray(cases, row);
        cJSON_AddStringToObject(row, "name", c->name);
        cJSON_AddStringToObject(row, "op", c->op);
        cJSON_AddNumberToObject(row, "us", r.us);
        cJSON_AddNumberToObject(row, "bytes", (double)r.bytes);
        cJSON_AddNumberToObject(row, "gbs", gbs);
        cJSON_AddNumberToObject(row, "gflops", gflops);
        cJSON_AddNumberToObject(row, "copy_share", share / 100.0);
        cJSON_AddNumberToObject(row, "dispatches", r.dispatches);
        if (!opts->json)
            printf("  %-48s %10.1f %9.1f %9.1f %6.1f%% %5u\n", c->name, r.us, gbs, gflops, share,
                   r.dispatches);
        fflush(stdout);
    }
    return VKI_EXIT_OK;
}
