/* Conformance and benchmark cases of the attention family: fused attention and conv2d. Shapes
 * are odd on purpose (kv lengths and pixel counts that no tile divides, odd head dims), with
 * views for operands that are views in models (q permuted from [D, n_q, n_head], K/V a slice of
 * a longer cache, x a channel slice). */
#include "cases_internal.h"

#include <math.h>

/* ---- attention: arg {D, n_head, n_kv_head, n_q, n_kv, flags} ------------------------------- */
enum {
    ATT_CAUSAL = 1,
    ATT_MASK = 2,
    ATT_Q_PERMUTED = 4, // q is a permuted view of [D, n_q, n_head]
    ATT_KV_F16 = 8,
    ATT_Q_F16 = 16,
    ATT_MASK_F16 = 32,
    ATT_KV_CACHE = 64,  // k and v are positions [3, 3 + n_kv) of a cache of n_kv + 5
    ATT_KV_Q8 = 128,    // k and v are Q8_0 (a quantised cache)
};

/* k or v: an input, or a slice of a longer cache input at an offset of 3 positions. */
static vki_tensor kv_operand(vki_graph *g, const int64_t *a, vki_dtype dt, const char *name)
{
    if (!(a[5] & ATT_KV_CACHE)) return vki_input(g, dt, 3, (int64_t[]){a[0], a[2], a[4]}, name);
    vki_tensor cache = vki_input(g, dt, 3, (int64_t[]){a[0], a[2], a[4] + 5}, name);
    vki_tensor_info info;
    if (!vki_tensor_get_info(g, cache, &info)) return (vki_tensor){0};
    return vki_view(g, cache, 3, (int64_t[]){a[0], a[2], a[4]}, info.nb, 3 * info.nb[2]);
}

static void attention_case(vki_graph *g, const int64_t *a)
{
    int64_t d = a[0], n_head = a[1], n_q = a[3], n_kv = a[4], f = a[5];
    vki_dtype qt = f & ATT_Q_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_dtype kvt = f & ATT_KV_Q8 ? VKI_DTYPE_Q8_0 : f & ATT_KV_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor q;
    if (f & ATT_Q_PERMUTED)
        q = vki_permute(g, vki_input(g, qt, 3, (int64_t[]){d, n_q, n_head}, "q"), (uint32_t[]){0, 2, 1, 3});
    else
        q = vki_input(g, qt, 3, (int64_t[]){d, n_head, n_q}, "q");
    vki_tensor k = kv_operand(g, a, kvt, "k"), v = kv_operand(g, a, kvt, "v"), mask = {0};
    if (f & ATT_MASK)
        mask = vki_input(g, f & ATT_MASK_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32, 2, (int64_t[]){n_kv, n_q}, "mask");
    vki_output(g, vki_attention(g, q, k, v, mask, 1.0f / sqrtf((float)d), f & ATT_CAUSAL), "y");
}

/* ---- attention with two positions a query: arg {D, n_head, n_kv_head, n_kv, window, flags} -----
 * pos I32 [n_q, 2]: column 0 bounds what a query sees, column 1 is where its window counts back
 * from (vki_attention_pos): the rows of an image that see each other (all up to its last
 * position), each through its own window, as Gemma 3's sliding-window layers mask them. */
enum {
    AW_KV_F16 = 1,
    AW_PAIRS = 2, // pos is the transpose of an input [2, n_q] (strided: a query's two together)
    AW_SEQ16 = 4, // attention_seq: the kv positions are sequences of 16
    AW_KV_Q8 = 8,
};

/* Positions (n_q = 7): an image at 10..14 (all see up to 14, windows from their own), a padding
 * row, a text row at 17; with AW_SEQ16 an image ending at 30 in sequence 1 (kv 16..31), one row's
 * window reaching back past the sequence's start (from 17: held to 16). */
static const int32_t aw_hi[7] = {14, 14, 14, 14, 14, -1, 17};
static const int32_t aw_win[7] = {10, 11, 12, 13, 14, 5, 17};
static const int32_t aw_seq_hi[7] = {30, 30, 30, 30, 30, -1, 20};
static const int32_t aw_seq_win[7] = {17, 28, 29, 30, 30, 5, 20};

