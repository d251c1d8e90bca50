/* vkinfer serve's scheduler: one thread owns the device, the model and its tokenizer, and runs
 * every admitted job in a slot (one sequence of the model each). Each turn of its loop
 *
 *   1. admits queued jobs into free slots (first come, first served), choosing the free slot
 *      whose cached tokens share the longest prefix with the new prompt (so a conversation's
 *      next turn lands where its history already is; pick_slot has the details), else the
 *      least recently used, and keeps that prefix in the cache;
 *   2. evaluates one chunk of one prefilling slot's prompt (the prefilling slots take turns), so
 *      a long paste is prefilled in pieces between decode steps and never freezes the streams;
 *   3. decodes every generating slot in one vki_llm_decode pass and samples each row.
 *
 * A chat message's images (serve_request.c keeps their files' bytes) are decoded and encoded
 * here, on the thread that owns the device, when the job is admitted; in the prompt each is its
 * family's markup around rows whose id comes from the image's bytes (VKI_LLM_IMAGE_ROW of a
 * 31-bit hash), so that a conversation that sends the same image again finds it cached. A
 * prefill chunk never ends inside an image: its rows go in together.
 *
 * Jobs are shared with the HTTP threads (apps/serve_internal.h). Locks never nest: the
 * scheduler's own lock guards the queue and the figures, a job's lock guards what the HTTP side
 * reads; nobody holds one while taking the other, so neither side can deadlock the other. */
#define _POSIX_C_SOURCE 200809L // pthread, clock_gettime

#include "serve_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define RATE_SECONDS 10     // tokens_per_second's window: the last 10 whole seconds
#define RATE_RING (RATE_SECONDS + 1) // and the second now filling

/* ---- Jobs --------------------------------------------------------------------------------- */

/* 64 random bits for an id. getrandom can only fail on ancient kernels; the clock and a counter
 * then keep ids distinct, which is all an id needs (it is not a secret). */
static uint64_t random_id(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v) return v;
    static _Atomic uint64_t counter;
    v = (uint64_t)vki_now_us() ^ ((uint64_t)time(NULL) << 20) ^ (counter++ * 0x9e3779b97f4a7c15ull);
    v ^= v >> 31;
    return v * 0xbf58476d1ce4e5b9ull;
}

vki_serve_job *vki_serve_job_create(vki_serve_kind kind)
{
    vki_serve_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    if (pthread_mutex_init(&j->lock, NULL) != 0) {
        free(j);
        return NULL;
    }
    if (pthread_cond_init(&j->changed, NULL) != 0) {
        pthread_mutex_destroy(&j->lock);
        free(j);
        return NULL;
    }
    j->req.kind = kind;
    snprintf(j->id, sizeof j->id, "%s-%016llx", kind == VKI_SERVE_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)random_id());
    j->created = (int64_t)time(NULL);
    j->refs = 1;
    return j;
}

void vki_serve_job_release(vki_serve_job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->lock);
    int left = --j->refs;
    pthread_mutex_unlock(&j->lock);
    if (left > 0) return;
    vki_serve_request_free(&j->req);
    free(j->text);
    pthread_cond_destroy(&j->changed);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

/* ---- The scheduler's state ---------------------------------------------------------------- */

typedef enum slot_state { SLOT_FREE = 0, SLOT_PREFILL, SLOT_GENERATE } slot_state;

typedef struct slot {
    uint32_t seq;              // the model's sequence
    slot_state state;
    vki_serve_job *job;        // the scheduler's reference; NULL when free
    int32_t *cached;           // the tokens in the sequence's cache, in order [n_ctx]
    uint32_t n_cached;         // = vki_llm_seq_position(seq)
    int32_t *prompt;           // the job's prompt [n_ctx]
    uint32_t n_prompt;
    uint32_t n_reused;         // of them, taken from the cache
    vki_sampler *sampler;
    int32_t next;              // GENERATE: the sampled token the next decode appends
    uint32_t n_gen, max_gen;   // tokens of the reply so far, and at most
    char *reply;               // the whole reply so far [reply_len], of which `sent` bytes
    size_t reply_len, reply_cap, sent; // are in job->text
    uint64_t last_used;        // LRU stamp
    vki_llm_image *images;     // the job's images, until its prompt is evaluated [n_images]
    uint32_t n_images;
} slot;

struct vki_serve_sched {
    vki_llm_session *session;
    vki_llm *llm;
    uint32_t n_ctx, n_vocab, chunk, parallel, queue_capacity;
    vki_sampler_desc sampling;
    char *model_id;

