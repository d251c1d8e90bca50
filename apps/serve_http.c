/* `vkinfer serve`'s HTTP side (apps/serve_internal.h): libmicrohttpd with one thread per
 * connection, so a thread may block on its job's condition variable while the scheduler
 * produces text. Nothing here touches the device or the model.
 *
 * A request meets, in order: the route table (404, 405), the API key (401), the body limit
 * (413, answered before reading the body when Content-Length says so), the request parser
 * (400), the model check (404), the scheduler's queue (503 with Retry-After), and then waits
 * for its job: the whole answer, or server-sent events as the text arrives. While it waits it
 * looks at its socket now and then, so that a client that hangs up frees its slot within a
 * fraction of a second even when no text is flowing (a long prefill). */
#define _POSIX_C_SOURCE 200809L // getaddrinfo, clock_gettime, strncasecmp

#include "serve_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#define WAIT_SLICE_MS 200       // how often a waiting thread looks at its socket and the stop flag
#define KEEPALIVE_S 15.0        // an SSE comment after this long without an event (proxies,
                                // and a write that notices a vanished client)
#define DRAIN_MS 2000           // how long stop waits for answers in flight to go out
#define STREAM_BLOCK 16384      // libmicrohttpd's buffer for a streamed response

typedef enum endpoint {
    EP_PAGE, EP_HEALTH, EP_MODELS, EP_METRICS, EP_CHAT, EP_COMPLETIONS, EP_OTHER, EP_COUNT
} endpoint;

// /metrics' endpoint label for each (the canonical path).
static const char *const endpoint_label[EP_COUNT] = {
    "/", "/health", "/v1/models", "/metrics", "/v1/chat/completions", "/v1/completions", "other",
};

// Statuses counted one by one; anything else counts as "other".
static const unsigned counted_status[] = {200, 204, 400, 401, 404, 405, 413, 500, 503};
#define STATUS_COUNT (sizeof counted_status / sizeof counted_status[0] + 1)

/* Paths as OpenAI's clients spell them, with and without the /v1 prefix (llama-server takes
 * both: some clients are given a base URL without it). */
static const struct route {
    const char *path;
    endpoint ep;
    bool post;               // POST; else GET (and HEAD)
} routes[] = {
    {.path = "/", .ep = EP_PAGE},
    {.path = "/index.html", .ep = EP_PAGE},
    {.path = "/health", .ep = EP_HEALTH},
    {.path = "/v1/health", .ep = EP_HEALTH},
    {.path = "/v1/models", .ep = EP_MODELS},
    {.path = "/models", .ep = EP_MODELS},
    {.path = "/metrics", .ep = EP_METRICS},
    {.path = "/v1/chat/completions", .ep = EP_CHAT, .post = true},
    {.path = "/chat/completions", .ep = EP_CHAT, .post = true},
    {.path = "/v1/completions", .ep = EP_COMPLETIONS, .post = true},
    {.path = "/completions", .ep = EP_COMPLETIONS, .post = true},
};

struct vki_serve_http {
    struct MHD_Daemon *daemon;
    vki_serve_sched *sched;         // borrowed
    char *model_id;
    char *api_key;                  // NULL: none
    size_t api_key_len;
    uint32_t n_ctx;
    bool vision;                    // /v1/models' modalities.vision
    int64_t created;                // start time, /v1/models' "created"
    atomic_bool stopping;
    atomic_bool started;            // past start-up: log lines go to stderr, not start_error
    atomic_uint active;             // completion requests between submit and their end
    _Atomic uint64_t counts[EP_COUNT][STATUS_COUNT];
    char start_error[256];          // libmicrohttpd's last message during start-up
};

/* One HTTP request (libmicrohttpd's per-request pointer), from its headers to its end. */
typedef struct request {
    vki_serve_http *h;
    struct MHD_Connection *connection;
    endpoint ep;
    char *body;                     // the upload so far [len] (cap allocated)
    size_t len, cap;
    size_t discarded;               // bytes dropped past the limit (a chunked upload)
    bool too_large;
    bool preflight;                 // OPTIONS
    bool answered;                  // a response is queued
    bool active;                    // counted in h->active
} request;

/* ---- Small helpers ------------------------------------------------------------------------ */

static void count(vki_serve_http *h, endpoint ep, unsigned status)
{
    size_t k = 0;
    while (k < STATUS_COUNT - 1 && counted_status[k] != status) k++;
    atomic_fetch_add(&h->counts[ep][k], 1);
}

