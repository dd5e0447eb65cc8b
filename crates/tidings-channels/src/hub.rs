//! The `Hub`: serves client sessions over any transport — handshake, resume, subscriptions, publishes, fan-out, shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use tidings_protocol::{
    ChannelMap, ChannelName, CloseCode, ErrorCode, ErrorFrame, Frame, FrameCodec, Instant,
    InvalidChannelName, ProtocolError, Publisher, ResumeToken, RpcCode, RpcFault, RpcFrame,
    RpcKind, ServerConfig, ServerEvent, ServerSession, ServerState, SessionCounters, SessionId,
    SharedMessage,
};
use tidings_runtime::{
    Attachment, Prepared, PumpExit, PumpTarget, TokioTimer, Transport, TransportError,
    TransportExt, pump,
};
use tracing::{Instrument, debug, info_span, warn};

use tidings_broker::{Broker, BrokerError, Delivery, PublishReceipt, SubscriberId};

use crate::extension::{ExtensionGuard, HubExtension, SessionInfo};
use crate::identity::{Identity, IdentityGuard};
use crate::latency::PublishLatency;
use crate::memory::{MemoryBroker, PublishCache};
use crate::rpc_hook::{RpcConnection, RpcLink, RpcService};

/// Payloads up to this size are copied out of the read buffer they were decoded from.
const COMPACT_PAYLOAD: usize = 2048;

/// A decoded payload is a slice of the connection's read buffer; history and
/// replay keep it for a while, so small ones are copied out rather than
/// pinning the whole buffer.
fn compact(payload: Bytes) -> Bytes {
    if payload.len() <= COMPACT_PAYLOAD {
        Bytes::copy_from_slice(&payload)
    } else {
        payload
    }
}

/// The broker did not take publish `seq`: with `ack_after_store` the client
/// gets it refused by name (`unavailable` when the backend is down: its
/// caller may publish it again later), else an error report.
fn publish_failed(entry: &Entry, seq: u64, channel: &ChannelName, e: &BrokerError) {
    warn!(error = %e, %channel, seq, "publish failed");
    let code = if e.is_unavailable() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    entry.lock().publish_failed(
        Instant::now(),
        seq,
        code,
        format!("publish to {channel} failed: {e}"),
    );
}

/// Settings of a [`Hub`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HubConfig {
    /// Settings of every server session (heartbeat, limits, resume window...).
    pub session: ServerConfig,
    /// Time a new connection gets to send its `Hello`.
    pub handshake_timeout: Duration,
    /// How often detached sessions are checked for expiry.
    pub reap_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            session: ServerConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            reap_interval: Duration::from_secs(1),
        }
    }
}

impl HubConfig {
    /// Sets the session settings.
    pub fn with_session(mut self, session: ServerConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }
}

/// Counters of a hub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Sessions known (open or detached).
    pub sessions: usize,
    /// Connections being served.
    pub connections: u64,
}

/// Everything a hub counted, for metrics ([`Hub::counters`]): gauges of
/// now, and totals since the hub was made (never decreasing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubCounters {
    /// Sessions known now (open or detached).
    pub sessions: u64,
    /// Connections being served now.
    pub connections: u64,
    /// Connections served so far (each transport connection handed to the hub).
    pub connections_total: u64,
    /// Sessions opened so far (a resume is not a new session).
    pub sessions_total: u64,
    /// Connections refused before a session (no `hello` in time, a bad
    /// `hello`, a resume token of another identity, shutting down).
    pub handshakes_refused: u64,
    /// The sum of every session's counters, ended sessions included.
    pub session: SessionCounters,
}

// `repr(C)` on a line of its own: what every pump turn and delivery reads
// (the two epochs, the session lock, the waker and the session's first,
// hottest fields: see `ServerSession`) shares one cache line.
#[repr(C, align(64))]
pub(crate) struct Entry {
    /// The session's connection epoch, mirrored out of the lock (written under
    /// it) so that every pump turn can check for a takeover without locking.
    current: AtomicU64,
    /// Epoch of the connection now handling this session's events (0: none).
    /// That connection pumps again right after, so deliveries made meanwhile
    /// (e.g. a publish to its own channel) need not wake it.
    pub(crate) handling: AtomicU64,
    /// The epoch of the connection whose turn it is to publish (0: nobody's),
    /// held from taking a publish out of the session until the broker has it:
    /// a session's publishes reach the broker one at a time, in the order the
    /// client sent them, even when a resumed connection takes over while the
    /// one before still has a publish in hand (see [`PublishTurn`]).
    publishing: AtomicU64,
    session: Mutex<Slot>,
    subs: Mutex<ChannelMap<SubscriberId>>,
    /// The session's id and the subject of the identity that opened it
    /// (`None`: anonymous); only the same subject may resume it.
    info: SessionInfo,
    /// The client's publisher id from the `Hello` that opened the session:
    /// a durable broker then keys its publishes `p:{id}:{base + seq}`,
    /// stable across nodes (else `session-id:seq`).
    publisher: Option<Publisher>,
}

