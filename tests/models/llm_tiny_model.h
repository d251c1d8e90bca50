// A tiny random llama-family model for the language-model tests: a GGUF writer for F32 models
// (in memory) and a plain C++ forward pass written from the architectures' definitions
// (RMSNorm, rope on pairs or halves, grouped-query attention with Gemma 3's sliding windows,
// SwiGLU / GeGLU), the independent reference the device's logits are compared with. Shared by
// test_llm.cc and test_llm_embd.cc.
#ifndef VKI_TESTS_LLM_TINY_MODEL_H
#define VKI_TESTS_LLM_TINY_MODEL_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

// ---- A GGUF writer for F32 models (test-only) -------------------------------------------------

struct Bytes {
    std::vector<uint8_t> b;
    void u32(uint32_t v) { for (int i = 0; i < 4; i++) b.push_back(uint8_t(v >> (8 * i))); }
    void u64(uint64_t v) { for (int i = 0; i < 8; i++) b.push_back(uint8_t(v >> (8 * i))); }
    void f32(float f) { uint32_t u; memcpy(&u, &f, 4); u32(u); }
    void str(const std::string &s) { u64(s.size()); b.insert(b.end(), s.begin(), s.end()); }
};

struct TinyModel {
    uint32_t n_vocab = 40, n_embd = 32, n_head = 4, n_head_kv = 2, n_ff = 48, n_layer = 2;
    float eps = 1e-5f, base = 10000.0f;
    std::string arch = "llama";
    bool q8_cache = false; // the reference rounds keys and values as a Q8_0 cache stores them
    uint32_t window = 4;   // gemma3: the sliding window of its local layers (5 of every 6)
    std::map<std::string, uint32_t> meta_u32; // ".block_count" -> value: overrides and additions
    int64_t n_tokens = -1;                    // >= 0: a tokenizer.ggml.tokens of that many
    std::map<std::string, std::vector<float>> w;     // name -> data
    std::map<std::string, std::vector<uint64_t>> ne; // name -> shape
    std::vector<std::string> order;
    uint32_t hd() const { return n_embd / n_head; }

    void add(const std::string &name, std::vector<uint64_t> shape, std::mt19937 &rng, float sd,
             float mean = 0)
    {
        std::normal_distribution<float> d(mean, sd);
        uint64_t n = 1;
        for (uint64_t s : shape) n *= s;
        std::vector<float> v(n);
        for (float &x : v) x = d(rng);
        w[name] = v;
        ne[name] = shape;
        order.push_back(name);
    }

    void init(uint32_t seed)
    {
        std::mt19937 rng(seed);
        add("token_embd.weight", {n_embd, n_vocab}, rng, 1.0f);
        for (uint32_t l = 0; l < n_layer; l++) {
            auto p = "blk." + std::to_string(l) + ".";
            add(p + "attn_norm.weight", {n_embd}, rng, 0.1f, 1.0f);
            add(p + "attn_q.weight", {n_embd, n_embd}, rng, 0.25f);
            add(p + "attn_k.weight", {n_embd, hd() * n_head_kv}, rng, 0.25f);
            add(p + "attn_v.weight", {n_embd, hd() * n_head_kv}, rng, 0.25f);
            add(p + "attn_output.weight", {n_embd, n_embd}, rng, 0.2f);
            add(p + "ffn_norm.weight", {n_embd}, rng, 0.1f, 1.0f);
            add(p + "ffn_gate.weight", {n_embd, n_ff}, rng, 0.2f);
            add(p + "ffn_up.weight", {n_embd, n_ff}, rng, 0.2f);
            add(p + "ffn_down.weight", {n_ff, n_embd}, rng, 0.2f);
            if (arch == "qwen2") {
                add(p + "attn_q.bias", {n_embd}, rng, 0.3f);
                add(p + "attn_k.bias", {hd() * n_head_kv}, rng, 0.3f);
                add(p + "attn_v.bias", {hd() * n_head_kv}, rng, 0.3f);
            }
            if (arch == "gemma3") {
                add(p + "attn_q_norm.weight", {hd()}, rng, 0.1f, 1.0f);
                add(p + "attn_k_norm.weight", {hd()}, rng, 0.1f, 1.0f);
                add(p + "post_attention_norm.weight", {n_embd}, rng, 0.1f, 1.0f);
                add(p + "post_ffw_norm.weight", {n_embd}, rng, 0.1f, 1.0f);
            }
        }
        add("output_norm.weight", {n_embd}, rng, 0.1f, 1.0f);
        if (arch != "gemma3") add("output.weight", {n_embd, n_vocab}, rng, 0.2f); // Gemma ties it
    }

