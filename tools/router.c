/*
 * router.c - dynamic depth in the strix tool: `strix router train` (decision
 * modules trained with the base model frozen), `strix router map` (which
 * layers each token ran, as an SVG heat map and CSV), and the skipping
 * options run, ppl and bench share (--router, --keep, --skip-random,
 * --skip-layers) with their accounting on stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
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
    const char *p = strcmp(list, "none") == 0 ? "" : list;
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

static double requested_keep = 1.0; /* of the last route_apply */

double route_requested_keep(void)
{
    return requested_keep;
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
    requested_keep = 1.0;
    if (r)
        requested_keep = rp.keep > 0.0f ? rp.keep : strix_router_keep(r);
    else if (rp.random_keep > 0.0f)
        requested_keep = rp.random_keep;
    for (int l = 0; mask && l < in.n_layer; l++)
        requested_keep -= mask[l] ? 1.0 / in.n_layer : 0.0;
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
            "%s: layers executed %.4f (requested %.4f; %llu of %llu token-layer pairs), %.4g "
            "FLOPs (%.4g per token), KV %llu bytes held, peak %llu\n",
            what, st.pairs ? (double)st.pairs_run / (double)st.pairs : 1.0, requested_keep,
            (unsigned long long)st.pairs_run, (unsigned long long)st.pairs, st.flops,
            st.flops / (double)st.n_tokens, (unsigned long long)st.kv_bytes,
            (unsigned long long)st.kv_bytes_peak);
}

/* ---- router train ---- */

struct bar {
    double t0;
    int tty;
    char head[512]; /* printed before the first step */
};

static int train_progress(void *user, int step, int n_steps, double loss, double frac)
{
    struct bar *b = user;
    if (b->head[0]) {
        fputs(b->head, stderr);
        b->head[0] = '\0';
    }
    if (!b->tty && step != 1 && step != n_steps && step % 20 != 0)
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

static void train_val(void *user, int step, double loss, double frac, int best)
{
    struct bar *b = user;
    if (b->head[0]) {
        fputs(b->head, stderr);
        b->head[0] = '\0';
    }
    fprintf(stderr, "val: step %d loss %.4f (ppl %.3f) executed %.3f%s\n", step, loss, exp(loss),
            frac, best ? " best" : "");
}

static int router_train(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc - 1, argv + 1, &o,
               " m vocab f o keep epochs lr window t seed skip-layers penalty lora lora-out "
               "freeze-router router lora-lr ");
    if (!o.file || !o.out)
        die("router train needs -f TEXT and -o R.gguf");
    if (!o.lora_rank != !o.lora_out)
        die("--lora RANK and --lora-out ADAPTED.gguf go together");
    if (o.freeze_router && !(o.lora_rank && (o.skip_layers || o.router)))
        die("--freeze-router needs --lora and --skip-layers or --router");
    if (o.router && o.skip_layers)
        die("--router and --skip-layers are two different starts: give one");
    if (o.lora_out && strcmp(o.lora_out, o.out) == 0)
        die("--lora-out and -o name the same file");
    refuse_overwrite(o.out, (const char *const[]){o.model, o.vocab, o.file}, 3);
    if (o.lora_out)
        refuse_overwrite(o.lora_out, (const char *const[]){o.model, o.vocab, o.file}, 3);
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
    if (opt_given(&o, "penalty"))
        tp.penalty = o.penalty;
    if (o.n_threads)
        tp.n_threads = o.n_threads;
    tp.seed = o.seed_given ? o.sp.seed : 1;
    /* a tenth of the windows (the text's end) chooses the checkpoint */
    const int n_win = (n_tok - 1) / tp.window;
    tp.val_windows = n_win >= 10 ? n_win / 10 : 0;
    tp.on_val = train_val;
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    uint8_t *init = o.skip_layers ? parse_layers(o.skip_layers, in.n_layer) : NULL;
    tp.init_skip = init;
    strix_router *r0 = NULL;
    strix_error lerr;
    if (o.router && strix_router_load(o.router, m, &r0, &lerr))
        die("%s", lerr.msg);
    tp.init_router = r0;
    tp.lora_rank = o.lora_rank;
    tp.lora_out = o.lora_out;
    tp.freeze_router = o.freeze_router;
    if (opt_given(&o, "lora-lr"))
        tp.lora_lr = o.lora_lr;
    struct bar b = {now(), isatty(2), ""};
    tp.progress = train_progress;
    tp.user = &b;
    snprintf(b.head, sizeof b.head,
             "train: %d tokens of %s, windows of %d (%d for validation), keep %.2f, %d epoch(s), "
             "seed %llu%s%s%s\n",
             n_tok, o.file, tp.window, tp.val_windows, (double)tp.keep, tp.epochs,
             (unsigned long long)tp.seed,
             o.freeze_router && init ? ", removing layers (frozen) "
             : init                  ? ", warm start from removing layers "
             : o.router              ? (o.freeze_router ? ", the router (frozen) " : ", from the router ")
                                     : "",
             init ? o.skip_layers : o.router ? o.router : "", o.lora_rank ? ", adapters" : "");
    strix_router *r = NULL;
    strix_error err;
    if (strix_router_train(m, ids, n_tok, &tp, &r, &err))
        die("router train: %s", err.msg);
    if (strix_router_save(r, o.out, &err))
        die("%s", err.msg);
    if (o.lora_out)
        fprintf(stderr, "train: wrote the adapted model %s (adapters of rank %d merged)\n",
                o.lora_out, o.lora_rank);
    fprintf(stderr, "train: wrote %s (%.1fs)\n", o.out, now() - b.t0);
    free(init);
    strix_router_free(r0);
    strix_router_free(r);
    free(ids);
    free(text);
    strix_model_free(m);
    return 0;
}

