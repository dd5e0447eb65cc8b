//! Server-Sent Events transport of tidings: a framework-free server endpoint that resumes by `Last-Event-ID`, upstream frames by POST, native and browser clients, and a spec-exact event stream parser.
//!
//! SSE carries the JSON frames of the tidings protocol (`tidings.v1.json`,
//! see `docs/protocol.md` §7): the server streams one event per frame, the
//! client POSTs its frames.
//!
//! * [`SseEndpoint`] (feature `server`, native) — the endpoint without a
//!   web framework (`tidings-axum` mounts it: `Router::tidings_sse`).
//!   [`SseEndpoint::open`] turns a `GET` into an [`SseStream`]: the
//!   server-side [`SseTransport`] for the hub and the [`EventBody`] to send
//!   as the response. Every event's `id:` is `<resume token>.<frame number>`,
//!   so a reconnecting `EventSource` resumes its session with
//!   `Last-Event-ID`: the server re-sends what the client missed from the
//!   session's replay buffer, or an explicit `gap`.
//!   [`SseEndpoint::post_target`] finds the stream a
//!   `POST <path>/<session>` (resume token in `x-tidings-token`) is for, and
//!   [`PostTarget::deliver`] queues its frames (newline-delimited JSON). The
//!   stream opens with a `retry:` hint and sends `: ka` comments when quiet.
//!   Every refusal is a typed [`Refusal`] with its HTTP status.
//! * [`Client`] (feature `client`) — the same API as the WebSocket client
//!   (`subscribe`, `publish`, `next_event`) on the shared session driver of
//!   `tidings-runtime`: natively on `reqwest` with this crate's [`parser`]; in the
//!   browser (`wasm32-unknown-unknown`) on `EventSource` and `fetch`.
//!   Reconnects honour the server's `retry` and send `Last-Event-ID`.
//! * [`parser`] — an incremental, sans-IO parser that follows the WHATWG
//!   algorithm exactly (why not `eventsource-stream`: see its docs).
//!
//! Why these dependencies: `http` (the request and status types every Rust
//! web framework shares), `tokio` (the stream's timers and limits),
//! `serde_json` (splitting POST bodies into frames without copying); `reqwest` without default features (plain
//! HTTP/1.1, no TLS: enable a TLS feature of `reqwest` in your own manifest for
//! `https://`, Cargo unifies it) as the native HTTP client; `web-sys` for the
//! browser APIs.

pub mod parser;

mod event_id;
#[cfg(any(test, all(feature = "server", not(target_arch = "wasm32"))))]
mod writer;

#[cfg(feature = "client")]
mod client;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
mod server;

#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, Error, EventStream, HelloSource};
pub use event_id::EventId;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub use server::{
    BodyError, EventBody, PostTarget, Refusal, SseConfig, SseEndpoint, SseStream, SseTransport,
    StreamPermit,
};

/// Header carrying the session's resume token on POSTs (`Authorization: Bearer <token>` works too).
pub const TOKEN_HEADER: &str = "x-tidings-token";

/// Query parameter naming the last event id, for a new `EventSource` (which
/// cannot set headers); the `Last-Event-ID` header wins when both are present.
pub const LAST_EVENT_ID_PARAM: &str = "last_event_id";

/// Query parameter carrying a whole `Hello` frame (JSON) on a new event
/// stream: the session its resume token names resumes from the per-channel
/// positions it carries, as on WebSocket. This is how a session moves to SSE
/// from another transport (`tidings-adaptive`); `Last-Event-ID` wins when
/// both are present.
pub const HELLO_PARAM: &str = "hello";

/// Query parameter selecting the protocol: `tidings.v1.json`, the default and
/// only choice (SSE carries text); anything else is refused with HTTP 400.
pub const PROTOCOL_PARAM: &str = "protocol";
