//! The SSE endpoint without a web framework: opens event streams and accepts POSTed frames, answering every refusal with a typed [`Refusal`].
//!
//! A framework integration (`tidings-axum`'s `SseRoute`) maps HTTP requests
//! onto [`SseEndpoint::open`] and [`SseEndpoint::post_target`], hands the
//! stream's [`SseTransport`] to the hub and streams its [`EventBody`] as the
//! response.

mod link;
mod refusal;
mod registry;
mod request;
mod transport;
mod upstream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use tidings_codec::{JsonCodec, SUBPROTOCOL_JSON};
use tidings_protocol::{Frame, FrameCodec, Hello, PROTOCOL_VERSION};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

pub use link::EventBody;
pub use refusal::Refusal;
pub use transport::SseTransport;
pub use upstream::BodyError;

use crate::event_id::EventId;
use crate::writer::write_retry;
use crate::{HELLO_PARAM, PROTOCOL_PARAM};
use link::{Link, PushError};
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
    /// Largest POST body; larger ones get HTTP 413. The default, 2 MiB, is
    /// twice the session's default frame limit, so a publish over the
    /// session's limit still reaches it and is refused by name.
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
            max_post_bytes: 2 << 20,
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

/// The SSE endpoint of one mount point: its settings, the registry of live
/// streams (which stream takes a session's POSTs) and its connection limit.
/// Cheap to clone (shared state).
#[derive(Clone)]
pub struct SseEndpoint {
    config: SseConfig,
    permits: Arc<Semaphore>,
    registry: Arc<Registry>,
    connections: Arc<AtomicU64>,
}

impl std::fmt::Debug for SseEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseEndpoint")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for SseEndpoint {
    fn default() -> Self {
        Self::new(SseConfig::default())
    }
}

/// One opened event stream: the transport to serve (with its codec) and the
/// response body that streams it. `permit` holds the stream's place under
/// the connection limit: keep it while the transport is served.
#[derive(Debug)]
#[non_exhaustive]
pub struct SseStream {
    /// The server side of the connection, for the hub.
    pub transport: SseTransport,
    /// The codec (SSE carries `tidings.v1.json`).
    pub codec: Arc<dyn FrameCodec>,
    /// The response body (`text/event-stream`).
    pub body: EventBody,
    /// The connection's place under the limit.
    pub permit: StreamPermit,
    /// Connection number on this endpoint (for logs).
    pub conn: u64,
    /// Whether the request named a stream to resume.
    pub resumed: bool,
}

/// A place under an endpoint's connection limit, released on drop.
#[derive(Debug)]
pub struct StreamPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// The stream a POST's frames go to, found from its token before the body is read.
#[derive(Debug)]
pub struct PostTarget {
    link: Arc<Link>,
    session: String,
    max_body: usize,
    post_timeout: Duration,
}

impl SseEndpoint {
    /// An endpoint with `config` and room for 100,000 concurrent streams.
    pub fn new(config: SseConfig) -> Self {
        Self {
            registry: Arc::new(Registry::new(config.ended_ttl)),
            config,
            permits: Arc::new(Semaphore::new(100_000)),
            connections: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Most concurrent streams; further ones are refused ([`Refusal::ConnectionLimit`]).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.permits = Arc::new(Semaphore::new(n));
        self
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &SseConfig {
        &self.config
    }

    /// The response headers of an event stream (`text/event-stream`, no caching, no proxy buffering).
    pub fn stream_headers() -> [(HeaderName, HeaderValue); 3] {
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-transform"),
            ),
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ]
    }

    /// Opens the event stream a `GET` with `headers` and `uri` asks for: a new
    /// session, or a resumed one when it carries a `Last-Event-ID` (header,
    /// or the `last_event_id` query parameter) or a whole `Hello` with a
    /// resume token (the `hello` query parameter, [`crate::HELLO_PARAM`]).
    pub fn open(&self, headers: &HeaderMap, uri: &Uri) -> Result<SseStream, Refusal> {
        self.open_as(headers, uri, None)
    }

