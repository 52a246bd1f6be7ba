/*
 * prune.h - the pruning masks of prune.c, per row of a weight (ne[0]
 * inputs): keep[j] = 0 for the weights removed. Ties in the score go to the
 * lower input index (it is removed first), so masks are deterministic.
 */
#ifndef STRIX_PRUNE_H
#define STRIX_PRUNE_H

#include <stdint.h>

/* The n_prune entries of score[0..n) that are smallest in (score, index)
 * order get keep 0, the others 1. idx: scratch of n ints. */
void prune_row_smallest(const float *score, int n, int n_prune, uint8_t *keep, int *idx);

/* N:M: in every group of m consecutive entries (n a multiple of m), the
 * m - nn smallest get keep 0. */
void prune_row_nm(const float *score, int n, int nn, int m, uint8_t *keep);

/* Scores of one row: |w_j| (norm NULL: magnitude) or |w_j| * norm[j] (Wanda). */
void prune_row_score(const float *w, const float *norm, int n, float *score);

#endif
