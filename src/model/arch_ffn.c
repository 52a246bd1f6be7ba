/*
 * arch_ffn.c - strix's own feed-forward variants, which replace the MLP of
 * every block of a llama-style model (the computation is runtime/ffn_peer.c
 * and runtime/ffn_kan.c): their GGUF keys and tensor shapes. No other
 * engine reads these files.
 *
 * Keys (all under the architecture's prefix, e.g. "llama."):
 *   ffn_kind              string "peer" or "kan" (absent: the plain MLP)
 *   feed_forward_length   PEER: n_head x top_k (the experts a token uses, for
 *                         information); KAN: the hidden width h
 * PEER (He 2024, product-key retrieval of single-neuron experts):
 *   peer.expert_count     N, which must be sub_key_count^2
 *   peer.sub_key_count    n_keys, sub-keys per half of the query
 *   peer.head_count       retrieval heads
 *   peer.top_k            experts per head
 *   peer.key_length       query size d_key per head (even)
 *   peer.gating           string "softmax" (default) or "sigmoid"
 * KAN (Liu et al. 2024, the efficient-KAN form):
 *   kan.grid_size         G, uniform intervals over [-range, range]
 *   kan.spline_order      k (3: cubic)
 *   kan.grid_range        range (float32)
 *
 * Tensors, per block N (shapes as ne[0] x ne[1], ne[0] the row length):
 *   blk.N.ffn_peer_query.weight   n_embd x (n_head d_key)
 *   blk.N.ffn_peer_keys.weight    (d_key / 2) x (2 n_head n_keys); row
 *                                 (2 h + half) n_keys + i is sub-key i of
 *                                 head h for the first (half 0) or second
 *                                 half of the query
 *   blk.N.ffn_peer_down.weight    n_embd x N   (row i: u_i)
 *   blk.N.ffn_peer_up.weight      n_embd x N   (row i: v_i)
 *   blk.N.ffn_kan_base1.weight    n_embd x h
 *   blk.N.ffn_kan_spline1.weight  (n_embd (G + k)) x h; column i (G + k) + j
 *                                 multiplies basis j of input i
 *   blk.N.ffn_kan_base2.weight    h x n_embd
 *   blk.N.ffn_kan_spline2.weight  (h (G + k)) x n_embd
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "format/gguf.h"
#include "model/arch.h"

#define PEER_MAX_KEYS 4096 /* 16.7 M experts */
#define PEER_MAX_TOP_K 64
#define PEER_MAX_HEADS 64
#define KAN_MAX_GRID 256
#define KAN_MAX_ORDER 8

/* An optional string key: 0 when absent (s->len 0), else its status. */
static int key_str(const gguf *g, const char *a, const char *k, struct gguf_str *s,
                   strix_error *err)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", a, k);
    s->ptr = NULL;
    s->len = 0;
    int rc = gguf_get_str(g, full, 0, s, err);
    if (rc == STRIX_ERR_ARG) {
        err_clear(err);
        s->len = 0;
        return STRIX_OK;
    }
    return rc;
}

static int str_is(const struct gguf_str *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->ptr, lit, s->len) == 0;
}

