//! The client driver shared by every transport crate: a `ClientSession` behind a handle, run over reconnecting transports by [`drive`].
//!
//! A transport crate supplies a [`Connector`] (how to open one connection, and
//! a [`Timer`] of its runtime); [`drive`] connects, runs the [`pump`], backs
//! off and reconnects until the session is closed. The application talks to
//! the same session through [`SharedClient`] (subscribe, publish, next event).
//! No runtime here: tokio (`TokioTimer`) or the browser's event loop
//! (`WasmTimer`, feature `wasm`) come from the connector.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::Bytes;
use web_time::Instant;

use tidings_protocol::{
    ChannelName, ClientConfig, ClientEvent, ClientSession, ClientState, CloseCode, FrameCodec,
    RpcFrame, SessionError,
};

use crate::error::TransportError;
use crate::pump::{Prepared, PumpTarget, pump};
use crate::timer::Timer;
use crate::transport::{BoxFuture, Transport};

/// Events buffered for the application before the driver stops reading.
const MAX_PENDING_EVENTS: usize = 4096;

/// One waker, replaced on registration and taken on wake (an `AtomicWaker`
/// on a mutex: registrations and wakes are per batch, not per byte).
#[derive(Debug, Default)]
struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    fn register(&self, waker: &Waker) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        let taken = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = taken {
            w.wake();
        }
    }
}

/// What a layer built on the session (the RPC client of `tidings-rpc`) is
/// told: RPC frames as they arrive, and the end of each connection (calls
/// live on one connection).
///
/// Called by the driver outside the session lock: a handler may call
/// [`SharedClient::send_rpc`].
pub trait RpcHandler: Send + Sync + 'static {
    /// An RPC frame arrived.
    fn on_rpc(&self, frame: RpcFrame);
    /// The connection went away (or the session closed): open calls fail.
    fn on_disconnect(&self);
}

/// A [`ClientSession`] shared by the application's handle and the driver task.
///
/// The methods are what a transport crate's `Client` exposes: they update the
/// session and wake the driver. A poisoned lock still holds a consistent
/// session (every session method leaves it valid between calls).
#[derive(Debug)]
pub struct SharedClient {
    session: Mutex<ClientSession>,
    driver: WakerSlot,
    app: WakerSlot,
    rpc: Mutex<Option<Arc<dyn RpcHandler>>>,
}

impl std::fmt::Debug for dyn RpcHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RpcHandler")
    }
}

impl SharedClient {
    /// Shares `session`.
    pub fn new(session: ClientSession) -> Self {
        Self {
            session: Mutex::new(session),
            driver: WakerSlot::default(),
            app: WakerSlot::default(),
            rpc: Mutex::new(None),
        }
    }

    /// A new session with `config`, wanting to connect at once; the backoff
    /// jitter is seeded from the clock, so clients started together spread out.
    ///
    /// Without a [`ClientConfig::publisher_id`], the session gets a random
    /// one (128 bits from the clock, a process-wide counter and addresses,
    /// mixed), so a publish re-sent to another server after a failover is
    /// stored once.
    pub fn with_config(mut config: ClientConfig) -> Self {
        // Jitter only needs to differ between clients; the clock's low bits do.
        let seed = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seed = seed ^ (std::ptr::addr_of!(seed) as u64).rotate_left(32);
        if config.publisher_id.is_none() {
            config.publisher_id = Some(publisher_id(seed));
        }
        Self::new(ClientSession::new(config, seed, Instant::now()))
    }

    /// Locks the session.
    pub fn lock(&self) -> MutexGuard<'_, ClientSession> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the driver (after changing the session from outside it).
    pub fn wake_driver(&self) {
        self.driver.wake();
    }

    fn wake_app_if_events(&self, session: &ClientSession) {
        if session.pending_events() > 0 {
            self.app.wake();
        }
    }

