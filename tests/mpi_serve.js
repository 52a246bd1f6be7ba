// mpi_serve.js - the HTTP side of tests/mpi.sh's check of `strix-mpi serve`
// (a server whose model is split over MPI ranks): greedy completions, sent
// several at once, must equal what one process prints (`strix run --temp 0`,
// run here for each prompt), with a shared system prompt (prefix caching:
// some requests must report cached tokens), a request with n = 2 (its
// prompt shared between two sequences), a streamed request cancelled
// mid-way (its text so far a prefix of the reference, and counted as
// cancelled), then a request reusing a cached prompt; /health answers.
// Prints one "ok" or "FAIL ..." line per check.
//   node tests/mpi_serve.js PORT STRIX_BINARY MODEL
// (plain Node: fetch and child_process, no packages; tests/sse_client.js)
'use strict';
const { execFileSync } = require('child_process');
const { postCompletion, events } = require('./sse_client.js');

const [port, strix, model] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
let failed = 0;
function check(cond, what) {
  if (cond) {
    console.log('ok');
  } else {
    failed++;
    console.log(`FAIL ${what}`);
  }
}

const refs = new Map();
function reference(prompt, n) {
  const key = `${n}\u0000${prompt}`;
  if (!refs.has(key)) {
    const out = execFileSync(strix, ['run', '-m', model, '-p', prompt, '-n', String(n),
                                     '--temp', '0', '-t', '1'],
                             { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    refs.set(key, out.slice(prompt.length, out.endsWith('\n') ? -1 : undefined));
  }
  return refs.get(key);
}

async function complete(prompt, n, extra = {}) {
  const r = await postCompletion(base, { prompt, max_tokens: n, temperature: 0, ...extra });
  return { status: r.status, body: await r.json() };
}

// Streams a completion and stops reading after `after` chunks with text.
async function cancelled(prompt, n, after) {
  const ac = new AbortController();
  const r = await postCompletion(base, { prompt, max_tokens: n, temperature: 0, stream: true },
                                 ac.signal);
  let text = '', got = 0;
  try {
    for await (const ev of events(r)) {
      const t = ev.choices[0]?.text || '';
      text += t;
      got += t.length > 0;
      if (got >= after)
        break;
    }
    ac.abort();
  } catch (e) {
    if (e.name !== 'AbortError')
      throw e;
  }
  return { text, got };
}

async function metric(name) {
  const t = await (await fetch(`${base}/metrics`)).text();
  const m = t.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

(async () => {
  const health = await fetch(`${base}/health`);
  check(health.status === 200 && (await health.json()).status === 'ok', '/health');

  const sys = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';
  // the system prompt first, so the next requests find it in a slot
  const a = await complete(sys + ' One day', 16);
  check(a.status === 200 && a.body.choices[0].text === reference(sys + ' One day', 16),
        `first request: ${JSON.stringify(a.body).slice(0, 300)}`);

  // several at once: mixed lengths, two choices of one prompt, a cancel
  const jobs = [
    [sys + ' She saw a big', 40],
    [sys + ' Her mom said', 8],
    ['The cat sat on the mat.', 24],
    [sys + ' Lily had a', 30],
  ];
  const [stream, two, ...rs] = await Promise.all([
    cancelled(sys + ' The sun', 400, 3),
    complete(sys + ' One day', 12, { n: 2 }),
    ...jobs.map(([p, n]) => complete(p, n)),
  ]);
  let cached = 0;
  rs.forEach((r, i) => {
    const want = reference(jobs[i][0], jobs[i][1]);
    check(r.status === 200 && r.body.choices[0].text === want,
          `concurrent request ${i}: got ${JSON.stringify(r.body).slice(0, 300)}, ` +
          `want ${JSON.stringify(want)}`);
    cached += r.body.usage?.prompt_tokens_details?.cached_tokens || 0;
  });
  const want2 = reference(sys + ' One day', 12);
  check(two.status === 200 && two.body.choices.length === 2 &&
        two.body.choices.every((c) => c.text === want2),
        `n = 2: ${JSON.stringify(two.body).slice(0, 400)}`);
  check(cached > 0, `no prompt tokens came from the cache (${cached})`);
  check(stream.got >= 3 && stream.text.length > 0 &&
        reference(sys + ' The sun', 400).startsWith(stream.text),
        `the cancelled stream's text ${JSON.stringify(stream.text)} is not a prefix of the ` +
        'reference');
  // the server notices the client has gone within a few steps
  let n_cancel = 0;
  for (let i = 0; i < 100 && !(n_cancel >= 1); i++) {
    n_cancel = await metric('strix_requests_cancelled_total');
    if (!(n_cancel >= 1))
      await new Promise((r) => setTimeout(r, 50));
  }
  check(n_cancel >= 1, `strix_requests_cancelled_total ${n_cancel}`);

  // a cached prompt again, after the cancellation freed its slot
  const h = await complete(sys + ' She saw a big', 20);
  check(h.status === 200 && h.body.choices[0].text === reference(sys + ' She saw a big', 20) &&
        h.body.usage.prompt_tokens_details.cached_tokens > 0,
        `repeated prompt: ${JSON.stringify(h.body).slice(0, 300)}`);
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
