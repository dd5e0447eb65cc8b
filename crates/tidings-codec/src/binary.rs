//! The binary codec (`tidings.v1.bin`): a 2-byte header then an rkyv archive of the frame, validated with bytecheck and read in place.
//!
//! # Layout (format 1)
//!
//! ```text
//! byte 0      format: 0x01
//! byte 1      frame type (1 = hello … 14 = close, 15 = rpc, see FrameTag)
//! bytes 2..   rkyv 0.8 archive of the frame's body (the `*W` types below),
//!             root object at the end; little endian, 32-bit relative
//!             pointers, no alignment padding
//! ```
//!
//! One body type per frame type (not one enum for all) keeps small frames
//! small: a `ping` is 10 bytes, not the size of the largest variant.
//!
//! # Trust
//!
//! Every received archive is checked by bytecheck before any field is read
//! (`rkyv::access`): relative pointers stay inside the frame, objects do not
//! overlap, strings are UTF-8, `bool`s are 0 or 1, option tags are valid. Then
//! the protocol rules are checked (channel names, gap ranges) exactly as the
//! JSON codec does. Malformed input is a [`CodecError`], never a panic and
//! never undefined behaviour. Bytes the root does not reach are ignored.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};
use rkyv::rancor;
use rkyv::ser::{Positional, Writer};
use rkyv::with::{AsOwned, Map};
use rkyv::{Archive, Deserialize, Serialize};
use tidings_protocol::{
    Ack, ChannelName, ChannelPosition, Close, CodecError, CodecKind, ErrorCode, ErrorFrame, Frame,
    FrameCodec, FrameType, Gap, Hello, Message, MessageId, Ping, Publish, PublishAck, Publisher,
    ResumeToken, RpcCode, RpcFault, RpcFrame, RpcKind, SessionId, Subscribe, Subscribed,
    Unsubscribe, Welcome,
};

/// Size of the header in front of the archive: format byte and frame type.
const HEADER_LEN: usize = 2;

/// Longest string an archived string field holds inline (rkyv with
/// `pointer_width_32`: the 8 bytes of the field itself).
const INLINE_STRING: usize = 8;

/// Zero-copy binary frames (`tidings.v1.bin`) on [rkyv](https://docs.rs/rkyv) 0.8.
///
/// * **Encode** appends to the caller's `BytesMut` (no intermediate buffer; the
///   serializer's scratch arena is rkyv's per-thread arena, reused).
/// * **Decode** ([`FrameCodec::decode`]) validates the archive with bytecheck
///   and builds an owned [`Frame`] whose payload is a `Bytes` slice of the
///   input (no copy).
/// * **View** ([`BinaryCodec::view`]) validates and reads fields in place, with
///   no heap allocation at all.
///
/// ```
/// use bytes::Bytes;
/// use tidings_codec::BinaryCodec;
/// use tidings_protocol::{ChannelName, Frame, FrameCodec, Message, MessageId};
///
/// let codec = BinaryCodec::new();
/// let frame = Frame::Message(Message {
///     channel: ChannelName::new("room:lobby").unwrap(),
///     seq: 42,
///     id: MessageId(7),
///     payload: Bytes::from_static(b"\x00\x01 any bytes"),
/// });
/// let wire = codec.encode_to_bytes(&frame).unwrap();
/// assert_eq!(&wire[..2], &[1, 4], "format 1, frame type 4 (message)");
///
/// // Zero-copy view: validated, read in place.
/// let view = BinaryCodec::view(&wire).unwrap();
/// let m = view.as_message().unwrap();
/// assert_eq!((m.channel(), m.seq(), m.payload()), ("room:lobby", 42, &b"\x00\x01 any bytes"[..]));
///
/// // Owned frame; the payload is a slice of `wire`, not a copy.
/// assert_eq!(codec.decode(&wire).unwrap(), frame);
///
/// // Garbage is an error, never a panic.
/// assert!(codec.decode(&Bytes::from_static(b"\x01\x04garbage")).is_err());
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct BinaryCodec;

impl BinaryCodec {
    /// The format byte this version writes and reads (byte 0 of every frame).
    pub const FORMAT: u8 = 1;

    /// The codec.
    pub fn new() -> Self {
        Self
    }