/* ---- router map ---- */

enum { KIND_PUNCT, KIND_FUNC, KIND_CONTENT, KIND_NUMBER, KIND_OTHER, N_KINDS };
static const char *const kind_name[N_KINDS] = {"punctuation", "function", "content", "number",
                                               "other"};

static int token_kind(const char *piece)
{
    static const char *const func[] = {
        "the", "a",    "an",   "and", "or",   "but",  "of",   "to",   "in",    "on",   "at",
        "for", "with", "from", "by",  "is",   "was",  "are",  "were", "be",    "been", "he",
        "she", "it",   "they", "we",  "you",  "i",    "his",  "her",  "their", "its",  "that",
        "this", "as",  "so",   "not", "had",  "has",  "have", "did",  "do",    "will", "would",
        "can", "could", "there", "then", "than", "when", "if", "my",   "me",    "him",  "them",
        "what", "who", "all",  "very", "thee", "thou", "thy", "shall"};
    char w[64];
    int n = 0, alpha = 0, digit = 0, punct = 0;
    for (const char *p = piece; *p && n < 63; p++) {
        const unsigned char ch = (unsigned char)*p;
        if (isspace(ch))
            continue;
        alpha += isalpha(ch) != 0 || ch >= 0x80;
        digit += isdigit(ch) != 0;
        punct += ispunct(ch) != 0;
        w[n++] = (char)tolower(ch);
    }
    w[n] = '\0';
    if (n == 0)
        return KIND_OTHER;
    if (digit)
        return KIND_NUMBER;
    if (!alpha)
        return punct ? KIND_PUNCT : KIND_OTHER;
    for (size_t i = 0; i < sizeof func / sizeof func[0]; i++)
        if (strcmp(w, func[i]) == 0)
            return KIND_FUNC;
    return KIND_CONTENT;
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
}

static void csv_text(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
    }
    fputc('"', f);
}

#define MAP_TEXTS 8
#define MAP_SHOW 160 /* tokens of the first text drawn one by one */

