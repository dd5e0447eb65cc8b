"""Python `websockets` peer: closes with a bare WebSocket close (no tidings `close` frame).

Usage: ws_close.py URL CHANNEL

RFC 6455 §5.5.1: an endpoint receiving a Close frame must send a Close frame
in response. Two cases, each reported as `{"event": "case", "name": ...,
"close": ..., "seconds": ...}`:

* `in_session`: hello, subscribe, then `close(1000)`;
* `before_hello`: `close(1000)` right after the upgrade.
"""

import sys
import time

from tidings_peer import Peer, close_info, connect, emit, run


async def case(url, name, channel=None):
    async with connect(url) as ws:
        if channel is not None:
            peer = Peer(ws, name)
            await peer.hello()
            await peer.subscribe(channel)
        started = time.monotonic()
        await ws.close(1000, f"{name} done")
        emit("case", name=name, close=close_info(ws), seconds=time.monotonic() - started)


async def main():
    url, channel = sys.argv[1], sys.argv[2]
    await case(url, "in_session", channel)
    await case(url, "before_hello")


if __name__ == "__main__":
    run(main)
