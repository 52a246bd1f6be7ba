/*
 * ppl.c - `strix ppl`: cross-entropy, perplexity and bits per byte of a model
 * on a text file, chunked as llama.cpp's llama-perplexity (or with sliding
 * windows), and the KL divergence from a saved base model's distributions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void progress(void *user, int done, int total)
{
    const double t0 = *(const double *)user;
    const double el = now() - t0;
    fprintf(stderr, "\rppl: window %d/%d [", done, total);
    const int width = 30, fill = total > 0 ? done * width / total : width;
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %.1fs, ~%.0fs left ", el, done > 0 ? el * (total - done) / done : 0.0);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* The window of a KL base file's evaluation (to size the context for
 * it), or fallback without one or when it is unreadable (the library then
 * says what is wrong with it). */
int ppl_window(const char *kl_base, int fallback)
{
    FILE *f = kl_base ? fopen(kl_base, "rb") : NULL;
    unsigned char h[16];
    int n = fallback;
    if (f && fread(h, 1, sizeof h, f) == sizeof h && memcmp(h, "STRIXKL1", 8) == 0) {
        const int nc = h[12] | h[13] << 8 | h[14] << 16 | (h[15] & 0x7f) << 24;
        n = nc > 1 && nc <= (1 << 24) ? nc : fallback;
    }
    if (f)
        fclose(f);
    return n;
}

/* The report of `strix ppl` (and of strix-mpi ppl): len bytes of text gave
 * n_tok tokens. */
void ppl_print(const struct opts *o, const struct strix_ppl_result *r, size_t len, int n_tok)
{
    printf("model %s\n", o->model);
    if (o->file)
        printf("text %s: %zu bytes, %d tokens\n", o->file, len, n_tok);
    printf("%s of %d tokens, %d windows, %lld tokens scored (%lld bytes)\n",
           r->stride ? "sliding windows" : "chunks", r->n_ctx, r->n_windows, (long long)r->n_scored,
           (long long)r->n_bytes);
    printf("cross-entropy: %.6f nats/token +/- %.6f, %.6f bits/token, %.6f bits/byte\n", r->nll,
           r->nll_stderr, r->bits_per_token, r->bits_per_byte);
    printf("PPL = %.4f +/- %.5f\n", r->ppl, r->ppl_stderr);
    if (o->kl_save)
        printf("saved log-probabilities to %s\n", o->kl_save);
    if (r->has_kl) {
        printf("base PPL = %.4f, PPL ratio = %.6f (ln ratio %.6f +/- %.6f)\n", r->base_ppl,
               r->ppl_ratio, r->ln_ppl_ratio, r->ln_ppl_ratio_stderr);
        printf("KL divergence: mean %.6f +/- %.6f, min %.6f, median %.6f, 90%% %.6f, 95%% %.6f, "
               "99%% %.6f, 99.9%% %.6f, max %.6f\n",
               r->kl_mean, r->kl_stderr, r->kl_min, r->kl_median, r->kl_p90, r->kl_p95, r->kl_p99,
               r->kl_p999, r->kl_max);
        printf("same top token: %.3f%%\n", 100.0 * r->top1_agree);
    }
}

int cmd_ppl(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o,
               " m vocab f c t stride kl-save kl-base json router keep skip-random skip-layers "
               "seed" CACHE_OPTS);
    if (!o.file && !o.kl_base)
        die("ppl needs -f TEXT (or --kl-base FILE, whose tokens are used)");
    if (o.kl_save && o.kl_base)
        die("--kl-save and --kl-base do not go together");
    if (o.kl_base && (opt_given(&o, "c") || opt_given(&o, "stride")))
        die("-c and --stride come from the KL base file with --kl-base; drop them");
    refuse_overwrite(o.kl_save, (const char *const[]){o.model, o.vocab, o.file}, 3);
    strix_model *m = load_model(&o, 0);
    size_t len = 0;
    char *text = o.file ? read_file(o.file, &len) : NULL;
    int n_tok = 0;
    strix_token *ids = text ? tokenize(m, text, len, 1, &n_tok) : NULL;
    const int n_ctx = o.n_ctx ? o.n_ctx : 512;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_threads = o.n_threads;
    cp.kv_grow = route_wanted(&o);
    cache_types_apply(&o, &cp);
    strix_error err;
    strix_context *ctx;
    struct strix_ppl_params pp = strix_ppl_default_params();
    pp.n_ctx = n_ctx;
    pp.stride = o.stride;
    pp.n_batch = n_ctx;
    pp.kl_save = o.kl_save;
    pp.kl_base = o.kl_base;
    cp.n_ctx = cp.n_batch = pp.n_ctx = pp.n_batch = ppl_window(o.kl_base, n_ctx);
    if (strix_context_create(m, &cp, &ctx, &err))
        die("%s", err.msg);
    strix_router *router = route_apply(&o, m, ctx); /* accounting, with or without */
    double t0 = now();
    if (isatty(2) || getenv("STRIX_PROGRESS")) {
        pp.progress = progress;
        pp.user = &t0;
    }
    struct strix_ppl_result r = {.struct_size = sizeof r};
    if (strix_perplexity(m, ctx, ids, n_tok, &pp, &r, &err))
        die("ppl: %s", err.msg);
    route_report(ctx, "ppl");
    if (o.json) {
        struct strix_route_stats st = {.struct_size = sizeof st};
        if (strix_context_route_stats(ctx, &st, &err))
            die("%s", err.msg);
        printf("{\"ppl\": %.6f, \"nll\": %.6f, \"nll_stderr\": %.6f, \"n_scored\": %lld, "
               "\"n_ctx\": %d, \"layers_executed\": %.6f, \"flops\": %.6g, "
               "\"flops_per_token\": %.6g, \"kv_bytes\": %llu, \"keep_requested\": %.6g}\n",
               r.ppl, r.nll, r.nll_stderr, (long long)r.n_scored, r.n_ctx,
               st.pairs ? (double)st.pairs_run / (double)st.pairs : 1.0, st.flops,
               st.n_tokens ? st.flops / (double)st.n_tokens : 0.0,
               (unsigned long long)st.kv_bytes_peak, route_requested_keep());
        strix_context_free(ctx);
        strix_router_free(router);
        free(ids);
        free(text);
        strix_model_free(m);
        return 0;
    }
    ppl_print(&o, &r, len, n_tok);
    strix_context_free(ctx);
    strix_router_free(router);
    free(ids);
    free(text);
    strix_model_free(m);
    return 0;
}
