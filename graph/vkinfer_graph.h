/* vkinfer graph: tensors as value handles, op builders that record nodes, a compiler that
 * fuses, plans memory and barriers and lowers every node to kernel dispatches for a device
 * profile, and an executor that records the plan once and replays it.
 *
 * Shapes follow the GGUF/ggml convention: ne[0] is the innermost (contiguous) dimension, so a
 * weight matrix of M rows of K elements is ne = {K, M}, and vki_matmul(w{K,M}, x{K,N}) gives
 * y{M,N}. Byte strides nb[] make views, permutes and transposes free.
 *
 * A builder never fails loudly: a bad call records the first error in the graph (op name and
 * shapes) and returns the invalid tensor {0}, which every later builder passes through.
 * vki_graph_compile reports it.
 *
 * Usage: y = silu(W x) on a device.
 *
 *     vki_graph *g = NULL; vki_plan *plan = NULL; vki_exec *ex = NULL;
 *     VKI_TRY(vki_graph_create(NULL, &g));
 *     vki_tensor w = vki_weight(g, VKI_DTYPE_Q4_0, 2, (int64_t[]){K, M}, "w"); // [K, M] q4_0
 *     vki_tensor x = vki_input(g, VKI_DTYPE_F32, 2, (int64_t[]){K, 1}, "x");   // [K, 1]
 *     vki_tensor y = vki_silu(g, vki_matmul(g, w, x));                        // [M, 1]
 *     vki_output(g, y, "y");
 *     VKI_TRY(vki_graph_compile(g, vki_device_profile(dev), NULL, &plan));
 *     VKI_TRY(vki_exec_create(dev, plan, NULL, &ex));
 *     VKI_TRY(vki_exec_bind(ex, w, weights_range));       // quantized blocks, as in the file
 *     VKI_TRY(vki_exec_upload(ex, x, host_x, K * 4));
 *     VKI_TRY(vki_exec_run(ex));                          // records once, then replays
 *     VKI_TRY(vki_exec_download(ex, y, host_y, M * 4));
 *     ... vki_exec_destroy(ex); vki_plan_destroy(plan); vki_graph_destroy(g);
 *
 * The plan does not reference the graph; the executor does not reference the plan after
 * creation (it copies what it needs). */
#ifndef VKINFER_GRAPH_H
#define VKINFER_GRAPH_H

#include "vkinfer_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Types --------------------------------------------------------------------------------- */

typedef enum vki_dtype {
    VKI_DTYPE_NONE = 0,
    VKI_DTYPE_F32,
    VKI_DTYPE_F16,
    VKI_DTYPE_BF16,
    VKI_DTYPE_Q8_0,  // GGUF block formats, bit-exact with the file layouts
    VKI_DTYPE_Q4_0,
    VKI_DTYPE_Q4_1,
    VKI_DTYPE_Q5_0,
    VKI_DTYPE_Q5_1,
    VKI_DTYPE_Q4_K,
    VKI_DTYPE_Q5_K,
    VKI_DTYPE_Q6_K,
    VKI_DTYPE_I32,   // indices (get_rows), positions (rope), argmax results
    VKI_DTYPE_COUNT
} vki_dtype;

typedef struct vki_dtype_info {
    const char *name;     // "f32", "q4_0", ...
    uint32_t block_elems; // elements per block (1 for plain types)
    uint32_t block_bytes; // bytes per block
    bool quantized;
} vki_dtype_info;

/* Never NULL; VKI_DTYPE_NONE and out-of-range values give a "none" entry with zero sizes. */
const vki_dtype_info *vki_dtype_get(vki_dtype dtype);

/* Bytes of `n` consecutive elements (n a multiple of the block size; else 0). */
uint64_t vki_dtype_bytes(vki_dtype dtype, int64_t n);

/* Element formats on the host: f16 and bf16 to f32 and back (rounding to nearest even). */
float vki_f16_to_f32(uint16_t h);
uint16_t vki_f32_to_f16(float f);
float vki_bf16_to_f32(uint16_t h);
uint16_t vki_f32_to_bf16(float f);

/* Decodes one block of a quantized dtype into block_elems floats. */
void vki_dequant_block(vki_dtype dtype, const uint8_t *block, float *out);

/* Encodes block_elems floats into one block (the reference quantiser; GGUF's layouts). */
void vki_quant_block(vki_dtype dtype, const float *in, uint8_t *block);

