//! The connection pump: moves frames between a session and a `Transport`, batching writes and reads, until the connection ends.

use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use web_time::Instant;

use tidings_protocol::CloseCode;

use crate::error::TransportError;
use crate::timer::Timer;
use crate::transport::Transport;

/// Most frames read per wake-up before writes get a turn.
const READ_BATCH: usize = 64;

/// A session seen by the pump (implemented by the drivers over their locked session).
pub trait PumpTarget {
    /// The next encoded frame to write, if any.
    fn poll_transmit(&self) -> Option<Bytes>;
    /// [`PumpTarget::poll_transmit`], and whether more frames may follow
    /// (`false` only when none does: the pump then stops asking, and a frame
    /// queued later from elsewhere wakes it). Targets behind a lock override
    /// it, so that writing one frame takes the lock once, not twice.
    fn poll_transmit_more(&self) -> Option<(Bytes, bool)> {
        self.poll_transmit().map(|frame| (frame, true))
    }
    /// Handles a batch of received frames (drains `inputs`).
    fn handle_inputs(&self, now: Instant, inputs: &mut Vec<Bytes>);
    /// Handles timers.
    fn handle_timeout(&self, now: Instant);
    /// Next timer deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Registers the task to wake when new frames are queued from elsewhere.
    fn register(&self, waker: &Waker);
    /// `Some((code, reason))` when the connection must end: the pump flushes
    /// what is queued, closes the transport and returns.
    fn close_request(&self) -> Option<(u16, String)>;
    /// The transport ended on its own (error or end of stream).
    fn transport_failed(&self, now: Instant, error: Option<TransportError>);
    /// True while the consumer is behind: the pump stops reading (backpressure
    /// to the peer) until the target wakes it again.
    fn read_paused(&self) -> bool {
        false
    }
    /// True when the target has events its owner must handle asynchronously:
    /// the pump returns [`PumpExit::Events`] and is called again afterwards.
    fn has_events(&self) -> bool {
        false
    }
    /// What the pump asks at the start of every poll, in one call: registers
    /// `waker` ([`PumpTarget::register`]) and reports the next deadline
    /// ([`PumpTarget::poll_timeout`]), pending events
    /// ([`PumpTarget::has_events`]) and whether frames wait to be written.
    /// Targets behind a lock override it to take the lock once, not three
    /// times; the default makes the three calls.
    fn prepare(&self, waker: &Waker) -> Prepared {
        self.register(waker);
        Prepared {
            deadline: self.poll_timeout(),
            has_events: self.has_events(),
            may_transmit: true,
        }
    }
}

/// What [`PumpTarget::prepare`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The next timer deadline ([`PumpTarget::poll_timeout`]).
    pub deadline: Option<Instant>,
    /// Events wait for the owner ([`PumpTarget::has_events`]): the pump returns.
    pub has_events: bool,
    /// False only when [`PumpTarget::poll_transmit`] would return `None`: the
    /// pump then skips asking. A frame queued afterwards from elsewhere wakes
    /// the registered waker, and the next poll asks again.
    pub may_transmit: bool,
}

/// How a pump run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum PumpExit {
    /// The session asked to close; the transport was closed with this code.
    Closed {
        /// Close code sent.
        code: u16,
    },
    /// The transport failed or ended.
    TransportEnded,
    /// The target has events to handle (see [`PumpTarget::has_events`]).
    Events,
}

enum Wake {
    Inputs,
    Ended(Option<TransportError>),
    Timer,
    Events,
    Poked,
}

