/*
 * ssm.h - the recurrent state of selective state-space models (mamba) and
 * their block (ssm.c), which take the place of the KV cache and attention.
 */
#ifndef STRIX_SSM_H
#define STRIX_SSM_H

#include "runtime/context.h"

/*
 * The state of every layer for every sequence: a layer's convolution state
 * (the last d_conv - 1 inputs of each channel) and scan state (d_state per
 * channel). To let a sequence roll back (speculative decoding, re-decoding
 * a changed suffix), each keeps the states after its last n_keep positions,
 * in a ring (position p in slot p % n_keep, tagged with p): rolling back to
 * hold positions [0, n) needs the state after n - 1, so it works as far as
 * n_keep - 1 tokens back (and to 0, an empty state, always). The context's
 * cells track the same positions (a window of n_keep), so the cache
 * bookkeeping and these states agree.
 */
struct ssm_state;
/* NULL: out of memory. n_batch sizes the block's scratch. */
struct ssm_state *ssm_state_create(const strix_model *m, int n_seq, int n_keep, int n_batch);
void ssm_state_free(struct ssm_state *s);
/* Bytes of state (all layers, all sequences, the kept positions). */
size_t ssm_state_bytes(const struct ssm_state *s);
/* Whether sequence seq (holding positions up to pos_max) can be cut to hold
 * [0, n_keep); cutting past pos_max changes nothing and is allowed. */
int ssm_state_can_keep(const struct ssm_state *s, int seq, int32_t n_keep);
/* Cuts sequence seq to [0, n_keep) (after ssm_state_can_keep said yes). */
void ssm_state_keep(struct ssm_state *s, int seq, int32_t n_keep);
/* Sequence dst takes a copy of src's states. */
void ssm_state_copy(struct ssm_state *s, int src, int dst);
/* The chunk's tokens (positions, sequences) will be stored: tags their slots. */
void ssm_state_advance(struct ssm_state *s, int n, const int32_t *pos, const int32_t *seq);

/* The scan state of layer l that sequence seq holds after position p (p >= 0):
 * (d_inner, d_state) floats. retnet's retention (retention.c) keeps its
 * per-head (d_k, d_v) states here; it has no convolution state. */
float *ssm_state_at(struct ssm_state *s, int l, int seq, int32_t p);

/* Block l over the context's current chunk: `in` is the normed input
 * (n_tok, n_embd); the block's output is added to out (n_tok, n_embd). */
void ssm_block(strix_context *c, int l, const float *in, float *out);

#endif
