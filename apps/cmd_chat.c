/* `vkinfer chat`: an interactive conversation. Each turn the whole conversation is formatted
 * with the model's chat template and tokenized, what was typed as plain text (never control
 * tokens, unless --special); the part the KV cache already holds (the longest common prefix
 * with the tokens evaluated so far) is kept, so a turn costs only its new tokens. When the
 * conversation outgrows the context, the oldest turns are dropped.
 *
 * With a vision encoder (--mmproj), /image FILE (or --image FILE for the first message) puts an
 * image before the text of the next message, as llama.cpp's mtmd-cli does: a marker in the
 * message that encoding replaces with the family's markup and the image's rows. The images
 * stay in memory for the conversation (a prefix the cache drops is evaluated again). */
#define _POSIX_C_SOURCE 200809L // sigaction

#include "apps_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 1024

/* Ctrl-C while a reply streams stops the reply (and keeps what came so far); at the prompt it
 * leaves. A signal handler can only reach a flag of static storage: this is the one. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
#ifdef _WIN32
    signal(SIGINT, on_interrupt); // Windows' C library resets the handler before calling it
#endif
}

/* Asked by the model between prompt batches: Ctrl-C stops a long prefill within one batch. */
static bool should_abort(void *user)
{
    (void)user;
    return interrupted != 0;
}

void vki_chat_usage(FILE *f)
{
    fprintf(f,
            "usage: vkinfer [global options] chat [options]\n\n"
            "Type a message and press Enter; the reply streams as it is produced.\n"
            "Commands: /reset starts a new conversation, /quit (or end of input) leaves,\n"
            "/image FILE puts a PNG or JPEG image in your next message (with --mmproj).\n"
            "Ctrl-C stops a reply; at the prompt it leaves.\n\n"
            "  -n, --n-predict N     longest reply in tokens (default: 512)\n"
            "  --system TEXT         system prompt (default: the template's own, if any)\n"
            "  --special             let messages and the system prompt spell control tokens\n"
            "                        (<|im_end|>, <start_of_turn>); by default what you type\n"
            "                        is plain text and cannot end a turn or open another\n"
            "  --image FILE          an image (PNG or JPEG) for the first message; needs\n"
            "                        --mmproj (may be given more than once)\n");
    vki_llm_options_usage(f);
}

typedef struct chat {
    vki_llm_session *s;
    vki_sampler *sampler;
    vki_chat_message msgs[MAX_MESSAGES];
    uint32_t n_msgs;
    const char *system;
    bool special;          // --special: message text may spell control tokens
    int32_t *cached;       // tokens in the KV cache, in order [n_ctx]
    int32_t *ids;          // the formatted conversation's tokens [n_ctx + 1]
    vki_llm_image *images; // every image of the conversation [n_images]
    uint32_t n_images;
    uint32_t pending;      // images[n_images - pending ..] go with the next message
} chat;

static void drop_images(chat *c)
{
    for (uint32_t i = 0; i < c->n_images; i++) vki_llm_image_free(&c->images[i]);
    free(c->images);
    c->images = NULL;
    c->n_images = c->pending = 0;
}

/* Encodes an image file for the next message. Returns false (and says why) when it cannot. */
static bool add_image(chat *c, const char *path)
{
    vki_llm_image *grown = realloc(c->images, (c->n_images + 1) * sizeof *grown);
    if (!grown) {
        fprintf(stderr, "vkinfer: out of host memory\n");
        return false;
    }
    c->images = grown;
    char err[512] = "";
    vki_status st = vki_llm_session_image_file(c->s, path, &c->images[c->n_images], err, sizeof err);
    if (st) {
        fprintf(stderr, "vkinfer: %s: %s\n", path, err);
        return false;
    }
    fprintf(stderr, "(%s: %u embeddings, with your next message)\n", path, c->images[c->n_images].n);
    c->n_images++;
    c->pending++;
    return true;
}

static void drop_messages(chat *c, uint32_t from, uint32_t count)
{
    for (uint32_t i = from; i < from + count; i++) free((char *)c->msgs[i].content);
    memmove(&c->msgs[from], &c->msgs[from + count], (c->n_msgs - from - count) * sizeof c->msgs[0]);
    c->n_msgs -= count;
}

