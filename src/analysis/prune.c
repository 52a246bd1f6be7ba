/*
 * prune.c - strix_prune: unstructured and N:M pruning of the block weights
 * by magnitude or Wanda scores (input norms from calibration text through
 * the context's matmul observation), depth pruning (blocks removed, the
 * rest renumbered), and blocks replaced by a fitted linear map; the result
 * is written as a GGUF file in the input's weight types. Statistics and the
 * hidden-state collection are stats.c's and analyze.c's; the file format is
 * format/gguf_writer.c's.
 */
#define _POSIX_C_SOURCE 200809L /* sysconf */
#include "analysis/prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/analyze.h"
#include "analysis/stats.h"
#include "format/atomic_file.h"
#include "format/gguf.h"
#include "model/arch.h"
#include "model/model.h"
#include "pool.h"
#include "quant/dtype.h"
#include "tokenize/vocab.h"
#include "util.h"

UTIL_PARAMS_DEFINE(prune, .n_ctx = 0)

#define PRUNE_MIN_CALIB 64 /* calibration tokens Wanda needs at least */

/* ---- masks ---- */

void prune_row_score(const float *w, const float *norm, int n, float *score)
{
    for (int j = 0; j < n; j++)
        score[j] = fabsf(w[j]) * (norm ? norm[j] : 1.0f);
}

/* (score, index) order: a before b */
static inline int before(const float *s, int a, int b)
{
    return s[a] < s[b] || (s[a] == s[b] && a < b);
}

void prune_row_smallest(const float *s, int n, int n_prune, uint8_t *keep, int *idx)
{
    memset(keep, 1, (size_t)n);
    if (n_prune <= 0)
        return;
    if (n_prune >= n) {
        memset(keep, 0, (size_t)n);
        return;
    }
    for (int j = 0; j < n; j++)
        idx[j] = j;
    /* quickselect: afterwards idx[0 .. n_prune) hold the n_prune smallest */
    int lo = 0, hi = n - 1;
    const int k = n_prune - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        /* median of three into idx[hi] as the pivot */
        if (before(s, idx[mid], idx[lo])) {
            int t = idx[mid]; idx[mid] = idx[lo]; idx[lo] = t;
        }
        if (before(s, idx[hi], idx[lo])) {
            int t = idx[hi]; idx[hi] = idx[lo]; idx[lo] = t;
        }
        if (before(s, idx[mid], idx[hi])) {
            int t = idx[mid]; idx[mid] = idx[hi]; idx[hi] = t;
        }
        const int piv = idx[hi];
        int st = lo;
        for (int i = lo; i < hi; i++)
            if (before(s, idx[i], piv)) {
                int t = idx[i]; idx[i] = idx[st]; idx[st] = t;
                st++;
            }
        idx[hi] = idx[st];
        idx[st] = piv;
        if (st == k)
            break;
        if (st < k)
            lo = st + 1;
        else
            hi = st - 1;
    }
    for (int i = 0; i < n_prune; i++)
        keep[idx[i]] = 0;
}

void prune_row_nm(const float *s, int n, int nn, int m, uint8_t *keep)
{
    int idx[64];
    for (int g = 0; g + m <= n; g += m)
        prune_row_smallest(s + g, m, m - nn, keep + g, idx);
}

/* ---- which weights are pruned ---- */

/* The block index of a weight named "blk.N.*", else -1. */
static int weight_layer(const char *name, const char **rest)
{
    int l = -1, k = 0;
    if (sscanf(name, "blk.%d.%n", &l, &k) == 1 && k > 0) {
        if (rest)
            *rest = name + k;
        return l;
    }
    return -1;
}

/* The weights of the blocks that multiply the activations: 2-D (or a
 * stack of experts), except routers (few, and every token's path) and
 * mamba's convolution taps (ssm_conv1d) and state matrix (ssm_a), which
 * are 2-D but not matrix products: their scores would mean nothing. */
static int prunable(const struct tensor *t)
{
    static const char *const not_products[] = {"ffn_gate_inp", "ssm_conv1d", "ssm_a"};
    const char *rest = NULL;
    if (weight_layer(t->name, &rest) < 0 || t->n_dims < 2)
        return 0;
    for (size_t i = 0; i < sizeof not_products / sizeof not_products[0]; i++) {
        const size_t k = strlen(not_products[i]);
        if (strncmp(rest, not_products[i], k) == 0 && (rest[k] == '\0' || rest[k] == '.'))
            return 0;
    }
    return 1;
}

