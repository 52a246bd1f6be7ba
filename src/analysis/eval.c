/*
 * eval.c - quality measures of a model on a text: cross-entropy, perplexity
 * and bits per byte, and the KL divergence of one model's next-token
 * distributions from a saved base model's.
 *
 * Windows (positions in a window are 0 .. n_ctx-1; position 0 always holds
 * BOS, as in llama.cpp's perplexity tool, so every window starts the way the
 * model was trained):
 *   chunks (stride 0): window i covers tokens [i*n_ctx, (i+1)*n_ctx); the
 *     first half is context and the tokens at positions n_ctx/2+1 .. n_ctx-1
 *     are scored. Same numbers as llama.cpp's llama-perplexity.
 *   sliding (stride S > 0): the first window scores every token it holds;
 *     each next window ends S tokens further and scores only those S tokens,
 *     each seen with at least n_ctx - S tokens of context. Every token but
 *     the first is scored once.
 *
 * KL base file (little-endian): "STRIXKL1", uint32 n_vocab, uint32 n_ctx,
 * uint32 stride, uint32 0, uint64 n_tokens, int32 tokens[n_tokens], then for
 * each scored token in order float32 log-probabilities[n_vocab].
 *
 * Decoding belongs to context.c; this file only calls the public API.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/atomic_file.h"
#include "model/model.h"
#include "util.h"

#define KL_MAGIC "STRIXKL1"

UTIL_PARAMS_DEFINE(ppl, .n_ctx = 0)

/* The windows of one run: window w spans [begin, end) and scores the tokens
 * at absolute indices [score_from, end). */
struct win {
    int begin, end, score_from;
};

static int n_windows(int n_tokens, int n_ctx, int stride)
{
    if (n_tokens < n_ctx)
        return 0;
    if (stride == 0)
        return n_tokens / n_ctx;
    return 1 + (n_tokens - n_ctx + stride - 1) / stride;
}

static struct win window_at(int w, int n_tokens, int n_ctx, int stride)
{
    struct win r;
    if (stride == 0) {
        r.begin = w * n_ctx;
        r.end = r.begin + n_ctx;
        r.score_from = r.begin + n_ctx / 2 + 1;
    } else if (w == 0) {
        r.begin = 0;
        r.end = n_ctx;
        r.score_from = 1;
    } else {
        const int prev_end = n_ctx + (w - 1) * stride;
        r.end = prev_end + stride < n_tokens ? prev_end + stride : n_tokens;
        r.begin = r.end - n_ctx;
        r.score_from = prev_end;
    }
    return r;
}

static int64_t n_scored_total(int n_tokens, int n_ctx, int stride)
{
    int64_t n = 0;
    const int nw = n_windows(n_tokens, n_ctx, stride);
    for (int w = 0; w < nw; w++) {
        const struct win r = window_at(w, n_tokens, n_ctx, stride);
        n += r.end - r.score_from;
    }
    return n;
}

static int cmp_dbl(const void *a, const void *b) /* ascending, NaN last: a total order */
{
    const double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y))
        return !!isnan(x) - !!isnan(y);
    return (x > y) - (x < y);
}

/* Linear interpolation between the closest ranks of sorted v[0..n). */
static double percentile(const double *v, int64_t n, double q)
{
    if (n <= 0)
        return NAN;
    const double at = q * (double)(n - 1);
    const int64_t i = (int64_t)at;
    const double f = at - (double)i;
    return i + 1 < n ? v[i] * (1.0 - f) + v[i + 1] * f : v[n - 1];
}

