//! The standalone native WebSocket server: accept loop, limits, subprotocol negotiation, graceful shutdown, raw echo mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use tidings_codec::negotiate;
use tidings_protocol::{CloseCode, FrameCodec};
use tidings_runtime::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::ServerConfig;
use crate::transport::WsTransport;

/// Signals a connection handler that the server is shutting down.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal that never fires (for connections not owned by a server).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Self(rx)
    }

    /// A linked sender and signal.
    pub fn channel() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// True once shutdown started.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown starts (or the server is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

/// An upgraded WebSocket connection handed to a [`ConnectionHandler`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The WebSocket stream (use [`Accepted::into_transport`] for tidings framing).
    pub ws: WebSocketStream<TcpStream>,
    /// The codec chosen by subprotocol negotiation.
    pub codec: Arc<dyn FrameCodec>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Fires when the server shuts down.
    pub shutdown: Shutdown,
    idle_timeout: Option<std::time::Duration>,
}

impl Accepted {
    /// Wraps the stream as a tidings transport (text messages for text codecs).
    pub fn into_transport(self) -> (WsTransport<TcpStream>, Arc<dyn FrameCodec>, Shutdown) {
        let text = self.codec.is_text();
        (
            WsTransport::new(self.ws, text, self.idle_timeout),
            self.codec,
            self.shutdown,
        )
    }
}

/// Handles accepted connections.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves one connection until it ends.
    fn handle(&self, conn: Accepted) -> BoxFuture<'static, ()>;
}

impl<F, Fut> ConnectionHandler for F
where
    F: Fn(Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn handle(&self, conn: Accepted) -> BoxFuture<'static, ()> {
        Box::pin(self(conn))
    }
}

/// A bound, not yet serving WebSocket server.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use tidings_ws::{ServerConfig, WsServer};
/// let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).await?;
/// let handle = server.serve(tidings_ws::raw_echo);
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WsServer {
    listener: TcpListener,
    config: ServerConfig,
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    active: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl WsServer {
    /// Binds a TCP listener.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, config })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts accepting connections, each served by `handler` on its own task.
    pub fn serve(self, handler: impl ConnectionHandler) -> ServerHandle {
        let addr = self
            .listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (stop, shutdown) = Shutdown::channel();
        let active = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(
            self,
            Arc::new(handler),
            shutdown,
            active.clone(),
        ));
        ServerHandle {
            addr,
            stop,
            active,
            task,
        }
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections being served now.
    pub fn connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Stops accepting, tells every handler to close (code 1001), and waits for
    /// them up to the configured grace period.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    server: WsServer,
    handler: Arc<dyn ConnectionHandler>,
    mut shutdown: Shutdown,
    active: Arc<AtomicUsize>,
) {
    let WsServer { listener, config } = server;
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and similar: back off briefly, keep serving.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tasks.spawn(refuse(
                stream,
                StatusCode::SERVICE_UNAVAILABLE,
                "connection limit reached",
            ));
            continue;
        };
        let (handler, config, shutdown, active) = (
            handler.clone(),
            config.clone(),
            shutdown.clone(),
            active.clone(),
        );
        let span = info_span!("ws_conn", %peer);
        tasks.spawn(
            async move {
                let _permit = permit;
                active.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(config.handshake_timeout, upgrade(stream, &config)).await
                {
                    Ok(Ok((ws, codec))) => {
                        let conn = Accepted {
                            ws,
                            codec,
                            peer,
                            shutdown,
                            idle_timeout: config.ws.idle_timeout,
                        };
                        handler.handle(conn).await;
                    }
                    Ok(Err(e)) => debug!(error = %e, "handshake refused"),
                    Err(_) => debug!("handshake timed out"),
                }
                active.fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
    drop(listener);
    let grace = config.shutdown_grace;
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!(
            remaining = tasks.len(),
            "shutdown grace elapsed; aborting connections"
        );
        tasks.abort_all();
    }
}

async fn refuse(mut stream: TcpStream, status: StatusCode, reason: &str) {
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        reason.len(),
        reason
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The subprotocols a WebSocket upgrade request offers, in the client's order
/// (every `Sec-WebSocket-Protocol` header, comma-separated, trimmed).
pub fn offered_subprotocols(
    headers: &tokio_tungstenite::tungstenite::http::HeaderMap,
) -> Vec<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Picks the codec from the request's `Sec-WebSocket-Protocol` offers.
pub(crate) fn negotiate_request(
    req: &Request,
) -> Result<(Arc<dyn FrameCodec>, Option<&'static str>), String> {
    let offers = offered_subprotocols(req.headers());
    match negotiate(&offers) {
        Ok((codec, name)) => Ok((codec, (!offers.is_empty()).then_some(name))),
        Err(e) => Err(e.to_string()),
    }
}

// The callback's error type is fixed by tungstenite's handshake API.
#[allow(clippy::result_large_err)]
async fn upgrade(
    stream: TcpStream,
    config: &ServerConfig,
) -> Result<(WebSocketStream<TcpStream>, Arc<dyn FrameCodec>), tokio_tungstenite::tungstenite::Error>
{
    let mut chosen = None;
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        match negotiate_request(req) {
            Ok((codec, name)) => {
                if let Some(name) = name {
                    resp.headers_mut().insert(
                        header::SEC_WEBSOCKET_PROTOCOL,
                        HeaderValue::from_static(name),
                    );
                }
                chosen = Some(codec);
                Ok(resp)
            }
            Err(reason) => {
                let mut err = ErrorResponse::new(Some(reason.clone()));
                *err.status_mut() = StatusCode::BAD_REQUEST;
                if let Ok(v) = HeaderValue::from_str(&reason) {
                    err.headers_mut().insert("x-tidings-error", v);
                }
                Err(err)
            }
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(config.ws.tungstenite()),
    )
    .await?;
    let codec = chosen.unwrap_or_else(|| Arc::new(tidings_codec::JsonCodec::new()));
    Ok((ws, codec))
}

/// Raw echo mode: every text or binary message is sent back unchanged (RFC 6455
/// conformance tests and the baseline of benchmarks use it).
pub async fn raw_echo(conn: Accepted) {
    let Accepted {
        mut ws,
        mut shutdown,
        ..
    } = conn;
    let stop = shutdown.wait();
    let mut stop = std::pin::pin!(stop);
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = &mut stop => {
                let frame = CloseFrame { code: CloseCode::GOING_AWAY.into(), reason: "server shutting down".into() };
                let _ = ws.close(Some(frame)).await;
                return;
            }
        };
        match msg {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                debug!(error = %e, "raw echo connection ended");
                // Tell the peer why, when the socket is still writable (bad UTF-8, too big, ...).
                if let Some((code, reason)) = crate::close_for_error(&e) {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        }))
                        .await;
                }
                linger(ws.into_inner()).await;
                return;
            }
            None => return,
        }
    }
}

/// Half-closes a socket after an error close and discards what the peer still
/// sends for a moment, so the kernel does not answer with a reset that could
/// destroy our close frame before the peer read it.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tcp.shutdown().await;
    // On the heap: an array here would sit in every connection's `raw_echo` future.
    let mut buf = vec![0u8; 4096];
    let mut budget = 1usize << 20;
    let drain = async {
        while budget > 0 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}
