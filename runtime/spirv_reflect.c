/* SPIR-V reflection for compute modules: the storage-buffer bindings, the size of the
 * push-constant block, the local size after specialisation and the specialisation-constant ids
 * that vki_kernel_create checks against its desc. Only the instructions that carry those facts
 * are interpreted; everything else is skipped by its word count.
 *
 * The module may be hostile (it can come from a file). The first pass checks every
 * instruction's word count against the end of the module, and the length and ids of every
 * instruction this file reads against what it reads and the header's bound, so the later scans
 * trust both. Nothing is allocated (the signature carries no allocator): ids are resolved by
 * scanning the declaration section, and a word budget stops a hostile module from making those
 * scans quadratic. Numbers are from the SPIR-V 1.6 specification. */
#include "runtime_internal.h"

#include <stdio.h>
#include <string.h>

enum {
    SPV_MAGIC = 0x07230203u,
    SPV_BOUND_MAX = 0x3FFFFF, // "Universal Limits": the largest id bound a module may declare
    MAX_DEPTH = 16,           // type nesting followed when sizing the push-constant block

    OP_TYPE_VOID = 19, OP_TYPE_BOOL = 20, OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22,
    OP_TYPE_VECTOR = 23, OP_TYPE_MATRIX = 24, OP_TYPE_ARRAY = 28, OP_TYPE_RUNTIME_ARRAY = 29,
    OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32, OP_TYPE_IMAGE = 25, OP_TYPE_SAMPLED_IMAGE = 27,
    OP_CONSTANT_TRUE = 41, OP_CONSTANT_FALSE = 42, OP_CONSTANT = 43, OP_CONSTANT_COMPOSITE = 44,
    OP_CONSTANT_NULL = 46, OP_SPEC_CONSTANT_TRUE = 48, OP_SPEC_CONSTANT_FALSE = 49,
    OP_SPEC_CONSTANT = 50, OP_SPEC_CONSTANT_COMPOSITE = 51, OP_SPEC_CONSTANT_OP = 52,
    OP_ENTRY_POINT = 15, OP_EXECUTION_MODE = 16, OP_FUNCTION = 54, OP_VARIABLE = 59,
    OP_DECORATE = 71, OP_MEMBER_DECORATE = 72, OP_EXECUTION_MODE_ID = 331,

    DEC_SPEC_ID = 1, DEC_BUFFER_BLOCK = 3, DEC_ROW_MAJOR = 4, DEC_ARRAY_STRIDE = 6,
    DEC_MATRIX_STRIDE = 7, DEC_BUILTIN = 11, DEC_BINDING = 33, DEC_DESCRIPTOR_SET = 34,
    DEC_OFFSET = 35,

    BUILTIN_WORKGROUP_SIZE = 25,
    DIM_BUFFER = 5,
    FORMAT_RGBA32UI = 30, FORMAT_R32UI = 33, FORMAT_RG32UI = 35,
    MODEL_GLCOMPUTE = 5,
    MODE_LOCAL_SIZE = 17, MODE_LOCAL_SIZE_ID = 38,
    SC_UNIFORM_CONSTANT = 0, SC_UNIFORM = 2, SC_PUSH_CONSTANT = 9, SC_ATOMIC_COUNTER = 10,
    SC_STORAGE_BUFFER = 12,
};

#define WC(word) ((word) >> 16)
#define OPC(word) ((word) & 0xFFFFu)

typedef struct reflector {
    const uint32_t *w;
    size_t decl_end;     // first OpFunction: types, constants, globals and annotations precede it
    uint32_t bound;
    uint64_t budget;     // words the id and decoration scans may still visit
    const vki_spec *specs;
    uint32_t spec_count;
    char *err;
    size_t err_size;
} reflector;

typedef struct member_layout {
    bool has_offset;
    bool row_major;
    uint32_t offset;
    uint32_t matrix_stride; // 0: none declared
} member_layout;