/* Whether t's rows are whole groups of an N:M pattern (always, unstructured).
 * A prunable weight whose rows are not stays dense, and is listed under
 * strix.prune.dense in the output. */
static int fits_pattern(const struct tensor *t, const struct strix_prune_params *p)
{
    return p->nm_m == 0 || t->ne[0] % p->nm_m == 0;
}

/* ---- Wanda: input norms of every weight ---- */

struct norms {
    const strix_model *m;
    double **ss; /* (n_all) sums of squares of each input column, or NULL */
    int oom;
};

static void on_matmul(void *user, const char *weight, const float *x, int n, int cols)
{
    struct norms *nr = user;
    for (int i = 0; i < nr->m->n_all; i++) {
        const struct tensor *t = nr->m->all[i];
        if (t->ne[0] != cols || strcmp(t->name, weight) != 0 || !prunable(t))
            continue;
        if (!nr->ss[i] && !(nr->ss[i] = util_calloc((size_t)cols, sizeof(double)))) {
            nr->oom = 1;
            return;
        }
        double *ss = nr->ss[i];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < cols; j++) {
                const double v = x[(size_t)r * (size_t)cols + (size_t)j];
                ss[j] += v * v;
            }
        return;
    }
}

/* ---- pruning one weight over the pool ---- */

struct job {
    const struct tensor *t;
    const float *norm; /* (ne[0]) Wanda's input norms, or NULL */
    int n_prune;       /* per row (unstructured) */
    int nm_n, nm_m;
    int64_t n_rows;
    uint8_t *out; /* n_rows * row bytes */
    size_t out_row;
    void **scratch; /* per thread: row, score (floats), keep, idx */
    int64_t n_zero; /* zeroed weights, summed by thread 0 afterwards */
    int64_t *zeros; /* per thread */
};

static void prune_rows(void *arg, int ith, int nth)
{
    struct job *j = arg;
    const struct tensor *t = j->t;
    const int n = (int)t->ne[0];
    uint8_t *sc = j->scratch[ith];
    float *row = (float *)sc, *score = row + n;
    int *idx = (int *)(score + n);
    uint8_t *keep = (uint8_t *)(idx + n);
    const struct dtype_traits *dt = dtype_get(t->type);
    const int64_t r0 = j->n_rows * ith / nth, r1 = j->n_rows * (ith + 1) / nth;
    int64_t zeros = 0;
    for (int64_t r = r0; r < r1; r++) {
        dt->dequantize((const uint8_t *)t->data + (size_t)r * t->row_bytes, row, n);
        prune_row_score(row, j->norm, n, score);
        if (j->nm_m > 0)
            prune_row_nm(score, n, j->nm_n, j->nm_m, keep);
        else
            prune_row_smallest(score, n, j->n_prune, keep, idx);
        for (int c = 0; c < n; c++)
            if (!keep[c]) {
                row[c] = 0.0f;
                zeros++;
            }
        dt->quantize(row, j->out + (size_t)r * j->out_row, n);
    }
    j->zeros[ith] = zeros;
}

/* ---- linear maps replacing blocks ---- */

/* Per linearized block: W (n_embd out rows, n_embd in) and b, F32. */
struct linmap {
    int layer;
    float *w, *b;
};

/* ---- writing ---- */

struct plan {
    const struct strix_prune_params *p;
    uint8_t *drop;        /* (n_layer) 1: removed */
    void **bufs;          /* (n_all) replacement data of a weight, or NULL */
    struct linmap *lin;   /* n_linearize */
    int n_calib;
    int64_t n_pruned, n_prunable;
    const char **dense; /* (n_all) names of prunable weights left dense (N:M misfits) */
    int n_dense;
};

