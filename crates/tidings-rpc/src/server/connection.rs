//! `RpcServer` on a hub and the calls of one connection: starting calls (polled once in place, a task only when they wait), credits both ways, client items and cancellation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use tidings_channels::{Identity, RpcConnection, RpcLink, RpcService};
use tidings_protocol::{RpcCode, RpcFrame, RpcKind};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use super::inbound::{CallShared, InboundHandle};
use super::{BoxRpcService, CallContext, ConnectionState, RpcRequest, RpcResponse};
use crate::RpcError;

/// Settings of an [`RpcServer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Deadline of calls that name none.
    pub default_deadline: Duration,
    /// Longest deadline a client may ask for.
    pub max_deadline: Duration,
    /// Calls one connection may have open at once (more: `rate_limited`).
    pub max_calls: usize,
    /// Most credit a stream may hold (larger grants are capped).
    pub max_credit: u32,
    /// Items a client may send ahead on a bidirectional call before the handler takes them.
    pub inbound_window: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            default_deadline: Duration::from_secs(30),
            max_deadline: Duration::from_secs(300),
            max_calls: 256,
            max_credit: 1024,
            inbound_window: 32,
        }
    }
}

impl ServerOptions {
    /// With a window of `n` (at least 1) client items on bidirectional calls.
    pub fn inbound_window(mut self, n: u32) -> Self {
        self.inbound_window = n.max(1);
        self
    }
}

/// Serves a service stack (usually a layered [`super::Router`]) on a hub:
/// `hub.set_rpc(Arc::new(RpcServer::new(stack)))`.
pub struct RpcServer {
    service: BoxRpcService,
    options: ServerOptions,
    connections: AtomicU64,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// Serves `service` with the default options.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<RpcRequest, Response = RpcResponse, Error = RpcError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self::with_options(service, ServerOptions::default())
    }

    /// Serves `service` with `options`.
    pub fn with_options<S>(service: S, options: ServerOptions) -> Self
    where
        S: Service<RpcRequest, Response = RpcResponse, Error = RpcError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            service: BoxCloneSyncService::new(service),
            options,
            connections: AtomicU64::new(0),
        }
    }
}

