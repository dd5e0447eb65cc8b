//! Adaptive transport of tidings: races WebTransport, WebSocket and SSE (happy eyeballs), remembers what worked, watches the active transport and moves the session to a better or working one at run time without losing or repeating a message.
//!
//! * [`Client`] — the runtime's one client (subscribe, publish, events, by
//!   `Deref`) over an adaptive connector: [`Client::transport`] says what
//!   carries the session, [`Client::next_adaptive_event`] reports every
//!   race and switch, [`Client::stats`] counts them, [`Client::switch_to`]
//!   forces one.
//! * Racing: the policy's order (default WebTransport → WebSocket → SSE,
//!   what worked last first) starts one attempt, the next after
//!   [`PolicyConfig::stagger`] or at once when one fails; the first that
//!   connects carries the session, the others are dropped (closed). SSE
//!   starts only when no other attempt runs: opening an SSE stream resumes
//!   the session on the server, so it must not overtake a winner.
//! * Switching: a probe connects the other transport *before* the active one
//!   is left; the session then resumes there as after any reconnect (same
//!   server session, per-channel positions, publishes re-sent and
//!   deduplicated by sequence), at once and without backoff
//!   (`TransportError::Switch`). SSE has no hello frame of its own: the
//!   session's `Hello` travels in the stream's `hello` query parameter
//!   (`tidings_sse::HELLO_PARAM`), so the server resumes the same session
//!   from positions as on WebSocket.
//! * [`Policy`] — the sans-IO decisions (order, memory, demotion after
//!   failures, stall detection, probe schedule, round-trip estimate), every
//!   method taking the time: unit-tested without sockets or sleeps.
//! * [`Discovery`](tidings_protocol::Discovery) — the server's
//!   `/.well-known/tidings` document; [`ClientBuilder::discovery`] takes its
//!   transports.
//!
//! Heartbeat round trips are measured by the transport wrapper on the
//! session's own pings (frames of at most a few dozen bytes are decoded to
//! spot them). Stalls: the client sent and heard nothing for
//! [`PolicyConfig::stall_after`].
//!
//! Features: `ws`, `sse`, `webtransport` (native only; in the browser plug a
//! WebTransport connector in with [`ClientBuilder::connector`]). Why these
//! dependencies: the three transport crates, `tidings-runtime` (driver,
//! timers), `futures-util` (its `AtomicWaker` for the event and switch
//! wake-ups), `web-time` (`Instant` on wasm32), `tracing`, `thiserror`.

mod client;
mod connector;
mod core;
mod error;
mod events;
mod link;
mod policy;
mod race;

pub use client::{Adaptive, Client, ClientBuilder, Remembered};
pub use error::Error;
pub use events::{AdaptiveEvent, AdaptiveStats, KindCounts, kind_from_name, kind_name};
pub use policy::{Action, Activity, Policy, PolicyConfig, SwitchReason};
/// The transport kinds (re-exported from `tidings-runtime`).
pub use tidings_runtime::TransportKind;
