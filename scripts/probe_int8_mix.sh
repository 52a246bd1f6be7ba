#!/bin/sh
# What an int8 product can reach on an AVX2 core without VNNI: the rate of
# the instruction mixes the packed kernels are made of, in registers and L1
# (no memory traffic), one thread, best of ROUNDS. Prints multiply-adds per
# cycle and GOP/s (2 ops per multiply-add) at the clock a chain of integer
# adds measures.
#
#   scripts/probe_int8_mix.sh [ROUNDS]
#
# Rows:
#   maddubs              VPMADDUBSW alone (32 u8 x s8 products, pairs summed
#                        to int16): the multipliers' own limit
#   maddubs+madd+add     the shortest sequence into int32 (32 multiply-adds)
#   q4 block, broadcast  one token's share of a packed Q4_0 block of 8 rows
#                        (kernels_avx2.c, packed_sub): per 4 activation bytes
#                        a VPBROADCASTD and a VPMADDUBSW, the 8 products summed
#                        in int16, then VPMADDWD, VPADDD (the -8 offset),
#                        VCVTDQ2PS, VMULPS (scales) and VADDPS
#   q4 block, no tail    the same without the int32/float tail
#   q4 block, operand    the activations as VPMADDUBSW's memory operand
#                        (pre-broadcast in memory) instead of VPBROADCASTD
# Needs an x86-64 CPU with AVX2 and an assembler that knows it.
set -e
R=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/mix.c" <<'EOF'
#include <stdio.h>
#include <time.h>
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
#define CL "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
           "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory"
/* times body (MUL multiply-adds per pass) and prints its rate; ymm15 holds
 * int16 ones, ymm12 float ones, ymm13 and ymm14 zeros */
#define RUN(name, mul, body)                                                                      \
    do {                                                                                           \
        long c = m;                                                                                \
        const double t0 = now();                                                                   \
        __asm__ volatile("vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n vpsrlw $15, %%ymm15, %%ymm15\n"    \
                         "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n vpsrld $25, %%ymm12, %%ymm12\n"   \
                         "vpslld $23, %%ymm12, %%ymm12\n vpxor %%ymm13, %%ymm13, %%ymm13\n"      \
                         "vpxor %%ymm14, %%ymm14, %%ymm14\n"                                        \
                         "1:\n" body "sub $1, %0\n jnz 1b\n"                                       \
                         : "+r"(c)                                                                 \
                         : "r"(buf)                                                                \
                         : CL);                                                                    \
        const double r = (double)(mul) * (double)m / (now() - t0) / 1e9;                          \
        printf("%s\t%.2f\t%.0f\n", name, r / ghz, 2 * r);                                          \
    } while (0)
#define B(o, r) "vpbroadcastd " #o "(%1), %%ymm" #r "\n"
#define M(w, s, d) "vpmaddubsw %%ymm" #s ", %%ymm" #w ", %%ymm" #d "\n"
#define MM(w, o, d) "vpmaddubsw " #o "(%1), %%ymm" #w ", %%ymm" #d "\n"
#define AW(a, d) "vpaddw %%ymm" #a ", %%ymm" #d ", %%ymm" #d "\n"
#define SEQ(o, t, a)                                                                              \
    MM(0, o, t) "vpmaddwd %%ymm15, %%ymm" #t ", %%ymm" #t "\n vpaddd %%ymm" #t ", %%ymm" #a        \
                ", %%ymm" #a "\n"
/* the tail of a token's block: int16 pairs to int32, the offset, to float,
 * times the scales, into the accumulator ymm14 */
#define TAIL(d)                                                                                    \
    "vpmaddwd %%ymm15, %%ymm" #d ", %%ymm" #d "\n vpaddd %%ymm13, %%ymm" #d ", %%ymm" #d          \
    "\n vcvtdq2ps %%ymm" #d ", %%ymm" #d "\n vmulps %%ymm12, %%ymm" #d ", %%ymm" #d                \
    "\n vaddps %%ymm" #d ", %%ymm14, %%ymm14\n"
