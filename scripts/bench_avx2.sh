#!/bin/sh
# AVX2-only speed: strix with an AVX2 kernel set forced (STRIX_KERNELS=avx2,
# and avxvnni where the CPU has AVX-VNNI: the same kernels with VEX vpdpbusd)
# against llama.cpp's llama-bench built for AVX2 only (cmake
# -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# -DGGML_AVX512=OFF), and optionally an earlier strix (STRIX_BEFORE, with
# avx2 forced), run interleaved (each set, llama.cpp, before; again ...)
# ROUNDS times per model and thread count. Prints the CPU's vector flags,
# the load, every round's figure, the medians and the ratios.
#
#   LLAMA_BENCH=/path/to/avx2/llama-bench [STRIX_BEFORE=/path/to/old/strix] \
#     [SETS="avx2 avxvnni"] scripts/bench_avx2.sh "A.gguf B.gguf" [ROUNDS] [PP] [TG] [THREADS]
#
# Each strix run is `strix bench -m MODEL -p PP -n TG -r REPS -t T -o json`,
# each llama.cpp run `llama-bench -m MODEL -p PP -n TG -r REPS -t T -o csv`.
# The defaults (2 rounds, pp32 / tg16, 2 threads, REPS 2) take about 15 s
# per 1.1B-shape model and round on a quiet 2-core machine, so 7 models run
# in about 4 minutes. A round is not started once LIMIT seconds (default
# 540) could be passed, judging by the longest round so far; the table then
# says how many rounds ran. Last, issue 14 item 5's table: per model, pp / tg
# of each strix set and of llama.cpp, and strix-avx2 / llama.cpp.
#
# Issue 14 item 5 (TinyLlama-shape files made as BENCHMARKS.md says):
#   LLAMA_BENCH=/path/to/avx2/llama-bench scripts/bench_avx2.sh "tl1b-q4_k_m.gguf
#     tl1b-q4_0.gguf tl1b-q8_0.gguf tl1b-q4_1.gguf tl1b-q5_0.gguf tl1b-q5_1.gguf
#     tl1b-q5_k_m.gguf"
set -e
MODELS=${1:?usage: scripts/bench_avx2.sh "MODEL.gguf ..." [ROUNDS] [PP] [TG] [THREADS]}
R=${2:-2}
PP=${3:-32}
TG=${4:-16}
TH=${5:-2}
S=${STRIX:-build/strix}
LIMIT=${LIMIT:-540}
. "$(dirname "$0")/lib.sh"
REPS=${REPS:-2} # repetitions inside each program run
if [ -z "$SETS" ]; then
    SETS=avx2
    grep -qw avx_vnni /proc/cpuinfo && SETS="avx2 avxvnni"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "vector flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
    grep -E '^(avx2|fma|f16c|avx_vnni|avx512f|avx512_vnni|amx_int8)$' | tr '\n' ' ')"
