// Shared helpers of the Node `ws` peer scripts (interop tests of tidings).
//
// The scripts speak the `tidings.v1.json` wire format by hand (one JSON object
// per text message): an independent implementation of the protocol. They
// report what they observed as JSON lines on stdout (`{"event": ...}`); the
// Rust tests parse and assert on those lines. Any failure exits non-zero with
// the reason on stderr.
//
// `ws` is installed by `cargo xtask setup` under the peers directory, not next
// to these scripts, so it cannot be found by a bare `import 'ws'`. The Rust
// test passes the installed `node_modules` directory in
// `TIDINGS_NODE_MODULES`, and `loadWs` resolves the package from there with
// Node's own resolver (`createRequire`).

import { createRequire } from 'node:module';
import { join } from 'node:path';

export const SUBPROTOCOL = 'tidings.v1.json';
export const PROTOCOL_VERSION = 1;
export const STEP_TIMEOUT_MS = Number(process.env.TIDINGS_PEER_STEP_TIMEOUT_MS ?? 10000);

/** The `ws` WebSocket class, from `$TIDINGS_NODE_MODULES`. */
export function loadWs() {
  const modules = process.env.TIDINGS_NODE_MODULES;
  if (!modules) {
    throw new Error('TIDINGS_NODE_MODULES is not set (the node_modules directory holding `ws`)');
  }
  // Resolve as if from a file next to node_modules: finds <modules>/ws.
  const require = createRequire(join(modules, '..', 'package.json'));
  return require('ws');
}

/** Writes one observation as a JSON line on stdout. */
export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

/** A tidings session spoken by hand over one `ws` connection. */
export class Peer {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    ws.on('message', (data, isBinary) => {
      const item = isBinary
        ? { error: new Error(`${name}: binary message on ${SUBPROTOCOL}`) }
        : { frame: JSON.parse(data.toString('utf8')) };
      this.push(item);
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.push({ closed: this.closed });
    });
    ws.on('error', (error) => this.push({ error }));
  }

  /** Opens a connection to `url` offering `tidings.v1.json`. */
  static open(WebSocket, url, name) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, [SUBPROTOCOL], { perMessageDeflate: false });
      const peer = new Peer(ws, name);
      const timer = setTimeout(() => reject(new Error(`${name}: open timed out`)), STEP_TIMEOUT_MS);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(peer);
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`${name}: handshake refused with HTTP ${res.statusCode}`));
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.queue.push(item);
  }

  next(timeoutMs = STEP_TIMEOUT_MS) {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closed) return Promise.resolve({ closed: this.closed });
    return new Promise((resolve, reject) => {
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: nothing received within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The next frame; throws on a close, an error or a timeout. */
  async recv(timeoutMs) {
    const item = await this.next(timeoutMs);
    if (item.error) throw item.error;
    if (item.closed) throw new Error(`${this.name}: connection closed: ${JSON.stringify(item.closed)}`);
    return item.frame;
  }

  /** Frames until one of type `kind` (returned); the others go to `record`. */
  async recvType(kind, record) {
    for (;;) {
      const frame = await this.recv();
      if (frame.type === kind) return frame;
      if (!record) throw new Error(`${this.name}: expected \`${kind}\`, got ${JSON.stringify(frame)}`);
      record(frame);
    }
  }

  send(frame) {
    return new Promise((resolve, reject) => {
      this.ws.send(JSON.stringify(frame), (err) => (err ? reject(err) : resolve()));
    });
  }

  async hello() {
    await this.send({ type: 'hello', version: PROTOCOL_VERSION });
    return this.recvType('welcome');
  }

  async subscribe(channel) {
    await this.send({ type: 'subscribe', channel });
    return this.recvType('subscribed');
  }

  /** Closes the WebSocket with `code` and resolves with what the server closed with. */
  async close(code, reason) {
    if (this.closed) return this.closed;
    this.ws.close(code, reason);
    for (;;) {
      const item = await this.next();
      if (item.closed) return item.closed;
      if (item.error) throw item.error;
    }
  }
}

/** Runs `main` and exits non-zero on any error. */
export function run(main) {
  main().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
      process.exit(1);
    },
  );
}
