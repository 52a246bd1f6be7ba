#!/bin/sh
# Load test of `strix serve` (and, for comparison, llama.cpp's llama-server
# with --parallel 8 -cb) on localhost: for each model, the server is started,
# then tests/server/load.js runs C concurrent streaming clients for each C in
# STREAMS (time to first token, inter-token latency, aggregate tokens/s,
# failures), then three rounds of ROUND_STREAMS clients with the server's
# resident memory after each. Prints JSON lines; BENCHMARKS.md has the
# tables made from them. Timing only: nothing here asserts.
#   scripts/bench_server.sh MODEL.gguf [strix|llama]...
# Environment: STREAMS (1,2,4,8,16,32,64), TOKENS per request (32), PER
# (requests per client, 1), ROUND_STREAMS (64), THREADS (2), PARALLEL (8),
# CTX (total context; 4096), LLAMA_SERVER (path of llama-server).
set -e
cd "$(dirname "$0")/.."
model=$1
shift
servers=${*:-strix}
streams=${STREAMS:-1,2,4,8,16,32,64}
tokens=${TOKENS:-32}
per=${PER:-1}
round=${ROUND_STREAMS:-64}
threads=${THREADS:-2}
parallel=${PARALLEL:-8}
ctx=${CTX:-4096}
llama=${LLAMA_SERVER:-llama-server}
port=18${$}
port=$((port % 20000 + 20000))
[ -d build/serve-node/node_modules ] || sh tests/server/run.sh build/strix /dev/null >/dev/null 2>&1 || true

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
        "$llama" -m "$model" --port $port -t "$threads" --parallel "$parallel" -cb -c "$ctx" \
            --alias bench --no-webui >"$log" 2>&1 &
        ;;
    *) echo "unknown server $server" >&2; exit 1 ;;
    esac
    pid=$!
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "# $server $(basename "$model") threads $threads parallel $parallel tokens $tokens; $(uptime)"
    node tests/server/load.js "http://127.0.0.1:$port" bench "$streams" "$tokens" "$per" |
        sed "s/^{/{\"server\":\"$server\",/"
    for r in 1 2 3; do
        node tests/server/load.js "http://127.0.0.1:$port" bench "$round" "$tokens" "$per" |
            sed "s/^{/{\"server\":\"$server\",\"round\":$r,/"
        echo "{\"server\":\"$server\",\"round\":$r,\"rss_kb\":$(awk '/VmRSS/ {print $2}' /proc/$pid/status)}"
    done
    kill -TERM $pid
    wait $pid || true
    rm -f "$log"
done
