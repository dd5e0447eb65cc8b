//! Writing events: one tidings frame per SSE event, `id:` first, the frame split into `data:` lines.

use bytes::{BufMut, BytesMut};

/// Appends one event carrying `data` (UTF-8) with the id `<token>.<frame>`
/// (when given) to `out`.
///
/// Line breaks inside `data` (CRLF, LF or CR — JSON frames only contain them
/// as whitespace inside a payload) start a new `data:` line, so the client
/// gets the frame back with LF line breaks, which JSON does not distinguish.
pub(crate) fn write_event(out: &mut BytesMut, id: Option<(&str, u64)>, data: &[u8]) {
    out.reserve(data.len() + 64);
    if let Some((token, frame)) = id {
        out.put_slice(b"id: ");
        out.put_slice(token.as_bytes());
        out.put_u8(b'.');
        let mut digits = [0u8; 20];
        out.put_slice(decimal(frame, &mut digits));
        out.put_u8(b'\n');
    }
    let mut rest = data;
    loop {
        out.put_slice(b"data: ");
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                out.put_slice(&rest[..i]);
                out.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
            None => {
                out.put_slice(rest);
                out.put_u8(b'\n');
                break;
            }
        }
    }
    out.put_u8(b'\n');
}

/// Appends a comment line (`: text`), with any line break in `text` replaced by a space.
pub(crate) fn write_comment(out: &mut BytesMut, text: &str) {
    out.put_slice(b": ");
    for b in text.bytes() {
        out.put_u8(if b == b'\n' || b == b'\r' { b' ' } else { b });
    }
    out.put_slice(b"\n\n");
}

/// The `retry:` field that opens every stream (a block of its own: no event is dispatched).
pub(crate) fn write_retry(out: &mut BytesMut, millis: u64) {
    let mut digits = [0u8; 20];
    out.put_slice(b"retry: ");
    out.put_slice(decimal(millis, &mut digits));
    out.put_slice(b"\n\n");
}

fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::EventParser;
    use proptest::prelude::*;

    fn written(id: Option<(&str, u64)>, data: &str) -> String {
        let mut out = BytesMut::new();
        write_event(&mut out, id, data.as_bytes());
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn format() {
        assert_eq!(
            written(Some(("tok", 42)), r#"{"a":1}"#),
            "id: tok.42\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            written(None, "a\r\nb\rc\nd"),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(written(None, ""), "data: \n\n");
        assert_eq!(written(Some(("t", 0)), "x"), "id: t.0\ndata: x\n\n");
        assert_eq!(
            written(Some(("t", u64::MAX)), "x"),
            "id: t.18446744073709551615\ndata: x\n\n"
        );
        let mut out = BytesMut::new();
        write_comment(&mut out, "close 4002 slow\nconsumer");
        write_retry(&mut out, 1500);
        assert_eq!(&out[..], b": close 4002 slow consumer\n\nretry: 1500\n\n");
    }

    proptest! {
        #[test]
        fn the_parser_reads_back_what_was_written(
            data in "(\\PC|\r|\n){0,64}",
            frame in any::<u64>(),
        ) {
            let mut out = BytesMut::new();
            write_retry(&mut out, 10);
            write_event(&mut out, Some(("tok", frame)), data.as_bytes());
            let mut p = EventParser::new();
            p.feed(&out).unwrap();
            let e = p.next_event().unwrap();
            let expected = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(e.data, expected);
            prop_assert_eq!(e.last_event_id, format!("tok.{frame}"));
            prop_assert!(p.next_event().is_none());
        }
    }
}
