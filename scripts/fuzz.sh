#!/bin/sh
# Builds the libFuzzer targets (`make fuzz`, clang) and runs each one for
# FUZZ_SECONDS seconds (default 20) on a copy of its seed corpus,
# tests/fuzz/corpus/<target>/ (the committed corpus is never written to).
# Fails if any target crashes, leaks, times out or trips a sanitizer; the
# input that did it is kept under build/fuzz/artifacts/. FUZZ_TARGETS narrows
# the run to some targets (e.g. FUZZ_TARGETS="fuzz_sampler fuzz_chat").
set -e
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
make -s -j2 fuzz
work=$(mktemp -d "${TMPDIR:-/tmp}/strix-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/artifacts
targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
fail=0
for name in $targets; do
    bin=build/fuzz/$name
    [ -x "$bin" ] || { echo "fuzz: $bin was not built"; fail=1; continue; }
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
        fail=1
    fi
done
exit $fail
