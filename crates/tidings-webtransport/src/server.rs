//! `WtServer`: a standalone WebTransport server that accepts sessions, negotiates the codec and hands each session's control stream to a handler as a `Transport`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tidings_protocol::FrameCodec;
use tidings_runtime::BoxFuture;
use tokio::sync::watch;
use tracing::Instrument;
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Connection, Endpoint, VarInt};

use crate::cert::Certificate;
use crate::config::ServerConfig;
use crate::datagram::Datagrams;
use crate::error::{WtError, close_code};
use crate::transport::WtTransport;

use crate::config::{CHANNEL_STREAMS_PARAM, PROTOCOL_PARAM};

/// One accepted session, ready to serve.
#[derive(Debug)]
pub struct Accepted {
    /// The session's control stream as a tidings transport.
    pub transport: WtTransport,
    /// The codec chosen from the `protocol` query parameter.
    pub codec: Arc<dyn FrameCodec>,
    /// The path of the CONNECT request (with its query).
    pub path: String,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The session's datagrams.
    pub datagrams: Datagrams,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Handles accepted sessions.
pub trait SessionHandler: Send + Sync + 'static {
    /// Serves one session until it ends.
    fn handle(&self, session: Accepted) -> BoxFuture<'static, ()>;
}

impl<F, Fut> SessionHandler for F
where
    F: Fn(Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn handle(&self, session: Accepted) -> BoxFuture<'static, ()> {
        Box::pin(self(session))
    }
}

/// A bound WebTransport server (not yet serving).
pub struct WtServer {
    endpoint: Arc<Endpoint<Server>>,
    config: ServerConfig,
    hash: [u8; 32],
    hashes_json: String,
}

impl WtServer {
    /// Binds `addr` (UDP) with `certificate`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tidings_webtransport::WtError> {
    /// use tidings_webtransport::{Certificate, ServerConfig, WtServer};
    /// let cert = Certificate::self_signed(["localhost", "127.0.0.1"])?;
    /// let server = WtServer::bind("127.0.0.1:4433".parse().unwrap(), ServerConfig::default(), cert)?;
    /// println!("pin {}", server.certificate_hash_hex());
    /// # Ok(()) }
    /// ```
    pub fn bind(
        addr: SocketAddr,
        config: ServerConfig,
        certificate: Certificate,
    ) -> Result<Self, WtError> {
        let quic = wtransport::ServerConfig::builder()
            .with_bind_address(addr)
            .with_custom_transport(certificate.identity(), config.wt.quic())
            .build();
        let endpoint = Arc::new(Endpoint::server(quic)?);
        Ok(Self {
            endpoint,
            config,
            hash: certificate.hash(),
            hashes_json: certificate.hashes_json(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// SHA-256 of the certificate presented (for `serverCertificateHashes`).
    pub fn certificate_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// [`WtServer::certificate_hash`] in hex.
    pub fn certificate_hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Serves sessions with `handler` on a background task.
    pub fn serve(self, handler: impl SessionHandler) -> ServerHandle {
        let addr = self.local_addr();
        let (tx, rx) = watch::channel(false);
        let endpoint = self.endpoint.clone();
        let handler = Arc::new(handler);
        let config = Arc::new(self.config);
        let live = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let live = live.clone();
            let streams = streams.clone();
            let mut stop = rx.clone();
            async move {
                loop {
                    let incoming = tokio::select! {
                        i = endpoint.accept() => i,
                        _ = stop.changed() => break,
                    };
                    let (handler, config, live, streams, shutdown) = (
                        handler.clone(),
                        config.clone(),
                        live.clone(),
                        streams.clone(),
                        rx.clone(),
                    );
                    let span = tracing::info_span!("wt_session", peer = %incoming.remote_address());
                    tokio::spawn(
                        accept(incoming, handler, config, live, streams, shutdown).instrument(span),
                    );
                }
            }
        });
        ServerHandle {
            addr,
            endpoint: self.endpoint,
            hash: self.hash,
            hashes_json: self.hashes_json,
            shutdown: tx,
            task,
            live,
            streams,
        }
    }
}

async fn accept(
    incoming: IncomingSession,
    handler: Arc<dyn SessionHandler>,
    config: Arc<ServerConfig>,
    live: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    shutdown: watch::Receiver<bool>,
) {
    let request = match tokio::time::timeout(config.handshake_timeout, incoming).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return tracing::debug!(error = %e, "QUIC/HTTP3 handshake failed"),
        Err(_) => return tracing::debug!("handshake timed out"),
    };
    let path = request.path().to_string();
    let offered = offered_protocols(&path);
    let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
    let codec = match tidings_codec::negotiate(&offered) {
        Ok((codec, _)) => codec,
        Err(e) => {
            tracing::info!(error = %e, "refused: unknown protocol");
            // Typed refusal: HTTP 404 (wtransport offers no 400) after logging the reason.
            return request.not_found().await;
        }
    };
    let channel_streams = match requested_channel_streams(&path) {
        Ok(n) => n.map_or(config.wt.max_channel_streams, |n| {
            n.min(config.wt.max_channel_streams)
        }),
        Err(bad) => {
            tracing::info!(
                value = bad,
                "refused: `{CHANNEL_STREAMS_PARAM}` is not a number"
            );
            return request.not_found().await;
        }
    };
    if live.load(Ordering::Relaxed) >= config.max_sessions {
        return request.too_many_requests().await;
    }
    let conn = match request.accept().await {
        Ok(c) => c,
        Err(e) => return tracing::debug!(error = %e, "session accept failed"),
    };
    let control = match tokio::time::timeout(config.handshake_timeout, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::debug!(error = %e, "no control stream"),
        Err(_) => {
            conn.close(VarInt::from_u32(1008), b"no control stream in time");
            return;
        }
    };
    live.fetch_add(1, Ordering::Relaxed);
    let refuser = tokio::spawn(refuse_extra_streams(
        conn.clone(),
        config.wt.max_bidi_streams as usize,
    ));
    let transport = WtTransport::new(
        conn.clone(),
        control,
        config.wt.max_frame_bytes,
        config.wt.write_buffer_bytes,
    )
    .with_channel_streams(
        codec.clone(),
        channel_streams as usize,
        config.wt.max_stream_backlog_bytes,
    )
    .counting_channel_streams(streams);
    let datagrams = transport.datagrams();
    let peer = conn.remote_address();
    handler
        .handle(Accepted {
            transport,
            codec,
            path,
            peer,
            datagrams,
            shutdown,
        })
        .await;
    refuser.abort();
    live.fetch_sub(1, Ordering::Relaxed);
}

/// The `channel_streams` value of a CONNECT path: `Ok(None)` when absent,
/// `Err(value)` when it is not a number.
pub fn requested_channel_streams(path: &str) -> Result<Option<u32>, String> {
    let Some((_, query)) = path.split_once('?') else {
        return Ok(None);
    };
    match query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == CHANNEL_STREAMS_PARAM)
    {
        None => Ok(None),
        Some((_, v)) => v.parse().map(Some).map_err(|_| v.to_owned()),
    }
}

