// The browser scenarios: each drives real pages and asserts on what their Rust wasm clients
// received. A scenario returns a one-line note for the report, or throws.
//
// `expectedConsole` lists the console errors a scenario causes on purpose (Chromium logs a
// failed connection attempt as an error, and these scenarios make connections fail); every
// other console error or page error fails the run.

import { join } from 'node:path';

import { call } from './browser.mjs';
import {
  CheckError, check, checkContiguous, checkExactly, checkSubsequence, eventsOf, messagesOf, summarize, until,
} from './check.mjs';

const JSON_PROTOCOL = 'tidings.v1.json';
const BIN_PROTOCOL = 'tidings.v1.bin';

/** What Chromium logs when a WebSocket or EventSource cannot connect (or, for the event stream,
 *  when the killed server cut it mid-chunk): expected while the page is offline or the server is
 *  down, and only then. */
const CONNECT_FAILED = /^(WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed: .*(ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET)|Failed to load resource: net::(ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED_ENCODING))/;

// ---------------------------------------------------------------------------------------------
// Helpers on a page's clients.

function events(tab, client) {
  return call(tab, 'events', client);
}

/** How long past its retry time a disconnected client may sit before it counts as stalled. */
const STALL_GRACE_MS = 3000;

/** Polls a client's events until `done(events)`, like `until`. Meanwhile it watches for the
 *  known bug `wasm-timer-stall`: a client still `disconnected` well after its announced retry
 *  time. That is reported (once per disconnect) and the client is nudged, so the scenario goes on
 *  to check everything else. */