    slot *slots;               // [parallel]; only the scheduler's thread touches them
    int32_t *scratch;          // a new prompt before it has a slot [n_ctx]
    vki_llm_image *scratch_images; // and its images [n_scratch_images]
    uint32_t n_scratch_images;
    float *logits;             // [parallel][n_vocab]
    int32_t *end_ids;          // the tokens that end a reply, for "ignore_eos" [n_end]
    uint32_t n_end;
    uint32_t *rows_seq;        // a decode pass's sequences [parallel]
    int32_t *rows_tok;         // and tokens [parallel]
    slot **rows_slot;          // and their slots [parallel]
    uint32_t prefill_turn;     // the slot after the one that prefilled last
    uint64_t clock;            // LRU stamps

    pthread_t thread;
    pthread_mutex_t lock;      // guards what follows
    pthread_cond_t wake;       // a job queued, or stopping
    bool stopping;
    vki_serve_job **queue;     // a ring [queue_capacity + parallel]
    vki_serve_job **queue_scan; // drop_cancelled's copy of it [queue_size] (this thread's)
    uint32_t queue_head, queue_len, queue_size;
    uint32_t busy;             // slots taken, counting a job between the queue and its slot
    vki_serve_metrics m;       // the counters (queue_length and slots_* are filled on read)
    int64_t rate_second[RATE_RING]; // generated tokens per monotonic second, a ring
    uint64_t rate_count[RATE_RING];
};

static int64_t now_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* Under s->lock. */
static void count_generated(vki_serve_sched *s, uint64_t n)
{
    int64_t sec = now_second();
    uint32_t i = (uint32_t)(sec % RATE_RING);
    if (s->rate_second[i] != sec) {
        s->rate_second[i] = sec;
        s->rate_count[i] = 0;
    }
    s->rate_count[i] += n;
    s->m.generated_tokens += n;
}

/* ---- Handing results to a job ------------------------------------------------------------- */

/* Appends reply bytes [from, to) to the job's text under its lock; false for lack of memory. */
static bool job_append(vki_serve_job *j, const char *bytes, size_t n)
{
    bool ok = true;
    pthread_mutex_lock(&j->lock);
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = j->text_cap ? j->text_cap : 256;
        while (cap < j->text_len + n + 1) cap *= 2;
        char *grown = realloc(j->text, cap);
        if (grown) {
            j->text = grown;
            j->text_cap = cap;
        } else {
            ok = false;
        }
    }
    if (ok && n) {
        memcpy(j->text + j->text_len, bytes, n);
        j->text_len += n;
        j->text[j->text_len] = 0;
    }
    if (ok && j->t_first == 0) j->t_first = vki_now_us();
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
    return ok;
}

/* Ends a job (finish reason, or an error when err->status != 0) and drops the scheduler's
 * reference. */
static void job_finish(vki_serve_job *j, const char *finish_reason, const vki_serve_error *err,
                       vki_serve_token_usage usage)
{
    pthread_mutex_lock(&j->lock);
    if (err && err->status) j->error = *err;
    else j->finish_reason = finish_reason;
    j->usage = usage;
    j->finished = true;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
    vki_serve_job_release(j);
}

static bool job_cancelled(vki_serve_job *j)
{
    pthread_mutex_lock(&j->lock);
    bool c = j->cancelled;
    pthread_mutex_unlock(&j->lock);
    return c;
}

typedef enum end_kind { END_DONE, END_FAILED, END_CANCELLED } end_kind;

/* A job leaves its slot (or the way to one). Counted before the job says it finished, so that
 * whoever sees it finished sees it counted. */
static void count_end(vki_serve_sched *s, end_kind how)
{
    pthread_mutex_lock(&s->lock);
    s->busy--;
    if (how == END_DONE) s->m.jobs_done++;
    else if (how == END_FAILED) s->m.jobs_failed++;
    else s->m.jobs_cancelled++;
    pthread_mutex_unlock(&s->lock);
}

/* Ends the slot's job and frees the slot; its cache stays for the next job's prefix. */
static void slot_end(vki_serve_sched *s, slot *sl, end_kind how, const char *finish_reason,
                     const vki_serve_error *err)
{
    vki_serve_token_usage usage = {.prompt_tokens = sl->n_prompt, .completion_tokens = sl->n_gen};
    vki_serve_job *j = sl->job;
    vki_sampler_destroy(sl->sampler);
    sl->sampler = NULL;
    sl->job = NULL;
    sl->state = SLOT_FREE;
    sl->reply_len = sl->sent = 0;
    sl->last_used = ++s->clock;
    count_end(s, how);
    job_finish(j, finish_reason, err, usage);
}

static void slot_fail(vki_serve_sched *s, slot *sl, int status, const char *type,
                      const char *code, const char *message)
{
    vki_serve_error e;
    vki_serve_error_set(&e, status, type, code, NULL, "%s", message);
    slot_end(s, sl, END_FAILED, NULL, &e);
}

