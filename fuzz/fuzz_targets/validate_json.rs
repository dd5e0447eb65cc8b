//! Fuzz target: the JSON codec's payload validator (`JsonCodec::whole_json_value`) gives exactly serde_json's answer (`from_slice::<&RawValue>` covering the whole input) on arbitrary bytes, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use tidings_codec::JsonCodec;

fuzz_target!(|data: &[u8]| {
    let serde = match serde_json::from_slice::<&RawValue>(data) {
        Ok(raw) if raw.get().len() == data.len() => Some(raw.get()),
        _ => None,
    };
    assert_eq!(
        JsonCodec::whole_json_value(data),
        serde,
        "validator diverges from serde_json"
    );
});
