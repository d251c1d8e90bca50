/* The Windows platform layer (runtime/platform_win32.c) end to end, for tools/build_windows.sh:
 * cross-compiled with mingw-w64 and run under Wine when it is installed. Not part of the CTest
 * suites (their POSIX twin is test_platform.cc). Prints each failure; exits 1 on any. */
#include "platform_internal.h"

#include <stdlib.h>
#include <string.h>
#include <windows.h>

static int fails;
static char why[256];

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            printf("FAIL line %d: %s (why: %s)\n", __LINE__, #cond, why);                      \
            fails++;                                                                           \
        }                                                                                      \
    } while (0)

int main(void)
{
    char cache[512], base[512], path[600], tmp[700];
    CHECK(vki__user_cache_dir(cache, sizeof cache));
    CHECK(strstr(cache, "\\vkinfer") != NULL);
    const char *temp = getenv("TEMP");
    snprintf(base, sizeof base, "%s\\vki-platform-%lu", temp ? temp : "C:", GetCurrentProcessId());

    // Private parent folders, then a temporary file renamed over its target twice.
    snprintf(path, sizeof path, "%s/a/b/cache.bin", base);
    CHECK(vki__make_parent_dirs(path, why, sizeof why));
    snprintf(tmp, sizeof tmp, "%s/a/b", base);
    CHECK(vki__folder_check(tmp, why, sizeof why) == VKI__PATH_OURS);
    CHECK(vki__file_check(path, why, sizeof why) == VKI__PATH_ABSENT);
    for (int round = 0; round < 2; round++) {
        FILE *f = vki__file_create_temp(path, tmp, sizeof tmp, why, sizeof why);
        CHECK(f != NULL);
        if (!f) return 1;
        CHECK(strncmp(tmp, path, strlen(path)) == 0 && tmp[strlen(path)] == '.');
        fputs(round ? "second" : "first", f);
        fclose(f);
        CHECK(vki__file_replace(tmp, path, why, sizeof why));
    }
    CHECK(vki__file_check(path, why, sizeof why) == VKI__PATH_OURS);

    FILE *r = NULL;
    uint64_t size = 0;
    CHECK(vki__file_open_read(path, &r, &size, why, sizeof why) == VKI__PATH_OURS);
    CHECK(size == 6);
    if (r) {
        char bytes[16] = {0};
        CHECK(fread(bytes, 1, sizeof bytes - 1, r) == 6 && strcmp(bytes, "second") == 0);
        fclose(r);
    }

    // Mappings: a file, an empty one; a folder, a missing file and a device are refused.
    vki__mapping m;
    CHECK(vki__map_file(path, &m, why, sizeof why) == VKI_OK);
    CHECK(m.size == 6 && m.data && memcmp(m.data, "second", 6) == 0);
    vki__unmap_file(&m);
    snprintf(tmp, sizeof tmp, "%s/empty", base);
    FILE *e = fopen(tmp, "wb");
    if (e) fclose(e);
    CHECK(vki__map_file(tmp, &m, why, sizeof why) == VKI_OK && !m.data && m.size == 0);
    CHECK(vki__map_file(base, &m, why, sizeof why) == VKI_ERROR_IO);
    CHECK(strcmp(why, "cannot open: is a directory, not a regular file") == 0);
    snprintf(tmp, sizeof tmp, "%s/missing", base);
    CHECK(vki__map_file(tmp, &m, why, sizeof why) == VKI_ERROR_NOT_FOUND);
    CHECK(vki__map_file("NUL", &m, why, sizeof why) == VKI_ERROR_IO);
    CHECK(vki__file_open_read(base, &r, &size, why, sizeof why) == VKI__PATH_REFUSED);

    vki__file_remove(path);
    snprintf(tmp, sizeof tmp, "%s/empty", base);
    vki__file_remove(tmp);
    printf("platform_win32_smoke: %s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
