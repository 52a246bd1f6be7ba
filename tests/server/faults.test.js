// Clients that misbehave: they leave mid-stream, stall half-way through a
// request, send huge, invalid or absurd bodies, or too many at once. The
// server answers each with an error (or drops it), keeps serving everyone
// else, frees what they held, and its memory comes back to where it was.
// Also: --api-key, and the drain on SIGTERM (a second server).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { URL, MODEL, ROOT, client, OpenAI, raw, post, status, bodyJson, rssKb, metrics, idle } =
  require('./common.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const LONG = { model: MODEL, prompt: 'Once upon a time', max_tokens: 400, temperature: 0,
  ignore_eos: true, stop_at_bos: false };

// A request that must still work while a fault is going on.
async function stillServes() {
  const r = await client.completions.create({ model: MODEL, prompt: 'The cat', max_tokens: 8,
    temperature: 0 });
  assert.equal(r.usage.completion_tokens, 8);
}

let rss0;
test('warm-up: the memory baseline', async () => {
  // one of each kind of request, so allocator pools exist before we measure
  await Promise.all([0, 1, 2, 3].map(() => client.completions.create({ ...LONG, max_tokens: 60 })));
  await idle();
  rss0 = rssKb();
});

test('a client that leaves mid-stream stops its generation and frees its slot', async () => {
  const before = (await metrics()).get('strix_completion_tokens_total');
  const cancelled0 = (await metrics()).get('strix_requests_cancelled_total');
  const ac = new AbortController();
  const stream = await client.completions.create({ ...LONG, stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    // (break: chunks that arrived in the same read as the third would
    // still be handed out after the abort)
    for await (const _ of stream) {
      if (++n === 3) {
        ac.abort();
        break;
      }
    }
  } catch (e) { /* the abort */ }
  assert.equal(n, 3);
  const m = await idle(10000);
  assert.equal(m.get('strix_requests_cancelled_total'), cancelled0 + 1);
  // 400 were asked for; a slow (sanitized, loaded) server may have made a
  // few dozen before it saw the client leave
  const made = m.get('strix_completion_tokens_total') - before;
  assert.ok(made < 250, `the generation went on after the client left: ${made} tokens`);
  // a non-streaming request whose client closes at once is dropped too
  const u = new global.URL(URL);
  const s = require('node:net').connect(Number(u.port), u.hostname);
  const body = JSON.stringify(LONG);
  s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  // once it runs (a loaded machine may take a while to read it), leave
  for (let t0 = Date.now(); Date.now() - t0 < 10000;) {
    if ((await metrics()).get('strix_requests_active') >= 1) break;
    await sleep(20);
  }
  s.destroy();
  const m2 = await idle(10000);
  assert.equal(m2.get('strix_requests_cancelled_total'), cancelled0 + 2);
  // sixteen streams leave together
  const acs = [];
  await Promise.all(Array.from({ length: 16 }, async () => {
    const a = new AbortController();
    acs.push(a);
    try {
      const st = await client.completions.create({ ...LONG, stream: true }, { signal: a.signal });
      let k = 0;
      for await (const _ of st) if (++k === 2) a.abort();
    } catch (e) { /* aborted */ }
  }));
  await idle(5000);
  await stillServes();
});

test('a 100 MB body is refused with 413 without being read', async () => {
  const r = await raw('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n' +
    '{"prompt": "' + 'x'.repeat(65536));
  assert.equal(status(r), 413);
  assert.equal(bodyJson(r).error.code, 'request_too_large');
  // and a chunked body that grows past the limit (no length given up front)
  const u = new global.URL(URL);
  const res = await new Promise((resolve) => {
    const s = require('node:net').connect(Number(u.port), u.hostname);
    const out = [];
    s.on('data', (d) => out.push(d));
    s.on('close', () => resolve(Buffer.concat(out).toString('latin1')));
    s.on('error', () => resolve(Buffer.concat(out).toString('latin1')));
    s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n' +
      'Connection: close\r\n\r\n');
    const chunk = 'x'.repeat(65536);
    for (let i = 0; i < 40; i++) s.write(chunk.length.toString(16) + '\r\n' + chunk + '\r\n');
    s.write('0\r\n\r\n');
  });
  assert.match(res, /^HTTP\/1\.1 413/);
  await stillServes();
});

