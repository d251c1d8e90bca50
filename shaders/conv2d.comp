#version 450
#extension GL_GOOGLE_include_directive : require
// 2-D convolution as an implicit GEMM: out[co, p] = sum_k w[co, k] xcol[k, p] (+ b[co]) with
// M = Cout, N = the output pixels of all images (p = (n, oy, ox)) and K = Cin kh kw in w's order
// (ci, ky, kx). xcol is never stored: its elements are gathered from x, zero outside the image.
// Workgroup (x, y) computes the TILE_M x TILE_N tile at channel y TILE_M and pixel x TILE_N; an
// invocation accumulates REG_M x REG_N of it in fp32 registers, its rows and columns strided by
// the invocation grid so that neighbouring invocations take neighbouring pixels.
// SHARED=1 stages TILE_K-deep slices of w and xcol in shared memory between two barriers, the
// next slice's loads in flight in registers while the current one is multiplied; SHARED=0
// (devices where barriers are slow: lavapipe) reads both straight from the buffers.
#include "vki_abi.h"

layout(local_size_x = 256, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "words.glsl"

#if defined(TEXEL) && TEXEL
// x and w as uniform texel buffers of R32_UINT: lavapipe turns a texel fetch into one gather
// where a storage-buffer load is a loop over the SIMD lanes (see matmul_common.glsl).
layout(set = 0, binding = VKI_CONV_BINDING_X) uniform usamplerBuffer x_texels;
layout(set = 0, binding = VKI_CONV_BINDING_W) uniform usamplerBuffer w_texels;
#define X_WORD(i) texelFetch(x_texels, int(i)).x
#define W_WORD(i) texelFetch(w_texels, int(i)).x
#else
layout(std430, set = 0, binding = VKI_CONV_BINDING_X) readonly buffer X { uint x_words[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_W) readonly buffer W { uint w_words[]; };
#define X_WORD(i) x_words[i]
#define W_WORD(i) w_words[i]
#endif
layout(std430, set = 0, binding = VKI_CONV_BINDING_B) readonly buffer B { float bias[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_OUT) writeonly buffer O { float o[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_R) readonly buffer R { float res[]; };
VKI_PUSH_BLOCK(VKI_PC_CONV2D)

layout(constant_id = VKI_CONV_SPEC_KSIZE) const uint KSIZE = 3;
layout(constant_id = VKI_CONV_SPEC_TILE_M) const uint TILE_M = 64;
layout(constant_id = VKI_CONV_SPEC_TILE_N) const uint TILE_N = 64;
layout(constant_id = VKI_CONV_SPEC_TILE_K) const uint TILE_K = 16;
#if defined(REGS)
// A register tile fixed at compile time: loops over it unroll in glslang, so the accumulators
// are registers even where the driver would not unroll loops bounded by specialization
// constants (lavapipe then keeps acc[] in memory: 0.4-0.6 GFLOP/s instead of tens).
const uint REG_M = REGS;
const uint REG_N = REGS;
#else
layout(constant_id = VKI_CONV_SPEC_REG_M) const uint REG_M = 4;
layout(constant_id = VKI_CONV_SPEC_REG_N) const uint REG_N = 4;
#endif
const uint TX = TILE_N / REG_N; // invocation grid: TX along pixels, TILE_M / REG_M along channels
const uint TY = TILE_M / REG_M;
const uint KK = KSIZE * KSIZE;

float load_w(uint co, uint ci, uint ky, uint kx)
{
    uint e = pc.w_off + kx * pc.w_nb0 + ky * pc.w_nb1 + ci * pc.w_nb2 + co * pc.w_nb3;
    bool f16 = (pc.flags & VKI_CONV_W_F16) != 0;
    return VKI_WORD_VALUE(W_WORD(VKI_WORD_INDEX(e, f16)), e, f16);
}

// Where output pixel p reads: its image's x offset and the input row and column of tap (0, 0).
// A pixel past the end gets a row no tap can reach, so that it reads zeros (and never `base`).
void pixel_origin(uint p, out uint base, out int iy0, out int ix0)
{
    uint per = pc.ow * pc.oh, img = p / per, r = p % per;
    base = pc.x_off + img * pc.x_nb3;
    iy0 = p < pc.pixels ? int((r / pc.ow) * pc.stride) - int(pc.pad_y) : -0x10000;
    ix0 = int((r % pc.ow) * pc.stride) - int(pc.pad_x);
}

// x at (ix, iy, ci) of the image at `base`; 0 outside the image or when !live. Branch-free (see
// words.glsl): a read that does not count goes to x's first element and is dropped.
float load_x(uint base, int iy, int ix, uint ci, bool live)
{
    bool inside = live && iy >= 0 && ix >= 0 && iy < int(pc.h) && ix < int(pc.w);
    int up = (pc.flags & VKI_CONV_UP2) != 0 ? 1 : 0; // fused upsample: pixel (ix, iy) is x's (ix/2, iy/2)
    uint e = inside ? base + uint(ix >> up) * pc.x_nb0 + uint(iy >> up) * pc.x_nb1 + ci * pc.x_nb2 : pc.x_off;
    bool f16 = (pc.flags & VKI_CONV_X_F16) != 0;
    float v = VKI_WORD_VALUE(X_WORD(VKI_WORD_INDEX(e, f16)), e, f16);
    return inside ? v : 0.0;
}

#if SHARED
const uint WG = gl_WorkGroupSize.x;
const uint NA = (TILE_M * TILE_K + WG - 1) / WG; // slice elements each invocation loads
const uint NB = (TILE_K * TILE_N + WG - 1) / WG;
shared float sa[TILE_K * (TILE_M + 1)]; // w slice [k][m], rows padded: the k-major stores do not collide
shared float sb[TILE_K * TILE_N];       // xcol slice [k][n]
float ar[NA], br[NB];                   // the next slice in flight: element e = t + i WG

// Starts the loads of the slice at reduction index k0 (zeros outside the problem).
void fetch(uint k0, uint m0, uint p0)
{
    uint t = gl_LocalInvocationID.x, k_total = pc.cin * KK;
    for (uint i = 0; i < NA; i++) { // branch-free like load_x: a dead slot reads w's first element
        uint e = t + i * WG, kk = k0 + e % TILE_K, co = m0 + e / TILE_K;
        bool live = e < TILE_M * TILE_K && co < pc.cout && kk < k_total;
        uint r = live ? kk % KK : 0u;
        float v = load_w(live ? co : 0u, live ? kk / KK : 0u, r / KSIZE, r % KSIZE);
        ar[i] = live ? v : 0.0;
    }
    for (uint i = 0; i < NB; i++) {
        uint e = t + i * WG, kk = k0 + e / TILE_N, r = kk % KK, base;
        int iy0, ix0;
        pixel_origin(p0 + e % TILE_N, base, iy0, ix0);
        bool live = e < TILE_K * TILE_N && kk < k_total;
        br[i] = load_x(base, iy0 + int(r / KSIZE), ix0 + int(r % KSIZE), kk / KK, live);
    }
}

void stage()
{
    uint t = gl_LocalInvocationID.x;
    for (uint i = 0; i < NA; i++) {
        uint e = t + i * WG;
        if (e < TILE_M * TILE_K) sa[(e % TILE_K) * (TILE_M + 1) + e / TILE_K] = ar[i];
    }
    for (uint i = 0; i < NB; i++) {
        uint e = t + i * WG;
        if (e < TILE_K * TILE_N) sb[e] = br[i];
    }
}
#endif

void main()
{
    uint t = gl_LocalInvocationID.x, tx = t % TX, ty = t / TX;
    uint p0 = gl_WorkGroupID.x * TILE_N, m0 = gl_WorkGroupID.y * TILE_M, k_total = pc.cin * KK;
    float acc[REG_M * REG_N];
    for (uint i = 0; i < REG_M * REG_N; i++) acc[i] = 0.0;
#if SHARED
    fetch(0, m0, p0);
    for (uint k0 = 0; k0 < k_total; k0 += TILE_K) {
        stage();
        barrier();
        if (k0 + TILE_K < k_total) fetch(k0 + TILE_K, m0, p0);
        for (uint kl = 0; kl < TILE_K; kl++) {
            float a[REG_M], b[REG_N];
            for (uint i = 0; i < REG_M; i++) a[i] = sa[kl * (TILE_M + 1) + ty + i * TY];
            for (uint j = 0; j < REG_N; j++) b[j] = sb[kl * TILE_N + tx + j * TX];
            for (uint i = 0; i < REG_M; i++)
                for (uint j = 0; j < REG_N; j++) acc[i * REG_N + j] += a[i] * b[j];
        }
        barrier(); // the slice is consumed before the next one overwrites it
    }
#else
    uint base[REG_N];
    int iy0[REG_N], ix0[REG_N];
    for (uint j = 0; j < REG_N; j++) pixel_origin(p0 + tx + j * TX, base[j], iy0[j], ix0[j]);
    for (uint ci = 0; ci < pc.cin; ci++)
        for (uint ky = 0; ky < KSIZE; ky++)
            for (uint kx = 0; kx < KSIZE; kx++) {
                float a[REG_M], b[REG_N];
                for (uint i = 0; i < REG_M; i++) {
                    uint co = m0 + ty + i * TY;
                    float v = load_w(min(co, pc.cout - 1), ci, ky, kx);
                    a[i] = co < pc.cout ? v : 0.0;
                }
                for (uint j = 0; j < REG_N; j++)
                    b[j] = load_x(base[j], iy0[j] + int(ky), ix0[j] + int(kx), ci, true);
                for (uint i = 0; i < REG_M; i++)
                    for (uint j = 0; j < REG_N; j++) acc[i * REG_N + j] += a[i] * b[j];
            }
#endif
    uint per = pc.ow * pc.oh;
    for (uint i = 0; i < REG_M; i++) {
        uint co = m0 + ty + i * TY;
        if (co >= pc.cout) break;
        float add = (pc.flags & VKI_CONV_HAS_BIAS) != 0 ? bias[pc.b_off + co] : 0.0;
        for (uint j = 0; j < REG_N; j++) {
            uint p = p0 + tx + j * TX;
            if (p >= pc.pixels) break;
            uint img = p / per, q = p % per;
            float r = (pc.flags & VKI_CONV_RESIDUAL) != 0
                          ? res[pc.r_off + (q % pc.ow) * pc.r_nb0 + (q / pc.ow) * pc.r_nb1 + co * pc.r_nb2 + img * pc.r_nb3]
                          : 0.0;
            o[pc.d_off + (img * pc.cout + co) * per + q] = acc[i * REG_N + j] + add + r;
        }
    }
}
