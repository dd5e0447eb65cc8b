//! `GET /.well-known/tidings`: the discovery document (protocol version, transports, WebTransport certificate hashes, codecs) that adaptive clients and `tidings doctor` read.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tidings_protocol::{DISCOVERY_PATH, Discovery};

/// Mounting the discovery document on a [`Router`].
///
/// ```
/// use tidings_axum::DiscoveryRouterExt;
/// use tidings_protocol::{DiscoveredTransport, Discovery};
/// let doc = Discovery::new()
///     .with_transport(DiscoveredTransport::new("websocket", "/ws"))
///     .with_transport(DiscoveredTransport::new("sse", "/sse"))
///     .with_codec("tidings.v1.json");
/// let app: axum::Router = axum::Router::new().tidings_discovery(&doc);
/// ```
pub trait DiscoveryRouterExt {
    /// Serves `doc` as JSON at [`DISCOVERY_PATH`] (`/.well-known/tidings`),
    /// readable from any origin (it holds nothing secret: what a browser
    /// page on another origin needs to connect).
    fn tidings_discovery(self, doc: &Discovery) -> Self;
}

impl<S: Clone + Send + Sync + 'static> DiscoveryRouterExt for Router<S> {
    fn tidings_discovery(self, doc: &Discovery) -> Self {
        let body: Arc<str> = match serde_json::to_string(doc) {
            Ok(json) => json.into(),
            // A document of strings and numbers always serializes; keep the
            // route answering with a clear status rather than panicking.
            Err(e) => format!("{{\"error\":\"{e}\"}}").into(),
        };
        self.route(
            DISCOVERY_PATH,
            get(move || {
                let body = body.clone();
                async move { document(&body) }
            }),
        )
    }
}

fn document(body: &str) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
