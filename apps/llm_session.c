/* What the language-model commands share: their options (model, context, template, sampling),
 * finding the default model, and opening a model with its tokenizer on the app's device. */
#include "apps_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MODEL "SmolLM2-135M-Instruct.Q4_1.gguf"

void vki_llm_options_usage(FILE *f)
{
    fprintf(f,
            "model options:\n"
            "  -m, --model FILE      GGUF model (default: %s in the model cache,\n"
            "                        $VKI_MODEL_DIR or ~/.cache/vkinfer/models; tools/fetch_models.sh\n"
            "                        puts it there)\n"
            "  --ctx N               context size in tokens (default: the model's, at most 4096)\n"
            "  --batch N             prompt tokens per prefill run (default: 512 on a GPU,\n"
            "                        64 on a CPU device)\n"
            "  --template NAME       chat template: chatml, llama3, llama3.1, gemma, llama2\n"
            "                        (default: from the model)\n"
            "  -ctk, --cache-type T  KV cache type (keys and values): f16, f32, or q8_0 (8-bit\n"
            "                        blocks, about half the memory of f16) (default: f16)\n"
            "sampling (defaults as llama.cpp):\n"
            "  --temp T              temperature; 0 = greedy (default: 0.8)\n"
            "  --top-k K             keep the K most likely tokens; 0 = off (default: 40)\n"
            "  --top-p P             nucleus sampling; 1 = off (default: 0.95)\n"
            "  --min-p P             drop tokens under P x the top probability; 0 = off (default: 0.05)\n"
            "  --repeat-penalty R    penalise recent tokens; 1 = off (default: 1)\n"
            "  --repeat-last-n N     tokens the penalty looks back over (default: 64)\n"
            "  --seed S              random seed, 0..18446744073709551615 (default: a fresh one,\n"
            "                        printed by generate --json)\n",
            DEFAULT_MODEL);
}

typedef enum opt_kind { OPT_STRING, OPT_U32, OPT_FLOAT, OPT_SEED, OPT_CACHE_TYPE, OPT_TEMPLATE } opt_kind;

/* A --cache-type value by llama.cpp's names of the types it shares with us. */
static bool parse_cache_type(const char *s, vki_dtype *out)
{
    static const vki_dtype types[] = {VKI_DTYPE_F16, VKI_DTYPE_F32, VKI_DTYPE_Q8_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s, vki_dtype_get(types[i])->name) == 0) {
            *out = types[i];
            return true;
        }
    return false;
}

int vki_llm_option(int argc, char **argv, int *i, vki_llm_opts *o, void (*usage)(FILE *))
{
    const struct {
        const char *name, *alias;
        opt_kind kind;
        void *field;
        double min, max;
    } table[] = {
        {"--model", "-m", OPT_STRING, &o->model, 0, 0},
        {"--template", NULL, OPT_TEMPLATE, &o->template_name, 0, 0},
        {"--cache-type", "-ctk", OPT_CACHE_TYPE, &o->kv_dtype, 0, 0},
        {"--ctx", NULL, OPT_U32, &o->n_ctx, 1, 1 << 20},
        {"--batch", NULL, OPT_U32, &o->n_batch, 1, 4096},
        {"--temp", NULL, OPT_FLOAT, &o->sampling.temperature, 0, 100},
        {"--top-k", NULL, OPT_U32, &o->sampling.top_k, 0, INT32_MAX},
        {"--top-p", NULL, OPT_FLOAT, &o->sampling.top_p, 1e-6, 1},
        {"--min-p", NULL, OPT_FLOAT, &o->sampling.min_p, 0, 1},
        {"--repeat-penalty", NULL, OPT_FLOAT, &o->sampling.repeat_penalty, 0.01, 100},
        {"--repeat-last-n", NULL, OPT_U32, &o->sampling.repeat_last_n, 1, 1 << 20},
        {"--seed", NULL, OPT_SEED, &o->sampling.seed, 0, 0},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        const char *value = NULL;
        int m = vki_arg_value(argc, argv, i, table[k].name, &value);
        if (m == 0 && table[k].alias) m = vki_arg_value(argc, argv, i, table[k].alias, &value);
        if (m == 0) continue;
        uint64_t u = 0;
        bool ok = m > 0;
        switch (table[k].kind) {
        case OPT_STRING:
            ok = ok && value[0];
            if (ok) *(const char **)table[k].field = value;
            break;
        case OPT_U32:
            ok = ok && vki_parse_u64(value, (uint64_t)table[k].min, (uint64_t)table[k].max, &u);
            if (ok) *(uint32_t *)table[k].field = (uint32_t)u;
            break;
        case OPT_FLOAT:
            ok = ok && vki_parse_float(value, table[k].min, table[k].max, table[k].field);
            break;
        case OPT_SEED:
            ok = ok && vki_parse_u64(value, 0, UINT64_MAX, &u);
            if (ok) *(uint64_t *)table[k].field = u;
            break;
        case OPT_CACHE_TYPE:
            ok = ok && parse_cache_type(value, table[k].field);
            break;
        case OPT_TEMPLATE:
            ok = ok && vki_chat_template_from_name(value) != VKI_CHAT_TEMPLATE_NONE;
            if (ok) *(const char **)table[k].field = value;
            break;
        }
        if (!ok) {
            if (table[k].kind == OPT_CACHE_TYPE && m > 0)
                vki_app_usage_error(usage, "%s '%s': unknown cache type (f16, f32, q8_0)",
                                    table[k].name, value);
            else if (table[k].kind == OPT_TEMPLATE && m > 0 && value[0])
                vki_app_usage_error(usage, "%s '%s': unknown chat template (chatml, llama3, "
                                    "llama3.1, gemma, llama2)", table[k].name, value);
            else if (table[k].kind == OPT_SEED && m > 0)
                vki_app_usage_error(usage, "%s needs a whole number in 0..%llu", table[k].name,
                                    (unsigned long long)UINT64_MAX);
            else if (table[k].kind == OPT_STRING || table[k].kind == OPT_CACHE_TYPE ||
                     table[k].kind == OPT_TEMPLATE)
                vki_app_usage_error(usage, "%s needs a value", table[k].name);
            else
                vki_app_usage_error(usage, "%s needs a number in %g..%g", table[k].name,
                                    table[k].min, table[k].max);
            return -VKI_EXIT_USAGE;
        }
        // The command line speaks llama.cpp: 0 switches a stage off (temperature 0 is greedy),
        // where the library's 0 means "default".
        vki_sampler_desc *sd = &o->sampling;
        if (table[k].field == &sd->temperature && sd->temperature == 0) sd->temperature = VKI_SAMPLER_GREEDY;
        if (table[k].field == &sd->top_k && sd->top_k == 0) sd->top_k = VKI_SAMPLER_OFF;
        if (table[k].field == &sd->min_p && sd->min_p == 0) sd->min_p = VKI_SAMPLER_OFF;
        return 1;
    }
    return 0;
}

