/*
 * ffn_var.h - strix's feed-forward variants in place of a block's MLP
 * (the keys and shapes are model/arch_ffn.c): a PEER layer (ffn_peer.c)
 * and two KAN layers (ffn_kan.c). forward.c calls them with the block's
 * normed input; each writes the block's FFN output (n, n_embd).
 */
#ifndef STRIX_FFN_VAR_H
#define STRIX_FFN_VAR_H

#include "runtime/context.h"

/* ---- ffn_peer.c ---- */
struct ffn_peer_scratch;
/* Scratch for n_batch tokens (NULL: out of memory); _free accepts NULL. */
struct ffn_peer_scratch *ffn_peer_scratch_create(const struct hparams *hp, int n_batch);
void ffn_peer_scratch_free(struct ffn_peer_scratch *s);
/* out (n, n_embd) = PEER layer of block l over the n rows of in. */
void ffn_peer(strix_context *c, struct ffn_peer_scratch *s, int l, const float *in, float *out,
              int n);

/* ---- ffn_kan.c ---- */
struct ffn_kan_scratch;
struct ffn_kan_scratch *ffn_kan_scratch_create(const struct hparams *hp, int n_batch);
void ffn_kan_scratch_free(struct ffn_kan_scratch *s);
/* out (n, n_embd) = KAN layer 2 (KAN layer 1 (in)) of block l. */
void ffn_kan(strix_context *c, struct ffn_kan_scratch *s, int l, const float *in, float *out,
             int n);
/* The grid + order B-spline bases of x on the uniform grid of `grid`
 * intervals over [-range, range], extended by `order` knots each side
 * (knot j at -range + (j - order) 2 range / grid), by Cox-de Boor's
 * recursion; all zero outside the extended grid. */
void ffn_kan_basis(float x, int grid, int order, float range, float *b);
/* The widest activation row a KAN model's products read (the spline
 * inputs), for the context's scratch; 0 for other models. */
size_t ffn_kan_max_row(const struct hparams *hp);

#endif
