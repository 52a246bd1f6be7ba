/*
 * request.h - the body of an OpenAI-style completion request, parsed and
 * checked (tools/serve/request.c): JSON text in, generation parameters out,
 * or an error with the HTTP status and the OpenAI error fields. Knows no
 * model and no HTTP: the server tokenizes and schedules what this returns,
 * and the fuzz target (tests/fuzz/fuzz_request.c) feeds it any bytes.
 */
#ifndef STRIX_SERVE_REQUEST_H
#define STRIX_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "strix.h"

enum req_kind { REQ_CHAT = 1, REQ_COMPLETION = 2 };

/* Limits a request is checked against (the server's options). */
struct req_limits {
    int max_n;          /* most choices per request */
    int max_stops;      /* most stop strings */
    size_t max_stop_len; /* longest stop string, bytes */
    int max_logit_bias; /* most logit_bias entries */
    int max_messages;   /* most chat messages */
    int max_tokens;     /* largest max_tokens accepted */
    int n_vocab;        /* token ids must be below this (0: not checked) */
    int max_prompts;    /* most prompts in one completions request */
    int n_layer;        /* skip_layers must be below this (0: not checked) */
};

/* An OpenAI error: HTTP status, type ("invalid_request_error", ...), the
 * parameter at fault (or "") and a code (or ""). */
struct api_error {
    int status;
    const char *type;
    char param[64];
    char code[64];
    char message[400];
};

/* Everything owned by the struct; req_free releases it. */
struct req {
    int kind; /* enum req_kind */
    char *model; /* NULL if not given */
    /* chat: n_msg messages (role and content owned) */
    struct strix_chat_msg *msgs;
    int n_msg;
    /* completion: n_prompts prompts, each as text or as token ids */
    struct req_prompt {
        char *text;       /* NULL: ids */
        strix_token *ids; /* n_ids token ids (NULL: text) */
        int n_ids;
    } *prompts;
    int n_prompts;
    int echo;    /* completions: the prompt is written before the text */
    int best_of; /* candidates generated per prompt (>= n); the n best are returned */
    int json;    /* response_format json_object: the text is one JSON object */
    int stream, include_usage;
    int max_tokens; /* -1: until the end of the context */
    int n;
    char **stops;
    int n_stops;
    int logprobs;     /* 1: return log-probabilities */
    int top_logprobs; /* alternatives per token, 0 .. 20 */
    int has_seed;
    uint64_t seed;
    int stop_at_bos;  /* strix: BOS ends the text as EOS does (default 1) */
    int ignore_eos;
    /* strix: skip_layers, the blocks every token of the request skips
     * (each in [0, n_layer), not all of them; duplicates allowed) */
    int *skip_layers;
    int n_skip_layers;
    /* strix: speculative {"ngram": N, "max": K}: prompt-lookup drafts of up
     * to K tokens (the continuation of the last N tokens' latest earlier
     * occurrence), checked in the same batched step; 0: off */
    int spec_ngram, spec_max;
    struct strix_sampler_params sp; /* temperature .. logit_bias (owned copy) */
    struct strix_logit_bias *bias;
};

/* Sets *lim to the defaults. */
void req_limits_default(struct req_limits *lim);

/* Parses body[0..len) as a request of this kind. Returns 0 and fills *out,
 * or -1 with *err set (out is then empty and needs no req_free). */
int req_parse(const char *body, size_t len, int kind, const struct req_limits *lim,
              struct req *out, struct api_error *err);
void req_free(struct req *r);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF). */
int req_utf8_valid(const char *s, size_t n);

/* Fills *err (status, type, param, printf message). Returns -1. */
int api_error_set(struct api_error *err, int status, const char *type, const char *param,
                  const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

#endif
