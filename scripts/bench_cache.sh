#!/bin/sh
# Cache cost by architecture (BENCHMARKS.md): random-weight models of equal
# width and depth (512 wide, 8 blocks, 8 query heads, FFN 1408 where there
# is one) under each attention or state scheme, made by `strix synth`. Parts
# (the third argument, any of them; all by default):
#   cache  the cache a 4096-position context allocates (`strix info -c
#          4096`, counted from the context's allocations) and the decode speed
#          after a prompt of about 3,400 tokens (`strix run`, greedy, 64 new
#          tokens, one thread), interleaved over REPS rounds, medians;
#   depth  decode speed at context depths 512, 4096 and 16384 for every
#          scheme (`strix bench -npl 1 -d D`: the depth prefilled once, then
#          32 tokens decoded one per step, REPS repetitions, median);
#   yoco   YOCO's prefill with and without its cross-decoder skip.
#   scripts/bench_cache.sh [VOCAB_GGUF] [REPS] [PARTS]
# The lead's runs: scripts/bench_cache.sh "" 3 "cache yoco" and
# scripts/bench_cache.sh "" 5 depth (each within about 5 minutes on 2 quiet
# cores). SHAPE and DEPTHS (environment) override the models' shape and the
# depths, for a quick check: SHAPE="--dim 64 --layers 2 --heads 8"
# DEPTHS="64 256 1024" scripts/bench_cache.sh "" 1 depth
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
STRIX=${STRIX:-$ROOT/build/strix}
VOCAB=${1:-$ROOT/tests/data/stories260K-ref.gguf}
REPS=${2:-3}
PARTS=${3:-cache yoco depth}
SHAPE=${SHAPE:---dim 512 --layers 8 --heads 8}
DEPTHS=${DEPTHS:-512 4096 16384}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
COMMON="$SHAPE -c 4096 --seed 1"
synth mha --ff 1408 --kv-heads 8
synth gqa --ff 1408 --kv-heads 2
synth mqa --ff 1408 --kv-heads 1
synth swa --ff 1408 --kv-heads 8 --swa 512
synth mla --arch deepseek2 --ff 1408 --head-k 96 --rot 32 --head-v 64 --lora-kv 128 --lora-q 256
synth mamba --arch mamba --ssm-state 16 --ssm-dt-rank 32
synth retnet --arch retnet --ff 1408
synth yoco --arch yoco --ff 1408 --kv-heads 8
NAMES="mha gqa mqa swa mla mamba retnet yoco"
# a prompt of about 3,400 tokens: the TinyStories sample, repeated
for i in 1 2 3 4 5 6 7 8; do cat "$ROOT/tests/data/tinystories-valid-4k.txt"; done | head -c 6600 > "$TMP/prompt.txt"
if part cache; then
    echo "load: $(uptime)"
    for r in $(seq "$REPS"); do
        for n in $NAMES; do
            run_speed "$n" "$r" -f "$TMP/prompt.txt" -n 64 -c 4096
            grep -o 'prompt: [0-9]* tokens' "$TMP/$n.$r.err" | awk '{print $2}' > "$TMP/$n.prompt"
        done
    done
    echo "load: $(uptime)"
    printf '| scheme | cache bytes per token | per sequence at 4096 | decode tok/s after %s tokens (median of %s) |\n' \
        "$(cat "$TMP/mha.prompt")" "$REPS"
    echo '|---|---:|---:|---:|'
    for n in $NAMES; do
        line=$("$STRIX" info -m "$TMP/$n.gguf" -c 4096 | grep 'context of')
        tok=$(echo "$line" | sed 's/.*(\([0-9]*\) per cell.*/\1/')
        total=$(echo "$line" | sed 's/.*cache \([0-9]*\) bytes.*/\1/')
        printf '| %s | %s | %s | %s |\n' "$n" "$tok" "$total" "$(median_of "$TMP/$n.speed")"
    done
fi

