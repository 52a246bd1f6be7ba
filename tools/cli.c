/*
 * cli.c - what the command-line tool's commands share: fatal errors, strict
 * number parsing, the option table, model loading and file reading.
 * Uses only the public header.
 */
#define _GNU_SOURCE /* getrandom */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int (*serve_open_hook)(const char *path, struct strix_context_params *cp, strix_model **model,
                       strix_context **ctx, strix_error *err);

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

/* ---- the bundled model ---- */

#ifndef STRIX_DATADIR
#define STRIX_DATADIR "/usr/local/share/strix" /* the Makefile passes $(PREFIX)/share/strix */
#endif
#ifndef STRIX_SRCDIR
#define STRIX_SRCDIR "." /* the Makefile passes the source tree */
#endif

const char *default_model(void)
{
    static char tried[8][PATH_MAX + 64];
    int n = 0;
    /* beside the executable: build/strix, build/asan/strix -> models/;
     * PREFIX/bin/strix -> PREFIX/share/strix/ */
    char exe[PATH_MAX];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
            snprintf(tried[n++], sizeof tried[0], "%s/models/%s", exe, DEFAULT_MODEL_NAME);
            snprintf(tried[n++], sizeof tried[0], "%s/share/strix/%s", exe, DEFAULT_MODEL_NAME);
        }
    }
    snprintf(tried[n++], sizeof tried[0], "%s/%s", STRIX_DATADIR, DEFAULT_MODEL_NAME);
    snprintf(tried[n++], sizeof tried[0], "%s/models/%s", STRIX_SRCDIR, DEFAULT_MODEL_NAME);
    for (int i = 0; i < n; i++) {
        if (access(tried[i], R_OK) == 0)
            return tried[i];
    }
    char list[8 * (PATH_MAX + 64)];
    size_t at = 0;
    list[0] = '\0';
    for (int i = 0; i < n && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", tried[i]);
    die("no -m MODEL given and the bundled %s is in none of: %s", DEFAULT_MODEL_NAME, list);
}

/* ---- usage ---- */

