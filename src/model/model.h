/*
 * model.h - the loaded model as the rest of src/ sees it: hyperparameters,
 * the weight table and the vocabulary.
 */
#ifndef STRIX_MODEL_H
#define STRIX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "strix.h"
#include "util.h"
#include "tokenize/vocab.h"

/* A weight: rows of ne[0] elements of `type`; ne[1] rows per matrix and, for
 * the stacked expert weights of a Mixture-of-Experts layer, ne[2] matrices. */
struct tensor {
    char name[64];
    uint32_t type; /* enum dtype */
    int n_dims;
    int64_t ne[4];
    const void *data; /* borrowed from the mapping, or points into model->owned */
    size_t nbytes;
    size_t row_bytes; /* bytes of one row of ne[0] elements */
    /* A copy of the whole 16-row groups in the layout of an instruction
     * set's kernels (pack.c), or NULL; used only while that set is active. */
    const void *packed;
    size_t packed_stride; /* bytes per group of 16 rows */
    const struct kern_isa *packed_isa;
    void *packed_mem; /* allocation behind packed (owned by the model); NULL when
                       * packed lies in another tensor's (pack.c) */
    void *data_mem;   /* a copy of a float weight that data points to, or NULL (pack.c) */
};

/* Every weight a block may have; an architecture uses a subset (arch.c).
 * Biases and norm weights are 1-D. "qkv" is a fused (q | k | v) projection;
 * the *_exps weights stack one matrix per expert. */
struct layer {
    struct tensor attn_norm, attn_norm_b;     /* (n_embd) */
    struct tensor attn_norm_2, attn_norm_2_b; /* (n_embd) Falcon-40B's second input norm */
    struct tensor wqkv, bqkv;                 /* (q_dim + 2 kv_dim rows, n_embd) */
    struct tensor wq, bq;                     /* (n_head * head_dim rows, n_embd) */
    struct tensor wk, bk;                     /* (n_head_kv * head_dim, n_embd) */
    struct tensor wv, bv;                     /* (n_head_kv * head_dim, n_embd) */
    struct tensor wo, bo;                     /* (n_embd, n_head * head_dim) */
    struct tensor attn_post_norm;             /* (n_embd) norm of the attention output */
    struct tensor ffn_norm, ffn_norm_b;       /* (n_embd) */
    struct tensor w_gate, b_gate;             /* (n_ff, n_embd) */
    struct tensor w_down, b_down;             /* (n_embd, n_ff) */
    struct tensor w_up, b_up;                 /* (n_ff, n_embd); (2 n_ff, ...) when fused */
    struct tensor ffn_post_norm;              /* (n_embd) norm of the FFN output */
    struct tensor gate_inp;                   /* (n_expert, n_embd) router */
    struct tensor gate_exps, down_exps, up_exps; /* (n_expert, n_ff_exp, n_embd) etc. */
    struct tensor gate_inp_shexp;             /* (1, n_embd) shared expert's gate */
    struct tensor gate_shexp, down_shexp, up_shexp; /* (n_ff_shexp, n_embd) etc. */
    /* Multi-head Latent Attention (deepseek2, arch_deepseek2.c) */
    struct tensor wq_a;      /* (n_lora_q rows, n_embd) query down-projection */
    struct tensor q_a_norm;  /* (n_lora_q) */
    struct tensor wq_b;      /* (n_head * head_k_mla rows, n_lora_q) query up-projection */
    struct tensor wkv_a;     /* (n_lora_kv + n_rot rows, n_embd) latent | rotary key */
    struct tensor kv_a_norm; /* (n_lora_kv) */
    struct tensor wk_b;      /* (n_head, n_lora_kv rows, head_k_mla - n_rot) per head */
    struct tensor wv_b;      /* (n_head, head_v_mla rows, n_lora_kv) per head */
    struct tensor exp_probs_b; /* (n_expert) expert selection bias (DeepSeek-V3) */
    /* a linear map that replaces the block (linear.c), when data != NULL */
    struct tensor linear, linear_b; /* (n_embd rows, n_embd), (n_embd) F32 */
    /* selective state-space block (mamba, arch_mamba.c) */
    struct tensor ssm_in;              /* (2 d_inner rows, n_embd) x | z */
    struct tensor ssm_conv1d;          /* (d_inner rows, d_conv) causal convolution */
    struct tensor ssm_conv1d_b;        /* (d_inner) */
    struct tensor ssm_x;               /* (dt_rank + 2 d_state rows, d_inner) dt | B | C */
    struct tensor ssm_dt, ssm_dt_b;    /* (d_inner rows, dt_rank), (d_inner) */
    struct tensor ssm_a;               /* (d_inner rows, d_state) -exp(A_log) */
    struct tensor ssm_d;               /* (d_inner) skip connection */
    struct tensor ssm_out;             /* (n_embd rows, d_inner) */
    /* multi-scale retention (retnet, arch_retnet.c) */
    struct tensor ret_gate;            /* (n_head * d_v rows, n_embd) swish gate */
    struct tensor ret_norm;            /* (n_head * d_v) group norm weight */
    struct tensor ret_decay;           /* (n_head rows, n_embd) gated decay (yoco) */
    /* yoco's shared keys and values, in the first cross-decoder block */
    struct tensor cross_kv_norm;       /* (n_embd) */
    struct tensor cross_k, cross_v;    /* (n_head_kv * head_dim rows, n_embd) */
    /* strix's feed-forward variants in place of the MLP (arch_ffn.c) */
    struct tensor peer_query; /* (peer_n_head * peer_d_key rows, n_embd) PEER queries */
    struct tensor peer_keys;  /* (2 n_head n_keys rows, d_key / 2): row (2 h + half) n_keys + i */
    struct tensor peer_down;  /* (n_keys^2 rows, n_embd) expert i's down vector u_i */
    struct tensor peer_up;    /* (n_keys^2 rows, n_embd) expert i's up vector v_i */
    struct tensor kan_base1, kan_spline1; /* (n_ff rows, n_embd), (n_ff, n_embd (G + k)) */
    struct tensor kan_base2, kan_spline2; /* (n_embd rows, n_ff), (n_embd, n_ff (G + k)) */
};

