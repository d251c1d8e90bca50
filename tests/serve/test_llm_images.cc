// Images in prompts, as chat, generate and serve put them there (apps/llm_session.c): a tiny
// random multimodal model of each family from transformers (tools/gen_vision_golden.py: the
// language model as GGUF, the projector as an mmproj file, a 40x30 test image, and the logits
// transformers computes with the image in place). The session must spell the prompt as the
// family's processor does (markup tokens around the image's rows where the marker stood, BOS
// first, text on either side as text) and its evaluation (tokens, then the image's rows in one
// non-causal pass for Gemma 3, at Qwen2-VL's 2-D M-RoPE positions for Qwen2-VL and Qwen2.5-VL
// (tools/gen_qwen25vl_golden.py: its encoder's window attention over 2 windows), then tokens)
// must give transformers' logits after the prompt and at every position after the image.
// Also: what a session without a vision encoder, or a prompt naming an image it was not given,
// says.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <utility>
#include <string>
#include <vector>

#include "../models/sd_golden.h"

extern "C" {
#include "serve_internal.h"
}

namespace {

std::string data(const std::string &name) { return std::string(VKI_TEST_DATA) + "/vision/" + name; }

class LlmImages : public ::testing::TestWithParam<const char *> {
  protected:
    vki_app app = {};
    vki_llm_session s = {};
    bool open = false;

