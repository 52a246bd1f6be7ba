/*
 * mla.h - Multi-head Latent Attention (mla.c) and DeepSeekMoE routing
 * (moe_route.c), the two pieces of deepseek2's block (model/arch_deepseek2.c
 * describes the weights and the cache layout).
 */
#ifndef STRIX_MLA_H
#define STRIX_MLA_H

#include "runtime/context.h"

/* Scratch for n_batch tokens (NULL: out of memory); free accepts NULL. */
struct mla_scratch;
struct mla_scratch *mla_scratch_create(const struct hparams *hp, int n_batch);
void mla_scratch_free(struct mla_scratch *s);

/* The attention of block l for the context's current chunk, from `in` (the
 * normed input, n_tok rows of n_embd), into out (n_tok, n_embd; added to it
 * with accumulate), the output projection applied. rope: each token's angles (n_rot floats, see
 * kern_rope_table). Stores each token's latent and rotary key in its cache
 * cell of layer l. */
void mla_attention(strix_context *c, struct mla_scratch *s, int l, const float *in,
                   const float *rope, float *out, int accumulate);

/* DeepSeekMoE routing of one token: logits (n_expert, overwritten) are gated
 * by softmax or sigmoid (hp->moe_gating); the selection adds bias (NULL:
 * none) and, with expert groups, keeps the n_group_used groups whose two
 * best experts score highest; the n_expert_used best are chosen (ids), each
 * weighted by its gate value (w), renormalised (hp->moe_norm_w) and scaled
 * (hp->moe_w_scale). */
void moe_route_ds(const struct hparams *hp, float *logits, const float *bias, int *ids, float *w);

#endif
