// Load client for scripts/bench_server.sh (not a test): C concurrent
// streaming clients against an OpenAI-compatible server, each sending R
// completion requests one after the other. Prints one JSON line per level:
// requests, failures (network errors, non-200 status), time to first token
// and inter-token latency (p50, p99, ms), completion tokens and aggregate
// tokens/s over the level's wall time, and "short": responses that ended
// before MAX_TOKENS (every request sends ignore_eos, which llama-server
// accepts too, so both servers generate the same number of tokens; a
// non-zero "short" says one did not). LIMIT_S bounds each level: requests
// still running then are aborted and counted as "cut" (not as failures),
// so a slow machine gives a partial line rather than a run without end.
// An error event inside a stream (llama-server sends one when its output
// parser rejects a random model's sampled text) counts as a failure.
//   node load.js URL MODEL STREAMS[,STREAMS...] MAX_TOKENS REQUESTS_PER_CLIENT [LIMIT_S [TEMP]]
'use strict';
const [url, model, levels, maxTokens, perClient, limitS, temp] = process.argv.slice(2);

const prompts = ['Once upon a time', 'The little dog', 'One day, Lily', 'Tom and Sam went',
  'There was a big tree', 'The sun was hot', 'A bird sat on', 'Mom said'];

function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function one(i, stats, signal) {
  if (signal.aborted) {
    stats.cut++;
    return;
  }
  const t0 = performance.now();
  let first = 0, last = 0, tokens = 0, usage = null;
  try {
    const r = await fetch(url + '/v1/completions', { method: 'POST', signal,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, prompt: prompts[i % prompts.length], max_tokens: Number(maxTokens),
        temperature: temp === undefined ? 0.8 : Number(temp), seed: i, ignore_eos: true, stop_at_bos: false, stream: true,
        stream_options: { include_usage: true } }) });
    if (r.status !== 200) {
      stats.fail++;
      stats.status[r.status] = (stats.status[r.status] || 0) + 1;
      await r.text();
      return;
    }
    const dec = new TextDecoder();
    let buf = '';
    for await (const part of r.body) {
      buf += dec.decode(part, { stream: true });
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, k).trim();
        buf = buf.slice(k + 2);
        if (!line.startsWith('data:') || line.includes('[DONE]')) continue;
        const c = JSON.parse(line.slice(5));
        if (c.error) throw new Error('error event: ' + String(c.error.message).slice(0, 80));
        if (c.usage) usage = c.usage;
        if (c.choices && c.choices.length && (c.choices[0].text || c.content)) {
          const t = performance.now();
          if (!first) first = t;
          else stats.itl.push(t - last);
          last = t;
          tokens++;
        }
      }
    }
    stats.ttft.push(first - t0);
    const n = usage && usage.completion_tokens ? usage.completion_tokens : tokens;
    stats.tokens += n;
    if (n < Number(maxTokens)) stats.short++;
    stats.ok++;
  } catch (e) {
    if (signal.aborted) {
      stats.cut++;
      stats.tokens += tokens;
      return;
    }
    stats.fail++;
    stats.errors[e.message] = (stats.errors[e.message] || 0) + 1;
  }
}

(async () => {
  for (const c of levels.split(',').map(Number)) {
    const stats = { ok: 0, fail: 0, cut: 0, short: 0, status: {}, errors: {}, ttft: [], itl: [], tokens: 0 };
    const t0 = performance.now();
    const ac = new AbortController();
    const timer = Number(limitS) > 0 ? setTimeout(() => ac.abort(), Number(limitS) * 1000) : null;
    await Promise.all(Array.from({ length: c }, async (_, w) => {
      for (let k = 0; k < Number(perClient); k++) await one(w * 1000 + k, stats, ac.signal);
    }));
    if (timer) clearTimeout(timer);
    const secs = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ streams: c, requests: stats.ok + stats.fail + stats.cut,
      failed: stats.fail, cut: stats.cut, short: stats.short,
      status: stats.status, errors: stats.errors, tokens: stats.tokens, seconds: +secs.toFixed(2),
      tok_s: +(stats.tokens / secs).toFixed(1),
      ttft_p50: +pct(stats.ttft, 0.5).toFixed(1), ttft_p99: +pct(stats.ttft, 0.99).toFixed(1),
      itl_p50: +pct(stats.itl, 0.5).toFixed(1), itl_p99: +pct(stats.itl, 0.99).toFixed(1) }));
  }
})();
