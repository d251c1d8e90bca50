/* Token sampler: repetition, presence and frequency penalties, top-k, top-p, min-p, temperature
 * and one random draw, in llama.cpp's default order (see the header for the chain).
 *
 * Cost per token for a vocabulary of n: one pass copying and sanitising the logits while finding
 * the largest (the penalty then touches only the window's tokens), then
 *   - top-k on (the default): one pass past a k-entry heap, where nearly every token fails a
 *     single comparison with the heap's worst, and a heap sort of those k;
 *   - top-k off, top-p on: one pass computing every probability and a histogram of their mass
 *     over logit bins (1/64 nat wide); the bins from the top give where the nucleus ends, so
 *     only the tokens of that one bin are sorted;
 *   - top-k off, min-p only: a threshold (p_i >= min_p * p_max is logit >= max + ln min_p),
 *     no sort;
 *   - everything off: one pass gathering every finite token, no sort.
 * The draw itself needs no order. top-p and min-p both keep a most-likely prefix, so applying
 * them one after the other keeps whichever prefix is shorter.
 *
 * Reproducibility: the random numbers come from xoshiro256** seeded through splitmix64, and
 * every probability from exp_nonpos below, which uses only IEEE double +, -, *, / and exact
 * conversions, so the same inputs give the same token whatever the C library. Every sum runs in
 * a fixed order. */
#include "vkinfer_models.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__clang__)
// A fused multiply-add rounds once instead of twice; letting the compiler contract on some
// targets and not others would make draws differ between platforms. (GCC in ISO C mode, which
// the build uses, does not contract.)
#pragma STDC FP_CONTRACT OFF
#endif

#define DEFAULT_TEMPERATURE 0.8f
#define DEFAULT_TOP_K 40
#define DEFAULT_TOP_P 0.95f
#define DEFAULT_MIN_P 0.05f
#define DEFAULT_REPEAT_PENALTY 1.0f // llama.cpp's since 2024: off
#define DEFAULT_REPEAT_LAST_N 64u
#define MAX_REPEAT_LAST_N (1u << 24)

// Top-p without top-k: bins of 1/64 nat below the largest logit, 64 nats in all; the last bin
// also takes everything further down (probability ratios under e^-64, 1.6e-28). Fine bins keep
// the one bin that gets sorted small even when the logits are nearly flat.
#define BINS_PER_NAT 64.0
#define N_BINS 4096

typedef struct cand {
    float logit; // after sanitising and the penalty
    int32_t id;
} cand;

struct vki_sampler {
    vki_allocator alloc;
    vki_sampler_desc settings; // as vki_sampler_settings reports them
    uint32_t n_vocab;
    bool greedy;
    uint32_t top_k;     // 0: off
    double top_p;       // 1: off
    double min_p;       // 0: off
    double log_min_p;   // ln(min_p), for a first cut only (see min_p_unranked)
    float penalty;      // 1: off
    float presence;     // OpenAI's presence and frequency penalties; 0: off
    float frequency;
    double temperature; // > 0 unless greedy
    double inv_temperature;
    float *work;        // [n_vocab] sanitised, penalised logits
    cand *cand;         // [n_vocab] the candidates: a heap, then best first; or a gathered set
    double *weight;     // [n_vocab] per token e^(logit - max), then per candidate for the draw
    int32_t *window;    // [window_cap] ring of the last accepted tokens
    uint32_t window_cap, window_len, window_next;
    uint64_t rng[4];    // xoshiro256** state
    double bin_mass[N_BINS];
    uint32_t bin_count[N_BINS];
    char last_error[256];
};

/* ---- Deterministic arithmetic --------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro256ss(uint64_t s[4])
{
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

// Uniform in [0, 1): the top 53 bits, exactly representable.
static double uniform01(uint64_t s[4]) { return (double)(xoshiro256ss(s) >> 11) * 0x1.0p-53; }

static void seed_rng(uint64_t rng[4], uint64_t seed)
{
    // splitmix64 spreads any seed (1, 2, 3...) over the whole state, which is never all zero.
    for (int i = 0; i < 4; i++) rng[i] = splitmix64(&seed);
}

/* e^x for x <= 0, to about 1e-14 relative; 0 below -708 (e^-708 = 3e-308: a weight no draw
 * can pick), for -inf and for NaN. x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to
 * r^11 (evaluated in Estrin's form: a short dependency chain, since this runs once per token
 * of the vocabulary on some paths), times 2^k built from its bits (k >= -1022, so 2^k is a
 * normal number). ln2 is split in two (fdlibm's constants: the high part has 21 trailing zero
 * bits, so k * LN2_HI is exact). */