static int router_map(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc - 1, argv + 1, &o, " m vocab f o router keep c t ");
    if (!o.file || !o.out || !o.router)
        die("router map needs -f TEXT[,TEXT...] --router R.gguf -o MAP.svg");
    strix_model *m = load_model(&o, 0);
    struct strix_model_info in = {.struct_size = sizeof in};
    strix_model_get_info(m, &in);
    const int nl = in.n_layer;
    struct strix_context_params cp = strix_context_default_params();
    cp.n_ctx = o.n_ctx ? o.n_ctx : 256;
    cp.n_batch = 64;
    cp.n_threads = o.n_threads;
    cp.kv_grow = 1;
    strix_context *ctx;
    strix_error err;
    if (strix_context_create(m, &cp, &ctx, &err))
        die("%s", err.msg);
    strix_router *r = route_apply(&o, m, ctx);
    char csv_path[4096], sum_path[4096];
    const char *dot = strrchr(o.out, '.');
    const int stem = dot && !strchr(dot, '/') ? (int)(dot - o.out) : (int)strlen(o.out);
    snprintf(csv_path, sizeof csv_path, "%.*s.csv", stem, o.out);
    snprintf(sum_path, sizeof sum_path, "%.*s.summary.csv", stem, o.out);
    FILE *csv = fopen(csv_path, "w");
    if (!csv)
        die("cannot write %s", csv_path);
    fprintf(csv, "text,index,token,piece,kind");
    for (int l = 0; l < nl; l++)
        fprintf(csv, ",layer%d", l);
    fputc('\n', csv);
    /* counts[text][kind][layer]: executed, tokens[text][kind] */
    static double ran[MAP_TEXTS][N_KINDS][256];
    static long n_kind[MAP_TEXTS][N_KINDS];
    char names[MAP_TEXTS][64];
    uint8_t *show = calloc((size_t)MAP_SHOW * (size_t)nl, 1);
    char(*show_piece)[16] = calloc(MAP_SHOW, sizeof *show_piece);
    int n_show = 0, n_texts = 0;
    if (!show || !show_piece || nl > 256)
        die("out of memory (or more than 256 layers)");
    char *files = strdup(o.file);
    for (char *save = NULL, *path = strtok_r(files, ",", &save); path;
         path = strtok_r(NULL, ",", &save)) {
        if (n_texts == MAP_TEXTS)
            die("router map: at most %d texts", MAP_TEXTS);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(names[n_texts], sizeof names[n_texts], "%s", base);
        size_t len = 0;
        char *text = read_file(path, &len);
        int n_tok = 0;
        strix_token *ids = tokenize(m, text, len, 1, &n_tok);
        uint8_t dec[64 * 256];
        strix_token prev = -1;
        for (int off = 0; off < n_tok; off += 64) {
            if (off % cp.n_ctx == 0 && strix_kv_truncate(ctx, 0, &err))
                die("%s", err.msg);
            int n = n_tok - off < 64 ? n_tok - off : 64;
            const int room = cp.n_ctx - off % cp.n_ctx;
            n = n < room ? n : room;
            if (strix_decode(ctx, ids + off, NULL, n, NULL, &err))
                die("%s", err.msg);
            const int got = strix_route_last(ctx, dec, n);
            for (int t = 0; t < got; t++) {
                char piece[64];
                const int k = strix_token_to_text(m, prev, ids[off + t], piece, sizeof piece);
                piece[k > 0 && k < (int)sizeof piece ? k : 0] = '\0';
                prev = ids[off + t];
                const int kind = token_kind(piece);
                n_kind[n_texts][kind]++;
                fprintf(csv, "%s,%d,%d,", names[n_texts], off + t, ids[off + t]);
                csv_text(csv, piece);
                fprintf(csv, ",%s", kind_name[kind]);
                for (int l = 0; l < nl; l++) {
                    fprintf(csv, ",%d", dec[t * nl + l]);
                    ran[n_texts][kind][l] += dec[t * nl + l];
                }
                fputc('\n', csv);
                if (n_texts == 0 && n_show < MAP_SHOW) {
                    memcpy(show + (size_t)n_show * nl, dec + t * nl, (size_t)nl);
                    snprintf(show_piece[n_show], 16, "%.15s", piece);
                    n_show++;
                }
            }
            off -= 64 - n; /* a short chunk at a window's end */
        }
        free(ids);
        free(text);
        n_texts++;
    }
    fclose(csv);
    FILE *sum = fopen(sum_path, "w");
    if (!sum)
        die("cannot write %s", sum_path);
    fprintf(sum, "text,kind,tokens");
    for (int l = 0; l < nl; l++)
        fprintf(sum, ",layer%d", l);
    fprintf(sum, ",all\n");
    for (int x = 0; x < n_texts; x++)
        for (int k = 0; k < N_KINDS; k++) {
            if (!n_kind[x][k])
                continue;
            double all = 0;
            fprintf(sum, "%s,%s,%ld", names[x], kind_name[k], n_kind[x][k]);
            for (int l = 0; l < nl; l++) {
                fprintf(sum, ",%.4f", ran[x][k][l] / (double)n_kind[x][k]);
                all += ran[x][k][l];
            }
            fprintf(sum, ",%.4f\n", all / ((double)n_kind[x][k] * nl));
        }
    fclose(sum);
    /* the picture: the first text token by token, then the executed
     * fraction per layer for each (text, kind) */
    const int cw = 7, ch = 14, left = 70, top = 30;
    int n_cols = 0;
    for (int x = 0; x < n_texts; x++)
        for (int k = 0; k < N_KINDS; k++)
            n_cols += n_kind[x][k] > 0;
    const int top2 = top + nl * ch + 60, cw2 = 70;
    const int width = left + (MAP_SHOW * cw > n_cols * cw2 ? MAP_SHOW * cw : n_cols * cw2) + 20;
    const int height = top2 + nl * ch + 70;
    FILE *svg = fopen(o.out, "w");
    if (!svg)
        die("cannot write %s", o.out);
    fprintf(svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"monospace\" font-size=\"10\">\n<rect width=\"100%%\" "
            "height=\"100%%\" fill=\"white\"/>\n",
            width, height);
    fprintf(svg, "<text x=\"4\" y=\"16\" font-size=\"12\">layers run by each token of ");
    xml_text(svg, names[0]);
    fprintf(svg, " (dark: executed; layer 0 at the top)</text>\n");
    for (int l = 0; l < nl; l++)
        fprintf(svg, "<text x=\"4\" y=\"%d\">layer %d</text>\n", top + l * ch + 10, l);
    for (int t = 0; t < n_show; t++) {
        for (int l = 0; l < nl; l++)
            fprintf(svg, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n",
                    left + t * cw, top + l * ch, cw - 1, ch - 1,
                    show[(size_t)t * nl + l] ? "#1f4e79" : "#e8eef5");
        fprintf(svg, "<text transform=\"translate(%d,%d) rotate(90)\" font-size=\"7\">",
                left + t * cw + 1, top + nl * ch + 2);
        xml_text(svg, show_piece[t]);
        fprintf(svg, "</text>\n");
    }
    fprintf(svg, "<text x=\"4\" y=\"%d\" font-size=\"12\">executed fraction per layer, by text "
                 "and kind of token</text>\n",
            top2 - 24);
    for (int l = 0; l < nl; l++)
        fprintf(svg, "<text x=\"4\" y=\"%d\">layer %d</text>\n", top2 + l * ch + 10, l);
    int col = 0;
    for (int x = 0; x < n_texts; x++)
        for (int k = 0; k < N_KINDS; k++) {
            if (!n_kind[x][k])
                continue;
            for (int l = 0; l < nl; l++) {
                const double fr = ran[x][k][l] / (double)n_kind[x][k];
                const int shade = (int)(232 - 200 * fr);
                fprintf(svg,
                        "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                        "fill=\"rgb(%d,%d,%d)\"/><text x=\"%d\" y=\"%d\" fill=\"%s\">%.2f</text>\n",
                        left + col * cw2, top2 + l * ch, cw2 - 2, ch - 1, shade / 4, shade / 2 + 20,
                        shade, left + col * cw2 + 18, top2 + l * ch + 10,
                        fr > 0.5 ? "white" : "black", fr);
            }
            fprintf(svg, "<text x=\"%d\" y=\"%d\" font-size=\"8\">", left + col * cw2,
                    top2 + nl * ch + 12);
            xml_text(svg, names[x]);
            fprintf(svg, "</text><text x=\"%d\" y=\"%d\" font-size=\"8\">%s (%ld)</text>\n",
                    left + col * cw2, top2 + nl * ch + 24, kind_name[k], n_kind[x][k]);
            col++;
        }
    fprintf(svg, "</svg>\n");
    fclose(svg);
    fprintf(stderr, "map: wrote %s, %s and %s\n", o.out, csv_path, sum_path);
    route_report(ctx, "map");
    free(files);
    free(show);
    free(show_piece);
    strix_context_free(ctx);
    strix_router_free(r);
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
    if (strcmp(argv[2], "map") == 0)
        return router_map(argc, argv);
    die("router: unknown subcommand '%s' (train or map)", argv[2]);
}
