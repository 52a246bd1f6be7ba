#!/bin/sh
# Feed-forward variants (BENCHMARKS.md "PEER and KAN feed-forward layers"):
# random-weight llama models of equal width and depth (512 wide, 4 blocks,
# 8 heads, F32) whose FFN is the plain SwiGLU MLP (n_ff 1408), a PEER layer
# or two KAN layers, made by `strix synth --ffn`; for each, the FFN
# parameters per block (from `strix info`'s tensor list), the whole model's
# parameters, the neurons a token uses per block, and the decode speed
# (`strix run`, greedy, 64 new tokens after a short prompt, one thread),
# interleaved over REPS rounds, medians reported; then prefill of 512 tokens
# on one and two threads (`strix bench`). About a minute on a quiet machine
# with REPS 3.
#   scripts/bench_ffn.sh [VOCAB_GGUF] [REPS]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
STRIX=${STRIX:-$ROOT/build/strix}
VOCAB=${1:-$ROOT/tests/data/stories260K-ref.gguf}
REPS=${2:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
COMMON="--dim 512 --layers 4 --heads 8 --kv-heads 8 -c 512 --seed 1"
# the MLP: 3 x 512 x 1408 = 2.16 M weights per block, 1408 neurons per token
synth mlp --ff 1408
# PEER with about the MLP's weights (46^2 = 2116 experts of 2 x 512), and a
# large one (128^2 = 16384 experts); 8 heads x top-16 = 128 neurons per token
synth peer-2k --ffn peer --peer-keys 46 --peer-heads 8 --peer-topk 16 --peer-key-len 128
synth peer-16k --ffn peer --peer-keys 128 --peer-heads 8 --peer-topk 16 --peer-key-len 128
# KAN (G 5, cubic: 8 bases per input) with the MLP's hidden width, and with
# about its weights (h 234: 2 x 234 x 512 x (1 + 8))
synth kan-1408 --ffn kan --ff 1408 --kan-grid 5 --kan-order 3
synth kan-234 --ffn kan --ff 234 --kan-grid 5 --kan-order 3
NAMES="mlp peer-2k peer-16k kan-1408 kan-234"
echo "load: $(uptime)"
for r in $(seq "$REPS"); do
    for n in $NAMES; do
        run_speed "$n" "$r" -p "Once upon a time" -n 64 -c 512
    done
done
echo "load: $(uptime)"
printf '| FFN | FFN weights per block | model parameters | neurons per token per block | decode tok/s (median of %s) |\n' "$REPS"
echo '|---|---:|---:|---:|---:|'
for n in $NAMES; do
    info=$("$STRIX" info -m "$TMP/$n.gguf")
    ffn=$(echo "$info" | awk '$1 ~ /^blk\.0\.ffn_/ && $1 !~ /norm/ {
        gsub(/[\[\],]/, " "); n = 1; for (i = 3; i <= NF - 2; i++) n *= $i; s += n } END { print s }')
    params=$(echo "$info" | sed -n 's/^parameters: \([0-9]*\).*/\1/p')
    case $n in mlp) used=1408 ;; peer-*) used=128 ;; kan-*) used=${n#kan-} ;; esac
    printf '| %s | %s | %s | %s | %s |\n' "$n" "$ffn" "$params" "$used" "$(median_of "$TMP/$n.speed")"
done

# Prefill on one and two threads (`strix bench -p 512`, median of REPS):
# PEER splits a chunk's tokens among the threads, like the MLP's products.
echo
echo "load: $(uptime)"
"$STRIX" bench -m "$TMP/mlp.gguf,$TMP/peer-2k.gguf,$TMP/peer-16k.gguf" -p 512 -n 0 -t 1,2 -r "$REPS"
echo "load: $(uptime)"
