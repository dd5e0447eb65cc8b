//! The one object-safe `Transport` trait every transport crate implements, and async helpers on top.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;

use tidings_protocol::{ResumeToken, SessionId};

use crate::error::TransportError;

/// `Send` on native targets, nothing on wasm32 (browser objects are not `Send`).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` on native targets, nothing on wasm32 (browser objects are not `Send`).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// A boxed future: `Send` on native targets, not on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future: `Send` on native targets, not on wasm32.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + 'a>>;

/// Which kind of transport carries a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// WebSocket (RFC 6455).
    WebSocket,
    /// Server-Sent Events plus HTTP POST.
    Sse,
    /// WebTransport over HTTP/3.
    WebTransport,
    /// In-memory pair (tests).
    Memory,
}

/// Counters kept by a transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportMetrics {
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
}

/// A bidirectional, message-oriented connection carrying encoded frames.
///
/// Poll-based (like `Stream` + `Sink`) so it is object-safe and costs no
/// allocation per frame; [`TransportExt`] adds `async` helpers. Writes are
/// batched: call [`Transport::start_send`] for many frames, then flush once.
pub trait Transport: MaybeSend + Unpin {
    /// Receives the next frame; `Ready(None)` when the peer closed cleanly.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>>;

    /// Ready when [`Transport::start_send`] may be called.
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// Queues one frame for sending (after `poll_send_ready` returned ready).
    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError>;

    /// Writes out everything queued.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// Starts (and drives) an orderly close with `code` and `reason`.
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>>;

    /// The transport's kind.
    fn kind(&self) -> TransportKind;

    /// Counters so far.
    fn metrics(&self) -> TransportMetrics;

    /// True when the transport shows frame numbers to its peer (SSE event
    /// ids), so that the peer can later resume by frame number
    /// ([`Transport::resume_after_frame`]). The server session then records
    /// which channel position each frame carries. Default: `false`.
    fn numbers_frames(&self) -> bool {
        false
    }

    /// For a peer that resumes by frame number instead of per-channel
    /// positions: `Some(n)` when it received every frame of the session named
    /// by its `Hello`'s resume token up to number `n` (SSE: from its
    /// `Last-Event-ID`). Default: `None` (positions come in the `Hello`).
    fn resume_after_frame(&self) -> Option<u64> {
        None
    }

    /// The server attached this connection to a session: frames sent from now
    /// on are numbered `attachment.next_frame`, `+1`, … in the order
    /// [`Transport::start_send`] gets them. Default: ignored.
    fn attached(&mut self, attachment: &Attachment) {
        let _ = attachment;
    }
}

/// What a server tells a transport when it attaches the connection to a
/// session ([`Transport::attached`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attachment {
    /// The session's id.
    pub session: SessionId,
    /// The session's resume token (the secret that authenticates the peer).
    pub token: ResumeToken,
    /// The connection's epoch in the session (grows with every resume: a
    /// higher epoch supersedes a lower one).
    pub epoch: u64,
    /// Number of the next frame the session sends on this connection.
    pub next_frame: u64,
}

impl Attachment {
    /// Connection `epoch` of `session` (`token`), whose next frame is number `next_frame`.
    pub fn new(session: SessionId, token: ResumeToken, epoch: u64, next_frame: u64) -> Self {
        Self {
            session,
            token,
            epoch,
            next_frame,
        }
    }
}

/// `async` conveniences over any [`Transport`].
pub trait TransportExt: Transport {
    /// Receives the next frame.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Bytes, TransportError>>> + '_ {
        poll_fn(move |cx| self.poll_recv(cx))
    }

    /// Sends one frame and flushes.
    fn send(&mut self, frame: Bytes) -> impl Future<Output = Result<(), TransportError>> + '_ {
        let mut frame = Some(frame);
        poll_fn(move |cx| {
            if frame.is_some() {
                match self.poll_send_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
                if let Some(f) = frame.take() {
                    self.start_send(f)?;
                }
            }
            self.poll_flush(cx)
        })
    }

    /// Closes with `code` and `reason`.
    fn close<'a>(
        &'a mut self,
        code: u16,
        reason: &'a str,
    ) -> impl Future<Output = Result<(), TransportError>> + 'a {
        poll_fn(move |cx| self.poll_close(cx, code, reason))
    }
}

impl<T: Transport + ?Sized> TransportExt for T {}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        (**self).poll_recv(cx)
    }
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        (**self).poll_send_ready(cx)
    }
    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        (**self).start_send(frame)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        (**self).poll_flush(cx)
    }
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        (**self).poll_close(cx, code, reason)
    }
    fn kind(&self) -> TransportKind {
        (**self).kind()
    }
    fn metrics(&self) -> TransportMetrics {
        (**self).metrics()
    }
    fn numbers_frames(&self) -> bool {
        (**self).numbers_frames()
    }
    fn resume_after_frame(&self) -> Option<u64> {
        (**self).resume_after_frame()
    }
    fn attached(&mut self, attachment: &Attachment) {
        (**self).attached(attachment)
    }
}
