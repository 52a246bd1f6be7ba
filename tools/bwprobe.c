/*
 * bwprobe.c - `strix bench --bandwidth`: the memory bandwidth a streaming
 * read reaches on this machine, the limit a decoding step (which reads every
 * weight once) is measured against. Each of T threads sums its own slice of
 * a buffer far larger than the caches (default 1 GiB, touched first, huge
 * pages asked for where the OS allows). A thread reads its slice as four
 * streams at once (the slice cut in four, each step two 64-byte lines of
 * each), with 256-bit loads into independent 64-bit sums where the CPU has
 * AVX2 (else, or with STRIX_KERNELS=scalar, the same four streams with
 * 64-bit loads): one stream alone, or 64-bit loads, leave a core well short
 * of what the memory gives it (on the AMD EPYC this was tuned on, one
 * thread: 8 scalar sums over one stream ~19 GB/s, AVX2 or AVX-512 over one
 * stream ~27, over two to four streams ~38-40; prefetching ahead, with or
 * without the non-temporal hint, added nothing). Every pass's sum is
 * checked against the buffer's closed form, so a read that skipped bytes
 * would stop the probe. The figures are bytes read over the wall time of the
 * slowest thread (best and median of the repetitions) and, best of the
 * repetitions, the sum over threads of bytes over the CPU time each thread
 * ran.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BW_X86 1
#endif

#include "cli.h"

#define BW_STREAMS 4
#define BW_STEP 128 /* bytes of each stream per step: two 64-byte lines */

/* the buffer's word i */
#define BW_WORD(i) ((uint64_t)(i) * 0x9e3779b97f4a7c15ULL)

typedef uint64_t (*bw_read_fn)(const uint64_t *p, size_t n_words);

struct bw_slice {
    bw_read_fn read;
    const uint64_t *p;
    size_t n; /* 64-bit words */
    uint64_t sum;
    double cpu;    /* seconds this thread ran */
    double t0, t1; /* its start and end, wall clock */
    pthread_barrier_t *start;
};

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The sum of p[0..n): four streams of q words each, then the tail. */
static uint64_t bw_read_scalar(const uint64_t *p, size_t n)
{
    const size_t w = BW_STEP / 8, q = n / BW_STREAMS / w * w;
    uint64_t a[BW_STREAMS][4] = {{0}};
    for (size_t i = 0; i < q; i += w)
        for (int s = 0; s < BW_STREAMS; s++)
            for (size_t k = 0; k < w; k += 4) {
                const uint64_t *x = p + (size_t)s * q + i + k;
                a[s][0] += x[0];
                a[s][1] += x[1];
                a[s][2] += x[2];
                a[s][3] += x[3];
            }
    uint64_t sum = 0;
    for (int s = 0; s < BW_STREAMS; s++)
        sum += a[s][0] + a[s][1] + a[s][2] + a[s][3];
    for (size_t i = (size_t)BW_STREAMS * q; i < n; i++)
        sum += p[i];
    return sum;
}

#ifdef BW_X86
__attribute__((target("avx2"))) static uint64_t bw_read_avx2(const uint64_t *p, size_t n)
{
    const size_t w = BW_STEP / 8, q = n / BW_STREAMS / w * w;
    const uint64_t *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < q; i += w) {
#define BW_LINES(s)                                                                                \
    _mm256_add_epi64(                                                                              \
        _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)((s) + i)),                           \
                         _mm256_loadu_si256((const __m256i *)((s) + i + 4))),                      \
        _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)((s) + i + 8)),                       \
                         _mm256_loadu_si256((const __m256i *)((s) + i + 12))))
        a0 = _mm256_add_epi64(a0, BW_LINES(s0));
        a1 = _mm256_add_epi64(a1, BW_LINES(s1));
        a2 = _mm256_add_epi64(a2, BW_LINES(s2));
        a3 = _mm256_add_epi64(a3, BW_LINES(s3));
#undef BW_LINES
    }
    uint64_t o[4];
    _mm256_storeu_si256((__m256i *)o, _mm256_add_epi64(_mm256_add_epi64(a0, a1),
                                                       _mm256_add_epi64(a2, a3)));
    uint64_t sum = o[0] + o[1] + o[2] + o[3];
    for (size_t i = (size_t)BW_STREAMS * q; i < n; i++)
        sum += p[i];
    return sum;
}
#endif

static void *bw_read(void *arg)
{
    struct bw_slice *s = arg;
    pthread_barrier_wait(s->start);
    s->t0 = now();
    const double c0 = thread_cpu();
    s->sum = s->read(s->p, s->n);
    s->cpu = thread_cpu() - c0;
    s->t1 = now();
    return NULL;
}

/* The read this CPU runs best ("avx2" or "scalar"); STRIX_KERNELS=scalar
 * forces the scalar one. */
