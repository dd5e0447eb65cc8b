//! Payload validator of the JSON codec (`JsonCodec::whole_json_value`): the same answer as `serde_json::from_slice::<&RawValue>` covering the whole input, on generated JSON (deeply nested, escapes, numbers of every shape, whitespace), mutations of it, arbitrary bytes and a table of edge cases.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::value::RawValue;
use tidings_codec::JsonCodec;

/// The reference: serde_json's own answer, a `RawValue` covering the whole input.
fn serde_says(b: &[u8]) -> Option<&str> {
    match serde_json::from_slice::<&RawValue>(b) {
        Ok(raw) if raw.get().len() == b.len() => Some(raw.get()),
        _ => None,
    }
}

fn same(b: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        JsonCodec::whole_json_value(b),
        serde_says(b),
        "input {:?}",
        String::from_utf8_lossy(b)
    );
    Ok(())
}

/// Asserts both agree on `b` and that the answer is `want`.
#[track_caller]
fn expect(b: &[u8], want: bool) {
    let ours = JsonCodec::whole_json_value(b);
    let theirs = serde_says(b);
    let shown = String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned();
    assert_eq!(
        ours, theirs,
        "validator and serde_json disagree on {shown:?}"
    );
    assert_eq!(ours.is_some(), want, "unexpected answer on {shown:?}");
    if let Some(text) = ours {
        assert_eq!(text.as_bytes(), b);
    }
}

// ---------------------------------------------------------------------------
// Structural generator of JSON text

#[derive(Debug, Clone)]
enum J {
    /// A literal or number, written as is.
    Atom(String),
    /// A string, its contents already escaped.
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// Pieces of string contents: plain text (any Unicode but `"`, `\` and
/// controls), every simple escape, `\u` with any hex (upper and lower case),
/// lone and paired surrogates, DEL and multi-byte characters.
fn string_contents() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[^\"\\\\\\x00-\\x1f]{0,8}",
        1 => prop::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])
            .prop_map(String::from),
        1 => "[0-9a-fA-F]{4}".prop_map(|h| format!("\\u{h}")),
        1 => (0xd800u32..0xe000).prop_map(|c| format!("\\u{c:04x}")),
        1 => Just("\\ud83d\\ude00".to_string()),
        1 => Just("\u{7f}é€😀\u{10ffff}".to_string()),
    ];
    proptest::collection::vec(piece, 0..5).prop_map(|v| v.concat())
}

/// Numbers of every shape the grammar allows: huge integers and exponents
/// (never range-checked by `RawValue`), fractions, signs, `E`, `-0`.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,25})?",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::to_string(&f).unwrap()),
        Just("-0".to_string()),
        Just("0e0".to_string()),
        Just("1E-0".to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        prop::sample::select(vec!["true", "false", "null"]).prop_map(|s| J::Atom(s.into())),
        number().prop_map(J::Atom),
        string_contents().prop_map(J::Str),
    ]
}

fn tree() -> impl Strategy<Value = J> {
    leaf().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            proptest::collection::vec((string_contents(), inner), 0..6).prop_map(J::Obj),
        ]
    })
}

/// A tree wrapped in up to 140 more containers (arrays or objects, some with
/// a sibling after the inner one): nesting well past 128.
fn deep_tree() -> impl Strategy<Value = J> {
    (
        tree(),
        proptest::collection::vec((any::<bool>(), any::<bool>()), 0..=140),
    )
        .prop_map(|(mut j, layers)| {
            for (object, sibling) in layers {
                let mut items = vec![j];
                if sibling {
                    items.push(J::Atom("1".into()));
                }
                j = if object {
                    J::Obj(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(k, v)| (format!("k{k}"), v))
                            .collect(),
                    )
                } else {
                    J::Arr(items)
                };
            }
            j
        })
}

/// Writes the next whitespace of `ws` (nothing when `ws` is empty).
fn gap(ws: &[String], k: &mut usize, out: &mut String) {
    if !ws.is_empty() {
        out.push_str(&ws[*k % ws.len()]);
        *k += 1;
    }
}

