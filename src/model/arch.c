/*
 * arch.c - the table of architectures (see arch.h), the tensor names and
 * shapes of each weight kind, and the hyperparameter keys of each
 * architecture, read from and written to GGUF metadata with llama.cpp's key
 * names ("<arch>.embedding_length", "<arch>.rope.scaling.type", ...).
 *
 * Two block options have no llama.cpp key; strix reads its own:
 *   strix.position_encoding = "sinusoidal"  (string) sinusoidal absolute
 *       positions (sin at even, cos at odd dimensions, base 10000) added to
 *       the token embeddings; a learned position_embd.weight is then not used.
 *   strix.post_norm = true  (bool) post-norm blocks: x = norm(x + attn(x))
 *       with the attn_norm weights, then x = norm(x + ffn(x)) with ffn_norm.
 */
#include "model/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "format/gguf.h"

/* Shorthands for the weight table: R required, O optional, D dense only,
 * M with experts only. */
#define R W_REQ
#define O W_OPT
#define D W_DENSE
#define M W_MOE
/* Weight sets several rows share: a pre-norm block with biases on every
 * norm and projection (GPT-2, StarCoder, Bloom), and Qwen2's attention with
 * biased q, k, v. */
#define BIASED_BLOCK                                                                               \
    [T_ATTN_NORM] = R, [T_ATTN_NORM_B] = R, [T_QKV] = R, [T_QKV_B] = R, [T_O] = R, [T_O_B] = R,    \
    [T_FFN_NORM] = R, [T_FFN_NORM_B] = R, [T_DOWN] = R, [T_DOWN_B] = R, [T_UP] = R, [T_UP_B] = R
#define QWEN2_ATTN                                                                                 \
    [T_ATTN_NORM] = R, [T_Q] = R, [T_Q_B] = R, [T_K] = R, [T_K_B] = R, [T_V] = R, [T_V_B] = R,     \
    [T_O] = R, [T_FFN_NORM] = R

