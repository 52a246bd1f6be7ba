// Completions features beyond one prompt, through OpenAI's own client:
// several prompts per request, echo (with the prompt's logprobs), best_of,
// response_format json_object; and concurrent mixed requests, each of whose
// answers must equal the one it gets alone. Checked against `strix run`'s
// greedy text, llama.cpp's logits, OpenAI's documented rules (choice index
// prompt * n + k; best_of returns the candidates with the best mean token
// log-probability) and JSON.parse.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { URL, MODEL, ROOT, client, OpenAI, strixRun, metrics } = require('./common.js');

const PROMPT = 'Once upon a time';

async function tokenize(text) {
  const r = await fetch(URL + '/tokenize', { method: 'POST', body: JSON.stringify({ content: text,
    add_special: true }) });
  return (await r.json()).tokens;
}

test('several prompts: choices indexed prompt * n + k, each prompt answered as if alone', async () => {
  const texts = [PROMPT, 'The cat', 'Lily and Ben'];
  const ids = await tokenize('One day');
  assert.equal(ids[0], 1, 'the ids start with BOS');
  const r = await client.completions.create({ model: MODEL, prompt: texts, max_tokens: 20,
    temperature: 0, n: 2 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3, 4, 5]);
  for (let p = 0; p < texts.length; p++) {
    const want = strixRun(texts[p], 20);
    assert.equal(r.choices[2 * p].text, want, `prompt ${p}`);
    assert.equal(r.choices[2 * p + 1].text, want, `prompt ${p}, second choice`);
  }
  assert.equal(r.usage.completion_tokens, 6 * 20);
  // prompts as token-id arrays
  const t = await client.completions.create({ model: MODEL, prompt: [ids, ids.slice(0, 2)],
    max_tokens: 15, temperature: 0 });
  assert.equal(t.choices[0].text, strixRun('One day', 15));
  assert.equal(t.choices.length, 2);
  assert.equal(t.usage.prompt_tokens, ids.length + 2);
  // sampled with a seed: prompt p's choice k is drawn as in a request with p alone
  const req = { model: MODEL, max_tokens: 24, temperature: 1, seed: 77, n: 2 };
  const many = await client.completions.create({ ...req, prompt: texts });
  for (let p = 0; p < texts.length; p++) {
    const one = await client.completions.create({ ...req, prompt: texts[p] });
    assert.deepEqual(many.choices.slice(2 * p, 2 * p + 2).map((c) => c.text),
      one.choices.map((c) => c.text));
  }
  // streamed: the chunks of each index spell the same texts
  const got = {};
  for await (const ch of await client.completions.create({ ...req, prompt: texts, stream: true })) {
    for (const c of ch.choices) got[c.index] = (got[c.index] || '') + c.text;
  }
  assert.deepEqual(Object.keys(got).map(Number).sort(), [0, 1, 2, 3, 4, 5]);
  for (let i = 0; i < 6; i++) assert.equal(got[i], many.choices[i].text);
  // more prompts than the server has slots: they take turns
  const eight = Array.from({ length: 8 }, (_, i) => texts[i % 3]);
  const e = await client.completions.create({ model: MODEL, prompt: eight, max_tokens: 5,
    temperature: 0 });
  assert.equal(e.choices.length, 8);
  for (let i = 0; i < 8; i++) assert.equal(e.choices[i].text, strixRun(texts[i % 3], 5));
  // malformed prompt arrays are 400s
  for (const prompt of [[], ['a', [1, 2]], [[1, 2], 'a'], [[]], [[1, -2]], [['a']]]) {
    await assert.rejects(client.completions.create({ model: MODEL, prompt, max_tokens: 2 }),
      (err) => err instanceof OpenAI.BadRequestError && err.param === 'prompt', JSON.stringify(prompt));
  }
});

// llama.cpp's logits for the same model and token ids (tests/data/README.md)
function llamacppRows() {
  const ids = fs.readFileSync(path.join(ROOT, 'tests/data/llamacpp-stories260K.ids'), 'utf8')
    .trim().split(/\s+/).map(Number);
  const buf = fs.readFileSync(path.join(ROOT, 'tests/data/llamacpp-stories260K.logits'));
  const nv = buf.length / 4 / ids.length;
  const lp = (pos) => {
    const row = [];
    for (let i = 0; i < nv; i++) row.push(buf.readFloatLE(4 * (pos * nv + i)));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    return row.map((x) => x - lse);
  };
  return { ids, lp };
}

