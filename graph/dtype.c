/* Element types and the GGUF block formats: sizes, half/bfloat conversion, and a plain-C
 * decoder and encoder per block type. The decoder is the reference the kernels are tested
 * against; the encoder makes quantised test weights from random floats. Layouts follow the
 * GGUF specification (little-endian, scales as IEEE half). */
#include "graph_internal.h"

#include <math.h>

static const vki_dtype_info infos[VKI_DTYPE_COUNT] = {
    [VKI_DTYPE_NONE] = {"none", 0, 0, false},
    [VKI_DTYPE_F32] = {"f32", 1, 4, false},
    [VKI_DTYPE_F16] = {"f16", 1, 2, false},
    [VKI_DTYPE_BF16] = {"bf16", 1, 2, false},
    [VKI_DTYPE_Q8_0] = {"q8_0", 32, 34, true},  // f16 d; i8 q[32]
    [VKI_DTYPE_Q4_0] = {"q4_0", 32, 18, true},  // f16 d; u8 q[16] (low nibbles: 0..15)
    [VKI_DTYPE_Q4_1] = {"q4_1", 32, 20, true},  // f16 d, m; u8 q[16]
    [VKI_DTYPE_Q5_0] = {"q5_0", 32, 22, true},  // f16 d; u32 qh; u8 q[16]
    [VKI_DTYPE_Q5_1] = {"q5_1", 32, 24, true},  // f16 d, m; u32 qh; u8 q[16]
    [VKI_DTYPE_Q4_K] = {"q4_k", 256, 144, true}, // f16 d, dmin; u8 scales[12]; u8 q[128]
    [VKI_DTYPE_Q5_K] = {"q5_k", 256, 176, true}, // f16 d, dmin; scales[12]; qh[32]; q[128]
    [VKI_DTYPE_Q6_K] = {"q6_k", 256, 210, true}, // u8 ql[128]; qh[64]; i8 scales[16]; f16 d
    [VKI_DTYPE_I32] = {"i32", 1, 4, false},
};

const vki_dtype_info *vki_dtype_get(vki_dtype dtype)
{
    if ((unsigned)dtype >= VKI_DTYPE_COUNT) return &infos[VKI_DTYPE_NONE];
    return &infos[dtype];
}

uint64_t vki_dtype_bytes(vki_dtype dtype, int64_t n)
{
    const vki_dtype_info *d = vki_dtype_get(dtype);
    if (!d->block_elems || n < 0 || n % d->block_elems) return 0;
    return (uint64_t)(n / d->block_elems) * d->block_bytes;
}

float vki_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: renormalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vki_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; // round to nearest even
    return (uint16_t)half;
}

float vki_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vki_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static float half_at(const uint8_t *p)
{
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return vki_f16_to_f32(h);
}