static const struct arch archs[] = {
    {.name = "llama", .norm = NORM_RMS, .pos = POS_ROPE, .act = ACT_SILU, .gated = 1,
     .moe_norm_w = 1, .expert_ff_is_ff = 1, .output = O,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = O, [T_ATTN_NORM] = R, [T_Q] = R,
           [T_Q_B] = O, [T_K] = R, [T_K_B] = O, [T_V] = R, [T_V_B] = O, [T_O] = R, [T_O_B] = O,
           [T_FFN_NORM] = R, [T_GATE] = D, [T_GATE_B] = O, [T_DOWN] = D, [T_DOWN_B] = O,
           [T_UP] = D, [T_UP_B] = O, [T_GATE_INP] = M, [T_GATE_EXPS] = M, [T_DOWN_EXPS] = M,
           [T_UP_EXPS] = M, [T_PEER_QUERY] = W_PEER, [T_PEER_KEYS] = W_PEER,
           [T_PEER_DOWN] = W_PEER, [T_PEER_UP] = W_PEER, [T_KAN_BASE1] = W_KAN,
           [T_KAN_SPLINE1] = W_KAN, [T_KAN_BASE2] = W_KAN, [T_KAN_SPLINE2] = W_KAN}},
    {.name = "qwen2", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_SILU,
     .gated = 1, .output = O,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = O, QWEN2_ATTN, [T_GATE] = R,
           [T_DOWN] = R, [T_UP] = R}},
    {.name = "qwen2moe", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_SILU,
     .gated = 1, .output = R,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = R, QWEN2_ATTN, [T_GATE_INP] = R,
           [T_GATE_EXPS] = R, [T_DOWN_EXPS] = R, [T_UP_EXPS] = R, [T_GATE_INP_SHEXP] = R,
           [T_GATE_SHEXP] = R, [T_DOWN_SHEXP] = R, [T_UP_SHEXP] = R}},
    {.name = "phi3", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_SILU, .gated = 1,
     .fused_up = 1, .swa_required = 1, .output = R,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = R, [T_ATTN_NORM] = R,
           [T_QKV] = R, [T_O] = R, [T_FFN_NORM] = R, [T_DOWN] = R, [T_UP] = R}},
    {.name = "gemma", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_GELU,
     .gated = 1, .emb_sqrt = 1, .output = W_NO,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_ATTN_NORM] = R, [T_Q] = R, [T_K] = R,
           [T_V] = R, [T_O] = R, [T_FFN_NORM] = R, [T_GATE] = R, [T_DOWN] = R, [T_UP] = R}},
    {.name = "gemma2", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_GELU,
     .gated = 1, .emb_sqrt = 1, .n_swa = 4096, .swa_dense_every = 2, .attn_softcap = 50.0f,
     .final_softcap = 30.0f, .q_scale_embd_layers = 46, .output = W_NO,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_ATTN_NORM] = R, [T_Q] = R, [T_K] = R,
           [T_V] = R, [T_O] = R, [T_ATTN_POST_NORM] = R, [T_FFN_NORM] = R, [T_GATE] = R,
           [T_DOWN] = R, [T_UP] = R, [T_FFN_POST_NORM] = R}},
    {.name = "falcon", .norm = NORM_LAYER, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_GELU,
     .parallel = 1, .output = O,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT_NORM_B] = R, [T_OUTPUT] = O,
           [T_ATTN_NORM] = R, [T_ATTN_NORM_B] = R, [T_ATTN_NORM_2] = O, [T_ATTN_NORM_2_B] = O,
           [T_QKV] = R, [T_O] = R, [T_DOWN] = R, [T_UP] = R}},
    {.name = "gpt2", .norm = NORM_LAYER, .pos = POS_LEARNED, .act = ACT_GELU, .output = R,
     .w = {[T_TOK_EMBD] = R, [T_POS_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT_NORM_B] = R,
           [T_OUTPUT] = R, BIASED_BLOCK}},
    {.name = "starcoder", .norm = NORM_LAYER, .pos = POS_LEARNED, .act = ACT_GELU, .output = O,
     .w = {[T_TOK_EMBD] = R, [T_POS_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT_NORM_B] = R,
           [T_OUTPUT] = O, BIASED_BLOCK}},
    {.name = "bloom", .norm = NORM_LAYER, .pos = POS_ALIBI, .act = ACT_GELU, .output = R,
     .alibi_bias = 8.0f,
     .w = {[T_TOK_EMBD] = R, [T_TOK_NORM] = R, [T_TOK_NORM_B] = R, [T_OUTPUT_NORM] = R,
           [T_OUTPUT_NORM_B] = R, [T_OUTPUT] = R, BIASED_BLOCK}},
    {.name = "mpt", .norm = NORM_LAYER, .pos = POS_ALIBI, .act = ACT_GELU, .alibi_bias = 8.0f,
     .alibi_keys = 1, .output = O,
     .w = {[T_TOK_EMBD] = R, [T_POS_EMBD] = O, [T_OUTPUT_NORM] = R, [T_OUTPUT_NORM_B] = O,
           [T_OUTPUT] = O, [T_ATTN_NORM] = R, [T_ATTN_NORM_B] = O, [T_QKV] = R, [T_QKV_B] = O,
           [T_O] = R, [T_O_B] = O, [T_FFN_NORM] = R, [T_FFN_NORM_B] = O, [T_DOWN] = R,
           [T_DOWN_B] = O, [T_UP] = R, [T_UP_B] = O}},
    /* DeepSeek-V2/V3: Multi-head Latent Attention, DeepSeekMoE after
     * leading dense blocks (arch_deepseek2.c) */
    {.name = "deepseek2", .norm = NORM_RMS, .pos = POS_ROPE, .act = ACT_SILU, .gated = 1,
     .output = O, .mla = 1,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = O, [T_ATTN_NORM] = R,
           [T_Q] = W_QPLAIN, [T_MLA_QA] = W_QLORA, [T_MLA_QA_NORM] = W_QLORA, [T_MLA_QB] = W_QLORA,
           [T_MLA_KVA] = R, [T_MLA_KVA_NORM] = R, [T_MLA_KB] = R, [T_MLA_VB] = R, [T_O] = R,
           [T_FFN_NORM] = R, [T_GATE] = D, [T_DOWN] = D, [T_UP] = D, [T_GATE_INP] = M,
           [T_EXP_PROBS_B] = W_MOE_OPT, [T_GATE_EXPS] = M, [T_DOWN_EXPS] = M, [T_UP_EXPS] = M,
           [T_GATE_SHEXP] = M, [T_DOWN_SHEXP] = M, [T_UP_SHEXP] = M}},
    /* Mamba: selective state-space blocks, no attention, no FFN (arch_mamba.c) */
    {.name = "mamba", .norm = NORM_RMS, .pos = POS_NONE, .output = O, .ssm = 1,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = O, [T_ATTN_NORM] = R,
           [T_SSM_IN] = R, [T_SSM_CONV1D] = R, [T_SSM_CONV1D_B] = R, [T_SSM_X] = R,
           [T_SSM_DT] = R, [T_SSM_DT_B] = R, [T_SSM_A] = R, [T_SSM_D] = R, [T_SSM_OUT] = R}},
    /* RetNet: multi-scale retention, then a SwiGLU FFN (arch_retnet.c) */
    {.name = "retnet", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_SILU,
     .gated = 1, .output = O, .retnet = 1,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = O, [T_ATTN_NORM] = R, [T_Q] = R,
           [T_K] = R, [T_V] = R, [T_RET_GATE] = R, [T_RET_NORM] = R, [T_O] = R,
           [T_FFN_NORM] = R, [T_GATE] = R, [T_DOWN] = R, [T_UP] = R}},
    /* YOCO: gated-retention self-decoder, cross-decoder over one shared
     * key/value cache (arch_yoco.c) */
    {.name = "yoco", .norm = NORM_RMS, .pos = POS_ROPE, .rope_neox = 1, .act = ACT_SILU,
     .gated = 1, .output = O, .yoco = 1,
     .w = {[T_TOK_EMBD] = R, [T_OUTPUT_NORM] = R, [T_OUTPUT] = O, [T_ATTN_NORM] = R, [T_Q] = R,
           [T_K] = W_SELF, [T_V] = W_SELF, [T_RET_GATE] = W_SELF, [T_RET_NORM] = W_SELF,
           [T_RET_DECAY] = W_SELF, [T_CROSS_KV_NORM] = W_CROSS_KV, [T_CROSS_K] = W_CROSS_KV,
           [T_CROSS_V] = W_CROSS_KV, [T_O] = R, [T_FFN_NORM] = R, [T_GATE] = R, [T_DOWN] = R,
           [T_UP] = R}},
};

