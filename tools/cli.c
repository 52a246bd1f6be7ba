/*
 * cli.c - what the command-line tool's commands share: fatal errors, strict
 * number parsing, the option table, model loading and file reading.
 * Uses only the public header.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("strix: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- strict number parsing ---- */

long parse_long(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        die("%s: '%s' is not an integer in [%ld, %ld]", flag, s, lo, hi);
    return v;
}

unsigned long long parse_u64(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    if (*s == '-')
        die("%s: '%s' is not a non-negative integer", flag, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0')
        die("%s: '%s' is not a non-negative integer", flag, s);
    return v;
}

float parse_float(const char *flag, const char *s, float lo, float hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= lo && v <= hi))
        die("%s: '%s' is not a number in [%g, %g]", flag, s, lo, hi);
    return (float)v;
}

/* ---- options shared by the commands ---- */

/* The bundled model: in the working directory, or beside the executable's
 * parent directory (build/strix -> models/). */
static const char *default_model(void)
{
    static char path[PATH_MAX + 64];
    if (access(DEFAULT_MODEL, R_OK) == 0)
        return DEFAULT_MODEL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
            snprintf(path, sizeof path, "%s/%s", exe, DEFAULT_MODEL);
            if (access(path, R_OK) == 0)
                return path;
        }
    }
    return DEFAULT_MODEL;
}

static const char *need_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        die("%s needs a value", argv[*i]);
    return argv[++*i];
}

/* The options every command may take; each command names the keys it allows. */
enum opt_kind { OPT_STR, OPT_INT, OPT_FLOAT, OPT_U64, OPT_FLAG };

struct opt_def {
    const char *key;   /* the name a command lists in `allowed` */
    const char *flags; /* spellings, separated by '|' */
    enum opt_kind kind;
    size_t off; /* of the field in struct opts */
    double lo, hi;
};

#define F(field) offsetof(struct opts, field)
static const struct opt_def opt_defs[] = {
    {"m", "-m|--model", OPT_STR, F(model), 0, 0},
    {"vocab", "--vocab|-z", OPT_STR, F(vocab), 0, 0},
    {"p", "-p|--prompt", OPT_STR, F(prompt), 0, 0},
    {"f", "-f|--file", OPT_STR, F(file), 0, 0},
    {"o", "-o|--output", OPT_STR, F(out), 0, 0},
    {"type", "--type", OPT_STR, F(type), 0, 0},
    {"n", "-n|--n-predict", OPT_INT, F(n_predict), -1, 1 << 24},
    {"t", "-t|--threads", OPT_INT, F(n_threads), 1, 1024},
    {"c", "-c|--ctx-size", OPT_INT, F(n_ctx), 1, 1 << 24},
    {"temp", "--temp", OPT_FLOAT, F(sp.temperature), 0, 100},
    {"top-k", "--top-k", OPT_INT, F(sp.top_k), 0, INT_MAX},
    {"top-p", "--top-p", OPT_FLOAT, F(sp.top_p), 0, 1},
    {"min-p", "--min-p", OPT_FLOAT, F(sp.min_p), 0, 1},
    {"rp", "--repeat-penalty", OPT_FLOAT, F(sp.repeat_penalty), 0.01, 100},
    {"rln", "--repeat-last-n", OPT_INT, F(sp.repeat_last_n), 0, 1 << 20},
    {"seed", "--seed|-s", OPT_U64, F(sp.seed), 0, 0},
    {"freq", "--frequency-penalty", OPT_FLOAT, F(sp.frequency_penalty), -10, 10},
    {"pres", "--presence-penalty", OPT_FLOAT, F(sp.presence_penalty), -10, 10},
    {"typical", "--typical", OPT_FLOAT, F(sp.typical_p), 0, 1},
    {"mirostat", "--mirostat", OPT_INT, F(sp.mirostat), 0, 2},
    {"mirostat-lr", "--mirostat-lr", OPT_FLOAT, F(sp.mirostat_eta), 0, 1},
    {"mirostat-ent", "--mirostat-ent", OPT_FLOAT, F(sp.mirostat_tau), 0, 100},
    {"samplers", "--samplers", OPT_STR, F(samplers), 0, 0},
    {"logit-bias", "--logit-bias|-l", OPT_STR, F(logit_bias), 0, 0},
    {"n-probs", "--n-probs", OPT_INT, F(n_probs), 0, 1000},
    {"stop", "--stop", OPT_STR, F(stop), 0, 0},
    {"beams", "--beams", OPT_INT, F(beams), 1, STRIX_SEQ_MAX / 2},
    {"n-best", "--n-best", OPT_INT, F(n_best), 1, STRIX_SEQ_MAX / 2},
    {"length-penalty", "--length-penalty", OPT_FLOAT, F(length_penalty), 0, 10},
    {"kl-save", "--kl-save", OPT_STR, F(kl_save), 0, 0},
    {"kl-base", "--kl-base", OPT_STR, F(kl_base), 0, 0},
    {"stride", "--stride", OPT_INT, F(stride), 0, 1 << 24},
    {"sys", "--system|-sys", OPT_STR, F(system), 0, 0},
    {"tmpl", "--chat-template", OPT_STR, F(chat_template), 0, 0},
    {"ids", "--ids", OPT_FLAG, F(ids), 0, 0},
    {"no-bos", "--no-bos", OPT_FLAG, F(no_bos), 0, 0},
    {"parse-special", "--parse-special", OPT_FLAG, F(parse_special), 0, 0},
    {"no-stop-bos", "--no-stop-bos", OPT_FLAG, F(no_stop_bos), 0, 0},
    {"pure", "--pure", OPT_FLAG, F(pure), 0, 0},
    {"dim", "--dim", OPT_INT, F(synth.n_embd), 1, 1 << 20},
    {"ff", "--ff", OPT_INT, F(synth.n_ff), 1, 1 << 20},
    {"layers", "--layers", OPT_INT, F(synth.n_layer), 1, 4096},
    {"heads", "--heads", OPT_INT, F(synth.n_head), 1, 1 << 16},
    {"kv-heads", "--kv-heads", OPT_INT, F(synth.n_head_kv), 1, 1 << 16},
    {"arch", "--arch", OPT_STR, F(synth.arch), 0, 0},
    {"rot", "--rot", OPT_INT, F(synth.n_rot), 0, 1 << 16},
    {"experts", "--experts", OPT_INT, F(synth.n_expert), 0, 1024},
    {"experts-used", "--experts-used", OPT_INT, F(synth.n_expert_used), 0, 1024},
    {"swa", "--swa", OPT_INT, F(synth.n_swa), 0, 1 << 24},
    {"rope-scaling", "--rope-scaling", OPT_STR, F(synth.rope_scaling), 0, 0},
    {"rope-scale", "--rope-scale", OPT_FLOAT, F(synth.rope_scale), 1, 1e6},
    {"alibi-bias", "--alibi-bias", OPT_FLOAT, F(synth.alibi_max_bias), 0, 1000},
    {"expert-stats", "--expert-stats", OPT_FLAG, F(expert_stats), 0, 0},
};
#undef F

