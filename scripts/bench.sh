#!/bin/sh
# Side-by-side speed: strix bench, and llama.cpp's llama-bench when
# LLAMA_BENCH points at one, run interleaved (strix, llama.cpp, strix, ...)
# ROUNDS times per thread count; prints each round and the medians.
#
#   LLAMA_BENCH=/path/to/llama-bench scripts/bench.sh MODEL.gguf [ROUNDS] [PP] [TG]
set -e
M=${1:?usage: scripts/bench.sh MODEL.gguf [ROUNDS] [PP] [TG]}
R=${2:-5}
PP=${3:-128}
TG=${4:-128}
S=${STRIX:-build/strix}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$R"); do
    for t in 1 2; do
        "$S" bench -m "$M" --p-tokens "$PP" -n "$TG" --reps 3 -t "$t" |
            awk -v t="$t" '/^pp/ {print "strix pp t" t, $2} /^tg/ {print "strix tg t" t, $2}' >>"$out"
        if [ -n "$LLAMA_BENCH" ]; then
            "$LLAMA_BENCH" -m "$M" -p "$PP" -n "$TG" -r 3 -t "$t" -o csv 2>/dev/null |
                awk -F, -v t="$t" '{ gsub(/"/, "") }
                    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
                    { kind = $(col["n_prompt"]) > 0 ? "pp" : "tg"; print "llama.cpp " kind " t" t, $(col["avg_ts"]) }' >>"$out"
        fi
    done
done
sort "$out" | awk '{ k = $1 " " $2 " " $3; v[k] = v[k] " " $4 } END {
    for (k in v) { n = split(v[k], a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        printf "%-16s median %9.1f tok/s  (runs:%s)\n", k, a[int((n + 1) / 2)], v[k] } }' | sort
