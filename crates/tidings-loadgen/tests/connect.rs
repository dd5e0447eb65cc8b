//! `connect` against a scripted WebSocket server on loopback: the session set-up in order, a refusal, a plain WebSocket, nothing listening.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tidings_loadgen::{ConnectError, HELLO, Handshake, SUBPROTOCOL, WsStream, connect, subscribe};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// What the scripted server saw of one connection.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// The subprotocols offered.
    offered: Option<String>,
    /// The text frames received, in order.
    frames: Vec<String>,
}

/// Accepts one connection; for each text frame received, sends the answers `script`
/// gives for it, and ends after `frames` frames (or at once with 0).
async fn server(
    frames: usize,
    script: fn(&str) -> Vec<&'static str>,
) -> (SocketAddr, tokio::task::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut seen = Seen::default();
        let mut offered = None;
        // The signature is tungstenite's (its `ErrorResponse` is large).
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, mut response: Response| {
            if let Some(v) = request.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
                offered = Some(v.to_str().expect("ASCII").to_owned());
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(SUBPROTOCOL),
                );
            }
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .expect("WebSocket handshake");
        seen.offered = offered;
        while seen.frames.len() < frames {
            let Some(Ok(message)) = ws.next().await else {
                break;
            };
            if let Message::Text(text) = message {
                for answer in script(text.as_str()) {
                    ws.send(Message::text(answer)).await.expect("send");
                }
                seen.frames.push(text.as_str().to_owned());
            }
        }
        seen
    });
    (addr, task)
}

fn welcome_then_subscribed(frame: &str) -> Vec<&'static str> {
    if frame.contains(r#""type":"hello""#) {
        vec![r#"{"type":"welcome","version":1,"session":"s","resume_token":"r"}"#]
    } else {
        vec![
            // Skipped: another channel, then another type.
            r#"{"type":"subscribed","channel":"other","seq":0}"#,
            r#"{"type":"ping","nonce":1}"#,
            r#"{"type":"subscribed","channel":"load:7","seq":0}"#,
        ]
    }
}

async fn open(addr: SocketAddr, handshake: Handshake<'_>) -> Result<WsStream, ConnectError> {
    connect(addr, WebSocketConfig::default(), handshake).await
}

#[tokio::test]
async fn a_session_is_set_up_in_order() {
    let (addr, seen) = server(2, welcome_then_subscribed).await;
    let ws = open(
        addr,
        Handshake::Session {
            subscribe: Some("load:7"),
        },
    )
    .await
    .unwrap();
    assert!(ws.get_ref().nodelay().unwrap());
    drop(ws);
    assert_eq!(
        seen.await.unwrap(),
        Seen {
            offered: Some(SUBPROTOCOL.to_owned()),
            frames: vec![HELLO.to_owned(), subscribe("load:7")],
        }
    );
}

#[tokio::test]
async fn an_error_instead_of_welcome_is_a_refusal() {
    let refusal = r#"{"type":"error","code":"unauthorized","message":"no"}"#;
    let (addr, seen) = server(1, |_| {
        vec![r#"{"type":"error","code":"unauthorized","message":"no"}"#]
    })
    .await;
    let e = open(addr, Handshake::Session { subscribe: None })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectError::Refused { expected: "welcome", frame } if frame == refusal),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("waiting for welcome: {refusal}"));
    assert_eq!(seen.await.unwrap().frames, [HELLO]);
}

#[tokio::test]
async fn the_connection_ending_during_set_up_is_reported() {
    // The server ends the connection once it has read `hello`.
    let (addr, _seen) = server(1, |_| Vec::new()).await;
    let e = open(addr, Handshake::Session { subscribe: None })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConnectError::Closed {
                expected: "welcome"
            } | ConnectError::Read {
                expected: "welcome",
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_plain_websocket_offers_no_subprotocol_and_sends_nothing() {
    let (addr, seen) = server(0, |_| Vec::new()).await;
    let ws = open(addr, Handshake::WebSocket).await.unwrap();
    assert_eq!(seen.await.unwrap(), Seen::default());
    drop(ws);
}

#[tokio::test]
async fn nothing_listening_is_a_tcp_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = open(addr, Handshake::WebSocket).await.unwrap_err();
    assert!(matches!(e, ConnectError::Tcp { .. }), "{e:?}");
    assert!(e.to_string().starts_with("connect: "), "{e}");
}
