"""Python `pycrdt` peer: edits one Yjs document (text `t`, map `m`) through a y-websocket connection, reconnecting when its link drops.

Usage: python pycrdt_client.py URL NAME NAMES OPS
  NAMES: comma-separated names of every peer editing the document (this one included)
  OPS:   JSON list of edits, each one of
         ["ins", AT, STR]   insert STR at AT/1000 of the text's length
         ["del", AT, N]     delete up to N characters from AT/1000 of the length
         ["set", KEY, VAL]  set map key KEY to the string VAL
         ["wait", MS]       pause MS milliseconds (so peers' edits interleave)

The y-protocols messages are pycrdt's own: `create_sync_message` (sync step 1
on every (re)connect), `handle_sync_message` (the server's step 1 / step 2 /
update; answers step 1 with step 2) and `create_update_message` (each local
transaction, from the document's `observe` callback). Nothing is hand-encoded.

Halfway through OPS the peer prints {"event":"half"} and waits for a line on
stdin (the Rust test cuts the link then). After OPS it sets `done:NAME` in the
map, waits until the map holds `done:` for every name in NAMES (by then it has
every update the server applied before those fences), and prints
{"event":"final","text":...,"map":{...}}; it stays connected (another peer
may still wait for its fence) until a second line on stdin, then prints
{"event":"stopped","reconnects":N} and exits.
"""

import asyncio
import json
import os
import sys

from pycrdt import (
    Doc,
    Map,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tidings_peer import emit, log

DEADLINE = float(os.environ.get("TIDINGS_PEER_DEADLINE", "45"))
DEBUG = os.environ.get("TIDINGS_PEER_DEBUG") == "1"


class Peer:
    """One pycrdt document kept in sync with the server over a reconnecting WebSocket."""

    def __init__(self, url):
        self.url = url
        self.doc = Doc()
        self.text = self.doc.get("t", type=Text)
        self.map = self.doc.get("m", type=Map)
        self.ws = None
        self.synced = asyncio.Event()
        self.reconnects = -1
        self.outbox = asyncio.Queue()
        # Set while a remote update is applied: its transaction is not sent back.
        self.applying = False
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event):
        if not self.applying:
            self.outbox.put_nowait(create_update_message(event.update))

    async def sender(self):
        """Sends local updates on the current connection (dropped while offline:
        the sync step 2 of the next connection carries them)."""
        while True:
            message = await self.outbox.get()
            ws = self.ws
            if ws is None:
                continue
            try:
                await ws.send(message)
            except ConnectionClosed:
                pass

    async def connection(self):
        """Connects, syncs both ways, applies what the server sends; reconnects."""
        while True:
            self.reconnects += 1
            try:
                async with connect(self.url, max_size=None, open_timeout=5) as ws:
                    self.ws = ws
                    await ws.send(create_sync_message(self.doc))
                    async for message in ws:
                        if isinstance(message, str) or not message:
                            continue
                        if DEBUG:
                            log("recv", message.hex())
                        if message[0] != YMessageType.SYNC:
                            continue
                        self.applying = True
                        try:
                            reply = handle_sync_message(message[1:], self.doc)
                        finally:
                            self.applying = False
                        if reply is not None:
                            await ws.send(reply)
                        if message[1] == YSyncMessageType.SYNC_STEP2:
                            self.synced.set()
            except (OSError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError) as e:
                if DEBUG:
                    log("connection lost:", repr(e))
            self.ws = None
            await asyncio.sleep(0.05)

    def apply(self, op):
        """One scripted edit (its own transaction)."""
        kind = op[0]
        if kind == "ins":
            n = len(self.text)
            self.text.insert(op[1] * (n + 1) // 1001, op[2])
        elif kind == "del":
            n = len(self.text)
            if n > 0:
                start = op[1] * n // 1001
                end = min(n, start + op[2])
                if end > start:
                    del self.text[start:end]
        elif kind == "set":
            self.map[op[1]] = op[2]
        else:
            raise ValueError(f"unknown op {op!r}")


async def main():
    url, name, names, ops = sys.argv[1], sys.argv[2], sys.argv[3].split(","), json.loads(sys.argv[4])
    peer = Peer(url)
    tasks = [asyncio.create_task(peer.connection()), asyncio.create_task(peer.sender())]
    await asyncio.wait_for(peer.synced.wait(), DEADLINE)
    emit("open")
    half = len(ops) // 2
    loop = asyncio.get_running_loop()
    for i, op in enumerate(ops):
        if i == half:
            emit("half")
            await loop.run_in_executor(None, sys.stdin.readline)
        if op[0] == "wait":
            await asyncio.sleep(op[1] / 1000)
        else:
            peer.apply(op)
    peer.map[f"done:{name}"] = "1"
    fences = [f"done:{n}" for n in names]

    async def all_fences():
        while not all(f in peer.map for f in fences):
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(all_fences(), DEADLINE)
    except asyncio.TimeoutError:
        raise SystemExit(f"{name}: fences missing after {DEADLINE} s: map {peer.map.to_py()}")
    emit("final", text=str(peer.text), map=peer.map.to_py())
    # Stay connected (others may still need this peer's fence) until told to stop.
    await loop.run_in_executor(None, sys.stdin.readline)
    emit("stopped", reconnects=peer.reconnects)
    for t in tasks:
        t.cancel()
    if peer.ws is not None:
        await peer.ws.close()


if __name__ == "__main__":
    asyncio.run(main())
