/*
 * quantize.c - model-level quantization (strix_model_quantize): which type
 * each weight gets, the fallback for rows that do not fill whole blocks, and
 * the re-encoding of the weights over a thread pool. The blocks themselves
 * are in dtype.c / dtype_k.c; the GGUF file is written by model.c.
 *
 * The rule (see also include/strix.h):
 *   - 1-D weights (norms) stay F32, and so do the 2-D weights llama.cpp's
 *     quantizer leaves alone (quantizable(): MoE routers, mamba's
 *     convolution taps and state matrices, ...);
 *   - every 2-D weight, and every stack of experts' matrices (3-D, taking
 *     the rules of its projection: ffn_down_exps those of ffn_down), gets
 *     the requested type, except that (unless pure)
 *     the output projection, or the token embeddings when they double as
 *     it, gets Q6_K when the type has fewer than 6 bits, and the mixes
 *     Q4_K_M / Q5_K_M put Q6_K on attn_v and ffn_down in layer i when
 *     i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2 (llama.cpp's choice);
 *   - a type whose block does not divide the row length falls back: Q4_K
 *     to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0 if the row is a multiple of 32;
 *     anything else to F32 (exact; not F16, because llama.cpp at commit
 *     c392e50 computes F16 rows of such lengths wrongly: its own F16
 *     quantization of stories260K, with 172-wide FFN rows, emits garbage
 *     there while running fine in strix);
 *   - a weight already of the chosen type is copied, not re-quantized.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "format/atomic_file.h"
#include "quant/dtype.h"
#include "model/model.h"
#include "pool.h"

UTIL_PARAMS_DEFINE(quantize, .n_threads = 0)

/* A requested type: a base type and whether it is a _M mix. */
struct qspec {
    uint32_t base;
    int mix;
    uint32_t ftype; /* general.file_type, llama.cpp's numbering */
};

static int parse_spec(const char *name, struct qspec *q)
{
    static const struct {
        const char *name;
        uint32_t base;
        int mix;
        uint32_t ftype;
    } specs[] = {
        {"F32", DTYPE_F32, 0, 0},     {"F16", DTYPE_F16, 0, 1},     {"BF16", DTYPE_BF16, 0, 32},
        {"Q8_0", DTYPE_Q8_0, 0, 7},   {"Q4_0", DTYPE_Q4_0, 0, 2},   {"Q4_1", DTYPE_Q4_1, 0, 3},
        {"Q5_0", DTYPE_Q5_0, 0, 8},   {"Q5_1", DTYPE_Q5_1, 0, 9},   {"Q4_K", DTYPE_Q4_K, 0, 14},
        {"Q5_K", DTYPE_Q5_K, 0, 16},  {"Q6_K", DTYPE_Q6_K, 0, 18},  {"Q4_K_M", DTYPE_Q4_K, 1, 15},
        {"Q5_K_M", DTYPE_Q5_K, 1, 17},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        if (strcasecmp(name, specs[i].name) == 0) { /* q4_k_m as llama-quantize */
            q->base = specs[i].base;
            q->mix = specs[i].mix;
            q->ftype = specs[i].ftype;
            return 1;
        }
    }
    return 0;
}

/* Types with fewer than 6 bits per weight. */
static int low_bits(uint32_t t)
{
    return t == DTYPE_Q4_0 || t == DTYPE_Q4_1 || t == DTYPE_Q5_0 || t == DTYPE_Q5_1 ||
           t == DTYPE_Q4_K || t == DTYPE_Q5_K;
}

static int more_bits_layer(int il, int n)
{
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

/* The class of a weight: its name without "blk.N." and ".weight". */
static void tensor_class(const char *name, char *cls, size_t cap, int *layer)
{
    int il = -1, off = 0;
    if (sscanf(name, "blk.%d.%n", &il, &off) == 1 && off > 0)
        name += off;
    else
        il = -1;
    *layer = il;
    snprintf(cls, cap, "%s", name);
    char *dot = strstr(cls, ".weight");
    if (dot && dot[7] == '\0')
        *dot = '\0';
}

/* Whether weight t is re-encoded at all: matrices and stacks of experts'
 * matrices (2-D, 3-D) named *.weight, except norms, MoE routers (few
 * weights, on every token's path), mamba's convolution taps and position or
 * token-type embeddings; 1-D weights stay F32 (the loader allows nothing
 * else) and mamba's ssm_a, ssm_d (no .weight) stay as they are. The same
 * set llama.cpp's quantizer converts. */
static int quantizable(const struct tensor *t)
{
    static const char *const never[] = {"_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d",
                                        "position_embd", "token_types"};
    const size_t n = strlen(t->name);
    if (t->n_dims < 2 || t->n_dims > 3 || n < 7 || strcmp(t->name + n - 7, ".weight") != 0)
        return 0;
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strstr(t->name, never[i]))
            return 0;
    return 1;
}

