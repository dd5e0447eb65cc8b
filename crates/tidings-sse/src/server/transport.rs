//! `SseTransport`: the server side of one SSE connection as a tidings `Transport` (events out through its `Link`, POSTed frames in).
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tidings_protocol::CloseCode;
use tidings_runtime::{Attachment, Transport, TransportError, TransportKind, TransportMetrics};

use super::link::{Link, Phase, wake};
use super::registry::Registry;
use crate::writer::{write_comment, write_event};

/// The server side of one SSE connection as a tidings [`Transport`]: frames
/// the session sends become events of the response stream (`id:` = resume
/// token and frame number), frames the client POSTs come out of `poll_recv`.
///
/// The first frame received is the `Hello` made from the request (a resume
/// token from `Last-Event-ID`, when it had one). Writes are batched: many
/// events, one chunk per flush. Memory is bounded: at most `write_limit`
/// bytes wait for the client (beyond that `poll_send_ready` is pending and
/// the session's own queue limit applies its slow-consumer policy), and at
/// most the link's upstream budget of POSTed frames.
pub struct SseTransport {
    link: Arc<Link>,
    registry: Arc<Registry>,
    conn: u64,
    hello: Option<Bytes>,
    resume_after: Option<u64>,
    /// Token and number of the next frame, once attached to a session.
    ids: Option<(String, u64)>,
    pending: BytesMut,
    write_limit: usize,
    closed: bool,
    metrics: TransportMetrics,
}

impl std::fmt::Debug for SseTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseTransport")
            .field("conn", &self.conn)
            .field("resume_after", &self.resume_after)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl SseTransport {
    pub(super) fn new(
        link: Arc<Link>,
        registry: Arc<Registry>,
        conn: u64,
        hello: Bytes,
        resume_after: Option<u64>,
        write_limit: usize,
    ) -> Self {
        Self {
            link,
            registry,
            conn,
            hello: Some(hello),
            resume_after,
            ids: None,
            pending: BytesMut::new(),
            write_limit,
            closed: false,
            metrics: TransportMetrics::default(),
        }
    }

    fn closed_error(phase: Phase) -> TransportError {
        match phase {
            Phase::PeerGone => TransportError::Closed {
                code: 1006,
                reason: "the client closed the event stream".into(),
            },
            _ => TransportError::Closed {
                code: CloseCode::NORMAL,
                reason: "event stream closed".into(),
            },
        }
    }

    fn token(&self) -> Option<&str> {
        self.ids.as_ref().map(|(t, _)| t.as_str())
    }
}

impl Transport for SseTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        if let Some(hello) = self.hello.take() {
            return Poll::Ready(Some(Ok(hello)));
        }
        let mut st = self.link.lock();
        if let Some(frame) = st.inbox.pop_front() {
            drop(st);
            self.link.upstream.add_permits(frame.len());
            self.metrics.frames_received += 1;
            self.metrics.bytes_received += frame.len() as u64;
            return Poll::Ready(Some(Ok(frame)));
        }
        match st.phase {
            Phase::Open => {
                st.recv = Some(cx.waker().clone());
                Poll::Pending
            }
            Phase::PeerGone => Poll::Ready(Some(Err(Self::closed_error(Phase::PeerGone)))),
            Phase::Closing => Poll::Ready(None),
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let mut st = self.link.lock();
        if st.phase != Phase::Open {
            return Poll::Ready(Err(Self::closed_error(st.phase)));
        }
        if st.out_bytes + self.pending.len() < self.write_limit {
            return Poll::Ready(Ok(()));
        }
        st.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        // Number first: the session numbered this frame when it handed it out.
        let id = self.ids.as_mut().map(|(token, next)| {
            let n = *next;
            *next += 1;
            (token.as_str(), n)
        });
        if std::str::from_utf8(&frame).is_err() {
            return Err(TransportError::Protocol(
                "SSE carries text: the codec produced a frame that is not UTF-8".into(),
            ));
        }
        write_event(&mut self.pending, id, &frame);
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64;
        Ok(())
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let mut st = self.link.lock();
        if st.phase != Phase::Open {
            self.pending.clear();
            return Poll::Ready(Err(Self::closed_error(st.phase)));
        }
        let chunk = self.pending.split().freeze();
        st.out_bytes += chunk.len();
        st.out.push_back(chunk);
        wake(&mut st.reader);
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        self.closed = true;
        let mut st = self.link.lock();
        if st.phase != Phase::Open {
            let peer_gone = st.phase == Phase::PeerGone;
            drop(st);
            if peer_gone && let Some(token) = self.token() {
                // The client left; its session waits for a resume.
                self.registry.ended(
                    token,
                    self.conn,
                    1006,
                    "the client closed the event stream",
                    true,
                );
            }
            self.link.settle();
            return Poll::Ready(Ok(()));
        }
        // The session keeps living after these (the client resumes); any other
        // code comes with the session's end (client `close`, protocol error...).
        let resumable = matches!(
            code,
            CloseCode::GOING_AWAY
                | CloseCode::HEARTBEAT_TIMEOUT
                | CloseCode::SLOW_CONSUMER
                | CloseCode::SUPERSEDED
        );
        // Like a WebSocket close frame after the data: a slow consumer that reads
        // at last gets what was queued, then the code (its EventSource then
        // reconnects and resumes). Events not handed to the stream yet are
        // dropped: the client never saw their ids, so a resume re-sends them.
        self.pending.clear();
        write_comment(&mut self.pending, &format!("close {code} {reason}"));
        let chunk = self.pending.split().freeze();
        st.out_bytes += chunk.len();
        st.out.push_back(chunk);
        st.phase = Phase::Closing;
        wake(&mut st.writer);
        drop(st);
        if let Some(token) = self.token() {
            self.registry
                .ended(token, self.conn, code, reason, resumable);
        }
        self.link.settle();
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Sse
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }

    fn numbers_frames(&self) -> bool {
        true
    }

    fn resume_after_frame(&self) -> Option<u64> {
        self.resume_after
    }

    fn attached(&mut self, attachment: &Attachment) {
        self.ids = Some((attachment.token.0.clone(), attachment.next_frame));
        self.registry.attach(
            &attachment.token,
            attachment.session.clone(),
            attachment.epoch,
            self.conn,
            self.link.clone(),
        );
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        let mut st = self.link.lock();
        if st.phase == Phase::Open {
            // Dropped without a close (refused before a session existed): end the response.
            st.phase = Phase::Closing;
        }
        // Frames still in the inbox stay: a resumed stream of the session
        // adopts them (see `Registry::attach`); the link goes with its last owner.
        drop(st);
        // Wake POSTs waiting for room: they see the end.
        self.link.upstream.close();
        if !self.closed
            && let Some(token) = self.token()
        {
            self.registry
                .ended(token, self.conn, 1006, "the event stream ended", true);
        }
        self.link.settle();
    }
}
