//! The connector the runtime's driver calls on every (re)connect: takes the connection a probe made ready (a switch), or races the transports in the policy's order.

use std::sync::Arc;

use std::time::Duration;

use tidings_runtime::{BoxFuture, Connected, Connector, TransportError, TransportKind};
use tracing::{Instrument, debug, info_span};
use web_time::Instant;

use crate::core::{PlatformTimer, Ready, Shared};
use crate::events::{AdaptiveEvent, kind_name};
use crate::link::{Link, lived};
use crate::policy::SwitchReason;
use crate::race::race;

/// The adaptive [`Connector`] of a client.
pub(crate) struct AdaptiveConnector {
    pub(crate) shared: Arc<Shared>,
}

impl Connector for AdaptiveConnector {
    type Timer = PlatformTimer;

    fn timer(&self) -> PlatformTimer {
        PlatformTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let shared = self.shared.clone();
        let span = info_span!("tidings_adaptive_connect");
        Box::pin(connect(shared).instrument(span))
    }
}

async fn connect(shared: Arc<Shared>) -> Result<Connected, TransportError> {
    let now = Instant::now();
    let (ready, interrupted, from, plan, stagger, timeout) = {
        let mut core = shared.lock();
        let ready = core.ready.take();
        let interrupted = core.interrupted.take().filter(|_| ready.is_none());
        let since = core.active_since.take();
        let from = core.policy.active();
        if ready.is_none() {
            if interrupted.is_some() {
                // Ended by the server for the switch under way: no failure of its kind.
                core.policy.disconnected(now, Duration::MAX);
            } else {
                core.policy.disconnected(now, lived(since, now));
            }
            core.stats.active = None;
        }
        let cfg = core.policy.config();
        let (stagger, timeout) = (cfg.stagger, cfg.attempt_timeout);
        let mut plan = core.policy.plan(now);
        if let Some((kind, _)) = interrupted {
            plan.retain(|k| *k != kind);
            plan.insert(0, kind);
        }
        (ready, interrupted, from, plan, stagger, timeout)
    };
    let ready = ready.map(|r| (r, from));
    if let Some((ready, from)) = ready {
        let Ready {
            kind,
            connected: (transport, codec),
            reason,
            handshake,
        } = ready;
        {
            let mut core = shared.lock();
            core.policy.connected(now, kind, handshake);
            core.active_since = Some(now);
            core.stats.active = Some(kind);
            core.stats.connections.bump(kind);
        }
        switched(&shared, from, kind, reason);
        let link = Link::new(transport, kind, codec.clone(), shared.clone(), now);
        return Ok((Box::new(link), codec));
    }
    shared.lock().stats.races += 1;
    match race(&shared, &plan, stagger, timeout).await {
        Ok(won) => {
            let done = Instant::now();
            let (transport, codec) = won.connected;
            {
                let mut core = shared.lock();
                core.policy.connected(done, won.kind, won.handshake);
                core.active_since = Some(done);
                core.stats.active = Some(won.kind);
                core.stats.connections.bump(won.kind);
                for (kind, _) in &won.failed {
                    core.policy.attempt_failed(done, *kind);
                }
            }
            if let Some(r) = &shared.remembered {
                r.set(won.kind);
            }
            debug!(transport = kind_name(won.kind), "connected");
            match interrupted {
                Some((kind, reason)) if kind == won.kind => {
                    switched(&shared, from, kind, reason);
                }
                _ => shared.event(AdaptiveEvent::Connected {
                    kind: won.kind,
                    after: done.saturating_duration_since(now),
                    failed: won.failed,
                }),
            }
            let link = Link::new(transport, won.kind, codec.clone(), shared.clone(), done);
            Ok((Box::new(link), codec))
        }
        Err(failed) => {
            let done = Instant::now();
            let mut core = shared.lock();
            for (kind, _) in &failed {
                core.policy.attempt_failed(done, *kind);
            }
            let summary: Vec<String> = failed
                .iter()
                .map(|(k, e)| format!("{}: {e}", kind_name(*k)))
                .collect();
            Err(TransportError::Handshake {
                status: None,
                reason: if summary.is_empty() {
                    "no transport configured".into()
                } else {
                    format!("every transport failed ({})", summary.join("; "))
                },
            })
        }
    }
}

/// Counts and reports a switch from `from` to `kind`.
fn switched(
    shared: &Shared,
    from: Option<TransportKind>,
    kind: TransportKind,
    reason: SwitchReason,
) {
    {
        let stats = &mut shared.lock().stats;
        stats.switches += 1;
        match reason {
            SwitchReason::Upgrade => stats.upgrades += 1,
            SwitchReason::Downgrade => stats.downgrades += 1,
            SwitchReason::Forced => stats.forced += 1,
        }
    }
    if let Some(r) = &shared.remembered {
        r.set(kind);
    }
    debug!(to = kind_name(kind), ?reason, "switched");
    if let Some(from) = from {
        shared.event(AdaptiveEvent::Switched {
            from,
            to: kind,
            reason,
        });
    }
}
