// What the SD model tests share: a golden file (a safetensors file written by tools/gen_sd_golden.py
// or tools/check_sd_full.py) read as typed vectors, and f16 decoded independently of the
// library's converters (exact for normal values and zero).
#ifndef VKI_TEST_SD_GOLDEN_H
#define VKI_TEST_SD_GOLDEN_H

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "vkinfer_models.h"
}

struct SdGolden {
    vki_safetensors *st = nullptr;
    explicit SdGolden(const std::string &path)
    {
        char err[256] = "";
        EXPECT_EQ(vki_safetensors_open(path.c_str(), nullptr, &st, err, sizeof err), VKI_OK) << err;
    }
    ~SdGolden() { vki_safetensors_close(st); }
    SdGolden(const SdGolden &) = delete;
    SdGolden &operator=(const SdGolden &) = delete;

    bool has(const char *name)
    {
        vki_safetensors_tensor t;
        return st && vki_safetensors_find(st, name, &t) == VKI_OK;
    }
    std::string meta(const char *key)
    {
        const char *v = st ? vki_safetensors_metadata(st, key) : nullptr;
        return v ? v : "";
    }
    // The tensor `name` stored as `want`; a failure (and nothing) when it is absent or of another type.
    template <typename T> std::vector<T> get(const char *name, vki_dtype want)
    {
        vki_safetensors_tensor t;
        if (!st || vki_safetensors_find(st, name, &t) != VKI_OK || t.dtype != want) {
            ADD_FAILURE() << "golden tensor " << name << " missing or not " << vki_dtype_get(want)->name;
            return {};
        }
        std::vector<T> v(t.size / sizeof(T));
        memcpy(v.data(), t.data, t.size);
        return v;
    }
    std::vector<float> f32(const char *name) { return get<float>(name, VKI_DTYPE_F32); }
    std::vector<int32_t> i32(const char *name) { return get<int32_t>(name, VKI_DTYPE_I32); }
};

inline float HalfToFloat(uint16_t h)
{
    int e = (h >> 10) & 0x1f;
    float m = float(h & 0x3ff);
    float v = e ? std::ldexp(1024.0f + m, e - 25) : std::ldexp(m, -24);
    return h & 0x8000 ? -v : v;
}

#endif