static int flag_matches(const char *flags, const char *arg)
{
    const size_t n = strlen(arg);
    for (const char *p = flags; *p;) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, arg, n) == 0)
            return 1;
        p += len + (bar ? 1 : 0);
    }
    return 0;
}

void parse_opts(int argc, char **argv, struct opts *o, const char *allowed)
{
    memset(o, 0, sizeof *o);
    o->command = argv[1];
    o->n_predict = -1; /* until EOS or a full context */
    o->synth = strix_synth_default_params();
    o->sp = strix_sampler_default_params(); /* llama.cpp's: temp 0.8, top-k 40, ... */
    o->sp.seed = (uint64_t)time(NULL);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const struct opt_def *d = NULL;
        for (size_t k = 0; k < sizeof opt_defs / sizeof opt_defs[0] && !d; k++)
            if (flag_matches(opt_defs[k].flags, a))
                d = &opt_defs[k];
        if (!d)
            die("unknown option '%s' (see strix --help)", a);
        char pat[32];
        snprintf(pat, sizeof pat, " %s ", d->key);
        if (!strstr(allowed, pat))
            die("option '%s' does not apply to '%s'", a, argv[1]);
        void *field = (char *)o + d->off;
        switch (d->kind) {
        case OPT_STR: *(const char **)field = need_arg(argc, argv, &i); break;
        case OPT_INT:
            *(int *)field = (int)parse_long(a, need_arg(argc, argv, &i), (long)d->lo, (long)d->hi);
            break;
        case OPT_FLOAT:
            *(float *)field = parse_float(a, need_arg(argc, argv, &i), (float)d->lo, (float)d->hi);
            break;
        case OPT_U64:
            *(uint64_t *)field = parse_u64(a, need_arg(argc, argv, &i));
            o->seed_given = 1;
            break;
        case OPT_FLAG: *(int *)field = 1; break;
        }
    }
    o->stop_bos = !o->no_stop_bos;
    if (!o->model)
        o->model = default_model();
}

strix_model *load_model(const struct opts *o, int vocab_only)
{
    struct strix_model_params mp = strix_model_default_params();
    mp.vocab_path = o->vocab;
    mp.vocab_only = vocab_only;
    strix_model *m;
    strix_error err;
    if (strix_model_load(o->model, &mp, &m, &err))
        die("%s", err.msg);
    if (strix_vocab_size(m) == 0 && strcmp(o->command, "info") != 0 &&
        strcmp(o->command, "bench") != 0)
        die("%s has no vocabulary: pass its tokenizer with --vocab TOKENIZER.bin", o->model);
    return m;
}

/* Tokenizes text with a buffer that grows to fit. Caller frees. */
strix_token *tokenize(const strix_model *m, const char *text, size_t len, int flags, int *n)
{
    int cap = (int)(len > (size_t)INT_MAX / 2 ? INT_MAX / 2 : len) + 8;
    strix_token *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids)
        die("out of memory");
    strix_error err;
    int rc = strix_tokenize_ex(m, text, len, flags, ids, cap, n, &err);
    if (rc == STRIX_ERR_ARG && *n > cap) {
        cap = *n;
        ids = realloc(ids, (size_t)cap * sizeof *ids);
        if (!ids)
            die("out of memory");
        rc = strix_tokenize_ex(m, text, len, flags, ids, cap, n, &err);
    }
    if (rc)
        die("tokenize: %s", err.msg);
    return ids;
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            die("out of memory");
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f))
        die("cannot read '%s'", path);
    fclose(f);
    *len = n;
    return buf;
}