    std::vector<uint8_t> gguf(const std::string &skip = "", const std::string &reshape = "") const
    {
        Bytes h;
        h.u32(0x46554747);
        h.u32(3);
        uint64_t n_t = 0;
        for (auto &n : order) n_t += n != skip;
        h.u64(n_t);
        std::map<std::string, uint32_t> u32 = {
            {".block_count", n_layer},         {".embedding_length", n_embd},
            {".feed_forward_length", n_ff},    {".attention.head_count", n_head},
            {".attention.head_count_kv", n_head_kv}, {".context_length", 64}};
        if (arch == "gemma3") u32[".attention.sliding_window"] = window;
        for (auto &kv : meta_u32) u32[kv.first] = kv.second;
        h.u64(3 + u32.size() + (n_tokens >= 0));
        auto kstr = [&](const std::string &k, const std::string &v) { h.str(k); h.u32(8); h.str(v); };
        auto ku32 = [&](const std::string &k, uint32_t v) { h.str(k); h.u32(4); h.u32(v); };
        auto kf32 = [&](const std::string &k, float v) { h.str(k); h.u32(6); h.f32(v); };
        kstr("general.architecture", arch);
        for (auto &kv : u32) ku32(arch + kv.first, kv.second);
        kf32(arch + ".attention.layer_norm_rms_epsilon", eps);
        kf32(arch + ".rope.freq_base", base);
        if (n_tokens >= 0) {
            h.str("tokenizer.ggml.tokens");
            h.u32(9); // array
            h.u32(8); // of strings
            h.u64(uint64_t(n_tokens));
            for (int64_t i = 0; i < n_tokens; i++) h.str("t" + std::to_string(i));
        }
        uint64_t off = 0;
        std::vector<uint64_t> offs;
        for (auto &n : order) {
            if (n == skip) continue;
            auto shape = ne.at(n);
            if (n == reshape) shape[0] += 1;
            h.str(n);
            h.u32(uint32_t(shape.size()));
            for (uint64_t d : shape) h.u64(d);
            h.u32(0); // F32
            h.u64(off);
            offs.push_back(off);
            uint64_t bytes = 4;
            for (uint64_t d : shape) bytes *= d;
            off = (off + bytes + 31) / 32 * 32;
        }
        while (h.b.size() % 32) h.b.push_back(0);
        size_t data = h.b.size();
        h.b.resize(data + off, 0);
        size_t k = 0;
        for (auto &n : order) {
            if (n == skip) continue;
            const auto &v = w.at(n);
            size_t bytes = n == reshape ? 0 : v.size() * 4; // a misshapen tensor keeps zeros
            memcpy(h.b.data() + data + offs[k++], v.data(), bytes);
        }
        return h.b;
    }

    // ---- The reference forward pass ----

    struct Cache {
        std::vector<std::vector<double>> k, v; // [layer] -> [pos * kv_dim + i]
    };

    static void rmsnorm(std::vector<double> &x, const std::vector<float> &g, double eps)
    {
        double ss = 0;
        for (double v : x) ss += v * v;
        double r = 1.0 / std::sqrt(ss / x.size() + eps);
        for (size_t i = 0; i < x.size(); i++) x[i] *= r * g[i];
    }

    // y[m] = sum_k W[m * K + k] x[k]: ggml's [K, M] layout.
    std::vector<double> matvec(const std::string &name, const std::vector<double> &x) const
    {
        const auto &W = w.at(name);
        size_t K = ne.at(name)[0], M = ne.at(name)[1];
        std::vector<double> y(M, 0.0);
        for (size_t m = 0; m < M; m++)
            for (size_t k = 0; k < K; k++) y[m] += double(W[m * K + k]) * x[k];
        return y;
    }

