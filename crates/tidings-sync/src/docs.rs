//! `Docs`: the documents a server holds, each with the peers connected to it, and `serve_connection`, which runs one y-websocket connection against them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{Instrument, debug, info_span, warn};

use tidings_broker::Store;

use crate::doc::{DocConfig, SyncDoc};
use crate::error::SyncError;
use crate::persist::{Job, PersistConfig, PersistError, Persistence, Writer};

/// Settings of [`Docs`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DocsConfig {
    /// Limits and hooks of every document.
    pub doc: DocConfig,
    /// Documents held at most; opening one more is refused.
    pub max_docs: usize,
    /// Messages queued per peer at most; a peer that falls further behind is
    /// disconnected (close 1008, "slow consumer") and resyncs when it comes
    /// back.
    pub peer_queue: usize,
    /// Awareness messages per second a peer may send (burst: twice that);
    /// beyond, it is disconnected (close 1008).
    pub awareness_per_sec: u32,
}

impl Default for DocsConfig {
    fn default() -> Self {
        Self {
            doc: DocConfig::default(),
            max_docs: 10_000,
            peer_queue: 1024,
            awareness_per_sec: 30,
        }
    }
}

/// A document could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// [`DocsConfig::max_docs`] documents are open.
    #[error("too many documents (limit {0})")]
    TooManyDocs(usize),
}

/// [`Docs::load`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The document could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Its store could not restore it.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

struct Peer {
    id: u64,
    tx: mpsc::Sender<Outgoing>,
}

enum Outgoing {
    Data(Vec<u8>),
    Close(CloseCode, String),
}

pub(crate) struct Room {
    doc: Mutex<SyncDoc>,
    peers: Mutex<Vec<Peer>>,
    /// Set once the document is loaded from the store (at once without one).
    pub(crate) writer: tokio::sync::OnceCell<Option<Writer>>,
    /// Hub sessions following the document over the tidings session
    /// (`session.rs`).
    pub(crate) watchers: crate::session::Watchers,
}

impl Room {
    pub(crate) fn doc(&self) -> MutexGuard<'_, SyncDoc> {
        self.doc.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peers(&self) -> MutexGuard<'_, Vec<Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `messages` to every peer but `from`; a peer whose queue is full
    /// is dropped (told so if its queue ever drains).
    pub(crate) fn broadcast(&self, from: u64, messages: &[Vec<u8>]) {
        if messages.is_empty() {
            return;
        }
        self.watchers.relay(from, messages);
        let mut peers = self.peers();
        peers.retain(|p| {
            if p.id == from {
                return true;
            }
            for m in messages {
                if p.tx.try_send(Outgoing::Data(m.clone())).is_err() {
                    warn!(peer = p.id, "sync peer too slow: disconnected");
                    let _ =
                        p.tx.try_send(Outgoing::Close(CloseCode::Policy, "slow consumer".into()));
                    return false;
                }
            }
            true
        });
    }
}

/// The documents of a server, by name; cheap to clone.
#[derive(Clone)]
pub struct Docs {
    rooms: Arc<Mutex<HashMap<String, Arc<Room>>>>,
    pub(crate) config: Arc<DocsConfig>,
    pub(crate) next_peer: Arc<AtomicU64>,
    pub(crate) persistence: Option<Arc<Persistence>>,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs")
            .field("docs", &self.len())
            .finish_non_exhaustive()
    }
}

impl Docs {
    /// No documents yet.
    pub fn new(config: DocsConfig) -> Self {
        Self {
            rooms: Arc::default(),
            config: Arc::new(config),
            next_peer: Arc::new(AtomicU64::new(1)),
            persistence: None,
        }
    }