test('invalid UTF-8, deep nesting and absurd fields get 400', async () => {
  const bad = Buffer.concat([Buffer.from('{"prompt": "a'), Buffer.from([0xff, 0xc3, 0x28]),
    Buffer.from('", "max_tokens": 3}')]);
  let r = await post('/v1/completions', bad);
  assert.equal(status(r), 400);
  assert.equal(bodyJson(r).error.code, 'invalid_utf8');
  r = await post('/tokenize', bad);
  assert.equal(status(r), 400);
  // a lone surrogate escape: parsed or refused, never a crash
  r = await post('/v1/completions', '{"prompt": "a\\udc80b", "max_tokens": 2}');
  assert.ok([200, 400].includes(status(r)));
  for (const body of ['['.repeat(200000), '{"prompt": ' + '['.repeat(5000) + ']'.repeat(5000) + '}',
    '{"messages": [' + '{"a":'.repeat(3000) + '1' + '}'.repeat(3000) + ']}']) {
    r = await post('/v1/chat/completions', body);
    assert.equal(status(r), 400);
  }
  const stops = Array.from({ length: 10000 }, (_, i) => 'stop' + i);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', stop: stops }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'stop');
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x',
    logit_bias: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [i % 512, 1])),
    max_tokens: 'many' }), OpenAI.BadRequestError);
  await stillServes();
});

test('a prompt that fills the context exactly is refused; one token less gets one token', async () => {
  const nctx = (await (await fetch(URL + '/v1/models')).json()).data[0].meta.n_ctx;
  const ids = Array.from({ length: nctx }, (_, i) => 300 + (i % 100));
  await assert.rejects(client.completions.create({ model: MODEL, prompt: ids, max_tokens: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
  const r = await client.completions.create({ model: MODEL, prompt: ids.slice(1), max_tokens: 5,
    temperature: 0, ignore_eos: true, stop_at_bos: false });
  assert.equal(r.usage.prompt_tokens, nctx - 1);
  assert.equal(r.usage.completion_tokens, 1);
  assert.equal(r.choices[0].finish_reason, 'length');
  await stillServes();
});

test('a full queue answers 503; every other request completes', async () => {
  const results = await Promise.all(Array.from({ length: 40 }, () =>
    client.completions.create({ ...LONG, max_tokens: 30 }).then(() => 200,
      (e) => (e instanceof OpenAI.APIError ? e.status : -1))));
  const counts = {};
  for (const s of results) counts[s] = (counts[s] || 0) + 1;
  assert.deepEqual(Object.keys(counts).sort(), ['200', '503'], JSON.stringify(counts));
  await idle();
  await stillServes();
});

test('memory returns to the baseline', async () => {
  await idle();
  const grown = rssKb() - rss0;
  // sanitizer builds keep freed memory in quarantine for a while
  const slack = process.env.STRIX_SANITIZED ? 96 * 1024 : 8 * 1024;
  assert.ok(grown < slack, `resident memory grew by ${grown} kB`);
});

// A second server of our own, to test --api-key and the drain on SIGTERM.
function startServer(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.env.STRIX_BIN, ['serve', '-m', path.join(ROOT, 'models/stories260K.gguf'),
      '--port', '0', '-t', '1', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    p.stderr.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) resolve({ p, url: m[1], log: () => log });
    });
    p.on('exit', (code) => reject(new Error('server exited ' + code + ': ' + log)));
  });
}

test('--api-key is checked; SIGTERM drains the requests in flight', async () => {
  const s = await startServer(['--api-key', 'sekret', '--alias', 'm']);
  const bad = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
  assert.equal((await fetch(s.url + '/health')).status, 200);
  const good = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'sekret', maxRetries: 0 });
  assert.equal((await good.models.list()).data[0].id, 'm');
  // a long stream is running when SIGTERM comes: it still ends with [DONE]
  const stream = await good.completions.create({ model: 'm', prompt: 'Once upon a time',
    max_tokens: 150, temperature: 0, ignore_eos: true, stop_at_bos: false, stream: true });
  s.p.removeAllListeners('exit');
  const exited = new Promise((resolve) => s.p.on('exit', (code, sig) => resolve([code, sig])));
  let n = 0, finish = null;
  for await (const c of stream) {
    if (++n === 5) s.p.kill('SIGTERM');
    finish = c.choices[0]?.finish_reason || finish;
  }
  assert.equal(finish, 'length');
  assert.deepEqual(await exited, [0, null]);
  assert.match(s.log(), /stopped\n/);
});

test('slowloris: a half-sent request is dropped after the timeout; others are served', async () => {
  const s = await startServer(['--timeout', '2']);
  try {
    const u = new global.URL(s.url);
    const rawTo = (data) => new Promise((resolve) => {
      const sock = require('node:net').connect(Number(u.port), u.hostname);
      const t0 = Date.now();
      sock.on('close', () => resolve(Date.now() - t0));
      sock.on('error', () => {});
      sock.setTimeout(20000, () => sock.destroy());
      sock.write(data);
    });
    const half = rawTo('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"pro');
    const headers = rawTo('GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await sleep(200);
    const r = await fetch(s.url + '/v1/completions', { method: 'POST', headers: { Connection: 'close' },
      body: JSON.stringify({ prompt: 'The cat', max_tokens: 8, temperature: 0 }) });
    assert.equal((await r.json()).usage.completion_tokens, 8);
    const [a, b] = await Promise.all([half, headers]);
    assert.ok(a < 15000 && b < 15000, `closed after ${a} and ${b} ms`);
  } finally {
    s.p.kill('SIGTERM');
  }
});