VKI_PRINTF(3, 4)
static vki_status fail(reflector *r, vki_status status, const char *fmt, ...)
{
    if (r->err && r->err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->err_size, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* Which word of a definition holds its result id: 1 for types, 2 for constants and variables,
 * 0 for instructions this file never resolves an id to. */
static uint32_t result_word(uint32_t op)
{
    switch (op) {
    case OP_TYPE_VOID: case OP_TYPE_BOOL: case OP_TYPE_INT: case OP_TYPE_FLOAT:
    case OP_TYPE_VECTOR: case OP_TYPE_MATRIX: case OP_TYPE_ARRAY: case OP_TYPE_RUNTIME_ARRAY:
    case OP_TYPE_STRUCT: case OP_TYPE_POINTER: case OP_TYPE_IMAGE: case OP_TYPE_SAMPLED_IMAGE:
        return 1;
    case OP_CONSTANT_TRUE: case OP_CONSTANT_FALSE: case OP_CONSTANT: case OP_CONSTANT_COMPOSITE:
    case OP_CONSTANT_NULL: case OP_SPEC_CONSTANT_TRUE: case OP_SPEC_CONSTANT_FALSE:
    case OP_SPEC_CONSTANT: case OP_SPEC_CONSTANT_COMPOSITE: case OP_SPEC_CONSTANT_OP:
    case OP_VARIABLE:
        return 2;
    default:
        return 0;
    }
}

/* Checks one instruction's length against the words this file reads from it, and its ids
 * (words a0..a1 and b0..b1; 0 = none, UINT32_MAX = to the end) against the bound. */
static vki_status check_instruction(reflector *r, size_t off)
{
    const uint32_t *in = r->w + off;
    uint32_t op = OPC(in[0]), wc = WC(in[0]);
    uint32_t min = 1, a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    switch (op) {
    case OP_ENTRY_POINT: min = 4, a0 = a1 = 2; break;
    case OP_EXECUTION_MODE: case OP_EXECUTION_MODE_ID: min = 3, a0 = a1 = 1; break;
    case OP_DECORATE: min = 3, a0 = a1 = 1; break;
    case OP_MEMBER_DECORATE: min = 4, a0 = a1 = 1; break;
    case OP_TYPE_VOID: case OP_TYPE_BOOL: min = 2, a0 = a1 = 1; break;
    case OP_TYPE_INT: case OP_TYPE_VECTOR: case OP_TYPE_MATRIX: min = 4, a0 = 1, a1 = 2; break;
    case OP_TYPE_FLOAT: min = 3, a0 = a1 = 1; break;
    case OP_TYPE_ARRAY: min = 4, a0 = 1, a1 = 3; break;
    case OP_TYPE_RUNTIME_ARRAY: min = 3, a0 = 1, a1 = 2; break;
    case OP_TYPE_STRUCT: min = 2, a0 = 1, a1 = UINT32_MAX; break;
    case OP_TYPE_POINTER: min = 4, a0 = a1 = 1, b0 = b1 = 3; break; // word 2: storage class
    case OP_CONSTANT: case OP_SPEC_CONSTANT: min = 4, a0 = 1, a1 = 2; break;
    case OP_CONSTANT_COMPOSITE: case OP_SPEC_CONSTANT_COMPOSITE:
        min = 3, a0 = 1, a1 = UINT32_MAX; break;
    case OP_CONSTANT_TRUE: case OP_CONSTANT_FALSE: case OP_CONSTANT_NULL:
    case OP_SPEC_CONSTANT_TRUE: case OP_SPEC_CONSTANT_FALSE: case OP_SPEC_CONSTANT_OP:
        min = 3, a0 = 1, a1 = 2; break;
    case OP_VARIABLE: min = 4, a0 = 1, a1 = 2; break;
    case OP_TYPE_IMAGE: min = 9, a0 = 1, a1 = 2; break;
    case OP_TYPE_SAMPLED_IMAGE: min = 3, a0 = 1, a1 = 2; break;
    default: break;
    }
    // Refine by the operand that decides what else is read (only once it is known to exist).
    if (wc >= 3 && op == OP_EXECUTION_MODE && in[2] == MODE_LOCAL_SIZE) min = 6;
    if (wc >= 3 && op == OP_EXECUTION_MODE_ID && in[2] == MODE_LOCAL_SIZE_ID)
        min = 6, b0 = 3, b1 = 5;
    if (wc >= 3 && op == OP_DECORATE &&
        (in[2] == DEC_SPEC_ID || in[2] == DEC_ARRAY_STRIDE || in[2] == DEC_BUILTIN ||
         in[2] == DEC_BINDING || in[2] == DEC_DESCRIPTOR_SET))
        min = 4;
    if (wc >= 4 && op == OP_MEMBER_DECORATE && (in[3] == DEC_OFFSET || in[3] == DEC_MATRIX_STRIDE))
        min = 5;
    if (wc < min)
        return fail(r, VKI_ERROR_BAD_FILE, "opcode %u at word %zu has %u words, needs %u", op,
                    off, wc, min);
    for (uint32_t i = 1; i < wc; i++) {
        bool is_id = (a0 && i >= a0 && i <= a1) || (b0 && i >= b0 && i <= b1);
        if (is_id && (in[i] == 0 || in[i] >= r->bound))
            return fail(r, VKI_ERROR_BAD_FILE, "opcode %u at word %zu: id %u is outside 1..%u", op,
                        off, in[i], r->bound - 1);
    }
    return VKI_OK;
}

/* Charges one scan of the declaration section against the budget. */
static vki_status spend(reflector *r)
{
    if (r->budget < r->decl_end)
        return fail(r, VKI_ERROR_BAD_FILE, "module too complex to reflect (type graph too large)");
    r->budget -= r->decl_end;
    return VKI_OK;
}

/* Word offset of the type, constant or global variable that defines `id`. */
static vki_status find_def(reflector *r, uint32_t id, size_t *out_off)
{
    VKI_TRY(spend(r));
    for (size_t off = 5; off < r->decl_end; off += WC(r->w[off])) {
        uint32_t pos = result_word(OPC(r->w[off]));
        if (pos && r->w[off + pos] == id) {
            *out_off = off;
            return VKI_OK;
        }
    }
    return fail(r, VKI_ERROR_BAD_FILE, "id %u is used but not declared before the first function",
                id);
}

/* The literal of decoration `dec` on `id`, when there is one. */
static vki_status find_decoration(reflector *r, uint32_t id, uint32_t dec, bool *out_found,
                                  uint32_t *out_value)
{
    VKI_TRY(spend(r));
    *out_found = false;
    for (size_t off = 5; off < r->decl_end; off += WC(r->w[off])) {
        const uint32_t *in = r->w + off;
        if (OPC(in[0]) == OP_DECORATE && in[1] == id && in[2] == dec) {
            *out_found = true;
            *out_value = WC(in[0]) >= 4 ? in[3] : 0; // BufferBlock has no literal
            return VKI_OK;
        }
    }
    return VKI_OK;
}

/* Offset, MatrixStride and RowMajor of member `member` of struct `id`; rejects decorations of
 * members the struct does not have (an index a reader might use unchecked). */
static vki_status member_decorations(reflector *r, uint32_t id, uint32_t member, uint32_t members,
                                     member_layout *out)
{
    VKI_TRY(spend(r));
    memset(out, 0, sizeof *out);
    for (size_t off = 5; off < r->decl_end; off += WC(r->w[off])) {
        const uint32_t *in = r->w + off;
        if (OPC(in[0]) != OP_MEMBER_DECORATE || in[1] != id) continue;
        if (in[2] >= members)
            return fail(r, VKI_ERROR_BAD_FILE, "word %zu decorates member %u of struct %u, which "
                        "has %u members", off, in[2], id, members);
        if (in[2] != member) continue;
        if (in[3] == DEC_OFFSET) out->has_offset = true, out->offset = in[4];
        if (in[3] == DEC_MATRIX_STRIDE) out->matrix_stride = in[4];
        if (in[3] == DEC_ROW_MAJOR) out->row_major = true;
    }
    return VKI_OK;
}

/* Value of a 32-bit OpConstant, or of an OpSpecConstant after the caller's specs. */
static vki_status const_value(reflector *r, uint32_t id, uint32_t *out)
{
    size_t off;
    VKI_TRY(find_def(r, id, &off));
    const uint32_t *in = r->w + off;
    if ((OPC(in[0]) != OP_CONSTANT && OPC(in[0]) != OP_SPEC_CONSTANT) || WC(in[0]) != 4)
        return fail(r, VKI_ERROR_BAD_FILE, "id %u (word %zu) is not a 32-bit scalar constant", id,
                    off);
    *out = in[3];
    if (OPC(in[0]) == OP_SPEC_CONSTANT) {
        bool found;
        uint32_t spec_id = 0;
        VKI_TRY(find_decoration(r, id, DEC_SPEC_ID, &found, &spec_id));
        for (uint32_t i = 0; found && i < r->spec_count; i++)
            if (r->specs[i].id == spec_id) *out = r->specs[i].value;
    }
    return VKI_OK;
}

static vki_status struct_size(reflector *r, uint32_t id, uint32_t depth, uint64_t *out);

/* Bytes a value of `type` spans in an explicitly laid-out block. `layout` is the decorations
 * of the enclosing struct member (matrix strides live there, not on the matrix type). */
static vki_status type_size(reflector *r, uint32_t type, const member_layout *layout,
                            uint32_t depth, uint64_t *out)
{
    if (depth > MAX_DEPTH)
        return fail(r, VKI_ERROR_BAD_FILE, "types nested deeper than %d at id %u", MAX_DEPTH, type);
    size_t off;
    VKI_TRY(find_def(r, type, &off));
    const uint32_t *in = r->w + off;
    uint64_t inner = 0;
    bool found = false;
    uint32_t stride = 0, length = 0;
    switch (OPC(in[0])) {
    case OP_TYPE_INT: case OP_TYPE_FLOAT:
        if (in[2] != 8 && in[2] != 16 && in[2] != 32 && in[2] != 64)
            return fail(r, VKI_ERROR_BAD_FILE, "type %u has width %u", type, in[2]);
        *out = in[2] / 8;
        break;
    case OP_TYPE_VECTOR:
        VKI_TRY(type_size(r, in[2], layout, depth + 1, &inner));
        *out = inner * in[3];
        break;
    case OP_TYPE_MATRIX: // a column-major matrix is columns of vectors; row-major, rows of them
        if (layout->row_major && layout->matrix_stride) {
            size_t col;
            VKI_TRY(find_def(r, in[2], &col));
            if (OPC(r->w[col]) != OP_TYPE_VECTOR)
                return fail(r, VKI_ERROR_BAD_FILE, "matrix %u has non-vector columns", type);
            *out = (uint64_t)r->w[col + 3] * layout->matrix_stride;
        } else if (layout->matrix_stride) {
            *out = (uint64_t)in[3] * layout->matrix_stride;
        } else {
            VKI_TRY(type_size(r, in[2], layout, depth + 1, &inner));
            *out = inner * in[3];
        }
        break;
    case OP_TYPE_ARRAY:
        VKI_TRY(const_value(r, in[3], &length));
        VKI_TRY(find_decoration(r, type, DEC_ARRAY_STRIDE, &found, &stride));
        if (!found) VKI_TRY(type_size(r, in[2], layout, depth + 1, &inner));
        *out = (uint64_t)length * (found ? stride : inner);
        break;
    case OP_TYPE_STRUCT:
        VKI_TRY(struct_size(r, type, depth + 1, out));
        break;
    default:
        return fail(r, VKI_ERROR_BAD_FILE, "type %u (opcode %u) cannot be in a push-constant "
                    "block", type, OPC(in[0]));
    }
    // Keeping every size under 4 GiB keeps the products above inside 64 bits.
    if (*out > UINT32_MAX)
        return fail(r, VKI_ERROR_BAD_FILE, "type %u is larger than 4 GiB", type);
    return VKI_OK;
}

/* max(Offset + size) over the members of struct `id`. */
static vki_status struct_size(reflector *r, uint32_t id, uint32_t depth, uint64_t *out)
{
    size_t off;
    VKI_TRY(find_def(r, id, &off));
    const uint32_t *in = r->w + off;
    if (OPC(in[0]) != OP_TYPE_STRUCT)
        return fail(r, VKI_ERROR_BAD_FILE, "push-constant type %u is not a struct", id);
    uint32_t members = WC(in[0]) - 2;
    *out = 0;
    for (uint32_t i = 0; i < members; i++) {
        member_layout layout;
        uint64_t size;
        VKI_TRY(member_decorations(r, id, i, members, &layout));
        if (!layout.has_offset)
            return fail(r, VKI_ERROR_BAD_FILE, "member %u of struct %u has no Offset", i, id);
        VKI_TRY(type_size(r, in[2 + i], &layout, depth, &size));
        if (layout.offset + size > *out) *out = layout.offset + size;
    }
    if (*out > UINT32_MAX)
        return fail(r, VKI_ERROR_BAD_FILE, "struct %u is larger than 4 GiB", id);
    return VKI_OK;
}

/* The struct a buffer or push-constant variable points to. */
static vki_status pointee_struct(reflector *r, uint32_t var, uint32_t pointer_type, uint32_t *out)
{
    size_t off;
    VKI_TRY(find_def(r, pointer_type, &off));
    if (OPC(r->w[off]) != OP_TYPE_POINTER)
        return fail(r, VKI_ERROR_BAD_FILE, "variable %u does not have a pointer type", var);
    *out = r->w[off + 3];
    VKI_TRY(find_def(r, *out, &off));
    if (OPC(r->w[off]) != OP_TYPE_STRUCT)
        return fail(r, VKI_ERROR_BAD_FILE, "variable %u is not a block (arrays of buffers are not "
                    "supported; use one binding per buffer)", var);
    return VKI_OK;
}

/* What a UniformConstant variable's pointer type points to, if it is a buffer of texels: a
 * sampled image of dimension Buffer (a uniform texel buffer: GLSL's usamplerBuffer, read as
 * R32_UINT) or a storage image of dimension Buffer with a declared format (a storage texel
 * buffer: GLSL's uimageBuffer with a format qualifier, r32ui, rg32ui or rgba32ui). *texel_bytes
 * is the size of one texel of the view to bind, 0 if the variable is no such buffer; *format
 * the SPIR-V image format of a storage image of another format, for the message. */
static vki_status texel_buffer(reflector *r, uint32_t pointer_type, uint32_t *texel_bytes,
                               bool *storage, uint32_t *format)
{
    size_t off;
    *texel_bytes = 0, *storage = false, *format = 0;
    VKI_TRY(find_def(r, pointer_type, &off));
    if (OPC(r->w[off]) != OP_TYPE_POINTER) return VKI_OK;
    VKI_TRY(find_def(r, r->w[off + 3], &off));
    if (OPC(r->w[off]) == OP_TYPE_SAMPLED_IMAGE) {
        VKI_TRY(find_def(r, r->w[off + 2], &off));
        // OpTypeImage: result, sampled type, Dim, Depth, Arrayed, MS, Sampled, format.
        if (OPC(r->w[off]) == OP_TYPE_IMAGE && r->w[off + 3] == DIM_BUFFER && r->w[off + 7] == 1)
            *texel_bytes = 4;
        return VKI_OK;
    }
    if (OPC(r->w[off]) != OP_TYPE_IMAGE || r->w[off + 3] != DIM_BUFFER || r->w[off + 7] != 2)
        return VKI_OK;
    *storage = true;
    *format = r->w[off + 8];
    switch (*format) {
    case FORMAT_R32UI: *texel_bytes = 4; break;
    case FORMAT_RG32UI: *texel_bytes = 8; break;
    case FORMAT_RGBA32UI: *texel_bytes = 16; break;
    }
    return VKI_OK;
}

/* Local size from the WorkgroupSize constant, which overrides the execution modes, else from
 * LocalSize or LocalSizeId on the entry point. */
static vki_status local_size(reflector *r, uint32_t entry, uint32_t workgroup_size, uint32_t out[3])
{
    size_t off;
    if (workgroup_size) {
        VKI_TRY(find_def(r, workgroup_size, &off));
        const uint32_t *in = r->w + off;
        if ((OPC(in[0]) != OP_CONSTANT_COMPOSITE && OPC(in[0]) != OP_SPEC_CONSTANT_COMPOSITE) ||
            WC(in[0]) != 6)
            return fail(r, VKI_ERROR_BAD_FILE, "the WorkgroupSize builtin %u is not a constant "
                        "of 3 components", workgroup_size);
        for (int i = 0; i < 3; i++) VKI_TRY(const_value(r, in[3 + i], &out[i]));
        return VKI_OK;
    }
    VKI_TRY(spend(r));
    for (off = 5; off < r->decl_end; off += WC(r->w[off])) {
        const uint32_t *in = r->w + off;
        if (OPC(in[0]) == OP_EXECUTION_MODE && in[1] == entry && in[2] == MODE_LOCAL_SIZE) {
            memcpy(out, in + 3, 3 * sizeof(uint32_t));
            return VKI_OK;
        }
        if (OPC(in[0]) == OP_EXECUTION_MODE_ID && in[1] == entry && in[2] == MODE_LOCAL_SIZE_ID) {
            for (int i = 0; i < 3; i++) VKI_TRY(const_value(r, in[3 + i], &out[i]));
            return VKI_OK;
        }
    }
    return fail(r, VKI_ERROR_BAD_FILE, "the entry point declares no local size");
}

vki_status vki_spirv_reflect(const uint32_t *words, size_t word_count, const vki_spec *specs,
                             uint32_t spec_count, vki_spirv_info *out_info, char *out_error,
                             size_t error_size)
{
    reflector r = {.w = words, .specs = specs, .spec_count = spec_count, .err = out_error,
                   .err_size = error_size};
    if (out_error && error_size > 0) out_error[0] = '\0';
    if (out_info) memset(out_info, 0, sizeof *out_info);
    if (!words || !out_info || (spec_count && !specs))
        return fail(&r, VKI_ERROR_INVALID_ARGUMENT, "NULL module, info or specs");
    if (word_count < 5)
        return fail(&r, VKI_ERROR_BAD_FILE, "%zu words is shorter than a SPIR-V header",
                    word_count);
    if (words[0] == 0x03022307u)
        return fail(&r, VKI_ERROR_BAD_FILE, "SPIR-V magic is byte-swapped (a big-endian module); "
                    "convert it to the host's byte order");
    if (words[0] != SPV_MAGIC)
        return fail(&r, VKI_ERROR_BAD_FILE, "not SPIR-V (magic 0x%08x)", words[0]);
    r.bound = words[3];
    if (r.bound == 0 || r.bound > SPV_BOUND_MAX)
        return fail(&r, VKI_ERROR_BAD_FILE, "id bound %u is outside 1..%u", r.bound, SPV_BOUND_MAX);

    // Pass 1: validate every instruction and collect the facts that need no lookup.
    vki_spirv_info info = {0};
    uint32_t computes = 0, entry = 0, workgroup_size = 0, push_vars = 0, push_var = 0;
    uint32_t push_type = 0, descriptor_var = 0, buffer_count = 0;
    uint32_t buffer_var[VKI_MAX_BINDINGS], buffer_type[VKI_MAX_BINDINGS];
    uint32_t buffer_class[VKI_MAX_BINDINGS];
    r.decl_end = word_count;
    for (size_t off = 5; off < word_count;) {
        uint32_t wc = WC(words[off]), op = OPC(words[off]);
        if (wc == 0 || wc > word_count - off)
            return fail(&r, VKI_ERROR_BAD_FILE, "instruction at word %zu has word count %u; %zu "
                        "words remain", off, wc, word_count - off);
        VKI_TRY(check_instruction(&r, off));
        const uint32_t *in = words + off;
        bool global = off < r.decl_end;
        if (op == OP_FUNCTION && global) r.decl_end = off;
        if (op == OP_ENTRY_POINT && in[1] == MODEL_GLCOMPUTE) computes++, entry = in[2];
        if (op == OP_DECORATE && in[2] == DEC_BUILTIN && in[3] == BUILTIN_WORKGROUP_SIZE)
            workgroup_size = in[1];
        if (op == OP_DECORATE && in[2] == DEC_SPEC_ID) {
            uint32_t i = 0;
            while (i < info.spec_count && info.spec_ids[i] != in[3]) i++;
            if (i == VKI_MAX_SPECS)
                return fail(&r, VKI_ERROR_BAD_FILE, "more than %d specialisation constants",
                            VKI_MAX_SPECS);
            if (i == info.spec_count) info.spec_ids[info.spec_count++] = in[3];
        }
        if (op == OP_VARIABLE && global) {
            uint32_t sc = in[3];
            if (sc == SC_STORAGE_BUFFER || sc == SC_UNIFORM || sc == SC_UNIFORM_CONSTANT) {
                if (buffer_count < VKI_MAX_BINDINGS) {
                    buffer_var[buffer_count] = in[2], buffer_type[buffer_count] = in[1];
                    buffer_class[buffer_count] = sc;
                }
                buffer_count++;
            }
            if (sc == SC_ATOMIC_COUNTER) descriptor_var = in[2];
            if (sc == SC_PUSH_CONSTANT) push_vars++, push_var = in[2], push_type = in[1];
        }
        off += wc;
    }
    r.budget = (uint64_t)r.decl_end * 256 + (1u << 22);

    if (computes != 1)
        return fail(&r, VKI_ERROR_BAD_FILE, "%u GLCompute entry points; exactly one is required",
                    computes);
    if (descriptor_var)
        return fail(&r, VKI_ERROR_BAD_FILE, "variable %u is an atomic counter; this runtime binds "
                    "storage buffers and texel buffers only", descriptor_var);
    if (buffer_count > VKI_MAX_BINDINGS)
        return fail(&r, VKI_ERROR_BAD_FILE, "%u buffers; at most %d are supported", buffer_count,
                    VKI_MAX_BINDINGS);
    if (push_vars > 1)
        return fail(&r, VKI_ERROR_BAD_FILE, "%u push-constant blocks; at most one", push_vars);

    // Bindings: set 0, numbered 0..n-1 each once (the runtime's one descriptor-set layout).
    uint32_t seen = 0;
    for (uint32_t i = 0; i < buffer_count; i++) {
        uint32_t block, set = 0, binding = 0, unused;
        bool found;
        uint32_t texel_bytes = 0, format;
        bool storage = false;
        if (buffer_class[i] == SC_UNIFORM_CONSTANT) {
            VKI_TRY(texel_buffer(&r, buffer_type[i], &texel_bytes, &storage, &format));
            if (storage && !texel_bytes)
                return fail(&r, VKI_ERROR_BAD_FILE, "variable %u is a storage texel buffer of "
                            "SPIR-V image format %u; this runtime binds r32ui, rg32ui and rgba32ui "
                            "views only", buffer_var[i], format);
            if (!texel_bytes)
                return fail(&r, VKI_ERROR_BAD_FILE, "variable %u is an image, sampler or other "
                            "opaque descriptor; this runtime binds storage buffers and uniform "
                            "or storage texel buffers only", buffer_var[i]);
        } else {
            VKI_TRY(pointee_struct(&r, buffer_var[i], buffer_type[i], &block));
        }
        if (buffer_class[i] == SC_UNIFORM) { // BufferBlock marks a pre-1.3 storage buffer
            VKI_TRY(find_decoration(&r, block, DEC_BUFFER_BLOCK, &found, &unused));
            if (!found)
                return fail(&r, VKI_ERROR_BAD_FILE, "variable %u is a uniform buffer; this runtime "
                            "binds storage buffers only", buffer_var[i]);
        }
        VKI_TRY(find_decoration(&r, buffer_var[i], DEC_DESCRIPTOR_SET, &found, &set));
        if (!found || set != 0)
            return fail(&r, VKI_ERROR_BAD_FILE, "buffer %u is in descriptor set %d; only set 0 is "
                        "bound", buffer_var[i], found ? (int)set : -1);
        VKI_TRY(find_decoration(&r, buffer_var[i], DEC_BINDING, &found, &binding));
        if (!found || binding >= buffer_count || (seen & (1u << binding)))
            return fail(&r, VKI_ERROR_BAD_FILE, "buffer %u has binding %d; the %u buffers must use "
                        "bindings 0..%u once each", buffer_var[i], found ? (int)binding : -1,
                        buffer_count, buffer_count - 1);
        seen |= 1u << binding;
        if (texel_bytes) {
            info.texel_mask |= 1u << binding;
            if (storage) info.image_mask |= 1u << binding;
            info.texel_bytes[binding] = (uint8_t)texel_bytes;
        }
    }
    info.binding_count = buffer_count;

    if (push_vars) {
        uint32_t block;
        uint64_t size;
        VKI_TRY(pointee_struct(&r, push_var, push_type, &block));
        VKI_TRY(struct_size(&r, block, 0, &size));
        info.push_size = (uint32_t)size;
    }

    // The caller's specs must name constants the module declares, once each (Vulkan requires
    // unique constantIDs in a VkSpecializationInfo).
    for (uint32_t i = 0; i < spec_count; i++) {
        uint32_t k = 0;
        while (k < info.spec_count && info.spec_ids[k] != specs[i].id) k++;
        if (k == info.spec_count)
            return fail(&r, VKI_ERROR_INVALID_ARGUMENT, "spec constant id %u is not declared by "
                        "this module", specs[i].id);
        for (uint32_t j = 0; j < i; j++)
            if (specs[j].id == specs[i].id)
                return fail(&r, VKI_ERROR_INVALID_ARGUMENT, "spec constant id %u is given twice",
                            specs[i].id);
    }
    VKI_TRY(local_size(&r, entry, workgroup_size, info.local_size));
    *out_info = info;
    return VKI_OK;
}