/* Adds a message; a user's takes the pending images, before its text. */
static bool add_message(chat *c, const char *role, const char *content, size_t len)
{
    if (c->n_msgs == MAX_MESSAGES) drop_messages(c, 0, 2);
    uint32_t n_img = strcmp(role, "user") == 0 ? c->pending : 0;
    char *copy = malloc(n_img * VKI_LLM_IMAGE_MARKER_SIZE + len + 1);
    if (!copy) return false;
    size_t at = 0;
    for (uint32_t i = c->n_images - n_img; i < c->n_images; i++) {
        vki_llm_image_marker(c->images[i].id, copy + at);
        at += strlen(copy + at);
    }
    c->pending -= n_img;
    memcpy(copy + at, content, len);
    copy[at + len] = 0;
    c->msgs[c->n_msgs++] = (vki_chat_message){role, copy};
    return true;
}

/* Formats and tokenizes the conversation into c->ids. Returns the token count (more than
 * `capacity` when it does not fit), 0 on failure. */
static uint32_t tokenize_conversation(chat *c, uint32_t capacity)
{
    vki_chat_prompt p = {.tmpl = c->s->chat_template,
                         .messages = c->msgs,
                         .count = c->n_msgs,
                         .add_assistant_prompt = true,
                         .default_system = c->system,
                         .special_in_content = c->special};
    uint32_t n = 0;
    char err[256];
    vki_status st = vki_llm_session_encode(c->s, &p, c->images, c->n_images, c->ids, capacity, &n,
                                           err, sizeof err);
    if (st && n <= capacity) fprintf(stderr, "vkinfer: %s\n", err);
    return st == VKI_OK ? n : (n > capacity ? n : 0);
}

/* One assistant reply to the conversation so far. Returns an exit code (failures of the
 * device are fatal; a turn that does not fit is not). */
