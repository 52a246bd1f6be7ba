/*
 * bench.c - `strix bench`: prompt processing (pp N: one batch of N tokens
 * into an empty cache) and generation (tg N: N tokens one at a time from an
 * empty cache), measured like llama-bench and with its flags where they
 * exist:
 *
 *   -m FILE[,FILE]  models (the flag may repeat)   -p N[,N]  prompt sizes
 *   -n N[,N]        generation lengths             -t N[,N]  thread counts
 *   -r N            repetitions (after one warm-up run)
 *   -o md|json      output format
 *   -ctk T, -ctv T  KV cache types of keys and values (f32, f16, q8_0, q4_0)
 *   --router R.gguf [--keep X] | --skip-random KEEP [--seed S] | --skip-layers L,L
 *                   dynamic depth (the JSON then has the executed fraction,
 *                   FLOPs per token and the KV bytes held)
 *
 * and a batched mode like llama-batched-bench's (-npl N[,N]): B sequences
 * share a prompt of -d N tokens (prefilled once into a spare sequence and
 * forked from it with strix_kv_seq_cp before each repetition, outside the
 * timing, so recurrent models, whose state cannot roll back that far, are
 * measured too) and then each decodes one token per step, all B in one strix_decode_batch
 * with every sequence's logits kept, as a server's slots do. A row reports
 * the aggregate tokens/s of the steps (B x n / time) as `aggregate_ts`.
 *
 * `--bandwidth [--bw-mib N]` instead measures the memory bandwidth of a
 * streaming read (bwprobe.c) at each -t, the limit decoding is held to.
 *
 * Each model is measured in a child process, so the peak resident memory
 * reported is that model's alone.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define LIST_MAX 16

struct list {
    int n;
    long v[LIST_MAX];
};

struct bench_opts {
    const char *models[LIST_MAX];
    int n_models;
    char *copies[LIST_MAX]; /* the -m values the names point into */
    int n_copies;
    struct list pp, tg, threads, npl;
    long depth;
    int reps;
    int json;
    int bandwidth;
    long bw_mib;
    const char *vocab;
    struct opts route; /* --router ... (parsed by parse_opts) */
};

static void parse_list(const char *flag, const char *s, struct list *l, long lo, long hi)
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        die("%s: list too long", flag);
    strcpy(buf, s);
    l->n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (l->n == LIST_MAX)
            die("%s: at most %d values", flag, LIST_MAX);
        l->v[l->n++] = parse_long(flag, tok, lo, hi);
    }
    if (l->n == 0)
        die("%s: empty list", flag);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct result {
    double median, min, max, mean, sd;
};

static struct result summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    struct result r = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1], 0, 0};
    for (int i = 0; i < n; i++)
        r.mean += v[i] / n;
    for (int i = 0; i < n; i++)
        r.sd += (v[i] - r.mean) * (v[i] - r.mean) / (n > 1 ? n - 1 : 1);
    r.sd = r.sd > 0 ? __builtin_sqrt(r.sd) : 0;
    return r;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One test: tokens/second of each repetition, by the wall clock (out) and by
 * the process's CPU time (cpu). */
static void run_test(strix_context *ctx, int nv, int n_pp, int n_tg, int reps, double *out,
                     double *cpu)
{
    strix_error err;
    const int n = n_pp > 0 ? n_pp : n_tg;
    strix_token *ids = malloc((size_t)n * sizeof *ids);
    if (!ids)
        die("out of memory");
    for (int i = 0; i < n; i++)
        ids[i] = (strix_token)((i * 7919 + 13) % nv);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        strix_kv_truncate(ctx, 0, NULL);
        const double t0 = now(), c0 = cpu_now();
        if (n_pp > 0) {
            if (strix_decode(ctx, ids, NULL, n_pp, NULL, &err))
                die("decode: %s", err.msg);
        } else {
            for (int i = 0; i < n_tg; i++)
                if (strix_decode(ctx, &ids[i], NULL, 1, NULL, &err))
                    die("decode: %s", err.msg);
        }
        const double dt = now() - t0, dc = cpu_now() - c0;
        if (r >= 0) {
            out[r] = n / (dt > 0 ? dt : 1e-9);
            cpu[r] = n / (dc > 0 ? dc : 1e-9);
        }
    }
    free(ids);
}