    void SetUp() override
    {
        std::string family = GetParam();
        for (const char *f : {".text.gguf", ".mmproj.gguf", "_golden.safetensors"})
            if (!std::ifstream(data(family + f)).good())
                GTEST_SKIP() << data(family + f) << " is absent (tools/gen_vision_golden.py)";
        app.validation = true;
        vki_llm_opts o = {};
        std::string model = data(family + ".text.gguf"), mmproj = data(family + ".mmproj.gguf");
        o.model = model.c_str();
        o.mmproj = mmproj.c_str();
        o.n_ctx = 256; // LLaVA 1.6's 40x30 image alone is 152 embeddings
        o.kv_dtype = VKI_DTYPE_F32;
        ASSERT_EQ(vki_llm_session_open(&app, &o, &s), VKI_EXIT_OK);
        open = true;
    }
    void TearDown() override
    {
        if (open) vki_llm_session_close(&s);
        EXPECT_EQ(vki_app_close(&app, VKI_EXIT_OK), VKI_EXIT_OK) << "validation messages (above)";
    }
    std::string piece(int32_t id)
    {
        size_t len = 0;
        const char *p = vki_llm_session_piece(&s, id, &len);
        return std::string(p ? p : "", len);
    }
};

TEST_P(LlmImages, PromptAndLogitsMatchTransformers)
{
    SdGolden golden(data(std::string(GetParam()) + "_golden.safetensors"));
    std::vector<int32_t> want = golden.i32("prompt_ids");
    std::vector<float> logits_all = golden.f32("logits");
    ASSERT_FALSE(want.empty());
    const vki_llm_info *info = vki_llm_info_get(s.llm);
    ASSERT_EQ(logits_all.size(), want.size() * info->n_vocab);

    vki_llm_image img;
    char err[512] = "";
    ASSERT_EQ(vki_llm_session_image_file(&s, data("test_image.png").c_str(), &img, err, sizeof err),
              VKI_OK) << err;
    // The image's place: the run of its n placeholder tokens in transformers' prompt.
    size_t at = 0;
    while (at + img.n <= want.size() &&
           !std::all_of(want.begin() + at, want.begin() + at + img.n, [&](int32_t t) { return t == want[at]; }))
        at++;
    ASSERT_LE(at + img.n, want.size()) << "no run of " << img.n << " image tokens in the golden prompt";
    // The text around it, as a user would have written it: the ids' pieces, markup (control
    // tokens) spelling nothing. BOS is the tokenizer's to add.
    char marker[VKI_LLM_IMAGE_MARKER_SIZE];
    vki_llm_image_marker(img.id, marker);
    std::string text;
    for (size_t i = 1; i < at; i++) text += piece(want[i]);
    text += marker;
    for (size_t i = at + img.n; i < want.size(); i++) text += piece(want[i]);
    std::vector<int32_t> ids(info->n_ctx);
    uint32_t n = 0;
    ASSERT_EQ(vki_llm_session_encode_text(&s, text.data(), text.size(), nullptr, 0, &img, 1,
                                          ids.data(), uint32_t(ids.size()), &n, err, sizeof err),
              VKI_OK) << err;
    ids.resize(n);
    // These test tokenizers do not ask for BOS (no tokenizer.ggml.add_bos_token), where
    // transformers' processor writes it: it is put in front here.
    if (!vki_tokenizer_add_bos(s.tok)) ids.insert(ids.begin(), want[0]), n++;
    std::vector<int32_t> expect = want;
    for (size_t i = at; i < at + img.n; i++) expect[i] = VKI_LLM_IMAGE_ROW(img.id);
    EXPECT_EQ(ids, expect);

    std::vector<float> logits(info->n_vocab);
    ASSERT_EQ(vki_llm_session_eval(&s, 0, ids.data(), n, &img, 1, logits.data(), err, sizeof err),
              VKI_OK) << err;
    const float *ref = logits_all.data() + (want.size() - 1) * info->n_vocab;
    double num = 0, den = 0;
    for (uint32_t i = 0; i < info->n_vocab; i++) {
        num += (logits[i] - ref[i]) * double(logits[i] - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    // transformers in f32 against the device in f32 (an f32 cache): rounding only.
    std::printf("%s: logits after the prompt, normalised error %.3g\n", GetParam(), num / den);
    EXPECT_LT(num / den, 1e-8) << "normalised error of the logits after the prompt";

    // Every position after the image, token by token on a cache rewound to the image's end (as
    // the server's cache reuse does): where the text goes on after the image is where a wrong
    // rope position shows (Qwen2-VL's M-RoPE: the text after a 3x2 image goes on from 3 past
    // the image's first position, not 6).
    vki_llm_seq_rewind(s.llm, 0, uint32_t(at + img.n));
    double worst = 0;
    for (size_t k = at + img.n; k < n; k++) {
        uint32_t seq = 0;
        ASSERT_EQ(vki_llm_decode(s.llm, &seq, &ids[k], 1, logits.data()), VKI_OK)
            << vki_llm_last_error(s.llm);
        ref = logits_all.data() + k * info->n_vocab;
        num = den = 0;
        for (uint32_t i = 0; i < info->n_vocab; i++) {
            num += (logits[i] - ref[i]) * double(logits[i] - ref[i]);
            den += double(ref[i]) * ref[i];
        }
        EXPECT_LT(num / den, 1e-8) << "normalised error of the logits at " << k << " (after the image)";
        worst = std::max(worst, num / den);
    }
    std::printf("%s: logits at the %zu positions after the image, worst normalised error %.3g\n",
                GetParam(), size_t(n) - (at + img.n), worst);

    // A cache that holds the prompt up to the middle of the image goes back to its start.
    EXPECT_EQ(vki_llm_image_start(ids.data(), uint32_t(at + img.n / 2)), at);
    EXPECT_EQ(vki_llm_image_start(ids.data(), uint32_t(at + img.n)), at + img.n);
    // A prompt naming an image it was not given is refused.
    ASSERT_EQ(vki_llm_session_encode_text(&s, text.data(), text.size(), nullptr, 0, nullptr, 0,
                                          ids.data(), uint32_t(ids.size()), &n, err, sizeof err),
              VKI_ERROR_NOT_FOUND);
    EXPECT_NE(std::string(err).find("not given"), std::string::npos) << err;
    vki_llm_image_free(&img);
}

TEST_P(LlmImages, ChatMarkupKeepsTheImageInsideTheUserTurn)
{
    vki_llm_image img;
    char err[512] = "";
    ASSERT_EQ(vki_llm_session_image_file(&s, data("test_image.png").c_str(), &img, err, sizeof err),
              VKI_OK) << err;
    char marker[VKI_LLM_IMAGE_MARKER_SIZE];
    vki_llm_image_marker(img.id, marker);
    std::string content = std::string(marker) + "What is this?";
    vki_chat_message msg = {"user", content.c_str()};
    vki_chat_prompt p = {};
    p.tmpl = VKI_CHAT_TEMPLATE_CHATML;
    p.messages = &msg;
    p.count = 1;
    p.add_assistant_prompt = true;
    std::vector<int32_t> ids(vki_llm_info_get(s.llm)->n_ctx);
    uint32_t n = 0;
    ASSERT_EQ(vki_llm_session_encode(&s, &p, &img, 1, ids.data(), uint32_t(ids.size()), &n, err,
                                     sizeof err), VKI_OK) << err;
    ids.resize(n);
    // Templates that trim contents (Gemma's, as Python's strip: 0x1e is whitespace to it)
    // keep a marker at either end of a message.
    for (vki_chat_template t : {VKI_CHAT_TEMPLATE_GEMMA, VKI_CHAT_TEMPLATE_LLAMA3})
        for (const std::string &c : {content, std::string("What is this?") + marker}) {
            vki_chat_message m2 = {"user", c.c_str()};
            vki_chat_prompt p2 = p;
            p2.tmpl = t;
            p2.messages = &m2;
            std::vector<int32_t> ids2(ids.capacity() + 64);
            uint32_t n2 = 0;
            ASSERT_EQ(vki_llm_session_encode(&s, &p2, &img, 1, ids2.data(), uint32_t(ids2.size()),
                                             &n2, err, sizeof err), VKI_OK) << err;
            EXPECT_EQ(std::count(ids2.begin(), ids2.begin() + n2, VKI_LLM_IMAGE_ROW(img.id)), img.n)
                << vki_chat_template_name(t) << ": " << c;
        }
    // The same conversation with the image's place empty: the rows (with their markup) are
    // what was added, after "<|im_start|>user\n", and the rest is unchanged.
    msg.content = "What is this?";
    std::vector<int32_t> plain(ids.size());
    uint32_t n_plain = 0;
    ASSERT_EQ(vki_llm_session_encode(&s, &p, &img, 1, plain.data(), uint32_t(plain.size()), &n_plain,
                                     err, sizeof err), VKI_OK) << err;
    plain.resize(n_plain);
    size_t first = 0, rows = 0;
    while (first < ids.size() && ids[first] >= 0) first++;
    for (int32_t id : ids) rows += id == VKI_LLM_IMAGE_ROW(img.id);
    EXPECT_EQ(rows, img.n);
    ASSERT_LT(first, ids.size());
    size_t same = 0;
    while (same < plain.size() && ids[same] == plain[same]) same++;
    EXPECT_LE(same, first);
    EXPECT_GE(same + 2, first) << "at most the markup (2 tokens) between the turn's opening and the rows";
    EXPECT_EQ(piece(plain[same - 1]), "\n") << "the image comes right after the user turn's opening";
    EXPECT_EQ(std::vector<int32_t>(ids.end() - 8, ids.end()), std::vector<int32_t>(plain.end() - 8, plain.end()));
    vki_llm_image_free(&img);
}

INSTANTIATE_TEST_SUITE_P(Family, LlmImages, ::testing::Values("gemma3", "idefics3", "qwen2vl", "qwen25vl", "llava16"),
                         [](const auto &i) { return std::string(i.param); });

// The server's way (apps/serve_sched.c) with a vision encoder: a chat request holding the test
// image as an image_url part's bytes gives the reply the session's own calls give (tokens,
// then the image's rows, then tokens; greedy), with prefill chunks of 4 that must not cut the
// image's 16 rows; the conversation's next turn, which sends the image again, reuses the
// slot's cache past it.
std::string wait_text(vki_serve_job *j, int *status, std::string *message)
{
    timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 600;
    pthread_mutex_lock(&j->lock);
    while (!j->finished && pthread_cond_timedwait(&j->changed, &j->lock, &until) == 0) {
    }
    std::string text(j->text ? j->text : "", j->text_len);
    *status = j->finished ? j->error.status : -1;
    *message = j->error.message;
    pthread_mutex_unlock(&j->lock);
    return text;
}

vki_serve_job *image_job(const std::vector<std::pair<std::string, std::string>> &msgs,
                         const std::vector<uint8_t> &png)
{
    vki_serve_job *j = vki_serve_job_create(VKI_SERVE_CHAT);
    j->req.kind = VKI_SERVE_CHAT;
    j->req.messages = static_cast<vki_chat_message *>(calloc(msgs.size(), sizeof(vki_chat_message)));
    for (size_t i = 0; i < msgs.size(); i++) {
        j->req.messages[i].role = strdup(msgs[i].first.c_str());
        j->req.messages[i].content = strdup(msgs[i].second.c_str());
    }
    j->req.n_messages = uint32_t(msgs.size());
    j->req.images = static_cast<vki_serve_image *>(calloc(1, sizeof(vki_serve_image)));
    j->req.images[0].data = static_cast<uint8_t *>(malloc(png.size()));
    memcpy(j->req.images[0].data, png.data(), png.size());
    j->req.images[0].size = png.size();
    j->req.n_images = 1;
    j->req.max_tokens = 6;
    j->req.sampling.temperature = VKI_SAMPLER_GREEDY;
    j->req.has_temperature = true;
    return j;
}

TEST(LlmImagesServe, ImageRequestMatchesTheSessionAndReusesTheCache)
{
    for (const char *f : {"gemma3.text.gguf", "gemma3.mmproj.gguf", "test_image.png"})
        if (!std::ifstream(data(f)).good()) GTEST_SKIP() << data(f) << " is absent";
    vki_app app = {};
    app.validation = true;
    vki_llm_session s = {};
    vki_llm_opts o = {};
    std::string model = data("gemma3.text.gguf"), mmproj = data("gemma3.mmproj.gguf");
    o.model = model.c_str();
    o.mmproj = mmproj.c_str();
    o.n_ctx = 256;
    o.n_seq = 2;
    ASSERT_EQ(vki_llm_session_open(&app, &o, &s), VKI_EXIT_OK);
    ASSERT_NE(s.chat_template, VKI_CHAT_TEMPLATE_NONE);
    std::ifstream f(data("test_image.png"), std::ios::binary);
    std::vector<uint8_t> png((std::istreambuf_iterator<char>(f)), {});
    char m0[VKI_LLM_IMAGE_MARKER_SIZE];
    vki_llm_image_marker(0, m0);
    std::string question = std::string(m0) + "What is this?";

    // The reference: the session's calls on sequence 0, greedy.
    vki_llm_image img;
    char err[512] = "";
    ASSERT_EQ(vki_llm_session_image_bytes(&s, png.data(), png.size(), &img, err, sizeof err), VKI_OK) << err;
    img.id = 0; // as the request's marker names it
    vki_chat_message msg = {"user", question.c_str()};
    vki_chat_prompt p = {};
    p.tmpl = s.chat_template;
    p.messages = &msg;
    p.count = 1;
    p.add_assistant_prompt = true;
    p.default_system = vki_tokenizer_default_system(s.tok);
    std::vector<int32_t> ids(256);
    uint32_t n = 0;
    ASSERT_EQ(vki_llm_session_encode(&s, &p, &img, 1, ids.data(), 256, &n, err, sizeof err), VKI_OK) << err;
    const vki_llm_info *info = vki_llm_info_get(s.llm);
    std::vector<float> logits(info->n_vocab);
    ASSERT_EQ(vki_llm_session_eval(&s, 0, ids.data(), n, &img, 1, logits.data(), err, sizeof err), VKI_OK) << err;
    std::string want;
    for (int k = 0; k < 6; k++) {
        int32_t tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (vki_tokenizer_is_end(s.tok, tok)) break;
        size_t len = 0;
        const char *piece = vki_llm_session_piece(&s, tok, &len);
        want.append(piece, len);
        uint32_t seq = 0;
        if (k < 5) ASSERT_EQ(vki_llm_decode(s.llm, &seq, &tok, 1, logits.data()), VKI_OK);
    }
    vki_llm_seq_rewind(s.llm, 0, 0);
    EXPECT_FALSE(want.empty()) << "the reference reply ended at once: nothing to compare";
    uint32_t image_end = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] < 0) image_end = i + 1;
    vki_llm_image_free(&img);

    vki_serve_sched_desc d = {};
    d.session = &s;
    d.parallel = 2;
    d.queue_capacity = 4;
    d.chunk = 4; // the image's 16 rows go in one step all the same
    d.model_id = "gemma3-tiny";
    vki_serve_sched *sched = nullptr;
    ASSERT_EQ(vki_serve_sched_start(&d, &sched), VKI_EXIT_OK);
    vki_serve_error e = {};
    vki_serve_job *j = image_job({{"user", question}}, png);
    ASSERT_TRUE(vki_serve_sched_submit(sched, j, &e)) << e.message;
    int status = 0;
    std::string message;
    std::string got = wait_text(j, &status, &message);
    EXPECT_EQ(status, 0) << message;
    EXPECT_EQ(got, want);
    vki_serve_job_release(j);
    // The next turn sends the image again: the slot keeps everything up to the reply.
    vki_serve_metrics before, after;
    vki_serve_sched_metrics(sched, &before);
    j = image_job({{"user", question}, {"assistant", got}, {"user", "And?"}}, png);
    ASSERT_TRUE(vki_serve_sched_submit(sched, j, &e)) << e.message;
    wait_text(j, &status, &message);
    EXPECT_EQ(status, 0) << message;
    vki_serve_job_release(j);
    vki_serve_sched_metrics(sched, &after);
    EXPECT_GE(after.prompt_tokens_cached - before.prompt_tokens_cached, image_end)
        << "the cached prefix reaches past the image";
    // A file that is no image is the client's error, and the server goes on.
    j = image_job({{"user", question}}, std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1});
    ASSERT_TRUE(vki_serve_sched_submit(sched, j, &e)) << e.message;
    wait_text(j, &status, &message);
    EXPECT_EQ(status, 400);
    EXPECT_NE(message.find("image 0"), std::string::npos) << message;
    vki_serve_job_release(j);
    vki_serve_sched_stop(sched);
    vki_llm_session_close(&s);
    EXPECT_EQ(vki_app_close(&app, VKI_EXIT_OK), VKI_EXIT_OK) << "validation messages (above)";
}

