/*
 * drivers.c - the commands of strix-mpi, run by rank 0 over the pipeline
 * (pipeline.h) while the other ranks follow its messages:
 *   run    generation, as `strix run` (greedy or sampled);
 *   ppl    perplexity and KL divergence, as `strix ppl`: the library's
 *          strix_perplexity with a decode_window that sends each window
 *          through the chain, so the numbers are those of one process;
 *   bench  prompt and generation speed through the chain, with G
 *          sequences in flight at once so that the stages work on
 *          different sequences at the same time.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"

/* Rank 0's generation loop: greedy or sampled, as `strix run` (no stop
 * strings, beams or drafts). */
void driver_run(struct pipe *p, struct opts *o, FILE *dump)
{
    strix_model *m = p->m;
    size_t len = 0;
    char *file_text = o->file ? read_file(o->file, &len) : NULL;
    const char *prompt = file_text ? file_text : o->prompt ? o->prompt : "";
    if (!file_text)
        len = strlen(prompt);
    const int add_bos = strix_vocab_add_bos(m) || (!*prompt && strix_token_bos(m) >= 0);
    int n_prompt;
    strix_token *ids = tokenize(m, prompt, len,
                                (add_bos ? STRIX_TOKENIZE_ADD_BOS : 0) |
                                    (o->parse_special ? STRIX_TOKENIZE_PARSE_SPECIAL : 0),
                                &n_prompt);
    const int n_ctx = strix_context_n_ctx(p->ctx);
    if (n_prompt == 0 || n_prompt >= n_ctx)
        fatal(p, "the prompt has %d tokens; the context holds %d", n_prompt, n_ctx);
    sampling_opts(o, p->n_vocab);
    strix_sampler *smp;
    strix_error err;
    if (strix_sampler_create(&o->sp, p->n_vocab, &smp, &err))
        fatal(p, "%s", err.msg);
    for (int i = 0; i < n_prompt; i++)
        strix_sampler_accept(smp, ids[i]);
    fwrite(prompt, 1, len, stdout);
    fflush(stdout);
    print_seed(o);
    const double t0 = MPI_Wtime();
    chain_decode(p, ids, n_prompt, 0, 0, NULL, p->logits);
    const double t1 = MPI_Wtime();
    strix_token prev = ids[n_prompt - 1];
    int n_gen = 0, pos = n_prompt, full = 0;
    const strix_token eos = strix_token_eos(m), bos = strix_token_bos(m);
    while (o->n_predict < 0 || n_gen < o->n_predict) {
        if (dump && fwrite(p->logits, sizeof(float), (size_t)p->n_vocab, dump) != (size_t)p->n_vocab)
            fatal(p, "cannot write the logits");
        const strix_token tok = strix_sampler_sample(smp, p->logits);
        strix_sampler_accept(smp, tok);
        n_gen++;
        if (tok == eos || (o->stop_bos && tok == bos))
            break;
        char piece[256];
        const int k = strix_token_to_text(m, prev, tok, piece, sizeof piece);
        fwrite(piece, 1, (size_t)(k < (int)sizeof piece ? k : (int)sizeof piece), stdout);
        fflush(stdout);
        prev = tok;
        if (o->n_predict >= 0 && n_gen == o->n_predict)
            break;
        if (pos >= n_ctx) {
            full = 1;
            break;
        }
        const double tc = MPI_Wtime();
        chain_decode(p, &tok, 1, pos++, 0, NULL, p->logits);
        p->t_chain1 += MPI_Wtime() - tc;
        p->n_chain1++;
    }
    const double t2 = MPI_Wtime();
    fputc('\n', stdout);
    fflush(stdout);
    if (full)
        fprintf(stderr, "run: the context of %d tokens is full: the text is cut\n", n_ctx);
    fprintf(stderr, "prompt: %d tokens, %.1f tok/s; generation: %d tokens, %.1f tok/s "
                    "(%d ranks)\n",
            n_prompt, n_prompt / (t1 - t0 > 0 ? t1 - t0 : 1e-9), n_gen,
            n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9), p->size);
    strix_sampler_free(smp);
    free(ids);
    free(file_text);
}


/* ---- ppl ---- */

static int window_through_chain(void *user, const strix_token *tokens, int n, const int8_t *want,
                                float *logits, strix_error *err)
{
    struct pipe *p = user;
    (void)err; /* a failure on any rank ends every rank (fatal) */
    chain_op(p, OP_CLEAR, 0);
    chain_decode(p, tokens, n, 0, 0, want, logits);
    return STRIX_OK;
}

static void ppl_progress(void *user, int done, int total)
{
    (void)user;
    fprintf(stderr, "\rppl: window %d/%d", done, total);
    if (done == total)
        fputc('\n', stderr);
}

void driver_ppl(struct pipe *p, struct opts *o)
{
    size_t len = 0;
    char *text = o->file ? read_file(o->file, &len) : NULL;
    int n_tok = 0;
    strix_token *ids = text ? tokenize(p->m, text, len, 1, &n_tok) : NULL;
    struct strix_ppl_params pp = strix_ppl_default_params();
    pp.n_ctx = strix_context_n_ctx(p->ctx);
    pp.stride = o->stride;
    pp.kl_save = o->kl_save;
    pp.kl_base = o->kl_base;
    pp.decode_window = window_through_chain;
    pp.decode_user = p;
    if (isatty(2))
        pp.progress = ppl_progress;
    struct strix_ppl_result r = {.struct_size = sizeof r};
    strix_error err;
    if (strix_perplexity(p->m, NULL, ids, n_tok, &pp, &r, &err))
        fatal(p, "ppl: %s", err.msg);
    ppl_print(o, &r, text ? len : 0, n_tok);
    free(ids);
    free(text);
}

