/* platform_internal.h on Windows. Paths arrive as UTF-8 and go to the wide (UTF-16) API, so
 * any file name works whatever the ANSI code page. Windows has no file modes to check: the
 * cache folder (%LOCALAPPDATA%, private to the user by its ACL) must be a plain directory, and
 * links and junctions are neither followed nor replaced, as on POSIX. */
#define _CRT_RAND_S // rand_s: RtlGenRandom, for unpredictable temporary names
#include "platform_internal.h"

#include <windows.h>

#include <assert.h>
#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>

/* The system's message for `error`, without the trailing ".\r\n". */
static void error_text(DWORD error, char *out, size_t size)
{
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                             error, 0, out, (DWORD)size, NULL);
    if (n == 0) {
        snprintf(out, size, "Windows error %lu", (unsigned long)error);
        return;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == '.')) out[--n] = 0;
}

/* UTF-8 -> UTF-16 into a caller's buffer (on the stack: host memory is the allocator's, and
 * these are transient). False for invalid UTF-8 or a path over WPATH characters. */
#define WPATH 4096
static bool widen(const char *s, wchar_t out[WPATH])
{
    return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, out, WPATH) > 0;
}

static bool is_missing(DWORD error)
{
    return error == ERROR_FILE_NOT_FOUND || error == ERROR_PATH_NOT_FOUND;
}

/* Attributes of `path` (not following a link), or INVALID_FILE_ATTRIBUTES with *out_error. */
static DWORD attributes(const char *path, DWORD *out_error)
{
    wchar_t w[WPATH];
    if (!widen(path, w)) {
        *out_error = ERROR_INVALID_NAME;
        return INVALID_FILE_ATTRIBUTES;
    }
    DWORD a = GetFileAttributesW(w);
    *out_error = a == INVALID_FILE_ATTRIBUTES ? GetLastError() : 0;
    return a;
}

static HANDLE open_handle(const char *path, DWORD access, DWORD share, DWORD disposition,
                          DWORD flags)
{
    wchar_t w[WPATH];
    if (!widen(path, w)) {
        SetLastError(ERROR_INVALID_NAME);
        return INVALID_HANDLE_VALUE;
    }
    return CreateFileW(w, access, share, NULL, disposition, flags, NULL);
}

/* A FILE over a handle; the FILE owns it. NULL (handle closed) on failure. */
static FILE *handle_file(HANDLE h, int flags, const char *mode)
{
    int fd = _open_osfhandle((intptr_t)h, flags);
    if (fd < 0) {
        CloseHandle(h);
        return NULL;
    }
    FILE *f = _fdopen(fd, mode);
    if (!f) _close(fd);
    return f;
}

vki_status vki__map_file(const char *path, vki__mapping *out, char *why, size_t why_size)
{
    *out = (vki__mapping){0};
    char text[256];
    DWORD error;
    DWORD attr = attributes(path, &error);
    if (attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY)) {
        snprintf(why, why_size, "cannot open: is a directory, not a regular file");
        return VKI_ERROR_IO;
    }
    HANDLE h = open_handle(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL);
    if (h == INVALID_HANDLE_VALUE) {
        error_text(GetLastError(), text, sizeof text);
        snprintf(why, why_size, "cannot open: %s", text);
        return VKI_ERROR_NOT_FOUND;
    }
    vki_status status = VKI_ERROR_IO;
    LARGE_INTEGER size;
    DWORD type = GetFileType(h);
    if (type != FILE_TYPE_DISK) {
        snprintf(why, why_size, "cannot open: is %s, not a regular file",
                 type == FILE_TYPE_PIPE ? "a pipe" : type == FILE_TYPE_CHAR ? "a character device"
                                                                             : "a special file");
    } else if (!GetFileSizeEx(h, &size)) {
        error_text(GetLastError(), text, sizeof text);
        snprintf(why, why_size, "cannot stat: %s", text);
    } else if ((uint64_t)size.QuadPart > SIZE_MAX) {
        snprintf(why, why_size, "too large to map");
    } else if (size.QuadPart == 0) { // a mapping of 0 bytes is invalid, as with mmap
        status = VKI_OK;
    } else {
        HANDLE m = CreateFileMappingW(h, NULL, PAGE_READONLY, 0, 0, NULL);
        const void *view = m ? MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0) : NULL;
        if (m) CloseHandle(m); // the view keeps the mapping and the file
        if (!view) {
            snprintf(why, why_size, "mmap failed");
        } else {
            out->data = view;
            out->size = (uint64_t)size.QuadPart;
            status = VKI_OK;
        }
    }
    CloseHandle(h);
    return status;
}

void vki__unmap_file(vki__mapping *mapping)
{
    if (mapping->data) UnmapViewOfFile(mapping->data);
    *mapping = (vki__mapping){0};
}

bool vki__user_cache_dir(char *out, size_t size)
{
    out[0] = 0;
    const wchar_t *env = _wgetenv(L"LOCALAPPDATA");
    if (!env || !*env || size < 16) return false;
    int n = WideCharToMultiByte(CP_UTF8, 0, env, -1, out, (int)(size - 9), NULL, NULL);
    if (n <= 0) {
        out[0] = 0;
        return false;
    }
    strcat(out, "\\vkinfer");
    return true;
}