static int write_file(const strix_model *m, const char *path, const struct plan *pl,
                      strix_error *err)
{
    const struct strix_prune_params *p = pl->p;
    gguf_writer *w = gguf_writer_create();
    if (!w)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    int rc = STRIX_OK;
    char key[128], name[96];
    snprintf(key, sizeof key, "%s.block_count", m->arch);
    /* the source's keys as they were (types unchanged, so file_type too),
     * except the block count, then the keys derived from the model */
    for (uint64_t i = 0; m->gguf && rc == STRIX_OK && i < gguf_n_kv(m->gguf); i++) {
        const struct gguf_kv *kv = gguf_kv_at(m->gguf, i);
        if (kv->key.len == strlen(key) && memcmp(kv->key.ptr, key, strlen(key)) == 0)
            continue;
        if (kv->key.len >= 12 && memcmp(kv->key.ptr, "strix.prune.", 12) == 0)
            continue; /* an earlier pruning's record is replaced below */
        if ((rc = gguf_writer_copy_kv(w, kv)))
            err_set(err, rc, "cannot copy the key '%.*s'", (int)kv->key.len, kv->key.ptr);
    }
    if (rc)
        goto done;
    gguf_writer_keep_first(w);
    struct strix_model view = *m; /* the hyperparameters of the pruned model */
    view.hp.n_layer = m->hp.n_layer - p->n_drop;
    if ((rc = gguf_writer_add_str(w, "general.architecture", m->arch)) ||
        (rc = gguf_writer_add_str(w, "general.name", m->name ? m->name : "strix"))) {
        err_set(err, rc, "cannot add the general keys");
        goto done;
    }
    if ((rc = arch_save_hparams(&view, w, err)) || (rc = vocab_write_gguf(m->vocab, w, err)))
        goto done;
    /* what was done */
    int32_t ids[4096];
    const char *what = "";
    if (p->method && p->nm_m > 0) {
        snprintf(name, sizeof name, "%d:%d", p->nm_n, p->nm_m);
        rc = gguf_writer_add_str(w, what = "strix.prune.pattern", name);
    } else if (p->method) {
        rc = gguf_writer_add_f32(w, what = "strix.prune.sparsity", p->sparsity);
    }
    if (!rc && p->method)
        rc = gguf_writer_add_str(w, what = "strix.prune.method", p->method);
    if (!rc && p->method)
        rc = gguf_writer_add_f32(w, what = "strix.prune.zero_fraction",
                                 pl->n_prunable ? (float)((double)pl->n_pruned /
                                                          (double)pl->n_prunable)
                                                : 0.0f);
    if (!rc && pl->n_dense)
        rc = gguf_writer_add_arr_str(w, what = "strix.prune.dense", pl->dense,
                                     (uint64_t)pl->n_dense);
    if (!rc && pl->n_calib)
        rc = gguf_writer_add_u32(w, what = "strix.prune.calibration_tokens",
                                 (uint32_t)pl->n_calib);
    if (!rc && p->n_drop) {
        for (int i = 0; i < p->n_drop && i < 4096; i++)
            ids[i] = p->drop_layers[i];
        rc = gguf_writer_add_arr_i32(w, what = "strix.prune.dropped_layers", ids,
                                     (uint64_t)p->n_drop);
    }
    if (!rc && p->n_linearize) {
        for (int i = 0; i < p->n_linearize && i < 4096; i++)
            ids[i] = p->linearize_layers[i];
        rc = gguf_writer_add_arr_i32(w, what = "strix.prune.linearized_layers", ids,
                                     (uint64_t)p->n_linearize);
    }
    if (rc) {
        err_set(err, rc, "cannot add the key %s", what);
        goto done;
    }
    /* new block numbers */
    int renum[4096];
    for (int l = 0, k = 0; l < m->hp.n_layer && l < 4096; l++)
        renum[l] = pl->drop[l] ? -1 : k++;
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        const char *rest = NULL;
        const int l = weight_layer(t->name, &rest);
        const char *nm = t->name;
        if (l >= 0 && l < m->hp.n_layer) {
            if (renum[l] < 0)
                continue;
            snprintf(name, sizeof name, "blk.%d.%s", renum[l], rest);
            nm = name;
        }
        const size_t nbytes = pl->bufs[i] ? dtype_row_size(t->type, t->ne[0]) *
                                                (size_t)(t->ne[1] * t->ne[2] * t->ne[3])
                                          : t->nbytes;
        if ((rc = gguf_writer_add_tensor(w, nm, t->type, (uint32_t)t->n_dims, t->ne,
                                         pl->bufs[i] ? pl->bufs[i] : t->data, nbytes))) {
            err_set(err, rc, "cannot add tensor '%s'", nm);
            goto done;
        }
    }
    for (int i = 0; i < p->n_linearize; i++) {
        const struct linmap *lm = &pl->lin[i];
        const int64_t d = m->hp.n_embd;
        const int64_t ne_w[4] = {d, d, 1, 1}, ne_b[4] = {d, 1, 1, 1};
        char nb[96];
        snprintf(name, sizeof name, "blk.%d.strix_linear.weight", renum[lm->layer]);
        snprintf(nb, sizeof nb, "blk.%d.strix_linear.bias", renum[lm->layer]);
        if ((rc = gguf_writer_add_tensor(w, name, DTYPE_F32, 2, ne_w, lm->w,
                                         (size_t)(d * d) * sizeof(float))) ||
            (rc = gguf_writer_add_tensor(w, nb, DTYPE_F32, 1, ne_b, lm->b,
                                         (size_t)d * sizeof(float)))) {
            err_set(err, rc, "cannot add tensor '%s'", name);
            goto done;
        }
    }
    rc = gguf_writer_write(w, path, err);
