#!/bin/sh
# What a speculative verify costs on a float target: one batched pass over
# K tokens (strix bench pp K, K = 5..9 is a verify of K - 1 drafted tokens
# plus one) in plain decode steps (tg), i.e. K x tg t/s / ppK t/s. A pass
# bound by bandwidth alone, every weight read once for all K tokens, costs
# about 1 step; a pass bound by the multiply-adds costs K x (flops per
# token / peak) / (weight bytes / bandwidth).
#
#   MODELS=DIR scripts/bench_verify.sh [ROUNDS] [KS] [THREADS]
#
# DIR holds tl1b-f16.gguf (the TinyLlama-1.1B shape as F16; see BENCHMARKS.md
# for how it is made); MODEL=FILE takes another file. BASE=/path/to/strix
# runs a second build (e.g. main's) interleaved with this one (build/strix,
# or STRIX), so each row has a before and an after. Defaults: 3 rounds,
# KS "5 9", threads "1 2": about 3 minutes on an idle 2-core machine (6
# with BASE). Medians over rounds; wall-clock figures, plus the same cost
# from CPU time (cpu_ts), which a loaded machine disturbs less.
set -e
M=${MODEL:-${MODELS:?set MODELS to the folder with tl1b-f16.gguf}/tl1b-f16.gguf}
R=${1:-3}
KS=${2:-5 9}
TH=${3:-1 2}
S=${STRIX:-build/strix}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cpus"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $M"
pp=$(echo "$KS" | tr ' ' ',')
bins="new:$S"
[ -n "$BASE" ] && bins="base:$BASE $bins"
for t in $TH; do
    for r in $(seq "$R"); do
        for b in $bins; do
            name=${b%%:*}
            "${b#*:}" bench -m "$M" -p "$pp" -n 8 -t "$t" -r 2 -o json 2>/dev/null |
                awk -v n="$name" -v t="$t" -F'"test": "|", "threads|"median_ts": |, "min_ts|"cpu_ts": |, "weight' \
                    '/"test"/ { printf "%s %s %s %s %s\n", n, t, $2, $4, $6 }' >>"$tmp/raw"
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "raw rows (build threads test wall_t/s cpu_t/s):"
cat "$tmp/raw"
echo
echo "| build | threads | K | pp K t/s | tg t/s | verify cost, steps (wall) | (CPU time) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for b in $bins; do
    name=${b%%:*}
    for t in $TH; do
        for k in $KS; do
            awk -v n="$name" -v t="$t" -v k="$k" '
                function med(a, c,   i, j, x) {
                    for (i = 2; i <= c; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
                    return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
                $1 == n && $2 == t && $3 == "pp" k { p[++np] = $4; pc[++npc] = $5 }
                $1 == n && $2 == t && $3 == "tg8" { g[++ng] = $4; gc[++ngc] = $5 }
                END {
                    if (!np || !ng) exit
                    P = med(p, np); G = med(g, ng); PC = med(pc, npc); GC = med(gc, ngc)
                    printf "| %s | %s | %s | %.1f | %.2f | %.2f | %.2f |\n", n, t, k, P, G, k * G / P, k * GC / PC
                }' "$tmp/raw"
        done
    done
done