#undef R
#undef O
#undef D
#undef M
#undef BIASED_BLOCK
#undef QWEN2_ATTN

const struct arch *arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}

const char *arch_names(void)
{
    static char buf[256];
    if (!buf[0]) {
        size_t at = 0;
        for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
            at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? " " : "", archs[i].name);
    }
    return buf;
}

int arch_has_layer(const strix_model *m, int k, int il)
{
    if (k == T_POS_EMBD && m->hp.sinusoidal)
        return 0;
    if (k == T_OUTPUT)
        return !m->tied_output;
    const int experts = m->hp.n_expert > 0 && il >= m->hp.n_layer_dense_lead;
    switch (m->ad->w[k]) {
    case W_REQ: return 1;
    case W_OPT: return m->opt_present[k];
    case W_DENSE: return !experts && m->hp.ffn_kind == FFN_MLP;
    case W_MOE: return experts;
    case W_QLORA: return m->hp.n_lora_q > 0;
    case W_QPLAIN: return m->hp.n_lora_q == 0;
    case W_MOE_OPT: return experts && m->opt_present[k];
    case W_SELF: return il < m->hp.yoco_n_self;
    case W_CROSS_KV: return il == m->hp.yoco_n_self;
    case W_PEER: return m->hp.ffn_kind == FFN_PEER;
    case W_KAN: return m->hp.ffn_kind == FFN_KAN;
    default: return 0;
    }
}

int arch_has(const strix_model *m, int k)
{
    return arch_has_layer(m, k, m->hp.n_layer - 1);
}

_Static_assert(T_COUNT <= MODEL_MAX_KINDS, "strix_model.opt_present has a byte per tensor kind");

static const char *const base_names[T_COUNT] = {
    [T_TOK_EMBD] = "token_embd",       [T_POS_EMBD] = "position_embd",
    [T_TOK_NORM] = "token_embd_norm",  [T_TOK_NORM_B] = "token_embd_norm",
    [T_OUTPUT_NORM] = "output_norm",   [T_OUTPUT_NORM_B] = "output_norm",
    [T_OUTPUT] = "output",             [T_ATTN_NORM] = "attn_norm",
    [T_ATTN_NORM_B] = "attn_norm",     [T_ATTN_NORM_2] = "attn_norm_2",
    [T_ATTN_NORM_2_B] = "attn_norm_2", [T_QKV] = "attn_qkv",
    [T_QKV_B] = "attn_qkv",            [T_Q] = "attn_q",
    [T_Q_B] = "attn_q",                [T_K] = "attn_k",
    [T_K_B] = "attn_k",                [T_V] = "attn_v",
    [T_V_B] = "attn_v",                [T_O] = "attn_output",
    [T_O_B] = "attn_output",           [T_ATTN_POST_NORM] = "post_attention_norm",
    [T_FFN_NORM] = "ffn_norm",         [T_FFN_NORM_B] = "ffn_norm",
    [T_GATE] = "ffn_gate",             [T_GATE_B] = "ffn_gate",
    [T_DOWN] = "ffn_down",             [T_DOWN_B] = "ffn_down",
    [T_UP] = "ffn_up",                 [T_UP_B] = "ffn_up",
    [T_FFN_POST_NORM] = "post_ffw_norm", [T_GATE_INP] = "ffn_gate_inp",
    [T_GATE_EXPS] = "ffn_gate_exps",   [T_DOWN_EXPS] = "ffn_down_exps",
    [T_UP_EXPS] = "ffn_up_exps",       [T_GATE_INP_SHEXP] = "ffn_gate_inp_shexp",
    [T_GATE_SHEXP] = "ffn_gate_shexp", [T_DOWN_SHEXP] = "ffn_down_shexp",
    [T_UP_SHEXP] = "ffn_up_shexp",     [T_MLA_QA] = "attn_q_a",
    [T_MLA_QA_NORM] = "attn_q_a_norm",    [T_MLA_QB] = "attn_q_b",
    [T_MLA_KVA] = "attn_kv_a_mqa",    [T_MLA_KVA_NORM] = "attn_kv_a_norm",
    [T_MLA_KB] = "attn_k_b",           [T_MLA_VB] = "attn_v_b",
    [T_EXP_PROBS_B] = "exp_probs_b",
    [T_SSM_IN] = "ssm_in",             [T_SSM_CONV1D] = "ssm_conv1d",
    [T_SSM_CONV1D_B] = "ssm_conv1d",   [T_SSM_X] = "ssm_x",
    [T_SSM_DT] = "ssm_dt",             [T_SSM_DT_B] = "ssm_dt",
    [T_SSM_A] = "ssm_a",               [T_SSM_D] = "ssm_d",
    [T_SSM_OUT] = "ssm_out",           [T_RET_GATE] = "ret_gate",
    [T_RET_NORM] = "ret_norm",         [T_RET_DECAY] = "ret_decay",
    [T_CROSS_KV_NORM] = "cross_kv_norm", [T_CROSS_K] = "cross_k",
    [T_CROSS_V] = "cross_v",
    [T_PEER_QUERY] = "ffn_peer_query", [T_PEER_KEYS] = "ffn_peer_keys",
    [T_PEER_DOWN] = "ffn_peer_down",   [T_PEER_UP] = "ffn_peer_up",
    [T_KAN_BASE1] = "ffn_kan_base1",   [T_KAN_SPLINE1] = "ffn_kan_spline1",
    [T_KAN_BASE2] = "ffn_kan_base2",   [T_KAN_SPLINE2] = "ffn_kan_spline2",
};