static void attention_window_case(vki_graph *g, const int64_t *a)
{
    int64_t d = a[0], n_head = a[1], n_kv_head = a[2], n_kv = a[3], f = a[5], n_q = 7;
    const int32_t *hi = f & AW_SEQ16 ? aw_seq_hi : aw_hi, *win = f & AW_SEQ16 ? aw_seq_win : aw_win;
    int32_t vals[14];
    for (int64_t i = 0; i < n_q; i++) {
        if (f & AW_PAIRS) {
            vals[2 * i] = hi[i];
            vals[2 * i + 1] = win[i];
        } else {
            vals[i] = hi[i];
            vals[n_q + i] = win[i];
        }
    }
    vki_tensor ints = vki__case_ints(g, vals, 14, "pos");
    vki_tensor pos = f & AW_PAIRS ? vki_transpose(g, vki_reshape(g, ints, 2, (int64_t[]){2, n_q}))
                                  : vki_reshape(g, ints, 2, (int64_t[]){n_q, 2});
    vki_dtype kvt = f & AW_KV_Q8 ? VKI_DTYPE_Q8_0 : f & AW_KV_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor q = vki_input(g, VKI_DTYPE_F32, 3, (int64_t[]){d, n_head, n_q}, "q");
    vki_tensor k = vki_input(g, kvt, 3, (int64_t[]){d, n_kv_head, n_kv}, "k");
    vki_tensor v = vki_input(g, kvt, 3, (int64_t[]){d, n_kv_head, n_kv}, "v");
    float scale = 1.0f / sqrtf((float)d);
    vki_output(g, f & AW_SEQ16 ? vki_attention_seq(g, q, k, v, pos, scale, (uint32_t)a[4], 16)
                               : vki_attention_pos(g, q, k, v, pos, scale, (uint32_t)a[4]),
               "y");
}

/* ---- conv2d: arg {W, H, Cin, Cout, N, k, stride, pad + flags} ------------------------------- */
enum {
    CONV_PAD = 15,      // arg[7] & CONV_PAD is the padding
    CONV_BIAS = 16,
    CONV_X_F16 = 32,
    CONV_W_F16 = 64,
    CONV_X_SLICE = 128, // x is channels [1, 1 + Cin) of an input of Cin + 2 channels
    CONV_SIDES = 256,   // a pad per side: left, right, top, bottom in the 4-bit fields of CONV_PADS
};
#define CONV_PADS(l, r, t, b) (CONV_SIDES | (l) << 12 | (r) << 16 | (t) << 20 | (b) << 24)

static void conv2d_case(vki_graph *g, const int64_t *a)
{
    int64_t f = a[7];
    vki_dtype xt = f & CONV_X_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_dtype wt = f & CONV_W_F16 ? VKI_DTYPE_F16 : VKI_DTYPE_F32;
    vki_tensor x;
    if (f & CONV_X_SLICE) {
        vki_tensor all = vki_input(g, xt, 4, (int64_t[]){a[0], a[1], a[2] + 2, a[4]}, "x");
        vki_tensor_info info;
        if (!vki_tensor_get_info(g, all, &info)) return;
        x = vki_view(g, all, 4, (int64_t[]){a[0], a[1], a[2], a[4]}, info.nb, info.nb[2]);
    } else {
        x = vki_input(g, xt, 4, (int64_t[]){a[0], a[1], a[2], a[4]}, "x");
    }
    vki_tensor w = vki_weight(g, wt, 4, (int64_t[]){a[5], a[5], a[2], a[3]}, "w");
    vki_tensor b = f & CONV_BIAS ? vki_weight(g, VKI_DTYPE_F32, 1, (int64_t[]){a[3]}, "b") : (vki_tensor){0};
    uint32_t sym = (uint32_t)(f & CONV_PAD);
    vki_conv2d_pad pad = {sym, sym, sym, sym};
    if (f & CONV_SIDES)
        pad = (vki_conv2d_pad){.left = (uint32_t)(f >> 12) & 15, .right = (uint32_t)(f >> 16) & 15,
                               .top = (uint32_t)(f >> 20) & 15, .bottom = (uint32_t)(f >> 24) & 15};
    vki_output(g, vki_conv2d_padded(g, x, w, b, (uint32_t)a[6], pad), "y");
}

