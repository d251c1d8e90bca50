/* `vkinfer generate -p TEXT`: one-shot generation for scripts. The prompt is used as given
 * (with --chat, as one user message in the model's chat template, plain text unless
 * --special); tokens stream to stdout as they are produced, or one JSON document comes out at
 * the end with --json. With a vision encoder (--mmproj), --image FILE puts images after the
 * prompt's text (in the user message with --chat), as llama.cpp's mtmd-cli does. */
#include "apps_internal.h"

#include <stdlib.h>
#include <string.h>

void vki_generate_usage(FILE *f)
{
    fprintf(f,
            "usage: vkinfer [global options] generate -p TEXT [options]\n\n"
            "  -p, --prompt TEXT     the prompt, as given: control tokens it spells (<|im_end|>)\n"
            "                        are parsed as such, as with llama.cpp's -p\n"
            "  -n, --n-predict N     tokens to generate at most (default: 128)\n"
            "  --chat                wrap the prompt as a user message in the chat template;\n"
            "                        the message is plain text, never control tokens\n"
            "  --special             with --chat: the message may spell control tokens\n"
            "  --json                print one JSON object (text, token ids, timings) at the end;\n"
            "                        text in it is UTF-8: bytes that are not (a character a\n"
            "                        token cuts off) become U+FFFD, the ids keep them exact\n"
            "  --ignore-eos          keep going past end-of-generation tokens\n"
            "  --image FILE          an image (PNG or JPEG) after the prompt's text; needs\n"
            "                        --mmproj (may be given more than once)\n");
    vki_llm_options_usage(f);
}

