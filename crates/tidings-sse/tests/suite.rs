//! The transport suite (`tidings_test::suite`) over SSE: messages survive every stream and POST cut mid-frame, a resume by `Last-Event-ID` delivers what was missed, bad input is refused with the session intact.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tidings_axum::SseRoute;
use tidings_channels::HubConfig;
use tidings_sse::{EventStream, SseConfig};
use tidings_test::proxy::FaultProxy;
use tidings_test::suite;

async fn server() -> SocketAddr {
    let (hub, _) = hub_with(HubConfig::default().with_session(suite::server_session_config()));
    // A short retry keeps the scenarios quick; the clients still wait for it.
    let sse = SseConfig::default().with_retry(Duration::from_millis(50));
    serve_route(SseRoute::new(hub).config(sse)).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_survive_five_mid_frame_cuts() {
    let proxy = FaultProxy::start(server().await).await.unwrap();
    let url = format!("http://{}/sse", proxy.addr());
    let report =
        suite::messages_survive_mid_frame_cuts(&proxy, suite::connector::<EventStream>(url)).await;
    println!("sse fault test: {report:?}, proxy {:?}", proxy.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_delivers_what_was_missed() {
    let proxy = FaultProxy::start(server().await).await.unwrap();
    let url = format!("http://{}/sse", proxy.addr());
    suite::a_resume_delivers_what_was_missed(&proxy, suite::connector::<EventStream>(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_session_lives_on() {
    let url = format!("http://{}/sse", server().await);
    suite::bad_input_is_refused_and_the_session_lives_on(suite::connector::<EventStream>(url))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_publish_is_refused_once_and_the_rest_flows() {
    let proxy = FaultProxy::start(server().await).await.unwrap();
    let url = format!("http://{}/sse", proxy.addr());
    suite::a_poison_publish_is_refused_once_and_the_rest_flows(
        &proxy,
        suite::connector::<EventStream>(url),
    )
    .await;
}
