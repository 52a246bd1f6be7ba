/*
 * route.c - dynamic depth (D-LLM): router files, the per-token decision to
 * run or skip each layer, the gather/scatter that makes a layer run only on
 * the tokens that execute it, and the accounting (executed pairs, FLOPs, KV
 * bytes). forward.c calls route_enter/route_leave around each block; the
 * cache's per-layer cells (context.c) hold nothing for a token that skipped.
 *
 * Router file (GGUF): general.architecture = "router", router.base.arch,
 * router.base.n_layer, router.base.n_embd, router.base.fingerprint (string,
 * 16 hex digits), router.n_hidden, router.keep; tensors blk.L.router_w1
 * (n_hidden rows of n_embd), blk.L.router_b1 (n_hidden), blk.L.router_w2
 * (n_hidden), blk.L.router_b2 (1), all F32.
 *
 * Decisions depend only on the token's own hidden state (router), or on
 * (seed, sequence, position, layer) (random skipping), or on the layer
 * (static removal), so a prompt decoded in one batch or token by token runs
 * the same layers and gives the same logits.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/route.h"
#include "runtime/context.h"
#include "format/gguf.h"
#include "model/arch.h"
#include "quant/dtype.h"
#include "kernels/kernels.h"

UTIL_PARAMS_DEFINE(route, .keep = 0.0f)

/* ---- router files ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t route_fingerprint(const strix_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const struct hparams *hp = &m->hp;
    h = fnv(h, m->arch, strlen(m->arch));
    const int dims[] = {hp->n_vocab, hp->n_embd,    hp->n_ff,     hp->n_layer,
                        hp->n_head,  hp->n_head_kv, hp->head_dim, hp->n_rot};
    h = fnv(h, dims, sizeof dims);
    for (int i = 0; i < m->n_all; i++) {
        const struct tensor *t = m->all[i];
        if (!t || !t->data)
            continue;
        h = fnv(h, t->name, strlen(t->name));
        h = fnv(h, &t->type, sizeof t->type);
        h = fnv(h, t->ne, sizeof t->ne);
        const size_t chunk = t->nbytes < 64 ? t->nbytes : 64;
        for (int s = 0; s < 64; s++) {
            const size_t at = (t->nbytes - chunk) / 63 * (size_t)s;
            h = fnv(h, (const uint8_t *)t->data + at, chunk);
        }
    }
    return h;
}

strix_router *route_router_new(const strix_model *m, int n_hidden)
{
    strix_router *r = util_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->arch, sizeof r->arch, "%s", m->arch);
    r->n_layer = m->hp.n_layer;
    r->n_embd = m->hp.n_embd;
    r->n_hidden = n_hidden;
    r->fingerprint = route_fingerprint(m);
    const size_t nl = (size_t)r->n_layer, nh = (size_t)n_hidden;
    r->w1 = util_calloc(nl * nh * (size_t)r->n_embd, sizeof(float));
    r->b1 = util_calloc(nl * nh, sizeof(float));
    r->w2 = util_calloc(nl * nh, sizeof(float));
    r->b2 = util_calloc(nl, sizeof(float));
    if (!r->w1 || !r->b1 || !r->w2 || !r->b2) {
        strix_router_free(r);
        return NULL;
    }
    return r;
}

void strix_router_free(strix_router *r)
{
    if (!r)
        return;
    util_free(r->w1);
    util_free(r->b1);
    util_free(r->w2);
    util_free(r->b2);
    util_free(r);
}

float strix_router_keep(const strix_router *r)
{
    return r ? r->keep : 0.0f;
}

int route_router_save(const strix_router *r, const char *path, strix_error *err)
{
    gguf_writer *w = gguf_writer_create();
    if (!w)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, r->fingerprint);
    int ok = gguf_writer_add_str(w, "general.architecture", "router") == 0 &&
             gguf_writer_add_str(w, "router.base.arch", r->arch) == 0 &&
             gguf_writer_add_u32(w, "router.base.n_layer", (uint32_t)r->n_layer) == 0 &&
             gguf_writer_add_u32(w, "router.base.n_embd", (uint32_t)r->n_embd) == 0 &&
             gguf_writer_add_str(w, "router.base.fingerprint", fp) == 0 &&
             gguf_writer_add_u32(w, "router.n_hidden", (uint32_t)r->n_hidden) == 0 &&
             gguf_writer_add_f32(w, "router.keep", r->keep) == 0 &&
             (r->n_calib == 0 ||
              (gguf_writer_add_arr_f32(w, "router.calib_keep", r->calib_keep,
                                       (uint64_t)r->n_calib) == 0 &&
               gguf_writer_add_arr_f32(w, "router.calib_shift", r->calib_shift,
                                       (uint64_t)r->n_calib) == 0));
    const size_t nh = (size_t)r->n_hidden, ne = (size_t)r->n_embd;
    for (int l = 0; ok && l < r->n_layer; l++) {
        char name[64];
        const int64_t s_w1[2] = {(int64_t)ne, (int64_t)nh}, s_h[1] = {(int64_t)nh},
                      s_1[1] = {1};
        snprintf(name, sizeof name, "blk.%d.router_w1", l);
        ok = gguf_writer_add_tensor(w, name, DTYPE_F32, 2, s_w1, r->w1 + (size_t)l * nh * ne,
                                    nh * ne * sizeof(float)) == 0;
        snprintf(name, sizeof name, "blk.%d.router_b1", l);
        ok = ok && gguf_writer_add_tensor(w, name, DTYPE_F32, 1, s_h, r->b1 + (size_t)l * nh,
                                          nh * sizeof(float)) == 0;
        snprintf(name, sizeof name, "blk.%d.router_w2", l);
        ok = ok && gguf_writer_add_tensor(w, name, DTYPE_F32, 1, s_h, r->w2 + (size_t)l * nh,
                                          nh * sizeof(float)) == 0;
        snprintf(name, sizeof name, "blk.%d.router_b2", l);
        ok = ok && gguf_writer_add_tensor(w, name, DTYPE_F32, 1, s_1, r->b2 + l,
                                          sizeof(float)) == 0;
    }
    if (!ok) {
        gguf_writer_free(w);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    const int rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    return rc;
}

/* Copies tensor `name` (F32, n values, shape ne0 x ne1) of g into dst. */
static int read_f32(const gguf *g, const uint8_t *data, const char *name, int64_t ne0,
                    int64_t ne1, float *dst, strix_error *err)
{
    const struct gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t)
        return err_set(err, STRIX_ERR_FORMAT, "router file: tensor %s is missing", name);
    if (t->type != DTYPE_F32 || t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 ||
        t->ne[3] != 1)
        return err_set(err, STRIX_ERR_FORMAT,
                       "router file: tensor %s is not F32 of shape %" PRId64 " x %" PRId64,
                       name, ne0, ne1);
    memcpy(dst, data + gguf_data_offset(g) + t->offset, (size_t)(ne0 * ne1) * sizeof(float));
    return STRIX_OK;
}

