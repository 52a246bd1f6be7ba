#!/bin/sh
# Batched generation side by side: `strix bench -npl` and, when
# LLAMA_BATCHED_BENCH points at one, llama.cpp's llama-batched-bench on the
# same file, interleaved (strix, llama.cpp, strix, ...) ROUNDS times per
# thread count. B sequences share a prompt of DEPTH tokens (llama.cpp: -pps)
# and each decodes TG tokens, one per step; the figure is the aggregate
# generation speed (B x TG / time of the steps). Prints every round, the
# medians, strix's speed-up over B = 1 and the ratio strix / llama.cpp. For
# strix also the speed by CPU time (t/s of the process's CPU seconds), which
# a loaded machine's time slicing moves less than the wall clock.
#
#   LLAMA_BATCHED_BENCH=/path/to/llama-batched-bench \
#       scripts/bench_batched.sh MODEL.gguf [ROUNDS] [NPL] [DEPTH] [TG] [THREADS]
#   NPL: comma list (default 1,2,4,8,16,32,64); THREADS: space-separated (default "1 2").
#   STRIX_B=/path/to/another/strix: a second build (e.g. before a change),
#   interleaved with the first and printed as strixB, with its ratio.
set -e
. "$(dirname "$0")/lib.sh"
M=${1:?usage: scripts/bench_batched.sh MODEL.gguf [ROUNDS] [NPL] [DEPTH] [TG] [THREADS]}
R=${2:-3}
NPL=${3:-1,2,4,8,16,32,64}
D=${4:-0}
TG=${5:-16}
TH=${6:-1 2}
S=${STRIX:-build/strix}
REPS=${REPS:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
max=$(echo "$NPL" | tr ',' '\n' | sort -n | tail -1)
run_strix() { # binary label threads
    "$1" bench -m "$M" -npl "$NPL" -d "$D" -n "$TG" -r "$REPS" -t "$3" -o json |
        awk -v t="$3" -v l="$2" -F'"' '/"npl"/ { for (i = 1; i <= NF; i++) {
            if ($i == "npl") { b = $(i + 1); gsub(/[:, ]/, "", b) }
            if ($i == "aggregate_ts") { v = $(i + 1); gsub(/[:, ]/, "", v) }
            if ($i == "cpu_ts") { c = $(i + 1); gsub(/[:, ]/, "", c) } }
            printf "%s t%s B%03d %s\n%s-cpu t%s B%03d %s\n", l, t, b, v, l, t, b, c }' >>"$out"
}
for r in $(seq 1 "$R"); do
    for t in $TH; do
        run_strix "$S" strix "$t"
        if [ -n "$STRIX_B" ]; then run_strix "$STRIX_B" strixB "$t"; fi
        if [ -n "$LLAMA_BATCHED_BENCH" ]; then
            "$LLAMA_BATCHED_BENCH" -m "$M" -c $((max * (D + TG) + 64)) -b 2048 -npp "$D" -ntg "$TG" \
                -npl "$NPL" -pps -t "$t" --output-format jsonl 2>/dev/null |
                awk -v t="$t" -F'"' '/"pl"/ { for (i = 1; i <= NF; i++) {
                    if ($i == "pl") { b = $(i + 1); gsub(/[:, ]/, "", b) }
                    if ($i == "speed_tg") { v = $(i + 1); gsub(/[:, }]/, "", v) } }
                    printf "llama.cpp t%s B%03d %s\n", t, b, v }' >>"$out"
        fi
    done
done
sort "$out" | awk "$MEDIAN_AWK"'{ k = $1 " " $2 " " $3; v[k] = v[k] " " $4 } END {
    for (k in v) { m[k] = med(v[k])
        printf "%-22s median %9.2f tok/s  (runs:%s)\n", k, m[k], v[k] }
    for (k in m) { split(k, p, " "); one = m[p[1] " " p[2] " B001"]
        if (one > 0) printf "speed-up %-10s %s %s over B1 = %.2f\n", p[1], p[2], p[3], m[k] / one
        if (p[1] == "strix" && m["strixB " p[2] " " p[3]] > 0)
            printf "ratio %s %s: strix / strixB = %.2f\n", p[2], p[3], m[k] / m["strixB " p[2] " " p[3]]
        if (p[1] == "strix-cpu" && m["strixB-cpu " p[2] " " p[3]] > 0)
            printf "ratio %s %s: strix / strixB (CPU time) = %.2f\n", p[2], p[3], m[k] / m["strixB-cpu " p[2] " " p[3]]
        if (p[1] == "strix" && m["llama.cpp " p[2] " " p[3]] > 0)
            printf "ratio %s %s: strix / llama.cpp = %.2f\n", p[2], p[3], m[k] / m["llama.cpp " p[2] " " p[3]] } }' | sort