/// Writes `j`, putting `ws[k % ws.len()]` (the next one each time) wherever
/// JSON allows whitespace inside containers; nothing when `ws` is empty.
fn write(j: &J, ws: &[String], k: &mut usize, out: &mut String) {
    match j {
        J::Atom(a) => out.push_str(a),
        J::Str(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        J::Arr(items) => {
            out.push('[');
            gap(ws, k, out);
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    gap(ws, k, out);
                    out.push(',');
                    gap(ws, k, out);
                }
                write(item, ws, k, out);
            }
            gap(ws, k, out);
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            gap(ws, k, out);
            for (n, (key, value)) in members.iter().enumerate() {
                if n > 0 {
                    gap(ws, k, out);
                    out.push(',');
                    gap(ws, k, out);
                }
                out.push('"');
                out.push_str(key);
                out.push('"');
                gap(ws, k, out);
                out.push(':');
                gap(ws, k, out);
                write(value, ws, k, out);
            }
            gap(ws, k, out);
            out.push('}');
        }
    }
}

/// JSON text of a generated tree, compact or with whitespace.
fn json_text() -> impl Strategy<Value = Vec<u8>> {
    (
        deep_tree(),
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec("[ \t\n\r]{0,3}", 1..8),
        ],
    )
        .prop_map(|(j, ws)| {
            let mut out = String::new();
            write(&j, &ws, &mut 0, &mut out);
            out.into_bytes()
        })
}

// ---------------------------------------------------------------------------
// Mutations

/// Bytes that matter to the grammar (and a few that break UTF-8).
const INTERESTING: &[u8] = b"{}[]\",:\\/ \t\n\r\x0c0123456789-+.eEtrufalsnbx\x00\x1f\x7f\x80\xbf\xc0\xc3\xa9\xed\xef\xf4\xff";

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index),
    Insert(Index, u8),
    Replace(Index, u8),
    FlipBit(Index, u8),
    Truncate(Index),
    Append(Vec<u8>),
    Prepend(Vec<u8>),
}

fn some_byte() -> impl Strategy<Value = u8> {
    prop_oneof![prop::sample::select(INTERESTING), any::<u8>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let junk = prop_oneof![
        "[ \t\n\r]{1,3}".prop_map(String::into_bytes),
        proptest::collection::vec(some_byte(), 1..4),
    ];
    prop_oneof![
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), some_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), some_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        junk.clone().prop_map(Mutation::Append),
        junk.prop_map(Mutation::Prepend),
    ]
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let len = b.len();
    match m {
        Mutation::Delete(i) if len > 0 => {
            b.remove(i.index(len));
        }
        Mutation::Insert(i, byte) => b.insert(i.index(len + 1), *byte),
        Mutation::Replace(i, byte) if len > 0 => b[i.index(len)] = *byte,
        Mutation::FlipBit(i, bit) if len > 0 => b[i.index(len)] ^= 1 << bit,
        Mutation::Truncate(i) => b.truncate(i.index(len + 1)),
        Mutation::Append(junk) => b.extend_from_slice(junk),
        Mutation::Prepend(junk) => {
            b.splice(0..0, junk.iter().copied());
        }
        _ => {}
    }
}

/// Short byte strings over the grammar's alphabet: reach valid and nearly
/// valid JSON far more often than uniform bytes.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop::sample::select(INTERESTING), 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// (1) Generated JSON is accepted by both, compact or with whitespace,
    /// with its text returned as is; with whitespace around it, by neither.
    #[test]
    fn generated_json(text in json_text()) {
        same(&text)?;
        prop_assert!(JsonCodec::whole_json_value(&text).is_some(), "refused {:?}", String::from_utf8_lossy(&text));
        for (before, after) in [(" ", ""), ("", "\n"), ("\t", "\r")] {
            let wrapped = [before.as_bytes(), &text, after.as_bytes()].concat();
            same(&wrapped)?;
        }
    }

    /// (2) Mutations of generated JSON: both give the same answer.
    #[test]
    fn mutated_json(
        text in json_text(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut b = text;
        for m in &mutations {
            apply(&mut b, m);
            same(&b)?;
        }
    }

    /// Mutations of small generated documents (no deep wrapping), where a
    /// single mutation lands on a structural byte more often.
    #[test]
    fn mutated_small_json(
        j in tree(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut s = String::new();
        write(&j, &[], &mut 0, &mut s);
        let mut b = s.into_bytes();
        for m in &mutations {
            apply(&mut b, m);
            same(&b)?;
        }
    }

    /// (3) Arbitrary bytes, uniform and over the grammar's alphabet.
    #[test]
    fn arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        same(&b)?;
    }

    #[test]
    fn json_ish(b in json_ish_bytes()) {
        same(&b)?;
    }

    /// Arbitrary strings (valid UTF-8) in quotes, raw (controls, quotes and
    /// backslashes unescaped) and as serde_json writes them.
    #[test]
    fn strings(s in any::<String>()) {
        same(format!("\"{s}\"").as_bytes())?;
        let written = serde_json::to_string(&s).unwrap();
        same(written.as_bytes())?;
        prop_assert!(JsonCodec::whole_json_value(written.as_bytes()).is_some());
    }

    /// A backslash followed by any character, and `\u` followed by up to
    /// five characters, hex or not.
    #[test]
    fn escapes(c in any::<char>(), after in "[0-9a-fA-FgG\"\\ \t]{0,5}") {
        same(format!("\"\\{c}\"").as_bytes())?;
        same(format!("\"\\{c}{after}\"").as_bytes())?;
        same(format!("\"\\u{after}\"").as_bytes())?;
        same(format!("[\"\\u{after}").as_bytes())?;
    }

    /// Arbitrary number-like text.
    #[test]
    fn numbers(s in "[-+]?[0-9]{0,4}(\\.[0-9]{0,3})?([eE][-+]?[0-9]{0,3})?") {
        same(s.as_bytes())?;
        same(format!("[{s}]").as_bytes())?;
    }
}