/* ---- bench ---- */

static int cmp_dbl(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Generation of n_tg tokens in each of n_seq sequences, one step after
 * another: in a step rank 0 sends sequence g's token and goes on to g + 1
 * while later ranks work on g; the token of g's next step (greedy) waits
 * only for g's logits. With as many sequences as ranks every stage has
 * work at once. Returns seconds; *hash: FNV-1a over every sequence's tokens
 * (sequence after sequence), the same for any number of ranks. */
static double bench_tg(struct pipe *p, int n_seq, int depth, int n_tg, uint64_t *hash)
{
    const int nv = p->n_vocab;
    float *lg = malloc((size_t)n_seq * (size_t)nv * sizeof *lg);
    struct pending *pd = calloc((size_t)n_seq, sizeof *pd);
    strix_token *tok = malloc((size_t)n_seq * sizeof *tok);
    if (!lg || !pd || !tok)
        fatal(p, "out of memory");
    strix_token *gen = malloc((size_t)n_seq * (size_t)n_tg * sizeof *gen);
    if (!gen)
        fatal(p, "out of memory");
    for (int g = 0; g < n_seq; g++)
        tok[g] = (strix_token)(1 + g);
    const double t0 = MPI_Wtime();
    for (int step = 0; step < n_tg; step++)
        for (int g = 0; g < n_seq; g++) {
            if (step > 0) {
                pipe_wait(p, &pd[g]);
                const float *l = lg + (size_t)g * (size_t)nv;
                int best = 0;
                for (int v = 1; v < nv; v++)
                    best = l[v] > l[best] ? v : best;
                tok[g] = best;
            }
            gen[(size_t)g * (size_t)n_tg + (size_t)step] = tok[g];
            pipe_decode_start(p, &tok[g], 1, depth + step, g, NULL, lg + (size_t)g * (size_t)nv,
                              &pd[g]);
        }
    for (int g = 0; g < n_seq; g++)
        pipe_wait(p, &pd[g]);
    const double t = MPI_Wtime() - t0;
    *hash = 1469598103934665603ULL;
    for (size_t i = 0; i < (size_t)n_seq * (size_t)n_tg; i++)
        *hash = (*hash ^ (uint64_t)(uint32_t)gen[i]) * 1099511628211ULL;
    free(gen);
    free(lg);
    free(pd);
    free(tok);
    return t;
}

void driver_bench(struct pipe *p, int n_pp, int n_tg, int reps, int json)
{
    const int n_seq = p->n_seq, n_ctx = strix_context_n_ctx(p->ctx);
    if (n_pp + n_tg > n_ctx || n_pp < 1 || n_tg < 1)
        fatal(p, "bench: -p %d and -n %d must be at least 1 and fit the context of %d", n_pp,
              n_tg, n_ctx);
    strix_token *prompt = malloc((size_t)n_pp * sizeof *prompt);
    double *tpp = malloc((size_t)reps * sizeof *tpp), *ttg = malloc((size_t)reps * sizeof *ttg);
    if (!prompt || !tpp || !ttg)
        fatal(p, "out of memory");
    for (int i = 0; i < n_pp; i++)
        prompt[i] = (strix_token)(1 + (i * 7919) % (p->n_vocab - 1));
    uint64_t hash = 0;
    for (int r = 0; r < reps; r++) {
        chain_op(p, OP_CLEAR, -1);
        double t0 = MPI_Wtime();
        for (int g = 0; g < n_seq; g++) /* the prompts, one behind the other */
            chain_decode(p, prompt, n_pp, 0, g, NULL, p->logits);
        tpp[r] = MPI_Wtime() - t0;
        ttg[r] = bench_tg(p, n_seq, n_pp, n_tg, &hash);
    }
    qsort(tpp, (size_t)reps, sizeof *tpp, cmp_dbl);
    qsort(ttg, (size_t)reps, sizeof *ttg, cmp_dbl);
    const double pp_ts = n_seq * n_pp / tpp[reps / 2], tg_ts = n_seq * n_tg / ttg[reps / 2];
    if (json)
        printf("{\"ranks\": %d, \"n_seq\": %d, \"n_prompt\": %d, \"n_gen\": %d, "
               "\"pp_ts\": %.3f, \"tg_ts\": %.3f, \"reps\": %d, \"tokens_fnv\": \"%016llx\"}\n",
               p->size, n_seq, n_pp, n_tg, pp_ts, tg_ts, reps, (unsigned long long)hash);
    else
        printf("ranks %d, sequences %d: pp%d %.2f t/s, tg%d %.2f t/s (all sequences together, "
               "median of %d)\n",
               p->size, n_seq, n_pp, pp_ts, n_tg, tg_ts, reps);
    free(prompt);
    free(tpp);
    free(ttg);
}