static void write_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t read_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Reads a KL base header and its tokens; *tokens is owned by the caller. */
static int kl_open(const char *path, int n_vocab, FILE **fp, strix_token **tokens, int *n_tokens,
                   int *n_ctx, int *stride, strix_error *err)
{
    *fp = NULL;
    *tokens = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, STRIX_ERR_IO, "%s: cannot open", path);
    unsigned char h[32];
    int rc = STRIX_OK;
    if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, KL_MAGIC, 8) != 0) {
        rc = err_set(err, STRIX_ERR_FORMAT, "%s: not a KL base file", path);
        goto fail;
    }
    const uint32_t nv = read_u32(h + 8), nc = read_u32(h + 12), st = read_u32(h + 16);
    uint64_t nt = 0;
    for (int i = 0; i < 8; i++)
        nt |= (uint64_t)h[24 + i] << (8 * i);
    if ((int)nv != n_vocab) {
        rc = err_set(err, STRIX_ERR_ARG, "%s: base vocabulary has %u tokens, the model %d", path,
                     nv, n_vocab);
        goto fail;
    }
    if (nc < 2 || nc > (1u << 24) || st >= nc || nt < nc || nt > (1u << 30)) {
        rc = err_set(err, STRIX_ERR_FORMAT, "%s: bad header (n_ctx %u, stride %u, %llu tokens)",
                     path, nc, st, (unsigned long long)nt);
        goto fail;
    }
    /* the file must hold exactly the rows its header implies */
    const int64_t rows = n_scored_total((int)nt, (int)nc, (int)st);
    const uint64_t want = 32 + 4 * nt + (uint64_t)rows * nv * 4;
    if (fseek(f, 0, SEEK_END) != 0 || (uint64_t)ftell(f) != want ||
        fseek(f, 32, SEEK_SET) != 0) {
        rc = err_set(err, STRIX_ERR_FORMAT, "%s: size does not match its header", path);
        goto fail;
    }
    strix_token *t = util_malloc((size_t)nt * sizeof *t);
    unsigned char *raw = util_malloc((size_t)nt * 4);
    if (!t || !raw) {
        util_free(t);
        util_free(raw);
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (fread(raw, 4, (size_t)nt, f) != (size_t)nt)
        rc = err_set(err, STRIX_ERR_IO, "%s: short read", path);
    for (uint64_t i = 0; rc == STRIX_OK && i < nt; i++) {
        t[i] = (strix_token)read_u32(raw + 4 * i);
        if (t[i] < 0 || t[i] >= n_vocab)
            rc = err_set(err, STRIX_ERR_FORMAT, "%s: token %d out of range", path, t[i]);
    }
    util_free(raw);
    if (rc) {
        util_free(t);
        goto fail;
    }
    *fp = f;
    *tokens = t;
    *n_tokens = (int)nt;
    *n_ctx = (int)nc;
    *stride = (int)st;
    return STRIX_OK;
fail:
    fclose(f);
    return rc;
}

/* Starts a KL base file in af (written through a temporary file, see
 * format/atomic_file.h); the caller commits or aborts it. */
static int kl_create(const char *path, int n_vocab, int n_ctx, int stride,
                     const strix_token *tokens, int n_tokens, struct atomic_file *af,
                     strix_error *err)
{
    int rc = atomic_file_open(af, path, err);
    if (rc)
        return rc;
    FILE *f = af->f;
    unsigned char h[32] = {0};
    memcpy(h, KL_MAGIC, 8);
    write_u32(h + 8, (uint32_t)n_vocab);
    write_u32(h + 12, (uint32_t)n_ctx);
    write_u32(h + 16, (uint32_t)stride);
    write_u32(h + 24, (uint32_t)n_tokens);
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    for (int i = 0; ok && i < n_tokens; i++) {
        unsigned char b[4];
        write_u32(b, (uint32_t)tokens[i]);
        ok = fwrite(b, 1, 4, f) == 4;
    }
    if (!ok) {
        atomic_file_abort(af);
        return err_set(err, STRIX_ERR_IO, "%s: write failed", path);
    }
    return STRIX_OK;
}

/* log-softmax of logits[0..nv) into lp (double accumulation); returns the argmax. */
static int log_softmax(const float *logits, int nv, float *lp)
{
    int best = 0;
    for (int i = 1; i < nv; i++)
        best = logits[i] > logits[best] ? i : best;
    const float mx = logits[best];
    double sum = 0.0;
    for (int i = 0; i < nv; i++)
        sum += exp((double)(logits[i] - mx));
    const double lse = (double)mx + log(sum);
    for (int i = 0; i < nv; i++)
        lp[i] = (float)((double)logits[i] - lse);
    return best;
}

