//! The RPC client over any `tidings_runtime::Client` (native and wasm32): `call`, `server_stream` and `bidi_stream`; dropping a call or its stream cancels it on the server.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidings_protocol::{RpcCode, RpcFrame, RpcKind};
use tidings_runtime::{Client, RpcHandler, SharedClient};

use crate::RpcError;

/// Stream credit granted by default: items the server may send ahead of the reader.
pub const DEFAULT_CREDIT: u32 = 32;

/// Per-call settings.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// How long the server may take (`None`: the server's default).
    pub deadline: Option<Duration>,
    /// Stream items the server may send before the reader takes them (0: [`DEFAULT_CREDIT`]).
    pub credit: u32,
}

impl CallOptions {
    /// With a deadline.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// With a stream window of `n` items.
    pub fn credit(mut self, n: u32) -> Self {
        self.credit = n;
        self
    }
}

enum Slot {
    Unary(oneshot::Sender<Result<Bytes, RpcError>>),
    Stream(mpsc::UnboundedSender<Result<Bytes, RpcError>>),
    /// A bidirectional call: its items, and the credit the server granted for ours.
    Bidi(
        mpsc::UnboundedSender<Result<Bytes, RpcError>>,
        Arc<UpCredit>,
    ),
}

impl Slot {
    /// The call ended with `result` (a stream's `Ok` reply is its last item).
    fn finish(self, result: Result<Bytes, RpcError>) {
        match self {
            Slot::Unary(tx) => {
                let _ = tx.send(result);
            }
            Slot::Stream(tx) => {
                if result.is_err() {
                    let _ = tx.unbounded_send(result);
                }
            }
            Slot::Bidi(tx, up) => {
                up.close();
                if result.is_err() {
                    let _ = tx.unbounded_send(result);
                }
            }
        }
    }
}

/// The credit the server granted for our items of a bidirectional call.
#[derive(Debug, Default)]
struct UpCredit(Mutex<UpState>);

#[derive(Debug, Default)]
struct UpState {
    available: u32,
    /// The call is over: nothing more may be sent.
    closed: bool,
    waker: Option<Waker>,
}

impl UpCredit {
    fn state(&self) -> MutexGuard<'_, UpState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn grant(&self, n: u32) {
        let mut s = self.state();
        s.available = s.available.saturating_add(n);
        let w = s.waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
    }

    fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        let w = s.waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
    }
}

#[derive(Default)]
struct Calls {
    next: u64,
    open: HashMap<u64, Slot>,
}

struct Inner {
    shared: Arc<SharedClient>,
    calls: Mutex<Calls>,
}

impl Inner {
    fn calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cancel(&self, call: u64, reason: &str) {
        let removed = self.calls().open.remove(&call);
        if let Some(slot) = removed {
            if let Slot::Bidi(_, up) = &slot {
                up.close();
            }
            let _ = self.shared.send_rpc(RpcFrame {
                call,
                kind: RpcKind::Cancel {
                    reason: reason.into(),
                },
            });
        }
    }
}

impl RpcHandler for Inner {
    fn on_rpc(&self, frame: RpcFrame) {
        let mut calls = self.calls();
        let call = frame.call;
        match frame.kind {
            RpcKind::Reply(result) => {
                if let Some(slot) = calls.open.remove(&call) {
                    drop(calls);
                    slot.finish(result.map_err(RpcError::from));
                }
            }
            RpcKind::Item { payload, .. } => {
                if let Some(Slot::Stream(tx) | Slot::Bidi(tx, _)) = calls.open.get(&call) {
                    let _ = tx.unbounded_send(Ok(payload));
                }
            }
            RpcKind::End => {
                if let Some(slot) = calls.open.remove(&call) {
                    drop(calls);
                    if let Slot::Bidi(_, up) = slot {
                        up.close();
                    }
                }
            }
            RpcKind::Credit { n } => {
                if let Some(Slot::Bidi(_, up)) = calls.open.get(&call) {
                    up.grant(n);
                }
            }
            RpcKind::Cancel { reason } => {
                if let Some(slot) = calls.open.remove(&call) {
                    drop(calls);
                    let e = RpcError::cancelled(format!("cancelled by the server: {reason}"));
                    slot.finish(Err(e));
                }
            }
            _ => {}
        }
    }

    fn on_disconnect(&self) {
        let open = std::mem::take(&mut self.calls().open);
        for (_, slot) in open {
            let e = RpcError::unavailable("the connection closed before the call finished");
            slot.finish(Err(e));
        }
    }
}

/// Calls methods on the server of a `Client`'s session; cheap to clone.
///
/// One per client: creating it installs the client's RPC handler.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("open_calls", &self.inner.calls().open.len())
            .finish()
    }
}

