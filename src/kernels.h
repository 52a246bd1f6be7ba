/*
 * kernels.h - the numeric primitives of the forward pass. Each is a pure,
 * single-threaded function of its arguments; pool.c does the splitting.
 *
 * These are the scalar reference versions (written as plain loops that the
 * compiler may vectorise without reassociating: no -ffast-math). Faster ISA
 * versions will sit beside them and be tested against them.
 */
#ifndef STRIX_KERNELS_H
#define STRIX_KERNELS_H

#include <stdint.h>

/* s = sum_i w[i] * x[i] over n floats. The summation order is fixed (8 lanes,
 * then the lanes in order), so a result never depends on threading. */
float kern_dot_f32(int n, const float *w, const float *x);

/* Four dot products of w with x0..x3 at once (one load of w serves four
 * tokens); s[t] is bit-identical to kern_dot_f32(n, w, xt). */
void kern_dot_f32_x4(int n, const float *restrict w, const float *restrict x0,
                     const float *restrict x1, const float *restrict x2, const float *restrict x3,
                     float *restrict s);

/* y = x / rms(x) * g, rms = sqrt(mean(x^2) + eps). y may alias x. */
void kern_rmsnorm(float *y, const float *x, const float *g, int n, float eps);

/* In-place softmax over n values. */
void kern_softmax(float *x, int n);

/* Rotary positions on one head vector of head_dim floats (first n_rot rotated).
 * Interleaved pairs (2i, 2i+1) or, with neox, pairs (i, i + n_rot/2).
 * theta_i = pos * base^(-2i/n_rot). */
void kern_rope(float *v, int n_rot, int pos, float base, int neox);

/* a[i] = silu(a[i]) * b[i]. */
void kern_silu_mul(float *a, const float *b, int n);

#endif
