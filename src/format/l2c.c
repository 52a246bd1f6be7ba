/*
 * l2c.c - llama2.c checkpoints (karpathy/llama2.c export formats):
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
 *            each tensor as int8 values followed by one fp32 scale per group
 *            (w = q * scale).
 *
 * fp32 weights are used in place from the mapping; int8 ones are dequantized
 * exactly into an owned buffer. w1 is the FFN gate, w3 the up projection.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant/dtype.h"
#include "model/model.h"

#define L2C_MAGIC 0x616b3432u
#define L2C_HEADER_V 256

struct l2c_cfg {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

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

/* A cursor over the weight bytes that checks every step against the file. */
struct cursor {
    const uint8_t *base;
    size_t off, size;
};

static int take(struct cursor *c, size_t n, const void **p, const char *what, strix_error *err)
{
    if (n > c->size - c->off)
        return err_set(err, STRIX_ERR_FORMAT,
                       "truncated: %s needs %zu bytes at offset %zu, file has %zu", what, n, c->off,
                       c->size);
    *p = c->base + c->off;
    c->off += n;
    return STRIX_OK;
}

/* Sets slot s from the next tensor of the file (fp32 or int8 groups). */
static int next_tensor(strix_model *m, struct cursor *c, int slot, int version, int group,
                       float **owned_at, strix_error *err)
{
    struct slot s;
    model_slot(m, slot, &s);
    size_t n = (size_t)s.ne[0] * (size_t)s.ne[1]; /* bounded by model_init_tables */
    const void *p = NULL;
    int rc;
    if (version != 2 || s.n_dims == 1) {
        if ((rc = take(c, n * 4, &p, s.name, err)))
            return rc;
        return model_set_tensor(&s, DTYPE_F32, s.ne, s.n_dims, p, n * 4, err);
    }
    if (n % (size_t)group != 0)
        return err_set(err, STRIX_ERR_FORMAT, "%s: %zu weights are not a multiple of group %d",
                       s.name, n, group);
    const void *scales = NULL;
    if ((rc = take(c, n, &p, s.name, err)) ||
        (rc = take(c, n / (size_t)group * 4, &scales, s.name, err)))
        return rc;
    const int8_t *q = p;
    const uint8_t *sc = scales;
    float *dst = *owned_at;
    for (size_t g = 0; g < n / (size_t)group; g++) {
        float scale;
        memcpy(&scale, sc + 4 * g, 4);
        for (int j = 0; j < group; j++)
            dst[g * (size_t)group + (size_t)j] = (float)q[g * (size_t)group + (size_t)j] * scale;
    }
    *owned_at += n;
    return model_set_tensor(&s, DTYPE_F32, s.ne, s.n_dims, dst, n * 4, err);
}

/* Slot numbers (see model_slot): per layer, in this order. */
enum { K_ATTN_NORM, K_Q, K_K, K_V, K_O, K_FFN_NORM, K_GATE, K_DOWN, K_UP, K_PER_LAYER };

static int layer_slot(const strix_model *m, int il, int k)
{
    return (m->tied_output ? 2 : 3) + il * K_PER_LAYER + k;
}

