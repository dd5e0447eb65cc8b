//! The client driver: runs a `ClientSession` over reconnecting transports (shared by native and wasm).

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use futures_util::task::AtomicWaker;
use tidings_core::{
    BoxFuture, ClientSession, ClientState, CloseCode, FrameCodec, Instant, PumpTarget, Timer,
    Transport, TransportError, pump,
};

/// Events buffered for the application before the driver stops reading.
const MAX_PENDING_EVENTS: usize = 4096;

/// Session state shared by the [`crate::Client`] handle and its driver task.
#[derive(Debug)]
pub(crate) struct Shared {
    session: Mutex<ClientSession>,
    driver: AtomicWaker,
    app: AtomicWaker,
}

impl Shared {
    pub(crate) fn new(session: ClientSession) -> Self {
        Self {
            session: Mutex::new(session),
            driver: AtomicWaker::new(),
            app: AtomicWaker::new(),
        }
    }

    /// Locks the session (a poisoned lock still holds a consistent session:
    /// every method leaves it valid between calls).
    pub(crate) fn lock(&self) -> MutexGuard<'_, ClientSession> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn wake_driver(&self) {
        self.driver.wake();
    }

    pub(crate) fn register_app(&self, waker: &Waker) {
        self.app.register(waker);
    }

    fn wake_app_if_events(&self, session: &ClientSession) {
        if session.pending_events() > 0 {
            self.app.wake();
        }
    }

    /// Called by the app after taking an event: resume reading if it was paused.
    pub(crate) fn event_taken(&self, remaining: usize) {
        if remaining + 1 >= MAX_PENDING_EVENTS {
            self.driver.wake();
        }
    }
}

impl PumpTarget for Shared {
    fn poll_transmit(&self) -> Option<bytes::Bytes> {
        self.lock().poll_transmit()
    }

    fn handle_inputs(&self, now: Instant, inputs: &mut Vec<bytes::Bytes>) {
        let mut s = self.lock();
        for input in inputs.drain(..) {
            if s.handle_input(now, input).is_err() || !s.has_transport() {
                break;
            }
        }
        self.wake_app_if_events(&s);
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
        let reason = match error {
            Some(e) => e.to_string(),
            None => "connection closed".to_string(),
        };
        s.on_transport_down(now, reason);
        self.wake_app_if_events(&s);
    }

    fn read_paused(&self) -> bool {
        self.lock().pending_events() >= MAX_PENDING_EVENTS
    }
}

/// A connected transport and the codec it negotiated.
pub(crate) type Connected = (Box<dyn Transport>, Arc<dyn FrameCodec>);

/// What the driver needs from the platform (tokio or the browser).
pub(crate) trait Platform: 'static {
    type Timer: Timer;
    fn timer(&self) -> Self::Timer;
    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>>;
}

/// Runs the session until it is closed: connect, pump, back off, reconnect.
pub(crate) async fn drive<P: Platform>(shared: Arc<Shared>, platform: P) {
    let mut timer = platform.timer();
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
        let connected = platform.connect().await;
        let now = Instant::now();
        match connected {
            Ok((mut transport, codec)) => {
                shared.lock().on_transport_up(now, codec);
                tracing::debug!("transport up");
                pump(&*shared, &mut transport, &mut timer, Instant::now).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                let mut s = shared.lock();
                s.on_transport_down(now, format!("connect failed: {e}"));
                shared.wake_app_if_events(&s);
            }
        }
    }
    shared.app.wake();
}
