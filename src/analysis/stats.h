/*
 * stats.h - statistics of sets of hidden states (stats.c), each over n
 * vectors of width d given row-major as float (n, d):
 *
 *   linearity   Razzhigaev et al. (2024): X and Y centred (column means
 *               removed) and scaled to unit Frobenius norm, A the
 *               least-squares solution of X A = Y, score 1 - |X A - Y|_F^2;
 *   cosine      the mean and standard deviation of cos(x_i, y_i);
 *   spectrum    the eigenvalues of the covariance of X: the share of the
 *               variance on the first principal direction, and the number
 *               of principal components that explain 90% of it;
 *   pair cosine the mean cosine of two distinct vectors drawn at random,
 *               computed exactly over all pairs: (|sum u_i|^2 - n) / (n (n-1))
 *               for the unit vectors u_i (zero vectors left out);
 *   TwoNN       Facco et al. (2017) intrinsic dimension, maximum-likelihood
 *               form: d = N / sum ln(r2_i / r1_i), r1 and r2 the Euclidean
 *               distances from point i to its nearest and second-nearest
 *               other points; points with r1 = 0 (duplicates) are left out.
 *
 * The linear algebra is LAPACK's and BLAS's (OpenBLAS), used only when
 * strix is built with them (STRIX_HAVE_LAPACK, set by the Makefile when
 * lapacke.h and the libraries are found): least squares by dgelsd (SVD-based,
 * so rank-deficient hidden states, common when a few directions carry most
 * of the variance, still give the minimum-norm solution instead of the
 * garbage a QR-based dgels gives for a singular R), the covariance by dsyrk
 * and its eigenvalues by dsyevd (symmetric, divide and conquer; eigenvalues
 * only), the Gram matrices of TwoNN's neighbour search by dgemm. Without
 * them, or when the libraries cannot be loaded at run time (they are opened
 * with dlopen on first use, not linked), every function here that needs
 * them returns STRIX_ERR_UNSUPPORTED with the reason.
 */
#ifndef STRIX_STATS_H
#define STRIX_STATS_H

#include "strix.h"

/* 1 when built with LAPACK and BLAS and they load (the first call loads
 * them). */
int stats_available(void);

/* Linearity score of the map from x to y (both (n, d)); n >= 2. */
int stats_linearity(const float *x, const float *y, int n, int d, double *score,
                    strix_error *err);

/* Mean and standard deviation (population) of cos(x_i, y_i) over rows with
 * both vectors non-zero. No LAPACK needed. */
void stats_cosine(const float *x, const float *y, int n, int d, double *mean, double *sd);

/* The covariance spectrum of x: share of the top eigenvalue and the number
 * of components explaining 90% of the variance. */
int stats_spectrum(const float *x, int n, int d, double *pc1_share, int *pca90,
                   strix_error *err);

/* Mean cosine over all distinct pairs of non-zero rows. No LAPACK needed. */
double stats_pair_cosine(const float *x, int n, int d);

/* TwoNN over the rows of x (every row; callers subsample). NaN when fewer
 * than 3 distinct points. */
int stats_twonn(const float *x, int n, int d, double *dim, strix_error *err);

/* The least-squares affine map y = W x + b from the rows of x to those of y
 * (both (n, d)), fitted on centred data: w (d, d) row-major (row o gives
 * output o, as a GGUF weight of ne = {d, d}), b (d). */
int stats_affine_fit(const float *x, const float *y, int n, int d, float *w, float *b,
                     strix_error *err);

#endif
