#!/bin/sh
# KV cache types and long contexts, strix side by side with llama.cpp:
#  1. decode speed (tokens/s of TG tokens generated one at a time after a
#     prompt of DEPTH tokens) per cache type (keys and values of the same
#     type) and depth: `strix bench -npl 1 -d DEPTH -n TG -ctk T -ctv T`
#     interleaved with `llama-bench -fa 1 -ctk T -ctv T -d DEPTH -p 0 -n TG`
#     on the same file, with the bytes per token each cache takes (strix's as
#     strix_context_cache_bytes reports it, cell bookkeeping included;
#     llama.cpp's from the formula layers x kv_dim x bytes per value);
#  2. the same at depth LONG (32768) on a model whose trained length allows
#     it, made with `strix synth -c 32768` (LONG_TYPES only: it is slow);
#  3. perplexity on tests/data/tinystories-valid-4k.txt (n_ctx 256 chunks)
#     per cache type, strix's `ppl` and `llama-perplexity -fa on`, for the
#     bundled model (head size 8: the block types are refused by both) and
#     for STORIES (a stories3M GGUF), with each one's change from F32.
# strix's CPU-time speed (cpu_ts) is printed beside the wall clock: a loaded
# machine's time slicing moves it less. Prints `uptime` first.
#
#   LLAMA_BENCH=/path/to/llama-bench LLAMA_PPL=/path/to/llama-perplexity \
#       scripts/bench_kv.sh MODEL.gguf [STORIES.gguf]
#   env: DEPTHS ("512 2048 8192"), TYPES ("f32 f16 q8_0 q4_0"), TG (16),
#        THREADS (2), LONG (32768; 0 skips part 2), LONG_TYPES ("q8_0"),
#        PPL (1; 0 skips part 3), LIMIT (seconds one program may run per
#        row, 240; a row past it prints "timeout").
# Without LLAMA_BENCH / LLAMA_PPL only strix runs. A llama-bench without
# `-d` (older builds) cannot start at a depth: LLAMA_BATCHED_BENCH=/path/to/
# llama-batched-bench instead (with LLAMA_BENCH unset) times one sequence
# generating TG tokens after a prompt of DEPTH (its S_TG), flash attention
# on by LLAMA_FA (default "-fa"; newer builds take "-fa on").
#
# Each of these stays within about 5 minutes on 2 quiet cores (the 1.1B
# shape at Q4_0; a depth of 8192 costs each program a prefill of 8192
# tokens, so that depth runs one cache type at a time):
#   TYPES="f16 q8_0" DEPTHS="512 2048" LONG=0 LLAMA_BENCH=... LLAMA_PPL=... \
#       scripts/bench_kv.sh tl1b-q4_0.gguf
#   TYPES=f16 DEPTHS=8192 LONG=0 PPL=0 LLAMA_BENCH=... scripts/bench_kv.sh tl1b-q4_0.gguf
#   TYPES=q8_0 DEPTHS=8192 LONG=0 PPL=0 LLAMA_BENCH=... scripts/bench_kv.sh tl1b-q4_0.gguf
set -e
M=${1:?usage: scripts/bench_kv.sh MODEL.gguf [STORIES.gguf]}
SM=${2:-}
S=${STRIX:-build/strix}
DEPTHS=${DEPTHS:-512 2048 8192}
TYPES=${TYPES:-f32 f16 q8_0 q4_0}
TG=${TG:-16}
T=${THREADS:-2}
LONG=${LONG:-32768}
LONG_TYPES=${LONG_TYPES:-q8_0}
PPL=${PPL:-1}
LIMIT=${LIMIT:-240}
LLAMA_FA=${LLAMA_FA:--fa}
TEXT=tests/data/tinystories-valid-4k.txt
BUNDLED=tests/data/stories260K-ref.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "# $(uptime)"
grep -o -m1 'model name.*' /proc/cpuinfo 2>/dev/null | sed 's/^/# /'

# bytes per value of a type (Q8_0: 34 per 32, Q4_0: 18 per 32)
bpv() { case $1 in f32) echo 4 ;; f16) echo 2 ;; q8_0) echo 1.0625 ;; q4_0) echo 0.5625 ;; esac; }
# n_layer x kv_dim of a model, from `strix info`
kvsize() {
    "$S" info -m "$1" 2>/dev/null | awk '/^n_embd/ { for (i = 1; i <= NF; i++) { v = $(i + 1); gsub(/,/, "", v)
        if ($i == "n_layer") l = v; if ($i == "n_head_kv") k = v; if ($i == "head_dim") d = v }
        print l * k * d }'
}
jget() { # jget KEY: the first numeric value of "KEY" in stdin's JSON line
    awk -v k="\"$1\"" '{ i = index($0, k); if (i) { s = substr($0, i + length(k)); sub(/^[ :]+/, "", s)
        sub(/[,} ].*/, "", s); gsub(/"/, "", s); print s; exit } }'
}