/* The running sums of one evaluation. */
struct tally {
    const strix_model *model;
    const struct strix_ppl_params *params;
    FILE *kf; /* KL file being written (kl_save) or read (kl_base), or NULL */
    int nv;
    float *lp, *lb; /* (nv) this model's and the base's log-probabilities */
    double *kls;    /* (count) each token's KL, with kl_base */
    double nll, nll2, bnll, dnll, dnll2, kl, kl2;
    int64_t count, bytes, same_top;
};

/* Scores token tgt (after prev) under logits. */
static int score_token(struct tally *t, const float *logits, strix_token prev, strix_token tgt,
                       strix_error *err)
{
    const struct strix_ppl_params *params = t->params;
    const int nv = t->nv;
    float *lp = t->lp, *lb = t->lb;
    const int top_q = log_softmax(logits, nv, lp);
    const double l = -(double)lp[tgt];
    char piece[256];
    t->nll += l;
    t->nll2 += l * l;
    const int nb = strix_token_to_text(t->model, prev, tgt, piece, (int)sizeof piece);
    t->bytes += nb > 0 ? nb : 0;
    if (params->kl_save && fwrite(lp, sizeof *lp, (size_t)nv, t->kf) != (size_t)nv)
        return err_set(err, STRIX_ERR_IO, "%s: write failed", params->kl_save);
    if (params->kl_base) {
        if (fread(lb, sizeof *lb, (size_t)nv, t->kf) != (size_t)nv)
            return err_set(err, STRIX_ERR_IO, "%s: short read", params->kl_base);
        double d = 0.0;
        int top_b = 0;
        for (int v = 0; v < nv; v++) {
            d += exp((double)lb[v]) * ((double)lb[v] - (double)lp[v]);
            top_b = lb[v] > lb[top_b] ? v : top_b;
        }
        d = d > 0.0 ? d : 0.0; /* rounding can give -1e-9 */
        t->kls[t->count] = d;
        t->kl += d;
        t->kl2 += d * d;
        t->same_top += top_b == top_q;
        t->bnll += -(double)lb[tgt];
        const double dl = l + (double)lb[tgt]; /* ln p_base - ln p */
        t->dnll += dl;
        t->dnll2 += dl * dl;
    }
    t->count++;
    return STRIX_OK;
}

