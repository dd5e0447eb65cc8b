//! Sans-IO protocol core of tidings: frames, ids, errors, the transport trait and session state machines.
//!
//! Nothing in this crate performs I/O or reads a clock. Drivers (the transport
//! crates) feed received bytes and the current [`Instant`] into a session, then
//! write out what [`ClientSession::poll_transmit`] / [`ServerSession::poll_transmit`]
//! return and sleep until `poll_timeout`. This is the quinn-proto / rustls style:
//! the whole protocol — handshake, heartbeat, backoff, sequence numbers, acks,
//! resume — is unit-tested with injected time and no sleeps.
//!
//! The runtime-free glue every transport crate shares lives here too: [`pump`]
//! (one connection: batched writes and reads, timers) and the client driver
//! ([`SharedClient`], [`drive`], [`Connector`]): a transport crate only says how
//! to open a connection. Server sessions number the frames they send, so a peer
//! that can only name the last frame it got (SSE's `Last-Event-ID`) resumes
//! exactly ([`ServerSession::resume_after_frame`]).
//!
//! Dependencies: `bytes` (cheaply shared frame buffers), `serde` (frame types are
//! serialisable by every codec), `thiserror` (typed errors), `web-time` (an
//! `Instant` that also exists on `wasm32-unknown-unknown`), `foldhash` (the
//! hasher of every map keyed by channel name: several lookups per message, where
//! std's SipHash cost ~150 instructions each; seeded per map at random, so
//! client-chosen names cannot be aimed at one bucket), `smol_str` (channel
//! names inline up to 23 bytes: decoding a frame allocates nothing for its
//! channel); optional `tokio`
//! (`TokioTimer`) and, on wasm32, `wasm-bindgen` + `web-sys` (`WasmTimer`,
//! feature `wasm`).
//!
//! ```
//! use tidings_core::{ClientConfig, ClientSession, Instant};
//! let now = Instant::now();
//! let mut client = ClientSession::new(ClientConfig::default(), 7, now);
//! assert!(client.wants_connect(now));
//! ```

mod backoff;
mod codec;
mod driver;
mod error;
mod few_map;
mod frame;
mod frame_log;
mod ids;
mod inbound;
mod inbox;
mod limits;
mod message;
mod pump;
mod replay;
mod session;
mod transport;
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm_timer;

pub use backoff::Backoff;
pub use codec::{CodecKind, FrameCodec, FrameEncoder};
pub use driver::{Connected, Connector, SharedClient, drive};
pub use error::{
    ClientError, CloseCode, CodecError, ErrorCode, ProtocolError, SessionError, TransportError,
};
pub use frame::{
    Ack, ChannelPosition, Close, ErrorFrame, Frame, FrameType, Gap, Hello, Message,
    PROTOCOL_VERSION, Ping, Publish, PublishAck, Subscribe, Subscribed, Unsubscribe, Welcome,
};
pub use ids::{
    ChannelMap, ChannelName, IdBlock, MAX_CHANNEL_LEN, MessageId, MessageIdGen, ResumeToken,
    SessionId,
};
pub use inbound::{Inbound, InboundTracker};
pub use inbox::Inbox;
pub use limits::Limits;
pub use message::SharedMessage;
#[cfg(feature = "tokio")]
pub use pump::TokioTimer;
pub use pump::{CLOSE_GRACE, Prepared, PumpExit, PumpTarget, Timer, pump};
pub use replay::{Replay, ReplayBuffer};
pub use session::client::{ClientConfig, ClientEvent, ClientSession, ClientState};
pub use session::server::{
    ServerConfig, ServerEvent, ServerSession, ServerState, SlowConsumerPolicy, SubscriptionStart,
};
pub use transport::{
    Attachment, BoxFuture, MaybeSend, Transport, TransportExt, TransportKind, TransportMetrics,
};
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
pub use wasm_timer::WasmTimer;
pub use web_time::Instant;
