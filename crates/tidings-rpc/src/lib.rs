//! Typed RPC of tidings on the same session as channels: calls with ids and deadlines, server streams with credit-based flow control, cancellation from either side, typed errors with stable codes, and a tower router with auth, rate-limit, tracing and metrics layers.
//!
//! The wire frames (`call`, `reply`, `item`, `end`, `credit`, `cancel`) are
//! in `tidings-protocol` and specified in docs/protocol.md §9; both codecs
//! carry them. Calls share the connection, the session and its
//! [`Identity`](tidings_channels::Identity) with pub/sub; they live on one
//! connection (a call open when the connection drops fails with
//! `unavailable` on the client and is aborted on the server).
//!
//! * Feature `server` (native): [`server::Router`] (method name → tower
//!   service), [`server::layers`], and [`server::RpcServer`], installed on a
//!   hub with `hub.set_rpc(...)`.
//! * Feature `client` (native and wasm32): [`client::RpcClient`] over any
//!   `tidings_runtime::Client`: `call`, `server_stream`; dropping the future
//!   or the stream cancels the call on the server.
//!
//! Parameters, results and items are JSON (serde_json) on both codecs: the
//! JSON codec carries them inline, so a plain-JSON peer (Node, Python)
//! speaks the same methods. Dependencies: `tower` (`util` only), `metrics`
//! (the facade; no exporter), `tracing`, `tokio` (server tasks and
//! deadlines), `futures-channel` (client; runs on wasm32).

mod error;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;

pub use error::RpcError;
pub use tidings_protocol::{RpcCode, RpcFault, RpcFrame, RpcKind};
