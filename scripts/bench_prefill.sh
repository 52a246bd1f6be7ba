#!/bin/sh
# Prefill (prompt processing) speed against the CPU's compute peak: strix
# bench and llama.cpp's llama-bench on the same files, interleaved (strix,
# llama.cpp, strix, ...) ROUNDS times per model and thread count, pp PP on
# the TinyLlama-1.1B shape (F16, BF16, Q8_0, Q4_0, Q4_K_M, and F32 when that
# file exists) and pp PP_SMALL on stories3M as F32. Prints the CPU, the
# load, a compute probe, every figure, the medians, the ratio strix /
# llama.cpp and each program's share of the peak.
#
#   MODELS=DIR LLAMA_BENCH=/path/to/llama-bench scripts/bench_prefill.sh [ROUNDS] [PP] [THREADS]
#
# DIR holds tl1b-f16.gguf, tl1b-q8_0.gguf, tl1b-q4_0.gguf, tl1b-q4_k_m.gguf
# (optional: tl1b-f32.gguf) and stories3M-*.gguf (see BENCHMARKS.md for how
# they are made). The BF16 file is made from the F16 one with `strix convert
# --type BF16` into BF16_DIR (default DIR) when missing, and stories3M F32
# with `strix convert --type F32` from STORIES (default DIR/stories3M-f32.gguf)
# into a temporary folder. ONLY="tl1b-q4_0 ..." keeps the named rows;
# ROUNDS 0 runs no model. KERNELS=1 also times each weight type's product
# alone (the avx512 set, or avx2 where the CPU lacks it; SET=NAME picks
# one; rows x cols of KERNEL_SHAPES, KERNEL_N tokens, linked against this
# checkout's build/obj) against the same peak.
# Defaults: 2 rounds, pp256, threads "1 2",
# PP_SMALL 512: about 4-5 minutes on an idle 2-core machine.
#
# Peak: a probe (scripts/probe_peak.c, compiled here) times 12 independent
# chains of VFMADD (fp32), VDPBF16PS (bf16) and VPDPBUSD (int8) on zmm
# registers on one thread (on a CPU without AVX-512: VFMADD on ymm for
# fp32 and bf16, and VPMADDUBSW for int8, the multiply-add without VNNI,
# timed in assembly), and the clock by a chain of dependent integer adds
# (one per cycle). Per thread the peak is the probe's rate (the best
# of 5 probes); T threads: T times that (one thread per core). The share of
# peak is strix's flops_per_token (2 x multiply-adds of the products and
# attention, from `strix bench -o json`) x tokens/s / peak; llama.cpp's
# share uses the same flops per token. F32/F16 are held against the fp32
# FMA peak, BF16 against the bf16 peak (strix runs VDPBF16PS there when
# the CPU has AVX512-BF16), the quantized types against the int8 peak.
set -e
D=${MODELS:?set MODELS to the folder with the model files}
R=${1:-2}
PP=${2:-256}
TH=${3:-1 2}
PP_SMALL=${PP_SMALL:-512}
S=${STRIX:-build/strix}
REPS=${REPS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
: >"$out"

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cpus"
echo "vector flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
    grep -E '^(avx2|fma|f16c|avx_vnni|avx512f|avx512_vnni|avx512_bf16|amx_tile|amx_int8|amx_bf16)$' | tr '\n' ' ')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the compute probe (scripts/probe_peak.c) ----
# the best of 5 probe runs per column: clock, fp32, bf16 (column BF of the
# probe's output: 3, or 2 where BF16 runs as fp32), int8
probe_best() {
    for i in 1 2 3 4 5; do "$tmp/probe" "$2"; done |
        awk -v bf="$1" '{ for (i = 1; i <= NF; i++) if ($i > m[i]) m[i] = $i }
            END { printf "%s %s %s %s %s", m[1], m[2], m[bf], m[4], m[5] }'
}
peak=""
if ${CC:-cc} -O2 -mavx512f -mavx512vnni -mavx512bf16 -o "$tmp/probe" "$(dirname "$0")/probe_peak.c" 2>/dev/null &&
    "$tmp/probe" avx512 >/dev/null 2>&1; then
    peak=$(probe_best 3 avx512)
    echo "$peak" | awk '{ printf "probe, one thread (best of 5): clock %.2f GHz; fp32 FMA %.0f GFLOP/s (%.2f zmm FMA/cycle);" \
        " bf16 VDPBF16PS %.0f GFLOP/s (%.2f/cycle); int8 VPDPBUSD %.0f GOP/s (%.2f/cycle)\n",
        $1, $2, $2 / 32 / $1, $3, $3 / 64 / $1, $4, $4 / 128 / $1 }'
