//! The state one call shares between its task and the connection: the credit of its outbound stream and the queue of the client's items (bidirectional calls), bounded by the credit the server granted.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use tidings_channels::RpcLink;
use tidings_protocol::{RpcCode, RpcFrame, RpcKind};
use tokio::sync::Semaphore;

use crate::RpcError;

/// One open call's shared state.
#[derive(Debug)]
pub(crate) struct CallShared {
    /// Items the server may still send to the client.
    pub(crate) credit: Semaphore,
    inbound: Mutex<InboundState>,
}

#[derive(Debug, Default)]
struct InboundState {
    items: VecDeque<Bytes>,
    waker: Option<Waker>,
    /// The client sent `end`.
    ended: bool,
    /// The handler took the items (and the client got its first credit).
    opened: bool,
    /// Items the client may still send: credit granted minus items received.
    granted: u32,
}

impl CallShared {
    pub(crate) fn new(credit: u32) -> Self {
        Self {
            credit: Semaphore::new(credit as usize),
            inbound: Mutex::new(InboundState::default()),
        }
    }

    fn inbound(&self) -> MutexGuard<'_, InboundState> {
        self.inbound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client `item`: queued when the client held credit for it; false when it held none
    /// (or the call takes no items): the client broke the rules.
    pub(crate) fn push(&self, payload: Bytes) -> bool {
        let mut s = self.inbound();
        if !s.opened || s.granted == 0 || s.ended {
            return false;
        }
        s.granted -= 1;
        s.items.push_back(payload);
        let w = s.waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        true
    }

    /// The client's `end`: its items stop after the queued ones.
    pub(crate) fn end(&self) {
        let mut s = self.inbound();
        s.ended = true;
        let w = s.waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// What a bidirectional call's context holds until the handler takes its items.
#[derive(Clone, Debug)]
pub(crate) struct InboundHandle {
    pub(crate) shared: Arc<CallShared>,
    pub(crate) link: RpcLink,
    pub(crate) call: u64,
    pub(crate) window: u32,
}

impl InboundHandle {
    pub(crate) fn take<T: DeserializeOwned>(&self) -> Option<Inbound<T>> {
        {
            let mut s = self.shared.inbound();
            if s.opened {
                return None;
            }
            s.opened = true;
            s.granted = self.window;
        }
        self.link.send(RpcFrame {
            call: self.call,
            kind: RpcKind::Credit { n: self.window },
        });
        Some(Inbound {
            handle: self.clone(),
            taken: 0,
            done: false,
            _item: PhantomData,
        })
    }
}

/// The client's items of a bidirectional call, in order, decoded as `T`.
///
/// The client sends at most the credit this side granted: a window of
/// `ServerOptions::inbound_window` items up front, and more as items are taken here (in
/// batches of half the window). A handler that reads slowly therefore holds at most one
/// window of the client's items, and the client waits meanwhile. The stream ends when the
/// client sends `end`; an item that does not decode is an `invalid_params` error item.
pub struct Inbound<T> {
    handle: InboundHandle,
    /// Items taken since credit was last granted.
    taken: u32,
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Inbound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("call", &self.handle.call)
            .field("window", &self.handle.window)
            .finish_non_exhaustive()
    }
}

impl<T> Inbound<T> {
    /// Items received and not yet taken.
    pub fn queued(&self) -> usize {
        self.handle.shared.inbound().items.len()
    }
}

impl<T: DeserializeOwned> Stream for Inbound<T> {
    type Item = Result<T, RpcError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut s = this.handle.shared.inbound();
        let Some(payload) = s.items.pop_front() else {
            if s.ended {
                drop(s);
                this.done = true;
                return Poll::Ready(None);
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        this.taken += 1;
        let grant = if this.taken >= this.handle.window.div_ceil(2) && !s.ended {
            s.granted += this.taken;
            std::mem::take(&mut this.taken)
        } else {
            0
        };
        drop(s);
        if grant > 0 {
            this.handle.link.send(RpcFrame {
                call: this.handle.call,
                kind: RpcKind::Credit { n: grant },
            });
        }
        Poll::Ready(Some(serde_json::from_slice(&payload).map_err(|e| {
            RpcError::new(
                RpcCode::InvalidParams,
                format!("a stream item does not decode: {e}"),
            )
        })))
    }
}
