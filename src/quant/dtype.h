/*
 * dtype.h - tensor element types (numbered as GGUF/ggml number them), their
 * block layouts and the scalar reference (de)quantization.
 *
 * A row of ne0 elements of a block type occupies ne0 / block_size blocks of
 * type_size bytes each. Types strix can compute with have dequantize != NULL.
 */
#ifndef STRIX_DTYPE_H
#define STRIX_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum dtype {
    DTYPE_F32 = 0,
    DTYPE_F16 = 1,
    DTYPE_Q4_0 = 2,
    DTYPE_Q4_1 = 3,
    DTYPE_Q5_0 = 6,
    DTYPE_Q5_1 = 7,
    DTYPE_Q8_0 = 8,
    DTYPE_Q8_1 = 9,
    DTYPE_Q2_K = 10,
    DTYPE_Q3_K = 11,
    DTYPE_Q4_K = 12,
    DTYPE_Q5_K = 13,
    DTYPE_Q6_K = 14,
    DTYPE_Q8_K = 15,
    DTYPE_IQ2_XXS = 16,
    DTYPE_IQ2_XS = 17,
    DTYPE_IQ3_XXS = 18,
    DTYPE_IQ1_S = 19,
    DTYPE_IQ4_NL = 20,
    DTYPE_IQ3_S = 21,
    DTYPE_IQ2_S = 22,
    DTYPE_IQ4_XS = 23,
    DTYPE_I8 = 24,
    DTYPE_I16 = 25,
    DTYPE_I32 = 26,
    DTYPE_I64 = 27,
    DTYPE_F64 = 28,
    DTYPE_IQ1_M = 29,
    DTYPE_BF16 = 30,
    DTYPE_TQ1_0 = 34,
    DTYPE_TQ2_0 = 35,
    DTYPE_COUNT = 36,
};

/*
 * Block layouts, byte for byte as GGUF/ggml define them (little-endian; fp16
 * fields hold IEEE half bits). "Weight j" is element j of the block.
 */

/* Q8_0: 32 int8 weights sharing one fp16 scale: w = d * q. */
#define QK8_0 32
struct block_q8_0 {
    uint16_t d; /* fp16 scale */
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 layout");

/* Q8_1: Q8_0 plus s = d * sum(qs) in fp16; only an activation format (the
 * partner of Q4_1 and Q5_1 in dot products, which need sum(a) for the min). */
#define QK8_1 32
struct block_q8_1 {
    uint16_t d; /* fp16 scale */
    uint16_t s; /* fp16 d * sum(qs) */
    int8_t qs[QK8_1];
};
_Static_assert(sizeof(struct block_q8_1) == 36, "block_q8_1 layout");

/* Q4_0: 32 weights in nibbles sharing one fp16 scale: w = d * (q - 8).
 * Byte j holds weight j in its low nibble and weight j + 16 in its high one. */
#define QK4_0 32
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 layout");

/* Q4_1: 32 weights, w = d * q + m with q in 0..15; nibbles as in Q4_0. */
#define QK4_1 32
struct block_q4_1 {
    uint16_t d; /* fp16 scale */
    uint16_t m; /* fp16 offset (the block minimum) */
    uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct block_q4_1) == 20, "block_q4_1 layout");

/* Q5_0: 32 weights, w = d * (q - 16) with q in 0..31: the low 4 bits in
 * nibbles as in Q4_0, bit 4 of weight j in bit j of the little-endian
 * 32-bit word qh. */
#define QK5_0 32
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
_Static_assert(sizeof(struct block_q5_0) == 22, "block_q5_0 layout");

/* Q5_1: 32 weights, w = d * q + m with q in 0..31, bits as in Q5_0. */
#define QK5_1 32
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct block_q5_1) == 24, "block_q5_1 layout");

/*
 * k-quants: super-blocks of 256 weights.
 *
 * Q4_K and Q5_K: 8 sub-blocks of 32, sub-block s has a 6-bit scale sc[s] and
 * a 6-bit min mn[s]: w = d * sc[s] * q - dmin * mn[s]. The 12 bytes `scales`
 * pack them: for s < 4, sc[s] = scales[s] & 63 and mn[s] = scales[s + 4] & 63;
 * for s >= 4, the low 4 bits of sc[s] and mn[s] are the low and high nibble of
 * scales[s + 4] and their top 2 bits are the top 2 bits of scales[s - 4] and
 * scales[s]. Quants come in 4 chunks of 64 weights: byte 32c + l of qs holds
 * weight 64c + l in its low nibble and weight 64c + 32 + l in its high one.
 * Q5_K adds bit 4 of each quant: bit 2c of qh[l] for weight 64c + l, bit
 * 2c + 1 for weight 64c + 32 + l.
 */
