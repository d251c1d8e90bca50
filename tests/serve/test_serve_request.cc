// `vkinfer serve`'s request bodies and response JSON (apps/serve_request.c): device-free. Every
// JSON the functions write is parsed back with cJSON and checked key by key against OpenAI's
// shapes. (Stop-string scanning: test_serve_stop.cc.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "serve_internal.h"
}

namespace {

struct Request {
    vki_serve_request r = {};
    vki_serve_error e = {};
    bool ok = false;
    // The body is copied into a buffer of exactly its size: the parser must not read past it
    // (ASan catches it in the sanitizer build) nor need a NUL.
    Request(vki_serve_kind kind, const std::string &body)
    {
        std::unique_ptr<char[]> exact(new char[body.size() ? body.size() : 1]);
        memcpy(exact.get(), body.data(), body.size());
        ok = vki_serve_request_parse(exact.get(), body.size(), kind, &r, &e);
    }
    ~Request() { vki_serve_request_free(&r); }
};

std::string chat_body(const std::string &extra)
{
    return R"({"messages":[{"role":"user","content":"Hi"}])" + (extra.empty() ? "" : "," + extra) +
           "}";
}

struct Json {
    cJSON *root;
    explicit Json(const char *text) : root(text ? cJSON_Parse(text) : nullptr) {}
    ~Json() { cJSON_Delete(root); }
};

const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

std::string str(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : "<not a string>";
}

std::set<std::string> keys(const cJSON *obj)
{
    std::set<std::string> k;
    for (const cJSON *c = obj ? obj->child : nullptr; c; c = c->next) k.insert(c->string);
    return k;
}

/* ---- Parsing: what succeeds ---------------------------------------------------------------- */

std::string chat_msgs(const std::string &messages) { return "{\"messages\":" + messages + "}"; }

// n image parts, each a PNG's signature as a data: URI (the parser checks no more of the file).
std::string images(uint32_t n)
{
    std::string parts;
    for (uint32_t i = 0; i < n; i++)
        parts += std::string(i ? "," : "") +
                 R"({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}})";
    return parts;
}

std::string marker(uint32_t k)
{
    char m[VKI_LLM_IMAGE_MARKER_SIZE];
    vki_llm_image_marker(k, m);
    return m;
}

TEST(ServeRequest, ImagePartsBecomeMarkersWhereTheyStand)
{
    // A PNG signature and 2 more bytes; a JPEG's SOI and APP0 marker, base64 wrapped as MIME
    // wraps it; the bare-string form some clients send.
    Request q(VKI_SERVE_CHAT, R"({"messages":[
        {"role":"system","content":"Be brief."},
        {"role":"user","content":[{"type":"text","text":"What is this?"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAQ=="}},
            {"type":"text","text":"and"},
            {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/\r\n4A=="}}]},
        {"role":"assistant","content":"A cat."},
        {"role":"user","content":[{"type":"image_url","image_url":"data:image/jpg;base64,/9j/4A=="}]}]})");
    ASSERT_TRUE(q.ok) << q.e.message;
    ASSERT_EQ(q.r.n_messages, 4u);
    EXPECT_STREQ(q.r.messages[0].content, "Be brief.");
    EXPECT_EQ(std::string(q.r.messages[1].content), "What is this?\n" + marker(0) + "\nand\n" + marker(1));
    EXPECT_STREQ(q.r.messages[2].content, "A cat.");
    EXPECT_EQ(std::string(q.r.messages[3].content), marker(2));
    ASSERT_EQ(q.r.n_images, 3u);
    const std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0x00, 0x01};
    const std::vector<uint8_t> jpeg = {0xff, 0xd8, 0xff, 0xe0};
    EXPECT_EQ(std::vector<uint8_t>(q.r.images[0].data, q.r.images[0].data + q.r.images[0].size), png);
    EXPECT_EQ(std::vector<uint8_t>(q.r.images[1].data, q.r.images[1].data + q.r.images[1].size), jpeg);
    EXPECT_EQ(std::vector<uint8_t>(q.r.images[2].data, q.r.images[2].data + q.r.images[2].size), jpeg);
    // A text-only request holds none, and the most a request may hold is taken.
    Request t(VKI_SERVE_CHAT, chat_body(""));
    ASSERT_TRUE(t.ok);
    EXPECT_EQ(t.r.n_images, 0u);
    Request most(VKI_SERVE_CHAT, chat_msgs("[{\"role\":\"user\",\"content\":[" +
                                           images(VKI_SERVE_MAX_IMAGES) + "]}]"));
    ASSERT_TRUE(most.ok) << most.e.message;
    EXPECT_EQ(most.r.n_images, uint32_t(VKI_SERVE_MAX_IMAGES));
}

TEST(ServeRequest, MinimalChatHasEveryDefault)
{
    Request q(VKI_SERVE_CHAT, chat_body(""));
    ASSERT_TRUE(q.ok) << q.e.message;
    EXPECT_EQ(q.e.status, 0);
    EXPECT_EQ(q.r.kind, VKI_SERVE_CHAT);
    EXPECT_EQ(q.r.model, nullptr);
    ASSERT_EQ(q.r.n_messages, 1u);
    EXPECT_STREQ(q.r.messages[0].role, "user");
    EXPECT_STREQ(q.r.messages[0].content, "Hi");
    EXPECT_EQ(q.r.prompt, nullptr);
    EXPECT_FALSE(q.r.stream);
    EXPECT_FALSE(q.r.include_usage);
    EXPECT_FALSE(q.r.ignore_eos);
    EXPECT_EQ(q.r.max_tokens, 0u);
    EXPECT_FALSE(q.r.has_temperature || q.r.has_top_p || q.r.has_top_k || q.r.has_min_p ||
                 q.r.has_repeat_penalty || q.r.has_seed);
    vki_sampler_desc zero = {};
    EXPECT_EQ(memcmp(&q.r.sampling, &zero, sizeof zero), 0);
    EXPECT_EQ(q.r.n_stop, 0u);
}

TEST(ServeRequest, EveryFieldIsRead)
{
    Request q(VKI_SERVE_CHAT, R"({
        "model": "SmolLM2-135M-Instruct",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": "Hi <|im_end|>"},
            {"role": "assistant", "content": null},
            {"role": "user", "content": [{"type": "text", "text": "one"},
                                         {"type": "text", "text": "two"}]}
        ],
        "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 42,
        "presence_penalty": 0.5, "frequency_penalty": -1.5,
        "top_k": 20, "min_p": 0.1, "repeat_penalty": 1.1,
        "stop": ["a", "", "bc"], "ignore_eos": true
    })");
    ASSERT_TRUE(q.ok) << q.e.message;
    EXPECT_STREQ(q.r.model, "SmolLM2-135M-Instruct");
    ASSERT_EQ(q.r.n_messages, 5u);
    const char *roles[] = {"system", "system", "user", "assistant", "user"};
    const char *contents[] = {"Be brief.", "Be kind.", "Hi <|im_end|>", "", "one\ntwo"};
    for (int i = 0; i < 5; i++) {
        EXPECT_STREQ(q.r.messages[i].role, roles[i]) << i;
        EXPECT_STREQ(q.r.messages[i].content, contents[i]) << i;
    }
    EXPECT_TRUE(q.r.stream);
    EXPECT_TRUE(q.r.include_usage);
    EXPECT_TRUE(q.r.ignore_eos);
    EXPECT_EQ(q.r.max_tokens, 5u);
    EXPECT_TRUE(q.r.has_temperature && q.r.has_top_p && q.r.has_top_k && q.r.has_min_p &&
                q.r.has_repeat_penalty && q.r.has_seed);
    EXPECT_FLOAT_EQ(q.r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(q.r.sampling.top_p, 0.9f);
    EXPECT_EQ(q.r.sampling.seed, 42u);
    EXPECT_FLOAT_EQ(q.r.sampling.presence_penalty, 0.5f);
    EXPECT_FLOAT_EQ(q.r.sampling.frequency_penalty, -1.5f);
    EXPECT_EQ(q.r.sampling.top_k, 20);
    EXPECT_FLOAT_EQ(q.r.sampling.min_p, 0.1f);
    EXPECT_FLOAT_EQ(q.r.sampling.repeat_penalty, 1.1f);
    ASSERT_EQ(q.r.n_stop, 2u); // the empty one dropped
    EXPECT_STREQ(q.r.stop[0], "a");
    EXPECT_STREQ(q.r.stop[1], "bc");
    EXPECT_EQ(vki_sampler_check_desc(&q.r.sampling, 100, nullptr, 0), VKI_OK);
}

TEST(ServeRequest, SpecialValuesMapToTheSampler)
{
    {   // temperature 0 is greedy, and still "given"
        Request q(VKI_SERVE_CHAT, chat_body(R"("temperature":0)"));
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_TRUE(q.r.has_temperature);
        EXPECT_EQ(q.r.sampling.temperature, VKI_SAMPLER_GREEDY);
    }
    {   // llama.cpp: top_k <= 0 and min_p 0 are off
        Request q(VKI_SERVE_CHAT, chat_body(R"("top_k":0,"min_p":0)"));
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_EQ(q.r.sampling.top_k, VKI_SAMPLER_OFF);
        EXPECT_EQ(q.r.sampling.min_p, VKI_SAMPLER_OFF);
        Request r(VKI_SERVE_CHAT, chat_body(R"("top_k":-1)"));
        ASSERT_TRUE(r.ok) << r.e.message;
        EXPECT_EQ(r.r.sampling.top_k, VKI_SAMPLER_OFF);
    }
    {   // positive values too small for a float stay positive (0 would mean "the default")
        Request q(VKI_SERVE_CHAT,
                  chat_body(R"("temperature":1e-300,"top_p":1e-300,"min_p":1e-300,"repeat_penalty":1e-300)"));
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_GT(q.r.sampling.temperature, 0);
        EXPECT_GT(q.r.sampling.top_p, 0);
        EXPECT_GT(q.r.sampling.min_p, 0);
        EXPECT_GT(q.r.sampling.repeat_penalty, 0);
        EXPECT_EQ(vki_sampler_check_desc(&q.r.sampling, 10, nullptr, 0), VKI_OK);
    }
    {   // the ends of every range are accepted
        Request q(VKI_SERVE_CHAT, chat_body(R"("temperature":2,"top_p":1,"min_p":1,)"
                                            R"("presence_penalty":-2,"frequency_penalty":2,)"
                                            R"("max_tokens":1048576,"n":1,"top_k":2147483647)"));
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_EQ(q.r.max_tokens, 1048576u);
        EXPECT_EQ(q.r.sampling.top_k, INT32_MAX);
        EXPECT_EQ(vki_sampler_check_desc(&q.r.sampling, 10, nullptr, 0), VKI_OK);
    }
    {   // max_completion_tokens (OpenAI's newer name) wins over max_tokens
        Request q(VKI_SERVE_CHAT, chat_body(R"("max_tokens":7,"max_completion_tokens":9)"));
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_EQ(q.r.max_tokens, 9u);
        Request r(VKI_SERVE_CHAT, chat_body(R"("max_completion_tokens":3)"));
        EXPECT_EQ(r.r.max_tokens, 3u);
    }
    {   // one stop string as a plain string; 4 in an array; 256 bytes
        Request q(VKI_SERVE_CHAT, chat_body(R"("stop":"\n\n")"));
        ASSERT_TRUE(q.ok) << q.e.message;
        ASSERT_EQ(q.r.n_stop, 1u);
        EXPECT_STREQ(q.r.stop[0], "\n\n");
        Request r(VKI_SERVE_CHAT, chat_body(R"("stop":["1","2","3",")" + std::string(256, 'x') +
                                            R"("])"));
        ASSERT_TRUE(r.ok) << r.e.message;
        ASSERT_EQ(r.r.n_stop, 4u);
        EXPECT_EQ(strlen(r.r.stop[3]), 256u);
        Request s(VKI_SERVE_CHAT, chat_body(R"("stop":"")"));
        ASSERT_TRUE(s.ok);
        EXPECT_EQ(s.r.n_stop, 0u);
    }
}