/* The optional calibration table (files before it have none). */
static int read_calib(const gguf *g, strix_router *r, const char *path, strix_error *err)
{
    if (!gguf_find_kv(g, "router.calib_keep") && !gguf_find_kv(g, "router.calib_shift"))
        return STRIX_OK;
    const struct gguf_kv *k = gguf_get_arr(g, "router.calib_keep", GGUF_VT_F32, err);
    const struct gguf_kv *s = k ? gguf_get_arr(g, "router.calib_shift", GGUF_VT_F32, err) : NULL;
    if (!k || !s || k->n != s->n || k->n < 1 || k->n > ROUTE_MAX_CALIB)
        return err_set(err, STRIX_ERR_FORMAT,
                       "router %s: calibration table missing a half or of a bad size", path);
    r->n_calib = (int)k->n;
    for (int i = 0; i < r->n_calib; i++) {
        r->calib_keep[i] = gguf_arr_f32(k, (uint64_t)i);
        r->calib_shift[i] = gguf_arr_f32(s, (uint64_t)i);
        if (!(r->calib_keep[i] > 0.0f && r->calib_keep[i] <= 1.0f) ||
            !isfinite(r->calib_shift[i]) || (i && !(r->calib_keep[i] > r->calib_keep[i - 1])))
            return err_set(err, STRIX_ERR_FORMAT,
                           "router %s: calibration entry %d (keep %g, shift %g) out of order "
                           "or range",
                           path, i, (double)r->calib_keep[i], (double)r->calib_shift[i]);
    }
    return STRIX_OK;
}

