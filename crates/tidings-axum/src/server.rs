//! `Server`: serves a `Router` on a `TcpListener` with a handshake timeout, a cap on connections per client IP, optional TLS (rustls) and a graceful shutdown that drains.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span, warn};

use crate::rejection::Rejection;

/// Serves an axum [`Router`] the way tidings wants it on the internet:
///
/// * a **handshake timeout** ([`Self::handshake_timeout`], default 10 s):
///   the TLS handshake and the request head of every request (a WebSocket
///   upgrade included) must arrive within it, else the connection is closed,
///   so half-open requests (slowloris) cannot pile up;
/// * a **cap on connections per client IP** ([`Self::max_connections_per_ip`],
///   default 256), counted for the whole life of the connection, upgraded
///   WebSockets and SSE streams included: one more is answered
///   `429 Too Many Requests` (`x-tidings-error: too-many-connections`) and
///   closed at once;
/// * **TLS** with rustls (`Server::tls`, feature `tls`): `wss://` and
///   `https://` on the same port (HTTP/1.1, ALPN `http/1.1`);
/// * a **graceful shutdown** ([`Self::serve`]'s `shutdown` future): stop
///   accepting, let requests in flight finish, then return. Upgraded
///   WebSockets are the hub's: call `Hub::shutdown` and wait for `Hub::idle`.
///
/// This is a small accept loop over hyper (HTTP/1.1 only) rather than
/// `axum::serve`, which has neither a header timeout nor per-IP limits, and
/// rather than `axum-server`, which would add a dependency for what is
/// ~150 lines here.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let app = axum::Router::new();
/// tidings_axum::Server::new()
///     .handshake_timeout(Duration::from_secs(5))
///     .max_connections_per_ip(100)
///     .serve(listener, app, std::future::pending())
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    handshake_timeout: Duration,
    max_per_ip: usize,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Server");
        d.field("handshake_timeout", &self.handshake_timeout)
            .field("max_connections_per_ip", &self.max_per_ip);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish()
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// Handshake timeout 10 s, 256 connections per IP, no TLS.
    pub fn new() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_per_ip: 256,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Time allowed for the TLS handshake and for each request head.
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Most concurrent connections from one IP address (at least 1).
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.max_per_ip = n.max(1);
        self
    }

    /// Serve TLS (`https://`, `wss://`) with this certificate.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Accepts connections on `listener` and serves `app` on each until
    /// `shutdown` resolves; then stops accepting, asks every HTTP connection
    /// to finish its request in flight and returns once they have.
    ///
    /// An SSE stream is a request in flight until its hub ends it: call
    /// `Hub::shutdown` inside `shutdown` (as the chat example does), or this
    /// waits for the streams. Upgraded WebSockets are not waited for here:
    /// wait for `Hub::idle` after this returns.
    ///
    /// # Errors
    /// None today: accept errors (e.g. too many open files) are logged and
    /// retried after 50 ms. The `io::Result` leaves room for start-up errors.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let ips = PerIp::new(self.max_per_ip);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let guard = ips.admit(peer.ip());
            let conn = Conn {
                server: self.clone(),
                app: app.clone(),
                stop: stop_rx.clone(),
            };
            tokio::spawn(
                conn.run(tcp, guard)
                    .instrument(info_span!("connection", %peer)),
            );
        }
        drop(stop_rx);
        let _ = stop_tx.send(true);
        // Every connection task holds a receiver: closed() resolves when all ended.
        stop_tx.closed().await;
        Ok(())
    }
}

struct Conn {
    server: Server,
    app: Router,
    stop: watch::Receiver<bool>,
}

impl Conn {
    async fn run(self, tcp: TcpStream, guard: Option<IpGuard>) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.server.tls.clone() {
            let accepted =
                tokio::time::timeout(self.server.handshake_timeout, tls.acceptor().accept(tcp))
                    .await;
            match accepted {
                Ok(Ok(stream)) => self.http(stream, guard).await,
                Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                Err(_) => debug!("TLS handshake timed out"),
            }
            return;
        }
        self.http(tcp, guard).await;
    }

    async fn http<I>(mut self, mut io: I, guard: Option<IpGuard>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(guard) = guard else {
            refuse(&mut io, &Rejection::TooManyConnections).await;
            return;
        };
        let io = TokioIo::new(Counted { io, _guard: guard });
        let service = TowerToHyperService::new(self.app);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.server.handshake_timeout)
            .serve_connection(io, service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let stopping = async {
            while !*self.stop.borrow_and_update() {
                if self.stop.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(error = %e, "connection ended with an error");
                }
            }
            () = stopping => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// Writes `rejection` as a complete HTTP/1.1 response and closes.
async fn refuse<I: AsyncWrite + Unpin>(io: &mut I, rejection: &Rejection) {
    debug!(error = %rejection, "connection refused");
    rejection.count();
    let body = rejection.to_string();
    let head = format!(
        "HTTP/1.1 {}\r\nx-tidings-error: {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        rejection.status(),
        rejection.code(),
        body.len()
    );
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// Connections counted per IP address.
#[derive(Clone)]
struct PerIp {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> Self {
        Self {
            max,
            counts: Arc::default(),
        }
    }

    /// A guard counting one connection from `ip`, or `None` past the cap.
    fn admit(&self, ip: IpAddr) -> Option<IpGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            ip,
            ips: self.clone(),
        })
    }
}

/// One counted connection; uncounted when dropped.
struct IpGuard {
    ip: IpAddr,
    ips: PerIp,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut counts = self
            .ips
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// An I/O stream carrying its [`IpGuard`], so the count lasts as long as
/// the connection, through a WebSocket upgrade (hyper hands this very
/// stream to the upgraded connection).
struct Counted<I> {
    io: I,
    _guard: IpGuard,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
