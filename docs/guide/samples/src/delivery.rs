//! Delivery guarantees: what a client sees (messages in order, gaps, resets, acknowledgements, refusals) and the server settings that bound it.

use std::sync::Arc;
use std::time::Duration;

use tidings::prelude::*;

// ANCHOR: events
/// Every event a client can see, and what an application does with it.
pub async fn handle_events(client: &Client) {
    while let Some(event) = client.next_event().await {
        match event {
            // In order per channel, never twice, across reconnects.
            ClientEvent::Message(m) => println!("{} #{}: {:?}", m.channel, m.seq, m.payload),
            // History no longer holds `from..=to`: reload the state of the channel.
            ClientEvent::Gap(g) => println!("lost {}..={} on {}", g.from, g.to, g.channel),
            // The server lost the channel (no durable history): reload, numbering restarts.
            ClientEvent::ChannelReset { channel, seen } => println!("{channel} reset after {seen}"),
            // The server has every publish of this session up to `seq`.
            ClientEvent::PublishAcked { seq } => println!("stored up to publish {seq}"),
            // Refused for good (too large, forbidden, rate limited...): never re-sent.
            ClientEvent::PublishRefused { seq, code, .. } => println!("publish {seq}: {code}"),
            ClientEvent::Connected { resumed, .. } => println!("open (resumed: {resumed})"),
            ClientEvent::Disconnected { reason, retry_in } => {
                println!("down: {reason}, retrying in {retry_in:?}")
            }
            ClientEvent::Closed { reason } => println!("closed for good: {reason}"),
            _ => {}
        }
    }
}
// ANCHOR_END: events

// ANCHOR: server_limits
/// A hub whose sessions stay resumable for two minutes after a drop, whose slow readers lose
/// their oldest frames (and see a gap) instead of being disconnected, and whose limits are
/// explicit.
pub fn tuned_hub() -> Hub {
    use tidings::protocol::{Limits, ServerConfig, SlowConsumerPolicy};
    let session = ServerConfig::default()
        .with_resume_window(Duration::from_secs(120))
        .with_slow_consumer(SlowConsumerPolicy::DropOldest)
        .with_limits(
            Limits::default()
                .with_max_frame_bytes(64 * 1024)
                .with_max_subscriptions(100),
        );
    Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(session),
    )
}
// ANCHOR_END: server_limits
