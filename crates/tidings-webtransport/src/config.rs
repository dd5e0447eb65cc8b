//! Configuration of the WebTransport server and client: frame limit, keep-alive, idle timeout, streams per session.

use std::time::Duration;

/// WebTransport settings shared by the server and the native client.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WtConfig {
    /// Largest frame accepted on the control stream (bytes, without the
    /// 4-byte length prefix). A longer prefix ends the session with
    /// [`crate::close_code::FRAME_TOO_LARGE`]. The default, 2 MiB, is twice the
    /// session's default frame limit (as on WebSocket): a publish between the
    /// two reaches the session, which refuses it by name and goes on.
    pub max_frame_bytes: usize,
    /// A connection that hears nothing (not even a QUIC keep-alive) for this
    /// long is closed by QUIC (the smaller of both peers' values counts).
    pub idle_timeout: Duration,
    /// Interval of QUIC keep-alive packets (`None`: off). Must be below
    /// `idle_timeout` to keep a quiet session open.
    pub keep_alive: Option<Duration>,
    /// Most bidirectional streams a peer may have open at once in a session
    /// (the control stream counts). QUIC enforces it: a peer cannot open more.
    pub max_bidi_streams: u32,
    /// Most unidirectional streams a peer may have open at once.
    pub max_uni_streams: u32,
    /// Write buffer: frames are coalesced up to this many bytes before
    /// `poll_send_ready` asks for a flush.
    pub write_buffer_bytes: usize,
}

impl Default for WtConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 2 << 20,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(5)),
            max_bidi_streams: 16,
            max_uni_streams: 16,
            write_buffer_bytes: 64 << 10,
        }
    }
}

impl WtConfig {
    /// Sets [`WtConfig::max_frame_bytes`].
    pub fn with_max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Sets [`WtConfig::idle_timeout`] and [`WtConfig::keep_alive`].
    pub fn with_idle_timeout(mut self, idle: Duration, keep_alive: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self.keep_alive = keep_alive;
        self
    }

    /// Sets the stream limits per session.
    pub fn with_max_streams(mut self, bidi: u32, uni: u32) -> Self {
        self.max_bidi_streams = bidi;
        self.max_uni_streams = uni;
        self
    }

    /// The QUIC transport settings for these limits.
    #[cfg(all(
        not(target_arch = "wasm32"),
        any(feature = "server", feature = "client")
    ))]
    pub(crate) fn quic(&self) -> wtransport::quinn::TransportConfig {
        use wtransport::quinn::{IdleTimeout, TransportConfig, VarInt};
        let mut t = TransportConfig::default();
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .unwrap_or_else(|_| IdleTimeout::from(VarInt::from_u32(30_000)));
        t.max_idle_timeout(Some(idle))
            .keep_alive_interval(self.keep_alive)
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_bidi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_uni_streams));
        t
    }
}

/// Settings of the standalone [`crate::WtServer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Transport settings.
    pub wt: WtConfig,
    /// Time a new session has to open its control stream and send its first frame.
    pub handshake_timeout: Duration,
    /// Most sessions served at once; further ones are answered `429`.
    pub max_sessions: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            wt: WtConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            max_sessions: 10_000,
        }
    }
}

impl ServerConfig {
    /// Sets the transport settings.
    pub fn with_wt(mut self, wt: WtConfig) -> Self {
        self.wt = wt;
        self
    }

    /// Sets [`ServerConfig::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }
}
