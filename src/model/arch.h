/*
 * arch.h - the model architectures strix runs, each described by data: which
 * weights its blocks have (by llama.cpp's GGUF tensor names), which norm,
 * positions, activation, block layout and hyperparameter defaults it uses.
 * model.c builds the weight table from a description, runtime/forward.c
 * computes with it, synth.c writes random models of it. Adding an
 * architecture is adding a row in arch.c.
 */
#ifndef STRIX_ARCH_H
#define STRIX_ARCH_H

#include <stdint.h>

#include "model/model.h"

/* The weight kinds, in the order their slots are listed (and saved): first
 * the model-wide ones, then those of each block. */
enum tkind {
    /* model-wide */
    T_TOK_EMBD,
    T_POS_EMBD,
    T_TOK_NORM,
    T_TOK_NORM_B,
    T_OUTPUT_NORM,
    T_OUTPUT_NORM_B,
    T_OUTPUT,
    /* per block */
    T_ATTN_NORM,
    T_ATTN_NORM_B,
    T_ATTN_NORM_2,
    T_ATTN_NORM_2_B,
    T_QKV,
    T_QKV_B,
    T_Q,
    T_Q_B,
    T_K,
    T_K_B,
    T_V,
    T_V_B,
    T_O,
    T_O_B,
    T_ATTN_POST_NORM,
    T_FFN_NORM,
    T_FFN_NORM_B,
    T_GATE,
    T_GATE_B,
    T_DOWN,
    T_DOWN_B,
    T_UP,
    T_UP_B,
    T_FFN_POST_NORM,
    T_GATE_INP,
    T_GATE_EXPS,
    T_DOWN_EXPS,
    T_UP_EXPS,
    T_GATE_INP_SHEXP,
    T_GATE_SHEXP,
    T_DOWN_SHEXP,
    T_UP_SHEXP,
    /* Multi-head Latent Attention and DeepSeekMoE (arch_deepseek2.c) */
    T_MLA_QA,
    T_MLA_QA_NORM,
    T_MLA_QB,
    T_MLA_KVA,
    T_MLA_KVA_NORM,
    T_MLA_KB,
    T_MLA_VB,
    T_EXP_PROBS_B,
    /* selective state-space blocks (arch_mamba.c) */
    T_SSM_IN,
    T_SSM_CONV1D,
    T_SSM_CONV1D_B,
    T_SSM_X,
    T_SSM_DT,
    T_SSM_DT_B,
    T_SSM_A,
    T_SSM_D,
    T_SSM_OUT,
    /* multi-scale retention (arch_retnet.c) */
    T_RET_GATE,
    T_RET_NORM,
    T_RET_DECAY, /* gated retention's per-head decay gate (yoco) */
    /* YOCO's shared key/value projection, in the first cross-decoder block */
    T_CROSS_KV_NORM,
    T_CROSS_K,
    T_CROSS_V,
    /* strix's feed-forward variants (arch_ffn.c); never optional, so the
     * optional-kind mask (64 bits) need not reach them */
    T_PEER_QUERY,
    T_PEER_KEYS,
    T_PEER_DOWN,
    T_PEER_UP,
    T_KAN_BASE1,
    T_KAN_SPLINE1,
    T_KAN_BASE2,
    T_KAN_SPLINE2,
    T_COUNT
};
#define T_FIRST_LAYER T_ATTN_NORM

/* How an architecture uses a weight kind. */
enum {
    W_NO = 0,   /* never */
    W_REQ = 1,  /* always */
    W_OPT = 2,  /* if the file has it (synth leaves it out) */
    W_DENSE = 3, /* always in models without experts */
    W_MOE = 4,  /* always in models with experts */
    /* deepseek2: blocks below leading_dense_block_count are dense */
    W_QLORA = 5,  /* when the query has a latent (n_lora_q > 0) */
    W_QPLAIN = 6, /* when it has none */
    W_MOE_OPT = 7, /* in blocks with experts, if the file has it */
    /* yoco: */
    W_SELF = 8,     /* in the self-decoder's blocks */
    W_CROSS_KV = 9, /* in the first cross-decoder block only */
    W_PEER = 10,   /* when <arch>.ffn_kind is "peer" */
    W_KAN = 11,    /* when <arch>.ffn_kind is "kan" */
};

