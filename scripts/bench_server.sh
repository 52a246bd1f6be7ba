#!/bin/sh
# Load test of `strix serve` and, side by side, llama.cpp's llama-server
# (--parallel 8 -cb) on localhost. For each model, every server named is
# started (each on its own port, idle while the other runs), then
# tests/server/load.js runs C concurrent streaming clients for each C in
# STREAMS, the servers taking turns at each level (interleaved, so a change
# in the machine's load hits both alike): time to first token, inter-token
# latency, aggregate tokens/s, failures, and "short" responses (every
# request sends ignore_eos, which both servers accept, so both generate
# TOKENS tokens per request; "short" counts any that did not). Then three
# rounds of ROUND_STREAMS clients, again in turns, with each server's
# resident memory after each round. Prints JSON lines, then Markdown tables
# per model and server and the strix / llama-server throughput ratios;
# BENCHMARKS.md ("strix serve") has the tables made from them. Timing only:
# nothing here asserts.
#   scripts/bench_server.sh MODEL.gguf[,MODEL.gguf...] [strix|llama]...
# Environment: STREAMS (1,2,4,8,16,32,64), TOKENS per request (32), PER
# (requests per client, 1), ROUND_STREAMS (64), THREADS (2), PARALLEL (8),
# CTX (total context; 4096), LLAMA_SERVER (path of llama-server; without it
# the llama runs are skipped with a note), TEMP (sampling temperature, 0:
# greedy; llama-server answers some sampled continuations of a random-weight
# model with a mid-stream error, "does not match the expected Content-only
# format", which load.js counts as a failure), LIMIT_S (the most seconds one
# level or round of one server may take, 60: requests still running then
# are cut and counted as "cut", not as failures), TOTAL_S (the whole run's
# bound for the load itself, 540: the models share it, each taking at most
# what is left divided by the models left; levels without time left are
# skipped with a note; server start-up and stop come on top, seconds each).
#
# The quiet-machine run: the 1.1B shape (TinyLlama-1.1B, Q4_0; `strix synth`
# then `strix convert --type Q4_0`, see BENCHMARKS.md) and the bundled
# model, both servers:
#   LLAMA_SERVER=/path/to/llama-server scripts/bench_server.sh \
#       tl1b-q4_0.gguf,models/stories260K.gguf strix llama
# On an idle 2-core machine the 1.1B part takes about 3-4 minutes (about
# 4,100 tokens of sweep and 6,100 of rounds per server, strix at 200+
# tokens/s batched, llama-server at about 100) and the bundled model well
# under a minute, inside the 9-minute TOTAL_S.
set -e
cd "$(dirname "$0")/.."
models=$1
[ -n "$models" ] || { echo "usage: $0 MODEL.gguf[,MODEL.gguf...] [strix|llama]..." >&2; exit 1; }
shift
servers=${*:-strix}
streams=${STREAMS:-1,2,4,8,16,32,64}
tokens=${TOKENS:-32}
per=${PER:-1}
round=${ROUND_STREAMS:-64}
threads=${THREADS:-2}
parallel=${PARALLEL:-8}
ctx=${CTX:-4096}
limit=${LIMIT_S:-60}
total=${TOTAL_S:-540}
temp=${TEMP:-0}
llama=${LLAMA_SERVER:-llama-server}
base=$(( ($$ % 1000) * 4 + 20000 ))
for m in $(echo "$models" | tr ',' ' '); do
    [ -f "$m" ] || { echo "$m: no such model file" >&2; exit 1; }
done
if ! build/strix serve --help >/dev/null 2>&1; then
    echo "build/strix has no server: make (with libmicrohttpd and cJSON, scripts/deps.sh)" >&2
    exit 1
fi
out=$(mktemp)
logs=""
pids=""
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    rm -f "$out" $logs
}
trap cleanup EXIT
t_all=$(date +%s)
deadline=$((t_all + total))

# load SERVER PORT MODEL STREAMS ROUND: one load.js level against one server,
# bounded by LIMIT_S and by the model's share of the time left
load() {
    now=$(date +%s)
    left=$((model_deadline - now))
    lim=$limit
    [ $left -lt $lim ] && lim=$left
    if [ $lim -lt 3 ]; then
        echo "# $1 $(basename "$3") streams $4: skipped (TOTAL_S spent)"
        return 0
    fi
    extra="\"server\":\"$1\",\"model\":\"$(basename "$3")\","
    [ -n "$5" ] && extra="$extra\"round\":$5,"
    timeout $((lim + 30)) node tests/server/load.js "http://127.0.0.1:$2" bench "$4" "$tokens" \
        "$per" "$lim" "$temp" | sed "s/^{/{$extra/" | tee -a "$out" || echo "# $1 streams $4: cut"
}