TEST(LlmImagesNoEncoder, ImagesNeedAVisionEncoder)
{
    vki_llm_session s = {};
    vki_llm_image img;
    char err[256] = "";
    EXPECT_EQ(vki_llm_session_image_file(&s, "whatever.png", &img, err, sizeof err),
              VKI_ERROR_UNSUPPORTED);
    EXPECT_NE(std::string(err).find("no vision encoder"), std::string::npos) << err;
    const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    EXPECT_EQ(vki_llm_session_image_bytes(&s, png, sizeof png, &img, err, sizeof err),
              VKI_ERROR_UNSUPPORTED);
    EXPECT_EQ(img.embd, nullptr);
    // Markers: distinct per id, found in text, and absent from text without them.
    char a[VKI_LLM_IMAGE_MARKER_SIZE], b[VKI_LLM_IMAGE_MARKER_SIZE];
    vki_llm_image_marker(0, a);
    vki_llm_image_marker(4000000000u, b);
    EXPECT_STRNE(a, b);
    std::string t = std::string("look ") + b + " here";
    EXPECT_TRUE(vki_llm_text_has_marker(t.data(), t.size()));
    EXPECT_FALSE(vki_llm_text_has_marker(t.data(), 6));
    EXPECT_FALSE(vki_llm_text_has_marker("vki-image:1", 11));
    EXPECT_FALSE(vki_llm_text_has_marker("\x1evki-image:1\x1e", 14)); // not bracketed
    EXPECT_LT(VKI_LLM_IMAGE_ROW(0x7ffffffeu), 0);
}

} // namespace
