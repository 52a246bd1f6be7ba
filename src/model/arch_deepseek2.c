/*
 * arch_deepseek2.c - what deepseek2 (DeepSeek-V2, V2-Lite, V3) adds to the
 * table row in arch.c: its hyperparameter keys (llama.cpp's names) and the
 * shapes of its attention weights. The computation is runtime/mla.c
 * (attention) and runtime/moe_route.c (routing).
 *
 * Multi-head Latent Attention: a token's normed input x gives
 *   q     = wq_b(norm(wq_a x))  (or wq x)   n_head x (nope | rope) values
 *   kv    = wkv_a x = latent c (n_lora_kv) | rotary key k_r (n_rot)
 * and c is normed. Head h's key is (wk_b[h]^T c | k_r) and its value
 * wv_b[h] c, but only c and k_r are cached (the cache's one "head" of
 * n_lora_kv + n_rot values); the query is absorbed instead, q_c = wk_b[h] q_nope,
 * so scores are (q_c | q_rope) . (c | k_r), and the output per head is wv_b[h]
 * times the softmax-weighted sum of c. That is llama.cpp's layout of the
 * split attn_k_b / attn_v_b tensors; older files with one attn_kv_b are
 * refused.
 *
 * Keys (besides the common ones): attention.q_lora_rank (0 or absent: a
 * plain attn_q), attention.kv_lora_rank, attention.key_length_mla and
 * attention.value_length_mla (per-head sizes; attention.key_length is then
 * kv_lora_rank + rope.dimension_count and value_length kv_lora_rank),
 * leading_dense_block_count, expert_feed_forward_length,
 * expert_shared_count, expert_weights_scale, expert_weights_norm,
 * expert_gating_func (1 softmax, 2 sigmoid; absent: softmax),
 * expert_group_count and expert_group_used_count.
 */
#include <stdio.h>
#include <string.h>

#include "format/gguf.h"
#include "model/arch.h"
#include "quant/dtype.h"

/* arch_key_u32, with the tighter bound of these sizes and counts */
static int key_u32(const gguf *g, const char *a, const char *key, int required, int *out,
                   strix_error *err)
{
    int v = *out, rc = arch_key_u32(g, a, key, required, &v, err);
    if (rc == STRIX_OK && v > (1 << 20))
        return err_set(err, STRIX_ERR_FORMAT, "%s.%s = %d is out of range", a, key, v);
    *out = v;
    return rc;
}

