/* The ncnn model reader (models/ncnn.c): a .param text graph and its .bin weights, as the
 * published Real-ESRGAN conversions ship them. Internal to models/: the ESRGAN architecture
 * (arch_esrgan.c) reads the graph's layers to recognise the network and takes the weights
 * through the weight-source interface, under names it gives them.
 *
 * Format facts (ncnn's documentation of its param and model-bin formats):
 *   param: "7767517", then "<layer count> <blob count>", then one line per layer:
 *          <type> <name> <bottom count> <top count> <bottoms...> <tops...> <id>=<value>...
 *          where an id <= -23300 is an array: -23300-id=<count>,<v1>,<v2>,... and a value with
 *          '.', 'e' or 'E' is a float, else an integer.
 *   bin:   each layer's weights in layer order. A weight loaded "with a tag" starts with a 32-bit
 *          word: 0x01306B47 fp16 data (2 bytes an element, padded to 4 bytes), 0 fp32 data
 *          (4 bytes an element); other tags (int8, quantisation tables) are not read here.
 *          Biases and PReLU slopes are fp32 without a tag.
 * Convolution weights are [out][in][kh][kw] row-major: ggml order [kw, kh, in, out], as
 * vki_conv2d takes them. */
#ifndef VKI_NCNN_INTERNAL_H
#define VKI_NCNN_INTERNAL_H

#include "model_internal.h"

#define VKI_NCNN_MAX_PARAM_ID 32 // scalar ids 0..31 and arrays -23300..-23331
#define VKI_NCNN_MAX_ARRAY 16    // elements of one array parameter

typedef struct vki_ncnn vki_ncnn;

typedef struct vki_ncnn_layer {
    char type[32];
    char name[64];
    uint32_t line;            // in the .param file, for messages
    uint32_t n_in, n_out;
    const uint32_t *in, *out; // blob ids (each blob has exactly one producer)
    uint32_t first_weight, n_weights; // tensors of the source, in file order
    /* Parameters: present, whether float, the value; arrays as floats. */
    uint32_t present;         // bit id
    uint32_t is_float;        // bit id
    uint32_t is_array;        // bit id
    int32_t ival[VKI_NCNN_MAX_PARAM_ID];
    float fval[VKI_NCNN_MAX_PARAM_ID];
    uint8_t array_len[VKI_NCNN_MAX_PARAM_ID];
    float array[VKI_NCNN_MAX_PARAM_ID][VKI_NCNN_MAX_ARRAY];
} vki_ncnn_layer;

/* Opens `param_path` and the .bin beside it (same name, ".bin" for ".param"), both mapped and
 * validated in full: the text, every count and blob reference, each layer's parameters, and the
 * weights of every layer tiling the .bin exactly. Layer types that hold no weights are read
 * whatever they are; a type that holds weights must be Convolution or PReLU (the only ones the
 * ESRGAN nets have), so that the .bin is walked exactly. Malformed input: VKI_ERROR_BAD_FILE,
 * naming the file, line or layer. */
vki_status vki_ncnn_open(const char *param_path, const vki_allocator *allocator, vki_ncnn **out,
                         char *err, size_t n);
/* The same over memory the caller keeps alive until close. */
vki_status vki_ncnn_open_memory(const void *param, size_t param_size, const void *bin,
                                size_t bin_size, const vki_allocator *allocator, vki_ncnn **out,
                                char *err, size_t n);
void vki_ncnn_close(vki_ncnn *f); // NULL does nothing

uint32_t vki_ncnn_layer_count(const vki_ncnn *f);
const vki_ncnn_layer *vki_ncnn_layer_at(const vki_ncnn *f, uint32_t index);
uint32_t vki_ncnn_blob_count(const vki_ncnn *f);
/* The layer producing blob `blob`. */
const vki_ncnn_layer *vki_ncnn_blob_producer(const vki_ncnn *f, uint32_t blob);

/* Parameter `id` of a layer as an integer or float (a float given for an integer id, or the
 * other way round, is converted); `def` when absent. */
int32_t vki_ncnn_int(const vki_ncnn_layer *l, uint32_t id, int32_t def);
float vki_ncnn_float(const vki_ncnn_layer *l, uint32_t id, float def);
/* Array parameter -23300-id: its length (0 when absent) and elements. */
uint32_t vki_ncnn_array(const vki_ncnn_layer *l, uint32_t id, const float **out_values);

/* The weights as a weight source. Tensors are named "<layer>.weight", "<layer>.bias" (a
 * Convolution's) and "<layer>.slope" (a PReLU's) until renamed. */
vki_weight_source vki_weight_source_ncnn(vki_ncnn *f);
/* Gives tensor `index` (of the source's order) a new name (< 96 bytes). */
vki_status vki_ncnn_rename(vki_ncnn *f, uint32_t index, const char *name);

#endif