    /// The exact size of `frame`'s encoding, in bytes, computed without encoding.
    ///
    /// [`FrameCodec::encode`] reserves this much once (no regrowth while the
    /// archive is written) and [`FrameCodec::encode_to_bytes`] allocates
    /// exactly this much.
    ///
    /// ```
    /// use tidings_codec::BinaryCodec;
    /// use tidings_protocol::{Frame, FrameCodec, Ping};
    /// let ping = Frame::Ping(Ping { nonce: 1 });
    /// assert_eq!(BinaryCodec::encoded_len(&ping), 10);
    /// assert_eq!(BinaryCodec::new().encode_to_bytes(&ping).unwrap().len(), 10);
    /// ```
    pub fn encoded_len(frame: &Frame) -> usize {
        /// Bytes a string adds outside its 8-byte field: none when inline.
        fn string(s: &str) -> usize {
            if s.len() <= INLINE_STRING { 0 } else { s.len() }
        }
        fn ch(c: &ChannelName) -> usize {
            string(c.as_str())
        }
        HEADER_LEN
            + match frame {
                Frame::Hello(h) => {
                    h.publisher.as_ref().map_or(0, |p| {
                        size_of::<ArchivedHelloPublisherW<'static>>()
                            - size_of::<ArchivedHelloW<'static>>()
                            + string(p.id())
                    }) + size_of::<ArchivedHelloW<'static>>()
                        + h.resume.as_ref().map_or(0, |t| string(&t.0))
                        + h.positions
                            .iter()
                            .map(|p| size_of::<ArchivedPositionW<'static>>() + ch(&p.channel))
                            .sum::<usize>()
                }
                Frame::Welcome(w) => {
                    size_of::<ArchivedWelcomeW<'static>>()
                        + string(&w.session.0)
                        + string(&w.resume_token.0)
                }
                Frame::Publish(p) => {
                    size_of::<ArchivedPublishW<'static>>() + ch(&p.channel) + p.payload.len()
                }
                Frame::Message(m) => {
                    size_of::<ArchivedMessageW<'static>>() + ch(&m.channel) + m.payload.len()
                }
                Frame::Ack(Ack { channel, .. }) | Frame::Subscribed(Subscribed { channel, .. }) => {
                    size_of::<ArchivedChannelSeqW<'static>>() + ch(channel)
                }
                Frame::Subscribe(s) => size_of::<ArchivedSubscribeW<'static>>() + ch(&s.channel),
                Frame::Unsubscribe(u) => {
                    size_of::<ArchivedUnsubscribeW<'static>>() + ch(&u.channel)
                }
                Frame::Gap(g) => size_of::<ArchivedGapW<'static>>() + ch(&g.channel),
                Frame::PublishAck(_) | Frame::Ping(_) | Frame::Pong(_) => size_of::<ArchivedU64W>(),
                Frame::Error(e) => {
                    size_of::<ArchivedErrorW<'static>>()
                        + string(e.code.as_str())
                        + string(&e.message)
                }
                Frame::Close(c) => size_of::<ArchivedCloseW<'static>>() + string(&c.reason),
                Frame::Rpc(r) => size_of::<ArchivedRpcW<'static>>() + rpc_len(r),
                _ => 0,
            }
    }

    /// Validates a received frame and returns a view that reads it in place.
    ///
    /// Performs no heap allocation (on success; errors carry a message). The
    /// view borrows `input`; [`MessageView::payload_bytes`] hands out the
    /// payload as a `Bytes` slice of it.
    pub fn view(input: &Bytes) -> Result<FrameView<'_>, CodecError> {
        let (&format, rest) = input
            .split_first()
            .ok_or_else(|| malformed("empty binary frame".to_owned()))?;
        if format != Self::FORMAT {
            return Err(malformed(bad_format(format)));
        }
        let (&tag, archive) = rest.split_first().ok_or_else(|| {
            malformed("binary frame is shorter than its 2-byte header".to_owned())
        })?;
        let tag = FrameTag::from_u8(tag).ok_or_else(|| CodecError::UnknownFrameType {
            name: format!("binary frame type {tag}"),
        })?;
        let inner = match tag {
            FrameTag::Hello => {
                let h = access::<ArchivedHelloW<'static>>(archive, tag)?;
                for p in h.positions.iter() {
                    check_channel(&p.channel)?;
                }
                Inner::Hello(h)
            }
            FrameTag::HelloPublisher => {
                let h = access::<ArchivedHelloPublisherW<'static>>(archive, tag)?;
                for p in h.hello.positions.iter() {
                    check_channel(&p.channel)?;
                }
                Publisher::new(&h.publisher, 0).map_err(|e| malformed(e.to_string()))?;
                Inner::HelloPublisher(h)
            }
            FrameTag::Welcome => Inner::Welcome(access(archive, tag)?),
            FrameTag::Publish => {
                let p = access::<ArchivedPublishW<'static>>(archive, tag)?;
                check_channel(&p.channel)?;
                Inner::Publish(p)
            }
            FrameTag::Message => {
                let m = access::<ArchivedMessageW<'static>>(archive, tag)?;
                check_channel(&m.channel)?;
                Inner::Message(m)
            }
            FrameTag::Ack | FrameTag::Subscribed => {
                let a = access::<ArchivedChannelSeqW<'static>>(archive, tag)?;
                check_channel(&a.channel)?;
                if tag == FrameTag::Ack {
                    Inner::Ack(a)
                } else {
                    Inner::Subscribed(a)
                }
            }
            FrameTag::PublishAck => Inner::PublishAck(access(archive, tag)?),
            FrameTag::Subscribe => {
                let s = access::<ArchivedSubscribeW<'static>>(archive, tag)?;
                check_channel(&s.channel)?;
                Inner::Subscribe(s)
            }
            FrameTag::Unsubscribe => {
                let u = access::<ArchivedUnsubscribeW<'static>>(archive, tag)?;
                check_channel(&u.channel)?;
                Inner::Unsubscribe(u)
            }
            FrameTag::Gap => {
                let g = access::<ArchivedGapW<'static>>(archive, tag)?;
                check_channel(&g.channel)?;
                let (from, to) = (g.from.to_native(), g.to.to_native());
                if from == 0 || from > to {
                    return Err(malformed(format!(
                        "gap range {from}..={to} is empty or starts at 0"
                    )));
                }
                Inner::Gap(g)
            }
            FrameTag::Ping => Inner::Ping(access(archive, tag)?),
            FrameTag::Pong => Inner::Pong(access(archive, tag)?),
            FrameTag::Error => Inner::Error(access(archive, tag)?),
            FrameTag::Close => Inner::Close(access(archive, tag)?),
            FrameTag::Rpc => {
                let r = access::<ArchivedRpcW<'static>>(archive, tag)?;
                check_rpc(r)?;
                Inner::Rpc(r)
            }
        };
        Ok(FrameView { input, inner })
    }
}

