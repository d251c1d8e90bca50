/* Benchmark cases of the small ops at the shapes of the models vkinfer runs (#20): norms,
 * softmax, rope, get_rows, set_rows, elementwise, gated units, concat, upsample, timestep
 * embedding, argmax and copy. On a GPU these ops are where dispatch overhead and memory
 * bandwidth show, so `vkinfer bench ops` times each at
 *   - SmolLM2-135M: n_embd 576, 9 / 3 heads of 64, n_ff 1536, vocabulary 49152;
 *   - Llama 3 1B: 2048, 32 / 8 heads of 64, n_ff 8192, vocabulary 128256;
 *   - Llama 3 8B: 4096, 32 / 8 heads of 128, n_ff 14336;
 *   each at decode (1 token) and prefill (512 tokens);
 *   - SD 1.5 at 512²: U-Net 320 / 640 / 1280 channels at 64², 32², 16², 8² latents, group norm of
 *     32 groups, 4096 tokens at 64² (8 heads), text context 77 x 768, geglu of 4 x channels;
 *     VAE decoder 128 / 256 / 512 channels up to 512² (tensors up to 128 MiB, lavapipe's binding
 *     limit).
 * Activations are f32, as the models keep them.
 *
 * Each builder here also runs as a small T row (first in the table) against the CPU reference,
 * so that the benchmark measures a builder that computes the right thing; the model-shaped rows
 * are B only (not in the conformance tests' device time).
 *
 * flops: useful floating-point operations, so that `bench ops` can place each case on the
 * roofline (intensity = flops / bytes moved). Counted per element as the formula reads, a
 * transcendental (exp, erf, sin) as one: rms_norm 4 (square-accumulate 2, scale, weight), layer
 * and group norm 8 (mean, variance 3, normalise 2, affine 2), softmax 6 (scale, max, subtract,
 * exp, sum, divide), rope 3 per rotated element (4 mul + 2 add per pair), add / mul / scale 1,
 * swiglu 5 (silu: negate, exp, add, divide; times up), geglu 6 (gelu: divide, erf, add, 2 mul;
 * times up), timestep embedding 2 per output (t * f, sin or cos). Pure data movement (get_rows,
 * set_rows, concat, upsample, copy, casts) and argmax's comparisons count 0.
 *
 * Bytes: the runner counts every input, weight and output in full. get_rows and set_rows touch
 * only the rows they pick, so their tables and caches here hold exactly those rows (a decode
 * step's one row of a 49152-row embedding moves one row whatever the table's size), which keeps
 * bytes equal to the traffic. */
#include "cases_internal.h"

#define F32 VKI_DTYPE_F32
#define F16 VKI_DTYPE_F16

/* ---- builders ------------------------------------------------------------------------------ */

enum { RMS, LAYER, GROUP };

/* x [arg0..3] f32; arg4: RMS (w), LAYER (w, b over ne0), GROUP (w, b over ne2) with arg5 groups. */
static void norm_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, F32, 4, arg, "x");
    int64_t c = arg[4] == GROUP ? arg[2] : arg[0];
    vki_tensor w = vki_weight(g, F32, 1, &c, "w");
    vki_tensor y;
    if (arg[4] == RMS) {
        y = vki_rms_norm(g, x, w, 1e-5f);
    } else {
        vki_tensor b = vki_weight(g, F32, 1, &c, "b");
        y = arg[4] == LAYER ? vki_layer_norm(g, x, w, b, 1e-5f)
                            : vki_group_norm(g, x, (uint32_t)arg[5], w, b, 1e-5f);
    }
    vki_output(g, y, "y");
}

/* softmax of x [arg0, arg1, arg2] f32, scale 1/8, causal if arg3, with an f32 mask [arg0, arg1]
 * if arg4 (attention scores), else none (sampling over a vocabulary). */
static void softmax_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, F32, 3, arg, "x");
    vki_tensor mask = arg[4] ? vki_input(g, F32, 2, arg, "mask") : (vki_tensor){0};
    vki_output(g, vki_softmax(g, x, mask, 0.125f, arg[3] != 0), "y");
}

/* llama's rope of x [arg0 head_dim, arg1 heads, arg2 tokens] f32, all dims rotated. */
static void rope_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, F32, 3, arg, "x");
    vki_tensor pos = vki_input(g, VKI_DTYPE_I32, 1, &arg[2], "pos");
    vki_output(g, vki_rope(g, x, pos, (uint32_t)arg[0], VKI_ROPE_NORMAL, 10000.0f, 1.0f), "y");
}

