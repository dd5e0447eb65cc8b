//! Fuzz target: arbitrary bytes into the binary decoder give a frame or a typed error, never a panic; decoded frames re-encode and decode to themselves.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidings_codec::BinaryCodec;
use tidings_protocol::FrameCodec;

fuzz_target!(|data: &[u8]| {
    let codec = BinaryCodec::new();
    if let Ok(frame) = codec.decode(&Bytes::copy_from_slice(data)) {
        let again = codec
            .encode_to_bytes(&frame)
            .expect("a decoded frame encodes");
        assert_eq!(
            codec.decode(&again).expect("a re-encoded frame decodes"),
            frame
        );
    }
});