const char *vki_default_model_path(char *buf, size_t size)
{
    return vki_model_cache_file(DEFAULT_MODEL, buf, size);
}

void vki_llm_session_close(vki_llm_session *s)
{
    vki_llm_destroy(s->llm);
    vki_tokenizer_destroy(s->tok);
    vki_gguf_close(s->gguf);
    free(s->synthetic_bytes);
    free(s->logits);
    free(s->piece);
    *s = (vki_llm_session){0};
}

int vki_llm_session_open(vki_app *app, const vki_llm_opts *o, vki_llm_session *s)
{
    *s = (vki_llm_session){0};
    // A path cut to fit would name another file (its prefix): refuse it whole.
    int len;
    if (o->synthetic) len = snprintf(s->model_path, sizeof s->model_path, "synthetic:%s", o->synthetic);
    else if (o->model) len = snprintf(s->model_path, sizeof s->model_path, "%s", o->model);
    else len = (int)strlen(vki_default_model_path(s->model_path, sizeof s->model_path));
    if (len < 0 || (size_t)len >= sizeof s->model_path - 1)
        return vki_app_failf("the model path is %d bytes; vkinfer takes paths of up to %zu bytes "
                             "(a shorter path or a symlink to the file will do)",
                             len, sizeof s->model_path - 2);
    if (!o->model && !o->synthetic && access(s->model_path, R_OK) != 0)
        return vki_app_failf("no model given (-m FILE) and the default model is not at %s: "
                             "run tools/fetch_models.sh (tools/setup.sh does) to download it",
                             s->model_path);
    // The option parser took only known names (a bad one is a usage error there).
    vki_chat_template tmpl = vki_chat_template_from_name(o->template_name);
    int code = vki_app_open_device(app);
    if (code != VKI_EXIT_OK) return code;

    double t0 = vki_now_us();
    char err[512] = "";
    vki_status st;
    if (o->synthetic) {
        size_t size = 0;
        st = vki_llm_synthetic(o->synthetic, 1, &s->synthetic_bytes, &size, err, sizeof err);
        if (st == VKI_OK) st = vki_gguf_open_memory(s->synthetic_bytes, size, NULL, &s->gguf, err, sizeof err);
    } else {
        st = vki_gguf_open(s->model_path, NULL, &s->gguf, err, sizeof err);
    }
    if (st) {
        code = vki_app_failf("opening %s: %s: %s", s->model_path, vki_status_string(st), err);
        vki_llm_session_close(s);
        return code;
    }
    st = o->synthetic ? VKI_OK : vki_tokenizer_create(s->gguf, NULL, &s->tok, err, sizeof err);
    if (st) {
        code = vki_app_failf("%s: tokenizer: %s: %s", s->model_path, vki_status_string(st), err);
        vki_llm_session_close(s);
        return code;
    }
    vki_llm_desc d = {.n_ctx = o->n_ctx, .n_batch = o->n_batch, .kv_dtype = o->kv_dtype,
                      .n_seq = o->n_seq};
    st = vki_llm_load(app->device, s->gguf, &d, &s->llm, err, sizeof err);
    if (st) {
        code = vki_app_failf("loading %s: %s: %s", s->model_path, vki_status_string(st), err);
        vki_llm_session_close(s);
        return code;
    }
    if (tmpl == VKI_CHAT_TEMPLATE_NONE && s->tok) tmpl = vki_tokenizer_chat_template(s->tok);
    s->chat_template = tmpl;
    s->logits = malloc(vki_llm_info_get(s->llm)->n_vocab * sizeof *s->logits);
    if (!s->logits) {
        vki_llm_session_close(s);
        return vki_app_failf("out of host memory");
    }
    s->load_ms = (vki_now_us() - t0) / 1000.0;
    return VKI_EXIT_OK;
}

const char *vki_llm_session_piece(vki_llm_session *s, int32_t id, size_t *out_len)
{
    size_t len = vki_tokenizer_piece(s->tok, id, s->piece, s->piece_cap);
    if (len > s->piece_cap) { // a long token (some vocabularies spell runs of 1000 spaces)
        char *grown = realloc(s->piece, len);
        if (!grown) return NULL;
        s->piece = grown;
        s->piece_cap = len;
        len = vki_tokenizer_piece(s->tok, id, s->piece, s->piece_cap);
    }
    *out_len = len;
    return s->piece ? s->piece : "";
}
