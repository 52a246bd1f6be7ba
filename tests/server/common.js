// What the server tests share: the client, the server's address and
// process, raw HTTP, and the references the answers are checked against.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const OpenAI = require('openai');

const URL = process.env.STRIX_URL;
const MODEL = 'stories';
const ROOT = path.resolve(__dirname, '..', '..');
const MODEL_FILE = path.join(ROOT, 'models', 'stories260K.gguf');

const client = new OpenAI({ baseURL: URL + '/v1', apiKey: 'none', maxRetries: 0, timeout: 60000 });

// `strix run`'s greedy text after prompt (n tokens), without the prompt
// (extra: more options, e.g. ['--skip-layers', '1,3']).
function strixRun(prompt, n, extra = []) {
  const out = execFileSync(process.env.STRIX_BIN, ['run', '-m', MODEL_FILE, '-p', prompt, '-n',
    String(n), '--temp', '0', '-t', '1', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] })
    .toString();
  if (!out.startsWith(prompt)) throw new Error('strix run did not echo the prompt');
  return out.slice(prompt.length).replace(/\n$/, '');
}

// One raw HTTP exchange: writes `data` (Buffer or string) and resolves with
// what came back before the server closed or `ms` passed.
function raw(data, ms = 5000) {
  return new Promise((resolve) => {
    const u = new global.URL(URL);
    const s = net.connect(Number(u.port), u.hostname);
    const chunks = [];
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.setTimeout(ms, () => finish(false));
    s.write(data);
  });
}

function post(pathname, body, extra = '') {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return raw(Buffer.concat([Buffer.from(`POST ${pathname} HTTP/1.1\r\nHost: x\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: close\r\n${extra}\r\n`), b]));
}

function status(res) {
  const m = /^HTTP\/1\.[01] (\d+)/.exec(res.text);
  return m ? Number(m[1]) : 0;
}

function bodyJson(res) {
  const i = res.text.indexOf('\r\n\r\n');
  return JSON.parse(Buffer.from(res.text.slice(i + 4), 'latin1').toString('utf8'));
}

// Resident memory of the server (kB), from /proc.
function rssKb() {
  const s = fs.readFileSync(`/proc/${process.env.STRIX_PID}/status`, 'utf8');
  return Number(/VmRSS:\s*(\d+)/.exec(s)[1]);
}

async function metrics() {
  const text = await (await fetch(URL + '/metrics')).text();
  const get = (name) => {
    const m = new RegExp('^' + name + ' (\\S+)$', 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  return { text, get };
}

// Waits until no request is active or queued.
async function idle(ms = 10000) {
  const t0 = Date.now();
  for (;;) {
    const m = await metrics();
    if (m.get('strix_requests_active') === 0 && m.get('strix_queue_length') === 0) return m;
    if (Date.now() - t0 > ms) throw new Error('the server did not become idle');
    await new Promise((r) => setTimeout(r, 50));
  }
}

module.exports = { URL, MODEL, ROOT, client, OpenAI, strixRun, raw, post, status, bodyJson, rssKb,
  metrics, idle };
