//! Exact whole-value JSON validator: accepts an input iff `serde_json::from_slice::<&RawValue>` accepts it with the raw value covering every byte, for a fraction of serde_json's cost.
//!
//! The JSON codec embeds a payload inline (`"data":<raw>`) only when the
//! payload is exactly one JSON value with nothing around it, and a server
//! asks that twice per message (decode of `publish`, encode of `message`).
//! Asking `serde_json` (`from_slice::<&RawValue>` plus a length check) is a
//! full parse; [`whole_json_value`] gives the same answer with a single
//! iterative pass over the bytes (string contents eight bytes per `u64`
//! word), then `str::from_utf8`. `benches/benches/codec.rs`
//! (`json_validate/*`) compares the two.
//!
//! # What serde_json accepts, and so what this accepts
//!
//! `from_slice::<&RawValue>` skips whitespace, runs `Deserializer::ignore_value`
//! (the raw value), checks that the raw value is UTF-8 and that only whitespace
//! follows it. Requiring the raw value to cover all of the input adds: no
//! whitespace before or after the value. The grammar of `ignore_value`:
//!
//! * **Literals** `true`, `false`, `null`, byte for byte.
//! * **Numbers** `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, with no
//!   range check: `1e999999999999999999999` and 30-digit integers are fine (the
//!   number is only skipped, never converted).
//! * **Strings**: bytes below 0x20 are refused; escapes are `\" \\ \/ \b \f \n
//!   \r \t` and `\u` with four hex digits, any four: lone and reversed
//!   surrogates (`"\ud800"`, `"\udc00\ud800"`) are accepted, since the value is
//!   only skipped. Everything else after `\` is refused. Bytes 0x7F and above
//!   are not looked at here; UTF-8 is checked over the whole input at the end
//!   (serde_json checks the raw value, which is the whole input here; outside
//!   strings a non-ASCII byte is a syntax error anyway).
//! * **Whitespace** (space, `\t`, `\n`, `\r`) between the tokens of arrays and
//!   objects; nothing else (no BOM, no form feed). No trailing commas; object
//!   keys are strings.
//! * **Nesting depth: unlimited.** serde_json's recursion limit (128 levels
//!   without its `unbounded_depth` feature) guards its recursive
//!   `deserialize_*` methods only; `ignore_value`, which `RawValue` uses, is
//!   iterative (a heap stack in the deserializer's scratch buffer) in every
//!   serde_json this workspace accepts, so `[`×N `]`×N and `{"a":`×N `1` `}`×N
//!   are accepted at any N. So this validator has no limit either: the kinds
//!   of the open containers live in a `u64` shift register, spilling to a
//!   `Vec` past 64 levels (an allocation only for inputs nested deeper than
//!   that). The differential tests pin this down (126..=130 levels and far
//!   beyond): if serde_json ever limits `RawValue` nesting, they fail.
//!
//! The last payload found valid is remembered per thread (up to 256 bytes):
//! the server's second check of a payload, when it encodes the `message` it
//! decoded as a `publish`, is then a comparison (see `LAST_VALID`).
//!
//! Outside its unit tests nothing here recurses, indexes with `[]` or panics;
//! `tests/json_validate.rs` and the `validate_json` fuzz target compare it
//! with serde_json.

/// `Some(text)` iff `bytes` is exactly one JSON value with nothing around it,
/// i.e. iff `serde_json::from_slice::<&RawValue>(bytes)` succeeds with
/// `raw.get().len() == bytes.len()` (then `raw.get() == text`).
///
/// Remembers the last payload found valid on this thread (see `LAST_VALID`).
pub(super) fn whole_json_value(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    is_whole_json_value(text).then_some(text)
}

/// [`whole_json_value`] as a yes or no, for an encoder that copies the bytes:
/// a payload the memo remembers (it was found valid, UTF-8 included, when
/// its `publish` was decoded) needs no second UTF-8 pass.
pub(super) fn is_inline_json(bytes: &[u8]) -> bool {
    last_valid_is(bytes) || whole_json_value(bytes).is_some()
}

/// [`whole_json_value`] for text already known to be UTF-8 (a slice of a
/// frame checked whole by the decoder): the grammar check alone, through the
/// memo.
pub(super) fn is_whole_json_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    if last_valid_is(bytes) {
        return true;
    }
    if one_value(bytes).is_none() {
        return false;
    }
    remember_valid(bytes);
    true
}

