#!/bin/sh
# Runs every test binary in $BUILD/tests and reports a summary; exits non-zero
# if any failed. Works from any directory: BUILD (default build/ beside this
# script's folder) and STRIX_TEST_DATA (default tests/data) are made absolute.
# The golden-text and logits tests (GOLDEN_TESTS) run once more under each
# kernel set (STRIX_KERNELS=scalar, avx2, avxvnni, avx512); a set this CPU lacks is
# skipped by the test itself, which says so.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
STRIX_TEST_DATA=${STRIX_TEST_DATA:-$ROOT/tests/data}
case $STRIX_TEST_DATA in /*) ;; *) STRIX_TEST_DATA=$(pwd)/$STRIX_TEST_DATA ;; esac
STRIX_BIN=${STRIX_BIN:-$BUILD/strix}
export STRIX_TEST_DATA STRIX_BIN
GOLDEN_TESTS=${GOLDEN_TESTS:-test_logits test_arch test_model test_ffn_variants}
KERNEL_SETS=${KERNEL_SETS:-scalar avx2 avxvnni avx512}
fail=0
n=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$((n + 1))
    if ! "$t"; then
        echo "FAILED: $t"
        fail=1
    fi
done
if [ $n -eq 0 ]; then
    echo "no test binaries in $BUILD/tests"
    fail=1
fi
for set in $KERNEL_SETS; do
    for name in $GOLDEN_TESTS; do
        t=$BUILD/tests/$name
        [ -x "$t" ] || continue
        if ! STRIX_KERNELS=$set "$t"; then
            echo "FAILED: STRIX_KERNELS=$set $t"
            fail=1
        fi
    done
done
if [ -x "$ROOT/tests/cli.sh" ]; then
    (cd "$ROOT" && tests/cli.sh "$STRIX_BIN") || fail=1
fi
[ $fail -eq 0 ] && echo "ALL TESTS PASSED" || echo "SOME TESTS FAILED"
exit $fail
