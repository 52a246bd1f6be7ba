#!/bin/sh
# Dynamic depth (D-LLM) measurements.
#
# Quality: perplexity against the measured executed-layer fraction for a
# trained router, random skipping and static layer removal, on held-out
# text; writes a TSV (stdout and OUTDIR/NAME.tsv) for scripts/plot_dllm.py.
#
#   scripts/bench_dllm.sh OUTDIR NAME MODEL TRAIN.txt EVAL.txt EPOCHS [CTX]
#
#   Trains on TRAIN.txt, evaluates on EVAL.txt (ppl with windows of CTX,
#   default 256). Static removal: layers are removed greedily, each time the
#   one whose removal raises the training text's perplexity least; one row
#   per number of layers removed (fractions (L - n) / L). For each keep k the
#   router is warm-started from that order's removal of floor((1 - k) L)
#   layers (the trainer half-executes one more layer when k L is not whole);
#   when k L is whole, from one layer fewer, with the two layers cheapest to
#   remove half-executed (so it does not start as, and stay, the removal),
#   trained, chosen by validation loss on the training text's last tenth and
#   calibrated to k. At the router's measured fraction f on EVAL.txt, the
#   row "random" is --skip-random f, and "static-interp" interpolates the
#   static rows (log perplexity linear in the fraction) to f: compare the
#   router with these two, at the same executed fraction. Each keep also
#   gets a comment line with ln(router ppl / static-interp) and a bound on
#   its standard error, paired token by token on the evaluation text
#   (`ppl --kl-base` against each of the two static rows): how far the
#   difference is from the evaluation text's noise.
#
# Speed: decode and prefill tokens/s and KV bytes, full model against half
# the layers, runs interleaved (full, skipping, full, ...), medians:
#
#   scripts/bench_dllm.sh speed STORIES3M.gguf TRAIN.txt [TL1B.gguf]
#
#   stories3M: a router trained here (keep 0.5, warm start, 1 epoch on
#   TRAIN.txt) and the fixed pattern of every other layer; the 1.1B shape
#   (random weights, so no router is trained): the fixed pattern.
#
# Environment: STRIX (default build/strix), KEEPS (default "0.9 0.8 0.7 0.6
# 0.5"), THREADS (default 2), REPS (speed: interleaved rounds, default 3),
# SEED (router train --seed, default 1), ROUTERS (a directory holding the
# routers NAME-keepK.gguf and their logs from an earlier run: evaluate them
# on EVAL.txt instead of training).
#
# LORA=RANK: both sides fine-tuned the same way, with adapters of that rank
# on the base weights (router train --lora), in two stages of EPOCHS each:
# every static row is its removal with adapters trained for it (stage 1),
# then fresh adapters on that model (stage 2), both with --freeze-router;
# every router is trained with its adapters (stage 1, warm start as above),
# then frozen while fresh adapters train on its calibrated decisions as
# they run (stage 2). The full row is the full model fine-tuned the same
# way; the static order is still chosen on the base model; no random rows.
# LORA_LR: the adapters' learning rate (default 0.01, the routers').
set -eu
STRIX=${STRIX:-build/strix}
THREADS=${THREADS:-2}
# "key" of a one-line JSON object
jget() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
n_layer() { "$STRIX" info -m "$1" 2>/dev/null | sed -n 's/.*n_layer \([0-9]*\).*/\1/p'; }

