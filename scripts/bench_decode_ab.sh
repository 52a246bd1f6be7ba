#!/bin/sh
# One-token (decode) variants of the packed Q4_0 / Q8_0 product, A/B
# (issue 14 item 1). Each variant is build/strix with only
# src/kernels/kernels_avx512.c rebuilt with its defines (ONE_NG: row groups
# of 16 read side by side, each its own stream; ONE_PF: software prefetch
# distance in bytes per stream, 0 none; ONE_HINT: the prefetch hint) and
# relinked against the other objects of build/ (run `make` first). Runs
# `strix bench -p 0 -n TG` of every variant, interleaved (variant, next
# variant, ...; then the next model and thread count) ROUNDS times; prints
# per variant the median wall t/s and CPU t/s (tokens per CPU second, all
# threads counted: on a loaded machine the steadier figure) and their ratio
# to the first variant. The results are the same bit for bit in every
# variant (each output row's sums run in one order), so only speed differs.
#
#   scripts/bench_decode_ab.sh MODEL.gguf[,MODEL...] [ROUNDS] [TG] [THREADS]
#   VARIANTS: space-separated NAME:DEFINES (commas between defines),
#     default "base: ng2:-DONE_NG=2 ng4:-DONE_NG=4 pf0:-DONE_PF=0"
# About 4 minutes on 2 quiet cores for the TinyLlama-shape files:
#   scripts/bench_decode_ab.sh tl1b-q8_0.gguf,tl1b-q4_0.gguf 3 16
set -e
MS=${1:?usage: scripts/bench_decode_ab.sh MODEL.gguf[,MODEL...] [ROUNDS] [TG] [THREADS]}
R=${2:-3}
TG=${3:-16}
TH=${4:-1 2}
V=${VARIANTS:-base: ng2:-DONE_NG=2 ng4:-DONE_NG=4 pf0:-DONE_PF=0}
B=build
. "$(dirname "$0")/lib.sh"
[ -x "$B/strix" ] || { echo "build/strix missing: run make first" >&2; exit 1; }
obj=$B/obj/kernels/kernels_avx512.o
# the compile command make uses for the file, its output renamed per variant
cmd=$(make -s -n -B "$obj" | grep -- "-o $obj" | head -n 1)
[ -n "$cmd" ] || { echo "cannot find how make builds $obj" >&2; exit 1; }
link=$(make -s -n -B "$B/strix" | grep -- "-o $B/strix" | head -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=
for v in $V; do
    n=${v%%:*}
    defs=$(echo "${v#*:}" | tr ',' ' ')
    mkdir -p "$B/ab/$n"
    ${cmd% -o *} $defs -o "$B/ab/$n/kernels_avx512.o"
    cp "$B/libstrix.a" "$B/ab/$n/libstrix.a"
    ar r "$B/ab/$n/libstrix.a" "$B/ab/$n/kernels_avx512.o" 2>/dev/null
    # the link line with the variant's library and output
    eval "$(echo "$link" | sed "s|-o $B/strix|-o $B/ab/$n/strix|; s|$B/libstrix.a|$B/ab/$n/libstrix.a|")"
    names="$names $n"
done
echo "load: $(uptime)"
for r in $(seq 1 "$R"); do
    for t in $TH; do
        for m in $(echo "$MS" | tr ',' ' '); do
            for n in $names; do
                j=$("$B/ab/$n/strix" bench -m "$m" -p 0 -n "$TG" -r 2 -t "$t" -o json | grep '"tg')
                ts=$(echo "$j" | sed 's/.*"median_ts": *\([0-9.]*\).*/\1/')
                cs=$(echo "$j" | sed 's/.*"cpu_ts": *\([0-9.]*\).*/\1/')
                echo "$n $(basename "$m") $t $ts $cs" >>"$tmp/runs"
            done
        done
    done
done
echo "load: $(uptime)"
awk -v names="$names" "$MEDIAN_AWK"'
    { k = $2 " " $3 " " $1; w[k] = w[k] " " $4; c[k] = c[k] " " $5; mt[$2 " " $3] = 1 }
    END {
        nv = split(names, v, " ")
        print "| model | threads | variant | t/s | CPU t/s | t/s vs " v[1] " | CPU t/s vs " v[1] " | runs (t/s) |"
        print "|---|---:|---|---:|---:|---:|---:|---|"
        for (m in mt) {
            split(m, p, " "); b = m " " v[1]
            for (i = 1; i <= nv; i++) {
                k = m " " v[i]
                printf "| %s | %s | %s | %.2f | %.2f | %.3f | %.3f |%s |\n", p[1], p[2], v[i], med(w[k]), med(c[k]),
                    med(w[k]) / med(w[b]), med(c[k]) / med(c[b]), w[k]
            }
        }
    }' "$tmp/runs"
