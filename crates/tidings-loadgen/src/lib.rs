//! A load-generating client of the tidings JSON protocol (`tidings.v1.json`, docs/protocol.md): frames written and scanned by hand, connection set-up, round-trip statistics.
//!
//! A load generator is measurement apparatus that shares the machine with the server it
//! loads, so its work per message is kept to the bone; this is not the real client
//! (`tidings_ws::Client`, with reconnection, resume and a session state machine), but
//! the least a peer must do to hold a session and push messages through it:
//!
//! * [`connect`] opens a connection and, with [`Handshake::Session`], sends [`HELLO`],
//!   waits for `welcome` and subscribes to a first channel;
//! * [`FrameBuf`] writes the hot outgoing frames (`publish`, `ack`, `pong`, the raw echo
//!   [`payload`]) into one buffer reused for the life of the connection; [`publish`] and
//!   [`subscribe`] write the occasional ones into a `String`;
//! * [`Frame::parse`] reads a frame from the server in one pass without allocating,
//!   [`sent_ns`] the send time that every [`payload`] carries (by [`now_ns`]);
//! * [`Samples`] and [`log2_histogram_ms`] summarise the round trips.
//!
//! The functions on the per-message path are `#[inline]`, so that a generator in another
//! crate can inline them (release builds use no LTO).
//!
//! ```
//! use tidings_loadgen::{Frame, FrameBuf, sent_ns};
//!
//! let mut out = FrameBuf::default();
//! let _publish = out.publish("load:7", 1, 42); // a text `Message`, ready to send
//! let echo = r#"{"type":"message","channel":"load:7","seq":1,"data":{"t":"0000000000042","p":"abcd"}}"#;
//! let frame = Frame::parse(echo).expect("a frame");
//! assert_eq!((frame.kind, frame.seq, frame.sent_ns), ("message", Some(1), Some(42)));
//! assert_eq!(sent_ns(echo), Some(42));
//! ```

mod clock;
mod connect;
mod read;
mod stats;
mod write;

pub use clock::now_ns;
pub use connect::{ConnectError, Handshake, WsStream, connect};
pub use read::{Frame, num_field, sent_ns};
pub use stats::{Samples, log2_histogram_ms};
pub use write::{CLOSE, FrameBuf, HELLO, SUBPROTOCOL, payload, publish, subscribe};
