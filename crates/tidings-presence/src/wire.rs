//! The JSON payloads of a presence channel (`presence:<room>`): one snapshot when a client subscribes, then diffs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who is in a room: each member (an identity's subject, or an anonymous
/// session's id) with the metadata of each of its connections (its
/// "metas": one per session, so a person online on two devices counts once,
/// with two metas).
pub type Members = BTreeMap<String, Vec<serde_json::Value>>;

/// One message on a presence channel (docs/protocol.md, presence).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum PresenceEvent {
    /// The whole room, sent first on every (re)subscription: replaces what
    /// the client knew.
    Snapshot {
        /// Everyone in the room.
        members: Members,
    },
    /// What changed since the previous message of the channel.
    Diff {
        /// Members who were not there and are now, with their metas.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        joined: Members,
        /// Members who were there and still are, with their new metas (a
        /// connection came or went, or metadata changed).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        updated: Members,
        /// Members who are gone.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<String>,
    },
}

impl PresenceEvent {
    /// Serializes the event (infallible for these types).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
