//! The browser server's WebTransport endpoint (UDP, on the same hub): a self-signed ECDSA P-256 certificate valid 13 days, kept in `--tls-dir` across restarts, its SHA-256 served to the page, and control routes that count channel streams and kill sessions.
//!
//! * `GET /webtransport.json`: `{"url": "https://127.0.0.1:PORT/"}`, the session URL;
//! * `GET /webtransport-hashes.json`: the certificate's `serverCertificateHashes`
//!   (`Certificate::hashes_json`), which the page's client fetches before each connect;
//! * `GET /control/wt/stats`: `{"sessions": N, "channelStreams": M}` (streams opened so far);
//! * `POST /control/wt/kill`: closes every live session at once (application code 4200), as a
//!   dropped network would: its clients reconnect and resume.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tidings::prelude::*;
use tidings::webtransport::{
    Accepted, Certificate, ServerConfig, ServerHandle, SessionCloser, WtServer,
};

/// Close code of the sessions `POST /control/wt/kill` ends.
const KILLED: u32 = 4200;

/// A kept certificate older than this is made anew (Chromium pins only certificates valid at
/// most 14 days; it was made valid for 13).
const MAX_CERT_AGE: Duration = Duration::from_secs(24 * 3600);

struct Endpoint {
    handle: ServerHandle,
    sessions: Arc<Mutex<Vec<SessionCloser>>>,
    url: String,
}

/// Starts the WebTransport server on UDP `port` of 127.0.0.1 for `hub`; its certificate is
/// kept in `dir` (when given) so that a restarted server presents the same one. Returns the
/// routes above and the session URL.
pub(crate) async fn start(
    hub: Hub,
    port: u16,
    dir: Option<&Path>,
) -> Result<(Router, String), String> {
    let cert = match dir {
        Some(dir) => load_or_make(dir).await?,
        None => Certificate::self_signed(["127.0.0.1", "localhost"]).map_err(|e| e.to_string())?,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let server = WtServer::bind(addr, ServerConfig::default(), cert).map_err(|e| e.to_string())?;
    let url = format!("https://{}/", server.local_addr());
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let tracked = sessions.clone();
    let handle = server.serve(move |s: Accepted| {
        let hub = hub.clone();
        track(&tracked, s.transport.closer());
        async move { hub.serve(s.transport, s.codec).await }
    });
    let endpoint = Arc::new(Endpoint {
        handle,
        sessions,
        url: url.clone(),
    });
    let routes = Router::new()
        .route("/webtransport.json", get(session_url))
        .route("/webtransport-hashes.json", get(hashes))
        .route("/control/wt/stats", get(stats))
        .route("/control/wt/kill", post(kill))
        .with_state(endpoint);
    Ok((routes, url))
}

/// Keeps `closer` among the live sessions (forgetting those that ended).
fn track(sessions: &Mutex<Vec<SessionCloser>>, closer: SessionCloser) {
    if let Ok(mut sessions) = sessions.lock() {
        sessions.retain(|s| !s.is_closed());
        sessions.push(closer);
    }
}

fn json(body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

async fn session_url(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    json(format!(r#"{{"url":"{}"}}"#, e.url))
}

async fn hashes(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    json(e.handle.certificate_hashes_json().to_owned())
}

async fn stats(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    json(format!(
        r#"{{"sessions":{},"channelStreams":{}}}"#,
        e.handle.sessions(),
        e.handle.channel_streams_opened()
    ))
}

/// Closes every live session; answers how many.
async fn kill(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    let live: Vec<SessionCloser> = match e.sessions.lock() {
        Ok(mut sessions) => sessions.drain(..).filter(|s| !s.is_closed()).collect(),
        Err(_) => Vec::new(),
    };
    for session in &live {
        session.close(KILLED, "killed by the test");
    }
    live.len().to_string()
}

/// The certificate kept in `dir` (made there first if missing or older than a day).
async fn load_or_make(dir: &Path) -> Result<Certificate, String> {
    let (cert, key) = (dir.join("wt-cert.pem"), dir.join("wt-key.pem"));
    let fresh = std::fs::metadata(&cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < MAX_CERT_AGE);
    if !(fresh && key.exists()) {
        let made =
            Certificate::self_signed(["127.0.0.1", "localhost"]).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::write(&cert, made.to_pem())
            .map_err(|e| format!("writing {}: {e}", cert.display()))?;
        std::fs::write(&key, made.private_key_pem())
            .map_err(|e| format!("writing {}: {e}", key.display()))?;
        return Ok(made);
    }
    Certificate::from_pem_files(&cert, &key)
        .await
        .map_err(|e| e.to_string())
}