#define VKI_MAX_DIMS 4

/* A tensor of a graph; 0 is invalid. Cheap to copy, valid while its graph lives. */
typedef struct vki_tensor {
    uint32_t id;
} vki_tensor;

typedef struct vki_tensor_info {
    vki_dtype dtype;
    uint32_t ndim;
    int64_t ne[VKI_MAX_DIMS];   // elements per dimension (unused dims are 1)
    uint64_t nb[VKI_MAX_DIMS];  // byte strides (nb[0] = element or block size)
    bool contiguous;
    const char *name;           // borrowed; "" if unnamed
} vki_tensor_info;

/* ---- Graph ----------------------------------------------------------------------------------- */

/* Threads: a graph is used from one thread at a time (builders append nodes and record the
 * first error; compile writes the error string). Graphs share nothing: different graphs may be
 * built and compiled on different threads at once, with no device involved. */
typedef struct vki_graph vki_graph;

typedef struct vki_graph_desc {
    const vki_allocator *allocator; // NULL: malloc/free
    uint32_t node_capacity;         // initial node array size; 0: 256 (it grows)
} vki_graph_desc;

vki_status vki_graph_create(const vki_graph_desc *desc, vki_graph **out_graph);
void vki_graph_destroy(vki_graph *graph);

/* The first recorded builder error ("" if none) and its status. */
const char *vki_graph_error(const vki_graph *graph);
vki_status vki_graph_status(const vki_graph *graph);

/* Fills `out` for a valid tensor; returns false for {0} or a foreign id. */
bool vki_tensor_get_info(const vki_graph *graph, vki_tensor t, vki_tensor_info *out_info);
int64_t vki_tensor_nelements(const vki_graph *graph, vki_tensor t);

/* ---- Leaves ---------------------------------------------------------------------------------- */

/* Data the caller uploads before each run (vki_exec_upload). */
vki_tensor vki_input(vki_graph *g, vki_dtype dtype, uint32_t ndim, const int64_t *ne,
                     const char *name);
/* Data bound once to a range the caller owns (vki_exec_bind): model weights. */
vki_tensor vki_weight(vki_graph *g, vki_dtype dtype, uint32_t ndim, const int64_t *ne,
                      const char *name);
/* Marks `t` as a result: it keeps its own storage and can be downloaded after a run (a
 * vki_set_rows result has the storage it wrote into: the whole of a weight, input or
 * intermediate, which then becomes an output's storage). */
void vki_output(vki_graph *g, vki_tensor t, const char *name);

/* ---- Views (no copy) ------------------------------------------------------------------------- */

vki_tensor vki_view(vki_graph *g, vki_tensor t, uint32_t ndim, const int64_t *ne, const uint64_t *nb,
                    uint64_t offset);
vki_tensor vki_reshape(vki_graph *g, vki_tensor t, uint32_t ndim, const int64_t *ne); // contiguous t
vki_tensor vki_permute(vki_graph *g, vki_tensor t, const uint32_t axes[VKI_MAX_DIMS]); // dim i -> axes[i]
vki_tensor vki_transpose(vki_graph *g, vki_tensor t); // swaps dims 0 and 1

/* ---- Ops (one file each in graph/ops/) --------------------------------------------------------- */

typedef enum vki_activation {
    VKI_ACT_NONE = 0,
    VKI_ACT_SILU,
    VKI_ACT_GELU,       // erf form
    VKI_ACT_GELU_TANH,
    VKI_ACT_QUICK_GELU, // x * sigmoid(1.702 x)
    VKI_ACT_COUNT
} vki_activation;

/* Contiguous copy of t, converted to `dtype` (F32/F16/BF16; 0 keeps t's dtype); t may be any
 * strided view of an F32/F16/BF16 tensor (this is how permuted views become contiguous).
 * Narrowing rounds to nearest (ties to even for bf16). vki_cast is the same op. */
vki_tensor vki_copy(vki_graph *g, vki_tensor t, vki_dtype dtype);
vki_tensor vki_cast(vki_graph *g, vki_tensor t, vki_dtype dtype);

/* Elementwise with broadcasting: b's dims must be 1 or equal to a's. Result has a's shape. */
vki_tensor vki_add(vki_graph *g, vki_tensor a, vki_tensor b);
vki_tensor vki_mul(vki_graph *g, vki_tensor a, vki_tensor b);
vki_tensor vki_scale(vki_graph *g, vki_tensor a, float s);

