/*
 * synth.c - random-weight models of any supported architecture and shape
 * (arch.c), for speed work and for tests against other engines when no
 * trained model of that shape exists. The vocabulary is taken from an
 * existing GGUF file. Weights are uniform with variance 1/fan_in (so
 * activations keep their scale through the layers); norm weights are
 * 1 +- 0.1, biases 0 +- 0.1. Optional weights of an architecture (arch.h
 * W_OPT) are left out. Same seed, same model.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/arch.h"
#include "quant/dtype.h"
#include "model/model.h"
#include "strix_dev.h"

UTIL_PARAMS_DEFINE(synth, .n_embd = 256, .n_ff = 768, .n_layer = 4, .n_head = 8,
                   .n_head_kv = 4, .n_ctx = 2048, .rope_freq_base = 10000.0f,
                   .norm_eps = 1e-5f, .seed = 1)

/* deepseek2's latent attention and DeepSeekMoE sizes (arch_deepseek2.c). */
static int synth_mla(strix_model *m, const struct strix_synth_params *p, strix_error *err)
{
    struct hparams *hp = &m->hp;
    hp->mla = hp->moe_ds = 1;
    hp->head_k_mla = p->head_k_mla ? p->head_k_mla : p->n_embd / p->n_head;
    hp->head_v_mla = p->head_v_mla ? p->head_v_mla : hp->head_k_mla;
    hp->n_rot = p->n_rot ? p->n_rot : hp->head_k_mla / 2;
    hp->n_lora_q = p->n_lora_q;
    hp->n_lora_kv = p->n_lora_kv ? p->n_lora_kv : 4 * hp->head_k_mla;
    if (hp->n_rot % 2 || hp->n_rot >= hp->head_k_mla || hp->head_v_mla < 1)
        return err_set(err, STRIX_ERR_ARG, "MLA needs an even rotary part smaller than the key");
    hp->head_dim = hp->n_lora_kv + hp->n_rot;
    hp->n_head_kv = 1;
    hp->n_layer_dense_lead = p->n_dense_lead;
    if (hp->yarn_ext_factor != 0.0f)
        hp->yarn_log_mul = 0.0707f; /* DeepSeek-V2's: 0.1 mscale_all_dim (0.707) */
    if (p->n_dense_lead > p->n_layer)
        return err_set(err, STRIX_ERR_ARG, "more dense blocks than blocks");
    if (hp->n_expert == 0)
        return STRIX_OK;
    hp->n_expert_shared = p->n_expert_shared ? p->n_expert_shared : 1;
    hp->n_ff_shexp = hp->n_ff_exp * hp->n_expert_shared;
    hp->n_expert_groups = p->n_expert_groups > 1 ? p->n_expert_groups : 0;
    hp->n_group_used = hp->n_expert_groups ? p->n_group_used : 0;
    if (hp->n_expert_groups &&
        (hp->n_expert % hp->n_expert_groups || hp->n_group_used < 1 ||
         hp->n_group_used >= hp->n_expert_groups ||
         hp->n_expert_used > hp->n_group_used * (hp->n_expert / hp->n_expert_groups)))
        return err_set(err, STRIX_ERR_ARG, "impossible expert groups");
    hp->moe_gating = p->expert_sigmoid ? MOE_GATING_SIGMOID : MOE_GATING_SOFTMAX;
    hp->moe_norm_w = p->expert_norm != 0;
    hp->moe_w_scale = p->expert_scale;
    if (p->expert_probs_bias)
        m->opt_present[T_EXP_PROBS_B] = 1;
    return STRIX_OK;
}

/* The MLP replaced by a PEER layer or two KAN layers (arch_ffn.c). */
static int synth_ffn(strix_model *m, const struct strix_synth_params *p, strix_error *err)
{
    struct hparams *hp = &m->hp;
    const int peer = strcmp(p->ffn_kind, "peer") == 0;
    if (!peer && strcmp(p->ffn_kind, "kan") != 0)
        return err_set(err, STRIX_ERR_ARG, "feed-forward kind '%s' is not mlp, peer or kan",
                       p->ffn_kind);
    if (!m->ad->w[T_PEER_QUERY])
        return err_set(err, STRIX_ERR_UNSUPPORTED, "%s models cannot have %s layers", m->arch,
                       p->ffn_kind);
    if (p->n_expert > 0)
        return err_set(err, STRIX_ERR_ARG, "%s layers replace the MLP: no experts", p->ffn_kind);
    if (peer) {
        hp->ffn_kind = FFN_PEER;
        hp->peer_n_keys = p->peer_n_keys ? p->peer_n_keys : 16;
        hp->peer_n_head = p->peer_n_head ? p->peer_n_head : 4;
        hp->peer_top_k = p->peer_top_k ? p->peer_top_k : 8;
        hp->peer_d_key = p->peer_d_key ? p->peer_d_key : 32;
        hp->peer_sigmoid = p->peer_sigmoid != 0;
        hp->n_ff = hp->peer_n_head * hp->peer_top_k; /* neurons a token uses */
    } else {
        hp->ffn_kind = FFN_KAN;
        hp->kan_grid = p->kan_grid ? p->kan_grid : 5;
        hp->kan_order = p->kan_order ? p->kan_order : 3;
        hp->kan_range = p->kan_range > 0.0f ? p->kan_range : 2.0f;
    }
    int rc = arch_ffn_check(hp, err);
    if (rc && err)
        err->code = STRIX_ERR_ARG; /* sizes the caller asked for */
    return rc ? STRIX_ERR_ARG : STRIX_OK;
}

