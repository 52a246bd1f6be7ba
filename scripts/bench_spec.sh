#!/bin/sh
# Speculative decoding speed: the whole table of issue 10, unattended.
#
#   MODELS=DIR [LLAMA_SPECULATIVE=.../llama-speculative LLAMA_BENCH=.../llama-bench] \
#       scripts/bench_spec.sh
#
# DIR (default: models) holds
#   tl1b-f16.gguf, tl1b-q8_0.gguf  the TinyLlama-1.1B shape with random weights
#   tl1b-q4_0.gguf                 (BENCHMARKS.md, "Model files", says how they are made);
#                                  the drafts of the 1.1B targets (Q4_0 of the Q8_0 target:
#                                  this file too; without it, `strix quantize` makes them)
#   stories3M-f32.gguf or          llama2.c's stories3M (`strix convert`); from the Q8_0
#   stories3M-q8_0.gguf            file the script converts it to F32 for the target
# Targets: stories3M in F32, the 1.1B shape as F16 and as Q8_0 (TARGETS, in
# that order). Drafts: the target quantized (Q4_0 / Q8_0), the target with
# layers skipped (--draft-skip: the list `auto` picks on the prompt for
# sampled acceptance, or SKIP_F16 / SKIP_Q8 / SKIP_S3M if set), n-gram lookup
# on stories3M. Modes, reported separately:
#   greedy   --temp 0
#   sampled  --temp 1 --top-k 0 --top-p 1 --min-p 0 --repeat-penalty 1: the
#            main sampled row. Untruncated, because on random weights the
#            distributions are near uniform, and truncation (top-k 40, top-p,
#            min-p) then keeps nearly arbitrary, different sets of tokens in
#            target and draft, which says little about either (about 25%
#            acceptance for Q8_0 + Q4_0 with the defaults against 90% without)
#   default  the default truncation, same for both engines (--temp 0.8
#            --top-k 40 --top-p 0.95 --min-p 0.05): one pair per target
# Exact mode everywhere, and in sampled mode the lenient scheme at knob
# LOSSY_KNOB with a larger K, without and with a budget.
#
# Timing is interleaved: each round runs every row of a target once (strix
# plain, strix rows, llama.cpp plain, llama.cpp rows), ROUNDS rounds; the
# summary gives medians. Each raw row is printed as soon as it is measured.
# The run is bounded: a target's next round starts only if the time so far
# plus its last round's fits in LIMIT seconds, and a target starts only
# before LIMIT (skipped rounds and targets are said so). Speed-ups are over the same engine's plain decoding
# of the same target in the same rounds: strix's plain figure is `strix run`'s
# generation rate (prompt excluded), llama.cpp's is llama-bench's tg rate for
# N tokens (-p 0; the prompt is not in it either), and a speculative run's is
# its generation rate (strix: prompt prefill of target and draft excluded;
# llama-speculative: its "decoded ... t/s" line).
#
# The quantized self-drafts are written once by `strix quantize` into a
# temporary folder and given to both engines as files (strix: --draft FILE):
# `strix quantize` and --draft-quant's in-memory copy follow one plan, so the
# draft is the one --draft-quant TYPE would make, without quantizing the
# target again at every run's load. llama.cpp rows are skipped when
# LLAMA_SPECULATIVE is unset; llama-speculative has no layer-skip or n-gram
# draft, so those rows are strix only.
#
# Columns of the summary:
#   acc      accepted / drafted (what `strix run` prints as acceptance)
#   len      mean accepted drafts per round (llama.cpp: n_accept / (n_drafted / K))
#   alpha    the per-token acceptance rate that gives len under Leviathan et
#            al.'s model: len = alpha (1 - alpha^K) / (1 - alpha)
#   c        cost ratio: the draft's time per drafted token over a plain step
#            (1 / plain tok/s, same engine, median)
#   v        the verify round (K + 1 positions, one batch) over a plain step
#   pred     Leviathan's speed-up with the measured alpha and c:
#            (1 - alpha^(K+1)) / ((1 - alpha)(c K + 1)) = (1 + len) / (c K + 1);
#            it assumes v = 1
#   pred_v   the same with the measured v: (1 + len) / (c K + v)
#   speedup  measured: median tok/s over the plain median
#   kl       mean KL(P || p) per output token (lossy rows; 0 in exact mode)
#
# Environment: ROUNDS (2), LIMIT (540 s), TARGETS ("s3m f16 q8"), N_BIG (48
# tokens on the 1.1B shape), N_SMALL (128 on stories3M), K (4), K_LOSSY (8),
# LOSSY_KNOB (0.9), BUDGET ("4 16": nats per window of tokens), THREADS (2),
# STRIX (build/strix), PROMPT, ONLY (one target tag). The defaults take about
# 9 minutes on a quiet 2-core machine; the fuller set, e.g.
# ROUNDS=5 LIMIT=3000, takes proportionally longer.
set -e
MODELS=${MODELS:-models}
S=${STRIX:-build/strix}
R=${ROUNDS:-2}
LIMIT=${LIMIT:-540}
TARGETS=${TARGETS:-s3m f16 q8}
START=$(date +%s)
NB=${N_BIG:-48}
NS=${N_SMALL:-128}
K=${K:-4}
KL=${K_LOSSY:-8}
KNOB=${LOSSY_KNOB:-0.9}
BUDGET=${BUDGET:-4 16}
T=${THREADS:-2}
PROMPT=${PROMPT:-Once upon a time, there was a little girl named Lily. She liked to}
LS=${LLAMA_SPECULATIVE:-}
# llama-speculative's names for the draft length and its probability floor
# (newer builds: --spec-draft-n-max / --spec-draft-p-min; c392e50:
# --draft-max / --draft-p-min)
LS_MAX=--draft-max
LS_PMIN=--draft-p-min
if [ -n "$LS" ] && "$LS" --help 2>&1 | grep -q -- --spec-draft-n-max; then
    LS_MAX=--spec-draft-n-max
    LS_PMIN=--spec-draft-p-min
