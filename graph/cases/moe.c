/* Conformance and benchmark cases of the mixture-of-experts ops: top_k, moe_weights,
 * moe_combine and matmul_id, alone and as one MoE block (router logits -> top_k -> weights,
 * expert products -> combine), and the compiler's folds of them: top_k and the weights in one
 * dispatch, gate and up with their glu, the down product with the combine.
 *
 * Shapes are small and odd: 5 to 8 experts, 1 to 3 slots, K = 67 for the float weights (rows
 * end in a partial chunk), N = 1, 2, 7, 33. Ids are random over [0, E + 2): duplicates within a
 * token and ids past the experts (zero columns, zero weights); fixed ones add negatives. top_k
 * sees strided rows (a transposed input), ties (a row holding each value twice), NaN and
 * infinities. Every name starts with "moe" so that `vkinfer bench ops --filter moe` takes the
 * model-shaped rows: OLMoE-1B-7B (64 experts, 8 per token, 2048 -> 1024 and back),
 * Qwen3-30B-A3B (128 experts, 8 per token, 2048 -> 768 and back), Mixtral 8x7B (8 experts, 2
 * per token, 4096 -> 14336 and back), each at decode (1 token) and a short prefill.
 *
 * Tolerances: top_k's indices are exact (nmse 0); matmul_id's as matmul's (quantized weights
 * decoded identically, fp32 sums against the reference's double ones); the softmax and the
 * combine are fp32 against double. Bench bytes count every weight in full, though a decode step
 * reads only the chosen experts: their GB/s is the stacked weights' over the time. */
#include "cases_internal.h"

#include <math.h>

/* ---- builders ------------------------------------------------------------------------------ */

enum { PLAIN, STRIDED, TIES, SPECIAL, BATCHED };

/* top_k(x, arg3) of x [arg1, arg2] of dtype arg0 made as arg4 says: PLAIN an input; STRIDED
 * the transpose of an [arg2, arg1] input (rows of stride arg2 elements); TIES every value twice
 * (two copies of an [arg1 / 2, arg2] input); SPECIAL f32 rows of 2 NaNs, arg1 - 5 finite values
 * and 3 infinities of random signs; BATCHED x [arg1, arg2, 2, 2]. */
static void top_k_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype dt = (vki_dtype)arg[0];
    int64_t E = arg[1], N = arg[2];
    vki_tensor x;
    switch (arg[4]) {
    case STRIDED: x = vki_transpose(g, vki_input(g, dt, 2, (int64_t[]){N, E}, "x")); break;
    case TIES: {
        vki_tensor a = vki_input(g, dt, 2, (int64_t[]){E / 2, N}, "x");
        x = vki_concat(g, a, a, 0);
        break;
    }
    case SPECIAL: {
        vki_tensor a = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){2, N}, "a");
        vki_tensor b = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){E - 5, N}, "b");
        vki_tensor c = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){3, N}, "c");
        // a inf + a (-inf) is NaN for every a but 0 (drawn once in 2^24; the reference then
        // sees the same 0 * inf, NaN too).
        vki_tensor nan = vki_add(g, vki_scale(g, a, INFINITY), vki_scale(g, a, -INFINITY));
        x = vki_concat(g, vki_concat(g, nan, b, 0), vki_scale(g, c, INFINITY), 0);
        break;
    }
    case BATCHED: x = vki_input(g, dt, 4, (int64_t[]){E, N, 2, 2}, "x"); break;
    default: x = vki_input(g, dt, 2, (int64_t[]){E, N}, "x"); break;
    }
    vki_output(g, vki_top_k(g, x, (uint32_t)arg[3]), "ids");
}

/* ids [k, N]: random (the case's index limit) or, when `fixed` is not NULL, those values. */
static vki_tensor ids_input(vki_graph *g, int64_t k, int64_t N, const int32_t *fixed)
{
    if (!fixed) return vki_input(g, VKI_DTYPE_I32, 2, (int64_t[]){k, N}, "ids");
    return vki_reshape(g, vki__case_ints(g, fixed, (uint32_t)(k * N), "ids"), 2, (int64_t[]){k, N});
}

/* Ids with negatives, duplicates and ids past 5 experts, for k * N = 14. */
static const int32_t fixed_ids[14] = {3, -1, 4, 4, 5, 0, -7, 2, 1, 1, 2147483647, 3, 0, -2147483647 - 1};

