//! The adaptive `Client`: its builder (transports by URL, by connector or from a discovery document; order, timings), and the handle's adaptive side (transport in use, switches, events, counters).

use std::future::poll_fn;
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use tidings_protocol::{ClientConfig, DiscoveredTransport, Discovery, Frame, FrameCodec};
use tidings_runtime::{Connector, MaybeSend, SharedClient, TransportKind};

use crate::Error;
use crate::connector::AdaptiveConnector;
use crate::core::{ConnectorDial, Dial, Shared};
use crate::events::{AdaptiveEvent, AdaptiveStats, kind_from_name};
use crate::policy::{Policy, PolicyConfig};

/// The transport of an adaptive [`Client`] (`tidings_runtime::Client<Adaptive>`).
#[derive(Debug)]
pub enum Adaptive {}

/// Builder of an adaptive [`Client`].
pub struct ClientBuilder {
    session: ClientConfig,
    policy: PolicyConfig,
    remembered: Option<Remembered>,
    #[cfg(feature = "ws")]
    ws: Option<tidings_ws::ClientBuilder>,
    #[cfg(feature = "sse")]
    sse: Option<tidings_sse::ClientBuilder>,
    #[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
    wt: Option<tidings_webtransport::ClientBuilder>,
    dialers: Vec<(TransportKind, Arc<dyn Dial>)>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// A builder without transports (add them by URL, connector or discovery).
    pub fn new() -> Self {
        Self {
            session: ClientConfig::default(),
            policy: PolicyConfig::default(),
            remembered: None,
            #[cfg(feature = "ws")]
            ws: None,
            #[cfg(feature = "sse")]
            sse: None,
            #[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
            wt: None,
            dialers: Vec::new(),
        }
    }

    /// Session settings (heartbeat, backoff, limits), shared by every transport.
    pub fn session_config(mut self, config: ClientConfig) -> Self {
        self.session = config;
        self
    }

    /// The policy's settings (order, stagger, timeouts, probing).
    pub fn policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// The order to try transports in (default WebTransport, WebSocket, SSE);
    /// transports left out are not used.
    pub fn order(mut self, order: impl IntoIterator<Item = TransportKind>) -> Self {
        self.policy.order = order.into_iter().collect();
        self
    }

    /// Happy eyeballs: how long an attempt runs alone before the next one starts.
    pub fn stagger(mut self, d: Duration) -> Self {
        self.policy.stagger = d;
        self
    }

