//! Migration from raw tokio-tungstenite: the hand-written client before, the tidings client after.

// ANCHOR: before
/// Before: a raw WebSocket client. Reconnecting, resuming, ordering, de-duplication and
/// detecting what was lost are all left to the application.
pub async fn raw_client(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _response) = tokio_tungstenite::connect_async(url).await?;
    ws.send(Message::text(r#"{"join":"lobby"}"#)).await?;
    while let Some(frame) = ws.next().await {
        match frame? {
            Message::Text(text) => println!("{text}"),
            Message::Close(_) => break, // and now? reconnect, and what was missed is gone
            _ => {}
        }
    }
    Ok(())
}
// ANCHOR_END: before

// ANCHOR: after
/// After: the tidings client. The session survives drops; what cannot be recovered is a `Gap`.
pub async fn tidings_client(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use tidings::prelude::*;
    let client = Client::builder(url).connect()?;
    client.subscribe("room:lobby")?;
    while let Some(event) = client.next_event().await {
        match event {
            ClientEvent::Message(m) => println!("{:?}", m.payload),
            ClientEvent::Gap(g) => println!("missed {}..={}: reload", g.from, g.to),
            _ => {}
        }
    }
    Ok(())
}
// ANCHOR_END: after

// ANCHOR: server_before
/// Before, on the server: a task per socket, a broadcast channel per room, all by hand.
pub type RoomSenders = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<String, tokio::sync::broadcast::Sender<String>>>,
>;
// ANCHOR_END: server_before

// ANCHOR: server_after
/// After: the hub is the rooms; publishing from server code is one call.
pub async fn announce(hub: &tidings::channels::Hub) -> Result<(), Box<dyn std::error::Error>> {
    hub.publish("room:lobby", r#"{"text":"deploy at 17:00"}"#)
        .await?;
    Ok(())
}
// ANCHOR_END: server_after
