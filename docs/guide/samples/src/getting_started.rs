//! Getting started: a server with the tidings endpoint and a client that joins a room, publishes and reads.

// ANCHOR: server
use std::sync::Arc;

use tidings::prelude::*;

/// Serves the tidings WebSocket endpoint at `/ws` on `listener`, until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<Hub, Box<dyn std::error::Error>> {
    // The hub holds the channels; the in-memory broker is the single-node default.
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let app = axum::Router::new().tidings("/ws", hub.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Server code publishes too.
    hub.publish("room:lobby", r#"{"text":"server started"}"#)
        .await?;
    Ok(hub)
}
// ANCHOR_END: server

// ANCHOR: client
/// Joins `room:lobby` at `url`, says hello and returns the first message it reads back.
pub async fn chat(url: &str) -> Result<String, Box<dyn std::error::Error>> {
    // Reconnects with backoff and resumes its session by itself.
    let client = Client::builder(url).connect()?;
    client.subscribe("room:lobby")?;
    client.publish("room:lobby", r#"{"text":"hello"}"#)?;
    while let Some(event) = client.next_event().await {
        match event {
            ClientEvent::Message(m) => {
                return Ok(format!("{} #{}: {:?}", m.channel, m.seq, m.payload));
            }
            ClientEvent::Gap(g) => {
                eprintln!("missed {}..={} on {}: reload", g.from, g.to, g.channel)
            }
            _ => {}
        }
    }
    Err("the client closed".into())
}
// ANCHOR_END: client

#[cfg(test)]
mod tests {
    /// The chapter's two halves together, on a real socket.
    #[tokio::test]
    async fn the_client_reads_its_own_message_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let _hub = super::serve(listener).await.unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), super::chat(&url))
            .await
            .expect("a message within 30 s")
            .unwrap();
        assert!(first.starts_with("room:lobby #2"), "{first}");
    }
}
