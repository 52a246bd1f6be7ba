/*
 * cli.h - helpers shared by the commands of the strix tool (tools/cli.c).
 * Every function here either succeeds or ends the program through die():
 * fatal conditions are allowed in tools, never in src/.
 */
#ifndef STRIX_CLI_H
#define STRIX_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "strix.h"
#include "strix_dev.h"

/* The model used when no -m is given. */
#define DEFAULT_MODEL "models/stories260K.gguf"

#if defined(__GNUC__)
#define CLI_NORETURN __attribute__((noreturn, format(printf, 1, 2)))
#else
#define CLI_NORETURN
/* Commands that live in their own files. */
int cmd_bench(int argc, char **argv);

#endif

/* Prints "strix: <message>" on stderr and exits with status 1. */
CLI_NORETURN void die(const char *fmt, ...);
double now(void); /* monotonic seconds */

/* Strict parsing: the whole string must be a number in range, else die(). */
long parse_long(const char *flag, const char *s, long lo, long hi);
unsigned long long parse_u64(const char *flag, const char *s);
float parse_float(const char *flag, const char *s, float lo, float hi);

/* The options of all commands; parse_opts() accepts only the keys listed in
 * `allowed` (" m p n t ", each key surrounded by spaces). */
struct opts {
    const char *command;
    const char *model, *vocab, *prompt, *file, *out, *type;
    int n_predict, n_threads, n_ctx, ids, no_bos, no_stop_bos, stop_bos;
    int seed_given, expert_stats, parse_special;
    int pure; /* quantize --pure */
    /* generation, evaluation and chat (run, ppl, chat) */
    const char *stop, *samplers, *logit_bias, *kl_save, *kl_base, *system, *chat_template;
    int stride, n_probs;
    int beams, n_best; /* run: beam search width and hypotheses shown */
    float length_penalty;
    struct strix_synth_params synth;
    struct strix_sampler_params sp;
};

void parse_opts(int argc, char **argv, struct opts *o, const char *allowed);

/* Loads o->model (and o->vocab); dies with the library's message on error. */
strix_model *load_model(const struct opts *o, int vocab_only);
/* Tokenizes text with a buffer that grows to fit; flags: STRIX_TOKENIZE_*
 * (1 = add BOS). Caller frees. */
strix_token *tokenize(const strix_model *m, const char *text, size_t len, int flags, int *n);
/* Reads a whole file. Caller frees. */
char *read_file(const char *path, size_t *len);

/* tools/sampling.c: --samplers, --logit-bias, --n-probs into o->sp; and the
 * log-probabilities of the last sampled token, one line on stderr. */
void sampling_opts(struct opts *o, int n_vocab);
void print_probs(const strix_model *m, const strix_sampler *s, int n_probs);

/* Commands that live in their own files. */
int cmd_bench(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
