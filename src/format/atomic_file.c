/*
 * atomic_file.c - owns the replace-by-rename writing of files described in
 * atomic_file.h: temporary file, fsync, rename, directory fsync, and the
 * removal of the temporary file on every error path. What is written is the
 * caller's (gguf_writer.c, eval.c).
 */
#define _XOPEN_SOURCE 700
#include "format/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static atomic_uint tmp_counter;

/* The file a write to path replaces: path itself, or what a symbolic link
 * at path resolves to. util_malloc'd. */
static char *resolve_target(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        if (real) {
            char *copy = util_strndup(real, strlen(real));
            free(real);
            return copy;
        }
        /* a dangling link: the link itself is replaced */
    }
    return util_strndup(path, strlen(path));
}

static void release(struct atomic_file *af)
{
    util_free(af->target);
    util_free(af->tmp);
    af->target = af->tmp = NULL;
    af->f = NULL;
}

int atomic_file_open(struct atomic_file *af, const char *path, strix_error *err)
{
    memset(af, 0, sizeof *af);
    if (!path || !path[0])
        return err_set(err, STRIX_ERR_ARG, "no output path");
    af->target = resolve_target(path);
    if (!af->target)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    struct stat st;
    const int exists = stat(af->target, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        release(af);
        return err_set(err, STRIX_ERR_IO, "cannot write '%s': it is a directory", path);
    }
    if (exists && access(af->target, W_OK) != 0) { /* a read-only file stays protected */
        const int e = errno;
        release(af);
        return err_set(err, STRIX_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    if (exists && !S_ISREG(st.st_mode)) { /* a device or FIFO: no rename over it */
        af->f = fopen(af->target, "wb");
        if (!af->f) {
            const int e = errno;
            release(af);
            return err_set(err, STRIX_ERR_IO, "cannot open '%s' for writing: %s", path,
                           strerror(e));
        }
        return STRIX_OK;
    }
    const size_t cap = strlen(af->target) + 48;
    af->tmp = util_malloc(cap);
    if (!af->tmp) {
        release(af);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    int fd = -1, e = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(af->tmp, cap, "%s.tmp.%ld.%u", af->target, (long)getpid(),
                 atomic_fetch_add(&tmp_counter, 1u));
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST)
            break;
    }
    if (fd < 0) {
        release(af);
        return err_set(err, STRIX_ERR_IO, "cannot create a file beside '%s': %s", path,
                       strerror(e));
    }
    /* a replaced file keeps its permissions */
    if (exists)
        (void)fchmod(fd, st.st_mode & 07777);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        e = errno;
        close(fd);
        unlink(af->tmp);
        release(af);
        return err_set(err, STRIX_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return STRIX_OK;
}

void atomic_file_abort(struct atomic_file *af)
{
    if (!af)
        return;
    if (af->f)
        fclose(af->f);
    if (af->tmp)
        unlink(af->tmp);
    release(af);
}

/* Syncs the directory that holds path, so that a rename in it is durable.
 * File systems that cannot sync a directory say EINVAL; that is no error. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? util_strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : util_strndup(".", 1);
    if (!dir)
        return ENOMEM;
    int rc = 0;
    const int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
            rc = errno;
        close(fd);
    }
    util_free(dir);
    return rc;
}

int atomic_file_commit(struct atomic_file *af, strix_error *err)
{
    if (!af || !af->f)
        return err_set(err, STRIX_ERR_ARG, "no file open for writing");
    int e = 0;
    errno = 0;
    if (fflush(af->f) != 0 || ferror(af->f))
        e = errno ? errno : EIO;
    /* a device cannot always be synced (EINVAL); a regular file must be */
    if (!e && fsync(fileno(af->f)) != 0 && (af->tmp || (errno != EINVAL && errno != EROFS)))
        e = errno;
    errno = 0;
    if (fclose(af->f) != 0 && !e)
        e = errno ? errno : EIO;
    af->f = NULL;
    if (!e && af->tmp && rename(af->tmp, af->target) != 0)
        e = errno;
    if (e) {
        const int rc = err_set(err, STRIX_ERR_IO, "cannot write '%s': %s", af->target,
                               strerror(e));
        atomic_file_abort(af);
        return rc;
    }
    if (af->tmp && (e = sync_dir(af->target)) != 0) {
        const int rc = err_set(err, STRIX_ERR_IO, "wrote '%s' but cannot sync its directory: %s",
                               af->target, strerror(e));
        release(af);
        return rc;
    }
    release(af);
    return STRIX_OK;
}

int atomic_file_is(const char *path, uint64_t dev, uint64_t ino)
{
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return 0;
    return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}
