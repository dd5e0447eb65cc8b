//! The SSE client: its builder and connector for the runtime's one `Client`, over an event stream (down) and POSTs (up), natively or in the browser.

#[cfg(not(target_arch = "wasm32"))]
#[path = "native.rs"]
mod platform;
#[cfg(target_arch = "wasm32")]
#[path = "wasm.rs"]
mod platform;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tidings_protocol::{ClientConfig, Frame, FrameCodec};
use tidings_runtime::{BoxFuture, ClientTransport, TransportError};

use crate::parser::DEFAULT_MAX_EVENT_BYTES;

/// Frames are batched into one POST up to this many bytes.
pub(crate) const MAX_BATCH: usize = 256 << 10;

/// Errors of the SSE [`Client`] (shared by every transport's client).
pub use tidings_runtime::ClientError as Error;

/// Builder of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    pub(crate) url: String,
    pub(crate) session: ClientConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) post_timeout: Duration,
    pub(crate) max_event_bytes: usize,
    pub(crate) headers: Vec<(String, String)>,
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) hello: Option<HelloSource>,
}

/// Gives the `Hello` (JSON text) a new event stream carries in its
/// `hello` query parameter, or `None` to resume by `Last-Event-ID` as usual.
/// See [`ClientBuilder::resume_hello`].
#[derive(Clone)]
pub struct HelloSource(Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl HelloSource {
    /// A source calling `f` each time an event stream opens.
    pub fn new(f: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The hello to send now, if any.
    pub fn hello(&self) -> Option<String> {
        (self.0)()
    }
}

impl std::fmt::Debug for HelloSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HelloSource")
    }
}

impl ClientBuilder {
    /// Session settings (heartbeat, backoff, limits).
    pub fn session_config(mut self, config: ClientConfig) -> Self {
        self.session = config;
        self
    }

    /// Time allowed to open the event stream (up to the response headers).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Time allowed for one POST.
    pub fn post_timeout(mut self, t: Duration) -> Self {
        self.post_timeout = t;
        self
    }

    /// Largest event (line or data) accepted from the server; a larger one
    /// fails the connection. Default 16 MiB.
    pub fn max_event_bytes(mut self, n: usize) -> Self {
        self.max_event_bytes = n;
        self
    }

    /// A header sent with every request, e.g. credentials for the server's
    /// auth hook. Native only: a browser `EventSource` cannot send headers
    /// (it sends the page's cookies).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Also trusts the CA certificate(s) in `pem` for `https://` URLs (a
    /// private or test CA), beside the webpki roots; may be called more than
    /// once. Needs the `rustls` feature; a bad PEM fails [`Self::connect`]
    /// with [`Error::Tls`].
    ///
    /// ```no_run
    /// # fn demo(ca_pem: &str) -> Result<(), tidings_sse::Error> {
    /// # let _rt = tokio::runtime::Runtime::new().unwrap();
    /// # let _g = _rt.enter();
    /// let client = tidings_sse::Client::builder("https://localhost:3443/sse")
    ///     .root_certificate_pem(ca_pem)
    ///     .connect()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Opens every event stream with the `Hello` that `source` gives (in the
    /// `hello` query parameter, [`crate::HELLO_PARAM`]) instead of a
    /// `Last-Event-ID`, whenever it gives one: the server resumes the session
    /// named by its resume token from the per-channel positions it carries.
    /// This is how a session that lives on another transport moves to SSE
    /// (`tidings-adaptive` gives the session's own `Hello`); the server's
    /// `retry:` hint is not waited for on such a stream (the session's
    /// backoff decides).
    pub fn resume_hello(mut self, source: HelloSource) -> Self {
        self.hello = Some(source);
        self
    }

    /// The connector of this client's connections (each call of
    /// `Connector::connect` opens one event stream), without starting a
    /// client: for layers that run the session themselves
    /// (`tidings-adaptive` races and switches transports).
    pub fn into_connector(
        self,
    ) -> Result<impl tidings_runtime::Connector + tidings_runtime::MaybeSend, Error> {
        self.check_url()?;
        platform::connector(self)
    }