fi
LB=${LLAMA_BENCH:-$(dirname "${LS:-.}")/llama-bench}
GREEDY="--temp 0"
SAMPLED="--temp 1 --top-k 0 --top-p 1 --min-p 0 --repeat-penalty 1"
DEFAULT="--temp 0.8 --top-k 40 --top-p 0.95 --min-p 0.05 --repeat-penalty 1"
set -- $BUDGET
BUDGET_OPTS="--draft-budget $1 --draft-window $2"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rows=$tmp/rows

echo "# bench_spec.sh: $(date -u +%Y-%m-%dT%H:%MZ); $(uptime)"
echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; flags:" \
    "$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512bw|avx512vl|avx512dq|avx512_vnni|avx512_bf16|avx512vbmi|avx_vnni|amx_tile|fma|f16c)$' | tr '\n' ' ')"
echo "# strix $(git describe --always --dirty 2>/dev/null || echo '?'), $T threads; rounds $R; K $K (lossy rows K $KL);" \
    "llama.cpp: ${LS:-not run (LLAMA_SPECULATIVE unset)}"
echo "# prompt: $PROMPT"
echo "# modes: greedy: $GREEDY; sampled: $SAMPLED; default: $DEFAULT (seed = round)"
echo "# limit ${LIMIT}s, targets: $TARGETS"
echo
echo "# raw rows as measured: target engine mode draft K tok_s acc len draft_ms verify_ms kl ppl"

