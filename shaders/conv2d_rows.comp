#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// 2-D convolution for CPU devices (lavapipe), shaped like matmul_reg.comp: a workgroup of one
// SIMD group computes ROWS output channels, the same ones on every invocation, for
// lanes x COLS output pixels, each invocation its own COLS pixels (p0 + t + j lanes: neighbours
// take neighbouring pixels). conv2d.comp's shape, where invocations differ in channel, loads a
// w and an x value per 4 multiply-adds (SD 3x3 64x64x320: 0.5-0.6 GFLOP/s on lavapipe).
// Here every loop but the one over input channels is unrolled at compile time (KSIZE, ROWS and
// COLS are defines): the ROWS x COLS accumulators are plain variables (kept in registers or
// spilled to the stack, which costs far less than a load from a buffer), each w value read is
// used for COLS pixels and each x value for ROWS channels. Where each tap of each pixel reads
// (or that it reads zero, outside the image) does not depend on the input channel: it is worked
// out once. Tried and not faster: w read 8 words per gather and handed to the lanes by
// subgroupBroadcast (16 x 8 tile: 2.9 against 4.0-4.5 GFLOP/s); for stride 1, a lane's pixels
// a column of rows, so that taps (ky, kx) and (ky + 1, kx) of neighbouring rows share loads
// (32 x 16: 9.3 against 9.3-9.6).
#include "vki_abi.h"

