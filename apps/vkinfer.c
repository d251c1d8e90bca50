/* vkinfer: the command line. main() takes the global options out of argv, picks the command
 * from a table and turns the command's exit code into the process status; commands and
 * everything under them return codes and never exit. */
#include "apps_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct vki_command {
    const char *name;
    int (*run)(vki_app *app, int argc, char **argv); // argv[0] is the command name
    void (*usage)(FILE *f);
    const char *summary;
} vki_command;

static const vki_command commands[] = {
    {"chat", vki_cmd_chat, vki_chat_usage,
     "chat with a language model (default: SmolLM2-135M-Instruct)"},
    {"generate", vki_cmd_generate, vki_generate_usage,
     "complete one prompt, streamed or as JSON"},
    {"imagegen", vki_cmd_imagegen, vki_imagegen_usage,
     "Stable Diffusion 1.x/2.x: text (or an image) to a PNG with its parameters"},
    {"devices", vki_cmd_devices, vki_devices_usage,
     "list Vulkan devices with their (narrowed) profiles and tuning"},
    {"bench", vki_cmd_bench, vki_bench_usage,
     "benchmarks (suites: runtime, peak, ops, llm, sd) as tables, md, csv, json, jsonl or sql; compare"},
    {"upscale", vki_cmd_upscale, vki_upscale_usage,
     "Real-ESRGAN super-resolution of a PNG (default: RealESRGAN_x4plus)"},
#if VKI_HAVE_SERVE
    {"serve", vki_cmd_serve, vki_serve_usage,
     "an OpenAI-compatible HTTP server with a chat page, several conversations at once"},
#endif
};
#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: vkinfer [global options] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "help", "this text, or `vkinfer help <command>` for its options");
    fprintf(f,
            "\nglobal options (anywhere on the line):\n"
            "  --device SEL    device index or case-insensitive name substring\n"
            "                  (default: $VKI_DEVICE, else discrete > integrated > virtual > cpu)\n"
            "  --narrow LIST   narrow the device profile, comma-separated (default: $VKI_NARROW):\n"
            "                  no-fp16, no-subgroup, no-coopmat, no-coopmat-khr, no-int-dot, no-uma,\n"
            "                  tuning=NAME, max-binding=BYTES (a smaller binding limit, e.g. 1M),\n"
            "                  int-dot (q8_0/q4_0 mat-vecs on integer dot products: x rounded to int8)\n"
            "                  tunings:");
    for (uint32_t i = 0; i < vki_tuning_count(); i++) fprintf(f, " %s", vki_tuning_name(i));
    fprintf(f,
            "\n"
            "  --validation    enable the Khronos validation layer (also VKI_VALIDATION=1)\n"
            "  --version       print the version\n"
            "  --help, -h      this text\n"
            "\nexit status: 0 ok, 1 runtime failure, 2 bad command line,\n"
            "             3 the validation layer reported messages\n");
}

static const vki_command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* `vkinfer help [command]`: usage on stdout, because it was asked for. */
static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return VKI_EXIT_OK;
    }
    const vki_command *cmd = find_command(argv[1]);
    if (!cmd) return vki_app_usage_error(usage, "no help for unknown command '%s'", argv[1]);
    cmd->usage(stdout);
    return VKI_EXIT_OK;
}

/* Removes the global options from argv (compacting it in place, which C allows) so that each
 * command sees only its own. Returns an exit code; *out_argc is the new count. */
static int take_global_options(vki_app *app, int argc, char **argv, int *out_argc,
                               bool *out_version)
{
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m;
        if ((m = vki_arg_value(argc, argv, &i, "--device", &value)) != 0) {
            if (m < 0) return vki_app_usage_error(usage, "--device needs an index or a name");
            app->device_select = value[0] ? value : NULL;
        } else if ((m = vki_arg_value(argc, argv, &i, "--narrow", &value)) != 0) {
            if (m < 0) return vki_app_usage_error(usage, "--narrow needs a list, e.g. no-fp16");
            app->narrow_text = value;
        } else if (strcmp(argv[i], "--validation") == 0) {
            app->validation = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            *out_version = true;
        } else {
            argv[kept++] = argv[i];
        }
    }
    *out_argc = kept;
    return VKI_EXIT_OK;
}

/* The flag wins over $VKI_NARROW; both are parsed here so that a typo is a usage error naming
 * the word, before anything is opened. */
static int parse_narrowing(vki_app *app)
{
    bool from_env = false;
    if (!app->narrow_text) {
        app->narrow_text = getenv("VKI_NARROW");
        from_env = true;
    }
    if (!app->narrow_text || !app->narrow_text[0]) {
        app->narrow_text = NULL;
        return VKI_EXIT_OK;
    }
    char error[256] = "";
    vki_status st = vki_narrowing_parse(app->narrow_text, &app->narrowing, error, sizeof error);
    if (st != VKI_OK)
        return vki_app_usage_error(usage, "%s '%s': %s", from_env ? "$VKI_NARROW" : "--narrow",
                                   app->narrow_text, error[0] ? error : vki_status_string(st));
    return VKI_EXIT_OK;
}

int main(int argc, char **argv)
{
    vki_app app = {0};
    bool version = false;
    int code = take_global_options(&app, argc, argv, &argc, &version);
    if (code != VKI_EXIT_OK) return code;
    if (version) {
        printf("vkinfer %s\n", VKI_VERSION_STRING);
        return VKI_EXIT_OK;
    }
    if (argc < 2) return vki_app_usage_error(usage, "no command given");

    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return help(argc - 1, argv + 1);
    if (name[0] == '-') return vki_app_usage_error(usage, "unknown option '%s'", name);
    const vki_command *cmd = find_command(name);
    if (!cmd) return vki_app_usage_error(usage, "unknown command '%s'", name);

    code = parse_narrowing(&app);
    if (code != VKI_EXIT_OK) return code;
    code = cmd->run(&app, argc - 1, argv + 1);
    return vki_app_close(&app, code);
}
