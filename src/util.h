/*
 * util.h - shared internals: error reporting, the allocation hook,
 * overflow-checked size arithmetic and the invariant check.
 *
 * Errors of input go through err_set() into a strix_error; broken invariants
 * (bugs) go through STRIX_ASSERT, which stays on in release builds.
 */
#ifndef STRIX_UTIL_H
#define STRIX_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "strix.h"

#if defined(__GNUC__)
#define STRIX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define STRIX_PRINTF(a, b)
#endif

/* Sets err (may be NULL) to code and a formatted message; returns code. */
int err_set(strix_error *err, int code, const char *fmt, ...) STRIX_PRINTF(3, 4);
/* Prefixes the message already in err with "prefix: ". */
void err_prefix(strix_error *err, const char *fmt, ...) STRIX_PRINTF(2, 3);
void err_clear(strix_error *err);

/* Public parameter structs (strix.h, "Parameter structs and ABI"): each
 * begins with size_t struct_size. util_params_init writes the library's
 * defaults (lib_size bytes) into a caller's struct of caller_size bytes;
 * util_params_read copies the defaults into dst, then a caller's struct src
 * (NULL: none) over them, checking struct_size (`what` names the struct in
 * messages). */
int util_params_init(void *p, size_t caller_size, const void *defaults, size_t lib_size);
int util_params_read(void *dst, const void *defaults, size_t lib_size, const void *src,
                     const char *what, strix_error *err);

/* UTIL_PARAMS_DEFINE(name, .field = value, ...) defines the library's
 * defaults of struct strix_<name>_params, `<name>_defaults` (the fields
 * given, struct_size, the rest zero), and the public
 * strix_<name>_params_init over them. UTIL_PARAMS_READ(name, &dst, src, err)
 * then reads a caller's struct src (NULL: the defaults) into dst. */
#define UTIL_PARAMS_DEFINE(name, ...)                                                              \
    static const struct strix_##name##_params name##_defaults = {                                  \
        .struct_size = sizeof(struct strix_##name##_params), __VA_ARGS__};                         \
    int strix_##name##_params_init(struct strix_##name##_params *p, size_t struct_size)            \
    {                                                                                              \
        return util_params_init(p, struct_size, &name##_defaults, sizeof name##_defaults);         \
    }
#define UTIL_PARAMS_READ(name, dst, src, err)                                                      \
    util_params_read(dst, &name##_defaults, sizeof name##_defaults, src, #name, err)

/* Result structs the library fills (strix.h, "Result structs"): each
 * begins with size_t struct_size, set by the caller. util_result_check
 * accepts a caller's struct dst whose struct_size is at least min_size (the
 * struct as it was when struct_size was added: UTIL_END_OF its last field
 * then) and at most lib_size + 4096; util_result_write copies the library's
 * full struct src (lib_size bytes) into dst, only dst's struct_size bytes,
 * and leaves dst's struct_size as it was. */
#define UTIL_END_OF(T, field) (offsetof(T, field) + sizeof(((T *)0)->field))
int util_result_check(const void *dst, size_t min_size, size_t lib_size, const char *what,
                      strix_error *err);
void util_result_write(void *dst, const void *src, size_t lib_size);
/* For an optional result (dst may be NULL: nothing to do): checks dst, then
 * writes the library's initial values src into it. */
int util_result_start(void *dst, const void *src, size_t min_size, size_t lib_size,
                      const char *what, strix_error *err);

/* Broken invariant: print file and line and stop. Not for bad input. */
#define STRIX_ASSERT(c)                                                                            \
    do {                                                                                           \
        if (!(c))                                                                                  \
            util_assert_fail(#c, __FILE__, __LINE__);                                              \
    } while (0)
void util_assert_fail(const char *what, const char *file, int line);

/* Every heap allocation of the library goes through these, so tests can make
 * the n-th allocation fail (util_fail_alloc_after). free(NULL) is fine. */
void *util_malloc(size_t n);
void *util_calloc(size_t n, size_t size);
void *util_realloc(void *p, size_t n);
void util_free(void *p);
/* A large, long-lived buffer (packed weights): aligned to 2 MiB and offered
 * to transparent huge pages where the OS allows, so a stream over it takes
 * one TLB entry per 2 MiB instead of per 4 KiB. Freed with util_free. */
void *util_malloc_huge(size_t n);
/* memcpy of a large block into fresh memory, split over up to one thread
 * per CPU (8 at most, parts of at least 4 MiB): there the first touch of
 * each new page, which the kernel zeroes, costs more than the copy, and the
 * faults go as fast as the threads taking them. Same bytes as memcpy; the
 * threads are joined before it returns. */
void util_copy_parallel(void *dst, const void *src, size_t n);
char *util_strndup(const char *s, size_t n);
/* Test hook: the allocation after `n` more succeed fails (n < 0: never). */
void util_fail_alloc_after(long n);
/* Number of allocations made since start (tests use it to count steps). */
long util_alloc_count(void);

/* Overflow-checked arithmetic: return 0 on overflow, 1 on success. */
static inline int util_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}
static inline int util_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 0;
    *out = a + b;
    return 1;
}

/* Whole-file access. A mapped file is read-only and lives until util_unmap. */
struct util_map {
    const uint8_t *data;
    size_t size;
    int mapped; /* 1: mmap; 0: heap copy (empty files, or mmap unavailable) */
    /* the file it came from (from_file 0: bytes given in memory): its path as
     * opened, device and inode, so that no writer replaces its own input */
    int from_file;
    uint64_t dev, ino;
    char *path;
};
int util_map_file(const char *path, struct util_map *m, strix_error *err);
void util_unmap(struct util_map *m);

/* fp16 / bf16 conversion (exact, IEEE round-to-nearest-even on narrowing). */
float util_fp16_to_fp32(uint16_t h);
uint16_t util_fp32_to_fp16(float f);
float util_bf16_to_fp32(uint16_t h);
uint16_t util_fp32_to_bf16(float f);

/* splitmix64: a small, well-mixed generator (state advanced in place), and a
 * uniform float in [0, 1) from its top 24 bits. Same state, same sequence. */
uint64_t util_rng_next(uint64_t *state);
float util_rng_uniform(uint64_t *state);

#endif
