/*
 * arch_retnet.c - what retnet (RetNet, Sun et al. 2023) adds to its row in
 * arch.c: the value length, the decay keys and the shapes of the retention
 * weights. The block itself is runtime/retention.c; the per-sequence state
 * is kept by runtime/ssm.c (the same ring of kept states as mamba's, so
 * rollback, sequence copies, beams and speculative decoding work alike).
 *
 * Keys (besides the common embedding_length, block_count,
 * feed_forward_length, attention.head_count, rope.*, context_length and
 * attention.layer_norm_rms_epsilon):
 *   retnet.attention.key_length     d_k per head (default n_embd / n_head)
 *   retnet.attention.value_length   d_v per head (default 2 d_k, the paper's)
 *   retnet.retention.decay_first    f32, default 5
 *   retnet.retention.decay_step     f32, default 1: head h decays by
 *       gamma_h = 1 - 2^-(decay_first + h * decay_step), the paper's
 *       1 - 2^(-5 - arange(0, n_head)) by default
 * attention.head_count_kv, if present, must equal head_count.
 */
#include <math.h>
#include <stdio.h>

#include "format/gguf.h"
#include "model/arch.h"

#define MAX_DECAY_EXP 24.0f /* gamma = 1 - 2^-24 is the last float below 1 */

int arch_retnet_placeholders(struct hparams *hp, strix_error *err)
{
    if (hp->n_head_kv != hp->n_head)
        return err_set(err, STRIX_ERR_FORMAT, "retnet: %d key/value heads for %d heads",
                       hp->n_head_kv, hp->n_head);
    if (hp->head_dim == 0 && hp->n_head > 0 && hp->n_embd % hp->n_head == 0)
        hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->ret_dv == 0)
        hp->ret_dv = 2 * hp->head_dim;
    if (hp->head_dim < 1 || hp->head_dim > 1024 || hp->ret_dv < 1 || hp->ret_dv > 1024)
        return err_set(err, STRIX_ERR_FORMAT, "retnet: key length %d or value length %d out of range",
                       hp->head_dim, hp->ret_dv);
    for (int h = 0; h < hp->n_head; h += hp->n_head - 1 > 0 ? hp->n_head - 1 : 1) {
        const float e = hp->ret_decay_first + (float)h * hp->ret_decay_step;
        if (!(e > 0.0f && e <= MAX_DECAY_EXP))
            return err_set(err, STRIX_ERR_FORMAT,
                           "retnet: head %d decay exponent %g is outside (0, %g]", h, e,
                           MAX_DECAY_EXP);
    }
    hp->retnet = 1;
    hp->ssm = 1;
    hp->ssm_d_inner = hp->n_head * hp->head_dim;
    hp->ssm_d_state = hp->ret_dv;
    hp->ssm_d_conv = 1;
    hp->ssm_dt_rank = 1;
    return STRIX_OK;
}

int arch_retnet_load(strix_model *m, const gguf *g, strix_error *err)
{
    struct hparams *hp = &m->hp;
    const char *a = m->arch;
    int v = -1; /* absent: -1 */
    int rc = arch_key_u32(g, a, "attention.value_length", 0, &v, err);
    if (rc)
        return rc;
    if (v == 0 || v > 1024)
        return err_set(err, STRIX_ERR_FORMAT, "%s.attention.value_length = %d is out of range",
                       a, v);
    hp->ret_dv = v < 0 ? 0 : v;
    hp->ret_decay_first = 5.0f;
    hp->ret_decay_step = 1.0f;
    if ((rc = arch_key_f32(g, a, "retention.decay_first", 0, &hp->ret_decay_first, err)) ||
        (rc = arch_key_f32(g, a, "retention.decay_step", 0, &hp->ret_decay_step, err)))
        return rc;
    if (hp->n_expert > 0)
        return err_set(err, STRIX_ERR_FORMAT, "retnet models have no experts");
    if (hp->n_head < 1 || hp->n_head > 4096)
        return err_set(err, STRIX_ERR_FORMAT, "retnet: %d heads", hp->n_head);
    return arch_retnet_placeholders(hp, err);
}

int arch_retnet_save(const strix_model *m, gguf_writer *w, strix_error *err)
{
    const struct hparams *hp = &m->hp;
    char k[128];
    int rc;
    snprintf(k, sizeof k, "%s.attention.key_length", m->arch);
    if ((rc = gguf_writer_add_u32(w, k, (uint32_t)hp->head_dim)))
        goto fail;
    snprintf(k, sizeof k, "%s.attention.value_length", m->arch);
    if ((rc = gguf_writer_add_u32(w, k, (uint32_t)hp->ret_dv)))
        goto fail;
    snprintf(k, sizeof k, "%s.retention.decay_first", m->arch);
    if ((rc = gguf_writer_add_f32(w, k, hp->ret_decay_first)))
        goto fail;
    snprintf(k, sizeof k, "%s.retention.decay_step", m->arch);
    if ((rc = gguf_writer_add_f32(w, k, hp->ret_decay_step)))
        goto fail;
    return STRIX_OK;
fail:
    return err_set(err, rc, "cannot add GGUF key %s (%s)", k, strix_status_name(rc));
}

int arch_retnet_shape(const strix_model *m, int k, int64_t ne[3])
{
    const struct hparams *hp = &m->hp;
    const int64_t embd = hp->n_embd, vd = (int64_t)hp->n_head * hp->ret_dv;
    int64_t a = embd, b;
    switch (k) {
    case T_V:
    case T_RET_GATE: b = vd; break;
    case T_RET_NORM: a = vd, b = 1; break;
    case T_O: a = vd, b = embd; break;
    default: return 0; /* q and k are n_head * d_k as in any attention */
    }
    ne[0] = a, ne[1] = b, ne[2] = 1;
    return 1;
}
