/*
 * pool.c - the thread pool (see pool.h).
 *
 * A job is published by bumping `generation` under the mutex. Workers spin
 * briefly on the atomic generation (cheap when cores are free), then block on
 * `wake`. The caller counts finished workers the same way: bounded spin, then
 * `done` condition variable. Every wait is bounded: after SPIN_ITERS
 * checks a thread sleeps until signalled, so an idle pool uses no CPU.
 *
 * A pool may be shared by several contexts (strix_pool) that decode from
 * different threads: `job_mu` is held for a whole job, so jobs run one at a
 * time and the workers' job fields are never written while a job runs.
 */
#define _POSIX_C_SOURCE 200809L
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "util.h"

#define SPIN_ITERS 20000

struct worker {
    struct pool *pool;
    int ith;
    pthread_t thread;
};

struct pool {
    int n_threads;
    struct worker *workers; /* n_threads - 1 */
    int n_started;
    pthread_mutex_t job_mu; /* one job at a time (callers from several threads) */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_uint generation;
    atomic_int n_pending; /* workers still running the current job */
    int stop;
    pool_fn fn;
    void *arg;
    int nth; /* threads taking part in the current job */
};

static void *worker_main(void *v)
{
    struct worker *w = v;
    struct pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; i < SPIN_ITERS && g == seen; i++) {
            if ((i & 255) == 255)
                sched_yield();
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->generation)) == seen && !p->stop)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        pool_fn fn = p->fn;
        void *arg = p->arg;
        int nth = p->nth;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            return NULL;
        if (w->ith < nth)
            fn(arg, w->ith, nth);
        if (atomic_fetch_sub_explicit(&p->n_pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

struct pool *pool_create(int n_threads)
{
    if (n_threads < 1)
        n_threads = 1;
    struct pool *p = util_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->job_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->n_pending, 0);
    if (n_threads > 1) {
        p->workers = util_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers)
            goto fail;
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0)
                goto fail;
            p->n_started++;
        }
    }
    return p;
fail:
    pool_free(p);
    return NULL;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->job_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    util_free(p->workers);
    util_free(p);
}

int pool_n_threads(const struct pool *p)
{
    return p->n_threads;
}

void pool_run_n(struct pool *p, pool_fn fn, void *arg, int max_threads)
{
    STRIX_ASSERT(p && fn);
    int nth = p->n_threads < max_threads ? p->n_threads : max_threads;
    if (nth < 1)
        nth = 1;
    if (nth == 1) {
        /* one thread: the caller's own, without waking the workers (a wake-up
         * and a wait for every worker, which a time-sliced host may have
         * descheduled, for a job they would all skip) */
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->job_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->nth = nth;
    atomic_store(&p->n_pending, p->n_threads - 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    fn(arg, 0, nth);

    for (int i = 0; i < SPIN_ITERS && atomic_load(&p->n_pending) > 0; i++)
        if ((i & 255) == 255)
            sched_yield();
    if (atomic_load(&p->n_pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->n_pending) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->job_mu);
}

void pool_run(struct pool *p, pool_fn fn, void *arg)
{
    pool_run_n(p, fn, arg, p->n_threads);
}