done:
    gguf_writer_free(w);
    return rc;
}

/* ---- checks ---- */

static int check_layers(const char *what, const int *ids, int n, int n_layer, uint8_t *mark,
                        strix_error *err)
{
    if (n < 0 || (n > 0 && !ids))
        return err_set(err, STRIX_ERR_ARG, "%s: bad list", what);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_layer)
            return err_set(err, STRIX_ERR_ARG, "%s: layer %d is out of range (the model has %d: "
                           "0 .. %d)", what, ids[i], n_layer, n_layer - 1);
        if (mark[ids[i]])
            return err_set(err, STRIX_ERR_ARG, "%s: layer %d is listed twice (or both dropped "
                           "and linearized)", what, ids[i]);
        mark[ids[i]] = 1;
    }
    return STRIX_OK;
}

static int check_params(const strix_model *m, const struct strix_prune_params *p, int n_tokens,
                        strix_error *err)
{
    const int L = m->hp.n_layer;
    if (p->method && strcmp(p->method, "magnitude") != 0 && strcmp(p->method, "wanda") != 0)
        return err_set(err, STRIX_ERR_ARG, "unknown pruning method '%s' (magnitude, wanda)",
                       p->method);
    if (p->method && p->nm_m == 0 && !(p->sparsity >= 0.0f && p->sparsity < 1.0f))
        return err_set(err, STRIX_ERR_ARG, "sparsity %g is outside [0, 1)", (double)p->sparsity);
    if (p->nm_m != 0 || p->nm_n != 0) {
        if (!(p->nm_n >= 1 && p->nm_n <= p->nm_m && p->nm_m <= 64))
            return err_set(err, STRIX_ERR_ARG,
                           "pattern %d:%d: N:M needs 1 <= N <= M <= 64 (N kept of every M)",
                           p->nm_n, p->nm_m);
        if (!p->method)
            return err_set(err, STRIX_ERR_ARG, "an N:M pattern needs a method (magnitude, wanda)");
        int n_fit = 0, first = -1;
        for (int i = 0; i < m->n_all; i++)
            if (prunable(m->all[i])) {
                n_fit += fits_pattern(m->all[i], p);
                first = first < 0 ? i : first;
            }
        if (first >= 0 && n_fit == 0)
            return err_set(err, STRIX_ERR_ARG, "pattern %d:%d: no weight has rows that are "
                           "groups of %d ('%s' has rows of %lld inputs, not a multiple of %d)",
                           p->nm_n, p->nm_m, p->nm_m, m->all[first]->name,
                           (long long)m->all[first]->ne[0], p->nm_m);
    }
    if (!p->method && p->n_drop == 0 && p->n_linearize == 0)
        return err_set(err, STRIX_ERR_ARG,
                       "nothing to do: give a method, layers to drop or layers to linearize");
    if (L > 4096)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "more than 4096 blocks");
    uint8_t mark[4096] = {0};
    int rc;
    if ((rc = check_layers("drop", p->drop_layers, p->n_drop, L, mark, err)) ||
        (rc = check_layers("linearize", p->linearize_layers, p->n_linearize, L, mark, err)))
        return rc;
    if (p->n_drop >= L)
        return err_set(err, STRIX_ERR_ARG, "dropping all %d layers leaves no model", L);
    const int need_calib = p->method && strcmp(p->method, "wanda") == 0;
    if (need_calib && n_tokens < PRUNE_MIN_CALIB)
        return err_set(err, STRIX_ERR_ARG, "the calibration text gives %d tokens; Wanda needs at "
                       "least %d", n_tokens, PRUNE_MIN_CALIB);
    if (p->n_linearize && n_tokens < 2 * m->hp.n_embd + 1)
        return err_set(err, STRIX_ERR_ARG, "the calibration text gives %d tokens; linearizing "
                       "needs at least %d (2 n_embd + 1)", n_tokens, 2 * m->hp.n_embd + 1);
    if ((need_calib || p->n_linearize) && !m->vocab)
        return err_set(err, STRIX_ERR_ARG, "the model has no vocabulary");
    if (p->n_linearize && !stats_available())
        return stats_linearity(NULL, NULL, 0, 0, &(double){0}, err);
    return STRIX_OK;
}