    /// Documents persisted in `store` (see [`crate::PersistConfig`]): each is
    /// loaded from its last snapshot and update log when first opened, and
    /// every applied update is logged, with a snapshot every
    /// [`PersistConfig::compact_every`] updates. A server restarted on the
    /// same store (a new `Docs`) serves the same documents.
    pub fn with_store(config: DocsConfig, store: Arc<dyn Store>, persist: PersistConfig) -> Self {
        let mut docs = Self::new(config);
        docs.persistence = Some(Arc::new(Persistence::new(store, persist)));
        docs
    }

    /// Opens document `name` (loading it from the store) without a peer.
    pub async fn load(&self, name: &str) -> Result<(), LoadError> {
        let room = self.open(name)?;
        self.ready(name, &room).await?;
        Ok(())
    }

    /// Waits until every update applied to `name` so far is in the store
    /// (at once without a store, or when the document is not open).
    pub async fn flush(&self, name: &str) -> Result<(), PersistError> {
        let Some(room) = self.rooms().get(name).cloned() else {
            return Ok(());
        };
        match room.writer.get() {
            Some(Some(w)) => w.ask(Job::Flush).await,
            _ => Ok(()),
        }
    }

    /// Writes a snapshot of `name` now (after every update applied so far)
    /// and applies the store's retention to its log.
    pub async fn compact(&self, name: &str) -> Result<(), PersistError> {
        let Some(room) = self.rooms().get(name).cloned() else {
            return Ok(());
        };
        match room.writer.get() {
            Some(Some(w)) => w.ask(Job::Compact).await,
            _ => Ok(()),
        }
    }

    /// Loads `room` from the store once (concurrent openers wait for the
    /// same load; a failed load is tried again by the next opener).
    pub(crate) async fn ready(&self, name: &str, room: &Arc<Room>) -> Result<(), PersistError> {
        let Some(p) = &self.persistence else {
            let _ = room.writer.set(None);
            return Ok(());
        };
        room.writer
            .get_or_try_init(|| async {
                let mut doc = SyncDoc::new(self.config.doc.clone());
                let loaded = p.load(name, &mut doc).await?;
                *room.doc() = doc;
                let weak = Arc::downgrade(room);
                let state = move || {
                    weak.upgrade()
                        .map(|r| r.doc().encode_state())
                        .unwrap_or_default()
                };
                Ok::<_, PersistError>(Some(Writer::start(p.clone(), loaded, state)))
            })
            .await?;
        Ok(())
    }

    pub(crate) fn rooms(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many documents are open.
    pub fn len(&self) -> usize {
        self.rooms().len()
    }

    /// Whether no document is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn open(&self, name: &str) -> Result<Arc<Room>, OpenError> {
        let mut rooms = self.rooms();
        if let Some(r) = rooms.get(name) {
            return Ok(r.clone());
        }
        if rooms.len() >= self.config.max_docs {
            return Err(OpenError::TooManyDocs(self.config.max_docs));
        }
        let room = Arc::new(Room {
            doc: Mutex::new(SyncDoc::new(self.config.doc.clone())),
            peers: Mutex::new(Vec::new()),
            writer: tokio::sync::OnceCell::new(),
            watchers: crate::session::Watchers::default(),
        });
        rooms.insert(name.to_owned(), room.clone());
        Ok(room)
    }

    /// Runs `f` on document `name`, if it is open (e.g. to read or persist it).
    pub fn with_doc<T>(&self, name: &str, f: impl FnOnce(&SyncDoc) -> T) -> Option<T> {
        let room = self.rooms().get(name).cloned()?;
        let doc = room.doc();
        Some(f(&doc))
    }

    /// Serves one y-websocket connection (binary messages, y-protocols) to
    /// document `name` until it ends. Bad input closes this connection with a
    /// typed reason (1003 malformed, 1009 too large, 1008 rejected or
    /// flooding); the document and the other peers are unaffected.
    pub async fn serve_connection<S>(&self, name: &str, ws: WebSocketStream<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_connection_as(name, ws, true).await;
    }

