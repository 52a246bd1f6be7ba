/*
 * kernels.h - the numeric primitives of the forward pass. Each is a pure,
 * single-threaded function of its arguments; runtime/pool.c does the
 * splitting.
 *
 * Every primitive has a scalar reference (kernels.c, plain loops the compiler
 * may vectorise without reassociating: no -ffast-math) and may have faster
 * versions for an instruction set (kernels_avx2.c, kernels_avxvnni.c,
 * kernels_avx512.c). The kern_* entry points call the set chosen at run time
 * from the CPU's features (kern_init); STRIX_KERNELS=scalar|avx2|avxvnni|avx512
 * in the environment forces one. Tests compare every set the machine supports with the
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
/* The same in two steps, so a token's angles serve every head and layer:
 * cs[2i], cs[2i+1] = cos, sin of theta_i (n_rot floats), then the rotation. */
void kern_rope_table(float *cs, int n_rot, int pos, float base);
void kern_rope_apply(float *v, int n_rot, int neox, const float *cs);

/* a[i] = silu(a[i]) * b[i]. */
void kern_silu_mul(float *a, const float *b, int n);

/* y[i] += a * x[i]. */
void kern_axpy(int n, float a, const float *x, float *y);

/* Attention over cache rows gathered by index (row i at base + idx[i] *
 * stride): s[i] = kern_dot_f32(n, q, row i) for i < count, and y += e[i] *
 * row i for i = 0, 1, ... in that order. Bit-identical to the calls one by
 * one, without a dispatch per row. */
void kern_dot_f32_gather(int n, const float *q, const float *base, size_t stride, const int *idx,
                         int count, float *s);
void kern_axpy_gather(int n, const float *e, const float *base, size_t stride, const int *idx,
                      int count, float *y);

/*
 * Matrix products over weights of one type: rows [r0, r1) of W (each row
 * `w_stride` bytes at w + r * w_stride) against n tokens' activations (each
 * `a_stride` bytes at a + t * a_stride, already in act_type), writing
 * y[t * ldy + r] (or adding to it with accumulate). Every y element is the
 * same value the single-row, single-token product gives.
 */
typedef void (*kern_mm_fn)(uint32_t type, int cols, const uint8_t *w, size_t w_stride, int r0,
                           int r1, const void *a, size_t a_stride, int n, float *y, size_t ldy,
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
                       const float *restrict x1, const float *restrict x2, const float *restrict x3,
                       float *restrict s);
    void (*axpy)(int n, float a, const float *x, float *y);
    /* per weight type; run == NULL: use the reference's */
    struct kern_mm mm[64];
    /* per activation type: a quantizer equal to the reference bit for bit */
    void (*act_quantize[64])(const float *x, void *dst, int cols);
    /* per weight type, optional: a packed layout of whole 16-row groups
     * (model/pack.c): its size for rows x cols (0: none), the packing from rows
     * of `src_stride` bytes, and the product over it (w: the packed copy,
     * w_stride: bytes per group; r0 and r1 multiples of 16). */
    size_t (*pack_bytes[64])(int rows, int cols);
    void (*pack[64])(const void *src, size_t src_stride, int rows, int cols, uint8_t *dst);
    kern_mm_fn mm_packed[64];
    /* optional (NULL: one dot_f32 or axpy per row): kern_dot_f32_gather,
     * kern_axpy_gather */
    void (*dot_f32_gather)(int n, const float *q, const float *base, size_t stride,
                           const int *idx, int count, float *s);
    void (*axpy_gather)(int n, const float *e, const float *base, size_t stride, const int *idx,
                        int count, float *y);
};
/* Picks the instruction set, once per process (pthread_once; later calls
 * are no-ops): the best this CPU runs, or the one STRIX_KERNELS names. The
 * choice never changes afterwards, so no thread sees it swapped. */
void kern_init(void);
/* The set in use (chosen on first use if kern_init was not called). */
const struct kern_isa *kern_isa_active(void);
/* A set by name ("scalar", "avx2", "avxvnni", "avx512") if this CPU runs it, else NULL.
 * Tests call a set's functions through it directly, leaving the choice alone. */
const struct kern_isa *kern_isa_get(const char *name);

/* ---- kernels_nn.c: the architecture variants (scalar only) ---- */

/* y = (x - mean) / sqrt(var + eps) * w + b; w and b may be NULL. y may alias x. */
void kern_layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps);

/* Activations: SiLU x * sigmoid(x); GELU in its tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); ReLU max(x, 0). */
enum { KERN_ACT_SILU, KERN_ACT_GELU, KERN_ACT_RELU };
float kern_gelu1(float x);
void kern_act(int act, float *x, int n);
/* a[i] = act(a[i]) * b[i] (gated FFNs: SwiGLU, GeGLU). */
void kern_act_mul(int act, float *a, const float *b, int n);
/* y[i] += b[i]; n may span many rows (tokens x width), hence size_t. */
void kern_add(float *y, const float *b, size_t n);

/* ALiBi: slope of each head for bias slope * (key position - query position).
 * With n2 the largest power of two <= n_head, heads h < n2 get
 * 2^(-max_bias (h+1) / n2) and the others 2^(-max_bias (2 (h-n2) + 1) / (2 n2)). */
void kern_alibi_slopes(float *slopes, int n_head, float max_bias);

/* Rotary positions with scaling. theta_i = pos * base^(-2i/n_rot) is scaled
 * by freq_scale (linear / position interpolation; NTK-aware scaling is a
 * larger base). With ext_factor != 0 (YaRN) dimensions below corr[0] keep
 * theta, those above corr[1] take the scaled one, with a linear ramp between,
 * and cos/sin are multiplied by attn_factor * (1 + 0.1 ln(1/freq_scale)). */
struct kern_rope_cfg {
    int n_rot, neox;
    float base, freq_scale, ext_factor, attn_factor;
    float corr[2]; /* kern_yarn_corr_dims */
};
void kern_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                         float dims[2]);
void kern_rope_angle(const struct kern_rope_cfg *r, int pos, int i, float *cos_t, float *sin_t);
void kern_rope_ext(float *v, int pos, const struct kern_rope_cfg *r);
/* kern_rope_ext's angles as a kern_rope_apply table. */
void kern_rope_ext_table(float *cs, int pos, const struct kern_rope_cfg *r);

/* Adds the sinusoidal position code of `pos` to x (n values): sin at even
 * dimensions 2i, cos at 2i+1, of pos / 10000^(2i/n). */
void kern_sinusoid_add(float *x, int n, int pos);

/* x = cap * tanh(x / cap). */
void kern_softcap(float *x, size_t n, float cap);

/* Mixture-of-Experts routing: softmax over the router's logits (in place),
 * then the k largest probabilities (ties: lower expert first) in ids and w,
 * in descending order; renorm: w divided by its sum. */
void kern_moe_route(float *logits, int n_expert, int k, int renorm, int *ids, float *w);

#endif
