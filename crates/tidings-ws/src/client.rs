//! The `Client` handle: subscribe, publish, read events; the session reconnects and resumes by itself.

use std::time::Duration;

use tidings_codec::SUBPROTOCOL_JSON;
use tidings_protocol::ClientConfig;
use tidings_runtime::ClientTransport;

use crate::Error;
use crate::config::WsConfig;

/// Builder of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    pub(crate) url: String,
    pub(crate) session: ClientConfig,
    pub(crate) ws: WsConfig,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) connect_timeout: Duration,
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    pub(crate) root_certificates: Vec<Vec<u8>>,
}

impl ClientBuilder {
    /// Session settings (heartbeat, backoff, limits).
    pub fn session_config(mut self, config: ClientConfig) -> Self {
        self.session = config;
        self
    }

    /// WebSocket settings.
    pub fn ws_config(mut self, ws: WsConfig) -> Self {
        self.ws = ws;
        self
    }

    /// Subprotocols to offer, in order of preference (default `tidings.v1.json`).
    ///
    /// Prefer the zero-copy binary codec and fall back to JSON on servers
    /// without it (binary WebSocket messages when the server agrees):
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), tidings_ws::Error> {
    /// let client = tidings_ws::Client::builder("ws://127.0.0.1:3000/ws")
    ///     .subprotocols(["tidings.v1.bin", "tidings.v1.json"])
    ///     .connect()?;
    /// # Ok(()) }
    /// ```
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Time allowed for the TCP + WebSocket handshake of one attempt.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Also trusts the CA certificate(s) in `pem` for `wss://` URLs (a
    /// private or test CA), beside the webpki roots; may be called more than
    /// once. Needs the `rustls` feature; a bad PEM fails [`Self::connect`]
    /// with [`Error::Tls`].
    ///
    /// ```no_run
    /// # fn demo(ca_pem: &str) -> Result<(), tidings_ws::Error> {
    /// # let _rt = tokio::runtime::Runtime::new().unwrap();
    /// # let _g = _rt.enter();
    /// let client = tidings_ws::Client::builder("wss://localhost:3443/ws")
    ///     .root_certificate_pem(ca_pem)
    ///     .connect()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Starts the client: a background task connects, and reconnects with
    /// backoff whenever the connection drops, resuming the session.
    ///
    /// Natively this must run inside a tokio runtime; in the browser it uses
    /// the page's event loop.
    pub fn connect(self) -> Result<Client, Error> {
        self.check_url()?;
        let session = self.session.clone();
        Client::start(session, crate::platform::connector(self)?)
    }

    /// The connector of this client's connections (each call of
    /// `Connector::connect` opens one WebSocket), without starting a client:
    /// for layers that run the session themselves (`tidings-adaptive` races
    /// and switches transports).
    pub fn into_connector(
        self,
    ) -> Result<impl tidings_runtime::Connector + tidings_runtime::MaybeSend, Error> {
        self.check_url()?;
        crate::platform::connector(self)
    }

    fn check_url(&self) -> Result<(), Error> {
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("ws://") || lower.starts_with("wss://")) {
            return Err(Error::InvalidUrl {
                url: self.url.clone(),
                reason: "scheme must be ws:// or wss://".into(),
            });
        }
        Ok(())
    }
}

/// The WebSocket transport of a [`Client`] (`Client<WebSocket>`).
#[derive(Debug)]
pub enum WebSocket {}

impl ClientTransport for WebSocket {
    type Builder = ClientBuilder;

    fn builder(url: String) -> ClientBuilder {
        ClientBuilder {
            url,
            session: ClientConfig::default(),
            ws: WsConfig::default(),
            subprotocols: vec![SUBPROTOCOL_JSON.to_string()],
            connect_timeout: Duration::from_secs(10),
            root_certificates: Vec::new(),
        }
    }

    fn connect(url: String, config: ClientConfig) -> Result<Client, crate::Error> {
        Self::builder(url).session_config(config).connect()
    }
}

/// A tidings client over WebSocket: the runtime's one [`tidings_runtime::Client`].
///
/// ```no_run
/// # async fn demo() -> Result<(), tidings_ws::Error> {
/// use tidings_protocol::ClientEvent;
/// let client = tidings_ws::Client::builder("ws://127.0.0.1:3000/ws").connect()?;
/// client.subscribe("room:lobby")?;
/// client.publish("room:lobby", r#"{"text":"hello"}"#)?;
/// while let Some(event) = client.next_event().await {
///     if let ClientEvent::Message(m) = event {
///         println!("{}: {:?}", m.channel, m.payload);
///     }
/// }
/// # Ok(()) }
/// ```
pub type Client = tidings_runtime::Client<WebSocket>;