/* A device failure leaves the sequence's cache in doubt: start it over. */
static void slot_forget(vki_serve_sched *s, slot *sl)
{
    vki_llm_seq_rewind(s->llm, sl->seq, 0);
    sl->n_cached = 0;
}

/* A job that never reached a slot (s->busy counted it). */
static void job_refuse(vki_serve_sched *s, vki_serve_job *j, end_kind how,
                       const vki_serve_error *err)
{
    count_end(s, how);
    job_finish(j, "stop", err, (vki_serve_token_usage){0});
}

static void free_images(vki_llm_image **images, uint32_t *n)
{
    for (uint32_t i = 0; i < *n; i++) vki_llm_image_free(&(*images)[i]);
    free(*images);
    *images = NULL;
    *n = 0;
}

/* ---- Admission ---------------------------------------------------------------------------- */

/* The chat request's images into s->scratch_images (id k for images[k], as its marker says).
 * Returns false with *err set. */
static bool encode_images(vki_serve_sched *s, const vki_serve_request *r, vki_serve_error *err)
{
    if (!s->session->vision) {
        vki_serve_error_set(err, 400, "invalid_request_error", NULL, "messages",
                            "this model has no vision encoder (start the server with --mmproj "
                            "FILE to send images)");
        return false;
    }
    s->scratch_images = calloc(r->n_images, sizeof *s->scratch_images);
    if (!s->scratch_images) {
        vki_serve_error_set(err, 500, "server_error", NULL, NULL, "out of host memory");
        return false;
    }
    for (uint32_t k = 0; k < r->n_images; k++) {
        char why[400] = "";
        vki_status st = vki_llm_session_image_bytes(s->session, r->images[k].data,
                                                    r->images[k].size,
                                                    &s->scratch_images[k], why, sizeof why);
        s->n_scratch_images = k + 1;
        if (st) {
            bool theirs = st == VKI_ERROR_BAD_FILE || st == VKI_ERROR_UNSUPPORTED;
            vki_serve_error_set(err, theirs ? 400 : 500,
                                theirs ? "invalid_request_error" : "server_error", NULL,
                                "messages", "image %u: %s", k, why);
            return false;
        }
        s->scratch_images[k].id = k;
    }
    return true;
}

/* An image's id in the cache, from its file's bytes (FNV-1a, 64 bits, folded to 31). */
static uint32_t image_id(const vki_serve_image *im)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < im->size; i++) h = (h ^ im->data[i]) * 0x100000001b3u;
    return (uint32_t)((h ^ (h >> 31)) % 0x7fffffffu);
}

