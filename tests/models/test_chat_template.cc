// Chat templates: family detection, default system prompts and formatted conversations equal to
// what jinja2 renders from the real templates (tests/data/chat_templates.json, written by
// tools/gen_tokenizer_golden.py), plus buffer and argument rules.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "vkinfer_models.h"

namespace {

class ChatTemplateGolden : public ::testing::Test {
  protected:
    cJSON *doc = nullptr;
    void SetUp() override
    {
        std::ifstream f(std::string(VKI_TEST_DATA) + "/chat_templates.json");
        ASSERT_TRUE(f.good()) << "tests/data/chat_templates.json is missing";
        std::stringstream ss;
        ss << f.rdbuf();
        doc = cJSON_Parse(ss.str().c_str());
        ASSERT_NE(doc, nullptr);
    }
    void TearDown() override { cJSON_Delete(doc); }

    const cJSON *templ(const char *name)
    {
        const cJSON *t;
        cJSON_ArrayForEach(
            t,
            cJSON_GetObjectItem(
                doc, "templates")) if (std::string(cJSON_GetObjectItem(t, "name")->valuestring) ==
                                       name) return t;
        return nullptr;
    }
};

std::string str(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItem(o, key)->valuestring;
}

std::string format(vki_chat_template tmpl, const std::vector<vki_chat_message> &msgs, bool gen,
                   const char *sys)
{
    size_t need = 0;
    vki_status st =
        vki_chat_format(tmpl, msgs.data(), uint32_t(msgs.size()), gen, sys, nullptr, 0, &need);
    EXPECT_EQ(st, VKI_ERROR_INVALID_ARGUMENT); // size 0 never fits the NUL: a size query
    std::string out(need + 1, '\x7f');
    size_t got = 0;
    EXPECT_EQ(vki_chat_format(tmpl, msgs.data(), uint32_t(msgs.size()), gen, sys, out.data(),
                              out.size(), &got),
              VKI_OK);
    EXPECT_EQ(got, need);
    EXPECT_EQ(out[need], '\0');
    out.resize(need);
    return out;
}

TEST_F(ChatTemplateGolden, DetectsEachFamily)
{
    const cJSON *t;
    int n = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(doc, "templates"))
    {
        std::string src = str(t, "source");
        vki_chat_template got = vki_chat_template_detect(src.data(), src.size());
        EXPECT_STREQ(vki_chat_template_name(got), cJSON_GetObjectItem(t, "family")->valuestring)
            << str(t, "name");
        n++;
    }
    EXPECT_EQ(n, 9); // 5 written out in the generator, 4 from llama.cpp's models/templates
    EXPECT_EQ(vki_chat_template_detect(nullptr, 0), VKI_CHAT_TEMPLATE_NONE);
    const char mistral[] = "{{ '[INST] ' + message['content'] + ' [/INST]' }}";
    EXPECT_EQ(vki_chat_template_detect(mistral, sizeof mistral - 1), VKI_CHAT_TEMPLATE_NONE);
    // Only `length` bytes count: the marker past it is not seen.
    const char cut[] = "{{ x }}<|im_start|>";
    EXPECT_EQ(vki_chat_template_detect(cut, 7), VKI_CHAT_TEMPLATE_NONE);
}

TEST_F(ChatTemplateGolden, ExtractsDefaultSystemPrompts)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(doc, "templates"))
    {
        std::string src = str(t, "source"), want = str(t, "default_system");
        size_t n = vki_chat_template_default_system(src.data(), src.size(), nullptr, 0);
        std::string got(n + 1, '\x7f');
        EXPECT_EQ(vki_chat_template_default_system(src.data(), src.size(), got.data(), got.size()),
                  n);
        got.resize(n);
        EXPECT_EQ(got, want) << str(t, "name");
    }
    // Truncation: at most size - 1 bytes and a NUL.
    std::string src = str(templ("smollm2"), "source");
    char small[8];
    EXPECT_EQ(vki_chat_template_default_system(src.data(), src.size(), small, sizeof small), 68u);
    EXPECT_STREQ(small, "You are");
    // Escapes undone; a system text built from variables is not a default.
    const char escaped[] = "{{ '<|im_start|>system\\nLine\\none, it\\'s \\\"q\\\"<|im_end|>\\n' }}";
    char out[64];
    vki_chat_template_default_system(escaped, sizeof escaped - 1, out, sizeof out);
    EXPECT_STREQ(out, "Line\none, it's \"q\"");
    const char dynamic[] =
        "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}";
    EXPECT_EQ(vki_chat_template_default_system(dynamic, sizeof dynamic - 1, out, sizeof out), 0u);
    EXPECT_STREQ(out, "");
}

