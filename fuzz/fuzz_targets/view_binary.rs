//! Fuzz target: the zero-copy binary view accepts exactly what the decoder accepts, and every accessor of an accepted view is safe to call.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidings_codec::BinaryCodec;
use tidings_protocol::FrameCodec;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let decoded = BinaryCodec::new().decode(&input);
    match BinaryCodec::view(&input) {
        Ok(view) => {
            let frame = view.to_frame().expect("a valid view converts");
            assert_eq!(decoded.as_ref(), Ok(&frame));
            assert_eq!(view.frame_type(), frame.frame_type());
            let _ = view.channel();
            if let Some(m) = view.as_message() {
                let payload = m.payload_bytes();
                assert_eq!(&payload[..], m.payload());
                let _ = (m.channel(), m.seq(), m.id());
            }
            if let Some(p) = view.as_publish() {
                assert_eq!(&p.payload_bytes()[..], p.payload());
                let _ = (p.channel(), p.seq());
            }
        }
        Err(e) => assert_eq!(decoded, Err(e)),
    }
});
