//! `Presence`: the hub extension that tracks who is in each room on this node, shares it with the other nodes through the broker, and serves each room's presence channel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tidings_broker::{Broker, BrokerError, Delivery, SubscriberId, Subscription};
use tidings_channels::{Hub, HubExtension, Refusal, SessionInfo, SubscribeRule};
use tidings_protocol::{ChannelName, ErrorCode, MessageIdGen, SharedMessage, SubscriptionStart};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::room::{Ref, Rooms};
use crate::sync::NodeOp;
use crate::wire::PresenceEvent;

/// The largest meta (JSON bytes) a client may set for itself in a room by
/// publishing it on the room's presence channel.
pub const MAX_CLIENT_META: usize = 4096;

/// Metadata of one connection in a room, from its session and the room.
pub type MetaFn = Arc<dyn Fn(&SessionInfo, &str) -> Value + Send + Sync>;

/// Settings of [`Presence`].
#[derive(Clone)]
#[non_exhaustive]
pub struct PresenceConfig {
    /// Channels that are rooms: those starting with this prefix (`""`: all).
    /// A session subscribed to a room is in it.
    pub rooms: String,
    /// A room's presence channel is this prefix followed by the room's name
    /// (`presence:room:lobby`); clients subscribe to it, may not publish.
    pub channel_prefix: String,
    /// The broker channel nodes share presence on (internal: no client may
    /// subscribe to it).
    pub sync_channel: String,
    /// How long a session whose connection dropped stays in its rooms, so a
    /// quick reconnect is not seen as leave + join.
    pub grace: Duration,
    /// How often a node sends its whole state (and says it is alive).
    pub heartbeat: Duration,
    /// A node not heard from for this long is taken as dead: its members
    /// leave.
    pub node_timeout: Duration,
    /// How often diffs go out (changes in between are merged into one diff).
    pub flush_interval: Duration,
    /// Node-to-node messages queued at most while the broker is slow; beyond
    /// it they are dropped and the next heartbeat repairs the other nodes.
    pub sync_queue: usize,
    /// The meta of a connection in a room (default: `{}`).
    pub meta: MetaFn,
}

impl std::fmt::Debug for PresenceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceConfig")
            .field("rooms", &self.rooms)
            .field("channel_prefix", &self.channel_prefix)
            .field("sync_channel", &self.sync_channel)
            .field("grace", &self.grace)
            .field("heartbeat", &self.heartbeat)
            .field("node_timeout", &self.node_timeout)
            .field("flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            rooms: "room:".into(),
            channel_prefix: "presence:".into(),
            sync_channel: "tidings:presence-sync".into(),
            grace: Duration::from_secs(5),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            flush_interval: Duration::from_millis(50),
            sync_queue: 65_536,
            meta: Arc::new(|_, _| Value::Object(Default::default())),
        }
    }
}

/// Presence could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceStartError {
    /// The sync channel's name is invalid.
    #[error("invalid sync channel name {0:?}")]
    SyncChannel(String),
    /// The broker refused the sync subscription.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A session of this node that is in rooms.
#[derive(Debug)]
struct Local {
    key: String,
    /// Room → meta.
    rooms: BTreeMap<String, Value>,
    /// When it leaves, if its connection dropped.
    leave_at: Option<Instant>,
}

struct Watcher {
    id: SubscriberId,
    channel: ChannelName,
    sink: Arc<dyn Delivery>,
    next_seq: u64,
}

#[derive(Default)]
struct State {
    rooms: Rooms,
    local: HashMap<Arc<str>, Local>,
    /// Room → the sessions of this node watching its presence channel.
    watchers: HashMap<String, Vec<Watcher>>,
    /// Other nodes → when last heard from.
    nodes: HashMap<Arc<str>, Instant>,
    /// Rooms this node had members in since the last heartbeat.
    beat_rooms: BTreeSet<String>,
    next_watcher: u64,
    halted: bool,
}

struct Shared {
    node: Arc<str>,
    config: PresenceConfig,
    sync_channel: ChannelName,
    state: Mutex<State>,
    ops: mpsc::Sender<Bytes>,
    ids: MessageIdGen,
}