test('echo: the prompt before the text; its tokens\' logprobs match llama.cpp, the first null', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 20,
    temperature: 0, echo: true });
  assert.equal(r.choices[0].text, PROMPT + strixRun(PROMPT, 20));
  const { ids, lp } = llamacppRows();
  const k = 12;
  const s = await client.completions.create({ model: MODEL, prompt: ids.slice(0, k),
    max_tokens: 0, echo: true, logprobs: 2 });
  const l = s.choices[0].logprobs;
  assert.equal(l.tokens.length, k);
  assert.equal(l.token_logprobs[0], null);
  assert.equal(l.top_logprobs[0], null);
  for (let p = 1; p < k; p++) {
    const want = lp(p - 1);
    assert.ok(Math.abs(l.token_logprobs[p] - want[ids[p]]) < 1e-3, `token ${p}`);
    const top = Object.values(l.top_logprobs[p]).sort((a, b) => b - a);
    const best = [...want].sort((a, b) => b - a).slice(0, 2);
    assert.equal(top.length, 2);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(top[i] - best[i]) < 1e-3);
  }
  assert.equal(l.tokens.join(''), s.choices[0].text);
  // with generated tokens too: the offsets run on through the generated text
  const g = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 6,
    temperature: 0, echo: true, logprobs: 0 });
  const gl = g.choices[0].logprobs;
  assert.equal(gl.tokens.join(''), g.choices[0].text);
  for (let i = 0; i < gl.tokens.length; i++) {
    assert.equal(gl.text_offset[i], gl.tokens.slice(0, i).join('').length);
  }
  // streamed: the echo comes first, then the same text
  let text = '';
  for await (const ch of await client.completions.create({ model: MODEL, prompt: PROMPT,
    max_tokens: 20, temperature: 0, echo: true, stream: true })) text += ch.choices[0].text;
  assert.equal(text, r.choices[0].text);
});

test('best_of: the n candidates with the best mean logprob; usage counts every candidate', async () => {
  const req = { model: MODEL, prompt: PROMPT, max_tokens: 10, temperature: 1, seed: 8,
    top_k: 0, top_p: 1, min_p: 0 };
  // the candidates are the choices of n = best_of with the same seed
  const all = await client.completions.create({ ...req, n: 4, logprobs: 0 });
  const mean = (c) => c.logprobs.token_logprobs.reduce((a, b) => a + b, 0) /
    c.logprobs.token_logprobs.length;
  for (const c of all.choices) assert.equal(c.finish_reason, 'length');
  const ranked = [...all.choices].sort((a, b) => mean(b) - mean(a));
  assert.ok(mean(ranked[0]) > mean(ranked[1]) && mean(ranked[1]) > mean(ranked[2]));
  const one = await client.completions.create({ ...req, best_of: 4 });
  assert.equal(one.choices.length, 1);
  assert.equal(one.choices[0].text, ranked[0].text);
  assert.equal(one.usage.completion_tokens, 40);
  const two = await client.completions.create({ ...req, best_of: 4, n: 2 });
  assert.deepEqual(two.choices.map((c) => [c.index, c.text]), [[0, ranked[0].text],
    [1, ranked[1].text]]);
  // with several prompts: per prompt
  const pp = await client.completions.create({ ...req, prompt: ['The cat', PROMPT], best_of: 4 });
  assert.equal(pp.choices[1].text, ranked[0].text);
  assert.equal(pp.choices[1].index, 1);
  // OpenAI's rules: best_of >= n, not with stream; not beyond the server's sequences
  for (const bad of [{ best_of: 1, n: 2 }, { best_of: 3, stream: true }, { best_of: 5 }]) {
    await assert.rejects(client.completions.create({ ...req, ...bad }),
      (err) => err instanceof OpenAI.BadRequestError && err.param === 'best_of', JSON.stringify(bad));
  }
});

test('response_format json_object: every sampled answer parses as a JSON object', async () => {
  const outs = [];
  for (let k = 0; k < 24; k += 8) {
    // (8 at a time: the test server queues at most 16)
    outs.push(...await Promise.all(Array.from({ length: 8 }, (_, i) =>
      client.completions.create({ model: MODEL, prompt: (k + i) % 2 ? PROMPT : 'The cat',
        seed: k + i, max_tokens: 40 + k + i, temperature: 1, top_k: 0, top_p: 1, min_p: 0,
        response_format: { type: 'json_object' } }))));
  }
  let closed = 0;
  for (const r of outs) {
    const text = r.choices[0].text;
    let v;
    assert.doesNotThrow(() => { v = JSON.parse(text); }, `not JSON: ${text}`);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
    closed += r.choices[0].finish_reason === 'stop';
  }
  assert.equal(closed, outs.length, 'each object closed before the token budget');
  // chat, streamed: the deltas make one object too
  let text = '';
  for await (const ch of await client.chat.completions.create({ model: MODEL, max_tokens: 30,
    temperature: 1, seed: 3, stream: true, response_format: { type: 'json_object' },
    messages: [{ role: 'user', content: 'Lily' }] })) text += ch.choices[0]?.delta?.content ?? '';
  assert.equal(typeof JSON.parse(text), 'object');
  // a tiny budget still closes the object
  const tiny = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 3,
    temperature: 1, seed: 1, response_format: { type: 'json_object' } });
  assert.equal(typeof JSON.parse(tiny.choices[0].text), 'object');
  // schemas are refused with a clear error
  await assert.rejects(client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 3,
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }),
  (err) => err instanceof OpenAI.BadRequestError && err.param === 'response_format');
});

