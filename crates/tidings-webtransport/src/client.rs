//! The `Client` over WebTransport: builder (URL, codec, certificate pins, limits) and the native connector on wtransport.

use std::time::Duration;

use tidings_codec::{SUBPROTOCOL_BIN, SUBPROTOCOL_JSON, codec_for};
use tidings_protocol::{ClientConfig, CodecKind};
use tidings_runtime::{
    BoxFuture, ClientTransport, Connected, Connector, TokioTimer, TransportError,
};
use wtransport::Endpoint;
use wtransport::tls::Sha256Digest;

use crate::Error;
use crate::config::WtConfig;
use crate::server::{CHANNEL_STREAMS_PARAM, PROTOCOL_PARAM};
use crate::transport::WtTransport;

/// Builder of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    url: String,
    session: ClientConfig,
    wt: WtConfig,
    protocol: &'static str,
    hashes: Vec<[u8; 32]>,
    connect_timeout: Duration,
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

    /// Trust a self-signed server certificate by its SHA-256 (what browsers
    /// do with `serverCertificateHashes`). Without any, the platform's root
    /// certificates are used.
    pub fn server_certificate_hash(mut self, hash: [u8; 32]) -> Self {
        self.hashes.push(hash);
        self
    }

    /// Time allowed for the QUIC + HTTP/3 + WebTransport handshake of one attempt.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Starts the client (inside a tokio runtime): a background task
    /// connects, and reconnects with backoff whenever the session drops,
    /// resuming it.
    pub fn connect(self) -> Result<Client, Error> {
        if !self.url.to_ascii_lowercase().starts_with("https://") {
            return Err(Error::InvalidUrl {
                url: self.url,
                reason: "WebTransport URLs are https://".into(),
            });
        }
        let session = self.session.clone();
        Client::start(session, Native { builder: self })
    }
}

impl ClientBuilder {
    /// The connector of this client's connections (each call of
    /// `Connector::connect` opens one WebTransport session), without
    /// starting a client: for layers that run the session themselves
    /// (`tidings-adaptive` races and switches transports).
    pub fn into_connector(self) -> Result<impl Connector + Send, Error> {
        if !self.url.to_ascii_lowercase().starts_with("https://") {
            return Err(Error::InvalidUrl {
                url: self.url,
                reason: "WebTransport URLs are https://".into(),
            });
        }
        Ok(Native { builder: self })
    }
}

struct Native {
    builder: ClientBuilder,
}

impl Connector for Native {
    type Timer = TokioTimer;

    fn timer(&self) -> TokioTimer {
        TokioTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let b = self.builder.clone();
        Box::pin(async move {
            tokio::time::timeout(b.connect_timeout, connect(&b))
                .await
                .map_err(|_| TransportError::Timeout("WebTransport connect"))?
        })
    }
}

fn handshake(reason: String) -> TransportError {
    TransportError::Handshake {
        status: None,
        reason,
    }
}

/// Opens one session and its control stream.
async fn connect(b: &ClientBuilder) -> Result<Connected, TransportError> {
    let span = tracing::debug_span!("wt_connect", url = %b.url);
    let _e = span.enter();
    let config = wtransport::ClientConfig::builder().with_bind_default();
    let config = if b.hashes.is_empty() {
        config.with_native_certs()
    } else {
        config.with_server_certificate_hashes(b.hashes.iter().map(|h| Sha256Digest::new(*h)))
    };
    let mut config = config.build();
    config
        .quic_config_mut()
        .transport_config(std::sync::Arc::new(b.wt.quic()));
    let endpoint = Endpoint::client(config)?;
    let sep = if b.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}{PROTOCOL_PARAM}={}&{CHANNEL_STREAMS_PARAM}={}",
        b.url, b.protocol, b.wt.max_channel_streams
    );
    let conn = endpoint
        .connect(&url)
        .await
        .map_err(|e| handshake(format!("WebTransport session to {url}: {e}")))?;
    let control = conn
        .open_bi()
        .await
        .map_err(|e| handshake(format!("control stream: {e}")))?
        .await
        .map_err(|e| handshake(format!("control stream: {e}")))?;
    let kind = if b.protocol == SUBPROTOCOL_BIN {
        CodecKind::Binary
    } else {
        CodecKind::Json
    };
    let codec = codec_for(kind)
        .ok_or_else(|| handshake(format!("this build cannot speak {}", b.protocol)))?;
    let transport = WtTransport::new(conn, control, b.wt.max_frame_bytes, b.wt.write_buffer_bytes)
        .accepting_channel_streams(codec.clone(), b.wt.max_channel_streams as usize)
        .with_endpoint(endpoint);
    Ok((Box::new(transport), codec))
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
