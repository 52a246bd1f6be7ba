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
};
int strix_synth_params_init(struct strix_synth_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(synth)
int strix_model_synth(const struct strix_synth_params *params, const char *vocab_path,
                      strix_model **out, strix_error *err);

#ifdef __cplusplus
}
#endif
#endif /* STRIX_DEV_H */
