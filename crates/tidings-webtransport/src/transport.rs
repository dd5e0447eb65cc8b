//! `WtTransport`: the tidings `Transport` over a WebTransport session's bidirectional control stream (length-prefixed frames).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tidings_runtime::{Transport, TransportError, TransportKind, TransportMetrics};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wtransport::endpoint::endpoint_side::Client as ClientSide;
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use crate::datagram::Datagrams;
use crate::error::FramingError;
use crate::framing::{FrameReader, write_frame};

/// How long a graceful close waits for the peer to acknowledge the last frames.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

type CloseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A WebTransport session carrying tidings frames on its control stream.
///
/// Every frame is a 4-byte big-endian length and the codec's bytes; frames
/// longer than the limit end the session with
/// [`close_code::FRAME_TOO_LARGE`](crate::close_code::FRAME_TOO_LARGE) before
/// they are buffered, garbage with [`close_code::GARBAGE`](crate::close_code::GARBAGE).
/// Closing flushes what is queued, finishes the stream, waits (up to 2 s)
/// for the peer's acknowledgement and closes the session with the
/// application error code and reason. QUIC's idle timeout ends a silent
/// session with [`TransportError::Timeout`].
pub struct WtTransport {
    conn: Connection,
    /// Keeps a client's endpoint (its UDP socket) alive with the session.
    _endpoint: Option<Endpoint<ClientSide>>,
    send: Option<SendStream>,
    recv: RecvStream,
    reader: FrameReader,
    wbuf: BytesMut,
    write_buffer: usize,
    /// Framing failed: the close code and reason to end the session with.
    failed: Option<(u32, String)>,
    eof: bool,
    closing: Option<CloseFuture>,
    metrics: TransportMetrics,
}

impl std::fmt::Debug for WtTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WtTransport")
            .field("remote", &self.conn.remote_address())
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl WtTransport {
    /// Wraps a session and its control stream.
    pub fn new(
        conn: Connection,
        (send, recv): (SendStream, RecvStream),
        max_frame_bytes: usize,
        write_buffer: usize,
    ) -> Self {
        Self {
            conn,
            _endpoint: None,
            send: Some(send),
            recv,
            reader: FrameReader::new(max_frame_bytes),
            wbuf: BytesMut::new(),
            write_buffer: write_buffer.max(1024),
            failed: None,
            eof: false,
            closing: None,
            metrics: TransportMetrics::default(),
        }
    }

    pub(crate) fn with_endpoint(mut self, endpoint: Endpoint<ClientSide>) -> Self {
        self._endpoint = Some(endpoint);
        self
    }

    /// The session's datagrams (lossy, unordered, size-checked).
    pub fn datagrams(&self) -> Datagrams {
        Datagrams::new(self.conn.clone())
    }

    /// The underlying WebTransport session.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Why reading failed: the peer's close code and reason when it closed
    /// the session, a timeout, else the I/O error.
    fn read_error(&self, e: std::io::Error) -> TransportError {
        connection_error(&self.conn).unwrap_or(TransportError::Io(e))
    }

    fn framing_failed(&mut self, e: FramingError) -> TransportError {
        tracing::warn!(error = %e, remote = %self.conn.remote_address(), "bad input on the control stream");
        self.failed = Some((e.close_code(), e.to_string()));
        match e {
            FramingError::TooLarge { size, max } => TransportError::MessageTooLarge { size, max },
            other => TransportError::Protocol(other.to_string()),
        }
    }
}

/// The transport error for a closed session, if it is closed.
pub(crate) fn connection_error(conn: &Connection) -> Option<TransportError> {
    use wtransport::quinn::ConnectionError as Q;
    Some(match conn.quic_connection().close_reason()? {
        Q::ApplicationClosed(c) => TransportError::Closed {
            code: u16::try_from(c.error_code.into_inner()).unwrap_or(u16::MAX),
            reason: String::from_utf8_lossy(&c.reason).into_owned(),
        },
        Q::TimedOut => {
            TransportError::Timeout("idle timeout: the WebTransport session went silent")
        }
        Q::LocallyClosed => TransportError::Closed {
            code: 1006,
            reason: "closed locally".into(),
        },
        other => TransportError::Protocol(format!("QUIC: {other}")),
    })
}

impl Transport for WtTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        if self.failed.is_some() || self.eof {
            return Poll::Ready(None);
        }
        let mut chunk = [0u8; 16 << 10];
        loop {
            match self.reader.next_frame() {
                Ok(Some(frame)) => {
                    self.metrics.frames_received += 1;
                    self.metrics.bytes_received += frame.len() as u64 + 4;
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(self.framing_failed(e)))),
            }
            let mut buf = ReadBuf::new(&mut chunk);
            match ready!(Pin::new(&mut self.recv).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => {
                    self.eof = true;
                    if let Err(e) = self.reader.finish() {
                        return Poll::Ready(Some(Err(self.framing_failed(e))));
                    }
                    return Poll::Ready(connection_error(&self.conn).map(Err));
                }
                Ok(()) => {
                    let n = buf.filled().len();
                    self.reader.extend(&chunk[..n]);
                }
                Err(e) => {
                    self.eof = true;
                    return Poll::Ready(Some(Err(self.read_error(e))));
                }
            }
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.wbuf.len() >= self.write_buffer {
            ready!(self.poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64 + 4;
        write_frame(&mut self.wbuf, &frame);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let Some(send) = self.send.as_mut() else {
            return Poll::Ready(Err(TransportError::Closed {
                code: 1006,
                reason: "closing".into(),
            }));
        };
        while !self.wbuf.is_empty() {
            match ready!(Pin::new(&mut *send).poll_write(cx, &self.wbuf)) {
                Ok(0) => {
                    return Poll::Ready(Err(TransportError::Io(
                        std::io::ErrorKind::WriteZero.into(),
                    )));
                }
                Ok(n) => self.wbuf.advance(n),
                Err(e) => {
                    return Poll::Ready(Err(
                        connection_error(&self.conn).unwrap_or(TransportError::Io(e))
                    ));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        if self.closing.is_none() {
            let conn = self.conn.clone();
            let send = self.send.take();
            let (code, reason, linger) = match self.failed.take() {
                // Bad input: close at once with the framing error's code.
                Some((c, r)) => (c, r, false),
                None => (u32::from(code), reason.to_string(), true),
            };
            let pending = std::mem::take(&mut self.wbuf);
            let span = tracing::debug_span!("wt_close", code, %reason);
            let _e = span.enter();
            self.closing = Some(Box::pin(async move {
                if let (true, Some(mut send)) = (linger, send) {
                    let drain = async {
                        let _ = send.write_all(&pending).await;
                        // Completes when the peer acknowledged everything sent.
                        let _ = send.finish().await;
                    };
                    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
                }
                let mut reason = reason.into_bytes();
                reason.truncate(512);
                conn.close(VarInt::from_u32(code), &reason);
            }));
        }
        if let Some(fut) = self.closing.as_mut() {
            ready!(fut.as_mut().poll(cx));
        }
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::WebTransport
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}