/// [`whole_json_value`] without the memo: the grammar check itself.
pub(super) fn validate(bytes: &[u8]) -> Option<&str> {
    one_value(bytes)?;
    std::str::from_utf8(bytes).ok()
}

/// Payloads up to this size are remembered by [`remember_valid`].
const MEMO_BYTES: usize = 256;

thread_local! {
    /// The last payload found valid on this thread (bytes, length; `usize::MAX`: none).
    ///
    /// A server checks each payload twice, on the same thread and usually
    /// back to back: when it decodes the `publish` and when it encodes the
    /// `message` (the broker's copy of the same bytes). Validity depends on
    /// the bytes alone, so the second check can be a comparison with the
    /// first (plus the UTF-8 check that makes the `&str`).
    static LAST_VALID: std::cell::RefCell<([u8; MEMO_BYTES], usize)> =
        const { std::cell::RefCell::new(([0; MEMO_BYTES], usize::MAX)) };
}

/// Whether `bytes` equals the last payload found valid on this thread.
fn last_valid_is(bytes: &[u8]) -> bool {
    LAST_VALID.with(|memo| {
        memo.try_borrow()
            .is_ok_and(|m| m.1 == bytes.len() && m.0.get(..m.1) == Some(bytes))
    })
}

/// Remembers `bytes`, just found valid (UTF-8 included), when small enough.
fn remember_valid(bytes: &[u8]) {
    if bytes.len() > MEMO_BYTES {
        return;
    }
    LAST_VALID.with(|memo| {
        if let Ok(mut m) = memo.try_borrow_mut()
            && let Some(slot) = m.0.get_mut(..bytes.len())
        {
            slot.copy_from_slice(bytes);
            m.1 = bytes.len();
        }
    });
}

