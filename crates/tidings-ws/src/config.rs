//! Configuration of the WebSocket server and client (limits, buffer sizes, timeouts).

use std::time::Duration;

/// WebSocket-level settings shared by server and native client.
///
/// Buffer sizes are deliberate: tungstenite's default 128 KiB read buffer costs
/// about 135 KiB per idle connection; 4 KiB buffers keep an idle connection
/// near 7 KiB at the same throughput (`cargo xtask load` measures both; figures in ROADMAP.md).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WsConfig {
    /// Largest WebSocket message accepted (bytes); larger ones close the
    /// connection with 1009. The default, 2 MiB, is twice the session's
    /// default frame limit: a publish between the two reaches the session,
    /// which refuses that one publish by name (an `error` frame) and goes on.
    pub max_message_bytes: usize,
    /// Read buffer of each connection.
    pub read_buffer_bytes: usize,
    /// Bytes buffered before a write is issued (a flush always writes).
    pub write_buffer_bytes: usize,
    /// Most bytes buffered for writing before `poll_send_ready` pushes back.
    pub max_write_buffer_bytes: usize,
    /// A connection receiving nothing (not even a ping) for this long is closed.
    pub idle_timeout: Option<Duration>,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 2 << 20,
            read_buffer_bytes: 4 << 10,
            write_buffer_bytes: 16 << 10,
            max_write_buffer_bytes: 1 << 20,
            idle_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl WsConfig {
    /// Sets [`WsConfig::max_message_bytes`].
    pub fn with_max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }

    /// Sets [`WsConfig::idle_timeout`].
    pub fn with_idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Sets the read and write buffer sizes.
    pub fn with_buffers(mut self, read: usize, write: usize) -> Self {
        self.read_buffer_bytes = read;
        self.write_buffer_bytes = write;
        self
    }

    /// The equivalent tokio-tungstenite configuration.
    #[cfg(all(
        not(target_arch = "wasm32"),
        any(feature = "server", feature = "client")
    ))]
    pub fn tungstenite(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_bytes)
            .write_buffer_size(self.write_buffer_bytes)
            .max_write_buffer_size(
                self.max_write_buffer_bytes
                    .max(self.write_buffer_bytes + self.max_message_bytes + 64),
            )
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// Settings of the standalone server ([`crate::WsServer`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// WebSocket settings.
    pub ws: WsConfig,
    /// Most concurrent connections; further ones are refused with HTTP 503.
    pub max_connections: usize,
    /// Time allowed for the HTTP upgrade handshake.
    pub handshake_timeout: Duration,
    /// Time connections get to close after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ws: WsConfig::default(),
            max_connections: 100_000,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl ServerConfig {
    /// Sets the WebSocket settings.
    pub fn with_ws(mut self, ws: WsConfig) -> Self {
        self.ws = ws;
        self
    }

    /// Sets [`ServerConfig::max_connections`].
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`ServerConfig::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }
}