static int socket_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

/* Whether the client has hung up: its socket reads as end of file (or failed). A client that
 * sends its next request early (pipelining) has bytes waiting, which is not hanging up. */
static bool client_gone(int fd)
{
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLNVAL)) return true;
    if (p.revents & (POLLIN | POLLHUP)) {
        char byte;
        ssize_t n = recv(fd, &byte, 1, MSG_PEEK);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
}

/* Waits on the job's condition for at most `ms`; called with j->lock held. The job's condition
 * variable uses the default (realtime) clock. */
static void wait_slice(vki_serve_job *j, int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += (long)ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&j->changed, &j->lock, &t);
}

static void cancel_job(vki_serve_job *j)
{
    pthread_mutex_lock(&j->lock);
    j->cancelled = true;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
}

/* The API key, compared in time that depends only on the key's length: every byte of the key
 * is looked at, whatever the client sent. */
static bool key_matches(const vki_serve_http *h, struct MHD_Connection *c)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return false;
    const char *given = auth + 7;
    while (*given == ' ') given++;
    size_t n = strlen(given);
    while (n > 0 && given[n - 1] == ' ') n--;
    volatile unsigned diff = n != h->api_key_len;
    for (size_t i = 0; i < h->api_key_len; i++) {
        unsigned char g = i < n ? (unsigned char)given[i] : 0;
        diff |= g ^ (unsigned char)h->api_key[i];
    }
    return diff == 0;
}

/* ---- Responses ---------------------------------------------------------------------------- */

static void add_cors(struct MHD_Response *resp)
{
    // Browser apps on other origins (a notes app, Open WebUI's dev server) call the API too;
    // the key, when set, is what guards it.
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
}

/* Queues `resp` (destroying our reference) with `status`, and counts it. */
static enum MHD_Result queue(request *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp) return MHD_NO;
    add_cors(resp);
    enum MHD_Result ret = MHD_queue_response(r->connection, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->answered = true;
        count(r->h, r->ep, status);
    }
    return ret;
}

/* A response over `body` (malloc'ed, taken over; NULL: out of host memory). */
static struct MHD_Response *owned_response(char *body, const char *content_type)
{
    if (!body) return NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return resp;
}