    fn check_url(&self) -> Result<(), Error> {
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(Error::InvalidUrl {
                url: self.url.clone(),
                reason: "scheme must be http:// or https://".into(),
            });
        }
        Ok(())
    }

    /// Starts the client: a background task opens the event stream, and
    /// reconnects whenever it drops, resuming the session with `Last-Event-ID`.
    ///
    /// Natively this must run inside a tokio runtime; in the browser it uses
    /// the page's event loop.
    pub fn connect(self) -> Result<Client, Error> {
        self.check_url()?;
        let session = self.session.clone();
        Client::start(session, platform::connector(self)?)
    }
}

/// The Server-Sent Events transport of a [`Client`] (`Client<EventStream>`):
/// an event stream down, POSTs up.
#[derive(Debug)]
pub enum EventStream {}

impl ClientTransport for EventStream {
    type Builder = ClientBuilder;

    fn builder(url: String) -> ClientBuilder {
        ClientBuilder {
            url,
            session: ClientConfig::default(),
            connect_timeout: Duration::from_secs(10),
            post_timeout: Duration::from_secs(30),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            headers: Vec::new(),
            root_certificates: Vec::new(),
            hello: None,
        }
    }

    fn connect(url: String, config: ClientConfig) -> Result<Client, Error> {
        Self::builder(url).session_config(config).connect()
    }
}

/// A tidings client over Server-Sent Events (down) and POSTs (up): the
/// runtime's one [`tidings_runtime::Client`], with the same API as on
/// WebSocket.
///
/// ```no_run
/// # async fn demo() -> Result<(), tidings_sse::Error> {
/// use tidings_protocol::ClientEvent;
/// let client = tidings_sse::Client::builder("http://127.0.0.1:3000/sse").connect()?;
/// client.subscribe("room:lobby")?;
/// client.publish("room:lobby", r#"{"text":"hello"}"#)?;
/// while let Some(event) = client.next_event().await {
///     if let ClientEvent::Message(m) = event {
///         println!("{}: {:?}", m.channel, m.payload);
///     }
/// }
/// # Ok(()) }
/// ```
pub type Client = tidings_runtime::Client<EventStream>;

/// What outlives one connection: where to resume from, and how long to wait first.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// The last event id received (sent back as `Last-Event-ID`).
    pub(crate) last_event_id: Option<String>,
    /// The server's `retry:` hint (native: browsers keep it to themselves).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) retry: Option<Duration>,
    /// A connection was attempted before: the next one is a reconnect.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) reconnecting: bool,
}

/// The upstream half of a client connection: the session's frames become
/// newline-delimited POST bodies to `<stream URL>/<session id>`.
///
/// The first frame the session sends on a connection is its `Hello`: over SSE
/// the GET request itself is the hello (the server resumes from
/// `Last-Event-ID`), so it is dropped. The POST address and token come from
/// the `welcome`, the first event of every stream.
pub(crate) struct Upstream {
    base: String,
    codec: Arc<dyn FrameCodec>,
    hello_seen: bool,
    target: Option<(String, String)>,
    batch: BytesMut,
    /// The POST under way: one at a time, so frames reach the session in order.
    in_flight: Option<PostFuture>,
}

/// One POST, resolving once the server accepted it.
pub(crate) type PostFuture = BoxFuture<'static, Result<(), TransportError>>;

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .field("pending", &self.batch.len())
            .field("posting", &self.in_flight.is_some())
            .finish()
    }
}

impl Upstream {
    pub(crate) fn new(stream_url: &str, codec: Arc<dyn FrameCodec>) -> Self {
        let end = stream_url.find(['?', '#']).unwrap_or(stream_url.len());
        let base = stream_url[..end].trim_end_matches('/').to_string();
        Self {
            base,
            codec,
            hello_seen: false,
            target: None,
            batch: BytesMut::new(),
            in_flight: None,
        }
    }

