#!/bin/sh
# Builds strix and generates a story from the bundled model.
# Extra arguments go to `strix run` (e.g. -p "Once upon a time" -n 200 --temp 0).
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -s -j2
[ $# -gt 0 ] || set -- -p "Once upon a time" -n 200 --temp 0.8 --top-p 0.95 --seed 42
exec ./build/strix run -m models/stories260K.gguf "$@"