int arch_deepseek2_load(strix_model *m, const gguf *g, strix_error *err)
{
    struct hparams *hp = &m->hp;
    const char *a = m->arch;
    char key[128];
    int rc;
    hp->mla = 1;
    hp->moe_ds = 1;
    int key_len = hp->head_dim; /* attention.key_length, if given */
    if ((rc = key_u32(g, a, "attention.q_lora_rank", 0, &hp->n_lora_q, err)) ||
        (rc = key_u32(g, a, "attention.kv_lora_rank", 1, &hp->n_lora_kv, err)) ||
        (rc = key_u32(g, a, "leading_dense_block_count", 0, &hp->n_layer_dense_lead, err)))
        return rc;
    snprintf(key, sizeof key, "%s.attention.key_length_mla", a);
    hp->mla_legacy = !gguf_find_kv(g, key);
    if (hp->mla_legacy) { /* older files: the per-head sizes are the plain ones */
        if (!gguf_find_tensor(g, "blk.0.attn_kv_b.weight"))
            return err_set(err, STRIX_ERR_FORMAT, "deepseek2 without %s nor attn_kv_b", key);
        hp->head_v_mla = key_len;
        if ((rc = key_u32(g, a, "attention.value_length", 0, &hp->head_v_mla, err)))
            return rc;
        hp->head_k_mla = key_len;
        key_len = 0;
    } else if ((rc = key_u32(g, a, "attention.key_length_mla", 1, &hp->head_k_mla, err)) ||
               (rc = key_u32(g, a, "attention.value_length_mla", 1, &hp->head_v_mla, err))) {
        return rc;
    }
    if (hp->n_lora_kv < 1 || hp->n_rot < 2 || hp->n_rot % 2 || hp->head_k_mla <= hp->n_rot ||
        hp->head_v_mla < 1)
        return err_set(err, STRIX_ERR_FORMAT,
                       "MLA sizes are inconsistent: kv_lora_rank %d, rope %d, key %d, value %d",
                       hp->n_lora_kv, hp->n_rot, hp->head_k_mla, hp->head_v_mla);
    if (key_len != 0 && key_len != hp->n_lora_kv + hp->n_rot)
        return err_set(err, STRIX_ERR_FORMAT,
                       "attention.key_length %d is not kv_lora_rank + rope dimensions (%d)",
                       key_len, hp->n_lora_kv + hp->n_rot);
    /* the cache's single head: latent | rotary key */
    hp->head_dim = hp->n_lora_kv + hp->n_rot;
    hp->n_head_kv = 1;
    /* rotary scaling: YaRN (DeepSeek-V2's), with its log multiplier (mla.c) */
    if (hp->rope_freq_scale != 1.0f && hp->yarn_ext_factor == 0.0f)
        return err_set(err, STRIX_ERR_UNSUPPORTED,
                       "deepseek2 with linear rope scaling is not supported (YaRN is)");
    hp->yarn_log_mul = 0.0f;
    if ((rc = arch_key_f32(g, a, "rope.scaling.yarn_log_multiplier", 0, &hp->yarn_log_mul, err)))
        return rc;
    if (!(hp->yarn_log_mul >= 0.0f && hp->yarn_log_mul <= 10.0f))
        return err_set(err, STRIX_ERR_FORMAT, "rope.scaling.yarn_log_multiplier %g is out of range",
                       hp->yarn_log_mul);
    if (hp->n_layer_dense_lead > hp->n_layer)
        return err_set(err, STRIX_ERR_FORMAT, "leading_dense_block_count %d exceeds %d blocks",
                       hp->n_layer_dense_lead, hp->n_layer);
    if (hp->n_expert == 0)
        return hp->n_layer_dense_lead == hp->n_layer || hp->n_layer_dense_lead == 0
                   ? STRIX_OK
                   : err_set(err, STRIX_ERR_FORMAT, "deepseek2 expert blocks without experts");
    if (hp->n_ff_dense <= 0 && hp->n_layer_dense_lead > 0)
        return err_set(err, STRIX_ERR_FORMAT, "%s.feed_forward_length is missing", a);
    int gating = 0, norm = 0;
    hp->n_ff_exp = 0;
    if ((rc = key_u32(g, a, "expert_feed_forward_length", 1, &hp->n_ff_exp, err)) ||
        (rc = key_u32(g, a, "expert_shared_count", 1, &hp->n_expert_shared, err)) ||
        (rc = key_u32(g, a, "expert_gating_func", 0, &gating, err)) ||
        (rc = key_u32(g, a, "expert_group_count", 0, &hp->n_expert_groups, err)) ||
        (rc = key_u32(g, a, "expert_group_used_count", 0, &hp->n_group_used, err)))
        return rc;
    snprintf(key, sizeof key, "%s.expert_weights_norm", a);
    rc = gguf_get_bool(g, key, 0, &norm, err);
    if (rc && rc != STRIX_ERR_ARG)
        return rc;
    hp->moe_norm_w = norm;
    hp->moe_w_scale = 0.0f;
    if ((rc = arch_key_f32(g, a, "expert_weights_scale", 0, &hp->moe_w_scale, err)))
        return rc;
    if (!(hp->moe_w_scale >= 0.0f && hp->moe_w_scale < 1e6f))
        return err_set(err, STRIX_ERR_FORMAT, "expert_weights_scale %g is out of range",
                       hp->moe_w_scale);
    if (gating > 2)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "expert gating function %d is not supported",
                       gating);
    hp->moe_gating = gating == 2 ? MOE_GATING_SIGMOID : MOE_GATING_SOFTMAX;
    if (hp->n_ff_exp < 1 || hp->n_expert_shared < 1)
        return err_set(err, STRIX_ERR_FORMAT,
                       "expert width %d or shared experts %d is not positive", hp->n_ff_exp,
                       hp->n_expert_shared);
    hp->n_ff_shexp = hp->n_ff_exp * hp->n_expert_shared;
    if (hp->n_expert_groups > 1 &&
        (hp->n_expert_groups >= hp->n_expert || hp->n_expert % hp->n_expert_groups != 0 ||
         hp->n_group_used < 1 || hp->n_group_used >= hp->n_expert_groups ||
         hp->n_expert_used > hp->n_group_used * (hp->n_expert / hp->n_expert_groups)))
        return err_set(err, STRIX_ERR_FORMAT,
                       "expert groups impossible: %d experts (%d used) in %d groups, %d used",
                       hp->n_expert, hp->n_expert_used, hp->n_expert_groups, hp->n_group_used);
    if (hp->n_expert_groups <= 1)
        hp->n_expert_groups = hp->n_group_used = 0;
    return STRIX_OK;
}