struct arch {
    const char *name; /* general.architecture */
    uint8_t norm;     /* enum norm_kind */
    uint8_t pos;      /* enum pos_kind */
    uint8_t rope_neox;
    uint8_t act;         /* enum ffn_act of the FFN */
    uint8_t gated;       /* FFN is act(gate x) * (up x); else act(up x) */
    uint8_t fused_up;    /* gate and up fused in ffn_up: (gate | up) rows (Phi-3) */
    uint8_t parallel;    /* attention and FFN both read the block's normed input */
    uint8_t emb_sqrt;    /* embeddings scaled by sqrt(n_embd) (Gemma) */
    uint8_t moe_norm_w;  /* top-k expert weights renormalised to sum 1 */
    uint8_t output;      /* W_REQ, W_OPT (tied when absent) or W_NO (always tied) */
    float alibi_bias;    /* ALiBi max bias when the file has no key (Bloom; MPT's default) */
    uint8_t alibi_keys;  /* attention.max_alibi_bias required, attention.clamp_kqv read (MPT) */
    int n_swa;           /* default sliding window (0: none); attention.sliding_window overrides */
    uint8_t swa_dense_every; /* with a window: layers l % k == k - 1 see all (Gemma-2: 2) */
    uint8_t swa_required;    /* attention.sliding_window must be given (llama.cpp's rule: Phi-3) */
    float attn_softcap, final_softcap; /* > 0: soft-capping, these values unless the file's
                                          {attn,final}_logit_softcapping say (Gemma-2) */
    uint8_t expert_ff_is_ff; /* experts are feed_forward_length wide; no
                                expert_feed_forward_length key (llama / Mixtral) */
    uint16_t q_scale_embd_layers; /* models of this many layers scale queries by
                                     1/sqrt(n_embd / n_head), not 1/sqrt(head_dim),
                                     as llama.cpp does for Gemma-2 27B */
    uint8_t mla;         /* Multi-head Latent Attention and DeepSeekMoE (deepseek2) */
    uint8_t ssm;         /* selective state-space blocks (mamba) */
    uint8_t retnet;      /* multi-scale retention in place of attention (retnet) */
    uint8_t yoco;        /* self-decoder of gated retention, cross-decoder over one
                            shared key/value cache (yoco) */
    uint8_t w[T_COUNT];  /* per weight kind: W_* */
};

/* The description of architecture `name`, or NULL if strix cannot run it. */
const struct arch *arch_find(const char *name);
/* Names of every supported architecture, separated by spaces. */
const char *arch_names(void);

/* Whether kind k is in model m (its description, expert count and the
 * optional kinds its file has). */
int arch_has(const strix_model *m, int k);
/* Whether kind k is in block il of model m (dense and expert blocks differ
 * where the first blocks are dense, as in deepseek2). */
int arch_has_layer(const strix_model *m, int k, int il);
/* The tensor name of kind k in block il (ignored for model-wide kinds). */
void arch_tensor_name(int k, int il, char *buf, size_t size);
/* The tensor struct of kind k in block il. */
struct tensor *arch_tensor(strix_model *m, int k, int il);
/* The expected shape of kind k: n_dims and ne[0..2]. */
void arch_shape(const strix_model *m, int k, int *n_dims, int64_t ne[3]);

/* Reads the architecture's hyperparameters from the GGUF metadata into
 * m->hp (model.c then checks their ranges). */
struct gguf;
int arch_load_hparams(strix_model *m, const struct gguf *g, strix_error *err);
/* The key "ARCH.KEY" into *out: a u32 (at most 2^28) or a finite f32; absent
 * and not required: STRIX_OK with *out unchanged. For the arch_*.c files. */
int arch_key_u32(const struct gguf *g, const char *arch, const char *key, int required, int *out,
                 strix_error *err);