/* The job's prompt as tokens in s->scratch. Returns the count, or 0 with *err set. */
static uint32_t tokenize(vki_serve_sched *s, const vki_serve_request *r, vki_serve_error *err)
{
    vki_tokenizer *tok = s->session->tok;
    uint32_t n = 0;
    vki_status st;
    free_images(&s->scratch_images, &s->n_scratch_images);
    if (r->kind == VKI_SERVE_CHAT) {
        if (s->session->chat_template == VKI_CHAT_TEMPLATE_NONE) {
            vki_serve_error_set(err, 400, "invalid_request_error", NULL, "messages",
                                "this model has no chat template vkinfer knows (start the server "
                                "with --template, or use /v1/completions)");
            return 0;
        }
        // What people typed stays text: a message spelling <|im_end|> cannot end a turn.
        vki_chat_prompt p = {.tmpl = s->session->chat_template,
                             .messages = r->messages,
                             .count = r->n_messages,
                             .add_assistant_prompt = true,
                             .default_system = vki_tokenizer_default_system(tok),
                             .special_in_content = false};
        if (r->n_images) {
            if (!encode_images(s, r, err)) return 0;
            char why[300] = "";
            st = vki_llm_session_encode(s->session, &p, s->scratch_images, s->n_scratch_images,
                                        s->scratch, s->n_ctx, &n, why, sizeof why);
            // Rows of images[k] by their bytes' id from here on.
            for (uint32_t i = 0; !st && i < n; i++)
                if (s->scratch[i] < 0) {
                    uint32_t k = (uint32_t)(-1 - s->scratch[i]);
                    s->scratch[i] = VKI_LLM_IMAGE_ROW(image_id(&r->images[k]));
                }
            for (uint32_t k = 0; k < s->n_scratch_images; k++)
                s->scratch_images[k].id = image_id(&r->images[k]);
        } else {
            st = vki_chat_encode(tok, &p, s->scratch, s->n_ctx, &n);
        }
    } else {
        const char *text = r->prompt ? r->prompt : "";
        st = vki_tokenizer_encode(tok, text, strlen(text), vki_tokenizer_add_bos(tok), false,
                                  s->scratch, s->n_ctx, &n);
    }
    if (n + 1 > s->n_ctx && (st == VKI_OK || st == VKI_ERROR_INVALID_ARGUMENT)) {
        vki_serve_error_set(err, 400, "invalid_request_error", "context_length_exceeded",
                            r->kind == VKI_SERVE_CHAT ? "messages" : "prompt",
                            "this model's maximum context length is %u tokens, but the %s "
                            "resulted in %u tokens and the reply needs at least 1",
                            s->n_ctx, r->kind == VKI_SERVE_CHAT ? "messages" : "prompt", n);
        return 0;
    }
    if (st == VKI_ERROR_OUT_OF_HOST_MEMORY) {
        vki_serve_error_set(err, 500, "server_error", NULL, NULL, "out of host memory");
        return 0;
    }
    if (st) {
        vki_serve_error_set(err, 400, "invalid_request_error", NULL, NULL, "%s",
                            vki_tokenizer_last_error(tok));
        return 0;
    }
    if (n == 0) {
        vki_serve_error_set(err, 400, "invalid_request_error", NULL, "prompt",
                            "the prompt is empty");
        return 0;
    }
    return n;
}

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    uint32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* The free slot for prompt[n]: the one whose cache shares the longest prefix with it, as
 * llama-server picks, but only among slots that would keep at least 80% of what they hold (a
 * conversation's next turn keeps all of it): a new conversation that shares just the system
 * prompt with another's cache must not throw that conversation's history away while an empty
 * slot, or one with less to lose, is free. Ties, and no such slot, go to the least recently
 * used. */
static slot *pick_slot(vki_serve_sched *s, const int32_t *prompt, uint32_t n)
{
    slot *best = NULL, *lru = NULL;
    uint32_t best_prefix = 0;
    for (uint32_t i = 0; i < s->parallel; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_FREE) continue;
        if (!lru || sl->last_used < lru->last_used) lru = sl;
        uint32_t p = common_prefix(sl->cached, sl->n_cached, prompt, n);
        if ((uint64_t)p * 5 < (uint64_t)sl->n_cached * 4) continue;
        if (!best || p > best_prefix || (p == best_prefix && sl->last_used < best->last_used)) {
            best = sl;
            best_prefix = p;
        }
    }
    return best ? best : lru;
}

/* The request's sampling over the server's defaults. */
static vki_sampler_desc job_sampling(const vki_serve_sched *s, const vki_serve_request *r)
{
    vki_sampler_desc d = s->sampling;
    if (r->has_temperature) d.temperature = r->sampling.temperature;
    if (r->has_top_p) d.top_p = r->sampling.top_p;
    if (r->has_top_k) d.top_k = r->sampling.top_k;
    if (r->has_min_p) d.min_p = r->sampling.min_p;
    if (r->has_repeat_penalty) d.repeat_penalty = r->sampling.repeat_penalty;
    if (r->has_seed) d.seed = r->sampling.seed;
    // OpenAI's penalties are off at 0, which is also "not given".
    if (r->sampling.presence_penalty != 0) d.presence_penalty = r->sampling.presence_penalty;
    if (r->sampling.frequency_penalty != 0) d.frequency_penalty = r->sampling.frequency_penalty;
    d.allocator = NULL;
    return d;
}

/* Puts job j (counted in s->busy) into a free slot, or ends it with an error. */
static void admit(vki_serve_sched *s, vki_serve_job *j)
{
    if (job_cancelled(j)) {
        job_refuse(s, j, END_CANCELLED, NULL);
        return;
    }
    vki_serve_error err = {0};
    uint32_t n = tokenize(s, &j->req, &err);
    if (n == 0) {
        job_refuse(s, j, END_FAILED, &err);
        return;
    }
    vki_sampler_desc sd = job_sampling(s, &j->req);
    vki_sampler *sampler = NULL;
    char why[256] = "";
    vki_status st = vki_sampler_create(&sd, s->n_vocab, &sampler, why, sizeof why);
    if (st) {
        if (st == VKI_ERROR_OUT_OF_HOST_MEMORY)
            vki_serve_error_set(&err, 500, "server_error", NULL, NULL, "out of host memory");
        else
            vki_serve_error_set(&err, 400, "invalid_request_error", NULL, NULL, "%s", why);
        job_refuse(s, j, END_FAILED, &err);
        return;
    }
    slot *sl = pick_slot(s, s->scratch, n);
    memcpy(sl->prompt, s->scratch, n * sizeof *sl->prompt);
    sl->n_prompt = n;
    // Keep the cached prefix, but evaluate at least the last prompt token: its logits give
    // the first reply token.
    uint32_t keep = common_prefix(sl->cached, sl->n_cached, sl->prompt, n);
    if (keep == n) keep--;
    keep = vki_llm_image_start(sl->prompt, keep); // an image's rows go in together
    vki_llm_seq_rewind(s->llm, sl->seq, keep);
    sl->n_cached = keep;
    sl->n_reused = keep;
    free_images(&sl->images, &sl->n_images);
    sl->images = s->scratch_images;
    sl->n_images = s->n_scratch_images;
    s->scratch_images = NULL;
    s->n_scratch_images = 0;
    for (uint32_t i = 0; i < n; i++)
        if (sl->prompt[i] >= 0) vki_sampler_accept(sampler, sl->prompt[i]); // not image rows
    sl->sampler = sampler;
    sl->job = j;
    sl->state = SLOT_PREFILL;
    sl->n_gen = 0;
    // The first reply token needs no room in the cache; each later one needs the one before
    // it evaluated: n_ctx - n tokens fit.
    uint32_t room = s->n_ctx - n;
    sl->max_gen = j->req.max_tokens && j->req.max_tokens < room ? j->req.max_tokens : room;
    sl->reply_len = sl->sent = 0;
    sl->last_used = ++s->clock;
    pthread_mutex_lock(&s->lock);
    s->m.prompt_tokens_cached += keep;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&j->lock);
    j->started = true;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
}