static int reply(chat *c, uint32_t n_predict)
{
    vki_llm *llm = c->s->llm;
    const vki_llm_info *info = vki_llm_info_get(llm);
    uint32_t n = 0;
    // Room for the reply: drop the oldest exchanges (never a leading system message) until the
    // conversation and a reply fit.
    for (;;) {
        n = tokenize_conversation(c, info->n_ctx + 1);
        if (n == 0)
            return vki_app_failf("formatting the conversation failed: %s",
                                 vki_tokenizer_last_error(c->s->tok));
        uint32_t room = n_predict < info->n_ctx / 2 ? n_predict : info->n_ctx / 2;
        if (n + room <= info->n_ctx) break;
        uint32_t first = c->n_msgs && strcmp(c->msgs[0].role, "system") == 0 ? 1 : 0;
        if (c->n_msgs - first <= 1) {
            // Only this message is left: say whether it, or the system prompt, is too long.
            vki_chat_message *last = &c->msgs[c->n_msgs - 1];
            const char *content = last->content;
            last->content = "";
            uint32_t base = tokenize_conversation(c, info->n_ctx + 1);
            last->content = content;
            drop_messages(c, c->n_msgs - 1, 1);
            if (base + room > info->n_ctx)
                fprintf(stderr, "vkinfer: the system prompt and the template take %u tokens, which "
                                "leaves no room for a message and a %u-token reply in the %u-token "
                                "context (--ctx raises it; --system replaces the prompt)\n",
                        base, room, info->n_ctx);
            else
                fprintf(stderr, "vkinfer: that message is %u tokens, too long for the %u-token "
                                "context with the system prompt's %u and a %u-token reply (--ctx "
                                "raises it)\n", n - base, info->n_ctx, base, room);
            return VKI_EXIT_OK;
        }
        drop_messages(c, first, c->n_msgs - first >= 3 ? 2 : 1);
        fprintf(stderr, "vkinfer: context full: dropped the oldest exchange\n");
    }
    uint32_t keep = 0, pos = vki_llm_position(llm);
    while (keep < pos && keep < n && c->cached[keep] == c->ids[keep]) keep++;
    if (keep == n) keep--; // at least one token to evaluate, for its logits
    keep = vki_llm_image_start(c->ids, keep); // an image's rows go in together
    vki_llm_rewind(llm, keep);
    char err[512] = "";
    vki_status st = vki_llm_session_eval(c->s, 0, c->ids + keep, n - keep, c->images, c->n_images,
                                         NULL, err, sizeof err);
    // What the cache holds now: everything, or the batches done before a Ctrl-C.
    uint32_t done = vki_llm_position(llm);
    memcpy(c->cached + keep, c->ids + keep, (done > keep ? done - keep : 0) * sizeof *c->ids);
    if (st == VKI_ERROR_CANCELLED) {
        drop_messages(c, c->n_msgs - 1, 1); // the message goes unanswered: forget it
        fprintf(stderr, "\n(stopped)\n");
        return VKI_EXIT_OK;
    }
    if (st) return vki_app_failf("%s", err);

    vki_sampler_reset(c->sampler);
    for (uint32_t i = 0; i < n; i++)
        if (c->ids[i] >= 0) vki_sampler_accept(c->sampler, c->ids[i]); // not an image's rows
    char *out = NULL;
    size_t out_len = 0;
    int code = VKI_EXIT_OK;
    for (uint32_t k = 0; k < n_predict && !interrupted; k++) {
        int32_t tok = 0;
        // A greedy sampler's token comes from the device; others read the logits.
        if (vki_llm_sample(llm, 0, c->sampler, c->s->logits, &tok)) {
            code = vki_app_failf("sampling: %s", vki_llm_last_error(llm));
            break;
        }
        if (vki_tokenizer_is_end(c->s->tok, tok)) break;
        vki_sampler_accept(c->sampler, tok);
        size_t len = 0;
        const char *piece = vki_llm_session_piece(c->s, tok, &len);
        char *grown = piece ? realloc(out, out_len + len + 1) : NULL;
        if (!grown) {
            code = vki_app_failf("out of host memory");
            break;
        }
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
        out = grown;
        memcpy(out + out_len, piece, len);
        out_len += len;
        uint32_t at = vki_llm_position(llm);
        if (at >= info->n_ctx) break;
        if (vki_llm_eval(llm, &tok, 1, NULL)) {
            code = vki_app_failf("%s", vki_llm_last_error(llm));
            break;
        }
        c->cached[at] = tok;
    }
    printf("\n");
    if (code == VKI_EXIT_OK && !add_message(c, "assistant", out ? out : "", out_len))
        code = vki_app_failf("out of host memory");
    free(out);
    return code;
}

