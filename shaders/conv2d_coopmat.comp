#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "coopmat.glsl"
// 2-D convolution as an implicit GEMM on cooperative matrices (the U-Net's convolutions on
// matrix cores): out[co, p] = sum_k w[co, k] xcol[k, p] (+ b[co], + r) with M = Cout, N = the
// output pixels of all images and K = Cin kh kw in w's order (ci, ky, kx), as conv2d.comp. The
// tiling is matmul_coopmat.comp's: a workgroup computes a TILE_M x TILE_N tile (channels x
// pixels) stepping through K in TILE_K slabs held in shared memory as fp16, each subgroup a
// (ROWS FRAG_M) x (COLS FRAG_N) block in fp32 accumulator fragments, in passes where the driver
// runs fewer subgroups than the blocks; BUFFERS = 2 double-buffers the slabs. The B slab is
// gathered from the image (im2col on the fly, zeros outside it): no im2col buffer exists.
// Variants: conv2d_cmk (VK_KHR_cooperative_matrix), conv2d_cm (VK_NV_), conv2d_cme (emulated
// fragments, the tests on a device without matrix cores); coopmat.glsl maps the names.
//
// Shared layout: ws[b * TILE_M * LD + r * LD + k] (row-major A fragments), xs[b * TILE_N * LD
// + c * LD + k] (column-major B fragments), LD = TILE_K + 8 halves.
#include "vki_abi.h"