static int is_bias(int k)
{
    switch (k) {
    case T_TOK_NORM_B:
    case T_OUTPUT_NORM_B:
    case T_ATTN_NORM_B:
    case T_ATTN_NORM_2_B:
    case T_QKV_B:
    case T_Q_B:
    case T_K_B:
    case T_V_B:
    case T_O_B:
    case T_FFN_NORM_B:
    case T_GATE_B:
    case T_DOWN_B:
    case T_UP_B:
    case T_EXP_PROBS_B:
    case T_SSM_CONV1D_B:
    case T_SSM_DT_B: return 1;
    default: return 0;
    }
}

static int is_1d(int k)
{
    switch (k) {
    case T_TOK_NORM:
    case T_OUTPUT_NORM:
    case T_ATTN_NORM:
    case T_ATTN_NORM_2:
    case T_ATTN_POST_NORM:
    case T_FFN_NORM:
    case T_FFN_POST_NORM:
    case T_GATE_INP_SHEXP:
    case T_MLA_QA_NORM:
    case T_MLA_KVA_NORM:
    case T_RET_NORM:
    case T_CROSS_KV_NORM:
    case T_SSM_D: return 1;
    default: return is_bias(k);
    }
}

void arch_tensor_name(int k, int il, char *buf, size_t size)
{
    const char *suffix = is_bias(k) ? "bias" : "weight";
    if (k == T_SSM_A || k == T_SSM_D) /* llama.cpp names these without a suffix */
        snprintf(buf, size, "blk.%d.%s", il, base_names[k]);
    else if (k < T_FIRST_LAYER)
        snprintf(buf, size, "%s.%s", base_names[k], suffix);
    else
        snprintf(buf, size, "blk.%d.%s.%s", il, base_names[k], suffix);
}

