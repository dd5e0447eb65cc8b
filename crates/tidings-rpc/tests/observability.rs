//! What `TraceLayer` and `MetricsLayer` emit for calls over a real WebSocket: one `tidings_rpc_call` span per call with its method, call id, duration and outcome (captured by a recording `tracing_subscriber::Layer`), and the call and error counters and latency histogram through the `metrics` facade (captured by a local recorder). One test in its own binary: the subscriber and the recorder are process-wide.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde::{Deserialize, Serialize};
use tidings_rpc::RpcError;
use tidings_rpc::client::CallOptions;
use tidings_rpc::server::layers::{MetricsLayer, TraceLayer};
use tidings_rpc::server::{Router, RpcServer};
use tower::ServiceBuilder;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use common::{Served, eventually};

/// The application error of `math.refuse`.
#[derive(Serialize, Deserialize, Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

/// A span's fields as text, by name.
type Fields = BTreeMap<String, String>;

struct FieldsVisitor<'a>(&'a mut Fields);

impl Visit for FieldsVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

/// Records the fields of every closed `tidings_rpc_call` span.
#[derive(Clone, Default)]
struct SpanRecorder {
    closed: Arc<Mutex<Vec<Fields>>>,
}

impl<S> tracing_subscriber::Layer<S> for SpanRecorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "tidings_rpc_call" {
            return;
        }
        let mut fields = Fields::new();
        attrs.record(&mut FieldsVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(&mut FieldsVisitor(fields));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions_mut().remove::<Fields>()
        {
            self.closed.lock().unwrap().push(fields);
        }
    }
}

/// A histogram's samples.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// A `metrics` recorder keeping counters and histogram samples by
/// `name{label=value,...}` (labels sorted).
#[derive(Clone, Default)]
struct MetricsRecorder {
    counters: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
    histograms: Arc<Mutex<HashMap<String, Arc<Samples>>>>,
}

fn render(key: &Key) -> String {
    let labels: BTreeSet<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!(
        "{}{{{}}}",
        key.name(),
        labels.into_iter().collect::<Vec<_>>().join(",")
    )
}

impl MetricsRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn samples(&self, key: &str) -> Vec<f64> {
        self.histograms
            .lock()
            .unwrap()
            .get(key)
            .map_or_else(Vec::new, |h| h.0.lock().unwrap().clone())
    }
}

impl Recorder for MetricsRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let c = self
            .counters
            .lock()
            .unwrap()
            .entry(render(key))
            .or_default()
            .clone();
        Counter::from_arc(c)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let h = self
            .histograms
            .lock()
            .unwrap()
            .entry(render(key))
            .or_default()
            .clone();
        Histogram::from_arc(h)
    }
}

fn router() -> Router {
    Router::new()
        .unary("math.add", |_ctx, (a, b): (i64, i64)| async move {
            Ok::<_, RpcError>(a + b)
        })
        .unary("math.refuse", |_ctx, (): ()| async move {
            Err::<i64, _>(RpcError::application(&Refused))
        })
        .stream("math.count", |_ctx, n: u64| {
            futures_util::stream::iter((1..=n).map(Ok::<_, RpcError>))
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trace_and_metrics_layers_report_every_call() {
    let spans = SpanRecorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
        .unwrap();
    let recorder = MetricsRecorder::default();
    metrics::set_global_recorder(recorder.clone()).unwrap();

    let stack = ServiceBuilder::new()
        .layer(MetricsLayer)
        .layer(TraceLayer)
        .service(router());
    let served = Served::ws(RpcServer::new(stack)).await;
    let (_client, rpc) = served.client().await;

    for i in 0..3 {
        let sum: i64 = rpc.call("math.add", &(i, 1)).await.unwrap();
        assert_eq!(sum, i + 1);
    }
    let e = rpc.call::<_, i64>("math.refuse", &()).await.unwrap_err();
    assert_eq!(e.code.as_str(), "application", "{e}");
    let e = rpc.call::<_, i64>("math.nope", &()).await.unwrap_err();
    assert!(e.is_unknown_method(), "{e}");
    let n = futures_util::StreamExt::count(
        rpc.server_stream::<_, u64>("math.count", &5u64, CallOptions::default())
            .unwrap(),
    )
    .await;
    assert_eq!(n, 5);

    // Spans close when the server drops the call's future, which may be
    // just after the reply went out.
    let closed = spans.closed.clone();
    eventually("six call spans closed", || {
        closed.lock().unwrap().len() >= 6
    })
    .await;
    let calls = spans.closed.lock().unwrap().clone();
    eprintln!("call spans: {calls:#?}");
    assert_eq!(calls.len(), 6, "one span per call: {calls:#?}");
    let mut outcomes: Vec<(String, String)> = calls
        .iter()
        .map(|f| (f["method"].clone(), f["outcome"].clone()))
        .collect();
    outcomes.sort();
    let expect = |m: &str, o: &str| (m.to_owned(), o.to_owned());
    assert_eq!(
        outcomes,
        vec![
            expect("math.add", "ok"),
            expect("math.add", "ok"),
            expect("math.add", "ok"),
            expect("math.count", "ok"),
            expect("math.nope", "unknown_method"),
            expect("math.refuse", "application"),
        ]
    );
    let ids: BTreeSet<u64> = calls.iter().map(|f| f["call"].parse().unwrap()).collect();
    assert_eq!(ids.len(), 6, "distinct call ids: {ids:?}");
    for f in &calls {
        let us = f.get("duration_us").map(|d| d.parse::<u64>());
        assert!(matches!(us, Some(Ok(_))), "a duration in µs on {f:?}");
    }

    // Metrics: the counters and histogram are recorded before the reply is sent.
    assert_eq!(
        recorder.counter("tidings_rpc_calls_total{method=math.add}"),
        3
    );
    assert_eq!(
        recorder.counter("tidings_rpc_calls_total{method=math.refuse}"),
        1
    );
    assert_eq!(
        recorder.counter("tidings_rpc_calls_total{method=math.nope}"),
        1
    );
    assert_eq!(
        recorder.counter("tidings_rpc_calls_total{method=math.count}"),
        1
    );
    assert_eq!(
        recorder.counter("tidings_rpc_errors_total{code=application,method=math.refuse}"),
        1
    );
    assert_eq!(
        recorder.counter("tidings_rpc_errors_total{code=unknown_method,method=math.nope}"),
        1
    );
    assert_eq!(
        recorder.counter("tidings_rpc_errors_total{code=application,method=math.add}"),
        0
    );
    let latencies = recorder.samples("tidings_rpc_latency_seconds{method=math.add}");
    assert_eq!(latencies.len(), 3, "{latencies:?}");
    assert!(
        latencies.iter().all(|s| s.is_finite() && *s >= 0.0),
        "{latencies:?}"
    );
    assert_eq!(
        recorder
            .samples("tidings_rpc_latency_seconds{method=math.nope}")
            .len(),
        1
    );
    served.stop().await;
}