/* Useful flops: two per multiply-add of q.k and of p v over the positions each query sees. */
#define ATT_FLOPS(d, n_head, visible) (4.0 * (d) * (n_head) * (visible))
#define CONV_FLOPS(w, h, cin, cout, k) (2.0 * (w) * (h) * (cin) * (cout) * (k) * (k))

#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH
/* f32 error is summation order and exp rounding; f16 and q8_0 operands are decoded exactly, so
 * they add nothing beyond that either. */
const vki_op_case vki_cases_attention[] = {
    {"attention f32 decode D64 h4 kv37", "attention", T, 1e-8f, 0, attention_case, {64, 4, 4, 1, 37, 0}, 0},
    {"attention f16 kv cache decode D64 GQA 6/2 kv37", "attention", T, 1e-8f, 0, attention_case,
     {64, 6, 2, 1, 37, ATT_KV_F16 | ATT_KV_CACHE | ATT_CAUSAL}, 0},
    {"attention f32 prefill causal D32 h2 q7 kv7", "attention", T, 1e-8f, 0, attention_case,
     {32, 2, 1, 7, 7, ATT_CAUSAL}, 0},
    {"attention permuted q, f16 kv, causal D80 GQA 6/2 q5 kv37", "attention", T, 1e-8f, 0, attention_case,
     {80, 6, 2, 5, 37, ATT_CAUSAL | ATT_Q_PERMUTED | ATT_KV_F16}, 0},
    {"attention q8_0 kv cache, permuted q, causal D64 GQA 6/2 q5 kv37", "attention", T, 1e-8f, 0,
     attention_case, {64, 6, 2, 5, 37, ATT_CAUSAL | ATT_Q_PERMUTED | ATT_KV_Q8 | ATT_KV_CACHE}, 0},
    {"attention f32 mask D32 h3 q9 kv21", "attention", T, 1e-8f, 0, attention_case, {32, 3, 3, 9, 21, ATT_MASK}, 0},
    {"attention f16 q and mask, causal D40 GQA 4/2 q6 kv19", "attention", T, 1e-8f, 0, attention_case,
     {40, 4, 2, 6, 19, ATT_CAUSAL | ATT_MASK | ATT_MASK_F16 | ATT_Q_F16}, 0},
    // Small heads, many rows: the CPU kernel's subgroups take up to 32 rows at once (48 here).
    {"attention f16 kv cache, causal D8 GQA 4/2 q24 kv24", "attention", T, 1e-8f, 0, attention_case,
     {8, 4, 2, 24, 24, ATT_CAUSAL | ATT_KV_F16 | ATT_KV_CACHE}, 0},
    {"attention causal q6 > kv4 (rows of zeros) f16 cache D17", "attention", T, 1e-8f, 0, attention_case,
     {17, 2, 1, 6, 4, ATT_CAUSAL | ATT_KV_F16 | ATT_KV_CACHE}, 0},
    {"attention f32 causal mask D64 h2 q33 kv70", "attention", T, 1e-8f, 0, attention_case,
     {64, 2, 1, 33, 70, ATT_CAUSAL | ATT_MASK}, 0},
    {"attention f32 kv1 D64 h2", "attention", T, 1e-8f, 0, attention_case, {64, 2, 2, 1, 1, 0}, 0},
    // Decode on the CPU kernel's unrolled variants: f16 rows whole from 16-byte texels (D40),
    // and rows that do not start at one (D20: a word at a time).
    {"attention f16 kv cache decode D40 GQA 4/1 kv29", "attention", T, 1e-8f, 0, attention_case,
     {40, 4, 1, 1, 29, ATT_KV_F16 | ATT_KV_CACHE | ATT_CAUSAL}, 0},
    {"attention f16 kv cache decode D20 h2 kv13", "attention", T, 1e-8f, 0, attention_case,
     {20, 2, 2, 1, 13, ATT_KV_F16 | ATT_KV_CACHE | ATT_CAUSAL}, 0},
    // Long enough for several kv tiles: the tiled kernel splits the positions (split-KV) and
    // merges the slices in a second step.
    {"attention f16 kv cache decode D64 GQA 6/2 kv300 (split-KV)", "attention", T, 1e-8f, 0,
     attention_case, {64, 6, 2, 1, 300, ATT_KV_F16 | ATT_KV_CACHE | ATT_CAUSAL}, 0},
    {"attention q8_0 kv cache, causal D64 GQA 4/1 q2 kv161 (split-KV)", "attention", T, 1e-8f, 0,
     attention_case, {64, 4, 1, 2, 161, ATT_CAUSAL | ATT_KV_Q8 | ATT_KV_CACHE}, 0},
    // Image rows: all see up to the image's last position, each window from its own.
    {"attention_pos two positions a query, window 4, image 10..14 kv20 D32 GQA 4/2", "attention", T,
     1e-8f, 0, attention_window_case, {32, 4, 2, 20, 4, 0}, 0},
    {"attention_pos two positions a query (pairs, strided), window 4, f16 kv20 D40 h3", "attention",
     T, 1e-8f, 0, attention_window_case, {40, 3, 3, 20, 4, AW_KV_F16 | AW_PAIRS}, 0},
    // Eight heads to a kv head: 56 rows, which plan attention_coopmat.comp where the profile has
    // cooperative matrices (position bounds, windows and a padding row on its rows).
    {"attention_pos two positions a query, window 4, kv20 D64 GQA 8/1", "attention", T, 1e-8f, 0,
     attention_window_case, {64, 8, 1, 20, 4, 0}, 0},
    {"attention_seq two positions a query, window 4, seq 16, q8_0 kv32 D64 GQA 6/2", "attention", T,
     1e-8f, 0, attention_window_case, {64, 6, 2, 32, 4, AW_SEQ16 | AW_KV_Q8}, 0},
    {"attention_seq two positions a query (pairs), window 3, seq 16, f16 kv32 D8 GQA 8/1", "attention",
     T, 1e-8f, 0, attention_window_case, {8, 8, 1, 32, 3, AW_SEQ16 | AW_PAIRS | AW_KV_F16}, 0},
    // Long query blocks, which plan attention_coopmat.comp where the profile has cooperative
    // matrices (emulate-coopmat: the _cme variant; tests/ops/test_attention_coopmat.cc): a causal
    // prefill with grouped heads whose rows and kv positions no tile divides, and SD's
    // cross-attention (77 text positions, D 40 zero-padded to 48 in the fragments). Shapes and
    // dtypes chosen so that every kernel they plan, on every profile, is compiled with the same
    // constants as for a case above (lavapipe's pipeline cache: CI time): with the mask case D64
    // q33 kv70 and the positions case D64 GQA 8/1, one cooperative-matrix pipeline.
    {"attention f32 causal prefill D64 GQA 4/2 q70 kv70", "attention", T, 1e-8f, 0, attention_case,
     {64, 4, 2, 70, 70, ATT_CAUSAL}, 0},
    {"attention f16 q, f16 kv, SD cross-attention D40 h2 q64 kv77", "attention", T, 1e-8f, 0,
     attention_case, {40, 2, 2, 64, 77, ATT_Q_F16 | ATT_KV_F16}, 0},
    // CPU devices' queries kernel (attention_queries.comp) with 3 queries a lane (D 80, f16 k and
    // v, 8 dims a texel) and 1 (D 160, f32, 4 dims a texel), partial blocks of queries and of kv
    // positions; the cases above cover 4 a lane (q33, q70, q64), masks and causal bounds.
    {"attention f16 kv D80 h2 q19 kv13", "attention", T, 1e-8f, 0, attention_case,
     {80, 2, 2, 19, 13, ATT_KV_F16}, 0},
    {"attention f32 causal D160 GQA 2/1 q11 kv11", "attention", T, 1e-8f, 0, attention_case,
     {160, 2, 1, 11, 11, ATT_CAUSAL}, 0},
    {"attention SmolLM2 decode D64 9/3 heads kv64 f16", "attention", B, 1e-6f, 0, attention_case,
     {64, 9, 3, 1, 64, ATT_KV_F16 | ATT_CAUSAL}, ATT_FLOPS(64, 9, 64)},
    {"attention SmolLM2 decode D64 9/3 heads kv512 f16", "attention", B, 1e-6f, 0, attention_case,
     {64, 9, 3, 1, 512, ATT_KV_F16 | ATT_CAUSAL}, ATT_FLOPS(64, 9, 512)},
    {"attention SmolLM2 prefill D64 9/3 heads q128 causal", "attention", B, 1e-6f, 0, attention_case,
     {64, 9, 3, 128, 128, ATT_CAUSAL}, ATT_FLOPS(64, 9, 128 * 129 / 2)},
    // SD 1.5's first U-Net level at 512x512: 4096 tokens, 8 heads of 40 (attention_coopmat.comp
    // where the device has cooperative matrices, D padded to 48 in its fragments).
    {"attention SD 1.5 self-attention D40 h8 q4096 kv4096", "attention", B, 1e-6f, 0, attention_case,
     {40, 8, 8, 4096, 4096, 0}, ATT_FLOPS(40, 8, 4096.0 * 4096)},

    {"conv2d f32 3x3 s1 p1 [9, 7, 3, 2] -> 4, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 7, 3, 4, 2, 3, 1, 1 | CONV_BIAS}, 0},
    {"conv2d f32 3x3 s2 p1 [9, 7, 5, 2] -> 7", "conv2d", T, 1e-10f, 0, conv2d_case, {9, 7, 5, 7, 2, 3, 2, 1}, 0},
    {"conv2d f32 1x1 [9, 7, 5, 1] -> 7, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 7, 5, 7, 1, 1, 1, 0 | CONV_BIAS}, 0},
    {"conv2d f16 x and w 3x3 s1 p1 [9, 7, 3, 2] -> 7, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 7, 3, 7, 2, 3, 1, 1 | CONV_BIAS | CONV_X_F16 | CONV_W_F16}, 0},
    {"conv2d f16 x channel slice 3x3 s1 p0 [6, 5, 5, 1] -> 4", "conv2d", T, 1e-10f, 0, conv2d_case,
     {6, 5, 5, 4, 1, 3, 1, 0 | CONV_X_F16 | CONV_X_SLICE}, 0},
    {"conv2d f16 w 1x1 s2 [9, 7, 3, 2] -> 4", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 7, 3, 4, 2, 1, 2, 0 | CONV_W_F16}, 0},
    {"conv2d f32 3x3 s1 p1 [17, 13, 20, 1] -> 37, bias", "conv2d", T, 1e-10f, 0, conv2d_case,
     {17, 13, 20, 37, 1, 3, 1, 1 | CONV_BIAS}, 0},
    // Per-side pads: the VAE encoder's downsampling (right and bottom by one, stride 2, on even
    // and odd sizes), and pads that differ on every side, on both kernel variants' tiles.
    {"conv2d f32 3x3 s2 pad right/bottom 1 [10, 8, 6, 1] -> 5, bias", "conv2d", T, 1e-10f, 0,
     conv2d_case, {10, 8, 6, 5, 1, 3, 2, CONV_PADS(0, 1, 0, 1) | CONV_BIAS}, 0},
    {"conv2d f16 x 3x3 s2 pad right/bottom 1 [9, 7, 5, 2] -> 7", "conv2d", T, 1e-10f, 0, conv2d_case,
     {9, 7, 5, 7, 2, 3, 2, CONV_PADS(0, 1, 0, 1) | CONV_X_F16}, 0},
    {"conv2d f32 3x3 s1 pads l2 r0 t1 b3 [11, 6, 4, 1] -> 9, bias", "conv2d", T, 1e-10f, 0,
     conv2d_case, {11, 6, 4, 9, 1, 3, 1, CONV_PADS(2, 0, 1, 3) | CONV_BIAS}, 0},
    {"conv2d f32 1x1 s2 pads l0 r3 t2 b0 [7, 9, 3, 1] -> 4", "conv2d", T, 1e-10f, 0, conv2d_case,
     {7, 9, 3, 4, 1, 1, 2, CONV_PADS(0, 3, 2, 0)}, 0},
    {"conv2d SD 3x3 [64, 64, 320, 1] -> 320 f16 w", "conv2d", B, 1e-8f, 0, conv2d_case,
     {64, 64, 320, 320, 1, 3, 1, 1 | CONV_BIAS | CONV_W_F16}, CONV_FLOPS(64, 64, 320, 320, 3)},
};
const uint32_t vki_cases_attention_count = sizeof vki_cases_attention / sizeof vki_cases_attention[0];