struct tensor *arch_tensor(strix_model *m, int k, int il)
{
    struct layer *L = k >= T_FIRST_LAYER ? &m->layers[il] : NULL;
    switch (k) {
    case T_TOK_EMBD: return &m->tok_embd;
    case T_POS_EMBD: return &m->pos_embd;
    case T_TOK_NORM: return &m->tok_norm;
    case T_TOK_NORM_B: return &m->tok_norm_b;
    case T_OUTPUT_NORM: return &m->output_norm;
    case T_OUTPUT_NORM_B: return &m->output_norm_b;
    case T_OUTPUT: return &m->output;
    case T_ATTN_NORM: return &L->attn_norm;
    case T_ATTN_NORM_B: return &L->attn_norm_b;
    case T_ATTN_NORM_2: return &L->attn_norm_2;
    case T_ATTN_NORM_2_B: return &L->attn_norm_2_b;
    case T_QKV: return &L->wqkv;
    case T_QKV_B: return &L->bqkv;
    case T_Q: return &L->wq;
    case T_Q_B: return &L->bq;
    case T_K: return &L->wk;
    case T_K_B: return &L->bk;
    case T_V: return &L->wv;
    case T_V_B: return &L->bv;
    case T_O: return &L->wo;
    case T_O_B: return &L->bo;
    case T_ATTN_POST_NORM: return &L->attn_post_norm;
    case T_FFN_NORM: return &L->ffn_norm;
    case T_FFN_NORM_B: return &L->ffn_norm_b;
    case T_GATE: return &L->w_gate;
    case T_GATE_B: return &L->b_gate;
    case T_DOWN: return &L->w_down;
    case T_DOWN_B: return &L->b_down;
    case T_UP: return &L->w_up;
    case T_UP_B: return &L->b_up;
    case T_FFN_POST_NORM: return &L->ffn_post_norm;
    case T_GATE_INP: return &L->gate_inp;
    case T_GATE_EXPS: return &L->gate_exps;
    case T_DOWN_EXPS: return &L->down_exps;
    case T_UP_EXPS: return &L->up_exps;
    case T_GATE_INP_SHEXP: return &L->gate_inp_shexp;
    case T_GATE_SHEXP: return &L->gate_shexp;
    case T_DOWN_SHEXP: return &L->down_shexp;
    case T_MLA_QA: return &L->wq_a;
    case T_MLA_QA_NORM: return &L->q_a_norm;
    case T_MLA_QB: return &L->wq_b;
    case T_MLA_KVA: return &L->wkv_a;
    case T_MLA_KVA_NORM: return &L->kv_a_norm;
    case T_MLA_KB: return &L->wk_b;
    case T_MLA_VB: return &L->wv_b;
    case T_EXP_PROBS_B: return &L->exp_probs_b;
    case T_SSM_IN: return &L->ssm_in;
    case T_SSM_CONV1D: return &L->ssm_conv1d;
    case T_SSM_CONV1D_B: return &L->ssm_conv1d_b;
    case T_SSM_X: return &L->ssm_x;
    case T_SSM_DT: return &L->ssm_dt;
    case T_SSM_DT_B: return &L->ssm_dt_b;
    case T_SSM_A: return &L->ssm_a;
    case T_SSM_D: return &L->ssm_d;
    case T_SSM_OUT: return &L->ssm_out;
    case T_RET_GATE: return &L->ret_gate;
    case T_RET_NORM: return &L->ret_norm;
    case T_RET_DECAY: return &L->ret_decay;
    case T_CROSS_KV_NORM: return &L->cross_kv_norm;
    case T_CROSS_K: return &L->cross_k;
    case T_CROSS_V: return &L->cross_v;
    case T_PEER_QUERY: return &L->peer_query;
    case T_PEER_KEYS: return &L->peer_keys;
    case T_PEER_DOWN: return &L->peer_down;
    case T_PEER_UP: return &L->peer_up;
    case T_KAN_BASE1: return &L->kan_base1;
    case T_KAN_SPLINE1: return &L->kan_spline1;
    case T_KAN_BASE2: return &L->kan_base2;
    case T_KAN_SPLINE2: return &L->kan_spline2;
    default: return &L->up_shexp;
    }
}

void arch_shape(const strix_model *m, int k, int *n_dims, int64_t ne[3])
{
    const struct hparams *hp = &m->hp;
    const int64_t embd = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t ff = hp->n_ff_dense * (m->ad->fused_up ? 2 : 1);
    int64_t a = embd, b = 1, c = 1; /* 1-D of n_embd unless said otherwise */
    if ((m->ad->mla && arch_deepseek2_shape(m, k, ne)) ||
        (m->ad->ssm && arch_mamba_shape(m, k, ne)) ||
        (m->ad->retnet && arch_retnet_shape(m, k, ne)) ||
        (m->ad->yoco && arch_yoco_shape(m, k, ne)) || arch_ffn_shape(m, k, ne)) {
        *n_dims = ne[2] > 1 ? 3 : is_1d(k) ? 1 : 2;
        return;
    }
    switch (k) {
    case T_TOK_EMBD:
    case T_OUTPUT: b = hp->n_vocab; break;
    case T_POS_EMBD: b = hp->n_ctx_train; break;
    case T_QKV: b = q + 2 * kv; break;
    case T_QKV_B: a = q + 2 * kv; break;
    case T_Q: b = q; break;
    case T_Q_B: a = q; break;
    case T_K:
    case T_V: b = kv; break;
    case T_K_B:
    case T_V_B: a = kv; break;
    case T_O: a = q, b = embd; break;
    case T_GATE: b = hp->n_ff_dense; break;
    case T_GATE_B: a = hp->n_ff_dense; break;
    case T_UP: b = ff; break;
    case T_UP_B: a = ff; break;
    case T_DOWN: a = hp->n_ff_dense, b = embd; break;
    case T_GATE_INP: b = hp->n_expert; break;
    case T_GATE_EXPS:
    case T_UP_EXPS: b = hp->n_ff_exp, c = hp->n_expert; break;
    case T_DOWN_EXPS: a = hp->n_ff_exp, b = embd, c = hp->n_expert; break;
    case T_GATE_SHEXP:
    case T_UP_SHEXP: b = hp->n_ff_shexp; break;
    case T_DOWN_SHEXP: a = hp->n_ff_shexp, b = embd; break;
    default: break; /* norms, their biases, T_O_B, T_DOWN_B, T_GATE_INP_SHEXP */
    }
    ne[0] = a, ne[1] = b, ne[2] = c;
    *n_dims = c > 1 ? 3 : is_1d(k) ? 1 : 2;
}

