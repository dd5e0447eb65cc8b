//! The SSE endpoint on axum: `GET <path>` streams a session's frames as events, `POST <path>/<session>` carries the client's frames.

mod link;
mod registry;
mod upstream;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::BytesMut;
use tidings_axum::{AuthHook, UpgradeRequest};
use tidings_channels::Hub;
use tidings_codec::{JsonCodec, SUBPROTOCOL_JSON};
use tidings_core::{Frame, FrameCodec, Hello, PROTOCOL_VERSION};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, debug_span};

pub use upstream::BodyError;

use crate::event_id::EventId;
use crate::writer::write_retry;
use crate::{LAST_EVENT_ID_PARAM, PROTOCOL_PARAM, TOKEN_HEADER};
use link::{EventBody, Link, PushError, SseTransport};
use registry::{Lookup, Registry};

/// Settings of an SSE endpoint.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SseConfig {
    /// The `retry:` hint sent first on every stream: how long a browser waits
    /// before reconnecting.
    pub retry: Duration,
    /// A comment (`: ka`) is sent after this long without an event, so proxies
    /// keep the stream open and a vanished client is noticed by a failed write.
    pub keep_alive: Duration,
    /// Largest POST body; larger ones get HTTP 413.
    pub max_post_bytes: usize,
    /// Bytes of events that may wait for a slow client before the session's
    /// own queue limit (and its slow-consumer policy) takes over.
    pub write_buffer_bytes: usize,
    /// Bytes of POSTed frames that may wait for the session; a POST beyond it
    /// waits for room up to `post_timeout`, then gets HTTP 503.
    pub upstream_queue_bytes: usize,
    /// See `upstream_queue_bytes`.
    pub post_timeout: Duration,
    /// How long a POST to a session whose stream ended is answered 409 ("resume
    /// the stream first") or 410 ("closed") before the token is forgotten (404).
    pub ended_ttl: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            retry: Duration::from_secs(1),
            keep_alive: Duration::from_secs(15),
            max_post_bytes: 1 << 20,
            write_buffer_bytes: 64 << 10,
            upstream_queue_bytes: 1 << 20,
            post_timeout: Duration::from_secs(10),
            ended_ttl: Duration::from_secs(120),
        }
    }
}

impl SseConfig {
    /// Sets [`SseConfig::retry`].
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`SseConfig::keep_alive`].
    pub fn with_keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// Sets [`SseConfig::max_post_bytes`].
    pub fn with_max_post_bytes(mut self, n: usize) -> Self {
        self.max_post_bytes = n;
        self
    }

    /// Sets [`SseConfig::write_buffer_bytes`].
    pub fn with_write_buffer_bytes(mut self, n: usize) -> Self {
        self.write_buffer_bytes = n;
        self
    }
}

/// A tidings SSE endpoint: hub, optional auth hook, limits.
///
/// Mount it with [`SseRouterExt`]. `GET <path>` opens an event stream (a new
/// session, or a resumed one when the request carries a `Last-Event-ID`);
/// `POST <path>/<session id>` with the session's resume token in
/// `x-tidings-token` (or `Authorization: Bearer`) delivers the client's frames.
/// The auth hook runs before a stream opens (401/403 with the reason); POSTs
/// are authorized by the token the authorized stream handed out.
///
/// ```no_run
/// # async fn demo() {
/// use std::sync::Arc;
/// use axum::Router;
/// use tidings_axum::{AuthError, UpgradeRequest};
/// use tidings_channels::{Hub, MemoryBroker};
/// use tidings_sse::{SseRoute, SseRouterExt};
///
/// let hub = Hub::new(Arc::new(MemoryBroker::default()));
/// // One line, no auth:
/// let app: Router = Router::new().tidings_sse("/sse", hub.clone());
/// // With an auth hook:
/// let route = SseRoute::new(hub).auth(|req: UpgradeRequest| async move {
///     match req.headers.get("cookie") {
///         Some(_) => Ok(()),
///         None => Err(AuthError::Unauthorized("log in first".into())),
///     }
/// });
/// let app: Router = Router::new().tidings_sse_route("/sse", route);
/// # }
/// ```
#[derive(Clone)]
pub struct SseRoute {
    hub: Hub,
    auth: Option<Arc<dyn AuthHook>>,
    config: SseConfig,
    permits: Arc<Semaphore>,
    registry: Arc<Registry>,
    connections: Arc<AtomicU64>,
}

