// The OpenAI API through OpenAI's own client: completions and chat,
// streamed and not, usage, stop, seeds, n, logprobs, errors; checked against
// `strix run`, llama2.c's greedy text and llama.cpp's logits.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { URL, MODEL, ROOT, client, OpenAI, strixRun, idle } = require('./common.js');

const PROMPT = 'Once upon a time';

test('models lists the served model', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [MODEL]);
  const h = await (await fetch(URL + '/health')).json();
  assert.equal(h.status, 'ok');
});

test('greedy completion equals strix run and llama2.c', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 60,
    temperature: 0 });
  const text = r.choices[0].text;
  assert.equal(text, strixRun(PROMPT, 60));
  // llama2.c run.c's greedy story from the same prompt
  const ref = fs.readFileSync(path.join(ROOT, 'tests/data/stories260K-once.txt'), 'utf8');
  assert.ok(ref.startsWith(PROMPT + text), `not a prefix of llama2.c's text: ${text}`);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 60);
  assert.equal(r.usage.prompt_tokens, 5); // BOS + 4
  assert.equal(r.usage.total_tokens, 65);
  assert.equal(r.object, 'text_completion');
});

test('streamed completion: same text, [DONE], usage', async () => {
  const whole = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40,
    temperature: 0 });
  const stream = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40,
    temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, n = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
    n++;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
  assert.ok(n > 10, 'the answer came in pieces');
  assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [5, 40]);
  // the raw stream ends with data: [DONE]
  const res = await fetch(URL + '/v1/completions', { method: 'POST', body: JSON.stringify({
    prompt: PROMPT, max_tokens: 3, stream: true }) });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.ok((await res.text()).endsWith('data: [DONE]\n\n'));
});

test('chat: streamed deltas equal the whole message; usage adds up', async () => {
  const messages = [{ role: 'system', content: 'You tell stories.' },
    { role: 'user', content: 'Tell me about a cat.' }];
  const whole = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 30,
    temperature: 0 });
  const msg = whole.choices[0].message;
  assert.equal(msg.role, 'assistant');
  assert.ok(msg.content.length > 0);
  assert.equal(whole.object, 'chat.completion');
  const u = whole.usage;
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.ok(u.completion_tokens <= 30);
  // the "plain" template: the messages joined by newlines, then the answer
  assert.equal(whole.choices[0].message.content,
    (await client.completions.create({ model: MODEL, prompt:
      'You tell stories.\nTell me about a cat.', max_tokens: 30, temperature: 0 })).choices[0].text);
  const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 30,
    temperature: 0, stream: true });
  let text = '', role = null, finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const d = chunk.choices[0].delta;
    if (d.role) role = d.role;
    if (d.content) text += d.content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, msg.content);
  assert.equal(finish, whole.choices[0].finish_reason);
});

test('stop strings cut the text before them, streamed or not', async () => {
  const full = (await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 60,
    temperature: 0 })).choices[0].text;
  const at = full.indexOf(' park');
  assert.ok(at > 0);
  for (const stream of [false, true]) {
    const req = { model: MODEL, prompt: PROMPT, max_tokens: 60, temperature: 0,
      stop: ['zebra', ' park'], stream };
    let text = '', finish = null;
    if (stream) {
      for await (const ch of await client.completions.create(req)) {
        text += ch.choices[0].text;
        finish = ch.choices[0].finish_reason || finish;
      }
    } else {
      const r = await client.completions.create(req);
      text = r.choices[0].text;
      finish = r.choices[0].finish_reason;
    }
    assert.equal(text, full.slice(0, at));
    assert.equal(finish, 'stop');
  }
});

test('a seed reproduces a sampled answer; n gives n choices', async () => {
  const req = { model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 1, top_k: 0,
    top_p: 1, min_p: 0, seed: 1234 };
  const a = (await client.completions.create(req)).choices[0].text;
  const b = (await client.completions.create(req)).choices[0].text;
  const c = (await client.completions.create({ ...req, seed: 99 })).choices[0].text;
  assert.equal(a, b);
  assert.notEqual(a, c);
  const r = await client.completions.create({ ...req, n: 3 });
  assert.deepEqual(r.choices.map((x) => x.index), [0, 1, 2]);
  assert.equal(r.choices[0].text, a); // choice i draws with seed + i
  assert.equal(new Set(r.choices.map((x) => x.text)).size, 3);
  assert.equal(r.usage.completion_tokens, 120);
});

