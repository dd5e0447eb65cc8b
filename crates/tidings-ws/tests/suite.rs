//! The transport suite (`tidings_test::suite`) over WebSocket: messages survive links cut mid-frame, a resume delivers what was missed, bad input is refused with the session intact.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_test::proxy::FaultProxy;
use tidings_test::suite;
use tidings_ws::{Accepted, ServerHandle, WebSocket, WsServer};

async fn server() -> ServerHandle {
    let hub = Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(suite::server_session_config()),
    );
    let server = WsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        tidings_ws::ServerConfig::default(),
    )
    .await
    .unwrap();
    server.serve(move |conn: Accepted| {
        let hub = hub.clone();
        async move {
            let (transport, codec, _shutdown) = conn.into_transport();
            hub.serve(transport, codec).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_survive_five_mid_frame_cuts() {
    let handle = server().await;
    let proxy = FaultProxy::start(handle.local_addr()).await.unwrap();
    let report = suite::messages_survive_mid_frame_cuts(
        &proxy,
        suite::connector::<WebSocket>(format!("ws://{}/", proxy.addr())),
    )
    .await;
    println!("ws fault test: {report:?}, proxy {:?}", proxy.stats());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_delivers_what_was_missed() {
    let handle = server().await;
    let proxy = FaultProxy::start(handle.local_addr()).await.unwrap();
    suite::a_resume_delivers_what_was_missed(
        &proxy,
        suite::connector::<WebSocket>(format!("ws://{}/", proxy.addr())),
    )
    .await;
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_session_lives_on() {
    let handle = server().await;
    suite::bad_input_is_refused_and_the_session_lives_on(suite::connector::<WebSocket>(format!(
        "ws://{}/",
        handle.local_addr()
    )))
    .await;
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_publish_is_refused_once_and_the_rest_flows() {
    let handle = server().await;
    let proxy = FaultProxy::start(handle.local_addr()).await.unwrap();
    suite::a_poison_publish_is_refused_once_and_the_rest_flows(
        &proxy,
        suite::connector::<WebSocket>(format!("ws://{}/", proxy.addr())),
    )
    .await;
    handle.shutdown().await;
}
