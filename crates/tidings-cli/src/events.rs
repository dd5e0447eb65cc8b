//! How the commands print a session's events: one line each, stable enough for scripts (`message CH #SEQ PAYLOAD`, `gap CH FROM..=TO`, ...).

use tidings::protocol::ClientEvent;

/// A payload as text: UTF-8 as it is, anything else as `0x` and hex digits.
pub fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            let mut s = String::with_capacity(2 + payload.len() * 2);
            s.push_str("0x");
            for b in payload {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// The line printed for `event`.
pub fn line(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Connected { session, resumed } => {
            if *resumed {
                format!("connected session={} (resumed: nothing lost)", session.0)
            } else {
                format!("connected session={}", session.0)
            }
        }
        ClientEvent::Disconnected { reason, retry_in } => format!(
            "disconnected: {reason} (reconnecting in {} ms)",
            retry_in.as_millis()
        ),
        ClientEvent::Message(m) => format!(
            "message {} #{} {}",
            m.channel,
            m.seq,
            payload_text(&m.payload)
        ),
        ClientEvent::Gap(g) => format!(
            "gap {} {}..={} (history no longer has them: reload)",
            g.channel, g.from, g.to
        ),
        ClientEvent::ChannelReset { channel, seen } => {
            format!("reset {channel} after #{seen} (the server lost the channel: reload)")
        }
        ClientEvent::Subscribed { channel, seq } => format!("subscribed {channel} at #{seq}"),
        ClientEvent::PublishAcked { seq } => format!("acked publish {seq}"),
        ClientEvent::PublishRefused {
            seq,
            channel,
            code,
            message,
        } => format!("refused publish {seq} on {channel}: {code}: {message}"),
        ClientEvent::Error { code, message } => format!("error {code}: {message}"),
        ClientEvent::Closed { reason } => format!("closed: {reason}"),
        other => format!("{other:?}"),
    }
}
