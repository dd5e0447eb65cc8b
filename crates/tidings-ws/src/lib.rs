//! WebSocket transport of tidings: native server and client on tokio-tungstenite, browser client on web-sys.
//!
//! * [`WsServer`] — a standalone server with connection limits, a handshake
//!   timeout, an idle timeout, subprotocol negotiation (`tidings.v1.json`,
//!   `tidings.v1.bin`; unknown subprotocols are refused with HTTP 400 and the
//!   reason) and a graceful shutdown that sends close frames (1001). [`raw_echo`] is its
//!   plain echo mode, used by the RFC 6455 conformance tests and benchmarks.
//! * [`WsTransport`] — the tidings `Transport` over any tokio-tungstenite
//!   stream (also used by `tidings-axum` after an axum upgrade).
//! * [`Client`] — a session client that reconnects with exponential backoff
//!   and full jitter and resumes its session: nothing published is lost,
//!   nothing received is duplicated, gaps are reported. The same API runs in
//!   the browser (`wasm32-unknown-unknown`) on `web_sys::WebSocket`.
//!
//! Why these dependencies: `tokio-tungstenite` is the de-facto async
//! WebSocket implementation on tokio and passes the Autobahn suite upstream;
//! `web-sys` / `wasm-bindgen` are the standard bindings to browser APIs;
//! `futures-util` provides `AtomicWaker` and the `Sink`/`Stream` traits.

#[cfg(feature = "client")]
mod client;
mod config;
#[cfg(all(feature = "client", not(target_arch = "wasm32")))]
#[path = "native.rs"]
mod platform;
#[cfg(all(feature = "client", target_arch = "wasm32"))]
#[path = "wasm.rs"]
mod platform;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
mod server;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
mod transport;

#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, WebSocket};
pub use config::{ServerConfig, WsConfig};
#[cfg(all(feature = "client", target_arch = "wasm32"))]
pub use platform::WasmWsTransport;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub use server::{
    Accepted, ConnectionHandler, ServerHandle, Shutdown, WsServer, offered_subprotocols, raw_echo,
};
/// Errors of the WebSocket [`Client`] (shared by every transport's client).
pub use tidings_runtime::ClientError as Error;
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
pub use transport::WsTransport;

/// The close code and reason to send after a tungstenite read error, if the
/// socket can still carry a close frame.
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "server", feature = "client")
))]
pub(crate) fn close_for_error(
    e: &tokio_tungstenite::tungstenite::Error,
) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Utf8(_) => Some((1007, "invalid UTF-8")),
        E::Capacity(_) => Some((1009, "message too big")),
        E::Protocol(_) => Some((1002, "protocol error")),
        E::Io(_) | E::ConnectionClosed | E::AlreadyClosed => None,
        _ => Some((1011, "internal error")),
    }
}
