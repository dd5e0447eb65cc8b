// The chat example's own server (`cargo run -p tidings-examples --bin chat`, the binary the demo
// is served by): started on a free port for the Leptos front-end scenarios, and asked over its
// RPC (`chat.online`) how many connections it serves.
//
// The binary prints `chat server on http://ADDR` once it listens; its log goes to a file under
// the output directory. It is stopped with SIGTERM (it closes its sessions and exits), and killed
// if this process exits first.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 15000;
const RPC_TIMEOUT_MS = 5000;

/** `ws` from the node peers (`$TIDINGS_NODE_MODULES`), an independent WebSocket client. */
function loadWs() {
  const require = createRequire(join(process.env.TIDINGS_NODE_MODULES, '..', 'package.json'));
  return require('ws');
}

export class ChatServer {
  constructor({ bin, logPath }) {
    this.bin = bin;
    this.log = createWriteStream(logPath, { flags: 'a' });
    this.child = null;
    this.url = null;
    this.unexpectedExits = [];
  }

  /** Starts the server on `port` (0: any free port) and waits until it listens. */
  async start(port = 0) {
    this.log.write(`\n--- start ${new Date().toISOString()} PORT=${port} ${this.bin}\n`);
    const child = spawn(this.bin, [], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORT: String(port), RUST_LOG: process.env.RUST_LOG ?? 'info' },
    });
    this.child = child;
    child.expectedExit = false;
    child.stderr.pipe(this.log, { end: false });
    process.once('exit', () => child.kill('SIGKILL'));
    child.on('exit', (code, signal) => {
      this.log.write(`--- exit code=${code} signal=${signal}\n`);
      if (!child.expectedExit) this.unexpectedExits.push({ code, signal });
    });
    this.url = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.bin} did not print its address within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${this.bin}: ${e.message}`)); });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the chat server exited before listening (code ${code}, signal ${signal}); see ${this.log.path}`));
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        this.log.write(`[stdout] ${line}\n`);
        const m = /^chat server on (http:\/\/\S+)$/.exec(line);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
    });
    return this.url;
  }

  /** Stops the server (SIGTERM) and starts a new one on the same port: its in-memory broker
   *  starts every room's numbering over. */
  async restart() {
    const port = new URL(this.url).port;
    await this.stop({ keepLog: true });
    return this.start(Number(port));
  }

  running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How many connections the server's hub serves, by its `chat.online` RPC, not counting the
   *  connection that asks. */
  async online() {
    const WebSocket = loadWs();
    const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}/ws`, ['tidings.v1.json']);
    try {
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('chat.online: no reply in time')), RPC_TIMEOUT_MS);
        ws.on('error', (e) => { clearTimeout(timer); reject(e); });
        ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', version: 1, positions: [] })));
        ws.on('message', (data) => {
          const frame = JSON.parse(String(data));
          if (frame.type === 'welcome') {
            ws.send(JSON.stringify({ type: 'call', call: 1, method: 'chat.online', data: null }));
          } else if (frame.type === 'reply' && frame.call === 1) {
            clearTimeout(timer);
            if (frame.code) reject(new Error(`chat.online: ${frame.code}: ${frame.message}`));
            else resolve(Number(frame.data) - 1);
          }
        });
      });
    } finally {
      ws.close(1000, 'done');
    }
  }

  /** SIGTERM: the server closes its sessions ("server stopping") and exits. */
  async stop({ keepLog = false } = {}) {
    const child = this.child;
    if (child && this.running()) {
      child.expectedExit = true;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (!keepLog) this.log.end();
  }
}
