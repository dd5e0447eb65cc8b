//! Runtime layer of tidings: the object-safe `Transport` trait, the connection pump, timers, and the one `Client` every transport crate shares.
//!
//! The protocol below (`tidings-protocol`) is sans-IO; this crate runs it.
//! [`pump`] moves frames between a session and a [`Transport`] (many frames,
//! one flush; reads in batches; timers), for the client driver and for the
//! server hub alike. [`drive`] runs a client session over reconnecting
//! transports opened by a [`Connector`]: connect, pump, back off, reconnect.
//! [`Client`] is the application's handle on it, generic over the transport
//! (a transport crate only says how to open one connection). Time comes from
//! here: drivers read the clock and pass it to the sessions.
//!
//! Features: `tokio` (native: [`TokioTimer`], clients spawned on the current
//! tokio runtime), `wasm` (wasm32: `WasmTimer` on `setTimeout`, clients
//! spawned on the page's event loop). Dependencies: `bytes`, `thiserror`,
//! `web-time` (`Instant` on wasm32 too), and behind the features `tokio`,
//! `wasm-bindgen`, `wasm-bindgen-futures`, `web-sys`.

mod client;
mod driver;
mod error;
mod inbox;
mod pump;
mod spawn;
mod timer;
mod transport;
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm_timer;

pub use client::{Client, ClientTransport};
pub use driver::{Connected, Connector, RpcHandler, SharedClient, drive};
pub use error::{ClientError, TransportError};
pub use inbox::Inbox;
pub use pump::{CLOSE_GRACE, Prepared, PumpExit, PumpTarget, pump};
pub use timer::Timer;
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use transport::{
    Attachment, BoxFuture, MaybeSend, Transport, TransportExt, TransportKind, TransportMetrics,
};
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
pub use wasm_timer::WasmTimer;
