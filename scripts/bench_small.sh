#!/bin/sh
# Small models, whole process, one thread: `strix run` against llama2.c's
# run.c (build it from llama2.c's sources: gcc -Ofast -march=native -o run
# run.c -lm; point RUNC at it) on the same llama2.c checkpoint and
# tokenizer, greedy, the same prompt and token count, interleaved ROUNDS
# times (both stop at a generated BOS, as run.c does). Reports each program's process CPU time (task-clock from perf stat,
# which a loaded machine's time slicing does not move) and wall time, the
# medians, and run.c / strix (above 1: strix is faster); then the same for
# start-up alone (the prompt and one generated token), and the bare process:
# `strix --help` against /bin/true.
#
# llama2.c's int8 exports (version 2, e.g. stories3M-q80.bin) run in its
# runq.c (built the same way): point RUNC at runq for them.
#
#   RUNC=/path/to/run scripts/bench_small.sh stories260K.bin tok512.bin [ROUNDS] [STEPS]
#   RUNC=/path/to/runq scripts/bench_small.sh stories3M-q80.bin tok4096.bin [ROUNDS] [STEPS]
#
# STRIX_BEFORE=/path/to/an/earlier/strix adds that build to every round
# (rows "before" and "before-1st") and prints before / strix.
set -e
. "$(dirname "$0")/lib.sh"
M=${1:?usage: RUNC=run scripts/bench_small.sh MODEL.bin TOKENIZER.bin [ROUNDS] [STEPS]}
V=${2:?tokenizer}
R=${3:-7}
N=${4:-256}
S=${STRIX:-build/strix}
RUNC=${RUNC:?RUNC: llama2.c run binary}
P="Once upon a time"
np=$("$S" tokenize -m "$M" --vocab "$V" -p "$P" --ids 2>/dev/null | wc -w)
out=$(mktemp)
trap 'rm -f "$out" "$out.p"' EXIT
one() { # label command...: appends "label cpu_ms wall_ms"
    l=$1
    shift
    perf stat -x, -e task-clock -o "$out.p" "$@" >/dev/null 2>&1
    awk -F, -v l="$l" '/task-clock/ { c = $1 } END { printf "%s %s ", l, c }' "$out.p" >>"$out"
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    echo "$(( ($(date +%s%N) - t0) / 1000000 ))" >>"$out"
}
for r in $(seq 1 "$R"); do
    # run.c's -n counts the prompt's tokens (with BOS) too
    one runc "$RUNC" "$M" -z "$V" -t 0 -n "$N" -i "$P"
    one strix "$S" run -m "$M" --vocab "$V" -p "$P" -n $((N - np)) --temp 0 -t 1
    # start-up: the prompt and one generated token
    one runc-1st "$RUNC" "$M" -z "$V" -t 0 -n $((np + 1)) -i "$P"
    one strix-1st "$S" run -m "$M" --vocab "$V" -p "$P" -n 1 --temp 0 -t 1
    if [ -n "$STRIX_BEFORE" ]; then
        one before "$STRIX_BEFORE" run -m "$M" --vocab "$V" -p "$P" -n $((N - np)) --temp 0 -t 1
        one before-1st "$STRIX_BEFORE" run -m "$M" --vocab "$V" -p "$P" -n 1 --temp 0 -t 1
    fi
    # the process alone
    one true /bin/true
    one strix-help "$S" --help
done
echo "$(basename "$M"), $N tokens, 1 thread; load: $(uptime | sed 's/.*load average: //')"
awk "$MEDIAN_AWK"'{ c[$1] = c[$1] " " $2; w[$1] = w[$1] " " $3 }
     END { for (k in c) printf "%-10s CPU ms median %8.2f (runs:%s)  wall ms median %6d (runs:%s)\n", k, med(c[k]), c[k], med(w[k]), w[k]
           printf "run.c / strix: CPU %.2f, wall %.2f\n", med(c["runc"]) / med(c["strix"]), med(w["runc"]) / med(w["strix"])
           printf "to the first token, run.c / strix: CPU %.2f, wall %.2f\n", med(c["runc-1st"]) / med(c["strix-1st"]), med(w["runc-1st"]) / med(w["strix-1st"])
           if ("before" in c)
               printf "before / strix: CPU %.2f (to the first token %.2f)\n", med(c["before"]) / med(c["strix"]), med(c["before-1st"]) / med(c["strix-1st"]) }' "$out"
