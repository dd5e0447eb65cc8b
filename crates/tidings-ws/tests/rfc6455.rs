//! RFC 6455 conformance of the tidings-ws server in raw echo mode: Autobahn's fuzzingclient case groups, played by a raw TCP client.
//!
//! The Autobahn suite cannot run on our machines (see `PEERS.md`), so this
//! test plays its fuzzing client: a plain `TcpStream` does the HTTP upgrade by
//! hand, writes hand-made (masked) frames from its own encoder and judges the
//! server's frames with its own strict decoder (`rfc6455/wire.rs`).
//!
//! Case ids follow Autobahn's groups (1 framing, 2 ping/pong, 3 reserved bits,
//! 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits, 12/13
//! compression); within a group the sub-numbers are Autobahn's where the case
//! is the same, ours otherwise. `X.*` are extra cases (masking, pipelining).
//! Verdicts mirror Autobahn's: OK, NON-STRICT (acceptable, not the strictest
//! behaviour), INFORMATIONAL (implementation-defined, recorded only), FAILED.
//!
//! Every case runs on a fresh connection, all concurrently, each under a 5 s
//! timeout (a hang is FAILED). Every frame the server sends is checked: never
//! masked, RSV 0, minimal length encoding, valid control frames, UTF-8 text,
//! sendable close codes, nothing after its close frame. See the summary with
//! `cargo nextest run -p tidings-ws --test rfc6455 --no-capture`.
#![allow(clippy::unwrap_used)]

mod rfc6455 {
    pub(crate) mod wire;
}

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rfc6455::wire::{Conn, Ev, Fr, Len, OP_CLOSE, show_payload};
use tidings_ws::{ServerConfig, WsConfig, WsServer};

/// The server's `max_message_bytes` in this test (128 KiB: group 1's 65536-byte
/// messages fit, group 9 probes the limit itself).
const MAX: usize = 128 << 10;
/// Per-case deadline: a case still running then is FAILED (hang).
const CASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server gets to close TCP after the closing handshake.
const CLOSE_TCP_WITHIN: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- case table model

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Ok,
    Informational,
    NonStrict,
    Failed,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Informational => "INFORMATIONAL",
            Verdict::Failed => "FAILED",
        })
    }
}

/// A message or pong the server must send next.
#[derive(Clone, Debug)]
enum Exp {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
}

impl Exp {
    fn matches(&self, ev: &Ev) -> bool {
        match (self, ev) {
            (Exp::Text(a), Ev::Text(b))
            | (Exp::Binary(a), Ev::Binary(b))
            | (Exp::Pong(a), Ev::Pong(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Exp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exp::Text(p) => write!(f, "text {}", show_payload(p)),
            Exp::Binary(p) => write!(f, "binary {}", show_payload(p)),
            Exp::Pong(p) => write!(f, "pong {}", show_payload(p)),
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Write these frames in one write.
    Send(Vec<Fr>),
    /// Write these frames' bytes in chunks of n bytes.
    Chop(Vec<Fr>, usize),
    /// Pause (frame-wise sending, like Autobahn's "wait" steps).
    Sleep(u64),
    /// The next thing the server sends must be this.
    Expect(Exp),
    /// Fail-fast point: the server should fail the connection within this many
    /// ms, before the rest of the steps are sent; if it does not, the case can
    /// only be NON-STRICT and the remaining steps run.
    FailFast(u64),
}

#[derive(Clone, Debug)]
enum End {
    /// Everything fine: the client starts the closing handshake (1000) and
    /// expects a 1000 reply, then the server closing TCP.
    Clean,
    /// The server must send a close frame with a code in `ok` (OK) or
    /// `non_strict` (NON-STRICT), then close TCP. `drop_ok`: failing the
    /// connection without a close frame is allowed (NON-STRICT), as for
    /// protocol errors (Autobahn's `requireClean: False`).
    Close {
        ok: Vec<u16>,
        non_strict: Vec<u16>,
        drop_ok: bool,
    },
    /// Implementation-defined: record whatever the server does.
    Observe,
}

#[derive(Clone, Debug)]
struct Case {
    id: String,
    desc: String,
    headers: String,
    pipelined: Vec<Fr>,
    steps: Vec<Step>,
    end: End,
}

/// Close code meaning "close frame without a status code" (RFC 6455 §7.1.5).
const NO_CODE: u16 = 1005;

impl Case {
    fn new(id: impl Into<String>, desc: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            desc: desc.into(),
            headers: String::new(),
            pipelined: Vec::new(),
            steps: Vec::new(),
            end: End::Clean,
        }
    }
    fn send(mut self, frames: Vec<Fr>) -> Self {
        self.steps.push(Step::Send(frames));
        self
    }
    fn chop(mut self, frames: Vec<Fr>, n: usize) -> Self {
        self.steps.push(Step::Chop(frames, n));
        self
    }
    fn sleep(mut self, ms: u64) -> Self {
        self.steps.push(Step::Sleep(ms));
        self
    }
    fn expect(mut self, e: Exp) -> Self {
        self.steps.push(Step::Expect(e));
        self
    }
    fn fail_fast(mut self, ms: u64) -> Self {
        self.steps.push(Step::FailFast(ms));
        self
    }
    fn headers(mut self, h: &str) -> Self {
        self.headers = h.into();
        self
    }
    fn pipelined(mut self, frames: Vec<Fr>) -> Self {
        self.pipelined = frames;
        self
    }
    /// The server must fail the connection with one of `ok` (dropping TCP without a close frame: NON-STRICT).
    fn fails(mut self, ok: &[u16]) -> Self {
        self.end = End::Close {
            ok: ok.to_vec(),
            non_strict: Vec::new(),
            drop_ok: true,
        };
        self
    }
    /// Like [`Case::fails`], with codes that are acceptable but not the strictest answer.
    fn fails_or(mut self, ok: &[u16], non_strict: &[u16]) -> Self {
        self.end = End::Close {
            ok: ok.to_vec(),
            non_strict: non_strict.to_vec(),
            drop_ok: true,
        };
        self
    }
    /// The client sent a valid close: the server must answer with a close frame (one of `ok`).
    fn close_reply(mut self, ok: &[u16]) -> Self {
        self.end = End::Close {
            ok: ok.to_vec(),
            non_strict: Vec::new(),
            drop_ok: false,
        };
        self
    }
    fn observe(mut self) -> Self {
        self.end = End::Observe;
        self
    }
}

fn text(p: impl AsRef<[u8]>) -> Exp {
    Exp::Text(p.as_ref().to_vec())
}
fn binary(p: impl AsRef<[u8]>) -> Exp {
    Exp::Binary(p.as_ref().to_vec())
}
fn pong(p: impl AsRef<[u8]>) -> Exp {
    Exp::Pong(p.as_ref().to_vec())
}
fn stars(n: usize) -> Vec<u8> {
    vec![b'*'; n]
}
fn bin(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}
/// A text message split into `n`-byte frames (first TEXT, then CONTINUATION, FIN on the last).
fn fragments(op_first: fn(Vec<u8>) -> Fr, payload: &[u8], n: usize) -> Vec<Fr> {
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![&[][..]]
    } else {
        payload.chunks(n).collect()
    };
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let f = if i == 0 {
                op_first(p.to_vec())
            } else {
                Fr::cont(p)
            };
            if i == last { f } else { f.more() }
        })
        .collect()
}
/// `n` copies of a frame sequence, back to back.
trait ConcatN {
    fn concat_n(self, n: usize) -> Vec<Fr>;
}