int arch_ffn_check(const struct hparams *hp, strix_error *err)
{
    if (hp->ffn_kind == FFN_PEER) {
        if (hp->peer_n_keys < 1 || hp->peer_n_keys > PEER_MAX_KEYS)
            return err_set(err, STRIX_ERR_FORMAT, "PEER sub-key count %d is out of range [1, %d]",
                           hp->peer_n_keys, PEER_MAX_KEYS);
        if (hp->peer_n_head < 1 || hp->peer_n_head > PEER_MAX_HEADS)
            return err_set(err, STRIX_ERR_FORMAT, "PEER head count %d is out of range [1, %d]",
                           hp->peer_n_head, PEER_MAX_HEADS);
        if (hp->peer_top_k < 1 || hp->peer_top_k > PEER_MAX_TOP_K ||
            hp->peer_top_k > hp->peer_n_keys)
            return err_set(err, STRIX_ERR_FORMAT,
                           "PEER top-k %d must be in [1, %d] and at most the %d sub-keys",
                           hp->peer_top_k, PEER_MAX_TOP_K, hp->peer_n_keys);
        if (hp->peer_d_key < 2 || hp->peer_d_key % 2 || hp->peer_d_key > 4096)
            return err_set(err, STRIX_ERR_FORMAT, "PEER key length %d must be even, 2..4096",
                           hp->peer_d_key);
        if (hp->n_expert > 0)
            return err_set(err, STRIX_ERR_FORMAT, "a PEER model has no MoE experts");
    } else if (hp->ffn_kind == FFN_KAN) {
        if (hp->kan_grid < 1 || hp->kan_grid > KAN_MAX_GRID)
            return err_set(err, STRIX_ERR_FORMAT, "KAN grid size %d is out of range [1, %d]",
                           hp->kan_grid, KAN_MAX_GRID);
        if (hp->kan_order < 0 || hp->kan_order > KAN_MAX_ORDER)
            return err_set(err, STRIX_ERR_FORMAT, "KAN spline order %d is out of range [0, %d]",
                           hp->kan_order, KAN_MAX_ORDER);
        if (!(hp->kan_range > 0.0f && hp->kan_range <= 1e6f))
            return err_set(err, STRIX_ERR_FORMAT, "KAN grid range %g must be in (0, 1e6]",
                           hp->kan_range);
        if ((int64_t)(hp->kan_grid + hp->kan_order) * (hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd) >
            (1 << 24))
            return err_set(err, STRIX_ERR_FORMAT, "KAN spline inputs (%d x %d) are too many",
                           hp->kan_grid + hp->kan_order, hp->n_ff);
        if (hp->n_expert > 0)
            return err_set(err, STRIX_ERR_FORMAT, "a KAN model has no MoE experts");
    }
    return STRIX_OK;
}

int arch_ffn_load(strix_model *m, const gguf *g, strix_error *err)
{
    struct hparams *hp = &m->hp;
    const char *a = m->arch;
    struct gguf_str s;
    int rc = key_str(g, a, "ffn_kind", &s, err);
    if (rc)
        return rc;
    if (s.len == 0 || str_is(&s, "mlp"))
        return STRIX_OK;
    if (str_is(&s, "peer"))
        hp->ffn_kind = FFN_PEER;
    else if (str_is(&s, "kan"))
        hp->ffn_kind = FFN_KAN;
    else
        return err_set(err, STRIX_ERR_UNSUPPORTED, "%s.ffn_kind '%.*s' is not supported", a,
                       (int)(s.len > 32 ? 32 : s.len), s.ptr);
    if (!m->ad->w[hp->ffn_kind == FFN_PEER ? T_PEER_QUERY : T_KAN_BASE1])
        return err_set(err, STRIX_ERR_UNSUPPORTED, "%s models cannot have %s feed-forward layers",
                       a, hp->ffn_kind == FFN_PEER ? "PEER" : "KAN");
    if (hp->ffn_kind == FFN_PEER) {
        int n_exp = 0;
        if ((rc = arch_key_u32(g, a, "peer.expert_count", 1, &n_exp, err)) ||
            (rc = arch_key_u32(g, a, "peer.sub_key_count", 1, &hp->peer_n_keys, err)) ||
            (rc = arch_key_u32(g, a, "peer.head_count", 1, &hp->peer_n_head, err)) ||
            (rc = arch_key_u32(g, a, "peer.top_k", 1, &hp->peer_top_k, err)) ||
            (rc = arch_key_u32(g, a, "peer.key_length", 1, &hp->peer_d_key, err)) ||
            (rc = key_str(g, a, "peer.gating", &s, err)))
            return rc;
        if (s.len && !str_is(&s, "softmax") && !str_is(&s, "sigmoid"))
            return err_set(err, STRIX_ERR_UNSUPPORTED, "%s.peer.gating '%.*s' is not supported", a,
                           (int)(s.len > 32 ? 32 : s.len), s.ptr);
        hp->peer_sigmoid = s.len && str_is(&s, "sigmoid");
        if ((rc = arch_ffn_check(hp, err)))
            return rc;
        if ((int64_t)hp->peer_n_keys * hp->peer_n_keys != n_exp)
            return err_set(err, STRIX_ERR_FORMAT,
                           "%s.peer.expert_count %d is not sub_key_count^2 (%d^2)", a, n_exp,
                           hp->peer_n_keys);
        return STRIX_OK;
    }
    if ((rc = arch_key_u32(g, a, "kan.grid_size", 1, &hp->kan_grid, err)) ||
        (rc = arch_key_u32(g, a, "kan.spline_order", 1, &hp->kan_order, err)))
        return rc;
    char full[128];
    snprintf(full, sizeof full, "%s.kan.grid_range", a);
    if ((rc = gguf_get_f32(g, full, 1, &hp->kan_range, err)))
        return rc;
    if (!isfinite(hp->kan_range))
        return err_set(err, STRIX_ERR_FORMAT, "%s is not finite", full);
    hp->n_ff = hp->n_ff_dense; /* checked against the embedding width below */
    return arch_ffn_check(hp, err);
}

