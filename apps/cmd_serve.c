/* `vkinfer serve`: an OpenAI-compatible HTTP server over one language model (the parts are
 * described in apps/serve_internal.h). This file reads the options, opens the model with one
 * sequence per slot, starts the scheduler and the HTTP server, and waits for SIGINT or SIGTERM.
 *
 * The signals are blocked in every thread (the mask is set before the device, the scheduler or
 * libmicrohttpd start any) and taken by sigwait in this one, so no handler runs at an arbitrary
 * point of another thread and shutting down is ordinary code: HTTP first (no new jobs; the
 * waiting ones are cancelled and answered), then the scheduler, then the model. */
#define _POSIX_C_SOURCE 200809L // pthread_sigmask, sigwait

#include "serve_internal.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 8080
#define DEFAULT_QUEUE 16
#define MAX_API_KEY 4096

void vki_serve_usage(FILE *f)
{
    fprintf(f,
            "usage: vkinfer [global options] serve [options]\n\n"
            "An OpenAI-compatible HTTP server: POST /v1/chat/completions and /v1/completions\n"
            "(streamed as server-sent events with \"stream\": true), GET /v1/models, /health,\n"
            "/metrics (Prometheus) and a chat page at /. Point a client at http://HOST:PORT/v1.\n"
            "Ctrl-C (SIGINT) or SIGTERM stops it.\n\n"
            "  --host ADDR           address to listen on (default: 127.0.0.1; \"::\" or 0.0.0.0\n"
            "                        for every interface, which warns unless a key is set)\n"
            "  --port N              TCP port, 0 for a free one (default: %d)\n"
            "  --parallel N          conversations served at once, each with its own context\n"
            "                        (default: 4 on a GPU, 2 on a CPU device)\n"
            "  --queue N             requests that may wait for a free slot; beyond it the\n"
            "                        answer is 503 with Retry-After (default: %d)\n"
            "  --api-key KEY         require \"Authorization: Bearer KEY\" on every endpoint\n"
            "                        but /health and the page\n"
            "  --api-key-file FILE   the key from the first line of FILE (keeps it out of the\n"
            "                        process list)\n"
            "  --alias NAME          the model's id in /v1/models and requests (default: the\n"
            "                        model file's name)\n"
            "  --timeout S           close a connection idle for S seconds (default: 60)\n"
            "Of the model options below, --ctx is each slot's context, and the sampling options\n"
            "are the defaults for requests that do not set their own.\n\n",
            DEFAULT_PORT, DEFAULT_QUEUE);
    vki_llm_options_usage(f);
}

/* The first line of `path`, without surrounding white space, in key[size]. */
static int read_key_file(const char *path, char *key, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) return vki_app_failf("--api-key-file %s: cannot open it", path);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 >= size) {
            fclose(f);
            return vki_app_failf("--api-key-file %s: the key is longer than %zu bytes", path, size - 2);
        }
        key[n++] = (char)c;
    }
    fclose(f);
    while (n > 0 && isspace((unsigned char)key[n - 1])) n--;
    key[n] = 0;
    size_t skip = 0;
    while (isspace((unsigned char)key[skip])) skip++;
    memmove(key, key + skip, n - skip + 1);
    if (!key[0]) return vki_app_failf("--api-key-file %s: the first line is empty", path);
    return VKI_EXIT_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

typedef struct serve_opts {
    vki_llm_opts llm;
    const char *host, *api_key, *api_key_file, *alias;
    uint32_t port, parallel, queue, timeout_s;
} serve_opts;