    /// Time one attempt may take.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.policy.attempt_timeout = d;
        self
    }

    /// How often a better transport is tried while on a lesser one.
    pub fn probe_every(mut self, d: Duration) -> Self {
        self.policy.probe_every = d;
        self
    }

    /// Silence (after sending) that counts as a stall.
    pub fn stall_after(mut self, d: Duration) -> Self {
        self.policy.stall_after = d;
        self
    }

    /// Shares what worked with other clients (and across restarts, when the
    /// application stores it): the first race starts with it.
    pub fn remember_in(mut self, remembered: Remembered) -> Self {
        self.remembered = Some(remembered);
        self
    }

    /// WebSocket at `url` (`ws://`, `wss://`).
    #[cfg(feature = "ws")]
    pub fn websocket(self, url: impl Into<String>) -> Self {
        self.websocket_builder(tidings_ws::Client::builder(url))
    }

    /// WebSocket with the settings of `builder` (its session settings are
    /// replaced by this builder's).
    #[cfg(feature = "ws")]
    pub fn websocket_builder(mut self, builder: tidings_ws::ClientBuilder) -> Self {
        self.ws = Some(builder);
        self
    }

    /// Server-Sent Events at `url` (`http://`, `https://`).
    #[cfg(feature = "sse")]
    pub fn sse(self, url: impl Into<String>) -> Self {
        self.sse_builder(tidings_sse::Client::builder(url))
    }

    /// SSE with the settings of `builder`.
    #[cfg(feature = "sse")]
    pub fn sse_builder(mut self, builder: tidings_sse::ClientBuilder) -> Self {
        self.sse = Some(builder);
        self
    }

    /// WebTransport at `url` (`https://`), pinning the certificate hashes given.
    #[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
    pub fn webtransport(self, url: impl Into<String>, cert_hashes: &[[u8; 32]]) -> Self {
        let mut b =
            <tidings_webtransport::WebTransport as tidings_runtime::ClientTransport>::builder(
                url.into(),
            );
        for h in cert_hashes {
            b = b.server_certificate_hash(*h);
        }
        self.webtransport_builder(b)
    }

    /// WebTransport with the settings of `builder`.
    #[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
    pub fn webtransport_builder(mut self, builder: tidings_webtransport::ClientBuilder) -> Self {
        self.wt = Some(builder);
        self
    }

    /// Any connector for `kind` (a transport crate's `into_connector()`; how
    /// the browser WebTransport client plugs in). Replaces a transport of the
    /// same kind given by URL. An SSE connector given here resumes by
    /// `Last-Event-ID` only: give SSE with [`Self::sse_builder`] to move
    /// sessions onto it without a new session.
    pub fn connector(mut self, kind: TransportKind, connector: impl Connector + MaybeSend) -> Self {
        self.dialers.retain(|(k, _)| *k != kind);
        self.dialers
            .push((kind, Arc::new(ConnectorDial(Mutex::new(connector)))));
        self
    }

    /// The transports of a discovery document served at `origin`
    /// (`http://host:port`): WebSocket, SSE, and natively WebTransport with
    /// its certificate hashes. Kinds this build cannot use are skipped.
    pub fn discovery(mut self, doc: &Discovery, origin: &str) -> Result<Self, Error> {
        let secure = origin.to_ascii_lowercase().starts_with("https://");
        for t in &doc.transports {
            let Some(kind) = kind_from_name(&t.kind) else {
                continue;
            };
            self = self.discovered(kind, t, origin, secure)?;
        }
        Ok(self)
    }

    #[allow(unused_variables, unused_mut)]
    fn discovered(
        mut self,
        kind: TransportKind,
        t: &DiscoveredTransport,
        origin: &str,
        secure: bool,
    ) -> Result<Self, Error> {
        match kind {
            #[cfg(feature = "ws")]
            TransportKind::WebSocket => {
                let url = t.resolve(origin, if secure { "wss" } else { "ws" });
                self = self.websocket(url);
            }
            #[cfg(feature = "sse")]
            TransportKind::Sse => {
                let url = t.resolve(origin, if secure { "https" } else { "http" });
                self = self.sse(url);
            }
            #[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
            TransportKind::WebTransport => {
                let url = t.resolve(origin, "https");
                let mut hashes = Vec::new();
                for h in &t.cert_hashes {
                    hashes.push(parse_hash(h).ok_or_else(|| Error::Discovery {
                        reason: format!("certificate hash `{h}` is not 64 hex digits"),
                    })?);
                }
                self = self.webtransport(url, &hashes);
            }
            _ => {}
        }
        Ok(self)
    }

    /// Starts the client: the first race begins at once; reconnects race
    /// again (starting with what worked), and the active transport is
    /// watched and switched at run time. Natively inside a tokio runtime;
    /// in the browser on the page's event loop.
    pub fn connect(self) -> Result<Client, Error> {
        let shared = Arc::new(SharedClient::with_config(self.session.clone()));
        let mut dialers: Vec<(TransportKind, Arc<dyn Dial>)> = Vec::new();
        #[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
        if let Some(b) = self.wt {
            let c = b.session_config(self.session.clone()).into_connector()?;
            dialers.push((
                TransportKind::WebTransport,
                Arc::new(ConnectorDial(Mutex::new(c))),
            ));
        }
        #[cfg(feature = "ws")]
        if let Some(b) = self.ws {
            let c = b.session_config(self.session.clone()).into_connector()?;
            dialers.push((
                TransportKind::WebSocket,
                Arc::new(ConnectorDial(Mutex::new(c))),
            ));
        }
        #[cfg(feature = "sse")]
        if let Some(b) = self.sse {
            let c = b
                .session_config(self.session.clone())
                .resume_hello(hello_source(Arc::downgrade(&shared)))
                .into_connector()?;
            dialers.push((TransportKind::Sse, Arc::new(ConnectorDial(Mutex::new(c)))));
        }
        for (kind, d) in self.dialers {
            dialers.retain(|(k, _)| *k != kind);
            dialers.push((kind, d));
        }
        if dialers.is_empty() {
            return Err(Error::NoTransport);
        }
        let mut policy = self.policy;
        policy.order.retain(|k| dialers.iter().any(|(d, _)| d == k));
        if policy.order.is_empty() {
            return Err(Error::NoTransport);
        }
        let mut policy = Policy::new(policy);
        if let Some(r) = &self.remembered {
            policy.remember(r.get());
        }
        let adaptive = Arc::new(Shared::new(policy, dialers, self.remembered));
        let connector = AdaptiveConnector {
            shared: adaptive.clone(),
        };
        let client = tidings_runtime::Client::start_shared(shared, connector)?;
        Ok(Client { client, adaptive })
    }
}