/* The type weight t is written as; *wanted is the type before any fallback. */
static uint32_t choose(const strix_model *m, const struct tensor *t, const struct qspec *q, int pure,
                       uint32_t *wanted)
{
    *wanted = t->type;
    if (!quantizable(t))
        return t->type;
    char cls[64];
    int il;
    tensor_class(t->name, cls, sizeof cls, &il);
    char *exps = strstr(cls, "_exps"); /* stacked experts: their projection's class */
    if (exps && exps[5] == '\0')
        *exps = '\0';
    uint32_t want = q->base;
    const int is_output = strcmp(cls, "output") == 0 ||
                          (m->tied_output && strcmp(cls, "token_embd") == 0);
    if (!pure && is_output && low_bits(want))
        want = DTYPE_Q6_K;
    if (!pure && q->mix && il >= 0 && (strcmp(cls, "attn_v") == 0 || strcmp(cls, "ffn_down") == 0) &&
        more_bits_layer(il, m->hp.n_layer))
        want = DTYPE_Q6_K;
    *wanted = want;
    const int64_t ne0 = t->ne[0];
    if (dtype_row_size(want, ne0) != 0)
        return want;
    if (ne0 % 32 == 0) {
        if (want == DTYPE_Q4_K)
            return DTYPE_Q5_0;
        if (want == DTYPE_Q5_K)
            return DTYPE_Q5_1;
        if (want == DTYPE_Q6_K)
            return DTYPE_Q8_0;
    }
    return DTYPE_F32;
}

/* ---- the per-class report ---- */

#define MAX_CLASSES 32
struct report {
    int n;
    struct {
        char name[64];
        int count[DTYPE_COUNT];
        uint32_t fb_from, fb_to; /* first fallback seen in the class */
        int64_t fb_ne0;
        int has_fb;
    } cls[MAX_CLASSES];
};

static void report_add(struct report *r, const struct tensor *t, uint32_t type, uint32_t wanted)
{
    char name[64];
    int il;
    tensor_class(t->name, name, sizeof name, &il);
    int i = 0;
    while (i < r->n && strcmp(r->cls[i].name, name) != 0)
        i++;
    if (i == r->n) {
        if (r->n == MAX_CLASSES)
            return;
        memset(&r->cls[i], 0, sizeof r->cls[i]);
        snprintf(r->cls[i].name, sizeof r->cls[i].name, "%s", name);
        r->n++;
    }
    r->cls[i].count[type]++;
    if (type != wanted && !r->cls[i].has_fb) {
        r->cls[i].has_fb = 1;
        r->cls[i].fb_from = wanted, r->cls[i].fb_to = type;
        r->cls[i].fb_ne0 = t->ne[0];
    }
}

static void report_emit(const struct report *r, const struct strix_quantize_params *p)
{
    if (!p->log)
        return;
    for (int i = 0; i < r->n; i++) {
        char line[512];
        int len = snprintf(line, sizeof line, "%-14s ", r->cls[i].name);
        const char *sep = "";
        for (uint32_t t = 0; t < DTYPE_COUNT && len < (int)sizeof line; t++) {
            if (r->cls[i].count[t]) {
                len += snprintf(line + len, sizeof line - (size_t)len, "%s%d x %s", sep,
                                r->cls[i].count[t], dtype_name(t));
                sep = ", ";
            }
        }
        if (r->cls[i].has_fb && len < (int)sizeof line)
            snprintf(line + len, sizeof line - (size_t)len,
                     " (fallback to %s: rows of %lld are not a multiple of %s's block of %d)",
                     dtype_name(r->cls[i].fb_to), (long long)r->cls[i].fb_ne0,
                     dtype_name(r->cls[i].fb_from), dtype_get(r->cls[i].fb_from)->block_size);
        p->log(p->log_user, line);
    }
}

/* ---- what a quantization does ---- */

/* Rows of ne[0] elements of a weight (a stack of experts: all of them). */
static int64_t n_rows(const struct tensor *t)
{
    return t->ne[1] * t->ne[2] * t->ne[3];
}

/* A quantization of m to one type: each weight's type, in m->all order. */
struct qplan {
    struct qspec q;
    int n_threads;
    uint32_t *types;
    int64_t max_ne0; /* the longest row re-encoded (0: none) */
};

/* Reads the type and the parameters into pl (pl->types allocated; free
 * with util_free). rep, if not NULL, gathers the per-class report. */
