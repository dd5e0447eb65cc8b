// The Yjs y-websocket server (npm `y-websocket` 2.x, its `bin/utils` `setupWSConnection`: the code its `y-websocket-server` binary runs), on 127.0.0.1 and a free port, for benchmarks against the tidings server.
//
// Usage: node yws_server.mjs   (env TIDINGS_NODE_MODULES)
// Prints {"event":"listening","port":N} once it accepts connections, and
// serves until killed. No persistence (YPERSISTENCE unset): documents live
// in memory, as in the tidings server it is compared with. Its own binary
// cannot be used as is: it listens on $PORT and prints the port it was
// given, not the one it got for port 0.

import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { emit } from './tidings_peer.mjs';

const modules = process.env.TIDINGS_NODE_MODULES;
if (!modules) throw new Error('TIDINGS_NODE_MODULES is not set');
const require = createRequire(join(modules, '..', 'package.json'));
// The `ws` that y-websocket itself depends on, resolved from its package.
const yws = require.resolve('y-websocket/bin/utils');
const WebSocket = createRequire(yws)('ws');
const { setupWSConnection } = require('y-websocket/bin/utils');

const wss = new WebSocket.Server({ noServer: true });
wss.on('connection', setupWSConnection);
const server = createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('okay');
});
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
});
server.listen(0, '127.0.0.1', () => emit('listening', { port: server.address().port }));
