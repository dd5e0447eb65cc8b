//! The `Client` handle: subscribe, publish, read events; the session reconnects and resumes by itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_codec::SUBPROTOCOL_JSON;
use tidings_core::{ClientConfig, ClientEvent, ClientState, SharedClient};

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

    /// Starts the client: a background task connects, and reconnects with
    /// backoff whenever the connection drops, resuming the session.
    ///
    /// Natively this must run inside a tokio runtime; in the browser it uses
    /// the page's event loop.
    pub fn connect(self) -> Result<Client, Error> {
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("ws://") || lower.starts_with("wss://")) {
            return Err(Error::InvalidUrl {
                url: self.url,
                reason: "scheme must be ws:// or wss://".into(),
            });
        }
        let shared = Arc::new(SharedClient::with_config(self.session.clone()));
        crate::platform::spawn_driver(shared.clone(), self)?;
        Ok(Client { shared })
    }
}

/// A tidings client over WebSocket.
///
/// ```no_run
/// # async fn demo() -> Result<(), tidings_ws::Error> {
/// use tidings_core::ClientEvent;
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
#[derive(Debug)]
pub struct Client {
    shared: Arc<SharedClient>,
}

impl Client {
    /// A builder for a client of `url` (`ws://host:port/path`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            session: ClientConfig::default(),
            ws: WsConfig::default(),
            subprotocols: vec![SUBPROTOCOL_JSON.to_string()],
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Subscribes to `channel`; kept across reconnects.
    pub fn subscribe(&self, channel: &str) -> Result<(), Error> {
        Ok(self.shared.subscribe(channel)?)
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), Error> {
        Ok(self.shared.unsubscribe(channel)?)
    }

    /// Publishes `payload` on `channel`. Delivered exactly once while the
    /// session resumes; queued while disconnected. Fails fast with
    /// [`Error::is_queue_full`] when too much is unacknowledged.
    pub fn publish(&self, channel: &str, payload: impl Into<Bytes>) -> Result<u64, Error> {
        Ok(self.shared.publish(channel, payload.into())?)
    }

    /// The next event; `None` once the client is closed and every event was read.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        self.shared.next_event().await
    }

    /// The session's state.
    pub fn state(&self) -> ClientState {
        self.shared.state()
    }

    /// Publishes not yet acknowledged by the server.
    pub fn unacked(&self) -> usize {
        self.shared.unacked()
    }

    /// Ends the session (sends `Close` when connected). Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}
