//! WebTransport (HTTP/3) transport of tidings: native server and client on wtransport.
//!
//! * [`WtServer`] — accepts WebTransport sessions over QUIC, picks the codec
//!   from the CONNECT path's `protocol` query parameter (`tidings.v1.json`,
//!   `tidings.v1.bin`), takes the session's first bidirectional stream as its
//!   **control stream** and hands it to a handler as a [`WtTransport`] (the
//!   hub serves it like any other transport). Keep-alive, idle timeout and
//!   the streams a peer may open are QUIC transport parameters
//!   ([`WtConfig`]); a client opens no other stream: further ones are
//!   refused, a peer that keeps opening them loses its session
//!   ([`WtError::TooManyStreams`]).
//! * [`WtTransport`] — length-prefixed frames (a 4-byte big-endian length,
//!   then one frame of the negotiated codec) on the control stream, and each
//!   channel's `message` / `gap` / `subscribed` frames on a unidirectional
//!   **channel stream** of its own that the server opens (a
//!   [`channel_stream`] header names the channel), so that a stalled channel
//!   never delays another (no head-of-line blocking across channels);
//!   oversized or garbage input ends only that session, with a typed error
//!   ([`FramingError`]) and an application close code ([`close_code`]).
//!   Graceful close: the last frames are flushed and acknowledged, then the
//!   session closes with the application error code and reason.
//! * [`Client`] — the runtime's one `Client` over WebTransport: reconnects
//!   with backoff and resumes its session exactly as on WebSocket. The same
//!   API runs in the browser (`wasm32-unknown-unknown`) on the page's
//!   `WebTransport` (`WasmWtTransport`): control stream, channel streams,
//!   negotiated codec, `serverCertificateHashes` pins, connect timeout.
//! * [`Datagrams`] — lossy, unordered data beside the session, checked
//!   against the path's max datagram size ([`DatagramError::TooLarge`]);
//!   a client's are `ClientDatagrams` (`ClientBuilder::connect_with_datagrams`,
//!   native and in the browser), which follow it across reconnects.
//! * [`Certificate`] — a self-signed ECDSA P-256 certificate valid 13 days
//!   for development (browsers pin its SHA-256 with `serverCertificateHashes`;
//!   [`serve_certificate_hashes`] serves the JSON), or a PEM chain and key.
//!
//! Why these dependencies: `wtransport` is the WebTransport implementation
//! on quinn (QUIC) with its own HTTP/3 layer and a session API (accept a
//! session, open/accept streams, datagrams); it is built with `ring` (no C
//! toolchain or cmake, unlike aws-lc-rs) and `quinn` (to set QUIC
//! transport parameters: idle timeout, keep-alive, stream limits); the
//! development certificate is `tidings_runtime::dev_cert`'s, the same one the
//! wss:// server takes. `tokio` is
//! the runtime of quinn; `bytes` carries frames without copies. In the
//! browser: `wasm-bindgen` imports of `WebTransport` written here (web-sys
//! has them only behind `--cfg=web_sys_unstable_apis`, a RUSTFLAGS switch
//! for the whole build), web-sys' stable `ReadableStream` /
//! `WritableStream` readers and writers, `js-sys`, `wasm-bindgen-futures`
//! (promises as futures) and `web-time` (`Instant` on wasm32).

pub mod channel_stream;
#[cfg(feature = "client")]
mod client;
#[cfg(all(not(target_arch = "wasm32"), feature = "client"))]
mod client_datagrams;
mod config;
mod error;
pub mod framing;
mod lane_reader;
#[cfg(all(not(target_arch = "wasm32"), feature = "client"))]
#[path = "native_client.rs"]
mod platform;
mod route;
#[cfg(all(target_arch = "wasm32", feature = "client"))]
mod wasm;
#[cfg(all(target_arch = "wasm32", feature = "client"))]
use wasm as platform;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
mod cert;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
mod datagram;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
mod incoming;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
mod lanes;
#[cfg(all(not(target_arch = "wasm32"), feature = "server"))]
mod server;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
mod transport;

#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
pub use cert::{Certificate, DEV_VALIDITY_DAYS, serve_certificate_hashes};
#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, WebTransport};
#[cfg(all(not(target_arch = "wasm32"), feature = "client"))]
pub use client_datagrams::ClientDatagrams;
pub use config::{CHANNEL_STREAMS_PARAM, PROTOCOL_PARAM, ServerConfig, WtConfig};
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
pub use datagram::Datagrams;
pub use error::{DatagramError, FramingError, WtError, close_code};
#[cfg(all(not(target_arch = "wasm32"), feature = "server"))]
pub use server::{
    Accepted, ServerHandle, SessionHandler, WtServer, offered_protocols, requested_channel_streams,
};
/// Errors of the WebTransport [`Client`] (shared by every transport's client).
pub use tidings_runtime::ClientError as Error;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
pub use transport::{SessionCloser, WtTransport};
#[cfg(all(target_arch = "wasm32", feature = "client"))]
pub use wasm::{ClientDatagrams, WasmWtTransport};