if [ "${1:-}" = speed ]; then
    S3M=$2 TRAIN=$3 TL=${4:-}
    REPS=${REPS:-3}
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    echo "# D-LLM speed: $(date -u +%FT%TZ), $THREADS threads, $(uptime | sed 's/.*load/load/')"
    echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    L=$(n_layer "$S3M")
    half=$(awk "BEGIN{for (l = 1; l < $L; l += 2) printf \"%s%d\", (l > 1 ? \",\" : \"\"), l}")
    "$STRIX" router train -m "$S3M" -f "$TRAIN" -o "$TMP/r.gguf" --keep 0.5 --epochs 1 \
        --lr 0.01 --seed 1 --skip-layers "$half" -t "$THREADS" >/dev/null 2>&1 || true
    run_speed() { # MODEL NAME LABEL:ARGS...
        model=$1 name=$2
        shift 2
        printf 'model\tskipping\texecuted\tpp t/s\ttg t/s\ttg speed-up\tKV bytes\n'
        i=0
        for cfg in "$@"; do
            : >"$TMP/pp$i" && : >"$TMP/tg$i"
            i=$((i + 1))
        done
        r=0
        while [ $r -lt "$REPS" ]; do
            i=0
            for cfg in "$@"; do
                j=$("$STRIX" bench -m "$model" -t "$THREADS" -p 64 -n 32 -r 1 -o json \
                    ${cfg#*:} 2>/dev/null | tr -d '\n')
                echo "$j" | sed 's/}/}\n/g' | grep '"pp' | jget median_ts >>"$TMP/pp$i"
                echo "$j" | sed 's/}/}\n/g' | grep '"tg' | jget median_ts >>"$TMP/tg$i"
                echo "$j" | sed 's/}/}\n/g' | grep '"tg' | jget layers_executed >"$TMP/ex$i"
                echo "$j" | sed 's/}/}\n/g' | grep '"tg' | jget kv_bytes >"$TMP/kv$i"
                i=$((i + 1))
            done
            r=$((r + 1))
        done
        i=0
        tg0=$(median <"$TMP/tg0")
        for cfg in "$@"; do
            tg=$(median <"$TMP/tg$i")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${cfg%%:*}" "$(cat "$TMP/ex$i")" \
                "$(median <"$TMP/pp$i")" "$tg" "$(awk "BEGIN{printf \"%.2f\", $tg / $tg0}")" \
                "$(cat "$TMP/kv$i")"
            i=$((i + 1))
        done
    }
    set -- "none:" "fixed pattern, layers $half removed:--skip-layers $half"
    [ -f "$TMP/r.gguf" ] && set -- "$@" "router keep 0.5:--router $TMP/r.gguf --keep 0.5"
    run_speed "$S3M" "$(basename "$S3M" .gguf)" "$@"
    if [ -n "$TL" ]; then
        L=$(n_layer "$TL")
        half=$(awk "BEGIN{for (l = 1; l < $L; l += 2) printf \"%s%d\", (l > 1 ? \",\" : \"\"), l}")
        run_speed "$TL" "$(basename "$TL" .gguf)" "none:" "fixed pattern, odd layers removed:--skip-layers $half"
    fi
    exit 0
fi

OUT=$1 NAME=$2 MODEL=$3 TRAIN=$4 EVAL=$5 EPOCHS=$6 CTX=${7:-256}
KEEPS=${KEEPS:-"0.9 0.8 0.7 0.6 0.5"}
SEED=${SEED:-1}
mkdir -p "$OUT"
TSV="$OUT/$NAME.tsv"

ppl() { # TEXT ARGS... -> "fraction ppl flops_per_token kv_bytes" (model: $PM, else $MODEL)
    f=$1; shift
    j=$("$STRIX" ppl -m "${PM:-$MODEL}" -f "$f" -c "$CTX" --json "$@" 2>/dev/null)
    echo "$(echo "$j" | jget layers_executed) $(echo "$j" | jget ppl)" \
        "$(echo "$j" | jget flops_per_token) $(echo "$j" | jget kv_bytes)"
}

LORA=${LORA:-}
# lora_train OUT.gguf R.gguf LOG STAGE1-ARGS -- STAGE2-ARGS: two stages of
# adapters (LORA above); OUT.gguf is the adapted model, R.gguf its router
lora_train() {
    a=$1 r=$2 log=$3
    shift 3
    s1=""
    while [ "$1" != -- ]; do s1="$s1 $1"; shift; done
    shift
    "$STRIX" router train -m "$MODEL" -f "$TRAIN" -o "$r.1" --lora-out "$a.1" --lora "$LORA" \
        --lora-lr "${LORA_LR:-0.01}" \
        --epochs "$EPOCHS" --lr 0.01 --seed "$SEED" -t "$THREADS" $s1 2>"$log"
    "$STRIX" router train -m "$a.1" -f "$TRAIN" -o "$r" --lora-out "$a" --lora "$LORA" \
        --lora-lr "${LORA_LR:-0.01}" \
        --epochs "$EPOCHS" --lr 0.01 --seed "$SEED" -t "$THREADS" --freeze-router "$@" 2>>"$log"
    rm -f "$a.1"
}

L=$(n_layer "$MODEL")
echo "# $NAME: $MODEL, $L layers; train $TRAIN, eval $EVAL; $EPOCHS epoch(s), seed $SEED${LORA:+, adapters of rank $LORA in two stages}; load $(uptime | sed 's/.*load/load/')" >"$TSV"
printf 'model\tmethod\tkeep\texecuted\tppl\tflops_per_token\tkv_bytes\n' >>"$TSV"
PM=""
if [ -n "$LORA" ]; then
    lora_train "$OUT/$NAME-static0.gguf" "$OUT/$NAME-static0-r.gguf" "$OUT/$NAME-static0.log" \
        --keep 1 --skip-layers none --freeze-router -- --keep 1 --skip-layers none
    PM="$OUT/$NAME-static0.gguf"
fi
set -- $(ppl "$EVAL" --kl-save "$OUT/$NAME.static0.kl")
printf '%s\tfull\t1\t%s\t%s\t%s\t%s\n' "$NAME" "$1" "$2" "$3" "$4" >>"$TSV"
# fraction ppl flops kv log-probabilities, for the interpolation
STATIC="$OUT/$NAME.static"
echo "$1 $2 $3 $4 $OUT/$NAME.static0.kl" >"$STATIC"

# greedy static removal order on the training text
removed=""
order=""
i=0
while [ $i -lt $((L - 1)) ]; do
    best="" bestp="" PM=""
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
    PM=""
    if [ -n "$LORA" ]; then
        kk=$(awk "BEGIN{print ($L - $i) / $L}")
        lora_train "$OUT/$NAME-static$i.gguf" "$OUT/$NAME-static$i-r.gguf" "$OUT/$NAME-static$i.log" \
            --keep "$kk" --skip-layers "$removed" --freeze-router -- --keep "$kk" --skip-layers "$removed"
        PM="$OUT/$NAME-static$i.gguf"
    fi
    set -- $(ppl "$EVAL" --skip-layers "$removed" --kl-save "$OUT/$NAME.static$i.kl")
    printf '%s\tstatic\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$(awk "BEGIN{print ($L - $i) / $L}")" \
        "$1" "$2" "$3" "$4" >>"$TSV"
    echo "$1 $2 $3 $4 $OUT/$NAME.static$i.kl" >>"$STATIC"
done
echo "# static removal order (greedy on the training text):$order" >>"$TSV"

# the router R at keep K against the static rows around its fraction F,
# paired token by token (ppl --kl-base: ln(PPL / base PPL) and its standard
# error): "t lo_mean lo_se hi_mean hi_se"
paired() { # R K F
    set -- "$1" "$2" "$(sort -g "$STATIC" | awk -v f="$3" '{x[NR]=$1; k[NR]=$5}
        END{for (i = 1; i < NR; i++) if (f >= x[i] && f <= x[i+1]) break
            if (i >= NR) i = NR - 1
            printf "%.6f %s %s", (f - x[i]) / (x[i+1] - x[i]), k[i], k[i+1]}')"
    set -- "$1" "$2" $3
    lnr() { "$STRIX" ppl -m "${PM:-$MODEL}" --kl-base "$1" --router "$R" --keep "$K" 2>&1 |
        sed -n 's/.*ln ratio \([-0-9.e]*\) +\/- \([0-9.e]*\).*/\1 \2/p'; }
    R=$1 K=$2
    echo "$3 $(lnr "$4") $(lnr "$5")"
}

# static rows interpolated to fraction $1 (log ppl, flops and kv linear)
interp() {
    sort -g "$STATIC" | awk -v f="$1" '{x[NR]=$1; p[NR]=log($2); fl[NR]=$3; kv[NR]=$4}
        END{for (i = 1; i < NR; i++) if (f >= x[i] && f <= x[i+1]) break
            if (i >= NR) i = NR - 1
            t = (f - x[i]) / (x[i+1] - x[i])
            printf "%s %.6f %.0f %.0f\n", f, exp(p[i] + t * (p[i+1] - p[i])),
                   fl[i] + t * (fl[i+1] - fl[i]), kv[i] + t * (kv[i+1] - kv[i])}'
}

for k in $KEEPS; do
    R="${ROUTERS:-$OUT}/$NAME-keep$k.gguf" LOG="${ROUTERS:-$OUT}/$NAME-keep$k.log"
    # layers removed at the warm start: floor((1 - k) L), one fewer when
    # (1 - k) L is whole (then the trainer half-executes two layers)
    n=$(awk "BEGIN{r = (1 - $k) * $L; n = int(r + 1e-6); if (n >= 1 && r - n < 1e-6) n--; print n}")
    init=none
    [ "$n" -ge 1 ] && init=$(echo "$order" | tr ' ' '\n' | sed -n "$((n + 1))p")
    PM=""
    if [ -n "$LORA" ]; then
        PM="${ROUTERS:-$OUT}/$NAME-keep$k-adapted.gguf"
        [ -n "${ROUTERS:-}" ] ||
            lora_train "$PM" "$R" "$LOG" --keep "$k" --skip-layers "$init" -- --keep "$k" --router "$R.1"
        rm -f "$R.1"
    elif [ -z "${ROUTERS:-}" ]; then
        "$STRIX" router train -m "$MODEL" -f "$TRAIN" -o "$R" --keep "$k" --epochs "$EPOCHS" \
            --lr 0.01 --seed "$SEED" --skip-layers "$init" -t "$THREADS" 2>"$LOG"
    fi
    set -- $(ppl "$EVAL" --router "$R" --keep "$k")
    f=$1
    printf '%s\trouter\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$k" "$1" "$2" "$3" "$4" >>"$TSV"
    if [ -z "$LORA" ]; then
        set -- $(ppl "$EVAL" --skip-random "$f" --seed 1)
        printf '%s\trandom\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$k" "$1" "$2" "$3" "$4" >>"$TSV"
    fi
    set -- $(interp "$f")
    printf '%s\tstatic-interp\t%s\t%s\t%s\t%s\t%s\n' "$NAME" "$k" "$1" "$2" "$3" "$4" >>"$TSV"
    # ln(router / static-interp) = (1 - t) ln(router / lo) + t ln(router / hi);
    # its standard error is at most (1 - t) se_lo + t se_hi
    set -- $(paired "$R" "$k" "$f")
    awk -v k="$k" -v t="$1" -v ml="$2" -v sl="$3" -v mh="$4" -v sh="$5" 'BEGIN{
        printf "# keep %s: ln(router ppl / static-interp) = %.4f +/- %.4f (paired over the scored tokens, standard error bound)\n",
               k, (1 - t) * ml + t * mh, (1 - t) * sl + t * sh}' >>"$TSV"
    echo "# keep $k: warm start from removing ${init}; $(grep -c '^val:' "$LOG") validations, best at $(grep ' best$' "$LOG" | tail -1 | cut -d' ' -f2-3)" >>"$TSV"
done
rm -f "$STATIC" "$OUT/$NAME".static*.kl "$OUT/$NAME"-static*.gguf
cat "$TSV"