fn malformed(reason: String) -> CodecError {
    CodecError::Malformed { reason }
}

#[cold]
fn bad_format(format: u8) -> String {
    if format == b'{' || format.is_ascii_whitespace() {
        "this looks like a JSON frame, but the connection speaks tidings.v1.bin".to_owned()
    } else {
        format!(
            "unsupported binary frame format {format} (this peer reads format {})",
            BinaryCodec::FORMAT
        )
    }
}

/// Validates the archive of a `tag` frame with bytecheck (rkyv's high-level
/// checked access: every pointer, length, string and tag is verified).
fn access<T>(archive: &[u8], tag: FrameTag) -> Result<&T, CodecError>
where
    T: rkyv::Portable
        + for<'v> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'v, rancor::Error>>,
{
    rkyv::access::<T, rancor::Error>(archive)
        .map_err(|e| malformed(format!("invalid binary {} frame: {e}", tag.name())))
}

fn check_channel(name: &str) -> Result<(), CodecError> {
    ChannelName::validate(name).map_err(|e| malformed(e.to_string()))
}

fn channel(name: &str) -> Result<ChannelName, CodecError> {
    ChannelName::new(name).map_err(|e| malformed(e.to_string()))
}

/// `part` as a `Bytes` sharing `input`'s buffer (a reference-count increment).
///
/// `part` always lies inside `input` (bytecheck guarantees it); the copy
/// branch only exists so that no input can ever reach a panic.
fn share(input: &Bytes, part: &[u8]) -> Bytes {
    let (outer, inner) = (input.as_ptr_range(), part.as_ptr_range());
    if part.is_empty() {
        Bytes::new()
    } else if outer.start <= inner.start && inner.end <= outer.end {
        input.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

// ---------------------------------------------------------------------------
// Frame types on the wire

/// Byte 1 of a frame. The numbers are part of the format; never reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum FrameTag {
    Hello = 1,
    Welcome = 2,
    Publish = 3,
    Message = 4,
    Ack = 5,
    PublishAck = 6,
    Subscribe = 7,
    Subscribed = 8,
    Unsubscribe = 9,
    Gap = 10,
    Ping = 11,
    Pong = 12,
    Error = 13,
    Close = 14,
    Rpc = 15,
    /// A `hello` with a publisher id (docs/protocol.md, "Publisher ids"):
    /// its own tag so that tag 1 keeps its layout for older clients.
    HelloPublisher = 16,
}

impl FrameTag {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::Welcome,
            3 => Self::Publish,
            4 => Self::Message,
            5 => Self::Ack,
            6 => Self::PublishAck,
            7 => Self::Subscribe,
            8 => Self::Subscribed,
            9 => Self::Unsubscribe,
            10 => Self::Gap,
            11 => Self::Ping,
            12 => Self::Pong,
            13 => Self::Error,
            14 => Self::Close,
            15 => Self::Rpc,
            16 => Self::HelloPublisher,
            _ => return None,
        })
    }

    /// The frame's name in docs/protocol.md (and on the JSON wire).
    fn name(self) -> &'static str {
        match self {
            Self::Hello | Self::HelloPublisher => "hello",
            Self::Welcome => "welcome",
            Self::Publish => "publish",
            Self::Message => "message",
            Self::Ack => "ack",
            Self::PublishAck => "publish_ack",
            Self::Subscribe => "subscribe",
            Self::Subscribed => "subscribed",
            Self::Unsubscribe => "unsubscribe",
            Self::Gap => "gap",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::Error => "error",
            Self::Close => "close",
            Self::Rpc => "rpc",
        }
    }

    fn frame_type(self) -> FrameType {
        match self {
            Self::Hello | Self::HelloPublisher => FrameType::Hello,
            Self::Welcome => FrameType::Welcome,
            Self::Publish => FrameType::Publish,
            Self::Message => FrameType::Message,
            Self::Ack => FrameType::Ack,
            Self::PublishAck => FrameType::PublishAck,
            Self::Subscribe => FrameType::Subscribe,
            Self::Subscribed => FrameType::Subscribed,
            Self::Unsubscribe => FrameType::Unsubscribe,
            Self::Gap => FrameType::Gap,
            Self::Ping => FrameType::Ping,
            Self::Pong => FrameType::Pong,
            Self::Error => FrameType::Error,
            Self::Close => FrameType::Close,
            Self::Rpc => FrameType::Rpc,
        }
    }
}