# row TAG ENGINE TARGET MODE NAME K N OPTS...: one timed run, one TSV line in $rows
#   tag engine mode name K tok_s acc len draft_ms verify_ms kl ppl
strix_row() {
    tag=$1 mode=$2 name=$3 k=$4 n=$5 target=$6
    shift 6
    case $mode in greedy) samp=$GREEDY ;; sampled) samp="$SAMPLED --seed $r" ;; *) samp="$DEFAULT --seed $r" ;; esac
    # shellcheck disable=SC2086
    "$S" run -m "$target" -p "$PROMPT" -n "$n" -t "$T" $samp "$@" >/dev/null 2>"$tmp/err" ||
        { echo "# strix run failed ($tag $mode $name): $(tail -1 "$tmp/err")"; return 0; }
    if [ "$name" = plain ]; then
        ts=$(sed -n 's/.*generation: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' "$tmp/err")
        printf '%s\tstrix\t%s\tplain\t-\t%s\t-\t-\t-\t-\t-\t-\n' "$tag" "$mode" "$ts" | tee -a "$rows"
        return 0
    fi
    grep '^speculative:' "$tmp/err" | awk -v tag="$tag" -v mode="$mode" -v name="$name" -v k="$k" '{
        ts = acc = len = dm = vm = ""; kl = 0; ppl = "-"
        for (i = 1; i <= NF; i++) {
            if ($i == "tok/s;") ts = $(i - 1)
            if ($i == "acceptance") { acc = $(i + 1); sub(/[%,]+/, "", acc) }
            if ($i == "length") { len = $(i + 1); sub(/;/, "", len) }
            if ($i == "ppl") { ppl = $(i + 1); sub(/;/, "", ppl) }
            if ($i == "KL") { kl = $(i + 1); sub(/;/, "", kl) }
            if ($i == "token") { dm = $(i + 1); sub(/,/, "", dm) }
            if ($i == "verify") { vm = $(i + 1); sub(/,/, "", vm) }
        }
        printf "%s\tstrix\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tag, mode, name, k, ts, acc,
            len, dm, vm, kl, ppl }' | tee -a "$rows"
}

# llama.cpp: plain decoding from llama-bench (tg N), speculative from llama-speculative
llama_row() {
    tag=$1 mode=$2 name=$3 k=$4 n=$5 target=$6 draft=$7
    [ -n "$LS" ] || return 0
    if [ "$name" = plain ]; then
        ts=$("$LB" -m "$target" -p 0 -n "$n" -t "$T" -r 1 -o csv 2>/dev/null |
            awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); if (h == "avg_ts") c = i }; next }
                     c { gsub(/"/, "", $c); print $c }')
        printf '%s\tllama\t%s\tplain\t-\t%s\t-\t-\t-\t-\t-\t-\n' "$tag" "$mode" "$ts" | tee -a "$rows"
        return 0
    fi
    case $mode in greedy) samp=$GREEDY ;; sampled) samp="$SAMPLED -s $r" ;; *) samp="$DEFAULT -s $r" ;; esac
    # shellcheck disable=SC2086
    "$LS" -m "$target" -md "$draft" -p "$PROMPT" -n "$n" -t "$T" -td "$T" $LS_MAX "$k" \
        $LS_PMIN 0 -c 512 $samp >/dev/null 2>"$tmp/lerr" </dev/null ||
        { echo "# llama-speculative failed ($tag $mode $name): $(tail -1 "$tmp/lerr")"; return 0; }
    awk -v tag="$tag" -v mode="$mode" -v name="$name" -v k="$k" '
        /decoded .* tokens in .* speed:/ { ts = $(NF - 1) }
        /n_drafted *=/ { nd = $NF }
        /n_accept *=/ { na = $NF }
        END { r = nd > 0 ? nd / k : 0
              printf "%s\tllama\t%s\t%s\t%s\t%s\t%.1f\t%.2f\t-\t-\t-\t-\n", tag, mode, name, k, ts,
                  (nd > 0 ? 100 * na / nd : 0), (r > 0 ? na / r : 0) }' "$tmp/lerr" | tee -a "$rows"
}

# The skip list `auto` picks for a target (sampled acceptance, on the prompt),
# or $2 if given; falls back to the upper half of the layers if auto skips none.
skip_list() {
    [ -n "$2" ] && { echo "$2"; return; }
    # shellcheck disable=SC2086
    l=$("$S" run -m "$1" -p "$PROMPT" -n 1 -t "$T" $SAMPLED --draft-skip auto --draft-max "$K" 2>&1 >/dev/null |
        sed -n 's/^draft-skip auto: [0-9]* of \([0-9]*\) layers skipped (\(.*\)).*/\1 \2/p')
    set -- $l
    if [ -n "$2" ]; then echo "$2"; else n=${1:-2}; echo "$((n / 2))-$((n - 1))"; fi
}

