/*
 * analyze.c - `strix analyze`: per-layer statistics of a model's hidden
 * states over a text (linearity with and without the residual, input-output
 * cosine, anisotropy, intrinsic dimension, PCA-90; strix_analyze) written
 * as a JSON report, optionally a CSV table and SVG plots of each profile
 * over depth. Uses only the public header.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void progress(void *user, int phase, int done, int total)
{
    const double t0 = *(const double *)user;
    const double el = now() - t0;
    fprintf(stderr, "\ranalyze: %s %d/%d [", phase ? "layer stats" : "window", done, total);
    const int width = 30, fill = total > 0 ? done * width / total : width;
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %.1fs ", el);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Writes buf to path through a temporary file beside it, renamed over it. */
static void write_whole(const char *path, const char *buf, size_t len)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        die("cannot write %s: %s", tmp, strerror(errno));
    const int ok = fwrite(buf, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        const int e = errno;
        remove(tmp);
        die("cannot write %s: %s", path, strerror(e));
    }
}

static void json_num(FILE *f, const char *key, double v, int last)
{
    if (isnan(v) || isinf(v))
        fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
    else
        fprintf(f, "\"%s\": %.9g%s", key, v, last ? "" : ", ");
}

static void json_stats(FILE *f, const struct strix_layer_stats *s, int layer)
{
    fputc('{', f);
    if (layer >= 0)
        fprintf(f, "\"layer\": %d, ", layer);
    json_num(f, "linearity", s->linearity, 0);
    json_num(f, "linearity_no_residual", s->linearity_no_residual, 0);
    json_num(f, "cosine", s->cosine, 0);
    json_num(f, "cosine_sd", s->cosine_sd, 0);
    json_num(f, "cosine_p10", s->cosine_p10, 0);
    json_num(f, "cosine_p90", s->cosine_p90, 0);
    json_num(f, "anisotropy", s->anisotropy, 0);
    json_num(f, "pair_cosine", s->pair_cosine, 0);
    json_num(f, "intrinsic_dim", s->intrinsic_dim, 0);
    fprintf(f, "\"pca90\": %d, \"n_vectors\": %d}", s->pca90, s->n_vectors);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* ---- SVG line plots ---- */

struct series {
    const char *name, *color;
    double v[4096];
};

static void svg_plot(const char *path, const char *title, const char *ylabel, int n,
                     const struct series *s, int n_series)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < n; i++)
            if (!isnan(s[k].v[i])) {
                lo = fmin(lo, s[k].v[i]);
                hi = fmax(hi, s[k].v[i]);
            }
    if (!(lo <= hi))
        lo = 0, hi = 1;
    if (hi - lo < 1e-9)
        lo -= 0.5, hi += 0.5;
    const double pad = 0.05 * (hi - lo);
    lo -= pad, hi += pad;
    const int W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        die("out of memory");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" "
               "height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">%s</text>\n", L, title);
    const double pw = W - L - R, ph = H - T - B;