TEST(ServeRequest, SeedsAreAny64BitIntegerAndZeroReplays)
{
    struct Case {
        const char *json;
        uint64_t want;
    } cases[] = {
        {"42", 42u},
        {"-1", UINT64_MAX},                              // two's complement
        {"-9223372036854775808", 0x8000000000000000u},   // INT64_MIN
        {"9007199254740992", 9007199254740992u},         // 2^53
        {"18446744073709551615", UINT64_MAX},            // 2^64 - 1 (rounds to 2^64 as a double)
    };
    for (const Case &c : cases) {
        Request q(VKI_SERVE_CHAT, chat_body(std::string("\"seed\":") + c.json));
        ASSERT_TRUE(q.ok) << c.json << ": " << q.e.message;
        EXPECT_TRUE(q.r.has_seed);
        EXPECT_EQ(q.r.sampling.seed, c.want) << c.json;
    }
    // 0 would make the sampler pick a fresh seed: a client's 0 must be a fixed seed instead.
    Request a(VKI_SERVE_CHAT, chat_body(R"("seed":0)")), b(VKI_SERVE_CHAT, chat_body(R"("seed":0)"));
    ASSERT_TRUE(a.ok && b.ok);
    EXPECT_NE(a.r.sampling.seed, 0u);
    EXPECT_EQ(a.r.sampling.seed, b.r.sampling.seed);
}

