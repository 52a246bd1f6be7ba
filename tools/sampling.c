/*
 * sampling.c - the sampling and generation flags that run and chat share:
 * --samplers, --logit-bias, --n-probs and --stop turned into library
 * parameters, and the printing of log-probabilities.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "ID+BIAS", "ID-BIAS" or "ID=BIAS", comma-separated; BIAS may be inf. */
static int parse_bias(const char *s, struct strix_logit_bias *out, int cap, int n_vocab)
{
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        const long id = strtol(s, &end, 10);
        if (end == s || errno || id < 0 || id >= n_vocab || !strchr("+-=", *end) || !end[0])
            die("--logit-bias: expected TOKEN+BIAS, TOKEN-BIAS or TOKEN=BIAS, got '%s'", s);
        const char *b = *end == '=' ? end + 1 : end;
        const double v = strtod(b, &end);
        if (end == b || isnan(v) || (*end && *end != ','))
            die("--logit-bias: bad bias in '%s'", s);
        if (n == cap)
            die("--logit-bias: more than 256 entries");
        out[n].token = (strix_token)id;
        out[n].bias = (float)v;
        n++;
        s = *end ? end + 1 : end;
    }
    return n;
}

void sampling_opts(struct opts *o, int n_vocab)
{
    static struct strix_logit_bias bias[256];
    o->sp.order = o->samplers;
    o->sp.n_probs = o->n_probs;
    int n = 0;
    for (int i = 0; i < o->n_logit_biases; i++) /* repeated flags add up, as llama.cpp's */
        n += parse_bias(o->logit_biases[i], bias + n, 256 - n, n_vocab);
    if (n > 0) {
        o->sp.logit_bias = bias;
        o->sp.n_logit_bias = n;
    }
}

void print_seed(const struct opts *o)
{
    if (o->sp.temperature > 0.0f)
        fprintf(stderr, "seed %llu\n", (unsigned long long)o->sp.seed);
}

static void put_piece(const strix_model *m, strix_token id)
{
    char buf[64];
    int n = strix_token_to_text(m, -1, id, buf, (int)sizeof buf);
    n = n < 0 ? 0 : n > (int)sizeof buf ? (int)sizeof buf : n;
    fputc('\'', stderr);
    for (int i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)buf[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c < 0x20 || c == '\'' || c == '\\')
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputc('\'', stderr);
}

void print_probs(const strix_model *m, const strix_sampler *s, int n_probs)
{
    struct strix_token_prob chosen, top[1000];
    const int n = strix_sampler_last_probs(s, &chosen, top, n_probs < 1000 ? n_probs : 1000);
    fprintf(stderr, "logprob %d ", chosen.id);
    put_piece(m, chosen.id);
    fprintf(stderr, " %.4f |", chosen.logprob);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, " %d ", top[i].id);
        put_piece(m, top[i].id);
        fprintf(stderr, " %.4f", top[i].logprob);
    }
    fputc('\n', stderr);
}
