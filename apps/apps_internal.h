/* Shared plumbing of the vkinfer command line: global options, opening the instance and the
 * device from them, error reporting, argument and JSON helpers. Commands live one per file
 * (cmd_<name>.c) and return a process exit code; only main() turns it into the exit status,
 * so nothing below main ever exits. */
#ifndef VKI_APPS_INTERNAL_H
#define VKI_APPS_INTERNAL_H

#include "vkinfer_models.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifndef VKI_VERSION_STRING
#define VKI_VERSION_STRING "unknown" // the build defines it from the project version
#endif

/* Exit codes, the only contract scripts and tests rely on. */
enum {
    VKI_EXIT_OK = 0,
    VKI_EXIT_FAILURE = 1,    // a runtime failure; the message names what failed and why
    VKI_EXIT_USAGE = 2,      // bad command line; usage went to stderr
    VKI_EXIT_VALIDATION = 3, // the work succeeded but the validation layer reported messages
};

/* The global options and the runtime objects a command opened from them. One per process,
 * on main()'s stack; commands borrow it. */
typedef struct vki_app {
    const char *device_select;  // --device; NULL: $VKI_DEVICE, then the runtime's ranking
    const char *narrow_text;    // --narrow, else $VKI_NARROW; NULL: no narrowing
    vki_narrowing narrowing;    // narrow_text parsed
    bool validation;            // --validation ($VKI_VALIDATION=1 is read by the runtime)

    vki_instance *instance;     // owned; opened by vki_app_open_instance
    vki_device *device;         // owned; opened by vki_app_open_device
    char last_log_error[512];   // the last error the runtime logged, for failures whose
                                // object has no last-error string of its own
} vki_app;

/* Creates the instance with the app's log hook and validation setting. On failure prints the
 * message and returns VKI_EXIT_FAILURE; VKI_EXIT_OK otherwise. */
int vki_app_open_instance(vki_app *app);

/* Opens the instance when needed, then the device chosen by --device / $VKI_DEVICE with the
 * app's narrowing. Returns an exit code like vki_app_open_instance. */
int vki_app_open_device(vki_app *app);

/* Destroys the device and the instance. Validation messages arrive up to and including the
 * device's destruction, so they are counted in between: any turns an otherwise successful
 * `code` into VKI_EXIT_VALIDATION. Returns the final exit code. */
int vki_app_close(vki_app *app, int code);

/* Prints "vkinfer: <what>: <status>: <last error>" to stderr, taking the device's last error,
 * else the instance's, else the last one logged. Returns VKI_EXIT_FAILURE. */
int vki_app_fail(vki_app *app, const char *what, vki_status status);

/* Prints "vkinfer: <message>" for a failure the app itself detected (a wrong result, a limit
 * too small for a benchmark). Returns VKI_EXIT_FAILURE. */
int vki_app_failf(const char *fmt, ...);

/* Prints "vkinfer: <message>", a blank line and `usage` to stderr; returns VKI_EXIT_USAGE. */
int vki_app_usage_error(void (*usage)(FILE *), const char *fmt, ...);

/* ---- Commands (one file each) ------------------------------------------------------------ */

void vki_devices_usage(FILE *f);
int vki_cmd_devices(vki_app *app, int argc, char **argv);

void vki_bench_usage(FILE *f);
int vki_cmd_bench(vki_app *app, int argc, char **argv);

void vki_generate_usage(FILE *f);
int vki_cmd_generate(vki_app *app, int argc, char **argv);

void vki_chat_usage(FILE *f);
int vki_cmd_chat(vki_app *app, int argc, char **argv);

void vki_upscale_usage(FILE *f);
int vki_cmd_upscale(vki_app *app, int argc, char **argv);
void vki_imagegen_usage(FILE *f);
int vki_cmd_imagegen(vki_app *app, int argc, char **argv);
void vki_serve_usage(FILE *f);
int vki_cmd_serve(vki_app *app, int argc, char **argv); // serve_*.c, apps/serve_internal.h