TEST(ServeRequest, CompletionPrompt)
{
    {
        Request q(VKI_SERVE_COMPLETION, R"({"prompt":"Once upon","max_tokens":3})");
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_EQ(q.r.kind, VKI_SERVE_COMPLETION);
        EXPECT_STREQ(q.r.prompt, "Once upon");
        EXPECT_EQ(q.r.n_messages, 0u);
        EXPECT_EQ(q.r.messages, nullptr);
        EXPECT_EQ(q.r.max_tokens, 3u);
    }
    {
        Request q(VKI_SERVE_COMPLETION, R"({"prompt":["only one"]})");
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_STREQ(q.r.prompt, "only one");
    }
    {   // the other endpoint's field is not looked at
        Request q(VKI_SERVE_COMPLETION, R"({"prompt":"","messages":5})");
        ASSERT_TRUE(q.ok) << q.e.message;
        EXPECT_STREQ(q.r.prompt, "");
        Request r(VKI_SERVE_CHAT, chat_body(R"("prompt":5)"));
        ASSERT_TRUE(r.ok) << r.e.message;
        EXPECT_EQ(r.r.prompt, nullptr);
    }
}

TEST(ServeRequest, UnknownFieldsAndNullsAreIgnored)
{
    Request q(VKI_SERVE_CHAT, chat_body(
        R"("tools":[{"type":"function","function":{"name":"f"}}],"logit_bias":{"1":5},)"
        R"("user":"me","response_format":{"type":"text"},"foo":{"bar":[1,2,{"x":null}]},)"
        R"("temperature":null,"top_p":null,"seed":null,"stop":null,"max_tokens":null,)"
        R"("model":null,"stream":null,"stream_options":null,"n":null,"top_k":null)"));
    ASSERT_TRUE(q.ok) << q.e.message;
    EXPECT_EQ(q.r.model, nullptr);
    EXPECT_FALSE(q.r.has_temperature || q.r.has_top_p || q.r.has_seed || q.r.has_top_k);
    EXPECT_EQ(q.r.n_stop, 0u);
    EXPECT_EQ(q.r.max_tokens, 0u);
    // Unknown keys inside a message and a part are ignored too; "TEMPERATURE" is not ours.
    Request r(VKI_SERVE_CHAT, R"({"messages":[{"role":"user","name":"x","content":)"
                              R"([{"type":"text","text":"a","cache_control":{}}]}],)"
                              R"("TEMPERATURE":"hot"})");
    ASSERT_TRUE(r.ok) << r.e.message;
    EXPECT_STREQ(r.r.messages[0].content, "a");
    EXPECT_FALSE(r.r.has_temperature);
}

TEST(ServeRequest, TextIsKeptByteForByte)
{
    // JSON escapes decoded; bytes that are not UTF-8 kept as sent (the tokenizer takes bytes).
    std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\\n\\\"\\\\ "
                       "\\ud83d\\ude00 \xff\xfe\xc3 end\"}],\"stop\":[\"\xe2\x82\"]}";
    Request q(VKI_SERVE_CHAT, body);
    ASSERT_TRUE(q.ok) << q.e.message;
    EXPECT_EQ(std::string(q.r.messages[0].content),
              "\xc3\xa9\n\"\\ \xf0\x9f\x98\x80 \xff\xfe\xc3 end");
    ASSERT_EQ(q.r.n_stop, 1u);
    EXPECT_STREQ(q.r.stop[0], "\xe2\x82");
    // Trailing whitespace after the object is fine; the body needs no NUL (Request copies it
    // into a buffer of exactly its size).
    Request w(VKI_SERVE_CHAT, chat_body("") + " \n\t\r ");
    EXPECT_TRUE(w.ok) << w.e.message;
}

