#!/bin/sh
# Installs the Debian packages strix needs to build and test, if any are
# missing: a C compiler, make, the sanitizer runtimes that come with gcc,
# PCRE2 (the byte-level BPE pre-tokenizers' regular expressions), and clang
# with its runtimes (libFuzzer, sanitizers) for the clang build and the
# fuzzers (libclang-rt-14-dev on Debian 12, or the one matching clang);
# LAPACKE and OpenBLAS for the analysis statistics (src/analysis/stats.c).
# The server's libraries and test tools are listed below.
# Open MPI (libopenmpi-dev, openmpi-bin) for the optional strix-mpi.
set -e
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
updated=""
install() {
    echo "installing:$*" >&2
    [ -n "$updated" ] || $SUDO apt-get update -qq
    updated=1
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
command -v clang >/dev/null 2>&1 || need="$need clang"
[ -f /usr/include/pcre2.h ] || dpkg -s libpcre2-dev >/dev/null 2>&1 || need="$need libpcre2-dev"
# the server (`strix serve`): libmicrohttpd and cJSON; its tests: Node.js and
# npm (they install the openai client and playwright-core themselves) and
# Chromium for the chat page's test
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
dpkg -s libmicrohttpd-dev >/dev/null 2>&1 || need="$need libmicrohttpd-dev"
dpkg -s libcjson-dev >/dev/null 2>&1 || need="$need libcjson-dev"
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -f /usr/include/lapacke.h ] || dpkg -s liblapacke-dev >/dev/null 2>&1 || need="$need liblapacke-dev"
dpkg -s libopenblas-dev >/dev/null 2>&1 || need="$need libopenblas-dev"
# Open MPI: strix-mpi (pipeline parallelism) and tests/mpi.sh; strix builds without it
command -v mpicc >/dev/null 2>&1 || need="$need libopenmpi-dev"
command -v mpirun >/dev/null 2>&1 || need="$need openmpi-bin"
[ -z "$need" ] || install $need
# libFuzzer's runtime, from the package of clang's own major version
rt="$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
if [ ! -f "$rt" ]; then
    install "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
fi
