// The server's scheduler (apps/serve_sched.c) on the default model, without HTTP: jobs are
// submitted directly and their results read from the job.
//
// The reference is independent of the scheduler: a plain greedy loop in this file over the
// engine (vki_chat_encode, vki_llm_eval_seq on a fresh sequence, argmax, vki_llm_decode with
// one row). The scheduler must give the same text whether a request runs alone or beside seven
// others in four slots (the engine's S-row decode plan computes each row alone), also when a
// slot reuses a cached prefix. Cancellation, the bounded queue, shutdown, stop strings, a
// prompt longer than the context, chunked prefill beside a stream, the choice of slot for a
// conversation's next turn and an engine failure are checked on the same model.
//
// One model load (SmolLM2-135M Q4_1, 4 sequences of 512 tokens) serves every test; each test
// starts its own scheduler (which starts every sequence empty). Replies are kept short
// (MAX_TOKENS): decoding on a loaded 2-core lavapipe is about a token per second.
#include <gtest/gtest.h>

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern "C" {
#include "serve_internal.h"
}

namespace {

constexpr uint32_t PARALLEL = 4;
constexpr uint32_t N_CTX = 512;
constexpr uint32_t MAX_TOKENS = 8;

const char *const PROMPTS[8] = {
    "What is the capital of France?",
    "Name a primary colour.",
    "How many legs does a spider have?",
    "Say hello in Spanish.",
    "What is 7 times 6?",
    "Which planet is closest to the Sun?",
    "Give me one word that rhymes with cat.",
    "What do bees make?",
};

// A completion prompt whose greedy continuation goes on for a long time.
const char *const COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,";

typedef std::vector<std::pair<std::string, std::string>> Messages; // (role, content)

struct Model {
    vki_app app = {};
    vki_llm_session s = {};
    bool open = false;
    std::string skip; // why the tests skip, when the model is absent
};

Model *g_model = nullptr;

struct Reply {
    std::string text;
    std::string finish;
    int status = 0;
    std::string code, message;
    vki_serve_token_usage usage = {};
    bool started = false, finished = false;
};

class ServeSched : public ::testing::Test {
  protected:
    static void SetUpTestSuite()
    {
        g_model = new Model;
        char path[1024];
        vki_default_model_path(path, sizeof path);
        if (!std::ifstream(path).good()) {
            g_model->skip = std::string(path) + " is absent: tools/fetch_models.sh downloads it";
            return;
        }
        g_model->app.validation = true;
        vki_llm_opts o = {};
        o.n_ctx = N_CTX;
        o.n_seq = PARALLEL;
        g_model->open = vki_llm_session_open(&g_model->app, &o, &g_model->s) == VKI_EXIT_OK;
    }
    static void TearDownTestSuite()
    {
        if (g_model->open) vki_llm_session_close(&g_model->s);
        int code = vki_app_close(&g_model->app, VKI_EXIT_OK);
        if (g_model->open) EXPECT_EQ(code, VKI_EXIT_OK) << "validation messages (printed above)";
        delete g_model;
        g_model = nullptr;
    }

    void SetUp() override
    {
        if (!g_model->skip.empty()) GTEST_SKIP() << g_model->skip;
        ASSERT_TRUE(g_model->open) << "opening the default model failed (printed above)";
    }
    void TearDown() override
    {
        vki_serve_sched_stop(sched);
        if (g_model->open) vki_llm_set_abort(g_model->s.llm, nullptr, nullptr);
    }

    vki_serve_sched *sched = nullptr;

    void start(uint32_t queue_capacity = 8, uint32_t chunk = 0)
    {
        vki_serve_sched_desc d = {};
        d.session = &g_model->s;
        d.parallel = PARALLEL;
        d.queue_capacity = queue_capacity;
        d.chunk = chunk;
        d.model_id = "smollm2";
        ASSERT_EQ(vki_serve_sched_start(&d, &sched), VKI_EXIT_OK);
    }