/* ---- hyperparameter keys ---- */

/* Limits beyond which a value is corrupt (model.c checks the core ones). */
#define MAX_EXPERTS 1024

static int get_u32(const gguf *g, const char *arch, const char *key, int required, int *out,
                   strix_error *err)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    int rc = gguf_get_u32(g, full, required, &v, err);
    if (rc == STRIX_ERR_ARG && !required)
        return STRIX_OK;
    if (rc)
        return rc;
    if (v > (1u << 28))
        return err_set(err, STRIX_ERR_FORMAT, "%s = %u is out of range", full, v);
    *out = (int)v;
    return STRIX_OK;
}

static int get_f32(const gguf *g, const char *arch, const char *key, int required, float *out,
                   strix_error *err)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int rc = gguf_get_f32(g, full, required, out, err);
    if (rc == STRIX_ERR_ARG && !required)
        return STRIX_OK;
    if (rc == STRIX_OK && !isfinite(*out))
        return err_set(err, STRIX_ERR_FORMAT, "%s is not finite", full);
    return rc;
}

int arch_key_u32(const gguf *g, const char *arch, const char *key, int required, int *out,
                 strix_error *err)
{
    return get_u32(g, arch, key, required, out, err);
}

int arch_key_f32(const gguf *g, const char *arch, const char *key, int required, float *out,
                 strix_error *err)
{
    return get_f32(g, arch, key, required, out, err);
}