TEST(ServeRequest, LargeButWithinTheLimits)
{
    std::string msgs;
    for (uint32_t i = 0; i < VKI_SERVE_MAX_MESSAGES; i++)
        msgs += std::string(i ? "," : "") + R"({"role":"user","content":"m)" +
                std::to_string(i) + "\"}";
    Request q(VKI_SERVE_CHAT, "{\"messages\":[" + msgs + "]}");
    ASSERT_TRUE(q.ok) << q.e.message;
    ASSERT_EQ(q.r.n_messages, VKI_SERVE_MAX_MESSAGES);
    EXPECT_STREQ(q.r.messages[1023].content, "m1023");

    // A body of exactly the limit, nearly all one message.
    std::string head = R"({"messages":[{"role":"user","content":")", tail = "\"}]}";
    std::string big = head + std::string(VKI_SERVE_MAX_BODY - head.size() - tail.size(), 'a') + tail;
    ASSERT_EQ(big.size(), VKI_SERVE_MAX_BODY);
    Request b(VKI_SERVE_CHAT, big);
    ASSERT_TRUE(b.ok) << b.e.message;
    EXPECT_EQ(strlen(b.r.messages[0].content), VKI_SERVE_MAX_BODY - head.size() - tail.size());

    // Nesting cJSON accepts (under its limit of 1000), in a field nobody reads.
    Request d(VKI_SERVE_CHAT, chat_body("\"deep\":" + std::string(500, '[') + std::string(500, ']')));
    EXPECT_TRUE(d.ok) << d.e.message;
}

/* ---- Parsing: what fails -------------------------------------------------------------------- */

struct Bad {
    vki_serve_kind kind;
    std::string body;
    const char *param;   // the error's param ("" when none)
    const char *message; // a piece of its message
};


