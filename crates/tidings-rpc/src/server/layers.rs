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

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            rule: self.rule.clone(),
        }
    }
}

/// The service of [`AuthorizeLayer`].
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    rule: Rule,
}

impl<S> std::fmt::Debug for Authorize<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorize")
    }
}

impl<S> Service<RpcRequest> for Authorize<S>
where
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
        Box::pin(self.inner.call(req))
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
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limits: self.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limits: RateLimitLayer,
}

impl<S> RateLimit<S> {
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
                .entry((self.limits.id, key))
                .or_insert(Bucket {
                    tokens: burst,
                    at: now,
                })
                .take(now, rate, burst)
        };
        if let Some(limit) = self.limits.connection
            && !take(None, limit)
        {
            return Err("too many calls on this connection: slow down".into());
        }
        if let Some(limit) = self.limits.methods.get(&req.ctx.method)
            && !take(Some(req.ctx.method.clone()), *limit)
        {
            return Err(format!("too many calls of `{}`: slow down", req.ctx.method));
        }
        Ok(())
    }
}

impl<S> Service<RpcRequest> for RateLimit<S>
where
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
        if let Err(message) = self.allowed(&req) {
            return Box::pin(async move { Err(RpcError::new(RpcCode::RateLimited, message)) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// A `tidings_rpc_call` span per call (method, call id), and an event at
/// its end with the duration and outcome (`ok` or the error code). For a
/// stream the end is when the method answered with its stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// The service of [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
}

fn outcome(r: &Result<RpcResponse, RpcError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}

impl<S> Service<RpcRequest> for Trace<S>
where
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
        let span = tracing::info_span!(
            "tidings_rpc_call",
            method = %req.ctx.method,
            call = req.ctx.call,
            outcome = tracing::field::Empty,
        );
        let fut = self.inner.call(req);
        Box::pin(
            async move {
                let start = Instant::now();
                let r = fut.await;
                let outcome = outcome(&r);
                tracing::Span::current().record("outcome", outcome);
                let micros = start.elapsed().as_micros() as u64;
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

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics { inner }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
}

impl<S> Service<RpcRequest> for Metrics<S>
where
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
        let method = req.ctx.method.to_string();
        metrics::counter!("tidings_rpc_calls_total", "method" => method.clone()).increment(1);
        let fut = self.inner.call(req);
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
