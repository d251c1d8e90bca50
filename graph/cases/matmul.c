/* Conformance and benchmark cases of the matmul family: matmul (every weight dtype; N = 1 and
 * small N take the matrix-vector kernels, larger N the tiled ones), batched with broadcast
 * weights, strided and permuted x, the fused bias + activation, and get_rows.
 *
 * Shapes are odd on purpose: M = 35 is no multiple of any row block or tile; float weights
 * have K = 67, so rows end in a partial chunk (K % 32 != 0), f16 rows start at odd halves and
 * x rows are not 16-byte aligned. Tolerances: quantized weights are decoded identically (up to
 * fma contraction) by reference and kernels and x is read exactly, so the error is fp32
 * summation order against the reference's double sums: nmse ~1e-14 measured; 1e-9 leaves room
 * for contraction, other summation orders and the activations' erf approximation. The
 * integer-dot mat-vec rounds x to int8 and declares it: VKI_CASE_INT8_TOLERANCE then. */
#include "../ops/matmul_internal.h"
#include "cases_internal.h"

/* Variant bits of matmul_case's arg[7]. */
#define FUSED (1 << 8)   // bias [M] added and activation (bits 0-7) applied in the matmul node
#define STRIDED (1 << 9) // x rows are K of K + 3 elements, its batches permuted with its columns
#define WVIEW (1 << 10)  // w is every other row of a [K, 2M + 1] weight, from row 1

/* w [arg1, arg2, arg5] of dtype arg0 times x [arg1, arg3, arg4] of dtype arg6. */
static void matmul_case(vki_graph *g, const int64_t *arg)
{
    vki_dtype wt = (vki_dtype)arg[0], xt = (vki_dtype)arg[6];
    int64_t K = arg[1], M = arg[2], N = arg[3], B = arg[4], Bw = arg[5], flags = arg[7];
    // The bias is created first: the reference evaluates nodes in id order.
    vki_tensor bias = {0};
    if (flags & FUSED) bias = vki_input(g, VKI_DTYPE_F32, 1, (int64_t[]){M}, "bias");
    vki_tensor w;
    if (flags & WVIEW) {
        vki_tensor base = vki_weight(g, wt, 3, (int64_t[]){K, 2 * M + 1, Bw}, "w");
        vki_tensor_info info;
        vki_tensor_get_info(g, base, &info);
        uint64_t nb[3] = {info.nb[0], 2 * info.nb[1], info.nb[2]};
        w = vki_view(g, base, 3, (int64_t[]){K, M, Bw}, nb, info.nb[1]);
    } else {
        w = vki_weight(g, wt, 3, (int64_t[]){K, M, Bw}, "w");
    }
    vki_tensor x;
    if (flags & STRIDED) {
        vki_tensor base = vki_input(g, xt, 3, (int64_t[]){K + 3, B, N}, "x");
        vki_tensor_info info;
        vki_tensor_get_info(g, base, &info);
        x = vki_view(g, base, 3, (int64_t[]){K, B, N}, info.nb, 0);
        x = vki_permute(g, x, (const uint32_t[]){0, 2, 1, 3});
    } else {
        x = vki_input(g, xt, 3, (int64_t[]){K, N, B}, "x");
    }
    vki_tensor y = vki_matmul(g, w, x);
    // What the fusion pass will do with a following add and activation (not public API).
    if (flags & FUSED) y = vki__matmul_epilogue(g, y, bias, (vki_activation)(flags & 0xff));
    vki_output(g, y, "y");
}

/* table [arg1, arg2] of dtype arg0, ids [arg3]. */
static void get_rows_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor table = vki_weight(g, (vki_dtype)arg[0], 2, (int64_t[]){arg[1], arg[2]}, "table");
    vki_tensor ids = vki_input(g, VKI_DTYPE_I32, 1, (int64_t[]){arg[3]}, "ids");
    vki_output(g, vki_get_rows(g, table, ids), "y");
}

#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH
#define TOL 1e-9f