n_models=$(echo "$models" | tr ',' '\n' | grep -c .)
for model in $(echo "$models" | tr ',' ' '); do
    now=$(date +%s)
    model_deadline=$((now + (deadline - now) / n_models))
    n_models=$((n_models - 1))
    up_servers=""
    port=$base
    for server in $servers; do
        port=$((port + 1))
        log=$(mktemp)
        logs="$logs $log"
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
                continue
            fi
            "$llama" -m "$model" --port $port -t "$threads" --parallel "$parallel" -cb -c "$ctx" \
                --alias bench --no-webui >"$log" 2>&1 &
            ;;
        *) echo "unknown server $server" >&2; exit 1 ;;
        esac
        pid=$!
        pids="$pids $pid"
        up=0
        for _ in $(seq 1 600); do
            if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then up=1; break; fi
            kill -0 $pid 2>/dev/null || break
            sleep 0.2
        done
        if [ $up -eq 0 ]; then
            echo "# $server $(basename "$model"): the server did not start:"
            tail -n 5 "$log"
            kill -TERM $pid 2>/dev/null || true
            wait $pid 2>/dev/null || true
            continue
        fi
        up_servers="$up_servers $server:$port:$pid"
    done
    echo "# $(basename "$model"): threads $threads parallel $parallel tokens $tokens;$up_servers; $(uptime)"
    for c in $(echo "$streams" | tr ',' ' '); do
        for s in $up_servers; do
            load "${s%%:*}" "$(echo "$s" | cut -d: -f2)" "$model" "$c" ""
        done
    done
    for r in 1 2 3; do
        for s in $up_servers; do
            load "${s%%:*}" "$(echo "$s" | cut -d: -f2)" "$model" "$round" "$r"
            pid=${s##*:}
            echo "{\"server\":\"${s%%:*}\",\"model\":\"$(basename "$model")\",\"round\":$r,\"rss_kb\":$(awk '/VmRSS/ {print $2}' /proc/$pid/status)}" |
                tee -a "$out"
        done
    done
    for s in $up_servers; do
        pid=${s##*:}
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
done

# the tables (Markdown)
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")
  .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
for (const m of [...new Set(lines.map((l) => l.model))]) {
  const lm = lines.filter((l) => l.model === m);
  const servers = [...new Set(lm.map((l) => l.server))];
  for (const s of servers) {
    console.log(`\n${m}, ${s}:\n\n| streams | tokens/s | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | failed | cut | short |`);
    console.log("|---:|---:|---:|---:|---:|---:|---:|");
    for (const l of lm.filter((x) => x.server === s && x.streams && !x.round))
      console.log(`| ${l.streams} | ${l.tok_s} | ${l.ttft_p50} / ${l.ttft_p99} | ${l.itl_p50} / ${l.itl_p99} | ${l.failed} | ${l.cut} | ${l.short} |`);
    const rounds = lm.filter((x) => x.server === s && x.round);
    const tps = rounds.filter((x) => x.tok_s !== undefined).map((x) => x.tok_s);
    const rss = rounds.filter((x) => x.rss_kb !== undefined).map((x) => (x.rss_kb / 1024).toFixed(1));
    const sum = (k) => rounds.reduce((a, x) => a + (x[k] || 0), 0);
    console.log(`\nrounds: tokens/s ${tps.join(", ")}; resident MB after each ${rss.join(", ")}; ` +
      `failed ${sum("failed")}, cut ${sum("cut")}, short ${sum("short")}`);
  }
  if (servers.includes("strix") && servers.includes("llama")) {
    console.log(`\n${m}, strix / llama-server aggregate tokens/s:\n\n| streams | strix | llama-server | ratio |`);
    console.log("|---:|---:|---:|---:|");
    const at = (s, c) => lm.find((x) => x.server === s && x.streams === c && !x.round);
    for (const l of lm.filter((x) => x.server === "strix" && x.streams && !x.round)) {
      const o = at("llama", l.streams);
      if (o) console.log(`| ${l.streams} | ${l.tok_s} | ${o.tok_s} | ${(l.tok_s / o.tok_s).toFixed(2)} |`);
    }
  }
  const one = lm.find((x) => x.server === "strix" && x.streams === 1 && !x.round);
  const eight = lm.find((x) => x.server === "strix" && x.streams === 8 && !x.round);
  if (one && eight) console.log(`\n${m}: strix 8 streams / 1 stream: ${(eight.tok_s / one.tok_s).toFixed(2)}x`);
}' "$out"
echo "# total $(( $(date +%s) - t_all )) s"