#define ADD(call, k)                                                                               \
    (void)(rc == STRIX_OK && (rc = (call)) != STRIX_OK &&                                          \
           (rc = err_set(err, rc, "cannot add GGUF key %s (%s)", k, strix_status_name(rc))))

int arch_deepseek2_save(const strix_model *m, gguf_writer *w, strix_error *err)
{
    const struct hparams *hp = &m->hp;
    char k[128];
    int rc = STRIX_OK;
#define U32(key, v)                                                                                \
    (snprintf(k, sizeof k, "%s." key, m->arch), ADD(gguf_writer_add_u32(w, k, (uint32_t)(v)), k))
    U32("attention.key_length", hp->head_dim);
    U32("attention.value_length", hp->n_lora_kv);
    U32("attention.q_lora_rank", hp->n_lora_q);
    U32("attention.kv_lora_rank", hp->n_lora_kv);
    U32("attention.key_length_mla", hp->head_k_mla);
    U32("attention.value_length_mla", hp->head_v_mla);
    U32("leading_dense_block_count", hp->n_layer_dense_lead);
    if (hp->yarn_log_mul != 0.0f) {
        snprintf(k, sizeof k, "%s.rope.scaling.yarn_log_multiplier", m->arch);
        ADD(gguf_writer_add_f32(w, k, hp->yarn_log_mul), k);
    }
    if (hp->n_expert > 0) {
        U32("expert_feed_forward_length", hp->n_ff_exp);
        U32("expert_shared_count", hp->n_expert_shared);
        U32("expert_gating_func", hp->moe_gating == MOE_GATING_SIGMOID ? 2 : 1);
        snprintf(k, sizeof k, "%s.expert_weights_norm", m->arch);
        ADD(gguf_writer_add_bool(w, k, hp->moe_norm_w), k);
        snprintf(k, sizeof k, "%s.expert_weights_scale", m->arch);
        ADD(gguf_writer_add_f32(w, k, hp->moe_w_scale), k);
        if (hp->n_expert_groups > 1) {
            U32("expert_group_count", hp->n_expert_groups);
            U32("expert_group_used_count", hp->n_group_used);
        }
    }
#undef U32
    return rc;
}
#undef ADD

