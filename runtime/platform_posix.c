/* platform_internal.h on POSIX systems (Linux, macOS, the BSDs). */
#define _POSIX_C_SOURCE 200809L
#include "platform_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What a file that is not a regular file is, for messages. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISREG(mode)) return "a regular file";
    return "a special file";
}

vki_status vki__map_file(const char *path, vki__mapping *out, char *why, size_t why_size)
{
    *out = (vki__mapping){0};
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever. It
    // changes nothing for the regular file that fstat then insists on, and mmap ignores it.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return VKI_ERROR_NOT_FOUND;
    }
    struct stat st;
    vki_status status = VKI_ERROR_IO;
    if (fstat(fd, &st) != 0)
        snprintf(why, why_size, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, why_size, "cannot open: is %s, not a regular file", file_kind(st.st_mode));
    else if ((uint64_t)st.st_size > SIZE_MAX)
        snprintf(why, why_size, "too large to map");
    else if (st.st_size == 0) // mmap of 0 bytes is invalid: an empty file maps to nothing
        status = VKI_OK;
    else {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            snprintf(why, why_size, "mmap failed");
        } else {
            out->data = m;
            out->size = (uint64_t)st.st_size;
            status = VKI_OK;
        }
    }
    close(fd); // the mapping keeps the file
    return status;
}

void vki__unmap_file(vki__mapping *mapping)
{
    if (mapping->data) munmap((void *)mapping->data, (size_t)mapping->size);
    *mapping = (vki__mapping){0};
}

bool vki__user_cache_dir(char *out, size_t size)
{
    const char *env;
    if ((env = getenv("XDG_CACHE_HOME")) && *env)
        snprintf(out, size, "%s/vkinfer", env);
    else if ((env = getenv("HOME")) && *env)
        snprintf(out, size, "%s/.cache/vkinfer", env);
    else
        out[0] = 0;
    return out[0] != 0;
}

/* The rule of the kernel's protected_symlinks: a link of ours is followed, another user's is
 * not (a symlinked cache folder is a normal set-up; a link planted by someone else is not). */
vki__path_state vki__folder_check(const char *folder, char *why, size_t why_size)
{
    struct stat st;
    uid_t me = geteuid();
    if (lstat(folder, &st) != 0) {
        if (errno == ENOENT) return VKI__PATH_ABSENT;
        snprintf(why, why_size, "%s", strerror(errno));
    } else if (S_ISLNK(st.st_mode) && st.st_uid != me) {
        snprintf(why, why_size, "is a symbolic link owned by uid %u", (unsigned)st.st_uid);
    } else if (stat(folder, &st) != 0) {
        if (errno == ENOENT) return VKI__PATH_ABSENT; // a dangling link of ours: saving fails
        snprintf(why, why_size, "%s", strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "is %s, not a directory", file_kind(st.st_mode));
    } else if (st.st_uid != me) {
        snprintf(why, why_size, "is owned by uid %u, not by us (uid %u)", (unsigned)st.st_uid,
                 (unsigned)me);
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, why_size, "is writable by group or others (mode %03o; chmod go-w it)",
                 (unsigned)(st.st_mode & 0777));
    } else {
        return VKI__PATH_OURS;
    }
    return VKI__PATH_REFUSED;
}

vki__path_state vki__file_check(const char *path, char *why, size_t why_size)
{
    struct stat st;
    if (lstat(path, &st) != 0) return VKI__PATH_ABSENT;
    if (S_ISREG(st.st_mode) && st.st_uid == geteuid()) return VKI__PATH_OURS;
    snprintf(why, why_size, "is %s owned by uid %u, not a regular file of ours",
             file_kind(st.st_mode), (unsigned)st.st_uid);
    return VKI__PATH_REFUSED;
}

vki__path_state vki__file_open_read(const char *path, FILE **out_file, uint64_t *out_size,
                                    char *why, size_t why_size)
{
    *out_file = NULL;
    *out_size = 0;
    // O_NOFOLLOW: a symlink is refused, not followed; O_NONBLOCK: a FIFO does not wait for a
    // writer (fstat then refuses it).
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return VKI__PATH_ABSENT;
    struct stat st;
    if (fd < 0) {
        snprintf(why, why_size, "%s",
                 errno == ELOOP ? "is a symbolic link, not a regular file" : strerror(errno));
        return VKI__PATH_REFUSED;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        close(fd);
        return VKI__PATH_REFUSED;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        snprintf(why, why_size, "is %s owned by uid %u, not a regular file of ours",
                 file_kind(st.st_mode), (unsigned)st.st_uid);
        close(fd);
        return VKI__PATH_REFUSED;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return VKI__PATH_ABSENT; // unreadable now, but ours: a save may replace it
    }
    *out_file = f;
    *out_size = (uint64_t)st.st_size;
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
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(buf, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST) {
            snprintf(why, why_size, "%s", strerror(errno));
            return false;
        }
    }
    return true;
}

FILE *vki__file_create_temp(const char *target, char *out_tmp, size_t tmp_size, char *why,
                            size_t why_size)
{
    if (snprintf(out_tmp, tmp_size, "%s.XXXXXX", target) >= (int)tmp_size) {
        snprintf(why, why_size, "path too long");
        return NULL;
    }
    // mkstemp: O_CREAT | O_EXCL, mode 0600, an unpredictable name.
    int fd = mkstemp(out_tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        snprintf(why, why_size, "%s", strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(out_tmp);
        }
    }
    return f;
}

bool vki__file_replace(const char *tmp, const char *target, char *why, size_t why_size)
{
    if (rename(tmp, target) == 0) return true;
    snprintf(why, why_size, "%s", strerror(errno));
    return false;
}

void vki__file_remove(const char *path) { unlink(path); }

double vki__now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
