//! `Link`: the state one SSE connection shares between its transport, its response body and its POSTs; and `EventBody`, the response body that streams it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Open,
    /// The server closed the stream: what is queued is still written (the
    /// queue is bounded), then a `: close <code> <reason>` comment, then the
    /// response ends.
    Closing,
    /// The client went away (the response body was dropped).
    PeerGone,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) phase: Phase,
    /// Event stream chunks waiting for the response body (one per flush).
    pub(super) out: VecDeque<Bytes>,
    pub(super) out_bytes: usize,
    /// Frames POSTed by the client, waiting for the session.
    pub(super) inbox: VecDeque<Bytes>,
    /// The body waits for chunks.
    pub(super) reader: Option<Waker>,
    /// The end of a closed stream is recorded in the registry: only then does
    /// the body end, so a client that saw its stream end and POSTs gets the
    /// final answer (410 for a closed session), never a stale one.
    pub(super) settled: bool,
    /// The transport waits for room in `out`.
    pub(super) writer: Option<Waker>,
    /// The transport waits for POSTed frames (or the end).
    pub(super) recv: Option<Waker>,
}

pub(super) fn wake(slot: &mut Option<Waker>) {
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
    pub(super) upstream: Semaphore,
    /// Who opened the stream (the auth hook's subject; `None`: anonymous):
    /// only the same subject may POST into it.
    pub(super) owner: Option<Arc<str>>,
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
    pub(crate) fn new(upstream_bytes: usize, owner: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(Self {
            owner,
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

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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

/// The response body: the link's chunks, a keep-alive comment when the
/// stream has been quiet for a while, the end when the transport closes.
pub struct EventBody {
    link: Arc<Link>,
    first: Option<Bytes>,
    keep_alive: Duration,
    timer: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for EventBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBody")
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
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