impl RpcClient {
    /// The RPC client of `client`'s session.
    pub fn new<T>(client: &Client<T>) -> Self {
        let inner = Arc::new(Inner {
            shared: client.shared().clone(),
            calls: Mutex::new(Calls::default()),
        });
        client.shared().set_rpc_handler(inner.clone());
        Self { inner }
    }

    /// Calls currently open.
    pub fn open_calls(&self) -> usize {
        self.inner.calls().open.len()
    }

    fn start(
        &self,
        method: &str,
        params: Bytes,
        opts: CallOptions,
        slot: Slot,
    ) -> Result<u64, RpcError> {
        let credit = match &slot {
            Slot::Unary(_) => 0,
            Slot::Stream(_) | Slot::Bidi(..) if opts.credit == 0 => DEFAULT_CREDIT,
            Slot::Stream(_) | Slot::Bidi(..) => opts.credit,
        };
        let call = {
            let mut calls = self.inner.calls();
            calls.next += 1;
            let call = calls.next;
            calls.open.insert(call, slot);
            call
        };
        let frame = RpcFrame {
            call,
            kind: RpcKind::Call {
                method: method.to_owned(),
                params,
                deadline_ms: opts.deadline.map(|d| d.as_millis() as u64),
                credit,
            },
        };
        if let Err(e) = self.inner.shared.send_rpc(frame) {
            self.inner.calls().open.remove(&call);
            return Err(RpcError::unavailable(e.to_string()));
        }
        Ok(call)
    }

    /// Calls `method` with already encoded `params`; the encoded result.
    /// Dropping the future before it resolves cancels the call on the server.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Bytes,
        opts: CallOptions,
    ) -> Result<Bytes, RpcError> {
        let (tx, rx) = oneshot::channel();
        let call = self.start(method, params, opts, Slot::Unary(tx))?;
        let mut guard = CancelOnDrop {
            inner: Some(self.inner.clone()),
            call,
        };
        let result = rx.await;
        guard.inner = None;
        result.unwrap_or_else(|_| Err(RpcError::unavailable("the call was dropped")))
    }

    /// Calls `method` with `params` (JSON) and decodes the result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, RpcError> {
        self.call_with(method, params, CallOptions::default()).await
    }

    /// [`RpcClient::call`] with options (deadline).
    pub async fn call_with<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        opts: CallOptions,
    ) -> Result<R, RpcError> {
        let params = serde_json::to_vec(params)
            .map_err(|e| RpcError::invalid_params(format!("params do not encode: {e}")))?;
        let bytes = self.call_raw(method, Bytes::from(params), opts).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RpcError::new(RpcCode::Internal, format!("result does not decode: {e}")))
    }

    /// Starts server stream `method` with `params`: its items, read at the
    /// reader's pace (the server sends at most `opts.credit` ahead). The
    /// stream ends after the last item, or with one `Err` item; dropping it
    /// early cancels the call on the server.
    pub fn server_stream<P: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        opts: CallOptions,
    ) -> Result<RpcStream<T>, RpcError> {
        let params = serde_json::to_vec(params)
            .map_err(|e| RpcError::invalid_params(format!("params do not encode: {e}")))?;
        let (tx, rx) = mpsc::unbounded();
        let window = if opts.credit == 0 {
            DEFAULT_CREDIT
        } else {
            opts.credit
        };
        let call = self.start(method, Bytes::from(params), opts, Slot::Stream(tx))?;
        Ok(RpcStream {
            rx,
            guard: CancelOnDrop {
                inner: Some(self.inner.clone()),
                call,
            },
            window,
            taken: 0,
            done: false,
            _item: PhantomData,
        })
    }
}

impl RpcClient {
    /// Starts bidirectional stream `method` with `params`: a sink for our items (sent as the
    /// server grants credit, so a slow server never makes us buffer) and the server's items
    /// (read at our pace, `opts.credit` ahead). Dropping the stream cancels the call;
    /// dropping the sink (or [`RpcSink::finish`]) ends our side only.
    pub fn bidi_stream<P: Serialize, I: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        opts: CallOptions,
    ) -> Result<(RpcSink<I>, RpcStream<T>), RpcError> {
        let params = serde_json::to_vec(params)
            .map_err(|e| RpcError::invalid_params(format!("params do not encode: {e}")))?;
        let (tx, rx) = mpsc::unbounded();
        let up = Arc::new(UpCredit::default());
        let window = if opts.credit == 0 {
            DEFAULT_CREDIT
        } else {
            opts.credit
        };
        let call = self.start(
            method,
            Bytes::from(params),
            opts,
            Slot::Bidi(tx, up.clone()),
        )?;
        let sink = RpcSink {
            inner: self.inner.clone(),
            call,
            up,
            seq: 0,
            ended: false,
            _item: PhantomData,
        };
        let stream = RpcStream {
            rx,
            guard: CancelOnDrop {
                inner: Some(self.inner.clone()),
                call,
            },
            window,
            taken: 0,
            done: false,
            _item: PhantomData,
        };
        Ok((sink, stream))
    }
}

