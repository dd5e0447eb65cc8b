//! The chat's message payloads, shared with the plain-JS page: `{"text": .., "from": ..}` and the join announcement `{"kind": "join", "from": ..}`.

use serde_json::{Map, Value};

/// One received payload, as the log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Someone said something.
    Text {
        /// Who (`anonymous` when the payload names no one).
        from: String,
        /// What.
        text: String,
    },
    /// Someone joined the room (the plain-JS page announces itself).
    Join {
        /// Who.
        from: String,
    },
    /// Anything else: shown as it came.
    Other(String),
}

impl Line {
    /// Reads a payload; never fails (what is not a chat object is shown raw).
    pub fn parse(payload: &[u8]) -> Self {
        let raw = || Line::Other(String::from_utf8_lossy(payload).into_owned());
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(payload) else {
            return raw();
        };
        let from = match obj.get("from") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => "anonymous".to_owned(),
        };
        if obj.get("kind").and_then(Value::as_str) == Some("join") {
            return Line::Join { from };
        }
        match obj.get("text") {
            Some(Value::String(text)) => Line::Text {
                from,
                text: text.clone(),
            },
            _ => raw(),
        }
    }

    /// The payload of a message `text` from `from` (`anonymous` when blank).
    pub fn text(from: &str, text: &str) -> String {
        let from = from.trim();
        let mut obj = Map::new();
        obj.insert("text".to_owned(), Value::String(text.to_owned()));
        obj.insert(
            "from".to_owned(),
            Value::String(if from.is_empty() { "anonymous" } else { from }.to_owned()),
        );
        Value::Object(obj).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_plain_page_sends_and_writes_what_it_reads() {
        let sent = Line::text(" ada ", "hi \"there\"");
        assert_eq!(
            Line::parse(sent.as_bytes()),
            Line::Text {
                from: "ada".into(),
                text: "hi \"there\"".into()
            }
        );
        assert_eq!(
            Line::parse(br#"{"kind":"join","from":"bo"}"#),
            Line::Join { from: "bo".into() }
        );
        assert_eq!(
            Line::parse(br#"{"text":"x"}"#),
            Line::Text {
                from: "anonymous".into(),
                text: "x".into()
            }
        );
        assert_eq!(
            Line::parse(b"\xff not json"),
            Line::Other("\u{fffd} not json".into())
        );
        assert_eq!(Line::parse(b"[1]"), Line::Other("[1]".into()));
    }
}