/* Test: matmul wt [K, M, BW] x xt [K, N, BATCH] with variant bits FL. */
#define MM(WT, wt, K, M, N, BATCH, BW, XT, xt, FL, what)                                        \
    {"matmul " #wt " [" #K ", " #M ", " #BW "] x " #xt " [" #K ", " #N ", " #BATCH "]" what,   \
     "matmul", T, TOL, 0, matmul_case,                                                         \
     {VKI_DTYPE_##WT, K, M, N, BATCH, BW, VKI_DTYPE_##XT, FL}, 0}
/* Every weight dtype at N = 1 (matvec) and N = 33 (tiled), x f32. */
#define MM_DTYPE(WT, wt, K)                                                                     \
    MM(WT, wt, K, 35, 1, 1, 1, F32, f32, 0, ""), MM(WT, wt, K, 35, 33, 1, 1, F32, f32, 0, "")
/* Benchmark: SmolLM2-135M projections (K = n_embd 576 or n_ff 1536; M = 49152 is the vocab). */
#define MMB(WT, wt, K, M, N)                                                                    \
    {"matmul " #wt " [" #K ", " #M "] x f32 [" #K ", " #N "]", "matmul", B, 1e-6f, 0,         \
     matmul_case, {VKI_DTYPE_##WT, K, M, N, 1, 1, VKI_DTYPE_F32, 0}, 2.0 * K * M * N}
#define MMB_SHAPES(WT, wt, N)                                                                   \
    MMB(WT, wt, 576, 576, N), MMB(WT, wt, 576, 1536, N), MMB(WT, wt, 1536, 576, N),           \
        MMB(WT, wt, 576, 49152, N)
#define GR(WT, wt, K, V, N, LIMIT)                                                              \
    {"get_rows " #wt " [" #K ", " #V "] ids [" #N "]", "get_rows", T, 1e-12f, LIMIT,           \
     get_rows_case, {VKI_DTYPE_##WT, K, V, N}, 0}

const vki_op_case vki_cases_matmul[] = {
    MM_DTYPE(F32, f32, 67),
    MM_DTYPE(F16, f16, 67),
    MM_DTYPE(BF16, bf16, 67),
    MM_DTYPE(Q8_0, q8_0, 64),
    MM_DTYPE(Q4_0, q4_0, 64),
    MM_DTYPE(Q4_1, q4_1, 64),
    MM_DTYPE(Q5_0, q5_0, 64),
    MM_DTYPE(Q5_1, q5_1, 64),
    MM_DTYPE(Q4_K, q4_k, 256),
    MM_DTYPE(Q5_K, q5_k, 256),
    MM_DTYPE(Q6_K, q6_k, 256),
    // Several columns in the matrix-vector kernels, x in f16, the largest matvec N and the
    // smallest tiled one.
    MM(F16, f16, 67, 35, 3, 1, 1, F16, f16, 0, ""),
    MM(BF16, bf16, 67, 35, 3, 1, 1, F16, f16, 0, ""),
    MM(Q4_0, q4_0, 64, 35, 3, 1, 1, F32, f32, 0, ""),
    MM(Q5_1, q5_1, 96, 35, 3, 1, 1, F16, f16, 0, ""),
    MM(Q6_K, q6_k, 256, 35, 3, 1, 1, F16, f16, 0, ""),
    MM(Q8_0, q8_0, 64, 35, 8, 1, 1, F32, f32, 0, ""),
    MM(Q4_1, q4_1, 64, 35, 9, 1, 1, F16, f16, 0, ""),
    MM(Q4_K, q4_k, 256, 35, 33, 1, 1, F16, f16, 0, ""),
    MM(F32, f32, 5, 3, 20, 1, 1, F16, f16, 0, ""),
    // Long rows: matvec_wide's threads hold several chunks of K, the last partly past the end;
    // weight rows at every 16-byte phase, and at 2 mod 4 bytes (q4_0, q6_k); a float tail;
    // K beyond what a thread holds (f32, 4200: the storage-buffer mat-vec).
    MM(Q4_0, q4_0, 544, 37, 1, 1, 1, F32, f32, 0, ""),
    MM(Q8_0, q8_0, 576, 21, 2, 1, 1, F32, f32, 0, ""),
    MM(Q4_1, q4_1, 576, 19, 1, 1, 1, F16, f16, 0, ""),
    // n_ff of SmolLM2: Q4_1 in runs of 4 blocks from rows of whole texels.
    MM(Q4_1, q4_1, 1536, 19, 1, 1, 1, F32, f32, 0, ""),
    MM(F16, f16, 1000, 13, 1, 1, 1, F16, f16, 0, ""),
    MM(Q6_K, q6_k, 768, 9, 1, 1, 1, F32, f32, 0, ""),
    MM(Q4_K, q4_k, 2304, 11, 1, 1, 1, F32, f32, 0, ""),
    MM(F32, f32, 4200, 5, 1, 1, 1, F32, f32, 0, ""),
    // Several columns in matvec_wide: groups of up to 4 columns share each decoded weight
    // chunk (8 as 4 + 4, 6 as 3 + 3, 5 as 3 + 3 with a padding column), with runs of blocks
    // (q4_1 at 576 and 1536, q8_0 at 576), a float tail (f16, K = 67) and 5-bit highs (q5_1).
    MM(Q4_1, q4_1, 576, 35, 4, 1, 1, F32, f32, 0, ""),
    MM(Q4_1, q4_1, 1536, 19, 3, 1, 1, F16, f16, 0, ""),
    MM(Q8_0, q8_0, 576, 21, 8, 1, 1, F32, f32, 0, ""),
    MM(Q4_0, q4_0, 544, 37, 2, 1, 1, F32, f32, 0, ""),
    MM(Q4_0, q4_0, 64, 35, 6, 1, 1, F16, f16, 0, ""),
    MM(Q4_K, q4_k, 512, 35, 4, 1, 1, F32, f32, 0, ""),
    MM(F16, f16, 67, 35, 4, 1, 1, F16, f16, 0, ""),
    MM(F16, f16, 1000, 13, 5, 1, 1, F32, f32, 0, ""),
    MM(Q5_1, q5_1, 96, 35, 4, 1, 1, F32, f32, 0, ""),
    // K of 25 blocks, which no workgroup's threads share evenly (a pass of 8 to 64 threads takes
    // 256 to 2048 elements): the integer-dot mat-vec's rows (tests/ops, int-dot narrowings),
    // one column and several, x f32 and f16.
    MM(Q8_0, q8_0, 800, 37, 1, 1, 1, F32, f32, 0, ""),
    MM(Q4_0, q4_0, 800, 37, 1, 1, 1, F32, f32, 0, ""),
    MM(Q8_0, q8_0, 800, 37, 5, 1, 1, F16, f16, 0, ""),
    MM(Q4_0, q4_0, 800, 37, 3, 1, 1, F32, f32, 0, ""),
    // Enough rows for several blocks of rows per matvec_wide workgroup, the last one partial
    // (2011 rows: 20 blocks of 8 a workgroup).
    MM(Q8_0, q8_0, 96, 389, 1, 1, 1, F32, f32, 0, ""),
    MM(Q4_1, q4_1, 64, 2011, 1, 1, 1, F32, f32, 0, ""),
    MM(F16, f16, 40, 211, 2, 1, 1, F32, f32, 0, ""),
    // Products large enough for the cooperative-matrix kernel where there is one (at least 64
    // tiles of 128 x 128; partial tiles on both sides).
    MM(Q4_0, q4_0, 64, 1059, 900, 1, 1, F32, f32, 0, ""),
    MM(F16, f16, 67, 1059, 900, 1, 1, F16, f16, 0, ""),
    // More for that kernel, sized for its tiles with 8 x 8 fragments (the emulate-coopmat
    // narrowing: 64 x 64 x 16 tiles, or 32 x 64 where fewer than 128 tiles): one slab of 16 with
    // K past its end (K = 13), NVIDIA's 128 x 128 tiles of 8 subgroups (2048 x 1040, one slab:
    // kept short, as the shared-memory kernel of tuning=nvidia runs it slowly on lavapipe),
    // batches with the weights shared by pairs and a fused epilogue over 8 slabs, a strided x.
    MM(F16, f16, 13, 515, 520, 1, 1, F32, f32, 0, " one slab"),
    MM(F16, f16, 8, 2048, 1040, 1, 1, F16, f16, 0, ""),
    MM(Q4_1, q4_1, 128, 260, 200, 4, 2, F32, f32, FUSED | VKI_ACT_GELU, " + bias, gelu"),
    MM(Q5_1, q5_1, 96, 530, 600, 1, 1, F32, f32, STRIDED, " strided"),
    // Batches: weights broadcast (Bw = 1), not (Bw = B), and by ratio (Bw = B / 2).
    MM(Q4_0, q4_0, 64, 35, 1, 2, 1, F32, f32, 0, ""),
    MM(F16, f16, 67, 35, 17, 2, 1, F16, f16, 0, ""),
    MM(Q4_K, q4_k, 256, 35, 2, 2, 1, F32, f32, 0, ""),
    MM(F32, f32, 67, 35, 20, 2, 2, F32, f32, 0, ""),
    MM(Q8_0, q8_0, 64, 35, 1, 3, 3, F32, f32, 0, ""),
    MM(Q4_0, q4_0, 64, 35, 2, 4, 2, F32, f32, 0, ""),
    // w and x strided views.
    MM(Q8_0, q8_0, 64, 35, 1, 1, 1, F32, f32, WVIEW, " w strided"),
    MM(F16, f16, 67, 35, 20, 2, 2, F32, f32, WVIEW, " w strided"),
    MM(Q5_0, q5_0, 64, 35, 1, 2, 1, F32, f32, STRIDED, " strided"),
    MM(F32, f32, 67, 35, 19, 2, 2, F16, f16, STRIDED, " strided"),
    // The fused epilogue: bias, then activation.
    MM(Q4_0, q4_0, 64, 35, 1, 1, 1, F32, f32, FUSED | VKI_ACT_SILU, " + bias, silu"),
    MM(F16, f16, 67, 35, 20, 1, 1, F32, f32, FUSED | VKI_ACT_GELU, " + bias, gelu"),
    MM(Q6_K, q6_k, 256, 35, 3, 1, 1, F32, f32, FUSED | VKI_ACT_GELU_TANH, " + bias, gelu_tanh"),
    MM(F32, f32, 67, 35, 9, 2, 1, F32, f32, FUSED | VKI_ACT_QUICK_GELU, " + bias, quick_gelu"),
    MM(Q8_0, q8_0, 64, 35, 2, 1, 1, F32, f32, FUSED | VKI_ACT_NONE, " + bias"),
    // get_rows: float tables of odd K, quantized ones, and ids past the table (zeros).
    GR(F32, f32, 67, 10, 7, 10),
    GR(F16, f16, 67, 10, 7, 10),
    GR(Q4_0, q4_0, 64, 10, 7, 10),
    GR(Q8_0, q8_0, 96, 10, 7, 10),
    GR(Q6_K, q6_k, 256, 10, 7, 10),
    GR(Q4_K, q4_k, 256, 5, 9, 8),

    MMB_SHAPES(F16, f16, 1),
    MMB_SHAPES(Q8_0, q8_0, 1),
    MMB_SHAPES(Q4_0, q4_0, 1),
    MMB_SHAPES(Q4_1, q4_1, 1),
    // Gemma 3 270M: Q5_0 ffn_gate / ffn_up; half the Q8_0 lm_head (262144 rows span 170 MiB,
    // beyond lavapipe's 128 MiB binding: the model slices it by rows).
    MMB(Q5_0, q5_0, 640, 2048, 1), MMB(Q8_0, q8_0, 640, 131072, 1),
    // Issue #19's decode aims (Llama 3 8B's 4096 x 4096 and 4096 x 14336), for q8_0 and q4_0
    // also with VKI_NARROW=int-dot (the integer-dot mat-vec) to compare on a GPU.
    MMB(Q8_0, q8_0, 4096, 4096, 1), MMB(Q8_0, q8_0, 4096, 14336, 1),
    MMB(Q4_0, q4_0, 4096, 4096, 1), MMB(Q4_0, q4_0, 4096, 14336, 1),
    // A 4-sequence decode pass (vkinfer serve): 4 columns share each decoded weight chunk.
    MMB_SHAPES(Q4_1, q4_1, 4), MMB(Q8_0, q8_0, 576, 49152, 4),
    MMB_SHAPES(F16, f16, 128),
    MMB_SHAPES(Q8_0, q8_0, 128),
    MMB_SHAPES(Q4_0, q4_0, 128),
    MMB_SHAPES(Q4_1, q4_1, 128),
};
const uint32_t vki_cases_matmul_count = sizeof vki_cases_matmul / sizeof vki_cases_matmul[0];
