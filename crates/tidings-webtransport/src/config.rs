//! Configuration of the WebTransport server and client: frame limit, keep-alive, idle timeout, streams per session.

use std::time::Duration;

/// Query parameter naming the codec (`?protocol=tidings.v1.bin`; absent: JSON).
pub const PROTOCOL_PARAM: &str = "protocol";

/// Query parameter with the most channel streams the client accepts
/// (`?channel_streams=8`; `0`: everything on the control stream; absent: the
/// server's [`crate::WtConfig::max_channel_streams`]).
pub const CHANNEL_STREAMS_PARAM: &str = "channel_streams";

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
    /// Most channel streams (docs/protocol.md §10) per session. Server: the
    /// most it opens (a client may ask for fewer with `?channel_streams=`);
    /// channels beyond them, or beyond the QUIC stream credit the client
    /// grants, stay on the control stream. Client: the most it accepts
    /// (one more ends the session with [`crate::WtError::TooManyStreams`])
    /// and the number it asks for. `0`: everything on the control stream.
    pub max_channel_streams: u32,
    /// Bytes the channel streams of a session may hold, together, beyond what
    /// QUIC has taken (a channel whose peer stops reading, or a lossy path).
    /// Up to this a stalled channel delays no other; past it the whole
    /// session waits (backpressure: the session's slow-consumer policy then
    /// applies). Memory per session is bounded by it.
    pub max_stream_backlog_bytes: usize,
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
            max_channel_streams: 8,
            max_stream_backlog_bytes: 1 << 20,
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

    /// Sets [`WtConfig::max_channel_streams`] and [`WtConfig::max_stream_backlog_bytes`].
    pub fn with_channel_streams(mut self, streams: u32, backlog_bytes: usize) -> Self {
        self.max_channel_streams = streams;
        self.max_stream_backlog_bytes = backlog_bytes;
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
