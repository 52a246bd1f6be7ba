// sse_client.js - the plain-Node client pieces (fetch, no packages) that
// tests/mpi_serve.js and scripts/bench_mpi_serve.js share: a completion
// request to a running `strix serve`, and the JSON events of a streamed
// answer (server-sent events: "data: {...}" blocks, the space optional,
// "[DONE]" skipped).
'use strict';

// POSTs body (an object) to BASE/v1/completions; resolves to the Response.
function postCompletion(base, body, signal) {
  return fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

// Yields each event of a streamed Response as a parsed object; leaving the
// loop early stops reading the body.
async function* events(response) {
  const dec = new TextDecoder();
  let buf = '';
  for await (const part of response.body) {
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i).trim();
      buf = buf.slice(i + 2);
      if (ev.startsWith('data:') && ev.slice(5).trim() !== '[DONE]')
        yield JSON.parse(ev.slice(5));
    }
  }
}

module.exports = { postCompletion, events };
