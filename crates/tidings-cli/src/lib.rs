//! The library behind the `tidings` binary: one module per command, the client over any transport, typed errors and exit codes.
//!
//! The binary (`src/main.rs`) only parses arguments and calls these. Every command that connects
//! uses the real clients of the `tidings` facade (WebSocket, SSE, WebTransport); nothing of the
//! protocol is written again here.
//!
//! Dependencies: `tidings` (the clients; `rustls` for wss:// and https://), `clap` (arguments,
//! help, usage errors), `indicatif` (the bench's progress bar, drawn only on a terminal),
//! `tokio` (the runtime, stdin, Ctrl-C), `reqwest` (doctor's HTTP checks; already the SSE
//! client's HTTP stack), `serde_json` (the discovery document), `thiserror` (typed errors).

pub mod bench;
pub mod client;
pub mod connect;
pub mod doctor;
pub mod error;
pub mod events;
pub mod listen;
pub mod new;
pub mod out;
pub mod send;
