// Node `ws` peer: joins a room, receives, acks, publishes, pings, closes.
//
// Usage: node room_client.mjs URL CHANNEL N   (env TIDINGS_NODE_MODULES)
//
// Same steps as tests/peers/python/room_client.py: hello/welcome, subscribe,
// N messages with cumulative acks, one publish (seq 1) until its publish_ack
// and its own message arrive, ping/pong, then a `close` frame and a WebSocket
// close 1000. Every step is a JSON line on stdout.

import { Peer, emit, loadWs, run } from './tidings_peer.mjs';

const ACK_EVERY = 10;
const PING_NONCE = 2424;
const PAYLOAD = { from: 'node', lib: 'ws', text: 'hello from node' };

run(async () => {
  const [url, channel, nArg] = process.argv.slice(2);
  const n = Number(nArg);
  const WebSocket = loadWs();
  const peer = await Peer.open(WebSocket, url, 'node');
  emit('open', { subprotocol: peer.ws.protocol });
  emit('welcome', { frame: await peer.hello() });
  emit('subscribed', { frame: await peer.subscribe(channel) });

  let received = 0;
  while (received < n) {
    const frame = await peer.recv();
    if (frame.type !== 'message') {
      emit('other', { frame });
      continue;
    }
    received += 1;
    emit('message', { frame });
    if (received % ACK_EVERY === 0 || received === n) {
      await peer.send({ type: 'ack', channel, seq: frame.seq });
      emit('ack_sent', { seq: frame.seq });
    }
  }

  await peer.send({ type: 'publish', channel, seq: 1, data: PAYLOAD });
  emit('publish_sent', { seq: 1, data: PAYLOAD });
  let gotAck = false;
  let gotOwn = false;
  while (!(gotAck && gotOwn)) {
    const frame = await peer.recv();
    if (frame.type === 'publish_ack') {
      gotAck = true;
      emit('publish_ack', { frame });
    } else if (frame.type === 'message' && JSON.stringify(frame.data) === JSON.stringify(PAYLOAD)) {
      gotOwn = true;
      emit('own_message', { frame });
    } else {
      emit('other', { frame });
    }
  }

  await peer.send({ type: 'ping', nonce: PING_NONCE });
  emit('pong', { frame: await peer.recvType('pong', (f) => emit('other', { frame: f })) });

  await peer.send({ type: 'close', code: 1000, reason: 'node done' });
  emit('close_reply', { frame: await peer.recvType('close', (f) => emit('other', { frame: f })) });
  emit('closed', await peer.close(1000, 'node done'));
});
