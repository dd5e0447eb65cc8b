//! The RPC client over any `tidings_runtime::Client` (native and wasm32): `call` and `server_stream`; dropping either cancels the call on the server.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
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
        if self.calls().open.remove(&call).is_some() {
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
            RpcKind::Reply(result) => match calls.open.remove(&call) {
                Some(Slot::Unary(tx)) => {
                    let _ = tx.send(result.map_err(RpcError::from));
                }
                Some(Slot::Stream(tx)) => {
                    let _ = tx.unbounded_send(result.map_err(RpcError::from));
                }
                None => {}
            },
            RpcKind::Item { payload, .. } => {
                if let Some(Slot::Stream(tx)) = calls.open.get(&call) {
                    let _ = tx.unbounded_send(Ok(payload));
                }
            }
            RpcKind::End => {
                calls.open.remove(&call);
            }
            RpcKind::Cancel { reason } => {
                let e = RpcError::cancelled(format!("cancelled by the server: {reason}"));
                match calls.open.remove(&call) {
                    Some(Slot::Unary(tx)) => {
                        let _ = tx.send(Err(e));
                    }
                    Some(Slot::Stream(tx)) => {
                        let _ = tx.unbounded_send(Err(e));
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    fn on_disconnect(&self) {
        let open = std::mem::take(&mut self.calls().open);
        for (_, slot) in open {
            let e = RpcError::unavailable("the connection closed before the call finished");
            match slot {
                Slot::Unary(tx) => {
                    let _ = tx.send(Err(e));
                }
                Slot::Stream(tx) => {
                    let _ = tx.unbounded_send(Err(e));
                }
            }
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
            Slot::Stream(_) if opts.credit == 0 => DEFAULT_CREDIT,
            Slot::Stream(_) => opts.credit,
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
