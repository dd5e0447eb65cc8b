//! Decoding y-protocols messages from untrusted bytes (server and client): every byte accounted for, a panicking decoder turned into an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

use crate::error::SyncError;

/// Decodes every y-protocols message in `data`, or the first error.
pub(crate) fn decode_messages(data: &[u8]) -> Result<Vec<Message>, SyncError> {
    let messages = guarded(|| {
        let mut decoder = DecoderV1::new(Cursor::new(data));
        MessageReader::new(&mut decoder).collect::<Result<Vec<_>, _>>()
    })
    .and_then(|r| r.map_err(|e| e.to_string()))
    .map_err(SyncError::Malformed)?;
    // The reader stops quietly at a truncated message: the messages read
    // must account for every byte (y-protocols encodings are canonical).
    let read: usize = messages.iter().map(|m| m.encode_v1().len()).sum();
    if messages.is_empty() || read != data.len() {
        return Err(SyncError::Malformed(format!(
            "{} of {} bytes form whole messages",
            read,
            data.len()
        )));
    }
    Ok(messages)
}

/// Runs a decoder on untrusted bytes: a panic inside it becomes an error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| "the decoder panicked".to_owned())
}
