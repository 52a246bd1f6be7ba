/*
 * kernels_avxvnni.c - the avxvnni instruction set: the avx2 set's kernels
 * (kernels_avx2.c) built again with AVX-VNNI, whose VEX-encoded vpdpbusd
 * adds four byte products into a 32-bit lane in one instruction (CPUs with
 * AVX2 and AVX-VNNI but without AVX-512, and those with both). This file
 * alone is compiled with those flags; kernels.c calls into it only after
 * checking the CPU supports them.
 */
#define AVX2_VNNI 1
#include "kernels/kernels_avx2.c"
