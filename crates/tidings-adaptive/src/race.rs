//! Happy-eyeballs racing: start the first transport, the next one after a short delay (at once when one fails), keep the first that connects, drop the rest.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use tidings_runtime::{BoxFuture, Connected, Timer, TransportError, TransportKind};
use tracing::debug;
use web_time::Instant;

use crate::core::{PlatformTimer, Shared};
use crate::events::{AdaptiveEvent, kind_name};

/// The winner of a race.
pub(crate) struct Won {
    pub(crate) kind: TransportKind,
    pub(crate) connected: Connected,
    /// Time from its own start to connected.
    pub(crate) handshake: Duration,
    pub(crate) failed: Vec<(TransportKind, String)>,
}

struct Attempt {
    kind: TransportKind,
    started: Instant,
    fut: BoxFuture<'static, Result<Connected, TransportError>>,
}

/// Races `plan` (kinds without a dialer are skipped). SSE starts only when
/// no other attempt is under way: an SSE stream resumes the session on the
/// server as it opens, so a losing SSE attempt must not overtake a winner.
pub(crate) async fn race(
    shared: &Shared,
    plan: &[TransportKind],
    stagger: Duration,
    attempt_timeout: Duration,
) -> Result<Won, Vec<(TransportKind, String)>> {
    let plan: Vec<TransportKind> = plan
        .iter()
        .copied()
        .filter(|k| shared.dialer(*k).is_some())
        .collect();
    let mut timer = PlatformTimer::default();
    let mut next = 0usize;
    let mut next_start = Instant::now();
    let mut running: Vec<Attempt> = Vec::new();
    let mut failed: Vec<(TransportKind, String)> = Vec::new();
    poll_fn(|cx| {
        loop {
            let now = Instant::now();
            while next < plan.len()
                && (running.is_empty() || (now >= next_start && plan[next] != TransportKind::Sse))
            {
                let kind = plan[next];
                next += 1;
                if let Some(d) = shared.dialer(kind) {
                    debug!(transport = kind_name(kind), "attempt");
                    shared.lock().stats.attempts.bump(kind);
                    running.push(Attempt {
                        kind,
                        started: now,
                        fut: d.dial(),
                    });
                    next_start = now + stagger;
                }
            }
            let mut i = 0;
            while i < running.len() {
                let a = &mut running[i];
                let outcome = match a.fut.as_mut().poll(cx) {
                    Poll::Ready(r) => Some(r),
                    Poll::Pending if now >= a.started + attempt_timeout => {
                        Some(Err(TransportError::Timeout("adaptive attempt")))
                    }
                    Poll::Pending => None,
                };
                match outcome {
                    Some(Ok(connected)) => {
                        let a = running.swap_remove(i);
                        // The others are dropped with `running`: their
                        // connections close.
                        return Poll::Ready(Ok(Won {
                            kind: a.kind,
                            connected,
                            handshake: now.saturating_duration_since(a.started),
                            failed: std::mem::take(&mut failed),
                        }));
                    }
                    Some(Err(e)) => {
                        let a = running.swap_remove(i);
                        debug!(transport = kind_name(a.kind), error = %e, "attempt failed");
                        let error = e.to_string();
                        shared.lock().stats.failures.bump(a.kind);
                        shared.event(AdaptiveEvent::AttemptFailed {
                            kind: a.kind,
                            error: error.clone(),
                        });
                        failed.push((a.kind, error));
                    }
                    None => i += 1,
                }
            }
            if running.is_empty() && next >= plan.len() {
                return Poll::Ready(Err(std::mem::take(&mut failed)));
            }
            if running.is_empty() {
                continue; // start the next one now
            }
            let mut deadline = running.iter().map(|a| a.started + attempt_timeout).min();
            if next < plan.len() && plan[next] != TransportKind::Sse {
                deadline = deadline.map(|d| d.min(next_start));
            }
            timer.reset(deadline);
            if timer.poll_elapsed(cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}
