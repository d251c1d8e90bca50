/* `vkinfer serve`: an OpenAI-compatible HTTP server over one language model, with several
 * conversations at once. Its parts, one file each, in the order a request meets them:
 *
 *   serve_http.c     libmicrohttpd: routes, the API key, size and time limits, server-sent
 *                    events, /health, /metrics, /v1/models, the chat page. Many threads (one per
 *                    connection); none touches the device or the model.
 *   serve_request.c  the bodies: request JSON -> vki_serve_request, and the response, chunk and
 *                    error JSON; stop strings across token boundaries. Pure functions (fuzzed by
 *                    tools/fuzz_serve_request.c).
 *   serve_sched.c    the slots: one thread owns the device, the model and its tokenizer; it admits
 *                    queued jobs into free slots (reusing a slot's cached prefix), prefills long
 *                    prompts in chunks between decode steps, decodes every generating slot in one
 *                    vki_llm_decode pass, samples, and hands text to the jobs.
 *   cmd_serve.c      options, start-up, signals.
 *
 * A job is the meeting point of an HTTP thread and the scheduler: the HTTP side creates it from a
 * parsed request, submits it, and waits on its condition variable for text; the scheduler writes
 * text, counts and the end under its lock. Either side may drop out first (a client that
 * disconnects sets `cancelled`; the scheduler frees the slot at its next step); the job is freed
 * when both have released it. */
#ifndef VKI_SERVE_INTERNAL_H
#define VKI_SERVE_INTERNAL_H

#include "apps_internal.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define VKI_SERVE_MAX_BODY (4u << 20)   // request body bytes (413 beyond)
#define VKI_SERVE_MAX_STOP 4            // stop strings per request (OpenAI's limit)
#define VKI_SERVE_MAX_STOP_LEN 256      // bytes per stop string
#define VKI_SERVE_MAX_MESSAGES 1024     // messages per chat request
#define VKI_SERVE_MAX_IMAGES 16         // images per chat request

/* ---- Requests and responses (serve_request.c) ------------------------------------------- */

typedef enum vki_serve_kind {
    VKI_SERVE_CHAT = 0,       // POST /v1/chat/completions
    VKI_SERVE_COMPLETION = 1, // POST /v1/completions
} vki_serve_kind;

/* An image a chat message holds (an "image_url" part with a data: URI), as the file's bytes. */
typedef struct vki_serve_image {
    uint8_t *data;                // PNG or JPEG (by its signature), owned
    size_t size;
} vki_serve_image;

/* A request as the scheduler needs it. Strings are NUL-terminated and owned by the request
 * (vki_serve_request_free). Text is taken as given: a message may spell "<|im_end|>", which stays
 * text (vki_chat_encode keeps content out of the markup). */
typedef struct vki_serve_request {
    vki_serve_kind kind;
    char *model;                  // "model", NULL when absent
    vki_chat_message *messages;   // CHAT: [n_messages] (role and content owned); content given as
                                  // an array of parts has its parts joined with newlines,
                                  // an image part as vki_llm_image_marker(k) for images[k]
    uint32_t n_messages;
    vki_serve_image *images;      // CHAT: the messages' images in order [n_images]
    uint32_t n_images;
    char *prompt;                 // COMPLETION: "prompt" (a string, or an array of one string)
    bool stream;                  // "stream"
    bool include_usage;           // "stream_options": {"include_usage": true}
    bool ignore_eos;              // llama.cpp's "ignore_eos": never end at an end-of-generation
                                  // token, only at max_tokens, a stop string or the context's end
    uint32_t max_tokens;          // "max_tokens" / "max_completion_tokens"; 0: not given (the
                                  // scheduler then stops at the end of the context)
    vki_sampler_desc sampling;    // "temperature" (0 -> VKI_SAMPLER_GREEDY), "top_p", "seed",
                                  // "presence_penalty", "frequency_penalty", and llama.cpp's
                                  // "top_k", "min_p", "repeat_penalty"; fields not given stay 0
                                  // (the scheduler fills them from the server's defaults)
    bool has_temperature, has_top_p, has_top_k, has_min_p, has_repeat_penalty, has_seed;
    char *stop[VKI_SERVE_MAX_STOP]; // "stop": a string or an array of strings, empty ones dropped
    uint32_t n_stop;
} vki_serve_request;

