//! Identifiers: channel names, session ids, resume tokens and message ids.

use smol_str::SmolStr;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;

/// A channel name is empty, too long or has control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid channel name ({len} bytes): names are 1..=256 bytes without control characters")]
pub struct InvalidChannelName {
    /// Length of the offending name.
    pub len: usize,
}

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
/// use tidings_protocol::ChannelName;
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
    pub fn new(name: impl AsRef<str>) -> Result<Self, InvalidChannelName> {
        let name = name.as_ref();
        Self::validate(name)?;
        Ok(Self(SmolStr::new(name)))
    }

    /// Checks that `name` is a valid channel name without allocating (zero-copy
    /// decoders check borrowed names with it).
    ///
    /// ```
    /// use tidings_protocol::ChannelName;
    /// assert!(ChannelName::validate("room:lobby").is_ok());
    /// assert!(ChannelName::validate("a\u{7}b").is_err());
    /// ```
    pub fn validate(name: &str) -> Result<(), InvalidChannelName> {
        if name.is_empty() || name.len() > MAX_CHANNEL_LEN || has_control(name) {
            return Err(InvalidChannelName { len: name.len() });
        }
        Ok(())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `name.chars().any(char::is_control)`, byte-wise: the control characters
/// (Unicode `Cc`) are U+0000..=U+001F, U+007F and U+0080..=U+009F, the last
/// encoded in UTF-8 as `0xC2 0x80..=0x9F`.
fn has_control(name: &str) -> bool {
    let b = name.as_bytes();
    // The usual name is printable ASCII (0x20..=0x7E) only: one pass without
    // branches (the compiler vectorizes it), the byte-wise scan only for the rest.
    if b.iter().fold(true, |printable, &c| {
        printable & (c.wrapping_sub(0x20) < 0x5f)
    }) {
        return false;
    }
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20
            || c == 0x7f
            || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
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

    /// The next id from `block`, which reserves [`IdBlock::SIZE`] ids at a
    /// time: a publisher that keeps a block (per channel, under its own lock)
    /// does not write the shared counter on every message. Ids stay unique;
    /// they are no longer in publish order across blocks.
    pub fn next_in(&self, block: &mut IdBlock) -> MessageId {
        if block.next == block.end {
            let start = self.counter.fetch_add(IdBlock::SIZE, Ordering::Relaxed);
            block.next = start;
            block.end = start + IdBlock::SIZE;
        }
        let n = block.next & 0xffff_ffff;
        block.next += 1;
        MessageId(self.prefix | n)
    }
}

/// Ids reserved from a [`MessageIdGen`] (see [`MessageIdGen::next_in`]).
#[derive(Clone, Debug, Default)]
pub struct IdBlock {
    next: u64,
    end: u64,
}

impl IdBlock {
    /// Ids reserved at once.
    pub const SIZE: u64 = 64;
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_check_matches_char_is_control() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let name = format!("a{c}b");
            assert_eq!(super::has_control(&name), c.is_control(), "{c:?}");
        }
        assert!(!super::has_control("\u{c2}x"));
    }
}
