#!/bin/sh
# Load test of `strix serve` (and, for comparison, llama.cpp's llama-server
# with --parallel 8 -cb) on localhost: for each model, the server is started,
# then tests/server/load.js runs C concurrent streaming clients for each C in
# STREAMS (time to first token, inter-token latency, aggregate tokens/s,
# failures), then three rounds of ROUND_STREAMS clients with the server's
# resident memory after each. Prints JSON lines, then a table per server;
# BENCHMARKS.md ("strix serve") has the tables made from them. Timing only:
# nothing here asserts.
#   scripts/bench_server.sh MODEL.gguf [strix|llama]...
# Environment: STREAMS (1,2,4,8,16,32,64), TOKENS per request (32), PER
# (requests per client, 1), ROUND_STREAMS (64), THREADS (2), PARALLEL (8),
# CTX (total context; 4096), LLAMA_SERVER (path of llama-server; without it
# the llama run is skipped with a note), LIMIT_S (the most seconds one level
# or round may take, 120: requests still running then are cut and counted
# as "cut", so the whole run is bounded by about (levels + 3) * LIMIT_S per
# server plus start-up).
#
# The 1.1B sweep (TinyLlama-1.1B shape, Q4_0; `strix synth` then `strix
# convert --type Q4_0`, see BENCHMARKS.md), unattended, both servers:
#   LLAMA_SERVER=/path/to/llama-server scripts/bench_server.sh tl1b-q4_0.gguf strix llama
# On an idle 2-core machine a strix pass takes about 2-3 minutes (about
# 4,100 tokens of sweep and 6,100 of rounds at 100+ tokens/s batched); the
# bound above is 10 levels x 120 s = 20 minutes per server at worst.
set -e
cd "$(dirname "$0")/.."
model=$1
[ -n "$model" ] && [ -f "$model" ] || { echo "usage: $0 MODEL.gguf [strix|llama]..." >&2; exit 1; }
shift
servers=${*:-strix}
streams=${STREAMS:-1,2,4,8,16,32,64}
tokens=${TOKENS:-32}
per=${PER:-1}
round=${ROUND_STREAMS:-64}
threads=${THREADS:-2}
parallel=${PARALLEL:-8}
ctx=${CTX:-4096}
limit=${LIMIT_S:-120}
llama=${LLAMA_SERVER:-llama-server}
port=18${$}
port=$((port % 20000 + 20000))
if ! build/strix serve --help >/dev/null 2>&1; then
    echo "build/strix has no server: make (with libmicrohttpd and cJSON, scripts/deps.sh)" >&2
    exit 1
fi
[ -d build/serve-node/node_modules ] || sh tests/server/run.sh build/strix /dev/null >/dev/null 2>&1 || true
out=$(mktemp)
trap 'rm -f "$out"' EXIT
t_all=$(date +%s)

for server in $servers; do
    log=$(mktemp)
    case $server in
    strix)
        # strix's context size is per sequence: CTX / PARALLEL each, as
        # llama-server splits its -c among its slots
        build/strix serve -m "$model" --port $port -t "$threads" --parallel "$parallel" \
            -c $((ctx / parallel)) --queue 256 --alias bench 2>"$log" &
        ;;
    llama)
        if ! command -v "$llama" >/dev/null 2>&1; then
            echo "# llama: skipped ($llama not found; set LLAMA_SERVER)"
            rm -f "$log"
            continue
        fi
        "$llama" -m "$model" --port $port -t "$threads" --parallel "$parallel" -cb -c "$ctx" \
            --alias bench --no-webui >"$log" 2>&1 &
        ;;
    *) echo "unknown server $server" >&2; exit 1 ;;
    esac
    pid=$!
    up=0
    for _ in $(seq 1 600); do
        if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then up=1; break; fi
        kill -0 $pid 2>/dev/null || break
        sleep 0.2
    done
    if [ $up -eq 0 ]; then
        echo "# $server: the server did not start:"
        tail -n 5 "$log"
        kill -TERM $pid 2>/dev/null || true
        wait $pid 2>/dev/null || true
        rm -f "$log"
        continue
    fi
    echo "# $server $(basename "$model") threads $threads parallel $parallel tokens $tokens; $(uptime)"
    # (timeout: a second bound in case a level's requests ignore the abort)
    timeout $((limit * 8 + 60)) node tests/server/load.js "http://127.0.0.1:$port" bench \
        "$streams" "$tokens" "$per" "$limit" |
        sed "s/^{/{\"server\":\"$server\",/" | tee -a "$out" || echo "# $server: the sweep was cut"
    for r in 1 2 3; do
        timeout $((limit + 60)) node tests/server/load.js "http://127.0.0.1:$port" bench \
            "$round" "$tokens" "$per" "$limit" |
            sed "s/^{/{\"server\":\"$server\",\"round\":$r,/" | tee -a "$out" || true
        echo "{\"server\":\"$server\",\"round\":$r,\"rss_kb\":$(awk '/VmRSS/ {print $2}' /proc/$pid/status)}" |
            tee -a "$out"
    done
    kill -TERM $pid
    wait $pid || true
    rm -f "$log"
done

# the tables (Markdown)
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")
  .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
for (const s of [...new Set(lines.map((l) => l.server))]) {
  console.log(`\n${s}:\n\n| streams | tokens/s | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | failed | cut |`);
  console.log("|---:|---:|---:|---:|---:|---:|");
  for (const l of lines.filter((x) => x.server === s && x.streams && !x.round))
    console.log(`| ${l.streams} | ${l.tok_s} | ${l.ttft_p50} / ${l.ttft_p99} | ${l.itl_p50} / ${l.itl_p99} | ${l.failed} | ${l.cut} |`);
  const rounds = lines.filter((x) => x.server === s && x.round);
  const tps = rounds.filter((x) => x.tok_s !== undefined).map((x) => x.tok_s);
  const rss = rounds.filter((x) => x.rss_kb !== undefined).map((x) => (x.rss_kb / 1024).toFixed(1));
  console.log(`\nrounds: tokens/s ${tps.join(", ")}; resident MB after each ${rss.join(", ")}; ` +
    `failed ${rounds.reduce((a, x) => a + (x.failed || 0), 0)}, cut ${rounds.reduce((a, x) => a + (x.cut || 0), 0)}`);
}' "$out"
echo "# total $(( $(date +%s) - t_all )) s"