static const struct {
    const char *command, *text;
} usages[] = {
    {"run", "  run       [-m MODEL] [--vocab TOKENIZER.bin] [-p PROMPT | -f FILE|-] [-n N]\n"
            "            [-t THREADS] [-c N_CTX] [--seed S|-1] [--temp T] [--top-k K]\n"
            "            [--top-p P] [--min-p P] [--typical P] [--repeat-penalty R]\n"
            "            [--repeat-last-n N] [--frequency-penalty F] [--presence-penalty F]\n"
            "            [--mirostat 2 [--mirostat-ent TAU] [--mirostat-lr ETA]]\n"
            "            [--samplers \"penalties;top_k;typical_p;top_p;min_p;temperature\"]\n"
            "            [--logit-bias ID+BIAS,...]... [--stop TEXT]... [--n-probs N]\n"
            "            [--no-stop-bos] [--parse-special] [--expert-stats]\n"
            "            [--beams W [--n-best K] [--length-penalty L]]   (beam search)\n"
            "            [--draft FILE | --draft-quant TYPE | --draft-skip LAYERS|auto |\n"
            "             --draft-ngram N] [--draft-max K] [--draft-adaptive] [--draft-p-min P]\n"
            "            [--draft-lossy lenient|top-p|near-max --draft-knob X\n"
            "             [--draft-entropy-min H] [--draft-budget NATS --draft-window W]]\n"
            "            (speculative)\n"
            "            [--router R.gguf [--keep X] | --skip-random KEEP | --skip-layers L,L]\n"
            "            (dynamic depth: per-token layer skipping; also for ppl and bench)\n"},
    {"eval", "  eval      [-m MODEL] --task gsm8k -f FILE.jsonl [--limit N] [--shots K] [-n N]\n"
             "            [-c N_CTX] [-t THREADS] [--seed S] [--temp T] [sampling options]\n"
             "            [draft options as for run] [--compare]\n"
             "            (accuracy, tokens/s, acceptance; --compare: plain, exact and lossy\n"
             "             side by side with answer agreement with exact decoding)\n"},
    {"tokenize", "  tokenize  [-m MODEL] [--vocab TOKENIZER.bin] (-p TEXT | -f FILE|-) [--ids]\n"
                 "            [--no-bos] [--parse-special]\n"},
    {"ppl", "  ppl       [-m MODEL] [--vocab TOKENIZER.bin] -f TEXT|- [-c N_CTX] [--stride S]\n"
            "            [-t THREADS] [--kl-save FILE] [--json] [--router R.gguf [--keep X] |\n"
            "            --skip-random KEEP [--seed S] | --skip-layers L,L]\n"
            "  ppl       [-m MODEL] [--vocab TOKENIZER.bin] --kl-base FILE [-f TEXT] [-t THREADS]\n"
            "            (cross-entropy, perplexity, bits per byte; KL divergence from a base,\n"
            "            whose window and tokens are used)\n"},
    {"chat", "  chat      [-m MODEL] [--vocab TOKENIZER.bin] [--system TEXT] [--chat-template NAME]\n"
             "            [-n N] [-t THREADS] [-c N_CTX] [--stop TEXT]... [--no-stop-bos]\n"
             "            [sampling options of run]\n"},
    {"info", "  info      [-m MODEL] [--vocab TOKENIZER.bin] [-c N_CTX (cache of such a context)]\n"},
    {"router", "  router    train -m MODEL -f TEXT -o R.gguf [--keep 0.6] [--epochs E] [--lr LR]\n"
               "            [--window W] [-t THREADS] [--seed S]   (decision modules, base frozen)\n"
               "            [--skip-layers L,L|none]   (warm start from that static removal)\n"
               "            [--penalty P]   (weight of the executed-fraction penalty, default 20)\n"
               "            [--lora RANK --lora-out ADAPTED.gguf [--lora-lr LR]]   (adapters on the\n"
               "            base weights, trained with the modules; the adapted model is written,\n"
               "            -o is for it)\n"
               "            [--router R0.gguf]   (start from that router instead)\n"
               "            [--freeze-router]   (with --lora: the decisions of --skip-layers or\n"
               "            --router exactly, only the adapters trained)\n"
               "  router    map -m MODEL --router R.gguf -f TEXT -o MAP.svg [--keep X]\n"
               "            (which layers each token ran: SVG heat map, and MAP.csv)\n"},
    {"convert", "  convert   [-m MODEL] [--vocab TOKENIZER.bin] -o OUT.gguf [--type TYPE] [-t THREADS]\n"
                "            (TYPE: any of quantize's)\n"},
    {"synth", "  synth     [-m VOCAB_MODEL] -o OUT.gguf [--dim N] [--ff N] [--layers N] [--heads N]\n"
              "            [--kv-heads N] [-c N_CTX] [--seed S|-1] [--type TYPE] [-t THREADS]\n"
              "            [--arch A] [--rot N] [--experts N --experts-used K] [--swa N]\n"
              "            [--rope-scaling linear|yarn --rope-scale F] [--alibi-bias B (mpt)]\n"
              "            [--ff-exp N] deepseek2: [--lora-q N] [--lora-kv N] [--head-k N]\n"
              "            [--head-v N] [--dense-lead N] [--experts-shared N] [--expert-groups N\n"
              "            --groups-used N] [--expert-sigmoid] [--expert-bias] [--expert-norm]\n"
              "            [--expert-scale F] mamba: [--ssm-conv N] [--ssm-state N] [--ssm-dt-rank N]\n"
              "            retnet: [--head-k D_K] [--head-v D_V] (default n_embd/heads, 2 D_K)\n"
              "            yoco: [--head-k D] (half the layers self-decoder)\n"
              "            [--ffn mlp|peer|kan] peer: [--peer-keys N] [--peer-heads N] [--peer-topk K]\n"
              "            [--peer-key-len N] [--peer-sigmoid] kan: [--kan-grid G] [--kan-order K]\n"
              "            [--kan-range R] (KAN's hidden width is --ff)\n"
              "            (random weights; TYPE: any of quantize's)\n"},
    {"quantize", "  quantize  IN OUT.gguf TYPE [--vocab TOKENIZER.bin] [-t THREADS] [--pure]\n"
                 "            TYPE (any case): F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K\n"
                 "            Q4_K_M Q5_K_M\n"},
    {"analyze", "  analyze   [-m MODEL] -f TEXT -o REPORT.json [-c N_CTX] [--max-tokens T] [-t THREADS]\n"
                "            [--csv FILE] [--svg DIR]   (per layer: linearity with and without\n"
                "            the residual, cosine, anisotropy, TwoNN, PCA-90; and the embeddings)\n"},
    {"prune", "  prune     [-m MODEL] -o OUT.gguf [--method magnitude|wanda (--sparsity S |\n"
              "            --pattern N:M)] [--drop-layers LIST|auto:K] [--linearize LIST|auto:K]\n"
              "            [--criterion linearity|cosine] [-f CALIB_TEXT] [-c N_CTX]\n"
              "            [--max-tokens T] [-t THREADS]   (LIST: 3,5,7-9; wanda, auto and\n"
              "            --linearize need -f)\n"},
    {"bench", "  bench     [-m MODEL[,MODEL]]... [-p N[,N]] [-n N[,N]] [-t T[,T]] [-r REPS]\n"
              "            [-o md|json] [--vocab TOKENIZER.bin]   (like llama-bench: pp N, tg N,\n"
              "            median t/s)\n"
              "            [-npl B[,B] [-d DEPTH]]   (like llama-batched-bench: B sequences at\n"
              "            depth DEPTH each decode -n tokens, one per step; aggregate t/s)\n"
              "            --bandwidth [--bw-mib N] [-t T[,T]] [-r REPS]   (streaming read GB/s)\n"},
    {"serve", "  serve     [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [-c N_CTX]\n"
              "            [-t THREADS] [-b BATCH] [--api-key KEY] [--chat-template NAME]\n"
              "            [--alias NAME] [--queue N] [--max-body BYTES] [--timeout S]\n"
              "            [--drain-timeout S] [--step-delay-ms MS (debugging: slower steps)]\n"
              "            (an OpenAI-compatible HTTP server with\n"
              "            continuous batching and a chat page at /)\n"},
};

