//! `SessionDocs`: documents carried on the tidings session itself — a client subscribes to channel `doc:NAME` and publishes y-protocols messages on it; the server answers on the same channel, only to that session.
//!
//! The protocol (docs/protocol.md, documents): every message of the channel,
//! both ways, is one or more y-protocols messages back to back (binary
//! payload). Every (re)subscription starts with the server's sync step 1
//! (and the awareness states); the client answers it with its sync step 2
//! (what the server lacks) and its own step 1, answered with the server's
//! step 2 (what the client lacks). A client may send step 1 at any time (after
//! a gap, say) to catch up. Updates and awareness are applied, then
//! relayed to every other peer of the document (sessions and y-websocket
//! connections alike). Refusals are by name (the publish's `error` frame),
//! with the document unchanged.
//!
//! The hub glue (a `HubExtension`) lives in `tidings-axum` (feature `yjs`),
//! so that this crate stays below the hub.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tidings_broker::{BrokerError, Delivery, SubscriberId, Subscription};
use tidings_protocol::{ChannelName, ErrorCode, MessageIdGen, SharedMessage, SubscriptionStart};
use tracing::{debug, warn};

use crate::docs::{Bucket, Docs, OpenError, Room};
use crate::error::SyncError;
use crate::persist::PersistError;

/// A session's publish on a document channel was refused; the document is
/// unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionDocError {
    /// The channel is not a document channel of this server.
    #[error("{0} is not a document channel")]
    NotADocument(String),
    /// The session publishes on a document it did not subscribe to (subscribe
    /// first: the answers come on the subscription).
    #[error("subscribe to {0} before publishing on it")]
    NotSubscribed(String),
    /// The document is still loading from its store; the server's sync step
    /// 1 follows once it is loaded (answer it to send what was refused).
    #[error("document {0} is loading: sync again when its step 1 arrives")]
    Loading(String),
    /// The document could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The y-protocols message was refused (malformed, too large, rejected by
    /// the hook, read-only, awareness flood).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The document's store writer is behind: send again later.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

impl SessionDocError {
    /// The wire error code the client gets the publish refused with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotADocument(_) => ErrorCode::InvalidChannel,
            Self::NotSubscribed(_) => ErrorCode::UnexpectedFrame,
            Self::Loading(_) | Self::Open(_) | Self::Persist(_) => ErrorCode::Unavailable,
            Self::Sync(e) => match e {
                SyncError::MessageTooLarge { .. } | SyncError::DocumentTooLarge { .. } => {
                    ErrorCode::FrameTooLarge
                }
                SyncError::Rejected(_) | SyncError::ReadOnly => ErrorCode::Forbidden,
                SyncError::RateLimited => ErrorCode::RateLimited,
                _ => ErrorCode::MalformedFrame,
            },
        }
    }
}

/// One session following a document.
pub(crate) struct Watcher {
    /// Its peer id among the document's peers.
    id: u64,
    session: Arc<str>,
    channel: ChannelName,
    sink: Arc<dyn Delivery>,
    next_seq: u64,
    bucket: Bucket,
    /// Whether the server's step 1 was sent (it waits for the document to load).
    started: bool,
}

/// The sessions following one document.
pub(crate) struct Watchers {
    list: Mutex<Vec<Watcher>>,
    ids: MessageIdGen,
}

impl Default for Watchers {
    fn default() -> Self {
        Self {
            list: Mutex::default(),
            // Message ids only need to be unique per channel and session
            // (clients order and deduplicate by seq).
            ids: MessageIdGen::new(std::process::id()),
        }
    }
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, Vec<Watcher>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next message of `w`'s channel.
    fn message(&self, w: &mut Watcher, payload: Vec<u8>) -> Arc<SharedMessage> {
        let seq = w.next_seq;
        w.next_seq += 1;
        Arc::new(SharedMessage::new(
            w.channel.clone(),
            seq,
            self.ids.next_id(),
            Bytes::from(payload),
        ))
    }

    /// Sends `messages` (one payload) to every watcher but peer `from`.
    pub(crate) fn relay(&self, from: u64, messages: &[Vec<u8>]) {
        let payload = messages.concat();
        let mut list = self.lock();
        for w in list.iter_mut().filter(|w| w.id != from && w.started) {
            let m = self.message(w, payload.clone());
            w.sink.deliver(&m);
        }
    }

    /// Sends `payload` to peer `to` only.
    fn reply(&self, to: u64, payload: Vec<u8>) {
        let mut list = self.lock();
        if let Some(w) = list.iter_mut().find(|w| w.id == to) {
            let m = self.message(w, payload);
            w.sink.deliver_alone(&m);
        }
    }

    /// Sends the server's start (`start`) to every watcher not started yet.
    fn start_waiting(&self, start: &[u8]) {
        let mut list = self.lock();
        for w in list.iter_mut().filter(|w| !w.started) {
            w.started = true;
            let m = self.message(w, start.to_vec());
            w.sink.deliver_alone(&m);
        }
    }
}

