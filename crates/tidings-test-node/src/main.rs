//! `tidings-test-node`: one tidings server process (WebSocket at `/ws`) on a broker chosen by URL, for tests that run several nodes and kill them.
//!
//! ```text
//! tidings-test-node [--listen 127.0.0.1:0] [--broker memory://|redis://...] [--store postgres://...]
//!                   [--presence] [--grace-ms N] [--heartbeat-ms N] [--node-timeout-ms N]
//! ```
//! Prints `listening ws://ADDR/ws` on stdout once it accepts connections
//! (tests read the port from it). `TIDINGS_BROKER` and `TIDINGS_STORE` are the
//! default broker and store URLs (the store defaults to the broker).
//!
//! With `--presence`, the node attaches `tidings::presence::Presence`
//! (rooms `room:*`, presence channels `presence:room:*`, the timings given in
//! milliseconds) and every connection must name its identity as
//! `/ws?user=NAME` (all channels granted), so a test can count members by
//! name across nodes.
//!
//! Dependencies: `tidings` (the hub, the axum mount, presence and
//! `connect_hub`), `axum` and `tokio` (the server), `tracing-subscriber`
//! (logs on stderr, `RUST_LOG`).

use std::io::Write;
use std::time::Duration;

use tidings::axum::{AuthError, RouterExt, TidingsRoute, UpgradeRequest};
use tidings::backend::connect_hub_with_store;
use tidings::channels::{ChannelGrants, HubConfig, Identity};
use tidings::presence::{Presence, PresenceConfig};

/// `?user=NAME` is the connection's identity (presence mode).
async fn user_from_query(request: UpgradeRequest) -> Result<Identity, AuthError> {
    let user = request
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("user="))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AuthError::Unauthorized("no ?user=NAME".into()))?;
    Ok(Identity::new(user).with_grants(ChannelGrants::all()))
}

fn millis(arg: Option<String>, name: &str) -> Result<Duration, String> {
    let v = arg.ok_or_else(|| format!("{name} needs milliseconds"))?;
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{name} {v:?}: {e}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut listen = "127.0.0.1:0".to_owned();
    let mut broker = std::env::var("TIDINGS_BROKER").unwrap_or_else(|_| "memory://".into());
    let mut store = std::env::var("TIDINGS_STORE").ok();
    let mut presence: Option<PresenceConfig> = None;
    let mut config = PresenceConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--broker" => broker = args.next().ok_or("--broker needs a URL")?,
            "--presence" => presence = Some(PresenceConfig::default()),
            "--grace-ms" => config.grace = millis(args.next(), &arg)?,
            "--heartbeat-ms" => config.heartbeat = millis(args.next(), &arg)?,
            "--node-timeout-ms" => config.node_timeout = millis(args.next(), &arg)?,
            "--store" => store = Some(args.next().ok_or("--store needs a URL")?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let hub = connect_hub_with_store(&broker, store.as_deref(), HubConfig::default()).await?;
    let mut route = TidingsRoute::new(hub.clone());
    // Kept alive for the life of the process.
    let _presence = match presence {
        Some(_) => {
            route = route.auth(user_from_query);
            Some(Presence::attach(&hub, config).await?)
        }
        None => None,
    };
    let app = axum::Router::new().tidings_route("/ws", route);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "listening ws://{addr}/ws")?;
    out.flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