enum norm_kind { NORM_RMS, NORM_LAYER };
enum pos_kind { POS_ROPE, POS_LEARNED, POS_ALIBI, POS_SINUSOID, POS_NONE };
enum ffn_act { ACT_SILU, ACT_GELU, ACT_RELU };
enum rope_scaling { ROPE_SCALING_NONE, ROPE_SCALING_LINEAR, ROPE_SCALING_YARN };

struct hparams {
    int n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_rot, n_ctx_train;
    int rope_neox;
    float rope_freq_base;
    int n_swa;           /* sliding-window length, 0: every layer sees all */
    int swa_dense_every; /* with n_swa: layers l with l % k == k - 1 see all;
                            0: every layer is windowed */
    float norm_eps;
    /* --- beyond Llama (arch.c fills these from the file's keys) --- */
    int n_ff_dense;  /* width of a dense FFN (n_ff is the widest FFN, for scratch) */
    int n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
    int rope_scaling;      /* enum rope_scaling */
    float rope_freq_scale; /* 1 / scaling factor (linear and YaRN) */
    int n_ctx_orig;        /* YaRN: the context length trained before extension */
    float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    float alibi_max_bias; /* ALiBi models: slopes 2^(-max_bias * i / n) */
    float clamp_kqv;      /* > 0: q, k, v clamped to [-clamp, clamp] (MPT) */
    float attn_softcap, final_softcap; /* > 0: tanh soft-capping (Gemma-2) */
    int post_norm;  /* 1: x = norm(x + f(x)) (original transformer) */
    int sinusoidal; /* 1: sinusoidal absolute positions added to the embeddings */
    /* --- deepseek2 (arch_deepseek2.c). With mla, the cache holds per token
     * and layer one "key" of head_dim = n_lora_kv + n_rot values (the normed
     * latent, then the rotary key shared by all heads); the values are its
     * first n_lora_kv (n_head_kv is 1). --- */
    int mla;
    int n_lora_q, n_lora_kv;         /* query latent (0: plain wq), key-value latent */
    int head_k_mla, head_v_mla;      /* per head: key (no-rope + rope part), value */
    int n_layer_dense_lead;          /* first blocks with a dense FFN */
    int n_expert_shared;             /* shared experts (one FFN n_ff_exp * this wide) */
    int n_expert_groups, n_group_used; /* group-limited routing (0: none) */
    int moe_ds;                      /* DeepSeekMoE routing (runtime/moe_route.c): */
    int moe_gating;                  /*   enum moe_gating */
    int moe_norm_w;                  /*   chosen weights renormalised to sum 1 */
    float moe_w_scale;               /*   then times this (0 or 1: none) */
    int mla_legacy;                  /* the file has one attn_kv_b per block (arch_deepseek2.c) */
    float yarn_log_mul;              /* YaRN: rope.scaling.yarn_log_multiplier as stored
                                        (0.1 mscale_all_dim; 0: none), see mla.c */
    /* --- mamba (arch_mamba.c): blocks are selective state-space models with
     * a recurrent state per sequence (runtime/ssm.c) and no attention or FFN;
     * n_head, head_dim and n_rot are placeholders (1, 2, 2). --- */
    int ssm;
    int ssm_d_conv, ssm_d_inner, ssm_d_state, ssm_dt_rank;
    /* --- retnet (arch_retnet.c): attention is multi-scale retention (runtime/
     * retention.c) with a d_k x d_v state per head and sequence, kept by
     * ssm.c (ssm is 1, d_inner = n_head * head_dim, d_state = ret_dv);
     * head h decays by 1 - 2^-(ret_decay_first + h * ret_decay_step). --- */
    int retnet;
    int ret_dv;
    float ret_decay_first, ret_decay_step;
    /* --- yoco (arch_yoco.c): blocks [0, yoco_n_self) are a self-decoder of
     * gated retention (decay sigmoid(W_decay x)^(1/ret_gate_tau) per head
     * and token; state as retnet's, ssm is 1), then the shared keys and
     * values are projected once from its output into the KV cache's only
     * layer, which every cross-decoder block [yoco_n_self, n_layer) attends
     * to with its own queries. --- */
    int yoco;
    int yoco_n_self;
    float ret_gate_tau;
    /* --- strix's feed-forward variants (arch_ffn.c; runtime/ffn_var.h): the
     * MLP of a llama block replaced by a PEER layer or two KAN layers --- */
    int ffn_kind;                 /* enum ffn_kind */
    int peer_n_head, peer_n_keys; /* heads; sub-keys per half (n_keys^2 experts) */
    int peer_top_k, peer_d_key;   /* experts per head; query size (even) */
    int peer_sigmoid;             /* expert weights by sigmoid, else softmax over the top k */
    int kan_grid, kan_order;      /* B-spline intervals G and order k (G + k bases per input) */
    float kan_range;              /* the grid spans [-range, range] */
};