/// The documents of [`Docs`], served to hub sessions on channels
/// `{prefix}NAME` (`doc:NAME` by default; the same grants as the y-websocket
/// route: subscribe = read, publish = write). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionDocs {
    docs: Docs,
    prefix: Arc<str>,
}

impl SessionDocs {
    /// `docs` on channels starting with `prefix` (e.g. `"doc:"`).
    pub fn new(docs: Docs, prefix: &str) -> Self {
        Self {
            docs,
            prefix: Arc::from(prefix),
        }
    }

    /// The documents.
    pub fn docs(&self) -> &Docs {
        &self.docs
    }

    /// The document a channel carries, if it is a document channel.
    pub fn document_of<'a>(&self, channel: &'a ChannelName) -> Option<&'a str> {
        channel
            .as_str()
            .strip_prefix(&*self.prefix)
            .filter(|n| !n.is_empty())
    }

    /// Whether `channel` is a document channel.
    pub fn owns(&self, channel: &ChannelName) -> bool {
        self.document_of(channel).is_some()
    }

    /// Session `session` subscribes to `channel` (`after`: its last position
    /// there, when it resubscribes): it gets the server's sync step 1 first
    /// (once the document is loaded), then every change others make.
    pub fn subscribe(
        &self,
        session: &str,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> Result<Subscription, BrokerError> {
        let Some(name) = self.document_of(channel) else {
            return Err(BrokerError::Unavailable(format!(
                "{channel} is not a document channel"
            )));
        };
        let room = self
            .docs
            .open(name)
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        if self.docs.persistence.is_none() {
            // Nothing to load.
            let _ = room.writer.set(None);
        }
        let id = self.docs.next_peer.fetch_add(1, Ordering::Relaxed);
        let position = after.unwrap_or(0);
        let ready = room.writer.initialized();
        let mut w = Watcher {
            id,
            session: Arc::from(session),
            channel: channel.clone(),
            sink,
            next_seq: position + 1,
            bucket: Bucket::new(self.docs.config.awareness_per_sec),
            started: ready,
        };
        let backlog = if ready {
            vec![room.watchers.message(&mut w, room.doc().start().concat())]
        } else {
            Vec::new()
        };
        room.watchers.lock().push(w);
        if !ready {
            self.load_then_start(name.to_owned(), room);
        }
        debug!(doc = name, peer = id, session, "session follows a document");
        Ok(Subscription {
            id: SubscriberId(id),
            start: SubscriptionStart {
                position,
                gap: None,
                backlog,
            },
        })
    }

    /// Loads `room` (from the store), then sends its start to the sessions
    /// waiting for it.
    fn load_then_start(&self, name: String, room: Arc<Room>) {
        let docs = self.docs.clone();
        tokio::spawn(async move {
            if let Err(e) = docs.ready(&name, &room).await {
                // Its sessions stay unstarted: they are refused (`unavailable`)
                // until a later subscription loads the document.
                warn!(doc = %name, error = %e, "document not loaded for its sessions");
                return;
            }
            let start = room.doc().start().concat();
            room.watchers.start_waiting(&start);
        });
    }

    /// Ends subscription `id` to `channel`.
    pub fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let Some(name) = self.document_of(channel) else {
            return;
        };
        if let Some(room) = self.docs.rooms().get(name).cloned() {
            room.watchers.lock().retain(|w| w.id != id.0);
        }
    }

    /// Session `session` publishes `payload` (y-protocols messages) on
    /// `channel`; it may change the document only if `may_write`. Answers go
    /// to its subscription, changes to the document's other peers.
    pub fn publish(
        &self,
        session: &str,
        channel: &ChannelName,
        payload: &[u8],
        may_write: bool,
    ) -> Result<(), SessionDocError> {
        let Some(name) = self.document_of(channel) else {
            return Err(SessionDocError::NotADocument(channel.to_string()));
        };
        let room = self
            .docs
            .rooms()
            .get(name)
            .cloned()
            .ok_or_else(|| SessionDocError::NotSubscribed(channel.to_string()))?;
        let (id, started, flood) = {
            let mut list = room.watchers.lock();
            let w = list
                .iter_mut()
                .find(|w| &*w.session == session)
                .ok_or_else(|| SessionDocError::NotSubscribed(channel.to_string()))?;
            let flood = payload.first() == Some(&1) && !w.bucket.take(Instant::now());
            (w.id, w.started, flood)
        };
        if !started || !room.writer.initialized() {
            return Err(SessionDocError::Loading(name.to_owned()));
        }
        if flood {
            return Err(SyncError::RateLimited.into());
        }
        let store_writer = room.writer.get().and_then(Option::as_ref);
        if payload.first() == Some(&0) && store_writer.is_some_and(|w| !w.has_room()) {
            return Err(PersistError::Backlog.into());
        }
        let mut out = room.doc().handle_as(payload, may_write)?;
        if let Some(w) = store_writer {
            w.log(std::mem::take(&mut out.applied));
        }
        if !out.reply.is_empty() {
            room.watchers.reply(id, out.reply.concat());
        }
        room.broadcast(id, &out.broadcast);
        Ok(())
    }
}
