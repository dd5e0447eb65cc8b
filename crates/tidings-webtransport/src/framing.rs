//! Length-prefixed frames on a byte stream (docs/protocol.md: WebTransport): a 4-byte big-endian length, then one codec frame.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::FramingError;

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

/// Splits a received byte stream into frames, checking each length against a limit
/// before a byte of the frame is buffered.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    /// A reader accepting frames up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(8 << 10),
            max,
        }
    }

    /// The frame size limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into (grown so that at least `min` bytes fit).
    pub fn spare(&mut self, min: usize) -> &mut BytesMut {
        self.buf.reserve(min);
        &mut self.buf
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or the
    /// framing error (the stream is then unusable).
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FramingError> {
        if self.buf.len() < PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max {
            return Err(FramingError::TooLarge {
                size: len,
                max: self.max,
            });
        }
        if len == 0 {
            return Err(FramingError::Empty);
        }
        if self.buf.len() < PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Checks the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FramingError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let missing = if self.buf.len() < PREFIX {
            PREFIX - self.buf.len()
        } else {
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            (PREFIX + len).saturating_sub(self.buf.len())
        };
        Err(FramingError::Truncated { missing })
    }
}

/// Appends `frame` with its length prefix to `out`.
pub fn write_frame(out: &mut BytesMut, frame: &[u8]) {
    out.reserve(PREFIX + frame.len());
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let mut wire = BytesMut::new();
        for f in [&b"a"[..], b"hello", &[7u8; 300]] {
            write_frame(&mut wire, f);
        }
        for split in 1..wire.len() {
            let mut r = FrameReader::new(1024);
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                r.extend(chunk);
                while let Some(f) = r.next_frame().expect("valid") {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(&got[1][..], b"hello");
            r.finish().expect("ends on a boundary");
        }
    }

    #[test]
    fn oversized_empty_and_truncated_frames_are_typed_errors() {
        let mut r = FrameReader::new(16);
        r.extend(&17u32.to_be_bytes());
        assert_eq!(
            r.next_frame(),
            Err(FramingError::TooLarge { size: 17, max: 16 })
        );
        let mut r = FrameReader::new(16);
        r.extend(&[0, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(FramingError::Empty));
        let mut r = FrameReader::new(16);
        r.extend(&[0, 0, 0, 5, 1]);
        assert_eq!(r.next_frame(), Ok(None));
        assert_eq!(r.finish(), Err(FramingError::Truncated { missing: 4 }));
    }
}
