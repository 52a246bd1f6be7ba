/*
 * router.c - dynamic depth in the strix tool: `strix router train` (decision
 * modules trained with the base model frozen), `strix router map` (which
 * layers each token ran, as an SVG heat map and CSV), and the skipping
 * options run, ppl and bench share (--router, --keep, --skip-random,
 * --skip-layers) with their accounting on stderr.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int route_wanted(const struct opts *o)
{
    return o->router || opt_given(o, "skip-random") || o->skip_layers;
}

/* "1,3,5" -> mask (n_layer); dies on a bad list */
static uint8_t *parse_layers(const char *list, int n_layer)
{
    uint8_t *mask = calloc((size_t)n_layer, 1);
    if (!mask)
        die("out of memory");
    const char *p = list;
    while (*p) {
        char *end;
        const long l = strtol(p, &end, 10);
        if (end == p || l < 0 || l >= n_layer || (*end && *end != ','))
            die("--skip-layers %s: expected layer numbers in [0, %d) separated by commas", list,
                n_layer);
        mask[l] = 1;
        p = *end ? end + 1 : end;
    }
    return mask;
}

strix_router *route_apply(const struct opts *o, const strix_model *m, strix_context *ctx)
{
    const int n_given = !!o->router + !!opt_given(o, "skip-random") + !!o->skip_layers;
    if (n_given > 1)
        die("--router, --skip-random and --skip-layers exclude each other");
    if (opt_given(o, "keep") && !o->router)
        die("--keep goes with --router");
    if (opt_given(o, "keep") && !(o->keep > 0.0f))
        die("--keep %g: expected a value in (0, 1]", (double)o->keep);
    if (opt_given(o, "skip-random") && !(o->skip_random > 0.0f))
        die("--skip-random %g: expected a value in (0, 1]", (double)o->skip_random);
    strix_error err;
    strix_router *r = NULL;
    if (o->router && strix_router_load(o->router, m, &r, &err))
        die("%s", err.msg);
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    uint8_t *mask = o->skip_layers ? parse_layers(o->skip_layers, in.n_layer) : NULL;
    struct strix_route_params rp = strix_route_default_params();
    rp.router = r;
    rp.keep = opt_given(o, "keep") ? o->keep : 0.0f;
    rp.random_keep = o->skip_random;
    rp.seed = o->seed_given ? o->sp.seed : 0;
    rp.skip_layers = mask;
    if (strix_context_set_route(ctx, &rp, &err))
        die("%s", err.msg);
    free(mask);
    return r;
}

void route_report(const strix_context *ctx, const char *what)
{
    struct strix_route_stats st = {.struct_size = sizeof st};
    strix_error err;
    if (strix_context_route_stats(ctx, &st, &err) || st.n_tokens == 0)
        return;
    fprintf(stderr,
            "%s: layers executed %.4f (%llu of %llu token-layer pairs), %.4g FLOPs (%.4g per "
            "token), KV %llu bytes held, peak %llu\n",
            what, st.pairs ? (double)st.pairs_run / (double)st.pairs : 1.0,
            (unsigned long long)st.pairs_run, (unsigned long long)st.pairs, st.flops,
            st.flops / (double)st.n_tokens, (unsigned long long)st.kv_bytes,
            (unsigned long long)st.kv_bytes_peak);
}

/* ---- router train ---- */

struct bar {
    double t0;
    int tty;
};

static int train_progress(void *user, int step, int n_steps, double loss, double frac)
{
    const struct bar *b = user;
    if (!b->tty && step != n_steps && step % 20 != 0)
        return 0;
    const double el = now() - b->t0;
    const int width = 24, fill = n_steps > 0 ? step * width / n_steps : width;
    fprintf(stderr, "%strain: step %d/%d [", b->tty ? "\r" : "", step, n_steps);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] loss %.4f executed %.3f %.0fs, ~%.0fs left%s", loss, frac, el,
            el * (n_steps - step) / step, b->tty && step != n_steps ? " " : "\n");
    fflush(stderr);
    return 0;
}

static int router_train(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc - 1, argv + 1, &o, " m vocab f o keep epochs lr window t seed ");
    if (!o.file || !o.out)
        die("router train needs -f TEXT and -o R.gguf");
    refuse_overwrite(o.out, (const char *const[]){o.model, o.vocab, o.file}, 3);
    strix_model *m = load_model(&o, 0);
    size_t len = 0;
    char *text = read_file(o.file, &len);
    int n_tok = 0;
    strix_token *ids = tokenize(m, text, len, 1, &n_tok);
    struct strix_router_train_params tp = strix_router_train_default_params();
    if (opt_given(&o, "keep")) {
        if (!(o.keep > 0.0f))
            die("--keep %g: expected a value in (0, 1]", (double)o.keep);
        tp.keep = o.keep;
    }
    if (o.epochs)
        tp.epochs = o.epochs;
    if (opt_given(&o, "lr"))
        tp.lr = o.lr;
    if (o.window)
        tp.window = o.window;
    if (o.n_threads)
        tp.n_threads = o.n_threads;
    tp.seed = o.seed_given ? o.sp.seed : 1;
    struct bar b = {now(), isatty(2)};
    tp.progress = train_progress;
    tp.user = &b;
    fprintf(stderr, "train: %d tokens of %s, windows of %d, keep %.2f, %d epoch(s), seed %llu\n",
            n_tok, o.file, tp.window, (double)tp.keep, tp.epochs, (unsigned long long)tp.seed);
    strix_router *r = NULL;
    strix_error err;
    if (strix_router_train(m, ids, n_tok, &tp, &r, &err))
        die("router train: %s", err.msg);
    if (strix_router_save(r, o.out, &err))
        die("%s", err.msg);
    fprintf(stderr, "train: wrote %s (%.1fs)\n", o.out, now() - b.t0);
    strix_router_free(r);
    free(ids);
    free(text);
    strix_model_free(m);
    return 0;
}

int cmd_router(int argc, char **argv)
{
    if (argc < 3 || is_help(argv[2])) {
        usage("router", argc < 3 ? stderr : stdout);
        return argc < 3;
    }
    if (strcmp(argv[2], "train") == 0)
        return router_train(argc, argv);
    die("router: unknown subcommand '%s' (train or map)", argv[2]);
}
