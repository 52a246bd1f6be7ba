/*
 * harness.h - the minimal unit-test harness: CHECK records a failure with
 * file and line and goes on; TEST_MAIN_END prints "N passed, N failed" and
 * returns non-zero if anything failed. Tests find fixtures under
 * STRIX_TEST_DATA, by default the checkout's tests/data (its absolute path,
 * STRIX_TEST_DATA_DEFAULT, given by the Makefile), so a test runs from any
 * working directory.
 */
#ifndef STRIX_HARNESS_H
#define STRIX_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_pass, harness_fail;

/* Counts one check; prints "FAIL file:line: expr" for a failed one, ending
 * the line unless more follows (CHECKF's message). Returns ok. */
static inline int harness_record(int ok, const char *file, int line, const char *expr, int more)
{
    if (ok) {
        harness_pass++;
        return 1;
    }
    harness_fail++;
    fprintf(stderr, "FAIL %s:%d: %s%s", file, line, expr, more ? ": " : "\n");
    return 0;
}

#define CHECK(c) ((void)harness_record((c) ? 1 : 0, __FILE__, __LINE__, #c, 0))

#define CHECKF(c, ...)                                                                             \
    do {                                                                                           \
        if (!harness_record((c) ? 1 : 0, __FILE__, __LINE__, #c, 1)) {                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline const char *test_data_dir(void)
{
    const char *d = getenv("STRIX_TEST_DATA");
#ifdef STRIX_TEST_DATA_DEFAULT
    return d && *d ? d : STRIX_TEST_DATA_DEFAULT;
#else
    return d && *d ? d : "tests/data";
#endif
}

/* Path of a fixture in a static buffer (one at a time). */
static inline const char *test_path(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", test_data_dir(), name);
    return buf;
}

/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL on failure. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

/* Fixture `name` read whole (as test_read_file); NULL, with a failure
 * recorded, if it cannot be read. */
static inline char *read_fixture(const char *name, size_t *len)
{
    char *b = test_read_file(test_path(name), len);
    CHECKF(b != NULL, "cannot read fixture %s", name);
    return b;
}

#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200809L
#include <unistd.h>
/* Creates an empty file with a unique name under $TMPDIR (default /tmp),
 * writes its path to buf and returns 0, or records a failure and returns -1.
 * The caller unlinks it. (Needs _POSIX_C_SOURCE 200809L before any include.) */
static inline int test_tmpfile(char *buf, size_t cap, const char *tag)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int n = snprintf(buf, cap, "%s/strix-%s-XXXXXX", dir, tag);
    int fd = n > 0 && (size_t)n < cap ? mkstemp(buf) : -1;
    if (fd < 0) {
        harness_fail++;
        fprintf(stderr, "FAIL: cannot create a temporary file in %s\n", dir);
        if (cap)
            buf[0] = '\0';
        return -1;
    }
    close(fd);
    return 0;
}
#endif

#define TEST_MAIN_END()                                                                            \
    do {                                                                                           \
        printf("%s: %d passed, %d failed\n", __FILE__, harness_pass, harness_fail);                \
        return harness_fail ? 1 : 0;                                                               \
    } while (0)

#endif