impl<const K: usize> ConcatN for [Fr; K] {
    fn concat_n(self, n: usize) -> Vec<Fr> {
        (0..n).flat_map(|_| self.iter().cloned()).collect()
    }
}

fn text_frags(payload: &[u8], n: usize) -> Vec<Fr> {
    fragments(Fr::text, payload, n)
}
fn binary_frags(payload: &[u8], n: usize) -> Vec<Fr> {
    fragments(Fr::binary, payload, n)
}
/// Frames for explicit fragment boundaries.
fn text_split(parts: &[&[u8]]) -> Vec<Fr> {
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f = if i == 0 { Fr::text(p) } else { Fr::cont(p) };
            if i == last { f } else { f.more() }
        })
        .collect()
}

// ---------------------------------------------------------------- the table

/// κόσμε followed by U+D800 (ED A0 80, a surrogate) and "edited": Autobahn's
/// invalid UTF-8 payload of cases 6.3/6.4/7.5.
const KOSME_INVALID: &[u8] =
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
const KOSME: &str = "κόσμε";
const HELLO_UTF8: &str = "Hello-µ@ßöäüàá-UTF-8!!";

fn cases() -> Vec<Case> {
    let mut c = Vec::new();

    // ---- 1 framing: lengths at each length-encoding boundary, echoed exactly.
    for (i, n) in [0usize, 125, 126, 127, 128, 65535, 65536]
        .into_iter()
        .enumerate()
    {
        let enc = match n {
            0..=125 => "7-bit",
            126..=65535 => "16-bit",
            _ => "64-bit",
        };
        c.push(
            Case::new(
                format!("1.1.{}", i + 1),
                format!("text, {n} B ({enc} length)"),
            )
            .send(vec![Fr::text(stars(n))])
            .expect(text(stars(n))),
        );
        c.push(
            Case::new(
                format!("1.2.{}", i + 1),
                format!("binary, {n} B ({enc} length)"),
            )
            .send(vec![Fr::binary(bin(n))])
            .expect(binary(bin(n))),
        );
    }
    c.push(
        Case::new("1.1.8", "text 65536 B written in 997-byte chops")
            .chop(vec![Fr::text(stars(65536))], 997)
            .expect(text(stars(65536))),
    );
    c.push(
        Case::new("1.2.8", "binary 65536 B written in 997-byte chops")
            .chop(vec![Fr::binary(bin(65536))], 997)
            .expect(binary(bin(65536))),
    );
    c.push(
        Case::new(
            "1.3.1",
            "text 5 B with a non-minimal 16-bit length (RFC: MUST be minimal) [observe]",
        )
        .send(vec![Fr::text("Hello").len(Len::Force16)])
        .observe(),
    );

    // ---- 2 ping / pong
    let ping_bin = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff".to_vec();
    c.push(
        Case::new("2.1", "ping without payload -> empty pong")
            .send(vec![Fr::ping("")])
            .expect(pong("")),
    );
    c.push(
        Case::new("2.2", "ping with text payload -> same pong")
            .send(vec![Fr::ping("Hello, world!")])
            .expect(pong("Hello, world!")),
    );
    c.push(
        Case::new("2.3", "ping with binary payload -> same pong")
            .send(vec![Fr::ping(&ping_bin)])
            .expect(pong(&ping_bin)),
    );
    c.push(
        Case::new("2.4", "ping with 125 B payload -> same pong")
            .send(vec![Fr::ping(vec![0xfe; 125])])
            .expect(pong(vec![0xfe; 125])),
    );
    c.push(
        Case::new("2.5", "ping with 126 B payload -> fail 1002")
            .send(vec![Fr::ping(vec![0xfe; 126])])
            .fails(&[1002]),
    );
    c.push(
        Case::new("2.6", "ping 125 B written byte by byte -> same pong")
            .chop(vec![Fr::ping(vec![0xfe; 125])], 1)
            .expect(pong(vec![0xfe; 125])),
    );
    c.push(
        Case::new("2.7", "unsolicited pong without payload -> ignored").send(vec![Fr::pong("")]),
    );
    c.push(
        Case::new("2.8", "unsolicited pong with payload -> ignored")
            .send(vec![Fr::pong("unsolicited pong payload")]),
    );
    c.push(
        Case::new(
            "2.9",
            "unsolicited pong, then ping -> exactly one pong (ping's payload)",
        )
        .send(vec![
            Fr::pong("unsolicited pong payload"),
            Fr::ping("ping payload"),
        ])
        .expect(pong("ping payload")),
    );
    let ten_pings: Vec<Fr> = (0..10).map(|i| Fr::ping(format!("payload-{i}"))).collect();
    let mut c210 =
        Case::new("2.10", "10 pings in one write -> 10 pongs in order").send(ten_pings.clone());
    let mut c211 =
        Case::new("2.11", "10 pings written byte by byte -> 10 pongs in order").chop(ten_pings, 1);
    for i in 0..10 {
        c210 = c210.expect(pong(format!("payload-{i}")));
        c211 = c211.expect(pong(format!("payload-{i}")));
    }
    c.push(c210);
    c.push(c211);

    // ---- 3 reserved bits (no extension negotiated)
    c.push(
        Case::new("3.1", "text with RSV1 -> fail 1002")
            .send(vec![Fr::text("Hello, world!").rsv(4)])
            .fails(&[1002]),
    );
    c.push(
        Case::new(
            "3.2",
            "text, then text with RSV2, then ping -> echo, then fail 1002 (no pong)",
        )
        .send(vec![
            Fr::text("Hello, world!"),
            Fr::text("Hello, world!").rsv(2),
            Fr::ping(""),
        ])
        .expect(text("Hello, world!"))
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "3.3",
            "as 3.2 frame-wise with RSV1+RSV2 -> echo, then fail 1002",
        )
        .send(vec![Fr::text("Hello, world!")])
        .expect(text("Hello, world!"))
        .send(vec![Fr::text("Hello, world!").rsv(6)])
        .sleep(100)
        .send(vec![Fr::ping("")])
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "3.4",
            "as 3.2 with RSV3, written byte by byte -> echo, then fail 1002",
        )
        .chop(
            vec![
                Fr::text("Hello, world!"),
                Fr::text("Hello, world!").rsv(1),
                Fr::ping(""),
            ],
            1,
        )
        .expect(text("Hello, world!"))
        .fails(&[1002]),
    );
    c.push(
        Case::new("3.5", "binary with RSV1+RSV3 -> fail 1002")
            .send(vec![Fr::binary(bin(8)).rsv(5)])
            .fails(&[1002]),
    );
    c.push(
        Case::new("3.6", "ping with RSV2+RSV3 -> fail 1002 (no pong)")
            .send(vec![Fr::ping("").rsv(3)])
            .fails(&[1002]),
    );
    c.push(
        Case::new("3.7", "close 1000 with all RSV bits -> fail 1002")
            .send(vec![Fr::close(1000, "").rsv(7)])
            .fails(&[1002]),
    );

    // ---- 4 reserved opcodes
    for (i, op) in [3u8, 4, 5, 6, 7].into_iter().enumerate() {
        c.push(
            Case::new(
                format!("4.1.{}", i + 1),
                format!("text, then reserved data opcode {op}, then ping -> echo, fail 1002"),
            )
            .send(vec![
                Fr::text("Hello, world!"),
                Fr::new(op, b"reserved"),
                Fr::ping(""),
            ])
            .expect(text("Hello, world!"))
            .fails(&[1002]),
        );
    }
    for (i, op) in [0xBu8, 0xC, 0xD, 0xE, 0xF].into_iter().enumerate() {
        c.push(
            Case::new(
                format!("4.2.{}", i + 1),
                format!("text, then reserved control opcode {op:#X}, then ping -> echo, fail 1002"),
            )
            .send(vec![
                Fr::text("Hello, world!"),
                Fr::new(op, b"reserved"),
                Fr::ping(""),
            ])
            .expect(text("Hello, world!"))
            .fails(&[1002]),
        );
    }

    // ---- 5 fragmentation
    c.push(
        Case::new("5.1", "ping fragmented into 2 frames -> fail 1002")
            .send(vec![Fr::ping("fragment1").more(), Fr::cont("fragment2")])
            .fails(&[1002]),
    );
    c.push(
        Case::new("5.2", "pong fragmented into 2 frames -> fail 1002")
            .send(vec![Fr::pong("fragment1").more(), Fr::cont("fragment2")])
            .fails(&[1002]),
    );
    let two = text_split(&[b"fragment1", b"fragment2"]);
    c.push(
        Case::new("5.3", "text in 2 fragments -> one message")
            .send(two.clone())
            .expect(text("fragment1fragment2")),
    );
    c.push(
        Case::new(
            "5.4",
            "text in 2 fragments, frame-wise with a pause -> one message",
        )
        .send(vec![two[0].clone()])
        .sleep(100)
        .send(vec![two[1].clone()])
        .expect(text("fragment1fragment2")),
    );
    c.push(
        Case::new(
            "5.5",
            "text in 2 fragments written byte by byte -> one message",
        )
        .chop(two.clone(), 1)
        .expect(text("fragment1fragment2")),
    );
    let with_ping = vec![two[0].clone(), Fr::ping("ping payload"), two[1].clone()];
    c.push(
        Case::new(
            "5.6",
            "text in 2 fragments, ping between -> pong, then message",
        )
        .send(with_ping.clone())
        .expect(pong("ping payload"))
        .expect(text("fragment1fragment2")),
    );
    c.push(
        Case::new("5.7", "as 5.6, frame-wise with pauses")
            .send(vec![with_ping[0].clone()])
            .sleep(100)
            .send(vec![with_ping[1].clone()])
            .expect(pong("ping payload"))
            .sleep(100)
            .send(vec![with_ping[2].clone()])
            .expect(text("fragment1fragment2")),
    );
    c.push(
        Case::new("5.8", "as 5.6, written byte by byte")
            .chop(with_ping, 1)
            .expect(pong("ping payload"))
            .expect(text("fragment1fragment2")),
    );
    let orphan_fin = vec![
        Fr::cont("non-continuation payload"),
        Fr::text("Hello, world!"),
    ];
    let orphan_more = vec![
        Fr::cont("non-continuation payload").more(),
        Fr::text("Hello, world!"),
    ];
    c.push(
        Case::new(
            "5.9",
            "continuation (FIN) with nothing to continue, then text -> fail 1002",
        )
        .send(orphan_fin.clone())
        .fails(&[1002]),
    );
    c.push(
        Case::new("5.10", "as 5.9, frame-wise")
            .send(vec![orphan_fin[0].clone()])
            .sleep(100)
            .send(vec![orphan_fin[1].clone()])
            .fails(&[1002]),
    );
    c.push(
        Case::new("5.11", "as 5.9, byte by byte")
            .chop(orphan_fin, 1)
            .fails(&[1002]),
    );
    c.push(
        Case::new(
            "5.12",
            "continuation (no FIN) with nothing to continue, then text -> fail 1002",
        )
        .send(orphan_more.clone())
        .fails(&[1002]),
    );
    c.push(
        Case::new("5.13", "as 5.12, frame-wise")
            .send(vec![orphan_more[0].clone()])
            .sleep(100)
            .send(vec![orphan_more[1].clone()])
            .fails(&[1002]),
    );
    c.push(
        Case::new("5.14", "as 5.12, byte by byte")
            .chop(orphan_more, 1)
            .fails(&[1002]),
    );
    c.push(
        Case::new(
            "5.15",
            "text in 2 fragments, then 2 continuations of nothing -> echo, fail 1002",
        )
        .send(vec![
            Fr::text("fragment1").more(),
            Fr::cont("fragment2"),
            Fr::cont("fragment3").more(),
            Fr::cont("fragment4"),
        ])
        .expect(text("fragment1fragment2"))
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "5.16",
            "2x (continuation no FIN, text no FIN, continuation FIN) -> fail 1002",
        )
        .send(
            [
                Fr::cont("fragment1").more(),
                Fr::text("fragment2").more(),
                Fr::cont("fragment3"),
            ]
            .concat_n(2),
        )
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "5.17",
            "2x (continuation FIN, text no FIN, continuation FIN) -> fail 1002",
        )
        .send(
            [
                Fr::cont("fragment1"),
                Fr::text("fragment2").more(),
                Fr::cont("fragment3"),
            ]
            .concat_n(2),
        )
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "5.18",
            "text no FIN, then a new text frame while it is open -> fail 1002",
        )
        .send(vec![Fr::text("fragment1").more(), Fr::text("fragment2")])
        .fails(&[1002]),
    );
    let five: Vec<Fr> = text_split(&[
        b"fragment1",
        b"fragment2",
        b"fragment3",
        b"fragment4",
        b"fragment5",
    ]);
    c.push(
        Case::new(
            "5.19",
            "text in 5 fragments, 2 pings between, frame-wise -> 2 pongs, one message",
        )
        .send(vec![five[0].clone(), five[1].clone()])
        .sleep(100)
        .send(vec![Fr::ping("pongme 1!")])
        .expect(pong("pongme 1!"))
        .send(vec![five[2].clone(), five[3].clone()])
        .sleep(100)
        .send(vec![Fr::ping("pongme 2!")])
        .expect(pong("pongme 2!"))
        .send(vec![five[4].clone()])
        .expect(text("fragment1fragment2fragment3fragment4fragment5")),
    );
    c.push(
        Case::new("5.20", "as 5.19, all in one write byte by byte")
            .chop(
                vec![
                    five[0].clone(),
                    five[1].clone(),
                    Fr::ping("pongme 1!"),
                    five[2].clone(),
                    five[3].clone(),
                    Fr::ping("pongme 2!"),
                    five[4].clone(),
                ],
                1,
            )
            .expect(pong("pongme 1!"))
            .expect(pong("pongme 2!"))
            .expect(text("fragment1fragment2fragment3fragment4fragment5")),
    );
    c.push(
        Case::new("5.21", "text in 1000 fragments of 64 B -> one message")
            .send(text_frags(&stars(64_000), 64))
            .expect(text(stars(64_000))),
    );
    c.push(
        Case::new(
            "5.22",
            "binary in 3 fragments with empty middle -> one message",
        )
        .send(vec![
            Fr::binary(bin(10)).more(),
            Fr::cont("").more(),
            Fr::cont(bin(5)),
        ])
        .expect(binary([bin(10), bin(5)].concat())),
    );
    c.push(
        Case::new(
            "5.23",
            "text no FIN, then a binary frame while it is open -> fail 1002",
        )
        .send(vec![Fr::text("fragment1").more(), Fr::binary("fragment2")])
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "5.24",
            "close fragmented (close no FIN + continuation) -> fail 1002",
        )
        .send(vec![Fr::close(1000, "").more(), Fr::cont("")])
        .fails(&[1002]),
    );

    // ---- 6 UTF-8
    c.push(
        Case::new("6.1.1", "empty text")
            .send(vec![Fr::text("")])
            .expect(text("")),
    );
    c.push(
        Case::new("6.1.2", "3 empty text fragments -> empty message")
            .send(text_split(&[b"", b"", b""]))
            .expect(text("")),
    );
    c.push(
        Case::new("6.1.3", "empty, \"middle\", empty fragments -> \"middle\"")
            .send(text_split(&[b"", b"middle", b""]))
            .expect(text("middle")),
    );
    c.push(
        Case::new("6.2.1", "valid multi-byte UTF-8 in one frame")
            .send(vec![Fr::text(HELLO_UTF8)])
            .expect(text(HELLO_UTF8)),
    );
    c.push(
        Case::new("6.2.2", "valid UTF-8 fragmented on a code point boundary")
            .send(text_split(&[
                HELLO_UTF8.split_at(8).0.as_bytes(),
                HELLO_UTF8.split_at(8).1.as_bytes(),
            ]))
            .expect(text(HELLO_UTF8)),
    );
    c.push(
        Case::new(
            "6.2.3",
            "valid UTF-8 in 1-byte fragments (code points split across frames)",
        )
        .send(text_frags(HELLO_UTF8.as_bytes(), 1))
        .expect(text(HELLO_UTF8)),
    );
    c.push(
        Case::new("6.2.4", "κόσμε in 1-byte fragments")
            .send(text_frags(KOSME.as_bytes(), 1))
            .expect(text(KOSME)),
    );
    c.push(
        Case::new("6.2.5", "€ (E2 82 AC) split 1+2 across fragments")
            .send(text_split(&[b"\xe2", b"\x82\xac"]))
            .expect(text("€")),
    );
    c.push(
        Case::new("6.2.6", "U+1F600 (F0 9F 98 80) split 2+2, ping between")
            .send(vec![
                Fr::text(b"\xf0\x9f").more(),
                Fr::ping("x"),
                Fr::cont(b"\x98\x80"),
            ])
            .expect(pong("x"))
            .expect(text("😀")),
    );
    c.push(
        Case::new(
            "6.3.1",
            "invalid UTF-8 (surrogate) in one frame -> fail 1007",
        )
        .send(vec![Fr::text(KOSME_INVALID)])
        .fails(&[1007]),
    );
    c.push(
        Case::new("6.3.2", "same payload in 1-byte fragments -> fail 1007")
            .send(text_frags(KOSME_INVALID, 1))
            .fails(&[1007]),
    );
    c.push(
        Case::new(
            "6.4.1",
            "3 fragments, the 2nd makes it invalid, pauses -> fail 1007 before the 3rd (fail fast)",
        )
        .send(vec![Fr::text(&KOSME_INVALID[..12]).more()])
        .sleep(200)
        .send(vec![Fr::cont(&KOSME_INVALID[12..13]).more()])
        .fail_fast(1000)
        .send(vec![Fr::cont(&KOSME_INVALID[13..])])
        .fails(&[1007]),
    );
    c.push(
        Case::new(
            "6.4.2",
            "invalid already in the 1st fragment (no FIN) -> fail 1007 before the rest (fail fast)",
        )
        .send(vec![Fr::text(&KOSME_INVALID[..13]).more()])
        .fail_fast(1000)
        .send(vec![Fr::cont(&KOSME_INVALID[13..])])
        .fails(&[1007]),
    );
    c.push(
        Case::new(
            "6.4.3",
            "lead byte CE, ASCII 'A' in the next fragment -> fail 1007",
        )
        .send(text_split(&[b"ab\xce", b"Acd"]))
        .fails(&[1007]),
    );
    c.push(
        Case::new(
            "6.4.4",
            "surrogate ED | A0 80 split across fragments -> fail 1007",
        )
        .send(text_split(&[b"ab\xed", b"\xa0\x80cd"]))
        .fails(&[1007]),
    );
    c.push(
        Case::new(
            "6.4.5",
            "message ends inside a code point (CE BA E1 | BD) -> fail 1007",
        )
        .send(text_split(&[b"\xce\xba\xe1", b"\xbd"]))
        .fails(&[1007]),
    );
    // Single-frame UTF-8 boundary cases (Markus Kuhn's test set, as in Autobahn 6.5-6.22).
    let valid: &[(&str, &str, &[u8])] = &[
        ("6.5.1", "κόσμε", KOSME.as_bytes()),
        ("6.7.1", "U+0000", b"\x00"),
        ("6.7.2", "U+0080 (first 2-byte)", b"\xc2\x80"),
        ("6.7.3", "U+0800 (first 3-byte)", b"\xe0\xa0\x80"),
        ("6.7.4", "U+10000 (first 4-byte)", b"\xf0\x90\x80\x80"),
        ("6.9.1", "U+007F (last 1-byte)", b"\x7f"),
        ("6.9.2", "U+07FF (last 2-byte)", b"\xdf\xbf"),
        ("6.9.3", "U+FFFF (last 3-byte)", b"\xef\xbf\xbf"),
        ("6.11.1", "U+D7FF", b"\xed\x9f\xbf"),
        ("6.11.2", "U+E000", b"\xee\x80\x80"),
        ("6.11.3", "U+FFFD", b"\xef\xbf\xbd"),
        ("6.11.4", "U+10FFFF", b"\xf4\x8f\xbf\xbf"),
        ("6.22.1", "U+FFFE (noncharacter, valid)", b"\xef\xbf\xbe"),
        (
            "6.22.2",
            "U+1FFFF (noncharacter, valid)",
            b"\xf0\x9f\xbf\xbf",
        ),
    ];
    for (id, what, bytes) in valid {
        c.push(
            Case::new(*id, format!("valid UTF-8: {what}"))
                .send(vec![Fr::text(bytes)])
                .expect(text(bytes)),
        );
    }
    let invalid: &[(&str, &str, &[u8])] = &[
        (
            "6.8.1",
            "5-byte sequence F8 88 80 80 80",
            b"\xf8\x88\x80\x80\x80",
        ),
        (
            "6.8.2",
            "6-byte sequence FC 84 80 80 80 80",
            b"\xfc\x84\x80\x80\x80\x80",
        ),
        ("6.9.4", "U+1FFFFF (F7 BF BF BF)", b"\xf7\xbf\xbf\xbf"),
        ("6.11.5", "U+110000 (F4 90 80 80)", b"\xf4\x90\x80\x80"),
        ("6.12.1", "lone continuation 80", b"\x80"),
        ("6.12.2", "lone continuation BF", b"\xbf"),
        ("6.12.3", "continuations 80 BF 80", b"\x80\xbf\x80"),
        ("6.13.1", "lonely start C0 then space", b"\xc0\x20"),
        ("6.13.2", "lonely start E0 then space", b"\xe0\x20"),
        ("6.14.1", "2-byte sequence, last byte missing (DF)", b"\xdf"),
        (
            "6.14.2",
            "3-byte sequence, last byte missing (EF BF)",
            b"\xef\xbf",
        ),
        (
            "6.14.3",
            "4-byte sequence, last byte missing (F4 8F BF)",
            b"\xf4\x8f\xbf",
        ),
        (
            "6.15.1",
            "concatenated incomplete sequences",
            b"\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf",
        ),
        ("6.16.1", "impossible byte FE", b"\xfe"),
        ("6.16.2", "impossible byte FF", b"\xff"),
        ("6.16.3", "FE FE FF FF", b"\xfe\xfe\xff\xff"),
        ("6.17.1", "overlong '/' C0 AF", b"\xc0\xaf"),
        ("6.17.2", "overlong '/' E0 80 AF", b"\xe0\x80\xaf"),
        ("6.17.3", "overlong '/' F0 80 80 AF", b"\xf0\x80\x80\xaf"),
        ("6.18.1", "max overlong C1 BF", b"\xc1\xbf"),
        ("6.18.2", "max overlong E0 9F BF", b"\xe0\x9f\xbf"),
        ("6.18.3", "max overlong F0 8F BF BF", b"\xf0\x8f\xbf\xbf"),
        ("6.19.1", "overlong NUL C0 80", b"\xc0\x80"),
        ("6.19.2", "overlong NUL E0 80 80", b"\xe0\x80\x80"),
        ("6.20.1", "surrogate U+D800", b"\xed\xa0\x80"),
        ("6.20.2", "surrogate U+DBFF", b"\xed\xaf\xbf"),
        ("6.20.3", "surrogate U+DC00", b"\xed\xb0\x80"),
        ("6.20.4", "surrogate U+DFFF", b"\xed\xbf\xbf"),
        (
            "6.21.1",
            "surrogate pair U+D800 U+DC00",
            b"\xed\xa0\x80\xed\xb0\x80",
        ),
    ];
    for (id, what, bytes) in invalid {
        let mut payload = b"ok ".to_vec();
        payload.extend_from_slice(bytes);
        c.push(
            Case::new(*id, format!("invalid UTF-8: {what} -> fail 1007"))
                .send(vec![Fr::text(payload)])
                .fails(&[1007]),
        );
    }

    // ---- 7 close handling
    c.push(
        Case::new("7.1.1", "text echo, then clean close")
            .send(vec![Fr::text("Hello World!")])
            .expect(text("Hello World!")),
    );
    c.push(
        Case::new("7.1.2", "close twice -> one close reply, TCP closed")
            .send(vec![Fr::close(1000, ""), Fr::close(1000, "")])
            .close_reply(&[1000]),
    );
    c.push(
        Case::new("7.1.3", "close, then ping -> close reply only (no pong)")
            .send(vec![Fr::close(1000, ""), Fr::ping("Hello World!")])
            .close_reply(&[1000]),
    );
    c.push(
        Case::new("7.1.4", "close, then text -> close reply only (no echo)")
            .send(vec![Fr::close(1000, ""), Fr::text("Hello World!")])
            .close_reply(&[1000]),
    );
    c.push(
        Case::new(
            "7.1.5",
            "text fragment, close, continuation -> close reply only",
        )
        .send(vec![
            Fr::text("fragment1").more(),
            Fr::close(1000, ""),
            Fr::cont("fragment2"),
        ])
        .close_reply(&[1000]),
    );
    c.push(
        Case::new(
            "7.1.6",
            "128 KiB text, close, ping in one write [implementation-defined order]",
        )
        .send(vec![
            Fr::text(stars(MAX)),
            Fr::close(1000, ""),
            Fr::ping("Hello World!"),
        ])
        .observe(),
    );
    c.push(
        Case::new("7.3.1", "close without payload -> close reply")
            .send(vec![Fr::new(OP_CLOSE, "")])
            .close_reply(&[NO_CODE, 1000]),
    );
    c.push(
        Case::new("7.3.2", "close with 1-byte payload -> fail 1002")
            .send(vec![Fr::new(OP_CLOSE, "a")])
            .fails(&[1002]),
    );
    c.push(
        Case::new("7.3.3", "close 1000 without reason -> close 1000")
            .send(vec![Fr::close(1000, "")])
            .close_reply(&[1000]),
    );
    c.push(
        Case::new("7.3.4", "close 1000 with reason -> close 1000")
            .send(vec![Fr::close(1000, "Hello World!")])
            .close_reply(&[1000]),
    );
    c.push(
        Case::new(
            "7.3.5",
            "close 1000 with 123-byte reason (payload 125) -> close 1000",
        )
        .send(vec![Fr::close(1000, stars(123))])
        .close_reply(&[1000]),
    );
    c.push(
        Case::new(
            "7.3.6",
            "close 1000 with 124-byte reason (payload 126) -> fail 1002",
        )
        .send(vec![Fr::close(1000, stars(124))])
        .fails(&[1002]),
    );
    c.push(
        Case::new(
            "7.5.1",
            "close 1000 with invalid UTF-8 reason -> fail 1007 (1002 allowed)",
        )
        .send(vec![Fr::close(1000, KOSME_INVALID)])
        .fails_or(&[1007], &[1002]),
    );
    let valid_codes = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ];
    for (i, code) in valid_codes.into_iter().enumerate() {
        c.push(
            Case::new(
                format!("7.7.{}", i + 1),
                format!("close with valid code {code} -> close reply"),
            )
            .send(vec![Fr::close(code, "")])
            .close_reply(&[code, 1000]),
        );
    }
    let invalid_codes = [0u16, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015];
    for (i, code) in invalid_codes.into_iter().enumerate() {
        c.push(
            Case::new(
                format!("7.9.{}", i + 1),
                format!("close with invalid code {code} -> fail 1002"),
            )
            .send(vec![Fr::close(code, "")])
            .fails(&[1002]),
        );
    }
    for (i, code) in [5000u16, 65535, 1012, 1013, 1014].into_iter().enumerate() {
        c.push(
            Case::new(
                format!("7.13.{}", i + 1),
                format!("close with code {code} [observe]"),
            )
            .send(vec![Fr::close(code, "")])
            .observe(),
        );
    }

    // ---- 9 limits (server max_message_bytes = MAX)
    c.push(
        Case::new(
            "9.1.1",
            format!("text of exactly the limit ({MAX} B) -> echoed"),
        )
        .send(vec![Fr::text(stars(MAX))])
        .expect(text(stars(MAX))),
    );
    c.push(
        Case::new("9.1.2", "binary of exactly the limit -> echoed")
            .send(vec![Fr::binary(bin(MAX))])
            .expect(binary(bin(MAX))),
    );
    c.push(
        Case::new(
            "9.1.3",
            "text of exactly the limit in 1 KiB fragments -> echoed",
        )
        .send(text_frags(&stars(MAX), 1024))
        .expect(text(stars(MAX))),
    );
    c.push(
        Case::new(
            "9.1.4",
            "two messages just under the limit -> both echoed (limit is per message)",
        )
        .send(vec![Fr::binary(bin(MAX - 1)), Fr::binary(bin(MAX - 1))])
        .expect(binary(bin(MAX - 1)))
        .expect(binary(bin(MAX - 1))),
    );
    c.push(
        Case::new("9.2.1", "text one byte over the limit -> fail 1009")
            .send(vec![Fr::text(stars(MAX + 1))])
            .fails(&[1009]),
    );
    c.push(
        Case::new("9.2.2", "binary one byte over the limit -> fail 1009")
            .send(vec![Fr::binary(bin(MAX + 1))])
            .fails(&[1009]),
    );
    c.push(
        Case::new(
            "9.2.3",
            "binary in 1 KiB fragments adding up to limit + 1 -> fail 1009",
        )
        .send(binary_frags(&bin(MAX + 1), 1024))
        .fails(&[1009]),
    );
    c.push(
        Case::new(
            "9.2.4",
            "text in 64 B fragments adding up over the limit -> fail 1009",
        )
        .send(text_frags(&stars(MAX + 64), 64))
        .fails(&[1009]),
    );
    c.push(
        Case::new("9.3.1", "binary header declaring 2^40 B, no payload -> fail 1009 at once (no allocation, no wait)")
            .send(vec![Fr::binary("").len(Len::Declared(1 << 40))])
            .fails(&[1009]),
    );
    c.push(
        Case::new(
            "9.3.2",
            "text header declaring limit + 1 B, no payload -> fail 1009 at once",
        )
        .send(vec![Fr::text("").len(Len::Declared(MAX as u64 + 1))])
        .fails(&[1009]),
    );
    c.push(
        Case::new(
            "9.3.3",
            "64-bit length with the MSB set (RFC: MUST be 0) -> fail 1002 (1009 allowed)",
        )
        .send(vec![
            Fr::binary("").len(Len::Declared(0x8000_0000_0000_0005)),
        ])
        .fails_or(&[1002], &[1009]),
    );
    c.push(
        Case::new(
            "9.3.4",
            "ping header declaring 2^40 B -> fail 1002 (control > 125; 1009 allowed)",
        )
        .send(vec![Fr::ping("").len(Len::Declared(1 << 40))])
        .fails_or(&[1002], &[1009]),
    );
    c.push(
        Case::new(
            "9.3.5",
            "continuation header declaring 2^40 B inside an open message -> fail 1009",
        )
        .send(vec![
            Fr::text("start").more(),
            Fr::cont("").len(Len::Declared(1 << 40)),
        ])
        .fails(&[1009]),
    );

    // ---- 12 / 13 compression: not offered by tidings.
    c.push(
        Case::new(
            "12.0",
            "permessage-deflate offered -> declined; RSV1 text then -> fail 1002",
        )
        .headers("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
        .send(vec![Fr::text("Hello").rsv(4)])
        .fails(&[1002]),
    );

    // ---- extras: masking, pipelining
    c.push(
        Case::new("X.1", "unmasked text from the client -> fail 1002")
            .send(vec![Fr::text("Hello").unmasked()])
            .fails(&[1002]),
    );
    c.push(
        Case::new(
            "X.2",
            "unmasked ping from the client -> fail 1002 (no pong)",
        )
        .send(vec![Fr::ping("Hello").unmasked()])
        .fails(&[1002]),
    );
    c.push(
        Case::new("X.3", "masked text, then unmasked close -> echo, fail 1002")
            .send(vec![Fr::text("Hello"), Fr::close(1000, "").unmasked()])
            .expect(text("Hello"))
            .fails(&[1002]),
    );
    c.push(
        Case::new(
            "X.4",
            "frames in the same write as the upgrade request (client breaks §4.1) [observe]",
        )
        .pipelined(vec![Fr::text("early"), Fr::ping("early ping")])
        .observe(),
    );
    c
}

