"""Shared helpers of the Python `websockets` peer scripts (interop tests of tidings).

The scripts talk the `tidings.v1.json` wire format by hand (one JSON object per
text message), so they are an independent implementation of the protocol, not
a wrapper around ours. They report what they observed as JSON lines on stdout
(one object per line, `{"event": ...}`); the Rust tests parse and assert on
those lines. A script exits non-zero (with a traceback on stderr) when the
server does something the script cannot continue after.
"""

import asyncio
import json
import os
import socket
import struct
import sys

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

SUBPROTOCOL = "tidings.v1.json"
PROTOCOL_VERSION = 1

# Per-step timeout (seconds); the Rust side also kills the whole script.
STEP_TIMEOUT = float(os.environ.get("TIDINGS_PEER_STEP_TIMEOUT", "10"))

__all__ = [
    "SUBPROTOCOL",
    "PROTOCOL_VERSION",
    "STEP_TIMEOUT",
    "ConnectionClosed",
    "InvalidStatus",
    "Peer",
    "abort_connection",
    "close_info",
    "connect",
    "emit",
    "log",
    "run",
]


def emit(event, **fields):
    """Writes one observation as a JSON line on stdout."""
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def log(*args):
    """Diagnostics for humans (stderr; shown by the Rust test on failure)."""
    print(*args, file=sys.stderr, flush=True)


def close_info(ws):
    """The close frames received and sent on `ws` (None where there was none)."""
    proto = ws.protocol
    rcvd = proto.close_rcvd
    sent = proto.close_sent
    return {
        "rcvd": None if rcvd is None else {"code": int(rcvd.code), "reason": rcvd.reason},
        "sent": None if sent is None else {"code": int(sent.code), "reason": sent.reason},
    }


def connect(url, subprotocols=(SUBPROTOCOL,), **kwargs):
    """`websockets.asyncio.client.connect` with test-friendly defaults.

    No keepalive pings (the tests check frame sequences), no compression (the
    server does not negotiate it anyway) and bounded open/close timeouts.
    """
    kwargs.setdefault("open_timeout", STEP_TIMEOUT)
    kwargs.setdefault("close_timeout", STEP_TIMEOUT)
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("compression", None)
    return ws_connect(url, subprotocols=list(subprotocols) if subprotocols else None, **kwargs)


def abort_connection(ws):
    """Drops the TCP connection abruptly: no close frame, RST instead of FIN."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER on with a zero timeout makes close() send an RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


class Peer:
    """A tidings session spoken by hand over one `websockets` connection."""

    def __init__(self, ws, name="peer"):
        self.ws = ws
        self.name = name

    async def send(self, frame):
        await self.ws.send(json.dumps(frame, separators=(",", ":")))

    async def recv(self, timeout=STEP_TIMEOUT):
        """The next frame as a dict; raises on a binary message or a timeout."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(raw, bytes):
            raise AssertionError(f"{self.name}: binary message on {SUBPROTOCOL}: {raw[:64]!r}")
        return json.loads(raw)

    async def recv_type(self, kind, timeout=STEP_TIMEOUT, record=None):
        """Frames until one of type `kind` (returned); the others go to `record`."""
        while True:
            frame = await self.recv(timeout)
            if frame.get("type") == kind:
                return frame
            if record is None:
                raise AssertionError(f"{self.name}: expected `{kind}`, got {frame}")
            record(frame)

    async def hello(self, resume=None, positions=None, version=PROTOCOL_VERSION):
        """Sends `hello` and returns the `welcome`."""
        frame = {"type": "hello", "version": version}
        if resume is not None:
            frame["resume"] = resume
        if positions is not None:
            frame["positions"] = positions
        await self.send(frame)
        return await self.recv_type("welcome")

    async def subscribe(self, channel):
        """Sends `subscribe` and returns the `subscribed`."""
        await self.send({"type": "subscribe", "channel": channel})
        return await self.recv_type("subscribed")

    async def drain_until_closed(self, timeout=STEP_TIMEOUT):
        """Every frame the server still sends until the WebSocket closes, and
        whether `timeout` (per frame) ran out first."""
        frames = []
        try:
            while True:
                raw = await asyncio.wait_for(self.ws.recv(), timeout)
                if isinstance(raw, bytes):
                    frames.append({"binary": raw.hex()})
                else:
                    try:
                        frames.append(json.loads(raw))
                    except ValueError:
                        frames.append({"text": raw})
        except ConnectionClosed:
            return frames, False
        except TimeoutError:
            return frames, True


def run(main):
    """Runs `main()` (a coroutine function) and exits non-zero on any exception."""
    try:
        asyncio.run(main())
    except Exception:  # noqa: BLE001 - report everything, with a traceback
        import traceback

        traceback.print_exc()
        sys.exit(1)