// The wire bodies: mirrors of the tidings-protocol frames (which stay free of
// rkyv). Strings and payloads are `Cow`s archived as owned (`AsOwned`), so
// encoding borrows from the `Frame` (no copy before the archive) and the
// archived form is a plain `ArchivedString` / `ArchivedVec<u8>`. The field
// order is the archived layout: changing it changes the format.

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct PositionW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
    seq: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct HelloW<'a> {
    version: u32,
    #[rkyv(with = Map<AsOwned>)]
    resume: Option<Cow<'a, str>>,
    #[rkyv(with = AsOwned)]
    positions: Cow<'a, [PositionW<'a>]>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct HelloPublisherW<'a> {
    hello: HelloW<'a>,
    #[rkyv(with = AsOwned)]
    publisher: Cow<'a, str>,
    base: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct WelcomeW<'a> {
    version: u32,
    #[rkyv(with = AsOwned)]
    session: Cow<'a, str>,
    #[rkyv(with = AsOwned)]
    resume_token: Cow<'a, str>,
    resumed: bool,
    heartbeat_ms: u64,
    max_frame: u32,
    publish_acked: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct PublishW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
    seq: u64,
    #[rkyv(with = AsOwned)]
    payload: Cow<'a, [u8]>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct MessageW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
    seq: u64,
    id: u64,
    #[rkyv(with = AsOwned)]
    payload: Cow<'a, [u8]>,
}

/// Body of `ack` and `subscribed`.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct ChannelSeqW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
    seq: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct SubscribeW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
    after: Option<u64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct UnsubscribeW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct GapW<'a> {
    #[rkyv(with = AsOwned)]
    channel: Cow<'a, str>,
    from: u64,
    to: u64,
}

/// Body of `publish_ack` (`seq`), `ping` and `pong` (`nonce`).
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct U64W {
    value: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct ErrorW<'a> {
    /// The wire spelling (`malformed_frame`, …): unknown codes survive as `unknown`.
    #[rkyv(with = AsOwned)]
    code: Cow<'a, str>,
    #[rkyv(with = AsOwned)]
    message: Cow<'a, str>,
    /// The publish this error refuses, if it is about one.
    publish: Option<u64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct CloseW<'a> {
    code: u16,
    #[rkyv(with = AsOwned)]
    reason: Cow<'a, str>,
}

/// Body of every RPC frame; `kind` says which (1 call, 2 reply, 3 item,
/// 4 end, 5 credit, 6 cancel) and which fields mean something: `text` is the
/// method of a call and the message of a failed reply or the reason of a
/// cancel; `payload` the params, result, item or error details; `num` the
/// item's seq or the credit's n, or the call's initial credit.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct RpcW<'a> {
    call: u64,
    kind: u8,
    num: u64,
    deadline_ms: Option<u64>,
    /// `Some` on a failed reply (the wire spelling of its code).
    #[rkyv(with = Map<AsOwned>)]
    code: Option<Cow<'a, str>>,
    /// A failed reply carries details in `payload`.
    has_data: bool,
    #[rkyv(with = AsOwned)]
    text: Cow<'a, str>,
    #[rkyv(with = AsOwned)]
    payload: Cow<'a, [u8]>,
}

fn rpc_len(r: &RpcFrame) -> usize {
    match &r.kind {
        RpcKind::Call { method, params, .. } => method.len() + params.len(),
        RpcKind::Reply(Ok(p)) | RpcKind::Item { payload: p, .. } => p.len(),
        RpcKind::Reply(Err(f)) => {
            f.code.as_str().len() + f.message.len() + f.data.as_ref().map_or(0, |d| d.len())
        }
        RpcKind::Cancel { reason } => reason.len(),
        _ => 0,
    }
}

fn rpc_body(r: &RpcFrame) -> Option<RpcW<'_>> {
    let mut w = RpcW {
        call: r.call,
        kind: 0,
        num: 0,
        deadline_ms: None,
        code: None,
        has_data: false,
        text: Cow::Borrowed(""),
        payload: Cow::Borrowed(&[]),
    };
    match &r.kind {
        RpcKind::Call {
            method,
            params,
            deadline_ms,
            credit,
        } => {
            w.kind = 1;
            w.text = b(method);
            w.payload = Cow::Borrowed(params);
            w.deadline_ms = *deadline_ms;
            w.num = u64::from(*credit);
        }
        RpcKind::Reply(Ok(p)) => {
            w.kind = 2;
            w.payload = Cow::Borrowed(p);
        }
        RpcKind::Reply(Err(f)) => {
            w.kind = 2;
            w.code = Some(b(f.code.as_str()));
            w.text = b(&f.message);
            if let Some(d) = &f.data {
                w.has_data = true;
                w.payload = Cow::Borrowed(d);
            }
        }
        RpcKind::Item { seq, payload } => {
            w.kind = 3;
            w.num = *seq;
            w.payload = Cow::Borrowed(payload);
        }
        RpcKind::End => w.kind = 4,
        RpcKind::Credit { n } => {
            w.kind = 5;
            w.num = u64::from(*n);
        }
        RpcKind::Cancel { reason } => {
            w.kind = 6;
            w.text = b(reason);
        }
        _ => return None,
    }
    Some(w)
}

