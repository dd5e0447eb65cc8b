// The chat example's Leptos front end (examples/chat-web), served by the chat binary itself:
// server-rendered at `/`, hydrated by its wasm bundle. What these scenarios check:
//
// * hydration adopts the server's HTML: the elements the server rendered are the ones on the
//   page afterwards, hydration adds or removes no node, the status shown while hydrating is the
//   server's (`idle`), the server counts no connection for having rendered the page, and the
//   page opens exactly one WebSocket;
// * console errors and warnings of these pages (Leptos reports hydration mismatches there) and
//   uncaught page errors: zero;
// * two browser contexts in one room (and the plain-JS reference page) see every message
//   exactly once, in the same order;
// * switching rooms unsubscribes the old room, and unmounting the chat component closes its
//   WebSocket (the page's own record and the server's connection count agree).

import { join } from 'node:path';

import { check, checkContiguous, until } from './check.mjs';

/** Runs in every Leptos page before its own scripts: records each WebSocket the page opens
 *  (URL, when, close code) and what the hydration pass did to the server's DOM. */
function tracker() {
  const t = { sockets: [], hydration: null, interactive: null, statusShown: [] };
  window.__tidings = t;
  const Native = window.WebSocket;
  function Tracked(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    const entry = {
      url: String(url),
      openedAt: performance.now(),
      closed: null,
    };
    t.sockets.push(entry);
    ws.addEventListener('close', (e) => {
      entry.closed = { code: e.code, reason: e.reason, wasClean: e.wasClean, at: performance.now() };
    });
    return ws;
  }
  Tracked.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Tracked[k] = Native[k];
  window.WebSocket = Tracked;

  // Parsing is over ("interactive") before module scripts run: what the server rendered.
  document.addEventListener('readystatechange', () => {
    if (document.readyState !== 'interactive' || t.interactive) return;
    const main = document.getElementById('chat');
    t.interactive = {
      main,
      status: document.getElementById('status')?.textContent ?? null,
      elements: document.body.getElementsByTagName('*').length,
    };
    // Attributes hydration set: tachys writes some attribute values again on hydration (the
    // same value: not a change), so each is kept with its old and current value.
    const changes = { added: 0, removed: 0, texts: 0, attributes: [] };
    // Mutation records come in order: everything before `data-hydrated` appears on <body>
    // (set right after `hydrate_body` returns) is the hydration pass.
    const observer = new MutationObserver((records) => {
      for (const r of records) {
        if (t.hydration) return;
        if (r.type === 'attributes' && r.target === document.body && r.attributeName === 'data-hydrated') {
          t.hydration = {
            ...changes,
            sameMain: document.getElementById('chat') === main,
            elements: document.body.getElementsByTagName('*').length,
            at: performance.now(),
          };
          observer.disconnect();
          return;
        }
        if (r.type === 'childList') {
          changes.added += r.addedNodes.length;
          changes.removed += r.removedNodes.length;
        } else if (r.type === 'characterData') {
          changes.texts += 1;
        } else if (r.type === 'attributes') {
          changes.attributes.push({ name: r.attributeName, old: r.oldValue, now: r.target.getAttribute(r.attributeName) });
        }
      }
    });
    // Every text the status badge showed, in order: a hook that wrote its signal during the
    // hydration pass would leave the server's text on the page while the client believes
    // another (Leptos does not patch text on hydration), and that state would never be shown.
    const statusObserver = new MutationObserver((records) => {
      for (const r of records) {
        if (r.target.parentElement?.id === 'status') t.statusShown.push(r.oldValue);
      }
    });
    statusObserver.observe(document.body, { subtree: true, characterData: true, characterDataOldValue: true });
    observer.observe(document.body, {
      subtree: true, childList: true, characterData: true, attributes: true, attributeOldValue: true,
    });
  });
}

/** Opens `/` of the chat server in a new context; resolves once the page is hydrated and its
 *  connection is open. */