// ---------------------------------------------------------------------------
// (4) Edge cases

#[test]
fn edge_cases() {
    let table: &[(&[u8], bool)] = &[
        (b"", false),
        (b" ", false),
        (b" 1", false),
        (b"1 ", false),
        (b"\n1", false),
        (b"1\r", false),
        (b"1", true),
        (b"0", true),
        (b"01", false),
        (b"-", false),
        (b"-0", true),
        (b"-01", false),
        (b"-a", false),
        (b"+1", false),
        (b"1.", false),
        (b".5", false),
        (b"1.e5", false),
        (b"1.5", true),
        (b"1e", false),
        (b"1e+", false),
        (b"1e-", false),
        (b"1E-0", true),
        (b"1e+5", true),
        (b"1e5.0", false),
        (b"0.0e00", true),
        (b"123456789012345678901234567890", true),
        (b"-123456789012345678901234567890.5", true),
        (b"1e999999999999999999999", true),
        (b"-1e-99999999999", true),
        (b"1.7976931348623157e309", true),
        (b"[1,]", false),
        (b"[,1]", false),
        (b"[,]", false),
        (b"[1 2]", false),
        (b"[1,,2]", false),
        (b"[]", true),
        (b"[ ]", true),
        (b"[\t\n\r ]", true),
        (b"[\x0c]", false),
        (b"{}", true),
        (b"{ }", true),
        (b"{\"a\":1,}", false),
        (b"{\"a\":1 , \"b\" : [ ] }", true),
        (b"{1:2}", false),
        (b"{\"a\"}", false),
        (b"{\"a\":}", false),
        (b"{\"a\" 1}", false),
        (b"{\"a\":1\"b\":2}", false),
        (b"{,}", false),
        (b"[}", false),
        (b"{]", false),
        (b"[1}", false),
        (b"{\"a\":1]", false),
        (b"[]]", false),
        (b"[[]", false),
        (b"[] []", false),
        (b"\"\"", true),
        (b"\"", false),
        (b"\"abc", false),
        (b"\"\\\"", false),
        (b"\"\\u12\"", false),
        (b"\"\\u12", false),
        (b"\"\\u123", false),
        (b"\"\\u00zz\"", false),
        (b"\"\\u00Af\"", true),
        (b"\"\\U0041\"", false),
        (b"\"\\x41\"", false),
        (b"\"\\'\"", false),
        (b"\"\\a\"", false),
        (b"\"\\ud800\"", true),
        (b"\"\\udc00\\ud800\"", true),
        (b"\"\\ud83d\\ude00\"", true),
        (b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", true),
        (b"\"\t\"", false),
        (b"\"\n\"", false),
        (b"\"\x00\"", false),
        (b"\"\x1f\"", false),
        (b"\"\x7f\"", true),
        (
            b"\"a long string with a control \x01 after the first eight\"",
            false,
        ),
        (b"\"a long string, a quote here \" and more", false),
        ("\"é€😀\"".as_bytes(), true),
        (b"true", true),
        (b"false", true),
        (b"null", true),
        (b"tru", false),
        (b"nulll", false),
        (b"nul", false),
        (b"True", false),
        (b"NaN", false),
        (b"Infinity", false),
        (b"[true,false,null]", true),
        (b"[truefalse]", false),
        // Invalid UTF-8: a lone continuation byte, a truncated sequence, an
        // encoded surrogate, overlong encodings, a byte never valid.
        (b"\"\x80\"", false),
        (b"\"\xc3\"", false),
        (b"\"\xed\xa0\x80\"", false),
        (b"\"\xc0\xaf\"", false),
        (b"\"\xe0\x80\xaf\"", false),
        (b"\"\xf0\x80\x80\xaf\"", false),
        (b"\"\xf4\x90\x80\x80\"", false),
        (b"\"\xff\"", false),
        (b"[1]\xff", false),
        (b"\xc3\xa9", false),
        // A byte order mark is not JSON whitespace.
        (b"\xef\xbb\xbf1", false),
        (b"\xef\xbb\xbf{}", false),
        (b"{\"t\":\"0000000123456\",\"p\":\"abcd\"}", true),
    ];
    for &(input, want) in table {
        expect(input, want);
    }
}

fn nested_arrays(depth: usize) -> Vec<u8> {
    ["[".repeat(depth), "]".repeat(depth)].concat().into_bytes()
}

fn nested_objects(depth: usize) -> Vec<u8> {
    [r#"{"a":"#.repeat(depth), "1".into(), "}".repeat(depth)]
        .concat()
        .into_bytes()
}

/// Alternating `[{"a":[{"a":…1…}]}]`.
fn nested_mixed(depth: usize) -> Vec<u8> {
    let mut open = String::new();
    let mut close = Vec::new();
    for level in 0..depth {
        if level % 2 == 0 {
            open.push('[');
            close.push(b']');
        } else {
            open.push_str(r#"{"a":"#);
            close.push(b'}');
        }
    }
    close.reverse();
    [open.as_bytes(), b"1", &close].concat()
}

/// serde_json's `RawValue` has no nesting limit (its `ignore_value` is
/// iterative; the 128-level recursion limit only guards the recursive
/// `deserialize_*` methods), so nesting is accepted at 126..=130 levels and far
/// beyond, and the validator agrees. Broken documents at those depths are
/// refused by both.
#[test]
fn deep_nesting() {
    for depth in [1, 2, 126, 127, 128, 129, 130, 255, 256, 257, 1_000, 100_000] {
        for doc in [
            nested_arrays(depth),
            nested_objects(depth),
            nested_mixed(depth),
        ] {
            expect(&doc, true);
            // One closer missing, one too many, the innermost one mismatched,
            // a trailing comma at the innermost level.
            expect(&doc[..doc.len() - 1], false);
            expect(&[&doc[..], b"]"].concat(), false);
            expect(&[&doc[..], b"}"].concat(), false);
            let mut wrong = doc.clone();
            let first_close = wrong.iter().position(|&c| c == b']' || c == b'}').unwrap();
            wrong[first_close] = if wrong[first_close] == b']' {
                b'}'
            } else {
                b']'
            };
            expect(&wrong, false);
            let mut comma = doc.clone();
            comma.insert(first_close, b',');
            expect(&comma, false);
        }
    }
}

/// The codec's output follows the validator: inline exactly when it accepts.
#[test]
fn codec_inlines_exactly_what_the_validator_accepts() {
    use bytes::Bytes;
    use tidings_protocol::{ChannelName, Frame, FrameCodec, Message, MessageId};
    let codec = JsonCodec::new();
    for payload in [
        &b"{\"t\":\"0000000123456\",\"p\":\"abcd\"}"[..],
        b"\"\\ud800\"",
        b"1e999999999999999999999",
        b" 1",
        b"[1,]",
        b"\"\xff\"",
    ] {
        let frame = Frame::Message(Message {
            channel: ChannelName::new("c").unwrap(),
            seq: 1,
            id: MessageId(2),
            payload: Bytes::copy_from_slice(payload),
        });
        let out = codec.encode_to_bytes(&frame).unwrap();
        let inline = [
            br#"{"type":"message","channel":"c","seq":1,"id":"2","data":"#,
            payload,
            b"}",
        ]
        .concat();
        assert_eq!(
            out[..] == inline[..],
            serde_says(payload).is_some(),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(codec.decode(&out).unwrap(), frame);
    }
}
