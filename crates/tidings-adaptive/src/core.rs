//! The state an adaptive client's connector, its active transport and the application's handle share: policy, dialers, the connection a probe made ready, events and counters.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tidings_runtime::{BoxFuture, Connected, Connector, MaybeSend, TransportError, TransportKind};
use web_time::Instant;

use crate::Remembered;
use crate::events::{AdaptiveEvent, AdaptiveStats, EventQueue};
use crate::policy::{Policy, SwitchReason};

/// `Sync` on native targets, nothing on wasm32 (browser objects are not `Sync`).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` on native targets, nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub(crate) trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// The runtime's timer.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type PlatformTimer = tidings_runtime::TokioTimer;
/// The runtime's timer.
#[cfg(target_arch = "wasm32")]
pub(crate) type PlatformTimer = tidings_runtime::WasmTimer;

/// Opens one connection of one transport (a transport crate's connector).
pub(crate) trait Dial: MaybeSend + MaybeSync {
    fn dial(&self) -> BoxFuture<'static, Result<Connected, TransportError>>;
}

/// Any connector as a [`Dial`] (the lock makes a `Send`-only connector shareable).
pub(crate) struct ConnectorDial<C>(pub(crate) Mutex<C>);

impl<C: Connector + MaybeSend> Dial for ConnectorDial<C> {
    fn dial(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).connect()
    }
}

/// A connection a probe opened, waiting for the driver's next `connect`.
pub(crate) struct Ready {
    pub(crate) kind: TransportKind,
    pub(crate) connected: Connected,
    pub(crate) reason: SwitchReason,
    pub(crate) handshake: Duration,
}

/// Mutable state under one lock.
pub(crate) struct Core {
    pub(crate) policy: Policy,
    pub(crate) events: EventQueue,
    pub(crate) stats: AdaptiveStats,
    pub(crate) ready: Option<Ready>,
    /// A switch the application asked for, taken by the active transport.
    pub(crate) forced: Option<TransportKind>,
    /// When the active transport connected.
    pub(crate) active_since: Option<Instant>,
    /// A probe cut short because the active transport ended first (an SSE
    /// probe resumes the session on the server, which closes the old
    /// connection): the next race tries its kind first and counts as the switch.
    pub(crate) interrupted: Option<(TransportKind, SwitchReason)>,
}

impl Core {
    pub(crate) fn event(&mut self, e: AdaptiveEvent) {
        if self.events.push(e) {
            self.stats.events_dropped += 1;
        }
    }
}

/// Shared by the connector, the active transport and the client handle.
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// The application waiting for an event.
    pub(crate) app: AtomicWaker,
    /// The active transport (woken for a forced switch).
    pub(crate) link: AtomicWaker,
    pub(crate) dialers: Vec<(TransportKind, Arc<dyn Dial>)>,
    pub(crate) remembered: Option<Remembered>,
}

impl Shared {
    pub(crate) fn new(
        policy: Policy,
        dialers: Vec<(TransportKind, Arc<dyn Dial>)>,
        remembered: Option<Remembered>,
    ) -> Self {
        Self {
            core: Mutex::new(Core {
                policy,
                events: EventQueue::default(),
                stats: AdaptiveStats::default(),
                ready: None,
                forced: None,
                active_since: None,
                interrupted: None,
            }),
            app: AtomicWaker::new(),
            link: AtomicWaker::new(),
            dialers,
            remembered,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `e` and wakes the application.
    pub(crate) fn event(&self, e: AdaptiveEvent) {
        self.lock().event(e);
        self.app.wake();
    }

    pub(crate) fn dialer(&self, kind: TransportKind) -> Option<Arc<dyn Dial>> {
        self.dialers
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d.clone())
    }
}