/// What a view accepts of an RPC archive is what converts to a frame: a
/// known kind, and a credit (`call`, `credit`) that fits in 32 bits.
fn check_rpc(r: &ArchivedRpcW<'static>) -> Result<(), CodecError> {
    let what = match r.kind {
        1 => "credit",
        5 => "n",
        2..=4 | 6 => return Ok(()),
        other => return Err(malformed(format!("unknown binary rpc frame kind {other}"))),
    };
    match u32::try_from(r.num.to_native()) {
        Ok(_) => Ok(()),
        Err(_) => Err(malformed(format!(
            "binary rpc frame: {what} does not fit in 32 bits"
        ))),
    }
}

fn rpc_frame(input: &Bytes, r: &ArchivedRpcW<'static>) -> Result<Frame, CodecError> {
    check_rpc(r)?;
    let payload = || share(input, r.payload.as_slice());
    // Checked above: the kinds that carry a credit have one that fits.
    let small = || u32::try_from(r.num.to_native()).unwrap_or(u32::MAX);
    let kind = match r.kind {
        1 => RpcKind::Call {
            method: r.text.as_str().to_owned(),
            params: payload(),
            deadline_ms: r.deadline_ms.as_ref().map(|d| d.to_native()),
            credit: small(),
        },
        2 => RpcKind::Reply(match r.code.as_ref() {
            None => Ok(payload()),
            Some(code) => Err(RpcFault {
                code: RpcCode::parse(code),
                message: r.text.as_str().to_owned(),
                data: r.has_data.then(payload),
            }),
        }),
        3 => RpcKind::Item {
            seq: r.num.to_native(),
            payload: payload(),
        },
        4 => RpcKind::End,
        5 => RpcKind::Credit { n: small() },
        6 => RpcKind::Cancel {
            reason: r.text.as_str().to_owned(),
        },
        other => return Err(malformed(format!("unknown binary rpc frame kind {other}"))),
    };
    Ok(Frame::Rpc(RpcFrame {
        call: r.call.to_native(),
        kind,
    }))
}

/// The owned `hello` of an archived one.
fn hello(h: &ArchivedHelloW<'static>, publisher: Option<Publisher>) -> Result<Hello, CodecError> {
    Ok(Hello {
        version: h.version.to_native(),
        resume: h
            .resume
            .as_ref()
            .map(|t| ResumeToken(t.as_str().to_owned())),
        positions: h
            .positions
            .iter()
            .map(|p| {
                Ok(ChannelPosition {
                    channel: channel(&p.channel)?,
                    seq: p.seq.to_native(),
                })
            })
            .collect::<Result<_, CodecError>>()?,
        publisher,
    })
}