# bench_target TAG TARGET N "ROWS" : ROWS, one per line:
#   NAME|K|MODES|STRIX OPTIONS|LLAMA DRAFT FILE or -
bench_target() {
    tag=$1 target=$2 n=$3 list=$4
    if [ ! -f "$target" ]; then
        echo "# $target: missing, rows for $tag skipped"
        return 0
    fi
    round_s=0
    for r in $(seq 1 "$R"); do
        el=$(($(date +%s) - START))
        if [ $((el + round_s)) -gt "$LIMIT" ]; then
            echo "# $tag: round $r of $R and after skipped (${el}s so far, a round takes ${round_s}s, limit ${LIMIT}s)"
            break
        fi
        echo "# $(date -u +%H:%M:%S) $tag round $r: $(basename "$target"), $n tokens; $(uptime | sed 's/.*load/load/')"
        r0=$(date +%s)
        for mode in greedy sampled default; do
            case "$list" in *"|"*"$mode"*"|"*) ;; *) continue ;; esac
            strix_row "$tag" $mode plain - "$n" "$target"
            echo "$list" | while IFS='|' read -r name k modes opts draft; do
                [ -n "$name" ] || continue
                case " $modes " in *" $mode "*) ;; *) continue ;; esac
                # shellcheck disable=SC2086
                strix_row "$tag" $mode "$name" "$k" "$n" "$target" $opts --draft-max "$k"
            done
            if [ -n "$LS" ]; then
                llama_row "$tag" $mode plain - "$n" "$target"
                echo "$list" | while IFS='|' read -r name k modes opts draft; do
                    [ -n "$name" ] && [ "$draft" != - ] || continue
                    case " $modes " in *" $mode "*) ;; *) continue ;; esac
                    llama_row "$tag" $mode "$name" "$k" "$n" "$target" "$draft"
                done
            fi
        done
        round_s=$(($(date +%s) - r0))
    done
}

want() {
    if [ -n "$ONLY" ]; then [ "$ONLY" = "$1" ]; else case " $TARGETS " in *" $1 "*) ;; *) return 1 ;; esac; fi
}

quant() { # quant IN TYPE [FILE]: FILE if it exists, else a self-draft file, written once
    [ -n "$3" ] && [ -f "$3" ] && { echo "$3"; return; }
    o=$tmp/$(basename "$1" .gguf)-$2.gguf
    [ -f "$o" ] || [ ! -f "$1" ] || "$S" quantize "$1" "$o" "$2" -t "$T" >/dev/null 2>&1 ||
        echo "# strix quantize $1 $2 failed" >&2
    echo "$o"
}

F16=$MODELS/tl1b-f16.gguf Q8=$MODELS/tl1b-q8_0.gguf S3M=$MODELS/stories3M-f32.gguf
if want s3m && [ ! -f "$S3M" ] && [ -f "$MODELS/stories3M-q8_0.gguf" ]; then
    S3M=$tmp/stories3M-f32.gguf
    "$S" convert -m "$MODELS/stories3M-q8_0.gguf" -o "$S3M" --type F32 >/dev/null 2>&1 ||
        echo "# strix convert of stories3M to F32 failed"
fi
lossy="--draft-lossy lenient --draft-knob $KNOB"
for tgt in $TARGETS; do
    want "$tgt" || continue
    case $tgt in
    s3m)
        [ -f "$S3M" ] || { echo "# stories3M: missing, skipped"; continue; }
        sk=$(skip_list "$S3M" "$SKIP_S3M")
        d4=$(quant "$S3M" Q4_0) d8=$(quant "$S3M" Q8_0)
        bench_target s3m "$S3M" "$NS" "Q8_0|$K|greedy sampled default|--draft $d8|$d8
Q4_0|$K|greedy sampled|--draft $d4|$d4
skip $sk|$K|greedy sampled|--draft-skip $sk|-
ngram 2|$K|greedy sampled|--draft-ngram 2|-
Q4_0 lenient $KNOB|$KL|sampled|--draft $d4 $lossy|-
Q4_0 lenient $KNOB budget|$KL|sampled|--draft $d4 $lossy $BUDGET_OPTS|-" ;;
    f16)
        [ -f "$F16" ] || { echo "# $F16: missing, skipped"; continue; }
        sk=$(skip_list "$F16" "$SKIP_F16")
        d4=$(quant "$F16" Q4_0 "$MODELS/tl1b-q4_0.gguf") d8=$(quant "$F16" Q8_0 "$Q8")
        bench_target f16 "$F16" "$NB" "Q8_0|$K|greedy sampled default|--draft $d8|$d8
