/*
 * cli.h - helpers shared by the commands of the strix tool (tools/cli.c).
 * Every function here either succeeds or ends the program through die():
 * fatal conditions are allowed in tools, never in src/.
 */
#ifndef STRIX_CLI_H
#define STRIX_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "strix.h"
#include "strix_dev.h"

/* The model used when no -m is given: its file name, and where it is looked
 * for (default_model). */
#define DEFAULT_MODEL_NAME "stories260K.gguf"

#if defined(__GNUC__)
#define CLI_NORETURN __attribute__((noreturn, format(printf, 1, 2)))
#else
#define CLI_NORETURN
#endif

/* Prints "strix: <message>" on stderr and exits with status 1. */
CLI_NORETURN void die(const char *fmt, ...);
double now(void); /* monotonic seconds */

/* Strict parsing: the whole string must be a number in range, else die(). */
long parse_long(const char *flag, const char *s, long lo, long hi);
unsigned long long parse_u64(const char *flag, const char *s);
float parse_float(const char *flag, const char *s, float lo, float hi);

/* The bundled model: next to the executable (build tree or installed
 * prefix), then the installed data directory, then the source tree. Dies
 * naming every place tried when none has it. */
const char *default_model(void);

/* Usage of one command (NULL or unknown: every command) on f. */
void usage(const char *command, FILE *f);
/* 1 if arg asks for help (-h, --help). */
int is_help(const char *arg);

/* Dies if `out` exists and is the same file (device and inode, after links)
 * as one of the n inputs (NULL entries and "-" are skipped). */
void refuse_overwrite(const char *out, const char *const *inputs, int n);

#define OPT_LIST_MAX 64 /* repeated options: --stop, --logit-bias */

/* The options of all commands; parse_opts() accepts only the keys listed in
 * `allowed` (" m p n t ", each key surrounded by spaces). */
struct opts {
    const char *command;
    const char *model, *vocab, *prompt, *file, *out, *type;
    int n_predict, n_threads, n_ctx, ids, no_bos, no_stop_bos, stop_bos;
    int seed_given, expert_stats, parse_special;
    int pure; /* quantize --pure */
    uint64_t given[2]; /* bit k: option opt_defs[k] appeared (opt_given) */
    /* generation, evaluation and chat (run, ppl, chat); --stop and
     * --logit-bias accumulate when repeated */
    const char *stops[OPT_LIST_MAX], *logit_biases[OPT_LIST_MAX];
    int n_stops, n_logit_biases;
    const char *samplers, *kl_save, *kl_base, *system, *chat_template;
    int stride, n_probs;
    int beams, n_best; /* run: beam search width and hypotheses shown */
    float length_penalty;
    const char *draft;         /* run: speculative decoding with this draft model */
    int draft_max, draft_ngram; /* ... drafting up to K tokens; n-gram lookup of N */
    const char *draft_quant, *draft_skip; /* self-drafts: a quantized copy; skipped layers */
    const char *draft_lossy;              /* lenient | top-p | near-max */
    float draft_knob, draft_hmin, draft_budget, draft_pmin;
    int draft_window, draft_adaptive;
    const char *task; /* eval: gsm8k */
    int limit, shots, compare;
    struct strix_synth_params synth;
    struct strix_sampler_params sp;
    /* dynamic depth (run, ppl, bench, router) */
    const char *router, *skip_layers;
    float keep, skip_random, lr, penalty;
    int epochs, window, json;
    int lora_rank, freeze_router; /* router train: adapters; only they trained */
    const char *lora_out;         /* router train: the adapted model */
    float lora_lr;                /* router train: the adapters' learning rate */
    /* analysis and pruning (analyze, prune) */
    const char *csv, *svg, *method, *pattern, *drop_layers, *linearize, *criterion;
    float sparsity;
    int max_tokens;
    /* KV cache element types (-ctk, -ctv; every command that decodes) */
    const char *cache_type_k, *cache_type_v;
};

/* Without --seed (or with --seed -1) the seed comes from the OS. -h and
 * --help print the command's usage and exit 0. */
void parse_opts(int argc, char **argv, struct opts *o, const char *allowed);
/* 1 if the option with this key was given. */
int opt_given(const struct opts *o, const char *key);
/* -ctk / -ctv into the context params (dies naming the valid types on a bad
 * name); CACHE_OPTS are their keys for parse_opts. */
#define CACHE_OPTS " ctk ctv "
void cache_types_apply(const struct opts *o, struct strix_context_params *cp);

/* Loads o->model (and o->vocab); dies with the library's message on error. */
strix_model *load_model(const struct opts *o, int vocab_only);
/* Tokenizes text with a buffer that grows to fit; flags: STRIX_TOKENIZE_*
 * (1 = add BOS). Caller frees. */
strix_token *tokenize(const strix_model *m, const char *text, size_t len, int flags, int *n);
/* Reads a whole file ("-": standard input), NUL-terminated. Caller frees. */
char *read_file(const char *path, size_t *len);