int vki_cmd_chat(vki_app *app, int argc, char **argv)
{
    vki_llm_opts o = {0};
    uint32_t n_predict = 512;
    chat c = {0};
    const char *image_paths[16];
    uint32_t n_image_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m = vki_llm_option(argc, argv, &i, &o, vki_chat_usage);
        if (m < 0) return -m;
        if (m > 0) continue;
        if ((m = vki_arg_value(argc, argv, &i, "--n-predict", &value)) != 0 ||
            (m = vki_arg_value(argc, argv, &i, "-n", &value)) != 0) {
            uint64_t n = 0;
            if (m < 0 || !vki_parse_u64(value, 1, 1 << 20, &n))
                return vki_app_usage_error(vki_chat_usage, "-n needs a number in 1..1048576");
            n_predict = (uint32_t)n;
        } else if ((m = vki_arg_value(argc, argv, &i, "--system", &value)) != 0) {
            if (m < 0) return vki_app_usage_error(vki_chat_usage, "--system needs text");
            c.system = value;
        } else if ((m = vki_arg_value(argc, argv, &i, "--image", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_chat_usage, "--image needs a file");
            if (n_image_paths == sizeof image_paths / sizeof image_paths[0])
                return vki_app_usage_error(vki_chat_usage, "at most 16 --image files");
            image_paths[n_image_paths++] = value;
        } else if (strcmp(argv[i], "--special") == 0) {
            c.special = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            vki_chat_usage(stdout);
            return VKI_EXIT_OK;
        } else {
            return vki_app_usage_error(vki_chat_usage, "chat: unknown argument '%s'", argv[i]);
        }
    }
    if (n_image_paths && !o.mmproj)
        return vki_app_usage_error(vki_chat_usage, "--image needs a vision encoder (--mmproj FILE)");
    vki_llm_session s;
    int code = vki_llm_session_open(app, &o, &s);
    if (code != VKI_EXIT_OK) return code;
    c.s = &s;
    const vki_llm_info *info = vki_llm_info_get(s.llm);
    if (s.chat_template == VKI_CHAT_TEMPLATE_NONE) {
        code = vki_app_failf("%s has no chat template vkinfer knows: pass --template chatml, "
                             "llama3, gemma or llama2", s.model_path);
        goto done;
    }
    if (!c.system) c.system = vki_tokenizer_default_system(s.tok);
    c.cached = malloc((info->n_ctx + 1) * sizeof *c.cached);
    c.ids = malloc((info->n_ctx + 1) * sizeof *c.ids);
    if (!c.cached || !c.ids) {
        code = vki_app_failf("out of host memory");
        goto done;
    }
    char why[256];
    vki_status st = vki_sampler_create(&o.sampling, info->n_vocab, &c.sampler, why, sizeof why);
    if (st) {
        code = vki_app_failf("sampler: %s", why);
        goto done;
    }
    for (uint32_t i = 0; i < n_image_paths; i++)
        if (!add_image(&c, image_paths[i])) {
            code = VKI_EXIT_FAILURE;
            goto done;
        }
    char mem[32];
    fprintf(stderr, "vkinfer chat: %s (%s, %u layers, %s of weights) on %s, %u-token context\n"
                    "Type a message; /reset starts over, /quit leaves, Ctrl-C stops a reply.\n",
            info->name[0] ? info->name : s.model_path, info->arch, info->n_layer,
            vki_bytes_string(info->weight_bytes, mem), vki_device_profile(app->device)->name,
            info->n_ctx);
#ifdef _WIN32
    // The console's Ctrl-C arrives as SIGINT; the read at the prompt then returns no line.
    void (*old_handler)(int) = signal(SIGINT, on_interrupt);
#else
    // No SA_RESTART: Ctrl-C at the prompt interrupts getline, which then returns -1.
    struct sigaction sa = {.sa_handler = on_interrupt}, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
#endif
    vki_llm_set_abort(s.llm, should_abort, NULL);
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        interrupted = 0;
        printf("> ");
        fflush(stdout);
        ptrdiff_t len = vki_read_line(&line, &line_cap, stdin);
        if (len < 0) {
            printf("\n");
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0) break;
        if (strncmp(line, "/image", 6) == 0 && (line[6] == ' ' || line[6] == 0)) {
            const char *path = line + 6;
            while (*path == ' ') path++;
            if (!*path) fprintf(stderr, "usage: /image FILE (a PNG or JPEG)\n");
            else add_image(&c, path); // it said why if not
            continue;
        }
        if (vki_llm_text_has_marker(line, (size_t)len)) {
            fprintf(stderr, "vkinfer: that message spells vkinfer's image marker ('<', the "
                            "control character 0x1e, 'vki-image:'): not sent\n");
            continue;
        }
        if (strcmp(line, "/reset") == 0) {
            drop_messages(&c, 0, c.n_msgs);
            drop_images(&c);
            vki_llm_rewind(s.llm, 0);
            fprintf(stderr, "(new conversation)\n");
            continue;
        }
        if (!add_message(&c, "user", line, (size_t)len)) {
            code = vki_app_failf("out of host memory");
            break;
        }
        if ((code = reply(&c, n_predict)) != VKI_EXIT_OK) break;
    }
    free(line);
#ifdef _WIN32
    signal(SIGINT, old_handler);
#else
    sigaction(SIGINT, &old_sa, NULL);
#endif
done:
    drop_messages(&c, 0, c.n_msgs);
    drop_images(&c);
    vki_sampler_destroy(c.sampler);
    free(c.cached);
    free(c.ids);
    vki_llm_session_close(&s);
    return code;
}