/* Moves queued jobs into free slots, oldest first. */
static void admit_queued(vki_serve_sched *s)
{
    for (;;) {
        vki_serve_job *j = NULL;
        pthread_mutex_lock(&s->lock);
        if (s->queue_len && s->busy < s->parallel) {
            j = s->queue[s->queue_head];
            s->queue_head = (s->queue_head + 1) % s->queue_size;
            s->queue_len--;
            s->busy++; // from here until it has a slot, so that submit counts it
        }
        pthread_mutex_unlock(&s->lock);
        if (!j) return;
        admit(s, j);
    }
}

/* ---- Generation --------------------------------------------------------------------------- */

/* Takes token `tok` sampled for the slot: ends the job or makes it the next token to decode. */
static void slot_take(vki_serve_sched *s, slot *sl, int32_t tok)
{
    vki_tokenizer *t = s->session->tok;
    if (vki_tokenizer_is_end(t, tok)) {
        // The reply is whole: hand out what was held back for a stop string that never came.
        if (sl->reply_len > sl->sent &&
            !job_append(sl->job, sl->reply + sl->sent, sl->reply_len - sl->sent))
            slot_fail(s, sl, 500, "server_error", NULL, "out of host memory");
        else
            slot_end(s, sl, END_DONE, "stop", NULL);
        return;
    }
    vki_sampler_accept(sl->sampler, tok);
    sl->n_gen++;
    pthread_mutex_lock(&s->lock);
    count_generated(s, 1);
    pthread_mutex_unlock(&s->lock);
    size_t len = 0;
    const char *piece = vki_llm_session_piece(s->session, tok, &len);
    // Grown before the first piece too, an empty one included: reply is never NULL below.
    if (piece && (!sl->reply || sl->reply_len + len > sl->reply_cap)) {
        size_t cap = sl->reply_cap ? sl->reply_cap : 256;
        while (cap < sl->reply_len + len) cap *= 2;
        char *grown = realloc(sl->reply, cap);
        if (grown) {
            sl->reply = grown;
            sl->reply_cap = cap;
        } else {
            piece = NULL;
        }
    }
    if (!piece) {
        slot_fail(s, sl, 500, "server_error", NULL, "out of host memory");
        return;
    }
    memcpy(sl->reply + sl->reply_len, piece, len);
    sl->reply_len += len;
    const vki_serve_request *r = &sl->job->req;
    size_t stop_at = SIZE_MAX;
    size_t safe = vki_serve_stop_scan(sl->reply, sl->reply_len, sl->sent, r->stop, r->n_stop,
                                      &stop_at);
    bool last = stop_at != SIZE_MAX || sl->n_gen >= sl->max_gen;
    // At the end, bytes held back for a stop string that can no longer come are text too.
    if (last && stop_at == SIZE_MAX) safe = sl->reply_len;
    if (safe < sl->sent) safe = sl->sent;
    if (!job_append(sl->job, sl->reply + sl->sent, safe - sl->sent)) {
        slot_fail(s, sl, 500, "server_error", NULL, "out of host memory");
        return;
    }
    sl->sent = safe;
    if (stop_at != SIZE_MAX) slot_end(s, sl, END_DONE, "stop", NULL);
    else if (sl->n_gen >= sl->max_gen) slot_end(s, sl, END_DONE, "length", NULL);
    else {
        sl->next = tok;
        sl->state = SLOT_GENERATE;
    }
}