/* `rel` in the model cache: $VKI_MODEL_DIR/rel, else ${XDG_CACHE_HOME:-~/.cache}/vkinfer/models/rel
 * (%LOCALAPPDATA%\vkinfer\models on Windows). Returns buf. */
const char *vki_model_cache_file(const char *rel, char *buf, size_t size);

/* ---- Images (image_io.c): PNG in and out for upscale and imagegen ------------------------- */

#define VKI_IMAGE_MAX_EDGE 32768               // pixels a side, read or written
#define VKI_IMAGE_MAX_PIXELS (1ull << 28)      // pixels in all (768 MiB of RGB)

/* Reads a PNG (or JPEG) as 8-bit RGB: *out_rgb [h][w][3] (free with free()); gray and
 * 16-bit images are converted, alpha is dropped. Returns 0 or a vki_status (NOT_FOUND, IO,
 * BAD_FILE, UNSUPPORTED for an image over the limits), with the reason in err. */
int vki_png_read(const char *path, uint8_t **out_rgb, uint32_t *out_w, uint32_t *out_h,
                 char *err, size_t n);
/* Writes rgb [h][w][3] as a new PNG at path: the file is created exclusively (an existing file
 * or link there is refused, VKI_ERROR_IO, "already exists"). parameters (may be NULL) goes into
 * a "parameters" text chunk after IHDR, as AUTOMATIC1111 stores its generation settings (tEXt
 * when ASCII, iTXt otherwise). Returns 0 or a vki_status, with the reason in err. */
int vki_png_write(const char *path, const uint8_t *rgb, uint32_t w, uint32_t h,
                  const char *parameters, char *err, size_t n);

/* ---- Language-model sessions (llm_session.c): what chat, generate and bench llm share ---- */

typedef struct vki_llm_opts {
    const char *model;          // -m; NULL: the default model in the model cache
    uint32_t n_ctx;             // --ctx; 0: the library default
    uint32_t n_batch;           // --batch; 0: the library default
    const char *template_name;  // --template; NULL: from the model's metadata
    vki_dtype kv_dtype;         // --cache-type / -ctk: F16, F32 or Q8_0; 0: the library default
    const char *synthetic;      // bench llm --synthetic NAME: random weights, no file
    vki_sampler_desc sampling;  // --temp --top-k --top-p --min-p --repeat-penalty
                                // --repeat-last-n --seed
    uint32_t n_seq;             // sequences the model holds (serve's --parallel); 0: 1
    const char *mmproj;         // --mmproj: a vision encoder (mmproj GGUF); NULL: none
} vki_llm_opts;

/* Options every model command takes, for its usage text. */
void vki_llm_options_usage(FILE *f);

/* Matches argv[*i] against the model and sampling options. Returns 1 on a match (advancing *i
 * past a separate value), 0 when argv[*i] is another argument, and -VKI_EXIT_USAGE after
 * printing a usage error for a bad value. */
int vki_llm_option(int argc, char **argv, int *i, vki_llm_opts *o, void (*usage)(FILE *));

typedef struct vki_llm_session {
    char model_path[1024];
    vki_gguf *gguf;
    vki_llm *llm;
    vki_tokenizer *tok;
    vki_chat_template chat_template;
    void *synthetic_bytes;      // the in-memory file of a synthetic model (no tokenizer then)
    float *logits;              // [n_vocab]
    double load_ms;             // opening the file, compiling and uploading
    char *piece;                // vki_llm_session_piece's buffer [piece_cap]
    size_t piece_cap;
    vki_gguf *mmproj;           // --mmproj's file and its encoder; NULL without one
    vki_vision *vision;
    uint32_t next_image_id;     // vki_llm_image.id of the next image encoded
} vki_llm_session;

/* Opens the device, the model file (-m, or the default model with a message saying how to get
 * it when absent), compiles the model and loads its tokenizer. Returns an exit code; on failure
 * everything opened is closed again and the message is printed. */
int vki_llm_session_open(vki_app *app, const vki_llm_opts *o, vki_llm_session *s);
void vki_llm_session_close(vki_llm_session *s);