/* Embedding rows: table [arg1, arg2] of dtype arg0, ids [arg2] below the case's index limit. */
static void get_rows_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor table = vki_weight(g, (vki_dtype)arg[0], 2, (int64_t[]){arg[1], arg[2]}, "table");
    vki_tensor ids = vki_input(g, VKI_DTYPE_I32, 1, &arg[2], "ids");
    vki_output(g, vki_get_rows(g, table, ids), "y");
}

/* A KV cache write: src f32 [arg0, arg1] into the arg1 rows of a cache [arg0, arg1] of dtype
 * arg2. Up to 15 rows go to distinct rows in a shuffled order (checked by the T rows); more
 * take random rows below the case's index limit (timing only: of duplicates one wins). */
static void set_rows_case(vki_graph *g, const int64_t *arg)
{
    int64_t K = arg[0], N = arg[1];
    vki_tensor cache = vki_weight(g, (vki_dtype)arg[2], 2, (int64_t[]){K, N}, "cache");
    vki_tensor src = vki_input(g, F32, 2, (int64_t[]){K, N}, "src");
    vki_tensor idx;
    if (N <= VKI_CASE_MAX_INTS) {
        int32_t ids[VKI_CASE_MAX_INTS];
        // i * 7 + 3 mod N is a permutation where 7 is prime to N; N = 7, 14 are reversed.
        for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)(N % 7 ? (i * 7 + 3) % N : N - 1 - i);
        idx = vki__case_ints(g, ids, (uint32_t)N, "idx");
    } else {
        idx = vki_input(g, VKI_DTYPE_I32, 1, &N, "idx");
    }
    vki_output(g, vki_set_rows(g, cache, src, idx), "cache after");
}

enum { FULL, ROW, CHANNEL }; // b's shape: a's, [ne0] (a weight row), [1, 1, ne2] (per channel)
enum { ADD, MUL, SCALE };

/* a [arg0..3] f32; arg4: ADD or MUL with b shaped by arg5, or SCALE by 0.125. */
static void binary_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor a = vki_input(g, F32, 4, arg, "a");
    if (arg[4] == SCALE) {
        vki_output(g, vki_scale(g, a, 0.125f), "y");
        return;
    }
    int64_t bne[4] = {arg[0], arg[1], arg[2], arg[3]};
    if (arg[5] == ROW) bne[1] = bne[2] = bne[3] = 1;
    if (arg[5] == CHANNEL) bne[0] = bne[1] = bne[3] = 1;
    vki_tensor b = vki_input(g, F32, 4, bne, "b");
    vki_output(g, arg[4] == MUL ? vki_mul(g, a, b) : vki_add(g, a, b), "y");
}

/* swiglu (arg3 == VKI_ACT_SILU) or geglu of gate and up [arg0, arg1, arg2] f32, the gate scaled
 * by 4 by the T rows (arg4) to reach the activations' curved ranges. */
static void glu_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor gate = vki_input(g, F32, 3, arg, "gate");
    vki_tensor up = vki_input(g, F32, 3, arg, "up");
    if (arg[4]) gate = vki_scale(g, gate, (float)arg[4]);
    vki_output(g, arg[3] == VKI_ACT_SILU ? vki_swiglu(g, gate, up) : vki_geglu(g, gate, up), "y");
}

/* The U-Net's skip connection: a [arg0, arg1, arg2] and b [arg0, arg1, arg3] f32 joined along
 * the channels (dim 2). */
static void concat_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor a = vki_input(g, F32, 3, arg, "a");
    vki_tensor b = vki_input(g, F32, 3, (int64_t[]){arg[0], arg[1], arg[3]}, "b");
    vki_output(g, vki_concat(g, a, b, 2), "y");
}

/* x [arg0, arg1, arg2] f32 -> [2 arg0, 2 arg1, arg2]. */
static void upsample_case(vki_graph *g, const int64_t *arg)
{
    vki_output(g, vki_upsample2x(g, vki_input(g, F32, 3, arg, "x")), "y");
}

/* arg0 timesteps (random in [-1, 1]: the values do not change the work) embedded in arg1 dims. */
static void timestep_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor t = vki_input(g, F32, 1, &arg[0], "t");
    vki_output(g, vki_timestep_embedding(g, t, (uint32_t)arg[1], 10000.0f), "y");
}

