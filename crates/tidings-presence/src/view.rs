//! `PresenceView`: the client's picture of a room, built from the snapshot and diffs of its presence channel (native and wasm32).

use crate::wire::{Members, PresenceEvent};

/// A presence payload could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// The payload is not a presence event.
    #[error("malformed presence event: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// One change seen by a [`PresenceView`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PresenceChange {
    /// `key` arrived.
    Joined(String),
    /// `key`'s metas changed.
    Updated(String),
    /// `key` left.
    Left(String),
}

/// Who is in a room, as the client knows it. Feed it every message of the
/// room's presence channel, in order; after a `Gap` or a reset, resubscribe
/// (the server starts every subscription with a snapshot).
#[derive(Clone, Debug, Default)]
pub struct PresenceView {
    members: Members,
    synced: bool,
}

impl PresenceView {
    /// An empty view, not yet synced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one presence payload; returns what changed. A snapshot
    /// reports the differences from what the view held before.
    pub fn apply(&mut self, payload: &[u8]) -> Result<Vec<PresenceChange>, PresenceError> {
        let event: PresenceEvent = serde_json::from_slice(payload)?;
        Ok(self.apply_event(event))
    }

    /// Applies one decoded event.
    pub fn apply_event(&mut self, event: PresenceEvent) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        match event {
            PresenceEvent::Snapshot { members } => {
                for key in self.members.keys() {
                    if !members.contains_key(key) {
                        changes.push(PresenceChange::Left(key.clone()));
                    }
                }
                for (key, metas) in &members {
                    match self.members.get(key) {
                        None => changes.push(PresenceChange::Joined(key.clone())),
                        Some(old) if old != metas => {
                            changes.push(PresenceChange::Updated(key.clone()));
                        }
                        Some(_) => {}
                    }
                }
                self.members = members;
                self.synced = true;
            }
            PresenceEvent::Diff {
                joined,
                updated,
                left,
            } => {
                for key in left {
                    if self.members.remove(&key).is_some() {
                        changes.push(PresenceChange::Left(key));
                    }
                }
                for (key, metas) in joined.into_iter().chain(updated) {
                    let change = if self.members.contains_key(&key) {
                        PresenceChange::Updated(key.clone())
                    } else {
                        PresenceChange::Joined(key.clone())
                    };
                    self.members.insert(key, metas);
                    changes.push(change);
                }
            }
        }
        changes
    }

    /// Whether a snapshot has arrived.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Everyone in the room, with their metas.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// How many members (identities, not connections).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `key` is in the room.
    pub fn contains(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_then_diffs() {
        let mut v = PresenceView::new();
        let c = v
            .apply(br#"{"type":"snapshot","members":{"ann":[{}],"bob":[{}]}}"#)
            .expect("snapshot");
        assert_eq!(c.len(), 2);
        assert!(v.is_synced());
        let c = v
            .apply(br#"{"type":"diff","joined":{"cy":[{"x":1}]},"left":["bob"]}"#)
            .expect("diff");
        assert_eq!(
            c,
            vec![
                PresenceChange::Left("bob".into()),
                PresenceChange::Joined("cy".into())
            ]
        );
        assert_eq!(v.len(), 2);
        let c = v
            .apply(br#"{"type":"snapshot","members":{"cy":[{"x":2}]}}"#)
            .expect("snapshot");
        assert_eq!(
            c,
            vec![
                PresenceChange::Left("ann".into()),
                PresenceChange::Updated("cy".into())
            ]
        );
    }

    #[test]
    fn malformed_is_a_typed_error() {
        let mut v = PresenceView::new();
        assert!(matches!(
            v.apply(b"{\"type\":\"nope\"}"),
            Err(PresenceError::Malformed(_))
        ));
        assert!(v.apply(b"\xff").is_err());
    }
}
