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

/* Q8_0: 32 int8 weights sharing one fp16 scale: w = d * q. */
#define QK8_0 32
struct block_q8_0 {
    uint16_t d; /* fp16 scale */
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 layout");

/* Q4_0: 32 weights in nibbles sharing one fp16 scale: w = d * (q - 8).
 * Byte j holds weight j in its low nibble and weight j + 16 in its high one. */
#define QK4_0 32
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 layout");

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

void dtype_dequantize_row_f32(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_f16(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_bf16(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void dtype_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void dtype_quantize_row_q8_0(const float *src, void *dst, int64_t n);
void dtype_quantize_row_q4_0(const float *src, void *dst, int64_t n);

#endif
