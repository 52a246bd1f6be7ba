#!/bin/sh
# Pipeline parallelism over MPI on one machine (BENCHMARKS.md, "Pipeline
# parallelism (MPI)"): the one-way time of the pipeline's messages
# (strix-mpi mpi-pingpong), then `strix-mpi run` of one model on 1, 2 and 3
# ranks, interleaved over ROUNDS rounds, one thread per rank, greedy, with
# each rank's layers, weight bytes, peak RSS, compute and wait time and
# messages (--stats), and the medians over the rounds of the pipeline's
# overhead per generated token. The ranks share this machine's cores, so
# this measures the pipeline's overhead per token, not a speed-up. Then the
# throughput model for N machines, sequences in flight (strix-mpi bench
# --seqs), and serving over the pipeline (strix-mpi serve on 1, 2 and 3
# ranks, interleaved over SERVE_ROUNDS rounds: one streamed request alone,
# then SERVE_CONC at once; needs node). About 3 minutes for the 1.1B shape
# at Q4_0 on a quiet 2-core machine.
# Usage: scripts/bench_mpi.sh MODEL.gguf [ROUNDS] [PROMPT_REPEATS] [N_GEN]
# (logs in $OUT, default build/bench_mpi; MODEL_ONLY=1 only recomputes the
# model from the logs there; SERVE_ONLY=1 runs only the serving part)
set -e
cd "$(dirname "$0")/.."
M=${1:?usage: scripts/bench_mpi.sh MODEL.gguf [ROUNDS] [PROMPT_REPEATS] [N_GEN]}
ROUNDS=${2:-3}
REPS=${3:-8}
NG=${4:-16}
OUT=${OUT:-build/bench_mpi}
NPS=${NPS:-1 2 3}
mkdir -p "$OUT"
MPIRUN="mpirun --oversubscribe --allow-run-as-root --bind-to none"
med() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# Serving over the pipeline: `strix-mpi serve` on NP ranks (1: the whole
# model in one process), one thread per rank, forward passes of 16 tokens;
# scripts/bench_mpi_serve.js sends one streamed request alone (time to first
# token, decode speed), then SERVE_CONC at once (aggregate tokens/s). The
# scheduler's steps wait for their logits, so the stages take turns in
# generation: on one machine's shared cores this shows the cost of the
# pipeline in a server, not a speed-up.
SERVE_ROUNDS=${SERVE_ROUNDS:-2}
SERVE_CONC=${SERVE_CONC:-4}
serve_section() {
    [ -z "$MODEL_ONLY" ] && command -v node >/dev/null 2>&1 || return 0
    rm -f "$OUT/serve.txt"
    echo "serve: ranks, round: ttft ms, decode t/s (1 request), aggregate t/s ($SERVE_CONC at once), tokens"
    r=1
    while [ $r -le "$SERVE_ROUNDS" ]; do
        for np in $NPS; do
            log="$OUT/serve-np$np-r$r.err"
            $MPIRUN -np "$np" build/strix-mpi serve -m "$M" --port 0 --parallel "$SERVE_CONC" -t 1 \
                --ubatch 16 >/dev/null 2>"$log" &
            mp=$!
            port=""
            for _ in $(seq 1 600); do
                port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$log")
                [ -z "$port" ] && kill -0 $mp 2>/dev/null || break
                sleep 0.2
            done
            res=$(timeout 300 node scripts/bench_mpi_serve.js "$port" "$NG" "$SERVE_CONC" || echo failed)
            echo "serve $np $r: $res" | tee -a "$OUT/serve.txt"
            p0=$(sed -n 's/.*SIGINT to pid \([0-9]*\).*/\1/p' "$log")
            kill -TERM "${p0:-$mp}" 2>/dev/null
            wait $mp || true
        done
        r=$((r + 1))
    done
    echo "serve medians: ranks  ttft ms  decode t/s  aggregate t/s"
    for np in $NPS; do
        col() { grep "^serve $np " "$OUT/serve.txt" | tail -n "$SERVE_ROUNDS" | awk -v c="$1" '{ print $(3 + c) }' | med; }
        printf "               %5d  %7s  %10s  %13s\n" "$np" "$(col 1)" "$(col 2)" "$(col 3)"
    done
    echo "load: $(uptime)"
}
if [ -n "$SERVE_ONLY" ]; then
    serve_section
    exit 0
fi
echo "load: $(uptime)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores," \
    "$(grep -m1 -o 'avx512[a-z_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
[ -n "$MODEL_ONLY" ] || $MPIRUN -np 2 build/strix-mpi mpi-pingpong | tee "$OUT/pingpong.txt"
P=""
i=0
while [ $i -lt "$REPS" ]; do
    P="$P Once upon a time, there was a little girl who lived in a village near the forest."
    i=$((i + 1))
done
r=1
[ -z "$MODEL_ONLY" ] || r=$((ROUNDS + 1))
while [ $r -le "$ROUNDS" ]; do
    for np in $NPS; do
        log="$OUT/np$np-r$r.txt"
        $MPIRUN -np "$np" build/strix-mpi run -m "$M" -p "$P" -n "$NG" --temp 0 -t 1 \
            --ubatch 16 --stats >"$OUT/np$np-r$r.out" 2>"$log"
        echo "== np $np, round $r"
        grep -v '^seed' "$log"
    done
    r=$((r + 1))
