"""Independent WebTransport peer: aioquic opens a session to a tidings server and speaks the JSON protocol on the control stream.

Usage: wt_client.py HOST PORT CERT_SHA256_HEX CHANNEL TEXT

Checks the server's certificate by its SHA-256 (as a browser's
serverCertificateHashes does), sends an extended CONNECT (:protocol
webtransport), opens the control stream, then hello -> welcome, subscribe ->
subscribed, publish -> publish_ack + its own message back. Prints one JSON
line per frame it received and "OK" at the end; exits non-zero on any failure.
"""

import asyncio
import hashlib
import json
import ssl
import struct
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
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
                self.frames.put_nowait(json.loads(frame))
            return
        for h3 in self.http.handle_event(event):
            if isinstance(h3, HeadersReceived) and not self.session_ready.done():
                self.session_ready.set_result(dict(h3.headers))

    def send(self, frame):
        data = json.dumps(frame, separators=(",", ":")).encode()
        self._quic.send_stream_data(self.control, struct.pack(">I", len(data)) + data)
        self.transmit()

    async def expect(self, kind, timeout=10):
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            print(json.dumps(frame), flush=True)
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
        client.send({"type": "close", "code": 1000, "reason": "bye"})
        print("OK", flush=True)


if __name__ == "__main__":
    h, p, c, ch, t = sys.argv[1:6]
    asyncio.run(main(h, int(p), c, ch, t))