impl std::fmt::Debug for SseRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseRoute")
            .field("config", &self.config)
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl SseRoute {
    /// An endpoint served by `hub`, no auth, default settings.
    pub fn new(hub: Hub) -> Self {
        let config = SseConfig::default();
        Self {
            hub,
            auth: None,
            registry: Arc::new(Registry::new(config.ended_ttl)),
            config,
            permits: Arc::new(Semaphore::new(100_000)),
            connections: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs `hook` before every stream opens; a refusal answers 401/403 with the reason.
    pub fn auth(mut self, hook: impl AuthHook) -> Self {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// SSE settings (retry hint, keep-alive, POST limits).
    pub fn config(mut self, config: SseConfig) -> Self {
        self.registry = Arc::new(Registry::new(config.ended_ttl));
        self.config = config;
        self
    }

    /// Most concurrent streams on this endpoint; further ones get 503.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.permits = Arc::new(Semaphore::new(n));
        self
    }

    /// `GET <path>`: opens an event stream for a new or resumed session.
    async fn stream(self, req: Request) -> Response {
        if let Some(auth) = &self.auth {
            let info = UpgradeRequest::new(req.headers().clone(), req.uri().clone());
            if let Err(e) = auth.authorize(info).await {
                debug!(error = %e, "event stream refused by the auth hook");
                return e.into_response();
            }
        }
        if let Some(p) = query_param(req.uri(), PROTOCOL_PARAM)
            && p != SUBPROTOCOL_JSON
        {
            let msg = format!(
                "protocol `{p}` is not supported over SSE (it carries text): use {SUBPROTOCOL_JSON}"
            );
            return refuse(StatusCode::BAD_REQUEST, "unsupported-protocol", &msg);
        }
        let resume = last_event_id(req.headers(), req.uri()).and_then(|raw| {
            let id = EventId::parse(&raw);
            if id.is_none() {
                debug!("malformed Last-Event-ID: serving a new session");
            }
            id
        });
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "connection-limit",
                "connection limit reached",
            );
        };
        let codec: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
        let hello = Hello {
            version: PROTOCOL_VERSION,
            resume: resume.as_ref().map(|id| id.token().clone()),
            positions: Vec::new(),
        };
        let hello = match codec.encode_to_bytes(&Frame::Hello(hello)) {
            Ok(b) => b,
            Err(e) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &e.to_string(),
                );
            }
        };
        let conn = self.connections.fetch_add(1, Ordering::Relaxed);
        let upstream = self
            .config
            .upstream_queue_bytes
            .max(self.config.max_post_bytes);
        let link = Link::new(upstream);
        let transport = SseTransport::new(
            link.clone(),
            self.registry.clone(),
            conn,
            hello,
            resume.as_ref().map(EventId::frame),
            self.config.write_buffer_bytes,
        );
        let span = debug_span!("tidings_sse_stream", conn, resume = resume.is_some());
        let hub = self.hub.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                hub.serve(transport, codec).await;
                debug!("event stream served");
            }
            .instrument(span),
        );
        let mut first = BytesMut::new();
        write_retry(
            &mut first,
            u64::try_from(self.config.retry.as_millis()).unwrap_or(u64::MAX),
        );
        let body = EventBody::new(link, first.freeze(), self.config.keep_alive);
        let mut resp = Response::new(Body::from_stream(body));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-transform"),
        );
        h.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        resp
    }

    /// `POST <path>/<session>`: frames from the client of `session`.
    async fn upstream(self, session: String, req: Request) -> Response {
        let span = debug_span!("tidings_sse_post", session = %session);
        self.upstream_inner(session, req).instrument(span).await
    }

    async fn upstream_inner(self, session: String, req: Request) -> Response {
        let Some(token) = token(req.headers()) else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing session token: send the welcome's resume_token in x-tidings-token (or Authorization: Bearer)",
            );
        };
        let max = self.config.max_post_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return too_large(max);
        }
        let link = match self.registry.lookup(&token) {
            Lookup::Live { session: s, link } if s.0 == session => link,
            Lookup::Ended { session: s, ended } if s.0 == session => {
                return if ended.resumable {
                    refuse(
                        StatusCode::CONFLICT,
                        "no-stream",
                        &format!(
                            "no event stream is open for session {session} (it ended: {} {}); reconnect it with Last-Event-ID, then send again",
                            ended.code, ended.reason
                        ),
                    )
                } else {
                    refuse(
                        StatusCode::GONE,
                        "session-closed",
                        &format!(
                            "session {session} is closed ({} {})",
                            ended.code, ended.reason
                        ),
                    )
                };
            }
            Lookup::Unknown => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "unknown-session",
                    "unknown or expired session token",
                );
            }
            _ => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "unknown-session",
                    &format!("session {session} does not belong to this token"),
                );
            }
        };
        let body = match axum::body::to_bytes(req.into_body(), max).await {
            Ok(b) => b,
            Err(e) => {
                debug!(error = %e, "POST body not read");
                return too_large(max);
            }
        };
        // The frame limit of the hub's sessions, checked before frames reach one.
        let max_frame = self.hub.config().session.limits.max_frame_bytes;
        let frames = match upstream::split_frames(&body, &JsonCodec::new(), max_frame) {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "POST refused");
                let status = if e.is_too_large() {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return refuse(status, e.code(), &e.to_string());
            }
        };
        let n = frames.len();
        match link.push(frames, self.config.post_timeout).await {
            Ok(()) => {
                debug!(frames = n, "POST queued");
                StatusCode::ACCEPTED.into_response()
            }
            Err(PushError::Ended) => refuse(
                StatusCode::CONFLICT,
                "no-stream",
                &format!(
                    "the event stream of session {session} ended; reconnect it with Last-Event-ID, then send again"
                ),
            ),
            Err(PushError::Full) => refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream-full",
                "the session is not reading its frames fast enough; retry later",
            ),
        }
    }
}

