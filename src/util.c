/*
 * util.c - error messages, the allocation hook, file mapping, half-precision
 * conversion and the random-number generator. Everything else in src/
 * builds on these.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *strix_status_name(int code)
{
    switch (code) {
    case STRIX_OK: return "ok";
    case STRIX_ERR_IO: return "I/O error";
    case STRIX_ERR_FORMAT: return "format error";
    case STRIX_ERR_UNSUPPORTED: return "unsupported";
    case STRIX_ERR_NOMEM: return "out of memory";
    case STRIX_ERR_ARG: return "invalid argument";
    case STRIX_ERR_FULL: return "KV cache full";
    default: return "unknown error";
    }
}

int util_params_init(void *p, size_t caller_size, const void *defaults, size_t lib_size)
{
    if (!p || caller_size < sizeof(size_t))
        return STRIX_ERR_ARG;
    memcpy(p, defaults, caller_size < lib_size ? caller_size : lib_size);
    if (caller_size > lib_size) /* a newer caller: its extra fields start as zero */
        memset((char *)p + lib_size, 0, caller_size - lib_size);
    memcpy(p, &caller_size, sizeof caller_size);
    return STRIX_OK;
}

int util_params_read(void *dst, const void *defaults, size_t lib_size, const void *src,
                     const char *what, strix_error *err)
{
    memcpy(dst, defaults, lib_size);
    if (!src)
        return STRIX_OK;
    size_t n;
    memcpy(&n, src, sizeof n);
    if (n < sizeof(size_t) || n > lib_size + 4096)
        return err_set(err, STRIX_ERR_ARG,
                       "%s parameters: struct_size is %zu; start from strix_%s_default_params()",
                       what, n, what);
    for (size_t i = lib_size; i < n; i++)
        if (((const unsigned char *)src)[i])
            return err_set(err, STRIX_ERR_UNSUPPORTED,
                           "%s parameters: a field this library does not know is set (struct of "
                           "%zu bytes, this library's has %zu): built against a newer strix",
                           what, n, lib_size);
    memcpy(dst, src, n < lib_size ? n : lib_size);
    memcpy(dst, &lib_size, sizeof lib_size);
    return STRIX_OK;
}

int util_result_check(const void *dst, size_t min_size, size_t lib_size, const char *what,
                      strix_error *err)
{
    if (!dst)
        return err_set(err, STRIX_ERR_ARG, "%s result is NULL", what);
    size_t n;
    memcpy(&n, dst, sizeof n);
    if (n < min_size || n > lib_size + 4096)
        return err_set(err, STRIX_ERR_ARG,
                       "%s result: struct_size is %zu; set it to the struct's sizeof", what, n);
    return STRIX_OK;
}

void util_result_write(void *dst, const void *src, size_t lib_size)
{
    size_t n;
    memcpy(&n, dst, sizeof n);
    if (n > lib_size)
        n = lib_size;
    memcpy((char *)dst + sizeof n, (const char *)src + sizeof n, n - sizeof n);
}

int util_result_start(void *dst, const void *src, size_t min_size, size_t lib_size,
                      const char *what, strix_error *err)
{
    if (!dst)
        return STRIX_OK;
    const int rc = util_result_check(dst, min_size, lib_size, what, err);
    if (rc == STRIX_OK)
        util_result_write(dst, src, lib_size);
    return rc;
}

int err_set(strix_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void err_prefix(strix_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char pre[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t np = strlen(pre), cap = sizeof err->msg - 1;
    if (np > cap)
        np = cap;
    memcpy(err->msg, pre, np);
    size_t at = np;
    for (const char *s = ": "; *s && at < cap; s++)
        err->msg[at++] = *s;
    for (const char *s = old; *s && at < cap; s++)
        err->msg[at++] = *s;
    err->msg[at] = '\0';
}

void err_clear(strix_error *err)
{
    if (err) {
        err->code = STRIX_OK;
        err->msg[0] = '\0';
    }
}

void util_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "strix: internal error: assertion '%s' failed at %s:%d\n", what, file, line);
    abort(); /* a bug, never bad input */
}

/* ---- allocation hook ---- */

/* Shared by every thread that allocates (the pool's workers too), so both
 * are atomic; relaxed order is enough for counters nothing else depends on. */
static atomic_long fail_after = -1;
static atomic_long n_allocs;

