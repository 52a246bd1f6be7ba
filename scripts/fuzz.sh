#!/bin/sh
# Builds the libFuzzer targets (`make fuzz`, clang) and runs each one for
# FUZZ_SECONDS seconds (default 20; JOBS at once) on a copy of its seed corpus,
# tests/fuzz/corpus/<target>/ (the committed corpus is never written to).
# Fails if any target crashes, leaks, times out or trips a sanitizer; the
# input that did it is kept under build/fuzz/artifacts/. FUZZ_TARGETS narrows
# the run to some targets (e.g. FUZZ_TARGETS="fuzz_sampler fuzz_chat").
set -e
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
if [ "$1" = --one ]; then
    work=$2
    FUZZ_ONE=1
else
    make -s -j2 fuzz
    work=$(mktemp -d "${TMPDIR:-/tmp}/strix-fuzz.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p build/fuzz/artifacts
fi
targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
# one target (the script calls itself through xargs, JOBS targets at once)
fuzz_one() {
    name=$1
    bin=build/fuzz/$name
    [ -x "$bin" ] || { echo "fuzz: $bin was not built"; return 1; }
    mkdir -p "$work/$name"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp tests/fuzz/corpus/"$name"/* "$work/$name/"
    fi
    if STRIX_FUZZ_DATA=tests/data "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$name-" "$work/$name" \
        >"$work/$name.log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$' || true)
        [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$work/$name.log" | tail -1 | tr -d '#')
        echo "fuzz $name: ok, ${runs:-?} runs in ${secs} s"
    else
        echo "FUZZ FAILED: $name (the input is under build/fuzz/artifacts/)"
        tail -n 60 "$work/$name.log"
        touch "$work/failed"
    fi
}
if [ -n "${FUZZ_ONE:-}" ]; then
    fuzz_one "$3" || touch "$work/failed"
    exit 0
fi
# JOBS targets at once (default: the number of CPUs; each fuzzer is one
# process); a target's report is printed when it ends
for name in $targets; do echo "$name"; done |
    xargs -P "${JOBS:-$(nproc 2>/dev/null || echo 1)}" -I{} sh "$self" --one "$work" {}
[ ! -e "$work/failed" ]