/// The session's own `Hello`, as JSON, for an SSE stream that moves the
/// session: `None` before the session was welcomed (a plain new stream).
#[cfg(feature = "sse")]
fn hello_source(session: Weak<SharedClient>) -> tidings_sse::HelloSource {
    tidings_sse::HelloSource::new(move || {
        let shared = session.upgrade()?;
        let hello = shared.lock().resume_hello();
        hello.resume.as_ref()?;
        let bytes = tidings_codec::JsonCodec::new()
            .encode_to_bytes(&Frame::Hello(hello))
            .ok()?;
        String::from_utf8(bytes.to_vec()).ok()
    })
}

#[cfg(all(feature = "webtransport", not(target_arch = "wasm32")))]
fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// An adaptive tidings client: the runtime's one `Client` (subscribe,
/// publish, events: through `Deref`) on whichever transport works best,
/// switching at run time without losing or repeating a message.
///
/// ```no_run
/// # async fn demo() -> Result<(), tidings_adaptive::Error> {
/// use tidings_runtime::TransportKind;
/// let client = tidings_adaptive::Client::builder()
///     .websocket("ws://127.0.0.1:3000/ws")
///     .sse("http://127.0.0.1:3000/sse")
///     .connect()?;
/// client.subscribe("room:lobby")?;
/// client.publish("room:lobby", r#"{"text":"hello"}"#)?;
/// println!("on {:?}", client.transport());
/// client.switch_to(TransportKind::Sse)?; // nothing lost, nothing twice
/// # Ok(()) }
/// ```
pub struct Client {
    client: tidings_runtime::Client<Adaptive>,
    adaptive: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.client.state())
            .field("transport", &self.transport())
            .finish()
    }
}

impl Deref for Client {
    type Target = tidings_runtime::Client<Adaptive>;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Client {
    /// A builder without transports.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The transport carrying the session now (`None` while reconnecting).
    pub fn transport(&self) -> Option<TransportKind> {
        self.adaptive.lock().stats.active
    }

    /// Counters: attempts, failures, connections per transport, switches.
    pub fn stats(&self) -> AdaptiveStats {
        self.adaptive.lock().stats.clone()
    }

    /// The next adaptive event (connected on a transport, a switch, a failed
    /// attempt); waits for one. Session events come from `next_event`.
    pub async fn next_adaptive_event(&self) -> AdaptiveEvent {
        poll_fn(|cx| {
            self.adaptive.app.register(cx.waker());
            match self.adaptive.lock().events.pop() {
                Some(e) => Poll::Ready(e),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// The next adaptive event if one is queued.
    pub fn try_adaptive_event(&self) -> Option<AdaptiveEvent> {
        self.adaptive.lock().events.pop()
    }

    /// Moves the session to `kind`: the new transport is connected first,
    /// then the session resumes there (same session, nothing lost, nothing
    /// twice); if it cannot connect, the session stays where it is and an
    /// [`AdaptiveEvent::AttemptFailed`] says why.
    pub fn switch_to(&self, kind: TransportKind) -> Result<(), Error> {
        if self.adaptive.dialer(kind).is_none() {
            return Err(Error::NotConfigured { kind });
        }
        self.adaptive.lock().forced = Some(kind);
        self.adaptive.link.wake();
        Ok(())
    }

    /// The runtime client (for layers generic over transports).
    pub fn inner(&self) -> &tidings_runtime::Client<Adaptive> {
        &self.client
    }
}

/// Keeps the transport that worked last, shared between clients (clone it):
/// give it to [`ClientBuilder::remember_in`]; store [`Remembered::get`]
/// wherever the application keeps settings.
#[derive(Clone, Debug, Default)]
pub struct Remembered(Arc<Mutex<Option<TransportKind>>>);

impl Remembered {
    /// Starts from `kind` (e.g. read back from storage).
    pub fn new(kind: Option<TransportKind>) -> Self {
        Self(Arc::new(Mutex::new(kind)))
    }

    /// What worked last.
    pub fn get(&self) -> Option<TransportKind> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set(&self, kind: TransportKind) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind);
    }
}