int arch_key_f32(const struct gguf *g, const char *arch, const char *key, int required,
                 float *out, strix_error *err);
/* Writes them back (strix_model_save_gguf); a key the writer refuses is
 * reported with its status (a duplicate, out of memory). */
struct gguf_writer;
int arch_save_hparams(const strix_model *m, struct gguf_writer *w, strix_error *err);

/* arch_deepseek2.c: deepseek2's own keys (MLA ranks and head sizes, leading
 * dense blocks, shared experts, expert groups, gating, weight scaling),
 * read after the common ones, and written back. */
int arch_deepseek2_load(strix_model *m, const struct gguf *g, strix_error *err);
int arch_deepseek2_save(const strix_model *m, struct gguf_writer *w, strix_error *err);
/* The shape of a deepseek2 kind (0 if k is not one of them). */
int arch_deepseek2_shape(const strix_model *m, int k, int64_t ne[3]);
/* Older deepseek2 files (hp.mla_legacy): every block's attn_k_b and attn_v_b
 * made from its unsplit attn_kv_b, as F32 in m->owned (call after
 * model_init_tables); and whether a file tensor's name is such an
 * attn_kv_b. */
int arch_deepseek2_split_kv_b(strix_model *m, const struct gguf *g, strix_error *err);
int arch_deepseek2_legacy_name(const strix_model *m, const char *name, size_t len);

/* arch_mamba.c: mamba's ssm.* keys, and its tensor shapes (0 if k is not
 * one of them). */
int arch_mamba_load(strix_model *m, const struct gguf *g, strix_error *err);
int arch_mamba_save(const strix_model *m, struct gguf_writer *w, strix_error *err);
int arch_mamba_shape(const strix_model *m, int k, int64_t ne[3]);
/* Sets hp->ssm and the placeholders that let the shared tables (scratch
 * sizes, checks) stand: one "head" of 2, n_ff = d_inner. */
void arch_mamba_placeholders(struct hparams *hp);

/* arch_retnet.c: retnet's retention.* keys and value length, and its tensor
 * shapes (0 if k is not one of them). */
int arch_retnet_load(strix_model *m, const struct gguf *g, strix_error *err);
int arch_retnet_save(const strix_model *m, struct gguf_writer *w, strix_error *err);
int arch_retnet_shape(const strix_model *m, int k, int64_t ne[3]);
/* Sets hp->retnet, hp->ssm (a recurrent state per sequence) and the ssm
 * sizes that make runtime/ssm.c keep one d_k x d_v state per head:
 * d_inner = n_head d_k channels of d_state = d_v values, no convolution.
 * Checks the sizes (STRIX_ERR_FORMAT with a message). */
int arch_retnet_placeholders(struct hparams *hp, strix_error *err);

/* arch_yoco.c: yoco's keys (self-decoder depth, gate temperature) and its
 * tensor shapes (0 if k is not one of them). */
int arch_yoco_load(strix_model *m, const struct gguf *g, strix_error *err);
int arch_yoco_save(const strix_model *m, struct gguf_writer *w, strix_error *err);
int arch_yoco_shape(const strix_model *m, int k, int64_t ne[3]);
/* Sets hp->yoco, the self-decoder's retention sizes (d_v = d_k) and its
 * state (as arch_retnet_placeholders), after checking n_self. */
int arch_yoco_placeholders(struct hparams *hp, strix_error *err);
/* arch_ffn.c: the feed-forward variants (PEER, KAN) of architectures whose
 * row lists their kinds: <arch>.ffn_kind and the peer.* / kan.* keys, read
 * after the common ones (any architecture: a variant its row lacks is
 * refused), written back, and the variants' tensor shapes (0 if k is not
 * one of them). */
int arch_ffn_load(strix_model *m, const struct gguf *g, strix_error *err);
int arch_ffn_save(const strix_model *m, struct gguf_writer *w, strix_error *err);
int arch_ffn_shape(const strix_model *m, int k, int64_t ne[3]);
/* Checks the variant's sizes (synth and the loader). */
int arch_ffn_check(const struct hparams *hp, strix_error *err);

#endif
