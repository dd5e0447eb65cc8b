// Node `ws` peer for RPC: plain JSON frames written from docs/protocol.md §9 and the method list only.
//
// Usage: node rpc_client.mjs URL   (env TIDINGS_NODE_MODULES)
//
// hello/welcome, then a unary `call` of math.add, a call of an unknown method
// (typed error `unknown_method`), and the server stream chat.history with a
// credit of 4: the client grants 4 more after every 4 items, until `end`.
// Every step is a JSON line on stdout.

import { createRequire } from 'node:module';
import { join } from 'node:path';

const emit = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));
const require = createRequire(join(process.env.TIDINGS_NODE_MODULES, '..', 'package.json'));
const WebSocket = require('ws');

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

  ws.send(JSON.stringify({ type: 'call', call: 1, method: 'math.add', data: [40, 2], deadline_ms: 5000 }));
  emit('reply', { frame: await recvRpc(1) });

  ws.send(JSON.stringify({ type: 'call', call: 2, method: 'no.such', data: null }));
  emit('unknown', { frame: await recvRpc(2) });

  ws.send(JSON.stringify({ type: 'call', call: 3, method: 'chat.history', data: 20, credit: 4 }));
  let items = 0, sinceCredit = 0, creditsSent = 0, last = null, maxOutstanding = 0;
  for (;;) {
    const f = await recvRpc(3);
    if (f.type === 'item') {
      items += 1; sinceCredit += 1; last = f.data;
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
  emit('stream', { items, last, credits_sent: creditsSent, max_outstanding: maxOutstanding });
  ws.send(JSON.stringify({ type: 'close', code: 1000, reason: 'done' }));
  ws.close(1000);
  emit('closed');
} catch (e) {
  emit('failed', { error: String(e) });
  process.exit(1);
}
