//! The messages nodes exchange on the presence sync channel (through the hub's `Broker`): joins, leaves, and heartbeats that carry a node's whole state of a room.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message on the sync channel. Every node applies every other node's
/// messages; a heartbeat repairs whatever a lost message left wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum NodeOp {
    /// A connection of `node` joined `room` (or changed its meta).
    Join {
        node: String,
        room: String,
        key: String,
        session: String,
        meta: Value,
    },
    /// A connection of `node` left `room`.
    Leave {
        node: String,
        room: String,
        key: String,
        session: String,
    },
    /// Everything `node` has in `room` (key → session → meta); sent every
    /// heartbeat for each room the node has (or just had) members in.
    Beat {
        node: String,
        room: String,
        members: BTreeMap<String, BTreeMap<String, Value>>,
    },
    /// `node` is alive (sent every heartbeat when it has no rooms).
    Alive { node: String },
}

impl NodeOp {
    pub(crate) fn node(&self) -> &str {
        match self {
            NodeOp::Join { node, .. }
            | NodeOp::Leave { node, .. }
            | NodeOp::Beat { node, .. }
            | NodeOp::Alive { node } => node,
        }
    }
}