/* An error as the OpenAI API reports it: {"error": {"message", "type", "param", "code"}}. */
typedef struct vki_serve_error {
    int status;           // HTTP status: 400, 401, 404, 405, 413, 500, 503; 0: no error
    char message[512];    // names the problem ("'messages' must be an array")
    const char *type;     // "invalid_request_error", "authentication_error", "not_found_error",
                          // "server_error", "unavailable_error" (static strings)
    const char *code;     // NULL, or "context_length_exceeded", "model_not_found",
                          // "invalid_api_key", ... (static strings)
    char param[64];       // the offending field, "" when none
} vki_serve_error;

/* Fills *e (status, type, code, param may be NULL) with a printf-formatted message. */
void vki_serve_error_set(vki_serve_error *e, int status, const char *type, const char *code,
                         const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Parses an HTTP body of `length` bytes (any bytes, not NUL-terminated) sent to endpoint `kind`.
 * Unknown fields are ignored, as OpenAI does; a known field of the wrong type or out of range
 * is an error naming it. Values are checked against what the sampler accepts
 * (vki_sampler_check_desc's ranges; max_tokens <= 1 << 20). Returns true, or false with *err
 * (status 400) set. *out is zeroed first and must be freed with vki_serve_request_free either
 * way. */
bool vki_serve_request_parse(const char *body, size_t length, vki_serve_kind kind,
                             vki_serve_request *out, vki_serve_error *err);
void vki_serve_request_free(vki_serve_request *r);

typedef struct vki_serve_token_usage {
    uint32_t prompt_tokens, completion_tokens; // total_tokens is their sum
} vki_serve_token_usage;

/* Response bodies as malloc'ed NUL-terminated JSON (NULL only for lack of host memory). Text
 * is any bytes (vki_json_add_text sanitises it to UTF-8). `id` is "chatcmpl-..." or "cmpl-...",
 * `created` Unix seconds, `model` the served model's id. */

/* {"error": {...}} for e. */
char *vki_serve_error_json(const vki_serve_error *e);

/* The whole answer of a request that did not stream: a "chat.completion" (choices[0].message
 * {role "assistant", content}) or a "text_completion" (choices[0].text), with finish_reason
 * ("stop" or "length") and usage. */
char *vki_serve_response_json(vki_serve_kind kind, const char *id, int64_t created,
                              const char *model, const char *text, size_t n,
                              const char *finish_reason, vki_serve_token_usage usage);

/* One server-sent event's data (the JSON after "data: "): a "chat.completion.chunk" whose
 * choices[0].delta holds the text (and role "assistant" when `first`), or a "text_completion"
 * chunk; finish_reason null while generating, else the reason (with empty text). With usage
 * non-NULL: the final usage chunk of stream_options.include_usage (choices empty). */
char *vki_serve_chunk_json(vki_serve_kind kind, const char *id, int64_t created,
                           const char *model, bool first, const char *text, size_t n,
                           const char *finish_reason, const vki_serve_token_usage *usage);

/* Stop strings across token boundaries. text[0, n) is the reply so far, of which the first
 * `sent` bytes have been handed out already (never beyond a stop or a byte this function held
 * back). Sets *stop_at to the offset of the first occurrence of a stop string (searching from
 * where one could still begin), or SIZE_MAX when none occurs; returns the length of the prefix
 * that is safe to hand out: up to the stop when one occurs, else n less the longest tail that
 * is a proper prefix of a stop string or an unfinished UTF-8 character (so that a client never
 * sees half a stop string or half a character). */
size_t vki_serve_stop_scan(const char *text, size_t n, size_t sent, char *const *stops,
                           uint32_t n_stop, size_t *stop_at);

/* ---- Jobs (serve_sched.c) ---------------------------------------------------------------- */

typedef struct vki_serve_job {
    vki_serve_request req;        // owned; set by the HTTP side before submitting, then read-only
    char id[48];                  // "chatcmpl-<hex>" / "cmpl-<hex>"
    int64_t created;              // Unix seconds

    // Written by the scheduler and the HTTP side under `lock`; `changed` is broadcast after
    // every change.
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char *text;                   // the reply so far that is safe to send (whole UTF-8
    size_t text_len, text_cap;    // characters, no stop string), text_len bytes
    bool started;                 // its prompt is accepted and in a slot: answer 200
    bool finished;                // nothing more comes: finish_reason or error is set
    const char *finish_reason;    // "stop" or "length" (static strings)
    vki_serve_error error;        // error.status != 0: the job failed (before or after start)
    vki_serve_token_usage usage;
    bool cancelled;               // set by the HTTP side: the client went away; the scheduler
                                  // ends the job at its next step and frees the slot
    int refs;                     // freed when it reaches 0
    double t_submit, t_first;     // vki_now_us() at submit and at the first token (0: none yet)
} vki_serve_job;

/* A new job (refs 1, zeroed, lock and condition ready) with a fresh id for `kind`; NULL for
 * lack of host memory. */
vki_serve_job *vki_serve_job_create(vki_serve_kind kind);
/* Drops one reference; the last frees the job and its request. */
void vki_serve_job_release(vki_serve_job *j);

/* ---- The scheduler (serve_sched.c) -------------------------------------------------------- */

typedef struct vki_serve_sched vki_serve_sched;

typedef struct vki_serve_sched_desc {
    vki_llm_session *session;     // borrowed: opened with n_seq = parallel; from start on only
                                  // the scheduler's thread uses it (and its device)
    uint32_t parallel;            // slots (the model's n_seq)
    uint32_t queue_capacity;      // jobs waiting for a slot; beyond it submit says 503
                                  // (0: none wait, as `serve --queue 0`)
    uint32_t chunk;               // prompt tokens per prefill step between decode steps
                                  // (0: the model's n_batch)
    vki_sampler_desc sampling;    // the server's defaults (the command line's sampling options)
    const char *model_id;         // the served model's id (copied)
} vki_serve_sched_desc;

/* Figures for /metrics, a snapshot. */
typedef struct vki_serve_metrics {
    uint64_t jobs_done, jobs_failed, jobs_cancelled;
    uint64_t prompt_tokens;       // evaluated (cached prefixes not counted)
    uint64_t prompt_tokens_cached;// reused from a slot's cache
    uint64_t generated_tokens;
    uint32_t queue_length, slots_busy, slots_total;
    double prompt_seconds, decode_seconds; // device time spent in prefill and decode passes
    double tokens_per_second;     // generated tokens per second over the last 10 s
} vki_serve_metrics;

/* Starts the scheduler's thread. Returns 0, or an exit code after printing why. */
int vki_serve_sched_start(const vki_serve_sched_desc *desc, vki_serve_sched **out);

/* Queues `job` (the scheduler takes its own reference). Returns true, or false with *err set:
 * 503 with "queue full" (the HTTP side adds Retry-After) or when stopping. Errors found once
 * the job is in the scheduler's hands (a prompt longer than the context: 400
 * context_length_exceeded; a device failure: 500) arrive through the job. */
bool vki_serve_sched_submit(vki_serve_sched *s, vki_serve_job *job, vki_serve_error *err);

void vki_serve_sched_metrics(vki_serve_sched *s, vki_serve_metrics *out);

/* Stops taking jobs, ends every queued and running job (error 503 "the server is shutting
 * down"; a running stream ends early), joins the thread and frees the scheduler. NULL: nothing. */
void vki_serve_sched_stop(vki_serve_sched *s);

/* ---- HTTP (serve_http.c) ----------------------------------------------------------------- */

typedef struct vki_serve_http vki_serve_http;

typedef struct vki_serve_http_desc {
    const char *host;             // address to bind ("127.0.0.1", "::1", "0.0.0.0")
    uint16_t port;                // 0: a free port the system picks (vki_serve_http_port says)
    const char *api_key;          // NULL: none; else required on all but /health
    vki_serve_sched *sched;       // borrowed
    const char *model_id;         // the id /v1/models lists and requests may name
    uint32_t n_ctx;               // per slot, for /v1/models' meta
    bool vision;                  // a vision encoder (--mmproj): /v1/models' modalities.vision
    uint32_t max_connections;     // 0: 64
    uint32_t timeout_s;           // idle connection timeout; 0: 60
} vki_serve_http_desc;

/* Binds and starts serving. Returns 0, or an exit code after printing why (address in use,
 * cannot resolve). */
int vki_serve_http_start(const vki_serve_http_desc *desc, vki_serve_http **out);
uint16_t vki_serve_http_port(const vki_serve_http *h);
/* Stops accepting, closes every connection and frees the server. NULL: nothing. */
void vki_serve_http_stop(vki_serve_http *h);

/* The chat page at / (generated from apps/serve_page.html at build time). */
extern const char vki_serve_page_html[];
extern const size_t vki_serve_page_html_size;

#endif
