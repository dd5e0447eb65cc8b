//! `use_presence`: who is in a room (tidings-presence), as a signal of members that follows joins, leaves and meta updates; the client's own meta set by publishing it on the room's presence channel.

use leptos::prelude::*;
use tidings_presence::{Members, PresenceEvent, PresenceView};

use crate::{Connection, PublishError, use_subscription};

/// A room's presence as signals. `Copy`.
#[derive(Clone, Copy, Debug)]
pub struct Presence {
    /// Everyone in the room (member key → the metas of its connections),
    /// replaced by every snapshot, changed by every diff.
    pub members: ReadSignal<Members>,
    /// Presence payloads that did not decode (one text per bad payload).
    pub errors: ReadSignal<Vec<String>>,
    connection: Connection,
    channel: StoredValue<String>,
    meta: StoredValue<serde_json::Value>,
}

impl Presence {
    /// Sets this connection's meta in the room (kept, and sent again after a
    /// reconnect: every presence subscription starts with a snapshot).
    pub fn set_meta(&self, meta: serde_json::Value) -> Result<u64, PublishError> {
        self.meta.set_value(meta);
        self.send_meta()
    }

    fn send_meta(&self) -> Result<u64, PublishError> {
        let payload = self.meta.with_value(|m| m.to_string());
        let channel = self.channel.get_value();
        self.connection.publish(&channel, payload)
    }

    /// How many members are in the room (tracked).
    pub fn len(&self) -> usize {
        self.members.with(|m| m.len())
    }

    /// Whether the room is empty (tracked).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Joins `room` on `connection` (subscribes to it: a session subscribed to a
/// room is in it) with `meta` as this connection's meta, and follows who is
/// there on `presence:{room}`. Off wasm32 (SSR, native) nothing connects and
/// `members` stays empty; in the browser the signal is first written after
/// the current (hydration) pass.
pub fn use_presence(connection: Connection, room: &str, meta: serde_json::Value) -> Presence {
    // Membership: the subscription itself (its messages are not read here).
    let _member = use_subscription(connection, room);
    let channel = format!("presence:{room}");
    let view_sub = use_subscription(connection, &channel);
    let (members, set_members) = signal(Members::new());
    let (errors, set_errors) = signal(Vec::<String>::new());
    let presence = Presence {
        members,
        errors,
        connection,
        channel: StoredValue::new(channel),
        meta: StoredValue::new(meta),
    };
    let view = StoredValue::new_local(PresenceView::new());
    let seen = StoredValue::<usize, LocalStorage>::new_local(0);
    // Effects run in the browser only, after hydration.
    Effect::new(move |_| {
        let messages = view_sub.messages.get();
        let from = seen.get_value();
        if messages.len() <= from {
            return;
        }
        let mut snapshot = false;
        let mut bad = Vec::new();
        view.update_value(|v| {
            for m in &messages[from..] {
                match serde_json::from_slice::<PresenceEvent>(&m.payload) {
                    Ok(event) => {
                        snapshot |= matches!(event, PresenceEvent::Snapshot { .. });
                        v.apply_event(event);
                    }
                    Err(e) => bad.push(e.to_string()),
                }
            }
        });
        seen.set_value(messages.len());
        set_members.set(view.with_value(|v| v.members().clone()));
        if !bad.is_empty() {
            set_errors.update(|e| e.extend(bad));
        }
        if snapshot && presence.meta.with_value(|m| !m.is_null()) {
            // A (re)subscription: this session's meta starts as the server's
            // default, so send ours again.
            let _ = presence.send_meta();
        }
    });
    presence
}