float route_calib_shift(const strix_router *r, float keep)
{
    const int n = r->n_calib;
    if (n == 0)
        return 0.0f;
    if (keep >= 1.0f)
        return -INFINITY;
    if (keep <= r->calib_keep[0])
        return r->calib_shift[0];
    for (int i = 1; i < n; i++)
        if (keep <= r->calib_keep[i]) {
            const float a = (keep - r->calib_keep[i - 1]) / (r->calib_keep[i] - r->calib_keep[i - 1]);
            return r->calib_shift[i - 1] + a * (r->calib_shift[i] - r->calib_shift[i - 1]);
        }
    return keep >= 1.0f ? -INFINITY : r->calib_shift[n - 1];
}

static int str_is(const struct gguf_str *s, const char *v)
{
    return s->len == strlen(v) && memcmp(s->ptr, v, s->len) == 0;
}

int strix_router_load(const char *path, const strix_model *m, strix_router **out,
                      strix_error *err)
{
    err_clear(err);
    if (!out || !path || !m)
        return err_set(err, STRIX_ERR_ARG, "router: path, model or out is NULL");
    *out = NULL;
    struct util_map map;
    int rc = util_map_file(path, &map, err);
    if (rc)
        return rc;
    gguf *g = NULL;
    strix_router *r = NULL;
    rc = gguf_parse(map.data, map.size, &g, err);
    if (rc)
        goto fail;
    struct gguf_str arch, base, fp;
    uint32_t n_layer, n_embd, n_hidden;
    float keep = 0.0f;
    if ((rc = gguf_get_str(g, "general.architecture", 1, &arch, err)))
        goto fail;
    if (!str_is(&arch, "router")) {
        rc = err_set(err, STRIX_ERR_FORMAT, "%s is not a router file (architecture %.*s)", path,
                     (int)(arch.len < 64 ? arch.len : 64), arch.ptr);
        goto fail;
    }
    if ((rc = gguf_get_str(g, "router.base.arch", 1, &base, err)) ||
        (rc = gguf_get_u32(g, "router.base.n_layer", 1, &n_layer, err)) ||
        (rc = gguf_get_u32(g, "router.base.n_embd", 1, &n_embd, err)) ||
        (rc = gguf_get_str(g, "router.base.fingerprint", 1, &fp, err)) ||
        (rc = gguf_get_u32(g, "router.n_hidden", 1, &n_hidden, err)) ||
        (rc = gguf_get_f32(g, "router.keep", 0, &keep, err)))
        goto fail;
    char fp_model[32];
    snprintf(fp_model, sizeof fp_model, "%016" PRIx64, route_fingerprint(m));
    if (!str_is(&base, m->arch) || (int)n_layer != m->hp.n_layer ||
        (int)n_embd != m->hp.n_embd) {
        rc = err_set(err, STRIX_ERR_ARG,
                     "router %s is for a %.*s model of %u layers x %u, not this %s model of "
                     "%d layers x %d",
                     path, (int)(base.len < 32 ? base.len : 32), base.ptr, n_layer, n_embd,
                     m->arch, m->hp.n_layer, m->hp.n_embd);
        goto fail;
    }
    if (!str_is(&fp, fp_model)) {
        rc = err_set(err, STRIX_ERR_ARG,
                     "router %s was trained for other weights (fingerprint %.*s, this model's "
                     "%s)",
                     path, (int)(fp.len < 32 ? fp.len : 32), fp.ptr, fp_model);
        goto fail;
    }
    if (n_hidden < 1 || n_hidden > 65536 || !(keep >= 0.0f && keep <= 1.0f)) {
        rc = err_set(err, STRIX_ERR_FORMAT, "router %s: hidden width %u or keep %g out of range",
                     path, n_hidden, (double)keep);
        goto fail;
    }
    r = route_router_new(m, (int)n_hidden);
    if (!r) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto fail;
    }
    r->keep = keep;
    if ((rc = read_calib(g, r, path, err)))
        goto fail;
    const size_t nh = n_hidden, ne = n_embd;
    for (int l = 0; l < r->n_layer; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.router_w1", l);
        if ((rc = read_f32(g, map.data, name, (int64_t)ne, (int64_t)nh,
                           r->w1 + (size_t)l * nh * ne, err)))
            goto fail;
        snprintf(name, sizeof name, "blk.%d.router_b1", l);
        if ((rc = read_f32(g, map.data, name, (int64_t)nh, 1, r->b1 + (size_t)l * nh, err)))
            goto fail;
        snprintf(name, sizeof name, "blk.%d.router_w2", l);
        if ((rc = read_f32(g, map.data, name, (int64_t)nh, 1, r->w2 + (size_t)l * nh, err)))
            goto fail;
        snprintf(name, sizeof name, "blk.%d.router_b2", l);
        if ((rc = read_f32(g, map.data, name, 1, 1, r->b2 + l, err)))
            goto fail;
    }
    gguf_free(g);
    util_unmap(&map);
    *out = r;
    return STRIX_OK;