/// Our items of a bidirectional call ([`RpcClient::bidi_stream`]).
///
/// [`RpcSink::send`] waits until the server has granted credit for the item, so at most the
/// server's window of items is ever in flight or queued for it; the rest wait in the caller.
pub struct RpcSink<I> {
    inner: Arc<Inner>,
    call: u64,
    up: Arc<UpCredit>,
    seq: u64,
    ended: bool,
    _item: PhantomData<fn(I)>,
}

impl<I> std::fmt::Debug for RpcSink<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcSink")
            .field("call", &self.call)
            .field("sent", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<I: Serialize> RpcSink<I> {
    /// Sends `item` once the server has credit for it. Fails with `cancelled` once the call
    /// is over (the server answered, cancelled, or the connection dropped).
    pub async fn send(&mut self, item: &I) -> Result<(), RpcError> {
        let payload = serde_json::to_vec(item)
            .map_err(|e| RpcError::invalid_params(format!("item does not encode: {e}")))?;
        std::future::poll_fn(|cx| {
            let mut s = self.up.state();
            if s.closed || self.ended {
                return Poll::Ready(Err(RpcError::cancelled(
                    "the call is over: no more items are taken",
                )));
            }
            if s.available == 0 {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            s.available -= 1;
            Poll::Ready(Ok(()))
        })
        .await?;
        self.seq += 1;
        self.inner
            .shared
            .send_rpc(RpcFrame {
                call: self.call,
                kind: RpcKind::Item {
                    seq: self.seq,
                    payload: Bytes::from(payload),
                },
            })
            .map_err(|e| RpcError::unavailable(e.to_string()))
    }
}

impl<I> RpcSink<I> {
    /// Credit the server has granted that is not used yet.
    pub fn credit(&self) -> u32 {
        self.up.state().available
    }

    /// Items sent so far.
    pub fn sent(&self) -> u64 {
        self.seq
    }

    /// Ends our side of the call (`end`): the server's stream of our items ends after the
    /// ones sent. Dropping the sink does the same.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let open = self.inner.calls().open.contains_key(&self.call);
        if open && !self.up.state().closed {
            let _ = self.inner.shared.send_rpc(RpcFrame {
                call: self.call,
                kind: RpcKind::End,
            });
        }
    }
}

impl<I> Drop for RpcSink<I> {
    fn drop(&mut self) {
        self.end();
    }
}

/// Cancels the call on the server when dropped while still armed.
struct CancelOnDrop {
    inner: Option<Arc<Inner>>,
    call: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.cancel(self.call, "the caller went away");
        }
    }
}

/// The items of a server stream ([`RpcClient::server_stream`]).
pub struct RpcStream<T> {
    rx: mpsc::UnboundedReceiver<Result<Bytes, RpcError>>,
    guard: CancelOnDrop,
    window: u32,
    /// Items taken since the last credit sent.
    taken: u32,
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RpcStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcStream")
            .field("call", &self.guard.call)
            .finish_non_exhaustive()
    }
}

impl<T> RpcStream<T> {
    /// The call id.
    pub fn call(&self) -> u64 {
        self.guard.call
    }

    fn finish(&mut self) {
        self.done = true;
        self.guard.inner = None;
    }
}

impl<T: DeserializeOwned> Stream for RpcStream<T> {
    type Item = Result<T, RpcError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.rx).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(bytes))) => {
                this.taken += 1;
                // Hand the credit back in batches of half the window.
                if this.taken >= this.window.div_ceil(2)
                    && let Some(inner) = &this.guard.inner
                {
                    let _ = inner.shared.send_rpc(RpcFrame {
                        call: this.guard.call,
                        kind: RpcKind::Credit { n: this.taken },
                    });
                    this.taken = 0;
                }
                Poll::Ready(Some(serde_json::from_slice(&bytes).map_err(|e| {
                    RpcError::new(RpcCode::Internal, format!("item does not decode: {e}"))
                })))
            }
        }
    }
}

/// A future of a typed call (for code that names the type).
pub type CallFuture<'a, R> = Pin<Box<dyn Future<Output = Result<R, RpcError>> + 'a>>;
