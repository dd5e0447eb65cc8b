//! How a channel name becomes a JetStream stream name and subject: an injective escape into the characters both allow.

use tidings_protocol::ChannelName;

/// Longest escaped channel part kept verbatim; longer ones are cut and
/// suffixed with a hash (stream names become directory names on the server).
const MAX_TOKEN: usize = 160;

/// `channel` as one NATS subject token that is also a valid stream name
/// part: ASCII letters, digits and `-` stay, every other byte becomes `_XX`
/// (hex), so distinct channels never share a token.
pub(crate) fn token(channel: &ChannelName) -> String {
    let mut out = String::with_capacity(channel.as_str().len());
    for b in channel.as_str().bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push(hex(b >> 4));
            out.push(hex(b & 0xf));
        }
    }
    if out.len() > MAX_TOKEN {
        let hash = fnv1a(channel.as_str().as_bytes());
        out.truncate(MAX_TOKEN);
        out.push_str(&format!("_h{hash:016x}"));
    }
    out
}

fn hex(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0xf)])
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_safe_and_distinct() {
        let t = |s: &str| token(&ChannelName::new(s).unwrap());
        assert_eq!(t("room"), "room");
        assert_eq!(t("presence:lobby"), "presence_3alobby");
        assert_eq!(t("a.b"), "a_2eb");
        assert_ne!(t("a_2eb"), t("a.b"));
        assert_eq!(t("a b*>"), "a_20b_2a_3e");
        let long = "x".repeat(200);
        assert!(t(&long).len() < 200);
        assert_ne!(t(&long), t(&"x".repeat(201)));
    }
}