/* Whether a slot's sampling reads its logits: every sampler but a greedy one, whose token comes
 * from the device (vki_llm_sample), and llama.cpp's "ignore_eos" (the reply runs to max_tokens:
 * benchmarks compare equal lengths), which takes the end tokens out of them. The passes read
 * them back with their run, as before, when any row needs them. */
static bool wants_logits(const slot *sl)
{
    return sl->job->req.ignore_eos || !vki_sampler_is_greedy(sl->sampler);
}

/* The next token of row `row` of the last pass, whose logits (if the pass read them) are in
 * logits [rows][n_vocab]. */
static void sample(vki_serve_sched *s, slot *sl, float *logits, uint32_t row)
{
    int32_t tok = 0;
    bool ignore_eos = sl->job->req.ignore_eos;
    float *own = logits + (size_t)row * s->n_vocab;
    if (ignore_eos)
        for (uint32_t i = 0; i < s->n_end; i++) own[s->end_ids[i]] = -INFINITY;
    if (ignore_eos ? vki_sampler_sample(sl->sampler, own, &tok)
                   : vki_llm_sample(s->llm, row, sl->sampler, logits, &tok)) {
        char msg[600];
        snprintf(msg, sizeof msg, "sampling failed: %s",
                 ignore_eos ? vki_sampler_last_error(sl->sampler) : vki_llm_last_error(s->llm));
        fprintf(stderr, "vkinfer serve: %s: %s\n", sl->job->id, msg);
        slot_fail(s, sl, 500, "server_error", NULL, msg);
        return;
    }
    slot_take(s, sl, tok);
}

static void device_failure(vki_serve_sched *s, slot *sl, const char *what)
{
    const char *why = vki_llm_last_error(s->llm);
    char msg[512];
    snprintf(msg, sizeof msg, "%s failed: %s", what, why[0] ? why : "device error");
    fprintf(stderr, "vkinfer serve: %s: %s\n", sl->job->id, msg);
    slot_forget(s, sl);
    slot_fail(s, sl, 500, "server_error", NULL, msg);
}

/* One chunk of one prefilling slot's prompt, the slots taking turns. */
static void prefill_step(vki_serve_sched *s)
{
    slot *sl = NULL;
    for (uint32_t k = 0; k < s->parallel && !sl; k++) {
        slot *c = &s->slots[(s->prefill_turn + k) % s->parallel];
        if (c->state == SLOT_PREFILL) {
            sl = c;
            s->prefill_turn = (c->seq + 1) % s->parallel;
        }
    }
    if (!sl) return;
    uint32_t left = sl->n_prompt - sl->n_cached;
    uint32_t n = left < s->chunk ? left : s->chunk;
    const int32_t *at = sl->prompt + sl->n_cached;
    while (n < left && at[n - 1] < 0 && at[n] == at[n - 1]) n++; // to the image's end
    bool last = n == left;
    float *logits = s->logits + (size_t)sl->seq * s->n_vocab;
    double t0 = vki_now_us();
    char why[512];
    vki_status st = vki_llm_session_eval(s->session, sl->seq, at, n, sl->images, sl->n_images,
                                         last && wants_logits(sl) ? logits : NULL, why, sizeof why);
    if (last) free_images(&sl->images, &sl->n_images);
    double dt = (vki_now_us() - t0) / 1e6;
    pthread_mutex_lock(&s->lock);
    s->m.prompt_seconds += dt;
    if (!st) s->m.prompt_tokens += n;
    pthread_mutex_unlock(&s->lock);
    if (st) {
        device_failure(s, sl, "prompt evaluation");
        return;
    }
    memcpy(sl->cached + sl->n_cached, sl->prompt + sl->n_cached, n * sizeof *sl->cached);
    sl->n_cached += n;
    if (last) sample(s, sl, logits, 0);
}

/* One token for every generating slot, in one pass. */
static void decode_step(vki_serve_sched *s)
{
    uint32_t n = 0;
    bool logits = false;
    for (uint32_t i = 0; i < s->parallel; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_GENERATE) continue;
        logits |= wants_logits(sl);
        s->rows_slot[n] = sl;
        s->rows_seq[n] = sl->seq;
        s->rows_tok[n] = sl->next;
        n++;
    }
    if (n == 0) return;
    double t0 = vki_now_us();
    vki_status st = vki_llm_decode(s->llm, s->rows_seq, s->rows_tok, n, logits ? s->logits : NULL);
    double dt = (vki_now_us() - t0) / 1e6;
    pthread_mutex_lock(&s->lock);
    s->m.decode_seconds += dt;
    pthread_mutex_unlock(&s->lock);
    for (uint32_t r = 0; r < n; r++) {
        slot *sl = s->rows_slot[r];
        if (st) {
            device_failure(s, sl, "decoding");
            continue;
        }
        sl->cached[sl->n_cached++] = sl->next;
        sample(s, sl, s->logits, r);
    }
}

