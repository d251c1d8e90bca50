/* What the case tables (graph/cases/) share with the case runner (graph/cases.c): both are
 * the vkinfer_cases library, built on the graph layer's internals. */
#ifndef VKINFER_CASES_INTERNAL_H
#define VKINFER_CASES_INTERNAL_H

#include "../graph_internal.h"
#include "../vkinfer_graph_testing.h"

#define VKI_CASE_MAX_INTS 15

/* An I32 input [count] that the case runner fills with `values` (positions, padding -1s, ids
 * past the end) instead of random ids; count <= VKI_CASE_MAX_INTS. The values ride in the input
 * node's parameter bytes, which leaves do not otherwise use. */
vki_tensor vki__case_ints(vki_graph *g, const int32_t *values, uint32_t count, const char *name);

#endif
