//! POST bodies: one or more JSON frames (newline-delimited, or just concatenated), checked before any reaches the session.

use bytes::Bytes;
use serde_json::value::RawValue;
use tidings_protocol::{CodecError, Frame, FrameCodec, FrameType};

/// Why a POST body was refused (HTTP 400 or 413).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// No frame at all.
    #[error("empty body: expected one or more JSON frames, one per line")]
    Empty,
    /// Not a sequence of JSON values.
    #[error("malformed body: {0}")]
    Json(String),
    /// A value is not a valid frame.
    #[error("frame {index}: {error}")]
    Frame {
        /// Position of the frame in the body (0-based).
        index: usize,
        /// The codec's error.
        error: CodecError,
    },
    /// A frame only the server may send.
    #[error("frame {index}: `{frame:?}` frames are sent by the server, not by clients")]
    NotUpstream {
        /// Position of the frame in the body (0-based).
        index: usize,
        /// Its type.
        frame: FrameType,
    },
    /// One frame exceeds the session's frame limit (HTTP 413).
    #[error("frame {index} is {size} bytes, more than the limit of {max} bytes")]
    FrameTooLarge {
        /// Position of the frame in the body (0-based).
        index: usize,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl BodyError {
    /// True when the answer is 413 (too large) rather than 400.
    pub fn is_too_large(&self) -> bool {
        matches!(self, BodyError::FrameTooLarge { .. })
    }

    /// The error code of the protocol for this refusal.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            BodyError::Frame { error, .. } => error.code().as_str(),
            BodyError::FrameTooLarge { .. } => "frame_too_large",
            BodyError::NotUpstream { .. } => "unexpected_frame",
            BodyError::Empty | BodyError::Json(_) => "malformed_frame",
        }
    }
}

/// Splits `body` into frames (zero-copy slices of it) and checks each with
/// `codec`: all of them are valid client frames, or none is queued.
pub(crate) fn split_frames(
    body: &Bytes,
    codec: &dyn FrameCodec,
    max_frame: usize,
) -> Result<Vec<Bytes>, BodyError> {
    let mut frames = Vec::new();
    let values = serde_json::Deserializer::from_slice(body).into_iter::<&RawValue>();
    for (index, value) in values.enumerate() {
        let raw = value
            .map_err(|e| BodyError::Json(e.to_string()))?
            .get()
            .as_bytes();
        if raw.len() > max_frame {
            return Err(BodyError::FrameTooLarge {
                index,
                size: raw.len(),
                max: max_frame,
            });
        }
        let start = (raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize);
        let frame = match start {
            Some(s) if s + raw.len() <= body.len() => body.slice(s..s + raw.len()),
            _ => Bytes::copy_from_slice(raw),
        };
        match codec.decode(&frame) {
            Ok(
                Frame::Publish(_)
                | Frame::Ack(_)
                | Frame::Subscribe(_)
                | Frame::Unsubscribe(_)
                | Frame::Ping(_)
                | Frame::Pong(_)
                | Frame::Error(_)
                | Frame::Close(_)
                // RPC (docs/protocol.md §9): calls, client items, credits, cancels.
                | Frame::Rpc(_),
            ) => frames.push(frame),
            Ok(other) => {
                return Err(BodyError::NotUpstream {
                    index,
                    frame: other.frame_type(),
                });
            }
            Err(error) => return Err(BodyError::Frame { index, error }),
        }
    }
    if frames.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_codec::JsonCodec;

    fn split(body: &str) -> Result<Vec<String>, BodyError> {
        let body = Bytes::copy_from_slice(body.as_bytes());
        split_frames(&body, &JsonCodec::new(), 256).map(|v| {
            v.iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn newline_delimited_and_concatenated_frames() {
        let ping = r#"{"type":"ping","nonce":1}"#;
        let publish =
            "{\"type\":\"publish\",\"channel\":\"c\",\"seq\":1,\"data\":{\n  \"a\": 1\n}}";
        assert_eq!(
            split(&format!("{ping}\n{publish}\n")).unwrap(),
            [ping, publish]
        );
        assert_eq!(split(&format!("{ping}{ping}")).unwrap(), [ping, ping]);
        assert_eq!(split(&format!("\r\n  {ping}  \n\n")).unwrap(), [ping]);
        let call = r#"{"type":"call","call":1,"method":"chat.rooms","data":null}"#;
        let credit = r#"{"type":"credit","call":1,"n":4}"#;
        assert_eq!(
            split(&format!("{call}\n{credit}")).unwrap(),
            [call, credit],
            "RPC frames go up by POST too"
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(split(""), Err(BodyError::Empty));
        assert_eq!(split(" \n "), Err(BodyError::Empty));
        assert!(matches!(
            split("{\"type\":\"ping\""),
            Err(BodyError::Json(_))
        ));
        assert!(matches!(split("not json"), Err(BodyError::Json(_))));
        let e = split(r#"{"type":"ping","nonce":1} {"type":"teleport"}"#).unwrap_err();
        assert!(matches!(e, BodyError::Frame { index: 1, .. }), "{e}");
        assert_eq!(e.code(), "unknown_frame_type");
        let e = split(r#"{"type":"welcome","version":1,"session":"s","resume_token":"t","resumed":false,"heartbeat_ms":1,"max_frame":1,"publish_acked":0}"#).unwrap_err();
        assert!(matches!(e, BodyError::NotUpstream { index: 0, .. }), "{e}");
        let e = split(r#"{"type":"hello","version":1,"positions":[]}"#).unwrap_err();
        assert!(
            matches!(e, BodyError::NotUpstream { .. }),
            "hello comes from the GET request: {e}"
        );
        let big = format!(
            r#"{{"type":"publish","channel":"c","seq":1,"data":"{}"}}"#,
            "x".repeat(300)
        );
        let e = split(&big).unwrap_err();
        assert!(e.is_too_large(), "{e}");
        assert!(matches!(split("\u{0}"), Err(BodyError::Json(_))));
    }
}