static int parse_options(int argc, char **argv, serve_opts *o, bool *out_help)
{
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m = vki_llm_option(argc, argv, &i, &o->llm, vki_serve_usage);
        if (m < 0) return -m;
        if (m > 0) continue;
        uint64_t n = 0;
        if ((m = vki_arg_value(argc, argv, &i, "--host", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_serve_usage, "--host needs an address");
            o->host = value;
        } else if ((m = vki_arg_value(argc, argv, &i, "--port", &value)) != 0) {
            if (m < 0 || !vki_parse_u64(value, 0, 65535, &n))
                return vki_app_usage_error(vki_serve_usage, "--port needs a number in 0..65535");
            o->port = (uint32_t)n;
        } else if ((m = vki_arg_value(argc, argv, &i, "--parallel", &value)) != 0 ||
                   (m = vki_arg_value(argc, argv, &i, "-np", &value)) != 0) {
            if (m < 0 || !vki_parse_u64(value, 1, 64, &n))
                return vki_app_usage_error(vki_serve_usage, "--parallel needs a number in 1..64");
            o->parallel = (uint32_t)n;
        } else if ((m = vki_arg_value(argc, argv, &i, "--queue", &value)) != 0) {
            if (m < 0 || !vki_parse_u64(value, 0, 4096, &n))
                return vki_app_usage_error(vki_serve_usage, "--queue needs a number in 0..4096");
            o->queue = (uint32_t)n;
        } else if ((m = vki_arg_value(argc, argv, &i, "--timeout", &value)) != 0) {
            if (m < 0 || !vki_parse_u64(value, 1, 86400, &n))
                return vki_app_usage_error(vki_serve_usage, "--timeout needs seconds in 1..86400");
            o->timeout_s = (uint32_t)n;
        } else if ((m = vki_arg_value(argc, argv, &i, "--api-key", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_serve_usage, "--api-key needs a key");
            o->api_key = value;
        } else if ((m = vki_arg_value(argc, argv, &i, "--api-key-file", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_serve_usage, "--api-key-file needs a file");
            o->api_key_file = value;
        } else if ((m = vki_arg_value(argc, argv, &i, "--alias", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_serve_usage, "--alias needs a name");
            o->alias = value;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *out_help = true;
            return VKI_EXIT_OK;
        } else {
            return vki_app_usage_error(vki_serve_usage, "serve: unknown argument '%s'", argv[i]);
        }
    }
    if (o->api_key && o->api_key_file)
        return vki_app_usage_error(vki_serve_usage, "give --api-key or --api-key-file, not both");
    return VKI_EXIT_OK;
}

int vki_cmd_serve(vki_app *app, int argc, char **argv)
{
    serve_opts o = {.host = "127.0.0.1", .port = DEFAULT_PORT, .queue = DEFAULT_QUEUE};
    bool help = false;
    int code = parse_options(argc, argv, &o, &help);
    if (code != VKI_EXIT_OK) return code;
    if (help) {
        vki_serve_usage(stdout);
        return VKI_EXIT_OK;
    }
    static char key[MAX_API_KEY];
    if (o.api_key_file) {
        if ((code = read_key_file(o.api_key_file, key, sizeof key)) != VKI_EXIT_OK) return code;
        o.api_key = key;
    }

    // Before any thread exists (the device's driver may start some): every thread inherits
    // the mask, so the signals wait for sigwait below.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN); // a client gone mid-write is an error return, not the end

    vki_llm_session s = {0};
    vki_serve_sched *sched = NULL;
    vki_serve_http *http = NULL;
    if ((code = vki_app_open_device(app)) != VKI_EXIT_OK) goto done;
    if (!o.parallel) o.parallel = vki_device_profile(app->device)->type == VKI_DEVICE_CPU ? 2 : 4;
    o.llm.n_seq = o.parallel;
    if ((code = vki_llm_session_open(app, &o.llm, &s)) != VKI_EXIT_OK) goto done;
    if (!s.tok) {
        code = vki_app_failf("%s has no tokenizer to serve with", s.model_path);
        goto done;
    }
    const vki_llm_info *info = vki_llm_info_get(s.llm);
    const char *model_id = o.alias ? o.alias : base_name(s.model_path);

    vki_serve_sched_desc sd = {.session = &s,
                               .parallel = o.parallel,
                               .queue_capacity = o.queue,
                               .sampling = o.llm.sampling,
                               .model_id = model_id};
    if ((code = vki_serve_sched_start(&sd, &sched)) != VKI_EXIT_OK) goto done;
    vki_serve_http_desc hd = {.host = o.host,
                              .port = (uint16_t)o.port,
                              .api_key = o.api_key,
                              .sched = sched,
                              .model_id = model_id,
                              .n_ctx = info->n_ctx,
                              .vision = s.vision != NULL,
                              .timeout_s = o.timeout_s};
    if ((code = vki_serve_http_start(&hd, &http)) != VKI_EXIT_OK) goto done;
    bool v6 = strchr(o.host, ':') != NULL; // a literal IPv6 address goes in brackets in a URL
    fprintf(stderr, "vkinfer: serving %s on http://%s%s%s:%u (%u slot%s, ctx %u)\n", model_id,
            v6 ? "[" : "", o.host, v6 ? "]" : "", (unsigned)vki_serve_http_port(http), o.parallel,
            o.parallel == 1 ? "" : "s", info->n_ctx);
    fflush(stderr);

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {}
    fprintf(stderr, "vkinfer: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");

done:
    vki_serve_http_stop(http);
    vki_serve_sched_stop(sched);
    vki_llm_session_close(&s);
    if (o.api_key == key) memset(key, 0, sizeof key);
    // The signals stay blocked: a second Ctrl-C during the shutdown must not kill the process
    // halfway through closing the device.
    return code;
}