std::vector<Bad> bad_requests()
{
    const vki_serve_kind C = VKI_SERVE_CHAT, P = VKI_SERVE_COMPLETION;
    std::string deep = std::string(2000, '[') + std::string(2000, ']');
    std::string with_nul = R"({"messages":[{"role":"user","content":"a#b"}]})";
    with_nul[with_nul.find('#')] = 0;
    std::string msgs;
    for (uint32_t i = 0; i <= VKI_SERVE_MAX_MESSAGES; i++)
        msgs += std::string(i ? "," : "") + R"({"role":"user","content":"x"})";
    return {
        // Not JSON, or not an object.
        {C, "", "", "empty"},
        {C, "{", "", "not valid JSON"},
        {C, chat_body("") + "x", "", "not valid JSON"},
        {C, chat_body("") + chat_body(""), "", "not valid JSON"},
        {C, R"({"messages":[],})", "", "not valid JSON"},
        {C, "[]", "", "JSON object"},
        {C, "5", "", "JSON object"},
        {C, "\"x\"", "", "JSON object"},
        {C, "null", "", "JSON object"},
        {C, chat_body("\"deep\":" + deep), "", "not valid JSON"}, // over cJSON's nesting limit
        {C, R"({"messages":[{"role":"user","content":"\ud800"}]})", "", "not valid JSON"},
        {C, with_nul, "", "NUL"},
        {C, R"({"messages":[{"role":"user","content":"a\u0000b"}]})", "", "NUL"},
        // model
        {C, chat_body(R"("model":5)"), "model", "'model' must be a string"},
        {C, chat_body("\"model\":\"" + std::string(300, 'm') + "\""), "model", "at most 256"},
        // messages
        {C, "{}", "messages", "'messages' is required"},
        {C, chat_msgs("{}"), "messages", "'messages' must be an array"},
        {C, chat_msgs("\"hi\""), "messages", "'messages' must be an array"},
        {C, chat_msgs("[]"), "messages", "1 to 1024"},
        {C, chat_msgs("[" + msgs + "]"), "messages", "1 to 1024"},
        {C, chat_msgs("[1]"), "messages[0]", "must be an object"},
        {C, chat_msgs(R"([{"content":"x"}])"), "messages[0].role", "must be a string"},
        {C, chat_msgs(R"([{"role":1,"content":"x"}])"), "messages[0].role", "must be a string"},
        {C, chat_msgs(R"([{"role":"user","content":"x"},{"role":"tool","content":"x"}])"),
         "messages[1].role", "does not call tools"},
        {C, chat_msgs(R"([{"role":"function","content":"x"}])"), "messages[0].role", "tools"},
        {C, chat_msgs(R"([{"role":"robot","content":"x"}])"), "messages[0].role",
         "is 'robot'; it must be system, developer, user or assistant"},
        {C, chat_msgs(R"([{"role":"User","content":"x"}])"), "messages[0].role", "'User'"},
        {C, chat_msgs(R"([{"role":"user","content":5}])"), "messages[0].content",
         "must be a string, null or an array"},
        {C, chat_msgs(R"([{"role":"user","content":{"text":"x"}}])"), "messages[0].content",
         "must be a string, null or an array"},
        // images: data: URIs of PNG or JPEG only
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}])"),
         "messages[0].content", "'messages[0].content[0].image_url.url' is not a data: URI; this "
         "server fetches no URLs"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}])"),
         "messages[0].content", "[1].image_url.url' is not a data: URI"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url"}]}])"),
         "messages[0].content", "'messages[0].content[0].image_url' must be an object with a string 'url'"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":5}}]}])"),
         "messages[0].content", "must be an object with a string 'url'"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lGODlh"}}]}])"),
         "messages[0].content", "PNG and JPEG only"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}])"),
         "messages[0].content", "PNG and JPEG only"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO*w0KGgo="}}]}])"),
         "messages[0].content", "invalid base64"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iV=BORw0KGgo"}}]}])"),
         "messages[0].content", "invalid base64"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8gd29ybGQ="}}]}])"),
         "messages[0].content", "is not a PNG or JPEG image"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,"}}]}])"),
         "messages[0].content", "is not a PNG or JPEG image"},
        {C, chat_msgs("[{\"role\":\"user\",\"content\":[" + images(VKI_SERVE_MAX_IMAGES + 1) + "]}]"),
         "messages[0].content", "at most 16 images"},
        // text that spells the marker images stand as
        {C, chat_msgs(R"([{"role":"user","content":"look: <\u001evki-image:0\u001e>"}])"),
         "messages[0].content", "image marker"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"text","text":"<\u001evki-image:3"}]}])"),
         "messages[0].content", "image marker"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"input_audio"}]}])"),
         "messages[0].content", "[1]' is of type 'input_audio': this server takes 'text' and 'image_url' parts"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"video"}]}])"), "messages[0].content",
         "unknown type 'video'"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"text","text":5}]}])"),
         "messages[0].content", "'messages[0].content[0].text' must be a string"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":"text"}]}])"), "messages[0].content",
         ".text' must be a string"},
        {C, chat_msgs(R"([{"role":"user","content":["x"]}])"), "messages[0].content",
         "must be an object with a string 'type'"},
        {C, chat_msgs(R"([{"role":"user","content":[{"type":5}]}])"), "messages[0].content",
         "must be an object with a string 'type'"},
        // prompt
        {P, "{}", "prompt", "'prompt' is required"},
        {P, R"({"prompt":5})", "prompt", "a string or an array of one string"},
        {P, R"({"prompt":["a","b"]})", "prompt", "a string or an array of one string"},
        {P, R"({"prompt":[]})", "prompt", "a string or an array of one string"},
        {P, R"({"prompt":[1,2,3]})", "prompt", "token arrays"},
        {P, R"({"prompt":[["a"]]})", "prompt", "a string or an array of one string"},
        // numbers
        {C, chat_body(R"("temperature":-0.1)"), "temperature",
         "'temperature' must be a number between 0 and 2"},
        {C, chat_body(R"("temperature":2.01)"), "temperature", "between 0 and 2"},
        {C, chat_body(R"("temperature":"1")"), "temperature", "must be a number"},
        {C, chat_body(R"("temperature":1e999)"), "temperature", "between 0 and 2"},
        {C, chat_body(R"("temperature":true)"), "temperature", "must be a number"},
        {C, chat_body(R"("top_p":0)"), "top_p", "greater than 0 and at most 1"},
        {C, chat_body(R"("top_p":1.5)"), "top_p", "greater than 0 and at most 1"},
        {C, chat_body(R"("top_p":[1])"), "top_p", "must be a number"},
        {C, chat_body(R"("top_k":1.5)"), "top_k", "'top_k' must be an integer"},
        {C, chat_body(R"("top_k":"5")"), "top_k", "must be an integer"},
        {C, chat_body(R"("top_k":3000000000)"), "top_k", "must be an integer"},
        {C, chat_body(R"("min_p":-0.1)"), "min_p", "between 0 and 1"},
        {C, chat_body(R"("min_p":1.1)"), "min_p", "between 0 and 1"},
        {C, chat_body(R"("repeat_penalty":0)"), "repeat_penalty", "greater than 0"},
        {C, chat_body(R"("repeat_penalty":-1)"), "repeat_penalty", "greater than 0"},
        {C, chat_body(R"("repeat_penalty":1e300)"), "repeat_penalty", "greater than 0"},
        {C, chat_body(R"("presence_penalty":2.5)"), "presence_penalty", "between -2 and 2"},
        {C, chat_body(R"("presence_penalty":-3)"), "presence_penalty", "between -2 and 2"},
        {C, chat_body(R"("frequency_penalty":2.001)"), "frequency_penalty", "between -2 and 2"},
        {C, chat_body(R"("frequency_penalty":{})"), "frequency_penalty", "must be a number"},
        {C, chat_body(R"("seed":1.5)"), "seed", "'seed' must be an integer"},
        {C, chat_body(R"("seed":"7")"), "seed", "must be an integer"},
        {C, chat_body(R"("seed":1e20)"), "seed", "must be an integer"},
        {C, chat_body(R"("seed":-1e19)"), "seed", "must be an integer"},
        {C, chat_body(R"("n":2)"), "n", "'n' must be an integer equal to 1"},
        {C, chat_body(R"("n":0)"), "n", "equal to 1"},
        {C, chat_body(R"("n":"1")"), "n", "equal to 1"},
        {C, chat_body(R"("max_tokens":0)"), "max_tokens", "between 1 and 1048576"},
        {C, chat_body(R"("max_tokens":1048577)"), "max_tokens", "between 1 and 1048576"},
        {C, chat_body(R"("max_tokens":-1)"), "max_tokens", "between 1 and 1048576"},
        {C, chat_body(R"("max_tokens":2.5)"), "max_tokens", "must be an integer"},
        {C, chat_body(R"("max_tokens":"10")"), "max_tokens", "must be an integer"},
        {P, R"({"prompt":"x","max_completion_tokens":0})", "max_completion_tokens",
         "between 1 and 1048576"},
        // booleans and objects
        {C, chat_body(R"("stream":"true")"), "stream", "'stream' must be true or false"},
        {C, chat_body(R"("stream":1)"), "stream", "true or false"},
        {C, chat_body(R"("ignore_eos":"yes")"), "ignore_eos", "true or false"},
        {C, chat_body(R"("stream_options":"x")"), "stream_options", "must be an object"},
        {C, chat_body(R"("stream_options":{"include_usage":1})"), "stream_options.include_usage",
         "true or false"},
        // stop
        {C, chat_body(R"("stop":5)"), "stop", "a string or an array of at most 4 strings"},
        {C, chat_body(R"("stop":{})"), "stop", "a string or an array"},
        {C, chat_body(R"("stop":[1])"), "stop", "a string or an array"},
        {C, chat_body(R"("stop":["a",null])"), "stop", "a string or an array"},
        {C, chat_body(R"("stop":["1","2","3","4","5"])"), "stop", "at most 4"},
        {C, chat_body("\"stop\":\"" + std::string(257, 's') + "\""), "stop", "256 bytes"},
        {P, R"({"prompt":"x","stop":[")" + std::string(257, 's') + "\"]}", "stop", "256 bytes"},
    };
}

