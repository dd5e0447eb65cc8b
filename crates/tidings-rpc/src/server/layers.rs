//! Tower layers for the RPC stack: per-method authorization on the session's identity, token-bucket rate limits per connection and per method, a tracing span per call, and metrics through the `metrics` facade.
//!
//! ```
//! use tidings_rpc::server::{Router, layers::*};
//! use tower::ServiceBuilder;
//! let stack = ServiceBuilder::new()
//!     .layer(MetricsLayer)
//!     .layer(TraceLayer)
//!     .layer(AuthorizeLayer::new(|identity, method| method.starts_with("public.") || identity.is_some()))
//!     .layer(RateLimitLayer::new().per_connection(100.0, 200.0))
//!     .service(Router::new());
//! # let _ = stack;
//! ```
//!
//! Every layer here has one shape: the layer is a cheap `Clone` value that
//! implements [`AroundCall`] (what it does around one call), and its service
//! is [`Layered`] (the inner service's readiness, then `around_call`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tidings_channels::Identity;
use tidings_protocol::RpcCode;
use tower::{Layer, Service};
use tracing::Instrument;

use super::{RpcFuture, RpcRequest, RpcResponse};
use crate::RpcError;

type Rule = Arc<dyn Fn(Option<&Identity>, &str) -> bool + Send + Sync>;

/// What an RPC layer does around one call: answer it itself, or pass it
/// to `next` (the inner service) and act on the future. Implement it on a
/// `Clone` layer and wrap services in [`Layered`] to write your own.
pub trait AroundCall: Clone {
    /// Handles `req`; `next` calls the inner service.
    fn around_call(&self, req: RpcRequest, next: impl FnOnce(RpcRequest) -> RpcFuture)
    -> RpcFuture;
}

/// The service of a layer `L` in front of `S`: ready when `S` is, each call
/// through [`AroundCall::around_call`].
#[derive(Clone)]
pub struct Layered<L, S> {
    layer: L,
    inner: S,
}

impl<L, S> Layered<L, S> {
    /// `inner` behind `layer`.
    pub fn new(layer: L, inner: S) -> Self {
        Self { layer, inner }
    }
}

impl<L: std::fmt::Debug, S> std::fmt::Debug for Layered<L, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<L, S> Service<RpcRequest> for Layered<L, S>
where
    L: AroundCall,
    S: Service<RpcRequest, Response = RpcResponse, Error = RpcError>,
    S::Future: Send + 'static,
{
    type Response = RpcResponse;
    type Error = RpcError;
    type Future = RpcFuture;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, req: RpcRequest) -> RpcFuture {
        let inner = &mut self.inner;
        self.layer.around_call(req, |req| Box::pin(inner.call(req)))
    }
}

/// `impl Layer` for a layer of this module and the name of its service.
macro_rules! layer {
    ($layer:ident, $service:ident) => {
        #[doc = concat!("The service of [`", stringify!($layer), "`].")]
        pub type $service<S> = Layered<$layer, S>;

        impl<S> Layer<S> for $layer {
            type Service = $service<S>;
            fn layer(&self, inner: S) -> $service<S> {
                Layered::new(self.clone(), inner)
            }
        }
    };
}

/// Refuses calls that `rule(identity, method)` does not allow, with `unauthorized`.
#[derive(Clone)]
pub struct AuthorizeLayer {
    rule: Rule,
}

impl std::fmt::Debug for AuthorizeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorizeLayer")
    }
}

impl AuthorizeLayer {
    /// Allows a call when `rule(identity, method)` is true.
    pub fn new(rule: impl Fn(Option<&Identity>, &str) -> bool + Send + Sync + 'static) -> Self {
        Self {
            rule: Arc::new(rule),
        }
    }
}

layer!(AuthorizeLayer, Authorize);

impl AroundCall for AuthorizeLayer {
    fn around_call(
        &self,
        req: RpcRequest,
        next: impl FnOnce(RpcRequest) -> RpcFuture,
    ) -> RpcFuture {
        if !(self.rule)(req.ctx.identity.as_ref(), &req.ctx.method) {
            let who = req
                .ctx
                .identity
                .as_ref()
                .map_or("an anonymous session", |i| i.subject())
                .to_owned();
            let message = format!("{who} may not call `{}`", req.ctx.method);
            return Box::pin(async move { Err(RpcError::new(RpcCode::Unauthorized, message)) });
        }
        next(req)
    }
}

/// A token bucket: `rate` tokens a second, at most `burst`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

static NEXT_LIMITER: AtomicUsize = AtomicUsize::new(0);