// ---------------------------------------------------------------- runner

#[derive(Debug)]
struct Outcome {
    verdict: Verdict,
    detail: String,
    frames_checked: usize,
}

/// Runs one case: its steps, then its end, collecting what the server did.
async fn run_case(
    addr: SocketAddr,
    seed: u64,
    case: &Case,
    seen: &mut Vec<String>,
    frames: &mut usize,
) -> (Verdict, String) {
    let mut pipelined = Vec::new();
    let mut rng = rfc6455::wire::Rng::new(seed ^ 0xA5A5);
    for f in &case.pipelined {
        pipelined.extend(f.encode(&mut rng));
    }
    let mut conn = match Conn::connect(addr, seed, &case.headers, &pipelined).await {
        Ok(c) => c,
        // Observed cases may provoke a refused handshake: that is their record.
        Err(e) if matches!(case.end, End::Observe) => {
            return (Verdict::Informational, format!("handshake refused: {e}"));
        }
        Err(e) => return (Verdict::Failed, format!("handshake: {e}")),
    };
    let result = drive(&mut conn, case, seen).await;
    *frames = conn.frames_checked;
    if !conn.violations.is_empty() {
        return (
            Verdict::Failed,
            format!(
                "server frames violate RFC 6455: {}",
                conn.violations.join("; ")
            ),
        );
    }
    result
}

