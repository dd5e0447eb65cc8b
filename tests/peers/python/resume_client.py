"""Python `websockets` peer: drops its connection abruptly and resumes the session.

Usage: resume_client.py URL CHANNEL FIRST SECOND ACK_UPTO

Two sessions:

* `observer` subscribes to CHANNEL and only watches: when it has seen
  message FIRST + SECOND, the Rust side has finished publishing.
* `main` subscribes to CHANNEL, reads FIRST messages, acks only ACK_UPTO,
  then drops the TCP connection abruptly (RST, no close frame). Once the
  observer has seen everything, `main` reconnects with `resume` = the resume
  token from its `welcome` and `positions` = [{CHANNEL, FIRST}], then sends a
  ping: every frame before the `pong` is what the server re-sent on resume.

Reported as JSON lines on stdout.
"""

import asyncio
import sys

from tidings_peer import Peer, abort_connection, close_info, connect, emit, run

PING_NONCE = 99


async def main():
    url, channel = sys.argv[1], sys.argv[2]
    first, second, ack_upto = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    total = first + second

    async with connect(url) as obs_ws:
        observer = Peer(obs_ws, "observer")
        await observer.hello()
        emit("observer_subscribed", frame=await observer.subscribe(channel))

        ws = await connect(url)
        main_peer = Peer(ws, "main")
        welcome = await main_peer.hello()
        emit("welcome", frame=welcome)
        emit("subscribed", frame=await main_peer.subscribe(channel))
        received = 0
        while received < first:
            frame = await main_peer.recv_type("message", record=lambda f: emit("other", frame=f))
            received += 1
            emit("message", phase="before_drop", frame=frame)
        await main_peer.send({"type": "ack", "channel": channel, "seq": ack_upto})
        emit("ack_sent", seq=ack_upto)
        # Make sure the ack reached the server before the drop: a ping is
        # answered only after everything sent before it was handled.
        await main_peer.send({"type": "ping", "nonce": 1})
        await main_peer.recv_type("pong", record=lambda f: emit("other", phase="before_drop", frame=f))
        abort_connection(ws)
        emit("dropped")

        # Wait (on the other session) until the Rust side published everything.
        while True:
            frame = await observer.recv_type("message", timeout=30)
            if frame["seq"] >= total:
                emit("observer_saw", seq=frame["seq"])
                break

        async with connect(url) as ws2:
            resumed = Peer(ws2, "resumed")
            positions = [{"channel": channel, "seq": first}]
            welcome2 = await resumed.hello(resume=welcome["resume_token"], positions=positions)
            emit("resumed_welcome", frame=welcome2)
            await resumed.send({"type": "ping", "nonce": PING_NONCE})
            while True:
                frame = await resumed.recv()
                if frame.get("type") == "pong" and frame.get("nonce") == PING_NONCE:
                    break
                if frame.get("type") == "message":
                    emit("message", phase="after_resume", frame=frame)
                else:
                    emit("other", phase="after_resume", frame=frame)
            # Nothing more may follow (no duplicates arriving late).
            try:
                extra = await resumed.recv(timeout=0.3)
                emit("other", phase="after_pong", frame=extra)
            except asyncio.TimeoutError:
                pass
            await resumed.send({"type": "close", "code": 1000, "reason": "resume test done"})
            await resumed.recv_type("close", record=lambda f: emit("other", phase="closing", frame=f))
            await ws2.close(1000, "resume test done")
            emit("closed", **close_info(ws2))
        await observer.send({"type": "close", "code": 1000, "reason": "observer done"})


if __name__ == "__main__":
    run(main)