enum ffn_kind { FFN_MLP, FFN_PEER, FFN_KAN };

enum moe_gating { MOE_GATING_SOFTMAX, MOE_GATING_SIGMOID };

struct arch;

/* Room for every tensor kind of arch.h (enum tkind; checked there). */
#define MODEL_MAX_KINDS 128

struct strix_model {
    char arch[32];
    const struct arch *ad; /* the architecture's description (arch.c) */
    char *name;
    struct hparams hp;
    int vocab_only;
    int tied_output;
    uint8_t opt_present[MODEL_MAX_KINDS]; /* 1: the optional tensor kind (enum tkind) is present */
    struct vocab *vocab;       /* NULL when the model has none */
    int vocab_borrowed;        /* vocab belongs to another model (a quantized copy) */
    struct tensor tok_embd;    /* (n_vocab rows, n_embd) */
    struct tensor pos_embd;    /* (n_ctx_train rows, n_embd) learned positions */
    struct tensor tok_norm, tok_norm_b;       /* (n_embd) norm of the embeddings (Bloom) */
    struct tensor output_norm, output_norm_b; /* (n_embd) */
    struct tensor output;      /* (n_vocab rows, n_embd); == tok_embd when tied */
    struct layer *layers;      /* n_layer */
    struct slot *slots;        /* n_all: every weight's name, shape and struct */
    struct tensor **all;       /* every weight in file order of the slots (see model.c) */
    int n_all;
    int n_slots_global, n_slots_layer; /* slots: model-wide, then per block (the most) */
    int *slot_first;           /* (n_layer + 1) index of each block's first slot */
    struct util_map map; /* the file, when its bytes are used in place */
    void *owned;         /* weights converted at load (llama2.c int8 etc.) */
    struct gguf *gguf;   /* parsed header of a GGUF file, else NULL */
    /* the blocks this model runs (a pipeline stage; all by default, set by
     * model_init_tables and strix_model_load) */
    int layer_first, layer_end;
};

