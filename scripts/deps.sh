#!/bin/sh
# Installs the Debian packages strix needs to build and test, if any are
# missing: a C compiler, make, the sanitizer runtimes that come with gcc, and
# PCRE2 (the byte-level BPE pre-tokenizers' regular expressions).
set -e
need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
[ -f /usr/include/pcre2.h ] || dpkg -s libpcre2-dev >/dev/null 2>&1 || need="$need libpcre2-dev"
if [ -n "$need" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing:$need" >&2
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