/* An OpenAI error object with e->status, plus one optional header. */
static enum MHD_Result send_error(request *r, const vki_serve_error *e, const char *header,
                                  const char *value)
{
    struct MHD_Response *resp = owned_response(vki_serve_error_json(e), "application/json");
    if (!resp) return MHD_NO;
    if (header) MHD_add_response_header(resp, header, value);
    if (e->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    return queue(r, (unsigned)e->status, resp);
}

static enum MHD_Result send_errorf(request *r, int status, const char *type, const char *code,
                                   const char *header, const char *value, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;

static enum MHD_Result send_errorf(request *r, int status, const char *type, const char *code,
                                   const char *header, const char *value, const char *fmt, ...)
{
    vki_serve_error e;
    char message[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    vki_serve_error_set(&e, status, type, code, NULL, "%s", message);
    return send_error(r, &e, header, value);
}

static enum MHD_Result send_json(request *r, unsigned status, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return queue(r, status, owned_response(text, "application/json"));
}

/* ---- GET endpoints ------------------------------------------------------------------------ */

static enum MHD_Result send_page(request *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        vki_serve_page_html_size, (void *)vki_serve_page_html, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    return queue(r, 200, resp);
}

static enum MHD_Result send_models(request *r)
{
    cJSON *root = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(root, "data");
    cJSON *model = cJSON_CreateObject();
    cJSON_AddItemToArray(data, model);
    vki_json_add_text(model, "id", r->h->model_id, strlen(r->h->model_id)); // a file name: any bytes
    cJSON_AddStringToObject(model, "object", "model");
    cJSON_AddNumberToObject(model, "created", (double)r->h->created);
    cJSON_AddStringToObject(model, "owned_by", "vkinfer");
    cJSON *meta = cJSON_AddObjectToObject(model, "meta");
    cJSON_AddNumberToObject(meta, "n_ctx", r->h->n_ctx); // per slot
    // What the chat page may send, named as llama.cpp's server names it in /props.
    cJSON *modalities = cJSON_AddObjectToObject(model, "modalities");
    cJSON_AddBoolToObject(modalities, "vision", r->h->vision);
    cJSON_AddBoolToObject(modalities, "audio", false);
    cJSON_AddStringToObject(root, "object", "list");
    // A failed add leaves a NULL somewhere above: answer nothing rather than half an object.
    if (!data || !meta || !modalities || !cJSON_GetObjectItem(modalities, "audio") ||
        !cJSON_GetObjectItem(root, "object")) {
        cJSON_Delete(root);
        return MHD_NO;
    }
    return send_json(r, 200, root);
}

/* A growing text for /metrics. */
typedef struct text_buf {
    char *p;
    size_t len, cap;
    bool failed;
} text_buf;

static void appendf(text_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void appendf(text_buf *b, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !b->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1024;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

static void metric(text_buf *b, const char *name, const char *type, const char *help, double value)
{
    appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

/* Prometheus' text format 0.0.4. */
static enum MHD_Result send_metrics(request *r)
{
    vki_serve_http *h = r->h;
    vki_serve_metrics m = {0};
    if (h->sched) vki_serve_sched_metrics(h->sched, &m);
    text_buf b = {0};
    appendf(&b, "# HELP vkinfer_requests_total HTTP requests answered, by endpoint and status\n"
                "# TYPE vkinfer_requests_total counter\n");
    for (int ep = 0; ep < EP_COUNT; ep++)
        for (size_t k = 0; k < STATUS_COUNT; k++) {
            uint64_t n = atomic_load(&h->counts[ep][k]);
            if (n == 0) continue;
            char status[16];
            if (k < STATUS_COUNT - 1) snprintf(status, sizeof status, "%u", counted_status[k]);
            else snprintf(status, sizeof status, "other");
            appendf(&b, "vkinfer_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
                    endpoint_label[ep], status, (unsigned long long)n);
        }
    appendf(&b, "# HELP vkinfer_jobs_total Completion jobs ended, by how\n"
                "# TYPE vkinfer_jobs_total counter\n"
                "vkinfer_jobs_total{result=\"done\"} %llu\n"
                "vkinfer_jobs_total{result=\"failed\"} %llu\n"
                "vkinfer_jobs_total{result=\"cancelled\"} %llu\n",
            (unsigned long long)m.jobs_done, (unsigned long long)m.jobs_failed,
            (unsigned long long)m.jobs_cancelled);
    metric(&b, "vkinfer_prompt_tokens_total", "counter",
           "Prompt tokens evaluated (cached prefixes not counted)", (double)m.prompt_tokens);
    metric(&b, "vkinfer_prompt_tokens_cached_total", "counter",
           "Prompt tokens reused from a slot's cache", (double)m.prompt_tokens_cached);
    metric(&b, "vkinfer_generated_tokens_total", "counter", "Tokens generated",
           (double)m.generated_tokens);
    metric(&b, "vkinfer_prompt_seconds_total", "counter", "Device time in prefill passes",
           m.prompt_seconds);
    metric(&b, "vkinfer_decode_seconds_total", "counter", "Device time in decode passes",
           m.decode_seconds);
    metric(&b, "vkinfer_queue_length", "gauge", "Jobs waiting for a slot", m.queue_length);
    metric(&b, "vkinfer_slots_busy", "gauge", "Slots holding a job", m.slots_busy);
    metric(&b, "vkinfer_slots_total", "gauge", "Slots (--parallel)", m.slots_total);
    metric(&b, "vkinfer_tokens_per_second", "gauge",
           "Generated tokens per second over the last 10 s", m.tokens_per_second);
    metric(&b, "vkinfer_requests_active", "gauge", "Completion requests in flight",
           atomic_load(&h->active));
    if (b.failed) {
        free(b.p);
        return MHD_NO;
    }
    return queue(r, 200, owned_response(b.p, "text/plain; version=0.0.4; charset=utf-8"));
}

/* ---- Completions -------------------------------------------------------------------------- */

typedef enum wait_end { WAIT_READY, WAIT_GONE, WAIT_STOPPING } wait_end;

/* Waits until the job has finished (or, for a stream, started), the client hung up, or the
 * server is stopping; in the last two cases the job is cancelled. */
static wait_end wait_job(vki_serve_http *h, vki_serve_job *j, int fd, bool until_started)
{
    wait_end end = WAIT_READY;
    pthread_mutex_lock(&j->lock);
    while (!j->finished && !(until_started && j->started)) {
        if (atomic_load(&h->stopping)) end = WAIT_STOPPING;
        else if (client_gone(fd)) end = WAIT_GONE;
        if (end != WAIT_READY) {
            j->cancelled = true;
            pthread_cond_broadcast(&j->changed);
            break;
        }
        wait_slice(j, WAIT_SLICE_MS);
    }
    pthread_mutex_unlock(&j->lock);
    return end;
}

typedef enum stream_phase { PH_ROLE, PH_TEXT, PH_FINISH, PH_USAGE, PH_DONE, PH_END } stream_phase;

/* A streamed answer: libmicrohttpd pulls the events from stream_read. */
typedef struct sse_stream {
    vki_serve_http *h;
    vki_serve_job *job;             // one reference, dropped by stream_free
    int fd;
    stream_phase phase;
    size_t sent;                    // bytes of job->text sent
    bool first;                     // the next chunk is the first (carries the role)
    double last_event_us;
    char *out;                      // the formatted event being handed out [out_len]
    size_t out_len, out_off;
} sse_stream;

/* Sets st->out to `prefix` `json` "\n\n" (json taken over). False for lack of host memory. */
static bool set_event(sse_stream *st, const char *prefix, char *json)
{
    if (!json) return false;
    size_t np = strlen(prefix), nj = strlen(json);
    char *out = malloc(np + nj + 3);
    if (!out) {
        free(json);
        return false;
    }
    memcpy(out, prefix, np);
    memcpy(out + np, json, nj);
    memcpy(out + np + nj, "\n\n", 3);
    free(json);
    free(st->out);
    st->out = out;
    st->out_len = np + nj + 2;
    st->out_off = 0;
    st->last_event_us = vki_now_us();
    return true;
}

static bool chunk_event(sse_stream *st, const char *text, size_t n, const char *finish,
                        const vki_serve_token_usage *usage)
{
    vki_serve_job *j = st->job;
    char *json = vki_serve_chunk_json(j->req.kind, j->id, j->created, st->h->model_id, st->first,
                                      text, n, finish, usage);
    st->first = false;
    return set_event(st, "data: ", json);
}

static bool error_event(sse_stream *st, const vki_serve_error *e)
{
    st->phase = PH_DONE;
    return set_event(st, "data: ", vki_serve_error_json(e));
}

/* The text phase: waits for new text, the end, a hang-up or the server's stop. Returns false
 * to end the response at once (the client is gone; out of host memory). */
static bool next_text(sse_stream *st)
{
    vki_serve_job *j = st->job;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        if (j->text_len > st->sent) {
            size_t n = j->text_len - st->sent;
            char *piece = malloc(n);
            if (piece) memcpy(piece, j->text + st->sent, n);
            st->sent = j->text_len;
            pthread_mutex_unlock(&j->lock);
            bool ok = piece && chunk_event(st, piece, n, NULL, NULL);
            free(piece);
            return ok;
        }
        if (j->finished) {
            vki_serve_error e = j->error;
            pthread_mutex_unlock(&j->lock);
            if (e.status) return error_event(st, &e); // after the start: an event, then [DONE]
            st->phase = PH_FINISH;
            return true;
        }
        if (atomic_load(&st->h->stopping)) {
            j->cancelled = true;
            pthread_cond_broadcast(&j->changed);
            pthread_mutex_unlock(&j->lock);
            vki_serve_error e;
            vki_serve_error_set(&e, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
            return error_event(st, &e);
        }
        if (client_gone(st->fd)) {
            j->cancelled = true;
            pthread_cond_broadcast(&j->changed);
            pthread_mutex_unlock(&j->lock);
            return false;
        }
        if (vki_now_us() - st->last_event_us > KEEPALIVE_S * 1e6) {
            pthread_mutex_unlock(&j->lock);
            char *comment = malloc(1);
            if (comment) comment[0] = 0;
            return set_event(st, ":", comment); // ":\n\n", a comment clients skip
        }
        wait_slice(j, WAIT_SLICE_MS);
    }
}

/* Makes the next event (or moves to the next phase). False: end the response at once. */
static bool next_event(sse_stream *st)
{
    vki_serve_job *j = st->job;
    switch (st->phase) {
    case PH_ROLE: // OpenAI's first chunk: the role with empty content, before any text
        st->phase = PH_TEXT;
        return j->req.kind == VKI_SERVE_CHAT ? chunk_event(st, "", 0, NULL, NULL) : true;
    case PH_TEXT:
        return next_text(st);
    case PH_FINISH: {
        pthread_mutex_lock(&j->lock);
        const char *finish = j->finish_reason ? j->finish_reason : "stop";
        pthread_mutex_unlock(&j->lock);
        st->phase = j->req.include_usage ? PH_USAGE : PH_DONE;
        return chunk_event(st, "", 0, finish, NULL);
    }
    case PH_USAGE: {
        pthread_mutex_lock(&j->lock);
        vki_serve_token_usage usage = j->usage;
        pthread_mutex_unlock(&j->lock);
        st->phase = PH_DONE;
        return chunk_event(st, "", 0, NULL, &usage);
    }
    case PH_DONE: {
        char *done = malloc(sizeof "[DONE]");
        if (done) memcpy(done, "[DONE]", sizeof "[DONE]");
        st->phase = PH_END;
        return set_event(st, "data: ", done);
    }
    case PH_END:
        break;
    }
    return false;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_stream *st = cls;
    for (;;) {
        if (st->out_off < st->out_len) {
            size_t n = st->out_len - st->out_off;
            if (n > max) n = max;
            memcpy(buf, st->out + st->out_off, n);
            st->out_off += n;
            return (ssize_t)n;
        }
        if (st->phase == PH_END) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!next_event(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* The response is done with (sent, or the client went away): the scheduler may drop the job. */
static void stream_free(void *cls)
{
    sse_stream *st = cls;
    cancel_job(st->job);
    vki_serve_job_release(st->job);
    free(st->out);
    free(st);
}

static enum MHD_Result start_stream(request *r, vki_serve_job *job, int fd)
{
    sse_stream *st = calloc(1, sizeof *st);
    if (!st) {
        cancel_job(job);
        vki_serve_job_release(job);
        return MHD_NO;
    }
    *st = (sse_stream){.h = r->h, .job = job, .fd = fd, .first = true, .last_event_us = vki_now_us()};
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); // nginx in front: do not buffer
    return queue(r, 200, resp); // MHD holds the response, and stream_free runs when it is done
}

/* POST /v1/chat/completions and /v1/completions, once the whole body is in. */
static enum MHD_Result run_completion(request *r)
{
    vki_serve_http *h = r->h;
    vki_serve_kind kind = r->ep == EP_CHAT ? VKI_SERVE_CHAT : VKI_SERVE_COMPLETION;
    vki_serve_request req;
    vki_serve_error err = {0};
    bool parsed = vki_serve_request_parse(r->body ? r->body : "", r->len, kind, &req, &err);
    free(r->body);
    r->body = NULL;
    if (!parsed) {
        vki_serve_request_free(&req);
        return send_error(r, &err, NULL, NULL);
    }
    if (req.model && req.model[0] && strcmp(req.model, h->model_id) != 0) {
        vki_serve_error_set(&err, 404, "invalid_request_error", "model_not_found", "model",
                            "the model '%.200s' does not exist; this server serves '%.200s'",
                            req.model, h->model_id);
        vki_serve_request_free(&req);
        return send_error(r, &err, NULL, NULL);
    }
    if (!h->sched || atomic_load(&h->stopping)) {
        vki_serve_request_free(&req);
        return send_errorf(r, 503, "unavailable_error", NULL, NULL, NULL,
                           "the server is shutting down");
    }
    vki_serve_job *job = vki_serve_job_create(kind);
    if (!job) {
        vki_serve_request_free(&req);
        return send_errorf(r, 500, "server_error", NULL, NULL, NULL, "out of host memory");
    }
    job->req = req; // moved: the job frees it
    bool stream = job->req.stream;
    if (!vki_serve_sched_submit(h->sched, job, &err)) {
        vki_serve_job_release(job);
        if (!err.status)
            vki_serve_error_set(&err, 503, "unavailable_error", NULL, NULL, "the server is busy");
        return send_error(r, &err, err.status == 503 ? "Retry-After" : NULL, "1");
    }
    r->active = true;
    atomic_fetch_add(&h->active, 1);
    int fd = socket_of(r->connection);
    wait_end end = wait_job(h, job, fd, stream);
    if (end == WAIT_GONE) {
        vki_serve_job_release(job);
        return MHD_NO; // nobody to answer: close
    }
    if (end == WAIT_STOPPING) {
        vki_serve_job_release(job);
        return send_errorf(r, 503, "unavailable_error", NULL, NULL, NULL,
                           "the server is shutting down");
    }
    pthread_mutex_lock(&job->lock);
    vki_serve_error job_err = job->error;
    bool finished = job->finished, started = job->started;
    char *json = NULL;
    if (!job_err.status && finished && !stream)
        json = vki_serve_response_json(kind, job->id, job->created, h->model_id,
                                       job->text ? job->text : "", job->text_len,
                                       job->finish_reason ? job->finish_reason : "stop", job->usage);
    pthread_mutex_unlock(&job->lock);
    if (job_err.status && (!stream || !started)) {
        vki_serve_job_release(job);
        return send_error(r, &job_err, job_err.status == 503 ? "Retry-After" : NULL, "1");
    }
    if (stream) return start_stream(r, job, fd);
    vki_serve_job_release(job);
    if (!json) return send_errorf(r, 500, "server_error", NULL, NULL, NULL, "out of host memory");
    return queue(r, 200, owned_response(json, "application/json"));
}

/* ---- The request handler ------------------------------------------------------------------ */

static const struct route *find_route(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, url) == 0) return &routes[i];
    return NULL;
}

/* The first call for a request: its headers are in, its body (if any) is not. Refusals (no
 * such endpoint, the wrong method, no key, a body over the limit) are answered at once. */
static enum MHD_Result begin_request(request *r, const char *url, const char *method)
{
    vki_serve_http *h = r->h;
    const struct route *route = find_route(url);
    if (strcmp(method, "OPTIONS") == 0) { // a browser's CORS preflight (it sends no key)
        r->ep = route ? route->ep : EP_OTHER;
        r->preflight = true;
        return MHD_YES;
    }
    if (!route) {
        r->ep = EP_OTHER;
        return send_errorf(r, 404, "not_found_error", NULL, NULL, NULL, "no endpoint %.200s %.200s",
                           method, url);
    }
    r->ep = route->ep;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (route->post ? strcmp(method, "POST") != 0 : !get)
        return send_errorf(r, 405, "invalid_request_error", NULL, "Allow",
                           route->post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS",
                           "%.200s takes %s, not %.40s", route->path, route->post ? "POST" : "GET",
                           method);
    // The page itself is static and holds no secret; a browser cannot send a key to fetch it,
    // so it is served without one and its script sends the key with each API call.
    if (h->api_key && r->ep != EP_HEALTH && r->ep != EP_PAGE && !key_matches(h, r->connection))
        return send_errorf(r, 401, "authentication_error", "invalid_api_key", NULL, NULL,
                           "a valid API key is required: \"Authorization: Bearer <key>\"");
    if (route->post) {
        // Refuse an announced oversized body before reading it.
        const char *length = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t n = 0;
        if (length && vki_parse_u64(length, 0, UINT64_MAX, &n) && n > VKI_SERVE_MAX_BODY)
            return send_errorf(r, 413, "invalid_request_error", NULL, NULL, NULL,
                               "the request body is %llu bytes; the limit is %u",
                               (unsigned long long)n, VKI_SERVE_MAX_BODY);
    }
    // The rest is answered once the request is whole: libmicrohttpd closes a connection whose
    // answer came before it had read the request to its end, even one without a body.
    return MHD_YES;
}

/* The last call for a request: all of it is in (r->body for a POST). */
static enum MHD_Result end_request(request *r)
{
    if (r->preflight) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
        return queue(r, 204, resp);
    }
    switch (r->ep) {
    case EP_PAGE: return send_page(r);
    case EP_HEALTH: {
        char *ok = malloc(sizeof "{\"status\":\"ok\"}");
        if (ok) memcpy(ok, "{\"status\":\"ok\"}", sizeof "{\"status\":\"ok\"}");
        return queue(r, 200, owned_response(ok, "application/json"));
    }
    case EP_MODELS: return send_models(r);
    case EP_METRICS: return send_metrics(r);
    case EP_CHAT:
    case EP_COMPLETIONS:
        if (r->too_large)
            return send_errorf(r, 413, "invalid_request_error", NULL, NULL, NULL,
                               "the request body is over the limit of %u bytes", VKI_SERVE_MAX_BODY);
        return run_completion(r);
    default: break;
    }
    return MHD_NO;
}

/* Keeps upload bytes up to the limit; past it, drops them (a chunked upload, whose size is
 * known only at its end) and says false once the client has sent far too much. */
static bool take_upload(request *r, const char *data, size_t n)
{
    if (!r->too_large && n > VKI_SERVE_MAX_BODY - r->len) {
        r->too_large = true;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
    }
    if (r->too_large) {
        r->discarded += n;
        return r->discarded <= 4 * (size_t)VKI_SERVE_MAX_BODY;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n) cap *= 2;
        if (cap > VKI_SERVE_MAX_BODY) cap = VKI_SERVE_MAX_BODY;
        char *grown = realloc(r->body, cap);
        if (!grown) return false;
        r->body = grown;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->h = cls;
        r->connection = connection;
        *con_cls = r;
        return begin_request(r, url, method);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->answered) return MHD_YES; // answered already: the rest is dropped
        return take_upload(r, upload_data, n) ? MHD_YES : MHD_NO;
    }
    if (r->answered) return MHD_YES;
    return end_request(r);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)connection;
    (void)toe;
    vki_serve_http *h = cls;
    request *r = *con_cls;
    if (!r) return;
    if (r->active) atomic_fetch_sub(&h->active, 1);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    vki_serve_http *h = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (!atomic_load(&h->started)) snprintf(h->start_error, sizeof h->start_error, "%s", line);
    else if (!strstr(line, "application error generating response")) // a stream whose client left
        fprintf(stderr, "vkinfer: http: %s\n", line);
}

/* ---- Start and stop ----------------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(v6) ||
               (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
    }
    return false;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

static void http_free(vki_serve_http *h)
{
    free(h->model_id);
    if (h->api_key) {
        // the key should not linger in freed memory
        volatile char *k = h->api_key;
        for (size_t i = 0; i < h->api_key_len; i++) k[i] = 0;
    }
    free(h->api_key);
    free(h);
}

int vki_serve_http_start(const vki_serve_http_desc *desc, vki_serve_http **out)
{
    *out = NULL;
    const char *host = desc->host ? desc->host : "127.0.0.1";
    vki_serve_http *h = calloc(1, sizeof *h);
    if (!h) return vki_app_failf("out of host memory");
    h->sched = desc->sched;
    h->n_ctx = desc->n_ctx;
    h->vision = desc->vision;
    h->created = (int64_t)time(NULL);
    h->model_id = copy_string(desc->model_id ? desc->model_id : "");
    if (desc->api_key) {
        h->api_key = copy_string(desc->api_key);
        h->api_key_len = strlen(desc->api_key);
    }
    if (!h->model_id || (desc->api_key && !h->api_key)) {
        http_free(h);
        return vki_app_failf("out of host memory");
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)desc->port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        http_free(h);
        return vki_app_failf("cannot resolve the address '%s': %s", host,
                             gai ? gai_strerror(gai) : "no address");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        // "::" takes IPv4 clients too, as "0.0.0.0" users expect of "all addresses"
        flags |= IN6_IS_ADDR_UNSPECIFIED(v6) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    }
    if (!desc->api_key && !is_loopback(ai->ai_addr))
        fprintf(stderr, "vkinfer: warning: serving on %s without an API key: anyone who can reach "
                        "this address can use the model (--api-key or --api-key-file sets one)\n",
                host);
    h->daemon = MHD_start_daemon(
        flags, desc->port, NULL, NULL, on_request, h,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(desc->max_connections ? desc->max_connections : 64),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(desc->timeout_s ? desc->timeout_s : 60),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_EXTERNAL_LOGGER, on_log, h,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        int code = vki_app_failf("cannot serve on %s port %u: %s", host, (unsigned)desc->port,
                                 h->start_error[0] ? h->start_error : "libmicrohttpd failed to start");
        http_free(h);
        return code;
    }
    atomic_store(&h->started, true);
    *out = h;
    return VKI_EXIT_OK;
}

uint16_t vki_serve_http_port(const vki_serve_http *h)
{
    if (!h) return 0;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void vki_serve_http_stop(vki_serve_http *h)
{
    if (!h) return;
    // New connections are refused; requests in flight see the flag within a wait slice, cancel
    // their jobs and answer 503 (a stream: an error event and [DONE]). Give those answers a
    // moment to go out before the daemon closes every socket.
    atomic_store(&h->stopping, true);
    MHD_socket listener = MHD_quiesce_daemon(h->daemon);
    for (int waited = 0; atomic_load(&h->active) > 0 && waited < DRAIN_MS; waited += 20)
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    MHD_stop_daemon(h->daemon);
    if (listener != MHD_INVALID_SOCKET) close(listener);
    http_free(h);
}
