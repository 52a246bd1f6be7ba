#!/bin/sh
# Builds strix and runs the whole test suite twice: a release build, then a
# build with AddressSanitizer + UndefinedBehaviorSanitizer, and the threaded
# API tests under ThreadSanitizer; then the MPI tests (tests/mpi.sh). Then the same tests built with clang, and a
# short run of every fuzzer on its seed corpus (scripts/fuzz.sh; FUZZ_SECONDS
# per target, 20 by default).
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -s -j2 check
# pipeline parallelism over MPI (strix-mpi, built when mpicc exists)
! command -v mpicc >/dev/null 2>&1 || sh tests/mpi.sh build
make -s -j2 CC=clang BUILD=build/clang all tests
BUILD=build/clang tests/run.sh
sh scripts/fuzz.sh
