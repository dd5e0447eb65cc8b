//! `Rooms`: the sans-IO presence state of every room — members, their connections across nodes, and what changed since the last flush.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::wire::{Members, PresenceEvent};

/// One connection's place in a room: the node that serves it and its session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Ref {
    pub(crate) node: Arc<str>,
    pub(crate) session: Arc<str>,
}

#[derive(Debug, Default)]
struct Member {
    refs: BTreeMap<Ref, Value>,
    /// Whether the last flush reported this member as present.
    visible: bool,
}

impl Member {
    fn metas(&self) -> Vec<Value> {
        self.refs.values().cloned().collect()
    }
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeMap<String, Member>,
    dirty: BTreeSet<String>,
}

/// Every room's members. Changes are recorded as they come and reported by
/// [`Rooms::flush`], so a burst of joins costs one diff per flush.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: HashMap<String, Room>,
}

impl Rooms {
    /// `key` is in `room` through connection `r` with `meta` (a second join
    /// of the same connection replaces its meta). Returns whether anything
    /// changed.
    pub(crate) fn join(&mut self, room: &str, key: &str, r: Ref, meta: Value) -> bool {
        let state = self.rooms.entry(room.to_owned()).or_default();
        let member = state.members.entry(key.to_owned()).or_default();
        if member.refs.get(&r) == Some(&meta) {
            return false;
        }
        member.refs.insert(r, meta);
        state.dirty.insert(key.to_owned());
        true
    }

    /// Connection `r` of `key` left `room`. Returns whether anything changed.
    pub(crate) fn leave(&mut self, room: &str, key: &str, r: &Ref) -> bool {
        let Some(state) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(member) = state.members.get_mut(key) else {
            return false;
        };
        if member.refs.remove(r).is_none() {
            return false;
        }
        state.dirty.insert(key.to_owned());
        true
    }

    /// Replaces what `node` has in `room` with `members` (key → session →
    /// meta), as a heartbeat of that node reports it.
    pub(crate) fn replace_node(
        &mut self,
        room: &str,
        node: &Arc<str>,
        members: &BTreeMap<String, BTreeMap<String, Value>>,
    ) {
        let mut stale = Vec::new();
        if let Some(state) = self.rooms.get(room) {
            for (key, member) in &state.members {
                for r in member.refs.keys().filter(|r| &r.node == node) {
                    let kept = members
                        .get(key)
                        .is_some_and(|s| s.contains_key(&*r.session));
                    if !kept {
                        stale.push((key.clone(), r.clone()));
                    }
                }
            }
        }
        for (key, r) in stale {
            self.leave(room, &key, &r);
        }
        for (key, sessions) in members {
            for (session, meta) in sessions {
                let r = Ref {
                    node: node.clone(),
                    session: Arc::from(session.as_str()),
                };
                self.join(room, key, r, meta.clone());
            }
        }
    }

    /// Removes every connection `node` had, in every room (the node died or
    /// left).
    pub(crate) fn drop_node(&mut self, node: &str) {
        for state in self.rooms.values_mut() {
            for (key, member) in &mut state.members {
                let before = member.refs.len();
                member.refs.retain(|r, _| &*r.node != node);
                if member.refs.len() != before {
                    state.dirty.insert(key.clone());
                }
            }
        }
    }

    /// Everyone in `room` now.
    pub(crate) fn snapshot(&self, room: &str) -> Members {
        self.rooms
            .get(room)
            .map(|state| {
                state
                    .members
                    .iter()
                    .filter(|(_, m)| !m.refs.is_empty())
                    .map(|(k, m)| (k.clone(), m.metas()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many members `room` has now.
    pub(crate) fn len(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |state| {
            state
                .members
                .values()
                .filter(|m| !m.refs.is_empty())
                .count()
        })
    }

    /// Rooms with changes not yet flushed.
    pub(crate) fn dirty_rooms(&self) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|(_, s)| !s.dirty.is_empty())
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// What changed in `room` since its last flush (`None`: nothing a client
    /// would see); forgets members that left.
    pub(crate) fn flush(&mut self, room: &str) -> Option<PresenceEvent> {
        let state = self.rooms.get_mut(room)?;
        let mut joined = Members::new();
        let mut updated = Members::new();
        let mut left = Vec::new();
        for key in std::mem::take(&mut state.dirty) {
            let Some(member) = state.members.get_mut(&key) else {
                continue;
            };
            if member.refs.is_empty() {
                if member.visible {
                    left.push(key.clone());
                }
                state.members.remove(&key);
            } else if member.visible {
                updated.insert(key, member.metas());
            } else {
                member.visible = true;
                joined.insert(key, member.metas());
            }
        }
        if state.members.is_empty() {
            self.rooms.remove(room);
        }
        if joined.is_empty() && updated.is_empty() && left.is_empty() {
            return None;
        }
        Some(PresenceEvent::Diff {
            joined,
            updated,
            left,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(node: &str, session: &str) -> Ref {
        Ref {
            node: Arc::from(node),
            session: Arc::from(session),
        }
    }

    #[test]
    fn one_identity_on_two_nodes_counts_once() {
        let mut rooms = Rooms::default();
        assert!(rooms.join("lobby", "ann", r("a", "s1"), Value::Null));
        assert!(rooms.join("lobby", "ann", r("b", "s2"), Value::Null));
        assert_eq!(rooms.len("lobby"), 1);
        let Some(PresenceEvent::Diff { joined, .. }) = rooms.flush("lobby") else {
            panic!("a diff");
        };
        assert_eq!(joined["ann"].len(), 2, "two metas, one member");
        rooms.drop_node("a");
        let Some(PresenceEvent::Diff { updated, left, .. }) = rooms.flush("lobby") else {
            panic!("a diff");
        };
        assert!(left.is_empty());
        assert_eq!(updated["ann"].len(), 1);
        rooms.leave("lobby", "ann", &r("b", "s2"));
        let Some(PresenceEvent::Diff { left, .. }) = rooms.flush("lobby") else {
            panic!("a diff");
        };
        assert_eq!(left, vec!["ann".to_owned()]);
        assert!(rooms.flush("lobby").is_none());
    }

    #[test]
    fn join_then_leave_within_one_flush_is_invisible() {
        let mut rooms = Rooms::default();
        rooms.join("lobby", "bob", r("a", "s"), Value::Null);
        rooms.leave("lobby", "bob", &r("a", "s"));
        assert!(rooms.flush("lobby").is_none());
        assert_eq!(rooms.len("lobby"), 0);
    }

    #[test]
    fn a_heartbeat_replaces_what_a_node_had() {
        let mut rooms = Rooms::default();
        rooms.join("lobby", "ann", r("b", "s1"), Value::Null);
        rooms.join("lobby", "bob", r("b", "s2"), Value::Null);
        rooms.flush("lobby");
        let mut beat = BTreeMap::new();
        beat.insert(
            "cy".to_owned(),
            BTreeMap::from([("s3".to_owned(), Value::Null)]),
        );
        beat.insert(
            "ann".to_owned(),
            BTreeMap::from([("s1".to_owned(), Value::Null)]),
        );
        rooms.replace_node("lobby", &Arc::from("b"), &beat);
        let snap = rooms.snapshot("lobby");
        assert_eq!(snap.keys().collect::<Vec<_>>(), ["ann", "cy"]);
    }
}
