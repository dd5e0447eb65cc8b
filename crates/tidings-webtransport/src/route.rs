//! Which stream a frame travels on: the channel of a `message`, `gap` or `subscribed` frame, read from the encoded bytes without decoding the payload.

use std::borrow::Cow;

use bytes::Bytes;
use tidings_codec::{BinaryCodec, FrameView};
use tidings_protocol::{CodecKind, Frame, FrameCodec, FrameType};

/// JSON heads of the frames that carry a channel's position, as both JSON
/// encoders write them (`type` first, then `channel`).
const JSON_HEADS: [&[u8]; 3] = [
    br#"{"type":"message","channel":""#,
    br#"{"type":"gap","channel":""#,
    br#"{"type":"subscribed","channel":""#,
];

/// The channel whose stream carries `frame`, or `None` for the control stream.
///
/// Only the frames that carry a channel's sequence positions (`message`,
/// `gap`, `subscribed`) go on a channel stream: their order within the
/// channel is what the receiver checks, and nothing else depends on their
/// order against other frames. JSON frames are recognised by their head and
/// the name is read in place; a name with escapes (rare: `"` or `\` in it)
/// is decoded in full. Binary frames are validated and read in place
/// ([`BinaryCodec::view`], allocation-free). A frame that does not decode is
/// left on the control stream, where the peer reports it.
#[cfg_attr(all(target_arch = "wasm32", not(feature = "client")), allow(dead_code))]
pub(crate) fn channel_of<'a>(codec: &dyn FrameCodec, frame: &'a Bytes) -> Option<Cow<'a, str>> {
    match codec.kind() {
        CodecKind::Binary => binary_channel(frame),
        _ => json_channel(codec, frame),
    }
}

fn binary_channel(frame: &Bytes) -> Option<Cow<'_, str>> {
    let view: FrameView<'_> = BinaryCodec::view(frame).ok()?;
    if view.as_message().is_none() && !is_gap_or_subscribed(&view) {
        return None;
    }
    view.channel().map(Cow::Borrowed)
}

fn is_gap_or_subscribed(view: &FrameView<'_>) -> bool {
    matches!(view.frame_type(), FrameType::Gap | FrameType::Subscribed)
}

fn json_channel<'a>(codec: &dyn FrameCodec, frame: &'a Bytes) -> Option<Cow<'a, str>> {
    let head = JSON_HEADS.iter().find(|h| frame.starts_with(h))?;
    let rest = &frame[head.len()..];
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] == b'"' {
        return std::str::from_utf8(&rest[..end]).ok().map(Cow::Borrowed);
    }
    // Escapes in the name: decode the frame (rare).
    match codec.decode(frame).ok()? {
        Frame::Message(m) => Some(Cow::Owned(m.channel.as_str().to_owned())),
        Frame::Gap(g) => Some(Cow::Owned(g.channel.as_str().to_owned())),
        Frame::Subscribed(s) => Some(Cow::Owned(s.channel.as_str().to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_codec::JsonCodec;
    use tidings_protocol::{ChannelName, Gap, Message, MessageId, Ping, Subscribed};

    fn frames(channel: &str) -> Vec<Frame> {
        let ch = ChannelName::new(channel).expect("valid name");
        vec![
            Frame::Message(Message {
                channel: ch.clone(),
                seq: 7,
                id: MessageId(9),
                payload: Bytes::from_static(b"{\"t\":1}"),
            }),
            Frame::Gap(Gap {
                channel: ch.clone(),
                from: 1,
                to: 3,
            }),
            Frame::Subscribed(Subscribed {
                channel: ch,
                seq: 4,
            }),
        ]
    }

    #[test]
    fn channel_frames_are_routed_by_their_channel_in_both_codecs() {
        let codecs: [&dyn FrameCodec; 2] = [&JsonCodec, &BinaryCodec];
        for codec in codecs {
            for name in ["room:lobby", r#"we"ird\name"#, "ü"] {
                for frame in frames(name) {
                    let bytes = codec.encode_to_bytes(&frame).expect("encodes");
                    assert_eq!(
                        channel_of(codec, &bytes).as_deref(),
                        Some(name),
                        "{frame:?} in {:?}",
                        codec.kind()
                    );
                }
            }
            let ping = codec
                .encode_to_bytes(&Frame::Ping(Ping { nonce: 1 }))
                .expect("encodes");
            assert_eq!(channel_of(codec, &ping), None);
            assert_eq!(
                channel_of(codec, &Bytes::from_static(b"\x01\x04junk")),
                None
            );
        }
    }
}
