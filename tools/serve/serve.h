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
    int index;           /* in the response: prompt * n + k */
    int group;           /* its prompt: index into job->grp */
    int slot;            /* index into srv->slots; -1 before its group starts */
    size_t off0;         /* bytes written before its text (the echoed prompt) */
    double sum_lp;       /* log-probability of the tokens sampled (best_of) */
    struct json_state *json; /* response_format json_object: the grammar state */
    strix_sampler *smp;
    strix_token prev;    /* the last token (spacing of the next piece) */
    strix_token pending; /* sampled, to be decoded next step; -1: none */
    int n_gen;           /* tokens sampled */
    struct sbuf text;    /* text generated so far (cut at a stop string) */
    size_t n_sent;       /* bytes of text already streamed */
    int finish;          /* 0 running, 1 stop, 2 length */
    void *logprobs;      /* cJSON array (non-streaming) of per-token entries */
    void *step_lp;       /* cJSON array: this step's entries (streaming) */
    /* speculative: the prompt-lookup draft, and this step's drafts */
    strix_draft *draft;
    strix_token drafts[16];
    int n_drafts;
    int base;  /* the position of this step's first row */
    int n_acc; /* drafts accepted this step */
    int walk;  /* 1 while this step's rows are still being accepted */
};

enum job_state { JOB_QUEUED = 0, JOB_PROMPT = 1, JOB_GEN = 2, JOB_DONE = 3 };

/* One prompt of a job and its per_group choices (candidates with best_of):
 * it gets its slots when enough are free, reads its prompt into its first
 * choice's sequence, shares it with the others, and frees its slots when
 * all its choices have finished. */
struct group {
    strix_token *prompt; /* n_prompt tokens, BOS included where the model wants it */
    int n_prompt;
    int n_past;   /* prompt tokens in the first choice's sequence (cached or decoded) */
    int n_cached; /* of which shared from an earlier sequence */
    int state;    /* enum job_state: QUEUED (no slots), PROMPT, GEN, DONE */
    int ch0;      /* its first choice */
    char *echo;   /* completions with echo: the prompt's text (n_echo bytes) */
    size_t n_echo;
    void *echo_lp; /* echo with logprobs: cJSON array, one entry per prompt token */
};

struct job {
    struct job *next;
    struct req r;
    struct group *grp; /* n_groups prompts (one for chat) */
    int n_groups;
    int per_group; /* choices per prompt: best_of (n unless best_of is given) */
    int n_choices; /* n_groups * per_group */
    struct choice *ch;
    int state;  /* enum job_state: QUEUED, GEN (running), DONE (under srv->mu) */
    int cancel; /* the client went away (under srv->mu) */
    int refs;   /* the HTTP side and the scheduler (under srv->mu) */
    int error;  /* an internal failure ended it: out holds the error body */
    pthread_cond_t cond; /* signalled when out grows or the job ends */
    struct sbuf out;     /* response bytes ready to send (under srv->mu) */
    uint8_t *skip;       /* skip_layers as a mask (n_layer bytes), or NULL */
    int spec_drafted, spec_accepted; /* speculative: drafts checked, accepted */
    char id[48];
    long created;
    double t_arrive, t_first, t_end; /* seconds (monotonic) */
};

struct slot {
    struct job *job;  /* NULL: free */
    strix_token *toks; /* the tokens the sequence holds, positions 0 .. n_toks-1 */
    int n_toks;
    uint8_t *skip; /* (n_layer) the layers its tokens skipped (all 0: none) */
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
    uint64_t spec_drafted, spec_accepted;
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
    int n_ctx, n_vocab, n_slots, n_batch, n_layer;
    int skip_on;       /* the context has per-sequence layer masks (scheduler thread) */
    long step_delay_ms; /* --step-delay-ms: each decode step made this much longer */
    int max_queue;
    int timeout; /* seconds an idle connection is kept */
    size_t max_body;
    struct req_limits lim;
    strix_token bos, eos;
    struct json_vocab *json_vocab; /* token texts for response_format json_object */
    float *mask_buf;               /* n_vocab logits, masked (scheduler thread only) */

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

/* json.c: a byte-level automaton of one JSON object (response_format
 * json_object), and the token mask it puts on the logits. */
struct json_state;
struct json_state *json_state_new(void); /* NULL: out of memory */
void json_state_free(struct json_state *s);
/* Feeds bytes; 0 if they keep the text a prefix of a JSON object (then the
 * state has moved), -1 otherwise (the state is unchanged). */
int json_feed(struct json_state *s, const char *bytes, size_t n);
int json_done(const struct json_state *s);        /* 1: the object is closed */
int json_close_cost(const struct json_state *s);  /* bytes that would close it */
/* The token texts the mask tests (after a token that is not BOS), built once
 * by json_vocab_new; NULL: out of memory. */
struct json_vocab;
struct json_vocab *json_vocab_new(const strix_model *model);
void json_vocab_free(struct json_vocab *v);
/* logits[0..n_vocab): every token that would break the object, or that would
 * leave more bytes to close it than budget - 1 tokens can write, becomes
 * -inf (when no token fits the budget, only the grammar is applied); EOS and
 * other control tokens are removed unless the object is done. Returns the
 * number of tokens left. */
int json_mask(const struct json_state *s, const struct json_vocab *v, float *logits, int budget);

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
/* The same for prompt token tok after prev, from the logits that predicted
 * it (log-softmax of the raw logits); logits NULL: the first token, whose
 * log-probability is null. */
void *out_prompt_entry(const struct server *srv, const struct job *j, const float *logits,
                       strix_token prev, strix_token tok);
/* Bytes of s[0..n) that can be sent without cutting a UTF-8 sequence that
 * may still be completed by later bytes. */
size_t out_utf8_complete(const char *s, size_t n);

/* metrics.c */
char *metrics_text(struct server *srv); /* takes srv->mu */

/* page (generated from tools/serve/page.html) */
extern const char serve_page_html[];

#endif
