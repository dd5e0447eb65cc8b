//! `Metrics` and `GET /metrics`: the hub's counters in the Prometheus text format, read at scrape time (the message path only adds to plain fields of its locked session), through `metrics-exporter-prometheus`, plus the publish latency histogram.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tidings_channels::{Hub, HubCounters, LATENCY_BOUNDS};

/// The name of the publish latency histogram.
pub const PUBLISH_LATENCY_METRIC: &str = "tidings_publish_duration_seconds";

/// The counters of a hub as Prometheus metrics, mounted with
/// [`MetricsRouterExt::tidings_metrics`] (`GET /metrics`).
///
/// Every scrape reads [`Hub::counters`] and sets them on a Prometheus
/// recorder of its own, renders it, and appends the histogram of publish
/// latency ([`tidings_channels::PublishLatency`], turned on here). Metrics
/// recorded through the `metrics` facade elsewhere (the RPC layers of
/// `tidings-rpc`, the application's own) show up too once
/// [`Metrics::install`] made this recorder the global one.
///
/// | metric | type | what |
/// |---|---|---|
/// | `tidings_connections` | gauge | connections being served |
/// | `tidings_connections_total` | counter | connections served |
/// | `tidings_sessions` | gauge | sessions (open or detached) |
/// | `tidings_sessions_total` | counter | sessions opened |
/// | `tidings_handshakes_refused_total` | counter | connections refused before a session |
/// | `tidings_resumes_total` | counter | sessions resumed on a new connection |
/// | `tidings_messages_received_total` | counter | publishes taken from clients |
/// | `tidings_messages_sent_total` | counter | `message` frames written to clients |
/// | `tidings_received_bytes_total` / `tidings_sent_bytes_total` | counter | bytes of frames |
/// | `tidings_frames_sent_total` | counter | frames of every kind written |
/// | `tidings_publishes_refused_total` | counter | publishes refused by name |
/// | `tidings_publishes_rate_limited_total` | counter | of those, over a rate limit |
/// | `tidings_publishes_failed_total` | counter | publishes the broker failed |
/// | `tidings_messages_dropped_total` | counter | messages shed (drop-oldest) |
/// | `tidings_gaps_total` | counter | `gap` frames sent |
/// | `tidings_slow_consumer_disconnects_total` | counter | closes 4002 |
/// | `tidings_publish_duration_seconds` | histogram | the broker's time per publish |
/// | `tidings_rejections_total{code}` | counter | requests refused before a connection (401, 403 origin, 429 per IP, …; by `x-tidings-error` code), once [`Metrics::install`]ed |
///
/// ```no_run
/// use std::sync::Arc;
/// use tidings_axum::{Metrics, MetricsRouterExt, RouterExt};
/// use tidings_channels::{Hub, MemoryBroker};
/// let hub = Hub::new(Arc::new(MemoryBroker::default()));
/// let app: axum::Router = axum::Router::new()
///     .tidings("/ws", hub.clone())
///     .tidings_metrics(Metrics::new(hub));
/// ```
#[derive(Clone)]
pub struct Metrics {
    hub: Hub,
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// [`Metrics::install`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The process has a global `metrics` recorder already (set once per
    /// process): keep this one local, or install only one.
    #[error("a global metrics recorder is installed already")]
    AlreadyInstalled,
}

const COUNTERS: &[(&str, &str)] = &[
    ("tidings_connections_total", "Connections served."),
    ("tidings_sessions_total", "Sessions opened."),
    (
        "tidings_handshakes_refused_total",
        "Connections refused before a session (no hello in time, a bad hello, a foreign resume token, shutting down).",
    ),
    (
        "tidings_resumes_total",
        "Sessions resumed on a new connection.",
    ),
    (
        "tidings_messages_received_total",
        "Publishes taken from clients.",
    ),
    (
        "tidings_messages_sent_total",
        "Message frames written to clients.",
    ),
    (
        "tidings_received_bytes_total",
        "Bytes of the frames received from clients.",
    ),
    (
        "tidings_sent_bytes_total",
        "Bytes of the frames written to clients.",
    ),
    (
        "tidings_frames_sent_total",
        "Frames of every kind written to clients.",
    ),
    (
        "tidings_publishes_refused_total",
        "Publishes refused by name (too large, not allowed, over a rate limit).",
    ),
    (
        "tidings_publishes_rate_limited_total",
        "Publishes refused as over a rate limit.",
    ),
    (
        "tidings_publishes_failed_total",
        "Publishes the broker failed to take.",
    ),
    (
        "tidings_messages_dropped_total",
        "Messages shed by the drop-oldest slow-consumer policy.",
    ),
    ("tidings_gaps_total", "Gap frames sent."),
    (
        "tidings_slow_consumer_disconnects_total",
        "Connections closed for reading too slowly (4002).",
    ),
];

