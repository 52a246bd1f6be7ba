/*
 * prune.c - `strix prune`: magnitude or Wanda pruning (unstructured or N:M),
 * depth pruning and blocks replaced by linear maps, written as a new GGUF
 * file (strix_prune); `auto:K` choices come from the layer statistics of
 * `strix analyze` on the calibration text. Uses only the public header.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void progress(void *user, int done, int total)
{
    const double t0 = *(const double *)user;
    fprintf(stderr, "\rprune: weight %d/%d [", done, total);
    const int width = 30, fill = total > 0 ? done * width / total : width;
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %.1fs ", now() - t0);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* "3,5,7-9" into ids (layers are checked by the library); auto:K sets *k. */
static int parse_layers(const char *flag, const char *s, int *ids, int cap, int *k_auto)
{
    *k_auto = 0;
    if (strncmp(s, "auto:", 5) == 0) {
        *k_auto = (int)parse_long(flag, s + 5, 1, 4096);
        return 0;
    }
    int n = 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok + 1, '-');
        long a, b;
        if (dash) {
            *dash = '\0';
            a = parse_long(flag, tok, 0, 1 << 20);
            b = parse_long(flag, dash + 1, 0, 1 << 20);
            if (b < a)
                die("%s: range %ld-%ld is empty", flag, a, b);
        } else {
            a = b = parse_long(flag, tok, -(1L << 20), 1 << 20);
        }
        for (long v = a; v <= b; v++) {
            if (n >= cap)
                die("%s: more than %d layers", flag, cap);
            ids[n++] = (int)v;
        }
    }
    if (n == 0)
        die("%s: no layers given", flag);
    return n;
}

/* The k layers with the highest score (linearity or cosine), not in `taken`. */
static int pick_auto(const struct strix_layer_stats *ls, int n_layer, int k, int by_cosine,
                     const char *taken, int *ids)
{
    if (k >= n_layer)
        die("auto:%d: the model has only %d layers", k, n_layer);
    char used[4096] = {0};
    memcpy(used, taken, (size_t)n_layer);
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int l = 0; l < n_layer; l++) {
            const double s = by_cosine ? ls[l].cosine : ls[l].linearity;
            const double b = best < 0 ? 0 : by_cosine ? ls[best].cosine : ls[best].linearity;
            if (!used[l] && (best < 0 || s > b))
                best = l;
        }
        used[best] = 1;
        ids[i] = best;
    }
    return k;
}

