/*
 * ffn_kan.c - two KAN layers (Liu et al. 2024, in the "efficient-KAN"
 * formulation) in place of a block's MLP: n_embd -> h -> n_embd, each
 *
 *   y = W_base silu(x) + W_spline B(x)
 *
 * where B(x) holds, for every input x_i, the G + k B-spline bases of order
 * k on a fixed uniform grid of G intervals over [-R, R], extended by k knots
 * on each side (knot j at -R + (j - k) 2R / G, j = 0 .. G + 2k). Column
 * i (G + k) + j of W_spline multiplies basis j of input i (efficient-KAN's
 * per-edge spline scaler is folded into W_spline; the grid is not
 * updated). Outside [knot 0, knot G + 2k) the bases are zero and only the
 * base branch acts. Both products go through matmul.c, so any weight type
 * works and batched and one-by-one decoding agree bit for bit.
 */
#include <math.h>
#include <string.h>

#include "model/arch.h"
#include "runtime/ffn_var.h"

struct ffn_kan_scratch {
    float *act;   /* (n_batch, max(n_embd, h)) silu of the layer's input */
    float *basis; /* (n_batch, max(n_embd, h) (G + k)) the bases */
    float *hid;   /* (n_batch, h) the first layer's output */
};

size_t ffn_kan_max_row(const struct hparams *hp)
{
    if (hp->ffn_kind != FFN_KAN)
        return 0;
    const size_t w = (size_t)(hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff);
    return w * (size_t)(hp->kan_grid + hp->kan_order);
}

struct ffn_kan_scratch *ffn_kan_scratch_create(const struct hparams *hp, int n_batch)
{
    struct ffn_kan_scratch *s = util_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const size_t nb = (size_t)n_batch;
    const size_t w = (size_t)(hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff);
    s->act = util_malloc(nb * w * sizeof(float));
    s->basis = util_malloc(nb * ffn_kan_max_row(hp) * sizeof(float));
    s->hid = util_malloc(nb * (size_t)hp->n_ff * sizeof(float));
    if (!s->act || !s->basis || !s->hid) {
        ffn_kan_scratch_free(s);
        return NULL;
    }
    return s;
}

void ffn_kan_scratch_free(struct ffn_kan_scratch *s)
{
    if (!s)
        return;
    util_free(s->act);
    util_free(s->basis);
    util_free(s->hid);
    util_free(s);
}

void ffn_kan_basis(float x, int grid, int order, float range, float *b)
{
    /* order 0: the indicator of each of the grid + 2 order intervals, then
     * Cox-de Boor raises the order one step at a time in place:
     * B[j,p] = (x - t_j) / (p h) B[j,p-1] + (t_{j+p+1} - x) / (p h) B[j+1,p-1] */
    const int n0 = grid + 2 * order;
    const float h = 2.0f * range / (float)grid;
    float v[256 + 2 * 8]; /* grid <= 256, order <= 8 (arch_ffn.c checks) */
    STRIX_ASSERT(grid >= 1 && grid <= 256 && order >= 0 && order <= 8);
    for (int j = 0; j < n0; j++) {
        const float lo = -range + (float)(j - order) * h, hi = -range + (float)(j + 1 - order) * h;
        v[j] = x >= lo && x < hi ? 1.0f : 0.0f;
    }
    for (int p = 1; p <= order; p++) {
        const float den = (float)p * h;
        for (int j = 0; j < n0 - p; j++) {
            const float tj = -range + (float)(j - order) * h;
            const float tjp1 = -range + (float)(j + p + 1 - order) * h;
            v[j] = (x - tj) / den * v[j] + (tjp1 - x) / den * v[j + 1];
        }
    }
    memcpy(b, v, (size_t)(grid + order) * sizeof(float));
}

/* y (n, rows of base) = base silu(x) + spline B(x), x (n, din). */
static void kan_layer(strix_context *c, struct ffn_kan_scratch *s, const struct tensor *base,
                      const struct tensor *spline, const float *x, int din, float *y, int n)
{
    const struct hparams *hp = &c->model->hp;
    const int nb = hp->kan_grid + hp->kan_order;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * (size_t)din;
        float *at = s->act + (size_t)t * (size_t)din;
        float *bt = s->basis + (size_t)t * (size_t)din * (size_t)nb;
        for (int i = 0; i < din; i++) {
            at[i] = xt[i] / (1.0f + expf(-xt[i]));
            ffn_kan_basis(xt[i], hp->kan_grid, hp->kan_order, hp->kan_range, bt + (size_t)i * nb);
        }
    }
    mm(c, base, s->act, y, n, 0);
    mm(c, spline, s->basis, y, n, 1);
}

void ffn_kan(strix_context *c, struct ffn_kan_scratch *s, int l, const float *in, float *out,
             int n)
{
    const struct hparams *hp = &c->model->hp;
    const struct layer *L = &c->model->layers[l];
    kan_layer(c, s, &L->kan_base1, &L->kan_spline1, in, hp->n_embd, s->hid, n);
    kan_layer(c, s, &L->kan_base2, &L->kan_spline2, s->hid, hp->n_ff, out, n);
}