echo "strix sets: $SETS"
strix_run() { # label binary model threads set
    STRIX_KERNELS=$5 "$2" bench -m "$3" -p "$PP" -n "$TG" -r "$REPS" -t "$4" -o json |
        awk -v l="$1" -v m="$(basename "$3" .gguf)" -v t="$4" -F'"' '/"test"/ {
            for (i = 1; i <= NF; i++) { if ($i == "test") name = $(i + 2);
                if ($i == "median_ts") { v = $(i + 1); gsub(/[:, ]/, "", v) } }
            print m, l, substr(name, 1, 2) "_t" t, v }' >>"$out"
}
longest=0
rounds=0
for r in $(seq 1 "$R"); do
    r0=$(date +%s)
    if [ $((r0 - start + longest)) -gt "$LIMIT" ]; then
        echo "round $r not started: $((r0 - start)) s so far, a round takes up to $longest s, LIMIT $LIMIT s"
        break
    fi
    echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)"
    for m in $MODELS; do
        for t in $TH; do
            for set in $SETS; do
                strix_run "strix-$set" "$S" "$m" "$t" "$set"
            done
            if [ -n "$LLAMA_BENCH" ]; then
                "$LLAMA_BENCH" -m "$m" -p "$PP" -n "$TG" -r "$REPS" -t "$t" -o csv 2>/dev/null |
                    awk -F, -v m="$(basename "$m" .gguf)" -v t="$t" '{ gsub(/"/, "") }
                        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
                        { kind = $(col["n_prompt"]) > 0 ? "pp" : "tg"
                          print m, "llama.cpp", kind "_t" t, $(col["avg_ts"]) }' >>"$out"
            fi
            [ -z "$STRIX_BEFORE" ] || strix_run before "$STRIX_BEFORE" "$m" "$t" avx2
        done
    done
    rounds=$r
    [ $(($(date +%s) - r0)) -le "$longest" ] || longest=$(($(date +%s) - r0))
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"
sort "$out" | awk '{ k = $1 " " $2 " " $3; v[k] = v[k] " " $4 } END {
    for (k in v) { n = split(v[k], a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        med[k] = a[int((n + 1) / 2)]
        printf "%-14s %-14s %-6s median %8.2f tok/s  (runs:%s)\n", substr(k, 1, index(k, " ") - 1),
            p2(k), p3(k), med[k], v[k] }
    for (k in med) { split(k, p, " "); if (substr(p[2], 1, 6) != "strix-") continue
        b = p[1] " llama.cpp " p[3]; o = p[1] " before " p[3]; a2 = p[1] " strix-avx2 " p[3]
        if (med[b] > 0) printf "ratio %-14s %-6s %s / llama.cpp = %.2f\n", p[1], p[3], p[2], med[k] / med[b]
        if (med[o] > 0) printf "ratio %-14s %-6s %s / before    = %.2f\n", p[1], p[3], p[2], med[k] / med[o]
        if (p[2] != "strix-avx2" && med[a2] > 0)
            printf "ratio %-14s %-6s %s / strix-avx2 = %.2f\n", p[1], p[3], p[2], med[k] / med[a2] } }
    function p2(k,  q) { split(k, q, " "); return q[2] }
    function p3(k,  q) { split(k, q, " "); return q[3] }' | sort
# the table: one row per model and thread count
echo
echo "pp$PP / tg$TG tokens/s, medians of $rounds round(s), REPS $REPS:"
sort "$out" | awk -v sets="$SETS" -v llama="${LLAMA_BENCH:+1}" "$MEDIAN_AWK"'
    { split($3, kt, "_"); k = $1 " " kt[2]; v[k " " $2 " " kt[1]] = v[k " " $2 " " kt[1]] " " $4
      if (!(k in seen)) { seen[k] = 1; rows[++n] = k } }
    function cell(k, l,   p, g) { p = v[k " " l " pp"]; g = v[k " " l " tg"]
        return (p == "" ? "-" : sprintf("%.1f", med(p))) " / " (g == "" ? "-" : sprintf("%.1f", med(g))) }
    function ratio(k, kind,   a, b) { a = v[k " strix-avx2 " kind]; b = v[k " llama.cpp " kind]
        return a == "" || b == "" || med(b) <= 0 ? "-" : sprintf("%.2f", med(a) / med(b)) }
    END {
        ns = split(sets, st, " ")
        h = "| model | threads |"; d = "|---|---:|"
        for (i = 1; i <= ns; i++) { h = h " strix " st[i] " |"; d = d "---:|" }
        if (llama) { h = h " llama.cpp (AVX2 build) | strix avx2 / llama.cpp |"; d = d "---:|---:|" }
        print h; print d
        for (i = 1; i <= n; i++) { k = rows[i]; split(k, p, " "); line = "| " p[1] " | " substr(p[2], 2) " |"
            for (j = 1; j <= ns; j++) line = line " " cell(k, "strix-" st[j]) " |"
            if (llama) line = line " " cell(k, "llama.cpp") " | " ratio(k, "pp") " / " ratio(k, "tg") " |"
            print line } }'