/// Presence on a [`Hub`]: who is in each room, across nodes.
///
/// A session is in room `R` while it is subscribed to `R` (a channel under
/// [`PresenceConfig::rooms`]); its key is its identity's subject (anonymous
/// sessions: their session id), so one person on several connections
/// counts once. Clients see a room on its presence channel
/// (`presence:R`): a snapshot first on every (re)subscription, then diffs
/// (see [`crate::PresenceEvent`] and [`crate::PresenceView`]).
#[derive(Clone)]
pub struct Presence {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

fn node_id() -> Arc<str> {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        warn!("getrandom failed: presence node id from the clock");
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64).to_le_bytes();
    }
    Arc::from(format!("{:016x}", u64::from_le_bytes(b)))
}

impl Presence {
    /// Plugs presence into `hub` (call before serving connections): subscribes
    /// to the sync channel on the hub's broker and starts the node's timers.
    pub async fn attach(hub: &Hub, config: PresenceConfig) -> Result<Self, PresenceStartError> {
        let sync_channel = ChannelName::new(&config.sync_channel)
            .map_err(|_| PresenceStartError::SyncChannel(config.sync_channel.clone()))?;
        let (tx, rx) = mpsc::channel(config.sync_queue.max(1));
        let node = node_id();
        let shared = Arc::new(Shared {
            ids: MessageIdGen::new(u32::from_str_radix(&node[..8], 16).unwrap_or(0)),
            node,
            config,
            sync_channel: sync_channel.clone(),
            state: Mutex::new(State::default()),
            ops: tx,
        });
        let broker = hub.broker().clone();
        let sink: Arc<dyn Delivery> = Arc::new(SyncSink(Arc::downgrade(&shared)));
        broker.subscribe(&sync_channel, None, sink).await?;
        tokio::spawn(publish_ops(broker, sync_channel, rx));
        tokio::spawn(tick(Arc::downgrade(&shared)));
        hub.extend(Arc::new(Extension(shared.clone())));
        debug!(node = %shared.node, "presence attached");
        Ok(Self { shared })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Everyone in `room` now, as this node knows it.
    pub fn members(&self, room: &str) -> crate::Members {
        self.shared.lock().rooms.snapshot(room)
    }

    /// How many members (identities) `room` has, as this node knows it.
    pub fn len(&self, room: &str) -> usize {
        self.shared.lock().rooms.len(room)
    }

    /// Whether `room` is empty, as this node knows it.
    pub fn is_empty(&self, room: &str) -> bool {
        self.len(room) == 0
    }

    /// Sets the meta of every connection of `key` on this node in `room`
    /// (e.g. a status the application tracks). Returns how many changed.
    pub fn set_meta(&self, room: &str, key: &str, meta: Value) -> usize {
        let mut ops = Vec::new();
        {
            let mut st = self.shared.lock();
            let st = &mut *st;
            for (session, local) in st.local.iter_mut() {
                if local.key != key {
                    continue;
                }
                if let Some(m) = local.rooms.get_mut(room) {
                    *m = meta.clone();
                    let r = self.shared.local_ref(session);
                    if st.rooms.join(room, key, r, meta.clone()) {
                        ops.push(self.shared.join_op(room, key, session, &meta));
                    }
                }
            }
        }
        let n = ops.len();
        for op in ops {
            self.shared.send(&op);
        }
        n
    }

    /// Stops this node's presence at once, as if the process died: no more
    /// heartbeats or sync messages (the other nodes drop its members after
    /// [`PresenceConfig::node_timeout`]). For tests of node failure.
    pub fn halt(&self) {
        self.shared.lock().halted = true;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn local_ref(&self, session: &Arc<str>) -> Ref {
        Ref {
            node: self.node.clone(),
            session: session.clone(),
        }
    }

    fn join_op(&self, room: &str, key: &str, session: &str, meta: &Value) -> NodeOp {
        NodeOp::Join {
            node: self.node.to_string(),
            room: room.to_owned(),
            key: key.to_owned(),
            session: session.to_owned(),
            meta: meta.clone(),
        }
    }

    fn leave_op(&self, room: &str, key: &str, session: &str) -> NodeOp {
        NodeOp::Leave {
            node: self.node.to_string(),
            room: room.to_owned(),
            key: key.to_owned(),
            session: session.to_owned(),
        }
    }

    /// Queues `op` for the other nodes (dropped if the queue is full: the
    /// next heartbeat repairs them).
    fn send(&self, op: &NodeOp) {
        let Ok(bytes) = serde_json::to_vec(op) else {
            return;
        };
        if self.ops.try_send(Bytes::from(bytes)).is_err() {
            warn!("presence sync queue full: a change waits for the next heartbeat");
        }
    }

    fn room_of(&self, channel: &ChannelName) -> Option<String> {
        let c = channel.as_str();
        (c.starts_with(&self.config.rooms) && !self.is_presence_channel(channel))
            .then(|| c.to_owned())
    }

    fn is_presence_channel(&self, channel: &ChannelName) -> bool {
        channel.as_str().starts_with(&self.config.channel_prefix) || *channel == self.sync_channel
    }

    /// `session` leaves `room` on this node (and tells the other nodes).
    fn leave_room(&self, st: &mut State, session: &Arc<str>, room: &str, ops: &mut Vec<NodeOp>) {
        let Some(local) = st.local.get_mut(session) else {
            return;
        };
        if local.rooms.remove(room).is_none() {
            return;
        }
        let key = local.key.clone();
        if local.rooms.is_empty() {
            st.local.remove(session);
        }
        if st.rooms.leave(room, &key, &self.local_ref(session)) {
            ops.push(self.leave_op(room, &key, session));
        }
    }

    fn leave_all(&self, st: &mut State, session: &Arc<str>, ops: &mut Vec<NodeOp>) {
        let rooms: Vec<String> = st
            .local
            .get(session)
            .map(|l| l.rooms.keys().cloned().collect())
            .unwrap_or_default();
        for room in rooms {
            self.leave_room(st, session, &room, ops);
        }
    }

    fn apply_remote(&self, op: NodeOp) {
        let mut st = self.lock();
        if st.halted || op.node() == &*self.node {
            return;
        }
        let node: Arc<str> = Arc::from(op.node());
        st.nodes.insert(node.clone(), Instant::now());
        match op {
            NodeOp::Join {
                room,
                key,
                session,
                meta,
                ..
            } => {
                let r = Ref {
                    node,
                    session: Arc::from(session.as_str()),
                };
                st.rooms.join(&room, &key, r, meta);
            }
            NodeOp::Leave {
                room, key, session, ..
            } => {
                let r = Ref {
                    node,
                    session: Arc::from(session.as_str()),
                };
                st.rooms.leave(&room, &key, &r);
            }
            NodeOp::Beat { room, members, .. } => st.rooms.replace_node(&room, &node, &members),
            NodeOp::Alive { .. } => {}
        }
    }

    /// One timer turn: expire graces and dead nodes, send diffs to watchers,
    /// and (when `beat`) heartbeats to the other nodes.
    fn turn(&self, now: Instant, beat: bool) {
        let mut ops = Vec::new();
        let mut out: Vec<(Arc<dyn Delivery>, Arc<SharedMessage>)> = Vec::new();
        {
            let mut st = self.lock();
            if st.halted {
                return;
            }
            let st = &mut *st;
            let expired: Vec<Arc<str>> = st
                .local
                .iter()
                .filter(|(_, l)| l.leave_at.is_some_and(|at| at <= now))
                .map(|(s, _)| s.clone())
                .collect();
            for session in expired {
                self.leave_all(st, &session, &mut ops);
            }
            let timeout = self.config.node_timeout;
            let dead: Vec<Arc<str>> = st
                .nodes
                .iter()
                .filter(|(_, seen)| now.duration_since(**seen) > timeout)
                .map(|(n, _)| n.clone())
                .collect();
            for node in dead {
                debug!(%node, "presence: node timed out, its members leave");
                st.nodes.remove(&node);
                st.rooms.drop_node(&node);
            }
            for room in st.rooms.dirty_rooms() {
                let Some(event) = st.rooms.flush(&room) else {
                    continue;
                };
                let payload = Bytes::from(event.to_json());
                for w in st.watchers.get_mut(&room).into_iter().flatten() {
                    out.push((w.sink.clone(), self.message(w, payload.clone())));
                }
            }
            if beat {
                self.beats(st, &mut ops);
            }
        }
        for op in &ops {
            self.send(op);
        }
        for (sink, message) in out {
            sink.deliver_alone(&message);
        }
    }

    fn beats(&self, st: &mut State, ops: &mut Vec<NodeOp>) {
        let mut by_room: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>> =
            BTreeMap::new();
        for (session, local) in &st.local {
            for (room, meta) in &local.rooms {
                by_room
                    .entry(room.clone())
                    .or_default()
                    .entry(local.key.clone())
                    .or_default()
                    .insert(session.to_string(), meta.clone());
            }
        }
        let emptied = std::mem::take(&mut st.beat_rooms);
        for room in emptied {
            by_room.entry(room).or_default();
        }
        if by_room.is_empty() {
            ops.push(NodeOp::Alive {
                node: self.node.to_string(),
            });
        }
        for (room, members) in by_room {
            if !members.is_empty() {
                st.beat_rooms.insert(room.clone());
            }
            ops.push(NodeOp::Beat {
                node: self.node.to_string(),
                room,
                members,
            });
        }
    }

    /// The next message of `w`'s presence channel.
    fn message(&self, w: &mut Watcher, payload: Bytes) -> Arc<SharedMessage> {
        let seq = w.next_seq;
        w.next_seq += 1;
        Arc::new(SharedMessage::new(
            w.channel.clone(),
            seq,
            self.ids.next_id(),
            payload,
        ))
    }
}

/// The hub's view of [`Presence`].
struct Extension(Arc<Shared>);

impl HubExtension for Extension {
    fn owns(&self, channel: &ChannelName) -> bool {
        self.0.is_presence_channel(channel)
    }

    fn subscribe_rule(&self, channel: &ChannelName) -> SubscribeRule {
        let room = channel
            .as_str()
            .strip_prefix(&self.0.config.channel_prefix)
            .and_then(|r| ChannelName::new(r).ok());
        match room {
            Some(room) if *channel != self.0.sync_channel => SubscribeRule::SameAs(room),
            _ => SubscribeRule::Nobody,
        }
    }

    fn subscribe(
        &self,
        _session: &SessionInfo,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> Result<Subscription, BrokerError> {
        let Some(room) = channel
            .as_str()
            .strip_prefix(&self.0.config.channel_prefix)
            .filter(|_| *channel != self.0.sync_channel)
        else {
            return Err(BrokerError::Unavailable(format!(
                "{channel} is internal to presence"
            )));
        };
        let mut st = self.0.lock();
        let st = &mut *st;
        st.next_watcher += 1;
        let id = SubscriberId(st.next_watcher);
        // Every subscription starts with a snapshot: the client's position
        // goes on from where it was (or 0), so a resume on another node is
        // neither a gap nor a reset.
        let position = after.unwrap_or(0);
        let mut w = Watcher {
            id,
            channel: channel.clone(),
            sink,
            next_seq: position + 1,
        };
        let snapshot = PresenceEvent::Snapshot {
            members: st.rooms.snapshot(room),
        };
        let first = self.0.message(&mut w, Bytes::from(snapshot.to_json()));
        st.watchers.entry(room.to_owned()).or_default().push(w);
        Ok(Subscription {
            id,
            start: SubscriptionStart {
                position,
                gap: None,
                backlog: vec![first],
            },
        })
    }

    fn accepts_publish(&self, channel: &ChannelName) -> bool {
        *channel != self.0.sync_channel
    }

    /// A client sets its own meta in a room: a JSON value published on the
    /// room's presence channel (at most [`MAX_CLIENT_META`] bytes), for this
    /// session's connection in the room it is in.
    fn publish(
        &self,
        session: &SessionInfo,
        channel: &ChannelName,
        payload: Bytes,
        _may_write: bool,
    ) -> Result<(), Refusal> {
        let Some(room) = channel.as_str().strip_prefix(&self.0.config.channel_prefix) else {
            return Err(Refusal::new(ErrorCode::Forbidden, "internal to presence"));
        };
        if payload.len() > MAX_CLIENT_META {
            return Err(Refusal::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "{channel}: a meta of {} bytes is over the limit of {MAX_CLIENT_META}",
                    payload.len()
                ),
            ));
        }
        let meta: Value = serde_json::from_slice(&payload).map_err(|e| {
            Refusal::new(
                ErrorCode::MalformedFrame,
                format!("{channel}: the meta is not JSON: {e}"),
            )
        })?;
        let sid: Arc<str> = Arc::from(session.id.0.as_str());
        let op = {
            let mut st = self.0.lock();
            let st = &mut *st;
            let Some(local) = st.local.get_mut(&sid) else {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!("{channel}: subscribe to {room} before setting a meta there"),
                ));
            };
            let Some(m) = local.rooms.get_mut(room) else {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!("{channel}: subscribe to {room} before setting a meta there"),
                ));
            };
            *m = meta.clone();
            let key = local.key.clone();
            st.rooms
                .join(room, &key, self.0.local_ref(&sid), meta.clone())
                .then(|| self.0.join_op(room, &key, &sid, &meta))
        };
        if let Some(op) = op {
            self.0.send(&op);
        }
        Ok(())
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let Some(room) = channel.as_str().strip_prefix(&self.0.config.channel_prefix) else {
            return;
        };
        let mut st = self.0.lock();
        if let Some(list) = st.watchers.get_mut(room) {
            list.retain(|w| w.id != id);
            if list.is_empty() {
                st.watchers.remove(room);
            }
        }
    }

    fn subscribed(&self, session: &SessionInfo, channel: &ChannelName) {
        let Some(room) = self.0.room_of(channel) else {
            return;
        };
        let meta = (self.0.config.meta)(session, &room);
        let sid: Arc<str> = Arc::from(session.id.0.as_str());
        let key = session.key().to_owned();
        let changed = {
            let mut st = self.0.lock();
            let st = &mut *st;
            let local = st.local.entry(sid.clone()).or_insert_with(|| Local {
                key: key.clone(),
                rooms: BTreeMap::new(),
                leave_at: None,
            });
            local.rooms.insert(room.clone(), meta.clone());
            st.beat_rooms.insert(room.clone());
            st.rooms
                .join(&room, &key, self.0.local_ref(&sid), meta.clone())
        };
        if changed {
            self.0.send(&self.0.join_op(&room, &key, &sid, &meta));
        }
    }

    fn unsubscribed(&self, session: &SessionInfo, channel: &ChannelName) {
        let Some(room) = self.0.room_of(channel) else {
            return;
        };
        let sid: Arc<str> = Arc::from(session.id.0.as_str());
        let mut ops = Vec::new();
        self.0.leave_room(&mut self.0.lock(), &sid, &room, &mut ops);
        for op in &ops {
            self.0.send(op);
        }
    }

    fn attached(&self, session: &SessionInfo, _resumed: bool) {
        if let Some(local) = self.0.lock().local.get_mut(session.id.0.as_str()) {
            local.leave_at = None;
        }
    }

    fn detached(&self, session: &SessionInfo) {
        let at = Instant::now() + self.0.config.grace;
        if let Some(local) = self.0.lock().local.get_mut(session.id.0.as_str()) {
            local.leave_at = Some(at);
        }
    }

    fn ended(&self, session: &SessionInfo) {
        let sid: Arc<str> = Arc::from(session.id.0.as_str());
        let mut ops = Vec::new();
        self.0.leave_all(&mut self.0.lock(), &sid, &mut ops);
        for op in &ops {
            self.0.send(op);
        }
    }
}

/// Receives the other nodes' sync messages from the broker.
struct SyncSink(Weak<Shared>);

impl Delivery for SyncSink {
    fn deliver(&self, message: &Arc<SharedMessage>) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        match serde_json::from_slice::<NodeOp>(&message.message().payload) {
            Ok(op) => shared.apply_remote(op),
            Err(e) => warn!(error = %e, "presence: malformed sync message ignored"),
        }
    }
}

/// Sends this node's sync messages, in order, one at a time.
async fn publish_ops(broker: Arc<dyn Broker>, channel: ChannelName, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(op) = rx.recv().await {
        if let Err(e) = broker.publish(&channel, op).await {
            warn!(error = %e, "presence: sync message not sent (the next heartbeat repairs)");
        }
    }
}

/// The node's timers, until presence is dropped.
async fn tick(shared: Weak<Shared>) {
    let (flush, heartbeat) = match shared.upgrade() {
        Some(s) => (s.config.flush_interval, s.config.heartbeat),
        None => return,
    };
    let mut interval = tokio::time::interval(flush);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_beat = Instant::now();
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let beat = now >= next_beat;
        if beat {
            next_beat = now + heartbeat;
        }
        shared.turn(now, beat);
    }
}
