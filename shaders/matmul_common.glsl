// What matvec.comp, matmul_shared.comp and matmul_reg.comp share: bindings, push constants,
// loading x (f32 or f16), the chunk-by-chunk accumulation, the batch of a workgroup and the
// epilogue (bias, then activation). The kernel includes vki_abi.h and declares its local size
// before this file.
#ifndef VKI_MATMUL_COMMON_GLSL
#define VKI_MATMUL_COMMON_GLSL

layout(constant_id = VKI_SPEC_MM_X_F16) const bool X_F16 = false;
layout(constant_id = VKI_SPEC_MM_ROWS) const uint ROWS = 4; // outputs per thread: rows
layout(constant_id = VKI_SPEC_MM_COLS) const uint COLS = 1; // and columns

// TEXEL=1: w and x are uniform texel buffers of R32_UINT, read with texelFetch. lavapipe
// compiles a storage-buffer load whose address differs between lanes into a loop over the lanes;
// a texel fetch into a gather (an f16 mat-vec of 49152 x 576 measured 9.8 ms against 177 ms).
// WIDE=1: w and x are storage texel buffers of R32G32B32A32_UINT (16-byte texels), read with
// imageLoad: lavapipe compiles one into 8 vector loads and a transpose. Single words come out of
// a texel by a lane-dependent component index: the wide paths of quant.glsl (WQ_FETCH) and
// 16-byte x loads avoid them where it counts.
#if defined(WIDE) && WIDE
layout(binding = VKI_MM_BINDING_W, rgba32ui) uniform readonly restrict uimageBuffer w_wide;
layout(binding = VKI_MM_BINDING_X, rgba32ui) uniform readonly restrict uimageBuffer x_wide;
#define W_TEXEL16(i) imageLoad(w_wide, int(i))
#define W_TEXEL_LAST uint(imageSize(w_wide) - 1)
#define W_WORD(i) W_TEXEL16((i) >> 2)[(i) & 3u]
#define X_VEC(i) imageLoad(x_wide, int(i))
#define x_word(i) X_VEC((i) >> 2)[(i) & 3u]
#elif defined(TEXEL) && TEXEL
layout(binding = VKI_MM_BINDING_W) uniform usamplerBuffer w_texels;
layout(binding = VKI_MM_BINDING_X) uniform usamplerBuffer x_texels;
#define W_WORD(i) texelFetch(w_texels, int(i)).x
#define x_word(i) texelFetch(x_texels, int(i)).x
#define X_VEC(i) uvec4(x_word(4u * (i)), x_word(4u * (i) + 1u), x_word(4u * (i) + 2u), x_word(4u * (i) + 3u))
#else
layout(std430, binding = VKI_MM_BINDING_W) readonly restrict buffer W { uint w_words[]; };
layout(std430, binding = VKI_MM_BINDING_X) readonly restrict buffer X { uvec4 x_vec[]; };
#define W_WORD(i) w_words[i]
#define X_VEC(i) x_vec[i]
#define x_word(i) x_vec[(i) >> 2][(i) & 3u]
#endif
layout(std430, binding = VKI_MM_BINDING_BIAS) readonly restrict buffer Bias { float bias[]; };
#if defined(IDS) && IDS && defined(WIDE) && WIDE
// matvec_wide's folded combine (abi_moe.h) adds each slot to the sum it stored for the last.
layout(std430, binding = VKI_MM_BINDING_Y) restrict buffer Y { float y[]; };
#else
layout(std430, binding = VKI_MM_BINDING_Y) writeonly restrict buffer Y { float y[]; };
#endif
layout(std430, binding = VKI_MM_BINDING_RES) readonly restrict buffer Res { float res[]; };
#if defined(IDS) && IDS
// matmul_id (abi_moe.h): each batch's weight matrix is the expert its id names.
#if defined(WIDE) && WIDE
layout(std430, binding = VKI_MM_BINDING_IDS_WIDE) readonly restrict buffer Ids { int ids[]; };
#else
layout(std430, binding = VKI_MM_BINDING_IDS) readonly restrict buffer Ids { int ids[]; };
#endif
VKI_PUSH_BLOCK(VKI_PC_MATMUL_ID)
// The batch's id is outside [0, e_total): its outputs are zeros (store_y).
bool id_zero = false;
#else
VKI_PUSH_BLOCK(VKI_PC_MATMUL)
#endif

