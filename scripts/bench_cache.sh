#!/bin/sh
# Cache cost by architecture (BENCHMARKS.md): random-weight models of equal
# width and depth (512 wide, 8 blocks, 8 query heads, FFN 1408 where there
# is one) under each attention or state scheme, made by `strix synth`; for
# each, the cache a 4096-position context allocates (`strix info -c 4096`,
# counted from the context's allocations) and the decode speed after a
# prompt of about 3,400 tokens (`strix run`, greedy, 64 new tokens, one
# thread), interleaved over REPS rounds, medians reported.
# Then decode speed at depths 512, 4096 and 16384 for RetNet (flat) and MHA.
#   scripts/bench_cache.sh [VOCAB_GGUF] [REPS]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STRIX=${STRIX:-$ROOT/build/strix}
VOCAB=${1:-$ROOT/tests/data/stories260K-ref.gguf}
REPS=${2:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
COMMON="--dim 512 --layers 8 --heads 8 -c 4096 --seed 1"
synth() { name=$1; shift; "$STRIX" synth -m "$VOCAB" -o "$TMP/$name.gguf" $COMMON "$@" >/dev/null; }
synth mha --ff 1408 --kv-heads 8
synth gqa --ff 1408 --kv-heads 2
synth mqa --ff 1408 --kv-heads 1
synth swa --ff 1408 --kv-heads 8 --swa 512
synth mla --arch deepseek2 --ff 1408 --head-k 96 --rot 32 --head-v 64 --lora-kv 128 --lora-q 256
synth mamba --arch mamba --ssm-state 16 --ssm-dt-rank 32
synth retnet --arch retnet --ff 1408
# a prompt of about 3,400 tokens: the TinyStories sample, repeated
for i in 1 2 3 4 5 6 7 8; do cat "$ROOT/tests/data/tinystories-valid-4k.txt"; done | head -c 6600 > "$TMP/prompt.txt"
NAMES="mha gqa mqa swa mla mamba retnet"
echo "load: $(uptime)"
for r in $(seq "$REPS"); do
    for n in $NAMES; do
        "$STRIX" run -m "$TMP/$n.gguf" -f "$TMP/prompt.txt" -n 64 --temp 0 -t 1 -c 4096 \
            2>"$TMP/$n.$r.err" >/dev/null
        grep -o 'generation: [0-9]* tokens, [0-9.]* tok/s' "$TMP/$n.$r.err" |
            awk '{print $4}' >> "$TMP/$n.speed"
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
    med=$(sort -n "$TMP/$n.speed" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '| %s | %s | %s | %s |\n' "$n" "$tok" "$total" "$med"
done

# Decode cost against context depth: one sequence filled to DEPTH tokens,
# then 32 tokens decoded one per step (`strix bench -npl 1 -d DEPTH`, one
# thread). RetNet's recurrent decoding should be flat; MHA's grows with the
# keys it reads.
echo
echo "load: $(uptime)"
echo '| scheme | decode tok/s at depth 512 | at 4096 | at 16384 |'
echo '|---|---:|---:|---:|'
for n in retnet mha; do
    row="| $n |"
    for d in 512 4096 16384; do
        tps=$("$STRIX" bench -m "$TMP/$n.gguf" -npl 1 -d "$d" -n 32 -t 1 -r 1 |
            awk -F'|' '/gguf/ {gsub(/ /, "", $7); print $7}')
        row="$row $tps |"
    done
    echo "$row"
done
echo "load: $(uptime)"