void usage(const char *command, FILE *f)
{
    const size_t n = sizeof usages / sizeof usages[0];
    for (size_t i = 0; command && i < n; i++) {
        if (strcmp(command, usages[i].command) == 0) {
            fprintf(f, "usage: strix %s\n%s", command, usages[i].text);
            return;
        }
    }
    fputs("usage: strix COMMAND [options]   (strix COMMAND --help: one command)\n", f);
    for (size_t i = 0; i < n; i++)
        fputs(usages[i].text, f);
    fprintf(f, "Without -m, the bundled model %s is used (found beside the executable, in\n"
               "%s or in the source tree). Sampling defaults (llama.cpp's): --temp 0.8\n"
               "--top-k 40 --top-p 0.95 --min-p 0.05 and a random seed (printed on stderr;\n"
               "--seed -1 also asks for one); --temp 0 is greedy. -n -1 (the default)\n"
               "generates until EOS, BOS (story models) or a full context. Files written\n"
               "(-o, OUT.gguf, --kl-save) replace the target whole, never an input.\n"
               "run, chat, ppl, bench, eval and info take -ctk|--cache-type-k TYPE and\n"
               "-ctv|--cache-type-v TYPE: the KV cache's keys and values as f32 (default),\n"
               "f16, q8_0 or q4_0 (the last two need a head size that is a multiple of 32).\n",
            DEFAULT_MODEL_NAME, STRIX_DATADIR);
}

int is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

void refuse_overwrite(const char *out, const char *const *inputs, int n)
{
    struct stat so, si;
    if (!out || stat(out, &so) != 0)
        return;
    for (int i = 0; i < n; i++) {
        if (!inputs[i] || strcmp(inputs[i], "-") == 0 || stat(inputs[i], &si) != 0)
            continue;
        if (so.st_dev == si.st_dev && so.st_ino == si.st_ino)
            die("refusing to write '%s': it is the input '%s' (choose another output file)", out,
                inputs[i]);
    }
}

/* ---- options shared by the commands ---- */

static const char *need_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        die("%s needs a value", argv[*i]);
    return argv[++*i];
}