/// A connection's turn to take publishes out of its session and hand them to
/// the broker (`Entry::publishing`); given back when dropped.
struct PublishTurn<'a> {
    entry: &'a Entry,
    epoch: u64,
}

impl<'a> PublishTurn<'a> {
    /// The turn for connection `epoch`, unless another connection has it.
    /// That one wakes the session's connection when it gives the turn back,
    /// so publishes left queued meanwhile are not forgotten.
    fn take(entry: &'a Entry, epoch: u64) -> Option<Self> {
        entry
            .publishing
            .compare_exchange(0, epoch, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self { entry, epoch })
    }
}

impl Drop for PublishTurn<'_> {
    fn drop(&mut self) {
        self.entry.publishing.store(0, Ordering::Release);
        // A connection that took over meanwhile may have left publishes
        // queued (and its pump asleep, see `Conn::prepare`): its turn now.
        if self.entry.current.load(Ordering::Acquire) != self.epoch {
            self.entry.wake();
        }
    }
}

/// A session and the waker of the connection serving it, under one lock: the
/// pump registers on every turn and fan-out wakes on every delivery, both
/// already holding the session lock, so the waker costs no atomics of its own.
#[repr(C)]
pub(crate) struct Slot {
    /// The task of the attached connection (kept after a wake: waking twice
    /// costs one spurious poll at most).
    pub(crate) waker: Option<Waker>,
    session: ServerSession,
}

impl std::ops::Deref for Slot {
    type Target = ServerSession;
    fn deref(&self) -> &ServerSession {
        &self.session
    }
}

impl std::ops::DerefMut for Slot {
    fn deref_mut(&mut self) -> &mut ServerSession {
        &mut self.session
    }
}

