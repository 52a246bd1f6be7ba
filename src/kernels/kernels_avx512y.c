/*
 * kernels_avx512y.c - 256-bit kernels of the avx512 set for the blocks of 32
 * it has none of its own for (Q4_1, Q5_0, Q5_1): kernels_avx2.c built again
 * with the avx512 set's flags, its byte products in EVEX-encoded vpdpbusd on
 * ymm registers (kernels_avx2.h: AVX2_VNNI 2). Reached only through the
 * avx512 set's table, after the CPU check.
 */
#define AVX2_VNNI 2
/* the avx2 set's other kernels are built here too but only these are used */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "kernels/kernels_avx2.c"