TEST(ServeRequest, EveryBadRequestIsA400NamingItsField)
{
    for (const Bad &b : bad_requests()) {
        SCOPED_TRACE(b.body.substr(0, 200));
        Request q(b.kind, b.body);
        EXPECT_FALSE(q.ok);
        EXPECT_EQ(q.e.status, 400);
        EXPECT_STREQ(q.e.type, "invalid_request_error");
        EXPECT_STREQ(q.e.param, b.param);
        EXPECT_NE(std::string(q.e.message).find(b.message), std::string::npos) << q.e.message;
        // The error's JSON parses and carries the same fields.
        char *text = vki_serve_error_json(&q.e);
        ASSERT_NE(text, nullptr);
        Json j(text);
        free(text);
        ASSERT_NE(j.root, nullptr);
        const cJSON *err = get(j.root, "error");
        EXPECT_EQ(keys(err), (std::set<std::string>{"message", "type", "param", "code"}));
        EXPECT_EQ(str(err, "message"), q.e.message);
        if (b.param[0]) EXPECT_EQ(str(err, "param"), b.param);
        else EXPECT_TRUE(cJSON_IsNull(get(err, "param")));
        EXPECT_TRUE(cJSON_IsNull(get(err, "code")));
    }
}

TEST(ServeRequest, OversizedBodyIs413AndNullArgumentsFail)
{
    std::string big = chat_body("\"pad\":\"" + std::string(VKI_SERVE_MAX_BODY, ' ') + "\"");
    Request q(VKI_SERVE_CHAT, big);
    EXPECT_FALSE(q.ok);
    EXPECT_EQ(q.e.status, 413);

    vki_serve_request r;
    vki_serve_error e;
    EXPECT_FALSE(vki_serve_request_parse(nullptr, 10, VKI_SERVE_CHAT, &r, &e));
    EXPECT_EQ(e.status, 400);
    vki_serve_request_free(&r);
    EXPECT_FALSE(vki_serve_request_parse("{}", 2, (vki_serve_kind)7, &r, &e));
    EXPECT_EQ(e.status, 400);
    vki_serve_request_free(&r);
    EXPECT_FALSE(vki_serve_request_parse("{}", 2, VKI_SERVE_CHAT, nullptr, &e));
    vki_serve_request_free(nullptr);
    // err may be NULL
    EXPECT_FALSE(vki_serve_request_parse("{", 1, VKI_SERVE_CHAT, &r, nullptr));
    vki_serve_request_free(&r);
}

TEST(ServeRequest, ClientBytesInAnErrorMessageStillGiveJson)
{
    std::string body = "{\"messages\":[{\"role\":\"\xff\xc3\\\"\",\"content\":\"x\"}]}";
    Request q(VKI_SERVE_CHAT, body);
    ASSERT_FALSE(q.ok);
    char *text = vki_serve_error_json(&q.e);
    ASSERT_NE(text, nullptr);
    Json j(text);
    free(text);
    ASSERT_NE(j.root, nullptr);
    std::string msg = str(get(j.root, "error"), "message");
    EXPECT_NE(msg.find("\xef\xbf\xbd\xef\xbf\xbd\""), std::string::npos) << msg; // U+FFFD twice
}

/* ---- Errors ----------------------------------------------------------------------------------- */

TEST(ServeError, SetAndJson)
{
    vki_serve_error e = {};
    vki_serve_error_set(&e, 404, "not_found_error", "model_not_found", "model",
                        "the model '%s' does not exist", "gpt-9");
    EXPECT_EQ(e.status, 404);
    EXPECT_STREQ(e.message, "the model 'gpt-9' does not exist");
    EXPECT_STREQ(e.param, "model");
    char *text = vki_serve_error_json(&e);
    ASSERT_NE(text, nullptr);
    Json j(text);
    free(text);
    ASSERT_NE(j.root, nullptr);
    EXPECT_EQ(keys(j.root), std::set<std::string>{"error"});
    const cJSON *err = get(j.root, "error");
    EXPECT_EQ(str(err, "message"), "the model 'gpt-9' does not exist");
    EXPECT_EQ(str(err, "type"), "not_found_error");
    EXPECT_EQ(str(err, "param"), "model");
    EXPECT_EQ(str(err, "code"), "model_not_found");

    // NULL type, code and param; a message longer than the buffer is cut, not overrun.
    vki_serve_error_set(&e, 503, nullptr, nullptr, nullptr, "%s", std::string(2000, 'q').c_str());
    EXPECT_EQ(e.param[0], 0);
    EXPECT_EQ(strlen(e.message), sizeof e.message - 1);
    text = vki_serve_error_json(&e);
    Json k(text);
    free(text);
    ASSERT_NE(k.root, nullptr);
    EXPECT_TRUE(cJSON_IsNull(get(get(k.root, "error"), "code")));
    EXPECT_TRUE(cJSON_IsNull(get(get(k.root, "error"), "param")));
    EXPECT_TRUE(cJSON_IsString(get(get(k.root, "error"), "type")));
    vki_serve_error_set(nullptr, 500, nullptr, nullptr, nullptr, "x"); // nothing to fill
}

