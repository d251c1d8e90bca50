/* Conformance and benchmark cases of the KV-cache ops: set_rows (rows written into a cache at
 * their positions, padding ids skipped) and attention over absolute positions, alone and as one
 * decode or prefill step of a layer's cache. I32 inputs take fixed values (positions, padding
 * -1s, ids past the end), so that a case says which rows it writes and which positions it sees.
 *
 * Shapes are odd on purpose: K = 37 f16 rows end mid-word, a cache slice starting at row 2 of
 * 7-element f16 rows starts mid-word, so the kernel's half-word writes run next to rows it must
 * not touch (the guard bands and the copy of the whole cache check that). Q8_0 caches have
 * 34-byte blocks, so every other block starts mid-word: K = 32 rows alternate, K = 64 rows have
 * one block of each kind. */
#include "cases_internal.h"

#include <math.h>

/* The I32 inputs of the cases (ids, positions): arg's last slot picks a set, whose length is
 * N (set_rows) or n_q (attention_pos). */
typedef struct int_set {
    const int32_t *values;
    uint32_t count;
} int_set;

#define SET(...) {(const int32_t[]){__VA_ARGS__}, sizeof (int32_t[]){__VA_ARGS__} / sizeof(int32_t)}
enum { IDS_ODD, IDS_RESHAPE, IDS_SLICE, IDS_TEMP, POS_37, POS_63, POS_30, POS_511, POS_CHUNK,
       POS_CHUNK_PADDED, POS_SCATTERED, POS_PREFILL_STEP, ROWS_6, ROWS_10, POS_SEQS };
static const int_set sets[] = {
    [IDS_ODD] = SET(3, -1, 7, 11, 0),         // R = 11: 11 is past the end
    [IDS_RESHAPE] = SET(8, 2, -1, 100),
    [IDS_SLICE] = SET(5, 0, -3, 6),           // R = 6
    [IDS_TEMP] = SET(5, -1, 1),
    [POS_37] = SET(37),
    [POS_63] = SET(63),
    [POS_30] = SET(30),
    [POS_511] = SET(511),
    [POS_CHUNK] = SET(20, 21, 22, 23, 24, 25, 26),
    [POS_CHUNK_PADDED] = SET(20, 21, -1, 23, 24, 25, -1),
    [POS_SCATTERED] = SET(9, 3, -1, 15, 0),    // not monotonic: per-row ranges in one block
    [POS_PREFILL_STEP] = SET(10, 11, 12, -1),
    [ROWS_6] = SET(0, 1, 2, 3, 4, 5),         // every row of a Q8_0 slice, read back by get_rows
    [ROWS_10] = SET(0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    // Sequences of 16 (AP_SEQ16): sequence 0 at 3, 1 at 1, padding, 2 at 8 and at 2 (a decode
    // step of a server's slots; the last two share a sequence).
    [POS_SEQS] = SET(3, 17, -1, 40, 34),
};

static vki_tensor ints(vki_graph *g, int64_t set, const char *name)
{
    return vki__case_ints(g, sets[set].values, sets[set].count, name);
}

/* ---- set_rows: arg {K, R, flags, ids} ---------------------------------------------------- */
enum {
    SR_DST_F16 = 1,
    SR_SRC_F16 = 2,
    SR_SRC_T = 4,       // src is the transpose of an input [N, K] (strided rows)
    SR_DST_RESHAPE = 8, // dst is an input [K / 3, 3, R] reshaped to [K, R]
    SR_DST_SLICE = 16,  // dst is rows [2, 2 + R) of a weight of R + 4 rows; read back by copies
    SR_DST_TEMP = 32,   // dst is an intermediate (a copy of an input), an output's storage then
    SR_DST_Q8 = 64,     // dst is Q8_0 (a slice is read back by get_rows: copy takes no Q8_0)
    SR_SRC_ZERO = 128,  // src is scaled by 0: all-zero blocks (scale 0, no 1 / 0)
};

static void set_rows_case(vki_graph *g, const int64_t *a)
{
    int64_t K = a[0], R = a[1], f = a[2], N = sets[a[3]].count;
    vki_dtype dt = f & SR_DST_Q8 ? VKI_DTYPE_Q8_0 : f & SR_DST_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_dtype st = f & SR_SRC_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor dst, cache = {0};
    if (f & SR_DST_RESHAPE) {
        dst = vki_reshape(g, vki_input(g, dt, 3, (int64_t[]){K / 3, 3, R}, "cache"), 2, (int64_t[]){K, R});
    } else if (f & SR_DST_SLICE) {
        cache = vki_weight(g, dt, 2, (int64_t[]){K, R + 4}, "cache");
        vki_tensor_info info;
        if (!vki_tensor_get_info(g, cache, &info)) return;
        dst = vki_view(g, cache, 2, (int64_t[]){K, R}, info.nb, 2 * info.nb[1]);
    } else if (f & SR_DST_TEMP) {
        dst = vki_copy(g, vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){K, R}, "x"), dt);
    } else {
        dst = vki_weight(g, dt, 2, (int64_t[]){K, R}, "cache");
    }
    vki_tensor src = f & SR_SRC_T ? vki_transpose(g, vki_input(g, st, 2, (int64_t[]){N, K}, "src"))
                                  : vki_input(g, st, 2, (int64_t[]){K, N}, "src");
    if (f & SR_SRC_ZERO) src = vki_scale(g, src, 0.0f);
    vki_tensor idx = ints(g, a[3], "idx");
    vki_tensor y = vki_set_rows(g, dst, src, idx);
    if ((f & SR_DST_SLICE) && (f & SR_DST_Q8)) {
        vki_output(g, vki_get_rows(g, y, ints(g, ROWS_6, "slice rows")), "slice");
        vki_output(g, vki_get_rows(g, cache, ints(g, ROWS_10, "cache rows")), "cache after");
    } else if (f & SR_DST_SLICE) {
        // The written slice through the result, then the whole cache read after the write.
        vki_output(g, vki_copy(g, y, VKI_DTYPE_F32), "slice");
        vki_output(g, vki_copy(g, cache, VKI_DTYPE_F32), "cache after");
    } else {
        vki_output(g, y, "y");
    }
}

