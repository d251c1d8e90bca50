// Token sampler: device-free. Every random test uses a fixed seed, so it either always passes or
// always fails; tolerances are several standard deviations wide.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "vkinfer_models.h"

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Sampler {
    vki_sampler *s = nullptr;
    Sampler(const vki_sampler_desc &d, uint32_t n_vocab)
    {
        EXPECT_EQ(vki_sampler_create(&d, n_vocab, &s, nullptr, 0), VKI_OK);
    }
    ~Sampler() { vki_sampler_destroy(s); }
    int32_t sample(const std::vector<float> &logits)
    {
        int32_t tok = -1;
        EXPECT_EQ(vki_sampler_sample(s, logits.data(), &tok), VKI_OK) << vki_sampler_last_error(s);
        return tok;
    }
    operator vki_sampler *() { return s; }
};

// Everything off but the temperature: a plain softmax draw.
vki_sampler_desc plain(float temperature, uint64_t seed)
{
    vki_sampler_desc d = {};
    d.temperature = temperature;
    d.top_k = VKI_SAMPLER_OFF;
    d.top_p = VKI_SAMPLER_OFF;
    d.min_p = VKI_SAMPLER_OFF;
    d.repeat_penalty = VKI_SAMPLER_OFF;
    d.seed = seed;
    return d;
}

// Test data generator (not the sampler's): a fixed LCG, so the data is the same on every run.
struct TestRng {
    uint64_t x;
    explicit TestRng(uint64_t seed) : x(seed) {}
    double uniform()
    {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        return (double)(x >> 11) * 0x1.0p-53;
    }
    double normal()
    {
        double r = std::sqrt(-2 * std::log(1 - uniform()));
        return r * std::cos(6.283185307179586 * uniform());
    }
};

// A language-model-like distribution: noise around 0 and a few peaked tokens.
std::vector<float> lm_logits(uint32_t n, uint64_t seed)
{
    TestRng r(seed);
    std::vector<float> l(n);
    for (auto &v : l) v = (float)(2.0 * r.normal());
    for (int i = 0; i < 8; i++) l[(size_t)(r.uniform() * n)] = (float)(12 + 2 * i + r.uniform());
    return l;
}

std::vector<double> softmax(const std::vector<float> &l, double t)
{
    double m = *std::max_element(l.begin(), l.end()), sum = 0;
    std::vector<double> p(l.size());
    for (size_t i = 0; i < l.size(); i++) sum += p[i] = std::exp((l[i] - m) / t);
    for (auto &v : p) v /= sum;
    return p;
}

int32_t argmax(const std::vector<float> &l)
{
    return (int32_t)(std::max_element(l.begin(), l.end()) - l.begin()); // first of equal maxima
}

// The set llama.cpp's chain keeps (top-k, top-p, min-p), by a full sort: the reference for the
// sampler's partial selection and thresholds.
std::set<int32_t> reference_set(const std::vector<float> &l, int top_k, double top_p, double min_p)
{
    std::vector<int32_t> ids(l.size());
    for (size_t i = 0; i < l.size(); i++) ids[i] = (int32_t)i;
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    size_t n = top_k > 0 ? std::min<size_t>(top_k, ids.size()) : ids.size();
    double m = l[ids[0]], total = 0, cum = 0;
    for (size_t i = 0; i < n; i++) total += std::exp(l[ids[i]] - m);
    std::set<int32_t> keep;
    for (size_t i = 0; i < n; i++) {
        double w = std::exp(l[ids[i]] - m);
        if (w < min_p) break;
        keep.insert(ids[i]);
        cum += w;
        if (top_p < 1 && cum >= top_p * total) break;
    }
    return keep;
}

// Draws `n` tokens and returns their frequencies.
std::vector<double> frequencies(Sampler &s, const std::vector<float> &l, int n)
{
    std::vector<double> f(l.size());
    for (int i = 0; i < n; i++) {
        int32_t t = s.sample(l);
        EXPECT_GE(t, 0);
        EXPECT_LT(t, (int32_t)l.size());
        if (t >= 0 && t < (int32_t)l.size()) f[t] += 1.0 / n;
    }
    return f;
}

