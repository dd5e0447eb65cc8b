"""Independent WebTransport peer: aioquic opens a session to a tidings server and speaks the JSON protocol on the control stream and the server's channel streams.

Usage: wt_client.py HOST PORT CERT_SHA256_HEX CHANNEL TEXT

Checks the server's certificate by its SHA-256 (as a browser's
serverCertificateHashes does), sends an extended CONNECT (:protocol
webtransport), opens the control stream, then hello -> welcome, subscribe ->
subscribed, publish -> publish_ack + its own message back. The channel's
frames (subscribed, message) come on a unidirectional stream the server opens
for the channel (docs/protocol.md section 10: 0x01, a 2-byte length, the
channel's name, then length-prefixed frames). Prints one JSON line per frame
it received (channel frames as "stream CHANNEL: {...}") and "OK" at the end;
exits non-zero on any failure.
"""

import asyncio
import hashlib
import json
import ssl
import struct
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived


class WtClient(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic, enable_webtransport=True)
        self.session_ready = asyncio.get_event_loop().create_future()
        self.control = None
        self.buf = b""
        self.frames = asyncio.Queue()
        # Channel streams: stream id -> [channel name or None, buffered bytes]
        self.lanes = {}

    def quic_event_received(self, event):
        # aioquic trap: data on a WebTransport stream we opened would be parsed
        # as HTTP/3 frames (H3_FRAME_ERROR); handle it before H3Connection does.
        if isinstance(event, StreamDataReceived) and event.stream_id == self.control:
            self.buf += event.data
            while len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) < 4 + n:
                    break
                frame, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                self.frames.put_nowait((None, json.loads(frame)))
            return
        for h3 in self.http.handle_event(event):
            if isinstance(h3, HeadersReceived) and not self.session_ready.done():
                self.session_ready.set_result(dict(h3.headers))
            elif isinstance(h3, WebTransportStreamDataReceived):
                self.lane_data(h3.stream_id, h3.data)

    def lane_data(self, stream_id, data):
        lane = self.lanes.setdefault(stream_id, [None, b""])
        lane[1] += data
        if lane[0] is None:
            buf = lane[1]
            if len(buf) < 3:
                return
            if buf[0] != 0x01:
                raise SystemExit(f"stream {stream_id}: not a channel stream: {buf[:8]!r}")
            (n,) = struct.unpack(">H", buf[1:3])
            if len(buf) < 3 + n:
                return
            lane[0], lane[1] = buf[3 : 3 + n].decode(), buf[3 + n :]
        while len(lane[1]) >= 4:
            (n,) = struct.unpack(">I", lane[1][:4])
            if len(lane[1]) < 4 + n:
                break
            frame, lane[1] = lane[1][4 : 4 + n], lane[1][4 + n :]
            frame = json.loads(frame)
            if frame.get("channel") != lane[0]:
                raise SystemExit(f"frame of another channel on {lane[0]}'s stream: {frame}")
            self.frames.put_nowait((lane[0], frame))

    def send(self, frame):
        data = json.dumps(frame, separators=(",", ":")).encode()
        self._quic.send_stream_data(self.control, struct.pack(">I", len(data)) + data)
        self.transmit()

    async def expect(self, kind, timeout=10):
        while True:
            lane, frame = await asyncio.wait_for(self.frames.get(), timeout)
            prefix = f"stream {lane}: " if lane is not None else ""
            print(prefix + json.dumps(frame), flush=True)
            if frame.get("type") == kind:
                return frame
            if frame.get("type") in ("error", "close"):
                raise SystemExit(f"unexpected {frame}")


async def main(host, port, cert_hash, channel, text):
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        verify_mode=ssl.CERT_NONE,  # checked by hash below
        max_datagram_frame_size=65536,
        server_name="localhost",
    )
    async with connect(host, port, configuration=config, create_protocol=WtClient) as client:
        cert = client._quic.tls._peer_certificate
        from cryptography.hazmat.primitives.serialization import Encoding

        der = cert.public_bytes(Encoding.DER)
        got = hashlib.sha256(der).hexdigest()
        if got != cert_hash:
            raise SystemExit(f"certificate hash {got} != pinned {cert_hash}")
        session = client._quic.get_next_available_stream_id()
        client.http.send_headers(
            stream_id=session,
            headers=[
                (b":method", b"CONNECT"),
                (b":scheme", b"https"),
                (b":authority", f"{host}:{port}".encode()),
                (b":path", b"/?protocol=tidings.v1.json"),
                (b":protocol", b"webtransport"),
                (b"origin", b"https://peer.invalid"),
            ],
        )
        client.transmit()
        headers = await asyncio.wait_for(client.session_ready, 10)
        if headers.get(b":status") != b"200":
            raise SystemExit(f"session refused: {headers}")
        client.control = client.http.create_webtransport_stream(session, is_unidirectional=False)
        client.send({"type": "hello", "version": 1, "positions": []})
        welcome = await client.expect("welcome")
        assert welcome["resumed"] is False
        client.send({"type": "subscribe", "channel": channel})
        await client.expect("subscribed")
        client.send({"type": "publish", "channel": channel, "seq": 1, "data": {"text": text}})
        message = await client.expect("message")
        assert message["channel"] == channel and message["data"] == {"text": text}, message
        if channel not in [lane[0] for lane in client.lanes.values()]:
            raise SystemExit(f"no channel stream for {channel}: {client.lanes}")
        client.send({"type": "close", "code": 1000, "reason": "bye"})
        print("OK", flush=True)


if __name__ == "__main__":
    h, p, c, ch, t = sys.argv[1:6]
    asyncio.run(main(h, int(p), c, ch, t))