/* The text of token `id` (vki_tokenizer_piece: raw bytes, perhaps part of a UTF-8 character),
 * however long, in a buffer the session keeps until the next call: *out_len bytes, no NUL.
 * NULL only when out of host memory. */
const char *vki_llm_session_piece(vki_llm_session *s, int32_t id, size_t *out_len);

/* ---- Images in prompts (llm_session.c) ----------------------------------------------------
 *
 * An image enters a conversation as a marker in a message's text (vki_llm_image_marker), which
 * vki_llm_session_encode replaces with the projector family's markup (Gemma 3's
 * <start_of_image> ... <end_of_image>, as llama.cpp's mtmd writes it) around the image's rows.
 * In the ids, each of image k's rows is VKI_LLM_IMAGE_ROW(k.id) (negative: never a token), so
 * comparing ids finds a cached prefix as for text. Text from users must not hold the marker
 * (vki_llm_text_has_marker: '<', the control character 0x1e, "vki-image:"): it is refused. */

typedef struct vki_llm_image {
    float *embd;      // [n][n_embd] from the session's vision encoder (owned)
    uint32_t n;       // rows
    uint32_t grid_w, grid_h; // the rows as a grid (n = grid_w * grid_h): M-RoPE positions
    uint32_t id;      // unique within the session
} vki_llm_image;

#define VKI_LLM_IMAGE_ROW(id) (-1 - (int32_t)(id))
#define VKI_LLM_IMAGE_MARKER_SIZE 32

/* The marker of image `id` in a message's text (NUL-terminated). */
void vki_llm_image_marker(uint32_t id, char out[VKI_LLM_IMAGE_MARKER_SIZE]);
/* Whether `len` bytes of text spell an image marker (user text that does is refused). */
bool vki_llm_text_has_marker(const char *text, size_t len);

/* Encodes an RGB image ([h][w][3]) or an image file (PNG or JPEG) with the session's vision
 * encoder into *out (vki_llm_image_free). VKI_ERROR_UNSUPPORTED without --mmproj; the reason
 * in err. */
vki_status vki_llm_session_image(vki_llm_session *s, const uint8_t *rgb, uint32_t w, uint32_t h,
                                 vki_llm_image *out, char *err, size_t n);
vki_status vki_llm_session_image_file(vki_llm_session *s, const char *path, vki_llm_image *out,
                                      char *err, size_t n);
/* The same for the bytes of a PNG or JPEG file (size checked from its header first). */
vki_status vki_llm_session_image_bytes(vki_llm_session *s, const uint8_t *bytes, size_t size,
                                       vki_llm_image *out, char *err, size_t n);
void vki_llm_image_free(vki_llm_image *img);

/* Encodes text (BOS as the tokenizer says; markup and plain spans as vki_chat_format_spans
 * gives them, or parse_special everywhere with spans NULL) with each image marker replaced by
 * the image's markup and rows (images[] are looked up by id; a marker of an absent image is
 * VKI_ERROR_NOT_FOUND). Writes min(n, capacity) ids and n to *out_n. */
vki_status vki_llm_session_encode_text(vki_llm_session *s, const char *text, size_t len,
                                       const vki_text_span *spans, uint32_t n_spans,
                                       const vki_llm_image *images, uint32_t n_images,
                                       int32_t *ids, uint32_t capacity, uint32_t *out_n,
                                       char *err, size_t n_err);
/* A conversation (vki_chat_format_spans) through vki_llm_session_encode_text. */
vki_status vki_llm_session_encode(vki_llm_session *s, const vki_chat_prompt *p,
                                  const vki_llm_image *images, uint32_t n_images, int32_t *ids,
                                  uint32_t capacity, uint32_t *out_n, char *err, size_t n_err);

/* The first position of the image row at ids[pos] (pos itself when it is a token): a cached
 * prefix must not end inside an image, whose rows are evaluated together. */
uint32_t vki_llm_image_start(const int32_t *ids, uint32_t pos);

/* vki_llm_eval_seq over ids with image rows: runs of tokens as tokens, each image's rows (all
 * of them: VKI_ERROR_INVALID_ARGUMENT for a cut image) through vki_llm_eval_embd, non-causal
 * where the encoder says; logits after the last id. The reason for a failure goes to err. */
