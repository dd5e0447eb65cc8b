//! The hand-written frames against the real JSON codec: what the generator writes decodes to the frames it means, and what the server's encoder writes reads back with the fields the generator needs.

use bytes::Bytes;
use tidings_codec::{JsonCodec, SUBPROTOCOL_JSON};
use tidings_loadgen::{
    CLOSE, Frame, FrameBuf, HELLO, SUBPROTOCOL, payload, publish, sent_ns, subscribe,
};
use tidings_protocol::{
    Ack, ChannelName, Close, Frame as Wire, FrameCodec, Hello, Message, MessageId,
    PROTOCOL_VERSION, Ping, Publish, PublishAck, Subscribe, Subscribed,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn decode(text: &str) -> Wire {
    JsonCodec::new()
        .decode(&Bytes::copy_from_slice(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn encode(frame: &Wire) -> String {
    let bytes = JsonCodec::new().encode_to_bytes(frame).expect("encodes");
    String::from_utf8(bytes.to_vec()).expect("JSON is UTF-8")
}

/// The text of a frame written by a [`FrameBuf`].
fn text(m: &WsMessage) -> String {
    String::from_utf8(m.clone().into_data().to_vec()).expect("a text frame")
}

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).expect("a valid channel name")
}

#[test]
fn set_up_frames_are_what_the_codec_reads() {
    assert_eq!(SUBPROTOCOL, SUBPROTOCOL_JSON);
    assert_eq!(
        decode(HELLO),
        Wire::Hello(Hello {
            version: PROTOCOL_VERSION,
            ..Hello::default()
        })
    );
    assert_eq!(
        decode(CLOSE),
        Wire::Close(Close {
            code: 1000,
            reason: "done".to_owned(),
        })
    );
    assert_eq!(
        decode(&subscribe("load:7")),
        Wire::Subscribe(Subscribe {
            channel: channel("load:7"),
            after: None,
        })
    );
}

#[test]
fn hot_frames_are_what_the_codec_reads() {
    let t = 1_234_567;
    let publish_frame = Wire::Publish(Publish {
        channel: channel("load:7"),
        seq: 42,
        payload: Bytes::from(payload(t)),
    });
    assert_eq!(decode(&publish("load:7", 42, t)), publish_frame);
    let mut out = FrameBuf::default();
    assert_eq!(decode(&text(&out.publish("load:7", 42, t))), publish_frame);
    assert_eq!(
        decode(&text(&out.ack("load:7", 41))),
        Wire::Ack(Ack {
            channel: channel("load:7"),
            seq: 41,
        })
    );
    assert_eq!(
        decode(&text(&out.pong(u64::MAX))),
        Wire::Pong(Ping { nonce: u64::MAX })
    );
}

#[test]
fn the_servers_frames_read_back() {
    let t = 9_876_543_210;
    let message = encode(&Wire::Message(Message {
        channel: channel("load:7"),
        seq: 42,
        id: MessageId(9),
        payload: Bytes::from(payload(t)),
    }));
    let frame = Frame::parse(&message).unwrap();
    assert_eq!(
        (frame.kind, frame.channel, frame.seq, frame.sent_ns),
        ("message", Some("load:7"), Some(42), Some(t))
    );
    assert_eq!(sent_ns(&message), Some(t));

    let subscribed = encode(&Wire::Subscribed(Subscribed {
        channel: channel("load:fanout"),
        seq: 3,
    }));
    let frame = Frame::parse(&subscribed).unwrap();
    assert_eq!(
        (frame.kind, frame.channel, frame.seq),
        ("subscribed", Some("load:fanout"), Some(3))
    );

    let ack = encode(&Wire::PublishAck(PublishAck { seq: u64::MAX }));
    let frame = Frame::parse(&ack).unwrap();
    assert_eq!((frame.kind, frame.seq), ("publish_ack", Some(u64::MAX)));

    let ping = encode(&Wire::Ping(Ping { nonce: 77 }));
    let frame = Frame::parse(&ping).unwrap();
    assert_eq!((frame.kind, frame.nonce), ("ping", Some(77)));

    // A payload that is not one of ours: the frame, without a send time.
    let other = encode(&Wire::Message(Message {
        channel: channel("load:7"),
        seq: 1,
        id: MessageId(1),
        payload: Bytes::from_static(b"\x00\xff"),
    }));
    let frame = Frame::parse(&other).unwrap();
    assert_eq!((frame.kind, frame.sent_ns), ("message", None));
}
