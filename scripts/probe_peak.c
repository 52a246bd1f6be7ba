/*
 * probe_peak.c - what one core of this CPU can compute, for the benchmark
 * scripts (scripts/bench_prefill.sh, scripts/probe_int8_mix.sh). One
 * thread; every rate is a loop of independent chains, timed by the clock.
 *
 *   probe avx512   clock fp32 bf16 int8 (GHz, GFLOP/s, GFLOP/s, GOP/s):
 *                  VFMADD, VDPBF16PS and VPDPBUSD on zmm (build with
 *                  -mavx512f -mavx512vnni -mavx512bf16)
 *   probe avx2     clock fp32 fp32 int8 int8-sequence: VFMADD on ymm (also
 *                  BF16's peak there: the weights are widened to fp32),
 *                  VPMADDUBSW alone (the multipliers' own rate: no int8
 *                  kernel without VNNI exceeds it) and VPMADDUBSW +
 *                  VPMADDWD + VPADDD per 32 multiply-adds
 *   probe mix      name, multiply-adds a cycle, GOP/s per line: the
 *                  instruction mixes of the packed int8 kernels without VNNI
 *                  (scripts/probe_int8_mix.sh says which)
 *
 * The AVX2 loops are written in assembly so that no compiler can hoist a
 * product whose inputs do not change out of the loop (a C version of the
 * int8 chains was hoisted and timed VPADDD alone). The clock is a chain of
 * dependent integer adds, one a cycle.
 */
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double clock_ghz(void)
{
    const long n = 100000000;
    long c = n;
    unsigned long x = 0;
    const double t0 = now();
    __asm__ volatile("1: add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n sub $1,%1\n jnz 1b"
                     : "+r"(x), "+r"(c));
    return 4.0 * (double)n / (now() - t0) / 1e9;
}

#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BF16__)
#define CHAINS(OP, V)                                                                              \
    _Pragma("GCC unroll 12") for (int k = 0; k < 12; k++) V[k] = OP;                               \
    __asm__ volatile("" ::"v"(V[0]), "v"(V[1]), "v"(V[2]), "v"(V[3]), "v"(V[4]), "v"(V[5]),        \
                     "v"(V[6]), "v"(V[7]), "v"(V[8]), "v"(V[9]), "v"(V[10]), "v"(V[11]))
/* each chain reads its own previous value, so nothing can be hoisted */
static int peak_avx512(void)
{
    const double ghz = clock_ghz();
    const long m = 100000000 / 8;
    __m512 a[12], b[12];
    __m512i q[12];
    for (int k = 0; k < 12; k++) {
        a[k] = b[k] = _mm512_set1_ps(1e-3f * (float)k);
        q[k] = _mm512_set1_epi32(k);
    }
    const __m512 f = _mm512_set1_ps(0.999f), g = _mm512_set1_ps(1e-4f);
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
    double t0 = now();
    for (long i = 0; i < m; i++) {
        CHAINS(_mm512_fmadd_ps(a[k], f, g), a);
    }
    const double fp32 = 12.0 * (double)m * 32 / (now() - t0) / 1e9;
    t0 = now();
    for (long i = 0; i < m; i++) {
        CHAINS((__m512)_mm512_dpbf16_ps(b[k], (__m512bh)u, (__m512bh)s), b);
    }
    const double bf16 = 12.0 * (double)m * 64 / (now() - t0) / 1e9;
    t0 = now();
    for (long i = 0; i < m; i++) {
        CHAINS(_mm512_dpbusd_epi32(q[k], u, s), q);
    }
    const double int8 = 12.0 * (double)m * 128 / (now() - t0) / 1e9;
    float sink = 0;
    for (int k = 0; k < 12; k++)
        sink += _mm512_reduce_add_ps(a[k]) + _mm512_reduce_add_ps(b[k]) +
                (float)_mm512_reduce_add_epi32(q[k]);
    printf("%.3f %.1f %.1f %.1f %g\n", ghz, fp32, bf16, int8, sink * 0.0f);
    return 0;
}
#else
static int peak_avx512(void)
{
    fprintf(stderr, "probe: built without AVX-512 VNNI/BF16\n");
    return 1;
}
#endif