static bw_read_fn bw_pick(const char **name)
{
    const char *force = getenv("STRIX_KERNELS");
#ifdef BW_X86
    if (!(force && strcmp(force, "scalar") == 0) && __builtin_cpu_supports("avx2")) {
        *name = "avx2";
        return bw_read_avx2;
    }
#endif
    (void)force;
    *name = "scalar";
    return bw_read_scalar;
}

/* The sum of BW_WORD(i) over i in [0, n), mod 2^64. */
static uint64_t bw_expected(size_t n)
{
    const uint64_t a = n % 2 ? (uint64_t)n : (uint64_t)n / 2,
                   b = n % 2 ? ((uint64_t)n - 1) / 2 : (uint64_t)n - 1;
    return a * b * 0x9e3779b97f4a7c15ULL;
}

/* GB/s (1e9 bytes) of one streaming read of buf (bytes) by n_threads, by
 * the wall clock from the first thread's start to the last one's end; *cpu_gbs: the sum over threads of each one's bytes over
 * the time it ran (what time slicing on a loaded machine does not move). */
static double bw_once(bw_read_fn read, const uint64_t *buf, size_t bytes, int n_threads,
                      double *cpu_gbs)
{
    pthread_t th[64];
    struct bw_slice sl[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n_threads + 1);
    const size_t words = bytes / 8;
    for (int t = 0; t < n_threads; t++) {
        const size_t w0 = words * (size_t)t / (size_t)n_threads,
                     w1 = words * (size_t)(t + 1) / (size_t)n_threads;
        sl[t] = (struct bw_slice){read, buf + w0, w1 - w0, 0, 0, 0, 0, &start};
        if (pthread_create(&th[t], NULL, bw_read, &sl[t]) != 0)
            die("--bandwidth: cannot start thread %d", t);
    }
    pthread_barrier_wait(&start);
    uint64_t sum = 0;
    for (int t = 0; t < n_threads; t++) {
        pthread_join(th[t], NULL);
        sum += sl[t].sum;
    }
    /* from the first thread's start to the last one's end */
    double t0 = sl[0].t0, t1 = sl[0].t1;
    for (int t = 1; t < n_threads; t++) {
        t0 = sl[t].t0 < t0 ? sl[t].t0 : t0;
        t1 = sl[t].t1 > t1 ? sl[t].t1 : t1;
    }
    const double dt = t1 - t0;
    if (sum != bw_expected(words))
        die("--bandwidth: the read's sum is wrong (a probe bug)");
    pthread_barrier_destroy(&start);
    *cpu_gbs = 0;
    for (int t = 0; t < n_threads; t++)
        *cpu_gbs += (double)(sl[t].n * 8) / (sl[t].cpu > 0 ? sl[t].cpu : 1e-9) / 1e9;
    return (double)(words * 8) / (dt > 0 ? dt : 1e-9) / 1e9;
}

void bwprobe_run(size_t mib, const long *threads, int n_threads_list, int reps, int json)
{
    const size_t bytes = mib << 20, align = (size_t)2 << 20;
    uint64_t *buf = aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!buf)
        die("--bandwidth: cannot allocate %zu MiB", mib);
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE); /* a hint: fine where refused */
#endif
    for (size_t i = 0; i < bytes / 8; i++)
        buf[i] = BW_WORD(i);
    const char *kind;
    const bw_read_fn read = bw_pick(&kind);
    if (!json)
        printf("| %-22s | %7s | %9s | %10s | %11s | %13s |\n|------------------------|--------:|"
               "----------:|-----------:|------------:|--------------:|\n",
               "test", "threads", "MiB", "best GB/s", "median GB/s", "GB/s of CPU");
    for (int ti = 0; ti < n_threads_list; ti++) {
        const int nt = (int)threads[ti];
        if (nt > 64)
            die("--bandwidth: at most 64 threads");
        double v[1000], cpu = 0, c;
        bw_once(read, buf, bytes, nt, &c); /* warm-up */
        for (int r = 0; r < reps; r++) {
            v[r] = bw_once(read, buf, bytes, nt, &c);
            cpu = c > cpu ? c : cpu;
        }
        double best = 0;
        for (int r = 0; r < reps; r++)
            best = v[r] > best ? v[r] : best;
        /* median by insertion sort (reps <= 1000) */
        for (int i = 1; i < reps; i++)
            for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                const double x = v[j];
                v[j] = v[j - 1];
                v[j - 1] = x;
            }
        const double med = reps % 2 ? v[reps / 2] : 0.5 * (v[reps / 2 - 1] + v[reps / 2]);
        if (json)
            printf("%s  {\"test\": \"bandwidth\", \"read\": \"%s\", \"threads\": %d, \"mib\": %zu, "
                   "\"reps\": %d, \"best_gbs\": %.2f, \"median_gbs\": %.2f, \"cpu_gbs\": %.2f}",
                   ti ? ",\n" : "", kind, nt, mib, reps, best, med, cpu);
        else
            printf("| streaming read, %-6s | %7d | %9zu | %10.2f | %11.2f | %13.2f |\n", kind, nt,
                   mib, best, med, cpu);
        fflush(stdout);
    }
    free(buf);
}
