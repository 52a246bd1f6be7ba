#!/bin/sh
# Side-by-side speed: `strix bench` and, when LLAMA_BENCH points at one,
# llama.cpp's llama-bench on the same file, run interleaved (strix,
# llama.cpp, strix, ...) ROUNDS times per thread count. Prints every round's
# figure, the medians and the ratio strix / llama.cpp, and each program's
# peak resident memory (from /usr/bin/time when installed).
#
#   LLAMA_BENCH=/path/to/llama-bench scripts/bench.sh MODEL.gguf [ROUNDS] [PP] [TG] [THREADS]
#   THREADS is a space-separated list (default "1 2").
set -e
M=${1:?usage: scripts/bench.sh MODEL.gguf [ROUNDS] [PP] [TG] [THREADS]}
R=${2:-5}
PP=${3:-128}
TG=${4:-128}
TH=${5:-1 2}
S=${STRIX:-build/strix}
REPS=${REPS:-3} # repetitions inside each program run
out=$(mktemp)
mem=$(mktemp)
trap 'rm -f "$out" "$mem"' EXIT
timed() { # runs "$@", appending its peak RSS (KiB) to $mem under label $LABEL
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -o "$mem.one" -f "%M" "$@"
        echo "$LABEL $(cat "$mem.one")" >>"$mem"
        rm -f "$mem.one"
    else
        "$@"
    fi
}
for r in $(seq 1 "$R"); do
    for t in $TH; do
        LABEL="strix t$t" timed "$S" bench -m "$M" -p "$PP" -n "$TG" -r "$REPS" -t "$t" -o json |
            awk -v t="$t" -F'"' '/"test"/ { for (i = 1; i <= NF; i++) { if ($i == "test") name = $(i + 2);
                if ($i == "median_ts") { v = $(i + 1); gsub(/[:, ]/, "", v) } }
                print "strix " substr(name, 1, 2) " t" t, v }' >>"$out"
        if [ -n "$LLAMA_BENCH" ]; then
            LABEL="llama.cpp t$t" timed "$LLAMA_BENCH" -m "$M" -p "$PP" -n "$TG" -r "$REPS" -t "$t" -o csv 2>/dev/null |
                awk -F, -v t="$t" '{ gsub(/"/, "") }
                    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
                    { kind = $(col["n_prompt"]) > 0 ? "pp" : "tg"; print "llama.cpp " kind " t" t, $(col["avg_ts"]) }' >>"$out"
        fi
    done
done
sort "$out" | awk '{ k = $1 " " $2 " " $3; v[k] = v[k] " " $4 } END {
    for (k in v) { n = split(v[k], a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        med[k] = a[int((n + 1) / 2)]
        printf "%-16s median %9.2f tok/s  (runs:%s)\n", k, med[k], v[k] }
    for (k in med) { split(k, p, " "); if (p[1] == "strix" && med["llama.cpp " p[2] " " p[3]] > 0)
        printf "ratio %s %s: strix / llama.cpp = %.2f\n", p[2], p[3], med[k] / med["llama.cpp " p[2] " " p[3]] } }' | sort
if [ -s "$mem" ]; then
    sort "$mem" | awk '{ k = $1 " " $2; if ($3 > m[k]) m[k] = $3 } END { for (k in m) printf "peak RSS %-14s %8.1f MiB\n", k, m[k] / 1024 }' | sort
fi