    static vki_serve_job *chat(const Messages &msgs, uint32_t max_tokens = MAX_TOKENS)
    {
        vki_serve_job *j = vki_serve_job_create(VKI_SERVE_CHAT);
        EXPECT_NE(j, nullptr);
        j->req.kind = VKI_SERVE_CHAT;
        j->req.messages = static_cast<vki_chat_message *>(calloc(msgs.size(), sizeof(vki_chat_message)));
        for (size_t i = 0; i < msgs.size(); i++) {
            j->req.messages[i].role = strdup(msgs[i].first.c_str());
            j->req.messages[i].content = strdup(msgs[i].second.c_str());
        }
        j->req.n_messages = uint32_t(msgs.size());
        j->req.max_tokens = max_tokens;
        j->req.sampling.temperature = VKI_SAMPLER_GREEDY;
        j->req.has_temperature = true;
        return j;
    }
    static vki_serve_job *ask(const char *question, uint32_t max_tokens = MAX_TOKENS)
    {
        return chat({{"user", question}}, max_tokens);
    }
    static vki_serve_job *completion(const char *prompt, uint32_t max_tokens)
    {
        vki_serve_job *j = vki_serve_job_create(VKI_SERVE_COMPLETION);
        EXPECT_NE(j, nullptr);
        j->req.kind = VKI_SERVE_COMPLETION;
        j->req.prompt = strdup(prompt);
        j->req.max_tokens = max_tokens;
        j->req.sampling.temperature = VKI_SAMPLER_GREEDY;
        j->req.has_temperature = true;
        return j;
    }
    static void add_stop(vki_serve_job *j, const std::string &stop)
    {
        j->req.stop[j->req.n_stop++] = strdup(stop.c_str());
    }

    void submit(vki_serve_job *j)
    {
        vki_serve_error err = {};
        ASSERT_TRUE(vki_serve_sched_submit(sched, j, &err)) << err.message;
    }

    // Waits until `done(job)` holds (under the job's lock), at most `seconds`.
    template <class F> static bool wait_for(vki_serve_job *j, F done, double seconds = 600)
    {
        timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += time_t(seconds);
        pthread_mutex_lock(&j->lock);
        int rc = 0;
        while (!done(j) && rc == 0) rc = pthread_cond_timedwait(&j->changed, &j->lock, &until);
        bool ok = done(j);
        pthread_mutex_unlock(&j->lock);
        return ok;
    }

    static Reply result(vki_serve_job *j)
    {
        EXPECT_TRUE(wait_for(j, [](vki_serve_job *x) { return x->finished; })) << "job not finished";
        Reply r;
        pthread_mutex_lock(&j->lock);
        r.text.assign(j->text ? j->text : "", j->text_len);
        r.finish = j->finish_reason ? j->finish_reason : "";
        r.status = j->error.status;
        r.code = j->error.code ? j->error.code : "";
        r.message = j->error.message;
        r.usage = j->usage;
        r.started = j->started;
        r.finished = j->finished;
        pthread_mutex_unlock(&j->lock);
        return r;
    }

    static void cancel(vki_serve_job *j)
    {
        pthread_mutex_lock(&j->lock);
        j->cancelled = true;
        pthread_cond_broadcast(&j->changed);
        pthread_mutex_unlock(&j->lock);
    }

