//! Typed RPC of tidings on the same session as channels: calls with ids and deadlines, server and bidirectional streams with credit-based flow control, cancellation from either side, typed errors with stable codes, a tower router with auth, rate-limit, tracing and metrics layers, and `#[rpc]` code generation with a JSON Schema.
//!
//! The wire frames (`call`, `reply`, `item`, `end`, `credit`, `cancel`) are
//! in `tidings-protocol` and specified in docs/protocol.md §9; both codecs
//! carry them. Calls share the connection, the session and its identity
//! with pub/sub; they live on one connection (a call open when the
//! connection drops fails with `unavailable` on the client and is aborted on
//! the server).
//!
//! * Feature `server` (native): `server::Router` (method name → tower
//!   service), `server::layers`, and `server::RpcServer`, installed on a
//!   hub with `hub.set_rpc(...)`.
//! * Feature `client` (native and wasm32): `client::RpcClient` over any
//!   `tidings_runtime::Client`: `call`, `server_stream`, `bidi_stream`;
//!   dropping the future or the stream cancels the call on the server.
//! * [`rpc`] (`#[tidings::rpc]` in the facade): a typed client, a server
//!   trait and its routing from one trait definition; feature `schema`:
//!   the JSON Schema of its methods (`schema`, via schemars) and Markdown
//!   docs made from it.
//!
//! Parameters, results and items are JSON (serde_json) on both codecs: the
//! JSON codec carries them inline, so a plain-JSON peer (Node, Python)
//! speaks the same methods. Dependencies: `tower` (`util` only), `metrics`
//! (the facade; no exporter), `tracing`, `tokio` (server tasks and
//! deadlines), `futures-channel` (client; runs on wasm32), `schemars`
//! (`schema`: JSON Schema 2020-12 from the Rust types, the de facto
//! standard; no optional integrations), `tidings-rpc-macros` (syn, quote).

#[allow(unused_extern_crates)]
extern crate self as tidings_rpc;

mod error;
mod kind;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "schema")]
pub mod schema;
#[cfg(feature = "server")]
pub mod server;

#[doc(hidden)]
pub mod __private;

pub use error::{CallError, RpcError};
pub use kind::MethodKind;
pub use tidings_protocol::{RpcCode, RpcFault, RpcFrame, RpcKind};
pub use tidings_rpc_macros::rpc;

/// Expands to its input when this crate has feature `server` (used by [`rpc`]'s output).
#[cfg(feature = "server")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_server {
    ($($t:tt)*) => { $($t)* };
}

/// Expands to its input when this crate has feature `server` (used by [`rpc`]'s output).
#[cfg(not(feature = "server"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_server {
    ($($t:tt)*) => {};
}

/// Expands to its input when this crate has feature `client` (used by [`rpc`]'s output).
#[cfg(feature = "client")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_client {
    ($($t:tt)*) => { $($t)* };
}

/// Expands to its input when this crate has feature `client` (used by [`rpc`]'s output).
#[cfg(not(feature = "client"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_client {
    ($($t:tt)*) => {};
}

/// Expands to its input when this crate has feature `schema` (used by [`rpc`]'s output).
#[cfg(feature = "schema")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_schema {
    ($($t:tt)*) => { $($t)* };
}

/// Expands to its input when this crate has feature `schema` (used by [`rpc`]'s output).
#[cfg(not(feature = "schema"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_schema {
    ($($t:tt)*) => {};
}
