//! Security: authentication before the upgrade (an auth hook, JWT), channel grants, Origin checks, TLS, connection and rate limits.

use std::time::Duration;

use tidings::axum::{ChannelGrants, Identity, JwtAuth, Origins, Server, TlsConfig};
use tidings::prelude::*;

// ANCHOR: hook
/// An auth hook: runs before the WebSocket upgrade; a refusal is HTTP 401/403 with the
/// reason, and no WebSocket traffic happens. The identity's grants say which channels its
/// session may subscribe to and publish on.
pub fn with_auth(hub: Hub) -> axum::Router {
    let route = TidingsRoute::new(hub).auth(|req: UpgradeRequest| async move {
        match req.headers.get("authorization") {
            Some(v) if v == "Bearer secret" => Ok(Identity::new("alice")
                .with_grants(ChannelGrants::none().subscribe("room:*").publish("room:*"))),
            Some(_) => Err(AuthError::Forbidden("token not allowed here".into())),
            None => Err(AuthError::Unauthorized("missing bearer token".into())),
        }
    });
    axum::Router::new().tidings_route("/ws", route)
}
// ANCHOR_END: hook

// ANCHOR: jwt
/// JWT (HS256 here; RS256 and ES256 from PEM keys too) on both endpoints, and only pages of
/// one origin may connect.
pub fn with_jwt(hub: Hub, secret: &[u8]) -> Result<axum::Router, Box<dyn std::error::Error>> {
    let auth = JwtAuth::hs256(secret)?.audience("chat");
    let origins = Origins::only(["https://app.example"]);
    Ok(axum::Router::new()
        .tidings_route(
            "/ws",
            TidingsRoute::new(hub.clone())
                .auth(auth.clone())
                .origins(origins.clone()),
        )
        .tidings_sse_route("/sse", SseRoute::new(hub).auth(auth).origins(origins)))
}
// ANCHOR_END: jwt

// ANCHOR: tls
/// https:// and wss:// on one port, a 5 s handshake timeout, at most 100 connections per
/// client IP.
pub async fn serve_tls(
    app: axum::Router,
    cert: &str,
    key: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let tls = TlsConfig::from_pem_files(cert, key)?;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
    Server::new()
        .tls(tls)
        .handshake_timeout(Duration::from_secs(5))
        .max_connections_per_ip(100)
        .serve(listener, app, std::future::pending())
        .await?;
    Ok(())
}
// ANCHOR_END: tls

// ANCHOR: rates
/// Publish rates: 20/s per session (burst 40), and on `chat:*` 5/s per session and 50/s per
/// channel; refusals come back as `rate_limited`.
pub fn rate_limited() -> HubConfig {
    use tidings::protocol::{ChannelRate, RateLimit, ServerConfig};
    let session = ServerConfig::default()
        .with_publish_rate(RateLimit {
            per_second: 20,
            burst: 40,
        })
        .with_channel_rate(
            ChannelRate::new("chat:*")
                .per_session(RateLimit {
                    per_second: 5,
                    burst: 10,
                })
                .per_channel(RateLimit {
                    per_second: 50,
                    burst: 100,
                }),
        );
    HubConfig::default().with_session(session)
}
// ANCHOR_END: rates
