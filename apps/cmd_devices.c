/* `vkinfer devices`: every Vulkan device's profile as the runtime sees it, after narrowing,
 * with the tuning row it would use. Reads profiles through the instance, so no device is
 * opened and a device that fails to open is still listed. */
#include "apps_internal.h"

#include <stdarg.h>
#include <string.h>

void vki_devices_usage(FILE *f)
{
    fprintf(f,
            "usage: vkinfer [global options] devices [--json]\n\n"
            "Lists every Vulkan device: limits, features, memory heaps, timestamps and the\n"
            "tuning row chosen for it, after --narrow / $VKI_NARROW. The device `vkinfer`\n"
            "would use by default is marked; --device marks the one it selects.\n\n"
            "  --json   one JSON document: an array of device objects\n");
}

/* Bit order of VKI_SUBGROUP_*, as printed and as JSON strings. */
static const char *const subgroup_op_names[] = {
    "basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad",
};
#define SUBGROUP_OP_COUNT (sizeof subgroup_op_names / sizeof subgroup_op_names[0])

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

static cJSON *u32_array(const uint32_t v[3])
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *tuning_json(const vki_tuning *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddNumberToObject(o, "subgroup_size", t->subgroup_size);
    cJSON_AddNumberToObject(o, "workgroup_size", t->workgroup_size);
    cJSON_AddNumberToObject(o, "matvec_rows", t->matvec_rows);
    cJSON_AddNumberToObject(o, "matmul_tile_m", t->matmul_tile_m);
    cJSON_AddNumberToObject(o, "matmul_tile_n", t->matmul_tile_n);
    cJSON_AddNumberToObject(o, "matmul_tile_k", t->matmul_tile_k);
    cJSON_AddBoolToObject(o, "matmul_shared", t->matmul_shared);
    cJSON_AddBoolToObject(o, "use_coopmat", t->use_coopmat);
    cJSON_AddBoolToObject(o, "texel_loads", t->texel_loads);
    cJSON_AddBoolToObject(o, "attention_tiled", t->attention_tiled);
    cJSON_AddBoolToObject(o, "conv2d_shared", t->conv2d_shared);
    cJSON_AddBoolToObject(o, "matvec_int_dot", t->matvec_int_dot);
    return o;
}

/* Stable snake_case keys: scripts and tests read them. Byte counts are plain numbers (exact
 * in a double up to 8 PiB). */