async fn drive(conn: &mut Conn, case: &Case, seen: &mut Vec<String>) -> (Verdict, String) {
    let mut grade = Verdict::Ok;
    let mut notes: Vec<String> = Vec::new();
    if case.headers.contains("permessage-deflate") {
        match conn.response_header("sec-websocket-extensions") {
            None => notes.push("extension declined".into()),
            Some(v) => {
                return (
                    Verdict::Failed,
                    format!("server accepted extension {v:?} it does not implement"),
                );
            }
        }
    }
    let mut pending: Option<Ev> = None;
    let mut write_error = None;
    'steps: for step in &case.steps {
        match step {
            Step::Send(frames) => {
                if let Err(e) = conn.send(frames).await {
                    write_error = Some(format!("write failed: {:?}", e.kind()));
                    break 'steps;
                }
            }
            Step::Chop(frames, n) => {
                if let Err(e) = conn.send_chopped(frames, *n).await {
                    write_error = Some(format!("write failed: {:?}", e.kind()));
                    break 'steps;
                }
            }
            Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Expect(exp) => {
                let ev = conn.next_event().await;
                seen.push(ev.to_string());
                if !exp.matches(&ev) {
                    return (Verdict::Failed, format!("expected {exp}, got {ev}"));
                }
            }
            Step::FailFast(ms) => {
                match tokio::time::timeout(Duration::from_millis(*ms), conn.next_event()).await {
                    Ok(ev) => {
                        notes.push(format!("failed fast ({ev})"));
                        pending = Some(ev);
                        break 'steps;
                    }
                    Err(_) => {
                        grade = Verdict::NonStrict;
                        notes.push(format!("did not fail fast: nothing within {ms} ms"));
                    }
                }
            }
        }
    }
    if let Some(w) = &write_error {
        // The server may legitimately have closed already (fail cases); the
        // end check below decides.
        notes.push(w.clone());
    }
    match &case.end {
        End::Clean => {
            if let Some(w) = write_error {
                return (Verdict::Failed, w);
            }
            if let Err(e) = conn.send(&[Fr::close(1000, "")]).await {
                return (
                    Verdict::Failed,
                    format!("sending close 1000 failed: {:?}", e.kind()),
                );
            }
            let ev = next_ev(conn, &mut pending, seen).await;
            if !matches!(ev, Ev::Close(Some(1000), _)) {
                return (
                    Verdict::Failed,
                    format!("expected close 1000 reply to our close, got {ev}"),
                );
            }
            let (ok, tcp) = tcp_closed_by_server(conn).await;
            if !ok {
                return (Verdict::Failed, format!("close 1000 exchanged, but {tcp}"));
            }
            notes.push(format!("close 1000, {tcp}"));
        }
        End::Close {
            ok,
            non_strict,
            drop_ok,
        } => {
            let ev = next_ev(conn, &mut pending, seen).await;
            match &ev {
                Ev::Close(code, _) => {
                    let code = code.unwrap_or(NO_CODE);
                    if ok.contains(&code) {
                    } else if non_strict.contains(&code) {
                        grade = grade.max(Verdict::NonStrict);
                        notes.push(format!("close code {code} instead of {ok:?}"));
                    } else {
                        return (Verdict::Failed, format!("expected close {ok:?}, got {ev}"));
                    }
                    let (closed, tcp) = tcp_closed_by_server(conn).await;
                    if !closed {
                        return (Verdict::Failed, format!("{ev}, but {tcp}"));
                    }
                    notes.insert(0, format!("{ev}, {tcp}"));
                }
                Ev::Eof | Ev::Broken(_) if *drop_ok => {
                    grade = grade.max(Verdict::NonStrict);
                    notes.insert(
                        0,
                        format!("{ev} without a close frame (expected close {ok:?})"),
                    );
                }
                _ => return (Verdict::Failed, format!("expected close {ok:?}, got {ev}")),
            }
        }
        End::Observe => {
            grade = Verdict::Informational;
            let mut got = Vec::new();
            loop {
                let ev = match pending.take() {
                    Some(ev) => ev,
                    None => {
                        match tokio::time::timeout(Duration::from_millis(1500), conn.next_event())
                            .await
                        {
                            Ok(ev) => ev,
                            Err(_) => {
                                // Quiet: close normally to see the handshake too.
                                got.push("(quiet)".to_string());
                                if conn.send(&[Fr::close(1000, "")]).await.is_err() {
                                    got.push("our close not writable".into());
                                    break;
                                }
                                continue;
                            }
                        }
                    }
                };
                let end = matches!(ev, Ev::Eof | Ev::Broken(_));
                got.push(ev.to_string());
                if end || got.len() > 8 {
                    break;
                }
            }
            notes.insert(0, got.join(" -> "));
        }
    }
    (grade, notes.join("; "))
}