    // llama rotates pairs (2i, 2i + 1); Qwen2 and Gemma (NeoX) pairs (i, i + hd / 2).
    void rope(std::vector<double> &x, uint32_t heads, uint32_t pos, double b0) const
    {
        bool neox = arch != "llama";
        for (uint32_t h = 0; h < heads; h++)
            for (uint32_t i = 0; i < hd() / 2; i++) {
                double theta = pos * std::pow(b0, -2.0 * i / hd());
                uint32_t ia = h * hd() + (neox ? i : 2 * i), ib = ia + (neox ? hd() / 2 : 1);
                double &a = x[ia], &b = x[ib];
                double c = std::cos(theta), s = std::sin(theta), a0 = a;
                a = a0 * c - b * s;
                b = a0 * s + b * c;
            }
    }

    // x as a Q8_0 cache holds it, written here from GGUF's definition of the format: per block
    // of 32, d = max |x| / 127 stored as an f16, q = round(x / d) (halves away from zero) with
    // the f32 d's reciprocal.
    static void q8_round_trip(std::vector<double> &x)
    {
        for (size_t b = 0; b + 32 <= x.size(); b += 32) {
            float amax = 0;
            for (size_t i = b; i < b + 32; i++) amax = std::max(amax, std::fabs(float(x[i])));
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            int e;
            float m = std::frexp(d, &e); // d to 11 significant bits: an f16 in its normal range
            double dh = std::ldexp(std::nearbyint(std::ldexp(m, 11)), e - 11);
            for (size_t i = b; i < b + 32; i++) x[i] = dh * std::round(float(x[i]) * id);
        }
    }

    // Per head of x: RMSNorm with weights g [hd] (Gemma 3's QK-norm).
    void head_norm(std::vector<double> &x, uint32_t heads, const std::vector<float> &g) const
    {
        for (uint32_t h = 0; h < heads; h++) {
            std::vector<double> part(x.begin() + h * hd(), x.begin() + (h + 1) * hd());
            rmsnorm(part, g, eps);
            std::copy(part.begin(), part.end(), x.begin() + h * hd());
        }
    }

    void add_bias(std::vector<double> &x, const std::string &name) const
    {
        if (!w.count(name)) return;
        for (size_t i = 0; i < x.size(); i++) x[i] += w.at(name)[i];
    }

    // The token's embedding row as the model feeds it (Gemma scales it by sqrt(n_embd)).
    std::vector<double> embedding(int32_t tok) const
    {
        std::vector<double> x(n_embd);
        for (uint32_t i = 0; i < n_embd; i++) x[i] = w.at("token_embd.weight")[tok * n_embd + i];
        if (arch == "gemma3")
            for (double &e : x) e *= std::sqrt(double(float(n_embd))); // Gemma scales the embedding
        return x;
    }

    // Logits after feeding `tok` at position `pos` (the cache holds positions < pos).
    std::vector<double> step(Cache &c, int32_t tok, uint32_t pos) const
    {
        return forward(c, {embedding(tok)}, pos, false);
    }