fail:
    strix_router_free(r);
    gguf_free(g);
    util_unmap(&map);
    return rc;
}

float route_logit(const strix_router *r, int l, const float *x, float *scratch)
{
    const int ne = r->n_embd, nh = r->n_hidden;
    float *xn = scratch, *hid = scratch + ne;
    double ss = 0.0;
    for (int i = 0; i < ne; i++)
        ss += (double)x[i] * x[i];
    const float inv = (float)(1.0 / sqrt(ss / ne + 1e-6));
    for (int i = 0; i < ne; i++)
        xn[i] = x[i] * inv;
    const float *w1 = r->w1 + (size_t)l * (size_t)nh * (size_t)ne;
    const float *b1 = r->b1 + (size_t)l * (size_t)nh, *w2 = r->w2 + (size_t)l * (size_t)nh;
    float s = r->b2[l];
    for (int j = 0; j < nh; j++) {
        const float a = kern_dot_f32(ne, w1 + (size_t)j * (size_t)ne, xn) + b1[j];
        hid[j] = a > 0.0f ? a : 0.0f;
        s += w2[j] * hid[j];
    }
    return s;
}

/* ---- the context's route ---- */

struct route {
    const strix_router *router;
    float threshold;   /* router: run when sigmoid(s) >= threshold */
    int calibrated;    /* router: run when s >= shift instead */
    float shift;
    float random_keep; /* > 0: random skipping */
    uint64_t seed;
    uint8_t *skip;     /* (n_layer) static removal, or NULL */
    uint8_t *seq_skip; /* (n_seq_max, n_layer) per-sequence removal, or NULL */
    /* the chunk being decoded */
    int n_full;     /* tokens of the chunk */
    int n_run;      /* tokens running the current layer */
    int moved;      /* the current layer's tokens were gathered */
    uint8_t *dec;   /* (n_batch, n_layer) decisions of the chunk */
    int n_dec;      /* tokens in dec */
    int *idx;       /* (n_batch) running tokens' places in the chunk */
    float *x_save;  /* (n_batch, n_embd) */
    float *rows_save; /* (n_batch, rows width) */
    int32_t *pos_save, *seq_save, *cell_save; /* (n_batch) */
    float *scratch;   /* n_embd + n_hidden */
    double layer_flops; /* products of one executed (token, layer) pair */
    double attn_flops;  /* per entry attended, per token */
    double head_flops;  /* per logits row */
    double dec_flops;   /* per decision */
    struct strix_route_stats st;
};

void route_free(struct route *r)
{
    if (!r)
        return;
    util_free(r->skip);
    util_free(r->seq_skip);
    util_free(r->dec);
    util_free(r->idx);
    util_free(r->x_save);
    util_free(r->rows_save);
    util_free(r->pos_save);
    util_free(r->seq_save);
    util_free(r->cell_save);
    util_free(r->scratch);
    util_free(r);
}

static double mat_flops(const struct tensor *t)
{
    return t->data ? 2.0 * (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] : 0.0;
}

