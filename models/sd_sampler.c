/* Diffusion samplers in k-diffusion's sigma formulation, SD's sigma schedules and torch's CPU
 * normal generator (see vkinfer_models.h, "Diffusion samplers"). Everything runs on the host:
 * a latent is a few tens of thousands of floats, and each step's cost is the denoiser's.
 *
 * Per-element updates are computed in double from float state and stored as float: the
 * reference (k-diffusion) runs in float32, so the two agree to float rounding per step. */
#include "model_internal.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#define SD_TIMESTEPS 1000
#define SD_PI 3.14159265358979323846

/* ---- Names ----------------------------------------------------------------------------------- */

typedef struct sampler_name {
    const char *name;
    vki_sd_sampler sampler;
} sampler_name;

/* A1111's display names first (vki_sd_sampler_name reads them by the sampler), then sd.cpp's. */
static const sampler_name k_sampler_names[] = {
    {.name = "Euler a", .sampler = VKI_SD_SAMPLER_EULER_A},
    {.name = "Euler", .sampler = VKI_SD_SAMPLER_EULER},
    {.name = "Heun", .sampler = VKI_SD_SAMPLER_HEUN},
    {.name = "DPM2", .sampler = VKI_SD_SAMPLER_DPM2},
    {.name = "DPM++ 2M", .sampler = VKI_SD_SAMPLER_DPMPP_2M},
    {.name = "DPM++ SDE", .sampler = VKI_SD_SAMPLER_DPMPP_SDE},
    {.name = "DDIM", .sampler = VKI_SD_SAMPLER_DDIM},
    {.name = "LCM", .sampler = VKI_SD_SAMPLER_LCM},
    {.name = "euler_a", .sampler = VKI_SD_SAMPLER_EULER_A},
    {.name = "dpm++2m", .sampler = VKI_SD_SAMPLER_DPMPP_2M},
    {.name = "dpm++sde", .sampler = VKI_SD_SAMPLER_DPMPP_SDE},
    {.name = "ddim_trailing", .sampler = VKI_SD_SAMPLER_DDIM},
};

static const char *const k_schedule_names[VKI_SD_SCHEDULE_COUNT] = {
    [VKI_SD_SCHEDULE_DEFAULT] = "discrete",
    [VKI_SD_SCHEDULE_DISCRETE] = "discrete",
    [VKI_SD_SCHEDULE_KARRAS] = "karras",
    [VKI_SD_SCHEDULE_EXPONENTIAL] = "exponential",
};

/* ASCII case-insensitive equality of a[0..n) and the whole of b (locale-free, unlike
 * strncasecmp). */