/* The shared prompt of the batched mode: depth tokens into sequence seq. */
static void prefill(strix_context *ctx, int nv, int depth, int seq, strix_token *ids, int32_t *pos,
                    int32_t *seqs)
{
    strix_error err;
    for (int i = 0; i < depth; i++) {
        ids[i] = (strix_token)((i * 7919 + 13) % nv);
        pos[i] = i;
        seqs[i] = seq;
    }
    const strix_batch pb = {.n = depth, .token = ids, .pos = pos, .seq = seqs};
    if (strix_decode_batch(ctx, &pb, &err))
        die("decode: %s", err.msg);
}

/* Batched generation: B sequences at depth d, n steps of B tokens each;
 * aggregate tokens/second of each repetition, by the wall clock (out) and
 * by the process's CPU time (cpu: on a shared, loaded machine the figure
 * that time slicing does not move). The prompt is prefilled once into the
 * spare sequence `spare` (>= B), and before each repetition, untimed, every
 * other sequence is dropped and sequences 0 .. B-1 are forked from it: a
 * recurrent model's state cannot be rolled back past the few positions it
 * keeps, but it can be copied whole. With no spare (spare < 0: B fills every
 * sequence) the prompt is prefilled again into sequence 0 before each
 * repetition. */
static void run_batched(strix_context *ctx, int nv, int B, int depth, int n_gen, int reps,
                        int spare, double *out, double *cpu)
{
    strix_error err;
    const int n_all = depth > B ? depth : B;
    strix_token *ids = malloc((size_t)n_all * sizeof *ids);
    int32_t *pos = malloc((size_t)n_all * sizeof *pos), *seq = malloc((size_t)n_all * sizeof *seq);
    int8_t *want = malloc((size_t)B);
    if (!ids || !pos || !seq || !want)
        die("out of memory");
    if (depth > 0 && spare >= 0) {
        strix_kv_seq_rm(ctx, -1, 0, -1);
        prefill(ctx, nv, depth, spare, ids, pos, seq);
    }
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        if (depth > 0 && spare >= 0) {
            if (strix_kv_seq_keep(ctx, spare))
                die("bench: cannot drop the sequences of the last repetition");
        } else {
            strix_kv_seq_rm(ctx, -1, 0, -1); /* to empty: always possible */
            if (depth > 0)
                prefill(ctx, nv, depth, 0, ids, pos, seq);
        }
        for (int s = 0; depth > 0 && s < B; s++)
            if (strix_kv_seq_cp(ctx, spare >= 0 ? spare : 0, s, 0, -1))
                die("bench: cannot fork the prompt into sequence %d", s);
        const double t0 = now(), c0 = cpu_now();
        for (int i = 0; i < n_gen; i++) {
            for (int s = 0; s < B; s++) {
                ids[s] = (strix_token)(((i + 1) * 7919 + s * 104729 + 13) % nv);
                pos[s] = depth + i;
                seq[s] = s;
                want[s] = 1;
            }
            const strix_batch b = {.n = B, .token = ids, .pos = pos, .seq = seq, .logits = want};
            if (strix_decode_batch(ctx, &b, &err))
                die("decode: %s", err.msg);
        }
        const double dt = now() - t0, dc = cpu_now() - c0;
        if (r >= 0) {
            out[r] = (double)B * n_gen / (dt > 0 ? dt : 1e-9);
            cpu[r] = (double)B * n_gen / (dc > 0 ? dc : 1e-9);
        }
    }
    free(ids);
    free(pos);
    free(seq);
    free(want);
}