static int plan_quantize(const strix_model *m, const char *type,
                         const struct strix_quantize_params *p, struct report *rep,
                         struct qplan *pl, strix_error *err)
{
    memset(pl, 0, sizeof *pl);
    if (m->vocab_only || !m->vocab)
        return err_set(err, STRIX_ERR_ARG, "only a full model with a vocabulary can be quantized");
    if (!parse_spec(type, &pl->q))
        return err_set(err, STRIX_ERR_ARG,
                       "cannot quantize to '%s' (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                       "Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M)",
                       type);
    pl->n_threads = p->n_threads;
    if (pl->n_threads <= 0) {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        pl->n_threads = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
    }
    if (pl->n_threads > 1024)
        return err_set(err, STRIX_ERR_ARG, "%d threads is too many", pl->n_threads);
    if (!(pl->types = util_calloc((size_t)m->n_all, sizeof *pl->types)))
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        uint32_t wanted;
        pl->types[i] = choose(m, t, &pl->q, p->pure, &wanted);
        if (rep && t->n_dims >= 2)
            report_add(rep, t, pl->types[i], wanted);
        if (pl->types[i] != t->type && t->ne[0] > pl->max_ne0)
            pl->max_ne0 = t->ne[0];
    }
    return STRIX_OK;
}

/* ---- conversion ---- */

struct qstate {
    const strix_model *m;
    const uint32_t *types; /* per weight, in m->all order */
    struct pool *pool;
    float *scratch; /* (n_threads, max row length) */
    int64_t max_ne0;
};

struct job {
    const struct tensor *t;
    int64_t n_rows; /* rows of ne[0] elements (all matrices) */
    uint32_t type;
    uint8_t *dst;
    size_t dst_row;
    float *scratch;
    int64_t max_ne0;
};

static void job_run(void *arg, int ith, int nth)
{
    const struct job *j = arg;
    const struct tensor *t = j->t;
    const int64_t n_rows = j->n_rows, r0 = n_rows * ith / nth, r1 = n_rows * (ith + 1) / nth;
    float *row = j->scratch + (size_t)ith * (size_t)j->max_ne0;
    const dtype_dequant_fn deq = dtype_get(t->type)->dequantize;
    const dtype_quant_fn quant = dtype_get(j->type)->quantize;
    for (int64_t r = r0; r < r1; r++) {
        deq((const uint8_t *)t->data + (size_t)r * t->row_bytes, row, t->ne[0]);
        quant(row, j->dst + (size_t)r * j->dst_row, t->ne[0]);
    }
}

static int convert(void *user, const struct tensor *t, void **out, uint32_t *type, size_t *nbytes,
                   strix_error *err)
{
    const struct qstate *qs = user;
    int idx = 0;
    while (idx < qs->m->n_all && qs->m->all[idx] != t)
        idx++;
    STRIX_ASSERT(idx < qs->m->n_all);
    *out = NULL;
    *type = qs->types[idx];
    *nbytes = t->nbytes;
    if (*type == t->type)
        return STRIX_OK;
    const size_t rb = dtype_row_size(*type, t->ne[0]);
    size_t total;
    if (rb == 0 || !util_mul_size(rb, (size_t)n_rows(t), &total))
        return err_set(err, STRIX_ERR_ARG, "cannot write '%s' as %s", t->name, dtype_name(*type));
    uint8_t *buf = util_malloc(total);
    if (!buf)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory quantizing '%s'", t->name);
    struct job j = {t, n_rows(t), *type, buf, rb, qs->scratch, qs->max_ne0};
    pool_run(qs->pool, job_run, &j);
    *out = buf;
    *nbytes = total;
    return STRIX_OK;
}

int strix_model_quantize(const strix_model *m, const char *path, const char *type,
                         const struct strix_quantize_params *params, strix_error *err)
{
    err_clear(err);
    if (!m || !path || !type)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    struct strix_quantize_params def;
    int prc = UTIL_PARAMS_READ(quantize, &def, params, err);
    if (prc)
        return prc;
    const struct strix_quantize_params *p = &def;
    struct qplan pl = {0};
    struct qstate qs = {m, NULL, NULL, NULL, 1};
    struct report *rep = util_calloc(1, sizeof *rep);
    int rc = rep ? plan_quantize(m, type, p, rep, &pl, err)
                 : err_set(err, STRIX_ERR_NOMEM, "out of memory");
    if (rc)
        goto done;
    const int n_threads = pl.n_threads;
    uint32_t *types = pl.types;
    qs.max_ne0 = pl.max_ne0 > 1 ? pl.max_ne0 : 1;
    /* fail before the work if the target cannot be written (the file is
     * created and removed again; the real one is written at the end) */
    struct atomic_file probe;
    if (m->map.from_file && atomic_file_is(path, m->map.dev, m->map.ino)) {
        rc = err_set(err, STRIX_ERR_ARG, "refusing to write '%s': it is the model's own file %s",
                     path, m->map.path);
        goto done;
    }
    if ((rc = atomic_file_open(&probe, path, err)))
        goto done;
    atomic_file_abort(&probe);
    report_emit(rep, p);
    qs.types = types;
    size_t scratch;
    if (!util_mul_size((size_t)n_threads * sizeof(float), (size_t)qs.max_ne0, &scratch) ||
        !(qs.scratch = util_malloc(scratch)) || !(qs.pool = pool_create(n_threads))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for %d quantizing threads", n_threads);
        goto done;
    }
    rc = model_save_gguf(m, path, pl.q.ftype, convert, &qs, err);
done:
    pool_free(qs.pool);
    util_free(qs.scratch);
    util_free(pl.types);
    util_free(rep);
    return rc;
}

