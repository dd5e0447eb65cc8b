//! The RPC server: requests and responses, the method router, and the per-connection call state that runs them on a hub's sessions.

pub mod layers;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidings_channels::{Identity, RpcConnection, RpcLink, RpcService};
use tidings_protocol::{RpcCode, RpcFrame, RpcKind};
use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::RpcError;

/// A boxed stream of encoded items.
pub type ItemStream = Pin<Box<dyn Stream<Item = Result<Bytes, RpcError>> + Send>>;

/// What a call knows besides its parameters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallContext {
    /// The method called.
    pub method: Arc<str>,
    /// The call's id (the client's).
    pub call: u64,
    /// Who the connection is (`None`: anonymous).
    pub identity: Option<Identity>,
    /// State of the connection, shared by its calls (rate-limit buckets).
    pub connection: Arc<ConnectionState>,
}

/// A rate-limit bucket: the limiter (a `RateLimitLayer`) and the method (`None`: all calls).
pub(crate) type BucketKey = (usize, Option<Arc<str>>);

/// Per-connection state the layers keep (token buckets); freed with the connection.
#[derive(Debug, Default)]
pub struct ConnectionState {
    pub(crate) buckets: Mutex<HashMap<BucketKey, layers::Bucket>>,
    id: u64,
}

impl ConnectionState {
    /// A number unique to the connection within this process.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// One call as the service stack sees it.
#[derive(Clone, Debug)]
pub struct RpcRequest {
    /// Who, what, which call.
    pub ctx: CallContext,
    /// Encoded parameters (JSON).
    pub params: Bytes,
}

/// What a method answers: one result, or a stream of items.
#[non_exhaustive]
pub enum RpcResponse {
    /// A unary call's encoded result.
    Unary(Bytes),
    /// A server stream's items (sent as credits allow).
    Stream(ItemStream),
}

impl std::fmt::Debug for RpcResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unary(b) => f.debug_tuple("Unary").field(&b.len()).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// The boxed service every method (and the whole stack) is.
pub type BoxRpcService = BoxCloneSyncService<RpcRequest, RpcResponse, RpcError>;

/// The future of a boxed service.
pub type RpcFuture = Pin<Box<dyn Future<Output = Result<RpcResponse, RpcError>> + Send>>;

/// The kind of a method, for the method list ([`Router::methods`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    /// One request, one reply.
    Unary,
    /// One request, a stream of items.
    ServerStream,
}

/// Method name → service. A `Router` is itself a tower service, so layers
/// wrap it whole ([`RpcServer::new`] takes any service stack).
///
/// ```
/// use tidings_rpc::server::Router;
/// let router = Router::new()
///     .unary("math.add", |_ctx, (a, b): (i64, i64)| async move { Ok::<_, tidings_rpc::RpcError>(a + b) });
/// assert_eq!(router.methods().count(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Router {
    methods: Arc<HashMap<Arc<str>, (MethodKind, BoxRpcService)>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn decode<P: DeserializeOwned>(params: &[u8]) -> Result<P, RpcError> {
    serde_json::from_slice(params).map_err(|e| RpcError::invalid_params(e.to_string()))
}

