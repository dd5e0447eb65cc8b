//! The wire frames of protocol version 1 (see docs/protocol.md), independent of any codec.

use bytes::Bytes;

use crate::ids::{ChannelName, MessageId, ResumeToken, SessionId};

/// The protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u32 = 1;

/// One protocol frame. Codecs turn frames into bytes and back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Client → server: first frame of every connection.
    Hello(Hello),
    /// Server → client: answer to `Hello`.
    Welcome(Welcome),
    /// Client → server: publish a payload to a channel.
    Publish(Publish),
    /// Server → client: a message of a subscribed channel.
    Message(Message),
    /// Client → server: cumulative acknowledgement of a channel's messages.
    Ack(Ack),
    /// Server → client: cumulative acknowledgement of the client's publishes.
    PublishAck(PublishAck),
    /// Client → server: subscribe to a channel.
    Subscribe(Subscribe),
    /// Server → client: a subscription is active.
    Subscribed(Subscribed),
    /// Client → server: leave a channel.
    Unsubscribe(Unsubscribe),
    /// Server → client: messages `from..=to` of a channel cannot be delivered.
    Gap(Gap),
    /// Either way: liveness probe.
    Ping(Ping),
    /// Either way: answer to `Ping`.
    Pong(Ping),
    /// Either way: a typed error.
    Error(ErrorFrame),
    /// Either way: orderly end of the session.
    Close(Close),
    /// Either way: an RPC frame (call, reply, stream item, end, credit, cancel).
    Rpc(crate::rpc::RpcFrame),
}

/// Discriminant of a [`Frame`], for metrics, logs and codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// [`Frame::Hello`]
    Hello,
    /// [`Frame::Welcome`]
    Welcome,
    /// [`Frame::Publish`]
    Publish,
    /// [`Frame::Message`]
    Message,
    /// [`Frame::Ack`]
    Ack,
    /// [`Frame::PublishAck`]
    PublishAck,
    /// [`Frame::Subscribe`]
    Subscribe,
    /// [`Frame::Subscribed`]
    Subscribed,
    /// [`Frame::Unsubscribe`]
    Unsubscribe,
    /// [`Frame::Gap`]
    Gap,
    /// [`Frame::Ping`]
    Ping,
    /// [`Frame::Pong`]
    Pong,
    /// [`Frame::Error`]
    Error,
    /// [`Frame::Close`]
    Close,
    /// [`Frame::Rpc`]
    Rpc,
}

impl Frame {
    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome(_) => FrameType::Welcome,
            Frame::Publish(_) => FrameType::Publish,
            Frame::Message(_) => FrameType::Message,
            Frame::Ack(_) => FrameType::Ack,
            Frame::PublishAck(_) => FrameType::PublishAck,
            Frame::Subscribe(_) => FrameType::Subscribe,
            Frame::Subscribed(_) => FrameType::Subscribed,
            Frame::Unsubscribe(_) => FrameType::Unsubscribe,
            Frame::Gap(_) => FrameType::Gap,
            Frame::Ping(_) => FrameType::Ping,
            Frame::Pong(_) => FrameType::Pong,
            Frame::Error(_) => FrameType::Error,
            Frame::Close(_) => FrameType::Close,
            Frame::Rpc(_) => FrameType::Rpc,
        }
    }
}

/// A channel and the last sequence number a client has seen on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPosition {
    /// The channel.
    pub channel: ChannelName,
    /// Last sequence number received (0 = none yet).
    pub seq: u64,
}

/// Client → server: protocol version, optional resume token and positions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hello {
    /// Protocol version the client speaks ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// Token of the session to resume, if any.
    pub resume: Option<ResumeToken>,
    /// Last sequence seen per subscribed channel.
    pub positions: Vec<ChannelPosition>,
    /// The client's stable publisher identity, so that a publish re-sent to
    /// another node after a failover is stored once (`None`: publishes are
    /// deduplicated per server session only, as before).
    pub publisher: Option<Publisher>,
}

/// A client-chosen publisher id and the number its session's publish 1
/// follows: publish `seq` of the session is the client's publish number
/// `base + seq`, the same in every session that re-sends it, so a server
/// stores it under the key `p:{id}:{base + seq}` exactly once (see
/// docs/protocol.md, "Publisher ids").
///
/// ```
/// use tidings_protocol::Publisher;
/// assert!(Publisher::new("c0ffee-42", 7).is_ok());
/// assert!(Publisher::new("", 0).is_err());
/// assert!(Publisher::new("has space", 0).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publisher {
    id: smol_str::SmolStr,
    /// The client's publish number just before this session's publish 1.
    pub base: u64,
}