/// `Some(())` iff `b` is one JSON value (serde_json's `ignore_value` grammar)
/// covering all of `b`; UTF-8 is not checked.
fn one_value(b: &[u8]) -> Option<()> {
    // The open containers: how many, and their kinds (1 = object) as a shift
    // register, the innermost in bit 0. Past 64 levels the outer ones are
    // moved to `spill` (innermost last): `spill.len() == depth - 64` then.
    let mut depth = 0usize;
    let mut kinds = 0u64;
    let mut spill = Vec::new();
    let mut i = 0;
    loop {
        // A value starts at `i` (whitespace before it already skipped).
        i = match *b.get(i)? {
            b'"' => string_end(b, i + 1)?,
            open @ (b'{' | b'[') => {
                let j = skip_ws(b, i + 1);
                let object = open == b'{';
                // `[` + 2 is `]`, `{` + 2 is `}`.
                if b.get(j) == Some(&(open + 2)) {
                    j + 1
                } else {
                    if depth >= 64 {
                        spill_outermost(&mut spill, kinds);
                    }
                    kinds = (kinds << 1) | u64::from(object);
                    depth += 1;
                    i = if object { member_value(b, j)? } else { j };
                    continue;
                }
            }
            b'-' | b'0'..=b'9' => number_end(b, i)?,
            b't' => literal_end(b, i, b"true")?,
            b'f' => literal_end(b, i, b"false")?,
            b'n' => literal_end(b, i, b"null")?,
            _ => return None,
        };
        // After a value: a separator, or the end of one or more containers.
        loop {
            if depth == 0 {
                return (i == b.len()).then_some(());
            }
            i = skip_ws(b, i);
            let object = kinds & 1 == 1;
            match *b.get(i)? {
                b',' => {
                    i = skip_ws(b, i + 1);
                    if object {
                        i = member_value(b, i)?;
                    }
                    break;
                }
                // `]` closes an array, `}` (`]` + 0x20) an object.
                c if c == b']' | (u8::from(object) << 5) => {
                    i += 1;
                    kinds >>= 1;
                    depth -= 1;
                    if depth >= 64 {
                        kinds |= unspill(&mut spill);
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Opening a container 64 levels deep: `kinds` is full, keep its outermost
/// (top) bit before it is shifted out.
#[cold]
#[inline(never)]
fn spill_outermost(spill: &mut Vec<bool>, kinds: u64) {
    spill.push(kinds >> 63 == 1);
}

/// Closing a container with 64 or more still open: the bit that goes back to
/// the top of `kinds`.
#[cold]
#[inline(never)]
fn unspill(spill: &mut Vec<bool>) -> u64 {
    match spill.pop() {
        Some(true) => 1 << 63,
        _ => 0,
    }
}

/// Skips JSON whitespace from `i`.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// An object member `"key"` `:` from `i` (at the key's quote); returns where
/// its value starts (whitespace skipped).
#[inline(always)]
fn member_value(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(b, string_end(b, i + 1)?);
    if b.get(i) != Some(&b':') {
        return None;
    }
    Some(skip_ws(b, i + 1))
}

/// The end of the literal `word` starting at `i`.
#[inline(always)]
fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some(end)
}

/// The end of the number starting at `i` (at `-` or a digit).
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        // A single leading `0`.
        b'0' => {
            i += 1;
            if let Some(b'0'..=b'9') = b.get(i) {
                return None;
            }
        }
        b'1'..=b'9' => i = digits_end(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let j = digits_end(b, i + 1);
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let j = digits_end(b, i);
        if j == i {
            return None;
        }
        i = j;
    }
    Some(i)
}

/// Skips ASCII digits from `i`.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// The end (after the closing quote) of the string whose contents start at `i`.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = plain_end(b, i);
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    // Any four hex digits (serde_json's `decode_hex_escape`).
                    let hex = b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            // A control character (below 0x20).
            _ => return None,
        }
    }
}

/// The first index from `i` (`i <= b.len()`) holding `"`, `\` or a byte
/// below 0x20, or `b.len()` when there is none.
///
/// Eight bytes per `u64` word ([`stop_bits`]), two words per step while
/// sixteen bytes remain, then one; the last few bytes through the input's
/// last word. Plain integer code (SWAR): the same on every target, wasm32
/// included, and no reliance on auto-vectorization.
#[inline(always)]
fn plain_end(b: &[u8], mut i: usize) -> usize {
    while let Some(pair) = b.get(i..i + 16) {
        let (low, high) = pair.split_at(8);
        let (Ok(low), Ok(high)) = (<[u8; 8]>::try_from(low), <[u8; 8]>::try_from(high)) else {
            break;
        };
        let low = stop_bits(u64::from_le_bytes(low));
        let high = stop_bits(u64::from_le_bytes(high));
        if low | high != 0 {
            let first = if low != 0 {
                low.trailing_zeros()
            } else {
                64 + high.trailing_zeros()
            };
            return i + (first / 8) as usize;
        }
        i += 16;
    }
    if let Some(x) = word(b, i) {
        let stops = stop_bits(x);
        if stops != 0 {
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    // Fewer than eight bytes left: the input's last word, the bytes before
    // `i` shifted out *before* the test (a stop there could flag a byte above
    // it through a borrow). The zero bytes shifted in stand at `b.len()` and
    // beyond and are stops, so the first stop found is at most `b.len()`.
    if let Some(start) = b.len().checked_sub(8) {
        let before = (i.saturating_sub(start) as u32).saturating_mul(8);
        return match word(b, start).and_then(|x| x.checked_shr(before)) {
            Some(rest) => i + (stop_bits(rest).trailing_zeros() / 8) as usize,
            None => b.len(),
        };
    }
    // An input shorter than eight bytes.
    while let Some(&c) = b.get(i) {
        if is_stop(c) {
            break;
        }
        i += 1;
    }
    i
}

/// The eight bytes of `b` from `at` as a little-endian word, if there are eight.
#[inline(always)]
fn word(b: &[u8], at: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(8)?)?;
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_le_bytes)
}

/// Whether `c` ends a run of plain string contents: `"`, `\` or a control byte.
#[inline(always)]
fn is_stop(c: u8) -> bool {
    (c == b'"') | (c == b'\\') | (c < 0x20)
}

/// The stop bytes of `x` (eight bytes, little endian): the high bit of each
/// byte of the result is set where `x` holds a stop byte, and the lowest set
/// bit is exact (borrows can flag bytes above a real stop, never below).
///
/// `y = x ^ 0x02…` maps the control bytes onto themselves and `"` (0x22)
/// onto 0x20, so "`y` below 0x21" is "control byte or `"`"; `\` is the
/// usual zero-byte test on `x ^ '\\'…`.
#[inline(always)]
fn stop_bits(x: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let y = x ^ (ONES * 0x02);
    let z = x ^ (ONES * u64::from(b'\\'));
    ((y.wrapping_sub(ONES * 0x21) & !y) | (z.wrapping_sub(ONES) & !z)) & HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_answers_only_for_the_bytes_found_valid() {
        let valid = br#"{"t":"0000000123456","p":"abcd"}"#;
        // Same length, one byte off: invalid JSON.
        let invalid = br#"{"t":"0000000123456","p":"abcd"]"#;
        assert_eq!(valid.len(), invalid.len());
        assert!(whole_json_value(valid).is_some());
        assert!(last_valid_is(valid));
        assert!(
            whole_json_value(invalid).is_none(),
            "not answered by the memo"
        );
        assert!(
            !last_valid_is(invalid),
            "an invalid payload is never remembered"
        );
        assert!(whole_json_value(valid).is_some());
        assert!(
            whole_json_value(&valid[..valid.len() - 1]).is_none(),
            "a prefix"
        );
        // Not valid UTF-8 inside a string: refused, and not remembered.
        let bad_utf8 = b"\"\xff\"";
        assert!(whole_json_value(bad_utf8).is_none());
        assert!(!last_valid_is(bad_utf8));
        // Too long to remember: still checked every time.
        let long = format!("\"{}\"", "x".repeat(MEMO_BYTES));
        assert!(whole_json_value(long.as_bytes()).is_some());
        assert!(!last_valid_is(long.as_bytes()));
        assert!(whole_json_value(&long.as_bytes()[1..]).is_none());
    }

    #[test]
    fn the_encoders_check_agrees_with_the_full_check_memo_or_not() {
        let valid = br#"{"t":"0000000123456","p":"abcd"}"#;
        let bad_utf8 = b"\"\xff\"";
        let invalid = br#"{"t":"0000000123456","p":"abcd"]"#;
        for remembered in [&valid[..], bad_utf8, invalid] {
            // Whatever the memo holds (a valid payload, or still the one before).
            let _ = whole_json_value(remembered);
            assert!(is_inline_json(valid));
            assert!(!is_inline_json(bad_utf8), "bad UTF-8 is never inlined");
            assert!(!is_inline_json(invalid));
        }
    }

    #[test]
    fn kinds_survive_the_spill() {
        // Every mix of arrays and objects around the 64-level boundary, each
        // closed by the right bracket (and refused with the wrong one).
        for depth in [1, 63, 64, 65, 66, 127, 128, 129, 200] {
            for pattern in [0u64, u64::MAX, 0x5555_5555_5555_5555, 0x0f0f_3333_f0f0_cccc] {
                let object = |k: usize| (pattern >> (k % 64)) & 1 == 1;
                let mut doc = Vec::new();
                for k in 0..depth {
                    doc.extend_from_slice(if object(k) { b"{\"k\":" } else { b"[" });
                }
                doc.push(b'0');
                for k in (0..depth).rev() {
                    doc.extend_from_slice(if object(k) { b",\"z\":1}" } else { b",2]" });
                }
                assert_eq!(one_value(&doc), Some(()), "depth {depth}");
                for k in 0..depth {
                    // Swap the bracket of the `k`-th closer from the end.
                    let mut wrong = doc.clone();
                    let closers: Vec<usize> = wrong
                        .iter()
                        .enumerate()
                        .filter(|&(_, &c)| c == b']' || c == b'}')
                        .map(|(n, _)| n)
                        .collect();
                    let n = closers[closers.len() - 1 - k];
                    wrong[n] = if wrong[n] == b']' { b'}' } else { b']' };
                    assert_eq!(one_value(&wrong), None, "depth {depth}, closer {k}");
                }
            }
        }
    }

    #[test]
    fn plain_end_finds_the_first_stop() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len())
                .find(|&k| b[k] == b'"' || b[k] == b'\\' || b[k] < 0x20)
                .unwrap_or(b.len())
        };
        // Fillers next to the stop bytes in value (0x20, 0x21, 0x23, 0x5B,
        // 0x5D: one borrow away from a false stop) and with the high bit set.
        let fillers = [
            b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        for len in 0..40 {
            for f in 0..fillers.len() {
                let b: Vec<u8> = (0..len).map(|k| fillers[(k + f) % fillers.len()]).collect();
                for start in 0..=len {
                    assert_eq!(plain_end(&b, start), naive(&b, start));
                }
                for at in 0..len {
                    for stop in [b'"', b'\\', 0x00, 0x1f] {
                        let mut b = b.clone();
                        b[at] = stop;
                        for start in 0..=len {
                            assert_eq!(
                                plain_end(&b, start),
                                naive(&b, start),
                                "{b:?} from {start}"
                            );
                        }
                    }
                }
            }
        }
    }
}