#include "activation.glsl"
#include "quant.glsl"

// x is read 16 bytes at a time where its rows allow (X_ALIGNED); else word by word, each word
// out of a 16-byte load (a view at an odd offset: rare, and correct rather than fast).
const bool X_ALIGNED = (ALIGN & VKI_MM_ALIGN_X) != 0u;

// x elements e..e+3 (e % 4 == 0; f32, or f16 at any element offset).
vec4 x_quad(uint e)
{
    if (X_F16) {
        if (X_ALIGNED) {
            uvec4 w = X_VEC(e >> 3);
            uvec2 h = (e & 4u) != 0u ? w.zw : w.xy;
            return vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
        }
        uint r[WQ_FETCH_MAX];
        fetch_words(x_word, 2u * e, 2u, 8u, false, r);
        return vec4(unpackHalf2x16(r[0]), unpackHalf2x16(r[1]));
    }
    if (X_ALIGNED) return uintBitsToFloat(X_VEC(e >> 2));
    return uintBitsToFloat(uvec4(x_word(e), x_word(e + 1u), x_word(e + 2u), x_word(e + 3u)));
}

// The x elements of chunk ch (quant.glsl) of the x row starting at element `col`.
void x_chunk(uint col, uint ch, out float v[WQ_CHUNK])
{
    for (uint run = 0u; run < WQ_RUNS; run++) {
        uint e = col + WQ_RUN(ch, run), o = run * WQ_RUN_LENGTH;
        if (X_ALIGNED) { // runs start at multiples of 8 elements
            for (uint q = 0u; q < WQ_RUN_LENGTH / (X_F16 ? 8u : 4u); q++) {
                uvec4 w = X_VEC((e >> (X_F16 ? 3u : 2u)) + q);
                for (uint j = 0u; j < 4u; j++) {
                    if (X_F16) {
                        vec2 h = unpackHalf2x16(w[j]);
                        v[o + 8u * q + 2u * j] = h.x;
                        v[o + 8u * q + 2u * j + 1u] = h.y;
                    } else {
                        v[o + 4u * q + j] = uintBitsToFloat(w[j]);
                    }
                }
            }
        } else if (X_F16) {
            uint r[WQ_FETCH_MAX];
            fetch_words(x_word, 2u * e, WQ_RUN_LENGTH / 2u, 2u * WQ_RUN_LENGTH, false, r);
            for (uint j = 0u; j < WQ_RUN_LENGTH / 2u; j++) {
                vec2 h = unpackHalf2x16(r[j]);
                v[o + 2u * j] = h.x;
                v[o + 2u * j + 1u] = h.y;
            }
        } else {
            for (uint i = 0u; i < WQ_RUN_LENGTH; i++) v[o + i] = uintBitsToFloat(x_word(e + i));
        }
    }
}

float x_elem(uint e)
{
    if (X_F16) return unpackHalf2x16(x_word(e >> 1) >> ((e & 1u) << 4)).x;
    return uintBitsToFloat(x_word(e));
}

// v . x over a chunk, in four fma partial sums (a CPU device runs one serial chain of adds at
// its add latency).
float dot_chunk(float v[WQ_CHUNK], float x[WQ_CHUNK])
{
    vec4 s = vec4(0.0);
    for (uint i = 0u; i < WQ_CHUNK; i += 4u)
        s = fma(vec4(v[i], v[i + 1u], v[i + 2u], v[i + 3u]), vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), s);
    return (s.x + s.y) + (s.z + s.w);
}

