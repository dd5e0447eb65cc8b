//! What the adaptive client reports: events (connected on a transport, every switch, failed attempts) and counters.

use std::collections::VecDeque;
use std::time::Duration;

use tidings_runtime::TransportKind;

use crate::policy::SwitchReason;

/// Events kept for the application before the oldest are dropped (counted
/// in [`AdaptiveStats::events_dropped`]).
pub(crate) const MAX_EVENTS: usize = 256;

/// Something the adaptive layer did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdaptiveEvent {
    /// A race ended: `kind` carries the session now.
    Connected {
        /// The transport.
        kind: TransportKind,
        /// How long the race took.
        after: Duration,
        /// Attempts that failed in this race, with why.
        failed: Vec<(TransportKind, String)>,
    },
    /// An attempt (in a race, or a probe) on `kind` failed.
    AttemptFailed {
        /// The transport.
        kind: TransportKind,
        /// Why.
        error: String,
    },
    /// The session is moving from `from` to `to` (already connected):
    /// resumed there, nothing lost, nothing twice.
    Switched {
        /// The transport left.
        from: TransportKind,
        /// The transport taken.
        to: TransportKind,
        /// Why.
        reason: SwitchReason,
    },
}

/// Counters of an adaptive client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdaptiveStats {
    /// The transport carrying the session now.
    pub active: Option<TransportKind>,
    /// Races run (one per (re)connect without a ready probe).
    pub races: u64,
    /// Connection attempts started, per transport (races and probes).
    pub attempts: KindCounts,
    /// Attempts that failed, per transport.
    pub failures: KindCounts,
    /// Connections that carried the session, per transport.
    pub connections: KindCounts,
    /// Switches at run time (every kind below).
    pub switches: u64,
    /// Switches to a better transport.
    pub upgrades: u64,
    /// Switches to a worse transport after a stall.
    pub downgrades: u64,
    /// Switches the application asked for.
    pub forced: u64,
    /// Events dropped because the application did not read them.
    pub events_dropped: u64,
}

/// A counter per transport kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KindCounts {
    /// WebTransport.
    pub webtransport: u64,
    /// WebSocket.
    pub websocket: u64,
    /// SSE.
    pub sse: u64,
}

impl KindCounts {
    pub(crate) fn bump(&mut self, kind: TransportKind) {
        match kind {
            TransportKind::WebTransport => self.webtransport += 1,
            TransportKind::WebSocket => self.websocket += 1,
            TransportKind::Sse => self.sse += 1,
            _ => {}
        }
    }

    /// The count of `kind`.
    pub fn get(&self, kind: TransportKind) -> u64 {
        match kind {
            TransportKind::WebTransport => self.webtransport,
            TransportKind::WebSocket => self.websocket,
            TransportKind::Sse => self.sse,
            _ => 0,
        }
    }
}

/// The bounded event queue.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    items: VecDeque<AdaptiveEvent>,
}

impl EventQueue {
    /// Queues `e`; returns true when an old event had to go.
    pub(crate) fn push(&mut self, e: AdaptiveEvent) -> bool {
        let dropped = self.items.len() >= MAX_EVENTS;
        if dropped {
            self.items.pop_front();
        }
        self.items.push_back(e);
        dropped
    }

    pub(crate) fn pop(&mut self) -> Option<AdaptiveEvent> {
        self.items.pop_front()
    }
}

/// Lowercase name of a transport kind, as in the discovery document.
pub fn kind_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::WebTransport => "webtransport",
        TransportKind::WebSocket => "websocket",
        TransportKind::Sse => "sse",
        _ => "memory",
    }
}

/// The kind a discovery document's `kind` names.
pub fn kind_from_name(name: &str) -> Option<TransportKind> {
    match name {
        "webtransport" => Some(TransportKind::WebTransport),
        "websocket" => Some(TransportKind::WebSocket),
        "sse" => Some(TransportKind::Sse),
        _ => None,
    }
}