int strix_context_set_route(strix_context *c, const struct strix_route_params *params,
                            strix_error *err)
{
    err_clear(err);
    if (!c)
        return err_set(err, STRIX_ERR_ARG, "context is NULL");
    struct strix_route_params p;
    int rc = UTIL_PARAMS_READ(route, &p, params, err);
    if (rc)
        return rc;
    if (c->tail.decode)
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "a context with a remote tail cannot route or skip layers");
    const strix_model *m = c->model;
    const struct hparams *hp = &m->hp;
    if (!(p.keep >= 0.0f && p.keep <= 1.0f))
        return err_set(err, STRIX_ERR_ARG, "keep %g is outside (0, 1]", (double)p.keep);
    if (!(p.random_keep >= 0.0f && p.random_keep <= 1.0f))
        return err_set(err, STRIX_ERR_ARG, "random keep %g is outside (0, 1]",
                       (double)p.random_keep);
    if (m->layer_first != 0 || m->layer_end != hp->n_layer)
        return err_set(err, STRIX_ERR_ARG, "dynamic depth needs the whole model, not a pipeline "
                                           "stage (blocks %d..%d of %d)",
                       m->layer_first, m->layer_end, hp->n_layer);
    if (p.router && (p.router->n_layer != hp->n_layer || p.router->n_embd != hp->n_embd ||
                     p.router->fingerprint != route_fingerprint(m)))
        return err_set(err, STRIX_ERR_ARG, "the router was made for another model");
    if (p.router && (p.random_keep > 0.0f || p.skip_layers))
        return err_set(err, STRIX_ERR_ARG, "a router, random and static skipping exclude "
                                           "each other");
    if (p.random_keep > 0.0f && p.skip_layers)
        return err_set(err, STRIX_ERR_ARG, "random and static skipping exclude each other");
    struct route *r = util_calloc(1, sizeof *r);
    if (!r)
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    const size_t nb = (size_t)c->n_batch, ne = (size_t)hp->n_embd;
    const size_t nh = p.router ? (size_t)p.router->n_hidden : 0;
    r->dec = util_calloc(nb * (size_t)hp->n_layer, 1);
    r->idx = util_malloc(nb * sizeof(int));
    r->x_save = util_malloc(nb * ne * sizeof(float));
    r->rows_save = util_malloc(nb * (size_t)(hp->n_rot > 0 ? hp->n_rot : 1) * sizeof(float));
    r->pos_save = util_malloc(nb * sizeof(int32_t));
    r->seq_save = util_malloc(nb * sizeof(int32_t));
    r->cell_save = util_malloc(nb * sizeof(int32_t));
    r->scratch = util_malloc((ne + nh + 1) * sizeof(float));
    if (p.skip_layers) {
        r->skip = util_malloc((size_t)hp->n_layer);
        if (r->skip)
            memcpy(r->skip, p.skip_layers, (size_t)hp->n_layer);
    }
    if (!r->dec || !r->idx || !r->x_save || !r->rows_save || !r->pos_save || !r->seq_save ||
        !r->cell_save || !r->scratch || (p.skip_layers && !r->skip)) {
        route_free(r);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    r->router = p.router;
    r->threshold = p.keep > 0.0f ? 1.0f - p.keep : 0.5f;
    r->calibrated = p.router && p.keep > 0.0f && p.router->n_calib > 0;
    r->shift = r->calibrated ? route_calib_shift(p.router, p.keep) : 0.0f;
    r->random_keep = p.random_keep;
    r->seed = p.seed;
    /* what one executed pair costs (the first layer stands for all: a
     * llama-like model has the same blocks throughout) */
    const struct layer *L = &m->layers[0];
    const struct tensor *w[] = {&L->wqkv, &L->wq,     &L->wk,   &L->wv,       &L->wo,
                                &L->w_gate, &L->w_up, &L->w_down, &L->gate_inp};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        r->layer_flops += mat_flops(w[i]);
    if (L->gate_exps.data) /* experts: the ones a token uses */
        r->layer_flops += (mat_flops(&L->gate_exps) + mat_flops(&L->up_exps) +
                           mat_flops(&L->down_exps)) /
                          (double)hp->n_expert * (double)hp->n_expert_used;
    r->attn_flops = 4.0 * (double)hp->n_head * (double)hp->head_dim;
    r->head_flops = 2.0 * (double)hp->n_embd * (double)hp->n_vocab;
    r->dec_flops = p.router ? 2.0 * (double)(nh * ne + nh) : 0.0;
    r->st.struct_size = sizeof r->st;
    route_free(c->route);
    c->route = r;
    return STRIX_OK;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Whether token t of the chunk runs layer l. */
static int decide(const strix_context *c, struct route *r, int l, int t)
{
    if (r->seq_skip &&
        r->seq_skip[(size_t)c->tok_seq[t] * (size_t)c->model->hp.n_layer + (size_t)l])
        return 0;
    if (r->router) {
        const float s = route_logit(r->router, l, c->x + (size_t)t * (size_t)c->model->hp.n_embd,
                                    r->scratch);
        if (r->calibrated)
            return s >= r->shift;
        return 1.0f / (1.0f + expf(-s)) >= r->threshold;
    }
    if (r->random_keep > 0.0f) {
        const uint64_t h = mix(r->seed ^ mix((uint64_t)c->tok_pos[t] * 0x10001ull +
                                             ((uint64_t)l << 40) +
                                             ((uint64_t)c->tok_seq[t] << 52)));
        return (double)(h >> 11) * (1.0 / 9007199254740992.0) < (double)r->random_keep;
    }
    if (r->skip)
        return !r->skip[l];
    return 1;
}

int route_enter(strix_context *c, int l, float *rows, int width)
{
    struct route *r = c->route;
    if (!r)
        return c->n_tok;
    const int n = c->n_tok, n_layer = c->model->hp.n_layer;
    const size_t ne = (size_t)c->model->hp.n_embd;
    if (l == 0) {
        r->n_full = r->n_dec = n;
        r->st.n_tokens += (uint64_t)n;
        for (int t = 0; t < n; t++)
            if (c->logit_slot[t] >= 0)
                r->st.flops += r->head_flops;
    }
    int32_t *cells = c->tok_cell + (size_t)l * (size_t)c->n_batch;
    int n_run = 0;
    for (int t = 0; t < n; t++) {
        const int run = decide(c, r, l, t);
        r->dec[(size_t)t * (size_t)n_layer + (size_t)l] = (uint8_t)run;
        n_run += run;
    }
    r->st.pairs += (uint64_t)n;
    r->st.pairs_run += (uint64_t)n_run;
    r->st.flops += r->dec_flops * n + r->layer_flops * n_run;
    r->n_run = n_run;
    r->moved = n_run < n;
    if (r->moved) {
        memcpy(r->x_save, c->x, (size_t)n * ne * sizeof(float));
        memcpy(r->pos_save, c->tok_pos, (size_t)n * sizeof(int32_t));
        memcpy(r->seq_save, c->tok_seq, (size_t)n * sizeof(int32_t));
        memcpy(r->cell_save, cells, (size_t)n * sizeof(int32_t));
        if (width > 0)
            memcpy(r->rows_save, rows, (size_t)n * (size_t)width * sizeof(float));
        /* the chunk's cells of this layer go back, and the running tokens
         * take the lowest free ones again: the layer's cells stay packed, so
         * a growing cache holds memory only for them */
        int has_cells = 0;
        for (int t = 0; t < n; t++)
            if (cells[t] >= 0) {
                kv_drop_cell(&c->kv, l, cells[t]);
                has_cells = 1;
            }
        int i = 0;
        for (int t = 0; t < n; t++) {
            if (!r->dec[(size_t)t * (size_t)n_layer + (size_t)l])
                continue;
            r->idx[i] = t;
            if (i != t) {
                memcpy(c->x + (size_t)i * ne, r->x_save + (size_t)t * ne, ne * sizeof(float));
                c->tok_pos[i] = r->pos_save[t];
                c->tok_seq[i] = r->seq_save[t];
                if (width > 0)
                    memcpy(rows + (size_t)i * (size_t)width, r->rows_save + (size_t)t * width,
                           (size_t)width * sizeof(float));
            }
            i++;
        }
        c->n_tok = n_run;
        if (has_cells) {
            const int ok = kv_layer_place(&c->kv, l, n_run, c->tok_pos, c->tok_seq, cells);
            STRIX_ASSERT(ok); /* as many cells as were just freed, or fewer */
        } else {
            for (int k = 0; k < n_run; k++)
                cells[k] = -1;
        }
    }
    /* attention: each running token sees the entries of this layer up to
     * its own (one sequence appending: those held before plus its rank) */
    const int held = kv_layer_used(&c->kv, l) - n_run;
    r->st.flops += r->attn_flops * ((double)held * n_run + (double)n_run * (n_run + 1) / 2.0);
    return n_run;
}

void route_leave(strix_context *c, int l, float *rows, int width)
{
    struct route *r = c->route;
    if (!r || !r->moved)
        return;
    const size_t ne = (size_t)c->model->hp.n_embd;
    const int n = r->n_full;
    for (int i = 0; i < r->n_run; i++)
        memcpy(r->x_save + (size_t)r->idx[i] * ne, c->x + (size_t)i * ne, ne * sizeof(float));
    memcpy(c->x, r->x_save, (size_t)n * ne * sizeof(float));
    memcpy(c->tok_pos, r->pos_save, (size_t)n * sizeof(int32_t));
    memcpy(c->tok_seq, r->seq_save, (size_t)n * sizeof(int32_t));
    /* (the cells the layer used are recorded in the cache; the chunk's
     * table of them is not read after the layer) */
    memcpy(c->tok_cell + (size_t)l * (size_t)c->n_batch, r->cell_save,
           (size_t)n * sizeof(int32_t));
    if (width > 0)
        memcpy(rows, r->rows_save, (size_t)n * (size_t)width * sizeof(float));
    c->n_tok = n;
    r->moved = 0;
}

int strix_context_set_seq_layer_skip(strix_context *c, int seq, const uint8_t *mask,
                                     strix_error *err)
{
    err_clear(err);
    if (!c)
        return err_set(err, STRIX_ERR_ARG, "context is NULL");
    if (seq < 0 || seq >= c->n_seq_max)
        return err_set(err, STRIX_ERR_ARG, "sequence %d is outside 0 .. %d", seq,
                       c->n_seq_max - 1);
    if (!c->route && !mask)
        return STRIX_OK;
    int rc = c->route ? STRIX_OK : strix_context_set_route(c, NULL, err);
    if (rc)
        return rc;
    struct route *r = c->route;
    const size_t nl = (size_t)c->model->hp.n_layer;
    if (!r->seq_skip) {
        if (!mask)
            return STRIX_OK;
        if (!(r->seq_skip = util_calloc((size_t)c->n_seq_max * nl, 1)))
            return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    uint8_t *row = r->seq_skip + (size_t)seq * nl;
    for (size_t l = 0; l < nl; l++)
        row[l] = mask && mask[l];
    return STRIX_OK;
}

int strix_context_route_stats(const strix_context *c, struct strix_route_stats *out,
                              strix_error *err)
{
    err_clear(err);
    if (!c || !out)
        return err_set(err, STRIX_ERR_ARG, "context or out is NULL");
    int rc = util_result_check(out, UTIL_END_OF(struct strix_route_stats, kv_entries),
                               sizeof(struct strix_route_stats), "route stats", err);
    if (rc)
        return rc;
    struct strix_route_stats st = {0};
    if (c->route)
        st = c->route->st;
    st.struct_size = sizeof st;
    st.kv_bytes = c->kv.bytes;
    st.kv_bytes_peak = c->kv.bytes_peak;
    for (int l = 0; l < c->kv.n_layer; l++)
        st.kv_entries += (uint64_t)kv_layer_used(&c->kv, l);
    util_result_write(out, &st, sizeof st);
    return STRIX_OK;
}

void strix_context_route_stats_reset(strix_context *c)
{
    if (!c)
        return;
    if (c->route)
        memset(&c->route->st, 0, sizeof c->route->st);
    c->kv.bytes_peak = c->kv.bytes;
}

int strix_kv_layer_entries(const strix_context *c, int layer)
{
    if (!c || layer < 0 || layer >= c->kv.n_layer)
        return -1;
    return kv_layer_used(&c->kv, layer);
}

int strix_route_last(const strix_context *c, uint8_t *out, int n)
{
    if (!c || !c->route || !out || n <= 0)
        return 0;
    const int k = n < c->route->n_dec ? n : c->route->n_dec;
    memcpy(out, c->route->dec, (size_t)k * (size_t)c->model->hp.n_layer);
    return k;
}