int arch_load_hparams(strix_model *m, const gguf *g, strix_error *err)
{
    struct hparams *hp = &m->hp;
    const struct arch *ad = m->ad;
    const char *a = m->arch;
    int rc;
    hp->rope_freq_base = 10000.0f;
    hp->norm_eps = 1e-5f;
    hp->n_ctx_train = 2048;
    hp->rope_neox = ad->rope_neox;
    hp->rope_freq_scale = 1.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->alibi_max_bias = ad->alibi_bias;
    if ((rc = get_u32(g, a, "expert_count", 0, &hp->n_expert, err)) ||
        (rc = get_u32(g, a, "expert_used_count", 0, &hp->n_expert_used, err)))
        return rc;
    if (hp->n_expert > MAX_EXPERTS || hp->n_expert_used > hp->n_expert ||
        (hp->n_expert > 0) != (hp->n_expert_used > 0))
        return err_set(err, STRIX_ERR_FORMAT, "expert counts %d (used %d) are inconsistent",
                       hp->n_expert, hp->n_expert_used);
    if (hp->n_expert > 0 && !ad->w[T_GATE_INP])
        return err_set(err, STRIX_ERR_UNSUPPORTED, "%s models with experts are not supported", a);
    if (ad->w[T_GATE_INP] == W_REQ && hp->n_expert == 0)
        return err_set(err, STRIX_ERR_FORMAT, "%s.expert_count is missing", a);
    if ((rc = get_u32(g, a, "embedding_length", 1, &hp->n_embd, err)) ||
        (rc = get_u32(g, a, "feed_forward_length", hp->n_expert == 0, &hp->n_ff_dense, err)) ||
        (rc = get_u32(g, a, "block_count", 1, &hp->n_layer, err)) ||
        (rc = get_u32(g, a, "attention.head_count", 1, &hp->n_head, err)) ||
        (rc = get_u32(g, a, "context_length", 0, &hp->n_ctx_train, err)) ||
        (rc = get_u32(g, a, "rope.dimension_count", 0, &hp->n_rot, err)) ||
        (rc = get_u32(g, a, "attention.key_length", 0, &hp->head_dim, err)) ||
        (rc = get_f32(g, a,
                      ad->norm == NORM_RMS ? "attention.layer_norm_rms_epsilon"
                                           : "attention.layer_norm_epsilon",
                      0, &hp->norm_eps, err)) ||
        (rc = get_f32(g, a, "rope.freq_base", 0, &hp->rope_freq_base, err)))
        return rc;
    hp->n_head_kv = hp->n_head;
    if ((rc = get_u32(g, a, "attention.head_count_kv", 0, &hp->n_head_kv, err)))
        return rc;
    int v_len = hp->head_dim;
    if ((rc = get_u32(g, a, "attention.value_length", 0, &v_len, err)))
        return rc;
    if (v_len != hp->head_dim && !ad->mla && !ad->retnet)
        return err_set(err, STRIX_ERR_UNSUPPORTED, "key length %d differs from value length %d",
                       hp->head_dim, v_len);

    /* experts */
    if (hp->n_expert > 0) {
        const int n_ff = hp->n_ff_dense;
        hp->n_ff_exp = ad->expert_ff_is_ff ? n_ff : 0;
        hp->n_ff_shexp = n_ff;
        if ((rc = get_u32(g, a, "expert_feed_forward_length", 0, &hp->n_ff_exp, err)) ||
            (rc = get_u32(g, a, "expert_shared_feed_forward_length", 0, &hp->n_ff_shexp, err)))
            return rc;
        if (hp->n_ff_exp == 0)
            hp->n_ff_exp = n_ff / hp->n_expert_used;
        if (hp->n_ff_exp <= 0 || (ad->w[T_GATE_SHEXP] && hp->n_ff_shexp <= 0))
            return err_set(err, STRIX_ERR_FORMAT, "expert feed-forward length is missing");
    }

    /* rotary scaling */
    struct gguf_str s;
    float factor = 0.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    rc = gguf_get_str(g, key, 0, &s, err);
    if (rc && rc != STRIX_ERR_ARG)
        return rc;
    hp->rope_scaling = ROPE_SCALING_LINEAR; /* llama.cpp's default: a factor scales linearly */
    if (rc == STRIX_OK) {
        if (s.len == 4 && memcmp(s.ptr, "none", 4) == 0)
            hp->rope_scaling = ROPE_SCALING_NONE;
        else if (s.len == 4 && memcmp(s.ptr, "yarn", 4) == 0)
            hp->rope_scaling = ROPE_SCALING_YARN;
        else if (!(s.len == 6 && memcmp(s.ptr, "linear", 6) == 0))
            return err_set(err, STRIX_ERR_UNSUPPORTED, "rope scaling '%.*s' is not supported",
                           (int)(s.len > 32 ? 32 : s.len), s.ptr);
    }
    err_clear(err);
    if ((rc = get_f32(g, a, "rope.scaling.factor", 0, &factor, err)))
        return rc;
    if (factor == 0.0f && (rc = get_f32(g, a, "rope.scale_linear", 0, &factor, err)))
        return rc;
    if (factor != 0.0f && !(factor >= 1e-3f && factor <= 1e6f))
        return err_set(err, STRIX_ERR_FORMAT, "rope scaling factor %g is out of range", factor);
    hp->rope_freq_scale = factor == 0.0f || hp->rope_scaling == ROPE_SCALING_NONE ? 1.0f
                                                                                  : 1.0f / factor;
    hp->n_ctx_orig = hp->n_ctx_train;
    if ((rc = get_u32(g, a, "rope.scaling.original_context_length", 0, &hp->n_ctx_orig, err)) ||
        (rc = get_f32(g, a, "rope.scaling.attn_factor", 0, &hp->yarn_attn_factor, err)))
        return rc;
    hp->yarn_ext_factor = hp->rope_scaling == ROPE_SCALING_YARN ? 1.0f : 0.0f;
    if (hp->n_ctx_orig <= 0 || !(hp->yarn_attn_factor > 0.0f && hp->yarn_attn_factor < 100.0f))
        return err_set(err, STRIX_ERR_FORMAT, "YaRN parameters out of range");

    /* windows, ALiBi, clamping, soft-capping */
    hp->n_swa = ad->n_swa;
    hp->swa_dense_every = ad->swa_dense_every;
    hp->attn_softcap = ad->attn_softcap;
    hp->final_softcap = ad->final_softcap;
    if (ad->attn_softcap > 0.0f) {
        if ((rc = get_f32(g, a, "attn_logit_softcapping", 0, &hp->attn_softcap, err)) ||
            (rc = get_f32(g, a, "final_logit_softcapping", 0, &hp->final_softcap, err)))
            return rc;
        if (!(hp->attn_softcap > 0.0f && hp->final_softcap > 0.0f))
            return err_set(err, STRIX_ERR_FORMAT, "soft-capping values must be positive");
    }
    if ((rc = get_u32(g, a, "attention.sliding_window", ad->swa_required, &hp->n_swa, err)))
        return rc;
    if (ad->alibi_keys) {
        if ((rc = get_f32(g, a, "attention.max_alibi_bias", 1, &hp->alibi_max_bias, err)) ||
            (rc = get_f32(g, a, "attention.clamp_kqv", 0, &hp->clamp_kqv, err)))
            return rc;
        if (!(hp->alibi_max_bias >= 0.0f && hp->alibi_max_bias <= 1000.0f) ||
            !(hp->clamp_kqv >= 0.0f))
            return err_set(err, STRIX_ERR_FORMAT, "ALiBi bias or clamp out of range");
    }

    /* strix's own block options */
    int flag = 0;
    rc = gguf_get_bool(g, "strix.post_norm", 0, &flag, err);
    if (rc && rc != STRIX_ERR_ARG)
        return rc;
    hp->post_norm = rc == STRIX_OK && flag;
    rc = gguf_get_str(g, "strix.position_encoding", 0, &s, err);
    if (rc && rc != STRIX_ERR_ARG)
        return rc;
    if (rc == STRIX_OK) {
        if (!(s.len == 10 && memcmp(s.ptr, "sinusoidal", 10) == 0))
            return err_set(err, STRIX_ERR_UNSUPPORTED, "position encoding '%.*s' is not supported",
                           (int)(s.len > 32 ? 32 : s.len), s.ptr);
        hp->sinusoidal = 1;
    }
    err_clear(err);
    if ((rc = arch_ffn_load(m, g, err)))
        return rc;
    if (ad->mla)
        return arch_deepseek2_load(m, g, err);
    if (ad->ssm)
        return arch_mamba_load(m, g, err);
    if (ad->retnet)
        return arch_retnet_load(m, g, err);
    if (ad->yoco)
        return arch_yoco_load(m, g, err);
    return STRIX_OK;
}