// The archived layout is the same on every target (see the crate docs): these
// sizes and alignments are checked at compile time, so a build for a target or
// with rkyv features that would change the format fails here.
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<ArchivedPositionW<'static>>() == 16);
    assert!(size_of::<ArchivedHelloW<'static>>() == 21);
    assert!(size_of::<ArchivedWelcomeW<'static>>() == 41);
    assert!(size_of::<ArchivedPublishW<'static>>() == 24);
    assert!(size_of::<ArchivedMessageW<'static>>() == 32);
    assert!(size_of::<ArchivedChannelSeqW<'static>>() == 16);
    assert!(size_of::<ArchivedSubscribeW<'static>>() == 17);
    assert!(size_of::<ArchivedUnsubscribeW<'static>>() == 8);
    assert!(size_of::<ArchivedGapW<'static>>() == 24);
    assert!(size_of::<ArchivedU64W>() == 8);
    assert!(size_of::<ArchivedErrorW<'static>>() == 25);
    assert!(size_of::<ArchivedCloseW<'static>>() == 10);
    assert!(align_of::<ArchivedHelloW<'static>>() == 1);
    assert!(align_of::<ArchivedWelcomeW<'static>>() == 1);
    assert!(align_of::<ArchivedMessageW<'static>>() == 1);
};

// ---------------------------------------------------------------------------
// Encoding

/// An rkyv writer appending to the caller's `BytesMut`; positions are relative
/// to the start of the archive (relative pointers do not care where it sits).
struct BytesWriter<'a> {
    out: &'a mut BytesMut,
    start: usize,
}

impl Positional for BytesWriter<'_> {
    fn pos(&self) -> usize {
        self.out.len() - self.start
    }
}

impl<E> Writer<E> for BytesWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

fn archive<T>(tag: FrameTag, body: &T, out: &mut BytesMut) -> Result<(), CodecError>
where
    T: for<'x> Serialize<
        rkyv::api::low::LowSerializer<
            BytesWriter<'x>,
            rkyv::ser::allocator::ArenaHandle<'x>,
            rancor::Error,
        >,
    >,
{
    let before = out.len();
    out.extend_from_slice(&[BinaryCodec::FORMAT, tag as u8]);
    let writer = BytesWriter {
        start: out.len(),
        out: &mut *out,
    };
    let result = rkyv::util::with_arena(|arena| {
        rkyv::api::low::to_bytes_in_with_alloc::<_, _, rancor::Error>(body, writer, arena.acquire())
            .map(drop)
    });
    result.map_err(|e| {
        out.truncate(before);
        CodecError::Unencodable {
            reason: format!("binary {} frame: {e}", tag.name()),
        }
    })
}

fn b(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

impl FrameCodec for BinaryCodec {
    fn kind(&self) -> CodecKind {
        CodecKind::Binary
    }

    fn encode(&self, frame: &Frame, out: &mut BytesMut) -> Result<(), CodecError> {
        out.reserve(Self::encoded_len(frame));
        match frame {
            Frame::Hello(h) => {
                let positions: Vec<PositionW<'_>> = h
                    .positions
                    .iter()
                    .map(|p| PositionW {
                        channel: b(p.channel.as_str()),
                        seq: p.seq,
                    })
                    .collect();
                let body = HelloW {
                    version: h.version,
                    resume: h.resume.as_ref().map(|t| b(&t.0)),
                    positions: Cow::Owned(positions),
                };
                match &h.publisher {
                    None => archive(FrameTag::Hello, &body, out),
                    Some(p) => {
                        let body = HelloPublisherW {
                            hello: body,
                            publisher: b(p.id()),
                            base: p.base,
                        };
                        archive(FrameTag::HelloPublisher, &body, out)
                    }
                }
            }
            Frame::Welcome(w) => {
                let body = WelcomeW {
                    version: w.version,
                    session: b(&w.session.0),
                    resume_token: b(&w.resume_token.0),
                    resumed: w.resumed,
                    heartbeat_ms: w.heartbeat_ms,
                    max_frame: w.max_frame,
                    publish_acked: w.publish_acked,
                };
                archive(FrameTag::Welcome, &body, out)
            }
            Frame::Publish(p) => {
                let body = PublishW {
                    channel: b(p.channel.as_str()),
                    seq: p.seq,
                    payload: Cow::Borrowed(&p.payload),
                };
                archive(FrameTag::Publish, &body, out)
            }
            Frame::Message(m) => {
                let body = MessageW {
                    channel: b(m.channel.as_str()),
                    seq: m.seq,
                    id: m.id.0,
                    payload: Cow::Borrowed(&m.payload),
                };
                archive(FrameTag::Message, &body, out)
            }
            Frame::Ack(a) => archive(
                FrameTag::Ack,
                &ChannelSeqW {
                    channel: b(a.channel.as_str()),
                    seq: a.seq,
                },
                out,
            ),
            Frame::PublishAck(a) => archive(FrameTag::PublishAck, &U64W { value: a.seq }, out),
            Frame::Subscribe(s) => archive(
                FrameTag::Subscribe,
                &SubscribeW {
                    channel: b(s.channel.as_str()),
                    after: s.after,
                },
                out,
            ),
            Frame::Subscribed(s) => archive(
                FrameTag::Subscribed,
                &ChannelSeqW {
                    channel: b(s.channel.as_str()),
                    seq: s.seq,
                },
                out,
            ),
            Frame::Unsubscribe(u) => archive(
                FrameTag::Unsubscribe,
                &UnsubscribeW {
                    channel: b(u.channel.as_str()),
                },
                out,
            ),
            Frame::Gap(g) => archive(
                FrameTag::Gap,
                &GapW {
                    channel: b(g.channel.as_str()),
                    from: g.from,
                    to: g.to,
                },
                out,
            ),
            Frame::Ping(p) => archive(FrameTag::Ping, &U64W { value: p.nonce }, out),
            Frame::Pong(p) => archive(FrameTag::Pong, &U64W { value: p.nonce }, out),
            Frame::Error(e) => archive(
                FrameTag::Error,
                &ErrorW {
                    code: b(e.code.as_str()),
                    message: b(&e.message),
                    publish: e.publish,
                },
                out,
            ),
            Frame::Close(c) => archive(
                FrameTag::Close,
                &CloseW {
                    code: c.code,
                    reason: b(&c.reason),
                },
                out,
            ),
            Frame::Rpc(r) => match rpc_body(r) {
                Some(body) => archive(FrameTag::Rpc, &body, out),
                None => Err(CodecError::Unencodable {
                    reason: "this RPC frame has no binary form yet".into(),
                }),
            },
            other => Err(CodecError::Unencodable {
                reason: format!("{:?} frames have no binary form yet", other.frame_type()),
            }),
        }
    }

    fn decode(&self, input: &Bytes) -> Result<Frame, CodecError> {
        Self::view(input)?.to_frame()
    }

    fn encode_to_bytes(&self, frame: &Frame) -> Result<Bytes, CodecError> {
        // Exactly the size: one allocation, and a `Bytes` that needs no
        // separate shared header when frozen (its length equals its capacity).
        let mut out = BytesMut::with_capacity(Self::encoded_len(frame));
        self.encode(frame, &mut out)?;
        Ok(out.freeze())
    }
}

// ---------------------------------------------------------------------------
// Views

#[derive(Clone, Copy)]
enum Inner<'a> {
    Hello(&'a ArchivedHelloW<'static>),
    HelloPublisher(&'a ArchivedHelloPublisherW<'static>),
    Welcome(&'a ArchivedWelcomeW<'static>),
    Publish(&'a ArchivedPublishW<'static>),
    Message(&'a ArchivedMessageW<'static>),
    Ack(&'a ArchivedChannelSeqW<'static>),
    PublishAck(&'a ArchivedU64W),
    Subscribe(&'a ArchivedSubscribeW<'static>),
    Subscribed(&'a ArchivedChannelSeqW<'static>),
    Unsubscribe(&'a ArchivedUnsubscribeW<'static>),
    Gap(&'a ArchivedGapW<'static>),
    Ping(&'a ArchivedU64W),
    Pong(&'a ArchivedU64W),
    Error(&'a ArchivedErrorW<'static>),
    Close(&'a ArchivedCloseW<'static>),
    Rpc(&'a ArchivedRpcW<'static>),
}

/// A validated binary frame, read in place (see [`BinaryCodec::view`]).
///
/// Every check [`FrameCodec::decode`] makes has already passed: turning the
/// view into an owned [`Frame`] ([`FrameView::to_frame`]) cannot fail on
/// content, it only allocates the owned strings.
#[derive(Clone, Copy)]
pub struct FrameView<'a> {
    input: &'a Bytes,
    inner: Inner<'a>,
}

impl<'a> FrameView<'a> {
    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        self.tag().frame_type()
    }

    fn tag(&self) -> FrameTag {
        match self.inner {
            Inner::Hello(_) => FrameTag::Hello,
            Inner::HelloPublisher(_) => FrameTag::HelloPublisher,
            Inner::Welcome(_) => FrameTag::Welcome,
            Inner::Publish(_) => FrameTag::Publish,
            Inner::Message(_) => FrameTag::Message,
            Inner::Ack(_) => FrameTag::Ack,
            Inner::PublishAck(_) => FrameTag::PublishAck,
            Inner::Subscribe(_) => FrameTag::Subscribe,
            Inner::Subscribed(_) => FrameTag::Subscribed,
            Inner::Unsubscribe(_) => FrameTag::Unsubscribe,
            Inner::Gap(_) => FrameTag::Gap,
            Inner::Ping(_) => FrameTag::Ping,
            Inner::Pong(_) => FrameTag::Pong,
            Inner::Error(_) => FrameTag::Error,
            Inner::Close(_) => FrameTag::Close,
            Inner::Rpc(_) => FrameTag::Rpc,
        }
    }

    /// The `message` frame, if it is one.
    pub fn as_message(&self) -> Option<MessageView<'a>> {
        match self.inner {
            Inner::Message(m) => Some(MessageView {
                input: self.input,
                m,
            }),
            _ => None,
        }
    }

    /// The `publish` frame, if it is one.
    pub fn as_publish(&self) -> Option<PublishView<'a>> {
        match self.inner {
            Inner::Publish(p) => Some(PublishView {
                input: self.input,
                p,
            }),
            _ => None,
        }
    }

    /// The channel the frame is about, for frames that name one.
    pub fn channel(&self) -> Option<&'a str> {
        match self.inner {
            Inner::Publish(p) => Some(&p.channel),
            Inner::Message(m) => Some(&m.channel),
            Inner::Ack(a) | Inner::Subscribed(a) => Some(&a.channel),
            Inner::Subscribe(s) => Some(&s.channel),
            Inner::Unsubscribe(u) => Some(&u.channel),
            Inner::Gap(g) => Some(&g.channel),
            _ => None,
        }
    }

    /// The owned frame; payloads are `Bytes` slices of the input (no copy).
    pub fn to_frame(&self) -> Result<Frame, CodecError> {
        Ok(match self.inner {
            Inner::Hello(h) => Frame::Hello(hello(h, None)?),
            Inner::HelloPublisher(h) => Frame::Hello(hello(
                &h.hello,
                Some(
                    Publisher::new(&h.publisher, h.base.to_native())
                        .map_err(|e| malformed(e.to_string()))?,
                ),
            )?),
            Inner::Welcome(w) => Frame::Welcome(Welcome {
                version: w.version.to_native(),
                session: SessionId(w.session.as_str().to_owned()),
                resume_token: ResumeToken(w.resume_token.as_str().to_owned()),
                resumed: w.resumed,
                heartbeat_ms: w.heartbeat_ms.to_native(),
                max_frame: w.max_frame.to_native(),
                publish_acked: w.publish_acked.to_native(),
            }),
            Inner::Publish(p) => Frame::Publish(
                PublishView {
                    input: self.input,
                    p,
                }
                .to_publish()?,
            ),
            Inner::Message(m) => Frame::Message(
                MessageView {
                    input: self.input,
                    m,
                }
                .to_message()?,
            ),
            Inner::Ack(a) => Frame::Ack(Ack {
                channel: channel(&a.channel)?,
                seq: a.seq.to_native(),
            }),
            Inner::PublishAck(a) => Frame::PublishAck(PublishAck {
                seq: a.value.to_native(),
            }),
            Inner::Subscribe(s) => Frame::Subscribe(Subscribe {
                channel: channel(&s.channel)?,
                after: s.after.as_ref().map(|a| a.to_native()),
            }),
            Inner::Subscribed(s) => Frame::Subscribed(Subscribed {
                channel: channel(&s.channel)?,
                seq: s.seq.to_native(),
            }),
            Inner::Unsubscribe(u) => Frame::Unsubscribe(Unsubscribe {
                channel: channel(&u.channel)?,
            }),
            Inner::Gap(g) => Frame::Gap(Gap {
                channel: channel(&g.channel)?,
                from: g.from.to_native(),
                to: g.to.to_native(),
            }),
            Inner::Ping(p) => Frame::Ping(Ping {
                nonce: p.value.to_native(),
            }),
            Inner::Pong(p) => Frame::Pong(Ping {
                nonce: p.value.to_native(),
            }),
            Inner::Error(e) => Frame::Error(ErrorFrame {
                code: ErrorCode::parse(&e.code),
                message: e.message.as_str().to_owned(),
                publish: e.publish.as_ref().map(|v| v.to_native()),
            }),
            Inner::Close(c) => Frame::Close(Close {
                code: c.code.to_native(),
                reason: c.reason.as_str().to_owned(),
            }),
            Inner::Rpc(r) => rpc_frame(self.input, r)?,
        })
    }
}

impl fmt::Debug for FrameView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.as_message(), self.as_publish()) {
            (Some(m), _) => m.fmt(f),
            (_, Some(p)) => p.fmt(f),
            _ => f
                .debug_struct("FrameView")
                .field("type", &self.frame_type())
                .field("channel", &self.channel())
                .finish_non_exhaustive(),
        }
    }
}

/// A validated `message` frame read in place: no field is copied.
///
/// ```
/// # use bytes::Bytes;
/// # use tidings_codec::BinaryCodec;
/// # use tidings_protocol::{ChannelName, Frame, FrameCodec, Message, MessageId};
/// # let wire = BinaryCodec::new().encode_to_bytes(&Frame::Message(Message {
/// #     channel: ChannelName::new("c").unwrap(), seq: 1, id: MessageId(2),
/// #     payload: Bytes::from_static(b"hi") })).unwrap();
/// let view = BinaryCodec::view(&wire).unwrap();
/// let m = view.as_message().unwrap();
/// let payload: Bytes = m.payload_bytes(); // shares `wire`'s buffer
/// assert_eq!(payload, "hi");
/// ```
#[derive(Clone, Copy)]
pub struct MessageView<'a> {
    input: &'a Bytes,
    m: &'a ArchivedMessageW<'static>,
}

impl<'a> MessageView<'a> {
    /// The channel (a valid channel name).
    pub fn channel(&self) -> &'a str {
        &self.m.channel
    }

    /// Per-channel sequence number.
    pub fn seq(&self) -> u64 {
        self.m.seq.to_native()
    }

    /// Unique message id.
    pub fn id(&self) -> MessageId {
        MessageId(self.m.id.to_native())
    }

    /// The payload, in place in the received frame.
    pub fn payload(&self) -> &'a [u8] {
        self.m.payload.as_slice()
    }

    /// The payload as a `Bytes` sharing the received frame's buffer (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        share(self.input, self.payload())
    }

    /// The owned `Message` (allocates the channel name; the payload is shared).
    pub fn to_message(&self) -> Result<Message, CodecError> {
        Ok(Message {
            channel: channel(self.channel())?,
            seq: self.seq(),
            id: self.id(),
            payload: self.payload_bytes(),
        })
    }
}

impl fmt::Debug for MessageView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageView")
            .field("channel", &self.channel())
            .field("seq", &self.seq())
            .field("id", &self.id())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// A validated `publish` frame read in place: no field is copied.
#[derive(Clone, Copy)]
pub struct PublishView<'a> {
    input: &'a Bytes,
    p: &'a ArchivedPublishW<'static>,
}

