#!/bin/sh
# Decode against the bandwidth limit: a streaming-read probe
# (`strix bench --bandwidth`) and `strix bench -p 0 -n TG` on each model,
# interleaved ROUNDS times per thread count. A generated token reads every
# weight once except the token embeddings (one row), so the share of the
# limit is t/s x (weight bytes - embedding bytes) / probe bandwidth. Printed
# by the wall clock and, for one thread, by CPU time (the process's CPU
# seconds; on a loaded, time-sliced machine the only figure that holds).
#
#   scripts/bench_bw.sh MODEL.gguf[,MODEL.gguf...] [ROUNDS] [TG] [THREADS]
set -e
MS=${1:?usage: scripts/bench_bw.sh MODEL.gguf[,MODEL...] [ROUNDS] [TG] [THREADS]}
R=${2:-3}
TG=${3:-32}
TH=${4:-1 2}
S=${STRIX:-build/strix}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
field() { # JSON field $1 of stdin's lines, one per line
    awk -F'"' -v f="$1" '{ for (i = 1; i <= NF; i++) if ($i == f) { v = $(i + 1); gsub(/[:, }]/, "", v); print v } }'
}
for r in $(seq 1 "$R"); do
    for t in $TH; do
        j=$("$S" bench --bandwidth --bw-mib 1024 -t "$t" -r 3 -o json)
        echo "bw t$t $(echo "$j" | field best_gbs) $(echo "$j" | field cpu_gbs)" >>"$out"
        for m in $(echo "$MS" | tr ',' ' '); do
            emb=$("$S" info -m "$m" | awk '$1 == "token_embd.weight" { print $(NF - 1) }')
            j=$("$S" bench -m "$m" -p 0 -n "$TG" -r 3 -t "$t" -o json | grep '"tg')
            wb=$(echo "$j" | field weight_bytes)
            echo "tg t$t $(basename "$m") $(echo "$j" | field median_ts) $(echo "$j" | field cpu_ts) $((wb - ${emb:-0}))" >>"$out"
        done
    done
done
awk '$1 == "bw" { bw[$2] = bw[$2] " " $3; bwc[$2] = bwc[$2] " " $4 }
     $1 == "tg" { k = $2 " " $3; ts[k] = ts[k] " " $4; tc[k] = tc[k] " " $5; by[k] = $6 }
     function med(s,   a, n, i, j, x) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
         if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }; return a[int((n + 1) / 2)] }
     END {
         for (t in bw) printf "probe %s: %.2f GB/s wall, %.2f GB/s of CPU (medians of%s | %s)\n", t, med(bw[t]), med(bwc[t]), bw[t], bwc[t]
         for (k in ts) { split(k, p, " "); g = by[k] / 1e9
             printf "%-28s %s: %8.2f t/s (%.3f GB/token) share %5.1f%%   by CPU: %8.2f t/s share %5.1f%%\n", p[2], p[1],
                 med(ts[k]), g, 100 * med(ts[k]) * g / med(bw[p[1]]), med(tc[k]), 100 * med(tc[k]) * g / med(bwc[p[1]]) } }' "$out" | sort