#define CLOBBER "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory"
/* operands in memory: 12 x 32 signed bytes */
static signed char buf[1024] __attribute__((aligned(64)));

/* fp32: VFMADD231PS into 12 accumulators */
#define FMA(a) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #a "\n"
/* VPMADDUBSW of ymm W and the 32 bytes at offset O into ymm D */
#define MM(w, o, d) "vpmaddubsw " #o "(%1), %%ymm" #w ", %%ymm" #d "\n"
#define M(w, s, d) "vpmaddubsw %%ymm" #s ", %%ymm" #w ", %%ymm" #d "\n"
#define B(o, r) "vpbroadcastd " #o "(%1), %%ymm" #r "\n"
#define AW(a, d) "vpaddw %%ymm" #a ", %%ymm" #d ", %%ymm" #d "\n"
/* 32 multiply-adds into int32: VPMADDUBSW, VPMADDWD by ones (ymm15), VPADDD */
#define SEQ(o, t, a)                                                                               \
    MM(0, o, t) "vpmaddwd %%ymm15, %%ymm" #t ", %%ymm" #t "\n vpaddd %%ymm" #t ", %%ymm" #a        \
                ", %%ymm" #a "\n"
/* the tail of a token's block: int16 pairs to int32, the offset, to float,
 * times the scales, into the accumulator ymm14 */
#define TAIL(d)                                                                                    \
    "vpmaddwd %%ymm15, %%ymm" #d ", %%ymm" #d "\n vpaddd %%ymm13, %%ymm" #d ", %%ymm" #d          \
    "\n vcvtdq2ps %%ymm" #d ", %%ymm" #d "\n vmulps %%ymm12, %%ymm" #d ", %%ymm" #d                \
    "\n vaddps %%ymm" #d ", %%ymm14, %%ymm14\n"
/* one token's 8 products of a block, summed in int16 in a chain (as the
 * packed kernels' dot8), the activations broadcast or read as operands */
#define BLOCK_BCAST(o, d)                                                                          \
    B(o, d) M(0, d, d) B(o + 4, 9) M(1, 9, 9) AW(9, d) B(o + 8, 10) M(2, 10, 10) AW(10, d)          \
        B(o + 12, 11) M(3, 11, 11) AW(11, d) B(o + 16, 9) M(4, 9, 9) AW(9, d) B(o + 20, 10)         \
            M(5, 10, 10) AW(10, d) B(o + 24, 9) M(6, 9, 9) AW(9, d) B(o + 28, 10) M(7, 10, 10)      \
                AW(10, d)
#define BLOCK_MEM(o, d)                                                                            \
    MM(0, o, d) MM(1, o + 32, 9) AW(9, d) MM(2, o + 64, 10) AW(10, d) MM(3, o + 96, 11) AW(11, d)   \
        MM(4, o + 128, 9) AW(9, d) MM(5, o + 160, 10) AW(10, d) MM(6, o + 192, 9) AW(9, d)          \
            MM(7, o + 224, 10) AW(10, d)

/* Times BODY (MUL multiply-adds a pass, M passes) and sets R to G of them a
 * second. Before the loop: ymm15 int16 ones, ymm12 float ones, ymm13 and
 * ymm14 zeros, ymm0 bytes of 0x7f, ymm14 / ymm15 as fp32 1.0 for FMA
 * (FMA_SETUP). */
#define TIME(R, MUL, M, SETUP, BODY)                                                               \
    do {                                                                                           \
        long c_ = (M);                                                                             \
        const double t0_ = now();                                                                  \
        __asm__ volatile(SETUP "1:\n" BODY "sub $1, %0\n jnz 1b\n" : "+r"(c_) : "r"(buf) : CLOBBER); \
        (R) = (double)(MUL) * (double)(M) / (now() - t0_) / 1e9;                                   \
    } while (0)