test('concurrent mixed requests (several prompts, streams, best_of, JSON) equal their answers alone', async () => {
  const base = { model: MODEL, max_tokens: 18, temperature: 1, seed: 11 };
  const reqs = [
    { ...base, prompt: [PROMPT, 'The dog', 'Tom had a'], n: 2 },
    { ...base, prompt: 'Lily and Ben', stream: true },
    { ...base, prompt: ['One day', 'The sun was'], best_of: 3 },
    { ...base, prompt: 'Sara liked', response_format: { type: 'json_object' }, max_tokens: 30 },
    { ...base, prompt: [PROMPT, 'A big truck'], stream: true, n: 2, echo: true },
    { ...base, prompt: 'The cat', temperature: 0, echo: true, logprobs: 1 },
  ];
  const run = async (r) => {
    if (!r.stream) {
      const x = await client.completions.create(r);
      return x.choices.map((c) => [c.index, c.text, c.logprobs && c.logprobs.token_logprobs]);
    }
    const got = {};
    for await (const ch of await client.completions.create(r)) {
      for (const c of ch.choices) got[c.index] = (got[c.index] || '') + c.text;
    }
    return Object.keys(got).sort().map((k) => [Number(k), got[k], null]);
  };
  const alone = [];
  for (const r of reqs) alone.push(await run(r));
  for (let round = 0; round < 2; round++) {
    const together = await Promise.all(reqs.map(run));
    assert.deepEqual(together, alone);
  }
});

test('skip_layers: per request, in a batch with plain requests, equals strix run --skip-layers', async () => {
  const N = 20;
  const plain = strixRun(PROMPT, N);
  const skip13 = strixRun(PROMPT, N, ['--skip-layers', '1,3']);
  const skip2 = strixRun(PROMPT, N, ['--skip-layers', '2']);
  assert.notEqual(skip13, plain, 'skipping changes the answer');
  assert.notEqual(skip2, plain);
  const req = { model: MODEL, prompt: PROMPT, max_tokens: N, temperature: 0 };
  // the plain prompt first, so that its prefix is cached: a skipping request
  // must not take it (its keys were made by every layer)
  assert.equal((await client.completions.create(req)).choices[0].text, plain);
  assert.equal((await client.completions.create({ ...req, skip_layers: [1, 3] })).choices[0].text,
    skip13);
  assert.equal((await client.completions.create(req)).choices[0].text, plain);
  // mixed in one batch, twice: plain, two masks, streamed, n = 2
  const streamed = async (extra) => {
    let t = '';
    for await (const ch of await client.completions.create({ ...req, ...extra, stream: true })) {
      t += ch.choices[0] ? ch.choices[0].text : '';
    }
    return t;
  };
  for (let round = 0; round < 2; round++) {
    const [a, b, c, d, e] = await Promise.all([
      client.completions.create(req),
      client.completions.create({ ...req, skip_layers: [3, 1, 1] }),
      streamed({ skip_layers: [2] }),
      client.completions.create({ ...req, n: 2, skip_layers: [1, 3] }),
      streamed({}),
    ]);
    assert.equal(a.choices[0].text, plain, `round ${round}: plain`);
    assert.equal(b.choices[0].text, skip13, `round ${round}: skip 1,3`);
    assert.equal(c, skip2, `round ${round}: skip 2, streamed`);
    assert.deepEqual(d.choices.map((x) => x.text), [skip13, skip13], `round ${round}: n = 2`);
    assert.equal(e, plain, `round ${round}: plain, streamed`);
  }
  // an empty list is no skipping
  assert.equal((await client.completions.create({ ...req, skip_layers: [] })).choices[0].text,
    plain);
  // bad lists are 400s naming the parameter
  for (const bad of ['1', [5], [-1], [1.5], ['1'], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0, 0]]) {
    await assert.rejects(client.completions.create({ ...req, skip_layers: bad }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, JSON.stringify(bad));
      assert.equal(err.param, 'skip_layers');
      return true;
    });
  }
});

