//! One SSE connection on the server: the `Transport` the hub drives (event stream out, POSTed frames in) and the response body that streams it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tidings_core::{
    Attachment, CloseCode, Transport, TransportError, TransportKind, TransportMetrics,
};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use super::registry::Registry;
use crate::writer::{write_comment, write_event};

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// The server closed the stream: what is queued is still written (the
    /// queue is bounded), then a `: close <code> <reason>` comment, then the
    /// response ends.
    Closing,
    /// The client went away (the response body was dropped).
    PeerGone,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Event stream chunks waiting for the response body (one per flush).
    out: VecDeque<Bytes>,
    out_bytes: usize,
    /// Frames POSTed by the client, waiting for the session.
    inbox: VecDeque<Bytes>,
    /// The body waits for chunks.
    reader: Option<Waker>,
    /// The end of a closed stream is recorded in the registry: only then does
    /// the body end, so a client that saw its stream end and POSTs gets the
    /// final answer (410 for a closed session), never a stale one.
    settled: bool,
    /// The transport waits for room in `out`.
    writer: Option<Waker>,
    /// The transport waits for POSTed frames (or the end).
    recv: Option<Waker>,
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

/// State shared by a connection's transport, its response body and the POST handler.
#[derive(Debug)]
pub(crate) struct Link {
    state: Mutex<State>,
    /// Bytes of POSTed frames this connection may still queue: a POST takes
    /// permits for its frames, the transport gives them back as the session
    /// reads them.
    upstream: Semaphore,
}

/// Why a POST could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The event stream of this connection is not open any more.
    Ended,
    /// No room within the timeout.
    Full,
}

impl Link {
    pub(crate) fn new(upstream_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                phase: Phase::Open,
                out: VecDeque::new(),
                out_bytes: 0,
                inbox: VecDeque::new(),
                reader: None,
                settled: false,
                writer: None,
                recv: None,
            }),
            upstream: Semaphore::new(upstream_bytes),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while the event stream is open.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().phase == Phase::Open
    }

    /// The stream's end is recorded (see `State::settled`): the body may finish.
    pub(crate) fn settle(&self) {
        let mut st = self.lock();
        st.settled = true;
        wake(&mut st.reader);
    }

    /// True while frames POSTed to this connection wait to be read.
    pub(crate) fn has_inbox(&self) -> bool {
        !self.lock().inbox.is_empty()
    }

    /// Takes over the frames `older` (the session's previous stream) accepted
    /// with 202 but its connection never read: the client POSTed them before
    /// it opened this stream, so they come before anything POSTed here.
    pub(crate) fn adopt_inbox(&self, older: &Link) {
        if std::ptr::eq(self, older) {
            return;
        }
        let frames = std::mem::take(&mut older.lock().inbox);
        if frames.is_empty() {
            return;
        }
        let bytes: usize = frames.iter().map(Bytes::len).sum();
        older.upstream.add_permits(bytes);
        // This link's budget now holds them (given back as they are read).
        self.upstream.forget_permits(bytes);
        let mut st = self.lock();
        for frame in frames.into_iter().rev() {
            st.inbox.push_front(frame);
        }
        wake(&mut st.recv);
    }

    /// The queued frames, as text (tests).
    #[cfg(test)]
    pub(crate) fn take_inbox(&self) -> Vec<String> {
        let frames = std::mem::take(&mut self.lock().inbox);
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    /// Queues POSTed frames for the session, in order, waiting up to `timeout`
    /// for room (backpressure on the POSTing client).
    pub(crate) async fn push(
        &self,
        frames: Vec<Bytes>,
        timeout: Duration,
    ) -> Result<(), PushError> {
        let total: usize = frames.iter().map(Bytes::len).sum();
        let permits = u32::try_from(total).map_err(|_| PushError::Full)?;
        if !self.is_open() {
            return Err(PushError::Ended);
        }
        match tokio::time::timeout(timeout, self.upstream.acquire_many(permits)).await {
            Ok(Ok(p)) => p.forget(),
            Ok(Err(_)) => return Err(PushError::Ended),
            Err(_) => return Err(PushError::Full),
        }
        let mut st = self.lock();
        if st.phase != Phase::Open {
            drop(st);
            self.upstream.add_permits(total);
            return Err(PushError::Ended);
        }
        st.inbox.extend(frames);
        wake(&mut st.recv);
        Ok(())
    }
}

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
pub(crate) struct SseTransport {
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
    pub(crate) fn new(
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

/// The response body: the link's chunks, a keep-alive comment when the
/// stream has been quiet for a while, the end when the transport closes.
pub(crate) struct EventBody {
    link: Arc<Link>,
    first: Option<Bytes>,
    keep_alive: Duration,
    timer: Pin<Box<Sleep>>,
}

impl EventBody {
    /// A body that starts with `first` (the `retry:` field) and sends `: ka`
    /// after `keep_alive` of silence.
    pub(crate) fn new(link: Arc<Link>, first: Bytes, keep_alive: Duration) -> Self {
        Self {
            link,
            first: Some(first),
            keep_alive,
            timer: Box::pin(tokio::time::sleep(keep_alive)),
        }
    }

    fn rearm(&mut self) {
        let at = tokio::time::Instant::now() + self.keep_alive;
        self.timer.as_mut().reset(at);
    }
}

const KEEP_ALIVE: &[u8] = b": ka\n\n";

impl Stream for EventBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            self.rearm();
            return Poll::Ready(Some(Ok(first)));
        }
        {
            let mut st = self.link.lock();
            if let Some(chunk) = st.out.pop_front() {
                st.out_bytes -= chunk.len();
                wake(&mut st.writer);
                drop(st);
                self.rearm();
                return Poll::Ready(Some(Ok(chunk)));
            }
            match st.phase {
                Phase::Closing if st.settled => return Poll::Ready(None),
                Phase::PeerGone => return Poll::Ready(None),
                // Open, or closing until the registry knows (`settle`).
                Phase::Open | Phase::Closing => st.reader = Some(cx.waker().clone()),
            }
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.rearm();
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
        }
        Poll::Pending
    }
}

impl Drop for EventBody {
    fn drop(&mut self) {
        let mut st = self.link.lock();
        st.out.clear();
        st.out_bytes = 0;
        if st.phase == Phase::Open {
            st.phase = Phase::PeerGone;
        }
        wake(&mut st.recv);
        wake(&mut st.writer);
    }
}
