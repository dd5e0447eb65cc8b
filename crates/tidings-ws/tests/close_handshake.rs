//! The WebSocket closing handshake on a hub connection, as a browser does it: the client ends its session (protocol `close`, then its WebSocket Close in a separate segment) or closes the WebSocket alone; it must read the server's Close frame and then a clean TCP close (FIN), never a reset — repeated a few hundred times, since the failure is a race.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tidings_channels::{Hub, MemoryBroker};
use tidings_ws::{Accepted, ServerConfig, WsServer};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Connections per way of closing.
const ROUNDS: usize = 300;
/// Pings sent after the session's `close`, before the WebSocket Close.
const PINGS: usize = 20;
const STEP: Duration = Duration::from_secs(10);

/// How the client ends its connection.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// The session's `close` frame, then the WebSocket Close (what
    /// `tidings_runtime::Client::close` and the browser client do).
    SessionThenSocket,
    /// Only the WebSocket Close.
    SocketOnly,
}

/// What the client saw after it started closing.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The server's Close frame, then TCP closed cleanly.
    Clean,
    /// The connection ended without the server's Close frame.
    NoCloseFrame(String),
    /// The server's Close frame came, then the connection was reset or failed.
    ResetAfterClose(String),
}

async fn one_connection(addr: std::net::SocketAddr, ending: Ending) -> Seen {
    let stream = TcpStream::connect(addr).await.unwrap();
    // Every frame in its own segment, as a browser's frames usually are.
    stream.set_nodelay(true).unwrap();
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("tidings.v1.json"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    ws.send(Message::text(r#"{"type":"hello","version":1}"#))
        .await
        .unwrap();
    // The welcome: the session is up.
    let welcome = tokio::time::timeout(STEP, ws.next()).await.unwrap();
    let welcome = welcome.unwrap().unwrap().into_text().unwrap();
    assert!(welcome.contains("welcome"), "{welcome}");
    let mut got_close = false;
    if let Ending::SessionThenSocket = ending {
        ws.send(Message::text(
            r#"{"type":"close","code":1000,"reason":"bye"}"#,
        ))
        .await
        .unwrap();
        // Frames still in flight while the server closes (a browser's last
        // pings, or its Close in a later segment): each in its own segment,
        // so some reach the server after it read the `close`. A server that
        // drops the socket with them unread makes the kernel reset it.
        for _ in 0..PINGS {
            if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                break;
            }
        }
    }
    // The client's Close; the server may have sent its own meanwhile (then
    // this is the answer to it, and sending may find the socket closed).
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "client closed".into(),
        })))
        .await;
    loop {
        match tokio::time::timeout(STEP, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) => got_close = true,
            Some(Ok(_)) => {}
            None => {
                return if got_close {
                    Seen::Clean
                } else {
                    Seen::NoCloseFrame("TCP closed".into())
                };
            }
            Some(Err(e)) => {
                return if got_close {
                    Seen::ResetAfterClose(e.to_string())
                } else {
                    Seen::NoCloseFrame(e.to_string())
                };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_initiated_close_gets_the_servers_close_frame_before_fin() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let served = hub.clone();
    let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap()
        .serve(move |conn: Accepted| {
            let hub = served.clone();
            async move {
                let (t, codec, _shutdown) = conn.into_transport();
                hub.serve(t, codec).await
            }
        });
    let addr = server.local_addr();
    let mut failures = Vec::new();
    for ending in [Ending::SessionThenSocket, Ending::SocketOnly] {
        let mut clean = 0;
        for round in 0..ROUNDS {
            match one_connection(addr, ending).await {
                Seen::Clean => clean += 1,
                other => failures.push(format!("{ending:?} round {round}: {other:?}")),
            }
        }
        eprintln!("{ending:?}: {clean} of {ROUNDS} closes clean");
    }
    assert!(
        failures.is_empty(),
        "{} unclean closes: {failures:#?}",
        failures.len()
    );
    hub.shutdown("test over");
    server.shutdown().await;
}