test('speculative (prompt lookup): greedy equals greedy without, in a batch, streamed too', async () => {
  const P = 'The cat sat. The cat sat. The cat sat. The cat';
  const N = 40;
  const plain = strixRun(P, N);
  const skipped = strixRun(P, N, ['--skip-layers', '1,3']);
  const req = { model: MODEL, prompt: P, max_tokens: N, temperature: 0 };
  const spec = { ngram: 2, max: 6 };
  const m0 = await metrics();
  const one = await client.completions.create({ ...req, speculative: spec });
  assert.equal(one.choices[0].text, plain);
  const d = one.usage.completion_tokens_details;
  assert.ok(d.accepted_prediction_tokens > 0, 'the repeated text gives accepted drafts');
  assert.ok(d.rejected_prediction_tokens > 0);
  assert.equal(one.usage.completion_tokens, N);
  const m1 = await metrics();
  assert.equal(m1.get('strix_spec_accepted_total') - m0.get('strix_spec_accepted_total'),
    d.accepted_prediction_tokens);
  assert.equal(m1.get('strix_spec_drafted_total') - m0.get('strix_spec_drafted_total'),
    d.accepted_prediction_tokens + d.rejected_prediction_tokens);
  const streamed = async (extra) => {
    let t = '';
    let usage = null;
    for await (const ch of await client.completions.create({ ...req, ...extra, stream: true,
      stream_options: { include_usage: true } })) {
      t += ch.choices[0] ? ch.choices[0].text : '';
      if (ch.usage) usage = ch.usage;
    }
    return { t, usage };
  };
  for (let round = 0; round < 2; round++) {
    const [a, b, c, e, f, g] = await Promise.all([
      client.completions.create(req),
      client.completions.create({ ...req, speculative: { ngram: 1, max: 3 } }),
      streamed({ speculative: spec }),
      client.completions.create({ ...req, n: 2, speculative: { ngram: 3, max: 16 } }),
      client.completions.create({ ...req, speculative: spec, skip_layers: [1, 3] }),
      streamed({}),
    ]);
    assert.equal(a.choices[0].text, plain, `round ${round}: plain`);
    assert.equal(b.choices[0].text, plain, `round ${round}: ngram 1`);
    assert.equal(c.t, plain, `round ${round}: streamed`);
    assert.equal(c.usage.completion_tokens, N);
    assert.ok(c.usage.completion_tokens_details.accepted_prediction_tokens > 0);
    assert.deepEqual(e.choices.map((x) => x.text), [plain, plain], `round ${round}: n = 2`);
    assert.equal(f.choices[0].text, skipped, `round ${round}: with skip_layers`);
    assert.equal(g.t, plain, `round ${round}: plain, streamed`);
  }
  // a stop string inside accepted drafts still cuts the text there
  const cut = plain.indexOf('happy');
  assert.ok(cut > 0);
  const s = await client.completions.create({ ...req, stop: 'happy', speculative: spec });
  assert.equal(s.choices[0].text, plain.slice(0, cut));
  assert.equal(s.choices[0].finish_reason, 'stop');
  // the sampled test (acceptance with probability p(x), then the residual
  // draw) on a one-point p (top_k 1 at temperature 1) must give greedy's
  // text: accepting a draft p gives no mass would not (the residual's
  // removal of x is not seen here: x has no mass in a one-point p)
  const k1 = await client.completions.create({ ...req, temperature: 1, top_k: 1, seed: 9,
    speculative: spec });
  assert.equal(k1.choices[0].text, plain);
  assert.ok(k1.usage.completion_tokens_details.rejected_prediction_tokens > 0);
  // sampled: reproducible with a seed, the full length
  const t1 = { ...req, temperature: 0.8, seed: 5, speculative: spec };
  const r1 = await client.completions.create(t1);
  const r2 = await client.completions.create(t1);
  assert.equal(r1.choices[0].text, r2.choices[0].text);
  assert.equal(r1.usage.completion_tokens, N);
  // refused: bad shapes, and fields that read the draw or mask the logits
  for (const [bad, extra] of [[1, {}], [{ ngram: 0 }, {}], [{ max: 17 }, {}], [{ ngram: 'x' }, {}],
    [spec, { logprobs: 2 }], [spec, { best_of: 2 }], [spec, { mirostat: 2 }],
    [spec, { response_format: { type: 'json_object' } }]]) {
    await assert.rejects(client.completions.create({ ...req, ...extra, speculative: bad }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, JSON.stringify([bad, extra]));
      assert.equal(err.param, 'speculative');
      return true;
    });
  }
});
