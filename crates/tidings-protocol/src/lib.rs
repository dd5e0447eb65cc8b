//! Sans-IO protocol of tidings: wire frames, ids, codes, typed errors, the `FrameCodec` trait and the client and server session state machines.
//!
//! Nothing in this crate performs I/O, spawns a task or reads a clock. A
//! driver (`tidings-runtime`) feeds received bytes and the current
//! [`Instant`] into a session, writes out what
//! [`ClientSession::poll_transmit`] / [`ServerSession::poll_transmit`] return
//! and sleeps until `poll_timeout`. This is the quinn-proto / rustls style:
//! the whole protocol (handshake, heartbeat, backoff, sequence numbers, acks,
//! resume) is unit-tested with injected time and no sleeps. Server sessions
//! number the frames they send, so a peer that can only name the last frame
//! it got (SSE's `Last-Event-ID`) resumes exactly
//! ([`ServerSession::resume_after_frame`]).
//!
//! Dependencies: `bytes` (cheaply shared frame buffers), `serde` (frame types
//! are serialisable by every codec), `thiserror` (typed errors), `web-time`
//! (an `Instant` type that also exists on `wasm32-unknown-unknown`; this crate
//! only compares instants it is given), `foldhash` (the hasher of every map
//! keyed by channel name: several lookups per message; seeded per map at
//! random, so client-chosen names cannot be aimed at one bucket), `smol_str`
//! (channel names inline up to 23 bytes: decoding a frame allocates nothing
//! for its channel).
//!
//! ```
//! use tidings_protocol::{ClientConfig, ClientSession, Instant};
//! let now = Instant::now();
//! let mut client = ClientSession::new(ClientConfig::default(), 7, now);
//! assert!(client.wants_connect(now));
//! ```

mod backoff;
mod channel_rate;
mod codec;
mod codes;
mod discovery;
mod error;
mod few_map;
mod frame;
mod frame_log;
mod guard;
mod ids;
mod inbound;
mod limits;
mod message;
mod rate;
mod replay;
mod rpc;
mod session;

pub use backoff::Backoff;
pub use channel_rate::ChannelRate;
pub use codec::{CodecError, CodecKind, FrameCodec, FrameEncoder};
pub use codes::{CloseCode, ErrorCode};
pub use discovery::{DISCOVERY_PATH, DiscoveredTransport, Discovery};
pub use error::{ProtocolError, SessionError};
pub use frame::{
    Ack, ChannelPosition, Close, ErrorFrame, Frame, FrameType, Gap, Hello, InvalidPublisher,
    Message, PROTOCOL_VERSION, Ping, Publish, PublishAck, Publisher, Subscribe, Subscribed,
    Unsubscribe, Welcome,
};
pub use guard::ChannelGuard;
pub use ids::{
    ChannelMap, ChannelName, IdBlock, InvalidChannelName, MAX_CHANNEL_LEN, MessageId, MessageIdGen,
    ResumeToken, SessionId,
};
pub use inbound::{Inbound, InboundTracker};
pub use limits::Limits;
pub use message::SharedMessage;
pub use rate::RateLimit;
pub use replay::{Replay, ReplayBuffer};
pub use rpc::{RpcCode, RpcFault, RpcFrame, RpcKind};
pub use session::client::{ClientConfig, ClientEvent, ClientSession, ClientState};
pub use session::server::{
    ServerConfig, ServerEvent, ServerSession, ServerState, SessionCounters, SlowConsumerPolicy,
    SubscriptionStart,
};
pub use web_time::Instant;