/* ---- an in-memory copy (speculative decoding's self-draft) ---- */

int strix_model_quantize_copy(const strix_model *m, const char *type,
                              const struct strix_quantize_params *params, strix_model **out,
                              strix_error *err)
{
    err_clear(err);
    if (out)
        *out = NULL;
    if (!m || !type || !out)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    struct strix_quantize_params p;
    int rc = UTIL_PARAMS_READ(quantize, &p, params, err);
    if (rc)
        return rc;
    struct qplan pl;
    if ((rc = plan_quantize(m, type, &p, NULL, &pl, err)))
        return rc;
    const int n_threads = pl.n_threads;
    uint32_t *types = pl.types;
    strix_model *c = util_calloc(1, sizeof *c);
    size_t *offs = util_calloc((size_t)m->n_all, sizeof *offs);
    float *scratch = NULL;
    struct pool *pool = NULL;
    if (!c || !offs) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(c->arch, m->arch, sizeof c->arch);
    c->ad = m->ad;
    c->hp = m->hp;
    c->tied_output = m->tied_output;
    c->opt_mask = m->opt_mask;
    c->vocab = m->vocab; /* read-only: shared, not freed with the copy */
    c->vocab_borrowed = 1;
    if (m->name && !(c->name = util_strndup(m->name, strlen(m->name)))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = model_init_tables(c, err)))
        goto fail;
    STRIX_ASSERT(c->n_all == m->n_all);
    /* the converted weights in one block; the others stay borrowed */
    size_t total = 0;
    const int64_t max_ne0 = pl.max_ne0 > 1 ? pl.max_ne0 : 1;
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        if (types[i] == t->type)
            continue;
        const int64_t rows = n_rows(t);
        size_t n;
        offs[i] = total;
        if (!util_mul_size(dtype_row_size(types[i], t->ne[0]), (size_t)rows, &n) ||
            !util_add_size(total, (n + 63) & ~(size_t)63, &total)) {
            rc = err_set(err, STRIX_ERR_ARG, "'%s' is too large", t->name);
            goto fail;
        }
    }
    size_t sbytes;
    if ((total && !(c->owned = util_malloc(total))) ||
        !util_mul_size((size_t)n_threads * sizeof(float), (size_t)max_ne0, &sbytes) ||
        !(scratch = util_malloc(sbytes)) || !(pool = pool_create(n_threads))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for a %s copy (%zu bytes)", type, total);
        goto fail;
    }
    for (int i = 0; i < c->n_all; i++) {
        struct slot s;
        model_slot(c, i, &s);
        const struct tensor *t = NULL; /* the same slot of m (same architecture and shape) */
        for (int j = 0; j < m->n_all && !t; j++)
            if (strcmp(m->all[j]->name, s.name) == 0)
                t = m->all[j];
        if (!t) {
            rc = err_set(err, STRIX_ERR_ARG, "the copy has a weight '%s' the model lacks", s.name);
            goto fail;
        }
        int idx = 0;
        while (m->all[idx] != t)
            idx++;
        const uint32_t ty = types[idx];
        const void *data = t->data;
        size_t nbytes = t->nbytes;
        if (ty != t->type) {
            const int64_t rows = n_rows(t);
            uint8_t *dst = (uint8_t *)c->owned + offs[idx];
            const size_t rb = dtype_row_size(ty, t->ne[0]);
            struct job j = {t, rows, ty, dst, rb, scratch, max_ne0};
            pool_run(pool, job_run, &j);
            data = dst;
            nbytes = rb * (size_t)rows;
        }
        if ((rc = model_set_tensor(&s, ty, t->ne, t->n_dims, data, nbytes, err)))
            goto fail;
    }
    if (c->tied_output)
        c->output = c->tok_embd;
    pool_free(pool);
    util_free(scratch);
    util_free(types);
    util_free(offs);
    model_pack(c);
    *out = c;
    return STRIX_OK;
fail:
    pool_free(pool);
    util_free(scratch);
    util_free(types);
    util_free(offs);
    strix_model_free(c);
    return rc;
}
