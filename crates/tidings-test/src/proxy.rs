//! Real TCP fault-injection proxy on tokio: delay line, abrupt resets (also mid-frame), refused connections.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:0` and forwards every accepted
//! connection to an upstream address, in both directions, over real sockets.
//! Faults are injected through `&self` methods that may be called from any task
//! or thread; [`FaultProxy::handle`] gives a cheap clone-able [`ProxyHandle`]
//! with the same controls.
//!
//! How it works, per proxied connection (one tokio task):
//!
//! * each direction has a reader that reads chunks of at most
//!   [`READ_BUF_SIZE`] bytes, stamps each chunk with the instant it becomes due
//!   (`read time + current delay`) and queues it, and a writer that writes
//!   chunks in order once they are due. This is a delay line: latency is added
//!   without throttling throughput (up to [`QUEUE_CHUNKS`] chunks in flight per
//!   direction);
//! * a cut sets a per-connection flag (so no further chunk is written), wakes
//!   the connection task, which drops everything still queued, sets `SO_LINGER`
//!   to zero on both sockets and closes them: both peers receive a TCP RST;
//! * a clean end of stream on one side is forwarded as a FIN (half-close) after
//!   the queued bytes; an I/O error on either side resets both sides.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

/// Size of the read buffer of each direction of each connection: the largest
/// chunk the proxy forwards at once.
pub const READ_BUF_SIZE: usize = 16 * 1024;

/// Number of chunks that may be queued in the delay line of one direction
/// before the proxy stops reading from the sender (backpressure).
pub const QUEUE_CHUNKS: usize = 1024;

/// How long [`FaultProxy::cut_mid_frame`] waits for server-to-client data
/// before falling back to [`FaultProxy::cut_all`].
pub const MID_FRAME_FALLBACK: Duration = Duration::from_secs(2);

/// Counters of a [`FaultProxy`], from [`FaultProxy::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted on the listen socket (including refused ones).
    pub accepted: u64,
    /// Connections accepted and immediately reset because refuse mode was on.
    pub refused: u64,
    /// Proxied connections currently open (neither ended nor cut).
    pub open: u64,
    /// Cut operations performed: [`FaultProxy::cut_all`] calls plus completed
    /// [`FaultProxy::cut_mid_frame`] cuts (mid-frame or fallback).
    pub cuts: u64,
    /// Connections reset by cut operations.
    pub connections_cut: u64,
    /// Bytes written to the upstream server (client → server).
    pub bytes_client_to_server: u64,
    /// Bytes written to clients (server → client).
    pub bytes_server_to_client: u64,
}

/// How a [`FaultProxy::cut_mid_frame`] cut happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MidFrameCut {
    /// A server-to-client chunk was forwarded only in part, then every live
    /// connection was reset.
    MidFrame {
        /// Bytes of the cut chunk that were written to the client (at least 1).
        forwarded: usize,
        /// Bytes of the cut chunk that were discarded (0 only for a 1-byte chunk).
        discarded: usize,
        /// Connections reset by the cut (including the one that carried the chunk).
        connections: usize,
    },
    /// No server-to-client data flowed within [`MID_FRAME_FALLBACK`]; every
    /// live connection was reset as by [`FaultProxy::cut_all`].
    Fallback {
        /// Connections reset by the cut.
        connections: usize,
    },
    /// The proxy was dropped before the cut happened.
    ProxyClosed,
}

/// A running TCP fault-injection proxy. Dropping it stops listening and resets
/// every live proxied connection.
pub struct FaultProxy {
    handle: ProxyHandle,
    accept_task: JoinHandle<()>,
}

/// A clone-able control handle for a [`FaultProxy`]. It does not keep the
/// proxy alive: once the proxy is dropped, the controls are no-ops.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    runtime: tokio::runtime::Handle,
    delay_nanos: AtomicU64,
    refuse: AtomicBool,
    next_id: AtomicU64,
    /// Live connections and the closed flag, under one lock so that no
    /// connection can be registered after the proxy is dropped.
    conns: Mutex<Conns>,
    /// Fast check for writers; the truth is `mid_frame`.
    mid_frame_armed: AtomicBool,
    mid_frame: Mutex<Option<MidFrameArm>>,
    mid_frame_generation: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    connections_cut: AtomicU64,
    bytes_c2s: AtomicU64,
    bytes_s2c: AtomicU64,
}

#[derive(Default)]
struct Conns {
    closed: bool,
    live: HashMap<u64, Arc<ConnCtl>>,
}

struct MidFrameArm {
    generation: u64,
    waiters: Vec<oneshot::Sender<MidFrameCut>>,
}

/// Per-connection cut signal.
struct ConnCtl {
    cut: AtomicBool,
    wake: Notify,
}

