// The GGUF block decoders against an independent implementation (gguf-py's numpy dequantisation,
// tests/data/quant_golden.bin from tools/gen_quant_golden.py), and the test-weight encoder.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <vector>

extern "C" {
#include "graph_internal.h"
}

static const std::map<uint32_t, vki_dtype> ggml_types = {
    {2, VKI_DTYPE_Q4_0}, {3, VKI_DTYPE_Q4_1},  {6, VKI_DTYPE_Q5_0},  {7, VKI_DTYPE_Q5_1},
    {8, VKI_DTYPE_Q8_0}, {12, VKI_DTYPE_Q4_K}, {13, VKI_DTYPE_Q5_K}, {14, VKI_DTYPE_Q6_K},
};

TEST(Quant, DecodersMatchGgufPy)
{
    FILE *f = std::fopen(VKI_TEST_DATA "/quant_golden.bin", "rb");
    ASSERT_NE(f, nullptr) << "missing " VKI_TEST_DATA "/quant_golden.bin";
    std::vector<uint8_t> all;
    uint8_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) all.insert(all.end(), buf, buf + n);
    std::fclose(f);
    size_t at = 0, types = 0;
    while (at + 16 <= all.size()) {
        uint32_t hdr[4];
        std::memcpy(hdr, &all[at], 16);
        at += 16;
        ASSERT_TRUE(ggml_types.count(hdr[0])) << "ggml type " << hdr[0];
        vki_dtype dt = ggml_types.at(hdr[0]);
        const vki_dtype_info *info = vki_dtype_get(dt);
        ASSERT_EQ(info->block_bytes, hdr[2]) << info->name;
        ASSERT_EQ(info->block_elems, hdr[3]) << info->name;
        const uint8_t *blocks = &all[at];
        at += (size_t)hdr[1] * hdr[2];
        std::vector<float> want(hdr[1] * hdr[3]);
        std::memcpy(want.data(), &all[at], want.size() * 4);
        at += want.size() * 4;
        for (uint32_t b = 0; b < hdr[1]; b++) {
            float got[256];
            vki_dequant_block(dt, blocks + (size_t)b * hdr[2], got);
            for (uint32_t i = 0; i < hdr[3]; i++) {
                float w = want[b * hdr[3] + i];
                ASSERT_NEAR(got[i], w, 1e-6f * std::fabs(w) + 1e-9f)
                    << info->name << " block " << b << " element " << i;
            }
        }
        types++;
    }
    EXPECT_EQ(types, ggml_types.size());
}

TEST(Quant, EncoderRoundTripsWithinTheFormatsPrecision)
{
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const std::pair<vki_dtype, double> bound[] = {
        {VKI_DTYPE_Q8_0, 1e-4}, {VKI_DTYPE_Q5_0, 2e-3}, {VKI_DTYPE_Q5_1, 2e-3}, {VKI_DTYPE_Q4_0, 1e-2},
        {VKI_DTYPE_Q4_1, 1e-2}, {VKI_DTYPE_Q4_K, 1e-2}, {VKI_DTYPE_Q5_K, 3e-3}, {VKI_DTYPE_Q6_K, 1e-3},
    };
    for (auto [dt, max_nmse] : bound) {
        const vki_dtype_info *info = vki_dtype_get(dt);
        double err = 0, ref = 0;
        for (int rep = 0; rep < 16; rep++) {
            float x[256], y[256];
            uint8_t block[256];
            for (uint32_t i = 0; i < info->block_elems; i++) x[i] = u(rng);
            vki_quant_block(dt, x, block);
            vki_dequant_block(dt, block, y);
            for (uint32_t i = 0; i < info->block_elems; i++) {
                err += (x[i] - y[i]) * (x[i] - y[i]);
                ref += x[i] * x[i];
            }
        }
        EXPECT_LT(err / ref, max_nmse) << info->name;
    }
}

TEST(Quant, HalfConversionIsExactWhereRepresentable)
{
    const float exact[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f};
    for (float v : exact) EXPECT_EQ(vki_f16_to_f32(vki_f32_to_f16(v)), v) << v;
    EXPECT_TRUE(std::isinf(vki_f16_to_f32(vki_f32_to_f16(1e6f))));
    EXPECT_TRUE(std::isnan(vki_f16_to_f32(vki_f32_to_f16(NAN))));
    EXPECT_EQ(vki_f16_to_f32(vki_f32_to_f16(1.0f + 1.0f / 4096)), 1.0f) << "ties round to even";
    EXPECT_EQ(vki_bf16_to_f32(vki_f32_to_bf16(3.0f)), 3.0f);
}
