//! The RPC server: requests and responses, the method router, and the per-connection call state that runs them on a hub's sessions.

mod connection;
mod inbound;
pub mod layers;

pub use connection::{RpcServer, ServerOptions};
pub use inbound::Inbound;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidings_channels::Identity;
use tidings_protocol::RpcCode;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

pub use crate::MethodKind;
use crate::RpcError;
use inbound::InboundHandle;

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
    /// The client's items of a bidirectional call, until taken.
    pub(crate) inbound: Option<InboundHandle>,
}

impl CallContext {
    /// The client's items of this call (a bidirectional stream), typed as `T`; the first
    /// taker gets them and grants the client its window of credit. `None` when taken
    /// already, or when the call has no inbound side.
    pub fn take_inbound<T: DeserializeOwned>(&self) -> Option<Inbound<T>> {
        self.inbound.as_ref()?.take()
    }
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

    /// Adds a bidirectional stream: JSON params `P` in, then the client's items `I` in
    /// ([`Inbound`]) and JSON `T` out, each way paced by credits.
    pub fn bidi<P, I, T, F, S>(self, method: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        I: DeserializeOwned + Send + 'static,
        T: Serialize + Send + 'static,
        F: Fn(CallContext, P, Inbound<I>) -> S + Clone + Send + Sync + 'static,
        S: Stream<Item = Result<T, RpcError>> + Send + 'static,
    {
        let svc = tower::service_fn(move |req: RpcRequest| {
            let f = f.clone();
            async move {
                let params = decode::<P>(&req.params)?;
                let inbound = req.ctx.take_inbound::<I>().ok_or_else(|| {
                    RpcError::new(
                        RpcCode::Protocol,
                        "a bidirectional call's items were taken already",
                    )
                })?;
                let items = f(req.ctx, params, inbound);
                let encoded = MapItems {
                    inner: Box::pin(items),
                };
                Ok(RpcResponse::Stream(Box::pin(encoded)))
            }
        });
        self.service(
            method,
            MethodKind::BidiStream,
            BoxCloneSyncService::new(svc),
        )
    }

    /// Adds every method of `other` (a method of both: `other`'s wins).
    pub fn merge(mut self, other: Router) -> Self {
        let methods = Arc::make_mut(&mut self.methods);
        for (name, entry) in other.methods.iter() {
            methods.insert(name.clone(), entry.clone());
        }
        self
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
