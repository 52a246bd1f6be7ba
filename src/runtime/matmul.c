/*
 * matmul.c - y (n, rows) = x (n, cols) * W^T over the thread pool.
 *
 * A group of weights that read the same input (q, k and v; gate and up) has
 * its rows split over the threads as one range, so a token costs one wake-up
 * of the pool per group. Each output element is one dot product of a weight
 * row with one token's activations, computed by the same kernel whatever the
 * batch size or thread count, so batched and one-by-one decoding agree
 * bit for bit.
 *
 * Weights of a type with a dot product (kernels.h) meet activations converted
 * once to that type's vec_dot_type; other types are dequantized row by row.
 */
#include <string.h>

#include "runtime/context.h"
#include "quant/dtype.h"
#include "kernels/kernels.h"

struct mm_job {
    strix_context *c;
    int n_w;
    const struct tensor *w[MM_MAX];
    float *y[MM_MAX];        /* (n, rows of w[i]) */
    const void *a[MM_MAX];   /* activations of w[i], in its vec_dot_type */
    size_t a_stride[MM_MAX]; /* bytes per token */
    const float *x;          /* (n, cols) f32 activations */
    int n;
    int accumulate;
};

size_t mm_act_bytes(int n, int cols)
{
    /* the widest activation format is f32 (Q8_K and friends are smaller) */
    return (size_t)n * (size_t)cols * sizeof(float) + 64;
}

static inline void store(const struct mm_job *j, int i, int t, int r, float s)
{
    float *dst = j->y[i] + (size_t)t * (size_t)j->w[i]->ne[1] + r;
    *dst = j->accumulate ? *dst + s : s;
}

static void mm_rows(const struct mm_job *j, int i, int r0, int r1, float *tmp)
{
    const struct tensor *w = j->w[i];
    const int cols = (int)w->ne[0];
    const struct kern_mm *k = kern_mm_for(w->type);
    if (k) {
        /* whole 16-row groups from the packed copy, when the active set made it */
        const struct kern_isa *isa = kern_isa_active();
        if (w->packed && w->packed_isa == isa && isa->mm_packed[w->type]) {
            const int g1 = (int)(w->ne[1] / 16 * 16), e = r1 < g1 ? r1 : g1;
            if (r0 < e)
                isa->mm_packed[w->type](w->type, cols, w->packed, w->packed_stride, r0, e,
                                        j->a[i], j->a_stride[i], j->n, j->y[i],
                                        (size_t)w->ne[1], j->accumulate);
            r0 = r0 > g1 ? r0 : g1;
            if (r0 >= r1)
                return;
        }
        /* the type's own kernels: blocks of rows against blocks of tokens */
        k->run(w->type, cols, (const uint8_t *)w->data, w->row_bytes, r0, r1, j->a[i],
               j->a_stride[i], j->n, j->y[i], (size_t)w->ne[1], j->accumulate);
        return;
    }
    const dtype_dequant_fn deq = dtype_get(w->type)->dequantize;
    for (int r = r0; r < r1; r++) {
        deq((const uint8_t *)w->data + (size_t)r * w->row_bytes, tmp, cols);
        for (int t = 0; t < j->n; t++)
            store(j, i, t, r, kern_dot_f32(cols, tmp, j->x + (size_t)t * (size_t)cols));
    }
}

/* Rows are shared out in units of 16 per weight, so which kernel computes
 * a row (packed group or not) never depends on the thread count. */
static void mm_worker(void *arg, int ith, int nth)
{
    const struct mm_job *j = arg;
    int64_t total = 0;
    for (int i = 0; i < j->n_w; i++)
        total += (j->w[i]->ne[1] + 15) / 16;
    const int64_t u0 = total * ith / nth, u1 = total * (ith + 1) / nth;
    float *tmp = j->c->row + (size_t)ith * (size_t)j->c->max_row;
    int64_t base = 0;
    for (int i = 0; i < j->n_w; i++) {
        const int64_t rows = j->w[i]->ne[1], units = (rows + 15) / 16;
        const int64_t a = u0 > base ? u0 - base : 0, b = u1 - base < units ? u1 - base : units;
        if (a < b)
            mm_rows(j, i, (int)(a * 16), (int)(b * 16 < rows ? b * 16 : rows), tmp);
        base += units;
    }
}

/* Converting a batch's activations, tokens split over the threads. */
struct conv_job {
    uint32_t type;
    const float *x;
    uint8_t *dst;
    int cols, n;
    size_t stride;
};

static void conv_worker(void *arg, int ith, int nth)
{
    const struct conv_job *j = arg;
    for (int t = j->n * ith / nth; t < j->n * (ith + 1) / nth; t++)
        kern_act_quantize(j->type, j->x + (size_t)t * (size_t)j->cols, j->dst + (size_t)t * j->stride,
                          j->cols);
}

void mm_group(strix_context *c, int n_w, const struct tensor *const *w, float *const *y,
              const float *x, int n, int accumulate)
{
    STRIX_ASSERT(n_w >= 1 && n_w <= MM_MAX);
    for (int i = 0; c->on_matmul && i < n_w; i++) /* observation (context params) */
        c->on_matmul(c->on_matmul_user, w[i]->name, x, n, (int)w[i]->ne[0]);
    struct mm_job j = {.c = c, .n_w = n_w, .x = x, .n = n, .accumulate = accumulate};
    int64_t work = 0;
    uint32_t conv_type = UINT32_MAX;
    const void *conv = NULL;
    size_t conv_stride = 0;
    for (int i = 0; i < n_w; i++) {
        j.w[i] = w[i];
        j.y[i] = y[i];
        work += w[i]->ne[0] * w[i]->ne[1] * n;
        const struct kern_mm *k = kern_mm_for(w[i]->type);
        if (!k)
            continue;
        /* convert the activations once per distinct format */
        if (k->act_type != conv_type) {
            const int cols = (int)w[i]->ne[0];
            conv_stride = kern_act_row_bytes(k->act_type, cols);
            if (k->act_type == DTYPE_F32) {
                conv = x;
            } else {
                /* each weight of the group has its own slot of scratch */
                uint8_t *act = (uint8_t *)c->act + (size_t)i * c->act_size;
                STRIX_ASSERT((size_t)n * conv_stride <= c->act_size); /* per slot */
                struct conv_job cj = {k->act_type, x, act, cols, n, conv_stride};
                pool_run_n(c->pool, conv_worker, &cj, n >= 8 ? c->n_threads : 1);
                conv = act;
            }
            conv_type = k->act_type;
        }
        j.a[i] = conv;
        j.a_stride[i] = conv_stride;
    }
    /* small products are not worth waking threads for */
    pool_run_n(c->pool, mm_worker, &j, work < 32768 ? 1 : c->n_threads);
}

void mm(strix_context *c, const struct tensor *w, const float *x, float *y, int n, int accumulate)
{
    mm_group(c, 1, &w, &y, x, n, accumulate);
}