/* Adds key k through `add` unless an earlier key failed (*rc); a failure
 * says which key and why (a duplicate is STRIX_ERR_ARG, not out of memory). */
#define ADD_KEY(add)                                                                               \
    (void)(rc == STRIX_OK && (rc = (add)) != STRIX_OK &&                                           \
           (rc = err_set(err, rc, "cannot add GGUF key %s (%s)", k, strix_status_name(rc))))

int arch_save_hparams(const strix_model *m, gguf_writer *w, strix_error *err)
{
    const struct hparams *hp = &m->hp;
    const char *a = m->arch;
    char k[128];
    int rc = STRIX_OK;
#define U32(key, v) (snprintf(k, sizeof k, "%s." key, a), ADD_KEY(gguf_writer_add_u32(w, k, (uint32_t)(v))))
#define F32(key, v) (snprintf(k, sizeof k, "%s." key, a), ADD_KEY(gguf_writer_add_f32(w, k, (v))))
    U32("context_length", hp->n_ctx_train);
    U32("embedding_length", hp->n_embd);
    U32("block_count", hp->n_layer);
    if (!m->ad->ssm) { /* arch_mamba_save writes mamba's placeholders */
        U32("feed_forward_length", hp->n_ff_dense);
        U32("attention.head_count", hp->n_head);
        U32("attention.head_count_kv", hp->n_head_kv);
    }
    if (hp->head_dim * hp->n_head != hp->n_embd && !m->ad->mla && !m->ad->ssm &&
        !m->ad->retnet) { /* arch_retnet_save writes both lengths */
        U32("attention.key_length", hp->head_dim);
        U32("attention.value_length", hp->head_dim);
    }
    if (m->ad->pos == POS_ROPE) {
        U32("rope.dimension_count", hp->n_rot);
        F32("rope.freq_base", hp->rope_freq_base);
    }
    if (m->ad->norm == NORM_RMS)
        F32("attention.layer_norm_rms_epsilon", hp->norm_eps);
    else
        F32("attention.layer_norm_epsilon", hp->norm_eps);
    if (hp->n_expert > 0) {
        U32("expert_count", hp->n_expert);
        U32("expert_used_count", hp->n_expert_used);
        if (!m->ad->expert_ff_is_ff)
            U32("expert_feed_forward_length", hp->n_ff_exp);
        if (m->ad->w[T_GATE_SHEXP] && !m->ad->mla)
            U32("expert_shared_feed_forward_length", hp->n_ff_shexp);
    }
    if (hp->rope_freq_scale != 1.0f) {
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        ADD_KEY(gguf_writer_add_str(w, k, hp->rope_scaling == ROPE_SCALING_YARN ? "yarn" : "linear"));
        F32("rope.scaling.factor", 1.0f / hp->rope_freq_scale);
        if (hp->rope_scaling == ROPE_SCALING_YARN)
            U32("rope.scaling.original_context_length", hp->n_ctx_orig);
    }
    if (hp->n_swa > 0)
        U32("attention.sliding_window", hp->n_swa);
    if (m->ad->alibi_keys) {
        F32("attention.max_alibi_bias", hp->alibi_max_bias);
        if (hp->clamp_kqv > 0.0f)
            F32("attention.clamp_kqv", hp->clamp_kqv);
    }
    if (hp->attn_softcap > 0.0f)
        F32("attn_logit_softcapping", hp->attn_softcap);
    if (hp->final_softcap > 0.0f)
        F32("final_logit_softcapping", hp->final_softcap);
    if (hp->post_norm) {
        snprintf(k, sizeof k, "strix.post_norm");
        ADD_KEY(gguf_writer_add_bool(w, k, 1));
    }
    if (hp->sinusoidal) {
        snprintf(k, sizeof k, "strix.position_encoding");
        ADD_KEY(gguf_writer_add_str(w, k, "sinusoidal"));
    }
#undef U32
#undef F32
    if (rc == STRIX_OK && m->ad->mla)
        rc = arch_deepseek2_save(m, w, err);
    if (rc == STRIX_OK && m->ad->ssm)
        rc = arch_mamba_save(m, w, err);
    if (rc == STRIX_OK && m->ad->retnet)
        rc = arch_retnet_save(m, w, err);
    if (rc == STRIX_OK && m->ad->yoco)
        rc = arch_yoco_save(m, w, err);
    if (rc == STRIX_OK && hp->ffn_kind != FFN_MLP)
        rc = arch_ffn_save(m, w, err);
    return rc;
}
#undef ADD_KEY


const char *strix_archs(void)
{
    return arch_names();
}
