//! The `Client` over WebTransport: the builder (URL, codec, certificate pins, limits, connect timeout), the same natively and in the browser.

use std::time::Duration;

use tidings_codec::{SUBPROTOCOL_BIN, SUBPROTOCOL_JSON};
use tidings_protocol::{ClientConfig, CodecKind};
use tidings_runtime::ClientTransport;

use crate::Error;
use crate::config::{CHANNEL_STREAMS_PARAM, PROTOCOL_PARAM, WtConfig};

/// Builder of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    pub(crate) url: String,
    pub(crate) session: ClientConfig,
    pub(crate) wt: WtConfig,
    pub(crate) protocol: &'static str,
    pub(crate) hashes: Vec<[u8; 32]>,
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) hashes_url: Option<String>,
    pub(crate) connect_timeout: Duration,
}

impl ClientBuilder {
    /// Session settings (heartbeat, backoff, limits).
    pub fn session_config(mut self, config: ClientConfig) -> Self {
        self.session = config;
        self
    }

    /// Transport settings (frame limit, keep-alive, idle timeout).
    pub fn wt_config(mut self, wt: WtConfig) -> Self {
        self.wt = wt;
        self
    }

    /// Use the zero-copy binary codec (`tidings.v1.bin`) instead of JSON.
    pub fn binary(mut self) -> Self {
        self.protocol = SUBPROTOCOL_BIN;
        self
    }

    /// Trust a self-signed server certificate by its SHA-256 (in the
    /// browser: `serverCertificateHashes`, which Chromium accepts for ECDSA
    /// certificates valid at most 14 days).
    /// May be called more than once. Without any, the platform's (or the
    /// browser's) root certificates are used.
    pub fn server_certificate_hash(mut self, hash: [u8; 32]) -> Self {
        self.hashes.push(hash);
        self
    }

    /// Browser only: before each connection attempt, fetch the hashes to pin
    /// from `url` (the JSON of `Certificate::hashes_json`:
    /// `[{"algorithm":"sha-256","value":[…32 bytes…]}]`, as
    /// `serve_certificate_hashes` or a route of the server serves it), beside
    /// any given with [`Self::server_certificate_hash`] (an empty list pins
    /// nothing: the browser's roots decide). A development server
    /// makes a new certificate at every start; this way a reconnecting page
    /// pins the new one. A failed fetch fails that attempt (retried with backoff).
    #[cfg(target_arch = "wasm32")]
    pub fn server_certificate_hashes_url(mut self, url: impl Into<String>) -> Self {
        self.hashes_url = Some(url.into());
        self
    }

    /// Time allowed for the QUIC + HTTP/3 + WebTransport handshake of one attempt.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Starts the client: a background task connects, and reconnects with
    /// backoff whenever the session drops, resuming it. Natively this must
    /// run inside a tokio runtime; in the browser it uses the page's event
    /// loop (and needs a secure context: https, or http on localhost).
    pub fn connect(self) -> Result<Client, Error> {
        let session = self.check_url()?;
        Client::start(session, crate::platform::connector(self, None))
    }

    /// Like [`Self::connect`], and also returns the client's
    /// [`ClientDatagrams`](crate::ClientDatagrams): lossy, unordered data
    /// beside the session, on whichever session is current.
    ///
    /// ```no_run
    /// # async fn demo(hash: [u8; 32]) -> Result<(), Box<dyn std::error::Error>> {
    /// use tidings_runtime::ClientTransport;
    /// let (client, datagrams) = tidings_webtransport::WebTransport::builder("https://127.0.0.1:4433/".into())
    ///     .server_certificate_hash(hash)
    ///     .connect_with_datagrams()?;
    /// # let _ = client;
    /// datagrams.send(br#"{"cursor":[10,20]}"#)?; // fails fast with NotConnected before the session is up
    /// let echoed = datagrams.recv().await?;
    /// # let _ = echoed; Ok(()) }
    /// ```
    pub fn connect_with_datagrams(self) -> Result<(Client, crate::ClientDatagrams), Error> {
        let session = self.check_url()?;
        let (slot, datagrams) = crate::platform::datagrams();
        let client = Client::start(session, crate::platform::connector(self, Some(slot)))?;
        Ok((client, datagrams))
    }

    /// The session settings, once the URL is known to be https://.
    fn check_url(&self) -> Result<ClientConfig, Error> {
        if !self.url.to_ascii_lowercase().starts_with("https://") {
            return Err(Error::InvalidUrl {
                url: self.url.clone(),
                reason: "WebTransport URLs are https://".into(),
            });
        }
        Ok(self.session.clone())
    }

    /// The session URL: the given one with the codec and the channel
    /// streams this client accepts in its query (docs/protocol.md §10).
    pub(crate) fn session_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}{PROTOCOL_PARAM}={}&{CHANNEL_STREAMS_PARAM}={}",
            self.url, self.protocol, self.wt.max_channel_streams
        )
    }

    /// The codec this client asked for.
    pub(crate) fn codec_kind(&self) -> CodecKind {
        if self.protocol == SUBPROTOCOL_BIN {
            CodecKind::Binary
        } else {
            CodecKind::Json
        }
    }
}

/// The WebTransport transport of a [`Client`] (`Client<WebTransport>`).
#[derive(Debug)]
pub enum WebTransport {}

impl ClientTransport for WebTransport {
    type Builder = ClientBuilder;

    fn builder(url: String) -> ClientBuilder {
        ClientBuilder {
            url,
            session: ClientConfig::default(),
            wt: WtConfig::default(),
            protocol: SUBPROTOCOL_JSON,
            hashes: Vec::new(),
            hashes_url: None,
            connect_timeout: Duration::from_secs(10),
        }
    }

    fn connect(url: String, config: ClientConfig) -> Result<Client, crate::Error> {
        Self::builder(url).session_config(config).connect()
    }
}

/// A tidings client over WebTransport: the runtime's one [`tidings_runtime::Client`].
///
/// ```no_run
/// # async fn demo(hash: [u8; 32]) -> Result<(), tidings_webtransport::Error> {
/// use tidings_runtime::ClientTransport;
/// let client = tidings_webtransport::WebTransport::builder("https://127.0.0.1:4433/".into())
///     .server_certificate_hash(hash)
///     .connect()?;
/// client.subscribe("room:lobby")?;
/// client.publish("room:lobby", r#"{"text":"hello"}"#)?;
/// # Ok(()) }
/// ```
pub type Client = tidings_runtime::Client<WebTransport>;
