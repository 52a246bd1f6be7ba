/*
 * kernels_avxvnni_k.c - the avxvnni set's k-quant kernels: kernels_avx2_k.c
 * built again with AVX-VNNI (see kernels_avxvnni.c).
 */
#define AVX2_VNNI 1
#include "kernels/kernels_avx2_k.c"