static cJSON *profile_json(uint32_t index, const vki_profile *p, bool is_default,
                           bool is_selected, const char *narrow_text)
{
    char buf[64];
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddBoolToObject(o, "default", is_default);
    cJSON_AddBoolToObject(o, "selected", is_selected);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "type", vki_device_type_name(p->type));
    cJSON_AddStringToObject(o, "vendor", vki_vendor_name(p->vendor));
    cJSON_AddNumberToObject(o, "vendor_id", p->vendor_id);
    cJSON_AddNumberToObject(o, "device_id", p->device_id);
    cJSON_AddNumberToObject(o, "driver_id", p->driver_id);
    cJSON_AddStringToObject(o, "driver_name", p->driver_name);
    cJSON_AddStringToObject(o, "driver_info", p->driver_info);
    cJSON_AddNumberToObject(o, "driver_version", p->driver_version);
    cJSON_AddStringToObject(o, "api_version", vki_version_string(p->api_version, buf));
    for (int i = 0; i < 16; i++) snprintf(buf + 2 * i, 3, "%02x", p->uuid[i]);
    cJSON_AddStringToObject(o, "pipeline_cache_uuid", buf);
    cJSON_AddStringToObject(o, "narrowing", narrow_text ? narrow_text : "");

    cJSON_AddNumberToObject(o, "subgroup_size", p->subgroup_size);
    cJSON_AddNumberToObject(o, "subgroup_min", p->subgroup_min);
    cJSON_AddNumberToObject(o, "subgroup_max", p->subgroup_max);
    cJSON_AddBoolToObject(o, "subgroup_size_control", p->subgroup_size_control);
    cJSON *ops = cJSON_AddArrayToObject(o, "subgroup_ops");
    for (size_t i = 0; i < SUBGROUP_OP_COUNT; i++)
        if (p->subgroup_ops & (1u << i))
            cJSON_AddItemToArray(ops, cJSON_CreateString(subgroup_op_names[i]));

    cJSON_AddBoolToObject(o, "fp16", p->fp16);
    cJSON_AddBoolToObject(o, "int8", p->int8);
    cJSON_AddBoolToObject(o, "storage16", p->storage16);
    cJSON_AddBoolToObject(o, "storage8", p->storage8);
    cJSON_AddBoolToObject(o, "int_dot", p->int_dot);
    cJSON_AddBoolToObject(o, "coopmat", p->coopmat);
    if (p->coopmat)
        cJSON_AddItemToObject(o, "coopmat_shape",
                              cJSON_CreateIntArray((const int[]){(int)p->coopmat_shape[0],
                                                                 (int)p->coopmat_shape[1],
                                                                 (int)p->coopmat_shape[2]},
                                                   3));
    if (p->coopmat) // which extension the kernels use
        cJSON_AddStringToObject(o, "coopmat_extension", p->coopmat_emulated ? "emulated" : p->coopmat_khr ? "KHR" : "NV");
    cJSON_AddBoolToObject(o, "push_descriptor", p->push_descriptor);
    cJSON_AddBoolToObject(o, "memory_budget", p->memory_budget);
    cJSON_AddBoolToObject(o, "uma", p->uma);

    cJSON_AddNumberToObject(o, "shared_memory", p->shared_memory);
    cJSON_AddNumberToObject(o, "push_constant_size", p->push_constant_size);
    cJSON_AddNumberToObject(o, "max_storage_buffer_range", (double)p->max_storage_range);
    cJSON_AddNumberToObject(o, "max_allocation", (double)p->max_allocation);
    cJSON_AddNumberToObject(o, "max_buffer_size", (double)p->max_buffer_size);
    cJSON_AddNumberToObject(o, "storage_align", p->storage_align);
    cJSON_AddNumberToObject(o, "max_workgroup_invocations", p->max_workgroup_invocations);
    cJSON_AddItemToObject(o, "max_workgroup_size", u32_array(p->max_workgroup_size));
    cJSON_AddItemToObject(o, "max_workgroup_count", u32_array(p->max_workgroup_count));

    cJSON_AddNumberToObject(o, "device_local_bytes", (double)p->device_local_bytes);
    cJSON *heaps = cJSON_AddArrayToObject(o, "heaps");
    for (uint32_t i = 0; i < p->heap_count && i < VKI_MAX_HEAPS; i++) {
        const vki_heap *h = &p->heaps[i];
        cJSON *ho = cJSON_CreateObject();
        cJSON_AddNumberToObject(ho, "size", (double)h->size);
        cJSON_AddNumberToObject(ho, "budget", (double)h->budget);
        cJSON_AddNumberToObject(ho, "usage", (double)h->usage);
        cJSON_AddBoolToObject(ho, "device_local", h->device_local);
        cJSON_AddBoolToObject(ho, "host_visible", h->host_visible);
        cJSON_AddItemToArray(heaps, ho);
    }
    cJSON_AddBoolToObject(o, "timestamps", p->timestamps);
    cJSON_AddNumberToObject(o, "timestamp_period_ns", p->timestamp_period);
    cJSON_AddItemToObject(o, "tuning", tuning_json(&p->tuning));
    return o;
}

