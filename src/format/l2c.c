/*
 * l2c.c - llama2.c checkpoints (karpathy/llama2.c export formats) as a list
 * of tensors named as in GGUF (see l2c.h); model.c places them.
 *
 *   legacy:  int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 *            seq_len (vocab_size < 0: the classifier is stored separately),
 *            then fp32 weights: token_embedding (vocab, dim), rms_att (layer, dim),
 *            wq (layer, n_heads*hs, dim), wk (layer, n_kv_heads*hs, dim), wv (same),
 *            wo (layer, dim, n_heads*hs), rms_ffn (layer, dim), w1 (layer, hidden, dim),
 *            w2 (layer, dim, hidden), w3 (layer, hidden, dim), rms_final (dim),
 *            freq_cis_real and freq_cis_imag (seq_len, hs/2 each, unused),
 *            [wcls (vocab, dim)].
 *   v1/v2:   uint32 magic 0x616b3432 ("ak42"), int32 version, the 7 ints above,
 *            uint8 shared_classifier, [v2: int32 group_size], zero padding to
 *            256 bytes. Order: rms_att (layer, dim), rms_ffn (layer, dim),
 *            rms_final (dim), then token_embedding, wq, wk, wv, wo, w1, w2, w3
 *            (each for all layers), [wcls]. v1 stores these in fp32; v2 stores
 *            each matrix as int8 values followed by one fp32 scale per group
 *            (w = q * scale); the norm weights stay fp32.
 *
 * fp32 weights are used in place from the file bytes; int8 ones are copied
 * into Q8_0 blocks (values kept, scales rounded to fp16) or, where that
 * cannot be done (see l2c.h), dequantized exactly to F32. w1 is the FFN
 * gate ("ffn_gate"), w3 the up projection ("ffn_up").
 */
#include "format/l2c.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant/dtype.h"

#define L2C_MAGIC 0x616b3432u
#define L2C_HEADER_V 256
#define L2C_MAX_DIM (1 << 24)

static int32_t rd_i32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

int l2c_probe(const uint8_t *buf, size_t len)
{
    if (len >= 8 && (uint32_t)rd_i32(buf) == L2C_MAGIC)
        return 1;
    if (len < 28)
        return 0;
    /* legacy: seven plausible positive ints (vocab_size may be negative) */
    for (int i = 0; i < 7; i++) {
        int32_t v = rd_i32(buf + 4 * i);
        if (i == 5 && v < 0 && v != INT32_MIN)
            v = -v;
        if (v <= 0 || v > (1 << 24))
            return 0;
    }
    return 1;
}

/* The weight kinds of a llama2.c model and their GGUF names. */
enum { K_EMBD, K_ATTN_NORM, K_Q, K_K, K_V, K_O, K_FFN_NORM, K_GATE, K_DOWN, K_UP, K_OUT_NORM, K_OUT };
static const char *const kind_name[] = {
    "token_embd", "attn_norm", "attn_q",   "attn_k",   "attn_v",      "attn_output",
    "ffn_norm",   "ffn_gate",  "ffn_down", "ffn_up",   "output_norm", "output",
};

/* Where an int8 matrix's values and scales are in the file (version 2). */
struct int8_src {
    const int8_t *q; /* NULL: the tensor is fp32 */
    const uint8_t *scales;
};

/* The parse in progress: a cursor over the file and the int8 sources of
 * the tensors read so far. */
struct reader {
    const uint8_t *buf;
    size_t off, size;
    struct l2c_file *f;
    struct int8_src *src;
};

static int take(struct reader *r, size_t n, const void **p, const char *what, strix_error *err)
{
    if (n > r->size - r->off)
        return err_set(err, STRIX_ERR_FORMAT,
                       "truncated: %s needs %zu bytes at offset %zu, file has %zu", what, n, r->off,
                       r->size);
    *p = r->buf + r->off;
    r->off += n;
    return STRIX_OK;
}

static void kind_shape(const struct l2c_config *c, int k, int *n_dims, int64_t ne[2])
{
    const int64_t dim = c->dim, kv = (int64_t)c->n_kv_heads * (c->dim / c->n_heads);
    int64_t a = dim, b = 1;
    switch (k) {
    case K_EMBD:
    case K_OUT: b = c->vocab_size; break;
    case K_Q:
    case K_O: b = dim; break;
    case K_K:
    case K_V: b = kv; break;
    case K_GATE:
    case K_UP: b = c->hidden_dim; break;
    case K_DOWN: a = c->hidden_dim, b = dim; break;
    default: break; /* norms */
    }
    ne[0] = a, ne[1] = b;
    *n_dims = k == K_ATTN_NORM || k == K_FFN_NORM || k == K_OUT_NORM ? 1 : 2;
}

