//! SSE event ids: `<resume token>.<frame number>`, the position a reconnecting client sends back as `Last-Event-ID`.

use std::fmt;

use tidings_protocol::ResumeToken;

/// Longest token accepted in an event id.
const MAX_TOKEN: usize = 128;

/// The id of every event the server sends: the session's resume token and
/// the frame's number in the session (1, 2, 3, … never reused).
///
/// A reconnecting `EventSource` sends the id of the last event it received as
/// `Last-Event-ID`; the server resumes the session of the token from that
/// frame. The token is the session's secret, so only the client that received
/// the stream can resume it. Parsing never trusts the input: anything but
/// `[A-Za-z0-9_-]{1,128}` `.` `[0-9]{1,20}` (fitting a `u64`) is `None`, and
/// the request is served as a new session.
///
/// ```
/// use tidings_sse::EventId;
/// let id = EventId::parse("9f2c01ab.42").unwrap();
/// assert_eq!((id.token().0.as_str(), id.frame()), ("9f2c01ab", 42));
/// assert_eq!(id.to_string(), "9f2c01ab.42");
/// assert!(EventId::parse("9f2c01ab.").is_none());
/// assert!(EventId::parse("../etc.1").is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct EventId {
    token: ResumeToken,
    frame: u64,
}

impl EventId {
    /// The id of frame `frame` of the session with `token`.
    pub fn new(token: ResumeToken, frame: u64) -> Self {
        Self { token, frame }
    }

    /// Parses `<token>.<frame>`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (token, frame) = s.rsplit_once('.')?;
        let token_ok = !token.is_empty()
            && token.len() <= MAX_TOKEN
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let frame_ok =
            !frame.is_empty() && frame.len() <= 20 && frame.bytes().all(|b| b.is_ascii_digit());
        if !(token_ok && frame_ok) {
            return None;
        }
        let frame = frame.parse().ok()?;
        Some(Self {
            token: ResumeToken(token.to_string()),
            frame,
        })
    }

    /// The session's resume token.
    pub fn token(&self) -> &ResumeToken {
        &self.token
    }

    /// The frame number.
    pub fn frame(&self) -> u64 {
        self.frame
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.token.0, self.frame)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: keep it out of logs.
        write!(f, "EventId(..{})", self.frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let id = EventId::new(ResumeToken("abc123".into()), 7);
        assert_eq!(EventId::parse(&id.to_string()), Some(id));
        assert_eq!(
            EventId::parse("a.b.3").map(|i| i.frame()),
            None,
            "dots are not token characters"
        );
        for bad in [
            "",
            ".",
            "abc",
            "abc.",
            ".5",
            "abc.-1",
            "abc.+1",
            "abc. 1",
            "abc.1 ",
            "ab c.1",
            "abc.99999999999999999999",
            "abc.123456789012345678901",
            "é.1",
            "abc.1\0",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(EventId::parse(&format!("{}.1", "a".repeat(129))), None);
        assert_eq!(
            EventId::parse("abc.18446744073709551615").map(|i| i.frame()),
            Some(u64::MAX)
        );
        assert!(!format!("{:?}", EventId::parse("secret.1").unwrap()).contains("secret"));
    }
}