impl RpcService for RpcServer {
    fn connect(&self, link: RpcLink, identity: Option<Identity>) -> Box<dyn RpcConnection> {
        let id = self.connections.fetch_add(1, Ordering::Relaxed);
        Box::new(Connection {
            service: self.service.clone(),
            options: self.options.clone(),
            link,
            identity,
            state: Arc::new(ConnectionState {
                buckets: Mutex::default(),
                id,
            }),
            calls: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

/// A call that waits: its task and its shared state.
struct OpenCall {
    task: tokio::task::AbortHandle,
    shared: Arc<CallShared>,
}

type Calls = Arc<Mutex<HashMap<u64, OpenCall>>>;

/// The calls of one connection.
struct Connection {
    service: BoxRpcService,
    options: ServerOptions,
    link: RpcLink,
    identity: Option<Identity>,
    state: Arc<ConnectionState>,
    calls: Calls,
}

fn lock(calls: &Calls) -> std::sync::MutexGuard<'_, HashMap<u64, OpenCall>> {
    calls.lock().unwrap_or_else(|p| p.into_inner())
}

fn reply_err(link: &RpcLink, call: u64, e: RpcError) {
    link.send(RpcFrame {
        call,
        kind: RpcKind::Reply(Err(e.into())),
    });
}

impl RpcConnection for Connection {
    fn on_frame(&mut self, frame: RpcFrame) {
        let call = frame.call;
        match frame.kind {
            RpcKind::Call {
                method,
                params,
                deadline_ms,
                credit,
            } => self.start(call, method, params, deadline_ms, credit),
            RpcKind::Credit { n } => {
                if let Some(open) = lock(&self.calls).get(&call) {
                    let room = (self.options.max_credit as usize)
                        .saturating_sub(open.shared.credit.available_permits());
                    open.shared.credit.add_permits((n as usize).min(room));
                }
            }
            RpcKind::Cancel { .. } => {
                if let Some(open) = lock(&self.calls).remove(&call) {
                    open.task.abort();
                }
            }
            // A client item: only on a bidirectional call, within the credit it was granted.
            // For a call that is over already (its end may cross the item), nothing to do.
            RpcKind::Item { payload, .. } => {
                let mut calls = lock(&self.calls);
                let Some(open) = calls.get(&call) else {
                    return;
                };
                if !open.shared.push(payload) {
                    if let Some(open) = calls.remove(&call) {
                        open.task.abort();
                    }
                    drop(calls);
                    let e = RpcError::new(
                        RpcCode::Protocol,
                        "a stream item without credit (or on a call that takes none)",
                    );
                    reply_err(&self.link, call, e);
                }
            }
            RpcKind::End => {
                if let Some(open) = lock(&self.calls).get(&call) {
                    open.shared.end();
                }
            }
            _ => reply_err(
                &self.link,
                call,
                RpcError::new(RpcCode::Protocol, "unexpected rpc frame from the client"),
            ),
        }
    }
}

impl Connection {
    fn start(
        &mut self,
        call: u64,
        method: String,
        params: Bytes,
        deadline_ms: Option<u64>,
        credit: u32,
    ) {
        {
            let calls = lock(&self.calls);
            if calls.contains_key(&call) {
                drop(calls);
                let e = RpcError::new(RpcCode::Protocol, format!("call id {call} is in use"));
                return reply_err(&self.link, call, e);
            }
            if calls.len() >= self.options.max_calls {
                drop(calls);
                let max = self.options.max_calls;
                let e = RpcError::new(
                    RpcCode::RateLimited,
                    format!("{max} calls open on this connection: wait for one to finish"),
                );
                return reply_err(&self.link, call, e);
            }
        }
        let deadline = deadline_ms
            .map(Duration::from_millis)
            .unwrap_or(self.options.default_deadline)
            .min(self.options.max_deadline);
        let shared = Arc::new(CallShared::new(credit.min(self.options.max_credit)));
        let req = RpcRequest {
            ctx: CallContext {
                method: Arc::from(method),
                call,
                identity: self.identity.clone(),
                connection: self.state.clone(),
                inbound: Some(InboundHandle {
                    shared: shared.clone(),
                    link: self.link.clone(),
                    call,
                    window: self.options.inbound_window.max(1),
                }),
            },
            params,
        };
        let mut work = Box::pin(run_call(
            self.service.clone(),
            req,
            deadline,
            shared.clone(),
            self.link.clone(),
            self.calls.clone(),
        ));
        // Poll once here, on the connection's task: a call that answers at once (most do)
        // costs no task and no wake-up of another thread. Its answer joins the frames this
        // connection is writing anyway. A call that waits moves to a task of its own, whose
        // first poll registers the real waker (the no-op one here is never used).
        if work
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
        {
            return;
        }
        // The lock is held across the spawn, so the task cannot finish (and remove the
        // call) before it is recorded.
        let mut calls = lock(&self.calls);
        let task = tokio::spawn(work);
        calls.insert(
            call,
            OpenCall {
                task: task.abort_handle(),
                shared,
            },
        );
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, open) in lock(&self.calls).drain() {
            open.task.abort();
        }
    }
}

async fn run_call(
    service: BoxRpcService,
    req: RpcRequest,
    deadline: Duration,
    shared: Arc<CallShared>,
    link: RpcLink,
    calls: Calls,
) {
    let call = req.ctx.call;
    let work = async {
        match service.oneshot(req).await {
            Ok(RpcResponse::Unary(result)) => RpcKind::Reply(Ok(result)),
            Ok(RpcResponse::Stream(mut items)) => {
                let mut seq = 0;
                loop {
                    // Wait for credit first: an item is only produced when it may be sent.
                    match shared.credit.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => {
                            return RpcKind::Cancel {
                                reason: "stream closed".into(),
                            };
                        }
                    }
                    match std::future::poll_fn(|cx| items.as_mut().poll_next(cx)).await {
                        Some(Ok(payload)) => {
                            seq += 1;
                            if !link.send(RpcFrame {
                                call,
                                kind: RpcKind::Item { seq, payload },
                            }) {
                                return RpcKind::End;
                            }
                        }
                        Some(Err(e)) => return end_with(e),
                        None => return RpcKind::End,
                    }
                }
            }
            Err(e) => end_with(e),
        }
    };
    let last = match tokio::time::timeout(deadline, work).await {
        Ok(kind) => kind,
        Err(_) => RpcKind::Reply(Err(RpcError::new(
            RpcCode::DeadlineExceeded,
            format!("deadline of {} ms passed", deadline.as_millis()),
        )
        .into())),
    };
    // Removed before the last frame goes out: the client may reuse the id then.
    lock(&calls).remove(&call);
    link.send(RpcFrame { call, kind: last });
}

/// The frame that ends a failed call: `cancel` when the server cancelled it, else a failed `reply`.
fn end_with(e: RpcError) -> RpcKind {
    if e.code == RpcCode::Cancelled {
        RpcKind::Cancel { reason: e.message }
    } else {
        RpcKind::Reply(Err(e.into()))
    }
}
