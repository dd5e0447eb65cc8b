// The chat example's collaborative editor (`/editor`): a textarea bound to the shared Y.Text of
// document `editor` on the tidings session (`use_synced`) and who is present (`use_presence`).
// What this scenario checks:
//
// * two browser contexts type into the one text at the same time; both end with the same text,
//   which holds every character each typed, in the order each typed them;
// * that text is the server's document, as an independent Yjs client reads it: a Node `yjs` +
//   `y-protocols` peer syncing the same document over the server's y-websocket endpoint
//   (`/yjs/editor`);
// * each page shows both editors as present, by the names they set.

import { createRequire } from 'node:module';
import { join } from 'node:path';

import { check, until } from './check.mjs';

/** `ws`, `yjs`, `y-protocols` and `lib0` from the node peers (`$TIDINGS_NODE_MODULES`). */
function loadYjs() {
  const require = createRequire(join(process.env.TIDINGS_NODE_MODULES, '..', 'package.json'));
  return {
    WebSocket: require('ws'),
    Y: require('yjs'),
    sync: require('y-protocols/sync'),
    encoding: require('lib0/encoding'),
    decoding: require('lib0/decoding'),
  };
}

/** The server's text of document `name`, read by a fresh Yjs client over y-websocket: it sends
 *  sync step 1 and resolves with the text once the server's step 2 is applied. */
function serverText(chatUrl, name, timeoutMs = 10000) {
  const { WebSocket, Y, sync, encoding, decoding } = loadYjs();
  const doc = new Y.Doc();
  const ws = new WebSocket(`${chatUrl.replace(/^http/, 'ws')}/yjs/${name}`);
  ws.binaryType = 'arraybuffer';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.close(); reject(new Error('no sync step 2 from /yjs')); }, timeoutMs);
    ws.on('open', () => {
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, 0);
      sync.writeSyncStep1(e, doc);
      ws.send(encoding.toUint8Array(e));
    });
    ws.on('message', (data) => {
      const d = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(d) !== 0) return;
      const reply = encoding.createEncoder();
      const kind = sync.readSyncMessage(d, reply, doc, null);
      if (kind === sync.messageYjsSyncStep2) {
        clearTimeout(timer);
        ws.close();
        resolve(doc.getText('t').toString());
      }
    });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Opens `/editor` in a new context; resolves once hydrated, connected and synced. */
async function openEditor(ctx, name) {
  const context = await ctx.browser.browser.newContext({ viewport: { width: 900, height: 600 } });
  ctx.browser.contexts.push(context);
  const page = await context.newPage();
  ctx.browser.watch(page, name, { warnings: true });
  await page.goto(`${ctx.chat.url}/editor`);
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true', null, { timeout: 20000, polling: 50 });
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'open'
    && document.getElementById('synced')?.dataset.synced === 'true', null, { timeout: 15000, polling: 50 });
  const me = await until(`${name}'s name`, () => page.evaluate(() => document.getElementById('me')?.dataset.name ?? ''), (n) => n.length > 0);
  return { context, page, name, me };
}

const value = (tab) => tab.page.evaluate(() => document.getElementById('text').value);
const present = (tab) => tab.page.evaluate(() => [...document.querySelectorAll('#present li')].map((li) => li.dataset.name));

/** Whether the characters of `typed` appear in `text` in order. */
function inOrder(text, typed) {
  let i = 0;
  for (const c of text) if (i < typed.length && c === typed[i]) i += 1;
  return i === typed.length;
}

async function shot(ctx, tab, label) {
  const path = join(ctx.out, `${label}.png`);
  await tab.page.screenshot({ path, fullPage: true });
  ctx.screenshots.push(path);
}

/** Two contexts type concurrently into one shared text. */
async function twoEditors(ctx) {
  const a = await openEditor(ctx, 'editor-a');
  const b = await openEditor(ctx, 'editor-b');
  const before = await value(a);
  const names = [a.me, b.me].sort();
  check(a.me !== b.me, 'the two editors must have different names', names);
  for (const tab of [a, b]) {
    await until(`${tab.name} to show both editors present`, () => present(tab),
      (p) => JSON.stringify([...p].sort()) === JSON.stringify(names));
  }
  const typedA = 'alpha beta gamma delta epsilon ';
  const typedB = 'ONE TWO THREE FOUR FIVE SIX ';
  await Promise.all([
    a.page.locator('#text').pressSequentially(typedA, { delay: 20 }),
    b.page.locator('#text').pressSequentially(typedB, { delay: 20 }),
  ]);
  const length = before.length + typedA.length + typedB.length;
  const [textA, textB] = await until('both pages to hold the same text with every character typed',
    () => Promise.all([value(a), value(b)]),
    ([x, y]) => x === y && x.length === length, 20000);
  check(inOrder(textA, typedA) && inOrder(textA, typedB),
    'each editor\'s characters must appear in the order typed', { textA, typedA, typedB });
  const onServer = await until('the server\'s document (read over /yjs/editor) to be the pages\' text',
    () => serverText(ctx.chat.url, 'editor'), (t) => t === textA);
  const errors = await Promise.all([a, b].map((t) => t.page.evaluate(() => document.querySelectorAll('#errors li').length)));
  check(errors.every((n) => n === 0), 'sync errors shown on a page', errors);
  await shot(ctx, a, 'editor-a');
  await shot(ctx, b, 'editor-b');
  return `${typedA.length} + ${typedB.length} characters typed at once in two contexts; both show the same `
    + `${onServer.length}-character text, equal to the server's document as a Node yjs client reads it on /yjs/editor; `
    + `present on both: ${names.join(', ')}`;
}

export const EDITOR_SCENARIOS = [
  { name: 'leptos-editor-two-contexts', run: twoEditors },
];
