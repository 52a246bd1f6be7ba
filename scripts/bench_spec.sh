#!/bin/sh
# Speculative decoding speed, side by side and interleaved on one machine:
# for each target, plain decoding and each draft, ROUNDS times in turn
# (plain, draft 1, draft 2, ..., plain, ...), greedy and sampled
# (temperature 1, no truncation). Prints one TSV row per run:
#   target mode draft round tok_s acceptance mean_len cost_ratio predicted
# and a summary per (target, mode, draft): medians, the speedup over plain
# decoding's median, and the speedup Leviathan et al.'s formula predicts
# from the measured acceptance and cost ratio (strix run prints both).
#
#   scripts/bench_spec.sh TARGET.gguf "DRAFT OPTIONS|..." [ROUNDS] [N_NEW] [PROMPT]
# e.g. scripts/bench_spec.sh tl1b-f16.gguf "--draft-quant Q4_0|--draft-skip 8-19" 3 32
set -e
M=${1:?usage: scripts/bench_spec.sh TARGET.gguf "DRAFTS|..." [ROUNDS] [N_NEW] [PROMPT]}
DRAFTS=${2:?drafts, separated by |}
R=${3:-3}
NEW=${4:-32}
PROMPT=${5:-Once upon a time, there was a little girl named Lily. She liked to}
S=${STRIX:-build/strix}
K=${K:-4}
T=${THREADS:-2}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
echo "# $(uptime)"
printf 'target\tmode\tdraft\tround\ttok_s\tacceptance\tmean_len\tcost_ratio\tpredicted\n'
for r in $(seq 1 "$R"); do
    for mode in greedy sampled; do
        if [ $mode = greedy ]; then samp="--temp 0"; else samp="--temp 1 --top-k 0 --top-p 1 --min-p 0 --seed $r"; fi
        # shellcheck disable=SC2086
        ts=$("$S" run -m "$M" -p "$PROMPT" -n "$NEW" -t "$T" $samp 2>&1 >/dev/null |
            sed -n 's/.*generation: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')
        printf '%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\n' "$(basename "$M")" $mode plain "$r" "$ts" | tee -a "$rows"
        echo "$DRAFTS" | tr '|' '\n' | while read -r d; do
            # shellcheck disable=SC2086
            line=$("$S" run -m "$M" -p "$PROMPT" -n "$NEW" -t "$T" $samp $d --draft-max "$K" 2>&1 >/dev/null | grep '^speculative:')
            echo "$line" | awk -v t="$(basename "$M")" -v mode=$mode -v d="$d" -v r="$r" '{
                ts = ""; acc = ""; len = ""; c = ""; pr = ""
                for (i = 1; i <= NF; i++) {
                    if ($(i) == "tok/s;") ts = $(i - 1)
                    if ($(i) == "acceptance") { acc = $(i + 1); sub(/[%,]+/, "", acc) }
                    if ($(i) == "length") { len = $(i + 1); sub(/;/, "", len) }
                    if ($(i) == "ratio") { c = $(i + 1); sub(/,/, "", c) }
                    if ($(i) == "predicted") { pr = $(i + 2); sub(/x;?/, "", pr) }
                }
                printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t, mode, d, r, ts, acc, len, c, pr
            }' | tee -a "$rows"
        done
    done
done
echo "# $(uptime)"
echo "# summary: medians over $R rounds; speedup = median tok/s / plain's median"
printf '# target\tmode\tdraft\ttok_s\tspeedup\tacceptance\tmean_len\tcost_ratio\tpredicted\n'
sort -t "$(printf '\t')" -k1,1 -k2,2 -k3,3 "$rows" | awk -F '\t' '
    function med(s,   n, a, i, j, x) { n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    { k = $1 "\t" $2 "\t" $3; ts[k] = ts[k] " " $5; acc[k] = acc[k] " " $6; len[k] = len[k] " " $7
      c[k] = c[k] " " $8; pr[k] = pr[k] " " $9; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, f, "\t"); base = med(ts[f[1] "\t" f[2] "\tplain"])
        printf "# %s\t%.2f\t%.2fx\t%s\t%s\t%s\t%s\n", k, med(ts[k]), med(ts[k]) / base,
            f[3] == "plain" ? "-" : med(acc[k]), f[3] == "plain" ? "-" : med(len[k]),
            f[3] == "plain" ? "-" : med(c[k]), f[3] == "plain" ? "-" : med(pr[k]) } }'
