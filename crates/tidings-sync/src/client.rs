//! The client side of documents on the tidings session: `SyncedDoc` (sans-IO: client events in, payloads to publish out) and `SyncedClient`, which runs one over a `tidings_runtime::Client` (native and wasm32).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tidings_protocol::{ClientEvent, ErrorCode};
use tidings_runtime::{Client, ClientError};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, Origin, ReadTxn, Transact, Update};

use crate::error::SyncError;
use crate::wire::{decode_messages, guarded};

/// The origin of transactions that apply the server's updates: changes with
/// it are not sent back.
const REMOTE: &str = "tidings-sync:remote";

/// A document on the session could not be synced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The server sent bytes that are not y-protocols messages.
    #[error("malformed message from the server: {0}")]
    Malformed(#[from] SyncError),
    /// The server's update does not apply to the document.
    #[error("the server's update does not apply: {0}")]
    Update(String),
    /// The server refused a message this client published on the document's
    /// channel (malformed, too large, rejected, read-only...); the local
    /// document keeps the change, the server's does not have it.
    #[error("the server refused a message on {channel}: {code}: {message}")]
    Refused {
        /// The document's channel.
        channel: String,
        /// The wire error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// Local changes could not be observed (the document is in a transaction).
    #[error("cannot observe the document: {0}")]
    Observe(String),
    /// The client refused a publish or a subscription (queue full, closed,
    /// bad channel name...).
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl DocError {
    /// Whether the server refused a published message.
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

/// One Yjs document synced over a tidings session on channel `doc:NAME`
/// (sans-IO): feed it the client's events with [`SyncedDoc::handle_event`]
/// and publish on [`SyncedDoc::channel`] what it returns; after local edits,
/// publish [`SyncedDoc::take_local`].
///
/// It syncs again whenever the subscription starts over — the server's step 1
/// begins every (re)subscription, after a reconnect to a new session or a
/// channel reset; a gap sends this side's step 1 — so no edit of either side
/// is lost.
pub struct SyncedDoc {
    channel: String,
    doc: Doc,
    outbox: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The key of the update observer that fills `outbox` (yrs 0.28 keys
    /// observers instead of returning a subscription); removed on drop.
    observer: Origin,
    synced: bool,
}

impl Drop for SyncedDoc {
    fn drop(&mut self) {
        // A clone of the `Doc` may outlive this: stop filling an outbox nobody reads.
        // (Fails only while a transaction is open on the document; then the observer stays.)
        let _ = self.doc.unobserve_update_v1(self.observer.clone());
    }
}

impl std::fmt::Debug for SyncedDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncedDoc")
            .field("channel", &self.channel)
            .field("synced", &self.synced)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SyncedDoc {
    /// A new empty document on `channel`. In the browser, pass a document
    /// with a random client id ([`SyncedDoc::with_doc`],
    /// `Doc::with_client_id`): yrs' own random source is not seeded there.
    pub fn new(channel: &str) -> Result<Self, DocError> {
        Self::with_doc(channel, Doc::new())
    }

    /// `doc` (possibly holding edits already: they are sent on the first
    /// sync) on `channel`.
    pub fn with_doc(channel: &str, doc: Doc) -> Result<Self, DocError> {
        let outbox: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let sink = outbox.clone();
        let remote = Origin::from(REMOTE);
        // One key per `SyncedDoc`: two of them on one (shared) `Doc` keep their own observers.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let observer = Origin::from(format!(
            "tidings-sync:outbox:{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        doc.observe_update_v1(observer.clone(), move |txn, e| {
            if txn.origin() != Some(&remote) {
                lock(&sink).push(e.update.clone());
            }
        })
        .map_err(|e| DocError::Observe(e.to_string()))?;
        Ok(Self {
            channel: channel.to_owned(),
            doc,
            outbox,
            observer,
            synced: false,
        })
    }

    /// The document's channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The document (read it, or edit it in a transaction; then publish
    /// [`SyncedDoc::take_local`]).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Whether the server's state arrived since the last (re)sync began.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// This side's sync step 1 (its state vector): publish it to (re)sync.
    pub fn sync_step1(&mut self) -> Bytes {
        self.synced = false;
        let sv = self.doc.transact().state_vector();
        Bytes::from(Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1())
    }

    /// The local changes made since the last call, as one payload of
    /// y-protocols updates (`None`: nothing changed).
    pub fn take_local(&mut self) -> Option<Bytes> {
        let updates = std::mem::take(&mut *lock(&self.outbox));
        if updates.is_empty() {
            return None;
        }
        let mut payload = Vec::new();
        for u in updates {
            payload.extend(Message::Sync(SyncMessage::Update(u)).encode_v1());
        }
        Some(Bytes::from(payload))
    }

    /// Handles one message of the document's channel from the server; what to
    /// publish in answer, if anything.
    pub fn handle_message(&mut self, payload: &[u8]) -> Result<Option<Bytes>, DocError> {
        let mut reply = Vec::new();
        for message in decode_messages(payload)? {
            match message {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let update = self.doc.transact().encode_state_as_update_v1(&sv);
                    reply.extend(Message::Sync(SyncMessage::SyncStep2(update)).encode_v1());
                    // The server's step 1 starts every subscription: ask for
                    // what this side lacks too (a new session may follow a
                    // reconnect without a gap being seen).
                    self.synced = false;
                    let sv = self.doc.transact().state_vector();
                    reply.extend(Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1());
                }
                Message::Sync(SyncMessage::SyncStep2(u)) => {
                    self.apply(&u)?;
                    self.synced = true;
                }
                Message::Sync(SyncMessage::Update(u)) => self.apply(&u)?,
                // Awareness is relayed by the server; presence is tidings-presence's.
                Message::Awareness(_)
                | Message::AwarenessQuery
                | Message::Auth(_)
                | Message::Custom(..) => {}
            }
        }
        Ok((!reply.is_empty()).then(|| Bytes::from(reply)))
    }

    fn apply(&mut self, bytes: &[u8]) -> Result<(), DocError> {
        if bytes.len() <= 2 {
            return Ok(());
        }
        let update = guarded(|| Update::decode_v1(bytes))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(DocError::Update)?;
        let mut txn = self.doc.transact_mut_with(REMOTE);
        guarded(std::panic::AssertUnwindSafe(|| txn.apply_update(update)))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(DocError::Update)
    }

    /// Handles one event of the session; what to publish on the channel, if
    /// anything. Events of other channels are ignored.
    pub fn handle_event(&mut self, event: &ClientEvent) -> Result<Option<Bytes>, DocError> {
        match event {
            ClientEvent::Message(m) if m.channel.as_str() == self.channel => {
                self.handle_message(&m.payload)
            }
            ClientEvent::Subscribed { channel, .. } | ClientEvent::ChannelReset { channel, .. }
                if channel.as_str() == self.channel =>
            {
                Ok(Some(self.sync_step1()))
            }
            ClientEvent::Gap(gap) if gap.channel.as_str() == self.channel => {
                Ok(Some(self.sync_step1()))
            }
            // A document still loading answers with its step 1 once loaded.
            ClientEvent::PublishRefused { channel, code, .. }
                if channel.as_str() == self.channel && *code == ErrorCode::Unavailable =>
            {
                Ok(None)
            }
            ClientEvent::PublishRefused {
                channel,
                code,
                message,
                ..
            } if channel.as_str() == self.channel => Err(DocError::Refused {
                channel: self.channel.clone(),
                code: *code,
                message: message.clone(),
            }),
            // Without acknowledgement after store, refusals are error reports
            // naming the channel first.
            ClientEvent::Error { code, message, .. }
                if message
                    .strip_prefix(self.channel.as_str())
                    .is_some_and(|rest| rest.starts_with(':'))
                    && *code != ErrorCode::Unavailable =>
            {
                Err(DocError::Refused {
                    channel: self.channel.clone(),
                    code: *code,
                    message: message.clone(),
                })
            }
            _ => Ok(None),
        }
    }
}

/// A [`SyncedDoc`] run over a [`Client`]: call [`SyncedClient::run`] (it
/// reads the client's events until the client closes), edit with
/// [`SyncedClient::edit`]. `Send + Sync` natively: share it in an `Arc`.
pub struct SyncedClient<T> {
    client: Client<T>,
    doc: Mutex<SyncedDoc>,
    errors: Mutex<Vec<DocError>>,
}

impl<T> std::fmt::Debug for SyncedClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncedClient")
            .field("doc", &*lock(&self.doc))
            .finish_non_exhaustive()
    }
}