elif ${CC:-cc} -O2 -o "$tmp/probe" "$(dirname "$0")/probe_peak.c" 2>"$tmp/probe.err" &&
    grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && "$tmp/probe" avx2 >/dev/null 2>&1; then
    # AVX2 without AVX-512: fp32 FMA on ymm (BF16 weights are widened to
    # fp32 there, so their peak is the fp32 one); int8 without VNNI: the
    # peak is VPMADDUBSW's rate (32 u8 x s8 multiply-adds each, the pairs
    # summed in int16), the multipliers' limit; the column after it times
    # the shortest sequence that sums into int32 (VPMADDUBSW, VPMADDWD,
    # VPADDD per 32 multiply-adds)
    peak=$(probe_best 2 avx2)
    echo "$peak" | awk '{ printf "probe (AVX2), one thread (best of 5): clock %.2f GHz; fp32 FMA %.0f GFLOP/s (%.2f ymm FMA/cycle;" \
        " also the BF16 peak); int8 VPMADDUBSW %.0f GOP/s (%.2f a cycle; the peak for the quantized types);" \
        " VPMADDUBSW+VPMADDWD+VPADDD %.0f GOP/s (%.2f sequences a cycle)\n",
        $1, $2, $2 / 16 / $1, $4, $4 / 64 / $1, $5, $5 / 64 / $1 }'
else
    echo "probe: this CPU or compiler lacks AVX2/FMA (or AVX-512 VNNI/BF16); no share of peak"
fi

# ---- the kernels alone (KERNELS=1): one thread, best of 7 calls ----
if [ -n "$KERNELS" ] && [ -d build/obj/kernels ]; then
    cat >"$tmp/kern.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kernels/kernels.h"
