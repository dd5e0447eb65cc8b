//! The sans-IO decision logic: which transports to race in which order, what worked last, when a transport is unhealthy, and when to probe for a better one (time passed in).

use std::time::Duration;

use tidings_runtime::TransportKind;
use web_time::Instant;

/// Settings of the adaptive policy.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Transports in order of preference (default WebTransport, WebSocket, SSE).
    pub order: Vec<TransportKind>,
    /// Happy eyeballs: the next attempt starts this long after the previous
    /// one if that one has not completed (at once if it failed). Default 250 ms.
    pub stagger: Duration,
    /// Time one attempt may take before it counts as failed. Default 3 s.
    pub attempt_timeout: Duration,
    /// While on a transport below the best one, a better one is tried (in
    /// the background, the session stays where it is) this often. Default 30 s.
    pub probe_every: Duration,
    /// The active transport is stalled when the client sent something and
    /// received nothing for this long: the next transport is tried, and the
    /// session moves once it connects. Default 10 s.
    pub stall_after: Duration,
    /// Failures in a row (failed attempts, or connections lost within
    /// `stall_after` of opening) after which a transport is tried last for
    /// `demote_for`. Default 2.
    pub demote_after: u32,
    /// See `demote_after`. Default 60 s.
    pub demote_for: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            order: vec![
                TransportKind::WebTransport,
                TransportKind::WebSocket,
                TransportKind::Sse,
            ],
            stagger: Duration::from_millis(250),
            attempt_timeout: Duration::from_secs(3),
            probe_every: Duration::from_secs(30),
            stall_after: Duration::from_secs(10),
            demote_after: 2,
            demote_for: Duration::from_secs(60),
        }
    }
}

/// What the policy asks the driver to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Dial `kind` in the background; move the session there once it connects.
    Probe {
        /// The transport to try.
        kind: TransportKind,
        /// Why.
        reason: SwitchReason,
    },
}

/// Why the session moves (or tries to move) to another transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwitchReason {
    /// A better transport (earlier in the order) is reachable again.
    Upgrade,
    /// The active transport stalled: a worse one is tried.
    Downgrade,
    /// The application asked for it.
    Forced,
}

#[derive(Clone, Debug, Default)]
struct KindState {
    failures: u32,
    demoted_until: Option<Instant>,
    rtt: Option<Duration>,
}

/// The active transport's activity, as the driver saw it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Activity {
    /// When the transport connected.
    pub since: Instant,
    /// Last frame received.
    pub last_recv: Instant,
    /// Last frame sent.
    pub last_sent: Instant,
}

impl Activity {
    /// A transport that connected at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            since: now,
            last_recv: now,
            last_sent: now,
        }
    }
}

/// The adaptive policy: pure state, every method takes the time.
///
/// ```
/// use std::time::Duration;
/// use tidings_adaptive::{Policy, PolicyConfig};
/// use tidings_runtime::TransportKind;
/// use web_time::Instant;
///
/// let t0 = Instant::now();
/// let mut p = Policy::new(PolicyConfig::default());
/// assert_eq!(p.plan(t0)[0], TransportKind::WebTransport);
/// p.attempt_failed(t0, TransportKind::WebTransport);
/// p.connected(t0, TransportKind::WebSocket, Duration::from_millis(2));
/// // What worked is tried first next time.
/// assert_eq!(p.plan(t0)[0], TransportKind::WebSocket);
/// ```
#[derive(Clone, Debug)]
pub struct Policy {
    config: PolicyConfig,
    kinds: Vec<(TransportKind, KindState)>,
    remembered: Option<TransportKind>,
    active: Option<TransportKind>,
    next_probe: Option<Instant>,
    probing: bool,
    /// No probe before this (after a failed one).
    quiet_until: Option<Instant>,
}