/// The stashed event (from a fail-fast step) or the next one from the connection.
async fn next_ev(conn: &mut Conn, pending: &mut Option<Ev>, seen: &mut Vec<String>) -> Ev {
    let ev = match pending.take() {
        Some(ev) => ev,
        None => conn.next_event().await,
    };
    seen.push(ev.to_string());
    ev
}

/// After a close frame from the server, the server must close TCP (not us).
async fn tcp_closed_by_server(conn: &mut Conn) -> (bool, String) {
    let started = Instant::now();
    match tokio::time::timeout(CLOSE_TCP_WITHIN, conn.next_event()).await {
        Ok(Ev::Eof) => (
            true,
            format!(
                "TCP closed by server ({} ms)",
                started.elapsed().as_millis()
            ),
        ),
        Ok(Ev::Broken(e)) => (
            true,
            format!("TCP reset by server ({e}: our unread bytes were pending)"),
        ),
        Ok(ev) => (false, format!("server sent {ev} after its close frame")),
        Err(_) => (
            false,
            format!(
                "server kept TCP open {} s after the closing handshake",
                CLOSE_TCP_WITHIN.as_secs()
            ),
        ),
    }
}

async fn run_with_timeout(addr: SocketAddr, seed: u64, case: Case) -> Outcome {
    let mut seen = Vec::new();
    let mut frames = 0;
    let r = tokio::time::timeout(
        CASE_TIMEOUT,
        run_case(addr, seed, &case, &mut seen, &mut frames),
    )
    .await;
    let (verdict, detail) = match r {
        Ok(x) => x,
        Err(_) => (
            Verdict::Failed,
            format!(
                "timed out after {} s (hang); received so far: [{}]",
                CASE_TIMEOUT.as_secs(),
                seen.join(", ")
            ),
        ),
    };
    Outcome {
        verdict,
        detail,
        frames_checked: frames,
    }
}