/// Runs one connection: writes whatever the session queues (many frames, one
/// flush), feeds received frames in batches, fires timers, and returns when the
/// transport ends or the session asks to close.
pub async fn pump<T, P, M>(
    target: &P,
    transport: &mut T,
    timer: &mut M,
    now: impl Fn() -> Instant,
) -> PumpExit
where
    T: Transport + ?Sized,
    P: PumpTarget + ?Sized,
    M: Timer + ?Sized,
{
    let mut inputs: Vec<Bytes> = Vec::new();
    // True at first: an earlier run may have returned (for events) with a
    // flush still pending; on a transport with nothing buffered it costs nothing.
    let mut need_flush = true;
    // True once `poll_recv` returned `Pending` during the current poll of this
    // future: the transport holds our waker and wakes us when data arrives, so
    // asking again before we yield (after handling a batch, say) would only
    // redo the work of finding nothing (tungstenite zero-fills its read buffer
    // on every attempt, and it costs a system call). Cleared whenever we
    // yield: a wake that came meanwhile polls us again, and we read then.
    let mut recv_parked = false;
    loop {
        if let Some((code, reason)) = target.close_request() {
            close_within_grace(target, transport, timer, now(), code, &reason).await;
            return PumpExit::Closed { code };
        }
        let wake = poll_fn(|cx| {
            // Registered first, so that nothing queued from elsewhere after
            // this look goes unnoticed: it wakes us and we look again.
            let ready = target.prepare(cx.waker());
            if ready.has_events {
                return Poll::Ready(Wake::Events);
            }
            timer.reset(ready.deadline);
            // Writes: drain the session while the transport accepts, then flush once.
            // A write that fails does not end the turn at once: frames the peer
            // sent before it went away (an SSE client's last POST, say) are
            // read and handled first.
            let mut write_failed = None;
            let mut more = ready.may_transmit;
            while more {
                match transport.poll_send_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        write_failed = Some(e);
                        break;
                    }
                    Poll::Pending => break,
                }
                let Some((frame, more_after)) = target.poll_transmit_more() else {
                    break;
                };
                more = more_after;
                if let Err(e) = transport.start_send(frame) {
                    write_failed = Some(e);
                    break;
                }
                need_flush = true;
            }
            if need_flush && write_failed.is_none() {
                match transport.poll_flush(cx) {
                    Poll::Ready(Ok(())) => need_flush = false,
                    Poll::Ready(Err(e)) => write_failed = Some(e),
                    Poll::Pending => {}
                }
            }
            // Reads: take a batch, unless the consumer is behind. After a failed
            // write, read even when parked: something may have arrived since.
            let skip_read = recv_parked && write_failed.is_none();
            while !skip_read && inputs.len() < READ_BATCH && !target.read_paused() {
                match transport.poll_recv(cx) {
                    Poll::Ready(Some(Ok(frame))) => inputs.push(frame),
                    Poll::Ready(Some(Err(e))) if inputs.is_empty() => {
                        return Poll::Ready(Wake::Ended(Some(e)));
                    }
                    Poll::Ready(None) if inputs.is_empty() => {
                        return Poll::Ready(Wake::Ended(None));
                    }
                    Poll::Ready(_) => break, // handle the batch first; the end is seen next turn
                    Poll::Pending => {
                        recv_parked = true;
                        break;
                    }
                }
            }
            if !inputs.is_empty() {
                return Poll::Ready(Wake::Inputs);
            }
            if let Some(e) = write_failed {
                return Poll::Ready(Wake::Ended(Some(e)));
            }
            if timer.poll_elapsed(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            // Events are seen by `prepare` on the next poll: whoever queues
            // one wakes us.
            if target.close_request().is_some() {
                return Poll::Ready(Wake::Poked);
            }
            recv_parked = false;
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Inputs => target.handle_inputs(now(), &mut inputs),
            Wake::Ended(e) => {
                target.transport_failed(now(), e);
                // Answer the peer's close, or send the close code the transport
                // chose for its error (1007, 1009...), when the socket still takes it.
                close_within_grace(target, transport, timer, now(), CloseCode::NORMAL, "").await;
                return PumpExit::TransportEnded;
            }
            Wake::Timer => target.handle_timeout(now()),
            Wake::Events => return PumpExit::Events,
            Wake::Poked => {}
        }
    }
}

/// Time a closing connection gets to write what is queued and its close
/// frame. A peer that does not read cannot hold the connection longer.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Flushes what the target still queues and closes the transport, giving up
/// after [`CLOSE_GRACE`] (a slow consumer may never read it).
async fn close_within_grace<T, P, M>(
    target: &P,
    transport: &mut T,
    timer: &mut M,
    now: Instant,
    code: u16,
    reason: &str,
) where
    T: Transport + ?Sized,
    P: PumpTarget + ?Sized,
    M: Timer + ?Sized,
{
    timer.reset(Some(now + CLOSE_GRACE));
    let finished = {
        let closing = async {
            // A failed flush (peer gone or already closing) still gets its close attempt.
            let _ = flush_all(target, transport).await;
            let _ = poll_fn(|cx| transport.poll_close(cx, code, reason)).await;
        };
        let mut closing = std::pin::pin!(closing);
        poll_fn(|cx| {
            if closing.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            if timer.poll_elapsed(cx).is_ready() {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    };
    if !finished {
        // Out of time (the peer does not read): one last, non-blocking close
        // attempt, so the transport still learns the code (SSE records it and
        // ends its stream; a socket transport is dropped right after anyway).
        poll_fn(|cx| {
            let _ = transport.poll_close(cx, code, reason);
            Poll::Ready(())
        })
        .await;
    }
}

async fn flush_all<T, P>(target: &P, transport: &mut T) -> Result<(), TransportError>
where
    T: Transport + ?Sized,
    P: PumpTarget + ?Sized,
{
    poll_fn(|cx| {
        loop {
            match transport.poll_send_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let Some(frame) = target.poll_transmit() else {
                break;
            };
            transport.start_send(frame)?;
        }
        transport.poll_flush(cx)
    })
    .await
}