int arch_deepseek2_shape(const strix_model *m, int k, int64_t ne[3])
{
    const struct hparams *hp = &m->hp;
    const int64_t embd = hp->n_embd, nh = hp->n_head, r = hp->n_lora_kv;
    int64_t a = embd, b = 1, c = 1;
    switch (k) {
    case T_Q: b = nh * hp->head_k_mla; break;
    case T_MLA_QA: b = hp->n_lora_q; break;
    case T_MLA_QA_NORM: a = hp->n_lora_q; break;
    case T_MLA_QB: a = hp->n_lora_q, b = nh * hp->head_k_mla; break;
    case T_MLA_KVA: b = r + hp->n_rot; break;
    case T_MLA_KVA_NORM: a = r; break;
    case T_MLA_KB: a = hp->head_k_mla - hp->n_rot, b = r, c = nh; break;
    case T_MLA_VB: a = r, b = hp->head_v_mla, c = nh; break;
    case T_O: a = nh * hp->head_v_mla, b = embd; break;
    case T_EXP_PROBS_B: a = hp->n_expert; break;
    default: return 0;
    }
    ne[0] = a, ne[1] = b, ne[2] = c;
    return 1;
}

int arch_deepseek2_legacy_name(const strix_model *m, const char *name, size_t len)
{
    static const char tail[] = ".attn_kv_b.weight";
    const size_t n = sizeof tail - 1;
    return m->hp.mla_legacy && len > n + 4 && memcmp(name, "blk.", 4) == 0 &&
           memcmp(name + len - n, tail, n) == 0;
}

int arch_deepseek2_split_kv_b(strix_model *m, const gguf *g, strix_error *err)
{
    const struct hparams *hp = &m->hp;
    const int64_t nh = hp->n_head, r = hp->n_lora_kv, hv = hp->head_v_mla;
    const int64_t nope = hp->head_k_mla - hp->n_rot, per = nope + hv;
    const size_t kb = (size_t)(nh * r * nope), vb = (size_t)(nh * r * hv);
    float *all = util_malloc((size_t)hp->n_layer * (kb + vb) * sizeof(float));
    float *row = util_malloc((size_t)r * sizeof(float));
    int rc = all && row ? STRIX_OK : err_set(err, STRIX_ERR_NOMEM, "out of memory");
    for (int il = 0; rc == STRIX_OK && il < hp->n_layer; il++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_kv_b.weight", il);
        const struct gguf_tensor *t = gguf_find_tensor(g, name);
        const struct dtype_traits *tr = t ? dtype_get(t->type) : NULL;
        if (!t || !tr || !tr->dequantize || t->n_dims != 2 || t->ne[0] != r ||
            t->ne[1] != nh * per || dtype_row_size(t->type, r) * (size_t)(nh * per) != t->nbytes) {
            rc = err_set(err, STRIX_ERR_FORMAT,
                         "tensor '%s' is missing or not [%lld, %lld] of a supported type", name,
                         (long long)r, (long long)(nh * per));
            break;
        }
        /* k_b (nope, r, nh): [h][j][i] = kv_b row h per + i, column j;
         * v_b (r, hv, nh): [h][i][j] = kv_b row h per + nope + i, column j */
        float *k = all + (size_t)il * (kb + vb), *v = k + kb;
        const size_t rb = dtype_row_size(t->type, r);
        for (int64_t h = 0; h < nh; h++)
            for (int64_t i = 0; i < per; i++) {
                tr->dequantize((const uint8_t *)t->data + (size_t)(h * per + i) * rb, row, r);
                for (int64_t j = 0; j < r; j++) {
                    if (i < nope)
                        k[(h * r + j) * nope + i] = row[j];
                    else
                        v[(h * hv + i - nope) * r + j] = row[j];
                }
            }
        const int kinds[2] = {T_MLA_KB, T_MLA_VB};
        for (int w = 0; rc == STRIX_OK && w < 2; w++) {
            struct slot s;
            memset(&s, 0, sizeof s);
            arch_tensor_name(kinds[w], il, s.name, sizeof s.name);
            s.t = arch_tensor(m, kinds[w], il);
            arch_shape(m, kinds[w], &s.n_dims, s.ne);
            rc = model_set_tensor(&s, DTYPE_F32, s.ne, 3, w ? v : k, (w ? vb : kb) * sizeof(float),
                                  err);
        }
    }
    util_free(row);
    if (rc) {
        util_free(all);
        return rc;
    }
    util_free(m->owned);
    m->owned = all;
    return STRIX_OK;
}