Q4_0|$K|greedy sampled|--draft $d4|$d4
skip $sk|$K|greedy sampled|--draft-skip $sk|-
Q8_0 lenient $KNOB|$KL|sampled|--draft $d8 $lossy|-
Q4_0 lenient $KNOB|$KL|sampled|--draft $d4 $lossy|-
Q4_0 lenient $KNOB budget|$KL|sampled|--draft $d4 $lossy $BUDGET_OPTS|-" ;;
    q8)
        [ -f "$Q8" ] || { echo "# $Q8: missing, skipped"; continue; }
        sk=$(skip_list "$Q8" "$SKIP_Q8")
        d4=$(quant "$Q8" Q4_0 "$MODELS/tl1b-q4_0.gguf")
        bench_target q8 "$Q8" "$NB" "Q4_0|$K|greedy sampled default|--draft $d4|$d4
skip $sk|$K|greedy sampled|--draft-skip $sk|-
Q4_0 lenient $KNOB|$KL|sampled|--draft $d4 $lossy|-
Q4_0 lenient $KNOB budget|$KL|sampled|--draft $d4 $lossy $BUDGET_OPTS|-" ;;
    *) echo "# unknown target $tgt (s3m, f16, q8)" ;;
    esac
done
echo "# $(date -u +%H:%M:%S) done; $(uptime | sed 's/.*load/load/')"

echo
echo "# summary, medians over the rounds run (at most $R) (speed-ups against the same engine's plain decoding)"
printf 'target\tengine\tmode\tdraft\tK\ttok_s\tacc%%\tlen\talpha\tc\tv\tpred\tpred_v\tspeedup\tkl\tppl\n'
awk -F '\t' '
    function med(s,   n, a, i, j, x) { n = split(s, a, " ")
        if (n == 0) return ""
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function alpha(len, k,   lo, hi, mid, i, e) { # solves len = a (1 - a^k) / (1 - a)
        if (len >= k) return 1
        lo = 0; hi = 1
        for (i = 0; i < 60; i++) { mid = (lo + hi) / 2; e = mid < 1 ? mid * (1 - mid ^ k) / (1 - mid) : k
            if (e < len) lo = mid; else hi = mid }
        return (lo + hi) / 2 }
    function add(k, f, v) { if (v != "" && v != "-") col[k, f] = col[k, f] " " v }
    { k = $1 "\t" $2 "\t" $3 "\t" $4 "\t" $5
      if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      add(k, "ts", $6); add(k, "acc", $7); add(k, "len", $8); add(k, "dm", $9); add(k, "vm", $10)
      add(k, "kl", $11); add(k, "ppl", $12) }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, f, "\t")
        base = med(col[f[1] "\t" f[2] "\t" f[3] "\tplain\t-", "ts"]); ts = med(col[k, "ts"])
        if (f[4] == "plain") { printf "%s\t%.2f\t-\t-\t-\t-\t-\t-\t-\t1.00x\t-\t-\n", k, ts; continue }
        K = f[5]; len = med(col[k, "len"]); a = alpha(len, K)
        step = base > 0 ? 1000 / base : 0; dm = med(col[k, "dm"]); vm = med(col[k, "vm"])
        c = dm != "" && step > 0 ? dm / step : -1; v = vm != "" && step > 0 ? vm / step : -1
        printf "%s\t%.2f\t%s\t%.2f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k, ts, med(col[k, "acc"]), len, a,
            (c >= 0 ? sprintf("%.3f", c) : "-"), (v >= 0 ? sprintf("%.2f", v) : "-"),
            (c >= 0 ? sprintf("%.2fx", (1 + len) / (c * K + 1)) : "-"),
            (c >= 0 && v >= 0 ? sprintf("%.2fx", (1 + len) / (c * K + v)) : "-"),
            (base > 0 ? sprintf("%.2fx", ts / base) : "-"),
            (med(col[k, "kl"]) == "" ? "-" : med(col[k, "kl"])), (med(col[k, "ppl"]) == "" ? "-" : med(col[k, "ppl"])) } }' "$rows"