/* Appends a token's text to a growing buffer (for --json). */
static bool append(char **buf, size_t *len, size_t *cap, const char *piece, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = (*cap ? *cap * 2 : 4096) + n;
        char *b = realloc(*buf, c);
        if (!b) return false;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, piece, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

/* The prompt with the images' markers after its text, through the session's encoder. */
static vki_status encode_with_images(vki_llm_session *s, const char *prompt, bool chat,
                                     bool special, const vki_llm_image *images, uint32_t n_images,
                                     int32_t *ids, uint32_t capacity, uint32_t *out_n)
{
    size_t len = strlen(prompt);
    char *text = malloc(len + n_images * VKI_LLM_IMAGE_MARKER_SIZE + 1);
    if (!text) return VKI_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(text, prompt, len);
    for (uint32_t i = 0; i < n_images; i++) {
        vki_llm_image_marker(images[i].id, text + len);
        len += strlen(text + len);
    }
    char err[256] = "";
    vki_status st;
    if (chat) {
        vki_chat_message msg = {"user", text};
        vki_chat_prompt p = {.tmpl = s->chat_template,
                             .messages = &msg,
                             .count = 1,
                             .add_assistant_prompt = true,
                             .default_system = vki_tokenizer_default_system(s->tok),
                             .special_in_content = special};
        st = vki_llm_session_encode(s, &p, images, n_images, ids, capacity, out_n, err, sizeof err);
    } else {
        st = vki_llm_session_encode_text(s, text, len, NULL, 0, images, n_images, ids, capacity,
                                         out_n, err, sizeof err);
    }
    if (st && *out_n <= capacity) fprintf(stderr, "vkinfer: %s\n", err);
    free(text);
    return st;
}

/* Encodes the prompt (capacity 0: only counts its ids). Without --chat it is the user's whole
 * text, control tokens and all, as llama.cpp's -p takes it; with --chat it is a user message,
 * plain text unless --special, so it cannot close its turn or open a system one. */
static vki_status encode_prompt(vki_llm_session *s, const char *prompt, bool chat, bool special,
                                const vki_llm_image *images, uint32_t n_images, int32_t *ids,
                                uint32_t capacity, uint32_t *out_n)
{
    if (n_images) return encode_with_images(s, prompt, chat, special, images, n_images, ids,
                                            capacity, out_n);
    if (!chat)
        return vki_tokenizer_encode(s->tok, prompt, strlen(prompt), vki_tokenizer_add_bos(s->tok),
                                    true, ids, capacity, out_n);
    vki_chat_message msg = {"user", prompt};
    vki_chat_prompt p = {.tmpl = s->chat_template,
                         .messages = &msg,
                         .count = 1,
                         .add_assistant_prompt = true,
                         .default_system = vki_tokenizer_default_system(s->tok),
                         .special_in_content = special};
    return vki_chat_encode(s->tok, &p, ids, capacity, out_n);
}

int vki_cmd_generate(vki_app *app, int argc, char **argv)
{
    vki_llm_opts o = {0};
    const char *prompt = NULL;
    uint32_t n_predict = 128;
    bool json = false, chat = false, ignore_eos = false;
    bool special = false; // --special: a --chat message may spell control tokens
    const char *image_paths[16];
    uint32_t n_image_paths = 0;
    vki_llm_image images[16] = {{0}};
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m = vki_llm_option(argc, argv, &i, &o, vki_generate_usage);
        if (m < 0) return -m;
        if (m > 0) continue;
        if ((m = vki_arg_value(argc, argv, &i, "--prompt", &value)) != 0 ||
            (m = vki_arg_value(argc, argv, &i, "-p", &value)) != 0) {
            if (m < 0) return vki_app_usage_error(vki_generate_usage, "--prompt needs text");
            prompt = value;
        } else if ((m = vki_arg_value(argc, argv, &i, "--n-predict", &value)) != 0 ||
                   (m = vki_arg_value(argc, argv, &i, "-n", &value)) != 0) {
            uint64_t n = 0;
            if (m < 0 || !vki_parse_u64(value, 0, 1 << 20, &n))
                return vki_app_usage_error(vki_generate_usage, "-n needs a number in 0..1048576");
            n_predict = (uint32_t)n;
        } else if ((m = vki_arg_value(argc, argv, &i, "--image", &value)) != 0) {
            if (m < 0 || !value[0]) return vki_app_usage_error(vki_generate_usage, "--image needs a file");
            if (n_image_paths == sizeof image_paths / sizeof image_paths[0])
                return vki_app_usage_error(vki_generate_usage, "at most 16 --image files");
            image_paths[n_image_paths++] = value;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--chat") == 0) {
            chat = true;
        } else if (strcmp(argv[i], "--special") == 0) {
            special = true;
        } else if (strcmp(argv[i], "--ignore-eos") == 0) {
            ignore_eos = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            vki_generate_usage(stdout);
            return VKI_EXIT_OK;
        } else {
            return vki_app_usage_error(vki_generate_usage, "generate: unknown argument '%s'", argv[i]);
        }
    }
    if (!prompt) return vki_app_usage_error(vki_generate_usage, "generate: no prompt (-p TEXT)");
    if (n_image_paths && !o.mmproj)
        return vki_app_usage_error(vki_generate_usage, "--image needs a vision encoder (--mmproj FILE)");
    if (vki_llm_text_has_marker(prompt, strlen(prompt)))
        return vki_app_usage_error(vki_generate_usage, "the prompt spells vkinfer's image marker "
                                   "('<', the control character 0x1e, 'vki-image:')");

    vki_llm_session s;
    int code = vki_llm_session_open(app, &o, &s);
    if (code != VKI_EXIT_OK) return code;
    const vki_llm_info *info = vki_llm_info_get(s.llm);
    vki_sampler *sampler = NULL;
    int32_t *ids = NULL, *gen = NULL;
    char *text = NULL;
    size_t text_len = 0, text_cap = 0;
    uint32_t n_ids = 0, n_gen = 0;

    vki_status st = VKI_OK;
    for (uint32_t i = 0; i < n_image_paths; i++) {
        char err[512] = "";
        if ((st = vki_llm_session_image_file(&s, image_paths[i], &images[i], err, sizeof err))) {
            code = vki_app_failf("%s: %s", image_paths[i], err);
            goto done;
        }
    }
    uint32_t need = 0; // a first call counts the ids
    st = encode_prompt(&s, prompt, chat, special, images, n_image_paths, NULL, 0, &need);
    ids = malloc((need ? need : 1) * sizeof *ids);
    gen = malloc((n_predict + 1) * sizeof *gen);
    if (!ids || !gen) {
        code = vki_app_failf("out of host memory");
        goto done;
    }
    if (need) st = encode_prompt(&s, prompt, chat, special, images, n_image_paths, ids, need, &n_ids);
    if (st || n_ids == 0) {
        code = vki_app_failf("tokenizing the prompt: %s",
                             st ? vki_tokenizer_last_error(s.tok) : "no tokens");
        goto done;
    }
    char why[256];
    if ((st = vki_sampler_create(&o.sampling, info->n_vocab, &sampler, why, sizeof why))) {
        code = vki_app_failf("sampler: %s", why);
        goto done;
    }
    for (uint32_t i = 0; i < n_ids; i++)
        if (ids[i] >= 0) vki_sampler_accept(sampler, ids[i]); // not an image's rows

    double t0 = vki_now_us();
    char err[512] = "";
    if ((st = vki_llm_session_eval(&s, 0, ids, n_ids, images, n_image_paths, NULL, err,
                                   sizeof err))) {
        code = vki_app_failf("prefill: %s", err);
        goto done;
    }
    double t1 = vki_now_us(), t_first = 0;
    for (; n_gen < n_predict; n_gen++) {
        int32_t tok = 0;
        // A greedy sampler's token comes from the device; others read the logits.
        if ((st = vki_llm_sample(s.llm, 0, sampler, s.logits, &tok))) {
            code = vki_app_failf("sampling: %s", vki_llm_last_error(s.llm));
            goto done;
        }
        if (n_gen == 0) t_first = vki_now_us();
        if (!ignore_eos && vki_tokenizer_is_end(s.tok, tok)) break;
        gen[n_gen] = tok;
        vki_sampler_accept(sampler, tok);
        size_t len = 0;
        const char *piece = vki_llm_session_piece(&s, tok, &len);
        if (!piece) {
            code = vki_app_failf("out of host memory");
            goto done;
        }
        if (json) {
            if (!append(&text, &text_len, &text_cap, piece, len)) {
                code = vki_app_failf("out of host memory");
                goto done;
            }
        } else {
            fwrite(piece, 1, len, stdout);
            fflush(stdout);
        }
        if (n_gen + 1 == n_predict) {
            n_gen++;
            break;
        }
        if (vki_llm_position(s.llm) >= info->n_ctx) {
            fprintf(stderr, "\nvkinfer: context full (%u tokens): stopping\n", info->n_ctx);
            n_gen++;
            break;
        }
        if ((st = vki_llm_eval(s.llm, &tok, 1, NULL))) {
            code = vki_app_failf("decode: %s", vki_llm_last_error(s.llm));
            goto done;
        }
    }
    double t2 = vki_now_us();
    double prefill_tps = n_ids / ((t1 - t0) / 1e6);
    uint32_t decoded = n_gen > 1 ? n_gen - 1 : 0; // evaluations after the first sample
    double decode_tps = decoded ? decoded / ((t2 - (t_first ? t_first : t1)) / 1e6) : 0;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        if (!root) {
            code = vki_app_failf("out of host memory");
            goto done;
        }
        // Text as UTF-8 that parses: a token that ends mid-character, a file name that is not
        // UTF-8, each invalid byte becomes U+FFFD ("tokens" has the exact ids).
        const char *device = vki_device_profile(app->device)->name;
        if (!vki_json_add_text(root, "model", s.model_path, strlen(s.model_path)) ||
            !vki_json_add_text(root, "device", device, strlen(device)) ||
            !vki_json_add_text(root, "text", text ? text : "", text_len)) {
            cJSON_Delete(root);
            code = vki_app_failf("out of host memory");
            goto done;
        }
        // Token ids only: an image's rows are no tokens ("image_rows" counts them).
        uint32_t n_tok = 0;
        for (uint32_t i = 0; i < n_ids; i++)
            if (ids[i] >= 0) ids[n_tok++] = ids[i];
        cJSON_AddItemToObject(root, "prompt_tokens", cJSON_CreateIntArray(ids, (int)n_tok));
        if (n_image_paths) cJSON_AddNumberToObject(root, "image_rows", n_ids - n_tok);
        cJSON_AddItemToObject(root, "tokens", cJSON_CreateIntArray(gen, (int)n_gen));
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)vki_sampler_seed(sampler));
        cJSON_AddStringToObject(root, "seed", seed);
        vki_json_add_measure(root, "load_ms", s.load_ms);
        vki_json_add_measure(root, "prefill_tokens_per_s", prefill_tps);
        vki_json_add_measure(root, "decode_tokens_per_s", decode_tps);
        code = vki_json_print(root);
        cJSON_Delete(root);
    } else {
        printf("\n");
        fprintf(stderr, "vkinfer: %u prompt tokens at %.1f tokens/s, %u generated at %.1f tokens/s\n",
                n_ids, prefill_tps, n_gen, decode_tps);
    }
done:
    for (uint32_t i = 0; i < n_image_paths; i++) vki_llm_image_free(&images[i]);
    vki_sampler_destroy(sampler);
    free(ids);
    free(gen);
    free(text);
    vki_llm_session_close(&s);
    return code;
}