// acc[r * COLS + c] += chunk ch of weight row wrow(r) . the same elements of x column xcol[c].
// The x chunks are loaded once for all ROWS rows and each weight chunk decoded once for all
// COLS columns: per weight element 1 / ROWS of an x load, per x element 1 / COLS of a decode.
// wrow(r) is a macro giving the start of row r (no array: ROWS may be large, and a
// dynamically indexed array costs more than the arithmetic). A macro: arrays sized by
// specialisation constants cannot be function parameters.
#define ACCUMULATE_CHUNK(ch, wrow, xcol, acc)                                                   \
    {                                                                                           \
        float ac_x[COLS][WQ_CHUNK];                                                             \
        for (uint ac_c = 0u; ac_c < COLS; ac_c++) x_chunk(xcol[ac_c], (ch), ac_x[ac_c]);          \
        for (uint ac_r = 0u; ac_r < ROWS; ac_r++) {                                             \
            float ac_w[WQ_CHUNK];                                                               \
            w_chunk(wrow(ac_r), (ch), ac_w);                                                    \
            for (uint ac_c = 0u; ac_c < COLS; ac_c++)                                           \
                acc[ac_r * COLS + ac_c] += dot_chunk(ac_w, ac_x[ac_c]);                         \
        }                                                                                       \
    }

// The same for element k alone: the tail of float rows of K % WQ_CHUNK != 0.
#define ACCUMULATE_ELEMENT(k, wrow, xcol, acc)                                                  \
    for (uint ae_r = 0u; ae_r < ROWS; ae_r++)                                                   \
        for (uint ae_c = 0u; ae_c < COLS; ae_c++)                                               \
            acc[ae_r * COLS + ae_c] += w_elem(wrow(ae_r), (k)) * x_elem(xcol[ae_c] + (k));

#if defined(INT_DOT) && INT_DOT
#include "int_dot.glsl"
#if !WQ_INT8
#error "matmul_common.glsl: INT_DOT=1 needs a weight type of scaled bytes (quant.glsl's WQ_INT8)"
#endif

// Chunk ch of the x row at element `col` rounded to int8 with one scale, the block's max |x| over
// 127: q_i = round(x_i / d), |x_i - d q_i| <= d / 2. packSnorm4x8 computes round(clamp(x_i /
// max, -1, 1) * 127) and packs element 4j + t at bits 8t of word j, as w_int8 does. Returns d;
// xsum is sum(q_i), for WQ_INT8_OFFSET. A chunk of zeros has d = 0 and q = 0.
float x_chunk_int8(uint col, uint ch, out uint q[8], out int xsum)
{
    float v[WQ_CHUNK];
    x_chunk(col, ch, v);
    float amax = 0.0;
    for (uint i = 0u; i < WQ_CHUNK; i++) amax = max(amax, abs(v[i]));
    float inv = amax > 0.0 ? 1.0 / amax : 0.0;
    xsum = 0;
    for (uint j = 0u; j < 8u; j++) {
        q[j] = packSnorm4x8(inv * vec4(v[4u * j], v[4u * j + 1u], v[4u * j + 2u], v[4u * j + 3u]));
        xsum += idot4x8(q[j], 0x01010101u);
    }
    return amax * (1.0 / 127.0);
}