/* Clients that went away free their slots now. */
static void drop_cancelled(vki_serve_sched *s)
{
    for (uint32_t i = 0; i < s->parallel; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_FREE && job_cancelled(sl->job))
            slot_end(s, sl, END_CANCELLED, "stop", NULL);
    }
    // Queued ones leave the queue, making room for others. The queue is read under s->lock
    // and the jobs under their own locks, never both at once; only this thread removes jobs,
    // so the snapshot stays valid while submit appends behind it.
    pthread_mutex_lock(&s->lock);
    uint32_t n = s->queue_len;
    for (uint32_t i = 0; i < n; i++) s->queue_scan[i] = s->queue[(s->queue_head + i) % s->queue_size];
    pthread_mutex_unlock(&s->lock);
    uint32_t gone = 0;
    for (uint32_t i = 0; i < n; i++)
        if (job_cancelled(s->queue_scan[i])) s->queue_scan[gone++] = s->queue_scan[i];
    if (gone == 0) return;
    pthread_mutex_lock(&s->lock);
    uint32_t kept = 0, g = 0;
    for (uint32_t i = 0; i < s->queue_len; i++) {
        vki_serve_job *j = s->queue[(s->queue_head + i) % s->queue_size];
        if (g < gone && j == s->queue_scan[g]) g++;
        else s->queue[(s->queue_head + kept++) % s->queue_size] = j;
    }
    s->queue_len = kept;
    s->busy += gone; // job_refuse takes them off again
    pthread_mutex_unlock(&s->lock);
    for (uint32_t i = 0; i < gone; i++) job_refuse(s, s->queue_scan[i], END_CANCELLED, NULL);
}

/* Stopping: every queued and running job ends with 503. */
static void shut_down(vki_serve_sched *s)
{
    vki_serve_error e;
    vki_serve_error_set(&e, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
    for (uint32_t i = 0; i < s->parallel; i++)
        if (s->slots[i].state != SLOT_FREE) slot_end(s, &s->slots[i], END_FAILED, NULL, &e);
    for (;;) {
        vki_serve_job *j = NULL;
        pthread_mutex_lock(&s->lock);
        if (s->queue_len) {
            j = s->queue[s->queue_head];
            s->queue_head = (s->queue_head + 1) % s->queue_size;
            s->queue_len--;
            s->busy++;
        }
        pthread_mutex_unlock(&s->lock);
        if (!j) return;
        job_refuse(s, j, END_FAILED, &e);
    }
}

static void *sched_main(void *arg)
{
    vki_serve_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        // Nothing queued and no slot busy: sleep until a submit or stop. While slots are busy
        // every turn has work (a prefill chunk or a decode), so the loop never spins idle.
        while (!s->stopping && s->queue_len == 0 && s->busy == 0)
            pthread_cond_wait(&s->wake, &s->lock);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping) break;
        drop_cancelled(s);
        admit_queued(s);
        prefill_step(s);
        decode_step(s);
    }
    shut_down(s);
    return NULL;
}

/* ---- The public face ---------------------------------------------------------------------- */

static void sched_free(vki_serve_sched *s)
{
    if (s->slots)
        for (uint32_t i = 0; i < s->parallel; i++) {
            vki_sampler_destroy(s->slots[i].sampler);
            free(s->slots[i].cached);
            free(s->slots[i].prompt);
            free(s->slots[i].reply);
            free_images(&s->slots[i].images, &s->slots[i].n_images);
        }
    free_images(&s->scratch_images, &s->n_scratch_images);
    free(s->slots);
    free(s->scratch);
    free(s->logits);
    free(s->end_ids);
    free(s->rows_seq);
    free(s->rows_tok);
    free(s->rows_slot);
    free(s->queue);
    free(s->queue_scan);
    free(s->model_id);
    free(s);
}