/* Whether weight slot i is read by the model's stage (its blocks; the
 * embeddings on the first stage, the final norm and output on the last). */
int model_weight_in_stage(const strix_model *m, int i);

const struct vocab *model_vocab(const strix_model *m);

/* The attention window of layer l: 0 for full attention. */
static inline int hp_layer_window(const struct hparams *hp, int l)
{
    if (hp->n_swa <= 0)
        return 0;
    if (hp->swa_dense_every > 0 && l % hp->swa_dense_every == hp->swa_dense_every - 1)
        return 0;
    return hp->n_swa;
}

/*
 * The weight slots of the architecture, in GGUF naming order: slot i has a
 * name ("blk.3.attn_q.weight"), the tensor struct it fills and the shape it
 * must have. Slots are 0 .. m->n_all - 1; the output slot exists only
 * when the output is not tied to the embeddings.
 */
struct slot {
    char name[64];
    struct tensor *t;
    int n_dims;
    int64_t ne[3]; /* ne[2] = 1 except for stacked expert weights */
};
void model_slot(strix_model *m, int i, struct slot *s);

/* Checks hyperparameters, allocates m->layers and m->all. */
int model_init_tables(strix_model *m, strix_error *err);
/* Points t at data of `type` and shape ne (which must match the slot), after
 * checking that strix can compute with the type. */
int model_set_tensor(const struct slot *s, uint32_t type, const int64_t *ne, int n_dims,
                     const void *data, size_t nbytes, strix_error *err);

/* Saving: convert re-encodes weight t for the file: it sets *out to a new
 * buffer (util_malloc'd, freed by the caller) or NULL to keep t's bytes, and
 * *type and *nbytes to what is written. model_save_gguf writes m with
 * general.file_type ftype (llama.cpp's numbering) through convert, keeping
 * every other key of the source GGUF as it was; it refuses a path that is
 * the model's own file. */
typedef int (*model_convert_fn)(void *user, const struct tensor *t, void **out, uint32_t *type,
                                size_t *nbytes, strix_error *err);
int model_save_gguf(const strix_model *m, const char *path, uint32_t ftype,
                    model_convert_fn convert, void *user, strix_error *err);

/* Repacks the weights the active instruction set has a faster layout for
 * (pack.c); on failure (out of memory) the model simply runs unpacked. */
void model_pack(strix_model *m);
void model_unpack(strix_model *m);

/* Loads the model whose file bytes are in m->map (GGUF or llama2.c), into a
 * zeroed model. On failure the caller frees m. Fuzzers call it on raw bytes. */
int model_load_map(strix_model *m, const struct strix_model_params *params, strix_error *err);

/* A llama2.c checkpoint in m->map (legacy, v1 or v2; format/l2c.c parses
 * it) with the tokenizer.bin at vocab_path (NULL: none). On failure the
 * caller frees m. */
int model_load_l2c(strix_model *m, const char *vocab_path, strix_error *err);

/* Blocks replaced by linear maps (linear.c): 1 if name is one of their
 * tensors; linear_load fills layers[l].linear from a GGUF file. */
int linear_is_name(const char *name, size_t len);
struct gguf;
int linear_load(strix_model *m, const struct gguf *g, strix_error *err);

#endif