/* ---- the whole ---- */

static int prune_weights(const strix_model *m, const struct strix_prune_params *p,
                         const struct norms *nr, struct plan *pl, struct pool *pool,
                         strix_error *err)
{
    const int nth = pool_n_threads(pool);
    int64_t max_cols = 0;
    int n_todo = 0, done_n = 0;
    for (int i = 0; i < m->n_all; i++)
        if (prunable(m->all[i]) && fits_pattern(m->all[i], p) &&
            !pl->drop[weight_layer(m->all[i]->name, NULL)]) {
            max_cols = m->all[i]->ne[0] > max_cols ? m->all[i]->ne[0] : max_cols;
            n_todo++;
        }
    void *scratch[64] = {0};
    int64_t zeros[64];
    float *norm = util_malloc((size_t)(max_cols ? max_cols : 1) * sizeof(float));
    int rc = norm ? STRIX_OK : STRIX_ERR_NOMEM;
    for (int t = 0; !rc && t < nth; t++)
        if (!(scratch[t] = util_malloc((size_t)max_cols * (3 * sizeof(float) + 1))))
            rc = STRIX_ERR_NOMEM;
    if (rc) {
        err_set(err, rc, "out of memory");
        goto done;
    }
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        if (!prunable(t) || pl->drop[weight_layer(t->name, NULL)])
            continue;
        if (!fits_pattern(t, p)) {
            pl->dense[pl->n_dense++] = t->name;
            continue;
        }
        const int64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
        const size_t out_row = dtype_row_size(t->type, t->ne[0]);
        const struct dtype_traits *dt = dtype_get(t->type);
        if (!dt->dequantize || !dt->quantize || out_row == 0) {
            rc = err_set(err, STRIX_ERR_UNSUPPORTED, "cannot re-encode '%s' (%s)", t->name,
                         dt->name);
            goto done;
        }
        if (!(pl->bufs[i] = util_malloc(out_row * (size_t)n_rows))) {
            rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for '%s'", t->name);
            goto done;
        }
        struct job j = {.t = t, .nm_n = p->nm_n, .nm_m = p->nm_m, .n_rows = n_rows,
                        .out = pl->bufs[i], .out_row = out_row, .scratch = scratch,
                        .zeros = zeros};
        j.n_prune = (int)floor((double)p->sparsity * (double)t->ne[0]);
        if (nr) {
            if (!nr->ss[i]) {
                rc = err_set(err, STRIX_ERR_UNSUPPORTED,
                             "no calibration input reached '%s' (a weight the forward pass "
                             "did not use)", t->name);
                goto done;
            }
            for (int64_t c = 0; c < t->ne[0]; c++)
                norm[c] = (float)sqrt(nr->ss[i][c]);
            j.norm = norm;
        }
        pool_run(pool, prune_rows, &j);
        for (int th = 0; th < nth; th++)
            pl->n_pruned += zeros[th];
        pl->n_prunable += n_rows * t->ne[0];
        if (p->progress)
            p->progress(p->user, ++done_n, n_todo);
    }
done:
    for (int t = 0; t < nth; t++)
        util_free(scratch[t]);
    util_free(norm);
    return rc;
}