/* Greedy sampling: the index of the largest of each row of x [arg0, arg1] f32. */
static void argmax_case(vki_graph *g, const int64_t *arg)
{
    vki_output(g, vki_argmax(g, vki_input(g, F32, 2, arg, "x")), "y");
}

/* x [arg0, arg1, arg2] f32, permuted {0, 2, 1} if arg3 (heads <-> tokens, as attention reads
 * them), copied contiguous in dtype arg4. */
static void copy_case(vki_graph *g, const int64_t *arg)
{
    vki_tensor x = vki_input(g, F32, 3, arg, "x");
    if (arg[3]) x = vki_permute(g, x, (const uint32_t[]){0, 2, 1, 3});
    vki_output(g, vki_copy(g, x, (vki_dtype)arg[4]), "y");
}

/* ---- flops ---------------------------------------------------------------------------------- */

#define N_RMS(ne0, ne1) (4.0 * (ne0) * (ne1))
#define N_AFFINE(elements) (8.0 * (elements))
#define N_SOFTMAX(elements) (6.0 * (elements))
#define N_ROPE(hd, heads, tok) (3.0 * (hd) * (heads) * (tok))
#define N_SWIGLU(elements) (5.0 * (elements))
#define N_GEGLU(elements) (6.0 * (elements))

#define T VKI_CASE_TEST
#define B VKI_CASE_BENCH

/* LLM rows at decode (1 token) and prefill (512 tokens). */
#define RMS_ROW(name, d)                                                                        \
    {"rms_norm " name " [" #d "] decode", "rms_norm", B, 1e-10f, 0, norm_case, {d, 1, 1, 1, RMS}, \
     N_RMS(d, 1)},                                                                              \
        {"rms_norm " name " [" #d ", 512] prefill", "rms_norm", B, 1e-10f, 0, norm_case,        \
         {d, 512, 1, 1, RMS}, N_RMS(d, 512)}
#define ROPE_ROW(name, hd, heads)                                                               \
    {"rope " name " [" #hd ", " #heads "] decode", "rope", B, 1e-7f, 4096, rope_case,          \
     {hd, heads, 1}, N_ROPE(hd, heads, 1)},                                                     \
        {"rope " name " [" #hd ", " #heads ", 512] prefill", "rope", B, 1e-7f, 4096, rope_case, \
         {hd, heads, 512}, N_ROPE(hd, heads, 512)}