    // Logits after feeding the rows xs (first-layer inputs, as they are) at positions pos0, pos0
    // + 1, ... (the cache holds positions < pos0). With `bidir` the rows also see each other (a
    // Gemma 3 image, as llama.cpp and transformers mask it: a row sees the span's later rows
    // besides its own causal window; transformers: and(window from the row's own position,
    // or(causal, same image)), llama.cpp: the window from the row's own position over the
    // cache that holds the image). `window_from_last`: the local layers' window counts back from
    // the span's last position instead (what vkinfer did before: a control that the tests tell
    // the two apart).
    std::vector<double> forward(Cache &c, std::vector<std::vector<double>> xs, uint32_t pos0,
                                bool bidir, bool window_from_last = false) const
    {
        if (c.k.empty()) c.k.resize(n_layer), c.v.resize(n_layer);
        uint32_t kvd = hd() * n_head_kv, n = uint32_t(xs.size()), last = pos0 + n - 1;
        bool gemma = arch == "gemma3";
        for (uint32_t l = 0; l < n_layer; l++) {
            auto p = "blk." + std::to_string(l) + ".";
            // Gemma 3: every 6th layer is global; the others see a window, with their own base.
            bool local = gemma && l % 6 != 5;
            double b0 = local ? 10000.0 : double(base);
            std::vector<std::vector<double>> qs(n);
            c.k[l].resize(size_t(pos0) * kvd), c.v[l].resize(size_t(pos0) * kvd);
            for (uint32_t r = 0; r < n; r++) { // every row's keys and values first
                auto h = xs[r];
                rmsnorm(h, w.at(p + "attn_norm.weight"), eps);
                auto q = matvec(p + "attn_q.weight", h), k = matvec(p + "attn_k.weight", h);
                auto v = matvec(p + "attn_v.weight", h);
                add_bias(q, p + "attn_q.bias");
                add_bias(k, p + "attn_k.bias");
                add_bias(v, p + "attn_v.bias");
                if (gemma) {
                    head_norm(q, n_head, w.at(p + "attn_q_norm.weight"));
                    head_norm(k, n_head_kv, w.at(p + "attn_k_norm.weight"));
                }
                rope(q, n_head, pos0 + r, b0);
                rope(k, n_head_kv, pos0 + r, b0);
                if (q8_cache) q8_round_trip(k), q8_round_trip(v);
                c.k[l].insert(c.k[l].end(), k.begin(), k.end());
                c.v[l].insert(c.v[l].end(), v.begin(), v.end());
                qs[r] = q;
            }
            for (uint32_t r = 0; r < n; r++) {
                uint32_t pos = pos0 + r, hi = bidir ? last : pos;
                auto &q = qs[r];
                auto &x = xs[r];
                std::vector<double> att(n_embd, 0.0);
                for (uint32_t hh = 0; hh < n_head; hh++) {
                    uint32_t kh = hh / (n_head / n_head_kv);
                    std::vector<double> s(hi + 1);
                    double mx = -1e300, sum = 0;
                    uint32_t from = window_from_last ? hi : pos; // the window counts back from
                    uint32_t first = local && from >= window ? from - window + 1 : 0;
                    for (uint32_t j = 0; j < first; j++) s[j] = -INFINITY;
                    for (uint32_t j = first; j <= hi; j++) {
                        double d = 0;
                        for (uint32_t e = 0; e < hd(); e++)
                            d += q[hh * hd() + e] * c.k[l][j * kvd + kh * hd() + e];
                        s[j] = d / std::sqrt(double(hd()));
                        mx = std::max(mx, s[j]);
                    }
                    for (double &e : s) sum += (e = std::exp(e - mx));
                    for (uint32_t j = first; j <= hi; j++)
                        for (uint32_t e = 0; e < hd(); e++)
                            att[hh * hd() + e] += s[j] / sum * c.v[l][j * kvd + kh * hd() + e];
                }
                auto o = matvec(p + "attn_output.weight", att);
                if (gemma) rmsnorm(o, w.at(p + "post_attention_norm.weight"), eps);
                for (uint32_t i = 0; i < n_embd; i++) x[i] += o[i];
                auto h = x;
                rmsnorm(h, w.at(p + "ffn_norm.weight"), eps);
                auto g = matvec(p + "ffn_gate.weight", h), u = matvec(p + "ffn_up.weight", h);
                for (uint32_t i = 0; i < n_ff; i++) {
                    // SwiGLU; Gemma's GeGLU with the tanh form of gelu
                    double a = g[i];
                    g[i] = gemma ? 0.5 * a * (1 + std::tanh(0.7978845608 * (a + 0.044715 * a * a * a))) * u[i]
                                 : a / (1 + std::exp(-a)) * u[i];
                }
                auto d = matvec(p + "ffn_down.weight", g);
                if (gemma) rmsnorm(d, w.at(p + "post_ffw_norm.weight"), eps);
                for (uint32_t i = 0; i < n_embd; i++) x[i] += d[i];
            }
        }
        auto x = xs.back();
        rmsnorm(x, w.at("output_norm.weight"), eps);
        return matvec(gemma ? "token_embd.weight" : "output.weight", x);
    }
};

// Normalised squared error of the device logits against the reference.
double nmse(const std::vector<float> &got, const std::vector<double> &ref)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return num / den;
}

} // namespace

#endif