#[test]
fn sha1_and_accept_key_match_rfc6455_example() {
    // RFC 6455 §1.3 example and FIPS 180 "abc".
    assert_eq!(
        rfc6455::wire::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(
        rfc6455::wire::base64(&rfc6455::wire::sha1(b"abc")),
        "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
    );
    assert_eq!(rfc6455::wire::base64(b"ab"), "YWI=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6455_conformance_raw_echo() {
    let config = ServerConfig::default().with_ws(WsConfig::default().with_max_message_bytes(MAX));
    let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let handle = server.serve(tidings_ws::raw_echo);
    let addr = handle.local_addr();

    let table = cases();
    let mut ids = std::collections::HashSet::new();
    for case in &table {
        assert!(ids.insert(case.id.clone()), "duplicate case id {}", case.id);
    }
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, case) in table.iter().cloned().enumerate() {
        set.spawn(async move {
            (
                i,
                run_with_timeout(addr, 0x5EED_0000 + i as u64, case).await,
            )
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = (0..table.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, o) = r.unwrap();
        outcomes[i] = Some(o);
    }
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(Option::unwrap).collect();

    // Aggregate check: every server frame of every case went through the decoder's RFC checks.
    let frames: usize = outcomes.iter().map(|o| o.frames_checked).sum();
    let masked_failures = outcomes
        .iter()
        .filter(|o| o.detail.contains("is masked"))
        .count();

    let w_id = table.iter().map(|c| c.id.len()).max().unwrap_or(4).max(4);
    let w_desc = 64;
    println!();
    println!(
        "RFC 6455 conformance, tidings-ws raw echo (max_message_bytes = {MAX}), {} cases in {:.1} s",
        table.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<w_id$}  {:<w_desc$}  {:<13}  detail",
        "case", "description", "verdict"
    );
    println!("{}", "-".repeat(w_id + w_desc + 13 + 30));
    let mut counts = std::collections::BTreeMap::new();
    for (case, o) in table.iter().zip(&outcomes) {
        *counts.entry(o.verdict).or_insert(0usize) += 1;
        let desc: String = if case.desc.chars().count() > w_desc {
            case.desc
                .chars()
                .take(w_desc - 1)
                .chain(std::iter::once('…'))
                .collect()
        } else {
            case.desc.clone()
        };
        println!(
            "{:<w_id$}  {:<w_desc$}  {:<13}  {}",
            case.id,
            desc,
            o.verdict.to_string(),
            o.detail
        );
    }
    println!("{}", "-".repeat(w_id + w_desc + 13 + 30));
    println!(
        "{:<w_id$}  {:<w_desc$}  {:<13}  {frames} server frames checked: unmasked, RSV 0, minimal length",
        "X.5",
        "server frames are never masked (all cases)",
        if masked_failures == 0 { "OK" } else { "FAILED" }
    );
    let summary: Vec<String> = counts.iter().map(|(v, n)| format!("{v}: {n}")).collect();
    println!("summary: {}", summary.join(", "));

    handle.shutdown().await;

    let failed: Vec<String> = table
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.verdict == Verdict::Failed)
        .map(|(c, o)| format!("{} {}: {}", c.id, c.desc, o.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) FAILED:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(frames > 0 && masked_failures == 0);
}

#[test]
fn own_decoder_flags_masked_and_non_minimal_frames() {
    let mut rng = rfc6455::wire::Rng::new(7);
    // Our encoder masks; parsed back, the decoder must unmask and report it.
    let wire = Fr::text("Hello").encode(&mut rng);
    let (f, used) = rfc6455::wire::parse_frame(&wire).unwrap().unwrap();
    assert_eq!(
        (f.masked, f.minimal_len, f.payload.as_slice(), used),
        (true, true, &b"Hello"[..], wire.len())
    );
    let wire = Fr::text("Hello")
        .unmasked()
        .len(Len::Force16)
        .encode(&mut rng);
    let (f, _) = rfc6455::wire::parse_frame(&wire).unwrap().unwrap();
    assert_eq!(
        (f.masked, f.minimal_len, f.payload.as_slice()),
        (false, false, &b"Hello"[..])
    );
    // Incomplete input asks for more bytes.
    assert!(
        rfc6455::wire::parse_frame(&wire[..wire.len() - 1])
            .unwrap()
            .is_none()
    );
}