/* Activations, elementwise on F32/F16 (a may be a strided view), computed in fp32. gelu is the
 * erf form; kernels use Abramowitz-Stegun 7.1.26 for erf (|error| <= 1.5e-7). vki_activate with
 * VKI_ACT_NONE returns `a` itself. */
vki_tensor vki_silu(vki_graph *g, vki_tensor a);
vki_tensor vki_gelu(vki_graph *g, vki_tensor a);
vki_tensor vki_gelu_tanh(vki_graph *g, vki_tensor a);
vki_tensor vki_quick_gelu(vki_graph *g, vki_tensor a);
vki_tensor vki_activate(vki_graph *g, vki_tensor a, vki_activation act);

/* Gated units: silu(gate) * up, gelu(gate) * up (erf gelu); same shapes, both F32 or both F16,
 * either may be a strided view (e.g. the halves of one fused projection). */
vki_tensor vki_swiglu(vki_graph *g, vki_tensor gate, vki_tensor up);
vki_tensor vki_geglu(vki_graph *g, vki_tensor gate, vki_tensor up);

/* y[M, N, B] = w[K, M, B or 1] x[K, N, B] with w in any dtype (quantized stays quantized) and x
 * F32/F16; y is F32. Dims 2 and 3 of w broadcast when they divide x's (consecutive x batches
 * share a w batch, as in grouped-query attention). Rows (dim 0) of w and x must be contiguous
 * (vki_copy a transposed operand first); other strides are free. The compiler fuses a
 * following vki_add of a [M] bias and an activation. */
vki_tensor vki_matmul(vki_graph *g, vki_tensor w, vki_tensor x);

/* Normalise each row (dim 0). `w` and `b` ([ne0], may be {0}) scale and shift afterwards.
 * x is F32 or F16 (any strides); w and b are contiguous F32 or F16 whatever x is. The result is
 * contiguous in x's dtype: rms_norm x / sqrt(mean(x^2) + eps) * w, layer_norm
 * (x - mean) / sqrt(var + eps) * w + b. */
vki_tensor vki_rms_norm(vki_graph *g, vki_tensor x, vki_tensor w, float eps);
vki_tensor vki_layer_norm(vki_graph *g, vki_tensor x, vki_tensor w, vki_tensor b, float eps);
/* x [W, H, C, N]: statistics over W*H*(C/groups) per group; w, b are [C] (may be {0}).
 * groups must divide C. */
vki_tensor vki_group_norm(vki_graph *g, vki_tensor x, uint32_t groups, vki_tensor w, vki_tensor b,
                          float eps);

/* softmax(x * scale + mask) along dim 0. mask (F32/F16, [ne0, ne1], may be {0}) is added;
 * causal masks column j > row i + (ne0 - ne1) (the last ne1 of ne0 positions are the queries).
 * The mask broadcasts over dims 2 and 3, and over rows when it is [ne0, 1]. A mask entry of
 * -inf removes its column; a row with every column removed is all zeros, not NaN. fp32 math;
 * the result is contiguous in x's dtype (F32 or F16). */
vki_tensor vki_softmax(vki_graph *g, vki_tensor x, vki_tensor mask, float scale, bool causal);

typedef enum vki_rope_mode {
    VKI_ROPE_NORMAL = 0, // rotate pairs (2i, 2i+1) (llama)
    VKI_ROPE_NEOX,       // rotate pairs (i, i + n_rot/2) (GPT-NeoX, Qwen2, Gemma)
    VKI_ROPE_MROPE,      // Qwen2-VL text: NEOX pairs; pair i takes position stream k of the section it is in
    VKI_ROPE_VISION,     // Qwen2-VL ViT: NEOX pairs; 2-D positions, the angle index restarts per section
    VKI_ROPE_MODE_COUNT
} vki_rope_mode;

/* x [head_dim, n_head, n_tok], pos I32 [n_tok]. The first n_rot dims of each head rotate by
 * pos * freq_scale * base^(-2i/n_rot) (pair i); the rest pass through. n_rot is even and at
 * most head_dim; x is F32 or F16 (any strides, a 4th dim shares pos); the result is contiguous
 * in x's dtype. */
