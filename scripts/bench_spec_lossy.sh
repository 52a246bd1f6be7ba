#!/bin/sh
# Lossy speculative decoding over each scheme's knob, with and without error
# control, on GSM8K prompts: `strix eval --task gsm8k --compare` per point
# (plain, exact, the scheme, the scheme with error control, on the same
# problems and seeds), sampled at temperature 1 without truncation (so the
# final distribution is the model's own and "ppl" is the perplexity of the
# generated text under the target). Writes one TSV row per setting:
#   scheme knob control tok_s mean_len acceptance mean_kl ppl agreement
# then plots it with scripts/plot_spec.py.
#
#   scripts/bench_spec_lossy.sh MODEL.gguf [OUT.tsv] [LIMIT] [N_NEW]
# The draft is the target quantized to Q4_0 in memory (DRAFT="--draft-quant
# Q4_0" by default); error control: a budget of 2 nats per 16 tokens.
set -e
M=${1:?usage: scripts/bench_spec_lossy.sh MODEL.gguf [OUT.tsv] [LIMIT] [N_NEW]}
OUT=${2:-spec_lossy.tsv}
LIMIT=${3:-6}
NEW=${4:-48}
S=${STRIX:-build/strix}
DATA=${DATA:-tests/data/gsm8k-test.jsonl}
DRAFT=${DRAFT:---draft-quant Q4_0}
CTL=${CTL:---draft-budget 2 --draft-window 16}
printf 'scheme\tknob\tcontrol\ttok_s\tmean_len\tacceptance\tmean_kl\tppl\tagreement\n' >"$OUT"
uptime >&2
for point in "lenient 0.25" "lenient 0.5" "lenient 0.75" "lenient 0.9" \
    "top-p 0.5" "top-p 0.8" "top-p 0.95" "top-p 1" \
    "near-max 0.25" "near-max 0.5" "near-max 0.75" "near-max 0.95"; do
    set -- $point
    # shellcheck disable=SC2086
    "$S" eval -m "$M" --task gsm8k -f "$DATA" --limit "$LIMIT" --shots 1 -n "$NEW" -t 2 \
        --temp 1 --top-k 0 --top-p 1 --min-p 0 --seed 1 $DRAFT --compare \
        --draft-lossy "$1" --draft-knob "$2" $CTL 2>/dev/null |
        awk -v scheme="$1" -v knob="$2" 'NR > 1 {
            # setting accuracy agree tok/s ppl acceptance mean-len mean-KL
            n = NF; ctl = ($0 ~ / ctl /) ? "budget" : "none"
            name = $1
            if (name == "plain" || name == "exact") { scheme_out = name; knob_out = 0; ctl = "none" }
            else { scheme_out = scheme; knob_out = knob }
            acc = $(n - 2); sub(/%/, "", acc); agr = $(n - 5); sub(/%/, "", agr)
            if (name == "plain") { acc = "-"; len = "-"; kl = "-" } else { len = $(n - 1); kl = $n }
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", scheme_out, knob_out, ctl, $(n - 4), len, acc, kl, $(n - 3), agr
        }' >>"$OUT"
    echo "done: $point" >&2
done
uptime >&2