fn encode<R: Serialize>(value: &R) -> Result<Bytes, RpcError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| RpcError::internal(format!("result does not encode: {e}")))
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `service` as `method`.
    pub fn service(mut self, method: &str, kind: MethodKind, service: BoxRpcService) -> Self {
        Arc::make_mut(&mut self.methods).insert(Arc::from(method), (kind, service));
        self
    }

    /// Adds a unary method: JSON params `P` in, JSON `R` out.
    pub fn unary<P, R, F, Fut>(self, method: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(CallContext, P) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let svc = tower::service_fn(move |req: RpcRequest| {
            let f = f.clone();
            async move {
                let params = decode::<P>(&req.params)?;
                let result = f(req.ctx, params).await?;
                Ok(RpcResponse::Unary(encode(&result)?))
            }
        });
        self.service(method, MethodKind::Unary, BoxCloneSyncService::new(svc))
    }

    /// Adds a server-streaming method: JSON params `P` in, a stream of JSON `T` out.
    pub fn stream<P, T, F, S>(self, method: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        T: Serialize + Send + 'static,
        F: Fn(CallContext, P) -> S + Clone + Send + Sync + 'static,
        S: Stream<Item = Result<T, RpcError>> + Send + 'static,
    {
        let svc = tower::service_fn(move |req: RpcRequest| {
            let f = f.clone();
            async move {
                let params = decode::<P>(&req.params)?;
                let items = f(req.ctx, params);
                let encoded = MapItems {
                    inner: Box::pin(items),
                };
                Ok(RpcResponse::Stream(Box::pin(encoded)))
            }
        });
        self.service(
            method,
            MethodKind::ServerStream,
            BoxCloneSyncService::new(svc),
        )
    }

    /// The methods and their kinds (for docs and schemas).
    pub fn methods(&self) -> impl Iterator<Item = (&str, MethodKind)> {
        self.methods.iter().map(|(k, (kind, _))| (&**k, *kind))
    }
}

/// Encodes each item of a typed stream as JSON.
struct MapItems<S> {
    inner: Pin<Box<S>>,
}

impl<S, T> Stream for MapItems<S>
where
    S: Stream<Item = Result<T, RpcError>>,
    T: Serialize,
{
    type Item = Result<Bytes, RpcError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(item))) => Poll::Ready(Some(encode(&item))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Service<RpcRequest> for Router {
    type Response = RpcResponse;
    type Error = RpcError;
    type Future = RpcFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> RpcFuture {
        match self.methods.get(&req.ctx.method) {
            Some((_, svc)) => Box::pin(svc.clone().oneshot(req)),
            None => {
                let message = format!("no method `{}`", req.ctx.method);
                Box::pin(async move { Err(RpcError::new(RpcCode::UnknownMethod, message)) })
            }
        }
    }
}

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
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            default_deadline: Duration::from_secs(30),
            max_deadline: Duration::from_secs(300),
            max_calls: 256,
            max_credit: 1024,
        }
    }
}

/// Serves a service stack (usually a layered [`Router`]) on a hub:
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

/// A running call: its task and the credit of its stream.
struct OpenCall {
    task: tokio::task::AbortHandle,
    credit: Arc<Semaphore>,
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
                        .saturating_sub(open.credit.available_permits());
                    open.credit.add_permits((n as usize).min(room));
                }
            }
            RpcKind::Cancel { .. } => {
                if let Some(open) = lock(&self.calls).remove(&call) {
                    open.task.abort();
                }
            }
            // Client streams (bidirectional calls) are not served yet.
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
        let mut calls = lock(&self.calls);
        if calls.contains_key(&call) {
            let e = RpcError::new(RpcCode::Protocol, format!("call id {call} is in use"));
            return reply_err(&self.link, call, e);
        }
        if calls.len() >= self.options.max_calls {
            let max = self.options.max_calls;
            let e = RpcError::new(
                RpcCode::RateLimited,
                format!("{max} calls open on this connection: wait for one to finish"),
            );
            return reply_err(&self.link, call, e);
        }
        let deadline = deadline_ms
            .map(Duration::from_millis)
            .unwrap_or(self.options.default_deadline)
            .min(self.options.max_deadline);
        let credit = Arc::new(Semaphore::new(credit.min(self.options.max_credit) as usize));
        let req = RpcRequest {
            ctx: CallContext {
                method: Arc::from(method),
                call,
                identity: self.identity.clone(),
                connection: self.state.clone(),
            },
            params,
        };
        let task = tokio::spawn(run_call(
            self.service.clone(),
            req,
            deadline,
            credit.clone(),
            self.link.clone(),
            self.calls.clone(),
        ));
        calls.insert(
            call,
            OpenCall {
                task: task.abort_handle(),
                credit,
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
    credit: Arc<Semaphore>,
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
                    match credit.acquire().await {
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