async function openChat(ctx, name, { beforeLoad, query = '' } = {}) {
  const context = await ctx.browser.browser.newContext({ viewport: { width: 900, height: 700 } });
  ctx.browser.contexts.push(context);
  const page = await context.newPage();
  ctx.browser.watch(page, name, { warnings: true });
  await page.addInitScript(tracker);
  if (beforeLoad) beforeLoad(page);
  await page.goto(`${ctx.chat.url}/${query}`);
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true', null, { timeout: 20000, polling: 50 });
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'open', null, { timeout: 15000, polling: 50 });
  return { context, page, name };
}

/** The messages of the page's log: `{ seq, from, text }` (join lines have `join: true`). */
function log(tab) {
  return tab.page.evaluate(() => [...document.querySelectorAll('#log li[data-seq]')].map((li) => ({
    seq: Number(li.dataset.seq),
    from: li.querySelector('.from')?.textContent ?? null,
    text: li.querySelector('.text')?.textContent ?? li.textContent,
    join: li.classList.contains('notice'),
  })));
}

/** Types `text` into the send box and submits it (the way a person sends). */
async function say(tab, text) {
  await tab.page.fill('#input', text);
  await tab.page.press('#input', 'Enter');
}

async function setName(tab, name) {
  await tab.page.fill('#name', name);
}

async function waitForText(tab, text, timeoutMs = 15000) {
  return until(`${tab.name} to show ${JSON.stringify(text)}`, () => log(tab), (l) => l.some((m) => m.text === text), timeoutMs);
}

async function shot(ctx, tab, label) {
  const path = join(ctx.out, `${label}.png`);
  await tab.page.screenshot({ path, fullPage: true });
  ctx.screenshots.push(path);
}

function tracked(tab) {
  return tab.page.evaluate(() => window.__tidings.sockets.map((s) => ({ ...s })));
}

// ---------------------------------------------------------------------------------------------

/** The server's HTML is the app, rendered idle; hydration adopts it without touching a node. */
async function ssrHydration(ctx) {
  const response = await fetch(`${ctx.chat.url}/`);
  const html = await response.text();
  check(response.ok, `GET / answered ${response.status}`);
  check(html.includes('<body><main id="chat"'), 'the server did not render the app as the body\'s first child', html.slice(0, 400));
  check(/id="status"[^>]*>idle</.test(html), 'the server must render the status as idle (SSR connects nothing)', html);
  for (const room of ['lobby', 'random', 'help']) check(html.includes(`data-room="${room}"`), `room ${room} not rendered`, html);
  // Rendering the page opened no connection on the server's side either.
  await until('no connection on the server', () => ctx.chat.online(), (n) => n === 0);

  const tab = await openChat(ctx, 'leptos-hydration');
  const { interactive, hydration, sockets } = await tab.page.evaluate(() => ({
    interactive: { ...window.__tidings.interactive, main: undefined },
    hydration: window.__tidings.hydration,
    sockets: window.__tidings.sockets,
  }));
  check(hydration !== null, 'the hydration pass was not observed', { interactive, hydration });
  check(interactive.status === 'idle', 'the page as parsed must show the server\'s status (idle)', interactive);
  check(hydration.sameMain, 'hydration replaced the server-rendered <main> instead of adopting it', hydration);
  check(hydration.added === 0 && hydration.removed === 0 && hydration.texts === 0,
    'hydration changed the server\'s DOM (a mismatch patched up or a re-render)', hydration);
  check(hydration.elements === interactive.elements, 'element count changed during hydration', { interactive, hydration });
  // No text changed while hydrating (texts === 0 above): the status shown when hydration ended
  // is still the server's, so no hook wrote a signal during the hydration pass.
  const changed = hydration.attributes.filter((a) => a.old !== a.now);
  check(changed.length === 0, 'hydration changed attribute values the server rendered', hydration.attributes);
  check(sockets.length === 1, 'expected exactly one WebSocket', sockets);
  check(sockets.every((s) => s.url.endsWith('/ws')), 'unexpected WebSocket URL', sockets);
  // idle (server) → connecting (the first write, after hydration) → open.
  const shown = await tab.page.evaluate(() => [...window.__tidings.statusShown, document.getElementById('status').textContent]);
  check(JSON.stringify(shown) === JSON.stringify(['idle', 'connecting', 'open']),
    'the status badge must show every state the client went through, from the server\'s idle on', shown);
  const online = await until('the server to count the page\'s connection', () => ctx.chat.online(), (n) => n === 1);
  const errors = ctx.browser.consoleErrors.filter((e) => e.page === tab.name);
  check(errors.length === 0, 'console errors or warnings on the hydrated page', errors);
  await shot(ctx, tab, 'leptos-hydrated');
  return `SSR status idle, then shown ${shown.join(' → ')}; hydration adopted ${interactive.elements} elements (0 added, 0 removed, 0 text or `
    + `attribute changes; ${hydration.attributes.length} attributes rewritten with the same value); `
    + `1 WebSocket; server counts ${online} connection(s); 0 console errors or warnings`;
}