async function untilClient(ctx, tab, client, what, done, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let nudgedFor = null;
  for (;;) {
    const evs = await events(tab, client);
    if (done(evs)) return evs;
    const lastDrop = evs.findLastIndex((e) => e.kind === 'disconnected');
    const drop = evs[lastDrop];
    if (drop && !evs.slice(lastDrop).some((e) => e.kind === 'connected') && nudgedFor !== drop.at) {
      const late = Date.now() - (drop.at + drop.retryInMs);
      if (late > STALL_GRACE_MS && (await call(tab, 'state', client)) === 'disconnected') {
        ctx.bug('wasm-timer-stall', `${tab.name}/${client} still disconnected ${late} ms after its `
          + `retry time (retry_in ${drop.retryInMs} ms), while waiting for ${what}; nudged`);
        nudgedFor = drop.at;
        await call(tab, 'nudge', client);
      }
    }
    if (Date.now() >= deadline) {
      throw new CheckError(`timed out after ${timeoutMs} ms waiting for ${tab.name}/${client}: ${what}; `
        + `state ${await call(tab, 'state', client)}; events:\n${JSON.stringify(evs, null, 2)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function subscribed(ctx, tab, client, channel, after = 0) {
  return untilClient(
    ctx, tab, client,
    `subscribed to ${channel}`,
    (evs) => eventsOf(evs, 'subscribed', channel).length > after,
  );
}

async function received(ctx, tab, client, channel, n, timeoutMs) {
  const evs = await untilClient(
    ctx, tab, client,
    `${n} messages on ${channel}`,
    (e) => messagesOf(e, channel).length >= n,
    timeoutMs,
  );
  return { evs, messages: messagesOf(evs, channel) };
}

async function publishAll(tab, client, channel, payloads) {
  for (const p of payloads) await call(tab, 'publish', client, channel, p);
}

async function serverPublishAll(server, channel, payloads) {
  for (const p of payloads) await server.publish(channel, p);
}

async function screenshot(ctx, tab, label) {
  const path = join(ctx.out, `${label}.png`);
  await call(tab, 'render');
  await tab.page.screenshot({ path, fullPage: true });
  ctx.screenshots.push(path);
}

async function open(ctx, name, title) {
  const tab = await ctx.browser.openPage(ctx.server.url, name);
  await call(tab, 'scenario', title);
  return tab;
}

function payloads(prefix, n) {
  return Array.from({ length: n }, (_, i) => JSON.stringify({ text: `${prefix}-${i + 1}` }));
}

/** Records the kind (text or binary) of every WebSocket frame a page sends and receives. */
function frameKinds(tab) {
  const kinds = { received: [], sent: [], sockets: [] };
  tab.page.on('websocket', (ws) => {
    kinds.sockets.push(ws.url());
    const kind = (f) => (typeof f.payload === 'string' ? 'text' : 'binary');
    ws.on('framereceived', (f) => kinds.received.push(kind(f)));
    ws.on('framesent', (f) => kinds.sent.push(kind(f)));
  });
  return kinds;
}

function count(list, value) {
  return list.filter((x) => x === value).length;
}

// ---------------------------------------------------------------------------------------------
// Round trips.

/** One client publishes five messages and the server two; the client receives all seven,
 *  once each, in order, and its publishes are acknowledged. */
async function roundTrip(ctx, transport) {
  const channel = `room:roundtrip-${transport}`;
  const tab = await open(ctx, `roundtrip-${transport}`, `${transport} round trip`);
  const frames = frameKinds(tab);
  const requests = [];
  tab.page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  const wt = transport.startsWith('wt-');
  const wtBefore = wt ? await ctx.server.wtStats() : null;
  if (transport === 'sse') {
    await call(tab, 'sse', 'client');
  } else if (wt) {
    await call(tab, 'wt', 'client', transport === 'wt-json' ? JSON_PROTOCOL : BIN_PROTOCOL);
  } else if (transport === 'wss') {
    // The page is served over http://; its client connects to the TLS listener.
    check(ctx.server.tlsUrl, 'the server has a TLS listener', ctx.server.tlsUrl);
    const url = `${ctx.server.tlsUrl.replace(/^https:/, 'wss:')}/ws`;
    await call(tab, 'ws', 'client', [JSON_PROTOCOL], url);
  } else {
    await call(tab, 'ws', 'client', [transport === 'json' ? JSON_PROTOCOL : BIN_PROTOCOL]);
  }
  await call(tab, 'subscribe', 'client', channel);
  await subscribed(ctx, tab, 'client', channel);

  // The same connection answers RPC: the typed client `#[tidings::rpc]` generates for wasm32.
  const rooms = await call(tab, 'rooms', 'client');
  check(JSON.stringify(rooms) === JSON.stringify(['lobby', 'random', 'help']),
    'the wasm ChatClient must get the room list over RPC', rooms);

  const fromPage = payloads(`${transport}-page`, 5);
  const fromServer = payloads(`${transport}-server`, 2);
  await publishAll(tab, 'client', channel, fromPage);
  await received(ctx, tab, 'client', channel, fromPage.length);
  await serverPublishAll(ctx.server, channel, fromServer);
  const { messages } = await received(ctx, tab, 'client', channel, fromPage.length + fromServer.length);
  checkExactly(messages, [...fromPage, ...fromServer], `${transport} client`);
  const evs = await until(
    'the publishes to be acknowledged',
    () => events(tab, 'client'),
    (e) => eventsOf(e, 'publishAcked').some((a) => a.seq >= fromPage.length),
  );
  check(eventsOf(evs, 'gap').length === 0, 'no gap expected on a quiet round trip', evs);
  check(eventsOf(evs, 'error').length === 0, 'no error event expected', eventsOf(evs, 'error'));
  await screenshot(ctx, tab, `roundtrip-${transport}`);

  if (transport === 'sse') {
    check(frames.sockets.length === 0, 'the SSE client opened a WebSocket', frames.sockets);
    const streams = requests.filter((r) => r === 'GET /sse' || r.startsWith('GET /sse?'));
    const posts = requests.filter((r) => r.startsWith('POST /sse/'));
    check(streams.length >= 1 && posts.length >= 1, 'expected an event stream and POSTs', requests);
    return `${messages.length} messages over EventSource (${streams.length} stream, ${posts.length} POSTs)`;
  }
  if (wt) {
    check(frames.sockets.length === 0, 'the WebTransport client opened a WebSocket', frames.sockets);
    const sse = requests.filter((r) => r.includes('/sse'));
    check(sse.length === 0, 'the WebTransport client used SSE', sse);
    const stats = await ctx.server.wtStats();
    check(stats.sessions >= 1, 'the WebTransport server serves no session', stats);
    // The channel's messages travel on a unidirectional stream of their own.
    const opened = stats.channelStreams - wtBefore.channelStreams;
    check(opened >= 1, `the server opened no channel stream for ${channel}`, { before: wtBefore, after: stats });
    return `${messages.length} messages over WebTransport (${transport === 'wt-json' ? JSON_PROTOCOL : BIN_PROTOCOL}, `
      + `certificate pinned by SHA-256), ${opened} channel stream(s) opened by the server, RPC on the control stream`;
  }
  if (transport === 'wss') {
    check(frames.sockets.length === 1 && frames.sockets[0].startsWith('wss://'), 'one wss:// socket', frames.sockets);
    check(count(frames.received, 'binary') === 0 && frames.sent.length > 0, 'text frames both ways', frames);
    // The same server behind a certificate Chromium was not told about: refused.
    const untrusted = `${ctx.server.untrustedTlsUrl.replace(/^https:/, 'wss:')}/ws`;
    const refused = await tab.page.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url, ['tidings.v1.json']);
      ws.onopen = () => { ws.close(); resolve('opened'); };
      ws.onerror = () => resolve('error');
      setTimeout(() => resolve('timeout'), 10000);
    }), untrusted);
    check(refused === 'error', `a certificate that is not pinned must be refused (${untrusted})`, refused);
    return `${messages.length} messages over ${frames.sockets[0]} (TLS, certificate pinned by its public key); `
      + `${frames.received.length} frames in, ${frames.sent.length} out; an unpinned certificate refused`;
  }
  const want = transport === 'json' ? 'text' : 'binary';
  const other = want === 'text' ? 'binary' : 'text';
  check(frames.sockets.length === 1, 'expected exactly one WebSocket', frames.sockets);
  check(
    frames.received.length >= messages.length && count(frames.received, other) === 0,
    `every frame from the server must be ${want}`,
    frames,
  );
  check(count(frames.sent, other) === 0 && frames.sent.length > 0, `every frame sent must be ${want}`, frames);
  return `${messages.length} messages; ${frames.received.length} ${want} frames in, ${frames.sent.length} out`;
}