/// Token-bucket rate limits, kept per connection: one over all calls
/// (`per_connection`) and one per named method (`per_method`). A call over a
/// limit fails with `rate_limited` without running.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    id: usize,
    connection: Option<(f64, f64)>,
    methods: Arc<HashMap<Arc<str>, (f64, f64)>>,
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitLayer {
    /// No limits yet.
    pub fn new() -> Self {
        Self {
            id: NEXT_LIMITER.fetch_add(1, Ordering::Relaxed),
            connection: None,
            methods: Arc::default(),
        }
    }

    /// At most `rate` calls a second per connection, bursts of `burst`.
    pub fn per_connection(mut self, rate: f64, burst: f64) -> Self {
        self.connection = Some((rate, burst.max(1.0)));
        self
    }

    /// At most `rate` calls of `method` a second per connection, bursts of `burst`.
    pub fn per_method(mut self, method: &str, rate: f64, burst: f64) -> Self {
        Arc::make_mut(&mut self.methods).insert(Arc::from(method), (rate, burst.max(1.0)));
        self
    }

    fn allowed(&self, req: &RpcRequest) -> Result<(), String> {
        let now = Instant::now();
        let mut buckets = req
            .ctx
            .connection
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut take = |key: Option<Arc<str>>, (rate, burst): (f64, f64)| {
            buckets
                .entry((self.id, key))
                .or_insert(Bucket {
                    tokens: burst,
                    at: now,
                })
                .take(now, rate, burst)
        };
        if let Some(limit) = self.connection
            && !take(None, limit)
        {
            return Err("too many calls on this connection: slow down".into());
        }
        if let Some(limit) = self.methods.get(&req.ctx.method)
            && !take(Some(req.ctx.method.clone()), *limit)
        {
            return Err(format!("too many calls of `{}`: slow down", req.ctx.method));
        }
        Ok(())
    }
}

layer!(RateLimitLayer, RateLimit);

impl AroundCall for RateLimitLayer {
    fn around_call(
        &self,
        req: RpcRequest,
        next: impl FnOnce(RpcRequest) -> RpcFuture,
    ) -> RpcFuture {
        if let Err(message) = self.allowed(&req) {
            return Box::pin(async move { Err(RpcError::new(RpcCode::RateLimited, message)) });
        }
        next(req)
    }
}

/// A `tidings_rpc_call` span per call with its `method`, call id (`call`),
/// `duration_us` and `outcome` (`ok` or the error code), and an event at
/// its end with the same. For a stream the end is when the method answered
/// with its stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

layer!(TraceLayer, Trace);

fn outcome(r: &Result<RpcResponse, RpcError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}

impl AroundCall for TraceLayer {
    fn around_call(
        &self,
        req: RpcRequest,
        next: impl FnOnce(RpcRequest) -> RpcFuture,
    ) -> RpcFuture {
        let span = tracing::info_span!(
            "tidings_rpc_call",
            method = %req.ctx.method,
            call = req.ctx.call,
            duration_us = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let fut = next(req);
        Box::pin(
            async move {
                let start = Instant::now();
                let r = fut.await;
                let outcome = outcome(&r);
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                let span = tracing::Span::current();
                span.record("duration_us", micros);
                span.record("outcome", outcome);
                tracing::debug!(outcome, micros, "rpc call done");
                r
            }
            .instrument(span),
        )
    }
}

/// Metrics through the `metrics` facade: counter `tidings_rpc_calls_total`
/// {method}, counter `tidings_rpc_errors_total` {method, code}, histogram
/// `tidings_rpc_latency_seconds` {method}. Recording is the application's
/// exporter's business (none installed: no cost beyond a check).
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsLayer;

layer!(MetricsLayer, Metrics);

impl AroundCall for MetricsLayer {
    fn around_call(
        &self,
        req: RpcRequest,
        next: impl FnOnce(RpcRequest) -> RpcFuture,
    ) -> RpcFuture {
        let method = req.ctx.method.to_string();
        metrics::counter!("tidings_rpc_calls_total", "method" => method.clone()).increment(1);
        let fut = next(req);
        Box::pin(async move {
            let start = Instant::now();
            let r = fut.await;
            let elapsed: Duration = start.elapsed();
            metrics::histogram!("tidings_rpc_latency_seconds", "method" => method.clone())
                .record(elapsed.as_secs_f64());
            if let Err(e) = &r {
                metrics::counter!("tidings_rpc_errors_total", "method" => method, "code" => e.code.as_str())
                    .increment(1);
            }
            r
        })
    }
}
