//! The resettable `Timer` the pump and the client driver sleep on, and its tokio implementation (feature `tokio`).

use std::task::{Context, Poll};
#[cfg(feature = "tokio")]
use std::time::Duration;

use web_time::Instant;

use crate::transport::MaybeSend;

/// A resettable timer of the driver's runtime.
///
/// A timer may fire before its deadline (implementations avoid re-arming on
/// every change); the pump then calls `handle_timeout`, which does nothing
/// when nothing is due, and arms the timer again.
pub trait Timer: MaybeSend {
    /// Arms the timer for `deadline` (or disarms it with `None`).
    fn reset(&mut self, deadline: Option<Instant>);
    /// Ready once the armed deadline has passed.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// A [`Timer`] on tokio (feature `tokio`).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct TokioTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The sleep's deadline, kept here: the pump compares deadlines on every
    /// poll, and the boxed sleep is a cold cache line after idle.
    deadline: tokio::time::Instant,
    armed: bool,
    /// The waker the armed sleep last saw. While the pump polls with the same
    /// one, the sleep holds it already: the clock says whether the deadline
    /// passed, without polling the sleep (tokio's budget check and the timer
    /// entry's waker registration, on every pump turn).
    polled_with: Option<std::task::Waker>,
}

#[cfg(feature = "tokio")]
impl Default for TokioTimer {
    fn default() -> Self {
        let sleep = Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600)));
        Self {
            deadline: sleep.deadline(),
            sleep,
            armed: false,
            polled_with: None,
        }
    }
}

#[cfg(feature = "tokio")]
impl TokioTimer {
    /// An armed deadline this close is moved when a later one is asked for
    /// (see `reset`); a farther one is kept and fires early.
    pub const MOVE_LATER_WITHIN: Duration = Duration::from_secs(1);
}

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn reset(&mut self, deadline: Option<Instant>) {
        match deadline {
            Some(d) => {
                // Move a far timer only earlier: deadlines that move later on
                // every message (dead-peer detection) would otherwise cost a
                // timer-wheel update per message. A timer left earlier fires
                // early once; the session finds nothing due and the pump arms
                // the later deadline. A near one is moved later too: it is
                // what was due soon and got done early (a batched ack went
                // out with a message), and firing for nothing costs a
                // wake-up and a pump turn, more than the wheel update.
                let d = tokio::time::Instant::from_std(d);
                let current = self.deadline;
                let reset = !self.armed
                    || d < current
                    || (d > current
                        && current <= tokio::time::Instant::now() + Self::MOVE_LATER_WITHIN);
                if reset {
                    self.sleep.as_mut().reset(d);
                    self.deadline = d;
                    self.polled_with = None;
                }
                self.armed = true;
            }
            None => self.armed = false,
        }
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.armed {
            return Poll::Pending;
        }
        let registered = self
            .polled_with
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        // `tokio::time::Instant`: the clock the sleep itself runs on (paused in tests).
        if registered && tokio::time::Instant::now() < self.deadline {
            return Poll::Pending;
        }
        let r = self.sleep.as_mut().poll(cx);
        if r.is_ready() {
            self.armed = false;
            self.polled_with = None;
        } else if !registered {
            self.polled_with = Some(cx.waker().clone());
        }
        r
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use std::future::poll_fn;
    use std::task::Waker;

    use super::*;

    /// Polls the timer once with `waker`.
    fn poll_with(timer: &mut TokioTimer, waker: &Waker) -> Poll<()> {
        timer.poll_elapsed(&mut Context::from_waker(waker))
    }

    /// Waits for the timer on the task's own waker; `Err` after 5 s (a lost wake-up).
    async fn fired(timer: &mut TokioTimer) -> Result<(), tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| timer.poll_elapsed(cx))).await
    }

    #[test]
    fn the_tokio_timer_fires_once_per_deadline_on_the_waker_that_waits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut timer = TokioTimer::default();
            assert!(
                poll_with(&mut timer, Waker::noop()).is_pending(),
                "disarmed"
            );

            // Polled first with another waker: the task's own must still be woken.
            let deadline = Instant::now() + Duration::from_millis(20);
            timer.reset(Some(deadline));
            assert!(poll_with(&mut timer, Waker::noop()).is_pending());
            fired(&mut timer).await.expect("fires");
            assert!(Instant::now() >= deadline);
            assert!(
                poll_with(&mut timer, Waker::noop()).is_pending(),
                "fired once"
            );

            // Moved earlier after a poll: the earlier deadline holds.
            timer.reset(Some(Instant::now() + Duration::from_secs(3600)));
            assert!(poll_with(&mut timer, Waker::noop()).is_pending());
            let deadline = Instant::now() + Duration::from_millis(20);
            timer.reset(Some(deadline));
            fired(&mut timer)
                .await
                .expect("fires at the earlier deadline");
            assert!(Instant::now() >= deadline);

            // A far deadline moved later: kept early (fires early once, by design).
            let far = Instant::now() + TokioTimer::MOVE_LATER_WITHIN + Duration::from_millis(100);
            timer.reset(Some(far));
            timer.reset(Some(Instant::now() + Duration::from_secs(3600)));
            fired(&mut timer)
                .await
                .expect("fires at the first deadline");
            assert!(Instant::now() >= far);

            // A near one moved later: moved (it would fire for nothing).
            timer.reset(Some(Instant::now() + Duration::from_millis(10)));
            assert!(poll_with(&mut timer, Waker::noop()).is_pending());
            let later = Instant::now() + Duration::from_millis(60);
            timer.reset(Some(later));
            fired(&mut timer)
                .await
                .expect("fires at the later deadline");
            assert!(Instant::now() >= later, "not at the first one");

            // Disarmed: never fires.
            timer.reset(Some(Instant::now() + Duration::from_millis(1)));
            timer.reset(None);
            assert!(
                tokio::time::timeout(
                    Duration::from_millis(50),
                    poll_fn(|cx| timer.poll_elapsed(cx))
                )
                .await
                .is_err()
            );
        });
    }
}