int strix_model_synth(const struct strix_synth_params *params, const char *vocab_path,
                      strix_model **out, strix_error *err)
{
    err_clear(err);
    if (!params || !vocab_path || !out)
        return err_set(err, STRIX_ERR_ARG, "NULL argument");
    *out = NULL;
    struct strix_synth_params sp;
    int prc = UTIL_PARAMS_READ(synth, &sp, params, err);
    if (prc)
        return prc;
    const struct strix_synth_params *p = &sp;
    struct strix_model_params mp = strix_model_default_params();
    mp.vocab_only = 1;
    strix_model *src = NULL;
    int rc = strix_model_load(vocab_path, &mp, &src, err);
    if (rc)
        return rc;
    strix_model *m = util_calloc(1, sizeof *m);
    if (!m) {
        strix_model_free(src);
        return err_set(err, STRIX_ERR_NOMEM, "out of memory");
    }
    m->vocab = src->vocab; /* taken over */
    src->vocab = NULL;
    strix_model_free(src);
    const char *arch = p->arch ? p->arch : "llama";
    if (!(m->ad = arch_find(arch))) {
        rc = err_set(err, STRIX_ERR_UNSUPPORTED, "architecture '%s' is not supported (strix runs: %s)",
                     arch, arch_names());
        goto fail;
    }
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->name = util_strndup("synthetic", 9);
    struct hparams *hp = &m->hp;
    hp->n_vocab = vocab_n(m->vocab);
    hp->n_embd = p->n_embd;
    hp->n_ff = p->n_ff;
    hp->n_layer = p->n_layer;
    hp->n_head = p->n_head;
    hp->n_head_kv = p->n_head_kv;
    hp->n_ctx_train = p->n_ctx;
    hp->rope_freq_base = p->rope_freq_base;
    hp->norm_eps = p->norm_eps;
    hp->n_rot = p->n_rot;
    hp->rope_neox = m->ad->rope_neox;
    hp->n_expert = p->n_expert;
    hp->n_expert_used = p->n_expert_used;
    if (p->n_expert > 0) {
        hp->n_ff_exp = p->n_ff_exp ? p->n_ff_exp : p->n_ff;
        hp->n_ff_shexp = m->ad->w[T_GATE_SHEXP] ? (p->n_ff_shexp ? p->n_ff_shexp : p->n_ff) : 0;
    }
    if (p->n_expert > 0 && !m->ad->w[T_GATE_INP]) {
        rc = err_set(err, STRIX_ERR_UNSUPPORTED, "%s models have no experts", arch);
        goto fail;
    }
    if (m->ad->w[T_GATE_INP] == W_REQ && p->n_expert == 0) {
        rc = err_set(err, STRIX_ERR_ARG, "%s models need experts", arch);
        goto fail;
    }
    /* the architecture's own defaults (arch.c), as a file without the keys gets */
    hp->n_swa = p->n_swa ? p->n_swa : m->ad->n_swa;
    if (m->ad->swa_required && hp->n_swa == 0)
        hp->n_swa = p->n_ctx; /* llama.cpp requires the key: a window of the whole context */
    hp->swa_dense_every = m->ad->swa_dense_every;
    hp->attn_softcap = m->ad->attn_softcap;
    hp->final_softcap = m->ad->final_softcap;
    hp->alibi_max_bias = m->ad->alibi_keys && p->alibi_max_bias > 0.0f ? p->alibi_max_bias
                                                                        : m->ad->alibi_bias;
    hp->rope_freq_scale = 1.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->n_ctx_orig = p->n_ctx_orig ? p->n_ctx_orig : p->n_ctx;
    if (p->rope_scaling) {
        const int yarn = strcmp(p->rope_scaling, "yarn") == 0;
        if ((!yarn && strcmp(p->rope_scaling, "linear") != 0) || !(p->rope_scale >= 1.0f)) {
            rc = err_set(err, STRIX_ERR_ARG, "rope scaling must be linear or yarn with factor >= 1");
            goto fail;
        }
        hp->rope_scaling = yarn ? ROPE_SCALING_YARN : ROPE_SCALING_LINEAR;
        hp->rope_freq_scale = 1.0f / p->rope_scale;
        hp->yarn_ext_factor = yarn ? 1.0f : 0.0f;
    }
    if (m->ad->mla && (rc = synth_mla(m, p, err)))
        goto fail;
    if (m->ad->ssm) {
        if (p->n_expert > 0) {
            rc = err_set(err, STRIX_ERR_ARG, "mamba models have no experts");
            goto fail;
        }
        hp->ssm_d_inner = 2 * p->n_embd;
        hp->ssm_d_conv = p->ssm_d_conv ? p->ssm_d_conv : 4;
        hp->ssm_d_state = p->ssm_d_state ? p->ssm_d_state : 16;
        hp->ssm_dt_rank = p->ssm_dt_rank ? p->ssm_dt_rank : (p->n_embd + 15) / 16;
        arch_mamba_placeholders(hp);
    }
    if (m->ad->retnet) { /* d_k and d_v from --head-k, --head-v (arch_retnet.c) */
        if (p->n_expert > 0) {
            rc = err_set(err, STRIX_ERR_ARG, "retnet models have no experts");
            goto fail;
        }
        hp->n_head_kv = hp->n_head;
        hp->head_dim = p->head_k_mla;
        hp->ret_dv = p->head_v_mla;
        hp->ret_decay_first = 5.0f;
        hp->ret_decay_step = 1.0f;
        if ((rc = arch_retnet_placeholders(hp, err)))
            goto fail;
    }
    if (m->ad->yoco) { /* half the blocks self-decoder (arch_yoco.c) */
        if (p->n_expert > 0) {
            rc = err_set(err, STRIX_ERR_ARG, "yoco models have no experts");
            goto fail;
        }
        hp->head_dim = p->head_k_mla;
        hp->yoco_n_self = p->n_layer / 2;
        hp->ret_gate_tau = 16.0f;
        if ((rc = arch_yoco_placeholders(hp, err)))
            goto fail;
    }
    if (p->ffn_kind && strcmp(p->ffn_kind, "mlp") != 0 && (rc = synth_ffn(m, p, err)))
        goto fail;
    hp->post_norm = p->post_norm != 0;
    hp->sinusoidal = p->sinusoidal != 0;
    m->tied_output = m->ad->output == W_NO;
    if (!m->name) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = model_init_tables(m, err)))
        goto fail;
    size_t total = 0;
    for (int i = 0; i < m->n_all; i++) {
        struct slot s;
        model_slot(m, i, &s);
        size_t n;
        if (!util_mul_size((size_t)s.ne[0], (size_t)s.ne[1], &n) ||
            !util_mul_size(n, (size_t)s.ne[2], &n) || !util_add_size(total, n, &total))
            total = SIZE_MAX;
    }
    if (total > SIZE_MAX / sizeof(float) || !(m->owned = util_malloc(total * sizeof(float)))) {
        rc = err_set(err, STRIX_ERR_NOMEM, "out of memory for %zu weights", total);
        goto fail;
    }
    uint64_t state = p->seed;
    float *at = m->owned;
    for (int i = 0; i < m->n_all; i++) {
        struct slot s;
        model_slot(m, i, &s);
        const size_t n = (size_t)s.ne[0] * (size_t)s.ne[1] * (size_t)s.ne[2];
        /* norm weights around 1, biases around 0, matrices (and the 1-row
         * shared-expert gate) scaled by their fan-in */
        const int is_norm = s.n_dims == 1 && strstr(s.name, "norm") != NULL;
        const int is_bias = s.n_dims == 1 && strstr(s.name, ".bias") != NULL;
        const float scale = is_norm || is_bias ? 0.1f : sqrtf(3.0f / (float)s.ne[0]);
        for (size_t j = 0; j < n; j++)
            at[j] = (is_norm ? 1.0f : 0.0f) + scale * (2.0f * util_rng_uniform(&state) - 1.0f);
        if (strstr(s.name, ".ssm_a")) /* decaying states: A = -(i + 1)(1 +- 0.2) */
            for (size_t j = 0; j < n; j++)
                at[j] = -(float)(j % (size_t)s.ne[0] + 1) * (1.0f + 0.2f * (at[j] / scale));
        if ((rc = model_set_tensor(&s, DTYPE_F32, s.ne, s.n_dims, at, n * sizeof(float), err)))
            goto fail;
        at += n;
    }
    *out = m;
    return STRIX_OK;
fail:
    strix_model_free(m);
    return rc;
}
