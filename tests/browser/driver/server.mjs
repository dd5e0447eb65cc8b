// The tidings server under test: started, killed and restarted by the driver.
//
// `browser-server` prints `listening on http://ADDR` once it accepts connections; `start`
// waits for that line. The server exits by itself when its stdin closes, so it does not
// outlive this process. Its stderr goes to a log file under the output directory.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 15000;

export class Server {
  constructor({ bin, pages, pkg, logPath, heartbeatMs, tlsDir }) {
    this.bin = bin;
    // The TLS listener (wss://): its certificate is kept in `tlsDir` across restarts, so the
    // public key Chromium was told to trust (`spki`) stays the same.
    this.tlsDir = tlsDir;
    this.tlsPort = 0;
    this.tlsUrl = null;
    // The WebTransport server (UDP): same port after a restart, certificate kept in `tlsDir`.
    this.wtPort = 0;
    this.wtUrl = null;
    this.spki = null;
    this.heartbeatMs = heartbeatMs;
    this.pages = pages;
    this.pkg = pkg;
    this.log = createWriteStream(logPath, { flags: 'a' });
    this.child = null;
    this.port = 0;
    this.url = null;
    // Exits we did not cause: a scenario fails when the server died under it.
    this.unexpectedExits = [];
  }

  /** Starts the server on `port` (0: any free port) and waits until it listens. */
  async start(port = this.port) {
    const args = ['--port', String(port), '--pages', this.pages, '--pkg', this.pkg];
    if (this.heartbeatMs) args.push('--heartbeat-ms', String(this.heartbeatMs));
    if (this.tlsDir) args.push('--tls-dir', this.tlsDir, '--tls-port', String(this.tlsPort));
    args.push('--wt-port', String(this.wtPort));
    this.log.write(`\n--- start ${new Date().toISOString()} ${this.bin} ${args.join(' ')}\n`);
    const child = spawn(this.bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.pipe(this.log, { end: false });
    child.expectedExit = false;
    child.on('exit', (code, signal) => {
      this.log.write(`--- exit code=${code} signal=${signal}\n`);
      if (!child.expectedExit) this.unexpectedExits.push({ code, signal });
    });
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`browser-server did not print its address within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${this.bin}: ${e.message}`)); });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`browser-server exited before listening (code ${code}, signal ${signal}); see ${this.log.path}`));
      });
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        this.log.write(`[stdout] ${line}\n`);
        const tls = /^tls on (https:\/\/\S+) spki=(\S+) untrusted=(https:\/\/\S+)$/.exec(line);
        if (tls) {
          this.tlsUrl = tls[1];
          this.tlsPort = Number(new URL(tls[1]).port);
          this.spki = tls[2];
          this.untrustedTlsUrl = tls[3];
        }
        const wt = /^webtransport on (https:\/\/\S+)$/.exec(line);
        if (wt) {
          this.wtUrl = wt[1];
          this.wtPort = Number(new URL(wt[1]).port);
        }
        const m = /^listening on (http:\/\/\S+)$/.exec(line);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
    });
    this.url = url;
    this.port = Number(new URL(url).port);
    return url;
  }

  /** Whether the process we started last is still running. */
  running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Kills the server without warning (SIGKILL: no close frames, like a crash). */
  async kill() {
    const child = this.child;
    if (!child || !this.running()) return;
    child.expectedExit = true;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills the server and starts a new one on the same port. */
  async restart() {
    await this.kill();
    return this.start(this.port);
  }

  /** Publishes `payload` on `channel` from server code; returns the message's sequence number. */
  async publish(channel, payload) {
    const r = await fetch(`${this.url}/control/publish/${encodeURIComponent(channel)}`, {
      method: 'POST',
      body: payload,
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`server publish on ${channel}: HTTP ${r.status}: ${text}`);
    return Number(text);
  }

  /** The WebTransport server's counts: `{ sessions, channelStreams }` (streams opened so far). */
  async wtStats() {
    const r = await fetch(`${this.url}/control/wt/stats`);
    if (!r.ok) throw new Error(`wt stats: HTTP ${r.status}`);
    return r.json();
  }

  /** Closes every live WebTransport session at once (as a dropped network would); returns how
   *  many were closed. */
  async killWebTransportSessions() {
    const r = await fetch(`${this.url}/control/wt/kill`, { method: 'POST' });
    if (!r.ok) throw new Error(`wt kill: HTTP ${r.status}`);
    return Number(await r.text());
  }

  /** Stops the server at the end of the run. */
  async stop() {
    await this.kill();
    this.log.end();
  }
}
