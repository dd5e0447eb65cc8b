//! The test client's own wire code: HTTP upgrade by hand, a frame encoder (with masking) and a strict decoder of the server's frames.
//!
//! Nothing here comes from tungstenite: the point is to judge the server with
//! an independent implementation (SHA-1 and base64 for `Sec-WebSocket-Accept`
//! included).

use std::fmt;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const OP_CONT: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// Largest frame the decoder accepts from the server (far above any test message).
const MAX_SERVER_FRAME: u64 = 16 << 20;

// ---------------------------------------------------------------- SHA-1, base64, rng

/// SHA-1 (FIPS 180-4), only for `Sec-WebSocket-Accept`.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (slot, word) in w.iter_mut().zip(block.chunks_exact(4)) {
            *slot = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Sec-WebSocket-Accept` value for a key (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

/// xorshift64*: masks and handshake keys (no cryptographic strength needed).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A mask key that is never all zeroes (so masking really changes the bytes).
    pub(crate) fn mask(&mut self) -> [u8; 4] {
        loop {
            let m = (self.next_u64() as u32).to_be_bytes();
            if m.iter().all(|b| *b != 0) {
                return m;
            }
        }
    }
}

// ---------------------------------------------------------------- encoder

/// How the payload length is written in a client frame.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Len {
    /// The minimal encoding (7, 16 or 64 bit), as RFC 6455 §5.2 requires.
    Minimal,
    /// Always the 16-bit form (non-minimal for payloads under 126 bytes).
    Force16,
    /// The header declares this length whatever the payload really is
    /// (64-bit form); the payload bytes given are sent after it.
    Declared(u64),
}

/// A frame the test client sends.
#[derive(Clone, Debug)]
pub(crate) struct Fr {
    pub(crate) fin: bool,
    pub(crate) rsv: u8,
    pub(crate) op: u8,
    pub(crate) payload: Vec<u8>,
    pub(crate) masked: bool,
    pub(crate) len: Len,
}

impl Fr {
    pub(crate) fn new(op: u8, payload: impl AsRef<[u8]>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            op,
            payload: payload.as_ref().to_vec(),
            masked: true,
            len: Len::Minimal,
        }
    }
    pub(crate) fn text(p: impl AsRef<[u8]>) -> Self {
        Self::new(OP_TEXT, p)
    }
    pub(crate) fn binary(p: impl AsRef<[u8]>) -> Self {
        Self::new(OP_BINARY, p)
    }
    pub(crate) fn cont(p: impl AsRef<[u8]>) -> Self {
        Self::new(OP_CONT, p)
    }
    pub(crate) fn ping(p: impl AsRef<[u8]>) -> Self {
        Self::new(OP_PING, p)
    }
    pub(crate) fn pong(p: impl AsRef<[u8]>) -> Self {
        Self::new(OP_PONG, p)
    }
    /// A close frame with a status code and a reason (raw bytes, so invalid UTF-8 is possible).
    pub(crate) fn close(code: u16, reason: impl AsRef<[u8]>) -> Self {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_ref());
        Self::new(OP_CLOSE, p)
    }
    /// Clears FIN (a non-final fragment).
    pub(crate) fn more(mut self) -> Self {
        self.fin = false;
        self
    }
    pub(crate) fn rsv(mut self, rsv: u8) -> Self {
        self.rsv = rsv;
        self
    }
    pub(crate) fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }
    pub(crate) fn len(mut self, len: Len) -> Self {
        self.len = len;
        self
    }

    /// Wire bytes of the frame, masked with a fresh key from `rng` when masked.
    pub(crate) fn encode(&self, rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 14);
        out.push((u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.op & 0x0F));
        let mask_bit = if self.masked { 0x80 } else { 0 };
        let n = self.payload.len() as u64;
        match self.len {
            Len::Minimal if n < 126 => out.push(mask_bit | n as u8),
            Len::Minimal | Len::Force16 if n <= 0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            Len::Minimal | Len::Force16 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Len::Declared(d) => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&d.to_be_bytes());
            }
        }
        if self.masked {
            let key = rng.mask();
            out.extend_from_slice(&key);
            out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(&self.payload);
        }
        out
    }
}

// ---------------------------------------------------------------- decoder

/// One frame as the server put it on the wire.
#[derive(Clone, Debug)]
pub(crate) struct RawFrame {
    pub(crate) fin: bool,
    pub(crate) rsv: u8,
    pub(crate) op: u8,
    pub(crate) masked: bool,
    pub(crate) minimal_len: bool,
    pub(crate) payload: Vec<u8>,
}

/// Parses one frame from the front of `buf`: `Ok(None)` when more bytes are needed.
pub(crate) fn parse_frame(buf: &[u8]) -> Result<Option<(RawFrame, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let (len, mut pos, minimal_len) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let n = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
            (n, 4, n >= 126)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            (n, 10, n > 0xFFFF)
        }
        n => (u64::from(n), 2, true),
    };
    if len > MAX_SERVER_FRAME {
        return Err(format!("server frame declares {len} bytes"));
    }
    let len = len as usize;
    let mut key = None;
    if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        key = Some([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        pos += 4;
    }
    if buf.len() < pos + len {
        return Ok(None);
    }
    let mut payload = buf[pos..pos + len].to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    let frame = RawFrame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        op: b0 & 0x0F,
        masked,
        minimal_len,
        payload,
    };
    Ok(Some((frame, pos + len)))
}

/// What the client observed next on the connection (fragments already reassembled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame: status code (`None` when the payload is empty) and reason bytes.
    Close(Option<u16>, Vec<u8>),
    /// The server closed TCP (FIN) at a frame boundary.
    Eof,
    /// The connection failed: reset or another I/O error.
    Broken(String),
}

/// Short human description of a payload: size and a printable preview.
pub(crate) fn show_payload(p: &[u8]) -> String {
    if p.len() <= 24 {
        match std::str::from_utf8(p) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{:?}", s),
            _ => format!("{} B {:02x?}", p.len(), p),
        }
    } else {
        format!("{} B", p.len())
    }
}

impl fmt::Display for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Text(p) => write!(f, "text {}", show_payload(p)),
            Ev::Binary(p) => write!(f, "binary {}", show_payload(p)),
            Ev::Ping(p) => write!(f, "ping {}", show_payload(p)),
            Ev::Pong(p) => write!(f, "pong {}", show_payload(p)),
            Ev::Close(None, _) => write!(f, "close (no code)"),
            Ev::Close(Some(c), r) if r.is_empty() => write!(f, "close {c}"),
            Ev::Close(Some(c), r) => write!(f, "close {c} {:?}", String::from_utf8_lossy(r)),
            Ev::Eof => write!(f, "TCP closed (FIN)"),
            Ev::Broken(e) => write!(f, "TCP broken ({e})"),
        }
    }
}

/// Close codes an endpoint may put on the wire (RFC 6455 §7.4).
pub(crate) fn close_code_sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

// ---------------------------------------------------------------- connection

/// The raw client side of one WebSocket connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub(crate) rng: Rng,
    /// Fragments of a server message being reassembled (opcode, bytes).
    partial: Option<(u8, Vec<u8>)>,
    /// A close frame was received: anything but TCP closing after it is a violation.
    closed: bool,
    /// RFC 6455 violations in the server's frames.
    pub(crate) violations: Vec<String>,
    /// Server frames checked (all must be unmasked, RSV 0, minimal length).
    pub(crate) frames_checked: usize,
    /// The upgrade response head.
    pub(crate) response_head: String,
}

impl Conn {
    /// Opens TCP and performs the opening handshake by hand. `extra_headers`
    /// lines end with `\r\n`; `pipelined` bytes go in the same write as the
    /// request (frames sent before the response arrives).
    pub(crate) async fn connect(
        addr: SocketAddr,
        seed: u64,
        extra_headers: &str,
        pipelined: &[u8],
    ) -> Result<Self, String> {
        let mut rng = Rng::new(seed);
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let mut raw_key = [0u8; 16];
        raw_key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        raw_key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let key = base64(&raw_key);
        let request = format!(
            "GET /rfc6455 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
        );
        let mut conn = Self {
            stream,
            buf: Vec::new(),
            rng,
            partial: None,
            closed: false,
            violations: Vec::new(),
            frames_checked: 0,
            response_head: String::new(),
        };
        let mut first = request.into_bytes();
        first.extend_from_slice(pipelined);
        conn.stream
            .write_all(&first)
            .await
            .map_err(|e| format!("write request: {e}"))?;
        let head_end = loop {
            if let Some(i) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if conn.buf.len() > 16 << 10 {
                return Err("response head over 16 KiB".into());
            }
            let mut chunk = [0u8; 4096];
            match conn.stream.read(&mut chunk).await {
                Ok(0) => {
                    return Err(format!(
                        "EOF during handshake: {:?}",
                        String::from_utf8_lossy(&conn.buf)
                    ));
                }
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read response: {e}")),
            }
        };
        let head = String::from_utf8_lossy(&conn.buf[..head_end]).into_owned();
        conn.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 101") {
            return Err(format!("expected 101, got {status:?}"));
        }
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let expected = accept_key(&key);
        match header("sec-websocket-accept") {
            Some(v) if v == expected => {}
            other => {
                return Err(format!(
                    "Sec-WebSocket-Accept {other:?}, expected {expected:?}"
                ));
            }
        }
        if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            return Err("response lacks Upgrade: websocket".into());
        }
        if !header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")) {
            return Err("response lacks Connection: upgrade".into());
        }
        conn.response_head = head;
        Ok(conn)
    }

    /// A header of the upgrade response.
    pub(crate) fn response_header(&self, name: &str) -> Option<String> {
        self.response_head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// Writes the frames in one go.
    pub(crate) async fn send(&mut self, frames: &[Fr]) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for f in frames {
            bytes.extend(f.encode(&mut self.rng));
        }
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Writes the frames' bytes in chunks of `chunk` bytes, one write per chunk
    /// (TCP_NODELAY is on, so the server sees them in separate segments).
    pub(crate) async fn send_chopped(
        &mut self,
        frames: &[Fr],
        chunk: usize,
    ) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for f in frames {
            bytes.extend(f.encode(&mut self.rng));
        }
        for (i, piece) in bytes.chunks(chunk.max(1)).enumerate() {
            self.stream.write_all(piece).await?;
            self.stream.flush().await?;
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// Reads the next server frame, checking it against RFC 6455 §5.
    async fn next_frame(&mut self) -> Result<Option<RawFrame>, String> {
        loop {
            match parse_frame(&self.buf) {
                Err(e) => return Err(e),
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    self.check_frame(&frame);
                    return Ok(Some(frame));
                }
                Ok(None) => {}
            }
            let mut chunk = vec![0u8; 64 << 10];
            match self.stream.read(&mut chunk).await {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                Ok(0) => {
                    return Err(format!(
                        "EOF inside a frame ({} bytes pending)",
                        self.buf.len()
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("{:?}", e.kind())),
            }
        }
    }

    fn check_frame(&mut self, f: &RawFrame) {
        self.frames_checked += 1;
        let mut bad = |what: String| self.violations.push(what);
        if self.closed {
            bad(format!(
                "server sent a frame (opcode {:#x}) after its close frame",
                f.op
            ));
        }
        if f.masked {
            bad(format!("server frame (opcode {:#x}) is masked", f.op));
        }
        if f.rsv != 0 {
            bad(format!("server frame has RSV bits {:#05b}", f.rsv));
        }
        if !f.minimal_len {
            bad(format!(
                "server frame uses a non-minimal length encoding for {} bytes",
                f.payload.len()
            ));
        }
        if matches!(f.op, 3..=7 | 0xB..=0xF) {
            bad(format!("server frame has reserved opcode {:#x}", f.op));
        }
        if f.op >= 8 && (!f.fin || f.payload.len() > 125) {
            bad(format!(
                "server control frame {:#x}: fin={} len={}",
                f.op,
                f.fin,
                f.payload.len()
            ));
        }
        if f.op == OP_CLOSE {
            match f.payload.len() {
                0 => {}
                1 => bad("server close frame with a 1-byte payload".into()),
                _ => {
                    let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                    if !close_code_sendable(code) {
                        bad(format!(
                            "server sent close code {code}, not allowed on the wire"
                        ));
                    }
                    if std::str::from_utf8(&f.payload[2..]).is_err() {
                        bad("server close reason is not UTF-8".into());
                    }
                }
            }
        }
    }

    /// The next event, reassembling fragmented messages.
    pub(crate) async fn next_event(&mut self) -> Ev {
        loop {
            let frame = match self.next_frame().await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    if self.partial.is_some() {
                        self.violations
                            .push("server closed TCP inside a fragmented message".into());
                    }
                    return Ev::Eof;
                }
                Err(e) => return Ev::Broken(e),
            };
            match frame.op {
                OP_PING => return Ev::Ping(frame.payload),
                OP_PONG => return Ev::Pong(frame.payload),
                OP_CLOSE => {
                    self.closed = true;
                    let code = (frame.payload.len() >= 2)
                        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                    let reason = frame.payload.get(2..).unwrap_or_default().to_vec();
                    return Ev::Close(code, reason);
                }
                OP_TEXT | OP_BINARY | OP_CONT => {
                    let (op, mut data) = match (frame.op, self.partial.take()) {
                        (OP_CONT, Some(p)) => p,
                        (OP_CONT, None) => {
                            self.violations
                                .push("server continuation frame without a message start".into());
                            (OP_BINARY, Vec::new())
                        }
                        (op, Some(_)) => {
                            self.violations
                                .push("server started a message inside a fragmented one".into());
                            (op, Vec::new())
                        }
                        (op, None) => (op, Vec::new()),
                    };
                    data.extend_from_slice(&frame.payload);
                    if !frame.fin {
                        self.partial = Some((op, data));
                        continue;
                    }
                    if op == OP_TEXT {
                        if std::str::from_utf8(&data).is_err() {
                            self.violations
                                .push("server text message is not UTF-8".into());
                        }
                        return Ev::Text(data);
                    }
                    return Ev::Binary(data);
                }
                _ => return Ev::Broken(format!("reserved opcode {:#x} from server", frame.op)),
            }
        }
    }
}
