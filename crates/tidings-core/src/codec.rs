//! The object-safe `FrameCodec` trait that every wire codec (JSON, binary) implements.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::error::CodecError;
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

/// Encodes frames into one reusable buffer: each frame becomes a `Bytes` split
/// off a shared 1 KiB block, so small frames cost no allocation of their own
/// (the block is reclaimed once every frame split from it has been written).
/// The block is small because every idle session holds one.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    scratch: BytesMut,
}

impl FrameEncoder {
    /// Size of the blocks frames are split from.
    pub const BLOCK: usize = 1024;

    /// Encodes `frame` with `codec`.
    pub fn encode(&mut self, codec: &dyn FrameCodec, frame: &Frame) -> Result<Bytes, CodecError> {
        self.encode_with(|out| codec.encode(frame, out))
    }

    /// Encodes a `Message` frame with `codec` ([`FrameCodec::encode_message`]).
    pub fn encode_message(
        &mut self,
        codec: &dyn FrameCodec,
        message: &Message,
    ) -> Result<Bytes, CodecError> {
        self.encode_with(|out| codec.encode_message(message, out))
    }

    fn encode_with(
        &mut self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
    ) -> Result<Bytes, CodecError> {
        if self.scratch.capacity() < 256 {
            self.scratch.reserve(Self::BLOCK);
        }
        match encode(&mut self.scratch) {
            Ok(()) => Ok(self.scratch.split().freeze()),
            Err(e) => {
                self.scratch.clear();
                Err(e)
            }
        }
    }
}
