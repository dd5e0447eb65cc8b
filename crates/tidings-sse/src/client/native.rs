//! Native platform of the SSE client: the event stream and POSTs on reqwest, parsed by this crate's spec-exact parser, on tokio.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use tidings_codec::JsonCodec;
use tidings_protocol::FrameCodec;
use tidings_runtime::{
    BoxFuture, Connected, Connector, TokioTimer, Transport, TransportError, TransportKind,
    TransportMetrics,
};
use tracing::{Instrument, debug, debug_span};

use super::{ClientBuilder, Error, PostFuture, StreamState, Upstream};
use crate::TOKEN_HEADER;
use crate::parser::EventParser;

type Shared<T> = Arc<Mutex<T>>;

fn lock(state: &Shared<StreamState>) -> MutexGuard<'_, StreamState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

type Chunk = BoxFuture<'static, (reqwest::Response, reqwest::Result<Option<Bytes>>)>;

fn next_chunk(mut response: reqwest::Response) -> Chunk {
    Box::pin(async move {
        let chunk = response.chunk().await;
        (response, chunk)
    })
}

fn io(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout("HTTP request")
    } else {
        TransportError::Io(std::io::Error::other(e))
    }
}

/// Reads at most `max` bytes of an error response's body, lossily.
async fn body_text(mut response: reqwest::Response, max: usize) -> String {
    let mut out = Vec::new();
    while out.len() < max {
        match response.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c[..c.len().min(max - out.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One event stream plus its POSTs, as a tidings [`Transport`].
struct NativeTransport {
    http: reqwest::Client,
    body: Option<Chunk>,
    parser: EventParser,
    state: Shared<StreamState>,
    up: Upstream,
    headers: Arc<Vec<(String, String)>>,
    post_timeout: Duration,
    metrics: TransportMetrics,
}

impl NativeTransport {
    /// Starts one POST of `body` to the session URL.
    fn post(
        http: &reqwest::Client,
        headers: &[(String, String)],
        timeout: Duration,
        url: String,
        token: String,
        body: Bytes,
    ) -> PostFuture {
        let mut req = http
            .post(&url)
            .header(TOKEN_HEADER, token)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .timeout(timeout);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(body);
        Box::pin(async move {
            let response = req.send().await.map_err(io)?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = body_text(response, 1024).await;
            Err(TransportError::Protocol(format!(
                "POST {url}: HTTP {status}: {text}"
            )))
        })
    }
}

impl Transport for NativeTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        loop {
            if let Some(event) = self.parser.next_event() {
                lock(&self.state).last_event_id = Some(event.last_event_id);
                if event.event != "message" {
                    continue; // not a tidings frame
                }
                let frame = Bytes::from(event.data);
                self.up.received(&frame);
                self.metrics.frames_received += 1;
                self.metrics.bytes_received += frame.len() as u64;
                return Poll::Ready(Some(Ok(frame)));
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready((response, Ok(Some(chunk)))) => {
                    self.body = Some(next_chunk(response));
                    if let Err(e) = self.parser.feed(&chunk) {
                        self.body = None;
                        return Poll::Ready(Some(Err(TransportError::Protocol(e.to_string()))));
                    }
                    let mut st = lock(&self.state);
                    if let Some(retry) = self.parser.reconnection_time() {
                        st.retry = Some(retry);
                    }
                    if self.parser.pending_events() == 0 {
                        // Blocks that dispatch nothing may still set the id.
                        st.last_event_id = Some(self.parser.last_event_id().to_string());
                    }
                }
                Poll::Ready((_, Ok(None))) => {
                    self.parser.finish();
                    self.body = None;
                }
                Poll::Ready((_, Err(e))) => {
                    self.body = None;
                    return Poll::Ready(Some(Err(io(e))));
                }
            }
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let (http, headers, timeout) = (&self.http, &self.headers, self.post_timeout);
        self.up
            .poll_send_ready(cx, |u, t, b| Self::post(http, headers, timeout, u, t, b))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64;
        self.up.send(&frame);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let (http, headers, timeout) = (&self.http, &self.headers, self.post_timeout);
        self.up
            .poll_flush(cx, |u, t, b| Self::post(http, headers, timeout, u, t, b))
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _code: u16,
        _reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        // No close frame in SSE: dropping the response closes the stream.
        self.body = None;
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Sse
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}

struct Native {
    http: reqwest::Client,
    url: String,
    state: Shared<StreamState>,
    headers: Arc<Vec<(String, String)>>,
    connect_timeout: Duration,
    post_timeout: Duration,
    max_event_bytes: usize,
    hello: Option<super::HelloSource>,
}

impl Connector for Native {
    type Timer = TokioTimer;

    fn timer(&self) -> TokioTimer {
        TokioTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let http = self.http.clone();
        let url = self.url.clone();
        let state = self.state.clone();
        let headers = self.headers.clone();
        let (connect_timeout, post_timeout, max_event_bytes) = (
            self.connect_timeout,
            self.post_timeout,
            self.max_event_bytes,
        );
        let hello = self.hello.as_ref().and_then(super::HelloSource::hello);
        let span = debug_span!("tidings_sse_connect", url = %url);
        Box::pin(
            async move {
                let (retry, last_event_id) = {
                    let mut st = lock(&state);
                    let retry = st.retry.filter(|_| st.reconnecting);
                    st.reconnecting = true;
                    (retry, st.last_event_id.clone().filter(|id| !id.is_empty()))
                };
                // A stream that carries its hello resumes from positions: no
                // Last-Event-ID, and the session's backoff alone decides when.
                let last_event_id = last_event_id.filter(|_| hello.is_none());
                if let Some(retry) = retry.filter(|_| hello.is_none()) {
                    // The server's reconnection time, on top of the session's backoff.
                    tokio::time::sleep(retry).await;
                }
                let target = match &hello {
                    Some(h) => super::with_param(&url, crate::HELLO_PARAM, h),
                    None => url.clone(),
                };
                let mut req = http
                    .get(&target)
                    .header(ACCEPT, "text/event-stream")
                    .header(CACHE_CONTROL, "no-cache");
                for (k, v) in headers.iter() {
                    req = req.header(k.as_str(), v.as_str());
                }
                if let Some(id) = &last_event_id {
                    req = req.header("last-event-id", id.as_str());
                }
                let response = tokio::time::timeout(connect_timeout, req.send())
                    .await
                    .map_err(|_| TransportError::Timeout("opening the event stream"))?
                    .map_err(io)?;
                let status = response.status();
                if status != reqwest::StatusCode::OK {
                    let text = body_text(response, 4096).await;
                    return Err(TransportError::Handshake {
                        status: Some(status.as_u16()),
                        reason: format!("GET {url}: HTTP {status}: {text}"),
                    });
                }
                let content_type = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !content_type.starts_with("text/event-stream") {
                    return Err(TransportError::Handshake {
                        status: Some(status.as_u16()),
                        reason: format!(
                            "GET {url}: expected text/event-stream, got `{content_type}`"
                        ),
                    });
                }
                debug!(resume = last_event_id.is_some(), "event stream open");
                let codec: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
                let transport = NativeTransport {
                    http,
                    body: Some(next_chunk(response)),
                    parser: EventParser::with_max_event_bytes(max_event_bytes),
                    state,
                    up: Upstream::new(&url, codec.clone()),
                    headers,
                    post_timeout,
                    metrics: TransportMetrics::default(),
                };
                let connected: Connected = (Box::new(transport), codec);
                Ok(connected)
            }
            .instrument(span),
        )
    }
}

/// The connector of a [`super::Client`] built by `builder`.
pub(crate) fn connector(builder: ClientBuilder) -> Result<impl Connector + Send, Error> {
    let http = reqwest::Client::builder().connect_timeout(builder.connect_timeout);
    // A rustls configuration of our own (ring provider, webpki roots plus the
    // given CAs); without the feature reqwest has no TLS and https:// fails.
    #[cfg(feature = "rustls")]
    let http = http.use_preconfigured_tls(std::sync::Arc::unwrap_or_clone(
        tidings_runtime::tls::client_config(&builder.root_certificates)?,
    ));
    let http = http.build().map_err(|e| Error::InvalidUrl {
        url: builder.url.clone(),
        reason: format!("HTTP client: {e}"),
    })?;
    let connector = Native {
        http,
        url: builder.url,
        state: Arc::new(Mutex::new(StreamState::default())),
        headers: Arc::new(builder.headers),
        connect_timeout: builder.connect_timeout,
        post_timeout: builder.post_timeout,
        max_event_bytes: builder.max_event_bytes,
        hello: builder.hello,
    };
    Ok(connector)
}
