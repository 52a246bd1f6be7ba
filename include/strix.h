/*
 * strix.h - the one public header of the strix inference engine.
 *
 * strix runs decoder-only transformer language models on the CPU.  The API
 * has three opaque handles:
 *
 *   strix_model    weights, hyperparameters and vocabulary (read-only after
 *                  load; may be shared by several contexts and threads)
 *   strix_context  a KV cache of n_ctx positions, scratch buffers, logits and a
 *                  thread pool; one context is used by one thread at a time
 *   strix_sampler  a chain of sampling steps with its own seeded generator
 *
 * Errors: every fallible call returns an int status (STRIX_OK == 0 on
 * success) and, when the caller passes a non-NULL strix_error, fills it with
 * a readable message.  The library never exits or aborts because of input.
 *
 * Ownership: each *_load / *_create has a *_free that accepts NULL.  Strings
 * and arrays returned by the library are borrowed and live as long as the
 * handle they came from, unless the comment says otherwise.
 *
 * Parameter structs and ABI: the shared library's soname is libstrix.so.0.
 * Every parameter struct (struct strix_*_params) begins with
 * `size_t struct_size`, which strix_*_default_params() (an inline wrapper
 * compiled into the caller) sets to the caller's sizeof. The library reads
 * only that many bytes and takes its own defaults for fields the caller's
 * header did not have; bytes past the fields it knows must be zero
 * (otherwise STRIX_ERR_UNSUPPORTED: the caller was built against a newer
 * strix). So start from the defaults and change fields; a struct_size of 0
 * is STRIX_ERR_ARG. New fields are only appended, and no struct ends in
 * padding, so an older caller's struct_size always ends at a field
 * boundary.
 *
 * Result structs: a struct the library fills through a pointer
 * (strix_model_info, strix_tensor_info, strix_gen_result, strix_beam_result,
 * strix_ppl_result) also begins with `size_t struct_size`, which the caller
 * sets to its sizeof before the call:
 *     struct strix_ppl_result r = {.struct_size = sizeof r};
 * The library writes only the caller's struct_size bytes (its own fields
 * that fit, never struct_size itself), so an older caller's smaller struct is
 * never written past; a newer caller's fields the library lacks keep what
 * the caller put there (zero, when initialized as above). A struct_size
 * below the struct's size in strix 0.1.0 (where struct_size came in: 0
 * means it was not set) or more than 4096 bytes past the library's is
 * STRIX_ERR_ARG before anything runs. Tail padding does not matter here: it lies inside the
 * caller's own struct. Structs passed in arrays (strix_token_prob,
 * strix_beam_hyp, strix_logit_bias, strix_chat_msg) and strix_batch and
 * strix_error do not grow: new data gets a new array, field or call.
 * strix_layer_obs is the library's memory, read by a hook: fields are only
 * appended, so a hook reads the ones it knows.
 *
 * NULL handles: a call given a NULL model, context, sampler or pool (or a
 * NULL required pointer) does nothing and returns STRIX_ERR_ARG, with a
 * message when it takes a strix_error; a getter returns its "none" value
 * (0 for counts and sizes, -1 for token ids and positions, NULL for
 * pointers, NaN for strix_sampler_uniform); a void call does nothing.
 *
 * Entry points for tests and benchmarks live in strix_dev.h.
 */
#ifndef STRIX_H
#define STRIX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRIX_VERSION "0.1.0"

typedef int32_t strix_token;

typedef struct strix_model strix_model;
typedef struct strix_context strix_context;
typedef struct strix_sampler strix_sampler;

/* ---- status codes and errors ------------------------------------------ */

enum strix_status {
    STRIX_OK = 0,
    STRIX_ERR_IO = 1,          /* a file could not be opened, read or written */
    STRIX_ERR_FORMAT = 2,      /* malformed or inconsistent file contents */
    STRIX_ERR_UNSUPPORTED = 3, /* well-formed, but a feature strix lacks */
    STRIX_ERR_NOMEM = 4,       /* an allocation failed */
    STRIX_ERR_ARG = 5,         /* an argument is out of range or inconsistent */
    STRIX_ERR_FULL = 6,        /* the KV cache has no room (or a sequence reached
                                  n_ctx): wait, free or evict, then retry */
};

typedef struct strix_error {
    int code;      /* one of enum strix_status */
    char msg[512]; /* NUL-terminated, empty when code == STRIX_OK */
} strix_error;

/* A short constant name for a status code ("format error", ...). */
const char *strix_status_name(int code);

/* ---- model ------------------------------------------------------------- */

/* The defaults of parameter struct `name` for the caller's version of it
 * (see "Parameter structs and ABI" above). */
#define STRIX_DEFAULT_PARAMS_(name)                                                                \
    static inline struct strix_##name##_params strix_##name##_default_params(void)                 \
    {                                                                                              \
        struct strix_##name##_params p_;                                                           \
        strix_##name##_params_init(&p_, sizeof p_);                                                \
        return p_;                                                                                 \
    }

struct strix_model_params {
    size_t struct_size; /* sizeof, set by strix_model_default_params() */
    /* llama2.c checkpoints: path of the tokenizer.bin that goes with the
     * checkpoint (NULL: none; the model then cannot tokenize). Ignored for
     * GGUF files, which carry their vocabulary. */
    const char *vocab_path;
    /* Load only the vocabulary (GGUF): tensors are not required. */
    int vocab_only;
    /* A pipeline stage: only blocks [layer_first, layer_end) are used (0, 0:
     * all). The stage's weights alone are read and repacked (plus the
     * embeddings on the first stage, the final norm and output projection on
     * the last), its contexts hold only those blocks' KV cache, and it is
     * decoded with strix_decode_hidden. Every tensor of the file is still
     * checked. Out of range: STRIX_ERR_ARG. */
    int layer_first;
    int layer_end;
    int reserved_; /* zero; keeps the struct free of tail padding */
};
/* Fills *p (struct_size bytes) with the defaults; STRIX_ERR_ARG if p is NULL
 * or struct_size too small. Callers use strix_model_default_params(). */
