//! The pump with scripted transports and targets: frames the peer sent before the connection failed are still handled; frames are asked for only while the target says some wait; a flush left pending when the pump returned is finished by its next run.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tidings_protocol::Instant;
use tidings_runtime::{
    PumpExit, PumpTarget, Timer, Transport, TransportError, TransportKind, TransportMetrics, pump,
};

/// A scripted transport: hands out `inbox`, then, when `gone`, fails (the
/// peer left: writes fail too, an SSE client's last POST still in the inbox),
/// else waits forever; records what is written.
#[derive(Default)]
struct Scripted {
    inbox: VecDeque<Bytes>,
    gone: bool,
    sent: Vec<Bytes>,
    /// Flushes asked for, and how many of the first ones return `Pending`
    /// (a peer slow to read).
    flushes: usize,
    pending_flushes: usize,
    /// Frames sent but not flushed yet.
    unflushed: usize,
}

fn peer_gone() -> TransportError {
    TransportError::Closed {
        code: 1006,
        reason: "peer gone".into(),
    }
}

impl Transport for Scripted {
    fn poll_recv(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        match self.inbox.pop_front() {
            Some(f) => Poll::Ready(Some(Ok(f))),
            None if self.gone => Poll::Ready(Some(Err(peer_gone()))),
            None => Poll::Pending,
        }
    }
    fn poll_send_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(if self.gone { Err(peer_gone()) } else { Ok(()) })
    }
    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if self.gone {
            return Err(peer_gone());
        }
        self.sent.push(frame);
        self.unflushed += 1;
        Ok(())
    }
    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.flushes += 1;
        if self.flushes <= self.pending_flushes {
            return Poll::Pending;
        }
        self.unflushed = 0;
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
    let mut transport = Scripted {
        inbox: VecDeque::from([Bytes::from_static(b"publish"), Bytes::from_static(b"close")]),
        gone: true,
        ..Scripted::default()
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

/// A session behind a lock, as the hub's: says in `prepare` and
/// `poll_transmit_more` when nothing waits, and counts the lookups.
#[derive(Default)]
struct Queue {
    frames: Mutex<VecDeque<Bytes>>,
    events: Mutex<bool>,
    registered: Mutex<bool>,
    lookups: Mutex<usize>,
}

impl PumpTarget for Queue {
    fn poll_transmit(&self) -> Option<Bytes> {
        panic!("the pump asks poll_transmit_more")
    }
    fn poll_transmit_more(&self) -> Option<(Bytes, bool)> {
        *self.lookups.lock().unwrap() += 1;
        let mut q = self.frames.lock().unwrap();
        let frame = q.pop_front()?;
        Some((frame, !q.is_empty()))
    }
    fn handle_inputs(&self, _: Instant, _: &mut Vec<Bytes>) {}
    fn handle_timeout(&self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn register(&self, _: &Waker) {
        panic!("the pump registers through prepare")
    }
    fn close_request(&self) -> Option<(u16, String)> {
        None
    }
    fn transport_failed(&self, _: Instant, _: Option<TransportError>) {}
    fn prepare(&self, _: &Waker) -> tidings_runtime::Prepared {
        *self.registered.lock().unwrap() = true;
        tidings_runtime::Prepared {
            deadline: None,
            has_events: *self.events.lock().unwrap(),
            may_transmit: !self.frames.lock().unwrap().is_empty(),
        }
    }
}

#[test]
fn the_pump_asks_for_frames_only_while_the_target_says_more_wait() {
    let target = Queue::default();
    target
        .frames
        .lock()
        .unwrap()
        .extend([Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    let mut transport = Scripted::default();
    let mut timer = Never;
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut run = pin!(pump(&target, &mut transport, &mut timer, Instant::now));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert!(*target.registered.lock().unwrap());
        assert_eq!(
            *target.lookups.lock().unwrap(),
            2,
            "no lookup after the last frame"
        );

        // Nothing waits: a poll (a stray wake) looks up nothing.
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert_eq!(*target.lookups.lock().unwrap(), 2);

        // A frame queued from elsewhere (its owner wakes the pump): written.
        target
            .frames
            .lock()
            .unwrap()
            .push_back(Bytes::from_static(b"c"));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert_eq!(*target.lookups.lock().unwrap(), 3);

        // Events: the pump returns to its owner.
        *target.events.lock().unwrap() = true;
        assert!(matches!(
            run.as_mut().poll(&mut cx),
            Poll::Ready(PumpExit::Events)
        ));
    }
    assert_eq!(transport.sent, ["a", "b", "c"]);
    assert_eq!(transport.flushes, 2, "one flush per batch");
}

#[test]
fn a_flush_left_pending_when_the_pump_returned_for_events_is_finished_by_the_next_run() {
    let target = Queue::default();
    target
        .frames
        .lock()
        .unwrap()
        .push_back(Bytes::from_static(b"a"));
    // The first flush (after `a`) is pending: the peer reads slowly.
    let mut transport = Scripted {
        pending_flushes: 1,
        ..Scripted::default()
    };
    let mut timer = Never;
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut run = pin!(pump(&target, &mut transport, &mut timer, Instant::now));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        *target.events.lock().unwrap() = true;
        assert!(matches!(
            run.as_mut().poll(&mut cx),
            Poll::Ready(PumpExit::Events)
        ));
    }
    assert_eq!(transport.unflushed, 1, "`a` waits in the transport");
    *target.events.lock().unwrap() = false;
    {
        let mut run = pin!(pump(&target, &mut transport, &mut timer, Instant::now));
        assert!(run.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(transport.unflushed, 0, "the next run flushed it");
}