/// A publisher id that is empty, longer than [`Publisher::MAX_ID_LEN`] or
/// has a character other than ASCII letters, digits, `-` and `_`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid publisher id of {len} bytes: 1 to 64 ASCII letters, digits, `-` or `_`")]
pub struct InvalidPublisher {
    /// Length of the refused id.
    pub len: usize,
}

impl Publisher {
    /// Longest publisher id accepted.
    pub const MAX_ID_LEN: usize = 64;

    /// A checked publisher id with its base.
    pub fn new(id: &str, base: u64) -> Result<Self, InvalidPublisher> {
        let ok = !id.is_empty()
            && id.len() <= Self::MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(InvalidPublisher { len: id.len() });
        }
        Ok(Self {
            id: smol_str::SmolStr::new(id),
            base,
        })
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The idempotency key of this session's publish `seq`.
    pub fn key(&self, seq: u64) -> String {
        format!("p:{}:{}", self.id, self.base.saturating_add(seq))
    }
}

/// Server → client: the session is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version the server speaks.
    pub version: u32,
    /// Session id (same as before when `resumed`).
    pub session: SessionId,
    /// Token to present in a later `Hello` to resume this session.
    pub resume_token: ResumeToken,
    /// Whether an earlier session was resumed.
    pub resumed: bool,
    /// Interval at which the client must send something (a `Ping` when idle).
    pub heartbeat_ms: u64,
    /// Largest frame the server accepts, in bytes.
    pub max_frame: u32,
    /// Highest publish sequence received so far (0 for a new session): the
    /// client re-sends every publish after it.
    pub publish_acked: u64,
}

/// Client → server: publish `payload` on `channel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Target channel.
    pub channel: ChannelName,
    /// Per-session upstream sequence number (1, 2, 3, ...), used for acks and dedup.
    pub seq: u64,
    /// Opaque payload (JSON text on the JSON codec when it is valid JSON).
    pub payload: Bytes,
}

/// Server → client: one message of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Source channel.
    pub channel: ChannelName,
    /// Per-channel sequence number, gap-free (1, 2, 3, ...).
    pub seq: u64,
    /// Unique id.
    pub id: MessageId,
    /// Opaque payload.
    pub payload: Bytes,
}

/// Client → server: every message of `channel` up to `seq` was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The channel.
    pub channel: ChannelName,
    /// Cumulative sequence number.
    pub seq: u64,
}

/// Server → client: every publish up to `seq` was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishAck {
    /// Cumulative upstream sequence number.
    pub seq: u64,
}

/// Client → server: subscribe to a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// The channel.
    pub channel: ChannelName,
    /// Resume point: deliver messages after this sequence number if history has them.
    pub after: Option<u64>,
}

/// Server → client: a subscription is active; `seq` is the channel's last sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribed {
    /// The channel.
    pub channel: ChannelName,
    /// Highest sequence number of the channel when the subscription started.
    pub seq: u64,
}

/// Client → server: leave a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The channel.
    pub channel: ChannelName,
}

/// Server → client: messages `from..=to` of `channel` are lost for this client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The channel.
    pub channel: ChannelName,
    /// First missing sequence number.
    pub from: u64,
    /// Last missing sequence number.
    pub to: u64,
}

/// Liveness probe (also the body of `Pong`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    /// Echoed back in the `Pong`.
    pub nonce: u64,
}

/// A typed protocol error sent to the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// Machine-readable code.
    pub code: crate::codes::ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The publish (its sequence number) this error refuses, when it is about
    /// one: that publish is dropped for good, never re-sent, and its number
    /// counts as acknowledged.
    pub publish: Option<u64>,
}

impl ErrorFrame {
    /// An error that is about no particular publish.
    pub fn new(code: crate::codes::ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            publish: None,
        }
    }

    /// An error refusing publish `seq` for good.
    pub fn refusing(seq: u64, code: crate::codes::ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            publish: Some(seq),
        }
    }
}

/// Orderly end of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// Close code (WebSocket-compatible numbering).
    pub code: u16,
    /// Human-readable reason.
    pub reason: String,
}