// Each frequency within 5 standard deviations of its expected probability.
void expect_matches(const std::vector<double> &f, const std::vector<double> &p, int n)
{
    ASSERT_EQ(f.size(), p.size());
    for (size_t i = 0; i < p.size(); i++) {
        double sigma = std::sqrt(p[i] * (1 - p[i]) / n);
        EXPECT_NEAR(f[i], p[i], 5 * sigma + 1e-12) << "token " << i;
    }
}

TEST(Sampler, GreedyIsArgmaxWithTiesToSmallestId)
{
    vki_sampler_desc d = {};
    d.temperature = VKI_SAMPLER_GREEDY;
    Sampler s(d, 5);
    EXPECT_EQ(s.sample({1, 3, 3, 2, -5}), 1);
    EXPECT_EQ(s.sample({0, 0, 0, 0, 0}), 0);
    EXPECT_EQ(s.sample({-7, -3, -9, -3, -3}), 1);
    EXPECT_EQ(s.sample({1, 2, 3, 4, 5}), 4);

    std::vector<float> l = lm_logits(50000, 1);
    Sampler big(d, (uint32_t)l.size());
    EXPECT_EQ(big.sample(l), argmax(l));
}

TEST(Sampler, TopK1IsGreedyAtAnyTemperature)
{
    std::vector<float> l = lm_logits(3000, 2);
    l[2999] = l[argmax(l)]; // a tie with a larger id must still lose
    for (float t : {0.05f, 0.8f, 3.0f, 1000.0f}) {
        vki_sampler_desc d = plain(t, 99);
        d.top_k = 1;
        d.top_p = 0.5f;
        Sampler s(d, (uint32_t)l.size());
        for (int i = 0; i < 50; i++) ASSERT_EQ(s.sample(l), argmax(l)) << "temperature " << t;
    }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferent)
{
    std::vector<float> l = lm_logits(4000, 3);
    for (float &v : l) v *= 0.3f; // flat enough that draws vary
    auto run = [&](uint64_t seed, vki_sampler_desc d) {
        d.seed = seed;
        Sampler s(d, (uint32_t)l.size());
        std::vector<int32_t> out;
        for (int i = 0; i < 200; i++) {
            out.push_back(s.sample(l));
            vki_sampler_accept(s, out.back()); // the penalty window takes part too
        }
        return out;
    };
    for (vki_sampler_desc d : {vki_sampler_desc{}, plain(1.5f, 0)}) {
        std::vector<int32_t> a = run(7, d), b = run(7, d), c = run(8, d);
        EXPECT_EQ(a, b);
        EXPECT_NE(a, c);
        EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 4u) << "draws should vary";
    }

    // Seed 0 picks a fresh seed, reported back, which replays the run.
    Sampler fresh(vki_sampler_desc{}, (uint32_t)l.size());
    uint64_t seed = vki_sampler_seed(fresh);
    EXPECT_NE(seed, 0u);
    EXPECT_EQ(vki_sampler_settings(fresh)->seed, seed);
    std::vector<int32_t> first;
    for (int i = 0; i < 100; i++) first.push_back(fresh.sample(l));
    vki_sampler_desc replay = {};
    replay.seed = seed;
    Sampler again(replay, (uint32_t)l.size());
    for (int i = 0; i < 100; i++) ASSERT_EQ(again.sample(l), first[i]) << "draw " << i;
}