/* ---- Responses and chunks --------------------------------------------------------------------- */

void expect_head(const cJSON *root, const char *id, const char *object, double created,
                 const char *model)
{
    EXPECT_EQ(str(root, "id"), id);
    EXPECT_EQ(str(root, "object"), object);
    ASSERT_TRUE(cJSON_IsNumber(get(root, "created")));
    EXPECT_EQ(get(root, "created")->valuedouble, created);
    EXPECT_EQ(str(root, "model"), model);
}

void expect_usage(const cJSON *root, double prompt, double completion)
{
    const cJSON *u = get(root, "usage");
    EXPECT_EQ(keys(u), (std::set<std::string>{"prompt_tokens", "completion_tokens", "total_tokens"}));
    EXPECT_EQ(cJSON_GetNumberValue(get(u, "prompt_tokens")), prompt);
    EXPECT_EQ(cJSON_GetNumberValue(get(u, "completion_tokens")), completion);
    EXPECT_EQ(cJSON_GetNumberValue(get(u, "total_tokens")), prompt + completion);
}

const cJSON *only_choice(const cJSON *root)
{
    const cJSON *choices = get(root, "choices");
    EXPECT_TRUE(cJSON_IsArray(choices));
    EXPECT_EQ(cJSON_GetArraySize(choices), 1);
    const cJSON *c = cJSON_GetArrayItem(choices, 0);
    EXPECT_EQ(cJSON_GetNumberValue(get(c, "index")), 0);
    EXPECT_TRUE(cJSON_IsNull(get(c, "logprobs")));
    return c;
}

TEST(ServeResponse, ChatCompletionShape)
{
    vki_serve_token_usage u = {12, 5};
    const char text[] = "Hello \"world\"\n";
    char *s = vki_serve_response_json(VKI_SERVE_CHAT, "chatcmpl-abc", 1700000000, "smol", text,
                                      sizeof text - 1, "length", u);
    ASSERT_NE(s, nullptr);
    Json j(s);
    free(s);
    ASSERT_NE(j.root, nullptr);
    EXPECT_EQ(keys(j.root), (std::set<std::string>{"id", "object", "created", "model", "choices",
                                                   "usage"}));
    expect_head(j.root, "chatcmpl-abc", "chat.completion", 1700000000, "smol");
    const cJSON *c = only_choice(j.root);
    EXPECT_EQ(keys(c), (std::set<std::string>{"index", "message", "logprobs", "finish_reason"}));
    EXPECT_EQ(keys(get(c, "message")), (std::set<std::string>{"role", "content"}));
    EXPECT_EQ(str(get(c, "message"), "role"), "assistant");
    EXPECT_EQ(str(get(c, "message"), "content"), text);
    EXPECT_EQ(str(c, "finish_reason"), "length");
    expect_usage(j.root, 12, 5);
}

TEST(ServeResponse, TextCompletionShape)
{
    char *s = vki_serve_response_json(VKI_SERVE_COMPLETION, "cmpl-1", 5, "m", "abcdef", 3, "stop",
                                      {4294967295u, 1});
    ASSERT_NE(s, nullptr);
    Json j(s);
    free(s);
    ASSERT_NE(j.root, nullptr);
    expect_head(j.root, "cmpl-1", "text_completion", 5, "m");
    const cJSON *c = only_choice(j.root);
    EXPECT_EQ(keys(c), (std::set<std::string>{"index", "text", "logprobs", "finish_reason"}));
    EXPECT_EQ(str(c, "text"), "abc"); // n bytes, not up to the NUL
    EXPECT_EQ(str(c, "finish_reason"), "stop");
    expect_usage(j.root, 4294967295.0, 1); // the total does not wrap around
}

TEST(ServeResponse, AnyBytesGiveJsonThatParses)
{
    // Model text can end mid-character, hold NUL or stray bytes; ids and model names quotes.
    const char text[] = "ok \xe2\x82 \0 \xff \xf0\x9f\x98\x80 \xc3";
    std::vector<char> exact(text, text + sizeof text - 1); // no NUL after the last byte
    // vki_utf8_sanitize's rule (tested with apps/common.c): each byte that does not begin a
    // well-formed character is one U+FFFD.
    const std::string r = "\xef\xbf\xbd";
    std::string want = "ok " + r + r + " " + r + " " + r + " \xf0\x9f\x98\x80 " + r;
    for (vki_serve_kind kind : {VKI_SERVE_CHAT, VKI_SERVE_COMPLETION}) {
        char *s = vki_serve_response_json(kind, "id\"\\\xff", 1, "mo\ndel\x80", exact.data(),
                                          exact.size(), "stop", {1, 2});
        ASSERT_NE(s, nullptr);
        Json j(s);
        ASSERT_NE(j.root, nullptr) << s;
        free(s);
        const cJSON *c = only_choice(j.root);
        EXPECT_EQ(kind == VKI_SERVE_CHAT ? str(get(c, "message"), "content") : str(c, "text"), want);
        EXPECT_EQ(str(j.root, "id"), "id\"\\\xef\xbf\xbd");
        EXPECT_EQ(str(j.root, "model"), "mo\ndel\xef\xbf\xbd");

        s = vki_serve_chunk_json(kind, "id", 1, "m", true, exact.data(), exact.size(), nullptr,
                                 nullptr);
        ASSERT_NE(s, nullptr);
        Json k(s);
        ASSERT_NE(k.root, nullptr) << s;
        free(s);
        c = only_choice(k.root);
        EXPECT_EQ(kind == VKI_SERVE_CHAT ? str(get(c, "delta"), "content") : str(c, "text"), want);
    }
    // NULL strings are empty strings, not crashes.
    char *s = vki_serve_response_json(VKI_SERVE_CHAT, nullptr, 0, nullptr, nullptr, 5, nullptr,
                                      {0, 0});
    ASSERT_NE(s, nullptr);
    Json j(s);
    free(s);
    ASSERT_NE(j.root, nullptr);
    EXPECT_EQ(str(get(only_choice(j.root), "message"), "content"), "");
    EXPECT_EQ(str(only_choice(j.root), "finish_reason"), "stop");
}

