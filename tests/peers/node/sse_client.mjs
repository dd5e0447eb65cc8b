// Node `eventsource` (v4) peer: reads a tidings session over Server-Sent Events,
// POSTs its frames with fetch, and survives a cut link by the library's own
// reconnect (it waits the server's `retry:` and sends `Last-Event-ID`).
//
// Usage: node sse_client.mjs URL CHANNEL FIRST SECOND
//
// The script must sit next to a `node_modules` holding `eventsource` (the Rust
// test copies it into a temporary directory linked to the installed packages),
// so that the plain `import { EventSource } from 'eventsource'` resolves.
//
// 1. opens the stream; on the `welcome` it POSTs `subscribe CHANNEL`;
// 2. after FIRST messages it POSTs `publish ctl {"got": FIRST}` (seq 1): the
//    Rust side then cuts every connection and publishes SECOND more;
// 3. the library reconnects with Last-Event-ID; the server resumes the session
//    (`welcome` with `resumed: true`) and re-sends what was missed;
// 4. after FIRST + SECOND messages it POSTs `publish ctl {"got": total}`
//    (seq 2) and `close`, closes the EventSource and exits.
// Every observation is a JSON line on stdout.

import { EventSource } from 'eventsource';

const STEP_MS = Number(process.env.TIDINGS_PEER_STEP_TIMEOUT_MS ?? 20000);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

const [url, channel, firstArg, secondArg] = process.argv.slice(2);
const first = Number(firstArg);
const total = first + Number(secondArg);

let session = null;
let token = null;
let received = 0;
let errorAt = null;
let publishSeq = 0;
let chain = Promise.resolve();

// One POST at a time, in order; retried when a pooled connection was cut.
function post(frames) {
  chain = chain.then(async () => {
    const body = frames.map((f) => JSON.stringify(f)).join('\n') + '\n';
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(`${url}/${encodeURIComponent(session)}`, {
          method: 'POST',
          headers: { 'x-tidings-token': token, 'content-type': 'application/x-ndjson' },
          body,
        });
        const text = await res.text();
        emit('post', { status: res.status, types: frames.map((f) => f.type), text });
        if (res.status === 202) return;
        if (res.status !== 409 || attempt >= 50) throw new Error(`POST ${res.status}: ${text}`);
      } catch (e) {
        if (attempt >= 50) throw e;
        emit('post_retry', { attempt, error: String(e) });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  chain.catch((e) => fail(e));
  return chain;
}

function fail(e) {
  process.stderr.write(`sse_client failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
}

const watchdog = setTimeout(() => fail(new Error(`no progress within ${STEP_MS} ms`)), STEP_MS * 3);
const es = new EventSource(url);

es.addEventListener('open', () => {
  emit('open', { at: Date.now(), sinceError: errorAt === null ? null : Date.now() - errorAt });
});

es.addEventListener('error', (e) => {
  errorAt = Date.now();
  emit('error', { readyState: es.readyState, message: e?.message ?? null, code: e?.code ?? null });
});

es.addEventListener('message', (ev) => {
  let frame;
  try {
    frame = JSON.parse(ev.data);
  } catch (e) {
    fail(new Error(`not a JSON frame: ${ev.data}`));
    return;
  }
  switch (frame.type) {
    case 'welcome':
      emit('welcome', { frame, lastEventId: ev.lastEventId });
      session = frame.session;
      token = frame.resume_token;
      if (!frame.resumed) post([{ type: 'subscribe', channel }]);
      return;
    case 'subscribed':
      emit('subscribed', { frame });
      return;
    case 'publish_ack':
      // Ours, on whichever stream is open when the server acknowledges.
      emit('publish_ack', { seq: frame.seq });
      return;
    case 'message': {
      if (frame.channel !== channel) return;
      received += 1;
      emit('message', { seq: frame.seq, data: frame.data, lastEventId: ev.lastEventId });
      if (received === first) {
        publishSeq += 1;
        post([{ type: 'publish', channel: 'ctl', seq: publishSeq, data: { got: received } }]);
      }
      if (received === total) {
        publishSeq += 1;
        post([
          { type: 'publish', channel: 'ctl', seq: publishSeq, data: { got: received } },
          { type: 'close', code: 1000, reason: 'node peer done' },
        ]).then(() => {
          es.close();
          clearTimeout(watchdog);
          emit('done', { received });
        });
      }
      return;
    }
    case 'close':
      // The server's reply to our own `close`: it can come down the stream
      // before the POST that carried ours has its response.
      emit('closed', { frame });
      return;
    default:
      emit('other', { frame });
  }
});