speed_table() { # model depth-list type-list
    m=$1
    lkv=$(kvsize "$m")
    echo
    echo "## decode speed at depth: $m, $T threads, tg$TG"
    echo
    echo "| depth | cache | strix t/s | strix CPU t/s | llama.cpp t/s | strix / llama.cpp | strix bytes/token | llama.cpp bytes/token |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|"
    for d in $2; do
        for ty in $3; do
            j=$(timeout "$LIMIT" "$S" bench -m "$m" -npl 1 -d "$d" -n "$TG" -r 1 -t "$T" -ctk "$ty" -ctv "$ty" -o json 2>"$tmp/err" |
                grep '"npl"' || echo "{}")
            st=$(echo "$j" | jget aggregate_ts)
            sc=$(echo "$j" | jget cpu_ts)
            sb=$(echo "$j" | jget kv_bytes_per_token)
            [ -n "$st" ] || st="failed or timeout: $(head -c 120 "$tmp/err")"
            lt=
            if [ -n "$LLAMA_BENCH" ]; then
                lt=$(timeout "$LIMIT" "$LLAMA_BENCH" -m "$m" -fa 1 -ctk "$ty" -ctv "$ty" -d "$d" -p 0 -n "$TG" -r 1 -t "$T" \
                    -o jsonl 2>/dev/null | jget avg_ts | awk '{ printf "%.2f", $1 }')
                [ -n "$lt" ] || lt="failed or timeout"
            elif [ -n "$LLAMA_BATCHED_BENCH" ]; then
                # one sequence: its generation speed after a prompt of d tokens
                lt=$( (timeout "$LIMIT" "$LLAMA_BATCHED_BENCH" -m "$m" -c $((d + TG + 64)) -b 2048 -npp "$d" \
                    -ntg "$TG" -npl 1 -t "$T" $LLAMA_FA -ctk "$ty" -ctv "$ty" --output-format jsonl) \
                    2>/dev/null | jget speed_tg | awk '{ printf "%.2f", $1 }')
                [ -n "$lt" ] || lt="failed or timeout"
            fi
            lb=$(awk -v n="$lkv" -v b="$(bpv "$ty")" 'BEGIN { printf "%d", 2 * n * b }')
            ratio=$(awk -v a="$st" -v b="$lt" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b }')
            echo "| $d | $ty | $st | $sc | ${lt:--} | ${ratio:--} | $sb | $lb |"
        done
    done
}

speed_table "$M" "$DEPTHS" "$TYPES"

if [ "$LONG" -gt 0 ]; then
    # 4 layers, 4 heads of 64 (2 KV heads): attention dominates at this depth
    "$S" synth -m "$BUNDLED" -o "$tmp/long.gguf" --dim 256 --ff 512 --layers 4 --heads 4 \
        --kv-heads 2 -c "$LONG" --seed 1 >/dev/null 2>&1
    speed_table "$tmp/long.gguf" "$LONG" "$LONG_TYPES"
fi

ppl_table() { # model
    m=$1
    echo
    echo "## perplexity, $TEXT, chunks of 256: $m"
    echo
    echo "| cache | strix PPL | change | llama.cpp PPL | change |"
    echo "|---|---:|---:|---:|---:|"
    sbase=
    lbase=
    for ty in $TYPES; do
        sp=$("$S" ppl -m "$m" -f "$TEXT" -c 256 -t "$T" -ctk "$ty" -ctv "$ty" --json 2>"$tmp/err" | jget ppl) ||
            true
        [ -n "$sp" ] || sp="refused: $(sed 's/^strix: //' "$tmp/err" | head -c 90)"
        lp=
        if [ -n "$LLAMA_PPL" ]; then
            "$LLAMA_PPL" -m "$m" -f "$TEXT" -c 256 -b 256 -t "$T" -fa on -ctk "$ty" -ctv "$ty" \
                >"$tmp/lp" 2>&1 || true
            lp=$(awk '/Final estimate/ { for (i = 1; i <= NF; i++) if ($i == "PPL") print $(i + 2) }' "$tmp/lp")
            [ -n "$lp" ] || lp="failed: $(grep -i -m1 'error\|fail' "$tmp/lp" | head -c 90)"
        fi
        [ "$ty" = f32 ] && sbase=$sp && lbase=$lp
        sd=$(awk -v a="$sp" -v b="$sbase" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%+.3f%%", 100 * (a / b - 1) }')
        ld=$(awk -v a="$lp" -v b="$lbase" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%+.3f%%", 100 * (a / b - 1) }')
        echo "| $ty | $sp | ${sd:--} | ${lp:--} | ${ld:--} |"
    done
}

if [ "$PPL" != 0 ]; then
    ppl_table "$BUNDLED"
    [ -n "$SM" ] && ppl_table "$SM"
fi
echo
echo "# $(uptime)"
echo "# elapsed $(($(date +%s) - start)) s"
