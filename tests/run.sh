#!/bin/sh
# Runs every test binary in $BUILD/tests and reports a summary; exits non-zero
# if any failed. Works from any directory: BUILD (default build/ beside this
# script's folder) and STRIX_TEST_DATA (default tests/data) are made absolute.
# The golden-text and logits tests (GOLDEN_TESTS) run once more under each
# kernel set (STRIX_KERNELS=scalar, avx2, avxvnni, avx512); a set this CPU lacks is
# skipped by the test itself, which says so.
# JOBS tests run at once (default: the number of CPUs), each with its own
# TMPDIR; each test's output is printed whole when it ends, longest first
# in the queue so that the slowest do not start last.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
STRIX_TEST_DATA=${STRIX_TEST_DATA:-$ROOT/tests/data}
case $STRIX_TEST_DATA in /*) ;; *) STRIX_TEST_DATA=$(pwd)/$STRIX_TEST_DATA ;; esac
STRIX_BIN=${STRIX_BIN:-$BUILD/strix}
export BUILD STRIX_TEST_DATA STRIX_BIN
GOLDEN_TESTS=${GOLDEN_TESTS:-test_logits test_arch test_model test_ffn_variants}
KERNEL_SETS=${KERNEL_SETS:-scalar avx2 avxvnni avx512}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 1)}
# one run (the script calls itself through xargs): its own TMPDIR, its
# output in a log printed whole at its end
if [ "$1" = --one ]; then
    work=$2 set_=$3 name=$4
    trap - EXIT
    id=$name
    [ "$set_" = - ] || id=$name.$set_
    mkdir -p "$work/$id.tmp"
    if [ "$set_" = - ]; then
        TMPDIR=$work/$id.tmp "$BUILD/tests/$name" >"$work/$id.log" 2>&1
    else
        STRIX_KERNELS=$set_ TMPDIR=$work/$id.tmp "$BUILD/tests/$name" >"$work/$id.log" 2>&1
    fi
    rc=$?
    label=$BUILD/tests/$name
    [ "$set_" = - ] || label="STRIX_KERNELS=$set_ $label"
    [ $rc -eq 0 ] || echo "FAILED: $label" >>"$work/$id.log"
    # print under a lock so that two logs never interleave
    while ! mkdir "$work/lock" 2>/dev/null; do sleep 0.05; done
    cat "$work/$id.log"
    rmdir "$work/lock"
    rm -rf "$work/$id.tmp"
    [ $rc -eq 0 ] || touch "$work/failed"
    exit 0
fi
# the tests that take longest (minutes under the sanitizers) go first
SLOW="test_speculative test_beam test_ppl test_kvtypes test_spec_lossy test_quant_model"
work=$(mktemp -d "${TMPDIR:-/tmp}/strix-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT

# the queue: one line per run, "KERNEL_SET TEST" ("-" for the default set)
queue=$work/queue
: >"$queue"
for name in $SLOW; do
    [ -x "$BUILD/tests/$name" ] && echo "- $name" >>"$queue"
done
n=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$((n + 1))
    name=$(basename "$t")
    case " $SLOW " in *" $name "*) ;; *) echo "- $name" >>"$queue" ;; esac
done
for set in $KERNEL_SETS; do
    for name in $GOLDEN_TESTS; do
        [ -x "$BUILD/tests/$name" ] && echo "$set $name" >>"$queue"
    done
done
fail=0
if [ $n -eq 0 ]; then
    echo "no test binaries in $BUILD/tests"
    fail=1
fi

sed "s|^|--one $work |" "$queue" | xargs -P "$JOBS" -L 1 sh "$ROOT/tests/run.sh"
[ -e "$work/failed" ] && fail=1
if [ -x "$ROOT/tests/cli.sh" ]; then
    (cd "$ROOT" && tests/cli.sh "$STRIX_BIN") || fail=1
fi
[ $fail -eq 0 ] && echo "ALL TESTS PASSED" || echo "SOME TESTS FAILED"
exit $fail