#define INT_SETUP                                                                                  \
    "vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n vpsrlw $15, %%ymm15, %%ymm15\n"                          \
    "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n vpsrld $25, %%ymm12, %%ymm12\n"                          \
    "vpslld $23, %%ymm12, %%ymm12\n vpxor %%ymm13, %%ymm13, %%ymm13\n"                             \
    "vpxor %%ymm14, %%ymm14, %%ymm14\n vpcmpeqb %%ymm0, %%ymm0, %%ymm0\n vpsrlw $9, %%ymm0, %%ymm0\n"
#define FMA_SETUP                                                                                  \
    "vpcmpeqd %%ymm14, %%ymm14, %%ymm14\n vpsrld $25, %%ymm14, %%ymm14\n"                          \
    "vpslld $23, %%ymm14, %%ymm14\n vmovaps %%ymm14, %%ymm15\n"

static int peak_avx2(void)
{
    const double ghz = clock_ghz();
    const long m = 100000000 / 8;
    double fp32, mul, seq;
    TIME(fp32, 12 * 8, m, FMA_SETUP,
         FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7) FMA(8) FMA(9) FMA(10) FMA(11));
    TIME(seq, 12 * 32, m, INT_SETUP,
         SEQ(0, 2, 8) SEQ(32, 3, 9) SEQ(64, 4, 10) SEQ(96, 5, 11) SEQ(128, 6, 12) SEQ(160, 7, 13)
             SEQ(192, 2, 8) SEQ(224, 3, 9) SEQ(256, 4, 10) SEQ(288, 5, 11) SEQ(320, 6, 12)
                 SEQ(352, 7, 13));
    TIME(mul, 12 * 32, m, INT_SETUP,
         MM(0, 0, 2) MM(0, 32, 3) MM(0, 64, 4) MM(0, 96, 5) MM(0, 128, 6) MM(0, 160, 7)
             MM(0, 192, 8) MM(0, 224, 9) MM(0, 256, 10) MM(0, 288, 11) MM(0, 320, 12)
                 MM(0, 352, 13));
    /* flops: 2 a multiply-add; GOP/s the same */
    printf("%.3f %.1f %.1f %.1f %.1f\n", ghz, 2 * fp32, 2 * fp32, 2 * mul, 2 * seq);
    return 0;
}

static int mix(void)
{
    const double ghz = clock_ghz();
    const long m = 10000000;
    double r;
    printf("clock\t%.2f\n", ghz);
#define ROW(name, MUL, BODY)                                                                       \
    TIME(r, MUL, m, INT_SETUP, BODY);                                                              \
    printf("%s\t%.2f\t%.0f\n", name, r / ghz, 2 * r)
    ROW("maddubs", 12 * 32,
        MM(0, 0, 2) MM(1, 32, 3) MM(2, 64, 4) MM(3, 96, 5) MM(4, 128, 6) MM(5, 160, 7) MM(6, 192, 8)
            MM(7, 224, 9) MM(0, 256, 10) MM(1, 288, 11) MM(2, 320, 12) MM(3, 352, 13));
    ROW("maddubs+madd+add", 12 * 32,
        SEQ(0, 2, 8) SEQ(32, 3, 9) SEQ(64, 4, 10) SEQ(96, 5, 11) SEQ(128, 6, 12) SEQ(160, 7, 13)
            SEQ(192, 2, 8) SEQ(224, 3, 9) SEQ(256, 4, 10) SEQ(288, 5, 11) SEQ(320, 6, 12)
                SEQ(352, 7, 13));
    ROW("q4 block, broadcast", 2 * 8 * 32, BLOCK_BCAST(0, 8) TAIL(8) BLOCK_BCAST(32, 11) TAIL(11));
    ROW("q4 block, no tail", 2 * 8 * 32, BLOCK_BCAST(0, 8) BLOCK_BCAST(32, 11));
    ROW("q4 block, operand", 2 * 8 * 32, BLOCK_MEM(0, 8) TAIL(8) BLOCK_MEM(256, 11) TAIL(11));
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 0; i < (int)sizeof buf; i++)
        buf[i] = (signed char)(i % 7 - 3);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "avx512"))
        return peak_avx512();
    if (!strcmp(what, "avx2"))
        return peak_avx2();
    if (!strcmp(what, "mix"))
        return mix();
    fprintf(stderr, "usage: probe avx512|avx2|mix\n");
    return 2;
}