impl Policy {
    /// A policy with `config` (an empty order falls back to the default one).
    pub fn new(mut config: PolicyConfig) -> Self {
        if config.order.is_empty() {
            config.order = PolicyConfig::default().order;
        }
        let mut kinds: Vec<(TransportKind, KindState)> = Vec::new();
        for k in &config.order {
            if !kinds.iter().any(|(x, _)| x == k) {
                kinds.push((*k, KindState::default()));
            }
        }
        config.order = kinds.iter().map(|(k, _)| *k).collect();
        Self {
            config,
            kinds,
            remembered: None,
            active: None,
            next_probe: None,
            probing: false,
            quiet_until: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    fn state(&mut self, kind: TransportKind) -> Option<&mut KindState> {
        self.kinds
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s)
    }

    fn demoted(&self, kind: TransportKind, now: Instant) -> bool {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, s)| s.demoted_until)
            .is_some_and(|until| now < until)
    }

    /// Starts from what worked before (another client's, or a stored one).
    pub fn remember(&mut self, kind: Option<TransportKind>) {
        self.remembered = kind.filter(|k| self.config.order.contains(k));
    }

    /// What worked last.
    pub fn remembered(&self) -> Option<TransportKind> {
        self.remembered
    }

    /// The transport in use.
    pub fn active(&self) -> Option<TransportKind> {
        self.active
    }

    /// The order to race in now: what worked last first, then the configured
    /// order; demoted transports last (never left out: something is always tried).
    pub fn plan(&self, now: Instant) -> Vec<TransportKind> {
        let mut plan: Vec<TransportKind> = Vec::with_capacity(self.config.order.len());
        if let Some(r) = self.remembered.filter(|r| !self.demoted(*r, now)) {
            plan.push(r);
        }
        for k in &self.config.order {
            if !plan.contains(k) && !self.demoted(*k, now) {
                plan.push(*k);
            }
        }
        for k in &self.config.order {
            if !plan.contains(k) {
                plan.push(*k);
            }
        }
        plan
    }

    /// An attempt on `kind` failed (refused, timed out).
    pub fn attempt_failed(&mut self, now: Instant, kind: TransportKind) {
        let (after, window) = (self.config.demote_after, self.config.demote_for);
        if let Some(s) = self.state(kind) {
            s.failures += 1;
            if s.failures >= after {
                s.demoted_until = Some(now + window);
            }
        }
        if self.remembered == Some(kind) {
            self.remembered = None;
        }
    }

    /// `kind` connected after `handshake` (its first round-trip estimate) and
    /// now carries the session.
    pub fn connected(&mut self, now: Instant, kind: TransportKind, handshake: Duration) {
        if let Some(s) = self.state(kind) {
            // Failures are forgiven once a connection proves stable
            // (`poll_action`), not on connecting: one that keeps dropping
            // right after it opened is demoted.
            s.demoted_until = None;
            s.rtt.get_or_insert(handshake);
        }
        self.remembered = Some(kind);
        self.active = Some(kind);
        self.probing = false;
        self.quiet_until = None;
        self.next_probe = self
            .better_than(kind, now)
            .is_some()
            .then(|| now + self.config.probe_every);
    }

    /// The active transport ended after being up `lived` (a short life counts
    /// as a failure of its kind).
    pub fn disconnected(&mut self, now: Instant, lived: Duration) {
        let Some(kind) = self.active.take() else {
            return;
        };
        self.probing = false;
        self.next_probe = None;
        if lived < self.config.stall_after {
            self.attempt_failed(now, kind);
            self.remembered = Some(kind).filter(|_| !self.demoted(kind, now));
        }
    }

    /// A heartbeat round trip measured on the active transport (EWMA, 1/8).
    pub fn rtt_sample(&mut self, rtt: Duration) {
        let Some(kind) = self.active else { return };
        if let Some(s) = self.state(kind) {
            s.rtt = Some(match s.rtt {
                Some(old) => (old * 7 + rtt) / 8,
                None => rtt,
            });
        }
    }

    /// The smoothed round trip of `kind`, if measured.
    pub fn rtt(&self, kind: TransportKind) -> Option<Duration> {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, s)| s.rtt)
    }

    fn better_than(&self, kind: TransportKind, now: Instant) -> Option<TransportKind> {
        let pos = self.config.order.iter().position(|k| *k == kind)?;
        self.config.order[..pos]
            .iter()
            .copied()
            .find(|k| !self.demoted(*k, now))
            .or_else(|| self.config.order[..pos].first().copied())
    }

    fn worse_than(&self, kind: TransportKind) -> Option<TransportKind> {
        let pos = self.config.order.iter().position(|k| *k == kind)?;
        self.config.order.get(pos + 1).copied()
    }

    /// What to do now, given the active transport's `activity`: probe a
    /// better transport when the probe is due, or a worse one when the
    /// active one stalled. At most one probe at a time.
    pub fn poll_action(&mut self, now: Instant, activity: &Activity) -> Option<Action> {
        let active = self.active?;
        if now.saturating_duration_since(activity.since) >= self.config.stall_after
            && let Some(s) = self.state(active)
        {
            s.failures = 0;
        }
        if self.probing || self.quiet_until.is_some_and(|q| now < q) {
            return None;
        }
        let stalled = activity.last_sent > activity.last_recv
            && now.saturating_duration_since(activity.last_recv) >= self.config.stall_after;
        if stalled && let Some(kind) = self.worse_than(active) {
            self.probing = true;
            return Some(Action::Probe {
                kind,
                reason: SwitchReason::Downgrade,
            });
        }
        if self.next_probe.is_some_and(|at| now >= at) {
            self.next_probe = Some(now + self.config.probe_every);
            if let Some(kind) = self.better_than(active, now) {
                self.probing = true;
                return Some(Action::Probe {
                    kind,
                    reason: SwitchReason::Upgrade,
                });
            }
        }
        None
    }

    /// A probe (or a forced switch) to `kind` is under way.
    pub fn probe_started(&mut self) {
        self.probing = true;
    }

    /// The probe to `kind` failed: try again at the next probe time.
    pub fn probe_failed(&mut self, now: Instant, kind: TransportKind) {
        self.probing = false;
        self.quiet_until = Some(now + self.config.probe_every.min(self.config.stall_after));
        self.attempt_failed(now, kind);
    }

    /// When [`Policy::poll_action`] may next have something to do.
    pub fn poll_timeout(&self, activity: &Activity) -> Option<Instant> {
        self.active?;
        if self.probing {
            return None;
        }
        let stall = (activity.last_sent > activity.last_recv)
            .then(|| activity.last_recv + self.config.stall_after);
        let next = match (stall, self.next_probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|n| self.quiet_until.map_or(n, |q| n.max(q)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportKind::{Sse, WebSocket as Ws, WebTransport as Wt};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn plan_follows_the_order_and_remembers_the_winner() {
        let t0 = Instant::now();
        let mut p = Policy::new(PolicyConfig::default());
        assert_eq!(p.plan(t0), vec![Wt, Ws, Sse]);
        p.connected(t0, Sse, ms(1));
        assert_eq!(p.plan(t0), vec![Sse, Wt, Ws]);
    }

    #[test]
    fn repeated_failures_demote_until_the_window_passes() {
        let t0 = Instant::now();
        let cfg = PolicyConfig::default();
        let window = cfg.demote_for;
        let mut p = Policy::new(cfg);
        p.attempt_failed(t0, Wt);
        assert_eq!(p.plan(t0), vec![Wt, Ws, Sse], "one failure is not enough");
        p.attempt_failed(t0, Wt);
        assert_eq!(p.plan(t0), vec![Ws, Sse, Wt]);
        assert_eq!(p.plan(t0 + window), vec![Wt, Ws, Sse]);
    }

    #[test]
    fn a_lesser_transport_probes_for_a_better_one_on_schedule() {
        let t0 = Instant::now();
        let cfg = PolicyConfig::default();
        let every = cfg.probe_every;
        let mut p = Policy::new(cfg);
        p.connected(t0, Ws, ms(1));
        let a = Activity::new(t0);
        assert_eq!(p.poll_timeout(&a), Some(t0 + every));
        assert_eq!(p.poll_action(t0 + every - ms(1), &a), None);
        let probe = p.poll_action(t0 + every, &a);
        assert_eq!(
            probe,
            Some(Action::Probe {
                kind: Wt,
                reason: SwitchReason::Upgrade
            })
        );
        assert_eq!(
            p.poll_action(t0 + every * 2, &a),
            None,
            "one probe at a time"
        );
        p.probe_failed(t0 + every * 2, Wt);
        assert!(
            p.poll_action(t0 + every * 3, &a).is_some(),
            "tried again later"
        );
    }

    #[test]
    fn the_best_transport_never_probes() {
        let t0 = Instant::now();
        let mut p = Policy::new(PolicyConfig::default());
        p.connected(t0, Wt, ms(1));
        let a = Activity::new(t0);
        assert_eq!(p.poll_timeout(&a), None);
        assert_eq!(p.poll_action(t0 + Duration::from_secs(3600), &a), None);
    }

    #[test]
    fn a_stall_probes_the_next_worse_transport() {
        let t0 = Instant::now();
        let cfg = PolicyConfig::default();
        let stall = cfg.stall_after;
        let mut p = Policy::new(cfg);
        p.connected(t0, Wt, ms(1));
        let mut a = Activity::new(t0);
        a.last_sent = t0 + ms(5);
        assert_eq!(p.poll_timeout(&a), Some(t0 + stall));
        assert_eq!(p.poll_action(t0 + stall - ms(1), &a), None);
        assert_eq!(
            p.poll_action(t0 + stall, &a),
            Some(Action::Probe {
                kind: Ws,
                reason: SwitchReason::Downgrade
            })
        );
        // Quiet in both directions is not a stall.
        let mut p = Policy::new(PolicyConfig::default());
        p.connected(t0, Wt, ms(1));
        assert_eq!(p.poll_action(t0 + stall * 10, &Activity::new(t0)), None);
    }

    #[test]
    fn a_connection_lost_soon_after_opening_counts_as_a_failure() {
        let t0 = Instant::now();
        let mut p = Policy::new(PolicyConfig::default());
        p.connected(t0, Wt, ms(1));
        p.disconnected(t0 + ms(10), ms(10));
        p.connected(t0, Wt, ms(1));
        p.disconnected(t0 + ms(20), ms(10));
        assert_eq!(p.plan(t0 + ms(20))[0], Ws, "demoted after two short lives");
        assert_eq!(p.active(), None);
    }

    #[test]
    fn rtt_is_smoothed() {
        let t0 = Instant::now();
        let mut p = Policy::new(PolicyConfig::default());
        p.connected(t0, Ws, ms(80));
        p.rtt_sample(ms(0));
        assert_eq!(p.rtt(Ws), Some(ms(70)));
    }

    #[test]
    fn order_is_configurable_and_deduplicated() {
        let t0 = Instant::now();
        let cfg = PolicyConfig {
            order: vec![Sse, Ws, Sse],
            ..PolicyConfig::default()
        };
        let p = Policy::new(cfg);
        assert_eq!(p.plan(t0), vec![Sse, Ws]);
    }
}