/* tools/sampling.c: --samplers, --logit-bias, --n-probs into o->sp; and the
 * log-probabilities of the last sampled token, one line on stderr. */
void sampling_opts(struct opts *o, int n_vocab);
/* "seed N" on stderr when the sampling is random, so a sample can be
 * reproduced with --seed N. */
void print_seed(const struct opts *o);
void print_probs(const strix_model *m, const strix_sampler *s, int n_probs);

/* Commands that live in their own files. */
int cmd_bench(int argc, char **argv);
/* bwprobe.c: `strix bench --bandwidth`, a streaming read of a buffer of mib
 * MiB by each thread count; a table (or JSON rows) on stdout. */
void bwprobe_run(size_t mib, const long *threads, int n_threads_list, int reps, int json);
int cmd_ppl(int argc, char **argv);
int ppl_window(const char *kl_base, int fallback);
void ppl_print(const struct opts *o, const struct strix_ppl_result *r, size_t len, int n_tok);
int cmd_chat(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* tools/serve/server.c */
/* How `strix serve` opens its model and its context from the model path and
 * the server's context parameters (which it may change); NULL (the
 * default): strix_model_load, then strix_context_create. strix-mpi sets it
 * to open rank 0's stage of a pipeline (tools/mpi/serve.c). Returns a
 * status, with err set. */
extern int (*serve_open_hook)(const char *path, struct strix_context_params *cp,
                              strix_model **model, strix_context **ctx, strix_error *err);
int cmd_eval(int argc, char **argv);
/* tools/strix.c: the text of toks as generation shows it, each piece after
 * the token before it (prev: the last prompt token). Caller frees. */
char *tokens_text(const strix_model *m, strix_token prev, const strix_token *toks, int n);

/* tools/spec.c: speculative decoding from the options (--draft FILE,
 * --draft-quant TYPE, --draft-skip LAYERS|auto, --draft-ngram N and the
 * lossy and K options). spec_setup makes the draft for target m and its
 * context (calibration for --draft-skip auto: calib[0..n_calib)); it dies
 * on bad options with a one-line message. */
struct spec_setup {
    strix_model *dm;       /* a loaded or quantized draft model, or NULL */
    strix_context *dctx;   /* its context (or the target's second one), or NULL */
    strix_draft *d;
    struct strix_spec_params pp;
};
int spec_wanted(const struct opts *o); /* 1 if a draft option was given */
void spec_check_opts(const struct opts *o);
void spec_setup(const struct opts *o, strix_model *m, strix_context *ctx, strix_pool *pool,
                const strix_token *calib, int n_calib, struct spec_setup *s);
void spec_free(struct spec_setup *s);
/* The figures of one run on stderr: counts, "acceptance NN.N%", mean
 * accepted length, the costs of a draft step and of the verify in plain
 * target steps (t_step: spec_step_time) and the speedup Leviathan et al.'s
 * formula predicts with them for K drafts, the target's perplexity of the
 * output, relaxed acceptances and mean KL when lossy, tokens/s. */
void spec_report(const struct strix_spec_stats *st, int k, double seconds, double t_step);
/* Seconds of one plain one-token decode of ctx's target after its sequence
 * 0 (median of 3, rolled back); 0 if there is no room. */
double spec_step_time(strix_context *ctx, strix_token tok);

int cmd_router(int argc, char **argv);

/* tools/router.c: --router R [--keep X] | --skip-random KEEP [--seed S] |
 * --skip-layers LIST for run, ppl and bench. route_wanted: whether one was
 * given (the context then grows its cache: kv_grow); route_apply sets it on
 * ctx (accounting on, even with none); the router is returned for freeing.
 * route_report prints the executed fraction, FLOPs and KV bytes on stderr. */
int route_wanted(const struct opts *o);
strix_router *route_apply(const struct opts *o, const strix_model *m, strix_context *ctx);
void route_report(const strix_context *ctx, const char *what);
/* The executed fraction asked for by route_apply's options (1: none). */
double route_requested_keep(void);

int cmd_analyze(int argc, char **argv); /* analyze.c */
int cmd_prune(int argc, char **argv);   /* prune.c */
/* analyze.c: strix_analyze over the text file at path with a progress bar;
 * fills layers (4096 entries) and embd (may be NULL); returns n_layer. */
int analysis_run(const strix_model *m, const char *path, int n_ctx, int max_tokens,
                 int n_threads, struct strix_layer_stats *layers, struct strix_layer_stats *embd,
                 int *n_tokens);

/* tools/mpi/pipeline.c, in the MPI build (strix-mpi) only: runs `run` as a
 * pipeline over the ranks of an MPI job and returns 1 with the exit status
 * in *rc, or returns 0 for the commands that run in one process. */
int mpi_main(int argc, char **argv, int *rc);
/* What `strix info` says about MPI support. */
const char *mpi_support(void);

#endif