// A small-vocabulary draw against the exact distribution each path should produce.
TEST(Sampler, FrequenciesMatchSoftmax)
{
    const int n = 20000;
    const std::vector<float> l = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.5f};

    {   // everything off: softmax(l / T)
        Sampler s(plain(0.7f, 11), (uint32_t)l.size());
        expect_matches(frequencies(s, l, n), softmax(l, 0.7), n);
    }
    {   // top-k 3 (heap path): softmax over tokens 2, 5, 1 only
        vki_sampler_desc d = plain(1.3f, 12);
        d.top_k = 3;
        Sampler s(d, (uint32_t)l.size());
        std::vector<float> only = l;
        for (int i : {0, 3, 4}) only[i] = -kInf;
        expect_matches(frequencies(s, l, n), softmax(only, 1.3), n);
    }
    {   // min-p 0.3 (threshold path): keeps p_i >= 0.3 p_max, i.e. logit >= 2 + ln 0.3 = 0.796
        vki_sampler_desc d = plain(1.0f, 13);
        d.min_p = 0.3f;
        Sampler s(d, (uint32_t)l.size());
        std::vector<float> only = l;
        for (int i : {0, 3, 4}) only[i] = -kInf;
        expect_matches(frequencies(s, l, n), softmax(only, 1.0), n);
    }
    {   // top-p 0.7 (nucleus path): p = .39 (2), .24 (5), .14 (1) ... cumulative .77 after three
        vki_sampler_desc d = plain(2.0f, 14);
        d.top_p = 0.7f;
        Sampler s(d, (uint32_t)l.size());
        std::vector<float> only = l;
        for (int i : {0, 3, 4}) only[i] = -kInf;
        expect_matches(frequencies(s, l, n), softmax(only, 2.0), n);
    }
}

TEST(Sampler, TopPAndMinPExcludeExactlyTheRightTokens)
{
    // Probabilities .5 .3 .15 .05: top-p .75 keeps {0, 1} (.8 reached at token 1).
    std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    vki_sampler_desc d = plain(1.0f, 21);
    d.top_p = 0.75f;
    {
        Sampler s(d, 4);
        std::vector<double> f = frequencies(s, l, 5000);
        EXPECT_GT(f[0], 0.5);
        EXPECT_GT(f[1], 0.3);
        EXPECT_EQ(f[2], 0.0);
        EXPECT_EQ(f[3], 0.0);
    }
    {   // min-p .5: threshold .25 keeps {0, 1}; min-p .2 keeps {0, 1, 2}
        d = plain(1.0f, 22);
        d.min_p = 0.5f;
        Sampler s(d, 4);
        std::vector<double> f = frequencies(s, l, 5000);
        EXPECT_GT(f[1], 0.0);
        EXPECT_EQ(f[2], 0.0);
        EXPECT_EQ(f[3], 0.0);
        d.min_p = 0.2f;
        Sampler s2(d, 4);
        f = frequencies(s2, l, 5000);
        EXPECT_GT(f[2], 0.0);
        EXPECT_EQ(f[3], 0.0);
    }
    {   // the same cuts after top-k 3 (the sorted path): min-p .7 keeps {0}; top-p .75 {0, 1}
        d = plain(1.0f, 25);
        d.top_k = 3;
        d.min_p = 0.7f;
        Sampler s(d, 4);
        std::vector<double> f = frequencies(s, l, 2000);
        EXPECT_EQ(f[1] + f[2] + f[3], 0.0);
        d.min_p = VKI_SAMPLER_OFF;
        d.top_p = 0.75f;
        Sampler s2(d, 4);
        f = frequencies(s2, l, 5000);
        EXPECT_GT(f[1], 0.3);
        EXPECT_EQ(f[2] + f[3], 0.0);
    }

    // A realistic vocabulary: every path's set equals a full-sort reference. A high temperature
    // makes the tail of each set likely enough to show up.
    std::vector<float> big = lm_logits(65536, 23);
    struct Case {
        int top_k;
        float top_p, min_p;
    } cases[] = {{40, 0.95f, 0.05f},
                 {40, 0.9f, VKI_SAMPLER_OFF},
                 {VKI_SAMPLER_OFF, 0.95f, VKI_SAMPLER_OFF},
                 {VKI_SAMPLER_OFF, VKI_SAMPLER_OFF, 0.01f},
                 {VKI_SAMPLER_OFF, 0.99f, 0.001f},
                 {1000, VKI_SAMPLER_OFF, VKI_SAMPLER_OFF}};
    for (const Case &c : cases) {
        d = plain(5.0f, 24);
        d.top_k = c.top_k;
        d.top_p = c.top_p;
        d.min_p = c.min_p;
        std::set<int32_t> want = reference_set(big, c.top_k, c.top_p > 0 ? c.top_p : 1.0,
                                               c.min_p > 0 ? c.min_p : 0.0);
        Sampler s(d, (uint32_t)big.size());
        std::set<int32_t> seen;
        for (int i = 0; i < 300; i++) {
            int32_t t = s.sample(big);
            ASSERT_TRUE(want.count(t)) << "token " << t << " outside the set (top_k " << c.top_k
                                       << ", top_p " << c.top_p << ", min_p " << c.min_p << ")";
            seen.insert(t);
        }
        if (want.size() > 1) {
            EXPECT_GT(seen.size(), 1u);
        }
    }

    // Nearly flat logits: the nucleus is thousands of tokens and ends inside a crowded bin.
    std::vector<float> flat = big;
    for (float &v : flat) v *= 0.1f;
    d = plain(1.0f, 25);
    d.top_p = 0.3f;
    std::set<int32_t> want = reference_set(flat, 0, 0.3, 0.0);
    EXPECT_GT(want.size(), 1000u);
    Sampler s(d, (uint32_t)flat.size());
    for (int i = 0; i < 300; i++) {
        int32_t t = s.sample(flat);
        ASSERT_TRUE(want.count(t)) << "token " << t << " outside the flat nucleus";
    }
}

