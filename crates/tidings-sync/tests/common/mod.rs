//! What the tidings-sync integration tests share: a y-websocket server on loopback serving one document of a `Docs`.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;

use tidings_sync::Docs;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

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