// ---------------------------------------------------------------------------------------------
// Offline and back.

/** How long a page stays offline at most while waiting for its client to notice. */
const OFFLINE_NOTICE_MS = 15000;

/** Page A goes offline while the server and page B publish; back online, A has every message
 *  exactly once, in B's order, or was told of a gap.
 *
 *  Chromium's offline emulation does not close an open WebSocket: it holds the incoming frames
 *  (and lets outgoing ones through) until the page is online again. An event stream keeps
 *  flowing, but the SSE client's POSTs fail. So the WebSocket client notices only by its
 *  heartbeat (the server runs with a 1 s heartbeat: dead after 3 s of silence), the SSE client
 *  at its first POST (its pings). Some messages are published right after going offline (in
 *  flight on the old connection: they must come back by the resume), some once A noticed. */
async function offline(ctx, transport) {
  const channel = `room:offline-${transport}`;
  const a = await open(ctx, `offline-${transport}-a`, `${transport}: this page goes offline`);
  const b = await open(ctx, `offline-${transport}-b`, `${transport}: the other page stays online`);
  // When page A's client sent its last frame: a client with a running heartbeat sends a ping
  // every heartbeat while it receives nothing.
  let lastSent = Date.now();
  a.page.on('websocket', (ws) => ws.on('framesent', () => { lastSent = Date.now(); }));
  if (transport === 'sse') await call(a, 'sse', 'client');
  else await call(a, 'ws', 'client', [JSON_PROTOCOL]);
  await call(b, 'ws', 'client', [JSON_PROTOCOL]);
  for (const tab of [a, b]) await call(tab, 'subscribe', 'client', channel);
  for (const tab of [a, b]) await subscribed(ctx, tab, 'client', channel);

  const before = payloads('before', 3);
  await serverPublishAll(ctx.server, channel, before);
  await received(ctx, a, 'client', channel, before.length);

  const serverMeanwhile = payloads('server-meanwhile', 3);
  const pageMeanwhile = payloads('b-meanwhile', 3);
  const publishPair = async (i) => {
    await ctx.server.publish(channel, serverMeanwhile[i]);
    await call(b, 'publish', 'client', channel, pageMeanwhile[i]);
  };
  const wentOffline = Date.now();
  await a.context.setOffline(true);
  await publishPair(0);
  let noticed;
  try {
    await until(
      `${a.name} to notice it is offline`,
      () => events(a, 'client'),
      (evs) => eventsOf(evs, 'disconnected').length > 0,
      OFFLINE_NOTICE_MS,
    );
    noticed = `noticed offline after ${secs(Date.now() - wentOffline)}`;
  } catch (e) {
    if (!(e instanceof CheckError)) throw e;
    noticed = `did NOT notice within ${secs(OFFLINE_NOTICE_MS)} offline`;
    const quiet = Date.now() - lastSent;
    const state = await call(a, 'state', 'client');
    if (transport === 'ws' && state === 'open' && quiet > 3 * ctx.heartbeatMs) {
      ctx.bug('wasm-timer-stall', `${a.name}/client open, receiving nothing, yet sent no frame (no `
        + `ping) for ${quiet} ms with a ${ctx.heartbeatMs} ms heartbeat: its heartbeat timer stopped`);
    }
  }
  await publishPair(1);
  await publishPair(2);
  const total = before.length + serverMeanwhile.length + pageMeanwhile.length;
  const { messages: reference } = await received(ctx, b, 'client', channel, total);
  const whileOffline = messagesOf(await events(a, 'client'), channel).length;
  await screenshot(ctx, a, `offline-${transport}-a-offline`);
  await a.context.setOffline(false);

  const evs = await untilClient(
    ctx, a, 'client',
    'every message, or a gap, after coming back online',
    (e) => {
      const got = messagesOf(e, channel).length;
      const missing = eventsOf(e, 'gap', channel).reduce((n, g) => n + (g.to - g.from + 1), 0);
      return got + missing >= total;
    },
    30000,
  );
  const gaps = eventsOf(evs, 'gap', channel);
  const messages = messagesOf(evs, channel);
  await screenshot(ctx, a, `offline-${transport}-a-back`);
  await screenshot(ctx, b, `offline-${transport}-b`);
  checkContiguousOrGap(messages, gaps, a.name);
  if (gaps.length === 0) {
    checkExactly(messages, reference.map((m) => m.payload), a.name);
    check(
      JSON.stringify(messages.map((m) => m.seq)) === JSON.stringify(reference.map((m) => m.seq)),
      `${a.name} and ${b.name} number the messages differently`,
      { a: messages.map((m) => [m.seq, m.payload]), b: reference.map((m) => [m.seq, m.payload]) },
    );
  }
  const connects = eventsOf(evs, 'connected');
  check(
    connects.length >= 2,
    `${a.name} never reconnected (${noticed}): the messages came over the connection opened `
      + 'before going offline, so the resume was not tested',
    summarize(evs),
  );
  const last = connects[connects.length - 1];
  check(last.resumed, `${a.name} reconnected to a NEW session: the server forgot it within seconds`, summarize(evs));
  const drops = eventsOf(evs, 'disconnected').length;
  return `${noticed}; ${whileOffline - before.length} of ${total - before.length} meanwhile-messages `
    + `seen while offline; ${drops} disconnect(s), then resumed; ${messages.length}/${total} delivered `
    + `exactly once in order, ${gaps.length} gap event(s)`;
}

