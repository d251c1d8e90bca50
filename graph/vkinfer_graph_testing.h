/* vkinfer graph, testing: the op conformance harness. The case tables (graph/cases/) and the
 * runner live in the vkinfer_cases library, not in libvkinfer_graph: the conformance tests,
 * the registry tests and `vkinfer bench ops` link it; applications embedding vkinfer do not.
 *
 * Usage: every test case against the CPU reference.
 *
 *     for (uint32_t i = 0; i < vki_op_case_count(); i++) {
 *         const vki_op_case *c = vki_op_case_at(i);
 *         if (!(c->flags & VKI_CASE_TEST)) continue;
 *         vki_case_result r;
 *         char err[256];
 *         if (vki_op_case_run(dev, c, NULL, &r, err, sizeof err) == VKI_OK)
 *             printf("%s: nmse %g\n", c->name, r.nmse);
 *     }
 *
 * Thread-safety: the case table is constant; vki_op_case_run builds its own graph, plan and
 * executor, so runs on different devices may go concurrently, runs on one device as its
 * executors allow (see vkinfer_graph.h). */
#ifndef VKINFER_GRAPH_TESTING_H
#define VKINFER_GRAPH_TESTING_H

#include "vkinfer_graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Op conformance cases (the tests and `vkinfer bench ops` share them) ---------------------- */

enum {
    VKI_CASE_TEST = 1u << 0,  // small: part of the conformance tests
    VKI_CASE_BENCH = 1u << 1, // part of `vkinfer bench ops` (real model shapes)
};

typedef struct vki_op_case {
    const char *name;         // "matmul q4_0 [576, 576] x [576, 1]"
    const char *op;           // the op it exercises ("matmul")
    uint32_t flags;
    float tolerance;          // max normalised mean squared error against the CPU reference
    int32_t index_limit;      // I32 inputs are drawn from [0, index_limit)
    void (*build)(vki_graph *g, const int64_t *arg); // makes inputs, weights, ops, outputs
    int64_t arg[8];
    double flops;             // useful floating-point operations of one run (0: not counted)
} vki_op_case;

uint32_t vki_op_case_count(void);
const vki_op_case *vki_op_case_at(uint32_t index);

typedef struct vki_case_result {
    double nmse;              // worst output: sum((y - ref)^2) / sum(ref^2)
    bool guards_intact;       // bytes around every output were not written
    double us;                // device time of one run (median of `reps`), when timed
    uint64_t bytes;           // bytes of inputs, weights and outputs touched by one run
    uint32_t dispatches;
    uint32_t fp16_dispatches; // see vki_plan_stats: the case's tolerance is then at least
                              // VKI_CASE_FP16_TOLERANCE
    uint32_t int8_dispatches; // see vki_plan_stats: the tolerance is then at least
                              // VKI_CASE_INT8_TOLERANCE
} vki_case_result;

/* Normalised mean squared error that rounding the operands of dot products to fp16 (11-bit
 * significands, relative error up to 2^-11 for each factor: nmse about 2e-7) stays under. */
#define VKI_CASE_FP16_TOLERANCE 4e-6f

/* The same for x rounded to int8 in blocks of 32 with the scale d = max|x| / 127 (the
 * integer-dot mat-vec): each element's error is uniform in [-d/2, d/2], variance d^2 / 12, so a
 * dot product with independent weights has nmse d^2 / 12 / mean(x^2); for the cases' uniform
 * x in [-1, 1] (mean(x^2) = 1/3, max|x| about 0.97) about 1.5e-5. The cases' 20 to 100 outputs
 * spread it (simulated: at most 4.4e-5 over 400 draws of 35 outputs); 5e-5 holds those and
 * fails rounding by truncation (nmse 4x, about 6e-5) in most draws, a lost scale, nibble
 * order or offset by orders of magnitude. */
#define VKI_CASE_INT8_TOLERANCE 5e-5f

typedef struct vki_case_desc {
    uint64_t seed;            // random data; 0: 1
    const vki_compile_desc *compile;
    uint32_t reps;            // > 0: time that many runs (timestamps) after one warm-up
    bool skip_reference;      // benchmarks of big shapes
    const vki_profile *profile; // compile for this profile (a narrower one than the device's:
                                // a smaller binding limit); NULL: the device's
} vki_case_desc;

/* Builds the case, fills inputs and weights with seeded random data (quantised weights from
 * random floats), runs it on `device` with guard bytes around each output, evaluates the CPU
 * reference and compares. A status other than OK is a failure to run at all; the message is in
 * out_error (at least 256 bytes). */
vki_status vki_op_case_run(vki_device *device, const vki_op_case *c, const vki_case_desc *desc,
                           vki_case_result *out_result, char *out_error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