vki_status vki_llm_session_eval(vki_llm_session *s, uint32_t seq, const int32_t *ids, uint32_t n,
                                const vki_llm_image *images, uint32_t n_images, float *logits,
                                char *err, size_t n_err);


/* The default model's path in the model cache ($VKI_MODEL_DIR, else
 * ${XDG_CACHE_HOME:-~/.cache}/vkinfer/models). */
const char *vki_default_model_path(char *buf, size_t size);

/* ---- Benchmark suites --------------------------------------------------------------------- */

#define VKI_BENCH_MAX_DEPTHS 8 // `llm` -d N,N,...

typedef struct vki_bench_opts {
    bool json;               // print one JSON document instead of tables
    uint32_t reps;           // repetitions; 0: the suite's default
    uint64_t copy_bytes;     // `runtime` device copy size; 0: by device type
    uint64_t transfer_bytes; // `runtime` large upload/download size; 0: by device type
    uint64_t window_bytes;   // cap on one binding; 0: profile.max_storage_range
    const char *filter;      // `ops`: only cases whose name contains this (NULL: all)
    vki_llm_opts llm;        // `llm`: the model (-m) and its context options
    uint32_t n_prompt;       // `llm`: prompt tokens of the prefill test (0: 512)
    uint32_t n_gen;          // `llm`: generated tokens of the decode test (0: 128)
    uint32_t depths[VKI_BENCH_MAX_DEPTHS]; // `llm` -d: decode also after prefilling this many
    uint32_t n_depths;       // tokens (llama-bench's -d); 0 depths: none
    uint32_t sd_steps;       // `sd`: steps of the measured image (0: 10, 2 on a CPU device)
    uint32_t sd_size;        // `sd`: image edge (0: 512, 256 on a CPU device)
    const char *save;        // `sd`, `llm`: write the --synthetic model here (NULL: no)
    vki_dtype sd_type;       // `sd`: weight conversion at load (--type; 0: as stored)
    const struct vki_bench_workload *workload; // --workload: fixed parameters (bench_output.h)
} vki_bench_opts;

/* A suite runs on app->device, fills `out` with its figures (stable snake_case keys) and,
 * unless opts->json, prints its table to stdout. Returns an exit code; on failure it has
 * printed why. Adding a suite = one function + one row in cmd_bench.c's table. */
typedef int (*vki_bench_fn)(vki_app *app, const vki_bench_opts *opts, cJSON *out);

int vki_bench_runtime(vki_app *app, const vki_bench_opts *opts, cJSON *out);
int vki_bench_ops(vki_app *app, const vki_bench_opts *opts, cJSON *out);
int vki_bench_llm(vki_app *app, const vki_bench_opts *opts, cJSON *out);
int vki_bench_sd(vki_app *app, const vki_bench_opts *opts, cJSON *out);
int vki_bench_vision(vki_app *app, const vki_bench_opts *opts, cJSON *out); // bench_vision.c
int vki_bench_peak(vki_app *app, const vki_bench_opts *opts, cJSON *out); // bench_peak.c

/* The device's measured peaks (bench_peak.c), the roofs that `bench ops` and `bench llm` cite.
 * Each is 0 where the device lacks the feature (int8 dot product, cooperative matrices). */
typedef struct vki_bench_peaks {
    double fp32_gflops, fp16_gflops;     // vector FMA throughput (2 flops per FMA)
    double int8_gops;                    // integer dot product (2 ops per multiply-add)
    double coopmat_fp16_gflops;          // cooperative-matrix fp16 multiply-add
    double read_gbs, write_gbs, copy_gbs;// device memory (copy: bytes read + written)
    double upload_gbs, download_gbs;     // host -> device, device -> host
    double dispatch_us, submit_us;       // one dispatch in a recorded stream; an empty submit+wait
} vki_bench_peaks;

/* The peaks of app->device: from the cache file of this device and driver (next to the pipeline
 * cache), else measured quietly now and cached (created exclusively, replaced atomically).
 * Returns an exit code, having printed why on failure. */