#include "quant/dtype.h"
#include "util.h"
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
int main(int argc, char **argv)
{
    const int rows = atoi(argv[1]), cols = atoi(argv[2]), n = atoi(argv[3]);
    const struct kern_isa *k = kern_isa_get(getenv("SET") ? getenv("SET") : "avx512");
    if (!k)
        k = kern_isa_get("avx2");
    if (!k)
        return 1;
    if (argc > 4) { /* the set's name only */
        printf("%s\n", k->name);
        return 0;
    }
    const uint32_t types[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q4_K, DTYPE_Q6_K};
    float *wf = malloc((size_t)rows * cols * 4), *x = malloc((size_t)n * cols * 4);
    float *y = malloc((size_t)n * rows * 4);
    uint64_t s = 1;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        wf[i] = util_rng_uniform(&s) - 0.5f;
    for (size_t i = 0; i < (size_t)n * cols; i++)
        x[i] = util_rng_uniform(&s) - 0.5f;
    for (int ti = 0; ti < 7; ti++) {
        const uint32_t t = types[ti];
        const struct dtype_traits *tr = dtype_get(t);
        const size_t ws = dtype_row_size(t, cols);
        uint8_t *w = malloc((size_t)rows * ws);
        for (int r = 0; r < rows; r++)
            tr->quantize(wf + (size_t)r * cols, w + (size_t)r * ws, cols);
        const uint32_t at = k->mm[t].act_type;
        const size_t as = kern_act_row_bytes(at, cols);
        uint8_t *a = malloc((size_t)n * as);
        double best = 1e9, bq = 1e9;
        for (int rep = 0; rep < 7; rep++) {
            const double t0 = now();
            for (int i = 0; i < n; i++)
                if (at == DTYPE_F32)
                    __builtin_memcpy(a + (size_t)i * as, x + (size_t)i * cols, as);
                else
                    kern_act_quantize(at, x + (size_t)i * cols, a + (size_t)i * as, cols);
            const double dt = now() - t0;
            bq = dt < bq ? dt : bq;
        }
        uint8_t *p = NULL;
        size_t gs = ws;
        kern_mm_fn run = k->mm[t].run;
        if (k->pack[t] && k->pack_bytes[t](rows, cols)) {
            p = malloc(k->pack_bytes[t](rows, cols));
            k->pack[t](w, ws, rows, cols, p);
            gs = k->pack_bytes[t](rows, cols) / (size_t)(rows / 16);
            run = k->mm_packed[t];
        }
        for (int rep = 0; rep < 7; rep++) {
            const double t0 = now();
            run(t, cols, p ? p : w, gs, 0, rows, a, as, n, y, (size_t)rows, 0);
            const double dt = now() - t0;
            best = dt < best ? dt : best;
        }
        printf("%s %s %.1f %.1f\n", tr->name, p ? "packed" : "rows",
               2.0 * rows * cols * n / best / 1e9, 100 * bq / best);
        free(w), free(a), free(p);
    }
    return 0;
}
EOF
    if ${CC:-cc} -O2 -Isrc -Iinclude -o "$tmp/kern" "$tmp/kern.c" build/obj/kernels/*.o \
        build/obj/quant/*.o build/obj/util.o -lm -lpthread 2>/dev/null; then
        echo
        echo "kernels alone, $("$tmp/kern" 16 32 1 name) set, one thread, ${KERNEL_N:-256} tokens (best of 7 calls):"
        echo "| weights | rows x cols | kernel | GOP/s | share of peak | activation conversion, % of the product |"
        echo "|---|---|---|---:|---:|---:|"
        for shape in ${KERNEL_SHAPES:-2048x2048 5632x2048 2048x5632}; do
            "$tmp/kern" "${shape%x*}" "${shape#*x}" "${KERNEL_N:-256}" |
                awk -v sh="$shape" -v peak="$peak" 'BEGIN { split(peak, p, " ") }
                    { P = $1 == "BF16" ? p[3] : ($1 == "F32" || $1 == "F16") ? p[2] : p[4]
                      sp = "-"; if (P > 0) sp = sprintf("%.0f%%", 100 * $3 / P)
                      printf "| %s | %s | %s | %.0f | %s | %.1f |\n", $1, sh, $2, $3, sp, $4 }'
        done
    else
        echo "KERNELS=1: could not build the kernel harness against build/obj"
    fi
fi

# ---- the files ----
BF16=${BF16_DIR:-$D}/tl1b-bf16.gguf
if [ ! -f "$BF16" ] && [ -f "$D/tl1b-f16.gguf" ]; then
    echo "making $BF16 (strix convert --type BF16)"
    "$S" convert -m "$D/tl1b-f16.gguf" -o "$BF16" --type BF16 >/dev/null 2>&1
fi
STORIES=${STORIES:-$D/stories3M-f32.gguf}
if [ -f "$STORIES" ]; then
    "$S" convert -m "$STORIES" -o "$tmp/stories3M-F32.gguf" --type F32 >/dev/null 2>&1
fi
# model file, its label, its peak class, the prompt length
set --
for m in f32:fp32 f16:fp32 bf16:bf16 q8_0:int8 q4_0:int8 q4_k_m:int8; do
    f=$D/tl1b-${m%%:*}.gguf
    [ "${m%%:*}" = bf16 ] && f=$BF16
    [ -f "$f" ] && set -- "$@" "$f|tl1b-${m%%:*}|${m#*:}|$PP"
done
[ -f "$tmp/stories3M-F32.gguf" ] && set -- "$@" "$tmp/stories3M-F32.gguf|stories3M-f32|fp32|$PP_SMALL"
if [ -n "$ONLY" ]; then
    keep=$*
    set --
    for spec in $keep; do
        l=$(echo "$spec" | cut -d'|' -f2)
        case " $ONLY " in *" $l "*) set -- "$@" "$spec" ;; esac
    done
fi

# ---- the runs ----
for r in $(seq 1 "$R"); do
    echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)"
    for spec in "$@"; do
        IFS='|' read -r f label class pp <<EOS
$spec
EOS
        for t in $TH; do
            "$S" bench -m "$f" -p "$pp" -n 0 -r "$REPS" -t "$t" -o json |
                awk -v l="$label" -v c="$class" -v t="$t" -v pp="$pp" -F'"' '/"test"/ {
                    for (i = 1; i <= NF; i++) { v = $(i + 1); gsub(/[:, ]/, "", v)
                        if ($i == "median_ts") ts = v; if ($i == "flops_per_token") fl = v }
                    print l, c, "pp" pp, t, "strix", ts, fl }' >>"$out"
            if [ -n "$LLAMA_BENCH" ]; then
                "$LLAMA_BENCH" -m "$f" -p "$pp" -n 0 -r "$REPS" -t "$t" -o csv 2>/dev/null |
                    awk -F, -v l="$label" -v c="$class" -v t="$t" -v pp="$pp" '{ gsub(/"/, "") }
                        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
                        { print l, c, "pp" pp, t, "llama.cpp", $(col["avg_ts"]), 0 }' >>"$out"
            fi
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the table ----
echo
echo "| model | test | threads | strix t/s | llama.cpp t/s | ratio | strix share of peak | llama.cpp share | peak (GOP/s) | runs (strix; llama.cpp) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
awk -v peak="$peak" '
    function median(s,   a, n, i, j, x) { n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        return n ? a[int((n + 1) / 2)] : 0 }
    BEGIN { split(peak, p, " "); pk["fp32"] = p[2]; pk["bf16"] = p[3]; pk["int8"] = p[4] }
    { k = $1 " " $3 " " $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      cls[k] = $2; v[k, $5] = v[k, $5] " " $6; if ($7 > 0) fl[k] = $7 }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, q, " ")
        s = median(v[k, "strix"]); l = median(v[k, "llama.cpp"])
        P = pk[cls[k]] * q[3]
        ratio = "-"; ls = "-"; lt = "-"; ss = "-"
        if (l > 0) { ratio = sprintf("%.2f", s / l); lt = sprintf("%.2f", l) }
        if (P > 0) ss = sprintf("%.0f%%", 100 * s * fl[k] / 1e9 / P)
        if (P > 0 && l > 0) ls = sprintf("%.0f%%", 100 * l * fl[k] / 1e9 / P)
        printf "| %s | %s | %s | %.2f | %s | %s | %s | %s | %s %.0f |%s;%s |\n", q[1], q[2], q[3], s,
            lt, ratio, ss, ls, cls[k], P, v[k, "strix"], v[k, "llama.cpp"] } }' "$out"
