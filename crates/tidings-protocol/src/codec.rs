//! The object-safe `FrameCodec` trait that every wire codec (JSON, binary) implements.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::codes::ErrorCode;
use crate::frame::{Frame, Message};

/// Which codec a connection uses; chosen at the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// JSON text frames (`tidings.v1.json`).
    Json,
    /// Binary frames (`tidings.v1.bin`).
    Binary,
}

impl CodecKind {
    /// Small dense index, for per-codec caches.
    pub fn index(self) -> usize {
        match self {
            CodecKind::Json => 0,
            CodecKind::Binary => 1,
        }
    }

    /// Number of codec kinds (size of per-codec caches).
    pub const COUNT: usize = 2;
}

/// Turns [`Frame`]s into bytes and back.
///
/// Decoders take untrusted network input: they must return a [`CodecError`]
/// for any malformed input and never panic.
pub trait FrameCodec: Send + Sync + fmt::Debug {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;

    /// Appends the encoding of `frame` to `out`.
    fn encode(&self, frame: &Frame, out: &mut BytesMut) -> Result<(), CodecError>;

    /// Decodes one frame. Payloads may borrow from `input` (they are `Bytes` slices).
    fn decode(&self, input: &Bytes) -> Result<Frame, CodecError>;

    /// Whether encoded frames are UTF-8 text (sent as WebSocket text messages).
    ///
    /// A text codec guarantees that every frame it encodes is valid UTF-8:
    /// transports send its frames as text without checking them again (the
    /// WebSocket transport checks only in debug builds).
    fn is_text(&self) -> bool {
        self.kind() == CodecKind::Json
    }

    /// Appends the encoding of a `Message` frame: what fan-out encodes once
    /// per message and codec. The default wraps a clone of `message` in a
    /// [`Frame`]; codecs override it to encode straight from the reference.
    fn encode_message(&self, message: &Message, out: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&Frame::Message(message.clone()), out)
    }

    /// Encodes a frame into a fresh buffer.
    fn encode_to_bytes(&self, frame: &Frame) -> Result<Bytes, CodecError> {
        let mut out = BytesMut::with_capacity(128);
        self.encode(frame, &mut out)?;
        Ok(out.freeze())
    }
}

/// Encodes frames, each into an allocation of its own, exactly its size.
///
/// A frame is encoded into a scratch buffer kept per thread (warm in cache:
/// every session on the thread uses it) and copied out. The copy is freed on
/// the same thread soon after, once written, so the allocator hands the same
/// warm memory to the next frame; being exactly its size, it needs no shared
/// reference count of its own (`Bytes` from a vector with spare room
/// allocates one). Splitting frames off a block kept per session saved the
/// allocation but cost more at scale: with thousands of sessions, each
/// session's block and its reference count are cold cache lines by the time
/// its next frame comes, and every idle session held a block.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    _private: (),
}

thread_local! {
    /// The scratch buffer of [`FrameEncoder`] on this thread.
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

impl FrameEncoder {
    /// A scratch buffer grown past this (a large frame) is dropped after use.
    const KEEP: usize = 64 * 1024;

    /// Encodes `frame` with `codec`.
    pub fn encode(&mut self, codec: &dyn FrameCodec, frame: &Frame) -> Result<Bytes, CodecError> {
        Self::encode_with(|out| codec.encode(frame, out))
    }

    /// Encodes a `Message` frame with `codec` ([`FrameCodec::encode_message`]).
    pub fn encode_message(
        &mut self,
        codec: &dyn FrameCodec,
        message: &Message,
    ) -> Result<Bytes, CodecError> {
        Self::encode_with(|out| codec.encode_message(message, out))
    }

    fn encode_with(
        encode: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
    ) -> Result<Bytes, CodecError> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut out) => {
                out.clear();
                let result = encode(&mut out).map(|()| Bytes::copy_from_slice(&out));
                if out.capacity() > Self::KEEP {
                    *out = BytesMut::new();
                }
                result
            }
            // Only if a codec encodes frames from inside `encode`: no scratch then.
            Err(_) => {
                let mut out = BytesMut::new();
                encode(&mut out)?;
                Ok(Bytes::copy_from_slice(&out))
            }
        })
    }
}

/// A codec could not encode or decode a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a well-formed frame.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The frame names a type this version does not know.
    #[error("unknown frame type `{name}`")]
    UnknownFrameType {
        /// The type name as received.
        name: String,
    },
    /// The frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The frame cannot be represented in this codec.
    #[error("cannot encode frame: {reason}")]
    Unencodable {
        /// Why.
        reason: String,
    },
}

impl CodecError {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CodecError::UnknownFrameType { .. } => ErrorCode::UnknownFrameType,
            CodecError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::MalformedFrame,
        }
    }
}