/* moe_weights(x [arg0, arg1] f32, ids [arg2, arg1], normalize arg3); fixed ids when arg4. */
static void moe_weights_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){arg[0], arg[1]}, "x");
    vki_tensor ids = ids_input(g, arg[2], arg[1], arg[4] ? fixed_ids : NULL);
    vki_output(g, vki_moe_weights(g, x, ids, arg[3] != 0), "w");
}

/* A router's top_k and weights, both outputs: logits x [arg0, arg1] f32 (the transpose of an
 * [arg1, arg0] input when arg4), top_k k = arg2, moe_weights normalize arg3. The compiler folds
 * the two into one dispatch (the top_k kernel writing the weights too). */
static void moe_route_case(vki_graph *g, const int64_t *arg)
{
    int64_t E = arg[0], N = arg[1];
    vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){arg[4] ? N : E, arg[4] ? E : N}, "x");
    if (arg[4]) x = vki_transpose(g, x);
    vki_tensor ids = vki_top_k(g, x, (uint32_t)arg[2]);
    vki_output(g, ids, "ids");
    vki_output(g, vki_moe_weights(g, x, ids, arg[3] != 0), "w");
}

/* What follows moe_combine in moe_combine_case's arg[4] (folded into its dispatch): a scale
 * (Granite's residual multiplier), then an add of a residual on the left (the residual stream)
 * or on the right (Qwen2-MoE's shared expert). */
#define C_SCALE (1 << 0)
#define C_RES_LEFT (1 << 1)
#define C_RES_RIGHT (1 << 2)

/* moe_combine(y [arg0, arg1, arg2] f32, w [arg1, arg2] f32); y a strided view (rows of arg0 + 3
 * elements) when arg3; a scale and a residual after it as arg4 says (C_*). */
static void moe_combine_case(vki_graph *g, const int64_t *arg)
{
    int64_t M = arg[0], k = arg[1], N = arg[2];
    vki_tensor y;
    if (arg[3]) {
        vki_tensor base = vki_input(g, VKI_DTYPE_F32, 3, (int64_t[]){M + 3, k, N}, "y");
        vki_tensor_info info;
        vki_tensor_get_info(g, base, &info);
        y = vki_view(g, base, 3, (int64_t[]){M, k, N}, info.nb, 4);
    } else {
        y = vki_input(g, VKI_DTYPE_F32, 3, (int64_t[]){M, k, N}, "y");
    }
    vki_tensor w = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){k, N}, "w");
    vki_tensor out = vki_moe_combine(g, y, w);
    if (arg[4] & C_SCALE) out = vki_scale(g, out, 0.3125f);
    if (arg[4] & (C_RES_LEFT | C_RES_RIGHT)) {
        vki_tensor r = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){M, N}, "r");
        out = arg[4] & C_RES_LEFT ? vki_add(g, r, out) : vki_add(g, out, r);
    }
    vki_output(g, out, "out");
}

/* Variant bits of matmul_id_case's arg[7]. */
#define SHARED_X (1 << 0) // x [K, 1, N]: one column for every slot (else [K, k, N])
#define X_F16 (1 << 1)
#define FIXED (1 << 2)    // the fixed ids (k * N = 14)
#define BLOCK (1 << 3)    // a whole MoE block: ids and weights from router logits [E, N]
#define GLU (1 << 4)      // swiglu of the gate and up products, w [K, M, 2E] their joined experts
#define GEGLU (1 << 5)    // with GLU: geglu
#define LATE_WEIGHTS (1 << 6) // with BLOCK: the weights built after the product (which reads
                              // the ids first: the top_k is not folded into them)
#define WITH_COMBINE (1 << 7) // moe_combine of the product by weights w [k, N], then arg[6]'s C_*

/* matmul_id(w [arg1, arg2, arg3] of dtype arg0, x [arg1, k or 1, arg5], ids [arg4, arg5]); with
 * WITH_COMBINE, moe_combine of it by input weights, then a scale and a residual as arg6 says
 * (C_*): a decode's whole down product, which the compiler folds into one dispatch. */