TEST(ServeResponse, ChatChunkShapes)
{
    auto chunk = [](bool first, const char *text, const char *finish) {
        char *s = vki_serve_chunk_json(VKI_SERVE_CHAT, "chatcmpl-x", 9, "smol", first, text,
                                       text ? strlen(text) : 0, finish, nullptr);
        EXPECT_NE(s, nullptr);
        auto j = std::make_unique<Json>(s);
        free(s);
        EXPECT_NE(j->root, nullptr);
        expect_head(j->root, "chatcmpl-x", "chat.completion.chunk", 9, "smol");
        EXPECT_EQ(keys(j->root),
                  (std::set<std::string>{"id", "object", "created", "model", "choices"}));
        return j;
    };
    {   // the first: role and content, finish_reason present and null
        auto j = chunk(true, "He", nullptr);
        const cJSON *c = only_choice(j->root);
        EXPECT_EQ(keys(c), (std::set<std::string>{"index", "delta", "logprobs", "finish_reason"}));
        EXPECT_EQ(keys(get(c, "delta")), (std::set<std::string>{"role", "content"}));
        EXPECT_EQ(str(get(c, "delta"), "role"), "assistant");
        EXPECT_EQ(str(get(c, "delta"), "content"), "He");
        EXPECT_TRUE(cJSON_IsNull(get(c, "finish_reason")));
    }
    {   // the next: content only
        auto j = chunk(false, "llo", nullptr);
        const cJSON *c = only_choice(j->root);
        EXPECT_EQ(keys(get(c, "delta")), std::set<std::string>{"content"});
        EXPECT_EQ(str(get(c, "delta"), "content"), "llo");
        EXPECT_TRUE(cJSON_IsNull(get(c, "finish_reason")));
    }
    {   // the end: an empty delta and the reason
        auto j = chunk(false, "", "stop");
        const cJSON *c = only_choice(j->root);
        EXPECT_TRUE(cJSON_IsObject(get(c, "delta")));
        EXPECT_EQ(keys(get(c, "delta")), std::set<std::string>{});
        EXPECT_EQ(str(c, "finish_reason"), "stop");
    }
    {   // an answer that ends before any text: role, empty content and the reason at once
        auto j = chunk(true, nullptr, "length");
        const cJSON *c = only_choice(j->root);
        EXPECT_EQ(str(get(c, "delta"), "role"), "assistant");
        EXPECT_EQ(str(get(c, "delta"), "content"), "");
        EXPECT_EQ(str(c, "finish_reason"), "length");
    }
    {   // the usage chunk of stream_options.include_usage
        vki_serve_token_usage u = {7, 3};
        char *s = vki_serve_chunk_json(VKI_SERVE_CHAT, "chatcmpl-x", 9, "smol", false, nullptr, 0,
                                       nullptr, &u);
        ASSERT_NE(s, nullptr);
        Json j(s);
        free(s);
        ASSERT_NE(j.root, nullptr);
        expect_head(j.root, "chatcmpl-x", "chat.completion.chunk", 9, "smol");
        EXPECT_TRUE(cJSON_IsArray(get(j.root, "choices")));
        EXPECT_EQ(cJSON_GetArraySize(get(j.root, "choices")), 0);
        expect_usage(j.root, 7, 3);
    }
}

TEST(ServeResponse, CompletionChunkShapes)
{
    char *s = vki_serve_chunk_json(VKI_SERVE_COMPLETION, "cmpl-y", 3, "m", true, "Once", 4,
                                   nullptr, nullptr);
    ASSERT_NE(s, nullptr);
    Json j(s);
    free(s);
    ASSERT_NE(j.root, nullptr);
    expect_head(j.root, "cmpl-y", "text_completion", 3, "m");
    const cJSON *c = only_choice(j.root);
    EXPECT_EQ(keys(c), (std::set<std::string>{"index", "text", "logprobs", "finish_reason"}));
    EXPECT_EQ(str(c, "text"), "Once");
    EXPECT_TRUE(cJSON_IsNull(get(c, "finish_reason")));

    s = vki_serve_chunk_json(VKI_SERVE_COMPLETION, "cmpl-y", 3, "m", false, "", 0, "length",
                             nullptr);
    Json k(s);
    free(s);
    ASSERT_NE(k.root, nullptr);
    c = only_choice(k.root);
    EXPECT_EQ(str(c, "text"), "");
    EXPECT_EQ(str(c, "finish_reason"), "length");

    vki_serve_token_usage u = {1, 2};
    s = vki_serve_chunk_json(VKI_SERVE_COMPLETION, "cmpl-y", 3, "m", false, nullptr, 0, nullptr,
                             &u);
    Json l(s);
    free(s);
    ASSERT_NE(l.root, nullptr);
    EXPECT_EQ(str(l.root, "object"), "text_completion");
    EXPECT_EQ(cJSON_GetArraySize(get(l.root, "choices")), 0);
    expect_usage(l.root, 1, 2);
}

/* ---- Stop strings ------------------------------------------------------------------------------ */

}  // namespace