static void put_half(uint8_t *p, float f)
{
    uint16_t h = vki_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* 6-bit scale and min of sub-block j (0..7) in the 12 packed bytes of Q4_K / Q5_K. */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

void vki_dequant_block(vki_dtype dtype, const uint8_t *b, float *y)
{
    switch (dtype) {
    case VKI_DTYPE_Q8_0: {
        float d = half_at(b);
        for (int i = 0; i < 32; i++) y[i] = d * (float)(int8_t)b[2 + i];
        break;
    }
    case VKI_DTYPE_Q4_0: {
        float d = half_at(b);
        for (int i = 0; i < 16; i++) {
            y[i] = d * (float)((b[2 + i] & 0xF) - 8);
            y[i + 16] = d * (float)((b[2 + i] >> 4) - 8);
        }
        break;
    }
    case VKI_DTYPE_Q4_1: {
        float d = half_at(b), m = half_at(b + 2);
        for (int i = 0; i < 16; i++) {
            y[i] = d * (float)(b[4 + i] & 0xF) + m;
            y[i + 16] = d * (float)(b[4 + i] >> 4) + m;
        }
        break;
    }
    case VKI_DTYPE_Q5_0:
    case VKI_DTYPE_Q5_1: {
        bool one = dtype == VKI_DTYPE_Q5_1;
        float d = half_at(b), m = one ? half_at(b + 2) : 0.0f;
        const uint8_t *hp = b + (one ? 4 : 2), *q = hp + 4;
        uint32_t qh = (uint32_t)hp[0] | (uint32_t)hp[1] << 8 | (uint32_t)hp[2] << 16 | (uint32_t)hp[3] << 24;
        for (int i = 0; i < 16; i++) {
            int lo = (q[i] & 0xF) | (int)(((qh >> i) & 1) << 4);
            int hi = (q[i] >> 4) | (int)(((qh >> (i + 16)) & 1) << 4);
            y[i] = one ? d * (float)lo + m : d * (float)(lo - 16);
            y[i + 16] = one ? d * (float)hi + m : d * (float)(hi - 16);
        }
        break;
    }
    case VKI_DTYPE_Q4_K:
    case VKI_DTYPE_Q5_K: {
        bool five = dtype == VKI_DTYPE_Q5_K;
        float d = half_at(b), dmin = half_at(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
        for (int j = 0; j < 4; j++) { // 64 elements per step: two sub-blocks, low then high nibbles
            int sc, m;
            scale_min_k4(2 * j, scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(2 * j + 1, scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int lo = q[32 * j + l] & 0xF, hi = q[32 * j + l] >> 4;
                if (five) {
                    lo += ((qh[l] >> (2 * j)) & 1) << 4;
                    hi += ((qh[l] >> (2 * j + 1)) & 1) << 4;
                }
                y[64 * j + l] = d1 * (float)lo - m1;
                y[64 * j + 32 + l] = d2 * (float)hi - m2;
            }
        }
        break;
    }
    case VKI_DTYPE_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = half_at(b + 208);
        for (int n = 0; n < 2; n++) { // 128 elements per half
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[64 * n + l] & 0xF) | (((qh[32 * n + l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[64 * n + l + 32] & 0xF) | (((qh[32 * n + l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[64 * n + l] >> 4) | (((qh[32 * n + l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[64 * n + l + 32] >> 4) | (((qh[32 * n + l] >> 6) & 3) << 4)) - 32;
                y[128 * n + l] = d * (float)sc[8 * n + is] * (float)q1;
                y[128 * n + l + 32] = d * (float)sc[8 * n + is + 2] * (float)q2;
                y[128 * n + l + 64] = d * (float)sc[8 * n + is + 4] * (float)q3;
                y[128 * n + l + 96] = d * (float)sc[8 * n + is + 6] * (float)q4;
            }
        }
        break;
    }
    default:
        break;
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Q4_K / Q5_K: per 32-element sub-block a scale and a min, both 6-bit relative to d, dmin. */
static void quant_k(const float *x, uint8_t *b, int levels, bool five)
{
    float scale[8], minv[8], dmax = 0, mmax = 0;
    for (int s = 0; s < 8; s++) {
        float lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * s + l]);
            hi = fmaxf(hi, x[32 * s + l]);
        }
        scale[s] = (hi - lo) / (float)levels;
        minv[s] = -lo;
        dmax = fmaxf(dmax, scale[s]);
        mmax = fmaxf(mmax, minv[s]);
    }
    float d = dmax / 63.0f, dmin = mmax / 63.0f;
    memset(b, 0, five ? 176 : 144);
    put_half(b, d);
    put_half(b + 2, dmin);
    d = half_at(b);
    dmin = half_at(b + 2);
    uint8_t *scales = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
    int sc[8], mn[8];
    for (int s = 0; s < 8; s++) {
        sc[s] = d > 0 ? clampi((int)lrintf(scale[s] / d), 0, 63) : 0;
        mn[s] = dmin > 0 ? clampi((int)lrintf(minv[s] / dmin), 0, 63) : 0;
        if (s < 4) {
            scales[s] |= (uint8_t)sc[s];
            scales[s + 4] |= (uint8_t)mn[s];
        } else {
            scales[s + 4] = (uint8_t)((sc[s] & 0xF) | ((mn[s] & 0xF) << 4));
            scales[s - 4] |= (uint8_t)((sc[s] >> 4) << 6);
            scales[s] |= (uint8_t)((mn[s] >> 4) << 6);
        }
    }
    for (int s = 0; s < 8; s++) {
        float ds = d * (float)sc[s], ms = dmin * (float)mn[s];
        for (int l = 0; l < 32; l++) {
            int v = ds > 0 ? clampi((int)lrintf((x[32 * s + l] + ms) / ds), 0, levels) : 0;
            int j = s / 2, byte = 32 * j + l;
            if (s % 2 == 0)
                q[byte] |= (uint8_t)(v & 0xF);
            else
                q[byte] |= (uint8_t)((v & 0xF) << 4);
            if (five && (v & 16)) qh[l] |= (uint8_t)(1u << s);
        }
    }
}

void vki_quant_block(vki_dtype dtype, const float *x, uint8_t *b)
{
    switch (dtype) {
    case VKI_DTYPE_Q8_0: {
        // Exactly GGUF's rule (the reference of the Q8_0 KV-cache writes): the reciprocal of the
        // f32 scale, halves rounded away from zero (roundf, not the current rounding mode).
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
        put_half(b, d);
        for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(int8_t)clampi((int)roundf(x[i] * id), -127, 127);
        break;
    }
    case VKI_DTYPE_Q4_0:
    case VKI_DTYPE_Q5_0: {
        bool five = dtype == VKI_DTYPE_Q5_0;
        float amax = 0, max = 0;
        for (int i = 0; i < 32; i++)
            if (fabsf(x[i]) > amax) {
                amax = fabsf(x[i]);
                max = x[i];
            }
        float d = max / (five ? -16.0f : -8.0f), id = d != 0 ? 1.0f / d : 0;
        put_half(b, d);
        uint8_t *q = b + (five ? 6 : 2);
        uint32_t qh = 0;
        for (int i = 0; i < 16; i++) {
            int top = five ? 31 : 15;
            int lo = clampi((int)(x[i] * id + (five ? 16.5f : 8.5f)), 0, top);
            int hi = clampi((int)(x[i + 16] * id + (five ? 16.5f : 8.5f)), 0, top);
            q[i] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            qh |= (uint32_t)((lo >> 4) & 1) << i | (uint32_t)((hi >> 4) & 1) << (i + 16);
        }
        if (five) memcpy(b + 2, &qh, 4);
        break;
    }
    case VKI_DTYPE_Q4_1:
    case VKI_DTYPE_Q5_1: {
        bool five = dtype == VKI_DTYPE_Q5_1;
        float lo = x[0], hi = x[0];
        for (int i = 1; i < 32; i++) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
        }
        int top = five ? 31 : 15;
        float d = (hi - lo) / (float)top, id = d > 0 ? 1.0f / d : 0;
        put_half(b, d);
        put_half(b + 2, lo);
        uint8_t *q = b + (five ? 8 : 4);
        uint32_t qh = 0;
        for (int i = 0; i < 16; i++) {
            int a = clampi((int)lrintf((x[i] - lo) * id), 0, top);
            int c = clampi((int)lrintf((x[i + 16] - lo) * id), 0, top);
            q[i] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            qh |= (uint32_t)((a >> 4) & 1) << i | (uint32_t)((c >> 4) & 1) << (i + 16);
        }
        if (five) memcpy(b + 4, &qh, 4);
        break;
    }
    case VKI_DTYPE_Q4_K: quant_k(x, b, 15, false); break;
    case VKI_DTYPE_Q5_K: quant_k(x, b, 31, true); break;
    case VKI_DTYPE_Q6_K: {
        memset(b, 0, 210);
        float sub[16], dmax = 0;
        for (int s = 0; s < 16; s++) {
            float amax = 0;
            for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(x[16 * s + l]));
            sub[s] = amax / 31.0f;
            dmax = fmaxf(dmax, sub[s]);
        }
        float d = dmax / 127.0f;
        put_half(b + 208, d);
        d = half_at(b + 208);
        int8_t *sc = (int8_t *)(b + 192);
        uint8_t *ql = b, *qh = b + 128;
        for (int s = 0; s < 16; s++) sc[s] = (int8_t)(d > 0 ? clampi((int)lrintf(sub[s] / d), -127, 127) : 0);
        // Element e of half n sits at l + 32k (k = 0..3) with scale sc[8n + l/16 + 2k].
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) {
                    int e = 128 * n + 32 * k + l;
                    float ds = d * (float)sc[8 * n + l / 16 + 2 * k];
                    int v = (ds != 0 ? clampi((int)lrintf(x[e] / ds), -32, 31) : 0) + 32;
                    uint8_t *lo = &ql[64 * n + l + (k & 1) * 32];
                    *lo |= (uint8_t)((k < 2 ? v & 0xF : (v & 0xF) << 4));
                    qh[32 * n + l] |= (uint8_t)(((v >> 4) & 3) << (2 * k));
                }
        break;
    }
    default:
        break;
    }
}
