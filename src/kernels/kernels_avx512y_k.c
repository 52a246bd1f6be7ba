/*
 * kernels_avx512y_k.c - the avx512 set's Q5_K: kernels_avx2_k.c built again
 * with the avx512 set's flags (see kernels_avx512y.c).
 */
#define AVX2_VNNI 2
#include "kernels/kernels_avx2_k.c"
