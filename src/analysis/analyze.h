/*
 * analyze.h - the hidden states of a model over a text (analyze.c), shared
 * by strix_analyze and by pruning (prune.c: Wanda's input norms and the
 * linear maps that replace blocks).
 */
#ifndef STRIX_ANALYZE_H
#define STRIX_ANALYZE_H

#include "strix.h"

/* x[l] (n_rows, n_embd) row-major: the input of block l for l < n_layer,
 * the last block's output for l == n_layer. Rows are the text's tokens in
 * order, each window's BOS left out. */
struct hidden {
    int n_layer, n_embd, n_rows, cap;
    float **x; /* (n_layer + 1) */
};

typedef void (*analyze_matmul_fn)(void *user, const char *weight, const float *x, int n_tokens,
                                  int n_cols);

/* Runs m over tokens in windows of n_ctx (BOS first) and fills h (free with
 * analyze_hidden_free, also after a failure; h NULL: the states are not
 * kept). on_mm (may be NULL) sees every
 * matrix product's input. progress(user, 0, done, total) after each window. */
int analyze_collect(const strix_model *m, const strix_token *tokens, int n_tokens, int n_ctx,
                    int n_threads, struct hidden *h, analyze_matmul_fn on_mm, void *mm_user,
                    void (*progress)(void *, int, int, int), void *user, strix_error *err);
void analyze_hidden_free(struct hidden *h);

#endif