impl Entry {
    fn new(session: ServerSession, owner: Option<Arc<str>>, publisher: Option<Publisher>) -> Self {
        Self {
            info: SessionInfo {
                id: session.id().clone(),
                owner,
            },
            publisher,
            session: Mutex::new(Slot {
                session,
                waker: None,
            }),
            subs: Mutex::new(ChannelMap::default()),
            handling: AtomicU64::new(0),
            current: AtomicU64::new(1),
            publishing: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Slot> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the attached connection's task (outside the lock).
    fn wake(&self) {
        let waker = self.lock().waker.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Queues a message (`alone`: its only receiver) and wakes the connection,
    /// unless that connection is the one publishing right now.
    fn deliver_as(&self, message: &Arc<SharedMessage>, alone: bool) {
        let waker = {
            let mut s = self.lock();
            if alone {
                s.deliver_alone(message);
            } else {
                s.deliver(message);
            }
            if self.handling.load(Ordering::Acquire) == s.epoch() {
                None
            } else {
                s.waker.clone()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Delivery for Entry {
    fn deliver(&self, message: &Arc<SharedMessage>) {
        self.deliver_as(message, false);
    }

    fn deliver_alone(&self, message: &Arc<SharedMessage>) {
        self.deliver_as(message, true);
    }
}

struct Inner {
    broker: Arc<dyn Broker>,
    /// The same broker when it is the in-memory one (it publishes synchronously).
    memory: Option<Arc<MemoryBroker>>,
    config: HubConfig,
    /// `config.session`, shared by every session (one copy stays cached).
    session_config: Arc<ServerConfig>,
    sessions: Mutex<HashMap<ResumeToken, Arc<Entry>>>,
    /// Sessions whose connection ended, for the reaper: it visits these, not
    /// every session (a scan of all sessions, each behind its own lock, stalls a
    /// worker for milliseconds once there are tens of thousands).
    detached: Mutex<Vec<Arc<Entry>>>,
    counter: AtomicU64,
    connections: AtomicU64,
    connections_total: AtomicU64,
    sessions_total: AtomicU64,
    handshakes_refused: AtomicU64,
    /// Bytes of the first frames (`hello`) read by the hub itself, before a
    /// session counts its own input.
    hello_bytes: AtomicU64,
    /// Counters of the sessions that ended (folded in under the `sessions`
    /// lock as they leave it, so a sum over both never counts one twice).
    retired: Mutex<SessionCounters>,
    latency: Arc<PublishLatency>,
    shutting_down: AtomicBool,
    reaper_started: AtomicBool,
    idle: tokio::sync::Notify,
    /// The RPC layer, when one is installed ([`Hub::set_rpc`]).
    rpc: std::sync::OnceLock<Arc<dyn RpcService>>,
    /// Services plugged in with [`Hub::extend`] (read on session events, not
    /// per message).
    extensions: RwLock<Arc<[Arc<dyn HubExtension>]>>,
}

/// Serves tidings sessions; cheap to clone (one `Arc`).
///
/// Hand every established connection to [`Hub::serve`]; publish from server
/// code with [`Hub::publish`]; stop with [`Hub::shutdown`].
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub on `broker` with default settings.
    pub fn new<B: Broker>(broker: Arc<B>) -> Self {
        Self::with_config(broker, HubConfig::default())
    }

    /// A hub on `broker` with `config`.
    pub fn with_config<B: Broker>(broker: Arc<B>, config: HubConfig) -> Self {
        // An in-memory broker publishes without waiting: the hub then
        // publishes straight from a connection's read path (`handle_inputs`).
        let any: Arc<dyn std::any::Any + Send + Sync> = broker.clone();
        let memory = any.downcast::<MemoryBroker>().ok();
        Self::build(broker, memory, config)
    }

    /// A hub on a broker chosen at run time (e.g. from a URL), with `config`.
    pub fn with_dyn_broker(broker: Arc<dyn Broker>, config: HubConfig) -> Self {
        Self::build(broker, None, config)
    }

    fn build(
        broker: Arc<dyn Broker>,
        memory: Option<Arc<MemoryBroker>>,
        config: HubConfig,
    ) -> Self {
        // A durable broker can be down: a client's publish is acknowledged
        // only once the broker has it (see `ServerConfig::ack_after_store`).
        let mut config = config;
        if broker.is_durable() {
            config.session.ack_after_store = true;
        }
        Self {
            inner: Arc::new(Inner {
                broker,
                memory,
                session_config: Arc::new(config.session.clone()),
                config,
                sessions: Mutex::new(HashMap::new()),
                detached: Mutex::new(Vec::new()),
                counter: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                connections_total: AtomicU64::new(0),
                sessions_total: AtomicU64::new(0),
                handshakes_refused: AtomicU64::new(0),
                hello_bytes: AtomicU64::new(0),
                retired: Mutex::new(SessionCounters::default()),
                latency: Arc::default(),
                shutting_down: AtomicBool::new(false),
                reaper_started: AtomicBool::new(false),
                idle: tokio::sync::Notify::new(),
                rpc: std::sync::OnceLock::new(),
                extensions: RwLock::new(Arc::from(Vec::new())),
            }),
        }
    }

    /// Serves RPC with `service` on every connection (`tidings-rpc`'s
    /// server); false when a service is installed already (it stays).
    /// Without one, calls are answered with `unknown_method`.
    pub fn set_rpc(&self, service: Arc<dyn RpcService>) -> bool {
        self.inner.rpc.set(service).is_ok()
    }

    /// The hub's settings (transports use the session limits, e.g. to check
    /// frames before they reach a session).
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Plugs `extension` into the hub: it sees every session's lifecycle and
    /// subscriptions from now on, and serves the channels it
    /// [owns](HubExtension::owns) (clients may subscribe to them, not publish
    /// on them). Plug extensions in before serving connections: sessions
    /// opened earlier are not told about the ones plugged in later.
    pub fn extend(&self, extension: Arc<dyn HubExtension>) {
        let mut list = self
            .inner
            .extensions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut next: Vec<_> = list.iter().cloned().collect();
        next.push(extension);
        *list = Arc::from(next);
    }

    fn extensions(&self) -> Arc<[Arc<dyn HubExtension>]> {
        self.inner
            .extensions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The extension that owns `channel`, if any.
    fn owner_of(&self, channel: &ChannelName) -> Option<Arc<dyn HubExtension>> {
        self.extensions().iter().find(|e| e.owns(channel)).cloned()
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        HubStats {
            sessions: self.sessions().len(),
            connections: self.inner.connections.load(Ordering::Relaxed),
        }
    }

    /// Every counter of the hub, summed over its sessions now (each session
    /// is locked once, under the session table's lock: a scrape of 10,000
    /// sessions holds new connections back for about a millisecond). The
    /// message path only adds to plain fields of its locked session.
    pub fn counters(&self) -> HubCounters {
        let sessions = self.sessions();
        let mut sum = *self.inner.retired.lock().unwrap_or_else(|p| p.into_inner());
        for entry in sessions.values() {
            sum.add(&entry.lock().counters());
        }
        sum.bytes_received += self.inner.hello_bytes.load(Ordering::Relaxed);
        HubCounters {
            sessions: sessions.len() as u64,
            connections: self.inner.connections.load(Ordering::Relaxed),
            connections_total: self.inner.connections_total.load(Ordering::Relaxed),
            sessions_total: self.inner.sessions_total.load(Ordering::Relaxed),
            handshakes_refused: self.inner.handshakes_refused.load(Ordering::Relaxed),
            session: sum,
        }
    }

    /// How long the broker takes with the hub's publishes (off until
    /// [`PublishLatency::enable`]).
    pub fn publish_latency(&self) -> &PublishLatency {
        &self.inner.latency
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<ResumeToken, Arc<Entry>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes from server code (not on behalf of a client session).
    pub async fn publish(
        &self,
        channel: &str,
        payload: impl Into<Bytes>,
    ) -> Result<PublishReceipt, HubPublishError> {
        let channel = ChannelName::new(channel)?;
        Ok(self.inner.broker.publish(&channel, payload.into()).await?)
    }

    /// Starts a graceful shutdown: every open session gets `Close` (1001) with
    /// `reason`, and new connections are refused.
    pub fn shutdown(&self, reason: &str) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let entries: Vec<Arc<Entry>> = self.sessions().values().cloned().collect();
        for e in entries {
            e.lock().shutdown(reason);
            e.wake();
        }
    }

    /// Whether [`Hub::shutdown`] was called (the node is draining: not ready).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }

    /// Serves one anonymous connection until it ends. `codec` is what the
    /// transport negotiated.
    pub async fn serve<T: Transport>(&self, transport: T, codec: Arc<dyn FrameCodec>) {
        self.serve_as(transport, codec, None).await;
    }

    /// Serves one connection of `identity` (`None`: anonymous) until it ends:
    /// its session may do what the identity's grants allow, ends when its
    /// credentials expire, and only the same subject may resume it (a resume
    /// token presented by anyone else is refused with `unauthorized` and
    /// close `1008`; the session stays with its owner).
    pub async fn serve_as<T: Transport>(
        &self,
        mut transport: T,
        codec: Arc<dyn FrameCodec>,
        identity: Option<Identity>,
    ) {
        self.start_reaper();
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("tidings_session", conn = n, session = tracing::field::Empty);
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
        self.inner.connections_total.fetch_add(1, Ordering::Relaxed);
        self.serve_inner(&mut transport, codec, identity)
            .instrument(span)
            .await;
        if self.inner.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }

    /// Resolves once no connection is being served (e.g. after
    /// [`Hub::shutdown`], when every close frame has been written).
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.inner.connections.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    async fn serve_inner<T: Transport>(
        &self,
        transport: &mut T,
        codec: Arc<dyn FrameCodec>,
        identity: Option<Identity>,
    ) {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            self.refused_handshake();
            let _ = transport
                .close(CloseCode::GOING_AWAY, "server shutting down")
                .await;
            return;
        }
        let limits = &self.inner.session_config.limits;
        let first =
            tokio::time::timeout(self.inner.config.handshake_timeout, transport.recv()).await;
        let hello = match first {
            Err(_) => {
                self.refused_handshake();
                let _ = transport
                    .close(
                        CloseCode::HANDSHAKE_TIMEOUT,
                        "no Hello within the handshake timeout",
                    )
                    .await;
                return;
            }
            Ok(None) | Ok(Some(Err(_))) => {
                self.refused_handshake();
                return finish_close(transport).await;
            }
            Ok(Some(Ok(bytes))) => {
                self.inner
                    .hello_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                match ServerSession::read_hello(&*codec, &bytes, limits) {
                    Ok(h) => h,
                    Err(e) => {
                        self.refused_handshake();
                        return refuse(transport, &*codec, &e).await;
                    }
                }
            }
        };
        let now = Instant::now();
        let resumed = hello
            .resume
            .as_ref()
            .and_then(|t| self.sessions().get(t).cloned());
        let subject = identity.as_ref().map(|i| i.subject());
        if let Some(entry) = &resumed
            && entry.info.owner.as_deref() != subject
        {
            warn!("resume token presented by another identity: refused");
            self.refused_handshake();
            let e = "this session belongs to another identity";
            let refusal = Frame::Error(ErrorFrame::new(ErrorCode::Unauthorized, e));
            if let Ok(frame) = codec.encode_to_bytes(&refusal) {
                let _ = transport.send(frame).await;
            }
            let _ = transport.close(CloseCode::POLICY, e).await;
            return;
        }
        // A peer that resumes by frame number (SSE `Last-Event-ID`) gets its
        // positions from the session's frame log; an unknown number (forged, or
        // from another server) starts a new session like an unknown token.
        let after_frame = transport.resume_after_frame();
        let resumed = resumed.and_then(|entry| {
            let epoch = {
                let mut s = entry.lock();
                let epoch = match (s.state(), after_frame) {
                    (ServerState::Closed, _) => None,
                    (_, Some(frame)) => s.resume_after_frame(now, codec.clone(), frame),
                    (_, None) => Some(s.resume(now, codec.clone(), &hello)),
                };
                if let Some(e) = epoch {
                    entry.current.store(e, Ordering::Release);
                }
                epoch
            }?;
            entry.wake(); // an older connection of this session must stop
            Some((entry, epoch))
        });
        let was_resumed = resumed.is_some();
        let (entry, epoch) = match resumed {
            Some(attached) => attached,
            None => {
                let (id, token) = new_ids(self.inner.counter.fetch_add(1, Ordering::Relaxed));
                let session = ServerSession::accept(
                    self.inner.session_config.clone(),
                    id,
                    token.clone(),
                    codec.clone(),
                    now,
                );
                let mut session = session;
                let extensions = self.extensions();
                let grants = identity.as_ref().map(|i| i.grants().clone());
                if !extensions.is_empty() {
                    session.set_guard(Arc::new(ExtensionGuard {
                        grants: grants.clone(),
                        extensions,
                    }));
                } else if let Some(grants) = grants {
                    session.set_guard(Arc::new(IdentityGuard(grants)));
                }
                if let Some(identity) = &identity {
                    session.set_credentials_expiry(identity.expires().map(|at| {
                        let left = at
                            .duration_since(std::time::SystemTime::now())
                            .unwrap_or_default();
                        now + left
                    }));
                }
                let owner = identity.as_ref().map(|i| Arc::from(i.subject()));
                let entry = Arc::new(Entry::new(session, owner, hello.publisher.clone()));
                self.sessions().insert(token, entry.clone());
                self.inner.sessions_total.fetch_add(1, Ordering::Relaxed);
                (entry, 1)
            }
        };
        let attachment = {
            let mut s = entry.lock();
            if transport.numbers_frames() {
                s.record_frame_positions();
            }
            Attachment::new(
                s.id().clone(),
                s.token().clone(),
                epoch,
                s.frames_sent() + 1,
            )
        };
        transport.attached(&attachment);
        for ext in self.extensions().iter() {
            ext.attached(&entry.info, was_resumed);
        }
        tracing::Span::current().record("session", attachment.session.0.as_str());
        debug!(epoch, "session attached");
        let conn = Conn {
            entry: entry.clone(),
            epoch,
            codec,
            close: Mutex::new(None),
            closing: AtomicBool::new(false),
            sync_broker: self.inner.memory.clone(),
            extensions: self.extensions(),
            publish_cache: Mutex::default(),
            identity: identity.clone(),
            rpc: Mutex::new(None),
            latency: self.inner.latency.clone(),
        };
        let mut timer = TokioTimer::default();
        loop {
            match pump(&conn, transport, &mut timer, Instant::now).await {
                PumpExit::Events => {
                    entry.handling.store(epoch, Ordering::Release);
                    self.handle_events(&conn, false).await;
                    entry.handling.store(0, Ordering::Release);
                }
                PumpExit::Closed { code } => {
                    debug!(code, "connection closed");
                    break;
                }
                _ => break,
            }
        }
        // Events raised while ending (e.g. Closed) still need handling; no
        // wake-up will come for them, so wait for the publish turn.
        self.handle_events(&conn, true).await;
        // Calls live on one connection: dropping its RPC state cancels them.
        drop(conn.rpc.lock().unwrap_or_else(|p| p.into_inner()).take());
        let detached = {
            let mut s = entry.lock();
            if s.epoch() == epoch {
                s.detach(Instant::now());
            }
            s.epoch() == epoch && s.state() == ServerState::Detached
        };
        if detached {
            for ext in self.extensions().iter() {
                ext.detached(&entry.info);
            }
            self.detached_list().push(entry);
        }
    }

    fn detached_list(&self) -> MutexGuard<'_, Vec<Arc<Entry>>> {
        self.inner
            .detached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Handles the session's events on its publish turn (see
    /// `Entry::publishing`). Without the turn, events wait: its holder wakes
    /// this connection when done; `wait_for_turn` (the connection is ending,
    /// its pump will not run again) polls for the turn instead, for at most
    /// [`tidings_runtime::CLOSE_GRACE`] (a broker that never answers the holder
    /// must not keep this connection forever; the events stay queued in the
    /// session for a resume).
    async fn handle_events(&self, conn: &Conn, wait_for_turn: bool) {
        let mut give_up = None;
        loop {
            let _turn = loop {
                if let Some(turn) = PublishTurn::take(&conn.entry, conn.epoch) {
                    break turn;
                }
                if !wait_for_turn {
                    return;
                }
                let now = Instant::now();
                if now >= *give_up.get_or_insert(now + tidings_runtime::CLOSE_GRACE) {
                    debug!("publish turn still taken: events left queued");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            let event = {
                let mut s = conn.entry.lock();
                if s.epoch() != conn.epoch {
                    return;
                }
                s.poll_event()
            };
            let Some(event) = event else { return };
            match event {
                ServerEvent::Subscribe { channel, after } => {
                    self.subscribe(&conn.entry, channel, after).await
                }
                ServerEvent::Unsubscribe { channel } => {
                    let id = conn
                        .entry
                        .subs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&channel);
                    if let Some(id) = id {
                        self.drop_subscription(&conn.entry, &channel, id);
                    }
                }
                ServerEvent::Publish {
                    seq,
                    channel,
                    payload,
                } => self.publish_for(conn, seq, channel, payload).await,
                ServerEvent::Disconnect { code, reason } => {
                    *conn.close.lock().unwrap_or_else(|p| p.into_inner()) = Some((code, reason));
                    conn.closing.store(true, Ordering::Release);
                }
                ServerEvent::Closed { reason } => {
                    debug!(%reason, "session ended");
                    self.remove(&conn.entry);
                }
                ServerEvent::Rpc(frame) => self.on_rpc(conn, frame),
                _ => {}
            }
        }
    }

    /// Hands an RPC frame to the connection's RPC state (opened at its first frame).
    fn on_rpc(&self, conn: &Conn, frame: RpcFrame) {
        let link = RpcLink {
            entry: conn.entry.clone(),
            epoch: conn.epoch,
        };
        let Some(service) = self.inner.rpc.get() else {
            if let RpcKind::Call { .. } = frame.kind {
                link.send(RpcFrame {
                    call: frame.call,
                    kind: RpcKind::Reply(Err(RpcFault {
                        code: RpcCode::UnknownMethod,
                        message: "this server serves no RPC".into(),
                        data: None,
                    })),
                });
            }
            return;
        };
        let mut rpc = conn.rpc.lock().unwrap_or_else(|p| p.into_inner());
        rpc.get_or_insert_with(|| service.connect(link, conn.identity.clone()))
            .on_frame(frame);
    }

    /// Hands publish `seq` of `conn`'s session to the broker. With
    /// `ack_after_store`, under an idempotency key (session id and publish
    /// number: a backend stores a re-sent publish once), and the session
    /// acknowledges it only when the broker answers.
    async fn publish_for(&self, conn: &Conn, seq: u64, channel: ChannelName, payload: Bytes) {
        if let Some(ext) = self.owner_of(&channel) {
            self.publish_to_extension(conn, &*ext, seq, &channel, payload);
            return;
        }
        let broker = &self.inner.broker;
        let started = conn.latency.is_enabled().then(std::time::Instant::now);
        if !self.inner.session_config.ack_after_store {
            let result = broker.publish(&channel, compact(payload)).await;
            if let Some(t) = started {
                conn.latency.record(t.elapsed());
            }
            if let Err(e) = result {
                publish_failed(&conn.entry, seq, &channel, &e);
            }
            return;
        }
        let key = match &conn.entry.publisher {
            Some(p) => p.key(seq),
            None => format!("{}:{seq}", conn.entry.lock().id().0),
        };
        let bytes = payload.len();
        let result = broker.publish_keyed(&channel, compact(payload), &key).await;
        if let Some(t) = started {
            conn.latency.record(t.elapsed());
        }
        match result {
            Ok(_) => conn.entry.lock().publish_stored(Instant::now(), seq, bytes),
            Err(e) => publish_failed(&conn.entry, seq, &channel, &e),
        }
        conn.entry.wake();
    }

    /// Hands publish `seq` on a channel `ext` owns to it (the session's guard
    /// let it through: `ext` accepts publishes there). Refused: by name with
    /// the extension's code (an error report without `ack_after_store`).
    fn publish_to_extension(
        &self,
        conn: &Conn,
        ext: &dyn HubExtension,
        seq: u64,
        channel: &ChannelName,
        payload: Bytes,
    ) {
        let may_write = conn
            .identity
            .as_ref()
            .is_none_or(|i| i.grants().may_publish(channel.as_str()));
        let bytes = payload.len();
        match ext.publish(&conn.entry.info, channel, payload, may_write) {
            Ok(()) => {
                if self.inner.session_config.ack_after_store {
                    conn.entry.lock().publish_stored(Instant::now(), seq, bytes);
                }
            }
            Err(refusal) => {
                debug!(%channel, seq, error = %refusal, "publish refused by an extension");
                conn.entry.lock().publish_failed(
                    Instant::now(),
                    seq,
                    refusal.code,
                    refusal.message,
                );
            }
        }
        conn.entry.wake();
    }

    async fn subscribe(&self, entry: &Arc<Entry>, channel: ChannelName, after: Option<u64>) {
        let sink: Arc<dyn Delivery> = entry.clone();
        let result = match self.owner_of(&channel) {
            Some(ext) => ext.subscribe(&entry.info, &channel, after, sink),
            None => {
                let r = self.inner.broker.subscribe(&channel, after, sink).await;
                if r.is_ok() {
                    for ext in self.extensions().iter() {
                        ext.subscribed(&entry.info, &channel);
                    }
                }
                r
            }
        };
        match result {
            Ok(sub) => {
                entry
                    .subs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(channel.clone(), sub.id);
                entry.lock().subscribed(&channel, sub.start);
            }
            Err(e) => {
                warn!(error = %e, %channel, "subscribe failed");
                entry.lock().subscribe_failed(
                    &channel,
                    ErrorCode::Internal,
                    format!("subscribe failed: {e}"),
                );
            }
        }
        entry.wake();
    }

    fn refused_handshake(&self) {
        self.inner
            .handshakes_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&self, entry: &Arc<Entry>) {
        let token = entry.lock().token().clone();
        {
            // Its counters move to the retired sum under the table's lock, so
            // that `counters` sees the session in exactly one of the two.
            // Frames written after this (the close frame) are not counted.
            let mut sessions = self.sessions();
            if sessions.remove(&token).is_some() {
                let counters = entry.lock().counters();
                self.inner
                    .retired
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(&counters);
            }
        }
        let subs: Vec<_> = entry
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (channel, id) in subs {
            self.drop_subscription(entry, &channel, id);
        }
        for ext in self.extensions().iter() {
            ext.ended(&entry.info);
        }
    }

    /// Ends subscription `id` of `entry` to `channel`, at the extension that
    /// owns the channel or at the broker.
    fn drop_subscription(&self, entry: &Entry, channel: &ChannelName, id: SubscriberId) {
        match self.owner_of(channel) {
            Some(ext) => ext.unsubscribe(channel, id),
            None => {
                self.inner.broker.unsubscribe(channel, id);
                for ext in self.extensions().iter() {
                    ext.unsubscribed(&entry.info, channel);
                }
            }
        }
    }

    fn start_reaper(&self) {
        if self.inner.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.config.reap_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let hub = Hub { inner };
                hub.reap(Instant::now());
            }
        });
    }

    /// Expires detached sessions whose resume window has passed.
    /// Visits only sessions whose connection ended since (or before) the last
    /// visit; resumed ones leave the list, waiting ones stay.
    fn reap(&self, now: Instant) {
        let candidates = std::mem::take(&mut *self.detached_list());
        let mut waiting = Vec::new();
        for entry in candidates {
            let (closed, still_detached) = {
                let mut s = entry.lock();
                if s.state() != ServerState::Detached {
                    // Resumed (back on the list if it detaches again) or ended.
                    continue;
                }
                s.handle_timeout(now);
                let mut closed = false;
                while let Some(ev) = s.poll_event() {
                    closed |= matches!(ev, ServerEvent::Closed { .. });
                }
                (closed, s.state() == ServerState::Detached)
            };
            if closed {
                self.remove(&entry);
            } else if still_detached {
                waiting.push(entry);
            }
        }
        self.detached_list().extend(waiting);
    }
}

/// [`Hub::publish`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubPublishError {
    /// The channel name is invalid.
    #[error(transparent)]
    Channel(#[from] InvalidChannelName),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

async fn refuse<T: Transport>(transport: &mut T, codec: &dyn FrameCodec, e: &ProtocolError) {
    debug!(error = %e, "refusing connection");
    for frame in ServerSession::refusal(codec, e) {
        if transport.send(frame).await.is_err() {
            return;
        }
    }
    let _ = transport.close(e.close_code(), &e.to_string()).await;
}

/// How long a connection whose transport ended on its own gets to send its close frame.
/// The transport ended on its own (the peer closed, sent bad WebSocket data, or
/// the socket failed): let it finish closing, so the peer gets the reply to its
/// close frame or learns why (WebSocket 1007 after invalid UTF-8, 1009 after a
/// message over the limit). Bounded, because a peer that does not read could
/// otherwise hold the task forever.
async fn finish_close<T: Transport>(transport: &mut T) {
    let close = transport.close(CloseCode::INTERNAL, "transport failed");
    if tokio::time::timeout(tidings_runtime::CLOSE_GRACE, close)
        .await
        .is_err()
    {
        debug!("close after transport failure timed out");
    }
}

fn new_ids(n: u64) -> (SessionId, ResumeToken) {
    let mut secret = [0u8; 16];
    if getrandom::fill(&mut secret).is_err() {
        // No OS randomness: fall back to a unique but guessable token, loudly.
        warn!("getrandom failed; resume tokens are not secret");
        secret[..8].copy_from_slice(&n.to_le_bytes());
    }
    let hex = hex(&secret);
    (SessionId(format!("s{n}-{}", &hex[..8])), ResumeToken(hex))
}

/// Lower-case hex of `bytes`, in one allocation (not a `format!` per byte:
/// every new connection makes two of these).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// One connection's view of its session, driven by the pump.
#[repr(C)] // what every pump turn reads first and together
struct Conn {
    entry: Arc<Entry>,
    epoch: u64,
    /// `close` is set (checked on every pump turn without locking).
    closing: AtomicBool,
    /// The hub's broker when it is the in-memory one, which publishes
    /// synchronously (see `handle_inputs`).
    sync_broker: Option<Arc<MemoryBroker>>,
    /// The hub's extensions when the connection attached.
    extensions: Arc<[Arc<dyn HubExtension>]>,
    /// The broker's handle to the channel this connection last published to
    /// (a client usually publishes to few channels, often to one). A mutex
    /// only because the pump hands its target out by `&`; only this
    /// connection's task takes it, so it is never contended.
    publish_cache: Mutex<PublishCache>,
    /// This connection's codec (frames it received after a takeover are
    /// still decoded with it).
    codec: Arc<dyn FrameCodec>,
    close: Mutex<Option<(u16, String)>>,
    /// Who the connection is (for RPC authorization).
    identity: Option<Identity>,
    /// The connection's RPC calls (see [`RpcService`]).
    rpc: Mutex<Option<Box<dyn RpcConnection>>>,
    /// The hub's publish latency histogram (timed only while enabled).
    latency: Arc<PublishLatency>,
}

impl Conn {
    /// False while another connection of the session has a publish in hand
    /// (`Entry::publishing`): events wait (they are in order), and that
    /// connection wakes this one when done.
    fn events_unblocked(&self) -> bool {
        let holder = self.entry.publishing.load(Ordering::Acquire);
        holder == 0 || holder == self.epoch
    }

    /// Frames this connection received before its session was resumed on
    /// another one: handled if they still come first (see
    /// [`ServerSession::handle_late_input`]), then the new connection is
    /// woken for what they produced (events, answers).
    fn handle_late_inputs(&self, now: Instant, inputs: &mut Vec<Bytes>) {
        let total = inputs.len();
        let mut handled = 0usize;
        {
            let mut s = self.entry.lock();
            for input in inputs.drain(..) {
                match s.handle_late_input(now, &*self.codec, input) {
                    Ok(true) => handled += 1,
                    Ok(false) | Err(_) => break,
                }
            }
        }
        debug!(
            handled,
            dropped = total - handled,
            "frames received before the takeover"
        );
        if handled > 0 {
            self.entry.wake();
        }
    }

    /// Whether an extension serves `channel` (its publishes go through
    /// `Hub::publish_for`, not the broker).
    fn owned(&self, channel: &ChannelName) -> bool {
        self.extensions.iter().any(|e| e.owns(channel))
    }
}

impl PumpTarget for Conn {
    fn poll_transmit(&self) -> Option<Bytes> {
        let mut s = self.entry.lock();
        if s.epoch() != self.epoch {
            return None;
        }
        s.poll_transmit()
    }

    fn poll_transmit_more(&self) -> Option<(Bytes, bool)> {
        let mut s = self.entry.lock();
        if s.epoch() != self.epoch {
            return None;
        }
        let frame = s.poll_transmit()?;
        Some((frame, s.has_transmit()))
    }

    fn handle_inputs(&self, now: Instant, inputs: &mut Vec<Bytes>) {
        // With an in-memory broker, publishes go out right here: no trip out of
        // the pump. Deliveries to this very session need no wake-up: the pump
        // writes them next. The session lock is not held while publishing
        // (fan-out locks every receiving session, this one included); the
        // publish to make is taken under the lock that handled the input,
        // with whether another follows, so one publish costs one lock.
        // Publishes are taken only on this connection's publish turn (the
        // order of a session's publishes at the broker); if another
        // connection of this session has one in hand (a takeover), they stay
        // queued until it gives the turn back and wakes this one.
        let turn;
        let (broker, mut next) = {
            let mut s = self.entry.lock();
            if s.epoch() != self.epoch {
                drop(s);
                return self.handle_late_inputs(now, inputs);
            }
            for input in inputs.drain(..) {
                if s.handle_input(now, input).is_err() {
                    break;
                }
            }
            let Some(broker) = &self.sync_broker else {
                return;
            };
            turn = PublishTurn::take(&self.entry, self.epoch);
            if turn.is_none() {
                return;
            }
            (broker, s.poll_publish_except(&|c| self.owned(c)))
        };
        loop {
            let Some((channel, payload, more)) = next.take() else {
                return;
            };
            self.entry.handling.store(self.epoch, Ordering::Release);
            let started = self.latency.is_enabled().then(std::time::Instant::now);
            broker.publish_cached(
                &mut self.publish_cache.lock().unwrap_or_else(|p| p.into_inner()),
                &channel,
                compact(payload),
            );
            if let Some(t) = started {
                self.latency.record(t.elapsed());
            }
            self.entry.handling.store(0, Ordering::Release);
            if more {
                let mut s = self.entry.lock();
                if s.epoch() != self.epoch {
                    return;
                }
                next = s.poll_publish_except(&|c| self.owned(c));
            }
        }
    }

    fn handle_timeout(&self, now: Instant) {
        let mut s = self.entry.lock();
        if s.epoch() == self.epoch {
            s.handle_timeout(now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.entry.lock().poll_timeout()
    }

    fn register(&self, waker: &Waker) {
        // The session's waker is one slot: a superseded connection (still
        // closing) must not take it from the current one, or fan-out would
        // wake the dead connection while the live one sleeps.
        // Under the session lock, so no resume can slip in between the check
        // and the registration.
        let mut slot = self.entry.lock();
        if slot.epoch() == self.epoch && !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
    }

    fn close_request(&self) -> Option<(u16, String)> {
        if self.closing.load(Ordering::Acquire)
            && let Some(c) = self.close.lock().unwrap_or_else(|p| p.into_inner()).clone()
        {
            return Some(c);
        }
        if self.entry.current.load(Ordering::Acquire) != self.epoch {
            return Some((
                CloseCode::SUPERSEDED,
                "session resumed on another connection".into(),
            ));
        }
        None
    }

    fn transport_failed(&self, now: Instant, error: Option<TransportError>) {
        debug!(error = ?error, "transport ended");
        let mut s = self.entry.lock();
        if s.epoch() == self.epoch {
            s.detach(now);
        }
    }

    fn has_events(&self) -> bool {
        let s = self.entry.lock();
        s.epoch() == self.epoch && s.has_events() && self.events_unblocked()
    }

    fn prepare(&self, waker: &Waker) -> Prepared {
        // `register`, `poll_timeout`, `has_events` and a look at the transmit
        // queue under one lock: the pump asks on every poll.
        let mut slot = self.entry.lock();
        let current = slot.epoch() == self.epoch;
        if current && !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
        Prepared {
            deadline: slot.poll_timeout(),
            has_events: current && slot.has_events() && self.events_unblocked(),
            may_transmit: current && slot.has_transmit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_counter_and_lower_case_hex_of_the_secret() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let (id, token) = new_ids(42);
        assert_eq!(token.0.len(), 32);
        assert!(
            token
                .0
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{token:?}"
        );
        assert_eq!(id.0, format!("s42-{}", &token.0[..8]));
        assert_ne!(new_ids(42).1, token, "tokens are random");
    }
}