vki_tensor vki_rope(vki_graph *g, vki_tensor x, vki_tensor pos, uint32_t n_rot, vki_rope_mode mode,
                    float base, float freq_scale);

/* Multi-section rope (Qwen2-VL), mode VKI_ROPE_MROPE or VKI_ROPE_VISION (vki_rope takes only
 * NORMAL and NEOX). x [head_dim, n_head, n_tok] as for vki_rope; pos I32 [n_tok, 4], contiguous:
 * stream k of token t at pos[k * n_tok + t]. sections[4]: pairs per stream; they must add up to
 * exactly n_rot / 2 (anything else is VKI_ERROR_INVALID_ARGUMENT). Pairs are NEOX's
 * (i, i + n_rot/2), i < n_rot/2; pair i lies in section k when
 * s_k <= i < s_k + sections[k], s_k = sections[0] + ... + sections[k-1], and turns by
 *   MROPE:  theta = pos[k][t] * freq_scale * base^(-2 i / n_rot)
 *   VISION: theta = pos[k][t] * freq_scale * base^(-2 (i - s_k) / (n_rot / 2))
 * (x0, x1) -> (x0 cos theta - x1 sin theta, x0 sin theta + x1 cos theta); dims n_rot.. pass
 * through. MROPE is transformers' apply_multimodal_rotary_pos_emb with
 * mrope_section = {sections[0..2]} (streams t, h, w; stream 3 unused there: sections[3] = 0),
 * n_rot = head_dim. VISION is its VisionRotaryEmbedding + apply_rotary_pos_emb_vision with
 * stream 0 = patch row, stream 1 = patch column, sections {d/4, d/4, 0, 0}, n_rot = d
 * (= head_dim). The result is contiguous in x's dtype (F32 or F16). */
vki_tensor vki_rope_multi(vki_graph *g, vki_tensor x, vki_tensor pos, uint32_t n_rot,
                          vki_rope_mode mode, const uint32_t sections[4], float base,
                          float freq_scale);

/* Fused attention (flash attention: online softmax in fp32, no score matrix in memory).
 * q [D, n_head, n_q], k and v [D, n_kv_head, n_kv] with n_head a multiple of n_kv_head
 * (grouped-query: head h reads kv head h / (n_head / n_kv_head)), mask like vki_softmax's
 * ([n_kv, n_q], may be {0}). q, k, v and mask are F32 or F16, views allowed (a permuted q, a
 * slice of a KV cache); k and v may also both be Q8_0 (a quantised cache: D % 32 == 0, whole
 * blocks along D at even byte offsets); D <= 256. causal: query i sees kv positions
 * j <= i + n_kv - n_q. A query that sees no position (all masked with -inf) gives zeros.
 * Result F32 [D, n_head, n_q]. */
vki_tensor vki_attention(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor mask,
                         float scale, bool causal);

/* Like vki_attention, masked by absolute positions: pos I32 [n_q] (may be strided) holds each
 * query's position; query i sees kv position j when j <= pos[i] and, if window > 0,
 * j > pos[i] - window (a sliding window of `window` positions, the query's own included). A
 * query with pos[i] < 0 sees nothing and gives zeros (padding rows). Positions index k and v
 * directly, so k and v are typically a whole KV cache (vki_set_rows results, F16, F32 or
 * Q8_0) of which only the first max(pos) + 1 rows are filled: the kernel reads only kv positions up to
 * the largest pos of its workgroup's rows (plus one), and from the smallest pos - window + 1
 * with a window, so a cache costs what is filled and seen, not its capacity. pos comes from an
 * input uploaded before each run, so one recorded plan serves every step. */
vki_tensor vki_attention_pos(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor pos,
                             float scale, uint32_t window);

/* Like vki_attention_pos over a cache that holds several sequences one after another, seq_len
 * positions each (sequence s's position p at kv position s * seq_len + p): pos[i] is query i's
 * kv position, and it sees only its own sequence's positions, j >= pos[i] - pos[i] % seq_len
 * (seq_len 0: one sequence, as vki_attention_pos). A workgroup then holds one query's heads, so
 * each query reads only its sequence, and its result does not depend on the other queries.
 * Both builders also take pos I32 [n_q, 2]: pos[i, 0] then bounds what query i sees (j <=
 * pos[i, 0], its sequence, padding when < 0) and the window counts back from pos[i, 1] (j >
 * pos[i, 1] - window), so that the rows of a bidirectional span (an image) see up to its last
 * position, each through its own window. */