// Ties at the edge of top-k and top-p go to the smallest ids, so the set is exact: three tokens
// far ahead and 5000 tied ones; top-k 10 or a top-p that reaches into the tied ones by 6.5
// tokens' worth keeps the three and the tied ids 0, 1, 2, 4, 5, 6, 7. A huge temperature makes
// the draw nearly uniform over whatever was kept.
TEST(Sampler, TiesAtTheCutGoToTheSmallestIds)
{
    std::vector<float> l(5003, 0.0f);
    for (int id : {3, 2500, 4000}) l[id] = 10.0f;
    const std::set<int32_t> want = {0, 1, 2, 3, 4, 5, 6, 7, 2500, 4000};
    double w0 = std::exp(-10.0), total = 3 + 5000 * w0;
    vki_sampler_desc by_k = plain(1e6f, 41), by_p = plain(1e6f, 42);
    by_k.top_k = 10;
    by_p.top_p = (float)((3 + 6.5 * w0) / total);
    for (const vki_sampler_desc &d : {by_k, by_p}) {
        Sampler s(d, (uint32_t)l.size());
        std::set<int32_t> seen;
        for (int i = 0; i < 1000; i++) seen.insert(s.sample(l));
        EXPECT_EQ(seen, want) << "top_k " << d.top_k << ", top_p " << d.top_p;
    }
}

TEST(Sampler, RepetitionPenaltyChangesTheGreedyChoice)
{
    vki_sampler_desc d = {};
    d.temperature = VKI_SAMPLER_GREEDY;
    d.repeat_penalty = 1.1f;
    d.repeat_last_n = 2;
    const std::vector<float> pos = {2.0f, 1.9f, 1.7f, -1.0f};
    {
        Sampler s(d, 4);
        EXPECT_EQ(s.sample(pos), 0);
        vki_sampler_accept(s, 0); // 2.0 / 1.1 = 1.82 < 1.9
        EXPECT_EQ(s.sample(pos), 1);
        vki_sampler_accept(s, 3); // the window holds 2: {0, 3}
        EXPECT_EQ(s.sample(pos), 1);
        vki_sampler_accept(s, 3); // {3, 3}: token 0 left the window
        EXPECT_EQ(s.sample(pos), 0);
        vki_sampler_accept(s, 0);
        vki_sampler_reset(s); // forgets the window
        EXPECT_EQ(s.sample(pos), 0);
        vki_sampler_accept(s, -1); // out of the vocabulary: ignored
        vki_sampler_accept(s, 4);
        EXPECT_EQ(s.sample(pos), 0);
    }
    {   // a token twice in the window is penalised once: 2.0 / 1.1 = 1.82 > 1.7 (not 1.65)
        Sampler s(d, 2);
        vki_sampler_accept(s, 0);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample({2.0f, 1.7f}), 0);
    }
    {   // a negative logit is multiplied: -1.0 * 1.1 = -1.1 < -1.05
        Sampler s(d, 2);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample({-1.0f, -1.05f}), 1);
    }
    {   // penalty off
        d.repeat_penalty = VKI_SAMPLER_OFF;
        Sampler s(d, 4);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample(pos), 0);
    }
}

