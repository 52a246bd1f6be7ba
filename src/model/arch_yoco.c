/*
 * arch_yoco.c - what yoco (YOCO, "You Only Cache Once", Sun et al. 2024)
 * adds to its row in arch.c: the self-decoder depth, the gate temperature
 * and the tensor shapes. The forward pass is runtime/forward.c (block loop)
 * with runtime/retention.c (self-decoder) and runtime/yoco.c (the shared
 * cache and the cross-decoder's batch).
 *
 * Blocks [0, n_self) form the self-decoder: gated retention (RetNet's
 * retention whose decay is data-dependent: per token and head,
 * gamma = sigmoid(W_decay x)^(1/tau)), then a SwiGLU FFN; its state per
 * sequence is constant-size. Its output, normed by cross_kv_norm, is
 * projected once by cross_k and cross_v (n_head_kv heads, rotary keys)
 * into ONE key/value cache. Blocks [n_self, n_layer) form the
 * cross-decoder: each has only a query projection and attends (causally)
 * to that shared cache, then a SwiGLU FFN.
 *
 * Keys besides the common ones (embedding_length, block_count,
 * feed_forward_length, attention.head_count, attention.head_count_kv,
 * attention.key_length, rope.*, attention.layer_norm_rms_epsilon):
 *   yoco.self_block_count              n_self (default block_count / 2)
 *   yoco.retention.gate_temperature    f32 tau (default 16, the paper's)
 * The self-decoder's retention has n_head heads of d_k = d_v = head_dim.
 */
#include <math.h>
#include <stdio.h>

#include "format/gguf.h"
#include "model/arch.h"

int arch_yoco_placeholders(struct hparams *hp, strix_error *err)
{
    if (hp->yoco_n_self < 1 || hp->yoco_n_self >= hp->n_layer)
        return err_set(err, STRIX_ERR_FORMAT,
                       "yoco: self_block_count %d must leave at least one block on each side of "
                       "%d blocks",
                       hp->yoco_n_self, hp->n_layer);
    if (!(hp->ret_gate_tau >= 1e-3f && hp->ret_gate_tau <= 1e6f))
        return err_set(err, STRIX_ERR_FORMAT, "yoco: gate temperature %g is out of range",
                       hp->ret_gate_tau);
    if (hp->head_dim == 0 && hp->n_head > 0 && hp->n_embd % hp->n_head == 0)
        hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
        return err_set(err, STRIX_ERR_FORMAT, "yoco: %d heads are not a multiple of %d kv heads",
                       hp->n_head, hp->n_head_kv);
    /* the self-decoder's retention: one (d_k, d_k) state per head, kept by
     * runtime/ssm.c as for retnet (the decay keys are unused: the decay is gated) */
    const int kv = hp->n_head_kv;
    hp->n_head_kv = hp->n_head;
    hp->ret_dv = hp->head_dim;
    hp->ret_decay_first = 5.0f;
    hp->ret_decay_step = 0.0f;
    int rc = arch_retnet_placeholders(hp, err);
    hp->n_head_kv = kv;
    hp->retnet = 0;
    hp->yoco = 1;
    return rc;
}

int arch_yoco_load(strix_model *m, const gguf *g, strix_error *err)
{
    struct hparams *hp = &m->hp;
    hp->yoco_n_self = hp->n_layer / 2; /* absent: half */
    hp->ret_gate_tau = 16.0f;
    int rc;
    if ((rc = arch_key_u32(g, m->arch, "self_block_count", 0, &hp->yoco_n_self, err)) ||
        (rc = arch_key_f32(g, m->arch, "retention.gate_temperature", 0, &hp->ret_gate_tau, err)))
        return rc;
    if (hp->n_expert > 0)
        return err_set(err, STRIX_ERR_FORMAT, "yoco models have no experts");
    if (hp->n_head < 1 || hp->n_head > 4096)
        return err_set(err, STRIX_ERR_FORMAT, "yoco: %d heads", hp->n_head);
    return arch_yoco_placeholders(hp, err);
}

int arch_yoco_save(const strix_model *m, gguf_writer *w, strix_error *err)
{
    char k[128];
    snprintf(k, sizeof k, "%s.self_block_count", m->arch);
    int rc = gguf_writer_add_u32(w, k, (uint32_t)m->hp.yoco_n_self);
    if (rc == STRIX_OK) {
        snprintf(k, sizeof k, "%s.retention.gate_temperature", m->arch);
        rc = gguf_writer_add_f32(w, k, m->hp.ret_gate_tau);
    }
    if (rc)
        return err_set(err, rc, "cannot add GGUF key %s (%s)", k, strix_status_name(rc));
    return STRIX_OK;
}

int arch_yoco_shape(const strix_model *m, int k, int64_t ne[3])
{
    const struct hparams *hp = &m->hp;
    const int64_t embd = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim;
    int64_t a = embd, b;
    switch (k) {
    case T_K: /* the self-decoder's retention: n_head heads */
    case T_V:
    case T_RET_GATE: b = q; break;
    case T_RET_NORM: a = q, b = 1; break;
    case T_RET_DECAY: b = hp->n_head; break;
    case T_CROSS_KV_NORM: b = 1; break;
    case T_CROSS_K:
    case T_CROSS_V: b = (int64_t)hp->n_head_kv * hp->head_dim; break;
    default: return 0;
    }
    ne[0] = a, ne[1] = b, ne[2] = 1;
    return 1;
}