TEST_F(ChatTemplateGolden, FormatsLikeJinja)
{
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(doc, "renders"))
    {
        const cJSON *t = templ(cJSON_GetObjectItem(r, "template")->valuestring);
        ASSERT_NE(t, nullptr);
        std::vector<vki_chat_message> msgs;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(r, "messages"))
            msgs.push_back({cJSON_GetObjectItem(m, "role")->valuestring,
                            cJSON_GetObjectItem(m, "content")->valuestring});
        std::string sys = str(t, "default_system");
        vki_chat_template tmpl =
            vki_chat_template_from_name(cJSON_GetObjectItem(t, "family")->valuestring);
        bool gen = cJSON_IsTrue(cJSON_GetObjectItem(r, "add_generation_prompt"));
        EXPECT_EQ(format(tmpl, msgs, gen, sys.c_str()), str(r, "text"))
            << str(t, "name") << ", " << msgs.size() << " messages, generation prompt " << gen;
        n++;
    }
    EXPECT_GT(n, 25);
}

TEST(ChatTemplate, NamesAndDefaults)
{
    EXPECT_EQ(vki_chat_template_from_name("chatml"), VKI_CHAT_TEMPLATE_CHATML);
    EXPECT_EQ(vki_chat_template_from_name("Llama3"), VKI_CHAT_TEMPLATE_LLAMA3);
    EXPECT_EQ(vki_chat_template_from_name("GEMMA"), VKI_CHAT_TEMPLATE_GEMMA);
    EXPECT_EQ(vki_chat_template_from_name("llama2"), VKI_CHAT_TEMPLATE_LLAMA2);
    EXPECT_EQ(vki_chat_template_from_name("LLAMA3.1"), VKI_CHAT_TEMPLATE_LLAMA31);
    EXPECT_EQ(vki_chat_template_from_name("llama3."), VKI_CHAT_TEMPLATE_NONE);
    EXPECT_EQ(vki_chat_template_from_name("gemm"), VKI_CHAT_TEMPLATE_NONE);
    EXPECT_EQ(vki_chat_template_from_name("chatmlx"), VKI_CHAT_TEMPLATE_NONE);
    EXPECT_EQ(vki_chat_template_from_name(nullptr), VKI_CHAT_TEMPLATE_NONE);
    for (int i = 1; i < VKI_CHAT_TEMPLATE_COUNT; i++)
        EXPECT_EQ(vki_chat_template_from_name(vki_chat_template_name(vki_chat_template(i))),
                  vki_chat_template(i));
    EXPECT_STREQ(vki_chat_template_name(VKI_CHAT_TEMPLATE_COUNT), "none");

    // A caller's system text: Gemma opens the first user turn with it; "" means none.
    std::vector<vki_chat_message> msgs = {{"user", " Hi "}};
    EXPECT_EQ(format(VKI_CHAT_TEMPLATE_GEMMA, msgs, true, "Be brief."),
              "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
    EXPECT_EQ(format(VKI_CHAT_TEMPLATE_CHATML, msgs, false, ""),
              "<|im_start|>user\n Hi <|im_end|>\n");
    EXPECT_EQ(format(VKI_CHAT_TEMPLATE_LLAMA3, msgs, false, "S"),
              "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    // Llama 3.1: the caller's system text, trimmed, after the date lines; none: they stand alone.
    const std::string head = "<|start_header_id|>system<|end_header_id|>\n\n"
                             "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
    EXPECT_EQ(format(VKI_CHAT_TEMPLATE_LLAMA31, msgs, false, " S\n"),
              head + "S<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    EXPECT_EQ(format(VKI_CHAT_TEMPLATE_LLAMA31, {}, true, "ignored"),
              head + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, BufferAndArgumentRules)
{
    std::vector<vki_chat_message> msgs = {{"user", "Hello"}};
    const std::string want = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n";
    char buf[16];
    size_t need = 0;
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_CHATML, msgs.data(), 1, true, nullptr, buf,
                              sizeof buf, &need),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(need, want.size());
    EXPECT_EQ(std::string(buf), want.substr(0, sizeof buf - 1)); // truncated, NUL-terminated
    std::vector<char> exact(want.size());                        // no room for the NUL
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_CHATML, msgs.data(), 1, true, nullptr, exact.data(),
                              exact.size(), &need),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_NONE, msgs.data(), 1, true, nullptr, buf,
                              sizeof buf, &need),
              VKI_ERROR_UNSUPPORTED);
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_COUNT, msgs.data(), 1, true, nullptr, buf,
                              sizeof buf, &need),
              VKI_ERROR_UNSUPPORTED);
    vki_chat_message bad[] = {{"user", nullptr}};
    EXPECT_EQ(
        vki_chat_format(VKI_CHAT_TEMPLATE_CHATML, bad, 1, true, nullptr, buf, sizeof buf, &need),
        VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_CHATML, nullptr, 1, true, nullptr, buf, sizeof buf,
                              &need),
              VKI_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_CHATML, msgs.data(), 1, true, nullptr, buf,
                              sizeof buf, nullptr),
              VKI_ERROR_INVALID_ARGUMENT);
    char big[64];
    EXPECT_EQ(vki_chat_format(VKI_CHAT_TEMPLATE_GEMMA, nullptr, 0, true, "ignored", big, sizeof big,
                              &need),
              VKI_OK);
    EXPECT_STREQ(big, "<start_of_turn>model\n");
}

} // namespace
