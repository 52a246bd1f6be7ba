/*
 * pool.h - a fixed thread pool. pool_run(fn) calls fn(arg, ith, nth) once on
 * every thread (the caller is thread 0) and returns when all have finished;
 * each call decides its own share of the work from ith and nth.
 *
 * Waiting threads spin for a bounded number of iterations, then sleep on a
 * condition variable, so a time-sliced host does not stall the pool.
 */
#ifndef STRIX_POOL_H
#define STRIX_POOL_H

struct pool;
typedef void (*pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1. Returns NULL on failure (out of memory, thread creation). */
struct pool *pool_create(int n_threads);
void pool_free(struct pool *p);
int pool_n_threads(const struct pool *p);
/* Runs fn on all threads; with nth == 1 it is a plain call. */
void pool_run(struct pool *p, pool_fn fn, void *arg);
/* Runs fn on min(n_threads, max_threads) threads (max_threads >= 1), for work
 * too small to split widely; on one thread it is a plain call that wakes no
 * worker. */
void pool_run_n(struct pool *p, pool_fn fn, void *arg, int max_threads);

#endif
