//! The `tidings-pump` server kind: tidings' `WsServer`, `WsTransport` and pump around a target that sends every frame back, i.e. the tidings server without the hub.
//!
//! Beside `tidings-ws-raw` (the same server with the bare tungstenite stream) it tells
//! what the transport and the pump cost; beside `tidings`, what the hub costs.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Waker;

use bytes::Bytes;
use tidings_protocol::Instant;
use tidings_runtime::{PumpTarget, TokioTimer, TransportError, pump};
use tidings_ws::Accepted;

/// Frames received and not yet sent back.
#[derive(Default)]
struct Echo(Mutex<VecDeque<Bytes>>);

impl Echo {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PumpTarget for Echo {
    fn poll_transmit(&self) -> Option<Bytes> {
        self.queue().pop_front()
    }

    fn handle_inputs(&self, _: Instant, inputs: &mut Vec<Bytes>) {
        self.queue().extend(inputs.drain(..));
    }

    fn handle_timeout(&self, _: Instant) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    // Nothing outside the connection's task queues frames: no waker to keep.
    fn register(&self, _: &Waker) {}

    fn close_request(&self) -> Option<(u16, String)> {
        None
    }

    fn transport_failed(&self, _: Instant, _: Option<TransportError>) {}
}

/// Serves one connection until it ends.
pub(crate) async fn serve(conn: Accepted) {
    let (mut transport, _codec, _shutdown) = conn.into_transport();
    let mut timer = TokioTimer::default();
    pump(&Echo::default(), &mut transport, &mut timer, Instant::now).await;
}
