//! `SharedMessage`: one published message, encoded at most once per codec and shared by every receiver.

use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};

use crate::codec::CodecError;
use crate::codec::{CodecKind, FrameCodec, FrameEncoder};
use crate::frame::Message;
use crate::ids::{ChannelName, MessageId};

/// A message on its way to many subscribers.
///
/// Fan-out hands the same `Arc<SharedMessage>` to every session; the first
/// session using a given codec encodes the `Message` frame and every other
/// session shares that `Bytes` (a reference-count increment, no copy).
///
/// History and replay buffers keep the message for a while; a broker calls
/// [`SharedMessage::release_encoded`] once its fan-out is done, so that what
/// they keep is the message alone, not its encodings too (they are most of
/// its size; a replay encodes again).
#[derive(Debug)]
pub struct SharedMessage {
    message: Message,
    /// Boxed: a retained message (released) carries 16 bytes for it, not 72.
    encoded: Mutex<Option<Box<Encodings>>>,
}

/// One encoded frame per codec kind.
type Encodings = [Option<Bytes>; CodecKind::COUNT];

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

    fn cache(&self) -> MutexGuard<'_, Option<Box<Encodings>>> {
        self.encoded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Message` frame encoded with `codec`, computed once per codec kind
    /// (until [`SharedMessage::release_encoded`]).
    pub fn encoded(&self, codec: &dyn FrameCodec) -> Result<Bytes, CodecError> {
        let mut cache = self.cache();
        let slot = &mut cache.get_or_insert_with(Box::default)[codec.kind().index()];
        if let Some(b) = slot {
            return Ok(b.clone());
        }
        // Empty: codecs reserve what the frame needs in one go.
        let mut out = BytesMut::new();
        codec.encode_message(&self.message, &mut out)?;
        Ok(slot.insert(out.freeze()).clone())
    }

    /// The `Message` frame encoded with `codec`, without the cache: for a
    /// frame nobody else will ask for (the message's only receiver, a
    /// replay). A retained message then carries no encodings either.
    ///
    /// Encoded through the receiving session's `encoder`, so a small frame
    /// is split off its block instead of costing two allocations (the buffer
    /// and, as its capacity is an upper bound, the `Bytes` header).
    pub fn encode_unshared(
        &self,
        codec: &dyn FrameCodec,
        encoder: &mut FrameEncoder,
    ) -> Result<Bytes, CodecError> {
        encoder.encode_message(codec, &self.message)
    }

    /// Whether encodings are cached now (for tests and diagnostics: a
    /// message kept in history or a replay buffer should hold none).
    pub fn is_encoded(&self) -> bool {
        self.cache().is_some()
    }

    /// Drops the cached encodings (receivers keep the `Bytes` they took).
    /// For brokers, once a message went to every subscriber: history and
    /// replay buffers then hold the message without its encoded frames.
    pub fn release_encoded(&self) {
        *self.cache() = None;
    }
}
