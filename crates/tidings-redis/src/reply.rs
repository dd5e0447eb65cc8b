//! Reading Redis replies (stream entries, script results) into tidings types, with typed errors for anything unexpected.

use bytes::Bytes;
use redis::Value;
use tidings_broker::{StoreError, StoredMessage};
use tidings_protocol::MessageId;

fn malformed(what: &str, v: &Value) -> StoreError {
    StoreError::Malformed(format!("{what}: unexpected reply {v:?}"))
}

/// The bytes of a string reply.
pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A number held as a string or an integer reply (`Nil`: 0).
pub(crate) fn number(v: &Value) -> Result<u64, StoreError> {
    match v {
        Value::Nil => Ok(0),
        Value::Int(n) => u64::try_from(*n).map_err(|_| malformed("number", v)),
        other => bytes(other)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("number", v)),
    }
}

/// `"seq:id"` as written by the append script.
pub(crate) fn seq_and_id(v: &Value) -> Result<(u64, MessageId), StoreError> {
    let s = bytes(v)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| malformed("seq:id", v))?;
    let (seq, id) = s.split_once(':').ok_or_else(|| malformed("seq:id", v))?;
    match (seq.parse(), id.parse()) {
        (Ok(seq), Ok(id)) => Ok((seq, MessageId(id))),
        _ => Err(malformed("seq:id", v)),
    }
}

/// One stream entry `[id, [field, value, ...]]`.
fn entry(v: &Value) -> Result<StoredMessage, StoreError> {
    let Value::Array(parts) = v else {
        return Err(malformed("stream entry", v));
    };
    let [id, fields] = parts.as_slice() else {
        return Err(malformed("stream entry", v));
    };
    let seq = bytes(id)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.split_once('-'))
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| malformed("stream entry id", id))?;
    let pairs: Vec<(&Value, &Value)> = match fields {
        Value::Array(f) => f
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        other => return Err(malformed("stream fields", other)),
    };
    let (mut msg_id, mut payload) = (None, None);
    for (k, v) in pairs {
        match bytes(k) {
            Some(b"i") => msg_id = Some(number(v)?),
            Some(b"p") => payload = bytes(v).map(Bytes::copy_from_slice),
            _ => {}
        }
    }
    match (msg_id, payload) {
        (Some(id), Some(payload)) => Ok(StoredMessage {
            seq,
            id: MessageId(id),
            payload,
        }),
        _ => Err(malformed("stream entry fields", fields)),
    }
}

/// The entries of an `XRANGE` reply.
pub(crate) fn entries(v: &Value) -> Result<Vec<StoredMessage>, StoreError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(entry).collect(),
        other => Err(malformed("XRANGE", other)),
    }
}

/// The entries of an `XREAD` reply on one stream (`Nil`: the block timed out).
pub(crate) fn read_entries(v: &Value) -> Result<Vec<StoredMessage>, StoreError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                match s {
                    Value::Array(kv) if kv.len() == 2 => out.extend(entries(&kv[1])?),
                    other => return Err(malformed("XREAD stream", other)),
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, e) in streams {
                out.extend(entries(e)?);
            }
            Ok(out)
        }
        other => Err(malformed("XREAD", other)),
    }
}