    /// [`Docs::serve_connection`] for a peer that may change the document
    /// only if `may_write` (otherwise its updates close it with 1008).
    pub async fn serve_connection_as<S>(&self, name: &str, ws: WebSocketStream<S>, may_write: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let id = self.next_peer.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("tidings_sync_peer", doc = name, peer = id, may_write);
        self.serve_inner(name, id, ws, may_write)
            .instrument(span)
            .await;
    }

    async fn serve_inner<S>(&self, name: &str, id: u64, ws: WebSocketStream<S>, may_write: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let room = match self.open(name) {
            Ok(r) => r,
            Err(e) => {
                let _ = sink.send(close(CloseCode::Again, &e.to_string())).await;
                return;
            }
        };
        if let Err(e) = self.ready(name, &room).await {
            warn!(error = %e, "document not loaded");
            let _ = sink.send(close(CloseCode::Error, &e.to_string())).await;
            return;
        }
        let store_writer = room.writer.get().and_then(Option::as_ref);
        let (tx, mut rx) = mpsc::channel(self.config.peer_queue.max(2));
        for m in room.doc().start() {
            let _ = tx.try_send(Outgoing::Data(m));
        }
        room.peers().push(Peer { id, tx: tx.clone() });
        let writer = tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let end = matches!(out, Outgoing::Close(..));
                let msg = match out {
                    Outgoing::Data(d) => WsMessage::binary(d),
                    Outgoing::Close(code, reason) => close(code, &reason),
                };
                if sink.send(msg).await.is_err() || end {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let mut bucket = Bucket::new(self.config.awareness_per_sec);
        while let Some(frame) = stream.next().await {
            let data = match frame {
                Ok(WsMessage::Binary(d)) => d,
                Ok(WsMessage::Close(_)) | Err(_) => break,
                Ok(WsMessage::Text(_)) => {
                    let _ = tx
                        .send(Outgoing::Close(
                            CloseCode::Unsupported,
                            "y-protocols messages are binary".into(),
                        ))
                        .await;
                    break;
                }
                Ok(_) => continue,
            };
            if data.first() == Some(&1) && !bucket.take(Instant::now()) {
                let e = SyncError::RateLimited;
                warn!(error = %e, "awareness flood");
                let _ = tx
                    .send(Outgoing::Close(CloseCode::Policy, e.to_string()))
                    .await;
                break;
            }
            if data.first() == Some(&0) && store_writer.is_some_and(|w| !w.has_room()) {
                let e = PersistError::Backlog;
                warn!(error = %e, "document writer behind");
                let _ = tx
                    .send(Outgoing::Close(CloseCode::Again, e.to_string()))
                    .await;
                break;
            }
            let result = room.doc().handle_as(&data, may_write);
            match result {
                Ok(mut out) => {
                    if let Some(w) = store_writer {
                        w.log(std::mem::take(&mut out.applied));
                    }
                    for m in out.reply {
                        if tx.send(Outgoing::Data(m)).await.is_err() {
                            break;
                        }
                    }
                    room.broadcast(id, &out.broadcast);
                }
                Err(e) => {
                    debug!(error = %e, "sync message refused");
                    let code = match e {
                        SyncError::MessageTooLarge { .. } | SyncError::DocumentTooLarge { .. } => {
                            CloseCode::Size
                        }
                        SyncError::Rejected(_) | SyncError::ReadOnly => CloseCode::Policy,
                        _ => CloseCode::Unsupported,
                    };
                    let _ = tx.send(Outgoing::Close(code, e.to_string())).await;
                    break;
                }
            }
        }
        room.peers().retain(|p| p.id != id);
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }
}

fn close(code: CloseCode, reason: &str) -> WsMessage {
    // A close reason is at most 123 bytes.
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }))
}

/// Token bucket for awareness messages.
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    pub(crate) fn new(per_sec: u32) -> Self {
        let rate = f64::from(per_sec.max(1));
        Self {
            rate,
            tokens: rate * 2.0,
            at: None,
        }
    }

    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.rate * 2.0);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
