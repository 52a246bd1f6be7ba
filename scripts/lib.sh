# scripts/lib.sh - pieces the benchmark scripts share; sourced, not run:
#   . "$(dirname "$0")/lib.sh"
#
# MEDIAN_AWK: an awk function, med(s), the median of the numbers in the
# space-separated string s (of an even count, the lower middle one). Put it
# before the program: awk "$MEDIAN_AWK"' END { print med(v) }'
MEDIAN_AWK='function med(s,   a, n, i, j, x) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++)
        for (j = i + 1; j <= n; j++)
            if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
    return a[int((n + 1) / 2)] }
'

# The random-weight models and decode-speed rounds of bench_cache.sh and
# bench_ffn.sh. They read the caller's STRIX (the tool), VOCAB (a GGUF whose
# vocabulary the models take), TMP (a scratch folder) and COMMON (`strix
# synth` flags every model gets).
#
# synth NAME FLAGS...: $TMP/NAME.gguf, made by `strix synth` with $COMMON and
# FLAGS; on failure synth's message and exit.
synth() {
    name=$1
    shift
    "$STRIX" synth -m "$VOCAB" -o "$TMP/$name.gguf" $COMMON "$@" >/dev/null 2>"$TMP/synth.err" ||
        { cat "$TMP/synth.err" >&2; exit 1; }
}

# run_speed NAME ROUND RUN_FLAGS...: one greedy one-thread `strix run` of
# $TMP/NAME.gguf; its generation tok/s is appended to $TMP/NAME.speed, its
# messages kept in $TMP/NAME.ROUND.err.
run_speed() {
    name=$1
    round=$2
    shift 2
    "$STRIX" run -m "$TMP/$name.gguf" --temp 0 -t 1 "$@" 2>"$TMP/$name.$round.err" >/dev/null
    grep -o 'generation: [0-9]* tokens, [0-9.]* tok/s' "$TMP/$name.$round.err" |
        awk '{print $4}' >> "$TMP/$name.speed"
}

# median_of FILE: the median of the numbers in FILE, one a line (of an even
# count, the lower middle one, as MEDIAN_AWK).
median_of() {
    sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