vki_tensor vki_attention_seq(vki_graph *g, vki_tensor q, vki_tensor k, vki_tensor v, vki_tensor pos,
                             float scale, uint32_t window, uint32_t seq_len);

/* Rows of `table` [K, V] (any dtype, contiguous rows) picked by ids I32 [N] -> F32 [K, N]. An
 * id outside [0, V) gives a row of zeros. */
vki_tensor vki_get_rows(vki_graph *g, vki_tensor table, vki_tensor ids);

/* Writes row n of src [K, N] (F32/F16, any strides) into row idx[n] of dst [K, R] (F32/F16;
 * rows contiguous; typically a weight the caller bound, e.g. a KV cache), converting the dtype
 * (narrowing rounds to nearest; a Q8_0 dst, K % 32 == 0 at even byte offsets, is quantised
 * block by block as GGUF does), for every n with 0 <= idx[n] < R; other ids are skipped
 * (padding rows pass -1). idx is I32 [N] (may be strided); valid ids should be distinct (of
 * duplicates one row wins, which one is unspecified). Returns dst after the write: a tensor of
 * dst's shape and strides aliasing dst's storage, with no storage of its own; ops that read it
 * (or views and reshapes of it) run after the write. The write happens on every run, even if
 * nothing reads the result, and persists in dst's storage across runs (a weight's range stays
 * bound). Read the result, not dst, to be sure of seeing the write: an op reading dst itself
 * sees it only if it comes after set_rows in build order. vki_output accepts the result when
 * it covers all of dst's storage (dst is not a strided or offset view); downloading it reads
 * that storage at the end of the run. */
vki_tensor vki_set_rows(vki_graph *g, vki_tensor dst, vki_tensor src, vki_tensor idx);

/* a and b equal except along `dim` (0..3, may be past their ndim), same dtype (F32/F16/BF16),
 * either may be a strided view. */
vki_tensor vki_concat(vki_graph *g, vki_tensor a, vki_tensor b, uint32_t dim);

/* x [W, H, Cin, N] (NCHW), w [kw, kh, Cin, Cout] with kw = kh in {1, 3}, b [Cout] (may be {0}),
 * stride 1 or 2, symmetric zero padding. x and w F32 or F16 (views allowed), b F32. Result F32
 * [W', H', Cout, N] with W' = (W + 2 pad - kw) / stride + 1, likewise H'. */
vki_tensor vki_conv2d(vki_graph *g, vki_tensor x, vki_tensor w, vki_tensor b, uint32_t stride,
                      uint32_t pad);

/* Zeros added on each side of the image by vki_conv2d_padded (each below 65536). */
typedef struct vki_conv2d_pad {
    uint32_t left, right, top, bottom;
} vki_conv2d_pad;

/* vki_conv2d with a pad per side: W' = (W + left + right - kw) / stride + 1, H' likewise with
 * top and bottom. The VAE encoder's downsampling pads only the right and bottom by one. */
vki_tensor vki_conv2d_padded(vki_graph *g, vki_tensor x, vki_tensor w, vki_tensor b, uint32_t stride,
                             vki_conv2d_pad pad);

/* x [W, H, C, N] -> [2W, 2H, C, N], nearest neighbour. F32/F16/BF16, x may be a strided view. */
vki_tensor vki_upsample2x(vki_graph *g, vki_tensor x);

/* Parametric ReLU: x where x >= 0, else x * slope, with slope an F32 tensor broadcast over x
 * (dims 1 or equal to x's; per-channel slopes of x [W, H, C, N] are [1, 1, C]). x F32 or F16,
 * may be a strided view; the result is contiguous in x's dtype. vki_leaky_relu is the same with
 * one scalar slope (finite). */
vki_tensor vki_prelu(vki_graph *g, vki_tensor x, vki_tensor slope);
vki_tensor vki_leaky_relu(vki_graph *g, vki_tensor x, float slope);

/* timesteps F32 [N] (may be strided) -> F32 [dim, N]: with half = dim / 2 and
 * f_i = exp(-ln(max_period) * i / half), y[i, n] = cos(t_n f_i), y[half + i, n] = sin(t_n f_i)
 * for i < half, and y[dim - 1, n] = 0 when dim is odd. This is the latent-diffusion / ggml
 * convention (diffusers: flip_sin_to_cos=True, downscale_freq_shift=0), used by the SD UNets. */