/* The options every command may take; each command names the keys it allows. */
enum opt_kind { OPT_STR, OPT_INT, OPT_FLOAT, OPT_SEED, OPT_FLAG, OPT_LIST };

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
    {"ctk", "-ctk|--cache-type-k", OPT_STR, F(cache_type_k), 0, 0},
    {"ctv", "-ctv|--cache-type-v", OPT_STR, F(cache_type_v), 0, 0},
    {"temp", "--temp", OPT_FLOAT, F(sp.temperature), 0, 100},
    {"top-k", "--top-k", OPT_INT, F(sp.top_k), 0, INT_MAX},
    {"top-p", "--top-p", OPT_FLOAT, F(sp.top_p), 0, 1},
    {"min-p", "--min-p", OPT_FLOAT, F(sp.min_p), 0, 1},
    {"rp", "--repeat-penalty", OPT_FLOAT, F(sp.repeat_penalty), 0.01, 100},
    {"rln", "--repeat-last-n", OPT_INT, F(sp.repeat_last_n), 0, 1 << 20},
    {"seed", "--seed|-s", OPT_SEED, F(sp.seed), 0, 0},
    {"freq", "--frequency-penalty", OPT_FLOAT, F(sp.frequency_penalty), -10, 10},
    {"pres", "--presence-penalty", OPT_FLOAT, F(sp.presence_penalty), -10, 10},
    {"typical", "--typical", OPT_FLOAT, F(sp.typical_p), 0, 1},
    {"mirostat", "--mirostat", OPT_INT, F(sp.mirostat), 0, 2},
    {"mirostat-lr", "--mirostat-lr", OPT_FLOAT, F(sp.mirostat_eta), 0, 1},
    {"mirostat-ent", "--mirostat-ent", OPT_FLOAT, F(sp.mirostat_tau), 0, 100},
    {"samplers", "--samplers", OPT_STR, F(samplers), 0, 0},
    {"logit-bias", "--logit-bias|-l", OPT_LIST, F(logit_biases), 0, 0},
    {"n-probs", "--n-probs", OPT_INT, F(n_probs), 0, 1000},
    {"stop", "--stop", OPT_LIST, F(stops), 0, 0},
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
    {"ff-exp", "--ff-exp", OPT_INT, F(synth.n_ff_exp), 1, 1 << 20},
    {"lora-q", "--lora-q", OPT_INT, F(synth.n_lora_q), 0, 1 << 20},
    {"lora-kv", "--lora-kv", OPT_INT, F(synth.n_lora_kv), 1, 1 << 20},
    {"head-k", "--head-k", OPT_INT, F(synth.head_k_mla), 1, 1 << 16},
    {"head-v", "--head-v", OPT_INT, F(synth.head_v_mla), 1, 1 << 16},
    {"dense-lead", "--dense-lead", OPT_INT, F(synth.n_dense_lead), 0, 4096},
    {"experts-shared", "--experts-shared", OPT_INT, F(synth.n_expert_shared), 1, 1024},
    {"expert-groups", "--expert-groups", OPT_INT, F(synth.n_expert_groups), 0, 1024},
    {"groups-used", "--groups-used", OPT_INT, F(synth.n_group_used), 0, 1024},
    {"expert-sigmoid", "--expert-sigmoid", OPT_FLAG, F(synth.expert_sigmoid), 0, 0},
    {"expert-bias", "--expert-bias", OPT_FLAG, F(synth.expert_probs_bias), 0, 0},
    {"expert-norm", "--expert-norm", OPT_FLAG, F(synth.expert_norm), 0, 0},
    {"expert-scale", "--expert-scale", OPT_FLOAT, F(synth.expert_scale), 0, 1e6},
    {"ssm-conv", "--ssm-conv", OPT_INT, F(synth.ssm_d_conv), 1, 64},
    {"ssm-state", "--ssm-state", OPT_INT, F(synth.ssm_d_state), 1, 1024},
    {"ssm-dt-rank", "--ssm-dt-rank", OPT_INT, F(synth.ssm_dt_rank), 1, 1 << 20},
    {"ffn", "--ffn", OPT_STR, F(synth.ffn_kind), 0, 0},
    {"peer-keys", "--peer-keys", OPT_INT, F(synth.peer_n_keys), 1, 4096},
    {"peer-heads", "--peer-heads", OPT_INT, F(synth.peer_n_head), 1, 64},
    {"peer-topk", "--peer-topk", OPT_INT, F(synth.peer_top_k), 1, 64},
    {"peer-key-len", "--peer-key-len", OPT_INT, F(synth.peer_d_key), 2, 4096},
    {"peer-sigmoid", "--peer-sigmoid", OPT_FLAG, F(synth.peer_sigmoid), 0, 0},
    {"kan-grid", "--kan-grid", OPT_INT, F(synth.kan_grid), 1, 256},
    {"kan-order", "--kan-order", OPT_INT, F(synth.kan_order), 1, 8},
    {"kan-range", "--kan-range", OPT_FLOAT, F(synth.kan_range), 1e-3, 1e6},
    {"expert-stats", "--expert-stats", OPT_FLAG, F(expert_stats), 0, 0},
    {"draft", "--draft", OPT_STR, F(draft), 0, 0},
    {"draft-max", "--draft-max", OPT_INT, F(draft_max), 1, STRIX_SPEC_DRAFT_MAX},
    {"draft-ngram", "--draft-ngram", OPT_INT, F(draft_ngram), 1, 16},
    {"draft-quant", "--draft-quant", OPT_STR, F(draft_quant), 0, 0},
    {"draft-skip", "--draft-skip", OPT_STR, F(draft_skip), 0, 0},
    {"draft-lossy", "--draft-lossy", OPT_STR, F(draft_lossy), 0, 0},
    {"draft-knob", "--draft-knob", OPT_FLOAT, F(draft_knob), 0, 1},
    {"draft-entropy-min", "--draft-entropy-min", OPT_FLOAT, F(draft_hmin), 0, 100},
    {"draft-budget", "--draft-budget", OPT_FLOAT, F(draft_budget), 0, 1e6},
    {"draft-window", "--draft-window", OPT_INT, F(draft_window), 1, 1 << 20},
    {"draft-p-min", "--draft-p-min", OPT_FLOAT, F(draft_pmin), 0, 1},
    {"draft-adaptive", "--draft-adaptive", OPT_FLAG, F(draft_adaptive), 0, 0},
    {"task", "--task", OPT_STR, F(task), 0, 0},
    {"limit", "--limit", OPT_INT, F(limit), 1, 1 << 20},
    {"shots", "--shots", OPT_INT, F(shots), 0, 16},
    {"compare", "--compare", OPT_FLAG, F(compare), 0, 0},
    {"router", "--router", OPT_STR, F(router), 0, 0},
    {"keep", "--keep", OPT_FLOAT, F(keep), 0, 1},
    {"skip-random", "--skip-random", OPT_FLOAT, F(skip_random), 0, 1},
    {"skip-layers", "--skip-layers", OPT_STR, F(skip_layers), 0, 0},
    {"epochs", "--epochs", OPT_INT, F(epochs), 1, 100000},
    {"lr", "--lr", OPT_FLOAT, F(lr), 1e-7, 0.5},
    {"penalty", "--penalty", OPT_FLOAT, F(penalty), 0, 1e6},
    {"lora", "--lora", OPT_INT, F(lora_rank), 1, 64},
    {"lora-out", "--lora-out", OPT_STR, F(lora_out), 0, 0},
    {"lora-lr", "--lora-lr", OPT_FLOAT, F(lora_lr), 1e-7, 0.5},
    {"freeze-router", "--freeze-router", OPT_FLAG, F(freeze_router), 0, 0},
    {"window", "--window", OPT_INT, F(window), 2, 4096},
    {"json", "--json", OPT_FLAG, F(json), 0, 0},
    {"csv", "--csv", OPT_STR, F(csv), 0, 0},
    {"svg", "--svg", OPT_STR, F(svg), 0, 0},
    {"max-tokens", "--max-tokens", OPT_INT, F(max_tokens), 0, 1 << 30},
    {"method", "--method", OPT_STR, F(method), 0, 0},
    {"sparsity", "--sparsity", OPT_FLOAT, F(sparsity), -1e9, 1e9},
    {"pattern", "--pattern", OPT_STR, F(pattern), 0, 0},
    {"drop-layers", "--drop-layers", OPT_STR, F(drop_layers), 0, 0},
    {"linearize", "--linearize", OPT_STR, F(linearize), 0, 0},
    {"criterion", "--criterion", OPT_STR, F(criterion), 0, 0},
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