/* ---- attention_pos: arg {D, n_head, n_kv_head, n_kv, window, flags, pos} ------------------- */
enum {
    AP_KV_F16 = 1,
    AP_Q_PERMUTED = 2, // q is a permuted view of [D, n_q, n_head]
    AP_CACHE_STEP = 4, // k and v are caches [D * n_kv_head, n_kv] written by set_rows at pos
                       // (f16, or with AP_KV_Q8 q8_0)
    AP_KV_Q8 = 8,
    AP_WRITE_HIDDEN = 16, // the cache step's written caches are no output: on a CPU device the
                          // writes fold into the attention (fusion.c)
    AP_READ_AGAIN = 32,   // a second attention_pos (query q2) reads the written caches
    AP_SEQ16 = 64,        // attention_seq: the kv positions are sequences of 16
};

static vki_tensor attend(vki_graph *g, const int64_t *a, vki_tensor q, vki_tensor k, vki_tensor v,
                         vki_tensor pos, float scale)
{
    if (a[5] & AP_SEQ16) return vki_attention_seq(g, q, k, v, pos, scale, (uint32_t)a[4], 16);
    return vki_attention_pos(g, q, k, v, pos, scale, (uint32_t)a[4]);
}

static vki_tensor ap_query(vki_graph *g, const int64_t *a, int64_t n_q)
{
    int64_t d = a[0], n_head = a[1];
    if (a[5] & AP_Q_PERMUTED)
        return vki_permute(g, vki_input(g, VKI_DTYPE_F32, 3, (int64_t[]){d, n_q, n_head}, "q"),
                           (uint32_t[]){0, 2, 1, 3});
    return vki_input(g, VKI_DTYPE_F32, 3, (int64_t[]){d, n_head, n_q}, "q");
}

/* One layer's cache step: the new rows of k and v go into the caches at pos, attention reads
 * the caches through reshapes of the written results; the k cache after the write is an
 * output too, unless AP_WRITE_HIDDEN; with AP_READ_AGAIN a second query reads the caches after
 * the step (so that a write folded into the first attention is checked). */
