// Node Yjs peer for the convergence property test: scripted edits of one document (text `t`, map `m`) through a reconnecting y-websocket connection, with `yjs` and `y-protocols`.
//
// Usage: node yjs_ops_client.mjs URL NAME NAMES OPS   (env TIDINGS_NODE_MODULES)
//   NAMES: comma-separated names of every peer editing the document
//   OPS:   JSON list of edits: ["ins", AT, STR] (insert STR at AT/1000 of the
//          text's length), ["del", AT, N] (delete up to N characters from
//          there), ["set", KEY, VAL] (map key to a string), ["wait", MS].
//
// On every (re)connect it sends sync step 1 and answers the server's sync
// messages with y-protocols' own `readSyncMessage`; each local transaction
// is sent as an update (dropped while offline: the next connection's sync
// step 2 carries it). Halfway through OPS it prints {"event":"half"} and
// waits for a line on stdin (the Rust test cuts the link then). After OPS it
// sets `done:NAME`, waits until the map holds `done:` for every name (it then
// has every update the server applied before those fences), prints
// {"event":"final","text":...,"map":{...}}, and stays connected until a
// second line on stdin; then prints {"event":"stopped","reconnects":N}.

import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { emit, run } from './tidings_peer.mjs';

const modules = process.env.TIDINGS_NODE_MODULES;
if (!modules) throw new Error('TIDINGS_NODE_MODULES is not set');
const require = createRequire(join(modules, '..', 'package.json'));
const WebSocket = require('ws');
const Y = require('yjs');
const syncProtocol = require('y-protocols/sync');
const encoding = require('lib0/encoding');
const decoding = require('lib0/decoding');

const MSG_SYNC = 0;
const DEADLINE_MS = Number(process.env.TIDINGS_PEER_DEADLINE_MS ?? 45000);

const lines = createInterface({ input: process.stdin });
const pending = [];
const waiting = [];
lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : pending.push(l)));
const nextLine = () =>
  new Promise((resolve) => (pending.length ? resolve(pending.shift()) : waiting.push(resolve)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

run(async () => {
  const [url, name, namesArg, opsArg] = process.argv.slice(2);
  const names = namesArg.split(',');
  const ops = JSON.parse(opsArg);
  const doc = new Y.Doc();
  const text = doc.getText('t');
  const map = doc.getMap('m');
  let ws = null;
  let synced = false;
  let reconnects = -1;
  let stopping = false;
  const REMOTE = Symbol('remote');

  const send = (encoder) => {
    if (ws && ws.readyState === 1) ws.send(encoding.toUint8Array(encoder));
  };
  doc.on('update', (update, origin) => {
    if (origin === REMOTE) return;
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, MSG_SYNC);
    syncProtocol.writeUpdate(e, update);
    send(e);
  });

  const connect = () => {
    reconnects += 1;
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    socket.on('open', () => {
      ws = socket;
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, MSG_SYNC);
      syncProtocol.writeSyncStep1(e, doc);
      send(e);
    });
    socket.on('message', (data) => {
      const decoder = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(decoder) !== MSG_SYNC) return;
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, MSG_SYNC);
      const step = syncProtocol.readSyncMessage(decoder, e, doc, REMOTE);
      if (step === syncProtocol.messageYjsSyncStep2) synced = true;
      if (encoding.length(e) > 1 && socket.readyState === 1) {
        socket.send(encoding.toUint8Array(e));
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (ws === socket) ws = null;
      if (!stopping) setTimeout(connect, 50);
    });
  };
  connect();

  const until = async (cond, what) => {
    const deadline = Date.now() + DEADLINE_MS;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`${name}: ${what} after ${DEADLINE_MS} ms`);
      await sleep(10);
    }
  };
  await until(() => synced, 'not synced');
  emit('open');
  const half = Math.floor(ops.length / 2);
  for (let i = 0; i < ops.length; i++) {
    if (i === half) {
      emit('half');
      await nextLine();
    }
    const op = ops[i];
    if (op[0] === 'wait') {
      await sleep(op[1]);
    } else if (op[0] === 'ins') {
      text.insert(Math.floor((op[1] * (text.length + 1)) / 1001), op[2]);
    } else if (op[0] === 'del') {
      const n = text.length;
      if (n > 0) {
        const start = Math.floor((op[1] * n) / 1001);
        const len = Math.min(n - start, op[2]);
        if (len > 0) text.delete(start, len);
      }
    } else if (op[0] === 'set') {
      map.set(op[1], op[2]);
    } else {
      throw new Error(`unknown op ${JSON.stringify(op)}`);
    }
  }
  map.set(`done:${name}`, '1');
  await until(() => names.every((n) => map.has(`done:${n}`)), `fences missing: ${JSON.stringify(map.toJSON())}`);
  emit('final', { text: text.toString(), map: map.toJSON() });
  await nextLine();
  emit('stopped', { reconnects });
  stopping = true;
  if (ws) ws.close(1000);
  lines.close();
});
