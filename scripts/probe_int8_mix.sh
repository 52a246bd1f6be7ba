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
# Needs an x86-64 CPU with AVX2 and an assembler that knows it. The loops
# are in scripts/probe_peak.c (`mix`).
set -e
cd "$(dirname "$0")/.."
R=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -O2 -o "$tmp/mix" scripts/probe_peak.c
grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: */cpu: /'
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx_vnni|avx512f|avx512_vnni|amx_int8)$' | tr '\n' ' ')"
echo "best of $R runs, one thread"
for i in $(seq 1 "$R"); do "$tmp/mix" mix; done | awk -F'\t' '
    $1 == "clock" { if ($2 > ghz) ghz = $2; next }
    { if (!($1 in best)) order[++n] = $1; if ($2 > best[$1]) { best[$1] = $2; gops[$1] = $3 } }
    END {
        printf "clock %.2f GHz\n| mix | multiply-adds a cycle | GOP/s |\n|---|---:|---:|\n", ghz
        for (i = 1; i <= n; i++) printf "| %s | %.1f | %.0f |\n", order[i], best[order[i]], gops[order[i]]
    }'