int cmd_prune(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o,
               " m f o method sparsity pattern drop-layers linearize criterion c max-tokens t ");
    const char *model = o.model, *file = o.file, *out = o.out, *method = o.method;
    const char *pattern = o.pattern, *drop = o.drop_layers, *lin = o.linearize;
    const char *criterion = o.criterion ? o.criterion : "linearity";
    const float sparsity = opt_given(&o, "sparsity") ? o.sparsity : -1.0f;
    const int n_ctx = opt_given(&o, "c") ? o.n_ctx : 256, max_tokens = o.max_tokens,
              n_threads = o.n_threads;
    if (!out)
        die("prune needs -o OUT.gguf");
    if (strcmp(criterion, "linearity") != 0 && strcmp(criterion, "cosine") != 0)
        die("--criterion: '%s' is not linearity or cosine", criterion);
    if (method && sparsity < 0.0f && !pattern)
        die("--method %s needs --sparsity S (in [0, 1)) or --pattern N:M", method);
    if (!method && (pattern || sparsity >= 0.0f))
        die("--sparsity and --pattern need --method magnitude|wanda");
    if (pattern && sparsity >= 0.0f)
        die("give --sparsity or --pattern, not both");
    struct strix_prune_params pp = strix_prune_default_params();
    pp.method = method;
    pp.sparsity = sparsity < 0.0f ? 0.0f : sparsity;
    if (sparsity >= 0.0f && !(sparsity < 1.0f))
        die("--sparsity %g is outside [0, 1)", (double)sparsity);
    if (pattern) {
        char *colon = strchr(pattern, ':');
        if (!colon)
            die("--pattern '%s' is not N:M (e.g. 2:4)", pattern);
        char nbuf[32];
        snprintf(nbuf, sizeof nbuf, "%.*s", (int)(colon - pattern), pattern);
        pp.nm_n = (int)parse_long("--pattern N", nbuf, 1, 64);
        pp.nm_m = (int)parse_long("--pattern M", colon + 1, 1, 64);
        if (pp.nm_n > pp.nm_m)
            die("--pattern %s: N (weights kept) must not exceed M (group size)", pattern);
    }
    refuse_overwrite(out, (const char *const[]){model, file}, 2);
    strix_model *m = load_model(&o, 0);
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    static int drop_ids[4096], lin_ids[4096];
    int k_drop = 0, k_lin = 0;
    pp.n_drop = drop ? parse_layers("--drop-layers", drop, drop_ids, 4096, &k_drop) : 0;
    pp.n_linearize = lin ? parse_layers("--linearize", lin, lin_ids, 4096, &k_lin) : 0;
    const int need_text = (method && strcmp(method, "wanda") == 0) || lin || k_drop;
    if (need_text && !file)
        die("prune: %s needs calibration text (-f TEXT)",
            lin ? "--linearize" : k_drop ? "--drop-layers auto:K" : "--method wanda");
    if (k_drop || k_lin) {
        static struct strix_layer_stats ls[4096];
        int n_tok;
        analysis_run(m, file, n_ctx, max_tokens, n_threads, ls, NULL, &n_tok);
        char taken[4096] = {0};
        for (int i = 0; i < pp.n_linearize; i++)
            if (lin_ids[i] >= 0 && lin_ids[i] < in.n_layer)
                taken[lin_ids[i]] = 1;
        if (k_drop)
            pp.n_drop = pick_auto(ls, in.n_layer, k_drop, criterion[0] == 'c', taken, drop_ids);
        for (int i = 0; i < pp.n_drop; i++)
            taken[drop_ids[i]] = 1;
        if (k_lin)
            pp.n_linearize =
                pick_auto(ls, in.n_layer, k_lin, criterion[0] == 'c', taken, lin_ids);
        fprintf(stderr, "prune: by %s:", criterion);
        for (int i = 0; i < pp.n_drop && k_drop; i++)
            fprintf(stderr, " drop %d (%.5f)", drop_ids[i],
                    criterion[0] == 'c' ? ls[drop_ids[i]].cosine : ls[drop_ids[i]].linearity);
        for (int i = 0; i < pp.n_linearize && k_lin; i++)
            fprintf(stderr, " linearize %d (%.5f)", lin_ids[i],
                    criterion[0] == 'c' ? ls[lin_ids[i]].cosine : ls[lin_ids[i]].linearity);
        fputc('\n', stderr);
    }
    pp.drop_layers = drop_ids;
    pp.linearize_layers = lin_ids;
    pp.n_ctx = n_ctx;
    pp.n_threads = n_threads;
    strix_token *ids = NULL;
    int n_tok = 0;
    char *text = NULL;
    if (file) {
        size_t len;
        text = read_file(file, &len);
        ids = tokenize(m, text, len, 0, &n_tok);
        if (max_tokens && n_tok > max_tokens)
            n_tok = max_tokens;
    }
    double t0 = now();
    if (isatty(2) || getenv("STRIX_PROGRESS")) {
        pp.progress = progress;
        pp.user = &t0;
    }
    strix_error err;
    if (strix_prune(m, ids, n_tok, out, &pp, &err))
        die("%s", err.msg);
    fprintf(stderr, "prune: wrote %s in %.2f s", out, now() - t0);
    if (method && pattern)
        fprintf(stderr, " (%s, pattern %s)", method, pattern);
    else if (method)
        fprintf(stderr, " (%s, sparsity %g)", method, (double)sparsity);
    if (pp.n_drop)
        fprintf(stderr, ", %d of %d layers dropped", pp.n_drop, in.n_layer);
    if (pp.n_linearize)
        fprintf(stderr, ", %d layers linearized", pp.n_linearize);
    fputc('\n', stderr);
    free(ids);
    free(text);
    strix_model_free(m);
    return 0;
}