static double peak_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void bench_batched(const struct bench_opts *b, const char *path, strix_model *m,
                          const struct strix_model_info *in, int *first_json, double *v)
{
    long max_npl = 1, max_tg = 1;
    for (int i = 0; i < b->npl.n; i++)
        max_npl = b->npl.v[i] > max_npl ? b->npl.v[i] : max_npl;
    for (int i = 0; i < b->tg.n; i++)
        max_tg = b->tg.v[i] > max_tg ? b->tg.v[i] : max_tg;
    for (int ti = 0; ti < b->threads.n; ti++) {
        struct strix_context_params cp = strix_context_default_params();
        cp.n_threads = (int)b->threads.v[ti];
        cp.n_ctx = (int)(b->depth + max_tg);
        /* a spare sequence holds the prompt between repetitions */
        const int spare = b->depth > 0 && max_npl < STRIX_SEQ_MAX ? (int)max_npl : -1;
        cp.n_seq_max = (int)max_npl + (spare >= 0);
        cp.n_batch = (int)(max_npl > 512 ? max_npl : 512);
        cache_types_apply(&b->route, &cp);
        strix_context *ctx;
        strix_error err;
        /* cells: the prompt once plus each sequence's steps, unless the
         * library keeps fewer for a sequence (a sliding window keeps its
         * window, a recurrent model its states): then its own sizing, so
         * that decoding scans what it would in use */
        struct strix_context_params one = cp;
        one.n_seq_max = 1;
        if (strix_context_create(m, &one, &ctx, &err))
            die("%s", err.msg);
        const int cells_one = strix_kv_cells(ctx);
        strix_context_free(ctx);
        cp.n_cells = cells_one < cp.n_ctx ? 0 : (int)(b->depth + max_npl * max_tg);
        if (strix_context_create(m, &cp, &ctx, &err))
            die("%s", err.msg);
        size_t kv_tok = 0;
        strix_context_cache_bytes(ctx, NULL, &kv_tok, NULL);
        for (int ni = 0; ni < b->npl.n; ni++)
            for (int gi = 0; gi < b->tg.n; gi++) {
                const int B = (int)b->npl.v[ni], n = (int)b->tg.v[gi];
                if (n <= 0)
                    continue;
                run_batched(ctx, in->n_vocab, B, (int)b->depth, n, b->reps, spare, v,
                            v + b->reps);
                const struct result r = summarize(v, b->reps);
                const struct result rc = summarize(v + b->reps, b->reps);
                char name[48];
                snprintf(name, sizeof name, "npl%d tg%d @d%ld", B, n, b->depth);
                if (b->json) {
                    printf("%s  {\"model\": \"%s\", \"test\": \"%s\", \"threads\": %d, "
                           "\"npl\": %d, \"n_gen\": %d, \"depth\": %ld, \"reps\": %d, "
                           "\"aggregate_ts\": %.2f, \"min_ts\": %.2f, \"max_ts\": %.2f, "
                           "\"per_seq_ts\": %.2f, \"cpu_ts\": %.2f, \"peak_rss_mib\": %.1f, "
                           "\"type_k\": \"%s\", \"type_v\": \"%s\", \"kv_bytes_per_token\": %zu}",
                           *first_json ? "" : ",\n", path, name, cp.n_threads, B, n, b->depth,
                           b->reps, r.median, r.min, r.max, r.median / B, rc.median, peak_mib(),
                           strix_cache_type_name(cp.type_k), strix_cache_type_name(cp.type_v),
                           kv_tok);
                    *first_json = 0;
                } else {
                    printf("| %-40s | %7d | %4d | %5d | %6ld | %12.2f | %8.2f | %8.2f | %10.2f | "
                           "%8.1f |\n",
                           path, cp.n_threads, B, n, b->depth, r.median, r.min, r.max, rc.median,
                           peak_mib());
                }
                fflush(stdout);
            }
        strix_context_free(ctx);
    }
}

