/*
 * arch_mamba.c - what mamba (Mamba-1, llama.cpp's `mamba`) adds to its row
 * in arch.c: the ssm.* keys and the shapes of the state-space weights. The
 * block itself and the per-sequence state are runtime/ssm.c.
 *
 * Keys: ssm.conv_kernel (d_conv), ssm.inner_size (d_inner, which llama.cpp
 * requires to be 2 n_embd), ssm.state_size (d_state), ssm.time_step_rank
 * (dt_rank); ssm.dt_b_c_rms (FalconMamba's extra norms) is refused.
 * feed_forward_length and attention.head_count are present but 0, as
 * llama.cpp's converter writes them.
 */
#include <stdio.h>

#include "format/gguf.h"
#include "model/arch.h"

/* A required arch_key_u32 in [1, 2^20]. */
static int key(const gguf *g, const char *a, const char *k, int *out, strix_error *err)
{
    int v = 0, rc = arch_key_u32(g, a, k, 1, &v, err);
    if (rc == STRIX_OK && (v < 1 || v > (1 << 20)))
        return err_set(err, STRIX_ERR_FORMAT, "%s.%s = %d is out of range", a, k, v);
    *out = v;
    return rc;
}

void arch_mamba_placeholders(struct hparams *hp)
{
    hp->ssm = 1;
    hp->n_head = hp->n_head_kv = 1;
    hp->head_dim = hp->n_rot = 2;
    hp->n_ff_dense = hp->n_ff = hp->ssm_d_inner;
}

int arch_mamba_load(strix_model *m, const gguf *g, strix_error *err)
{
    struct hparams *hp = &m->hp;
    const char *a = m->arch;
    int rc;
    if ((rc = key(g, a, "ssm.conv_kernel", &hp->ssm_d_conv, err)) ||
        (rc = key(g, a, "ssm.inner_size", &hp->ssm_d_inner, err)) ||
        (rc = key(g, a, "ssm.state_size", &hp->ssm_d_state, err)) ||
        (rc = key(g, a, "ssm.time_step_rank", &hp->ssm_dt_rank, err)))
        return rc;
    char full[128];
    snprintf(full, sizeof full, "%s.ssm.dt_b_c_rms", a);
    int flag = 0;
    rc = gguf_get_bool(g, full, 0, &flag, err);
    if (rc && rc != STRIX_ERR_ARG)
        return rc;
    err_clear(err);
    if (flag)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "%s (normed dt, B and C) is not supported",
                       full);
    if (hp->ssm_d_conv > 64 || hp->ssm_d_state > 1024 || hp->ssm_dt_rank > hp->ssm_d_inner)
        return err_set(err, STRIX_ERR_FORMAT,
                       "state-space sizes out of range: conv %d, state %d, dt rank %d, inner %d",
                       hp->ssm_d_conv, hp->ssm_d_state, hp->ssm_dt_rank, hp->ssm_d_inner);
    if (hp->ssm_d_inner != 2 * hp->n_embd)
        return err_set(err, STRIX_ERR_FORMAT, "ssm.inner_size %d is not 2 x n_embd (%d)",
                       hp->ssm_d_inner, hp->n_embd);
    if (hp->n_expert > 0)
        return err_set(err, STRIX_ERR_FORMAT, "mamba models have no experts");
    arch_mamba_placeholders(hp);
    return STRIX_OK;
}

int arch_mamba_save(const strix_model *m, gguf_writer *w, strix_error *err)
{
    const struct hparams *hp = &m->hp;
    static const char *const keys[] = {"feed_forward_length", "attention.head_count",
                                       "ssm.conv_kernel",     "ssm.inner_size",
                                       "ssm.state_size",      "ssm.time_step_rank"};
    const int vals[] = {0, 0, hp->ssm_d_conv, hp->ssm_d_inner, hp->ssm_d_state, hp->ssm_dt_rank};
    for (int i = 0; i < 6; i++) {
        char k[128];
        snprintf(k, sizeof k, "%s.%s", m->arch, keys[i]);
        int rc = gguf_writer_add_u32(w, k, (uint32_t)vals[i]);
        if (rc)
            return err_set(err, rc, "cannot add GGUF key %s (%s)", k, strix_status_name(rc));
    }
    return STRIX_OK;
}

int arch_mamba_shape(const strix_model *m, int k, int64_t ne[3])
{
    const struct hparams *hp = &m->hp;
    const int64_t embd = hp->n_embd, di = hp->ssm_d_inner, ds = hp->ssm_d_state;
    int64_t a = di, b = 1;
    switch (k) {
    case T_SSM_IN: a = embd, b = 2 * di; break;
    case T_SSM_CONV1D: a = hp->ssm_d_conv, b = di; break;
    case T_SSM_X: b = hp->ssm_dt_rank + 2 * ds; break;
    case T_SSM_DT: a = hp->ssm_dt_rank, b = di; break;
    case T_SSM_A: a = ds, b = di; break;
    case T_SSM_OUT: b = embd; break;
    case T_SSM_CONV1D_B:
    case T_SSM_DT_B:
    case T_SSM_D: break;
    default: return 0;
    }
    ne[0] = a, ne[1] = b, ne[2] = 1;
    return 1;
}