static bool name_eq(const char *a, size_t n, const char *b)
{
    if (strlen(b) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return false;
    return true;
}

vki_status vki_sd_schedule_parse(const char *name, vki_sd_schedule *out_schedule)
{
    if (!name || !out_schedule) return VKI_ERROR_INVALID_ARGUMENT;
    for (int s = VKI_SD_SCHEDULE_DISCRETE; s < VKI_SD_SCHEDULE_COUNT; s++) {
        if (name_eq(name, strlen(name), k_schedule_names[s])) {
            *out_schedule = (vki_sd_schedule)s;
            return VKI_OK;
        }
    }
    if (name_eq(name, strlen(name), "default")) {
        *out_schedule = VKI_SD_SCHEDULE_DEFAULT;
        return VKI_OK;
    }
    return VKI_ERROR_INVALID_ARGUMENT;
}

vki_status vki_sd_sampler_parse(const char *name, vki_sd_sampler *out_sampler,
                                vki_sd_schedule *out_schedule)
{
    if (!name || !out_sampler) return VKI_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(name);
    /* A1111 names a schedule after the sampler ("DPM++ 2M Karras"). */
    vki_sd_schedule schedule = VKI_SD_SCHEDULE_COUNT;
    const char *space = strrchr(name, ' ');
    if (space && vki_sd_schedule_parse(space + 1, &schedule) == VKI_OK &&
        schedule != VKI_SD_SCHEDULE_DEFAULT)
        n = (size_t)(space - name);
    else
        schedule = VKI_SD_SCHEDULE_COUNT;
    for (size_t i = 0; i < sizeof k_sampler_names / sizeof k_sampler_names[0]; i++) {
        if (name_eq(name, n, k_sampler_names[i].name)) {
            *out_sampler = k_sampler_names[i].sampler;
            if (schedule != VKI_SD_SCHEDULE_COUNT && out_schedule) *out_schedule = schedule;
            return VKI_OK;
        }
    }
    return VKI_ERROR_INVALID_ARGUMENT;
}

const char *vki_sd_sampler_name(vki_sd_sampler s)
{
    if (s == VKI_SD_SAMPLER_DEFAULT) s = VKI_SD_SAMPLER_EULER_A;
    for (size_t i = 0; i < sizeof k_sampler_names / sizeof k_sampler_names[0]; i++)
        if (k_sampler_names[i].sampler == s) return k_sampler_names[i].name;
    return "unknown";
}

const char *vki_sd_schedule_name(vki_sd_schedule s)
{
    return (unsigned)s < VKI_SD_SCHEDULE_COUNT ? k_schedule_names[s] : "unknown";
}

/* ---- Sigmas ---------------------------------------------------------------------------------- */

/* log(sigma_i) of SD's 1000 training timesteps, increasing with i. The betas are
 * linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 in double; SD (ldm's DDPM) keeps alphas_cumprod
 * as float32, so the product is rounded to float before the sigmas are taken from it, as
 * k-diffusion's CompVisDenoiser sees them. */
static void discrete_log_sigmas(double out[SD_TIMESTEPS])
{
    const double start = sqrt(0.00085), end = sqrt(0.012);
    const double step = (end - start) / (SD_TIMESTEPS - 1);
    double cumprod = 1.0;
    for (int i = 0; i < SD_TIMESTEPS; i++) {
        /* torch.linspace: from the start for the first half, from the end for the second. */
        double b = i < SD_TIMESTEPS / 2 ? start + step * i : end - step * (SD_TIMESTEPS - 1 - i);
        cumprod *= 1.0 - b * b;
        double a = (float)cumprod;
        out[i] = 0.5 * log((1.0 - a) / a);
    }
}

/* k-diffusion's t_to_sigma: log-sigma interpolated between the integer timesteps around t. */
static double t_to_sigma(const double *log_sigmas, double t)
{
    double lo = floor(t);
    int i = (int)lo, j = (int)ceil(t);
    double w = t - lo;
    return exp((1.0 - w) * log_sigmas[i] + w * log_sigmas[j]);
}

/* torch.linspace(a, b, n)[i]: stepped from a for the first half and from b for the second. */
static double linspace(double a, double b, uint32_t n, uint32_t i)
{
    if (n == 1) return a;
    double step = (b - a) / (double)(n - 1);
    return i < n / 2 ? a + step * i : b - step * (double)(n - 1 - i);
}

vki_status vki_sd_sigmas(vki_sd_schedule schedule, uint32_t steps, float *out_sigmas)
{
    if (!out_sigmas || steps < 1 || steps > SD_TIMESTEPS ||
        (unsigned)schedule >= VKI_SD_SCHEDULE_COUNT)
        return VKI_ERROR_INVALID_ARGUMENT;
    double ls[SD_TIMESTEPS];
    discrete_log_sigmas(ls);
    /* k-diffusion's sigma_min and sigma_max are the model's float32 sigmas. */
    const double sigma_min = (float)exp(ls[0]), sigma_max = (float)exp(ls[SD_TIMESTEPS - 1]);
    for (uint32_t i = 0; i < steps; i++) {
        double sigma;
        switch (schedule) {
        case VKI_SD_SCHEDULE_KARRAS: {
            const double rho = 7.0, lo = pow(sigma_min, 1.0 / rho), hi = pow(sigma_max, 1.0 / rho);
            sigma = pow(hi + linspace(0.0, 1.0, steps, i) * (lo - hi), rho);
            break;
        }
        case VKI_SD_SCHEDULE_EXPONENTIAL:
            sigma = exp(linspace(log(sigma_max), log(sigma_min), steps, i));
            break;
        default:
            sigma = t_to_sigma(ls, linspace(SD_TIMESTEPS - 1, 0.0, steps, i));
            break;
        }
        out_sigmas[i] = (float)sigma;
    }
    out_sigmas[steps] = 0.0f;
    return VKI_OK;
}

float vki_sd_sigma_to_t(float sigma)
{
    double ls[SD_TIMESTEPS];
    discrete_log_sigmas(ls);
    double l = log((double)sigma);
    if (isnan(l)) return 0.0f;
    /* k-diffusion: the last timestep whose log-sigma is <= log(sigma) (0 when none), at most
     * 998 so that it has an upper neighbour; the weight clamped to [0, 1]. */
    int lo = 0;
    for (int i = 0; i < SD_TIMESTEPS; i++)
        if (ls[i] <= l) lo = i;
    if (lo > SD_TIMESTEPS - 2) lo = SD_TIMESTEPS - 2;
    double w = (ls[lo] - l) / (ls[lo] - ls[lo + 1]);
    w = w < 0.0 ? 0.0 : w > 1.0 ? 1.0 : w;
    return (float)((1.0 - w) * lo + w * (lo + 1));
}

/* ---- torch's CPU generator ------------------------------------------------------------------- */

#define MT_N 624
#define MT_M 397

void vki_sd_rng_seed(vki_sd_rng *r, uint64_t seed)
{
    if (!r) return;
    memset(r, 0, sizeof *r);
    /* at::mt19937 keeps the 64-bit seed but initialises from its low 32 bits (init_genrand). */
    r->seed = seed;
    r->mt[0] = (uint32_t)seed;
    for (uint32_t i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + i;
    r->index = MT_N;
}

static void mt_twist(vki_sd_rng *r)
{
    for (uint32_t i = 0; i < MT_N; i++) {
        uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % MT_N] & 0x7fffffffu);
        r->mt[i] = r->mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->index = 0;
}

static uint32_t mt_u32(vki_sd_rng *r)
{
    if (r->index >= MT_N) mt_twist(r);
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* at::uniform_real_distribution<float>(0, 1): the low 24 bits of one word, [0, 1). */
static float uniform_f32(vki_sd_rng *r)
{
    return (float)(mt_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* at::uniform_real_distribution<double>(0, 1): random64() is the first word high, the second
 * low; its low 53 bits. */
static double uniform_f64(vki_sd_rng *r)
{
    uint64_t hi = mt_u32(r), lo = mt_u32(r);
    return (double)(((hi << 32) | lo) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* at::normal_distribution<double>: Box-Muller on two double uniforms (u1 the angle, u2 the
 * radius through log1p(-u2)); the sine half is cached in the generator for the next value. */
static double normal_f64(vki_sd_rng *r)
{
    if (r->has_next_normal) {
        r->has_next_normal = false;
        return r->next_normal;
    }
    double u1 = uniform_f64(r), u2 = uniform_f64(r);
    double radius = sqrt(-2.0 * log1p(-u2)), theta = 2.0 * SD_PI * u1;
    r->next_normal = radius * sin(theta);
    r->has_next_normal = true;
    return radius * cos(theta);
}

/* torch fills tensors of 16 or more floats with its AVX2 kernel wherever the CPU has AVX2 (also
 * on AVX-512 CPUs, where the normal kernel is not dispatched to AVX-512): Box-Muller on float
 * uniforms through the Cephes-derived float log and sincos of ATen's avx_mathfun.h, which torch
 * builds with GCC's FMA contraction. The two functions below evaluate the same float
 * approximations, in the same order, with fmaf exactly where the compiled kernel fuses, and
 * every other product and sum rounded on its own (the library builds as ISO C, so the compiler
 * contracts nothing else). Checked bit for bit against torch 2.15 on 2^20 normals. */

static float f32_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t u32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* log(x) for x in [2^-24, 1]: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by Cephes'
 * degree-9 polynomial in m - 1, e log(2) added in two parts (0.693359375 is exact in float and
 * its product with a small e too). */
static float torch_avx2_logf(float x)
{
    static const float p[9] = {7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f,
                               -1.2420140846e-1f, 1.4249322787e-1f, -1.6668057665e-1f,
                               2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f};
    const uint32_t bits = u32_bits(x);
    float e = (float)((int32_t)(bits >> 23) - 127) + 1.0f;
    const float m = f32_bits((bits & ~0x7f800000u) | u32_bits(0.5f)); // [0.5, 1)
    float f;
    if (m < 0.707106781186547524f) {
        e -= 1.0f;
        f = (m - 1.0f) + m;
    } else {
        f = m - 1.0f;
    }
    const float z = f * f;
    float y = p[0];
    for (int k = 1; k < 9; k++) y = fmaf(y, f, p[k]);
    y = y * f;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = y - z * 0.5f;
    return (f + y) + e * 0.693359375f;
}

/* sin and cos of x >= 0 (here [0, 2 pi)): octant j from x 4/pi rounded up to even, x - j pi/4
 * in three parts (Cody-Waite), then Cephes' sine or cosine polynomial per octant and the signs. */
static void torch_avx2_sincosf(float x, float *out_sin, float *out_cos)
{
    int32_t j = (int32_t)(x * 1.27323954473516f);
    j = (j + 1) & ~1;
    const float y = (float)j;
    const uint32_t sign_sin = ((uint32_t)j & 4u) << 29;
    const uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    const bool sine_poly_is_sin = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    const float z = x * x;
    float c = fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f);
    c = fmaf(c, z, 4.166664568298827e-2f);
    c = c * z;
    c = fmaf(c, z, -(z * 0.5f));
    c = c + 1.0f;
    float s = fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f);
    s = fmaf(s, z, -1.6666654611e-1f);
    s = s * z;
    s = fmaf(s, x, x);
    *out_sin = f32_bits(u32_bits(sine_poly_is_sin ? s : c) ^ sign_sin);
    *out_cos = f32_bits(u32_bits(sine_poly_is_sin ? c : s) ^ sign_cos);
}

/* normal_fill_16: data[0..16) holds float uniforms; pairs (j, j + 8) become normals (1 - u for
 * the log so that it never sees 0). */
static void normal_fill_16(float *data)
{
    const float two_pi = (float)(2.0 * SD_PI);
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - data[j], u2 = data[j + 8];
        const float radius = sqrtf(-2.0f * torch_avx2_logf(u1));
        float s, c;
        torch_avx2_sincosf(two_pi * u2, &s, &c);
        data[j] = radius * c;
        data[j + 8] = radius * s;
    }
}

void vki_sd_randn(vki_sd_rng *r, float *out, size_t n)
{
    if (!r || !out) return;
    if (n < 16) {
        /* torch's scalar path for small tensors: doubles, one at a time, cast to float. */
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_f64(r);
        return;
    }
    /* normal_fill: all n uniforms first, then each full block of 16 transformed; a ragged tail
     * is redone from 16 fresh uniforms over the last 16 elements. */
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
    if (n % 16) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
        normal_fill_16(tail);
    }
}

/* ---- Samplers -------------------------------------------------------------------------------- */

typedef struct run {
    const vki_sd_sample_desc *d;
    size_t n;
    float *den, *den2, *x2, *noise; // scratch latents [n]
} run;

static vki_status denoise(const run *r, const float *x, double sigma, float *out)
{
    return r->d->denoise(r->d->user, x, (float)sigma, out);
}

/* k-diffusion's get_ancestral_step: the deterministic sigma to step down to and the noise to
 * add, so that the variance at sigma_to is right. */
static void ancestral_step(double from, double to, double eta, double *down, double *up)
{
    if (eta == 0.0) {
        *down = to;
        *up = 0.0;
        return;
    }
    double u = eta * sqrt(to * to * (from * from - to * to) / (from * from));
    *up = u < to ? u : to;
    *down = sqrt(to * to - *up * *up);
}

/* x += (x - den) / sigma * dt: an Euler step along the probability-flow ODE. */
static void euler_update(float *x, const float *den, size_t n, double sigma, double dt)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] + ((double)x[i] - den[i]) / sigma * dt);
}