function secs(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Messages go up by one, except right after a gap event that reports the hole. */
function checkContiguousOrGap(messages, gaps, who) {
  if (gaps.length === 0) {
    checkContiguous(messages, who);
    return;
  }
  for (let i = 1; i < messages.length; i += 1) {
    const prev = messages[i - 1].seq;
    const next = messages[i].seq;
    if (next === prev + 1) continue;
    const reported = gaps.some((g) => g.from === prev + 1 && g.to === next - 1);
    check(reported, `${who}: seq ${prev} is followed by ${next} with no gap event for the hole`, gaps);
  }
}

// ---------------------------------------------------------------------------------------------
// Server restart.

/** The server is killed (SIGKILL) and started again on the same ports while a WebSocket, an
 *  SSE and a WebTransport client are subscribed, and the WebSocket client publishes while it is down. */
async function serverRestart(ctx) {
  const channel = 'room:restart';
  const tab = await open(ctx, 'restart', 'server restart');
  await call(tab, 'ws', 'ws', [JSON_PROTOCOL]);
  await call(tab, 'sse', 'sse');
  await call(tab, 'wt', 'wt', JSON_PROTOCOL);
  const clients = ['ws', 'sse', 'wt'];
  for (const c of clients) await call(tab, 'subscribe', c, channel);
  for (const c of clients) await subscribed(ctx, tab, c, channel);

  const before = payloads('before-restart', 3);
  await serverPublishAll(ctx.server, channel, before);
  for (const c of clients) await received(ctx, tab, c, channel, before.length);
  const mark = {};
  for (const c of clients) mark[c] = (await events(tab, c)).length;

  await ctx.server.kill();
  for (const c of clients) {
    await until(
      `${c} client to notice the server is gone`,
      () => events(tab, c),
      (evs) => eventsOf(evs.slice(mark[c]), 'disconnected').length > 0,
      20000,
    );
  }
  // Published while no server runs: queued by the client, to be sent once it is back.
  const queued = payloads('queued-while-down', 2);
  await publishAll(tab, 'ws', channel, queued);
  await screenshot(ctx, tab, 'restart-server-down');
  await ctx.server.start();

  const after = {};
  for (const c of clients) {
    const evs = await untilClient(
      ctx, tab, c,
      'a session on the restarted server and a new subscription',
      (e) => {
        const later = e.slice(mark[c]);
        return eventsOf(later, 'connected').length > 0 && eventsOf(later, 'subscribed', channel).length > 0;
      },
      20000,
    );
    after[c] = evs;
  }
  // The WebSocket client's queued publishes reach the new server: it receives them itself.
  await untilClient(
    ctx, tab, 'ws',
    'the publishes queued while the server was down to come back to their publisher',
    (e) => queued.every((q) => messagesOf(e.slice(mark.ws), channel).some((m) => m.payload === q)),
    20000,
  );
  const later = payloads('after-restart', 2);
  await serverPublishAll(ctx.server, channel, later);
  const notes = [];
  for (const c of clients) {
    const evs = await untilClient(
      ctx, tab, c,
      'what the restarted server publishes',
      (e) => later.every((p) => messagesOf(e, channel).some((m) => m.payload === p)),
      20000,
    );
    const since = evs.slice(mark[c]);
    const sessions = eventsOf(since, 'connected');
    const resets = eventsOf(since, 'reset', channel);
    const gaps = eventsOf(since, 'gap', channel);
    const newMessages = messagesOf(since, channel);
    const got = newMessages.map((m) => m.payload);
    // What the protocol promises: nothing is silently lost. Messages published after the
    // client subscribed again are delivered once each, in order; the queued ones were
    // delivered, or the loss is reported (a channel reset or a gap).
    checkSubsequence(newMessages, later, `${c} client`);
    const missedQueued = queued.filter((q) => !got.includes(q));
    check(
      missedQueued.length === 0 || resets.length > 0 || gaps.length > 0,
      `${c} client: ${missedQueued.length} queued message(s) neither delivered nor reported`,
      summarize(since),
    );
    if (c === 'ws') checkSubsequence(newMessages, queued, 'ws client (its own publishes)');
    checkContiguousOrGap(newMessages, gaps, `${c} client`);
    check(
      sessions.every((s) => !s.resumed),
      `${c} client: the restarted server cannot resume a session it never had`,
      sessions,
    );
    // The client had seen seq 3 of the old numbering; the new server starts below it.
    check(
      resets.length > 0 || gaps.length > 0,
      `${c} client: the new numbering of ${channel} restarted below what the client had seen, `
        + 'and no channel reset or gap was reported',
      summarize(since),
    );
    const shown = since.filter((e) => e.kind !== 'publishAcked' && (e.channel ?? channel) === channel);
    notes.push(`${c}: ${summarize(shown)}`);
  }
  await screenshot(ctx, tab, 'restart-after');
  return notes.join(' | ');
}

// ---------------------------------------------------------------------------------------------
// WebTransport: a killed session is resumed.

/** The server closes the page's WebTransport session at once (as a dropped network would)
 *  while the page is subscribed; the server publishes meanwhile and the page publishes while
 *  it is disconnected. The client reconnects, RESUMES its session (the hub kept it) and has
 *  every message exactly once, in order, with no gap, and its publishes acknowledged. */
async function wtKilledSession(ctx) {
  const channel = 'room:wt-resume';
  const tab = await open(ctx, 'wt-resume', 'WebTransport: killed session resumed');
  await call(tab, 'wt', 'client', BIN_PROTOCOL);
  await call(tab, 'subscribe', 'client', channel);
  await subscribed(ctx, tab, 'client', channel);
  const before = payloads('before-kill', 3);
  await serverPublishAll(ctx.server, channel, before);
  await received(ctx, tab, 'client', channel, before.length);
  const mark = (await events(tab, 'client')).length;

  const killed = await ctx.server.killWebTransportSessions();
  check(killed >= 1, 'no WebTransport session to kill', killed);
  // Published right after the kill: in flight on the dead session, or after it; the resume
  // must bring them either way.
  const meanwhile = payloads('server-meanwhile', 3);
  await serverPublishAll(ctx.server, channel, meanwhile);
  await until(
    'the client to notice its session was killed',
    () => events(tab, 'client'),
    (evs) => eventsOf(evs.slice(mark), 'disconnected').length > 0,
    15000,
  );
  const fromPage = payloads('page-while-down', 2);
  await publishAll(tab, 'client', channel, fromPage);
  const total = before.length + meanwhile.length + fromPage.length;
  const evs = await untilClient(
    ctx, tab, 'client',
    'a resumed session and every message',
    (e) => eventsOf(e.slice(mark), 'connected').length > 0 && messagesOf(e, channel).length >= total,
    30000,
  );
  const messages = messagesOf(evs, channel);
  const since = evs.slice(mark);
  const connects = eventsOf(since, 'connected');
  check(connects.every((c) => c.resumed), 'the client reconnected to a NEW session: the resume failed', summarize(since));
  check(eventsOf(evs, 'gap').length === 0 && eventsOf(evs, 'reset').length === 0, 'a resume must lose nothing', summarize(evs));
  checkExactly(messages.slice(0, before.length + meanwhile.length), [...before, ...meanwhile], 'wt client');
  checkSubsequence(messages, fromPage, 'wt client (its own publishes)');
  checkContiguous(messages, 'wt client');
  check(messages.length === total, `expected ${total} messages, got ${messages.length}`, summarize(evs));
  await until(
    'the publishes made while down to be acknowledged',
    () => events(tab, 'client'),
    (e) => eventsOf(e, 'publishAcked').some((a) => a.seq >= fromPage.length),
  );
  await screenshot(ctx, tab, 'wt-killed-session-resumed');
  const drop = eventsOf(since, 'disconnected')[0];
  return `session killed (${killed}), noticed: "${drop.reason}"; resumed (${connects.length} reconnect); `
    + `${messages.length}/${total} messages exactly once in order, no gap; publishes made while down acked`;
}

// ---------------------------------------------------------------------------------------------
// Two contexts in one room.

/** Two browser contexts (JSON and binary codec) and the server publish into one room at the
 *  same time; both see all 25 messages exactly once, in the same order. */
async function twoContexts(ctx) {
  const channel = 'room:pair';
  const a = await open(ctx, 'pair-a', 'two contexts: A (JSON codec)');
  const b = await open(ctx, 'pair-b', 'two contexts: B (binary codec)');
  await call(a, 'ws', 'client', [JSON_PROTOCOL]);
  await call(b, 'ws', 'client', [BIN_PROTOCOL]);
  for (const tab of [a, b]) await call(tab, 'subscribe', 'client', channel);
  for (const tab of [a, b]) await subscribed(ctx, tab, 'client', channel);

  const fromA = payloads('a', 10);
  const fromB = payloads('b', 10);
  const fromServer = payloads('server', 5);
  await Promise.all([
    publishAll(a, 'client', channel, fromA),
    publishAll(b, 'client', channel, fromB),
    serverPublishAll(ctx.server, channel, fromServer),
  ]);
  const total = fromA.length + fromB.length + fromServer.length;
  const seen = {};
  for (const tab of [a, b]) {
    const { messages } = await received(ctx, tab, 'client', channel, total);
    // Nothing more may follow (a late duplicate would).
    const evs = await events(tab, 'client');
    check(messagesOf(evs, channel).length === total, `${tab.name}: more than ${total} messages`, summarize(evs));
    checkContiguous(messages, tab.name);
    for (const sent of [fromA, fromB, fromServer]) checkSubsequence(messages, sent, tab.name);
    seen[tab.name] = messages.map((m) => [m.seq, m.payload]);
  }
  check(
    JSON.stringify(seen['pair-a']) === JSON.stringify(seen['pair-b']),
    'the two contexts saw different orders',
    seen,
  );
  await screenshot(ctx, a, 'two-contexts-a');
  await screenshot(ctx, b, 'two-contexts-b');
  const order = seen['pair-a'].map(([, p]) => JSON.parse(p).text[0]).join('');
  return `${total} messages each, same order (${order})`;
}

// ---------------------------------------------------------------------------------------------
// Bad input.

/** A raw WebSocket of the page sends one frame larger than the server's limit: that connection
 *  is closed, the server keeps serving the session already open and a fresh client. */
async function oversized(ctx) {
  const channel = 'room:oversized-survivors';
  const tab = await open(ctx, 'oversized', 'oversized frame from page JS');
  await call(tab, 'ws', 'bystander', [JSON_PROTOCOL]);
  await call(tab, 'subscribe', 'bystander', channel);
  await subscribed(ctx, tab, 'bystander', channel);

  const result = await call(tab, 'oversized');
  check(result.maxFrame > 0 && result.sent === result.maxFrame + 1, 'the frame was not max_frame + 1 bytes', result);
  // Over the frame limit: that publish is refused by name, the session goes on.
  check(result.refused && result.refused.code === 'frame_too_large' && result.refused.seq === 1,
    'the oversized publish was not refused by name', result);
  check(result.acked >= 2, 'the publish after the refused one was not acknowledged', result);
  // Past the WebSocket limit: 1009 "message too big" (RFC 6455 7.4.1).
  check(result.code === 1009, `expected close code 1009 for the huge frame, got ${result.code}`, result);
  check(ctx.server.running(), 'the server process died after the oversized frame', ctx.server.unexpectedExits);

  const fresh = await open(ctx, 'after-oversized', 'a fresh client after the oversized frame');
  await call(fresh, 'ws', 'fresh', [JSON_PROTOCOL]);
  await call(fresh, 'subscribe', 'fresh', channel);
  await subscribed(ctx, fresh, 'fresh', channel);
  const hello = payloads('still-serving', 1);
  await publishAll(fresh, 'fresh', channel, hello);
  await received(ctx, fresh, 'fresh', channel, 1);
  const { evs } = await received(ctx, tab, 'bystander', channel, 1);
  check(eventsOf(evs, 'disconnected').length === 0, 'the bystander session was disturbed', summarize(evs));
  await screenshot(ctx, fresh, 'oversized-fresh-client');
  return `publish of ${result.sent} bytes (max_frame ${result.maxFrame}) refused by name, the next acked; `
    + `${result.huge} bytes closed with ${result.code} "${result.reason}"; bystander and fresh client still round-trip`;
}

// ---------------------------------------------------------------------------------------------
// The chat example's page (the protocol's plain-JS reference client).

/** A publish over the server's limit on the chat page: refused at once with a MessageTooLarge
 *  error and an inline notice (never queued); a poison publish put straight into the page
 *  client's queue (past that check) is refused by the server by name once, reported once and
 *  dropped; messages typed afterwards are delivered; the connection never drops meanwhile. */
async function chatPageRefusals(ctx, transport) {
  const query = { sse: '?transport=sse', wt: '?transport=webtransport' }[transport] ?? '';
  const tab = await ctx.browser.openChatPage(ctx.server.url, `chat-${transport}`, query);
  const { page } = tab;
  await page.evaluate(() => {
    window.downs = 0;
    const status = client.on.status;
    client.on.status = (state, ...rest) => {
      if (state === 'down') window.downs += 1;
      status(state, ...rest);
    };
  });
  const local = await page.evaluate(() => {
    const big = { text: 'x'.repeat(client.maxFrame), from: 'tester' };
    // The page's own publishes (its join announcement) may still await their
    // ack: count only what the oversized publish would add.
    const before = client.unacked.length;
    let error = null;
    try { client.publish('room:lobby', big); } catch (e) { error = { name: e.name, size: e.size, limit: e.limit }; }
    const shown = publishOrWarn('room:lobby', big);
    return { error, shown, queued: client.unacked.length - before };
  });
  check(local.error && local.error.name === 'MessageTooLarge' && local.error.size > local.error.limit,
    'an oversized publish on the chat page must throw MessageTooLarge', local);
  check(local.shown === false && local.queued === 0, 'the page must show it inline and queue nothing', local);
  await until('the inline "not sent" notice', () => page.evaluate(() => [...document.querySelectorAll('#log .notice.warn')].some((li) => li.textContent.startsWith('not sent:'))), (ok) => ok);
  // A poison publish past the client's own check: the server must refuse it by name.
  await page.evaluate(() => {
    const p = { seq: client.nextPublish++, channel: 'room:lobby', data: { text: 'y'.repeat(client.maxFrame), from: 'tester' } };
    client.unacked.push(p);
    client.send(publishFrame(p));
  });
  await until('the server refusing the poison publish by name', () => page.evaluate(() => client.unacked.length === 0
      && [...document.querySelectorAll('#log .notice.warn')].some((li) => li.textContent.startsWith('not delivered (frame_too_large)'))), (ok) => ok, 15000);
  await page.fill('#input', `after the refusal over ${transport}`);
  await page.click('#send-button');
  await until('the message typed afterwards in the log', () => page.evaluate((t) => [...document.querySelectorAll('#log .text')].some((s) => s.textContent === t), `after the refusal over ${transport}`), (ok) => ok, 15000);
  const after = await page.evaluate(() => ({
    downs: window.downs,
    refusals: [...document.querySelectorAll('#log .notice.warn')].filter((li) => li.textContent.startsWith('not delivered')).length,
    unacked: client.unacked.length,
  }));
  check(after.downs === 0, 'the chat page reconnected (a refused publish must not cost the connection)', after);
  check(after.refusals === 1, 'the refusal must be reported exactly once', after);
  const shot = join(ctx.out, `chat-refusals-${transport}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  ctx.screenshots.push(shot);
  return `MessageTooLarge shown inline; poison refused by name once; later message delivered; ${after.downs} reconnects`;
}

/** The chat page fills its room list from `chat.rooms`, called over RPC on its own connection
 *  (docs/rpc-schema/chat.md), and its `call` API answers typed errors. */
async function chatPageRooms(ctx, transport) {
  const query = { sse: '?transport=sse', wt: '?transport=webtransport' }[transport] ?? '';
  const tab = await ctx.browser.openChatPage(ctx.server.url, `chat-rooms-${transport}`, query);
  const { page } = tab;
  const names = await until('the room list from chat.rooms',
    () => page.evaluate(() => [...document.querySelectorAll('#rooms option')].map((o) => o.value)),
    (v) => v.length > 0, 15000);
  check(JSON.stringify(names) === JSON.stringify(['lobby', 'random', 'help']),
    'the page must list the rooms chat.rooms returns', names);
  if (transport === 'wt') {
    const via = await page.evaluate(() => ({ wt: client.ws instanceof WtSocket, transport: client.transport }));
    check(via.wt && via.transport === 'wt', 'the plain page must run over its WebTransport socket', via);
  }
  const online = await page.evaluate(() => client.call('chat.online'));
  check(Number.isInteger(online) && online >= 1, 'chat.online must count this page', online);
  const unknown = await page.evaluate(() => client.call('chat.nope').then(() => null, (e) => e.code));
  check(unknown === 'unknown_method', 'an unknown method must fail with unknown_method', unknown);
  return `rooms [${names.join(', ')}] over RPC; chat.online = ${online}; chat.nope → ${unknown}`;
}

export const SCENARIOS = [
  { name: 'ws-json-roundtrip', run: (ctx) => roundTrip(ctx, 'json') },
  { name: 'ws-binary-roundtrip', run: (ctx) => roundTrip(ctx, 'bin') },
  { name: 'sse-roundtrip', run: (ctx) => roundTrip(ctx, 'sse') },
  { name: 'wt-json-roundtrip', run: (ctx) => roundTrip(ctx, 'wt-json') },
  { name: 'wt-binary-roundtrip', run: (ctx) => roundTrip(ctx, 'wt-bin') },
  { name: 'wt-killed-session-resume', run: wtKilledSession },
  {
    name: 'wss-roundtrip',
    run: (ctx) => roundTrip(ctx, 'wss'),
    expectedConsole: [{
      pattern: /^WebSocket connection to 'wss:\/\/127\.0\.0\.1:\d+\/ws' failed: .*ERR_CERT_AUTHORITY_INVALID/,
      why: 'the check that a certificate Chromium does not pin is refused',
    }],
  },
  {
    name: 'ws-offline-resume',
    run: (ctx) => offline(ctx, 'ws'),
    expectedConsole: [{ pattern: CONNECT_FAILED, why: 'reconnect attempts while the page is offline' }],
  },
  {
    name: 'sse-offline-resume',
    run: (ctx) => offline(ctx, 'sse'),
    expectedConsole: [{ pattern: CONNECT_FAILED, why: 'reconnect attempts while the page is offline' }],
  },
  {
    name: 'server-restart',
    run: serverRestart,
    expectedConsole: [{ pattern: CONNECT_FAILED, why: 'reconnect attempts while the server is down' }],
  },
  { name: 'two-contexts-one-room', run: twoContexts },
  { name: 'oversized-frame', run: oversized },
  { name: 'chat-page-refusals-ws', run: (ctx) => chatPageRefusals(ctx, 'ws') },
  { name: 'chat-page-refusals-sse', run: (ctx) => chatPageRefusals(ctx, 'sse') },
  { name: 'chat-page-rooms-rpc-ws', run: (ctx) => chatPageRooms(ctx, 'ws') },
  { name: 'chat-page-rooms-rpc-sse', run: (ctx) => chatPageRooms(ctx, 'sse') },
  { name: 'chat-page-refusals-wt', run: (ctx) => chatPageRefusals(ctx, 'wt') },
  { name: 'chat-page-rooms-rpc-wt', run: (ctx) => chatPageRooms(ctx, 'wt') },
];