static void matmul_id_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype wt = (vki_dtype)arg[0];
    int64_t K = arg[1], M = arg[2], E = arg[3], k = arg[4], N = arg[5], flags = arg[7];
    vki_tensor x = vki_input(g, flags & X_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32, 3,
                             (int64_t[]){K, flags & SHARED_X ? 1 : k, N}, "x");
    if (flags & GLU) {
        // The gate and up experts as halves of one stacked weight, as a model joins them:
        // matvec_wide's decode folds both products and the glu into one dispatch.
        vki_tensor j = vki_weight(g, wt, 3, (int64_t[]){K, M, 2 * E}, "w");
        vki_tensor_info info;
        vki_tensor_get_info(g, j, &info);
        const int64_t half[3] = {K, M, E};
        vki_tensor wg = vki_view(g, j, 3, half, info.nb, 0);
        vki_tensor wu = vki_view(g, j, 3, half, info.nb, (uint64_t)E * info.nb[2]);
        vki_tensor ids = ids_input(g, k, N, flags & FIXED ? fixed_ids : NULL);
        vki_tensor gate = vki_matmul_id(g, wg, x, ids), up = vki_matmul_id(g, wu, x, ids);
        vki_output(g, flags & GEGLU ? vki_geglu(g, gate, up) : vki_swiglu(g, gate, up), "y");
        return;
    }
    vki_tensor w = vki_weight(g, wt, 3, (int64_t[]){K, M, E}, "w");
    if (flags & BLOCK) {
        vki_tensor logits = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){E, N}, "logits");
        vki_tensor ids = vki_top_k(g, logits, (uint32_t)k), weights = {0}, y = {0};
        if (!(flags & LATE_WEIGHTS)) weights = vki_moe_weights(g, logits, ids, true);
        y = vki_matmul_id(g, w, x, ids);
        if (flags & LATE_WEIGHTS) weights = vki_moe_weights(g, logits, ids, false);
        vki_output(g, vki_moe_combine(g, y, weights), "out");
        return;
    }
    vki_tensor ids = ids_input(g, k, N, flags & FIXED ? fixed_ids : NULL);
    vki_tensor y = vki_matmul_id(g, w, x, ids);
    if (flags & WITH_COMBINE) {
        y = vki_moe_combine(g, y, vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){k, N}, "rw"));
        if (arg[6] & C_SCALE) y = vki_scale(g, y, 0.3125f);
        if (arg[6] & (C_RES_LEFT | C_RES_RIGHT)) {
            vki_tensor r = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){M, N}, "r");
            y = arg[6] & C_RES_LEFT ? vki_add(g, r, y) : vki_add(g, y, r);
        }
    }
    vki_output(g, y, "y");
}

/* ---- the table ----------------------------------------------------------------------------- */

#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH

#define TOPK(DT, dt, E, N, K, MODE, what)                                                       \
    {"moe top_k " #dt " [" #E ", " #N "] k " #K what, "top_k", T, 0.0f, 0, top_k_case,           \
     {VKI_DTYPE_##DT, E, N, K, MODE}, 0}
#define WEIGHTS(E, N, K, NORM, FIX, LIMIT, what)                                                \
    {"moe moe_weights [" #E ", " #N "] k " #K what, "moe_weights", T, 1e-10f, LIMIT,            \
     moe_weights_case, {E, N, K, NORM, FIX}, 0}
#define COMBINE(M, K, N, STR, what)                                                             \
    {"moe moe_combine [" #M ", " #K ", " #N "]" what, "moe_combine", T, 1e-12f, 0,              \
     moe_combine_case, {M, K, N, STR}, 0}
/* top_k and moe_weights of the same logits, folded into one dispatch. */
#define ROUTE(E, N, K, NORM, STR, what)                                                         \
    {"moe route [" #E ", " #N "] k " #K what, "moe_weights", T, 1e-10f, 0, moe_route_case,      \
     {E, N, K, NORM, STR}, 0}
/* moe_combine with a scale and/or a residual after it, which the fusion pass folds in. */
#define COMBINE_FOLD(M, K, N, STR, FOLD, what)                                                  \
    {"moe moe_combine [" #M ", " #K ", " #N "]" what, "moe_combine", T, 1e-12f, 0,              \
     moe_combine_case, {M, K, N, STR, FOLD}, 0}
/* matmul_id wt [K, M, E] with k slots of N tokens; ids drawn from [0, E + 2). */
#define MID(WT, wt, K, M, E, k, N, FL, what)                                                    \
    {"moe matmul_id " #wt " [" #K ", " #M ", " #E "] k " #k " N " #N what, "matmul_id", T,      \
     1e-9f, E + 2, matmul_id_case, {VKI_DTYPE_##WT, K, M, E, k, N, 0, FL}, 0}
/* Every weight dtype: a decode step (N = 1, x per slot), two tokens sharing x and 7 tokens
 * (mat-vecs per pair), 33 tokens (grouped by expert). */
#define MID_DTYPE(WT, wt, K)                                                                    \
    MID(WT, wt, K, 35, 6, 2, 1, 0, ""), MID(WT, wt, K, 13, 5, 3, 2, SHARED_X, " shared x"),    \
        MID(WT, wt, K, 19, 7, 1, 7, 0, ""), MID(WT, wt, K, 35, 8, 2, 33, 0, "")

/* The gate and up products with their glu, every weight dtype: a decode step with x shared by
 * the slots (a model's), one with x per slot, two tokens, fixed ids (negatives, ids past E) at
 * 7 tokens. Ids from [0, E + 2): ids E and E + 1 name up experts of the joined weight, which
 * must give zeros as any id past the gate experts does. */
#define MIDG(WT, wt, K, M, E, k, N, FL, what)                                                   \
    {"moe matmul_id glu " #wt " [" #K ", " #M ", 2 x " #E "] k " #k " N " #N what, "matmul_id",  \
     T, 1e-9f, E + 2, matmul_id_case, {VKI_DTYPE_##WT, K, M, E, k, N, 0, GLU | (FL)}, 0}
#define MIDG_DTYPE(WT, wt, K)                                                                   \
    MIDG(WT, wt, K, 35, 6, 3, 1, SHARED_X, " shared x"), MIDG(WT, wt, K, 13, 5, 3, 1, 0, ""),   \
        MIDG(WT, wt, K, 19, 7, 2, 2, SHARED_X, " shared x"),                                    \
        MIDG(WT, wt, K, 9, 5, 2, 7, SHARED_X | FIXED, " shared x, fixed ids")

/* The down product and the combine (folded into one dispatch at decode: matvec_wide or
 * matvec.comp's _id kernels), a scale and a residual after it as FOLD says (C_*). */
#define MIDC(WT, wt, K, M, E, k, N, FL, FOLD, what)                                             \
    {"moe matmul_id combine " #wt " [" #K ", " #M ", " #E "] k " #k " N " #N what, "matmul_id", \
     T, 1e-9f, E + 2, matmul_id_case, {VKI_DTYPE_##WT, K, M, E, k, N, FOLD, WITH_COMBINE | (FL)}, 0}

/* Benchmarks: OLMoE-1B-7B, Qwen3-30B-A3B and Mixtral's expert products, ids uniform over the
 * experts. */
#define MIDB(WT, wt, K, M, E, k, N, model)                                                      \
    {"moe matmul_id " #wt " [" #K ", " #M ", " #E "] k " #k " N " #N " (" model ")",            \
     "matmul_id", B, 1e-6f, E, matmul_id_case, {VKI_DTYPE_##WT, K, M, E, k, N, 0, SHARED_X},   \
     2.0 * K * M * k * N}
/* Granite-MoE's decode (32 experts, 8 a token, 1024 -> 512 -> 1024): the down product with x
 * per slot alone and with its combine, scale and residual (one dispatch where folded); the
 * router's top_k and weights alone and together. */
#define MIDCB(FL, FOLD, what)                                                                   \
    {"moe matmul_id q4_0 [512, 1024, 32] k 8 N 1" what " (Granite down)", "matmul_id", B, 1e-6f, \
     32, matmul_id_case, {VKI_DTYPE_Q4_0, 512, 1024, 32, 8, 1, FOLD, FL}, 2.0 * 512 * 1024 * 8}
#define ROUTEB(E, N, K, NORM, model)                                                            \
    {"moe route [" #E ", " #N "] k " #K " (" model ")", "moe_weights", B, 1e-10f, 0,              \
     moe_route_case, {E, N, K, NORM, 0}, 4.0 * E * N}
#define TOPKB(E, N, K, model)                                                                   \
    {"moe top_k f32 [" #E ", " #N "] k " #K " (" model ")", "top_k", B, 0.0f, 0, top_k_case,    \
     {VKI_DTYPE_F32, E, N, K, PLAIN}, 0}
#define WEIGHTSB(E, N, K, model)                                                                \
    {"moe moe_weights [" #E ", " #N "] k " #K " (" model ")", "moe_weights", B, 1e-10f, E,     \
     moe_weights_case, {E, N, K, 1, 0}, 4.0 * E * N}
#define COMBINEB(M, K, N, model)                                                                \
    {"moe moe_combine [" #M ", " #K ", " #N "] (" model ")", "moe_combine", B, 1e-12f, 0,       \
     moe_combine_case, {M, K, N, 0}, 2.0 * M * K * N}

const vki_op_case vki_cases_moe[] = {
    // top_k: router rows of 5 to 4096 (one workgroup per row, rows longer than it), k from 1
    // to the whole row.
    TOPK(F32, f32, 8, 7, 2, PLAIN, ""),
    TOPK(F32, f32, 5, 33, 3, PLAIN, ""),
    TOPK(F32, f32, 6, 2, 6, PLAIN, " (whole row)"),
    TOPK(F32, f32, 64, 5, 8, PLAIN, ""),
    TOPK(F32, f32, 300, 3, 1, PLAIN, ""),
    TOPK(F32, f32, 4096, 2, 9, PLAIN, ""),
    TOPK(F16, f16, 8, 7, 2, PLAIN, ""),
    TOPK(F16, f16, 129, 3, 8, PLAIN, ""),
    TOPK(F32, f32, 7, 9, 3, STRIDED, " strided"),
    TOPK(F16, f16, 65, 4, 5, STRIDED, " strided"),
    TOPK(F32, f32, 12, 5, 7, TIES, " ties"),
    TOPK(F16, f16, 130, 3, 9, TIES, " ties"),
    TOPK(F32, f32, 10, 4, 10, SPECIAL, " NaN, inf"),
    TOPK(F32, f32, 13, 3, 4, SPECIAL, " NaN, inf"),
    TOPK(F32, f32, 6, 3, 2, BATCHED, " batched [6, 3, 2, 2]"),
    // moe_weights: duplicates and ids past E (random over [0, E + 2)); negatives (fixed).
    WEIGHTS(8, 7, 2, 1, 0, 10, " normalized"),
    WEIGHTS(8, 7, 2, 0, 0, 10, ""),
    WEIGHTS(5, 33, 3, 1, 0, 7, " normalized"),
    WEIGHTS(64, 2, 8, 1, 0, 64, " normalized"),
    WEIGHTS(5, 7, 2, 1, 1, 1, " normalized, fixed ids"),
    WEIGHTS(5, 7, 2, 0, 1, 1, " fixed ids"),
    // top_k and moe_weights in one dispatch: both gatings, a strided router, a whole row.
    ROUTE(8, 7, 2, 1, 0, " normalized"),
    ROUTE(32, 3, 8, 0, 0, ""),
    ROUTE(40, 2, 8, 1, 1, " normalized, strided"),
    ROUTE(5, 33, 5, 0, 0, " (whole row)"),
    // moe_combine.
    COMBINE(7, 3, 5, 0, ""),
    COMBINE(33, 1, 2, 0, ""),
    COMBINE(9, 2, 33, 1, " strided"),
    COMBINE_FOLD(7, 3, 5, 0, C_SCALE, " * 0.3125"),
    COMBINE_FOLD(33, 8, 1, 0, C_SCALE | C_RES_LEFT, " * 0.3125, r + (Granite's residual)"),
    COMBINE_FOLD(9, 2, 33, 1, C_SCALE | C_RES_RIGHT, " strided * 0.3125, + r"),
    COMBINE_FOLD(65, 2, 3, 0, C_RES_RIGHT, " + r (a shared expert)"),
    COMBINE_FOLD(64, 4, 2, 0, C_RES_LEFT, " r +"),
    // matmul_id: every weight dtype.
    MID_DTYPE(F32, f32, 67),
    MID_DTYPE(F16, f16, 67),
    MID_DTYPE(BF16, bf16, 67),
    MID_DTYPE(Q8_0, q8_0, 64),
    MID_DTYPE(Q4_0, q4_0, 64),
    MID_DTYPE(Q4_1, q4_1, 96),
    MID_DTYPE(Q5_0, q5_0, 64),
    MID_DTYPE(Q5_1, q5_1, 64),
    MID_DTYPE(Q4_K, q4_k, 256),
    MID_DTYPE(Q5_K, q5_k, 256),
    MID_DTYPE(Q6_K, q6_k, 256),
    // x in f16, 33 tokens (a prefill), fixed ids with negatives, a whole MoE block.
    MID(Q4_0, q4_0, 64, 35, 8, 2, 7, X_F16, " x f16"),
    MID(F16, f16, 67, 13, 6, 3, 33, SHARED_X | X_F16, " shared x f16"),
    MID(Q8_0, q8_0, 96, 35, 8, 3, 33, 0, ""),
    MID(Q4_K, q4_k, 256, 21, 5, 2, 33, SHARED_X, " shared x"),
    MID(Q6_K, q6_k, 256, 9, 5, 2, 7, FIXED, " fixed ids"),
    MID(F32, f32, 67, 11, 5, 2, 7, FIXED | SHARED_X, " shared x, fixed ids"),
    // K below one 32-wide chunk: the down product of experts 16 wide (the tiny Qwen MoE goldens),
    // which a kernel reading whole chunks gets wrong.
    MID(F32, f32, 16, 64, 8, 2, 1, 0, " K 16"),
    MID(F16, f16, 16, 64, 4, 2, 7, 0, " K 16"),
    MID(F16, f16, 24, 33, 5, 3, 2, SHARED_X, " K 24 shared x"),
    // Enough pairs per expert for full register tiles (lavapipe's grouped path): 36, 32.
    MID(Q4_0, q4_0, 64, 35, 5, 3, 60, 0, ""),
    MID(F16, f16, 67, 13, 5, 2, 80, SHARED_X | X_F16, " shared x f16"),
    MID(Q5_K, q5_k, 256, 9, 4, 2, 64, SHARED_X, " shared x"),
    MID(Q4_1, q4_1, 64, 35, 8, 3, 7, BLOCK | SHARED_X, " MoE block"),
    MID(F16, f16, 67, 19, 6, 2, 33, BLOCK | SHARED_X, " MoE block"),
    MID(Q8_0, q8_0, 64, 19, 5, 2, 96, BLOCK | SHARED_X, " MoE block"),
    MID(Q4_0, q4_0, 64, 19, 6, 2, 3, BLOCK | SHARED_X | LATE_WEIGHTS, " MoE block, weights last"),
    // The gate and up products with their glu (folded into one dispatch where matvec_wide
    // takes the decode): every weight dtype, geglu, x f16, 33 tokens (not folded: mat-vecs
    // of views of the joined weight, grouped by expert), K below one chunk.
    MIDG_DTYPE(F32, f32, 67),
    MIDG_DTYPE(F16, f16, 67),
    MIDG_DTYPE(BF16, bf16, 67),
    MIDG_DTYPE(Q8_0, q8_0, 64),
    MIDG_DTYPE(Q4_0, q4_0, 64),
    MIDG_DTYPE(Q4_1, q4_1, 96),
    MIDG_DTYPE(Q5_0, q5_0, 64),
    MIDG_DTYPE(Q5_1, q5_1, 64),
    MIDG_DTYPE(Q4_K, q4_k, 256),
    MIDG_DTYPE(Q5_K, q5_k, 256),
    MIDG_DTYPE(Q6_K, q6_k, 256),
    MIDG(Q4_0, q4_0, 128, 64, 8, 8, 1, SHARED_X | GEGLU, " shared x geglu"),
    MIDG(Q4_0, q4_0, 64, 35, 8, 2, 1, SHARED_X | X_F16, " shared x f16"),
    MIDG(Q8_0, q8_0, 64, 35, 8, 2, 33, SHARED_X, " shared x"),
    MIDG(F16, f16, 16, 40, 4, 2, 1, SHARED_X, " K 16 shared x"),
    // The down product with the weighted combine (folded at decode: matvec_wide on the full
    // profile, matvec.comp's _id kernels under tuning=nvidia and its shared-memory fallback
    // without subgroups), every weight dtype; Granite's scale and residual, a shared expert's
    // add, x f16, fixed ids (negatives, ids past E), K below one chunk (and K 67: a float
    // tail past the chunks); 33 tokens (not folded).
    MIDC(F32, f32, 67, 35, 6, 2, 1, 0, C_SCALE | C_RES_LEFT, " * s, r +"),
    MIDC(F16, f16, 67, 13, 5, 3, 2, 0, 0, ""),
    MIDC(BF16, bf16, 67, 19, 7, 2, 1, 0, C_RES_RIGHT, " + r"),
    MIDC(Q8_0, q8_0, 64, 35, 6, 3, 1, 0, C_SCALE, " * s"),
    MIDC(Q4_0, q4_0, 64, 70, 8, 8, 1, 0, C_SCALE | C_RES_LEFT, " * s, r +"),
    MIDC(Q4_1, q4_1, 96, 13, 5, 2, 3, 0, C_SCALE | C_RES_LEFT, " * s, r +"),
    MIDC(Q5_0, q5_0, 64, 35, 6, 2, 1, 0, 0, ""),
    MIDC(Q5_1, q5_1, 64, 19, 5, 3, 1, 0, C_RES_LEFT, " r +"),
    MIDC(Q4_K, q4_k, 256, 9, 5, 2, 2, 0, C_SCALE | C_RES_LEFT, " * s, r +"),
    MIDC(Q5_K, q5_k, 256, 21, 6, 3, 1, 0, 0, ""),
    MIDC(Q6_K, q6_k, 256, 9, 5, 3, 1, 0, C_SCALE, " * s"),
    MIDC(Q4_0, q4_0, 64, 35, 5, 2, 7, FIXED, C_SCALE | C_RES_LEFT, " fixed ids * s, r +"),
    MIDC(Q4_0, q4_0, 64, 35, 8, 2, 1, X_F16, C_RES_RIGHT, " x f16 + r"),
    MIDC(F16, f16, 16, 64, 4, 2, 2, 0, C_SCALE | C_RES_LEFT, " K 16 * s, r +"),
    MIDC(Q4_0, q4_0, 64, 35, 8, 2, 33, 0, C_SCALE | C_RES_LEFT, " * s, r +"),

    // Benchmarks: routing at decode and a 512-token prefill.
    TOPKB(64, 1, 8, "OLMoE"), TOPKB(64, 512, 8, "OLMoE"), TOPKB(128, 512, 8, "Qwen3-30B-A3B"),
    TOPKB(8, 512, 2, "Mixtral"),
    WEIGHTSB(64, 512, 8, "OLMoE"), WEIGHTSB(128, 512, 8, "Qwen3-30B-A3B"),
    TOPKB(32, 1, 8, "Granite"), WEIGHTSB(32, 1, 8, "Granite"), ROUTEB(32, 1, 8, 1, "Granite"),
    MIDCB(0, 0, ""), MIDCB(WITH_COMBINE, C_SCALE | C_RES_LEFT, " + combine"),
    COMBINEB(2048, 8, 1, "OLMoE"), COMBINEB(2048, 8, 512, "OLMoE"), COMBINEB(4096, 2, 512, "Mixtral"),
    // Expert products: gate/up (n_embd -> n_ff) and down (n_ff -> n_embd).
    MIDB(Q4_0, q4_0, 2048, 1024, 64, 8, 1, "OLMoE up"),
    MIDB(Q4_0, q4_0, 1024, 2048, 64, 8, 1, "OLMoE down"),
    MIDB(Q4_0, q4_0, 2048, 1024, 64, 8, 32, "OLMoE up"),
    MIDB(Q4_0, q4_0, 2048, 1024, 64, 8, 128, "OLMoE up"),
    MIDB(Q8_0, q8_0, 2048, 1024, 64, 8, 1, "OLMoE up"),
    MIDB(Q4_0, q4_0, 2048, 768, 128, 8, 1, "Qwen3-30B-A3B up"),
    MIDB(Q4_0, q4_0, 768, 2048, 128, 8, 1, "Qwen3-30B-A3B down"),
    MIDB(Q4_0, q4_0, 2048, 768, 128, 8, 32, "Qwen3-30B-A3B up"),
    MIDB(Q8_0, q8_0, 2048, 768, 128, 8, 1, "Qwen3-30B-A3B up"),
    MIDB(Q4_K, q4_k, 2048, 768, 128, 8, 1, "Qwen3-30B-A3B up"),
    MIDB(Q4_0, q4_0, 4096, 14336, 8, 2, 1, "Mixtral up"),
    MIDB(Q4_0, q4_0, 14336, 4096, 8, 2, 1, "Mixtral down"),
    MIDB(Q4_0, q4_0, 4096, 14336, 8, 2, 16, "Mixtral up"),
};
const uint32_t vki_cases_moe_count = sizeof vki_cases_moe / sizeof vki_cases_moe[0];