    /// Ready while the batch has room; otherwise flushes until it has.
    /// `post(url, token, body)` starts one POST of the platform.
    pub(crate) fn poll_send_ready(
        &mut self,
        cx: &mut Context<'_>,
        post: impl FnMut(String, String, Bytes) -> PostFuture,
    ) -> Poll<Result<(), TransportError>> {
        if self.pending() < MAX_BATCH {
            return Poll::Ready(Ok(()));
        }
        match self.poll_flush(cx, post) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending if self.pending() < MAX_BATCH => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// POSTs what is batched, one POST at a time, until nothing is left.
    pub(crate) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        mut post: impl FnMut(String, String, Bytes) -> PostFuture,
    ) -> Poll<Result<(), TransportError>> {
        loop {
            if let Some(in_flight) = self.in_flight.as_mut() {
                let result = std::task::ready!(in_flight.as_mut().poll(cx));
                self.in_flight = None;
                result?;
            }
            let Some((url, token, body)) = self.take_batch() else {
                return Poll::Ready(Ok(()));
            };
            self.in_flight = Some(post(url, token, body));
        }
    }

    /// Bytes waiting for a POST.
    pub(crate) fn pending(&self) -> usize {
        self.batch.len()
    }

    /// A frame from the session.
    pub(crate) fn send(&mut self, frame: &Bytes) {
        if !self.hello_seen {
            self.hello_seen = true;
            if matches!(self.codec.decode(frame), Ok(Frame::Hello(_))) {
                return;
            }
        }
        self.batch.reserve(frame.len() + 1);
        self.batch.put_slice(frame);
        self.batch.put_u8(b'\n');
    }

    /// A frame from the server: the first `welcome` names the POST address.
    pub(crate) fn received(&mut self, frame: &Bytes) {
        if self.target.is_none()
            && let Ok(Frame::Welcome(w)) = self.codec.decode(frame)
        {
            let url = format!("{}/{}", self.base, encode_segment(&w.session.0));
            self.target = Some((url, w.resume_token.0));
        }
    }

    /// The next POST to make: `(url, token, body)`; `None` when there is
    /// nothing to send, or no `welcome` yet to say where.
    pub(crate) fn take_batch(&mut self) -> Option<(String, String, Bytes)> {
        if self.batch.is_empty() {
            return None;
        }
        let (url, token) = self.target.clone()?;
        Some((url, token, self.batch.split().freeze()))
    }
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `last_event_id=<id>` added to its query (for a browser
/// `EventSource`, which cannot send the header on its first request).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn with_last_event_id(url: &str, id: &str) -> String {
    with_param(url, crate::LAST_EVENT_ID_PARAM, id)
}

/// `url` with `name=<value>` (percent-encoded) added to its query.
pub(crate) fn with_param(url: &str, name: &str, value: &str) -> String {
    let (url, fragment) = match url.find('#') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={}{fragment}", encode_segment(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_codec::JsonCodec;

    #[test]
    fn upstream_swallows_the_hello_and_posts_after_the_welcome() {
        let codec: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
        let mut up = Upstream::new("http://h:1/sse/?x=1#f", codec);
        up.send(&Bytes::from_static(
            br#"{"type":"hello","version":1,"positions":[]}"#,
        ));
        assert_eq!(up.pending(), 0);
        up.send(&Bytes::from_static(br#"{"type":"ping","nonce":1}"#));
        assert!(up.take_batch().is_none(), "no welcome yet");
        up.received(&Bytes::from_static(
            br#"{"type":"welcome","version":1,"session":"s1 /x","resume_token":"tok","resumed":false,"heartbeat_ms":1,"max_frame":9,"publish_acked":0}"#,
        ));
        up.send(&Bytes::from_static(br#"{"type":"ping","nonce":2}"#));
        let (url, token, body) = up.take_batch().unwrap();
        assert_eq!(url, "http://h:1/sse/s1%20%2Fx");
        assert_eq!(token, "tok");
        assert_eq!(
            &body[..],
            b"{\"type\":\"ping\",\"nonce\":1}\n{\"type\":\"ping\",\"nonce\":2}\n"
        );
        assert!(up.take_batch().is_none());
    }

    #[test]
    fn last_event_id_in_the_query() {
        assert_eq!(
            with_last_event_id("http://h/sse", "t.5"),
            "http://h/sse?last_event_id=t.5"
        );
        assert_eq!(
            with_last_event_id("http://h/sse?a=1#x", "t.5"),
            "http://h/sse?a=1&last_event_id=t.5#x"
        );
    }
}
