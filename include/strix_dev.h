/*
 * strix_dev.h - entry points for strix's own tests, benchmarks and
 * cross-engine checks; not part of the stable API (they may change in any
 * release) and not installed. Include it after strix.h.
 */
#ifndef STRIX_DEV_H
#define STRIX_DEV_H

#include "strix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A model of the given shape with random weights (F32) and the vocabulary of
 * the GGUF file at vocab_path, for benchmarks and cross-engine tests. */
struct strix_synth_params {
    size_t struct_size; /* sizeof, set by strix_synth_default_params() */
    int n_embd, n_ff, n_layer, n_head, n_head_kv;
    int n_ctx; /* trained context length to record */
    float rope_freq_base;
    float norm_eps;
    uint64_t seed;
    /* Architecture variants (zero: the default). */
    const char *arch;         /* general.architecture, one of strix_archs(); NULL: "llama" */
    int n_rot;                /* rotary dimensions per head; 0: the whole head */
    int n_expert;             /* Mixture-of-Experts: experts per layer (0: dense FFN) */
    int n_expert_used;        /* experts per token */
    int n_ff_exp;             /* expert FFN width (0: n_ff) */
    int n_ff_shexp;           /* shared expert FFN width (qwen2moe; 0: n_ff) */
    int n_swa;                /* sliding window (llama, phi3, gemma2); 0: none */
    float alibi_max_bias;     /* mpt: ALiBi maximum bias (0: 8) */
    const char *rope_scaling; /* NULL, "linear" or "yarn" */
    float rope_scale;         /* the scaling factor, with rope_scaling */
    int n_ctx_orig;           /* YaRN: original context length (0: n_ctx) */
    int post_norm;            /* post-norm blocks (strix.post_norm) */
    int sinusoidal;           /* sinusoidal absolute positions (strix.position_encoding) */
    /* deepseek2 (zero: the default) */
    int n_lora_q;             /* query latent rank (0: a plain query projection) */
    int n_lora_kv;            /* key-value latent rank (0: 4 x the head size) */
    int head_k_mla;           /* key size per head, rotary part included (0: n_embd / n_head) */
    int head_v_mla;           /* value size per head (0: head_k_mla) */
    int n_dense_lead;         /* leading blocks with a dense FFN */
    int n_expert_shared;      /* shared experts (0: 1) */
    int n_expert_groups;      /* group-limited routing: groups (0: none) */
    int n_group_used;         /* groups each token may use */
    int expert_sigmoid;       /* sigmoid gating (DeepSeek-V3) instead of softmax */
    int expert_probs_bias;    /* an exp_probs_b selection bias per block */
    int expert_norm;          /* chosen weights renormalised */
    float expert_scale;       /* chosen weights scaled (0: 1) */
    /* mamba (zero: the default); the inner size is 2 n_embd */
    int ssm_d_conv;           /* convolution width (0: 4) */
    int ssm_d_state;          /* state size per channel (0: 16) */
    int ssm_dt_rank;          /* time-step rank (0: n_embd / 16, at least 1) */
    int ssm_reserved_;        /* keeps the struct free of tail padding */
    /* the MLP replaced (llama only; README "Feed-forward variants") */
    const char *ffn_kind;     /* NULL or "mlp", "peer", "kan" */
    int peer_n_keys;          /* PEER: sub-keys per half (0: 16; experts = this^2) */
    int peer_n_head;          /* PEER: retrieval heads (0: 4) */
    int peer_top_k;           /* PEER: experts per head (0: 8) */
    int peer_d_key;           /* PEER: query size, even (0: 32) */
    int peer_sigmoid;         /* PEER: sigmoid expert weights instead of softmax */
    int kan_grid;             /* KAN: grid intervals G (0: 5); the hidden width is n_ff */
    int kan_order;            /* KAN: spline order k (0: 3) */
    float kan_range;          /* KAN: the grid spans [-range, range] (0: 2) */
};
int strix_synth_params_init(struct strix_synth_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(synth)
int strix_model_synth(const struct strix_synth_params *params, const char *vocab_path,
                      strix_model **out, strix_error *err);

#ifdef __cplusplus
}
#endif
#endif /* STRIX_DEV_H */
