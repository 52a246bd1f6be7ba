#!/bin/sh
# Runs every test binary in $BUILD/tests and reports a summary; exits non-zero
# if any failed. Run from the repository root.
BUILD=${BUILD:-build}
export STRIX_TEST_DATA=${STRIX_TEST_DATA:-tests/data}
export STRIX_BIN=${STRIX_BIN:-$BUILD/strix}
fail=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    if ! "$t"; then
        echo "FAILED: $t"
        fail=1
    fi
done
if [ -x tests/cli.sh ]; then
    tests/cli.sh "$STRIX_BIN" || fail=1
fi
[ $fail -eq 0 ] && echo "ALL TESTS PASSED" || echo "SOME TESTS FAILED"
exit $fail
