/*
 * kernels_gemm.h - cache-blocked matrix products of the float weight types
 * (F32, F16, BF16) for the avx512 set, in kernels_gemm.c (compiled with the
 * avx512 flags and AVX512-BF16). Each is a kern_mm_fn (kernels.h); kernels.c
 * puts them in the avx512 set, so they run only on a CPU that has it, and the
 * BF16-activation kernel only where the CPU also reports avx512_bf16.
 *
 * Every kernel walks rows [r0, r1) in blocks whose weights stay in the L2
 * cache, and within a block 4 rows x 6 tokens at a time, each pair with one
 * 16-lane accumulator over the whole row (long rows in column blocks, the
 * accumulator kept as it is between them), reduced once at the end. The
 * summation order of a pair never depends on the tile it was computed in,
 * so one token alone equals the same token in a batch, bit for bit.
 */
#ifndef STRIX_KERNELS_GEMM_H
#define STRIX_KERNELS_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* f32 activations (act_type DTYPE_F32) against F32, F16 and BF16 rows:
 * weights widened to f32 exactly, one fused multiply-add per 16 columns.
 * Bit-identical to the avx512 set's earlier 4x4 tiles (same order). */
void kern_gemm_f32(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,
                   const void *a, size_t as, int n, float *y, size_t ldy, int accumulate);
void kern_gemm_f16(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,
                   const void *a, size_t as, int n, float *y, size_t ldy, int accumulate);
void kern_gemm_bf16(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,
                    const void *a, size_t as, int n, float *y, size_t ldy, int accumulate);

/* BF16 rows against BF16 activations (act_type DTYPE_BF16: the f32
 * activations rounded to nearest-even once per batch) with VDPBF16PS: per
 * 32 columns, lane i adds the two products of columns 2i and 2i+1 (exact in
 * f32) to its f32 sum, rounding to nearest-even after each addition, with
 * denormal inputs and results taken as zero. Needs avx512_bf16. */
void kern_gemm_bf16_dp(uint32_t type, int cols, const uint8_t *w, size_t ws, int r0, int r1,
                       const void *a, size_t as, int n, float *y, size_t ldy, int accumulate);

/* The avx512 set's BF16 activation conversion, bit-identical to
 * util_fp32_to_bf16 (rounding to nearest-even, NaN kept quiet). */
void kern_gemm_act_bf16(const float *x, void *dst, int cols);

/* The avx512 set's Q8_K activation quantizer, bit-identical to the
 * reference (dtype_quantize_row_q8_K). */
void kern_gemm_act_q8_K(const float *x, void *dst, int cols);

#endif
