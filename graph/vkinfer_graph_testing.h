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
} vki_case_result;

/* Normalised mean squared error that rounding the operands of dot products to fp16 (11-bit
 * significands, relative error up to 2^-11 for each factor: nmse about 2e-7) stays under. */
#define VKI_CASE_FP16_TOLERANCE 4e-6f

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