# YOCO's prefill: a prompt of about 2,000 tokens with only the last token's
# logits (`strix run -n 1`: the cross-decoder runs for 1 token) against
# one window of P - 1 of those tokens with every token's logits (`strix ppl
# -c P-1`: it runs for all), wall time of each, interleaved over REPS rounds, medians. The FLOP
# count per token (multiply-adds x 2; d 512, 8 blocks of which 4 self, FFN
# 1408, 8 heads of 64, vocabulary 512, P prompt tokens):
#   self block:  2 (5 d^2 + 8 d + 3 d 1408) + retention mixing
#   shared K, V: 2 (2 d^2)                  (once per token)
#   cross block: 2 (2 d^2 + 3 d 1408) + 4 (position) d
if part yoco; then
    head -c 3900 "$TMP/prompt.txt" > "$TMP/prompt2k.txt"
    echo
    echo "load: $(uptime)"
    "$STRIX" run -m "$TMP/yoco.gguf" -f "$TMP/prompt2k.txt" -n 1 --temp 0 -t 1 -c 4096 \
        2>"$TMP/yoco-skip.err" >/dev/null
    P=$(grep -o 'prompt: [0-9]* tokens' "$TMP/yoco-skip.err" | awk '{print $2}')
    for r in $(seq "$REPS"); do
        t0=$(date +%s.%N)
        "$STRIX" run -m "$TMP/yoco.gguf" -f "$TMP/prompt2k.txt" -n 1 --temp 0 -t 1 -c 4096 \
            2>"$TMP/yoco-skip.err" >/dev/null
        t1=$(date +%s.%N)
        "$STRIX" ppl -m "$TMP/yoco.gguf" -f "$TMP/prompt2k.txt" -c $((P - 1)) -t 1 >/dev/null 2>&1
        t2=$(date +%s.%N)
        echo "$t0 $t1" | awk '{print $2 - $1}' >> "$TMP/skip.t"
        echo "$t1 $t2" | awk '{print $2 - $1}' >> "$TMP/all.t"
    done
    echo "load: $(uptime)"
    ms=$(sort -n "$TMP/skip.t" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    ma=$(sort -n "$TMP/all.t" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "| YOCO prefill | prompt tokens | GFLOP (model) | wall s (median of $REPS) |"
    echo '|---|---:|---:|---:|'
    awk -v P="$P" -v ms="$ms" -v ma="$ma" 'BEGIN {
        d = 512; f = 1408; V = 512;
        self = 2 * (5 * d * d + 8 * d + 3 * d * f); kv = 2 * 2 * d * d;
        cross = 2 * (2 * d * d + 3 * d * f); att = 4 * d;
        # retention mixing within chunks of 512: about 2 (256 (64 + 64) + 64 64 2) per head
        ret = 8 * 2 * (256 * 128 + 64 * 64 * 2);
        lower = P * 4 * (self + ret) + P * kv;
        upper_one = 4 * (cross + att * P) + 2 * d * V;
        printf("| cross-decoder for the last token only (`run -n 1`) | %d | %.1f | %s |\n", P, (lower + upper_one) / 1e9, ms);
        Q = P - 1;
        all = Q * 4 * (self + ret) + Q * kv + 4 * (Q * cross + att * Q * (Q + 1) / 2) + Q * 2 * d * V;
        printf("| cross-decoder for every token (`ppl -c P-1`) | %d | %.1f | %s |\n", Q, all / 1e9, ma);
    }'
fi

# Decode cost against context depth: one sequence prefilled to D tokens,
# then 32 tokens decoded one per step (`strix bench -npl 1 -d D`, one
# thread, median of REPS; the prefill is done once and copied before each
# repetition, outside the timing). Recurrent decoding (Mamba, RetNet, YOCO's
# self-decoder) and the window should be flat; full attention grows with the
# keys it reads. The schemes whose prefill is quadratic (mha gqa mqa mla:
# 16384 tokens would take minutes each on one core) stop at the depth below
# 16384 unless DEEP_ALL=1.
if part depth; then
    echo
    echo "load: $(uptime)"
    hdr='| scheme |'; sep='|---|'
    for d in $DEPTHS; do hdr="$hdr decode tok/s at depth $d |"; sep="$sep---:|"; done
    echo "$hdr last / first |"; echo "$sep---:|"
    for n in $NAMES; do
        row="| $n |"; first=; last=
        for d in $DEPTHS; do
            case "$n:$d:${DEEP_ALL:-0}" in
            mha:16384:0 | gqa:16384:0 | mqa:16384:0 | mla:16384:0) row="$row - |"; continue ;;
            esac
            tps=$("$STRIX" bench -m "$TMP/$n.gguf" -npl 1 -d "$d" -n 32 -t 1 -r "$REPS" |
                awk -F'|' '/gguf/ {gsub(/ /, "", $7); print $7}')
            [ -n "$tps" ] || { echo "bench of $n at depth $d failed" >&2; exit 1; }
            row="$row $tps |"; first=${first:-$tps}; last=$tps
        done
        echo "$row $(awk -v a="$first" -v b="$last" 'BEGIN {printf("%.2f", b / a)}') |"
    done
    echo "load: $(uptime)"
fi
