#!/bin/sh
# Pipeline parallelism over MPI (strix-mpi, tools/mpi/pipeline.c) on
# localhost: `mpirun -np 2` and `-np 3` give logits bit-identical to one
# process (-np 1, which runs the whole model) and the same greedy text as
# `strix run`, for the bundled model, the llama2.c story models and every
# architecture's synthetic model; `ppl` over 2 and 3 ranks prints what
# `strix ppl` prints; `bench` with several sequences in flight generates
# the same tokens at any rank count; `serve` over 2 and 3 ranks answers
# concurrent requests with the greedy texts of `strix run` (tests/mpi_serve.js)
# and drains on SIGTERM; then the errors: a model file that differs
# on one rank, more ranks than layers, a bad --split, a rank that dies, a
# rank of a server killed (all end every rank with a message, never a hang). Usage: tests/mpi.sh [BUILD]
# (run by scripts/test.sh when mpicc exists).
R=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$R/build}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
D=${STRIX_TEST_DATA:-$R/tests/data}
case $D in /*) ;; *) D=$(pwd)/$D ;; esac
S=$B/strix
SM=$B/strix-mpi
if ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$SM" ]; then
    echo "tests/mpi.sh: no mpirun or $SM: skipped"
    exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/strix-mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL mpi: $*"; }
# one thread per rank: the ranks share the machine's cores
MPIRUN="timeout 60 mpirun --oversubscribe --allow-run-as-root --bind-to none"

# same NAME MODEL_ARGS NP...: greedy text of each NP equal to `strix run`'s;
# with more than one NP, the logits of every step bit-identical to -np 1's
# (the library's stage split is checked on every model by test_stage.c;
# each mpirun costs about 2 s to start, so the logits are compared here on
# the bundled and story models, the text on every architecture)
same() {
    name=$1 args=$2
    shift 2
    mkdir -p "$T/$name" && cd "$T/$name" || return
    "$S" run $args -p "Once upon a time" -n 24 --temp 0 -t 1 >ref.txt 2>/dev/null
    for np in "$@"; do
        # each mpirun its own session directory: concurrent ones race to
        # create a shared one under /tmp
        mkdir -p "$T/$name/tmp$np"
        TMPDIR="$T/$name/tmp$np" $MPIRUN -np "$np" "$SM" run $args -p "Once upon a time" -n 24 --temp 0 -t 1 \
            --ubatch 2 --dump-logits "l$np.bin" >"o$np.txt" 2>"e$np.txt"
        rc=$?
        if [ $rc -eq 0 ] && cmp -s "o$np.txt" ref.txt && [ -s "l$np.bin" ] &&
            { [ ! -f l1.bin ] || cmp -s "l$np.bin" l1.bin; }; then echo ok; else
            echo "$name: -np $np: rc=$rc, text or logits differ: $(head -c 300 "e$np.txt")"; fi
    done >result.txt
    cd "$T" || exit 1
}
# (about 2 s of each mpirun is MPI's start-up, mostly waiting: three models at a time)
n_bg=0
bg() {
    same "$@" &
    n_bg=$((n_bg + 1))
    [ $((n_bg % 3)) -ne 0 ] || wait
}
bg stories260K.gguf "-m $R/models/stories260K.gguf" 1 2 3
bg stories3M-q80.bin "-m $D/stories3M-q80.bin --vocab $D/tok4096.bin" 1 2 3
bg stories260K.bin "-m $D/stories260K.bin --vocab $D/tok512.bin" 3
for f in "$D"/arch/*.gguf; do
    n=$(basename "$f" .gguf)
    # (yoco's cross-decoder reads a cache its self-decoder fills: it runs
    # whole, on one rank, and strix-mpi says why it refuses more)
    case $n in gemma2) bg "$n" "-m $f" 3 ;; yoco) bg "$n" "-m $f" 1 ;; *) bg "$n" "-m $f" 2 ;; esac
done
wait
for r in "$T"/*/result.txt; do
    while read -r line; do
        if [ "$line" = ok ]; then ok; else bad "$line"; fi
    done <"$r"