/* one token's 8 products of a block, summed in int16 in a chain (as dot8) */
#define BLOCK_BCAST(o, d)                                                                          \
    B(o, d) M(0, d, d) B(o + 4, 9) M(1, 9, 9) AW(9, d) B(o + 8, 10) M(2, 10, 10) AW(10, d)          \
        B(o + 12, 11) M(3, 11, 11) AW(11, d) B(o + 16, 9) M(4, 9, 9) AW(9, d) B(o + 20, 10)         \
            M(5, 10, 10) AW(10, d) B(o + 24, 9) M(6, 9, 9) AW(9, d) B(o + 28, 10) M(7, 10, 10)      \
                AW(10, d)
#define BLOCK_MEM(o, d)                                                                            \
    MM(0, o, d) MM(1, o + 32, 9) AW(9, d) MM(2, o + 64, 10) AW(10, d) MM(3, o + 96, 11) AW(11, d)   \
        MM(4, o + 128, 9) AW(9, d) MM(5, o + 160, 10) AW(10, d) MM(6, o + 192, 9) AW(9, d)          \
            MM(7, o + 224, 10) AW(10, d)
int main(void)
{
    static signed char buf[1024] __attribute__((aligned(64)));
    for (int i = 0; i < 1024; i++)
        buf[i] = (signed char)(i % 7 - 3);
    const long n = 100000000;
    long c = n;
    unsigned long x = 0;
    double t0 = now();
    __asm__ volatile("1: add $1,%0\n add $1,%0\n add $1,%0\n add $1,%0\n sub $1,%1\n jnz 1b"
                     : "+r"(x), "+r"(c));
    const double ghz = 4.0 * (double)n / (now() - t0) / 1e9;
    printf("clock\t%.2f\n", ghz);
    const long m = 10000000;
    RUN("maddubs", 12 * 32,
        MM(0, 0, 2) MM(1, 32, 3) MM(2, 64, 4) MM(3, 96, 5) MM(4, 128, 6) MM(5, 160, 7) MM(6, 192, 8)
            MM(7, 224, 9) MM(0, 256, 10) MM(1, 288, 11) MM(2, 320, 12) MM(3, 352, 13));
    RUN("maddubs+madd+add", 12 * 32,
        SEQ(0, 2, 8) SEQ(32, 3, 9) SEQ(64, 4, 10) SEQ(96, 5, 11) SEQ(128, 6, 12) SEQ(160, 7, 13)
            SEQ(192, 2, 8) SEQ(224, 3, 9) SEQ(256, 4, 10) SEQ(288, 5, 11) SEQ(320, 6, 12)
                SEQ(352, 7, 13));
    RUN("q4 block, broadcast", 2 * 8 * 32, BLOCK_BCAST(0, 8) TAIL(8) BLOCK_BCAST(32, 11) TAIL(11));
    RUN("q4 block, no tail", 2 * 8 * 32, BLOCK_BCAST(0, 8) BLOCK_BCAST(32, 11));
    RUN("q4 block, operand", 2 * 8 * 32, BLOCK_MEM(0, 8) TAIL(8) BLOCK_MEM(256, 11) TAIL(11));
    return 0;
}
EOF
${CC:-cc} -O2 -o "$tmp/mix" "$tmp/mix.c"
grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: */cpu: /'
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx_vnni|avx512f|avx512_vnni|amx_int8)$' | tr '\n' ' ')"
echo "best of $R runs, one thread"
for i in $(seq 1 "$R"); do "$tmp/mix"; done | awk -F'\t' '
    $1 == "clock" { if ($2 > ghz) ghz = $2; next }
    { if (!($1 in best)) order[++n] = $1; if ($2 > best[$1]) { best[$1] = $2; gops[$1] = $3 } }
    END {
        printf "clock %.2f GHz\n| mix | multiply-adds a cycle | GOP/s |\n|---|---:|---:|\n", ghz
        for (i = 1; i <= n; i++) printf "| %s | %.1f | %.0f |\n", order[i], best[order[i]], gops[order[i]]
    }'