// OpenAI's presence and frequency penalties (llama.cpp's definition): a token seen c times in
// the window loses frequency * c + presence * (c > 0), after the repetition penalty. The logits
// are chosen so every expected value below is exact in binary floating point.
TEST(Sampler, PresenceAndFrequencyPenaltiesFlipTheGreedyChoiceAtTheGap)
{
    const std::vector<float> l = {1.0f, 0.5f, -3.0f};
    auto greedy = [](float presence, float frequency) {
        vki_sampler_desc d = {};
        d.temperature = VKI_SAMPLER_GREEDY;
        d.presence_penalty = presence;
        d.frequency_penalty = frequency;
        d.repeat_last_n = 4;
        return d;
    };
    {   // presence: the gap is 0.5; 1 - 0.25 > 0.5, 1 - 0.5 ties (smallest id), 1 - 0.75 < 0.5
        for (auto [p, want] : {std::pair{0.25f, 0}, {0.5f, 0}, {0.75f, 1}}) {
            Sampler s(greedy(p, 0), 3);
            EXPECT_EQ(s.sample(l), 0) << p; // nothing accepted yet: no penalty
            vki_sampler_accept(s, 0);
            vki_sampler_accept(s, 0);
            vki_sampler_accept(s, 0); // three times, penalised once
            EXPECT_EQ(s.sample(l), want) << p;
        }
    }
    {   // frequency, three occurrences: 1 - 3 * 0.125 = 0.625 > 0.5; 1 - 3 * 0.25 = 0.25 < 0.5
        for (auto [f, want] : {std::pair{0.125f, 0}, {0.25f, 1}}) {
            Sampler s(greedy(0, f), 3);
            for (int i = 0; i < 3; i++) vki_sampler_accept(s, 0);
            EXPECT_EQ(s.sample(l), want) << f;
        }
        // two occurrences: 1 - 2 * 0.25 = 0.5 ties and stays
        Sampler s(greedy(0, 0.25f), 3);
        vki_sampler_accept(s, 0);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample(l), 0);
        vki_sampler_accept(s, 2); // another token in the window changes nothing for token 0
        EXPECT_EQ(s.sample(l), 0);
        vki_sampler_accept(s, 0); // a third: 0.25
        EXPECT_EQ(s.sample(l), 1);
    }
    {   // both: 1 - (0.125 * 2 + 0.125) = 0.625 > 0.5; 1 - (0.125 * 2 + 0.375) = 0.375 < 0.5
        Sampler a(greedy(0.125f, 0.125f), 3), b(greedy(0.375f, 0.125f), 3);
        for (int i = 0; i < 2; i++) vki_sampler_accept(a, 0), vki_sampler_accept(b, 0);
        EXPECT_EQ(a.sample(l), 0);
        EXPECT_EQ(b.sample(l), 1);
    }
    {   // negative values reward repeats: token 1 at 0.5 + 0.75 = 1.25 > 1
        Sampler s(greedy(-0.75f, 0), 3);
        vki_sampler_accept(s, 1);
        EXPECT_EQ(s.sample(l), 1);
    }
    {   // negative logits are subtracted from too: -1 - 0.5 = -1.5 < -1.25
        Sampler s(greedy(0.5f, 0), 2);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample({-1.0f, -1.25f}), 1);
    }
    {   // the window: repeat_last_n 2, tokens {0, 1, 1} leave only 1s, penalised to 0.5 - 2 * 2
        vki_sampler_desc d = greedy(0, 2.0f);
        d.repeat_last_n = 2;
        Sampler s(d, 3);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample({1.0f, 0.5f, 0.0f}), 1); // 1 - 2 = -1 < 0.5
        vki_sampler_accept(s, 1);
        vki_sampler_accept(s, 1);
        EXPECT_EQ(s.sample({1.0f, 0.5f, 0.0f}), 0);
        vki_sampler_reset(s);
        EXPECT_EQ(s.sample({0.5f, 1.0f, 0.0f}), 1);
    }
    {   // llama.cpp's order: repetition penalty first, then the subtraction. 2 / 2 - 0.125 =
        // 0.875 < 0.9; the other order would give (2 - 0.125) / 2 = 0.9375 > 0.9
        vki_sampler_desc d = greedy(0.125f, 0);
        d.repeat_penalty = 2.0f;
        Sampler s(d, 2);
        vki_sampler_accept(s, 0);
        EXPECT_EQ(s.sample({2.0f, 0.9f}), 1);
        d.presence_penalty = 0;
        Sampler r(d, 2); // the repetition penalty alone: 1.0 > 0.9
        vki_sampler_accept(r, 0);
        EXPECT_EQ(r.sample({2.0f, 0.9f}), 0);
    }
}

