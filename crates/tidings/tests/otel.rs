//! OpenTelemetry export (feature `otel`): a real tidings server and client, and a small OTLP/HTTP collector (axum) in the test that decodes the protobuf requests; the connection and session spans arrive with the service name.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use tidings::axum::{RouterExt, Server};
use tidings::channels::{Hub, MemoryBroker};
use tidings::core::ClientEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_session_spans_reach_an_otlp_collector() {
    // The collector: every POST /v1/traces body, decoded.
    let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let sink = received.clone();
    let collector = Router::new().route(
        "/v1/traces",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                sink.lock().unwrap().push(request);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    let guard =
        tidings::otel::init(&format!("http://{collector_addr}"), "tidings-otel-test").unwrap();

    // A tidings server and one client session: publish, receive, close.
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let app = Router::new().tidings("/ws", hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new().serve(listener, app, std::future::pending()));
    let client = tidings::ws::Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    client.subscribe("room:otel").unwrap();
    client.publish("room:otel", r#"{"n":1}"#).unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next_event())
            .await
            .unwrap()
        {
            Some(ClientEvent::Message(m)) => {
                assert_eq!(m.channel.as_str(), "room:otel");
                break;
            }
            Some(_) => {}
            None => panic!("client ended"),
        }
    }
    client.close();
    // The spans end with the connection.
    while hub.stats().connections != 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dropping the guard flushes the batch (blocking: off the async workers).
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let requests = received.lock().unwrap();
    assert!(!requests.is_empty(), "the collector got an export");
    let mut names = Vec::new();
    let mut services = Vec::new();
    let mut session_ids = Vec::new();
    for request in requests.iter() {
        for rs in &request.resource_spans {
            for attr in rs.resource.iter().flat_map(|r| &r.attributes) {
                if attr.key == "service.name"
                    && let Some(Value::StringValue(s)) =
                        attr.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    services.push(s.clone());
                }
            }
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                names.push(span.name.clone());
                if span.name == "tidings_session" {
                    for attr in &span.attributes {
                        if attr.key == "session"
                            && let Some(Value::StringValue(s)) =
                                attr.value.as_ref().and_then(|v| v.value.as_ref())
                        {
                            session_ids.push(s.clone());
                        }
                    }
                }
            }
        }
    }
    assert!(
        names.iter().any(|n| n == "connection"),
        "the accepted connection's span: {names:?}"
    );
    assert!(
        names.iter().any(|n| n == "tidings_session"),
        "the hub's session span: {names:?}"
    );
    assert!(
        services.iter().all(|s| s == "tidings-otel-test") && !services.is_empty(),
        "{services:?}"
    );
    assert_eq!(session_ids.len(), 1, "{session_ids:?}");
    assert!(session_ids[0].starts_with('s'), "{session_ids:?}");
}