    /// [`SseEndpoint::open`] for a stream opened by `owner` (the subject the
    /// integration's authentication found): only the same subject may POST
    /// into it ([`SseEndpoint::post_target_as`]).
    pub fn open_as(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        owner: Option<Arc<str>>,
    ) -> Result<SseStream, Refusal> {
        if let Some(p) = request::query_param(uri, PROTOCOL_PARAM)
            && p != SUBPROTOCOL_JSON
        {
            return Err(Refusal::UnsupportedProtocol {
                protocol: p.into_owned(),
            });
        }
        let resume = request::last_event_id(headers, uri).and_then(|raw| {
            let id = EventId::parse(&raw);
            if id.is_none() {
                debug!("malformed Last-Event-ID: serving a new session");
            }
            id
        });
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::ConnectionLimit)?;
        let codec: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
        // A stream that carries its whole hello (a session moving here from
        // another transport) resumes from the positions in it.
        let carried = match &resume {
            Some(_) => None,
            None => request::query_param(uri, HELLO_PARAM)
                .map(
                    |raw| match codec.decode(&Bytes::copy_from_slice(raw.as_bytes())) {
                        Ok(Frame::Hello(h)) => Ok(h),
                        Ok(other) => Err(Refusal::BadHello(format!(
                            "expected a hello frame, got `{:?}`",
                            other.frame_type()
                        ))),
                        Err(e) => Err(Refusal::BadHello(e.to_string())),
                    },
                )
                .transpose()?,
        };
        let resumed = resume.is_some() || carried.as_ref().is_some_and(|h| h.resume.is_some());
        let hello = carried.unwrap_or_else(|| Hello {
            version: PROTOCOL_VERSION,
            resume: resume.as_ref().map(|id| id.token().clone()),
            positions: Vec::new(),
            publisher: None,
        });
        let hello = codec
            .encode_to_bytes(&Frame::Hello(hello))
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let conn = self.connections.fetch_add(1, Ordering::Relaxed);
        let upstream = self
            .config
            .upstream_queue_bytes
            .max(self.config.max_post_bytes);
        let link = Link::new(upstream, owner);
        let transport = SseTransport::new(
            link.clone(),
            self.registry.clone(),
            conn,
            hello,
            resume.as_ref().map(EventId::frame),
            self.config.write_buffer_bytes,
        );
        let mut first = BytesMut::new();
        write_retry(
            &mut first,
            u64::try_from(self.config.retry.as_millis()).unwrap_or(u64::MAX),
        );
        let body = EventBody::new(link, first.freeze(), self.config.keep_alive);
        Ok(SseStream {
            transport,
            codec,
            body,
            permit: StreamPermit(permit),
            conn,
            resumed,
        })
    }

    /// Finds the stream of `session` that a `POST` with `headers` is for, by
    /// its session token (`x-tidings-token`, or `Authorization: Bearer`),
    /// before the body is read. A declared `Content-Length` over the limit
    /// is refused here.
    pub fn post_target(&self, session: &str, headers: &HeaderMap) -> Result<PostTarget, Refusal> {
        self.post_target_as(session, headers, None)
    }

    /// [`SseEndpoint::post_target`] for a POST made by `subject`: a stream
    /// opened by another subject refuses it ([`Refusal::NotYourSession`]),
    /// whatever token it carries.
    pub fn post_target_as(
        &self,
        session: &str,
        headers: &HeaderMap,
        subject: Option<&str>,
    ) -> Result<PostTarget, Refusal> {
        let token = request::token(headers).ok_or(Refusal::MissingToken)?;
        let max = self.config.max_post_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(Refusal::BodyTooLarge { max });
        }
        let link = match self.registry.lookup(&token) {
            Lookup::Live { session: s, link } if s.0 == session => link,
            Lookup::Ended { session: s, ended } if s.0 == session => {
                return Err(if ended.resumable {
                    Refusal::NoStream {
                        session: session.to_string(),
                        code: ended.code,
                        reason: ended.reason,
                    }
                } else {
                    Refusal::SessionClosed {
                        session: session.to_string(),
                        code: ended.code,
                        reason: ended.reason,
                    }
                });
            }
            Lookup::Unknown => return Err(Refusal::UnknownSession),
            _ => {
                return Err(Refusal::NotThisSession {
                    session: session.to_string(),
                });
            }
        };
        if link.owner.as_deref() != subject {
            return Err(Refusal::NotYourSession {
                session: session.to_string(),
            });
        }
        Ok(PostTarget {
            link,
            session: session.to_string(),
            max_body: max,
            post_timeout: self.config.post_timeout,
        })
    }
}

impl PostTarget {
    /// The largest body to read for it ([`SseConfig::max_post_bytes`]).
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Checks the frames of `body` (each at most `max_frame` bytes) and
    /// queues all of them for the session, or none. Returns how many were
    /// queued. Pass twice the frame limit of the sessions that serve the
    /// endpoint: a publish over their limit then reaches the session, which
    /// refuses it by name and goes on, instead of the whole POST failing.
    pub async fn deliver(self, body: &Bytes, max_frame: usize) -> Result<usize, Refusal> {
        let frames = upstream::split_frames(body, &JsonCodec::new(), max_frame)?;
        let n = frames.len();
        match self.link.push(frames, self.post_timeout).await {
            Ok(()) => Ok(n),
            Err(PushError::Ended) => Err(Refusal::StreamEnded {
                session: self.session,
            }),
            Err(PushError::Full) => Err(Refusal::UpstreamFull),
        }
    }
}