    vki_serve_metrics metrics()
    {
        vki_serve_metrics m;
        vki_serve_sched_metrics(sched, &m);
        return m;
    }
};

// The independent reference: greedy decoding of `msgs` on a fresh sequence 0, with the
// engine's calls alone. Run only while no scheduler owns the session.
struct RefReply {
    std::string text;
    std::string finish;
    uint32_t n_prompt = 0, n_gen = 0;
};

RefReply reference_ids(const std::vector<int32_t> &ids, uint32_t max_tokens)
{
    vki_llm_session *s = &g_model->s;
    uint32_t n = uint32_t(ids.size());
    RefReply r;
    r.n_prompt = n;
    const vki_llm_info *info = vki_llm_info_get(s->llm);
    std::vector<float> logits(info->n_vocab);
    vki_llm_seq_rewind(s->llm, 0, 0);
    EXPECT_EQ(vki_llm_eval_seq(s->llm, 0, ids.data(), n, logits.data()), VKI_OK)
        << vki_llm_last_error(s->llm);
    for (;;) {
        int32_t tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (vki_tokenizer_is_end(s->tok, tok)) {
            r.finish = "stop";
            break;
        }
        char piece[256];
        size_t len = vki_tokenizer_piece(s->tok, tok, piece, sizeof piece);
        EXPECT_LE(len, sizeof piece);
        r.text.append(piece, std::min(len, sizeof piece));
        if (++r.n_gen == max_tokens) {
            r.finish = "length";
            break;
        }
        uint32_t seq = 0;
        EXPECT_EQ(vki_llm_decode(s->llm, &seq, &tok, 1, logits.data()), VKI_OK)
            << vki_llm_last_error(s->llm);
    }
    vki_llm_seq_rewind(s->llm, 0, 0);
    return r;
}

RefReply reference(const Messages &msgs, uint32_t max_tokens)
{
    vki_llm_session *s = &g_model->s;
    std::vector<vki_chat_message> m;
    for (const auto &p : msgs) m.push_back({p.first.c_str(), p.second.c_str()});
    vki_chat_prompt p = {};
    p.tmpl = s->chat_template;
    p.messages = m.data();
    p.count = uint32_t(m.size());
    p.add_assistant_prompt = true;
    p.default_system = vki_tokenizer_default_system(s->tok);
    std::vector<int32_t> ids(N_CTX);
    uint32_t n = 0;
    EXPECT_EQ(vki_chat_encode(s->tok, &p, ids.data(), N_CTX, &n), VKI_OK);
    ids.resize(n);
    return reference_ids(ids, max_tokens);
}

// A raw prompt, encoded as /v1/completions does: BOS as the model says, no control tokens.
RefReply reference_text(const char *text, uint32_t max_tokens)
{
    vki_llm_session *s = &g_model->s;
    std::vector<int32_t> ids(N_CTX);
    uint32_t n = 0;
    EXPECT_EQ(vki_tokenizer_encode(s->tok, text, strlen(text), vki_tokenizer_add_bos(s->tok), false,
                                   ids.data(), N_CTX, &n), VKI_OK);
    ids.resize(n);
    return reference_ids(ids, max_tokens);
}

// The references of PROMPTS, computed once.
const std::vector<RefReply> &prompt_references()
{
    static std::vector<RefReply> refs;
    if (refs.empty())
        for (const char *q : PROMPTS) refs.push_back(reference({{"user", q}}, MAX_TOKENS));
    return refs;
}

TEST_F(ServeSched, AloneAndEightAtOnceMatchTheReference)
{
    const std::vector<RefReply> &refs = prompt_references();
    for (size_t i = 0; i < refs.size(); i++)
        EXPECT_FALSE(refs[i].text.empty()) << PROMPTS[i];
    start();
    // One at a time: the slots fill up with cached prompts sharing the system prompt, so later
    // jobs reuse a prefix.
    for (size_t i = 0; i < 8; i++) {
        vki_serve_job *j = ask(PROMPTS[i]);
        submit(j);
        Reply r = result(j);
        EXPECT_EQ(r.status, 0) << r.message;
        EXPECT_EQ(r.text, refs[i].text) << PROMPTS[i];
        EXPECT_EQ(r.finish, refs[i].finish) << PROMPTS[i];
        EXPECT_EQ(r.usage.prompt_tokens, refs[i].n_prompt);
        EXPECT_EQ(r.usage.completion_tokens, refs[i].n_gen);
        vki_serve_job_release(j);
    }
    vki_serve_metrics m = metrics();
    EXPECT_EQ(m.jobs_done, 8u);
    EXPECT_GT(m.prompt_tokens_cached, 0u) << "the system prompt is a common prefix";

    // All eight at once in four slots: four wait in the queue.
    std::vector<vki_serve_job *> jobs;
    for (size_t i = 0; i < 8; i++) {
        jobs.push_back(ask(PROMPTS[i]));
        submit(jobs.back());
    }
    m = metrics();
    EXPECT_EQ(m.slots_busy + m.queue_length, 8u);
    EXPECT_LE(m.slots_busy, PARALLEL);
    uint64_t generated = 0;
    for (size_t i = 0; i < 8; i++) {
        Reply r = result(jobs[i]);
        EXPECT_EQ(r.status, 0) << r.message;
        EXPECT_EQ(r.text, refs[i].text) << PROMPTS[i];
        EXPECT_EQ(r.finish, refs[i].finish) << PROMPTS[i];
        generated += r.usage.completion_tokens;
        vki_serve_job_release(jobs[i]);
    }
    m = metrics();
    EXPECT_EQ(m.jobs_done, 16u);
    EXPECT_EQ(m.jobs_failed + m.jobs_cancelled, 0u);
    EXPECT_EQ(m.slots_busy + m.queue_length, 0u);
    EXPECT_EQ(m.slots_total, PARALLEL);
    EXPECT_EQ(m.generated_tokens, 2 * generated);
    EXPECT_GT(m.decode_seconds, 0.0);
}

TEST_F(ServeSched, StopStringsEndTheTextBeforeThem)
{
    const std::vector<RefReply> &refs = prompt_references();
    start();
    // A stop string from the middle of each reference reply, one that spans tokens (three
    // characters from a word boundary), and one that never occurs.
    std::vector<std::pair<vki_serve_job *, std::string>> jobs;
    for (size_t i = 0; i < 3; i++) {
        const std::string &t = refs[i].text;
        ASSERT_GE(t.size(), 4u) << PROMPTS[i];
        std::string stop = t.substr(t.size() / 2, 3);
        vki_serve_job *j = ask(PROMPTS[i]);
        add_stop(j, "never in any reply \x01");
        add_stop(j, stop);
        submit(j);
        jobs.push_back({j, t.substr(0, t.find(stop))});
    }
    vki_serve_job *none = ask(PROMPTS[3]);
    add_stop(none, "never in any reply \x01");
    submit(none);
    for (auto &[j, expected] : jobs) {
        Reply r = result(j);
        EXPECT_EQ(r.status, 0) << r.message;
        EXPECT_EQ(r.text, expected);
        EXPECT_EQ(r.finish, "stop");
        vki_serve_job_release(j);
    }
    Reply r = result(none);
    EXPECT_EQ(r.text, refs[3].text);
    EXPECT_EQ(r.finish, refs[3].finish);
    vki_serve_job_release(none);
}

// llama.cpp's "ignore_eos": the reply that ended at an end-of-generation token goes on to
// max_tokens, and begins with that reply.
TEST_F(ServeSched, IgnoreEosRunsToMaxTokens)
{
    start();
    const uint32_t max_tokens = 40;
    vki_serve_job *plain = ask(PROMPTS[0], max_tokens);
    submit(plain);
    Reply a = result(plain);
    vki_serve_job_release(plain);
    ASSERT_EQ(a.status, 0) << a.message;
    if (a.finish != "stop") GTEST_SKIP() << "the reply did not end by itself within " << max_tokens;
    EXPECT_LT(a.usage.completion_tokens, max_tokens);
    vki_serve_job *on = ask(PROMPTS[0], max_tokens);
    on->req.ignore_eos = true;
    submit(on);
    Reply b = result(on);
    vki_serve_job_release(on);
    ASSERT_EQ(b.status, 0) << b.message;
    EXPECT_EQ(b.finish, "length");
    EXPECT_EQ(b.usage.completion_tokens, max_tokens);
    EXPECT_EQ(b.text.compare(0, a.text.size(), a.text), 0) << a.text << " | " << b.text;
    EXPECT_GT(b.text.size(), a.text.size());
}

TEST_F(ServeSched, CompletionMatchesTheReference)
{
    // Its text spells a control token, which must stay text (the reference encodes it so).
    const char *prompt = "<|im_start|>The three primary colours are";
    RefReply ref = reference_text(prompt, 6);
    vki_tokenizer *tok = g_model->s.tok;
    uint32_t n_special = 0;
    int32_t ids[64];
    ASSERT_EQ(vki_tokenizer_encode(tok, prompt, strlen(prompt), vki_tokenizer_add_bos(tok), true,
                                   ids, 64, &n_special), VKI_OK);
    EXPECT_GT(ref.n_prompt, n_special) << "<|im_start|> spelled out takes several tokens";
    start();
    vki_serve_job *j = completion(prompt, 6);
    EXPECT_EQ(std::string(j->id).rfind("cmpl-", 0), 0u);
    submit(j);
    Reply r = result(j);
    EXPECT_EQ(r.status, 0) << r.message;
    EXPECT_EQ(r.text, ref.text);
    EXPECT_EQ(r.finish, ref.finish);
    EXPECT_EQ(r.usage.prompt_tokens, ref.n_prompt);
    EXPECT_EQ(r.usage.completion_tokens, ref.n_gen);
    vki_serve_job_release(j);
}

TEST_F(ServeSched, NextTurnReusesTheConversationsPrefix)
{
    start();
    Messages conv = {{"user", PROMPTS[0]}};
    vki_serve_job *j = chat(conv);
    submit(j);
    Reply first = result(j);
    vki_serve_job_release(j);
    ASSERT_EQ(first.status, 0) << first.message;
    // Another conversation meanwhile shares only the system prompt with it: it must take an
    // empty slot, not the first conversation's.
    j = ask(PROMPTS[1]);
    submit(j);
    Reply other = result(j);
    vki_serve_job_release(j);
    ASSERT_EQ(other.status, 0) << other.message;
    uint64_t cached_before = metrics().prompt_tokens_cached;

    conv.push_back({"assistant", first.text});
    conv.push_back({"user", "And of Germany?"});
    j = chat(conv);
    submit(j);
    Reply second = result(j);
    vki_serve_job_release(j);
    ASSERT_EQ(second.status, 0) << second.message;
    vki_serve_metrics m = metrics();
    // The whole first prompt was in the slot's cache, and so was most of the reply.
    EXPECT_GE(m.prompt_tokens_cached - cached_before, first.usage.prompt_tokens);
    EXPECT_LT(m.prompt_tokens_cached - cached_before, second.usage.prompt_tokens);

    // The same text as from an empty cache.
    vki_serve_sched_stop(sched);
    sched = nullptr;
    RefReply ref = reference(conv, MAX_TOKENS);
    EXPECT_EQ(second.text, ref.text);
    EXPECT_EQ(second.usage.prompt_tokens, ref.n_prompt);
}

TEST_F(ServeSched, CancelledJobFreesItsSlot)
{
    start();
    // Four long completions fill the slots; a fifth short one waits for a slot.
    std::vector<vki_serve_job *> longs;
    for (uint32_t i = 0; i < PARALLEL; i++) {
        longs.push_back(completion(COUNTING, 400));
        submit(longs.back());
    }
    vki_serve_job *waiting = ask(PROMPTS[0], 3);
    submit(waiting);
    ASSERT_TRUE(wait_for(longs[0], [](vki_serve_job *x) { return x->text_len > 0 || x->finished; }));
    pthread_mutex_lock(&waiting->lock);
    EXPECT_FALSE(waiting->started);
    pthread_mutex_unlock(&waiting->lock);
    cancel(longs[0]);
    ASSERT_TRUE(wait_for(longs[0], [](vki_serve_job *x) { return x->finished; }, 60));
    Reply w = result(waiting);
    EXPECT_TRUE(w.started);
    EXPECT_EQ(w.status, 0) << w.message;
    EXPECT_EQ(w.finish, "length");
    EXPECT_EQ(w.usage.completion_tokens, 3u);
    // The other three still run (400 tokens take minutes): the slot came from the cancelled one.
    for (uint32_t i = 1; i < PARALLEL; i++) {
        pthread_mutex_lock(&longs[i]->lock);
        EXPECT_FALSE(longs[i]->finished);
        EXPECT_GT(longs[i]->text_len, 0u);
        pthread_mutex_unlock(&longs[i]->lock);
        cancel(longs[i]);
    }
    for (vki_serve_job *j : longs) {
        EXPECT_TRUE(wait_for(j, [](vki_serve_job *x) { return x->finished; }, 60));
        vki_serve_job_release(j);
    }
    vki_serve_job_release(waiting);
    vki_serve_metrics m = metrics();
    EXPECT_EQ(m.jobs_cancelled, PARALLEL);
    EXPECT_EQ(m.jobs_done, 1u);
    EXPECT_EQ(m.slots_busy, 0u);
}

TEST_F(ServeSched, FullQueueSays503AndStopEndsEveryJob)
{
    start(2);
    std::vector<vki_serve_job *> jobs;
    for (uint32_t i = 0; i < PARALLEL + 2; i++) {
        jobs.push_back(completion(COUNTING, 400));
        submit(jobs.back());
    }
    vki_serve_job *extra = completion(COUNTING, 4);
    vki_serve_error err = {};
    EXPECT_FALSE(vki_serve_sched_submit(sched, extra, &err));
    EXPECT_EQ(err.status, 503);
    EXPECT_NE(strstr(err.message, "queue full"), nullptr) << err.message;
    vki_serve_job_release(extra);
    vki_serve_metrics m = metrics();
    EXPECT_EQ(m.queue_length + m.slots_busy, PARALLEL + 2);

    // A client waiting in the queue goes away: its place is free for another.
    cancel(jobs.back());
    ASSERT_TRUE(wait_for(jobs.back(), [](vki_serve_job *x) { return x->finished; }, 60));
    EXPECT_FALSE(result(jobs.back()).started);
    vki_serve_job_release(jobs.back());
    jobs.pop_back();
    EXPECT_EQ(metrics().jobs_cancelled, 1u);
    jobs.push_back(completion(COUNTING, 400));
    submit(jobs.back());

    // An HTTP thread waits on a running job while the server stops: it wakes with 503.
    ASSERT_TRUE(wait_for(jobs[0], [](vki_serve_job *x) { return x->text_len > 0 || x->finished; }));
    Reply waited;
    std::thread http([&] { waited = result(jobs[0]); });
    vki_serve_sched_stop(sched);
    sched = nullptr;
    http.join();
    EXPECT_EQ(waited.status, 503);
    EXPECT_TRUE(waited.started);
    for (vki_serve_job *j : jobs) {
        Reply r = result(j);
        EXPECT_EQ(r.status, 503);
        EXPECT_NE(r.message.find("shutting down"), std::string::npos) << r.message;
        vki_serve_job_release(j);
    }
}

TEST_F(ServeSched, QueueOfZeroTakesOnlyWhatTheSlotsHold)
{
    start(0); // serve --queue 0
    std::vector<vki_serve_job *> jobs;
    for (uint32_t i = 0; i < PARALLEL; i++) {
        jobs.push_back(completion(COUNTING, 400));
        submit(jobs.back());
    }
    vki_serve_job *extra = completion(COUNTING, 4);
    vki_serve_error err = {};
    EXPECT_FALSE(vki_serve_sched_submit(sched, extra, &err));
    EXPECT_EQ(err.status, 503);
    vki_serve_job_release(extra);
    for (vki_serve_job *j : jobs) cancel(j);
    for (vki_serve_job *j : jobs) {
        result(j);
        vki_serve_job_release(j);
    }
    EXPECT_EQ(metrics().jobs_cancelled, PARALLEL);
}

TEST_F(ServeSched, PromptLongerThanTheContextIs400)
{
    start();
    std::string essay;
    for (int i = 0; i < 600; i++) essay += "word ";
    vki_serve_job *c = ask(essay.c_str());
    vki_serve_job *p = completion(essay.c_str(), 4);
    submit(c);
    submit(p);
    for (vki_serve_job *j : {c, p}) {
        Reply r = result(j);
        EXPECT_EQ(r.status, 400);
        EXPECT_EQ(r.code, "context_length_exceeded");
        EXPECT_FALSE(r.started);
        EXPECT_NE(r.message.find("512"), std::string::npos) << r.message;
        vki_serve_job_release(j);
    }
    // The scheduler goes on: a short request still runs.
    vki_serve_job *j = ask(PROMPTS[4], 2);
    submit(j);
    Reply r = result(j);
    EXPECT_EQ(r.status, 0) << r.message;
    EXPECT_EQ(r.usage.completion_tokens, 2u);
    vki_serve_job_release(j);
    EXPECT_EQ(metrics().jobs_failed, 2u);
}

TEST_F(ServeSched, ImagesWithoutAVisionEncoderAre400)
{
    start();
    char m[VKI_LLM_IMAGE_MARKER_SIZE];
    vki_llm_image_marker(0, m);
    vki_serve_job *j = ask((std::string("What is this? ") + m).c_str());
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    j->req.images = static_cast<vki_serve_image *>(calloc(1, sizeof(vki_serve_image)));
    j->req.images[0].data = static_cast<uint8_t *>(malloc(sizeof png));
    memcpy(j->req.images[0].data, png, sizeof png);
    j->req.images[0].size = sizeof png;
    j->req.n_images = 1;
    submit(j);
    Reply r = result(j);
    EXPECT_EQ(r.status, 400);
    EXPECT_FALSE(r.started);
    EXPECT_NE(r.message.find("this model has no vision encoder"), std::string::npos) << r.message;
    vki_serve_job_release(j);
    // The scheduler goes on.
    j = ask(PROMPTS[4], 2);
    submit(j);
    r = result(j);
    EXPECT_EQ(r.status, 0) << r.message;
    vki_serve_job_release(j);
}

TEST_F(ServeSched, LongPromptIsPrefilledInChunksBesideADecodingStream)
{
    // Chunks of 8 tokens: a 110-token prompt takes about 14 prefill steps, each followed by a
    // decode step of the other slot, which must therefore progress while the long prompt goes in.
    start(8, 8);
    vki_serve_job *stream = completion(COUNTING, 400);
    submit(stream);
    ASSERT_TRUE(wait_for(stream, [](vki_serve_job *x) { return x->text_len > 0 || x->finished; }));
    std::string paste;
    for (int i = 0; i < 7; i++) paste += "lorem ipsum dolor sit amet "; // about 110 tokens
    vki_serve_job *big = ask(paste.c_str(), 1);
    uint64_t generated_before = metrics().generated_tokens;
    submit(big);
    Reply r = result(big);
    EXPECT_EQ(r.status, 0) << r.message;
    EXPECT_GT(r.usage.prompt_tokens, 80u);
    // Tokens the stream got meanwhile (the paste's one reply token aside): one per chunk but
    // the last, give or take the turn that admitted the paste.
    uint64_t streamed = metrics().generated_tokens - generated_before - 1;
    uint32_t chunks = (r.usage.prompt_tokens + 7) / 8;
    EXPECT_GE(streamed + 2, chunks) << "the stream stalled while the paste was prefilled";
    pthread_mutex_lock(&stream->lock);
    EXPECT_FALSE(stream->finished);
    pthread_mutex_unlock(&stream->lock);
    cancel(stream);
    result(stream);
    vki_serve_job_release(stream);
    vki_serve_job_release(big);
}

// The engine's abort callback makes a prompt evaluation fail (VKI_ERROR_CANCELLED between two
// batches of one vki_llm_eval_seq call, which happens when a chunk is longer than n_batch) as a
// device error would: the job fails with 500 and the engine's message, the others go on.
std::atomic<int> g_abort_calls{0};
std::atomic<bool> g_abort{false};

bool abort_once(void *)
{
    g_abort_calls++;
    return g_abort.exchange(false);
}

TEST_F(ServeSched, EngineFailureFailsOnlyItsJob)
{
    const std::vector<RefReply> &refs = prompt_references();
    vki_llm_set_abort(g_model->s.llm, abort_once, nullptr);
    start(8, 1000); // whole prompts per step: several batches in one call
    std::string paste;
    for (int i = 0; i < 12; i++) paste += "lorem ipsum dolor sit amet ";
    g_abort = true;
    vki_serve_job *bad = ask(paste.c_str(), 2);
    submit(bad);
    Reply r = result(bad);
    EXPECT_EQ(r.status, 500);
    EXPECT_TRUE(r.started);
    EXPECT_NE(r.message.find("stopped after"), std::string::npos) << r.message;
    EXPECT_GE(g_abort_calls.load(), 1);
    // The failed slot starts over; the same slots serve the next requests as the reference.
    std::vector<vki_serve_job *> jobs;
    for (size_t i = 0; i < PARALLEL; i++) {
        jobs.push_back(ask(PROMPTS[i]));
        submit(jobs.back());
    }
    for (size_t i = 0; i < PARALLEL; i++) {
        Reply ok = result(jobs[i]);
        EXPECT_EQ(ok.status, 0) << ok.message;
        EXPECT_EQ(ok.text, refs[i].text) << PROMPTS[i];
        vki_serve_job_release(jobs[i]);
    }
    vki_serve_job_release(bad);
    vki_serve_metrics m = metrics();
    EXPECT_EQ(m.jobs_failed, 1u);
    EXPECT_EQ(m.jobs_done, PARALLEL);
}

TEST(ServeJob, IdsAreFreshAndTyped)
{
    std::map<std::string, int> seen;
    for (int i = 0; i < 100; i++) {
        vki_serve_job *c = vki_serve_job_create(VKI_SERVE_CHAT);
        vki_serve_job *p = vki_serve_job_create(VKI_SERVE_COMPLETION);
        ASSERT_NE(c, nullptr);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(std::string(c->id).rfind("chatcmpl-", 0), 0u) << c->id;
        EXPECT_EQ(std::string(p->id).rfind("cmpl-", 0), 0u) << p->id;
        EXPECT_EQ(strlen(c->id), strlen("chatcmpl-") + 16);
        EXPECT_GT(c->created, 1700000000);
        EXPECT_EQ(c->refs, 1);
        seen[c->id]++;
        seen[p->id]++;
        vki_serve_job_release(c);
        vki_serve_job_release(p);
    }
    EXPECT_EQ(seen.size(), 200u);
}

} // namespace
