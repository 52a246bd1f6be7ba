#!/bin/sh
# Decode against the bandwidth limit (issue 14 item 1): a streaming-read
# probe (`strix bench --bandwidth`), `strix bench -p 0 -n TG` on each model
# and, when LLAMA_BENCH points at one, llama.cpp's `llama-bench -p 0 -n TG`
# on the same file, interleaved (probe, strix, llama.cpp, next model, ...)
# ROUNDS times per thread count; medians over the rounds. A generated token
# reads every weight once except the token embeddings (one row), so the
# share of the limit is t/s x (weight bytes - embedding bytes) / probe GB/s,
# the bytes from strix's count of the file's weights (llama.cpp reads the
# same file). Also strix's share by CPU time (its tokens per CPU second,
# all threads' seconds counted, against the probe's bytes per thread-CPU
# second: on a loaded, time-sliced machine the only figure that holds;
# llama-bench reports no CPU time).
# Prints one table row per model and thread count, then the probe's rows.
#
#   [LLAMA_BENCH=.../llama-bench] scripts/bench_bw.sh MODEL.gguf[,MODEL...] [ROUNDS] [TG] [THREADS]
#   THREADS: space-separated (default "1 2"); STRIX: the tool (build/strix).
# The table of BENCHMARKS.md (the TinyLlama-shape files made as it says;
# about 4 minutes on 2 quiet cores):
#   LLAMA_BENCH=.../llama-bench scripts/bench_bw.sh \
#     tl1b-f16.gguf,tl1b-q8_0.gguf,tl1b-q4_0.gguf,tl1b-q4_k_m.gguf 3 16
set -e
MS=${1:?usage: scripts/bench_bw.sh MODEL.gguf[,MODEL...] [ROUNDS] [TG] [THREADS]}
R=${2:-3}
TG=${3:-32}
TH=${4:-1 2}
S=${STRIX:-build/strix}
. "$(dirname "$0")/lib.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
field() { # JSON field $1 of stdin's lines, one per line
    awk -F'"' -v f="$1" '{ for (i = 1; i <= NF; i++) if ($i == f) { v = $(i + 1); gsub(/[:, }]/, "", v); print v } }'
}
sfield() { # the first string field $1 of stdin
    awk -F'"' -v f="$1" '{ for (i = 1; i <= NF; i++) if ($i == f) { print $(i + 2); exit } }'
}
echo "load: $(uptime)"
for r in $(seq 1 "$R"); do
    for t in $TH; do
        j=$("$S" bench --bandwidth --bw-mib 1024 -t "$t" -r 3 -o json)
        echo "bw t$t $(echo "$j" | field best_gbs) $(echo "$j" | field cpu_gbs) $(echo "$j" | sfield read)" >>"$out"
        for m in $(echo "$MS" | tr ',' ' '); do
            b=$(basename "$m")
            emb=$("$S" info -m "$m" | awk '$1 == "token_embd.weight" { print $(NF - 1) }')
            j=$("$S" bench -m "$m" -p 0 -n "$TG" -r 3 -t "$t" -o json | grep '"tg')
            wb=$(echo "$j" | field weight_bytes)
            echo "st t$t $b $(echo "$j" | field median_ts) $(echo "$j" | field cpu_ts) $((wb - ${emb:-0}))" >>"$out"
            if [ -n "$LLAMA_BENCH" ]; then
                ts=$("$LLAMA_BENCH" -m "$m" -p 0 -n "$TG" -r 3 -t "$t" -o csv 2>/dev/null |
                    awk -F, '{ gsub(/"/, "") } NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                             { print $(c["avg_ts"]) }')
                echo "ll t$t $b ${ts:-0}" >>"$out"
            fi
        done
    done
done
echo "load: $(uptime)"
awk "$MEDIAN_AWK"'
    $1 == "bw" { bw[$2] = bw[$2] " " $3; bwc[$2] = bwc[$2] " " $4; kind = $5 }
    $1 == "st" { k = $3 " " $2; ts[k] = ts[k] " " $4; tc[k] = tc[k] " " $5; by[k] = $6 }
    $1 == "ll" { k = $3 " " $2; ll[k] = ll[k] " " $4 }
    END {
        print "| model | threads | GB/token | probe GB/s | strix t/s | strix share | llama.cpp t/s | llama.cpp share | strix share by CPU |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        n = 0
        for (k in ts) keys[++n] = k
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (keys[j] < keys[i]) { x = keys[i]; keys[i] = keys[j]; keys[j] = x }
        for (i = 1; i <= n; i++) {
            k = keys[i]; split(k, p, " "); g = by[k] / 1e9; b = med(bw[p[2]]); s = med(ts[k])
            lt = (k in ll) ? sprintf("%.2f", med(ll[k])) : "-"
            ls = (k in ll) ? sprintf("%.1f%%", 100 * med(ll[k]) * g / b) : "-"
            printf "| %s | %s | %.3f | %.2f | %.2f | %.1f%% | %s | %s | %.1f%% |\n", p[1], substr(p[2], 2), g, b, s,
                100 * s * g / b, lt, ls, 100 * med(tc[k]) * g / (med(bwc[p[2]]) / substr(p[2], 2))
        }
        for (t in bw) printf "probe (%s) %s: %.2f GB/s wall, %.2f GB/s of thread CPU (medians; rounds:%s |%s)\n", kind, t,
            med(bw[t]), med(bwc[t]), bw[t], bwc[t]
        for (k in ts) printf "runs %s: strix%s | llama.cpp%s\n", k, ts[k], (k in ll) ? ll[k] : " -"
    }' "$out"