int arch_ffn_save(const strix_model *m, gguf_writer *w, strix_error *err)
{
    const struct hparams *hp = &m->hp;
    char k[128];
    int rc;
#define FAIL_IF(call)                                                                              \
    if ((rc = (call)) != STRIX_OK)                                                                 \
        return err_set(err, rc, "cannot add GGUF key %s (%s)", k, strix_status_name(rc));
#define PUT_U32(name, v)                                                                           \
    snprintf(k, sizeof k, "%s." name, m->arch);                                                    \
    FAIL_IF(gguf_writer_add_u32(w, k, (uint32_t)(v)))
    snprintf(k, sizeof k, "%s.ffn_kind", m->arch);
    FAIL_IF(gguf_writer_add_str(w, k, hp->ffn_kind == FFN_PEER ? "peer" : "kan"));
    if (hp->ffn_kind == FFN_PEER) {
        PUT_U32("peer.expert_count", hp->peer_n_keys * hp->peer_n_keys);
        PUT_U32("peer.sub_key_count", hp->peer_n_keys);
        PUT_U32("peer.head_count", hp->peer_n_head);
        PUT_U32("peer.top_k", hp->peer_top_k);
        PUT_U32("peer.key_length", hp->peer_d_key);
        snprintf(k, sizeof k, "%s.peer.gating", m->arch);
        FAIL_IF(gguf_writer_add_str(w, k, hp->peer_sigmoid ? "sigmoid" : "softmax"));
    } else {
        PUT_U32("kan.grid_size", hp->kan_grid);
        PUT_U32("kan.spline_order", hp->kan_order);
        snprintf(k, sizeof k, "%s.kan.grid_range", m->arch);
        FAIL_IF(gguf_writer_add_f32(w, k, hp->kan_range));
    }
#undef PUT_U32
#undef FAIL_IF
    return STRIX_OK;
}

int arch_ffn_shape(const strix_model *m, int k, int64_t ne[3])
{
    const struct hparams *hp = &m->hp;
    const int64_t embd = hp->n_embd, h = hp->n_ff_dense, nb = hp->kan_grid + hp->kan_order;
    const int64_t n_exp = (int64_t)hp->peer_n_keys * hp->peer_n_keys;
    int64_t a, b;
    switch (k) {
    case T_PEER_QUERY: a = embd, b = (int64_t)hp->peer_n_head * hp->peer_d_key; break;
    case T_PEER_KEYS: a = hp->peer_d_key / 2, b = 2 * (int64_t)hp->peer_n_head * hp->peer_n_keys; break;
    case T_PEER_DOWN:
    case T_PEER_UP: a = embd, b = n_exp; break;
    case T_KAN_BASE1: a = embd, b = h; break;
    case T_KAN_SPLINE1: a = embd * nb, b = h; break;
    case T_KAN_BASE2: a = h, b = embd; break;
    case T_KAN_SPLINE2: a = h * nb, b = embd; break;
    default: return 0;
    }
    ne[0] = a, ne[1] = b, ne[2] = 1;
    return 1;
}