impl<T> SyncedClient<T> {
    /// Follows document channel `channel` (`doc:NAME`) on `client` with a new
    /// empty document.
    pub fn start(client: Client<T>, channel: &str) -> Result<Self, DocError> {
        Self::with_doc(client, SyncedDoc::new(channel)?)
    }

    /// Follows `doc` on `client` (subscribes to its channel).
    pub fn with_doc(client: Client<T>, doc: SyncedDoc) -> Result<Self, DocError> {
        client.subscribe(doc.channel())?;
        Ok(Self {
            client,
            doc: Mutex::new(doc),
            errors: Mutex::default(),
        })
    }

    /// The client.
    pub fn client(&self) -> &Client<T> {
        &self.client
    }

    /// Reads the document.
    pub fn read<R>(&self, f: impl FnOnce(&Doc) -> R) -> R {
        f(lock(&self.doc).doc())
    }

    /// Whether the server's state arrived since the last (re)sync began.
    pub fn is_synced(&self) -> bool {
        lock(&self.doc).is_synced()
    }

    /// Edits the document (`f` opens its transactions) and publishes the
    /// change (queued while disconnected, sent exactly once).
    pub fn edit<R>(&self, f: impl FnOnce(&Doc) -> R) -> Result<R, DocError> {
        let mut doc = lock(&self.doc);
        let r = f(doc.doc());
        if let Some(payload) = doc.take_local() {
            self.client.publish(doc.channel(), payload)?;
        }
        Ok(r)
    }

    /// The errors seen since the last call (refusals, malformed messages).
    pub fn take_errors(&self) -> Vec<DocError> {
        std::mem::take(&mut *lock(&self.errors))
    }

    /// Hands one event to the document and publishes its answer (for callers
    /// that read the client's events themselves; [`SyncedClient::run`] does).
    pub fn handle_event(&self, event: &ClientEvent) {
        let result = {
            let mut doc = lock(&self.doc);
            doc.handle_event(event).and_then(|answer| match answer {
                Some(payload) => self
                    .client
                    .publish(doc.channel(), payload)
                    .map(drop)
                    .map_err(DocError::from),
                None => Ok(()),
            })
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "document sync error");
            lock(&self.errors).push(e);
        }
    }

    /// Reads the client's events and keeps the document synced until the
    /// client is closed.
    pub async fn run(&self) {
        while let Some(event) = self.client.next_event().await {
            self.handle_event(&event);
        }
    }

    /// Closes the client.
    pub fn close(&self) {
        self.client.close();
    }
}
