//! `tidings-test-node`: one tidings server process (WebSocket at `/ws`) on a broker chosen by URL, for tests that run several nodes and kill them.
//!
//! ```text
//! tidings-test-node [--listen 127.0.0.1:0] [--broker memory://|redis://...] [--store postgres://...]
//! ```
//! Prints `listening ws://ADDR/ws` on stdout once it accepts connections
//! (tests read the port from it). `TIDINGS_BROKER` and `TIDINGS_STORE` are the
//! default broker and store URLs (the store defaults to the broker).
//!
//! Dependencies: `tidings` (the hub, the axum mount and `connect_hub`),
//! `axum` and `tokio` (the server), `tracing-subscriber` (logs on stderr,
//! `RUST_LOG`).

use std::io::Write;

use tidings::axum::RouterExt;
use tidings::backend::connect_hub_with_store;
use tidings::channels::HubConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut listen = "127.0.0.1:0".to_owned();
    let mut broker = std::env::var("TIDINGS_BROKER").unwrap_or_else(|_| "memory://".into());
    let mut store = std::env::var("TIDINGS_STORE").ok();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--broker" => broker = args.next().ok_or("--broker needs a URL")?,
            "--store" => store = Some(args.next().ok_or("--store needs a URL")?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let hub = connect_hub_with_store(&broker, store.as_deref(), HubConfig::default()).await?;
    let app = axum::Router::new().tidings("/ws", hub);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "listening ws://{addr}/ws")?;
    out.flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