/* 64 random bits from the OS; where it has none to give (a kernel without
 * getrandom), the clock's nanoseconds and the process id, mixed. */
static uint64_t random_seed(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v)
        return v;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
    v ^= v >> 33, v *= 0xff51afd7ed558ccdull, v ^= v >> 33; /* murmur3's finalizer */
    return v;
}

static const struct opt_def *find_opt(const char *key)
{
    for (size_t k = 0; k < sizeof opt_defs / sizeof opt_defs[0]; k++)
        if (strcmp(opt_defs[k].key, key) == 0)
            return &opt_defs[k];
    return NULL;
}

int opt_given(const struct opts *o, const char *key)
{
    const struct opt_def *d = find_opt(key);
    const size_t k = d ? (size_t)(d - opt_defs) : 0;
    return d && (o->given[k / 64] >> (k % 64) & 1);
}

void cache_types_apply(const struct opts *o, struct strix_context_params *cp)
{
    const char *names[2] = {o->cache_type_k, o->cache_type_v};
    int *fields[2] = {&cp->type_k, &cp->type_v};
    for (int i = 0; i < 2; i++) {
        if (!names[i])
            continue;
        const int t = strix_cache_type_from_name(names[i]);
        if (t < 0)
            die("%s: unknown KV cache type '%s' (expected f32, f16, q8_0 or q4_0)",
                i ? "--cache-type-v" : "--cache-type-k", names[i]);
        *fields[i] = t;
    }
}

