//! Sans-IO pieces both client transports (native and browser) share: the reader of one channel stream (docs/protocol.md §10: its header, then its channel's length-prefixed frames, each checked to belong to that channel) and the receive steps around it (control frames first, framing failures as typed errors with their close code).

use bytes::{Buf, Bytes, BytesMut};
use tidings_protocol::FrameCodec;
use tidings_runtime::TransportError;

use crate::channel_stream::read_header;
use crate::error::{FramingError, WtError, close_code};
use crate::framing::FrameReader;
use crate::route::channel_of;

/// What reading a client's channel streams gave.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) enum Incoming {
    /// A frame of some channel.
    Frame(Bytes),
    /// Bad input on a channel stream: end the session with this error.
    Bad(FramingError),
    /// The server opened more channel streams than allowed.
    TooMany {
        /// Channel streams the client accepts.
        limit: usize,
    },
}

/// The bytes of one channel stream so far, split into its header and frames.
#[derive(Debug)]
pub(crate) struct LaneReader {
    /// The channel named by the header, once read.
    channel: Option<String>,
    head: BytesMut,
    frames: FrameReader,
}

#[cfg_attr(not(feature = "client"), allow(dead_code))]
impl LaneReader {
    /// A reader accepting frames up to `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        Self {
            channel: None,
            head: BytesMut::new(),
            frames: FrameReader::new(max_frame),
        }
    }

    /// Appends bytes received on the stream.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.channel.is_some() {
            self.frames.extend(data);
        } else {
            self.head.extend_from_slice(data);
        }
    }

    /// The next complete frame (`Ok(None)`: more bytes needed), or the
    /// violation that makes the stream (and its session) unusable: a bad
    /// header, bad framing, or a frame that is not one of its channel's
    /// `message` / `gap` / `subscribed` frames.
    pub(crate) fn next_frame(
        &mut self,
        codec: &dyn FrameCodec,
    ) -> Result<Option<Bytes>, FramingError> {
        if self.channel.is_none() {
            let Some((channel, len)) = read_header(&self.head)? else {
                return Ok(None);
            };
            self.head.advance(len);
            self.frames.extend(&self.head);
            self.head.clear();
            self.channel = Some(channel);
        }
        let Some(frame) = self.frames.next_frame()? else {
            return Ok(None);
        };
        let stream = self.channel.as_deref().unwrap_or_default();
        if channel_of(codec, &frame).as_deref() != Some(stream) {
            return Err(FramingError::WrongChannel {
                stream: stream.to_owned(),
            });
        }
        Ok(Some(frame))
    }

    /// The next frame or violation (`Some(Some(_))`), `Some(None)` once the
    /// stream is `done` and drained, `None` while more bytes are needed.
    pub(crate) fn next(&mut self, codec: &dyn FrameCodec, done: bool) -> Option<Option<Incoming>> {
        match self.next_frame(codec) {
            Ok(Some(frame)) => Some(Some(Incoming::Frame(frame))),
            Err(e) => Some(Some(Incoming::Bad(e))),
            Ok(None) if done => Some(None),
            Ok(None) => None,
        }
    }

    /// The stream ended (no more bytes): a violation when it ended inside a
    /// header or frame, else nothing.
    pub(crate) fn ended(&self) -> Option<Incoming> {
        self.finish().err().map(Incoming::Bad)
    }

    /// The stream ended: checks it ended on a frame boundary (the server
    /// finishes its channel streams on a graceful close) or carried nothing.
    pub(crate) fn finish(&self) -> Result<(), FramingError> {
        match &self.channel {
            Some(_) => self.frames.finish(),
            None if self.head.is_empty() => Ok(()),
            None => Err(FramingError::StreamHeader(
                "the stream ended inside its header".into(),
            )),
        }
    }
}

/// What a client transport's receiving side knows besides the bytes: the
/// welcome passed (channel streams are read only after it), a framing
/// failure (its close code and reason end the session), the end.
#[derive(Debug, Default)]
pub(crate) struct RecvState {
    pub(crate) welcomed: bool,
    pub(crate) failed: Option<(u32, String)>,
    pub(crate) eof: bool,
}

