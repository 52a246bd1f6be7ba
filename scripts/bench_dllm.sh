#!/bin/sh
# Dynamic depth (D-LLM) measurements: perplexity against the executed-layer
# fraction for a trained router, random skipping and static layer removal,
# keep in {0.9 .. 0.5}, on held-out text; writes a TSV (stdout and OUT.tsv)
# for scripts/plot_dllm.py.
#
# usage: scripts/bench_dllm.sh OUTDIR NAME MODEL TRAIN.txt EVAL.txt EPOCHS [CTX]
#   trains on TRAIN.txt, evaluates on EVAL.txt (ppl with windows of CTX,
#   default 256). Static removal: layers are removed greedily, each time the
#   one whose removal raises the training text's perplexity least.
# Environment: STRIX (default build/strix), KEEPS (default "0.9 0.8 0.7 0.6 0.5").
set -eu
OUT=$1 NAME=$2 MODEL=$3 TRAIN=$4 EVAL=$5 EPOCHS=$6 CTX=${7:-256}
STRIX=${STRIX:-build/strix}
KEEPS=${KEEPS:-"0.9 0.8 0.7 0.6 0.5"}
mkdir -p "$OUT"
TSV="$OUT/$NAME.tsv"

# "key" of a one-line JSON object
jget() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p"; }
ppl() { # TEXT ARGS... -> "fraction ppl flops_per_token kv_bytes"
    f=$1; shift
    j=$("$STRIX" ppl -m "$MODEL" -f "$f" -c "$CTX" --json "$@" 2>/dev/null)
    echo "$(echo "$j" | jget layers_executed) $(echo "$j" | jget ppl)" \
        "$(echo "$j" | jget flops_per_token) $(echo "$j" | jget kv_bytes)"
}

L=$("$STRIX" info -m "$MODEL" 2>/dev/null | sed -n 's/.*n_layer \([0-9]*\).*/\1/p')
echo "# $NAME: $MODEL, $L layers; train $TRAIN, eval $EVAL; load $(uptime | sed 's/.*load/load/')" >"$TSV"
printf 'model\tmethod\tkeep\texecuted\tppl\tflops_per_token\tkv_bytes\n' >>"$TSV"
set -- $(ppl "$EVAL")
printf '%s\tfull\t1\t%s\t%s\t%s\t%s\n' "$NAME" "$1" "$2" "$3" "$4" >>"$TSV"

# greedy static removal order on the training text
removed=""
order=""
i=0
while [ $i -lt $((L - 1)) ]; do
    best="" bestp=""
    l=0
    while [ $l -lt "$L" ]; do
        case ",$removed," in *",$l,"*) l=$((l + 1)); continue ;; esac
        cand=${removed:+$removed,}$l
        p=$(ppl "$TRAIN" --skip-layers "$cand" | cut -d' ' -f2)
        if [ -z "$bestp" ] || awk "BEGIN{exit !($p < $bestp)}"; then best=$l bestp=$p; fi
        l=$((l + 1))
    done
    removed=${removed:+$removed,}$best
    order="$order $removed"
    i=$((i + 1))
done
echo "# static removal order (greedy on the training text):$order" >>"$TSV"

for k in $KEEPS; do
    R="$OUT/$NAME-keep$k.gguf"
    "$STRIX" router train -m "$MODEL" -f "$TRAIN" -o "$R" --keep "$k" --epochs "$EPOCHS" \
        --lr 0.01 --seed 1 2>"$OUT/$NAME-keep$k.log"
    set -- $(ppl "$EVAL" --router "$R")
    printf '%s\trouter\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$k" "$1" "$2" "$3" "$4" >>"$TSV"
    set -- $(ppl "$EVAL" --skip-random "$k" --seed 1)
    printf '%s\trandom\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$k" "$1" "$2" "$3" "$4" >>"$TSV"
    n=$(awk "BEGIN{printf \"%d\", (1 - $k) * $L + 0.5}")
    if [ "$n" -ge 1 ] && [ "$n" -lt "$L" ]; then
        set=$(echo "$order" | tr ' ' '\n' | sed -n "$((n + 1))p")
        set -- $(ppl "$EVAL" --skip-layers "$set")
        printf '%s\tstatic\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$k" "$1" "$2" "$3" "$4" >>"$TSV"
    fi
done
cat "$TSV"