static void add_noise(float *x, const float *noise, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] + (double)noise[i] * scale);
}

/* The data-prediction step of DPM-Solver++ from sigma to sigma_to:
 * x' = (sigma_to / sigma) x - expm1(-h) den, h = log(sigma / sigma_to); den itself at 0. */
static void dpmpp_update(float *out, const float *x, const float *den, size_t n, double sigma,
                         double sigma_to)
{
    double a = sigma_to / sigma, b = sigma_to > 0.0 ? -expm1(log(sigma_to) - log(sigma)) : 1.0;
    for (size_t i = 0; i < n; i++) out[i] = (float)(a * x[i] + b * den[i]);
}

/* x2 = x + (x - den) / sigma * dt, the first stage of Heun and DPM2. */
static void euler_to(float *x2, const float *x, const float *den, size_t n, double sigma, double dt)
{
    for (size_t i = 0; i < n; i++) x2[i] = (float)(x[i] + ((double)x[i] - den[i]) / sigma * dt);
}

/* Step i, from s = sigmas[i] to sn = sigmas[i + 1]: k-diffusion's loop body of each sampler. */
static vki_status step(run *r, vki_sd_sampler sampler, uint32_t i, double eta, float *x)
{
    const vki_sd_sample_desc *d = r->d;
    const size_t n = r->n;
    const double s = d->sigmas[i], sn = d->sigmas[i + 1];
    vki_status st = denoise(r, x, s, r->den);
    if (st != VKI_OK) return st;
    /* The two-stage samplers end with a plain Euler step to 0 (no midpoint at sigma 0). */
    if (sn == 0.0 && (sampler == VKI_SD_SAMPLER_HEUN || sampler == VKI_SD_SAMPLER_DPM2 ||
                      sampler == VKI_SD_SAMPLER_DPMPP_SDE))
        sampler = VKI_SD_SAMPLER_EULER;
    switch (sampler) {
    case VKI_SD_SAMPLER_EULER:
    case VKI_SD_SAMPLER_DDIM: // DDIM with eta 0 is Euler in the sigma formulation (header)
        euler_update(x, r->den, n, s, sn - s);
        break;
    case VKI_SD_SAMPLER_EULER_A: {
        double down, up;
        ancestral_step(s, sn, eta, &down, &up);
        euler_update(x, r->den, n, s, down - s);
        if (sn > 0.0) {
            vki_sd_randn(d->rng, r->noise, n);
            add_noise(x, r->noise, n, up);
        }
        break;
    }
    case VKI_SD_SAMPLER_HEUN:
        /* Trapezoid: the mean of the slopes at (x, s) and at the Euler prediction (x2, sn). */
        euler_to(r->x2, x, r->den, n, s, sn - s);
        if ((st = denoise(r, r->x2, sn, r->den2)) != VKI_OK) return st;
        for (size_t k = 0; k < n; k++) {
            double d1 = ((double)x[k] - r->den[k]) / s, d2 = ((double)r->x2[k] - r->den2[k]) / sn;
            x[k] = (float)(x[k] + (d1 + d2) * 0.5 * (sn - s));
        }
        break;
    case VKI_SD_SAMPLER_DPM2: {
        /* Midpoint in log-sigma: half a step with the slope at s, the whole step with the slope
         * at the midpoint. */
        double mid = exp(0.5 * (log(s) + log(sn)));
        euler_to(r->x2, x, r->den, n, s, mid - s);
        if ((st = denoise(r, r->x2, mid, r->den2)) != VKI_OK) return st;
        for (size_t k = 0; k < n; k++)
            x[k] = (float)(x[k] + ((double)r->x2[k] - r->den2[k]) / mid * (sn - s));
        break;
    }
    case VKI_SD_SAMPLER_DPMPP_2M: {
        /* Second order from the previous step's denoised (kept in den2) once there is one; the
         * first step of a run and the last (to 0) are first order. */
        if (i == 0 || sn == 0.0) {
            dpmpp_update(x, x, r->den, n, s, sn);
        } else {
            double sp = d->sigmas[i - 1];
            double h = log(s) - log(sn), h_last = log(sp) - log(s), q = h_last / h;
            double c = 1.0 + 1.0 / (2.0 * q), c_old = 1.0 / (2.0 * q);
            for (size_t k = 0; k < n; k++) r->x2[k] = (float)(c * r->den[k] - c_old * r->den2[k]);
            dpmpp_update(x, x, r->x2, n, s, sn);
        }
        memcpy(r->den2, r->den, n * sizeof(float));
        break;
    }
    case VKI_SD_SAMPLER_DPMPP_SDE: {
        /* Stage 1 to the midpoint in log-sigma (r = 1/2), ancestral; stage 2 the whole step with
         * the midpoint's denoised ((1 - 1/(2r)) den + 1/(2r) den2 is den2 at r = 1/2). */
        double mid = exp(0.5 * (log(s) + log(sn))), down, up;
        ancestral_step(s, mid, eta, &down, &up);
        dpmpp_update(r->x2, x, r->den, n, s, down);
        vki_sd_randn(d->rng, r->noise, n);
        add_noise(r->x2, r->noise, n, up);
        if ((st = denoise(r, r->x2, mid, r->den2)) != VKI_OK) return st;
        ancestral_step(s, sn, eta, &down, &up);
        dpmpp_update(x, x, r->den2, n, s, down);
        vki_sd_randn(d->rng, r->noise, n);
        add_noise(x, r->noise, n, up);
        break;
    }
    case VKI_SD_SAMPLER_LCM:
        memcpy(x, r->den, n * sizeof(float));
        if (sn > 0.0) {
            vki_sd_randn(d->rng, r->noise, n);
            add_noise(x, r->noise, n, sn);
        }
        break;
    default:
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    return VKI_OK;
}

static bool needs_rng(vki_sd_sampler s)
{
    return s == VKI_SD_SAMPLER_EULER_A || s == VKI_SD_SAMPLER_DPMPP_SDE || s == VKI_SD_SAMPLER_LCM;
}

static bool sigmas_ok(const float *sigmas, uint32_t steps)
{
    for (uint32_t i = 0; i <= steps; i++) {
        if (!isfinite(sigmas[i]) || sigmas[i] < 0.0f) return false;
        if (i < steps && !(sigmas[i] > 0.0f)) return false; // every step divides by its sigma
    }
    return true;
}

vki_status vki_sd_sample(const vki_sd_sample_desc *desc, float *x)
{
    if (!desc || !x || !desc->denoise || !desc->sigmas || desc->steps == 0 || desc->n == 0)
        return VKI_ERROR_INVALID_ARGUMENT;
    vki_sd_sampler sampler = desc->sampler ? desc->sampler : VKI_SD_SAMPLER_EULER_A; // 0: default
    if ((unsigned)sampler >= VKI_SD_SAMPLER_COUNT || (needs_rng(sampler) && !desc->rng) ||
        !isfinite(desc->eta) || desc->eta < 0.0f || !sigmas_ok(desc->sigmas, desc->steps))
        return VKI_ERROR_INVALID_ARGUMENT;
    const size_t n = desc->n;
    if (n > SIZE_MAX / (4 * sizeof(float))) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    float *scratch = vki__model_alloc(desc->allocator, 4 * n * sizeof(float));
    if (!scratch) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    run r = {.d = desc, .n = n, .den = scratch, .den2 = scratch + n, .x2 = scratch + 2 * n,
             .noise = scratch + 3 * n};
    const double eta = desc->eta == 0.0f ? 1.0 : desc->eta;
    vki_status st = VKI_OK;
    for (uint32_t i = 0; i < desc->steps; i++) {
        if (desc->abort_flag && *desc->abort_flag) {
            st = VKI_ERROR_CANCELLED;
            break;
        }
        if ((st = step(&r, sampler, i, eta, x)) != VKI_OK) break;
        if (desc->progress) desc->progress(desc->user, i + 1, desc->steps);
    }
    vki__model_free(desc->allocator, scratch);
    return st;
}