int vki_serve_sched_start(const vki_serve_sched_desc *desc, vki_serve_sched **out)
{
    *out = NULL;
    vki_llm_session *session = desc->session;
    if (!session || !session->llm || !session->tok)
        return vki_app_failf("serve: the model has no tokenizer");
    const vki_llm_info *info = vki_llm_info_get(session->llm);
    uint32_t parallel = desc->parallel ? desc->parallel : info->n_seq;
    if (parallel > info->n_seq)
        return vki_app_failf("serve: %u slots, but the model was loaded with %u sequences",
                             parallel, info->n_seq);
    if (info->n_ctx < 2)
        return vki_app_failf("serve: a %u-token context leaves no room for a reply", info->n_ctx);
    vki_serve_sched *s = calloc(1, sizeof *s);
    if (!s) return vki_app_failf("out of host memory");
    s->session = session;
    s->llm = session->llm;
    s->n_ctx = info->n_ctx;
    s->n_vocab = info->n_vocab;
    s->chunk = desc->chunk ? desc->chunk : info->n_batch;
    s->parallel = parallel;
    s->queue_capacity = desc->queue_capacity; // 0: nobody waits (`serve --queue 0`)
    s->queue_size = s->queue_capacity + parallel;
    s->sampling = desc->sampling;
    s->model_id = strdup(desc->model_id ? desc->model_id : "");
    s->slots = calloc(parallel, sizeof *s->slots);
    s->scratch = malloc(s->n_ctx * sizeof *s->scratch);
    s->logits = malloc((size_t)parallel * s->n_vocab * sizeof *s->logits);
    s->rows_seq = malloc(parallel * sizeof *s->rows_seq);
    s->rows_tok = malloc(parallel * sizeof *s->rows_tok);
    s->rows_slot = malloc(parallel * sizeof *s->rows_slot);
    s->queue = malloc(s->queue_size * sizeof *s->queue);
    s->queue_scan = malloc(s->queue_size * sizeof *s->queue_scan);
    uint32_t n_tok = vki_tokenizer_vocab_size(session->tok);
    if (n_tok > s->n_vocab) n_tok = s->n_vocab;
    for (uint32_t id = 0; id < n_tok; id++) s->n_end += vki_tokenizer_is_end(session->tok, (int32_t)id);
    s->end_ids = malloc((s->n_end ? s->n_end : 1) * sizeof *s->end_ids);
    for (uint32_t id = 0, k = 0; s->end_ids && id < n_tok; id++)
        if (vki_tokenizer_is_end(session->tok, (int32_t)id)) s->end_ids[k++] = (int32_t)id;
    bool ok = s->model_id && s->slots && s->scratch && s->logits && s->rows_seq && s->rows_tok &&
              s->rows_slot && s->queue && s->queue_scan && s->end_ids;
    for (uint32_t i = 0; ok && i < parallel; i++) {
        slot *sl = &s->slots[i];
        sl->seq = i;
        sl->cached = malloc(s->n_ctx * sizeof *sl->cached);
        sl->prompt = malloc(s->n_ctx * sizeof *sl->prompt);
        ok = sl->cached && sl->prompt;
        // Whatever the sequences held before is unknown here: start them empty.
        vki_llm_seq_rewind(s->llm, i, 0);
    }
    if (!ok) {
        sched_free(s);
        return vki_app_failf("out of host memory");
    }
    for (uint32_t i = 0; i < RATE_RING; i++) s->rate_second[i] = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        sched_free(s);
        return vki_app_failf("serve: cannot create a mutex");
    }
    if (pthread_cond_init(&s->wake, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        sched_free(s);
        return vki_app_failf("serve: cannot create a condition variable");
    }
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        sched_free(s);
        return vki_app_failf("serve: cannot start the scheduler's thread");
    }
    *out = s;
    return VKI_EXIT_OK;
}

bool vki_serve_sched_submit(vki_serve_sched *s, vki_serve_job *job, vki_serve_error *err)
{
    pthread_mutex_lock(&job->lock);
    job->refs++;
    job->t_submit = vki_now_us();
    pthread_mutex_unlock(&job->lock);
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    // Running and waiting jobs together: `parallel` slots and the queue's capacity.
    bool full = s->queue_len + s->busy >= s->parallel + s->queue_capacity;
    if (!stopping && !full) {
        s->queue[(s->queue_head + s->queue_len) % s->queue_size] = job;
        s->queue_len++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    if (!stopping && !full) return true;
    vki_serve_job_release(job);
    if (stopping)
        vki_serve_error_set(err, 503, "unavailable_error", NULL, NULL,
                            "the server is shutting down");
    else
        vki_serve_error_set(err, 503, "unavailable_error", NULL, NULL,
                            "queue full: %u requests are running and %u waiting; try again later",
                            s->parallel, s->queue_capacity);
    return false;
}

void vki_serve_sched_metrics(vki_serve_sched *s, vki_serve_metrics *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->m;
    out->queue_length = s->queue_len;
    out->slots_busy = s->busy;
    out->slots_total = s->parallel;
    // The last RATE_SECONDS whole seconds before this one (the current one is still filling).
    int64_t sec = now_second();
    uint64_t sum = 0;
    for (uint32_t i = 0; i < RATE_RING; i++)
        if (s->rate_second[i] >= sec - RATE_SECONDS && s->rate_second[i] < sec) sum += s->rate_count[i];
    out->tokens_per_second = (double)sum / RATE_SECONDS;
    pthread_mutex_unlock(&s->lock);
}

void vki_serve_sched_stop(vki_serve_sched *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    sched_free(s);
}