int strix_model_params_init(struct strix_model_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(model)

/* Loads a GGUF file (detected by its magic) or a llama2.c checkpoint. */
int strix_model_load(const char *path, const struct strix_model_params *params, strix_model **out,
                     strix_error *err);
void strix_model_free(strix_model *model);

/* Writes the model (weights, vocabulary, hyperparameters) as a GGUF v3 file
 * that llama.cpp reads, with the model's architecture name, keys and tensor
 * names (llama2.c checkpoints are "llama" models). weight_type NULL keeps
 * each weight's type; "F32", "F16", "BF16", "Q8_0" or "Q4_0" re-encodes the
 * 2-D weights (a weight whose rows do not fill whole blocks keeps its type;
 * norms stay F32). */
int strix_model_save_gguf(const strix_model *model, const char *path, const char *weight_type,
                          strix_error *err);

/*
 * Quantization: writes the model as a GGUF file with its weights re-encoded.
 * type is one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
 * Q6_K, or the mixes Q4_K_M and Q5_K_M (llama.cpp's rule: Q6_K for the
 * output projection and for attn_v and ffn_down in the first and last eighth
 * of the layers and every third layer between; Q4_K or Q5_K elsewhere).
 * Unless params->pure, the output projection (or tied embeddings) of a type
 * below 6 bits is written as Q6_K, as llama.cpp does. 1-D norms stay F32. A
 * weight whose rows do not fill whole blocks falls back: a k-quant to Q5_0
 * (Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K) when rows are a multiple of 32, else
 * F32 (so models with odd widths, like a 172-wide FFN, still quantize).
 */
struct strix_quantize_params {
    size_t struct_size; /* sizeof, set by strix_quantize_default_params() */
    int n_threads;      /* 0 = number of online CPUs */
    int pure;      /* 1: every 2-D weight of the one type (fallbacks aside) */
    /* Called with one line per class of tensor and type chosen ("ffn_down
     * 3 x Q6_K, 2 x Q4_K"), before the file is written; may be NULL. */
    void (*log)(void *user, const char *line);
    void *log_user;
};
int strix_quantize_params_init(struct strix_quantize_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(quantize)
int strix_model_quantize(const strix_model *model, const char *path, const char *type,
                         const struct strix_quantize_params *params, strix_error *err);
/* The same conversion into memory: *out is a new model whose weights are
 * model's, re-encoded to `type` by the same rule (params->log is not used).
 * It shares with model only what it reads and never writes: the vocabulary
 * and the weights that keep their type (norms, or weights already of the
 * type), so model must outlive the copy; free the copy with
 * strix_model_free. The use: a cheaper copy of a target as its own draft
 * (speculative decoding). */
int strix_model_quantize_copy(const strix_model *model, const char *type,
                              const struct strix_quantize_params *params, strix_model **out,
                              strix_error *err);

/* The architectures strix runs (general.architecture values), separated by
 * spaces. */
const char *strix_archs(void);

struct strix_model_info {
    size_t struct_size; /* sizeof, set by the caller (see "Result structs") */
    const char *arch; /* "llama" (borrowed) */
    const char *name; /* general.name or "" (borrowed) */
    int n_vocab;
    int n_embd; /* model width */
    int n_ff;   /* FFN hidden width */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_rot;       /* rotary dimensions per head */
    int n_ctx_train; /* trained context length */
    int rope_neox;   /* 1: NeoX pair layout (i, i + n_rot/2); 0: interleaved (2i, 2i+1) */
    float rope_freq_base;
    float norm_eps;
    int tied_output; /* output projection shares token embeddings */
    int vocab_only;
    int64_t n_params;
    size_t weight_bytes;
    /* cache cost of one token over all layers with F32 entries (keys and
     * values; for MLA the latent and the rotary key), and what it would be
     * with a key and a value per query head (MHA) */
    size_t cache_token_bytes, cache_token_bytes_mha;
    /* the blocks this model holds (strix_model_params.layer_first/end) and the
     * bytes of the weights its stage reads */
    size_t stage_weight_bytes;
    int layer_first, layer_end;
    /* recurrent models (mamba): the state one sequence holds after one
     * position, over all layers (F32); 0 for the others */
    size_t state_seq_bytes;
};
/* STRIX_ERR_ARG for a bad info; for a NULL model too, with info all zero. */
int strix_model_get_info(const strix_model *model, struct strix_model_info *info);

/* Tensors, for `strix info`. Returns 0 and fills the fields for i in range;
 * STRIX_ERR_ARG otherwise. */
struct strix_tensor_info {
    size_t struct_size; /* sizeof, set by the caller (see "Result structs") */
    const char *name; /* borrowed */
    const char *type; /* "F32", "Q8_0", ... */
    int n_dims;
    int64_t ne[4]; /* ne[0] is the contiguous (row) dimension */
    size_t nbytes;
};
int strix_model_n_tensors(const strix_model *model);
int strix_model_tensor_info(const strix_model *model, int i, struct strix_tensor_info *info);

/* ---- vocabulary and tokenizer ---------------------------------------------- */

enum strix_token_attr {
    STRIX_TOKEN_NORMAL = 1,
    STRIX_TOKEN_UNKNOWN = 2,
    STRIX_TOKEN_CONTROL = 3,
    STRIX_TOKEN_USER_DEFINED = 4,
    STRIX_TOKEN_UNUSED = 5,
    STRIX_TOKEN_BYTE = 6,
};

int strix_vocab_size(const strix_model *model);
strix_token strix_token_bos(const strix_model *model); /* -1 if none */
strix_token strix_token_eos(const strix_model *model); /* -1 if none */
/* The stored piece of a token (as the vocabulary stores it: spaces as U+2581
 * for llama, GPT-2's byte mapping for gpt2); NULL if out of range. */
const char *strix_token_piece(const strix_model *model, strix_token id);
/* enum strix_token_attr; 0 for an id out of range. */
int strix_token_type(const strix_model *model, strix_token id);

/* The tokenizer: "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE), as
 * tokenizer.ggml.model names it; NULL without a vocabulary. */
const char *strix_vocab_model(const strix_model *model);
/* A gpt2 tokenizer's pre-tokenizer (tokenizer.ggml.pre, "default" if absent);
 * "" for llama; NULL without a vocabulary. */
const char *strix_vocab_pre(const strix_model *model);
/* 1 if the vocabulary asks for a BOS token before a prompt
 * (tokenizer.ggml.add_bos_token; by default llama yes, gpt2 no). */
int strix_vocab_add_bos(const strix_model *model);
/* A line naming the tokenizers and pre-tokenizers strix supports. */
const char *strix_tokenizers_supported(void);

/*
 * Tokenizes n_text bytes of text. add_bos: prepend the BOS token.
 * On success returns STRIX_OK and sets *n_out to the number of tokens; if
 * that exceeds cap, nothing beyond cap is written and STRIX_ERR_ARG is
 * returned with *n_out holding the number needed.
 */
int strix_tokenize(const strix_model *model, const char *text, size_t n_text, int add_bos,
                   strix_token *out, int cap, int *n_out, strix_error *err);

enum strix_tokenize_flags {
    STRIX_TOKENIZE_ADD_BOS = 1,       /* prepend the BOS token */
    /* Text that spells a control token ("<s>", "<|im_start|>", ...) becomes
     * that token, as llama.cpp's parse_special. Without it only user-defined
     * tokens are split out of the text; control tokens' text is plain text. */
    STRIX_TOKENIZE_PARSE_SPECIAL = 2,
};
/* strix_tokenize with flags (STRIX_TOKENIZE_*; others are STRIX_ERR_ARG). */
int strix_tokenize_ex(const strix_model *model, const char *text, size_t n_text, int flags,
                      strix_token *out, int cap, int *n_out, strix_error *err);

/*
 * The text of one token as it appears in generated output, given the token
 * before it (-1 at the start): leading-space handling follows SentencePiece.
 * Byte tokens give their raw byte. Writes up to cap bytes (no NUL) and returns
 * the number of bytes of the piece (which may exceed cap), or -1 for an id out
 * of range. Control tokens give "".
 */
int strix_token_to_text(const strix_model *model, strix_token prev, strix_token id, char *buf,
                        int cap);

/*
 * Detokenizes a whole sequence into buf (NUL-terminated if cap > 0). Byte
 * tokens are merged into UTF-8; invalid sequences become U+FFFD. Returns the
 * length the full text needs (excluding NUL), or -1 on an id out of range.
 */
int strix_detokenize(const strix_model *model, const strix_token *ids, int n, char *buf,
                     size_t cap);

/* ---- context: KV cache and decoding ----------------------------------------- */

/*
 * A thread pool that several contexts can share (a target and its draft,
 * the slots of a server), instead of each starting its own threads. The
 * calling thread is the pool's thread 0 during a decode; the others wait for
 * work (a short bounded spin, then a condition variable), so an idle pool
 * takes no CPU. Contexts sharing a pool may decode from different threads at
 * the same time: the pool runs one job (one matrix product, one attention
 * pass) at a time under a lock, so their decodes interleave and each is
 * computed exactly as it would be alone. A pool must outlive the contexts
 * that use it.
 */
typedef struct strix_pool strix_pool;
/* n_threads 0: the number of online CPUs (at most 64); at most 1024. */
int strix_pool_create(int n_threads, strix_pool **out, strix_error *err);
void strix_pool_free(strix_pool *pool);
int strix_pool_n_threads(const strix_pool *pool);

/*
 * Observation of the forward pass: block `layer` of a decode, for n_tokens
 * consecutive tokens of the caller's batch starting at index i_first (a
 * batch larger than n_batch is seen in chunks). in and out are (n_tokens,
 * n_embd) row-major: the residual stream before and after the block, so
 * one block's out is the next block's in, and the last block's out goes
 * through the final norm and the output projection to the logits. Borrowed
 * for the call only. Fields may be added at the end.
 */
struct strix_layer_obs {
    int layer;
    int n_tokens;
    int i_first;
    int n_embd;
    const int32_t *pos; /* (n_tokens) positions */
    const int32_t *seq; /* (n_tokens) sequence ids */
    const float *in;    /* (n_tokens, n_embd) */
    const float *out;   /* (n_tokens, n_embd) */
};
/* Called on the decoding thread after each block; it must not call back
 * into the context. Observing changes no result: logits are the same with
 * and without a hook. */
typedef void (*strix_layer_hook)(void *user, const struct strix_layer_obs *obs);

struct strix_context_params {
    size_t struct_size; /* sizeof, set by strix_context_default_params() */
    int n_ctx;          /* KV cache positions per sequence; 0 = the trained length, as far
                           as the n_seq_max sequences' keys and values fit in 1 GiB (at
                           least 4096 positions) */
    int n_batch;        /* tokens per forward pass (larger batches are split); 0 = 512 */
    int n_threads;      /* 0 = number of online CPUs; ignored with a pool */
    int n_seq_max;      /* sequences the cache can hold at once (beams, parallel
                           requests); 0 = 1, at most STRIX_SEQ_MAX */
    int n_cells;        /* cache cells (per layer) for all sequences together; 0: enough
                           for n_seq_max full sequences. Fewer lets a server hold many
                           short requests; a decode that does not fit is STRIX_ERR_FULL */
    strix_pool *pool;   /* a shared pool (borrowed); NULL: the context starts its own */
    strix_layer_hook on_layer; /* NULL: no observation */
    void *on_layer_user;
    /* 1: each layer's keys and values take memory only for the entries the
     * layer holds, growing as it needs (dynamic depth: a token that skips a
     * layer stores nothing there); a decode may then fail with
     * STRIX_ERR_NOMEM. 0: the whole cache is allocated at creation. */
    int kv_grow;
    int reserved_; /* zero */
    /* Observation of every matrix product: called with the weight's GGUF
     * name and its input x (n_tokens, n_cols) row-major (borrowed for the
     * call), before the product; changes no result. NULL: none. */
    void (*on_matmul)(void *user, const char *weight, const float *x, int n_tokens, int n_cols);
    void *on_matmul_user;
    int n_state_keep;   /* recurrent models (mamba): positions whose state each sequence
                           keeps, so it can roll back n_state_keep - 1 tokens (and always
                           to empty); 0 = 16, 1 = no rollback, at most 4096 */
    /* Element types of the cached keys and of the cached values, each an
     * enum strix_cache_type (0 = F32). F16 halves the cache, Q8_0 (34 bytes
     * per 32 values) takes 27% of F32, Q4_0 (18 bytes per 32) 14%; attention
     * reads them as stored. The quantized types need a head size that is a
     * multiple of 32; MLA and recurrent (mamba) models take F32 only. Either
     * refusal is STRIX_ERR_UNSUPPORTED from strix_context_create. */
    int type_k;
    int type_v;
    int reserved_state_; /* zero; keeps the struct free of tail padding */
};
#define STRIX_SEQ_MAX 64
/* KV cache element types, numbered as GGUF numbers tensor types. */
enum strix_cache_type {
    STRIX_CACHE_F32 = 0,
    STRIX_CACHE_F16 = 1,
    STRIX_CACHE_Q4_0 = 2,
    STRIX_CACHE_Q8_0 = 8,
};
/* The cache type of a name as llama.cpp spells them ("f32", "f16", "q8_0",
 * "q4_0"; case-insensitive), or -1 if it is not one. */
int strix_cache_type_from_name(const char *name);
/* The name of a cache type ("f32", ...), or NULL if it is not one. */
const char *strix_cache_type_name(int type);
int strix_context_params_init(struct strix_context_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(context)

int strix_context_create(const strix_model *model, const struct strix_context_params *params,
                         strix_context **out, strix_error *err);
void strix_context_free(strix_context *ctx);
int strix_context_n_ctx(const strix_context *ctx);
int strix_context_n_seq_max(const strix_context *ctx);
/* Skips blocks layers[0..n) in every later decode of ctx: a skipped block
 * leaves the residual stream as it is and writes no keys or values (n = 0:
 * none skipped). Clears the cache, whose entries the old set made.
 * STRIX_ERR_ARG names a layer the model does not have. (Self-speculative
 * decoding drafts with the target so thinned.) */
int strix_context_set_layer_skip(strix_context *ctx, const int *layers, int n, strix_error *err);

/* ---- dynamic depth (D-LLM): per-token layer skipping ------------------
 *
 * A router file (GGUF, general.architecture "router") holds one decision
 * module per layer: a two-layer MLP on the layer's input hidden state
 * (RMS-normalised) giving the logit s of "execute"; the token runs the layer
 * when sigmoid(s) >= 1 - keep (keep 0.5: s >= 0). It names the base model's
 * architecture, layer count, width and a fingerprint of its weights, and is
 * refused for another model. A token that skips layer l passes it on the
 * residual path and stores no key/value in layer l; later tokens attend in
 * layer l only to the tokens that ran it (positions are kept). `strix router
 * train` makes router files. */
typedef struct strix_router strix_router;
int strix_router_load(const char *path, const strix_model *model, strix_router **out,
                      strix_error *err);
void strix_router_free(strix_router *r);
/* The executed fraction the router was trained for (0 if unknown). */
float strix_router_keep(const strix_router *r);

struct strix_route_params {
    size_t struct_size;
    const strix_router *router; /* borrowed until the next set_route or the context's end */
    float keep;                 /* requested executed fraction. A router with a
                                   calibration table (trained by this version)
                                   executes when s >= the logit shift calibrated
                                   for keep (interpolated); an older router when
                                   p >= 1 - keep. 0: s >= 0, the trained keep */
    float random_keep;          /* no router: each (token, layer) runs with this probability;
                                   0: every pair runs */
    uint64_t seed;              /* of random_keep (a pure function of seed, sequence,
                                   position and layer, so batching changes nothing) */
    const uint8_t *skip_layers; /* (n_layer) 1: the layer is removed for every token;
                                   NULL: none; copied */
};
int strix_route_params_init(struct strix_route_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(route)
/* Sets the context's skipping (and turns on its accounting); params NULL:
 * accounting only, every layer runs. Takes effect from the next decode. */
int strix_context_set_route(strix_context *ctx, const struct strix_route_params *params,
                            strix_error *err);
/* Per-sequence static skipping: every later token of sequence seq_id skips
 * the blocks whose byte in mask (n_layer bytes, copied) is non-zero, running
 * nothing there and storing no keys/values there, while the context's other
 * sequences, in the same batches, run as before. mask NULL: none for seq_id.
 * Turns the route on (params NULL, as above) when none is set; combines with
 * the route's own skipping (a token runs a layer when both let it); the next
 * strix_context_set_route clears every sequence's mask. The sequence's
 * cached entries are kept: set the mask while it holds none (a fresh or
 * strix_kv_seq_rm'd sequence) to decode as a context whose route skips the
 * same layers. */
int strix_context_set_seq_layer_skip(strix_context *ctx, int seq_id, const uint8_t *mask,
                                     strix_error *err);

/* What the decodes since the route was set (or the stats reset) cost. */
struct strix_route_stats {
    size_t struct_size;      /* caller's sizeof */
    uint64_t n_tokens;       /* tokens decoded */
    uint64_t pairs;          /* (token, layer) pairs */
    uint64_t pairs_run;      /* of those, executed */
    double flops;            /* 2 x multiply-adds of the executed products and attention
                                (query . key and weights . values over the entries seen),
                                the decisions and the logits computed */
    uint64_t kv_bytes;       /* keys and values memory now held (allocator sizes) */
    uint64_t kv_bytes_peak;  /* highest kv_bytes seen */
    uint64_t kv_entries;     /* (token, layer) entries now held */
};
int strix_context_route_stats(const strix_context *ctx, struct strix_route_stats *out,
                              strix_error *err);
void strix_context_route_stats_reset(strix_context *ctx);
/* Entries held in layer `layer`'s cache (-1: bad arguments). */
int strix_kv_layer_entries(const strix_context *ctx, int layer);
/* Decisions of the last decode call: out[t * n_layer + l] = 1 if token t ran
 * layer l, for its first n tokens; returns the tokens written (0 without a
 * route). */
int strix_route_last(const strix_context *ctx, uint8_t *out, int n);

/* Training a router (the base model frozen, F32 Llama-shaped blocks; other
 * weight types are dequantized): windows of `window` tokens of the text,
 * each layer's decision relaxed by Gumbel-sigmoid with a straight-through
 * hard decision (skipped tokens store no keys/values in the window), loss =
 * language-modelling loss with skipping + penalty * (executed fraction -
 * keep)^2, gradients through the frozen blocks to the decision modules
 * (and through their inputs), Adam. Deterministic for a seed at any
 * thread count. */
struct strix_router_train_params {
    size_t struct_size;
    float keep;      /* target executed fraction, (0, 1]; default 0.6 */
    int epochs;      /* passes over the text; default 1 */
    float lr;        /* Adam step; default 1e-3 */
    int window;      /* tokens per window; default 128 (at most the context) */
    int n_hidden;    /* decision module width; default 16 */
    float tau;       /* Gumbel-sigmoid temperature; default 1 */
    float penalty;   /* weight of the executed-fraction penalty; default 20 */
    int n_threads;   /* default 1 */
    int reserved_;   /* zero */
    uint64_t seed;   /* initial weights and noise */
    /* called after each window (may be NULL): step of n_steps, the window's
     * LM loss and hard executed fraction; return non-zero to stop */
    int (*progress)(void *user, int step, int n_steps, double loss, double frac);
    void *user;
    /* warm start (NULL: random modules with every bias at the keep): (n_layer)
     * 1 = the layer removed, 0 = kept, as a static removal; each module
     * starts constant (+-4), so before training it reproduces that removal.
     * When more than keep of the layers are kept, the layers whose
     * removal costs least on the validation windows start half-executed
     * (modules random around 0): as many as bring the fraction, at half
     * each, to keep (at least one; two when exactly one layer more than
     * keep is kept). Copied. */
    const uint8_t *init_skip;
    /* windows at the end of the text held out of training (0: none): the
     * router is calibrated and its LM loss measured on them at the start
     * and every 1/8 of the run, and the best one is returned. Calibration:
     * one logit shift for all layers, so the noiseless executed fraction on
     * the calibration windows (these, or without them the first 16 training
     * windows) is keep. */
    int val_windows;
    /* called at each validation (may be NULL): the step (0: before
     * training), the calibrated router's mean LM loss and noiseless executed
     * fraction on the validation windows, whether it is the best so far */
    void (*on_val)(void *user, int step, double loss, double frac, int best);
    /* Low-rank adapters (LoRA) on the frozen weights, trained with the
     * modules, as D-LLM does (0: none): the rank of an adapter on each of
     * the seven projections of every block (q, k, v, o, gate, up, down),
     * 1 .. 64. An adapter adds B A x to W x; A starts random and B zero, so
     * training starts from the base model. Needs lora_out. */
    int lora_rank;
    /* 1: the decisions are init_skip's exactly (no noise, no half-executed
     * layers), or init_router's without noise, and the modules are not
     * trained, only the adapters: a static removal, or a trained router,
     * fine-tuned with its decisions as they will run. Needs lora_rank and
     * init_skip or init_router. */
    int freeze_router;
    /* With lora_rank: where the adapted model is written (a GGUF file of
     * the base model with each projection W + B A, in F32; a temporary file
     * renamed). The router returned is for that model. */
    const char *lora_out;
    /* Start from this router's modules (for the same model shape; its
     * width replaces n_hidden) instead of random or init_skip's. */
    const strix_router *init_router;
    float lora_lr; /* the adapters' Adam step (0: lr) */
};
int strix_router_train_params_init(struct strix_router_train_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(router_train)
int strix_router_train(const strix_model *model, const strix_token *tokens, int n_tokens,
                       const struct strix_router_train_params *params, strix_router **out,
                       strix_error *err);
/* Writes r as a router file (a temporary file renamed over path). */
int strix_router_save(const strix_router *r, const char *path, strix_error *err);

/* Mixture-of-Experts load: for block `layer`, the number of tokens routed to
 * each expert since the context was created (or reset), into counts[0..n).
 * Returns the model's expert count (0 for a dense model), -1 on bad
 * arguments. */
int strix_expert_load(const strix_context *ctx, int layer, uint64_t *counts, int n);
void strix_expert_load_reset(strix_context *ctx);

/*
 * Decodes n tokens of sequence 0 at positions pos[0..n) (pos may be NULL:
 * then the tokens follow the current cache length). Each position must be at
 * most the number of positions already in the cache, so the cache stays
 * contiguous; a position below it overwrites that entry and everything after
 * it is dropped. want_logits[i] != 0 keeps the logits of token i (NULL: only
 * the last). Any n >= 1 is accepted (see strix_decode_batch). Status:
 * STRIX_ERR_FULL when the tokens do not fit (positions past n_ctx or no free
 * cells), STRIX_ERR_ARG for bad input; after any failure the cache and the
 * last logits are as they were.
 */
int strix_decode(strix_context *ctx, const strix_token *tokens, const int32_t *pos, int n,
                 const int8_t *want_logits, strix_error *err);

/* Logits (n_vocab floats) of the i-th token of the last decode call (i < 0
 * counts from the end: -1 is the last token); NULL if they were not
 * requested. Borrowed until the next decode. */
const float *strix_get_logits(const strix_context *ctx, int i);

/* Number of positions held in the KV cache for sequence 0. */
int strix_kv_len(const strix_context *ctx);
/* Drops every sequence-0 cache entry at position >= p (roll back). */
int strix_kv_truncate(strix_context *ctx, int p, strix_error *err);
/* Rolls sequence seq back to its first n_keep positions: drops its entries
 * at positions >= n_keep (other sequences, shared entries included, keep
 * theirs). Then decode from position n_keep. */
int strix_kv_seq_truncate(strix_context *ctx, int seq, int n_keep, strix_error *err);
/* Cells of the cache (per layer) and how many are in use: a scheduler's
 * measure of room. A cell is shared by every sequence that sees it. */
int strix_kv_cells(const strix_context *ctx);
int strix_kv_cells_used(const strix_context *ctx);
/* What the context's cache takes, as it was allocated: *total bytes in all
 * (keys, values and cell bookkeeping of every layer, recurrent states);
 * *per_token the bytes one more cell costs over all layers (0 when the
 * model keeps no per-token cache); *per_seq the bytes of fixed-size state
 * each sequence holds (recurrent models; 0 otherwise). Any pointer may be
 * NULL. STRIX_ERR_ARG for a NULL context. */
int strix_context_cache_bytes(const strix_context *ctx, size_t *total, size_t *per_token,
                              size_t *per_seq);

/*
 * Several sequences in one cache. Each token of a batch carries a position
 * and a sequence id in [0, n_seq_max); it attends to the cache entries of its
 * own sequence at positions <= its own. Entries are shared, not copied, when
 * a sequence is forked with strix_kv_seq_cp, so beams and parallel requests
 * over one prompt store that prompt once. A token's position must be at most
 * one past the highest position its sequence holds, and the tokens of one
 * sequence are consecutive in position.
 *
 * A batch of any size is accepted: one larger than n_batch runs as several
 * forward passes of at most n_batch tokens, with the same logits as one pass
 * (every token's result is independent of the batch it is in). Keeping the
 * logits of more than n_batch tokens grows the logits buffer once. Before
 * anything changes, the call checks that every token fits: when the cache
 * lacks free cells, or a position would reach n_ctx, it returns
 * STRIX_ERR_FULL with the cache and the last logits untouched, so a
 * scheduler can wait or evict (strix_kv_seq_rm) and retry.
 */
typedef struct strix_batch {
    int n;
    const strix_token *token; /* n ids */
    const int32_t *pos;       /* n positions; NULL: each token follows its
                                 sequence's cache (and its earlier tokens) */
    const int32_t *seq;       /* n sequence ids; NULL: all 0 */
    const int8_t *logits;     /* n flags; NULL: only the last token's */
} strix_batch;
int strix_decode_batch(strix_context *ctx, const strix_batch *batch, strix_error *err);

/*
 * Pipeline stages: a model loaded with a layer range runs blocks
 * [layer_first, layer_end) of the whole model. strix_decode_hidden decodes a
 * batch as strix_decode_batch does, except at the two ends: in (n, n_embd)
 * row-major is the residual stream entering block layer_first (NULL: the
 * tokens' embeddings, only on a first stage; batch->token may then be NULL),
 * and out (n, n_embd), when not NULL, receives the residual stream leaving
 * block layer_end - 1 and no logits are computed (NULL: logits as
 * strix_decode_batch, only on a last stage). Positions and sequences are the
 * batch's, and the cache changes as strix_decode_batch changes it, so
 * stages fed the same batches in the same order hold the same positions.
 * Chaining the stages of a model gives logits bit-identical to the whole
 * model's. strix_decode_batch on a stage that is not both first and last is
 * STRIX_ERR_ARG.
 */
int strix_decode_hidden(strix_context *ctx, const strix_batch *batch, const float *in, float *out,
                        strix_error *err);

/*
 * Remote tail: a context over a first stage (layer_first 0, layer_end short
 * of the model's last block) whose later blocks and output projection run
 * elsewhere (other processes or machines; the program moves the data). With
 * a tail set, strix_decode_batch and strix_decode work on the context as on
 * a whole model, so a scheduler, beam search or speculative decoding runs
 * over it unchanged:
 * - each forward pass of at most n_batch tokens runs the local blocks, then
 *   calls `decode` with the residual stream leaving them and the chunk's
 *   tokens, positions, sequences and wanted rows; `decode` must have those
 *   rows' logits written to chunk->logits by the time the call for the
 *   batch's last chunk (chunk->last) returns. Earlier calls may return at
 *   once, so the local stage computes chunk k + 1 while the next stage
 *   computes chunk k. strix_get_logits then reads them as usual.
 * - every change to the cache beyond a decode's placement of its tokens is
 *   made locally, then handed to `cache_op` (may be NULL): strix_kv_seq_rm,
 *   strix_kv_seq_cp, strix_kv_seq_keep, strix_kv_seq_truncate and
 *   strix_kv_truncate (as a removal), and the removal a decode makes when
 *   a batch rewrites positions a sequence holds (before its first chunk).
 *   A remote stage that applies the operations and decodes each chunk
 *   (strix_decode_hidden, one call per chunk) in the order given holds the
 *   same cells, and the chain gives logits bit-identical to the whole
 *   model's. Its contexts need the same n_ctx, n_seq_max and n_cells and an
 *   n_batch at least this one's.
 * A failing callback's status is returned (by the decode, or by the cache
 * call, whose local change is made); the sequences concerned are then in
 * no defined state on either side (remove them). strix_context_set_layer_skip
 * is STRIX_ERR_UNSUPPORTED on a context with a tail.
 */
struct strix_tail_chunk {
    int n;                    /* tokens in the chunk */
    int first;                /* index of its first token in the batch */
    int last;                 /* 1: the batch's last chunk */
    int n_logits;             /* rows of the chunk whose logits are wanted */
    const strix_token *token; /* (n) */
    const int32_t *pos;       /* (n) positions, as placed */
    const int32_t *seq;       /* (n) sequence ids */
    const int8_t *want;       /* (n) 1: the row's logits are wanted */
    const float *hidden;      /* (n, n_embd) leaving the stage; borrowed for the call */
    float *logits;            /* (n_logits, n_vocab): the wanted rows' logits go here,
                                 in order; valid until the decode returns */
};
enum strix_cache_op_kind {
    STRIX_CACHE_OP_RM = 1,   /* strix_kv_seq_rm(seq, p0, p1) */
    STRIX_CACHE_OP_CP = 2,   /* strix_kv_seq_cp(seq, dst, p0, p1) */
    STRIX_CACHE_OP_KEEP = 3, /* strix_kv_seq_keep(seq) */
};
struct strix_cache_op {
    int kind; /* enum strix_cache_op_kind */
    int seq;  /* RM: the sequence (-1: every one); CP: the source; KEEP: the one kept */
    int dst;  /* CP: the destination */
    int p0, p1; /* RM and CP: positions [p0, p1), p1 < 0: to the end */
};
struct strix_tail_params {
    size_t struct_size; /* sizeof, set by strix_tail_default_params() */
    /* NULL: no tail (strix_context_set_tail removes one) */
    int (*decode)(void *user, const struct strix_tail_chunk *chunk, strix_error *err);
    int (*cache_op)(void *user, const struct strix_cache_op *op, strix_error *err);
    void *user;
};
int strix_tail_params_init(struct strix_tail_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(tail)
/* Sets ctx's remote tail (params->decode NULL: removes it). STRIX_ERR_ARG
 * unless ctx's model is a first stage that ends before the last block. */
int strix_context_set_tail(strix_context *ctx, const struct strix_tail_params *params,
                           strix_error *err);

/* Removes sequence seq's entries at positions [p0, p1) (p1 < 0: to the end;
 * seq < 0: every sequence). Entries no sequence uses are freed. These four
 * return STRIX_ERR_ARG (or -1 for pos_max) for a NULL context or a sequence
 * out of range. */
int strix_kv_seq_rm(strix_context *ctx, int seq, int p0, int p1);
/* Makes sequence dst share src's entries at positions [p0, p1) (p1 < 0: to
 * the end). No key or value data is copied. */
int strix_kv_seq_cp(strix_context *ctx, int src, int dst, int p0, int p1);
/* Removes every sequence but seq. */
int strix_kv_seq_keep(strix_context *ctx, int seq);
/* Highest position sequence seq holds, -1 if none. */
int strix_kv_seq_pos_max(const strix_context *ctx, int seq);

/* ---- sampling ------------------------------------------------------------------- */

/* Added to a token's logit before any stage (-INFINITY bans the token). */
struct strix_logit_bias {
    strix_token token;
    float bias;
};

/*
 * The chain: logit bias first, then the stages named in `order` (default
 * "penalties;top_k;typical_p;top_p;min_p;temperature", llama.cpp's order;
 * separators ';', ',' or ' '; a stage left out does not run), then a draw
 * from the softmax of what is left. temperature <= 0 takes the argmax after
 * the bias and penalties instead. mirostat 2 skips the truncation stages
 * (top-k, typical-p, top-p, min-p), keeps penalties and temperature, and
 * replaces the draw by mirostat v2.
 */
struct strix_sampler_params {
    size_t struct_size;   /* sizeof, set by strix_sampler_default_params() */
    float temperature;    /* <= 0: greedy (argmax); finite */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off; a positive logit is divided, a negative multiplied */
    int repeat_last_n;    /* tokens of history the penalties look at */
    uint64_t seed;
    float frequency_penalty; /* 0: off; subtracted once per occurrence in the window */
    float presence_penalty;  /* 0: off; subtracted once if the token is in the window */
    float typical_p;         /* >= 1: off; locally typical sampling */
    int mirostat;            /* 0: off, 2: mirostat v2 (version 1 is not implemented) */
    float mirostat_tau;      /* target surprise in bits (5) */
    float mirostat_eta;      /* learning rate (0.1) */
    const char *order;       /* stage order (see above); NULL: the default; copied */
    const struct strix_logit_bias *logit_bias; /* n_logit_bias entries; copied */
    int n_logit_bias;
    int n_probs; /* keep the log-probabilities of this many most likely tokens */
};
int strix_sampler_params_init(struct strix_sampler_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(sampler)

int strix_sampler_create(const struct strix_sampler_params *params, int n_vocab,
                         strix_sampler **out, strix_error *err);
void strix_sampler_free(strix_sampler *s);
/* Picks a token from n_vocab logits (not modified): the chain's distribution
 * (as strix_sampler_dist gives it), then one draw from it as
 * strix_sampler_sample_dist does, then mirostat's update. A NaN logit (after
 * the bias) removes its token unless every logit is NaN; tokens at an
 * infinite maximum share the draw. */
strix_token strix_sampler_sample(strix_sampler *s, const float *logits); /* -1: NULL */

/*
 * Distributions, for exact acceptance tests (speculative decoding):
 *
 * strix_sampler_dist writes to probs[0..n_vocab) the distribution the next
 * strix_sampler_sample would draw from for these logits: after logit bias,
 * penalties (the accepted history), truncation and temperature, normalized,
 * 0 for every removed token; one-hot on the argmax when temperature <= 0; with
 * mirostat, the truncation for the current mu. It changes no state (the
 * generator does not advance, mu and the history stay). n_vocab must be the
 * sampler's.
 *
 * strix_sampler_sample_dist draws *tok from weights probs[0..n) (finite,
 * >= 0, not all 0; normalized here, so a residual max(0, p - q) can be passed
 * as it is) with the sampler's generator: one uniform number walked over the
 * weights in token order, the same step strix_sampler_sample ends with. So
 * for two samplers created with the same seed and history, sample(logits) and
 * dist(logits) then sample_dist give the same token, and each later draw
 * stays in step. It neither records the token (call strix_sampler_accept) nor
 * moves mirostat's mu nor the log-probabilities of strix_sampler_last_probs.
 * Both return STRIX_OK or STRIX_ERR_ARG (state unchanged).
 */
int strix_sampler_dist(strix_sampler *s, const float *logits, int n_vocab, float *probs,
                       strix_error *err);
int strix_sampler_sample_dist(strix_sampler *s, const float *probs, int n, strix_token *tok,
                              strix_error *err);
/* Records a token in the history used by the penalties. */
void strix_sampler_accept(strix_sampler *s, strix_token tok);
/* Forgets the last n_tokens accepted tokens, as if they had never been
 * accepted (speculative decoding: drafted tokens the target rejected). Any
 * number since the reset can be taken back while the history has not
 * overflowed, and always up to STRIX_SAMPLER_REWIND_MAX; beyond that
 * STRIX_ERR_ARG and nothing changes. Mirostat's mu is not rewound. */
#define STRIX_SAMPLER_REWIND_MAX 256
int strix_sampler_rewind(strix_sampler *s, int n_tokens, strix_error *err);
/* A uniform number in [0, 1) from the sampler's generator (the acceptance
 * test of speculative decoding), so that one seed reproduces a whole run. */
float strix_sampler_uniform(strix_sampler *s);
/* Clears the history and mirostat's state and reseeds the generator. */
void strix_sampler_reset(strix_sampler *s, uint64_t seed);

/* A token and its natural-log probability. */
struct strix_token_prob {
    strix_token id;
    float logprob;
};
/* For the last strix_sampler_sample call: the chosen token's log-probability
 * and the min(cap, n_probs) most likely tokens, most likely first, under the
 * model's own distribution (log-softmax of the raw logits: before bias,
 * penalties and temperature). Returns the number written to top. Either
 * pointer may be NULL. */
int strix_sampler_last_probs(const strix_sampler *s, struct strix_token_prob *chosen,
                             struct strix_token_prob *top, int cap);

/* ---- generation ------------------------------------------------------------------ */

/*
 * Stop strings: the earliest complete occurrence of any of stops[0..n_stops)
 * in text[0..n), as a byte offset, or -1. *n_safe (may be NULL) gets the
 * number of leading bytes that can be shown: up to the match, or, with no
 * match, all but the longest tail that could still grow into a stop string.
 */
long strix_stop_find(const char *text, size_t n, const char *const *stops, int n_stops,
                     size_t *n_safe);

struct strix_gen_params {
    size_t struct_size;      /* sizeof, set by strix_gen_default_params() */
    const char *const *stop; /* n_stop stop strings (borrowed); the text ends before them */
    int n_stop;
    int n_predict;   /* token budget; < 0: until EOS, a stop string or a full context */
    int stop_at_bos; /* also end at BOS (the llama2.c story models separate stories so) */
    int seq;         /* the sequence to extend (0 .. n_seq_max - 1) */
};
int strix_gen_params_init(struct strix_gen_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(gen)

enum strix_stop_reason {
    STRIX_STOP_NONE = 0,
    STRIX_STOP_EOS = 1,     /* EOS (or BOS with stop_at_bos) was sampled */
    STRIX_STOP_STRING = 2,  /* a stop string was completed */
    STRIX_STOP_BUDGET = 3,  /* n_predict tokens */
    STRIX_STOP_CONTEXT = 4, /* the KV cache is full */
    STRIX_STOP_CALLER = 5,  /* the callback returned non-zero */
};

/* Called once per generated token with the text that became safe to show
 * (possibly none; never part of a stop string), and once more with tok -1 to
 * flush text held back at the end. Non-zero stops the generation. */
typedef int (*strix_gen_cb)(void *user, const char *text, size_t n, strix_token tok);

struct strix_gen_result {
    size_t struct_size; /* sizeof, set by the caller (see "Result structs") */
    int n_tokens;    /* tokens sampled, the one that ended it included */
    int stop_reason; /* enum strix_stop_reason */
};

/*
 * Generates on sequence params->seq from the logits of the last decoded
 * token, which must be that sequence's (decode the prompt with its last
 * token's logits first; accept the prompt into the sampler if the penalties
 * should see it). prev is the last prompt token (for the spacing of the
 * first piece). Each sampled token is accepted into the sampler and decoded
 * at the sequence's next position, except the one that ends the
 * generation, so the sequence then holds the prompt and the shown tokens;
 * other sequences are not touched. The generation ends with
 * STRIX_STOP_CONTEXT when the sequence reaches n_ctx or the shared cache is
 * full. The callback may call strix_sampler_last_probs.
 */
int strix_generate(const strix_model *model, strix_context *ctx, strix_sampler *smp,
                   strix_token prev, const struct strix_gen_params *params, strix_gen_cb cb,
                   void *user, struct strix_gen_result *res, strix_error *err);

/* ---- speculative decoding ------------------------------------------------------------ */

/*
 * A cheap draft proposes tokens, the target checks them all in one batched
 * decode, and the output follows the target's distribution exactly
 * (Leviathan et al., 2022). A draft source is a propose callback, so new
 * kinds (a quantized copy of the target, skipped layers) plug in beside the
 * two built here.
 *
 * propose(self, smp, hist, n_hist, p_min, tok, q, kind, err) proposes the
 * token after hist[0..n_hist) (the prompt, the accepted text and the tokens
 * drafted so far in this round). It sets *kind to
 *   STRIX_DRAFT_END      no proposal: the round's draft ends here;
 *   STRIX_DRAFT_SAMPLED  *tok was drawn from q[0..n_vocab), the draft's final
 *                        distribution after smp's stages (strix_sampler_dist
 *                        then strix_sampler_sample_dist on smp, whose history
 *                        holds hist's generated part);
 *   STRIX_DRAFT_FIXED    *tok was chosen without randomness (q is one-hot on
 *                        it and need not be written).
 * It must not accept tokens into smp (the caller does). p_min: a model draft
 * ends the round when its top probability (softmax of its raw logits) is
 * below p_min. Returns STRIX_OK or an error status.
 */
enum strix_draft_kind { STRIX_DRAFT_END = 0, STRIX_DRAFT_SAMPLED = 1, STRIX_DRAFT_FIXED = 2 };
typedef struct strix_draft {
    void *self;
    int (*propose)(void *self, strix_sampler *smp, const strix_token *hist, int n_hist,
                   float p_min, strix_token *tok, float *q, int *kind, strix_error *err);
    void (*free)(void *self); /* frees self; may be NULL */
} strix_draft;

/* A draft model with its own context (borrowed; it is cleared and used on
 * sequence 0). Its vocabulary must be the target's: the same size, special
 * tokens and pieces, or STRIX_ERR_ARG naming the first difference. */
int strix_draft_model_create(const strix_model *target, const strix_model *draft,
                             strix_context *draft_ctx, strix_draft **out, strix_error *err);
/* Prompt lookup: the continuation of the latest earlier occurrence of the
 * last n tokens (1 .. 16) of the text so far; no model. */
int strix_draft_ngram_create(int n, strix_draft **out, strix_error *err);
/* Self-speculation by skipped layers: the draft is strix_draft_model_create
 * (model, model, draft_ctx) with a layer mask on draft_ctx
 * (strix_context_set_layer_skip). This chooses the mask: on calibration text
 * calib[0..n_calib) it measures, for each layer alone, how much of the
 * acceptance rate (sum_v min(p, q) of smp's final distributions, averaged
 * over the positions; the argmax agreement when greedy) survives skipping
 * it; then, for the j least harmful together (j = 1 .. n_layer - 1), the
 * acceptance a_j and the cost ratio c_j (median timed one-token decode of
 * draft_ctx over the full model's), and keeps the j with the best speedup
 * Leviathan et al. predict, max over K <= k_max of (1 - a^(K+1)) / ((1 - a)
 * (c K + v_K)); none if no j beats 1. v_K, the verify of K + 1 tokens in
 * plain steps, is measured for K = k_max (when n_calib > k_max + 1; else
 * taken as 1) and interpolated linearly from 1 at K = 0. Writes the layers (at most n_layer) and
 * their count, the predicted speedup (may be NULL), and leaves draft_ctx
 * (another context of model) with that mask. smp's history is not changed. */
int strix_draft_skip_auto(const strix_model *model, strix_context *target_ctx,
                          strix_context *draft_ctx, strix_sampler *smp, const strix_token *calib,
                          int n_calib, int k_max, int *layers, int *n_layers, double *speedup,
                          strix_error *err);
/* Frees a draft made by the two above (NULL is fine). */
void strix_draft_free(strix_draft *d);

/*
 * Lossy ("relaxed") acceptance: each scheme has one knob, and knob 0 is the
 * exact test, draw for draw. At a position where relaxing is allowed, the
 * exact test runs first with the same uniform number u; when it rejects x,
 * the scheme may still accept it ("a relaxed acceptance"):
 *   LENIENT   (knob l in [0, 1)): accept when u (1 - l) q(x) < p(x), that is
 *             with probability min(1, p(x) / ((1 - l) q(x))); a rejection
 *             draws from max(0, p - (1 - l) q) (Leviathan et al.'s lenience);
 *   TOP_P     (knob t in [0, 1]): accept any x inside the target's nucleus,
 *             the likeliest tokens whose mass first reaches t (ties at the
 *             edge included); t = 0: the empty set;
 *   NEAR_MAX  (knob d in [0, 1)): accept x when p(x) >= (1 - d) max p; d = 0
 *             turns it off.
 * A relaxed acceptance needs p(x) > 0: every output token is one the
 * target's sampler stages allow. With greedy sampling (temperature <= 0) p is
 * one-hot, so nothing is relaxed and the output stays plain greedy.
 *
 * Error control (both optional, both may be combined):
 *   entropy_min  relax only where the target's entropy H(p) (nats) is at
 *                least this: at every other position the exact test and
 *                residual run, so there the token follows p exactly;
 *   budget       with budget_window W > 0: the cost of a relaxed acceptance
 *                is log(q(x) / p(x)) (> 0: the exact test rejected, so
 *                p(x) < q(x)); one is refused (the exact rejection stands)
 *                when it would make the summed cost of the relaxed
 *                acceptances among any W consecutive output tokens exceed
 *                budget_nats. So every window of W output tokens holds at
 *                most budget_nats of relaxation, and budget_nats = 0 is exact.
 * relaxed_cost (optional, cap floats) receives, per output token, the cost of
 * its relaxed acceptance or 0.
 */
enum strix_spec_lossy {
    STRIX_SPEC_EXACT = 0,
    STRIX_SPEC_LENIENT = 1,
    STRIX_SPEC_TOP_P = 2,
    STRIX_SPEC_NEAR_MAX = 3,
};
#define STRIX_SPEC_DRAFT_MAX 64
struct strix_spec_params {
    size_t struct_size; /* sizeof, set by strix_spec_default_params() */
    int n_draft_max;    /* K: most tokens drafted per round, 1 .. STRIX_SPEC_DRAFT_MAX (8) */
    float p_min;        /* end a round when the draft's top probability is below this (0) */
    int stop_at_bos;    /* BOS ends the generation as EOS does */
    /* --- lossy acceptance (see above) --- */
    int lossy;           /* enum strix_spec_lossy (EXACT) */
    float lossy_knob;    /* the scheme's knob (0: exact) */
    float entropy_min;   /* relax only where H(p) >= this, in nats (0: everywhere) */
    int budget_window;   /* W: window of the relaxation budget in output tokens (0: no budget) */
    float budget_nats;   /* most summed log(q/p) of relaxed acceptances per window */
    float *relaxed_cost; /* (cap) per output token: its relaxed acceptance's cost, or 0; NULL */
    /* --- adaptive K --- */
    int adaptive; /* 1: the round's draft length starts at K and follows the acceptance: +2
                     after a round that accepted every draft, -1 (down to 1) after one that
                     rejected, always within [1, K] */
};
int strix_spec_params_init(struct strix_spec_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(spec)

struct strix_spec_stats {
    size_t struct_size; /* set by the caller: sizeof (see "Result structs") */
    int n_tokens;    /* tokens written to out (the end token not included) */
    int stop_reason; /* enum strix_stop_reason: EOS, BUDGET or CONTEXT */
    int n_rounds;    /* batched target decodes that checked a draft (or none) */
    int n_drafted;   /* tokens proposed */
    int n_accepted;  /* of which accepted; mean accepted length = n_accepted / n_rounds */
    int n_relaxed;   /* of the accepted, relaxed acceptances (lossy modes) */
    double relaxed_nats; /* their summed cost log(q(x) / p(x)) */
    /* KL(P || p) summed over the output tokens (divide by n_tokens for the mean):
     * P the distribution the token was actually drawn from (the acceptance
     * test and residual, given the draft's q and the budget left), p the
     * target's; 0 in exact mode */
    double kl_sum;
    int k_last; /* the draft length the next round would use (adaptive K) */
    double nll_sum; /* -log p(x) summed over the output tokens, p the target's final
                       distribution (the perplexity of the text under the target:
                       exp(nll_sum / n_tokens) at temperature 1 without truncation) */
    double t_draft, t_verify; /* seconds in the draft's proposals; in the target's batched
                                 decodes (Leviathan's cost ratio c is about
                                 (t_draft / n_drafted) / (t_verify / n_rounds)) */
    double t_prompt; /* seconds prefilling the prompt in the target (and in a model draft's
                        context), before the first round; not in t_draft or t_verify */
};

/*
 * Generates up to cap tokens after prompt[0..n_prompt) (n_prompt >= 1) on
 * sequence 0 of the target context, which is cleared first. Each round
 * drafts up to K tokens, decodes the last token and the drafts in one batch
 * with the logits of all, and walks the drafts: x is accepted with
 * probability min(1, p(x) / q(x)), p and q the final distributions of smp's
 * stages (strix_sampler_dist) for the target's and the draft's logits under
 * the same history; the first rejection draws from the normalized residual
 * max(0, p - q) over the whole vocabulary, and when all are accepted a bonus
 * token is drawn from the target. With temperature <= 0, p and q are one-hot
 * and the output equals plain greedy decoding token for token. Accepted
 * tokens are accepted into smp (accept the prompt first if the penalties
 * should see it); rejected ones leave no trace in smp or in either cache.
 * Mirostat is not supported (its mu moves per sampled token).
 */
int strix_speculative_generate(const strix_model *model, strix_context *ctx, strix_sampler *smp,
                               strix_draft *draft, const strix_token *prompt, int n_prompt,
                               const struct strix_spec_params *params, strix_token *out,
                               int cap, struct strix_spec_stats *stats, strix_error *err);

/* ---- answer extraction (GSM8K-style evaluation) ----------------------------------- */

/*
 * The final numeric answer of a solution text[0..n): the number right after
 * the last "####" (spaces, '$' and '#' skipped), or, when there is none
 * there, the last number in the text. Numbers are digits with thousands
 * commas and one decimal point, optionally negative; they are written to out
 * normalised: commas dropped, leading zeros and trailing decimal zeros
 * removed ("1,000" -> "1000", "18.50" -> "18.5", "-0" -> "0"). Returns 1
 * when an answer was found (and fits in cap bytes), else 0 with out "".
 */
int strix_answer_extract(const char *text, size_t n, char *out, size_t cap);

/* ---- beam search --------------------------------------------------------------------- */

struct strix_beam_params {
    size_t struct_size;   /* sizeof, set by strix_beam_default_params() */
    int n_beams;          /* width W, 1 .. STRIX_SEQ_MAX / 2; the context needs n_seq_max >= 2W */
    int n_predict;        /* most new tokens per hypothesis */
    float length_penalty; /* score = log-probability / n^length_penalty (n: generated tokens,
                             the end token included); 0: total log-probability */
    int early_stopping;   /* stop as soon as W hypotheses have finished; otherwise (with
                             length_penalty <= 0) when no live beam can beat the W-th best */
    int n_best;           /* hypotheses returned */
    int stop_at_bos;      /* BOS ends a hypothesis too (the llama2.c story models) */
};
int strix_beam_params_init(struct strix_beam_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(beam)

struct strix_beam_hyp {
    strix_token *tokens; /* generated tokens (the end token not included); owned by the result */
    int n_tokens;
    double logprob; /* total natural-log probability, the end token's included */
    double score;
    int finished; /* 1: ended by EOS; 0: cut by n_predict or the context */
};
struct strix_beam_result {
    size_t struct_size;          /* sizeof, set by the caller (see "Result structs") */
    struct strix_beam_hyp *hyps; /* n, best score first, distinct */
    int n;
};

/*
 * Beam search after a prompt (BOS included if wanted). The prompt is decoded
 * once; beams share its cache entries and each other's common prefixes (see
 * strix_kv_seq_cp) and diverge without copying the cache. Clears the
 * context's cache before and after. Free the result with
 * strix_beam_result_free.
 */
int strix_beam_search(const strix_model *model, strix_context *ctx, const strix_token *prompt,
                      int n_prompt, const struct strix_beam_params *params,
                      struct strix_beam_result *out, strix_error *err);
void strix_beam_result_free(struct strix_beam_result *r);

/* ---- evaluation: perplexity and KL divergence ---------------------------------------- */

struct strix_ppl_params {
    size_t struct_size; /* sizeof, set by strix_ppl_default_params() */
    int n_ctx;  /* window in tokens; 0: the context's n_ctx */
    int stride; /* 0: llama.cpp's chunks (each window scores its second half);
                   > 0: sliding windows moved by stride tokens, every token scored */
    int n_batch; /* tokens per decode call (at most the context's); 0: 512 */
    const char *kl_save; /* write every scored token's log-probabilities here */
    const char *kl_base; /* compare with a saved base; its tokens, n_ctx and stride are used */
    void (*progress)(void *user, int done, int total); /* after each window; may be NULL */
    void *user;
    /* NULL: windows are decoded with the context. Else each window is
     * decoded by this call instead (a model split over processes, say), and
     * the context may be NULL (then n_ctx must be given): tokens[0..n) at
     * positions 0..n-1 from an empty cache, writing for each j with
     * want[j], in order, n_vocab logits as the next row of logits. Returns
     * STRIX_OK, or a status with err set, which ends the evaluation. */
    int (*decode_window)(void *user, const strix_token *tokens, int n, const int8_t *want,
                         float *logits, strix_error *err);
    void *decode_user;
};
int strix_ppl_params_init(struct strix_ppl_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(ppl)

struct strix_ppl_result {
    size_t struct_size; /* sizeof, set by the caller (see "Result structs") */
    int64_t n_scored; /* tokens scored */
    int64_t n_bytes;  /* bytes of text the scored tokens stand for */
    int n_windows, n_ctx, stride;
    double nll;            /* cross-entropy: mean negative log-likelihood, nats per token */
    double nll_stderr;     /* standard error of that mean */
    double bits_per_token; /* nll / ln 2 */
    double bits_per_byte;  /* total bits / n_bytes */
    double ppl;            /* exp(nll) == 2^bits_per_token */
    double ppl_stderr;     /* ppl * nll_stderr (first-order) */
    /* with kl_base: KL(base || this model) per token, in nats */
    int has_kl;
    double base_ppl;
    double ppl_ratio;                         /* ppl / base_ppl */
    double ln_ppl_ratio, ln_ppl_ratio_stderr; /* mean of ln p_base - ln p, and its error */
    double kl_mean, kl_stderr;
    double kl_min, kl_median, kl_p90, kl_p95, kl_p99, kl_p999, kl_max;
    double top1_agree; /* fraction of tokens where both models' most likely token is the same */
};

/*
 * Scores tokens[0..n_tokens) (tokenized with BOS, as llama.cpp does; each
 * window's first token is replaced by BOS). With kl_base, tokens may be NULL
 * (the base's are used) and otherwise must equal the base's. The context's
 * cache is cleared and reused for every window.
 */
int strix_perplexity(const strix_model *model, strix_context *ctx, const strix_token *tokens,
                     int n_tokens, const struct strix_ppl_params *params,
                     struct strix_ppl_result *out, strix_error *err);

/* ---- analysis: what the layers do, and pruning ------------------------------------ */

/*
 * Statistics of the hidden states (strix_analyze), for one block or for the
 * token-embedding matrix. For a block, X is its input and Y its output
 * (the residual stream before and after it, as strix_layer_obs gives them);
 * the spectral statistics describe Y (the embeddings: their rows). NaN where
 * a statistic does not apply. Passed in arrays: this struct does not grow.
 */
struct strix_layer_stats {
    double linearity;             /* 1 - |X A - Y|^2, X, Y centred, unit Frobenius norm,
                                     A least squares (Razzhigaev et al., 2024) */
    double linearity_no_residual; /* the same for Y - X (the block's own contribution) */
    double cosine, cosine_sd;     /* cos(x_t, y_t) over tokens: mean, standard deviation */
    double cosine_p10, cosine_p90; /* its 10th and 90th percentiles */
    double anisotropy;            /* share of the variance on the first principal direction */
    double pair_cosine;           /* mean cosine of two distinct random vectors (exact) */
    double intrinsic_dim;         /* TwoNN (maximum likelihood), over up to max_points vectors */
    int pca90;                    /* principal components explaining 90% of the variance */
    int n_vectors;                /* vectors the statistics were computed over */
};

struct strix_analyze_params {
    size_t struct_size; /* sizeof, set by strix_analyze_default_params() */
    int n_ctx;          /* window in tokens (BOS first, then n_ctx - 1 of the text); 0: 256 */
    int max_tokens;     /* text tokens used; 0: all */
    int max_points;     /* vectors TwoNN uses per layer (evenly spaced); 0: 4000 */
    int n_threads;      /* 0: online CPUs */
    /* after each window (phase 0) and each layer's statistics (phase 1) */
    void (*progress)(void *user, int phase, int done, int total);
    void *user;
};
int strix_analyze_params_init(struct strix_analyze_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(analyze)

/*
 * Runs the model over tokens[0..n_tokens) (text tokens, no BOS: each window
 * gets its own) and fills layers[0..n_layer) and *embd (may be NULL). The
 * BOS position of every window is left out of the statistics (its hidden
 * state is the same in each window). Needs LAPACK (STRIX_ERR_UNSUPPORTED
 * when strix was built without it); STRIX_ERR_ARG when the text gives fewer
 * than 16 vectors.
 */
int strix_analyze(const strix_model *model, const strix_token *tokens, int n_tokens,
                  const struct strix_analyze_params *params, struct strix_layer_stats *layers,
                  struct strix_layer_stats *embd, strix_error *err);

/*
 * Pruning, written as a new GGUF file (through a temporary file renamed
 * over the target) in the input's weight types (quantized weights are
 * dequantized, pruned and re-quantized):
 *   method "magnitude" or "wanda" prunes the 2-D weights of every block
 *     (attention and feed-forward projections; embeddings, output and norms
 *     stay): per output row, the fraction `sparsity` of weights with the
 *     smallest score, or with nm_m > 0 the nm_m - nm_n smallest of every
 *     group of nm_m consecutive inputs (N:M, e.g. 2:4; a weight whose rows
 *     are not whole groups stays dense and is named, as in the input, under
 *     strix.prune.dense; if no weight fits, STRIX_ERR_ARG). Mamba's
 *     convolution taps and state matrix are not products and stay too.
 *     Score: |W_ij|
 *     (magnitude) or |W_ij| * |X_j|_2 (Wanda, Sun et al. 2023: X_j the j-th
 *     input feature over the calibration tokens). Ties go to the lower index.
 *   drop_layers removes blocks: the file has n_layer - n_drop blocks,
 *     renumbered, and llama.cpp loads it.
 *   linearize_layers replaces blocks by the least-squares affine map
 *     y = W x + b from the block's input to its output on the calibration
 *     text, stored as blk.N.strix_linear.weight / .bias (F32; the block's
 *     weights stay, strix runs the map instead; llama.cpp does not load it).
 * The file records what was done under strix.prune.* keys.
 */
struct strix_prune_params {
    size_t struct_size; /* sizeof, set by strix_prune_default_params() */
    const char *method; /* "magnitude", "wanda" or NULL (no weight pruning) */
    const int *drop_layers;      /* n_drop distinct block indices (borrowed) */
    const int *linearize_layers; /* n_linearize distinct block indices (borrowed) */
    float sparsity;     /* unstructured: [0, 1) */
    int nm_n, nm_m;     /* N:M (0 < N <= M <= 64); 0, 0: unstructured */
    int n_drop;
    int n_linearize;
    int n_ctx;     /* calibration window; 0: 256 */
    int n_threads; /* 0: online CPUs (at most 64) */
    int reserved_; /* zero; keeps the struct free of padding */
    void (*progress)(void *user, int done, int total); /* after each weight; may be NULL */
    void *user;
};
int strix_prune_params_init(struct strix_prune_params *p, size_t struct_size);
STRIX_DEFAULT_PARAMS_(prune)

/* Calibration: tokens[0..n_tokens) (text, no BOS), needed by "wanda" and
 * linearize (at least 64 tokens, and 2 n_embd + 1 for linearize: else
 * STRIX_ERR_ARG); may be NULL otherwise. */
int strix_prune(const strix_model *model, const strix_token *tokens, int n_tokens,
                const char *path, const struct strix_prune_params *params, strix_error *err);

/* ---- chat templates ------------------------------------------------------------------ */

struct strix_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
};

/*
 * Templates: "chatml", "llama2", "llama2-sys", "llama2-sys-bos",
 * "llama2-sys-strip", "mistral-v1", "mistral-v3", "mistral-v3-tekken",
 * "mistral-v7", "phi3", "zephyr", "gemma", "deepseek", "llama3" (the same
 * names and text as llama.cpp's llama_chat_apply_template), and "plain"
 * (strix's: the contents joined by newlines, an answer continuing its
 * prompt directly; for models without a template). strix_chat_template_name(i)
 * lists them (NULL past the end).
 */
const char *strix_chat_template_name(int i);
/* The template a name or a stored Jinja template (tokenizer.chat_template)
 * stands for, recognised by distinctive substrings; NULL if none. */
const char *strix_chat_template_detect(const char *tmpl);
/* The text that ends an assistant turn in that template ("<|im_end|>", ...),
 * a stop string; NULL for "plain" or an unknown template. */
const char *strix_chat_template_end(const char *tmpl);

/*
 * Renders messages with template tmpl (a name or a stored template, see
 * strix_chat_template_detect). add_assistant: end with the opening of an
 * assistant turn. Like snprintf: writes at most cap - 1 bytes and a NUL, and
 * *n_out (may be NULL) gets the full length. STRIX_ERR_UNSUPPORTED for an
 * unknown template.
 */
int strix_chat_apply(const char *tmpl, const struct strix_chat_msg *msgs, size_t n_msg,
                     int add_assistant, char *buf, size_t cap, size_t *n_out, strix_error *err);


/* ---- metadata ------------------------------------------------------------------------ */

/* The string value of GGUF metadata key `key` (e.g. "tokenizer.chat_template"),
 * like snprintf: at most cap - 1 bytes and a NUL into buf; returns its full
 * length, or -1 if the model has no such string key (llama2.c files have
 * none). */
int strix_model_meta_str(const strix_model *model, const char *key, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* STRIX_H */
