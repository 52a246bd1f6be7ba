/*
 * atomic_file.h - how the library writes a file a user may own (GGUF models,
 * KL base files): into a new temporary file beside the target, flushed to
 * disk, then renamed over the target, so that a crash, kill -9 or a full disk
 * leaves the old file or no file, never a partial one.
 *
 *   struct atomic_file af;
 *   if (atomic_file_open(&af, path, err)) return rc;
 *   ... fwrite(..., af.f) ...
 *   rc = failed ? (atomic_file_abort(&af), rc) : atomic_file_commit(&af, err);
 *
 * The temporary file is "<target>.tmp.<pid>.<n>" in the target's directory
 * (created with O_EXCL, mode 0666 less the umask, or the old target's mode).
 * Every error path removes it; only a process killed while writing (SIGKILL,
 * SIGINT, power loss) can leave one behind, next to an intact target. A target that is a
 * symbolic link is written through: the file it names is replaced and the
 * link stays. A target that exists and is not a regular file (/dev/null, a
 * FIFO) is written directly, without a temporary file.
 */
#ifndef STRIX_ATOMIC_FILE_H
#define STRIX_ATOMIC_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "strix.h"

struct atomic_file {
    FILE *f;      /* write here */
    char *target; /* the file that is replaced (symbolic links resolved) */
    char *tmp;    /* the temporary file, NULL when writing directly */
};

/* Creates the temporary file for path. On failure nothing is left on disk,
 * af->f is NULL and err names the path and the reason. */
int atomic_file_open(struct atomic_file *af, const char *path, strix_error *err);
/* Flushes and syncs the data, renames it over the target and syncs the
 * directory. On failure the temporary file is removed and the target is as
 * it was. Either way af is released. */
int atomic_file_commit(struct atomic_file *af, strix_error *err);
/* Discards what was written (removes the temporary file); NULL-safe and safe
 * on a released af. */
void atomic_file_abort(struct atomic_file *af);

/* 1 if path names (after resolving links) the file with this device and
 * inode, hard links included; 0 otherwise (also when path does not exist). */
int atomic_file_is(const char *path, uint64_t dev, uint64_t ino);

#endif
