//! OpenTelemetry export of tidings' tracing spans (`connection`, `tidings_session`, `redis_publish`...) over OTLP/HTTP with protobuf bodies: [`init`] installs the subscriber and returns a guard that flushes on drop.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The OTLP path of traces, appended to the endpoint given to [`init`].
pub const TRACES_PATH: &str = "/v1/traces";

/// [`init`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// The exporter could not be built (a bad endpoint URL, say).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// The process has a global tracing subscriber already: compose
    /// [`layer`] into it instead.
    #[error("a global tracing subscriber is set already: add tidings::otel::layer to it")]
    SubscriberSet,
}

/// Flushes the spans still batched and stops the exporter when dropped
/// (blocking: drop it outside async code, e.g. at the end of `main` or in
/// `tokio::task::spawn_blocking`).
#[derive(Debug)]
#[must_use = "spans are flushed when the guard drops"]
pub struct OtelGuard {
    provider: Option<SdkTracerProvider>,
}

impl OtelGuard {
    /// Exports what is batched now.
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "OpenTelemetry flush failed");
        }
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "OpenTelemetry shutdown failed");
        }
    }
}

/// A `tracing_subscriber` layer exporting spans as `service_name` to the
/// OTLP/HTTP collector at `endpoint` (its base URL, e.g.
/// `http://127.0.0.1:4318`; spans go to `endpoint` + [`TRACES_PATH`]), and
/// its guard. Spans are batched on a thread of their own; the HTTP client is
/// reqwest's blocking one (its own small runtime: no gRPC/tonic stack).
pub fn layer<S>(
    endpoint: &str,
    service_name: &str,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        OtelGuard,
    ),
    OtelError,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // reqwest may be built without a default rustls provider (feature
    // unification with the SSE client): install the process-wide one first.
    let _ = tidings_runtime::install_tls_provider();
    let url = format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("tidings");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((
        layer,
        OtelGuard {
            provider: Some(provider),
        },
    ))
}

/// Installs a global tracing subscriber that exports every span to the
/// OTLP/HTTP collector at `endpoint` (see [`layer`]) as `service_name`;
/// keep the guard alive while the process runs.
///
/// ```no_run
/// let _otel = tidings::otel::init("http://127.0.0.1:4318", "chat").unwrap();
/// // ... serve; spans of connections and sessions are exported ...
/// ```
pub fn init(endpoint: &str, service_name: &str) -> Result<OtelGuard, OtelError> {
    let (layer, guard) = layer(endpoint, service_name)?;
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|_| OtelError::SubscriberSet)?;
    Ok(guard)
}
