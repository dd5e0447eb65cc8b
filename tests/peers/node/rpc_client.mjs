// Node `ws` peer for RPC: plain JSON frames written from docs/protocol.md §9 and the exported schema of the methods only.
//
// Usage: node rpc_client.mjs URL SCHEMA.json   (env TIDINGS_NODE_MODULES)
//
// Reads the service's JSON Schema (`{Trait}Api::schema()` of a `#[rpc]` trait):
// the unary method `demo.add` and the server stream `demo.history`, their kinds
// and parameter names, from which it shapes each call's `data` (one parameter:
// the value itself; several: an array in `param_names` order). Then
// hello/welcome, the unary `call`, a call of an unknown method (typed error
// `unknown_method`), and the stream with a credit of 4: the client grants 4
// more after every 4 items, until `end`, checking every item against the
// item schema (required properties and their JSON types).
// Every step is a JSON line on stdout.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const emit = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));
const require = createRequire(join(process.env.TIDINGS_NODE_MODULES, '..', 'package.json'));
const WebSocket = require('ws');

const schema = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const method = (name, kind) => {
  const m = schema.methods.find((x) => x.name === name);
  if (!m) throw new Error(`the schema has no method ${name}`);
  if (m.kind !== kind) throw new Error(`${name} is ${m.kind}, not ${kind}`);
  return m;
};
// A call's `data` from the schema's parameter names: none → null, one → itself, more → array.
const data = (m, args) => {
  const values = m.param_names.map((n) => {
    if (!(n in args)) throw new Error(`no value for parameter ${n} of ${m.name}`);
    return args[n];
  });
  return values.length === 0 ? null : values.length === 1 ? values[0] : values;
};
const resolve = (s) => (s && s.$ref ? schema.$defs[s.$ref.split('/').pop()] : s);
const jsonType = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
const conforms = (value, s) => {
  const def = resolve(s);
  if (def.type === 'object') {
    if (jsonType(value) !== 'object') return false;
    for (const key of def.required || []) {
      if (!(key in value)) return false;
      const t = def.properties[key].type;
      if (t && t !== jsonType(value[key]) && !(t === 'number' && jsonType(value[key]) === 'integer')) return false;
    }
    return true;
  }
  return !def.type || def.type === jsonType(value);
};
const add = method('demo.add', 'unary');
const history = method('demo.history', 'server_stream');

const ws = new WebSocket(process.argv[2], 'tidings.v1.json');
const queue = [];
let waiting = null;
ws.on('message', (data) => {
  const frame = JSON.parse(data.toString());
  if (waiting) { const w = waiting; waiting = null; w(frame); } else { queue.push(frame); }
});
const recv = () => new Promise((resolve, reject) => {
  if (queue.length) return resolve(queue.shift());
  const t = setTimeout(() => reject(new Error('timeout waiting for a frame')), 10000);
  waiting = (f) => { clearTimeout(t); resolve(f); };
});
// Frames of other kinds (pings, acks) may come between: skip them.
async function recvRpc(call) {
  for (;;) {
    const f = await recv();
    if (f.type === 'ping') { ws.send(JSON.stringify({ type: 'pong', nonce: f.nonce })); continue; }
    if (f.call === call) return f;
  }
}

try {
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'hello', version: 1 }));
  emit('welcome', { frame: await recv() });

  ws.send(JSON.stringify({ type: 'call', call: 1, method: add.name, data: data(add, { a: 40, b: 2 }), deadline_ms: 5000 }));
  emit('reply', { frame: await recvRpc(1) });

  ws.send(JSON.stringify({ type: 'call', call: 2, method: 'no.such', data: null }));
  emit('unknown', { frame: await recvRpc(2) });

  ws.send(JSON.stringify({ type: 'call', call: 3, method: history.name, data: data(history, { n: 20 }), credit: 4 }));
  let items = 0, sinceCredit = 0, creditsSent = 0, last = null, maxOutstanding = 0, checked = 0;
  for (;;) {
    const f = await recvRpc(3);
    if (f.type === 'item') {
      items += 1; sinceCredit += 1; last = f.data;
      if (!conforms(f.data, history.item)) throw new Error('item does not match the schema: ' + JSON.stringify(f.data));
      checked += 1;
      maxOutstanding = Math.max(maxOutstanding, sinceCredit);
      if (sinceCredit === 4) {
        ws.send(JSON.stringify({ type: 'credit', call: 3, n: 4 }));
        creditsSent += 1; sinceCredit = 0;
      }
    } else if (f.type === 'end') {
      break;
    } else {
      throw new Error('unexpected frame ' + JSON.stringify(f));
    }
  }
  emit('stream', { items, last, credits_sent: creditsSent, max_outstanding: maxOutstanding, checked_against_schema: checked });
  ws.send(JSON.stringify({ type: 'close', code: 1000, reason: 'done' }));
  ws.close(1000);
  emit('closed');
} catch (e) {
  emit('failed', { error: String(e) });
  process.exit(1);
}
