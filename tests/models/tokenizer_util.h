// Tokenizer calls as the tokenizer tests use them: whole id vectors and strings.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vkinfer_models.h"

// The ids of s (sized by a first call), failing the test on an error.
inline std::vector<int32_t> encode(vki_tokenizer *t, const std::string &s, bool add_bos, bool special)
{
    uint32_t n = 0;
    vki_status st = vki_tokenizer_encode(t, s.data(), s.size(), add_bos, special, nullptr, 0, &n);
    EXPECT_TRUE(st == VKI_OK || st == VKI_ERROR_INVALID_ARGUMENT) << vki_tokenizer_last_error(t);
    std::vector<int32_t> ids(n);
    uint32_t m = 0;
    st = vki_tokenizer_encode(t, s.data(), s.size(), add_bos, special, ids.data(), n, &m);
    EXPECT_EQ(st, VKI_OK) << vki_tokenizer_last_error(t);
    EXPECT_EQ(m, n);
    return ids;
}

// The text of one token.
inline std::string piece(const vki_tokenizer *t, int32_t id)
{
    std::string s(vki_tokenizer_piece(t, id, nullptr, 0), '\0');
    EXPECT_EQ(vki_tokenizer_piece(t, id, s.data(), s.size()), s.size());
    return s;
}

// The text of ids, piece by piece.
inline std::string decode(const vki_tokenizer *t, const std::vector<int32_t> &ids)
{
    std::string s;
    for (int32_t id : ids) s += piece(t, id);
    return s;
}
