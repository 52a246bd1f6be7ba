#!/bin/sh
# Measurements for docs/analysis.md: per model, the layer statistics of
# `strix analyze` (report and plots), then perplexity on held-out text after
#   - removing or linearizing k = 1, 2, 3 blocks: every k-subset is tried, so
#     "random" is the exact mean over uniformly random choices and "worst"
#     the true worst; against the blocks chosen by highest linearity and by
#     highest input-output cosine (ShortGPT's block influence);
#   - magnitude and Wanda pruning at 50% unstructured and 2:4;
#   - Wanda 50% followed by Q8_0 / Q4_0 quantization;
# and the speed of the tools (analyze on stories3M over 10k tokens, prune
# --method wanda on a TinyLlama-1.1B-shaped F16 model).
#
# Usage: scripts/bench_analysis.sh CORPUS.txt MODELDIR [OUTDIR]
#   CORPUS.txt: text; its first 15,000 bytes calibrate, the rest is evaluated
#     (docs/analysis.md used a 30,346-byte sample of TinyStories validation
#     stories). MODELDIR holds stories260K-f32.gguf, stories3M-f32.gguf,
#     shakespeare-f32.gguf (`strix convert` of the llama2.c checkpoints) and,
#     for the speed figure, tl1b-f16.gguf (`strix synth` with TinyLlama's
#     shape, see BENCHMARKS.md). OUTDIR (default docs/analysis) gets the
#     reports, SVG plots and results.md.
# Environment: STRIX (default build/strix), THREADS (default 2), SKIP_TL1B=1,
# SKIP_SPEED=1, OPS (default "drop linearize"; "" measures only weight pruning),
# MODELS (default "stories3M shakespeare stories260K"), EVAL_BYTES (held-out
# bytes scored, default 8000), CALIB_TOKENS (default 2048), REPORT_ONLY=1
# (only rebuild results.md from OUTDIR/results.tsv, which collects the rows
# as they are measured).
set -e
R=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${1:?corpus text}
MD=${2:?model folder}
OUT=${3:-$R/docs/analysis}
S=${STRIX:-$R/build/strix}
TH=${THREADS:-2}
W=$(mktemp -d "${TMPDIR:-/tmp}/strix-bench-analysis.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"
head -c 15000 "$CORPUS" >"$W/calib.txt"
tail -c +15001 "$CORPUS" | head -c "${EVAL_BYTES:-8000}" >"$W/eval.txt"
RES=$OUT/results.tsv
CTX=128
CT=${CALIB_TOKENS:-2048}
if [ -z "$REPORT_ONLY" ]; then
: >"$RES"

# ---- speed ----
[ -n "$SKIP_SPEED" ] || {
    echo "load before: $(uptime | sed 's/.*load average: //')"
    M=$MD/stories3M-f32.gguf
    cat "$CORPUS" "$CORPUS" >"$W/twice.txt"
    for i in 1 2; do
        /usr/bin/time -f "analyze stories3M 10000 tokens: %e s wall, %U s user" "$S" analyze -m "$M" \
            -f "$W/twice.txt" --max-tokens 10000 -c 256 -t $TH -o "$W/r.json" 2>&1 >/dev/null | grep analyze
    done
    if [ -z "$SKIP_TL1B" ] && [ -f "$MD/tl1b-f16.gguf" ]; then
        for i in 1 2; do
            /usr/bin/time -f "prune --method wanda --sparsity 0.5 tl1b-f16 (256 calibration tokens): %e s wall, %U s user" \
                "$S" prune -m "$MD/tl1b-f16.gguf" -f "$W/calib.txt" --max-tokens 256 -c 256 -t $TH \
                --method wanda --sparsity 0.5 -o "$W/t.gguf" 2>&1 | grep "s wall"
            rm -f "$W/t.gguf"
        done
    fi
    echo "load after: $(uptime | sed 's/.*load average: //')"
} >"$OUT/speed.txt"
[ -n "$SKIP_SPEED" ] || cat "$OUT/speed.txt" >&2

ppl() { "$S" ppl -m "$1" -f "$W/eval.txt" -c $CTX -t $TH 2>/dev/null | sed -n 's/^PPL = \([0-9.]*\).*/\1/p'; }

# k-subsets of 0..n-1, one per line as "a,b,c"
subsets() {
    /usr/bin/python3 -c "import itertools,sys; n,k=int(sys.argv[1]),int(sys.argv[2]); [print(','.join(map(str,c))) for c in itertools.combinations(range(n),k)]" "$1" "$2"
}

for name in ${MODELS:-stories3M shakespeare stories260K}; do
    M=$MD/$name-f32.gguf
    [ -f "$M" ] || { echo "skip $name: no $M" >&2; continue; }
    echo "== $name" >&2
    "$S" analyze -m "$M" -f "$W/calib.txt" --max-tokens $CT -c $CTX -t $TH -o "$OUT/$name.json" --svg "$OUT/$name" >/dev/null
    L=$("$S" info -m "$M" | sed -n 's/.*n_layer \([0-9]*\),.*/\1/p')
    base=$(ppl "$M")
    printf '%s\tbase\t0\t-\t%s\n' "$name" "$base" >>"$RES"
    for op in ${OPS-drop linearize}; do
        flag=--drop-layers
        [ $op = linearize ] && flag=--linearize
        for k in 1 2 3; do
            [ $k -lt "$L" ] || continue
            for crit in linearity cosine; do
                "$S" prune -m "$M" -f "$W/calib.txt" --max-tokens $CT -c $CTX -t $TH $flag auto:$k --criterion $crit \
                    -o "$W/p.gguf" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
                chosen=$(sed -n "s/.*by $crit: //p" "$W/err" | sed 's/ ([0-9.e-]*)//g; s/drop //g; s/linearize //g; s/ /,/g')
                printf '%s\t%s\t%s\tby-%s:%s\t%s\n' "$name" $op $k $crit "$chosen" "$(ppl "$W/p.gguf")" >>"$RES"
            done
            for set in $(subsets "$L" $k); do
                "$S" prune -m "$M" -f "$W/calib.txt" --max-tokens $CT -c $CTX -t $TH $flag "$set" -o "$W/p.gguf" 2>/dev/null
                printf '%s\t%s\t%s\tset:%s\t%s\n' "$name" $op $k "$set" "$(ppl "$W/p.gguf")" >>"$RES"
            done
        done
    done
    for method in magnitude wanda; do
        for spec in "--sparsity 0.5" "--pattern 2:4"; do
            "$S" prune -m "$M" -f "$W/calib.txt" --max-tokens $CT -c $CTX -t $TH --method $method $spec -o "$W/p.gguf" 2>/dev/null
            printf '%s\t%s\t0\t%s\t%s\n' "$name" $method "$(echo $spec | sed 's/--//; s/ /=/')" "$(ppl "$W/p.gguf")" >>"$RES"
            if [ "$spec" = "--sparsity 0.5" ]; then
                for q in Q8_0 Q4_0; do
                    "$S" quantize "$W/p.gguf" "$W/q.gguf" $q --pure >/dev/null 2>&1
                    printf '%s\t%s+%s\t0\tsparsity=0.5\t%s\n' "$name" $method $q "$(ppl "$W/q.gguf")" >>"$RES"
                done
            fi
        done
    done
    for q in Q8_0 Q4_0; do
        "$S" quantize "$M" "$W/q.gguf" $q --pure >/dev/null 2>&1
        printf '%s\tbase+%s\t0\t-\t%s\n' "$name" $q "$(ppl "$W/q.gguf")" >>"$RES"
    done
done

fi # REPORT_ONLY

/usr/bin/python3 - "$RES" "$OUT" "$OUT/speed.txt" <<'PY'
import json, math, os, sys
res, out, speed = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
models = []
for r in rows:
    if r[0] not in models:
        models.append(r[0])
md = []
def val(x):
    try:
        return float(x)
    except ValueError:
        return float("nan")
def f(x):
    return "%.2f" % x if x == x else "n/a"
md.append("## Layer statistics (calibration text)\n")
for m in models:
    rep = json.load(open(os.path.join(out, m + ".json")))
    md.append("### %s (%d tokens)\n" % (m, rep["n_tokens"]))
    md.append("| layer | linearity | without residual | cosine in/out | anisotropy (PC1 share) | pair cosine | TwoNN | PCA-90 |")
    md.append("|---|---|---|---|---|---|---|---|")
    for s in rep["layers"] + [dict(rep["embeddings"], layer="embeddings")]:
        g = lambda k: "-" if s.get(k) is None else "%.4f" % s[k]
        md.append("| %s | %s | %s | %s | %s | %s | %s | %d |" % (s["layer"], g("linearity"), g("linearity_no_residual"), g("cosine"), g("anisotropy"), g("pair_cosine"), "%.2f" % s["intrinsic_dim"], s["pca90"]))
    md.append("\n![linearity](analysis/%s/linearity.svg) ![anisotropy](analysis/%s/anisotropy.svg)\n" % (m, m))
md.append("## Perplexity after removing or linearizing k blocks (held-out text, window %s)\n" % "128")
plots = {}
for m in models:
    base = [val(r[4]) for r in rows if r[0] == m and r[1] == "base"][0]
    md.append("\n### %s (base PPL %s)\n" % (m, f(base)))
    md.append("| op | k | by linearity (blocks) | by cosine (blocks) | mean of all k-subsets | best subset | worst subset |")
    md.append("|---|---|---|---|---|---|---|")
    for op in ("drop", "linearize"):
        for k in ("1", "2", "3"):
            sel = [r for r in rows if r[0] == m and r[1] == op and r[2] == k]
            if not any(r[3].startswith("set:") for r in sel) or len([r for r in sel if r[3].startswith("by-")]) < 2:
                continue
            sets = [(val(r[4]), r[3][4:]) for r in sel if r[3].startswith("set:")]
            lin = [r for r in sel if r[3].startswith("by-linearity")][0]
            cos = [r for r in sel if r[3].startswith("by-cosine")][0]
            mean = math.exp(sum(math.log(v) for v, _ in sets) / len(sets))
            best, worst = min(sets), max(sets)
            md.append("| %s | %s | %s (%s) | %s (%s) | %s | %s (%s) | %s (%s) |" % (op, k, f(val(lin[4])), lin[3].split(":")[1], f(val(cos[4])), cos[3].split(":")[1], f(mean), f(best[0]), best[1], f(worst[0]), worst[1]))
            plots.setdefault((m, op), []).append((int(k), val(lin[4]), mean, worst[0], best[0]))
md.append("\n(mean: geometric mean of the PPL over every k-subset, i.e. the expected log-PPL of a uniformly random choice)\n")
md.append("## Magnitude against Wanda, and pruning then quantization\n")
md.append("| model | base | magnitude 50% | Wanda 50% | magnitude 2:4 | Wanda 2:4 | base Q8_0 | Wanda 50% + Q8_0 | base Q4_0 | Wanda 50% + Q4_0 | magnitude 50% + Q4_0 |")
md.append("|---|---|---|---|---|---|---|---|---|---|---|")
for m in models:
    def g(op, spec):
        v = [val(r[4]) for r in rows if r[0] == m and r[1] == op and r[3] == spec]
        return f(v[0]) if v else "n/a"
    md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (m, g("base", "-"), g("magnitude", "sparsity=0.5"), g("wanda", "sparsity=0.5"), g("magnitude", "pattern=2:4"), g("wanda", "pattern=2:4"), g("base+Q8_0", "-"), g("wanda+Q8_0", "sparsity=0.5"), g("base+Q4_0", "-"), g("wanda+Q4_0", "sparsity=0.5"), g("magnitude+Q4_0", "sparsity=0.5")))