// llama.cpp's logits for the same model and token ids (tests/data/README.md)
function llamacppLogprobs(pos) {
  const ids = fs.readFileSync(path.join(ROOT, 'tests/data/llamacpp-stories260K.ids'), 'utf8')
    .trim().split(/\s+/).map(Number);
  const buf = fs.readFileSync(path.join(ROOT, 'tests/data/llamacpp-stories260K.logits'));
  const nv = buf.length / 4 / ids.length;
  const row = [];
  for (let i = 0; i < nv; i++) row.push(buf.readFloatLE(4 * (pos * nv + i)));
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
  return { ids, lp: row.map((x) => x - lse) };
}

test('logprobs match log-softmax of llama.cpp logits', async () => {
  for (const k of [3, 9, 17]) {
    const { ids, lp } = llamacppLogprobs(k - 1);
    const r = await client.completions.create({ model: MODEL, prompt: ids.slice(0, k),
      max_tokens: 1, temperature: 0, logprobs: 5 });
    const got = Object.values(r.choices[0].logprobs.top_logprobs[0]).sort((a, b) => b - a);
    const want = [...lp].sort((a, b) => b - a).slice(0, got.length);
    assert.equal(got.length, 5);
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-3, `${got} vs ${want}`);
    assert.ok(Math.abs(r.choices[0].logprobs.token_logprobs[0] - want[0]) < 1e-3);
  }
  // chat: each token's entry, its alternatives, and the text they spell
  const r = await client.chat.completions.create({ model: MODEL, max_tokens: 12, temperature: 0,
    messages: [{ role: 'user', content: 'Lily' }], logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.map((e) => e.token).join(''), r.choices[0].message.content);
  for (const e of content) {
    assert.equal(e.top_logprobs.length, 3);
    assert.equal(e.top_logprobs[0].logprob, e.logprob); // greedy: the best one
    assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
    const p = e.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(p <= 1.0001 && e.logprob <= 0);
  }
});

test('penalties and logit_bias change the answer as asked', async () => {
  const base = { model: MODEL, prompt: PROMPT, max_tokens: 30, temperature: 0 };
  const plain = (await client.completions.create(base)).choices[0].text;
  // ban the first generated token: the text must start differently
  const first = (await client.completions.create({ ...base, max_tokens: 1, logprobs: 1 }));
  const tok = await (await fetch(URL + '/tokenize', { method: 'POST',
    body: JSON.stringify({ content: PROMPT + first.choices[0].text }) })).json();
  const bias = { [tok.tokens[tok.tokens.length - 1]]: -100 };
  const banned = (await client.completions.create({ ...base, logit_bias: bias })).choices[0].text;
  assert.ok(!banned.startsWith(first.choices[0].text));
  const pen = (await client.completions.create({ ...base, frequency_penalty: 2,
    presence_penalty: 2 })).choices[0].text;
  assert.notEqual(pen, plain);
});

test('tokenize and detokenize round-trip', async () => {
  const t = await (await fetch(URL + '/tokenize', { method: 'POST',
    body: JSON.stringify({ content: 'Lily had a red ball.', add_special: true }) })).json();
  assert.ok(t.tokens.length > 3);
  const d = await (await fetch(URL + '/detokenize', { method: 'POST',
    body: JSON.stringify({ tokens: t.tokens }) })).json();
  assert.equal(d.content.trim(), 'Lily had a red ball.');
});

test('errors surface as the client\'s error types', async () => {
  await assert.rejects(client.completions.create({ model: 'gpt-4', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature' &&
      e.type === 'invalid_request_error');
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', n: 99 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'n');
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(client.chat.completions.create({ model: MODEL,
    messages: [{ role: 'wizard', content: 'x' }] }), OpenAI.BadRequestError);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: -1 }),
    OpenAI.BadRequestError);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x',
    logit_bias: { 100000: 1 } }), OpenAI.BadRequestError);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', stop: 'x'.repeat(300) }),
    OpenAI.BadRequestError);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'once '.repeat(600) }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
  const nf = await fetch(URL + '/v1/nothing');
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.type, 'invalid_request_error');
  const bad = await fetch(URL + '/v1/completions', { method: 'POST', body: '{"prompt": "x",' });
  assert.equal(bad.status, 400);
  const e = (await bad.json()).error;
  assert.ok('message' in e && 'type' in e && 'param' in e && 'code' in e);
  assert.equal((await fetch(URL + '/v1/completions')).status, 405);
  await idle();
});