impl ConnCtl {
    /// Marks the connection as cut; returns false if it already was.
    fn cut(&self) -> bool {
        let first = !self.cut.swap(true, Ordering::SeqCst);
        // notify_one stores a permit, so the wake-up is not lost if the
        // connection task is not waiting right now.
        self.wake.notify_one();
        first
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets `SO_LINGER` to zero so that closing the socket sends a RST and
/// discards unsent data.
#[allow(deprecated)] // `set_zero_linger` needs tokio 1.50; the workspace floor is 1.40. Zero linger never blocks.
fn arm_reset(stream: &TcpStream) {
    if let Err(e) = stream.set_linger(Some(Duration::ZERO)) {
        debug!(error = %e, "fault proxy: could not set SO_LINGER=0");
    }
}

/// Closes `stream` with a RST.
fn reset(stream: TcpStream) {
    arm_reset(&stream);
    drop(stream);
}

impl FaultProxy {
    /// Starts a proxy listening on `127.0.0.1:0` that forwards every accepted
    /// connection to `upstream`. Must be called within a tokio runtime; the
    /// proxy's tasks run on that runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            upstream,
            runtime: tokio::runtime::Handle::current(),
            delay_nanos: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(Conns::default()),
            mid_frame_armed: AtomicBool::new(false),
            mid_frame: Mutex::new(None),
            mid_frame_generation: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            connections_cut: AtomicU64::new(0),
            bytes_c2s: AtomicU64::new(0),
            bytes_s2c: AtomicU64::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        debug!(%addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            handle: ProxyHandle { shared },
            accept_task,
        })
    }

    /// A clone-able handle with the same controls, usable from other tasks
    /// and threads.
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }

    /// The address the proxy listens on; connect clients here.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// The upstream address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.handle.upstream()
    }

    /// See [`ProxyHandle::set_delay`].
    pub fn set_delay(&self, delay: Duration) {
        self.handle.set_delay(delay);
    }

    /// See [`ProxyHandle::delay`].
    pub fn delay(&self) -> Duration {
        self.handle.delay()
    }

    /// See [`ProxyHandle::cut_all`].
    pub fn cut_all(&self) -> usize {
        self.handle.cut_all()
    }

    /// See [`ProxyHandle::cut_mid_frame`].
    pub fn cut_mid_frame(&self) -> impl Future<Output = MidFrameCut> + Send + 'static {
        self.handle.cut_mid_frame()
    }

    /// See [`ProxyHandle::set_refuse`].
    pub fn set_refuse(&self, refuse: bool) {
        self.handle.set_refuse(refuse);
    }

    /// See [`ProxyHandle::stats`].
    pub fn stats(&self) -> ProxyStats {
        self.handle.stats()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        let shared = &self.handle.shared;
        let conns = {
            let mut guard = lock(&shared.conns);
            guard.closed = true;
            std::mem::take(&mut guard.live)
        };
        for ctl in conns.values() {
            ctl.cut();
        }
        // Pending mid-frame waiters see `ProxyClosed`.
        shared.mid_frame_armed.store(false, Ordering::SeqCst);
        drop(lock(&shared.mid_frame).take());
        debug!(addr = %shared.addr, "fault proxy stopped");
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.handle.shared.addr)
            .field("upstream", &self.handle.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The upstream address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Delays every chunk forwarded from now on, in both directions, by
    /// `delay`. Chunks keep their order; throughput is not throttled (a delay
    /// line, not a sleep before each read). Chunks already queued keep the due
    /// time they were stamped with. `Duration::ZERO` turns delay off.
    pub fn set_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// The delay currently applied to newly read chunks.
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }

    /// Abruptly kills every live proxied connection: bytes not yet forwarded
    /// are discarded and both sockets are closed with a RST (`SO_LINGER` = 0).
    /// No chunk is written on a cut connection after this returns; the resets
    /// themselves are sent by the connection tasks right after. Returns the
    /// number of connections cut.
    pub fn cut_all(&self) -> usize {
        self.shared.cut_all()
    }

    /// Arms a cut that lands inside application data: the next chunk written
    /// server → client (on any connection) is forwarded only in part (its
    /// first half, at least 1 byte), then every live connection is reset as by
    /// [`cut_all`](Self::cut_all). If no server-to-client chunk is written
    /// within [`MID_FRAME_FALLBACK`] of this call, it falls back to `cut_all`.
    ///
    /// The cut is armed when this method is called, not when the returned
    /// future is first polled, so callers can arm it, then provoke traffic,
    /// then await it. The future resolves once the cut has happened; dropping
    /// it does not disarm the cut. Calling this again while a cut is armed
    /// joins that cut.
    pub fn cut_mid_frame(&self) -> impl Future<Output = MidFrameCut> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let mut spawn_fallback = None;
        {
            let mut arm = lock(&self.shared.mid_frame);
            if lock(&self.shared.conns).closed {
                drop(tx);
            } else if let Some(arm) = arm.as_mut() {
                arm.waiters.push(tx);
            } else {
                let generation = self
                    .shared
                    .mid_frame_generation
                    .fetch_add(1, Ordering::SeqCst);
                *arm = Some(MidFrameArm {
                    generation,
                    waiters: vec![tx],
                });
                self.shared.mid_frame_armed.store(true, Ordering::SeqCst);
                spawn_fallback = Some(generation);
            }
        }
        if let Some(generation) = spawn_fallback {
            let weak = Arc::downgrade(&self.shared);
            self.shared
                .runtime
                .spawn(mid_frame_fallback(weak, generation));
        }
        async move { rx.await.unwrap_or(MidFrameCut::ProxyClosed) }
    }

    /// While `true`, new incoming connections are accepted and immediately
    /// reset (link down). Existing connections are unaffected.
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// A snapshot of the proxy's counters.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        let open = lock(&s.conns).live.len() as u64;
        ProxyStats {
            accepted: s.accepted.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
            open,
            cuts: s.cuts.load(Ordering::SeqCst),
            connections_cut: s.connections_cut.load(Ordering::SeqCst),
            bytes_client_to_server: s.bytes_c2s.load(Ordering::SeqCst),
            bytes_server_to_client: s.bytes_s2c.load(Ordering::SeqCst),
        }
    }
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::SeqCst))
    }

    /// Cuts every live connection and counts one cut operation.
    fn cut_all(&self) -> usize {
        let live = std::mem::take(&mut lock(&self.conns).live);
        let n = live.values().filter(|ctl| ctl.cut()).count();
        self.cuts.fetch_add(1, Ordering::SeqCst);
        self.connections_cut.fetch_add(n as u64, Ordering::SeqCst);
        debug!(addr = %self.addr, connections = n, "fault proxy: cut all");
        n
    }

    /// Takes the armed mid-frame cut, if any (and if it is `generation`, when given).
    fn take_mid_frame(&self, generation: Option<u64>) -> Option<MidFrameArm> {
        if !self.mid_frame_armed.load(Ordering::SeqCst) {
            return None;
        }
        let mut guard = lock(&self.mid_frame);
        match (&*guard, generation) {
            (Some(arm), Some(g)) if arm.generation != g => None,
            (None, _) => None,
            _ => {
                self.mid_frame_armed.store(false, Ordering::SeqCst);
                guard.take()
            }
        }
    }

    fn register(&self, ctl: &Arc<ConnCtl>) -> Option<u64> {
        let mut conns = lock(&self.conns);
        if conns.closed {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        conns.live.insert(id, Arc::clone(ctl));
        Some(id)
    }

    fn deregister(&self, id: u64) {
        lock(&self.conns).live.remove(&id);
    }
}