int l2c_load(strix_model *m, const char *vocab_path, strix_error *err)
{
    const uint8_t *buf = m->map.data;
    const size_t size = m->map.size;
    int version = 0, group = 0, shared = 1, rc;
    size_t hdr = 28;
    struct l2c_cfg cfg;
    if (size >= 8 && (uint32_t)rd_i32(buf) == L2C_MAGIC) {
        version = rd_i32(buf + 4);
        if (version != 1 && version != 2)
            return err_set(err, STRIX_ERR_UNSUPPORTED, "llama2.c checkpoint version %d", version);
        if (size < L2C_HEADER_V)
            return err_set(err, STRIX_ERR_FORMAT, "truncated llama2.c header (%zu bytes)", size);
        memcpy(&cfg, buf + 8, sizeof cfg);
        shared = buf[36];
        if (shared > 1)
            return err_set(err, STRIX_ERR_FORMAT, "shared_classifier flag is %d", shared);
        if (version == 2) {
            group = rd_i32(buf + 37);
            if (group <= 0 || group > (1 << 16))
                return err_set(err, STRIX_ERR_FORMAT, "bad group size %d", group);
        }
        hdr = L2C_HEADER_V;
    } else {
        if (size < 28)
            return err_set(err, STRIX_ERR_FORMAT, "truncated llama2.c header (%zu bytes)", size);
        memcpy(&cfg, buf, sizeof cfg);
        shared = cfg.vocab_size > 0;
        if (cfg.vocab_size < 0 && cfg.vocab_size != INT32_MIN)
            cfg.vocab_size = -cfg.vocab_size;
    }
    struct hparams *hp = &m->hp;
    snprintf(m->arch, sizeof m->arch, "llama");
    hp->n_embd = cfg.dim;
    hp->n_ff = cfg.hidden_dim;
    hp->n_layer = cfg.n_layers;
    hp->n_head = cfg.n_heads;
    hp->n_head_kv = cfg.n_kv_heads;
    hp->n_vocab = cfg.vocab_size;
    hp->n_ctx_train = cfg.seq_len;
    hp->n_rot = 0;
    hp->rope_neox = 0;
    hp->rope_freq_base = 10000.0f;
    hp->norm_eps = 1e-5f; /* llama2.c's rmsnorm constant */
    m->tied_output = shared;
    if ((rc = model_init_tables(m, err)))
        return rc;

    /* int8 weights are dequantized into one buffer sized for all 2-D tensors */
    float *owned_at = NULL;
    if (version == 2) {
        size_t total = 0;
        for (int i = 0; i < m->n_all; i++) {
            struct slot s;
            model_slot(m, i, &s);
            if (s.n_dims == 2)
                total += (size_t)s.ne[0] * (size_t)s.ne[1];
        }
        if (total > size) /* each weight takes at least one byte of the file */
            return err_set(err, STRIX_ERR_FORMAT, "truncated: %zu int8 weights, file has %zu bytes",
                           total, size);
        m->owned = util_malloc(total * sizeof(float));
        if (!m->owned)
            return err_set(err, STRIX_ERR_NOMEM, "out of memory for %zu weights", total);
        owned_at = m->owned;
    }

    struct cursor c = {buf, hdr, size};
    const int nl = hp->n_layer;
#define NEXT(slot)                                                                                 \
    do {                                                                                           \
        if ((rc = next_tensor(m, &c, (slot), version, group, &owned_at, err)))                     \
            return rc;                                                                             \
    } while (0)
    static const int big[] = {K_Q, K_K, K_V, K_O, K_GATE, K_DOWN, K_UP};
    if (version == 0) {
        NEXT(0);
        for (int l = 0; l < nl; l++)
            NEXT(layer_slot(m, l, K_ATTN_NORM));
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < nl; l++)
                NEXT(layer_slot(m, l, big[k]));
        for (int l = 0; l < nl; l++)
            NEXT(layer_slot(m, l, K_FFN_NORM));
        for (int k = 4; k < 7; k++)
            for (int l = 0; l < nl; l++)
                NEXT(layer_slot(m, l, big[k]));
        NEXT(1);
        const void *skip = NULL;
        size_t freq = (size_t)hp->n_ctx_train * (size_t)(hp->head_dim / 2) * 4 * 2;
        if ((rc = take(&c, freq, &skip, "freq_cis", err)))
            return rc;
    } else {
        for (int l = 0; l < nl; l++)
            NEXT(layer_slot(m, l, K_ATTN_NORM));
        for (int l = 0; l < nl; l++)
            NEXT(layer_slot(m, l, K_FFN_NORM));
        NEXT(1);
        NEXT(0);
        for (int k = 0; k < 7; k++)
            for (int l = 0; l < nl; l++)
                NEXT(layer_slot(m, l, big[k]));
    }
    if (!shared)
        NEXT(2);
#undef NEXT
    if (c.off != size)
        return err_set(err, STRIX_ERR_FORMAT, "%zu unexpected bytes after the weights",
                       size - c.off);

    if (vocab_path) {
        struct util_map vm;
        if ((rc = util_map_file(vocab_path, &vm, err)))
            return rc;
        rc = vocab_load_l2c(vm.data, vm.size, hp->n_vocab, &m->vocab, err);
        util_unmap(&vm);
        if (rc) {
            err_prefix(err, "%s", vocab_path);
            return rc;
        }
    }
    return STRIX_OK;
}