#define QK_K 256
#define K_SCALE_SIZE 12
struct block_q4_K {
    uint16_t d;    /* fp16 scale of the sub-block scales */
    uint16_t dmin; /* fp16 scale of the sub-block mins */
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q4_K) == 144, "block_q4_K layout");

struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q5_K) == 176, "block_q5_K layout");

/* Q6_K: 16 sub-blocks of 16 weights, w = d * scales[s] * (q - 32) with q in
 * 0..63 and int8 scales. Two halves of 128 weights; in half h, for l < 32,
 * weights 128h + l + 32k (k = 0..3) take their low 4 bits from ql[64h + l]
 * (k = 0: low nibble, k = 2: high nibble) or ql[64h + 32 + l] (k = 1, 3) and
 * their top 2 bits from bits 2k..2k+1 of qh[32h + l]. */
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d; /* fp16 */
};
_Static_assert(sizeof(struct block_q6_K) == 210, "block_q6_K layout");

/* Q8_K: the activation format of k-quant dot products: w = d * q with a
 * float d, and bsums[g] = the sum of the 16 quants of group g. */
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
_Static_assert(sizeof(struct block_q8_K) == 292, "block_q8_K layout");

typedef void (*dtype_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*dtype_quant_fn)(const float *src, void *dst, int64_t n);
/* s = sum_i w[i] * a[i] over n elements: w a row of the weight type, a the
 * activation row already quantized to the weight type's vec_dot_type. */
typedef float (*dtype_vec_dot_fn)(int64_t n, const void *w, const void *a);

struct dtype_traits {
    const char *name;            /* NULL: not a known type id */
    int block_size;              /* elements per block */
    size_t type_size;            /* bytes per block */
    dtype_dequant_fn dequantize; /* NULL: strix cannot compute with it yet */
    dtype_quant_fn quantize;     /* NULL: no quantizer */
    /* Matrix-vector products: activations are converted to vec_dot_type
     * (F32 for float weights; Q8_0, Q8_1 or Q8_K for block types, as in
     * GGUF/ggml) and vec_dot is the scalar reference dot product. */
    uint32_t vec_dot_type;
    dtype_vec_dot_fn vec_dot; /* NULL: no dot product yet */
};

/* Traits of type t, or NULL if t is not a known type id. */
const struct dtype_traits *dtype_get(uint32_t t);
const char *dtype_name(uint32_t t); /* "?" for unknown */
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or t is unknown. */
size_t dtype_row_size(uint32_t t, int64_t n);
/* The id of a type name ("Q4_K", case-insensitive), or -1 if unknown. */
int dtype_from_name(const char *name);
/* The weight types strix can both write (quantize) and compute with
 * (dequantize, vec_dot), in increasing order of id; NULL-free list of n. */
const uint32_t *dtype_weight_types(int *n);

/* Reference rows (n a multiple of the block size). Quantizers of the
 * activation formats (Q8_0, Q8_1, Q8_K) are plain round-to-nearest; those of
 * the weight formats search scales as documented in dtype.c / dtype_k.c. */
void dtype_dequantize_row_f32(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_f16(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_bf16(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q8_1(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q4_K(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q5_K(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q6_K(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q8_K(const void *src, float *dst, int64_t n);

void dtype_quantize_row_f32(const float *src, void *dst, int64_t n);
void dtype_quantize_row_f16(const float *src, void *dst, int64_t n);
void dtype_quantize_row_bf16(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q8_0(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q8_1(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q4_0(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q4_1(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q5_0(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q5_1(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q4_K(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q5_K(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q6_K(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q8_K(const float *src, void *dst, int64_t n);

/* Reference dot products: weight row w (type named first) with an activation
 * row a (type named second), n elements. Integer sums per block, scaled and
 * accumulated in float. */
float dtype_vec_dot_f32_f32(int64_t n, const void *w, const void *a);
float dtype_vec_dot_f16_f32(int64_t n, const void *w, const void *a);
float dtype_vec_dot_bf16_f32(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float dtype_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);

/* Shared by dtype.c and dtype_k.c: x rounded to the nearest integer, ties to
 * even (|x| < 2^22). */
static inline int dtype_nearest_int(float x)
{
    if (!(x > -4194303.0f && x < 4194303.0f)) /* out of range or NaN: saturate */
        return x > 0 ? 4194303 : -4194303;
    float v = x + 12582912.0f; /* 1.5 * 2^23: the integer lands in the low mantissa bits */
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

#endif
