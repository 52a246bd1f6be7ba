#!/bin/sh
# Checks the layering of src/: a folder may include headers of its own folder,
# of folders earlier in LAYERS, and util.h; never of a later folder. Prints
# each violation and exits non-zero if there is one.
cd "$(dirname "$0")/.." || exit 2
LAYERS="quant format kernels tokenize model runtime train generate analysis"
rank() {
    i=0
    for l in $LAYERS; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo -1
}
bad=0
for f in src/*/*.c src/*/*.h; do
    dir=$(basename "$(dirname "$f")")
    me=$(rank "$dir")
    for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[a-z_0-9]*\.h".*/\1/p' "$f" | sort -u); do
        them=$(rank "$inc")
        if [ "$me" -lt 0 ] || [ "$them" -lt 0 ] || [ "$them" -gt "$me" ]; then
            echo "layering: $f includes a header of $inc/"
            bad=1
        fi
    done
done
[ $bad -eq 0 ] && echo "layering: ok ($LAYERS)"
exit $bad