done
# 7 rows for the story models (1, 2, 3 ranks; 1, 2, 3; 3), one per architecture
want=$((7 + $(ls "$D"/arch/*.gguf | wc -l)))
[ "$(cat "$T"/*/result.txt | wc -l)" -eq $want ] || bad "expected $want results"
cp stories260K.gguf/l1.bin base.bin

# a split by hand: the same logits again
G="$R/models/stories260K.gguf"
$MPIRUN -np 2 "$SM" run -m "$G" -p "Once upon a time" -n 24 --temp 0 -t 1 --split 4,1 \
    --dump-logits s.bin >/dev/null 2>e.txt
if cmp -s s.bin base.bin; then ok; else bad "--split 4,1: logits differ: $(head -c 300 e.txt)"; fi

# ppl over the pipeline: the same report as `strix ppl` in one process
# (chunks; sliding windows saving a KL base, byte for byte), and a KL base
# read back over 3 ranks scoring KL 0 against itself
F=$D/tinystories-valid-4k.txt
"$S" ppl -m "$G" -f "$F" -c 128 -t 1 >ppl1.txt 2>/dev/null
"$S" ppl -m "$G" -f "$F" -c 96 --stride 40 -t 1 --kl-save kl1.bin >ppls1.txt 2>/dev/null
for np in 2 3; do
    $MPIRUN -np $np "$SM" ppl -m "$G" -f "$F" -c 128 -t 1 --ubatch 16 >ppl$np.txt 2>e.txt
    if [ -s ppl1.txt ] && cmp -s ppl1.txt ppl$np.txt; then ok; else
        bad "ppl -np $np differs: $(head -c 300 e.txt)"; fi
done
$MPIRUN -np 2 "$SM" ppl -m "$G" -f "$F" -c 96 --stride 40 -t 1 --kl-save kl2.bin >ppls2.txt 2>e.txt
if cmp -s kl1.bin kl2.bin && [ "$(sed 1,4d ppls1.txt | grep -v saved)" = "$(sed 1,4d ppls2.txt | grep -v saved)" ]
then ok; else bad "ppl --stride --kl-save -np 2 differs: $(head -c 300 e.txt)"; fi
$MPIRUN -np 3 "$SM" ppl -m "$G" --kl-base kl1.bin -t 1 >klb.txt 2>e.txt
if grep -q "KL divergence: mean 0.000000" klb.txt && grep -q "same top token: 100.000%" klb.txt
then ok; else bad "ppl --kl-base -np 3: $(head -c 300 klb.txt e.txt)"; fi
# bench with 3 sequences in flight: every sequence's greedy tokens the same
# at 1, 2 and 3 ranks
for np in 1 2 3; do
    $MPIRUN -np $np "$SM" bench -m "$G" -p 20 -n 12 -r 1 --seqs 3 -t 1 --ubatch 8 --json \
        2>e.txt | sed -n 's/.*"tokens_fnv": "\([0-9a-f]*\)".*/\1/p' >h$np.txt
done
if [ -s h1.txt ] && cmp -s h1.txt h2.txt && cmp -s h1.txt h3.txt; then ok; else
    bad "bench --seqs 3: tokens differ across ranks: $(cat h1.txt h2.txt h3.txt | tr '\n' ' ')"; fi

# expect_error DESCRIPTION PATTERN MPIRUN-ARGS...: non-zero exit before the
# timeout, PATTERN on stderr
expect_error() {
    what=$1 pat=$2
    shift 2
    $MPIRUN "$@" >out.txt 2>err.txt
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "$pat" err.txt; then ok; else
        bad "$what: rc=$rc: $(head -c 400 err.txt)"; fi
}
P="-p Once -n 8 --temp 0 -t 1"
expect_error "more ranks than layers" "3 ranks for a model of 2 layers" \
    -np 3 "$SM" run -m "$D/arch/qwen2.gguf" $P
expect_error "bad split" "adds up to 4 layers" -np 2 "$SM" run -m "$G" $P --split 2,2
expect_error "different model file" "rank 1's model file differs from rank 0's" \
    -np 1 "$SM" run -m "$G" $P : -np 1 "$SM" run -m "$D/stories260K-ref.gguf" $P
expect_error "a rank that dies" "exiting on purpose" \
    -np 3 -x STRIX_MPI_FAULT=1 "$SM" run -m "$G" $P
# a server that cannot start (here a bad option) ends the ranks waiting for it
expect_error "serve with a bad option" "unknown option '--bogus'" \
    -np 2 "$SM" serve -m "$G" -t 1 --bogus 1

# serve over the pipeline (rank 0 serves HTTP): tests/mpi_serve.js sends
# requests at once (a shared system prompt, n = 2, a stream cancelled
# mid-way) and compares the greedy texts with `strix run`'s; then SIGTERM to
# rank 0 drains and ends every rank. Each rank checks its cache against
# rank 0's after every chunk, so a lost cache change ends the job.
# serve_start NP: starts the job (MP: mpirun's pid; PORT; P0, P1: the pids
# of ranks 0 and 1), 0 once it listens
serve_start() {
    rm -f serve.err
    STRIX_SERVE_STEP_DELAY_MS=5 $MPIRUN -np "$1" -x STRIX_SERVE_STEP_DELAY_MS "$SM" serve \
        -m "$G" --port 0 --parallel 4 -t 1 --ubatch 4 >serve.out 2>serve.err &
    MP=$!
    for _ in $(seq 1 100); do
        grep -q "listening on" serve.err 2>/dev/null && break
        kill -0 $MP 2>/dev/null || break
        sleep 0.3
    done
    PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' serve.err)
    P0=$(sed -n 's/.*rank 0 (pid \([0-9]*\)).*/\1/p' serve.err)
    P1=$(sed -n 's/.*rank 1 (pid \([0-9]*\)).*/\1/p' serve.err)
    [ -n "$PORT" ] && [ -n "$P0" ] && [ -n "$P1" ]
}
if ! command -v node >/dev/null 2>&1; then
    echo "tests/mpi.sh: no node: the serve checks are skipped"
else
    for np in 2 3; do
        if ! serve_start $np; then
            bad "serve -np $np did not start: $(head -c 400 serve.err)"
            kill $MP 2>/dev/null
            continue
        fi
        timeout 60 node "$R/tests/mpi_serve.js" "$PORT" "$S" "$G" >js.txt 2>&1
        n_ok=$(grep -c '^ok$' js.txt)
        grep -q FAIL js.txt && bad "serve -np $np: $(grep FAIL js.txt | head -c 600)"
        [ "$n_ok" -eq 11 ] && ok || bad "serve -np $np: $n_ok of 11 HTTP checks passed"
        kill -TERM "$P0"
        wait $MP
        rc=$?
        if [ $rc -eq 0 ] && grep -q "strix serve: stopped" serve.err; then ok; else
            bad "serve -np $np: SIGTERM to rank 0: rc=$rc: $(tail -c 400 serve.err)"; fi
    done
    # a rank killed while the server runs: every rank ends, with mpirun's
    # message, and the client gets no answer rather than a hang
    if serve_start 2; then
        kill -KILL "$P1"
        timeout 30 node -e "fetch('http://127.0.0.1:$PORT/v1/completions', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({prompt: 'Once', max_tokens: 8})})
            .then((r) => process.exit(r.status === 200 ? 1 : 0), () => process.exit(0))"
        crc=$?
        wait $MP
        rc=$?
        if [ $crc -eq 0 ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] &&
            grep -q "rank 1 .* exited on signal 9" serve.err; then ok; else
            bad "serve, rank 1 killed: client rc=$crc, mpirun rc=$rc: $(tail -c 400 serve.err)"; fi
    else
        bad "serve -np 2 did not start: $(head -c 400 serve.err)"
        kill $MP 2>/dev/null
    fi
fi

# strix info says whether MPI is compiled in
if "$SM" info -m "$G" | grep -q "^mpi: *compiled in" &&
    "$S" info -m "$G" | grep -q "^mpi: *not compiled in"; then ok; else bad "info: mpi line"; fi

echo "tests/mpi.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
