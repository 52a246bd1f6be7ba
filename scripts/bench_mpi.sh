#!/bin/sh
# Pipeline parallelism over MPI on one machine (BENCHMARKS.md, "Pipeline
# parallelism (MPI)"): the one-way time of the pipeline's messages
# (strix-mpi mpi-pingpong), then `strix-mpi run` of one model on 1, 2 and 3
# ranks, interleaved over ROUNDS rounds, one thread per rank, greedy, with
# each rank's layers, weight bytes, peak RSS, compute and wait time and
# messages (--stats). The ranks share this machine's cores, so this
# measures the pipeline's overhead per token, not a speed-up.
# Usage: scripts/bench_mpi.sh MODEL.gguf [ROUNDS] [PROMPT_REPEATS] [N_GEN]
# (logs in $OUT, default build/bench_mpi)
set -e
cd "$(dirname "$0")/.."
M=${1:?usage: scripts/bench_mpi.sh MODEL.gguf [ROUNDS] [PROMPT_REPEATS] [N_GEN]}
ROUNDS=${2:-2}
REPS=${3:-8}
NG=${4:-16}
OUT=${OUT:-build/bench_mpi}
NPS=${NPS:-1 2 3}
mkdir -p "$OUT"
MPIRUN="mpirun --oversubscribe --allow-run-as-root --bind-to none"
echo "load: $(uptime)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores," \
    "$(grep -m1 -o 'avx512[a-z_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
$MPIRUN -np 2 build/strix-mpi mpi-pingpong
P=""
i=0
while [ $i -lt "$REPS" ]; do
    P="$P Once upon a time, there was a little girl who lived in a village near the forest."
    i=$((i + 1))
done
r=1
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