static double exp_nonpos(double x)
{
    const double LOG2E = 1.4426950408889634, LN2_HI = 6.93147180369123816490e-01,
                 LN2_LO = 1.90821492927058770002e-10;
    if (!(x >= -708.0)) return 0.0;
    if (x > 0.0) x = 0.0;
    // k = ceil(x log2e - 1/2), a nearest integer: the conversion truncates a positive value.
    int k = -(int)(0.5 - x * LOG2E);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double p01 = 1.0 + r, p23 = 1.0 / 2 + r * (1.0 / 6), p45 = 1.0 / 24 + r * (1.0 / 120),
           p67 = 1.0 / 720 + r * (1.0 / 5040), p89 = 1.0 / 40320 + r * (1.0 / 362880),
           pab = 1.0 / 3628800 + r * (1.0 / 39916800);
    double p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67) + r8 * (p89 + r2 * pab);
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ---- Candidates ---------------------------------------------------------------------------- */

// The order of the whole chain: larger logit first, then smaller id, so ties are deterministic.
static bool better(cand a, cand b)
{
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

static int cmp_best_first(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return better(*a, *b) ? -1 : better(*b, *a) ? 1 : 0;
}

// NaN counts as -inf (never drawn) and +inf as the largest float, so that softmax stays finite.
static float sanitise(float x)
{
    if (x != x) return -INFINITY;
    if (x == INFINITY) return FLT_MAX;
    return x;
}

/* Min-heap on `better`: h[0] is the worst of the kept tokens. */
static void heap_down(cand *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(h[w], h[l])) w = l;
        if (r < n && better(h[w], h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heap_up(cand *h, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!better(h[parent], h[i])) return;
        cand t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

/* The k best finite tokens into s->cand, best first; returns how many (fewer than k when fewer
 * are finite). Tokens arrive in id order, so a newcomer equal to the heap's worst has the larger
 * id and loses: `>` alone decides, and -inf never passes it. */
static uint32_t select_top_k(vki_sampler *s, uint32_t k)
{
    cand *h = s->cand;
    const float *w = s->work;
    uint32_t n = 0, i = 0;
    for (; i < s->n_vocab && n < k; i++) {
        if (w[i] == -INFINITY) continue;
        h[n] = (cand){w[i], (int32_t)i};
        heap_up(h, n++);
    }
    float worst = n ? h[0].logit : INFINITY;
    for (; i < s->n_vocab; i++) {
        if (w[i] > worst) {
            h[0] = (cand){w[i], (int32_t)i};
            heap_down(h, n, 0);
            worst = h[0].logit;
        }
    }
    // Heap sort: moving the worst to the end each time leaves the array best first.
    for (uint32_t end = n; end > 1; end--) {
        cand t = h[0];
        h[0] = h[end - 1];
        h[end - 1] = t;
        heap_down(h, end - 1, 0);
    }
    return n;
}

/* Top-k on: cuts the best-first cand[0..n) to the top-p prefix, renormalised over those n as
 * llama.cpp does, and to min-p. */
static uint32_t cut_sorted(vki_sampler *s, uint32_t n)
{
    double max = s->cand[0].logit, total = 0, cum = 0;
    bool top_p = s->top_p < 1.0;
    for (uint32_t i = 0; i < n && top_p; i++) total += exp_nonpos((double)s->cand[i].logit - max);
    for (uint32_t i = 0; i < n; i++) {
        double w = exp_nonpos((double)s->cand[i].logit - max);
        if (w < s->min_p) return i; // p_i < min_p * p_max; never for i = 0 (w = 1)
        cum += w;
        if (top_p && cum >= s->top_p * total) return i + 1; // the token that crosses is kept
    }
    return n;
}

static uint32_t bin_of(double d) // d = logit - max <= 0
{
    double b = -d * BINS_PER_NAT;
    return b < N_BINS - 1 ? (uint32_t)b : N_BINS - 1;
}

/* Top-k off, top-p on: the nucleus of the whole vocabulary into cand[] (any order), then min-p.
 * Bins hold the tokens in best-first order bin by bin, so the nucleus is every bin before the
 * one where the cumulative mass reaches top_p, plus the best-first prefix of that bin. Tokens of
 * probability 0 (weight under e^-708) are never in a nucleus. */
static uint32_t nucleus_unranked(vki_sampler *s, double max)
{
    double *w = s->weight, total = 0;
    memset(s->bin_mass, 0, sizeof s->bin_mass);
    memset(s->bin_count, 0, sizeof s->bin_count);
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        double d = (double)s->work[i] - max;
        w[i] = exp_nonpos(d);
        if (w[i] == 0) continue;
        total += w[i];
        uint32_t b = bin_of(d);
        s->bin_mass[b] += w[i];
        s->bin_count[b]++;
    }
    double need = s->top_p * total, cum = 0;
    uint32_t last = N_BINS - 1, cross = 0, before = 0;
    while (s->bin_count[last] == 0) last--; // the largest logit has weight 1: bin 0 is not empty
    for (;; cross++) {
        if (cross == last || cum + s->bin_mass[cross] >= need) break;
        cum += s->bin_mass[cross];
        before += s->bin_count[cross];
    }
    uint32_t front = 0, back = before;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        if (w[i] == 0) continue;
        uint32_t b = bin_of((double)s->work[i] - max);
        if (b < cross) s->cand[front++] = (cand){s->work[i], (int32_t)i};
        else if (b == cross) s->cand[back++] = (cand){s->work[i], (int32_t)i};
    }
    qsort(s->cand + before, back - before, sizeof *s->cand, cmp_best_first);
    uint32_t n = before;
    while (n < back) {
        cum += w[s->cand[n++].id];
        if (cum >= need) break;
    }
    if (s->min_p > 0) { // a threshold: keeps the candidates in place, in their order
        uint32_t kept = 0;
        for (uint32_t j = 0; j < n; j++)
            if (w[s->cand[j].id] >= s->min_p) s->cand[kept++] = s->cand[j];
        n = kept;
    }
    return n;
}

/* Top-k and top-p off, min-p on: the tokens with e^(logit - max) >= min_p, in id order. */
static uint32_t min_p_unranked(vki_sampler *s, double max)
{
    // ln(min_p) from the C library may differ by an ulp between platforms; it only spares the
    // exponential for tokens far below, and the margin leaves the decision to exp_nonpos.
    double first_cut = s->log_min_p - 1e-6;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        double d = (double)s->work[i] - max;
        if (d >= first_cut && exp_nonpos(d) >= s->min_p)
            s->cand[n++] = (cand){s->work[i], (int32_t)i};
    }
    return n;
}