/* The next tensor of the file: kind k of layer il (il < 0: model-wide). */
static int next(struct reader *r, int k, int il, strix_error *err)
{
    struct l2c_file *f = r->f;
    const int i = f->n_tensors;
    struct l2c_tensor *t = &f->tensors[i];
    if (il < 0)
        snprintf(t->name, sizeof t->name, "%s.weight", kind_name[k]);
    else
        snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", il, kind_name[k]);
    kind_shape(&f->cfg, k, &t->n_dims, t->ne);
    const size_t n = (size_t)t->ne[0] * (size_t)t->ne[1]; /* each <= 2^24 */
    int rc;
    if (f->version != 2 || t->n_dims == 1) {
        t->type = DTYPE_F32;
        t->nbytes = n * 4;
        if ((rc = take(r, t->nbytes, &t->data, t->name, err)))
            return rc;
    } else {
        if (n % (size_t)f->group != 0)
            return err_set(err, STRIX_ERR_FORMAT, "%s: %zu weights are not a multiple of group %d",
                           t->name, n, f->group);
        const void *q = NULL, *s = NULL;
        if ((rc = take(r, n, &q, t->name, err)) ||
            (rc = take(r, n / (size_t)f->group * 4, &s, t->name, err)))
            return rc;
        r->src[i] = (struct int8_src){q, s};
    }
    f->n_tensors++;
    return STRIX_OK;
}

/* Whether the groups of int8 tensor t can be Q8_0 blocks: whole blocks per
 * row and per group, and every scale an fp16 normal number (or zero), so
 * that the only change is the scale's rounding to 11 significant bits. */
static int fits_q8_0(const struct l2c_tensor *t, const uint8_t *scales, int group)
{
    if (t->ne[0] % QK8_0 != 0 || group % QK8_0 != 0)
        return 0;
    const size_t n_groups = (size_t)t->ne[0] * (size_t)t->ne[1] / (size_t)group;
    for (size_t g = 0; g < n_groups; g++) {
        float s;
        memcpy(&s, scales + 4 * g, 4);
        const float a = fabsf(s);
        if (!(a == 0.0f || (a >= 0x1p-14f && a <= 65504.0f)))
            return 0;
    }
    return 1;
}

/* The int8 matrix t as Q8_0 blocks (fits_q8_0) or F32 values at dst. */
static void convert(struct l2c_tensor *t, const int8_t *q, const uint8_t *scales, int group,
                    int as_q8_0, void *dst)
{
    const size_t n = (size_t)t->ne[0] * (size_t)t->ne[1];
    if (as_q8_0) {
        struct block_q8_0 *b = dst;
        for (size_t i = 0; i < n / QK8_0; i++) {
            float s;
            memcpy(&s, scales + 4 * (i * QK8_0 / (size_t)group), 4);
            b[i].d = util_fp32_to_fp16(s);
            memcpy(b[i].qs, q + i * QK8_0, QK8_0);
        }
        t->type = DTYPE_Q8_0;
        t->nbytes = n / QK8_0 * sizeof *b;
    } else {
        float *w = dst;
        for (size_t i = 0; i < n; i++) {
            float s;
            memcpy(&s, scales + 4 * (i / (size_t)group), 4);
            w[i] = (float)q[i] * s;
        }
        t->type = DTYPE_F32;
        t->nbytes = n * 4;
    }
    t->data = dst;
}

static int read_header(const uint8_t *buf, size_t size, struct l2c_file *f, size_t *hdr,
                       strix_error *err)
{
    struct l2c_config *c = &f->cfg;
    f->shared = 1;
    *hdr = 28;
    if (size >= 8 && (uint32_t)rd_i32(buf) == L2C_MAGIC) {
        f->version = rd_i32(buf + 4);
        if (f->version != 1 && f->version != 2)
            return err_set(err, STRIX_ERR_UNSUPPORTED, "llama2.c checkpoint version %d",
                           f->version);
        if (size < L2C_HEADER_V)
            return err_set(err, STRIX_ERR_FORMAT, "truncated llama2.c header (%zu bytes)", size);
        memcpy(c, buf + 8, sizeof *c);
        f->shared = buf[36];
        if (f->shared > 1)
            return err_set(err, STRIX_ERR_FORMAT, "shared_classifier flag is %d", f->shared);
        if (f->version == 2) {
            f->group = rd_i32(buf + 37);
            if (f->group <= 0 || f->group > (1 << 16))
                return err_set(err, STRIX_ERR_FORMAT, "bad group size %d", f->group);
        }
        *hdr = L2C_HEADER_V;
    } else {
        if (size < 28)
            return err_set(err, STRIX_ERR_FORMAT, "truncated llama2.c header (%zu bytes)", size);
        memcpy(c, buf, sizeof *c);
        f->shared = c->vocab_size > 0;
        if (c->vocab_size < 0 && c->vocab_size != INT32_MIN)
            c->vocab_size = -c->vocab_size;
    }
    const int32_t v[] = {c->dim,        c->hidden_dim, c->n_layers, c->n_heads,
                         c->n_kv_heads, c->vocab_size, c->seq_len};
    static const char *const what[] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                       "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++)
        if (v[i] <= 0 || v[i] > L2C_MAX_DIM)
            return err_set(err, STRIX_ERR_FORMAT, "llama2.c %s = %d is out of range", what[i],
                           v[i]);
    if (c->dim % c->n_heads != 0 || c->n_kv_heads > c->n_heads)
        return err_set(err, STRIX_ERR_FORMAT, "llama2.c heads %d (kv %d) do not divide dim %d",
                       c->n_heads, c->n_kv_heads, c->dim);
    return STRIX_OK;
}