    /// Installs the handler of received RPC frames (replacing any earlier one).
    pub fn set_rpc_handler(&self, handler: Arc<dyn RpcHandler>) {
        *self.rpc.lock().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    fn rpc_handler(&self) -> Option<Arc<dyn RpcHandler>> {
        self.rpc.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends an RPC frame on the open connection (see [`ClientSession::send_rpc`]).
    pub fn send_rpc(&self, frame: RpcFrame) -> Result<(), SessionError> {
        self.lock().send_rpc(Instant::now(), frame)?;
        self.wake_driver();
        Ok(())
    }

    /// Hands received RPC frames to the handler, outside the session lock.
    fn dispatch_rpc(&self, frames: Vec<RpcFrame>) {
        if frames.is_empty() {
            return;
        }
        if let Some(h) = self.rpc_handler() {
            for f in frames {
                h.on_rpc(f);
            }
        }
    }

    fn rpc_disconnected(&self) {
        if let Some(h) = self.rpc_handler() {
            h.on_disconnect();
        }
    }

    /// Subscribes to `channel`; kept across reconnects.
    pub fn subscribe(&self, channel: &str) -> Result<(), SessionError> {
        let mut session = self.lock();
        let channel = session.channel(channel)?;
        session.subscribe(Instant::now(), channel)?;
        drop(session);
        self.wake_driver();
        Ok(())
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), SessionError> {
        let channel = ChannelName::new(channel)?;
        self.lock().unsubscribe(Instant::now(), &channel);
        self.wake_driver();
        Ok(())
    }

    /// Publishes `payload` on `channel` (see [`ClientSession::publish`]).
    pub fn publish(&self, channel: &str, payload: Bytes) -> Result<u64, SessionError> {
        let mut session = self.lock();
        let channel = session.channel(channel)?;
        let seq = session.publish(Instant::now(), channel, payload)?;
        drop(session);
        self.wake_driver();
        Ok(seq)
    }

    /// The next event; `None` once the session is closed and every event was read.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        poll_fn(|cx| {
            self.app.register(cx.waker());
            let mut s = self.lock();
            if let Some(ev) = s.poll_event() {
                let remaining = s.pending_events();
                drop(s);
                if remaining + 1 >= MAX_PENDING_EVENTS {
                    // The driver may have paused reading: resume it.
                    self.driver.wake();
                }
                return Poll::Ready(Some(ev));
            }
            if s.state() == ClientState::Closed {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// The session's state.
    pub fn state(&self) -> ClientState {
        self.lock().state()
    }

    /// Publishes not yet acknowledged by the server.
    pub fn unacked(&self) -> usize {
        self.lock().unacked_len()
    }

    /// Ends the session (sends `Close` when connected). Idempotent.
    pub fn close(&self) {
        {
            let mut s = self.lock();
            if s.state() != ClientState::Closed {
                s.close(Instant::now(), "client closed");
            }
        }
        self.rpc_disconnected();
        self.wake_driver();
    }
}

impl PumpTarget for SharedClient {
    fn poll_transmit(&self) -> Option<Bytes> {
        self.lock().poll_transmit()
    }

    fn poll_transmit_more(&self) -> Option<(Bytes, bool)> {
        let mut s = self.lock();
        let frame = s.poll_transmit()?;
        Some((frame, s.has_transmit()))
    }

    fn handle_inputs(&self, now: Instant, inputs: &mut Vec<Bytes>) {
        let mut s = self.lock();
        for input in inputs.drain(..) {
            if s.handle_input(now, input).is_err() || !s.has_transport() {
                break;
            }
        }
        self.wake_app_if_events(&s);
        let mut rpc = Vec::new();
        while let Some(f) = s.poll_rpc() {
            rpc.push(f);
        }
        let down = !s.has_transport();
        drop(s);
        self.dispatch_rpc(rpc);
        if down {
            self.rpc_disconnected();
        }
    }

    fn handle_timeout(&self, now: Instant) {
        let mut s = self.lock();
        s.handle_timeout(now);
        self.wake_app_if_events(&s);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    fn register(&self, waker: &Waker) {
        self.driver.register(waker);
    }

    fn close_request(&self) -> Option<(u16, String)> {
        match self.lock().state() {
            ClientState::Handshaking | ClientState::Open => None,
            ClientState::Closed => Some((CloseCode::NORMAL, "client closed".into())),
            _ => Some((CloseCode::NORMAL, "reconnecting".into())),
        }
    }

    fn transport_failed(&self, now: Instant, error: Option<TransportError>) {
        let mut s = self.lock();
        match error {
            Some(e) if e.is_switch() => s.on_transport_switch(now, e.to_string()),
            Some(e) => s.on_transport_down(now, e.to_string()),
            None => s.on_transport_down(now, "connection closed"),
        }
        self.wake_app_if_events(&s);
        drop(s);
        self.rpc_disconnected();
    }

    fn read_paused(&self) -> bool {
        self.lock().pending_events() >= MAX_PENDING_EVENTS
    }

    fn prepare(&self, waker: &Waker) -> Prepared {
        self.driver.register(waker);
        let s = self.lock();
        Prepared {
            deadline: s.poll_timeout(),
            has_events: false,
            may_transmit: s.has_transmit(),
        }
    }
}

/// A connected transport and the codec it negotiated.
pub type Connected = (Box<dyn Transport>, Arc<dyn FrameCodec>);

/// How a transport crate opens connections for [`drive`], on its runtime.
pub trait Connector: 'static {
    /// The runtime's timer.
    type Timer: Timer;
    /// A new timer.
    fn timer(&self) -> Self::Timer;
    /// Opens one connection (including any handshake) and returns it with its codec.
    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>>;
}

/// Runs the session until it is closed: connect, pump, back off, reconnect.
pub async fn drive<C: Connector>(shared: Arc<SharedClient>, connector: C) {
    let mut timer = connector.timer();
    loop {
        let deadline = {
            let s = shared.lock();
            if s.state() == ClientState::Closed {
                break;
            }
            s.poll_timeout()
        };
        // Wait for the reconnect time (or a close).
        timer.reset(deadline);
        poll_fn(|cx| {
            shared.driver.register(cx.waker());
            let s = shared.lock();
            if s.state() == ClientState::Closed || s.wants_connect(Instant::now()) {
                return Poll::Ready(());
            }
            drop(s);
            timer.poll_elapsed(cx)
        })
        .await;
        {
            let mut s = shared.lock();
            if s.state() == ClientState::Closed {
                break;
            }
            if !s.wants_connect(Instant::now()) {
                continue;
            }
            s.on_connecting();
        }
        let connected = connector.connect().await;
        let now = Instant::now();
        match connected {
            Ok((mut transport, codec)) => {
                // Connection events are logged by the connector; the session reports
                // them to the application as `Connected` / `Disconnected` events.
                shared.lock().on_transport_up(now, codec);
                pump(&*shared, &mut transport, &mut timer, Instant::now).await;
            }
            Err(e) => {
                let mut s = shared.lock();
                s.on_transport_down(now, format!("connect failed: {e}"));
                shared.wake_app_if_events(&s);
            }
        }
    }
    shared.app.wake();
}

/// A random-enough publisher id: two splitmix64 rounds over the seed, a
/// process-wide counter and the address of a fresh allocation, as 32 hex digits.
fn publisher_id(seed: u64) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let heap = Box::new(n);
    let addr = std::ptr::addr_of!(*heap) as u64;
    let a = mix(seed ^ mix(n));
    let b = mix(a ^ addr.rotate_left(17) ^ mix(seed.rotate_left(29)));
    format!("{a:016x}{b:016x}")
}