if os.path.exists(speed):
    md.append("\n## Tool speed\n\n```\n" + open(speed).read() + "```\n")
# ppl vs k plots
for (m, op), pts in plots.items():
    W, H, L, T, B, Rr = 520, 340, 60, 40, 45, 20
    ys = [math.log10(v) for p in pts for v in p[1:] if v == v]
    base = [val(r[4]) for r in rows if r[0] == m and r[1] == "base"][0]
    ys.append(math.log10(base))
    lo, hi = min(ys) - 0.05, max(ys) + 0.05
    px = lambda k: L + (W - L - Rr) * k / 3.0
    py = lambda v: T + (H - T - B) * (1 - (math.log10(v) - lo) / (hi - lo))
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12"><rect width="100%%" height="100%%" fill="white"/>' % (W, H)]
    s.append('<text x="%d" y="22" font-size="14">%s: PPL after %s k blocks (log scale)</text>' % (L, m, "removing" if op == "drop" else "linearizing"))
    s.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (L, T, W - L - Rr, H - T - B))
    for e in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
        for mul in (1, 2, 5):
            v = mul * 10 ** e
            if lo <= math.log10(v) <= hi:
                s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>' % (L, W - Rr, py(v), py(v), L - 5, py(v) + 4, v))
    for k in range(4):
        s.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (px(k), H - B + 16, k))
    s.append('<text x="%d" y="%d" text-anchor="middle">k</text>' % ((W + L) // 2, H - 8))
    series = [("by linearity", 1, "#1f77b4"), ("mean of random", 2, "#2ca02c"), ("worst", 3, "#d62728"), ("best", 4, "#999")]
    for i, (nm, idx, col) in enumerate(series):
        p = [(0, base)] + [(k, t[idx]) for t in pts for k in [t[0]]]
        s.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (col, " ".join("%.1f,%.1f" % (px(k), py(v)) for k, v in p)))
        s.append('<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>' % (L + 10, T + 12 + 15 * i, col, L + 26, T + 16 + 15 * i, nm))
    s.append("</svg>")
    open(os.path.join(out, m, "ppl_%s.svg" % op), "w").write("\n".join(s) + "\n")
open(os.path.join(out, "results.md"), "w").write("\n".join(md).lstrip("\n") + "\n")
PY
echo "wrote $OUT/results.md" >&2
