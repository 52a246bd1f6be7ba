/*
 * kernels_kv.h - attention over a KV cache stored as F16, Q8_0 or Q4_0
 * (F32 caches use kern_dot_f32_gather / kern_axpy_gather, kernels.h).
 *
 * Cache rows are gathered by index, as in kernels.h: row i starts at
 * base + idx[i] * stride bytes and holds n values of the cache type (for
 * the block types, n / 32 blocks; n is then a multiple of 32).
 *
 * Keys: the query is first converted once per head (kern_kv_query):
 *   - F16 keys: the query stays F32, and s[i] = sum_j f16(k[j]) * q[j] in
 *     kern_dot_f32's order (8 lanes, then the lanes in order, then the tail);
 *   - Q8_0 / Q4_0 keys: the query becomes Q8_0 blocks (round to nearest),
 *     and s[i] is the integer sum of each block's products scaled by both
 *     blocks' fp16 scales, accumulated in block order (the vec_dot of the
 *     reference, quant/dtype.c).
 * Values: y[j] += e[i] * v_i[j] for i = 0, 1, ... in order, where v_i[j]
 *   is f16(v[j]) (F16) or d * q[j] (Q8_0; Q4_0: d * (q[j] - 8)), computed as
 *   (e[i] * d) * q[j] for the block types.
 *
 * Grouped tiles (attention.c): the G query heads that share a KV head
 * against count gathered cells, each cell's key and value read once for all
 * G heads (F32 caches too; stride is then bytes of floats):
 *   - dot_group: s[i * G + h] = key_i . q_h, q_h at q + h * q_stride bytes
 *     in kern_kv_query's form (F32 and F16 keys: floats), with dot_gather's
 *     formula per head (the lanes may be added in another order);
 *   - axpy_group: y[h * ldy + j] += e[i * G + h] * v_i[j] for i in order,
 *     axpy_gather's formula per head;
 *   - exp: x[i] = e^x[i] in place for x[i] <= 88, 0 below -87.33 (where
 *     e^x is under FLT_MIN), NaN kept: a degree-7 polynomial after
 *     reducing x by k ln 2 (|r| <= ln 2 / 2), relative error under 4e-7
 *     (tests/test_attn.c measures it against exp in double);
 *   - softmax: one tile's step of the online softmax over the scores s
 *     (count cells x G heads, s[i * G + h]) with each head's running
 *     maximum mx[h] and sum sum[h]: x = s * scale; m = the larger of mx[h]
 *     and the tile's largest x of head h (a NaN score is never taken);
 *     r[h] = expf(mx[h] - m), sum[h] *= r[h], mx[h] = m; s = exp(x - m)
 *     (the exp above); sum[h] += the head's s. The caller multiplies its
 *     value accumulators by r[h] (where r[h] != 1). The sets add the sums
 *     in lanes (another order than the reference's cell order).
 *
 * Every set (scalar reference, avx2, avx512) runs the same formulas; the
 * sets may round differently (fused multiply-adds), so tests compare them
 * with the reference within a tolerance. Within one set a result depends
 * only on its row, never on the batch or the threads.
 */
#ifndef STRIX_KERNELS_KV_H
#define STRIX_KERNELS_KV_H

#include <stddef.h>
#include <stdint.h>

struct kern_kv {
    const char *name;
    /* type: enum dtype (F16, Q8_0, Q4_0); q: kern_kv_query's output */
    void (*dot_gather)(uint32_t type, int n, const void *q, const uint8_t *base, size_t stride,
                       const int *idx, int count, float *s);
    void (*axpy_gather)(uint32_t type, int n, const float *e, const uint8_t *base, size_t stride,
                        const int *idx, int count, float *y);
    /* NULL: the set's dot_gather / axpy_gather once per head */
    void (*dot_group)(uint32_t type, int n, int G, const void *q, size_t q_stride,
                      const uint8_t *base, size_t stride, const int *idx, int count, float *s);
    void (*axpy_group)(uint32_t type, int n, int G, const float *e, const uint8_t *base,
                       size_t stride, const int *idx, int count, float *y, size_t ldy);
    void (*exp)(int n, float *x);
    /* returns 0 where the set leaves this G to the reference */
    int (*softmax)(int count, int G, float scale, float *s, float *mx, float *sum, float *r);
};

/* 1 if the cache may hold this type (F32, F16, Q8_0, Q4_0). */
int kern_kv_type_ok(uint32_t type);
/* Bytes of one cache row of n values (n a multiple of the block size). */
size_t kern_kv_row_bytes(uint32_t type, int n);
/* Stores one row of n floats as the cache type (round to nearest; the block
 * types as quant/dtype.c quantizes them). */
void kern_kv_store(uint32_t type, const float *x, int n, void *dst);
/* Bytes kern_kv_query writes for n values of a key type (at most 4 n). */
size_t kern_kv_query_bytes(uint32_t type, int n);
/* The query of one head (n floats) in the form dot_gather takes for keys of
 * this type. */
void kern_kv_query(uint32_t type, const float *q, int n, void *dst);

/* The functions of the set in use (kern_isa_active's name). */
void kern_kv_dot_gather(uint32_t type, int n, const void *q, const uint8_t *base, size_t stride,
                        const int *idx, int count, float *s);
void kern_kv_axpy_gather(uint32_t type, int n, const float *e, const uint8_t *base, size_t stride,
                         const int *idx, int count, float *y);
void kern_kv_dot_group(uint32_t type, int n, int G, const void *q, size_t q_stride,
                       const uint8_t *base, size_t stride, const int *idx, int count, float *s);
void kern_kv_axpy_group(uint32_t type, int n, int G, const float *e, const uint8_t *base,
                        size_t stride, const int *idx, int count, float *y, size_t ldy);
void kern_kv_exp(int n, float *x);
void kern_kv_softmax(int count, int G, float scale, float *s, float *mx, float *sum, float *r);
/* The grouped functions of a set from kern_kv_get (its own, or the per-head
 * fallback where it has none; tests). */
void kern_kv_dot_group_with(const struct kern_kv *k, uint32_t type, int n, int G, const void *q,
                            size_t q_stride, const uint8_t *base, size_t stride, const int *idx,
                            int count, float *s);
void kern_kv_axpy_group_with(const struct kern_kv *k, uint32_t type, int n, int G, const float *e,
                             const uint8_t *base, size_t stride, const int *idx, int count,
                             float *y, size_t ldy);
void kern_kv_exp_with(const struct kern_kv *k, int n, float *x);
void kern_kv_softmax_with(const struct kern_kv *k, int count, int G, float scale, float *s,
                          float *mx, float *sum, float *r);
/* A set by name ("scalar", "avx2", "avx512") if this CPU runs it, else NULL
 * (tests). */
const struct kern_kv *kern_kv_get(const char *name);

/* The instruction-set versions (kernels_kv_avx2.c, kernels_kv_avx512.c);
 * NULL where the file was built without its instructions. */
extern const struct kern_kv *const kern_kv_avx2;
extern const struct kern_kv *const kern_kv_avx512;

#endif
