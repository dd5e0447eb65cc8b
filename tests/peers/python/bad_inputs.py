"""Python `websockets` peer: sends bad inputs, each on a fresh connection, and reports the server's reaction.

Usage: bad_inputs.py URL MAX_MESSAGE_BYTES

For every case one JSON line `{"event": "case", "name": ..., ...}` reports:
`welcome` (whether the session was opened first), `frames` (every tidings
frame the server sent after the bad input), `close` (the WebSocket close
frames received and sent, see `tidings_peer.close_info`), `timed_out`
(the server neither sent anything nor closed within the step timeout) or,
for refused handshakes, `http_status`, `http_body` and `http_headers`.
"""

import json
import random
import sys

from tidings_peer import (
    STEP_TIMEOUT,
    ConnectionClosed,
    InvalidStatus,
    Peer,
    close_info,
    connect,
    emit,
    run,
)


async def frame_case(url, name, payload, *, text=None, hello=True):
    """Opens a session (unless `hello` is false), sends `payload` and records the outcome."""
    result = {"name": name, "welcome": False}
    async with connect(url) as ws:
        result["subprotocol"] = ws.subprotocol
        peer = Peer(ws, name)
        if hello:
            await peer.hello()
            result["welcome"] = True
        try:
            if text is None:
                await ws.send(payload)
            else:
                await ws.send(payload, text=text)
        except ConnectionClosed:
            result["send_failed"] = True
        frames, timed_out = await peer.drain_until_closed(STEP_TIMEOUT)
        result["frames"] = frames
        result["timed_out"] = timed_out
        if timed_out:
            await ws.close(1000, "test gave up waiting")
    result["close"] = close_info(ws)
    emit("case", **result)


async def handshake_case(url, name, subprotocols):
    """Offers only `subprotocols` and records how the handshake is refused."""
    result = {"name": name, "offered": list(subprotocols)}
    try:
        async with connect(url, subprotocols=subprotocols) as ws:
            result["subprotocol"] = ws.subprotocol
            result["accepted"] = True
            await ws.close(1000, "unexpectedly accepted")
    except InvalidStatus as e:
        response = e.response
        result["accepted"] = False
        result["http_status"] = response.status_code
        result["http_body"] = bytes(response.body or b"").decode("utf-8", "replace")
        result["http_headers"] = {k.lower(): v for k, v in response.headers.raw_items()}
    emit("case", **result)


async def main():
    url, max_message = sys.argv[1], int(sys.argv[2])
    rng = random.Random(0x7D1D)

    # Not JSON at all, as the very first frame (before any session exists)...
    await frame_case(url, "malformed_json_first_frame", "{not json", hello=False)
    # ...and inside an open session.
    await frame_case(url, "malformed_json_in_session", '{"type":"publish","channel":"room","seq":1,"data":')
    await frame_case(url, "unknown_frame_type", json.dumps({"type": "teleport", "channel": "room"}))
    # Random bytes in a binary message (0xff first: neither JSON nor UTF-8).
    garbage = b"\xff" + rng.randbytes(255)
    await frame_case(url, "binary_garbage", garbage)
    # A text message whose bytes are not UTF-8 (RFC 6455 requires failing with 1007).
    await frame_case(url, "invalid_utf8_text", b'{"type":"ping","nonce":1,"x":"\xc3\x28"}', text=True)
    # A well-formed publish larger than the server's WebSocket message limit.
    big = {"type": "publish", "channel": "room", "seq": 1, "data": {"pad": "x" * (max_message + 1024)}}
    await frame_case(url, "too_large", json.dumps(big))
    await frame_case(url, "hello_version_99", json.dumps({"type": "hello", "version": 99}), hello=False)

    await handshake_case(url, "subprotocol_v9_bin", ["tidings.v9.bin"])
    await handshake_case(url, "subprotocol_foo", ["foo"])
    emit("done")


if __name__ == "__main__":
    run(main)