done
echo "load: $(uptime)"
# medians over the rounds, per generated token (rank 0's wall time of a
# one-token decode through the chain; every rank's compute for it; the
# difference, the pipeline's overhead)
echo "ranks  wall ms/token  compute ms/token  overhead ms/token (medians of $ROUNDS rounds; each round)"
for np in $NPS; do
    vals() { sed -n "s/^per generated token: \([0-9.]*\) ms wall, \([0-9.]*\) ms compute.*, \([-0-9.]*\) ms pipeline overhead/\\$1/p" \
        "$OUT"/np$np-r*.txt; }
    printf "%5d  %13s  %16s  %17s  (%s)\n" "$np" "$(vals 1 | med)" "$(vals 2 | med)" "$(vals 3 | med)" \
        "$(vals 3 | tr '\n' ' ' | sed 's/ $//')"
done

# The model (BENCHMARKS.md): per generated token of one sequence on N
# stages, L_N = T + (N - 1) c(h) + c(l) with c(x) = alpha + x / B, h the
# hidden state (4 n_embd + 16 bytes), l the logits (4 n_vocab bytes), T the
# one-process time per token; a prompt of P tokens in micro-batches of u:
# (P / u + N - 1) (u T_p / N + c(u h)). T and T_p are this machine's,
# measured on 1 rank (medians over the rounds); the 70B shape's T scales with its
# weight bytes (decoding reads every weight once per token). With N
# sequences in flight, one per stage (strix-mpi bench --seqs N), N / (T + N c(l)).
# Localhost check: the predicted overhead (N - 1) c(h) + c(l) from the
# ping-pong times against the measured "pipeline overhead" per token.
last=$ROUNDS
T=$(sed -n 's/^per generated token: \([0-9.]*\) ms wall.*/\1/p' "$OUT"/np1-r*.txt | med)
TP=$(sed -n 's/^prompt: \([0-9]*\) tokens, \([0-9.]*\) tok\/s.*/\2/p' "$OUT"/np1-r*.txt | med)
W=$(awk '$1 == 0 && $2 ~ /\[/ {print $4 * 1048576}' "$OUT/np1-r$last.txt")
echo "measured on 1 rank: T = $T ms per token, prompt $TP tok/s, weights $W bytes"
for np in $NPS; do
    [ "$np" -gt 1 ] || continue
    o=$(sed -n 's/^per generated token: .*, \([-0-9.]*\) ms pipeline overhead/\1/p' "$OUT"/np$np-r*.txt | med)
    awk -v np="$np" -v o="$o" '
        $1 == 8192 { c_h = $2 } $1 == 131072 { c_l = $2 }
        END { printf "localhost, %d ranks: overhead per token predicted %.3f ms (ping-pong), measured %.3f ms (median)\n",
              np, ((np - 1) * c_h + c_l) / 1000, o }' "$OUT/pingpong.txt"
done
awk -v T="$T" -v TP="$TP" -v W="$W" 'BEGIN {
    W70 = 38.8e9; P = 512; u = 32
    printf "%-10s %-9s %3s %10s %13s %11s %14s %13s\n", "shape", "link", "N", "ms/token",
           "tok/s (1 seq)", "overhead %", "tok/s (N seqs)", "prompt 512 s"
    for (s = 0; s < 2; s++) {
        embd = s ? 8192 : 2048; t = s ? T * W70 / W : T; tp = s ? (1000 / TP) * W70 / W : 1000 / TP
        for (k = 0; k < 2; k++) {
            alpha = k ? 0.003 : 0.025; B = k ? 12.5e6 : 1.25e6   # ms, bytes per ms
            for (N = 1; N <= 8; N *= 2) {
                h = 4 * embd + 16; ch = alpha + h / B; cl = alpha + 4 * 32000 / B
                L = t + (N > 1 ? (N - 1) * ch + cl : 0)
                pp = (P / u + N - 1) * (u * tp / N + (N > 1 ? alpha + u * h / B : 0)) / 1000
                # N sequences in flight, one per stage: each stage computes and hands on
                tn = 1000 / (t / N + (N > 1 ? cl : 0))
                printf "%-10s %-9s %3d %10.2f %13.3f %11.3f %14.3f %13.2f\n", s ? "70B Q4_0" : "1.1B Q4_0",
                       k ? "100Gbit/s" : "10Gbit/s", N, L, 1000 / L, 100 * (L - t) / t, tn, pp
            }
        }
    }
}'

# Sequences in flight (strix-mpi bench --seqs G): aggregate generation speed
# of G sequences through N ranks, one thread per rank. On this machine the
# ranks share its cores, so the check is relative: on 2 ranks, 2 sequences
# in flight keep both stages busy where 1 leaves each idle half the time.
[ -n "$MODEL_ONLY" ] || for np in 1 2; do
    for g in 1 2; do
        $MPIRUN -np "$np" build/strix-mpi bench -m "$M" -p 32 -n "$NG" -r 3 --seqs "$g" -t 1 \
            --ubatch 16 2>/dev/null
    done
done
echo "load: $(uptime)"

serve_section
