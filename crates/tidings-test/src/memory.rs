//! An in-memory transport pair: two ends of a tidings `Transport`, for driving a hub or session without sockets.

use std::task::{Context, Poll};

use bytes::Bytes;
use tidings_runtime::{Transport, TransportError, TransportKind, TransportMetrics};
use tokio::sync::mpsc;

enum Item {
    Frame(Bytes),
    Close(u16, String),
}

/// One end of an in-memory transport pair (see [`pair`]).
///
/// Frames arrive whole and in order. There is no backpressure (the channel is
/// unbounded): tests of slow consumers use real sockets.
#[derive(Debug)]
pub struct MemoryTransport {
    tx: Option<mpsc::UnboundedSender<Item>>,
    rx: mpsc::UnboundedReceiver<Item>,
    ended: bool,
    metrics: TransportMetrics,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Frame(b) => write!(f, "Frame({} bytes)", b.len()),
            Item::Close(code, reason) => write!(f, "Close({code}, {reason:?})"),
        }
    }
}

/// Two connected in-memory transports: what one sends, the other receives.
pub fn pair() -> (MemoryTransport, MemoryTransport) {
    let (a_tx, a_rx) = mpsc::unbounded_channel();
    let (b_tx, b_rx) = mpsc::unbounded_channel();
    let end = |tx, rx| MemoryTransport {
        tx: Some(tx),
        rx,
        ended: false,
        metrics: TransportMetrics::default(),
    };
    (end(a_tx, b_rx), end(b_tx, a_rx))
}

fn closed() -> TransportError {
    TransportError::Closed {
        code: 1006,
        reason: "peer dropped".into(),
    }
}

impl Transport for MemoryTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Item::Frame(b))) => {
                self.metrics.frames_received += 1;
                self.metrics.bytes_received += b.len() as u64;
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Item::Close(code, reason))) => {
                self.ended = true;
                Poll::Ready(Some(Err(TransportError::Closed { code, reason })))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_send_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(if self.tx.is_some() {
            Ok(())
        } else {
            Err(closed())
        })
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64;
        tx.send(Item::Frame(frame)).map_err(|_| closed())
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Item::Close(code, reason.to_string()));
        }
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Memory
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}