fn counter_values(c: &HubCounters) -> [u64; 15] {
    let s = &c.session;
    [
        c.connections_total,
        c.sessions_total,
        c.handshakes_refused,
        s.resumes,
        s.messages_received,
        s.messages_sent,
        s.bytes_received,
        s.bytes_sent,
        s.frames_sent,
        s.publishes_refused,
        s.publishes_rate_limited,
        s.publishes_failed,
        s.messages_dropped,
        s.gaps,
        s.slow_consumer_disconnects,
    ]
}

impl Metrics {
    /// Metrics of `hub` on a recorder of their own (not the global one).
    /// Turns on the hub's publish latency histogram.
    pub fn new(hub: Hub) -> Self {
        hub.publish_latency().enable();
        Self::counters_only(hub)
    }

    /// [`Metrics::new`] without turning on the publish latency histogram
    /// (it is rendered with what it holds: nothing unless someone else
    /// turned it on). The message path then pays only its counters.
    pub fn counters_only(hub: Hub) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let recorder = Arc::new(recorder);
        metrics::with_local_recorder(&*recorder, || {
            for (name, help) in COUNTERS {
                describe_counter!(*name, *help);
            }
            describe_gauge!("tidings_connections", "Connections being served.");
            describe_gauge!("tidings_sessions", "Sessions known (open or detached).");
        });
        Self {
            hub,
            recorder,
            handle,
        }
    }

    /// Makes this recorder the process's global `metrics` recorder, so that
    /// what is recorded through the facade anywhere (e.g. `tidings-rpc`'s
    /// `MetricsLayer`) is rendered by [`Metrics::render`] too.
    pub fn install(self) -> Result<Self, MetricsError> {
        metrics::set_global_recorder(self.recorder.clone())
            .map_err(|_| MetricsError::AlreadyInstalled)?;
        Ok(self)
    }

    /// The metrics now, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let c = self.hub.counters();
        metrics::with_local_recorder(&*self.recorder, || {
            for ((name, _), value) in COUNTERS.iter().zip(counter_values(&c)) {
                counter!(*name).absolute(value);
            }
            gauge!("tidings_connections").set(c.connections as f64);
            gauge!("tidings_sessions").set(c.sessions as f64);
        });
        self.handle.run_upkeep();
        let mut out = self.handle.render();
        self.render_latency(&mut out);
        out
    }

    /// The publish latency histogram, rendered here: it is counted in fixed
    /// buckets (no samples kept), which the exporter's histograms cannot take.
    fn render_latency(&self, out: &mut String) {
        let snap = self.hub.publish_latency().snapshot();
        let name = PUBLISH_LATENCY_METRIC;
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "# HELP {name} Time the broker took with each publish of a client (memory broker: the fan-out; a backend: until stored)."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, n) in LATENCY_BOUNDS.iter().zip(snap.counts.iter()) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = snap.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", snap.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {total}");
    }

    async fn scrape(self) -> Response {
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            self.render(),
        )
            .into_response()
    }
}

/// Mounting [`Metrics`] on a [`Router`].
pub trait MetricsRouterExt {
    /// Serves `GET /metrics`.
    fn tidings_metrics(self, metrics: Metrics) -> Self;
}

impl<S: Clone + Send + Sync + 'static> MetricsRouterExt for Router<S> {
    fn tidings_metrics(self, metrics: Metrics) -> Self {
        self.route("/metrics", get(move || metrics.clone().scrape()))
    }
}