// ACCUMULATE_CHUNK on integer dot products (INT_DOT=1): each x chunk is rounded to int8 once
// for all ROWS rows and each weight block unpacked once for all COLS columns; a row's block with
// a column is then 8 dot products of packed bytes, exact in int32 (|sum| <= 32 * 127 * 127),
// and one float multiply by both scales.
#define ACCUMULATE_CHUNK_INT8(ch, wrow, xcol, acc)                                              \
    {                                                                                           \
        uint ai_x[COLS][8];                                                                     \
        int ai_off[COLS];                                                                       \
        float ai_d[COLS];                                                                       \
        for (uint ai_c = 0u; ai_c < COLS; ai_c++) {                                             \
            int ai_sum;                                                                         \
            ai_d[ai_c] = x_chunk_int8(xcol[ai_c], (ch), ai_x[ai_c], ai_sum);                   \
            ai_off[ai_c] = WQ_INT8_OFFSET * ai_sum;                                             \
        }                                                                                       \
        for (uint ai_r = 0u; ai_r < ROWS; ai_r++) {                                             \
            uint ai_w[8];                                                                       \
            float ai_dw = w_int8(wrow(ai_r), (ch), ai_w);                                       \
            for (uint ai_c = 0u; ai_c < COLS; ai_c++) {                                         \
                int ai_s = -ai_off[ai_c];                                                       \
                for (uint ai_j = 0u; ai_j < 8u; ai_j++)                                         \
                    ai_s += idot4x8(ai_w[ai_j], ai_x[ai_c][ai_j]);                              \
                acc[ai_r * COLS + ai_c] += (ai_dw * ai_d[ai_c]) * float(ai_s);                  \
            }                                                                                   \
        }                                                                                       \
    }
#endif

// Quads that may run past K (tile loads): zeros there.
vec4 w_quad_guarded(uint row, uint k)
{
#if WQ_QUANT
    return k < pc.K ? w_quad(row, k) : vec4(0.0); // K is a whole number of blocks
#else
    if (k + 4u <= pc.K) return w_quad(row, k);
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < pc.K) v[i] = w_elem(row, k + i);
    return v;
#endif
}

vec4 x_quad_guarded(uint col, uint k)
{
    if (k + 4u <= pc.K) return x_quad(col + k);
    vec4 v = vec4(0.0);
    for (uint i = 0u; i < 4u; i++)
        if (k + i < pc.K) v[i] = x_elem(col + k + i);
    return v;
}

// Start of the weight matrix and of x for batch b (a flat index over ne2 * ne3). False when
// the batch has nothing to store (matmul_id: its expert is another slice's), which the kernel
// then skips, the whole workgroup at once.
bool batch_bases(uint b, out uint wbase, out uint xbase)
{
    uint i2 = b % pc.ne2, i3 = b / pc.ne2;
    xbase = pc.x_off + i2 * pc.x_nb2 + i3 * pc.x_nb3;
#if defined(IDS) && IDS
    int id = ids[pc.i_off + b];
    bool valid = id >= 0 && uint(id) < pc.e_total;
    bool mine = valid && uint(id) >= pc.e_first && uint(id) - pc.e_first < pc.e_count;
    // A bad id's zeros come from the first slice, which reads its own first expert meanwhile.
    id_zero = !valid;
    wbase = pc.w_off + (mine ? uint(id) - pc.e_first : 0u) * pc.w_nb2;
    return mine || (!valid && pc.e_first == 0u);
#else
    wbase = pc.w_off + (i2 / pc.w_r2) * pc.w_nb2 + (i3 / pc.w_r3) * pc.w_nb3;
    return true;
#endif
}

// Stores output (row, col) of batch b, after bias, activation and residual; the caller checks
// the bounds.
// matvec_wide's fused glu activation (0: none), from the epilogue word.
uint glu_act() { return (pc.epi >> VKI_MM_EPI_GLU_SHIFT) & VKI_MM_EPI_ACT_MASK; }

void store_y(uint row, uint col, uint b, float v)
{
    if ((pc.epi & VKI_MM_EPI_BIAS) != 0u) v += bias[pc.b_off + row];
    uint e = row + pc.y_ld * (col + pc.N * b);
    v = vki_activate(pc.epi & VKI_MM_EPI_ACT_MASK, v);
    if ((pc.epi & VKI_MM_EPI_RES) != 0u) v += res[pc.r_off + e];
#if defined(IDS) && IDS
    if (id_zero) v = 0.0;
#endif
    y[pc.y_off + e] = v;
}

#endif
