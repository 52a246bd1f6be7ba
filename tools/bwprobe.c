/*
 * bwprobe.c - `strix bench --bandwidth`: the memory bandwidth a streaming
 * read reaches on this machine, the limit a decoding step (which reads every
 * weight once) is measured against. Each of T threads sums its own slice of
 * a buffer far larger than the caches (default 1 GiB, touched first, huge
 * pages asked for where the OS allows), eight independent 64-bit sums per
 * thread so the loads, not the adds, set the pace; the figures are bytes
 * read over the wall time of the slowest thread (best and median of the
 * repetitions) and, best of the repetitions, the sum over threads of bytes
 * over the CPU time each thread ran.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cli.h"

struct bw_slice {
    const uint64_t *p;
    size_t n; /* 64-bit words */
    uint64_t sum;
    double cpu; /* seconds this thread ran */
    pthread_barrier_t *start;
};

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *bw_read(void *arg)
{
    struct bw_slice *s = arg;
    pthread_barrier_wait(s->start);
    const double c0 = thread_cpu();
    uint64_t a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= s->n; i += 8)
        for (int k = 0; k < 8; k++)
            a[k] += s->p[i + k];
    for (; i < s->n; i++)
        a[0] += s->p[i];
    s->sum = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
    s->cpu = thread_cpu() - c0;
    return NULL;
}

/* GB/s (1e9 bytes) of one streaming read of buf (bytes) by n_threads, by
 * the wall clock; *cpu_gbs: the sum over threads of each one's bytes over
 * the time it ran (what time slicing on a loaded machine does not move). */
static double bw_once(const uint64_t *buf, size_t bytes, int n_threads, uint64_t *sink,
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
        sl[t] = (struct bw_slice){buf + w0, w1 - w0, 0, 0, &start};
        if (pthread_create(&th[t], NULL, bw_read, &sl[t]) != 0)
            die("--bandwidth: cannot start thread %d", t);
    }
    pthread_barrier_wait(&start);
    const double t0 = now();
    for (int t = 0; t < n_threads; t++) {
        pthread_join(th[t], NULL);
        *sink += sl[t].sum;
    }
    const double dt = now() - t0;
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
        buf[i] = i * 0x9e3779b97f4a7c15ULL;
    uint64_t sink = 0;
    if (!json)
        printf("| %-22s | %7s | %9s | %10s | %11s | %13s |\n|------------------------|--------:|"
               "----------:|-----------:|------------:|--------------:|\n",
               "test", "threads", "MiB", "best GB/s", "median GB/s", "GB/s of CPU");
    for (int ti = 0; ti < n_threads_list; ti++) {
        const int nt = (int)threads[ti];
        if (nt > 64)
            die("--bandwidth: at most 64 threads");
        double v[1000], cpu = 0, c;
        bw_once(buf, bytes, nt, &sink, &c); /* warm-up */
        for (int r = 0; r < reps; r++) {
            v[r] = bw_once(buf, bytes, nt, &sink, &c);
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
            printf("%s  {\"test\": \"bandwidth\", \"threads\": %d, \"mib\": %zu, \"reps\": %d, "
                   "\"best_gbs\": %.2f, \"median_gbs\": %.2f, \"cpu_gbs\": %.2f}",
                   ti ? ",\n" : "", nt, mib, reps, best, med, cpu);
        else
            printf("| %-22s | %7d | %9zu | %10.2f | %11.2f | %13.2f |\n", "streaming read", nt, mib,
                   best, med, cpu);
        fflush(stdout);
    }
    if (sink == 42) /* keeps the sums alive */
        fputc(' ', stderr);
    free(buf);
}
