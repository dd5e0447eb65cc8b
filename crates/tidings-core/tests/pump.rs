//! The pump with a scripted transport: frames the peer sent before the connection failed are still handled.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tidings_core::{
    Instant, PumpExit, PumpTarget, Timer, Transport, TransportError, TransportKind,
    TransportMetrics, pump,
};

/// Its writes fail (the peer is gone); it still holds frames the peer sent
/// before leaving (an SSE client's last POST).
struct GoneWithInbox {
    inbox: VecDeque<Bytes>,
}

impl Transport for GoneWithInbox {
    fn poll_recv(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        Poll::Ready(match self.inbox.pop_front() {
            Some(f) => Some(Ok(f)),
            None => Some(Err(TransportError::Closed {
                code: 1006,
                reason: "peer gone".into(),
            })),
        })
    }
    fn poll_send_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Err(TransportError::Closed {
            code: 1006,
            reason: "peer gone".into(),
        }))
    }
    fn start_send(&mut self, _: Bytes) -> Result<(), TransportError> {
        Err(TransportError::Closed {
            code: 1006,
            reason: "peer gone".into(),
        })
    }
    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(
        &mut self,
        _: &mut Context<'_>,
        _: u16,
        _: &str,
    ) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }
    fn kind(&self) -> TransportKind {
        TransportKind::WebSocket
    }
    fn metrics(&self) -> TransportMetrics {
        TransportMetrics::default()
    }
}

/// Records what the pump hands it; always has one frame to send.
#[derive(Default)]
struct Recorder {
    handled: Mutex<Vec<Bytes>>,
    failed: Mutex<bool>,
}

impl PumpTarget for Recorder {
    fn poll_transmit(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b"to the peer"))
    }
    fn handle_inputs(&self, _: Instant, inputs: &mut Vec<Bytes>) {
        self.handled.lock().unwrap().extend(inputs.drain(..));
    }
    fn handle_timeout(&self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn register(&self, _: &Waker) {}
    fn close_request(&self) -> Option<(u16, String)> {
        None
    }
    fn transport_failed(&self, _: Instant, _: Option<TransportError>) {
        *self.failed.lock().unwrap() = true;
    }
}

/// A timer that never fires.
struct Never;

impl Timer for Never {
    fn reset(&mut self, _: Option<Instant>) {}
    fn poll_elapsed(&mut self, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn frames_received_before_a_failed_write_are_handled_before_the_end() {
    let mut transport = GoneWithInbox {
        inbox: VecDeque::from([Bytes::from_static(b"publish"), Bytes::from_static(b"close")]),
    };
    let target = Recorder::default();
    let mut timer = Never;
    let mut run = pin!(pump(&target, &mut transport, &mut timer, Instant::now));
    let mut cx = Context::from_waker(Waker::noop());
    let exit = match run.as_mut().poll(&mut cx) {
        Poll::Ready(exit) => exit,
        Poll::Pending => panic!("the pump waits on a transport that has failed"),
    };
    assert!(matches!(exit, PumpExit::TransportEnded), "{exit:?}");
    assert_eq!(
        *target.handled.lock().unwrap(),
        [Bytes::from_static(b"publish"), Bytes::from_static(b"close")],
        "the peer's last frames were dropped"
    );
    assert!(*target.failed.lock().unwrap());
}