/* One draw from softmax(logit / temperature) over cand[0..n), in any order; `max` is the
 * largest logit, which is among them. */
static int32_t draw(vki_sampler *s, uint32_t n, double max)
{
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        s->weight[i] = exp_nonpos(((double)s->cand[i].logit - max) * s->inv_temperature);
        sum += s->weight[i];
    }
    // sum >= 1 (the largest has weight 1); the same additions in the same order reach it again
    // below, so u < sum always lands inside the loop. The fallback is for the record.
    double u = uniform01(s->rng) * sum, acc = 0;
    int32_t last = s->cand[0].id;
    for (uint32_t i = 0; i < n; i++) {
        if (s->weight[i] <= 0) continue;
        acc += s->weight[i];
        last = s->cand[i].id;
        if (u < acc) return last;
    }
    return last;
}

/* ---- Public API ---------------------------------------------------------------------------- */

static void set_error(char *buf, size_t size, const char *fmt, ...)
{
    if (!buf || size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static vki_status fail(vki_sampler *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
    va_end(ap);
    return VKI_ERROR_INVALID_ARGUMENT;
}

/* A probability-like field: 0 (default), VKI_SAMPLER_OFF, or in (0, 1]. */
static bool check_fraction(const char *name, float v, char *err, size_t size)
{
    if (v == 0 || v == VKI_SAMPLER_OFF || (v > 0 && v <= 1)) return true;
    set_error(err, size, "sampler: %s is %g; it must be in (0, 1], 0 for the default or "
              "VKI_SAMPLER_OFF (-1)", name, (double)v);
    return false;
}

vki_status vki_sampler_check_desc(const vki_sampler_desc *desc, uint32_t n_vocab,
                                  char *out_error, size_t error_size)
{
    vki_sampler_desc d = desc ? *desc : (vki_sampler_desc){0};
    set_error(out_error, error_size, "%s", "");
    if (n_vocab == 0 || n_vocab > INT32_MAX) {
        set_error(out_error, error_size, "sampler: n_vocab is %u; it must be in 1..%d", n_vocab,
                  INT32_MAX);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    // Written so that NaN fails every comparison and lands in the error branch.
    if (!(d.temperature == VKI_SAMPLER_GREEDY ||
          (d.temperature >= 0 && d.temperature <= FLT_MAX))) {
        set_error(out_error, error_size, "sampler: temperature is %g; it must be > 0, 0 for the "
                  "default (0.8) or VKI_SAMPLER_GREEDY (-1)", (double)d.temperature);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (d.top_k < VKI_SAMPLER_OFF) {
        set_error(out_error, error_size, "sampler: top_k is %d; it must be > 0, 0 for the default "
                  "(40) or VKI_SAMPLER_OFF (-1)", (int)d.top_k);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (!check_fraction("top_p", d.top_p, out_error, error_size) ||
        !check_fraction("min_p", d.min_p, out_error, error_size))
        return VKI_ERROR_INVALID_ARGUMENT;
    if (!(d.repeat_penalty == VKI_SAMPLER_OFF ||
          (d.repeat_penalty >= 0 && d.repeat_penalty <= FLT_MAX))) {
        set_error(out_error, error_size, "sampler: repeat_penalty is %g; it must be > 0, 0 for "
                  "the default (1, off) or VKI_SAMPLER_OFF (-1)", (double)d.repeat_penalty);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    // OpenAI's range; a finite bound also keeps count * frequency finite (count < 2^24).
    if (!(d.presence_penalty >= -2 && d.presence_penalty <= 2)) {
        set_error(out_error, error_size, "sampler: presence_penalty is %g; it must be in [-2, 2] "
                  "(0: off)", (double)d.presence_penalty);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (!(d.frequency_penalty >= -2 && d.frequency_penalty <= 2)) {
        set_error(out_error, error_size, "sampler: frequency_penalty is %g; it must be in "
                  "[-2, 2] (0: off)", (double)d.frequency_penalty);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    if (d.repeat_last_n > MAX_REPEAT_LAST_N) {
        set_error(out_error, error_size, "sampler: repeat_last_n is %u; at most %u tokens",
                  d.repeat_last_n, MAX_REPEAT_LAST_N);
        return VKI_ERROR_INVALID_ARGUMENT;
    }
    return VKI_OK;
}

static void *s_alloc(const vki_allocator *a, uint64_t count, uint64_t elem)
{
    uint64_t bytes;
    if (__builtin_mul_overflow(count, elem, &bytes) || bytes > SIZE_MAX) return NULL;
    if (bytes == 0) bytes = 1;
    return a->alloc ? a->alloc(a->user, (size_t)bytes) : malloc((size_t)bytes);
}

static void s_free(const vki_allocator *a, void *p)
{
    if (a->free) a->free(a->user, p);
    else free(p);
}

// Clock, the object's address and CPU time, mixed: two samplers started in the same
// nanosecond still get different seeds.
static uint64_t fresh_seed(const void *salt)
{
    struct timespec ts = {0};
#ifdef TIME_UTC
    timespec_get(&ts, TIME_UTC);
#else
    ts.tv_sec = time(NULL); // mingw-w64 over msvcrt has no timespec_get; clock() still differs
#endif
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)(uintptr_t)salt;
    x ^= (uint64_t)clock() << 32;
    uint64_t seed = splitmix64(&x);
    return seed ? seed : 1; // 0 would mean "pick one" when passed back
}

vki_status vki_sampler_create(const vki_sampler_desc *desc, uint32_t n_vocab, vki_sampler **out,
                              char *out_error, size_t error_size)
{
    if (out_error && error_size) out_error[0] = 0;
    if (!out) return VKI_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    VKI_TRY(vki_sampler_check_desc(desc, n_vocab, out_error, error_size));
    vki_sampler_desc d = desc ? *desc : (vki_sampler_desc){0};
    vki_allocator a = d.allocator ? *d.allocator : (vki_allocator){0};
    vki_sampler *s = s_alloc(&a, 1, sizeof *s);
    if (!s) {
        if (out_error && error_size) snprintf(out_error, error_size, "sampler: out of host memory");
        return VKI_ERROR_OUT_OF_HOST_MEMORY;
    }
    *s = (vki_sampler){.alloc = a, .n_vocab = n_vocab};

    s->greedy = d.temperature == VKI_SAMPLER_GREEDY;
    s->temperature = d.temperature > 0 ? d.temperature : DEFAULT_TEMPERATURE;
    s->inv_temperature = 1.0 / s->temperature; // finite in double for any float > 0
    int32_t k = d.top_k == 0 ? DEFAULT_TOP_K : d.top_k;
    s->top_k = k > 0 && (uint32_t)k < n_vocab ? (uint32_t)k : 0;
    float p = d.top_p == 0 ? DEFAULT_TOP_P : d.top_p;
    s->top_p = p > 0 ? p : 1.0;
    float mp = d.min_p == 0 ? DEFAULT_MIN_P : d.min_p;
    s->min_p = mp > 0 ? mp : 0.0;
    s->log_min_p = s->min_p > 0 ? log(s->min_p) : 0.0;
    float pen = d.repeat_penalty == 0 ? DEFAULT_REPEAT_PENALTY : d.repeat_penalty;
    s->penalty = pen > 0 ? pen : 1.0f;
    uint32_t last_n = d.repeat_last_n ? d.repeat_last_n : DEFAULT_REPEAT_LAST_N;
    s->presence = d.presence_penalty;
    s->frequency = d.frequency_penalty;
    bool any_penalty = s->penalty != 1.0f || s->presence != 0 || s->frequency != 0;
    s->window_cap = any_penalty ? last_n : 0;

    s->settings = (vki_sampler_desc){
        .temperature = s->greedy ? VKI_SAMPLER_GREEDY : (float)s->temperature,
        .top_k = s->top_k ? (int32_t)s->top_k : VKI_SAMPLER_OFF,
        .top_p = s->top_p < 1.0 ? (float)s->top_p : VKI_SAMPLER_OFF,
        .min_p = s->min_p > 0 ? (float)s->min_p : VKI_SAMPLER_OFF,
        .repeat_penalty = s->penalty != 1.0f ? s->penalty : VKI_SAMPLER_OFF,
        .repeat_last_n = last_n,
        .presence_penalty = s->presence,
        .frequency_penalty = s->frequency,
        .seed = d.seed ? d.seed : fresh_seed(s),
    };
    seed_rng(s->rng, s->settings.seed);

    s->work = s_alloc(&a, n_vocab, sizeof *s->work);
    s->cand = s_alloc(&a, n_vocab, sizeof *s->cand);
    s->weight = s_alloc(&a, n_vocab, sizeof *s->weight);
    s->window = s_alloc(&a, s->window_cap, sizeof *s->window);
    if (!s->work || !s->cand || !s->weight || !s->window) goto fail;
    *out = s;
    return VKI_OK;

fail:
    vki_sampler_destroy(s);
    return VKI_ERROR_OUT_OF_HOST_MEMORY;
}

void vki_sampler_destroy(vki_sampler *s)
{
    if (!s) return;
    vki_allocator a = s->alloc;
    s_free(&a, s->work);
    s_free(&a, s->cand);
    s_free(&a, s->weight);
    s_free(&a, s->window);
    s_free(&a, s);
}

/* Copies the logits into s->work, sanitised and penalised. Returns the best token (largest,
 * smallest id on ties), or -1 when none is finite. */
static int32_t prepare(vki_sampler *s, const float *logits)
{
    float *w = s->work, best_x = -INFINITY;
    int32_t best = -1;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        w[i] = sanitise(logits[i]);
        if (w[i] > best_x) {
            best_x = w[i];
            best = (int32_t)i;
        }
    }
    // The presence and frequency penalties need each token's count in the window: s->weight is
    // free until the chain's later stages, so it counts (only the window's entries are touched).
    bool counted = s->presence != 0 || s->frequency != 0;
    if (counted) {
        for (uint32_t j = 0; j < s->window_len; j++) s->weight[s->window[j]] = 0;
        for (uint32_t j = 0; j < s->window_len; j++) s->weight[s->window[j]] += 1;
    }
    // Recomputed from the caller's logit, so a token seen twice in the window is penalised once
    // (by the repetition and presence penalties; by the frequency penalty once per occurrence,
    // through its count). llama.cpp's order: divide or multiply, then subtract
    // frequency * count + presence.
    bool best_changed = false;
    for (uint32_t j = 0; j < s->window_len; j++) {
        int32_t t = s->window[j];
        float x = sanitise(logits[t]);
        x = x > 0 ? x / s->penalty : x * s->penalty;
        if (counted) // -inf stays -inf; the float conversion of a huge result is inf, then FLT_MAX
            x = (float)((double)x - ((double)s->frequency * s->weight[t] + (double)s->presence));
        w[t] = sanitise(x);
        best_changed |= t == best;
    }
    if (best_changed) { // the best lost (or, with a penalty < 1, gained): look again
        best = -1;
        best_x = -INFINITY;
        for (uint32_t i = 0; i < s->n_vocab; i++) {
            if (w[i] > best_x) {
                best_x = w[i];
                best = (int32_t)i;
            }
        }
    } else {
        for (uint32_t j = 0; j < s->window_len; j++) { // a penalty < 1 raises the others
            cand c = {w[s->window[j]], s->window[j]};
            if (c.logit != -INFINITY && (best < 0 || better(c, (cand){best_x, best}))) {
                best = c.id;
                best_x = c.logit;
            }
        }
    }
    return best;
}

vki_status vki_sampler_sample(vki_sampler *s, const float *logits, int32_t *out_token)
{
    if (!s) return VKI_ERROR_INVALID_ARGUMENT;
    if (!logits || !out_token)
        return fail(s, "vki_sampler_sample: logits and out_token must not be NULL");
    int32_t best = prepare(s, logits);
    if (best < 0)
        return fail(s, "vki_sampler_sample: none of the %u logits is finite (all NaN or -inf): "
                    "the model's output is broken", s->n_vocab);
    if (s->greedy) {
        *out_token = best;
        return VKI_OK;
    }
    double max = s->work[best];
    uint32_t n;
    if (s->top_k) {
        n = select_top_k(s, s->top_k);
        if (s->top_p < 1.0 || s->min_p > 0) n = cut_sorted(s, n);
    } else if (s->top_p < 1.0) {
        n = nucleus_unranked(s, max);
    } else if (s->min_p > 0) {
        n = min_p_unranked(s, max);
    } else {
        n = 0;
        for (uint32_t i = 0; i < s->n_vocab; i++)
            if (s->work[i] != -INFINITY) s->cand[n++] = (cand){s->work[i], (int32_t)i};
    }
    *out_token = draw(s, n, max);
    return VKI_OK;
}

void vki_sampler_accept(vki_sampler *s, int32_t token)
{
    if (!s || s->window_cap == 0 || token < 0 || (uint32_t)token >= s->n_vocab) return;
    s->window[s->window_next] = token;
    s->window_next = (s->window_next + 1) % s->window_cap;
    if (s->window_len < s->window_cap) s->window_len++;
}

void vki_sampler_reset(vki_sampler *s)
{
    if (!s) return;
    s->window_len = 0;
    s->window_next = 0;
}

uint64_t vki_sampler_seed(const vki_sampler *s) { return s ? s->settings.seed : 0; }

bool vki_sampler_is_greedy(const vki_sampler *s)
{
    return s && s->greedy && s->penalty == 1.0f && s->presence == 0 && s->frequency == 0;
}

const vki_sampler_desc *vki_sampler_settings(const vki_sampler *s)
{
    return s ? &s->settings : NULL;
}

const char *vki_sampler_last_error(const vki_sampler *s) { return s ? s->last_error : ""; }
