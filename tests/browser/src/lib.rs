//! The wasm module of the browser tests: the Rust tidings clients, exported to the test page.
//!
//! Built for `wasm32-unknown-unknown` and bound with `wasm-bindgen --target web` by
//! `cargo xtask test-browser`. The page creates a `Probe` per client (WebSocket or SSE); a
//! probe records every `ClientEvent` the client yields, and the Node driver reads that record
//! with Playwright to assert on what the page received. Natively this library is empty: the
//! native half of the crate is the `browser-server` binary.

#[cfg(target_arch = "wasm32")]
mod probe;
#[cfg(target_arch = "wasm32")]
mod record;

#[cfg(target_arch = "wasm32")]
pub use probe::Probe;