/// A plain-text refusal with the `x-tidings-error` header.
fn refuse(status: StatusCode, error: &'static str, message: &str) -> Response {
    (status, [("x-tidings-error", error)], message.to_string()).into_response()
}

fn too_large(max: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        &format!("POST body larger than {max} bytes: send fewer frames per request"),
    )
}

/// The session token of a POST: `x-tidings-token`, else `Authorization: Bearer`.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        let t = t.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, t) = auth.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty()).then(|| t.trim().to_string())
}

/// `Last-Event-ID` (non-empty), else the `last_event_id` query parameter.
fn last_event_id(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(v) = headers.get("last-event-id").and_then(|v| v.to_str().ok())
        && !v.is_empty()
    {
        return Some(v.to_string());
    }
    query_param(uri, LAST_EVENT_ID_PARAM)
        .filter(|v| !v.is_empty())
        .map(Cow::into_owned)
}

/// The first value of `name` in the query, percent-decoded (`None` if absent or not UTF-8).
fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<Cow<'a, str>> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['%', '+']) {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = bytes.next().and_then(|c| (c as char).to_digit(16))?;
                let lo = bytes.next().and_then(|c| (c as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Mounting the SSE endpoint on a [`Router`].
pub trait SseRouterExt {
    /// Serves the tidings SSE endpoint at `path` with `hub` (no auth):
    /// `GET path` and `POST path/{session}`.
    fn tidings_sse(self, path: &str, hub: Hub) -> Self;
    /// Serves a configured [`SseRoute`] at `path`.
    fn tidings_sse_route(self, path: &str, route: SseRoute) -> Self;
}

impl<S: Clone + Send + Sync + 'static> SseRouterExt for Router<S> {
    fn tidings_sse(self, path: &str, hub: Hub) -> Self {
        self.tidings_sse_route(path, SseRoute::new(hub))
    }

    fn tidings_sse_route(self, path: &str, route: SseRoute) -> Self {
        let post_path = format!("{}/{{session}}", path.trim_end_matches('/'));
        let stream = route.clone();
        self.route(path, get(move |req: Request| stream.clone().stream(req)))
            .route(
                &post_path,
                post(move |Path(session): Path<String>, req: Request| {
                    route.clone().upstream(session, req)
                }),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(token(&h).as_deref(), Some("abc"));
        h.insert(TOKEN_HEADER, HeaderValue::from_static("xyz"));
        assert_eq!(token(&h).as_deref(), Some("xyz"), "x-tidings-token wins");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(token(&h), None);
    }

    #[test]
    fn last_event_id_header_wins_over_query() {
        let uri: Uri = "/sse?x=1&last_event_id=tok.5".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h, &uri).as_deref(), Some("tok.5"));
        h.insert("last-event-id", HeaderValue::from_static("tok.9"));
        assert_eq!(last_event_id(&h, &uri).as_deref(), Some("tok.9"));
        h.insert("last-event-id", HeaderValue::from_static(""));
        assert_eq!(
            last_event_id(&h, &uri).as_deref(),
            Some("tok.5"),
            "an empty header is no id"
        );
        let uri: Uri = "/sse?last_event_id=t%2Eo.5".parse().unwrap();
        assert_eq!(
            last_event_id(&HeaderMap::new(), &uri).as_deref(),
            Some("t.o.5")
        );
        let uri: Uri = "/sse?last_event_id=%ZZ".parse().unwrap();
        assert_eq!(last_event_id(&HeaderMap::new(), &uri), None);
    }
}