void parse_opts(int argc, char **argv, struct opts *o, const char *allowed)
{
    _Static_assert(sizeof opt_defs / sizeof opt_defs[0] <= 128, "opts.given holds 128 bits");
    memset(o, 0, sizeof *o);
    o->command = argv[1];
    o->n_predict = -1; /* until EOS or a full context */
    o->synth = strix_synth_default_params();
    o->sp = strix_sampler_default_params(); /* llama.cpp's: temp 0.8, top-k 40, ... */
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            usage(argv[1], stdout);
            exit(0);
        }
        const struct opt_def *d = NULL;
        for (size_t k = 0; k < sizeof opt_defs / sizeof opt_defs[0] && !d; k++)
            if (flag_matches(opt_defs[k].flags, a))
                d = &opt_defs[k];
        if (!d)
            die("unknown option '%s' (see strix %s --help)", a, argv[1]);
        char pat[32];
        snprintf(pat, sizeof pat, " %s ", d->key);
        if (!strstr(allowed, pat))
            die("option '%s' does not apply to '%s'", a, argv[1]);
        const size_t k = (size_t)(d - opt_defs);
        o->given[k / 64] |= (uint64_t)1 << (k % 64);
        void *field = (char *)o + d->off;
        switch (d->kind) {
        case OPT_STR: *(const char **)field = need_arg(argc, argv, &i); break;
        case OPT_INT:
            *(int *)field = (int)parse_long(a, need_arg(argc, argv, &i), (long)d->lo, (long)d->hi);
            break;
        case OPT_FLOAT:
            *(float *)field = parse_float(a, need_arg(argc, argv, &i), (float)d->lo, (float)d->hi);
            break;
        case OPT_SEED: { /* -1: random, as llama.cpp */
            const char *v = need_arg(argc, argv, &i);
            o->seed_given = strcmp(v, "-1") != 0;
            if (o->seed_given)
                *(uint64_t *)field = parse_u64(a, v);
            break;
        }
        case OPT_FLAG: *(int *)field = 1; break;
        case OPT_LIST: {
            int *n = field == (void *)o->stops ? &o->n_stops : &o->n_logit_biases;
            if (*n == OPT_LIST_MAX)
                die("%s: at most %d times", a, OPT_LIST_MAX);
            ((const char **)field)[(*n)++] = need_arg(argc, argv, &i);
            break;
        }
        }
    }
    if (!o->seed_given)
        o->sp.seed = random_seed();
    o->stop_bos = !o->no_stop_bos;
    if (!o->model && strstr(allowed, " m "))
        o->model = default_model();
}

strix_model *load_model(const struct opts *o, int vocab_only)
{
    if (o->vocab) { /* a GGUF file has its own vocabulary: --vocab would be ignored */
        FILE *f = fopen(o->model, "rb");
        char magic[4];
        const int gguf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
        if (f)
            fclose(f);
        if (gguf)
            die("--vocab is for llama2.c checkpoints; %s is a GGUF file with its own vocabulary",
                o->model);
    }
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
    const int std_in = strcmp(path, "-") == 0;
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f)
        die("cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf)
            die("out of memory");
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    if (ferror(f))
        die("cannot read '%s'", std_in ? "standard input" : path);
    if (!std_in)
        fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}
