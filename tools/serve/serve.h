/*
 * serve.h - what the parts of `strix serve` share: the server (model,
 * context, queue, counters), a job (one HTTP request being generated) and
 * the entry points of each file:
 *   server.c   options, start-up, signals and drain, routing and endpoints
 *   sched.c    the scheduler thread: continuous batching over every job
 *   output.c   response bodies and server-sent events (JSON built with cJSON)
 *   metrics.c  Prometheus text of the counters
 *   page.html  the chat page at / (embedded into the binary at build time)
 * Locking: srv->mu guards the queue, the active list, every job's output and
 * state fields and the counters. The scheduler thread alone touches the
 * context, the samplers and a job's choices (tokens, text).
 */
#ifndef STRIX_SERVE_H
#define STRIX_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "strix.h"

/* A growable byte buffer. */
struct sbuf {
    char *p;
    size_t n, cap;
};
int sbuf_add(struct sbuf *b, const void *s, size_t n); /* 0, or -1 out of memory */
void sbuf_free(struct sbuf *b);

/* One choice of a job: one sequence of the cache. */
struct choice {
    int index;
    int slot;            /* index into srv->slots */
    strix_sampler *smp;
    strix_token prev;    /* the last token (spacing of the next piece) */
    strix_token pending; /* sampled, to be decoded next step; -1: none */
    int n_gen;           /* tokens sampled */
    struct sbuf text;    /* text generated so far (cut at a stop string) */
    size_t n_sent;       /* bytes of text already streamed */
    int finish;          /* 0 running, 1 stop, 2 length */
    void *logprobs;      /* cJSON array (non-streaming) of per-token entries */
    void *step_lp;       /* cJSON array: this step's entries (streaming) */
};

enum job_state { JOB_QUEUED = 0, JOB_PROMPT = 1, JOB_GEN = 2, JOB_DONE = 3 };

struct job {
    struct job *next;
    struct req r;
    strix_token *prompt; /* n_prompt tokens, BOS included where the model wants it */
    int n_prompt;
    int n_past;   /* prompt tokens in choice 0's sequence (cached or decoded) */
    int n_cached; /* of which shared from an earlier sequence */
    int n_choices;
    struct choice *ch;
    int state;  /* enum job_state (under srv->mu) */
    int cancel; /* the client went away (under srv->mu) */
    int refs;   /* the HTTP side and the scheduler (under srv->mu) */
    int error;  /* an internal failure ended it: out holds the error body */
    pthread_cond_t cond; /* signalled when out grows or the job ends */
    struct sbuf out;     /* response bytes ready to send (under srv->mu) */
    char id[48];
    long created;
    double t_arrive, t_first, t_end; /* seconds (monotonic) */
};

struct slot {
    struct job *job;  /* NULL: free */
    strix_token *toks; /* the tokens the sequence holds, positions 0 .. n_toks-1 */
    int n_toks;
};

#define HIST_BUCKETS 12
struct hist {
    double le[HIST_BUCKETS]; /* upper bounds; +Inf is implicit */
    uint64_t count[HIST_BUCKETS + 1];
    double sum;
    uint64_t n;
};
void hist_init(struct hist *h, const double *le, int n);
void hist_add(struct hist *h, double v);

struct metrics {
    uint64_t requests[6]; /* by endpoint: chat, completions, models, tokenize, other, page */
    uint64_t responses_2xx, responses_4xx, responses_5xx;
    uint64_t prompt_tokens, cached_tokens, completion_tokens, cancelled, steps;
    int kv_used, kv_cells; /* the cache's cells after the last step */
    struct hist ttft, latency, batch_tokens, batch_seqs;
};

struct server {
    strix_model *model;
    strix_context *ctx;
    strix_pool *pool;
    const char *model_name; /* the id /v1/models lists */
    const char *tmpl;       /* chat template name */
    const char *tmpl_end;   /* its end-of-turn text (a stop string) or NULL */
    const char *api_key;    /* NULL: no check */
    int n_ctx, n_vocab, n_slots, n_batch;
    int max_queue;
    int timeout; /* seconds an idle connection is kept */
    size_t max_body;
    struct req_limits lim;
    strix_token bos, eos;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the scheduler waits here for work */
    struct job *queue, *queue_tail;
    int n_queued;
    struct job *active;
    int n_active;
    int n_live;    /* jobs not yet freed (drain waits for 0) */
    int draining;  /* no new jobs */
    int quit;      /* the scheduler ends */
    struct slot *slots;
    struct metrics m;
    double t_start;
};

double srv_now(void);

/* sched.c */
void *sched_main(void *srv);
/* Queues a job (the caller holds one reference, the scheduler takes
 * another). Returns 0, or -1 when the queue is full or the server drains
 * (*err set, 503). Takes srv->mu. */
int sched_submit(struct server *srv, struct job *j, struct api_error *err);
/* Drops the caller's reference (srv->mu held); the job is freed with the
 * last. */
void job_release_locked(struct server *srv, struct job *j);

/* output.c: each returns a NUL-terminated malloc'd string, or NULL (out of
 * memory). */
char *out_error_json(const struct api_error *e);
char *out_final(const struct server *srv, const struct job *j);
/* One streamed chunk with choice c's new text[0..n) and its step logprobs
 * (role: the opening chunk; finish: the closing one). */
char *out_chunk(const struct server *srv, const struct job *j, const struct choice *c,
                const char *text, size_t n, int role);
char *out_usage_chunk(const struct server *srv, const struct job *j);
/* A logprob entry for token tok after prev (cJSON object, chat or
 * completion shape) from the sampler's last draw. */
void *out_logprob_entry(const struct server *srv, const struct job *j, strix_sampler *smp,
                        strix_token prev, strix_token tok);
/* Bytes of s[0..n) that can be sent without cutting a UTF-8 sequence that
 * may still be completed by later bytes. */
size_t out_utf8_complete(const char *s, size_t n);

/* metrics.c */
char *metrics_text(struct server *srv); /* takes srv->mu */

/* page (generated from tools/serve/page.html) */
extern const char serve_page_html[];

#endif