#define GR_ROW(name, wt, dt, d)                                                                 \
    {"get_rows " name " " #wt " [" #d "] x 1 decode", "get_rows", B, 1e-12f, 1, get_rows_case, \
     {VKI_DTYPE_##dt, d, 1}, 0},                                                                \
        {"get_rows " name " " #wt " [" #d "] x 512 prefill", "get_rows", B, 1e-12f, 512,        \
         get_rows_case, {VKI_DTYPE_##dt, d, 512}, 0}
#define SR_ROW(name, wt, dt, k)                                                                 \
    {"set_rows " name " f32 -> " #wt " kv row [" #k "] x 1 decode", "set_rows", B, 1e-9f, 1,   \
     set_rows_case, {k, 1, VKI_DTYPE_##dt}, 0},                                                 \
        {"set_rows " name " f32 -> " #wt " kv rows [" #k "] x 512 prefill", "set_rows", B,      \
         1e-9f, 512, set_rows_case, {k, 512, VKI_DTYPE_##dt}, 0}
#define BIN_ROW(op, name, opc, bshape, d)                                                       \
    {#op " " name " [" #d "] decode", #op, B, 1e-10f, 0, binary_case, {d, 1, 1, 1, opc, bshape}, \
     1.0 * (d)},                                                                                \
        {#op " " name " [" #d ", 512] prefill", #op, B, 1e-10f, 0, binary_case,                 \
         {d, 512, 1, 1, opc, bshape}, 512.0 * (d)}
#define SWIGLU_ROW(name, ff)                                                                    \
    {"swiglu " name " [" #ff "] decode", "swiglu", B, 1e-10f, 0, glu_case,                     \
     {ff, 1, 1, VKI_ACT_SILU}, N_SWIGLU(ff)},                                                   \
        {"swiglu " name " [" #ff ", 512] prefill", "swiglu", B, 1e-10f, 0, glu_case,            \
         {ff, 512, 1, VKI_ACT_SILU}, N_SWIGLU(512.0 * (ff))}

#define GN_ROW(name, w, c)                                                                      \
    {"group_norm " name " [" #w ", " #w ", " #c "] 32 groups", "group_norm", B, 1e-10f, 0,     \
     norm_case, {w, w, c, 1, GROUP, 32}, N_AFFINE((double)(w) * (w) * (c))}
#define LN_ROW(name, c, tok)                                                                    \
    {"layer_norm " name " [" #c ", " #tok "]", "layer_norm", B, 1e-10f, 0, norm_case,          \
     {c, tok, 1, 1, LAYER}, N_AFFINE((double)(c) * (tok))}
#define GEGLU_ROW(name, ff, tok)                                                                \
    {"geglu " name " [" #ff ", " #tok "]", "geglu", B, 1e-10f, 0, glu_case,                    \
     {ff, tok, 1, VKI_ACT_GELU}, N_GEGLU((double)(ff) * (tok))}
#define CAT_ROW(name, w, c)                                                                     \
    {"concat " name " [" #w ", " #w ", " #c "] + [" #w ", " #w ", " #c "] channels", "concat", \
     B, 0, 0, concat_case, {w, w, c, c}, 0}
#define UP_ROW(name, w, c)                                                                      \
    {"upsample " name " [" #w ", " #w ", " #c "]", "upsample", B, 0, 0, upsample_case,         \
     {w, w, c}, 0}

const vki_op_case vki_cases_model_shapes[] = {
    // Each builder at a small, odd shape against the reference.
    {"model shapes: rms_norm f32 [67, 5]", "rms_norm", T, 1e-10f, 0, norm_case, {67, 5, 1, 1, RMS}, N_RMS(67, 5)},
    {"model shapes: layer_norm f32 [67, 5]", "layer_norm", T, 1e-10f, 0, norm_case, {67, 5, 1, 1, LAYER}, N_AFFINE(335)},
    {"model shapes: group_norm f32 [5, 3, 64] 32 groups", "group_norm", T, 1e-10f, 0, norm_case,
     {5, 3, 64, 1, GROUP, 32}, N_AFFINE(960)},
    {"model shapes: softmax f32 [77, 9] (vocabulary-like)", "softmax", T, 1e-10f, 0, softmax_case,
     {77, 9, 1, 0, 0}, N_SOFTMAX(693)},
    {"model shapes: softmax f32 causal [13, 13, 3] mask", "softmax", T, 1e-10f, 0, softmax_case,
     {13, 13, 3, 1, 1}, N_SOFTMAX(507)},
    {"model shapes: rope f32 [64, 3, 5]", "rope", T, 1e-7f, 4096, rope_case, {64, 3, 5}, N_ROPE(64, 3, 5)},
    {"model shapes: get_rows q4_1 [64] x 7", "get_rows", T, 1e-12f, 7, get_rows_case, {VKI_DTYPE_Q4_1, 64, 7}, 0},
    {"model shapes: set_rows f32 -> f16 [67] x 9 shuffled", "set_rows", T, 1e-9f, 9, set_rows_case,
     {67, 9, F16}, 0},
    {"model shapes: set_rows f32 -> f16 [67] x 14 reversed", "set_rows", T, 1e-9f, 14, set_rows_case,
     {67, 14, F16}, 0},
    {"model shapes: set_rows f32 -> q8_0 [64] x 5 shuffled", "set_rows", T, 2e-6f, 5, set_rows_case,
     {64, 5, VKI_DTYPE_Q8_0}, 0},
    {"model shapes: add f32 [7, 5, 3] + [1, 1, 3] (per channel)", "add", T, 1e-10f, 0, binary_case,
     {7, 5, 3, 1, ADD, CHANNEL}, 105},
    {"model shapes: add f32 [67, 5] + [67, 5]", "add", T, 1e-10f, 0, binary_case, {67, 5, 1, 1, ADD, FULL}, 335},
    {"model shapes: mul f32 [67, 5] * [67] (weight row)", "mul", T, 1e-10f, 0, binary_case,
     {67, 5, 1, 1, MUL, ROW}, 335},
    {"model shapes: scale f32 [67, 5]", "scale", T, 1e-10f, 0, binary_case, {67, 5, 1, 1, SCALE}, 335},
    {"model shapes: swiglu f32 [67, 5] of gate * 4", "swiglu", T, 1e-10f, 0, glu_case,
     {67, 5, 1, VKI_ACT_SILU, 4}, N_SWIGLU(335)},
    {"model shapes: geglu f32 [67, 5] of gate * 4", "geglu", T, 1e-10f, 0, glu_case,
     {67, 5, 1, VKI_ACT_GELU, 4}, N_GEGLU(335)},
    {"model shapes: concat f32 [5, 3, 4] + [5, 3, 2] channels", "concat", T, 0, 0, concat_case, {5, 3, 4, 2}, 0},
    {"model shapes: upsample f32 [5, 3, 4]", "upsample", T, 0, 0, upsample_case, {5, 3, 4}, 0},
    {"model shapes: timestep_embedding [320] x 2", "timestep_embedding", T, 1e-10f, 0, timestep_case,
     {2, 320}, 2.0 * 320 * 2},
    {"model shapes: argmax f32 [999, 3]", "argmax", T, 0, 0, argmax_case, {999, 3}, 0},
    {"model shapes: copy f32 permuted [16, 3, 5]", "copy", T, 0, 0, copy_case, {16, 3, 5, 1, F32}, 0},
    {"model shapes: cast f32 -> f16 [67, 5]", "cast", T, 1e-6f, 0, copy_case, {67, 5, 1, 0, F16}, 0},

    // SmolLM2-135M, Llama 3 1B, Llama 3 8B: decode and prefill.
    RMS_ROW("SmolLM2", 576), RMS_ROW("Llama 3 1B", 2048), RMS_ROW("Llama 3 8B", 4096),
    ROPE_ROW("SmolLM2 q", 64, 9), ROPE_ROW("SmolLM2 k", 64, 3),
    ROPE_ROW("Llama 3 1B q", 64, 32), ROPE_ROW("Llama 3 1B k", 64, 8),
    ROPE_ROW("Llama 3 8B q", 128, 32), ROPE_ROW("Llama 3 8B k", 128, 8),
    GR_ROW("SmolLM2 embedding", q4_1, Q4_1, 576), GR_ROW("SmolLM2 embedding", f16, F16, 576),
    GR_ROW("Llama 3 1B embedding", q8_0, Q8_0, 2048), GR_ROW("Llama 3 8B embedding", q4_k, Q4_K, 4096),
    SR_ROW("SmolLM2", f16, F16, 192), SR_ROW("SmolLM2", q8_0, Q8_0, 192),
    SR_ROW("Llama 3 1B", f16, F16, 512), SR_ROW("Llama 3 8B", f16, F16, 1024),
    BIN_ROW(add, "SmolLM2 residual", ADD, FULL, 576), BIN_ROW(add, "Llama 3 1B residual", ADD, FULL, 2048),
    BIN_ROW(add, "Llama 3 8B residual", ADD, FULL, 4096),
    BIN_ROW(mul, "SmolLM2 norm weight", MUL, ROW, 576), BIN_ROW(mul, "Llama 3 8B norm weight", MUL, ROW, 4096),
    BIN_ROW(scale, "SmolLM2", SCALE, 0, 576), BIN_ROW(scale, "Llama 3 8B", SCALE, 0, 4096),
    SWIGLU_ROW("SmolLM2", 1536), SWIGLU_ROW("Llama 3 1B", 8192), SWIGLU_ROW("Llama 3 8B", 14336),
    {"softmax SmolLM2 vocabulary [49152] (sampling)", "softmax", B, 1e-10f, 0, softmax_case,
     {49152, 1, 1, 0, 0}, N_SOFTMAX(49152)},
    {"softmax Llama 3 vocabulary [128256] (sampling)", "softmax", B, 1e-10f, 0, softmax_case,
     {128256, 1, 1, 0, 0}, N_SOFTMAX(128256)},
    {"softmax SmolLM2 prefill scores causal [512, 512, 9] mask", "softmax", B, 1e-10f, 0, softmax_case,
     {512, 512, 9, 1, 1}, N_SOFTMAX(512.0 * 512 * 9)},
    {"softmax Llama 3 1B prefill scores causal [512, 512, 32] mask", "softmax", B, 1e-10f, 0,
     softmax_case, {512, 512, 32, 1, 1}, N_SOFTMAX(512.0 * 512 * 32)},
    {"argmax SmolLM2 vocabulary [49152] (greedy)", "argmax", B, 0, 0, argmax_case, {49152, 1}, 0},
    {"argmax Llama 3 vocabulary [128256] (greedy)", "argmax", B, 0, 0, argmax_case, {128256, 1}, 0},
    {"copy SmolLM2 prefill q heads <-> tokens [64, 9, 512]", "copy", B, 0, 0, copy_case,
     {64, 9, 512, 1, F32}, 0},
    {"copy Llama 3 8B prefill q heads <-> tokens [128, 32, 512]", "copy", B, 0, 0, copy_case,
     {128, 32, 512, 1, F32}, 0},

    // SD 1.5 at 512²: U-Net at 64², 32², 16², 8²; VAE decoder up to 512².
    GN_ROW("SD U-Net 64²", 64, 320), GN_ROW("SD U-Net 32²", 32, 640), GN_ROW("SD U-Net 16²", 16, 1280),
    GN_ROW("SD U-Net 8²", 8, 1280), GN_ROW("SD VAE 128²", 128, 512), GN_ROW("SD VAE 256²", 256, 256),
    GN_ROW("SD VAE 512²", 512, 128),
    LN_ROW("SD U-Net 64² tokens", 320, 4096), LN_ROW("SD U-Net 32² tokens", 640, 1024),
    LN_ROW("SD U-Net 16² tokens", 1280, 256), LN_ROW("SD U-Net 8² tokens", 1280, 64),
    LN_ROW("SD CLIP text", 768, 77),
    GEGLU_ROW("SD U-Net 64²", 1280, 4096), GEGLU_ROW("SD U-Net 32²", 2560, 1024),
    GEGLU_ROW("SD U-Net 16²", 5120, 256), GEGLU_ROW("SD U-Net 8²", 5120, 64),
    {"softmax SD cross-attention scores [77, 4096, 8]", "softmax", B, 1e-10f, 0, softmax_case,
     {77, 4096, 8, 0, 0}, N_SOFTMAX(77.0 * 4096 * 8)},
    {"softmax SD self-attention scores one head [4096, 4096]", "softmax", B, 1e-10f, 0, softmax_case,
     {4096, 4096, 1, 0, 0}, N_SOFTMAX(4096.0 * 4096)},
    {"add SD U-Net 64² residual [64, 64, 320]", "add", B, 1e-10f, 0, binary_case,
     {64, 64, 320, 1, ADD, FULL}, 64.0 * 64 * 320},
    {"add SD U-Net 64² time embedding [64, 64, 320] + [320]", "add", B, 1e-10f, 0, binary_case,
     {64, 64, 320, 1, ADD, CHANNEL}, 64.0 * 64 * 320},
    {"add SD U-Net 16² time embedding [16, 16, 1280] + [1280]", "add", B, 1e-10f, 0, binary_case,
     {16, 16, 1280, 1, ADD, CHANNEL}, 16.0 * 16 * 1280},
    {"scale SD U-Net 64² [64, 64, 320]", "scale", B, 1e-10f, 0, binary_case, {64, 64, 320, 1, SCALE},
     64.0 * 64 * 320},
    CAT_ROW("SD U-Net 64² skip", 64, 320), CAT_ROW("SD U-Net 32² skip", 32, 640),
    CAT_ROW("SD U-Net 16² skip", 16, 1280), CAT_ROW("SD U-Net 8² skip", 8, 1280),
    UP_ROW("SD U-Net 8² -> 16²", 8, 1280), UP_ROW("SD U-Net 16² -> 32²", 16, 1280),
    UP_ROW("SD U-Net 32² -> 64²", 32, 640), UP_ROW("SD VAE 64² -> 128²", 64, 512),
    // The VAE's last upsample (256 channels to 512²: 256 MiB of f32) is left out: it is above
    // many devices' binding limit (maxStorageBufferRange, 128 MiB on lavapipe), and the VAE runs
    // tiles of the latent there (models/arch_vae.c).
    UP_ROW("SD VAE 128² -> 256²", 128, 512),
    {"timestep_embedding SD U-Net [320] x 2 (guidance batch)", "timestep_embedding", B, 1e-10f, 0,
     timestep_case, {2, 320}, 2.0 * 320 * 2},
    {"copy SD 64² attention heads <-> tokens [40, 8, 4096]", "copy", B, 0, 0, copy_case,
     {40, 8, 4096, 1, F32}, 0},
    {"cast SD f32 -> f16 [1280, 4096]", "cast", B, 0, 0, copy_case, {1280, 4096, 1, 0, F16}, 0},
};
const uint32_t vki_cases_model_shapes_count = sizeof vki_cases_model_shapes / sizeof vki_cases_model_shapes[0];
