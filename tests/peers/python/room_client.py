"""Python `websockets` peer: joins a room, receives, acks, publishes, pings, closes.

Usage: room_client.py URL CHANNEL N

1. connects offering `tidings.v1.json`, sends `hello`, reads `welcome`;
2. subscribes to CHANNEL and reads `subscribed`;
3. reads N messages (published by the Rust side), sending a cumulative `ack`
   every 10 messages and after the last one;
4. publishes one message (publish seq 1) and reads until its `publish_ack`
   and its own message (fan-out includes the publisher) have arrived;
5. pings and reads the `pong`;
6. sends a `close` frame, reads the server's `close` frame, then closes the
   WebSocket with 1000.

Every step is reported as a JSON line on stdout.
"""

import sys

from tidings_peer import Peer, close_info, connect, emit, run

ACK_EVERY = 10
PING_NONCE = 4242
PAYLOAD = {"from": "python", "lib": "websockets", "text": "hello from python"}


async def main():
    url, channel, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    async with connect(url) as ws:
        emit("open", subprotocol=ws.subprotocol)
        peer = Peer(ws, "python")
        welcome = await peer.hello()
        emit("welcome", frame=welcome)
        emit("subscribed", frame=await peer.subscribe(channel))

        received = 0
        while received < n:
            frame = await peer.recv()
            if frame.get("type") != "message":
                emit("other", frame=frame)
                continue
            received += 1
            emit("message", frame=frame)
            if received % ACK_EVERY == 0 or received == n:
                ack = {"type": "ack", "channel": channel, "seq": frame["seq"]}
                await peer.send(ack)
                emit("ack_sent", seq=frame["seq"])

        await peer.send({"type": "publish", "channel": channel, "seq": 1, "data": PAYLOAD})
        emit("publish_sent", seq=1, data=PAYLOAD)
        got_ack = got_own = False
        while not (got_ack and got_own):
            frame = await peer.recv()
            kind = frame.get("type")
            if kind == "publish_ack":
                got_ack = True
                emit("publish_ack", frame=frame)
            elif kind == "message" and frame.get("data") == PAYLOAD:
                got_own = True
                emit("own_message", frame=frame)
            else:
                emit("other", frame=frame)

        await peer.send({"type": "ping", "nonce": PING_NONCE})
        emit("pong", frame=await peer.recv_type("pong", record=lambda f: emit("other", frame=f)))

        await peer.send({"type": "close", "code": 1000, "reason": "python done"})
        emit("close_reply", frame=await peer.recv_type("close", record=lambda f: emit("other", frame=f)))
        await ws.close(1000, "python done")
        emit("closed", **close_info(ws))


if __name__ == "__main__":
    run(main)