async fn mid_frame_fallback(shared: Weak<Shared>, generation: u64) {
    tokio::time::sleep(MID_FRAME_FALLBACK).await;
    let Some(shared) = shared.upgrade() else {
        return;
    };
    if let Some(arm) = shared.take_mid_frame(Some(generation)) {
        debug!(addr = %shared.addr, "fault proxy: no server data for a mid-frame cut; cutting all");
        let connections = shared.cut_all();
        for waiter in arm.waiters {
            let _ = waiter.send(MidFrameCut::Fallback { connections });
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. EMFILE or ECONNABORTED: keep serving.
                debug!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            debug!(%peer, "fault proxy: refusing connection");
            reset(stream);
            continue;
        }
        let ctl = Arc::new(ConnCtl {
            cut: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let Some(id) = shared.register(&ctl) else {
            reset(stream);
            return;
        };
        tokio::spawn(run_connection(Arc::clone(&shared), id, ctl, stream));
    }
}

/// Why forwarding ended abnormally.
enum End {
    Cut,
    /// This connection carried the mid-frame cut; its waiters are told once
    /// the resets are sent.
    MidFrame(Vec<oneshot::Sender<MidFrameCut>>, MidFrameCut),
    Io(io::Error),
}

async fn run_connection(shared: Arc<Shared>, id: u64, ctl: Arc<ConnCtl>, mut client: TcpStream) {
    let connected = tokio::select! {
        biased;
        () = ctl.wake.notified() => None,
        r = TcpStream::connect(shared.upstream) => Some(r),
    };
    let mut upstream = match connected {
        Some(Ok(upstream)) => upstream,
        Some(Err(e)) => {
            debug!(error = %e, upstream = %shared.upstream, "fault proxy: upstream connect failed");
            reset(client);
            shared.deregister(id);
            return;
        }
        None => {
            reset(client);
            shared.deregister(id);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let result = tokio::select! {
        biased;
        () = ctl.wake.notified() => Err(End::Cut),
        r = forward_both(&shared, &ctl, &mut client, &mut upstream) => r,
    };
    match result {
        Ok(()) => {
            // Both directions ended cleanly; FINs were forwarded.
            drop(client);
            drop(upstream);
        }
        Err(end) => {
            reset(client);
            reset(upstream);
            match end {
                End::Cut => {}
                End::MidFrame(waiters, outcome) => {
                    for waiter in waiters {
                        let _ = waiter.send(outcome);
                    }
                }
                End::Io(e) => {
                    debug!(error = %e, "fault proxy: connection ended by I/O error; reset both sides");
                }
            }
        }
    }
    shared.deregister(id);
}

/// What travels down a delay line.
enum Item {
    Chunk(Vec<u8>),
    Failed(io::Error),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

async fn forward_both(
    shared: &Shared,
    ctl: &ConnCtl,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
) -> Result<(), End> {
    let (client_r, client_w) = client.split();
    let (upstream_r, upstream_w) = upstream.split();
    let c2s = forward(shared, ctl, client_r, upstream_w, Direction::ClientToServer);
    let s2c = forward(shared, ctl, upstream_r, client_w, Direction::ServerToClient);
    tokio::try_join!(c2s, s2c).map(|_| ())
}

/// One direction: a reader stamping chunks into a bounded queue, a writer
/// releasing them when due.
async fn forward(
    shared: &Shared,
    ctl: &ConnCtl,
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    direction: Direction,
) -> Result<(), End> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Item)>(QUEUE_CHUNKS);

    let read_side = async move {
        let mut buf = vec![0_u8; READ_BUF_SIZE];
        loop {
            let item = match from.read(&mut buf).await {
                // EOF: dropping `tx` lets the writer drain, then half-close.
                Ok(0) => return Ok::<(), End>(()),
                Ok(n) => Item::Chunk(buf[..n].to_vec()),
                // A read error (typically a RST) travels down the delay line
                // too: bytes read before it are still delivered, then the
                // connection is reset.
                Err(e) => Item::Failed(e),
            };
            let last = matches!(item, Item::Failed(_));
            let due = Instant::now() + shared.delay();
            if tx.send((due, item)).await.is_err() || last {
                return Ok(());
            }
        }
    };

    let write_side = async move {
        let counter = match direction {
            Direction::ClientToServer => &shared.bytes_c2s,
            Direction::ServerToClient => &shared.bytes_s2c,
        };
        while let Some((due, item)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if ctl.is_cut() {
                return Err(End::Cut);
            }
            let chunk = match item {
                Item::Chunk(chunk) => chunk,
                Item::Failed(e) => return Err(End::Io(e)),
            };
            if direction == Direction::ServerToClient
                && let Some(arm) = shared.take_mid_frame(None)
            {
                return Err(cut_inside_chunk(shared, &mut to, &chunk, counter, arm).await);
            }
            to.write_all(&chunk).await.map_err(End::Io)?;
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        to.shutdown().await.map_err(End::Io)?;
        Ok(())
    };

    tokio::try_join!(read_side, write_side).map(|_| ())
}

/// Carries out an armed mid-frame cut on `chunk`: writes its first half (at
/// least 1 byte), cuts every connection, and returns the [`End`] that makes the
/// connection task reset this connection and then tell the waiters.
async fn cut_inside_chunk(
    shared: &Shared,
    to: &mut WriteHalf<'_>,
    chunk: &[u8],
    counter: &AtomicU64,
    arm: MidFrameArm,
) -> End {
    let forwarded = (chunk.len() / 2).max(1);
    // Bounded: a client that never reads must not stall the cut.
    match tokio::time::timeout(MID_FRAME_FALLBACK, to.write_all(&chunk[..forwarded])).await {
        Ok(Ok(())) => {
            counter.fetch_add(forwarded as u64, Ordering::SeqCst);
        }
        Ok(Err(e)) => {
            debug!(error = %e, "fault proxy: partial write before mid-frame cut failed");
        }
        Err(_elapsed) => {
            debug!("fault proxy: partial write before mid-frame cut timed out");
        }
    }
    let connections = shared.cut_all();
    debug!(
        forwarded,
        chunk = chunk.len(),
        connections,
        "fault proxy: cut mid-frame"
    );
    let outcome = MidFrameCut::MidFrame {
        forwarded,
        discarded: chunk.len() - forwarded,
        connections,
    };
    End::MidFrame(arm.waiters, outcome)
}