/** Two Leptos pages and the plain-JS reference page chat in one room at the same time: every
 *  message is shown once, in the same order, on both Leptos pages. */
async function twoContexts(ctx) {
  const a = await openChat(ctx, 'leptos-a');
  const b = await openChat(ctx, 'leptos-b');
  await setName(a, 'alice');
  await setName(b, 'bob');
  // A page sees its own message only once its subscription is live (the client subscribes
  // before it publishes, on one connection); after that it misses nothing.
  await say(a, 'ready-a');
  await waitForText(a, 'ready-a');
  await say(b, 'ready-b');
  await waitForText(b, 'ready-b');
  await waitForText(a, 'ready-b');

  const plain = await ctx.browser.openChatPage(ctx.chat.url, 'plain-js', '', '/plain');
  await plain.page.fill('#name', 'carol');
  const n = 10;
  const fromA = Array.from({ length: n }, (_, i) => `a-${i + 1}`);
  const fromB = Array.from({ length: n }, (_, i) => `b-${i + 1}`);
  const fromPlain = Array.from({ length: 5 }, (_, i) => `js-${i + 1}`);
  const sendAll = async (tab, texts) => { for (const t of texts) await say(tab, t); };
  const sendPlain = async () => {
    for (const t of fromPlain) {
      await plain.page.fill('#input', t);
      await plain.page.click('#send-button');
    }
  };
  await Promise.all([sendAll(a, fromA), sendAll(b, fromB), sendPlain()]);
  const sent = [...fromA, ...fromB, ...fromPlain];
  const seen = {};
  for (const tab of [a, b]) {
    const all = await until(`${tab.name} to show all ${sent.length} messages`, () => log(tab),
      (l) => sent.every((t) => l.some((m) => m.text === t)), 20000);
    const start = all.findIndex((m) => m.text === 'ready-b');
    const after = all.slice(start);
    checkContiguous(after, tab.name);
    for (const [who, texts] of [['alice', fromA], ['bob', fromB], ['carol', fromPlain]]) {
      const mine = after.filter((m) => texts.includes(m.text));
      check(JSON.stringify(mine.map((m) => m.text)) === JSON.stringify(texts),
        `${tab.name}: ${who}'s messages not each shown once in the order sent`, after.map((m) => m.text));
      check(mine.every((m) => m.from === who), `${tab.name}: wrong sender shown`, mine);
    }
    seen[tab.name] = after.map((m) => `${m.seq}:${m.text}`);
  }
  check(JSON.stringify(seen['leptos-a']) === JSON.stringify(seen['leptos-b']), 'the two contexts show different orders', seen);
  const mine = await a.page.evaluate(() => document.querySelectorAll('#log li.mine').length);
  check(mine === fromA.length + 1, `leptos-a should mark its ${fromA.length + 1} own messages`, mine);
  await shot(ctx, a, 'leptos-chat-a');
  await shot(ctx, b, 'leptos-chat-b');
  await shot(ctx, plain, 'leptos-chat-plain-js');
  const order = seen['leptos-a'].map((s) => s.split(':')[1][0]).join('');
  return `${seen['leptos-a'].length} messages each after both were live, same order, each once (${order})`;
}

/** Switching rooms unsubscribes the old one; "Leave" unmounts the chat component and its
 *  WebSocket closes (the page's record and the server's count); "Join" connects again. */
