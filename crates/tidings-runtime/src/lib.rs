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
#[cfg(feature = "dev-cert")]
pub mod dev_cert;
mod driver;
mod error;
mod inbox;
mod pump;
mod spawn;
mod timer;
#[cfg(feature = "rustls")]
pub mod tls;
mod transport;
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm_timer;

pub use client::{Client, ClientTransport};
pub use driver::{Connected, Connector, RpcHandler, SharedClient, drive};
pub use error::{ClientError, TransportError};
pub use inbox::Inbox;
pub use pump::{CLOSE_GRACE, Prepared, PumpExit, PumpTarget, pump};
pub use timer::Timer;

/// Installs rustls' ring provider as the process-wide default when the
/// `rustls` feature is on and no default is installed yet; a no-op otherwise.
///
/// The SSE client's `rustls` feature turns on reqwest's `rustls-no-provider`
/// (to keep aws-lc-rs out of the build). tidings' own clients pass their
/// configuration in, but any *other* `reqwest::Client` built in the same
/// binary then panics unless a default provider is installed: call this
/// first. Returns whether a default provider is installed afterwards.
///
/// ```
/// let _ = tidings_runtime::install_tls_provider();
/// ```
pub fn install_tls_provider() -> bool {
    #[cfg(feature = "rustls")]
    {
        let _ = tls::ring_provider().install_default();
        rustls::crypto::CryptoProvider::get_default().is_some()
    }
    #[cfg(not(feature = "rustls"))]
    {
        false
    }
}
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use transport::{
    Attachment, BoxFuture, MaybeSend, Transport, TransportExt, TransportKind, TransportMetrics,
};
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
pub use wasm_timer::WasmTimer;
