/* What differs between operating systems, behind one small internal API: runtime/platform_posix.c
 * (Linux, macOS, the BSDs) and runtime/platform_win32.c (Windows; the mingw-w64 cross-build).
 * The pipeline cache and the GGUF reader use it; nothing else in the libraries touches the file
 * system. Paths are UTF-8. A function that fails writes its reason into `why` (at most
 * `why_size` bytes) without the path, which the caller adds: "is a FIFO, not a regular file". */
#ifndef VKINFER_PLATFORM_INTERNAL_H
#define VKINFER_PLATFORM_INTERNAL_H

#include "vkinfer_runtime.h"

#include <stdio.h>

/* ---- Read-only file mappings -------------------------------------------------------------- */

typedef struct vki__mapping {
    const void *data;   // NULL for an empty file
    uint64_t size;
    void *os;           // the platform's handle, for vki__unmap_file
} vki__mapping;

/* Maps a whole regular file read-only. Anything else is refused without blocking on it: a FIFO
 * (opened without waiting for a writer), a directory, a device. VKI_ERROR_NOT_FOUND when the
 * path cannot be opened ("cannot open: <reason>"); VKI_ERROR_IO for the rest ("cannot open: is
 * a FIFO, not a regular file", "cannot stat: ...", "too large to map", "mmap failed"). The
 * mapping outlives nothing else: the file may be closed or renamed while mapped. */
vki_status vki__map_file(const char *path, vki__mapping *out, char *why, size_t why_size);
void vki__unmap_file(vki__mapping *mapping); // zeroes *mapping; a zeroed mapping is a no-op

/* ---- Private files: the pipeline cache ---------------------------------------------------- */

/* The user's cache folder for vkinfer: $XDG_CACHE_HOME/vkinfer, else ~/.cache/vkinfer (POSIX);
 * %LOCALAPPDATA%\vkinfer (Windows). False, with out "", when the environment names none. */
bool vki__user_cache_dir(char *out, size_t size);

typedef enum vki__path_state {
    VKI__PATH_ABSENT = 0, // nothing there
    VKI__PATH_OURS,       // there, and ours to use
    VKI__PATH_REFUSED,    // there, and not ours: leave it alone (why says what it is)
} vki__path_state;

/* Whether `folder` is one only we can write: our own directory, writable by no one else, not
 * reached through a symbolic link someone else planted. Where the platform has no owners and
 * modes (Windows) it must be a plain directory, not a link or junction. */
vki__path_state vki__folder_check(const char *folder, char *why, size_t why_size);

/* Whether what sits at `path` (not followed when a link) is a regular file of ours. */
vki__path_state vki__file_check(const char *path, char *why, size_t why_size);

/* Opens a regular file of ours for reading, neither following a symbolic link nor waiting on a
 * FIFO. OURS: *out_file (close with fclose) and *out_size are set; otherwise *out_file is NULL.
 * A file that exists but cannot be opened is REFUSED with the system's reason. */
vki__path_state vki__file_open_read(const char *path, FILE **out_file, uint64_t *out_size,
                                    char *why, size_t why_size);

/* Creates every missing folder above the last separator of `path`, private to us (0700). */
bool vki__make_parent_dirs(const char *path, char *why, size_t why_size);

/* Creates a new file "<target>.XXXXXX" for writing, exclusively (never through anything planted
 * at that name), with an unpredictable name and private permissions. Its path goes to `out_tmp`.
 * NULL on failure. */
FILE *vki__file_create_temp(const char *target, char *out_tmp, size_t tmp_size, char *why,
                            size_t why_size);

/* Renames `tmp` over `target`, replacing it in one step, so a reader sees the old or the new. */
bool vki__file_replace(const char *tmp, const char *target, char *why, size_t why_size);

void vki__file_remove(const char *path);

/* Seconds on a monotonic clock (for timings; only differences mean anything). */
double vki__now_s(void);

#endif