/// The codecs a CONNECT path asks for: every `protocol=` query value, comma-separated lists too.
pub fn offered_protocols(path: &str) -> Vec<String> {
    let Some((_, query)) = path.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == PROTOCOL_PARAM)
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// A client opens no stream besides the control stream (channel streams
/// are the server's, docs/protocol.md §10): each further one is refused (stopped and reset with [`close_code::STREAM_REFUSED`]); a peer
/// that keeps opening them past `limit` loses the session
/// ([`WtError::TooManyStreams`], close [`close_code::UNEXPECTED_STREAM`]).
async fn refuse_extra_streams(conn: Connection, limit: usize) {
    let mut opened = 0usize;
    loop {
        tokio::select! {
            bi = conn.accept_bi() => match bi {
                Ok((mut send, recv)) => {
                    recv.stop(VarInt::from_u32(close_code::STREAM_REFUSED));
                    let _ = send.reset(VarInt::from_u32(close_code::STREAM_REFUSED));
                }
                Err(_) => return,
            },
            uni = conn.accept_uni() => match uni {
                Ok(recv) => recv.stop(VarInt::from_u32(close_code::STREAM_REFUSED)),
                Err(_) => return,
            },
        }
        opened += 1;
        if opened > limit {
            let e = WtError::TooManyStreams { limit };
            tracing::warn!(error = %e, "closing the session");
            conn.close(
                VarInt::from_u32(close_code::UNEXPECTED_STREAM),
                e.to_string().as_bytes(),
            );
            return;
        }
    }
}

impl std::fmt::Debug for WtServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WtServer")
            .field("addr", &self.local_addr())
            .field("hash", &self.certificate_hash_hex())
            .finish()
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("sessions", &self.sessions())
            .finish()
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    endpoint: Arc<Endpoint<Server>>,
    hash: [u8; 32],
    hashes_json: String,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    live: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
}

impl ServerHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 of the server's certificate.
    pub fn certificate_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The browser's `serverCertificateHashes` option as JSON (see
    /// [`Certificate::hashes_json`]); serve it with
    /// [`crate::serve_certificate_hashes`] or a route of your own.
    pub fn certificate_hashes_json(&self) -> &str {
        &self.hashes_json
    }

    /// Sessions being served now.
    pub fn sessions(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Channel streams (docs/protocol.md §10) opened so far, all sessions together.
    pub fn channel_streams_opened(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Stops accepting, tells handlers (their `shutdown` receivers), waits up
    /// to 5 s for sessions to end, then closes what is left with 1001.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.live.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.endpoint
            .close(VarInt::from_u32(1001), b"server shutdown");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.endpoint.wait_idle())
            .await;
    }
}