int strix_prune(const strix_model *m, const strix_token *tokens, int n_tokens, const char *path,
                const struct strix_prune_params *caller_params, strix_error *err)
{
    err_clear(err);
    struct strix_prune_params p;
    int rc = UTIL_PARAMS_READ(prune, &p, caller_params, err);
    if (rc)
        return rc;
    if (!m || !path)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    if (m->vocab_only || !m->vocab)
        return err_set(err, STRIX_ERR_ARG, "only a full model with a vocabulary can be pruned");
    if (n_tokens < 0 || (n_tokens > 0 && !tokens))
        return err_set(err, STRIX_ERR_ARG, "bad calibration tokens");
    if (p.n_ctx < 0 || p.n_threads < 0 || p.n_threads > 64)
        return err_set(err, STRIX_ERR_ARG, "n_ctx must be >= 0 and n_threads in [0, 64]");
    if ((rc = check_params(m, &p, n_tokens, err)))
        return rc;
    if (m->map.from_file && atomic_file_is(path, m->map.dev, m->map.ino))
        return err_set(err, STRIX_ERR_ARG, "refusing to write '%s': it is the model's own file",
                       path);
    const int n_ctx = p.n_ctx ? p.n_ctx : 256;
    struct plan pl = {.p = &p, .n_calib = 0};
    struct norms nr = {.m = m};
    struct pool *pool = NULL;
    struct hidden h = {0};
    pl.drop = util_calloc((size_t)m->hp.n_layer, 1);
    pl.bufs = util_calloc((size_t)m->n_all, sizeof *pl.bufs);
    pl.dense = util_calloc((size_t)m->n_all + 1, sizeof *pl.dense);
    pl.lin = util_calloc((size_t)p.n_linearize + 1, sizeof *pl.lin);
    nr.ss = util_calloc((size_t)m->n_all, sizeof *nr.ss);
    int nth = p.n_threads;
    if (!nth) {
        const long c = sysconf(_SC_NPROCESSORS_ONLN);
        nth = c < 1 ? 1 : c > 64 ? 64 : (int)c;
    }
    pool = pool_create(nth);
    if (!pl.drop || !pl.bufs || !pl.dense || !pl.lin || !nr.ss || !pool) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < p.n_drop; i++)
        pl.drop[p.drop_layers[i]] = 1;
    const int wanda = p.method && strcmp(p.method, "wanda") == 0;
    if (wanda || p.n_linearize) {
        pl.n_calib = n_tokens;
        rc = analyze_collect(m, tokens, n_tokens, n_ctx, nth, p.n_linearize ? &h : NULL,
                             wanda ? on_matmul : NULL, &nr, NULL, NULL, err);
        if (!rc && nr.oom)
            rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for the input norms");
        if (rc)
            goto done;
    }
    for (int i = 0; i < p.n_linearize; i++) {
        struct linmap *lm = &pl.lin[i];
        const int l = lm->layer = p.linearize_layers[i];
        const size_t d = (size_t)m->hp.n_embd;
        if (!(lm->w = util_malloc(d * d * sizeof(float))) ||
            !(lm->b = util_malloc(d * sizeof(float)))) {
            rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((rc = stats_affine_fit(h.x[l], h.x[l + 1], h.n_rows, (int)d, lm->w, lm->b, err))) {
            err_prefix(err, "linearize layer %d", l);
            goto done;
        }
    }
    if (p.method && (rc = prune_weights(m, &p, wanda ? &nr : NULL, &pl, pool, err)))
        goto done;
    rc = write_file(m, path, &pl, err);
done:
    if (rc)
        err_prefix(err, "prune");
    for (int i = 0; pl.bufs && i < m->n_all; i++)
        util_free(pl.bufs[i]);
    for (int i = 0; nr.ss && i < m->n_all; i++)
        util_free(nr.ss[i]);
    for (int i = 0; pl.lin && i < p.n_linearize; i++) {
        util_free(pl.lin[i].w);
        util_free(pl.lin[i].b);
    }
    analyze_hidden_free(&h);
    util_free(pl.bufs);
    util_free(pl.dense);
    util_free(pl.drop);
    util_free(pl.lin);
    util_free(nr.ss);
    pool_free(pool);
    return rc;
}