layout(local_size_x = 128, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "words.glsl"

layout(std430, set = 0, binding = VKI_CONV_BINDING_X) readonly buffer X { uint x_words[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_W) readonly buffer W { uint w_words[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_B) readonly buffer B { float bias[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_OUT) writeonly buffer O { float o[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_R) readonly buffer R { float res[]; };
VKI_PUSH_BLOCK(VKI_PC_CONV2D)

// The conv2d ids for the kernel size and tiles; the matmul ids for the fragments and buffers;
// conv2d's register-tile ids carry the fragments per subgroup (rows, columns).
layout(constant_id = VKI_CONV_SPEC_KSIZE) const uint KSIZE = 3;
layout(constant_id = VKI_CONV_SPEC_TILE_M) const uint TILE_M = 64;
layout(constant_id = VKI_CONV_SPEC_TILE_N) const uint TILE_N = 64;
layout(constant_id = VKI_CONV_SPEC_TILE_K) const uint TILE_K = 32;
layout(constant_id = VKI_CONV_SPEC_REG_M) const uint ROWS = 4;
layout(constant_id = VKI_CONV_SPEC_REG_N) const uint COLS = 2;
layout(constant_id = VKI_SPEC_MM_FRAG_M) const uint FRAG_M = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_N) const uint FRAG_N = 16;
layout(constant_id = VKI_SPEC_MM_FRAG_K) const uint FRAG_K = 16;
layout(constant_id = VKI_SPEC_MM_BUFFERS) const uint BUFFERS = 1;
const uint KK = KSIZE * KSIZE;
#define LD (TILE_K + 8u)
#define SUB_M (ROWS * FRAG_M)
#define SUB_N (COLS * FRAG_N)
#define SUBGROUPS_M (TILE_M / SUB_M)
#define SUBGROUPS (SUBGROUPS_M * (TILE_N / SUB_N))
#define FRAG_ELEMS (FRAG_M * FRAG_N)

shared float16_t ws[BUFFERS * TILE_M * LD];
shared float16_t xs[BUFFERS * TILE_N * LD];
shared float stage[SUBGROUPS * FRAG_ELEMS];

float load_w(uint co, uint ci, uint ky, uint kx)
{
    uint e = pc.w_off + kx * pc.w_nb0 + ky * pc.w_nb1 + ci * pc.w_nb2 + co * pc.w_nb3;
    bool f16 = (pc.flags & VKI_CONV_W_F16) != 0;
    return VKI_WORD_VALUE(w_words[VKI_WORD_INDEX(e, f16)], e, f16);
}

// Where output pixel p reads: its image's x offset and the input row and column of tap (0, 0);
// a pixel past the end gets a row no tap reaches (zeros).
void pixel_origin(uint p, out uint base, out int iy0, out int ix0)
{
    uint per = pc.ow * pc.oh, img = p / per, r = p % per;
    base = pc.x_off + img * pc.x_nb3;
    iy0 = p < pc.pixels ? int((r / pc.ow) * pc.stride) - int(pc.pad_y) : -0x10000;
    ix0 = int((r % pc.ow) * pc.stride) - int(pc.pad_x);
}

// x at (ix, iy, ci) of the image at `base`, 0 outside it (a dropped read of x's first element).
float load_x(uint base, int iy, int ix, uint ci)
{
    bool inside = iy >= 0 && ix >= 0 && iy < int(pc.h) && ix < int(pc.w);
    int up = (pc.flags & VKI_CONV_UP2) != 0 ? 1 : 0; // fused upsample: x at half the coordinates
    uint e = inside ? base + uint(ix >> up) * pc.x_nb0 + uint(iy >> up) * pc.x_nb1 + ci * pc.x_nb2 : pc.x_off;
    bool f16 = (pc.flags & VKI_CONV_X_F16) != 0;
    float v = VKI_WORD_VALUE(x_words[VKI_WORD_INDEX(e, f16)], e, f16);
    return inside ? v : 0.0;
}

// The slab at reduction index k0 into buffer `buf`, by all threads, consecutive threads along k
// (a weight row's taps are contiguous). Channels past Cout and k past K are zero.
void load_slab(uint k0, uint buf, uint m0, uint p0)
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x, k_total = pc.cin * KK;
    const uint wb = buf * TILE_M * LD, xb = buf * TILE_N * LD;
    for (uint q = tid; q < TILE_M * TILE_K; q += nt) {
        uint r = q / TILE_K, kl = q % TILE_K, k = k0 + kl, co = m0 + r;
        bool live = co < pc.cout && k < k_total;
        uint t = live ? k % KK : 0u;
        float v = load_w(live ? co : 0u, live ? k / KK : 0u, t / KSIZE, t % KSIZE);
        ws[wb + r * LD + kl] = float16_t(live ? v : 0.0);
    }
    for (uint q = tid; q < TILE_N * TILE_K; q += nt) {
        uint c = q / TILE_K, kl = q % TILE_K, k = k0 + kl, base;
        int iy0, ix0;
        pixel_origin(p0 + c, base, iy0, ix0);
        uint t = k % KK;
        float v = k < k_total ? load_x(base, iy0 + int(t / KSIZE), ix0 + int(t % KSIZE), k / KK) : 0.0;
        xs[xb + c * LD + kl] = float16_t(v);
    }
}

void main()
{
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint p0 = gl_WorkGroupID.x * TILE_N, m0 = gl_WorkGroupID.y * TILE_M;
    const uint k_total = pc.cin * KK, per = pc.ow * pc.oh;
    const uint passes = (SUBGROUPS + gl_NumSubgroups - 1u) / gl_NumSubgroups;
    for (uint pass = 0u; pass < passes; pass++) {
        const uint blk = sg + pass * gl_NumSubgroups;
        const bool working = blk < SUBGROUPS; // uniform in the subgroup, as cm_* need
        const uint sub_m = (blk % SUBGROUPS_M) * SUB_M, sub_n = (blk / SUBGROUPS_M) * SUB_N;
        cm_acc(FRAG_M, FRAG_N) acc[ROWS * COLS];
        [[unroll]] for (uint i = 0u; i < ROWS * COLS; i++)
            acc[i] = cm_acc_zero(FRAG_M, FRAG_N);

        load_slab(0u, 0u, m0, p0);
        barrier();
        uint buf = 0u;
        for (uint k0 = 0u; k0 < k_total; k0 += TILE_K) {
            const bool more = k0 + TILE_K < k_total;
            const uint next = BUFFERS > 1u ? buf ^ 1u : buf;
            if (BUFFERS > 1u && more) load_slab(k0 + TILE_K, next, m0, p0);
            const uint wb = buf * TILE_M * LD, xb = buf * TILE_N * LD;
            if (working) {
                [[unroll]] for (uint k = 0u; k < TILE_K; k += FRAG_K) {
                    cm_a(FRAG_M, FRAG_K) a[ROWS];
                    [[unroll]] for (uint i = 0u; i < ROWS; i++)
                        cm_load(a[i], ws, wb + (sub_m + i * FRAG_M) * LD + k, LD, CM_ROW_MAJOR);
                    [[unroll]] for (uint j = 0u; j < COLS; j++) {
                        cm_b(FRAG_K, FRAG_N) x;
                        cm_load(x, xs, xb + (sub_n + j * FRAG_N) * LD + k, LD, CM_COL_MAJOR);
                        [[unroll]] for (uint i = 0u; i < ROWS; i++)
                            acc[i * COLS + j] = cm_mul_add(a[i], x, acc[i * COLS + j]);
                    }
                }
            }
            barrier();
            if (BUFFERS == 1u && more) {
                load_slab(k0 + TILE_K, next, m0, p0);
                barrier();
            }
            buf = next;
        }

        // Each fragment through the block's staging area (row-major: element (r, c) at
        // r * FRAG_N + c), then out with consecutive lanes on consecutive pixels (contiguous in
        // the output), with the bias and the residual.
        if (working) {
            const uint base = blk * FRAG_ELEMS;
            [[unroll]] for (uint i = 0u; i < ROWS; i++)
                [[unroll]] for (uint j = 0u; j < COLS; j++) {
                    cm_store(acc[i * COLS + j], stage, base, FRAG_N, CM_ROW_MAJOR);
                    subgroupMemoryBarrierShared();
                    subgroupBarrier();
                    for (uint e = lane; e < FRAG_ELEMS; e += gl_SubgroupSize) {
                        uint co = m0 + sub_m + i * FRAG_M + e / FRAG_N;
                        uint p = p0 + sub_n + j * FRAG_N + e % FRAG_N;
                        if (co < pc.cout && p < pc.pixels) {
                            uint img = p / per, q = p % per;
                            float v = stage[base + e];
                            if ((pc.flags & VKI_CONV_HAS_BIAS) != 0) v += bias[pc.b_off + co];
                            if ((pc.flags & VKI_CONV_RESIDUAL) != 0)
                                v += res[pc.r_off + (q % pc.ow) * pc.r_nb0 + (q / pc.ow) * pc.r_nb1 +
                                         co * pc.r_nb2 + img * pc.r_nb3];
                            o[pc.d_off + (img * pc.cout + co) * per + q] = v;
                        }
                    }
                    subgroupBarrier();
                }
        }
    }
}