/* One "  label   value" line of the human listing. */
VKI_PRINTF(2, 3) static void print_row(const char *label, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %-22s", label);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static void print_profile(uint32_t index, const vki_profile *p, bool is_default,
                          bool is_selected, const char *narrow_text)
{
    char a[32], b[32], c[32];
    printf("device %u: %s%s%s\n", index, p->name, is_default ? "  [default]" : "",
           is_selected && !is_default ? "  [selected]" : "");
    print_row("type", "%s", vki_device_type_name(p->type));
    print_row("vendor", "%s (vendor id 0x%04x, device id 0x%04x)", vki_vendor_name(p->vendor),
              p->vendor_id, p->device_id);
    print_row("driver", "%s, %s (driver id %u, version 0x%08x)", p->driver_name,
              p->driver_info[0] ? p->driver_info : "no info", p->driver_id, p->driver_version);
    print_row("vulkan api", "%s", vki_version_string(p->api_version, a));
    print_row("subgroup", "size %u, range %u..%u, size control %s", p->subgroup_size,
              p->subgroup_min, p->subgroup_max, yes_no(p->subgroup_size_control));
    printf("  %-22s", "subgroup ops");
    if (!p->subgroup_ops) printf("none");
    for (size_t i = 0; i < SUBGROUP_OP_COUNT; i++)
        if (p->subgroup_ops & (1u << i)) printf("%s ", subgroup_op_names[i]);
    putchar('\n');
    char coop[32] = "no";
    if (p->coopmat)
        snprintf(coop, sizeof coop, "%ux%ux%u (%s)", p->coopmat_shape[0], p->coopmat_shape[1],
                 p->coopmat_shape[2], p->coopmat_emulated ? "emulated" : p->coopmat_khr ? "KHR" : "NV");
    print_row("arithmetic", "fp16 %s, int8 %s, int dot %s, coopmat %s", yes_no(p->fp16),
              yes_no(p->int8), yes_no(p->int_dot), coop);
    print_row("storage", "16-bit %s, 8-bit %s", yes_no(p->storage16), yes_no(p->storage8));
    print_row("extensions", "push descriptor %s, memory budget %s", yes_no(p->push_descriptor),
              yes_no(p->memory_budget));
    print_row("shared memory", "%s", vki_bytes_string(p->shared_memory, a));
    print_row("push constants", "%s", vki_bytes_string(p->push_constant_size, a));
    print_row("max storage range", "%s", vki_bytes_string(p->max_storage_range, a));
    print_row("max allocation", "%s (max buffer %s)", vki_bytes_string(p->max_allocation, a),
              vki_bytes_string(p->max_buffer_size, b));
    print_row("storage alignment", "%u B", p->storage_align);
    print_row("workgroup limits", "%u invocations, size %ux%ux%u, count %ux%ux%u",
              p->max_workgroup_invocations, p->max_workgroup_size[0], p->max_workgroup_size[1],
              p->max_workgroup_size[2], p->max_workgroup_count[0], p->max_workgroup_count[1],
              p->max_workgroup_count[2]);
    print_row("memory", "UMA %s, device-local %s", yes_no(p->uma),
              vki_bytes_string(p->device_local_bytes, a));
    for (uint32_t i = 0; i < p->heap_count && i < VKI_MAX_HEAPS; i++) {
        const vki_heap *h = &p->heaps[i];
        char label[32];
        snprintf(label, sizeof label, "heap %u", i);
        print_row(label, "%s, budget %s, used %s%s%s", vki_bytes_string(h->size, a),
                  vki_bytes_string(h->budget, b), vki_bytes_string(h->usage, c),
                  h->device_local ? ", device-local" : "", h->host_visible ? ", host-visible" : "");
    }
    if (p->timestamps)
        print_row("timestamps", "yes, %g ns per tick", (double)p->timestamp_period);
    else
        print_row("timestamps", "no");
    const vki_tuning *t = &p->tuning;
    print_row("tuning", "%s: subgroup %u, workgroup %u, matvec rows %u,", t->name,
              t->subgroup_size, t->workgroup_size, t->matvec_rows);
    print_row("", "matmul tile %ux%ux%u, %s, coopmat %s,", t->matmul_tile_m, t->matmul_tile_n,
              t->matmul_tile_k, t->matmul_shared ? "shared-memory tiles" : "register tiles",
              t->use_coopmat ? "on" : "off");
    print_row("", "matmul weights and x read through %s,",
              t->texel_loads ? "texel buffers" : "storage buffers");
    print_row("", "q8_0/q4_0 mat-vec on %s,",
              t->matvec_int_dot ? "integer dot products (x rounded to int8)" : "fp32 fmas");
    print_row("", "attention %s, conv2d %s", t->attention_tiled ? "in shared-memory tiles" : "barrier-free (rows and keys kernels)",
              t->conv2d_shared ? "in shared-memory tiles" : "in register tiles");
    if (narrow_text) print_row("narrowed by", "%s", narrow_text);
}

int vki_cmd_devices(vki_app *app, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            vki_devices_usage(stdout);
            return VKI_EXIT_OK;
        } else {
            return vki_app_usage_error(vki_devices_usage, "devices: unknown %s '%s'",
                                       argv[i][0] == '-' ? "option" : "argument", argv[i]);
        }
    }

    int code = vki_app_open_instance(app);
    if (code != VKI_EXIT_OK) return code;
    vki_instance *inst = app->instance;
    uint32_t count = vki_instance_device_count(inst);
    if (count == 0) return vki_app_failf("no Vulkan device found (is a driver installed?)");

    // The default pick honours $VKI_DEVICE, exactly as a device opened without --device.
    uint32_t default_index = 0, selected_index = 0;
    vki_status st = vki_instance_select_device(inst, NULL, &default_index);
    if (st != VKI_OK) return vki_app_fail(app, "choosing the default device", st);
    selected_index = default_index;
    if (app->device_select) {
        st = vki_instance_select_device(inst, app->device_select, &selected_index);
        if (st != VKI_OK) {
            char what[300];
            snprintf(what, sizeof what, "selecting device '%s'", app->device_select);
            return vki_app_fail(app, what, st);
        }
    }

    cJSON *root = NULL;
    if (json && !(root = cJSON_CreateArray()))
        return vki_app_failf("building JSON: out of host memory");
    code = VKI_EXIT_OK;
    for (uint32_t i = 0; i < count; i++) {
        vki_profile p;
        memset(&p, 0, sizeof p);
        st = vki_instance_device_profile(inst, i, &app->narrowing, &p);
        if (st != VKI_OK) {
            char what[64];
            snprintf(what, sizeof what, "reading the profile of device %u", i);
            code = vki_app_fail(app, what, st);
            goto done;
        }
        if (json) {
            cJSON *o = profile_json(i, &p, i == default_index, i == selected_index,
                                    app->narrow_text);
            if (!o) {
                code = vki_app_failf("building JSON: out of host memory");
                goto done;
            }
            cJSON_AddItemToArray(root, o);
        } else {
            if (i > 0) putchar('\n');
            print_profile(i, &p, i == default_index, i == selected_index, app->narrow_text);
        }
    }
    if (json) code = vki_json_print(root);
done:
    cJSON_Delete(root);
    return code;
}
