//! The hook through which an RPC layer (`tidings-rpc`) serves calls on a hub's sessions: [`RpcService`], [`RpcConnection`], [`RpcLink`].
//!
//! A hub with a service installed ([`crate::Hub::set_rpc`]) opens one
//! [`RpcConnection`] per connection, at its first RPC frame, with the
//! connection's [`Identity`]; it hands it every RPC frame the client sends
//! and drops it when the connection ends (which must cancel the calls still
//! running). Answers go back through the [`RpcLink`], into the same session
//! queue as everything else the client receives.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tidings_protocol::RpcFrame;

use crate::hub::Entry;
use crate::identity::Identity;

/// Serves RPC on a hub's connections.
pub trait RpcService: Send + Sync + 'static {
    /// A connection sent its first RPC frame: the state of its calls.
    fn connect(&self, link: RpcLink, identity: Option<Identity>) -> Box<dyn RpcConnection>;
}

/// The RPC state of one connection; dropped when the connection ends.
pub trait RpcConnection: Send + 'static {
    /// The client sent an RPC frame.
    fn on_frame(&mut self, frame: RpcFrame);
}

/// Sends RPC frames to one connection of a session; cheap to clone.
#[derive(Clone)]
pub struct RpcLink {
    pub(crate) entry: Arc<Entry>,
    pub(crate) epoch: u64,
}

impl std::fmt::Debug for RpcLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcLink")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl RpcLink {
    /// Queues `frame` for the client and wakes its connection. False when
    /// that connection is gone (closed, or the session moved to another one).
    pub fn send(&self, frame: RpcFrame) -> bool {
        let (sent, waker) = {
            let mut s = self.entry.lock();
            if s.epoch() != self.epoch {
                return false;
            }
            let sent = s.send_rpc(frame);
            let busy = self.entry.handling.load(Ordering::Acquire) == self.epoch;
            (sent, if busy { None } else { s.waker.clone() })
        };
        if let Some(w) = waker {
            w.wake();
        }
        sent
    }

    /// Bytes queued for the client (everything, not only RPC frames).
    pub fn queued_bytes(&self) -> usize {
        self.entry.lock().queued_bytes()
    }
}
