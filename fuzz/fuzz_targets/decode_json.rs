//! Fuzz target: arbitrary bytes into the JSON decoder give a frame or a typed error, never a panic; the hand-written fast path never disagrees with the serde path; decoded frames re-encode and decode to themselves.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidings_codec::JsonCodec;
use tidings_protocol::FrameCodec;

fuzz_target!(|data: &[u8]| {
    let codec = JsonCodec::new();
    let input = Bytes::copy_from_slice(data);
    // The fast path may only answer where the serde path gives the same frame.
    let serde = codec.decode_serde(&input);
    if let Some(fast) = codec.decode_fast(&input) {
        assert_eq!(serde.as_ref(), Ok(&fast), "fast path diverges from serde");
    }
    let decoded = codec.decode(&input);
    assert_eq!(decoded, serde, "decode differs from the serde path");
    if let Ok(frame) = decoded {
        let again = codec
            .encode_to_bytes(&frame)
            .expect("a decoded frame encodes");
        assert_eq!(
            codec.decode(&again).expect("a re-encoded frame decodes"),
            frame
        );
    }
});
