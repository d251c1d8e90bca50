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

// The ids of s with the plain spans `plain` (sized by a first call), failing the test on an
// error.
inline std::vector<int32_t> encode_spans(vki_tokenizer *t, const std::string &s, bool add_bos,
                                         const std::vector<vki_text_span> &plain)
{
    uint32_t n = 0, np = uint32_t(plain.size());
    vki_status st = vki_tokenizer_encode_spans(t, s.data(), s.size(), add_bos, plain.data(), np,
                                               nullptr, 0, &n);
    EXPECT_TRUE(st == VKI_OK || st == VKI_ERROR_INVALID_ARGUMENT) << vki_tokenizer_last_error(t);
    std::vector<int32_t> ids(n);
    uint32_t m = 0;
    st = vki_tokenizer_encode_spans(t, s.data(), s.size(), add_bos, plain.data(), np, ids.data(), n,
                                    &m);
    EXPECT_EQ(st, VKI_OK) << vki_tokenizer_last_error(t);
    EXPECT_EQ(m, n);
    return ids;
}

// The ids of a conversation from vki_chat_encode (sized by a first call), failing the test on
// an error.
inline std::vector<int32_t> chat_encode(vki_tokenizer *t, const vki_chat_prompt &p)
{
    uint32_t n = 0;
    vki_status st = vki_chat_encode(t, &p, nullptr, 0, &n);
    EXPECT_TRUE(st == VKI_OK || st == VKI_ERROR_INVALID_ARGUMENT) << vki_tokenizer_last_error(t);
    std::vector<int32_t> ids(n);
    uint32_t m = 0;
    st = vki_chat_encode(t, &p, ids.data(), n, &m);
    EXPECT_EQ(st, VKI_OK) << vki_tokenizer_last_error(t);
    EXPECT_EQ(m, n);
    return ids;
}

// The ids of a conversation as the apps had them before plain spans: the formatted text
// encoded whole with parse_special on, so that message text could spell control tokens.
inline std::vector<int32_t> chat_encode_all_special(vki_tokenizer *t, const vki_chat_prompt &p)
{
    size_t need = 0;
    vki_chat_format(p.tmpl, p.messages, p.count, p.add_assistant_prompt, p.default_system,
                    nullptr, 0, &need);
    std::string text(need + 1, '\0');
    EXPECT_EQ(vki_chat_format(p.tmpl, p.messages, p.count, p.add_assistant_prompt,
                              p.default_system, text.data(), text.size(), &need),
              VKI_OK);
    text.resize(need);
    return encode(t, text, vki_tokenizer_add_bos(t), true);
}

// How many of `ids` are CONTROL tokens.
inline size_t count_control(const vki_tokenizer *t, const std::vector<int32_t> &ids)
{
    size_t n = 0;
    for (int32_t id : ids) n += vki_tokenizer_token_type(t, id) == VKI_TOKEN_TYPE_CONTROL;
    return n;
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
