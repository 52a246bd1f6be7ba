#!/bin/sh
# Builds strix and runs the whole test suite twice: a release build, then a
# build with AddressSanitizer + UndefinedBehaviorSanitizer, and the threaded
# API tests under ThreadSanitizer.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -s -j2 check
