//! The server's channel streams: one unidirectional stream per channel (up to a limit), each with its own buffer, so a stalled channel never holds up another.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tidings_runtime::TransportError;
use tokio::io::AsyncWrite;
use wtransport::stream::OpeningUniStream;
use wtransport::{Connection, SendStream};

use crate::channel_stream::write_header;
use crate::framing::write_frame;
use crate::transport::connection_error;

/// QUIC priority of channel streams; the control stream is sent first
/// (welcome, acks, pongs never wait behind a channel's backlog).
pub(crate) const LANE_PRIORITY: i32 = 0;
/// QUIC priority of the control stream.
pub(crate) const CONTROL_PRIORITY: i32 = 1;

enum State {
    /// The stream is being set up (its WebTransport header written).
    Opening(OpeningUniStream),
    Open(SendStream),
}

/// One channel's stream and the bytes it has not written yet.
struct Lane {
    state: State,
    buf: BytesMut,
}

/// The channel streams of one server session.
pub(crate) struct Lanes {
    conn: Connection,
    lanes: Vec<Lane>,
    /// The channels that have a stream, and its index: at most `max_lanes`.
    /// A channel without one is carried on the control stream, for good:
    /// streams are only ever added, and once no more can be (the limit, or
    /// no QUIC stream credit: `max_lanes` is then lowered to what is open),
    /// every further channel stays on the control stream, so no channel
    /// ever moves from the control stream to a stream of its own (which
    /// could let its new frames overtake older ones).
    routes: HashMap<String, usize>,
    max_lanes: usize,
    /// Bytes buffered in lanes, all together.
    backlog: usize,
    max_backlog: usize,
    /// Counts the streams opened, across the server's sessions.
    counter: Option<Arc<AtomicUsize>>,
}

impl Lanes {
    pub(crate) fn new(conn: Connection, max_lanes: usize, max_backlog: usize) -> Self {
        Self {
            conn,
            lanes: Vec::new(),
            routes: HashMap::new(),
            max_lanes,
            backlog: 0,
            max_backlog: max_backlog.max(1),
            counter: None,
        }
    }

    /// Also counts every stream opened in `counter`.
    #[cfg(feature = "server")]
    pub(crate) fn counting(mut self, counter: Arc<AtomicUsize>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Streams opened so far.
    pub(crate) fn opened(&self) -> usize {
        self.lanes.len()
    }

    /// True while the lanes hold no more than their budget.
    pub(crate) fn has_room(&self) -> bool {
        self.backlog < self.max_backlog
    }

    /// Queues `frame` on `channel`'s stream; `false` when the channel is
    /// carried on the control stream instead (the caller queues it there).
    pub(crate) fn push(&mut self, channel: &str, frame: &Bytes) -> bool {
        let i = match self.routes.get(channel) {
            Some(i) => *i,
            None => match self.open(channel) {
                Some(i) => {
                    self.routes.insert(channel.to_owned(), i);
                    i
                }
                None => return false,
            },
        };
        let lane = &mut self.lanes[i];
        let before = lane.buf.len();
        write_frame(&mut lane.buf, frame);
        self.backlog += lane.buf.len() - before;
        true
    }

    /// Opens a stream for a new channel if the limit and the peer's stream
    /// credit allow it right now; else (`None`) the channel stays on the
    /// control stream, and so will every later one.
    fn open(&mut self, channel: &str) -> Option<usize> {
        if self.lanes.len() >= self.max_lanes {
            return None;
        }
        // Waits only for QUIC stream credit; cancel-safe, so a pending open
        // is dropped (nothing is consumed) and the channel uses the control
        // stream. Polled once, so no waker is needed.
        let opening = std::pin::pin!(self.conn.open_uni());
        match opening.poll(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(Ok(stream)) => {
                let mut buf = BytesMut::new();
                write_header(&mut buf, channel);
                self.backlog += buf.len();
                self.lanes.push(Lane {
                    state: State::Opening(stream),
                    buf,
                });
                if let Some(counter) = &self.counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Some(self.lanes.len() - 1)
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "cannot open a channel stream");
                self.max_lanes = self.lanes.len();
                None
            }
            Poll::Pending => {
                tracing::debug!(
                    channel,
                    "no stream credit: this and later channels stay on the control stream"
                );
                self.max_lanes = self.lanes.len();
                None
            }
        }
    }

    /// Writes what every lane can take now. `Ready(Ok)` when all is written,
    /// `Pending` while some lane waits for its peer (the others were written).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let mut pending = false;
        for lane in &mut self.lanes {
            if lane.buf.is_empty() {
                continue;
            }
            if let State::Opening(opening) = &mut lane.state {
                match Pin::new(opening).poll(cx) {
                    Poll::Ready(Ok(send)) => {
                        send.set_priority(LANE_PRIORITY);
                        lane.state = State::Open(send);
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(connection_error(&self.conn).unwrap_or_else(
                            || TransportError::Protocol(format!("channel stream: {e}")),
                        )));
                    }
                    Poll::Pending => {
                        pending = true;
                        continue;
                    }
                }
            }
            let State::Open(send) = &mut lane.state else {
                continue;
            };
            while !lane.buf.is_empty() {
                match Pin::new(&mut *send).poll_write(cx, &lane.buf) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(TransportError::Io(
                            std::io::ErrorKind::WriteZero.into(),
                        )));
                    }
                    Poll::Ready(Ok(n)) => {
                        lane.buf.advance(n);
                        self.backlog -= n;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(
                            connection_error(&self.conn).unwrap_or(TransportError::Io(e))
                        ));
                    }
                    Poll::Pending => {
                        pending = true;
                        break;
                    }
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    /// For a graceful close: each lane's stream (opened if need be) and what
    /// it still has to write.
    pub(crate) fn take_for_close(&mut self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        self.backlog = 0;
        std::mem::take(&mut self.lanes)
            .into_iter()
            .map(|lane| {
                let pending = lane.buf;
                let fut: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
                    let mut send = match lane.state {
                        State::Open(send) => send,
                        State::Opening(opening) => match opening.await {
                            Ok(send) => send,
                            Err(_) => return,
                        },
                    };
                    let _ = send.write_all(&pending).await;
                    let _ = send.finish().await;
                });
                fut
            })
            .collect()
    }
}