impl<'a> PublishView<'a> {
    /// The channel (a valid channel name).
    pub fn channel(&self) -> &'a str {
        &self.p.channel
    }

    /// Per-session publish sequence number.
    pub fn seq(&self) -> u64 {
        self.p.seq.to_native()
    }

    /// The payload, in place in the received frame.
    pub fn payload(&self) -> &'a [u8] {
        self.p.payload.as_slice()
    }

    /// The payload as a `Bytes` sharing the received frame's buffer (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        share(self.input, self.payload())
    }

    /// The owned `Publish` (allocates the channel name; the payload is shared).
    pub fn to_publish(&self) -> Result<Publish, CodecError> {
        Ok(Publish {
            channel: channel(self.channel())?,
            seq: self.seq(),
            payload: self.payload_bytes(),
        })
    }
}

impl fmt::Debug for PublishView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishView")
            .field("channel", &self.channel())
            .field("seq", &self.seq())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The derived `Deserialize` of the wire bodies agrees with the in-place reads.
    #[test]
    fn rkyv_deserialize_agrees_with_the_views() {
        let body = MessageW {
            channel: "c".into(),
            seq: 3,
            id: 4,
            payload: Cow::Borrowed(b"xyz"),
        };
        let mut out = BytesMut::new();
        archive(FrameTag::Message, &body, &mut out).unwrap();
        let wire = out.freeze();
        let archived =
            rkyv::access::<ArchivedMessageW<'static>, rancor::Error>(&wire[HEADER_LEN..]).unwrap();
        let back: MessageW<'static> = rkyv::deserialize::<_, rancor::Error>(archived).unwrap();
        assert_eq!(back, body);
        let m = BinaryCodec::view(&wire).unwrap().as_message().unwrap();
        assert_eq!(
            (m.channel(), m.seq(), m.id(), m.payload()),
            ("c", 3, MessageId(4), &b"xyz"[..])
        );
    }

    #[test]
    fn tags_round_trip() {
        for b in 0..=u8::MAX {
            if let Some(t) = FrameTag::from_u8(b) {
                assert_eq!(t as u8, b);
            }
        }
    }
}
