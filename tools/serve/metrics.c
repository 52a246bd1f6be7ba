/*
 * metrics.c - the server's counters as Prometheus text (GET /metrics):
 * requests by endpoint, responses by status class, tokens, queue and slot
 * use, cache cells, and histograms of time to first token, request latency
 * and batch sizes. The counters themselves are kept by sched.c and
 * server.c under srv->mu.
 */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void hist_init(struct hist *h, const double *le, int n)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        h->le[i] = i < n ? le[i] : le[n - 1];
}

void hist_add(struct hist *h, double v)
{
    int i = 0;
    while (i < HIST_BUCKETS && v > h->le[i])
        i++;
    h->count[i]++;
    h->sum += v;
    h->n++;
}

static void put(struct sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void put(struct sbuf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        sbuf_add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void put_hist(struct sbuf *b, const char *name, const char *help, const struct hist *h)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        cum += h->count[i];
        if (i > 0 && h->le[i] == h->le[i - 1])
            continue;
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    cum += h->count[HIST_BUCKETS];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name,
        (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

static void put_counter(struct sbuf *b, const char *name, const char *help, uint64_t v)
{
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

static void put_gauge(struct sbuf *b, const char *name, const char *help, double v)
{
    put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v);
}

char *metrics_text(struct server *srv)
{
    struct sbuf b = {0};
    static const char *const endpoints[6] = {"chat_completions", "completions", "models",
                                             "tokenize", "other", "page"};
    pthread_mutex_lock(&srv->mu);
    const struct metrics *m = &srv->m;
    put(&b, "# HELP strix_requests_total HTTP requests by endpoint.\n"
            "# TYPE strix_requests_total counter\n");
    for (int i = 0; i < 6; i++)
        put(&b, "strix_requests_total{endpoint=\"%s\"} %llu\n", endpoints[i],
            (unsigned long long)m->requests[i]);
    put(&b, "# HELP strix_responses_total HTTP responses by status class.\n"
            "# TYPE strix_responses_total counter\n"
            "strix_responses_total{code=\"2xx\"} %llu\n"
            "strix_responses_total{code=\"4xx\"} %llu\n"
            "strix_responses_total{code=\"5xx\"} %llu\n",
        (unsigned long long)m->responses_2xx, (unsigned long long)m->responses_4xx,
        (unsigned long long)m->responses_5xx);
    put_counter(&b, "strix_prompt_tokens_total", "Prompt tokens of admitted requests.",
                m->prompt_tokens);
    put_counter(&b, "strix_prompt_tokens_cached_total",
                "Prompt tokens shared from the cache instead of computed.", m->cached_tokens);
    put_counter(&b, "strix_completion_tokens_total", "Tokens generated.", m->completion_tokens);
    put_counter(&b, "strix_spec_drafted_total", "Speculative draft tokens checked.",
                m->spec_drafted);
    put_counter(&b, "strix_spec_accepted_total", "Speculative draft tokens accepted.",
                m->spec_accepted);
    put_counter(&b, "strix_requests_cancelled_total", "Requests whose client went away.",
                m->cancelled);
    put_counter(&b, "strix_decode_steps_total", "Batched decode steps.", m->steps);
    put_gauge(&b, "strix_queue_length", "Requests waiting for a slot.", srv->n_queued);
    put_gauge(&b, "strix_requests_active", "Requests being generated.", srv->n_active);
    put_gauge(&b, "strix_slots", "Sequences the cache holds at once (--parallel).", srv->n_slots);
    put_gauge(&b, "strix_kv_cells_used", "Cache cells in use.", m->kv_used);
    put_gauge(&b, "strix_kv_cells", "Cache cells.", m->kv_cells);
    put_gauge(&b, "strix_uptime_seconds", "Seconds since start.", srv_now() - srv->t_start);
    put_hist(&b, "strix_time_to_first_token_seconds", "Time from arrival to the first token.",
             &m->ttft);
    put_hist(&b, "strix_request_duration_seconds", "Time from arrival to the last token.",
             &m->latency);
    put_hist(&b, "strix_batch_tokens", "Tokens per batched decode step.", &m->batch_tokens);
    put_hist(&b, "strix_batch_sequences", "Sequences per batched decode step.", &m->batch_seqs);
    pthread_mutex_unlock(&srv->mu);
    return b.p;
}