static int alloc_should_fail(void)
{
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    long f = atomic_load_explicit(&fail_after, memory_order_relaxed);
    /* count down to 0, which then fails every allocation until reset */
    while (f > 0 && !atomic_compare_exchange_weak_explicit(
                        &fail_after, &f, f - 1, memory_order_relaxed, memory_order_relaxed))
        ;
    return f == 0;
}

void util_fail_alloc_after(long n)
{
    atomic_store(&fail_after, n);
}
long util_alloc_count(void)
{
    return atomic_load(&n_allocs);
}

void *util_malloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *util_calloc(size_t n, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    if (n == 0 || size == 0)
        n = size = 1;
    return calloc(n, size);
}

void *util_realloc(void *p, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *util_malloc_huge(size_t n)
{
    const size_t huge = (size_t)2 << 20;
    if (n < huge)
        return util_malloc(n);
    if (alloc_should_fail())
        return NULL;
    void *p = NULL;
    const size_t rounded = (n + huge - 1) / huge * huge;
    if (posix_memalign(&p, huge, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE); /* a hint: refused where THP is off */
#endif
    return p;
}

/* ---- large copies ---- */

struct copy_part {
    uint8_t *dst;
    const uint8_t *src;
    size_t n;
};

static void *copy_part_run(void *v)
{
    const struct copy_part *p = v;
    if (p->n)
        memcpy(p->dst, p->src, p->n);
    return NULL;
}

void util_copy_parallel(void *dst, const void *src, size_t n)
{
    enum { MAX_PARTS = 8 };
    const size_t min_part = (size_t)4 << 20, page = 4096;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t parts = n / min_part;
    if (cpus > 0 && parts > (size_t)cpus)
        parts = (size_t)cpus;
    if (parts > MAX_PARTS)
        parts = MAX_PARTS;
    if (parts < 2) {
        memcpy(dst, src, n);
        return;
    }
    const size_t step = (n / parts + page - 1) / page * page;
    struct copy_part part[MAX_PARTS];
    pthread_t th[MAX_PARTS];
    int started[MAX_PARTS] = {0};
    for (size_t i = 0; i < parts; i++) {
        const size_t o = step * i < n ? step * i : n;
        part[i] = (struct copy_part){(uint8_t *)dst + o, (const uint8_t *)src + o,
                                     n - o < step ? n - o : step};
    }
    for (size_t i = 1; i < parts; i++)
        started[i] = pthread_create(&th[i], NULL, copy_part_run, &part[i]) == 0;
    copy_part_run(&part[0]);
    for (size_t i = 1; i < parts; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else /* no thread to be had: this one copies it */
            copy_part_run(&part[i]);
    }
}

void util_free(void *p)
{
    free(p);
}

char *util_strndup(const char *s, size_t n)
{
    char *d = util_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- files ---- */

int util_map_file(const char *path, struct util_map *m, strix_error *err)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return err_set(err, STRIX_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, STRIX_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, STRIX_ERR_IO, "'%s' is not a regular file", path);
    }
    m->path = util_strndup(path, strlen(path));
    if (!m->path) {
        close(fd);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    m->from_file = 1;
    m->dev = (uint64_t)st.st_dev;
    m->ino = (uint64_t)st.st_ino;
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        m->data = util_malloc(1);
        if (!m->data) {
            util_unmap(m);
            return err_set(err, STRIX_ERR_NOMEM, "out of memory");
        }
        m->size = 0;
        return STRIX_OK;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        util_unmap(m);
        return err_set(err, STRIX_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    }
    m->data = p;
    m->size = size;
    m->mapped = 1;
    return STRIX_OK;
}

void util_unmap(struct util_map *m)
{
    if (!m)
        return;
    if (m->data && m->mapped)
        munmap((void *)m->data, m->size);
    else
        util_free((void *)m->data);
    util_free(m->path);
    memset(m, 0, sizeof *m);
}

/* ---- half precision ---- */

/* A float's bits and back (memcpy: no aliasing rules broken). */
static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float util_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            man &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    return bits_f32(bits);
}

uint16_t util_fp32_to_fp16(float f)
{
    const uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) /* inf / nan */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is the right result */
    return (uint16_t)h;
}

float util_bf16_to_fp32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t util_fp32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

uint64_t util_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float util_rng_uniform(uint64_t *state)
{
    return (float)(util_rng_next(state) >> 40) / 16777216.0f;
}
