"""Python `httpx-sse` peer: reads a tidings session over Server-Sent Events, POSTs its frames with httpx, and resumes by hand with `Last-Event-ID`.

Usage: sse_client.py URL CHANNEL FIRST SECOND

1. opens the stream (httpx-sse `connect_sse`); on the `welcome` it POSTs
   `subscribe CHANNEL`;
2. after FIRST messages it POSTs `publish ctl {"got": FIRST}` (seq 1), the
   signal for the Rust side to publish SECOND more, then closes the stream
   itself (it stops reading: what follows is missed; POSTs need an open
   stream, so they are made before leaving);
3. reconnects with the header `Last-Event-ID` = the id of the last event it
   received: the server resumes the session and re-sends what was missed;
4. after FIRST + SECOND messages POSTs `close` and exits.

Every observation is a JSON line on stdout.
"""

import json
import sys

import httpx
from httpx_sse import connect_sse


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def main():
    url, channel = sys.argv[1], sys.argv[2]
    first, second = int(sys.argv[3]), int(sys.argv[4])
    total = first + second
    state = {"session": None, "token": None, "received": 0, "last_id": None}
    timeout = httpx.Timeout(20.0)

    with httpx.Client(timeout=timeout) as client:

        def post(*frames):
            body = "".join(json.dumps(f) + "\n" for f in frames)
            r = client.post(
                f"{url}/{state['session']}",
                content=body.encode(),
                headers={"x-tidings-token": state["token"], "content-type": "application/x-ndjson"},
            )
            emit("post", status=r.status_code, types=[f["type"] for f in frames], text=r.text)
            if r.status_code != 202:
                raise RuntimeError(f"POST answered {r.status_code}: {r.text}")

        def read(headers, stop_after, before_leaving):
            with connect_sse(client, "GET", url, headers=headers) as source:
                emit("open", status=source.response.status_code,
                     content_type=source.response.headers.get("content-type"))
                for sse in source.iter_sse():
                    if sse.retry is not None:
                        emit("retry", ms=sse.retry)
                    if not sse.data:
                        continue  # a block without data (the retry hint)
                    state["last_id"] = sse.id
                    frame = json.loads(sse.data)
                    kind = frame.get("type")
                    if kind == "welcome":
                        emit("welcome", frame=frame, id=sse.id)
                        state["session"], state["token"] = frame["session"], frame["resume_token"]
                        if not frame["resumed"]:
                            post({"type": "subscribe", "channel": channel})
                    elif kind == "subscribed":
                        emit("subscribed", frame=frame)
                    elif kind == "publish_ack":
                        # Ours, on whichever stream is open when the server
                        # acknowledges (after a resume: the resumed one).
                        emit("publish_ack", seq=frame["seq"])
                    elif kind == "message" and frame["channel"] == channel:
                        state["received"] += 1
                        emit("message", seq=frame["seq"], data=frame.get("data"), id=sse.id)
                        if state["received"] == stop_after:
                            # POSTs go to the session of an open stream.
                            before_leaving()
                            return
                    else:
                        emit("other", frame=frame)
            raise RuntimeError("the stream ended early")

        read({}, first, lambda: post({"type": "publish", "channel": "ctl", "seq": 1, "data": {"got": first}}))
        emit("left", last_id=state["last_id"])
        # The stream is closed (the context manager ended): reconnect from the last id.
        read({"Last-Event-ID": state["last_id"]}, total,
             lambda: post({"type": "close", "code": 1000, "reason": "python peer done"}))
        emit("done", received=state["received"])


if __name__ == "__main__":
    main()