int strix_perplexity(const strix_model *model, strix_context *ctx, const strix_token *tokens,
                     int n_tokens, const struct strix_ppl_params *caller_params,
                     struct strix_ppl_result *caller_out, strix_error *err)
{
    err_clear(err);
    if (!model || !caller_params || (!ctx && !caller_params->decode_window))
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    struct strix_ppl_params pp;
    int prc = UTIL_PARAMS_READ(ppl, &pp, caller_params, err);
    if (!prc) /* top1_agree stays: the last field of 0.1.0; new ones are appended after it */
        prc = util_result_check(caller_out, UTIL_END_OF(struct strix_ppl_result, top1_agree),
                                sizeof(struct strix_ppl_result), "ppl", err);
    if (prc)
        return prc;
    const struct strix_ppl_params *params = &pp;
    struct strix_ppl_result full = {.struct_size = sizeof full}, *out = &full;
    util_result_write(caller_out, &full, sizeof full); /* zeros until the end */
    const int nv = strix_vocab_size(model);
    if (nv <= 0)
        return err_set(err, STRIX_ERR_ARG, "the model has no vocabulary");
    if (params->kl_base && params->kl_save)
        return err_set(err, STRIX_ERR_ARG, "save a KL base or compare with one, not both");
    if (params->kl_save && model->map.from_file &&
        atomic_file_is(params->kl_save, model->map.dev, model->map.ino))
        return err_set(err, STRIX_ERR_ARG, "refusing to write '%s': it is the model's own file %s",
                       params->kl_save, model->map.path);
    /* with decode_window and no context, the window is the caller's to give */
    const int ctx_n = ctx ? strix_context_n_ctx(ctx) : params->n_ctx;
    int n_ctx = params->n_ctx ? params->n_ctx : ctx_n;
    int stride = params->stride;
    FILE *kf = NULL;
    strix_token *base_tokens = NULL;
    int rc = STRIX_OK;
    if (params->kl_base) {
        rc = kl_open(params->kl_base, nv, &kf, &base_tokens, &n_tokens, &n_ctx, &stride, err);
        if (rc)
            return rc;
        if (tokens) /* the text given must be the one the base was computed on */
            rc = memcmp(tokens, base_tokens, (size_t)n_tokens * sizeof *tokens) == 0
                     ? STRIX_OK
                     : err_set(err, STRIX_ERR_ARG, "the tokens differ from the KL base's");
        tokens = base_tokens;
    }
    if (rc == STRIX_OK && (!tokens || n_tokens < 0))
        rc = err_set(err, STRIX_ERR_ARG, "no tokens");
    if (rc == STRIX_OK && (n_ctx < 2 || n_ctx > ctx_n))
        rc = err_set(err, STRIX_ERR_ARG, "window of %d tokens: the context holds %d", n_ctx,
                     ctx_n);
    if (rc == STRIX_OK && (stride < 0 || stride >= n_ctx))
        rc = err_set(err, STRIX_ERR_ARG, "stride %d: must be in [0, %d)", stride, n_ctx);
    const int nw = n_windows(n_tokens, n_ctx, stride);
    if (rc == STRIX_OK && nw == 0)
        rc = err_set(err, STRIX_ERR_ARG, "%d tokens: a window needs %d", n_tokens, n_ctx);
    if (rc == STRIX_OK && n_scored_total(n_tokens, n_ctx, stride) == 0)
        rc = err_set(err, STRIX_ERR_ARG,
                     "a window of %d tokens scores no token (chunks score the tokens after the "
                     "first half: use at least 3)",
                     n_ctx);
    for (int i = 0; rc == STRIX_OK && i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            rc = err_set(err, STRIX_ERR_ARG, "token %d at %d out of range", tokens[i], i);
    struct atomic_file kaf = {NULL, NULL, NULL};
    if (rc == STRIX_OK && params->kl_save &&
        (rc = kl_create(params->kl_save, nv, n_ctx, stride, tokens, n_tokens, &kaf, err)) ==
            STRIX_OK)
        kf = kaf.f;
    const int64_t n_score = rc == STRIX_OK ? n_scored_total(n_tokens, n_ctx, stride) : 0;
    const int n_batch = params->n_batch > 0 ? params->n_batch : 512;
    strix_token *win = util_malloc((size_t)n_ctx * sizeof *win);
    int8_t *want = util_malloc((size_t)n_ctx);
    struct tally t = {.model = model, .params = params, .kf = kf, .nv = nv};
    t.lp = util_malloc((size_t)nv * sizeof *t.lp);
    t.lb = util_malloc((size_t)nv * sizeof *t.lb);
    t.kls = params->kl_base ? util_malloc((size_t)(n_score > 0 ? n_score : 1) * sizeof *t.kls)
                            : NULL;
    /* with decode_window: the window's wanted logits, row after row */
    float *wl = params->decode_window && rc == STRIX_OK
                    ? util_malloc((size_t)n_ctx * (size_t)nv * sizeof *wl)
                    : NULL;
    if (rc == STRIX_OK && (!win || !want || !t.lp || !t.lb || (params->kl_base && !t.kls) ||
                           (params->decode_window && !wl)))
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
    const strix_token bos = strix_token_bos(model);
    for (int w = 0; rc == STRIX_OK && w < nw; w++) {
        const struct win r = window_at(w, n_tokens, n_ctx, stride);
        const int len = r.end - r.begin;
        memcpy(win, tokens + r.begin, (size_t)len * sizeof *win);
        if (bos >= 0)
            win[0] = bos;
        for (int j = 0; j < len; j++) /* logits at j predict the token at j + 1 */
            want[j] = r.begin + j + 1 >= r.score_from && j + 1 < len;
        if (params->decode_window) {
            if ((rc = params->decode_window(params->decode_user, win, len, want, wl, err)))
                break;
            for (int j = 0, k = 0; j < len && rc == STRIX_OK; j++)
                if (want[j])
                    rc = score_token(&t, wl + (size_t)k++ * (size_t)nv, tokens[r.begin + j],
                                     tokens[r.begin + j + 1], err);
        } else if ((rc = strix_kv_truncate(ctx, 0, err)) == STRIX_OK) {
            for (int j0 = 0; rc == STRIX_OK && j0 < len; j0 += n_batch) {
                const int n = len - j0 < n_batch ? len - j0 : n_batch;
                if ((rc = strix_decode(ctx, win + j0, NULL, n, want + j0, err)))
                    break;
                for (int j = j0; j < j0 + n && rc == STRIX_OK; j++)
                    if (want[j])
                        rc = score_token(&t, strix_get_logits(ctx, j - j0), tokens[r.begin + j],
                                         tokens[r.begin + j + 1], err);
            }
        }
        if (params->progress)
            params->progress(params->user, w + 1, nw);
    }
    const int64_t count = t.count;
    const double nll = t.nll, nll2 = t.nll2;
    double *kls = t.kls;
    if (rc == STRIX_OK && count != n_score)
        rc = err_set(err, STRIX_ERR_ARG, "scored %lld tokens, expected %lld", (long long)count,
                     (long long)n_score);
    if (params->kl_save && kaf.f) { /* the whole file or, on any error, no file */
        if (rc == STRIX_OK)
            rc = atomic_file_commit(&kaf, err);
        else
            atomic_file_abort(&kaf);
    } else if (kf && fclose(kf) != 0 && rc == STRIX_OK) {
        rc = err_set(err, STRIX_ERR_IO, "%s: close failed", params->kl_base);
    }
    if (rc == STRIX_OK) {
        const double N = (double)count, m = nll / N;
        out->n_scored = count;
        out->n_bytes = t.bytes;
        out->n_windows = nw;
        out->n_ctx = n_ctx;
        out->stride = stride;
        out->nll = m;
        out->nll_stderr = count > 1 ? sqrt(fmax(nll2 / N - m * m, 0.0) / (N - 1)) : 0.0;
        out->bits_per_token = m / log(2.0);
        out->bits_per_byte = t.bytes > 0 ? nll / log(2.0) / (double)t.bytes : NAN;
        out->ppl = exp(m);
        out->ppl_stderr = out->ppl * out->nll_stderr;
        if (params->kl_base) {
            const double km = t.kl / N, dm = t.dnll / N;
            out->has_kl = 1;
            out->base_ppl = exp(t.bnll / N);
            out->ln_ppl_ratio = dm;
            out->ln_ppl_ratio_stderr =
                count > 1 ? sqrt(fmax(t.dnll2 / N - dm * dm, 0.0) / (N - 1)) : 0.0;
            out->ppl_ratio = exp(dm);
            out->kl_mean = km;
            out->kl_stderr = count > 1 ? sqrt(fmax(t.kl2 / N - km * km, 0.0) / (N - 1)) : 0.0;
            qsort(kls, (size_t)count, sizeof *kls, cmp_dbl);
            out->kl_min = kls[0];
            out->kl_median = percentile(kls, count, 0.5);
            out->kl_p90 = percentile(kls, count, 0.90);
            out->kl_p95 = percentile(kls, count, 0.95);
            out->kl_p99 = percentile(kls, count, 0.99);
            out->kl_p999 = percentile(kls, count, 0.999);
            out->kl_max = kls[count - 1];
            out->top1_agree = (double)t.same_top / N;
        }
    }
    util_free(win);
    util_free(want);
    util_free(t.lp);
    util_free(t.lb);
    util_free(kls);
    util_free(wl);
    util_free(base_tokens);
    util_result_write(caller_out, &full, sizeof full);
    return rc;
}
