//! What the tidings-sync integration tests share: a y-websocket server on loopback serving one document of a `Docs`, and a check that a connection is still served.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tidings_sync::Docs;
use tidings_sync::yrs::StateVector;
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::decoder::Decode;
use tidings_sync::yrs::updates::encoder::Encode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Serves document `name` of `docs` on every path of a loopback
/// WebSocket server; the accept loop ends when the task is aborted.
pub(crate) async fn serve(docs: Docs, name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let docs = docs.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                    docs.serve_connection(name, ws).await;
                }
            });
        }
    });
    (addr, task)
}

/// [`serve`] for document `doc`, running as long as the test.
pub(crate) async fn server(docs: Docs) -> SocketAddr {
    serve(docs, "doc").await.0
}

/// Sends sync step 1 (empty state vector) on `ws` and waits for the sync
/// step 2 answering it: the connection is still served. Panics after 10 s
/// or if the connection ends first.
pub(crate) async fn still_served<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
    ws.send(WsMessage::binary(step1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = ws.next().await {
            if let WsMessage::Binary(d) = frame
                && let Ok(Message::Sync(SyncMessage::SyncStep2(_))) = Message::decode_v1(&d)
            {
                return;
            }
        }
        panic!("the peer was dropped");
    })
    .await
    .expect("sync step 2 in time");
}