static void cache_step(vki_graph *g, const int64_t *a, int64_t n_q, vki_tensor q, vki_tensor pos)
{
    int64_t d = a[0], n_kv_head = a[2], n_kv = a[3];
    int64_t row = d * n_kv_head;
    vki_dtype ct = a[5] & AP_KV_Q8 ? VKI_DTYPE_Q8_0 : VKI_DTYPE_F16;
    vki_tensor kc = vki_weight(g, ct, 2, (int64_t[]){row, n_kv}, "cache_k");
    vki_tensor vc = vki_weight(g, ct, 2, (int64_t[]){row, n_kv}, "cache_v");
    vki_tensor kn = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){row, n_q}, "k");
    vki_tensor vn = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){row, n_q}, "v");
    vki_tensor kw = vki_set_rows(g, kc, kn, pos), vw = vki_set_rows(g, vc, vn, pos);
    vki_tensor k = vki_reshape(g, kw, 3, (int64_t[]){d, n_kv_head, n_kv});
    vki_tensor v = vki_reshape(g, vw, 3, (int64_t[]){d, n_kv_head, n_kv});
    vki_output(g, attend(g, a, q, k, v, pos, 1.0f / sqrtf((float)d)), "y");
    if (!(a[5] & AP_WRITE_HIDDEN)) vki_output(g, kw, "cache_k after");
    if (a[5] & AP_READ_AGAIN) vki_output(g, attend(g, a, ap_query(g, a, n_q), k, v, pos, 0.5f), "y2");
}

static void attention_pos_case(vki_graph *g, const int64_t *a)
{
    int64_t d = a[0], n_kv_head = a[2], n_kv = a[3], f = a[5], n_q = sets[a[6]].count;
    vki_tensor q = ap_query(g, a, n_q);
    vki_tensor pos = ints(g, a[6], "pos");
    if (f & AP_CACHE_STEP) {
        cache_step(g, a, n_q, q, pos);
        return;
    }
    vki_dtype kvt = f & AP_KV_Q8 ? VKI_DTYPE_Q8_0 : f & AP_KV_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor k = vki_input(g, kvt, 3, (int64_t[]){d, n_kv_head, n_kv}, "k");
    vki_tensor v = vki_input(g, kvt, 3, (int64_t[]){d, n_kv_head, n_kv}, "v");
    vki_output(g, attend(g, a, q, k, v, pos, 1.0f / sqrtf((float)d)), "y");
}

/* Useful flops: two per multiply-add of q.k and of p v over the positions each query sees. */
#define ATT_FLOPS(d, n_head, visible) (4.0 * (d) * (n_head) * (visible))

#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH
/* set_rows moves values (f32 -> f16 rounds to nearest, exactly as the reference unless a
 * driver rounds a tie differently), so anything beyond rounding is a wrong row. Attention as in
 * the attention family: fp32 summation order and exp rounding only.
 *
 * Q8_0 set_rows is compared dequantised. The kernel follows the reference's rule exactly, but a
 * driver's 1 / d may be off by a few ulps (Vulkan allows 2.5 for a division), which moves an
 * x / d lying that close to a rounding tie to the other quant: an error of d (about 1/127 for
 * these uniform values) in one value. In the smallest output (the slice's 192 values, sum of
 * squares about 64) that is an NMSE of 1e-6, so 2e-6 allows one or two such values; a wrong
 * scale, quant order, block or row, or a clobbered neighbour's half-word, is 1e-2 or more.
 * Lavapipe matches the reference bit for bit (NMSE 0). Attention reading random Q8_0 K/V
 * decodes exactly as the reference does (1e-8, like f16); after a Q8_0 cache write one moved
 * quant changes an output by p_j d (NMSE about 1e-8), so those cases allow 1e-6. */