async function unmount(ctx) {
  const frames = [];
  const tab = await openChat(ctx, 'leptos-unmount', {
    beforeLoad: (page) => page.on('websocket', (ws) => ws.on('framesent', (f) => {
      if (typeof f.payload === 'string') frames.push(f.payload);
    })),
  });
  // Earlier scenarios' pages are closed: this page's is the one connection left.
  const base = await until('the server to serve this page only', () => ctx.chat.online(), (n) => n === 1);
  check((await tracked(tab)).length === 1, 'expected one WebSocket', await tracked(tab));

  // Rooms: a new `Room` component per room; the old one's cleanup unsubscribes.
  await tab.page.click('#rooms button[data-room="help"]');
  await until('an unsubscribe of room:lobby and a subscribe to room:help', async () => frames.map((f) => JSON.parse(f)),
    (fs) => fs.some((f) => f.type === 'unsubscribe' && f.channel === 'room:lobby')
      && fs.some((f) => f.type === 'subscribe' && f.channel === 'room:help'));
  await say(tab, 'in help');
  await waitForText(tab, 'in help');
  const helpLog = await log(tab);
  check(helpLog.length === 1, 'the new room\'s log must start empty', helpLog);

  await tab.page.click('#toggle');
  await tab.page.waitForSelector('#left');
  const closed = await until('the page\'s WebSocket to close', () => tracked(tab), (s) => s[0].closed !== null);
  // The client closes with 1000. `wasClean` is not required: now and then the server drops the
  // TCP connection right after the session's close frame, before the WebSocket closing
  // handshake completes (seen 1 run in ~20: code 1000, wasClean false); the server's count
  // below is what proves no connection is left.
  check(closed[0].closed.code === 1000, 'the WebSocket was not closed by the client with 1000', closed);
  const status = await tab.page.evaluate(() => document.getElementById('status'));
  check(status === null, 'the status badge must be gone with its component');
  const after = await until('the server to drop the connection', () => ctx.chat.online(), (n) => n === 0);

  await tab.page.click('#toggle');
  await tab.page.waitForFunction(() => document.getElementById('status')?.textContent === 'open', null, { timeout: 15000 });
  const sockets = await tracked(tab);
  check(sockets.length === 2 && sockets[1].closed === null, 'joining again must open one new WebSocket', sockets);
  const back = await until('the server to count the new connection', () => ctx.chat.online(), (n) => n === 1);
  await shot(ctx, tab, 'leptos-unmount-rejoined');
  return `room switch unsubscribed room:lobby; leave closed the WebSocket (1000, clean: ${closed[0].closed.wasClean}), server connections ${base} → ${after}; `
    + `join reopened one (${back})`;
}

/** One Leptos page over WebTransport (`?transport=webtransport`: HTTP/3 to the chat server's
 *  UDP port, its development certificate pinned by the SHA-256 it serves) and one over
 *  WebSocket chat in one room: both show every message once, in the same order; the
 *  WebTransport page opens no WebSocket. */
async function webTransportChat(ctx) {
  const wt = await openChat(ctx, 'leptos-wt', { query: '?transport=webtransport' });
  const ws = await openChat(ctx, 'leptos-ws');
  await setName(wt, 'erin');
  await setName(ws, 'frank');
  await say(wt, 'ready-wt');
  await waitForText(wt, 'ready-wt');
  await say(ws, 'ready-ws');
  await waitForText(ws, 'ready-ws');
  await waitForText(wt, 'ready-ws');
  const n = 10;
  const fromWt = Array.from({ length: n }, (_, i) => `wt-${i + 1}`);
  const fromWs = Array.from({ length: n }, (_, i) => `ws-${i + 1}`);
  const sendAll = async (tab, texts) => { for (const t of texts) await say(tab, t); };
  await Promise.all([sendAll(wt, fromWt), sendAll(ws, fromWs)]);
  const sent = [...fromWt, ...fromWs];
  const seen = {};
  for (const tab of [wt, ws]) {
    const all = await until(`${tab.name} to show all ${sent.length} messages`, () => log(tab),
      (l) => sent.every((t) => l.some((m) => m.text === t)), 20000);
    const after = all.slice(all.findIndex((m) => m.text === 'ready-ws'));
    checkContiguous(after, tab.name);
    for (const [who, texts] of [['erin', fromWt], ['frank', fromWs]]) {
      const mine = after.filter((m) => texts.includes(m.text));
      check(JSON.stringify(mine.map((m) => m.text)) === JSON.stringify(texts),
        `${tab.name}: ${who}'s messages not each shown once in the order sent`, after.map((m) => m.text));
    }
    seen[tab.name] = after.map((m) => `${m.seq}:${m.text}`);
  }
  check(JSON.stringify(seen['leptos-wt']) === JSON.stringify(seen['leptos-ws']), 'the two pages show different orders', seen);
  const sockets = { wt: await tracked(wt), ws: await tracked(ws) };
  check(sockets.wt.length === 0, 'the WebTransport page opened a WebSocket', sockets.wt);
  check(sockets.ws.length === 1, 'the WebSocket page must open one WebSocket', sockets.ws);
  const online = await ctx.chat.online();
  check(online >= 2, 'the chat server must count both pages\' connections', online);
  await shot(ctx, wt, 'leptos-chat-webtransport');
  return `${seen['leptos-wt'].length} messages on both pages, same order, each once; the ?transport=webtransport page `
    + `opened no WebSocket; server counts ${online} connections`;
}

