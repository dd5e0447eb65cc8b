//! The chat server's collaborative editor page: `GET /editor` serves the server-rendered Leptos editor (idle, empty, nobody present) without opening a connection, and loads the bundle's `hydrate_editor`.

use std::sync::Arc;
use std::time::Duration;

use tidings::prelude::*;
use tidings_examples::{attach_collab, chat_app, collab_routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn the_editor_page_is_server_rendered_idle_and_opens_no_connection() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let docs = attach_collab(&hub).await.expect("presence starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let app = chat_app(hub.clone()).merge(collab_routes(docs));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /editor HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("<title>tidings editor</title>"), "{body}");
    assert!(body.contains(r#"<body><main id="editor""#), "{body}");
    assert!(body.contains(">idle<"), "{body}");
    assert!(body.contains(r#"id="text""#), "{body}");
    assert!(
        body.contains(r#"import init, { hydrate_editor } from "/pkg/tidings_chat_web.js""#),
        "{body}"
    );
    assert_eq!(hub.stats().connections, 0, "rendering opened a connection");
}