vki__path_state vki__folder_check(const char *folder, char *why, size_t why_size)
{
    DWORD error;
    DWORD attr = attributes(folder, &error);
    if (attr == INVALID_FILE_ATTRIBUTES) {
        if (is_missing(error)) return VKI__PATH_ABSENT;
        error_text(error, why, why_size);
    } else if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
        snprintf(why, why_size, "is a symbolic link or junction");
    } else if (!(attr & FILE_ATTRIBUTE_DIRECTORY)) {
        snprintf(why, why_size, "is a file, not a directory");
    } else {
        return VKI__PATH_OURS;
    }
    return VKI__PATH_REFUSED;
}

vki__path_state vki__file_check(const char *path, char *why, size_t why_size)
{
    DWORD error;
    DWORD attr = attributes(path, &error);
    if (attr == INVALID_FILE_ATTRIBUTES) return VKI__PATH_ABSENT;
    if (!(attr & (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY))) return VKI__PATH_OURS;
    snprintf(why, why_size, "is %s, not a regular file of ours",
             attr & FILE_ATTRIBUTE_REPARSE_POINT ? "a symbolic link" : "a directory");
    return VKI__PATH_REFUSED;
}

vki__path_state vki__file_open_read(const char *path, FILE **out_file, uint64_t *out_size,
                                    char *why, size_t why_size)
{
    *out_file = NULL;
    *out_size = 0;
    vki__path_state state = vki__file_check(path, why, why_size);
    if (state != VKI__PATH_OURS) return state;
    // FILE_FLAG_OPEN_REPARSE_POINT: a link that appeared since the check is opened as itself.
    HANDLE h = open_handle(path, GENERIC_READ, FILE_SHARE_READ, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD error = GetLastError();
        if (is_missing(error)) return VKI__PATH_ABSENT;
        error_text(error, why, why_size);
        return VKI__PATH_REFUSED;
    }
    LARGE_INTEGER size;
    BY_HANDLE_FILE_INFORMATION info;
    if (GetFileType(h) != FILE_TYPE_DISK || !GetFileInformationByHandle(h, &info) ||
        (info.dwFileAttributes & (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY)) ||
        !GetFileSizeEx(h, &size)) {
        snprintf(why, why_size, "is not a regular file of ours");
        CloseHandle(h);
        return VKI__PATH_REFUSED;
    }
    FILE *f = handle_file(h, _O_RDONLY | _O_BINARY, "rb");
    if (!f) return VKI__PATH_ABSENT; // unreadable now, but ours: a save may replace it
    *out_file = f;
    *out_size = (uint64_t)size.QuadPart;
    return VKI__PATH_OURS;
}

bool vki__make_parent_dirs(const char *path, char *why, size_t why_size)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(why, why_size, "path too long");
        return false;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/' && *p != '\\') continue;
        char sep = *p;
        *p = 0;
        wchar_t w[WPATH];
        bool wide = widen(buf, w);
        // A drive ("C:") or a folder that exists fails with an error; what matters is that a
        // directory is there afterwards.
        bool ok = wide && (CreateDirectoryW(w, NULL) || GetLastError() == ERROR_ALREADY_EXISTS ||
                           GetLastError() == ERROR_ACCESS_DENIED);
        DWORD error = wide ? GetLastError() : ERROR_INVALID_NAME;
        DWORD attr_error;
        DWORD attr = attributes(buf, &attr_error);
        *p = sep;
        if (!ok || attr == INVALID_FILE_ATTRIBUTES || !(attr & FILE_ATTRIBUTE_DIRECTORY)) {
            error_text(ok ? attr_error : error, why, why_size);
            return false;
        }
    }
    return true;
}

FILE *vki__file_create_temp(const char *target, char *out_tmp, size_t tmp_size, char *why,
                            size_t why_size)
{
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        char suffix[7];
        for (int i = 0; i < 6; i++) {
            unsigned r = 0;
            rand_s(&r);
            suffix[i] = digits[r % (sizeof digits - 1)];
        }
        suffix[6] = 0;
        if (snprintf(out_tmp, tmp_size, "%s.%s", target, suffix) >= (int)tmp_size) {
            snprintf(why, why_size, "path too long");
            return NULL;
        }
        // CREATE_NEW fails when anything, a link included, has the name: nothing planted there
        // can redirect the write. No sharing while it is written.
        HANDLE h = open_handle(out_tmp, GENERIC_WRITE, 0, CREATE_NEW, FILE_ATTRIBUTE_NORMAL);
        if (h == INVALID_HANDLE_VALUE) {
            DWORD error = GetLastError();
            if (error == ERROR_FILE_EXISTS || error == ERROR_ALREADY_EXISTS) continue;
            error_text(error, why, why_size);
            return NULL;
        }
        FILE *f = handle_file(h, _O_WRONLY | _O_BINARY, "wb");
        if (!f) {
            snprintf(why, why_size, "cannot open a stream over the new file");
            vki__file_remove(out_tmp);
        }
        return f;
    }
    snprintf(why, why_size, "no free temporary name");
    return NULL;
}

bool vki__file_replace(const char *tmp, const char *target, char *why, size_t why_size)
{
    static_assert(sizeof(wchar_t[WPATH]) * 2 <= 16384, "two paths on the stack");
    wchar_t wt[WPATH], wd[WPATH];
    bool wide = widen(tmp, wt) && widen(target, wd);
    bool ok = wide && MoveFileExW(wt, wd, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
    DWORD error = wide ? GetLastError() : ERROR_INVALID_NAME;
    if (!ok) error_text(error, why, why_size);
    return ok;
}

void vki__file_remove(const char *path)
{
    wchar_t w[WPATH];
    if (widen(path, w)) DeleteFileW(w);
}

double vki__now_s(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}