TEST(Sampler, FrequencyPenaltyShiftsTheDistribution)
{
    // Three equal logits, token 0 twice in the window with frequency 0.5: its logit is -1, so
    // p0 = e^-1 / (e^-1 + 2) = 0.1554 and the others 0.4223 each.
    const int n = 20000;
    vki_sampler_desc d = plain(1.0f, 21);
    d.frequency_penalty = 0.5f;
    Sampler s(d, 3);
    vki_sampler_accept(s, 0);
    vki_sampler_accept(s, 0);
    EXPECT_FLOAT_EQ(vki_sampler_settings(s)->frequency_penalty, 0.5f);
    EXPECT_FLOAT_EQ(vki_sampler_settings(s)->presence_penalty, 0.0f);
    const std::vector<float> l = {0.0f, 0.0f, 0.0f};
    expect_matches(frequencies(s, l, n), softmax({-1.0f, 0.0f, 0.0f}, 1.0), n);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesAreValidated)
{
    for (float bad : {2.5f, -2.01f, kNaN, kInf, -kInf}) {
        for (int which = 0; which < 2; which++) {
            vki_sampler_desc d = {};
            (which ? d.frequency_penalty : d.presence_penalty) = bad;
            const char *field = which ? "frequency_penalty" : "presence_penalty";
            char err[256] = "";
            EXPECT_EQ(vki_sampler_check_desc(&d, 10, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT)
                << field << " " << bad;
            EXPECT_NE(std::string(err).find(field), std::string::npos) << err;
            vki_sampler *s = nullptr;
            EXPECT_EQ(vki_sampler_create(&d, 10, &s, nullptr, 0), VKI_ERROR_INVALID_ARGUMENT);
            EXPECT_EQ(s, nullptr);
        }
    }
    for (float ok : {-2.0f, 2.0f, 0.0f, 1e-30f}) {
        vki_sampler_desc d = {};
        d.presence_penalty = ok;
        d.frequency_penalty = -ok;
        EXPECT_EQ(vki_sampler_check_desc(&d, 10, nullptr, 0), VKI_OK) << ok;
    }
    {   // a huge logit stays finite when a negative penalty pushes it up
        vki_sampler_desc d = plain(1.0f, 4);
        d.frequency_penalty = -2.0f;
        d.presence_penalty = -2.0f;
        Sampler s(d, 2);
        for (int i = 0; i < 64; i++) vki_sampler_accept(s, 0);
        for (int i = 0; i < 50; i++) EXPECT_EQ(s.sample({FLT_MAX, 0.0f}), 0);
        EXPECT_EQ(s.sample({-kInf, 0.0f}), 1); // and -inf stays -inf
    }
}

TEST(Sampler, HostileLogitsGiveAValidTokenOrAClearError)
{
    for (vki_sampler_desc d : {vki_sampler_desc{}, plain(1.0f, 5), plain(VKI_SAMPLER_GREEDY, 5)}) {
        d.seed = 5;
        Sampler s(d, 6);
        int32_t tok = 1234;
        for (float bad : {-kInf, kNaN}) {
            std::vector<float> l(6, bad);
            EXPECT_EQ(vki_sampler_sample(s, l.data(), &tok), VKI_ERROR_INVALID_ARGUMENT);
            EXPECT_EQ(tok, 1234);
            EXPECT_NE(std::string(vki_sampler_last_error(s)).find("finite"), std::string::npos)
                << vki_sampler_last_error(s);
        }
        EXPECT_EQ(vki_sampler_sample(s, nullptr, &tok), VKI_ERROR_INVALID_ARGUMENT);
        EXPECT_EQ(vki_sampler_sample(s, std::vector<float>(6).data(), nullptr),
                  VKI_ERROR_INVALID_ARGUMENT);

        // NaN and -inf are never drawn; +inf wins over everything finite.
        std::vector<float> mixed = {kNaN, -kInf, 0.5f, kNaN, 0.25f, -kInf};
        vki_sampler_accept(s, 2); // the penalty meets the sanitised values too
        vki_sampler_accept(s, 3);
        for (int i = 0; i < 200; i++) {
            int32_t t = s.sample(mixed);
            ASSERT_TRUE(t == 2 || t == 4) << t;
        }
        std::vector<float> infs = {1.0f, kInf, FLT_MAX, kInf, -FLT_MAX, kNaN};
        for (int i = 0; i < 200; i++) {
            int32_t t = s.sample(infs);
            ASSERT_TRUE(t == 1 || t == 2 || t == 3) << t;
        }
    }
    vki_sampler_desc g = {};
    g.temperature = VKI_SAMPLER_GREEDY;
    Sampler s(g, 4);
    EXPECT_EQ(s.sample({1.0f, kInf, kNaN, kInf}), 1);
    EXPECT_EQ(s.sample({kNaN, -kInf, -FLT_MAX, kNaN}), 2);
}

TEST(Sampler, DescriptionIsValidatedAndDefaultsResolved)
{
    struct Bad {
        const char *field;
        vki_sampler_desc d;
    };
    auto with = [](auto set) {
        vki_sampler_desc d = {};
        set(d);
        return d;
    };
    const Bad bad[] = {
        {"temperature", with([](vki_sampler_desc &d) { d.temperature = kNaN; })},
        {"temperature", with([](vki_sampler_desc &d) { d.temperature = -0.5f; })},
        {"temperature", with([](vki_sampler_desc &d) { d.temperature = kInf; })},
        {"top_k", with([](vki_sampler_desc &d) { d.top_k = -5; })},
        {"top_p", with([](vki_sampler_desc &d) { d.top_p = 1.5f; })},
        {"top_p", with([](vki_sampler_desc &d) { d.top_p = -0.2f; })},
        {"top_p", with([](vki_sampler_desc &d) { d.top_p = kNaN; })},
        {"min_p", with([](vki_sampler_desc &d) { d.min_p = 2.0f; })},
        {"min_p", with([](vki_sampler_desc &d) { d.min_p = kNaN; })},
        {"repeat_penalty", with([](vki_sampler_desc &d) { d.repeat_penalty = kNaN; })},
        {"repeat_penalty", with([](vki_sampler_desc &d) { d.repeat_penalty = -3.0f; })},
        {"repeat_last_n", with([](vki_sampler_desc &d) { d.repeat_last_n = 1u << 30; })},
    };
    for (const Bad &b : bad) {
        char err[256] = "";
        EXPECT_EQ(vki_sampler_check_desc(&b.d, 100, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT)
            << b.field;
        EXPECT_NE(std::string(err).find(b.field), std::string::npos) << err;
        vki_sampler *s = reinterpret_cast<vki_sampler *>(1);
        char err2[256] = "";
        EXPECT_EQ(vki_sampler_create(&b.d, 100, &s, err2, sizeof err2), VKI_ERROR_INVALID_ARGUMENT);
        EXPECT_EQ(s, nullptr);
        EXPECT_STREQ(err2, err); // create says what check_desc says
    }
    char err[256];
    EXPECT_EQ(vki_sampler_check_desc(nullptr, 0, err, sizeof err), VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(err).find("n_vocab"), std::string::npos) << err;
    EXPECT_EQ(vki_sampler_check_desc(nullptr, 100, err, sizeof err), VKI_OK);
    EXPECT_STREQ(err, "");

    // NULL desc: llama.cpp's defaults.
    vki_sampler *s = nullptr;
    ASSERT_EQ(vki_sampler_create(nullptr, 100, &s, nullptr, 0), VKI_OK);
    const vki_sampler_desc *r = vki_sampler_settings(s);
    EXPECT_FLOAT_EQ(r->temperature, 0.8f);
    EXPECT_EQ(r->top_k, 40);
    EXPECT_FLOAT_EQ(r->top_p, 0.95f);
    EXPECT_FLOAT_EQ(r->min_p, 0.05f);
    EXPECT_FLOAT_EQ(r->repeat_penalty, VKI_SAMPLER_OFF); // default 1: off, as llama.cpp
    EXPECT_EQ(r->repeat_last_n, 64u);
    EXPECT_NE(r->seed, 0u);
    EXPECT_STREQ(vki_sampler_last_error(s), "");
    vki_sampler_destroy(s);

    // Stages off, by VKI_SAMPLER_OFF or their neutral values, all read back as off.
    vki_sampler_desc off = {};
    off.temperature = VKI_SAMPLER_GREEDY;
    off.top_k = 100; // >= n_vocab
    off.top_p = 1.0f;
    off.min_p = VKI_SAMPLER_OFF;
    off.repeat_penalty = 1.0f;
    off.seed = 3;
    ASSERT_EQ(vki_sampler_create(&off, 100, &s, nullptr, 0), VKI_OK);
    r = vki_sampler_settings(s);
    EXPECT_EQ(r->temperature, VKI_SAMPLER_GREEDY);
    EXPECT_EQ(r->top_k, VKI_SAMPLER_OFF);
    EXPECT_EQ(r->top_p, VKI_SAMPLER_OFF);
    EXPECT_EQ(r->min_p, VKI_SAMPLER_OFF);
    EXPECT_EQ(r->repeat_penalty, VKI_SAMPLER_OFF);
    EXPECT_EQ(vki_sampler_seed(s), 3u);
    vki_sampler_destroy(s);
    vki_sampler_destroy(nullptr);
}

struct CountingAllocator {
    int live = 0, total = 0;
    static void *alloc(void *user, size_t size)
    {
        auto *c = static_cast<CountingAllocator *>(user);
        c->live++;
        c->total++;
        return malloc(size);
    }
    static void release(void *user, void *ptr)
    {
        auto *c = static_cast<CountingAllocator *>(user);
        if (ptr) c->live--;
        free(ptr);
    }
};

TEST(Sampler, AllHostMemoryGoesThroughTheAllocatorAndNoneWhileSampling)
{
    CountingAllocator c;
    vki_allocator a = {CountingAllocator::alloc, CountingAllocator::release, &c};
    std::vector<float> l = lm_logits(10000, 31);
    vki_sampler *s = nullptr;
    vki_sampler_desc d = {};
    d.allocator = &a;
    ASSERT_EQ(vki_sampler_create(&d, (uint32_t)l.size(), &s, nullptr, 0), VKI_OK);
    int after_create = c.total;
    EXPECT_GT(after_create, 0);
    int32_t tok;
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(vki_sampler_sample(s, l.data(), &tok), VKI_OK);
        vki_sampler_accept(s, tok);
    }
    EXPECT_EQ(c.total, after_create);
    vki_sampler_destroy(s);
    EXPECT_EQ(c.live, 0);
}

}  // namespace
