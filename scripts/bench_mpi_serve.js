// bench_mpi_serve.js - the client of scripts/bench_mpi.sh's serving figures:
// against a running `strix serve` (or `strix-mpi serve`), one streamed
// request alone (time to first token, then decode speed), then C requests at
// once (aggregate tokens per second over the wall time). Greedy, fixed
// prompts; the token counts come from the server's usage.
//   node scripts/bench_mpi_serve.js PORT N_GEN CONCURRENT
// Prints one line: ttft_ms decode_tps concurrent_tps tokens_concurrent
'use strict';
const { postCompletion, events } = require('../tests/sse_client.js');

const [port, nGen, conc] = process.argv.slice(2).map(Number);
const base = `http://127.0.0.1:${port}`;
const prompt = 'Once upon a time, there was a little girl who lived in a village near the forest.';

async function streamed(p, n) {
  const t0 = performance.now();
  const r = await postCompletion(base, { prompt: p, max_tokens: n, temperature: 0, stream: true,
                                         stream_options: { include_usage: true } });
  let first = 0, last = 0, tokens = 0;
  for await (const j of events(r)) {
    if (j.usage)
      tokens = j.usage.completion_tokens;
    if (j.choices && j.choices.length && j.choices[0].text) {
      const t = performance.now();
      if (!first)
        first = t;
      last = t;
    }
  }
  return { ttft: first - t0, decode: tokens > 1 ? (tokens - 1) / ((last - first) / 1000) : 0 };
}

async function complete(p, n) {
  const r = await postCompletion(base, { prompt: p, max_tokens: n, temperature: 0 });
  return (await r.json()).usage.completion_tokens;
}

(async () => {
  await complete('Warm up.', 2);
  const one = await streamed(prompt, nGen);
  const t0 = performance.now();
  const counts = await Promise.all(
    Array.from({ length: conc }, (_, k) => complete(`${k + 1}. ${prompt}`, nGen)));
  const wall = (performance.now() - t0) / 1000;
  const total = counts.reduce((a, b) => a + b, 0);
  console.log(`${one.ttft.toFixed(1)} ${one.decode.toFixed(2)} ${(total / wall).toFixed(2)} ${total}`);
})().catch((e) => {
  console.error(`bench_mpi_serve.js: ${e.stack || e}`);
  process.exit(1);
});
