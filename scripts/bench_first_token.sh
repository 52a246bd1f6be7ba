#!/bin/sh
# Start to first token on one GGUF file, whole process: `strix run` with a
# 5-token prompt and one generated token against llama.cpp's
# llama-batched-bench (-npp 5 -ntg 1 -npl 1: it loads the model, runs a warm-up
# decode, then the 5-token prompt and one token; llama.cpp's tree builds no
# plain single-prompt program by default), interleaved ROUNDS times. Both
# include mapping and checking the file and laying out the weights (strix
# packs them, llama.cpp repacks the types it has CPU layouts for). Reports
# each process's CPU time (task-clock from perf stat) and wall time, the
# medians, and llama.cpp / strix (above 1: strix starts faster).
#
#   LLAMA_BB=/path/to/llama-batched-bench scripts/bench_first_token.sh MODEL.gguf [ROUNDS] [THREADS]
set -e
. "$(dirname "$0")/lib.sh"
M=${1:?usage: LLAMA_BB=llama-batched-bench scripts/bench_first_token.sh MODEL.gguf [ROUNDS] [THREADS]}
R=${2:-5}
T=${3:-1}
S=${STRIX:-build/strix}
BB=${LLAMA_BB:?LLAMA_BB: llama.cpp llama-batched-bench binary}
out=$(mktemp)
trap 'rm -f "$out" "$out.p"' EXIT
one() { # label command...: appends "label cpu_ms wall_ms"
    l=$1
    shift
    t0=$(date +%s%N)
    perf stat -x, -e task-clock -o "$out.p" "$@" >/dev/null 2>&1
    w=$(( ($(date +%s%N) - t0) / 1000000 ))
    awk -F, -v l="$l" -v w="$w" '/task-clock/ { c = $1 } END { printf "%s %s %s\n", l, c, w }' \
        "$out.p" >>"$out"
}
for r in $(seq 1 "$R"); do
    one llama.cpp "$BB" -m "$M" -c 64 -b 64 -ub 64 -npp 5 -ntg 1 -npl 1 -t "$T"
    one strix "$S" run -m "$M" -p "Once upon a time" -n 1 --temp 0 -t "$T" -c 64
done
echo "$(basename "$M"), start to first token, $T thread(s); load: $(uptime | sed 's/.*load average: //')"
awk "$MEDIAN_AWK"'{ c[$1] = c[$1] " " $2; w[$1] = w[$1] " " $3 }
     END { for (k in c) printf "%-10s CPU ms median %9.1f (runs:%s)  wall ms median %6d (runs:%s)\n", k, med(c[k]), c[k], med(w[k]), w[k]
           printf "llama.cpp / strix: CPU %.2f, wall %.2f\n", med(c["llama.cpp"]) / med(c["strix"]), med(w["llama.cpp"]) / med(w["strix"]) }' "$out"
