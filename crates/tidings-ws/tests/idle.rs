//! The transport's idle timeout over a real socket: a silent peer is dropped with a typed timeout, a talking one is not.
#![allow(clippy::unwrap_used)]

use std::future::poll_fn;
use std::time::Duration;

use futures_util::SinkExt;
use tidings_runtime::{Transport, TransportError};
use tidings_ws::WsTransport;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A server-side transport with an idle timeout of `idle`, and the peer's end.
async fn pair(
    idle: Duration,
) -> (
    WsTransport<TcpStream>,
    WebSocketStream<MaybeTlsStream<TcpStream>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (accepted, connected) = tokio::join!(
        async { tokio_tungstenite::accept_async(listener.accept().await.unwrap().0).await },
        tokio_tungstenite::connect_async(url)
    );
    (
        WsTransport::new(accepted.unwrap(), true, Some(idle)),
        connected.unwrap().0,
    )
}

/// The next frame or error; fails the test if nothing comes within 10 s (a hang).
async fn recv(t: &mut WsTransport<TcpStream>) -> Option<Result<bytes::Bytes, TransportError>> {
    tokio::time::timeout(Duration::from_secs(10), poll_fn(|cx| t.poll_recv(cx)))
        .await
        .expect("the transport hangs instead of timing out")
}

#[tokio::test]
async fn a_silent_peer_is_dropped_with_a_timeout_error() {
    let (mut transport, _peer) = pair(Duration::from_millis(100)).await;
    match recv(&mut transport).await {
        Some(Err(TransportError::Timeout(what))) => assert!(what.contains("idle"), "{what}"),
        other => panic!("expected an idle timeout, got {other:?}"),
    }
    assert!(
        recv(&mut transport).await.is_none(),
        "ended after the timeout"
    );
}

#[tokio::test]
async fn a_peer_that_keeps_talking_is_not_dropped() {
    // Generous, so that a stalled CI machine cannot make the peer look idle.
    let idle = Duration::from_millis(500);
    let (mut transport, mut peer) = pair(idle).await;
    // Two and a half idle timeouts' worth of messages, one every tenth of a timeout.
    let sender = tokio::spawn(async move {
        for i in 0..25 {
            peer.send(Message::text(format!("{i}"))).await.unwrap();
            tokio::time::sleep(idle / 10).await;
        }
        peer
    });
    for i in 0..25 {
        match recv(&mut transport).await {
            Some(Ok(frame)) => assert_eq!(frame, i.to_string()),
            other => panic!("message {i}: {other:?}"),
        }
    }
    let _peer = sender.await.unwrap();
}