impl RecvState {
    /// `Some` when nothing more is read: the framing failure again (for a
    /// caller that handled the frames read before it first), or the end.
    pub(crate) fn over(&self) -> Option<Option<Result<Bytes, TransportError>>> {
        if let Some((_, reason)) = &self.failed {
            return Some(Some(Err(TransportError::Protocol(reason.clone()))));
        }
        self.eof.then_some(None)
    }

    /// The next complete control frame of `frames` (the first is the
    /// welcome), or the framing error that ends the session.
    pub(crate) fn control(
        &mut self,
        frames: &mut FrameReader,
    ) -> Option<Result<Bytes, TransportError>> {
        match frames.next_frame() {
            Ok(Some(frame)) => {
                self.welcomed = true;
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => Some(Err(self.fail(e))),
        }
    }

    /// Bad input: the typed error, and the close code and reason kept for the close.
    pub(crate) fn fail(&mut self, e: FramingError) -> TransportError {
        tracing::warn!(error = %e, "bad input on a WebTransport stream");
        self.failed = Some((e.close_code(), e.to_string()));
        match e {
            FramingError::TooLarge { size, max } => TransportError::MessageTooLarge { size, max },
            other => TransportError::Protocol(other.to_string()),
        }
    }

    /// What the channel streams gave, as the receive result.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn channel(&mut self, got: Incoming) -> Result<Bytes, TransportError> {
        match got {
            Incoming::Frame(frame) => Ok(frame),
            Incoming::Bad(e) => Err(self.fail(e)),
            Incoming::TooMany { limit } => {
                let e = WtError::TooManyStreams { limit };
                tracing::warn!(error = %e, "closing the session");
                self.failed = Some((close_code::UNEXPECTED_STREAM, e.to_string()));
                Err(TransportError::Protocol(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel_stream::write_header;
    use crate::framing::write_frame;
    use tidings_codec::{BinaryCodec, JsonCodec};
    use tidings_protocol::{ChannelName, Frame, Message, MessageId};

    fn message(codec: &dyn FrameCodec, channel: &str, seq: u64) -> Bytes {
        let frame = Frame::Message(Message {
            channel: ChannelName::new(channel).expect("valid name"),
            seq,
            id: MessageId(seq),
            payload: Bytes::from_static(b"{\"t\":1}"),
        });
        codec.encode_to_bytes(&frame).expect("encodes")
    }

    #[test]
    fn a_stream_split_anywhere_gives_its_frames_in_order() {
        let codecs: [&dyn FrameCodec; 2] = [&JsonCodec, &BinaryCodec];
        for codec in codecs {
            let mut wire = BytesMut::new();
            write_header(&mut wire, "room:a");
            for seq in 1..=3 {
                write_frame(&mut wire, &message(codec, "room:a", seq));
            }
            for split in 1..wire.len() {
                let mut lane = LaneReader::new(1 << 16);
                let mut got = Vec::new();
                for chunk in wire.chunks(split) {
                    lane.extend(chunk);
                    while let Some(f) = lane.next_frame(codec).expect("valid stream") {
                        got.push(f);
                    }
                }
                assert_eq!(got.len(), 3, "split {split}");
                assert_eq!(got[2], message(codec, "room:a", 3));
                lane.finish().expect("ended on a boundary");
            }
        }
    }

    #[test]
    fn another_channels_frame_or_a_cut_header_is_a_typed_error() {
        let codec = JsonCodec;
        let mut wire = BytesMut::new();
        write_header(&mut wire, "room:a");
        write_frame(&mut wire, &message(&codec, "room:b", 1));
        let mut lane = LaneReader::new(1 << 16);
        lane.extend(&wire);
        assert_eq!(
            lane.next_frame(&codec),
            Err(FramingError::WrongChannel {
                stream: "room:a".into()
            })
        );
        let mut cut = LaneReader::new(1 << 16);
        cut.extend(&wire[..4]);
        assert_eq!(cut.next_frame(&codec), Ok(None));
        assert!(matches!(cut.finish(), Err(FramingError::StreamHeader(_))));
        assert_eq!(LaneReader::new(16).finish(), Ok(()));
    }
}
