"""Python `websockets` peer over TLS: connects to a wss:// URL trusting only the given CA, joins a room, publishes one message and reads it back.

Usage: wss_client.py URL CA_FILE CHANNEL

Reports `open` (with the TLS version and subprotocol), `welcome`, `subscribed`
and `message` as JSON lines on stdout.
"""

import ssl
import sys

from tidings_peer import Peer, connect, emit, run

PAYLOAD = {"from": "python", "text": "hello over wss"}


async def main():
    url, ca_file, channel = sys.argv[1], sys.argv[2], sys.argv[3]
    context = ssl.create_default_context(cafile=ca_file)
    async with connect(url, ssl=context) as ws:
        tls = ws.transport.get_extra_info("ssl_object")
        emit("open", subprotocol=ws.subprotocol, tls=tls.version() if tls else None)
        peer = Peer(ws, "python")
        emit("welcome", frame=await peer.hello())
        emit("subscribed", frame=await peer.subscribe(channel))
        await peer.send({"type": "publish", "channel": channel, "seq": 1, "data": PAYLOAD})
        emit("message", frame=await peer.recv_type("message"))
        await ws.close()


run(main)