#define PX(i) (L + (n > 1 ? pw * (i) / (n - 1) : pw / 2))
#define PY(v) (T + ph * (1.0 - ((v) - lo) / (hi - lo)))
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" "
               "stroke=\"#444\"/>\n", L, T, pw, ph);
    for (int g = 0; g <= 4; g++) { /* y grid and labels */
        const double v = lo + (hi - lo) * g / 4;
        fprintf(f, "<line x1=\"%d\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                L, L + pw, PY(v), PY(v), L - 6, PY(v) + 4, v);
    }
    for (int i = 0; i < n; i++) /* x labels: layers */
        if (n <= 32 || i % (n / 16 + 1) == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", PX(i),
                    H - B + 18, i);
    fprintf(f, "<text x=\"%g\" y=\"%d\" text-anchor=\"middle\">layer</text>\n", L + pw / 2,
            H - 10);
    fprintf(f, "<text x=\"16\" y=\"%g\" transform=\"rotate(-90 16 %g)\" "
               "text-anchor=\"middle\">%s</text>\n", T + ph / 2, T + ph / 2, ylabel);
    for (int k = 0; k < n_series; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                s[k].color);
        for (int i = 0; i < n; i++)
            if (!isnan(s[k].v[i]))
                fprintf(f, "%.1f,%.1f ", PX(i), PY(s[k].v[i]));
        fprintf(f, "\"/>\n");
        for (int i = 0; i < n; i++)
            if (!isnan(s[k].v[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(i),
                        PY(s[k].v[i]), s[k].color);
        fprintf(f, "<rect x=\"%g\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                   "<text x=\"%g\" y=\"%d\">%s</text>\n", L + pw - 200, T + 14 + 16 * k,
                s[k].color, L + pw - 184, T + 18 + 16 * k, s[k].name);
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    fclose(f);
    write_whole(path, buf, len);
    free(buf);
}

static void write_svgs(const char *dir, const struct strix_layer_stats *ls, int n)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        die("cannot create %s: %s", dir, strerror(errno));
    static struct series s[2];
    char path[4096];
    const struct {
        const char *file, *title, *ylabel, *n0, *n1;
        size_t f0, f1;
        int two;
    } plots[] = {
        {"linearity.svg", "Linearity score per layer", "linearity", "with residual",
         "without residual (Y - X)", offsetof(struct strix_layer_stats, linearity),
         offsetof(struct strix_layer_stats, linearity_no_residual), 1},
        {"cosine.svg", "Cosine of a token's input and output", "cosine", "mean", "10th percentile",
         offsetof(struct strix_layer_stats, cosine), offsetof(struct strix_layer_stats, cosine_p10),
         1},
        {"anisotropy.svg", "Anisotropy of the layer outputs", "share / cosine",
         "first PC's share of variance", "mean random-pair cosine",
         offsetof(struct strix_layer_stats, anisotropy),
         offsetof(struct strix_layer_stats, pair_cosine), 1},
        {"intrinsic_dim.svg", "Intrinsic dimension (TwoNN)", "dimension", "TwoNN", "",
         offsetof(struct strix_layer_stats, intrinsic_dim), 0, 0},
    };
    for (size_t p = 0; p < sizeof plots / sizeof plots[0]; p++) {
        s[0].name = plots[p].n0, s[0].color = "#1f77b4";
        s[1].name = plots[p].n1, s[1].color = "#d62728";
        for (int i = 0; i < n; i++) {
            s[0].v[i] = *(const double *)((const char *)&ls[i] + plots[p].f0);
            s[1].v[i] = *(const double *)((const char *)&ls[i] + plots[p].f1);
        }
        snprintf(path, sizeof path, "%s/%s", dir, plots[p].file);
        svg_plot(path, plots[p].title, plots[p].ylabel, n, s, plots[p].two ? 2 : 1);
    }
    s[0].name = "components for 90% of variance";
    for (int i = 0; i < n; i++)
        s[0].v[i] = ls[i].pca90;
    snprintf(path, sizeof path, "%s/pca90.svg", dir);
    svg_plot(path, "PCA-90 per layer", "components", n, s, 1);
}

/* Statistics of model m over the text file at path (used by prune's auto
 * choices too). Returns n_layer; layers must hold 4096. */
int analysis_run(const strix_model *m, const char *path, int n_ctx, int max_tokens,
                 int n_threads, struct strix_layer_stats *layers, struct strix_layer_stats *embd,
                 int *n_tokens)
{
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    if (in.n_layer > 4096)
        die("more than 4096 layers");
    size_t len;
    char *text = read_file(path, &len);
    int n = 0;
    strix_token *ids = tokenize(m, text, len, 0, &n);
    *n_tokens = max_tokens && n > max_tokens ? max_tokens : n;
    struct strix_analyze_params ap = strix_analyze_default_params();
    ap.n_ctx = n_ctx;
    ap.max_tokens = max_tokens;
    ap.n_threads = n_threads;
    double t0 = now();
    if (isatty(2) || getenv("STRIX_PROGRESS")) {
        ap.progress = progress;
        ap.user = &t0;
    }
    strix_error err;
    if (strix_analyze(m, ids, n, &ap, layers, embd, &err))
        die("%s", err.msg);
    free(ids);
    free(text);
    return in.n_layer;
}

int cmd_analyze(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o, " m f o csv svg c max-tokens t ");
    const char *model = o.model, *file = o.file, *out = o.out, *csv = o.csv, *svg = o.svg;
    const int n_ctx = opt_given(&o, "c") ? o.n_ctx : 256, max_tokens = o.max_tokens,
              n_threads = o.n_threads;
    if (!file || !out)
        die("analyze needs -f TEXT and -o REPORT.json");
    refuse_overwrite(out, (const char *const[]){model, file}, 2);
    strix_model *m = load_model(&o, 0);
    static struct strix_layer_stats ls[4096];
    struct strix_layer_stats es;
    int n_tok = 0;
    const double t0 = now();
    const int n_layer = analysis_run(m, file, n_ctx, max_tokens, n_threads, ls, &es, &n_tok);
    const double secs = now() - t0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        die("out of memory");
    fprintf(f, "{\n  \"model\": ");
    json_str(f, model);
    fprintf(f, ",\n  \"text\": ");
    json_str(f, file);
    fprintf(f, ",\n  \"n_tokens\": %d,\n  \"n_ctx\": %d,\n  \"seconds\": %.3f,\n", n_tok, n_ctx,
            secs);
    fprintf(f, "  \"layers\": [\n");
    for (int l = 0; l < n_layer; l++) {
        fprintf(f, "    ");
        json_stats(f, &ls[l], l);
        fprintf(f, "%s\n", l + 1 < n_layer ? "," : "");
    }
    fprintf(f, "  ],\n  \"embeddings\": ");
    json_stats(f, &es, -1);
    fprintf(f, "\n}\n");
    fclose(f);
    write_whole(out, buf, len);
    free(buf);
    if (csv) {
        f = open_memstream(&buf, &len);
        if (!f)
            die("out of memory");
        fprintf(f, "layer,linearity,linearity_no_residual,cosine,cosine_sd,cosine_p10,cosine_p90,"
                   "anisotropy,pair_cosine,intrinsic_dim,pca90,n_vectors\n");
        for (int l = 0; l <= n_layer; l++) {
            const struct strix_layer_stats *s = l < n_layer ? &ls[l] : &es;
            if (l < n_layer)
                fprintf(f, "%d", l);
            else
                fprintf(f, "embeddings");
            fprintf(f, ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%d,%d\n", s->linearity,
                    s->linearity_no_residual, s->cosine, s->cosine_sd, s->cosine_p10,
                    s->cosine_p90, s->anisotropy, s->pair_cosine, s->intrinsic_dim, s->pca90,
                    s->n_vectors);
        }
        fclose(f);
        write_whole(csv, buf, len);
        free(buf);
    }
    if (svg)
        write_svgs(svg, ls, n_layer);
    fprintf(stderr, "analyze: %d layers, %d tokens in %.2f s; report %s\n", n_layer, n_tok, secs,
            out);
    printf("layer  linearity  no-residual  cosine  anisotropy  pair-cos  TwoNN   PCA90\n");
    for (int l = 0; l < n_layer; l++)
        printf("%5d  %9.5f  %11.5f  %6.4f  %10.4f  %8.4f  %6.2f  %5d\n", l, ls[l].linearity,
               ls[l].linearity_no_residual, ls[l].cosine, ls[l].anisotropy, ls[l].pair_cosine,
               ls[l].intrinsic_dim, ls[l].pca90);
    printf("embd   %9s  %11s  %6s  %10.4f  %8.4f  %6.2f  %5d\n", "-", "-", "-", es.anisotropy,
           es.pair_cosine, es.intrinsic_dim, es.pca90);
    strix_model_free(m);
    return 0;
}
