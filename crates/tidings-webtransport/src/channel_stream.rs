//! The header of a channel stream (docs/protocol.md §10): a kind byte and the channel's name, before that channel's length-prefixed frames.

use bytes::BytesMut;

use crate::error::FramingError;

/// First byte of a channel stream: a tidings channel stream, format 1.
pub const CHANNEL_STREAM: u8 = 0x01;

/// Longest channel name (bytes), as in docs/protocol.md §2.
pub const MAX_CHANNEL_NAME: usize = 256;

/// Appends the header of `channel`'s stream: `0x01`, the name's length
/// (2 bytes, big-endian), the name (UTF-8).
pub fn write_header(out: &mut BytesMut, channel: &str) {
    out.reserve(3 + channel.len());
    out.extend_from_slice(&[CHANNEL_STREAM]);
    out.extend_from_slice(&(channel.len() as u16).to_be_bytes());
    out.extend_from_slice(channel.as_bytes());
}

/// Reads a channel stream's header from the start of `buf`: `Ok(None)` while
/// more bytes are needed, else the channel and the header's length.
pub fn read_header(buf: &[u8]) -> Result<Option<(String, usize)>, FramingError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if kind != CHANNEL_STREAM {
        return Err(FramingError::StreamHeader(format!(
            "unknown stream kind 0x{kind:02x} (a channel stream starts with 0x01)"
        )));
    }
    if buf.len() < 3 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
    if len == 0 || len > MAX_CHANNEL_NAME {
        return Err(FramingError::StreamHeader(format!(
            "channel name of {len} bytes (1..={MAX_CHANNEL_NAME})"
        )));
    }
    let Some(name) = buf.get(3..3 + len) else {
        return Ok(None);
    };
    let name = std::str::from_utf8(name)
        .map_err(|_| FramingError::StreamHeader("channel name is not UTF-8".into()))?;
    Ok(Some((name.to_owned(), 3 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_at_any_split() {
        let mut out = BytesMut::new();
        write_header(&mut out, "room:lobby");
        assert_eq!(&out[..3], &[1, 0, 10]);
        for cut in 0..out.len() {
            assert_eq!(read_header(&out[..cut]), Ok(None), "cut {cut}");
        }
        out.extend_from_slice(b"rest");
        assert_eq!(read_header(&out), Ok(Some(("room:lobby".into(), 13))));
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        for bad in [
            &[0x02u8, 0, 1, b'a'][..],
            &[1, 0, 0],
            &[1, 1, 1],
            &[1, 0, 1, 0xff],
        ] {
            assert!(
                matches!(read_header(bad), Err(FramingError::StreamHeader(_))),
                "{bad:?}"
            );
        }
    }
}
