// Node Yjs peer: edits one shared Y.Text through a y-websocket connection, with `yjs` and `y-protocols`.
//
// Usage: node yjs_client.mjs URL NAME EDITS EXPECT   (env TIDINGS_NODE_MODULES)
//
// Sends sync step 1 on open, answers the server's sync messages with
// y-protocols' own `readSyncMessage`, and sends every local change as an
// update. Makes EDITS insertions of `[NAME:i]` at random positions (inside one another too: markers are counted by their `[`) (a few
// milliseconds apart, so edits of the peers interleave), sets its awareness
// state, then waits until the text holds EXPECT markers in all and prints the
// final text as a JSON line: {"event":"final","text":...}.

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { emit, run } from './tidings_peer.mjs';

const modules = process.env.TIDINGS_NODE_MODULES;
if (!modules) throw new Error('TIDINGS_NODE_MODULES is not set');
const require = createRequire(join(modules, '..', 'package.json'));
const WebSocket = require('ws');
const Y = require('yjs');
const syncProtocol = require('y-protocols/sync');
const awarenessProtocol = require('y-protocols/awareness');
const encoding = require('lib0/encoding');
const decoding = require('lib0/decoding');

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;

run(async () => {
  const [url, name, editsArg, expectArg] = process.argv.slice(2);
  const edits = Number(editsArg);
  const expect = Number(expectArg);
  const doc = new Y.Doc();
  const text = doc.getText('t');
  const awareness = new awarenessProtocol.Awareness(doc);
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const send = (encoder) => ws.readyState === 1 && ws.send(encoding.toUint8Array(encoder));

  doc.on('update', (update, origin) => {
    if (origin === ws) return;
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, MSG_SYNC);
    syncProtocol.writeUpdate(e, update);
    send(e);
  });
  awareness.on('update', ({ added, updated, removed }, origin) => {
    if (origin === ws) return;
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, MSG_AWARENESS);
    encoding.writeVarUint8Array(
      e,
      awarenessProtocol.encodeAwarenessUpdate(awareness, added.concat(updated, removed)),
    );
    send(e);
  });
  let synced = false;
  ws.on('message', (data) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    const kind = decoding.readVarUint(decoder);
    if (kind === MSG_SYNC) {
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, MSG_SYNC);
      const step = syncProtocol.readSyncMessage(decoder, e, doc, ws);
      if (step === syncProtocol.messageYjsSyncStep2) synced = true;
      if (encoding.length(e) > 1) send(e);
    } else if (kind === MSG_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(awareness, decoding.readVarUint8Array(decoder), ws);
    }
  });
  let closed = null;
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, MSG_SYNC);
  syncProtocol.writeSyncStep1(e, doc);
  send(e);
  emit('open');
  awareness.setLocalState({ user: name });

  for (let i = 0; i < edits; i++) {
    const pos = Math.floor(Math.random() * (text.length + 1));
    text.insert(pos, `[${name}:${i}]`);
    await new Promise((r) => setTimeout(r, Math.random() * 4));
  }
  const deadline = Date.now() + 20000;
  const markers = () => text.toString().split('[').length - 1;
  while (!(synced && markers() >= expect)) {
    if (closed) throw new Error(`closed early: ${JSON.stringify(closed)}`);
    if (Date.now() > deadline) throw new Error(`only ${markers()} of ${expect} markers`);
    await new Promise((r) => setTimeout(r, 20));
  }
  emit('final', { text: text.toString(), peers: awareness.getStates().size });
  ws.close(1000);
});
