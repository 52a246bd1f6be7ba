/*
 * kernels.h - the numeric primitives of the forward pass. Each is a pure,
 * single-threaded function of its arguments; pool.c does the splitting.
 *
 * Every primitive has a scalar reference (kernels.c, plain loops the compiler
 * may vectorise without reassociating: no -ffast-math) and may have faster
 * versions for an instruction set (kernels_avx2.c, kernels_avx512.c). The
 * kern_* entry points call the set chosen at run time from the CPU's
 * features (kern_init); STRIX_KERNELS=scalar|avx2|avx512 in the environment
 * forces one. Tests compare every set the machine supports with the
 * reference (kern_isa_get).
 */
#ifndef STRIX_KERNELS_H
#define STRIX_KERNELS_H

#include <stddef.h>
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

/* y[i] += a * x[i]. */
void kern_axpy(int n, float a, const float *x, float *y);

/*
 * Matrix products over weights of one type: rows [r0, r1) of W (each row
 * `w_stride` bytes at w + r * w_stride) against n tokens' activations (each
 * `a_stride` bytes at a + t * a_stride, already in act_type), writing
 * y[t * ldy + r] (or adding to it with accumulate). Every y element is the
 * same value the single-row, single-token product gives.
 */
typedef void (*kern_mm_fn)(uint32_t type, int cols, const uint8_t *w, size_t w_stride, int r0, int r1,
                           const void *a, size_t a_stride, int n, float *y, size_t ldy,
                           int accumulate);
struct kern_mm {
    uint32_t act_type; /* enum dtype the activations are converted to */
    kern_mm_fn run;
};
/* The product kernels for weight type t, or NULL (then dequantize rows). */
const struct kern_mm *kern_mm_for(uint32_t t);
/* Bytes of one activation row of `cols` values in act_type. */
size_t kern_act_row_bytes(uint32_t act_type, int cols);
/* Converts one row of activations to act_type. */
void kern_act_quantize(uint32_t act_type, const float *x, void *dst, int cols);

/* ---- instruction sets ---- */

struct kern_isa {
    const char *name;
    float (*dot_f32)(int n, const float *w, const float *x);
    void (*dot_f32_x4)(int n, const float *restrict w, const float *restrict x0,
                       const float *restrict x1, const float *restrict x2,
                       const float *restrict x3, float *restrict s);
    void (*axpy)(int n, float a, const float *x, float *y);
    /* per weight type; run == NULL: use the reference's */
    struct kern_mm mm[64];
    /* per activation type: a quantizer equal to the reference bit for bit */
    void (*act_quantize[64])(const float *x, void *dst, int cols);
};
/* Picks the instruction set (once; later calls are no-ops). */
void kern_init(void);
/* The set in use. */
const struct kern_isa *kern_isa_active(void);
/* A set by name ("scalar", "avx2", "avx512") if this CPU runs it, else NULL. */
const struct kern_isa *kern_isa_get(const char *name);
/* Makes `isa` the active set (tests); NULL restores the automatic choice. */
void kern_isa_set(const struct kern_isa *isa);

#endif