const vki_op_case vki_cases_kv_cache[] = {
    {"set_rows f32 -> f16 cache K37 R11, ids 3 -1 7 11 0", "set_rows", T, 1e-9f, 0, set_rows_case,
     {37, 11, SR_DST_F16, IDS_ODD}, 0},
    {"set_rows transposed f16 src -> f32 reshaped input [5, 3, 9], ids 8 2 -1 100", "set_rows", T,
     1e-12f, 0, set_rows_case, {15, 9, SR_SRC_F16 | SR_SRC_T | SR_DST_RESHAPE, IDS_RESHAPE}, 0},
    {"set_rows f32 -> f16 rows 2..7 of a K7 cache (mid-word rows), ids 5 0 -3 6", "set_rows", T, 1e-9f,
     0, set_rows_case, {7, 6, SR_DST_F16 | SR_DST_SLICE, IDS_SLICE}, 0},
    {"set_rows f16 -> f16 decode K192 R64 at 37", "set_rows", T, 1e-12f, 0, set_rows_case,
     {192, 64, SR_DST_F16 | SR_SRC_F16, POS_37}, 0},
    {"set_rows f32 into an intermediate [9, 6] (output), ids 5 -1 1", "set_rows", T, 1e-12f, 0,
     set_rows_case, {9, 6, SR_DST_TEMP, IDS_TEMP}, 0},
    {"set_rows f32 -> q8_0 cache K64 R11, ids 3 -1 7 11 0", "set_rows", T, 2e-6f, 0, set_rows_case,
     {64, 11, SR_DST_Q8, IDS_ODD}, 0},
    {"set_rows f16 -> q8_0 rows 2..7 of a K32 cache (mid-word blocks), ids 5 0 -3 6", "set_rows", T,
     2e-6f, 0, set_rows_case, {32, 6, SR_DST_Q8 | SR_SRC_F16 | SR_DST_SLICE, IDS_SLICE}, 0},
    {"set_rows transposed f32 -> q8_0 decode K192 R64 at 37", "set_rows", T, 2e-6f, 0, set_rows_case,
     {192, 64, SR_DST_Q8 | SR_SRC_T, POS_37}, 0},
    {"set_rows zeros -> q8_0 cache K96 R6, ids 5 -1 1 (scale 0)", "set_rows", T, 2e-6f, 0, set_rows_case,
     {96, 6, SR_DST_Q8 | SR_SRC_ZERO, IDS_TEMP}, 0},

    {"attention_pos decode pos 37 of kv64 D64 GQA 6/2", "attention", T, 1e-8f, 0, attention_pos_case,
     {64, 6, 2, 64, 0, 0, POS_37}, 0},
    {"attention_pos prefill q7 pos 20..26 kv32 D32 GQA 4/2", "attention", T, 1e-8f, 0, attention_pos_case,
     {32, 4, 2, 32, 0, 0, POS_CHUNK}, 0},
    {"attention_pos prefill q7 pos 20..26 with -1 padding kv32 D32 GQA 4/2", "attention", T, 1e-8f, 0,
     attention_pos_case, {32, 4, 2, 32, 0, 0, POS_CHUNK_PADDED}, 0},
    {"attention_pos sliding window 5 q7 pos 20..26 kv32 D32 GQA 4/2", "attention", T, 1e-8f, 0,
     attention_pos_case, {32, 4, 2, 32, 5, 0, POS_CHUNK}, 0},
    {"attention_pos f16 kv f32 q decode pos 63 of kv64 D64 GQA 9/3", "attention", T, 1e-8f, 0,
     attention_pos_case, {64, 9, 3, 64, 0, AP_KV_F16, POS_63}, 0},
    {"attention_pos f16 kv permuted q window 4 pos 9 3 -1 15 0 kv16 D40 GQA 4/2", "attention", T, 1e-8f,
     0, attention_pos_case, {40, 4, 2, 16, 4, AP_KV_F16 | AP_Q_PERMUTED, POS_SCATTERED}, 0},

    {"attention_pos q8_0 kv decode pos 37 of kv64 D64 GQA 6/2", "attention", T, 1e-8f, 0,
     attention_pos_case, {64, 6, 2, 64, 0, AP_KV_Q8, POS_37}, 0},
    {"attention_pos q8_0 kv permuted q prefill q7 pos 20..26 with -1 padding kv32 D32 GQA 4/2",
     "attention", T, 1e-8f, 0, attention_pos_case,
     {32, 4, 2, 32, 0, AP_KV_Q8 | AP_Q_PERMUTED, POS_CHUNK_PADDED}, 0},

    {"kv cache decode step: set_rows f16 k/v at 30 + attention_pos, D64 GQA 6/2 cache 48", "attention",
     T, 1e-8f, 0, attention_pos_case, {64, 6, 2, 48, 0, AP_CACHE_STEP, POS_30}, 0},
    {"kv cache decode step, writes folded into attention (CPU devices): f16 at 30, D64 GQA 9/3 "
     "cache 48, read again", "attention", T, 1e-8f, 0, attention_pos_case,
     {64, 9, 3, 48, 0, AP_CACHE_STEP | AP_WRITE_HIDDEN | AP_READ_AGAIN, POS_30}, 0},
    {"kv cache decode step, writes folded into attention: f16 at 63 (last row), D40 GQA 4/1 "
     "window 9, read again", "attention", T, 1e-8f, 0, attention_pos_case,
     {40, 4, 1, 64, 9, AP_CACHE_STEP | AP_WRITE_HIDDEN | AP_READ_AGAIN, POS_63}, 0},
    {"kv cache prefill step: q4 at 10 11 12 -1, window 3, D32 GQA 4/2 cache 20", "attention", T, 1e-8f,
     0, attention_pos_case, {32, 4, 2, 20, 3, AP_CACHE_STEP, POS_PREFILL_STEP}, 0},
    {"kv cache decode step: set_rows q8_0 k/v at 30 + attention_pos, D64 GQA 6/2 cache 48",
     "attention", T, 1e-6f, 0, attention_pos_case,
     {64, 6, 2, 48, 0, AP_CACHE_STEP | AP_KV_Q8, POS_30}, 0},
    {"kv cache prefill step: q8_0 cache, q7 at 20..26 with -1 padding, D32 GQA 4/2 cache 32",
     "attention", T, 1e-6f, 0, attention_pos_case,
     {32, 4, 2, 32, 0, AP_CACHE_STEP | AP_KV_Q8, POS_CHUNK_PADDED}, 0},

    {"attention_seq 3 sequences of 16, pos 3 17 -1 40 34, kv48 D32 GQA 4/2", "attention", T, 1e-8f,
     0, attention_pos_case, {32, 4, 2, 48, 0, AP_SEQ16, POS_SEQS}, 0},
    {"attention_seq f16 kv, window 5, sequences of 16, pos 3 17 -1 40 34, kv48 D64 GQA 9/3",
     "attention", T, 1e-8f, 0, attention_pos_case, {64, 9, 3, 48, 5, AP_SEQ16 | AP_KV_F16, POS_SEQS}, 0},
    {"kv cache decode step of 3 sequences of 16: set_rows f16 at 3 17 -1 40 34 + attention_seq, D64 "
     "GQA 9/3, read again", "attention", T, 1e-8f, 0, attention_pos_case,
     {64, 9, 3, 48, 0, AP_CACHE_STEP | AP_SEQ16 | AP_READ_AGAIN, POS_SEQS}, 0},
    {"kv cache decode step of 3 sequences of 16, q8_0 cache, window 4, D32 GQA 8/1", "attention", T,
     1e-6f, 0, attention_pos_case, {32, 8, 1, 48, 4, AP_CACHE_STEP | AP_SEQ16 | AP_KV_Q8, POS_SEQS}, 0},

    {"attention_pos SmolLM2 decode pos 511 of a 2048 f16 cache D64 9/3 heads", "attention", B, 1e-6f, 0,
     attention_pos_case, {64, 9, 3, 2048, 0, AP_KV_F16, POS_511}, ATT_FLOPS(64, 9, 512)},
    {"kv cache decode step SmolLM2 pos 511 of a 2048 f16 cache D64 9/3 heads", "attention", B, 1e-6f,
     0, attention_pos_case, {64, 9, 3, 2048, 0, AP_CACHE_STEP | AP_WRITE_HIDDEN, POS_511},
     ATT_FLOPS(64, 9, 512)},
    {"attention_pos SmolLM2 decode pos 511 of a 2048 q8_0 cache D64 9/3 heads", "attention", B, 1e-6f,
     0, attention_pos_case, {64, 9, 3, 2048, 0, AP_KV_Q8, POS_511}, ATT_FLOPS(64, 9, 512)},
};
const uint32_t vki_cases_kv_cache_count = sizeof vki_cases_kv_cache / sizeof vki_cases_kv_cache[0];