/** What Chromium logs for a WebSocket that cannot connect while the chat server is down. */
const CONNECT_FAILED = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed: .*(ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET)/;

/** The chat server restarts (SIGTERM, then a new process on the same port, whose in-memory
 *  broker numbers the room from scratch): the status shows the drop and the reconnect, the
 *  room shows a notice that what it had is gone from the server, and chatting goes on. */
async function serverRestart(ctx, query = '') {
  const tab = await openChat(ctx, query ? 'leptos-restart-wt' : 'leptos-restart', { query });
  await setName(tab, 'dora');
  await say(tab, 'before the restart');
  await waitForText(tab, 'before the restart');
  const shownBefore = await tab.page.evaluate(() => window.__tidings.statusShown.length);
  await ctx.chat.restart();
  await tab.page.waitForFunction(() => document.getElementById('status')?.textContent === 'open'
    && window.__tidings.statusShown.length > 3, null, { timeout: 20000, polling: 50 });
  const shown = await tab.page.evaluate((from) => [...window.__tidings.statusShown.slice(from), document.getElementById('status').textContent], shownBefore);
  check(shown.includes('reconnecting') && shown.at(-1) === 'open', 'the status must show the drop and the reconnect', shown);
  const notices = await until('a notice that the room restarted', () => tab.page.evaluate(
    () => [...document.querySelectorAll('#notices li')].map((li) => li.textContent),
  ), (n) => n.length > 0);
  check(notices.length === 1 && /room restarted after #\d+/.test(notices[0]), 'expected one reset notice', notices);
  await say(tab, 'after the restart');
  const after = await waitForText(tab, 'after the restart');
  const mine = after.filter((m) => m.text.endsWith('the restart'));
  check(mine.length === 2 && mine[1].seq === 1, 'the new server numbers the room from 1 again', after);
  await shot(ctx, tab, query ? 'leptos-restart-wt' : 'leptos-restart');
  if (query) {
    const sockets = await tracked(tab);
    check(sockets.length === 0, 'the WebTransport page opened a WebSocket', sockets);
  }
  return `${query ? 'over WebTransport (the new server\'s new certificate pinned by its served hash): ' : ''}status ${shown.join(' → ')}; notice "${notices[0]}"; the next message is #${mine[1].seq} of the new numbering`;
}

export const LEPTOS_SCENARIOS = [
  { name: 'leptos-ssr-hydration', run: ssrHydration },
  { name: 'leptos-chat-two-contexts', run: twoContexts },
  { name: 'leptos-chat-unmount', run: unmount },
  {
    name: 'leptos-chat-server-restart',
    run: (ctx) => serverRestart(ctx),
    expectedConsole: [{ pattern: CONNECT_FAILED, why: 'reconnect attempts while the chat server restarts' }],
  },
  { name: 'leptos-chat-webtransport', run: webTransportChat },
  {
    name: 'leptos-chat-webtransport-restart',
    run: (ctx) => serverRestart(ctx, '?transport=webtransport'),
    expectedConsole: [{
      pattern: /^Failed to load resource: net::ERR_CONNECTION_REFUSED/,
      why: 'the client fetches the certificate hashes before each reconnect attempt while the chat server restarts',
    }],
  },
];
