//! `WtTransport`: the tidings `Transport` over a WebTransport session: length-prefixed frames on the bidirectional control stream, and each channel's frames on a unidirectional stream of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tidings_protocol::FrameCodec;
use tidings_runtime::{Transport, TransportError, TransportKind, TransportMetrics};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wtransport::endpoint::endpoint_side::Client as ClientSide;
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use crate::datagram::Datagrams;
use crate::error::FramingError;
use crate::framing::{FrameReader, write_frame};
use crate::incoming::IncomingLanes;
use crate::lane_reader::RecvState;
use crate::lanes::{CONTROL_PRIORITY, Lanes};
use crate::route::channel_of;

/// Bytes read from a stream at a time (one buffer per session, reused).
const READ_CHUNK: usize = 8 << 10;

/// How long a graceful close waits for the peer to acknowledge the last frames.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

type CloseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A WebTransport session carrying tidings frames on its control stream and
/// channel streams (docs/protocol.md §10).
///
/// On the server, `message`, `gap` and `subscribed` frames go on their
/// channel's unidirectional stream (opened on the channel's first frame, up
/// to [`crate::WtConfig::max_channel_streams`]), each with its own buffer:
/// a channel whose stream is blocked (its reader stopped, or a lost packet)
/// delays no other until the streams together hold
/// [`crate::WtConfig::max_stream_backlog_bytes`]. Everything else goes on the
/// control stream, sent first. On the client, the control stream is read
/// first (nothing of a channel stream before the `welcome`), then the channel
/// streams in turn; a channel stream must carry only its channel's frames.
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
    scratch: Box<[u8]>,
    wbuf: BytesMut,
    write_buffer: usize,
    /// Server: the codec of the session (to route frames) and the channel streams.
    lanes: Option<(Arc<dyn FrameCodec>, Lanes)>,
    /// Client: the channel streams the server opens.
    incoming: Option<IncomingLanes>,
    /// The welcome passed, a framing failure, the end.
    state: RecvState,
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
    /// Wraps a session and its control stream; every frame goes on the
    /// control stream until [`WtTransport::with_channel_streams`] (server) or
    /// [`WtTransport::accepting_channel_streams`] (client) says otherwise.
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
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            wbuf: BytesMut::new(),
            lanes: None,
            incoming: None,
            write_buffer: write_buffer.max(1024),
            state: RecvState::default(),
            closing: None,
            metrics: TransportMetrics::default(),
        }
    }

    /// Server side: carry each channel's frames on a stream of its own, up to
    /// `max_streams` streams holding `max_backlog` bytes together; `codec` is
    /// the session's (it tells which channel a frame is about).
    pub fn with_channel_streams(
        mut self,
        codec: Arc<dyn FrameCodec>,
        max_streams: usize,
        max_backlog: usize,
    ) -> Self {
        if max_streams > 0 {
            if let Some(send) = &self.send {
                send.set_priority(CONTROL_PRIORITY);
            }
            let lanes = Lanes::new(self.conn.clone(), max_streams, max_backlog);
            self.lanes = Some((codec, lanes));
        }
        self
    }

    /// Client side: accept up to `max_streams` channel streams from the server
    /// and read its frames from them; `codec` is the session's.
    pub fn accepting_channel_streams(
        mut self,
        codec: Arc<dyn FrameCodec>,
        max_streams: usize,
    ) -> Self {
        let max_frame = self.reader.max();
        self.incoming = Some(IncomingLanes::new(
            self.conn.clone(),
            codec,
            max_streams,
            max_frame,
        ));
        self
    }

    /// Server side: also count the channel streams opened in `counter`
    /// (the server's total, [`crate::ServerHandle::channel_streams_opened`]).
    #[cfg(feature = "server")]
    pub(crate) fn counting_channel_streams(
        mut self,
        counter: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Self {
        if let Some((codec, lanes)) = self.lanes.take() {
            self.lanes = Some((codec, lanes.counting(counter)));
        }
        self
    }

    /// A handle that closes this session from elsewhere (an operator's kick,
    /// a test killing a session) while the transport is being served.
    pub fn closer(&self) -> SessionCloser {
        SessionCloser {
            conn: self.conn.clone(),
        }
    }

    /// Channel streams this (server) side has opened so far.
    pub fn channel_streams_opened(&self) -> usize {
        self.lanes.as_ref().map_or(0, |(_, l)| l.opened())
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

    fn received(&mut self, frame: Bytes) -> Bytes {
        self.metrics.frames_received += 1;
        self.metrics.bytes_received += frame.len() as u64 + 4;
        frame
    }

    /// Writes the control stream's buffer.
    fn poll_flush_control(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
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

    fn framing_failed(&mut self, e: FramingError) -> TransportError {
        tracing::warn!(remote = %self.conn.remote_address(), "bad input from the peer");
        self.state.fail(e)
    }
}

/// Closes a WebTransport session from outside its [`WtTransport`]; cheap to clone.
#[derive(Clone)]
pub struct SessionCloser {
    conn: Connection,
}

impl std::fmt::Debug for SessionCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCloser")
            .field("remote", &self.conn.remote_address())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl SessionCloser {
    /// Closes the session at once with an application error `code` and
    /// `reason` (cut to 512 bytes): nothing queued is flushed, as when the
    /// network drops. A client then reconnects and resumes its session.
    pub fn close(&self, code: u32, reason: &str) {
        let mut reason = reason.as_bytes().to_vec();
        reason.truncate(512);
        self.conn.close(VarInt::from_u32(code), &reason);
    }

    /// Whether the session has ended (by either side).
    pub fn is_closed(&self) -> bool {
        self.conn.quic_connection().close_reason().is_some()
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
        if let Some(over) = self.state.over() {
            return Poll::Ready(over);
        }
        loop {
            if let Some(got) = self.state.control(&mut self.reader) {
                return Poll::Ready(Some(got.map(|frame| self.received(frame))));
            }
            let mut buf = ReadBuf::new(&mut self.scratch);
            match Pin::new(&mut self.recv).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    self.state.eof = true;
                    if let Err(e) = self.reader.finish() {
                        return Poll::Ready(Some(Err(self.framing_failed(e))));
                    }
                    return Poll::Ready(connection_error(&self.conn).map(Err));
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    self.reader.extend(&self.scratch[..n]);
                    continue;
                }
                Poll::Ready(Err(e)) => {
                    self.state.eof = true;
                    return Poll::Ready(Some(Err(self.read_error(e))));
                }
                Poll::Pending => {}
            }
            // The control stream has nothing now: the channel streams' turn
            // (none before the `welcome`, which comes first on the control stream).
            let (true, Some(incoming)) = (self.state.welcomed, self.incoming.as_mut()) else {
                return Poll::Pending;
            };
            let got = ready!(incoming.poll_next(cx, &mut self.scratch));
            return Poll::Ready(Some(self.state.channel(got).map(|f| self.received(f))));
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.wbuf.len() >= self.write_buffer {
            ready!(self.poll_flush_control(cx))?;
        }
        if let Some((_, lanes)) = self.lanes.as_mut()
            && !lanes.has_room()
        {
            // Past the budget: write what the streams take, wait if still full.
            if let Poll::Ready(Err(e)) = lanes.poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
            if !lanes.has_room() {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64 + 4;
        if let Some((codec, lanes)) = self.lanes.as_mut()
            && let Some(channel) = channel_of(codec.as_ref(), &frame)
            && lanes.push(&channel, &frame)
        {
            return Ok(());
        }
        write_frame(&mut self.wbuf, &frame);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        // The control stream first; a blocked channel stream holds up nothing else.
        let control = self.poll_flush_control(cx)?;
        let lanes = match self.lanes.as_mut() {
            Some((_, lanes)) => lanes.poll_flush(cx)?,
            None => Poll::Ready(()),
        };
        if control.is_ready() && lanes.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
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
            let (code, reason, linger) = match self.state.failed.take() {
                // Bad input: close at once with the framing error's code.
                Some((c, r)) => (c, r, false),
                None => (u32::from(code), reason.to_string(), true),
            };
            let pending = std::mem::take(&mut self.wbuf);
            let lanes = match self.lanes.as_mut() {
                Some((_, lanes)) if linger => lanes.take_for_close(),
                _ => Vec::new(),
            };
            let span = tracing::debug_span!("wt_close", code, %reason);
            let _e = span.enter();
            self.closing = Some(Box::pin(async move {
                if let (true, Some(mut send)) = (linger, send) {
                    let control = async {
                        let _ = send.write_all(&pending).await;
                        // Completes when the peer acknowledged everything sent.
                        let _ = send.finish().await;
                    };
                    let drain = async {
                        let mut all =
                            vec![Box::pin(control) as Pin<Box<dyn Future<Output = ()> + Send>>];
                        all.extend(lanes);
                        for stream in all {
                            stream.await;
                        }
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
