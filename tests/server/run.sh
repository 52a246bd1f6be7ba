#!/bin/sh
# The server's tests: starts `strix serve` on the bundled model (a free
# port), runs the Node tests in tests/server/*.test.js against it (OpenAI's
# own client, raw sockets for the faults, headless Chromium for the chat
# page), then stops it with SIGTERM and checks that it drained and exited
# cleanly (under ASan that includes no leaks).
#   tests/server/run.sh [STRIX_BINARY] [TEST_FILE...]
# STRIX_BINARY defaults to build/strix. The npm packages (tests/server/
# package.json) are installed once under build/serve-node/. Skips with a
# message when the binary has no server or Node.js is missing.
set -e
cd "$(dirname "$0")/../.."
bin=${1:-build/strix}
[ $# -gt 0 ] && shift
files=${*:-$(ls tests/server/*.test.js)}
if ! "$bin" serve --help >/dev/null 2>&1; then
    echo "server tests: skipped ($bin was built without server support)"
    exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "server tests: skipped (Node.js and npm are needed: scripts/deps.sh)"
    exit 0
fi
mods=build/serve-node
if ! cmp -s tests/server/package.json "$mods/package.json" || [ ! -d "$mods/node_modules/openai" ]; then
    mkdir -p "$mods"
    cp tests/server/package.json "$mods/package.json"
    (cd "$mods" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
log=$(mktemp "${TMPDIR:-/tmp}/strix-serve.XXXXXX")
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
# small limits so the fault tests reach them quickly (the slowloris test
# starts its own server with a short idle timeout)
# (--step-delay-ms: each decode step made 3 ms longer, so that the tests
# that stop a generation catch the small model before it has finished)
"$bin" serve -m models/stories260K.gguf --port 0 --parallel 4 -t 2 --queue 16 \
    --max-body 1048576 --alias stories --step-delay-ms "${STEP_DELAY_MS:-3}" 2>"$log" &
pid=$!
port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$log")
    [ -n "$port" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    cat "$log"
    echo "server tests: the server did not start"
    exit 1
fi
rc=0
STRIX_URL="http://127.0.0.1:$port" STRIX_PID=$pid STRIX_BIN="$bin" NODE_PATH="$PWD/$mods/node_modules" \
    node --test --test-concurrency=1 $files || rc=1
kill -TERM $pid
src=0
wait $pid || src=$?
if [ $src -ne 0 ] || ! grep -q "strix serve: stopped$" "$log"; then
    echo "server tests: the server did not stop cleanly (exit status $src):"
    tail -n 40 "$log"
    rc=1
fi
[ $rc -eq 0 ] && echo "server tests: passed ($bin)"
exit $rc