int vki_bench_peaks_get(vki_app *app, const vki_bench_opts *opts, vki_bench_peaks *out);

/* The device's copy bandwidth (bytes read + written, GB/s) as `bench runtime` measures it:
 * the yardstick for memory-bound kernels in `bench ops`. */
int vki_bench_copy_gbs(vki_app *app, const vki_bench_opts *opts, double *out_gbs);

/* Progress of a long benchmark on stderr, one line rewritten in place ("bench ops: <case>, 3 of
 * 40 done"), only when stderr is a terminal, so that output on stdout and in logs stays clean.
 * done == total clears the line. case_name may be NULL. (bench_output.c) */
void vki_bench_progress(const char *suite, const char *case_name, uint32_t done, uint32_t total);

/* ---- Helpers ------------------------------------------------------------------------------ */

/* Matches argv[*i] against the option `name` ("--reps"), as "--reps N" or "--reps=N".
 * Returns 1 and sets *out_value (advancing *i past a separate value) on a match, 0 when
 * argv[*i] is another argument, -1 when the value is missing. */
int vki_arg_value(int argc, char **argv, int *i, const char *name, const char **out_value);

/* Parses a whole decimal number in [min, max]; false for anything else. */
bool vki_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out_value);
/* Parses a finite decimal number in [min, max]; false for anything else. */
bool vki_parse_float(const char *text, double min, double max, float *out_value);

/* Whether f is a terminal: progress lines are drawn only there, so that piped output stays
 * clean. */
bool vki_is_terminal(FILE *f);

/* Creates `path` exclusively (never over an existing file or through a symbolic link) and
 * writes the n bytes of data to it; on a failure nothing is left and err names the cause
 * (VKI_ERROR_IO). Outputs of imagegen and upscale, models that bench --synthetic --save writes. */
int vki_file_write_new(const char *path, const void *data, size_t n, char *err, size_t err_size);

/* Monotonic wall clock in microseconds. */
double vki_now_us(void);

/* POSIX getline on every platform: reads a line with its '\n' into *line (grown with realloc,
 * freed by the caller), returns its length, or -1 at end of input, on an error or when Ctrl-C
 * interrupted the read. */
ptrdiff_t vki_read_line(char **line, size_t *cap, FILE *f);

/* "1.3.255" from a Vulkan version number. */
const char *vki_version_string(uint32_t version, char buf[32]);

/* "64 MiB", "1.50 GiB", "512 B". */
const char *vki_bytes_string(uint64_t bytes, char buf[32]);

/* Median / percentile of `n` samples; sorts `values` in place. 0 when n == 0. */
double vki_percentile(double *values, uint32_t n, double fraction);

/* Adds a measured figure rounded to 4 significant digits: timing noise is far larger, and
 * "1.277" reads better than "1.2772602712611". */
void vki_json_add_measure(cJSON *obj, const char *key, double value);

/* Like vki_json_add_measure, but null in JSON when `present` is false. */
void vki_json_add_opt(cJSON *obj, const char *key, bool present, double value);

/* Copies `n` bytes to `out` (NULL: only counts) as well-formed UTF-8 without NUL: each byte
 * that does not begin a well-formed character (a stray continuation, an overlong form, a
 * surrogate, a character cut off at the end, as when a token ends mid-character) becomes
 * U+FFFD, as a WHATWG decoder with replacement reads it, and so does NUL, which C strings and
 * cJSON cannot carry. Returns the output's length, at most 3 n. */
size_t vki_utf8_sanitize(const char *bytes, size_t n, char *out);

/* Adds `n` bytes of text (any bytes: model output, a file name) under `key`, sanitised by
 * vki_utf8_sanitize, so that the JSON always parses. False only for lack of host memory. */
bool vki_json_add_text(cJSON *obj, const char *key, const char *bytes, size_t n);

/* Prints `root` to stdout, formatted, with a final newline. Returns an exit code (printing
 * fails only for lack of host memory). */
int vki_json_print(const cJSON *root);

#endif