int l2c_parse(const uint8_t *buf, size_t size, struct l2c_file *f, strix_error *err)
{
    memset(f, 0, sizeof *f);
    size_t hdr;
    int rc = read_header(buf, size, f, &hdr, err);
    if (rc)
        return rc;
    const int nl = f->cfg.n_layers;
    /* every tensor takes at least 4 bytes of the file */
    const size_t max_tensors = 9 * (size_t)nl + 3;
    if (max_tensors > size / 4)
        return err_set(err, STRIX_ERR_FORMAT, "truncated: %d layers in %zu bytes", nl, size);
    struct reader r = {buf, hdr, size, f, NULL};
    f->tensors = util_calloc(max_tensors, sizeof *f->tensors);
    r.src = util_calloc(max_tensors, sizeof *r.src);
    if (!f->tensors || !r.src) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto done;
    }
#define NEXT(k, il)                                                                                \
    if ((rc = next(&r, (k), (il), err)))                                                           \
    goto done
#define ALL_LAYERS(k)                                                                              \
    for (int l = 0; l < nl; l++)                                                                   \
    NEXT(k, l)
    if (f->version == 0) {
        NEXT(K_EMBD, -1);
        ALL_LAYERS(K_ATTN_NORM);
        for (int k = K_Q; k <= K_O; k++)
            ALL_LAYERS(k);
        ALL_LAYERS(K_FFN_NORM);
        for (int k = K_GATE; k <= K_UP; k++)
            ALL_LAYERS(k);
        NEXT(K_OUT_NORM, -1);
        const void *skip = NULL;
        const size_t hs = (size_t)(f->cfg.dim / f->cfg.n_heads);
        if ((rc = take(&r, (size_t)f->cfg.seq_len * (hs / 2) * 4 * 2, &skip, "freq_cis", err)))
            goto done;
    } else {
        ALL_LAYERS(K_ATTN_NORM);
        ALL_LAYERS(K_FFN_NORM);
        NEXT(K_OUT_NORM, -1);
        NEXT(K_EMBD, -1);
        for (int k = K_Q; k <= K_UP; k++)
            if (k != K_FFN_NORM)
                ALL_LAYERS(k);
    }
    if (!f->shared)
        NEXT(K_OUT, -1);
#undef ALL_LAYERS
#undef NEXT
    if (r.off != size) {
        rc = err_set(err, STRIX_ERR_FORMAT, "%zu unexpected bytes after the weights",
                     size - r.off);
        goto done;
    }

    /* int8 matrices: into one owned buffer, Q8_0 where exact but for the scale */
    size_t total = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const struct l2c_tensor *t = &f->tensors[i];
        if (!r.src[i].q)
            continue;
        const size_t n = (size_t)t->ne[0] * (size_t)t->ne[1];
        total += fits_q8_0(t, r.src[i].scales, f->group) ? n / QK8_0 * sizeof(struct block_q8_0)
                                                         : n * sizeof(float);
    }
    if (total > 0 && !(f->owned = util_malloc_huge(total))) { /* huge pages: fewer faults */
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for %zu bytes of weights", total);
        goto done;
    }
    uint8_t *at = f->owned;
    for (int i = 0; i < f->n_tensors; i++) {
        struct l2c_tensor *t = &f->tensors[i];
        const struct int8_src *in = &r.src[i];
        if (!in->q)
            continue;
        convert(t, in->q, in->scales, f->group, fits_q8_0(t, in->scales, f->group), at);
        at += t->nbytes;
    }
done:
    util_free(r.src);
    if (rc)
        l2c_free(f);
    return rc;
}

void l2c_free(struct l2c_file *f)
{
    if (!f)
        return;
    util_free(f->tensors);
    util_free(f->owned);
    memset(f, 0, sizeof *f);
}
