//! Property tests of the event stream parser: the same events whatever the chunk split, the same as a line-by-line reading of the WHATWG algorithm, no panic on arbitrary bytes.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tidings_sse::parser::{EventParser, SseEvent};

/// What a parse yields: events, the last event ID string, the reconnection time.
type Outcome = (Vec<SseEvent>, String, Option<std::time::Duration>);

fn parse_chunks(input: &[u8], cuts: &[usize]) -> Outcome {
    let mut p = EventParser::new();
    let mut events = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([input.len()]) {
        p.feed(&input[at..cut]).unwrap();
        at = cut;
        events.extend(std::iter::from_fn(|| p.next_event()));
    }
    p.finish();
    events.extend(std::iter::from_fn(|| p.next_event()));
    (events, p.last_event_id().to_string(), p.reconnection_time())
}

/// The specification read literally: decode the whole stream (dropping one
/// leading BOM, invalid bytes to U+FFFD), split it into lines, run the steps.
fn reference(input: &[u8]) -> Outcome {
    let bytes = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let text = String::from_utf8_lossy(bytes);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                lines.push(std::mem::take(&mut current));
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    // `current` is an unterminated line: discarded at the end of the stream.
    let (mut data, mut event_type, mut id_buffer, mut last_id) =
        (String::new(), String::new(), String::new(), String::new());
    let mut retry = None;
    let mut events = Vec::new();
    for line in lines {
        if line.is_empty() {
            last_id = id_buffer.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let event = if event_type.is_empty() {
                "message".to_string()
            } else {
                std::mem::take(&mut event_type)
            };
            events.push(SseEvent {
                event,
                data: std::mem::take(&mut data),
                last_event_id: last_id.clone(),
            });
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event_type = value.to_string(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id_buffer = value.to_string(),
            "retry" if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => {
                retry = Some(value.bytes().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                }));
            }
            _ => {}
        }
    }
    (events, last_id, retry.map(std::time::Duration::from_millis))
}

/// Bytes that are mostly event stream syntax, with arbitrary bytes mixed in.
fn streamish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => Just(b"data".to_vec()),
        2 => Just(b"data:".to_vec()),
        3 => Just(b"data: ".to_vec()),
        2 => Just(b"id: ".to_vec()),
        1 => Just(b"id".to_vec()),
        2 => Just(b"event: ".to_vec()),
        2 => Just(b"retry: ".to_vec()),
        1 => Just(b": comment".to_vec()),
        6 => Just(b"\n".to_vec()),
        3 => Just(b"\r".to_vec()),
        3 => Just(b"\r\n".to_vec()),
        1 => Just(b"\xEF\xBB\xBF".to_vec()),
        1 => Just(b"\0".to_vec()),
        3 => "[0-9]{1,4}".prop_map(String::into_bytes),
        4 => "[a-z €]{1,6}".prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn chunk_splits_never_change_the_events(input in streamish(), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let whole = parse_chunks(&input, &[]);
        prop_assert_eq!(&parse_chunks(&input, &cuts), &whole);
        let byte_by_byte: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&parse_chunks(&input, &byte_by_byte), &whole);
    }

    #[test]
    fn matches_the_specification_read_literally(input in streamish()) {
        prop_assert_eq!(parse_chunks(&input, &[]), reference(&input));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_freely(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = parse_chunks(&input, &[]);
        prop_assert_eq!(&parse_chunks(&input, &cuts), &whole);
        prop_assert_eq!(whole, reference(&input));
    }

    #[test]
    fn the_size_limit_holds_for_any_input(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        max in 0usize..64,
    ) {
        let mut p = EventParser::with_max_event_bytes(max);
        match p.feed(&input) {
            Ok(()) => {
                while let Some(e) = p.next_event() {
                    // Decoding may grow invalid bytes into U+FFFD (3 bytes each).
                    prop_assert!(e.data.len() <= 3 * max.max(1) + 3, "{} > limit {}", e.data.len(), max);
                }
            }
            Err(e) => prop_assert!(e.is_too_large()),
        }
    }
}

#[test]
fn generated_events_round_trip_with_every_line_ending() {
    // Each event written with CRLF, LF and CR gives the same result.
    let body = "id: 1\n: c\nevent: add\ndata: a\ndata:b\n\ndata: {\"x\": 1}\n\n";
    let expected = parse_chunks(body.as_bytes(), &[]);
    assert_eq!(expected.0.len(), 2);
    for eol in ["\r\n", "\r"] {
        let text = body.replace('\n', eol);
        assert_eq!(parse_chunks(text.as_bytes(), &[]), expected, "{eol:?}");
    }
    let with_bom = format!("\u{feff}{body}");
    assert_eq!(parse_chunks(with_bom.as_bytes(), &[1, 2]), expected);
}
