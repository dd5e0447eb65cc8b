// The page side of the browser tests: loads the wasm module and exposes `window.harness`.
//
// The Node driver calls `harness.*` through `page.evaluate`. Each client is a `Probe` of the
// wasm module (a Rust tidings client, WebSocket, SSE or WebTransport) under a name; `harness.events(name)`
// returns what it received. The page also lists each client's events, for the screenshots.
// `harness.oversized()` is the one piece of plain JavaScript speaking to the server: a raw
// `WebSocket` sending frames larger than the server accepts.

import init, { Probe } from '/pkg/tidings_browser_tests.js';

const probes = new Map();
const wsUrl = `ws://${location.host}/ws`;
const sseUrl = `http://${location.host}/sse`;

function render() {
  const root = document.getElementById('clients');
  root.replaceChildren();
  for (const [name, probe] of probes) {
    const section = document.createElement('section');
    const title = document.createElement('h2');
    title.textContent = `${name}: ${probe.state()}`;
    const list = document.createElement('ol');
    for (const e of probe.events().slice(-40)) {
      const item = document.createElement('li');
      item.className = e.kind;
      item.textContent = describe(e);
      list.append(item);
    }
    section.append(title, list);
    root.append(section);
  }
}

function describe(e) {
  switch (e.kind) {
    case 'message': return `#${e.seq} ${e.channel}: ${e.payload}`;
    case 'gap': return `GAP ${e.channel} ${e.from}..=${e.to}`;
    case 'reset': return `CHANNEL RESET ${e.channel} (had seen ${e.seen})`;
    case 'connected': return `connected ${e.resumed ? '(resumed)' : '(new session)'}`;
    case 'disconnected': return `disconnected: ${e.reason}`;
    case 'subscribed': return `subscribed ${e.channel} from ${e.seq}`;
    case 'publishAcked': return `publish acked up to ${e.seq}`;
    case 'error': return `error ${e.code}: ${e.message}`;
    default: return JSON.stringify(e);
  }
}

function probe(name) {
  const p = probes.get(name);
  if (!p) throw new Error(`no client named ${name}`);
  return p;
}

/** Opens a raw WebSocket, completes the tidings handshake, then sends one text frame of
 *  `max_frame + 1` bytes (the limit the server announced in its welcome). Resolves with what
 *  happened: the close code and reason the page saw. */
// A publish just over the server's frame limit is refused by name (an `error` naming its seq),
// the session goes on and takes the next publish; a message past the WebSocket limit (twice the
// frame limit) closes the socket with 1009.
function oversized() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, ['tidings.v1.json']);
    const seen = { maxFrame: null, sent: 0, frames: [], refused: null, acked: 0, huge: 0 };
    const timer = setTimeout(() => reject(new Error(`no close within 20 s: ${JSON.stringify(seen)}`)), 20000);
    const publish = (seq, size) => {
      const head = `{"type":"publish","channel":"room:oversized","seq":${seq},"data":"`;
      const tail = '"}';
      return head + 'x'.repeat(Math.max(0, size - head.length - tail.length)) + tail;
    };
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', version: 1, positions: [] }));
    ws.onmessage = (m) => {
      const frame = JSON.parse(m.data);
      seen.frames.push(frame.type);
      if (frame.type === 'welcome' && seen.maxFrame === null) {
        seen.maxFrame = frame.max_frame;
        const text = publish(1, frame.max_frame + 1);
        seen.sent = text.length;
        ws.send(text);
      } else if (frame.type === 'error' && typeof frame.seq === 'number' && seen.refused === null) {
        seen.refused = { code: frame.code, seq: frame.seq };
        ws.send(JSON.stringify({ type: 'publish', channel: 'room:oversized', seq: 2, data: { ok: true } }));
      } else if (frame.type === 'publish_ack' && frame.seq >= 2 && !seen.huge) {
        seen.acked = frame.seq;
        const text = publish(3, 2 * seen.maxFrame + 1);
        seen.huge = text.length;
        ws.send(text);
      }
    };
    ws.onerror = () => { seen.error = true; };
    ws.onclose = (c) => {
      clearTimeout(timer);
      resolve({ ...seen, code: c.code, reason: c.reason, wasClean: c.wasClean });
    };
  });
}

window.harness = {
  ws(name, subprotocols = ['tidings.v1.json'], url = wsUrl) {
    probes.set(name, Probe.webSocket(url, subprotocols));
  },
  sse(name) {
    probes.set(name, Probe.sse(sseUrl));
  },
  /** A WebTransport client: the session URL from the server, its certificate pinned by the
   *  SHA-256 the server serves (fetched again before each connect). */
  async wt(name, protocol = 'tidings.v1.json') {
    const { url } = await (await fetch('/webtransport.json')).json();
    probes.set(name, Probe.webTransport(url, `${location.origin}/webtransport-hashes.json`, protocol));
  },
  subscribe(name, channel) { probe(name).subscribe(channel); },
  publish(name, channel, payload) { return probe(name).publish(channel, payload); },
  events(name) { return probe(name).events(); },
  state(name) { return probe(name).state(); },
  unacked(name) { return probe(name).unacked(); },
  close(name) { probe(name).close(); },
  rooms(name) { return probe(name).rooms(); },
  // Any call into the client wakes its driver; subscribing to a channel no scenario uses is the
  // call with no effect on the rooms under test. Used only to get past a stalled driver (a known
  // bug, see driver/known_bugs.mjs), so the rest of a scenario still runs.
  nudge(name) { probe(name).subscribe('room:nudge'); },
  scenario(title) { document.getElementById('scenario').textContent = title; },
  render,
  oversized,
};

try {
  await init();
  document.getElementById('status').textContent = 'wasm module loaded';
  setInterval(render, 100);
  window.harnessReady = true;
} catch (e) {
  document.getElementById('status').textContent = `wasm module failed: ${e}`;
  window.harnessFailed = String(e);
  throw e;
}