layout(local_size_x = 8, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#include "words.glsl"

// x and w as uniform texel buffers of R32_UINT: lavapipe turns a texel fetch into one gather
// where a storage-buffer load is a loop over the SIMD lanes, even at an address that is the same
// on every lane (measured: w from a storage buffer, 14 s against 5.9 s). A gather is still the
// costly part: W16 (w in f16, its taps and channels contiguous, its rows at even elements)
// reads two weights per word, the pair of consecutive reduction steps k, k + 1 of channel pairs.
layout(set = 0, binding = VKI_CONV_BINDING_X) uniform usamplerBuffer x_texels;
layout(set = 0, binding = VKI_CONV_BINDING_W) uniform usamplerBuffer w_texels;
layout(std430, set = 0, binding = VKI_CONV_BINDING_B) readonly buffer B { float bias[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_OUT) writeonly buffer O { float o[]; };
layout(std430, set = 0, binding = VKI_CONV_BINDING_R) readonly buffer R { float res[]; };
VKI_PUSH_BLOCK(VKI_PC_CONV2D)

const uint KK = KSIZE * KSIZE;

// Tap (ky, kx) of pixel j reads x at xo[j KK + tap] + ci x_nb2, or zero where !xin: then at
// x's first element of the channel (always inside x), and the value is dropped. Channel row i
// of w starts at wrow[i]; rows past the end repeat the last one (their sums are not stored).
uint xo[COLS * KK];
bool xin[COLS * KK];
uint wrow[ROWS];
float acc[ROWS * COLS];

// acc += w x for reduction step (ci, tap), w[i] the weight of row i.
void step(uint ci, uint tap, float w[ROWS])
{
    bool x16 = (pc.flags & VKI_CONV_X_F16) != 0;
    float xv[COLS];
    [[unroll]] for (uint j = 0; j < COLS; j++) {
        uint q = j * KK + tap, e = xo[q] + ci * pc.x_nb2;
        float v = VKI_WORD_VALUE(texelFetch(x_texels, int(VKI_WORD_INDEX(e, x16))).x, e, x16);
        xv[j] = xin[q] ? v : 0.0;
    }
    [[unroll]] for (uint i = 0; i < ROWS; i++)
        [[unroll]] for (uint j = 0; j < COLS; j++) acc[i * COLS + j] += w[i] * xv[j];
}

void main()
{
    const uint lanes = gl_WorkGroupSize.x, t = gl_LocalInvocationID.x;
    const uint per = pc.ow * pc.oh;
    const uint p0 = gl_WorkGroupID.x * lanes * COLS + t, m0 = gl_WorkGroupID.y * ROWS;
    const int up = (pc.flags & VKI_CONV_UP2) != 0 ? 1 : 0; // fused upsample: (ix, iy) is x's (ix/2, iy/2)
    [[unroll]] for (uint j = 0; j < COLS; j++) {
        uint p = p0 + j * lanes, img = p / per, r = p % per;
        uint base = pc.x_off + img * pc.x_nb3;
        int iy0 = int((r / pc.ow) * pc.stride) - int(pc.pad_y);
        int ix0 = int((r % pc.ow) * pc.stride) - int(pc.pad_x);
        [[unroll]] for (uint ky = 0; ky < KSIZE; ky++)
            [[unroll]] for (uint kx = 0; kx < KSIZE; kx++) {
                int iy = iy0 + int(ky), ix = ix0 + int(kx);
                bool inside = p < pc.pixels && iy >= 0 && ix >= 0 && iy < int(pc.h) && ix < int(pc.w);
                xo[j * KK + ky * KSIZE + kx] =
                    inside ? base + uint(ix >> up) * pc.x_nb0 + uint(iy >> up) * pc.x_nb1 : pc.x_off;
                xin[j * KK + ky * KSIZE + kx] = inside;
            }
    }
    [[unroll]] for (uint i = 0; i < ROWS; i++) wrow[i] = pc.w_off + min(m0 + i, pc.cout - 1u) * pc.w_nb3;
    [[unroll]] for (uint i = 0; i < ROWS * COLS; i++) acc[i] = 0.0;

    // Channel pairs: 2 KK consecutive weights of each row (w_nb2 = KK, w_nb0 = 1: the lowering
    // checks), read a word (W16) or two at a time.
    uint ci = 0;
    for (; ci + 2u <= pc.cin; ci += 2u) {
        [[unroll]] for (uint k = 0; k < 2u * KK; k += 2u) {
            float wa[ROWS], wb[ROWS];
            [[unroll]] for (uint i = 0; i < ROWS; i++) {
                uint e = wrow[i] + ci * KK + k;
#if W16
                vec2 h = unpackHalf2x16(texelFetch(w_texels, int(e >> 1)).x);
                wa[i] = h.x;
                wb[i] = h.y;
#else
                wa[i] = uintBitsToFloat(texelFetch(w_texels, int(e)).x);
                wb[i] = uintBitsToFloat(texelFetch(w_texels, int(e + 1u)).x);
#endif
            }
            step(ci + k / KK, k % KK, wa);
            step(ci + (k + 1u) / KK, (k + 1u) % KK, wb);
        }
    }
#if !W16 // W16: Cin is even (w's rows start at even elements), and this code costs compile time
    if (ci < pc.cin) { // an odd channel count's last channel
        [[unroll]] for (uint tap = 0; tap < KK; tap++) {
            float w[ROWS];
            [[unroll]] for (uint i = 0; i < ROWS; i++)
                w[i] = uintBitsToFloat(texelFetch(w_texels, int(wrow[i] + ci * KK + tap)).x);
            step(ci, tap, w);
        }
    }
#endif

    // The sums are stored GROUP rows at a time in a loop that is not unrolled: in lavapipe every
    // store (and every load of the residual) to a storage buffer is a loop over the SIMD lanes,
    // and all ROWS x COLS of them unrolled made LLVM's coroutine split take minutes (k1_h 119 s,
    // k3_f 200 s to compile; 6-31 s now). Group g's sums are picked from the registers by
    // comparing g with each group: (ROWS / GROUP - 1) x GROUP x COLS selects per group.
    const uint GROUP = ROWS < 8 ? ROWS : 8;
    bool residual = (pc.flags & VKI_CONV_RESIDUAL) != 0;
    for (uint g = 0; g < ROWS / GROUP; g++) {
        if (m0 + g * GROUP >= pc.cout) break;
        float v[GROUP * COLS];
        [[unroll]] for (uint e = 0; e < GROUP * COLS; e++) v[e] = acc[e];
        [[unroll]] for (uint h = 1; h < ROWS / GROUP; h++)
            [[unroll]] for (uint e = 0; e < GROUP * COLS; e++) v[e] = g == h ? acc[h * GROUP * COLS + e] : v[e];
        [[unroll]] for (uint i = 0; i < GROUP; i++) {
            uint co = m0 + g * GROUP + i;
            if (co >= pc.cout) break;
            float add = (pc.flags & VKI_CONV_HAS_BIAS) != 0 ? bias[pc.b_off + co] : 0.0;
            [[unroll]] for (uint j = 0; j < COLS; j++) {
                uint p = p0 + j * lanes;
                if (p >= pc.pixels) continue;
                uint img = p / per, q = p % per;
                float r = residual ? res[pc.r_off + (q % pc.ow) * pc.r_nb0 + (q / pc.ow) * pc.r_nb1 +
                                         co * pc.r_nb2 + img * pc.r_nb3]
                                   : 0.0;
                o[pc.d_off + (img * pc.cout + co) * per + q] = v[i * COLS + j] + add + r;
            }
        }
    }
}