static void bench_model(const struct bench_opts *b, const char *path, int *first_json)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    o.command = "bench";
    o.model = path;
    o.vocab = b->vocab;
    strix_model *m = load_model(&o, 0);
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    long max_pp = 1, max_tg = 1;
    for (int i = 0; i < b->pp.n; i++)
        max_pp = b->pp.v[i] > max_pp ? b->pp.v[i] : max_pp;
    for (int i = 0; i < b->tg.n; i++)
        max_tg = b->tg.v[i] > max_tg ? b->tg.v[i] : max_tg;
    double *v = malloc(2 * (size_t)b->reps * sizeof *v);
    if (!v)
        die("out of memory");
    if (b->npl.n > 0) {
        bench_batched(b, path, m, &in, first_json, v);
        free(v);
        strix_model_free(m);
        return;
    }
    for (int ti = 0; ti < b->threads.n; ti++) {
        struct strix_context_params cp = strix_context_default_params();
        cp.n_threads = (int)b->threads.v[ti];
        cp.n_ctx = (int)(max_pp > max_tg ? max_pp : max_tg);
        cp.n_batch = (int)max_pp;
        strix_context *ctx;
        strix_error err;
        cp.kv_grow = route_wanted(&b->route);
        cache_types_apply(&b->route, &cp);
        if (strix_context_create(m, &cp, &ctx, &err))
            die("%s", err.msg);
        strix_router *router = route_apply(&b->route, m, ctx);
        for (int kind = 0; kind < 2; kind++) {
            const struct list *l = kind == 0 ? &b->pp : &b->tg;
            for (int i = 0; i < l->n; i++) {
                const int n = (int)l->v[i];
                if (n <= 0)
                    continue;
                strix_context_route_stats_reset(ctx);
                run_test(ctx, in.n_vocab, kind == 0 ? n : 0, kind == 1 ? n : 0, b->reps, v,
                         v + b->reps);
                struct strix_route_stats st = {.struct_size = sizeof st};
                strix_context_route_stats(ctx, &st, &err);
                const struct result r = summarize(v, b->reps);
                const struct result rc = summarize(v + b->reps, b->reps);
                const double peak = peak_mib();
                char name[16];
                snprintf(name, sizeof name, "%s%d", kind == 0 ? "pp" : "tg", n);
                if (b->json) {
                    printf("%s  {\"model\": \"%s\", \"test\": \"%s\", \"threads\": %d, "
                           "\"reps\": %d, \"median_ts\": %.2f, \"min_ts\": %.2f, \"max_ts\": %.2f, "
                           "\"mean_ts\": %.2f, \"stddev_ts\": %.2f, \"cpu_ts\": %.2f, "
                           "\"weight_bytes\": %zu, \"peak_rss_mib\": %.1f, "
                           "\"layers_executed\": %.4f, \"flops_per_token\": %.6g, "
                           "\"kv_bytes\": %llu}",
                           *first_json ? "" : ",\n", path, name, cp.n_threads, b->reps, r.median,
                           r.min, r.max, r.mean, r.sd, rc.median, in.weight_bytes, peak,
                           st.pairs ? (double)st.pairs_run / (double)st.pairs : 1.0,
                           st.n_tokens ? st.flops / (double)st.n_tokens : 0.0,
                           (unsigned long long)st.kv_bytes_peak);
                    *first_json = 0;
                } else {
                    printf("| %-40s | %8.1f | %7d | %6s | %10.2f | %8.2f | %8.2f | %8.1f |\n", path,
                           (double)in.n_params / 1e6, cp.n_threads, name, r.median, r.min, r.max,
                           peak);
                }
                fflush(stdout);
            }
        }
        if (route_wanted(&b->route))
            route_report(ctx, "bench");
        strix_context_free(ctx);
        strix_router_free(router);
    }
    free(v);
    strix_model_free(m);
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts b;
    memset(&b, 0, sizeof b);
    b.pp.n = 1, b.pp.v[0] = 128;
    b.tg.n = 1, b.tg.v[0] = 128;
    b.threads.n = 1,
    b.threads.v[0] = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    b.reps = 5;
    char *rargv[16] = {argv[0], argv[1]};
    int rargc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            usage("bench", stdout);
            exit(0);
        }
        if (strcmp(a, "--bandwidth") == 0) {
            b.bandwidth = 1;
            continue;
        }
        if (i + 1 >= argc)
            die("%s needs a value (see strix bench --help)", a);
        const char *val = argv[++i];
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (b.n_copies == LIST_MAX)
                die("-m: at most %d models", LIST_MAX);
            char *copy = b.copies[b.n_copies++] = strdup(val);
            if (!copy)
                die("out of memory");
            for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
                 tok = strtok_r(NULL, ",", &save)) {
                if (b.n_models == LIST_MAX)
                    die("-m: at most %d models", LIST_MAX);
                b.models[b.n_models++] = tok; /* freed at the end */
            }
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--n-prompt") == 0) {
            parse_list(a, val, &b.pp, 0, 1 << 16);
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--n-gen") == 0) {
            parse_list(a, val, &b.tg, 0, 1 << 16);
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            parse_list(a, val, &b.threads, 1, 1024);
        } else if (strcmp(a, "-r") == 0 || strcmp(a, "--repetitions") == 0) {
            b.reps = (int)parse_long(a, val, 1, 1000);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (strcmp(val, "md") != 0 && strcmp(val, "json") != 0)
                die("-o: '%s' is not md or json", val);
            b.json = strcmp(val, "json") == 0;
        } else if (strcmp(a, "-npl") == 0 || strcmp(a, "--n-parallel") == 0) {
            parse_list(a, val, &b.npl, 1, STRIX_SEQ_MAX);
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--depth") == 0) {
            b.depth = parse_long(a, val, 0, 1 << 16);
        } else if (strcmp(a, "--bw-mib") == 0) {
            b.bw_mib = parse_long(a, val, 1, 1 << 20);
        } else if (strcmp(a, "--vocab") == 0) {
            b.vocab = val;
        } else if (rargc + 2 <= 16 && (strcmp(a, "--router") == 0 || strcmp(a, "--keep") == 0 ||
                                       strcmp(a, "--skip-random") == 0 ||
                                       strcmp(a, "--skip-layers") == 0 ||
                                       strcmp(a, "--seed") == 0 || strcmp(a, "-ctk") == 0 ||
                                       strcmp(a, "--cache-type-k") == 0 ||
                                       strcmp(a, "-ctv") == 0 ||
                                       strcmp(a, "--cache-type-v") == 0)) {
            rargv[rargc++] = argv[i - 1];
            rargv[rargc++] = argv[i];
        } else {
            die("unknown option '%s' for bench (see strix bench --help)", a);
        }
    }
    parse_opts(rargc, rargv, &b.route, " router keep skip-random skip-layers seed " CACHE_OPTS);
    struct strix_context_params check = strix_context_default_params();
    cache_types_apply(&b.route, &check); /* a bad name fails here, not per model */
    if (b.bandwidth) {
        if (b.json)
            printf("[\n");
        bwprobe_run((size_t)(b.bw_mib > 0 ? b.bw_mib : 1024), b.threads.v, b.threads.n, b.reps,
                    b.json);
        if (b.json)
            printf("\n]\n");
        for (int i = 0; i < b.n_copies; i++)
            free(b.copies[i]);
        return 0;
    }
    if (b.n_models == 0)
        b.models[b.n_models++] = default_model();
    if (b.json)
        printf("[\n");
    else if (b.npl.n > 0)
        printf("| %-40s | %7s | %4s | %5s | %6s | %12s | %8s | %8s | %10s | %8s |\n"
               "|%s|--------:|-----:|------:|-------:|-------------:|---------:|---------:|"
               "-----------:|---------:|\n",
               "model", "threads", "npl", "tg", "depth", "aggr t/s", "min", "max", "t/s of CPU",
               "peak MiB",
               "------------------------------------------");
    else
        printf("| %-40s | %8s | %7s | %6s | %10s | %8s | %8s | %8s |\n"
               "|%s|---------:|--------:|--------|-----------:|---------:|---------:|---------:|\n",
               "model", "params M", "threads", "test", "t/s median", "min", "max", "peak MiB",
               "------------------------------------------");
    int first = 1;
    for (int i = 0; i < b.n_models; i++) {
        fflush(stdout);
        const pid_t pid = fork();
        if (pid < 0)
            die("fork failed");
        if (pid == 0) {
            bench_model(&b, b.models[i], &first);
            fflush(stdout);
            _exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("benchmark of %s failed", b.models[i]);
        first = 0;
    }
    if (b.json)
        printf("\n]\n");
    for (int i = 0; i < b.n_copies; i++)
        free(b.copies[i]);
    return 0;
}