test('concurrent greedy requests each get their own sequential answer', async () => {
  const prompts = ['Once upon a time', 'Lily and Ben', 'The dog', 'One day, a bird',
    'Tom had a', 'The sun was', 'Sara liked', 'A big truck'];
  const alone = [];
  for (const p of prompts) {
    alone.push((await client.completions.create({ model: MODEL, prompt: p, max_tokens: 25,
      temperature: 0 })).choices[0].text);
  }
  const together = await Promise.all(prompts.map(async (p, i) => {
    if (i % 2) {
      let t = '';
      for await (const c of await client.completions.create({ model: MODEL, prompt: p,
        max_tokens: 25, temperature: 0, stream: true })) t += c.choices[0].text;
      return t;
    }
    return (await client.completions.create({ model: MODEL, prompt: p, max_tokens: 25,
      temperature: 0 })).choices[0].text;
  }));
  assert.deepEqual(together, alone);
});

test('a shared prompt prefix is computed once and reused', async () => {
  const system = 'Once upon a time, there was a little girl named Lily. She loved to play. ';
  const a = await client.completions.create({ model: MODEL, prompt: system + 'One day',
    max_tokens: 20, temperature: 0 });
  const b = await client.completions.create({ model: MODEL, prompt: system + 'The sun',
    max_tokens: 20, temperature: 0 });
  assert.ok(b.usage.prompt_tokens_details.cached_tokens >= 15,
    JSON.stringify(b.usage));
  // the same answer as with nothing cached: strix run reads the whole prompt
  assert.equal(b.choices[0].text, strixRun(system + 'The sun', 20));
  assert.equal(a.choices[0].text, strixRun(system + 'One day', 20));
});

test('metrics count requests, tokens and batches', async () => {
  const { metrics } = require('./common.js');
  await idle();
  const m0 = await metrics();
  const r = await client.completions.create({ model: MODEL, prompt: 'The dog ran', max_tokens: 7,
    temperature: 0, n: 2 });
  const m1 = await idle();
  assert.equal(m1.get('strix_completion_tokens_total') - m0.get('strix_completion_tokens_total'),
    r.usage.completion_tokens);
  assert.equal(m1.get('strix_prompt_tokens_total') - m0.get('strix_prompt_tokens_total'),
    r.usage.prompt_tokens);
  const req = (m, ep) => Number(new RegExp(`strix_requests_total\\{endpoint="${ep}"\\} (\\d+)`)
    .exec(m.text)[1]);
  assert.equal(req(m1, 'completions') - req(m0, 'completions'), 1);
  // two choices decode side by side: at least one step held both sequences
  assert.ok(m1.get('strix_decode_steps_total') > m0.get('strix_decode_steps_total'));
  assert.match(m1.text, /# TYPE strix_time_to_first_token_seconds histogram/);
  assert.match(m1.text, /strix_batch_sequences_bucket\{le="\+Inf"\} \d+/);
  assert.equal(m1.get('strix_queue_length'), 0);
});

test('a long prompt is read in chunks beside a running stream, with the same answer', async () => {
  const { metrics } = require('./common.js');
  const story = fs.readFileSync(path.join(ROOT, 'tests/data/stories260K-once.txt'), 'utf8')
    .split(/\s+/);
  const words = [...story, ...story].slice(0, 200).join(' ');
  const tok = await (await fetch(URL + '/tokenize', { method: 'POST',
    body: JSON.stringify({ content: words }) })).json();
  assert.ok(tok.tokens.length > 300 && tok.tokens.length < 480, `${tok.tokens.length} tokens`); // more than one chunk (-b 256)
  // a stream runs while the long prompt is read
  const running = (async () => {
    let t = '';
    for await (const c of await client.completions.create({ model: MODEL, prompt: 'The cat',
      max_tokens: 60, temperature: 0, stream: true })) t += c.choices[0].text;
    return t;
  })();
  const long = await client.completions.create({ model: MODEL, prompt: words, max_tokens: 20,
    temperature: 0 });
  assert.equal(await running, strixRun('The cat', 60));
  assert.equal(long.choices[0].text, strixRun(words, 20));
  // no step decoded more than the batch (-b, 256 by default)
  const m = await metrics();
  const bucket = (le) => Number(new RegExp(`strix_batch_tokens_bucket\\{le="${le}"\\} (\\d+)`)
    .exec(m.text)[1]);
  assert.equal(bucket('256'), bucket('\\+Inf'));
});
