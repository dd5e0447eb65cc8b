//! `SharedMessage`: one published message, encoded at most once per codec and shared by every receiver.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};

use crate::codec::{CodecKind, FrameCodec};
use crate::error::CodecError;
use crate::frame::Message;
use crate::ids::{ChannelName, MessageId};

/// A message on its way to many subscribers.
///
/// Fan-out hands the same `Arc<SharedMessage>` to every session; the first
/// session using a given codec encodes the `Message` frame and every other
/// session shares that `Bytes` (a reference-count increment, no copy).
#[derive(Debug)]
pub struct SharedMessage {
    message: Message,
    encoded: [OnceLock<Bytes>; CodecKind::COUNT],
}

impl SharedMessage {
    /// Wraps a message.
    pub fn new(channel: ChannelName, seq: u64, id: MessageId, payload: Bytes) -> Self {
        Self {
            message: Message {
                channel,
                seq,
                id,
                payload,
            },
            encoded: Default::default(),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.message.channel
    }

    /// The per-channel sequence number.
    pub fn seq(&self) -> u64 {
        self.message.seq
    }

    /// The `Message` frame encoded with `codec`, computed once per codec kind.
    pub fn encoded(&self, codec: &dyn FrameCodec) -> Result<Bytes, CodecError> {
        let slot = &self.encoded[codec.kind().index()];
        if let Some(b) = slot.get() {
            return Ok(b.clone());
        }
        // Empty: codecs reserve what the frame needs in one go.
        let mut out = BytesMut::new();
        codec.encode_message(&self.message, &mut out)?;
        let bytes = out.freeze();
        Ok(slot.get_or_init(|| bytes).clone())
    }
}
