# scripts/lib.sh - pieces the benchmark scripts share; sourced, not run:
#   . "$(dirname "$0")/lib.sh"
#
# MEDIAN_AWK: an awk function, med(s), the median of the numbers in the
# space-separated string s (of an even count, the lower middle one). Put it
# before the program: awk "$MEDIAN_AWK"' END { print med(v) }'
MEDIAN_AWK='function med(s,   a, n, i, j, x) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++)
        for (j = i + 1; j <= n; j++)
            if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
    return a[int((n + 1) / 2)] }
'