vki_tensor vki_timestep_embedding(vki_graph *g, vki_tensor timesteps, uint32_t dim,
                                  float max_period);

/* Index of the largest element of each row (dim 0) -> I32 [1, ne1, ne2, ne3]. x F32/F16, may be
 * strided, rows of any length. Ties give the smallest index; NaN counts as -inf. */
vki_tensor vki_argmax(vki_graph *g, vki_tensor x);
/* vki_argmax, but -1 for a row whose largest element is not finite: +inf, or nothing above
 * -inf (every element -inf or NaN). A greedy sampler on the device leaves those rows to the
 * host, whose rules for them differ (models/llm.c). */
vki_tensor vki_argmax_finite(vki_graph *g, vki_tensor x);

/* ---- Mixture of experts (graph/ops/moe.c, graph/ops/matmul_id.c) ---------------------------- */

/* Indices of the k largest elements of each row (dim 0) of x (F32/F16 [E, ne1, ne2, ne3], may be
 * strided; 1 <= k <= E <= 4096) -> I32 [k, ne1, ne2, ne3], largest first. Ties give the smaller
 * index first; NaN counts as -inf. A router's expert choice: top_k(logits) = top_k(softmax). */
vki_tensor vki_top_k(vki_graph *g, vki_tensor x, uint32_t k);

/* Routing weights of the chosen experts: x F32 [E, N] (a router's logits), ids I32 [k, N]
 * (vki_top_k's) -> F32 [k, N] with w[j, n] = softmax(x[:, n])[ids[j, n]], then divided by
 * sum_j w[j, n] when `normalize` (which equals a softmax over the chosen logits: Mixtral,
 * Qwen3-MoE, Granite-MoE; OLMoE and Qwen2-MoE do not normalise). An id outside [0, E) weighs 0
 * (a token whose every id is outside gets zeros, normalised or not). x and ids may be views. */
vki_tensor vki_moe_weights(vki_graph *g, vki_tensor x, vki_tensor ids, bool normalize);

/* The experts' outputs combined: y F32 [M, k, N] (vki_matmul_id's), w F32 [k, N] ->
 * F32 [M, N] with out[:, n] = sum_j w[j, n] y[:, j, n], summed in order j = 0, 1, ... (either
 * may be a view). */
vki_tensor vki_moe_combine(vki_graph *g, vki_tensor y, vki_tensor w);

/* Product with per-token experts (llama.cpp's mul_mat_id): w [K, M, E] in any dtype (stacked
 * experts, quantized stays quantized), x F32 or F16 [K, J or 1, N] (J = k slots per token; one
 * column shared by every slot when 1), ids I32 [k, N] contiguous -> F32 [M, k, N] with
 * y[:, j, n] = w[:, :, ids[j, n]] x[:, j or 0, n]. Decoding (small N) reads only the chosen
 * experts' weights; a batch groups its rows by expert so that each expert is read once. An id
 * outside [0, E) gives a zero column (kernels never read outside w). */
vki_tensor vki_matmul_id(vki_graph *g, vki_tensor w, vki_tensor x, vki_tensor ids);

/* ---- Compile ----------------------------------------------------------------------------------- */

/* Threads: a plan does not change after vki_graph_compile and refers to no graph or device:
 * its getters may be called from any number of threads at once, and executors on different
 * devices may be created from it concurrently (vki_exec_create then follows its device's rule). */
typedef struct vki_plan vki_plan;

typedef struct vki_compile_desc {
    bool full_barriers;  // debug: a barrier before every dispatch, hazards or not
    bool no_fusion;      // keep every node a dispatch of its own
    bool no_inplace;     // never reuse an input's storage for an elementwise result
} vki_compile_desc;

/* Fuses, removes nodes no output depends on, plans the activation arena and barriers, and picks
 * a kernel per node for `profile` (which may be narrowed). Pure CPU: no device needed. On failure
 * the message is vki_graph_error(g). `desc` may be NULL. */
vki_status vki_graph_compile(vki_graph *g, const vki_profile *profile, const vki_compile_desc *desc,
                             vki_plan **out_plan);
void vki_plan_destroy(vki_plan *plan);

