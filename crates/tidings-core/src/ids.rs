//! Identifiers: channel names, session ids, resume tokens and message ids.

use std::fmt;
use smol_str::SmolStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;

/// A map keyed by channel name, with the fast seeded hasher used on every
/// per-message lookup (see the crate docs for why `foldhash`).
pub type ChannelMap<V> = std::collections::HashMap<ChannelName, V, foldhash::fast::RandomState>;

/// A validated channel (room / topic) name: 1..=256 bytes, no control characters.
///
/// Cheap to clone: names up to 23 bytes are stored inline (no allocation when
/// a frame is decoded, no reference counting when it is cloned), longer ones
/// in a shared `Arc<str>` (`smol_str`).
///
/// ```
/// use tidings_core::ChannelName;
/// let room = ChannelName::new("room:lobby").unwrap();
/// assert_eq!(room.as_str(), "room:lobby");
/// assert!(ChannelName::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(SmolStr);

impl Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl ChannelName {
    /// Validates and wraps a channel name.
    pub fn new(name: impl AsRef<str>) -> Result<Self, ProtocolError> {
        let name = name.as_ref();
        Self::validate(name)?;
        Ok(Self(SmolStr::new(name)))
    }

    /// Checks that `name` is a valid channel name without allocating (zero-copy
    /// decoders check borrowed names with it).
    ///
    /// ```
    /// use tidings_core::ChannelName;
    /// assert!(ChannelName::validate("room:lobby").is_ok());
    /// assert!(ChannelName::validate("a\u{7}b").is_err());
    /// ```
    pub fn validate(name: &str) -> Result<(), ProtocolError> {
        if name.is_empty() || name.len() > MAX_CHANNEL_LEN || name.chars().any(char::is_control) {
            return Err(ProtocolError::InvalidChannel { len: name.len() });
        }
        Ok(())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&*s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Server-assigned id of one session (stable across resumes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub String);

/// Secret that lets a client resume its session after a reconnect.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResumeToken(pub String);

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(..)")
    }
}

/// Unique id of a published message.
///
/// Made of a 32-bit node prefix (random per process) and a 32-bit counter; on
/// the JSON wire it is a decimal string so JavaScript keeps every bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(&self.0)
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map(MessageId).map_err(serde::de::Error::custom)
        } else {
            u64::deserialize(d).map(MessageId)
        }
    }
}

/// Generator of [`MessageId`]s for one node.
#[derive(Debug)]
pub struct MessageIdGen {
    prefix: u64,
    counter: AtomicU64,
}

impl MessageIdGen {
    /// A generator whose ids start with `node` in their upper 32 bits.
    pub fn new(node: u32) -> Self {
        Self {
            prefix: u64::from(node) << 32,
            counter: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> MessageId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
        MessageId(self.prefix | n)
    }
}