typedef struct vki_plan_stats {
    uint64_t activation_bytes; // peak of the activation arena, known before anything runs
    uint64_t naive_bytes;      // what one buffer per intermediate would take
    uint32_t dispatches;
    uint32_t barriers;
    uint32_t fused;            // nodes folded into another node's dispatch
    uint32_t dead;             // nodes removed because no output needs them
    uint32_t fp16_dispatches;  // dispatches that round f32 operands to fp16 (cooperative-matrix
                               // matmul): held to VKI_CASE_FP16_TOLERANCE by the conformance tests
    uint32_t int8_dispatches;  // dispatches that round f32 operands to int8 with a scale per 32
                               // (integer-dot mat-vec): held to VKI_CASE_INT8_TOLERANCE
    uint32_t windowed;         // nodes with a tensor past the device's binding range, computed
    uint32_t windows;          // as this many slices in all, each slice's bindings within range
} vki_plan_stats;

void vki_plan_stats_get(const vki_plan *plan, vki_plan_stats *out_stats);

typedef struct vki_plan_step {
    const char *kernel;     // variant name; borrowed from the plan
    const char *node;       // name of the node (or "op#id")
    bool barrier_before;
} vki_plan_step;

uint32_t vki_plan_step_count(const vki_plan *plan);
bool vki_plan_step_get(const vki_plan *plan, uint32_t index, vki_plan_step *out_step);

/* Offset of an intermediate in the activation arena; UINT64_MAX for inputs, weights, outputs,
 * views, set_rows results (their destination's storage: ask for that) and nodes that were
 * fused or removed. */
uint64_t vki_plan_offset(const vki_plan *plan, vki_tensor t);

/* ---- Execute ----------------------------------------------------------------------------------- */

/* Threads: as its device (vkinfer_runtime.h): the device and everything created on it, this
 * executor included, are used from one thread at a time. */
typedef struct vki_exec vki_exec;

typedef struct vki_exec_desc {
    bool timestamps;   // time every dispatch (vki_exec_timings)
} vki_exec_desc;

/* Creates the kernels and the activation arena, and storage for inputs and outputs. Weights
 * must be bound before the first run. */
vki_status vki_exec_create(vki_device *device, const vki_plan *plan, const vki_exec_desc *desc,
                           vki_exec **out_exec);
void vki_exec_destroy(vki_exec *exec);

/* Binds a weight (or an input or output, replacing the executor's own storage) to a caller
 * range of at least the tensor's bytes, aligned to the device's storage alignment. Kernels may
 * read up to 16 bytes past the tensor's end (whole words of f16 or block data), within the
 * range's buffer: arena ranges always have that room (vki_range_capacity). */
vki_status vki_exec_bind(vki_exec *exec, vki_tensor t, vki_range range);

/* Host data into an input (or any bound tensor), and results out of an output. */
vki_status vki_exec_upload(vki_exec *exec, vki_tensor t, const void *data, uint64_t bytes);
vki_status vki_exec_download(vki_exec *exec, vki_tensor t, void *data, uint64_t bytes);

/* Records the plan on the first call (and after a bind), then submits and waits. */
vki_status vki_exec_run(vki_exec *exec);

/* Gives the executor's device memory back (the activation arena and its own input and output
 * storage, whose contents are lost; ranges the caller bound stay bound) and keeps its kernels,
 * so that another program can use that memory: an image pipeline's U-Net before the VAE runs.
 * The next upload or run takes the memory again; a download before that run fails. Call it with
 * no run in flight (vki_exec_run waits for its own). */
void vki_exec_release(vki_exec *exec);

/* Per-dispatch microseconds of the last run, in step order (desc.timestamps). */
vki_status vki_exec_timings(vki_exec *exec, double *out_us, uint32_t capacity, uint32_t *out_count);

/* ---- CPU reference (tests and benchmarks) -------------------------------------------------------- */

/* Evaluates the graph on the CPU in plain C. `data[i]` holds the bytes of tensor id i for every
 * input and weight (NULL elsewhere); results are written to `out[i]` for every output id (caller
 * buffers of the output's contiguous bytes). Arrays are indexed by tensor id, length
 * `count` >= the graph's node count + 1. */
vki_status vki_reference_eval(vki_graph *g, const void *const *data, void *const *out,
                              uint32_t count);

uint32_t vki_graph_node_count(const vki_graph *g);

#ifdef __cplusplus
}
#endif

#endif
